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
    /// Longest an event waits for more to fill its batch, in ms.
    #[serde(rename = "max_batch_wait_ms", with = "millis")]
    pub max_batch_wait: Duration,
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
}

impl Default for ProjectionSettings {
    fn default() -> Self {
        Self {
            batch_size: 256,
            max_batch_wait: Duration::from_millis(10),
            on_undecodable: UndecodablePolicy::Park,
            ack_wait: Duration::from_secs(30),
            lease: Duration::from_secs(15),
            retry_pause: Duration::from_millis(500),
        }
    }
}

impl ProjectionSettings {
    /// Every problem with the settings.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(1..=10_000).contains(&self.batch_size) {
            out.push(format!("projection.batch_size must be 1..=10000, got {}", self.batch_size));
        }
        if self.max_batch_wait > Duration::from_secs(1) {
            out.push("projection.max_batch_wait_ms must be at most 1000".to_owned());
        }
        if self.lease < Duration::from_secs(1) {
            out.push("projection.lease must be at least 1000 ms".to_owned());
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
