//! The control plane's settings: flags, each also a `SLUICE_*` variable (the same names as the
//! nodes' shared flags), and an optional TOML file (`--config`, `SLUICE_CONFIG`). A flag beats
//! a variable, which beats the file, which beats the default, as for the nodes.
//!
//! The control plane applies the file's `[control_plane]` section (every key the long name of
//! a flag, `grpc-listen` or `grpc_listen`; an unknown key is an error) and, from the top level,
//! only the cluster's shared `etcd`, `etcd-prefix` and `etcd-*-file`; it ignores the nodes'
//! keys and sections, so one file serves the whole cluster (the nodes skip `[control_plane]`). The token itself
//! may come from `SLUICE_TOKEN` (for containers), never from a flag or the file, whose content
//! `ps` or a config map would show.

use crate::assign::BalanceFactor;
use crate::auth::{Token, TokenError};
use crate::tls::TlsFiles;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use sluice_cluster::telemetry::LogFormat;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The variable that may hold the token itself.
pub const TOKEN_ENV: &str = "SLUICE_TOKEN";

#[derive(Debug, Parser)]
#[command(name = "sluice-control-plane", version, about)]
pub struct Args {
    /// TOML file: its `[control_plane]` section, and `etcd`/`etcd-prefix` at the top level.
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// etcd endpoints, comma-separated (e.g. `http://127.0.0.1:2379`).
    #[arg(long, env = "SLUICE_ETCD", value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// Key prefix in etcd (the nodes' `--etcd-prefix`).
    #[arg(long, env = "SLUICE_ETCD_PREFIX", default_value = "/sluice")]
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
    #[arg(long, env = "SLUICE_ETCD_USER", requires = "etcd_password_file")]
    pub etcd_user: Option<String>,
    /// File holding the password of `--etcd-user` (a trailing newline is ignored).
    #[arg(long, env = "SLUICE_ETCD_PASSWORD_FILE", requires = "etcd_user")]
    pub etcd_password_file: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, env = "SLUICE_GRPC_LISTEN", default_value = "127.0.0.1:50051")]
    pub grpc_listen: SocketAddr,
    /// HTTP listen address (`/play/APP/STREAM.flv|.m3u8|.json`, `/healthz`, `/readyz`,
    /// `/metrics`, `/api/...`).
    #[arg(long, env = "SLUICE_HTTP_LISTEN", default_value = "127.0.0.1:8090")]
    pub http_listen: SocketAddr,
    /// How far above its capacity-weighted share of the mean load an edge may go (> 1).
    #[arg(long, env = "SLUICE_BALANCE_FACTOR", default_value = "1.25")]
    pub balance_factor: BalanceFactor,
    /// Utilisation of edge capacity (viewers and egress) the recommended edge count aims at
    /// (0 < t <= 1), in `GetCapacity`, `/metrics` and the KEDA scaler's target.
    #[arg(long, env = "SLUICE_TARGET_UTILISATION", default_value_t = crate::view::DEFAULT_TARGET_UTILISATION, value_parser = parse_utilisation)]
    pub target_utilisation: f64,
    /// File holding the bearer token that management and listing calls (and `/api/...`) must
    /// present. Without it (and without `SLUICE_TOKEN`), every call is open.
    #[arg(long, env = "SLUICE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The nodes' play token secret (a file, at least 16 bytes): the URLs handed out for
    /// streams of --play-private-apps carry a play token.
    #[arg(long, env = "SLUICE_PLAY_TOKEN_SECRET_FILE")]
    pub play_token_secret_file: Option<PathBuf>,
    /// Apps whose streams play only from a signed URL (the nodes' list; `*`: every app).
    #[arg(long, env = "SLUICE_PLAY_PRIVATE_APPS", value_delimiter = ',')]
    pub play_private_apps: Vec<String>,
    /// How long a signed play URL handed out stays valid for starting playback.
    #[arg(long, env = "SLUICE_PLAY_TOKEN_TTL", default_value = "1h")]
    pub play_token_ttl: humantime::Duration,
    /// Bind the play tokens handed out to the viewer's address (`/play/`: the requester's;
    /// `AssignViewer`: its `client_ip`, then required for private streams).
    #[arg(long, env = "SLUICE_PLAY_TOKEN_BIND_CLIENT")]
    pub play_token_bind_client: bool,
    /// Client address ranges (CIDR, comma-separated) let into `/api/*` (and a private
    /// `/metrics`) on the HTTP port without the token, e.g. a monitoring network.
    #[arg(long, env = "SLUICE_ADMIN_ALLOW", value_delimiter = ',')]
    pub admin_allow: Vec<ipnet::IpNet>,
    /// `/metrics` needs the token (or an `--admin-allow` address) like `/api/*`.
    #[arg(long, env = "SLUICE_METRICS_PRIVATE")]
    pub metrics_private: bool,
    /// PEM certificate chain: serve gRPC and HTTP over TLS (with `--tls-key`); reread on SIGHUP.
    #[arg(long, env = "SLUICE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "SLUICE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// On SIGTERM, how long open connections (gRPC and HTTP) get to finish before the replica
    /// exits anyway (endless streams such as `Watch` end at once).
    #[arg(long, env = "SLUICE_DRAIN_TIMEOUT", default_value = "10s")]
    pub drain_timeout: humantime::Duration,
    /// The content catalog the origins write (postgres://USER@HOST/DB, the password from
    /// PGPASSWORD; or sqlite://PATH): the catalog calls search and edit it. Default: none
    /// (those calls fail with FAILED_PRECONDITION).
    #[arg(long, env = "SLUICE_CATALOG", hide_env_values = true)]
    pub catalog: Option<String>,
    /// Log filter (`RUST_LOG` syntax).
    #[arg(long, env = "SLUICE_LOG", default_value = "info")]
    pub log: String,
    /// Log format (text or json).
    #[arg(long, env = "SLUICE_LOG_FORMAT", default_value_t = LogFormat::default())]
    pub log_format: LogFormat,
    /// OTLP/gRPC endpoint to export tracing spans to (e.g. `http://127.0.0.1:4317`).
    #[arg(long, env = "SLUICE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare bounded-load hashing, plain consistent hashing and least-loaded assignment on a
    /// Zipf-distributed audience; prints a Markdown table.
    Simulate {
        #[arg(long, default_value_t = 20)]
        edges: u32,
        /// Viewers each edge is configured for.
        #[arg(long, default_value_t = 20_000)]
        edge_capacity: u64,
        #[arg(long, default_value_t = 500)]
        streams: u32,
        #[arg(long, default_value_t = 100_000)]
        viewers: usize,
        /// Zipf exponent of stream popularity.
        #[arg(long, default_value_t = 1.0)]
        zipf: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

impl Args {
    /// The token from `--token-file`, else from `SLUICE_TOKEN`; `None` runs open.
    pub fn token(&self) -> Result<Option<Token>, TokenError> {
        let env = std::env::var(TOKEN_ENV).ok();
        Token::load(self.token_file.as_deref(), env.as_deref())
    }

    /// The play URL signer, when private apps are configured; an error names what is missing
    /// or wrong.
    pub fn play_signer(&self) -> Result<Option<crate::play_sign::PlaySigner>, String> {
        let apps: Vec<String> = self
            .play_private_apps
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        let Some(path) = &self.play_token_secret_file else {
            return if apps.is_empty() {
                Ok(None)
            } else {
                Err("--play-private-apps needs --play-token-secret-file".into())
            };
        };
        let secret = sluice_cluster::signed_token::read_secret(path)
            .map_err(|e| format!("--play-token-secret-file {e}"))?;
        let ttl = *self.play_token_ttl;
        let bind = self.play_token_bind_client;
        Ok((!apps.is_empty()).then(|| {
            let signer = crate::play_sign::PlaySigner::new(secret, apps, ttl);
            if bind {
                signer.binding_clients()
            } else {
                signer
            }
        }))
    }

    /// The TLS files, when both are given (clap makes each require the other).
    pub fn tls(&self) -> Option<TlsFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
            _ => None,
        }
    }
}

