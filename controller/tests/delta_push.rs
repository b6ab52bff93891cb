//! The pusher against the real dataplane, in-process: endpoint changes travel as deltas, a delta the dataplane
//! refuses (someone else pushed, or it restarted) is followed by the full snapshot, and a dataplane restarted in the
//! middle of a stream of deltas is resynchronised. The dataplane's admin API is served from one listener of the
//! test's, so that a "restart" (a fresh dataplane with nothing in force) keeps the address the pusher knows.

use holdfast_controller::drain;
use holdfast_controller::metrics::{PushKind, PushKindLabels, PushMetrics};
use holdfast_controller::push::{DataplaneClient, PushTiming, Pusher};
use holdfast_controller::translate::{Report, Translation};
use holdfast_dataplane::admin::{serve_connection, Access};
use holdfast_dataplane::{Dataplane, Settings};
use holdfast_snapshot::Snapshot;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// A dataplane behind a fixed admin address, which can be replaced by a fresh one.
struct Admin {
    url: String,
    current: Arc<Mutex<Arc<Dataplane>>>,
    spool: tempfile::TempDir,
}

impl Admin {
    async fn start() -> Self {
        let spool = tempfile::tempdir().unwrap();
        let current = Arc::new(Mutex::new(fresh(spool.path())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let serving = current.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let dp = serving.lock().unwrap().clone();
                tokio::spawn(serve_connection(stream, dp, Access::Full));
            }
        });
        Admin { url, current, spool }
    }

    fn dp(&self) -> Arc<Dataplane> {
        self.current.lock().unwrap().clone()
    }

    /// A new dataplane process, as far as the admin API can tell: nothing in force.
    fn restart(&self) {
        *self.current.lock().unwrap() = fresh(self.spool.path());
    }

    /// Waits (up to 10 s, polling every 5 ms) until backend `a` of the dataplane in force is at `port` and both
    /// hosts route; returns the version in force.
    async fn wait_for_port(&self, port: u16) -> u64 {
        for _ in 0..2000 {
            let active = self.dp().config.current();
            let at = active.backends.get("a").map(|b| b.addresses().map(|a| a.port()).collect::<Vec<_>>());
            let routed = ["a.example", "b.example"].iter().all(|h| active.routes.find(h, "/").is_some());
            if at == Some(vec![port]) && routed {
                return active.version.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("backend a never reached port {port}");
    }
}

fn fresh(spool: &std::path::Path) -> Arc<Dataplane> {
    let settings = Settings {
        spool_dir: spool.to_path_buf(),
        spool_quota: 0,
        upstream_idle_timeout: Duration::from_secs(10),
        default_certificate: None,
        access_log: Default::default(),
        route_metrics: true,
        instance: "dataplane-0".to_string(),
    };
    Dataplane::new(&settings).unwrap()
}

/// Two hosts, each with its backend; backend `a`'s one endpoint at `port`.
fn translation(port: u16) -> Option<Arc<Translation>> {
    let json = format!(
        r#"{{"version": 0,
            "hosts": [{{"host": "a.example", "paths": [{{"path": "/", "pathType": "Prefix", "backend": "a"}}]}},
                      {{"host": "b.example", "paths": [{{"path": "/", "pathType": "Prefix", "backend": "b"}}]}}],
            "backends": {{"a": {{"endpoints": [{{"address": "127.0.0.1", "port": {port}}}]}},
                         "b": {{"endpoints": [{{"address": "127.0.0.2", "port": 80}}]}}}}}}"#
    );
    let snapshot = Snapshot::from_json(json.as_bytes()).unwrap();
    Some(Arc::new(Translation { snapshot, report: Report::default().into() }))
}

fn timing() -> PushTiming {
    PushTiming {
        resync: Duration::from_millis(50),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
}

fn count(metrics: &PushMetrics, kind: PushKind) -> (u64, u64) {
    let labels = PushKindLabels { kind };
    (metrics.requests.get_or_create(&labels).get(), metrics.bytes.get_or_create(&labels).get())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_changes_go_as_deltas_and_a_refused_delta_is_replaced_by_the_full_snapshot() {
    let admin = Admin::start().await;
    let (tx, rx) = watch::channel(translation(1000));
    let (trigger, shutdown) = drain::channel();
    let pusher = Pusher::new(DataplaneClient::new(&admin.url).unwrap(), timing());
    let metrics = pusher.metrics.clone();
    let task = tokio::spawn(pusher.run(rx, shutdown));

    assert_eq!(admin.wait_for_port(1000).await, 1);
    tx.send_replace(translation(1001));
    assert_eq!(admin.wait_for_port(1001).await, 2);
    let ((fulls, full_bytes), (deltas, delta_bytes)) =
        (count(&metrics, PushKind::full), count(&metrics, PushKind::delta));
    assert_eq!((fulls, deltas), (1, 1), "the endpoint change must travel as a delta");
    assert!(
        delta_bytes < full_bytes,
        "a delta of one backend ({delta_bytes} B) must be smaller than the snapshot ({full_bytes} B)"
    );

    // Someone else pushes: the next delta's base is not in force any more.
    let mut theirs = translation(1001).unwrap().snapshot.clone();
    theirs.version = 100;
    admin.dp().apply(&theirs).unwrap();
    tx.send_replace(translation(1002));
    assert_eq!(admin.wait_for_port(1002).await, 101, "the full snapshot outnumbers the version in force");
    assert_eq!(metrics.delta_fallbacks.get(), 1);
    assert_eq!(count(&metrics, PushKind::full).0, 2);
    tx.send_replace(translation(1003));
    assert_eq!(admin.wait_for_port(1003).await, 102);
    assert_eq!(count(&metrics, PushKind::delta).0, 3, "deltas resume once the full snapshot is in force");

    trigger.fire();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataplane_restarted_in_a_stream_of_deltas_is_resynchronised() {
    let admin = Admin::start().await;
    let (tx, rx) = watch::channel(translation(2000));
    let (trigger, shutdown) = drain::channel();
    let pusher = Pusher::new(DataplaneClient::new(&admin.url).unwrap(), timing());
    let metrics = pusher.metrics.clone();
    let task = tokio::spawn(pusher.run(rx, shutdown));
    admin.wait_for_port(2000).await;

    for port in 2001..2021 {
        if port == 2011 {
            admin.restart();
        }
        tx.send_replace(translation(port));
        // Every host routes and backend `a` is at the latest port, on the restarted dataplane too.
        admin.wait_for_port(port).await;
    }
    let (fulls, deltas) = (count(&metrics, PushKind::full).0, count(&metrics, PushKind::delta).0);
    assert_eq!(fulls, 2, "one full snapshot at start, one after the restart");
    assert!(deltas >= 18, "the other changes travel as deltas ({deltas})");
    trigger.fire();
    task.await.unwrap();
}
