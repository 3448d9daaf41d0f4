//! One in-process Raft member with the gRPC orchestrator and the REST
//! router served by axum on 127.0.0.1:0, plus a small HTTP client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alcor_api_gateway::OrchestratorService;
use alcor_raft_core::{Node, RaftListen, RaftNode, RaftNodeConfig};
use alcor_rest_gateway::{Grant, Role, TokenTable, Tokens};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) const ADMIN: &str = "admin-token";
pub(crate) const ALICE: &str = "alice-token";
pub(crate) const BOB: &str = "bob-token";
/// A reader of alice's project.
pub(crate) const CAROL: &str = "carol-token";
/// The agent of host h1 (no REST access).
pub(crate) const AGENT: &str = "agent-h1-token";

/// How long any wait in these tests may take.
const WAIT_MS_MAX: u64 = 20_000;

pub(crate) struct Rest {
    pub(crate) base: String,
    svc: Arc<OrchestratorService>,
    node: Arc<RaftNode>,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

/// A response: status, headers and the JSON body (`Null` when empty).
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Reply {
    /// `NeutronError.type`.
    pub(crate) fn error_type(&self) -> &str {
        self.body["NeutronError"]["type"].as_str().unwrap_or("")
    }
}

fn tokens() -> TokenTable {
    let tokens = Tokens::new([
        (ADMIN.to_string(), Grant::in_project(Role::Admin, "admin")),
        (ALICE.to_string(), Grant::in_project(Role::Member, "alice")),
        (BOB.to_string(), Grant::in_project(Role::Member, "bob")),
        (CAROL.to_string(), Grant::in_project(Role::Reader, "alice")),
        (AGENT.to_string(), Grant::agent("h1")),
    ])
    .expect("tokens");
    TokenTable::fixed(tokens)
}

impl Rest {
    pub(crate) async fn start() -> Rest {
        let dir = tempfile::tempdir().expect("tempdir");
        let raft = TcpListener::bind("127.0.0.1:0").await.expect("bind raft");
        let members = BTreeMap::from([(
            1,
            Node {
                raft_addr: raft.local_addr().expect("addr").to_string(),
                api_addr: "127.0.0.1:1".to_string(),
            },
        )]);
        let config = RaftNodeConfig::new(
            1,
            dir.path().join("node-1"),
            RaftListen::Listener(raft),
            members,
        );
        let node = Arc::new(RaftNode::start(config).await.expect("start node"));
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        while node.metrics().leader != Some(1) {
            assert!(tokio::time::Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let svc = Arc::new(OrchestratorService::new(Arc::clone(&node)));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind rest");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(alcor_rest_gateway::serve(
            listener,
            Arc::clone(&svc),
            tokens(),
            alcor_rest_gateway::RestMetrics::default(),
            async {
                let _ = stop_rx.await;
            },
        ));
        let client = Client::builder(TokioExecutor::new()).build_http();
        Rest {
            base,
            svc,
            node,
            client,
            stop: Some(stop),
            server,
            _dir: dir,
        }
    }

    /// Registers hypervisors (Neutron has no API for them) over gRPC, in-process.
    pub(crate) async fn hosts(&self, ids: &[&str]) {
        use alcor_proto::api::v1::orchestrator_server::Orchestrator;
        for (i, id) in ids.iter().enumerate() {
            self.svc
                .create_host(tonic::Request::new(
                    alcor_proto::api::v1::CreateHostRequest {
                        id: id.to_string(),
                        project_id: "admin".to_string(),
                        underlay_ip: format!("192.0.2.{}", i + 1),
                        ..Default::default()
                    },
                ))
                .await
                .expect("create host");
        }
    }

    /// Sends a request (JSON body if any) with the token and extra headers.
    pub(crate) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = Request::builder().method(method).uri(url);
        if let Some(token) = token {
            request = request.header("x-auth-token", token);
        }
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request.body(Full::new(Bytes::from(body))).expect("request");
        let response = tokio::time::timeout(
            Duration::from_millis(WAIT_MS_MAX),
            self.client.request(request),
        )
        .await
        .expect("response in time")
        .expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Reply {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.call_raw(method, path, Some(token), bytes, &[]).await
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub(crate) async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.server).await;
        self.node.shutdown().await.expect("shutdown");
    }
}

/// Asserts a status and, for errors, the Neutron type; returns the body.
#[track_caller]
pub(crate) fn expect(reply: &Reply, status: StatusCode, error_type: Option<&str>) {
    assert_eq!(reply.status, status, "body: {}", reply.body);
    if let Some(t) = error_type {
        assert_eq!(reply.error_type(), t, "body: {}", reply.body);
        assert_eq!(
            reply.body["NeutronError"]["detail"], "",
            "body: {}",
            reply.body
        );
        assert!(reply.body["NeutronError"]["message"].is_string());
    }
    let id = reply
        .headers
        .get("x-openstack-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        id.starts_with("req-") && id.len() == 40,
        "request id {id:?}"
    );
}
