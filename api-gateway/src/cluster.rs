//! `alcor.api.v1.Cluster`: the answering node's view of Raft and the
//! operator's levers on it.
//!
//! - `Status` is served locally from `RaftNode::metrics`, without quorum, so
//!   it works on a node that is cut off (it is how operators find out).
//! - Membership changes (`AddLearner`, `PromoteMember`, `ChangeMembership`,
//!   `RemoveMember`) run on the leader only. Any other node does not forward
//!   them: it answers FAILED_PRECONDITION with reason `NOT_LEADER` and the
//!   leader it knows of in the `x-alcor-leader-id` / `x-alcor-leader-api`
//!   headers, so an operator always knows which node made the change.
//! - `SaveSnapshot` streams a backup file (`alcor_raft_core::backup`) of
//!   the answering node's state after a linearizable read point, in
//!   `BACKUP_CHUNK_BYTES_MAX` pieces.
//! - `TriggerSnapshot` acts on the answering node (snapshots are local), and
//!   so does `Campaign` (an election started there moves the leadership).
//! - `HostDigest` is a read like any other: linearizable unless `stale`,
//!   served by any node; it adds the latest digest report of the host's
//!   agent on the answering node, from the [`AckSource`].
//! - `AckedRevisions` answers the host acks recorded on this node, from the
//!   [`AckSource`] the node wires in (none: an empty table).
//! - `Barrier` waits until every host it covers has acked a revision on
//!   some member. The hosts covered are the request's, or else every host
//!   with a bound port when the call starts (`State::hosts_with_ports`,
//!   read linearizably): a host whose last port left before the call is
//!   not waited for. An agent acks only to the node it is connected to, so
//!   the serving node polls every member's `AckedRevisions` in parallel
//!   (its own table directly) and takes each host's highest ack, until all
//!   are at least the revision or the deadline passes (DEADLINE_EXCEEDED,
//!   reason `BARRIER_TIMEOUT`, naming the pending hosts and the members
//!   that never answered). Acks learnt in one round count in every later
//!   round, so a member that is slow to answer the last, short round does
//!   not make its hosts pending again. Clients to the members are kept
//!   across calls.
//!
//! Every call is bounded by the client's deadline (`grpc-timeout`), or by
//! `REQUEST_TIMEOUT_MS_MAX` without one. A membership change that runs out
//! of time may still commit: DEADLINE_EXCEEDED, flagged indeterminate.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::cluster_client::ClusterClient;
use alcor_proto::api::v1::cluster_server::{Cluster, ClusterServer};
use alcor_proto::identity::{Denial, Principal, AUTHORIZATION_HEADER};
use alcor_raft_core::{AdminError, Node, NodeMetrics, RaftNode, ReadError};
use alcor_state_machine::goal_digest;
use tokio::time::Instant;
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

use crate::deadline;
use crate::error::{to_status, ApiError, INDETERMINATE_HEADER, REASON_HEADER};
use crate::limits::REQUEST_TIMEOUT_MS_MAX;

use alcor_proto::reason::Reason;
pub use alcor_proto::{LEADER_API_HEADER, LEADER_ID_HEADER};

/// Elections `Campaign` starts at most.
const CAMPAIGN_ATTEMPTS_MAX: u32 = 4;
/// How long `Campaign` waits for one election to make this member leader.
const CAMPAIGN_ROUND_MS: u64 = 1_500;
/// `Campaign`'s budget when the client sets no deadline.
const CAMPAIGN_MS_DEFAULT: u64 = 6_000;

/// How often `Barrier` polls the members' acks.
const BARRIER_POLL_MS: u64 = 20;
/// Longest wait for one member's `AckedRevisions` (connect or call).
const ACKS_CALL_MS_MAX: u64 = 2_000;
/// Hosts one `Barrier` request may name.
pub const BARRIER_HOSTS_MAX: usize = 10_000;
/// Longest host name `Barrier` accepts.
const HOST_NAME_BYTES_MAX: usize = 255;

