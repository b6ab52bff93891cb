//! `holdfast-hash-upstream`: a real upstream for tests, demos and benchmarks.
//!
//! It answers every POST/PUT/PATCH by hashing the body as it arrives and replying with JSON
//! `{"bytes":N,"sha256":"…","requestId":"…","attempt":N,"contentLength":N,"chunked":false}`; every other method gets a small `ok`. Each body that
//! arrived complete is appended as one JSON line to `--deliveries`, so a test can count complete deliveries across
//! restarts of this process. `--progress` prints `progress BYTES` after every MiB so that a test can kill the process
//! at a chosen point of a delivery; `--read-rate` slows the reading so that the point can be hit reliably.
//! `--tls-self-signed NAME --write-ca FILE` serves HTTPS (HTTP/1.1 or h2 by ALPN) with a certificate for NAME from a
//! CA made at start, and prints `sni NAME` (or `sni none`) for each handshake, or `tls handshake failed: …`, so
//! that a test can check what a TLS client sent and that a refused one never got to send a request.

#[path = "peer/self_signed.rs"]
mod self_signed;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

#[derive(Parser, Debug)]
#[command(about = "An upstream that hashes request bodies (for Holdfast's tests, demos and benchmarks)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Append one JSON line per complete body to this file.
    #[arg(long)]
    deliveries: Option<PathBuf>,
    /// Print `progress BYTES` on stdout after each `--progress-step` bytes of a body.
    #[arg(long)]
    progress: bool,
    /// Bytes between two `progress` lines (1 reports every read).
    #[arg(long, default_value_t = 1 << 20)]
    progress_step: u64,
    /// Read bodies at most this fast (bytes per second); 0 means as fast as they come.
    #[arg(long, default_value_t = 0)]
    read_rate: u64,
    /// Answer with this status instead of 200 (the body still says what was received).
    #[arg(long, default_value_t = 200)]
    status: u16,
    /// Answer 413 with `Connection: close` after reading this many body bytes, without reading the rest (an early
    /// response, as from an upstream with its own body limit). Rejections are logged to `--deliveries` too.
    #[arg(long)]
    reject_after: Option<u64>,
    /// Print `connection` on stdout for each connection accepted, so that a test can tell that a request never
    /// reached this upstream (not only that no body completed).
    #[arg(long)]
    log_connections: bool,
    /// Also record these request fields (comma-separated names) in the answer and the delivery line, as
    /// `"headers": {name: value}` (what a delivery of a resumable upload carried, for its tests).
    #[arg(long, value_delimiter = ',')]
    record_headers: Vec<String>,
    #[command(flatten)]
    tls: self_signed::TlsArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let tls = args.tls.server_config(&[b"h2", b"http/1.1"])?.map(tokio_rustls::TlsAcceptor::from);
    let listener = TcpListener::bind(args.listen).await?;
    println!("listening {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        if args.log_connections {
            println!("connection");
        }
        let args = args.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(tls) = tls else { return serve(args, stream).await };
            match tls.accept(stream).await {
                Ok(stream) => {
                    println!("sni {}", self_signed::sni_of(stream.get_ref().1));
                    serve(args, stream).await
                }
                Err(error) => println!("tls handshake failed: {error}"),
            }
        });
    }
}

async fn serve(args: Arc<Args>, stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static) {
    let service = hyper::service::service_fn(move |req| handle(args.clone(), req));
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(args: Arc<Args>, req: Request<Incoming>) -> anyhow::Result<Response<Full<Bytes>>> {
    if !matches!(req.method().as_str(), "POST" | "PUT" | "PATCH") {
        return Ok(Response::new(Full::new(Bytes::from_static(b"ok\n"))));
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (request_id, attempt) = (header("x-request-id"), header("x-holdfast-attempt"));
    let (content_length, chunked) = (header("content-length"), header("transfer-encoding") == "chunked");
    let attempt: u32 = attempt.parse().unwrap_or(1);
    let recorded: serde_json::Map<String, serde_json::Value> =
        args.record_headers.iter().map(|name| (name.to_ascii_lowercase(), header(name).into())).collect();
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str()).to_string();
    let method = req.method().to_string();
    let mut body = req.into_body();
    let (mut hasher, mut bytes, mut next_report) = (Sha256::new(), 0u64, 1u64 << 20);
    let started = Instant::now();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        hasher.update(&data);
        bytes += data.len() as u64;
        if args.reject_after.is_some_and(|limit| bytes >= limit) {
            return reject(&args, bytes, &request_id, attempt);
        }
        if args.progress && bytes >= next_report {
            println!("progress {bytes}");
            std::io::stdout().flush()?;
            next_report = bytes + args.progress_step.max(1);
        }
        if args.read_rate > 0 {
            let due = Duration::from_secs_f64(bytes as f64 / args.read_rate as f64);
            tokio::time::sleep_until((started + due).into()).await;
        }
    }
    let sha256 = hex(&hasher.finalize());
    let mut line = serde_json::json!({
        "bytes": bytes, "sha256": sha256, "requestId": request_id, "attempt": attempt,
        "contentLength": content_length.parse::<u64>().ok(), "chunked": chunked,
    });
    if !recorded.is_empty() {
        line["headers"] = recorded.into();
        line["method"] = method.into();
        line["target"] = target.into();
    }
    if let Some(path) = &args.deliveries {
        append_line(path, &line)?;
    }
    let mut response = Response::new(Full::new(Bytes::from(line.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(args.status)?;
    response.headers_mut().insert("content-type", "application/json".parse()?);
    Ok(response)
}

fn reject(args: &Args, bytes: u64, request_id: &str, attempt: u32) -> anyhow::Result<Response<Full<Bytes>>> {
    let line = serde_json::json!({"rejected": true, "bytes": bytes, "requestId": request_id, "attempt": attempt});
    if let Some(path) = &args.deliveries {
        append_line(path, &line)?;
    }
    let mut response = Response::new(Full::new(Bytes::from_static(b"too large for this upstream\n")));
    *response.status_mut() = hyper::StatusCode::PAYLOAD_TOO_LARGE;
    response.headers_mut().insert("connection", "close".parse()?);
    Ok(response)
}

/// Appends one JSON line to the deliveries file in ONE `write`: `writeln!` on a `File` writes a JSON value in pieces,
/// and deliveries that finish at the same moment (concurrent uploads) then interleave inside each other's lines.
/// With `O_APPEND`, a single write lands whole at the end.
fn append_line(path: &std::path::Path, line: &serde_json::Value) -> std::io::Result<()> {
    let text = format!("{line}\n");
    std::fs::OpenOptions::new().create(true).append(true).open(path)?.write_all(text.as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
