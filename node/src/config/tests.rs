use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::*;
use crate::settings::{EdgeSettings, NodeSettings, OriginSettings};

/// Tests that read or set `SLUICE_*` variables take this lock (the environment is global).
static ENV: Mutex<()> = Mutex::new(());

#[derive(Parser, Debug)]
struct OriginCli {
    #[command(flatten)]
    origin: OriginArgs,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Parser, Debug)]
struct EdgeCli {
    #[command(flatten)]
    edge: EdgeArgs,
    #[command(flatten)]
    node: NodeArgs,
}

fn origin(args: &[&str]) -> Result<(NodeSettings, OriginSettings), ConfigError> {
    let (cli, m) = parse_args::<OriginCli, _>(std::iter::once("x").chain(args.iter().copied()))?;
    origin_settings(&cli.node, &cli.origin, &m)
}

fn edge(args: &[&str]) -> Result<(NodeSettings, EdgeSettings), ConfigError> {
    let (cli, m) = parse_args::<EdgeCli, _>(std::iter::once("x").chain(args.iter().copied()))?;
    edge_settings(&cli.node, &cli.edge, &m)
}

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn no_config_gives_the_defaults() {
    let _env = crate::lock::lock(&ENV);
    let (node, role) = origin(&[]).unwrap();
    assert_eq!(node, NodeSettings::default());
    assert_eq!(role, OriginSettings::default());
    let (_, role) = edge(&[]).unwrap();
    assert_eq!(role, EdgeSettings::default());
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let _env = crate::lock::lock(&ENV);
    let path = write(
        "precedence.toml",
        "handshake-timeout = \"7s\"\nstream-buffer = \"1MiB\"\nhls = false\nhls-ts = false\n\
         etcd = [\"http://file:2379\"]\nlease-ttl = 9\nmax-reassembly = 65536\n\
         publish-takeover = true\n",
    );
    let p = path.to_str().unwrap();
    let vars = [
        ("SLUICE_HANDSHAKE_TIMEOUT", "8s"),
        ("SLUICE_STREAM_BUFFER", "2MiB"),
        ("SLUICE_HLS", "true"),
        ("SLUICE_HLS_TS", "true"),
        ("SLUICE_ETCD", "http://env:2379,http://env2:2379"),
    ];
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    let flags = [
        "--config",
        p,
        "--handshake-timeout",
        "500ms",
        "--stream-buffer",
        "64KiB",
        "--hls",
        "false",
        "--etcd",
        "http://flag:2379",
    ];
    let with_flags = origin(&flags);
    let without_flags = origin(&flags[..2]);
    for (k, _) in vars {
        std::env::remove_var(k);
    }
    let without_env = origin(&flags[..2]);

    // Flag beats env (and file): a duration, a size, a bool and a list.
    let (s, _) = with_flags.unwrap();
    assert_eq!(s.limits.handshake_timeout, Duration::from_millis(500));
    assert_eq!(s.limits.stream_buffer, 64 << 10);
    assert!(!s.hls.enabled);
    assert_eq!(s.cluster.etcd, ["http://flag:2379"]);

    // Env beats file; a list from the environment is split at commas.
    let (s, _) = without_flags.unwrap();
    assert_eq!(s.limits.handshake_timeout, Duration::from_secs(8));
    assert_eq!(s.limits.stream_buffer, 2 << 20);
    assert!(s.hls.enabled && s.hls.ts);
    assert_eq!(s.cluster.etcd, ["http://env:2379", "http://env2:2379"]);

    // File beats default (a bare number is seconds or bytes).
    let (s, _) = without_env.unwrap();
    assert_eq!(s.limits.handshake_timeout, Duration::from_secs(7));
    assert_eq!(s.limits.stream_buffer, 1 << 20);
    assert!(!s.hls.enabled && !s.hls.ts);
    assert_eq!(s.cluster.etcd, ["http://file:2379"]);
    assert_eq!(s.cluster.lease_ttl, Duration::from_secs(9));
    assert_eq!(s.limits.max_reassembly, 65536);
    assert!(s.limits.publish_takeover);

    // Default, where nobody set anything.
    let d = NodeSettings::default();
    assert_eq!(s.limits.play_wait_timeout, d.limits.play_wait_timeout);
    assert_eq!(s.limits.viewer_max_lag, d.limits.viewer_max_lag);
    assert_eq!(s.relay, d.relay);
    assert_eq!(d.limits.handshake_timeout, Duration::from_secs(5));
    assert!(d.hls.enabled && d.cluster.etcd.is_empty());
}

