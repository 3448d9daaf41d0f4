//! Synthetic register histories that are linearizable by construction, for benchmarks and
//! property tests: a sequential execution is laid out on a time line (one linearization
//! point per operation), and each operation gets a random real-time interval around its
//! point, with per-process intervals never overlapping.

use crate::history::{Event, EventType, Process};

/// Shape of a generated history.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Independent keys.
    pub keys: usize,
    /// Operations per key.
    pub ops_per_key: usize,
    /// Concurrent client processes per key.
    pub processes_per_key: usize,
    /// Percent of operations that are reads (the rest: writes and cas).
    pub read_percent: u64,
    /// Percent of mutations that are cas (half of them with a stale expected value, which
    /// then fail).
    pub cas_percent: u64,
    /// Percent of mutations that end indeterminate (half of those take effect).
    pub info_percent: u64,
    /// Longest time (ticks) between an operation's linearization point and its return.
    pub latency_max: u64,
    /// Seed.
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            keys: 1,
            ops_per_key: 100,
            processes_per_key: 5,
            read_percent: 50,
            cas_percent: 30,
            info_percent: 0,
            latency_max: 20,
            seed: 1,
        }
    }
}

/// splitmix64: small, fast, good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with `percent` % probability.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Ticks are scaled to look like nanoseconds.
const NS_PER_TICK: u64 = 1_000;

/// Generates a linearizable register history (events sorted by time, indexed).
pub fn register_history(cfg: &SynthConfig) -> Vec<Event> {
    let mut rng = Rng::new(cfg.seed);
    let mut timed: Vec<(u64, u64, Event)> = Vec::new();
    let procs = cfg.processes_per_key.max(1);
    let stride = (cfg.keys * procs) as u64;
    for k in 0..cfg.keys {
        let key = format!("k{k}");
        let mut ids: Vec<u64> = (0..procs).map(|p| (k * procs + p) as u64).collect();
        let mut free_at = vec![0u64; procs];
        let mut current: Option<u64> = None;
        let mut next_value = 1u64;
        let mut t = 0u64;
        for _ in 0..cfg.ops_per_key {
            t += 1 + rng.below(3);
            let start = rng.below(procs as u64) as usize;
            let p = loop {
                if let Some(p) = (0..procs)
                    .map(|i| (start + i) % procs)
                    .find(|&p| free_at[p] < t)
                {
                    break p;
                }
                t = free_at.iter().copied().min().unwrap_or(t) + 1;
            };
            let call = t - rng.below(t - free_at[p]);
            let ret = t + rng.below(cfg.latency_max.max(1));
            let mutation = !rng.chance(cfg.read_percent);
            let info = mutation && rng.chance(cfg.info_percent);
            let applies = !info || rng.chance(50);
            let (f, input, output, kind) = if !mutation {
                let v = current.map_or(serde_json::Value::Null, serde_json::Value::from);
                ("read", serde_json::Value::Null, v, EventType::Ok)
            } else if rng.chance(cfg.cas_percent) {
                let new = next_value;
                next_value += 1;
                let fresh = rng.chance(50);
                let expected = match (fresh, current) {
                    (true, c) | (false, c @ None) => c,
                    (false, Some(c)) => Some(if c > 1 { c - 1 } else { next_value + 1 }), // not current
                };
                let pair = serde_json::json!([expected, new]);
                let succeeds = expected == current;
                if succeeds && applies {
                    current = Some(new);
                }
                let kind = match (info, succeeds) {
                    (true, _) => EventType::Info,
                    (false, true) => EventType::Ok,
                    (false, false) => EventType::Fail,
                };
                ("cas", pair.clone(), pair, kind)
            } else {
                let v = next_value;
                next_value += 1;
                if applies {
                    current = Some(v);
                }
                let kind = if info { EventType::Info } else { EventType::Ok };
                ("write", v.into(), v.into(), kind)
            };
            let event = |kind, value, time| Event {
                index: 0,
                process: Process::Client(ids[p]),
                kind,
                f: f.to_owned(),
                key: Some(key.clone()),
                value,
                time: time * NS_PER_TICK,
                workload: None,
                node: None,
                error: None,
            };
            timed.push((call, 0, event(EventType::Invoke, input, call)));
            timed.push((ret, 1, event(kind, output, ret)));
            free_at[p] = ret;
            if info {
                ids[p] += stride; // a crashed process never comes back (Jepsen)
            }
        }
    }
    timed.sort_by_key(|(time, phase, _)| (*time, *phase));
    timed
        .into_iter()
        .enumerate()
        .map(|(i, (_, _, mut e))| {
            e.index = i as u64;
            e
        })
        .collect()
}
