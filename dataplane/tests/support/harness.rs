//! A dataplane to test against: in-process on 127.0.0.1:0, or the real binary.

pub use holdfast_dataplane::access_log::{Destination as AccessLogDestination, Settings as AccessLogSettings};
use holdfast_dataplane::server::{Lingering, ServeOptions};
use holdfast_dataplane::{admin, server, Dataplane, Settings};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub struct Harness {
    pub dp: Arc<Dataplane>,
    pub addr: SocketAddr,
    pub tls_addr: SocketAddr,
    pub admin: SocketAddr,
    pub spool: tempfile::TempDir,
    stop: watch::Sender<bool>,
}

impl Harness {
    /// A dataplane with `snapshot` in force (if given) and a spool quota (0: unlimited).
    pub async fn start(snapshot: Option<&str>, quota: u64) -> Self {
        Self::start_with(snapshot, quota, 1000).await
    }

    /// As [`Harness::start`], closing HTTP/1 connections after `max_requests` requests.
    pub async fn start_with(snapshot: Option<&str>, quota: u64, max_requests: u32) -> Self {
        Self::start_inner(snapshot, quota, max_requests, Duration::from_secs(10)).await
    }

    /// As [`Harness::start`], with another header read timeout.
    pub async fn start_with_header_timeout(snapshot: Option<&str>, header_read_timeout: Duration) -> Self {
        Self::start_inner(snapshot, 0, 1000, header_read_timeout).await
    }

    /// As [`Harness::start`], with the access log set up as given.
    pub async fn start_with_access_log(snapshot: Option<&str>, access_log: AccessLogSettings) -> Self {
        Self::start_full(snapshot, 0, 1000, Duration::from_secs(10), access_log).await
    }

    async fn start_inner(snapshot: Option<&str>, quota: u64, max_requests: u32, header_read_timeout: Duration) -> Self {
        Self::start_full(snapshot, quota, max_requests, header_read_timeout, AccessLogSettings::default()).await
    }

