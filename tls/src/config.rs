//! rustls configurations from PEM files.
//!
//! Servers present a certificate that is re-read when its files change
//! (checked at most every `CERT_RELOAD_CHECK_MS`, on a handshake), so a
//! renewed certificate is served without a restart. The CA a server checks
//! client certificates against is re-read the same way, so a CA can be
//! rotated (old and new in one bundle, then the new one alone) without a
//! restart. A member's own client side (its Raft connections to peers)
//! re-reads its CA, certificate and key too ([`ReloadingClientTls`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::limits::CERT_RELOAD_CHECK_MS;
use crate::TlsError;

/// The three PEM files of a TLS endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA that signs members, clients and agents.
    pub ca: PathBuf,
    /// This endpoint's certificate (chain), leaf first.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// Whether a server demands a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Every client must present a certificate signed by the CA (the Raft
    /// port).
    Required,
    /// A client may present one (it is then verified against the CA) or
    /// authenticate otherwise, e.g. with a bearer token (the API).
    Optional,
}

/// What a listener speaks over TLS (its ALPN protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// gRPC (HTTP/2).
    Grpc,
    /// HTTP/1.1 (REST and metrics).
    Http1,
}

/// The crypto provider of every config: ring (no cmake, no OpenSSL), as
/// tonic's `tls-ring` clients use.
#[allow(
    deprecated,
    reason = "rustls deprecates ring's provider for lacking post-quantum key exchange; aws-lc needs cmake"
)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in the PEM file `path`.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no certificate".to_string()));
    }
    Ok(certs)
}

/// The private key in the PEM file `path`.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| pem_error(path, e.to_string()))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(path: &Path, reason: String) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        reason,
    }
}

/// A server config presenting `files.cert`/`files.key` (reloaded when they
/// change) and verifying client certificates against `files.ca`.
pub fn server_config(
    files: &TlsFiles,
    client_auth: ClientAuth,
    protocol: Protocol,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let verifier = ReloadingVerifier::load(files.ca.clone(), client_auth, provider.clone())?;
    let verifier: Arc<dyn ClientCertVerifier> = Arc::new(verifier);
    let resolver = ReloadingCert::load(files.cert.clone(), files.key.clone(), provider.clone())?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = match protocol {
        Protocol::Grpc => vec![b"h2".to_vec()],
        Protocol::Http1 => vec![b"http/1.1".to_vec()],
    };
    Ok(Arc::new(config))
}

/// A tonic client config trusting `ca` and, when given, presenting the
/// certificate and key `identity` (mutual TLS).
pub fn client_tls_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
    let config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
    Ok(match identity {
        Some((cert, key)) => config.identity(tonic::transport::Identity::from_pem(
            read(cert)?,
            read(key)?,
        )),
        None => config,
    })
}

/// A webpki verifier of client certificates signed by the CAs in `ca`.
fn build_verifier(
    ca: &Path,
    client_auth: ClientAuth,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots.add(cert)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    match client_auth {
        ClientAuth::Required => verifier.build(),
        ClientAuth::Optional => verifier.allow_unauthenticated().build(),
    }
    .map_err(|e| TlsError::Verifier(e.to_string()))
}

/// A server's verifier of client certificates, rebuilt from the CA file
/// when its modification time changes (checked at most every
/// `CERT_RELOAD_CHECK_MS`, on a handshake). A rebuild that fails keeps the
/// previous CA and is retried at the next check. It sends no CA names as
/// hints: Alcor's clients hold one certificate each and present it anyway.
#[derive(Debug)]
struct ReloadingVerifier {
    ca: PathBuf,
    client_auth: ClientAuth,
    provider: Arc<CryptoProvider>,
    loaded: Mutex<LoadedVerifier>,
}

#[derive(Debug)]
struct LoadedVerifier {
    verifier: Arc<dyn ClientCertVerifier>,
    stamp: Option<SystemTime>,
    checked: Instant,
}

