//! Killing the leader process loses no acknowledged write; the survivors
//! elect a new leader and keep accepting writes; the killed member restarts
//! from its data dir and catches up.

use alcor_proto::api::v1 as pb;

use crate::cluster::ProcessCluster;

const PROJECT: &str = "p1";

fn port(vpc: &str, id: &str) -> pb::CreatePortRequest {
    pb::CreatePortRequest {
        id: id.into(),
        project_id: PROJECT.into(),
        network_id: vpc.into(),
        ..Default::default()
    }
}

/// A client-chosen port ID, so retried creates are recognisable.
fn port_id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// The port IDs of `vpc` as member `id` sees them (stale or linearizable).
async fn port_ids(
    cluster: &ProcessCluster,
    id: u64,
    vpc: &str,
    stale: bool,
) -> Option<Vec<String>> {
    let mut client = cluster.client(id).await?;
    let req = pb::ListPortsRequest {
        network_id: vpc.into(),
        limit: 1_000,
        stale,
        ..Default::default()
    };
    let ports = client.list_ports(req).await.ok()?.into_inner().ports;
    Some(ports.into_iter().map(|p| p.id).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_loses_no_acknowledged_write_and_rejoins() {
    let mut cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    let leader = cluster.leader(&all).await;
    let follower = *all.iter().find(|id| **id != leader).expect("a follower");

    // Writes through a follower (forwarded to the leader).
    let vpc = cluster
        .eventually("a VPC created through a follower", || async {
            let mut c = cluster.client(follower).await?;
            let req = pb::CreateVpcRequest {
                id: "00000000-0000-4000-8000-0000000000aa".into(),
                project_id: PROJECT.into(),
                name: "e2e".into(),
                ..Default::default()
            };
            c.create_vpc(req).await.ok().map(|r| r.into_inner())
        })
        .await;
    let mut c = cluster.client(follower).await.expect("connect follower");
    let subnet = pb::CreateSubnetRequest {
        project_id: PROJECT.into(),
        network_id: vpc.id.clone(),
        cidr: "10.9.0.0/24".into(),
        ..Default::default()
    };
    c.create_subnet(subnet).await.expect("create subnet");
    c.create_port(port(&vpc.id, &port_id(0)))
        .await
        .expect("create port");
    let batch = pb::CreatePortsRequest {
        ports: (1..=4).map(|n| port(&vpc.id, &port_id(n))).collect(),
        ..Default::default()
    };
    c.create_ports(batch).await.expect("create ports");
    let mut acknowledged: Vec<String> = (0..=4).map(port_id).collect();

    for id in &all {
        let seen = port_ids(&cluster, *id, &vpc.id, false).await;
        assert_eq!(
            seen.as_ref(),
            Some(&acknowledged),
            "linearizable read via node {id}"
        );
    }

    // SIGKILL the leader; the two survivors elect a new one.
    cluster.kill(leader);
    let survivors: Vec<u64> = all.iter().copied().filter(|id| *id != leader).collect();
    let new_leader = cluster.leader(&survivors).await;
    assert_ne!(new_leader, leader);
    for id in &survivors {
        let wanted = acknowledged.clone();
        let vpc_id = vpc.id.clone();
        let cluster = &cluster;
        cluster
            .eventually("acknowledged ports readable after failover", || {
                let (wanted, vpc_id) = (wanted.clone(), vpc_id.clone());
                async move { (port_ids(cluster, *id, &vpc_id, false).await? == wanted).then_some(()) }
            })
            .await;
    }

    // Writes continue. A retry of an indeterminate create sees ALREADY_EXISTS.
    for n in 5..=7 {
        let id = port_id(n);
        let vpc_id = vpc.id.clone();
        let target = survivors[(n as usize) % survivors.len()];
        let cluster = &cluster;
        cluster
            .eventually("a write after failover", || {
                let (id, vpc_id) = (id.clone(), vpc_id.clone());
                async move {
                    let mut c = cluster.client(target).await?;
                    match c.create_port(port(&vpc_id, &id)).await {
                        Ok(_) => Some(()),
                        Err(s) if s.code() == tonic::Code::AlreadyExists => Some(()),
                        Err(_) => None,
                    }
                }
            })
            .await;
        acknowledged.push(id);
    }

    // `alcor ctl` falls through the dead endpoint to a live one.
    let listed = cluster
        .ctl_json(
            &[leader, survivors[0]],
            &["ports", "list", "--network-id", &vpc.id],
        )
        .expect("ctl ports list through a dead endpoint first");
    assert_eq!(
        listed["ports"].as_array().map(Vec::len),
        Some(acknowledged.len())
    );

    // The killed member restarts from its data dir and catches up.
    cluster.spawn(leader);
    let wanted = acknowledged.clone();
    let vpc_id = vpc.id.clone();
    let cluster_ref = &cluster;
    cluster
        .eventually("the restarted member to catch up (stale read)", || {
            let (wanted, vpc_id) = (wanted.clone(), vpc_id.clone());
            async move {
                (port_ids(cluster_ref, leader, &vpc_id, true).await? == wanted).then_some(())
            }
        })
        .await;
    let seen = port_ids(&cluster, leader, &vpc.id, false).await;
    assert_eq!(
        seen,
        Some(acknowledged),
        "linearizable read via the restarted member"
    );
    let all_agree = cluster.leader(&all).await;
    assert!(survivors.contains(&all_agree) || all_agree == leader);
}
