//! One relay connection per peer node, shared by every stream pulled from or forwarded to it.
//!
//! Connections are dialled on first use and replaced once closed. Each origin has its own
//! slot with an async lock, so dialling a dead origin (bounded by the connect timeout) never
//! delays pulls from the others.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_relay::{RelayConnection, RelayEndpoint, RelayError};
use tokio::sync::Mutex as AsyncMutex;
use tracing::{info, Instrument};

type Slot = Arc<AsyncMutex<Option<RelayConnection>>>;

/// Why no connection to an origin could be had.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("relay connection to {node} at {addr}: {source}")]
    Relay { node: String, addr: SocketAddr, source: RelayError },
    #[error("relay connection to {node} at {addr}: timed out")]
    Timeout { node: String, addr: SocketAddr },
}

/// This node's outgoing relay connections, by peer node id.
pub struct Peers {
    relay: RelayEndpoint,
    slots: Mutex<HashMap<String, Slot>>,
    connect_timeout: Duration,
}

impl Peers {
    pub fn new(relay: RelayEndpoint, connect_timeout: Duration) -> Arc<Self> {
        Arc::new(Peers { relay, slots: Mutex::new(HashMap::new()), connect_timeout })
    }

    /// The live connection to `node` (at `addr`), dialling it if there is none.
    pub async fn get(&self, node: &str, addr: SocketAddr) -> Result<RelayConnection, PeerError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.entry(node.to_string()).or_default().clone()
        };
        let mut conn = slot.lock().await;
        if let Some(c) = conn.as_ref() {
            if c.quic().close_reason().is_none() && c.quic().remote_address() == addr {
                return Ok(c.clone());
            }
        }
        *conn = None;
        // quinn runs the connection's driver in the span current at dial time for as long as
        // the connection lives: give it a root span of its own, or the caller's span (a pull,
        // a forward) would never close while the shared connection stays up.
        let span = tracing::info_span!(parent: None, "relay_connection", peer = node, %addr);
        let dial = self.relay.connect(addr, node).instrument(span);
        let c = match tokio::time::timeout(self.connect_timeout, dial).await {
            Ok(Ok(c)) => c,
            Ok(Err(source)) => return Err(PeerError::Relay { node: node.to_string(), addr, source }),
            Err(_) => return Err(PeerError::Timeout { node: node.to_string(), addr }),
        };
        info!(peer = node, %addr, "relay connection established");
        *conn = Some(c.clone());
        Ok(c)
    }

    /// Origins this edge holds an open connection to.
    pub fn connected(&self) -> usize {
        let slots: Vec<Slot> = self.slots.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        slots
            .iter()
            .filter(|s| s.try_lock().map(|c| c.as_ref().is_some_and(|c| c.quic().close_reason().is_none())).unwrap_or(true))
            .count()
    }
}
