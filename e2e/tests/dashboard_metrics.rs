//! The chart's Grafana dashboard against real scrapes, no cluster needed: the controller reads an Ingress, two
//! Services, an EndpointSlice and an UploadPolicy from files and pushes them to the real dataplane, which serves
//! uploads, GETs, a replay and a failure to a hash upstream; then both `/metrics` are scraped. Every metric every
//! panel queries must be in a scrape — a dashboard whose panels stay empty because a name drifted is caught here,
//! not in Grafana — and the routes' series must carry the labels the dashboard filters by, as the controller
//! named them in the snapshot.

use holdfast_e2e::binaries::workspace_root;
use holdfast_e2e::dashboard::{load, metric_names, queries};
use holdfast_e2e::exposition::{histogram_family, Exposition, Labels};
use holdfast_e2e::poll;
use holdfast_e2e::stack::{start_controller_from_dir, start_dataplane_with_metrics, start_local_upstream};
use holdfast_e2e::upload::{get, payload, post};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

/// One Ingress, two routes: `/` to a Service whose EndpointSlice lists the upstream and an address nothing listens
/// on (127.0.0.2: the upstream listens on 127.0.0.1 only), so that requests there are refused and replayed; `/gone`
/// to a Service without endpoints, which its UploadPolicy gives up on after 1 s (503).
fn objects(upstream: SocketAddr) -> String {
    let port = upstream.port();
    format!(
        "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: holdfast}}
spec: {{controller: holdfast.io/ingress-controller}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: uploads, namespace: apps}}
spec:
  ingressClassName: holdfast
  rules:
    - host: metrics.test
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: uploads, port: {{name: http}}}}}}}}
          - {{path: /gone, pathType: Prefix, backend: {{service: {{name: gone, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: uploads, namespace: apps}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: uploads-1, namespace: apps, labels: {{kubernetes.io/service-name: uploads}}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}, {{addresses: [127.0.0.2]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: gone, namespace: apps}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
apiVersion: holdfast.io/v1alpha1
kind: UploadPolicy
metadata: {{name: give-up-soon, namespace: apps}}
spec:
  targetRefs: [{{kind: Service, name: gone}}]
  replay: {{upstreamWaitTimeout: 1s}}
"
    )
}

/// `GET /metrics` on `addr`, as text.
async fn scrape(addr: SocketAddr) -> String {
    let reply = get(addr, "metrics", "/metrics").await.unwrap();
    assert_eq!(reply.status, 200, "GET http://{addr}/metrics");
    String::from_utf8(reply.body.to_vec()).unwrap()
}

/// Starts the upstream, the dataplane and the controller on [`objects`], sends the traffic, and returns what the
/// dataplane's metrics listener and the controller's admin listener then expose, together.
async fn scrapes_after_traffic() -> Exposition {
    let work = tempfile::tempdir().unwrap();
    let (_upstream, upstream) = start_local_upstream("upstream", &work.path().join("deliveries.jsonl")).await.unwrap();
    let dir = work.path().join("objects");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("apps.yaml"), objects(upstream)).unwrap();
    let (_dataplane, dataplane) = start_dataplane_with_metrics(&[]).await.unwrap();
    let (_controller, controller) = start_controller_from_dir(&dir, dataplane.admin).await.unwrap();

    // Until the controller's first push the dataplane answers 404; then uploads (a body), GETs, the replays of the
    // attempts that went to 127.0.0.2, and a 503 from the route with no endpoint.
    poll::until("an upload through the controller's routes", Duration::from_secs(30), async || {
        let reply = post(dataplane.listen, "metrics.test", "/upload", payload(100_000, 1)).await?;
        Ok((reply.status == 200).then_some(()))
    })
    .await
    .unwrap();
    for seed in 2..6 {
        let reply = post(dataplane.listen, "metrics.test", "/upload", payload(100_000, seed)).await.unwrap();
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        assert_eq!(get(dataplane.listen, "metrics.test", "/").await.unwrap().status, 200);
    }
    assert_eq!(get(dataplane.listen, "metrics.test", "/gone").await.unwrap().status, 503);

    let mut exposed = Exposition::default();
    exposed.add(&scrape(dataplane.metrics.unwrap()).await);
    exposed.add(&scrape(controller).await);
    exposed
}

/// Metric name (as queried) → titles of the panels that query it.
fn queried_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let board = load(&workspace_root().join("charts/holdfast/dashboards/holdfast.json")).unwrap();
    let mut by_metric: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (panel, expr) in queries(&board) {
        for metric in metric_names(&expr, "holdfast_") {
            by_metric.entry(metric).or_default().insert(panel.clone());
        }
    }
    by_metric
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_in_a_real_scrape() {
    let queried = queried_metrics();
    assert!(queried.len() > 20, "the dashboard queries too few metrics to be Holdfast's: {queried:?}");
    let exposed = scrapes_after_traffic().await;
    let missing: Vec<String> = queried
        .iter()
        .filter(|(metric, _)| !exposed.exposes(metric))
        .map(|(metric, panels)| {
            let shown = histogram_family(metric).map_or(metric.clone(), |family| format!("{family} (histogram)"));
            format!("{shown}, in: {}", panels.iter().cloned().collect::<Vec<_>>().join("; "))
        })
        .collect();
    // A declared family no request made a series of yet is fine for the dashboard, but worth seeing.
    let without_series: Vec<&String> =
        queried.keys().filter(|metric| exposed.exposes(metric) && !exposed.has_samples(metric)).collect();
    eprintln!("queried metrics with no series in this run: {without_series:?}");
    assert!(missing.is_empty(), "the dashboard queries metrics no scrape has:\n  {}", missing.join("\n  "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_series_carry_the_ingress_and_service_port_the_controller_named() {
    let exposed = scrapes_after_traffic().await;
    let route = |service: &str, port: &str, status_class: &str| -> Labels {
        [("namespace", "apps"), ("ingress", "uploads"), ("service", service), ("port", port)]
            .into_iter()
            .chain([("status_class", status_class)])
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let requests = exposed.label_sets("holdfast_route_requests_total");
    // The Service port by its number, though the Ingress names it `http`; for the route whose Service does not
    // exist, as the Ingress writes it.
    assert!(requests.contains(&&route("uploads", "80", "2xx")), "{requests:?}");
    assert!(requests.contains(&&route("gone", "80", "5xx")), "{requests:?}");
}
