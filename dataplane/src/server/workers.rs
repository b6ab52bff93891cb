//! Thread per core: the client listeners are served by N worker threads, each running its own single-threaded tokio
//! runtime, like nginx's worker processes.
//!
//! Why not one work-stealing runtime: a proxied request wakes three tasks (the client connection, the upstream
//! connection, the request itself) several times, and on a multi-threaded runtime those wakeups cross threads — an
//! `eventfd` write, a futex, a stolen task, a cold cache each time. Measured on 2 cores (`docs/benchmarks.md`), that
//! made about 20 % fewer small GETs per second than this design, with more system time per request. Here a connection is accepted, read, proxied and answered on one thread,
//! and the upstream connections it uses are opened and pooled on that thread too ([`crate::upstream::Pool`] keeps
//! one idle list per thread), so a request never leaves its worker.
//!
//! Every worker accepts from the same listening sockets (each registers a duplicate of the descriptor with its own
//! epoll), so an idle worker picks up the next connection; nothing distributes connections by hash. With
//! `--balance-connections`, a worker that has more connections open than the others hands a new one over to the
//! least loaded ([`super::share`]).
//! Everything else — routes, endpoint health, spool quota, metrics, the drain — is shared through the one
//! [`Dataplane`].
//!
//! One exception to "a request stays on its worker": a Tee or Streaming body is delivered from the next worker
//! ([`WorkerHandles::neighbour`]), so that reading the client and writing the spool on one core overlaps with
//! writing to the upstream on another — a single large upload would otherwise be limited to one core. So that such a
//! delivery always finds its neighbour's runtime running, a worker that has drained keeps its runtime going until
//! every worker has drained.

use super::share::{OpenConnection, OpenConnections};
use super::{serve_listener, ServeOptions};
use crate::Dataplane;
use std::cell::Cell;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

thread_local! {
    /// Which worker this thread is, on worker threads.
    static WORKER_INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The workers' runtimes, so that a request can hand work to a neighbouring worker, and their open connections.
#[derive(Debug, Default)]
pub struct WorkerHandles {
    handles: OnceLock<Vec<Handle>>,
    open: OnceLock<Arc<OpenConnections>>,
}

/// Where a client connection just accepted is to be served.
pub(crate) struct Assigned {
    /// Counts the connection on its worker for as long as it is held.
    pub open: OpenConnection,
    /// The runtime of another worker, when the connection is handed over.
    pub elsewhere: Option<Handle>,
}

impl WorkerHandles {
    /// Where a connection accepted on the calling worker is to be served (`balance`: perhaps on another worker);
    /// `None` off the worker threads.
    pub(crate) fn assign_connection(&self, balance: bool) -> Option<Assigned> {
        let (handles, open) = (self.handles.get()?, self.open.get()?);
        let index = WORKER_INDEX.with(Cell::get)?;
        let open = if balance { open.assign(index) } else { open.keep(index) };
        let elsewhere = (open.worker() != index).then(|| handles.get(open.worker()).cloned()).flatten();
        Some(Assigned { open, elsewhere })
    }

    /// Open client connections of each worker (empty before the workers start).
    pub fn open_connections(&self) -> Vec<usize> {
        self.open.get().map(|open| open.loads()).unwrap_or_default()
    }

    /// The runtime of the next worker after the calling one, when the caller is a worker and has a neighbour.
    pub fn neighbour(&self) -> Option<Handle> {
        let handles = self.handles.get().filter(|handles| handles.len() > 1)?;
        let index = WORKER_INDEX.with(Cell::get)?;
        Some(handles[(index + 1) % handles.len()].clone())
    }
}

/// Why the workers could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the TLS listener cannot be configured: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("worker {index} could not start: {source}")]
    Start { index: usize, source: std::io::Error },
    #[error(
        "worker {index} stopped unexpectedly (see the log above); the process exits so that it is restarted whole"
    )]
    Stopped { index: usize },
}

/// The listening sockets every worker accepts from.
pub struct Listeners {
    pub plain: std::net::TcpListener,
    pub tls: std::net::TcpListener,
}

