//! Property tests: generated linearizable histories are always accepted (and never trip a
//! pre-check); small random histories get the same verdict as a brute-force oracle; a read
//! corrupted to an unjustifiable stale value is always rejected, by the search alone too.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

mod common;

use alcor_jepsen_checker::ops::{pair, Op, Outcome};
use alcor_jepsen_checker::synth::{register_history, SynthConfig};
use alcor_jepsen_checker::{check_events, CheckOptions, Event, EventType, Verdict};
use proptest::prelude::*;

fn verdict(events: &[Event], prechecks: bool, failed_cas_observes: bool) -> Verdict {
    let options = CheckOptions {
        prechecks,
        failed_cas_observes,
        ..CheckOptions::default()
    };
    check_events(events, &options).expect("well-formed").verdict
}

fn synth_config() -> impl Strategy<Value = SynthConfig> {
    (
        1usize..4,
        1usize..60,
        1usize..8,
        0u64..100,
        0u64..100,
        0u64..20,
        1u64..40,
        any::<u64>(),
    )
        .prop_map(
            |(
                keys,
                ops_per_key,
                processes_per_key,
                read_percent,
                cas_percent,
                info_percent,
                latency_max,
                seed,
            )| {
                SynthConfig {
                    keys,
                    ops_per_key,
                    processes_per_key,
                    read_percent,
                    cas_percent,
                    info_percent,
                    latency_max,
                    seed,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn generated_linearizable_histories_are_accepted(cfg in synth_config()) {
        let h = register_history(&cfg);
        prop_assert_eq!(verdict(&h, true, false), Verdict::Valid);
        prop_assert_eq!(verdict(&h, false, false), Verdict::Valid);
        // The generator's failed cas really saw another value, so trusting it is sound.
        prop_assert_eq!(verdict(&h, true, true), Verdict::Valid);
    }

    #[test]
    fn read_corrupted_to_a_provably_stale_value_is_rejected(cfg in synth_config(), pick in any::<prop::sample::Index>()) {
        let mut h = register_history(&cfg);
        let ops = pair(&h).expect("pairs");
        let candidates = stale_candidates(&ops);
        prop_assume!(!candidates.is_empty());
        let (read_index, stale) = candidates[pick.index(candidates.len())].clone();
        let completion = completion_of(&h, read_index);
        h[completion].value = stale;
        prop_assert_eq!(verdict(&h, true, false), Verdict::Invalid);
        prop_assert_eq!(verdict(&h, false, false), Verdict::Invalid);
    }

    #[test]
    fn small_random_histories_match_the_brute_force_oracle(spec in small_history(), unique in any::<bool>(), trust in any::<bool>()) {
        let h = build_small(&spec, unique);
        let ops = pair(&h).expect("pairs");
        let expected = if oracle(&ops, trust) { Verdict::Valid } else { Verdict::Invalid };
        prop_assert_eq!(verdict(&h, true, trust), expected);
        prop_assert_eq!(verdict(&h, false, trust), expected);
    }
}

/// (ok read, a value it cannot have returned): a value `a` whose ok write returned before
/// another ok write of `b` was invoked, which returned before the read was invoked
/// (values are unique in generated histories, so `a` can never come back).
fn stale_candidates(ops: &[Op]) -> Vec<(u64, serde_json::Value)> {
    let writes: Vec<&Op> = ops
        .iter()
        .filter(|o| o.f == "write" && o.outcome == Outcome::Ok)
        .collect();
    let mut out = Vec::new();
    for read in ops
        .iter()
        .filter(|o| o.f == "read" && o.outcome == Outcome::Ok)
    {
        for a in writes.iter().filter(|a| a.key == read.key) {
            let newer = writes.iter().any(|b| {
                b.key == read.key
                    && b.index != a.index
                    && a.ret.unwrap() < b.call
                    && b.ret.unwrap() < read.call
            });
            if newer && a.input != read.output {
                out.push((read.index, a.input.clone()));
            }
        }
    }
    out
}

fn completion_of(h: &[Event], invoke_index: u64) -> usize {
    let at = h
        .iter()
        .position(|e| e.index == invoke_index)
        .expect("invoke");
    let process = h[at].process;
    at + 1
        + h[at + 1..]
            .iter()
            .position(|e| e.process == process)
            .expect("completion")
}

/// (kind 0 read/1 write/2 cas, value a, value b, outcome 0 ok/1 info/2 fail, call, length)
type SmallOp = (u8, u8, u8, u8, u64, u64);

fn small_history() -> impl Strategy<Value = Vec<SmallOp>> {
    prop::collection::vec((0u8..3, 0u8..4, 0u8..4, 0u8..6, 0u64..12, 0u64..8), 1..8)
}

fn value(v: u8) -> serde_json::Value {
    if v == 0 {
        serde_json::Value::Null
    } else {
        serde_json::Value::from(v)
    }
}

/// One process per operation. With `unique`, write i writes 10 + i (reads and cas pick
/// among the written values and null), so the stale-read pre-check is exercised.
fn build_small(spec: &[SmallOp], unique: bool) -> Vec<Event> {
    let mut b = common::Builder::default();
    let n = spec.len() as u8;
    let pick = |v: u8| -> serde_json::Value {
        if unique {
            if v.is_multiple_of(n + 1) {
                serde_json::Value::Null
            } else {
                serde_json::Value::from(10 + (v % (n + 1)) - 1)
            }
        } else {
            value(v)
        }
    };
    for (i, &(kind, a, c, outcome, call, len)) in spec.iter().enumerate() {
        let kind_event = match outcome {
            0..=3 => EventType::Ok,
            4 => EventType::Info,
            _ => EventType::Fail,
        };
        let p = i as u64;
        match kind {
            0 => b.op(
                p,
                "read",
                "k",
                serde_json::Value::Null,
                pick(a),
                kind_event,
                call,
                call + len,
            ),
            1 => {
                let v = if unique {
                    serde_json::Value::from(10 + i as u64)
                } else {
                    value(a.max(1))
                };
                b.op(p, "write", "k", v.clone(), v, kind_event, call, call + len)
            }
            _ => {
                let new = if unique {
                    serde_json::Value::from(10 + i as u64)
                } else {
                    value(c.max(1))
                };
                let pair = serde_json::json!([pick(a), new]);
                b.op(
                    p,
                    "cas",
                    "k",
                    pair.clone(),
                    pair,
                    kind_event,
                    call,
                    call + len,
                )
            }
        };
    }
    b.build()
}

/// Exhaustive search over all orders consistent with real time: every determinate
/// operation must be placed; indeterminate mutations may be placed (after their
/// invocation) or left out; failed operations and indeterminate reads are ignored.
fn oracle(ops: &[Op], trust_failed_cas: bool) -> bool {
    let ops: Vec<&Op> = ops
        .iter()
        .filter(|o| match o.outcome {
            Outcome::Ok => true,
            Outcome::Info => o.f != "read",
            Outcome::Fail => o.f == "cas" && trust_failed_cas,
        })
        .collect();
    fn go(ops: &[&Op], placed: &mut Vec<bool>, state: &serde_json::Value) -> bool {
        let pending_determinate = ops
            .iter()
            .zip(placed.iter())
            .any(|(o, p)| !p && o.outcome != Outcome::Info);
        if !pending_determinate {
            return true;
        }
        for i in 0..ops.len() {
            if placed[i] {
                continue;
            }
            let o = ops[i];
            // Real-time order: nothing unplaced may have returned before o was invoked.
            let blocked = ops.iter().zip(placed.iter()).any(|(p, done)| {
                !done && p.ret.is_some_and(|r| r < o.call) && p.outcome != Outcome::Info
            });
            if blocked {
                continue;
            }
            let next = match (o.f.as_str(), o.outcome) {
                ("read", _) => (o.output == *state).then(|| state.clone()),
                ("write", _) => Some(o.input.clone()),
                ("cas", outcome) => {
                    let (expected, new) = (&o.input[0], &o.input[1]);
                    match outcome {
                        Outcome::Ok => (expected == state).then(|| new.clone()),
                        Outcome::Info => Some(if expected == state {
                            new.clone()
                        } else {
                            state.clone()
                        }),
                        Outcome::Fail => (expected != state).then(|| state.clone()),
                    }
                }
                _ => None,
            };
            if let Some(next) = next {
                placed[i] = true;
                if go(ops, placed, &next) {
                    return true;
                }
                placed[i] = false;
            }
        }
        false
    }
    let mut placed = vec![false; ops.len()];
    go(&ops, &mut placed, &serde_json::Value::Null)
}
