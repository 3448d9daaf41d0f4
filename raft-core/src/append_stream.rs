//! Pipelined replication over one gRPC stream per replication session
//! (`RaftService.StreamAppend`): openraft 0.10 hands the transport a stream
//! of AppendEntries and reads a stream of answers, so the leader sends the
//! next batch without waiting for the follower's answer to the last one.
//!
//! Timeouts: every request gets openraft's RPC timeout plus its size at
//! `APPEND_ENTRIES_BYTES_PER_MS_MIN`, counted from when it was sent or from
//! the previous answer, whichever is later (the follower answers in order,
//! so a request cannot be answered before the ones ahead of it). An idle
//! stream (nothing unanswered) has no deadline: in openraft's pipeline mode
//! a session stays open and waits for new entries.
//!
//! Link faults (chaos tests) act on the stream as a network acts on a TCP
//! connection: a dropped request or a lost answer breaks the stream (the
//! caller sees a timeout once the request's deadline passes), a delay holds
//! back that request and everything after it. Duplicates are not injected
//! here: a stream never delivers a message twice.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alcor_proto::raft::v1::RaftMessage;
use futures::StreamExt;
use openraft::base::BoxStream;
use openraft::errors::{Fatal, RPCError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{AppendEntriesRequest, StreamAppendResult};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tonic::{Code, Streaming};

use crate::convert;
use crate::faults::{LinkFate, LinkFaults};
use crate::limits::APPEND_ENTRIES_BYTES_PER_MS_MIN;
use crate::network::{Class, PeerError, Peers};
use crate::types::{NodeId, TypeConfig};

/// What the transport yields to openraft for each answer.
pub(crate) type AppendAnswer = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>;

/// Requests sent and not answered yet, shared by the sending and the
/// answering half of a stream.
#[derive(Default)]
struct Unanswered {
    /// (sent at, time allowed) of each unanswered request, oldest first.
    requests: Mutex<VecDeque<(Instant, Duration)>>,
    /// Wakes an answer reader that waits without a deadline.
    sent: Notify,
}

impl Unanswered {
    fn push(&self, allowed: Duration) {
        lock(&self.requests).push_back((Instant::now(), allowed));
        self.sent.notify_one();
    }

    fn pop(&self) {
        lock(&self.requests).pop_front();
    }

    /// When the oldest unanswered request times out, given the time of the
    /// previous answer.
    fn deadline(&self, last_answer: Instant) -> Option<Instant> {
        let requests = lock(&self.requests);
        let (sent_at, allowed) = *requests.front()?;
        Some(sent_at.max(last_answer) + allowed)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One side of a link, for errors and fault decisions.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) id: NodeId,
    pub(crate) target: NodeId,
    pub(crate) faults: Option<Arc<dyn LinkFaults>>,
}

impl Link {
    fn timeout(&self, timeout: Duration) -> RPCError<TypeConfig> {
        RPCError::Timeout(Timeout {
            action: RPCTypes::AppendEntries,
            id: self.id,
            target: self.target,
            timeout,
        })
    }

    fn status_error(&self, status: tonic::Status, timeout: Duration) -> RPCError<TypeConfig> {
        if status.code() == Code::DeadlineExceeded {
            return self.timeout(timeout);
        }
        RPCError::Unreachable(Unreachable::new(&PeerError::Status(status)))
    }
}

/// Opens a `StreamAppend` call to `link.target` carrying `input`, and
/// returns the stream of its answers.
pub(crate) async fn open<S>(
    peers: &Peers,
    link: Link,
    raft_addr: &str,
    input: S,
    option: RPCOption,
) -> Result<BoxStream<'static, AppendAnswer>, RPCError<TypeConfig>>
where
    S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
{
    let timeout = option.hard_ttl();
    let mut client = peers
        .client(link.target, raft_addr, Class::Replication)
        .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
    let unanswered = Arc::new(Unanswered::default());
    // Dropped with the answer stream: then the request stream ends too, so
    // that a session openraft gave up on stops taking entries from the
    // replication state it shares with the next session.
    let (answers_alive, answers_dropped) = oneshot::channel();
    let outbound = requests(
        input,
        answers_dropped,
        link.clone(),
        Arc::clone(&unanswered),
        timeout,
    );
    let call = client.stream_append(tonic::Request::new(outbound));
    let inbound = match tokio::time::timeout(timeout, call).await {
        Err(_) => return Err(link.timeout(timeout)),
        Ok(Err(status)) => return Err(link.status_error(status, timeout)),
        Ok(Ok(response)) => response.into_inner(),
    };
    let newer = peers.newer.clone();
    let peer = raft_addr.to_string();
    Ok(answers(
        inbound,
        answers_alive,
        link,
        unanswered,
        timeout,
        (newer, peer),
    ))
}

/// The requests as envelopes, each recorded as unanswered when it leaves;
/// the stream ends early when a fault drops a request.
fn requests<S>(
    input: S,
    answers_dropped: oneshot::Receiver<()>,
    link: Link,
    unanswered: Arc<Unanswered>,
    timeout: Duration,
) -> impl futures::Stream<Item = RaftMessage> + Send + 'static
where
    S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
{
    futures::stream::unfold(Some((input, answers_dropped)), move |state| {
        let (link, unanswered) = (link.clone(), Arc::clone(&unanswered));
        async move {
            let (mut input, mut answers_dropped) = state?;
            let request = tokio::select! {
                request = input.next() => request?,
                _ = &mut answers_dropped => return None,
            };
            let message = match convert::to_message(&request) {
                Ok(message) => message,
                Err(e) => {
                    tracing::error!(target = link.target, "encode AppendEntries: {e}");
                    return None;
                }
            };
            let size_ms = message.payload.len() / APPEND_ENTRIES_BYTES_PER_MS_MIN;
            let allowed = timeout + Duration::from_millis(size_ms as u64);
            let fate = match &link.faults {
                None => LinkFate::Deliver,
                Some(faults) => faults.request(link.id, link.target),
            };
            match fate {
                LinkFate::Deliver | LinkFate::Duplicate => {}
                LinkFate::Delay(delay) => tokio::time::sleep(delay.min(timeout)).await,
                LinkFate::Drop => {
                    // Counted as sent, never delivered: the answer side
                    // times out on it.
                    unanswered.push(allowed);
                    return None;
                }
            }
            unanswered.push(allowed);
            Some((message, Some((input, answers_dropped))))
        }
    })
}

/// The answers, decoded, with the deadlines and lost answers applied. The
/// stream ends after the first error.
fn answers(
    inbound: Streaming<RaftMessage>,
    alive: oneshot::Sender<()>,
    link: Link,
    unanswered: Arc<Unanswered>,
    timeout: Duration,
    (newer, peer): (convert::NewerWire, String),
) -> BoxStream<'static, AppendAnswer> {
    let state = Some((inbound, Instant::now()));
    let answers = futures::stream::unfold(state, move |state| {
        // Owned by this closure, so dropped with the stream.
        let _alive = &alive;
        let (link, unanswered) = (link.clone(), Arc::clone(&unanswered));
        let (newer, peer) = (newer.clone(), peer.clone());
        async move {
            let (mut inbound, last_answer) = state?;
            let next = loop {
                match unanswered.deadline(last_answer) {
                    Some(deadline) => {
                        match tokio::time::timeout_at(deadline, inbound.message()).await {
                            Ok(next) => break next,
                            Err(_) => return Some((Err(link.timeout(timeout)), None)),
                        }
                    }
                    None => tokio::select! {
                        next = inbound.message() => break next,
                        () = unanswered.sent.notified() => {}
                    },
                }
            };
            let message = match next {
                Ok(Some(message)) => message,
                // The peer ended the stream: whatever it left unanswered
                // times out, as a lost message would.
                Ok(None) => {
                    let deadline = unanswered.deadline(last_answer)?;
                    tokio::time::sleep_until(deadline).await;
                    return Some((Err(link.timeout(timeout)), None));
                }
                Err(status) => return Some((Err(link.status_error(status, timeout)), None)),
            };
            unanswered.pop();
            let lost = link
                .faults
                .as_ref()
                .is_some_and(|f| f.reply_lost(link.id, link.target));
            if lost {
                return Some((Err(link.timeout(timeout)), None));
            }
            let answer: Result<StreamAppendResult<TypeConfig>, Fatal<TypeConfig>> =
                match newer.decode(&message, &peer) {
                    Ok(answer) => answer,
                    Err(status) => return Some((Err(link.status_error(status, timeout)), None)),
                };
            match answer {
                Ok(result) => {
                    let go_on = result.is_ok();
                    let state = go_on.then(|| (inbound, Instant::now()));
                    Some((Ok(result), state))
                }
                // The peer's Raft has stopped: as good as unreachable.
                Err(fatal) => Some((Err(RPCError::Unreachable(Unreachable::new(&fatal))), None)),
            }
        }
    });
    Box::pin(answers)
}
