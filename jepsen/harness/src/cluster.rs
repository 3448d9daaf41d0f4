//! The `alcor server` processes, one per node namespace (`ip netns exec`
//! execs in place, so the child's pid is the server's): start, kill -9,
//! SIGSTOP/SIGCONT, wipe, and the `Cluster` API calls the nemesis and the
//! final phase need (status, leader, membership, snapshot). Every child is
//! killed on drop.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::cluster_client::ClusterClient;
use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tonic::transport::Channel;

use crate::pki::{self, Pki};
use crate::topology::{node_addr, ns_name};

/// Port of every node's Raft service (each node has its own address).
pub const RAFT_PORT: u16 = 7000;
/// Port of every node's client API.
pub const API_PORT: u16 = 8000;
/// Deadline of one status call.
const STATUS_TIMEOUT: Duration = Duration::from_millis(1_000);
/// Deadline of a membership change or snapshot call.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(20);

/// `host:port` of node `slot`'s API.
pub fn api_addr(slot: usize) -> String {
    format!("{}:{API_PORT}", node_addr(slot))
}

/// `host:port` of node `slot`'s Raft service.
pub fn raft_addr(slot: usize) -> String {
    format!("{}:{RAFT_PORT}", node_addr(slot))
}

/// A lazily connecting channel to node `slot`'s API: every worker makes its
/// own, so one lost connection is one client's.
pub fn channel(slot: usize, timeout: Duration) -> Result<Channel> {
    Ok(pki::endpoint(&api_addr(slot))?
        .connect_timeout(Duration::from_millis(500))
        .timeout(timeout)
        .connect_lazy())
}

/// One node: a namespace, an address, and the server running there (if any).
#[derive(Debug)]
struct Slot {
    /// Raft id of the member currently living in this slot (changes when the
    /// membership nemesis wipes and re-adds it).
    id: u64,
    /// Started with `--join`.
    join: bool,
    /// Its `--initial-cluster`.
    initial_cluster: String,
    child: Option<Child>,
    paused: bool,
    /// A nemesis expects this server to exit by itself (the fsync-error
    /// fault): `reap_crashed` leaves it to the nemesis.
    expect_exit: bool,
}

/// The server processes of one run.
#[derive(Debug)]
pub struct Processes {
    bin: PathBuf,
    run_dir: PathBuf,
    data_root: PathBuf,
    server_args: Vec<String>,
    slots: Vec<Slot>,
    next_id: u64,
    /// Servers that exited without the harness killing them.
    pub crashed: Vec<String>,
    /// Base path of libfiu's control pipes when the servers run under
    /// `fiu-run -x` (the fsync-error fault), under the run's data root so
    /// that they go with it; `None`: no libfiu.
    fiu_ctrl: Option<PathBuf>,
    /// Where member certificates come from; `None`: `--insecure` members.
    pki: Option<Pki>,
}

/// libfiu's failure points for `fsync` and `fdatasync`.
pub const FIU_SYNC_POINTS: &str = "posix/io/sync/*";

impl Processes {
    /// Starts one server per slot with ids 1..=n, all in one initial cluster.
    ///
    /// With `fiu`, every server runs under libfiu's `fiu-run -x` (POSIX
    /// failure points, remote control through pipes in `data_root`), which
    /// the fsync-error fault needs.
    pub fn start(
        bin: &Path,
        nodes: usize,
        run_dir: &Path,
        data_root: &Path,
        server_args: Vec<String>,
        fiu: bool,
        pki: Option<Pki>,
    ) -> Result<Processes> {
        let initial_cluster = (1..=nodes)
            .map(|slot| format!("{slot}={}/{}", raft_addr(slot), api_addr(slot)))
            .collect::<Vec<_>>()
            .join(",");
        let slots = (1..=nodes)
            .map(|slot| Slot {
                id: slot as u64,
                join: false,
                initial_cluster: initial_cluster.clone(),
                child: None,
                paused: false,
                expect_exit: false,
            })
            .collect();
        let mut processes = Processes {
            bin: bin.to_path_buf(),
            run_dir: run_dir.to_path_buf(),
            data_root: data_root.to_path_buf(),
            server_args,
            slots,
            next_id: nodes as u64 + 1,
            crashed: Vec::new(),
            fiu_ctrl: fiu.then(|| data_root.join("fiu-ctrl")),
            pki,
        };
        for slot in 1..=nodes {
            processes.spawn(slot)?;
        }
        Ok(processes)
    }

    /// Slots, 1-based.
    pub fn slots(&self) -> std::ops::RangeInclusive<usize> {
        1..=self.slots.len()
    }

    fn slot(&mut self, slot: usize) -> Result<&mut Slot> {
        self.slots
            .get_mut(slot.wrapping_sub(1))
            .ok_or_else(|| anyhow!("no slot {slot}"))
    }

    /// The Raft id living in `slot`.
    pub fn id_of(&self, slot: usize) -> Option<u64> {
        self.slots.get(slot.wrapping_sub(1)).map(|s| s.id)
    }

