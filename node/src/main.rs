//! `alcor`: one binary for the controller. `alcor server` runs a cluster
//! member (Raft + the gRPC API); `alcor ctl` is the operator CLI.
//!
//! This file only parses the command line and dispatches; see `server` and
//! `ctl`. It is the only crate in the workspace that uses `anyhow`.

mod cli;
mod ctl;
mod initial_cluster;
mod output;
mod server;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Server(args) => server::run(args).await,
        cli::Command::Ctl(args) => ctl::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
