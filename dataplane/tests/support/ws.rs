//! WebSocket clients with tokio-tungstenite: over plain TCP or TLS (HTTP/1.1 Upgrade), or over an HTTP/2 stream
//! opened with an extended CONNECT (RFC 8441); and the few exchanges every tunnel test makes with `holdfast-ws-peer`.

use super::tls::ClientTls;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A byte stream of any kind under a WebSocket: TCP, TLS, or an HTTP/2 stream.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Ws = WebSocketStream<Box<dyn Io>>;

/// How long any single exchange may take before the test fails instead of hanging.
pub const STEP: Duration = Duration::from_secs(10);

/// A TCP connection to `addr`, through TLS when `tls` is given.
pub async fn transport(addr: SocketAddr, tls: Option<&ClientTls>) -> Box<dyn Io> {
    let tcp = tokio::time::timeout(STEP, TcpStream::connect(addr)).await.expect("connect in time").unwrap();
    tcp.set_nodelay(true).unwrap();
    match tls {
        None => Box::new(tcp),
        Some(tls) => Box::new(tokio::time::timeout(STEP, tls.connect(tcp)).await.expect("TLS in time").unwrap()),
    }
}

/// An HTTP/1.1 Upgrade handshake for `path` on `addr`; the error is the handshake's (a refusal, a reset).
pub async fn connect(addr: SocketAddr, tls: Option<&ClientTls>, path: &str) -> Result<Ws, String> {
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let request = format!("{scheme}://ws.test{path}").into_client_request().unwrap();
    let io = transport(addr, tls).await;
    match tokio::time::timeout(STEP, tokio_tungstenite::client_async(request, io)).await {
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(error)) => Err(format!("WebSocket handshake failed: {error}")),
        Err(_) => Err("no WebSocket handshake answer in time".to_string()),
    }
}

/// RFC 8441: a WebSocket on an HTTP/2 stream, `CONNECT` with `:protocol websocket`, over `io` (h2c, or TLS that
/// negotiated h2). Waits for the server's SETTINGS to allow extended CONNECT first: before them a client may not
/// send one (RFC 8441 §3), and hyper refuses to.
pub async fn connect_h2(io: Box<dyn Io>, scheme: &str, path: &str) -> Result<Ws, String> {
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, http_body_util::Empty<bytes::Bytes>>(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;
    let mut connection = connection;
    let deadline = Instant::now() + STEP;
    // The setting is read off the connection, which must be driven meanwhile to receive the server's SETTINGS.
    while !connection.is_extended_connect_protocol_enabled() {
        if Instant::now() > deadline {
            return Err("the server's SETTINGS never enabled extended CONNECT (RFC 8441)".to_string());
        }
        tokio::select! {
            ended = &mut connection => return Err(format!("the HTTP/2 connection ended: {ended:?}")),
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
    tokio::spawn(connection);
    let request = http::Request::connect(format!("{scheme}://ws.test{path}"))
        .header("sec-websocket-version", "13")
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = tokio::time::timeout(STEP, sender.send_request(request))
        .await
        .map_err(|_| "no answer to the extended CONNECT in time".to_string())?
        .map_err(|e| format!("extended CONNECT failed: {e}"))?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("extended CONNECT answered {}", response.status()));
    }
    let upgraded = hyper::upgrade::on(response).await.map_err(|e| format!("no stream after the 200: {e}"))?;
    let io: Box<dyn Io> = Box::new(TokioIo::new(upgraded));
    Ok(WebSocketStream::from_raw_socket(io, Role::Client, None).await)
}

/// The next data message (pings and pongs skipped), failing the test after [`STEP`].
pub async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(STEP, ws.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(text))) => return text.as_str().to_string(),
            Some(Ok(Message::Binary(data))) => return String::from_utf8_lossy(&data).into_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Reads the peer's greeting; returns the peer's listening address from it (`hello ADDR PID`).
pub async fn hello(ws: &mut Ws) -> SocketAddr {
    let greeting = next_text(ws).await;
    let name = greeting.strip_prefix("hello ").unwrap_or_else(|| panic!("a greeting, got {greeting:?}"));
    name.split(' ').next().unwrap().parse().expect("an address in the greeting")
}

/// A text message and a binary one echoed, then 50 messages the peer pushes unprompted.
pub async fn echo_and_push(ws: &mut Ws) {
    ws.send(Message::text("ping through the tunnel")).await.unwrap();
    assert_eq!(next_text(ws).await, "ping through the tunnel");
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    ws.send(Message::binary(binary.clone())).await.unwrap();
    match tokio::time::timeout(STEP, ws.next()).await.expect("the binary echo in time") {
        Some(Ok(Message::Binary(echo))) => assert!(echo[..] == binary[..], "the binary echo differs"),
        other => panic!("expected the binary echo, got {other:?}"),
    }
    ws.send(Message::text("push 50")).await.unwrap();
    for i in 1..=50 {
        assert_eq!(next_text(ws).await, format!("push {i}/50"));
    }
}

/// Waits for the end of the tunnel as the client sees it (a close frame, end of stream or a reset); returns how
/// long it took. Fails the test if messages still come or nothing happens within `within`.
pub async fn closed_within(ws: &mut Ws, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        match tokio::time::timeout(within, ws.next()).await {
            Err(_) => panic!("the tunnel was still open after {within:?}"),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return started.elapsed(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(other))) => panic!("expected the tunnel to close, got {other:?}"),
        }
    }
}
