//! Upstream HTTP/1.1 connections, kept alive between requests.
//!
//! Two kinds: plain sockets ([`super::plain`]) for requests without a body or with a spooled body of known length,
//! which skip hyper's connection task, and hyper client connections for the others (a chunked Tee body, a Streaming
//! body). Each kind has its own idle lists; a connection goes back to the list it came from.
//!
//! An idle connection is reused only while younger than the idle timeout, which must stay below the upstreams' own
//! keep-alive timeouts (Node's is 5 s) so that Holdfast rarely writes into a connection the upstream is closing. When
//! that still happens the attempt layer sees a failure on a reused connection and retries on a fresh one.
//!
//! Idle connections are kept per thread: a connection's I/O is driven by a task on the runtime that opened it, so
//! with one runtime per worker thread ([`crate::server::Workers`]) a request that borrowed another worker's
//! connection would wake that worker for every read and write. A worker only ever reuses its own connections.

use super::body::UpstreamBody;
use super::failure::{Failure, FailureKind};
use super::io::UpstreamIo;
use super::plain_conn::PlainConnection;
use crate::drain::AbortOnDrop;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Idle connections kept per endpoint; more than this are closed when released. Generous, because a connection
/// comes back only once its response has been read, so a busy endpoint briefly needs more than its concurrency.
const MAX_IDLE_PER_ENDPOINT: usize = 256;

pub struct Connection {
    pub sender: http1::SendRequest<UpstreamBody>,
    pub addr: SocketAddr,
    /// Came from the pool rather than a new connect: a failure on it may only mean the upstream closed it.
    pub reused: bool,
    /// The thread whose runtime drives the connection's I/O: its idle list is where the connection goes back.
    home: Home,
    /// Ends the connection's task when the connection is dropped instead of pooled. Without it, an abandoned attempt
    /// (timed out, or its client gone) would keep writing the body to an upstream that may then see it complete, and
    /// keep the spool alive for as long as the upstream holds the socket open.
    task: AbortOnDrop,
}

struct Idle {
    sender: http1::SendRequest<UpstreamBody>,
    since: Instant,
    task: AbortOnDrop,
}

struct IdlePlain {
    conn: PlainConnection,
    since: Instant,
}

/// Idle connections by the thread that opened them and the endpoint they lead to.
#[derive(Default)]
struct IdleLists {
    hyper: HashMap<(ThreadId, SocketAddr), Vec<Idle>>,
    plain: HashMap<(ThreadId, SocketAddr), Vec<IdlePlain>>,
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
}

impl Pool {
    pub fn new(idle_timeout: Duration) -> Arc<Self> {
        Arc::new(Pool { shards: (0..SHARDS).map(|_| Shard::default()).collect(), idle_timeout })
    }

    /// A pooled connection to `addr`, opened by this thread, that is still open and young enough.
    pub fn checkout(&self, addr: SocketAddr) -> Option<Connection> {
        let home = this_thread();
        let mut idle = self.lock(home.shard);
        let conns = idle.hyper.get_mut(&(home.thread, addr))?;
        while let Some(conn) = conns.pop() {
            if conn.since.elapsed() < self.idle_timeout && conn.sender.is_ready() {
                return Some(Connection { sender: conn.sender, addr, reused: true, home, task: conn.task });
            }
        }
        None
    }

    /// A pooled plain connection to `addr`, opened by this thread, still open and young enough.
    pub fn checkout_plain(&self, addr: SocketAddr) -> Option<PlainConnection> {
        let home = this_thread();
        let mut idle = self.lock(home.shard);
        let conns = idle.plain.get_mut(&(home.thread, addr))?;
        while let Some(mut idle) = conns.pop() {
            if idle.since.elapsed() < self.idle_timeout && idle.conn.is_idle_and_open() {
                return Some(idle.conn);
            }
        }
        None
    }

    /// A new plain connection, within `timeout`.
    pub async fn connect_plain(&self, addr: SocketAddr, timeout: Duration) -> Result<PlainConnection, Failure> {
        Ok(PlainConnection::new(connect_stream(addr, timeout).await?, addr))
    }

