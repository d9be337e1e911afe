//! Named secrets (webhook signing keys, later adapter credentials): the
//! configuration names where each comes from (an environment variable or a
//! file), subscriptions name the secret by `secret_ref`. Values are read
//! once at startup, kept as `SecretString` and never logged or returned.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Shortest key accepted for HMAC signing, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;
/// Most named secrets.
pub const MAX_SECRETS: usize = 1000;

/// Where one secret comes from: exactly one of `env` and `file`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretSource {
    /// Name of an environment variable holding the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Path of a file holding the secret (a trailing newline is dropped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

/// Is `name` a valid secret name (as `secret_ref` must spell it)?
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= psirt_domain::notification::MAX_SECRET_REF_CHARS
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Every problem with the `[secrets]` table, as (key, problem).
pub fn problems(sources: &BTreeMap<String, SecretSource>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if sources.len() > MAX_SECRETS {
        out.push(("secrets".to_owned(), format!("at most {MAX_SECRETS} secrets")));
    }
    for (name, source) in sources {
        if !valid_name(name) {
            out.push((format!("secrets.{name}"), "name must consist of A-Z a-z 0-9 - _ .".to_owned()));
        }
        if source.env.is_some() == source.file.is_some() {
            out.push((format!("secrets.{name}"), "give exactly one of env and file".to_owned()));
        }
    }
    out
}

/// The resolved secrets.
#[derive(Clone, Default)]
pub struct Secrets(HashMap<String, SecretString>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.0.keys().collect();
        names.sort();
        f.debug_struct("Secrets").field("names", &names).finish()
    }
}

impl Secrets {
    /// Reads every configured secret; a missing, unreadable or short one fails startup.
    pub fn resolve(sources: &BTreeMap<String, SecretSource>) -> anyhow::Result<Self> {
        let mut out = HashMap::new();
        for (name, source) in sources {
            let value = match (&source.env, &source.file) {
                (Some(var), None) => std::env::var(var)
                    .with_context(|| format!("secret {name}: environment variable {var} is not set"))?,
                (None, Some(path)) => std::fs::read_to_string(path)
                    .with_context(|| format!("secret {name}: failed to read {}", path.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
                _ => bail!("secret {name}: give exactly one of env and file"),
            };
            if value.len() < MIN_SECRET_BYTES {
                bail!("secret {name} must be at least {MIN_SECRET_BYTES} bytes");
            }
            out.insert(name.clone(), SecretString::from(value));
        }
        Ok(Self(out))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The secret's bytes, for signing.
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(|s| s.expose_secret().as_bytes())
    }
}
