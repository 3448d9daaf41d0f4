//! Fault injection. The scheduler cycles through the enabled faults (in a
//! seeded shuffled order, so every fault comes up), holds each for a while,
//! heals, and rests. Every fault records `start` and `stop` events with
//! process `"nemesis"` and checks that it really took effect (the isolated
//! node really was the leader, the other side really elected a new one, the
//! paused process really is stopped, ...).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alcor_proto::api::v1 as pb;
use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::cluster::{self, api_addr, raft_addr, Processes, FIU_SYNC_POINTS};
use crate::history::{Event, History, OpType, Process};
use crate::topology::{ns_name, rules};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Fault {
    /// Cut the leader off from every other node.
    IsolateLeader,
    /// Cut one follower off.
    IsolateFollower,
    /// Split the nodes into two random halves.
    RandomHalves,
    /// Random halves with the leader on the minority side.
    LeaderMinority,
    /// Each node sees its two ring neighbours only (5+ nodes).
    MajoritiesRing,
    /// Two halves that both see one bridge node.
    Bridge,
    /// One direction of the leader's links is cut.
    OneWay,
    /// kill -9 the leader, restart it at the end of the fault.
    KillLeader,
    /// kill -9 a minority of nodes.
    KillMinority,
    /// kill -9 every node.
    KillAll,
    /// SIGSTOP the leader for longer than the election timeout.
    PauseLeader,
    /// SIGSTOP a follower.
    PauseFollower,
    /// Drop packets between nodes at random (iptables statistic).
    Loss,
    /// Delay packets between nodes (NFQUEUE + a userspace delayer).
    Delay,
    /// Remove a follower, wipe its data, re-add it under a new id.
    Membership,
    /// Trigger a snapshot (and log purge) on a node.
    Snapshot,
    /// Move the leadership: a follower campaigns (`Cluster.Campaign`).
    LeaderTransfer,
    /// The leader's fsync/fdatasync calls fail (libfiu): it must fail-stop,
    /// and is restarted from its data dir when the fault ends.
    FsyncError,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 18] = [
        Fault::IsolateLeader,
        Fault::IsolateFollower,
        Fault::RandomHalves,
        Fault::LeaderMinority,
        Fault::MajoritiesRing,
        Fault::Bridge,
        Fault::OneWay,
        Fault::KillLeader,
        Fault::KillMinority,
        Fault::KillAll,
        Fault::PauseLeader,
        Fault::PauseFollower,
        Fault::Loss,
        Fault::Delay,
        Fault::Membership,
        Fault::Snapshot,
        Fault::LeaderTransfer,
        Fault::FsyncError,
    ];

    /// The name in the history and the summary.
    pub fn name(self) -> &'static str {
        match self {
            Fault::IsolateLeader => "isolate-leader",
            Fault::IsolateFollower => "isolate-follower",
            Fault::RandomHalves => "random-halves",
            Fault::LeaderMinority => "leader-minority",
            Fault::MajoritiesRing => "majorities-ring",
            Fault::Bridge => "bridge",
            Fault::OneWay => "one-way",
            Fault::KillLeader => "kill-leader",
            Fault::KillMinority => "kill-minority",
            Fault::KillAll => "kill-all",
            Fault::PauseLeader => "pause-leader",
            Fault::PauseFollower => "pause-follower",
            Fault::Loss => "loss",
            Fault::Delay => "delay",
            Fault::Membership => "membership",
            Fault::Snapshot => "snapshot",
            Fault::LeaderTransfer => "leader-transfer",
            Fault::FsyncError => "fsync-error",
        }
    }

    /// Which kind of fault this is, for combinations.
    pub fn category(self) -> Category {
        match self {
            Fault::KillLeader
            | Fault::KillMinority
            | Fault::KillAll
            | Fault::PauseLeader
            | Fault::PauseFollower => Category::Process,
            Fault::Membership | Fault::Snapshot | Fault::LeaderTransfer | Fault::FsyncError => {
                Category::Admin
            }
            _ => Category::Network,
        }
    }

    /// Whether the fault means something on `nodes` nodes.
    pub fn applies_to(self, nodes: usize) -> bool {
        match self {
            Fault::MajoritiesRing => nodes >= 5,
            Fault::Bridge | Fault::RandomHalves | Fault::LeaderMinority => nodes >= 3,
            _ => nodes >= 2,
        }
    }
}

