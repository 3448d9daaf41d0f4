//! `alcor agent`: a simulated host agent that keeps its host's goal state in
//! memory, acks each revision, and prints a status line now and then.

use std::time::Duration;

use alcor_host_push::{SimAgent, SimAgentConfig};
use alcor_state_machine::{GoalObject, GoalState};

use crate::cli::AgentArgs;

/// Runs one agent until SIGINT/SIGTERM.
pub(crate) async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let agent = SimAgent::new(SimAgentConfig::new(
        args.host_id.clone(),
        args.endpoints.clone(),
    ))?;
    let runner = {
        let agent = agent.clone();
        tokio::spawn(async move { agent.run(crate::server::shutdown_signal()).await })
    };
    let mut ticker = tokio::time::interval(Duration::from_secs(args.report_interval_s.max(1)));
    loop {
        tokio::select! {
            _ = ticker.tick() => println!("{}", status_line(&agent)),
            _ = tokio::time::sleep(Duration::from_millis(200)), if runner.is_finished() => break,
        }
    }
    runner.await?;
    println!("{}", status_line(&agent));
    Ok(())
}

/// One line: host, revision, object counts by kind, digest prefix, counters.
pub(crate) fn status_line(agent: &SimAgent) -> String {
    let (revision, digest) = agent.revision_and_digest();
    let counters = agent.counters();
    format!(
        "{host:<10} revision {revision:>6}  {counts}  digest {digest}  full-syncs {full} diff-batches {batches} reconnects {reconnects}",
        host = agent.host_id(),
        counts = counts(&agent.table()),
        digest = hex_prefix(&digest),
        full = counters.full_syncs,
        batches = counters.diff_batches,
        reconnects = counters.reconnects,
    )
}

fn counts(table: &GoalState) -> String {
    let (mut ports, mut neighbors, mut subnets, mut vpcs, mut rules, mut members) =
        (0, 0, 0, 0, 0, 0);
    for object in table.values() {
        match object {
            GoalObject::Port(_) => ports += 1,
            GoalObject::Neighbor(_) => neighbors += 1,
            GoalObject::Subnet(_) => subnets += 1,
            GoalObject::Vpc(_) => vpcs += 1,
            GoalObject::SgRule(_) => rules += 1,
            GoalObject::SgMember(_) => members += 1,
            GoalObject::Router(_) | GoalObject::FloatingIp(_) => {}
        }
    }
    format!("ports {ports:>3} neighbors {neighbors:>3} vpcs {vpcs} subnets {subnets} rules {rules} sg-members {members:>3}")
}

/// The first 6 bytes of a digest in hex.
pub(crate) fn hex_prefix(digest: &[u8; 32]) -> String {
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}
