//! The case view (`psirt.triage.v1.Case`) folded from stored events: the
//! case's own events in full, and the facts other aggregates contribute
//! (acknowledgement, duplicates marked against the case). The projection and
//! the command responses fold with this same code.

use prost::Message;
use psirt_domain::{CvssSeverity, SlaPolicy};
use psirt_eventstore::{DecodeError, RecordedEvent};
use psirt_proto::{common, events, triage};
use time::OffsetDateTime;

use crate::mapping::{self, from_timestamp, timestamp};

/// The SLA policy name shown on clocks.
pub const SLA_POLICY_NAME: &str = "config";

fn later(
    a: Option<prost_types::Timestamp>,
    b: Option<prost_types::Timestamp>,
) -> Option<prost_types::Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if (a.seconds, a.nanos) >= (b.seconds, b.nanos) { a } else { b }),
        (a, b) => a.or(b),
    }
}

pub(crate) fn touch(view: &mut triage::Case, at: Option<prost_types::Timestamp>, sequence: u64) {
    view.updated_at = later(view.updated_at, at);
    view.last_sequence = view.last_sequence.max(sequence);
}

fn clock(view: &mut triage::Case, which: events::SlaClock) -> Option<&mut triage::SlaClockStatus> {
    view.sla_clocks.iter_mut().find(|c| c.clock == which as i32)
}

/// Stops a clock the first time its goal is reached.
fn meet(view: &mut triage::Case, which: events::SlaClock, at: Option<prost_types::Timestamp>) {
    if let Some(c) = clock(view, which)
        && c.met_at.is_none()
    {
        c.met_at = at;
    }
}