#[test]
fn sluice_config_names_the_file_and_the_flag_beats_it() {
    let _env = crate::lock::lock(&ENV);
    let a = write("env-a.toml", "max-streams = 7\n");
    let b = write("env-b.toml", "max-streams = 8\n");
    std::env::set_var("SLUICE_CONFIG", &a);
    let from_env = origin(&[]).map(|(s, _)| s.limits.max_streams);
    let from_flag = origin(&["--config", b.to_str().unwrap()]).map(|(s, _)| s.limits.max_streams);
    std::env::remove_var("SLUICE_CONFIG");
    assert_eq!(from_env.unwrap(), 7);
    assert_eq!(from_flag.unwrap(), 8);
}

#[test]
fn old_flat_files_still_load() {
    let _env = crate::lock::lock(&ENV);
    let path = write(
        "flat.toml",
        "rtmp-listen = \"127.0.0.1:1999\"\nmax_streams = 7\nhttp-listen = \"127.0.0.1:8999\"\n\
         etcd = \"http://10.0.0.1:2379\"\nrelay-idle-timeout = \"3s\"\n\
         relay-max-frame-size = \"1MiB\"\ntls-dir = \"/etc/sluice/tls\"\nrelay_listen = \"127.0.0.1:7000\"\n",
    );
    let (s, o) =
        origin(&["--config", path.to_str().unwrap(), "--http-listen", "127.0.0.1:1"]).unwrap();
    assert_eq!(s.rtmp_listen.port(), 1999);
    assert_eq!(s.http_listen.port(), 1);
    assert_eq!(s.limits.max_streams, 7);
    assert_eq!(s.cluster.etcd, ["http://10.0.0.1:2379"]);
    assert_eq!(s.relay.idle_timeout, Duration::from_secs(3));
    assert_eq!(s.relay.max_frame_size, 1 << 20);
    assert_eq!(s.relay.tls_dir.as_deref(), Some(Path::new("/etc/sluice/tls")));
    assert_eq!(o.relay_listen.map(|a| a.port()), Some(7000));
}

#[test]
fn unknown_keys_are_rejected_at_the_top_and_in_sections() {
    let (_, r) = file::parse::<OriginSettings>("hls-window = 4\n").unwrap();
    assert_eq!(r, OriginSettings::default());
    assert_eq!(
        file::parse::<OriginSettings>("no-such-key = 1\n").unwrap_err(),
        FileError::UnknownKey("no-such-key".into())
    );
    assert_eq!(
        file::parse::<OriginSettings>("[origin]\nno_such_key = 1\n").unwrap_err(),
        FileError::UnknownKey("origin.no-such-key".into())
    );
    // The other binary's section is checked too.
    assert_eq!(
        file::parse::<OriginSettings>("[edge]\nupstream-lingr = \"1s\"\n").unwrap_err(),
        FileError::UnknownKey("edge.upstream-lingr".into())
    );
    // A role key at the top level belongs to that role only.
    assert_eq!(
        file::parse::<OriginSettings>("upstream-linger = \"1s\"\n").unwrap_err(),
        FileError::UnknownKey("upstream-linger".into())
    );
    assert_eq!(
        file::parse::<OriginSettings>("config = \"x\"\n").unwrap_err(),
        FileError::ConfigKey
    );
    assert_eq!(
        file::parse::<OriginSettings>("origin = 1\n").unwrap_err(),
        FileError::NotASection("origin".into())
    );
}

#[test]
fn a_shared_file_gives_each_binary_its_section() {
    let text = "etcd = [\"http://127.0.0.1:2379\"]\nmax-streams = 5\n\
                [origin]\nrelay-listen = \"127.0.0.1:7000\"\nrtmp-listen = \"127.0.0.1:1935\"\n\
                [edge]\nupstream-linger = \"3s\"\nrtmp-listen = \"127.0.0.1:1936\"\n\
                [control_plane]\ngrpc-listen = \"127.0.0.1:50051\"\nbalance-factor = 1.5\n";
    // The control plane's section is skipped (its own binary checks it).
    let (o, origin) = file::parse::<OriginSettings>(text).unwrap();
    let (e, edge) = file::parse::<EdgeSettings>(text).unwrap();
    assert_eq!((o.limits.max_streams, e.limits.max_streams), (5, 5));
    assert_eq!((o.rtmp_listen.port(), e.rtmp_listen.port()), (1935, 1936));
    assert_eq!(origin.relay_listen.map(|a| a.port()), Some(7000));
    assert_eq!(edge.linger, Duration::from_secs(3));
    assert_eq!(edge.grace, EdgeSettings::default().grace);
}

