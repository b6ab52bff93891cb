//! Which upload policy governs a route, and the status of each UploadPolicy.
//!
//! Precedence, most specific first: the Ingress's `holdfast.io/upload-policy` annotation, then an UploadPolicy whose
//! `targetRefs` name the Ingress, then one naming the backend Service, then the controller's defaults. Among several
//! policies targeting the same object the oldest wins. ingress-nginx annotations sit between the defaults and the
//! chosen UploadPolicy: the UploadPolicy's explicit fields win over them.

use super::report::{ConditionState, PolicyStatus, Reason, Report};
use crate::index::{Index, IngressModel, ObjectKey, PolicyModel};
use crate::overrides::PolicyOverrides;
use holdfast_crds::TargetKind;
use holdfast_snapshot::Policy;
use std::collections::BTreeMap;

/// Snapshot policy name of the controller's defaults.
pub const DEFAULT_POLICY: &str = "default";

/// Policies by the object they target, oldest first.
pub struct Targets<'a> {
    by_target: BTreeMap<(TargetKind, ObjectKey), Vec<(&'a ObjectKey, &'a PolicyModel)>>,
}

impl<'a> Targets<'a> {
    pub fn new(index: &'a Index, report: &mut Report) -> Self {
        let mut by_target: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for (key, policy) in &index.policies {
            for target in &policy.targets {
                let target_key = ObjectKey::new(&key.namespace, &target.name);
                by_target.entry((target.kind, target_key)).or_default().push((key, policy));
            }
        }
        for ((kind, target), policies) in &mut by_target {
            policies.sort_by(|(ka, a), (kb, b)| (&a.age, ka).cmp(&(&b.age, kb)));
            policies.dedup_by_key(|(k, _)| *k);
            for (loser, _) in policies.iter().skip(1) {
                let winner = policies[0].0;
                let message =
                    format!("{kind:?} {target} is also targeted by the older UploadPolicy {winner}, which wins");
                report.warn("UploadPolicy", loser, Reason::PolicyConflict, message);
            }
        }
        Targets { by_target }
    }

    fn oldest_usable(&self, kind: TargetKind, target: &ObjectKey) -> Option<(&'a ObjectKey, &'a PolicyOverrides)> {
        self.by_target.get(&(kind, target.clone()))?.iter().find_map(|(k, p)| Some((*k, p.in_force()?)))
    }
}

/// The policy choice for one Ingress, computed once (annotation lookups and nginx parsing warn only once).
pub struct IngressPolicy<'a> {
    annotated: Option<(&'a ObjectKey, &'a PolicyOverrides)>,
    targeted: Option<(&'a ObjectKey, &'a PolicyOverrides)>,
    nginx: PolicyOverrides,
}

impl<'a> IngressPolicy<'a> {
    pub fn new(
        index: &'a Index,
        targets: &Targets<'a>,
        key: &ObjectKey,
        ingress: &IngressModel,
        report: &mut Report,
    ) -> Self {
        let annotated = ingress.policy_annotation.as_ref().and_then(|name| {
            let policy_key = ObjectKey::new(&key.namespace, name);
            let found = index.policies.get_key_value(&policy_key).and_then(|(k, p)| Some((k, p.in_force()?)));
            if found.is_none() {
                let message = format!("holdfast.io/upload-policy names UploadPolicy {policy_key}, which does not exist or has never been valid; the next policy in precedence applies");
                report.warn("Ingress", key, Reason::PolicyNotFound, message);
            }
            found
        });
        let (nginx, errors) = super::nginx::overrides(&ingress.nginx);
        for error in errors {
            report.warn("Ingress", key, Reason::InvalidAnnotation, format!("{error}; annotation ignored"));
        }
        IngressPolicy { annotated, targeted: targets.oldest_usable(TargetKind::Ingress, key), nginx }
    }

