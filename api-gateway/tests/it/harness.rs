//! An in-process cluster: N `RaftNode`s plus the gateway on port-0
//! listeners, and small helpers for clients and bounded waiting.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use alcor_api_gateway::{ClusterService, OrchestratorService, REASON_HEADER};
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use alcor_raft_core::{Node, RaftListen, RaftNode, RaftNodeConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// How long any wait in these tests may take.
pub(crate) const WAIT_MS_MAX: u64 = 20_000;

pub(crate) struct TestNode {
    pub(crate) node: Arc<RaftNode>,
    pub(crate) api_addr: String,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

pub(crate) struct TestCluster {
    pub(crate) nodes: Vec<TestNode>,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts `n` members and waits until all of them know the same leader.
    pub(crate) async fn start(n: u64) -> TestCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut listeners = BTreeMap::new();
        let mut members = BTreeMap::new();
        for id in 1..=n {
            let raft = TcpListener::bind("127.0.0.1:0").await.expect("bind raft");
            let api = TcpListener::bind("127.0.0.1:0").await.expect("bind api");
            members.insert(
                id,
                Node {
                    raft_addr: raft.local_addr().expect("addr").to_string(),
                    api_addr: api.local_addr().expect("addr").to_string(),
                },
            );
            listeners.insert(id, (raft, api));
        }
        let mut nodes = Vec::new();
        for (id, (raft, api)) in listeners {
            let config = RaftNodeConfig::new(
                id,
                dir.path().join(format!("node-{id}")),
                RaftListen::Listener(raft),
                members.clone(),
            );
            let node = Arc::new(RaftNode::start(config).await.expect("start node"));
            let api_addr = api.local_addr().expect("addr").to_string();
            let (stop, stop_rx) = oneshot::channel::<()>();
            let router = tonic::transport::Server::builder()
                .add_service(OrchestratorService::server(Arc::clone(&node)))
                .add_service(ClusterService::server(Arc::clone(&node)));
            let server = tokio::spawn(async move {
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(api);
                let _ = router
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
            nodes.push(TestNode {
                node,
                api_addr,
                stop: Some(stop),
                server,
            });
        }
        let cluster = TestCluster { nodes, _dir: dir };
        cluster.leader().await;
        cluster
    }

    /// The leader every member agrees on (waits for it).
    pub(crate) async fn leader(&self) -> u64 {
        eventually("a leader known to every member", || async {
            let leaders: Vec<Option<u64>> =
                self.nodes.iter().map(|n| n.node.metrics().leader).collect();
            match leaders.first() {
                Some(Some(leader)) if leaders.iter().all(|l| *l == Some(*leader)) => Some(*leader),
                _ => None,
            }
        })
        .await
    }

    pub(crate) async fn client(&self, idx: usize) -> OrchestratorClient<Channel> {
        OrchestratorClient::connect(format!("http://{}", self.nodes[idx].api_addr))
            .await
            .expect("connect")
    }

    pub(crate) async fn shutdown(mut self) {
        for n in &mut self.nodes {
            if let Some(stop) = n.stop.take() {
                let _ = stop.send(());
            }
            let _ = (&mut n.server).await;
            n.node.shutdown().await.expect("shutdown");
        }
    }
}

/// Polls `probe` every 50 ms until it returns `Some`, for at most
/// `WAIT_MS_MAX`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT_MS_MAX} ms waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts `result` failed with `code` and `x-alcor-reason: reason`.
#[track_caller]
pub(crate) fn assert_status<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    reason: &str,
) {
    let status = result.expect_err("expected an error");
    let got = status
        .metadata()
        .get(REASON_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(
        (status.code(), got.as_deref()),
        (code, Some(reason)),
        "{status:?}"
    );
}
