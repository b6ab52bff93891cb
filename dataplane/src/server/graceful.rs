//! Graceful shutdown of the client connections of one listener: when the listener stops, every connection is asked
//! to finish (HTTP/1 keep-alive ends after the request in flight, HTTP/2 sends GOAWAY), and the drain waits until all
//! of them have closed.
//!
//! What hyper-util's `GracefulShutdown` does, at less cost per request: that one polls a `watch` channel's `changed()`
//! on every poll of every connection, which takes the channel's waiter lock each time, several times per request.
//! Here a connection registers its task's waker once, and afterwards each poll reads one atomic flag.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use tokio::sync::{watch, Notify};

#[derive(Debug, Default)]
struct Signal {
    shutting_down: AtomicBool,
    notify: Notify,
}

/// Held by the listener; [`Graceful::shutdown`] asks every watched connection to finish and waits for them.
#[derive(Debug)]
pub struct Graceful {
    signal: Arc<Signal>,
    /// Each watched connection holds a receiver: the channel counts them and says when the last one is gone.
    open: watch::Sender<()>,
}

/// Given to one connection, to be watched with [`Watcher::watch`].
#[derive(Debug)]
pub struct Watcher {
    signal: Arc<Signal>,
    _open: watch::Receiver<()>,
}

impl Default for Graceful {
    fn default() -> Self {
        Graceful { signal: Arc::default(), open: watch::channel(()).0 }
    }
}

impl Graceful {
    pub fn watcher(&self) -> Watcher {
        Watcher { signal: self.signal.clone(), _open: self.open.subscribe() }
    }

    /// Connections being watched.
    pub fn count(&self) -> usize {
        self.open.receiver_count()
    }

    /// Asks every connection to finish, then resolves once all of them have closed.
    pub async fn shutdown(self) {
        // The flag first: a connection that registers after `notify_waiters` then finds it set.
        self.signal.shutting_down.store(true, Ordering::Release);
        self.signal.notify.notify_waiters();
        self.open.closed().await;
    }
}

impl Watcher {
    /// Runs `connection` to its end; once the listener's shutdown begins, `finish` asks it (once) to finish and close.
    /// `expired` is asked on every poll whether the connection is to be dropped at once; then `None` is returned.
    pub async fn watch<C: Future>(
        self,
        connection: C,
        finish: impl FnOnce(Pin<&mut C>),
        mut expired: impl FnMut(&mut std::task::Context<'_>) -> bool,
    ) -> Option<C::Output> {
        let Watcher { signal, _open } = self;
        let mut connection = pin!(connection);
        // Created before the flag is first read: `notify_waiters` wakes every `Notified` that exists by then.
        let mut notified = pin!(signal.notify.notified());
        let (mut registered, mut finish) = (false, Some(finish));
        std::future::poll_fn(|cx| {
            if finish.is_some() {
                // The task's waker does not change between polls, so registering it once is enough.
                if !registered {
                    registered = true;
                    let _ = notified.as_mut().poll(cx);
                }
                if signal.shutting_down.load(Ordering::Acquire) {
                    if let Some(finish) = finish.take() {
                        finish(connection.as_mut());
                    }
                }
            }
            if expired(cx) {
                return Poll::Ready(None);
            }
            connection.as_mut().poll(cx).map(Some)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Context;
    use std::time::Duration;

    /// A connection that finishes only once asked to, and counts how often it was asked.
    struct UntilAsked {
        asked: Arc<AtomicUsize>,
    }

    impl Future for UntilAsked {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if self.asked.load(Ordering::Acquire) > 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    fn ask(connection: Pin<&mut UntilAsked>) {
        connection.asked.fetch_add(1, Ordering::AcqRel);
    }

    #[tokio::test]
    async fn shutdown_asks_each_idle_connection_once_and_waits_for_all_of_them() {
        let graceful = Graceful::default();
        let asked = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let connection = UntilAsked { asked: Arc::new(AtomicUsize::new(0)) };
            let counter = connection.asked.clone();
            let total = asked.clone();
            let watcher = graceful.watcher();
            tasks.push(tokio::spawn(async move {
                watcher.watch(connection, ask, |_| false).await;
                total.fetch_add(counter.load(Ordering::Acquire), Ordering::AcqRel);
            }));
        }
        tokio::task::yield_now().await;
        assert_eq!(graceful.count(), 3);
        tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await.expect("every connection closed");
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(asked.load(Ordering::Acquire), 3, "each connection asked exactly once");
    }

    #[tokio::test]
    async fn a_connection_watched_after_shutdown_began_is_asked_at_once() {
        let graceful = Graceful::default();
        let late = graceful.watcher();
        graceful.signal.shutting_down.store(true, Ordering::Release);
        graceful.signal.notify.notify_waiters();
        let connection = UntilAsked { asked: Arc::new(AtomicUsize::new(0)) };
        let asked = connection.asked.clone();
        tokio::time::timeout(Duration::from_secs(5), late.watch(connection, ask, |_| false))
            .await
            .expect("asked to finish");
        assert_eq!(asked.load(Ordering::Acquire), 1);
    }

    #[tokio::test]
    async fn an_expired_connection_is_dropped_without_being_asked_to_finish() {
        let graceful = Graceful::default();
        let connection = UntilAsked { asked: Arc::new(AtomicUsize::new(0)) };
        let asked = connection.asked.clone();
        let mut polls = 0;
        let expired = |_: &mut Context<'_>| {
            polls += 1;
            polls == 3
        };
        let watched = graceful.watcher().watch(connection, ask, expired);
        let woken = async {
            // Wakes the watching task twice, so that it is polled a third time.
            for _ in 0..2 {
                tokio::task::yield_now().await;
            }
        };
        let (output, ()) = tokio::join!(watched, woken);
        assert_eq!(output, None);
        assert_eq!(asked.load(Ordering::Acquire), 0);
        assert_eq!(graceful.count(), 0, "its watcher is gone");
    }
}