    /// The slot of Raft id `id`.
    pub fn slot_of(&self, id: u64) -> Option<usize> {
        self.slots.iter().position(|s| s.id == id).map(|i| i + 1)
    }

    fn data_dir(&self, slot: usize) -> PathBuf {
        self.data_root.join(format!("n{slot}"))
    }

    /// The log file of `slot` (appended across restarts).
    pub fn log_path(&self, slot: usize) -> PathBuf {
        self.run_dir.join(format!("n{slot}.log"))
    }

    /// Whether `slot` has a running (possibly paused) server.
    pub fn running(&self, slot: usize) -> bool {
        self.slots
            .get(slot.wrapping_sub(1))
            .is_some_and(|s| s.child.is_some())
    }

    /// Starts `slot`'s server from its data dir.
    pub fn spawn(&mut self, slot: usize) -> Result<()> {
        let data_dir = self.data_dir(slot);
        let log_path = self.log_path(slot);
        let bin = self.bin.clone();
        let server_args = self.server_args.clone();
        let fiu_ctrl = self.fiu_ctrl.clone();
        // TLS flags, or --insecure; a member's certificate names its id and
        // serves its slot's address.
        let tls_args: Vec<std::ffi::OsString> = match (&self.pki, self.id_of(slot)) {
            (Some(pki), Some(id)) => {
                let issued = pki.issue(&format!("peer/{id}"), &[node_addr(slot)])?;
                vec![
                    "--tls-cert".into(),
                    issued.cert.into(),
                    "--tls-key".into(),
                    issued.key.into(),
                    "--tls-ca".into(),
                    pki.ca().into(),
                ]
            }
            _ => vec!["--insecure".into()],
        };
        let s = self.slot(slot)?;
        if s.child.is_some() {
            bail!("n{slot} is already running");
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        writeln!(
            log,
            "=== harness: starting id {} (join: {}) ===",
            s.id, s.join
        )?;
        let stderr: File = log.try_clone()?;
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &ns_name(slot)]);
        if let Some(ctrl) = &fiu_ctrl {
            // fiu-run execs the server, so the child's pid stays the server's.
            command.args(["fiu-run", "-x", "-f"]).arg(ctrl);
        }
        command
            .arg(&bin)
            .arg("server")
            .args(&tls_args)
            .args(["--id", &s.id.to_string()])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--raft-addr", &raft_addr(slot)])
            .args(["--api-addr", &api_addr(slot)])
            .args(["--initial-cluster", &s.initial_cluster])
            .args(&server_args);
        if s.join {
            command.arg("--join");
        }
        let child = command
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .context("spawn alcor server")?;
        s.child = Some(child);
        s.paused = false;
        s.expect_exit = false;
        Ok(())
    }

    /// The pid of `slot`'s server, if it runs.
    pub fn pid(&self, slot: usize) -> Option<u32> {
        self.slots
            .get(slot.wrapping_sub(1))
            .and_then(|s| s.child.as_ref())
            .map(Child::id)
    }

    /// Marks `slot`'s server as expected to exit by itself (see
    /// [`Processes::exited`]).
    pub fn expect_exit(&mut self, slot: usize) -> Result<()> {
        self.slot(slot)?.expect_exit = true;
        Ok(())
    }

    /// If `slot`'s server has exited, reaps it and returns how.
    pub fn exited(&mut self, slot: usize) -> Option<std::process::ExitStatus> {
        let s = self.slot(slot).ok()?;
        let status = s.child.as_mut()?.try_wait().ok()??;
        s.child = None;
        Some(status)
    }

    /// Runs a libfiu remote-control `command` (e.g. `enable name=...`) in
    /// `slot`'s server.
    pub fn fiu(&self, slot: usize, command: &str) -> Result<()> {
        let ctrl = self
            .fiu_ctrl
            .as_ref()
            .ok_or_else(|| anyhow!("servers do not run under fiu-run (is fiu-utils installed?)"))?;
        let pid = self
            .pid(slot)
            .ok_or_else(|| anyhow!("n{slot} is not running"))?;
        let out = Command::new("fiu-ctrl")
            .arg("-f")
            .arg(ctrl)
            .args(["-c", command, &pid.to_string()])
            .output()
            .context("run fiu-ctrl")?;
        if !out.status.success() {
            bail!(
                "fiu-ctrl {command:?} on n{slot}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// SIGKILLs `slot`'s server and reaps it.
    pub fn kill(&mut self, slot: usize) -> Result<()> {
        let s = self.slot(slot)?;
        let Some(mut child) = s.child.take() else {
            return Ok(());
        };
        s.paused = false;
        child.kill().context("kill")?;
        child.wait().context("reap")?;
        Ok(())
    }

    /// SIGSTOPs (`true`) or SIGCONTs (`false`) `slot`'s server.
    pub fn pause(&mut self, slot: usize, stop: bool) -> Result<()> {
        let s = self.slot(slot)?;
        let Some(child) = &s.child else {
            bail!("n{slot} is not running");
        };
        let pid = Pid::from_raw(i32::try_from(child.id())?);
        kill(
            pid,
            if stop {
                Signal::SIGSTOP
            } else {
                Signal::SIGCONT
            },
        )?;
        s.paused = stop;
        Ok(())
    }

    /// Whether the kernel reports `slot`'s server as stopped (state `T`).
    pub fn is_stopped(&self, slot: usize) -> bool {
        let Some(child) = self
            .slots
            .get(slot.wrapping_sub(1))
            .and_then(|s| s.child.as_ref())
        else {
            return false;
        };
        std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
            .ok()
            .and_then(|stat| {
                // "pid (comm) S ...": the state follows the last ')'.
                let rest = stat.rsplit_once(')')?.1;
                rest.split_whitespace().next().map(|s| s == "T" || s == "t")
            })
            .unwrap_or(false)
    }

    /// Resumes every paused server and starts every stopped one.
    pub fn restore_all(&mut self) -> Result<()> {
        for slot in self.slots() {
            let paused = self.slots[slot - 1].paused;
            if paused {
                self.pause(slot, false)?;
            }
            if !self.running(slot) {
                self.spawn(slot)?;
            }
        }
        Ok(())
    }

    /// Notes servers that exited on their own (a crash or a panic).
    pub fn reap_crashed(&mut self) {
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.expect_exit {
                continue;
            }
            if let Some(child) = &mut s.child {
                if let Ok(Some(status)) = child.try_wait() {
                    self.crashed
                        .push(format!("n{} (id {}) exited: {status}", i + 1, s.id));
                    s.child = None;
                }
            }
        }
    }

    /// Kills `slot`'s server, deletes its data, and gets it ready to join
    /// under a fresh id (ids are never reused); returns the new id.
    pub fn wipe_for_rejoin(&mut self, slot: usize, members: &[pb::Member]) -> Result<u64> {
        self.kill(slot)?;
        let data_dir = self.data_dir(slot);
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir)
                .with_context(|| format!("wipe {}", data_dir.display()))?;
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut initial: Vec<String> = members
            .iter()
            .map(|m| format!("{}={}/{}", m.id, m.raft_addr, m.api_addr))
            .collect();
        initial.push(format!("{id}={}/{}", raft_addr(slot), api_addr(slot)));
        let s = self.slot(slot)?;
        s.id = id;
        s.join = true;
        s.initial_cluster = initial.join(",");
        Ok(id)
    }

    /// Kills every server.
    pub fn kill_all(&mut self) {
        for slot in self.slots() {
            let _ = self.kill(slot);
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// `slot`'s `Cluster.Status`, if it answers within a second.
pub async fn status(slot: usize) -> Option<pb::StatusResponse> {
    let channel = channel(slot, STATUS_TIMEOUT).ok()?;
    let mut client = ClusterClient::new(channel);
    let mut request = tonic::Request::new(pb::StatusRequest {});
    request.set_timeout(STATUS_TIMEOUT);
    let call = client.status(request);
    match tokio::time::timeout(STATUS_TIMEOUT, call).await {
        Ok(Ok(response)) => Some(response.into_inner()),
        _ => None,
    }
}

/// Every slot's status (None: no answer).
pub async fn statuses(slots: &[usize]) -> Vec<(usize, Option<pb::StatusResponse>)> {
    let calls = slots
        .iter()
        .map(|&slot| async move { (slot, status(slot).await) });
    futures_join_all(calls).await
}

/// Runs futures concurrently and collects their outputs in order.
pub async fn futures_join_all<F, T>(futures: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(value) = handle.await {
            out.push(value);
        }
    }
    out
}

/// The leader as the nodes in `slots` see it: the Raft id that a node in
/// state `leader` claims for itself, with the highest term. Returns
/// (leader id, term, its status).
pub async fn leader(slots: &[usize]) -> Option<(u64, u64, pb::StatusResponse)> {
    statuses(slots)
        .await
        .into_iter()
        .filter_map(|(_, s)| s)
        .filter(|s| s.state == "leader")
        .max_by_key(|s| s.term)
        .map(|s| (s.id, s.term, s))
}

/// Calls `f` on the leader's `Cluster` client, following NOT_LEADER hints
/// by trying each slot; gives up after `ADMIN_TIMEOUT`.
pub async fn on_leader<T, F, Fut>(slots: &[usize], f: F) -> Result<T>
where
    F: Fn(ClusterClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    on_leader_within(slots, ADMIN_TIMEOUT, f).await
}

/// [`on_leader`] with its own time limit (for calls that wait, such as
/// AddLearner waiting for the learner to catch up).
pub async fn on_leader_within<T, F, Fut>(slots: &[usize], limit: Duration, f: F) -> Result<T>
where
    F: Fn(ClusterClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = anyhow!("no node answered");
    while tokio::time::Instant::now() < deadline {
        for &slot in slots {
            let Ok(channel) = channel(slot, limit) else {
                continue;
            };
            match f(ClusterClient::new(channel)).await {
                Ok(value) => return Ok(value),
                Err(status) => last = anyhow!("n{slot}: {}", status.message()),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(last)
}
