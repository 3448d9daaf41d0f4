//! Authentication and authorization of a member started with a token file:
//! every gRPC call needs a known bearer token, roles and projects limit
//! what it may do, agents open only their own host's push stream (on the
//! push listener, apart from the API), acks cannot claim revisions never
//! sent, hostile push bytes do not take the member down, and a revoked
//! token stops working without a restart.

use std::time::Duration;

use alcor_api_gateway::tokens::hashed_entry;
use alcor_client::types::{self as pb, CreateHostRequest, CreatePortRequest, CreateVpcRequest};
use alcor_client::{Client, Error};
use alcor_proto::identity::{Denial, AUTHORIZATION_HEADER, BEARER_PREFIX};
use alcor_proto::push::v1 as push;
use alcor_proto::push::v1::host_push_client::HostPushClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::cluster::{free_port, ProcessCluster, WAIT_MS_MAX};

const ADMIN: &str = "admin-token";
const ALICE: &str = "alice-token";
const BOB: &str = "bob-token";
const READER: &str = "alice-reader-token";
const AGENT_A: &str = "agent-ha-token";
/// Stored only as its SHA-256 digest in the file.
const HASHED: &str = "hashed-alice-token";

fn token_file(without: &[&str]) -> String {
    let entries = [
        (ADMIN.to_string(), "role = \"admin\""),
        (
            ALICE.to_string(),
            "role = \"member\"\nproject_id = \"alice\"",
        ),
        (BOB.to_string(), "role = \"member\"\nproject_id = \"bob\""),
        (
            READER.to_string(),
            "role = \"reader\"\nproject_id = \"alice\"",
        ),
        (AGENT_A.to_string(), "role = \"agent\"\nhost_id = \"ha\""),
        (
            hashed_entry(HASHED),
            "role = \"member\"\nproject_id = \"alice\"",
        ),
    ];
    entries
        .iter()
        .filter(|(token, _)| !without.contains(&token.as_str()))
        .map(|(token, grant)| format!("[\"{token}\"]\n{grant}\n\n"))
        .collect()
}

/// A one-member cluster with a token file and a push listener of its own;
/// returns it, the token file and the push address.
fn secured() -> (
    ProcessCluster,
    tempfile::TempDir,
    std::path::PathBuf,
    String,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokens.toml");
    std::fs::write(&path, token_file(&[])).expect("write tokens");
    let push_addr = format!("127.0.0.1:{}", free_port());
    let file = path.display().to_string();
    let cluster =
        ProcessCluster::start_with(1, &["--token-file", &file, "--push-addr", &push_addr]);
    (cluster, dir, path, push_addr)
}

fn client(cluster: &ProcessCluster, token: Option<&str>) -> Client {
    let mut builder = Client::builder()
        .endpoints([cluster.api_addr(1)])
        .deadline(Duration::from_secs(10));
    if let Some(token) = token {
        builder = builder.token(token);
    }
    builder.build().expect("client")
}

/// Waits until the member answers the admin.
async fn ready(cluster: &ProcessCluster) -> Client {
    let admin = client(cluster, Some(ADMIN));
    cluster
        .eventually("the member serves the admin", || {
            let admin = admin.clone();
            async move {
                admin
                    .cluster()
                    .status()
                    .await
                    .ok()
                    .filter(|s| s.leader_id.is_some())
            }
        })
        .await;
    admin
}

fn denied(result: Result<impl std::fmt::Debug, Error>, denial: Denial) {
    match (&result, denial) {
        (Err(Error::Unauthenticated(d)), Denial::Unauthenticated) => {
            assert_eq!(d.reason, denial.code());
        }
        (Err(Error::PermissionDenied(d)), _) if denial != Denial::Unauthenticated => {
            assert_eq!(d.reason, denial.code());
        }
        _ => panic!("expected {denial:?}, got {result:?}"),
    }
}

fn vpc(project: &str, cidr: &str) -> CreateVpcRequest {
    CreateVpcRequest {
        project_id: project.to_string(),
        name: "n".to_string(),
        cidr: cidr.to_string(),
        ..Default::default()
    }
}

