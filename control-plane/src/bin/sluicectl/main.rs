//! `sluicectl`: the operator's command line for a Sluice cluster, over the control plane's
//! gRPC API (`proto/control.proto`).
//!
//! Output (`-o table|json|yaml`) goes to stdout and nothing else does; every failure is one
//! `error: ...` line on stderr and an exit code by kind (see `error::exit`).
//!
//! # Modules (each imports only from those listed after it)
//!
//! ```text
//! main        parse, resolve the settings, dispatch, turn errors into exit codes
//! commands    nodes, streams, recordings, capacity, assign, ingest: calls, views, printing
//! check       `check`'s I/O: connection, health, listings, certificate files
//! config_cmd  `config get-contexts|use-context|set-context|...`
//! client      the channel (TLS with --ca), bearer token, timeout, statuses as errors
//! checks      `check`'s verdicts (sans-IO)
//! render      table form of each view (sans-IO)
//! output      -o table|json|yaml encoding, stdout
//! views       serde views of the protobuf answers
//! config      context file and flag > SLUICE_* > context precedence
//! args        the command line (clap)
//! table       aligned columns
//! units       human units
//! error       errors and exit codes
//! ```

mod args;
mod catalog;
mod check;
mod checks;
mod client;
mod commands;
mod config;
mod config_cmd;
mod error;
mod ladders;
#[cfg(test)]
mod mock;
mod output;
mod render;
mod schedule;
mod table;
mod units;
mod views;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};
use crate::error::{exit, CtlError};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(&e),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// clap's verdict: `--help` and `--version` print to stdout and succeed; a command without
/// its subcommand prints that command's help to stderr; any other mistake is its first line
/// (clap's own `error: ...`) and exit 2.
fn usage(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
    } else {
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or("error: invalid arguments");
        eprintln!("{first} (see --help)");
    }
    ExitCode::from(exit::USAGE)
}

fn run(cli: Cli) -> Result<(), CtlError> {
    let Cli { global, command } = cli;
    match command {
        Command::Completion { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "sluicectl", &mut out);
            output::print(&String::from_utf8_lossy(&out));
            Ok(())
        }
        Command::Config(cmd) => config_cmd::run(&cmd, &global, &config::path(&env)?),
        command => {
            let file = config::load(&config::path(&env)?)?;
            let settings = config::resolve(&global, &env, &file)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CtlError::Server { call: "runtime", message: e.to_string() })?;
            runtime.block_on(commands::run(
                command,
                &settings,
                global.output,
                &mut std::io::stdout(),
            ))
        }
    }
}
