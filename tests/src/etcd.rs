//! A real etcd server per test (the one launcher in `sluice-launch`: free ports, data on
//! /dev/shm, stopped and removed on drop) and `etcdctl` reads.

use std::process::Command;

/// A single-member etcd on loopback; killed and its data removed on drop.
pub struct Etcd {
    server: sluice_launch::Etcd,
}

/// Launch etcd as `spec()` says. Its free ports are found by binding and releasing them, so
/// another test may take one before etcd binds it (etcd then exits at once): that is retried
/// with fresh ports, twice at most.
fn launch(spec: impl Fn() -> sluice_launch::EtcdSpec) -> Etcd {
    let mut tries = 0;
    loop {
        match sluice_launch::Etcd::launch(&spec()) {
            Ok(server) => return Etcd { server },
            Err(e @ sluice_launch::LaunchError::Exited { .. }) if tries < 2 => {
                tries += 1;
                eprintln!("etcd did not start ({e}); again with other ports");
            }
            Err(e) => panic!("{e}"),
        }
    }
}

impl Etcd {
    /// Start and wait until healthy; panics when etcd (Debian package etcd-server) is missing or
    /// does not come up.
    pub fn start() -> Etcd {
        launch(sluice_launch::EtcdSpec::ephemeral)
    }

    /// Start one inside the namespace of `host` (a [`crate::netns::Net`] host), on its address.
    pub fn start_on(host: &crate::netns::Host) -> Etcd {
        launch(|| {
            let mut spec = sluice_launch::EtcdSpec::ephemeral();
            spec.host = host.addr;
            spec.netns = Some(host.netns.clone());
            spec
        })
    }

    /// Start one that serves clients over TLS only and requires client certificates: its own
    /// certificate `etcd.pem`/`etcd.key` and the CA `ca.pem`, all in `certs`.
    pub fn start_tls(certs: &std::path::Path) -> Etcd {
        launch(|| {
            let mut spec = sluice_launch::EtcdSpec::ephemeral();
            spec.tls = Some(sluice_launch::EtcdServerTls {
                cert_file: certs.join("etcd.pem"),
                key_file: certs.join("etcd.key"),
                ca_file: certs.join("ca.pem"),
            });
            spec
        })
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// Freeze the server (SIGSTOP): connections stay open and nothing answers, as with a hung
    /// or partitioned etcd. The guard thaws it (SIGCONT) when dropped.
    pub fn pause(&self) -> Paused {
        sluice_launch::process::kill(self.server.pid(), sluice_launch::process::Signal::STOP);
        Paused { pid: self.server.pid() }
    }

    /// Run `etcdctl` (API v3) against this server; stdout on success.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint(), "--command-timeout=3s"])
            .args(args)
            .output()
            .map_err(|e| format!("etcdctl (Debian package etcd-client): {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Keys under `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self.ctl(&["get", "--prefix", "--keys-only", prefix]).unwrap_or_default();
        let mut keys: Vec<String> =
            out.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
        keys.sort();
        keys
    }
}

/// A frozen etcd ([`Etcd::pause`]), thawed on drop.
#[must_use = "the server thaws when this is dropped"]
pub struct Paused {
    pid: u32,
}

impl Drop for Paused {
    fn drop(&mut self) {
        sluice_launch::process::kill(self.pid, sluice_launch::process::Signal::CONT);
    }
}
