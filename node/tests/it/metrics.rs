//! `/metrics` of real `alcor server` processes (`--metrics-addr`): every
//! family (Raft, disk, snapshot, gRPC, REST, watch, push) is there with its
//! type and etcd's buckets, and the values move with what the cluster does:
//! writes, reads, a rejection, a refused credential, REST calls, a watch, a
//! snapshot, and a snapshot sent to a member that fell behind.

use std::collections::BTreeMap;
use std::time::Duration;

use alcor_client::types::{self as pb, CreateVpcRequest};
use alcor_client::Client;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::{free_port, ProcessCluster};
use crate::workload::{self, uuid};

const ADMIN: &str = "metrics-admin-token";

/// Every family a member exports, with its type (the name as in `# TYPE`).
const FAMILIES: &[(&str, &str)] = &[
    ("alcor_server_has_leader", "gauge"),
    ("alcor_server_is_leader", "gauge"),
    ("alcor_server_is_learner", "gauge"),
    ("alcor_server_leader_id", "gauge"),
    ("alcor_server_term", "gauge"),
    ("alcor_server_leader_changes_seen", "counter"),
    ("alcor_server_proposals_committed", "counter"),
    ("alcor_server_proposals_applied", "counter"),
    ("alcor_server_proposals_pending", "gauge"),
    ("alcor_server_proposals_failed", "counter"),
    ("alcor_server_write_lease_refusals", "counter"),
    ("alcor_server_apply_duration_seconds", "histogram"),
    ("alcor_server_apply_lock_hold_duration_seconds", "histogram"),
    ("alcor_disk_wal_fsync_duration_seconds", "histogram"),
    ("alcor_disk_log_cache_hits", "counter"),
    ("alcor_disk_log_cache_misses", "counter"),
    ("alcor_disk_log_size_in_bytes", "gauge"),
    ("alcor_disk_db_total_size_in_bytes", "gauge"),
    ("alcor_disk_db_live_data_size_in_bytes", "gauge"),
    ("alcor_snapshot_build_duration_seconds", "histogram"),
    ("alcor_snapshot_freeze_duration_seconds", "histogram"),
    ("alcor_snapshot_restore_duration_seconds", "histogram"),
    ("alcor_snapshot_size_in_bytes", "gauge"),
    (
        "alcor_network_snapshot_send_total_duration_seconds",
        "histogram",
    ),
    ("alcor_network_snapshot_send_success", "counter"),
    ("alcor_network_snapshot_send_failures", "counter"),
    ("alcor_network_snapshot_send_bytes", "counter"),
    ("alcor_grpc_server_started", "counter"),
    ("alcor_grpc_server_handled", "counter"),
    ("alcor_grpc_server_handling_seconds", "histogram"),
    ("alcor_grpc_server_in_flight_requests", "gauge"),
    ("alcor_grpc_server_rejections", "counter"),
    ("alcor_rest_requests", "counter"),
    ("alcor_rest_request_duration_seconds", "histogram"),
    ("alcor_rest_requests_in_flight", "gauge"),
    ("alcor_watch_watchers", "gauge"),
    ("alcor_watch_lagged", "counter"),
    ("alcor_watch_compacted", "counter"),
    ("alcor_push_connected_agents", "gauge"),
    ("alcor_push_push_latency_seconds", "histogram"),
];

/// A `GET path` over HTTP/1.0 with `headers`; the status code and body.
async fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_millis(5_000),
        stream.read_to_string(&mut response),
    )
    .await
    .ok()?
    .ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// A scrape of `addr`, authenticated with `token` when given.
async fn scrape(addr: &str, token: Option<&str>) -> Option<String> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("authorization", b)])
        .unwrap_or_default();
    match http_get(addr, "/metrics", &headers).await? {
        (200, body) => Some(body),
        _ => None,
    }
}

/// The value of the sample `name` (labels included, exactly as exported,
/// e.g. `alcor_watch_lagged_total` or `x_total{a="b"}`); 0 when absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// `name{labels}` with the labels in the order given.
fn labelled(name: &str, labels: &[(&str, &str)]) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

