//! `sluice-bench`: load tool for RTMP / HTTP-FLV / LL-HLS servers. A synthetic publisher embeds
//! a wall-clock stamp and a sequence number in every video frame; N players (RTMP, HTTP-FLV or
//! LL-HLS clients) measure time to first frame, end-to-end latency and dropped frames; with
//! `--server-pid` the server's CPU and memory are sampled over the measuring window. One JSON
//! object on stdout, human logs on stderr. `assign` measures a control-plane replica's
//! `AssignViewer` calls per second and latency instead.

mod args;
mod assign;
mod flood;
mod hls;
mod http;
mod player;
mod procstat;
mod publisher;
mod rtmp_conn;
mod run;
mod sei;
mod stats;
mod synth;
mod target;

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use sluice_proto::control::v1::Protocol as GrpcProtocol;
use tokio::sync::{oneshot, watch};

use crate::args::{parse_bitrate, parse_duration};
use crate::flood::{FloodConfig, FloodMode};
use crate::hls::{HlsMode, HlsOptions};
use crate::run::{Protocol, RunConfig};
use crate::stats::Shared;
use crate::synth::{StreamShape, Synth};
use crate::target::{HttpUrl, RtmpUrl};

#[derive(Debug, Parser)]
#[command(
    name = "sluice-bench",
    version,
    about = "Load tool for RTMP / HTTP-FLV / LL-HLS live servers"
)]
struct Cli {
    /// Tokio worker threads for the players (the `run` publisher has a thread of its own; the
    /// bench usually shares the machine with the server, so keep this small).
    #[arg(long, global = true, default_value_t = 1, env = "SLUICE_BENCH_THREADS")]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Optional synthetic publisher plus N players; prints a JSON report.
    Run(RunArgs),
    /// Publisher only; prints a JSON report when done.
    Publish(PublishArgs),
    /// Open many connections with partial/garbage handshakes and hold them.
    Flood(FloodArgs),
    /// AssignViewer calls per second and latency of one control-plane replica (gRPC).
    Assign(AssignArgs),
}

#[derive(Debug, Args)]
struct AssignArgs {
    /// The replica's gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    endpoint: String,
    /// APP/NAME of a stream with a publisher.
    #[arg(long)]
    stream: String,
    /// The protocol asked for: flv, hls or rtmp.
    #[arg(long, default_value = "flv")]
    protocol: String,
    /// Calls in flight at once (one per task).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// HTTP/2 connections the tasks share round-robin.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Length of the measuring window.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
}

/// The synthetic stream's shape.
#[derive(Debug, Args)]
struct StreamArgs {
    /// Video bit rate (e.g. 2500k, 2.5M).
    #[arg(long, default_value = "2500k", value_parser = parse_bitrate)]
    bitrate: u64,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Keyframe interval.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    gop: Duration,
    /// Also send AAC audio (~43 frames/s).
    #[arg(long)]
    audio: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// rtmp://HOST:PORT/APP/STREAM (published to with --publish; played with --protocol rtmp).
    #[arg(long)]
    url: String,
    /// Run the synthetic publisher (otherwise the stream must be published by someone else).
    #[arg(long)]
    publish: bool,
    #[arg(long, default_value_t = 10)]
    players: u64,
    #[arg(long, value_enum, default_value_t = Protocol::Rtmp)]
    protocol: Protocol,
    /// HTTP-FLV URL for --protocol flv (default http://HOST:8080/APP/STREAM.flv).
    #[arg(long)]
    flv_url: Option<String>,
    /// LL-HLS multivariant playlist URL for --protocol hls
    /// (default http://HOST:8080/APP/STREAM.m3u8).
    #[arg(long)]
    hls_url: Option<String>,
    /// How HLS clients fetch the next part: `hint` requests the preload-hinted part before it
    /// exists; `blocking` does a blocking playlist reload, then fetches the part.
    #[arg(long, value_enum, default_value_t = HlsMode::Hint)]
    hls_mode: HlsMode,
    /// HLS: a gap between two new parts longer than this counts as a stall (default: twice
    /// the playlist's PART-TARGET).
    #[arg(long, value_parser = parse_duration)]
    hls_stall: Option<Duration>,
    /// HLS: longest wait for one response (blocking requests included).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    request_timeout: Duration,
    #[command(flatten)]
    stream: StreamArgs,
    /// Length of the measuring window.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Time from the first player's start to the measuring window (at least --ramp).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    warmup: Duration,
    /// Players' connects are spread evenly over this time.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    ramp: Duration,
    /// With --publish: how long the stream runs before the server's baseline RSS is read and
    /// the first player starts. Long enough for the server's per-stream memory (its GOP
    /// cache, an HLS window) to fill, so the RSS per viewer counts the viewers alone.
    #[arg(long, default_value = "300ms", value_parser = parse_duration)]
    settle: Duration,
    /// Sample this process's CPU time and RSS over the window.
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
}