/// The running workers; [`Workers::finished`] resolves once every one of them has drained and stopped.
pub struct Workers {
    count: usize,
    /// `(worker index, whether it ended as it should)`, one per worker.
    ended: mpsc::UnboundedReceiver<(usize, bool)>,
}

/// Lives on a worker thread's stack and reports, when dropped, how the thread ended: dropped during a panic's
/// unwinding, or before the worker served at all, it reports a failure.
struct ReportEnd {
    index: usize,
    served: bool,
    report: mpsc::UnboundedSender<(usize, bool)>,
}

impl Drop for ReportEnd {
    fn drop(&mut self) {
        let _ = self.report.send((self.index, self.served && !std::thread::panicking()));
    }
}

impl Workers {
    /// Starts `count` workers (at least one) serving `listeners` until `shutdown()` resolves in each of them, then
    /// draining like `serve_listener`. `shutdown` is called once per worker, on that worker's thread.
    pub fn start<S, F>(
        count: usize,
        listeners: Listeners,
        dp: Arc<Dataplane>,
        options: ServeOptions,
        shutdown: S,
    ) -> Result<Self, WorkerError>
    where
        S: Fn() -> F + Send + Clone + 'static,
        F: Future<Output = ()> + 'static,
    {
        let acceptor = TlsAcceptor::from(dp.certs.server_config()?);
        let count = count.max(1);
        let (report, ended) = mpsc::unbounded_channel();
        // How many workers have drained; each keeps its runtime running until all have.
        let drained = Arc::new(watch::Sender::new(0usize));
        let mut handles = Vec::new();
        for index in 0..count {
            let start_error = |source| WorkerError::Start { index, source };
            // Everything that can fail is done here, before the thread starts, so that a failure is reported
            // instead of a worker silently missing.
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(start_error)?;
            let plain = listeners.plain.try_clone().map_err(start_error)?;
            let tls = listeners.tls.try_clone().map_err(start_error)?;
            // tokio requires non-blocking sockets; a duplicate shares the flag with the original.
            plain.set_nonblocking(true).map_err(start_error)?;
            tls.set_nonblocking(true).map_err(start_error)?;
            let (report, drained) = (report.clone(), drained.clone());
            let worker = Worker {
                dp: dp.clone(),
                options: options.clone(),
                acceptor: acceptor.clone(),
                shutdown: shutdown.clone(),
            };
            handles.push(runtime.handle().clone());
            std::thread::Builder::new()
                .name(format!("holdfast-worker-{index}"))
                .spawn(move || {
                    let mut report_end = ReportEnd { index, served: false, report };
                    WORKER_INDEX.with(|cell| cell.set(Some(index)));
                    report_end.served = runtime.block_on(async {
                        let served = worker.run(index, plain, tls).await;
                        drained.send_modify(|n| *n += 1);
                        // A neighbour may still hand this runtime a delivery (or be running one here) until it
                        // has drained too.
                        let _ = drained.subscribe().wait_for(|n| *n == count).await;
                        served
                    });
                })
                .map_err(start_error)?;
        }
        // A dataplane is served by one set of workers; should `start` be called again, the first set stays the
        // one neighbours are taken from.
        let _ = dp.workers.handles.set(handles);
        let _ = dp.workers.open.set(OpenConnections::new(count));
        // The workers hold their own duplicates: the sockets close when the last worker lets go of them.
        drop(listeners);
        Ok(Workers { count, ended })
    }

    /// Resolves when every worker has drained and stopped, or as soon as one panics: a worker that is gone would
    /// leave its share of the connections unserved, so the process should rather exit and be restarted.
    pub async fn finished(mut self) -> Result<(), WorkerError> {
        for _ in 0..self.count {
            match self.ended.recv().await {
                Some((_, true)) => {}
                Some((index, false)) => return Err(WorkerError::Stopped { index }),
                None => break,
            }
        }
        Ok(())
    }
}

struct Worker<S> {
    dp: Arc<Dataplane>,
    options: ServeOptions,
    acceptor: TlsAcceptor,
    shutdown: S,
}

