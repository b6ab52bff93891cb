//! The `resumable` section of an UploadPolicy spec as the snapshot's [`Resumable`]: sizes and durations parsed with
//! the crate's parsers, unset fields left at the snapshot's defaults, and each `metadataHeaders` entry checked with
//! the dataplane's own rules, so that an entry it would refuse is reported here, by key, and never pushed.

use super::{check_policy, keep, millis, FieldError, FieldProblem};
use holdfast_crds::{parse_bytes, ResumableSpec};
use holdfast_snapshot::{DeliveryMethod, Policy, Resumable, ResumableProtocol, SnapshotError};
use std::collections::BTreeMap;

/// The snapshot's settings for `spec`, or `None` once every field at fault has been pushed to `errors`.
pub fn from_spec(spec: &ResumableSpec, errors: &mut Vec<FieldError>) -> Option<Resumable> {
    let before = errors.len();
    let mut r = Resumable {
        protocol: spec.protocol.map(protocol).unwrap_or_default(),
        delivery_method: spec.delivery_method.map(delivery_method).unwrap_or_default(),
        ..Resumable::default()
    };
    if let Some(value) = &spec.max_size {
        let parsed = parse_bytes(value).map_err(FieldProblem::from);
        r.max_size_bytes = keep("spec.resumable.maxSize", parsed, errors).unwrap_or(r.max_size_bytes);
    }
    let durations = [
        ("spec.resumable.expiresAfter", &spec.expires_after, &mut r.expires_after_ms),
        ("spec.resumable.outcomeRetention", &spec.outcome_retention, &mut r.outcome_retention_ms),
        ("spec.resumable.answerWait", &spec.answer_wait, &mut r.answer_wait_ms),
    ];
    for (field, value, target) in durations {
        *target = millis(field, value, errors).unwrap_or(*target);
    }
    for (key, header) in &spec.metadata_headers {
        let field = format!("spec.resumable.metadataHeaders[{key:?}]");
        if keep(&field, check_entry(key, header), errors).is_some() {
            r.metadata_headers.insert(key.clone(), header.clone());
        }
    }
    (errors.len() == before).then_some(r)
}

/// Runs the dataplane's check on one entry alone, so that its refusal names that entry (the dataplane's own message
/// names only the map).
fn check_entry(key: &str, header: &str) -> Result<(), FieldProblem> {
    let resumable =
        Resumable { metadata_headers: BTreeMap::from([(key.to_string(), header.to_string())]), ..Resumable::default() };
    check_policy(Policy { resumable: Some(resumable), ..Policy::default() }).map_err(|error| match error {
        SnapshotError::BadPolicy { reason, .. } => FieldProblem::MetadataHeader { header: header.to_string(), reason },
        other => FieldProblem::Rejected(other),
    })
}

fn protocol(protocol: holdfast_crds::ResumableProtocol) -> ResumableProtocol {
    match protocol {
        holdfast_crds::ResumableProtocol::Tus => ResumableProtocol::Tus,
    }
}

