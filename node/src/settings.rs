//! What a node is configured with, as plain values: no flags, no files. The `config` module
//! fills these from a TOML file, `SLUICE_*` variables and flags; everything else reads them.
//!
//! Each group is one section of the configuration namespace. A file is flat (one key per
//! setting, the long flag name, in any group), so the groups deserialize with
//! `deny_unknown_fields` from the keys `config` hands each of them. `Default` is the built-in
//! value of every setting; `--help` and the example files show these same values.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::units::{serde_duration, serde_size};

mod origin;

pub use origin::{OriginSettings, VideoEncoder};

/// Log line format: the type every binary's tracing set-up takes (`sluice_cluster::telemetry`).
pub use sluice_cluster::telemetry::{LogFormat, UnknownLogFormat};

/// Everything a node that accepts RTMP and serves viewers is configured with. The top-level
/// keys are this struct's own fields; the groups are filled from their own keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeSettings {
    /// RTMP listen address (publishers and players).
    pub rtmp_listen: SocketAddr,
    /// HTTP listen address: HTTP-FLV, HLS, /api, /metrics, /healthz, /readyz.
    pub http_listen: SocketAddr,
    /// HTTPS listen address (the HTTP service over TLS); `None`: no HTTPS.
    pub https_listen: Option<SocketAddr>,
    /// RTMPS listen address (RTMP over TLS, with the HTTPS certificate); `None`: no RTMPS.
    pub rtmps_listen: Option<SocketAddr>,
    /// Certificate chain and private key (PEM) of the HTTPS and RTMPS listeners; reloaded on
    /// SIGHUP.
    pub https_cert: Option<PathBuf>,
    pub https_key: Option<PathBuf>,
    /// This node's id in logs, metrics and the registry; `None`: the host name.
    pub node_id: Option<String>,
    /// Log filter (tracing `EnvFilter` syntax).
    pub log: String,
    pub log_format: LogFormat,
    /// Tokio worker threads; 0 means one per CPU core.
    pub worker_threads: usize,
    /// Directory of the web page served at `/`.
    pub web_dir: PathBuf,
    /// OTLP/gRPC endpoint to export tracing spans to.
    pub otlp_endpoint: Option<String>,
    /// The bearer token (a file) `/api/*` and `/metrics` ask for; with `admin_allow`, either.
    pub token_file: Option<PathBuf>,
    /// Address ranges `/api/*` and `/metrics` answer without the token.
    pub admin_allow: Vec<ipnet::IpNet>,
    /// The secret that signs play tokens (`play_auth`).
    pub play_token_secret_file: Option<PathBuf>,
    /// Apps whose streams play only from a signed URL (`*`: every app).
    pub play_private_apps: Vec<String>,
    /// Apps whose viewers the webhook admits (`*`: every app).
    pub play_webhook_apps: Vec<String>,
    /// The webhook (`on_publish`, `on_unpublish`, `on_play`, `on_play_done`); `None`: none.
    pub webhook_url: Option<String>,
    /// How long the webhook may take to answer `on_publish` or `on_play`.
    #[serde(with = "serde_duration")]
    pub webhook_timeout: Duration,
    /// Admit clients when the webhook does not answer (default: refuse them).
    pub webhook_fail_open: bool,
    /// A CA trusted for an https:// webhook besides the system's roots.
    pub webhook_ca_file: Option<PathBuf>,
    /// Per-app admission quotas (`crate::quota`); `None`: none.
    pub quota_file: Option<PathBuf>,
    /// How long a publisher may stay over a measured quota (bit rate, frame rate).
    #[serde(with = "serde_duration")]
    pub quota_grace: Duration,
    #[serde(skip)]
    pub limits: Limits,
    #[serde(skip)]
    pub hls: HlsSettings,
    #[serde(skip)]
    pub cluster: ClusterSettings,
    #[serde(skip)]
    pub relay: RelaySettings,
    #[serde(skip)]
    pub admission: AdmissionSettings,
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            rtmp_listen: SocketAddr::from(([127, 0, 0, 1], 1935)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            https_listen: None,
            rtmps_listen: None,
            https_cert: None,
            https_key: None,
            node_id: None,
            log: "info".to_string(),
            log_format: LogFormat::Text,
            worker_threads: 0,
            web_dir: PathBuf::from("web"),
            otlp_endpoint: None,
            token_file: None,
            admin_allow: Vec::new(),
            play_token_secret_file: None,
            play_private_apps: Vec::new(),
            play_webhook_apps: Vec::new(),
            webhook_url: None,
            webhook_timeout: Duration::from_secs(3),
            webhook_fail_open: false,
            webhook_ca_file: None,
            quota_file: None,
            quota_grace: Duration::from_secs(10),
            limits: Limits::default(),
            hls: HlsSettings::default(),
            cluster: ClusterSettings::default(),
            relay: RelaySettings::default(),
            admission: AdmissionSettings::default(),
        }
    }
}

