//! Node configuration: one clap struct, read from flags, `SLUICE_*` environment variables and
//! an optional TOML file, in that order of precedence (flag beats env beats file beats default).
//!
//! The file's keys are the long flag names (`rtmp-listen` or `rtmp_listen`); an unknown key is an
//! error, so a typo never silently falls back to a default. Example (`sluice.example.toml`):
//!
//! ```toml
//! rtmp-listen = "0.0.0.0:1935"
//! http-listen = "0.0.0.0:8080"
//! max-connections = 20000
//! viewer-max-lag = "2MiB"
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgMatches, Args, Parser};

/// Settings every node that accepts RTMP and serves viewers shares.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Optional TOML file with any of these settings (keys are the long flag names).
    #[arg(long, env = "SLUICE_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// RTMP listen address (publishers and players).
    #[arg(long, env = "SLUICE_RTMP_LISTEN", default_value = "127.0.0.1:1935")]
    pub rtmp_listen: SocketAddr,

    /// HTTP listen address: HTTP-FLV, /api, /metrics, /healthz, /readyz.
    #[arg(long, env = "SLUICE_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,

    /// This node's id in logs, metrics and (in a cluster) the registry. Defaults to the host name.
    #[arg(long, env = "SLUICE_NODE_ID")]
    pub node_id: Option<String>,

    /// Log filter (tracing `EnvFilter` syntax), e.g. `info,sluice_node=debug`.
    #[arg(long, env = "SLUICE_LOG", default_value = "info")]
    pub log: String,

    /// Log format.
    #[arg(long, env = "SLUICE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Tokio worker threads; 0 means one per CPU core.
    #[arg(long, env = "SLUICE_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,

    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,

    /// Directory of the web page served at `/` (`index.html`, `app.js`, `style.css`) and of its
    /// player libraries, installed into `node_modules/` there by `npm ci --prefix web`.
    #[arg(long, env = "SLUICE_WEB_DIR", default_value = "web")]
    pub web_dir: PathBuf,

    /// OTLP/gRPC endpoint to export tracing spans to (e.g. `http://127.0.0.1:4317`).
    #[arg(long, env = "SLUICE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    #[command(flatten)]
    pub limits: Limits,
}

/// Explicit bounds on what clients can make a node hold or do.
#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Most simultaneous RTMP + HTTP connections (capped below the file-descriptor limit).
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,

    /// Most live (published) streams.
    #[arg(long, env = "SLUICE_MAX_STREAMS", default_value_t = 1_000)]
    pub max_streams: usize,

    /// Most viewers of one stream (all protocols together).
    #[arg(long, env = "SLUICE_MAX_VIEWERS_PER_STREAM", default_value_t = 20_000)]
    pub max_viewers_per_stream: usize,

    /// Time a client has to complete the RTMP handshake and `connect`.
    #[arg(long, env = "SLUICE_HANDSHAKE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// A connection with no bytes in either direction for this long is closed.
    #[arg(long, env = "SLUICE_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Largest RTMP message accepted (bytes; suffixes KiB/MiB allowed).
    #[arg(long, env = "SLUICE_MAX_MESSAGE_SIZE", default_value = "4MiB", value_parser = parse_size)]
    pub max_message_size: usize,

    /// Bytes one RTMP connection may hold in partially received messages.
    #[arg(long, env = "SLUICE_MAX_REASSEMBLY", default_value = "8MiB", value_parser = parse_size)]
    pub max_reassembly: usize,

    /// How long a player of a stream that is not (yet) published waits before StreamNotFound/404.
    #[arg(long, env = "SLUICE_PLAY_WAIT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub play_wait_timeout: Duration,

    /// How far (bytes of media) a viewer may fall behind live before it is skipped to the
    /// latest keyframe.
    #[arg(long, env = "SLUICE_VIEWER_MAX_LAG", default_value = "2MiB", value_parser = parse_size)]
    pub viewer_max_lag: usize,

    /// Bytes of recent media kept per stream (GOP cache for fast start plus slack for viewers
    /// slightly behind). A GOP larger than this is not cached; new viewers then wait for the
    /// next keyframe.
    #[arg(long, env = "SLUICE_STREAM_BUFFER", default_value = "16MiB", value_parser = parse_size)]
    pub stream_buffer: usize,

    /// Whether a new publisher of a live name takes it over (the old one is disconnected)
    /// instead of being refused with NetStream.Publish.BadName.
    #[arg(long, env = "SLUICE_PUBLISH_TAKEOVER", default_value_t = false)]
    pub publish_takeover: bool,

    /// On SIGTERM, how long to wait for connections to finish before exiting.
    #[arg(long, env = "SLUICE_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    #[command(flatten)]
    pub hls: HlsArgs,
}

/// HLS / Low-Latency HLS delivery settings.
#[derive(Debug, Clone, Args)]
pub struct HlsArgs {
    /// Serve HLS and LL-HLS (`/APP/STREAM.m3u8`); `--hls false` disables it (and its segmenter).
    #[arg(long, env = "SLUICE_HLS", default_value_t = true, action = clap::ArgAction::Set)]
    pub hls: bool,

    /// LL-HLS part target duration (100ms up to the segment target).
    #[arg(long, env = "SLUICE_HLS_PART_TARGET", default_value = "500ms", value_parser = parse_duration)]
    pub hls_part_target: Duration,

    /// HLS segment target duration; segments are cut at keyframes, so a longer keyframe
    /// interval gives longer segments.
    #[arg(long, env = "SLUICE_HLS_SEGMENT_TARGET", default_value = "2s", value_parser = parse_duration)]
    pub hls_segment_target: Duration,