fn delivery_method(method: holdfast_crds::DeliveryMethod) -> DeliveryMethod {
    match method {
        holdfast_crds::DeliveryMethod::Post => DeliveryMethod::Post,
        holdfast_crds::DeliveryMethod::Put => DeliveryMethod::Put,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overrides::PolicyOverrides;
    use holdfast_crds::UploadPolicySpec;

    fn parse(spec: ResumableSpec) -> Result<Option<Resumable>, Vec<String>> {
        let spec = UploadPolicySpec { resumable: Some(spec), ..UploadPolicySpec::default() };
        let overrides =
            PolicyOverrides::from_spec(&spec).map_err(|e| e.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
        let mut policy = Policy::default();
        overrides.apply_to(&mut policy);
        Ok(policy.resumable)
    }

    fn headers(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn translates_every_field() {
        let spec = ResumableSpec {
            protocol: Some(holdfast_crds::ResumableProtocol::Tus),
            max_size: Some("20Gi".into()),
            expires_after: Some("12h".into()),
            outcome_retention: Some("30m".into()),
            answer_wait: Some("1m30s".into()),
            delivery_method: Some(holdfast_crds::DeliveryMethod::Put),
            metadata_headers: headers(&[("title", "X-Upload-Title"), ("album", "x-album")]),
        };
        let expected = Resumable {
            protocol: ResumableProtocol::Tus,
            max_size_bytes: 20 << 30,
            expires_after_ms: 12 * 3_600_000,
            outcome_retention_ms: 30 * 60_000,
            answer_wait_ms: 90_000,
            delivery_method: DeliveryMethod::Put,
            metadata_headers: headers(&[("album", "x-album"), ("title", "X-Upload-Title")]),
        };
        assert_eq!(parse(spec), Ok(Some(expected)));
    }

    #[test]
    fn an_empty_section_turns_resumable_uploads_on_with_the_snapshot_defaults() {
        let r = parse(ResumableSpec::default()).unwrap().unwrap();
        assert_eq!(r, Resumable::default());
        // The defaults the CRD's descriptions promise: 24h, 1h, 1m, POST, no size limit of its own.
        assert_eq!(
            (r.protocol, r.delivery_method, r.max_size_bytes),
            (ResumableProtocol::Tus, DeliveryMethod::Post, 0)
        );
        assert_eq!((r.expires_after_ms, r.outcome_retention_ms, r.answer_wait_ms), (86_400_000, 3_600_000, 60_000));
        assert!(r.metadata_headers.is_empty());
    }

    #[test]
    fn a_policy_without_the_section_leaves_resumable_uploads_off() {
        let overrides = PolicyOverrides::from_spec(&UploadPolicySpec::default()).unwrap();
        let mut policy = Policy::default();
        overrides.apply_to(&mut policy);
        assert_eq!(policy.resumable, None);
    }

    #[test]
    fn refuses_each_bad_value_with_its_message() {
        let with = |change: fn(&mut ResumableSpec)| {
            let mut spec = ResumableSpec::default();
            change(&mut spec);
            spec
        };
        let cases: [(ResumableSpec, &str); 11] = [
            (
                with(|s| s.max_size = Some("20 GB".into())),
                r#"spec.resumable.maxSize: quantity "20 GB" has an unknown suffix " GB""#,
            ),
            (with(|s| s.max_size = Some("-1Gi".into())), r#"spec.resumable.maxSize: quantity "-1Gi" is negative"#),
            (with(|s| s.expires_after = Some("0s".into())), "spec.resumable.expiresAfter: must be at least 1ms"),
            (
                with(|s| s.expires_after = Some("7d".into())),
                r#"spec.resumable.expiresAfter: duration "7d" has an unknown unit "d""#,
            ),
            (
                with(|s| s.outcome_retention = Some("0ms".into())),
                "spec.resumable.outcomeRetention: must be at least 1ms",
            ),
            (with(|s| s.answer_wait = Some("30".into())), r#"spec.resumable.answerWait: duration "30" needs a unit"#),
            (
                with(|s| s.metadata_headers = headers(&[("a b", "X-A")])),
                r#"spec.resumable.metadataHeaders["a b"]: "X-A": keys must be tus metadata keys (no spaces or commas)"#,
            ),
            (
                with(|s| s.metadata_headers = headers(&[("", "X-A")])),
                r#"spec.resumable.metadataHeaders[""]: "X-A": keys must be tus metadata keys"#,
            ),
            (
                with(|s| s.metadata_headers = headers(&[("title", "X Title")])),
                r#"spec.resumable.metadataHeaders["title"]: "X Title": values must be valid header names"#,
            ),
            (
                with(|s| s.metadata_headers = headers(&[("title", "Content-Length")])),
                r#"spec.resumable.metadataHeaders["title"]: "Content-Length": may not name a field Holdfast sets on the delivery itself"#,
            ),
            (
                with(|s| s.metadata_headers = headers(&[("token", "authorization")])),
                r#"spec.resumable.metadataHeaders["token"]: "authorization": may not name a field Holdfast sets"#,
            ),
        ];
        for (spec, expected) in cases {
            let errors = parse(spec).expect_err(expected);
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].starts_with(expected), "{:?} should start with {expected:?}", errors[0]);
        }
    }

    #[test]
    fn reports_every_bad_field_at_once_and_keeps_none_of_the_section() {
        let spec = ResumableSpec {
            max_size: Some("lots".into()),
            answer_wait: Some("0s".into()),
            metadata_headers: headers(&[("title", "X-Title"), ("x", "Host"), ("y", "Cookie")]),
            ..ResumableSpec::default()
        };
        let errors = parse(spec).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.split(": ").next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "spec.resumable.maxSize",
                "spec.resumable.answerWait",
                r#"spec.resumable.metadataHeaders["x"]"#,
                r#"spec.resumable.metadataHeaders["y"]"#
            ]
        );
    }
}
