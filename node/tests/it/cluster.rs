//! A cluster of `alcor server` OS processes. Every child is killed when the
//! `ProcessCluster` is dropped, so a failing test leaks no processes; every
//! wait is bounded by `WAIT_MS_MAX`.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use tonic::transport::Channel;

/// How long any wait in these tests may take.
pub(crate) const WAIT_MS_MAX: u64 = 30_000;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_alcor");

struct Member {
    raft_addr: String,
    api_addr: String,
    child: Option<Child>,
}

pub(crate) struct ProcessCluster {
    members: BTreeMap<u64, Member>,
    initial_cluster: String,
    dir: tempfile::TempDir,
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

impl ProcessCluster {
    /// Spawns `n` members with distinct ports and data dirs.
    pub(crate) fn start(n: u64) -> ProcessCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let members: BTreeMap<u64, Member> = (1..=n)
            .map(|id| {
                let member = Member {
                    raft_addr: format!("127.0.0.1:{}", free_port()),
                    api_addr: format!("127.0.0.1:{}", free_port()),
                    child: None,
                };
                (id, member)
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|(id, m)| format!("{id}={}/{}", m.raft_addr, m.api_addr))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = ProcessCluster {
            members,
            initial_cluster,
            dir,
        };
        for id in 1..=n {
            cluster.spawn(id);
        }
        cluster
    }

    /// Starts member `id` (again) from its data dir.
    pub(crate) fn spawn(&mut self, id: u64) {
        let data_dir = self.dir.path().join(format!("node-{id}"));
        let log = self.log_path(id);
        let member = self.members.get_mut(&id).expect("member");
        assert!(member.child.is_none(), "member {id} already running");
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(BIN)
            .arg("server")
            .args(["--id", &id.to_string()])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--raft-addr", &member.raft_addr])
            .args(["--api-addr", &member.api_addr])
            .args(["--initial-cluster", &self.initial_cluster])
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

    pub(crate) async fn client(&self, id: u64) -> Option<OrchestratorClient<Channel>> {
        OrchestratorClient::connect(format!("http://{}", self.api_addr(id)))
            .await
            .ok()
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
        let endpoints: Vec<String> = endpoints.iter().map(|id| self.api_addr(*id)).collect();
        let output = Command::new(BIN)
            .arg("ctl")
            .args([
                "--endpoints",
                &endpoints.join(","),
                "-o",
                "json",
                "--timeout-ms",
                "2000",
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
