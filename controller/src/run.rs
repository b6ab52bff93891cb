//! Wires one run of the controller: a source feeding the shared index, the publisher, the pusher and (with the
//! Kubernetes source) the status writers, all stopped by one [`Shutdown`]. `main` only parses flags and calls
//! [`run`]; tests call it with a temporary directory and a local dataplane double.

use crate::admin;
use crate::drain::Shutdown;
use crate::metrics::{PublishMetrics, PushMetrics, SourceMetrics};
use crate::publish::{self, Shared};
use crate::push::{DataplaneClient, PushTiming, Pusher};
use crate::source;
use crate::translate::{Config, Translation};
use prometheus_client::registry::Registry;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Where objects come from.
pub enum Source {
    /// `--from-dir`: YAML files in a directory.
    Files(PathBuf),
    /// The Kubernetes API (boxed: a client and its settings, many times the size of a path).
    Kube(Box<source::kube::KubeSource>),
}

/// Everything a run needs besides its source.
pub struct Settings {
    pub translate: Config,
    pub dataplane: DataplaneClient,
    pub timing: PushTiming,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`), already bound; `None` serves none.
    pub admin: Option<TcpListener>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("--from-dir {0}: not a readable directory")]
    NotADirectory(PathBuf),
    #[error("a controller task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs until `shutdown` fires.
pub async fn run(source: Source, settings: Settings, shutdown: Shutdown) -> Result<(), RunError> {
    let shared = Arc::new(Shared::default());
    let (tx, rx) = watch::channel::<Option<Arc<Translation>>>(None);
    let mut tasks = tokio::task::JoinSet::new();
    let mut registry = Registry::default();
    let source_metrics = SourceMetrics::register(&mut registry);
    match source {
        Source::Files(dir) => {
            if !dir.is_dir() {
                return Err(RunError::NotADirectory(dir));
            }
            let files = source::files::FileSource::new(dir);
            tasks.spawn(source::files::watch(files, shared.clone(), source_metrics, shutdown.clone()));
        }
        Source::Kube(kube) => kube.spawn(&mut tasks, shared.clone(), rx.clone(), source_metrics, shutdown.clone()),
    }
    let publish_metrics = PublishMetrics::register(&mut registry);
    let mut pusher = Pusher::new(settings.dataplane, settings.timing);
    pusher.metrics = PushMetrics::register(&mut registry);
    if let Some(listener) = settings.admin {
        let ready = pusher.ready.subscribe();
        tasks.spawn(admin::serve(listener, Arc::new(registry), ready, shutdown.clone()));
    }
    tasks.spawn(publish::run(shared, settings.translate, tx, publish_metrics, shutdown.clone()));
    tasks.spawn(pusher.run(rx, shutdown));
    // Every task returns at shutdown; a panic in one surfaces here as an error.
    while let Some(result) = tasks.join_next().await {
        result?;
    }
    Ok(())
}