fn handled(method: &str, code: &str) -> String {
    labelled(
        "alcor_grpc_server_handled_total",
        &[
            ("grpc_service", "alcor.api.v1.Orchestrator"),
            ("grpc_method", method),
            ("grpc_code", code),
        ],
    )
}

fn rejections(method: &str, reason: &str) -> String {
    labelled(
        "alcor_grpc_server_rejections_total",
        &[
            ("grpc_service", "alcor.api.v1.Orchestrator"),
            ("grpc_method", method),
            ("reason", reason),
        ],
    )
}

fn rest(route: &str, code: &str) -> String {
    labelled(
        "alcor_rest_requests_total",
        &[("method", "GET"), ("route", route), ("code", code)],
    )
}

fn missing_families(text: &str) -> Vec<String> {
    FAMILIES
        .iter()
        .map(|(name, kind)| format!("# TYPE {name} {kind}"))
        .filter(|line| !text.lines().any(|l| l == line))
        .collect()
}

fn vpc(n: u64) -> CreateVpcRequest {
    CreateVpcRequest {
        id: uuid(0x3e00 + n),
        project_id: "p1".to_string(),
        name: format!("v{n}"),
        cidr: format!("10.{n}.0.0/16"),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_every_family_and_move_with_writes_reads_rejections_rest_and_watches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, format!("[\"{ADMIN}\"]\nrole = \"admin\"\n")).expect("tokens");
    let tokens = tokens.display().to_string();
    let metrics: BTreeMap<u64, String> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let rest_addrs: BTreeMap<u64, String> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let cluster = ProcessCluster::start_each(3, &["--token-file", &tokens], |id| {
        vec![
            "--metrics-addr".to_string(),
            metrics[&id].clone(),
            "--rest-addr".to_string(),
            rest_addrs[&id].clone(),
        ]
    });
    // The leader, from the members' own metrics.
    let leader = cluster
        .eventually("a member that leads, by its metrics", || async {
            for (id, addr) in &metrics {
                let text = scrape(addr, Some(ADMIN)).await?;
                if sample(&text, "alcor_server_is_leader") == 1.0 {
                    return Some(*id);
                }
            }
            None
        })
        .await;
    let follower = if leader == 1 { 2 } else { 1 };
    let addr = &metrics[&leader];
    assert!(
        scrape(addr, None).await.is_none(),
        "a scrape needs a credential"
    );
    let before = scrape(addr, Some(ADMIN)).await.expect("scrape");
    assert_eq!(missing_families(&before), Vec::<String>::new(), "{before}");
    // etcd's WAL fsync buckets: 1 ms doubling to 8.192 s.
    for le in ["0.001", "0.002", "0.512", "8.192", "+Inf"] {
        let bucket = format!("alcor_disk_wal_fsync_duration_seconds_bucket{{le=\"{le}\"}} ");
        assert!(before.contains(&bucket), "no bucket {le}: {before}");
    }
    assert_eq!(sample(&before, "alcor_server_has_leader"), 1.0);
    assert_eq!(
        sample(&before, "alcor_server_leader_id"),
        leader as f64,
        "{before}"
    );
    assert!(sample(&before, "alcor_server_term") >= 1.0);
    assert!(sample(&before, "alcor_server_leader_changes_seen_total") >= 1.0);
    // A follower learns of the leader from its first append, which may
    // come after the leader's own metrics say it leads.
    let other = cluster
        .eventually("the follower's metrics to name the leader", || async {
            let text = scrape(&metrics[&follower], Some(ADMIN)).await?;
            (sample(&text, "alcor_server_leader_id") == leader as f64).then_some(text)
        })
        .await;
    assert_eq!(sample(&other, "alcor_server_is_leader"), 0.0);

    let admin = Client::builder()
        .endpoints([cluster.api_addr(leader)])
        .token(ADMIN)
        .deadline(Duration::from_secs(10))
        .build()
        .expect("client");
    let start = admin
        .vpcs()
        .list(Default::default())
        .await
        .expect("list vpcs")
        .revision;
    const WRITES: u64 = 3;
    for n in 0..WRITES {
        admin.vpcs().create(vpc(n)).await.expect("create vpc");
    }
    // A watch open on the leader for the rest of the test (it opens on
    // the first poll and replays from `start`).
    let mut watch = Box::pin(admin.watch(pb::ResourceKind::Vpc, start));
    let first = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("a watch event in time")
        .expect("the watch is open")
        .expect("a watch event");
    assert_eq!(first.id, vpc(0).id);
    admin.vpcs().get(&vpc(0).id).await.expect("get vpc");
    let missing = admin.vpcs().get(&uuid(0x3eff)).await;
    assert!(missing.is_err(), "{missing:?}");
    let anonymous = Client::builder()
        .endpoints([cluster.api_addr(leader)])
        .deadline(Duration::from_secs(10))
        .build()
        .expect("client");
    assert!(anonymous.vpcs().get(&vpc(0).id).await.is_err());
    // REST: a list, a show, a path no route matches.
    let rest_addr = &rest_addrs[&leader];
    let auth = [("x-auth-token", ADMIN)];
    let (code, _) = http_get(rest_addr, "/v2.0/networks", &auth)
        .await
        .expect("list");
    assert_eq!(code, 200);
    let show = format!("/v2.0/networks/{}", vpc(1).id);
    let (code, _) = http_get(rest_addr, &show, &auth).await.expect("show");
    assert_eq!(code, 200);
    let (code, _) = http_get(rest_addr, "/v2.0/no-such-collection", &auth)
        .await
        .expect("404");
    assert_eq!(code, 404);
    admin.cluster().snapshot().await.expect("snapshot");

    let after = cluster
        .eventually("the snapshot to be built", || async {
            let text = scrape(addr, Some(ADMIN)).await?;
            (sample(&text, "alcor_snapshot_build_duration_seconds_count") >= 1.0).then_some(text)
        })
        .await;
    let moved = |name: &str, by: f64| {
        let (was, now) = (sample(&before, name), sample(&after, name));
        assert!(
            now >= was + by,
            "{name}: {was} -> {now}, want +{by}\n{after}"
        );
    };
    let writes = WRITES as f64;
    moved("alcor_server_proposals_committed_total", writes);
    moved("alcor_server_proposals_applied_total", writes);
    moved("alcor_server_apply_duration_seconds_count", writes);
    moved("alcor_server_apply_lock_hold_duration_seconds_count", 1.0);
    moved("alcor_disk_wal_fsync_duration_seconds_count", 1.0);
    // Apply reads the writes back from the log cache (one read per batch).
    moved("alcor_disk_log_cache_hits_total", 1.0);
    moved("alcor_snapshot_freeze_duration_seconds_count", 1.0);
    moved(&handled("CreateVpc", "OK"), writes);
    moved(&handled("GetVpc", "OK"), 1.0);
    moved(&handled("GetVpc", "NotFound"), 1.0);
    moved(&rejections("GetVpc", "NOT_FOUND"), 1.0);
    moved(&handled("GetVpc", "Unauthenticated"), 1.0);
    moved(&rejections("GetVpc", "UNAUTHENTICATED"), 1.0);
    let create_count = labelled(
        "alcor_grpc_server_handling_seconds_count",
        &[
            ("grpc_service", "alcor.api.v1.Orchestrator"),
            ("grpc_method", "CreateVpc"),
            ("grpc_code", "OK"),
        ],
    );
    moved(&create_count, writes);
    moved(&rest("/v2.0/networks", "200"), 1.0);
    moved(&rest("/v2.0/networks/{id}", "200"), 1.0);
    moved(&rest("unmatched", "404"), 1.0);
    let show_count = labelled(
        "alcor_rest_request_duration_seconds_count",
        &[
            ("method", "GET"),
            ("route", "/v2.0/networks/{id}"),
            ("code", "200"),
        ],
    );
    moved(&show_count, 1.0);
    assert_eq!(sample(&after, "alcor_watch_watchers"), 1.0, "{after}");
    let watching = labelled(
        "alcor_grpc_server_in_flight_requests",
        &[
            ("grpc_service", "alcor.api.v1.Orchestrator"),
            ("grpc_method", "Watch"),
        ],
    );
    assert_eq!(sample(&after, &watching), 1.0, "{after}");
    assert!(sample(&after, "alcor_snapshot_size_in_bytes") > 0.0);
    assert!(sample(&after, "alcor_disk_log_size_in_bytes") > 0.0);
    assert_eq!(sample(&after, "alcor_server_proposals_pending"), 0.0);
    // The raw path never becomes a label: bounded cardinality.
    assert!(!after.contains(&vpc(1).id), "{after}");
    assert!(!after.contains("no-such-collection"), "{after}");

    // The watcher leaves: the gauges come back down.
    drop(watch);
    cluster
        .eventually("the watcher to be gone", || async {
            let text = scrape(addr, Some(ADMIN)).await?;
            (sample(&text, "alcor_watch_watchers") == 0.0 && sample(&text, &watching) == 0.0)
                .then_some(())
        })
        .await;
}

