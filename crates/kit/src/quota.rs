//! Per-caller rate limits: a keyed GCRA (generic cell rate algorithm, a token
//! bucket kept as one instant per key) with a bounded number of keys.
//!
//! Keys are principals (`sub:<subject>`) or, for callers without an identity
//! (a public report form), client addresses (`addr:<ip>`; IPv6 by its /64,
//! which one host usually holds whole). Limits are per replica: N replicas
//! admit up to N times the rate (see `docs/operations.md`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A rate: `per_minute` sustained, `burst` at once. `per_minute = 0` turns
/// the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Rate {
    pub const fn new(per_minute: u32, burst: u32) -> Self {
        Self { per_minute, burst }
    }

    /// Every problem, as (key, problem), keys relative to the rate's own.
    pub fn problems(&self, key: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.per_minute > 1_000_000 {
            out.push((
                format!("{key}.per_minute"),
                "must be at most 1000000 (0 turns the limit off)".to_owned(),
            ));
        }
        if self.per_minute > 0 && !(1..=1_000_000).contains(&self.burst) {
            out.push((format!("{key}.burst"), "must be between 1 and 1000000".to_owned()));
        }
        out
    }
}

/// Most keys a limiter keeps; beyond it, idle keys are dropped first, and a
/// flood of new keys is refused rather than growing memory without bound.
pub const MAX_KEYS: usize = 100_000;

/// A keyed rate limiter.
#[derive(Debug)]
pub struct RateLimiter {
    /// Time between two admitted calls at the sustained rate.
    interval: Duration,
    /// How far ahead of now a key's next free instant may run.
    tolerance: Duration,
    enabled: bool,
    max_keys: usize,
    /// Per key: the instant at which the key's bucket is full again
    /// ("theoretical arrival time").
    keys: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    pub fn new(rate: Rate) -> Self {
        Self::with_capacity(rate, MAX_KEYS)
    }

    pub fn with_capacity(rate: Rate, max_keys: usize) -> Self {
        let enabled = rate.per_minute > 0;
        let interval = if enabled { Duration::from_secs(60) / rate.per_minute } else { Duration::ZERO };
        let tolerance = interval * rate.burst.saturating_sub(1);
        Self { interval, tolerance, enabled, max_keys: max_keys.max(1), keys: Mutex::new(HashMap::new()) }
    }

    /// Admits one call of `key` now, or says how long to wait.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// [`RateLimiter::check`] at a given instant (tests fix the clock).
    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if !self.enabled {
            return Ok(());
        }
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if !keys.contains_key(key) && keys.len() >= self.max_keys {
            // A key whose bucket is full again is the same as no key.
            keys.retain(|_, tat| *tat > now);
            if keys.len() >= self.max_keys {
                return Err(self.interval.max(Duration::from_secs(1)));
            }
        }
        let tat = keys.get(key).copied().filter(|t| *t > now).unwrap_or(now);
        let ahead = tat - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        keys.insert(key.to_owned(), tat + self.interval);
        Ok(())
    }
}

impl RateLimiter {
    /// Admits one call of `key`, or the status to answer: RESOURCE_EXHAUSTED
    /// with `google.rpc.RetryInfo`.
    pub fn admit(&self, key: &str, what: &str) -> Result<(), crate::ApiError> {
        self.check(key).map_err(|retry_after| crate::ApiError::RateLimited {
            message: format!("{what}: rate limit reached, retry in {} ms", retry_after.as_millis().max(1)),
            retry_after,
        })
    }
}

/// The quota key of a caller: its principal, or, without one, its address.
pub fn caller_key(subject: Option<&str>, addr: Option<IpAddr>) -> String {
    match (subject, addr) {
        (Some(subject), _) => format!("sub:{subject}"),
        (None, Some(IpAddr::V4(v4))) => format!("addr:{v4}"),
        (None, Some(IpAddr::V6(v6))) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("addr:{v4}"),
            None => {
                let s = v6.segments();
                format!("addr:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        (None, None) => "addr:unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_admitted_then_the_sustained_rate() {
        let limiter = RateLimiter::new(Rate::new(60, 3));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check_at("sub:a", t0), Ok(()));
        }
        let wait = limiter.check_at("sub:a", t0).expect_err("the burst is used up");
        assert_eq!(wait, Duration::from_secs(1), "one call per second refills");
        assert!(limiter.check_at("sub:b", t0).is_ok(), "another key has its own bucket");
        assert!(limiter.check_at("sub:a", t0 + Duration::from_millis(999)).is_err());
        assert!(limiter.check_at("sub:a", t0 + Duration::from_secs(1)).is_ok());
        assert!(limiter.check_at("sub:a", t0 + Duration::from_secs(1)).is_err());
        // Idle long enough: the whole burst again, not more.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.check_at("sub:a", later).is_ok());
        }
        assert!(limiter.check_at("sub:a", later).is_err());
    }

    #[test]
    fn a_zero_rate_is_off() {
        let limiter = RateLimiter::new(Rate::new(0, 0));
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| limiter.check_at("sub:a", t0).is_ok()));
        assert!(Rate::new(0, 0).problems("q").is_empty());
        assert_eq!(Rate::new(10, 0).problems("q")[0].0, "q.burst");
    }

    #[test]
    fn keys_are_bounded_and_idle_ones_make_room() {
        let limiter = RateLimiter::with_capacity(Rate::new(60, 1), 2);
        let t0 = Instant::now();
        assert!(limiter.check_at("a", t0).is_ok());
        assert!(limiter.check_at("b", t0).is_ok());
        assert!(limiter.check_at("c", t0).is_err(), "full of active keys: a new one waits");
        assert!(limiter.check_at("c", t0 + Duration::from_secs(2)).is_ok(), "idle keys dropped");
    }

    #[test]
    fn callers_are_keyed_by_principal_or_address() {
        let v6a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let v6b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        assert_eq!(caller_key(None, Some(v6a)), caller_key(None, Some(v6b)), "one /64, one key");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(caller_key(None, Some(mapped)), "addr:192.0.2.7");
        assert_eq!(caller_key(Some("alice"), Some(mapped)), "sub:alice");
    }
}