/// Folds one event of the case's own subject. Unknown case event types are
/// an error (the projection parks them).
pub fn apply_case_event(view: &mut triage::Case, event: &RecordedEvent) -> Result<(), DecodeError> {
    let t = event.event_type.as_str();
    let at;
    if psirt_eventstore::is_type::<events::CaseOpened>(t) {
        let e: events::CaseOpened = event.decode()?;
        at = e.opened_at;
        view.case_id = e.case_id;
        view.case_key = e.case_key;
        view.status = common::CaseStatus::Received.into();
        view.title = e.title;
        if !e.report_id.is_empty() && !view.report_ids.contains(&e.report_id) {
            view.report_ids.insert(0, e.report_id);
        }
        view.channel = e.channel;
        view.opened_at = e.opened_at;
        let started = e.report_received_at.or(e.opened_at);
        let mut clocks = Vec::new();
        for which in [events::SlaClock::Acknowledge, events::SlaClock::Triage] {
            let mut c = view
                .sla_clocks
                .iter()
                .find(|c| c.clock == which as i32)
                .cloned()
                .unwrap_or_else(|| triage::SlaClockStatus { clock: which.into(), ..Default::default() });
            c.started_at = started;
            clocks.push(c);
        }
        view.sla_clocks = clocks;
    } else if psirt_eventstore::is_type::<events::TriageStarted>(t) {
        let e: events::TriageStarted = event.decode()?;
        at = e.started_at;
        view.status = common::CaseStatus::Triage.into();
    } else if psirt_eventstore::is_type::<events::CaseAssigned>(t) {
        let e: events::CaseAssigned = event.decode()?;
        at = e.assigned_at;
        view.assignee = e.assignee;
        view.team = e.team;
    } else if psirt_eventstore::is_type::<events::SeverityAssessed>(t) {
        let e: events::SeverityAssessed = event.decode()?;
        at = e.assessed_at;
        view.severity = Some(triage::Severity {
            cvss_v31: e.cvss_v31,
            cvss_v40: e.cvss_v40,
            ssvc: e.ssvc,
            rating: e.severity,
            known_exploited: e.known_exploited,
            epss_probability: e.epss_probability,
            epss_percentile: e.epss_percentile,
            cwe_ids: e.cwe_ids,
            rationale: e.rationale,
            assessed_at: e.assessed_at,
            assessed_by: event.metadata.actor.clone().unwrap_or_default(),
        });
    } else if psirt_eventstore::is_type::<events::AffectedProductsSet>(t) {
        let e: events::AffectedProductsSet = event.decode()?;
        at = e.set_at;
        view.affected_products = e.products;
    } else if psirt_eventstore::is_type::<events::CaseAccepted>(t) {
        let e: events::CaseAccepted = event.decode()?;
        at = e.accepted_at;
        view.status = common::CaseStatus::Accepted.into();
        meet(view, events::SlaClock::Triage, at);
    } else if psirt_eventstore::is_type::<events::CaseRejected>(t) {
        let e: events::CaseRejected = event.decode()?;
        at = e.rejected_at;
        view.status = common::CaseStatus::Rejected.into();
        view.rejection_reason = e.reason;
        view.rejection_text = e.reason_text;
        meet(view, events::SlaClock::Triage, at);
    } else if psirt_eventstore::is_type::<events::CaseMarkedDuplicate>(t) {
        let e: events::CaseMarkedDuplicate = event.decode()?;
        at = e.marked_at;
        view.status = common::CaseStatus::Duplicate.into();
        view.duplicate_of_case_id = e.duplicate_of_case_id;
        meet(view, events::SlaClock::Triage, at);
    } else if psirt_eventstore::is_type::<events::DuplicateLinked>(t) {
        let e: events::DuplicateLinked = event.decode()?;
        at = e.linked_at;
        if !view.suspected_duplicate_case_ids.contains(&e.other_case_id) {
            view.suspected_duplicate_case_ids.push(e.other_case_id);
        }
    } else if psirt_eventstore::is_type::<events::CveAssigned>(t) {
        let e: events::CveAssigned = event.decode()?;
        at = e.assigned_at;
        if !view.cve_ids.contains(&e.cve_id) {
            view.cve_ids.push(e.cve_id);
        }
    } else if psirt_eventstore::is_type::<events::EmbargoSet>(t) {
        let e: events::EmbargoSet = event.decode()?;
        at = e.set_at;
        view.embargo = Some(triage::Embargo {
            disclosure_at: e.disclosure_at,
            time_zone: e.time_zone,
            local_disclosure_time: e.local_disclosure_time,
            utc_offset_seconds: e.utc_offset_seconds,
            active: false,
            agreed_with: e.agreed_with,
            note: e.note,
            set_at: e.set_at,
        });
    } else if psirt_eventstore::is_type::<events::CaseEscalated>(t) {
        let e: events::CaseEscalated = event.decode()?;
        at = e.escalated_at;
        view.escalation_level = view.escalation_level.max(e.level);
        view.incident |= e.incident;
    } else if psirt_eventstore::is_type::<events::SlaBreached>(t) {
        let e: events::SlaBreached = event.decode()?;
        at = e.breached_at;
        if let Some(which) = events::SlaClock::try_from(e.clock).ok()
            && let Some(c) = clock(view, which)
            && c.breached_at.is_none()
        {
            c.breached_at = e.breached_at;
        }
    } else if psirt_eventstore::is_type::<events::RemediationStarted>(t) {
        let e: events::RemediationStarted = event.decode()?;
        at = e.started_at;
        view.status = common::CaseStatus::Remediating.into();
    } else if psirt_eventstore::is_type::<events::CaseFixed>(t) {
        let e: events::CaseFixed = event.decode()?;
        at = e.fixed_at;
        view.status = common::CaseStatus::Fixed.into();
    } else if psirt_eventstore::is_type::<events::CaseDisclosed>(t) {
        let e: events::CaseDisclosed = event.decode()?;
        at = e.disclosed_at;
        view.status = common::CaseStatus::Disclosed.into();
    } else if psirt_eventstore::is_type::<events::CaseClosed>(t) {
        let e: events::CaseClosed = event.decode()?;
        at = e.closed_at;
        view.status = common::CaseStatus::Closed.into();
        view.resolution = e.resolution;
        view.root_cause = e.root_cause;
        view.lessons_learned = e.lessons_learned;
        view.closed_at = e.closed_at;
    } else if psirt_eventstore::is_type::<events::CaseReopened>(t) {
        let e: events::CaseReopened = event.decode()?;
        at = e.reopened_at;
        view.status = common::CaseStatus::Triage.into();
        view.reopen_count += 1;
        view.resolution = 0;
        view.root_cause.clear();
        view.lessons_learned.clear();
        view.closed_at = None;
        view.rejection_reason = 0;
        view.rejection_text.clear();
        view.duplicate_of_case_id.clear();
        view.escalation_level = 0;
    } else {
        return Err(DecodeError::UnknownType {
            event_type: event.event_type.clone(),
            sequence: event.sequence,
        });
    }
    view.version = view.version.max(event.sequence);
    touch(view, at, event.sequence);
    Ok(())
}

