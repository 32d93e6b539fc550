//! What the async drivers of the sans-IO policies share (node forwards, edge pulls): the
//! policies' clock, a sleep until their next deadline, and the I/O operation in flight that a
//! driver's `select!` polls.

use std::future::Future;
use std::pin::Pin;

/// An I/O operation in flight, polled by a driver's `select!`.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The policies' clock: tokio's, so tests with paused time drive it too.
#[must_use]
pub fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Sleeps until `at`; forever without a deadline.
pub async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Waits for the operation in `slot` (tagged with `K`, e.g. the node it talks to), clears the
/// slot and returns the tag with the result; waits forever when nothing is in flight.
pub async fn settle<K: Clone, T>(slot: &mut Option<(K, Pending<'_, T>)>) -> (K, T) {
    let Some((tag, fut)) = slot.as_mut() else { return std::future::pending().await };
    let out = fut.as_mut().await;
    let tag = tag.clone();
    *slot = None;
    (tag, out)
}
