//! Settings of a projection runner (`[projection]` in a service's config).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What to do with an event that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UndecodablePolicy {
    /// Count it, log it with its sequence, and move on.
    Skip,
    /// As skip, and keep a copy in `projection_parked` for inspection and
    /// replay after a fix.
    #[default]
    Park,
}

/// Projection runner settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectionSettings {
    /// Most events applied in one transaction.
    pub batch_size: usize,
    /// Most events applied in one transaction while catching up to a
    /// target (a rebuild): larger batches write a case touched by several
    /// events once instead of once per batch, and commit less often.
    pub rebuild_batch_size: usize,
    /// Longest an event waits for more to fill its batch, in ms.
    #[serde(rename = "max_batch_wait_ms", with = "millis")]
    pub max_batch_wait: Duration,
    /// The same for runners whose work sits on a request's path (reactions
    /// that append the next events, as triage opening a case for a new
    /// report): by default they take what has arrived and go, so an event
    /// never waits for company; under load the backlog that builds up
    /// while a batch runs makes the next one larger by itself.
    #[serde(rename = "reactions_max_batch_wait_ms", with = "millis")]
    pub reactions_max_batch_wait: Duration,
    /// What happens to undecodable events.
    pub on_undecodable: UndecodablePolicy,
    /// How long JetStream waits for an ack before redelivering, in ms.
    #[serde(rename = "ack_wait_ms", with = "millis")]
    pub ack_wait: Duration,
    /// How long a runner holds the projection's lease without renewing, in
    /// ms; a standby replica takes over after it runs out.
    #[serde(rename = "lease_ms", with = "millis")]
    pub lease: Duration,
    /// Pause before retrying after NATS or the database failed, in ms.
    #[serde(rename = "retry_pause_ms", with = "millis")]
    pub retry_pause: Duration,
    /// A projection whose every attempt fails (its database writes, the
    /// stream) for this long, or whose lag stays above `max_lag` this long,
    /// is stalled: the service's `/readyz` answers 503 naming it, and
    /// `psirt_projection_stalled` is 1. In ms.
    #[serde(rename = "stalled_after_ms", with = "millis")]
    pub stalled_after: Duration,
    /// Most events a projection may be behind the stream (outside a
    /// rebuild) before it counts as stalled; 0: no limit.
    pub max_lag: u64,
    /// Longest a read carrying `psirt-min-position` waits for the read
    /// model to reach that position before it answers `UNAVAILABLE` with
    /// the lag (never past the call's deadline), in ms.
    #[serde(rename = "read_wait_ms", with = "millis")]
    pub read_wait: Duration,
}

impl Default for ProjectionSettings {
    fn default() -> Self {
        Self {
            batch_size: 256,
            rebuild_batch_size: 2048,
            max_batch_wait: Duration::from_millis(10),
            reactions_max_batch_wait: Duration::ZERO,
            on_undecodable: UndecodablePolicy::Park,
            ack_wait: Duration::from_secs(30),
            lease: Duration::from_secs(15),
            retry_pause: Duration::from_millis(500),
            stalled_after: Duration::from_secs(60),
            max_lag: 100_000,
            read_wait: Duration::from_secs(5),
        }
    }
}

impl ProjectionSettings {
    /// These settings for a runner of reactions: batches gathered for at
    /// most `reactions_max_batch_wait_ms`.
    pub fn for_reactions(&self) -> Self {
        Self { max_batch_wait: self.reactions_max_batch_wait, ..self.clone() }
    }

    /// Every problem with the settings.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(1..=10_000).contains(&self.batch_size) {
            out.push(format!("projection.batch_size must be 1..=10000, got {}", self.batch_size));
        }
        if !(1..=10_000).contains(&self.rebuild_batch_size) {
            out.push(format!(
                "projection.rebuild_batch_size must be 1..=10000, got {}",
                self.rebuild_batch_size
            ));
        }
        if self.max_batch_wait > Duration::from_secs(1) {
            out.push("projection.max_batch_wait_ms must be at most 1000".to_owned());
        }
        if self.reactions_max_batch_wait > Duration::from_secs(1) {
            out.push("projection.reactions_max_batch_wait_ms must be at most 1000".to_owned());
        }
        if self.lease < Duration::from_secs(1) {
            out.push("projection.lease must be at least 1000 ms".to_owned());
        }
        if self.stalled_after < Duration::from_secs(1) {
            out.push("projection.stalled_after_ms must be at least 1000".to_owned());
        }
        if self.read_wait > Duration::from_secs(60) {
            out.push("projection.read_wait_ms must be at most 60000".to_owned());
        }
        if self.ack_wait < Duration::from_secs(1) {
            out.push("projection.ack_wait must be at least 1000 ms".to_owned());
        }
        out
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