impl NodeSettings {
    /// The configured node id, or the host name.
    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(default_node_id)
    }

    /// The certificate of the TLS listeners (`https-listen`, `rtmps-listen`): `None` without
    /// either; an error when a listener lacks the files or the files lack a listener.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, String> {
        let listens = self.https_listen.is_some() || self.rtmps_listen.is_some();
        match (listens, &self.https_cert, &self.https_key) {
            (false, None, None) => Ok(None),
            (true, Some(cert), Some(key)) => {
                Ok(Some(TlsFiles { cert: cert.clone(), key: key.clone() }))
            }
            _ => Err("TLS needs --https-cert and --https-key together with --https-listen or \
                      --rtmps-listen (or both)"
                .to_string()),
        }
    }
}

pub use sluice_cluster::cert_store::TlsFiles;

/// Explicit bounds on what clients can make a node hold or do.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    pub max_connections: usize,
    pub max_streams: usize,
    pub max_viewers_per_stream: usize,
    #[serde(with = "serde_duration")]
    pub handshake_timeout: Duration,
    #[serde(with = "serde_duration")]
    pub idle_timeout: Duration,
    #[serde(with = "serde_duration")]
    pub start_timeout: Duration,
    #[serde(with = "serde_size")]
    pub max_output_queue: usize,
    #[serde(with = "serde_size")]
    pub max_message_size: usize,
    #[serde(with = "serde_size")]
    pub max_reassembly: usize,
    #[serde(with = "serde_duration")]
    pub play_wait_timeout: Duration,
    #[serde(with = "serde_size")]
    pub viewer_max_lag: usize,
    #[serde(with = "serde_size")]
    pub stream_buffer: usize,
    pub publish_takeover: bool,
    #[serde(with = "serde_duration")]
    pub drain_timeout: Duration,
    #[serde(with = "serde_duration")]
    pub ended_stream_linger: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 20_000,
            max_streams: 1_000,
            max_viewers_per_stream: 20_000,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            start_timeout: Duration::from_secs(15),
            max_output_queue: 8 << 20,
            max_message_size: 4 << 20,
            max_reassembly: 8 << 20,
            play_wait_timeout: Duration::from_secs(10),
            viewer_max_lag: 2 << 20,
            stream_buffer: 16 << 20,
            publish_takeover: false,
            drain_timeout: Duration::from_secs(10),
            ended_stream_linger: Duration::from_secs(30),
        }
    }
}

/// HLS and LL-HLS delivery, as configured (the HLS layer clamps these to workable ranges).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HlsSettings {
    /// Serve HLS at all (and run the segmenter).
    #[serde(rename = "hls")]
    pub enabled: bool,
    #[serde(rename = "hls-part-target", with = "serde_duration")]
    pub part_target: Duration,
    #[serde(rename = "hls-segment-target", with = "serde_duration")]
    pub segment_target: Duration,
    /// Completed segments kept and listed.
    #[serde(rename = "hls-window")]
    pub window: usize,
    /// Also serve MPEG-TS segments.
    #[serde(rename = "hls-ts")]
    pub ts: bool,
    /// Most concurrent HLS sessions (their own budget, apart from connections and relay feeds).
    #[serde(rename = "hls-max-sessions")]
    pub max_sessions: usize,
    /// New HLS sessions per second one client address may start.
    #[serde(rename = "hls-sessions-per-ip")]
    pub sessions_per_ip: u32,
    /// Most HLS sessions one client address may hold at once (0: no per-address cap). Viewers
    /// behind one NAT or proxy share an address: raise it for them.
    #[serde(rename = "hls-max-sessions-per-ip")]
    pub max_sessions_per_ip: usize,
    /// File whose contents sign session ids (HMAC-SHA256); give every node behind one load
    /// balancer the same file so they accept each other's ids. `None`: a random key per start.
    #[serde(rename = "hls-session-key-file")]
    pub session_key_file: Option<PathBuf>,
}

