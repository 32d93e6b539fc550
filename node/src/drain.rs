//! Whether this node is draining on an operator's order, shared by the drivers that admit
//! viewers and publishers: the orders driver (`crate::orders`) sets it, the RTMP and HTTP
//! drivers read it. A small value behind a lock, read once per new viewer or request.
//!
//! While draining, new work is turned away: HTTP viewers are sent to `redirect` (another
//! ready edge) when one is known, RTMP players and publishers are refused, `/readyz` answers
//! 503. Once `closed` (the order's deadline passed), what was left has been closed and every
//! media request is refused or redirected.

use std::sync::Mutex;

use crate::lock::lock;

/// What the drivers see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainView {
    /// A drain order is in force.
    pub draining: bool,
    /// Its deadline passed: remaining viewers (and publishers) were closed.
    pub closed: bool,
    /// `host:port` of another ready edge's HTTP side, where new HTTP viewers are sent.
    pub redirect: Option<String>,
}

/// The shared drain state of one node.
#[derive(Debug, Default)]
pub struct DrainGate {
    view: Mutex<DrainView>,
}

impl DrainGate {
    pub fn view(&self) -> DrainView {
        lock(&self.view).clone()
    }

    pub fn is_draining(&self) -> bool {
        lock(&self.view).draining
    }

    pub fn set(&self, view: DrainView) {
        *lock(&self.view) = view;
    }

    /// Change the redirect target only (the snapshot moved while draining).
    pub fn set_redirect(&self, redirect: Option<String>) {
        lock(&self.view).redirect = redirect;
    }

    /// The absolute URL on the redirect target for a request of `path` (without its query:
    /// an HLS session id belongs to this node, and the other node starts its own session).
    pub fn redirect_url(&self, path: &str) -> Option<String> {
        let view = lock(&self.view);
        let authority = view.redirect.as_deref().filter(|_| view.draining)?;
        Some(format!("http://{authority}{path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_only_while_draining_and_without_the_query() {
        let gate = DrainGate::default();
        gate.set_redirect(Some("10.0.0.2:8080".into()));
        assert_eq!(gate.redirect_url("/live/x.flv"), None, "not draining");
        gate.set(DrainView { draining: true, closed: false, redirect: Some("e2:80".into()) });
        assert_eq!(
            gate.redirect_url("/live/x/index.m3u8").as_deref(),
            Some("http://e2:80/live/x/index.m3u8")
        );
        gate.set_redirect(None);
        assert_eq!(gate.redirect_url("/live/x.flv"), None, "nowhere to send them");
        assert!(gate.is_draining());
    }
}
