//! Stream settings, as they appear in every service's `[nats.stream]` config.

use std::time::Duration;

use async_nats::jetstream::stream;
use serde::{Deserialize, Serialize};

/// Where JetStream keeps the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// On disk: survives a server restart. The only sane choice in production.
    #[default]
    File,
    /// In memory: lost when the server stops. For throwaway setups.
    Memory,
}

/// The event stream's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSettings {
    /// Stream name.
    pub name: String,
    /// Subjects the stream captures; must cover `psirt.evt.>`.
    pub subjects: Vec<String>,
    /// Replicas (1 on a laptop, 3 in a cluster so an acknowledged event
    /// survives the loss of a server).
    pub replicas: usize,
    pub storage: StorageKind,
    /// How long events are kept, in seconds; 0 keeps them forever. Events are
    /// the source of truth: keep them forever unless an archive exists.
    pub max_age_secs: u64,
    /// JetStream's deduplication window for `Nats-Msg-Id`, in seconds.
    /// Beyond it, deterministic subjects and expectations keep appends
    /// idempotent.
    pub duplicate_window_secs: u64,
    /// Largest event accepted, in bytes.
    pub max_msg_size: i32,
    /// Timeout of JetStream API requests and publish acknowledgements, in
    /// milliseconds.
    #[serde(with = "millis")]
    pub request_timeout: Duration,
    /// Create the stream when it is missing (`just up`, tests). Otherwise a
    /// missing stream is an error naming the command that creates it. An
    /// existing stream is never changed by a service, only compared.
    pub manage: bool,
    /// `max_age_secs` other than 0 deletes events: allowed only with this set.
    pub allow_expiry: bool,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            name: "PSIRT_EVENTS".to_owned(),
            subjects: vec![format!("{}.>", crate::SUBJECT_PREFIX)],
            replicas: 1,
            storage: StorageKind::File,
            max_age_secs: 0,
            duplicate_window_secs: 120,
            max_msg_size: 1024 * 1024,
            request_timeout: Duration::from_secs(5),
            manage: false,
            allow_expiry: false,
        }
    }
}

impl StreamSettings {
    /// The defaults, allowed to create the stream when it is missing (tests,
    /// tools with an admin identity).
    pub fn managed() -> Self {
        Self { manage: true, ..Self::default() }
    }

    /// The JetStream configuration these settings describe.
    pub fn to_stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            description: Some("PSIRT platform events".to_owned()),
            subjects: self.subjects.clone(),
            retention: stream::RetentionPolicy::Limits,
            storage: match self.storage {
                StorageKind::File => stream::StorageType::File,
                StorageKind::Memory => stream::StorageType::Memory,
            },
            num_replicas: self.replicas,
            max_age: Duration::from_secs(self.max_age_secs),
            duplicate_window: Duration::from_secs(self.duplicate_window_secs),
            max_message_size: self.max_msg_size,
            discard: stream::DiscardPolicy::New,
            // Events are facts: nobody deletes or purges them through the API.
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            ..Default::default()
        }
    }

    /// Every problem with the settings.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.name.is_empty() || self.name.contains(['.', ' ', '*', '>']) {
            out.push(format!(
                "nats.stream.name {:?} must be non-empty without '.', ' ', '*', '>'",
                self.name
            ));
        }
        let events = format!("{}.>", crate::SUBJECT_PREFIX);
        if !self.subjects.iter().any(|s| s == &events || s == ">") {
            out.push(format!("nats.stream.subjects must include {events:?}"));
        }
        if !(1..=5).contains(&self.replicas) {
            out.push(format!("nats.stream.replicas must be 1..=5, got {}", self.replicas));
        }
        if self.duplicate_window_secs == 0 {
            out.push("nats.stream.duplicate_window_secs must be at least 1".to_owned());
        }
        if self.max_age_secs != 0 && self.max_age_secs < self.duplicate_window_secs {
            out.push("nats.stream.max_age_secs must be 0 or at least the duplicate window".to_owned());
        }
        if self.max_age_secs != 0 && !self.allow_expiry {
            out.push(format!(
                "nats.stream.max_age {}s deletes every event older than that (events are the source of truth): \
                 set nats.stream.allow_expiry = true to mean it",
                self.max_age_secs
            ));
        }
        if self.max_msg_size < 1024 {
            out.push("nats.stream.max_msg_size must be at least 1024".to_owned());
        }
        out
    }
}

/// What differs between the stream as it is (`actual`) and as `wanted`:
/// one line per setting, empty when they agree. Compares the configured
/// settings and the fixed ones the platform relies on (limits retention,
/// discard new, no count or size limits, no delete or purge, direct gets).
pub fn differences(actual: &stream::Config, wanted: &stream::Config) -> Vec<String> {
    fn unlimited(v: i64) -> String {
        if v <= 0 { "unlimited".to_owned() } else { v.to_string() }
    }
    let mut out = Vec::new();
    let mut diff = |what: &str, actual: String, wanted: String| {
        if actual != wanted {
            out.push(format!("{what}: stream has {actual}, wanted {wanted}"));
        }
    };
    let sorted = |subjects: &[String]| {
        let mut s = subjects.to_vec();
        s.sort();
        s.dedup();
        format!("{s:?}")
    };
    diff("subjects", sorted(&actual.subjects), sorted(&wanted.subjects));
    diff("replicas", actual.num_replicas.max(1).to_string(), wanted.num_replicas.max(1).to_string());
    diff("storage", format!("{:?}", actual.storage), format!("{:?}", wanted.storage));
    let secs =
        |d: Duration| if d.is_zero() { "0s (forever)".to_owned() } else { format!("{}s", d.as_secs()) };
    diff("max_age", secs(actual.max_age), secs(wanted.max_age));
    diff("duplicate_window", secs(actual.duplicate_window), secs(wanted.duplicate_window));
    diff(
        "max_msg_size",
        unlimited(i64::from(actual.max_message_size)),
        unlimited(i64::from(wanted.max_message_size)),
    );
    diff("retention", format!("{:?}", actual.retention), format!("{:?}", wanted.retention));
    diff("discard", format!("{:?}", actual.discard), format!("{:?}", wanted.discard));
    diff("max_bytes", unlimited(actual.max_bytes), unlimited(wanted.max_bytes));
    diff("max_messages", unlimited(actual.max_messages), unlimited(wanted.max_messages));
    diff(
        "max_messages_per_subject",
        unlimited(actual.max_messages_per_subject),
        unlimited(wanted.max_messages_per_subject),
    );
    diff("deny_delete", actual.deny_delete.to_string(), wanted.deny_delete.to_string());
    diff("deny_purge", actual.deny_purge.to_string(), wanted.deny_purge.to_string());
    diff("allow_direct", actual.allow_direct.to_string(), wanted.allow_direct.to_string());
    out
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
