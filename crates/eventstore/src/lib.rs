//! The event store: one JetStream stream, one subject per aggregate instance.
//!
//! Appends carry the envelope in headers (`Nats-Msg-Id` = event id for
//! JetStream's deduplication, the event type and schema version, trace
//! context, causation and correlation ids, actor) and an optimistic
//! concurrency expectation on the aggregate's subject
//! (`Nats-Expected-Last-Subject-Sequence`). Loads read one subject back in
//! stream order from the stream's leader (`STREAM.MSG.GET`), never from a
//! direct get a lagging follower may answer: a command decided right after
//! another one on the same aggregate sees its event.

pub mod ownership;
pub mod position;
pub mod repository;
mod settings;
mod trace;

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind, stream::LastRawMessageErrorKind};
use bytes::Bytes;
use psirt_proto::EventSchema;
use time::OffsetDateTime;
use uuid::Uuid;

pub use repository::{CommandError, Encoded, EventCodec, Executed, Loaded, ReadError, Repository, Request};
pub use settings::{StorageKind, StreamSettings, differences};
pub use trace::{extract_trace_context, inject_trace_context};

/// Header names of the event envelope. Stable: changing one is a breaking change.
pub mod headers {
    pub const MSG_ID: &str = "Nats-Msg-Id";
    pub const EVENT_TYPE: &str = "Psirt-Event-Type";
    pub const SCHEMA_VERSION: &str = "Psirt-Schema-Version";
    pub const CAUSATION_ID: &str = "Psirt-Causation-Id";
    pub const CORRELATION_ID: &str = "Psirt-Correlation-Id";
    pub const ACTOR: &str = "Psirt-Actor";
    /// The product scopes the actor held (`*`, or the scopes
    /// comma-separated); absent on events written before scopes were
    /// recorded, and on events of a service acting on its own.
    pub const ACTOR_SCOPES: &str = "Psirt-Actor-Scopes";
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";
}

/// The prefix of every event subject: `psirt.evt.<aggregate>.<id>`.
pub const SUBJECT_PREFIX: &str = "psirt.evt";

/// The subject of one aggregate instance.
pub fn subject(aggregate: &str, id: impl std::fmt::Display) -> String {
    format!("{SUBJECT_PREFIX}.{aggregate}.{id}")
}

/// What the writer believes about the aggregate's last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No expectation: append whatever the aggregate holds.
    Any,
    /// The aggregate has no event yet.
    NoStream,
    /// The aggregate's last event has this stream sequence.
    Exactly(u64),
}

impl ExpectedVersion {
    fn header_value(self) -> Option<u64> {
        match self {
            Self::Any => None,
            Self::NoStream => Some(0),
            Self::Exactly(seq) => Some(seq),
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exactly(seq) => write!(f, "{seq}"),
        }
    }
}

/// Who and what caused an event; carried in headers, not in the payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The event or request that caused this event.
    pub causation_id: Option<String>,
    /// The id shared by every event of one flow (the first request's id).
    pub correlation_id: Option<String>,
    /// The authenticated principal or the service that acted.
    pub actor: Option<String>,
    /// The product scopes the actor held when it acted (`*` for every
    /// product, else the scopes comma-separated; empty: none). `None`:
    /// unknown (a service acting on its own, or an event written before
    /// scopes were recorded). Part of the audit trail.
    pub actor_scopes: Option<String>,
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event id: becomes `Nats-Msg-Id`, so a retry with the same id is
    /// stored once.
    pub id: Uuid,
    /// The aggregate's subject, from [`subject`].
    pub subject: String,
    /// The fully-qualified protobuf message name of the payload.
    pub event_type: String,
    /// The schema version of the payload for this type.
    pub schema_version: u32,
    /// The encoded protobuf message.
    pub payload: Bytes,
    pub metadata: Metadata,
}

