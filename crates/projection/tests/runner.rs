//! Projection runner against a real nats-server and both SQL backends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use psirt_eventstore::{
    DecodeError, EventStore, ExpectedVersion, Metadata, NewEvent, RecordedEvent, StreamSettings,
};
use psirt_projection::{
    ApplyError, Pipeline, PreparesBatches, Projection, ProjectionError, ProjectionRunner, ProjectionSettings,
    UndecodablePolicy,
};
use psirt_testkit::{BACKENDS, Backend, NatsServer, TestDatabase, eventually};
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::watch;
use uuid::Uuid;

/// The tally event's message: only its name and version matter here.
#[derive(Clone, PartialEq, prost::Message)]
struct Tallied {}

impl prost::Name for Tallied {
    const NAME: &'static str = "Tallied";
    const PACKAGE: &'static str = "psirt.test.v1";
}

impl psirt_proto::EventSchema for Tallied {}

/// Counts events per subject and concatenates their bodies: applying an
/// event twice shows in both.
struct Tally;

impl Projection for Tally {
    fn name(&self) -> &str {
        "tally"
    }

    async fn apply(&self, conn: &mut AnyConnection, event: &RecordedEvent) -> Result<(), ApplyError> {
        if event.schema_version != 1 {
            // Only today's version is raw text; the versioned decode refuses others.
            event.decode::<Tallied>()?;
        }
        let body = String::from_utf8_lossy(&event.payload).to_string();
        if body.starts_with("garbage") {
            return Err(DecodeError::Payload {
                event_type: event.event_type.clone(),
                sequence: event.sequence,
                message: "not a tally event".to_owned(),
            }
            .into());
        }
        sqlx::query(
            "INSERT INTO tally (subject, n, bodies) VALUES ($1, 1, $2)
             ON CONFLICT (subject) DO UPDATE SET n = tally.n + 1, bodies = tally.bodies || ',' || excluded.bodies",
        )
        .bind(&event.subject)
        .bind(body)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM tally").execute(&mut *conn).await?;
        Ok(())
    }
}

/// The tally with batches folded ahead of their transaction, as a
/// pipelined rebuild runs them: a fold reads the counts it continues from
/// (the carry-over of the batch before, else the database) and the write
/// stores absolute values, so a fold that read a count the batch before it
/// had not committed yet loses events, and one that read a carry-over of a
/// batch that was never committed counts them twice.
#[derive(Default)]
struct PreparedTally {
    /// subject → (last sequence of the batch that wrote it, n, bodies)
    carry: Mutex<HashMap<String, (u64, i64, String)>>,
    writes: AtomicUsize,
    /// The write (counted from 1) that fails; 0: none.
    fail_write: AtomicUsize,
    discarded: AtomicUsize,
}

type TallyRows = Vec<(String, i64, String)>;

