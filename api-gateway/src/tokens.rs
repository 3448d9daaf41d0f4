//! The token file: bearer tokens → grants, shared by the gRPC API
//! (`authorization: Bearer TOKEN`) and the REST API (`X-Auth-Token`).
//!
//! The file (TOML, or JSON when its first non-blank character is `{`) maps
//! each token to a grant:
//!
//! ```toml
//! ["3f9c0d7e-admin-secret"]
//! role = "admin"
//! project_id = "admin"      # optional: REST's default project for creates
//!
//! ["b71a-demo-secret"]
//! role = "member"           # or "reader"
//! project_id = "demo"
//!
//! ["sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
//! role = "agent"            # the agent of one host
//! host_id = "h1"
//! ```
//!
//! A key `sha256:HEX` (64 lowercase or uppercase hex digits) stores the
//! SHA-256 digest of the token instead of the token itself (so a plaintext
//! token may not begin with `sha256:`). Every entry is kept as a digest:
//! a presented token is hashed, the table is searched by digest (the search
//! time depends only on the digest, which tells nothing about stored
//! tokens), and the digest found is compared again in constant time
//! (`subtle`).
//!
//! [`TokenTable`] holds the current table and swaps it when the file
//! changes (its modification time, size or inode, polled every
//! `TOKEN_FILE_POLL_MS`) or on SIGHUP; a new file that does not load keeps
//! the old table and logs an error. A revoked token stops working at the
//! next reload, without a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use alcor_proto::identity::Principal;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::limits::{TOKENS_MAX, TOKEN_BYTES_MAX, TOKEN_FILE_BYTES_MAX};

/// The key prefix of a hashed entry.
pub const HASHED_TOKEN_PREFIX: &str = "sha256:";

/// What a token may do (see [`Principal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every project and the cluster.
    Admin,
    /// Reads and writes its own project.
    Member,
    /// Reads its own project.
    Reader,
    /// The host agent of one host.
    Agent,
}

/// One token's grant, as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The role.
    pub role: Role,
    /// The project (member, reader; optional for admin: the REST API's
    /// default project for creates).
    #[serde(default)]
    pub project_id: Option<String>,
    /// The host (agent only).
    #[serde(default)]
    pub host_id: Option<String>,
}

/// The project an admin grant without one creates in through REST.
pub const ADMIN_PROJECT_DEFAULT: &str = "admin";

impl Grant {
    /// A member, reader or admin grant in `project`.
    pub fn in_project(role: Role, project: &str) -> Grant {
        Grant {
            role,
            project_id: Some(project.to_string()),
            host_id: None,
        }
    }

    /// An agent grant for `host`.
    pub fn agent(host: &str) -> Grant {
        Grant {
            role: Role::Agent,
            project_id: None,
            host_id: Some(host.to_string()),
        }
    }

    /// The identity this grant stands for.
    pub fn principal(&self) -> Principal {
        let project = || self.project_id.clone().unwrap_or_default();
        match self.role {
            Role::Admin => Principal::Admin,
            Role::Member => Principal::Member { project: project() },
            Role::Reader => Principal::Reader { project: project() },
            Role::Agent => Principal::Agent {
                host: self.host_id.clone().unwrap_or_default(),
            },
        }
    }

    /// The project REST creates in by default.
    pub fn project(&self) -> &str {
        self.project_id.as_deref().unwrap_or(ADMIN_PROJECT_DEFAULT)
    }

