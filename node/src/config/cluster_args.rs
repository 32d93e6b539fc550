//! Cluster and relay flags, shared by origins and edges (the control plane has its own copy
//! of the etcd flags: only this crate's `config` may use clap for nodes).

use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{ArgMatches, Args};

use super::from_user;
use crate::settings::{ClusterSettings, RelaySettings};
use crate::units::{ByteSize, HumanDuration};

fn cluster() -> ClusterSettings {
    ClusterSettings::default()
}
fn relay() -> RelaySettings {
    RelaySettings::default()
}

/// Cluster membership settings shared by every node.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// etcd endpoints, comma-separated (e.g. `http://127.0.0.1:2379`). Absent: standalone, with
    /// an in-memory registry.
    #[arg(long, env = "SLUICE_ETCD", value_delimiter = ',')]
    pub etcd: Vec<String>,

    /// Key prefix in etcd, so several clusters can share one etcd.
    #[arg(long, env = "SLUICE_ETCD_PREFIX", default_value_t = cluster().etcd_prefix)]
    pub etcd_prefix: String,

    /// CA certificate (PEM) that signed etcd's certificate: talk to `https://` endpoints.
    #[arg(long, env = "SLUICE_ETCD_CA_FILE")]
    pub etcd_ca_file: Option<PathBuf>,

    /// Client certificate (PEM) for etcd, when it requires one (with `--etcd-key-file`).
    #[arg(long, env = "SLUICE_ETCD_CERT_FILE", requires = "etcd_key_file")]
    pub etcd_cert_file: Option<PathBuf>,

    /// Private key (PEM) of `--etcd-cert-file`.
    #[arg(long, env = "SLUICE_ETCD_KEY_FILE", requires = "etcd_cert_file")]
    pub etcd_key_file: Option<PathBuf>,

    /// etcd user, when etcd has authentication on (with `--etcd-password-file`).
    #[arg(long, env = "SLUICE_ETCD_USER")]
    pub etcd_user: Option<String>,

    /// File holding the password of `--etcd-user` (a trailing newline is ignored).
    #[arg(long, env = "SLUICE_ETCD_PASSWORD_FILE")]
    pub etcd_password_file: Option<PathBuf>,

    /// Lease TTL: a node that stops renewing for this long loses its node key and streams.
    #[arg(long, env = "SLUICE_LEASE_TTL", default_value_t = HumanDuration(cluster().lease_ttl))]
    pub lease_ttl: HumanDuration,

    /// Hot standbys per stream (0-3): the ingest origin also forwards each stream to this many
    /// origins after its home on the ring, so edges switch to one at once when the home dies.
    /// Set the same value on every origin and edge.
    #[arg(long, env = "SLUICE_STANDBYS", default_value_t = cluster().standbys,
          value_parser = TypedValueParser::map(clap::value_parser!(u8).range(0..=3), usize::from))]
    pub standbys: usize,

    /// Host name or address other nodes and players use to reach this node (advertised in
    /// the registry). Defaults to the listen address's host.
    #[arg(long, env = "SLUICE_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,

    /// Host players reach this node at, in the URLs the control plane hands out: a load
    /// balancer's name, or a per-node public name. Defaults to `--advertise-host`.
    #[arg(long, env = "SLUICE_PUBLIC_HOST")]
    pub public_host: Option<String>,

    /// Port players reach this node's RTMP at, when a Service or NAT maps it (default: the
    /// listen port).
    #[arg(long, env = "SLUICE_PUBLIC_RTMP_PORT")]
    pub public_rtmp_port: Option<u16>,

    /// Port players reach this node's HTTP at (default: the listen port).
    #[arg(long, env = "SLUICE_PUBLIC_HTTP_PORT")]
    pub public_http_port: Option<u16>,

    /// Port players reach this node's HTTPS at (default: the listen port).
    #[arg(long, env = "SLUICE_PUBLIC_HTTPS_PORT")]
    pub public_https_port: Option<u16>,

    /// Port players reach this node's RTMPS at (default: the listen port).
    #[arg(long, env = "SLUICE_PUBLIC_RTMPS_PORT")]
    pub public_rtmps_port: Option<u16>,

    /// Viewers this node is sized for, reported with its load: the control plane assigns no
    /// more than that to an edge (advisory; `--max-connections` is the hard limit).
    #[arg(long, env = "SLUICE_MAX_VIEWERS", default_value_t = cluster().max_viewers)]
    pub max_viewers: u64,

    /// Egress this node is sized for, in megabits per second, reported with its load.
    #[arg(long, env = "SLUICE_MAX_EGRESS_MBPS", default_value_t = cluster().max_egress_mbps)]
    pub max_egress_mbps: u64,
}

