//! `rebuild`: how fast the case view is rebuilt from the stream, beside the
//! raw rate of the least work any projection must do on the same events.
//!
//! Seeding (not measured) appends realistic cases through the services' own
//! mappings: per case intake's `ReportReceived`, then the events the case
//! aggregate decides for open, assess (CVSS 3.1; `TriageStarted` comes
//! first), accept, and for every other case an assignment. Cases are seeded
//! in groups (`--interleave`, default 64) whose events are interleaved phase
//! by phase, as reports arrive before triage gets to them, so a batch
//! touches many cases and finds most of them in the database.
//!
//! The rebuild is `psirt_triage::rebuild` on a fresh PostgreSQL database.
//! The raw run consumes the same stream with a plain durable pull consumer
//! in batches of the projection's size, and applies each batch as one
//! multi-row upsert (one row per event) plus a checkpoint upsert in one
//! transaction, then acknowledges: the floor of a projection's cost.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use async_nats::jetstream::consumer::{self, pull};
use futures::{FutureExt, StreamExt};
use psirt_domain::{
    Case, CaseCommand, CaseEvent, CaseId, CaseKey, Channel, EventId, ReportEvent, ReportId, Reporter,
};
use psirt_eventstore::{EventStore, ExpectedVersion, Metadata, NewEvent, PendingAppend, StreamSettings};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use time::OffsetDateTime;
use tokio::time::Instant;
use uuid::Uuid;

use crate::payload::{ACTOR, CVSS_VECTOR, DESCRIPTION, PRODUCTS, TITLE_PREFIX};

/// Row names in reports.
pub const REBUILD_WORKLOAD: &str = "case view rebuild";
pub const RAW_WORKLOAD: &str = "raw consume+upsert";

/// Cases whose events are interleaved phase by phase on the stream, by default.
pub const DEFAULT_INTERLEAVE: usize = 64;
/// Appends in flight while seeding.
const SEED_WINDOW: usize = 1_024;
/// The raw run's durable consumer and checkpoint name.
const RAW_NAME: &str = "bench-raw";
/// Bytes of each event's payload the raw run stores.
const RAW_PAYLOAD_BYTES: usize = 32;

/// What one measured pass did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pass {
    pub events: u64,
    pub secs: f64,
    pub events_per_sec: f64,
}

impl Pass {
    fn new(events: u64, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64();
        Self { events, secs, events_per_sec: if secs > 0.0 { events as f64 / secs } else { 0.0 } }
    }
}

/// The result of a `rebuild` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebuildResult {
    /// Events on the stream (both passes consume all of them).
    pub events: u64,
    pub cases: u64,
    /// Cases seeded with their events interleaved phase by phase.
    pub interleave: usize,
    pub batch_size: usize,
    pub seed_secs: f64,
    pub rebuild: Pass,
    pub raw: Pass,
    /// Rebuild rate divided by the raw rate.
    pub ratio_rebuild_over_raw: Option<f64>,
    /// `SELECT version()` of the PostgreSQL server.
    pub postgres_version: Option<String>,
}

pub struct RebuildOptions {
    pub nats: String,
    pub events: u64,
    /// Cases whose events are interleaved (1: each case's events in a row).
    pub interleave: usize,
    /// Events per transaction for both passes; `None`: the projection's
    /// `rebuild_batch_size`.
    pub batch_size: Option<usize>,
}