    /// Why this grant is not well formed, if it is not.
    fn check(&self) -> Result<(), String> {
        let (needs_project, needs_host) = match self.role {
            Role::Admin => (None, false),
            Role::Member | Role::Reader => (Some(true), false),
            Role::Agent => (Some(false), true),
        };
        if needs_project == Some(true) && self.project_id.is_none() {
            return Err(format!("a {:?} token needs project_id", self.role));
        }
        if needs_project == Some(false) && self.project_id.is_some() {
            return Err("an agent token has no project_id".to_string());
        }
        if needs_host != self.host_id.is_some() {
            return Err(format!(
                "host_id is for agent tokens only, and every agent token has one ({:?})",
                self.role
            ));
        }
        if let Some(project) = &self.project_id {
            // Same bounds as an identity's name (certificates and tokens
            // name projects alike).
            let uri = Principal::Member {
                project: project.clone(),
            }
            .to_uri();
            Principal::parse_uri(&uri).map_err(|e| format!("project_id: {e}"))?;
        }
        Principal::parse_uri(&self.principal().to_uri()).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Why a token file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is neither valid JSON nor valid TOML of the expected shape.
    #[error("parse {path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// An entry is malformed, or the file is too large.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

type TokenDigest = [u8; 32];

/// One loaded token table (see the module docs for the file format).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    grants: BTreeMap<TokenDigest, Grant>,
}

impl Tokens {
    /// A table from `(token, grant)` pairs; a token may be a
    /// `sha256:HEX` entry. Malformed entries are refused.
    pub fn new(grants: impl IntoIterator<Item = (String, Grant)>) -> Result<Tokens, String> {
        let mut table = BTreeMap::new();
        for (key, grant) in grants {
            if table.len() >= TOKENS_MAX {
                return Err(format!("more than {TOKENS_MAX} tokens"));
            }
            grant.check()?;
            table.insert(entry_digest(&key)?, grant);
        }
        Ok(Tokens { grants: table })
    }

