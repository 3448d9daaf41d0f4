//! TLS connections of one listener: a task accepts TCP connections and runs
//! each handshake in its own task (at most `HANDSHAKES_IN_FLIGHT_MAX` at
//! once, each bounded by `HANDSHAKE_MS_MAX`), so one slow client never
//! holds up the others. Connections whose handshake fails (plain text, a
//! certificate the CA did not sign, none where one is required) are closed
//! and logged at debug; the server only ever sees verified ones.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::limits::{ACCEPTED_QUEUE_MAX, HANDSHAKES_IN_FLIGHT_MAX, HANDSHAKE_MS_MAX};

/// Handshaken connections of one listener, for tonic (as a `Stream`) or
/// axum (as a `Listener`). Dropping it stops accepting.
#[derive(Debug)]
pub struct TlsIncoming {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    accept_task: JoinHandle<()>,
}

impl TlsIncoming {
    /// Starts accepting TLS connections on `listener` with `config`.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsIncoming> {
        let local_addr = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(ACCEPTED_QUEUE_MAX);
        let accept_task = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(TlsIncoming {
            accepted,
            local_addr,
            accept_task,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    accepted: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT_MAX));
    loop {
        let Ok(slot) = Arc::clone(&handshakes).acquire_owned().await else {
            return;
        };
        let (tcp, addr) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // E.g. out of file descriptors: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if accepted.is_closed() {
            return;
        }
        // Small gRPC answers must not wait for the peer's delayed ACK.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "set TCP_NODELAY");
        }
        let (acceptor, accepted) = (acceptor.clone(), accepted.clone());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(
                Duration::from_millis(HANDSHAKE_MS_MAX),
                acceptor.accept(tcp),
            )
            .await;
            drop(slot);
            match handshake {
                Ok(Ok(tls)) => {
                    let _ = accepted.send((tls, addr)).await;
                }
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake refused"),
                Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
            }
        });
    }
}

impl futures::Stream for TlsIncoming {
    type Item = std::io::Result<TlsStream<TcpStream>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.accepted
            .poll_recv(cx)
            .map(|conn| conn.map(|(tls, _)| Ok(tls)))
    }
}

impl axum::serve::Listener for TlsIncoming {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(conn) => conn,
            // The accept task is gone (only when dropped): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// The identity of an axum connection's verified client certificate, if
/// any (`into_make_service_with_connect_info::<ClientIdentity>()`, then the
/// `ConnectInfo<ClientIdentity>` extractor). Plain TCP connections have
/// none.
#[derive(Debug, Clone, Default)]
pub struct ClientIdentity(pub Option<alcor_proto::identity::Principal>);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsIncoming>>
    for ClientIdentity
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsIncoming>) -> Self {
        let (_, session) = stream.io().get_ref();
        let leaf = session.peer_certificates().and_then(|chain| chain.first());
        ClientIdentity(leaf.and_then(|cert| crate::principal_of_cert(cert).ok()))
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for ClientIdentity
{
    fn connect_info(_: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        ClientIdentity(None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use std::net::IpAddr;

    use alcor_proto::identity::Principal;
    use futures::StreamExt;
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, RootCertStore};
    use tokio_rustls::TlsConnector;

    use super::*;
    use crate::config::read_certs;
    use crate::dev::DevCa;
    use crate::{principal_of_cert, server_config, ClientAuth, Protocol};

    /// The identity of the certificate the server at `addr` presents.
    async fn served_identity(addr: SocketAddr, roots: &RootCertStore) -> Principal {
        #[allow(deprecated, reason = "the ring provider, as in production")]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        let (_, session) = tls.get_ref();
        let leaf = &session.peer_certificates().unwrap()[0];
        principal_of_cert(leaf).unwrap()
    }

    #[tokio::test]
    async fn a_rotated_client_ca_is_trusted_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let old = DevCa::new("old CA").unwrap();
        old.write_ca(dir.path()).unwrap();
        let loopback = [IpAddr::from([127, 0, 0, 1])];
        let member = Principal::Peer { member: 1 };
        let files = old
            .write_issued(dir.path(), "member", &member, &[], &loopback)
            .unwrap();
        let config = server_config(&files, ClientAuth::Required, Protocol::Grpc).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut incoming = TlsIncoming::new(listener, config).unwrap();
        let addr = incoming.local_addr();
        let (verified_tx, mut verified) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(Ok(conn)) = incoming.next().await {
                let (_, session) = conn.get_ref();
                let leaf = session.peer_certificates().unwrap()[0].clone();
                let _ = verified_tx.send(principal_of_cert(&leaf).unwrap()).await;
            }
        });
        // A client whose certificate the new CA signed.
        let other = tempfile::tempdir().unwrap();
        let new = DevCa::new("new CA").unwrap();
        new.write_ca(other.path()).unwrap();
        let client = new
            .write_issued(other.path(), "admin", &Principal::Admin, &[], &[])
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(read_certs(&files.ca).unwrap().remove(0)).unwrap();
        #[allow(deprecated, reason = "the ring provider, as in production")]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_client_auth_cert(
                    read_certs(&client.cert).unwrap(),
                    crate::config::read_key(&client.key).unwrap(),
                )
                .unwrap(),
        );
        let connect = || {
            let config = Arc::clone(&config);
            async move {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let name = ServerName::IpAddress(addr.ip().into());
                // With TLS 1.3 a refused client certificate shows only on
                // the server side: what the listener yields is the verdict.
                TlsConnector::from(config).connect(name, tcp).await
            }
        };
        let _refused = connect().await;
        assert!(
            tokio::time::timeout(Duration::from_millis(500), verified.recv())
                .await
                .is_err(),
            "a certificate of a CA the server does not trust is refused"
        );

        // Rotation, first step: the CA file holds the old and the new CA.
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::write(&files.ca, format!("{}{}", old.cert_pem(), new.cert_pem())).unwrap();
        tokio::time::sleep(Duration::from_millis(
            crate::limits::CERT_RELOAD_CHECK_MS + 200,
        ))
        .await;
        let _accepted = connect().await.unwrap();
        let principal = tokio::time::timeout(Duration::from_secs(5), verified.recv())
            .await
            .unwrap();
        assert_eq!(principal, Some(Principal::Admin));
    }

    #[tokio::test]
    async fn a_rewritten_certificate_is_served_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::new("test CA").unwrap();
        ca.write_ca(dir.path()).unwrap();
        let loopback = [IpAddr::from([127, 0, 0, 1])];
        let first = Principal::Peer { member: 1 };
        let files = ca
            .write_issued(dir.path(), "member", &first, &[], &loopback)
            .unwrap();
        let config = server_config(&files, ClientAuth::Optional, Protocol::Grpc).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut incoming = TlsIncoming::new(listener, config).unwrap();
        let addr = incoming.local_addr();
        // Complete the server side of each handshake.
        tokio::spawn(async move { while incoming.next().await.is_some() {} });
        let mut roots = RootCertStore::empty();
        roots.add(read_certs(&files.ca).unwrap().remove(0)).unwrap();

        assert_eq!(served_identity(addr, &roots).await, first);
        // A renewed certificate (another identity, to tell them apart) in
        // the same files; the next check after CERT_RELOAD_CHECK_MS serves it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = Principal::Peer { member: 2 };
        ca.write_issued(dir.path(), "member", &second, &[], &loopback)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(
            crate::limits::CERT_RELOAD_CHECK_MS + 200,
        ))
        .await;
        assert_eq!(served_identity(addr, &roots).await, second);
    }
}
