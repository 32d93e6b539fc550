//! The relay endpoint's configuration from [`RelaySettings`]: transport limits and TLS.

use sluice_relay::tls::RelayTls;
use sluice_relay::RelayConfig;

use crate::settings::RelaySettings;

/// The relay endpoint configuration for `node_id`.
pub fn relay_config(settings: &RelaySettings, node_id: &str) -> anyhow::Result<RelayConfig> {
    let mut cfg = RelayConfig::new(node_id.to_string(), relay_tls(settings, node_id)?);
    cfg.keep_alive_interval = settings.keepalive;
    cfg.max_idle_timeout = settings.idle_timeout.max(settings.keepalive * 2);
    cfg.max_frame_size = settings.max_frame_size.max(1024);
    cfg.max_subscriptions = settings.max_subscriptions.max(1);
    cfg.max_forwards = settings.max_subscriptions.max(1);
    Ok(cfg)
}

/// The relay TLS for `node_id`: mutual TLS from `--tls-dir`, or no verification with
/// `--insecure-dev`; neither is an error.
pub fn relay_tls(settings: &RelaySettings, node_id: &str) -> anyhow::Result<RelayTls> {
    sluice_relay::tls::install_crypto_provider();
    match (&settings.tls_dir, settings.insecure_dev) {
        (Some(dir), _) => RelayTls::from_dir(dir, node_id).map_err(|e| {
            anyhow::anyhow!(
                "loading relay certificates for node '{node_id}' from {}: {e}",
                dir.display()
            )
        }),
        (None, true) => {
            tracing::warn!("--insecure-dev: relay TLS verification is OFF");
            Ok(RelayTls::insecure_dev())
        }
        (None, false) => Err(anyhow::anyhow!(
            "the relay needs --tls-dir DIR (write a development set with `sluice-origin gen-certs --out DIR --nodes ...`) or --insecure-dev"
        )),
    }
}