/// The report acknowledged to the reporter stops the ACKNOWLEDGE clock.
pub fn apply_acknowledged(view: &mut triage::Case, at: Option<prost_types::Timestamp>, sequence: u64) {
    meet(view, events::SlaClock::Acknowledge, at);
    touch(view, at, sequence);
}

/// Another case was marked a duplicate of this one.
pub fn apply_duplicate_marked(
    view: &mut triage::Case,
    duplicate: &triage::Case,
    at: Option<prost_types::Timestamp>,
    sequence: u64,
) {
    if !view.duplicate_case_ids.contains(&duplicate.case_id) {
        view.duplicate_case_ids.push(duplicate.case_id.clone());
    }
    for report in &duplicate.report_ids {
        if !view.report_ids.contains(report) {
            view.report_ids.push(report.clone());
        }
    }
    touch(view, at, sequence);
}

/// Another case was linked to this one as a suspected duplicate.
pub fn apply_linked_back(
    view: &mut triage::Case,
    other: &str,
    at: Option<prost_types::Timestamp>,
    sequence: u64,
) {
    if !view.suspected_duplicate_case_ids.iter().any(|c| c == other) {
        view.suspected_duplicate_case_ids.push(other.to_owned());
    }
    touch(view, at, sequence);
}

/// The overall rating of the view.
pub fn rating(view: &triage::Case) -> Option<CvssSeverity> {
    view.severity.as_ref().and_then(|s| mapping::rating_from_proto(s.rating))
}

fn is_open_status(view: &triage::Case) -> bool {
    !matches!(
        common::CaseStatus::try_from(view.status),
        Ok(common::CaseStatus::Disclosed | common::CaseStatus::Closed)
    )
}

/// Due times from the policy and the case's rating (stored with the view).
pub fn schedule(view: &mut triage::Case, policy: &SlaPolicy) {
    let clocks = *policy.clocks_for(rating(view));
    for c in &mut view.sla_clocks {
        let window = match events::SlaClock::try_from(c.clock) {
            Ok(events::SlaClock::Acknowledge) => clocks.acknowledge,
            Ok(events::SlaClock::Triage) => clocks.triage,
            _ => continue,
        };
        c.due_at = c
            .started_at
            .as_ref()
            .and_then(from_timestamp)
            .and_then(|s| s.checked_add(window.as_duration()))
            .map(timestamp);
        c.sla_policy = SLA_POLICY_NAME.to_owned();
    }
}

/// The time-dependent parts of the view (clock states, whether the embargo
/// is in force), computed when it is served.
pub fn refresh(view: &mut triage::Case, now: OffsetDateTime) {
    let open = is_open_status(view);
    for c in &mut view.sla_clocks {
        let started = c.started_at.as_ref().and_then(from_timestamp);
        let due = c.due_at.as_ref().and_then(from_timestamp);
        let met = c.met_at.as_ref().and_then(from_timestamp);
        c.state = match (started, due, met) {
            (_, Some(due), Some(met)) => {
                if met > due {
                    triage::SlaState::MetLate
                } else {
                    triage::SlaState::Met
                }
            }
            (Some(started), Some(due), None) => {
                let window = due - started;
                if now >= due {
                    triage::SlaState::Breached
                } else if now >= due - window / 4 {
                    triage::SlaState::DueSoon
                } else {
                    triage::SlaState::OnTrack
                }
            }
            _ => triage::SlaState::Unspecified,
        }
        .into();
    }
    if let Some(embargo) = &mut view.embargo {
        embargo.active =
            open && embargo.disclosure_at.as_ref().and_then(from_timestamp).is_some_and(|d| d > now);
    }
}

