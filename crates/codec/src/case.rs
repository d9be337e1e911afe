//! Translation between the domain's case events and their protobuf form on
//! the stream. Every fact a payload holds is a field of the domain event
//! (the request's facts, such as the team, notes, EPSS or the embargo's local
//! time, travel in the domain's commands), except the snapshots some events
//! carry of the case as it stood before (`CaseAccepted`'s key, severity and
//! products; the `previous_*` fields), which come from `before`.

pub use crate::convert::{product_from_proto, product_to_proto, rating_from_proto, rating_to_proto};
use prost_types::Timestamp;
use psirt_domain::{
    Case, CaseDetails, CaseEvent, CaseId, CaseKey, CaseStatus, CvssScore, CvssSeverity, CvssVersion,
    DuplicateHint, DuplicateMatch, EmbargoTerms, EscalationLevel, EventId, RejectionReason, Resolution,
    SeverityEvidence, SlaClock, SlaDeadline, SsvcDecision, SsvcInputs,
};
use psirt_eventstore::{DecodeError, Encoded, EventCodec, Metadata, NewEvent, RecordedEvent};
use psirt_proto::{common, events};

use crate::report::{channel_from_proto, channel_to_proto};
use time::OffsetDateTime;

pub use crate::convert::{from_timestamp, millis, timestamp};
use uuid::Uuid;

/// The aggregate name in subjects: `psirt.evt.case.<id>`.
pub const AGGREGATE: &str = <Case as psirt_domain::Aggregate>::AGGREGATE_TYPE;

/// The prefix of every case subject.
pub const SUBJECT_PREFIX: &str = "psirt.evt.case.";

pub fn subject(id: CaseId) -> String {
    psirt_eventstore::subject(AGGREGATE, id)
}

pub fn timestamp_millis(t: &Timestamp) -> Option<i64> {
    from_timestamp(t).map(millis)
}

/// Deterministic id of an event a command appends: the same client request
/// (principal and request id) always yields the same event. A command that
/// appends `TriageStarted` before its own event names each by its type, so a
/// retry finds both.
pub fn command_event_id(
    case: CaseId,
    command: &str,
    principal: &str,
    request_id: &str,
    event_type: &str,
) -> EventId {
    EventId::derive(case.into(), &format!("{command}\u{1f}{principal}\u{1f}{request_id}\u{1f}{event_type}"))
}

pub fn status_to_proto(s: CaseStatus) -> common::CaseStatus {
    match s {
        CaseStatus::Received => common::CaseStatus::Received,
        CaseStatus::Triage => common::CaseStatus::Triage,
        CaseStatus::Accepted => common::CaseStatus::Accepted,
        CaseStatus::Rejected => common::CaseStatus::Rejected,
        CaseStatus::Duplicate => common::CaseStatus::Duplicate,
        CaseStatus::Remediating => common::CaseStatus::Remediating,
        CaseStatus::Fixed => common::CaseStatus::Fixed,
        CaseStatus::Disclosed => common::CaseStatus::Disclosed,
        CaseStatus::Closed => common::CaseStatus::Closed,
    }
}

/// The proto status name for messages, e.g. `TRIAGE`.
pub fn status_name(s: CaseStatus) -> String {
    s.as_str().to_uppercase()
}

pub fn rejection_to_proto(r: RejectionReason) -> events::RejectionReason {
    match r {
        RejectionReason::NotAVulnerability => events::RejectionReason::NotAVulnerability,
        RejectionReason::OutOfScope => events::RejectionReason::OutOfScope,
        RejectionReason::NotReproducible => events::RejectionReason::CannotReproduce,
        RejectionReason::InsufficientInformation => events::RejectionReason::InsufficientInformation,
        RejectionReason::Withdrawn => events::RejectionReason::Withdrawn,
        RejectionReason::Other => events::RejectionReason::Other,
    }
}

pub fn rejection_from_proto(value: i32) -> Option<RejectionReason> {
    match events::RejectionReason::try_from(value).ok()? {
        events::RejectionReason::Unspecified => None,
        events::RejectionReason::NotAVulnerability => Some(RejectionReason::NotAVulnerability),
        events::RejectionReason::OutOfScope => Some(RejectionReason::OutOfScope),
        events::RejectionReason::CannotReproduce => Some(RejectionReason::NotReproducible),
        events::RejectionReason::Other => Some(RejectionReason::Other),
        events::RejectionReason::InsufficientInformation => Some(RejectionReason::InsufficientInformation),
        events::RejectionReason::Withdrawn => Some(RejectionReason::Withdrawn),
    }
}

