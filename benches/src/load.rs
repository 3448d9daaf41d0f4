//! The closed-loop load harness shared by the cluster load generators
//! (`cluster_load` for Alcor-RS, `etcd_load` for etcd): one measured row of
//! `clients` tasks over a set of connections, latency percentiles, CPU used by
//! the server processes, plus the machine description and the fsync probe every
//! run records first, and the leader-failover measurement (probe, writer loop,
//! rejoin wait, report) both generators run.
//!
//! Both generators drive their system through this same code, so a ratio
//! between their rows compares the servers, not two different clients.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// Latency samples kept per row (4 bytes each).
pub const SAMPLES_MAX: usize = 8_000_000;
/// Error messages kept per row.
pub const ERROR_SAMPLES_MAX: usize = 5;
/// Clients of one row.
pub const CLIENTS_MAX: usize = 4_096;
/// fsync probe: writes of 4 KiB, each followed by fdatasync.
pub const FSYNC_PROBE_WRITES: usize = 200;
/// Quantiles of the latency curve stored with every row (for the plots).
pub const CURVE_QUANTILES: [f64; 17] = [
    0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0,
];

/// A failed request: (kind, message).
pub type OpError = (String, String);
/// One request in flight; resolves to the number of items it carried.
pub type OpFuture = Pin<Box<dyn Future<Output = Result<u64, OpError>> + Send>>;
/// One request on a connection handle `C`.
pub type Op<C> = Arc<dyn Fn(C) -> OpFuture + Send + Sync>;

/// A tonic status as an [`OpError`].
pub fn status_error(s: tonic::Status) -> OpError {
    (format!("{:?}", s.code()), s.message().to_string())
}

/// Warm-up and measured window of a row.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Requests that start before warm-up ends are not counted.
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
    /// Bound on one request (overload shows as latency, not errors).
    pub request_timeout: Duration,
}

#[derive(Default)]
struct TaskOut {
    lat_us: Vec<u32>,
    ops: u64,
    items: u64,
    errors: BTreeMap<String, u64>,
    error_samples: Vec<String>,
}

/// One measured row.
#[derive(Debug)]
pub struct Row {
    /// Scenario name (serial, concurrent, batch, reads).
    pub scenario: String,
    /// Human label of the row.
    pub label: String,
    /// Closed-loop client tasks.
    pub clients: usize,
    /// Connections they shared.
    pub connections: usize,
    /// Requests completed in the window.
    pub ops: u64,
    /// Items those requests carried.
    pub items: u64,
    /// Window length.
    pub secs: f64,
    /// Sorted latencies (µs).
    pub lat_us: Vec<u32>,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// A few failure messages.
    pub error_samples: Vec<String>,
    /// CPU use during the window (see [`cpu_between`]).
    pub cpu: Value,
}

impl Row {
    /// Latency quantile `p` in ms (NaN without samples).
    pub fn pct(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.lat_us.len() as f64 * p).ceil() as usize).clamp(1, self.lat_us.len()) - 1;
        f64::from(self.lat_us[i]) / 1000.0
    }

    /// The row as JSON, with the latency curve at [`CURVE_QUANTILES`].
    pub fn json(&self) -> Value {
        let curve: Vec<Value> = CURVE_QUANTILES
            .iter()
            .map(|q| json!([q, round3(self.pct(*q))]))
            .collect();
        json!({
            "scenario": self.scenario,
            "label": self.label,
            "clients": self.clients,
            "connections": self.connections,
            "requests": self.ops,
            "items": self.items,
            "seconds": self.secs,
            "requests_per_s": round2(self.ops as f64 / self.secs),
            "items_per_s": round2(self.items as f64 / self.secs),
            "p50_ms": round3(self.pct(0.50)),
            "p99_ms": round3(self.pct(0.99)),
            "p999_ms": round3(self.pct(0.999)),
            "max_ms": round3(self.pct(1.0)),
            "latency_curve_ms": curve,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "cpu": self.cpu,
        })
    }

    /// One line under [`print_header`].
    pub fn print(&self) {
        let errors: u64 = self.errors.values().sum();
        println!(
            "{:<11} {:<30} {:>7.0} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>6} {:>5} {:>5} {:>4}",
            self.scenario,
            self.label,
            self.ops as f64 / self.secs,
            self.items as f64 / self.secs,
            self.pct(0.50),
            self.pct(0.99),
            self.pct(1.0),
            errors,
            self.cpu["servers_cores"].as_f64().unwrap_or(0.0),
            self.cpu["loadgen_cores"].as_f64().unwrap_or(0.0),
            self.cpu["machine_busy_pct"].as_f64().unwrap_or(0.0).round(),
        );
        for e in &self.error_samples {
            println!("            error: {e}");
        }
    }
}

