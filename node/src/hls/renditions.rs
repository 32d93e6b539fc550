//! A transcoded stream's ladder in its playlists: the renditions the multivariant playlist
//! lists after the source, and the reports of the ladder's other streams each LL-HLS media
//! playlist carries.

use std::net::IpAddr;

use sluice_media::hls::{RenditionReport, Variant, MEDIA_PLAYLIST_NAME};
use sluice_media::stream_name::StreamKey;

use super::http::HlsService;

/// Where the other renditions of `key`'s ladder are (LL-HLS `EXT-X-RENDITION-REPORT`), so a
/// player switching to one asks for its next part at once.
pub(super) fn reports(svc: &HlsService, key: &StreamKey) -> Vec<RenditionReport> {
    let Some(transcoders) = &svc.renditions else { return Vec::new() };
    transcoders
        .family(key)
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

/// The renditions of `key` that have HLS media now, as variants. A player starts a session
/// of a rendition when it first asks for its playlist (302 to it with a session id), so
/// reading the multivariant playlist costs no session per rendition; but a private or webhook
/// stream's renditions get theirs here, where the request was authorised.
pub(super) fn variants(svc: &HlsService, key: &StreamKey, client: Option<IpAddr>) -> Vec<Variant> {
    let Some(transcoders) = &svc.renditions else { return Vec::new() };
    let authorised_here = svc.play_auth.is_private(key) || svc.play_auth.asks_webhook(key);
    let mut out = Vec::new();
    for rendition in transcoders.renditions(key) {
        let Some((rx, true)) = svc.hub.hls(&rendition) else { continue };
        let snap = rx.borrow().clone();
        let Some(snap) = snap.filter(|s| !s.segments().is_empty()) else { continue };
        let mut uri = format!("{}/{MEDIA_PLAYLIST_NAME}", rendition.name());
        if authorised_here {
            let Ok(sid) = svc.sessions.touch(None, &rendition, client) else { continue };
            uri = format!("{uri}?sid={sid}");
        }
        out.extend(snap.variant(&uri));
    }
    out
}
