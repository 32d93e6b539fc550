//! Real network partitions: every node in a network namespace of its own, joined by veth pairs
//! to one bridge, so a test can cut the link between two hosts (origin–etcd, origin–edge,
//! origin–origin) while every other path stays up, and restore it.
//!
//! ```text
//!   root namespace (the test, its players and encoders): 10.213.X.1 on bridge slbX
//!        slbX ── vX-1 ═ eth0 10.213.X.2  namespace sluice-PID-X-etcd
//!             ── vX-2 ═ eth0 10.213.X.3  namespace sluice-PID-X-origin-a
//!             ── ...
//! ```
//!
//! A cut drops the two hosts' packets to each other where they arrive (an nftables input rule
//! in each namespace): the sender sees no error, its packets just vanish, as on a real broken
//! link. Everything is made with `ip` (Debian's iproute2) and `nft` (nftables) and needs root;
//! it is removed on drop, and leftovers of killed test processes by the next [`Net::new`].

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::sync::Mutex;

/// One host of a [`Net`]: a namespace with one address.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    /// The namespace (`ip netns exec NETNS ...`).
    pub netns: String,
    pub addr: IpAddr,
    /// Its veth's end on the bridge (in the root namespace).
    veth: String,
}

/// A bridge in the root namespace with hosts attached; removed with them on drop.
pub struct Net {
    subnet: u8,
    bridge: String,
    hosts: Mutex<Vec<Host>>,
    /// Cut links, as pairs of host indexes (smaller first).
    cuts: Mutex<BTreeSet<(usize, usize)>>,
}

/// Run `ip`/`tc` with `args`; the error names the command and its stderr.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program} (Debian package iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(program: &str, args: &[&str]) {
    run(program, args).unwrap_or_else(|e| panic!("{e}"));
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Remove namespaces and bridges left by test processes that no longer run.
fn sweep() {
    let alive = |pid: &str| std::path::Path::new(&format!("/proc/{pid}")).exists();
    let mut live_subnets = BTreeSet::new();
    for line in output("ip", &["netns", "list"]).lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        let mut parts = name.splitn(4, '-');
        if parts.next() != Some("sluice") {
            continue;
        }
        let (Some(pid), Some(subnet)) = (parts.next(), parts.next()) else { continue };
        if alive(pid) {
            live_subnets.insert(subnet.to_string());
        } else {
            let _ = run("ip", &["netns", "del", name]);
        }
    }
    for line in output("ip", &["-o", "link", "show", "type", "bridge"]).lines() {
        let Some(name) = line.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n)) else {
            continue;
        };
        if let Some(subnet) = name.strip_prefix("slb") {
            if !live_subnets.contains(subnet) {
                let _ = run("ip", &["link", "del", name]);
            }
        }
    }
}

impl Net {
    /// A fresh bridge on a free `10.213.X.0/24`, the root namespace at `.1`. Panics (with the
    /// command that failed) when namespaces cannot be made: the tests need root and iproute2.
    pub fn new() -> Net {
        static SWEEP: Mutex<()> = Mutex::new(());
        let _one = crate::lock(&SWEEP);
        sweep();
        let start = (std::process::id() % 250) as u8;
        for i in 0..250u16 {
            let subnet = ((u16::from(start) + i) % 250) as u8 + 1;
            let bridge = format!("slb{subnet}");
            // Creating the bridge is the lock on the subnet: it fails if another test has it.
            if run("ip", &["link", "add", &bridge, "type", "bridge"]).is_err() {
                continue;
            }
            must("ip", &["addr", "add", &format!("10.213.{subnet}.1/24"), "dev", &bridge]);
            must("ip", &["link", "set", &bridge, "up"]);
            return Net {
                subnet,
                bridge,
                hosts: Mutex::new(Vec::new()),
                cuts: Mutex::new(BTreeSet::new()),
            };
        }
        panic!("no free 10.213.X.0/24 subnet for a test network (ip link add type bridge fails)");
    }

    /// A new namespace named after `name`, attached to the bridge, with the next address.
    pub fn host(&self, name: &str) -> Host {
        let mut hosts = crate::lock(&self.hosts);
        let n = hosts.len() + 1;
        let subnet = self.subnet;
        let netns = format!("sluice-{}-{subnet}-{name}", std::process::id());
        let (veth, peer) = (format!("v{subnet}-{n}"), format!("p{subnet}-{n}"));
        let addr: IpAddr = format!("10.213.{subnet}.{}", n + 1).parse().expect("an address");
        must("ip", &["netns", "add", &netns]);
        must("ip", &["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        must("ip", &["link", "set", &peer, "netns", &netns]);
        must("ip", &["link", "set", &veth, "master", &self.bridge, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &netns, "ip"];
            all.extend_from_slice(args);
            must("ip", &all);
        };
        inside(&["link", "set", "lo", "up"]);
        inside(&["link", "set", &peer, "name", "eth0"]);
        inside(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        inside(&["link", "set", "eth0", "up"]);
        let host = Host { name: name.to_string(), netns, addr, veth };
        hosts.push(host.clone());
        host
    }

    fn index(&self, host: &Host) -> usize {
        crate::lock(&self.hosts)
            .iter()
            .position(|h| h.netns == host.netns)
            .unwrap_or_else(|| panic!("{} is not a host of this network", host.name))
    }

    /// Cut the link between `a` and `b` both ways: their packets to each other are dropped.
    pub fn cut(&self, a: &Host, b: &Host) {
        let (i, j) = (self.index(a), self.index(b));
        crate::lock(&self.cuts).insert((i.min(j), i.max(j)));
        self.apply(&[a, b]);
    }

    /// Restore the link between `a` and `b`.
    pub fn restore(&self, a: &Host, b: &Host) {
        let (i, j) = (self.index(a), self.index(b));
        crate::lock(&self.cuts).remove(&(i.min(j), i.max(j)));
        self.apply(&[a, b]);
    }

    /// Rewrite the firewall of each of `changed`: drop what arrives from the hosts it is cut
    /// from (on input, so the sender sees no error: its packets vanish on the way).
    fn apply(&self, changed: &[&Host]) {
        let hosts = crate::lock(&self.hosts).clone();
        let cuts = crate::lock(&self.cuts).clone();
        for host in changed {
            let me = self.index(host);
            let from: Vec<String> = cuts
                .iter()
                .filter_map(|&(i, j)| match (i == me, j == me) {
                    (true, _) => Some(hosts[j].addr.to_string()),
                    (_, true) => Some(hosts[i].addr.to_string()),
                    _ => None,
                })
                .collect();
            let mut script = String::from("table inet sluice\ndelete table inet sluice\n");
            if !from.is_empty() {
                script.push_str(&format!(
                    "table inet sluice {{\n chain input {{\n  type filter hook input priority 0; \
                     policy accept;\n  ip saddr {{ {} }} drop\n }}\n}}\n",
                    from.join(", ")
                ));
            }
            nft(&host.netns, &script);
        }
    }
}

/// Load an nftables script into the namespace `netns` (Debian package nftables).
fn nft(netns: &str, script: &str) {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("ip netns exec {netns} nft (Debian packages iproute2, nftables): {e}")
        });
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("nft: {e}"));
    assert!(
        out.status.success(),
        "nft in {netns}: {}\n{script}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Default for Net {
    fn default() -> Self {
        Net::new()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for host in crate::lock(&self.hosts).iter() {
            let _ = run("ip", &["netns", "del", &host.netns]);
            let _ = run("ip", &["link", "del", &host.veth]);
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
    }
}
