//! Waiting for a condition instead of sleeping a fixed time: on a loaded machine a fixed sleep
//! is either too short (the test fails) or always too long (the suite crawls).

use std::time::Duration;

use crate::origin::Origin;
use crate::process::wait_for;

/// Poll `condition` until it holds; panic naming `what` if `timeout` passes first.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    if wait_for(timeout, || condition().then_some(())).is_none() {
        panic!("timed out after {timeout:?} waiting until {what}");
    }
}

/// Node arguments that log each player's subscription (RTMP `play`, HTTP-FLV request) at
/// debug level, the rest at info, for [`wait_players_subscribed`].
pub const LOG_PLAYS: [&str; 2] =
    ["--log", "info,sluice_node::rtmp::connection=debug,sluice_node::http::flv=debug"];

/// Wait until `origin` (started with [`LOG_PLAYS`]) has subscribed `rtmp` RTMP players and
/// `flv` HTTP-FLV players to `stream` (`app/name`). A subscribed player that waits for the
/// publisher gets the publish session from its first frame; a player that is merely connected
/// may still join later, at a keyframe.
pub fn wait_players_subscribed(
    origin: &Origin,
    stream: &str,
    rtmp: usize,
    flv: usize,
    timeout: Duration,
) {
    // The debug lines of node/src/rtmp/connection/play.rs and node/src/http/flv.rs.
    let rtmp_line = format!("connection::play: play stream={stream} ");
    let flv_line = format!("flv: http-flv subscribed stream={stream} ");
    let count = |log: &str, line: &str| log.lines().filter(|l| l.contains(line)).count();
    let what = format!("{rtmp} RTMP and {flv} HTTP-FLV players of {stream} are subscribed");
    wait_until(timeout, &what, || {
        let log = origin.log();
        count(&log, &rtmp_line) >= rtmp && count(&log, &flv_line) >= flv
    });
}
