//! `PATCH /config`: a delta of backends on top of the version in force, applied whole or refused with 400 and a
//! reason, leaving the state in force untouched; the routes are not recompiled for an endpoint change.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use support::tus::send;
use support::upstream::deliveries;
use support::*;

fn delta(base: u64, version: u64, endpoints: &[SocketAddr]) -> String {
    let endpoints: Vec<String> =
        endpoints.iter().map(|a| format!(r#"{{"address":"{}","port":{}}}"#, a.ip(), a.port())).collect();
    format!(
        r#"{{"baseVersion":{base},"version":{version},"backends":{{"b":{{"endpoints":[{}]}}}}}}"#,
        endpoints.join(",")
    )
}

async fn patch(admin: SocketAddr, json: &str) -> (u16, String) {
    let reply = send(admin, "PATCH", "/config", &[("Content-Type", "application/json")], json.as_bytes()).await;
    (reply.status, reply.text())
}

/// POSTs a small body through the dataplane and says whether it was answered 200.
async fn post(addr: SocketAddr) -> u16 {
    send(addr, "POST", "/", &[], b"hello").await.status
}

#[tokio::test]
async fn a_delta_moves_a_backend_and_keeps_the_compiled_routes() {
    let dir = tempfile::tempdir().unwrap();
    let (a_log, b_log) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let a = UpstreamProcess::start("127.0.0.1:0", &a_log, &[]).await;
    let b = UpstreamProcess::start("127.0.0.1:0", &b_log, &[]).await;
    let dataplane = Harness::start(Some(&snapshot(1, &[a.addr], "{}")), 0).await;
    assert_eq!(post(dataplane.addr).await, 200);
    let before = dataplane.dp.config.current();

    assert_eq!(patch(dataplane.admin, &delta(1, 2, &[b.addr])).await, (200, "accepted version 2\n".to_string()));
    assert_eq!(get(dataplane.admin, "/config").await.1, r#"{"version":2}"#);
    assert_eq!(post(dataplane.addr).await, 200);
    assert_eq!((deliveries(&a_log).len(), deliveries(&b_log).len()), (1, 1), "the second request went to b");
    let after = dataplane.dp.config.current();
    assert!(Arc::ptr_eq(&before.routes, &after.routes), "an endpoint change must not recompile the routes");

    // Full snapshots carry on from the delta's version.
    let (status, reason) = push(dataplane.admin, &snapshot(2, &[a.addr], "{}")).await;
    assert_eq!(status, 400, "{reason}");
    assert_eq!(push(dataplane.admin, &snapshot(3, &[a.addr], "{}")).await.0, 200);
    assert_eq!(patch(dataplane.admin, &delta(3, 4, &[b.addr])).await.0, 200);
}

#[tokio::test]
async fn an_invalid_delta_is_refused_with_its_reason_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a_log = dir.path().join("a.jsonl");
    let a = UpstreamProcess::start("127.0.0.1:0", &a_log, &[]).await;
    let dataplane = Harness::start(Some(&snapshot(1, &[a.addr], "{}")), 0).await;
    let before = dataplane.dp.config.current();
    let cases = [
        (
            r#"{"baseVersion":1,"version":2,"backends":{"b":{"endpoints":[{"address":"pod-a","port":80}]}}}"#
                .to_string(),
            "is not an IP address",
        ),
        (
            r#"{"baseVersion":1,"version":2,"removedBackends":["b"]}"#.to_string(),
            "would leave hosts[0].paths[0] pointing at nothing",
        ),
        (r#"{"baseVersion":1,"version":2,"hosts":[]}"#.to_string(), "unknown field `hosts`"),
        (delta(1, 1, &[a.addr]), "version 1 is not greater than its base version 1"),
        ("{not json".to_string(), "invalid delta JSON"),
    ];
    for (json, expected) in cases {
        let (status, reason) = patch(dataplane.admin, &json).await;
        assert_eq!(status, 400, "{json}");
        assert!(reason.contains(expected), "{reason:?} should mention {expected:?}");
        assert!(Arc::ptr_eq(&before, &dataplane.dp.config.current()), "a refused delta must change nothing");
    }
    assert_eq!(get(dataplane.admin, "/config").await.1, r#"{"version":1}"#);
    assert_eq!(post(dataplane.addr).await, 200, "the routes in force still serve");
    // The base is untouched too: the delta the refused ones stood for still applies.
    assert_eq!(patch(dataplane.admin, &delta(1, 2, &[a.addr])).await.0, 200);
}

#[tokio::test]
async fn a_delta_for_another_version_or_with_nothing_in_force_is_refused_with_400() {
    let dataplane = Harness::start(None, 0).await;
    let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (status, reason) = patch(dataplane.admin, &delta(1, 2, &[nowhere])).await;
    assert_eq!(status, 400);
    assert!(reason.contains("no snapshot is in force"), "{reason}");

    assert_eq!(push(dataplane.admin, &snapshot(7, &[nowhere], "{}")).await.0, 200);
    for (base, version) in [(6, 8), (8, 9)] {
        let (status, reason) = patch(dataplane.admin, &delta(base, version, &[nowhere])).await;
        assert_eq!(status, 400, "a gap or a step back must be refused");
        let expected = format!("based on version {base} but version 7 is in force: send the full snapshot");
        assert!(reason.contains(&expected), "{reason}");
    }
    assert_eq!(get(dataplane.admin, "/config").await.1, r#"{"version":7}"#);
}
