//! `holdfast-ws-peer`: a real WebSocket (RFC 6455) server and clients, for the tunnel tests and benchmarks.
//!
//! `serve` is the upstream end of a tunnel: it greets each client with a text message naming itself
//! (`hello ADDR PID`), echoes every message, and answers a text `push N` with N messages it sends unprompted (so a
//! test sees bytes flow towards the client without a request). It prints, one line each: `listening ADDR` first,
//! then `connection N from ADDR`, `sni N NAME` (TLS), `upgrade N {JSON of the request's path and forwarding
//! headers}`, `refused N STATUS` (with `--refuse`), `closed N HOW`, so that a test waits on lines instead of
//! sleeping and checks what the proxy forwarded.
//!
//! `echo-bench` and `hold` are clients for bench/protocols.sh: round-trip latencies over C connections, and N idle
//! connections held open to measure a proxy's memory per tunnel.

// A binary's root resolves modules next to itself, like a `mod.rs`: these paths keep each binary's files in a
// folder of its own.
#[path = "ws_peer/bench.rs"]
mod bench;
#[path = "ws_peer/serve.rs"]
mod serve;

#[path = "peer/self_signed.rs"]
mod self_signed;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(about = "A WebSocket echo server and benchmark clients (for Holdfast's tests and benchmarks)")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve WebSocket: greet, echo, push on request.
    Serve(serve::ServeArgs),
    /// Sequential 1-message round trips on each of C connections; prints percentiles in µs as one JSON line.
    EchoBench(bench::EchoBenchArgs),
    /// Open N WebSockets, print `open N`, keep them idle until stdin closes or a signal comes.
    Hold(bench::HoldArgs),
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // One thread serves the tests' few connections; the benchmark clients get every core so as not to be the
    // bottleneck of what they measure.
    let runtime = match &args.command {
        Command::Serve(_) => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
    };
    runtime.block_on(async {
        match args.command {
            Command::Serve(serve) => serve::run(serve).await,
            Command::EchoBench(bench) => bench::echo(bench).await,
            Command::Hold(hold) => bench::hold(hold).await,
        }
    })
}
