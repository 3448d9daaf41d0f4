//! `X-Auth-Token` → caller (project and role), from a token file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::limits::{TOKENS_MAX, TOKEN_BYTES_MAX};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Acts within its own project only.
    Member,
    /// Acts on every project.
    Admin,
}

/// One token's grant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The project the token acts in (and creates in by default).
    pub project_id: String,
    /// `member` or `admin`.
    pub role: Role,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's project.
    pub project_id: String,
    /// Admin: sees and acts on every project.
    pub admin: bool,
}

impl Caller {
    /// Whether the caller may see a resource of `project_id`.
    pub fn sees(&self, project_id: &str) -> bool {
        self.admin || self.project_id == project_id
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
    /// A token or project is empty or too long, or there are too many tokens.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The token table (see the crate docs for the file format).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    grants: BTreeMap<String, Grant>,
}

impl Tokens {
    /// A table from `(token, grant)` pairs.
    pub fn new(grants: impl IntoIterator<Item = (String, Grant)>) -> Tokens {
        Tokens {
            grants: grants.into_iter().collect(),
        }
    }

    /// Reads a token file: JSON when its first non-blank character is `{`,
    /// TOML otherwise.
    pub fn load(path: &Path) -> Result<Tokens, TokenFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: shown.clone(),
            source,
        })?;
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
        let grants: BTreeMap<String, Grant> = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| parse_error(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| parse_error(e.to_string()))?
        };
        let invalid = |reason: String| TokenFileError::Invalid {
            path: String::new(),
            reason,
        };
        if grants.len() > TOKENS_MAX {
            return Err(invalid(format!("more than {TOKENS_MAX} tokens")));
        }
        for (token, grant) in &grants {
            if token.is_empty() || token.len() > TOKEN_BYTES_MAX {
                return Err(invalid(format!(
                    "a token must have 1 to {TOKEN_BYTES_MAX} bytes"
                )));
            }
            if grant.project_id.is_empty() {
                return Err(invalid("a token has an empty project_id".to_string()));
            }
        }
        Ok(Tokens { grants })
    }

    /// The caller a token stands for.
    pub fn caller(&self, token: &str) -> Option<Caller> {
        self.grants.get(token).map(|g| Caller {
            project_id: g.project_id.clone(),
            admin: g.role == Role::Admin,
        })
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
        "#;
        let json = r#"{"admin-secret": {"project_id": "admin", "role": "admin"},
                       "demo secret": {"project_id": "demo", "role": "member"}}"#;
        let a = Tokens::parse(toml).expect("toml");
        let b = Tokens::parse(json).expect("json");
        assert_eq!(a, b);
        assert_eq!(
            a.caller("demo secret"),
            Some(Caller {
                project_id: "demo".to_string(),
                admin: false
            })
        );
        assert!(a.caller("nope").is_none());
    }

    #[test]
    fn unknown_roles_and_fields_are_refused() {
        assert!(Tokens::parse(r#"{"t": {"project_id": "p", "role": "root"}}"#).is_err());
        assert!(Tokens::parse(r#"{"t": {"project_id": "p", "role": "admin", "x": 1}}"#).is_err());
        assert!(Tokens::parse(r#"{"t": {"project_id": "", "role": "admin"}}"#).is_err());
    }
}
