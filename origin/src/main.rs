//! `sluice-origin`: accepts RTMP publishers. Without `--etcd` it runs standalone, serving
//! viewers itself over RTMP, HTTP-FLV and LL-HLS; with `--etcd` it claims its streams in the
//! cluster registry and serves them to edges over the QUIC relay (`--relay-listen`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_media::stream_name::StreamKey;
use sluice_node::config::{self, NodeArgs, OriginArgs};
use sluice_node::play_auth::PlayAuth;
use sluice_node::publish_auth::{PublishAuth, PublishAuthStore};
use sluice_node::recording::RecordSettings;
use sluice_node::server::NodeOptions;

/// Sluice origin node: RTMP ingest; standalone, also RTMP, HTTP-FLV and LL-HLS playback.
///
/// Publish:  rtmp://HOST:1935/APP/STREAM
/// Play:     rtmp://HOST:1935/APP/STREAM  or  http://HOST:8080/APP/STREAM.flv
///           or  http://HOST:8080/APP/STREAM.m3u8
/// Cluster:  --etcd http://127.0.0.1:2379 --relay-listen 127.0.0.1:7000 --tls-dir DIR
/// Every flag is also a SLUICE_* environment variable and a key of the --config TOML file
/// (flag beats env beats file beats default; see sluice-origin.example.toml).
#[derive(Debug, Parser)]
#[command(name = "sluice-origin", version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    origin: OriginArgs,

    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a development certificate set for the relay: a cluster CA (ca.pem, ca.key) and
    /// one certificate and key per node (NODE.pem, NODE.key), then exit.
    GenCerts {
        /// Directory to write into (created if missing; existing files are overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Node ids to issue certificates for, comma-separated (origins and edges).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
    },
    /// Make a stream key for APP/NAME: print the key (give it to the broadcaster) and the
    /// line for --publish-keys-file (it holds only the key's hash), then exit.
    StreamKey {
        /// The stream the key publishes, as APP/NAME.
        stream: String,
        /// Use this key instead of a random one.
        #[arg(long)]
        key: Option<String>,
    },
    /// Sign a publish token for APP/NAME with the --publish-token-secret-file secret and print
    /// the publish URL's query (`?token=...`), then exit.
    PublishToken {
        /// The stream the token publishes, as APP/NAME.
        stream: String,
        /// The token secret file (the same as the origins').
        #[arg(long)]
        secret_file: PathBuf,
        /// How long the token is good for (e.g. 3600s, 12h).
        #[arg(long, default_value = "12h")]
        ttl: sluice_node::units::HumanDuration,
    },
    /// Sign a play token for APP/NAME (a private stream) with the --play-token-secret-file
    /// secret and print the play URLs (RTMP, HTTP-FLV, HLS), then exit.
    PlayToken {
        /// The stream the token plays, as APP/NAME.
        stream: String,
        /// The token secret file (the same as the nodes' and the control plane's).
        #[arg(long)]
        secret_file: PathBuf,
        /// How long the token is good for (e.g. 3600s, 12h).
        #[arg(long, default_value = "1h")]
        ttl: sluice_node::units::HumanDuration,
        /// Bind the token to the viewer's address: it plays from there only.
        #[arg(long)]
        client_ip: Option<std::net::IpAddr>,
    },
}

/// Sign a token for `stream` valid for `ttl` from now with the secret in `secret_file`.
fn sign_with(
    secret_file: &std::path::Path,
    ttl: std::time::Duration,
    sign: impl Fn(&[u8], u64) -> String,
) -> anyhow::Result<String> {
    let secret = config::read_secret(secret_file)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    Ok(sign(&secret, (now + ttl).as_secs()))
}

/// `APP/NAME` as a stream key.
fn parse_stream(stream: &str) -> anyhow::Result<StreamKey> {
    let (app, name) = stream.split_once('/').context("the stream must be APP/NAME")?;
    let (key, query) = StreamKey::parse(app, name).context("invalid stream name")?;
    anyhow::ensure!(query.is_none(), "the stream name must not have a query");
    Ok(key)
}