impl ReloadingVerifier {
    fn load(
        ca: PathBuf,
        client_auth: ClientAuth,
        provider: Arc<CryptoProvider>,
    ) -> Result<ReloadingVerifier, TlsError> {
        let stamp = modified(&ca);
        let verifier = build_verifier(&ca, client_auth, &provider)?;
        Ok(ReloadingVerifier {
            ca,
            client_auth,
            provider,
            loaded: Mutex::new(LoadedVerifier {
                verifier,
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.checked.elapsed() >= Duration::from_millis(CERT_RELOAD_CHECK_MS) {
            loaded.checked = Instant::now();
            let stamp = modified(&self.ca);
            if stamp != loaded.stamp {
                match build_verifier(&self.ca, self.client_auth, &self.provider) {
                    Ok(verifier) => {
                        tracing::info!(ca = %self.ca.display(), "reloaded the client CA");
                        loaded.verifier = verifier;
                        loaded.stamp = stamp;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "client CA reload failed; keeping the old one")
                    }
                }
            }
        }
        Arc::clone(&loaded.verifier)
    }
}

impl ClientCertVerifier for ReloadingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.client_auth == ClientAuth::Required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A client's TLS (the CA it trusts and, for mutual TLS, its certificate and
/// key), re-read when the files' modification times change, checked at most
/// every `CERT_RELOAD_CHECK_MS`. Each successful reload bumps a generation,
/// so a caller that caches connections knows to dial new ones with the new
/// files. A reload that fails (e.g. a file mid-rewrite) keeps the previous
/// config and is retried at the next check.
#[derive(Debug)]
pub struct ReloadingClientTls {
    ca: PathBuf,
    identity: Option<(PathBuf, PathBuf)>,
    loaded: Mutex<LoadedClient>,
}

#[derive(Debug)]
struct LoadedClient {
    config: tonic::transport::ClientTlsConfig,
    generation: u64,
    stamps: Vec<Option<SystemTime>>,
    checked: Instant,
}

impl ReloadingClientTls {
    /// Reads `ca` and, when given, the certificate and key `identity`.
    pub fn load(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Self, TlsError> {
        let identity = identity.map(|(c, k)| (c.to_path_buf(), k.to_path_buf()));
        let reloading = ReloadingClientTls {
            ca: ca.to_path_buf(),
            identity,
            loaded: Mutex::new(LoadedClient {
                config: tonic::transport::ClientTlsConfig::new(),
                generation: 0,
                stamps: Vec::new(),
                checked: Instant::now(),
            }),
        };
        let stamps = reloading.stamps();
        let config = reloading.read()?;
        {
            let mut loaded = reloading.loaded.lock().unwrap_or_else(|e| e.into_inner());
            loaded.config = config;
            loaded.stamps = stamps;
        }
        Ok(reloading)
    }

    /// The generation of the files now: cheap, for callers that cache
    /// connections and need the config only when the generation moved.
    pub fn generation(&self) -> u64 {
        self.refreshed().generation
    }

    /// The config to dial with now, and its generation.
    pub fn current(&self) -> (tonic::transport::ClientTlsConfig, u64) {
        let loaded = self.refreshed();
        (loaded.config.clone(), loaded.generation)
    }

    /// The loaded files, re-read first if they changed and the last check
    /// is `CERT_RELOAD_CHECK_MS` old.
    fn refreshed(&self) -> std::sync::MutexGuard<'_, LoadedClient> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.checked.elapsed() >= Duration::from_millis(CERT_RELOAD_CHECK_MS) {
            loaded.checked = Instant::now();
            let stamps = self.stamps();
            if stamps != loaded.stamps {
                match self.read() {
                    Ok(config) => {
                        tracing::info!(ca = %self.ca.display(), "reloaded the client TLS files");
                        loaded.config = config;
                        loaded.stamps = stamps;
                        loaded.generation += 1;
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        "client TLS reload failed; keeping the old files"
                    ),
                }
            }
        }
        loaded
    }

    fn read(&self) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
        let identity = self
            .identity
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()));
        // Checked like a server's certificate, so a half-written pair is
        // refused here instead of failing every handshake.
        if let Some((cert, key)) = identity {
            read_certs(cert)?;
            read_key(key)?;
        }
        read_certs(&self.ca)?;
        client_tls_config(&self.ca, identity)
    }

    fn stamps(&self) -> Vec<Option<SystemTime>> {
        let mut stamps = vec![modified(&self.ca)];
        if let Some((cert, key)) = &self.identity {
            stamps.push(modified(cert));
            stamps.push(modified(key));
        }
        stamps
    }
}

/// The server certificate, re-read from its files when their modification
/// times change. A reload that fails (e.g. the key is mid-rewrite) keeps
/// the previous certificate and is retried at the next check.
#[derive(Debug)]
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    loaded: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    certified: Arc<CertifiedKey>,
    /// The files' modification times when `certified` was read.
    stamps: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

impl ReloadingCert {
    fn load(
        cert: PathBuf,
        key: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<ReloadingCert, TlsError> {
        let stamps = stamps(&cert, &key);
        let certified = Arc::new(certified_key(&cert, &key, &provider)?);
        Ok(ReloadingCert {
            cert,
            key,
            provider,
            loaded: Mutex::new(Loaded {
                certified,
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.checked.elapsed() < Duration::from_millis(CERT_RELOAD_CHECK_MS) {
            return Arc::clone(&loaded.certified);
        }
        loaded.checked = Instant::now();
        let stamps = stamps(&self.cert, &self.key);
        if stamps != loaded.stamps {
            match certified_key(&self.cert, &self.key, &self.provider) {
                Ok(certified) => {
                    tracing::info!(cert = %self.cert.display(), "reloaded the TLS certificate");
                    loaded.certified = Arc::new(certified);
                    loaded.stamps = stamps;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "TLS certificate reload failed; keeping the old one")
                }
            }
        }
        Arc::clone(&loaded.certified)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn stamps(cert: &Path, key: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    (modified(cert), modified(key))
}

fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = read_certs(cert)?;
    let signing = provider.key_provider.load_private_key(read_key(key)?)?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| pem_error(key, e.to_string()))?;
    Ok(certified)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use alcor_proto::identity::Principal;

    use super::*;
    use crate::dev::DevCa;

    fn after_the_next_check() {
        std::thread::sleep(Duration::from_millis(CERT_RELOAD_CHECK_MS + 100));
    }

    #[test]
    fn a_renewed_client_certificate_is_reloaded_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::new("test CA").unwrap();
        ca.write_ca(dir.path()).unwrap();
        let files = ca
            .write_issued(
                dir.path(),
                "member",
                &Principal::Peer { member: 1 },
                &[],
                &[],
            )
            .unwrap();
        let tls = ReloadingClientTls::load(&files.ca, Some((&files.cert, &files.key))).unwrap();
        assert_eq!(tls.current().1, 0);
        after_the_next_check();
        assert_eq!(tls.current().1, 0, "unchanged files are not reloaded");

        ca.write_issued(
            dir.path(),
            "member",
            &Principal::Peer { member: 1 },
            &[],
            &[],
        )
        .unwrap();
        after_the_next_check();
        assert_eq!(tls.current().1, 1, "renewed files are reloaded");

        std::fs::write(&files.key, "not a key").unwrap();
        after_the_next_check();
        assert_eq!(tls.current().1, 1, "a broken key keeps the old files");
    }
}
