//! QoS over gRPC against a 3-process cluster, as an agent sees it: the
//! effective policy of a port (its own, else its network's) reaches the
//! agent of the port's host over the push stream, and so does every change
//! to the policy's rules and to which policy applies.

use std::time::Duration;

use alcor_host_push::{SimAgent, SimAgentConfig};
use alcor_proto::api::v1 as pb;
use alcor_state_machine::goal::QosConfig;
use alcor_state_machine::model::{Direction, QosRuleKind};
use alcor_state_machine::{GoalKey, GoalObject, Id};
use tonic::Code;

use crate::cluster::ProcessCluster;
use crate::workload::{self, req, uuid, write, PROJECT};

const HOST: &str = "qos-host";

/// The QoS part of the port's object in the agent's table (`None`: the
/// port is there without a policy; absent port: not yet).
fn agent_qos(agent: &SimAgent, port: &str) -> Option<Option<QosConfig>> {
    let id: Id = port.parse().expect("a UUID");
    match agent.table().get(&GoalKey::Port(id)) {
        Some(GoalObject::Port(p)) => Some(p.qos.clone()),
        _ => None,
    }
}

/// The egress limit of a policy as the agent holds it.
fn egress_kbps(qos: &QosConfig) -> Option<u32> {
    qos.rules.iter().find_map(|r| match r.kind {
        QosRuleKind::BandwidthLimit {
            direction: Direction::Egress,
            max_kbps,
            ..
        } => Some(max_kbps),
        _ => None,
    })
}

async fn set_port_policy(cluster: &ProcessCluster, all: &[u64], port: &str, policy: &str) {
    let message = pb::UpdatePortRequest {
        id: port.into(),
        qos_policy_id: Some(policy.into()),
        ..Default::default()
    };
    write(cluster, all, "set the port's QoS policy", &[], |mut c| {
        let message = message.clone();
        async move { c.update_port(req(message)).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_receives_its_ports_effective_qos_policy_and_every_change_to_it() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    let (vpc, subnet, port) = (uuid(0xc0), uuid(0xc1), uuid(0xc2));
    let (policy, rule) = (uuid(0xc3), uuid(0xc4));
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    workload::create_host(&cluster, &all, HOST, 7).await;
    workload::create_port(&cluster, &all, &vpc, &subnet, &port, HOST).await;
    let message = pb::CreateQosPolicyRequest {
        id: policy.clone(),
        project_id: PROJECT.into(),
        name: "gold".into(),
        ..Default::default()
    };
    write(
        &cluster,
        &all,
        "create QoS policy",
        &[Code::AlreadyExists],
        |mut c| {
            let message = message.clone();
            async move { c.create_qos_policy(req(message)).await }
        },
    )
    .await;
    let message = pb::CreateQosRuleRequest {
        policy_id: policy.clone(),
        rule: Some(pb::QosRule {
            id: rule.clone(),
            kind: Some(pb::qos_rule::Kind::BandwidthLimit(pb::QosBandwidthLimit {
                direction: pb::Direction::Egress as i32,
                max_kbps: 1000,
                max_burst_kbps: 100,
            })),
        }),
        ..Default::default()
    };
    write(
        &cluster,
        &all,
        "create QoS rule",
        &[Code::AlreadyExists],
        |mut c| {
            let message = message.clone();
            async move { c.create_qos_rule(req(message)).await }
        },
    )
    .await;

    let endpoints = all.iter().map(|id| cluster.api_addr(*id)).collect();
    let mut config = SimAgentConfig::new(HOST, endpoints);
    config.reconnect_backoff_max = Duration::from_millis(500);
    let agent = SimAgent::new(config).expect("agent config");
    let task = tokio::spawn({
        let agent = agent.clone();
        async move { agent.run(std::future::pending()).await }
    });
    cluster
        .eventually("the agent to hold the port without a policy", || async {
            (agent_qos(&agent, &port) == Some(None)).then_some(())
        })
        .await;

    // The port's own policy, then a change to its rule.
    set_port_policy(&cluster, &all, &port, &policy).await;
    cluster
        .eventually("the agent to learn the port's policy", || async {
            let qos = agent_qos(&agent, &port)??;
            (qos.policy_id.to_string() == policy && egress_kbps(&qos) == Some(1000)).then_some(())
        })
        .await;
    let message = pb::UpdateQosRuleRequest {
        policy_id: policy.clone(),
        rule_id: rule.clone(),
        max_kbps: Some(2000),
        ..Default::default()
    };
    write(&cluster, &all, "update QoS rule", &[], |mut c| {
        let message = message.clone();
        async move { c.update_qos_rule(req(message)).await }
    })
    .await;
    cluster
        .eventually("the agent to learn the rule's new rate", || async {
            (egress_kbps(&agent_qos(&agent, &port)??) == Some(2000)).then_some(())
        })
        .await;

    // Without its own policy the port takes its network's.
    set_port_policy(&cluster, &all, &port, "").await;
    cluster
        .eventually("the agent to see the policy removed", || async {
            (agent_qos(&agent, &port) == Some(None)).then_some(())
        })
        .await;
    let message = pb::UpdateVpcRequest {
        id: vpc.clone(),
        qos_policy_id: Some(policy.clone()),
        ..Default::default()
    };
    write(
        &cluster,
        &all,
        "set the network's QoS policy",
        &[],
        |mut c| {
            let message = message.clone();
            async move { c.update_vpc(req(message)).await }
        },
    )
    .await;
    cluster
        .eventually("the agent to learn the network's policy", || async {
            let qos = agent_qos(&agent, &port)??;
            (qos.policy_id.to_string() == policy).then_some(())
        })
        .await;
    task.abort();
}
