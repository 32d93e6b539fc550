//! A transcoded stream's ladder in its playlists: the renditions the multivariant playlist
//! (and the MPD) lists after the source, and the reports of the ladder's other streams each
//! LL-HLS media playlist carries.
//!
//! Which renditions a stream has: the node's own transcoder's, else (in a cluster) those the
//! registry knows ([`RenditionFinder`], given by the HTTP layer). An edge pulls them before it
//! lists them ([`pull`]).

use std::net::IpAddr;
use std::sync::Arc;

use sluice_media::hls::{RenditionReport, Variant, MEDIA_PLAYLIST_NAME};
use sluice_media::stream_name::StreamKey;
use tokio::time::Instant;

use super::http::HlsService;
use crate::hub::Subscription;
use crate::metrics::Protocol;

/// The renditions the cluster knows of (from the registry's claims).
pub trait ClusterRenditions: Send + Sync {
    /// The renditions of a source stream.
    fn renditions(&self, source: &StreamKey) -> Vec<StreamKey>;
    /// The source a rendition renders.
    fn source(&self, rendition: &StreamKey) -> Option<StreamKey>;
}

/// Where a node finds the renditions of a stream.
#[derive(Clone, Default)]
pub struct RenditionSources {
    /// This node's transcoders (origins with a ladder).
    pub own: Option<Arc<crate::transcode::Transcoders>>,
    /// In a cluster: the registry's claims.
    pub cluster: Option<Arc<dyn ClusterRenditions>>,
}

impl RenditionSources {
    /// The source `key` is a rendition of, if it is one.
    pub fn source(&self, key: &StreamKey) -> Option<StreamKey> {
        let own = self.own.as_ref().and_then(|t| t.family(key).into_iter().next());
        own.filter(|s| s != key).or_else(|| self.cluster.as_ref()?.source(key))
    }
}

/// The renditions of `key`: this node's transcoder's, else the cluster's.
pub(super) fn names(svc: &HlsService, key: &StreamKey) -> Vec<StreamKey> {
    let sources = &svc.renditions;
    let own = sources.own.as_ref().map(|t| t.renditions(key)).unwrap_or_default();
    if !own.is_empty() {
        return own;
    }
    sources.cluster.as_ref().map(|c| c.renditions(key)).unwrap_or_default()
}

/// On an edge, pull `names` that are not here yet and wait (at most `wait`) until each has a
/// complete segment; the subscriptions keep them pulled while the answer is made (a player's
/// requests then hold their own).
pub(super) async fn pull(
    svc: &HlsService,
    names: &[StreamKey],
    wait: std::time::Duration,
) -> Vec<Subscription> {
    if !svc.hub.has_upstream() {
        return Vec::new();
    }
    let deadline = Instant::now() + wait;
    let waits = names.iter().filter(|k| !svc.hub.is_live(k)).filter_map(|key| {
        let sub = svc.hub.subscribe(key, Protocol::Hls).ok()?;
        Some(async move {
            let mut sub = sub;
            sub.wait_live(deadline.saturating_duration_since(Instant::now())).await;
            if let Some((mut rx, _)) = svc.hub.hls(key) {
                let has_segment = |s: &Option<sluice_media::hls::HlsSnapshot>| {
                    s.as_ref().is_some_and(|s| !s.segments().is_empty())
                };
                while !has_segment(&rx.borrow_and_update()) {
                    match tokio::time::timeout_at(deadline, rx.changed()).await {
                        Ok(Ok(())) => {}
                        _ => break,
                    }
                }
            }
            sub
        })
    });
    futures_util::future::join_all(waits).await
}

/// Where the other renditions of `key`'s ladder are (LL-HLS `EXT-X-RENDITION-REPORT`), so a
/// player switching to one asks for its next part at once.
/// The streams of this node that are not carried here (an edge not pulling them) are left
/// out.
pub(super) fn reports(svc: &HlsService, key: &StreamKey) -> Vec<RenditionReport> {
    family(svc, key)
        .iter()
        .filter(|other| *other != key)
        .filter_map(|other| {
            let (rx, _) = svc.hub.hls(other)?;
            let snap = rx.borrow();
            let uri = format!("../{}/{MEDIA_PLAYLIST_NAME}", other.name());
            snap.as_ref()?.rendition_report(&uri)
        })
        .collect()
}

/// The streams of `key`'s ladder, when it has one: the source, then its renditions (from this
/// node's transcoder, else the registry).
fn family(svc: &HlsService, key: &StreamKey) -> Vec<StreamKey> {
    let sources = &svc.renditions;
    let own = sources.own.as_ref().map(|t| t.family(key)).unwrap_or_default();
    if !own.is_empty() {
        return own;
    }
    let Some(cluster) = &sources.cluster else { return Vec::new() };
    let source = cluster.source(key).unwrap_or_else(|| key.clone());
    let renditions = cluster.renditions(&source);
    if renditions.is_empty() {
        return Vec::new();
    }
    std::iter::once(source).chain(renditions).collect()
}

/// The renditions of `key` that have HLS media now, as variants. A player starts a session
/// of a rendition when it first asks for its playlist (302 to it with a session id), so
/// reading the multivariant playlist costs no session per rendition; but a private or webhook
/// stream's renditions get theirs here, where the request was authorised.
pub(super) fn variants(
    svc: &HlsService,
    key: &StreamKey,
    names: &[StreamKey],
    client: Option<IpAddr>,
) -> Vec<Variant> {
    let authorised_here = svc.play_auth.is_private(key) || svc.play_auth.asks_webhook(key);
    let mut out = Vec::new();
    for rendition in names {
        let Some((rx, true)) = svc.hub.hls(rendition) else { continue };
        let snap = rx.borrow().clone();
        let Some(snap) = snap.filter(|s| !s.segments().is_empty()) else { continue };
        let mut uri = format!("{}/{MEDIA_PLAYLIST_NAME}", rendition.name());
        if authorised_here {
            let Ok(sid) = svc.sessions.touch(None, rendition, client) else { continue };
            uri = format!("{uri}?sid={sid}");
        }
        out.extend(snap.variant(&uri));
    }
    out
}
