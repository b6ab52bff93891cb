//! Holdfast's dataplane: a reverse proxy that owns the client's connection, keeps the request body in a spool, and
//! hands it to a ready upstream endpoint when one can take it, replaying it through upstream churn.
//!
//! The request path, in order: [`server`] accepts connections → [`proxy`] routes ([`route`]), applies the policy's
//! limits and reads the body ([`receive`]) into the [`spool`] → [`replay`] picks endpoints ([`balance`]) and runs
//! attempts ([`upstream`]) → the response, or an [`error`] turned into one; a request that switched protocols
//! (WebSocket) becomes a [`tunnel`]. [`admin`] takes snapshots into [`state`]. [`client`] is what the server and the
//! request path share about a client's connection.

pub mod access_log;
pub mod admin;
pub mod balance;
pub mod cli;
pub mod client;
pub mod drain;
pub mod error;
pub mod exchange;
pub mod forward;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod min_rate;
pub mod proxy;
pub mod read_size;
pub mod receive;
pub mod replay;
pub mod route;
pub mod server;
pub mod spool;
pub mod state;
pub mod status;
pub mod tls;
pub mod tunnel;
pub mod tus;
pub mod upstream;

use std::sync::Arc;

/// Everything the request path shares: routes in force, endpoint health, connections, spool, metrics.
pub struct Dataplane {
    pub config: state::ConfigStore,
    pub health: balance::Health,
    pub pool: Arc<upstream::Pool>,
    pub spool: spool::SpoolConfig,
    pub metrics: Arc<metrics::Metrics>,
    pub drain: Arc<drain::Drain>,
    /// The worker threads' runtimes, once [`server::Workers`] has started them.
    pub workers: server::WorkerHandles,
    /// The TLS listener's certificates, replaced with each snapshot.
    pub certs: Arc<tls::CertStore>,
    /// One line per finished request.
    pub access_log: access_log::AccessLog,
    /// The requests with a body and the tunnels the status page shows.
    pub status: status::Board,
    /// Resumable uploads (tus) kept on the spool volume.
    pub tus: tus::Uploads,
    /// Whether routes get their own metrics.
    route_metrics: bool,
    /// Serializes snapshot applies, so routes and certificates always come from the same snapshot.
    apply_lock: std::sync::Mutex<()>,
}

/// Process-wide settings that are not per route.
#[derive(Debug, Clone)]
pub struct Settings {
    pub spool_dir: std::path::PathBuf,
    /// 0: unlimited.
    pub spool_quota: u64,
    pub upstream_idle_timeout: std::time::Duration,
    /// The TLS listener's certificate for names no snapshot certificate covers; `None`: a generated one.
    pub default_certificate: Option<holdfast_snapshot::TlsCertificate>,
    pub access_log: access_log::Settings,
    /// Metrics per route (`--route-metrics`); process-wide ones are always kept.
    pub route_metrics: bool,
    /// This dataplane's name (its pod's), the owner part of the resumable uploads' ids.
    pub instance: String,
}

/// Why a dataplane could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    AccessLog(#[from] access_log::OpenError),
}

impl Dataplane {
    pub fn new(settings: &Settings) -> Result<Arc<Self>, StartError> {
        let metrics = Arc::new(metrics::Metrics::new());
        metrics.spool_quota_bytes.set(settings.spool_quota as i64);
        let spool = spool::SpoolConfig {
            dir: settings.spool_dir.clone(),
            quota: Arc::new(spool::SpoolQuota::new(settings.spool_quota)),
            metrics: metrics.clone(),
        };
        let tus = tus::Uploads::new(&settings.spool_dir, &settings.instance, spool.quota.clone(), metrics.clone());
        Ok(Arc::new(Dataplane {
            tus,
            config: state::ConfigStore::default(),
            health: balance::Health::default(),
            pool: upstream::Pool::new(settings.upstream_idle_timeout),
            spool,
            metrics,
            drain: Arc::new(drain::Drain::default()),
            workers: server::WorkerHandles::default(),
            certs: Arc::new(tls::CertStore::new(settings.default_certificate.clone())?),
            access_log: access_log::AccessLog::open(&settings.access_log)?,
            status: status::Board::default(),
            route_metrics: settings.route_metrics,
            apply_lock: std::sync::Mutex::new(()),
        }))
    }

    /// Puts a snapshot in force (or refuses it) and forgets the health of endpoints it no longer mentions.
    pub fn apply(&self, snapshot: &holdfast_snapshot::Snapshot) -> Result<u64, holdfast_snapshot::SnapshotError> {
        self.apply_owned(snapshot.clone())
    }

    /// [`Dataplane::apply`] for a snapshot the caller gives up (the admin API's), which is kept as the base of the
    /// next delta without a copy.
    pub fn apply_owned(&self, snapshot: holdfast_snapshot::Snapshot) -> Result<u64, holdfast_snapshot::SnapshotError> {
        let _serial = self.apply_lock.lock().unwrap_or_else(|p| p.into_inner());
        let families = self.route_metrics.then_some(&self.metrics.route);
        let (version, labels, certs) =
            (snapshot.version, route::all_labels(&snapshot), tls::CertMap::compile(&snapshot.tls));
        let active = self.config.apply(snapshot, families)?;
        self.metrics.route.retain(&labels);
        self.certs.replace(certs);
        let present: std::collections::HashSet<_> = active.backends.values().flat_map(|b| b.addresses()).collect();
        self.health.retain(|addr| present.contains(addr));
        self.metrics.config_version.set(version as i64);
        Ok(version)
    }

    /// Applies a delta of backends (or refuses it, changing nothing): see [`state::ConfigStore::apply_delta`].
    /// Certificates and peers cannot change this way; route metric series are pruned only when the routes were
    /// compiled anew, and the health book forgets only addresses the delta took away.
    pub fn apply_delta(&self, delta: &holdfast_snapshot::SnapshotDelta) -> Result<u64, holdfast_snapshot::DeltaError> {
        let _serial = self.apply_lock.lock().unwrap_or_else(|p| p.into_inner());
        let families = self.route_metrics.then_some(&self.metrics.route);
        let previous = self.config.current();
        let patched = self.config.apply_delta(delta, families)?;
        if let Some(labels) = &patched.route_labels {
            self.metrics.route.retain(labels);
        }
        let touched = delta.removed_backends.iter().chain(delta.backends.keys());
        let mut gone: std::collections::HashSet<_> =
            touched.filter_map(|name| previous.backends.get(name)).flat_map(|b| b.addresses()).collect();
        if !gone.is_empty() {
            // An address may still be another backend's.
            for address in patched.active.backends.values().flat_map(|b| b.addresses()) {
                gone.remove(&address);
            }
            self.health.retain(|addr| !gone.contains(addr));
        }
        self.metrics.config_version.set(delta.version as i64);
        Ok(delta.version)
    }

    /// The metrics as Prometheus text, with the gauges read at scrape time brought up to date first.
    pub fn scrape(&self) -> String {
        let active = self.config.current();
        let age = active.applied_at.and_then(|at| at.elapsed().ok()).map_or(0.0, |d| d.as_secs_f64());
        self.metrics.config_age_seconds.set(age);
        self.metrics.endpoints_backing_off.set(self.health.backing_off_now() as i64);
        self.metrics.backend.refresh(active.backends.values().map(|b| &**b), &self.health);
        self.metrics.encode()
    }
}
