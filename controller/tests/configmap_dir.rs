//! `--from-dir` on a ConfigMap volume as the kubelet lays it out: each file a link through `..data` to a
//! timestamped directory, and an update a new directory and `..data` renamed over, with no event naming any file.

mod support;

use holdfast_controller::drain;
use holdfast_controller::push::{DataplaneClient, PushTiming};
use holdfast_controller::run::{run, Settings, Source};
use holdfast_controller::translate::Config;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;
use support::dataplane_double::DataplaneDouble;

const APP: &str = "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: holdfast}
spec: {controller: holdfast.io/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app, namespace: default}
spec:
  ingressClassName: holdfast
  rules: [{host: app.test, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}]}}]
---
apiVersion: v1
kind: Service
metadata: {name: app, namespace: default}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: app-1, namespace: default, labels: {kubernetes.io/service-name: app}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [ADDRESS]}]
";

/// A new timestamped directory holding `app.yaml`, then `..data` pointed at it the kubelet's way.
fn publish(dir: &Path, version: &str, address: &str) {
    let data = dir.join(format!("..{version}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("app.yaml"), APP.replace("ADDRESS", address)).unwrap();
    symlink(format!("..{version}"), dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
}

fn address(snapshot: &holdfast_snapshot::Snapshot) -> Option<String> {
    Some(snapshot.backends.get("default/app:80")?.endpoints.first()?.address.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_update_swapping_data_reaches_the_dataplane() {
    let dataplane = DataplaneDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "2026_12_06_01", "10.0.0.1");
    symlink("..data/app.yaml", dir.path().join("app.yaml")).unwrap();
    let settings = Settings {
        translate: Config::default(),
        dataplane: DataplaneClient::new(&dataplane.url).unwrap(),
        timing: PushTiming::default(),
        admin: None,
    };
    let (trigger, shutdown) = drain::channel();
    let controller = tokio::spawn(run(Source::Files(dir.path().to_path_buf()), settings, shutdown));
    let first = dataplane.wait_for(Duration::from_secs(30), |s| address(s).is_some()).await;
    assert_eq!(first.and_then(|s| address(&s)).as_deref(), Some("10.0.0.1"));

    publish(dir.path(), "2026_12_06_02", "10.0.0.2");
    let updated = dataplane.wait_for(Duration::from_secs(60), |s| address(s).as_deref() == Some("10.0.0.2")).await;
    assert!(updated.is_some(), "the swapped ..data was read");
    trigger.fire();
    controller.await.unwrap().unwrap();
}
