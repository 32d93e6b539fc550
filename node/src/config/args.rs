//! The command line: one clap struct per settings group, with the same names as the file's
//! keys (`--max-streams` is `max-streams`) and a `SLUICE_*` variable each. Defaults shown by
//! `--help` are the `Default` values of [`crate::settings`]; only values given on the command
//! line or in the environment are applied (checked with [`ArgMatches::value_source`]), so a
//! value from the file is not overwritten by a default.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, ArgMatches, Args};

use super::{from_user, ClusterArgs, RelayArgs};

use crate::settings::{
    AdmissionSettings, EdgeSettings, HlsSettings, Limits, LogFormat, NodeSettings, OriginSettings,
};
use crate::units::{ByteSize, HumanDuration};

mod origin;

pub use origin::OriginArgs;

fn node() -> NodeSettings {
    NodeSettings::default()
}
fn limits() -> Limits {
    Limits::default()
}
fn hls() -> HlsSettings {
    HlsSettings::default()
}
fn edge() -> EdgeSettings {
    EdgeSettings::default()
}
fn origin() -> OriginSettings {
    OriginSettings::default()
}
fn admission() -> AdmissionSettings {
    AdmissionSettings::default()
}

/// Flags every node that accepts RTMP and serves viewers shares.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// TOML file with any of these settings (keys are the long flag names; an `[origin]` or
    /// `[edge]` section holds what only that binary reads).
    #[arg(long, env = "SLUICE_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// RTMP listen address (publishers and players).
    #[arg(long, env = "SLUICE_RTMP_LISTEN", default_value_t = node().rtmp_listen)]
    pub rtmp_listen: SocketAddr,

    /// HTTP listen address: HTTP-FLV, /api, /metrics, /healthz, /readyz.
    #[arg(long, env = "SLUICE_HTTP_LISTEN", default_value_t = node().http_listen)]
    pub http_listen: SocketAddr,

    /// HTTPS listen address: the HTTP service over TLS (with `--https-cert` and `--https-key`).
    #[arg(long, env = "SLUICE_HTTPS_LISTEN")]
    pub https_listen: Option<SocketAddr>,

    /// RTMPS listen address: RTMP over TLS for encoders and players (`rtmps://`), with the
    /// certificate of `--https-cert` and `--https-key`.
    #[arg(long, env = "SLUICE_RTMPS_LISTEN")]
    pub rtmps_listen: Option<SocketAddr>,

    /// Certificate chain (PEM) of the HTTPS and RTMPS listeners; reread on SIGHUP (open
    /// connections keep the old one).
    #[arg(long, env = "SLUICE_HTTPS_CERT")]
    pub https_cert: Option<PathBuf>,

    /// Private key (PEM) of `--https-cert`; reread with it on SIGHUP.
    #[arg(long, env = "SLUICE_HTTPS_KEY")]
    pub https_key: Option<PathBuf>,

    /// This node's id in logs, metrics and (in a cluster) the registry. Defaults to the host name.
    #[arg(long, env = "SLUICE_NODE_ID")]
    pub node_id: Option<String>,

    /// Log filter (tracing `EnvFilter` syntax), e.g. `info,sluice_node=debug`.
    #[arg(long, env = "SLUICE_LOG", default_value_t = node().log)]
    pub log: String,

    /// Log format (text or json).
    #[arg(long, env = "SLUICE_LOG_FORMAT", default_value_t = node().log_format)]
    pub log_format: LogFormat,

    /// Tokio worker threads; 0 means one per CPU core.
    #[arg(long, env = "SLUICE_WORKER_THREADS", default_value_t = node().worker_threads)]
    pub worker_threads: usize,

    /// Directory of the web page served at `/` (`index.html`, `app.js`, `style.css`) and of its
    /// player libraries, installed into `node_modules/` there by `npm ci --prefix web`.
    #[arg(long, env = "SLUICE_WEB_DIR", default_value_os_t = node().web_dir)]
    pub web_dir: PathBuf,

    /// OTLP/gRPC endpoint to export tracing spans to (e.g. `http://127.0.0.1:4317`).
    #[arg(long, env = "SLUICE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// File holding the bearer token that `/api/*` and `/metrics` ask for (`Authorization:
    /// Bearer TOKEN`; the same flag as the control plane's). Without it and --admin-allow,
    /// both are open.
    #[arg(long, env = "SLUICE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Address ranges (CIDR, comma-separated, e.g. `10.0.0.0/8,::1/128`) from which `/api/*`
    /// and `/metrics` answer without the token (a Prometheus scraping the pod network).
    #[arg(long, env = "SLUICE_ADMIN_ALLOW", value_delimiter = ',')]
    pub admin_allow: Vec<ipnet::IpNet>,

    /// The secret (a file, at least 16 bytes) that signs play tokens: private streams play
    /// from `…/APP/NAME?token=EXPIRY.SIG` URLs (`sluice-origin play-token` makes one; the
    /// control plane's AssignViewer hands them out with the same secret).
    #[arg(long, env = "SLUICE_PLAY_TOKEN_SECRET_FILE")]
    pub play_token_secret_file: Option<PathBuf>,

    /// Apps whose streams play only from a signed URL, comma-separated (`*`: every app);
    /// others are refused (RTMP NetStream.Play.Failed, HTTP 403). Needs
    /// --play-token-secret-file.
    #[arg(long, env = "SLUICE_PLAY_PRIVATE_APPS", value_delimiter = ',')]
    pub play_private_apps: Vec<String>,

    /// Apps whose viewers the webhook admits (`on_play` before the play, `on_play_done` after;
    /// `*`: every app), comma-separated. Needs `--webhook-url`.
    #[arg(long, env = "SLUICE_PLAY_WEBHOOK_APPS", value_delimiter = ',')]
    pub play_webhook_apps: Vec<String>,

    /// The webhook (http:// or https://): a JSON POST (event, app, name, query, client_ip,
    /// node, and protocol for plays) before each publish on an origin (`on_publish`) and each
    /// play of a `--play-webhook-apps` stream (`on_play`): a 2xx answer admits the client,
    /// anything else refuses it; and when either ends (`on_unpublish`, `on_play_done`, not
    /// waited for).
    #[arg(long, env = "SLUICE_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// How long the webhook may take to answer `on_publish` or `on_play`.
    #[arg(long, env = "SLUICE_WEBHOOK_TIMEOUT", default_value_t = HumanDuration(node().webhook_timeout))]
    pub webhook_timeout: HumanDuration,

    /// Admit clients when the webhook does not answer in time (default: refuse them).
    #[arg(long, env = "SLUICE_WEBHOOK_FAIL_OPEN")]
    pub webhook_fail_open: bool,

    /// CA certificate (PEM) trusted for an https:// webhook, besides the system's roots.
    #[arg(long, env = "SLUICE_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,

    /// Per-app admission quotas (TOML: a table per app, `"*"` for the rest): max-bitrate-kbps,
    /// max-fps, max-width, max-height, video-codecs, audio-codecs, max-streams,
    /// max-viewers-per-stream.
    #[arg(long, env = "SLUICE_QUOTA_FILE")]
    pub quota_file: Option<PathBuf>,

    /// How long a publisher may stay over its measured bit rate or frame rate quota (warned
    /// in the log at once) before it is cut.
    #[arg(long, env = "SLUICE_QUOTA_GRACE", default_value_t = HumanDuration(node().quota_grace))]
    pub quota_grace: HumanDuration,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub relay: RelayArgs,

    #[command(flatten)]
    pub limits: LimitsArgs,

    #[command(flatten)]
    pub hls: HlsArgs,

    #[command(flatten)]
    pub admission: AdmissionArgs,
}

