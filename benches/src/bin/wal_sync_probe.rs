//! Times what a Raft member's log append costs on this disk: a small RocksDB
//! write followed by `flush_wal(true)` (the log store's group-commit fsync),
//! with the database options under test, for one or several databases at
//! once (a 3-member cluster on one box shares one file-system journal).
//!
//! Usage: `wal_sync_probe [--dbs 3] [--writes 20000] [--value-bytes 300]
//! [--recycle-logs N] [--write-buffer-mib M] [--dir D]`
//!
//! Prints, per database, the mean, p50 and p99 of the synced write after
//! `--warmup` untimed writes (to time recycled logs, make the warm-up long
//! enough to rotate the WAL at least once).

use anyhow::{Context, Result};
use clap::Parser;
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, DB};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Databases written at once, each by its own thread.
    #[arg(long, default_value_t = 3)]
    dbs: usize,
    /// Timed synced writes per database (after the warm-up).
    #[arg(long, default_value_t = 20_000)]
    writes: usize,
    /// Bytes per record (a serial CreatePort entry is a few hundred bytes).
    #[arg(long, default_value_t = 300)]
    value_bytes: usize,
    /// RocksDB's `recycle_log_file_num` (0: a new WAL file each time).
    #[arg(long, default_value_t = 0)]
    recycle_logs: usize,
    /// Memtable size per column family, MiB (a WAL file lives about one memtable).
    #[arg(long, default_value_t = 64)]
    write_buffer_mib: usize,
    /// Warm-up writes per database before timing.
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// Pause between one write's sync and the next write, microseconds (a
    /// member's next append waits for a network round trip).
    #[arg(long, default_value_t = 0)]
    gap_us: u64,
    /// Busy-wait the gap instead of sleeping (tells a disk-side cost from
    /// the cost of an idle CPU waking up).
    #[arg(long)]
    spin: bool,
    /// Write through to the file at once (a member's setting) instead of
    /// buffering records until `flush_wal` (`manual_wal_flush`).
    #[arg(long)]
    write_through: bool,
    /// Where the databases go (a temporary folder under /var/tmp by default).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn open(dir: &std::path::Path, args: &Args) -> Result<DB> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_manual_wal_flush(!args.write_through);
    opts.set_recycle_log_file_num(args.recycle_logs);
    let mut cf_opts = Options::default();
    cf_opts.set_write_buffer_size(args.write_buffer_mib << 20);
    let cfs = ["logs", "meta", "sm"]
        .into_iter()
        .map(|name| ColumnFamilyDescriptor::new(name, cf_opts.clone()));
    DB::open_cf_descriptors(&opts, dir, cfs).with_context(|| format!("open {}", dir.display()))
}

fn run_one(db: &DB, args: &Args) -> Result<Vec<Duration>> {
    let logs = db.cf_handle("logs").context("cf logs")?;
    let value = vec![0x5a_u8; args.value_bytes];
    let mut times = Vec::with_capacity(args.writes);
    for i in 0..(args.warmup + args.writes) as u64 {
        let started = Instant::now();
        let mut batch = WriteBatch::default();
        batch.put_cf(logs, i.to_be_bytes(), &value);
        db.write(batch)?;
        db.flush_wal(true)?;
        if i as usize >= args.warmup {
            times.push(started.elapsed());
        }
        if args.gap_us > 0 {
            if args.spin {
                let until = Instant::now() + Duration::from_micros(args.gap_us);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            } else {
                std::thread::sleep(Duration::from_micros(args.gap_us));
            }
        }
    }
    Ok(times)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let root = match &args.dir {
        Some(d) => d.clone(),
        None => tempfile::Builder::new()
            .prefix("wal-probe")
            .tempdir_in("/var/tmp")?
            .keep(),
    };
    let mut handles = Vec::new();
    for n in 0..args.dbs {
        let dir = root.join(format!("db{n}"));
        let args = args.clone();
        handles.push(std::thread::spawn(move || -> Result<Vec<Duration>> {
            let db = open(&dir, &args)?;
            run_one(&db, &args)
        }));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    for (n, h) in handles.into_iter().enumerate() {
        let mut t = h.join().map_err(|_| anyhow::anyhow!("thread panicked"))??;
        t.sort();
        let mean = t.iter().sum::<Duration>() / t.len().max(1) as u32;
        let p = |q: f64| t[((t.len() as f64 * q) as usize).min(t.len() - 1)];
        println!(
            "db{n}: recycle {} wb {} MiB: mean {:?} p50 {:?} p99 {:?} over {} writes",
            args.recycle_logs,
            args.write_buffer_mib,
            mean,
            p(0.5),
            p(0.99),
            t.len()
        );
    }
    println!("load average before: {}", load.trim());
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