#[test]
fn a_bad_value_names_its_key_and_a_bad_file_its_line() {
    assert_eq!(
        file::parse::<OriginSettings>("max-streams = 3\nhls-window = \"many\"\n").unwrap_err(),
        FileError::Value {
            key: "hls-window".into(),
            message: "invalid type: string \"many\", expected usize".into()
        }
    );
    let err = file::parse::<EdgeSettings>("[edge]\nupstream-grace = \"5x\"\n").unwrap_err();
    assert!(
        matches!(&err, FileError::Value { key, message } if key == "edge.upstream-grace" && message.contains("unknown duration unit")),
        "{err}"
    );
    let err = file::parse::<OriginSettings>("max-streams = 3\nlog = = 1\n").unwrap_err();
    assert!(
        matches!(&err, FileError::Syntax { line: 2, message } if !message.contains('\n')),
        "{err:?}"
    );
    let _env = crate::lock::lock(&ENV);
    let path = write("bad.toml", "max-streams = -1\n");
    let err = origin(&["--config", path.to_str().unwrap()]).unwrap_err().to_string();
    assert!(err.starts_with("config file ") && err.contains("key 'max-streams'"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn command_line_errors_come_back_as_values() {
    let _env = crate::lock::lock(&ENV);
    let err = origin(&["--help"]).unwrap_err();
    assert!(matches!(&err, ConfigError::Cli(e) if e.kind() == clap::error::ErrorKind::DisplayHelp));
    let err = origin(&["--max-streams", "lots"]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Cli(e) if e.kind() == clap::error::ErrorKind::ValueValidation)
    );
    let err = origin(&["--handshake-timeout", "5x"]).unwrap_err();
    assert!(err.to_string().contains("unknown duration unit"), "{err}");
    let err = origin(&["--config", "/nonexistent/sluice.toml"]).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
}

#[test]
fn help_shows_the_default_values() {
    let help = OriginCli::command().render_long_help().to_string();
    for shown in
        ["[default: 5s]", "[default: 16MiB]", "[default: 500ms]", "[default: 127.0.0.1:1935]"]
    {
        assert!(help.contains(shown), "{shown} missing from --help");
    }
}

/// Every flag is a file key of the same name and every file key a flag, so the three names of
/// a setting cannot drift apart.
#[test]
fn flags_and_file_keys_are_the_same_names() {
    let mut keys: Vec<&str> = file::common_groups().concat();
    keys.extend(file::fields_of::<OriginSettings>());
    keys.extend(file::fields_of::<EdgeSettings>());
    keys.sort_unstable();
    let mut flags: Vec<String> = OriginCli::command()
        .get_arguments()
        .chain(EdgeCli::command().get_arguments())
        .filter_map(|a| a.get_long().map(String::from))
        .filter(|l| l != "config" && l != "help")
        .collect();
    flags.sort_unstable();
    flags.dedup();
    assert_eq!(keys, flags);
    for a in OriginCli::command().get_arguments().filter(|a| a.get_long().is_some()) {
        let long = a.get_long().unwrap();
        if long != "help" {
            let env = format!("SLUICE_{}", long.replace('-', "_").to_uppercase());
            assert_eq!(a.get_env().and_then(|e| e.to_str()), Some(env.as_str()), "{long}");
        }
    }
}

fn example(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap()
}

/// Every key in `keys` is set or shown commented out (`# key = ...`) in `text`.
fn documents_every_key(text: &str, keys: &[&str], name: &str) {
    for key in keys {
        let set = text.lines().any(|l| {
            let l = l.trim_start_matches('#').trim_start();
            l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
        });
        assert!(set, "{name} does not document '{key}'");
    }
}

#[test]
fn the_example_files_document_every_key_with_its_default() {
    let common = file::common_groups().concat();
    let text = example("origin/sluice-origin.example.toml");
    documents_every_key(&text, &common, "sluice-origin.example.toml");
    documents_every_key(&text, file::fields_of::<OriginSettings>(), "sluice-origin.example.toml");
    assert_eq!(
        file::parse::<OriginSettings>(&text).unwrap(),
        (NodeSettings::default(), OriginSettings::default())
    );
    let text = example("edge/sluice-edge.example.toml");
    documents_every_key(&text, &common, "sluice-edge.example.toml");
    documents_every_key(&text, file::fields_of::<EdgeSettings>(), "sluice-edge.example.toml");
    assert_eq!(
        file::parse::<EdgeSettings>(&text).unwrap(),
        (NodeSettings::default(), EdgeSettings::default())
    );
    // The shared example: each binary sees its own section.
    let text = example("deploy/sluice.example.toml");
    let (o, origin) = file::parse::<OriginSettings>(&text).unwrap();
    let (e, edge) = file::parse::<EdgeSettings>(&text).unwrap();
    assert!(o.cluster.is_clustered() && e.cluster.is_clustered());
    assert_ne!(o.rtmp_listen, e.rtmp_listen);
    assert!(origin.relay_listen.is_some());
    assert_eq!(edge, EdgeSettings::default());
}