/// The earliest due time of the clocks not yet met, in epoch ms.
pub fn next_due_ms(view: &triage::Case) -> Option<i64> {
    view.sla_clocks
        .iter()
        .filter(|c| c.met_at.is_none())
        .filter_map(|c| c.due_at.as_ref().and_then(mapping::timestamp_millis))
        .min()
}

/// One clock's (due, due soon, met) times in epoch ms, for filtering by state.
pub fn clock_millis(view: &triage::Case, which: events::SlaClock) -> (Option<i64>, Option<i64>, Option<i64>) {
    let Some(c) = view.sla_clocks.iter().find(|c| c.clock == which as i32) else {
        return (None, None, None);
    };
    let ms = |t: &Option<prost_types::Timestamp>| t.as_ref().and_then(mapping::timestamp_millis);
    let (started, due) = (ms(&c.started_at), ms(&c.due_at));
    let soon = match (started, due) {
        (Some(s), Some(d)) => Some(d - (d - s) / 4),
        _ => None,
    };
    (due, soon, ms(&c.met_at))
}

/// The instant the embargo holds until, while the case is not disclosed.
pub fn embargo_until_ms(view: &triage::Case) -> Option<i64> {
    if !is_open_status(view) {
        return None;
    }
    view.embargo.as_ref().and_then(|e| e.disclosure_at.as_ref()).and_then(mapping::timestamp_millis)
}

/// Most tickets a case view lists; a link beyond is left out of the view (and logged),
/// never the case's own facts. One ticket per tracker subscription and case: far more
/// than any real configuration.
pub const MAX_TICKETS_PER_CASE: usize = 100;

/// Whether `event` is a ticket event of the notification service
/// ([`apply_ticket_event`] folds it).
pub fn is_ticket_event(event: &RecordedEvent) -> bool {
    psirt_eventstore::is_type::<events::ExternalTicketLinked>(&event.event_type)
        || psirt_eventstore::is_type::<events::ExternalTicketUpdated>(&event.event_type)
}

/// Folds a ticket event of the notification service into the case's
/// `external_tickets` (one entry per tracker and key): a link adds the ticket, an
/// update sets its tracker status (a ticket the tracker no longer has stays listed,
/// as `DELETED`). Returns whether the view changed.
pub fn apply_ticket_event(view: &mut triage::Case, event: &RecordedEvent) -> Result<bool, DecodeError> {
    let t = event.event_type.as_str();
    let at = if psirt_eventstore::is_type::<events::ExternalTicketLinked>(t) {
        let e: events::ExternalTicketLinked = event.decode()?;
        let listed = view.external_tickets.len();
        let found = view.external_tickets.iter_mut().find(|x| x.system == e.system && x.key == e.key);
        match found {
            Some(ticket) => {
                ticket.url = e.url;
                ticket.action_id = e.action_id;
            }
            None if listed >= MAX_TICKETS_PER_CASE => {
                tracing::warn!(
                    case_id = %view.case_id,
                    key = %e.key,
                    "case view lists {MAX_TICKETS_PER_CASE} tickets already, this one is left out"
                );
                return Ok(false);
            }
            None => view.external_tickets.push(triage::ExternalTicket {
                system: e.system,
                key: e.key,
                url: e.url,
                action_id: e.action_id,
                external_status: String::new(),
                status_category: events::TicketStatusCategory::Unspecified.into(),
            }),
        }
        e.linked_at
    } else if psirt_eventstore::is_type::<events::ExternalTicketUpdated>(t) {
        let e: events::ExternalTicketUpdated = event.decode()?;
        let Some(ticket) = view.external_tickets.iter_mut().find(|x| x.system == e.system && x.key == e.key)
        else {
            // An update of a link the view has not seen (left out above).
            return Ok(false);
        };
        if !e.external_status.is_empty() {
            ticket.external_status = e.external_status;
        }
        if e.status_category != events::TicketStatusCategory::Unspecified as i32 {
            ticket.status_category = e.status_category;
        }
        e.updated_at
    } else {
        return Ok(false);
    };
    touch(view, at, event.sequence);
    Ok(true)
}

