//! A byte budget shared by a GOP stream's queue (which reserves) and its writer task (which
//! releases after writing): bounds the queue in bytes, not only in frames.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub(crate) struct ByteBudget {
    queued: Arc<AtomicUsize>,
    cap: usize,
}

impl ByteBudget {
    pub(crate) fn new(cap: usize) -> Self {
        ByteBudget { queued: Arc::new(AtomicUsize::new(0)), cap }
    }

    /// Reserve `len` bytes: `false` if that would take the queue past its cap. An empty queue
    /// always takes one frame, however large (the frame size has its own limit).
    pub(crate) fn try_reserve(&self, len: usize) -> bool {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued == 0 || queued.saturating_add(len) <= self.cap).then(|| queued + len)
            })
            .is_ok()
    }

    /// `len` reserved bytes were written (or dropped).
    pub(crate) fn release(&self, len: usize) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| Some(q.saturating_sub(len)));
    }

    #[cfg(test)]
    fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_up_to_the_cap_and_releases() {
        let b = ByteBudget::new(100);
        assert!(b.try_reserve(60));
        assert!(b.try_reserve(40));
        assert!(!b.try_reserve(1), "full");
        let writer = b.clone();
        writer.release(60);
        assert_eq!(b.queued(), 40);
        assert!(b.try_reserve(60));
        assert!(!b.try_reserve(1));
    }

    #[test]
    fn an_empty_queue_takes_one_oversized_frame() {
        let b = ByteBudget::new(100);
        assert!(b.try_reserve(1000));
        assert!(!b.try_reserve(1));
        b.release(1000);
        assert_eq!(b.queued(), 0);
    }
}