impl NewEvent {
    /// Builds an event from an event message: its full name is the event
    /// type, its [`EventSchema::VERSION`] the schema version.
    pub fn from_message<M: EventSchema>(id: Uuid, subject: String, message: &M, metadata: Metadata) -> Self {
        let Encoded { event_type, schema_version, payload } = Encoded::message(message);
        Self { id, subject, event_type, schema_version, payload, metadata }
    }
}

/// An event read back from the stream.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// The stream sequence: the global order every projection sees.
    pub sequence: u64,
    pub subject: String,
    /// The event id (`Nats-Msg-Id`); `None` only for foreign messages.
    pub id: Option<Uuid>,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Bytes,
    pub metadata: Metadata,
    /// The raw headers, for trace context extraction.
    pub headers: HeaderMap,
    /// When JetStream stored the event.
    pub stored_at: OffsetDateTime,
}

/// Whether `event_type` (an event's type header) names the message `M`,
/// compared without building `M`'s full name: projections ask this for
/// every event they fold.
pub fn is_type<M: prost::Name>(event_type: &str) -> bool {
    event_type.strip_prefix(M::PACKAGE).and_then(|rest| rest.strip_prefix('.')) == Some(M::NAME)
}

impl RecordedEvent {
    /// Builds the envelope from a stream message's parts.
    pub fn from_parts(
        sequence: u64,
        subject: String,
        headers: HeaderMap,
        payload: Bytes,
        stored_at: OffsetDateTime,
    ) -> Self {
        let text = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        Self {
            sequence,
            subject,
            id: text(headers::MSG_ID).and_then(|v| v.parse().ok()),
            event_type: text(headers::EVENT_TYPE).unwrap_or_default(),
            // No header: written before versions were recorded, version 1.
            // A header that is not a number is version 0, which no type has:
            // such an event never decodes.
            schema_version: text(headers::SCHEMA_VERSION).map_or(1, |v| v.trim().parse().unwrap_or(0)),
            payload,
            metadata: Metadata {
                causation_id: text(headers::CAUSATION_ID),
                correlation_id: text(headers::CORRELATION_ID),
                actor: text(headers::ACTOR),
                actor_scopes: text(headers::ACTOR_SCOPES),
            },
            headers,
            stored_at,
        }
    }

    /// The recorded form of an event this process appended at `sequence`
    /// (what a command folds into its answer without reading it back), and
    /// the one way tests build a recorded event.
    pub fn from_new(event: &NewEvent, sequence: u64) -> Self {
        Self {
            sequence,
            subject: event.subject.clone(),
            id: Some(event.id),
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            payload: event.payload.clone(),
            metadata: event.metadata.clone(),
            headers: HeaderMap::new(),
            stored_at: OffsetDateTime::now_utc(),
        }
    }

    /// Decodes the payload as `M`: checks the type header, then the schema
    /// version. An older version is upcast to today's first
    /// ([`EventSchema::upcast`]); a newer one (written by a later build) is
    /// [`DecodeError::NewerVersion`], never decoded as if it were today's.
    pub fn decode<M: EventSchema>(&self) -> Result<M, DecodeError> {
        if !is_type::<M>(&self.event_type) {
            return Err(DecodeError::WrongType { expected: M::full_name(), actual: self.event_type.clone() });
        }
        let payload_error = |message: String| DecodeError::Payload {
            event_type: self.event_type.clone(),
            sequence: self.sequence,
            message,
        };
        match self.schema_version {
            v if v == M::VERSION => {
                M::decode(self.payload.as_ref()).map_err(|e| payload_error(e.to_string()))
            }
            v if v > M::VERSION || v == 0 => Err(DecodeError::NewerVersion {
                event_type: self.event_type.clone(),
                sequence: self.sequence,
                version: v,
                known: M::VERSION,
            }),
            v => {
                let lifted =
                    psirt_proto::schema::upcast_to_current::<M>(v, &self.payload).map_err(payload_error)?;
                M::decode(lifted.as_slice()).map_err(|e| payload_error(format!("after upcasting: {e}")))
            }
        }
    }
}