pub fn resolution_to_proto(r: Resolution) -> events::CaseResolution {
    match r {
        Resolution::Fixed => events::CaseResolution::Fixed,
        Resolution::WontFix => events::CaseResolution::WontFix,
        Resolution::EndOfLife => events::CaseResolution::EndOfLife,
        Resolution::Rejected => events::CaseResolution::Rejected,
        Resolution::Duplicate => events::CaseResolution::Duplicate,
    }
}

/// `Err` names why a resolution the proto has cannot be recorded.
pub fn resolution_from_proto(value: i32) -> Result<Resolution, &'static str> {
    match events::CaseResolution::try_from(value) {
        Ok(events::CaseResolution::Fixed) => Ok(Resolution::Fixed),
        Ok(events::CaseResolution::WontFix) => Ok(Resolution::WontFix),
        Ok(events::CaseResolution::EndOfLife) => Ok(Resolution::EndOfLife),
        Ok(events::CaseResolution::Rejected) => Ok(Resolution::Rejected),
        Ok(events::CaseResolution::Duplicate) => Ok(Resolution::Duplicate),
        Ok(events::CaseResolution::Mitigated | events::CaseResolution::Suspended) => {
            Err("resolution MITIGATED and SUSPENDED are not supported by the case lifecycle yet")
        }
        Ok(events::CaseResolution::Unspecified) | Err(_) => Err("resolution must be given"),
    }
}

pub fn level_to_proto(l: EscalationLevel) -> events::EscalationLevel {
    match l {
        EscalationLevel::Team => events::EscalationLevel::Team,
        EscalationLevel::Management => events::EscalationLevel::Management,
        EscalationLevel::Executive => events::EscalationLevel::Executive,
    }
}

pub fn level_from_proto(value: i32) -> Option<EscalationLevel> {
    match events::EscalationLevel::try_from(value).ok()? {
        events::EscalationLevel::Unspecified => None,
        events::EscalationLevel::Team => Some(EscalationLevel::Team),
        events::EscalationLevel::Management => Some(EscalationLevel::Management),
        events::EscalationLevel::Executive => Some(EscalationLevel::Executive),
    }
}

pub fn clock_to_proto(c: SlaClock) -> events::SlaClock {
    match c {
        SlaClock::Acknowledge => events::SlaClock::Acknowledge,
        SlaClock::Triage => events::SlaClock::Triage,
    }
}

pub fn clock_from_proto(value: i32) -> Option<SlaClock> {
    match events::SlaClock::try_from(value).ok()? {
        events::SlaClock::Acknowledge => Some(SlaClock::Acknowledge),
        events::SlaClock::Triage => Some(SlaClock::Triage),
        events::SlaClock::Unspecified | events::SlaClock::Remediation => None,
    }
}

pub fn ssvc_decision_to_proto(d: SsvcDecision) -> common::SsvcDecision {
    match d {
        SsvcDecision::Defer => common::SsvcDecision::Defer,
        SsvcDecision::Scheduled => common::SsvcDecision::Scheduled,
        SsvcDecision::OutOfCycle => common::SsvcDecision::OutOfCycle,
        SsvcDecision::Immediate => common::SsvcDecision::Immediate,
    }
}

fn ssvc_decision_from_proto(value: i32) -> Option<SsvcDecision> {
    match common::SsvcDecision::try_from(value).ok()? {
        common::SsvcDecision::Unspecified => None,
        common::SsvcDecision::Defer => Some(SsvcDecision::Defer),
        common::SsvcDecision::Scheduled => Some(SsvcDecision::Scheduled),
        common::SsvcDecision::OutOfCycle => Some(SsvcDecision::OutOfCycle),
        common::SsvcDecision::Immediate => Some(SsvcDecision::Immediate),
    }
}

/// The SSVC decision points in their common proto form, with the decision.
pub fn ssvc_to_proto(inputs: &SsvcInputs, decision: SsvcDecision) -> common::Ssvc {
    use psirt_domain::{Automatable, Exploitation, PublicSafetyImpact, TechnicalImpact, ValueDensity};
    common::Ssvc {
        exploitation: match inputs.exploitation {
            Exploitation::None => common::SsvcExploitation::None,
            Exploitation::PoC => common::SsvcExploitation::Poc,
            Exploitation::Active => common::SsvcExploitation::Active,
        }
        .into(),
        automatable: match inputs.automatable {
            Automatable::No => common::SsvcAutomatable::No,
            Automatable::Yes => common::SsvcAutomatable::Yes,
        }
        .into(),
        value_density: match inputs.value_density {
            ValueDensity::Diffuse => common::SsvcValueDensity::Diffuse,
            ValueDensity::Concentrated => common::SsvcValueDensity::Concentrated,
        }
        .into(),
        technical_impact: match inputs.technical_impact {
            TechnicalImpact::Partial => common::SsvcTechnicalImpact::Partial,
            TechnicalImpact::Total => common::SsvcTechnicalImpact::Total,
        }
        .into(),
        public_safety_impact: match inputs.public_safety_impact {
            PublicSafetyImpact::Minimal => common::SsvcPublicSafetyImpact::Minimal,
            PublicSafetyImpact::Significant => common::SsvcPublicSafetyImpact::Significant,
        }
        .into(),
        decision: ssvc_decision_to_proto(decision).into(),
    }
}

