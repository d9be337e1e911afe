//! The read side, as pure folds of recorded events: what the service knows
//! of a case ([`CaseFacts`]), the plan view (`psirt.remediation.v1.Plan`)
//! and the advisory view (`psirt.remediation.v1.Advisory`). The projection
//! and the command handlers (for read-your-writes answers) share them, so
//! a rebuilt read model equals the live one.

use psirt_domain::remediation::same_product;
use psirt_eventstore::{DecodeError, RecordedEvent};
use psirt_proto::{common, events, remediation as api};
use serde::{Deserialize, Serialize};

use crate::mapping;

/// One CVSS assessment as the case recorded it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub vector: String,
    pub score: f64,
    /// `psirt.common.v1.SeverityRating` value.
    pub rating: i32,
}

/// A product and its affected versions, as the case recorded them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductVersions {
    pub product: String,
    /// A "vers" range, or empty when `versions` lists them.
    pub range: String,
    pub versions: Vec<String>,
}

impl ProductVersions {
    pub fn from_proto(p: &common::ProductVersionRange) -> Self {
        match &p.versions {
            Some(common::product_version_range::Versions::Range(r)) => {
                Self { product: p.product.clone(), range: r.clone(), versions: Vec::new() }
            }
            Some(common::product_version_range::Versions::Explicit(list)) => {
                Self { product: p.product.clone(), range: String::new(), versions: list.versions.clone() }
            }
            None => Self { product: p.product.clone(), range: String::new(), versions: Vec::new() },
        }
    }

    pub fn to_proto(&self) -> common::ProductVersionRange {
        let versions = if self.range.is_empty() {
            common::product_version_range::Versions::Explicit(common::VersionList {
                versions: self.versions.clone(),
            })
        } else {
            common::product_version_range::Versions::Range(self.range.clone())
        };
        common::ProductVersionRange { product: self.product.clone(), versions: Some(versions) }
    }
}

/// What remediation needs to know of a case, from the case's events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseFacts {
    pub case_id: String,
    pub case_key: String,
    pub title: String,
    /// `psirt.common.v1.SeverityRating` value of the latest assessment.
    pub severity: i32,
    pub cvss_v31: Option<Score>,
    pub cvss_v40: Option<Score>,
    pub cwe_ids: Vec<String>,
    pub cve_ids: Vec<String>,
    pub products: Vec<ProductVersions>,
    /// Agreed disclosure instant, unix seconds; `None` without an embargo.
    pub embargo_until: Option<i64>,
    pub accepted: bool,
    /// Stream sequence of the last case event applied.
    pub last_sequence: u64,
}

/// Whether `event` is on a case's subject (`psirt.evt.case.<id>`).
pub fn is_case_event(event: &RecordedEvent) -> bool {
    event.subject.starts_with("psirt.evt.case.")
}

/// The case id a case event belongs to, from its subject.
pub fn case_id_of(event: &RecordedEvent) -> Option<&str> {
    event.subject.strip_prefix("psirt.evt.case.")
}

fn secs(ts: Option<&prost_types::Timestamp>) -> Option<i64> {
    ts.map(|t| t.seconds)
}

/// Folds one case event into the facts; events that tell remediation
/// nothing are skipped. Returns whether the facts changed.
pub fn apply_case_event(facts: &mut CaseFacts, event: &RecordedEvent) -> Result<bool, DecodeError> {
    let t = event.event_type.as_str();
    if psirt_eventstore::is_type::<events::CaseOpened>(t) {
        let e: events::CaseOpened = event.decode()?;
        facts.case_id = e.case_id;
        facts.case_key = e.case_key;
        facts.title = e.title;
    } else if psirt_eventstore::is_type::<events::SeverityAssessed>(t) {
        let e: events::SeverityAssessed = event.decode()?;
        facts.severity = e.severity;
        facts.cvss_v31 =
            e.cvss_v31.map(|s| Score { vector: s.vector, score: s.base_score, rating: s.rating });
        facts.cvss_v40 = e.cvss_v40.map(|s| Score { vector: s.vector, score: s.score, rating: s.rating });
        facts.cwe_ids = e.cwe_ids;
    } else if psirt_eventstore::is_type::<events::AffectedProductsSet>(t) {
        let e: events::AffectedProductsSet = event.decode()?;
        facts.products = e.products.iter().map(ProductVersions::from_proto).collect();
    } else if psirt_eventstore::is_type::<events::CaseAccepted>(t) {
        let e: events::CaseAccepted = event.decode()?;
        facts.accepted = true;
        if facts.case_key.is_empty() {
            facts.case_key = e.case_key;
        }
        if facts.severity == 0 {
            facts.severity = e.severity;
        }
        if facts.products.is_empty() {
            facts.products = e.affected_products.iter().map(ProductVersions::from_proto).collect();
        }
    } else if psirt_eventstore::is_type::<events::CveAssigned>(t) {
        let e: events::CveAssigned = event.decode()?;
        if !facts.cve_ids.contains(&e.cve_id) {
            facts.cve_ids.push(e.cve_id);
        }
    } else if psirt_eventstore::is_type::<events::EmbargoSet>(t) {
        let e: events::EmbargoSet = event.decode()?;
        facts.embargo_until = secs(e.disclosure_at.as_ref());
    } else if psirt_eventstore::is_type::<events::CaseDisclosed>(t) {
        facts.embargo_until = None;
    } else {
        return Ok(false);
    }
    facts.last_sequence = event.sequence;
    Ok(true)
}