    /// The policy of a route of this Ingress to `service`: its snapshot name (`default` when nothing but the
    /// controller's defaults applies), the policy, the UploadPolicy in force (to attach the route to it), and who
    /// set the body mode explicitly.
    pub fn for_route(
        &self,
        targets: &Targets<'a>,
        ingress: &ObjectKey,
        service: &str,
        defaults: &Policy,
    ) -> RoutePolicy<'a> {
        let service_policy =
            || targets.oldest_usable(TargetKind::Service, &ObjectKey::new(&ingress.namespace, service));
        let chosen = self.annotated.or(self.targeted).or_else(service_policy);
        let mut policy = defaults.clone();
        self.nginx.apply_to(&mut policy);
        if let Some((_, overrides)) = chosen {
            overrides.apply_to(&mut policy);
        }
        let name = match (chosen, self.nginx.is_empty()) {
            (None, true) => DEFAULT_POLICY.to_string(),
            (Some((key, _)), true) => key.to_string(),
            (None, false) => format!("ingress:{ingress}"),
            (Some((key, _)), false) => format!("{key}+ingress:{ingress}"),
        };
        // The same layering as `apply_to`: the UploadPolicy's explicit mode wins over the annotation's.
        let mode_set_by = match chosen {
            Some((key, overrides)) if overrides.mode.is_some() => Some(ModeSource::UploadPolicy(key)),
            _ if self.nginx.mode.is_some() => Some(ModeSource::Annotation),
            _ => None,
        };
        RoutePolicy { name, policy, attached: chosen.map(|(key, _)| key), mode_set_by }
    }
}

/// The policy chosen for one route.
pub struct RoutePolicy<'a> {
    /// The snapshot policy name.
    pub name: String,
    pub policy: Policy,
    /// The UploadPolicy in force, if any.
    pub attached: Option<&'a ObjectKey>,
    /// Who set `mode` explicitly; `None` when it is the controller's default (`--default-mode`).
    pub mode_set_by: Option<ModeSource<'a>>,
}

/// Where an explicitly set body mode came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeSource<'a> {
    UploadPolicy(&'a ObjectKey),
    /// `nginx.ingress.kubernetes.io/proxy-request-buffering`.
    Annotation,
}

/// Accepted and ResolvedRefs for every UploadPolicy; attached routes are filled in as routes are built.
pub fn statuses(index: &Index) -> BTreeMap<ObjectKey, PolicyStatus> {
    index.policies.iter().map(|(key, policy)| (key.clone(), status(index, key, policy))).collect()
}

fn status(index: &Index, key: &ObjectKey, policy: &PolicyModel) -> PolicyStatus {
    let accepted = match &policy.parsed {
        Ok(_) => {
            ConditionState { status: true, reason: "Accepted", message: "The policy is valid and in force".into() }
        }
        Err(errors) => {
            let problems = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
            let consequence = if policy.last_good.is_some() {
                "the previous valid spec stays in force"
            } else {
                "the policy is not in force"
            };
            ConditionState { status: false, reason: "Invalid", message: format!("{problems}; {consequence}") }
        }
    };
    let missing: Vec<String> = policy
        .targets
        .iter()
        .filter(|t| {
            let target = ObjectKey::new(&key.namespace, &t.name);
            match t.kind {
                TargetKind::Ingress => !index.ingresses.contains_key(&target),
                TargetKind::Service => !index.services.contains_key(&target),
            }
        })
        .map(|t| format!("{:?} {}", t.kind, t.name))
        .collect();
    let resolved_refs = if missing.is_empty() {
        ConditionState { status: true, reason: "ResolvedRefs", message: "Every target exists".into() }
    } else {
        ConditionState {
            status: false,
            reason: "TargetNotFound",
            message: format!("targets not found in namespace {}: {}", key.namespace, missing.join(", ")),
        }
    };
    PolicyStatus {
        generation: policy.generation,
        accepted,
        resolved_refs,
        attached_routes: Default::default(),
        observed: policy.observed_status.clone(),
    }
}
