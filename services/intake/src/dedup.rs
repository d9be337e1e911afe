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
    /// The highest stream sequence among the keys read from the read model
    /// (0: nothing read yet; the next refresh loads the whole window).
    read_to_sequence: AtomicI64,
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

    /// Adds the keys the read model gained since the last call (other
    /// replicas' reports, or reports from before a restart): the whole
    /// window from `window_start_ms` the first time (and after the filter
    /// was emptied), then only rows of a later stream sequence. The
    /// projection commits in stream order, so a row committed after a look
    /// always has a sequence above everything that look read: nothing is
    /// missed, and nothing is read twice.
    pub async fn refresh(&self, pool: &AnyPool, window_start_ms: i64) -> Result<usize, sqlx::Error> {
        if self.len() > MAX_KEYS {
            if let Ok(mut set) = self.hashes.write() {
                set.clear();
            }
            self.read_to_sequence.store(0, Ordering::SeqCst);
        }
        let after = self.read_to_sequence.load(Ordering::SeqCst);
        let rows = if after == 0 {
            sqlx::query("SELECT dedup_key, sequence FROM intake_dedup_keys WHERE received_at_ms >= $1")
                .bind(window_start_ms)
                .fetch_all(pool)
                .await?
        } else {
            sqlx::query("SELECT dedup_key, sequence FROM intake_dedup_keys WHERE sequence > $1")
                .bind(after)
                .fetch_all(pool)
                .await?
        };
        let mut newest = after;
        let mut hashes = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: String = row.try_get("dedup_key")?;
            let sequence: i64 = row.try_get("sequence")?;
            newest = newest.max(sequence);
            hashes.push(hash(&key));
        }
        if !hashes.is_empty()
            && let Ok(mut set) = self.hashes.write()
        {
            set.extend(hashes);
        }
        // At least 1 once looked: rows from before sequences were recorded
        // (0) came with the window.
        self.read_to_sequence.fetch_max(newest.max(1), Ordering::SeqCst);
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
