//! Upstream connections kept between requests, per worker thread and endpoint.
//!
//! Three kinds, each with its own lists: plain HTTP/1.1 sockets ([`super::plain`]) for requests without a body or
//! with a spooled body of known length, which skip hyper's connection task (`plain.rs`); hyper's HTTP/1.1 client
//! connections for the others, over TCP or TLS (`hyper_h1.rs`); and HTTP/2 connections, which carry many requests at
//! once and are shared rather than lent out (`h2.rs`). A connection goes back to the list it came from.
//!
//! An idle connection is reused only while younger than the idle timeout, which must stay below the upstreams' own
//! keep-alive timeouts (Node's is 5 s) so that Holdfast rarely writes into a connection the upstream is closing. When
//! that still happens the attempt layer sees a failure on a reused connection and retries on a fresh one.
//!
//! Connections are kept per thread: a connection's I/O is driven by a task on the runtime that opened it, so with
//! one runtime per worker thread ([`crate::server::Workers`]) a request that borrowed another worker's connection
//! would wake that worker for every read and write. A worker only ever uses its own connections.

mod h2;
mod hyper_h1;
mod plain;

pub use h2::{H2Stream, StreamLease};
pub use hyper_h1::Connection;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;
use tokio::time::Instant;

/// Idle connections kept per endpoint; more than this are closed when released. Generous, because a connection
/// comes back only once its response has been read, so a busy endpoint briefly needs more than its concurrency.
const MAX_IDLE_PER_ENDPOINT: usize = 256;

/// Where a connection leads: the endpoint, and the transport's key ([`super::transport::Transport::key`]: 0 for
/// TCP, the TLS setting otherwise), so that a connection made with one TLS setting never serves another.
type Endpoint = (ThreadId, SocketAddr, u64);

/// Connections by the thread that opened them and the endpoint they lead to.
#[derive(Default)]
struct IdleLists {
    hyper: HashMap<Endpoint, Vec<hyper_h1::Idle>>,
    plain: HashMap<(ThreadId, SocketAddr), Vec<plain::IdlePlain>>,
    h2: HashMap<Endpoint, h2::H2Endpoint>,
    /// When the lists were last swept of expired connections (`None`: never).
    swept: Option<Instant>,
}

/// Threads get shards in turn; more threads than shards share them (still correct, keyed by thread).
const SHARDS: usize = 64;

/// One lock per thread rather than one for all: every request takes and returns a connection, and a lock shared
/// by the workers would bounce its cache line between their cores twice per request. Aligned so that two shards
/// never share a cache line.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<IdleLists>);

/// The calling thread and its shard.
#[derive(Clone, Copy)]
struct Home {
    thread: ThreadId,
    shard: usize,
}

fn this_thread() -> Home {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: Home = Home {
            thread: std::thread::current().id(),
            shard: NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS,
        };
    }
    HOME.with(|home| *home)
}

pub struct Pool {
    shards: Vec<Shard>,
    idle_timeout: Duration,
    /// Reference point of the HTTP/2 connections' last-activity stamps (milliseconds since it).
    epoch: Instant,
}

impl Pool {
    pub fn new(idle_timeout: Duration) -> Arc<Self> {
        Arc::new(Pool { shards: (0..SHARDS).map(|_| Shard::default()).collect(), idle_timeout, epoch: Instant::now() })
    }

