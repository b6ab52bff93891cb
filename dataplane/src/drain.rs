//! The one drain primitive: whether the process is shutting down, and the tasks that outlive the request that
//! started them — deliveries that finish after their client left (`clientAbort: Complete`) and deliveries run by a
//! neighbouring worker — which shutdown must wait for like any request in flight.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinHandle};

#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
    tasks: AtomicUsize,
    tasks_done: Notify,
}

impl Drain {
    /// From now on `/readyz` fails and HTTP/1 responses end their connection.
    pub fn start(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Runs `task` on `runtime`, counted until it ends or is aborted. Every worker waits for the count to reach zero
    /// before its runtime stops, so a task running on a neighbour's runtime is never cut off by that neighbour's
    /// shutdown.
    pub fn spawn_on<F>(self: &Arc<Self>, runtime: &Handle, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let counted = Counted::new(self.clone());
        runtime.spawn(async move {
            let _counted = counted;
            task.await
        })
    }

    /// Resolves when no counted task is running.
    pub async fn detached_finished(&self) {
        loop {
            let notified = self.tasks_done.notified();
            if self.tasks.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One counted task; the count drops when the task ends, however it ends.
struct Counted(Arc<Drain>);

impl Counted {
    fn new(drain: Arc<Drain>) -> Self {
        drain.tasks.fetch_add(1, Ordering::AcqRel);
        Counted(drain)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.0.tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.tasks_done.notify_waiters();
        }
    }
}

/// Aborts a task when dropped: ties a spawned task's life to the value that holds this.
#[derive(Debug)]
pub struct AbortOnDrop(pub AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