#[derive(Debug, Args)]
struct PublishArgs {
    #[arg(long)]
    url: String,
    #[command(flatten)]
    stream: StreamArgs,
    /// How long to publish; 0 means until Ctrl-C.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    duration: Duration,
}

#[derive(Debug, Args)]
struct FloodArgs {
    /// host:port to flood.
    #[arg(long, default_value = "127.0.0.1:1935")]
    addr: String,
    #[arg(long, default_value_t = 1000)]
    connections: u64,
    /// New connections per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How long to hold the connections after the last one opened.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    hold: Duration,
    #[arg(long, value_enum, default_value_t = FloodMode::Mixed)]
    mode: FloodMode,
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// rtmp:// URL: once all connections are open, check a real client can still connect.
    #[arg(long)]
    probe_url: Option<String>,
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match procstat::raise_nofile_limit() {
        Ok(limit) => tracing::debug!("RLIMIT_NOFILE = {limit}"),
        Err(e) => tracing::warn!("could not raise RLIMIT_NOFILE: {e}"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.clamp(1, 64))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => fail(format!("cannot start the runtime: {e}")),
    };
    let code = runtime.block_on(async_main(cli.command));
    runtime.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("sluice-bench: {message}");
    std::process::exit(2);
}

fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => fail(format!("cannot serialise the report: {e}")),
    }
}

fn shape(args: &StreamArgs) -> StreamShape {
    StreamShape::new(args.bitrate, args.fps, args.gop, args.audio)
}

async fn async_main(command: Command) -> i32 {
    match command {
        Command::Run(args) => {
            let url = RtmpUrl::parse(&args.url).unwrap_or_else(|e| fail(e));
            let flv_url =
                args.flv_url.as_deref().map(|u| HttpUrl::parse(u).unwrap_or_else(|e| fail(e)));
            let hls_url =
                args.hls_url.as_deref().map(|u| HttpUrl::parse(u).unwrap_or_else(|e| fail(e)));
            let config = RunConfig {
                url,
                flv_url,
                hls_url,
                hls: HlsOptions {
                    mode: args.hls_mode,
                    request_timeout: args.request_timeout,
                    stall_after: args.hls_stall,
                },
                publish: args.publish,
                players: args.players,
                protocol: args.protocol,
                shape: shape(&args.stream),
                duration: args.duration,
                warmup: args.warmup,
                ramp: args.ramp,
                settle: args.settle,
                server_pid: args.server_pid,
                connect_timeout: args.connect_timeout,
            };
            let report = run::run(config).await;
            print_json(&report);
            i32::from(report.error.is_some())
        }
        Command::Publish(args) => {
            let url = RtmpUrl::parse(&args.url).unwrap_or_else(|e| fail(e));
            let until =
                (!args.duration.is_zero()).then(|| tokio::time::Instant::now() + args.duration);
            let (stop_tx, stop_rx) = watch::channel(false);
            let (started_tx, _started_rx) = oneshot::channel();
            let shared = Arc::new(Shared::default());
            let task = tokio::spawn(publisher::publish(
                url,
                Synth::new(shape(&args.stream)),
                until,
                stop_rx,
                shared,
                started_tx,
            ));
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    let _ = stop_tx.send(true);
                    // Keep the sender alive until the publisher has seen it.
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            });
            match task.await {
                Ok(report) => {
                    print_json(&report);
                    i32::from(report.error.is_some())
                }
                Err(e) => fail(format!("publisher task failed: {e}")),
            }
        }
        Command::Flood(args) => {
            let probe =
                args.probe_url.as_deref().map(|u| RtmpUrl::parse(u).unwrap_or_else(|e| fail(e)));
            let report = flood::flood(FloodConfig {
                addr: args.addr,
                connections: args.connections,
                rate: args.rate,
                hold: args.hold,
                mode: args.mode,
                connect_timeout: args.connect_timeout,
                probe,
            })
            .await;
            print_json(&report);
            0
        }
        Command::Assign(args) => {
            let Some((app, stream)) = args.stream.split_once('/') else {
                fail(format!("--stream is APP/NAME, not {:?}", args.stream))
            };
            let protocol = match args.protocol.as_str() {
                "flv" => GrpcProtocol::HttpFlv,
                "hls" => GrpcProtocol::Hls,
                "rtmp" => GrpcProtocol::Rtmp,
                other => fail(format!("--protocol is flv, hls or rtmp, not {other:?}")),
            };
            let report = assign::run(assign::AssignConfig {
                endpoint: args.endpoint,
                app: app.to_string(),
                stream: stream.to_string(),
                protocol,
                concurrency: args.concurrency,
                connections: args.connections,
                warmup: args.warmup,
                duration: args.duration,
            })
            .await;
            print_json(&report);
            i32::from(report.error.is_some() || report.calls == 0)
        }
    }
}
