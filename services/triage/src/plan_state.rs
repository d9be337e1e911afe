//! What triage knows of a case's remediation plan and advisory, folded from
//! the remediation service's events: enough for the case view's remediation
//! summary and advisory state, and for the reactions that move the case to
//! REMEDIATING, FIXED and DISCLOSED.

use psirt_domain::remediation::same_product;
use psirt_eventstore::{DecodeError, RecordedEvent};
use psirt_proto::{events, triage};
use serde::{Deserialize, Serialize};

/// The subject prefix of plan events.
pub const PLAN_PREFIX: &str = "psirt.evt.remediation.";
/// The subject prefix of advisory events.
pub const ADVISORY_PREFIX: &str = "psirt.evt.advisory.";

/// One planned action, as far as triage cares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub id: String,
    pub product: String,
    pub fix: bool,
    pub due_ms: i64,
    pub released: bool,
    pub verified: bool,
    /// The deadline of the latest `SlaBreached` of this action.
    pub breached_due_ms: Option<i64>,
}

/// A case's plan, as far as triage cares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanState {
    pub plan_id: String,
    pub case_id: String,
    pub actions: Vec<Action>,
    /// (product, version, `psirt.events.v1.ProductStatus` value)
    pub statuses: Vec<(String, String, i32)>,
    /// `<product>@<version>` of every release.
    pub releases: Vec<String>,
}

fn millis(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// Whether an event is a plan event (on a plan's subject).
pub fn is_plan_event(event: &RecordedEvent) -> bool {
    event.subject.starts_with(PLAN_PREFIX)
}

/// The case a plan event belongs to (every plan event carries it; for
/// `SlaBreached` it is field 1).
pub fn plan_case_id(event: &RecordedEvent) -> Option<String> {
    if psirt_eventstore::is_type::<events::SlaBreached>(&event.event_type) {
        return event.decode::<events::SlaBreached>().ok().map(|e| e.case_id);
    }
    crate::view::foreign_case_id(event)
}

impl PlanState {
    fn settled(&self, product: &str) -> bool {
        let statuses =
            self.statuses.iter().map(|s| (s.0.as_str(), psirt_codec::remediation::status_from_proto(s.2)));
        psirt_domain::remediation::is_product_settled(product, statuses)
    }

    /// Released, verified, or nothing left to do for its product.
    pub fn done(&self, action: &Action) -> bool {
        action.released || action.verified || self.settled(&action.product)
    }

    /// At least one action, and every one done.
    pub fn is_complete(&self) -> bool {
        !self.actions.is_empty() && self.actions.iter().all(|a| self.done(a))
    }

    /// Folds one plan event in.
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), DecodeError> {
        let t = event.event_type.as_str();
        if psirt_eventstore::is_type::<events::RemediationPlanOpened>(t) {
            let e: events::RemediationPlanOpened = event.decode()?;
            self.plan_id = e.plan_id;
            self.case_id = e.case_id;
        } else if psirt_eventstore::is_type::<events::RemediationActionPlanned>(t) {
            let e: events::RemediationActionPlanned = event.decode()?;
            let product = e.target.map(|t| t.product).unwrap_or_default();
            let fix = e.action == events::RemediationAction::Fix as i32;
            let due_ms = millis(e.due_at.as_ref());
            match self.actions.iter_mut().find(|a| a.id == e.action_id) {
                Some(a) => {
                    a.product = product;
                    a.fix = fix;
                    a.due_ms = due_ms;
                }
                None => {
                    self.actions.push(Action { id: e.action_id, product, fix, due_ms, ..Action::default() })
                }
            }
        } else if psirt_eventstore::is_type::<events::ReleaseRecorded>(t) {
            let e: events::ReleaseRecorded = event.decode()?;
            for a in &mut self.actions {
                if (!e.action_id.is_empty() && a.id == e.action_id)
                    || (a.fix && same_product(&a.product, &e.product))
                {
                    a.released = true;
                }
            }
            self.releases.push(format!("{}@{}", e.product, e.fixed_version));
        } else if psirt_eventstore::is_type::<events::ProductStatusSet>(t) {
            let e: events::ProductStatusSet = event.decode()?;
            match self.statuses.iter_mut().find(|s| same_product(&s.0, &e.product) && s.1 == e.version) {
                Some(s) => s.2 = e.status,
                None => self.statuses.push((e.product, e.version, e.status)),
            }
            self.statuses.sort();
        } else if psirt_eventstore::is_type::<events::RemediationVerified>(t) {
            let e: events::RemediationVerified = event.decode()?;
            if let Some(a) = self.actions.iter_mut().find(|a| a.id == e.action_id) {
                a.verified = true;
            }
        } else if psirt_eventstore::is_type::<events::RemediationDueDatesRecomputed>(t) {
            let e: events::RemediationDueDatesRecomputed = event.decode()?;
            for c in e.changes {
                if let Some(a) = self.actions.iter_mut().find(|a| a.id == c.action_id) {
                    a.due_ms = millis(c.due_at.as_ref());
                }
            }
        } else if psirt_eventstore::is_type::<events::SlaBreached>(t) {
            let e: events::SlaBreached = event.decode()?;
            if let Some(a) = self.actions.iter_mut().find(|a| a.id == e.action_id) {
                a.breached_due_ms = Some(millis(e.deadline.as_ref()));
            }
        }
        Ok(())
    }

    /// The case view's remediation summary. An open action counts as overdue
    /// once the scheduler recorded the breach of its current due date.
    pub fn summary(&self) -> triage::RemediationSummary {
        let open: Vec<&Action> = self.actions.iter().filter(|a| !self.done(a)).collect();
        let mut counts: Vec<triage::ProductStatusCount> = Vec::new();
        for (_, _, status) in &self.statuses {
            match counts.iter_mut().find(|c| c.status == *status) {
                Some(c) => c.count += 1,
                None => counts.push(triage::ProductStatusCount { status: *status, count: 1 }),
            }
        }
        counts.sort_by_key(|c| c.status);
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        triage::RemediationSummary {
            plan_id: self.plan_id.clone(),
            actions_total: count(self.actions.len()),
            actions_open: count(open.len()),
            actions_released: count(self.actions.iter().filter(|a| a.released && !a.verified).count()),
            actions_verified: count(self.actions.iter().filter(|a| a.verified).count()),
            actions_overdue: count(open.iter().filter(|a| a.breached_due_ms == Some(a.due_ms)).count()),
            next_due_at: open.iter().map(|a| a.due_ms).min().map(|ms| prost_types::Timestamp {
                seconds: ms.div_euclid(1000),
                nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
            }),
            product_status_counts: counts,
        }
    }
}