/// Kinds of faults: a combination is one network and one process fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// iptables / NFQUEUE.
    Network,
    /// Signals to the servers.
    Process,
    /// Cluster API calls and disk faults (never combined).
    Admin,
}

impl Category {
    /// Whether a fault of this kind may run together with one of `other`.
    pub fn pairs_with(self, other: Category) -> bool {
        matches!(
            (self, other),
            (Category::Network, Category::Process) | (Category::Process, Category::Network)
        )
    }
}

/// Per-fault tallies for the summary.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Times started.
    pub injected: u32,
    /// Times its effect was confirmed.
    pub verified: u32,
    /// Why the last unconfirmed one was not confirmed.
    pub last_miss: Option<String>,
}

/// Timing of the nemesis.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Quiet time between faults.
    pub quiet: Duration,
    /// How long a fault stays in place.
    pub hold: Duration,
    /// Pair every other network fault with a process fault (and vice
    /// versa), both in place at once.
    pub combined: bool,
}

/// What a started fault needs to undo and what it found.
struct Active {
    fault: Fault,
    verified: Result<String>,
    /// The membership fault's removed slot.
    removed: Option<usize>,
}

/// The fault injector.
pub struct Nemesis {
    history: Arc<History>,
    processes: Arc<Mutex<Processes>>,
    rng: fastrand::Rng,
    /// Tallies per fault.
    pub tallies: BTreeMap<Fault, Tally>,
    /// The delay fault's delayer processes (one per node namespace).
    delayers: Vec<Child>,
    /// How long faults are held (the delayers run that long).
    hold: Duration,
    /// Whether verification waits for a new leader (off for the second
    /// fault of a combination, where quorum may be gone on purpose).
    elect_checks: bool,
    /// The slot whose fsyncs were made to fail: killed (if it still runs)
    /// and restarted from its data dir when the fault stops.
    fsync_failed: Option<usize>,
}

/// Longest wait for a fault's effect to show (e.g. a new leader).
const EFFECT_WAIT: Duration = Duration::from_secs(10);
/// Longest wait for a member whose fsyncs fail to exit (its API drain is
/// bounded at 2 s; a loaded 5-node cluster needs slack on top).
const FAIL_STOP_WAIT: Duration = Duration::from_secs(30);
/// Deadline of the leader-transfer fault's `Campaign` call (a member that
/// just restarted may still be replaying its log).
/// How long re-adding a wiped member (AddLearner, which waits for it to
/// catch up) may take.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(60);
const CAMPAIGN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the delay fault holds each packet between nodes.
const DELAY: Duration = Duration::from_millis(100);
/// The NFQUEUE number of the delay fault.
const DELAY_QUEUE: u16 = 0;
/// Probability of dropping a packet under the loss fault.
const LOSS_PROBABILITY: f64 = 0.3;

impl Nemesis {
    /// A nemesis over `processes`.
    pub fn new(history: Arc<History>, processes: Arc<Mutex<Processes>>, seed: u64) -> Nemesis {
        Nemesis {
            history,
            processes,
            rng: fastrand::Rng::with_seed(seed),
            tallies: BTreeMap::new(),
            delayers: Vec::new(),
            hold: Duration::from_secs(6),
            elect_checks: true,
            fsync_failed: None,
        }
    }

