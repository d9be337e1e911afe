//! The shared command path (`Repository`) against a real nats-server: the
//! decision is made on the loaded state, a retried request appends nothing,
//! a stale expectation is a typed error and never retried, a conflict with
//! another writer is retried once on the new state, and a forged event on
//! the subject never takes part.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use psirt_domain::{Aggregate, DomainEvent};
use psirt_eventstore::{
    CommandError, DecodeError, Encoded, EventCodec, EventStore, ExpectedVersion, Metadata, NewEvent,
    RecordedEvent, Repository, Request, StreamSettings,
};
use psirt_proto::events;
use psirt_testkit::NatsServer;
use time::OffsetDateTime;
use uuid::Uuid;

/// A small aggregate on the report subject: opened once, then notes.
#[derive(Debug, Clone, Default, PartialEq)]
struct Tally {
    title: Option<String>,
    notes: Vec<String>,
    version: u64,
}

#[derive(Debug, Clone, PartialEq)]
enum TallyEvent {
    Opened { title: String },
    Noted { text: String },
}

impl DomainEvent for TallyEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Opened { .. } => "ReportReceived",
            Self::Noted { .. } => "ReporterMessageAdded",
        }
    }
}

#[derive(Debug, Clone)]
enum TallyCommand {
    Open { title: String },
    Note { text: String },
}

#[derive(Debug, thiserror::Error, PartialEq)]
enum TallyError {
    #[error("already open")]
    AlreadyOpen,
    #[error("a note must not be empty")]
    EmptyNote,
}

impl Aggregate for Tally {
    type Command = TallyCommand;
    type Event = TallyEvent;
    type Error = TallyError;
    const AGGREGATE_TYPE: &'static str = "report";

    fn handle(&self, command: TallyCommand, _now: OffsetDateTime) -> Result<Vec<TallyEvent>, TallyError> {
        match command {
            TallyCommand::Open { .. } if self.title.is_some() => Err(TallyError::AlreadyOpen),
            TallyCommand::Open { title } => Ok(vec![TallyEvent::Opened { title }]),
            TallyCommand::Note { text } if text.is_empty() => Err(TallyError::EmptyNote),
            TallyCommand::Note { text } => Ok(vec![TallyEvent::Noted { text }]),
        }
    }

    fn apply(&mut self, event: &TallyEvent) {
        self.version += 1;
        match event {
            TallyEvent::Opened { title } => self.title = Some(title.clone()),
            TallyEvent::Noted { text } => self.notes.push(text.clone()),
        }
    }

    fn version(&self) -> u64 {
        self.version
    }
}

#[derive(Clone)]
struct TallyCodec;

impl EventCodec for TallyCodec {
    type Aggregate = Tally;
    type Context = ();

    fn decode(&self, event: &RecordedEvent) -> Result<Option<TallyEvent>, DecodeError> {
        if psirt_eventstore::is_type::<events::ReportReceived>(&event.event_type) {
            let e: events::ReportReceived = event.decode()?;
            return Ok(Some(TallyEvent::Opened { title: e.title }));
        }
        let e: events::ReporterMessageAdded = event.decode()?;
        Ok(Some(TallyEvent::Noted { text: e.body }))
    }

    fn encode(&self, event: &TallyEvent, _before: &Tally, _context: &()) -> Encoded {
        match event {
            TallyEvent::Opened { title } => {
                Encoded::message(&events::ReportReceived { title: title.clone(), ..Default::default() })
            }
            TallyEvent::Noted { text } => {
                Encoded::message(&events::ReporterMessageAdded { body: text.clone(), ..Default::default() })
            }
        }
    }
}

async fn repository(nats: &NatsServer) -> anyhow::Result<Repository<TallyCodec>> {
    let store = EventStore::open(nats.connect().await?, &StreamSettings::managed()).await?;
    Ok(Repository::new(store, TallyCodec))
}

fn metadata() -> Metadata {
    Metadata {
        causation_id: Some("req-1".into()),
        correlation_id: None,
        actor: Some("alice".into()),
        actor_scopes: None,
    }
}

/// Event ids derived from a request key and the event type, as services do.
fn ids(key: &'static str) -> impl Fn(&str) -> Uuid + Sync {
    move |event_type: &str| Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{key}/{event_type}").as_bytes())
}

/// The same ids, by decided event.
fn by(key: &'static str) -> impl Fn(&TallyEvent) -> Uuid + Sync {
    psirt_eventstore::repository::by_type(ids(key))
}

