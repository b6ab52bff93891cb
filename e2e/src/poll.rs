//! Bounded waits. Every wait of the suite polls with a deadline of at most [`MAX_WAIT`], so a cluster that never
//! converges fails the test with what was last seen instead of hanging it.

use std::time::Duration;
use tokio::time::Instant;

/// The longest any single wait may take.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Pause between two checks: short enough to see a 1 s reaction, long enough not to hammer the API server.
const INTERVAL: Duration = Duration::from_millis(250);

/// Calls `check` until it returns `Ok(Some(value))`, for at most `limit` (capped at [`MAX_WAIT`]). `Ok(None)` and
/// `Err` both mean "not yet"; the failure names `what` and the last error. A check that hangs is cut off at the
/// deadline too.
pub async fn until<T>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let limit = limit.min(MAX_WAIT);
    let deadline = Instant::now() + limit;
    let mut last = String::from("the condition was never met");
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(Some(value))) => return Ok(value),
            Ok(Ok(None)) => last = String::from("the condition was not met"),
            Ok(Err(error)) => last = format!("{error:#}"),
            Err(_) => last = format!("the last check was still running at the deadline (after: {last})"),
        }
        if Instant::now() >= deadline {
            anyhow::bail!("{what}: not within {limit:?}; last: {last}");
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
