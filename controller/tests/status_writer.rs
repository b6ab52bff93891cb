//! The status writer against a recording test double of the API: what it writes, that it writes only changes,
//! and that failed writes are retried.

mod support;

use holdfast_controller::index::Index;
use holdfast_controller::status::StatusWriter;
use holdfast_controller::translate::{translate, Config, Translation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use support::cluster_double::{Call, RecordingClusterDouble};
use support::objects;

fn now() -> Time {
    Time("2024-01-01T00:00:00Z".parse().unwrap())
}

fn world(max_body: &str) -> Translation {
    let mut index = Index::default();
    index.apply(objects::class()).unwrap();
    index.apply(objects::service("web")).unwrap();
    index.apply(objects::ingress("app", "web")).unwrap();
    index.apply(objects::ingress("broken", "ghost")).unwrap();
    let spec = json!({"targetRefs": [{"kind": "Ingress", "name": "app"}], "maxBodySize": max_body});
    index.apply(objects::policy("limits", spec)).unwrap();
    translate(&index, &Config::default())
}

fn addresses() -> Vec<String> {
    vec!["192.0.2.10".to_string()]
}

#[tokio::test]
async fn writes_policy_status_ingress_addresses_and_warning_events_once() {
    let api = RecordingClusterDouble::default();
    let mut writer = StatusWriter::default();
    writer.sync(&api, &world("1Gi"), Some(&addresses()), now()).await;
    let calls = api.take();

    let statuses: Vec<_> =
        calls.iter().filter_map(|c| if let Call::PolicyStatus(k, s) = c { Some((k, s)) } else { None }).collect();
    assert_eq!(statuses.len(), 1);
    let (key, status) = statuses[0];
    assert_eq!(key, "default/limits");
    let accepted = &status.conditions[0];
    assert_eq!(
        (accepted.type_.as_str(), accepted.status.as_str(), accepted.observed_generation),
        ("Accepted", "True", Some(2))
    );
    assert_eq!(status.attached_routes, ["default/app app.test /"]);

    assert!(calls.contains(&Call::IngressAddresses("default/app".into(), addresses())));
    assert!(calls.contains(&Call::IngressAddresses("default/broken".into(), addresses())));
    assert!(calls.contains(&Call::Event("default/broken".into(), "ServiceNotFound")));

    writer.sync(&api, &world("1Gi"), Some(&addresses()), now()).await;
    assert_eq!(api.take(), [], "an unchanged translation writes nothing");
}

#[tokio::test]
async fn invalid_policy_edit_sets_accepted_false() {
    let api = RecordingClusterDouble::default();
    let mut writer = StatusWriter::default();
    writer.sync(&api, &world("1Gi"), None, now()).await;
    api.take();
    writer.sync(&api, &world("a lot"), None, now()).await;
    let calls = api.take();
    let Some(Call::PolicyStatus(_, status)) = calls.iter().find(|c| matches!(c, Call::PolicyStatus(..))) else {
        panic!("no status write in {calls:?}");
    };
    let accepted = &status.conditions[0];
    assert_eq!((accepted.status.as_str(), accepted.reason.as_str()), ("False", "Invalid"));
    assert!(accepted.message.contains("spec.maxBodySize"), "{}", accepted.message);
    assert!(calls.contains(&Call::Event("default/limits".into(), "PolicyInvalid")));
    assert!(
        !calls.iter().any(|c| matches!(c, Call::IngressAddresses(..))),
        "no addresses configured: no Ingress status"
    );
}

#[tokio::test]
async fn failed_writes_are_retried_and_a_new_term_writes_afresh() {
    let api = RecordingClusterDouble::default();
    let mut writer = StatusWriter::default();
    api.set_failing(true);
    writer.sync(&api, &world("1Gi"), Some(&addresses()), now()).await;
    api.set_failing(false);
    writer.sync(&api, &world("1Gi"), Some(&addresses()), now()).await;
    assert_eq!(api.take().len(), 4, "policy status, two Ingress statuses and one event, retried");

    writer.forget();
    writer.sync(&api, &world("1Gi"), Some(&addresses()), now()).await;
    assert_eq!(api.take().len(), 4);
}

#[tokio::test]
async fn a_new_leader_does_not_rewrite_a_status_the_api_already_shows() {
    let api = RecordingClusterDouble::default();
    let mut first_term = StatusWriter::default();
    first_term.sync(&api, &world("1Gi"), None, now()).await;
    let written =
        api.take().into_iter().find_map(|c| if let Call::PolicyStatus(_, s) = c { Some(s) } else { None }).unwrap();

    // The watch now shows the written status; a fresh writer (new leader) finds nothing to do.
    let mut index = Index::default();
    index.apply(objects::class()).unwrap();
    index.apply(objects::service("web")).unwrap();
    index.apply(objects::ingress("app", "web")).unwrap();
    index.apply(objects::ingress("broken", "ghost")).unwrap();
    let mut policy =
        objects::policy("limits", json!({"targetRefs": [{"kind": "Ingress", "name": "app"}], "maxBodySize": "1Gi"}));
    policy.status = Some(written);
    index.apply(policy).unwrap();
    let later = Time("2024-06-01T00:00:00Z".parse().unwrap());
    StatusWriter::default().sync(&api, &translate(&index, &Config::default()), None, later).await;
    assert!(!api.take().iter().any(|c| matches!(c, Call::PolicyStatus(..))));
}

#[tokio::test]
async fn an_ingress_that_leaves_the_class_has_its_addresses_cleared_once() {
    let api = RecordingClusterDouble::default();
    let mut writer = StatusWriter::default();
    writer.sync(&api, &world("1Gi"), Some(&addresses()), now()).await;
    api.take();

    // `app` moves to another controller's class; `broken` is deleted.
    let mut index = Index::default();
    index.apply(objects::class()).unwrap();
    index.apply(objects::service("web")).unwrap();
    let mut moved = objects::ingress("app", "web");
    moved.spec.as_mut().unwrap().ingress_class_name = Some("nginx".into());
    index.apply(moved).unwrap();
    let after = translate(&index, &Config::default());
    api.set_failing(true);
    writer.sync(&api, &after, Some(&addresses()), now()).await;
    api.set_failing(false);
    writer.sync(&api, &after, Some(&addresses()), now()).await;
    let clears: Vec<Call> = api.take().into_iter().filter(|c| matches!(c, Call::ClearIngressAddresses(..))).collect();
    assert_eq!(
        clears,
        [
            Call::ClearIngressAddresses("default/app".into(), addresses()),
            Call::ClearIngressAddresses("default/broken".into(), addresses()),
        ],
        "each cleared once the API takes it, with what this replica wrote"
    );
    writer.sync(&api, &after, Some(&addresses()), now()).await;
    assert_eq!(api.take(), [], "nothing left to clear");
}
