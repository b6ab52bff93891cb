//! The one drain primitive: whether the process is shutting down, and the deliveries that outlive their client
//! (`clientAbort: Complete`), which shutdown must wait for like any request in flight.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
    detached: AtomicUsize,
    detached_done: Notify,
}

impl Drain {
    /// From now on `/readyz` fails and HTTP/1 responses end their connection.
    pub fn start(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Runs `task` to completion even if its caller goes away, counted until it ends.
    pub fn spawn<F>(self: &Arc<Self>, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.detached.fetch_add(1, Ordering::AcqRel);
        let drain = self.clone();
        tokio::spawn(async move {
            task.await;
            if drain.detached.fetch_sub(1, Ordering::AcqRel) == 1 {
                drain.detached_done.notify_waiters();
            }
        });
    }

    /// Resolves when no detached delivery is running.
    pub async fn detached_finished(&self) {
        loop {
            let notified = self.detached_done.notified();
            if self.detached.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}
