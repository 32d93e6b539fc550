//! Whether a `play` may subscribe: play authorisation (private apps need a signed URL), a
//! drain, and the connection slots kept for publishers. Each refusal is counted, logged at the
//! connection log's rate and told to the player (`NetStream.Play.Failed` with the reason).

use sluice_media::stream_name::StreamKey;
use tracing::{info, warn};

use super::RtmpContext;
use crate::metrics::{ErrorKind, Protocol};
use crate::play_auth::unix_now;

/// The reason a play of `key` (sent as `name` on a connection to `app` from `client`) is
/// refused, if it is.
pub(super) fn admit(
    ctx: &RtmpContext,
    key: &StreamKey,
    app: &str,
    name: &str,
    client: std::net::IpAddr,
) -> Result<(), String> {
    if let Err(e) = ctx.play_auth.check_rtmp(key, app, name, Some(client), unix_now()) {
        ctx.metrics.play_unauthorized(Protocol::Rtmp);
        if ctx.client_log.allow() {
            info!(app = %key.app(), reason = e.label(), "play refused: unauthorised");
        }
        return Err(e.to_string());
    }
    if ctx.drain.is_draining() {
        return Err("this node is draining: play from another node".into());
    }
    // The connection already holds its slot; the last `--publisher-reserve` free ones are for
    // publishers, so viewers can never lock them out.
    if ctx.connection_slots.available_permits() < ctx.publisher_reserve {
        ctx.metrics.error(ErrorKind::Limit);
        if ctx.client_log.allow() {
            warn!(stream = %key, "play refused: the remaining connection slots are kept for publishers");
        }
        return Err("the server is at its viewer limit (slots are kept for publishers)".into());
    }
    Ok(())
}
