//! Remediation's reactions to triage: `CaseAccepted` opens the case's plan
//! with due dates from the policy; `SeverityAssessed` on a case with a plan
//! recomputes them. Run as a projection (`remediation-reactions`) so they
//! follow stream order and take the lease; every appended event's id derives
//! from the id of the event that caused it, so a redelivery appends nothing.

use psirt_domain::remediation::{Plan, PlanCommand, RemediationPolicy};
use psirt_domain::{CaseId, EventId, PlanId};
use psirt_eventstore::{EventStore, ExpectedVersion, Metadata, RecordedEvent, StoreError};
use psirt_projection::{ApplyError, Projection};
use psirt_proto::events;
use sqlx::AnyConnection;
use time::OffsetDateTime;
use tracing::warn;

use crate::mapping;

pub const PROJECTION_NAME: &str = "remediation-reactions";

/// The actor of events the reactions append.
pub const ACTOR: &str = "psirt-remediation";

pub struct Reactions {
    pub store: EventStore,
    pub policy: RemediationPolicy,
}

/// NATS trouble rolls the batch back and retries it, like a database failure.
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

/// A plan loaded from its stream.
pub struct LoadedPlan {
    pub plan: Plan,
    pub events: Vec<RecordedEvent>,
}

impl LoadedPlan {
    pub fn version(&self) -> ExpectedVersion {
        self.events.last().map_or(ExpectedVersion::NoStream, |e| ExpectedVersion::Exactly(e.sequence))
    }

    pub fn has_event(&self, id: EventId) -> bool {
        let id: uuid::Uuid = id.into();
        self.events.iter().any(|e| e.id == Some(id))
    }
}

/// Loads a plan from its stream under `policy`.
pub async fn load_plan(
    store: &EventStore,
    policy: &RemediationPolicy,
    plan_id: PlanId,
) -> Result<LoadedPlan, LoadError> {
    let events = store.load(&mapping::plan_subject(plan_id)).await?;
    let mut plan = Plan::with_policy(policy.clone());
    for e in &events {
        if let Some(event) = mapping::plan_event_from_recorded(e)? {
            plan.apply(&event);
        }
    }
    Ok(LoadedPlan { plan, events })
}

/// Why a plan could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Corrupt(#[from] psirt_eventstore::DecodeError),
}

impl From<LoadError> for ApplyError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Store(e) => retry(e),
            LoadError::Corrupt(e) => ApplyError::Undecodable(e),
        }
    }
}

impl Reactions {
    /// Decides `command` on the plan and appends the result, with event ids
    /// derived from the cause; a conflict decides again.
    async fn react(
        &self,
        cause: &RecordedEvent,
        case_id: CaseId,
        command: PlanCommand,
    ) -> Result<(), ApplyError> {
        let plan_id = PlanId::for_case(case_id);
        let cause_id = cause.id.map_or_else(|| format!("seq-{}", cause.sequence), |id| id.to_string());
        for _ in 0..3 {
            let loaded = load_plan(&self.store, &self.policy, plan_id).await?;
            let decided = match loaded.plan.handle(command.clone(), OffsetDateTime::now_utc()) {
                Ok(decided) => decided,
                // A reaction that cannot apply (no plan yet for a severity
                // change) must not stall the reactions behind it.
                Err(err) => {
                    warn!(case_id = %case_id, error = %err, "reaction not applied");
                    return Ok(());
                }
            };
            if decided.is_empty() {
                return Ok(());
            }
            let mut version = loaded.version();
            let mut conflicted = false;
            for event in &decided {
                let id = EventId::derive(
                    plan_id.into(),
                    &format!("{}\u{1f}{cause_id}", psirt_domain::DomainEvent::event_type(event)),
                );
                if loaded.has_event(id) {
                    continue;
                }
                let new = mapping::plan_event_to_new(event, plan_id, id.into(), metadata(cause));
                match self.store.append(new, version).await {
                    Ok(appended) => version = ExpectedVersion::Exactly(appended.sequence),
                    Err(StoreError::Conflict { .. }) => {
                        conflicted = true;
                        break;
                    }
                    Err(e) => return Err(retry(e)),
                }
            }
            if !conflicted {
                return Ok(());
            }
        }
        Err(ApplyError::Database(sqlx::Error::Protocol(format!(
            "plan of case {case_id} kept changing while reacting"
        ))))
    }
}

fn bad(event: &RecordedEvent, message: String) -> psirt_eventstore::DecodeError {
    psirt_eventstore::DecodeError::Payload {
        event_type: event.event_type.clone(),
        sequence: event.sequence,
        message,
    }
}

impl Projection for Reactions {
    fn name(&self) -> &str {
        PROJECTION_NAME
    }

    async fn apply(&self, _conn: &mut AnyConnection, event: &RecordedEvent) -> Result<(), ApplyError> {
        let t = event.event_type.as_str();
        if psirt_eventstore::is_type::<events::CaseAccepted>(t) {
            let e: events::CaseAccepted = event.decode()?;
            let case_id: CaseId =
                e.case_id.parse().map_err(|_| bad(event, format!("case_id {:?}", e.case_id)))?;
            let case_key =
                e.case_key.parse().map_err(|_| bad(event, format!("case_key {:?}", e.case_key)))?;
            let command = PlanCommand::Open {
                case_id,
                case_key,
                severity: mapping::rating_from_proto(e.severity),
                products: e.affected_products.iter().map(mapping::product_from_proto).collect(),
            };
            self.react(event, case_id, command).await
        } else if psirt_eventstore::is_type::<events::SeverityAssessed>(t) {
            let e: events::SeverityAssessed = event.decode()?;
            let case_id: CaseId =
                e.case_id.parse().map_err(|_| bad(event, format!("case_id {:?}", e.case_id)))?;
            // Only a case with a plan has due dates to move.
            let loaded = load_plan(&self.store, &self.policy, PlanId::for_case(case_id)).await?;
            if !loaded.plan.exists() {
                return Ok(());
            }
            let command = PlanCommand::RecomputeDueDates {
                severity: mapping::rating_from_proto(e.severity),
                reason: "severity re-assessed".to_owned(),
            };
            self.react(event, case_id, command).await
        } else {
            Ok(())
        }
    }

    async fn reset(&self, _conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        Ok(())
    }
}