#[tokio::test]
async fn grpc_calls_need_a_known_token_and_stay_within_their_role_and_project() {
    let (cluster, _dir, _path, _push) = secured();
    let admin = ready(&cluster).await;

    // No token, an unknown token: UNAUTHENTICATED on both services.
    denied(
        client(&cluster, None).vpcs().list(Default::default()).await,
        Denial::Unauthenticated,
    );
    denied(
        client(&cluster, None).cluster().status().await,
        Denial::Unauthenticated,
    );
    denied(
        client(&cluster, Some("nope"))
            .vpcs()
            .list(Default::default())
            .await,
        Denial::Unauthenticated,
    );

    let alice = client(&cluster, Some(ALICE));
    let bob = client(&cluster, Some(BOB));
    let reader = client(&cluster, Some(READER));
    let agent = client(&cluster, Some(AGENT_A));

    // The project comes from the credential; another one in the body is refused.
    let net = alice
        .vpcs()
        .create(vpc("", "10.1.0.0/16"))
        .await
        .expect("alice's vpc");
    assert_eq!(net.project_id, "alice");
    denied(
        alice.vpcs().create(vpc("bob", "10.2.0.0/16")).await,
        Denial::ProjectDenied,
    );

    // Another project's resources do not exist for bob, whatever he tries.
    assert!(matches!(
        bob.vpcs().get(&net.id).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        bob.vpcs().delete(&net.id, None).await,
        Err(Error::NotFound(_))
    ));
    let on_alices = pb::CreateSubnetRequest {
        network_id: net.id.clone(),
        cidr: "10.1.0.0/24".to_string(),
        ..Default::default()
    };
    assert!(matches!(
        bob.subnets().create(on_alices).await,
        Err(Error::NotFound(_))
    ));
    let alices = pb::ListVpcsRequest {
        project_id: "alice".to_string(),
        ..Default::default()
    };
    denied(bob.vpcs().list(alices.clone()).await, Denial::ProjectDenied);
    let bobs = bob
        .vpcs()
        .list(Default::default())
        .await
        .expect("bob's list");
    assert!(bobs.items.iter().all(|v| v.project_id == "bob"), "{bobs:?}");
    assert!(admin.vpcs().get(&net.id).await.is_ok());

    // A reader reads its project and writes nothing.
    assert_eq!(reader.vpcs().get(&net.id).await.expect("read").id, net.id);
    assert_eq!(
        reader.vpcs().list(alices).await.expect("list").items.len(),
        1
    );
    denied(
        reader.vpcs().create(vpc("", "10.3.0.0/16")).await,
        Denial::RoleDenied,
    );
    denied(
        reader.vpcs().delete(&net.id, None).await,
        Denial::RoleDenied,
    );

    // Cluster operations and hosts are the admin's; agents have no
    // orchestrator API.
    denied(alice.cluster().snapshot().await, Denial::RoleDenied);
    denied(
        alice
            .cluster()
            .add_learner(9, "127.0.0.1:1", "127.0.0.1:2")
            .await,
        Denial::RoleDenied,
    );
    denied(reader.cluster().remove(1).await, Denial::RoleDenied);
    denied(alice.hosts().create(host("hx")).await, Denial::RoleDenied);
    denied(
        agent.vpcs().list(Default::default()).await,
        Denial::RoleDenied,
    );
    assert!(alice.cluster().status().await.is_ok());

    // binding_host is the admin's (Neutron's binding:host_id policy).
    admin.hosts().create(host("ha")).await.expect("host");
    let subnet = alice
        .subnets()
        .create(pb::CreateSubnetRequest {
            network_id: net.id.clone(),
            cidr: "10.1.0.0/24".to_string(),
            ..Default::default()
        })
        .await
        .expect("subnet");
    let bound = CreatePortRequest {
        network_id: net.id.clone(),
        binding_host: "ha".to_string(),
        ..Default::default()
    };
    denied(
        alice.ports().create(bound.clone()).await,
        Denial::AdminOnlyAttribute,
    );
    let port = alice
        .ports()
        .create(CreatePortRequest {
            network_id: net.id.clone(),
            ..Default::default()
        })
        .await
        .expect("unbound port");
    let bind = pb::UpdatePortRequest {
        id: port.id.clone(),
        binding_host: Some("ha".to_string()),
        ..Default::default()
    };
    denied(
        alice.ports().update(bind.clone()).await,
        Denial::AdminOnlyAttribute,
    );
    assert_eq!(
        admin
            .ports()
            .update(bind)
            .await
            .expect("admin binds")
            .binding_host,
        "ha"
    );
    assert!(!subnet.id.is_empty());

    // A token stored hashed works like any other.
    let hashed = client(&cluster, Some(HASHED));
    assert_eq!(
        hashed.vpcs().get(&net.id).await.expect("hashed token").id,
        net.id
    );
}

