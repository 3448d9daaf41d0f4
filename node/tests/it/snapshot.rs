//! A member that was down while the leader purged its log behind a snapshot
//! catches up by snapshot install when it restarts.

use alcor_proto::api::v1 as pb;

use crate::cluster::ProcessCluster;
use crate::workload::{self, req, uuid};

/// Ports written while the follower is down.
const WRITES: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_member_behind_a_purged_log_catches_up_by_snapshot() {
    let mut cluster = ProcessCluster::start_with(
        3,
        &[
            "--snapshot-logs-since-last",
            "20",
            "--snapshot-logs-to-keep",
            "5",
        ],
    );
    let all = cluster.ids();
    let leader = cluster.leader(&all).await;
    let follower = *all
        .iter()
        .rev()
        .find(|id| **id != leader)
        .expect("follower");
    let (vpc, subnet) = (uuid(0xc0), uuid(0xc1));
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    cluster.quiescent(&all, 1).await;
    // Nothing is in flight: this is the log the follower keeps while down.
    let before = cluster.status(follower).await.expect("follower status");
    let follower_last = before.last_log_index.unwrap_or(0);
    cluster.kill(follower);

    let survivors: Vec<u64> = all.iter().copied().filter(|id| *id != follower).collect();
    for n in 0..WRITES {
        workload::create_port(&cluster, &survivors, &vpc, &subnet, &uuid(n), "").await;
    }
    let leader = cluster.leader(&survivors).await;
    let snapshot = cluster
        .ctl_json_within(&[leader], 10_000, &["cluster", "snapshot"])
        .expect("ctl cluster snapshot on the leader");
    assert!(snapshot["snapshot_index"].as_u64() > Some(follower_last));
    let purged = cluster
        .eventually("the leader to purge past the follower's log", || async {
            let purged = cluster.status(leader).await?.purged_index?;
            (purged > follower_last).then_some(purged)
        })
        .await;

    cluster.spawn(follower);
    let status = cluster
        .eventually("the restarted member to install a snapshot", || async {
            let s = cluster.status(follower).await?;
            (s.snapshot_index? >= purged).then_some(s)
        })
        .await;
    assert!(status.snapshot_index > Some(follower_last), "{status:?}");
    let last = uuid(WRITES - 1);
    let port = cluster
        .eventually(
            "a linearizable read through the restarted member",
            || async {
                let mut client = cluster.client(follower).await?;
                let message = pb::GetPortRequest {
                    id: last.clone(),
                    stale: false,
                    ..Default::default()
                };
                Some(client.get_port(req(message)).await.ok()?.into_inner())
            },
        )
        .await;
    assert_eq!(port.id, last);
    // It keeps following: the next write reaches it too.
    workload::create_port(&cluster, &all, &vpc, &subnet, &uuid(WRITES), "").await;
    cluster
        .quiescent(&all, status.applied_index.unwrap_or(0))
        .await;
}