impl ClusterArgs {
    pub(super) fn apply(&self, m: &ArgMatches, s: &mut ClusterSettings) {
        overlay!(m, self;
            s.etcd => etcd,
            s.etcd_prefix => etcd_prefix,
            s.etcd_ca_file => etcd_ca_file,
            s.etcd_cert_file => etcd_cert_file,
            s.etcd_key_file => etcd_key_file,
            s.etcd_user => etcd_user,
            s.etcd_password_file => etcd_password_file,
            s.lease_ttl => lease_ttl,
            s.standbys => standbys,
            s.advertise_host => advertise_host,
            s.public_host => public_host,
            s.public_rtmp_port => public_rtmp_port,
            s.public_http_port => public_http_port,
            s.public_https_port => public_https_port,
            s.public_rtmps_port => public_rtmps_port,
            s.max_viewers => max_viewers,
            s.max_egress_mbps => max_egress_mbps,
        );
    }
}

/// Relay settings shared by origins and edges: security, transport and limits.
#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// QUIC keep-alive interval on relay connections.
    #[arg(long, env = "SLUICE_RELAY_KEEPALIVE", default_value_t = HumanDuration(relay().keepalive))]
    pub relay_keepalive: HumanDuration,

    /// A relay connection silent this long is closed (its streams resubscribe elsewhere).
    #[arg(long, env = "SLUICE_RELAY_IDLE_TIMEOUT", default_value_t = HumanDuration(relay().idle_timeout))]
    pub relay_idle_timeout: HumanDuration,

    /// Largest media frame accepted from a relay peer (bytes; KiB/MiB suffixes allowed).
    #[arg(long, env = "SLUICE_RELAY_MAX_FRAME_SIZE", default_value_t = ByteSize(relay().max_frame_size))]
    pub relay_max_frame_size: ByteSize,

    /// Most subscriptions (and forwards) one relay connection may hold.
    #[arg(long, env = "SLUICE_RELAY_MAX_SUBSCRIPTIONS", default_value_t = relay().max_subscriptions)]
    pub relay_max_subscriptions: usize,

    /// Directory with the cluster CA (`ca.pem`) and this node's certificate and key
    /// (`NODE_ID.pem`, `NODE_ID.key`), as written by `sluice-origin gen-certs`.
    #[arg(long, env = "SLUICE_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,

    /// Skip all TLS verification on the relay. Development only: anyone who can reach the
    /// relay port can read and inject streams.
    #[arg(long, env = "SLUICE_INSECURE_DEV", default_value_t = relay().insecure_dev)]
    pub insecure_dev: bool,
}

impl RelayArgs {
    pub(super) fn apply(&self, m: &ArgMatches, s: &mut RelaySettings) {
        overlay!(m, self;
            s.keepalive => relay_keepalive,
            s.idle_timeout => relay_idle_timeout,
            s.max_frame_size => relay_max_frame_size,
            s.max_subscriptions => relay_max_subscriptions,
            s.tls_dir => tls_dir,
            s.insecure_dev => insecure_dev,
        );
    }
}
