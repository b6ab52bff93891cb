//! The whole standalone pipeline in-process: `--from-dir` files → index → translation → pusher → a test double of
//! the dataplane admin API. Covers edits reaching the dataplane within 1 s, broken files keeping routes, retries,
//! the re-push after a dataplane restart, and the metrics the run serves on its admin listener.

mod support;

use holdfast_controller::drain;
use holdfast_controller::push::{DataplaneClient, PushTiming};
use holdfast_controller::run::{run, Settings, Source};
use holdfast_controller::translate::Config;
use std::path::Path;
use std::time::Duration;
use support::dataplane_double::DataplaneDouble;
use support::scrape::{sample, scrape};

const MANIFESTS: &str = "
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: holdfast}
spec: {controller: holdfast.io/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app, namespace: default}
spec:
  ingressClassName: holdfast
  rules:
    - http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: app, namespace: default}
spec: {ports: [{name: http, port: 80}]}
";

fn slice(port: u16, ready: bool) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: app-1, namespace: default, labels: {{kubernetes.io/service-name: app}}}}\naddressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints: [{{addresses: [127.0.0.1], conditions: {{ready: {ready}}}}}]\n"
    )
}

fn endpoint(snapshot: &holdfast_snapshot::Snapshot) -> Option<(u16, bool)> {
    let e = snapshot.backends.get("default/app:80")?.endpoints.first()?;
    Some((e.port, e.ready))
}

fn write(dir: &Path, name: &str, text: &str) {
    // Write then rename, so a poll never reads a half-written file.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_edits_reach_the_dataplane_and_broken_files_keep_routes() {
    let dataplane = DataplaneDouble::start().await;
    dataplane.refuse_next(2);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "app.yaml", MANIFESTS);
    write(dir.path(), "slice.yaml", &slice(3000, true));
    let (trigger, shutdown) = drain::channel();
    let settings = Settings {
        translate: Config::default(),
        dataplane: DataplaneClient::new(&dataplane.url).unwrap(),
        timing: PushTiming {
            resync: Duration::from_millis(100),
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
        },
        admin: None,
    };
    let controller = tokio::spawn(run(Source::Files(dir.path().to_path_buf()), settings, shutdown));

    // First push: retried past the two refusals.
    let first = dataplane.wait_for(Duration::from_secs(5), |s| endpoint(s) == Some((3000, true))).await;
    let first = first.expect("the first snapshot never reached the dataplane");
    assert_eq!(first.hosts[0].paths[0].target.backend, "default/app:80");

    // An endpoint turning not-ready is out of rotation within 1 s.
    write(dir.path(), "slice.yaml", &slice(3000, false));
    let edited = dataplane.wait_for(Duration::from_secs(1), |s| endpoint(s) == Some((3000, false))).await;
    let edited = edited.expect("the edit did not reach the dataplane within 1 s");
    assert!(edited.version > first.version);

    // A broken file keeps the previous routes: nothing new is pushed and the route stays.
    let pushes = dataplane.accepted_count();
    write(dir.path(), "slice.yaml", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: [oops\n");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(dataplane.accepted_count(), pushes, "a broken file must not change what is pushed");
    assert_eq!(endpoint(&dataplane.in_force().unwrap()), Some((3000, false)));

    // Fixing it is picked up again.
    write(dir.path(), "slice.yaml", &slice(3001, true));
    assert!(dataplane.wait_for(Duration::from_secs(1), |s| endpoint(s) == Some((3001, true))).await.is_some());

    // A restarted dataplane (no snapshot in force) gets the snapshot again without any file change.
    dataplane.restart();
    let again = dataplane.wait_for(Duration::from_secs(2), |s| endpoint(s) == Some((3001, true))).await;
    assert!(again.is_some(), "the controller did not re-push after the dataplane restarted");

    trigger.fire();
    tokio::time::timeout(Duration::from_secs(2), controller).await.unwrap().unwrap().unwrap();
}

/// Scrapes until `series` has a value `until` accepts, for at most 5 s; returns the last scrape.
async fn scrape_until(addr: std::net::SocketAddr, series: &str, until: impl Fn(f64) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = scrape(addr).await;
        if sample(&text, series).is_some_and(&until) || tokio::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_from_files_reports_events_translations_pushes_and_no_leader_on_its_admin_listener() {
    let dataplane = DataplaneDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "app.yaml", MANIFESTS);
    write(dir.path(), "slice.yaml", &slice(3000, true));
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = admin.local_addr().unwrap();
    let (trigger, shutdown) = drain::channel();
    let settings = Settings {
        translate: Config::default(),
        dataplane: DataplaneClient::new(&dataplane.url).unwrap(),
        timing: PushTiming::default(),
        admin: Some(admin),
    };
    let controller = tokio::spawn(run(Source::Files(dir.path().to_path_buf()), settings, shutdown));

    let accepted = "holdfast_controller_pushes_total{outcome=\"Accepted\"}";
    let text = scrape_until(addr, accepted, |n| n >= 1.0).await;
    let pushed = dataplane.in_force().expect("the snapshot reached the dataplane");
    let events = |kind: &str, event: &str| {
        sample(&text, &format!("holdfast_controller_watch_events_total{{kind=\"{kind}\",event=\"{event}\"}}"))
    };
    assert_eq!(events("Ingress", "init_apply"), Some(1.0), "{text}");
    assert_eq!(events("UploadPolicy", "init_done"), Some(1.0), "{text}");
    assert!(sample(&text, "holdfast_controller_translation_seconds_count").is_some_and(|n| n >= 1.0), "{text}");
    let push_seconds = "holdfast_controller_push_seconds_count{outcome=\"Accepted\"}";
    assert_eq!(sample(&text, push_seconds), sample(&text, accepted), "{text}");
    let bytes = serde_json::to_vec(&pushed).unwrap().len() as f64;
    assert_eq!(sample(&text, "holdfast_controller_snapshot_bytes"), Some(bytes), "the PUT body's size: {text}");
    assert_eq!(sample(&text, "holdfast_controller_leader"), Some(0.0), "no election from files: {text}");

    // An edited EndpointSlice is one apply, as the API would have sent it.
    write(dir.path(), "slice.yaml", &slice(3000, false));
    let slice_applied = "holdfast_controller_watch_events_total{kind=\"EndpointSlice\",event=\"apply\"}";
    let text = scrape_until(addr, slice_applied, |n| n >= 1.0).await;
    assert_eq!(sample(&text, slice_applied), Some(1.0), "{text}");

    trigger.fire();
    tokio::time::timeout(Duration::from_secs(2), controller).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn missing_directory_fails_loudly() {
    let (_trigger, shutdown) = drain::channel();
    let settings = Settings {
        translate: Config::default(),
        dataplane: DataplaneClient::new("http://127.0.0.1:9/config").unwrap(),
        timing: PushTiming::default(),
        admin: None,
    };
    let error = run(Source::Files("/nonexistent/holdfast".into()), settings, shutdown).await.unwrap_err();
    assert!(error.to_string().contains("/nonexistent/holdfast"), "{error}");
}
