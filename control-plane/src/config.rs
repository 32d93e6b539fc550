//! The control plane's command line: flags, each also a `SLUICE_*` variable (the same names
//! as the nodes' shared flags), and the `simulate` subcommand. The token itself may come from
//! `SLUICE_TOKEN` (for containers), never from a flag, whose value `ps` would show.

use crate::assign::BalanceFactor;
use crate::auth::{Token, TokenError};
use crate::tls::TlsFiles;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The variable that may hold the token itself.
pub const TOKEN_ENV: &str = "SLUICE_TOKEN";

#[derive(Debug, Parser)]
#[command(name = "sluice-control-plane", version, about)]
pub struct Args {
    /// etcd endpoints, comma-separated (e.g. `http://127.0.0.1:2379`).
    #[arg(long, env = "SLUICE_ETCD", value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// Key prefix in etcd (the nodes' `--etcd-prefix`).
    #[arg(long, env = "SLUICE_ETCD_PREFIX", default_value = "/sluice")]
    pub etcd_prefix: String,
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
    /// PEM certificate chain: serve gRPC and HTTP over TLS (with `--tls-key`).
    #[arg(long, env = "SLUICE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "SLUICE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log filter (`RUST_LOG` syntax).
    #[arg(long, env = "SLUICE_LOG", default_value = "info")]
    pub log: String,
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

    /// The TLS files, when both are given (clap makes each require the other).
    pub fn tls(&self) -> Option<TlsFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
            _ => None,
        }
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
}
