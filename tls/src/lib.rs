//! TLS for every Alcor listener and client, with rustls (ring provider; no
//! OpenSSL).
//!
//! # Layout
//! - [`config`]: rustls server configs from PEM files (CA, certificate,
//!   key), with client certificates required (Raft port) or optional (API),
//!   and the certificate reloaded when its files change; tonic client
//!   configs for the SDK, the CLI, agents and Raft peers.
//! - [`incoming`]: TLS handshakes off the accept loop, feeding tonic's
//!   `serve_with_incoming` or `axum::serve`.
//! - [`identity`]: the [`Principal`](alcor_proto::identity::Principal) a
//!   verified client certificate names (its one `alcor://` URI SAN).
//! - [`dev`]: a throwaway CA and certificates (`alcor dev`, tests).
//! - [`limits`]: every bound, named `*_max`.
//!
//! # Invariants
//! - An identity is read only from a certificate rustls has verified
//!   against the configured CA; an unverified certificate never reaches
//!   [`identity`].
//! - No authorization here: this crate says *who* a caller is; what each
//!   identity may do is decided by the services.
//! - Depends on no Alcor crate but `alcor-proto` (for the identity type).

pub mod config;
pub mod dev;
pub mod identity;
pub mod incoming;
pub mod limits;

pub use config::{
    client_tls_config, server_config, ClientAuth, Protocol, ReloadingClientTls, TlsFiles,
};
pub use identity::{principal_of_cert, principal_of_extensions, principal_of_request};
pub use incoming::{ClientIdentity, TlsIncoming};

use std::path::PathBuf;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the certificates or keys.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client certificate verifier could not be built (e.g. no CA).
    #[error("client verifier: {0}")]
    Verifier(String),
    /// A development certificate could not be generated.
    #[error("generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
}