/// A payload that cannot be turned into the event it claims to be.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("event type {actual} is not {expected}")]
    WrongType { expected: String, actual: String },
    #[error("event {event_type} at sequence {sequence} does not decode: {message}")]
    Payload { event_type: String, sequence: u64, message: String },
    #[error("unknown event type {event_type:?} at sequence {sequence}")]
    UnknownType { event_type: String, sequence: u64 },
    /// The event's schema version is not one this build can read: newer
    /// than today's (a later build wrote it; upgrade this service and replay
    /// the parked event), or not a version at all (0).
    #[error(
        "event {event_type} at sequence {sequence} has schema version {version}, which this build cannot read \
         (it knows versions up to {known}): parked until a build that knows it replays it"
    )]
    NewerVersion { event_type: String, sequence: u64, version: u32, known: u32 },
}

/// The result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The stream sequence of the event: the aggregate's new version.
    pub sequence: u64,
    /// True when JetStream had already stored an event with this id inside
    /// its duplicate window; nothing new was stored.
    pub duplicate: bool,
}

/// Errors of the event store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The aggregate's last event is not the one the writer expected.
    #[error("concurrency conflict on {subject}: expected {expected}, actual {actual:?}")]
    Conflict { subject: String, expected: ExpectedVersion, actual: Option<u64> },
    /// The event is larger than the server accepts.
    #[error("event too large: {0}")]
    TooLarge(String),
    /// NATS or the stream cannot be reached right now; the caller may retry.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// The stream settings cannot be applied (e.g. a storage change).
    #[error("stream configuration rejected: {0}")]
    Config(String),
    /// The stream does not exist and this caller may not create it.
    #[error(
        "the event stream {0} does not exist: create it with `psirtctl admin stream apply` (an admin NATS \
         identity; the Kubernetes Job psirt-stream-apply runs it), or set nats.stream.manage = true on a \
         laptop or in tests"
    )]
    Missing(String),
    /// The stream exists with settings other than the configured ones.
    #[error(
        "the event stream {name} differs from nats.stream (services never change it; review and apply the \
         change with `psirtctl admin stream plan|apply`, or fix the service's configuration):\n  {}",
        differences.join("\n  ")
    )]
    Mismatch { name: String, differences: Vec<String> },
    #[error("event store error: {0}")]
    Other(String),
}

/// The JetStream-backed event store.
#[derive(Clone)]
pub struct EventStore {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    stream_name: String,
    keeps_every_event: bool,
}

impl EventStore {
    /// Opens the store on the stream `settings` describe. The stream is
    /// never changed here: a missing one is created only when
    /// `settings.manage` is set (else [`StoreError::Missing`]), and an
    /// existing one must match the settings (else [`StoreError::Mismatch`],
    /// one line per difference).
    pub async fn open(client: async_nats::Client, settings: &StreamSettings) -> Result<Self, StoreError> {
        let problems = settings.problems();
        if !problems.is_empty() {
            return Err(StoreError::Config(problems.join("; ")));
        }
        let js = jetstream::ContextBuilder::new().timeout(settings.request_timeout).build(client);
        let stream = match plan_stream(&js, settings).await? {
            StreamPlan::Create => {
                if !settings.manage {
                    return Err(StoreError::Missing(settings.name.clone()));
                }
                create_stream(&js, settings).await?
            }
            StreamPlan::Unchanged(stream) => *stream,
            StreamPlan::Update { differences, .. } => {
                return Err(StoreError::Mismatch { name: settings.name.clone(), differences });
            }
        };
        let config = &stream.cached_info().config;
        // The server reports "no limit" as -1 (0 in a request).
        let keeps_every_event = config.max_age.is_zero()
            && config.max_messages <= 0
            && config.max_bytes <= 0
            && config.max_messages_per_subject <= 0
            && config.retention == jetstream::stream::RetentionPolicy::Limits;
        Ok(Self { js, stream, stream_name: settings.name.clone(), keeps_every_event })
    }

    /// The JetStream context, for consumers.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }

