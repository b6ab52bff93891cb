//! The admin listener: snapshots in (refused whole when invalid), health, readiness and metrics out.

mod support;

use support::*;

#[tokio::test]
async fn readiness_follows_the_first_snapshot_and_versions_must_increase() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let dataplane = Harness::start(None, 0).await;
    assert_eq!(get(dataplane.admin, "/healthz").await.0, 200);
    assert_eq!(get(dataplane.admin, "/readyz").await.0, 503);
    assert_eq!(get(dataplane.admin, "/config").await, (200, r#"{"version":null}"#.to_string()));
    assert_eq!(get(dataplane.addr, "/").await.0, 404, "no routes before the first snapshot");

    assert_eq!(push(dataplane.admin, &snapshot(5, &[upstream.addr], "{}")).await.0, 200);
    assert_eq!(get(dataplane.admin, "/readyz").await.0, 200);
    assert_eq!(get(dataplane.admin, "/config").await.1, r#"{"version":5}"#);
    let (status, reason) = push(dataplane.admin, &snapshot(5, &[], "{}")).await;
    assert_eq!(status, 400);
    assert!(reason.contains("version 5 is not greater than the version in force (5)"), "{reason}");
    assert_eq!(get(dataplane.addr, "/").await, (200, "ok\n".to_string()), "the previous routes still serve");
}

#[tokio::test]
async fn invalid_snapshots_are_refused_with_a_reason_and_the_previous_routes_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], "{}")), 0).await;
    let cases = [
        ("{not json", "invalid snapshot JSON"),
        (r#"{"version": 2, "hosts": "everything"}"#, "invalid type"),
        (r#"{"version": 2, "routes": []}"#, "unknown field `routes`"),
        (r#"{"version": 2, "defaultBackend": {"backend": "missing"}}"#, "not in backends"),
        (&snapshot(2, &[upstream.addr], r#"{"mode":"Sometimes"}"#), "unknown variant `Sometimes`"),
    ];
    for (json, expected) in cases {
        let (status, reason) = push(dataplane.admin, json).await;
        assert_eq!(status, 400, "{json}");
        assert!(reason.contains(expected), "{reason:?} should mention {expected:?}");
        assert_eq!(get(dataplane.addr, "/").await, (200, "ok\n".to_string()));
    }
    assert_eq!(get(dataplane.admin, "/config").await.1, r#"{"version":1}"#);
}

#[tokio::test]
async fn metrics_count_requests_bytes_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], "{}")), 0).await;
    let result = upload(dataplane.addr, Upload::new("/up", 300_000)).await.unwrap();
    assert_eq!(result.status, 200);
    let (status, text) = get(dataplane.admin, "/metrics").await;
    assert_eq!(status, 200);
    for expected in [
        "holdfast_requests_total{status=\"200\"} 1",
        "holdfast_request_body_bytes_total 300000",
        "holdfast_spool_bytes 0",
        "holdfast_spool_files 0",
        "holdfast_upstream_wait_seconds_count 1",
        "holdfast_config_version 1",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert_eq!(get(dataplane.admin, "/nope").await.0, 404);
}

#[tokio::test]
async fn the_metrics_listener_serves_metrics_and_probes_and_refuses_route_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let (spool, snapshot_file) = (dir.path().join("spool"), dir.path().join("snapshot.json"));
    std::fs::create_dir(&spool).unwrap();
    std::fs::write(&snapshot_file, snapshot(1, &[upstream.addr], "{}")).unwrap();
    let dataplane = DataplaneProcess::start(&spool, &snapshot_file, &["--metrics", "127.0.0.1:0"]).await;
    let metrics = dataplane.metrics.expect("the start-up line names the metrics listener");
    assert_eq!(get(dataplane.addr, "/").await.0, 200);

    let (status, text) = get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("holdfast_requests_total{status=\"200\"} 1"), "{text}");
    assert_eq!(get(metrics, "/healthz").await.0, 200);
    assert_eq!(get(metrics, "/readyz").await, (200, "ready: snapshot version 1\n".to_string()));

    // Whoever reaches the pod IP cannot replace the routes, nor read the version through it.
    assert_eq!(push(metrics, &snapshot(2, &[], "{}")).await.0, 404);
    assert_eq!(get(metrics, "/config").await.0, 404);
    assert_eq!(get(dataplane.admin, "/config").await.1, r#"{"version":1}"#, "the admin listener is unchanged");
    assert_eq!(get(dataplane.addr, "/").await.0, 200, "the routes in force still serve");
}

#[tokio::test]
async fn without_the_flag_there_is_no_metrics_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, snapshot_file) = (dir.path().join("spool"), dir.path().join("snapshot.json"));
    std::fs::create_dir(&spool).unwrap();
    std::fs::write(&snapshot_file, snapshot(1, &[], "{}")).unwrap();
    let dataplane = DataplaneProcess::start(&spool, &snapshot_file, &[]).await;
    assert_eq!(dataplane.metrics, None);
    assert_eq!(get(dataplane.admin, "/metrics").await.0, 200, "metrics stay on the admin listener");
}
