//! The command line: global flags and the command tree (clap derive). Parsing only; the
//! connection settings are resolved against the environment and the context file in `config`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::CtlError;

#[derive(Debug, Parser)]
#[command(
    name = "sluicectl",
    version,
    about = "Operate a Sluice cluster through its control plane",
    after_help = "Connection settings come from the flags, else SLUICE_ENDPOINT, SLUICE_TOKEN, \
                  SLUICE_TOKEN_FILE, SLUICE_TIMEOUT, SLUICE_CA, else the current context of the \
                  config file ($SLUICE_CONFIG or ~/.config/sluice/sluicectl.toml).\n\
                  Exit codes: 0 ok, 1 failed (or a check failed), 2 usage, 3 control plane \
                  unreachable or unavailable, 4 not found, 5 not authorised, 6 not supported by \
                  the control plane."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Clone, Default, Args)]
pub struct Global {
    /// Output format: aligned table for people, json or yaml for programs (stdout only).
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Control plane gRPC endpoint, e.g. http://127.0.0.1:50051 [env: SLUICE_ENDPOINT]
    #[arg(long, global = true)]
    pub endpoint: Option<String>,
    /// Bearer token for the management calls [env: SLUICE_TOKEN]
    #[arg(long, global = true, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// File holding the bearer token [env: SLUICE_TOKEN_FILE]
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// Connect and per-call timeout, e.g. 10s, 500ms, 1m [env: SLUICE_TIMEOUT]
    #[arg(long, global = true, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// CA certificate (PEM) to verify an https:// endpoint with [env: SLUICE_CA]
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
    /// Context of the config file to use instead of its current one [env: SLUICE_CONTEXT]
    #[arg(long, global = true)]
    pub context: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Origins and edges: list, show, drain, undrain.
    #[command(subcommand)]
    Nodes(NodesCommand),
    /// Published streams: list, show, kick the publisher, watch events.
    #[command(subcommand)]
    Streams(StreamsCommand),
    /// Recordings on the origins: list, show, delete.
    #[command(subcommand)]
    Recordings(RecordingsCommand),
    /// Transcoding ladders per app: list, set, delete.
    #[command(subcommand)]
    Ladders(crate::ladders::LaddersCommand),
    /// The content catalog (recordings and live streams): search, show, set titles and tags.
    #[command(subcommand)]
    Catalog(crate::catalog::CatalogCommand),
    /// Scheduled playout: files published as live streams at their time; list, add, remove.
    #[command(subcommand)]
    Schedule(crate::schedule::ScheduleCommand),
    /// Load against capacity per node and for the cluster, and the recommended edge count.
    Capacity,
    /// The edge URL a new viewer of APP/NAME would be sent to.
    Assign {
        /// The stream, as APP/NAME (e.g. live/x).
        stream: String,
        #[arg(long, value_enum, default_value_t = PlayProtocol::Flv)]
        protocol: PlayProtocol,
        /// Client hint passed to the assignment (address or region).
        #[arg(long, default_value = "")]
        hint: String,
        /// An edge the viewer just failed on: the answer names another while one has room
        /// (repeat for more).
        #[arg(long = "avoid", value_name = "EDGE")]
        avoid: Vec<String>,
        /// The viewer's address, when the control plane binds play tokens to it
        /// (--play-token-bind-client).
        #[arg(long, value_name = "IP")]
        client_ip: Option<std::net::IpAddr>,
    },
    /// The RTMP URL an encoder should publish APP/NAME to (the stream's home origin).
    Ingest {
        /// The stream, as APP/NAME.
        stream: String,
    },
    /// Check the cluster's health: one ✓/✗ line per check; exits non-zero if any fails.
    Check(CheckArgs),
    /// Named contexts in the config file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// List every registered node with its load.
    #[command(alias = "list")]
    Ls,
    /// One node in detail.
    Show(NodeRef),
    /// Drain a node: no new work; what is left is closed at the deadline.
    Drain {
        #[command(flatten)]
        node: NodeRef,
        /// How long viewers may stay (default: the node's own --drain-deadline).
        #[arg(long, value_parser = parse_duration)]
        deadline: Option<Duration>,
    },
    /// Cancel a drain order.
    Undrain(NodeRef),
}

#[derive(Debug, Clone, Args)]
pub struct NodeRef {
    /// Node id.
    pub id: String,
    /// "origin" or "edge": only needed when an origin and an edge share the id.
    #[arg(long, default_value = "")]
    pub role: String,
}

