//! Health, reflection and logs of real `alcor server` processes: gRPC
//! health (`grpc.health.v1`) on the API, Raft and push listeners and
//! `/readyz` on the metrics listener say SERVING/200 only while the member
//! sees a leader, and follow quorum loss and return; `/livez` answers 200
//! throughout; reflection lists the Alcor services; health follows the
//! listener's authentication while the HTTP probes need none; JSON log
//! lines parse, and the lines of one request carry its id (gRPC: the
//! caller's `x-request-id` or a made one; REST: `X-Openstack-Request-Id`).

use std::collections::BTreeMap;
use std::time::Duration;

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use alcor_proto::request_id::REQUEST_ID_HEADER;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1 as reflection;

use crate::cluster::{free_port, ProcessCluster};
use crate::workload::req;

/// A channel to `addr` (plain text), if it connects.
async fn channel(addr: &str) -> Option<Channel> {
    Channel::from_shared(format!("http://{addr}"))
        .ok()?
        .connect_timeout(Duration::from_millis(1_000))
        .connect()
        .await
        .ok()
}

/// `grpc.health.v1.Health/Check` of `service` at `addr`, with `token` as a
/// bearer token if given.
async fn check(addr: &str, service: &str, token: Option<&str>) -> Result<i32, tonic::Status> {
    let channel = channel(addr)
        .await
        .ok_or_else(|| tonic::Status::unavailable(format!("cannot connect to {addr}")))?;
    let mut request = req(HealthCheckRequest {
        service: service.to_string(),
    });
    if let Some(token) = token {
        let value = format!("{}{token}", alcor_proto::identity::BEARER_PREFIX);
        request.metadata_mut().insert(
            alcor_proto::identity::AUTHORIZATION_HEADER,
            value.parse().expect("header"),
        );
    }
    let response = HealthClient::new(channel).check(request).await?;
    Ok(response.into_inner().status)
}

/// `GET path` from `addr` (HTTP/1.0, no credential): status and body.
async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_millis(2_000),
        stream.read_to_string(&mut response),
    )
    .await
    .ok()?
    .ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// The extra listeners of the members of [`probed_cluster`].
struct Listeners {
    push: BTreeMap<u64, String>,
    metrics: BTreeMap<u64, String>,
}

/// A 3-member cluster whose members serve push and metrics on listeners
/// of their own.
fn probed_cluster() -> (ProcessCluster, Listeners) {
    let addrs = || -> BTreeMap<u64, String> {
        (1..=3)
            .map(|id| (id, format!("127.0.0.1:{}", free_port())))
            .collect()
    };
    let listeners = Listeners {
        push: addrs(),
        metrics: addrs(),
    };
    let cluster = ProcessCluster::start_each(3, &[], |id| {
        vec![
            "--push-addr".to_string(),
            listeners.push[&id].clone(),
            "--metrics-addr".to_string(),
            listeners.metrics[&id].clone(),
        ]
    });
    (cluster, listeners)
}

/// What member `id` reports on every listener: `Some(true)` when every
/// health check says SERVING and `/readyz` 200, `Some(false)` when every
/// one says NOT_SERVING and `/readyz` 503 with a reason; `None` when they
/// disagree or one does not answer. `/livez` must answer 200 either way.
async fn verdict(cluster: &ProcessCluster, listeners: &Listeners, id: u64) -> Option<bool> {
    let (api, raft) = (cluster.api_addr(id), cluster.raft_addr(id));
    let (push, metrics) = (&listeners.push[&id], &listeners.metrics[&id]);
    let checks = [
        (api.as_str(), ""),
        (api.as_str(), "alcor.api.v1.Orchestrator"),
        (api.as_str(), "alcor.api.v1.Cluster"),
        (raft.as_str(), ""),
        (raft.as_str(), "alcor.raft.v1.RaftService"),
        (push.as_str(), ""),
        (push.as_str(), "alcor.push.v1.HostPush"),
    ];
    let mut statuses = Vec::new();
    for (addr, service) in checks {
        statuses.push(check(addr, service, None).await.ok()?);
    }
    let (ready_code, ready_body) = http_get(metrics, "/readyz").await?;
    let live = http_get(metrics, "/livez").await?;
    assert_eq!(live, (200, "ok\n".to_string()), "/livez of member {id}");
    let serving = ServingStatus::Serving as i32;
    let not_serving = ServingStatus::NotServing as i32;
    if statuses.iter().all(|s| *s == serving) && ready_code == 200 {
        return Some(true);
    }
    let unready = ready_code == 503 && ready_body.starts_with("not ready: ");
    (statuses.iter().all(|s| *s == not_serving) && unready).then_some(false)
}

