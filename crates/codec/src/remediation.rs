//! Between the domain's plan and advisory events and their protobuf
//! payloads on the stream, in both directions.

pub use crate::convert::{product_from_proto, product_to_proto, rating_from_proto, rating_to_proto};
use prost_types::Timestamp;
use psirt_domain::remediation::{
    DueDateChange, PlanEvent, ProductStatus, RemediationAction, VexJustification,
};
use psirt_domain::{ActionId, CaseId, PlanId};
use psirt_eventstore::{DecodeError, Encoded, EventCodec, Metadata, NewEvent, RecordedEvent};
use psirt_proto::events;
use time::OffsetDateTime;
use uuid::Uuid;

/// The subject of a plan's events.
pub fn plan_subject(id: PlanId) -> String {
    psirt_eventstore::subject(<psirt_domain::Plan as psirt_domain::Aggregate>::AGGREGATE_TYPE, id)
}

/// The subject of an advisory's events.
pub fn advisory_subject(id: psirt_domain::AdvisoryId) -> String {
    psirt_eventstore::subject(<psirt_domain::Advisory as psirt_domain::Aggregate>::AGGREGATE_TYPE, id)
}

pub fn ts(t: OffsetDateTime) -> Option<Timestamp> {
    Some(Timestamp { seconds: t.unix_timestamp(), nanos: i32::try_from(t.nanosecond()).unwrap_or(0) })
}

