//! The command path every service shares: load an aggregate, answer a
//! retried request as the first attempt did, check the caller's expected
//! version, decide, append with an expectation, retry a conflict once after a
//! pause, and answer with typed errors.
//!
//! ```text
//!   Request ─▶ load(subject) ─▶ screen foreign events ─▶ decode (upcast) ─▶ fold
//!                 │
//!                 ├─ idempotency id already stored? ─▶ Executed { already_done }
//!                 ├─ expected version ≠ last sequence? ─▶ CommandError::WrongVersion
//!                 ▼
//!              decide(&Loaded) ─▶ Aggregate::handle ─▶ encode ─▶ append (expectation
//!              = last sequence, Nats-Msg-Id = derived event id) ─▶ Executed
//!                 │ conflict (no caller expectation): pause, reload, once more
//!                 ▼ conflict again ─▶ CommandError::Conflict
//! ```
//!
//! Event ids are derived from the request (the caller's `event_id`), so a
//! retried request finds its own events: each decided event already stored
//! is skipped, and a request whose idempotency event is stored is done.

use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use psirt_domain::{Aggregate, DomainEvent};
use psirt_proto::EventSchema;
use time::OffsetDateTime;
use tracing::warn;
use uuid::Uuid;

use crate::{
    DecodeError, EventStore, ExpectedVersion, Metadata, NewEvent, RecordedEvent, StoreError, ownership,
};

/// Event ids by event type (`DomainEvent::event_type`): what most commands
/// derive their events' ids from.
pub fn by_type<E: DomainEvent>(id_of_type: impl Fn(&str) -> Uuid + Sync) -> impl Fn(&E) -> Uuid + Sync {
    move |event: &E| id_of_type(event.event_type())
}

/// An encoded event payload: what a codec makes of a domain event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The full message name (`psirt.events.v1.ReportReceived`).
    pub event_type: String,
    /// The message's schema version today.
    pub schema_version: u32,
    pub payload: Bytes,
}

impl Encoded {
    /// Encodes an event message with its name and today's version.
    pub fn message<M: EventSchema>(message: &M) -> Self {
        Self {
            event_type: M::full_name(),
            schema_version: M::VERSION,
            payload: Bytes::from(message.encode_to_vec()),
        }
    }
}

/// Maps one aggregate's domain events to stored events and back.
pub trait EventCodec: Send + Sync {
    type Aggregate: Aggregate<Event: Clone> + Clone + Send + Sync;
    /// What encoding needs beyond the event and the aggregate before the
    /// command (`()` for most aggregates).
    type Context: Sync;

    /// The state before the first event (the aggregate's default, or one
    /// configured with a policy).
    fn initial(&self) -> Self::Aggregate {
        Self::Aggregate::default()
    }

    /// The domain event of a stored one; `None` for an event of the subject
    /// this aggregate does not fold.
    fn decode(
        &self,
        event: &RecordedEvent,
    ) -> Result<Option<<Self::Aggregate as Aggregate>::Event>, DecodeError>;

    /// The stored form of a domain event decided on `before`.
    fn encode(
        &self,
        event: &<Self::Aggregate as Aggregate>::Event,
        before: &Self::Aggregate,
        context: &Self::Context,
    ) -> Encoded;
}

/// An aggregate as loaded from its events.
#[derive(Debug)]
pub struct Loaded<A: Aggregate> {
    /// The aggregate's id as it appears in its subject.
    pub id: String,
    pub subject: String,
    /// The state after every event.
    pub state: A,
    /// The aggregate's events as stored, in stream order (foreign events, of
    /// a type the subject may not carry, left out).
    pub events: Vec<RecordedEvent>,
    /// The domain events the codec decoded, in stream order.
    pub domain: Vec<A::Event>,
    /// The stream sequence of the subject's last message, foreign or not:
    /// the expectation of the next append.
    last_sequence: Option<u64>,
}

impl<A: Aggregate> Loaded<A> {
    /// Whether any event of the aggregate was stored.
    pub fn exists(&self) -> bool {
        !self.domain.is_empty()
    }

    /// The expectation of the next append.
    pub fn version(&self) -> ExpectedVersion {
        self.last_sequence.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exactly)
    }

    /// The stream sequence of the last event (0 when there is none): the
    /// version callers see and send back as their expectation.
    pub fn current(&self) -> u64 {
        self.last_sequence.unwrap_or(0)
    }

    /// Whether an event with this id is stored.
    pub fn has_event(&self, id: Uuid) -> bool {
        self.events.iter().any(|e| e.id == Some(id))
    }

    /// The stream sequence of the stored event with this id.
    pub fn sequence_of(&self, id: Uuid) -> Option<u64> {
        self.events.iter().find(|e| e.id == Some(id)).map(|e| e.sequence)
    }

    /// The actor of the first event: who created the aggregate.
    pub fn creator(&self) -> Option<&str> {
        self.events.first().and_then(|e| e.metadata.actor.as_deref())
    }
}

