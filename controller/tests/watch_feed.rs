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

/// A slice of the StatefulSet's governing Service `holdfast-pods`, one endpoint per `(pod, address)`.
fn peer_slice(pods: &[(&str, &str)]) -> k8s_openapi::api::discovery::v1::EndpointSlice {
    let endpoints: Vec<_> = pods
        .iter()
        .map(|(pod, address)| serde_json::json!({"addresses": [address], "targetRef": {"kind": "Pod", "name": pod}}))
        .collect();
    objects::from(serde_json::json!({
        "metadata": {"name": "holdfast-pods-x", "namespace": "holdfast-system",
                     "labels": {"kubernetes.io/service-name": "holdfast-pods"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": endpoints
    }))
}

/// Waits until the published snapshot's peers are exactly `expected`, by name.
async fn wait_for_peers(rx: &mut Published, expected: &[&str]) {
    let found = tokio::time::timeout(
        Duration::from_secs(2),
        rx.wait_for(|t| t.as_ref().is_some_and(|t| t.snapshot.peers.keys().eq(expected.iter()))),
    )
    .await;
    assert!(found.is_ok(), "peers never became {expected:?}");
}

type Published = watch::Receiver<Option<Arc<holdfast_controller::translate::Translation>>>;

#[tokio::test]
async fn peers_follow_the_slices_of_the_peers_service_from_either_watch() {
    use holdfast_controller::index::{ObjectKey, PeerSlice};
    use holdfast_controller::translate::PeersConfig;
    let shared = Arc::new(Shared::default());
    let (tx, mut rx) = watch::channel(None);
    let (trigger, shutdown) = drain::channel();
    let peers = PeersConfig { service: ObjectKey::new("holdfast-system", "holdfast-pods"), port: 8080 };
    let config = Config { peers: Some(peers), ..Config::default() };
    let publisher = tokio::spawn(publish::run(shared.clone(), config, tx, Default::default(), shutdown));
    let metrics = SourceMetrics::default();
    let one = peer_slice(&[("holdfast-0", "10.1.0.10")]);
    feed(stream::iter(vec![Ok(Event::Apply(one.clone()))]), &shared, &metrics).await;
    wait_for_peers(&mut rx, &["holdfast-0"]).await;
    let two = peer_slice(&[("holdfast-0", "10.1.0.10"), ("holdfast-1", "10.1.0.11")]);
    feed(stream::iter(vec![Ok(Event::Apply(two))]), &shared, &metrics).await;
    wait_for_peers(&mut rx, &["holdfast-0", "holdfast-1"]).await;
    feed(stream::iter(vec![Ok(Event::Delete(one.clone()))]), &shared, &metrics).await;
    wait_for_peers(&mut rx, &[]).await;

    // The peers watch (with --watch-namespace elsewhere) fills its own store; the main watch's relist keeps it.
    feed(stream::iter(vec![Ok(Event::Apply(PeerSlice(one)))]), &shared, &metrics).await;
    wait_for_peers(&mut rx, &["holdfast-0"]).await;
    let relist = vec![Ok(Event::Init), Ok(Event::<k8s_openapi::api::discovery::v1::EndpointSlice>::InitDone)];
    feed(stream::iter(relist), &shared, &metrics).await;
    assert_eq!(shared.read(|index| index.peer_slices.len()), 1);
    trigger.fire();
    publisher.await.unwrap();
}