pub fn from_ts(t: Option<&Timestamp>) -> Option<OffsetDateTime> {
    let t = t?;
    let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

pub fn action_to_proto(a: RemediationAction) -> events::RemediationAction {
    match a {
        RemediationAction::Fix => events::RemediationAction::Fix,
        RemediationAction::Workaround => events::RemediationAction::Workaround,
        RemediationAction::Mitigation => events::RemediationAction::Mitigation,
        RemediationAction::Suspend => events::RemediationAction::Suspend,
        RemediationAction::None => events::RemediationAction::None,
    }
}

pub fn action_from_proto(value: i32) -> Option<RemediationAction> {
    Some(match events::RemediationAction::try_from(value).ok()? {
        events::RemediationAction::Unspecified => return None,
        events::RemediationAction::Fix => RemediationAction::Fix,
        events::RemediationAction::Workaround => RemediationAction::Workaround,
        events::RemediationAction::Mitigation => RemediationAction::Mitigation,
        events::RemediationAction::Suspend => RemediationAction::Suspend,
        events::RemediationAction::None => RemediationAction::None,
    })
}

pub fn status_to_proto(s: ProductStatus) -> events::ProductStatus {
    match s {
        ProductStatus::KnownAffected => events::ProductStatus::KnownAffected,
        ProductStatus::KnownNotAffected => events::ProductStatus::KnownNotAffected,
        ProductStatus::Fixed => events::ProductStatus::Fixed,
        ProductStatus::UnderInvestigation => events::ProductStatus::UnderInvestigation,
    }
}

pub fn status_from_proto(value: i32) -> Option<ProductStatus> {
    Some(match events::ProductStatus::try_from(value).ok()? {
        events::ProductStatus::Unspecified => return None,
        events::ProductStatus::KnownAffected => ProductStatus::KnownAffected,
        events::ProductStatus::KnownNotAffected => ProductStatus::KnownNotAffected,
        events::ProductStatus::Fixed => ProductStatus::Fixed,
        events::ProductStatus::UnderInvestigation => ProductStatus::UnderInvestigation,
    })
}

pub fn justification_to_proto(j: Option<VexJustification>) -> events::VexJustification {
    match j {
        None => events::VexJustification::Unspecified,
        Some(VexJustification::ComponentNotPresent) => events::VexJustification::ComponentNotPresent,
        Some(VexJustification::VulnerableCodeNotPresent) => {
            events::VexJustification::VulnerableCodeNotPresent
        }
        Some(VexJustification::VulnerableCodeNotInExecutePath) => {
            events::VexJustification::VulnerableCodeNotInExecutePath
        }
        Some(VexJustification::VulnerableCodeCannotBeControlledByAdversary) => {
            events::VexJustification::VulnerableCodeCannotBeControlledByAdversary
        }
        Some(VexJustification::InlineMitigationsAlreadyExist) => {
            events::VexJustification::InlineMitigationsAlreadyExist
        }
    }
}

pub fn justification_from_proto(value: i32) -> Option<VexJustification> {
    Some(match events::VexJustification::try_from(value).ok()? {
        events::VexJustification::Unspecified => return None,
        events::VexJustification::ComponentNotPresent => VexJustification::ComponentNotPresent,
        events::VexJustification::VulnerableCodeNotPresent => VexJustification::VulnerableCodeNotPresent,
        events::VexJustification::VulnerableCodeNotInExecutePath => {
            VexJustification::VulnerableCodeNotInExecutePath
        }
        events::VexJustification::VulnerableCodeCannotBeControlledByAdversary => {
            VexJustification::VulnerableCodeCannotBeControlledByAdversary
        }
        events::VexJustification::InlineMitigationsAlreadyExist => {
            VexJustification::InlineMitigationsAlreadyExist
        }
    })
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// A remediation plan's events on the stream, for the shared command
/// path; plans start from the configured policy.
#[derive(Debug, Clone)]
pub struct PlanCodec {
    pub policy: psirt_domain::RemediationPolicy,
}

impl EventCodec for PlanCodec {
    type Aggregate = psirt_domain::Plan;
    type Context = ();

    fn initial(&self) -> psirt_domain::Plan {
        psirt_domain::Plan::with_policy(self.policy.clone())
    }

    fn decode(&self, event: &RecordedEvent) -> Result<Option<PlanEvent>, DecodeError> {
        plan_event_from_recorded(event)
    }

    fn encode(&self, event: &PlanEvent, _before: &psirt_domain::Plan, _context: &()) -> Encoded {
        encode_plan_event(event, PlanId::for_case(event.case_id()))
    }
}

/// An advisory's events on the stream, for the shared command path.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdvisoryCodec;

impl EventCodec for AdvisoryCodec {
    type Aggregate = psirt_domain::Advisory;
    type Context = ();

    fn decode(&self, event: &RecordedEvent) -> Result<Option<psirt_domain::AdvisoryEvent>, DecodeError> {
        advisory_event_from_recorded(event)
    }

    fn encode(
        &self,
        event: &psirt_domain::AdvisoryEvent,
        _before: &psirt_domain::Advisory,
        _context: &(),
    ) -> Encoded {
        encode_advisory_event(event)
    }
}

/// The payload of a plan event, ready to append on the plan's subject.
pub fn plan_event_to_new(event: &PlanEvent, plan_id: PlanId, id: Uuid, metadata: Metadata) -> NewEvent {
    let Encoded { event_type, schema_version, payload } = encode_plan_event(event, plan_id);
    NewEvent { id, subject: plan_subject(plan_id), event_type, schema_version, payload, metadata }
}

/// The stored form of a plan event of the plan `plan_id`.
pub fn encode_plan_event(event: &PlanEvent, plan_id: PlanId) -> Encoded {
    let pid = plan_id.to_string();
    match event {
        PlanEvent::RemediationPlanOpened {
            case_id,
            case_key,
            severity,
            sla_policy,
            affected_products,
            opened_at,
            ..
        } => Encoded::message(&events::RemediationPlanOpened {
            plan_id: pid,
            case_id: case_id.to_string(),
            case_key: case_key.to_string(),
            severity: rating_to_proto(*severity).into(),
            sla_policy: sla_policy.clone(),
            affected_products: affected_products.iter().map(product_to_proto).collect(),
            opened_at: ts(*opened_at),
        }),
        PlanEvent::RemediationActionPlanned {
            case_id,
            action_id,
            target,
            action,
            owner_team,
            target_release,
            due_at,
            due_date_override_reason,
            description,
            planned_at,
            ..
        } => Encoded::message(&events::RemediationActionPlanned {
            plan_id: pid,
            case_id: case_id.to_string(),
            action_id: action_id.to_string(),
            target: Some(product_to_proto(target)),
            action: action_to_proto(*action).into(),
            owner_team: owner_team.clone(),
            target_release: target_release.clone().unwrap_or_default(),
            due_at: ts(*due_at),
            due_date_override_reason: due_date_override_reason.clone().unwrap_or_default(),
            description: description.clone(),
            planned_at: ts(*planned_at),
        }),
        PlanEvent::ReleaseRecorded {
            case_id,
            action_id,
            product,
            fixed_version,
            released_at,
            release_notes_url,
            recorded_at,
            ..
        } => Encoded::message(&events::ReleaseRecorded {
            plan_id: pid,
            case_id: case_id.to_string(),
            action_id: action_id.map(|a| a.to_string()).unwrap_or_default(),
            product: product.clone(),
            fixed_version: fixed_version.clone(),
            released_at: ts(*released_at),
            release_notes_url: release_notes_url.clone().unwrap_or_default(),
            recorded_at: ts(*recorded_at),
        }),
        PlanEvent::ProductStatusSet {
            case_id,
            product,
            version,
            status,
            justification,
            statement,
            set_at,
            ..
        } => Encoded::message(&events::ProductStatusSet {
            plan_id: pid,
            case_id: case_id.to_string(),
            product: product.clone(),
            version: version.clone(),
            status: status_to_proto(*status).into(),
            justification: justification_to_proto(*justification).into(),
            statement: statement.clone(),
            set_at: ts(*set_at),
        }),
        PlanEvent::RemediationVerified { case_id, action_id, verification_note, verified_at, .. } => {
            Encoded::message(&events::RemediationVerified {
                plan_id: pid,
                case_id: case_id.to_string(),
                action_id: action_id.to_string(),
                verification_note: verification_note.clone(),
                verified_at: ts(*verified_at),
            })
        }
        PlanEvent::RemediationDueDatesRecomputed {
            case_id,
            severity,
            sla_policy,
            changes,
            reason,
            recomputed_at,
            ..
        } => Encoded::message(&events::RemediationDueDatesRecomputed {
            plan_id: pid,
            case_id: case_id.to_string(),
            severity: rating_to_proto(*severity).into(),
            sla_policy: sla_policy.clone(),
            changes: changes
                .iter()
                .map(|c| events::DueDateChange {
                    action_id: c.action_id.to_string(),
                    previous_due_at: ts(c.previous_due_at),
                    due_at: ts(c.due_at),
                })
                .collect(),
            reason: reason.clone(),
            recomputed_at: ts(*recomputed_at),
        }),
        PlanEvent::SlaBreached {
            case_id,
            action_id,
            product,
            deadline,
            breached_at,
            severity,
            sla_policy,
        } => Encoded::message(&events::SlaBreached {
            case_id: case_id.to_string(),
            clock: events::SlaClock::Remediation.into(),
            deadline: ts(*deadline),
            breached_at: ts(*breached_at),
            action_id: action_id.to_string(),
            product: product.clone(),
            severity: rating_to_proto(*severity).into(),
            sla_policy: sla_policy.clone(),
        }),
    }
}

fn bad(event: &RecordedEvent, message: String) -> DecodeError {
    DecodeError::Payload { event_type: event.event_type.clone(), sequence: event.sequence, message }
}

fn id<T: std::str::FromStr>(event: &RecordedEvent, field: &str, value: &str) -> Result<T, DecodeError> {
    value.parse().map_err(|_| bad(event, format!("{field} {value:?} is not an id")))
}

fn time_of(event: &RecordedEvent, t: Option<&Timestamp>) -> OffsetDateTime {
    from_ts(t).unwrap_or(event.stored_at)
}

/// A plan event from the stream, as the domain knows it. Events of other
/// types on the plan's subject are `None`.
pub fn plan_event_from_recorded(event: &RecordedEvent) -> Result<Option<PlanEvent>, DecodeError> {
    let t = event.event_type.as_str();
    let out = if psirt_eventstore::is_type::<events::RemediationPlanOpened>(t) {
        let e: events::RemediationPlanOpened = event.decode()?;
        PlanEvent::RemediationPlanOpened {
            plan_id: id(event, "plan_id", &e.plan_id)?,
            case_id: id(event, "case_id", &e.case_id)?,
            case_key: e.case_key.parse().map_err(|_| bad(event, format!("bad case key {:?}", e.case_key)))?,
            severity: rating_from_proto(e.severity),
            sla_policy: e.sla_policy,
            affected_products: e.affected_products.iter().map(product_from_proto).collect(),
            opened_at: time_of(event, e.opened_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::RemediationActionPlanned>(t) {
        let e: events::RemediationActionPlanned = event.decode()?;
        PlanEvent::RemediationActionPlanned {
            plan_id: id(event, "plan_id", &e.plan_id)?,
            case_id: id(event, "case_id", &e.case_id)?,
            action_id: id(event, "action_id", &e.action_id)?,
            target: e
                .target
                .as_ref()
                .map(product_from_proto)
                .ok_or_else(|| bad(event, "no target".into()))?,
            action: action_from_proto(e.action).ok_or_else(|| bad(event, "no action".into()))?,
            owner_team: e.owner_team,
            target_release: opt(&e.target_release),
            due_at: time_of(event, e.due_at.as_ref()),
            due_date_override_reason: opt(&e.due_date_override_reason),
            description: e.description,
            planned_at: time_of(event, e.planned_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::ReleaseRecorded>(t) {
        let e: events::ReleaseRecorded = event.decode()?;
        PlanEvent::ReleaseRecorded {
            plan_id: id(event, "plan_id", &e.plan_id)?,
            case_id: id(event, "case_id", &e.case_id)?,
            action_id: if e.action_id.is_empty() {
                None
            } else {
                Some(id(event, "action_id", &e.action_id)?)
            },
            product: e.product,
            fixed_version: e.fixed_version,
            released_at: time_of(event, e.released_at.as_ref()),
            release_notes_url: opt(&e.release_notes_url),
            recorded_at: time_of(event, e.recorded_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::ProductStatusSet>(t) {
        let e: events::ProductStatusSet = event.decode()?;
        PlanEvent::ProductStatusSet {
            plan_id: id(event, "plan_id", &e.plan_id)?,
            case_id: id(event, "case_id", &e.case_id)?,
            product: e.product,
            version: e.version,
            status: status_from_proto(e.status).ok_or_else(|| bad(event, "no status".into()))?,
            justification: justification_from_proto(e.justification),
            statement: e.statement,
            set_at: time_of(event, e.set_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::RemediationVerified>(t) {
        let e: events::RemediationVerified = event.decode()?;
        PlanEvent::RemediationVerified {
            plan_id: id(event, "plan_id", &e.plan_id)?,
            case_id: id(event, "case_id", &e.case_id)?,
            action_id: id(event, "action_id", &e.action_id)?,
            verification_note: e.verification_note,
            verified_at: time_of(event, e.verified_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::RemediationDueDatesRecomputed>(t) {
        let e: events::RemediationDueDatesRecomputed = event.decode()?;
        let mut changes = Vec::with_capacity(e.changes.len());
        for c in &e.changes {
            changes.push(DueDateChange {
                action_id: id::<ActionId>(event, "action_id", &c.action_id)?,
                previous_due_at: time_of(event, c.previous_due_at.as_ref()),
                due_at: time_of(event, c.due_at.as_ref()),
            });
        }
        PlanEvent::RemediationDueDatesRecomputed {
            plan_id: id(event, "plan_id", &e.plan_id)?,
            case_id: id(event, "case_id", &e.case_id)?,
            severity: rating_from_proto(e.severity),
            sla_policy: e.sla_policy,
            changes,
            reason: e.reason,
            recomputed_at: time_of(event, e.recomputed_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::SlaBreached>(t) {
        let e: events::SlaBreached = event.decode()?;
        if e.action_id.is_empty() {
            return Ok(None);
        }
        PlanEvent::SlaBreached {
            case_id: id::<CaseId>(event, "case_id", &e.case_id)?,
            action_id: id(event, "action_id", &e.action_id)?,
            product: e.product,
            deadline: time_of(event, e.deadline.as_ref()),
            breached_at: time_of(event, e.breached_at.as_ref()),
            severity: rating_from_proto(e.severity),
            sla_policy: e.sla_policy,
        }
    } else {
        return Ok(None);
    };
    Ok(Some(out))
}

pub fn content_to_proto(c: &psirt_domain::AdvisoryContent) -> events::AdvisoryContent {
    events::AdvisoryContent {
        title: c.title.clone(),
        summary: c.summary.clone(),
        details: c.details.clone(),
        workarounds: c.workarounds.clone(),
        acknowledgments: c
            .acknowledgments
            .iter()
            .map(|a| events::Acknowledgment {
                name: a.name.clone(),
                organization: a.organization.clone().unwrap_or_default(),
                url: a.url.clone().unwrap_or_default(),
                consent: a.consent,
            })
            .collect(),
        references: c.references.clone(),
    }
}

pub fn content_from_proto(c: &events::AdvisoryContent) -> psirt_domain::AdvisoryContent {
    psirt_domain::AdvisoryContent {
        title: c.title.clone(),
        summary: c.summary.clone(),
        details: c.details.clone(),
        workarounds: c.workarounds.clone(),
        acknowledgments: c
            .acknowledgments
            .iter()
            .map(|a| psirt_domain::Acknowledgment {
                name: a.name.clone(),
                organization: opt(&a.organization),
                url: opt(&a.url),
                consent: a.consent,
            })
            .collect(),
        references: c.references.clone(),
    }
}

pub fn format_to_proto(f: psirt_domain::AdvisoryFormat) -> events::AdvisoryFormat {
    match f {
        psirt_domain::AdvisoryFormat::Csaf => events::AdvisoryFormat::Csaf,
        psirt_domain::AdvisoryFormat::CveJson => events::AdvisoryFormat::CveJson,
        psirt_domain::AdvisoryFormat::Osv => events::AdvisoryFormat::Osv,
        psirt_domain::AdvisoryFormat::OpenVex => events::AdvisoryFormat::Openvex,
    }
}

pub fn format_from_proto(value: i32) -> Option<psirt_domain::AdvisoryFormat> {
    Some(match events::AdvisoryFormat::try_from(value).ok()? {
        events::AdvisoryFormat::Unspecified => return None,
        events::AdvisoryFormat::Csaf => psirt_domain::AdvisoryFormat::Csaf,
        events::AdvisoryFormat::CveJson => psirt_domain::AdvisoryFormat::CveJson,
        events::AdvisoryFormat::Osv => psirt_domain::AdvisoryFormat::Osv,
        events::AdvisoryFormat::Openvex => psirt_domain::AdvisoryFormat::OpenVex,
    })
}

/// The payload of an advisory event, ready to append on the advisory's subject.
pub fn advisory_event_to_new(event: &psirt_domain::AdvisoryEvent, id: Uuid, metadata: Metadata) -> NewEvent {
    let Encoded { event_type, schema_version, payload } = encode_advisory_event(event);
    let subject = advisory_subject(event.advisory_id());
    NewEvent { id, subject, event_type, schema_version, payload, metadata }
}

/// The stored form of an advisory event.
pub fn encode_advisory_event(event: &psirt_domain::AdvisoryEvent) -> Encoded {
    use psirt_domain::AdvisoryEvent as E;
    match event {
        E::AdvisoryDrafted { advisory_id, case_id, tracking_id, content, drafted_at } => {
            Encoded::message(&events::AdvisoryDrafted {
                advisory_id: advisory_id.to_string(),
                case_id: case_id.to_string(),
                tracking_id: tracking_id.clone(),
                content: Some(content_to_proto(content)),
                drafted_at: ts(*drafted_at),
            })
        }
        E::AdvisoryPublished {
            advisory_id,
            case_id,
            tracking_id,
            version,
            content,
            formats,
            published_at,
            embargo_override_reason,
        } => Encoded::message(&events::AdvisoryPublished {
            advisory_id: advisory_id.to_string(),
            case_id: case_id.to_string(),
            tracking_id: tracking_id.clone(),
            version: version.to_string(),
            content: Some(content_to_proto(content)),
            formats: formats.iter().map(|f| format_to_proto(*f).into()).collect(),
            published_at: ts(*published_at),
            embargo_override_reason: embargo_override_reason.clone().unwrap_or_default(),
        }),
        E::AdvisoryRevised {
            advisory_id,
            case_id,
            tracking_id,
            version,
            content,
            change_summary,
            formats,
            revised_at,
        } => Encoded::message(&events::AdvisoryRevised {
            advisory_id: advisory_id.to_string(),
            case_id: case_id.to_string(),
            tracking_id: tracking_id.clone(),
            version: version.to_string(),
            content: Some(content_to_proto(content)),
            change_summary: change_summary.clone(),
            formats: formats.iter().map(|f| format_to_proto(*f).into()).collect(),
            revised_at: ts(*revised_at),
        }),
    }
}

/// An advisory event from the stream, as the domain knows it.
pub fn advisory_event_from_recorded(
    event: &RecordedEvent,
) -> Result<Option<psirt_domain::AdvisoryEvent>, DecodeError> {
    use psirt_domain::AdvisoryEvent as E;
    let t = event.event_type.as_str();
    let version = |v: &str| v.parse().map_err(|_| bad(event, format!("version {v:?}")));
    let out = if psirt_eventstore::is_type::<events::AdvisoryDrafted>(t) {
        let e: events::AdvisoryDrafted = event.decode()?;
        E::AdvisoryDrafted {
            advisory_id: id(event, "advisory_id", &e.advisory_id)?,
            case_id: id(event, "case_id", &e.case_id)?,
            tracking_id: e.tracking_id,
            content: content_from_proto(&e.content.unwrap_or_default()),
            drafted_at: time_of(event, e.drafted_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::AdvisoryPublished>(t) {
        let e: events::AdvisoryPublished = event.decode()?;
        E::AdvisoryPublished {
            advisory_id: id(event, "advisory_id", &e.advisory_id)?,
            case_id: id(event, "case_id", &e.case_id)?,
            tracking_id: e.tracking_id,
            version: version(&e.version)?,
            content: content_from_proto(&e.content.unwrap_or_default()),
            formats: e.formats.iter().filter_map(|f| format_from_proto(*f)).collect(),
            published_at: time_of(event, e.published_at.as_ref()),
            embargo_override_reason: opt(&e.embargo_override_reason),
        }
    } else if psirt_eventstore::is_type::<events::AdvisoryRevised>(t) {
        let e: events::AdvisoryRevised = event.decode()?;
        E::AdvisoryRevised {
            advisory_id: id(event, "advisory_id", &e.advisory_id)?,
            case_id: id(event, "case_id", &e.case_id)?,
            tracking_id: e.tracking_id,
            version: version(&e.version)?,
            content: content_from_proto(&e.content.unwrap_or_default()),
            change_summary: e.change_summary,
            formats: e.formats.iter().filter_map(|f| format_from_proto(*f)).collect(),
            revised_at: time_of(event, e.revised_at.as_ref()),
        }
    } else {
        return Ok(None);
    };
    Ok(Some(out))
}
