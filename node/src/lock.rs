//! The one poison-tolerant mutex lock of the node.
//!
//! A panic while a `std::sync::Mutex` is held poisons it; every critical section in this crate
//! leaves its data consistent (no multi-step invariants span a panic point), so a poisoned
//! lock is taken as it is instead of spreading the panic to every later caller.

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, ignoring poisoning.
#[allow(clippy::disallowed_methods)] // the one place that locks a std mutex
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods)] // poisons a mutex on purpose
    fn a_poisoned_lock_is_still_taken() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
