//! A negative filter in front of the duplicate check: the hashes of every
//! duplicate key of the window, in memory. A submission whose keys are all
//! absent skips the database query, which is nearly every submission; a
//! hit is confirmed against the read model, so a stale or expired entry
//! costs one query, never a wrong hint.

use std::collections::HashSet;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};

use sqlx::{AnyPool, Row};

/// Beyond this many keys the filter is rebuilt from the window, so expired
/// keys do not accumulate in a long-running process.
const MAX_KEYS: usize = 2_000_000;

/// Hashes of duplicate keys (SHA-256 hex) seen in the window.
#[derive(Debug, Default)]
pub struct DedupFilter {
    hashes: RwLock<HashSet<u64>>,
    /// Received time (ms) up to which the read model has been scanned.
    scanned_to_ms: AtomicI64,
}

fn hash(key: &str) -> u64 {
    key.get(..16).and_then(|h| u64::from_str_radix(h, 16).ok()).unwrap_or_else(|| {
        // not a hex digest (never produced by dedup_keys): fold the bytes
        key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    })
}

impl DedupFilter {
    /// True when any key may have been seen; false means certainly not.
    pub fn may_contain(&self, keys: &[String]) -> bool {
        let Ok(set) = self.hashes.read() else { return true };
        keys.iter().any(|k| set.contains(&hash(k)))
    }

    pub fn insert(&self, keys: &[String]) {
        if let Ok(mut set) = self.hashes.write() {
            for k in keys {
                set.insert(hash(k));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.hashes.read().map(|s| s.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the keys the read model gained since the last scan (other
    /// replicas' reports, or reports from before a restart). Reports can
    /// reach the read model late, so the scan overlaps by `overlap_ms`.
    pub async fn refresh(
        &self,
        pool: &AnyPool,
        window_start_ms: i64,
        overlap_ms: i64,
    ) -> Result<usize, sqlx::Error> {
        if self.len() > MAX_KEYS {
            if let Ok(mut set) = self.hashes.write() {
                set.clear();
            }
            self.scanned_to_ms.store(0, Ordering::SeqCst);
        }
        let since = self.scanned_to_ms.load(Ordering::SeqCst).saturating_sub(overlap_ms).max(window_start_ms);
        let rows =
            sqlx::query("SELECT dedup_key, received_at_ms FROM intake_dedup_keys WHERE received_at_ms >= $1")
                .bind(since)
                .fetch_all(pool)
                .await?;
        let mut newest = since;
        let mut hashes = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: String = row.try_get("dedup_key")?;
            let at: i64 = row.try_get("received_at_ms")?;
            newest = newest.max(at);
            hashes.push(hash(&key));
        }
        if let Ok(mut set) = self.hashes.write() {
            set.extend(hashes);
        }
        self.scanned_to_ms.fetch_max(newest, Ordering::SeqCst);
        Ok(rows.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_keys_are_reported_absent_and_inserted_ones_present() {
        let filter = DedupFilter::default();
        let keys = psirt_domain::dedup_keys("SQL injection", &["Portal"]);
        assert!(!filter.may_contain(&keys));
        filter.insert(&keys);
        assert!(filter.may_contain(&keys));
        let other = psirt_domain::dedup_keys("XSS", &["Portal"]);
        assert!(!filter.may_contain(&other));
        assert_eq!(filter.len(), 1);
    }

    #[test]
    fn hashes_take_the_digest_prefix() {
        assert_eq!(hash("00000000000000ffabc"), 0xff);
        assert_ne!(hash("not-hex"), hash("not-hex!"));
    }
}
