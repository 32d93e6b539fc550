//! Process-level set-up shared by every binary: logging, the file-descriptor limit, signals.

use tracing_subscriber::EnvFilter;

/// Install the global tracing subscriber (text or JSON to stderr).
pub fn init_tracing(filter: &str, format: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}

/// Raise RLIMIT_NOFILE's soft limit to the hard limit; returns the resulting soft limit.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur as u64;
            }
        }
        lim.rlim_cur as u64
    }
}

/// File descriptors kept free for listeners, logs, outgoing connections.
pub const FD_RESERVE: u64 = 256;

/// `wanted` capped below the process's file-descriptor limit.
pub fn cap_connections(wanted: usize, fd_limit: u64) -> usize {
    let cap = fd_limit.saturating_sub(FD_RESERVE).max(16);
    (wanted as u64).min(cap) as usize
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