/// The facts of a case from its whole stream.
pub fn case_facts(events: &[RecordedEvent]) -> Result<CaseFacts, DecodeError> {
    let mut facts = CaseFacts::default();
    for e in events {
        apply_case_event(&mut facts, e)?;
    }
    Ok(facts)
}

fn ts_millis(ts: Option<&prost_types::Timestamp>) -> i64 {
    ts.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// The unix milliseconds of a timestamp (0 when unset).
pub fn millis(ts: Option<&prost_types::Timestamp>) -> i64 {
    ts_millis(ts)
}

/// Folds one plan event (`psirt.evt.remediation.<plan_id>`) into the view.
/// `SlaBreached` and unknown types change nothing but the version.
pub fn apply_plan_event(plan: &mut api::Plan, event: &RecordedEvent) -> Result<(), DecodeError> {
    let t = event.event_type.as_str();
    if psirt_eventstore::is_type::<events::RemediationPlanOpened>(t) {
        let e: events::RemediationPlanOpened = event.decode()?;
        plan.plan_id = e.plan_id;
        plan.case_id = e.case_id;
        plan.case_key = e.case_key;
        plan.severity = e.severity;
        plan.sla_policy = e.sla_policy;
        plan.affected_products = e.affected_products;
        plan.opened_at = e.opened_at;
        plan.updated_at = e.opened_at;
    } else if psirt_eventstore::is_type::<events::RemediationActionPlanned>(t) {
        let e: events::RemediationActionPlanned = event.decode()?;
        let planned = api::PlannedAction {
            action_id: e.action_id.clone(),
            target: e.target,
            action: e.action,
            owner_team: e.owner_team,
            target_release: e.target_release,
            due_at: e.due_at,
            due_date_override_reason: e.due_date_override_reason,
            description: e.description,
            state: api::ActionState::Open as i32,
            overdue: false,
            planned_at: e.planned_at,
        };
        match plan.actions.iter_mut().find(|a| a.action_id == e.action_id) {
            Some(existing) => {
                let state = existing.state;
                *existing = api::PlannedAction { state, ..planned };
            }
            None => plan.actions.push(planned),
        }
        plan.updated_at = e.planned_at;
    } else if psirt_eventstore::is_type::<events::ReleaseRecorded>(t) {
        let e: events::ReleaseRecorded = event.decode()?;
        for a in &mut plan.actions {
            let same_action = !e.action_id.is_empty() && a.action_id == e.action_id;
            let fix_of_product = e.action_id.is_empty()
                && a.action == events::RemediationAction::Fix as i32
                && a.target.as_ref().is_some_and(|t| same_product(&t.product, &e.product));
            if (same_action || fix_of_product)
                && (a.state == api::ActionState::Open as i32 || a.state == api::ActionState::Settled as i32)
            {
                a.state = api::ActionState::Released as i32;
            }
        }
        plan.releases.push(api::Release {
            action_id: e.action_id,
            product: e.product,
            fixed_version: e.fixed_version,
            released_at: e.released_at,
            release_notes_url: e.release_notes_url,
        });
        plan.updated_at = e.recorded_at;
    } else if psirt_eventstore::is_type::<events::ProductStatusSet>(t) {
        let e: events::ProductStatusSet = event.decode()?;
        let status = api::ProductVersionStatus {
            product: e.product,
            version: e.version,
            status: e.status,
            justification: e.justification,
            statement: e.statement,
            set_at: e.set_at,
        };
        match plan
            .statuses
            .iter_mut()
            .find(|s| same_product(&s.product, &status.product) && s.version == status.version)
        {
            Some(existing) => *existing = status,
            None => plan.statuses.push(status),
        }
        plan.statuses.sort_by(|a, b| (&a.product, &a.version).cmp(&(&b.product, &b.version)));
        plan.updated_at = e.set_at;
    } else if psirt_eventstore::is_type::<events::RemediationVerified>(t) {
        let e: events::RemediationVerified = event.decode()?;
        if let Some(a) = plan.actions.iter_mut().find(|a| a.action_id == e.action_id) {
            a.state = api::ActionState::Verified as i32;
        }
        plan.updated_at = e.verified_at;
    } else if psirt_eventstore::is_type::<events::RemediationDueDatesRecomputed>(t) {
        let e: events::RemediationDueDatesRecomputed = event.decode()?;
        plan.severity = e.severity;
        plan.sla_policy = e.sla_policy;
        for change in e.changes {
            if let Some(a) = plan.actions.iter_mut().find(|a| a.action_id == change.action_id) {
                a.due_at = change.due_at;
            }
        }
        plan.updated_at = e.recomputed_at;
    }
    plan.version = event.sequence;
    settle(plan);
    plan.complete =
        !plan.actions.is_empty() && plan.actions.iter().all(|a| a.state != api::ActionState::Open as i32);
    Ok(())
}

/// An action whose product has a status, every one of them known not
/// affected or fixed, has nothing left to do (and back when that changes).
fn settle(plan: &mut api::Plan) {
    let settled = |product: &str| {
        let statuses =
            plan.statuses.iter().map(|s| (s.product.as_str(), mapping::status_from_proto(s.status)));
        psirt_domain::remediation::is_product_settled(product, statuses)
    };
    let open = api::ActionState::Open as i32;
    let settled_state = api::ActionState::Settled as i32;
    let states: Vec<i32> = plan
        .actions
        .iter()
        .map(|a| {
            let product = a.target.as_ref().map_or("", |t| t.product.as_str());
            match a.state {
                s if s == open && settled(product) => settled_state,
                s if s == settled_state && !settled(product) => open,
                s => s,
            }
        })
        .collect();
    for (a, state) in plan.actions.iter_mut().zip(states) {
        a.state = state;
    }
}

/// The plan view from the plan's whole stream.
pub fn plan(events: &[RecordedEvent]) -> Result<api::Plan, DecodeError> {
    let mut plan = api::Plan::default();
    for e in events {
        apply_plan_event(&mut plan, e)?;
    }
    Ok(plan)
}

/// Marks the open actions past due at `now_ms` (computed on read: it
/// changes without an event).
pub fn refresh_overdue(plan: &mut api::Plan, now_ms: i64) {
    for a in &mut plan.actions {
        a.overdue = a.state == api::ActionState::Open as i32 && ts_millis(a.due_at.as_ref()) <= now_ms;
    }
}

/// Folds one advisory event (`psirt.evt.advisory.<advisory_id>`) into the view.
pub fn apply_advisory_event(advisory: &mut api::Advisory, event: &RecordedEvent) -> Result<(), DecodeError> {
    let t = event.event_type.as_str();
    if psirt_eventstore::is_type::<events::AdvisoryDrafted>(t) {
        let e: events::AdvisoryDrafted = event.decode()?;
        advisory.advisory_id = e.advisory_id;
        advisory.case_id = e.case_id;
        advisory.tracking_id = e.tracking_id;
        advisory.content = e.content;
        if advisory.state == api::AdvisoryState::Unspecified as i32 {
            advisory.state = api::AdvisoryState::Draft as i32;
        }
        advisory.updated_at = e.drafted_at;
    } else if psirt_eventstore::is_type::<events::AdvisoryPublished>(t) {
        let e: events::AdvisoryPublished = event.decode()?;
        advisory.advisory_id = e.advisory_id;
        advisory.case_id = e.case_id;
        advisory.tracking_id = e.tracking_id;
        advisory.state = api::AdvisoryState::Published as i32;
        advisory.published_version = e.version.clone();
        advisory.content = e.content;
        advisory.formats = e.formats;
        advisory.embargo_override_reason = e.embargo_override_reason;
        advisory.revisions.push(api::Revision {
            version: e.version,
            date: e.published_at,
            summary: "Initial public release".to_owned(),
        });
        advisory.updated_at = e.published_at;
    } else if psirt_eventstore::is_type::<events::AdvisoryRevised>(t) {
        let e: events::AdvisoryRevised = event.decode()?;
        advisory.state = api::AdvisoryState::Published as i32;
        advisory.published_version = e.version.clone();
        advisory.content = e.content;
        advisory.formats = e.formats;
        advisory.embargo_override_reason = String::new();
        advisory.revisions.push(api::Revision {
            version: e.version,
            date: e.revised_at,
            summary: e.change_summary,
        });
        advisory.updated_at = e.revised_at;
    }
    advisory.version = event.sequence;
    Ok(())
}

/// The advisory view from the advisory's whole stream.
pub fn advisory(events: &[RecordedEvent]) -> Result<api::Advisory, DecodeError> {
    let mut advisory = api::Advisory::default();
    for e in events {
        apply_advisory_event(&mut advisory, e)?;
    }
    Ok(advisory)
}
