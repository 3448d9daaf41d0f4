//! The ports table: rows in a hash table for lookups by ID, and the set of IDs
//! in order for every walk (listings, snapshots, index builds).
//!
//! Ports are the one table that reaches a million rows, and a port command
//! looks its port up five or more times (validation, the commit path, the goal
//! diff before and after, the change record). In a million-entry B-tree each of
//! those lookups walks four or five nodes, comparing 16-byte keys; in the hash
//! table it is one probe. The ordered set keeps every walk in ID order, so the
//! hash table is probed, and iterated only by the snapshot encode, which sorts
//! the rows by ID before writing them: its per-process seed cannot reach an
//! output (the snapshot, a listing, a diff), and two members with different
//! seeds write byte-identical snapshots (tested below).
//!
//! The rows hold `Arc<Port>` beside the hash of its ID (16 bytes per slot): a
//! hash table keeps up to half its slots empty, and empty slots cost little.
//! The stored hash lets the table grow without reading a single port (a
//! resize that fetched each row's ID from the heap was 0.6 s at 1,835,000
//! rows); it costs ~17 bytes of heap a port (`sm_memory`, benches/README.md
//! "elections under batch load").
//!
//! A row is shared, never changed in place: a commit stores a new `Arc`. So a
//! clone of the table shares every port with it and costs a pointer copy and
//! a count per row ([`State::freeze`](crate::State::freeze) takes one under
//! the state's lock and encodes the snapshot after letting go), and a change
//! record hands watchers the stored row instead of a copy.

#![expect(
    clippy::disallowed_types,
    reason = "the hash table is probed, or iterated and sorted by ID; every walk is in ID order"
)]

use crate::ids::Id;
use crate::model::Port;
use hashbrown::HashTable;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

/// Ports by ID; see the module documentation.
#[derive(Clone, Default)]
pub(crate) struct PortTable {
    /// Each row beside its ID's hash, so growing the table rehashes without
    /// reading the port: a resize of 1,835,000 rows that fetched each `Arc`'s
    /// ID from the heap held applies off for 0.6 s, on every member at the
    /// same log entry (benches/README, "elections under batch load").
    rows: HashTable<(u64, Arc<Port>)>,
    order: BTreeSet<Id>,
    /// SipHash keyed per process: port IDs may be chosen by clients, so a fixed
    /// hash would let one craft colliding IDs and slow every member's apply.
    seed: RandomState,
}

impl PortTable {
    fn hash(&self, id: &Id) -> u64 {
        self.seed.hash_one(id)
    }

    /// The port stored under `id`.
    pub(crate) fn get(&self, id: &Id) -> Option<&Port> {
        self.shared(id).map(|p| &**p)
    }

    /// The stored row of `id`, to share rather than copy.
    pub(crate) fn shared(&self, id: &Id) -> Option<&Arc<Port>> {
        let hash = self.hash(id);
        self.rows
            .find(hash, |(h, p)| *h == hash && p.id == *id)
            .map(|(_, p)| p)
    }

    pub(crate) fn contains_key(&self, id: &Id) -> bool {
        self.get(id).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Every port in ID order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Port> + '_ {
        self.order.iter().map(|id| match self.get(id) {
            Some(port) => port,
            None => panic!("port {id} is in the order set but not in the table"),
        })
    }

    /// Inserts or replaces the port stored under its own ID.
    pub(crate) fn insert(&mut self, port: Arc<Port>) -> Option<Arc<Port>> {
        let id = port.id;
        let old = self.put_row(port);
        if old.is_none() {
            self.order.insert(id);
        }
        old
    }

    /// Inserts or replaces a row in the hash table only.
    fn put_row(&mut self, port: Arc<Port>) -> Option<Arc<Port>> {
        let hash = self.hash(&port.id);
        match self
            .rows
            .entry(hash, |(h, p)| *h == hash && p.id == port.id, |(h, _)| *h)
        {
            hashbrown::hash_table::Entry::Occupied(mut slot) => {
                Some(std::mem::replace(&mut slot.get_mut().1, port))
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert((hash, port));
                None
            }
        }
    }

    /// Removes the port stored under `id`.
    pub(crate) fn remove(&mut self, id: &Id) -> Option<Arc<Port>> {
        let hash = self.hash(id);
        let slot = self
            .rows
            .find_entry(hash, |(h, p)| *h == hash && p.id == *id)
            .ok()?;
        let ((_, port), _) = slot.remove();
        self.order.remove(id);
        Some(port)
    }

    /// A table of `ports`, the last of several with one ID winning; the order
    /// set is built in bulk from the sorted IDs.
    pub(crate) fn from_ports(ports: Vec<Arc<Port>>) -> Self {
        let mut table = Self {
            rows: HashTable::with_capacity(ports.len()),
            order: ports.iter().map(|p| p.id).collect(),
            seed: RandomState::new(),
        };
        for port in ports {
            table.put_row(port);
        }
        table
    }
}

impl PartialEq for PortTable {
    fn eq(&self, other: &Self) -> bool {
        self.order == other.order && self.values().eq(other.values())
    }
}

