//! The admin listener: metrics in Prometheus text, health, and readiness that follows the pusher.

use holdfast_controller::admin;
use holdfast_controller::drain;
use holdfast_controller::metrics::{PushMetrics, PushOutcome};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn serves_metrics_health_and_readiness() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut registry = Registry::default();
    let metrics = PushMetrics::register(&mut registry);
    metrics.observe(PushOutcome::Unreachable, 0.002);
    let (ready_tx, ready_rx) = watch::channel(false);
    let (trigger, shutdown) = drain::channel();
    let server = tokio::spawn(admin::serve(listener, Arc::new(registry), ready_rx, shutdown));

    assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
    ready_tx.send_replace(true);
    assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
    let metrics = get(addr, "/metrics").await;
    assert!(metrics.contains("holdfast_controller_pushes_total{outcome=\"Unreachable\"} 1"), "{metrics}");
    assert!(metrics.contains("holdfast_controller_push_seconds_count{outcome=\"Unreachable\"} 1"), "{metrics}");
    assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));

    trigger.fire();
    server.await.unwrap();
}
