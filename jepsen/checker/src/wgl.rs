//! The Wing–Gong linearizability search with Lowe's memoization, as in Porcupine.
//!
//! Every operation contributes a *call* and a *return* entry; all entries are sorted by
//! time (calls before returns on equal times, so operations that touch count as
//! concurrent; indeterminate returns last) into a doubly linked list. A cursor walks the
//! list:
//!
//! - at a call whose operation is legal in the current state, and whose (linearized set ∪
//!   {op}, next state) configuration has not been seen, the operation is *lifted* (its call
//!   and return are unlinked), pushed on a stack, and the walk restarts at the head;
//! - at a call that is illegal or already seen, it moves on;
//! - at a return, the operation it closes was not linearized before its own response:
//!   backtrack — pop the last lifted operation, *unlift* it (relink in reverse order),
//!   restore its state, and continue after its call. An empty stack means no
//!   linearization exists.
//!
//! The list becomes empty (all linearized) or the cursor reaches the return of an
//! indeterminate operation: all finite returns precede it in time and the cursor never
//! passes a return, so every operation left is indeterminate, and those may never have
//! taken effect — linearizable.
//!
//! The memo cache keys on an incrementally maintained Zobrist hash of the linearized
//! bitset combined with the state's hash; bitsets live in one arena.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rustc_hash::{FxHashMap, FxHasher};

use crate::model::{Entry, Model};

/// Search steps between two looks at the clock.
const DEADLINE_CHECK_EVERY: u64 = 1 << 12;
/// Most bitset words the memo cache of one partition may hold (8 bytes each: 2 GiB).
pub const CACHE_WORDS_MAX: usize = 1 << 28;
/// Most operations one partition may have (entry ids are `u32` list nodes).
pub const PARTITION_OPS_MAX: usize = (u32::MAX / 4) as usize;

const NIL: u32 = u32::MAX;

/// When to give up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits<'a> {
    /// Give up (unknown) at this instant.
    pub deadline: Option<Instant>,
    /// Give up (unknown) when this becomes true.
    pub cancel: Option<&'a AtomicBool>,
}

/// Why the search could not place the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure<S> {
    /// The deepest partial linearization found, as entry positions in order.
    pub prefix: Vec<usize>,
    /// The state after `prefix`.
    pub state: S,
    /// The not-yet-linearized operation that returns first: the search could not place
    /// it (nor anything concurrent with it) after `prefix`.
    pub blocked: usize,
    /// The operations not in `prefix` invoked no later than `blocked` returned, by call
    /// time (`blocked` included): the candidates that all failed at this point.
    pub concurrent: Vec<usize>,
}

/// The search's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<S> {
    /// A linearization exists; the entry positions in a witness order (indeterminate
    /// operations left out of it never took effect).
    Linearizable(Vec<usize>),
    /// None exists.
    NotLinearizable(Failure<S>),
    /// Deadline, cancellation or the cache limit was hit after this many steps.
    Unknown {
        /// Why.
        reason: &'static str,
        /// Search steps taken.
        steps: u64,
    },
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Memo of visited (linearized set, state) configurations.
struct Cache<S> {
    heads: FxHashMap<u64, u32>,
    states: Vec<(S, u32)>,
    words: Vec<u64>,
    width: usize,
}

impl<S: Eq + Hash + Clone> Cache<S> {
    fn new(width: usize) -> Self {
        Self {
            heads: FxHashMap::default(),
            states: Vec::new(),
            words: Vec::new(),
            width,
        }
    }

    /// Inserts; false if it was already present.
    fn insert(&mut self, bits: &[u64], bits_hash: u64, state: &S) -> bool {
        let mut hasher = FxHasher::default();
        state.hash(&mut hasher);
        let key = bits_hash ^ splitmix64(hasher.finish());
        let head = self.heads.get(&key).copied().unwrap_or(NIL);
        let mut at = head;
        while at != NIL {
            let (seen, next) = &self.states[at as usize];
            let offset = at as usize * self.width;
            if seen == state && self.words[offset..offset + self.width] == *bits {
                return false;
            }
            at = *next;
        }
        let id = self.states.len() as u32;
        self.states.push((state.clone(), head));
        self.words.extend_from_slice(bits);
        self.heads.insert(key, id);
        true
    }

    fn full(&self) -> bool {
        self.words.len() >= CACHE_WORDS_MAX || self.states.len() >= NIL as usize - 1
    }
}

/// The entry list: nodes `0..n` are calls, `n..2n` returns, `2n` the head.
struct List {
    next: Vec<u32>,
    prev: Vec<u32>,
    n: u32,
}

impl List {
    fn build<O>(entries: &[Entry<O>]) -> Self {
        let n = entries.len();
        // (is indeterminate, time, is return, entry): calls before returns on equal
        // times; indeterminate returns after everything.
        let mut order: Vec<(bool, u64, bool, u32)> = Vec::with_capacity(2 * n);
        for (i, e) in entries.iter().enumerate() {
            order.push((false, e.call, false, i as u32));
            match e.ret {
                Some(t) => order.push((false, t, true, i as u32)),
                None => order.push((true, u64::MAX, true, i as u32)),
            }
        }
        order.sort_unstable();
        let head = 2 * n as u32;
        let mut next = vec![NIL; 2 * n + 1];
        let mut prev = vec![NIL; 2 * n + 1];
        let mut last = head;
        for (_, _, is_return, i) in order {
            let node = if is_return { i + n as u32 } else { i };
            next[last as usize] = node;
            prev[node as usize] = last;
            last = node;
        }
        Self {
            next,
            prev,
            n: n as u32,
        }
    }

