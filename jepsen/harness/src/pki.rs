//! TLS for a run, set up as an operator would: the `alcor certs` command of
//! the binary under test keeps a throwaway CA in the run's data directory
//! and issues a certificate per member (`peer/ID`, serving the member's
//! address, issued when an id first starts, so members re-added under new
//! ids get theirs), per agent (`agent/HOST`) and one for the harness itself
//! (`admin`: its clients and the nemesis call cluster administration).
//! The harness links no product code: certificates come from the binary,
//! and its own gRPC clients use tonic's TLS with the CA and the admin
//! certificate.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// A certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// The run's CA directory and the binary that issues from it.
#[derive(Debug, Clone)]
pub struct Pki {
    bin: PathBuf,
    dir: PathBuf,
}

impl Pki {
    /// A CA kept in `dir` (created by the first issue), issued by `bin`.
    pub fn new(bin: &Path, dir: PathBuf) -> Pki {
        Pki {
            bin: bin.to_path_buf(),
            dir,
        }
    }

    /// The CA certificate every member and client trusts.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The certificate for `identity` (e.g. `peer/4`), serving at `ips`;
    /// issued on first use, reused afterwards.
    pub fn issue(&self, identity: &str, ips: &[Ipv4Addr]) -> Result<Issued> {
        let stem = identity.replace('/', "-");
        let issued = Issued {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}-key.pem")),
        };
        if issued.cert.exists() && issued.key.exists() {
            return Ok(issued);
        }
        let mut command = Command::new(&self.bin);
        command
            .arg("certs")
            .arg("--dir")
            .arg(&self.dir)
            .args(["--identity", identity]);
        if !ips.is_empty() {
            let ips: Vec<String> = ips.iter().map(Ipv4Addr::to_string).collect();
            command.args(["--ip", &ips.join(",")]);
        }
        let output = command.output().context("run alcor certs")?;
        if !output.status.success() {
            bail!(
                "alcor certs --identity {identity}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(issued)
    }

    /// The harness's own client TLS: the CA and an admin certificate.
    pub fn admin_client(&self) -> Result<ClientTlsConfig> {
        let admin = self.issue("admin", &[])?;
        let read = |path: &Path| {
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
        };
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&self.ca())?))
            .identity(Identity::from_pem(read(&admin.cert)?, read(&admin.key)?)))
    }
}

/// The TLS every harness client uses, set once before the first call; none
/// (plain text) when the run is `--insecure`.
static CLIENT_TLS: OnceLock<ClientTlsConfig> = OnceLock::new();

/// Makes every later [`endpoint`] dial over TLS with `config`.
pub fn use_client_tls(config: ClientTlsConfig) {
    let _ = CLIENT_TLS.set(config);
}

/// An endpoint for a member's API at `addr` (`host:port`), over TLS unless
/// the run is `--insecure`.
pub fn endpoint(addr: &str) -> Result<Endpoint> {
    Ok(match CLIENT_TLS.get() {
        Some(tls) => Endpoint::from_shared(format!("https://{addr}"))?.tls_config(tls.clone())?,
        None => Endpoint::from_shared(format!("http://{addr}"))?,
    })
}
