//! `sluice-launch`: start one process of a local Sluice cluster, wait until it is ready, leave it
//! running in a process group of its own and exit. For scripts (deploy/local/cluster.sh, the
//! benchmarks), which keep the pids and stop the processes themselves.
//!
//!   sluice-launch etcd --client-port 20000 --peer-port 20001 --data-dir DIR [--log FILE] [--pid-file F]
//!   sluice-launch certs --origin-bin target/release/sluice-origin --out DIR --nodes a,b,c
//!   sluice-launch node --bin target/release/sluice-edge --name edge-1 --log-dir DIR [--ready] -- FLAGS...
//!   sluice-launch service --bin target/release/sluice-control-plane --name control-plane \
//!       --log-dir DIR --http 127.0.0.1:20061 -- FLAGS...
//!
//! Exit status 0 when the process is up, 1 (with the reason and its log's last lines on stderr)
//! when it is not; a process that failed to start is stopped again.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sluice_launch::{certs, Etcd, EtcdSpec, LaunchError, Node, NodeSpec, Service, ServiceSpec};

#[derive(Parser)]
#[command(name = "sluice-launch", about = "Start etcd, certificates or a Sluice node for a script")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A single-member etcd on 127.0.0.1; returns once `/health` says healthy.
    Etcd {
        #[arg(long)]
        client_port: u16,
        #[arg(long)]
        peer_port: u16,
        /// Emptied first.
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "sluice")]
        name: String,
        #[arg(long, default_value = "error")]
        log_level: String,
        /// etcd's stdout and stderr (discarded by default).
        #[arg(long)]
        log: Option<PathBuf>,
        /// Written with etcd's pid as soon as it runs.
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// Seconds to become healthy.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// A development CA and node certificates in `--out`, unless they are all there already.
    Certs {
        /// The `sluice-origin` binary (its `gen-certs` subcommand writes them).
        #[arg(long)]
        origin_bin: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Node ids, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
    },
    /// A node (`sluice-origin`, `sluice-edge`) with the flags after `--`; returns once it printed
    /// its `listening` line (stdout to LOG_DIR/NAME.out, log to LOG_DIR/NAME.log).
    Node {
        #[arg(long)]
        bin: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        log_dir: PathBuf,
        /// Written with the node's pid as soon as it runs.
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// Also wait until `/readyz` answers 200.
        #[arg(long)]
        ready: bool,
        /// Seconds to print the `listening` line (and to become ready).
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// A process that prints no `listening` line (`sluice-control-plane`) with the flags after
    /// `--`; returns once `http://HTTP/readyz` answers 200 (stdout to LOG_DIR/NAME.out, log to
    /// LOG_DIR/NAME.log).
    Service {
        #[arg(long)]
        bin: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        log_dir: PathBuf,
        /// The HTTP address it answers `/readyz` on (as given in its flags).
        #[arg(long)]
        http: std::net::SocketAddr,
        /// Written with its pid as soon as it runs.
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// Seconds to become ready.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        #[arg(last = true)]
        args: Vec<String>,
    },
}

/// A failure of this binary: launching, or writing the pid file.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("writing {}: {source}", path.display())]
    PidFile { path: PathBuf, source: std::io::Error },
}

fn write_pid(path: Option<&Path>, pid: u32) -> Result<(), CliError> {
    match path {
        Some(path) => std::fs::write(path, format!("{pid}\n"))
            .map_err(|source| CliError::PidFile { path: path.to_path_buf(), source }),
        None => Ok(()),
    }
}

fn run(cmd: Cmd) -> Result<(), CliError> {
    match cmd {
        Cmd::Etcd { client_port, peer_port, data_dir, name, log_level, log, pid_file, timeout } => {
            let spec = EtcdSpec {
                name,
                client_port,
                peer_port,
                data_dir,
                remove_data_on_drop: false,
                log_level,
                log_file: log,
                own_process_group: true,
                start_timeout: Duration::from_secs(timeout),
                ..EtcdSpec::ephemeral()
            };
            // The pid is recorded at once, so a caller interrupted while waiting can stop it.
            let mut pid_error = None;
            let etcd = Etcd::launch_with(&spec, |pid| {
                pid_error = write_pid(pid_file.as_deref(), pid).err();
            })?;
            if let Some(e) = pid_error {
                return Err(e);
            }
            etcd.detach();
        }
        Cmd::Certs { origin_bin, out, nodes } => {
            let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
            if !certs::present(&out, &nodes) {
                println!("Generating development certificates in {}", out.display());
                std::fs::create_dir_all(&out).map_err(|e| LaunchError::Io {
                    what: format!("create {}", out.display()),
                    source: e,
                })?;
                certs::gen_certs(&origin_bin, &out, &nodes)?;
            }
        }
        Cmd::Node { bin, name, log_dir, pid_file, ready, timeout, args } => {
            let mut spec = NodeSpec::new(&name, bin, log_dir).args(&args);
            spec.wait_ready = ready;
            spec.own_process_group = true;
            spec.start_timeout = Duration::from_secs(timeout);
            // The pid is recorded at once, so a caller interrupted while waiting can stop it.
            let mut pid_error = None;
            let node = Node::start_with(&spec, |pid| {
                pid_error = write_pid(pid_file.as_deref(), pid).err();
            })?;
            if let Some(e) = pid_error {
                return Err(e);
            }
            node.detach();
        }
        Cmd::Service { bin, name, log_dir, http, pid_file, timeout, args } => {
            let spec = ServiceSpec {
                name,
                program: bin,
                args,
                log_dir,
                http,
                own_process_group: true,
                start_timeout: Duration::from_secs(timeout),
            };
            let mut pid_error = None;
            let service = Service::start_with(&spec, |pid| {
                pid_error = write_pid(pid_file.as_deref(), pid).err();
            })?;
            if let Some(e) = pid_error {
                return Err(e);
            }
            service.detach();
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-launch: {e}");
            ExitCode::FAILURE
        }
    }
}
