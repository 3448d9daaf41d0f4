//! A throwaway certificate authority for `alcor dev` and the tests: a
//! self-signed CA and leaf certificates carrying one identity URI each
//! (plus server names for members). Never for production: keys are written
//! unencrypted next to the data, and certificates keep rcgen's default
//! validity (to year 4096).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use alcor_proto::identity::Principal;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::{TlsError, TlsFiles};

/// A generated CA that issues leaf certificates.
pub struct DevCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

/// A generated certificate and its key, PEM encoded.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

/// The CA's private key beside `ca.pem` in a directory that keeps one
/// (`alcor certs`), so that later certificates come from the same CA.
pub const CA_KEY_FILE: &str = "ca-key.pem";

impl DevCa {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Result<DevCa, TlsError> {
        let key = KeyPair::generate()?;
        let cert = ca_params(name).self_signed(&key)?;
        Ok(DevCa { cert, key })
    }

    /// The CA kept in `dir` (`ca.pem` and [`CA_KEY_FILE`]), created there
    /// first (key readable by the owner only) when `dir` has no key yet.
    /// Returns the CA and whether it was created.
    ///
    /// A loaded CA is rebuilt from its key and `name`, which must be the
    /// name it was created with: certificates it issues name that subject
    /// and are signed by that key, so they verify against the `ca.pem`
    /// written at creation.
    pub fn open_or_create(dir: &Path, name: &str) -> Result<(DevCa, bool), TlsError> {
        let key_path = dir.join(CA_KEY_FILE);
        match std::fs::read_to_string(&key_path) {
            Ok(pem) => {
                let key = KeyPair::from_pem(&pem).map_err(|e| TlsError::Pem {
                    path: key_path.clone(),
                    reason: e.to_string(),
                })?;
                let cert = ca_params(name).self_signed(&key)?;
                Ok((DevCa { cert, key }, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
                let ca = DevCa::new(name)?;
                write_private(&key_path, &ca.key.serialize_pem())?;
                ca.write_ca(dir)?;
                Ok((ca, true))
            }
            Err(source) => Err(TlsError::Io {
                path: key_path,
                source,
            }),
        }
    }

    /// The CA certificate, PEM encoded.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for `principal` (its one URI SAN), valid as a client
    /// and, with `dns_names`/`ips`, as a server at those names.
    pub fn issue(
        &self,
        principal: &Principal,
        dns_names: &[String],
        ips: &[IpAddr],
    ) -> Result<Issued, TlsError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, principal.to_uri());
        params.distinguished_name = dn;
        let mut sans = vec![SanType::URI(principal.to_uri().try_into()?)];
        for name in dns_names {
            sans.push(SanType::DnsName(name.clone().try_into()?));
        }
        sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Strict verifiers (Python 3.13's default context) require it.
        params.use_authority_key_identifier_extension = true;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes the CA certificate to `dir/ca.pem`.
    pub fn write_ca(&self, dir: &Path) -> Result<PathBuf, TlsError> {
        let path = dir.join("ca.pem");
        write(&path, &self.cert_pem())?;
        Ok(path)
    }

    /// Issues a certificate for `principal` and writes it as
    /// `dir/STEM.pem` and `dir/STEM-key.pem`; the returned files name the
    /// CA at `dir/ca.pem` (see [`DevCa::write_ca`]).
    pub fn write_issued(
        &self,
        dir: &Path,
        stem: &str,
        principal: &Principal,
        dns_names: &[String],
        ips: &[IpAddr],
    ) -> Result<TlsFiles, TlsError> {
        let issued = self.issue(principal, dns_names, ips)?;
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}-key.pem")),
        };
        write(&files.cert, &issued.cert_pem)?;
        write_private(&files.key, &issued.key_pem)?;
        Ok(files)
    }
}

/// A CA's certificate parameters: everything but the key is fixed by `name`.
fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Writes a private key, readable by its owner only.
fn write_private(path: &Path, contents: &str) -> Result<(), TlsError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)
}

fn write(path: &Path, contents: &str) -> Result<(), TlsError> {
    std::fs::write(path, contents).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use std::sync::Arc;

    use rustls::pki_types::UnixTime;
    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;

    use super::*;
    use crate::config::read_certs;

    /// Whether the client certificate in `cert` verifies against `ca`.
    fn verifies(ca: &Path, cert: &Path) -> bool {
        let mut roots = RootCertStore::empty();
        roots.add(read_certs(ca).unwrap().remove(0)).unwrap();
        #[allow(deprecated, reason = "the ring provider, as in production")]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        let leaf = read_certs(cert).unwrap().remove(0);
        verifier
            .verify_client_cert(&leaf, &[], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn a_reopened_ca_issues_certificates_that_verify_against_its_first_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = DevCa::open_or_create(dir.path(), "kept CA").unwrap();
        assert!(created);
        let early = first
            .write_issued(dir.path(), "early", &Principal::Admin, &[], &[])
            .unwrap();
        let (reopened, created) = DevCa::open_or_create(dir.path(), "kept CA").unwrap();
        assert!(!created, "the key on disk is reused");
        let peer = Principal::Peer { member: 9 };
        let late = reopened
            .write_issued(dir.path(), "late", &peer, &[], &[])
            .unwrap();
        assert!(verifies(&early.ca, &early.cert));
        assert!(verifies(&early.ca, &late.cert));

        // Another CA's certificate does not verify: the check bites.
        let other = tempfile::tempdir().unwrap();
        let (stranger, _) = DevCa::open_or_create(other.path(), "kept CA").unwrap();
        let foreign = stranger
            .write_issued(other.path(), "foreign", &peer, &[], &[])
            .unwrap();
        assert!(!verifies(&early.ca, &foreign.cert));

        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join(CA_KEY_FILE)), 0o600);
        assert_eq!(mode(&late.key), 0o600);
    }
}
