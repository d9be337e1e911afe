//! The CSAF provider directory (a trusted provider with `.asc` signatures and
//! `openpgp/<FINGERPRINT>.asc` when `advisory.signing_key_file` is set),
//! served read-only on the admin HTTP port under `/.well-known/csaf/` for
//! CSAF aggregators and checkers. The publication
//! writes it, and the projection writes it again when it freezes the
//! publication's documents, which repairs a crash between the publication
//! event and the file write (and a rebuild rewrites the same bytes).

use std::path::{Component, Path, PathBuf};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sqlx::AnyPool;

use crate::documents::Settings;

/// The admin HTTP routes of the directory.
pub fn routes(_pool: AnyPool, settings: Settings) -> Router {
    let root = settings.csaf_directory.clone();
    Router::new()
        .route("/.well-known/csaf/{*path}", get(serve))
        .route("/.well-known/csaf/", get(serve_index))
        .with_state(root)
}

/// A relative path inside the directory, or `None` for anything that
/// could leave it (`..`, absolute paths, hidden files).
fn safe(root: &Path, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path);
    let mut out = root.to_path_buf();
    for component in relative.components() {
        match component {
            Component::Normal(part) => {
                let text = part.to_str()?;
                if text.starts_with('.') {
                    return None;
                }
                out.push(part);
            }
            _ => return None,
        }
    }
    Some(out)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => "application/json",
        Some("csv") => "text/csv; charset=utf-8",
        // ASCII-armored OpenPGP: the public key under openpgp/, else a signature.
        Some("asc") if path.parent().and_then(Path::file_name).is_some_and(|d| d == "openpgp") => {
            "application/pgp-keys"
        }
        Some("asc") => "application/pgp-signature",
        _ => "text/plain; charset=utf-8",
    }
}

async fn read(path: PathBuf) -> Response {
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type(&path))], bytes).into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve(State(root): State<PathBuf>, UrlPath(path): UrlPath<String>) -> Response {
    let Some(file) = safe(&root, &path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if file.is_dir() {
        return StatusCode::NOT_FOUND.into_response();
    }
    read(file).await
}

async fn serve_index(State(root): State<PathBuf>) -> Response {
    read(root.join("provider-metadata.json")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_directory() {
        let root = Path::new("/srv/csaf");
        assert_eq!(safe(root, "2026/acme-sa-2026-0001.json"), Some(root.join("2026/acme-sa-2026-0001.json")));
        assert_eq!(safe(root, "../etc/passwd"), None);
        assert_eq!(safe(root, "2026/../../x"), None);
        assert_eq!(safe(root, "/etc/passwd"), None);
        assert_eq!(safe(root, ".tmp-write"), None);
    }

    #[test]
    fn openpgp_files_have_their_media_types() {
        assert_eq!(content_type(Path::new("/srv/csaf/2026/a.json.asc")), "application/pgp-signature");
        assert_eq!(content_type(Path::new("/srv/csaf/openpgp/ABCD.asc")), "application/pgp-keys");
        assert_eq!(content_type(Path::new("/srv/csaf/2026/a.json")), "application/json");
    }
}
