//! Triage's reactions to intake: `ReportReceived` opens the case intake
//! promised, `DuplicateSuspected` links the two reports' cases. Run as a
//! projection (`triage-reactions`) so reactions follow stream order, take
//! the lease, and commit case-key numbers with their checkpoint.

use prost::Name;
use psirt_domain::{Case, CaseCommand, CaseId, CaseKey, EventId, ReportId};
use psirt_eventstore::{EventStore, ExpectedVersion, Metadata, RecordedEvent, StoreError};
use psirt_projection::{ApplyError, Projection};
use psirt_proto::events;
use sqlx::AnyConnection;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::mapping::{self, Extra};

pub const PROJECTION_NAME: &str = "triage-reactions";

/// The actor of events the reactions append.
pub const ACTOR: &str = "psirt-triage";

pub struct Reactions {
    pub store: EventStore,
}

/// NATS trouble must roll the batch back and retry it, like a database
/// failure; the runner knows only those two kinds of error.
fn retry(e: StoreError) -> ApplyError {
    ApplyError::Database(sqlx::Error::Protocol(format!("event store: {e}")))
}

fn metadata(cause: &RecordedEvent) -> Metadata {
    Metadata {
        causation_id: cause.id.map(|id| id.to_string()),
        correlation_id: cause.metadata.correlation_id.clone().or_else(|| cause.id.map(|id| id.to_string())),
        actor: Some(ACTOR.to_owned()),
    }
}

/// Takes the next case number of `year`; the caller's transaction commits it.
async fn next_number(conn: &mut AnyConnection, year: i32) -> Result<u32, sqlx::Error> {
    sqlx::query(
        "INSERT INTO triage_case_keys (year, last_seq) VALUES ($1, 1)
         ON CONFLICT (year) DO UPDATE SET last_seq = triage_case_keys.last_seq + 1",
    )
    .bind(year)
    .execute(&mut *conn)
    .await?;
    let (seq,): (i64,) = sqlx::query_as("SELECT last_seq FROM triage_case_keys WHERE year = $1")
        .bind(year)
        .fetch_one(&mut *conn)
        .await?;
    Ok(u32::try_from(seq).unwrap_or(u32::MAX))
}

