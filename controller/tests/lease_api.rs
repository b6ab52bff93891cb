//! Leader election against `tower_test::mock`, a test double of the API server's HTTP interface: each scenario
//! checks the requests `lease::run` sends (the Lease read, then its creation or a replace carrying the version read)
//! and what it concludes from the answers (the leadership watch and the `holdfast_controller_leader` gauge),
//! including a conflict from a replica that wrote first.

use bytes::Bytes;
use holdfast_controller::drain;
use holdfast_controller::lease::{self, LeaseTiming};
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::client::Body;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::watch;
use tower_test::mock::{self, Handle};

type ApiDouble = Handle<Request<Body>, Response<Body>>;

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/holdfast-system/leases";

/// What a test drives and reads: the API double, the leadership watch, the leader gauge, the shutdown trigger and
/// the election's task.
type Started = (ApiDouble, watch::Receiver<bool>, Gauge, drain::Trigger, tokio::task::JoinHandle<()>);

/// Starts `lease::run` for replica `me` against a fresh API double.
fn start() -> Started {
    let (service, api) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let leases: kube::Api<Lease> = kube::Api::namespaced(client, "holdfast-system");
    let (tx, rx) = watch::channel(false);
    let (trigger, shutdown) = drain::channel();
    // A renewal period long enough that each round below is driven by the test, short enough to keep it quick.
    let timing = LeaseTiming { duration: Duration::from_secs(15), renew: Duration::from_millis(300) };
    let leader = Gauge::default();
    let run = lease::run(leases, "holdfast-controller".into(), "me".into(), timing, tx, leader.clone(), shutdown);
    (api, rx, leader, trigger, tokio::spawn(run))
}

/// Takes the next request, checks method and path, answers `code` with `reply`, and returns the request body.
async fn answer(api: &mut ApiDouble, method: Method, path: &str, code: u16, reply: Value) -> Value {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), api.next_request())
        .await
        .expect("no request within 5 s")
        .expect("the client went away");
    assert_eq!((request.method(), request.uri().path()), (&method, path));
    let body: Bytes = request.into_body().collect().await.unwrap().to_bytes();
    let body = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap() };
    send.send_response(Response::builder().status(code).body(Body::from(serde_json::to_vec(&reply).unwrap())).unwrap());
    body
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})
}

fn conflict() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409})
}

fn lease_object(holder: &str, renewed: &str, version: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "holdfast-controller", "namespace": "holdfast-system", "resourceVersion": version},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed,
                    "acquireTime": renewed, "leaseTransitions": 0}})
}

async fn leading_becomes(rx: &mut watch::Receiver<bool>, expected: bool) {
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|leading| *leading == expected))
        .await
        .expect("leadership did not change")
        .unwrap();
}

#[tokio::test]
async fn the_first_replica_creates_the_lease_renews_it_and_releases_it_on_shutdown() {
    let (mut api, mut rx, leader, trigger, task) = start();
    let name = format!("{LEASES}/holdfast-controller");
    answer(&mut api, Method::GET, &name, 404, not_found()).await;
    let created =
        answer(&mut api, Method::POST, LEASES, 201, lease_object("me", "2030-01-01T00:00:00.000000Z", "1")).await;
    assert_eq!(created["spec"]["holderIdentity"], "me");
    assert_eq!(created["spec"]["leaseDurationSeconds"], 15);
    assert_eq!(created["spec"]["leaseTransitions"], 0, "creating the first Lease is no transition");
    leading_becomes(&mut rx, true).await;
    assert_eq!(leader.get(), 1);

    // The next round renews: a replace of the Lease as read, so that it carries the version read.
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    answer(&mut api, Method::GET, &name, 200, lease_object("me", &now, "7")).await;
    let renewed = answer(&mut api, Method::PUT, &name, 200, lease_object("me", &now, "8")).await;
    assert_eq!(renewed["metadata"]["resourceVersion"], "7");
    assert_eq!(renewed["spec"]["holderIdentity"], "me");
    assert!(*rx.borrow());

    // On shutdown the holder gives the Lease up, so that a successor need not wait for it to expire.
    trigger.fire();
    answer(&mut api, Method::GET, &name, 200, lease_object("me", &now, "8")).await;
    let released = answer(&mut api, Method::PUT, &name, 200, lease_object("", &now, "9")).await;
    assert!(released["spec"].get("holderIdentity").is_none_or(Value::is_null), "{released}");
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("run did not return").unwrap();
    assert_eq!(leader.get(), 0, "a replica that gave the Lease up no longer leads");
}

#[tokio::test]
async fn a_live_lease_of_another_replica_is_followed_and_an_expired_one_taken_over_unless_another_wins() {
    let (mut api, mut rx, leader, trigger, task) = start();
    let name = format!("{LEASES}/holdfast-controller");
    // Another replica renewed a moment ago: follow, write nothing.
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    answer(&mut api, Method::GET, &name, 200, lease_object("other", &now, "3")).await;
    // Renewed long ago: take it over, counting the transition; a replica that wrote first makes the API refuse.
    answer(&mut api, Method::GET, &name, 200, lease_object("other", "2020-01-01T00:00:00.000000Z", "4")).await;
    let taken = answer(&mut api, Method::PUT, &name, 409, conflict()).await;
    assert_eq!((&taken["spec"]["holderIdentity"], &taken["spec"]["leaseTransitions"]), (&json!("me"), &json!(1)));
    assert_eq!(taken["metadata"]["resourceVersion"], "4", "conditional on the version read");
    // The next round finds the Lease expired again and takes it. Its read comes after the refusal was handled.
    answer(&mut api, Method::GET, &name, 200, lease_object("other", "2020-01-01T00:00:00.000000Z", "5")).await;
    assert!(!*rx.borrow(), "a refused takeover does not lead");
    assert_eq!(leader.get(), 0, "a follower reports 0");
    answer(&mut api, Method::PUT, &name, 200, lease_object("me", &now, "6")).await;
    leading_becomes(&mut rx, true).await;
    assert_eq!(leader.get(), 1);
    trigger.fire();
    answer(&mut api, Method::GET, &name, 200, lease_object("other", &now, "9")).await;
    // The Lease was taken meanwhile: nothing to release, nothing written.
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("run did not return").unwrap();
    let next = tokio::time::timeout(Duration::from_millis(300), api.next_request()).await;
    assert!(!matches!(next, Ok(Some(_))), "no write after the Lease changed hands");
}