    fn head(&self) -> u32 {
        2 * self.n
    }

    fn unlink(&mut self, x: u32) {
        let (p, nx) = (self.prev[x as usize], self.next[x as usize]);
        self.next[p as usize] = nx;
        if nx != NIL {
            self.prev[nx as usize] = p;
        }
    }

    fn relink(&mut self, x: u32) {
        let (p, nx) = (self.prev[x as usize], self.next[x as usize]);
        self.next[p as usize] = x;
        if nx != NIL {
            self.prev[nx as usize] = x;
        }
    }

    fn lift(&mut self, i: u32) {
        self.unlink(i);
        self.unlink(i + self.n);
    }

    fn unlift(&mut self, i: u32) {
        self.relink(i + self.n);
        self.relink(i);
    }
}

/// Searches for a linearization of `entries` under `model`.
pub fn search<M: Model>(
    model: &M,
    entries: &[Entry<M::Op>],
    limits: Limits<'_>,
) -> Outcome<M::State> {
    if entries.len() > PARTITION_OPS_MAX {
        return Outcome::Unknown {
            reason: "partition has too many operations",
            steps: 0,
        };
    }
    let n = entries.len();
    let mut list = List::build(entries);
    let head = list.head();
    let width = n.div_ceil(64).max(1);
    let zobrist: Vec<u64> = (0..n as u64).map(splitmix64).collect();
    let mut bits = vec![0u64; width];
    let mut bits_hash = 0u64;
    let mut cache: Cache<M::State> = Cache::new(width);
    let mut stack: Vec<(u32, M::State)> = Vec::new();
    let mut best: Vec<usize> = Vec::new();
    let mut best_state = model.init();
    let mut state = model.init();
    let mut cursor = list.next[head as usize];
    let mut steps = 0u64;
    loop {
        if cursor == NIL {
            return Outcome::Linearizable(stack.iter().map(|(i, _)| *i as usize).collect());
        }
        steps += 1;
        if steps.is_multiple_of(DEADLINE_CHECK_EVERY) {
            let late = limits.deadline.is_some_and(|d| Instant::now() >= d);
            let cancelled = limits.cancel.is_some_and(|c| c.load(Ordering::Relaxed));
            if late || cancelled {
                let reason = if late { "deadline" } else { "cancelled" };
                return Outcome::Unknown { reason, steps };
            }
            if cache.full() {
                return Outcome::Unknown {
                    reason: "memo cache limit",
                    steps,
                };
            }
        }
        if cursor < list.n {
            let i = cursor;
            if let Some(next_state) = model.step(&state, &entries[i as usize].op) {
                let (word, bit) = (i as usize / 64, 1u64 << (i % 64));
                bits[word] |= bit;
                bits_hash ^= zobrist[i as usize];
                if cache.insert(&bits, bits_hash, &next_state) {
                    let prior = std::mem::replace(&mut state, next_state);
                    stack.push((i, prior));
                    list.lift(i);
                    cursor = list.next[head as usize];
                    continue;
                }
                bits[word] &= !bit;
                bits_hash ^= zobrist[i as usize];
            }
            cursor = list.next[i as usize];
            continue;
        }
        let closing = (cursor - list.n) as usize;
        if entries[closing].ret.is_none() {
            return Outcome::Linearizable(stack.iter().map(|(i, _)| *i as usize).collect());
        }
        if stack.len() > best.len() {
            best = stack.iter().map(|(i, _)| *i as usize).collect();
            best_state = state.clone();
        }
        let Some((i, prior)) = stack.pop() else {
            return Outcome::NotLinearizable(failure(entries, best, best_state));
        };
        state = prior;
        bits[i as usize / 64] &= !(1u64 << (i % 64));
        bits_hash ^= zobrist[i as usize];
        list.unlift(i);
        cursor = list.next[i as usize];
    }
}

fn failure<O, S>(entries: &[Entry<O>], prefix: Vec<usize>, state: S) -> Failure<S> {
    let mut placed = vec![false; entries.len()];
    for &i in &prefix {
        placed[i] = true;
    }
    let blocked = (0..entries.len())
        .filter(|&i| !placed[i])
        .filter_map(|i| entries[i].ret.map(|t| (t, i)))
        .min()
        .map_or(0, |(_, i)| i);
    let blocked_ret = entries.get(blocked).and_then(|e| e.ret).unwrap_or(u64::MAX);
    let mut concurrent: Vec<usize> = (0..entries.len())
        .filter(|&i| !placed[i] && entries[i].call <= blocked_ret)
        .collect();
    concurrent.sort_by_key(|&i| (entries[i].call, i));
    Failure {
        prefix,
        state,
        blocked,
        concurrent,
    }
}
