//! ingress-nginx annotations, for users moving from ingress-nginx: each maps onto the same policy field an
//! UploadPolicy sets, and an UploadPolicy's explicit settings win over them. nginx sizes use 1024-based `k`, `m`, `g`
//! suffixes and its timeouts are plain seconds, so they are parsed here, not as Kubernetes quantities.

use crate::overrides::{FieldError, FieldProblem, PolicyOverrides};
use holdfast_crds::parse_duration;
use holdfast_snapshot::BodyMode;
use std::collections::BTreeMap;

/// The overrides the annotations (prefix removed) ask for, and the annotations that were ignored and why.
pub fn overrides(annotations: &BTreeMap<String, String>) -> (PolicyOverrides, Vec<FieldError>) {
    let mut o = PolicyOverrides::default();
    let mut errors = Vec::new();
    for (name, value) in annotations {
        let parsed: Option<Result<Setter, FieldProblem>> = match name.as_str() {
            "proxy-body-size" => Some(size(value).map(|v| set(move |o| o.max_body_size_bytes = Some(v)))),
            "client-body-buffer-size" => Some(size(value).map(|v| set(move |o| o.memory_buffer_bytes = Some(v)))),
            "proxy-request-buffering" => Some(buffering(value).map(|m| set(move |o| o.mode = Some(m)))),
            "proxy-connect-timeout" => Some(seconds(value).map(|v| set(move |o| o.upstream_connect_ms = Some(v)))),
            "proxy-send-timeout" => Some(seconds(value).map(|v| set(move |o| o.upstream_send_ms = Some(v)))),
            "proxy-read-timeout" => Some(seconds(value).map(|v| set(move |o| o.upstream_read_ms = Some(v)))),
            "proxy-next-upstream-tries" => Some(tries(value).map(|v| set(move |o| o.max_attempts = Some(v)))),
            "proxy-next-upstream-timeout" => {
                Some(seconds(value).map(|v| set(move |o| o.upstream_wait_timeout_ms = Some(v))))
            }
            _ => None,
        };
        let field = format!("nginx.ingress.kubernetes.io/{name}");
        match parsed {
            None => {}
            Some(Err(problem)) => errors.push(FieldError { field, problem }),
            Some(Ok(apply)) => {
                // Each annotation is checked on its own against the dataplane's bounds, so one out-of-range value
                // is dropped without losing the others.
                let mut candidate = o.clone();
                apply(&mut candidate);
                match candidate.check() {
                    Ok(()) => o = candidate,
                    Err(problem) => errors.push(FieldError { field, problem }),
                }
            }
        }
    }
    (o, errors)
}

/// Sets one parsed annotation's field; built per annotation so each can be checked on its own.
type Setter = Box<dyn Fn(&mut PolicyOverrides)>;

fn set(f: impl Fn(&mut PolicyOverrides) + 'static) -> Setter {
    Box::new(f)
}

/// nginx sizes: a number of bytes with an optional `k`, `m` or `g` (1024-based, either case). `0` is unlimited.
fn size(value: &str) -> Result<u64, FieldProblem> {
    let bad = FieldProblem::Invalid("is not an nginx size such as 8m, 512k or 1g");
    let value = value.trim();
    let (digits, multiplier) = match value.char_indices().last() {
        Some((i, 'k' | 'K')) => (&value[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&value[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&value[..i], 1 << 30),
        _ => (value, 1),
    };
    let number: u64 = digits.parse().map_err(|_| bad)?;
    number.checked_mul(multiplier).ok_or(FieldProblem::Invalid("is too large"))
}

/// `on` buffers the whole body (our `Buffered`); `off` streams it (our `Streaming`).
fn buffering(value: &str) -> Result<BodyMode, FieldProblem> {
    match value.trim() {
        "on" => Ok(BodyMode::Buffered),
        "off" => Ok(BodyMode::Streaming),
        _ => Err(FieldProblem::Invalid("must be on or off")),
    }
}

/// ingress-nginx timeouts are whole seconds ("60"); a duration with a unit ("60s") is accepted too. nginx reads 0 as
/// "no limit", which Holdfast does not have, so it is refused rather than turned into an instant timeout.
fn seconds(value: &str) -> Result<u64, FieldProblem> {
    let value = value.trim();
    let millis = match value.parse::<u64>() {
        Ok(secs) => secs.checked_mul(1000).ok_or(FieldProblem::Invalid("is too large"))?,
        Err(_) => {
            u64::try_from(parse_duration(value)?.as_millis()).map_err(|_| FieldProblem::Invalid("is too large"))?
        }
    };
    if millis == 0 {
        return Err(FieldProblem::Invalid("0 (no limit) is not supported; the default applies"));
    }
    Ok(millis)
}

/// Tries, like our `maxAttempts`, count the first attempt. nginx's 0 means unlimited, which Holdfast does not offer.
fn tries(value: &str) -> Result<u32, FieldProblem> {
    match value.trim().parse::<u32>() {
        Ok(0) => Err(FieldProblem::Invalid("0 (unlimited) is not supported; the default applies")),
        Ok(n) => Ok(n),
        Err(_) => Err(FieldProblem::Invalid("must be a whole number of tries")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn maps_each_annotation_onto_its_policy_field() {
        let (o, errors) = overrides(&map(&[
            ("proxy-body-size", "8m"),
            ("client-body-buffer-size", "512k"),
            ("proxy-request-buffering", "off"),
            ("proxy-connect-timeout", "3"),
            ("proxy-send-timeout", "120"),
            ("proxy-read-timeout", "90s"),
            ("proxy-next-upstream-tries", "7"),
            ("proxy-next-upstream-timeout", "30"),
            ("rewrite-target", "/"),
        ]));
        assert!(errors.is_empty(), "{errors:?}");
        let expected = PolicyOverrides {
            max_body_size_bytes: Some(8 << 20),
            memory_buffer_bytes: Some(512 << 10),
            mode: Some(BodyMode::Streaming),
            upstream_connect_ms: Some(3_000),
            upstream_send_ms: Some(120_000),
            upstream_read_ms: Some(90_000),
            max_attempts: Some(7),
            upstream_wait_timeout_ms: Some(30_000),
            ..Default::default()
        };
        assert_eq!(o, expected);
    }

    #[test]
    fn bad_annotations_are_reported_and_skipped_alone() {
        let cases = [
            ("proxy-body-size", "8 megs", "not an nginx size"),
            ("proxy-body-size", "-1", "not an nginx size"),
            ("client-body-buffer-size", "1g", "at most 64 MiB"),
            ("proxy-request-buffering", "maybe", "on or off"),
            ("proxy-read-timeout", "0", "no limit"),
            ("proxy-read-timeout", "soon", "not a number"),
            ("proxy-next-upstream-tries", "0", "unlimited"),
        ];
        for (name, value, expected) in cases {
            let (o, errors) = overrides(&map(&[(name, value), ("proxy-send-timeout", "5")]));
            assert_eq!(o.upstream_send_ms, Some(5_000), "{name}={value} must not drop the others");
            let message = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
            assert!(message.contains(name) && message.contains(expected), "{name}={value}: {message}");
        }
    }

    #[test]
    fn body_size_zero_means_unlimited() {
        let (o, errors) = overrides(&map(&[("proxy-body-size", "0")]));
        assert!(errors.is_empty());
        assert_eq!(o.max_body_size_bytes, Some(0));
    }
}