/// The SSVC decision points of a stored assessment, if every one is known.
pub fn ssvc_inputs_from_proto(ssvc: &common::Ssvc) -> Option<SsvcInputs> {
    use psirt_domain::{Automatable, Exploitation, PublicSafetyImpact, TechnicalImpact, ValueDensity};
    Some(SsvcInputs {
        exploitation: match common::SsvcExploitation::try_from(ssvc.exploitation).ok()? {
            common::SsvcExploitation::None => Exploitation::None,
            common::SsvcExploitation::Poc => Exploitation::PoC,
            common::SsvcExploitation::Active => Exploitation::Active,
            common::SsvcExploitation::Unspecified => return None,
        },
        automatable: match common::SsvcAutomatable::try_from(ssvc.automatable).ok()? {
            common::SsvcAutomatable::No => Automatable::No,
            common::SsvcAutomatable::Yes => Automatable::Yes,
            common::SsvcAutomatable::Unspecified => return None,
        },
        value_density: match common::SsvcValueDensity::try_from(ssvc.value_density).ok()? {
            common::SsvcValueDensity::Diffuse => ValueDensity::Diffuse,
            common::SsvcValueDensity::Concentrated => ValueDensity::Concentrated,
            common::SsvcValueDensity::Unspecified => return None,
        },
        technical_impact: match common::SsvcTechnicalImpact::try_from(ssvc.technical_impact).ok()? {
            common::SsvcTechnicalImpact::Partial => TechnicalImpact::Partial,
            common::SsvcTechnicalImpact::Total => TechnicalImpact::Total,
            common::SsvcTechnicalImpact::Unspecified => return None,
        },
        public_safety_impact: match common::SsvcPublicSafetyImpact::try_from(ssvc.public_safety_impact)
            .ok()?
        {
            common::SsvcPublicSafetyImpact::Minimal => PublicSafetyImpact::Minimal,
            common::SsvcPublicSafetyImpact::Significant => PublicSafetyImpact::Significant,
            common::SsvcPublicSafetyImpact::Unspecified => return None,
        },
    })
}

pub fn match_to_proto(m: Option<DuplicateMatch>) -> events::DuplicateMatchKind {
    match m {
        None => events::DuplicateMatchKind::Unspecified,
        Some(DuplicateMatch::Title) => events::DuplicateMatchKind::Title,
        Some(DuplicateMatch::TitleAndProduct) => events::DuplicateMatchKind::TitleAndProduct,
        Some(DuplicateMatch::ExternalReference) => events::DuplicateMatchKind::ExternalReference,
        Some(DuplicateMatch::ReporterAndProduct) => events::DuplicateMatchKind::ReporterAndProduct,
    }
}

pub fn match_from_proto(value: i32) -> Option<DuplicateMatch> {
    match events::DuplicateMatchKind::try_from(value).ok()? {
        events::DuplicateMatchKind::Unspecified => None,
        events::DuplicateMatchKind::Title => Some(DuplicateMatch::Title),
        events::DuplicateMatchKind::TitleAndProduct => Some(DuplicateMatch::TitleAndProduct),
        events::DuplicateMatchKind::ExternalReference => Some(DuplicateMatch::ExternalReference),
        events::DuplicateMatchKind::ReporterAndProduct => Some(DuplicateMatch::ReporterAndProduct),
    }
}

fn cvss_v31(score: &CvssScore) -> common::CvssV31 {
    common::CvssV31 {
        vector: score.vector.clone(),
        base_score: score.score,
        rating: rating_to_proto(Some(score.severity)).into(),
    }
}

fn cvss_v40(score: &CvssScore) -> common::CvssV40 {
    common::CvssV40 {
        vector: score.vector.clone(),
        score: score.score,
        rating: rating_to_proto(Some(score.severity)).into(),
    }
}

/// Turns a domain event into the event to append. `before` is the case as
/// it stood before the command (for the snapshots some events carry).
pub fn to_new_event(
    event: &CaseEvent,
    event_id: EventId,
    metadata: Metadata,
    before: Option<&CaseDetails>,
) -> NewEvent {
    let Encoded { event_type, schema_version, payload } = encode(event, before);
    let id: Uuid = event_id.into();
    NewEvent { id, subject: subject(event.case_id()), event_type, schema_version, payload, metadata }
}

/// The case's events on the stream, for the shared command path.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaseCodec;

