//! Named secrets (webhook signing keys, tracker credentials, inbound
//! webhook secrets, the token sent to triage): the configuration names where
//! each comes from (an environment variable or a file), subscriptions name
//! the secret by `secret_ref`. Values are kept as `SecretString` and never
//! logged or returned.
//!
//! Every secret is read at startup (a missing, unreadable or short one
//! fails it). A secret from a file is then reloaded when the file changes,
//! without a restart: each use looks at the file's metadata (one `stat`, no
//! read while it is unchanged) and reads it again when its modification
//! time, size or inode changed (an edit in place, or the symlink swap a
//! Kubernetes secret volume makes). A new value that cannot be used (the
//! file is gone, unreadable or shorter than [`MIN_SECRET_BYTES`]) is
//! refused with a warning and the last good value stays in use. Secrets
//! from the environment cannot change while the process runs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

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

/// What identifies one version of a secret's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(Self { modified: meta.modified().ok(), len: meta.len(), inode })
    }
}

/// One secret: its value now and, for a file, where to look for a new one.
struct Entry {
    file: Option<PathBuf>,
    state: Mutex<State>,
}

struct State {
    value: SecretString,
    /// The file version `value` came from (or was refused from last).
    stamp: Option<Stamp>,
}

/// The resolved secrets; clones share them (and their reloads).
#[derive(Clone, Default)]
pub struct Secrets(Arc<HashMap<String, Entry>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.0.keys().collect();
        names.sort();
        f.debug_struct("Secrets").field("names", &names).finish()
    }
}

/// A secret file's value: its text without a trailing newline, refused when short.
fn read_file(name: &str, path: &Path) -> anyhow::Result<String> {
    let value = std::fs::read_to_string(path)
        .with_context(|| format!("secret {name}: failed to read {}", path.display()))?
        .trim_end_matches(['\r', '\n'])
        .to_owned();
    if value.len() < MIN_SECRET_BYTES {
        bail!("secret {name} must be at least {MIN_SECRET_BYTES} bytes");
    }
    Ok(value)
}

impl Secrets {
    /// Reads every configured secret; a missing, unreadable or short one fails startup.
    pub fn resolve(sources: &BTreeMap<String, SecretSource>) -> anyhow::Result<Self> {
        let mut out = HashMap::new();
        for (name, source) in sources {
            let (value, file, stamp) = match (&source.env, &source.file) {
                (Some(var), None) => {
                    let value = std::env::var(var)
                        .with_context(|| format!("secret {name}: environment variable {var} is not set"))?;
                    if value.len() < MIN_SECRET_BYTES {
                        bail!("secret {name} must be at least {MIN_SECRET_BYTES} bytes");
                    }
                    (value, None, None)
                }
                (None, Some(path)) => {
                    let stamp = Stamp::of(path).ok();
                    (read_file(name, path)?, Some(path.clone()), stamp)
                }
                _ => bail!("secret {name}: give exactly one of env and file"),
            };
            let state = Mutex::new(State { value: SecretString::from(value), stamp });
            out.insert(name.clone(), Entry { file, state });
        }
        Ok(Self(Arc::new(out)))
    }

    /// Fixed values (tests, and credentials given directly).
    pub fn fixed<'a>(values: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let map = values
            .into_iter()
            .map(|(name, value)| {
                let state = Mutex::new(State { value: SecretString::from(value.to_owned()), stamp: None });
                (name.to_owned(), Entry { file: None, state })
            })
            .collect();
        Self(Arc::new(map))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The secret's value now: a file that changed since the last use is
    /// read again first.
    pub fn get(&self, name: &str) -> Option<SecretString> {
        let entry = self.0.get(name)?;
        let mut state = entry.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(path) = &entry.file {
            match Stamp::of(path) {
                Ok(stamp) if Some(stamp) != state.stamp => {
                    state.stamp = Some(stamp);
                    match read_file(name, path) {
                        Ok(value) => {
                            if value != state.value.expose_secret() {
                                info!(secret = name, "secret reloaded from its changed file");
                            }
                            state.value = SecretString::from(value);
                        }
                        Err(e) => {
                            warn!(error = %e, "the changed secret file is refused; the last value stays in use")
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if state.stamp.take().is_some() {
                        warn!(secret = name, error = %e, "secret file unreadable; the last value stays in use");
                    }
                }
            }
        }
        Some(state.value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_read_again_and_a_bad_one_refused() {
        let dir = std::env::temp_dir().join(format!("psirt-secrets-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("key");
        std::fs::write(&path, "first-secret-value-0123\n").expect("write");
        let sources =
            BTreeMap::from([("k".to_owned(), SecretSource { env: None, file: Some(path.clone()) })]);
        let secrets = Secrets::resolve(&sources).expect("resolved");
        let value = |s: &Secrets| s.get("k").map(|v| v.expose_secret().to_owned());
        assert_eq!(value(&secrets).as_deref(), Some("first-secret-value-0123"));
        // Replaced the way secret volumes do it: a new file renamed over the old one.
        let next = dir.join("key.new");
        std::fs::write(&next, "second-secret-value-456").expect("write");
        std::fs::rename(&next, &path).expect("rename");
        let clone = secrets.clone();
        assert_eq!(value(&clone).as_deref(), Some("second-secret-value-456"), "a clone sees the reload");
        std::fs::write(&next, "short").expect("write");
        std::fs::rename(&next, &path).expect("rename");
        assert_eq!(value(&secrets).as_deref(), Some("second-secret-value-456"), "a short value is refused");
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(
            value(&secrets).as_deref(),
            Some("second-secret-value-456"),
            "a missing file keeps the last"
        );
        std::fs::write(&path, "third-secret-value-7890").expect("write");
        assert_eq!(value(&secrets).as_deref(), Some("third-secret-value-7890"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