/// Where a node's host acks and digest reports come from (the host push
/// service, which this crate must not depend on).
pub trait AckSource: Send + Sync + 'static {
    /// Every host's last revision acked to this node.
    fn acked(&self) -> BTreeMap<String, u64>;

    /// The latest digest report of `host`'s agent on this node, if any.
    fn agent_report(&self, _host: &str) -> Option<pb::AgentDigestReport> {
        None
    }
}

/// Serves cluster status and administration for one node.
#[derive(Clone)]
pub struct ClusterService {
    node: Arc<RaftNode>,
    acks: Option<Arc<dyn AckSource>>,
    /// One lazily connected client per member's API address, kept across
    /// `Barrier` calls (so a barrier does not pay for connecting), pruned to
    /// the current members.
    peers: Arc<Mutex<BTreeMap<String, ClusterClient<Channel>>>>,
}

impl fmt::Debug for ClusterService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterService")
            .field("node", &self.node)
            .field("acks", &self.acks.is_some())
            .finish()
    }
}

impl ClusterService {
    /// A service reporting on `node`, with no host acks of its own.
    pub fn new(node: Arc<RaftNode>) -> ClusterService {
        ClusterService {
            node,
            acks: None,
            peers: Arc::default(),
        }
    }

    /// A service reporting on `node` whose host acks come from `acks`.
    pub fn with_acks(node: Arc<RaftNode>, acks: Arc<dyn AckSource>) -> ClusterService {
        ClusterService {
            node,
            acks: Some(acks),
            peers: Arc::default(),
        }
    }

    /// The tonic server for this service.
    pub fn server(node: Arc<RaftNode>) -> ClusterServer<ClusterService> {
        ClusterServer::new(ClusterService::new(node))
    }

    /// The tonic server for `self`.
    pub fn into_server(self) -> ClusterServer<ClusterService> {
        ClusterServer::new(self)
    }

    /// This node's acks.
    fn local_acks(&self) -> BTreeMap<String, u64> {
        self.acks.as_ref().map(|a| a.acked()).unwrap_or_default()
    }

