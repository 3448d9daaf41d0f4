//! Checked-in bytes of every format raft-core persists or sends, so that a
//! change to an encoding without a version bump, or a reader that no longer
//! reads what an older build wrote, fails here.
//!
//! `tests/fixtures/` holds one file per format, named after its version:
//! a stored log entry and vote (codec `FORMAT_VERSION`), a stored snapshot
//! (codec version and the state's `SNAPSHOT_VERSION`), a Raft wire payload
//! (`WIRE_VERSION`) and a backup file (`BACKUP_FORMAT_VERSION` and the
//! state's `SNAPSHOT_VERSION`). Each test
//! decodes the checked-in file and compares the value with the sample
//! built here, then encodes the sample and compares the bytes with the file.
//!
//! A missing file means a version changed: write the new fixtures with
//! `ALCOR_WRITE_FIXTURES=1 cargo test -p alcor-raft-core --lib fixtures`,
//! keep the old files and make the readers accept them (a newer build reads
//! what older members wrote; see README, "Backup, restore and upgrades").
//! Rewriting a fixture of an unchanged version is never right.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use alcor_proto::raft::v1::RaftMessage;
use alcor_state_machine::{Command, Id, Proposal, State, SNAPSHOT_VERSION};
use openraft::raft::AppendEntriesRequest;
use openraft::EntryPayload;

use crate::backup::{self, BACKUP_FORMAT_VERSION};
use crate::codec::{self, FORMAT_VERSION};
use crate::convert::{self, WIRE_VERSION};
use crate::storage::StoredSnapshot;
use crate::types::{
    CommittedLeaderId, Entry, LogId, Node, Request, SnapshotMeta, StoredMembership, TypeConfig,
    Vote,
};

/// The sample VPC's id (a client-chosen UUID v4).
const VPC_ID: u128 = 0x1111_1111_1111_4111_8111_1111_1111_1111;

/// The log id of `index` in `term`, led by node 1.
pub(crate) fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId { term, node_id: 1 }, index)
}

fn create_host() -> Proposal {
    Proposal {
        time_ms: 1_700_000_000_000,
        command: Command::CreateHost {
            id: "h1".to_string(),
            project_id: "p1".to_string(),
            underlay_ip: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
        },
    }
}

fn create_vpc() -> Proposal {
    Proposal {
        time_ms: 1_700_000_000_001,
        command: Command::CreateVpc {
            id: Id(VPC_ID),
            project_id: "p1".to_string(),
            name: "vpc".to_string(),
            cidr: Some("10.0.0.0/16".parse().unwrap()),
            vni: None,
            mtu: None,
            admin_state_up: true,
        },
    }
}

/// A state with a host (log index 3) and a VPC (4).
fn sample_state() -> State {
    let mut state = State::new();
    assert!(state.apply(3, &create_host()).result.is_ok());
    assert!(state.apply(4, &create_vpc()).result.is_ok());
    state
}

fn sample_entry() -> Entry {
    Entry {
        log_id: log_id(2, 4),
        payload: EntryPayload::Normal(Request::Apply(std::sync::Arc::new(create_vpc()))),
    }
}

fn sample_snapshot() -> StoredSnapshot {
    let members = [
        (1, "10.0.0.1:7001", "10.0.0.1:8001"),
        (2, "10.0.0.2:7001", "10.0.0.2:8001"),
    ]
    .into_iter()
    .map(|(id, raft_addr, api_addr)| {
        let node = Node {
            raft_addr: raft_addr.to_string(),
            api_addr: api_addr.to_string(),
        };
        (id, node)
    })
    .collect::<std::collections::BTreeMap<_, _>>();
    let voters = members.keys().copied().collect();
    let membership = openraft::Membership::new(vec![voters], members).unwrap();
    StoredSnapshot {
        meta: SnapshotMeta {
            last_log_id: Some(log_id(2, 5)),
            last_membership: StoredMembership::new(Some(log_id(1, 1)), membership),
        },
        data: sample_state().snapshot(),
    }
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Reads fixture `name` (writing `current` first under
/// `ALCOR_WRITE_FIXTURES`), checks it with `check_decoded`, then checks
/// that today's encoding of the sample is byte for byte the fixture.
fn check_fixture(name: &str, current: &[u8], check_decoded: impl FnOnce(&[u8])) {
    let path = path(name);
    if std::env::var_os("ALCOR_WRITE_FIXTURES").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, current).unwrap();
    }
    let Ok(stored) = std::fs::read(&path) else {
        panic!(
            "no fixture {}: a format version changed; see the doc of raft-core/src/fixtures.rs",
            path.display()
        );
    };
    check_decoded(&stored);
    assert!(
        stored == current,
        "the encoding of {name} changed without a version bump ({} bytes checked in, {} now)",
        stored.len(),
        current.len()
    );
}

#[test]
fn stored_log_entry_fixture_decodes_to_the_sample_and_encodes_the_same() {
    let name = format!("log-entry-r{FORMAT_VERSION}.bin");
    let current = codec::encode_record(&sample_entry()).unwrap();
    check_fixture(&name, &current, |stored| {
        let entry: Entry = codec::decode_record(stored).unwrap();
        assert_eq!(entry.log_id, log_id(2, 4));
        match entry.payload {
            EntryPayload::Normal(Request::Apply(proposal)) => assert_eq!(*proposal, create_vpc()),
            other => panic!("decoded {other:?}"),
        }
    });
}

