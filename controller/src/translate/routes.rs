//! Ingress rules and default backends into host rules, oldest Ingress first so that a host and path claimed twice
//! goes to the oldest claimant, deterministically, and the loser is told.

use super::backend;
use super::grpc;
use super::policy::{IngressPolicy, Targets};
use super::report::{Reason, Report};
use super::upstream::IngressUpstream;
use super::Config;
use crate::index::{BackendModel, Index, IngressModel, ObjectKey, PathModel};
use holdfast_snapshot::{Backend, HostRule, ObjectRef, PathRule, PathType, Policy, RouteTarget, Snapshot};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The snapshot under construction, and who claimed each route.
pub struct Routes<'a> {
    index: &'a Index,
    config: &'a Config,
    targets: Targets<'a>,
    hosts: BTreeMap<String, Vec<PathRule>>,
    /// (host, path, path type) → the Ingress that routes it. `PathType` is neither `Hash` nor `Ord`, hence its name.
    claimed: HashMap<(String, String, &'static str), ObjectKey>,
    default_backend: Option<(RouteTarget, ObjectKey)>,
    backends: BTreeMap<String, Backend>,
    policies: BTreeMap<String, Policy>,
}

/// One Ingress's view while its routes are added.
struct IngressCtx<'a, 'b> {
    key: &'b ObjectKey,
    policy: IngressPolicy<'a>,
    upstream: IngressUpstream,
    redirect_https: bool,
}

impl<'a> Routes<'a> {
    pub fn new(index: &'a Index, config: &'a Config, report: &mut Report) -> Self {
        Routes {
            index,
            config,
            targets: Targets::new(index, report),
            hosts: BTreeMap::new(),
            claimed: HashMap::new(),
            default_backend: None,
            backends: BTreeMap::new(),
            policies: BTreeMap::new(),
        }
    }

    /// Adds every route of one Ingress; Ingresses must come oldest first.
    pub fn add_ingress(&mut self, key: &ObjectKey, ingress: &IngressModel, report: &mut Report) {
        let ctx = IngressCtx {
            key,
            policy: IngressPolicy::new(self.index, &self.targets, key, ingress, report),
            upstream: IngressUpstream::new(self.index, key, ingress, report),
            redirect_https: redirect_https(key, ingress, report),
        };
        if let Some(model) = &ingress.default_backend {
            self.add_default_backend(&ctx, model, report);
        }
        for rule in &ingress.rules {
            let host = rule.host.to_ascii_lowercase();
            if !super::host_is_valid(&host) {
                let message = format!("host {:?} is not a DNS name or a *. wildcard of one; rule skipped", rule.host);
                report.warn("Ingress", key, Reason::InvalidHost, message);
                continue;
            }
            for path in &rule.paths {
                self.add_path(&ctx, &host, path, report);
            }
        }
    }

    fn add_default_backend(&mut self, ctx: &IngressCtx<'a, '_>, model: &BackendModel, report: &mut Report) {
        if let Some((_, winner)) = &self.default_backend {
            let message = format!("the default backend of the older Ingress {winner} is used instead of this one");
            report.warn("Ingress", ctx.key, Reason::DefaultBackendConflict, message);
            return;
        }
        if let Some(target) = self.target(ctx, model, "", "defaultBackend", report) {
            self.default_backend = Some((target, ctx.key.clone()));
        }
    }

    fn add_path(&mut self, ctx: &IngressCtx<'a, '_>, host: &str, model: &PathModel, report: &mut Report) {
        let Some((path, path_type)) = path_of(model) else {
            let message = format!(
                "path {:?} with pathType {:?} is invalid: paths must start with '/' and pathType must be Exact, Prefix or ImplementationSpecific; path skipped",
                model.path.as_deref().unwrap_or(""),
                model.path_type
            );
            report.warn("Ingress", ctx.key, Reason::InvalidPath, message);
            return;
        };
        // Prefix matching ignores a trailing '/', so "/a" and "/a/" are the same route.
        let claim_path = match path_type {
            PathType::Exact => path.clone(),
            _ => path.trim_end_matches('/').to_string(),
        };
        let claim = (host.to_string(), claim_path, path_type_name(path_type));
        if let Some(winner) = self.claimed.get(&claim) {
            let shown = if host.is_empty() { "*" } else { host };
            let message = format!("{shown} {path} ({path_type:?}) is already routed by the older Ingress {winner}");
            report.warn("Ingress", ctx.key, Reason::RouteConflict, message);
            return;
        }
        let route = format!("{} {} {}", ctx.key, if host.is_empty() { "*" } else { host }, path);
        let Some(target) = self.target(ctx, &model.backend, &route, "path", report) else { return };
        self.claimed.insert(claim, ctx.key.clone());
        self.hosts.entry(host.to_string()).or_default().push(PathRule { path, path_type, target });
    }

