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
    let status = client.forward(garbage.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let future_version = RaftMessage {
        version: 99,
        payload: Vec::new(),
    };
    let status = client.read_index(future_version).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    // A replication stream that starts with garbage gets no answer and ends.
    let input = tokio_stream::iter(vec![garbage.clone()]);
    let mut answers = client.stream_append(input).await.unwrap().into_inner();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), answers.message()).await;
    assert!(matches!(answer, Ok(Ok(None))), "{answer:?}");

    // The node is still healthy afterwards.
    let write = cluster
        .node(1)
        .client_write(crate::cluster::create_host(1))
        .await
        .unwrap();
    assert!(write.result.is_ok());
    cluster.shutdown().await;
}