impl NodeArgs {
    /// Apply what the user gave (flags, environment) onto `s`.
    pub fn apply(&self, m: &ArgMatches, s: &mut NodeSettings) {
        overlay!(m, self;
            s.rtmp_listen => rtmp_listen,
            s.http_listen => http_listen,
            s.https_listen => https_listen,
            s.rtmps_listen => rtmps_listen,
            s.https_cert => https_cert,
            s.https_key => https_key,
            s.node_id => node_id,
            s.log => log,
            s.log_format => log_format,
            s.worker_threads => worker_threads,
            s.web_dir => web_dir,
            s.otlp_endpoint => otlp_endpoint,
            s.token_file => token_file,
            s.admin_allow => admin_allow,
            s.play_token_secret_file => play_token_secret_file,
            s.play_private_apps => play_private_apps,
            s.play_webhook_apps => play_webhook_apps,
            s.webhook_url => webhook_url,
            s.webhook_timeout => webhook_timeout,
            s.webhook_fail_open => webhook_fail_open,
            s.webhook_ca_file => webhook_ca_file,
            s.quota_file => quota_file,
            s.quota_grace => quota_grace,
        );
        self.limits.apply(m, &mut s.limits);
        self.hls.apply(m, &mut s.hls);
        self.cluster.apply(m, &mut s.cluster);
        self.relay.apply(m, &mut s.relay);
        self.admission.apply(m, &mut s.admission);
    }
}

