//! TLS on real processes: a cluster whose members serve only TLS (each with
//! its own certificate from a throwaway CA) serves SDK clients that trust
//! the CA, refuses plain text and certificates of other CAs, and its Raft
//! port takes only current members, each only in its own name.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use alcor_client::{Client, TlsConfig};
use alcor_proto::identity::Principal;
use alcor_proto::raft::v1::raft_service_client::RaftServiceClient;
use alcor_proto::raft::v1::RaftMessage;
use alcor_raft_core::codec;
use alcor_raft_core::types::Vote;
use alcor_state_machine::{Command, Proposal};
use alcor_tls::dev::DevCa;
use alcor_tls::TlsFiles;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

use crate::cluster::{ProcessCluster, WAIT_MS_MAX};

/// A 3-member TLS cluster and the CA's certificates for `extra` identities,
/// written under `dir` (`STEM.pem`, `STEM-key.pem`).
fn tls_cluster(dir: &Path, ca: &DevCa) -> ProcessCluster {
    ca.write_ca(dir).unwrap();
    let loopback = [IpAddr::from([127, 0, 0, 1])];
    for id in 1..=3 {
        let peer = Principal::Peer { member: id };
        ca.write_issued(dir, &format!("member-{id}"), &peer, &[], &loopback)
            .unwrap();
    }
    let dir = dir.to_path_buf();
    ProcessCluster::start_each(3, &[], move |id| {
        let file = |name: String| dir.join(name).display().to_string();
        vec![
            "--tls-cert".into(),
            file(format!("member-{id}.pem")),
            "--tls-key".into(),
            file(format!("member-{id}-key.pem")),
            "--tls-ca".into(),
            file("ca.pem".into()),
        ]
    })
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// An SDK client of `cluster` trusting `ca_pem`, presenting `identity`.
fn sdk(cluster: &ProcessCluster, ca_pem: Vec<u8>, identity: Option<&TlsFiles>) -> Client {
    let endpoints: Vec<String> = cluster
        .ids()
        .iter()
        .map(|id| cluster.api_addr(*id))
        .collect();
    Client::builder()
        .endpoints(endpoints)
        .deadline(Duration::from_secs(3))
        .tls(TlsConfig {
            ca_certificate_pem: Some(ca_pem),
            domain_name: None,
            identity_pem: identity.map(|f| (read(&f.cert), read(&f.key))),
        })
        .build()
        .unwrap()
}

fn create_host(n: u32) -> alcor_client::types::CreateHostRequest {
    alcor_client::types::CreateHostRequest {
        id: format!("tls-host-{n}"),
        project_id: "admin".to_string(),
        underlay_ip: format!("192.0.2.{n}"),
        ..Default::default()
    }
}

/// Writes host `n` through `client`, retrying until a leader serves it.
async fn write_eventually(client: &Client, n: u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    loop {
        match client.hosts().create(create_host(n)).await {
            Ok(_) => return,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("write {n}: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_clients_that_trust_its_ca_and_refuses_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::new("test CA").unwrap();
    let cluster = tls_cluster(dir.path(), &ca);
    let ca_pem = read(&dir.path().join("ca.pem"));
    let admin = ca
        .write_issued(dir.path(), "admin", &Principal::Admin, &[], &[])
        .unwrap();

    // A client certificate signed by the CA authenticates the caller (here
    // as the admin). Without one the handshake succeeds (client
    // certificates are optional on the API, a bearer token may stand in)
    // but the call carries no credential and is refused.
    write_eventually(&sdk(&cluster, ca_pem.clone(), Some(&admin)), 1).await;
    let anonymous = sdk(&cluster, ca_pem.clone(), None)
        .hosts()
        .create(create_host(2))
        .await;
    assert!(
        matches!(anonymous, Err(alcor_client::Error::Unauthenticated(_))),
        "{anonymous:?}"
    );

    // Plain text is refused.
    let plain = Client::builder()
        .endpoints([cluster.api_addr(1)])
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let refused = plain.hosts().create(create_host(3)).await;
    assert!(refused.is_err(), "{refused:?}");

    // A client certificate another CA signed is refused at the handshake.
    let other_dir = tempfile::tempdir().unwrap();
    let other = DevCa::new("another CA").unwrap();
    let stranger = other
        .write_issued(other_dir.path(), "admin", &Principal::Admin, &[], &[])
        .unwrap();
    let refused = sdk(&cluster, ca_pem.clone(), Some(&stranger))
        .hosts()
        .create(create_host(4))
        .await;
    assert!(refused.is_err(), "{refused:?}");

    // A client that does not trust the cluster's CA does not talk to it.
    let refused = sdk(&cluster, other.cert_pem().into_bytes(), None)
        .hosts()
        .create(create_host(5))
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

/// A Raft client of `addr` presenting `identity` (or no certificate).
async fn raft_client(
    addr: &str,
    ca_pem: &[u8],
    identity: Option<&TlsFiles>,
) -> Result<RaftServiceClient<tonic::transport::Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    if let Some(files) = identity {
        tls = tls.identity(Identity::from_pem(read(&files.cert), read(&files.key)));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(RaftServiceClient::new(channel))
}

fn message<T: serde::Serialize>(value: &T) -> RaftMessage {
    alcor_raft_core::convert::to_message(value).unwrap()
}

/// A vote request of candidate `member` in `term`.
fn vote(term: u64, member: u64) -> RaftMessage {
    let rpc = openraft::raft::VoteRequest::<alcor_raft_core::TypeConfig>::new(
        Vote::new(term, member),
        None,
    );
    message(&rpc)
}

/// An empty AppendEntries from leader `member` in `term`.
fn append(term: u64, member: u64) -> RaftMessage {
    let rpc = openraft::raft::AppendEntriesRequest::<alcor_raft_core::TypeConfig> {
        vote: Vote::new_committed(term, member),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    };
    message(&rpc)
}

/// A forwarded write creating a host.
fn forward() -> RaftMessage {
    let request = alcor_raft_core::Request::Apply(std::sync::Arc::new(Proposal {
        time_ms: 1,
        command: Command::CreateHost {
            id: "forged".to_string(),
            project_id: "admin".to_string(),
            underlay_ip: IpAddr::from([192, 0, 2, 99]),
        },
    }));
    RaftMessage {
        version: alcor_raft_core::convert::WIRE_VERSION,
        payload: codec::encode(&request).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raft_port_takes_only_current_members_each_in_its_own_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::new("test CA").unwrap();
    let cluster = tls_cluster(dir.path(), &ca);
    let ca_pem = read(&dir.path().join("ca.pem"));
    let admin = ca
        .write_issued(dir.path(), "admin", &Principal::Admin, &[], &[])
        .unwrap();
    let client = sdk(&cluster, ca_pem.clone(), Some(&admin));
    write_eventually(&client, 1).await;
    let raft_addr = cluster.raft_addr(1);

    // CA-signed certificates of a non-member and of the admin.
    let outsider = ca
        .write_issued(
            dir.path(),
            "peer-99",
            &Principal::Peer { member: 99 },
            &[],
            &[],
        )
        .unwrap();
    for identity in [&outsider, &admin] {
        let mut raft = raft_client(&raft_addr, &ca_pem, Some(identity))
            .await
            .unwrap();
        let status = raft.append_entries(append(1_000, 99)).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        let status = raft.vote(vote(1_000, 99)).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        let status = raft.forward(forward()).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }

    // Member 2's own certificate may not speak for member 3; as itself it
    // is heard (a pre-vote at term 0 is answered, and denied, by Raft).
    let member_2 = TlsFiles {
        ca: dir.path().join("ca.pem"),
        cert: dir.path().join("member-2.pem"),
        key: dir.path().join("member-2-key.pem"),
    };
    let mut raft = raft_client(&raft_addr, &ca_pem, Some(&member_2))
        .await
        .unwrap();
    let status = raft.vote(vote(1_000, 3)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = raft.append_entries(append(1_000, 3)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    raft.pre_vote(vote(0, 2)).await.unwrap();

    // No client certificate, or none of this CA, or plain text: no
    // connection at all.
    let no_cert = async {
        let mut raft = raft_client(&raft_addr, &ca_pem, None).await?;
        Ok::<_, Box<dyn std::error::Error>>(raft.vote(vote(1_000, 2)).await?)
    };
    assert!(no_cert.await.is_err());
    let other_dir = tempfile::tempdir().unwrap();
    let other = DevCa::new("another CA").unwrap();
    let forged = other
        .write_issued(
            other_dir.path(),
            "member-2",
            &Principal::Peer { member: 2 },
            &[],
            &[],
        )
        .unwrap();
    let forged_cert = async {
        let mut raft = raft_client(&raft_addr, &ca_pem, Some(&forged)).await?;
        Ok::<_, Box<dyn std::error::Error>>(raft.vote(vote(1_000, 2)).await?)
    };
    assert!(forged_cert.await.is_err());
    let plain = async {
        let mut raft = RaftServiceClient::connect(format!("http://{raft_addr}")).await?;
        Ok::<_, Box<dyn std::error::Error>>(raft.vote(vote(1_000, 2)).await?)
    };
    assert!(plain.await.is_err());

    // The cluster kept its leader and keeps serving writes.
    write_eventually(&client, 2).await;
    let status = client.cluster().status().await.unwrap();
    assert!(status.leader_id.is_some(), "{status:?}");
}
