//! `alcor-jepsen`: the black-box fault-testing harness of Alcor. It builds a
//! bridge and one network namespace per node, runs real `alcor server`
//! processes in them, drives the workloads through the gRPC API while the
//! nemesis injects faults, heals, demands recovery within a deadline, reads
//! the final state from every node, checks the history, and prints a
//! summary. Exit status: 0 when everything held, 1 on a violation, 2 when
//! something could not be established (unknown verdict, panic, crash,
//! missed recovery deadline, unverified fault, harness error).

mod checks;
mod cluster;
mod convergence;
mod delay;
mod history;
mod nemesis;
mod pki;
mod run;
mod topology;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::nemesis::Fault;
use crate::workloads::Workload;

/// Jepsen-style fault testing of an Alcor cluster in network namespaces.
#[derive(Debug, Parser)]
#[command(name = "alcor-jepsen", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One run: cluster up, workloads + nemesis, heal, final reads, checks.
    Run(Box<RunArgs>),
    /// Remove namespaces, links and processes a crashed run left behind.
    Sweep,
    /// (Used by the delay fault inside a node's namespace.) Delay the
    /// packets of an NFQUEUE, then print how many were delayed.
    Delay {
        /// The NFQUEUE number.
        #[arg(long, default_value_t = 0)]
        queue: u16,
        /// How long each packet is held.
        #[arg(long, value_parser = parse_duration)]
        delay: Duration,
        /// How long to run.
        #[arg(long = "for", value_parser = parse_duration)]
        run_for: Duration,
    },
}

/// Parses `300s`, `5m`, `1h`, `1500ms` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("bad duration unit in {text:?} (ms, s, m, h)")),
    }
}

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The `alcor` binary (built from the main workspace).
    #[arg(long, env = "ALCOR_BIN")]
    pub alcor_bin: PathBuf,
    /// Cluster size (3 or 5 usually).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// How long the clients run (e.g. 300s, 30m).
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Workloads to run (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "register,set,unique,idempotent,convergence"
    )]
    pub workloads: Vec<Workload>,
    /// Faults to cycle through (comma-separated); default: every fault that
    /// applies to the cluster size.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub nemesis: Vec<Fault>,
    /// Run without faults.
    #[arg(long, conflicts_with = "nemesis")]
    pub no_nemesis: bool,
    /// Half of the faults get a partner of the other kind (network with
    /// process), both in place at once.
    #[arg(long)]
    pub combined: bool,
    /// Quiet time between faults.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    pub quiet: Duration,
    /// How long each fault is held (above the election timeout).
    #[arg(long, default_value = "6s", value_parser = parse_duration)]
    pub hold: Duration,
    /// Client workers per workload (register gets twice as many, at most 10).
    #[arg(long, default_value_t = 3)]
    pub clients: u64,
    /// Pause between one client's operations (jittered).
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    pub think: Duration,
    /// After healing, a write must succeed within this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub recovery_deadline: Duration,
    /// The checkers give up (verdict unknown, a failure) after this long.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub check_deadline: Duration,
    /// Where each run's directory (history, node logs, summary) is created.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Seed of every random choice (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Count a fault whose effect could not be confirmed as a failure.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub require_verified: bool,
    /// Members serve plain text and take anyone (`alcor server --insecure`);
    /// by default every listener uses TLS with certificates from `alcor
    /// certs`, members authenticate each other on the Raft port, agents
    /// present their host's certificate, and the harness an admin's.
    #[arg(long)]
    pub insecure: bool,
    /// Keep the nodes' data directories (under /tmp) after the run.
    #[arg(long)]
    pub keep_data: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tokio: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Sweep => match topology::sweep() {
            Ok(n) => {
                println!("removed {n} leftover namespaces/links");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("sweep: {error:#}");
                ExitCode::from(2)
            }
        },
        Command::Delay {
            queue,
            delay,
            run_for,
        } => match delay::run(queue, delay, run_for) {
            Ok(delayed) => {
                println!("{delayed}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("delay: {error:#}");
                ExitCode::from(2)
            }
        },
        Command::Run(args) => {
            let code = runtime.block_on(async {
                tokio::select! {
                    result = run::run(*args) => match result {
                        Ok(code) => code,
                        Err(error) => {
                            eprintln!("error: {error:#}");
                            2
                        }
                    },
                    _ = tokio::signal::ctrl_c() => {
                        eprintln!("interrupted: tearing down");
                        130
                    }
                }
            });
            // Dropping the runtime drops every task, whose guards kill the
            // servers; the sweep then removes namespaces and the bridge.
            runtime.shutdown_timeout(Duration::from_secs(5));
            if let Err(error) = topology::sweep() {
                eprintln!("teardown: {error:#}");
            }
            ExitCode::from(code)
        }
    }
}
