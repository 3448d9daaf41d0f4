//! The only place protobuf (`alcor.push.v1`) meets domain types.
//!
//! Goal objects and keys travel as `bincode_v1` bytes: bincode 2 with serde
//! and `config::standard()`, rejecting trailing bytes (see push.proto).
//! Decoding is bounded by `BINCODE_BYTES_MAX` (bincode's `with_limit`): a
//! length prefix claiming more fails instead of being allocated.

use alcor_proto::push::v1 as pb;
use alcor_state_machine::{GoalChange, GoalKey, GoalObject};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ConvertError;
use crate::limits;
use crate::message::{Ack, AgentMessage, ControllerMessage, ErrorCode, Hello, ResourceStatus};

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ConvertError> {
    Ok(bincode::serde::encode_to_vec(
        value,
        bincode::config::standard(),
    )?)
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, ConvertError> {
    let config = bincode::config::standard().with_limit::<{ limits::BINCODE_BYTES_MAX }>();
    let (value, n_read) = bincode::serde::decode_from_slice(bytes, config)
        .map_err(|source| ConvertError::Decode { what, source })?;
    if n_read != bytes.len() {
        return Err(ConvertError::Trailing {
            what,
            n_bytes: bytes.len() - n_read,
        });
    }
    Ok(value)
}

fn object_to_pb(object: &GoalObject) -> Result<pb::GoalObject, ConvertError> {
    Ok(pb::GoalObject {
        bincode_v1: encode(object)?,
        // Not in `bincode_v1` (see `PortConfig::port_security_enabled`).
        port_security_disabled: matches!(object, GoalObject::Port(p) if !p.port_security_enabled),
        // Not in `bincode_v1` either (see `PortConfig::qos`).
        qos_bincode_v1: match object {
            GoalObject::Port(p) => match &p.qos {
                Some(qos) => encode(qos)?,
                None => Vec::new(),
            },
            _ => Vec::new(),
        },
    })
}

fn object_from_pb(object: &pb::GoalObject) -> Result<GoalObject, ConvertError> {
    let mut decoded: GoalObject = decode("goal object", &object.bincode_v1)?;
    if let GoalObject::Port(port) = &mut decoded {
        port.port_security_enabled = !object.port_security_disabled;
        if !object.qos_bincode_v1.is_empty() {
            port.qos = Some(decode("QoS policy", &object.qos_bincode_v1)?);
        }
    }
    Ok(decoded)
}

fn key_to_pb(key: &GoalKey) -> Result<pb::GoalKey, ConvertError> {
    Ok(pb::GoalKey {
        bincode_v1: encode(key)?,
    })
}

fn change_to_pb(change: &GoalChange) -> Result<pb::Change, ConvertError> {
    let kind = match change {
        GoalChange::Upsert(object) => pb::change::Kind::Upsert(object_to_pb(object)?),
        GoalChange::Remove(key) => pb::change::Kind::Remove(key_to_pb(key)?),
    };
    Ok(pb::Change { kind: Some(kind) })
}

fn change_from_pb(change: &pb::Change) -> Result<GoalChange, ConvertError> {
    match &change.kind {
        Some(pb::change::Kind::Upsert(object)) => Ok(GoalChange::Upsert(object_from_pb(object)?)),
        Some(pb::change::Kind::Remove(key)) => {
            Ok(GoalChange::Remove(decode("goal key", &key.bincode_v1)?))
        }
        None => Err(ConvertError::Missing("Change.kind")),
    }
}

/// Encodes a controller message for the wire.
pub fn controller_to_pb(
    message: &ControllerMessage,
) -> Result<pb::ControllerMessage, ConvertError> {
    let kind = match message {
        ControllerMessage::FullSync {
            revision,
            objects,
            more,
        } => pb::controller_message::Kind::FullSync(pb::FullSync {
            revision: *revision,
            objects: objects.iter().map(object_to_pb).collect::<Result<_, _>>()?,
            more: *more,
        }),
        ControllerMessage::DiffBatch {
            from_revision,
            to_revision,
            changes,
        } => pb::controller_message::Kind::DiffBatch(pb::DiffBatch {
            from_revision: *from_revision,
            to_revision: *to_revision,
            changes: changes.iter().map(change_to_pb).collect::<Result<_, _>>()?,
        }),
        ControllerMessage::Error { code, message } => {
            let code = match code {
                ErrorCode::Unavailable => pb::ErrorCode::Unavailable,
                ErrorCode::Internal => pb::ErrorCode::Internal,
            };
            pb::controller_message::Kind::Error(pb::Error {
                code: code.into(),
                message: message.clone(),
            })
        }
    };
    Ok(pb::ControllerMessage { kind: Some(kind) })
}

/// Encodes the FullSync of `objects` at `revision` as parts of at most
/// `part_bytes_max` encoded bytes each (a part that holds a single larger
/// object is the exception), in order, every part but the last with
/// `more` set. No objects: one empty last part.
pub fn full_sync_parts_to_pb(
    revision: u64,
    objects: &[GoalObject],
    part_bytes_max: usize,
) -> Result<Vec<pb::ControllerMessage>, ConvertError> {
    let part = |objects: Vec<pb::GoalObject>, more: bool| pb::ControllerMessage {
        kind: Some(pb::controller_message::Kind::FullSync(pb::FullSync {
            revision,
            objects,
            more,
        })),
    };
    // The message without objects (the revision, the `more` flag and the
    // framing of the oneof), then each object's share.
    let overhead = prost::Message::encoded_len(&part(Vec::new(), true));
    let mut parts = Vec::new();
    let mut current: Vec<pb::GoalObject> = Vec::new();
    let mut current_bytes = overhead;
    for object in objects {
        let object = object_to_pb(object)?;
        let len = prost::Message::encoded_len(&object);
        // The field's tag (one byte) and the object's length prefix.
        let bytes = 1 + prost::encoding::encoded_len_varint(len as u64) + len;
        if !current.is_empty() && current_bytes + bytes > part_bytes_max {
            parts.push(part(std::mem::take(&mut current), true));
            current_bytes = overhead;
        }
        current.push(object);
        current_bytes += bytes;
    }
    parts.push(part(current, false));
    Ok(parts)
}

/// Decodes a controller message from the wire. Unknown error codes read as
/// [`ErrorCode::Internal`].
pub fn controller_from_pb(
    message: &pb::ControllerMessage,
) -> Result<ControllerMessage, ConvertError> {
    match &message.kind {
        Some(pb::controller_message::Kind::FullSync(sync)) => Ok(ControllerMessage::FullSync {
            revision: sync.revision,
            objects: sync
                .objects
                .iter()
                .map(object_from_pb)
                .collect::<Result<_, _>>()?,
            more: sync.more,
        }),
        Some(pb::controller_message::Kind::DiffBatch(batch)) => Ok(ControllerMessage::DiffBatch {
            from_revision: batch.from_revision,
            to_revision: batch.to_revision,
            changes: batch
                .changes
                .iter()
                .map(change_from_pb)
                .collect::<Result<_, _>>()?,
        }),
        Some(pb::controller_message::Kind::Error(error)) => {
            let code = match pb::ErrorCode::try_from(error.code) {
                Ok(pb::ErrorCode::Unavailable) => ErrorCode::Unavailable,
                _ => ErrorCode::Internal,
            };
            Ok(ControllerMessage::Error {
                code,
                message: error.message.clone(),
            })
        }
        None => Err(ConvertError::Missing("ControllerMessage.kind")),
    }
}

/// Encodes an agent message for the wire.
pub fn agent_to_pb(message: &AgentMessage) -> Result<pb::AgentMessage, ConvertError> {
    let kind = match message {
        AgentMessage::Hello(hello) => pb::agent_message::Kind::Hello(pb::Hello {
            protocol_version: hello.protocol_version,
            host_id: hello.host_id.clone(),
            last_applied_revision: hello.revision.unwrap_or(0),
            has_state: hello.revision.is_some(),
        }),
        AgentMessage::Ack(ack) => pb::agent_message::Kind::Ack(pb::Ack {
            revision: ack.revision,
            statuses: ack
                .statuses
                .iter()
                .map(|s| {
                    Ok(pb::ResourceStatus {
                        key: Some(key_to_pb(&s.key)?),
                        ok: s.result.is_ok(),
                        reason: s.result.clone().err().unwrap_or_default(),
                    })
                })
                .collect::<Result<_, ConvertError>>()?,
        }),
        AgentMessage::DigestReport {
            revision,
            digest,
            programmed,
        } => pb::agent_message::Kind::DigestReport(pb::DigestReport {
            revision: *revision,
            digest: digest.to_vec(),
            programmed_digest: programmed.map(|d| d.to_vec()).unwrap_or_default(),
        }),
    };
    Ok(pb::AgentMessage { kind: Some(kind) })
}

/// Decodes an agent message from the wire.
pub fn agent_from_pb(message: &pb::AgentMessage) -> Result<AgentMessage, ConvertError> {
    match &message.kind {
        Some(pb::agent_message::Kind::Hello(hello)) => Ok(AgentMessage::Hello(Hello {
            protocol_version: hello.protocol_version,
            host_id: hello.host_id.clone(),
            revision: hello.has_state.then_some(hello.last_applied_revision),
        })),
        Some(pb::agent_message::Kind::Ack(ack)) => Ok(AgentMessage::Ack(Ack {
            revision: ack.revision,
            statuses: ack
                .statuses
                .iter()
                .map(|s| {
                    let key = s
                        .key
                        .as_ref()
                        .ok_or(ConvertError::Missing("ResourceStatus.key"))?;
                    Ok(ResourceStatus {
                        key: decode("goal key", &key.bincode_v1)?,
                        result: if s.ok { Ok(()) } else { Err(s.reason.clone()) },
                    })
                })
                .collect::<Result<_, ConvertError>>()?,
        })),
        Some(pb::agent_message::Kind::DigestReport(report)) => {
            let digest = <[u8; 32]>::try_from(report.digest.as_slice())
                .map_err(|_| ConvertError::DigestLength(report.digest.len()))?;
            // Empty: no data plane, or an agent older than the field.
            let programmed = match report.programmed_digest.as_slice() {
                [] => None,
                bytes => Some(
                    <[u8; 32]>::try_from(bytes)
                        .map_err(|_| ConvertError::DigestLength(bytes.len()))?,
                ),
            };
            Ok(AgentMessage::DigestReport {
                revision: report.revision,
                digest,
                programmed,
            })
        }
        None => Err(ConvertError::Missing("AgentMessage.kind")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use alcor_state_machine::Id;

    #[test]
    fn a_length_prefix_claiming_terabytes_fails_instead_of_allocating() {
        // Varint 253 + u64 LE: a string of 2^44 bytes (16 TiB) in 9 bytes.
        let mut hostile = vec![253u8];
        hostile.extend_from_slice(&(1u64 << 44).to_le_bytes());
        assert!(decode::<String>("hostile", &hostile).is_err());
        assert!(decode::<Vec<u64>>("hostile", &hostile).is_err());
        assert!(decode::<GoalObject>("hostile", &hostile).is_err());
    }

    #[test]
    fn messages_survive_a_round_trip_through_protobuf() {
        let remove = GoalChange::Remove(GoalKey::SgMember {
            group_id: Id(7),
            port_id: Id(9),
        });
        let batch = ControllerMessage::DiffBatch {
            from_revision: 3,
            to_revision: 8,
            changes: vec![remove],
        };
        let back = controller_from_pb(&controller_to_pb(&batch).unwrap()).unwrap();
        assert_eq!(back, batch);

        let hello = AgentMessage::Hello(Hello {
            protocol_version: 1,
            host_id: "h1".to_string(),
            revision: Some(0),
        });
        assert_eq!(agent_from_pb(&agent_to_pb(&hello).unwrap()).unwrap(), hello);
    }

    #[test]
    fn a_digest_report_carries_the_programmed_digest_only_when_there_is_one() {
        for programmed in [None, Some([9; 32])] {
            let report = AgentMessage::DigestReport {
                revision: 4,
                digest: [1; 32],
                programmed,
            };
            let wire = agent_to_pb(&report).unwrap();
            assert_eq!(agent_from_pb(&wire).unwrap(), report);
        }
        // An agent that predates the field sends nothing in it.
        let old = pb::AgentMessage {
            kind: Some(pb::agent_message::Kind::DigestReport(pb::DigestReport {
                revision: 4,
                digest: vec![1; 32],
                ..Default::default()
            })),
        };
        let decoded = agent_from_pb(&old).unwrap();
        assert!(matches!(
            decoded,
            AgentMessage::DigestReport {
                programmed: None,
                ..
            }
        ));
        let mut truncated = old;
        if let Some(pb::agent_message::Kind::DigestReport(report)) = &mut truncated.kind {
            report.programmed_digest = vec![9; 31];
        }
        assert!(matches!(
            agent_from_pb(&truncated),
            Err(ConvertError::DigestLength(31))
        ));
    }

    fn neighbor(n: u128, addresses: usize) -> GoalObject {
        GoalObject::SgMember(alcor_state_machine::goal::SgMember {
            group_id: Id(1),
            port_id: Id(n),
            ips: (0..addresses)
                .map(|i| std::net::IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]))
                .collect(),
        })
    }

    fn sync_of(part: &pb::ControllerMessage) -> &pb::FullSync {
        match &part.kind {
            Some(pb::controller_message::Kind::FullSync(sync)) => sync,
            other => panic!("not a FullSync: {other:?}"),
        }
    }

    #[test]
    fn full_sync_parts_stay_under_the_cap_and_reassemble_in_order() {
        let objects: Vec<GoalObject> = (0..1_000).map(|n| neighbor(n, 1)).collect();
        let cap = 1_024;
        let parts = full_sync_parts_to_pb(42, &objects, cap).unwrap();
        assert!(parts.len() > 3, "{} parts", parts.len());
        let mut back = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            assert!(prost::Message::encoded_len(part) <= cap, "part {i}");
            let sync = sync_of(part);
            assert_eq!(sync.revision, 42);
            assert_eq!(sync.more, i + 1 < parts.len(), "part {i}");
            assert!(!sync.objects.is_empty());
            match controller_from_pb(part).unwrap() {
                ControllerMessage::FullSync { objects, .. } => back.extend(objects),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, objects);
        // The parts are not padded: all but the last are nearly full.
        let first = prost::Message::encoded_len(&parts[0]);
        assert!(first > cap - 64, "first part {first} bytes");
    }

    #[test]
    fn an_object_larger_than_a_part_goes_alone_and_an_empty_goal_is_one_last_part() {
        let objects = vec![neighbor(1, 1), neighbor(2, 400), neighbor(3, 1)];
        let parts = full_sync_parts_to_pb(7, &objects, 512).unwrap();
        let counts: Vec<usize> = parts.iter().map(|p| sync_of(p).objects.len()).collect();
        assert_eq!(counts, [1, 1, 1]);
        assert!(prost::Message::encoded_len(&parts[1]) > 512);

        let parts = full_sync_parts_to_pb(9, &[], 512).unwrap();
        assert_eq!(parts.len(), 1);
        let sync = sync_of(&parts[0]);
        assert!(sync.objects.is_empty() && !sync.more && sync.revision == 9);
    }

    fn port(port_security_enabled: bool) -> GoalObject {
        GoalObject::Port(alcor_state_machine::goal::PortConfig {
            id: Id(5),
            project_id: "p1".to_string(),
            network_id: Id(1),
            fixed_ips: Vec::new(),
            mac_address: alcor_state_machine::model::Mac([0xfa, 0x16, 0x3e, 0, 0, 5]),
            device_id: String::new(),
            device_owner: String::new(),
            security_groups: Vec::new(),
            allowed_address_pairs: Vec::new(),
            admin_state_up: true,
            port_security_enabled,
            qos: None,
        })
    }

    #[test]
    fn a_ports_qos_policy_reaches_the_agent_beside_bincode_v1() {
        use alcor_state_machine::goal::QosConfig;
        use alcor_state_machine::model::{QosRule, QosRuleKind};
        let mut object = port(true);
        if let GoalObject::Port(p) = &mut object {
            p.qos = Some(QosConfig {
                policy_id: Id(9),
                rules: vec![QosRule {
                    id: Id(10),
                    kind: QosRuleKind::DscpMarking { dscp_mark: 26 },
                }],
            });
        }
        let pb_object = object_to_pb(&object).unwrap();
        assert!(!pb_object.qos_bincode_v1.is_empty());
        assert_eq!(object_from_pb(&pb_object).unwrap(), object);
        // bincode_v1 alone (an older agent) is the port without a policy.
        assert_eq!(
            decode::<GoalObject>("goal object", &pb_object.bincode_v1).unwrap(),
            port(true)
        );
        assert!(object_to_pb(&port(true)).unwrap().qos_bincode_v1.is_empty());
    }

    #[test]
    fn a_ports_port_security_reaches_the_agent_in_diffs_and_full_syncs() {
        for enabled in [false, true] {
            let object = port(enabled);
            let batch = ControllerMessage::DiffBatch {
                from_revision: 1,
                to_revision: 2,
                changes: vec![GoalChange::Upsert(object.clone())],
            };
            let back = controller_from_pb(&controller_to_pb(&batch).unwrap()).unwrap();
            assert_eq!(back, batch);
            let parts = full_sync_parts_to_pb(2, std::slice::from_ref(&object), 4_096).unwrap();
            match controller_from_pb(&parts[0]).unwrap() {
                ControllerMessage::FullSync { objects, .. } => assert_eq!(objects, [object]),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn an_agent_reading_only_bincode_v1_sees_the_port_as_before() {
        // bincode_v1 is unchanged (older agents decode it); the flag is its
        // own field, and a controller that never sets it means "enabled".
        let pb_object = object_to_pb(&port(false)).unwrap();
        assert!(pb_object.port_security_disabled);
        assert_eq!(
            decode::<GoalObject>("goal object", &pb_object.bincode_v1).unwrap(),
            port(true)
        );
        let old_controller = pb::GoalObject {
            port_security_disabled: false,
            ..pb_object
        };
        assert_eq!(object_from_pb(&old_controller).unwrap(), port(true));
    }

    #[test]
    fn goal_key_with_trailing_bytes_is_rejected() {
        let mut bytes = encode(&GoalKey::Port(Id(1))).unwrap();
        bytes.push(0);
        let change = pb::Change {
            kind: Some(pb::change::Kind::Remove(pb::GoalKey { bincode_v1: bytes })),
        };
        assert!(matches!(
            change_from_pb(&change),
            Err(ConvertError::Trailing { n_bytes: 1, .. })
        ));
    }
}
