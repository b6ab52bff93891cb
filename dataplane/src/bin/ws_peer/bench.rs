//! The benchmark clients: `echo-bench` (round-trip latency) and `hold` (idle connections, for memory per tunnel).

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Round trips per connection before measuring: the first ones pay for connection set-up in the proxy and for
/// cold caches, which a steady-state latency should not include.
const WARM_UP: usize = 20;

#[derive(clap::Args, Debug)]
pub struct EchoBenchArgs {
    /// `ws://HOST:PORT/PATH` of the echo server, or of a proxy in front of it.
    #[arg(long)]
    url: String,
    /// Connections, each making its round trips one after another.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Measured round trips per connection.
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// Bytes per (binary) message.
    #[arg(long, default_value_t = 1024)]
    size: usize,
}

#[derive(clap::Args, Debug)]
pub struct HoldArgs {
    /// `ws://HOST:PORT/PATH` to open the connections to.
    #[arg(long)]
    url: String,
    /// How many to open.
    #[arg(long)]
    connections: usize,
    /// How many handshakes may be under way at once.
    #[arg(long, default_value_t = 200)]
    parallel: usize,
}

/// Connects and reads the server's greeting, so that the connection is known to reach the echo server.
async fn open(url: &str) -> anyhow::Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .with_context(|| format!("WebSocket handshake with {url}"))?;
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Text(text)))) if text.as_str().starts_with("hello ") => Ok(ws),
        other => bail!("expected a greeting from {url}, got {other:?}"),
    }
}

pub async fn echo(args: EchoBenchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let clients: Vec<_> =
        (0..args.connections).map(|_| tokio::spawn(round_trips(args.url.clone(), args.messages, args.size))).collect();
    let mut micros = Vec::with_capacity(args.connections * args.messages);
    for client in clients {
        micros.extend(client.await??);
    }
    micros.sort_unstable();
    let at = |q: f64| micros.get(((micros.len() as f64 * q).ceil() as usize).saturating_sub(1)).copied();
    let line = serde_json::json!({
        "connections": args.connections, "messages": args.messages, "size": args.size,
        "round_trips": micros.len(), "seconds": started.elapsed().as_secs_f64(),
        "p50_us": at(0.50), "p90_us": at(0.90), "p99_us": at(0.99), "max_us": micros.last(),
    });
    println!("{line}");
    Ok(())
}

/// `messages` round trips of `size` bytes after the warm-up; the measured ones in µs.
async fn round_trips(url: String, messages: usize, size: usize) -> anyhow::Result<Vec<u64>> {
    let mut ws = open(&url).await?;
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let mut micros = Vec::with_capacity(messages);
    for i in 0..WARM_UP + messages {
        let sent = Instant::now();
        ws.send(Message::Binary(payload.clone())).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Binary(echo)))) if echo.len() == size => break,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                other => bail!("round trip {i}: expected the echo of {size} bytes, got {other:?}"),
            }
        }
        if i >= WARM_UP {
            micros.push(sent.elapsed().as_micros() as u64);
        }
    }
    let _ = ws.close(None).await;
    Ok(micros)
}

pub async fn hold(args: HoldArgs) -> anyhow::Result<()> {
    let opened: Vec<anyhow::Result<Ws>> = futures::stream::iter((0..args.connections).map(|_| open(&args.url)))
        .buffer_unordered(args.parallel.max(1))
        .collect()
        .await;
    let held = opened.into_iter().collect::<anyhow::Result<Vec<Ws>>>()?;
    println!("open {}", held.len());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stdin_closed = tokio::task::spawn_blocking(|| {
        use std::io::Read;
        let mut buf = [0u8; 64];
        while !matches!(std::io::stdin().read(&mut buf), Ok(0) | Err(_)) {}
    });
    tokio::select! {
        _ = stdin_closed => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(held);
    // Not a return: the runtime would wait for the blocking read of stdin, which a signal does not end.
    std::process::exit(0)
}