/// One command to carry out.
#[derive(Debug, Clone)]
pub struct Request<Ctx> {
    /// The aggregate's id (the last token of its subject).
    pub id: String,
    /// The version the caller read (`expected_version` of an API request):
    /// a mismatch is [`CommandError::WrongVersion`] and is never retried.
    pub expected: Option<u64>,
    /// Events whose presence means this request was carried out before
    /// (any one of them): it is answered as done, whatever the aggregate's
    /// version now.
    pub idempotency: Vec<Uuid>,
    /// Whether the aggregate must exist ([`CommandError::NotFound`] if not).
    pub must_exist: bool,
    pub metadata: Metadata,
    /// Encoding context of the codec.
    pub context: Ctx,
    /// The decision time handed to the aggregate (now when `None`).
    pub now: Option<OffsetDateTime>,
}

impl<Ctx> Request<Ctx> {
    /// Whether `loaded` holds one of the request's idempotency events.
    pub fn done_in<A: Aggregate>(&self, loaded: &Loaded<A>) -> bool {
        self.idempotency.iter().any(|id| loaded.has_event(*id))
    }

    /// The request without its encoding context (for reads).
    fn clone_without_context(&self) -> Request<()> {
        Request {
            id: self.id.clone(),
            expected: self.expected,
            idempotency: self.idempotency.clone(),
            must_exist: self.must_exist,
            metadata: self.metadata.clone(),
            context: (),
            now: self.now,
        }
    }
}

impl<Ctx: Default> Request<Ctx> {
    /// A request on an aggregate that must exist, with no expectation.
    pub fn new(id: impl std::fmt::Display, metadata: Metadata) -> Self {
        Self {
            id: id.to_string(),
            expected: None,
            idempotency: Vec::new(),
            must_exist: true,
            metadata,
            context: Ctx::default(),
            now: None,
        }
    }
}

/// What a command did.
#[derive(Debug)]
pub struct Executed<A: Aggregate> {
    /// The aggregate after the command.
    pub loaded: Loaded<A>,
    /// The events this call appended (empty when the request was carried out
    /// before or the decision was to do nothing).
    pub appended: Vec<A::Event>,
    /// True when the request was carried out before (its idempotency event,
    /// or every event it decided, was already stored).
    pub already_done: bool,
    /// The stream position of what the command did: the sequence of the
    /// last event it appended or found already stored (a retry answers
    /// the first attempt's), else of the aggregate's last event (a command
    /// decided to do nothing). Also recorded in the call's
    /// [`position`](crate::position) scope: the `psirt-position` a service answers.
    pub position: u64,
}

impl<A: Aggregate> Executed<A> {
    fn new(loaded: Loaded<A>, appended: Vec<A::Event>, already_done: bool, position: Option<u64>) -> Self {
        let position = position.unwrap_or_else(|| loaded.current());
        crate::position::record(position);
        Self { loaded, appended, already_done, position }
    }

    /// A request found carried out before: the position of its idempotency
    /// event.
    fn done_before<Ctx>(loaded: Loaded<A>, request: &Request<Ctx>) -> Self {
        let found = request.idempotency.iter().filter_map(|id| loaded.sequence_of(*id)).max();
        Self::new(loaded, Vec::new(), true, found)
    }
}

/// Why a command failed; services map each variant to a status.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<D, E> {
    /// The aggregate has no events and the request needs one.
    #[error("{subject} does not exist")]
    NotFound { subject: String },
    /// The caller's expected version is not the aggregate's.
    #[error("{subject} is at version {actual}, not the expected {expected}")]
    WrongVersion { subject: String, expected: u64, actual: u64 },
    /// Other writers kept changing the aggregate: the retry conflicted too.
    #[error("{subject} kept changing while the command was decided; retry")]
    Conflict { subject: String },
    /// The aggregate refused the command.
    #[error(transparent)]
    Domain(D),
    /// The caller's decision refused the command.
    #[error("{0}")]
    Rejected(E),
    #[error(transparent)]
    Store(StoreError),
    /// A stored event does not decode.
    #[error(transparent)]
    Decode(DecodeError),
}

/// Why an aggregate could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// The aggregates of one codec on the event store.
pub struct Repository<C: EventCodec> {
    store: EventStore,
    codec: C,
    retry_pause: Duration,
    _aggregate: PhantomData<fn() -> C::Aggregate>,
}

