//! The pusher against a test double of the dataplane admin API: version numbering across controller restarts and
//! recovery from refused pushes.

mod support;

use holdfast_controller::drain;
use holdfast_controller::push::{DataplaneClient, PushTiming, Pusher};
use holdfast_controller::translate::{Report, Translation};
use holdfast_snapshot::Snapshot;
use std::sync::Arc;
use std::time::Duration;
use support::dataplane_double::DataplaneDouble;
use tokio::sync::watch;

fn translation(policy_name: &str) -> Option<Arc<Translation>> {
    // From JSON, so the test keeps compiling as the snapshot grows fields with defaults.
    let json = format!(r#"{{"version": 0, "policies": {{"{policy_name}": {{}}}}}}"#);
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

#[tokio::test]
async fn first_push_of_a_restarted_controller_outnumbers_the_version_in_force() {
    let dataplane = DataplaneDouble::start().await;
    dataplane.preload(41);
    let (tx, rx) = watch::channel(translation("a"));
    let (trigger, shutdown) = drain::channel();
    let client = DataplaneClient::new(&dataplane.url).unwrap();
    let pusher = tokio::spawn(Pusher::new(client, timing()).run(rx, shutdown));

    let pushed = dataplane.wait_for(Duration::from_secs(2), |s| s.policies.contains_key("a")).await.unwrap();
    assert_eq!(pushed.version, 42);
    tx.send_replace(translation("b"));
    let pushed = dataplane.wait_for(Duration::from_secs(2), |s| s.policies.contains_key("b")).await.unwrap();
    assert_eq!(pushed.version, 43);
    trigger.fire();
    pusher.await.unwrap();
}

#[tokio::test]
async fn refused_pushes_are_retried_and_a_newer_snapshot_replaces_the_pending_one() {
    let dataplane = DataplaneDouble::start().await;
    dataplane.refuse_next(3);
    let (tx, rx) = watch::channel(translation("old"));
    let (trigger, shutdown) = drain::channel();
    let client = DataplaneClient::new(&dataplane.url).unwrap();
    let pusher = tokio::spawn(Pusher::new(client, timing()).run(rx, shutdown));
    tx.send_replace(translation("new"));
    let pushed = dataplane.wait_for(Duration::from_secs(2), |s| s.policies.contains_key("new")).await;
    assert!(pushed.is_some(), "the newest snapshot must land once the dataplane accepts pushes");
    assert!(dataplane.in_force().unwrap().version >= 1);
    trigger.fire();
    pusher.await.unwrap();
}

#[tokio::test]
async fn a_publication_with_an_unchanged_snapshot_is_not_pushed() {
    let dataplane = DataplaneDouble::start().await;
    let (tx, rx) = watch::channel(translation("a"));
    let (trigger, shutdown) = drain::channel();
    let client = DataplaneClient::new(&dataplane.url).unwrap();
    let pusher = tokio::spawn(Pusher::new(client, timing()).run(rx, shutdown));
    assert!(dataplane.wait_for(Duration::from_secs(2), |s| s.policies.contains_key("a")).await.is_some());

    // Same snapshot, different report (a warning appeared): nothing to push.
    let mut same = (*translation("a").unwrap()).clone();
    std::sync::Arc::make_mut(&mut same.report)
        .ingresses
        .insert(holdfast_controller::index::ObjectKey::new("default", "x"));
    tx.send_replace(Some(Arc::new(same)));
    // Proving that nothing happens takes a wait; several resync periods are plenty.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dataplane.accepted_count(), 1);
    tx.send_replace(translation("b"));
    let pushed = dataplane.wait_for(Duration::from_secs(2), |s| s.policies.contains_key("b")).await.unwrap();
    assert_eq!(pushed.version, 2);
    assert_eq!(dataplane.accepted_count(), 2);
    trigger.fire();
    pusher.await.unwrap();
}

#[test]
fn dataplane_url_accepts_the_base_or_the_config_path() {
    for url in ["http://127.0.0.1:9901", "http://127.0.0.1:9901/", "http://127.0.0.1:9901/config"] {
        assert_eq!(DataplaneClient::new(url).unwrap().url().to_string(), "http://127.0.0.1:9901/config", "{url}");
    }
    for url in ["https://127.0.0.1:9901", "127.0.0.1:9901", "http://"] {
        assert!(DataplaneClient::new(url).is_err(), "{url}");
    }
}
