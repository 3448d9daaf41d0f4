//! An in-process cluster of real raft-core nodes (RocksDB on disk, gRPC on
//! loopback) whose links go through a shared [`Net`], with crash and restart
//! from the same data directory.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use alcor_raft_core::{Mutation, Node, NodeId, RaftListen, RaftNode, RaftNodeConfig};
use tempfile::TempDir;
use tokio::net::TcpListener;

use crate::faults::Net;
use crate::RunError;

/// Raft timing of a chaos run: short, so that many seeds fit in CI.
const HEARTBEAT_MS: u64 = 50;
const ELECTION_MS_MIN: u64 = 200;
const ELECTION_MS_MAX: u64 = 400;
/// Per-request bound of writes and reads.
pub(crate) const REQUEST_TIMEOUT_MS: u64 = 1_500;
/// Snapshot often so that snapshot install and log purge happen in runs.
const SNAPSHOT_EVERY: u64 = 40;

/// The running nodes, shared with client tasks (they clone the `Arc`s).
pub(crate) type Live = Arc<RwLock<BTreeMap<NodeId, Arc<RaftNode>>>>;

pub(crate) struct Cluster {
    pub(crate) live: Live,
    dirs: BTreeMap<NodeId, TempDir>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    members: BTreeMap<NodeId, Node>,
    net: Arc<Net>,
    mutation: Option<Mutation>,
}

impl Cluster {
    pub(crate) async fn start(
        nodes: u64,
        net: Arc<Net>,
        mutation: Option<Mutation>,
    ) -> Result<Cluster, RunError> {
        let mut listeners = BTreeMap::new();
        let mut cluster = Cluster {
            live: Arc::new(RwLock::new(BTreeMap::new())),
            dirs: BTreeMap::new(),
            addrs: BTreeMap::new(),
            members: BTreeMap::new(),
            net,
            mutation,
        };
        for id in 1..=nodes {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
            let addr = listener.local_addr()?;
            cluster.members.insert(
                id,
                Node {
                    raft_addr: addr.to_string(),
                    api_addr: format!("chaos-{id}:0"),
                },
            );
            cluster.addrs.insert(id, addr);
            cluster.dirs.insert(id, TempDir::new()?);
            listeners.insert(id, listener);
        }
        for (id, listener) in listeners.into_iter().rev() {
            cluster.launch(id, RaftListen::Listener(listener)).await?;
        }
        Ok(cluster)
    }

    async fn launch(&self, id: NodeId, listen: RaftListen) -> Result<(), RunError> {
        let dir = self.dirs[&id].path().to_path_buf();
        let mut config = RaftNodeConfig::new(id, dir, listen, self.members.clone());
        config.heartbeat_interval_ms = HEARTBEAT_MS;
        config.election_timeout_min_ms = ELECTION_MS_MIN;
        config.election_timeout_max_ms = ELECTION_MS_MAX;
        config.request_timeout_ms = REQUEST_TIMEOUT_MS;
        config.snapshot_logs_since_last = SNAPSHOT_EVERY;
        config.snapshot_logs_to_keep = SNAPSHOT_EVERY / 2;
        let faults: Arc<Net> = Arc::clone(&self.net);
        config.link_faults = Some(faults);
        config.mutation = self.mutation;
        let node = RaftNode::start(config)
            .await
            .map_err(|e| RunError::Node(format!("start node {id}: {e}")))?;
        self.live_mut().insert(id, Arc::new(node));
        Ok(())
    }

    fn live_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<NodeId, Arc<RaftNode>>> {
        self.live.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn nodes(&self) -> Vec<(NodeId, Arc<RaftNode>)> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.iter().map(|(id, n)| (*id, Arc::clone(n))).collect()
    }

    /// Stops node `id`, keeping its data dir; in-flight calls on it fail.
    pub(crate) async fn crash(&self, id: NodeId) -> Result<(), RunError> {
        let node = self.live_mut().remove(&id);
        if let Some(node) = node {
            node.shutdown()
                .await
                .map_err(|e| RunError::Node(format!("stop node {id}: {e}")))?;
        }
        Ok(())
    }

    /// Starts node `id` again from its data dir on its old address.
    pub(crate) async fn restart(&self, id: NodeId) -> Result<(), RunError> {
        if self
            .live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
        {
            return Ok(());
        }
        // The old socket may linger for a moment after shutdown.
        let mut tries = 0;
        loop {
            match self.launch(id, RaftListen::Addr(self.addrs[&id])).await {
                Ok(()) => return Ok(()),
                Err(e) if tries >= 20 => return Err(e),
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    pub(crate) async fn shutdown(self) {
        for (id, _) in self.nodes() {
            // Best effort at the end of a run; the temp dirs go anyway.
            let _ = self.crash(id).await;
        }
    }
}
