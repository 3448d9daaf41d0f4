//! An index of ID pairs kept as one ordered set of inner IDs per outer ID
//! (VPC -> its ports, group -> its ports).
//!
//! The same pairs in one `BTreeSet<(Id, Id)>` repeat the outer ID in every
//! entry: 32-byte keys, and every comparison on the way down a million-entry
//! tree compares the outer ID first. Nested, each entry is the 16-byte inner ID
//! (half the memory, half the cache lines per node searched), and the walk
//! over one outer ID's members is the whole inner set, in order. An outer ID
//! with no members has no entry, so equal pairs give equal indexes.

use crate::ids::Id;
use std::collections::{BTreeMap, BTreeSet};

/// Pairs `(outer, inner)` as `outer -> {inner}`; see the module documentation.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct IdSets(BTreeMap<Id, BTreeSet<Id>>);

impl IdSets {
    /// Adds a pair; whether it was new.
    pub(crate) fn insert(&mut self, outer: Id, inner: Id) -> bool {
        self.0.entry(outer).or_default().insert(inner)
    }

    /// Removes a pair, and the outer ID's set once it is empty; whether the
    /// pair was there.
    pub(crate) fn remove(&mut self, outer: Id, inner: Id) -> bool {
        let Some(set) = self.0.get_mut(&outer) else {
            return false;
        };
        let removed = set.remove(&inner);
        if set.is_empty() {
            self.0.remove(&outer);
        }
        removed
    }

    pub(crate) fn contains(&self, outer: Id, inner: Id) -> bool {
        self.0.get(&outer).is_some_and(|set| set.contains(&inner))
    }

    /// The inner IDs paired with `outer`, in order.
    pub(crate) fn of(&self, outer: Id) -> impl Iterator<Item = &Id> + '_ {
        self.0.get(&outer).into_iter().flatten()
    }

    /// Whether any pair has this outer ID.
    pub(crate) fn has_any(&self, outer: Id) -> bool {
        self.0.contains_key(&outer)
    }

    /// Adds `pairs` in bulk (sorted here; a pair given twice is kept once):
    /// each outer ID's set is built from its sorted members, not one insert at
    /// a time, and merged with what the index already holds.
    pub(crate) fn extend_bulk(&mut self, mut pairs: Vec<(Id, Id)>) {
        pairs.sort_unstable();
        let mut rest = &pairs[..];
        while let Some(&(outer, _)) = rest.first() {
            let n = rest.partition_point(|&(o, _)| o == outer);
            let mut built: BTreeSet<Id> = rest[..n].iter().map(|&(_, inner)| inner).collect();
            self.0.entry(outer).or_default().append(&mut built);
            rest = &rest[n..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_empties_out_of_the_index_and_equal_pairs_give_equal_indexes() {
        let mut a = IdSets::default();
        assert!(a.insert(Id(1), Id(10)) && a.insert(Id(1), Id(11)) && a.insert(Id(2), Id(10)));
        assert!(!a.insert(Id(1), Id(10)));
        assert!(a.remove(Id(2), Id(10)) && !a.remove(Id(2), Id(10)));
        assert!(!a.has_any(Id(2)) && a.has_any(Id(1)));
        assert!(a.contains(Id(1), Id(11)) && !a.contains(Id(2), Id(10)));
        let mut b = IdSets::default();
        b.extend_bulk(vec![(Id(1), Id(11)), (Id(1), Id(10)), (Id(1), Id(11))]);
        assert_eq!(a, b);
        assert_eq!(b.of(Id(1)).copied().collect::<Vec<_>>(), [Id(10), Id(11)]);
        assert_eq!(b.of(Id(3)).count(), 0);
    }

    #[test]
    fn a_bulk_extension_merges_with_pairs_already_indexed() {
        let mut a = IdSets::default();
        a.insert(Id(5), Id(1));
        a.extend_bulk(vec![(Id(5), Id(3)), (Id(4), Id(2)), (Id(5), Id(2))]);
        let mut b = IdSets::default();
        for (o, i) in [(5, 1), (5, 3), (4, 2), (5, 2)] {
            b.insert(Id(o), Id(i));
        }
        assert_eq!(a, b);
    }
}