fn request(id: Uuid, key: &'static str, must_exist: bool) -> Request<()> {
    Request { must_exist, idempotency: vec![ids(key)("ReportReceived")], ..Request::new(id, metadata()) }
}

fn note_request(id: Uuid, key: &'static str) -> Request<()> {
    Request { idempotency: vec![ids(key)("ReporterMessageAdded")], ..Request::new(id, metadata()) }
}

type Outcome = Result<psirt_eventstore::Executed<Tally>, CommandError<TallyError, String>>;

async fn open(repo: &Repository<TallyCodec>, id: Uuid, key: &'static str, title: &str) -> Outcome {
    let title = title.to_owned();
    repo.execute(&request(id, key, false), &by(key), |_| {
        Ok(Some(TallyCommand::Open { title: title.clone() }))
    })
    .await
}

async fn note(
    repo: &Repository<TallyCodec>,
    request: &Request<()>,
    key: &'static str,
    text: &str,
) -> Outcome {
    let text = text.to_owned();
    repo.execute(request, &by(key), |_| Ok(Some(TallyCommand::Note { text: text.clone() }))).await
}

#[tokio::test]
async fn a_command_is_decided_on_the_loaded_state_and_stored_with_its_ids_and_envelope() -> anyhow::Result<()>
{
    let nats = NatsServer::start().await?;
    let repo = repository(&nats).await?;
    let id = Uuid::now_v7();

    let opened = open(&repo, id, "open", "Heap overflow").await?;
    assert!(!opened.already_done);
    assert_eq!(opened.appended, vec![TallyEvent::Opened { title: "Heap overflow".into() }]);
    let noted = note(&repo, &note_request(id, "n1"), "n1", "first").await?;
    assert_eq!(noted.loaded.state.notes, vec!["first".to_owned()]);
    assert_eq!(noted.loaded.state.title.as_deref(), Some("Heap overflow"));

    // What the command answered is what the stream holds.
    let stored = repo.store().load(&repo.subject(id)).await?;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].id, Some(ids("open")("ReportReceived")));
    assert_eq!(stored[1].id, Some(ids("n1")("ReporterMessageAdded")));
    assert_eq!(stored[1].event_type, "psirt.events.v1.ReporterMessageAdded");
    assert_eq!(stored[1].schema_version, 1);
    assert_eq!(stored[1].metadata.actor.as_deref(), Some("alice"));
    assert_eq!(noted.loaded.current(), stored[1].sequence);
    let reloaded = repo.get(id).await?;
    assert_eq!(reloaded.state, noted.loaded.state);
    assert_eq!(reloaded.creator(), Some("alice"));
    Ok(())
}

#[tokio::test]
async fn a_retried_request_is_answered_as_done_and_appends_nothing() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let repo = repository(&nats).await?;
    let id = Uuid::now_v7();
    let first = open(&repo, id, "open", "Heap overflow").await?;
    let note_req = note_request(id, "n1");
    let noted = note(&repo, &note_req, "n1", "first").await?;
    note(&repo, &note_request(id, "n2"), "n2", "second").await?;

    // The retry of the open says done (not AlreadyOpen); the retry of the
    // first note, with the expectation it had then, is done too although
    // the aggregate moved on.
    let again = open(&repo, id, "open", "Heap overflow").await?;
    assert!(again.already_done);
    assert!(again.appended.is_empty());
    let stale = Request { expected: Some(first.loaded.current()), ..note_req.clone() };
    let again = note(&repo, &stale, "n1", "first").await?;
    assert!(again.already_done);
    assert_eq!(again.loaded.state.notes, vec!["first".to_owned(), "second".to_owned()]);

    let stored = repo.store().load(&repo.subject(id)).await?;
    assert_eq!(stored.len(), 3, "nothing appended twice");
    assert!(noted.loaded.current() < stored[2].sequence);
    Ok(())
}