impl EventCodec for CaseCodec {
    type Aggregate = Case;
    type Context = ();

    fn decode(&self, event: &RecordedEvent) -> Result<Option<CaseEvent>, DecodeError> {
        to_domain(event).map(Some)
    }

    fn encode(&self, event: &CaseEvent, before: &Case, (): &()) -> Encoded {
        encode(event, before.details())
    }
}

/// The stored form of a case event. `before` is the case as it stood
/// before the command (for the snapshots some events carry).
pub fn encode(event: &CaseEvent, before: Option<&CaseDetails>) -> Encoded {
    let cid = event.case_id().to_string();
    let ts = |t: &OffsetDateTime| Some(timestamp(*t));
    macro_rules! new {
        ($msg:expr) => {
            Encoded::message(&$msg)
        };
    }
    match event {
        CaseEvent::CaseOpened { key, report_id, title, channel, report_received_at, opened_at, .. } => {
            new!(events::CaseOpened {
                case_id: cid,
                case_key: key.to_string(),
                report_id: report_id.map(|r| r.to_string()).unwrap_or_default(),
                title: title.clone(),
                channel: channel.map_or(common::ReportChannel::Unspecified, channel_to_proto).into(),
                opened_at: ts(opened_at),
                report_received_at: report_received_at.as_ref().and_then(ts),
            })
        }
        CaseEvent::TriageStarted { started_at, .. } => {
            new!(events::TriageStarted { case_id: cid, started_at: ts(started_at) })
        }
        CaseEvent::CaseAssigned { assignee, team, assigned_at, .. } => new!(events::CaseAssigned {
            case_id: cid,
            assignee: assignee.clone(),
            team: team.clone().unwrap_or_default(),
            assigned_at: ts(assigned_at),
            previous_assignee: before.and_then(|c| c.assignee.clone()).unwrap_or_default(),
            // Empty in events written before the team was part of the case
            // (still version 1: old readers read the filled field right).
            previous_team: before.and_then(|c| c.team.clone()).unwrap_or_default(),
        }),
        CaseEvent::SeverityAssessed {
            cvss_v3,
            cvss_v4,
            ssvc_decision,
            rating,
            evidence,
            assessed_at,
            ..
        } => {
            let decision = ssvc_decision.as_deref().and_then(|d| d.parse::<SsvcDecision>().ok());
            let ssvc = match (evidence.ssvc_inputs, decision) {
                (Some(inputs), Some(d)) => Some(ssvc_to_proto(&inputs, d)),
                (Some(inputs), None) => Some(common::Ssvc {
                    decision: common::SsvcDecision::Unspecified.into(),
                    ..ssvc_to_proto(&inputs, SsvcDecision::Defer)
                }),
                (None, Some(d)) => {
                    Some(common::Ssvc { decision: ssvc_decision_to_proto(d).into(), ..Default::default() })
                }
                (None, None) => None,
            };
            new!(events::SeverityAssessed {
                case_id: cid,
                cvss_v31: cvss_v3.as_ref().map(cvss_v31),
                cvss_v40: cvss_v4.as_ref().map(cvss_v40),
                ssvc,
                severity: rating_to_proto(*rating).into(),
                known_exploited: evidence.known_exploited,
                epss_probability: evidence.epss_probability,
                epss_percentile: evidence.epss_percentile,
                cwe_ids: evidence.cwe_ids.clone(),
                rationale: evidence.rationale.clone(),
                assessed_at: ts(assessed_at),
            })
        }
        CaseEvent::AffectedProductsSet { products, set_at, .. } => new!(events::AffectedProductsSet {
            case_id: cid,
            products: products.iter().map(product_to_proto).collect(),
            set_at: ts(set_at),
        }),
        CaseEvent::CaseAccepted { note, accepted_at, .. } => new!(events::CaseAccepted {
            case_id: cid,
            case_key: before.map(|c| c.key.to_string()).unwrap_or_default(),
            severity: rating_to_proto(before.and_then(CaseDetails::rating)).into(),
            affected_products: before
                .map(|c| c.affected_products.iter().map(product_to_proto).collect())
                .unwrap_or_default(),
            note: note.clone(),
            accepted_at: ts(accepted_at),
        }),
        CaseEvent::CaseRejected { reason, text, rejected_at, .. } => new!(events::CaseRejected {
            case_id: cid,
            reason: rejection_to_proto(*reason).into(),
            reason_text: text.clone(),
            rejected_at: ts(rejected_at),
        }),
        CaseEvent::CaseMarkedDuplicate { of, of_key, note, marked_at, .. } => {
            new!(events::CaseMarkedDuplicate {
                case_id: cid,
                duplicate_of_case_id: of.to_string(),
                duplicate_of_case_key: of_key.map(|k| k.to_string()).unwrap_or_default(),
                note: note.clone(),
                marked_at: ts(marked_at),
            })
        }
        CaseEvent::DuplicateLinked { other_case, reason, hint, linked_at, .. } => {
            new!(events::DuplicateLinked {
                case_id: cid,
                other_case_id: other_case.to_string(),
                other_case_key: String::new(),
                other_report_id: hint.other_report_id.map(|r| r.to_string()).unwrap_or_default(),
                linked_at: ts(linked_at),
                report_id: hint.report_id.map(|r| r.to_string()).unwrap_or_default(),
                match_kind: match_to_proto(hint.match_kind).into(),
                reason: reason.clone(),
                similarity: hint.similarity,
                suspected_at: hint.suspected_at.as_ref().and_then(ts),
            })
        }
        CaseEvent::CveAssigned { cve_id, assigner, assigned_at, .. } => new!(events::CveAssigned {
            case_id: cid,
            cve_id: cve_id.to_string(),
            assigner: assigner.clone(),
            assigned_at: ts(assigned_at),
        }),
        CaseEvent::EmbargoSet { disclosure_at, time_zone, terms, set_at, .. } => new!(events::EmbargoSet {
            case_id: cid,
            disclosure_at: ts(disclosure_at),
            time_zone: time_zone.clone(),
            agreed_with: terms.agreed_with.clone(),
            note: terms.note.clone(),
            set_at: ts(set_at),
            local_disclosure_time: terms.local_disclosure_time.clone(),
            utc_offset_seconds: terms.utc_offset_seconds,
        }),
        CaseEvent::CaseEscalated {
            level, reason, automatic, incident, sla_deadline, escalated_at, ..
        } => {
            new!(events::CaseEscalated {
                case_id: cid,
                level: level_to_proto(*level).into(),
                reason: reason.clone(),
                incident: *incident,
                escalated_at: ts(escalated_at),
                automatic: *automatic,
                sla_clock: sla_deadline
                    .map_or(events::SlaClock::Unspecified, |d| clock_to_proto(d.clock))
                    .into(),
                sla_deadline: sla_deadline.as_ref().and_then(|d| ts(&d.deadline)),
                previous_level: before
                    .and_then(CaseDetails::escalation_level)
                    .map_or(events::EscalationLevel::Unspecified, level_to_proto)
                    .into(),
            })
        }
        CaseEvent::SlaBreached { clock, deadline, recorded_at, .. } => new!(events::SlaBreached {
            case_id: cid,
            clock: clock_to_proto(*clock).into(),
            deadline: ts(deadline),
            breached_at: ts(recorded_at),
            severity: rating_to_proto(before.and_then(CaseDetails::rating)).into(),
            ..Default::default()
        }),
        CaseEvent::RemediationStarted { plan_id, started_at, .. } => {
            new!(events::RemediationStarted {
                case_id: cid,
                plan_id: plan_id.clone(),
                started_at: ts(started_at)
            })
        }
        CaseEvent::CaseFixed { plan_id, fixed_versions, fixed_at, .. } => new!(events::CaseFixed {
            case_id: cid,
            plan_id: plan_id.clone(),
            fixed_versions: fixed_versions.clone(),
            fixed_at: ts(fixed_at),
        }),
        CaseEvent::CaseDisclosed { advisory_id, tracking_id, disclosed_at, .. } => {
            new!(events::CaseDisclosed {
                case_id: cid,
                advisory_id: advisory_id.clone(),
                tracking_id: tracking_id.clone(),
                disclosed_at: ts(disclosed_at),
            })
        }
        CaseEvent::CaseClosed { resolution, root_cause, lessons_learned, closed_at, .. } => {
            new!(events::CaseClosed {
                case_id: cid,
                resolution: resolution_to_proto(*resolution).into(),
                root_cause: root_cause.clone(),
                lessons_learned: lessons_learned.clone(),
                closed_at: ts(closed_at),
            })
        }
        CaseEvent::CaseReopened { reason, reopened_at, .. } => new!(events::CaseReopened {
            case_id: cid,
            reason: reason.clone(),
            reopened_at: ts(reopened_at),
            previous_resolution: before
                .and_then(|c| c.closure.as_ref())
                .map_or(events::CaseResolution::Unspecified, |c| resolution_to_proto(c.resolution))
                .into(),
        }),
    }
}

