//! `alcor`: one binary for the controller. `alcor server` runs a cluster
//! member (Raft + the gRPC API + the agents' push stream); `alcor ctl` is the
//! operator CLI; `alcor agent` a simulated host agent (`alcor agent-sim` many); `alcor dev` a local cluster;
//! `alcor certs` issues throwaway certificates; `alcor snapshot restore` builds
//! data directories from a backup.
//!
//! This file only parses the command line and dispatches; see `server` and
//! `ctl`. It is the only crate in the workspace that uses `anyhow`.

/// `println!` for what a command prints on stdout, except that a closed
/// pipe (`alcor ctl cluster status | head -1`) ends the process quietly
/// with status 0, as Unix tools do, instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}

mod agent;
mod backup;
mod certs;
mod cli;
mod ctl;
mod dev;
mod initial_cluster;
mod output;
mod server;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc instead of glibc's malloc: the servers spent ~35 % of their CPU
/// in glibc's malloc, free and consolidation creating ports in batches
/// (benches/README.md, "Profiles").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Server(args) => server::run(args).await,
        cli::Command::Ctl(args) => ctl::run(args).await,
        cli::Command::Agent(args) => agent::run(args).await,
        cli::Command::AgentSim(args) => agent::run_sim(args).await,
        cli::Command::Dev(args) => dev::run(args).await,
        cli::Command::Certs(args) => certs::run(&args),
        cli::Command::Snapshot {
            verb: cli::SnapshotVerb::Restore(args),
        } => backup::restore(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // Distinct statuses per error class for `alcor ctl` (1 otherwise).
            ExitCode::from(ctl::exit_code(&e))
        }
    }
}
