//! Checks of a service's documented example configuration
//! (`config/<service>.example.toml`): it states exactly the defaults, and it
//! documents every key. Each service's `tests/config.rs` calls both.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Keys every service has that do not serialize (secrets, unset optional
/// values) but must still be documented in the example file.
pub const COMMON_UNSERIALIZED_KEYS: &[&str] = &[
    "auth.hs256_secret",
    "auth.jwks_url",
    "auth.jwks_file",
    "nats.token",
    "nats.credentials_file",
    "nats.nkey_seed_file",
    "nats.user",
    "nats.password_file",
    "nats.tls_client_cert_file",
    "nats.tls_client_key_file",
    "otel.endpoint",
];

fn leaf_keys(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                leaf_keys(&path, v, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// Panics unless `load(example)` gives exactly `C::default()` (compared as JSON).
pub fn assert_states_the_defaults<C, E>(example: &Path, load: impl FnOnce(&Path) -> Result<C, E>)
where
    C: Default + Serialize + DeserializeOwned,
    E: std::fmt::Display,
{
    let loaded = load(example).unwrap_or_else(|e| panic!("{} does not load: {e}", example.display()));
    assert_eq!(
        serde_json::to_value(&loaded).expect("config serializes"),
        serde_json::to_value(C::default()).expect("config serializes"),
        "{} must state exactly the defaults",
        example.display()
    );
}

/// Panics unless every key of `C::default()`, and every key in
/// `unserialized` (secrets and unset optional keys), appears in its
/// `[section]` of the example file, set or commented out.
pub fn assert_documents_every_key<C: Default + Serialize>(example: &Path, unserialized: &[&str]) {
    let text = std::fs::read_to_string(example)
        .unwrap_or_else(|e| panic!("{} cannot be read: {e}", example.display()));
    let mut keys = Vec::new();
    leaf_keys("", &serde_json::to_value(C::default()).expect("config serializes"), &mut keys);
    keys.extend(unserialized.iter().map(|k| (*k).to_owned()));
    for key in keys {
        let (section, leaf) = key.rsplit_once('.').unwrap_or_else(|| panic!("{key} has no section"));
        let header = format!("[{section}]");
        let start = text.find(&header).unwrap_or_else(|| panic!("section {header} missing"));
        let rest = &text[start + header.len()..];
        let end = rest.find("\n[").unwrap_or(rest.len());
        let documented = rest[..end].lines().any(|line| {
            let line = line.trim_start_matches('#').trim();
            line.starts_with(&format!("{leaf} =")) || line.starts_with(&format!("{leaf}="))
        });
        assert!(documented, "{key} is not in {}", example.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
    #[serde(default)]
    struct Settings {
        grpc: Grpc,
    }

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    #[serde(default)]
    struct Grpc {
        listen: String,
        timeout: String,
    }

    impl Default for Grpc {
        fn default() -> Self {
            Self { listen: "127.0.0.1:1".to_owned(), timeout: "30s".to_owned() }
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, text.as_bytes()).expect("write");
        file
    }

    #[test]
    fn a_documented_file_passes() {
        let f = file("[grpc]\nlisten = \"127.0.0.1:1\"\n# timeout = \"30s\"\n");
        assert_documents_every_key::<Settings>(f.path(), &[]);
    }

    #[test]
    #[should_panic(expected = "grpc.timeout is not in")]
    fn a_missing_key_is_named() {
        let f = file("[grpc]\nlisten = \"127.0.0.1:1\"\n");
        assert_documents_every_key::<Settings>(f.path(), &[]);
    }

    #[test]
    #[should_panic(expected = "must state exactly the defaults")]
    fn a_file_that_differs_from_the_defaults_fails() {
        let f = file("[grpc]\nlisten = \"127.0.0.1:2\"\n");
        assert_states_the_defaults::<Settings, String>(f.path(), |_| {
            Ok(Settings { grpc: Grpc { listen: "127.0.0.1:2".to_owned(), ..Grpc::default() } })
        });
    }
}
