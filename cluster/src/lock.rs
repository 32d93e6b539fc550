//! The one poison-tolerant mutex lock of the registry.
//!
//! Every critical section in this crate leaves its data consistent, so a lock poisoned by a
//! panicking task is taken as it is instead of spreading the panic to every later caller.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Lock `m`, ignoring poisoning.
#[allow(clippy::disallowed_methods)] // the one place that locks a std mutex
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
