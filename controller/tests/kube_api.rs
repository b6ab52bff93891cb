//! `KubeClusterWriter` against `tower_test::mock`, a test double of the API server's HTTP interface: each scenario
//! checks the exact request the controller sends (method, path, patch type, body) and answers it.

use bytes::Bytes;
use holdfast_controller::index::ObjectKey;
use holdfast_controller::status::kube_api::KubeClusterWriter;
use holdfast_controller::status::ClusterWriter;
use holdfast_controller::translate::{Reason, Warning};
use holdfast_crds::UploadPolicyStatus;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{json, Value};
use tower_test::mock::{self, Handle};

type ApiDouble = Handle<Request<Body>, Response<Body>>;

fn writer() -> (KubeClusterWriter, ApiDouble) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (KubeClusterWriter::new(kube::Client::new(service, "default"), "replica-1".into()), handle)
}

/// Takes the next request, checks method and path, answers 200 with `reply`, and returns the request body.
async fn expect(
    api: &mut ApiDouble,
    method: Method,
    path: &str,
    reply: impl FnOnce(&Value) -> Value,
) -> (Value, String) {
    let (request, send) = api.next_request().await.expect("no request was sent");
    assert_eq!((request.method(), request.uri().path()), (&method, path));
    let content_type =
        request.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body: Bytes = request.into_body().collect().await.unwrap().to_bytes();
    // A GET sends no body.
    let body: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap() };
    let answer = serde_json::to_vec(&reply(&body)).unwrap();
    send.send_response(Response::builder().status(200).body(Body::from(answer)).unwrap());
    (body, content_type)
}

/// Takes the next request, checks method and path, and answers with an API error of this code and reason.
async fn refuse(api: &mut ApiDouble, method: Method, path: &str, code: u16, reason: &str) {
    let (request, send) = api.next_request().await.expect("no request was sent");
    assert_eq!((request.method(), request.uri().path()), (&method, path));
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code,
        "message": format!("{reason} (test double)")});
    let body = Body::from(serde_json::to_vec(&status).unwrap());
    send.send_response(Response::builder().status(code).body(body).unwrap());
}

fn object(kind: &str, api_version: &str, name: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "default"}})
}

#[tokio::test]
async fn policy_status_is_a_merge_patch_of_the_status_subresource() {
    let (writer, mut api) = writer();
    let status = UploadPolicyStatus { attached_routes: vec!["default/app * /".into()], ..Default::default() };
    let call =
        tokio::spawn(async move { writer.patch_policy_status(&ObjectKey::new("default", "limits"), &status).await });
    let path = "/apis/holdfast.io/v1alpha1/namespaces/default/uploadpolicies/limits/status";
    let (body, content_type) = expect(&mut api, Method::PATCH, path, |_| {
        let mut o = object("UploadPolicy", "holdfast.io/v1alpha1", "limits");
        o["spec"] = json!({});
        o
    })
    .await;
    assert_eq!(content_type, "application/merge-patch+json");
    assert_eq!(body, json!({"status": {"attachedRoutes": ["default/app * /"]}}));
    call.await.unwrap().unwrap();
}

#[tokio::test]
async fn ingress_status_lists_ips_and_host_names() {
    let (writer, mut api) = writer();
    let addresses = vec!["192.0.2.1".to_string(), "lb.example.com".to_string()];
    let call =
        tokio::spawn(
            async move { writer.patch_ingress_addresses(&ObjectKey::new("default", "app"), &addresses).await },
        );
    let path = "/apis/networking.k8s.io/v1/namespaces/default/ingresses/app/status";
    let (body, _) = expect(&mut api, Method::PATCH, path, |_| object("Ingress", "networking.k8s.io/v1", "app")).await;
    assert_eq!(
        body,
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "lb.example.com"}]}}})
    );
    call.await.unwrap().unwrap();
}

#[tokio::test]
async fn warnings_become_warning_events_on_the_object() {
    let (writer, mut api) = writer();
    let warning = Warning {
        kind: "Ingress",
        key: ObjectKey::new("default", "app"),
        uid: Some("5d1f6a2e-0c4b-4f7e-9a51-3b2c8e7d9f10".into()),
        reason: Reason::ServiceNotFound,
        message: "Service default/ghost does not exist".into(),
    };
    let call = tokio::spawn(async move { writer.warning_event(&warning).await });
    // The API answers with the Event it stored, which is the one it was sent.
    let (body, _) =
        expect(&mut api, Method::POST, "/apis/events.k8s.io/v1/namespaces/default/events", |sent| sent.clone()).await;
    assert_eq!(body["type"], "Warning");
    assert_eq!(body["reason"], "ServiceNotFound");
    assert_eq!(body["note"], "Service default/ghost does not exist");
    assert_eq!(
        body["regarding"],
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "app", "namespace": "default",
               "uid": "5d1f6a2e-0c4b-4f7e-9a51-3b2c8e7d9f10"}),
        "kubectl describe finds events by the object's uid"
    );
    assert_eq!(body["reportingInstance"], "replica-1");
    call.await.unwrap().unwrap();
}