/// The section of the file the control plane reads.
pub const SECTION: &str = "control_plane";

/// Top-level keys of the file the control plane applies (the cluster's, shared with nodes).
pub const SHARED_KEYS: &[&str] = &[
    "etcd",
    "etcd-prefix",
    "etcd-ca-file",
    "etcd-cert-file",
    "etcd-key-file",
    "etcd-user",
    "etcd-password-file",
];

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A bad flag or variable, or `--help`/`--version` (clap renders the message).
    #[error(transparent)]
    Cli(#[from] clap::Error),
    #[error("reading config file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {}: {source}", path.display())]
    File { path: PathBuf, source: FileError },
}

/// What is wrong inside the file (the caller names the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Syntax(String),
    #[error("unknown key '{0}' in [control_plane]")]
    UnknownKey(String),
    #[error("'control_plane' must be a section ([control_plane])")]
    NotASection,
    #[error("key '{0}': expected a string, number, boolean or list")]
    BadValue(String),
}

impl ConfigError {
    /// Print the error as a command-line tool does and exit (clap's own output and status for
    /// the command line, one line and status 2 for the file).
    pub fn exit(self) -> ! {
        match self {
            ConfigError::Cli(e) => e.exit(),
            other => {
                eprintln!("error: {other}");
                std::process::exit(2)
            }
        }
    }
}