    /// The route target of one backend reference, registering its backend and policy; `None` skips the route.
    fn target(
        &mut self,
        ctx: &IngressCtx<'a, '_>,
        model: &BackendModel,
        route: &str,
        what: &str,
        report: &mut Report,
    ) -> Option<RouteTarget> {
        let BackendModel::Service { name: service, port } = model else {
            let message = format!("{what} has no service backend (resource backends are not supported); skipped");
            report.warn("Ingress", ctx.key, Reason::UnsupportedBackend, message);
            return None;
        };
        let mut resolution = match backend::resolve(self.index, &ctx.key.namespace, service, port) {
            Ok(resolution) => resolution,
            Err((reason, message)) => {
                report.warn("Ingress", ctx.key, reason, format!("{message}; {what} skipped"));
                return None;
            }
        };
        if let Err(message) = ctx.upstream.apply(ctx.key, &ctx.key.namespace, service, &mut resolution, report) {
            report.warn("Ingress", ctx.key, Reason::UpstreamTlsInvalid, format!("{message}; {what} skipped"));
            return None;
        }
        if let Some((reason, message)) = resolution.problem {
            report.warn("Ingress", ctx.key, reason, format!("{message}; requests to it get 503"));
        }
        let protocol = resolution.backend.protocol;
        // Routes that name one Service port differently (`80` and `http`) share its backend; the oldest Ingress's
        // route, added first, names it for the metric labels, as the oldest claimant wins everywhere else.
        self.backends.entry(resolution.name.clone()).or_insert(resolution.backend);
        let route_policy = ctx.policy.for_route(&self.targets, ctx.key, service, &self.config.default_policy);
        grpc::warn_if_buffered(ctx.key, &route_policy, protocol, &resolution.name, report);
        if let (Some(policy_key), false) = (route_policy.attached, route.is_empty()) {
            if let Some(status) = report.policies.get_mut(policy_key) {
                status.attached_routes.insert(route.to_string());
            }
        }
        self.policies.insert(route_policy.name.clone(), route_policy.policy);
        Some(RouteTarget {
            backend: resolution.name,
            policy: Some(route_policy.name),
            source: Some(format!("ingress {}", ctx.key)),
            redirect_https: ctx.redirect_https,
            ingress: Some(ObjectRef { namespace: ctx.key.namespace.clone(), name: ctx.key.name.clone() }),
        })
    }

    pub fn into_snapshot(self) -> Snapshot {
        Snapshot {
            version: 0,
            hosts: Arc::new(self.hosts.into_iter().map(|(host, paths)| HostRule { host, paths }).collect()),
            default_backend: self.default_backend.map(|(target, _)| target),
            backends: self.backends.into_iter().map(|(name, backend)| (name, Arc::new(backend))).collect(),
            policies: Arc::new(self.policies),
            tls: Default::default(),
            peers: Default::default(),
        }
    }
}

/// Whether plain-HTTP requests to this Ingress's routes are redirected to HTTPS. Off unless asked for, with
/// `holdfast.io/ssl-redirect: "true"` or, for users of ingress-nginx, its `force-ssl-redirect` or `ssl-redirect`
/// set explicitly to `"true"` (ingress-nginx's implicit redirect for TLS Ingresses is not copied: the dataplane may
/// have no TLS listener). The Holdfast annotation wins.
fn redirect_https(key: &ObjectKey, ingress: &IngressModel, report: &mut Report) -> bool {
    let candidates = [
        ("holdfast.io/ssl-redirect", ingress.ssl_redirect_annotation.as_deref()),
        ("nginx.ingress.kubernetes.io/force-ssl-redirect", ingress.nginx.get("force-ssl-redirect").map(String::as_str)),
        ("nginx.ingress.kubernetes.io/ssl-redirect", ingress.nginx.get("ssl-redirect").map(String::as_str)),
    ];
    for (name, value) in candidates {
        match value {
            None => continue,
            Some("true") => return true,
            Some("false") => return false,
            Some(other) => {
                let message = format!("{name}: {other:?} must be \"true\" or \"false\"; annotation ignored");
                report.warn("Ingress", key, Reason::InvalidAnnotation, message);
            }
        }
    }
    false
}

/// The path and its type as the snapshot takes them. An `ImplementationSpecific` path may be omitted and then
/// matches everything, as in other controllers; `Exact` and `Prefix` paths are required by the API.
fn path_of(model: &PathModel) -> Option<(String, PathType)> {
    let path_type = match model.path_type.as_str() {
        "Exact" => PathType::Exact,
        "Prefix" => PathType::Prefix,
        "ImplementationSpecific" => PathType::ImplementationSpecific,
        _ => return None,
    };
    let path = match (model.path.as_deref(), path_type) {
        (None | Some(""), PathType::ImplementationSpecific) => "/",
        (Some(p), _) if p.starts_with('/') => p,
        _ => return None,
    };
    Some((path.to_string(), path_type))
}

fn path_type_name(path_type: PathType) -> &'static str {
    match path_type {
        PathType::Exact => "Exact",
        PathType::Prefix => "Prefix",
        PathType::ImplementationSpecific => "ImplementationSpecific",
    }
}