#[derive(Debug, Subcommand)]
pub enum StreamsCommand {
    /// List published streams.
    #[command(alias = "list")]
    Ls,
    /// One stream with its figures and viewers per node.
    Show {
        /// The stream, as APP/NAME.
        stream: String,
    },
    /// Close the stream's publisher on its ingest origin.
    Kick {
        /// The stream, as APP/NAME.
        stream: String,
    },
    /// Print node and stream events as they happen (until interrupted).
    Watch {
        /// Do not replay the current nodes and streams first.
        #[arg(long)]
        no_initial: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecordingsCommand {
    /// List the origins' recordings, newest first.
    #[command(alias = "list")]
    Ls {
        /// Only this app's recordings.
        #[arg(long)]
        app: Option<String>,
        /// Only recordings of streams with this name.
        #[arg(long)]
        stream: Option<String>,
        /// At most this many, the newest (1 to 1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// One recording in detail, with the URLs it plays from.
    Show(RecordingRef),
    /// Delete a finished recording (refused while it is still being written).
    #[command(alias = "delete")]
    Rm(RecordingRef),
}

#[derive(Debug, Clone, Args)]
pub struct RecordingRef {
    /// The recording, as APP/STREAM/ID (ID: its start in Unix ms, as `recordings ls` shows).
    pub recording: String,
    /// The origin holding it (default: every origin is asked).
    #[arg(long, value_name = "ID", default_value = "", hide_default_value = true)]
    pub origin: String,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// A node's load report older than this is stale.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub stale_after: Duration,
    /// How far a node's report time may be ahead of this machine's clock.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub max_clock_skew: Duration,
    /// A certificate file (PEM) to check; repeatable. The --ca file is always checked.
    #[arg(long = "cert")]
    pub certs: Vec<PathBuf>,
    /// Certificates must stay valid at least this many more days.
    #[arg(long, default_value_t = 30)]
    pub cert_days: u32,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// List the contexts; `*` marks the current one.
    GetContexts,
    /// Make NAME the current context.
    UseContext { name: String },
    /// Create or update context NAME from the global --endpoint, --token, --token-file,
    /// --ca and --timeout flags given with it (only those change).
    SetContext { name: String },
    /// Remove context NAME.
    DeleteContext { name: String },
    /// Print the current context's name.
    CurrentContext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlayProtocol {
    Flv,
    Hls,
    Rtmp,
}

/// `APP/NAME` as its two parts.
pub fn stream_ref(s: &str) -> Result<(String, String), CtlError> {
    match s.split_once('/') {
        Some((app, name)) if !app.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((app.to_string(), name.to_string()))
        }
        _ => Err(CtlError::Usage(format!("a stream is named APP/NAME (e.g. live/x), not {s:?}"))),
    }
}

/// `APP/STREAM/ID` as its three parts (ID: digits).
pub fn recording_ref(s: &str) -> Result<(String, String, String), CtlError> {
    let mut parts = s.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(app), Some(stream), Some(id), None)
            if !app.is_empty()
                && !stream.is_empty()
                && !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok((app.to_string(), stream.to_string(), id.to_string()))
        }
        _ => Err(CtlError::Usage(format!(
            "a recording is named APP/STREAM/ID (e.g. live/x/1700000000000), not {s:?}"
        ))),
    }
}

/// A duration in the `10s`, `500ms`, `2m`, `1h`, `1d` form (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, CtlError> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let bad = || CtlError::Usage(format!("a duration is like 10s, 500ms, 2m or 1h, not {s:?}"));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => None,
    };
    ms.map(Duration::from_millis).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        for bad in ["", "s", "1x", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stream_refs() {
        assert_eq!(stream_ref("live/x").unwrap(), ("live".into(), "x".into()));
        for bad in ["live", "/x", "live/", "a/b/c"] {
            assert!(stream_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn recording_refs() {
        assert_eq!(
            recording_ref("live/x/1700000000000").unwrap(),
            ("live".into(), "x".into(), "1700000000000".into())
        );
        for bad in ["live/x", "live/x/", "/x/1", "live//1", "live/x/1/2", "live/x/abc"] {
            assert!(recording_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn recordings_commands_parse() {
        let cli = Cli::try_parse_from(["sluicectl", "recordings", "ls", "--app", "live"]).unwrap();
        let Command::Recordings(RecordingsCommand::Ls { app, stream, limit }) = cli.command else {
            panic!("ls");
        };
        assert_eq!((app.as_deref(), stream, limit), (Some("live"), None, 100));
        for bad in ["0", "1001"] {
            let line = ["sluicectl", "recordings", "ls", "--limit", bad];
            assert!(Cli::try_parse_from(line).is_err(), "{bad}");
        }
        let line = ["sluicectl", "recordings", "rm", "live/x/1", "--origin", "o1"];
        let Command::Recordings(RecordingsCommand::Rm(r)) =
            Cli::try_parse_from(line).unwrap().command
        else {
            panic!("rm");
        };
        assert_eq!((r.recording.as_str(), r.origin.as_str()), ("live/x/1", "o1"));
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::try_parse_from([
            "sluicectl",
            "nodes",
            "ls",
            "-o",
            "json",
            "--endpoint",
            "http://h:1",
        ])
        .unwrap();
        assert_eq!(cli.global.output, Format::Json);
        assert_eq!(cli.global.endpoint.as_deref(), Some("http://h:1"));
        let cli = Cli::try_parse_from(["sluicectl", "nodes", "drain", "e1", "--deadline", "30s"])
            .unwrap();
        let Command::Nodes(NodesCommand::Drain { node, deadline }) = cli.command else {
            panic!("drain");
        };
        assert_eq!((node.id.as_str(), deadline), ("e1", Some(Duration::from_secs(30))));
        assert!(Cli::try_parse_from([
            "sluicectl",
            "--token",
            "a",
            "--token-file",
            "f",
            "capacity"
        ])
        .is_err());
    }
}