/// The `case_id` of an event of another service, if it carries one where
/// this service's events do (field 2; field 3 for deliveries). Cheap: one
/// partial decode, no knowledge of the message. Subscriptions belong to no
/// case (their field 2 is something else).
pub fn foreign_case_id(event: &RecordedEvent) -> Option<String> {
    if event.event_type.starts_with("psirt.events.v1.Subscription") {
        return None;
    }
    #[derive(Clone, PartialEq, Message)]
    struct Field2 {
        #[prost(string, tag = "2")]
        case_id: String,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Field3 {
        #[prost(string, tag = "3")]
        case_id: String,
    }
    let raw = if event.event_type.starts_with("psirt.events.v1.Delivery") {
        Field3::decode(event.payload.as_ref()).ok()?.case_id
    } else {
        Field2::decode(event.payload.as_ref()).ok()?.case_id
    };
    raw.parse::<psirt_domain::CaseId>().ok().map(|id| id.to_string())
}

/// When an event happened by its own timestamp, for the timeline; the
/// stream's time for types this service does not know.
pub fn occurred_at(event: &RecordedEvent) -> OffsetDateTime {
    fn pick<M: psirt_proto::EventSchema>(
        event: &RecordedEvent,
        f: impl Fn(&M) -> Option<prost_types::Timestamp>,
    ) -> Option<OffsetDateTime> {
        event.decode::<M>().ok().and_then(|m| f(&m)).as_ref().and_then(from_timestamp)
    }
    let t = event.event_type.as_str();
    let found = if psirt_eventstore::is_type::<events::ReportReceived>(t) {
        pick::<events::ReportReceived>(event, |e| e.received_at)
    } else if psirt_eventstore::is_type::<events::ReportAcknowledged>(t) {
        pick::<events::ReportAcknowledged>(event, |e| e.acknowledged_at)
    } else if psirt_eventstore::is_type::<events::ReporterMessageAdded>(t) {
        pick::<events::ReporterMessageAdded>(event, |e| e.sent_at)
    } else if psirt_eventstore::is_type::<events::DuplicateSuspected>(t) {
        pick::<events::DuplicateSuspected>(event, |e| e.suspected_at)
    } else if event.subject.starts_with(mapping::SUBJECT_PREFIX) {
        let mut view = triage::Case::default();
        apply_case_event(&mut view, event).ok().and(view.updated_at).as_ref().and_then(from_timestamp)
    } else {
        None
    };
    found.unwrap_or(event.stored_at)
}

/// One human-readable line for the timeline, at most 300 characters.
pub fn summary(event: &RecordedEvent) -> String {
    let t = event.event_type.as_str();
    let actor = event.metadata.actor.clone().unwrap_or_default();
    let by = if actor.is_empty() { String::new() } else { format!(" by {actor}") };
    let line = if psirt_eventstore::is_type::<events::ReportReceived>(t) {
        event.decode::<events::ReportReceived>().map(|e| format!("Report received: {}", e.title)).ok()
    } else if psirt_eventstore::is_type::<events::ReportAcknowledged>(t) {
        Some(format!("Report acknowledged{by}"))
    } else if psirt_eventstore::is_type::<events::ReporterMessageAdded>(t) {
        Some(format!("Message exchanged with the reporter{by}"))
    } else if psirt_eventstore::is_type::<events::DuplicateSuspected>(t) {
        event
            .decode::<events::DuplicateSuspected>()
            .map(|e| format!("Suspected duplicate of report {}", e.other_report_id))
            .ok()
    } else if psirt_eventstore::is_type::<events::CaseOpened>(t) {
        event.decode::<events::CaseOpened>().map(|e| format!("Case {} opened: {}", e.case_key, e.title)).ok()
    } else if psirt_eventstore::is_type::<events::TriageStarted>(t) {
        Some(format!("Triage started{by}"))
    } else if psirt_eventstore::is_type::<events::CaseAssigned>(t) {
        event.decode::<events::CaseAssigned>().map(|e| format!("Assigned to {}{by}", e.assignee)).ok()
    } else if psirt_eventstore::is_type::<events::SeverityAssessed>(t) {
        event.decode::<events::SeverityAssessed>().map(severity_line).ok()
    } else if psirt_eventstore::is_type::<events::AffectedProductsSet>(t) {
        event
            .decode::<events::AffectedProductsSet>()
            .map(|e| {
                let names: Vec<&str> = e.products.iter().map(|p| p.product.as_str()).collect();
                format!("Affected products set: {}", names.join(", "))
            })
            .ok()
    } else if psirt_eventstore::is_type::<events::CaseAccepted>(t) {
        Some(format!("Accepted{by}"))
    } else if psirt_eventstore::is_type::<events::CaseRejected>(t) {
        event
            .decode::<events::CaseRejected>()
            .map(|e| {
                let reason = events::RejectionReason::try_from(e.reason)
                    .map(|r| r.as_str_name().trim_start_matches("REJECTION_REASON_").to_owned())
                    .unwrap_or_default();
                format!("Rejected ({reason}){by}")
            })
            .ok()
    } else if psirt_eventstore::is_type::<events::CaseMarkedDuplicate>(t) {
        event
            .decode::<events::CaseMarkedDuplicate>()
            .map(|e| format!("Marked duplicate of case {}{by}", e.duplicate_of_case_id))
            .ok()
    } else if psirt_eventstore::is_type::<events::DuplicateLinked>(t) {
        event
            .decode::<events::DuplicateLinked>()
            .map(|e| format!("Linked to case {} as a suspected duplicate", e.other_case_id))
            .ok()
    } else if psirt_eventstore::is_type::<events::CveAssigned>(t) {
        event.decode::<events::CveAssigned>().map(|e| format!("{} assigned{by}", e.cve_id)).ok()
    } else if psirt_eventstore::is_type::<events::EmbargoSet>(t) {
        event
            .decode::<events::EmbargoSet>()
            .map(|e| format!("Embargo until {} {}{by}", e.local_disclosure_time, e.time_zone))
            .ok()
    } else if psirt_eventstore::is_type::<events::CaseEscalated>(t) {
        event
            .decode::<events::CaseEscalated>()
            .map(|e| {
                let level = events::EscalationLevel::try_from(e.level)
                    .map(|l| l.as_str_name().trim_start_matches("ESCALATION_LEVEL_").to_owned())
                    .unwrap_or_default();
                format!("Escalated to {level}{by}: {}", e.reason)
            })
            .ok()
    } else if psirt_eventstore::is_type::<events::SlaBreached>(t) {
        event
            .decode::<events::SlaBreached>()
            .map(|e| {
                let clock = events::SlaClock::try_from(e.clock)
                    .map(|c| c.as_str_name().trim_start_matches("SLA_CLOCK_").to_owned())
                    .unwrap_or_default();
                format!("SLA {clock} deadline missed")
            })
            .ok()
    } else if psirt_eventstore::is_type::<events::CaseClosed>(t) {
        event
            .decode::<events::CaseClosed>()
            .map(|e| {
                let resolution = events::CaseResolution::try_from(e.resolution)
                    .map(|r| r.as_str_name().trim_start_matches("CASE_RESOLUTION_").to_owned())
                    .unwrap_or_default();
                format!("Closed as {resolution}{by}")
            })
            .ok()
    } else if psirt_eventstore::is_type::<events::CaseReopened>(t) {
        event.decode::<events::CaseReopened>().map(|e| format!("Reopened{by}: {}", e.reason)).ok()
    } else {
        None
    };
    let line = line.unwrap_or_else(|| {
        let short = t.rsplit('.').next().unwrap_or(t);
        format!("{short}{by}")
    });
    truncate(&line, 300)
}

fn severity_line(e: events::SeverityAssessed) -> String {
    let rating = common::SeverityRating::try_from(e.severity)
        .map(|r| r.as_str_name().trim_start_matches("SEVERITY_RATING_").to_owned())
        .unwrap_or_default();
    let mut parts = vec![format!("Severity assessed: {rating}")];
    if let Some(v4) = &e.cvss_v40 {
        parts.push(format!("CVSS 4.0 {:.1}", v4.score));
    }
    if let Some(v3) = &e.cvss_v31 {
        parts.push(format!("CVSS 3.1 {:.1}", v3.base_score));
    }
    if let Some(ssvc) = &e.ssvc
        && let Ok(d) = common::SsvcDecision::try_from(ssvc.decision)
    {
        parts.push(format!("SSVC {}", d.as_str_name().trim_start_matches("SSVC_DECISION_")));
    }
    parts.join(", ")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use psirt_eventstore::{Metadata, NewEvent};

    fn recorded(new: NewEvent, sequence: u64) -> RecordedEvent {
        RecordedEvent::from_new(&new, sequence)
    }

    #[test]
    fn other_services_events_are_indexed_by_their_case_id() {
        let case_id = psirt_domain::CaseId::new().to_string();
        let ticket = events::ExternalTicketLinked { case_id: case_id.clone(), ..Default::default() };
        let new = NewEvent::from_message(
            uuid::Uuid::now_v7(),
            "psirt.evt.delivery.x".into(),
            &ticket,
            Metadata::default(),
        );
        assert_eq!(foreign_case_id(&recorded(new, 1)), Some(case_id.clone()));
        let delivery = events::DeliveryScheduled { case_id: case_id.clone(), ..Default::default() };
        let new = NewEvent::from_message(
            uuid::Uuid::now_v7(),
            "psirt.evt.delivery.y".into(),
            &delivery,
            Metadata::default(),
        );
        assert_eq!(foreign_case_id(&recorded(new, 2)), Some(case_id));
        let deleted = events::SubscriptionDeleted {
            reason: psirt_domain::CaseId::new().to_string(),
            ..Default::default()
        };
        let new = NewEvent::from_message(
            uuid::Uuid::now_v7(),
            "psirt.evt.subscription.z".into(),
            &deleted,
            Metadata::default(),
        );
        assert_eq!(foreign_case_id(&recorded(new, 3)), None);
    }

    #[test]
    fn clocks_turn_due_soon_then_breached_and_stop_when_met() {
        let opened = OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("time");
        let mut case = triage::Case {
            sla_clocks: vec![triage::SlaClockStatus {
                clock: events::SlaClock::Triage.into(),
                started_at: Some(timestamp(opened)),
                ..Default::default()
            }],
            ..Default::default()
        };
        schedule(&mut case, &SlaPolicy::default());
        let state = |case: &mut triage::Case, at: OffsetDateTime| {
            refresh(case, at);
            case.sla_clocks[0].state
        };
        // unrated: 10 days to triage, due soon in the last quarter
        assert_eq!(state(&mut case, opened + time::Duration::days(1)), triage::SlaState::OnTrack as i32);
        assert_eq!(state(&mut case, opened + time::Duration::days(8)), triage::SlaState::DueSoon as i32);
        assert_eq!(state(&mut case, opened + time::Duration::days(11)), triage::SlaState::Breached as i32);
        assert_eq!(next_due_ms(&case), Some(mapping::millis(opened + time::Duration::days(10))));
        meet(&mut case, events::SlaClock::Triage, Some(timestamp(opened + time::Duration::days(12))));
        assert_eq!(state(&mut case, opened + time::Duration::days(13)), triage::SlaState::MetLate as i32);
        assert_eq!(next_due_ms(&case), None);
    }
}