impl<C: EventCodec + Clone> Clone for Repository<C> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            codec: self.codec.clone(),
            retry_pause: self.retry_pause,
            _aggregate: PhantomData,
        }
    }
}

/// The pause before the one retry of a conflicting command.
pub const RETRY_PAUSE: Duration = Duration::from_millis(5);

type Event<C> = <<C as EventCodec>::Aggregate as Aggregate>::Event;
type DomainError<C> = <<C as EventCodec>::Aggregate as Aggregate>::Error;
type Command<C> = <<C as EventCodec>::Aggregate as Aggregate>::Command;

impl<C: EventCodec> Repository<C> {
    pub fn new(store: EventStore, codec: C) -> Self {
        Self { store, codec, retry_pause: RETRY_PAUSE, _aggregate: PhantomData }
    }

    /// Sets the pause before the one retry of a conflicting command.
    pub fn with_retry_pause(mut self, pause: Duration) -> Self {
        self.retry_pause = pause;
        self
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The subject of the aggregate `id`.
    pub fn subject(&self, id: impl std::fmt::Display) -> String {
        crate::subject(C::Aggregate::AGGREGATE_TYPE, id)
    }

    /// Loads the aggregate `id` from its events. Events of a type its
    /// subject may not carry ([`ownership::check`]) are left out with a
    /// warning: a forged event never changes a decision or fails a load.
    pub async fn load(&self, id: impl std::fmt::Display) -> Result<Loaded<C::Aggregate>, StoreError> {
        let id = id.to_string();
        let subject = self.subject(&id);
        let stored = self.store.load(&subject).await?;
        let last_sequence = stored.last().map(|e| e.sequence);
        let mut events = Vec::with_capacity(stored.len());
        for event in stored {
            match ownership::check(&event.subject, &event.event_type) {
                Ok(()) => events.push(event),
                Err(reason) => {
                    warn!(sequence = event.sequence, %reason, "left a foreign event out of a load")
                }
            }
        }
        Ok(Loaded { id, subject, state: self.codec.initial(), events, domain: Vec::new(), last_sequence })
    }

    /// Loads and folds the aggregate `id`.
    pub async fn get(&self, id: impl std::fmt::Display) -> Result<Loaded<C::Aggregate>, ReadError> {
        let mut loaded = self.load(id).await?;
        self.fold(&mut loaded)?;
        Ok(loaded)
    }

    fn fold(&self, loaded: &mut Loaded<C::Aggregate>) -> Result<(), DecodeError> {
        for event in &loaded.events {
            if let Some(domain) = self.codec.decode(event)? {
                loaded.state.apply(&domain);
                loaded.domain.push(domain);
            }
        }
        Ok(())
    }

    /// Carries out one command: see the module documentation. `event_id`
    /// gives the id of each decided event, derived from the request (most
    /// from the event's type: [`by_type`]) so that a retry finds them. `decide` sees the aggregate as loaded and answers the
    /// command for the aggregate, or `None` to do nothing; it may run twice
    /// (after a conflict) and must not have effects of its own.
    pub async fn execute<E>(
        &self,
        request: &Request<C::Context>,
        event_id: &(dyn Fn(&Event<C>) -> Uuid + Sync),
        mut decide: impl FnMut(&Loaded<C::Aggregate>) -> Result<Option<Command<C>>, E>,
    ) -> Result<Executed<C::Aggregate>, CommandError<DomainError<C>, E>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let loaded = self.checked_load::<E, _>(request).await?;
            if request.done_in(&loaded) {
                return Ok(Executed::done_before(loaded, request));
            }
            let Some(command) = decide(&loaded).map_err(CommandError::Rejected)? else {
                return Ok(Executed::new(loaded, Vec::new(), false, None));
            };
            let now = request.now.unwrap_or_else(OffsetDateTime::now_utc);
            let decided = loaded.state.handle(command, now).map_err(CommandError::Domain)?;
            match self.append(loaded, decided, request, event_id).await {
                Err(CommandError::Conflict { .. }) if attempt < 2 && request.expected.is_none() => {
                    tokio::time::sleep(self.retry_pause).await;
                }
                other => return other,
            }
        }
    }

    /// Creates an aggregate without reading it first (the fast path of a
    /// submission): the command is decided on the empty state and appended
    /// with the expectation "no event yet". When the aggregate exists, a
    /// retry of this very request (its idempotency event stored) is done;
    /// anything else is decided again on the stored state, where the
    /// aggregate refuses it.
    pub async fn create<E>(
        &self,
        request: &Request<C::Context>,
        event_id: &(dyn Fn(&Event<C>) -> Uuid + Sync),
        command: Command<C>,
    ) -> Result<Executed<C::Aggregate>, CommandError<DomainError<C>, E>>
    where
        Command<C>: Clone,
    {
        let subject = self.subject(&request.id);
        let fresh = Loaded {
            id: request.id.clone(),
            subject,
            state: self.codec.initial(),
            events: Vec::new(),
            domain: Vec::new(),
            last_sequence: None,
        };
        let now = request.now.unwrap_or_else(OffsetDateTime::now_utc);
        let decided = fresh.state.handle(command.clone(), now).map_err(CommandError::Domain)?;
        match self.append(fresh, decided, request, event_id).await {
            Err(CommandError::Conflict { .. }) => {
                let existing =
                    Request { must_exist: false, expected: None, ..request.clone_without_context() };
                let loaded = self.checked_load::<E, ()>(&existing).await?;
                if request.done_in(&loaded) {
                    return Ok(Executed::done_before(loaded, request));
                }
                let decided = loaded.state.handle(command, now).map_err(CommandError::Domain)?;
                self.append(loaded, decided, request, event_id).await
            }
            other => other,
        }
    }

    /// Loads and folds the aggregate of `request`, and checks its existence
    /// and the caller's expectation (not when the request was carried out
    /// before: see [`Request::done_in`]). For commands whose decision needs
    /// more than [`Self::execute`] offers; [`Self::append`] stores it.
    pub async fn checked_load<E, Ctx>(
        &self,
        request: &Request<Ctx>,
    ) -> Result<Loaded<C::Aggregate>, CommandError<DomainError<C>, E>> {
        let mut loaded = self.load(&request.id).await.map_err(CommandError::Store)?;
        self.fold(&mut loaded).map_err(CommandError::Decode)?;
        if request.must_exist && !loaded.exists() {
            return Err(CommandError::NotFound { subject: loaded.subject });
        }
        if let Some(expected) = request.expected
            && !request.done_in(&loaded)
            && expected != loaded.current()
        {
            let actual = loaded.current();
            return Err(CommandError::WrongVersion { subject: loaded.subject, expected, actual });
        }
        Ok(loaded)
    }

    /// Appends events decided on `loaded`, each with the expectation of the
    /// one before; an event whose id is already stored is skipped (a retry
    /// of a request that was carried out, or half carried out).
    pub async fn append<E>(
        &self,
        mut loaded: Loaded<C::Aggregate>,
        decided: Vec<Event<C>>,
        request: &Request<C::Context>,
        event_id: &(dyn Fn(&Event<C>) -> Uuid + Sync),
    ) -> Result<Executed<C::Aggregate>, CommandError<DomainError<C>, E>> {
        // The state the command was decided on: what encoding sees.
        let before = loaded.state.clone();
        let mut appended = Vec::new();
        let mut duplicate = false;
        let skipped_none = decided.is_empty();
        // The sequence of the last decided event, appended or found stored.
        let mut position = None;
        for event in decided {
            let id = event_id(&event);
            if let Some(sequence) = loaded.sequence_of(id) {
                position = position.max(Some(sequence));
                continue;
            }
            let Encoded { event_type, schema_version, payload } =
                self.codec.encode(&event, &before, &request.context);
            let new = NewEvent {
                id,
                subject: loaded.subject.clone(),
                event_type,
                schema_version,
                payload,
                metadata: request.metadata.clone(),
            };
            match self.store.append(new.clone(), loaded.version()).await {
                Ok(done) => {
                    duplicate |= done.duplicate;
                    position = position.max(Some(done.sequence));
                    loaded.last_sequence = Some(done.sequence);
                    loaded.events.push(RecordedEvent::from_new(&new, done.sequence));
                    loaded.state.apply(&event);
                    loaded.domain.push(event.clone());
                    appended.push(event);
                }
                Err(StoreError::Conflict { .. }) => {
                    return Err(CommandError::Conflict { subject: loaded.subject });
                }
                Err(e) => return Err(CommandError::Store(e)),
            }
        }
        if duplicate {
            // Stored before, its acknowledgement lost: the stream has the
            // truth.
            let mut reloaded = self.load(&loaded.id).await.map_err(CommandError::Store)?;
            self.fold(&mut reloaded).map_err(CommandError::Decode)?;
            return Ok(Executed::new(reloaded, Vec::new(), true, position));
        }
        // Every decided event was stored before: a retry of a request
        // carried out in full.
        let already_done = appended.is_empty() && !skipped_none;
        Ok(Executed::new(loaded, appended, already_done, position))
    }
}