/// Sets the counter of `year`: after a reaction that opened nothing, back to
/// where it was, or up to a key found on the stream.
async fn settle_number(conn: &mut AnyConnection, year: i32, value: u32) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE triage_case_keys SET last_seq = $1 WHERE year = $2")
        .bind(i64::from(value))
        .bind(year)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Reactions {
    async fn load(&self, id: CaseId) -> Result<(Case, Vec<RecordedEvent>), ApplyError> {
        let events = self.store.load(&mapping::subject(id)).await.map_err(retry)?;
        let mut case = Case::default();
        for e in &events {
            case.apply(&mapping::to_domain(e)?);
        }
        Ok((case, events))
    }

    async fn open(&self, conn: &mut AnyConnection, event: &RecordedEvent) -> Result<(), ApplyError> {
        let e: events::ReportReceived = event.decode()?;
        let report_id: ReportId =
            e.report_id.parse().map_err(|_| psirt_eventstore::DecodeError::Payload {
                event_type: event.event_type.clone(),
                sequence: event.sequence,
                message: format!("report_id {:?} is not an id", e.report_id),
            })?;
        let case_id = CaseId::for_report(report_id);
        let received_at = e.received_at.as_ref().and_then(mapping::from_timestamp).unwrap_or(event.stored_at);
        // The year of receipt, not of the reaction: a redelivery across New
        // Year still counts in the year the first delivery did.
        let year = received_at.year();
        let number = next_number(conn, year).await?;
        let key = CaseKey::new(u16::try_from(year).unwrap_or(9999), number).map_err(|err| {
            psirt_eventstore::DecodeError::Payload {
                event_type: event.event_type.clone(),
                sequence: event.sequence,
                message: format!("no case key for year {year}: {err}"),
            }
        })?;
        let command = CaseCommand::Open { case_id, key, report_id: Some(report_id), title: e.title.clone() };
        let opened = match Case::default().handle(command, OffsetDateTime::now_utc()) {
            Ok(opened) => opened,
            Err(err) => {
                // Intake validated the title; a report that still cannot open
                // a case is logged and left for an analyst.
                warn!(report_id = %report_id, sequence = event.sequence, error = %err, "report cannot open a case");
                settle_number(conn, year, number - 1).await?;
                return Ok(());
            }
        };
        let Some(opened) = opened.into_iter().next() else { return Ok(()) };
        let cause = event.id.map_or_else(|| format!("seq-{}", event.sequence), |id| id.to_string());
        let event_id = EventId::derive(case_id.into(), &format!("opened-from\u{1f}{cause}"));
        let extra = Extra {
            channel: e.channel,
            report_received_at: Some(mapping::timestamp(received_at)),
            ..Extra::default()
        };
        let new = mapping::to_new_event(&opened, event_id, metadata(event), None, &extra);
        match self.store.append(new, ExpectedVersion::NoStream).await {
            Ok(appended) if !appended.duplicate => {
                info!(case_id = %case_id, case_key = %key, report_id = %report_id, "case opened");
                Ok(())
            }
            // Opened before (a redelivery, or a crash before the checkpoint
            // committed): the stored key is the truth, and the counter must
            // not hand it out again.
            Ok(_) | Err(StoreError::Conflict { .. }) => {
                let (case, _) = self.load(case_id).await?;
                let stored = case.details().map(|d| d.key);
                let keep = match stored {
                    Some(k) if i32::from(k.year()) == year => k.sequence().max(number - 1),
                    _ => number - 1,
                };
                settle_number(conn, year, keep).await?;
                Ok(())
            }
            Err(err) => Err(retry(err)),
        }
    }

    async fn link(&self, event: &RecordedEvent) -> Result<(), ApplyError> {
        let e: events::DuplicateSuspected = event.decode()?;
        let bad = |field: &str, value: &str| psirt_eventstore::DecodeError::Payload {
            event_type: event.event_type.clone(),
            sequence: event.sequence,
            message: format!("{field} {value:?} is not an id"),
        };
        let report: ReportId = e.report_id.parse().map_err(|_| bad("report_id", &e.report_id))?;
        let other: ReportId =
            e.other_report_id.parse().map_err(|_| bad("other_report_id", &e.other_report_id))?;
        let case_id = CaseId::for_report(report);
        let other_case = CaseId::for_report(other);
        let cause = event.id.map_or_else(|| format!("seq-{}", event.sequence), |id| id.to_string());
        let event_id = EventId::derive(case_id.into(), &format!("linked-from\u{1f}{cause}"));
        let reason = if e.reason.trim().is_empty() {
            "suspected duplicate (intake)".to_owned()
        } else {
            e.reason.clone()
        };
        for _ in 0..3 {
            let (case, stored) = self.load(case_id).await?;
            if stored.iter().any(|s| s.id == Some(event_id.into())) {
                return Ok(());
            }
            let version =
                stored.last().map_or(ExpectedVersion::NoStream, |s| ExpectedVersion::Exactly(s.sequence));
            let command = CaseCommand::LinkSuspectedDuplicate { other: other_case, reason: reason.clone() };
            let decided = match case.handle(command, OffsetDateTime::now_utc()) {
                Ok(decided) => decided,
                // A hint that cannot be recorded (no such case, a self link)
                // must not stall the reactions behind it.
                Err(err) => {
                    warn!(case_id = %case_id, other = %other_case, error = %err, "duplicate hint not linked");
                    return Ok(());
                }
            };
            let Some(linked) = decided.into_iter().next() else { return Ok(()) };
            let extra = Extra {
                other_report_id: e.other_report_id.clone(),
                report_id: e.report_id.clone(),
                suspected_at: e.suspected_at,
                match_kind: e.match_kind,
                similarity: e.similarity,
                ..Extra::default()
            };
            let new = mapping::to_new_event(&linked, event_id, metadata(event), case.details(), &extra);
            match self.store.append(new, version).await {
                Ok(_) => return Ok(()),
                // An analyst wrote to the case meanwhile: decide again.
                Err(StoreError::Conflict { .. }) => {}
                Err(err) => return Err(retry(err)),
            }
        }
        Err(ApplyError::Database(sqlx::Error::Protocol(format!(
            "case {case_id} kept changing while linking"
        ))))
    }
}

impl Projection for Reactions {
    fn name(&self) -> &str {
        PROJECTION_NAME
    }

    async fn apply(&self, conn: &mut AnyConnection, event: &RecordedEvent) -> Result<(), ApplyError> {
        if event.event_type == events::ReportReceived::full_name() {
            self.open(conn, event).await
        } else if event.event_type == events::DuplicateSuspected::full_name() {
            self.link(event).await
        } else {
            Ok(())
        }
    }

    /// Reactions are never replayed: the events they appended are facts,
    /// and the key counter must keep counting.
    async fn reset(&self, _conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        Ok(())
    }
}