/// Seeds a stream on `opts.nats`, then rebuilds and runs the raw pass, each
/// on its own fresh database of the testkit's PostgreSQL server.
pub async fn run(opts: &RebuildOptions) -> anyhow::Result<RebuildResult> {
    ensure!(opts.events > 0, "--events must be at least 1");
    ensure!(opts.interleave > 0, "--interleave must be at least 1");
    let config_defaults = psirt_triage::Config::default();
    let batch_size = opts.batch_size.unwrap_or(config_defaults.projection.rebuild_batch_size);
    let stream_name = config_defaults.nats.stream.name.clone();

    let client = connect(&opts.nats).await?;
    let settings = StreamSettings { name: stream_name.clone(), ..StreamSettings::managed() };
    let store =
        EventStore::open(client.clone(), &settings).await.context("failed to open the event store")?;
    let seed_start = Instant::now();
    let (events, cases) = seed(&store, opts.events, opts.interleave).await?;
    let seed_secs = seed_start.elapsed().as_secs_f64();
    let on_stream = store.stream_last_sequence().await.context("failed to read the stream")?;
    ensure!(on_stream == events, "seeded {events} events but the stream holds {on_stream}");
    eprintln!("psirt-bench: seeded {events} events ({cases} cases) in {seed_secs:.1}s");

    // The rebuild, as `psirt-triage rebuild` runs it.
    let rebuild_db = psirt_testkit::TestDatabase::postgres().await?;
    let mut config = psirt_triage::Config::default();
    config.nats.url = opts.nats.clone();
    config.nats.stream.manage = true;
    config.database.url = secrecy::SecretString::from(rebuild_db.url().to_owned());
    config.projection.rebuild_batch_size = batch_size;
    eprintln!("psirt-bench: {REBUILD_WORKLOAD} of {events} events, batch {batch_size}");
    let started = Instant::now();
    let rebuilt = Box::pin(psirt_triage::rebuild(&config, |_, _| {})).await.context("rebuild failed")?;
    let rebuild = Pass::new(events, started.elapsed());
    ensure!(rebuilt == events, "the rebuild reached sequence {rebuilt}, not {events}");
    let rebuilt_cases = count_cases(rebuild_db.url()).await?;
    ensure!(rebuilt_cases == cases, "the case view holds {rebuilt_cases} cases, not {cases}");
    drop(rebuild_db);

    let raw_db = psirt_testkit::TestDatabase::postgres().await?;
    eprintln!("psirt-bench: {RAW_WORKLOAD} of {events} events, batch {batch_size}");
    let raw = raw_pass(&client, &stream_name, raw_db.url(), events, batch_size).await?;
    let postgres_version = postgres_version(raw_db.url()).await;
    drop(raw_db);

    Ok(RebuildResult {
        events,
        cases,
        interleave: opts.interleave,
        batch_size,
        seed_secs,
        rebuild,
        raw,
        ratio_rebuild_over_raw: (raw.events_per_sec > 0.0)
            .then(|| rebuild.events_per_sec / raw.events_per_sec),
        postgres_version,
    })
}

async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name("psirt-bench")
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .with_context(|| format!("failed to connect to nats at {url}"))
}

async fn pool(url: &str) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .with_context(|| format!("failed to connect to {url}"))
}

async fn count_cases(url: &str) -> anyhow::Result<u64> {
    let pool = pool(url).await?;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM triage_cases").fetch_one(&pool).await?;
    pool.close().await;
    Ok(u64::try_from(n).unwrap_or(0))
}

async fn postgres_version(url: &str) -> Option<String> {
    let pool = pool(url).await.ok()?;
    let row: Option<(String,)> = sqlx::query_as("SELECT version()").fetch_one(&pool).await.ok();
    pool.close().await;
    row.map(|(v,)| v)
}