/// Column names of [`Row::print`].
pub fn print_header() {
    println!(
        "{:<11} {:<30} {:>7} {:>9} {:>8} {:>8} {:>8} {:>6} {:>5} {:>5} {:>4}",
        "scenario",
        "row",
        "req/s",
        "items/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "srvC",
        "genC",
        "cpu%"
    );
}

/// `clients` closed-loop tasks, task w on `conns[w % len]`, for warm-up +
/// measure; only requests that start and finish inside the window count.
/// `pids` are the server processes whose CPU use is reported.
pub async fn run_load<C: Clone + Send + 'static>(
    scenario: &str,
    label: String,
    conns: &[C],
    clients: usize,
    timing: Timing,
    pids: &[u32],
    op: Op<C>,
) -> anyhow::Result<Row> {
    if clients == 0 || clients > CLIENTS_MAX || conns.is_empty() {
        bail!("{label}: 1 to {CLIENTS_MAX} clients and at least one connection");
    }
    let start = Instant::now();
    let from = start + timing.warmup;
    let end = from + timing.measure;
    let cap = SAMPLES_MAX / clients;
    let mut tasks = Vec::new();
    for w in 0..clients {
        let conn = conns[w % conns.len()].clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = TaskOut::default();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let r = tokio::time::timeout(timing.request_timeout, op(conn.clone())).await;
                let t1 = Instant::now();
                let counted = t0 >= from && t1 <= end;
                let failure = match r {
                    Ok(Ok(items)) => {
                        if counted {
                            out.ops += 1;
                            out.items += items;
                            if out.lat_us.len() < cap {
                                let us = t1.duration_since(t0).as_micros();
                                out.lat_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                            }
                        }
                        None
                    }
                    Ok(Err(e)) => Some(e),
                    Err(_) => Some(("ClientTimeout".to_string(), String::new())),
                };
                if let Some((code, message)) = failure {
                    *out.errors.entry(code.clone()).or_default() += 1;
                    if out.error_samples.len() < ERROR_SAMPLES_MAX {
                        out.error_samples.push(format!("{code}: {message}"));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            out
        }));
    }
    tokio::time::sleep_until(from.into()).await;
    let a = cpu_sample(pids);
    tokio::time::sleep_until(end.into()).await;
    let b = cpu_sample(pids);
    let mut row = Row {
        scenario: scenario.to_string(),
        label,
        clients,
        connections: conns.len(),
        ops: 0,
        items: 0,
        secs: timing.measure.as_secs_f64(),
        lat_us: Vec::new(),
        errors: BTreeMap::new(),
        error_samples: Vec::new(),
        cpu: cpu_between(a, b),
    };
    for t in tasks {
        let out = t.await.context("load task")?;
        row.ops += out.ops;
        row.items += out.items;
        row.lat_us.extend(out.lat_us);
        for (k, v) in out.errors {
            *row.errors.entry(k).or_default() += v;
        }
        for e in out.error_samples {
            if row.error_samples.len() < ERROR_SAMPLES_MAX {
                row.error_samples.push(e);
            }
        }
    }
    row.lat_us.sort_unstable();
    row.print();
    Ok(row)
}

/// Kill → first acknowledged write times as p50/p99/max (ms), with the tries.
pub fn failover_summary(times_ms: &mut [f64]) -> Value {
    times_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| -> Option<f64> {
        if times_ms.is_empty() {
            return None;
        }
        let i = ((times_ms.len() as f64 * p).ceil() as usize).clamp(1, times_ms.len()) - 1;
        Some(round2(times_ms[i]))
    };
    json!({
        "acked_tries": times_ms.len(),
        "kill_to_ack_p50_ms": pct(0.5),
        "kill_to_ack_p99_ms": pct(0.99),
        "kill_to_ack_max_ms": pct(1.0),
    })
}

