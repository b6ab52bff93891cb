//! `holdfast-ws-peer serve` and `holdfast-grpc-peer` as real child processes, plain or with TLS, that a test can
//! SIGKILL and whose stdout lines it can wait on.

use super::lines::Lines;
use super::upstream::hold_port;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// How long a peer may take to print its address: a cold start of a debug binary on a busy machine.
const START: Duration = Duration::from_secs(20);

pub struct PeerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// Everything it printed: `connection N …`, `upgrade N {…}`, `call N …`, `sni N …`.
    pub lines: Lines,
    /// The CA that signed its certificate, when it serves TLS.
    pub ca_pem: Option<String>,
    /// Its port is held while it is dead (see `UpstreamProcess`).
    placeholder: Option<socket2::Socket>,
    _dir: tempfile::TempDir,
}

/// The name the TLS peers' certificates are made for.
pub const TLS_NAME: &str = "peer.holdfast.test";

impl PeerProcess {
    /// `holdfast-ws-peer serve` with `extra` flags (`--refuse 426`), with TLS for [`TLS_NAME`] when `tls`.
    pub async fn ws(tls: bool, extra: &[&str]) -> Self {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend(extra);
        Self::start(env!("CARGO_BIN_EXE_holdfast-ws-peer"), "ws-peer", &args, tls).await
    }

    /// `holdfast-grpc-peer`, with TLS (ALPN h2) for [`TLS_NAME`] when `tls`.
    pub async fn grpc(tls: bool) -> Self {
        Self::start(env!("CARGO_BIN_EXE_holdfast-grpc-peer"), "grpc-peer", &["--listen", "127.0.0.1:0"], tls).await
    }

    async fn start(binary: &str, source: &'static str, args: &[&str], tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        let mut command = Command::new(binary);
        command.args(args).stdout(Stdio::piped()).kill_on_drop(true);
        if tls {
            command.args(["--tls-self-signed", TLS_NAME, "--write-ca"]).arg(&ca_file);
        }
        let mut child = command.spawn().unwrap_or_else(|e| panic!("start {binary}: {e}"));
        let lines = Lines::follow(child.stdout.take().unwrap(), source, true, |_| {});
        let first = lines.wait_for("listening ", START).await;
        let addr = first["listening ".len()..].parse().expect("an address after `listening`");
        let ca_pem = tls.then(|| std::fs::read_to_string(&ca_file).expect("the peer wrote its CA before listening"));
        PeerProcess { child, addr, lines, ca_pem, placeholder: None, _dir: dir }
    }

    /// SIGKILL, as a node failure or the OOM killer would: no close frame, only what the kernel does for a dead
    /// process's sockets.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL the peer");
        self.child.wait().await.expect("reap the peer");
        self.placeholder = hold_port(self.addr);
    }

    /// The number of connections it has accepted so far.
    pub fn connections(&self) -> usize {
        self.lines.starting_with("connection ").len()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}
