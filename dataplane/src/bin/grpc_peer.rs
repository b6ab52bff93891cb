//! `holdfast-grpc-peer`: a real gRPC server over HTTP/2 (h2c with prior knowledge, or TLS with ALPN h2), for the
//! tests and benchmarks of HTTP/2 upstreams.
//!
//! Built on hyper's HTTP/2 server with the gRPC wire format written by hand (5-byte length-prefixed messages,
//! `grpc-status` / `grpc-message` / `grpc-status-details-bin` trailers, trailers-only responses for errors): messages
//! are opaque bytes, so no protoc and no prost. Service `holdfast.test.Echo`:
//!
//! - `Unary`: answers with the request's message.
//! - `ServerStream`: answers with N copies of it, N from the metadata `x-repeat` (default 3).
//! - `ClientStream`: answers once, after the client's last message, with their concatenation (`x-count` says how
//!   many there were).
//! - `Bidi`: echoes each message as it arrives, before the client's stream ends.
//! - `Fail`: status 7 (PERMISSION_DENIED) with a message that needs percent-encoding and binary details.
//!
//! Any call with the metadata `x-hang: N` never answers while the `x-holdfast-attempt` it carries is N or less (a
//! request without one is attempt 1): a test SIGKILLs the peer mid-call, and the replay, numbered N+1, is answered.
//! Every answer carries, in its headers and again in its trailers, `x-peer` (this peer's address) and `x-attempt`
//! (the attempt it saw). A request that is not gRPC (HTTP/2 or HTTP/1.1) gets the HTTP echo of `http_echo`.
//!
//! Prints `listening ADDR` first, then `connection N from ADDR`, `sni N NAME` (TLS), `call N PATH attempt=A
//! request-id=ID` for every request (unless `--quiet`) and `hanging N PATH` for a call it will not answer.

// A binary's root resolves modules next to itself, like a `mod.rs`: these paths keep each binary's files in a
// folder of its own.
#[path = "grpc_peer/echo.rs"]
mod echo;
#[path = "grpc_peer/http_echo.rs"]
mod http_echo;
#[path = "grpc_peer/wire.rs"]
mod wire;

#[path = "peer/self_signed.rs"]
mod self_signed;

use bytes::Bytes;
use clap::Parser;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

/// Every response body: a few frames made up front, or a channel written as the request's messages arrive.
type Body = BoxBody<Bytes, Infallible>;

#[derive(Parser, Debug)]
#[command(about = "A gRPC echo server over HTTP/2 (for Holdfast's tests and benchmarks)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// No `call` line per request: for benchmarks, where a write per call would cost the peer more than the call.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    tls: self_signed::TlsArgs,
}

/// What every connection needs to know about this process.
struct Peer {
    /// Its listening address, which names it in `x-peer`.
    address: String,
    quiet: bool,
}

/// What one request saw of the proxy, and who answers it.
#[derive(Debug, Clone)]
struct Seen {
    peer: String,
    attempt: u32,
    request_id: String,
}

impl Seen {
    fn of(peer: &str, request: &http::Request<Incoming>) -> Seen {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        Seen {
            peer: peer.to_string(),
            attempt: header("x-holdfast-attempt").and_then(|a| a.parse().ok()).unwrap_or(1),
            request_id: header("x-request-id").unwrap_or("").to_string(),
        }
    }

    /// `x-peer` and `x-attempt`, for the response's headers and its trailers.
    fn fields(&self) -> http::HeaderMap {
        let mut fields = http::HeaderMap::new();
        fields.insert("x-peer", self.peer.parse().expect("an address is a valid header value"));
        fields.insert("x-attempt", self.attempt.into());
        fields
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // One thread, like the other peers: tests run several at once on two cores.
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let tls = args.tls.server_config(&[b"h2"])?.map(tokio_rustls::TlsAcceptor::from);
    let listener = TcpListener::bind(args.listen).await?;
    let address = listener.local_addr()?;
    println!("listening {address}");
    let peer = Arc::new(Peer { address: address.to_string(), quiet: args.quiet });
    let mut count = 0u64;
    loop {
        let (stream, from) = listener.accept().await?;
        count += 1;
        println!("connection {count} from {from}");
        let _ = stream.set_nodelay(true);
        let (peer, tls) = (peer.clone(), tls.clone());
        tokio::spawn(async move {
            let Some(tls) = tls else { return serve(peer, stream, count).await };
            match tls.accept(stream).await {
                Ok(stream) => {
                    println!("sni {count} {}", self_signed::sni_of(stream.get_ref().1));
                    serve(peer, stream, count).await
                }
                Err(error) => println!("tls handshake failed {count}: {error}"),
            }
        });
    }
}

async fn serve(peer: Arc<Peer>, stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static, connection: u64) {
    let service = hyper::service::service_fn(move |request| {
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(handle(&peer, connection, request).await) }
    });
    // HTTP/1.1 too (told apart by the h2 preface), so that a plain client can check the HTTP echo directly; gRPC
    // clients and proxies speak h2c with prior knowledge.
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(peer: &Peer, connection: u64, request: http::Request<Incoming>) -> http::Response<Body> {
    let seen = Seen::of(&peer.address, &request);
    let path = request.uri().path().to_string();
    if !peer.quiet {
        println!("call {connection} {path} attempt={} request-id={}", seen.attempt, seen.request_id);
    }
    let grpc = request.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !grpc {
        return http_echo::answer(seen, request).await;
    }
    let hang_through: Option<u32> =
        request.headers().get("x-hang").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if hang_through.is_some_and(|last| seen.attempt <= last) {
        println!("hanging {connection} {path}");
        std::future::pending::<()>().await;
    }
    echo::answer(seen, &path, request).await
}