    /// Appends one event and waits for JetStream's acknowledgement.
    pub async fn append(&self, event: NewEvent, expected: ExpectedVersion) -> Result<Appended, StoreError> {
        let pending = self.start_append(event, expected).await?;
        pending.wait().await
    }

    /// Sends one event and returns a handle that waits for the
    /// acknowledgement: many appends can be in flight on one connection.
    pub async fn start_append(
        &self,
        event: NewEvent,
        expected: ExpectedVersion,
    ) -> Result<PendingAppend, StoreError> {
        let mut headers = HeaderMap::new();
        headers.insert(headers::EVENT_TYPE, event.event_type.as_str());
        headers.insert(headers::SCHEMA_VERSION, event.schema_version.to_string().as_str());
        if let Some(v) = &event.metadata.causation_id {
            headers.insert(headers::CAUSATION_ID, v.as_str());
        }
        if let Some(v) = &event.metadata.correlation_id {
            headers.insert(headers::CORRELATION_ID, v.as_str());
        }
        if let Some(v) = &event.metadata.actor {
            headers.insert(headers::ACTOR, v.as_str());
        }
        if let Some(v) = &event.metadata.actor_scopes {
            headers.insert(headers::ACTOR_SCOPES, v.as_str());
        }
        inject_trace_context(&mut headers);
        let mut publish = jetstream::message::PublishMessage::build()
            .payload(event.payload)
            .headers(headers)
            .message_id(event.id.to_string());
        if let Some(seq) = expected.header_value() {
            publish = publish.expected_last_subject_sequence(seq);
        }
        let subject = event.subject;
        let event_id = event.id;
        let ack = self
            .js
            .send_publish(subject.clone(), publish)
            .await
            .map_err(|e| publish_error(e.kind(), &e.to_string()))?;
        Ok(PendingAppend {
            ack,
            subject,
            expected,
            event_type: event.event_type,
            event_id,
            store: self.clone(),
        })
    }

    /// Loads every event of one aggregate, in stream order.
    pub async fn load(&self, subject: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        self.load_after(subject, 0).await
    }

    /// Loads the events of one aggregate with a stream sequence above
    /// `after`, in stream order: what a read model at `after` has not seen.
    pub async fn load_after(&self, subject: &str, after: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = Vec::new();
        let mut next = after.saturating_add(1);
        loop {
            match self.stream.get_first_raw_message_by_subject(subject, next).await {
                Ok(msg) => {
                    next = msg.sequence + 1;
                    events.push(RecordedEvent::from_parts(
                        msg.sequence,
                        msg.subject.to_string(),
                        msg.headers,
                        msg.payload,
                        msg.time,
                    ));
                }
                Err(e) if not_found(&e.kind()) => return Ok(events),
                Err(e) => return Err(StoreError::Unavailable(format!("failed to load {subject}: {e}"))),
            }
        }
    }

    /// Whether the stream keeps every event it accepted (no age, count or
    /// size limit), as configured when the store was opened. Then an
    /// aggregate without events in the stream never existed; with a limit,
    /// its events may have been removed while read models still hold it.
    pub fn keeps_every_event(&self) -> bool {
        self.keeps_every_event
    }