// ------------------------------------------------------------- failover --

/// Pause of a failover writer after a failed write, before it tries the next
/// endpoint.
pub const FAILOVER_RETRY_PAUSE: Duration = Duration::from_millis(5);
/// How often the kill loop looks for the first ack after a kill.
pub const FAILOVER_POLL: Duration = Duration::from_millis(2);
/// How often a restarted member is asked whether it has rejoined.
pub const REJOIN_POLL: Duration = Duration::from_millis(50);

/// The kill time and the first ack of a write issued after it.
#[derive(Default)]
struct ProbeTimes {
    killed_at: Option<Instant>,
    first_ack: Option<Instant>,
}

/// Shared by the failover writers and the kill loop: the kill time, the first
/// ack of a write issued after it, the ack and failure counters and the stop
/// flag.
#[derive(Default)]
pub struct FailoverProbe {
    times: Mutex<ProbeTimes>,
    stop: AtomicBool,
    acks: AtomicU64,
    fails: AtomicU64,
}

impl FailoverProbe {
    fn times(&self) -> std::sync::MutexGuard<'_, ProbeTimes> {
        self.times.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the kill: from now on the first ack of a write sent at or after
    /// this instant counts.
    pub fn arm(&self) {
        let mut p = self.times();
        p.first_ack = None;
        p.killed_at = Some(Instant::now());
    }

    /// Counts an ack of a write sent at `sent`; the first one sent after the
    /// kill is kept.
    pub fn record_ack(&self, sent: Instant) {
        let now = Instant::now();
        self.acks.fetch_add(1, Ordering::Relaxed);
        let mut p = self.times();
        if p.killed_at.is_some_and(|k| sent >= k) && p.first_ack.is_none() {
            p.first_ack = Some(now);
        }
    }

    /// Counts a failed write.
    pub fn record_failure(&self) {
        self.fails.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits for the first ack after the kill until `deadline`; returns the
    /// time from `killed_at` to it in ms (None if none came in time).
    pub async fn kill_to_ack_ms(&self, killed_at: Instant, deadline: Instant) -> Option<f64> {
        let ack = loop {
            let a = self.times().first_ack;
            if let Some(a) = a {
                break Some(a);
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(FAILOVER_POLL).await;
        };
        ack.map(|a| a.saturating_duration_since(killed_at).as_secs_f64() * 1000.0)
    }

    /// Acks so far.
    pub fn acks(&self) -> u64 {
        self.acks.load(Ordering::Relaxed)
    }

    /// Acks counted during a pause of `window`.
    pub async fn acks_during(&self, window: Duration) -> u64 {
        let before = self.acks();
        tokio::time::sleep(window).await;
        self.acks() - before
    }

    /// Tells the writers to stop after their current write.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Adds `write_failures_total` and `write_acks_total` to `out`.
    pub fn add_totals(&self, out: &mut Value) {
        out["write_failures_total"] = json!(self.fails.load(Ordering::Relaxed));
        out["write_acks_total"] = json!(self.acks());
    }
}

/// One failover writer: writes until the probe is stopped, starting at
/// endpoint `start % endpoints`. `write(i)` makes one write against endpoint
/// `i` and resolves to whether it was acknowledged; a write not done within
/// `request_timeout` fails. After a failure the writer moves to the next
/// endpoint and pauses [`FAILOVER_RETRY_PAUSE`].
pub async fn failover_writer<F, Fut>(
    probe: Arc<FailoverProbe>,
    endpoints: usize,
    start: usize,
    request_timeout: Duration,
    mut write: F,
) where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut at = start % endpoints;
    while !probe.stopped() {
        let sent = Instant::now();
        let ok = matches!(
            tokio::time::timeout(request_timeout, write(at)).await,
            Ok(true)
        );
        if ok {
            probe.record_ack(sent);
        } else {
            probe.record_failure();
            at = (at + 1) % endpoints;
            tokio::time::sleep(FAILOVER_RETRY_PAUSE).await;
        }
    }
}

/// Polls `rejoined()` every [`REJOIN_POLL`] until it is true; returns the time
/// that took, or None after `wait_max`.
pub async fn wait_rejoin<F, Fut>(wait_max: Duration, mut rejoined: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if rejoined().await {
            return Some(started.elapsed());
        }
        if started.elapsed() > wait_max {
            return None;
        }
        tokio::time::sleep(REJOIN_POLL).await;
    }
}

