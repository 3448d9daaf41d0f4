//! Membership changes on a running cluster of processes: a fourth member
//! started with `--join` is added as a learner, promoted to voter and serves
//! linearizable reads; then a member is removed and writes still commit.

use alcor_proto::api::v1 as pb;

use crate::cluster::ProcessCluster;
use crate::workload::{self, req, uuid};

/// `ctl` deadline for membership changes (add-learner waits for catch-up).
const CHANGE_TIMEOUT_MS: u64 = 10_000;

/// The VPC `id` as member `member` reads it (linearizable).
async fn vpc_via(cluster: &ProcessCluster, member: u64, id: &str) -> Option<pb::Vpc> {
    let mut client = cluster.client(member).await?;
    let message = pb::GetVpcRequest {
        id: id.into(),
        stale: false,
        ..Default::default()
    };
    Some(client.get_vpc(req(message)).await.ok()?.into_inner())
}

fn sorted_voters(response: &serde_json::Value) -> Vec<u64> {
    let mut voters: Vec<u64> = response["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["voter"].as_bool() == Some(true))
        .filter_map(|m| m["id"].as_u64())
        .collect();
    voters.sort_unstable();
    voters
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_member_is_promoted_serves_reads_and_a_removed_member_leaves_the_quorum() {
    let mut cluster = ProcessCluster::start(3);
    let first = cluster.ids();
    let leader = cluster.leader(&first).await;
    workload::create_network(&cluster, &first, &uuid(0xb0), &uuid(0xb1)).await;

    // Node 4 joins: it must not bootstrap a cluster of its own.
    cluster.spawn_joining(4);
    let status = cluster
        .eventually("the joining member to answer", || cluster.status(4))
        .await;
    assert_eq!(status.leader_id, None, "a --join member waits to be added");
    let (raft_addr, api_addr) = (cluster.raft_addr(4), cluster.api_addr(4));
    let added = cluster
        .ctl_json_within(
            &first,
            CHANGE_TIMEOUT_MS,
            &[
                "cluster",
                "add-learner",
                "--id",
                "4",
                "--raft-addr",
                &raft_addr,
                "--api-addr",
                &api_addr,
            ],
        )
        .expect("add-learner through ctl (tries every endpoint until the leader)");
    assert_eq!(sorted_voters(&added), first);
    assert_eq!(added["members"].as_array().map(Vec::len), Some(4));
    let promoted = cluster
        .ctl_json_within(&first, CHANGE_TIMEOUT_MS, &["cluster", "promote", "4"])
        .expect("promote through ctl");
    assert_eq!(sorted_voters(&promoted), vec![1, 2, 3, 4]);
    for id in [1, 2, 3, 4] {
        cluster
            .eventually("every member to report 4 voters", || async {
                (cluster.voters(id).await? == [1, 2, 3, 4]).then_some(())
            })
            .await;
    }

    // A write through node 4 commits and node 4 reads it linearizably.
    let vpc = uuid(0xb2);
    let message = pb::CreateVpcRequest {
        id: vpc.clone(),
        project_id: workload::PROJECT.into(),
        cidr: "10.8.0.0/16".into(),
        ..Default::default()
    };
    workload::write(
        &cluster,
        &[4],
        "create vpc via node 4",
        &[tonic::Code::AlreadyExists],
        |mut c| {
            let message = message.clone();
            async move { c.create_vpc(req(message)).await }
        },
    )
    .await;
    let seen = vpc_via(&cluster, 4, &vpc).await;
    assert_eq!(seen.map(|v| v.id), Some(vpc.clone()));

    // A non-leader refuses membership changes with NOT_LEADER.
    let follower = *first.iter().find(|id| **id != leader).expect("follower");
    let mut client = cluster
        .cluster_client(follower)
        .await
        .expect("connect to a follower");
    let refused = client
        .remove_member(req(pb::RemoveMemberRequest { id: 4 }))
        .await
        .expect_err("a follower refuses membership changes");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        refused
            .metadata()
            .get(alcor_api_gateway::REASON_HEADER)
            .and_then(|v| v.to_str().ok()),
        Some("NOT_LEADER")
    );

    // Remove a member that is not the leader (the highest such id).
    let everyone = [1, 2, 3, 4];
    let leader = cluster.leader(&everyone).await;
    let removed = *everyone
        .iter()
        .rev()
        .find(|id| **id != leader)
        .expect("a non-leader");
    let remaining: Vec<u64> = everyone
        .iter()
        .copied()
        .filter(|id| *id != removed)
        .collect();
    let endpoints: Vec<u64> = everyone.to_vec();
    let after = cluster
        .ctl_json_within(
            &endpoints,
            CHANGE_TIMEOUT_MS,
            &["cluster", "remove", &removed.to_string()],
        )
        .expect("remove through ctl");
    assert_eq!(sorted_voters(&after), remaining);
    assert_eq!(after["members"].as_array().map(Vec::len), Some(3));
    for id in &remaining {
        cluster
            .eventually("the remaining members to report 3 voters", || async {
                (cluster.voters(*id).await? == remaining).then_some(())
            })
            .await;
    }
    // The removed process no longer counts: stop it; writes still commit.
    cluster.kill(removed);
    let vpc = uuid(0xb3);
    let message = pb::CreateVpcRequest {
        id: vpc.clone(),
        project_id: workload::PROJECT.into(),
        cidr: "10.9.0.0/16".into(),
        ..Default::default()
    };
    workload::write(
        &cluster,
        &remaining,
        "create vpc after the removal",
        &[tonic::Code::AlreadyExists],
        |mut c| {
            let message = message.clone();
            async move { c.create_vpc(req(message)).await }
        },
    )
    .await;
    for id in &remaining {
        let seen = vpc_via(&cluster, *id, &vpc).await;
        assert_eq!(seen.map(|v| v.id), Some(vpc.clone()), "read via {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_flag_never_bootstraps_even_as_the_lowest_and_only_member() {
    // Without --join, a lone member with an empty log initializes a
    // one-node cluster and leads it within an election timeout (<= 400 ms by default).
    let cluster = ProcessCluster::start_with(1, &["--join"]);
    let status = cluster
        .eventually("the lone joining member to answer", || cluster.status(1))
        .await;
    assert_eq!(status.leader_id, None);
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    let status = cluster.status(1).await.expect("status after 2 s");
    assert_eq!(status.leader_id, None, "{status:?}");
    assert!(status.members.is_empty(), "{status:?}");
    assert_ne!(status.state, "leader");
}