    /// Reads a token file (at most `TOKEN_FILE_BYTES_MAX` bytes).
    pub fn load(path: &Path) -> Result<Tokens, TokenFileError> {
        let shown = path.display().to_string();
        let read = |source| TokenFileError::Read {
            path: shown.clone(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size > TOKEN_FILE_BYTES_MAX {
            return Err(TokenFileError::Invalid {
                path: shown,
                reason: format!("larger than {TOKEN_FILE_BYTES_MAX} bytes"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Tokens::parse(&text).map_err(|e| match e {
            TokenFileError::Parse { reason, .. } => TokenFileError::Parse {
                path: shown,
                reason,
            },
            TokenFileError::Invalid { reason, .. } => TokenFileError::Invalid {
                path: shown,
                reason,
            },
            other => other,
        })
    }

    /// Parses the text of a token file.
    pub fn parse(text: &str) -> Result<Tokens, TokenFileError> {
        let parse_error = |reason: String| TokenFileError::Parse {
            path: String::new(),
            reason,
        };
        if text.len() as u64 > TOKEN_FILE_BYTES_MAX {
            return Err(parse_error(format!(
                "larger than {TOKEN_FILE_BYTES_MAX} bytes"
            )));
        }
        let grants: BTreeMap<String, Grant> = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| parse_error(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| parse_error(e.to_string()))?
        };
        Tokens::new(grants).map_err(|reason| TokenFileError::Invalid {
            path: String::new(),
            reason,
        })
    }

    /// The grant of a presented token, if the table holds it.
    pub fn grant(&self, token: &str) -> Option<&Grant> {
        if token.is_empty() || token.len() > TOKEN_BYTES_MAX {
            return None;
        }
        let digest: TokenDigest = Sha256::digest(token.as_bytes()).into();
        let (stored, grant) = self.grants.get_key_value(&digest)?;
        bool::from(stored.ct_eq(&digest)).then_some(grant)
    }

    /// How many tokens the table holds.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// Whether the table holds no token.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }
}

/// The digest a file key stands for: its SHA-256, or the digest written
/// after `sha256:`.
fn entry_digest(key: &str) -> Result<TokenDigest, String> {
    if key.is_empty() || key.len() > TOKEN_BYTES_MAX {
        return Err(format!("a token must have 1 to {TOKEN_BYTES_MAX} bytes"));
    }
    let Some(hex) = key.strip_prefix(HASHED_TOKEN_PREFIX) else {
        return Ok(Sha256::digest(key.as_bytes()).into());
    };
    let bad = || format!("{HASHED_TOKEN_PREFIX} must be followed by 64 hex digits");
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(digest)
}

/// The `sha256:HEX` entry of `token` (what to write into the file to
/// store it hashed).
pub fn hashed_entry(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{HASHED_TOKEN_PREFIX}{hex}")
}

/// The current token table, replaced as a whole on reload. Cheap to clone;
/// clones share the table.
#[derive(Debug, Clone, Default)]
pub struct TokenTable {
    current: Arc<RwLock<Arc<Tokens>>>,
}

impl TokenTable {
    /// A table that holds `tokens` until [`TokenTable::replace`].
    pub fn fixed(tokens: Tokens) -> TokenTable {
        TokenTable {
            current: Arc::new(RwLock::new(Arc::new(tokens))),
        }
    }

    /// The table now.
    pub fn current(&self) -> Arc<Tokens> {
        // Replacing an `Arc` cannot leave it half-written: ignore poisoning.
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Swaps in a new table.
    pub fn replace(&self, tokens: Tokens) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(tokens);
    }

    /// The grant of a presented token in the current table.
    pub fn grant(&self, token: &str) -> Option<Grant> {
        self.current().grant(token).cloned()
    }

    /// Loads `path` (an error if it does not load) and spawns the task
    /// that reloads it when it changes (checked every `poll`) or on SIGHUP,
    /// until the returned handle is aborted. Must run inside a tokio
    /// runtime.
    pub fn watch(
        path: PathBuf,
        poll: Duration,
    ) -> Result<(TokenTable, tokio::task::JoinHandle<()>), TokenFileError> {
        let seen = file_stamp(&path);
        let table = TokenTable::fixed(Tokens::load(&path)?);
        let task = tokio::spawn(reload_loop(table.clone(), path, poll, seen));
        Ok((table, task))
    }
}

/// What tells a changed file from the one loaded last.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn file_stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

async fn reload_loop(
    table: TokenTable,
    path: PathBuf,
    poll: Duration,
    mut seen: Option<FileStamp>,
) {
    #[cfg(unix)]
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; the token file is polled only");
            None
        }
    };
    loop {
        #[cfg(unix)]
        let forced = tokio::select! {
            () = tokio::time::sleep(poll) => false,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
        };
        #[cfg(not(unix))]
        let forced = {
            tokio::time::sleep(poll).await;
            false
        };
        let stamp = file_stamp(&path);
        if !forced && stamp == seen {
            continue;
        }
        seen = stamp;
        match Tokens::load(&path) {
            Ok(tokens) => {
                tracing::info!(path = %path.display(), tokens = tokens.len(), "token file reloaded");
                table.replace(tokens);
            }
            Err(e) => {
                tracing::error!(error = %e, "token file not reloaded; the previous tokens stay in force");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_json_files_give_the_same_table() {
        let toml = r#"
            [admin-secret]
            project_id = "admin"
            role = "admin"

            ["demo secret"]
            project_id = "demo"
            role = "member"

            [agent-secret]
            role = "agent"
            host_id = "h1"
        "#;
        let json = r#"{"admin-secret": {"project_id": "admin", "role": "admin"},
                       "demo secret": {"project_id": "demo", "role": "member"},
                       "agent-secret": {"role": "agent", "host_id": "h1"}}"#;
        let a = Tokens::parse(toml).expect("toml");
        let b = Tokens::parse(json).expect("json");
        assert_eq!(a, b);
        assert_eq!(
            a.grant("demo secret").map(Grant::principal),
            Some(Principal::Member {
                project: "demo".to_string()
            })
        );
        assert_eq!(
            a.grant("agent-secret").map(Grant::principal),
            Some(Principal::Agent {
                host: "h1".to_string()
            })
        );
        assert_eq!(
            a.grant("admin-secret").map(Grant::principal),
            Some(Principal::Admin)
        );
        assert!(a.grant("nope").is_none());
        assert!(a.grant("").is_none());
    }

    #[test]
    fn a_hashed_entry_accepts_its_token_and_not_the_entry_text() {
        let entry = hashed_entry("s3cret");
        let text = format!("[\"{entry}\"]\nrole = \"reader\"\nproject_id = \"p\"\n");
        let tokens = Tokens::parse(&text).expect("parse");
        assert_eq!(
            tokens.grant("s3cret").map(Grant::principal),
            Some(Principal::Reader {
                project: "p".to_string()
            })
        );
        assert!(tokens.grant(&entry).is_none());
        assert!(tokens.grant("s3cret ").is_none());
        let upper = format!(
            "{HASHED_TOKEN_PREFIX}{}",
            entry[HASHED_TOKEN_PREFIX.len()..].to_uppercase()
        );
        let tokens = Tokens::new([(upper, Grant::in_project(Role::Reader, "p"))]).expect("new");
        assert!(tokens.grant("s3cret").is_some());
    }

    #[test]
    fn malformed_grants_are_refused() {
        for bad in [
            r#"{"t": {"project_id": "p", "role": "root"}}"#,
            r#"{"t": {"project_id": "p", "role": "admin", "x": 1}}"#,
            r#"{"t": {"project_id": "", "role": "member"}}"#,
            r#"{"t": {"role": "member"}}"#,
            r#"{"t": {"role": "reader"}}"#,
            r#"{"t": {"role": "agent"}}"#,
            r#"{"t": {"role": "agent", "host_id": "h", "project_id": "p"}}"#,
            r#"{"t": {"role": "member", "project_id": "p", "host_id": "h"}}"#,
            r#"{"t": {"role": "agent", "host_id": "a/b"}}"#,
            r#"{"sha256:abc": {"role": "admin"}}"#,
            r#"{"": {"role": "admin"}}"#,
        ] {
            assert!(Tokens::parse(bad).is_err(), "{bad} accepted");
        }
        let zs = format!("{HASHED_TOKEN_PREFIX}{}", "z".repeat(64));
        assert!(Tokens::new([(zs, Grant::in_project(Role::Admin, "a"))]).is_err());
    }

    #[test]
    fn oversized_tables_and_tokens_are_refused() {
        let long = "t".repeat(TOKEN_BYTES_MAX + 1);
        assert!(Tokens::new([(long.clone(), Grant::agent("h"))]).is_err());
        let tokens = Tokens::new([("t".to_string(), Grant::agent("h"))]).expect("new");
        assert!(tokens.grant(&long).is_none());
        let many = (0..=TOKENS_MAX).map(|i| (format!("t{i}"), Grant::agent("h")));
        assert!(Tokens::new(many).is_err());
    }

    #[tokio::test]
    async fn a_rewritten_file_replaces_the_table_and_a_broken_one_keeps_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.toml");
        let write = |text: &str| {
            // Write a new file and rename it over: the inode changes even
            // when the rewrite falls in the same mtime tick.
            let tmp = dir.path().join("tokens.tmp");
            std::fs::write(&tmp, text).expect("write");
            std::fs::rename(&tmp, &path).expect("rename");
        };
        write("[old]\nrole = \"admin\"\n");
        let (table, task) =
            TokenTable::watch(path.clone(), Duration::from_millis(20)).expect("watch");
        assert!(table.grant("old").is_some());
        write("[new]\nrole = \"admin\"\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut ok = table.grant("new").is_some();
        while !ok && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            ok = table.grant("new").is_some();
        }
        assert!(ok, "the new token never worked");
        assert!(
            table.grant("old").is_none(),
            "the revoked token still works"
        );
        write("this is not a token file [");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            table.grant("new").is_some(),
            "a broken file dropped the table"
        );
        task.abort();
    }
}
