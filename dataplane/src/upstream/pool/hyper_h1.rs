//! hyper's HTTP/1.1 client connections (TCP or TLS), lent to one request at a time and given back once its response
//! has been read.

use super::{this_thread, Endpoint, Home, Pool, MAX_IDLE_PER_ENDPOINT};
use crate::drain::AbortOnDrop;
use crate::upstream::body_source::UpstreamBody;
use crate::upstream::failure::{Failure, FailureKind};
use crate::upstream::hyper_h1::UpstreamIo;
use crate::upstream::limits::{MAX_RESPONSE_FIELDS, MAX_RESPONSE_HEAD_BYTES};
use crate::upstream::transport::Transport;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub struct Connection {
    pub sender: http1::SendRequest<UpstreamBody>,
    pub addr: SocketAddr,
    /// Came from the pool rather than a new connect: a failure on it may only mean the upstream closed it.
    pub reused: bool,
    /// The transport's key: the list it goes back to.
    transport: u64,
    /// The thread whose runtime drives the connection's I/O: its idle list is where the connection goes back.
    home: Home,
    /// Closed once its response has been read instead of going back to the list ([`Connection::close_after_response`]).
    closing: bool,
    /// Ends the connection's task when the connection is dropped instead of pooled. Without it, an abandoned attempt
    /// (timed out, or its client gone) would keep writing the body to an upstream that may then see it complete, and
    /// keep the spool alive for as long as the upstream holds the socket open.
    task: AbortOnDrop,
}

pub(super) struct Idle {
    pub sender: http1::SendRequest<UpstreamBody>,
    pub since: Instant,
    task: AbortOnDrop,
}

impl Connection {
    /// Marks a connection whose response cannot be trusted to end where hyper thinks it does (say, it came with both
    /// `Content-Length` and `Transfer-Encoding`): it carries no further request.
    pub fn close_after_response(&mut self) {
        self.closing = true;
    }
}

impl Pool {
    /// A pooled connection to `addr` over `transport`, opened by this thread, that is still open and young enough.
    pub fn checkout(&self, addr: SocketAddr, transport: &Transport) -> Option<Connection> {
        let home = this_thread();
        let key = transport.key();
        let mut idle = self.lock(home.shard);
        let conns = idle.hyper.get_mut(&(home.thread, addr, key))?;
        while let Some(conn) = conns.pop() {
            if conn.since.elapsed() < self.idle_timeout && conn.sender.is_ready() {
                return Some(Connection {
                    sender: conn.sender,
                    addr,
                    reused: true,
                    transport: key,
                    home,
                    closing: false,
                    task: conn.task,
                });
            }
        }
        None
    }

    /// A new connection, handshakes included, within `timeout`. It can switch protocols (`101`): the tunnel then
    /// takes its socket.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        transport: &Transport,
        timeout: Duration,
    ) -> Result<Connection, Failure> {
        let stream = transport.connect(addr, timeout).await?;
        let (sender, conn) = http1::Builder::new()
            // The one cap of every upstream path: hyper checks it on the complete head too, not only while the head
            // is incomplete, and applies it to a chunked body's trailer section.
            .max_header_size(MAX_RESPONSE_HEAD_BYTES)
            .max_headers(MAX_RESPONSE_FIELDS)
            .handshake(TokioIo::new(UpstreamIo::new(stream)))
            .await
            .map_err(|e| Failure::new(FailureKind::ResetBeforeResponse, format!("{addr}: {e}")))?;
        let task = tokio::spawn(async move {
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%error, %addr, "upstream connection ended");
            }
        });
        Ok(Connection {
            sender,
            addr,
            reused: false,
            transport: transport.key(),
            home: this_thread(),
            closing: false,
            task: AbortOnDrop(task.abort_handle()),
        })
    }

    /// Puts a connection back once its response has been read to the end; a connection whose response is abandoned
    /// closes instead.
    ///
    /// hyper's connection is ready for the next request once it has read the whole response from the socket. A small
    /// response usually arrives in the same read as its head, so the connection is often ready at once and goes
    /// straight back; otherwise a task waits for the body to be read (or abandoned) first.
    pub fn release(self: &Arc<Self>, mut conn: Connection) {
        if conn.closing {
            // Kept until the body has been read (its bytes come through the connection's task), then closed.
            tokio::spawn(async move {
                let _ = conn.sender.ready().await;
                drop(conn);
            });
            return;
        }
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
        let endpoint: Endpoint = (conn.home.thread, conn.addr, conn.transport);
        let conns = idle.hyper.entry(endpoint).or_default();
        // Expired and closed connections are dropped at checkout; here only the count is bounded.
        if conns.len() >= MAX_IDLE_PER_ENDPOINT {
            conns.retain(|c| c.since.elapsed() < self.idle_timeout && !c.sender.is_closed());
        }
        if conns.len() < MAX_IDLE_PER_ENDPOINT {
            conns.push(Idle { sender: conn.sender, since: Instant::now(), task: conn.task });
        }
    }
}