    /// The client for the member serving its API at `api_addr`, from the
    /// cache or newly (lazily) connected; members no longer in `current`
    /// leave the cache. `None` for an address that is not a URI authority.
    fn peer(&self, api_addr: &str, current: &BTreeSet<&str>) -> Option<ClusterClient<Channel>> {
        // Plain map inserts cannot leave it inconsistent: ignore poisoning.
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        peers.retain(|addr, _| current.contains(addr.as_str()));
        if let Some(client) = peers.get(api_addr) {
            return Some(client.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{api_addr}")).ok()?;
        let client = ClusterClient::new(
            endpoint
                .connect_timeout(Duration::from_millis(ACKS_CALL_MS_MAX))
                .tcp_nodelay(true)
                .connect_lazy(),
        );
        peers.insert(api_addr.to_string(), client.clone());
        Some(client)
    }

    /// One round of asking for acks: merges this node's acks, then every
    /// other member's that answers before `deadline` (asked in parallel),
    /// into `seen`; returns as soon as `enough` holds (a slow member then
    /// does not hold the barrier up).
    async fn cluster_acks(
        &self,
        seen: &mut ClusterAcks,
        deadline: Instant,
        credential: Option<&MetadataValue<Ascii>>,
        enough: impl Fn(&BTreeMap<String, u64>) -> bool,
    ) {
        seen.merge(self.local_acks());
        if enough(&seen.acks) {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = left.min(Duration::from_millis(ACKS_CALL_MS_MAX));
        if wait.is_zero() {
            return;
        }
        let m = self.node.metrics();
        let current: BTreeSet<&str> = m.nodes.values().map(|n| n.api_addr.as_str()).collect();
        let mut asked = tokio::task::JoinSet::new();
        for (id, member) in &m.nodes {
            if *id == m.id {
                continue;
            }
            let Some(client) = self.peer(&member.api_addr, &current) else {
                seen.failed(*id, format!("bad API address {:?}", member.api_addr));
                continue;
            };
            let id = *id;
            let credential = credential.cloned();
            asked.spawn(async move {
                let answer = tokio::time::timeout(wait, peer_acks(client, wait, credential))
                    .await
                    .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer in time")));
                (id, answer)
            });
        }
        while let Some(answer) = asked.join_next().await {
            match answer {
                Ok((id, Ok(theirs))) => {
                    seen.answered(id);
                    seen.merge(theirs);
                }
                Ok((id, Err(status))) => {
                    seen.failed(id, format!("{:?}: {}", status.code(), status.message()));
                }
                Err(_) => {}
            }
            if enough(&seen.acks) {
                break;
            }
        }
    }

    /// Runs one membership change within the request's budget and answers
    /// with the membership the leader sees afterwards.
    async fn change<F>(
        &self,
        metadata: &MetadataMap,
        change: F,
    ) -> Result<Response<pb::MembershipResponse>, Status>
    where
        F: Future<Output = Result<u64, AdminError>>,
    {
        let budget = budget_or_max(metadata);
        let log_index = match tokio::time::timeout(budget, change).await {
            Ok(result) => result.map_err(|e| admin_status(&e))?,
            Err(_) => return Err(timeout_status("the membership change")),
        };
        Ok(Response::new(pb::MembershipResponse {
            log_index,
            members: members(&self.node.metrics()),
        }))
    }
}

/// The pieces of a backup file, each at most `BACKUP_CHUNK_BYTES_MAX`.
pub type SnapshotChunks =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::SnapshotChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Cluster for ClusterService {
    type SaveSnapshotStream = SnapshotChunks;

    async fn save_snapshot(
        &self,
        request: Request<pb::SaveSnapshotRequest>,
    ) -> Result<Response<SnapshotChunks>, Status> {
        let budget = budget_or_max(request.metadata());
        let file = tokio::time::timeout(budget, self.node.backup())
            .await
            .unwrap_or(Err(ReadError::Timeout))
            .map_err(|e| to_status(&ApiError::Read(e)))?;
        let chunk_bytes = alcor_proto::BACKUP_CHUNK_BYTES_MAX;
        let n_chunks = file.len().div_ceil(chunk_bytes);
        // Copied one piece at a time, as the transport asks for them.
        let chunks = (0..n_chunks).map(move |i| {
            let end = file.len().min((i + 1) * chunk_bytes);
            Ok(pb::SnapshotChunk {
                data: file[i * chunk_bytes..end].to_vec(),
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let m = self.node.metrics();
        Ok(Response::new(pb::StatusResponse {
            id: m.id,
            state: format!("{:?}", m.state).to_lowercase(),
            leader_id: m.leader,
            term: m.term,
            last_log_index: m.last_log_index,
            committed_index: m.committed_index,
            applied_index: m.applied_index,
            snapshot_index: m.snapshot_index,
            purged_index: m.purged_index,
            members: members(&m),
        }))
    }

    async fn add_learner(
        &self,
        request: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        check_id(req.id)?;
        check_addr("raft_addr", &req.raft_addr)?;
        check_addr("api_addr", &req.api_addr)?;
        let node = Node {
            raft_addr: req.raft_addr,
            api_addr: req.api_addr,
        };
        self.change(&metadata, self.node.add_learner(req.id, node))
            .await
    }

    async fn promote_member(
        &self,
        request: Request<pb::PromoteMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        check_id(req.id)?;
        self.change(&metadata, self.node.promote(req.id)).await
    }

    async fn change_membership(
        &self,
        request: Request<pb::ChangeMembershipRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        let voters: BTreeSet<u64> = req.voters.iter().copied().collect();
        if voters.is_empty() {
            return Err(invalid("voters: at least one voter is needed"));
        }
        for id in &voters {
            check_id(*id)?;
        }
        self.change(&metadata, self.node.change_membership(voters, true))
            .await
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        check_id(req.id)?;
        self.change(&metadata, self.node.remove_member(req.id))
            .await
    }

    async fn trigger_snapshot(
        &self,
        request: Request<pb::TriggerSnapshotRequest>,
    ) -> Result<Response<pb::TriggerSnapshotResponse>, Status> {
        let budget = budget_or_max(request.metadata());
        let applied = self.node.metrics().applied_index;
        let build = async {
            self.node
                .trigger_snapshot()
                .await
                .map_err(|e| admin_status(&e))?;
            let until = Instant::now() + budget;
            let built = self
                .node
                .wait_metrics(until, |m| m.snapshot_index >= applied)
                .await;
            built
                .map(|m| pb::TriggerSnapshotResponse {
                    snapshot_index: m.snapshot_index,
                    purged_index: m.purged_index,
                })
                .ok_or_else(|| timeout_status("the snapshot"))
        };
        match tokio::time::timeout(budget, build).await {
            Ok(result) => result.map(Response::new),
            Err(_) => Err(timeout_status("the snapshot")),
        }
    }

    async fn campaign(
        &self,
        request: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::CampaignResponse>, Status> {
        let budget = deadline::budget(request.metadata())
            .unwrap_or(Duration::from_millis(CAMPAIGN_MS_DEFAULT));
        let until = Instant::now() + budget;
        let before = self.node.metrics();
        let was_leader = before.leader == Some(before.id);
        // A first campaign usually only unseats the leader: the other
        // members refuse their votes while they still heard from it within
        // the leader lease, or have a longer log. Campaign again while
        // time is left, so that this member usually ends up leading.
        let mut attempts = 0;
        while !was_leader && attempts < CAMPAIGN_ATTEMPTS_MAX {
            let m = self.node.metrics();
            if m.leader == Some(m.id) || Instant::now() >= until {
                break;
            }
            // Raft may be busy (a member that just restarted is replaying):
            // the answer must still come within the client's deadline.
            match tokio::time::timeout_at(until, self.node.campaign()).await {
                Ok(result) => result.map_err(|e| admin_status(&e))?,
                Err(_) => break,
            }
            attempts += 1;
            let round = (Instant::now() + Duration::from_millis(CAMPAIGN_ROUND_MS)).min(until);
            self.node
                .wait_metrics(round, |m| m.leader == Some(m.id))
                .await;
        }
        let after = self.node.metrics();
        Ok(Response::new(pb::CampaignResponse {
            node_id: after.id,
            term: after.term,
            was_leader,
            leader: after.leader == Some(after.id),
        }))
    }

    async fn host_digest(
        &self,
        request: Request<pb::HostDigestRequest>,
    ) -> Result<Response<pb::HostDigestResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let caller = crate::auth::caller(&request);
        let req = request.into_inner();
        if req.host.is_empty() {
            return Err(invalid("host: must not be empty"));
        }
        // An agent compares its own table only.
        if let Principal::Agent { host } = &caller {
            if *host != req.host {
                return Err(to_status(&ApiError::Denied(
                    Denial::HostDenied,
                    format!("{caller} may not read host {:?}", req.host),
                )));
            }
        }
        let agent_report = self.acks.as_ref().and_then(|a| a.agent_report(&req.host));
        let host = req.host;
        let read = move |s: &alcor_state_machine::State| {
            (s.applied_index(), goal_digest(&s.goal_state(&host)))
        };
        let result = if req.stale {
            self.node.read_stale(read)
        } else {
            let linearizable = self.node.read_linearizable(read);
            match budget {
                Some(budget) => tokio::time::timeout(budget, linearizable)
                    .await
                    .unwrap_or(Err(ReadError::Timeout)),
                None => linearizable.await,
            }
        };
        let (revision, digest) = result.map_err(|e| to_status(&ApiError::Read(e)))?;
        Ok(Response::new(pb::HostDigestResponse {
            revision,
            digest: digest.to_vec(),
            agent_report,
        }))
    }

    async fn acked_revisions(
        &self,
        _request: Request<pb::AckedRevisionsRequest>,
    ) -> Result<Response<pb::AckedRevisionsResponse>, Status> {
        Ok(Response::new(pb::AckedRevisionsResponse {
            acked: self.local_acks().into_iter().collect(),
        }))
    }

    async fn barrier(
        &self,
        request: Request<pb::BarrierRequest>,
    ) -> Result<Response<pb::BarrierResponse>, Status> {
        let deadline = Instant::now() + budget_or_max(request.metadata());
        // The other members' ack tables are asked with the caller's own
        // credential (members share the token file).
        let credential = request.metadata().get(AUTHORIZATION_HEADER).cloned();
        let req = request.into_inner();
        let mut hosts = barrier_request_hosts(&req.hosts)?;
        let mut revision = req.revision;
        if revision == 0 || hosts.is_empty() {
            let read = |s: &alcor_state_machine::State| (s.applied_index(), s.hosts_with_ports());
            let (applied, with_ports) =
                tokio::time::timeout_at(deadline, self.node.read_linearizable(read))
                    .await
                    .unwrap_or(Err(ReadError::Timeout))
                    .map_err(|e| to_status(&ApiError::Read(e)))?;
            if revision == 0 {
                revision = applied;
            }
            if hosts.is_empty() {
                hosts = with_ports.into_iter().collect();
            }
        }
        // Acks only grow: what a member answered in an earlier round still
        // counts when it is slow to answer a later one.
        let mut seen = ClusterAcks::default();
        loop {
            self.cluster_acks(&mut seen, deadline, credential.as_ref(), |acks| {
                pending_hosts(&hosts, acks, revision).is_empty()
            })
            .await;
            let acks = &seen.acks;
            let pending = pending_hosts(&hosts, acks, revision);
            if pending.is_empty() {
                let acked = hosts
                    .iter()
                    .map(|host| pb::HostAck {
                        host: host.clone(),
                        revision: acks.get(host).copied().unwrap_or(revision),
                    })
                    .collect();
                return Ok(Response::new(pb::BarrierResponse {
                    revision,
                    acked,
                    pending,
                }));
            }
            let next = Instant::now() + Duration::from_millis(BARRIER_POLL_MS);
            if next >= deadline {
                return Err(barrier_timeout(revision, &pending, &seen.silent));
            }
            tokio::time::sleep_until(next).await;
        }
    }
}

/// One member's ack table.
async fn peer_acks(
    mut client: ClusterClient<Channel>,
    wait: Duration,
    credential: Option<MetadataValue<Ascii>>,
) -> Result<BTreeMap<String, u64>, Status> {
    let mut request = Request::new(pb::AckedRevisionsRequest {});
    request.set_timeout(wait);
    if let Some(credential) = credential {
        request
            .metadata_mut()
            .insert(AUTHORIZATION_HEADER, credential);
    }
    let response = client.acked_revisions(request).await?;
    Ok(response.into_inner().acked.into_iter().collect())
}

/// The hosts a `Barrier` request names, checked (empty: the caller reads
/// the hosts with ports instead).
fn barrier_request_hosts(hosts: &[String]) -> Result<BTreeSet<String>, Status> {
    if hosts.len() > BARRIER_HOSTS_MAX {
        return Err(invalid(&format!(
            "hosts: at most {BARRIER_HOSTS_MAX} hosts, got {}",
            hosts.len()
        )));
    }
    for host in hosts {
        if host.is_empty() || host.len() > HOST_NAME_BYTES_MAX {
            return Err(invalid(&format!(
                "hosts: {host:?} must be 1 to {HOST_NAME_BYTES_MAX} bytes"
            )));
        }
    }
    Ok(hosts.iter().cloned().collect())
}

/// Hosts of `hosts` whose ack in `acks` is below `revision`.
fn pending_hosts(
    hosts: &BTreeSet<String>,
    acks: &BTreeMap<String, u64>,
    revision: u64,
) -> Vec<String> {
    hosts
        .iter()
        .filter(|h| acks.get(*h).is_none_or(|acked| *acked < revision))
        .cloned()
        .collect()
}

/// DEADLINE_EXCEEDED naming the `pending` hosts and, when some members did
/// not answer in the last round (their acks are unknown), those members.
fn barrier_timeout(revision: u64, pending: &[String], silent: &BTreeMap<u64, String>) -> Status {
    let mut message = format!(
        "revision {revision} not acked within the deadline; pending hosts: {}",
        pending.join(",")
    );
    if !silent.is_empty() {
        let members: Vec<String> = silent
            .iter()
            .map(|(id, why)| format!("{id} ({why})"))
            .collect();
        message.push_str(&format!("; members not answering: {}", members.join(", ")));
    }
    status_with(
        Code::DeadlineExceeded,
        Reason::BarrierTimeout,
        &message,
        MetadataMap::new(),
    )
}

/// What a `Barrier` has learnt of the members' acks so far.
#[derive(Debug, Default)]
struct ClusterAcks {
    /// Each host's highest ack over this node and every answer so far.
    acks: BTreeMap<String, u64>,
    /// Members that have answered at least once.
    heard: BTreeSet<u64>,
    /// Members asked that have never answered (their acks are unknown),
    /// each with the last reason.
    silent: BTreeMap<u64, String>,
}

impl ClusterAcks {
    /// Takes each host's higher ack of `acks` and what is known.
    fn merge(&mut self, acks: impl IntoIterator<Item = (String, u64)>) {
        for (host, revision) in acks {
            let entry = self.acks.entry(host).or_insert(0);
            *entry = (*entry).max(revision);
        }
    }

    fn answered(&mut self, member: u64) {
        self.heard.insert(member);
        self.silent.remove(&member);
    }

    fn failed(&mut self, member: u64, why: String) {
        if !self.heard.contains(&member) {
            self.silent.insert(member, why);
        }
    }
}

/// Every member with its role, from `m`.
fn members(m: &NodeMetrics) -> Vec<pb::Member> {
    m.nodes
        .iter()
        .map(|(id, node)| pb::Member {
            id: *id,
            raft_addr: node.raft_addr.clone(),
            api_addr: node.api_addr.clone(),
            voter: m.voters.contains(id),
        })
        .collect()
}

/// The client's budget, or the gateway's maximum when it set none.
fn budget_or_max(metadata: &MetadataMap) -> Duration {
    deadline::budget(metadata).unwrap_or(Duration::from_millis(REQUEST_TIMEOUT_MS_MAX))
}

fn check_id(id: u64) -> Result<(), Status> {
    if id == 0 {
        return Err(invalid("id: node id 0 is reserved"));
    }
    Ok(())
}

/// `host:port`, the form peers and clients dial. A name is allowed (it is
/// resolved by whoever dials); only the port is checked strictly.
fn check_addr(field: &str, addr: &str) -> Result<(), Status> {
    if addr.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let valid = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if valid {
        Ok(())
    } else {
        Err(invalid(&format!("{field}: {addr:?} is not HOST:PORT")))
    }
}

/// A status with the reason both in the header and at the message start.
fn status_with(code: Code, reason: Reason, message: &str, metadata: MetadataMap) -> Status {
    let reason = reason.code();
    let mut metadata = metadata;
    metadata.insert(REASON_HEADER, MetadataValue::from_static(reason));
    Status::with_metadata(code, format!("{reason}: {message}"), metadata)
}

fn invalid(message: &str) -> Status {
    status_with(
        Code::InvalidArgument,
        Reason::InvalidField,
        message,
        MetadataMap::new(),
    )
}

fn timeout_status(what: &str) -> Status {
    let mut metadata = MetadataMap::new();
    metadata.insert(INDETERMINATE_HEADER, MetadataValue::from_static("true"));
    status_with(
        Code::DeadlineExceeded,
        Reason::Timeout,
        &format!("{what} did not finish within the deadline; it may still take effect"),
        metadata,
    )
}

/// Maps a failed membership or snapshot call to a status.
pub fn admin_status(error: &AdminError) -> Status {
    let mut metadata = MetadataMap::new();
    match error {
        AdminError::NotLeader {
            leader_id,
            leader_node,
        } => {
            if let Some(id) = leader_id {
                metadata.insert(LEADER_ID_HEADER, MetadataValue::from(*id));
            }
            if let Some(value) = leader_node
                .as_ref()
                .and_then(|n| MetadataValue::try_from(n.api_addr.as_str()).ok())
            {
                metadata.insert(LEADER_API_HEADER, value);
            }
            status_with(
                Code::FailedPrecondition,
                Reason::NotLeader,
                &error.to_string(),
                metadata,
            )
        }
        AdminError::Rejected(_) => status_with(
            Code::FailedPrecondition,
            Reason::MembershipRejected,
            &error.to_string(),
            metadata,
        ),
        AdminError::Fatal(_) => status_with(
            Code::Unavailable,
            Reason::RaftStopped,
            &error.to_string(),
            metadata,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(status: &Status) -> Option<&str> {
        status.metadata().get(REASON_HEADER)?.to_str().ok()
    }

    #[test]
    fn not_leader_names_the_leader_in_headers() {
        let status = admin_status(&AdminError::NotLeader {
            leader_id: Some(2),
            leader_node: Some(Node {
                raft_addr: "127.0.0.1:7002".into(),
                api_addr: "127.0.0.1:8002".into(),
            }),
        });
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(reason(&status), Some("NOT_LEADER"));
        let header = |name| status.metadata().get(name).and_then(|v| v.to_str().ok());
        assert_eq!(header(LEADER_ID_HEADER), Some("2"));
        assert_eq!(header(LEADER_API_HEADER), Some("127.0.0.1:8002"));
    }

    #[test]
    fn timed_out_change_is_flagged_indeterminate() {
        let status = timeout_status("x");
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert!(status.metadata().get(INDETERMINATE_HEADER).is_some());
    }

    #[test]
    fn barrier_pending_lists_hosts_below_the_revision() {
        let hosts: BTreeSet<String> = ["h1", "h2", "h3"].map(String::from).into();
        let acks: BTreeMap<String, u64> = [("h1".to_string(), 7), ("h2".to_string(), 4)].into();
        assert_eq!(pending_hosts(&hosts, &acks, 5), ["h2", "h3"]);
        let status = barrier_timeout(5, &["h3".to_string()], &BTreeMap::new());
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert_eq!(reason(&status), Some("BARRIER_TIMEOUT"));
        assert!(status.message().contains("h3"));
        assert!(
            !status.message().contains("members"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn acks_learnt_in_an_earlier_round_survive_a_member_that_is_slow_later() {
        let mut seen = ClusterAcks::default();
        seen.merge([("h1".to_string(), 10)]);
        seen.answered(1);
        seen.failed(2, "Unavailable: refused".to_string());
        // The next round: member 1 times out, this node knows h2 at 4.
        seen.merge([("h2".to_string(), 4)]);
        seen.failed(1, "Cancelled: Timeout expired".to_string());
        seen.merge([("h1".to_string(), 7)]);
        let hosts: BTreeSet<String> = ["h1", "h2"].map(String::from).into();
        assert_eq!(pending_hosts(&hosts, &seen.acks, 8), ["h2"]);
        assert_eq!(seen.acks.get("h1"), Some(&10));
        let silent: Vec<u64> = seen.silent.keys().copied().collect();
        assert_eq!(silent, [2], "member 1 answered once: its acks are known");
        seen.answered(2);
        assert!(seen.silent.is_empty());
    }

    #[test]
    fn barrier_timeout_names_members_whose_acks_are_unknown() {
        let silent = [
            (3, "Unavailable: refused".to_string()),
            (1, "late".to_string()),
        ];
        let status = barrier_timeout(5, &["h1".to_string()], &silent.into());
        assert_eq!(reason(&status), Some("BARRIER_TIMEOUT"));
        let expected =
            "pending hosts: h1; members not answering: 1 (late), 3 (Unavailable: refused)";
        assert!(status.message().ends_with(expected), "{}", status.message());
    }

    #[test]
    fn barrier_rejects_empty_host_names() {
        assert!(barrier_request_hosts(&[String::new()]).is_err());
        assert!(barrier_request_hosts(&["h1".to_string()]).is_ok());
    }

    #[test]
    fn member_addresses_must_be_host_and_port() {
        assert!(check_addr("a", "127.0.0.1:7001").is_ok());
        assert!(check_addr("a", "node-4.example:7001").is_ok());
        for bad in ["", "127.0.0.1", ":7001", "h:99999", "h:x"] {
            assert!(check_addr("a", bad).is_err(), "{bad}");
        }
        assert!(check_id(0).is_err());
    }
}