#[tokio::test]
async fn a_stale_expected_version_is_a_typed_error_and_never_retried() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let repo = repository(&nats).await?;
    let id = Uuid::now_v7();
    let opened = open(&repo, id, "open", "t").await?;
    let read_at = opened.loaded.current();
    note(&repo, &note_request(id, "n1"), "n1", "someone else's").await?;

    let decisions = AtomicUsize::new(0);
    let stale = Request { expected: Some(read_at), ..note_request(id, "n2") };
    let result = repo
        .execute(&stale, &by("n2"), |_| {
            decisions.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(Some(TallyCommand::Note { text: "mine".into() }))
        })
        .await;
    match result {
        Err(CommandError::WrongVersion { expected, actual, subject }) => {
            assert_eq!(expected, read_at);
            assert!(actual > read_at);
            assert_eq!(subject, repo.subject(id));
        }
        other => panic!("expected WrongVersion, got {other:?}"),
    }
    assert_eq!(decisions.load(Ordering::SeqCst), 0, "nothing decided on a version the caller did not read");
    assert_eq!(repo.store().load(&repo.subject(id)).await?.len(), 2);

    // With the right expectation it goes through.
    let current = Request { expected: Some(repo.get(id).await?.current()), ..note_request(id, "n2") };
    assert_eq!(note(&repo, &current, "n2", "mine").await?.appended.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_with_another_writer_is_retried_once_on_the_new_state() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let repo = repository(&nats).await?;
    let id = Uuid::now_v7();
    open(&repo, id, "open", "t").await?;
    let subject = repo.subject(id);

    // The first decision races a writer that lands between load and append.
    let decisions = AtomicUsize::new(0);
    let seen = std::sync::Mutex::new(Vec::new());
    let result = repo
        .execute(&note_request(id, "mine"), &by("mine"), |loaded| {
            seen.lock().unwrap().push(loaded.state.notes.clone());
            if decisions.fetch_add(1, Ordering::SeqCst) == 0 {
                interfere(repo.store(), &subject, "theirs");
            }
            Ok::<_, String>(Some(TallyCommand::Note { text: "mine".into() }))
        })
        .await?;
    assert_eq!(decisions.load(Ordering::SeqCst), 2, "decided again after the conflict");
    assert_eq!(*seen.lock().unwrap(), vec![Vec::<String>::new(), vec!["theirs".to_owned()]]);
    assert_eq!(result.loaded.state.notes, vec!["theirs".to_owned(), "mine".to_owned()]);
    assert_eq!(repo.get(id).await?.state.notes, vec!["theirs".to_owned(), "mine".to_owned()]);

    // A writer that lands before every attempt: a typed conflict after two.
    let decisions = AtomicUsize::new(0);
    let result = repo
        .execute(&note_request(id, "busy"), &by("busy"), |_| {
            let n = decisions.fetch_add(1, Ordering::SeqCst);
            interfere(repo.store(), &subject, &format!("theirs {n}"));
            Ok::<_, String>(Some(TallyCommand::Note { text: "mine again".into() }))
        })
        .await;
    assert!(
        matches!(result, Err(CommandError::Conflict { ref subject }) if *subject == repo.subject(id)),
        "{result:?}"
    );
    assert_eq!(decisions.load(Ordering::SeqCst), 2, "retried once, not forever");
    let notes = repo.get(id).await?.state.notes;
    assert!(!notes.contains(&"mine again".to_owned()));

    // With the caller's own expectation a conflict is not retried.
    let decisions = AtomicUsize::new(0);
    let expected = Request { expected: Some(repo.get(id).await?.current()), ..note_request(id, "exp") };
    let result = repo
        .execute(&expected, &by("exp"), |_| {
            decisions.fetch_add(1, Ordering::SeqCst);
            interfere(repo.store(), &subject, "theirs, last");
            Ok::<_, String>(Some(TallyCommand::Note { text: "mine, expected".into() }))
        })
        .await;
    assert!(matches!(result, Err(CommandError::Conflict { .. })), "{result:?}");
    assert_eq!(decisions.load(Ordering::SeqCst), 1);
    Ok(())
}

/// Another writer's note, appended with the right expectation, from inside
/// a (synchronous) decision: the runtime has worker threads to drive it.
fn interfere(store: &EventStore, subject: &str, text: &str) {
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(interfere_now(store, subject, text))
    });
}

async fn interfere_now(store: &EventStore, subject: &str, text: &str) {
    let last = store.last_sequence(subject).await.expect("last sequence");
    let event = NewEvent::from_message(
        Uuid::now_v7(),
        subject.to_owned(),
        &events::ReporterMessageAdded { body: text.to_owned(), ..Default::default() },
        Metadata::default(),
    );
    store
        .append(event, last.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exactly))
        .await
        .expect("interfering append");
}

