//! Bytes that are not gRPC on a node's Raft and API ports (random noise, an
//! HTTP/1.1 request, a truncated HTTP/2 preface, a preface followed by noise)
//! cost the sender its connection and nothing else: the node still answers
//! and commits writes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cluster::ProcessCluster;
use crate::workload::{self, uuid};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Deterministic noise (xorshift), `len` bytes from `seed`.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The payloads sent to each port, one connection each.
fn payloads() -> Vec<Vec<u8>> {
    let mut preface_then_noise = PREFACE.to_vec();
    preface_then_noise.extend(noise(7, 4_096));
    let mut huge_frame_header = PREFACE.to_vec();
    // A SETTINGS-typed frame header claiming a 16 MiB payload, then EOF.
    huge_frame_header.extend([0xff, 0xff, 0xff, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00]);
    vec![
        noise(1, 64),
        noise(2, 64 * 1024),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"POST /alcor.raft.v1.RaftService/Vote HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        PREFACE[..10].to_vec(),
        preface_then_noise,
        huge_frame_header,
        Vec::new(),
    ]
}

/// Sends `payload` on a fresh connection, reads whatever comes back for a
/// moment, closes. Connection errors are fine (the node may hang up).
async fn throw(addr: &str, payload: &[u8]) {
    let Ok(Ok(mut stream)) =
        tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
    else {
        return;
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(payload)).await;
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    let _ = stream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_raft_and_api_ports_does_not_crash_a_node() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    let leader = cluster.leader(&all).await;
    let follower = *all.iter().find(|id| **id != leader).expect("follower");
    for target in [leader, follower] {
        for addr in [cluster.raft_addr(target), cluster.api_addr(target)] {
            for payload in payloads() {
                throw(&addr, &payload).await;
            }
        }
    }
    // Many connections at once, left open while the next checks run.
    let mut held = Vec::new();
    for n in 0..50u64 {
        let addr = if n % 2 == 0 {
            cluster.raft_addr(leader)
        } else {
            cluster.api_addr(leader)
        };
        if let Ok(mut stream) = TcpStream::connect(&addr).await {
            let _ = stream.write_all(&noise(100 + n, 512)).await;
            held.push(stream);
        }
    }

    for id in &all {
        let status = cluster
            .eventually("every member to answer Status", || cluster.status(*id))
            .await;
        assert_eq!(status.id, *id);
    }
    cluster.leader(&all).await;
    workload::create_network(&cluster, &[follower, leader], &uuid(0xd0), &uuid(0xd1)).await;
    drop(held);
    workload::create_port(&cluster, &[leader], &uuid(0xd0), &uuid(0xd1), &uuid(1), "").await;
}