impl PreparedTally {
    fn carried(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, i64, String)>> {
        self.carry.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Projection for PreparedTally {
    fn name(&self) -> &str {
        "tally"
    }

    async fn apply(&self, conn: &mut AnyConnection, event: &RecordedEvent) -> Result<(), ApplyError> {
        Tally.apply(conn, event).await
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        self.prepared_discarded();
        Tally.reset(conn).await
    }

    const PIPELINE: Option<Pipeline<Self>> = Some(Pipeline::prepared());
}

impl PreparesBatches for PreparedTally {
    type Prepared = TallyRows;

    async fn prepare(&self, reader: &AnyPool, events: &[RecordedEvent]) -> Result<TallyRows, sqlx::Error> {
        let mut rows: TallyRows = Vec::new();
        for event in events {
            let at = match rows.iter().position(|r| r.0 == event.subject) {
                Some(at) => at,
                None => {
                    let carried = self.carried().remove(&event.subject).map(|(_, n, b)| (n, b));
                    let current = match carried {
                        Some(current) => Some(current),
                        None => {
                            sqlx::query_as("SELECT n, bodies FROM tally WHERE subject = $1")
                                .bind(&event.subject)
                                .fetch_optional(reader)
                                .await?
                        }
                    };
                    let (n, bodies) = current.unwrap_or((0, String::new()));
                    rows.push((event.subject.clone(), n, bodies));
                    rows.len() - 1
                }
            };
            let body = String::from_utf8_lossy(&event.payload);
            let row = &mut rows[at];
            row.1 += 1;
            row.2 = if row.2.is_empty() { body.to_string() } else { format!("{},{body}", row.2) };
        }
        let last = events.last().map_or(0, |e| e.sequence);
        let mut carry = self.carried();
        for (subject, n, bodies) in &rows {
            carry.insert(subject.clone(), (last, *n, bodies.clone()));
        }
        Ok(rows)
    }

    async fn write_prepared(
        &self,
        conn: &mut AnyConnection,
        rows: TallyRows,
    ) -> Result<Vec<(usize, DecodeError)>, sqlx::Error> {
        let write = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        for (subject, n, bodies) in rows {
            sqlx::query(
                "INSERT INTO tally (subject, n, bodies) VALUES ($1, $2, $3)
                 ON CONFLICT (subject) DO UPDATE SET n = excluded.n, bodies = excluded.bodies",
            )
            .bind(subject)
            .bind(n)
            .bind(bodies)
            .execute(&mut *conn)
            .await?;
        }
        // After the rows: the transaction must take them back.
        if write == self.fail_write.load(Ordering::SeqCst) {
            return Err(sqlx::Error::Protocol("injected failure of a prepared write".to_owned()));
        }
        Ok(Vec::new())
    }

    fn prepared_committed(&self, checkpoint: u64) {
        self.carried().retain(|_, (written_by, ..)| *written_by > checkpoint);
    }

    fn prepared_discarded(&self) {
        self.discarded.fetch_add(1, Ordering::SeqCst);
        self.carried().clear();
    }
}

async fn pool(db: &TestDatabase) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(4).connect(db.url()).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS tally (subject TEXT PRIMARY KEY, n BIGINT NOT NULL, bodies TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    Ok(pool)
}

/// The test stream's rule: `thing` aggregates carry tally events only.
fn tally_rule(subject: &str, event_type: &str) -> Result<(), String> {
    if subject.starts_with("psirt.evt.thing.") && event_type == "psirt.test.v1.Tallied" {
        Ok(())
    } else {
        Err(format!("{event_type} does not belong to {subject}"))
    }
}

async fn publish(store: &EventStore, subject: &str, body: &str) -> anyhow::Result<u64> {
    publish_as(store, subject, "psirt.test.v1.Tallied", body).await
}

async fn publish_as(store: &EventStore, subject: &str, event_type: &str, body: &str) -> anyhow::Result<u64> {
    publish_versioned(store, subject, event_type, 1, body).await
}

async fn publish_versioned(
    store: &EventStore,
    subject: &str,
    event_type: &str,
    schema_version: u32,
    body: &str,
) -> anyhow::Result<u64> {
    let event = NewEvent {
        id: Uuid::now_v7(),
        subject: subject.to_owned(),
        event_type: event_type.to_owned(),
        schema_version,
        payload: Bytes::from(body.to_owned()),
        metadata: Metadata::default(),
    };
    Ok(store.append(event, ExpectedVersion::Any).await?.sequence)
}

async fn tally(pool: &AnyPool) -> anyhow::Result<Vec<(String, i64, String)>> {
    Ok(sqlx::query_as("SELECT subject, n, bodies FROM tally ORDER BY subject").fetch_all(pool).await?)
}

fn settings() -> ProjectionSettings {
    ProjectionSettings {
        batch_size: 7,
        ack_wait: Duration::from_secs(1),
        lease: Duration::from_secs(2),
        ..ProjectionSettings::default()
    }
}

async fn wait_checkpoint(pool: &AnyPool, at_least: u64) -> anyhow::Result<()> {
    eventually(Duration::from_secs(20), "projection checkpoint", || async {
        let cp = psirt_projection::checkpoint(pool, "tally").await.ok()?;
        (cp >= at_least).then_some(())
    })
    .await
}

async fn seed(store: &EventStore, n: usize) -> anyhow::Result<u64> {
    let mut last = 0;
    for i in 0..n {
        last = publish(store, &format!("psirt.evt.thing.{}", i % 5), &format!("e{i}")).await?;
    }
    Ok(last)
}

#[tokio::test]
async fn killed_between_commit_and_ack_applies_nothing_twice() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let nats = NatsServer::start().await?;
        let db = TestDatabase::new(backend).await?;
        let pool = pool(&db).await?;
        let store = EventStore::open(nats.connect().await?, &StreamSettings::managed()).await?;
        let last = seed(&store, 40).await?;

        // First runner: stops right after its second commit, before the ack.
        let commits = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let c = Arc::clone(&commits);
        let crashing = ProjectionRunner::new(Tally, pool.clone(), store.clone(), settings())
            .with_event_rule(tally_rule)
            .with_after_commit_hook(move |_| c.fetch_add(1, Ordering::SeqCst) == 1);
        let (_tx, rx) = watch::channel(false);
        let result = crashing.run(rx).await;
        assert!(matches!(result, Err(ProjectionError::StoppedByHook)), "{backend:?}: {result:?}");
        let committed = psirt_projection::checkpoint(&pool, "tally").await?;
        assert_eq!(committed, 14, "{backend:?}: two batches of 7 committed");

        // A fresh runner (a restarted process) finishes the stream.
        let runner =
            ProjectionRunner::new(Tally, pool.clone(), store.clone(), settings()).with_event_rule(tally_rule);
        let (stop, rx) = watch::channel(false);
        let handle = tokio::spawn(runner.run(rx));
        wait_checkpoint(&pool, last).await?;
        stop.send(true)?;
        handle.await??;

        let rows = tally(&pool).await?;
        let total: i64 = rows.iter().map(|r| r.1).sum();
        assert_eq!(total, 40, "{backend:?}: every event applied exactly once: {rows:?}");
        for (subject, n, bodies) in &rows {
            assert_eq!(bodies.split(',').count() as i64, *n, "{backend:?} {subject}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn events_at_or_below_the_checkpoint_are_skipped() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let nats = NatsServer::start().await?;
        let db = TestDatabase::new(backend).await?;
        let pool = pool(&db).await?;
        let store = EventStore::open(nats.connect().await?, &StreamSettings::managed()).await?;
        seed(&store, 8).await?;
        let mut all = Vec::new();
        for seq in 1..=8 {
            all.push(store.get(seq).await?.expect("event exists"));
        }
        let runner =
            ProjectionRunner::new(Tally, pool.clone(), store.clone(), settings()).with_event_rule(tally_rule);
        psirt_projection::ensure_schema(&pool).await?;
        let first = runner.apply_batch(&all[0..5]).await?;
        assert_eq!((first.applied, first.checkpoint), (5, 5));
        // a redelivery overlapping what was committed
        let second = runner.apply_batch(&all[2..8]).await?;
        assert_eq!((second.applied, second.skipped_seen, second.checkpoint), (3, 3, 8), "{backend:?}");
        let total: i64 = tally(&pool).await?.iter().map(|r| r.1).sum();
        assert_eq!(total, 8, "{backend:?}");
    }
    Ok(())
}

#[tokio::test]
async fn rebuild_equals_the_incremental_result() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let nats = NatsServer::start().await?;
        let db = TestDatabase::new(backend).await?;
        let pool = pool(&db).await?;
        let store = EventStore::open(nats.connect().await?, &StreamSettings::managed()).await?;
        seed(&store, 30).await?;

        let runner =
            ProjectionRunner::new(Tally, pool.clone(), store.clone(), settings()).with_event_rule(tally_rule);
        let (stop, rx) = watch::channel(false);
        let handle = tokio::spawn(runner.run(rx));
        wait_checkpoint(&pool, 30).await?;
        // more events while it runs: incremental application
        let last = seed(&store, 25).await?;
        wait_checkpoint(&pool, last).await?;
        stop.send(true)?;
        handle.await??;
        let incremental = tally(&pool).await?;
        assert_eq!(incremental.iter().map(|r| r.1).sum::<i64>(), 55);

        let runner =
            ProjectionRunner::new(Tally, pool.clone(), store.clone(), settings()).with_event_rule(tally_rule);
        let seen = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&seen);
        let target = runner
            .rebuild(move |done, target| {
                if done == target {
                    s.store(true, Ordering::SeqCst);
                }
            })
            .await?;
        assert_eq!(target, last);
        assert!(seen.load(Ordering::SeqCst), "progress reported completion");
        assert_eq!(tally(&pool).await?, incremental, "{backend:?}");
        assert_eq!(psirt_projection::checkpoint(&pool, "tally").await?, last);
    }
    Ok(())
}