    /// The stream sequence of the aggregate's last event, if any.
    pub async fn last_sequence(&self, subject: &str) -> Result<Option<u64>, StoreError> {
        match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(msg) => Ok(Some(msg.sequence)),
            Err(e) if not_found(&e.kind()) => Ok(None),
            Err(e) => Err(StoreError::Unavailable(format!("failed to read {subject}: {e}"))),
        }
    }

    /// The aggregate's last event, if any.
    pub async fn last_event(&self, subject: &str) -> Result<Option<RecordedEvent>, StoreError> {
        match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(msg) => Ok(Some(RecordedEvent::from_parts(
                msg.sequence,
                msg.subject.to_string(),
                msg.headers,
                msg.payload,
                msg.time,
            ))),
            Err(e) if not_found(&e.kind()) => Ok(None),
            Err(e) => Err(StoreError::Unavailable(format!("failed to read {subject}: {e}"))),
        }
    }

    /// The sequence of the first message at or after `from` whose subject
    /// matches `filter` (wildcards allowed), if any.
    pub async fn first_sequence_from(&self, filter: &str, from: u64) -> Result<Option<u64>, StoreError> {
        match self.stream.get_first_raw_message_by_subject(filter, from.max(1)).await {
            Ok(msg) => Ok(Some(msg.sequence)),
            Err(e) if not_found(&e.kind()) => Ok(None),
            Err(e) => Err(StoreError::Unavailable(format!("failed to read {filter} from {from}: {e}"))),
        }
    }

    /// The last sequence of the whole stream (for lag and rebuild progress).
    pub async fn stream_last_sequence(&self) -> Result<u64, StoreError> {
        let mut stream = self.stream.clone();
        let info = stream
            .info()
            .await
            .map_err(|e| StoreError::Unavailable(format!("failed to read stream info: {e}")))?;
        Ok(info.state.last_sequence)
    }

    /// Reads one event by stream sequence.
    pub async fn get(&self, sequence: u64) -> Result<Option<RecordedEvent>, StoreError> {
        match self.stream.get_raw_message(sequence).await {
            Ok(msg) => Ok(Some(RecordedEvent::from_parts(
                msg.sequence,
                msg.subject.to_string(),
                msg.headers,
                msg.payload,
                msg.time,
            ))),
            Err(e) if not_found(&e.kind()) => Ok(None),
            Err(e) => Err(StoreError::Unavailable(format!("failed to read sequence {sequence}: {e}"))),
        }
    }
}

/// A message get found nothing (the server answers "no message found"
/// with a JetStream error on some versions and an empty result on others).
fn not_found(kind: &LastRawMessageErrorKind) -> bool {
    match kind {
        LastRawMessageErrorKind::NoMessageFound => true,
        LastRawMessageErrorKind::JetStream(e) => e.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND,
        _ => false,
    }
}

/// An append in flight.
pub struct PendingAppend {
    ack: jetstream::context::PublishAckFuture,
    subject: String,
    expected: ExpectedVersion,
    event_type: String,
    event_id: Uuid,
    store: EventStore,
}

impl PendingAppend {
    /// Waits for JetStream to store the event (or report it a duplicate).
    pub async fn wait(self) -> Result<Appended, StoreError> {
        match self.ack.await {
            Ok(ack) => {
                if !ack.duplicate {
                    metrics::appended(&self.event_type);
                }
                position::record(ack.sequence);
                Ok(Appended { sequence: ack.sequence, duplicate: ack.duplicate })
            }
            Err(e) if matches!(e.kind(), PublishErrorKind::WrongLastSequence) => {
                // JetStream checks the expectation before its duplicate
                // window, so a retry of an event that was stored (its ack
                // lost) comes back as a conflict: if the aggregate's last
                // event is this very event, it is a duplicate.
                let last = self.store.last_event(&self.subject).await.ok().flatten();
                if let Some(last) = &last
                    && last.id == Some(self.event_id)
                {
                    position::record(last.sequence);
                    return Ok(Appended { sequence: last.sequence, duplicate: true });
                }
                let actual = last.map(|e| e.sequence);
                Err(StoreError::Conflict { subject: self.subject, expected: self.expected, actual })
            }
            Err(e) => Err(publish_error(e.kind(), &e.to_string())),
        }
    }
}

fn publish_error(kind: PublishErrorKind, message: &str) -> StoreError {
    match kind {
        PublishErrorKind::MaxPayloadExceeded => StoreError::TooLarge(message.to_owned()),
        PublishErrorKind::StreamNotFound
        | PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending => StoreError::Unavailable(message.to_owned()),
        PublishErrorKind::WrongLastSequence
        | PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::Other => StoreError::Other(message.to_owned()),
    }
}

/// What applying stream settings would do.
#[derive(Debug)]
pub enum StreamPlan {
    /// The stream does not exist.
    Create,
    /// The stream exists as configured.
    Unchanged(Box<jetstream::stream::Stream>),
    /// The stream exists with other settings: one line per difference.
    Update { stream: Box<jetstream::stream::Stream>, differences: Vec<String> },
}