/// Parse `argv` (and the `SLUICE_*` variables, and the file they name).
pub fn parse<I, T>(argv: I) -> Result<Args, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let matches = Args::command().try_get_matches_from(&argv)?;
    let args = Args::from_arg_matches(&matches)?;
    let Some(path) = args.config.clone() else { return Ok(args) };
    let text = std::fs::read_to_string(&path)
        .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
    let flags = file_flags(&text, &matches)
        .map_err(|source| ConfigError::File { path: path.clone(), source })?;
    // The file's values go before the real arguments, only for flags neither the command
    // line nor a variable set, so the order of precedence holds.
    let mut full = argv;
    let rest = full.split_off(1.min(full.len()));
    full.extend(flags.into_iter().map(OsString::from));
    full.extend(rest);
    Ok(Args::try_parse_from(full)?)
}

/// The file's settings as `--flag=value` arguments, skipping flags `matches` got from the
/// command line or the environment.
fn file_flags(text: &str, matches: &ArgMatches) -> Result<Vec<String>, FileError> {
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| FileError::Syntax(e.to_string()))?;
    let mut wanted: Vec<(String, &toml::Value)> = Vec::new();
    for key in SHARED_KEYS {
        let found = table.get(*key).or_else(|| table.get(&key.replace('-', "_")));
        if let Some(value) = found {
            wanted.push((key.to_string(), value));
        }
    }
    match table.get(SECTION) {
        None => {}
        Some(toml::Value::Table(section)) => {
            wanted.extend(section.iter().map(|(k, v)| (k.replace('_', "-"), v)));
        }
        Some(_) => return Err(FileError::NotASection),
    }
    let command = Args::command();
    let mut flags = Vec::new();
    for (key, value) in wanted {
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
            .ok_or_else(|| FileError::UnknownKey(key.clone()))?;
        let from_user = matches!(
            matches.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if !from_user {
            let text = flag_value(value).ok_or_else(|| FileError::BadValue(key.clone()))?;
            flags.push(format!("--{key}={text}"));
        }
    }
    Ok(flags)
}

/// A TOML value as flag text: strings as they are, numbers and booleans printed, arrays
/// comma-separated (the list flags' delimiter).
fn flag_value(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => {
            items.iter().map(flag_value).collect::<Option<Vec<_>>>().map(|v| v.join(","))
        }
        _ => None,
    }
}

/// A utilisation in (0, 1].
#[derive(Debug, thiserror::Error)]
#[error("the target utilisation is a number in (0, 1], e.g. 0.6")]
pub struct InvalidUtilisation;

