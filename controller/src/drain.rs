//! The one shutdown signal every task watches: `main` fires it once on SIGTERM or Ctrl-C; tests fire it to stop a run.

use tokio::sync::watch;

/// Fires the shutdown. Dropping it fires it too, so a task never outlives its owner.
pub struct Trigger(watch::Sender<bool>);

/// A task's view of the shutdown.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Resolves once shutdown has been fired (or its trigger dropped).
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which is a shutdown as well.
        let _ = self.0.wait_for(|fired| *fired).await;
    }
}