/// Fair shares and deadlines for client connections.
#[derive(Debug, Clone, Args)]
pub struct AdmissionArgs {
    /// Most simultaneous HTTP connections (all of HTTP: playlists, segments, FLV, API).
    #[arg(long, env = "SLUICE_MAX_HTTP_CONNECTIONS", default_value_t = admission().max_http_connections)]
    pub max_http_connections: usize,

    /// Concurrent connections one client address (an IPv6 /64) may hold; RTMP and HTTP are
    /// counted apart. 0: unlimited.
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS_PER_IP", default_value_t = admission().max_connections_per_ip)]
    pub max_connections_per_ip: usize,

    /// New connections per second one client address may open (token bucket, burst of one
    /// second's worth); RTMP and HTTP are counted apart. 0: unlimited.
    #[arg(long, env = "SLUICE_NEW_CONNECTIONS_PER_IP", default_value_t = admission().new_connections_per_ip)]
    pub new_connections_per_ip: u32,

    /// Slots of --max-connections that viewers (RTMP and HTTP-FLV) never take: kept for
    /// publishers, so an audience can never lock the broadcaster out.
    #[arg(long, env = "SLUICE_PUBLISHER_RESERVE", default_value_t = admission().publisher_reserve)]
    pub publisher_reserve: usize,

    /// Time an HTTP client has to send a request's headers; also how long an HTTP/1
    /// keep-alive connection waits for its next request.
    #[arg(long, env = "SLUICE_HTTP_HEADER_TIMEOUT", default_value_t = HumanDuration(admission().http_header_timeout))]
    pub http_header_timeout: HumanDuration,

    /// An HTTP connection with no bytes either way for this long is closed (HTTP/2 included).
    #[arg(long, env = "SLUICE_HTTP_IDLE_TIMEOUT", default_value_t = HumanDuration(admission().http_idle_timeout))]
    pub http_idle_timeout: HumanDuration,

    /// Concurrent streams per HTTP/2 connection.
    #[arg(long, env = "SLUICE_HTTP2_MAX_STREAMS", default_value_t = admission().http2_max_streams)]
    pub http2_max_streams: u32,

    /// Connections the kernel may hold completed for each listener before the node accepts
    /// them (capped by `net.core.somaxconn`): a burst beyond it waits for SYN retransmits.
    #[arg(long, env = "SLUICE_LISTEN_BACKLOG", default_value_t = admission().listen_backlog)]
    pub listen_backlog: u32,
}

impl AdmissionArgs {
    fn apply(&self, m: &ArgMatches, s: &mut AdmissionSettings) {
        overlay!(m, self;
            s.max_http_connections => max_http_connections,
            s.max_connections_per_ip => max_connections_per_ip,
            s.new_connections_per_ip => new_connections_per_ip,
            s.publisher_reserve => publisher_reserve,
            s.http_header_timeout => http_header_timeout,
            s.http_idle_timeout => http_idle_timeout,
            s.http2_max_streams => http2_max_streams,
            s.listen_backlog => listen_backlog,
        );
    }
}

/// Explicit bounds on what clients can make a node hold or do.
#[derive(Debug, Clone, Args)]
pub struct LimitsArgs {
    /// Most simultaneous RTMP + HTTP connections (capped below the file-descriptor limit).
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS", default_value_t = limits().max_connections)]
    pub max_connections: usize,

    /// Most live (published) streams.
    #[arg(long, env = "SLUICE_MAX_STREAMS", default_value_t = limits().max_streams)]
    pub max_streams: usize,

    /// Most viewers of one stream (all protocols together).
    #[arg(long, env = "SLUICE_MAX_VIEWERS_PER_STREAM", default_value_t = limits().max_viewers_per_stream)]
    pub max_viewers_per_stream: usize,

    /// Time a client has to complete the RTMP handshake and `connect`.
    #[arg(long, env = "SLUICE_HANDSHAKE_TIMEOUT", default_value_t = HumanDuration(limits().handshake_timeout))]
    pub handshake_timeout: HumanDuration,

    /// An RTMP publisher that sends no media, or a player that takes none, for this long is
    /// closed (progress of the session counts, not bytes: pings do not keep it open).
    #[arg(long, env = "SLUICE_IDLE_TIMEOUT", default_value_t = HumanDuration(limits().idle_timeout))]
    pub idle_timeout: HumanDuration,

    /// Time an RTMP connection has, after `connect` or after its last publish/play ended, to
    /// start publishing or playing (failed attempts do not count); then it is closed.
    #[arg(long, env = "SLUICE_START_TIMEOUT", default_value_t = HumanDuration(limits().start_timeout))]
    pub start_timeout: HumanDuration,

