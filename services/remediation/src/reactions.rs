//! Remediation's reactions to triage: `CaseAccepted` opens the case's plan
//! with due dates from the policy; `SeverityAssessed` on a case with a plan
//! recomputes them. Run as a projection (`remediation-reactions`) so they
//! follow stream order and take the lease; every appended event's id derives
//! from the id of the event that caused it, so a redelivery appends nothing.

use psirt_domain::remediation::{PlanCommand, PlanEvent, RemediationPolicy};
use psirt_domain::{CaseId, EventId, PlanId};
use psirt_eventstore::{CommandError, EventStore, Metadata, RecordedEvent, Repository, Request, StoreError};
use psirt_projection::{ApplyError, Projection};
use psirt_proto::events;
use sqlx::AnyConnection;
use tracing::warn;

use crate::mapping;

pub const PROJECTION_NAME: &str = "remediation-reactions";

/// The actor of events the reactions append.
pub const ACTOR: &str = "psirt-remediation";

pub struct Reactions {
    plans: Repository<mapping::PlanCodec>,
}

impl Reactions {
    pub fn new(store: EventStore, policy: RemediationPolicy) -> Self {
        Self { plans: Repository::new(store, mapping::PlanCodec { policy }) }
    }
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
        actor_scopes: None,
    }
}

impl Reactions {
    /// Decides `command` on the plan and appends the result through the
    /// shared command path, with event ids derived from the cause. A command
    /// the plan refuses (no plan yet for a severity change) is logged and
    /// skipped: it must not stall the reactions behind it.
    async fn react(
        &self,
        cause: &RecordedEvent,
        case_id: CaseId,
        command: PlanCommand,
    ) -> Result<(), ApplyError> {
        let plan_id = PlanId::for_case(case_id);
        let cause_id = cause.id.map_or_else(|| format!("seq-{}", cause.sequence), |id| id.to_string());
        let event_id = |event: &PlanEvent| -> uuid::Uuid {
            let event_type = psirt_domain::DomainEvent::event_type(event);
            EventId::derive(plan_id.into(), &format!("{event_type}\u{1f}{cause_id}")).into()
        };
        let request = Request { must_exist: false, ..Request::new(plan_id, metadata(cause)) };
        let decide = |_: &psirt_eventstore::Loaded<psirt_domain::Plan>| {
            Ok::<_, std::convert::Infallible>(Some(command.clone()))
        };
        match self.plans.execute(&request, &event_id, decide).await {
            Ok(_) => Ok(()),
            Err(CommandError::Domain(err)) => {
                warn!(case_id = %case_id, error = %err, "reaction not applied");
                Ok(())
            }
            Err(CommandError::Store(err)) => Err(retry(err)),
            Err(CommandError::Decode(err)) => Err(err.into()),
            Err(err) => Err(ApplyError::Database(sqlx::Error::Protocol(err.to_string()))),
        }
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
            let loaded = match self.plans.get(PlanId::for_case(case_id)).await {
                Ok(loaded) => loaded,
                Err(psirt_eventstore::ReadError::Store(err)) => return Err(retry(err)),
                Err(psirt_eventstore::ReadError::Decode(err)) => return Err(err.into()),
            };
            if !loaded.state.exists() {
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
