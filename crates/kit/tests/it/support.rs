//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// Path of a file under `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}