impl std::fmt::Debug for PortTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.values().map(|p| (p.id, p)))
            .finish()
    }
}

/// Written as a map from ID to port in ID order: the bytes of the
/// `BTreeMap<Id, Box<Port>>` earlier snapshots held.
///
/// The rows are read in the table's own order and sorted by ID rather than
/// walked through the ordered set: a probe per ID was 40 % of the snapshot
/// encode at 1,000,000 ports (each probe waits on the row it finds), while
/// the table's rows can be read ahead and 24-byte pairs sort in cache. The
/// sort makes the order the IDs', so the table's seed still reaches no output.
impl serde::Serialize for PortTable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut rows: Vec<(Id, &Port)> = self.rows.iter().map(|(_, p)| (p.id, &**p)).collect();
        rows.sort_unstable_by_key(|(id, _)| *id);
        s.collect_map(rows)
    }
}

/// Read in bulk from the map [`Serialize`](serde::Serialize) writes; a port
/// stored under another port's ID is an error, not a row.
impl<'de> serde::Deserialize<'de> for PortTable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = PortTable;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map from port ID to port")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<PortTable, A::Error> {
                // No capacity from the claimed length: it is not trusted
                // (`decode`); the vector grows as entries actually decode.
                let mut ports = Vec::new();
                while let Some((id, port)) = map.next_entry::<Id, Arc<Port>>()? {
                    if port.id != id {
                        return Err(serde::de::Error::custom(format!(
                            "port {} stored under ID {id}",
                            port.id
                        )));
                    }
                    ports.push(port);
                }
                Ok(PortTable::from_ports(ports))
            }
        }
        d.deserialize_map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mac, Meta, PortStatus};
    use std::collections::BTreeMap;

    fn port(n: u128) -> Arc<Port> {
        Arc::new(Port {
            id: Id(n),
            name: format!("p{n}").into(),
            network_id: Id(1),
            fixed_ips: Box::new([]),
            mac_address: Mac([0, 0, 0, 0, 0, n as u8]),
            binding_host: None,
            device_id: "".into(),
            device_owner: "".into(),
            security_groups: Box::new([]),
            allowed_address_pairs: Box::new([]),
            admin_state_up: true,
            port_security_enabled: true,
            status: PortStatus::Down,
            meta: Meta::default(),
        })
    }

    fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("encode")
    }

    #[test]
    fn tables_with_different_seeds_walk_and_encode_in_id_order() {
        let ids = [907u128, 3, 55, 1 << 100, 12, 700, 8];
        let mut a = PortTable::default();
        let mut b = PortTable::default();
        for &n in &ids {
            a.insert(port(n));
        }
        for &n in ids.iter().rev() {
            b.insert(port(n));
        }
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        let walked: Vec<u128> = a.values().map(|p| p.id.0).collect();
        assert_eq!(walked, sorted);
        assert_eq!(a, b);
        assert_eq!(encode(&a), encode(&b));
    }

    #[test]
    fn the_encoding_is_the_btree_map_one_earlier_snapshots_hold() {
        let mut table = PortTable::default();
        let mut map = BTreeMap::new();
        for n in [40u128, 2, 17] {
            table.insert(port(n));
            map.insert(Id(n), port(n));
        }
        assert_eq!(encode(&table), encode(&map));
        let (decoded, _): (PortTable, usize) =
            bincode::serde::decode_from_slice(&encode(&map), bincode::config::standard())
                .expect("decode");
        assert_eq!(decoded, table);
    }

    #[test]
    fn replace_and_remove_keep_the_rows_and_the_order_in_step() {
        let mut table = PortTable::default();
        for n in 0..100u128 {
            assert!(table.insert(port(n)).is_none());
        }
        let mut renamed = Port::clone(&port(7));
        renamed.name = "renamed".into();
        assert_eq!(table.insert(Arc::new(renamed)).map(|p| p.id), Some(Id(7)));
        assert_eq!(table.get(&Id(7)).map(|p| &*p.name), Some("renamed"));
        for n in (0..100u128).step_by(2) {
            assert_eq!(table.remove(&Id(n)).map(|p| p.id), Some(Id(n)));
        }
        assert!(table.remove(&Id(0)).is_none());
        assert_eq!(table.len(), 50);
        let left: Vec<u128> = table.values().map(|p| p.id.0).collect();
        assert_eq!(left, (1..100u128).step_by(2).collect::<Vec<_>>());
        assert!(!table.contains_key(&Id(2)) && table.contains_key(&Id(3)));
    }

    #[test]
    fn a_port_stored_under_another_id_does_not_decode() {
        let mut map = BTreeMap::new();
        map.insert(Id(5), port(6));
        let decoded: Result<(PortTable, usize), _> =
            bincode::serde::decode_from_slice(&encode(&map), bincode::config::standard());
        let err = decoded.expect_err("a mismatched key must not decode");
        assert!(err.to_string().contains("stored under ID"), "{err}");
    }
}