fn host(id: &str) -> CreateHostRequest {
    CreateHostRequest {
        id: id.to_string(),
        project_id: "infra".to_string(),
        underlay_ip: "192.0.2.10".to_string(),
        ..Default::default()
    }
}

/// An agent stream to `addr` for `host` with `token`: the outbound queue
/// (the Hello already in it) and the inbound stream, or the refusal.
async fn open_stream(
    addr: &str,
    token: &str,
    host: &str,
) -> Result<
    (
        mpsc::Sender<push::AgentMessage>,
        tonic::Streaming<push::ControllerMessage>,
    ),
    tonic::Status,
> {
    let mut client = HostPushClient::connect(format!("http://{addr}"))
        .await
        .expect("connect push");
    let (tx, rx) = mpsc::channel(8);
    let hello = push::AgentMessage {
        kind: Some(push::agent_message::Kind::Hello(push::Hello {
            protocol_version: alcor_host_push::PROTOCOL_VERSION,
            host_id: host.to_string(),
            last_applied_revision: 0,
            has_state: false,
        })),
    };
    tx.send(hello).await.expect("queue hello");
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request.metadata_mut().insert(
        AUTHORIZATION_HEADER,
        format!("{BEARER_PREFIX}{token}").parse().expect("header"),
    );
    let inbound = client.sync(request).await?.into_inner();
    Ok((tx, inbound))
}

/// The revision of the stream's first FullSync (all its parts read).
async fn full_sync_revision(inbound: &mut tonic::Streaming<push::ControllerMessage>) -> u64 {
    loop {
        let message = tokio::time::timeout(Duration::from_millis(WAIT_MS_MAX), inbound.message())
            .await
            .expect("a message in time")
            .expect("stream ok")
            .expect("stream open");
        if let Some(push::controller_message::Kind::FullSync(sync)) = message.kind {
            if !sync.more {
                return sync.revision;
            }
        }
    }
}

fn ack(revision: u64, statuses: Vec<push::ResourceStatus>) -> push::AgentMessage {
    push::AgentMessage {
        kind: Some(push::agent_message::Kind::Ack(push::Ack {
            revision,
            statuses,
        })),
    }
}

/// Whether the server ends the stream (an error or its end) within a while.
async fn closed(inbound: &mut tonic::Streaming<push::ControllerMessage>) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, inbound.message()).await {
            Err(_) => return false,
            Ok(Ok(Some(_))) => continue,
            Ok(_) => return true,
        }
    }
}

