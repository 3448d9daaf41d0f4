//! A cluster of `alcor server` OS processes. Every child is killed when the
//! `ProcessCluster` is dropped, so a failing test leaks no processes; every
//! wait is bounded by `WAIT_MS_MAX`.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::cluster_client::ClusterClient;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use tonic::transport::Channel;

/// How long any wait in these tests may take.
pub(crate) const WAIT_MS_MAX: u64 = 30_000;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_alcor");

struct Member {
    raft_addr: String,
    api_addr: String,
    /// This member's `--initial-cluster` (a joining member's lists itself too).
    initial_cluster: String,
    /// Started with `--join`.
    join: bool,
    /// Flags given to this member only.
    own_args: Vec<String>,
    child: Option<Child>,
}

pub(crate) struct ProcessCluster {
    members: BTreeMap<u64, Member>,
    /// Flags given to every `alcor server` of this cluster.
    server_args: Vec<String>,
    dir: tempfile::TempDir,
}

/// Lowest and one past the highest port `free_port` hands out: below the
/// kernel's ephemeral range (32768..), so outgoing connections never take a
/// port that a member has been given but not bound yet.
const TEST_PORT_RANGE: std::ops::Range<u16> = 12_000..32_000;

/// A port that is free now and that no other caller in this test process
/// has been given: ports come from a process-wide cursor, each one checked
/// by binding it, so two members of one cluster (or of two clusters started
/// by tests running in parallel) never receive the same port.
pub(crate) fn free_port() -> u16 {
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

impl ProcessCluster {
    /// Spawns `n` members with distinct ports and data dirs.
    pub(crate) fn start(n: u64) -> ProcessCluster {
        ProcessCluster::start_with(n, &[])
    }

    /// Spawns `n` members, each with `server_args` added to its command line.
    pub(crate) fn start_with(n: u64, server_args: &[&str]) -> ProcessCluster {
        ProcessCluster::start_with_api_host(n, server_args, "127.0.0.1")
    }

    /// Spawns `n` members whose API (and push) listeners bind `api_host`
    /// (e.g. a bridge address that agents in other network namespaces reach).
    pub(crate) fn start_with_api_host(
        n: u64,
        server_args: &[&str],
        api_host: &str,
    ) -> ProcessCluster {
        let mut cluster = ProcessCluster::prepare_with_api_host(n, server_args, api_host);
        for id in 1..=n {
            cluster.spawn(id);
        }
        cluster
    }

    /// `n` members with distinct ports and data dirs, none started: a test
    /// may fill their data dirs first (`data_dir`), then `spawn` each.
    pub(crate) fn prepare(n: u64, server_args: &[&str]) -> ProcessCluster {
        ProcessCluster::prepare_with_api_host(n, server_args, "127.0.0.1")
    }

    /// [`ProcessCluster::prepare`] with the API listeners on `api_host`.
    fn prepare_with_api_host(n: u64, server_args: &[&str], api_host: &str) -> ProcessCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut members: BTreeMap<u64, Member> = (1..=n)
            .map(|id| {
                let member = Member {
                    raft_addr: format!("127.0.0.1:{}", free_port()),
                    api_addr: format!("{api_host}:{}", free_port()),
                    initial_cluster: String::new(),
                    join: false,
                    own_args: Vec::new(),
                    child: None,
                };
                (id, member)
            })
            .collect();
        let initial_cluster = initial_cluster_of(&members);
        for member in members.values_mut() {
            member.initial_cluster = initial_cluster.clone();
        }
        ProcessCluster {
            members,
            server_args: server_args.iter().map(|a| a.to_string()).collect(),
            dir,
        }
    }

    /// Member `id`'s data directory.
    pub(crate) fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node-{id}"))
    }

    /// The `--initial-cluster` of the first members.
    pub(crate) fn initial_cluster(&self) -> String {
        initial_cluster_of(&self.members)
    }

    /// Spawns `n` members; member `id` also gets `own_args(id)` (after the
    /// common `server_args`), on every start.
    pub(crate) fn start_each(
        n: u64,
        server_args: &[&str],
        own_args: impl Fn(u64) -> Vec<String>,
    ) -> ProcessCluster {
        let mut cluster = ProcessCluster::start_with(0, server_args);
        let mut members: BTreeMap<u64, Member> = (1..=n)
            .map(|id| {
                let member = Member {
                    raft_addr: format!("127.0.0.1:{}", free_port()),
                    api_addr: format!("127.0.0.1:{}", free_port()),
                    initial_cluster: String::new(),
                    join: false,
                    own_args: own_args(id),
                    child: None,
                };
                (id, member)
            })
            .collect();
        let initial_cluster = initial_cluster_of(&members);
        for member in members.values_mut() {
            member.initial_cluster = initial_cluster.clone();
        }
        cluster.members = members;
        for id in 1..=n {
            cluster.spawn(id);
        }
        cluster
    }

    /// Starts a new member `id` with `alcor server --join`; its
    /// `--initial-cluster` is the current members plus itself. It is not a
    /// member until the leader adds it.
    pub(crate) fn spawn_joining(&mut self, id: u64) {
        assert!(!self.members.contains_key(&id), "member {id} exists");
        self.members.insert(
            id,
            Member {
                raft_addr: format!("127.0.0.1:{}", free_port()),
                api_addr: format!("127.0.0.1:{}", free_port()),
                initial_cluster: String::new(),
                join: true,
                own_args: Vec::new(),
                child: None,
            },
        );
        let initial_cluster = initial_cluster_of(&self.members);
        self.members.get_mut(&id).expect("member").initial_cluster = initial_cluster;
        self.spawn(id);
    }

    /// Starts member `id` (again) from its data dir.
    pub(crate) fn spawn(&mut self, id: u64) {
        let data_dir = self.data_dir(id);
        let log = self.log_path(id);
        let member = self.members.get_mut(&id).expect("member");
        assert!(member.child.is_none(), "member {id} already running");
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        // Plain text unless the test gives TLS files.
        let tls = self
            .server_args
            .iter()
            .chain(&member.own_args)
            .any(|a| a == "--tls-cert");
        let mut command = Command::new(BIN);
        command.arg("server");
        if !tls {
            command.arg("--insecure");
        }
        command
            .args(["--id", &id.to_string()])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--raft-addr", &member.raft_addr])
            .args(["--api-addr", &member.api_addr])
            .args(["--initial-cluster", &member.initial_cluster])
            .args(&self.server_args)
            .args(&member.own_args);
        if member.join {
            command.arg("--join");
        }
        let child = command
            .env("ALCOR_LOG", "info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn alcor server");
        member.child = Some(child);
    }

    /// SIGKILLs member `id`.
    pub(crate) fn kill(&mut self, id: u64) {
        let member = self.members.get_mut(&id).expect("member");
        let mut child = member.child.take().expect("member running");
        child.kill().expect("kill");
        child.wait().expect("reap");
    }

    fn log_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node-{id}.log"))
    }

    pub(crate) fn ids(&self) -> Vec<u64> {
        self.members.keys().copied().collect()
    }

    pub(crate) fn api_addr(&self, id: u64) -> String {
        self.members[&id].api_addr.clone()
    }

    pub(crate) fn raft_addr(&self, id: u64) -> String {
        self.members[&id].raft_addr.clone()
    }

    pub(crate) async fn cluster_client(&self, id: u64) -> Option<ClusterClient<Channel>> {
        ClusterClient::connect(format!("http://{}", self.api_addr(id)))
            .await
            .ok()
    }

    /// Member `id`'s `Cluster.Status`, if it answers.
    pub(crate) async fn status(&self, id: u64) -> Option<pb::StatusResponse> {
        let mut client = self.cluster_client(id).await?;
        let mut request = tonic::Request::new(pb::StatusRequest {});
        request.set_timeout(Duration::from_millis(2_000));
        Some(client.status(request).await.ok()?.into_inner())
    }

    /// The voters member `id` reports.
    pub(crate) async fn voters(&self, id: u64) -> Option<Vec<u64>> {
        let status = self.status(id).await?;
        Some(
            status
                .members
                .iter()
                .filter(|m| m.voter)
                .map(|m| m.id)
                .collect(),
        )
    }

    /// Waits until every member in `among` has applied the same index,
    /// at least `at_least`, and reports the same leader; returns that index.
    pub(crate) async fn quiescent(&self, among: &[u64], at_least: u64) -> u64 {
        self.eventually("members to agree on leader and applied index", || async {
            let mut seen = Vec::new();
            for id in among {
                let s = self.status(*id).await?;
                seen.push((s.leader_id?, s.applied_index?));
            }
            let first = *seen.first()?;
            (first.1 >= at_least && seen.iter().all(|s| *s == first)).then_some(first.1)
        })
        .await
    }
    pub(crate) async fn client(&self, id: u64) -> Option<OrchestratorClient<Channel>> {
        OrchestratorClient::connect(format!("http://{}", self.api_addr(id)))
            .await
            .ok()
    }

    /// Member `id`'s whole log (its stderr, every start appended).
    pub(crate) fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    /// The last lines of every member's log, for failure messages.
    pub(crate) fn logs(&self) -> String {
        let mut out = String::new();
        for id in self.members.keys() {
            let text = std::fs::read_to_string(self.log_path(*id)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            out.push_str(&format!("--- node {id} ---\n{tail}\n"));
        }
        out
    }

    /// `alcor ctl --endpoints <addrs> -o json <args>`; the parsed output on
    /// success.
    pub(crate) fn ctl_json(&self, endpoints: &[u64], args: &[&str]) -> Option<serde_json::Value> {
        self.ctl_json_within(endpoints, 2_000, args)
    }

    /// `ctl_json` with a `--timeout-ms` of `timeout_ms`.
    pub(crate) fn ctl_json_within(
        &self,
        endpoints: &[u64],
        timeout_ms: u64,
        args: &[&str],
    ) -> Option<serde_json::Value> {
        let timeout_ms = timeout_ms.to_string();
        let endpoints: Vec<String> = endpoints.iter().map(|id| self.api_addr(*id)).collect();
        let output = Command::new(BIN)
            .arg("ctl")
            .args([
                "--endpoints",
                &endpoints.join(","),
                "-o",
                "json",
                "--timeout-ms",
                &timeout_ms,
            ])
            .args(args)
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// Waits until every running member named in `among` reports the same
    /// leader, itself among `among`.
    pub(crate) async fn leader(&self, among: &[u64]) -> u64 {
        self.eventually("an agreed leader", || async {
            let mut leaders = Vec::new();
            for id in among {
                let status = self.ctl_json(&[*id], &["cluster", "status"])?;
                leaders.push(status["leader_id"].as_u64()?);
            }
            let first = *leaders.first()?;
            (leaders.iter().all(|l| *l == first) && among.contains(&first)).then_some(first)
        })
        .await
    }

    /// Polls `probe` every 100 ms until it returns `Some`, for at most
    /// `WAIT_MS_MAX`; fails with the members' logs.
    pub(crate) async fn eventually<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {WAIT_MS_MAX} ms waiting for {what}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The `--initial-cluster` value naming `members`.
fn initial_cluster_of(members: &BTreeMap<u64, Member>) -> String {
    members
        .iter()
        .map(|(id, m)| format!("{id}={}/{}", m.raft_addr, m.api_addr))
        .collect::<Vec<_>>()
        .join(",")
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
