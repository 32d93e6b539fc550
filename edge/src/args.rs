//! Edge-only settings as the pull tasks use them (the values, their flags and file keys are
//! `sluice_node::settings::EdgeSettings` and `sluice_node::config::EdgeArgs`).

use std::time::Duration;

use sluice_node::settings::EdgeSettings;

/// The pull settings, as the pull tasks use them.
#[derive(Debug, Clone)]
pub struct PullSettings {
    pub linger: Duration,
    pub grace: Duration,
    pub connect_timeout: Duration,
    /// Zero: no stall fallback.
    pub stall: Duration,
}

impl From<&EdgeSettings> for PullSettings {
    fn from(s: &EdgeSettings) -> Self {
        PullSettings {
            linger: s.linger,
            grace: s.grace,
            connect_timeout: s.connect_timeout,
            stall: s.stall,
        }
    }
}