    async fn start_full(
        snapshot: Option<&str>,
        quota: u64,
        max_requests: u32,
        header_read_timeout: Duration,
        access_log: AccessLogSettings,
    ) -> Self {
        let spool = tempfile::tempdir().unwrap();
        let settings = Settings {
            spool_dir: spool.path().to_path_buf(),
            spool_quota: quota,
            upstream_idle_timeout: Duration::from_secs(4),
            default_certificate: None,
            access_log,
            route_metrics: true,
            instance: "test".to_string(),
        };
        let dp = Dataplane::new(&settings).unwrap();
        if let Some(json) = snapshot {
            dp.apply(&holdfast_snapshot::Snapshot::from_json(json.as_bytes()).unwrap()).unwrap();
        }
        // As the binary does; tests that need a sweep call `holdfast_dataplane::tus::sweep` themselves.
        holdfast_dataplane::tus::start(&dp, Duration::from_secs(3600)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls_addr = tls_listener.local_addr().unwrap();
        let (addr, admin) = (listener.local_addr().unwrap(), admin_listener.local_addr().unwrap());
        let (stop, rx) = watch::channel(false);
        let wait = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let options = ServeOptions {
            header_read_timeout,
            drain_timeout: Duration::from_secs(5),
            lingering: Lingering { timeout: Duration::from_secs(5), max_bytes: 256 << 20 },
            max_requests_per_connection: max_requests,
            http2: Default::default(),
            // On, so that every test also runs connections handed over from the worker that accepted them (the
            // binary's default, off, serves each where it was accepted; the workers' unit tests cover it).
            balance_connections: true,
            // The binary's default: bodies of 8 MiB or more are read past hyper.
            direct_body_min_bytes: 8 << 20,
            max_target_bytes: holdfast_dataplane::route::MAX_TARGET_BYTES,
        };
        // The same worker threads as the binary, two of them, so that connections land on different runtimes.
        let listeners =
            server::Listeners { plain: listener.into_std().unwrap(), tls: tls_listener.into_std().unwrap() };
        let worker_rx = rx.clone();
        server::Workers::start(2, listeners, dp.clone(), options, move || wait(worker_rx.clone())).unwrap();
        tokio::spawn(admin::serve(admin_listener, dp.clone(), admin::Access::Full, wait(rx)));
        Harness { dp, addr, tls_addr, admin, spool, stop }
    }

    /// Asserts that no request holds a spool file any more and that nothing is left in the spool directory.
    pub async fn assert_spool_clean(&self) {
        // Spools are dropped when their request's tasks finish, which may be a moment after the response.
        for _ in 0..100 {
            if self.dp.metrics.spool_files.get() == 0 && self.dp.spool.quota.used() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(self.dp.metrics.spool_files.get(), 0, "spool files still open");
        assert_eq!(self.dp.metrics.spool_bytes.get(), 0, "spool bytes still held");
        assert_eq!(self.dp.spool.quota.used(), 0, "spool quota still reserved");
        assert_dir_empty(self.spool.path());
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

pub fn assert_dir_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "spool directory not empty: {left:?}");
}

/// A snapshot routing everything to one backend with the given endpoints and policy JSON.
pub fn snapshot(version: u64, endpoints: &[SocketAddr], policy: &str) -> String {
    let endpoints: Vec<String> =
        endpoints.iter().map(|a| format!(r#"{{"address":"{}","port":{}}}"#, a.ip(), a.port())).collect();
    format!(
        r#"{{"version":{version},"hosts":[{{"host":"","paths":[{{"path":"/","pathType":"Prefix","backend":"b","policy":"p"}}]}}],
            "backends":{{"b":{{"endpoints":[{}]}}}},"policies":{{"p":{policy}}}}}"#,
        endpoints.join(",")
    )
}

/// PUTs a snapshot to the admin listener; returns the status and body.
pub async fn push(admin: SocketAddr, json: &str) -> (u16, String) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(admin).await.unwrap();
    let request = format!(
        "PUT /config HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, _, body) = super::client::read_response(&mut stream).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// GETs a path on a listener; returns the status and body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: upload.test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, _, body) = super::client::read_response(&mut stream).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The real `holdfast-dataplane` binary.
pub struct DataplaneProcess {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    pub tls_addr: SocketAddr,
    pub admin: SocketAddr,
    /// The `--metrics` listener, when one was asked for.
    pub metrics: Option<SocketAddr>,
    /// Its log (JSON lines, `--log-format json`), kept for assertions and echoed for failing tests.
    pub log: super::lines::Lines,
}

impl DataplaneProcess {
    /// Starts the binary on ports of its own choosing with a snapshot file, and reads the bound addresses from its
    /// start-up log line (no port is picked by the test, so none can be raced).
    pub async fn start(spool_dir: &Path, snapshot_file: &Path, extra: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_holdfast-dataplane"))
            .args(["--listen", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(["--log-format", "json", "--spool-dir"])
            .arg(spool_dir)
            .arg("--config-file")
            .arg(snapshot_file)
            .args(extra)
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start holdfast-dataplane");
        let log = super::lines::Lines::follow(child.stderr.take().unwrap(), "dataplane", true, |_| {});
        let started =
            log.wait_for_nth(1, Duration::from_secs(30), |line| log_message(line) == "holdfast dataplane started");
        let fields = serde_json::from_str::<serde_json::Value>(&started.await).unwrap()["fields"].clone();
        let parse = |key: &str| fields[key].as_str().unwrap().parse::<SocketAddr>().unwrap();
        let metrics = fields["metrics"].as_str().and_then(|m| m.parse().ok());
        DataplaneProcess {
            child,
            addr: parse("listen"),
            tls_addr: parse("listen_tls"),
            admin: parse("admin"),
            metrics,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

/// The `message` of one JSON log line; empty for anything else.
pub fn log_message(line: &str) -> String {
    let parsed = serde_json::from_str::<serde_json::Value>(line).unwrap_or_default();
    parsed["fields"]["message"].as_str().unwrap_or_default().to_string()
}
