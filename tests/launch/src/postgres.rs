//! A PostgreSQL server on loopback for one test (Debian package `postgresql`): a fresh cluster
//! (`initdb`, trust authentication on 127.0.0.1 only) on /dev/shm and a free port, ready
//! (`pg_isready`) before it is returned, stopped and removed on drop. As root it runs as the
//! `postgres` user the package creates (`setpriv`, which execs: the child is the postmaster).

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{tail, LaunchError};
use crate::process::{free_port, scratch_path, ChildGuard, Signal};

/// A running PostgreSQL; stopped (fast shutdown) and its data removed on drop.
#[derive(Debug)]
pub struct Postgres {
    child: ChildGuard,
    port: u16,
    dir: PathBuf,
}

/// The newest installed server's program `name` (`initdb`, `postgres`).
fn server_program(name: &str) -> Result<PathBuf, LaunchError> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let path = e.path().join("bin").join(name);
            path.exists().then_some((version, path))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).ok_or_else(|| LaunchError::Spawn {
        program: format!("{name} (Debian package postgresql)"),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })
}

/// `program`, as the `postgres` user when this process is root (PostgreSQL refuses root).
fn as_server_user(program: PathBuf) -> Command {
    if rustix::process::geteuid().is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// A new cluster on a free port, ready for connections.
    pub fn start() -> Result<Postgres, LaunchError> {
        Postgres::start_on(free_port())
    }

    /// A new cluster on `port`, ready for connections.
    pub fn start_on(port: u16) -> Result<Postgres, LaunchError> {
        let dir = scratch_path("sluice-postgres");
        let data = dir.join("data");
        let log = dir.join("postgres.log");
        std::fs::create_dir_all(&dir)
            .map_err(|e| LaunchError::io(format!("create {}", dir.display()), e))?;
        if rustix::process::geteuid().is_root() {
            let status = Command::new("chown").args(["postgres:postgres"]).arg(&dir).status();
            if !status.is_ok_and(|s| s.success()) {
                return Err(LaunchError::io(
                    "chown the PostgreSQL directory to postgres (is the postgresql package installed?)",
                    std::io::Error::other("chown failed"),
                ));
            }
        }
        let out = as_server_user(server_program("initdb")?)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| LaunchError::Spawn { program: "initdb".into(), source })?;
        if !out.status.success() {
            return Err(LaunchError::Exited {
                name: "initdb".into(),
                status: out.status,
                log: PathBuf::from("(stderr)"),
                tail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let log_file = File::create(&log)
            .map_err(|e| LaunchError::io(format!("create {}", log.display()), e))?;
        let err = log_file.try_clone().map_err(|e| LaunchError::io("dup log file", e))?;
        let child = as_server_user(server_program("postgres")?)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories=", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err)
            .spawn()
            .map_err(|source| LaunchError::Spawn { program: "postgres".into(), source })?;
        let mut pg = Postgres { child: ChildGuard::new("postgres", child), port, dir };
        let timeout = Duration::from_secs(30);
        let deadline = Instant::now() + timeout;
        while !pg.ready() {
            if let Some(status) = pg.child.try_wait() {
                return Err(LaunchError::Exited {
                    name: "postgres".into(),
                    status,
                    tail: tail(&log, 20),
                    log,
                });
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::Timeout {
                    name: "postgres".into(),
                    what: format!("not accepting connections on port {port}"),
                    timeout,
                    tail: tail(&log, 20),
                    log,
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(pg)
    }

    /// `pg_isready` says it accepts connections.
    pub fn ready(&self) -> bool {
        Command::new("pg_isready")
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "2"])
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Create database `name` (owned by `postgres`).
    pub fn create_database(&self, name: &str) -> Result<(), LaunchError> {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-q"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", &format!("CREATE DATABASE \"{name}\"")])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| LaunchError::Spawn { program: "psql".into(), source })?;
        if !out.status.success() {
            return Err(LaunchError::Exited {
                name: format!("psql CREATE DATABASE {name}"),
                status: out.status,
                log: PathBuf::from("(stderr)"),
                tail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(())
    }

    /// The URL of database `db` on it: `postgres://postgres@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Fast shutdown: SIGTERM would wait for every client to leave.
        self.child.signal(Signal::INT);
        if self.child.wait_timeout(Duration::from_secs(10)).is_none() {
            self.child.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