    /// Completed segments kept in memory and listed in the media playlist (at least 3).
    #[arg(long, env = "SLUICE_HLS_WINDOW", default_value_t = 8)]
    pub hls_window: usize,

    /// Also serve HLS as MPEG-TS segments for old players (`/APP/STREAM/ts.m3u8`), made on
    /// first request from the same segments; `--hls-ts false` disables it.
    #[arg(long, env = "SLUICE_HLS_TS", default_value_t = true, action = clap::ArgAction::Set)]
    pub hls_ts: bool,
}

impl Default for HlsArgs {
    fn default() -> Self {
        Limits::default().hls
    }
}

impl NodeArgs {
    /// `--node-id`, or the host name.
    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(crate::cluster::default_node_id)
    }
}

impl Default for Limits {
    fn default() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            limits: Limits,
        }
        Only::parse_from(["limits"]).limits
    }
}

/// Parse `500ms`, `5s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = split_unit(s);
    let value: f64 =
        num.parse().map_err(|_| format!("'{s}' is not a duration (e.g. 500ms, 5s, 2m)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("'{s}': unknown duration unit '{unit}' (ms, s, m, h)")),
    };
    if !(0.0..=1e9).contains(&secs) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parse `1048576`, `64KiB`, `4MiB`, `1GiB` (also `KB`/`MB`/`GB`, meaning the same binary units).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, unit) = split_unit(s);
    let value: u64 =
        num.parse().map_err(|_| format!("'{s}' is not a size (e.g. 65536, 64KiB, 4MiB)"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("'{s}': unknown size unit '{unit}'")),
    };
    let bytes = value.checked_mul(mult).ok_or_else(|| format!("'{s}' is too large"))?;
    usize::try_from(bytes).map_err(|_| format!("'{s}' is too large"))
}

fn split_unit(s: &str) -> (&str, &str) {
    let idx = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    (&s[..idx], s[idx..].trim())
}

/// Parse a clap `Parser` type, taking defaults from the TOML file named by `--config` or
/// `SLUICE_CONFIG` (flag beats env beats file beats built-in default).
pub fn parse_with_file<T: Parser>() -> anyhow::Result<T> {
    parse_with_file_from::<T, _>(std::env::args_os())
}

/// [`parse_with_file`] over explicit arguments (for tests).
pub fn parse_with_file_from<T, I>(args: I) -> anyhow::Result<T>
where
    T: Parser,
    I: IntoIterator,
    I::Item: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let mut command = T::command();
    if let Some(path) = config_path(&args) {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("reading config file {}: {e}", path.display()))?;
        let table: toml::Table = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("parsing config file {}: {e}", path.display()))?;
        command = apply_file_defaults(command, &table)
            .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
    }
    let matches: ArgMatches = command.try_get_matches_from(args).unwrap_or_else(|e| e.exit());
    Ok(T::from_arg_matches(&matches)?)
}

fn config_path(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("SLUICE_CONFIG").map(PathBuf::from)
}

fn apply_file_defaults(
    mut command: clap::Command,
    table: &toml::Table,
) -> Result<clap::Command, String> {
    for (key, value) in table {
        let long = key.replace('_', "-");
        if long == "config" {
            return Err("'config' cannot be set inside the config file".into());
        }
        let id = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
            .map(|a| a.get_id().clone())
            .ok_or_else(|| format!("unknown key '{key}'"))?;
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => return Err(format!("key '{key}': unsupported value {other}")),
        };
        command = command.mut_arg(id, |a| a.default_value(text));
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5x").is_err());
        assert_eq!(parse_size("4MiB").unwrap(), 4 << 20);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn flag_beats_file_and_file_beats_default() {
        let dir = std::env::temp_dir().join(format!("sluice-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.toml");
        std::fs::write(
            &path,
            "rtmp-listen = \"127.0.0.1:1999\"\nmax_streams = 7\nhttp-listen = \"127.0.0.1:8999\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let cli: Cli =
            parse_with_file_from(["x", "--config", p, "--http-listen", "127.0.0.1:1"]).unwrap();
        assert_eq!(cli.node.rtmp_listen.port(), 1999);
        assert_eq!(cli.node.http_listen.port(), 1);
        assert_eq!(cli.node.limits.max_streams, 7);
        std::fs::write(&path, "no-such-key = 1\n").unwrap();
        let err = parse_with_file_from::<Cli, _>(["x", "--config", p]).unwrap_err();
        assert!(err.to_string().contains("unknown key 'no-such-key'"), "{err}");
    }

    #[test]
    fn cluster_and_relay_settings_come_from_the_file_too() {
        let dir = std::env::temp_dir().join(format!("sluice-config-relay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.toml");
        std::fs::write(
            &path,
            "etcd = [\"http://10.0.0.1:2379\"]\nrelay-idle-timeout = \"3s\"\nrelay-max-frame-size = \"1MiB\"\ntls-dir = \"/etc/sluice/tls\"\n",
        )
        .unwrap();
        let cli: Cli = parse_with_file_from([
            "x",
            "--config",
            path.to_str().unwrap(),
            "--relay-max-subscriptions",
            "9",
        ])
        .unwrap();
        let relay = &cli.node.cluster.relay;
        assert_eq!(cli.node.cluster.etcd, vec!["http://10.0.0.1:2379".to_string()]);
        assert_eq!(relay.relay_idle_timeout, Duration::from_secs(3));
        assert_eq!(relay.relay_max_frame_size, 1 << 20);
        assert_eq!(relay.relay_max_subscriptions, 9);
        assert_eq!(relay.tls_dir.as_deref(), Some(std::path::Path::new("/etc/sluice/tls")));
        assert_eq!(relay.relay_keepalive, Duration::from_secs(2), "default");
    }
}
