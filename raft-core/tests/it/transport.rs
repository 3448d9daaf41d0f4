//! The Raft gRPC service rejects malformed envelopes with a status instead
//! of panicking or passing garbage to openraft, and hostile payloads (huge
//! claimed lengths, deep nesting) with a status instead of crashing.

use alcor_proto::raft::v1::raft_service_client::RaftServiceClient;
use alcor_proto::raft::v1::RaftMessage;
use alcor_raft_core::codec;
use alcor_raft_core::types::Entry;
use alcor_raft_core::{Request, TypeConfig};
use alcor_state_machine::{Command, Proposal};
use tonic::Code;

use crate::cluster::TestCluster;

#[tokio::test]
async fn garbage_payloads_get_grpc_errors_not_panics() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let addr = format!("http://{}", cluster.node(1).raft_addr());
    let mut client = RaftServiceClient::connect(addr).await.unwrap();

    let garbage = RaftMessage {
        version: 1,
        payload: vec![0xff; 64],
    };
    let status = client.append_entries(garbage.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client.vote(garbage.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client.install_snapshot(garbage.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client.forward(garbage.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let future_version = RaftMessage {
        version: 99,
        payload: Vec::new(),
    };
    let status = client.read_index(future_version).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    // A replication stream that starts with garbage gets no answer and ends.
    let input = tokio_stream::iter(vec![garbage.clone()]);
    let mut answers = client.stream_append(input).await.unwrap().into_inner();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), answers.message()).await;
    assert!(matches!(answer, Ok(Ok(None))), "{answer:?}");

    // The node is still healthy afterwards.
    let write = cluster
        .node(1)
        .client_write(crate::cluster::create_host(1))
        .await
        .unwrap();
    assert!(write.result.is_ok());
    cluster.shutdown().await;
}

/// The bytes of `wrapped` with the bytes it adds to `plain` (one wrapper
/// around the command) repeated `depth` times: the same value with `depth`
/// wrappers, built without recursing.
fn nest_wrapper_bytes(plain: &[u8], wrapped: &[u8], depth: usize) -> Vec<u8> {
    let at = plain
        .iter()
        .zip(wrapped)
        .take_while(|(a, b)| a == b)
        .count();
    let wrapper = &wrapped[at..at + wrapped.len() - plain.len()];
    let mut bytes = plain[..at].to_vec();
    bytes.extend_from_slice(&wrapper.repeat(depth));
    bytes.extend_from_slice(&plain[at..]);
    bytes
}

/// `bytes` with the first string of length 4 holding `marker` replaced by
/// the varint length 2^44 (16 TiB) and no string bytes.
fn claim_16_tib(bytes: &[u8], marker: &[u8; 4]) -> Vec<u8> {
    let mut needle = vec![4u8];
    needle.extend_from_slice(marker);
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("marker string in the encoding");
    let mut out = bytes[..at].to_vec();
    out.push(253);
    out.extend_from_slice(&(1u64 << 44).to_le_bytes());
    out.extend_from_slice(&bytes[at + needle.len()..]);
    out
}

/// An AppendEntries from a made-up leader (term 1, node 9) carrying one
/// entry that applies `command`.
fn append_entries_payload(command: Command) -> Vec<u8> {
    let leader = alcor_raft_core::types::CommittedLeaderId {
        term: 1,
        node_id: 9,
    };
    let entry = Entry {
        log_id: openraft::LogId::new(leader, 1),
        payload: openraft::EntryPayload::Normal(Request::Apply(std::sync::Arc::new(Proposal {
            time_ms: 1,
            command,
        }))),
    };
    let rpc = openraft::raft::AppendEntriesRequest::<TypeConfig> {
        vote: openraft::Vote::new_committed(1, 9),
        prev_log_id: None,
        entries: vec![entry],
        leader_commit: None,
    };
    codec::encode(&rpc).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_lengths_and_nesting_get_grpc_errors_and_the_node_keeps_serving() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let addr = format!("http://{}", cluster.node(1).raft_addr());
    let mut client = RaftServiceClient::connect(addr).await.unwrap();
    let message = |payload: Vec<u8>| RaftMessage {
        version: 1,
        payload,
    };

    // Issue 13's 12 bytes: `Request::Apply` of a `CreateHost` whose host id
    // claims 16 TiB. The old decoder tried to allocate it and aborted.
    let mut forward = vec![0, 0, 0, 253];
    forward.extend_from_slice(&(1u64 << 44).to_le_bytes());
    assert_eq!(forward.len(), 12);
    let status = client.forward(message(forward)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // The same claim inside an AppendEntries entry.
    let host = Command::CreateHost {
        id: "HOST".to_string(),
        project_id: "p".to_string(),
        underlay_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    };
    let payload = claim_16_tib(&append_entries_payload(host.clone()), b"HOST");
    let status = client.append_entries(message(payload)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // 100,000 `Idempotent` wrappers (about 400 KB): the old decoder recursed
    // once per wrapper and overflowed the stack.
    let wrapped = Command::Idempotent {
        token: "t".to_string(),
        command: Box::new(host.clone()),
    };
    let plain_forward = codec::encode(&Request::Apply(std::sync::Arc::new(Proposal {
        time_ms: 1,
        command: host.clone(),
    })))
    .unwrap();
    let wrapped_forward = codec::encode(&Request::Apply(std::sync::Arc::new(Proposal {
        time_ms: 1,
        command: wrapped.clone(),
    })))
    .unwrap();
    let deep = nest_wrapper_bytes(&plain_forward, &wrapped_forward, 100_000);
    let status = client.forward(message(deep)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let deep = nest_wrapper_bytes(
        &append_entries_payload(host.clone()),
        &append_entries_payload(wrapped),
        100_000,
    );
    let status = client.append_entries(message(deep)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // The node is still up and still commits writes.
    let write = cluster
        .node(1)
        .client_write(crate::cluster::create_host(2))
        .await
        .unwrap();
    assert!(write.result.is_ok(), "{:?}", write.result);
    cluster.shutdown().await;
}

/// One `InstallSnapshot` piece from a made-up leader (node 9, `term`) of
/// the snapshot up to log index `index`, `bytes` long at `offset`.
fn snapshot_piece(term: u64, index: u64, offset: u64, bytes: usize) -> RaftMessage {
    let leader = alcor_raft_core::types::CommittedLeaderId { term, node_id: 9 };
    let chunk = alcor_raft_core::network::SnapshotChunk {
        vote: openraft::Vote::new_committed(term, 9),
        meta: alcor_raft_core::types::SnapshotMeta {
            last_log_id: Some(openraft::LogId::new(leader, index)),
            last_membership: Default::default(),
        },
        offset,
        data: vec![0x5a; bytes],
        done: false,
    };
    alcor_raft_core::convert::to_message(&chunk).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_snapshot_pieces_are_refused_and_the_node_keeps_serving() {
    const MIB: usize = 1024 * 1024;
    // 6 MiB instead of SNAPSHOT_BYTES_MAX's 2 GiB, so the test sends little.
    let cluster = TestCluster::start(1, |c| c.snapshot_bytes_max = 6 * MIB as u64).await;
    let addr = format!("http://{}", cluster.node(1).raft_addr());
    let mut client = RaftServiceClient::connect(addr)
        .await
        .unwrap()
        .max_encoding_message_size(64 * MIB);
    let chunk = alcor_raft_core::limits::SNAPSHOT_CHUNK_BYTES_MAX as usize;

    // A snapshot that grows past the bound is refused and dropped: the next
    // piece has nothing to continue.
    client
        .install_snapshot(snapshot_piece(5, 100, 0, chunk))
        .await
        .unwrap();
    let status = client
        .install_snapshot(snapshot_piece(5, 100, chunk as u64, chunk))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let status = client
        .install_snapshot(snapshot_piece(5, 100, chunk as u64, MIB))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    // A piece larger than any sender makes is refused outright.
    let status = client
        .install_snapshot(snapshot_piece(5, 100, 0, chunk + 1))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // A piece of another snapshot (or with a gap) ends the one in progress
    // instead of joining it.
    client
        .install_snapshot(snapshot_piece(5, 100, 0, MIB))
        .await
        .unwrap();
    let status = client
        .install_snapshot(snapshot_piece(5, 200, MIB as u64, MIB))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let status = client
        .install_snapshot(snapshot_piece(5, 100, MIB as u64, MIB))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    // A new snapshot from an older vote leaves the newer one in progress.
    client
        .install_snapshot(snapshot_piece(5, 100, 0, MIB))
        .await
        .unwrap();
    let status = client
        .install_snapshot(snapshot_piece(4, 300, 0, MIB))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    client
        .install_snapshot(snapshot_piece(5, 100, MIB as u64, MIB))
        .await
        .unwrap();

    // The node is still up and still commits writes.
    let write = cluster
        .node(1)
        .client_write(crate::cluster::create_host(3))
        .await
        .unwrap();
    assert!(write.result.is_ok(), "{:?}", write.result);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raft_message_of_a_newer_wire_version_stops_the_member_with_a_clear_error() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let addr = format!("http://{}", cluster.node(1).raft_addr());
    let mut client = RaftServiceClient::connect(addr).await.unwrap();
    let wait = std::time::Duration::from_millis(300);

    // Garbage of the current version is refused and is no reason to stop.
    let garbage = RaftMessage {
        version: alcor_raft_core::convert::WIRE_VERSION,
        payload: vec![0xff; 8],
    };
    assert!(client.vote(garbage).await.is_err());
    assert!(tokio::time::timeout(wait, cluster.node(1).fatal())
        .await
        .is_err());

    let newer = RaftMessage {
        version: alcor_raft_core::convert::WIRE_VERSION + 1,
        payload: Vec::new(),
    };
    let status = client.vote(newer).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let reason = tokio::time::timeout(wait, cluster.node(1).fatal())
        .await
        .expect("the member stops");
    assert!(
        reason.contains("newer than this build speaks") && reason.contains("upgrade this member"),
        "{reason}"
    );
    cluster.shutdown().await;
}
