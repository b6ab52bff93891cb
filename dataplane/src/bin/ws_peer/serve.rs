//! The WebSocket server: one task per connection, TLS first when asked, then the RFC 6455 handshake (or a refusal)
//! and the echo loop.

use super::self_signed;
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Answer every Upgrade request with this status (400, 426, …) instead of 101, with a small body naming this
    /// peer: an upstream that refuses the upgrade.
    #[arg(long, value_name = "STATUS")]
    refuse: Option<u16>,
    #[command(flatten)]
    tls: self_signed::TlsArgs,
}

/// What every connection needs to know about this process.
struct Peer {
    /// `ADDR PID`, the rest of the greeting.
    name: String,
    refuse: Option<u16>,
}

/// The request headers printed on `upgrade` lines: what a proxy is expected to add.
const RECORDED: [&str; 4] = ["x-request-id", "x-holdfast-attempt", "x-forwarded-proto", "host"];

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let tls = args.tls.server_config(&[b"http/1.1"])?.map(TlsAcceptor::from);
    let listener = TcpListener::bind(args.listen).await?;
    let address = listener.local_addr()?;
    println!("listening {address}");
    let peer = Arc::new(Peer { name: format!("{address} {}", std::process::id()), refuse: args.refuse });
    let mut count = 0u64;
    loop {
        let (stream, from) = listener.accept().await?;
        count += 1;
        println!("connection {count} from {from}");
        // Echo latency is what the benchmarks measure: no Nagle delay on small messages.
        let _ = stream.set_nodelay(true);
        let (peer, tls) = (peer.clone(), tls.clone());
        tokio::spawn(async move {
            let Some(tls) = tls else { return session(&peer, stream, count).await };
            match tls.accept(stream).await {
                Ok(stream) => {
                    println!("sni {count} {}", self_signed::sni_of(stream.get_ref().1));
                    session(&peer, stream, count).await
                }
                Err(error) => println!("tls handshake failed {count}: {error}"),
            }
        });
    }
}

// The callback's error type is tungstenite's (`ErrorResponse`), not ours to box.
#[allow(clippy::result_large_err)]
async fn session(peer: &Peer, stream: impl AsyncRead + AsyncWrite + Unpin, n: u64) {
    let callback = |request: &Request, response: Response| {
        let mut seen = serde_json::Map::new();
        seen.insert("path".into(), request.uri().path().into());
        for name in RECORDED {
            let value = request.headers().get(name).and_then(|v| v.to_str().ok());
            seen.insert(name.into(), value.into());
        }
        println!("upgrade {n} {}", serde_json::Value::Object(seen));
        match peer.refuse {
            Some(status) => Err(refusal(status, &peer.name)),
            None => Ok(response),
        }
    };
    let ws = match tokio_tungstenite::accept_hdr_async(stream, callback).await {
        Ok(ws) => ws,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            return println!("refused {n} {}", response.status().as_u16());
        }
        Err(error) => return println!("closed {n} handshake failed: {error}"),
    };
    let how = echo(ws, &peer.name).await;
    println!("closed {n} {how}");
}

/// A refusal with a length, so that it is complete without waiting for the close, and a header to recognise it by.
fn refusal(status: u16, name: &str) -> ErrorResponse {
    let body = format!("refused by {name}\n");
    let mut response = ErrorResponse::new(Some(body.clone()));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    headers.insert("content-length", body.len().into());
    headers.insert("x-refused-by", name.parse().expect("an address and a pid are a valid header value"));
    if status == 426 {
        // RFC 9110 §15.5.22: a 426 says which protocol to upgrade to.
        headers.insert("upgrade", http::HeaderValue::from_static("websocket"));
    }
    response
}

/// Greets, then echoes until the client closes; returns how the session ended.
async fn echo(mut ws: WebSocketStream<impl AsyncRead + AsyncWrite + Unpin>, name: &str) -> String {
    if let Err(error) = ws.send(Message::text(format!("hello {name}"))).await {
        return format!("error {error}");
    }
    let mut how = "eof".to_string();
    while let Some(message) = ws.next().await {
        let result = match message {
            Ok(Message::Text(text)) => match text.as_str().strip_prefix("push ").and_then(|n| n.parse().ok()) {
                Some(count) => push(&mut ws, count).await,
                None => ws.send(Message::Text(text)).await,
            },
            Ok(Message::Binary(data)) => ws.send(Message::Binary(data)).await,
            // tungstenite answers the close itself; the stream ends once that answer is out.
            Ok(Message::Close(_)) => {
                how = "by the client".to_string();
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(error) => return format!("error {error}"),
        };
        if let Err(error) = result {
            return format!("error {error}");
        }
    }
    how
}

/// `count` messages the client did not ask for one by one, flushed together.
async fn push(
    ws: &mut WebSocketStream<impl AsyncRead + AsyncWrite + Unpin>,
    count: u32,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    for i in 1..=count {
        ws.feed(Message::text(format!("push {i}/{count}"))).await?;
    }
    ws.flush().await
}
