//! The delay fault's packet delayer. The kernel has no `netem`, so the
//! nemesis sends the peers' packets of a node to NFQUEUE (iptables rule with
//! `--queue-bypass`: packets pass untouched when no delayer listens) and
//! runs this loop inside the node's namespace (`alcor-jepsen delay`): it
//! holds each packet for a fixed time, then accepts it. It exits after
//! `run_for` and prints how many packets it delayed, which is what the
//! nemesis uses to verify the fault.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Packets held at once; beyond this a packet is accepted at once (a
/// bounded queue, never unbounded memory).
pub const HELD_MAX: usize = 20_000;
/// Sleep when no packet is waiting.
const IDLE: Duration = Duration::from_millis(1);

/// Delays every packet of NFQUEUE `queue` by `delay` for `run_for`; returns
/// the number of packets delayed.
pub fn run(queue: u16, delay: Duration, run_for: Duration) -> Result<u64> {
    let mut q = nfq::Queue::open().context("open NFQUEUE netlink socket")?;
    q.bind(queue).context("bind NFQUEUE")?;
    q.set_fail_open(queue, true).context("fail-open")?;
    q.set_nonblocking(true);
    let end = Instant::now() + run_for;
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    let mut delayed = 0u64;
    while Instant::now() < end {
        while held.front().is_some_and(|(due, _)| *due <= Instant::now()) {
            if let Some((_, msg)) = held.pop_front() {
                q.verdict(msg).context("verdict")?;
            }
        }
        match q.recv() {
            Ok(mut msg) => {
                msg.set_verdict(nfq::Verdict::Accept);
                if held.len() >= HELD_MAX {
                    q.verdict(msg).context("verdict")?;
                } else {
                    held.push_back((Instant::now() + delay, msg));
                    delayed += 1;
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(IDLE)
            }
            Err(error) => return Err(error).context("recv"),
        }
    }
    for (_, msg) in held {
        q.verdict(msg).context("verdict")?;
    }
    Ok(delayed)
}