#[tokio::test]
async fn undecodable_events_are_parked_or_skipped_never_stalling() -> anyhow::Result<()> {
    for (backend, policy) in [
        (Backend::Sqlite, UndecodablePolicy::Park),
        (Backend::Postgres, UndecodablePolicy::Park),
        (Backend::Sqlite, UndecodablePolicy::Skip),
    ] {
        let nats = NatsServer::start().await?;
        let db = TestDatabase::new(backend).await?;
        let pool = pool(&db).await?;
        let store = EventStore::open(nats.connect().await?, &StreamSettings::managed()).await?;
        publish(&store, "psirt.evt.thing.a", "ok1").await?;
        let bad = publish(&store, "psirt.evt.thing.a", "garbage!").await?;
        // Written by a later build: parked whatever the policy.
        let newer =
            publish_versioned(&store, "psirt.evt.thing.a", "psirt.test.v1.Tallied", 2, "from v2").await?;
        let last = publish(&store, "psirt.evt.thing.a", "ok2").await?;

        let settings = ProjectionSettings { on_undecodable: policy, ..settings() };
        let runner =
            ProjectionRunner::new(Tally, pool.clone(), store.clone(), settings).with_event_rule(tally_rule);
        let progress = runner.progress();
        let parked_events = runner.parked_events();
        let (stop, rx) = watch::channel(false);
        let handle = tokio::spawn(runner.run(rx));
        wait_checkpoint(&pool, last).await?;
        stop.send(true)?;
        handle.await??;

        assert_eq!(tally(&pool).await?, vec![("psirt.evt.thing.a".to_owned(), 2, "ok1,ok2".to_owned())]);
        assert_eq!(progress.undecodable.load(Ordering::SeqCst), 2);
        let parked = parked_events.list(0, 100).await?;
        let newer_parked = parked.iter().find(|p| p.sequence == newer).expect("the newer version is parked");
        assert!(newer_parked.error.contains("schema version 2"), "{}", newer_parked.error);
        match policy {
            UndecodablePolicy::Park => {
                assert_eq!(parked.len(), 2, "{backend:?}");
                assert_eq!(parked[0].sequence, bad);
                assert!(parked[0].error.contains("not a tally event"));
            }
            UndecodablePolicy::Skip => assert_eq!(parked.len(), 1, "only the newer version"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_second_runner_stays_on_standby_until_the_lease_is_released() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let db = TestDatabase::new(Backend::Postgres).await?;
    let pool = pool(&db).await?;
    let store = EventStore::open(nats.connect().await?, &StreamSettings::managed()).await?;
    let last = seed(&store, 10).await?;

    let active =
        ProjectionRunner::new(Tally, pool.clone(), store.clone(), settings()).with_event_rule(tally_rule);
    let (stop_a, rx_a) = watch::channel(false);
    let handle_a = tokio::spawn(active.run(rx_a));
    wait_checkpoint(&pool, last).await?;

    let standby =
        ProjectionRunner::new(Tally, pool.clone(), store.clone(), settings()).with_event_rule(tally_rule);
    let standby_progress = standby.progress();
    let (stop_b, rx_b) = watch::channel(false);
    let handle_b = tokio::spawn(standby.run(rx_b));
    let more = seed(&store, 10).await?;
    wait_checkpoint(&pool, more).await?;
    assert_eq!(standby_progress.applied.load(Ordering::SeqCst), 0, "standby applied nothing");

    // the active one stops and releases its lease: the standby takes over
    stop_a.send(true)?;
    handle_a.await??;
    let last = seed(&store, 5).await?;
    wait_checkpoint(&pool, last).await?;
    assert_eq!(standby_progress.applied.load(Ordering::SeqCst), 5);
    stop_b.send(true)?;
    handle_b.await??;
    assert_eq!(tally(&pool).await?.iter().map(|r| r.1).sum::<i64>(), 25);
    Ok(())
}

/// A stream restored from a backup older than the read model: its new
/// events get sequences the checkpoint has passed. The runner refuses to
/// go on (they would be skipped silently) and names the problem.
#[tokio::test]
async fn a_stream_older_than_the_read_model_stops_the_projection() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let pool = pool(&db).await?;
    let store = EventStore::open(nats.connect().await?, &StreamSettings::managed()).await?;
    let last = seed(&store, 10).await?;
    let runner =
        ProjectionRunner::new(Tally, pool.clone(), store.clone(), settings()).with_event_rule(tally_rule);
    runner.catch_up(last).await?;
    assert_eq!(psirt_projection::checkpoint(&pool, "tally").await?, 10);

    // The stream comes back from an older backup: 3 events.
    store.jetstream().delete_stream(store.stream_name()).await?;
    let restored = EventStore::open(nats.connect().await?, &StreamSettings::managed()).await?;
    seed(&restored, 3).await?;
    let runner =
        ProjectionRunner::new(Tally, pool.clone(), restored.clone(), settings()).with_event_rule(tally_rule);
    let result = runner.catch_up(20).await;
    match result {
        Err(ProjectionError::CheckpointAhead { checkpoint, stream_last, .. }) => {
            assert_eq!((checkpoint, stream_last), (10, 3));
        }
        other => panic!("expected CheckpointAhead, got {other:?}"),
    }
    let total: i64 = tally(&pool).await?.iter().map(|r| r.1).sum();
    assert_eq!(total, 10, "nothing of the restored stream applied over the newer read model");
    Ok(())
}

/// The tally of `store`'s stream applied one batch after the other.
async fn incremental(pool: &AnyPool, store: &EventStore, last: u64) -> anyhow::Result<TallyRows> {
    let runner =
        ProjectionRunner::new(Tally, pool.clone(), store.clone(), settings()).with_event_rule(tally_rule);
    let (stop, rx) = watch::channel(false);
    let handle = tokio::spawn(runner.run(rx));
    wait_checkpoint(pool, last).await?;
    stop.send(true)?;
    handle.await??;
    tally(pool).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_rebuild_equals_the_incremental_result() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let nats = NatsServer::start().await?;
        let db = TestDatabase::new(backend).await?;
        let pool = pool(&db).await?;
        let store = EventStore::open(nats.connect().await?, &StreamSettings::managed()).await?;
        // five subjects in turn: every batch of three continues counts the
        // batch before it wrote
        let last = seed(&store, 90).await?;
        let expected = incremental(&pool, &store, last).await?;
        assert_eq!(expected.iter().map(|r| r.1).sum::<i64>(), 90);

        let settings = ProjectionSettings { rebuild_batch_size: 3, ..settings() };
        let runner = ProjectionRunner::new(PreparedTally::default(), pool.clone(), store.clone(), settings)
            .with_event_rule(tally_rule);
        assert_eq!(runner.rebuild(|_, _| {}).await?, last);
        assert_eq!(tally(&pool).await?, expected, "{backend:?}");
        assert!(
            runner.projection().writes.load(Ordering::SeqCst) >= 30,
            "{backend:?}: batches of at most three"
        );
        assert_eq!(psirt_projection::checkpoint(&pool, "tally").await?, last);
        assert!(
            runner.projection().carried().is_empty(),
            "{backend:?}: nothing carried over once all is committed"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pipelined_write_rolls_back_and_drops_the_carry_over() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let nats = NatsServer::start().await?;
        let db = TestDatabase::new(backend).await?;
        let pool = pool(&db).await?;
        let store = EventStore::open(nats.connect().await?, &StreamSettings::managed()).await?;
        let last = seed(&store, 60).await?;
        let expected = incremental(&pool, &store, last).await?;

        let settings = ProjectionSettings { rebuild_batch_size: 4, ..settings() };
        let projection = PreparedTally::default();
        projection.fail_write.store(5, Ordering::SeqCst);
        let runner = ProjectionRunner::new(projection, pool.clone(), store.clone(), settings)
            .with_event_rule(tally_rule);
        let failed = runner.rebuild(|_, _| {}).await;
        assert!(failed.is_err(), "{backend:?}: the injected failure ends the rebuild: {failed:?}");
        // four batches of four committed; the fifth rolled back
        assert_eq!(psirt_projection::checkpoint(&pool, "tally").await?, 16, "{backend:?}");
        assert_eq!(tally(&pool).await?.iter().map(|r| r.1).sum::<i64>(), 16, "{backend:?}");
        assert!(runner.projection().discarded.load(Ordering::SeqCst) >= 2, "{backend:?}: reset and failure");
        assert!(runner.projection().carried().is_empty(), "{backend:?}");

        // Catching up from the checkpoint ends where the incremental run did.
        runner.catch_up(last).await?;
        assert_eq!(tally(&pool).await?, expected, "{backend:?}: nothing lost, nothing twice");
    }
    Ok(())
}

#[tokio::test]
async fn a_foreign_event_type_on_a_subject_is_parked_never_applied() -> anyhow::Result<()> {
    // Skip is the lenient policy for undecodable events; a foreign event is
    // parked whatever the policy, on both databases.
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let nats = NatsServer::start().await?;
        let db = TestDatabase::new(backend).await?;
        let pool = pool(&db).await?;
        let store = EventStore::open(nats.connect().await?, &StreamSettings::managed()).await?;
        publish(&store, "psirt.evt.thing.a", "ok1").await?;
        // Decodes as a tally event, but its type is not one of the aggregate's:
        // a forgery by whoever may publish on the subject.
        let forged = publish_as(&store, "psirt.evt.thing.a", "psirt.test.v1.Disclosed", "forged").await?;
        let elsewhere = publish_as(&store, "psirt.evt.other.b", "psirt.test.v1.Tallied", "elsewhere").await?;
        let last = publish(&store, "psirt.evt.thing.a", "ok2").await?;

        let settings = ProjectionSettings { on_undecodable: UndecodablePolicy::Skip, ..settings() };
        let runner =
            ProjectionRunner::new(Tally, pool.clone(), store.clone(), settings).with_event_rule(tally_rule);
        let progress = runner.progress();
        let parked_events = runner.parked_events();
        let (stop, rx) = watch::channel(false);
        let handle = tokio::spawn(runner.run(rx));
        wait_checkpoint(&pool, last).await?;
        stop.send(true)?;
        handle.await??;

        assert_eq!(
            tally(&pool).await?,
            vec![("psirt.evt.thing.a".to_owned(), 2, "ok1,ok2".to_owned())],
            "{backend:?}: only the aggregate's own events were applied"
        );
        assert_eq!(progress.foreign.load(Ordering::SeqCst), 2);
        assert_eq!(progress.undecodable.load(Ordering::SeqCst), 0);
        let parked = parked_events.list(0, 100).await?;
        assert_eq!(
            parked.iter().map(|p| p.sequence).collect::<Vec<_>>(),
            vec![forged, elsewhere],
            "{backend:?}"
        );
        assert_eq!(parked[0].event_type, "psirt.test.v1.Disclosed");
        assert!(parked[0].error.contains("does not belong"), "{}", parked[0].error);
    }
    Ok(())
}

/// The tally, refusing `garbage` bodies as undecodable until fixed (a
/// release that understands them); once fixed it applies any event it is
/// given, so only the runner's rule stands between a forged event and the
/// read model.
struct Fixable(Arc<AtomicBool>);

impl Projection for Fixable {
    fn name(&self) -> &str {
        "tally"
    }

    async fn apply(&self, conn: &mut AnyConnection, event: &RecordedEvent) -> Result<(), ApplyError> {
        if self.0.load(Ordering::SeqCst) {
            let mut fixed = event.clone();
            fixed.payload = Bytes::from(String::from_utf8_lossy(&event.payload).replace("garbage", "fixed"));
            return Tally.apply(conn, &fixed).await;
        }
        Tally.apply(conn, event).await
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        Tally.reset(conn).await
    }
}

#[tokio::test]
async fn parked_events_are_listed_and_replayed_and_a_forged_one_never_applies() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let nats = NatsServer::start().await?;
        let db = TestDatabase::new(backend).await?;
        let pool = pool(&db).await?;
        let store = EventStore::open(nats.connect().await?, &StreamSettings::managed()).await?;
        publish(&store, "psirt.evt.thing.a", "ok1").await?;
        let garbage = publish(&store, "psirt.evt.thing.a", "garbage1").await?;
        let forged = publish_as(&store, "psirt.evt.thing.a", "psirt.test.v1.Disclosed", "forged").await?;
        let last = publish(&store, "psirt.evt.thing.a", "ok2").await?;

        let fixed = Arc::new(AtomicBool::new(false));
        let runner = ProjectionRunner::new(Fixable(fixed.clone()), pool.clone(), store.clone(), settings())
            .with_event_rule(tally_rule);
        let parked = runner.parked_events();
        let (stop, rx) = watch::channel(false);
        let handle = tokio::spawn(runner.run(rx));
        wait_checkpoint(&pool, last).await?;

        let listed = parked.list(0, 100).await?;
        let seen: Vec<(u64, bool)> = listed.iter().map(|r| (r.sequence, r.foreign)).collect();
        assert_eq!(
            seen,
            vec![(garbage, false), (forged, true)],
            "{backend:?}: both parked, the forgery marked"
        );
        assert_eq!(parked.list(garbage, 100).await?.len(), 1, "pages start after a sequence");

        // The cause not fixed yet: nothing applies, both stay.
        let outcome = parked.replay(Vec::new()).await?;
        assert!(outcome.replayed.is_empty(), "{outcome:?}");
        assert_eq!(outcome.still_parked.iter().map(|e| e.0).collect::<Vec<_>>(), vec![garbage]);
        assert_eq!(outcome.refused.iter().map(|e| e.0).collect::<Vec<_>>(), vec![forged]);

        // Fixed: the undecodable one applies; the forged one is refused
        // again although the projection would now apply anything.
        fixed.store(true, Ordering::SeqCst);
        let outcome = parked.replay(Vec::new()).await?;
        assert_eq!(outcome.replayed, vec![garbage], "{backend:?}");
        assert_eq!(outcome.refused.iter().map(|e| e.0).collect::<Vec<_>>(), vec![forged]);
        assert!(outcome.refused[0].1.contains("does not belong"), "{:?}", outcome.refused);
        let outcome = parked.replay(vec![forged, 999]).await?;
        assert!(outcome.replayed.is_empty() && outcome.not_parked == vec![999], "{outcome:?}");

        let rows = tally(&pool).await?;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].1, 3, "ok1, ok2 and the replayed one: {rows:?}");
        assert!(rows[0].2.contains("fixed1") && !rows[0].2.contains("forged"), "{rows:?}");
        let left = parked.list(0, 100).await?;
        assert_eq!(left.iter().map(|r| r.sequence).collect::<Vec<_>>(), vec![forged]);
        assert!(left[0].error.starts_with("foreign event"), "{}", left[0].error);
        assert_eq!(psirt_projection::checkpoint(&pool, "tally").await?, last, "the checkpoint did not move");

        stop.send(true)?;
        handle.await??;
        if backend == Backend::Sqlite {
            // No runner: the replay is refused, not left hanging.
            let refused = parked.replay(Vec::new()).await;
            assert!(
                matches!(refused, Err(psirt_projection::ReplayError::NotRunning(_))),
                "{:?}",
                refused.map(|_| ())
            );
        }
    }
    Ok(())
}

