//! Kubernetes watches: one kube-runtime watcher per kind, with backoff, feeding the shared index. A relist
//! (`Init` … `InitDone`) is buffered and applied as one [`Index::reset`](crate::index::Index::reset), so objects
//! deleted while the watch was down leave the index, and never as "everything vanished": until `InitDone` the index
//! keeps what it had. Every watch is registered with [`Shared::expect`] before it starts, so the first publication
//! waits for each one's first complete list.

use crate::drain::Shutdown;
use crate::index::{IndexKind, ObjectKey, OpaqueSecret, PeerSlice, SERVICE_NAME_LABEL};
use crate::lease::{self, LeaseTiming};
use crate::metrics::{SourceMetrics, WatchEvent};
use crate::publish::Shared;
use crate::status::kube_api::KubeClusterWriter;
use crate::status::{self, Addresses};
use crate::translate::Translation;
use futures::{Stream, StreamExt, TryStreamExt};
use holdfast_crds::UploadPolicy;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

/// The Kubernetes source: a client, the namespace to watch (all when `None`), and what the leader writes back.
pub struct KubeSource {
    pub client: Client,
    pub namespace: Option<String>,
    /// Where Ingress status addresses come from.
    pub addresses: Addresses,
    /// Namespace of the leader-election Lease.
    pub lease_namespace: String,
    /// This replica's name in the Lease and in events.
    pub identity: String,
    /// `--peers-service`: whose EndpointSlices must be read even outside `namespace`.
    pub peers_service: Option<ObjectKey>,
}

/// Name of the leader-election Lease.
pub const LEASE_NAME: &str = "holdfast-controller";

impl KubeSource {
    /// Spawns one watch per kind, the leader election, and the status writer.
    pub fn spawn(
        self,
        tasks: &mut JoinSet<()>,
        shared: Arc<Shared>,
        published: watch::Receiver<Option<Arc<Translation>>>,
        metrics: SourceMetrics,
        shutdown: Shutdown,
    ) {
        let (leader_tx, leader_rx) = watch::channel(false);
        let leases = Api::namespaced(self.client.clone(), &self.lease_namespace);
        let (identity, timing, leading) = (self.identity.clone(), LeaseTiming::default(), metrics.leader.clone());
        tasks.spawn(lease::run(leases, LEASE_NAME.into(), identity, timing, leader_tx, leading, shutdown.clone()));
        let writer = KubeClusterWriter::new(self.client.clone(), self.identity.clone());
        tasks.spawn(status::run(writer, published, leader_rx, self.addresses.clone(), shutdown.clone()));
        let all = watcher::Config::default();
        // Only TLS and Opaque Secrets are read, and of the Opaque ones the index keeps only those with a `ca.crt`
        // (upstream CAs), and only their PEM keys: the controller has no business keeping other Secrets' data.
        let tls = watcher::Config::default().fields("type=kubernetes.io/tls");
        let opaque = watcher::Config::default().fields("type=Opaque");
        let to = Sink { shared, metrics, shutdown };
        tasks.spawn(watch_kind(Api::<IngressClass>::all(self.client.clone()), all.clone(), to.clone()));
        tasks.spawn(watch_kind(self.api::<Ingress>(), all.clone(), to.clone()));
        tasks.spawn(watch_kind(self.api::<Service>(), all.clone(), to.clone()));
        tasks.spawn(watch_kind(self.api::<EndpointSlice>(), all.clone(), to.clone()));
        tasks.spawn(watch_kind(self.api::<Secret>(), tls, to.clone()));
        tasks.spawn(watch_as::<Secret, OpaqueSecret>(self.api::<Secret>(), opaque, to.clone()));
        tasks.spawn(watch_kind(self.api::<UploadPolicy>(), all, to.clone()));
        if let Some(service) = self.peers_service.as_ref().filter(|s| !self.watches_namespace(&s.namespace)) {
            // The EndpointSlice watch above cannot see the peers Service: read its slices alone, by the label the
            // EndpointSlice controller gives them.
            let api = Api::<EndpointSlice>::namespaced(self.client.clone(), &service.namespace);
            let config = watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}={}", service.name));
            tasks.spawn(watch_as::<EndpointSlice, PeerSlice>(api, config, to));
        }
    }

    fn watches_namespace(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|watched| watched == namespace)
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }
}