impl Default for HlsSettings {
    fn default() -> Self {
        HlsSettings {
            enabled: true,
            part_target: Duration::from_millis(500),
            segment_target: Duration::from_secs(2),
            window: 8,
            ts: true,
            max_sessions: 20_000,
            sessions_per_ip: 10,
            max_sessions_per_ip: 500,
            session_key_file: None,
        }
    }
}

/// Cluster membership.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterSettings {
    /// etcd endpoints; empty: standalone, with an in-memory registry.
    #[serde(deserialize_with = "string_or_list")]
    pub etcd: Vec<String>,
    pub etcd_prefix: String,
    /// TLS to etcd: the CA of its certificate, and this node's client certificate and key.
    pub etcd_ca_file: Option<PathBuf>,
    pub etcd_cert_file: Option<PathBuf>,
    pub etcd_key_file: Option<PathBuf>,
    /// The etcd user (with `etcd_password_file`), when etcd has authentication on.
    pub etcd_user: Option<String>,
    pub etcd_password_file: Option<PathBuf>,
    #[serde(with = "serde_duration")]
    pub lease_ttl: Duration,
    /// Hot standbys per stream: the ingest also forwards each stream to this many origins
    /// after its home on the ring, which hold its live GOP for edges to switch to when the
    /// home dies. The same value on every node (edges look the standbys up by it). At most
    /// [`MAX_STANDBYS`].
    #[serde(deserialize_with = "standbys")]
    pub standbys: usize,
    /// Host other nodes and players reach this node at; `None`: the listen address's host.
    pub advertise_host: Option<String>,
    /// Host players reach this node at, when not `advertise_host` (a load balancer's or a
    /// per-node public name); the relay keeps `advertise_host`.
    pub public_host: Option<String>,
    /// Ports players reach this node's RTMP, HTTP and HTTPS at, when not the listen ports
    /// (a Service or a NAT maps them).
    pub public_rtmp_port: Option<u16>,
    pub public_http_port: Option<u16>,
    pub public_https_port: Option<u16>,
    /// Port players reach this node's RTMPS at; `None`: the listen port.
    pub public_rtmps_port: Option<u16>,
    /// Viewers this node is sized for, reported to the control plane (which assigns no more
    /// than that to an edge). Advisory: connections are limited by `max-connections`.
    pub max_viewers: u64,
    /// Egress this node is sized for, in megabits per second, reported with its load.
    pub max_egress_mbps: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            etcd: Vec::new(),
            etcd_prefix: "/sluice".to_string(),
            etcd_ca_file: None,
            etcd_cert_file: None,
            etcd_key_file: None,
            etcd_user: None,
            etcd_password_file: None,
            lease_ttl: Duration::from_secs(5),
            standbys: 1,
            advertise_host: None,
            public_host: None,
            public_rtmp_port: None,
            public_http_port: None,
            public_https_port: None,
            public_rtmps_port: None,
            max_viewers: 10_000,
            max_egress_mbps: 10_000,
        }
    }
}

/// Most hot standbys per stream (each one more copy of every stream between origins).
pub const MAX_STANDBYS: usize = 3;

fn standbys<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n > MAX_STANDBYS {
        return Err(serde::de::Error::custom(format!("standbys: {n} is more than {MAX_STANDBYS}")));
    }
    Ok(n)
}

impl ClusterSettings {
    /// The TLS settings of the etcd client.
    pub fn etcd_tls(&self) -> sluice_cluster::EtcdTls {
        sluice_cluster::EtcdTls {
            ca_file: self.etcd_ca_file.clone(),
            cert_file: self.etcd_cert_file.clone(),
            key_file: self.etcd_key_file.clone(),
        }
    }

    /// The etcd user and password file; an error when one is given without the other.
    pub fn etcd_auth(&self) -> Result<Option<sluice_cluster::EtcdAuth>, String> {
        match (&self.etcd_user, &self.etcd_password_file) {
            (None, None) => Ok(None),
            (Some(user), Some(file)) => Ok(Some(sluice_cluster::EtcdAuth {
                user: user.clone(),
                password_file: file.clone(),
            })),
            _ => Err("etcd authentication needs both --etcd-user and --etcd-password-file".into()),
        }
    }