    /// Most bytes queued for one RTMP connection's socket (replies, control messages, media).
    /// A connection stops reading while its output is backed up; one whose queue still reaches
    /// this cap is closed. Raised to at least --max-message-size + 384 KiB (a player's queue
    /// holds one whole media message on top of its high-water mark).
    #[arg(long, env = "SLUICE_MAX_OUTPUT_QUEUE", default_value_t = ByteSize(limits().max_output_queue))]
    pub max_output_queue: ByteSize,

    /// Largest RTMP message accepted (bytes; suffixes KiB/MiB allowed).
    #[arg(long, env = "SLUICE_MAX_MESSAGE_SIZE", default_value_t = ByteSize(limits().max_message_size))]
    pub max_message_size: ByteSize,

    /// Bytes one RTMP connection may hold in partially received messages.
    #[arg(long, env = "SLUICE_MAX_REASSEMBLY", default_value_t = ByteSize(limits().max_reassembly))]
    pub max_reassembly: ByteSize,

    /// How long a player of a stream that is not (yet) published waits before StreamNotFound/404.
    #[arg(long, env = "SLUICE_PLAY_WAIT_TIMEOUT", default_value_t = HumanDuration(limits().play_wait_timeout))]
    pub play_wait_timeout: HumanDuration,

    /// How far (bytes of media) a viewer may fall behind live before it is skipped to the
    /// latest keyframe.
    #[arg(long, env = "SLUICE_VIEWER_MAX_LAG", default_value_t = ByteSize(limits().viewer_max_lag))]
    pub viewer_max_lag: ByteSize,

    /// Bytes of recent media kept per stream (GOP cache for fast start plus slack for viewers
    /// slightly behind). A GOP larger than this is not cached; new viewers then wait for the
    /// next keyframe.
    #[arg(long, env = "SLUICE_STREAM_BUFFER", default_value_t = ByteSize(limits().stream_buffer))]
    pub stream_buffer: ByteSize,

    /// Whether a new publisher of a live name takes it over (the old one is disconnected)
    /// instead of being refused with NetStream.Publish.BadName.
    #[arg(long, env = "SLUICE_PUBLISH_TAKEOVER", default_value_t = limits().publish_takeover)]
    pub publish_takeover: bool,

    /// On SIGTERM, how long to wait for connections to finish before exiting.
    #[arg(long, env = "SLUICE_DRAIN_TIMEOUT", default_value_t = HumanDuration(limits().drain_timeout))]
    pub drain_timeout: HumanDuration,

    /// After its publisher leaves, how long a stream keeps its GOP and HLS window (for a
    /// publisher that reconnects, and players finishing the last segments) before that memory
    /// is released, pollers or not. Until then it counts against --max-streams.
    #[arg(long, env = "SLUICE_ENDED_STREAM_LINGER", default_value_t = HumanDuration(limits().ended_stream_linger))]
    pub ended_stream_linger: HumanDuration,
}

impl LimitsArgs {
    fn apply(&self, m: &ArgMatches, s: &mut Limits) {
        overlay!(m, self;
            s.max_connections => max_connections,
            s.max_streams => max_streams,
            s.max_viewers_per_stream => max_viewers_per_stream,
            s.handshake_timeout => handshake_timeout,
            s.idle_timeout => idle_timeout,
            s.start_timeout => start_timeout,
            s.max_output_queue => max_output_queue,
            s.max_message_size => max_message_size,
            s.max_reassembly => max_reassembly,
            s.play_wait_timeout => play_wait_timeout,
            s.viewer_max_lag => viewer_max_lag,
            s.stream_buffer => stream_buffer,
            s.publish_takeover => publish_takeover,
            s.drain_timeout => drain_timeout,
            s.ended_stream_linger => ended_stream_linger,
        );
    }
}

/// HLS / Low-Latency HLS delivery settings.
#[derive(Debug, Clone, Args)]
pub struct HlsArgs {
    /// Serve HLS and LL-HLS (`/APP/STREAM.m3u8`); `--hls false` disables it (and its segmenter).
    #[arg(long, env = "SLUICE_HLS", default_value_t = hls().enabled, action = ArgAction::Set)]
    pub hls: bool,

    /// LL-HLS part target duration (100ms up to the segment target).
    #[arg(long, env = "SLUICE_HLS_PART_TARGET", default_value_t = HumanDuration(hls().part_target))]
    pub hls_part_target: HumanDuration,

