//! `RaftNode::backup` is taken at a linearizable point: a member cut off
//! from the leader's appends answers no backup rather than a stale one, and
//! the backup of a member that caught up holds every acknowledged write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alcor_raft_core::backup;
use alcor_raft_core::{LinkFate, LinkFaults, NodeId, RaftNodeConfig};

use crate::cluster::{create_host, TestCluster};

/// The leader whose requests to `CUT_TO` are dropped (0: none).
static CUT_FROM: AtomicU64 = AtomicU64::new(0);
/// The member that hears nothing from `CUT_FROM`.
static CUT_TO: AtomicU64 = AtomicU64::new(0);

/// Drops every request on the link `CUT_FROM -> CUT_TO`.
#[derive(Debug)]
struct CutLink;

impl LinkFaults for CutLink {
    fn request(&self, from: NodeId, to: NodeId) -> LinkFate {
        let cut = from == CUT_FROM.load(Ordering::Relaxed) && to == CUT_TO.load(Ordering::Relaxed);
        if cut {
            LinkFate::Drop
        } else {
            LinkFate::Deliver
        }
    }

    fn reply_lost(&self, _from: NodeId, _to: NodeId) -> bool {
        false
    }
}

fn cut_link(config: &mut RaftNodeConfig) {
    config.link_faults = Some(Arc::new(CutLink));
    config.request_timeout_ms = 1_500;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cut_off_from_the_leader_gives_no_stale_backup() {
    let cluster = TestCluster::start(3, cut_link).await;
    let leader = cluster.wait_leader().await;
    let follower = cluster.follower().await;
    CUT_TO.store(follower, Ordering::Relaxed);
    CUT_FROM.store(leader, Ordering::Relaxed);

    let written = cluster
        .node(leader)
        .client_write(create_host(7))
        .await
        .unwrap();
    assert!(written.result.is_ok());
    let lagging = cluster
        .node(follower)
        .read_stale(|s| s.host("h7").is_none())
        .unwrap();
    assert!(lagging, "the cut-off member applied the write anyway");
    let stale = cluster.node(follower).backup().await;
    assert!(
        stale.is_err(),
        "a backup without the acknowledged write was given"
    );

    CUT_FROM.store(0, Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let file = loop {
        if let Ok(file) = cluster.node(follower).backup().await {
            break file;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no backup after healing"
        );
    };
    let decoded = backup::decode(&file).unwrap();
    assert!(decoded.header.revision >= written.log_index);
    assert!(decoded.state.host("h7").is_some());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_written_by_a_newer_format_is_refused_at_start_with_a_clear_error() {
    use std::collections::BTreeMap;

    use alcor_raft_core::codec::FORMAT_VERSION;
    use alcor_raft_core::{Node, RaftListen, RaftNode, StartError};

    let dir = tempfile::TempDir::new().unwrap();
    {
        let (db, _closed) = alcor_raft_core::storage::open_db(dir.path(), false).unwrap();
        let meta = db.cf_handle("meta").unwrap();
        // A vote record as a build with the next format version writes it.
        db.put_cf(meta, b"vote", [FORMAT_VERSION + 1, 0, 0, 0])
            .unwrap();
    }
    let listen = RaftListen::Addr("127.0.0.1:0".parse().unwrap());
    let node = Node {
        raft_addr: "127.0.0.1:1".to_string(),
        api_addr: "127.0.0.1:2".to_string(),
    };
    let members = BTreeMap::from([(1, node)]);
    let config = RaftNodeConfig::new(1, dir.path().to_path_buf(), listen, members);
    let error = RaftNode::start(config).await.unwrap_err();
    assert!(
        matches!(&error, StartError::Raft(m) | StartError::Storage(m) if m.contains("newer than this build reads")),
        "{error}"
    );
}