/// The helper subcommands.
fn helper(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::GenCerts { out, nodes } => {
            let names: Vec<&str> = nodes.iter().map(String::as_str).collect();
            sluice_relay::certs::generate(out, &names)
                .with_context(|| format!("writing certificates to {}", out.display()))?;
            println!(
                "wrote ca.pem, ca.key and {} node certificates to {}",
                names.len(),
                out.display()
            );
        }
        Command::StreamKey { stream, key } => {
            let stream = parse_stream(stream)?;
            let key = key.clone().unwrap_or_else(|| {
                let bytes: [u8; 16] = rand::random();
                format!("sk-{}", hex::encode(bytes))
            });
            println!("stream key: {key}");
            println!("publish to: rtmp://HOST/{}/{key}", stream.app());
            println!("keys file line: {}", sluice_node::publish_auth::key_line(&stream, &key));
        }
        Command::PublishToken { stream, secret_file, ttl } => {
            let stream = parse_stream(stream)?;
            let token = sign_with(secret_file, ttl.0, |s, e| PublishAuth::token(s, &stream, e))?;
            println!("rtmp://HOST/{}/{}?token={token}", stream.app(), stream.name());
        }
        Command::PlayToken { stream, secret_file, ttl, client_ip } => {
            let stream = parse_stream(stream)?;
            let token = sign_with(secret_file, ttl.0, |s, e| match client_ip {
                Some(ip) => PlayAuth::token_for(s, &stream, e, *ip),
                None => PlayAuth::token(s, &stream, e),
            })?;
            let (app, name) = (stream.app(), stream.name());
            println!("rtmp://HOST/{app}/{name}?token={token}");
            println!("http://HOST/{app}/{name}.flv?token={token}");
            println!("http://HOST/{app}/{name}.m3u8?token={token}");
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let (cli, matches) =
        config::parse_args::<Cli, _>(std::env::args_os()).unwrap_or_else(|e| e.exit());
    if let Some(command) = &cli.command {
        return helper(command);
    }
    let (node, origin) =
        config::origin_settings(&cli.node, &cli.origin, &matches).unwrap_or_else(|e| e.exit());
    let mut options = NodeOptions::origin();
    options.relay_listen = origin.relay_listen;
    options.record = RecordSettings::from_origin(&origin)
        .and_then(|record| match record {
            // Recordings are the HLS segmenter's output: without it there would be none.
            Some(_) if !node.hls.enabled => Err("--record-apps needs HLS on (--hls true)".into()),
            record => Ok(record),
        })
        .unwrap_or_else(|e| {
            eprintln!("sluice-origin: {e}");
            std::process::exit(2);
        });
    options.catalog =
        sluice_node::catalog::CatalogOptions::from_origin(&origin, node.cluster.is_clustered())
            .unwrap_or_else(|e| {
                eprintln!("sluice-origin: {e}");
                std::process::exit(2);
            });
    options.playout_dir = origin.playout_dir.clone();
    options.transcode = sluice_node::transcode::TranscodeSettings::from_origin(
        &origin,
        node.cluster.is_clustered(),
    )
    .unwrap_or_else(|e| {
        eprintln!("sluice-origin: {e}");
        std::process::exit(2);
    });
    if origin.publish_keys_file.is_some() || origin.publish_token_secret_file.is_some() {
        // Read now and again on SIGHUP.
        let settings = origin.clone();
        let load = Box::new(move || match config::publish_auth(&settings) {
            Ok(Some(auth)) => Ok(auth),
            Ok(None) => Err("no keys file or token secret".to_string()),
            Err(e) => Err(e.to_string()),
        });
        let store = PublishAuthStore::new(load).unwrap_or_else(|e| {
            eprintln!("sluice-origin: publish authorisation: {e}");
            std::process::exit(2);
        });
        options.publish_auth = Some(std::sync::Arc::new(store));
    }
    sluice_node::runtime::run_main(
        &node.clone(),
        "sluice-origin",
        sluice_node::server::run(node, options),
    )
}