impl<S, F> Worker<S>
where
    S: Fn() -> F,
    F: Future<Output = ()>,
{
    /// Serves until shutdown and the drain; false when the worker could not serve at all.
    async fn run(self, index: usize, plain: std::net::TcpListener, tls: std::net::TcpListener) -> bool {
        // Registering with this worker's epoll needs the runtime, so it happens here rather than in `start`.
        let (plain, tls) = match (TcpListener::from_std(plain), TcpListener::from_std(tls)) {
            (Ok(plain), Ok(tls)) => (plain, tls),
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, worker = index, "worker cannot listen");
                return false;
            }
        };
        let Worker { dp, options, acceptor, shutdown } = self;
        let pool = dp.pool.clone();
        let (served_tx, served_rx) = tokio::sync::oneshot::channel::<()>();
        let served = async {
            tokio::join!(
                serve_listener(plain, dp.clone(), options.clone(), None, shutdown()),
                serve_listener(tls, dp.clone(), options, Some(acceptor), shutdown()),
            );
            drop(served_tx);
        };
        tokio::join!(
            served,
            // This worker's idle upstream connections, which only this thread uses.
            pool.sweep_idle(shutdown()),
            // This worker's access log lines, until its last request (drain included) has ended.
            dp.access_log.flush_periodically(async {
                let _ = served_rx.await;
            }),
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Lingering;
    use std::time::Duration;

    fn start(
        count: usize,
        shutdown: impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()>>> + Send + Clone + 'static,
    ) -> Workers {
        start_with(count, false, shutdown).0
    }

    /// Workers, their dataplane and the address of their plain listener.
    fn start_with(
        count: usize,
        balance_connections: bool,
        shutdown: impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()>>> + Send + Clone + 'static,
    ) -> (Workers, Arc<Dataplane>, std::net::SocketAddr) {
        let spool = tempfile::tempdir().unwrap();
        let settings = crate::Settings {
            spool_dir: spool.path().to_path_buf(),
            spool_quota: 0,
            upstream_idle_timeout: Duration::from_secs(1),
            default_certificate: None,
            access_log: crate::access_log::Settings::default(),
            route_metrics: true,
            instance: "test".to_string(),
        };
        let dp = Dataplane::new(&settings).unwrap();
        let listeners = Listeners {
            plain: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            tls: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        };
        let plain_addr = listeners.plain.local_addr().unwrap();
        let options = ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(1),
            lingering: Lingering { timeout: Duration::from_secs(1), max_bytes: 1 },
            max_requests_per_connection: 0,
            http2: Default::default(),
            balance_connections,
            direct_body_min_bytes: 8 << 20,
            max_target_bytes: crate::route::MAX_TARGET_BYTES,
        };
        (Workers::start(count, listeners, dp.clone(), options, shutdown).unwrap(), dp, plain_addr)
    }

    #[tokio::test]
    async fn connections_opened_at_once_are_shared_out_between_the_workers() {
        let (_workers, dp, addr) = start_with(2, true, || Box::pin(std::future::pending()));
        let mut clients = Vec::new();
        for _ in 0..20 {
            clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let counted = async {
            while dp.workers.open_connections().iter().sum::<usize>() < 20 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), counted).await.expect("every connection accepted");
        let loads = dp.workers.open_connections();
        assert!(loads.iter().all(|&n| (9..=11).contains(&n)), "open connections per worker: {loads:?}");
        drop(clients);
    }

    #[tokio::test]
    async fn workers_that_drain_and_stop_are_finished() {
        let workers = start(2, || Box::pin(async {}));
        assert!(workers.finished().await.is_ok());
    }

    #[tokio::test]
    async fn a_worker_that_panics_is_reported_at_once() {
        // One worker panics; the other would serve forever. `finished` must not wait for it.
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers = start(2, move || {
            let first = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            Box::pin(async move {
                if first {
                    panic!("test: a worker fails");
                }
                std::future::pending::<()>().await
            })
        });
        let outcome = tokio::time::timeout(Duration::from_secs(10), workers.finished()).await;
        assert!(matches!(outcome, Ok(Err(WorkerError::Stopped { .. }))), "got {outcome:?}");
    }
}
