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
