//! The Holdfast processes a test runs on this host: the dataplane and the hash upstream, on ports of their own
//! choosing, read back from what they print (no port is picked by the test, so none can be raced).

use crate::binaries::locate;
use crate::process::Process;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

const START: Duration = Duration::from_secs(30);

/// The dataplane: the process, its client address and its admin address.
pub async fn start_dataplane(extra: &[&std::ffi::OsStr]) -> anyhow::Result<(Process, SocketAddr, SocketAddr)> {
    let bin = locate("holdfast-dataplane", "holdfast-dataplane")?;
    let mut command = Command::new(bin);
    command.args(["--listen", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0", "--admin", "127.0.0.1:0"]);
    command.args(["--log-format", "json", "--shutdown-delay", "0s"]).args(extra).env("RUST_LOG", "info");
    let dataplane = Process::spawn("dataplane", command)?;
    let (listen, admin) = dataplane
        .wait_for_line(START, |line| {
            let log: serde_json::Value = serde_json::from_str(line).ok()?;
            let fields = &log["fields"];
            if fields["message"] != "holdfast dataplane started" {
                return None;
            }
            let addr = |key: &str| fields[key].as_str()?.parse::<SocketAddr>().ok();
            Some((addr("listen")?, addr("admin")?))
        })
        .await?;
    Ok((dataplane, listen, admin))
}

/// A hash upstream on 127.0.0.1 recording complete deliveries in `deliveries`.
pub async fn start_local_upstream(name: &str, deliveries: &std::path::Path) -> anyhow::Result<(Process, SocketAddr)> {
    let bin = locate("holdfast-hash-upstream", "holdfast-dataplane")?;
    let mut command = Command::new(bin);
    command.args(["--listen", "127.0.0.1:0", "--deliveries"]).arg(deliveries);
    let upstream = Process::spawn(name, command)?;
    let addr = upstream.wait_for_line(START, |line| line.strip_prefix("listening ")?.parse().ok()).await?;
    Ok((upstream, addr))
}
