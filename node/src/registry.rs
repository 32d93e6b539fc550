//! The node's place in the cluster registry: etcd with `--etcd`, the in-memory registry
//! standalone. Publishing claims the stream name in the registry first, so a name has one live
//! publisher cluster-wide; a claim lost while the lease was gone stops that publisher.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_cluster::types::{Capacity, NodeId, NodeInfo, NodeState, Role};
use sluice_cluster::{EtcdRegistry, MemoryRegistry, Registry, RegistryConfig, RegistryEvent};
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use crate::hub::{Hub, KickReason};
use crate::settings::ClusterSettings;

/// The software version a node advertises: the crate version it was built from.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Everything the registry advertises about this node.
#[derive(Debug, Clone)]
pub struct Advertised {
    pub addresses: BTreeMap<String, String>,
    pub capacity: Capacity,
    /// When the node process started, milliseconds since the Unix epoch (taken as the server
    /// starts, before it registers; operators read it as the node's uptime).
    pub started_at_ms: u64,
    /// Marked as a transcoder (`--transcoder`).
    pub transcoder: bool,
    /// Plays scheduled files out (`--playout-dir`).
    pub playout: bool,
}

/// The addresses a node listens at, as bound.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub rtmps: Option<SocketAddr>,
    /// The relay's UDP address, when this node listens for relay peers.
    pub relay: Option<SocketAddr>,
}

/// `host:port`, with an IPv6 address in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The addresses a node advertises: `rtmp`, `http`, `https` and `rtmps` where players reach it
/// (`public-host` and the public ports when set: a load balancer or a NAT in front), `relay`
/// where other nodes reach it and `api` where the control plane reaches its HTTP API (both on
/// the node's own host: `advertise-host`, else the RTMP listen address's host; `api` with the
/// HTTP listen port, never a public one).
pub fn advertised_addresses(
    cluster: &ClusterSettings,
    listening: &Listening,
) -> BTreeMap<String, String> {
    let node_host =
        cluster.advertise_host.clone().unwrap_or_else(|| listening.rtmp.ip().to_string());
    let player_host = cluster.public_host.clone().unwrap_or_else(|| node_host.clone());
    let player =
        |port: Option<u16>, addr: SocketAddr| host_port(&player_host, port.unwrap_or(addr.port()));
    let mut addresses = BTreeMap::from([
        ("rtmp".to_string(), player(cluster.public_rtmp_port, listening.rtmp)),
        ("http".to_string(), player(cluster.public_http_port, listening.http)),
        ("api".to_string(), host_port(&node_host, listening.http.port())),
    ]);
    if let Some(https) = listening.https {
        addresses.insert("https".to_string(), player(cluster.public_https_port, https));
    }
    if let Some(rtmps) = listening.rtmps {
        addresses.insert("rtmps".to_string(), player(cluster.public_rtmps_port, rtmps));
    }
    if let Some(relay) = listening.relay {
        addresses.insert("relay".to_string(), host_port(&node_host, relay.port()));
    }
    addresses
}

impl Advertised {
    /// The registry value for this node in `state`, with [`VERSION`].
    pub fn info(&self, state: NodeState) -> NodeInfo {
        NodeInfo {
            addresses: self.addresses.clone(),
            capacity: self.capacity.clone(),
            state,
            version: VERSION.to_string(),
            started_at_ms: self.started_at_ms,
            transcoder: self.transcoder,
            playout: self.playout,
        }
    }
}

/// Advertise this node in `state` (draining on SIGTERM or a drain order, ready again after an
/// undrain); a failure is logged, the node carries on (the next write or lease renewal
/// repeats the value).
pub async fn advertise_state(registry: &dyn Registry, advertised: &Advertised, state: NodeState) {
    if let Err(e) = registry.update_node(advertised.info(state)).await {
        warn!(error = %e, ?state, "could not write this node's state to the registry");
    }
}

/// Connect (or, standalone, create) the registry and register this node: `Starting` in a
/// cluster (the orders task makes it `Ready` once its cache shows no drain order for it),
/// `Ready` standalone.
pub async fn start_registry(
    args: &ClusterSettings,
    node_id: &str,
    role: Role,
    advertised: Advertised,
) -> anyhow::Result<Arc<dyn Registry>> {
    let id =
        NodeId::new(node_id).map_err(|e| anyhow::anyhow!("invalid --node-id '{node_id}': {e}"))?;
    let cfg = RegistryConfig::new(id, role)
        .with_prefix(&args.etcd_prefix)
        .with_ttl(args.lease_ttl)
        .with_tls(args.etcd_tls())
        .with_auth(args.etcd_auth().map_err(anyhow::Error::msg)?);
    let state = if args.is_clustered() { NodeState::Starting } else { NodeState::Ready };
    let info = advertised.info(state);
    let registry: Arc<dyn Registry> = if args.is_clustered() {
        let r = EtcdRegistry::connect(&args.etcd, cfg, info).await.map_err(|e| {
            anyhow::anyhow!("registering with etcd at {}: {e}", args.etcd.join(","))
        })?;
        info!(etcd = %args.etcd.join(","), prefix = %args.etcd_prefix, node_id, "registered in etcd");
        Arc::new(r)
    } else {
        Arc::new(
            MemoryRegistry::standalone(cfg, info)
                .await
                .map_err(|e| anyhow::anyhow!("in-memory registry: {e}"))?,
        )
    };
    Ok(registry)
}