    /// Takes back a plain connection whose response was read to its end and which the upstream keeps open. A
    /// connection released on another thread than the one that opened it (a response read elsewhere) is closed
    /// instead: pooled there, every read of it would wake the other worker.
    pub fn put_back_plain(&self, mut conn: PlainConnection) {
        let home = this_thread();
        if conn.opened_on != home.thread {
            return;
        }
        conn.shrink_for_idle();
        let mut idle = self.lock(home.shard);
        let now = Instant::now();
        self.sweep_if_due(&mut idle, now);
        let conns = idle.plain.entry((home.thread, conn.addr)).or_default();
        if conns.len() >= MAX_IDLE_PER_ENDPOINT {
            conns.retain(|c| now.duration_since(c.since) < self.idle_timeout);
        }
        if conns.len() < MAX_IDLE_PER_ENDPOINT {
            conns.push(IdlePlain { conn, since: now });
        }
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
    }

    /// A new connection, within `timeout`.
    pub async fn connect(&self, addr: SocketAddr, timeout: Duration) -> Result<Connection, Failure> {
        let stream = connect_stream(addr, timeout).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(UpstreamIo::new(stream)))
            .await
            .map_err(|e| Failure::new(FailureKind::ResetBeforeResponse, format!("{addr}: {e}")))?;
        let task = tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%error, %addr, "upstream connection ended");
            }
        });
        Ok(Connection { sender, addr, reused: false, home: this_thread(), task: AbortOnDrop(task.abort_handle()) })
    }

    /// Puts a connection back once its response has been read to the end; a connection whose response is abandoned
    /// closes instead.
    ///
    /// hyper's connection is ready for the next request once it has read the whole response from the socket. A small
    /// response usually arrives in the same read as its head, so the connection is often ready at once and goes
    /// straight back; otherwise a task waits for the body to be read (or abandoned) first.
    pub fn release(self: &Arc<Self>, mut conn: Connection) {
        if conn.sender.is_ready() {
            self.put_back(conn);
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            if conn.sender.ready().await.is_ok() {
                pool.put_back(conn);
            }
        });
    }

    fn put_back(&self, conn: Connection) {
        let mut idle = self.lock(conn.home.shard);
        self.sweep_if_due(&mut idle, Instant::now());
        let conns = idle.hyper.entry((conn.home.thread, conn.addr)).or_default();
        // Expired and closed connections are dropped at checkout; here only the count is bounded.
        if conns.len() >= MAX_IDLE_PER_ENDPOINT {
            conns.retain(|c| c.since.elapsed() < self.idle_timeout && !c.sender.is_closed());
        }
        if conns.len() < MAX_IDLE_PER_ENDPOINT {
            conns.push(Idle { sender: conn.sender, since: Instant::now(), task: conn.task });
        }
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, IdleLists> {
        self.shards[shard].0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A TCP connection to `addr` within `timeout`, with Nagle off (heads and small bodies go out at once).
async fn connect_stream(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, Failure> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(Failure::new(FailureKind::ConnectTimeout, format!("{addr} after {timeout:?}"))),
        Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => {
            return Err(Failure::new(FailureKind::ConnectRefused, addr))
        }
        // Unreachable networks and the like are treated as refusals: nothing was sent.
        Ok(Err(e)) => return Err(Failure::new(FailureKind::ConnectRefused, format!("{addr}: {e}"))),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let conn = pool.connect(gone.local_addr().unwrap(), Duration::from_secs(1)).await.unwrap();
        let (mut upstream_side, _) = gone.accept().await.unwrap();
        pool.release(conn);
        // A new hyper connection is ready only once its task has run: the release waits for it.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let entries = |pool: &Pool| pool.lock(this_thread().shard).hyper.len();
        assert_eq!(entries(&pool), 1);

        tokio::time::sleep(Duration::from_millis(150)).await;
        let other = pool.connect(busy.local_addr().unwrap(), Duration::from_secs(1)).await.unwrap();
        pool.release(other);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(entries(&pool), 1, "only the endpoint in use is left");
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), upstream_side.read(&mut byte)).await;
        assert_eq!(read.expect("the expired connection was not closed").unwrap(), 0);
    }
}