/// Folds an advisory event into the case view's advisory state. Returns
/// false for other events.
pub fn apply_advisory_event(
    state: &mut triage::AdvisoryState,
    event: &RecordedEvent,
) -> Result<bool, DecodeError> {
    let t = event.event_type.as_str();
    if psirt_eventstore::is_type::<events::AdvisoryDrafted>(t) {
        let e: events::AdvisoryDrafted = event.decode()?;
        state.advisory_id = e.advisory_id;
        state.tracking_id = e.tracking_id;
        if state.status == triage::AdvisoryStatus::Unspecified as i32 {
            state.status = triage::AdvisoryStatus::Draft as i32;
        }
        state.updated_at = e.drafted_at;
    } else if psirt_eventstore::is_type::<events::AdvisoryPublished>(t) {
        let e: events::AdvisoryPublished = event.decode()?;
        state.advisory_id = e.advisory_id;
        state.tracking_id = e.tracking_id;
        state.status = triage::AdvisoryStatus::Published as i32;
        state.version = e.version;
        if state.published_at.is_none() {
            state.published_at = e.published_at;
        }
        state.updated_at = e.published_at;
    } else if psirt_eventstore::is_type::<events::AdvisoryRevised>(t) {
        let e: events::AdvisoryRevised = event.decode()?;
        state.status = triage::AdvisoryStatus::Published as i32;
        state.version = e.version;
        state.updated_at = e.revised_at;
    } else {
        return Ok(false);
    }
    Ok(true)
}
