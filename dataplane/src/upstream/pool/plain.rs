//! Idle plain HTTP/1.1 sockets ([`crate::upstream::plain`]): TCP only, lent to one request at a time.

use super::{this_thread, Pool, MAX_IDLE_PER_ENDPOINT};
use crate::upstream::failure::Failure;
use crate::upstream::plain::PlainConnection;
use crate::upstream::transport::connect_tcp;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

pub(super) struct IdlePlain {
    pub conn: PlainConnection,
    pub since: Instant,
}

impl Pool {
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
        Ok(PlainConnection::new(connect_tcp(addr, timeout).await?, addr))
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
}
