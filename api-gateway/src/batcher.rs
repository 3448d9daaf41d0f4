//! Coalesces concurrent writes into one Raft entry.
//!
//! Each write is queued with a reply slot. A single task takes the first queued
//! write, drains whatever else is already waiting (up to
//! `PROPOSAL_COMMANDS_MAX`), and proposes them as one `Command::Batch` entry —
//! or as the plain command when it is alone — with at most
//! `PROPOSALS_IN_FLIGHT_MAX` entries in flight. One fsync and one replication
//! round then serve many clients. Each command keeps its own result: the state
//! machine applies the commands of a batch independently, in queue order.

use std::sync::Arc;

use alcor_raft_core::{RaftNode, Response, WriteError};
use alcor_state_machine::{Command, Proposal, Reply};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::limits::{PROPOSALS_IN_FLIGHT_MAX, PROPOSALS_QUEUED_MAX, PROPOSAL_COMMANDS_MAX};

type Slot = oneshot::Sender<Result<Response, WriteError>>;

/// A handle for queueing writes; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    queue: mpsc::Sender<(Command, Slot)>,
}

/// The queue is full.
#[derive(Debug)]
pub(crate) struct QueueFull;

impl Batcher {
    /// Starts the proposing task on the current tokio runtime.
    pub(crate) fn start(node: Arc<RaftNode>) -> Batcher {
        let (queue, rx) = mpsc::channel(PROPOSALS_QUEUED_MAX);
        tokio::spawn(run(node, rx));
        Batcher { queue }
    }

    /// Queues one command; resolves when its entry is applied (or fails).
    pub(crate) async fn write(
        &self,
        command: Command,
    ) -> Result<Result<Response, WriteError>, QueueFull> {
        let (slot, reply) = oneshot::channel();
        self.queue
            .try_send((command, slot))
            .map_err(|_| QueueFull)?;
        // A dropped slot means the proposing task ended: the node is stopping.
        Ok(reply
            .await
            .unwrap_or_else(|_| Err(WriteError::Fatal("gateway stopped".to_string()))))
    }
}

async fn run(node: Arc<RaftNode>, mut rx: mpsc::Receiver<(Command, Slot)>) {
    let in_flight = Arc::new(Semaphore::new(PROPOSALS_IN_FLIGHT_MAX));
    while let Some(first) = rx.recv().await {
        // Waiting for a free slot lets more writes queue up behind `first`.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < PROPOSAL_COMMANDS_MAX {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let node = Arc::clone(&node);
        tokio::spawn(async move {
            propose(&node, batch).await;
            drop(permit);
        });
    }
}

async fn propose(node: &RaftNode, mut batch: Vec<(Command, Slot)>) {
    if batch.len() == 1 {
        let Some((command, slot)) = batch.pop() else {
            return;
        };
        let result = node
            .client_write(Proposal {
                time_ms: crate::orchestrator::now_ms(),
                command,
            })
            .await;
        let _ = slot.send(result);
        return;
    }
    let (commands, slots): (Vec<Command>, Vec<Slot>) = batch.into_iter().unzip();
    let n = commands.len();
    let proposal = Proposal {
        time_ms: crate::orchestrator::now_ms(),
        command: Command::Batch(commands),
    };
    match node.client_write(proposal).await {
        Ok(Response {
            log_index,
            result: Ok(Reply::Batch(results)),
        }) if results.len() == n => {
            for (slot, result) in slots.into_iter().zip(results) {
                let _ = slot.send(Ok(Response { log_index, result }));
            }
        }
        Ok(Response { log_index, result }) => {
            // The entry as a whole was refused (it cannot be, given the limits);
            // every command gets that verdict.
            let result = match result {
                Ok(_) => Err(alcor_state_machine::Rejection::InvalidField {
                    field: "command".to_string(),
                    reason: "batch reply does not match the batch".to_string(),
                }),
                Err(rejection) => Err(rejection),
            };
            for slot in slots {
                let _ = slot.send(Ok(Response {
                    log_index,
                    result: result.clone(),
                }));
            }
        }
        Err(e) => {
            for slot in slots {
                let _ = slot.send(Err(e.clone()));
            }
        }
    }
}
