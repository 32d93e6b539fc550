//! Edge-only settings.

use std::time::Duration;

use clap::Args;
use sluice_node::config::parse_duration;

/// How an edge pulls streams from origins.
#[derive(Debug, Clone, Args)]
pub struct EdgeArgs {
    /// After a stream's last viewer leaves, keep pulling it this long (a viewer that comes
    /// back, or the next one, starts at once).
    #[arg(long, env = "SLUICE_UPSTREAM_LINGER", default_value = "10s", value_parser = parse_duration)]
    pub upstream_linger: Duration,

    /// When the upstream breaks (origin crash, network), how long viewers are kept connected
    /// waiting for the stream to come back on some origin before they are told it ended.
    #[arg(long, env = "SLUICE_UPSTREAM_GRACE", default_value = "15s", value_parser = parse_duration)]
    pub upstream_grace: Duration,

    /// Time allowed to reach an origin's relay and subscribe.
    #[arg(long, env = "SLUICE_UPSTREAM_CONNECT_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub upstream_connect_timeout: Duration,
}

/// The pull settings, as the pull tasks use them.
#[derive(Debug, Clone)]
pub struct PullSettings {
    pub linger: Duration,
    pub grace: Duration,
    pub connect_timeout: Duration,
}

impl From<&EdgeArgs> for PullSettings {
    fn from(a: &EdgeArgs) -> Self {
        PullSettings {
            linger: a.upstream_linger,
            grace: a.upstream_grace,
            connect_timeout: a.upstream_connect_timeout,
        }
    }
}
