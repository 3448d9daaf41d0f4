//! The fault-testing levers the Jepsen harness relies on, checked against
//! real `alcor server` processes: `--wal-buffered-until-sync` makes a
//! `kill -9` lose exactly the un-fsynced writes (so the skip-fsync mutation
//! really loses acknowledged data, and the correct member loses none), and
//! `Cluster.Campaign` on a follower moves the leadership.

use alcor_proto::api::v1 as pb;

use crate::cluster::ProcessCluster;
use crate::workload::{req, uuid};

const PROJECT: &str = "p-disk";
/// Acknowledged creates before the kill.
const WRITES: u64 = 40;

/// Creates `WRITES` VPCs on single-member `cluster`, each acknowledged,
/// kills the member with SIGKILL, restarts it, and counts the VPCs it has.
async fn acknowledged_vpcs_after_kill_9(mut cluster: ProcessCluster) -> usize {
    cluster.leader(&[1]).await;
    for n in 0..WRITES {
        let id = uuid(0xd000 + n);
        cluster
            .eventually("an acknowledged VPC create", || async {
                let mut client = cluster.client(1).await?;
                let create = pb::CreateVpcRequest {
                    id: id.clone(),
                    project_id: PROJECT.into(),
                    name: format!("vpc-{n}"),
                    ..Default::default()
                };
                client.create_vpc(req(create)).await.ok()
            })
            .await;
    }
    cluster.kill(1);
    cluster.spawn(1);
    cluster.leader(&[1]).await;
    cluster
        .eventually("a linearizable list after the restart", || async {
            let mut client = cluster.client(1).await?;
            let list = pb::ListVpcsRequest {
                project_id: PROJECT.into(),
                limit: 1_000,
                ..Default::default()
            };
            let reply = client.list_vpcs(req(list)).await.ok()?;
            Some(reply.into_inner().vpcs.len())
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_a_buffered_wal_loses_no_acknowledged_write() {
    let cluster = ProcessCluster::start_with(1, &["--wal-buffered-until-sync"]);
    let survived = acknowledged_vpcs_after_kill_9(cluster).await;
    assert_eq!(
        survived as u64, WRITES,
        "every acknowledged create survives"
    );
}

// Needs the mutation switches: `scripts/test.sh` runs it with
// `cargo test -p alcor-node --features unsafe-mutations`.
#[cfg(feature = "unsafe-mutations")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_a_buffered_wal_loses_acknowledged_writes_when_fsync_is_skipped() {
    // The control for the test above: the same run with the skip-fsync
    // mutation must lose acknowledged creates, or the buffered WAL would not
    // be emulating lost un-fsynced data at all.
    let cluster = ProcessCluster::start_with(
        1,
        &[
            "--wal-buffered-until-sync",
            "--unsafe-mutation",
            "skip-fsync",
        ],
    );
    let survived = acknowledged_vpcs_after_kill_9(cluster).await;
    assert!(
        (survived as u64) < WRITES,
        "with fsync skipped a kill -9 must lose acknowledged creates; {survived} of {WRITES} survived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_on_a_follower_starts_a_new_term_and_the_cluster_keeps_committing() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    let leader = cluster.leader(&all).await;
    let follower = *all.iter().find(|id| **id != leader).expect("a follower");
    let term_before = cluster.status(leader).await.expect("status").term;

    let mut admin = cluster
        .cluster_client(follower)
        .await
        .expect("member answers");
    let answer = admin
        .campaign(req(pb::CampaignRequest {}))
        .await
        .expect("campaign is accepted")
        .into_inner();
    assert_eq!(answer.node_id, follower);
    assert!(!answer.was_leader);
    // Whether the campaigner won is reported, not promised (another member
    // may win an election it started); either way the term moved on.
    if answer.leader {
        assert_eq!(cluster.leader(&all).await, follower);
    }

    // The leader answered by the Campaign on the leader itself is a no-op.
    let mut on_leader = cluster
        .cluster_client(leader)
        .await
        .expect("member answers");
    let noop = on_leader
        .campaign(req(pb::CampaignRequest {}))
        .await
        .expect("campaign on the leader is accepted")
        .into_inner();
    assert!(noop.was_leader || noop.term > term_before);

    let new_leader = cluster.leader(&all).await;
    let term_after = cluster.status(new_leader).await.expect("status").term;
    assert!(
        term_after > term_before,
        "term {term_before} -> {term_after}"
    );
    cluster
        .eventually("a write after the campaign", || async {
            let mut client = cluster.client(new_leader).await?;
            let create = pb::CreateVpcRequest {
                id: uuid(0xca),
                project_id: PROJECT.into(),
                ..Default::default()
            };
            client.create_vpc(req(create)).await.ok()
        })
        .await;
}
