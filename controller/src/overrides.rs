//! Explicitly set upload-policy fields, from an `UploadPolicy` spec or from ingress-nginx annotations, and how they
//! layer: the controller's defaults, then nginx annotations, then the UploadPolicy (explicit Holdfast settings win).
//! Only fields that were set override, so an UploadPolicy that sets `mode` alone keeps an annotation's body size.

mod resumable;

use holdfast_crds::{parse_bytes, parse_duration, DurationError, QuantityError, ReplayFailure, UploadPolicySpec};
use holdfast_snapshot::{
    BodyMode, Policy, Resumable, SnapshotError, MIN_RATE_WINDOW_CEILING_MS, MIN_RATE_WINDOW_FLOOR_MS,
};

/// The dataplane's bounds of `minBodyRate.windowMs`, in the user's units.
const WINDOW_BOUNDS: &str = "must be between 100ms and 1h";

/// A spec or annotation field that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: FieldProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum FieldProblem {
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    #[error(transparent)]
    Duration(#[from] DurationError),
    /// Parsed, but refused by the dataplane's own check for another reason.
    #[error(transparent)]
    Rejected(SnapshotError),
    /// Outside the dataplane's bounds; `field` is the dataplane's name for it.
    #[error("{field} {reason}")]
    OutOfBounds { field: &'static str, reason: &'static str },
    #[error("{0}")]
    Invalid(&'static str),
    /// A `resumable.metadataHeaders` entry the dataplane refuses: the field name it maps to, and the dataplane's rule.
    #[error("{header:?}: {reason}")]
    MetadataHeader { header: String, reason: &'static str },
}

/// Upload-policy fields that were set explicitly; `None` leaves the layer below in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyOverrides {
    pub max_body_size_bytes: Option<u64>,
    pub memory_buffer_bytes: Option<u64>,
    pub mode: Option<BodyMode>,
    pub max_attempts: Option<u32>,
    pub upstream_wait_timeout_ms: Option<u64>,
    pub on_reset: Option<bool>,
    pub on_timeout: Option<bool>,
    pub client_body_ms: Option<u64>,
    pub upstream_connect_ms: Option<u64>,
    pub upstream_send_ms: Option<u64>,
    pub upstream_read_ms: Option<u64>,
    pub tunnel_idle_ms: Option<u64>,
    /// `minBodyRate.bytesPerSecond` (0: off) and `minBodyRate.window`, each on its own: a policy that sets only the
    /// window keeps the rate of the layer below.
    pub min_bytes_per_second: Option<u64>,
    pub min_rate_window_ms: Option<u64>,
    /// Only an UploadPolicy sets it, and whole: its `resumable` section with the snapshot's defaults filled in.
    pub resumable: Option<Resumable>,
}

impl PolicyOverrides {
    /// Parses an UploadPolicy spec, collecting every bad field rather than stopping at the first.
    pub fn from_spec(spec: &UploadPolicySpec) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut bytes = |field: &str, value: &Option<String>| {
            value.as_deref().and_then(|v| keep(field, parse_bytes(v).map_err(FieldProblem::from), &mut errors))
        };
        let mut o = PolicyOverrides {
            max_body_size_bytes: bytes("spec.maxBodySize", &spec.max_body_size),
            memory_buffer_bytes: bytes("spec.memoryBuffer", &spec.memory_buffer),
            mode: spec.mode.map(body_mode),
            ..Default::default()
        };
        let replay = spec.replay.clone().unwrap_or_default();
        if let Some(attempts) = replay.max_attempts {
            let attempts =
                u32::try_from(attempts).ok().filter(|a| *a >= 1).ok_or(FieldProblem::Invalid("must be at least 1"));
            o.max_attempts = keep("spec.replay.maxAttempts", attempts, &mut errors);
        }
        o.upstream_wait_timeout_ms =
            millis("spec.replay.upstreamWaitTimeout", &replay.upstream_wait_timeout, &mut errors);
        if let Some(failures) = &replay.failures {
            o.on_reset = Some(failures.contains(&ReplayFailure::Reset));
            o.on_timeout = Some(failures.contains(&ReplayFailure::Timeout));
        }
        let t = spec.timeouts.clone().unwrap_or_default();
        o.client_body_ms = millis("spec.timeouts.clientBodyTimeout", &t.client_body_timeout, &mut errors);
        o.upstream_connect_ms =
            millis("spec.timeouts.upstreamConnectTimeout", &t.upstream_connect_timeout, &mut errors);
        o.upstream_send_ms = millis("spec.timeouts.upstreamSendTimeout", &t.upstream_send_timeout, &mut errors);
        o.upstream_read_ms = millis("spec.timeouts.upstreamReadTimeout", &t.upstream_read_timeout, &mut errors);
        o.tunnel_idle_ms = millis("spec.timeouts.tunnelIdleTimeout", &t.tunnel_idle_timeout, &mut errors);
        let rate = spec.min_body_rate.clone().unwrap_or_default();
        if let Some(bytes) = rate.bytes_per_second {
            let bytes = u64::try_from(bytes).map_err(|_| FieldProblem::Invalid("must not be negative"));
            o.min_bytes_per_second = keep("spec.minBodyRate.bytesPerSecond", bytes, &mut errors);
        }
        o.min_rate_window_ms = millis("spec.minBodyRate.window", &rate.window, &mut errors).and_then(|ms| {
            let bounds = MIN_RATE_WINDOW_FLOOR_MS..=MIN_RATE_WINDOW_CEILING_MS;
            let ms = Some(ms).filter(|ms| bounds.contains(ms)).ok_or(FieldProblem::Invalid(WINDOW_BOUNDS));
            keep("spec.minBodyRate.window", ms, &mut errors)
        });
        o.resumable = spec.resumable.as_ref().and_then(|r| resumable::from_spec(r, &mut errors));
        if let Err(problem) = o.check() {
            errors.push(FieldError { field: "spec".to_string(), problem });
        }
        if errors.is_empty() {
            Ok(o)
        } else {
            Err(errors)
        }
    }

    /// Sets every field that is `Some` on `policy`.
    pub fn apply_to(&self, policy: &mut Policy) {
        let set = |target: &mut u64, value: Option<u64>| *target = value.unwrap_or(*target);
        set(&mut policy.max_body_size_bytes, self.max_body_size_bytes);
        set(&mut policy.memory_buffer_bytes, self.memory_buffer_bytes);
        policy.mode = self.mode.unwrap_or(policy.mode);
        policy.replay.max_attempts = self.max_attempts.unwrap_or(policy.replay.max_attempts);
        set(&mut policy.replay.upstream_wait_timeout_ms, self.upstream_wait_timeout_ms);
        policy.replay.on_reset = self.on_reset.unwrap_or(policy.replay.on_reset);
        policy.replay.on_timeout = self.on_timeout.unwrap_or(policy.replay.on_timeout);
        set(&mut policy.timeouts.client_body_ms, self.client_body_ms);
        set(&mut policy.timeouts.upstream_connect_ms, self.upstream_connect_ms);
        set(&mut policy.timeouts.upstream_send_ms, self.upstream_send_ms);
        set(&mut policy.timeouts.upstream_read_ms, self.upstream_read_ms);
        set(&mut policy.timeouts.tunnel_idle_ms, self.tunnel_idle_ms);
        set(&mut policy.min_body_rate.bytes_per_second, self.min_bytes_per_second);
        set(&mut policy.min_body_rate.window_ms, self.min_rate_window_ms);
        if let Some(resumable) = &self.resumable {
            policy.resumable = Some(resumable.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self == &PolicyOverrides::default()
    }

    /// Checks the set fields against the dataplane's own bounds, on top of the snapshot defaults. Bounds are per field,
    /// so overrides that pass here stay valid on top of any valid defaults.
    pub fn check(&self) -> Result<(), FieldProblem> {
        let mut policy = Policy::default();
        self.apply_to(&mut policy);
        check_policy(policy).map_err(|error| match error {
            SnapshotError::BadPolicy { field, reason, .. } => FieldProblem::OutOfBounds { field, reason },
            other => FieldProblem::Rejected(other),
        })
    }
}

/// Runs the dataplane's validation on one policy, so the controller refuses exactly what the dataplane would.
pub fn check_policy(policy: Policy) -> Result<(), SnapshotError> {
    policy.validate("p")
}

pub fn body_mode(mode: holdfast_crds::BodyMode) -> BodyMode {
    match mode {
        holdfast_crds::BodyMode::Buffered => BodyMode::Buffered,
        holdfast_crds::BodyMode::Tee => BodyMode::Tee,
        holdfast_crds::BodyMode::Streaming => BodyMode::Streaming,
    }
}

fn millis(field: &str, value: &Option<String>, errors: &mut Vec<FieldError>) -> Option<u64> {
    let value = value.as_deref()?;
    let parsed = parse_duration(value).map_err(FieldProblem::from).and_then(|d| match d.as_millis() {
        0 => Err(FieldProblem::Invalid("must be at least 1ms")),
        ms => u64::try_from(ms).map_err(|_| FieldProblem::Invalid("is too long")),
    });
    keep(field, parsed, errors)
}

fn keep<T>(field: &str, result: Result<T, FieldProblem>, errors: &mut Vec<FieldError>) -> Option<T> {
    result.map_err(|problem| errors.push(FieldError { field: field.to_string(), problem })).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_crds::{MinBodyRateSpec, ReplaySpec, TimeoutsSpec};

    fn spec() -> UploadPolicySpec {
        UploadPolicySpec::default()
    }

    #[test]
    fn parses_every_field_of_a_valid_spec() {
        let s = UploadPolicySpec {
            max_body_size: Some("10Gi".into()),
            memory_buffer: Some("1Mi".into()),
            mode: Some(holdfast_crds::BodyMode::Tee),
            replay: Some(ReplaySpec {
                max_attempts: Some(3),
                upstream_wait_timeout: Some("2m".into()),
                failures: Some(vec![ReplayFailure::Reset]),
            }),
            timeouts: Some(TimeoutsSpec {
                client_body_timeout: Some("90s".into()),
                upstream_connect_timeout: Some("250ms".into()),
                upstream_send_timeout: Some("1m".into()),
                upstream_read_timeout: Some("5m".into()),
                tunnel_idle_timeout: Some("2h".into()),
            }),
            ..spec()
        };
        let o = PolicyOverrides::from_spec(&s).unwrap();
        let mut p = Policy::default();
        o.apply_to(&mut p);
        assert_eq!(p.max_body_size_bytes, 10 << 30);
        assert_eq!(p.memory_buffer_bytes, 1 << 20);
        assert_eq!(p.mode, BodyMode::Tee);
        assert_eq!((p.replay.max_attempts, p.replay.upstream_wait_timeout_ms), (3, 120_000));
        assert_eq!((p.replay.on_reset, p.replay.on_timeout), (true, false));
        assert_eq!(p.timeouts.client_body_ms, 90_000);
        assert_eq!(p.timeouts.upstream_connect_ms, 250);
        assert_eq!(p.timeouts.upstream_read_ms, 300_000);
        assert_eq!(p.timeouts.tunnel_idle_ms, 7_200_000);
        assert_eq!(p.min_body_rate, holdfast_snapshot::MinBodyRate::default(), "unset: the snapshot's default");
    }

    #[test]
    fn min_body_rate_fields_override_one_by_one_and_zero_turns_it_off() {
        let with = |bytes_per_second: Option<i64>, window: Option<&str>| {
            let min_body_rate = Some(MinBodyRateSpec { bytes_per_second, window: window.map(String::from) });
            PolicyOverrides::from_spec(&UploadPolicySpec { min_body_rate, ..spec() })
        };
        let mut p = Policy::default();
        with(Some(2048), Some("30s")).unwrap().apply_to(&mut p);
        assert_eq!((p.min_body_rate.bytes_per_second, p.min_body_rate.window_ms), (2048, 30_000));
        // Only the window: the rate of the layer below stays.
        with(None, Some("1m30s")).unwrap().apply_to(&mut p);
        assert_eq!((p.min_body_rate.bytes_per_second, p.min_body_rate.window_ms), (2048, 90_000));
        with(Some(0), None).unwrap().apply_to(&mut p);
        assert!(p.min_body_rate.is_off());
        for (bytes, window, says) in [
            (Some(-1), None, "spec.minBodyRate.bytesPerSecond: must not be negative"),
            (None, Some("50ms"), "spec.minBodyRate.window: must be between 100ms and 1h"),
            (None, Some("2h"), "spec.minBodyRate.window: must be between 100ms and 1h"),
            (None, Some("soon"), "spec.minBodyRate.window: duration \"soon\""),
            (Some(1 << 31), None, "minBodyRate.bytesPerSecond must be at most"),
        ] {
            let errors: Vec<String> = with(bytes, window).unwrap_err().iter().map(|e| e.to_string()).collect();
            assert!(errors.iter().any(|e| e.contains(says)), "{errors:?} should say {says:?}");
        }
    }

    #[test]
    fn unset_fields_keep_the_layer_below() {
        let o = PolicyOverrides::from_spec(&UploadPolicySpec { max_body_size: Some("1k".into()), ..spec() }).unwrap();
        let mut p = Policy { mode: BodyMode::Streaming, ..Policy::default() };
        o.apply_to(&mut p);
        assert_eq!((p.max_body_size_bytes, p.mode), (1000, BodyMode::Streaming));
    }

    #[test]
    fn reports_every_bad_field_by_name() {
        let s = UploadPolicySpec {
            max_body_size: Some("ten gigs".into()),
            memory_buffer: Some("1Gi".into()),
            replay: Some(ReplaySpec { max_attempts: Some(0), ..Default::default() }),
            timeouts: Some(TimeoutsSpec { upstream_read_timeout: Some("0s".into()), ..Default::default() }),
            ..spec()
        };
        let errors: Vec<String> = PolicyOverrides::from_spec(&s).unwrap_err().iter().map(|e| e.to_string()).collect();
        let joined = errors.join("\n");
        for expected in
            ["spec.maxBodySize", "spec.replay.maxAttempts", "spec.timeouts.upstreamReadTimeout: must be at least 1ms"]
        {
            assert!(joined.contains(expected), "{joined} should mention {expected}");
        }
        let s = UploadPolicySpec { memory_buffer: Some("1Gi".into()), ..spec() };
        let joined: Vec<String> = PolicyOverrides::from_spec(&s).unwrap_err().iter().map(|e| e.to_string()).collect();
        assert!(joined[0].contains("at most 64 MiB"), "{joined:?}");
    }
}