/// Writes while a follower is down, past the leader's log purge.
const BEHIND_WRITES: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_sent_to_a_member_behind_a_purged_log_shows_in_both_members_metrics() {
    let metrics: BTreeMap<u64, String> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let mut cluster = ProcessCluster::start_each(
        3,
        &[
            "--snapshot-logs-since-last",
            "20",
            "--snapshot-logs-to-keep",
            "5",
        ],
        |id| vec!["--metrics-addr".to_string(), metrics[&id].clone()],
    );
    let all = cluster.ids();
    let leader = cluster.leader(&all).await;
    let follower = *all
        .iter()
        .rev()
        .find(|id| **id != leader)
        .expect("follower");
    let (net, subnet) = (uuid(0x3f0), uuid(0x3f1));
    workload::create_network(&cluster, &all, &net, &subnet).await;
    cluster.quiescent(&all, 1).await;
    let follower_last = cluster
        .status(follower)
        .await
        .expect("status")
        .last_log_index
        .unwrap_or(0);
    cluster.kill(follower);
    let survivors: Vec<u64> = all.iter().copied().filter(|id| *id != follower).collect();
    for n in 0..BEHIND_WRITES {
        workload::create_port(&cluster, &survivors, &net, &subnet, &uuid(0x3f00 + n), "").await;
    }
    let leader = cluster.leader(&survivors).await;
    cluster
        .ctl_json_within(&[leader], 10_000, &["cluster", "snapshot"])
        .expect("ctl cluster snapshot on the leader");
    cluster
        .eventually("the leader to purge past the follower's log", || async {
            let purged = cluster.status(leader).await?.purged_index?;
            (purged > follower_last).then_some(())
        })
        .await;
    cluster.spawn(follower);
    let sent = cluster
        .eventually("the leader to count a snapshot sent", || async {
            let text = scrape(&metrics[&leader], None).await?;
            (sample(&text, "alcor_network_snapshot_send_success_total") >= 1.0).then_some(text)
        })
        .await;
    assert!(
        sample(&sent, "alcor_network_snapshot_send_bytes_total") > 0.0,
        "{sent}"
    );
    assert!(
        sample(
            &sent,
            "alcor_network_snapshot_send_total_duration_seconds_count"
        ) >= 1.0,
        "{sent}"
    );
    let installed = cluster
        .eventually("the follower to count a snapshot restored", || async {
            let text = scrape(&metrics[&follower], None).await?;
            (sample(&text, "alcor_snapshot_restore_duration_seconds_count") >= 1.0).then_some(text)
        })
        .await;
    assert!(
        sample(&installed, "alcor_snapshot_size_in_bytes") > 0.0,
        "{installed}"
    );
}