/// Where every watch delivers: the index, the event counts, and the run's shutdown.
#[derive(Clone)]
struct Sink {
    shared: Arc<Shared>,
    metrics: SourceMetrics,
    shutdown: Shutdown,
}

/// Watches one kind until shutdown; errors are logged and retried with kube-runtime's default backoff.
fn watch_kind<K>(api: Api<K>, config: watcher::Config, to: Sink) -> impl Future<Output = ()> + Send + 'static
where
    K: IndexKind + Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    watch_as::<K, K>(api, config, to)
}

/// Watches API kind `K` into the index as kind `I`: a kind read by two watches (Secrets by type) is indexed into
/// one store per watch. The watch is registered as one the first publication waits for when this is called, not
/// when the future first runs, so that no other watch's list can be published without this one's.
fn watch_as<K, I>(api: Api<K>, config: watcher::Config, mut to: Sink) -> impl Future<Output = ()> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    I: IndexKind + From<K> + Send + 'static,
{
    to.shared.expect(I::STORE);
    async move {
        let stream = watcher::watcher(api, config).default_backoff().map_ok(convert_event::<K, I>);
        tokio::select! {
            _ = feed(stream, &to.shared, &to.metrics).instrument(tracing::info_span!("watch", kind = I::STORE)) => {
                tracing::warn!(kind = I::STORE, "Watch ended");
            }
            _ = to.shutdown.wait() => {}
        }
    }
}

fn convert_event<K, I: From<K>>(event: Event<K>) -> Event<I> {
    match event {
        Event::Apply(object) => Event::Apply(object.into()),
        Event::Delete(object) => Event::Delete(object.into()),
        Event::Init => Event::Init,
        Event::InitApply(object) => Event::InitApply(object.into()),
        Event::InitDone => Event::InitDone,
    }
}

/// Applies a watch stream to the index until it ends, counting its events.
pub async fn feed<K, S>(stream: S, shared: &Shared, metrics: &SourceMetrics)
where
    K: IndexKind,
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut state = WatchFeed::new(metrics.clone());
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => state.handle(event, shared),
            Err(error) => tracing::warn!(%error, "Watch failed; retrying with backoff"),
        }
    }
}

/// One watch's state between events: the objects of a relist in progress. Separate from the stream so tests can
/// drive it event by event.
pub struct WatchFeed<K> {
    relist: Vec<K>,
    metrics: SourceMetrics,
}

/// A feed whose counts go nowhere (tests of the index).
impl<K> Default for WatchFeed<K> {
    fn default() -> Self {
        WatchFeed::new(SourceMetrics::default())
    }
}

impl<K> WatchFeed<K> {
    pub fn new(metrics: SourceMetrics) -> Self {
        WatchFeed { relist: Vec::new(), metrics }
    }
}

impl<K: IndexKind> WatchFeed<K> {
    pub fn handle(&mut self, event: Event<K>, shared: &Shared) {
        self.metrics.count(K::KIND, event_label(&event));
        let result = match event {
            Event::Apply(object) => shared.update(|index| index.apply(object)),
            Event::Delete(object) => shared.update(|index| index.delete(&object)),
            Event::Init => {
                self.relist.clear();
                Ok(())
            }
            Event::InitApply(object) => {
                self.relist.push(object);
                Ok(())
            }
            Event::InitDone => {
                // Applied as one reset so that objects deleted while the watch was down leave the index.
                let objects = std::mem::take(&mut self.relist);
                for error in shared.update(|index| index.reset(objects)) {
                    tracing::warn!(%error, "Skipped an object");
                }
                shared.listed(K::STORE);
                Ok(())
            }
        };
        if let Err(error) = result {
            tracing::warn!(%error, "Skipped an object");
        }
    }
}

fn event_label<K>(event: &Event<K>) -> WatchEvent {
    match event {
        Event::Apply(_) => WatchEvent::apply,
        Event::Delete(_) => WatchEvent::delete,
        Event::Init => WatchEvent::init,
        Event::InitApply(_) => WatchEvent::init_apply,
        Event::InitDone => WatchEvent::init_done,
    }
}
