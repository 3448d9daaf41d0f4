//! The cluster sub-client (`alcor.api.v1.Cluster`): status, membership
//! changes (sent to the leader: a follower's NOT_LEADER answer moves the call
//! to the leader it names), snapshots, host digests and the barrier.

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::cluster_client::ClusterClient;

use crate::config::RESPONSE_BYTES_MAX;
use crate::error::{classify, Error, Verdict};
use crate::transport::{Client, Retry, Routing};

/// The bytes of a backup file as the member streams them
/// ([`Cluster::save_snapshot`]).
#[derive(Debug)]
pub struct SnapshotDownload {
    stream: tonic::Streaming<pb::SnapshotChunk>,
}

impl SnapshotDownload {
    /// The next piece of the file, `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Error> {
        match self.stream.message().await {
            Ok(chunk) => Ok(chunk.map(|c| c.data)),
            Err(status) => Err(match classify(&status) {
                Verdict::Final(error) => error,
                Verdict::NotApplied { message, .. } | Verdict::MaybeApplied { message, .. } => {
                    Error::Unavailable { message }
                }
            }),
        }
    }
}

/// Cluster status and membership (`client.cluster()`).
///
/// ```no_run
/// # async fn example(client: alcor_client::Client) -> Result<(), alcor_client::Error> {
/// let status = client.cluster().status().await?;
/// println!("member {} sees leader {:?} in term {}", status.id, status.leader_id, status.term);
/// // Wait until every host with a bound port applied what is committed now.
/// let done = client.cluster().barrier(0, Vec::new()).await?;
/// println!("{} hosts acked revision {}", done.acked.len(), done.revision);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    client: &'a Client,
}

impl Client {
    /// The cluster sub-client.
    pub fn cluster(&self) -> Cluster<'_> {
        Cluster { client: self }
    }
}

/// One Cluster RPC through [`Client::call`].
macro_rules! cluster {
    ($client:expr, $retry:expr, $routing:expr, $method:ident, $message:expr) => {
        $client
            .call($retry, $routing, $message, |channel, request| async move {
                ClusterClient::new(channel)
                    .max_decoding_message_size(RESPONSE_BYTES_MAX)
                    .$method(request)
                    .await
            })
            .await
    };
}

impl Cluster<'_> {
    /// The answering member's view: its role, the leader, term, log indexes
    /// and the members.
    pub async fn status(&self) -> Result<pb::StatusResponse, Error> {
        cluster!(
            self.client,
            Retry::Read,
            Routing::Any,
            status,
            pb::StatusRequest {}
        )
    }

    /// Adds a non-voting member and waits (within the deadline) until it has
    /// caught up. Not repeatable after an unknown outcome.
    pub async fn add_learner(
        &self,
        id: u64,
        raft_addr: &str,
        api_addr: &str,
    ) -> Result<pb::MembershipResponse, Error> {
        let request = pb::AddLearnerRequest {
            id,
            raft_addr: raft_addr.to_string(),
            api_addr: api_addr.to_string(),
        };
        cluster!(
            self.client.waiting(),
            Retry::Never,
            Routing::Leader,
            add_learner,
            request
        )
    }

    /// Makes a learner a voter.
    pub async fn promote(&self, id: u64) -> Result<pb::MembershipResponse, Error> {
        let request = pb::PromoteMemberRequest { id };
        cluster!(
            self.client,
            Retry::Never,
            Routing::Leader,
            promote_member,
            request
        )
    }

    /// Replaces the voter set; members left out stay as learners.
    pub async fn set_voters(&self, voters: Vec<u64>) -> Result<pb::MembershipResponse, Error> {
        let request = pb::ChangeMembershipRequest { voters };
        cluster!(
            self.client,
            Retry::Never,
            Routing::Leader,
            change_membership,
            request
        )
    }

    /// Removes a member (voter or learner).
    pub async fn remove(&self, id: u64) -> Result<pb::MembershipResponse, Error> {
        let request = pb::RemoveMemberRequest { id };
        cluster!(
            self.client,
            Retry::Never,
            Routing::Leader,
            remove_member,
            request
        )
    }

    /// Opens a backup of the whole state (`alcor ctl snapshot save`): the
    /// answering member takes it at a linearizable point, so it holds every
    /// write acknowledged before the call, and streams the backup file's
    /// bytes. Opening fails over like a read; a stream that breaks is an
    /// error (start the save again).
    pub async fn save_snapshot(&self) -> Result<SnapshotDownload, Error> {
        let stream = self
            .client
            .streaming()
            .waiting()
            .call(
                Retry::Read,
                Routing::Any,
                pb::SaveSnapshotRequest {},
                |channel, request| async move {
                    ClusterClient::new(channel)
                        .max_decoding_message_size(RESPONSE_BYTES_MAX)
                        .save_snapshot(request)
                        .await
                },
            )
            .await?;
        Ok(SnapshotDownload { stream })
    }

    /// Builds a snapshot on the answering member now and waits for it.
    pub async fn snapshot(&self) -> Result<pb::TriggerSnapshotResponse, Error> {
        let request = pb::TriggerSnapshotRequest {};
        cluster!(
            self.client.waiting(),
            Retry::Never,
            Routing::Any,
            trigger_snapshot,
            request
        )
    }

    /// A host's goal-state digest (linearizable unless `stale`).
    pub async fn host_digest(
        &self,
        host: &str,
        stale: bool,
    ) -> Result<pb::HostDigestResponse, Error> {
        let request = pb::HostDigestRequest {
            host: host.to_string(),
            stale,
        };
        cluster!(self.client, Retry::Read, Routing::Any, host_digest, request)
    }

    /// The host acks recorded on the answering member.
    pub async fn acked_revisions(&self) -> Result<pb::AckedRevisionsResponse, Error> {
        let request = pb::AckedRevisionsRequest {};
        cluster!(
            self.client,
            Retry::Read,
            Routing::Any,
            acked_revisions,
            request
        )
    }

    /// Waits (within the deadline) until every host in `hosts` (empty: every
    /// host with a bound port) has acked `revision` (0: the current one).
    /// Fails with [`Error::DeadlineExceeded`] (reason `BARRIER_TIMEOUT`)
    /// naming the pending hosts.
    pub async fn barrier(
        &self,
        revision: u64,
        hosts: Vec<String>,
    ) -> Result<pb::BarrierResponse, Error> {
        let request = pb::BarrierRequest { revision, hosts };
        cluster!(
            self.client.waiting(),
            Retry::Read,
            Routing::Any,
            barrier,
            request
        )
    }
}