fn api_error(what: String, message: String) -> StoreError {
    if message.contains("timed out") || message.contains("no responders") || message.contains("disconnected")
    {
        StoreError::Unavailable(format!("{what}: {message}"))
    } else {
        StoreError::Other(format!("{what}: {message}"))
    }
}

/// Compares the stream with `settings` without changing anything.
pub async fn plan_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<StreamPlan, StoreError> {
    use jetstream::context::GetStreamErrorKind;
    match js.get_stream(&settings.name).await {
        Ok(stream) => {
            let differences = differences(&stream.cached_info().config, &settings.to_stream_config());
            if differences.is_empty() {
                Ok(StreamPlan::Unchanged(Box::new(stream)))
            } else {
                Ok(StreamPlan::Update { stream: Box::new(stream), differences })
            }
        }
        Err(e)
            if matches!(e.kind(), GetStreamErrorKind::JetStream(ref js_err)
                if js_err.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            Ok(StreamPlan::Create)
        }
        Err(e) => Err(api_error(format!("failed to read stream {}", settings.name), e.to_string())),
    }
}

async fn create_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<jetstream::stream::Stream, StoreError> {
    js.create_stream(settings.to_stream_config())
        .await
        .map_err(|e| api_error(format!("failed to create stream {}", settings.name), e.to_string()))
}

/// Creates the stream or updates it to `settings` (what an administrator
/// runs, with an identity allowed to; services only [`plan_stream`]).
/// Returns the plan that was applied.
pub async fn apply_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<StreamPlan, StoreError> {
    let problems = settings.problems();
    if !problems.is_empty() {
        return Err(StoreError::Config(problems.join("; ")));
    }
    let plan = plan_stream(js, settings).await?;
    match &plan {
        StreamPlan::Create => {
            create_stream(js, settings).await?;
        }
        StreamPlan::Unchanged(_) => {}
        StreamPlan::Update { .. } => {
            js.update_stream(settings.to_stream_config())
                .await
                .map_err(|e| StoreError::Config(format!("failed to update stream {}: {e}", settings.name)))?;
        }
    }
    Ok(plan)
}

/// How long a caller should wait between checks when the store is down.
pub const RETRY_PAUSE: Duration = Duration::from_millis(200);

mod metrics {
    use std::sync::OnceLock;

    use opentelemetry::KeyValue;
    use opentelemetry::metrics::Counter;

    fn counter() -> &'static Counter<u64> {
        static COUNTER: OnceLock<Counter<u64>> = OnceLock::new();
        COUNTER.get_or_init(|| {
            opentelemetry::global::meter("psirt")
                .u64_counter("psirt.events.appended")
                .with_description("events appended to the event stream, by type")
                .build()
        })
    }

    pub(crate) fn appended(event_type: &str) {
        counter().add(1, &[KeyValue::new("event_type", event_type.to_owned())]);
    }
}

#[cfg(test)]
mod tests {
    use super::is_type;

    mod events {
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct CaseOpened {}

        impl prost::Name for CaseOpened {
            const NAME: &'static str = "CaseOpened";
            const PACKAGE: &'static str = "psirt.events.v1";
        }
    }

    #[test]
    fn is_type_matches_the_full_name_only() {
        assert!(is_type::<events::CaseOpened>("psirt.events.v1.CaseOpened"));
        assert!(!is_type::<events::CaseOpened>("psirt.events.v1.CaseOpenedX"));
        assert!(!is_type::<events::CaseOpened>("psirt.events.v1.Case"));
        assert!(!is_type::<events::CaseOpened>("psirt.events.v2.CaseOpened"));
        assert!(!is_type::<events::CaseOpened>("psirt.events.v1CaseOpened"));
        assert!(!is_type::<events::CaseOpened>("CaseOpened"));
        assert!(!is_type::<events::CaseOpened>(""));
    }
}
