//! Sluice's sans-IO media core.
//!
//! Everything in this crate is a pure state machine or a pure function: bytes (and, where time
//! matters, an explicit `now`) go in; events and bytes come out. Nothing here opens a socket,
//! spawns a task, reads a clock or sleeps. The tokio drivers in `sluice-node` own the sockets.
//!
//! Architecture invariant: this crate does no I/O and never panics on input from the network;
//! every length it allocates for is bounded by a configured limit.

pub mod amf0;
pub mod classify;
pub mod codec;
pub mod dash;
pub mod flv;
pub mod frame;
pub mod hls;
pub mod mp4;
pub mod rtmp;
pub mod stream_name;
pub mod ts;