    /// Sweeps this thread's idle lists once per idle timeout until `stop` resolves, so that a connection the upstream
    /// closed while no request came is dropped (no socket left in `CLOSE_WAIT`) also on a worker without traffic.
    /// Each worker runs one ([`crate::server`]).
    pub async fn sweep_idle(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.idle_timeout) => {
                    let mut idle = self.lock(this_thread().shard);
                    self.sweep_if_due(&mut idle, Instant::now());
                }
                () = &mut stop => return,
            }
        }
    }

    /// Closes the expired connections of a shard and forgets endpoints left without any, at most once per idle
    /// timeout, so that any traffic on a worker sweeps its lists. Nothing reads an idle plain socket, so one the
    /// upstream has closed stays open on this side (`CLOSE_WAIT`) until it is dropped here or at checkout — and an
    /// endpoint that is gone (a deleted pod) is never checked out again. Without the sweep, every pod address a
    /// worker ever sent to would also keep an entry in its lists, empty or not, for as long as the process runs.
    fn sweep_if_due(&self, idle: &mut IdleLists, now: Instant) {
        if idle.swept.is_some_and(|swept| now.duration_since(swept) < self.idle_timeout) {
            return;
        }
        idle.swept = Some(now);
        let young = |since: Instant| now.duration_since(since) < self.idle_timeout;
        idle.plain.retain(|_, conns| {
            conns.retain(|c| young(c.since));
            !conns.is_empty()
        });
        idle.hyper.retain(|_, conns| {
            conns.retain(|c| young(c.since) && !c.sender.is_closed());
            !conns.is_empty()
        });
        let idle_ms = self.idle_timeout.as_millis() as u64;
        let now_ms = self.millis(now);
        idle.h2.retain(|_, endpoint| endpoint.sweep(now_ms, idle_ms));
    }

    /// `at` in milliseconds since the pool's epoch.
    fn millis(&self, at: Instant) -> u64 {
        at.duration_since(self.epoch).as_millis() as u64
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, IdleLists> {
        self.shards[shard].0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::transport::Transport;
    use std::io::ErrorKind;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn an_expired_idle_plain_connection_is_closed_by_the_next_release_on_its_thread() {
        let pool = Pool::new(Duration::from_millis(100));
        // An endpoint that no request uses again (a deleted pod), and one that keeps serving.
        let (gone, busy) =
            (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
        let conn = pool.connect_plain(gone.local_addr().unwrap(), Duration::from_secs(1)).await.unwrap();
        let (mut upstream_side, _) = gone.accept().await.unwrap();
        pool.put_back_plain(conn);
        let mut byte = [0u8; 1];
        let open = upstream_side.try_read(&mut byte);
        assert!(matches!(open, Err(ref e) if e.kind() == ErrorKind::WouldBlock), "kept while young: {open:?}");

        tokio::time::sleep(Duration::from_millis(150)).await;
        let other = pool.connect_plain(busy.local_addr().unwrap(), Duration::from_secs(1)).await.unwrap();
        pool.put_back_plain(other);
        let read = tokio::time::timeout(Duration::from_secs(2), upstream_side.read(&mut byte)).await;
        assert_eq!(read.expect("the idle connection was not closed").unwrap(), 0);
        assert!(pool.checkout_plain(gone.local_addr().unwrap()).is_none());
    }

    #[tokio::test]
    async fn an_expired_idle_connection_is_closed_on_a_worker_that_sends_nothing_more() {
        let pool = Pool::new(Duration::from_millis(100));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let sweeper = tokio::spawn({
            let pool = pool.clone();
            async move { pool.sweep_idle(async move { _ = stop_rx.await }).await }
        });
        let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let conn = pool.connect_plain(gone.local_addr().unwrap(), Duration::from_secs(1)).await.unwrap();
        let (mut upstream_side, _) = gone.accept().await.unwrap();
        pool.put_back_plain(conn);
        // No release or checkout follows: only the sweeper can close it.
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), upstream_side.read(&mut byte)).await;
        assert_eq!(read.expect("the idle connection was not closed").unwrap(), 0);
        stop_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(1), sweeper).await.expect("the sweeper did not stop").unwrap();
    }

    #[tokio::test]
    async fn an_endpoint_no_longer_used_leaves_the_hyper_lists_at_the_next_release() {
        let pool = Pool::new(Duration::from_millis(100));
        let (gone, busy) =
            (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
        let conn = pool.connect(gone.local_addr().unwrap(), &Transport::Tcp, Duration::from_secs(1)).await.unwrap();
        let (mut upstream_side, _) = gone.accept().await.unwrap();
        pool.release(conn);
        // A new hyper connection is ready only once its task has run: the release waits for it.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let entries = |pool: &Pool| pool.lock(this_thread().shard).hyper.len();
        assert_eq!(entries(&pool), 1);

        tokio::time::sleep(Duration::from_millis(150)).await;
        let other = pool.connect(busy.local_addr().unwrap(), &Transport::Tcp, Duration::from_secs(1)).await.unwrap();
        pool.release(other);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(entries(&pool), 1, "only the endpoint in use is left");
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), upstream_side.read(&mut byte)).await;
        assert_eq!(read.expect("the expired connection was not closed").unwrap(), 0);
    }
}
