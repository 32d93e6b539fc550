//! A real etcd server per test (the one launcher in `sluice-launch`: free ports, data on
//! /dev/shm, stopped and removed on drop) and `etcdctl` reads.

use std::process::Command;

/// A single-member etcd on loopback; killed and its data removed on drop.
pub struct Etcd {
    server: sluice_launch::Etcd,
}

impl Etcd {
    /// Start and wait until healthy; panics when etcd (Debian package etcd-server) is missing or
    /// does not come up.
    pub fn start() -> Etcd {
        let server = sluice_launch::Etcd::start().unwrap_or_else(|e| panic!("{e}"));
        Etcd { server }
    }

    /// Start one inside the namespace of `host` (a [`crate::netns::Net`] host), on its address.
    pub fn start_on(host: &crate::netns::Host) -> Etcd {
        let mut spec = sluice_launch::EtcdSpec::ephemeral();
        spec.host = host.addr;
        spec.netns = Some(host.netns.clone());
        let server = sluice_launch::Etcd::launch(&spec).unwrap_or_else(|e| panic!("{e}"));
        Etcd { server }
    }

    /// Start one that serves clients over TLS only and requires client certificates: its own
    /// certificate `etcd.pem`/`etcd.key` and the CA `ca.pem`, all in `certs`.
    pub fn start_tls(certs: &std::path::Path) -> Etcd {
        let mut spec = sluice_launch::EtcdSpec::ephemeral();
        spec.tls = Some(sluice_launch::EtcdServerTls {
            cert_file: certs.join("etcd.pem"),
            key_file: certs.join("etcd.key"),
            ca_file: certs.join("ca.pem"),
        });
        let server = sluice_launch::Etcd::launch(&spec).unwrap_or_else(|e| panic!("{e}"));
        Etcd { server }
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