/// The events of one case in stream order: intake's `ReportReceived`, then
/// triage's, built from domain events by the services' own mappings.
pub fn case_events(number: u32, now: OffsetDateTime) -> anyhow::Result<Vec<NewEvent>> {
    let report_id = ReportId::new();
    let case_id = CaseId::for_report(report_id);
    let request_id = format!("bench-rebuild-{}", Uuid::now_v7());
    let metadata = || Metadata {
        causation_id: Some(request_id.clone()),
        correlation_id: Some(request_id.clone()),
        actor: Some(ACTOR.to_owned()),
        actor_scopes: None,
    };
    let title = format!("{TITLE_PREFIX}{number}");
    let received = ReportEvent::ReportReceived {
        report_id,
        case_id,
        request_id: Some(request_id.clone()),
        title: title.clone(),
        description: DESCRIPTION.to_owned(),
        reporter: Reporter {
            name: Some("Dana Reporter".to_owned()),
            email: Some("dana.reporter@example.org".to_owned()),
            organization: Some("Example Security Research".to_owned()),
        },
        channel: Channel::Api,
        affected_products: PRODUCTS.iter().map(|p| (*p).to_owned()).collect(),
        suggested_cvss_vector: Some(CVSS_VECTOR.to_owned()),
        requested_disclosure_at: None,
        received_at: now,
        external_reference: None,
    };
    let mut out = vec![psirt_codec::report::to_new_event(
        &received,
        EventId::derive(report_id.into(), &request_id),
        &request_id,
        metadata(),
    )];

    let mut commands = vec![
        CaseCommand::Open {
            case_id,
            key: CaseKey::new(2026, number).context("case key")?,
            report_id: Some(report_id),
            title,
            channel: Some(psirt_domain::Channel::Api),
            report_received_at: Some(now),
        },
        CaseCommand::AssessSeverity {
            cvss_v3: Some(CVSS_VECTOR.to_owned()),
            cvss_v4: None,
            ssvc_decision: None,
            evidence: psirt_domain::SeverityEvidence {
                rationale: "Reproduced on 4.2.3.".to_owned(),
                ..Default::default()
            },
        },
        CaseCommand::Accept { note: String::new() },
    ];
    if number % 2 == 0 {
        commands.push(CaseCommand::Assign {
            assignee: format!("analyst-{}", number % 7),
            team: Some("product-security".to_owned()),
        });
    }
    let mut case = Case::default();
    for command in commands {
        let decided: Vec<CaseEvent> =
            case.handle(command, now).map_err(|e| anyhow::anyhow!("case {number}: {e}"))?;
        for event in decided {
            let id = EventId::from_uuid(Uuid::now_v7());
            out.push(psirt_codec::case::to_new_event(&event, id, metadata(), case.details()));
            case.apply(&event);
        }
    }
    Ok(out)
}

/// Appends exactly `total` events (the last case may be cut short), with
/// many appends in flight. Returns (events, cases).
async fn seed(store: &EventStore, total: u64, interleave: usize) -> anyhow::Result<(u64, u64)> {
    let now = OffsetDateTime::now_utc();
    let mut in_flight: VecDeque<PendingAppend> = VecDeque::with_capacity(SEED_WINDOW);
    let (mut sent, mut cases) = (0u64, 0u64);
    let mut number = 0u32;
    while sent < total {
        let mut group = Vec::with_capacity(interleave);
        for _ in 0..interleave {
            number += 1;
            group.push(VecDeque::from(case_events(number, now)?));
        }
        // Phase by phase: every case's first event, then every second...
        while sent < total && group.iter().any(|c| !c.is_empty()) {
            for case in &mut group {
                if sent >= total {
                    break;
                }
                let Some(event) = case.pop_front() else { continue };
                if event.event_type.ends_with(".CaseOpened") {
                    cases += 1;
                }
                if in_flight.len() >= SEED_WINDOW
                    && let Some(oldest) = in_flight.pop_front()
                {
                    oldest.wait().await.context("seed append failed")?;
                }
                in_flight.push_back(
                    store.start_append(event, ExpectedVersion::Any).await.context("seed append failed")?,
                );
                sent += 1;
            }
        }
    }
    while let Some(oldest) = in_flight.pop_front() {
        oldest.wait().await.context("seed append failed")?;
    }
    Ok((sent, cases))
}

