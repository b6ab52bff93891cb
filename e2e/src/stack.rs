//! The Holdfast processes a test runs on this host: the dataplane, the controller on a directory of objects, and the
//! hash upstream, on ports of their own choosing, read back from what they print (no port is picked by the test,
//! so none can be raced).

use crate::binaries::locate;
use crate::process::Process;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const START: Duration = Duration::from_secs(30);

/// Where a dataplane listens, as it logged at start.
#[derive(Debug, Clone, Copy)]
pub struct DataplaneAddrs {
    /// Clients (HTTP/1.1 and h2c).
    pub listen: SocketAddr,
    /// The admin API (`/config`, `/metrics`, health).
    pub admin: SocketAddr,
    /// The read-only metrics listener, when `--metrics` was given.
    pub metrics: Option<SocketAddr>,
}

/// The dataplane: the process, its client address and its admin address.
pub async fn start_dataplane(extra: &[&OsStr]) -> anyhow::Result<(Process, SocketAddr, SocketAddr)> {
    let (dataplane, addrs) = spawn_dataplane(extra).await?;
    Ok((dataplane, addrs.listen, addrs.admin))
}

/// The dataplane with its read-only metrics listener too (`--metrics`, what Prometheus scrapes in a cluster).
pub async fn start_dataplane_with_metrics(extra: &[&OsStr]) -> anyhow::Result<(Process, DataplaneAddrs)> {
    let mut args = vec![OsStr::new("--metrics"), OsStr::new("127.0.0.1:0")];
    args.extend(extra);
    let (dataplane, addrs) = spawn_dataplane(&args).await?;
    anyhow::ensure!(addrs.metrics.is_some(), "the dataplane did not log its --metrics address");
    Ok((dataplane, addrs))
}

async fn spawn_dataplane(extra: &[&OsStr]) -> anyhow::Result<(Process, DataplaneAddrs)> {
    let bin = locate("holdfast-dataplane", "holdfast-dataplane")?;
    let mut command = Command::new(bin);
    command.args(["--listen", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0", "--admin", "127.0.0.1:0"]);
    command.args(["--log-format", "json", "--shutdown-delay", "0s"]).args(extra).env("RUST_LOG", "info");
    let dataplane = Process::spawn("dataplane", command)?;
    let addrs = dataplane
        .wait_for_line(START, |line| {
            let fields = json_fields(line, "holdfast dataplane started")?;
            let addr = |key: &str| fields[key].as_str()?.parse::<SocketAddr>().ok();
            // `metrics` is "off" without the flag.
            Some(DataplaneAddrs { listen: addr("listen")?, admin: addr("admin")?, metrics: addr("metrics") })
        })
        .await?;
    Ok((dataplane, addrs))
}

/// The controller reading the objects in `dir` (`--from-dir`) and pushing to the dataplane whose admin API is at
/// `dataplane_admin`: the process and the address of its own admin listener (`/metrics`, health).
pub async fn start_controller_from_dir(
    dir: &Path,
    dataplane_admin: SocketAddr,
) -> anyhow::Result<(Process, SocketAddr)> {
    let bin = locate("holdfast-controller", "holdfast-controller")?;
    let mut command = Command::new(bin);
    command.arg("--from-dir").arg(dir).args(["--admin", "127.0.0.1:0", "--log-format", "json"]);
    command.arg("--dataplane-url").arg(format!("http://{dataplane_admin}/config")).env("RUST_LOG", "info");
    let controller = Process::spawn("controller", command)?;
    let admin = controller
        .wait_for_line(START, |line| json_fields(line, "Starting holdfast-controller")?["admin"].as_str()?.parse().ok())
        .await?;
    Ok((controller, admin))
}

/// The fields of a JSON log line whose message is `message`.
fn json_fields(line: &str, message: &str) -> Option<serde_json::Value> {
    let mut log: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = log.get_mut("fields")?.take();
    (fields["message"] == message).then_some(fields)
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