#[tokio::test]
async fn refusals_are_typed_and_append_nothing() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let repo = repository(&nats).await?;
    let id = Uuid::now_v7();

    let missing = note(&repo, &note_request(id, "n"), "n", "x").await;
    assert!(
        matches!(missing, Err(CommandError::NotFound { ref subject }) if *subject == repo.subject(id)),
        "{missing:?}"
    );

    open(&repo, id, "open", "t").await?;
    let twice = open(&repo, id, "open-again", "t").await;
    assert!(matches!(twice, Err(CommandError::Domain(TallyError::AlreadyOpen))), "{twice:?}");
    let empty = note(&repo, &note_request(id, "empty"), "empty", "").await;
    assert!(matches!(empty, Err(CommandError::Domain(TallyError::EmptyNote))), "{empty:?}");
    let rejected = repo
        .execute(&note_request(id, "no"), &by("no"), |_| {
            Err::<Option<TallyCommand>, _>("not yours".to_owned())
        })
        .await;
    assert!(matches!(rejected, Err(CommandError::Rejected(ref why)) if why == "not yours"), "{rejected:?}");
    let nothing = repo.execute(&note_request(id, "noop"), &by("noop"), |_| Ok::<_, String>(None)).await?;
    assert!(nothing.appended.is_empty() && !nothing.already_done);

    assert_eq!(repo.store().load(&repo.subject(id)).await?.len(), 1, "only the open is stored");
    Ok(())
}

#[tokio::test]
async fn a_half_carried_out_request_appends_only_what_is_missing() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let repo = repository(&nats).await?;
    let id = Uuid::now_v7();
    // An earlier attempt stored the first of its two events, then died.
    let first = NewEvent::from_message(
        ids("both")("ReportReceived"),
        repo.subject(id),
        &events::ReportReceived { title: "t".into(), ..Default::default() },
        metadata(),
    );
    repo.store().append(first, ExpectedVersion::NoStream).await?;

    let request = Request { must_exist: false, ..Request::new(id, metadata()) };
    let done = repo
        .execute(&request, &by("both"), |loaded| {
            // Decided on the state the earlier attempt would have seen.
            assert!(loaded.exists());
            Ok::<_, String>(Some(TallyCommand::Note { text: "n".into() }))
        })
        .await?;
    assert_eq!(done.appended, vec![TallyEvent::Noted { text: "n".into() }]);

    // Appending a decision whose first event is stored: only the second
    // goes in; a decision whose events are all stored is done.
    let fresh = Uuid::now_v7();
    let request = Request { must_exist: false, ..Request::new(fresh, metadata()) };
    let decided = vec![TallyEvent::Opened { title: "p".into() }, TallyEvent::Noted { text: "n".into() }];
    let stored_first = NewEvent::from_message(
        ids("pair")("ReportReceived"),
        repo.subject(fresh),
        &events::ReportReceived { title: "p".into(), ..Default::default() },
        metadata(),
    );
    repo.store().append(stored_first, ExpectedVersion::NoStream).await?;
    let mut loaded_now = repo.get(fresh).await?;
    let half = repo.append::<String>(loaded_now, decided.clone(), &request, &by("pair")).await?;
    assert_eq!(half.appended, vec![TallyEvent::Noted { text: "n".into() }]);
    assert!(!half.already_done);
    loaded_now = repo.get(fresh).await?;
    let whole = repo.append::<String>(loaded_now, decided, &request, &by("pair")).await?;
    assert!(whole.already_done && whole.appended.is_empty());
    assert_eq!(repo.store().load(&repo.subject(fresh)).await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_forged_event_on_the_subject_never_takes_part_and_the_next_append_expects_it() -> anyhow::Result<()>
{
    let nats = NatsServer::start().await?;
    let repo = repository(&nats).await?;
    let id = Uuid::now_v7();
    open(&repo, id, "open", "t").await?;
    // A message of another aggregate's type on this report's subject.
    let forged = NewEvent {
        id: Uuid::now_v7(),
        subject: repo.subject(id),
        event_type: "psirt.events.v1.CaseDisclosed".into(),
        schema_version: 1,
        payload: Bytes::from_static(b"\x0a\x03abc"),
        metadata: Metadata::default(),
    };
    let forged_at = repo.store().append(forged, ExpectedVersion::Any).await?.sequence;

    let loaded = repo.get(id).await?;
    assert_eq!(loaded.events.len(), 1, "the forged event is left out");
    assert_eq!(loaded.current(), forged_at, "but the next append expects the subject's real last sequence");
    let noted = note(&repo, &note_request(id, "n"), "n", "after").await?;
    assert_eq!(noted.loaded.state.notes, vec!["after".to_owned()]);
    Ok(())
}
