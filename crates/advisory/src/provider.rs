//! A CSAF 2.0 provider directory on disk (section 7.1, requirements 7 to 14 and 18 to 20):
//! the documents under `<year>/<file>.json` with their hashes, `index.txt`, `changes.csv`
//! and `provider-metadata.json`. With a signing key it is a trusted provider (section
//! 7.2.3): every document also has an ASCII-armored detached OpenPGP signature
//! `<file>.json.asc`, the public key is published as `openpgp/<FINGERPRINT>.asc` and listed
//! in the metadata (`public_openpgp_keys`), and the role is `csaf_trusted_provider`; without
//! one the role is `csaf_provider`, never more. Every file is written atomically (temporary
//! file + rename) so a web server never serves a half-written file. One writer at a time per
//! directory.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::openpgp::SigningKey;
use crate::record::Publisher;
use crate::{Format, timestamp, utc_year, validate};

/// The CSAF 2.0 file name (section 5.1) of a tracking id: lowercase, every character outside
/// `[+\-a-z0-9]` replaced by `_`, plus `.json`.
pub fn file_name(tracking_id: &str) -> String {
    let stem: String = tracking_id
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '+' || c == '-' { c } else { '_' })
        .collect();
    format!("{stem}.json")
}

/// The document's path relative to the directory root: `<year>/<file name>`, the year of the
/// initial release date in UTC.
pub fn document_path(tracking_id: &str, initial_release_year: i32) -> String {
    format!("{initial_release_year}/{}", file_name(tracking_id))
}

/// A published CSAF document to place in the directory.
#[derive(Debug, Clone, Copy)]
pub struct PublishedCsaf<'a> {
    pub tracking_id: &'a str,
    pub initial_release_date: OffsetDateTime,
    pub current_release_date: OffsetDateTime,
    /// The validated document, as returned by [`crate::csaf`].
    pub bytes: &'a [u8],
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// `https://psirt.acme.example`; the directory is served under `/.well-known/csaf/`.
    pub base_url: String,
    pub publisher: Publisher,
    /// Also write `.json.sha512`.
    pub sha512: bool,
    pub list_on_aggregators: bool,
    pub mirror_on_aggregators: bool,
    /// The PSIRT's OpenPGP signing key; `None`: no signatures, role `csaf_provider`.
    pub signing_key: Option<SigningKey>,
}

