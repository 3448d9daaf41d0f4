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

impl DevCa {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Result<DevCa, TlsError> {
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
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(DevCa { cert, key })
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
        write(&files.key, &issued.key_pem)?;
        Ok(files)
    }
}

fn write(path: &Path, contents: &str) -> Result<(), TlsError> {
    std::fs::write(path, contents).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}
