//! A cluster of `alcor server` OS processes for the SDK's tests (the spawn
//! logic of node/tests/it/cluster.rs, reduced), plus a TCP proxy that can
//! cut a connection right after the server answered, so a test can force a
//! call whose outcome the client cannot know.
//!
//! The `alcor` binary is not built by `cargo test -p alcor-client` (a binary
//! crate cannot be a dev-dependency): build it first with
//! `cargo build -p alcor-node`, or point `ALCOR_BIN` at one.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alcor_client::types::{CreateSubnetRequest, CreateVpcRequest};
use alcor_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long any wait in these tests may take.
pub(crate) const WAIT_MS_MAX: u64 = 30_000;

/// The project of every test resource.
pub(crate) const PROJECT: &str = "sdk";

/// The `alcor` binary next to this test executable (target/debug/alcor).
fn alcor_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("ALCOR_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("alcor");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p alcor-node` first (or set ALCOR_BIN)",
        bin.display()
    );
    bin
}

/// Lowest and one past the highest port `free_port` hands out: below the
/// kernel's ephemeral range (32768..), so outgoing connections never take a
/// port that a member has been given but not bound yet.
const TEST_PORT_RANGE: std::ops::Range<u16> = 12_000..32_000;

/// A port that is free now and that no other caller in this test process
/// has been given: ports come from a process-wide cursor, each one checked
/// by binding it, so two members of one cluster (or of two clusters started
/// by tests running in parallel) never receive the same port.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CURSOR: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(TEST_PORT_RANGE.end - TEST_PORT_RANGE.start);
    // Start each test process at a different place in the range.
    let offset = std::process::id().wrapping_mul(7_919) % span;
    loop {
        let step = CURSOR.fetch_add(1, Ordering::Relaxed);
        assert!(step < span, "no free port left in {TEST_PORT_RANGE:?}");
        let port = TEST_PORT_RANGE.start + u16::try_from((offset + step) % span).expect("in range");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

struct Member {
    api_addr: String,
    /// The `alcor server` command line, to start it again.
    command: Vec<std::ffi::OsString>,
    child: Option<Child>,
}

/// `n` members; every child is killed on drop.
pub(crate) struct ProcessCluster {
    members: BTreeMap<u64, Member>,
    dir: tempfile::TempDir,
}

impl ProcessCluster {
    /// Spawns `n` members and waits until they agree on a leader.
    pub(crate) async fn start(n: u64) -> ProcessCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let raft: BTreeMap<u64, String> = (1..=n)
            .map(|id| (id, format!("127.0.0.1:{}", free_port())))
            .collect();
        let api: BTreeMap<u64, String> = (1..=n)
            .map(|id| (id, format!("127.0.0.1:{}", free_port())))
            .collect();
        let initial_cluster = (1..=n)
            .map(|id| format!("{id}={}/{}", raft[&id], api[&id]))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = BTreeMap::new();
        for id in 1..=n {
            let mut command: Vec<std::ffi::OsString> =
                vec!["server".into(), "--insecure".into(), "--id".into()];
            command.push(id.to_string().into());
            command.push("--data-dir".into());
            command.push(dir.path().join(format!("node-{id}")).into());
            for (flag, value) in [
                ("--raft-addr", &raft[&id]),
                ("--api-addr", &api[&id]),
                ("--initial-cluster", &initial_cluster),
            ] {
                command.push(flag.into());
                command.push(value.into());
            }
            let member = Member {
                api_addr: api[&id].clone(),
                command,
                child: None,
            };
            members.insert(id, member);
        }
        let mut cluster = ProcessCluster { members, dir };
        for id in 1..=n {
            cluster.respawn(id);
        }
        cluster.wait_for_leader().await;
        cluster
    }

    /// Starts member `id` (again, from its data dir); its log is appended to.
    pub(crate) fn respawn(&mut self, id: u64) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node-{id}.log")))
            .expect("log");
        let member = self.members.get_mut(&id).expect("member");
        assert!(member.child.is_none(), "member {id} is running");
        let child = Command::new(alcor_bin())
            .args(&member.command)
            .env("ALCOR_LOG", "info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn alcor server");
        member.child = Some(child);
    }

    /// Member `id`'s API address.
    pub(crate) fn api_addr(&self, id: u64) -> String {
        self.members[&id].api_addr.clone()
    }

    /// Every member's API address, by id.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.members.values().map(|m| m.api_addr.clone()).collect()
    }

    /// A client over every member.
    pub(crate) fn client(&self) -> Client {
        Client::builder()
            .endpoints(self.endpoints())
            .build()
            .expect("client")
    }

    /// SIGKILLs member `id`.
    pub(crate) fn kill(&mut self, id: u64) {
        let member = self.members.get_mut(&id).expect("member");
        let mut child = member.child.take().expect("member running");
        child.kill().expect("kill");
        child.wait().expect("reap");
    }

    /// The leader every member agrees on.
    pub(crate) async fn wait_for_leader(&self) -> u64 {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        loop {
            let mut leaders = Vec::new();
            for m in self.members.values().filter(|m| m.child.is_some()) {
                let one = Client::builder()
                    .endpoints([m.api_addr.clone()])
                    .deadline(Duration::from_millis(500))
                    .build()
                    .expect("client");
                leaders.push(one.cluster().status().await.ok().and_then(|s| s.leader_id));
            }
            if let Some(Some(first)) = leaders.first().copied() {
                if leaders.iter().all(|l| *l == Some(first)) {
                    return first;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no agreed leader within {WAIT_MS_MAX} ms\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of every member's log, for failure messages.
    pub(crate) fn logs(&self) -> String {
        let mut out = String::new();
        for id in self.members.keys() {
            let path = self.dir.path().join(format!("node-{id}.log"));
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            out.push_str(&format!("--- node {id} ---\n{tail}\n"));
        }
        out
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for member in self.members.values_mut() {
            if let Some(mut child) = member.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Creates a VPC with one /16 subnet; returns (vpc id, subnet id).
pub(crate) async fn network(client: &Client) -> (String, String) {
    let vpc = client
        .vpcs()
        .create(CreateVpcRequest {
            project_id: PROJECT.into(),
            name: "net".into(),
            cidr: "10.0.0.0/16".into(),
            ..Default::default()
        })
        .await
        .expect("create VPC");
    let subnet = client
        .subnets()
        .create(CreateSubnetRequest {
            project_id: PROJECT.into(),
            network_id: vpc.id.clone(),
            cidr: "10.0.0.0/16".into(),
            ..Default::default()
        })
        .await
        .expect("create subnet");
    (vpc.id, subnet.id)
}

/// A TCP proxy to `upstream` on a fresh local port. The first connection it
/// accepts is cut (both directions closed) as soon as the upstream sends its
/// first HTTP/2 frame on a stream, i.e. the answer to the first call, which
/// the client therefore never sees. Later connections are forwarded as is.
pub(crate) struct CuttingProxy {
    /// Where clients connect.
    pub(crate) address: String,
    task: tokio::task::JoinHandle<()>,
}

impl CuttingProxy {
    /// Starts the proxy.
    pub(crate) async fn start(upstream: String) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy addr").to_string();
        let task = tokio::spawn(async move {
            let mut first = true;
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let cut = std::mem::replace(&mut first, false);
                tokio::spawn(forward(client, server, cut));
            }
        });
        CuttingProxy { address, task }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(client: TcpStream, server: TcpStream, cut: bool) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let upstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_rx, &mut server_tx).await;
    });
    if cut {
        // Forward whole frames of stream 0 (settings, pings, window updates);
        // stop at the first frame of a stream: the first call's answer.
        let mut header = [0u8; 9];
        loop {
            if server_rx.read_exact(&mut header).await.is_err() {
                break;
            }
            let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let stream =
                u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            if stream != 0 {
                break;
            }
            let mut payload = vec![0u8; len];
            if server_rx.read_exact(&mut payload).await.is_err() {
                break;
            }
            if client_tx.write_all(&header).await.is_err()
                || client_tx.write_all(&payload).await.is_err()
            {
                break;
            }
        }
        upstream.abort();
        let _ = client_tx.shutdown().await;
        return;
    }
    let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
    upstream.abort();
}

/// TCP connections this process has established to `port` on loopback,
/// read from /proc (Linux): the observable cost of a client's calls.
pub(crate) fn established_connections_to(port: u16) -> usize {
    let mut inodes = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(entry.path()) {
            let target = target.to_string_lossy().to_string();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                inodes.insert(inode.to_string());
            }
        }
    }
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let remote_port = fields
                .get(2)
                .and_then(|r| r.split(':').nth(1))
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let established = fields.get(3) == Some(&"01");
            let ours = fields.get(9).is_some_and(|i| inodes.contains(*i));
            remote_port == Some(port) && established && ours
        })
        .count()
}
