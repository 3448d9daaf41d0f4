//! The reconciler against the kernel (needs root, as the agent): each
//! test makes a network namespace of its own as the host, gives it an
//! underlay address, runs the reconciler in it and removes every
//! namespace it made, whatever the outcome.

mod bridge_full;
mod filter_first;
mod incremental;
mod retry;
mod teardown;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

/// The host's underlay address in every test namespace.
pub(crate) const UNDERLAY: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {} failed", args.join(" "));
}

/// Whether link `name` of the calling thread's namespace is up; `None`
/// when there is no such link.
pub(crate) fn link_up(name: &str) -> Option<bool> {
    let output = Command::new("ip")
        .args(["-j", "link", "show", "dev", name])
        .output()
        .expect("run ip");
    if !output.status.success() {
        return None;
    }
    let links: serde_json::Value = serde_json::from_slice(&output.stdout).expect("ip -j");
    let flags = links[0]["flags"].as_array().expect("flags").clone();
    Some(flags.iter().any(|f| f == "UP"))
}

/// A host namespace with an underlay address, and the host ID whose port
/// and router namespaces it removes on drop.
pub(crate) struct Host {
    pub(crate) netns: String,
    pub(crate) host_id: String,
}

impl Host {
    pub(crate) fn create(name: &str) -> Host {
        let pid = std::process::id();
        let host = Host {
            netns: format!("alcdt-{name}-{pid}"),
            host_id: format!("dt-{name}-{pid}"),
        };
        let netns = host.netns.as_str();
        ip(&["netns", "add", netns]);
        // No dummy links on this kernel: a veth pair whose ends both stay.
        ip(&[
            "-n", netns, "link", "add", "u0", "type", "veth", "peer", "name", "u1",
        ]);
        ip(&[
            "-n",
            netns,
            "addr",
            "add",
            &format!("{UNDERLAY}/24"),
            "dev",
            "u0",
        ]);
        for link in ["u0", "u1", "lo"] {
            ip(&["-n", netns, "link", "set", link, "up"]);
        }
        host
    }

    /// Runs `work` on a thread inside the host namespace, with a runtime
    /// of its own (the reconciler's netlink socket opens where it runs).
    pub(crate) fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.netns);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open the host namespace");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            work()
        })
        .join()
        .expect("the test thread")
    }

    /// Runs the future `test` makes of the host ID inside the host
    /// namespace, on a current-thread runtime of its own.
    pub(crate) fn block_on<F>(&self, test: impl FnOnce(String) -> F + Send + 'static)
    where
        F: std::future::Future<Output = ()>,
    {
        let host_id = self.host_id.clone();
        self.run(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(test(host_id));
        });
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let prefixes = [
            alcor_dataplane::plan::netns_prefix(&self.host_id),
            alcor_dataplane::plan::router_netns_prefix(&self.host_id),
        ];
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if prefixes.iter().any(|p| name.starts_with(p)) {
                    let _ = Command::new("ip").args(["netns", "del", &name]).status();
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}
