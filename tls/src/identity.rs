//! The identity a verified client certificate carries: exactly one
//! `alcor://` URI in its subject alternative names (the CN is not used).

use alcor_proto::identity::{IdentityError, Principal, IDENTITY_URI_PREFIX};
use x509_parser::extensions::GeneralName;

/// Why a certificate names no identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertIdentityError {
    /// The bytes are not an X.509 certificate.
    #[error("not a certificate: {0}")]
    Parse(String),
    /// No `alcor://` URI among the subject alternative names.
    #[error("no identity URI in the certificate")]
    Missing,
    /// More than one `alcor://` URI: the certificate is ambiguous.
    #[error("{0} identity URIs in the certificate (one expected)")]
    Ambiguous(usize),
    /// The URI does not name a valid identity.
    #[error(transparent)]
    Invalid(#[from] IdentityError),
}

/// The identity `der` (a certificate) names.
pub fn principal_of_cert(der: &[u8]) -> Result<Principal, CertIdentityError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertIdentityError::Parse(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertIdentityError::Parse(e.to_string()))?
        .ok_or(CertIdentityError::Missing)?;
    let uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with(IDENTITY_URI_PREFIX) => Some(*uri),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [] => Err(CertIdentityError::Missing),
        [uri] => Ok(Principal::parse_uri(uri)?),
        more => Err(CertIdentityError::Ambiguous(more.len())),
    }
}

/// The identity of the client certificate `request` came with, if any.
/// Only a TLS listener of [`crate::incoming`] records certificates, and
/// only after rustls verified them against the CA.
pub fn principal_of_request<T>(request: &tonic::Request<T>) -> Option<Principal> {
    let certs = request.peer_certs()?;
    let leaf = certs.first()?;
    principal_of_cert(leaf).ok()
}

/// The identity of the verified client certificate of the connection a
/// request came on, from its extensions (for tower layers in front of
/// tonic services, which see the HTTP request, not a `tonic::Request`).
pub fn principal_of_extensions(extensions: &tonic::codegen::http::Extensions) -> Option<Principal> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let certs = extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()?;
    principal_of_cert(certs.first()?).ok()
}

/// Like [`principal_of_request`], but tells a request without a client
/// certificate (`None`) from one whose certificate names no valid identity
/// (`Some(Err)`).
pub fn cert_identity_of_request<T>(
    request: &tonic::Request<T>,
) -> Option<Result<Principal, CertIdentityError>> {
    let certs = request.peer_certs()?;
    let leaf = certs.first()?;
    Some(principal_of_cert(leaf))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;
    use crate::dev::DevCa;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_dev_certificate_names_the_identity_it_was_issued_for() {
        let ca = DevCa::new("test CA").unwrap();
        let peer = Principal::Peer { member: 2 };
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        let issued = ca.issue(&peer, &["localhost".into()], &[ip]).unwrap();
        assert_eq!(principal_of_cert(&der(&issued.cert_pem)), Ok(peer));
        let agent = Principal::Agent { host: "h1".into() };
        let issued = ca.issue(&agent, &[], &[]).unwrap();
        assert_eq!(principal_of_cert(&der(&issued.cert_pem)), Ok(agent));
    }

    #[test]
    fn a_certificate_without_an_identity_uri_names_nobody() {
        let ca = DevCa::new("test CA").unwrap();
        assert_eq!(
            principal_of_cert(&der(&ca.cert_pem())),
            Err(CertIdentityError::Missing)
        );
    }
}