    pub fn is_clustered(&self) -> bool {
        !self.etcd.is_empty()
    }
}

/// The QUIC relay between nodes: security, transport and limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelaySettings {
    #[serde(rename = "relay-keepalive", with = "serde_duration")]
    pub keepalive: Duration,
    #[serde(rename = "relay-idle-timeout", with = "serde_duration")]
    pub idle_timeout: Duration,
    #[serde(rename = "relay-max-frame-size", with = "serde_size")]
    pub max_frame_size: usize,
    #[serde(rename = "relay-max-subscriptions")]
    pub max_subscriptions: usize,
    /// Cluster CA and node certificates; `None` needs `insecure_dev`.
    #[serde(rename = "tls-dir")]
    pub tls_dir: Option<PathBuf>,
    #[serde(rename = "insecure-dev")]
    pub insecure_dev: bool,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            keepalive: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            max_frame_size: 8 << 20,
            max_subscriptions: 4096,
            tls_dir: None,
            insecure_dev: false,
        }
    }
}

/// What only an edge is configured with: how it pulls streams from origins.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeSettings {
    /// Keep pulling a stream this long after its last viewer left.
    #[serde(rename = "upstream-linger", with = "serde_duration")]
    pub linger: Duration,
    /// Keep viewers connected this long while the upstream is broken.
    #[serde(rename = "upstream-grace", with = "serde_duration")]
    pub grace: Duration,
    /// Time allowed to reach an origin's relay and subscribe.
    #[serde(rename = "upstream-connect-timeout", with = "serde_duration")]
    pub connect_timeout: Duration,
    /// An upstream (the stream's home) that sends nothing for this long while the stream is
    /// claimed is suspect: the edge subscribes at the ingest meanwhile. Zero: never.
    #[serde(rename = "upstream-stall", with = "serde_duration")]
    pub stall: Duration,
    /// Bytes of recording files (segments, finished indexes) kept in memory for VOD viewers;
    /// zero: none (every request goes to an origin).
    #[serde(rename = "vod-cache-size", with = "crate::units::serde_size")]
    pub vod_cache_size: usize,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        EdgeSettings {
            linger: Duration::from_secs(10),
            grace: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(2),
            stall: Duration::from_millis(500),
            vod_cache_size: 256 << 20,
        }
    }
}

/// Fair shares and deadlines for client connections: what one address, or HTTP as a whole,
/// may hold, and how long an HTTP client may take.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AdmissionSettings {
    /// Most simultaneous HTTP connections (all of HTTP: playlists, segments, FLV, API).
    pub max_http_connections: usize,
    /// Concurrent connections one client address may hold, counted apart for RTMP and HTTP.
    pub max_connections_per_ip: usize,
    /// New connections per second one client address may open, for RTMP and HTTP apart.
    pub new_connections_per_ip: u32,
    /// Slots of `--max-connections` that viewers (RTMP and HTTP-FLV) never take, kept for
    /// publishers.
    pub publisher_reserve: usize,
    /// Time an HTTP client has to send a request's headers (also the keep-alive wait for the
    /// next request on HTTP/1).
    #[serde(with = "serde_duration")]
    pub http_header_timeout: Duration,
    /// An HTTP connection with no bytes either way for this long is closed (after its
    /// response in flight, if any).
    #[serde(with = "serde_duration")]
    pub http_idle_timeout: Duration,
    /// Concurrent streams per HTTP/2 connection.
    pub http2_max_streams: u32,
    /// Each listener's queue of connections the kernel completed and the node has not yet
    /// accepted (the kernel caps it at `net.core.somaxconn`).
    pub listen_backlog: u32,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            max_http_connections: 20_000,
            max_connections_per_ip: 1_000,
            new_connections_per_ip: 200,
            publisher_reserve: 100,
            http_header_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(60),
            http2_max_streams: 100,
            listen_backlog: 4096,
        }
    }
}

/// This machine's host name (the default node id), sanitised to the node-id alphabet.
pub fn default_node_id() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let id: String = raw
        .trim()
        .chars()
        .map(
            |c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '-' },
        )
        .take(64)
        .collect();
    if id.is_empty() || id.starts_with('.') {
        "sluice-node".to_string()
    } else {
        id
    }
}

/// A list that may also be written as one comma-separated string (as on the command line).
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Either::deserialize(d)? {
        Either::One(s) => {
            s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
        }
        Either::Many(v) => v,
    })
}