#[tokio::test]
async fn agents_open_only_their_own_host_stream_and_ack_only_what_was_sent() {
    let (cluster, _dir, _path, push_addr) = secured();
    let admin = ready(&cluster).await;
    for id in ["ha", "hb"] {
        admin.hosts().create(host(id)).await.expect("host");
    }
    let net = admin
        .vpcs()
        .create(vpc("p", "10.9.0.0/16"))
        .await
        .expect("vpc");
    admin
        .subnets()
        .create(pb::CreateSubnetRequest {
            project_id: "p".to_string(),
            network_id: net.id.clone(),
            cidr: "10.9.0.0/24".to_string(),
            ..Default::default()
        })
        .await
        .expect("subnet");
    let port = admin
        .ports()
        .create(CreatePortRequest {
            project_id: "p".to_string(),
            network_id: net.id.clone(),
            binding_host: "ha".to_string(),
            ..Default::default()
        })
        .await
        .expect("port on ha");

    // The push stream is not on the API listener any more.
    let on_api = open_stream(&cluster.api_addr(1), AGENT_A, "ha").await;
    assert_eq!(
        on_api.err().map(|s| s.code()),
        Some(tonic::Code::Unimplemented)
    );

    // Host A's agent may not open host B's stream, nor may a member.
    let other = open_stream(&push_addr, AGENT_A, "hb").await;
    let Err(status) = other else {
        panic!("hb's stream was opened with ha's token");
    };
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    let reason = status
        .metadata()
        .get(alcor_proto::REASON_HEADER)
        .and_then(|v| v.to_str().ok());
    assert_eq!(reason, Some(Denial::HostDenied.code()));
    let member = open_stream(&push_addr, ALICE, "ha").await;
    assert_eq!(
        member.err().map(|s| s.code()),
        Some(tonic::Code::PermissionDenied)
    );
    let nobody = open_stream(&push_addr, "nope", "ha").await;
    assert_eq!(
        nobody.err().map(|s| s.code()),
        Some(tonic::Code::Unauthenticated)
    );

    // An ack beyond what was sent closes the stream and marks nothing.
    let (tx, mut inbound) = open_stream(&push_addr, AGENT_A, "ha")
        .await
        .expect("ha's stream");
    let revision = full_sync_revision(&mut inbound).await;
    tx.send(ack(u64::MAX, Vec::new())).await.expect("send ack");
    assert!(closed(&mut inbound).await, "an ack of u64::MAX was taken");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = admin.ports().get(&port.id).await.expect("port").status;
    assert_eq!(
        status,
        pb::PortStatus::Down as i32,
        "the hostile ack marked the port"
    );

    // Hostile bytes in an ack's key: the stream closes, the member stays up.
    let (tx, mut inbound) = open_stream(&push_addr, AGENT_A, "ha")
        .await
        .expect("ha's stream");
    let revision_again = full_sync_revision(&mut inbound).await;
    let mut hostile = vec![253u8];
    hostile.extend_from_slice(&(1u64 << 44).to_le_bytes());
    let key = push::ResourceStatus {
        key: Some(push::GoalKey {
            bincode_v1: hostile,
        }),
        ok: true,
        reason: String::new(),
    };
    tx.send(ack(revision_again, vec![key]))
        .await
        .expect("send hostile ack");
    assert!(closed(&mut inbound).await, "a malformed ack was taken");
    assert!(
        admin.cluster().status().await.is_ok(),
        "the member went down"
    );

    // The agent's own, honest ack marks its own port.
    let (tx, mut inbound) = open_stream(&push_addr, AGENT_A, "ha")
        .await
        .expect("ha's stream");
    let revision = full_sync_revision(&mut inbound).await.max(revision);
    tx.send(ack(revision, Vec::new())).await.expect("send ack");
    cluster
        .eventually("the honest ack marks the port ACTIVE", || {
            let admin = admin.clone();
            let id = port.id.clone();
            async move {
                let status = admin.ports().get(&id).await.ok()?.status;
                (status == pb::PortStatus::Active as i32).then_some(())
            }
        })
        .await;
}

#[tokio::test]
async fn a_revoked_token_stops_working_without_a_restart() {
    let (cluster, dir, path, _push) = secured();
    let admin = ready(&cluster).await;
    let alice = client(&cluster, Some(ALICE));
    alice
        .vpcs()
        .list(Default::default())
        .await
        .expect("alice before");
    // Rewrite the file without alice's token (a new file renamed over it).
    let tmp = dir.path().join("tokens.tmp");
    std::fs::write(&tmp, token_file(&[ALICE])).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    cluster
        .eventually("alice's token is refused", || {
            let alice = alice.clone();
            async move {
                matches!(
                    alice.vpcs().list(Default::default()).await,
                    Err(Error::Unauthenticated(_))
                )
                .then_some(())
            }
        })
        .await;
    admin
        .vpcs()
        .list(Default::default())
        .await
        .expect("admin after");
    // A broken file keeps the table in force.
    std::fs::write(&tmp, "not a token file [").expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    admin
        .vpcs()
        .list(Default::default())
        .await
        .expect("admin after a broken file");
}
