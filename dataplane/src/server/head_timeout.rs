//! The header read timeout: an HTTP/1 connection that has waited longer than `--header-read-timeout` for a complete
//! request head — a new connection, an idle keep-alive connection, or a client sending its head a byte at a time
//! (slowloris) — is closed.
//!
//! hyper can do this itself, but it arms a new timer for every request head: a clock read, a boxed sleep, and an
//! insertion into and removal from the runtime's timer wheel, for each small request. Here each connection has one
//! timer, which fires every half timeout and is only re-armed then. At each firing the connection counts as quiet
//! when no request head arrived and no response finished since the previous firing, and no response is being sent.
//! Two quiet firings in a row mean no head for at least the whole timeout, so the connection is closed between one
//! and one and a half timeouts after its last request — a bound as good against slowloris, at no cost per request.
//!
//! HTTP/2 connections are left alone, as hyper's timeout (HTTP/1 only) left them.

use crate::client::ConnState;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Quiet firings in a row, half a timeout apart, after which the connection is closed.
const QUIET_FIRINGS: u8 = 2;

pub(crate) struct HeadTimeout {
    conn: Arc<ConnState>,
    period: Duration,
    timer: Pin<Box<Sleep>>,
    /// Whether `timer` has been polled since it was last set, so that it will wake the connection's task.
    registered: bool,
    last_activity: u32,
    quiet: u8,
}

impl HeadTimeout {
    pub fn new(conn: Arc<ConnState>, timeout: Duration) -> Self {
        let period = (timeout / u32::from(QUIET_FIRINGS)).max(Duration::from_millis(1));
        let last_activity = conn.activity();
        HeadTimeout {
            conn,
            period,
            timer: Box::pin(tokio::time::sleep(period)),
            registered: false,
            last_activity,
            quiet: 0,
        }
    }

    /// Called on every poll of the connection: whether it has waited for a request head for the whole timeout.
    /// Between firings this reads one flag.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.registered && !self.timer.is_elapsed() {
            return false;
        }
        if self.registered {
            let activity = self.conn.activity();
            let quiet = activity == self.last_activity && !self.conn.busy();
            self.last_activity = activity;
            self.quiet = if quiet { self.quiet.saturating_add(1) } else { 0 };
            if self.quiet >= QUIET_FIRINGS && !self.conn.is_http2() {
                return true;
            }
            self.timer.as_mut().reset(Instant::now() + self.period);
        }
        // The task's waker is the same on every poll, so registering it once per firing is enough.
        self.registered = true;
        if self.timer.as_mut().poll(cx).is_ready() {
            // Already due: no waker was registered, so ask for the next poll directly.
            cx.waker().wake_by_ref();
        }
        false
    }
}
