//! Where the settings come from: the built-in defaults ([`crate::settings`]), then an optional
//! TOML file (`--config` or `SLUICE_CONFIG`, see [`file`]), then `SLUICE_*` environment
//! variables, then flags. A flag beats a variable, which beats the file, which beats the
//! default. Every setting has all three names: `--max-streams`, `SLUICE_MAX_STREAMS`,
//! `max-streams` (or `max_streams`) in the file.
//!
//! This is the only module that knows clap: everything below it reads plain values. Errors
//! are returned, not printed: [`ConfigError::exit`] prints them the way a command-line tool
//! should (clap's usage message for a bad flag, `--help`/`--version` on stdout with status 0,
//! one line naming the file and key for a bad file).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Parser};

/// `dst = src.field` for each field given by the user (the argument id is the field name).
macro_rules! overlay {
    ($m:expr, $src:expr; $($dst:expr => $field:ident),* $(,)?) => {
        $(
            if from_user($m, stringify!($field)) {
                $dst = $src.$field.clone().into();
            }
        )*
    };
}

pub mod args;
pub mod cluster_args;
pub mod file;

pub use args::{AdmissionArgs, EdgeArgs, HlsArgs, LimitsArgs, NodeArgs, OriginArgs};
pub use cluster_args::{ClusterArgs, RelayArgs};
pub use file::{FileError, RoleSettings};

use crate::settings::{EdgeSettings, NodeSettings, OriginSettings};

/// Whether the argument `id` was given on the command line or in the environment.
pub(crate) fn from_user(m: &ArgMatches, id: &str) -> bool {
    matches!(m.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
}

/// Why the settings could not be loaded.
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

impl ConfigError {
    /// Print the error the way a command-line tool does and exit: clap's own output and status
    /// for command-line errors (0 for `--help` and `--version`), one line and status 2 for the
    /// file.
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

/// Parse the command line (and `SLUICE_*` variables) into the binary's clap struct `C`.
pub fn parse_args<C, I>(args: I) -> Result<(C, ArgMatches), ConfigError>
where
    C: Parser,
    I: IntoIterator,
    I::Item: Into<OsString> + Clone,
{
    let matches = C::command().try_get_matches_from(args)?;
    let cli = C::from_arg_matches(&matches)?;
    Ok((cli, matches))
}

/// The settings of a binary whose own settings are `R`: defaults, then the file named by
/// `--config`/`SLUICE_CONFIG` if any, then what `matches` got from the environment and flags
/// (`apply_role` applies the binary's own flags).
pub fn load<R: RoleSettings>(
    node: &NodeArgs,
    matches: &ArgMatches,
    apply_role: impl FnOnce(&mut R),
) -> Result<(NodeSettings, R), ConfigError> {
    let (mut settings, mut role) = match &node.config {
        None => (NodeSettings::default(), R::default()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            file::parse::<R>(&text)
                .map_err(|source| ConfigError::File { path: path.clone(), source })?
        }
    };
    node.apply(matches, &mut settings);
    apply_role(&mut role);
    Ok((settings, role))
}

/// An origin's settings from the parsed command line.
pub fn origin_settings(
    node: &NodeArgs,
    origin: &OriginArgs,
    matches: &ArgMatches,
) -> Result<(NodeSettings, OriginSettings), ConfigError> {
    load(node, matches, |s| origin.apply(matches, s))
}

/// An edge's settings from the parsed command line.
pub fn edge_settings(
    node: &NodeArgs,
    edge: &EdgeArgs,
    matches: &ArgMatches,
) -> Result<(NodeSettings, EdgeSettings), ConfigError> {
    load(node, matches, |s| edge.apply(matches, s))
}

/// Why publish authorisation could not be set up from its files.
#[derive(Debug, thiserror::Error)]
pub enum PublishAuthError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Keys { path: PathBuf, source: crate::publish_auth::KeysFileError },
    #[error("--publish-token-secret-file {0}")]
    Secret(#[from] sluice_cluster::signed_token::SecretError),
}

/// The publish policy an origin's settings name: `None` (anyone may publish) when neither a
/// keys file nor a token secret is set.
pub fn publish_auth(
    s: &OriginSettings,
) -> Result<Option<crate::publish_auth::PublishAuth>, PublishAuthError> {
    if s.publish_keys_file.is_none() && s.publish_token_secret_file.is_none() {
        return Ok(None);
    }
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path)
            .map_err(|source| PublishAuthError::Read { path: path.clone(), source })
    };
    let keys = s.publish_keys_file.as_ref().map(read).transpose()?;
    let secret = match &s.publish_token_secret_file {
        Some(path) => Some(sluice_cluster::signed_token::read_secret(path)?),
        None => None,
    };
    let auth =
        crate::publish_auth::PublishAuth::new(keys.as_deref(), secret, s.publish_open_apps.clone())
            .map_err(|source| PublishAuthError::Keys {
                path: s.publish_keys_file.clone().unwrap_or_default(),
                source,
            })?;
    Ok(Some(auth))
}

/// The secret in a token secret file (at least 16 bytes; surrounding whitespace trimmed).
pub fn read_secret(
    path: &std::path::Path,
) -> Result<Vec<u8>, sluice_cluster::signed_token::SecretError> {
    sluice_cluster::signed_token::read_secret(path)
}

/// Why play authorisation could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PlayAuthError {
    #[error("--play-token-secret-file {0}")]
    Secret(#[from] sluice_cluster::signed_token::SecretError),
    #[error("--play-private-apps needs --play-token-secret-file (nobody could play them)")]
    NoSecret,
    #[error("--play-webhook-apps needs --webhook-url (nobody could play them)")]
    NoWebhook,
}

/// The play policy a node's settings name (everyone plays everything without private apps).
pub fn play_auth(s: &NodeSettings) -> Result<crate::play_auth::PlayAuth, PlayAuthError> {
    let secret = match &s.play_token_secret_file {
        Some(path) => Some(sluice_cluster::signed_token::read_secret(path)?),
        None => None,
    };
    let list = |apps: &[String]| -> Vec<String> {
        apps.iter().map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect()
    };
    let (apps, webhook_apps) = (list(&s.play_private_apps), list(&s.play_webhook_apps));
    if !apps.is_empty() && secret.is_none() {
        return Err(PlayAuthError::NoSecret);
    }
    if !webhook_apps.is_empty() && s.webhook_url.is_none() {
        return Err(PlayAuthError::NoWebhook);
    }
    Ok(crate::play_auth::PlayAuth::new(secret, apps).with_webhook_apps(webhook_apps))
}

#[cfg(test)]
mod tests;
