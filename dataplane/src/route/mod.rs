//! Request routing with Ingress semantics (networking.k8s.io/v1).
//!
//! A host picks one group of paths: the exact host first, then the `*.suffix` wildcard that covers exactly one more
//! DNS label, then the rules without a host. Within the group the longest path wins, and `Exact` beats `Prefix` for
//! the same path. Like nginx's server blocks, a host that matched a group does not fall through to another group;
//! when its paths do not match, the default backend answers, and without one the request gets 404.
//!
//! Before a request is routed, `target` checks its host fields and puts its path in normal form (`normalize`); rule
//! paths are compiled in the same form, so that they are compared like with like.

mod host_field;
mod normalize;
mod path;
mod target;

use crate::metrics::route::{RouteFamilies, RouteLabels, RouteMetrics};
use holdfast_snapshot::{PathType, Policy, RouteTarget, Snapshot};
use std::collections::HashMap;
use std::sync::Arc;

pub use normalize::{normalize_path, PathError};
pub use path::{normalize_prefix, prefix_matches};
pub use target::{prepare, TargetError, MAX_TARGET_BYTES, MAX_TARGET_BYTES_CEILING};

/// What a request was routed to.
#[derive(Debug)]
pub struct Route {
    pub backend: Arc<str>,
    pub policy: Arc<Policy>,
    /// The object the route came from, for logs.
    pub source: Option<Arc<str>>,
    /// Plain-HTTP requests get a redirect to HTTPS.
    pub redirect_https: bool,
    /// The route's series, labelled with its Ingress and its backend's Service port (`None`: `--route-metrics off`).
    pub metrics: Option<Arc<RouteMetrics>>,
}

/// The compiled routing table of one snapshot.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: HashMap<String, PathGroup>,
    /// Keyed by the suffix after `*.` (e.g. `example.com`).
    wildcard: HashMap<String, PathGroup>,
    any_host: Option<PathGroup>,
    default_route: Option<Arc<Route>>,
}

#[derive(Debug, Default)]
struct PathGroup {
    /// Sorted so that the first match is the winner: longer paths first, then `Exact` before `Prefix`.
    paths: Vec<CompiledPath>,
}

#[derive(Debug)]
struct CompiledPath {
    /// For `Prefix`, without its trailing slash (except for `/` itself).
    path: String,
    exact: bool,
    route: Arc<Route>,
}

impl RouteTable {
    /// Compiles a validated snapshot, taking each route's metrics from `families` (none without).
    pub fn compile(snapshot: &Snapshot, families: Option<&Arc<RouteFamilies>>) -> Self {
        let policies: HashMap<&str, Arc<Policy>> =
            snapshot.policies.iter().map(|(name, policy)| (name.as_str(), Arc::new(policy.clone()))).collect();
        let default_policy = Arc::new(Policy::default());
        let make_route = |target: &RouteTarget| {
            let policy = target.policy.as_deref().and_then(|name| policies.get(name)).unwrap_or(&default_policy);
            Arc::new(Route {
                backend: Arc::from(target.backend.as_str()),
                policy: policy.clone(),
                source: target.source.as_deref().map(Arc::from),
                redirect_https: target.redirect_https,
                metrics: families.map(|f| f.for_route(labels(snapshot, target))),
            })
        };
        let mut table =
            RouteTable { default_route: snapshot.default_backend.as_ref().map(make_route), ..Default::default() };
        for rule in snapshot.hosts.iter() {
            let mut group = PathGroup::default();
            for p in &rule.paths {
                let exact = p.path_type == PathType::Exact;
                // A rule path with no normal form can match no request (such requests get 400): kept as written.
                let path = normalize_path(&p.path).unwrap_or(std::borrow::Cow::Borrowed(&p.path));
                let path = if exact { path.into_owned() } else { normalize_prefix(&path).to_string() };
                group.paths.push(CompiledPath { path, exact, route: make_route(&p.target) });
            }
            group.paths.sort_by(|a, b| b.path.len().cmp(&a.path.len()).then(b.exact.cmp(&a.exact)));
            let host = rule.host.to_ascii_lowercase();
            if host.is_empty() {
                table.any_host = Some(group);
            } else if let Some(suffix) = host.strip_prefix("*.") {
                table.wildcard.insert(suffix.to_string(), group);
            } else {
                table.exact.insert(host, group);
            }
        }
        table
    }

    /// The route for a request's host (without port, any case) and path (without query).
    pub fn find(&self, host: &str, path: &str) -> Option<Arc<Route>> {
        let host = host.to_ascii_lowercase();
        let group = self
            .exact
            .get(&host)
            .or_else(|| host.split_once('.').and_then(|(_, suffix)| self.wildcard.get(suffix)))
            .or(self.any_host.as_ref());
        group.and_then(|g| g.find(path)).or_else(|| self.default_route.clone())
    }
}

impl PathGroup {
    fn find(&self, request_path: &str) -> Option<Arc<Route>> {
        self.paths
            .iter()
            .find(|p| if p.exact { p.path == request_path } else { prefix_matches(&p.path, request_path) })
            .map(|p| p.route.clone())
    }
}

/// A route's metric labels: its Ingress, and its backend's Service port (empty when the snapshot does not say).
pub fn labels(snapshot: &Snapshot, target: &RouteTarget) -> RouteLabels {
    let (namespace, ingress) =
        target.ingress.as_ref().map_or_else(Default::default, |i| (i.namespace.clone(), i.name.clone()));
    let service = snapshot.backends.get(&target.backend).and_then(|b| b.service.as_ref());
    let (service, port) = service.map_or_else(Default::default, |s| (s.name.clone(), s.port.clone()));
    RouteLabels { namespace, ingress, service, port }
}

/// Every route's labels in a snapshot, to forget the series of routes it no longer has.
pub fn all_labels(snapshot: &Snapshot) -> std::collections::HashSet<RouteLabels> {
    let paths = snapshot.hosts.iter().flat_map(|h| h.paths.iter().map(|p| &p.target));
    paths.chain(snapshot.default_backend.as_ref()).map(|target| labels(snapshot, target)).collect()
}

/// Splits a `Host` header or `:authority` into the host, dropping a port and IPv6 brackets' port.
pub fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or(authority, |(ip, _)| ip);
    }
    authority.rsplit_once(':').map_or(authority, |(host, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            host
        } else {
            authority
        }
    })
}

#[cfg(test)]
mod tests;
