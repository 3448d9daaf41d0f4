//! Differential test against `porcupine-rs` (an independent WGL implementation): on
//! generated histories with one read replaced by an arbitrary value of its key (sometimes
//! justifiable, sometimes not), both checkers must give every key the same verdict.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

use alcor_jepsen_checker::ops::{pair, Op, Outcome};
use alcor_jepsen_checker::synth::{register_history, SynthConfig};
use alcor_jepsen_checker::{check_events, CheckOptions, Verdict};
use porcupine_rs::{check_operations, Model, Operation};
use proptest::prelude::*;

/// Register with `-1` = absent.
#[derive(Debug, Clone)]
struct Register;

#[derive(Debug, Clone)]
enum RegOp {
    Read(i64),
    Write(i64),
    CasOk(i64, i64),
    CasUnknown(i64, i64),
}

impl Model for Register {
    type State = i64;
    type Op = RegOp;
    type Metadata = ();

    fn init() -> i64 {
        -1
    }

    fn step(state: &i64, op: &RegOp) -> (bool, i64) {
        match *op {
            RegOp::Read(v) => (v == *state, *state),
            RegOp::Write(v) => (true, v),
            RegOp::CasOk(e, n) => (e == *state, if e == *state { n } else { *state }),
            RegOp::CasUnknown(e, n) => (true, if e == *state { n } else { *state }),
        }
    }
}

fn int(v: &serde_json::Value) -> i64 {
    v.as_i64().unwrap_or(-1)
}

/// Our semantics in porcupine-rs terms: failed ops and indeterminate reads dropped,
/// indeterminate mutations return at +inf; times doubled (+1 on returns) so intervals
/// that touch overlap regardless of how either side orders equal timestamps.
fn porcupine_ops(ops: &[&Op]) -> Vec<Operation<Register>> {
    ops.iter()
        .filter_map(|o| {
            let op = match (o.f.as_str(), o.outcome) {
                (_, Outcome::Fail) | ("read", Outcome::Info) => return None,
                ("read", _) => RegOp::Read(int(&o.output)),
                ("write", _) => RegOp::Write(int(&o.input)),
                ("cas", Outcome::Ok) => RegOp::CasOk(int(&o.input[0]), int(&o.input[1])),
                ("cas", _) => RegOp::CasUnknown(int(&o.input[0]), int(&o.input[1])),
                _ => return None,
            };
            Some(Operation {
                client_id: Some(o.process as u32),
                call_time: 2 * o.call as i64,
                return_time: o.ret.map_or(i64::MAX, |r| 2 * r as i64 + 1),
                op,
                metadata: None,
            })
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn verdicts_agree_with_porcupine_rs_on_corrupted_generated_histories(
        keys in 1usize..3,
        ops_per_key in 2usize..50,
        processes_per_key in 1usize..6,
        info_percent in 0u64..25,
        seed in any::<u64>(),
        pick_read in any::<prop::sample::Index>(),
        pick_value in any::<prop::sample::Index>(),
    ) {
        let cfg = SynthConfig { keys, ops_per_key, processes_per_key, read_percent: 40, cas_percent: 40, info_percent, latency_max: 25, seed };
        let mut h = register_history(&cfg);
        let ops = pair(&h).unwrap();
        let reads: Vec<&Op> = ops.iter().filter(|o| o.f == "read" && o.outcome == Outcome::Ok).collect();
        prop_assume!(!reads.is_empty());
        let read = reads[pick_read.index(reads.len())];
        let mut values: Vec<serde_json::Value> = vec![serde_json::Value::Null];
        values.extend(ops.iter().filter(|o| o.key == read.key && o.f == "write").map(|o| o.input.clone()));
        let value = values[pick_value.index(values.len())].clone();
        let at = h.iter().position(|e| e.index != read.index && e.process == alcor_jepsen_checker::Process::Client(read.process) && e.time >= read.call && e.kind != alcor_jepsen_checker::EventType::Invoke).unwrap();
        h[at].value = value;

        let report = check_events(&h, &CheckOptions::default()).unwrap();
        let ops = pair(&h).unwrap();
        for key in &report.keys {
            let key_ops: Vec<&Op> = ops.iter().filter(|o| o.key == key.key).collect();
            let theirs = check_operations(&porcupine_ops(&key_ops));
            prop_assert_eq!(key.verdict == Verdict::Valid, theirs, "key {}: {:?}", key.key, key.detail);
            prop_assert_ne!(key.verdict, Verdict::Unknown);
        }
    }
}