#[tokio::test]
async fn publish_service_addresses_come_from_its_load_balancer_status() {
    let (writer, mut api) = writer();
    let call = tokio::spawn(async move { writer.service_addresses(&ObjectKey::new("ingress", "holdfast")).await });
    let (request, send) = api.next_request().await.unwrap();
    assert_eq!(
        (request.method(), request.uri().path()),
        (&Method::GET, "/api/v1/namespaces/ingress/services/holdfast")
    );
    let mut service = object("Service", "v1", "holdfast");
    service["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}, {"hostname": "lb.test"}]}});
    send.send_response(Response::builder().body(Body::from(serde_json::to_vec(&service).unwrap())).unwrap());
    assert_eq!(call.await.unwrap().unwrap(), ["203.0.113.5", "lb.test"]);
}

/// An Ingress as the API returns it, listing `addresses` in its status, at resourceVersion 42.
fn ingress_listing(addresses: &[&str]) -> Value {
    let mut o = object("Ingress", "networking.k8s.io/v1", "app");
    o["metadata"]["resourceVersion"] = json!("42");
    let entries: Vec<Value> = addresses.iter().map(|a| json!({"ip": a})).collect();
    o["status"] = json!({"loadBalancer": {"ingress": entries}});
    o
}

#[tokio::test]
async fn an_ingress_still_listing_what_was_written_is_cleared_with_a_conditional_patch() {
    let path = "/apis/networking.k8s.io/v1/namespaces/default/ingresses/app/status";
    let written = vec!["192.0.2.1".to_string()];
    let key = ObjectKey::new("default", "app");

    let (cluster, mut api) = writer();
    let (k, w) = (key.clone(), written.clone());
    let call = tokio::spawn(async move { cluster.clear_ingress_addresses(&k, &w).await });
    expect(&mut api, Method::GET, path, |_| ingress_listing(&["192.0.2.1"])).await;
    let (body, content_type) = expect(&mut api, Method::PATCH, path, |_| ingress_listing(&[])).await;
    assert_eq!(content_type, "application/merge-patch+json");
    assert_eq!(
        body,
        json!({"metadata": {"resourceVersion": "42"}, "status": {"loadBalancer": {"ingress": []}}}),
        "conditional on the version read, so that a write in between is not undone"
    );
    call.await.unwrap().unwrap();

    // Another controller's addresses are left alone: no patch follows the read.
    let (cluster, mut api) = writer();
    let (k, w) = (key.clone(), written.clone());
    let call = tokio::spawn(async move { cluster.clear_ingress_addresses(&k, &w).await });
    expect(&mut api, Method::GET, path, |_| ingress_listing(&["198.51.100.7"])).await;
    call.await.unwrap().unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_millis(500), api.next_request()).await;
    assert!(!matches!(next, Ok(Some(_))), "nothing is patched");

    // Deleted, or written by someone else between the read and the patch: nothing to do, and no error.
    let (cluster, mut api) = writer();
    let (k, w) = (key.clone(), written.clone());
    let call = tokio::spawn(async move { cluster.clear_ingress_addresses(&k, &w).await });
    refuse(&mut api, Method::GET, path, 404, "NotFound").await;
    call.await.unwrap().unwrap();
    let (cluster, mut api) = writer();
    let (k, w) = (key.clone(), written.clone());
    let call = tokio::spawn(async move { cluster.clear_ingress_addresses(&k, &w).await });
    expect(&mut api, Method::GET, path, |_| ingress_listing(&["192.0.2.1"])).await;
    refuse(&mut api, Method::PATCH, path, 409, "Conflict").await;
    call.await.unwrap().unwrap();

    // Any other failure is reported, so that the writer tries again later.
    let (cluster, mut api) = writer();
    let call = tokio::spawn(async move { cluster.clear_ingress_addresses(&key, &written).await });
    refuse(&mut api, Method::GET, path, 500, "InternalError").await;
    assert!(call.await.unwrap().is_err());
}
