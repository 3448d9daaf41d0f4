//! The network the cluster runs in: one bridge in the root namespace and, per
//! node, a network namespace joined to the bridge by a veth pair. Clients and
//! the nemesis stay in the root namespace and reach every node through the
//! bridge; partitions are iptables rules inside the nodes' namespaces.
//!
//! Every name the harness creates starts with [`PREFIX`], so a sweep at
//! startup can remove what a crashed earlier run left behind. [`Topology`]
//! tears itself down on drop.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Prefix of every namespace and interface the harness creates.
pub const PREFIX: &str = "ajp";
/// Prefix of each run's data directory under the temp dir.
pub const DATA_PREFIX: &str = "alcor-jepsen-";
/// The bridge in the root namespace.
pub const BRIDGE: &str = "ajpbr0";
/// Nodes a topology can hold (addresses .11 to .19 on the bridge subnet).
pub const NODES_MAX: usize = 9;
/// The bridge's own address (clients and the nemesis use it as source).
pub const BRIDGE_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

/// Runs a command and fails with its stderr when it exits non-zero.
pub fn sh(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("spawn {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `program args` inside namespace `ns`.
pub fn sh_in(ns: &str, program: &str, args: &[&str]) -> Result<String> {
    let mut full = vec!["netns", "exec", ns, program];
    full.extend_from_slice(args);
    sh("ip", &full)
}

/// Fails early, with the apt-get line to run, when a tool is missing.
pub fn check_tools() -> Result<()> {
    for tool in ["ip", "iptables"] {
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            bail!("`{tool}` is missing: apt-get install -y iproute2 iptables");
        }
    }
    Ok(())
}

/// The namespace of node slot `slot` (1-based).
pub fn ns_name(slot: usize) -> String {
    format!("{PREFIX}n{slot}")
}

/// Node slot `slot`'s address on the bridge.
pub fn node_addr(slot: usize) -> Ipv4Addr {
    // Slots are 1..=NODES_MAX, so this stays below 20.
    Ipv4Addr::new(10, 77, 0, 10 + slot as u8)
}

/// Removes every namespace and link with the harness's prefix, killing the
/// processes left in those namespaces first, and the data directories of
/// earlier runs.
pub fn sweep() -> Result<usize> {
    let mut removed = 0;
    let list = sh("ip", &["netns", "list"])?;
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if !name.starts_with(PREFIX) {
            continue;
        }
        if let Ok(pids) = sh("ip", &["netns", "pids", name]) {
            for pid in pids.split_whitespace() {
                let _ = sh("kill", &["-9", pid]);
            }
        }
        let _ = sh("ip", &["netns", "delete", name]);
        removed += 1;
    }
    let links = sh("ip", &["-o", "link", "show"])?;
    for line in links.lines() {
        // "12: ajpv1@if11: <...>"
        let Some(name) = line.split(':').nth(1) else {
            continue;
        };
        let name = name.trim().split('@').next().unwrap_or_default();
        if name.starts_with(PREFIX) {
            let _ = sh("ip", &["link", "delete", name]);
            removed += 1;
        }
    }
    // Data directories of runs that were killed before their cleanup.
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(DATA_PREFIX) {
                let _ = std::fs::remove_dir_all(entry.path());
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// The bridge and one namespace per node; torn down on drop.
#[derive(Debug)]
pub struct Topology {
    nodes: usize,
}

impl Topology {
    /// Creates the bridge and `nodes` namespaces, each with its veth end
    /// renamed `eth0`, its address, and loopback up.
    pub fn create(nodes: usize) -> Result<Topology> {
        if nodes == 0 || nodes > NODES_MAX {
            bail!("--nodes must be 1..={NODES_MAX}, got {nodes}");
        }
        let topology = Topology { nodes };
        sh("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
        sh(
            "ip",
            &["addr", "add", &format!("{BRIDGE_ADDR}/24"), "dev", BRIDGE],
        )?;
        sh("ip", &["link", "set", BRIDGE, "up"])?;
        for slot in 1..=nodes {
            let ns = ns_name(slot);
            let host_end = format!("{PREFIX}v{slot}");
            let ns_end = format!("{PREFIX}p{slot}");
            sh("ip", &["netns", "add", &ns])?;
            sh(
                "ip",
                &[
                    "link", "add", &host_end, "type", "veth", "peer", "name", &ns_end,
                ],
            )?;
            sh("ip", &["link", "set", &host_end, "master", BRIDGE])?;
            sh("ip", &["link", "set", &host_end, "up"])?;
            sh("ip", &["link", "set", &ns_end, "netns", &ns])?;
            sh_in(&ns, "ip", &["link", "set", &ns_end, "name", "eth0"])?;
            sh_in(
                &ns,
                "ip",
                &[
                    "addr",
                    "add",
                    &format!("{}/24", node_addr(slot)),
                    "dev",
                    "eth0",
                ],
            )?;
            sh_in(&ns, "ip", &["link", "set", "eth0", "up"])?;
            sh_in(&ns, "ip", &["link", "set", "lo", "up"])?;
        }
        Ok(topology)
    }

    /// Number of node namespaces.
    pub fn nodes(&self) -> usize {
        self.nodes
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Err(error) = sweep() {
            eprintln!("teardown: {error:#}");
        }
    }
}

/// iptables rules inside the node namespaces: partitions and packet loss.
pub mod rules {
    use super::{node_addr, ns_name, sh_in};
    use anyhow::Result;

    /// Node `slot` drops every packet that comes from node `from`.
    pub fn drop_from(slot: usize, from: usize) -> Result<()> {
        sh_in(
            &ns_name(slot),
            "iptables",
            &[
                "-A",
                "INPUT",
                "-s",
                &node_addr(from).to_string(),
                "-j",
                "DROP",
            ],
        )?;
        Ok(())
    }

    /// Node `slot` drops packets from node `from` with probability `p` (one
    /// rule per peer; the clients on the bridge address are spared).
    pub fn lossy(slot: usize, from: usize, p: f64) -> Result<()> {
        sh_in(
            &ns_name(slot),
            "iptables",
            &[
                "-A",
                "INPUT",
                "-s",
                &node_addr(from).to_string(),
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &format!("{p:.2}"),
                "-j",
                "DROP",
            ],
        )?;
        Ok(())
    }

    /// Node `slot` hands packets from node `from` to NFQUEUE `queue` (they
    /// pass untouched when no program listens on the queue).
    pub fn queue_from(slot: usize, from: usize, queue: u16) -> Result<()> {
        sh_in(
            &ns_name(slot),
            "iptables",
            &[
                "-A",
                "INPUT",
                "-s",
                &node_addr(from).to_string(),
                "-j",
                "NFQUEUE",
                "--queue-num",
                &queue.to_string(),
                "--queue-bypass",
            ],
        )?;
        Ok(())
    }

    /// The rules installed in node `slot`'s INPUT chain.
    pub fn count(slot: usize) -> Result<usize> {
        let listing = sh_in(&ns_name(slot), "iptables", &["-S", "INPUT"])?;
        Ok(listing.lines().filter(|l| l.starts_with("-A")).count())
    }

    /// Removes every rule in node `slot`'s namespace.
    pub fn flush(slot: usize) -> Result<()> {
        sh_in(&ns_name(slot), "iptables", &["-F"])?;
        Ok(())
    }
}