/// Waits until member `id` reports `serving` on every listener.
async fn reports(cluster: &ProcessCluster, listeners: &Listeners, id: u64, serving: bool) {
    let what = format!("member {id} to report serving={serving} everywhere");
    cluster
        .eventually(&what, || async {
            (verdict(cluster, listeners, id).await == Some(serving)).then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readyz_follow_quorum_and_livez_answers_without_it() {
    let (mut cluster, listeners) = probed_cluster();
    let all = cluster.ids();
    for id in &all {
        reports(&cluster, &listeners, *id, true).await;
    }
    // A listener knows only the services it serves.
    let not_found = |r: Result<i32, tonic::Status>| r.err().map(|s| s.code());
    let raft = cluster.raft_addr(1);
    let api = cluster.api_addr(1);
    let orchestrator = check(&raft, "alcor.api.v1.Orchestrator", None).await;
    assert_eq!(not_found(orchestrator), Some(tonic::Code::NotFound));
    let push_on_api = check(&api, "alcor.push.v1.HostPush", None).await;
    assert_eq!(not_found(push_on_api), Some(tonic::Code::NotFound));

    // The leader left alone (it does not step down: only the missing
    // quorum acknowledgements tell), then quorum returns.
    let leader = cluster.leader(&all).await;
    let others: Vec<u64> = all.iter().copied().filter(|id| *id != leader).collect();
    for id in &others {
        cluster.kill(*id);
    }
    reports(&cluster, &listeners, leader, false).await;
    let (_, reason) = http_get(&listeners.metrics[&leader], "/readyz")
        .await
        .expect("readyz");
    assert_eq!(reason, "not ready: no leader\n");
    cluster.spawn(others[0]);
    reports(&cluster, &listeners, leader, true).await;

    // A follower left alone (it keeps naming the dead leader; only the
    // leader's silence tells), then quorum returns.
    cluster.spawn(others[1]);
    for id in &all {
        reports(&cluster, &listeners, *id, true).await;
    }
    let leader = cluster.leader(&all).await;
    let follower = *all.iter().find(|id| **id != leader).expect("a follower");
    let others: Vec<u64> = all.iter().copied().filter(|id| *id != follower).collect();
    for id in &others {
        cluster.kill(*id);
    }
    reports(&cluster, &listeners, follower, false).await;
    cluster.spawn(others[0]);
    reports(&cluster, &listeners, follower, true).await;
}

/// The services reflection lists at `addr`.
async fn listed_services(addr: &str) -> Vec<String> {
    let channel = channel(addr).await.expect("connect");
    let mut client = reflection::server_reflection_client::ServerReflectionClient::new(channel);
    let request = reflection::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            reflection::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection call")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("answer")
        .expect("one answer");
    match answer.message_response {
        Some(reflection::server_reflection_response::MessageResponse::ListServicesResponse(
            list,
        )) => list.service.into_iter().map(|s| s.name).collect(),
        other => panic!("not a service list: {other:?}"),
    }
}

/// The encoded file descriptors reflection returns for `symbol` at `addr`.
async fn file_of(addr: &str, symbol: &str) -> Vec<Vec<u8>> {
    let channel = channel(addr).await.expect("connect");
    let mut client = reflection::server_reflection_client::ServerReflectionClient::new(channel);
    let request = reflection::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            reflection::server_reflection_request::MessageRequest::FileContainingSymbol(
                symbol.to_string(),
            ),
        ),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection call")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("answer")
        .expect("one answer");
    match answer.message_response {
        Some(reflection::server_reflection_response::MessageResponse::FileDescriptorResponse(
            files,
        )) => files.file_descriptor_proto,
        other => panic!("no file for {symbol}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_and_describes_the_alcor_services_of_the_api_listener() {
    let cluster = ProcessCluster::start(1);
    cluster.leader(&[1]).await;
    let api = cluster.api_addr(1);
    let mut services = listed_services(&api).await;
    services.sort();
    assert_eq!(
        services,
        [
            "alcor.api.v1.Cluster",
            "alcor.api.v1.Orchestrator",
            "alcor.push.v1.HostPush",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]
    );
    // `grpcurl describe`: the file defining a service, and a message.
    for (symbol, file) in [
        ("alcor.api.v1.Orchestrator", "alcor/api/v1/api.proto"),
        ("alcor.api.v1.CreatePortRequest", "alcor/api/v1/api.proto"),
        ("alcor.push.v1.HostPush", "alcor/push/v1/push.proto"),
    ] {
        let files = file_of(&api, symbol).await;
        let named = |bytes: &Vec<u8>| bytes.windows(file.len()).any(|w| w == file.as_bytes());
        assert!(files.iter().any(named), "{symbol} is not in {file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_the_listeners_credentials_and_the_http_probes_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        "[\"admin-token\"]\nrole = \"admin\"\n\n\
         [\"reader-token\"]\nrole = \"reader\"\nproject_id = \"p\"\n\n\
         [\"agent-token\"]\nrole = \"agent\"\nhost_id = \"h\"\n",
    )
    .expect("write tokens");
    let metrics = format!("127.0.0.1:{}", free_port());
    let tokens = tokens.display().to_string();
    let cluster =
        ProcessCluster::start_with(1, &["--token-file", &tokens, "--metrics-addr", &metrics]);
    let api = cluster.api_addr(1);
    let serving = ServingStatus::Serving as i32;
    cluster
        .eventually("the reader sees SERVING", || async {
            (check(&api, "", Some("reader-token")).await.ok()? == serving).then_some(())
        })
        .await;
    // Every role may ask, as for /metrics; no credential may not.
    assert_eq!(
        check(&api, "", Some("agent-token")).await.ok(),
        Some(serving)
    );
    let anonymous = check(&api, "", None).await.expect_err("no credential");
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
    let unknown = check(&api, "", Some("nobody")).await.expect_err("unknown");
    assert_eq!(unknown.code(), tonic::Code::Unauthenticated);
    // The HTTP probes answer without one; /metrics does not.
    assert_eq!(http_get(&metrics, "/livez").await.map(|r| r.0), Some(200));
    assert_eq!(http_get(&metrics, "/readyz").await.map(|r| r.0), Some(200));
    assert_eq!(http_get(&metrics, "/metrics").await.map(|r| r.0), Some(401));
}

/// The JSON log lines of member 1 that ran inside request `id`'s span.
fn lines_of_request(cluster: &ProcessCluster, id: &str) -> Vec<serde_json::Value> {
    cluster
        .log(1)
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .filter(|line: &serde_json::Value| {
            let spans = line["spans"].as_array().cloned().unwrap_or_default();
            spans.iter().any(|span| span["request_id"] == id)
        })
        .collect()
}

/// The messages of `lines`.
fn messages(lines: &[serde_json::Value]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|line| line["fields"]["message"].as_str().map(str::to_string))
        .collect()
}

/// The request id a response carries.
fn id_of<T>(response: &tonic::Response<T>) -> String {
    response
        .metadata()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .expect("the response names its request")
        .to_string()
}

/// `request` with `id` as its request id and the admin's token.
fn named<T>(message: T, id: Option<&str>) -> tonic::Request<T> {
    let mut request = req(message);
    let bearer = format!("{}admin-token", alcor_proto::identity::BEARER_PREFIX);
    request.metadata_mut().insert(
        alcor_proto::identity::AUTHORIZATION_HEADER,
        bearer.parse().expect("header"),
    );
    if let Some(id) = id {
        request
            .metadata_mut()
            .insert(REQUEST_ID_HEADER, id.parse().expect("header"));
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_parse_and_every_line_of_a_request_carries_its_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, "[\"admin-token\"]\nrole = \"admin\"\n").expect("write tokens");
    let (tokens, rest) = (
        tokens.display().to_string(),
        format!("127.0.0.1:{}", free_port()),
    );
    let cluster = ProcessCluster::start_with(
        1,
        &[
            "--token-file",
            &tokens,
            "--rest-addr",
            &rest,
            "--log-format",
            "json",
            "--log",
            "info,openraft=warn,alcor_api_gateway=debug,alcor_rest_gateway=debug",
        ],
    );
    let channel = cluster
        .eventually("the member answers", || async {
            let channel = channel(&cluster.api_addr(1)).await?;
            let mut client = OrchestratorClient::new(channel.clone());
            let request = named(pb::ListHostsRequest::default(), None);
            client.list_hosts(request).await.ok().map(|_| channel)
        })
        .await;
    let mut client = OrchestratorClient::new(channel);

    // The caller's id is kept, returned, and on the lines of its call: the
    // orchestrator's write and the call's summary.
    let host = pb::CreateHostRequest {
        id: "h1".into(),
        project_id: "p".into(),
        underlay_ip: "192.168.0.1".into(),
        ..Default::default()
    };
    let created = client
        .create_host(named(host, Some("it-health-42")))
        .await
        .expect("create host");
    assert_eq!(id_of(&created), "it-health-42");
    // Without one (or with one it does not keep) the member names the call.
    let made = client
        .list_hosts(named(pb::ListHostsRequest::default(), None))
        .await
        .expect("list hosts");
    let made = id_of(&made);
    assert!(made.starts_with("req-"), "{made}");
    let refused = client
        .list_hosts(named(pb::ListHostsRequest::default(), Some("a b")))
        .await
        .expect("list hosts");
    let refused = id_of(&refused);
    assert!(refused.starts_with("req-"), "{refused}");

    // REST names its requests in X-Openstack-Request-Id; the in-process
    // orchestrator's lines carry that id too.
    let body = r#"{"network": {"name": "n1"}}"#;
    let post = format!(
        "POST /v2.0/networks HTTP/1.0\r\nHost: {rest}\r\nX-Auth-Token: admin-token\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(&rest).await.expect("rest");
    stream.write_all(post.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.0 201"), "{response}");
    let rest_id = response
        .lines()
        .find_map(|l| l.strip_prefix("x-openstack-request-id: "))
        .expect("the REST response names its request")
        .to_string();

    let wanted = [
        ("it-health-42", &["write", "grpc"][..]),
        (made.as_str(), &["grpc"][..]),
        (refused.as_str(), &["grpc"][..]),
        (rest_id.as_str(), &["write", "rest"][..]),
    ];
    for (id, want) in wanted {
        let what = format!("the lines of request {id}");
        let lines = cluster
            .eventually(&what, || async {
                let lines = lines_of_request(&cluster, id);
                let seen = messages(&lines);
                want.iter()
                    .all(|m| seen.iter().any(|s| s == m))
                    .then_some(lines)
            })
            .await;
        for line in &lines {
            assert!(
                line["timestamp"].is_string() && line["level"].is_string(),
                "{line}"
            );
        }
    }
    assert!(
        !cluster.log(1).contains('\u{1b}'),
        "no colour codes in a log file"
    );
}
