//! `holdfast-hash-upstream` as a real child process, plain or serving TLS.

use super::lines::Lines;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use tokio::process::{Child, Command};
use tokio::sync::watch;

pub struct UpstreamProcess {
    child: Child,
    pub addr: SocketAddr,
    /// Bytes of the body being received now, from the process's `progress` lines.
    progress: watch::Receiver<u64>,
    deliveries: PathBuf,
    extra: Vec<String>,
    /// While the process is dead, its port stays bound (not listening: connections are refused, as to a dead pod),
    /// so that a listener started meanwhile — another test's, under load — cannot be given it and answer in its place.
    placeholder: Option<socket2::Socket>,
    /// Everything it printed (`progress …`, and `sni …` / `tls handshake failed: …` when it serves TLS).
    pub lines: Lines,
    /// The CA of its certificate, when started with [`UpstreamProcess::start_tls`].
    pub ca_pem: Option<String>,
}

impl UpstreamProcess {
    /// Starts an upstream on `addr` (port 0 for any), appending complete deliveries to `deliveries`.
    pub async fn start(addr: &str, deliveries: &Path, extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut child = Command::new(env!("CARGO_BIN_EXE_holdfast-hash-upstream"))
            .args(["--listen", addr, "--progress", "--deliveries"])
            .arg(deliveries)
            .args(&extra)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start holdfast-hash-upstream");
        let (tx, progress) = watch::channel(0u64);
        let tx = Arc::new(tx);
        let lines = Lines::follow(child.stdout.take().unwrap(), "hash-upstream", false, move |line| {
            if let Some(n) = line.strip_prefix("progress ") {
                tx.send_replace(n.parse().unwrap_or(0));
            }
        });
        let first = lines.wait_for("listening ", std::time::Duration::from_secs(20)).await;
        let addr: SocketAddr = first.strip_prefix("listening ").expect("listening line").parse().unwrap();
        let ca_file = extra.iter().position(|a| a == "--write-ca").and_then(|i| extra.get(i + 1));
        let ca_pem = ca_file.map(|file| std::fs::read_to_string(file).expect("the upstream wrote its CA"));
        let deliveries = deliveries.to_path_buf();
        UpstreamProcess { child, addr, progress, deliveries, extra, placeholder: None, lines, ca_pem }
    }

    /// As [`UpstreamProcess::start`], serving TLS with a certificate for `name` from a CA of its own, written next
    /// to `deliveries` and kept in [`UpstreamProcess::ca_pem`].
    pub async fn start_tls(addr: &str, deliveries: &Path, name: &str, extra: &[&str]) -> Self {
        let ca_file = deliveries.with_extension("ca.pem");
        let ca_file = ca_file.to_str().expect("a UTF-8 temp path");
        let mut args = vec!["--tls-self-signed", name, "--write-ca", ca_file];
        args.extend(extra);
        Self::start(addr, deliveries, &args).await
    }

    /// Waits until the body being received has reached `bytes`.
    pub async fn wait_for_progress(&mut self, bytes: u64) {
        self.progress.wait_for(|&n| n >= bytes).await.expect("upstream exited before the expected progress");
    }

    /// SIGKILL, as the kubelet does to a pod past its grace period or the OOM killer does.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL the upstream");
        self.child.wait().await.expect("reap the upstream");
        self.placeholder = hold_port(self.addr);
    }

    /// A new process on the same address, as a restarted pod with a stable IP.
    pub async fn restart(&mut self) {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.placeholder = None;
        let again = UpstreamProcess::start(&self.addr.to_string(), &self.deliveries, &extra).await;
        *self = again;
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

/// Binds `addr` without listening. Best effort: if the port cannot be held, the test runs as it would have.
pub fn hold_port(addr: SocketAddr) -> Option<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).ok()?;
    socket.set_reuse_address(true).ok()?;
    socket.bind(&addr.into()).ok()?;
    Some(socket)
}

/// The complete bodies recorded in a deliveries file.
pub fn deliveries(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON delivery line"))
        .collect()
}
