//! Graceful shutdown of the client connections of one listener: when the listener stops, every connection is asked
//! to finish (HTTP/1 keep-alive ends after the request in flight, HTTP/2 sends GOAWAY), and the drain waits until all
//! of them have closed. A connection's own limits (`stream_limit`) ask it to finish, or to close, the same way.
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

pub use super::stream_limit::Asked;

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

/// How a watched connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Watched<O> {
    /// It ran to its end, with this output.
    Ended(O),
    /// `expired` said so: it was dropped.
    Expired,
    /// Its own limits asked for it to close at once ([`Asked::Close`]): it was dropped.
    Closed,
}

impl Watcher {
    /// Runs `connection` to its end; once the listener's shutdown begins, or once `asked` says
    /// [`Asked::Finish`], `finish` asks it (once) to finish and close. `expired` is asked on every poll whether the
    /// connection is to be dropped at once, and `asked` (a cheap read) before and after every poll of it: a poll
    /// may reach a limit, and the connection must then be asked to finish before the task sleeps.
    pub async fn watch<C: Future>(
        self,
        connection: C,
        finish: impl FnOnce(Pin<&mut C>),
        mut expired: impl FnMut(&mut std::task::Context<'_>) -> bool,
        asked: impl Fn() -> Asked,
    ) -> Watched<C::Output> {
        let Watcher { signal, _open } = self;
        let mut connection = pin!(connection);
        // Created before the flag is first read: `notify_waiters` wakes every `Notified` that exists by then.
        let mut notified = pin!(signal.notify.notified());
        let (mut registered, mut finish) = (false, Some(finish));
        std::future::poll_fn(|cx| {
            if expired(cx) {
                return Poll::Ready(Watched::Expired);
            }
            loop {
                let now = asked();
                if now == Asked::Close {
                    return Poll::Ready(Watched::Closed);
                }
                if finish.is_some() {
                    // The task's waker does not change between polls, so registering it once is enough.
                    if !registered {
                        registered = true;
                        let _ = notified.as_mut().poll(cx);
                    }
                    if now == Asked::Finish || signal.shutting_down.load(Ordering::Acquire) {
                        if let Some(finish) = finish.take() {
                            finish(connection.as_mut());
                        }
                    }
                }
                if let Poll::Ready(output) = connection.as_mut().poll(cx) {
                    return Poll::Ready(Watched::Ended(output));
                }
                // Polled again only when this poll changed what is asked: at most twice more (finish, close).
                if asked() == now {
                    return Poll::Pending;
                }
            }
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
                watcher.watch(connection, ask, |_| false, || Asked::Nothing).await;
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
        tokio::time::timeout(Duration::from_secs(5), late.watch(connection, ask, |_| false, || Asked::Nothing))
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
        let watched = graceful.watcher().watch(connection, ask, expired, || Asked::Nothing);
        let woken = async {
            // Wakes the watching task twice, so that it is polled a third time.
            for _ in 0..2 {
                tokio::task::yield_now().await;
            }
        };
        let (output, ()) = tokio::join!(watched, woken);
        assert_eq!(output, Watched::Expired);
        assert_eq!(asked.load(Ordering::Acquire), 0);
        assert_eq!(graceful.count(), 0, "its watcher is gone");
    }

    /// A connection that reaches its limit while it is polled, and ends once asked to finish.
    struct ReachesItsLimit {
        asked: Arc<AtomicUsize>,
        limit: Arc<AtomicUsize>,
    }

    impl Future for ReachesItsLimit {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            self.limit.store(1, Ordering::Release);
            if self.asked.load(Ordering::Acquire) > 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    #[tokio::test]
    async fn a_limit_reached_during_a_poll_asks_the_connection_to_finish_before_the_task_sleeps() {
        let graceful = Graceful::default();
        let (asked, limit) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let connection = ReachesItsLimit { asked: asked.clone(), limit: limit.clone() };
        let finish = |c: Pin<&mut ReachesItsLimit>| {
            c.asked.fetch_add(1, Ordering::AcqRel);
        };
        let what = || if limit.load(Ordering::Acquire) > 0 { Asked::Finish } else { Asked::Nothing };
        // Nothing else wakes the task: without the second look at `asked` it would sleep for ever.
        let watched = graceful.watcher().watch(connection, finish, |_| false, what);
        let output = tokio::time::timeout(Duration::from_secs(5), watched).await.expect("asked to finish at once");
        assert_eq!((output, asked.load(Ordering::Acquire)), (Watched::Ended(()), 1));
    }

    #[tokio::test]
    async fn a_connection_asked_to_close_is_dropped_without_being_asked_to_finish() {
        let graceful = Graceful::default();
        let connection = UntilAsked { asked: Arc::new(AtomicUsize::new(0)) };
        let asked = connection.asked.clone();
        let output = graceful.watcher().watch(connection, ask, |_| false, || Asked::Close).await;
        assert_eq!((output, asked.load(Ordering::Acquire)), (Watched::Closed, 0));
    }
}
