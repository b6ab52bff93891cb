//! The real dataplane, in-process and serving as `holdfast-dataplane` does: its worker threads on a client listener,
//! its admin API on another, both on `127.0.0.1:0`, nothing in force until a controller pushes. For what a
//! controller does to a dataplane that is serving traffic; [`super::dataplane_double`] records what is sent.

use holdfast_dataplane::server::{Lingering, Listeners, ServeOptions, Workers};
use holdfast_dataplane::{access_log, admin, Dataplane, Settings};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A running dataplane; dropping it stops its workers and its admin listener.
pub struct RealDataplane {
    pub dp: Arc<Dataplane>,
    /// Clients (HTTP/1.1 and h2c).
    pub listen: SocketAddr,
    /// The admin API (`/config`, `/metrics`).
    pub admin: SocketAddr,
    _spool: tempfile::TempDir,
    stop: watch::Sender<bool>,
}

impl RealDataplane {
    /// Starts it on the calling runtime (the admin API) and two worker threads of its own (clients), as the binary
    /// runs them; no access log and no per-route metrics, which thousands of routes would only slow down.
    pub async fn start() -> Self {
        let spool = tempfile::tempdir().unwrap();
        let settings = Settings {
            spool_dir: spool.path().to_path_buf(),
            spool_quota: 0,
            upstream_idle_timeout: Duration::from_secs(10),
            default_certificate: None,
            access_log: access_log::Settings { destination: access_log::Destination::Off, ..Default::default() },
            route_metrics: false,
            instance: "dataplane-0".to_string(),
        };
        let dp = Dataplane::new(&settings).unwrap();
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tls = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (listen, admin) = (plain.local_addr().unwrap(), admin_listener.local_addr().unwrap());
        let (stop, stopped) = watch::channel(false);
        let wait = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let options = ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
            lingering: Lingering { timeout: Duration::from_secs(5), max_bytes: 1 << 20 },
            max_requests_per_connection: 0,
            http2: Default::default(),
            balance_connections: false,
            direct_body_min_bytes: 8 << 20,
            max_target_bytes: holdfast_dataplane::route::MAX_TARGET_BYTES,
        };
        let worker_stop = stopped.clone();
        Workers::start(2, Listeners { plain, tls }, dp.clone(), options, move || wait(worker_stop.clone())).unwrap();
        tokio::spawn(admin::serve(admin_listener, dp.clone(), admin::Access::Full, wait(stopped)));
        RealDataplane { dp, listen, admin, _spool: spool, stop }
    }

    /// The URL a controller pushes to.
    pub fn config_url(&self) -> String {
        format!("http://{}/config", self.admin)
    }
}

impl Drop for RealDataplane {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