/// The raw pass: pull, one multi-row upsert + checkpoint per batch in one
/// transaction, ack; until `target` is applied.
async fn raw_pass(
    client: &async_nats::Client,
    stream_name: &str,
    db_url: &str,
    target: u64,
    batch_size: usize,
) -> anyhow::Result<Pass> {
    let pool = pool(db_url).await?;
    sqlx::query(
        "CREATE TABLE bench_raw_events (
            id BIGINT PRIMARY KEY,
            subject TEXT NOT NULL,
            event_type TEXT NOT NULL,
            payload BYTEA NOT NULL
        )",
    )
    .execute(&pool)
    .await?;
    sqlx::query("CREATE TABLE bench_raw_checkpoints (name TEXT PRIMARY KEY, last_sequence BIGINT NOT NULL)")
        .execute(&pool)
        .await?;
    let insert_prefix = "INSERT INTO bench_raw_events (id, subject, event_type, payload) VALUES ";

    let started = Instant::now();
    let js = async_nats::jetstream::new(client.clone());
    let stream = js.get_stream(stream_name).await.context("failed to get the stream")?;
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(RAW_NAME.to_owned()),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::All,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: i64::try_from(batch_size * 2).unwrap_or(i64::MAX),
            filter_subject: format!("{}.>", psirt_eventstore::SUBJECT_PREFIX),
            ..Default::default()
        })
        .await
        .context("failed to create the raw consumer")?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(batch_size)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .context("failed to pull")?;
    let mut applied = 0u64;
    let mut checkpoint = 0u64;
    let mut sql = String::new();
    while checkpoint < target {
        let first = match tokio::time::timeout(Duration::from_secs(30), messages.next()).await {
            Ok(Some(Ok(msg))) => msg,
            Ok(Some(Err(e))) => bail!("raw consumer failed: {e}"),
            Ok(None) => bail!("raw consumer stream ended"),
            Err(_) => bail!("no event for 30s at checkpoint {checkpoint} of {target}"),
        };
        // Gathered the way the projection runner gathers a batch.
        let mut batch = vec![first];
        let deadline = Instant::now() + Duration::from_millis(10);
        while batch.len() < batch_size {
            let next = match messages.next().now_or_never() {
                Some(next) => next,
                None => match tokio::time::timeout_at(deadline, messages.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
            };
            match next {
                Some(Ok(msg)) => batch.push(msg),
                Some(Err(e)) => bail!("raw consumer failed: {e}"),
                None => break,
            }
        }
        let mut rows = Vec::with_capacity(batch.len());
        for msg in &batch {
            let info = msg.info().map_err(|e| anyhow::anyhow!("bad message metadata: {e}"))?;
            let event_type = msg
                .headers
                .as_ref()
                .and_then(|h| h.get(psirt_eventstore::headers::EVENT_TYPE))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            let payload = msg.payload[..msg.payload.len().min(RAW_PAYLOAD_BYTES)].to_vec();
            rows.push((info.stream_sequence, msg.subject.to_string(), event_type, payload));
        }
        sql.clear();
        sql.push_str(insert_prefix);
        for i in 0..rows.len() {
            if i > 0 {
                sql.push(',');
            }
            let p = i * 4;
            sql.push_str(&format!("(${},${},${},${})", p + 1, p + 2, p + 3, p + 4));
        }
        sql.push_str(
            " ON CONFLICT (id) DO UPDATE SET subject = excluded.subject, \
             event_type = excluded.event_type, payload = excluded.payload",
        );
        let last = rows.last().map_or(checkpoint, |r| r.0);
        let mut tx = pool.begin().await?;
        let mut query = sqlx::query(&sql);
        for (seq, subject, event_type, payload) in rows {
            query = query
                .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                .bind(subject)
                .bind(event_type)
                .bind(payload);
        }
        query.execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO bench_raw_checkpoints (name, last_sequence) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET last_sequence = excluded.last_sequence",
        )
        .bind(RAW_NAME)
        .bind(i64::try_from(last).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if let Some(msg) = batch.last() {
            msg.ack().await.map_err(|e| anyhow::anyhow!("failed to ack: {e}"))?;
        }
        applied += batch.len() as u64;
        checkpoint = last;
    }
    let pass = Pass::new(applied, started.elapsed());
    pool.close().await;
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_is_a_report_and_its_triage() {
        let now = OffsetDateTime::now_utc();
        let types = |n| -> Vec<String> {
            case_events(n, now)
                .unwrap()
                .into_iter()
                .map(|e| e.event_type.trim_start_matches("psirt.events.v1.").to_owned())
                .collect()
        };
        assert_eq!(
            types(1),
            ["ReportReceived", "CaseOpened", "TriageStarted", "SeverityAssessed", "CaseAccepted"]
        );
        assert_eq!(
            types(2),
            [
                "ReportReceived",
                "CaseOpened",
                "TriageStarted",
                "SeverityAssessed",
                "CaseAccepted",
                "CaseAssigned"
            ]
        );
        let events = case_events(3, now).unwrap();
        assert!(events[0].subject.starts_with("psirt.evt.report."));
        assert!(events[1..].iter().all(|e| e.subject == events[1].subject));
        assert!(events[1].subject.starts_with("psirt.evt.case."));
    }
}