fn bad(event: &RecordedEvent, message: impl Into<String>) -> DecodeError {
    DecodeError::Payload {
        event_type: event.event_type.clone(),
        sequence: event.sequence,
        message: message.into(),
    }
}

fn parse<T: std::str::FromStr>(event: &RecordedEvent, field: &str, value: &str) -> Result<T, DecodeError> {
    value.parse().map_err(|_| bad(event, format!("{field} {value:?} does not parse")))
}

fn time_of(event: &RecordedEvent, t: Option<&Timestamp>) -> OffsetDateTime {
    t.and_then(from_timestamp).unwrap_or(event.stored_at)
}

/// An optional id: empty is `None`, anything else must parse.
fn parse_opt<T: std::str::FromStr>(
    event: &RecordedEvent,
    field: &str,
    value: &str,
) -> Result<Option<T>, DecodeError> {
    if value.is_empty() { Ok(None) } else { parse(event, field, value).map(Some) }
}

fn text_opt(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn score(event: &RecordedEvent, vector: &str, score: f64, rating: i32) -> Result<CvssScore, DecodeError> {
    let version = if vector.starts_with("CVSS:4.0/") {
        CvssVersion::V4_0
    } else if vector.starts_with("CVSS:3.0/") {
        CvssVersion::V3_0
    } else if vector.starts_with("CVSS:3.1/") {
        CvssVersion::V3_1
    } else {
        return Err(bad(event, format!("CVSS vector {vector:?} has no known version prefix")));
    };
    let severity = rating_from_proto(rating).unwrap_or_else(|| CvssSeverity::from_score(score));
    Ok(CvssScore { vector: vector.to_owned(), version, score, severity })
}

/// Decodes a stored case event into the domain's form, for deciding
/// commands. Unknown types are an error: a case subject holds case events only.
pub fn to_domain(event: &RecordedEvent) -> Result<CaseEvent, DecodeError> {
    let t = event.event_type.as_str();
    let id = |e: &RecordedEvent, v: &str| parse::<CaseId>(e, "case_id", v);
    Ok(if psirt_eventstore::is_type::<events::CaseOpened>(t) {
        let e: events::CaseOpened = event.decode()?;
        CaseEvent::CaseOpened {
            case_id: id(event, &e.case_id)?,
            key: parse::<CaseKey>(event, "case_key", &e.case_key)?,
            report_id: if e.report_id.is_empty() {
                None
            } else {
                Some(parse(event, "report_id", &e.report_id)?)
            },
            title: e.title,
            channel: channel_from_proto(e.channel),
            report_received_at: e.report_received_at.as_ref().and_then(from_timestamp),
            opened_at: time_of(event, e.opened_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::TriageStarted>(t) {
        let e: events::TriageStarted = event.decode()?;
        CaseEvent::TriageStarted {
            case_id: id(event, &e.case_id)?,
            started_at: time_of(event, e.started_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::CaseAssigned>(t) {
        let e: events::CaseAssigned = event.decode()?;
        CaseEvent::CaseAssigned {
            case_id: id(event, &e.case_id)?,
            assignee: e.assignee,
            team: text_opt(e.team),
            assigned_at: time_of(event, e.assigned_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::SeverityAssessed>(t) {
        let e: events::SeverityAssessed = event.decode()?;
        let cvss_v3 = match &e.cvss_v31 {
            None => None,
            Some(c) => Some(score(event, &c.vector, c.base_score, c.rating)?),
        };
        let cvss_v4 = match &e.cvss_v40 {
            None => None,
            Some(c) => Some(score(event, &c.vector, c.score, c.rating)?),
        };
        CaseEvent::SeverityAssessed {
            case_id: id(event, &e.case_id)?,
            cvss_v3,
            cvss_v4,
            ssvc_decision: e
                .ssvc
                .as_ref()
                .and_then(|s| ssvc_decision_from_proto(s.decision))
                .map(|d| d.as_str().to_owned()),
            rating: rating_from_proto(e.severity),
            evidence: SeverityEvidence {
                ssvc_inputs: e.ssvc.as_ref().and_then(ssvc_inputs_from_proto),
                known_exploited: e.known_exploited,
                epss_probability: e.epss_probability,
                epss_percentile: e.epss_percentile,
                cwe_ids: e.cwe_ids,
                rationale: e.rationale,
            },
            assessed_at: time_of(event, e.assessed_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::AffectedProductsSet>(t) {
        let e: events::AffectedProductsSet = event.decode()?;
        CaseEvent::AffectedProductsSet {
            case_id: id(event, &e.case_id)?,
            products: e.products.iter().map(product_from_proto).collect(),
            set_at: time_of(event, e.set_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::CaseAccepted>(t) {
        let e: events::CaseAccepted = event.decode()?;
        CaseEvent::CaseAccepted {
            case_id: id(event, &e.case_id)?,
            note: e.note,
            accepted_at: time_of(event, e.accepted_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::CaseRejected>(t) {
        let e: events::CaseRejected = event.decode()?;
        CaseEvent::CaseRejected {
            case_id: id(event, &e.case_id)?,
            reason: rejection_from_proto(e.reason).ok_or_else(|| bad(event, "unknown rejection reason"))?,
            text: e.reason_text,
            rejected_at: time_of(event, e.rejected_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::CaseMarkedDuplicate>(t) {
        let e: events::CaseMarkedDuplicate = event.decode()?;
        CaseEvent::CaseMarkedDuplicate {
            case_id: id(event, &e.case_id)?,
            of: parse(event, "duplicate_of_case_id", &e.duplicate_of_case_id)?,
            of_key: parse_opt(event, "duplicate_of_case_key", &e.duplicate_of_case_key)?,
            note: e.note,
            marked_at: time_of(event, e.marked_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::DuplicateLinked>(t) {
        let e: events::DuplicateLinked = event.decode()?;
        CaseEvent::DuplicateLinked {
            case_id: id(event, &e.case_id)?,
            other_case: parse(event, "other_case_id", &e.other_case_id)?,
            reason: e.reason,
            hint: DuplicateHint {
                report_id: parse_opt(event, "report_id", &e.report_id)?,
                other_report_id: parse_opt(event, "other_report_id", &e.other_report_id)?,
                match_kind: match_from_proto(e.match_kind),
                similarity: e.similarity,
                suspected_at: e.suspected_at.as_ref().and_then(from_timestamp),
            },
            linked_at: time_of(event, e.linked_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::CveAssigned>(t) {
        let e: events::CveAssigned = event.decode()?;
        CaseEvent::CveAssigned {
            case_id: id(event, &e.case_id)?,
            cve_id: parse(event, "cve_id", &e.cve_id)?,
            assigner: e.assigner,
            assigned_at: time_of(event, e.assigned_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::EmbargoSet>(t) {
        let e: events::EmbargoSet = event.decode()?;
        CaseEvent::EmbargoSet {
            case_id: id(event, &e.case_id)?,
            disclosure_at: e
                .disclosure_at
                .as_ref()
                .and_then(from_timestamp)
                .ok_or_else(|| bad(event, "embargo without disclosure_at"))?,
            time_zone: e.time_zone,
            terms: EmbargoTerms {
                agreed_with: e.agreed_with,
                note: e.note,
                local_disclosure_time: e.local_disclosure_time,
                utc_offset_seconds: e.utc_offset_seconds,
            },
            set_at: time_of(event, e.set_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::CaseEscalated>(t) {
        let e: events::CaseEscalated = event.decode()?;
        CaseEvent::CaseEscalated {
            case_id: id(event, &e.case_id)?,
            level: level_from_proto(e.level).ok_or_else(|| bad(event, "unknown escalation level"))?,
            reason: e.reason,
            automatic: e.automatic,
            incident: e.incident,
            sla_deadline: match (
                clock_from_proto(e.sla_clock),
                e.sla_deadline.as_ref().and_then(from_timestamp),
            ) {
                (Some(clock), Some(deadline)) => Some(SlaDeadline { clock, deadline }),
                _ => None,
            },
            escalated_at: time_of(event, e.escalated_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::SlaBreached>(t) {
        let e: events::SlaBreached = event.decode()?;
        CaseEvent::SlaBreached {
            case_id: id(event, &e.case_id)?,
            clock: clock_from_proto(e.clock).ok_or_else(|| bad(event, "unknown sla clock"))?,
            deadline: time_of(event, e.deadline.as_ref()),
            recorded_at: time_of(event, e.breached_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::RemediationStarted>(t) {
        let e: events::RemediationStarted = event.decode()?;
        CaseEvent::RemediationStarted {
            case_id: id(event, &e.case_id)?,
            plan_id: e.plan_id,
            started_at: time_of(event, e.started_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::CaseFixed>(t) {
        let e: events::CaseFixed = event.decode()?;
        CaseEvent::CaseFixed {
            case_id: id(event, &e.case_id)?,
            plan_id: e.plan_id,
            fixed_versions: e.fixed_versions,
            fixed_at: time_of(event, e.fixed_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::CaseDisclosed>(t) {
        let e: events::CaseDisclosed = event.decode()?;
        CaseEvent::CaseDisclosed {
            case_id: id(event, &e.case_id)?,
            advisory_id: e.advisory_id,
            tracking_id: e.tracking_id,
            disclosed_at: time_of(event, e.disclosed_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::CaseClosed>(t) {
        let e: events::CaseClosed = event.decode()?;
        CaseEvent::CaseClosed {
            case_id: id(event, &e.case_id)?,
            resolution: resolution_from_proto(e.resolution).map_err(|m| bad(event, m))?,
            root_cause: e.root_cause,
            lessons_learned: e.lessons_learned,
            closed_at: time_of(event, e.closed_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::CaseReopened>(t) {
        let e: events::CaseReopened = event.decode()?;
        CaseEvent::CaseReopened {
            case_id: id(event, &e.case_id)?,
            reason: e.reason,
            reopened_at: time_of(event, e.reopened_at.as_ref()),
        }
    } else {
        return Err(DecodeError::UnknownType {
            event_type: event.event_type.clone(),
            sequence: event.sequence,
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use psirt_domain::{AffectedProduct, CveId, ReportId, VersionSpec};

    fn recorded(new: NewEvent, sequence: u64) -> RecordedEvent {
        RecordedEvent::from_new(&new, sequence)
    }

    #[test]
    fn every_case_event_round_trips_through_its_proto_form() {
        let case_id = CaseId::for_report(ReportId::for_request("p", "r"));
        let other = CaseId::for_report(ReportId::for_request("p", "other"));
        let at = OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("time");
        let v3 = psirt_domain::CvssVector::parse("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").expect("v3");
        let all = vec![
            CaseEvent::CaseOpened {
                case_id,
                key: CaseKey::new(2026, 1).expect("key"),
                report_id: Some(ReportId::for_request("p", "r")),
                title: "SQL injection".into(),
                opened_at: at,
                channel: None,
                report_received_at: None,
            },
            CaseEvent::TriageStarted { case_id, started_at: at },
            CaseEvent::CaseAssigned { case_id, assignee: "alice".into(), assigned_at: at, team: None },
            CaseEvent::SeverityAssessed {
                case_id,
                cvss_v3: Some(CvssScore::of(&v3)),
                cvss_v4: None,
                ssvc_decision: Some("Out-of-Cycle".into()),
                rating: Some(CvssSeverity::Critical),
                assessed_at: at,
                evidence: SeverityEvidence::default(),
            },
            CaseEvent::AffectedProductsSet {
                case_id,
                products: vec![AffectedProduct {
                    product: "Portal".into(),
                    versions: VersionSpec::Range("<2".into()),
                }],
                set_at: at,
            },
            CaseEvent::CaseAccepted { case_id, accepted_at: at, note: String::new() },
            CaseEvent::CaseRejected {
                case_id,
                reason: RejectionReason::NotReproducible,
                text: "t".into(),
                rejected_at: at,
            },
            CaseEvent::CaseMarkedDuplicate {
                case_id,
                of: other,
                marked_at: at,
                of_key: None,
                note: String::new(),
            },
            CaseEvent::DuplicateLinked {
                case_id,
                other_case: other,
                reason: "same".into(),
                linked_at: at,
                hint: DuplicateHint::default(),
            },
            CaseEvent::CveAssigned {
                case_id,
                cve_id: CveId::parse("CVE-2026-1234").expect("cve"),
                assigned_at: at,
                assigner: String::new(),
            },
            CaseEvent::EmbargoSet {
                case_id,
                disclosure_at: at,
                time_zone: "UTC".into(),
                set_at: at,
                terms: EmbargoTerms::default(),
            },
            CaseEvent::CaseEscalated {
                case_id,
                level: EscalationLevel::Management,
                reason: "r".into(),
                automatic: false,
                escalated_at: at,
                incident: false,
                sla_deadline: None,
            },
            CaseEvent::SlaBreached { case_id, clock: SlaClock::Triage, deadline: at, recorded_at: at },
            CaseEvent::RemediationStarted { case_id, started_at: at, plan_id: String::new() },
            CaseEvent::CaseFixed {
                case_id,
                fixed_at: at,
                plan_id: String::new(),
                fixed_versions: Vec::new(),
            },
            CaseEvent::CaseDisclosed {
                case_id,
                disclosed_at: at,
                advisory_id: String::new(),
                tracking_id: String::new(),
            },
            CaseEvent::CaseClosed {
                case_id,
                resolution: Resolution::WontFix,
                root_cause: "rc".into(),
                lessons_learned: "ll".into(),
                closed_at: at,
            },
            CaseEvent::CaseReopened { case_id, reason: "again".into(), reopened_at: at },
        ];
        for (i, event) in all.into_iter().enumerate() {
            let new = to_new_event(&event, EventId::new(), Metadata::default(), None);
            assert_eq!(new.subject, subject(case_id));
            let back = to_domain(&recorded(new, i as u64 + 1)).expect("decodes");
            assert_eq!(back, event);
        }
    }

    #[test]
    fn command_event_ids_differ_by_type_and_request() {
        let case = CaseId::new();
        let a = command_event_id(case, "assign", "alice", "r1", "CaseAssigned");
        assert_eq!(a, command_event_id(case, "assign", "alice", "r1", "CaseAssigned"));
        assert_ne!(a, command_event_id(case, "assign", "alice", "r1", "TriageStarted"));
        assert_ne!(a, command_event_id(case, "assign", "bob", "r1", "CaseAssigned"));
        assert_ne!(a, command_event_id(case, "assign", "alice", "r2", "CaseAssigned"));
    }
}
