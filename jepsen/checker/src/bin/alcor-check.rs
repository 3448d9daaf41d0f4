//! `alcor-check`: checks a JSONL history file and prints a verdict per (workload, key).
//! Exit status: 0 valid, 1 invalid, 2 unknown (the checker gave up: a failure too),
//! 3 unreadable or malformed history.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use alcor_jepsen_checker::{check_events, read_history_file, CheckOptions, Verdict};
use anyhow::Context;
use clap::Parser;

/// Check a Jepsen-style history: linearizability of registers (WGL search with
/// memoization, after fast anomaly pre-checks), set and unique-allocation workloads.
#[derive(Debug, Parser)]
#[command(name = "alcor-check", version)]
struct Args {
    /// History file: one JSON event per line.
    history: PathBuf,
    /// Give up after this many seconds (the verdict is then `unknown`, exit 2).
    #[arg(long, default_value_t = 300)]
    deadline_secs: u64,
    /// Skip the O(n log n) register pre-checks (search only).
    #[arg(long)]
    no_prechecks: bool,
    /// Treat a failed cas as the observation "value != expected" (only if the server
    /// evaluates the comparison linearizably and a failure proves it).
    #[arg(long)]
    failed_cas_observes: bool,
    /// Search threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn run(args: &Args) -> anyhow::Result<Verdict> {
    let events = read_history_file(&args.history)
        .with_context(|| format!("reading {}", args.history.display()))?;
    let options = CheckOptions {
        deadline: Some(Duration::from_secs(args.deadline_secs)),
        prechecks: !args.no_prechecks,
        failed_cas_observes: args.failed_cas_observes,
        threads: args.threads,
    };
    let report = check_events(&events, &options)
        .with_context(|| format!("checking {}", args.history.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(report.verdict)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(Verdict::Valid) => ExitCode::SUCCESS,
        Ok(Verdict::Invalid) => ExitCode::from(1),
        Ok(Verdict::Unknown) => ExitCode::from(2),
        Err(e) => {
            eprintln!("alcor-check: {e:#}");
            ExitCode::from(3)
        }
    }
}