/// Prints the kill → ack summary line over the acked tries and returns the
/// failover report: [`failover_summary`] plus the tries, the writer count and
/// the request timeout.
pub fn failover_report(
    times_ms: &mut [f64],
    tries: Vec<Value>,
    writers: usize,
    request_timeout: Duration,
) -> Value {
    let mut summary = failover_summary(times_ms);
    println!(
        "failover    kill->ack over {} tries: {summary}",
        times_ms.len()
    );
    summary["tries"] = json!(tries);
    summary["writers"] = json!(writers);
    summary["request_timeout_ms"] = json!(request_timeout.as_millis() as u64);
    summary
}

// ------------------------------------------------------------ CPU usage --

/// utime + stime of a process, in clock ticks (0 if it is gone).
pub fn proc_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state is field 3, utime 14, stime 15.
    let get = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(14) + get(15)
}

/// Resident set size of a process in KiB (0 if it is gone).
pub fn proc_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// (busy, total) jiffies of the whole machine.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU counters at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    servers: u64,
    me: u64,
    busy: u64,
    total: u64,
}

/// Samples the servers `pids`, this process and the machine.
pub fn cpu_sample(pids: &[u32]) -> CpuSample {
    let (busy, total) = machine_ticks();
    CpuSample {
        at: Instant::now(),
        servers: pids.iter().map(|p| proc_ticks(*p)).sum(),
        me: proc_ticks(std::process::id()),
        busy,
        total,
    }
}

/// Cores used by the servers and by this process, and machine busy %, between two samples.
pub fn cpu_between(a: CpuSample, b: CpuSample) -> Value {
    // Linux reports these in USER_HZ, 100 on every mainstream build.
    let hz = 100.0;
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let total = (b.total - a.total).max(1) as f64;
    json!({
        "servers_cores": round2((b.servers.saturating_sub(a.servers)) as f64 / hz / secs),
        "loadgen_cores": round2((b.me.saturating_sub(a.me)) as f64 / hz / secs),
        "machine_busy_pct": round2(100.0 * (b.busy - a.busy) as f64 / total),
    })
}

/// Rounds to 2 decimals.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Rounds to 3 decimals.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ------------------------------------------------------- machine & disk --

fn read_first(path: &str, key: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_string()))
        .unwrap_or_default()
}

/// UTC (date, date-time) from the system clock (civil-from-days).
pub fn utc_now() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let date = format!("{y:04}-{m:02}-{d:02}");
    let time = format!(
        "{date}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    (date, time)
}

/// Cores, CPU model, memory, kernel and load average.
pub fn machine() -> Value {
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": read_first("/proc/cpuinfo", "model name"),
        "mem_total": read_first("/proc/meminfo", "MemTotal"),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "loadavg_at_start": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    })
}

/// `FSYNC_PROBE_WRITES` × (write 4 KiB + fdatasync) in `dir`.
pub fn fsync_probe(dir: &Path) -> anyhow::Result<Value> {
    let tmp = tempfile::tempdir_in(dir)?;
    let mut f = File::create(tmp.path().join("probe"))?;
    let block = [0x5au8; 4096];
    let mut us = Vec::with_capacity(FSYNC_PROBE_WRITES);
    for _ in 0..FSYNC_PROBE_WRITES {
        let t0 = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        us.push(t0.elapsed().as_micros() as u64);
    }
    us.sort_unstable();
    let p = |q: f64| us[((us.len() as f64 * q).ceil() as usize).clamp(1, us.len()) - 1];
    Ok(json!({
        "writes": FSYNC_PROBE_WRITES,
        "bytes": 4096,
        "p50_us": p(0.5),
        "p99_us": p(0.99),
        "max_us": p(1.0),
    }))
}