/// What [`ProviderDirectory::publish`] wrote, relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedFiles {
    pub document: String,
    pub sha256: String,
    pub sha512: Option<String>,
    /// The `.asc` signature, when a signing key is configured.
    pub signature: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("failed to write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error(transparent)]
    Document(#[from] crate::DocumentError),
    #[error("failed to sign {path}: {source}")]
    Sign {
        path: PathBuf,
        #[source]
        source: crate::openpgp::KeyError,
    },
}

/// The directory served as `<base_url>/.well-known/csaf/`.
#[derive(Debug, Clone)]
pub struct ProviderDirectory {
    root: PathBuf,
    config: ProviderConfig,
}

impl ProviderDirectory {
    pub fn new(root: impl Into<PathBuf>, config: ProviderConfig) -> Self {
        Self { root: root.into(), config }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn base(&self) -> &str {
        self.config.base_url.trim_end_matches('/')
    }

    /// Writes (or replaces) one document and updates the index, the changes list and the
    /// provider metadata. The document must already be valid (see [`crate::csaf`]).
    pub fn publish(&self, doc: &PublishedCsaf<'_>) -> Result<PublishedFiles, ProviderError> {
        let rel = document_path(doc.tracking_id, utc_year(doc.initial_release_date));
        let name = file_name(doc.tracking_id);
        let path = self.root.join(&rel);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(|source| ProviderError::Io { path: dir.clone(), source })?;

        write_atomic(&path, doc.bytes)?;
        let sha256 = format!("{}  {name}\n", hex::encode(Sha256::digest(doc.bytes)));
        write_atomic(&dir.join(format!("{name}.sha256")), sha256.as_bytes())?;
        let sha512 = if self.config.sha512 {
            let line = format!("{}  {name}\n", hex::encode(Sha512::digest(doc.bytes)));
            write_atomic(&dir.join(format!("{name}.sha512")), line.as_bytes())?;
            Some(format!("{rel}.sha512"))
        } else {
            None
        };

        let signature = self.write_signature(&dir.join(&name), doc.bytes)?.then(|| format!("{rel}.asc"));

        let mut index = self.read_lines("index.txt")?;
        index.push(rel.clone());
        index.sort();
        index.dedup();
        write_atomic(&self.root.join("index.txt"), lines(&index).as_bytes())?;

        let mut changes = self.read_changes()?;
        changes.retain(|(p, _)| p != &rel);
        changes.push((rel.clone(), doc.current_release_date));
        // Newest first; equal dates by path so the file is deterministic.
        changes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let csv: Vec<String> =
            changes.iter().map(|(p, d)| format!("\"{p}\",\"{}\"", timestamp(*d))).collect();
        write_atomic(&self.root.join("changes.csv"), lines(&csv).as_bytes())?;

        let last_updated = changes.first().map_or(doc.current_release_date, |c| c.1);
        self.sign_others(&index, &rel)?;
        self.write_metadata(last_updated)?;
        Ok(PublishedFiles { document: rel.clone(), sha256: format!("{rel}.sha256"), sha512, signature })
    }

    /// Signs the documents of the index again and rewrites the metadata, without publishing:
    /// after the signing key was configured, changed (rotation) or removed. Does nothing in
    /// an empty directory.
    pub fn refresh(&self) -> Result<(), ProviderError> {
        let index = self.read_lines("index.txt")?;
        let changes = self.read_changes()?;
        let Some(last_updated) = changes.first().map(|c| c.1) else {
            return Ok(());
        };
        self.sign_others(&index, "")?;
        self.write_metadata(last_updated)
    }

    /// Writes `<document>.asc` (`true`), or removes a stale one when no key is configured.
    fn write_signature(&self, document: &Path, bytes: &[u8]) -> Result<bool, ProviderError> {
        let asc = asc_path(document);
        match &self.config.signing_key {
            Some(key) => {
                let signature = key
                    .sign(bytes)
                    .map_err(|source| ProviderError::Sign { path: document.to_path_buf(), source })?;
                write_atomic(&asc, signature.as_bytes())?;
                Ok(true)
            }
            None => {
                self.remove_if_present(&asc)?;
                Ok(false)
            }
        }
    }

    fn remove_if_present(&self, path: &Path) -> Result<(), ProviderError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ProviderError::Io { path: path.to_path_buf(), source }),
        }
    }

    /// Every document of the index other than `current` gets a signature by the current key:
    /// all of them when the metadata lists another key (the key was just configured or
    /// rotated), else those missing one. Without a key, when the metadata still lists one
    /// (the key was just removed), every signature goes: none is left that the metadata does
    /// not back. The metadata is written last, so an interrupted run does it again next time.
    fn sign_others(&self, index: &[String], current: &str) -> Result<(), ProviderError> {
        let listed = self.listed_fingerprints()?;
        let Some(key) = &self.config.signing_key else {
            if !listed.is_empty() {
                for rel in index {
                    self.remove_if_present(&asc_path(&self.root.join(rel)))?;
                }
            }
            return Ok(());
        };
        let all = listed != [key.fingerprint()];
        for rel in index.iter().filter(|r| r.as_str() != current) {
            let document = self.root.join(rel);
            if !all && asc_path(&document).exists() {
                continue;
            }
            let bytes = match fs::read(&document) {
                Ok(bytes) => bytes,
                // Listed but gone: nothing to sign (the index is repaired by a republish).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(ProviderError::Io { path: document, source }),
            };
            self.write_signature(&document, &bytes)?;
        }
        Ok(())
    }

    /// The fingerprints the current `provider-metadata.json` lists.
    fn listed_fingerprints(&self) -> Result<Vec<String>, ProviderError> {
        let path = self.root.join("provider-metadata.json");
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(ProviderError::Io { path, source }),
        };
        let metadata: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ProviderError::Malformed { path: path.clone(), reason: e.to_string() })?;
        Ok(metadata
            .get("public_openpgp_keys")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|k| k.get("fingerprint").and_then(serde_json::Value::as_str))
            .map(str::to_owned)
            .collect())
    }

    /// `provider-metadata.json` (section 7.1.7), checked before it is written.
    fn write_metadata(&self, last_updated: OffsetDateTime) -> Result<(), ProviderError> {
        let p = &self.config.publisher;
        let mut publisher = json!({
            "category": p.category.as_str(),
            "name": p.name,
            "namespace": p.namespace,
            "contact_details": p.contact_details,
        });
        if let Some(authority) = &p.issuing_authority {
            publisher["issuing_authority"] = json!(authority);
        }
        let mut metadata = json!({
            "canonical_url": format!("{}/.well-known/csaf/provider-metadata.json", self.base()),
            "distributions": [{ "directory_url": format!("{}/.well-known/csaf/", self.base()) }],
            "last_updated": timestamp(last_updated),
            "list_on_CSAF_aggregators": self.config.list_on_aggregators,
            "metadata_version": "2.0",
            "mirror_on_CSAF_aggregators": self.config.mirror_on_aggregators,
            "publisher": publisher,
            "role": "csaf_provider",
        });
        if let Some(key) = &self.config.signing_key {
            // Requirement 20: the public key beside the metadata, listed with its fingerprint.
            let dir = self.root.join("openpgp");
            fs::create_dir_all(&dir).map_err(|source| ProviderError::Io { path: dir.clone(), source })?;
            let file = dir.join(format!("{}.asc", key.fingerprint()));
            if fs::read(&file).ok().as_deref() != Some(key.public_key_armored().as_bytes()) {
                write_atomic(&file, key.public_key_armored().as_bytes())?;
            }
            metadata["public_openpgp_keys"] = json!([{
                "fingerprint": key.fingerprint(),
                "url": format!("{}/.well-known/csaf/openpgp/{}.asc", self.base(), key.fingerprint()),
            }]);
            metadata["role"] = json!("csaf_trusted_provider");
        }
        validate(Format::CsafProviderMetadata, &metadata)?;
        let mut bytes = serde_json::to_vec_pretty(&metadata).map_err(|e| ProviderError::Malformed {
            path: self.root.join("provider-metadata.json"),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        write_atomic(&self.root.join("provider-metadata.json"), &bytes)
    }

    fn read_lines(&self, name: &str) -> Result<Vec<String>, ProviderError> {
        let path = self.root.join(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(ProviderError::Io { path, source }),
        }
    }

    fn read_changes(&self) -> Result<Vec<(String, OffsetDateTime)>, ProviderError> {
        let path = self.root.join("changes.csv");
        self.read_lines("changes.csv")?
            .into_iter()
            .map(|line| {
                let malformed = |reason: &str| ProviderError::Malformed {
                    path: path.clone(),
                    reason: format!("{reason}: {line}"),
                };
                let (p, d) = line.split_once("\",\"").ok_or_else(|| malformed("not \"path\",\"date\""))?;
                let p = p.strip_prefix('"').ok_or_else(|| malformed("unquoted path"))?;
                let d = d.strip_suffix('"').ok_or_else(|| malformed("unquoted date"))?;
                let date = OffsetDateTime::parse(d, &Rfc3339).map_err(|_| malformed("bad date"))?;
                Ok((p.to_owned(), date))
            })
            .collect()
    }
}

fn asc_path(document: &Path) -> PathBuf {
    let mut name = document.as_os_str().to_owned();
    name.push(".asc");
    PathBuf::from(name)
}

fn lines(items: &[String]) -> String {
    items.iter().map(|l| format!("{l}\n")).collect()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ProviderError> {
    let io = |source| ProviderError::Io { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_csaf_section_5_1() {
        assert_eq!(file_name("ACME-SA-2026:0007"), "acme-sa-2026_0007.json");
        assert_eq!(file_name("Example Company 2022/9+1"), "example_company_2022_9+1.json");
        assert_eq!(document_path("ACME-SA-1", 2026), "2026/acme-sa-1.json");
    }
}