fn parse_utilisation(s: &str) -> Result<f64, InvalidUtilisation> {
    match s.trim().parse::<f64>() {
        Ok(t) if t > 0.0 && t <= 1.0 => Ok(t),
        _ => Err(InvalidUtilisation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_needs_both_files_and_the_token_is_no_flag() {
        let base = ["sluice-control-plane", "--etcd", "http://127.0.0.1:2379"];
        let args = Args::try_parse_from(base).unwrap();
        assert!(args.tls().is_none() && args.token_file.is_none());
        let with = |extra: &[&str]| Args::try_parse_from(base.iter().chain(extra));
        assert!(with(&["--tls-cert", "c.pem"]).is_err());
        assert!(with(&["--tls-key", "k.pem"]).is_err());
        let tls = with(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap().tls().unwrap();
        assert_eq!((tls.cert.to_str(), tls.key.to_str()), (Some("c.pem"), Some("k.pem")));
        assert!(with(&["--token", "x"]).is_err(), "a token on the command line shows in ps");
        assert!(with(&["--target-utilisation", "1.5"]).is_err());
    }

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-cp-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_shared_example_file_configures_the_control_plane() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/sluice.example.toml");
        let args = parse(["sluice-control-plane", "--config", example]).unwrap();
        assert_eq!(args.etcd, ["http://127.0.0.1:2379"]);
        assert_eq!((args.grpc_listen.port(), args.http_listen.port()), (50051, 8090));
    }

    #[test]
    fn the_file_gives_its_section_and_the_cluster_keys_and_flags_beat_it() {
        let path = write(
            "shared.toml",
            "etcd = [\"http://10.0.0.1:2379\", \"http://10.0.0.2:2379\"]\n\
             etcd_prefix = \"/prod\"\n\
             http-listen = \"127.0.0.1:8080\"\n\
             rtmp-listen = \"127.0.0.1:1935\"\n\
             [origin]\nnode-id = \"origin-1\"\n\
             [control_plane]\ngrpc-listen = \"127.0.0.1:6000\"\n\
             balance_factor = 1.5\ntarget-utilisation = 0.7\ntoken-file = \"/run/token\"\n",
        );
        let file = path.to_str().unwrap();
        let args = parse(["sluice-control-plane", "--config", file]).unwrap();
        assert_eq!(args.etcd, ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]);
        assert_eq!(args.etcd_prefix, "/prod");
        assert_eq!(args.grpc_listen.port(), 6000);
        // The nodes' top-level http-listen is theirs, not the control plane's.
        assert_eq!(args.http_listen.port(), 8090);
        assert!((args.target_utilisation - 0.7).abs() < 1e-9);
        assert_eq!(args.token_file.as_deref(), Some(std::path::Path::new("/run/token")));
        let args = parse([
            "sluice-control-plane",
            "--config",
            file,
            "--grpc-listen",
            "127.0.0.1:7000",
            "--etcd",
            "http://127.0.0.1:2379",
        ])
        .unwrap();
        assert_eq!(args.grpc_listen.port(), 7000, "the flag beats the file");
        assert_eq!(args.etcd, ["http://127.0.0.1:2379"], "the list is replaced, not extended");
    }

    /// Tests that set `SLUICE_*` variables take this lock (the environment is global).
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn tracing_flags_are_the_nodes_and_a_flag_beats_env_beats_file() {
        let _env = crate::lock::lock(&ENV);
        let path = write(
            "tracing.toml",
            "[control_plane]\nlog-format = \"json\"\notlp_endpoint = \"http://file:4317\"\n",
        );
        let file = path.to_str().unwrap();
        let defaults = parse(["sluice-control-plane"]).unwrap();
        assert_eq!((defaults.log_format, defaults.otlp_endpoint), (LogFormat::Text, None));
        let vars = [("SLUICE_LOG_FORMAT", "text"), ("SLUICE_OTLP_ENDPOINT", "http://env:4317")];
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
        let flags = [
            "sluice-control-plane",
            "--config",
            file,
            "--log-format",
            "json",
            "--otlp-endpoint",
            "http://flag:4317",
        ];
        let with_flags = parse(flags);
        let without_flags = parse(&flags[..3]);
        for (k, _) in vars {
            std::env::remove_var(k);
        }
        let without_env = parse(&flags[..3]);
        let (with_flags, without_flags) = (with_flags.unwrap(), without_flags.unwrap());
        let without_env = without_env.unwrap();
        assert_eq!(with_flags.log_format, LogFormat::Json, "the flag beats the variable");
        assert_eq!(with_flags.otlp_endpoint.as_deref(), Some("http://flag:4317"));
        assert_eq!(without_flags.log_format, LogFormat::Text, "the variable beats the file");
        assert_eq!(without_flags.otlp_endpoint.as_deref(), Some("http://env:4317"));
        assert_eq!(without_env.log_format, LogFormat::Json, "the file beats the default");
        assert_eq!(without_env.otlp_endpoint.as_deref(), Some("http://file:4317"));
        // The same flags, variables and help as the nodes' (node/src/config/args.rs).
        let command = Args::command();
        for (long, env) in
            [("log-format", "SLUICE_LOG_FORMAT"), ("otlp-endpoint", "SLUICE_OTLP_ENDPOINT")]
        {
            let arg = command.get_arguments().find(|a| a.get_long() == Some(long)).unwrap();
            assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(env), "{long}");
        }
        assert!(parse(["sluice-control-plane", "--log-format", "yaml"]).is_err());
        let bad = write("bad-format.toml", "[control_plane]\nlog-format = \"yaml\"\n");
        let err = parse(["sluice-control-plane", "--config", bad.to_str().unwrap()]).unwrap_err();
        assert!(matches!(err, ConfigError::Cli(_)), "{err}");
    }

    #[test]
    fn a_bad_file_is_one_clear_error() {
        let typo = write("typo.toml", "[control_plane]\ngrpc-lsten = \"127.0.0.1:1\"\n");
        let err = parse(["sluice-control-plane", "--config", typo.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("unknown key 'grpc-lsten'"), "{err}");
        let flat = write("flat.toml", "control_plane = 3\n");
        let err = parse(["sluice-control-plane", "--config", flat.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("must be a section"), "{err}");
        let bad = write("bad.toml", "[control_plane]\ntarget-utilisation = 2.0\n");
        let err = parse(["sluice-control-plane", "--config", bad.to_str().unwrap()]).unwrap_err();
        assert!(matches!(err, ConfigError::Cli(_)), "{err}");
        let err = parse(["sluice-control-plane", "--config", "/nonexistent/cp.toml"]).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }
}
