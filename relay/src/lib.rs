//! The Sluice relay (placeholder during construction).
pub mod codec;