/// Act on registry events: a claim lost to another node stops our publisher of that stream.
pub fn spawn_event_task(
    registry: Arc<dyn Registry>,
    hub: Hub,
    metrics: crate::metrics::Metrics,
) -> tokio::task::JoinHandle<()> {
    let mut events = registry.events();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(RegistryEvent::ClaimLost { stream, holder }) => {
                    warn!(%stream, holder = ?holder.as_ref().map(NodeId::as_str), "stream claim lost to another node: stopping its publisher");
                    let holder = holder.as_ref().map(|h| h.as_str().to_string());
                    hub.kick(&stream, KickReason::ClaimLost { holder });
                }
                Ok(RegistryEvent::LeaseRenewed { old, new }) => {
                    info!(old, new, "registry lease renewed");
                }
                Ok(RegistryEvent::ClaimRenewed { claim }) => {
                    info!(stream = %claim.stream, revision = claim.revision(), "stream claim renewed");
                }
                Ok(RegistryEvent::Fenced) => {
                    warn!("registry unreachable for most of a lease: other nodes may take this node's streams over if it lasts; serving on from the cache");
                    metrics.registry_fenced.set(1);
                }
                Ok(RegistryEvent::Unfenced) => {
                    info!("registry reachable again; this node's claims held");
                    metrics.registry_fenced.set(0);
                }
                Err(RecvError::Lagged(n)) => {
                    // Reconcile: any publisher whose claim we no longer hold must stop.
                    warn!(missed = n, "registry events lagged; reconciling claims");
                    let held: Vec<_> = registry.claims().into_iter().map(|c| c.stream).collect();
                    for key in hub.published_keys() {
                        if !held.contains(&key) {
                            hub.kick(&key, KickReason::ClaimLost { holder: None });
                        }
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening(https: bool, relay: bool) -> Listening {
        Listening {
            rtmp: "0.0.0.0:1935".parse().unwrap(),
            http: "0.0.0.0:8080".parse().unwrap(),
            https: https.then(|| "0.0.0.0:8443".parse().unwrap()),
            rtmps: None,
            relay: relay.then(|| "0.0.0.0:4433".parse().unwrap()),
        }
    }

    #[test]
    fn players_get_the_public_host_and_ports_peers_the_advertised_host() {
        let mut c = ClusterSettings {
            advertise_host: Some("10.1.2.3".to_string()),
            ..ClusterSettings::default()
        };
        let a = advertised_addresses(&c, &listening(false, true));
        assert_eq!(a["rtmp"], "10.1.2.3:1935");
        assert_eq!(a["http"], "10.1.2.3:8080");
        assert_eq!(a["relay"], "10.1.2.3:4433");
        assert_eq!(a["api"], "10.1.2.3:8080");
        assert!(!a.contains_key("https"));

        c.public_host = Some("edge-7.live.example.com".to_string());
        c.public_http_port = Some(80);
        c.public_https_port = Some(443);
        let a = advertised_addresses(&c, &listening(true, true));
        assert_eq!(a["rtmp"], "edge-7.live.example.com:1935");
        assert_eq!(a["http"], "edge-7.live.example.com:80");
        assert_eq!(a["https"], "edge-7.live.example.com:443");
        assert_eq!(a["relay"], "10.1.2.3:4433", "the relay stays on the cluster network");
        assert_eq!(a["api"], "10.1.2.3:8080", "so does the API, on the HTTP listen port");

        c.advertise_host = Some("fd00::7".to_string());
        c.public_host = None;
        let a = advertised_addresses(&c, &listening(false, false));
        assert_eq!(a["rtmp"], "[fd00::7]:1935");
        assert_eq!(a["api"], "[fd00::7]:8080");
        let keys: Vec<&str> = a.keys().map(String::as_str).collect();
        assert_eq!(keys, ["api", "http", "rtmp"]);
        // Every address a node may advertise fits the registry's bounds.
        let all = advertised_addresses(
            &c,
            &Listening { rtmps: Some("0.0.0.0:1936".parse().unwrap()), ..listening(true, true) },
        );
        assert_eq!(all.len(), 6);
        let info = NodeInfo { addresses: all, ..NodeInfo::default() };
        assert!(info.within_bounds());
    }
}