#[test]
fn stored_vote_fixture_decodes_to_the_sample_and_encodes_the_same() {
    let name = format!("vote-r{FORMAT_VERSION}.bin");
    let vote = Vote::new_committed(7, 3);
    let current = codec::encode_record(&vote).unwrap();
    check_fixture(&name, &current, |stored| {
        let decoded: Vote = codec::decode_record(stored).unwrap();
        assert_eq!(decoded, vote);
    });
}

#[test]
fn stored_snapshot_fixture_decodes_to_the_sample_state_and_encodes_the_same() {
    let name = format!("stored-snapshot-r{FORMAT_VERSION}-s{SNAPSHOT_VERSION}.bin");
    let sample = sample_snapshot();
    let current = codec::encode_record(&sample).unwrap();
    check_fixture(&name, &current, |stored| {
        let decoded: StoredSnapshot = codec::decode_record(stored).unwrap();
        assert_eq!(decoded.meta, sample.meta);
        let state = State::restore(&decoded.data).unwrap();
        assert!(state.same_content(&sample_state()));
        assert_eq!(state.applied_index(), 4);
        assert_eq!(state.snapshot(), sample_state().snapshot());
    });
}

#[test]
fn raft_wire_payload_fixture_decodes_to_the_sample_and_encodes_the_same() {
    let name = format!("append-entries-w{WIRE_VERSION}.bin");
    let request = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(2, 1),
        prev_log_id: Some(log_id(2, 3)),
        entries: vec![sample_entry()],
        leader_commit: Some(log_id(2, 3)),
    };
    let message = convert::to_message(&request).unwrap();
    assert_eq!(message.version, WIRE_VERSION);
    check_fixture(&name, &message.payload, |stored| {
        let message = RaftMessage {
            version: WIRE_VERSION,
            payload: stored.to_vec(),
        };
        let decoded: AppendEntriesRequest<TypeConfig> = convert::from_message(&message).unwrap();
        assert_eq!(decoded.vote, request.vote);
        assert_eq!(decoded.prev_log_id, request.prev_log_id);
        assert_eq!(decoded.leader_commit, request.leader_commit);
        assert_eq!(decoded.entries, request.entries);
    });
}

#[test]
fn backup_fixture_decodes_to_the_sample_state_and_encodes_the_same() {
    // The body is a state snapshot: its format is part of the name.
    let name = format!("backup-v{BACKUP_FORMAT_VERSION}-s{SNAPSHOT_VERSION}.alcorbak");
    let current = backup::encode(Some(log_id(2, 5)), &sample_state().snapshot());
    check_fixture(&name, &current, |stored| {
        let decoded = backup::decode(stored).unwrap();
        assert_eq!(decoded.header.revision, 5);
        assert_eq!(decoded.header.term, 2);
        assert_eq!(decoded.header.leader_node_id, 1);
        assert!(decoded.state.same_content(&sample_state()));
        assert_eq!(decoded.body, sample_state().snapshot());
    });
}

/// Files older builds wrote (state snapshot format 4) still read: the state
/// they hold is the sample state.
#[test]
fn fixtures_of_state_format_4_still_restore_to_the_sample_state() {
    let stored = std::fs::read(path("stored-snapshot-r1-s4.bin")).unwrap();
    let decoded: StoredSnapshot = codec::decode_record(&stored).unwrap();
    assert_eq!(decoded.meta, sample_snapshot().meta);
    let state = State::restore(&decoded.data).unwrap();
    assert!(state.same_content(&sample_state()));
    assert_eq!(state.snapshot(), sample_state().snapshot());

    let stored = std::fs::read(path("backup-v1.alcorbak")).unwrap();
    let decoded = backup::decode(&stored).unwrap();
    assert_eq!(decoded.header.revision, 5);
    assert!(decoded.state.same_content(&sample_state()));
    assert_eq!(decoded.state.snapshot(), sample_state().snapshot());
}

#[test]
fn fixtures_of_state_format_5_still_restore_to_the_sample_state() {
    let stored = std::fs::read(path("stored-snapshot-r1-s5.bin")).unwrap();
    let decoded: StoredSnapshot = codec::decode_record(&stored).unwrap();
    assert_eq!(decoded.meta, sample_snapshot().meta);
    let state = State::restore(&decoded.data).unwrap();
    assert_eq!(state.snapshot(), sample_state().snapshot());

    let stored = std::fs::read(path("backup-v1-s5.alcorbak")).unwrap();
    let decoded = backup::decode(&stored).unwrap();
    assert_eq!(decoded.state.snapshot(), sample_state().snapshot());
}

#[test]
fn fixtures_of_state_format_7_still_restore_to_the_sample_state() {
    let stored = std::fs::read(path("stored-snapshot-r1-s7.bin")).unwrap();
    let decoded: StoredSnapshot = codec::decode_record(&stored).unwrap();
    assert_eq!(decoded.meta, sample_snapshot().meta);
    let state = State::restore(&decoded.data).unwrap();
    assert_eq!(state.snapshot(), sample_state().snapshot());

    let stored = std::fs::read(path("backup-v1-s7.alcorbak")).unwrap();
    let decoded = backup::decode(&stored).unwrap();
    assert_eq!(decoded.state.snapshot(), sample_state().snapshot());
}