/// Writes `report` as pretty JSON to `out`, creating its folder.
pub fn write_json(out: &Path, report: &Value) -> anyhow::Result<()> {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("write {}", out.display()))?;
    println!("\nwrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(lat_us: Vec<u32>) -> Row {
        Row {
            scenario: "s".into(),
            label: "l".into(),
            clients: 1,
            connections: 1,
            ops: lat_us.len() as u64,
            items: lat_us.len() as u64,
            secs: 1.0,
            lat_us,
            errors: BTreeMap::new(),
            error_samples: Vec::new(),
            cpu: Value::Null,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank_over_sorted_latencies() {
        let r = row((1..=100).map(|ms| ms * 1000).collect());
        assert_eq!(r.pct(0.5), 50.0);
        assert_eq!(r.pct(0.99), 99.0);
        assert_eq!(r.pct(1.0), 100.0);
        assert_eq!(r.pct(0.001), 1.0);
        let j = r.json();
        assert_eq!(j["latency_curve_ms"].as_array().map(Vec::len), Some(17));
        assert_eq!(j["requests_per_s"], json!(100.0));
    }

    #[test]
    fn a_row_without_samples_reports_no_latency() {
        assert!(row(Vec::new()).pct(0.5).is_nan());
    }

    #[test]
    fn failover_summary_sorts_the_tries_and_ignores_none() {
        let mut times = vec![300.0, 100.0, 200.0];
        let s = failover_summary(&mut times);
        assert_eq!(s["acked_tries"], json!(3));
        assert_eq!(s["kill_to_ack_p50_ms"], json!(200.0));
        assert_eq!(s["kill_to_ack_max_ms"], json!(300.0));
        let empty = failover_summary(&mut []);
        assert!(empty["kill_to_ack_p50_ms"].is_null());
    }

    #[tokio::test]
    async fn failover_probe_keeps_only_the_first_ack_of_a_write_sent_after_the_kill() {
        let probe = FailoverProbe::default();
        let before_kill = Instant::now();
        probe.record_ack(before_kill);
        probe.arm();
        probe.record_ack(before_kill);
        let past = Instant::now();
        assert_eq!(probe.kill_to_ack_ms(past, past).await, None);
        probe.record_ack(Instant::now());
        probe.record_failure();
        let killed_at = Instant::now();
        let first = probe.kill_to_ack_ms(killed_at, killed_at).await;
        assert!(first.is_some());
        probe.record_ack(Instant::now());
        assert_eq!(probe.kill_to_ack_ms(killed_at, killed_at).await, first);
        let mut out = json!({});
        probe.add_totals(&mut out);
        assert_eq!(out["write_acks_total"], json!(4));
        assert_eq!(out["write_failures_total"], json!(1));
    }

    #[tokio::test]
    async fn failover_writer_moves_to_the_next_endpoint_after_a_failure_until_stopped() {
        let probe = Arc::new(FailoverProbe::default());
        let tried = Arc::new(Mutex::new(Vec::new()));
        let (p, t) = (probe.clone(), tried.clone());
        // Endpoint 1 always fails; the writer stops itself after 6 writes.
        let write = move |at: usize| {
            let (p, t) = (p.clone(), t.clone());
            async move {
                let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
                t.push(at);
                if t.len() == 6 {
                    p.stop();
                }
                at != 1
            }
        };
        failover_writer(probe.clone(), 3, 4, Duration::from_secs(10), write).await;
        let tried = tried.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(tried, vec![1, 2, 2, 2, 2, 2]);
        let mut out = json!({});
        probe.add_totals(&mut out);
        assert_eq!(out["write_acks_total"], json!(5));
        assert_eq!(out["write_failures_total"], json!(1));
    }

    #[tokio::test]
    async fn wait_rejoin_gives_up_after_its_limit() {
        assert_eq!(wait_rejoin(Duration::ZERO, || async { false }).await, None);
        assert!(wait_rejoin(Duration::ZERO, || async { true })
            .await
            .is_some());
    }
}