/// Read-your-writes: a read waiting for a position waits for the runner's
/// commits; a position whose message the projection does not consume (a
/// stream with another subject) is reached as soon as everything before it
/// is applied, although the checkpoint never gets there; a read model held
/// back answers the lag after the deadline; a position beyond the stream
/// is refused at once.
#[tokio::test]
async fn a_read_waits_for_the_position_even_of_a_message_the_projection_does_not_consume()
-> anyhow::Result<()> {
    use psirt_projection::PositionError;
    let nats = NatsServer::start().await?;
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let pool = pool(&db).await?;
    // As a service does at its start.
    psirt_projection::ensure_schema(&pool).await?;
    let settings = StreamSettings {
        subjects: vec!["psirt.evt.>".to_owned(), "other.>".to_owned()],
        ..StreamSettings::managed()
    };
    let store = EventStore::open(nats.connect().await?, &settings).await?;
    let runner = ProjectionRunner::new(Tally, pool.clone(), store.clone(), settings_for_reads())
        .with_event_rule(tally_rule);
    let position = runner.position();
    let soon = || tokio::time::Instant::now() + Duration::from_secs(10);

    // Nothing runs the projection yet: an event's position is not reached.
    let first = seed(&store, 3).await?;
    let held = position.wait_for(first, tokio::time::Instant::now() + Duration::from_millis(200)).await;
    assert!(matches!(&held, Err(PositionError::Behind { at: 0, asked, .. }) if *asked == first), "{held:?}");
    let beyond = position.wait_for(first + 100, soon()).await;
    assert_eq!(beyond, Err(PositionError::Beyond { asked: first + 100, last: first }));

    // A message of a subject the runner's consumer does not take.
    let js = store.jetstream();
    let foreign = js.publish("other.note", "not an event".into()).await?.await?.sequence;
    assert_eq!(foreign, first + 1);

    let (stop, rx) = watch::channel(false);
    let handle = tokio::spawn(runner.run(rx));
    // Waits for the commit of the three events, then needs nothing more.
    tokio::time::timeout(Duration::from_secs(10), position.wait_for(foreign, soon())).await??;
    assert_eq!(
        psirt_projection::checkpoint(&pool, "tally").await?,
        first,
        "the checkpoint stays at the last event"
    );
    assert!(position.reached(foreign).await?);
    // An event after it: not reached until applied, then reached.
    let later = publish(&store, "psirt.evt.thing.9", "later").await?;
    tokio::time::timeout(Duration::from_secs(10), position.wait_for(later, soon())).await??;
    assert!(
        tally(&pool).await?.iter().any(|(s, ..)| s == "psirt.evt.thing.9"),
        "applied before the wait ended"
    );
    stop.send(true)?;
    handle.await??;
    Ok(())
}

/// Batches gathered for up to a second: an event is never applied at once,
/// so a read that does not wait would not see it.
fn settings_for_reads() -> ProjectionSettings {
    ProjectionSettings { max_batch_wait: Duration::from_millis(500), ..settings() }
}
