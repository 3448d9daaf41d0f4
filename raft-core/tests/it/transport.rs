//! The Raft gRPC service rejects malformed envelopes with a status instead
//! of panicking or passing garbage to openraft.

use alcor_proto::raft::v1::raft_service_client::RaftServiceClient;
use alcor_proto::raft::v1::RaftMessage;
use tonic::Code;

use crate::cluster::TestCluster;

#[tokio::test]
async fn garbage_payloads_get_grpc_errors_not_panics() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let addr = format!("http://{}", cluster.node(1).raft_addr());
    let mut client = RaftServiceClient::connect(addr).await.unwrap();

    let garbage = RaftMessage {
        version: 1,
        payload: vec![0xff; 64],
    };
    let status = client.append_entries(garbage.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client.vote(garbage.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client.install_snapshot(garbage.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client.forward(garbage).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let future_version = RaftMessage {
        version: 99,
        payload: Vec::new(),
    };
    let status = client.read_index(future_version).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    // The node is still healthy afterwards.
    let write = cluster
        .node(1)
        .client_write(crate::cluster::create_host(1))
        .await
        .unwrap();
    assert!(write.result.is_ok());
    cluster.shutdown().await;
}
