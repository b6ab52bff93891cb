//! A controller that starts publishes one complete snapshot, never a partial one: the file source reads every file
//! first, and the Kubernetes source waits for every watch's first list, here against a test double of the API
//! server (`tower_test::mock`) that answers the lists and holds the watches open. Then an edit of one EndpointSlice
//! file reaches the dataplane through a filesystem event.

mod support;

use holdfast_controller::drain;
use holdfast_controller::push::{DataplaneClient, PushTiming};
use holdfast_controller::run::{run, Settings, Source};
use holdfast_controller::source::kube::KubeSource;
use holdfast_controller::status::Addresses;
use holdfast_controller::translate::Config;
use holdfast_snapshot::Snapshot;
use http::{Request, Response};
use kube::client::Body;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::dataplane_double::DataplaneDouble;

const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: holdfast}\nspec: {controller: holdfast.io/ingress-controller}\n";

/// Ingress `app-i` (host `app-i.test`), its Service and an EndpointSlice of ten endpoints, as JSON objects.
fn app(i: usize, round: usize) -> [Value; 3] {
    let (name, service) = (format!("app-{i}"), format!("svc-{i}"));
    let endpoints: Vec<Value> =
        (0..10).map(|e| json!({"addresses": [format!("10.{}.{}.{}", i / 250, i % 250, e + 1 + round)]})).collect();
    [
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"ingressClassName": "holdfast", "rules": [{"host": format!("{name}.test"), "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}}
        ]}}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": service, "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80}]}}),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{service}-1"), "namespace": "default",
                "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": endpoints}),
    ]
}

/// Whether a snapshot has all `n` apps, each with its ten endpoints.
fn complete(snapshot: &Snapshot, n: usize) -> bool {
    snapshot.hosts.len() == n && (0..n).all(|i| snapshot.backends[&format!("default/svc-{i}:80")].endpoints.len() == 10)
}

fn settings(dataplane: &DataplaneDouble) -> Settings {
    Settings {
        translate: Config::default(),
        dataplane: DataplaneClient::new(&dataplane.url).unwrap(),
        timing: PushTiming::default(),
        admin: None,
    }
}

fn write(dir: &Path, name: &str, documents: &[Value]) {
    let text: Vec<String> = documents.iter().map(|d| serde_yaml::to_string(d).unwrap()).collect();
    // Write then rename, as editors and `kubectl`-style tools do, so a read never sees half a file.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text.join("---\n")).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_with_5000_files_pushes_all_hosts_first_and_a_slice_edit_follows() {
    const N: usize = 5000;
    let dataplane = DataplaneDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("class.yaml"), CLASS).unwrap();
    for i in 0..N {
        write(dir.path(), &format!("app-{i}.yaml"), &app(i, 0));
    }
    let (trigger, shutdown) = drain::channel();
    let controller = tokio::spawn(run(Source::Files(dir.path().to_path_buf()), settings(&dataplane), shutdown));

    // Bounded, not timed: a loaded machine may take long to read 5,000 files, but never forever.
    let first = dataplane.wait_for(Duration::from_secs(300), |s| !s.hosts.is_empty()).await;
    assert!(first.is_some_and(|s| complete(&s, N)), "the first snapshot pushed has every host and endpoint");

    write(dir.path(), "app-1234.yaml", &app(1234, 100));
    let edited = dataplane
        .wait_for(Duration::from_secs(60), |s| s.backends["default/svc-1234:80"].endpoints[0].address == "10.4.234.101")
        .await;
    assert!(edited.is_some(), "the edit reached the dataplane");
    let accepted = dataplane.accepted();
    assert!(accepted.iter().all(|s| complete(s, N)), "no snapshot pushed was partial");
    trigger.fire();
    controller.await.unwrap().unwrap();
}

/// The API server double: answers each list with its kind's objects (the EndpointSlices last of all, so that a
/// snapshot published before every watch had listed would lack endpoints), holds the watches open, and refuses
/// the rest (the Lease).
async fn serve_api(mut api: tower_test::mock::Handle<Request<Body>, Response<Body>>, objects: Vec<Value>) {
    let of_kind = |kind: &str| -> Vec<Value> { objects.iter().filter(|o| o["kind"] == kind).cloned().collect() };
    let mut held = Vec::new();
    let mut slices_list = None;
    let mut lists = 0;
    while let Some((request, send)) = api.next_request().await {
        let (path, query) = (request.uri().path().to_string(), request.uri().query().unwrap_or("").to_string());
        let kind = match path.rsplit('/').next().unwrap_or("") {
            "ingressclasses" => "IngressClass",
            "ingresses" => "Ingress",
            "services" => "Service",
            "endpointslices" => "EndpointSlice",
            "secrets" => "Secret",
            "uploadpolicies" => "UploadPolicy",
            _ => "",
        };
        if query.contains("watch=true") {
            held.push(send);
            continue;
        }
        if kind.is_empty() {
            // The Lease: refused, so that this replica does not lead and writes no status.
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError",
                "code": 500, "message": "test double"});
            let body = Body::from(serde_json::to_vec(&status).unwrap());
            send.send_response(Response::builder().status(500).body(body).unwrap());
            continue;
        }
        let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"},
            "items": of_kind(kind)});
        let response = Response::builder().body(Body::from(serde_json::to_vec(&list).unwrap())).unwrap();
        if kind == "EndpointSlice" {
            slices_list = Some((send, response));
        } else {
            send.send_response(response);
            lists += 1;
        }
        // Six lists besides the slices': classes, Ingresses, Services, TLS and Opaque Secrets, UploadPolicies.
        if lists == 6 {
            if let Some((send, response)) = slices_list.take() {
                send.send_response(response);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kube_source_publishes_once_every_watch_has_listed() {
    const N: usize = 200;
    let dataplane = DataplaneDouble::start().await;
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let class = serde_yaml::from_str::<Value>(CLASS).unwrap();
    let objects: Vec<Value> = std::iter::once(class).chain((0..N).flat_map(|i| app(i, 0))).collect();
    let api = tokio::spawn(serve_api(handle, objects));
    let source = KubeSource {
        client: kube::Client::new(service, "default"),
        namespace: None,
        addresses: Addresses::None,
        lease_namespace: "default".into(),
        identity: "replica-1".into(),
        peers_service: None,
    };
    let (trigger, shutdown) = drain::channel();
    let controller = tokio::spawn(run(Source::Kube(Box::new(source)), settings(&dataplane), shutdown));

    let first = dataplane.wait_for(Duration::from_secs(60), |_| true).await;
    assert!(first.is_some_and(|s| complete(&s, N)), "the first snapshot pushed has every host and endpoint");
    trigger.fire();
    controller.await.unwrap().unwrap();
    assert!(dataplane.accepted().iter().all(|s| complete(s, N)), "no snapshot pushed was partial");
    api.abort();
}