    fn slots(&self) -> Vec<usize> {
        self.lock().slots().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Processes> {
        self.processes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, f: &'static str, fault: Fault, value: Value) {
        self.history.record(Event {
            process: Process::Nemesis,
            kind: OpType::Info,
            f,
            key: Some(fault.name().to_string()),
            value,
            workload: None,
            node: None,
            error: None,
        });
    }

    /// Runs faults from `faults` until `deadline`, then heals.
    pub async fn run(&mut self, faults: &[Fault], schedule: Schedule, deadline: Instant) {
        self.hold = schedule.hold;
        let mut queue: Vec<Fault> = Vec::new();
        loop {
            tokio::time::sleep(schedule.quiet).await;
            if Instant::now() + schedule.hold >= deadline || faults.is_empty() {
                break;
            }
            if queue.is_empty() {
                queue = faults.to_vec();
                self.rng.shuffle(&mut queue);
            }
            let Some(fault) = queue.pop() else {
                break;
            };
            let active = self.start(fault).await;
            // Nothing is paired with kill-all: with every node down there is
            // no leader for a partner to find, which would count as a fault
            // that could not be injected.
            let partner = if schedule.combined && fault != Fault::KillAll && self.rng.bool() {
                let kinds: Vec<Fault> = faults
                    .iter()
                    .copied()
                    .filter(|f| f.category().pairs_with(fault.category()))
                    .collect();
                (!kinds.is_empty()).then(|| kinds[self.rng.usize(0..kinds.len())])
            } else {
                None
            };
            let second = match partner {
                Some(partner) => {
                    self.elect_checks = false;
                    let second = self.start(partner).await;
                    self.elect_checks = true;
                    Some(second)
                }
                None => None,
            };
            tokio::time::sleep(schedule.hold).await;
            if let Some(second) = second {
                self.stop(second).await;
            }
            self.stop(active).await;
        }
    }

    /// The leader's slot, as the running nodes see it.
    /// Waits up to `EFFECT_WAIT` for one (a previous fault may have just
    /// healed and an election may be under way).
    async fn leader_slot(&self) -> Option<usize> {
        let slots = self.slots();
        let until = Instant::now() + EFFECT_WAIT;
        loop {
            if let Some((id, _, _)) = cluster::leader(&slots).await {
                if let Some(slot) = self.lock().slot_of(id) {
                    return Some(slot);
                }
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The leader's slot (see [`Nemesis::leader_slot`]) and the first other
    /// slot of `shuffled`.
    async fn leader_and_follower(&self, shuffled: &[usize]) -> Result<(usize, usize)> {
        let leader = self
            .leader_slot()
            .await
            .ok_or_else(|| anyhow!("no leader"))?;
        let follower = *shuffled
            .iter()
            .find(|&&s| s != leader)
            .ok_or_else(|| anyhow!("no follower"))?;
        Ok((leader, follower))
    }

    /// The leader's slot and the follower whose log reaches furthest (ties:
    /// the first in `shuffled`). A member that has just restarted may still
    /// be installing a snapshot; its votes are refused and a campaign from it
    /// proves nothing about leadership moving.
    async fn leader_and_caught_up_follower(&self, shuffled: &[usize]) -> Result<(usize, usize)> {
        let leader = self
            .leader_slot()
            .await
            .ok_or_else(|| anyhow!("no leader"))?;
        let followers: Vec<usize> = shuffled.iter().copied().filter(|&s| s != leader).collect();
        let mut best: Option<(usize, u64)> = None;
        for (slot, status) in cluster::statuses(&followers).await {
            let Some(status) = status else { continue };
            let voter = status.members.iter().any(|m| m.id == status.id && m.voter);
            if status.state != "follower" || !voter {
                continue;
            }
            let reach = status.last_log_index.unwrap_or(0);
            if best.is_none_or(|(_, b)| reach > b) {
                best = Some((slot, reach));
            }
        }
        let (follower, _) = best.ok_or_else(|| anyhow!("no voting follower answered"))?;
        Ok((leader, follower))
    }

    /// Waits until some node among `among` claims leadership with a leader
    /// other than `not`; returns its id.
    async fn new_leader_among(&self, among: &[usize], not: Option<u64>) -> Result<String> {
        if !self.elect_checks {
            return Ok("election not checked (second fault of a combination)".to_string());
        }
        let until = Instant::now() + EFFECT_WAIT;
        while Instant::now() < until {
            if let Some((id, _, _)) = cluster::leader(among).await {
                if Some(id) != not && self.lock().slot_of(id).is_some_and(|s| among.contains(&s)) {
                    return Ok(format!("leader now id {id}"));
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!("no new leader among {among:?} within {EFFECT_WAIT:?}")
    }

    /// Cuts every link between `a` and `b` (both directions).
    fn cut(&self, a: &[usize], b: &[usize]) -> Result<()> {
        for &x in a {
            for &y in b {
                rules::drop_from(x, y)?;
                rules::drop_from(y, x)?;
            }
        }
        Ok(())
    }

    /// Checks that `slot` has `expected` INPUT rules.
    fn rules_in_place(&self, slots: &[usize], expected: impl Fn(usize) -> usize) -> Result<()> {
        for &slot in slots {
            let have = rules::count(slot)?;
            if have != expected(slot) {
                bail!("n{slot} has {have} rules, expected {}", expected(slot));
            }
        }
        Ok(())
    }

    async fn start(&mut self, fault: Fault) -> Active {
        let mut removed = None;
        let result = self.inject(fault, &mut removed).await;
        let (verified, detail) = match result {
            Ok((detail, verified)) => (verified, detail),
            Err(error) => (Err(anyhow!("not injected: {error:#}")), json!(null)),
        };
        self.record("start", fault, detail);
        Active {
            fault,
            verified,
            removed,
        }
    }

    /// Injects `fault`; returns what was done and the verification outcome.
    async fn inject(
        &mut self,
        fault: Fault,
        removed: &mut Option<usize>,
    ) -> Result<(Value, Result<String>)> {
        let slots = self.slots();
        let n = slots.len();
        let mut shuffled = slots.clone();
        self.rng.shuffle(&mut shuffled);
        match fault {
            Fault::IsolateLeader | Fault::IsolateFollower => {
                let (leader, follower) = self.leader_and_follower(&shuffled).await?;
                let target = if fault == Fault::IsolateLeader {
                    leader
                } else {
                    follower
                };
                let rest: Vec<usize> = slots.iter().copied().filter(|&s| s != target).collect();
                self.cut(&[target], &rest)?;
                let old = self.lock().id_of(leader);
                let verified = async {
                    self.rules_in_place(&slots, |s| if s == target { rest.len() } else { 1 })?;
                    let elected = self
                        .new_leader_among(&rest, if target == leader { old } else { None })
                        .await?;
                    Ok(format!(
                        "n{target} cut off (leader was n{leader}); {elected}"
                    ))
                }
                .await;
                Ok((json!({"isolated": target, "leader": leader}), verified))
            }
            Fault::RandomHalves | Fault::LeaderMinority => {
                let leader = self.leader_slot().await;
                if fault == Fault::LeaderMinority {
                    let leader = leader.ok_or_else(|| anyhow!("no leader"))?;
                    shuffled.retain(|&s| s != leader);
                    shuffled.insert(0, leader);
                }
                let (minority, majority) = shuffled.split_at(n / 2);
                self.cut(minority, majority)?;
                let old = leader.and_then(|l| self.lock().id_of(l));
                let verified = async {
                    self.rules_in_place(minority, |_| majority.len())?;
                    self.rules_in_place(majority, |_| minority.len())?;
                    let not = if leader.is_some_and(|l| minority.contains(&l)) {
                        old
                    } else {
                        None
                    };
                    let elected = self.new_leader_among(majority, not).await?;
                    Ok(format!(
                        "minority {minority:?}, {elected} in majority {majority:?}"
                    ))
                }
                .await;
                Ok((
                    json!({"minority": minority, "majority": majority, "leader": leader}),
                    verified,
                ))
            }
            Fault::MajoritiesRing => {
                // Ring order = shuffled; each node keeps its two neighbours.
                for (i, &a) in shuffled.iter().enumerate() {
                    for (j, &b) in shuffled.iter().enumerate() {
                        let d = (i + n - j) % n;
                        if a != b && d != 1 && d != n - 1 {
                            rules::drop_from(a, b)?;
                        }
                    }
                }
                let verified = async {
                    self.rules_in_place(&slots, |_| n - 3)?;
                    Ok(format!("ring {shuffled:?}: every node sees 2 of {}", n - 1))
                }
                .await;
                Ok((json!({"ring": shuffled}), verified))
            }
            Fault::Bridge => {
                let half = (n - 1) / 2;
                let (a, rest) = shuffled.split_at(half);
                let (bridge, b) = rest.split_at(1);
                self.cut(a, b)?;
                let verified = async {
                    self.rules_in_place(a, |_| b.len())?;
                    self.rules_in_place(b, |_| a.len())?;
                    self.rules_in_place(bridge, |_| 0)?;
                    let elected = self.new_leader_among(&slots, None).await?;
                    Ok(format!("{a:?} | n{} | {b:?}; {elected}", bridge[0]))
                }
                .await;
                Ok((json!({"a": a, "bridge": bridge, "b": b}), verified))
            }
            Fault::OneWay => {
                let leader = self
                    .leader_slot()
                    .await
                    .ok_or_else(|| anyhow!("no leader"))?;
                let rest: Vec<usize> = slots.iter().copied().filter(|&s| s != leader).collect();
                // Followers stop hearing the leader (its heartbeats are lost,
                // their messages still reach it): they must elect another.
                for &f in &rest {
                    rules::drop_from(f, leader)?;
                }
                let old = self.lock().id_of(leader);
                let verified = async {
                    self.rules_in_place(&slots, |s| usize::from(s != leader))?;
                    let elected = self.new_leader_among(&rest, old).await?;
                    Ok(format!("followers deaf to n{leader}; {elected}"))
                }
                .await;
                Ok((json!({"deaf-to": leader}), verified))
            }
            Fault::KillLeader | Fault::KillMinority | Fault::KillAll => {
                let leader = self.leader_slot().await;
                let victims: Vec<usize> = match fault {
                    Fault::KillLeader => vec![leader.ok_or_else(|| anyhow!("no leader"))?],
                    Fault::KillMinority => shuffled[..(n - 1) / 2].to_vec(),
                    _ => slots.clone(),
                };
                let old = leader.and_then(|l| self.lock().id_of(l));
                {
                    let mut processes = self.lock();
                    for &v in &victims {
                        processes.kill(v)?;
                    }
                }
                let verified = async {
                    for &v in &victims {
                        if cluster::status(v).await.is_some() {
                            bail!("n{v} still answers after kill -9");
                        }
                    }
                    let rest: Vec<usize> = slots
                        .iter()
                        .copied()
                        .filter(|s| !victims.contains(s))
                        .collect();
                    if rest.len() * 2 > n {
                        let not = if leader.is_some_and(|l| victims.contains(&l)) {
                            old
                        } else {
                            None
                        };
                        let elected = self.new_leader_among(&rest, not).await?;
                        return Ok(format!("killed {victims:?}; {elected}"));
                    }
                    Ok(format!("killed {victims:?}"))
                }
                .await;
                Ok((json!({"killed": victims, "leader": leader}), verified))
            }
            Fault::PauseLeader | Fault::PauseFollower => {
                let (leader, follower) = self.leader_and_follower(&shuffled).await?;
                let target = if fault == Fault::PauseLeader {
                    leader
                } else {
                    follower
                };
                self.lock().pause(target, true)?;
                let old = self.lock().id_of(leader);
                let rest: Vec<usize> = slots.iter().copied().filter(|&s| s != target).collect();
                let verified = async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if !self.lock().is_stopped(target) {
                        bail!("n{target} is not in state T");
                    }
                    let not = if target == leader { old } else { None };
                    let elected = self.new_leader_among(&rest, not).await?;
                    Ok(format!(
                        "n{target} stopped (leader was n{leader}); {elected}"
                    ))
                }
                .await;
                Ok((json!({"paused": target, "leader": leader}), verified))
            }
            Fault::Loss => {
                for &s in &slots {
                    for &from in slots.iter().filter(|&&f| f != s) {
                        rules::lossy(s, from, LOSS_PROBABILITY)?;
                    }
                }
                let verified = self
                    .rules_in_place(&slots, |_| n - 1)
                    .map(|()| format!("{LOSS_PROBABILITY} loss on every node"));
                Ok((json!({"probability": LOSS_PROBABILITY}), verified))
            }
            Fault::Delay => {
                let exe = std::env::current_exe()?;
                for &s in &slots {
                    let child = Command::new("ip")
                        .args(["netns", "exec", &ns_name(s)])
                        .arg(&exe)
                        .args(["delay", "--queue", &DELAY_QUEUE.to_string()])
                        .args(["--delay", &format!("{}ms", DELAY.as_millis())])
                        .args(["--for", &format!("{}ms", self.hold.as_millis())])
                        .stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()?;
                    self.delayers.push(child);
                }
                for &s in &slots {
                    for &from in slots.iter().filter(|&&f| f != s) {
                        rules::queue_from(s, from, DELAY_QUEUE)?;
                    }
                }
                // Verified at stop, from the delayers' packet counts.
                Ok((json!({"delay-ms": DELAY.as_millis()}), Ok(String::new())))
            }
            Fault::Membership => {
                let (_, target) = self.leader_and_follower(&shuffled).await?;
                let id = self.lock().id_of(target).ok_or_else(|| anyhow!("no id"))?;
                let response = cluster::on_leader(&slots, |mut c| async move {
                    c.remove_member(pb::RemoveMemberRequest { id })
                        .await
                        .map(|r| r.into_inner())
                })
                .await?;
                *removed = Some(target);
                let verified = if response.members.iter().any(|m| m.id == id) {
                    Err(anyhow!("id {id} still a member after RemoveMember"))
                } else {
                    self.lock()
                        .kill(target)
                        .map(|()| format!("removed id {id} (n{target}) and stopped it"))
                };
                Ok((json!({"removed": id, "slot": target}), verified))
            }
            Fault::LeaderTransfer => {
                let (leader, target) = self.leader_and_caught_up_follower(&shuffled).await?;
                let term_before = cluster::status(leader).await.map(|s| s.term);
                let mut client = alcor_proto::api::v1::cluster_client::ClusterClient::new(
                    cluster::channel(target, CAMPAIGN_TIMEOUT)?,
                );
                let mut request = tonic::Request::new(pb::CampaignRequest {});
                request.set_timeout(CAMPAIGN_TIMEOUT);
                client
                    .campaign(request)
                    .await
                    .map_err(|s| anyhow!("Campaign on n{target}: {}", s.message()))?;
                let target_id = self.lock().id_of(target);
                let verified = async {
                    let until = Instant::now() + EFFECT_WAIT;
                    while Instant::now() < until {
                        if let Some((id, term, _)) = cluster::leader(&slots).await {
                            if term_before.is_some_and(|before| term > before) {
                                let moved = if Some(id) == target_id {
                                    "moved to the campaigner"
                                } else {
                                    "won by another member"
                                };
                                return Ok(format!(
                                    "n{target} campaigned (leader was n{leader}): term {term_before:?} -> {term}, leader id {id}, {moved}"
                                ));
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    bail!("no leader in a term above {term_before:?} within {EFFECT_WAIT:?}")
                }
                .await;
                Ok((
                    json!({"campaigner": target, "leader": leader, "term": term_before}),
                    verified,
                ))
            }
            Fault::FsyncError => {
                let leader = self
                    .leader_slot()
                    .await
                    .ok_or_else(|| anyhow!("no leader"))?;
                let old = self.lock().id_of(leader);
                {
                    let mut processes = self.lock();
                    processes.expect_exit(leader)?;
                    processes.fiu(leader, &format!("enable name={FIU_SYNC_POINTS}"))?;
                }
                let rest: Vec<usize> = slots.iter().copied().filter(|&s| s != leader).collect();
                self.fsync_failed = Some(leader);
                let verified = async {
                    let until = Instant::now() + FAIL_STOP_WAIT;
                    let status = loop {
                        if let Some(status) = self.lock().exited(leader) {
                            break status;
                        }
                        if Instant::now() >= until {
                            let _ = self
                                .lock()
                                .fiu(leader, &format!("disable name={FIU_SYNC_POINTS}"));
                            bail!("n{leader} still runs {FAIL_STOP_WAIT:?} after its fsyncs began to fail");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    };
                    if status.success() {
                        bail!("n{leader} exited cleanly instead of fail-stopping: {status}");
                    }
                    let elected = self.new_leader_among(&rest, old).await?;
                    Ok(format!(
                        "leader n{leader} fail-stopped on failing fsyncs ({status}); {elected}"
                    ))
                }
                .await;
                Ok((json!({"node": leader, "points": FIU_SYNC_POINTS}), verified))
            }
            Fault::Snapshot => {
                let target = shuffled[0];
                let status = cluster::status(target).await;
                let before = status.as_ref().and_then(|s| s.snapshot_index);
                let applied = status.as_ref().and_then(|s| s.applied_index);
                let purged_before = status.as_ref().and_then(|s| s.purged_index);
                let mut client = alcor_proto::api::v1::cluster_client::ClusterClient::new(
                    cluster::channel(target, Duration::from_secs(20))?,
                );
                let response = client
                    .trigger_snapshot(pb::TriggerSnapshotRequest {})
                    .await
                    .map_err(|s| anyhow!("TriggerSnapshot on n{target}: {}", s.message()))?
                    .into_inner();
                let verified = match (before, response.snapshot_index) {
                    (_, None) => Err(anyhow!("no snapshot index after TriggerSnapshot")),
                    // Nothing applied since the last snapshot: the trigger had
                    // nothing to add, the state is snapshotted all the same.
                    (Some(b), Some(a)) if a == b && Some(a) >= applied => {
                        Ok(format!("n{target} snapshot already at applied index {a}"))
                    }
                    (Some(b), Some(a)) if a <= b => Err(anyhow!("snapshot index stayed at {b}")),
                    (_, Some(a)) => Ok(format!(
                        "n{target} snapshot at {a} (was {before:?}), log purged to {:?} (was {purged_before:?})",
                        response.purged_index
                    )),
                };
                Ok((
                    json!({"node": target, "before": before, "after": response.snapshot_index}),
                    verified,
                ))
            }
        }
    }

    /// Heals everything and records the stop event with the verdict.
    async fn stop(&mut self, active: Active) {
        let mut verified = active.verified;
        if active.fault == Fault::Delay {
            verified = self.reap_delayers().await;
        }
        if let Err(error) = self.heal_network() {
            verified = Err(anyhow!("heal: {error:#}"));
        }
        if let Some(slot) = active.removed {
            match self.rejoin(slot).await {
                Ok(id) => {
                    verified =
                        verified.map(|note| format!("{note}; wiped and re-added as voter id {id}"))
                }
                Err(error) => verified = Err(anyhow!("re-add: {error:#}")),
            }
        }
        if let Some(slot) = self.fsync_failed.take() {
            // Its failure points die with the process; a restart from disk
            // is the recovery being tested.
            if let Err(error) = self.lock().kill(slot) {
                verified = Err(anyhow!("stop n{slot} after the fsync errors: {error:#}"));
            }
        }
        if let Err(error) = self.lock().restore_all() {
            verified = Err(anyhow!("restart: {error:#}"));
        }
        let tally = self.tallies.entry(active.fault).or_default();
        tally.injected += 1;
        let value = match &verified {
            Ok(note) => {
                tally.verified += 1;
                json!({"verified": true, "note": note})
            }
            Err(error) => {
                tally.last_miss = Some(format!("{error:#}"));
                json!({"verified": false, "note": format!("{error:#}")})
            }
        };
        self.record("stop", active.fault, value);
    }

    /// Waits for the delayers (they stop by themselves after the hold) and
    /// sums the packets they delayed.
    async fn reap_delayers(&mut self) -> Result<String> {
        let mut total = 0u64;
        let mut problems = Vec::new();
        for mut child in std::mem::take(&mut self.delayers) {
            let until = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.kill();
            match child.wait_with_output() {
                Ok(out) if out.status.success() => {
                    total += String::from_utf8_lossy(&out.stdout)
                        .trim()
                        .parse::<u64>()
                        .unwrap_or(0);
                }
                Ok(out) => problems.push(String::from_utf8_lossy(&out.stderr).trim().to_string()),
                Err(error) => problems.push(error.to_string()),
            }
        }
        if !problems.is_empty() {
            bail!("delayer failed: {}", problems.join("; "));
        }
        if total == 0 {
            bail!("the delayers saw no packet");
        }
        Ok(format!("{total} packets delayed by {DELAY:?}"))
    }

    /// Flushes every namespace's rules.
    pub fn heal_network(&self) -> Result<()> {
        for slot in self.slots() {
            rules::flush(slot)?;
        }
        Ok(())
    }

    /// Wipes `slot`, starts it with `--join` under a new id, adds it as a
    /// learner and promotes it.
    async fn rejoin(&self, slot: usize) -> Result<u64> {
        let slots = self.slots();
        let others: Vec<usize> = slots.iter().copied().filter(|&s| s != slot).collect();
        let members = cluster::on_leader(&others, |mut c| async move {
            c.status(pb::StatusRequest {})
                .await
                .map(|r| r.into_inner().members)
        })
        .await?;
        let id = {
            let mut processes = self.lock();
            let id = processes.wipe_for_rejoin(slot, &members)?;
            processes.spawn(slot)?;
            id
        };
        let (raft, api) = (raft_addr(slot), api_addr(slot));
        // AddLearner returns once the wiped member has caught up, which can
        // mean a whole snapshot: allow it longer than other admin calls.
        cluster::on_leader_within(&others, REJOIN_TIMEOUT, |mut c| {
            let (raft, api) = (raft.clone(), api.clone());
            async move {
                c.add_learner(pb::AddLearnerRequest {
                    id,
                    raft_addr: raft,
                    api_addr: api,
                })
                .await
                .map(|r| r.into_inner())
            }
        })
        .await?;
        let response = cluster::on_leader(&others, |mut c| async move {
            c.promote_member(pb::PromoteMemberRequest { id })
                .await
                .map(|r| r.into_inner())
        })
        .await?;
        if !response.members.iter().any(|m| m.id == id && m.voter) {
            bail!("id {id} is not a voter after PromoteMember");
        }
        Ok(id)
    }
}

impl Drop for Nemesis {
    fn drop(&mut self) {
        for child in &mut self.delayers {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