    /// HLS segment target duration; segments are cut at keyframes, so a longer keyframe
    /// interval gives longer segments.
    #[arg(long, env = "SLUICE_HLS_SEGMENT_TARGET", default_value_t = HumanDuration(hls().segment_target))]
    pub hls_segment_target: HumanDuration,

    /// Completed segments kept in memory and listed in the media playlist (at least 3).
    #[arg(long, env = "SLUICE_HLS_WINDOW", default_value_t = hls().window)]
    pub hls_window: usize,

    /// Also serve HLS as MPEG-TS segments for old players (`/APP/STREAM/ts.m3u8`), made on
    /// first request from the same segments; `--hls-ts false` disables it.
    #[arg(long, env = "SLUICE_HLS_TS", default_value_t = hls().ts, action = ArgAction::Set)]
    pub hls_ts: bool,

    /// Most concurrent HLS sessions (their own budget: they never take relay feeds' or
    /// connections' places).
    #[arg(long, env = "SLUICE_HLS_MAX_SESSIONS", default_value_t = hls().max_sessions)]
    pub hls_max_sessions: usize,

    /// New HLS sessions per second one client address may start.
    #[arg(long, env = "SLUICE_HLS_SESSIONS_PER_IP", default_value_t = hls().sessions_per_ip)]
    pub hls_sessions_per_ip: u32,

    /// Most HLS sessions one client address may hold at once (0: no per-address cap). Viewers
    /// behind one NAT or proxy share an address: raise it for them.
    #[arg(long, env = "SLUICE_HLS_MAX_SESSIONS_PER_IP", default_value_t = hls().max_sessions_per_ip)]
    pub hls_max_sessions_per_ip: usize,

    /// File whose contents are the key that signs HLS session ids (HMAC-SHA256). Give every
    /// node behind one load balancer the same file so they accept each other's session ids.
    /// Absent: a random key per start.
    #[arg(long, env = "SLUICE_HLS_SESSION_KEY_FILE")]
    pub hls_session_key_file: Option<PathBuf>,
}

impl HlsArgs {
    fn apply(&self, m: &ArgMatches, s: &mut HlsSettings) {
        overlay!(m, self;
            s.enabled => hls,
            s.part_target => hls_part_target,
            s.segment_target => hls_segment_target,
            s.window => hls_window,
            s.ts => hls_ts,
            s.max_sessions => hls_max_sessions,
            s.sessions_per_ip => hls_sessions_per_ip,
            s.max_sessions_per_ip => hls_max_sessions_per_ip,
            s.session_key_file => hls_session_key_file,
        );
    }
}

/// How an edge pulls streams from origins.
#[derive(Debug, Clone, Args)]
pub struct EdgeArgs {
    /// After a stream's last viewer leaves, keep pulling it this long (a viewer that comes
    /// back, or the next one, starts at once).
    #[arg(long, env = "SLUICE_UPSTREAM_LINGER", default_value_t = HumanDuration(edge().linger))]
    pub upstream_linger: HumanDuration,

    /// When the upstream breaks (origin crash, network), how long viewers are kept connected
    /// waiting for the stream to come back on some origin before they are told it ended.
    #[arg(long, env = "SLUICE_UPSTREAM_GRACE", default_value_t = HumanDuration(edge().grace))]
    pub upstream_grace: HumanDuration,

    /// Time allowed to reach an origin's relay and subscribe.
    #[arg(long, env = "SLUICE_UPSTREAM_CONNECT_TIMEOUT", default_value_t = HumanDuration(edge().connect_timeout))]
    pub upstream_connect_timeout: HumanDuration,

    /// An upstream (the stream's home) silent this long is suspect: the edge subscribes at the
    /// stream's standby (or its ingest origin) meanwhile, make-before-break (a dead home is
    /// otherwise noticed only when its lease or relay connection times out). 0 turns it off.
    #[arg(long, env = "SLUICE_UPSTREAM_STALL", default_value_t = HumanDuration(edge().stall))]
    pub upstream_stall: HumanDuration,

    /// Memory for recording files kept for VOD viewers (segments, finished playlists): the
    /// edge asks the origins once per file. 0: nothing kept.
    #[arg(long, env = "SLUICE_VOD_CACHE_SIZE", default_value_t = ByteSize(edge().vod_cache_size))]
    pub vod_cache_size: ByteSize,
}

impl EdgeArgs {
    pub fn apply(&self, m: &ArgMatches, s: &mut EdgeSettings) {
        overlay!(m, self;
            s.linger => upstream_linger,
            s.grace => upstream_grace,
            s.connect_timeout => upstream_connect_timeout,
            s.stall => upstream_stall,
            s.vod_cache_size => vod_cache_size,
        );
    }
}
