//! The watch → index → translation seam, with scripted watch streams standing in for the API server's (a test
//! double of the watch API): applies, deletes and relists reach the published snapshot, and are counted by kind
//! and event.

mod support;

use futures::stream;
use holdfast_controller::drain;
use holdfast_controller::metrics::{SourceMetrics, WatchEvent, WatchLabels};
use holdfast_controller::publish::{self, Shared};
use holdfast_controller::source::kube::{feed, WatchFeed};
use holdfast_controller::translate::Config;
use kube::runtime::watcher::Event;
use std::sync::Arc;
use std::time::Duration;
use support::objects;
use tokio::sync::watch;

#[test]
fn relist_removes_objects_deleted_while_the_watch_was_down() {
    let shared = Shared::default();
    let mut watch = WatchFeed::default();
    let names = || shared.read(|index| index.slices.keys().map(|k| k.name.clone()).collect::<Vec<_>>());
    for event in [
        Event::Init,
        Event::InitApply(objects::slice("a", "web", "10.0.0.1")),
        Event::InitApply(objects::slice("b", "web", "10.0.0.2")),
        Event::InitDone,
        Event::Apply(objects::slice("c", "web", "10.0.0.3")),
        Event::Delete(objects::slice("a", "web", "10.0.0.1")),
    ] {
        watch.handle(event, &shared);
    }
    assert_eq!(names(), ["b", "c"]);
    // The watch restarts; "b" was deleted meanwhile and is not listed again.
    watch.handle(Event::Init, &shared);
    watch.handle(Event::InitApply(objects::slice("c", "web", "10.0.0.3")), &shared);
    assert_eq!(names(), ["b", "c"], "an unfinished relist changes nothing yet");
    watch.handle(Event::InitDone, &shared);
    assert_eq!(names(), ["c"]);
}

#[tokio::test]
async fn watch_events_reach_the_published_snapshot() {
    let shared = Arc::new(Shared::default());
    let (tx, mut rx) = watch::channel(None);
    let (trigger, shutdown) = drain::channel();
    let publisher = tokio::spawn(publish::run(shared.clone(), Config::default(), tx, Default::default(), shutdown));
    let metrics = SourceMetrics::default();

    feed(stream::iter(vec![Ok(Event::Apply(objects::class()))]), &shared, &metrics).await;
    feed(stream::iter(vec![Ok(Event::Apply(objects::service("web")))]), &shared, &metrics).await;
    feed(stream::iter(vec![Ok(Event::Apply(objects::ingress("app", "web")))]), &shared, &metrics).await;
    feed(stream::iter(vec![Ok(Event::Apply(objects::slice("s", "web", "10.0.0.7")))]), &shared, &metrics).await;

    let published = tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|t| t.is_some())).await.unwrap().unwrap();
    let snapshot = &published.as_ref().unwrap().snapshot;
    assert_eq!(snapshot.hosts[0].host, "app.test");
    assert_eq!(snapshot.backends["default/web:80"].endpoints[0].address, "10.0.0.7");
    drop(published);

    feed(stream::iter(vec![Ok(Event::Delete(objects::slice("s", "web", "10.0.0.7")))]), &shared, &metrics).await;
    let emptied = tokio::time::timeout(
        Duration::from_secs(2),
        rx.wait_for(|t| t.as_ref().is_some_and(|t| t.snapshot.backends["default/web:80"].endpoints.is_empty())),
    )
    .await;
    assert!(emptied.is_ok(), "a deleted EndpointSlice must take its endpoints out of the snapshot");
    trigger.fire();
    publisher.await.unwrap();
}

#[test]
fn a_relist_of_the_opaque_secret_watch_keeps_the_tls_secrets_of_the_other_watch() {
    use holdfast_controller::index::{ObjectKey, OpaqueSecret};
    use k8s_openapi::api::core::v1::Secret;
    let secret = |name: &str, type_: &str, key: &str| -> Secret {
        objects::from(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "type": type_, "stringData": {key: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}
        }))
    };
    let shared = Shared::default();
    let mut tls = WatchFeed::<Secret>::default();
    let mut opaque = WatchFeed::<OpaqueSecret>::default();
    tls.handle(Event::Apply(secret("listener", "kubernetes.io/tls", "tls.crt")), &shared);
    for event in [Event::Init, Event::InitApply(OpaqueSecret(secret("ca", "Opaque", "ca.crt"))), Event::InitDone] {
        opaque.handle(event, &shared);
    }
    let (tls_count, ca_count, uid) = shared.read(|index| {
        let uid = index.uid("Secret", &ObjectKey::new("default", "listener")).map(str::to_string);
        (index.secrets.len(), index.ca_secrets.len(), uid)
    });
    assert_eq!((tls_count, ca_count), (1, 1));
    assert_eq!(uid.as_deref(), Some("uid-listener"), "the Opaque relist must not forget the TLS Secret's uid");
}

#[test]
fn every_watch_event_is_counted_by_kind_and_event() {
    let shared = Shared::default();
    let metrics = SourceMetrics::default();
    let mut slices = WatchFeed::new(metrics.clone());
    for event in [
        Event::Init,
        Event::InitApply(objects::slice("a", "web", "10.0.0.1")),
        Event::InitApply(objects::slice("b", "web", "10.0.0.2")),
        Event::InitDone,
        Event::Apply(objects::slice("c", "web", "10.0.0.3")),
        Event::Delete(objects::slice("a", "web", "10.0.0.1")),
    ] {
        slices.handle(event, &shared);
    }
    WatchFeed::new(metrics.clone()).handle(Event::Apply(objects::service("web")), &shared);
    // An Opaque Secret is indexed into a store of its own, but counted as the Secret it is.
    let secret = holdfast_controller::index::OpaqueSecret(objects::from(serde_json::json!({
        "metadata": {"name": "ca", "namespace": "default"}, "type": "Opaque", "stringData": {"ca.crt": "x"}
    })));
    WatchFeed::new(metrics.clone()).handle(Event::Apply(secret), &shared);

    let count = |kind, event| metrics.watch_events.get(&WatchLabels { kind, event }).map_or(0, |c| c.get());
    use WatchEvent::*;
    let slice_counts: Vec<u64> = [init, init_apply, init_done, apply, delete].map(|e| count("EndpointSlice", e)).into();
    assert_eq!(slice_counts, [1, 2, 1, 1, 1]);
    assert_eq!((count("Service", apply), count("Service", delete)), (1, 0));
    assert_eq!(count("Secret", apply), 1);
}
