//! The report aggregate: a vulnerability report as it arrives at intake, its
//! acknowledgement to the reporter, the conversation with them and the
//! duplicates it is suspected of, before triage turns it into a case.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::aggregate::{Aggregate, DomainEvent};
use crate::ids::{CaseId, MessageId, ReportId};
use crate::validation::{self, FieldViolation, check_name, check_text, present, validate_submission};

/// Where a report came in from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// The public web form.
    Web,
    /// The security contact mailbox (RFC 9116 `Contact:`).
    Email,
    /// Another system calling the intake API (build pipelines, portals).
    Api,
    /// A public advisory or CVE/OSV feed hitting a component in an SBOM.
    Feed,
    /// Internal discovery: scans, pen-tests, QA.
    Internal,
}

impl Channel {
    pub const ALL: [Channel; 5] = [Self::Web, Self::Email, Self::Api, Self::Feed, Self::Internal];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Email => "email",
            Self::Api => "api",
            Self::Feed => "feed",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who reported. Every field is optional: anonymous reports are accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reporter {
    pub name: Option<String>,
    pub email: Option<String>,
    pub organization: Option<String>,
}

impl Reporter {
    /// Trimmed, with blank fields as absent: what gets recorded.
    fn normalised(&self) -> Self {
        let clean = |v: &Option<String>| present(v.as_deref()).map(str::to_owned);
        Self { name: clean(&self.name), email: clean(&self.email), organization: clean(&self.organization) }
    }

    pub fn is_anonymous(&self) -> bool {
        self.name.is_none() && self.email.is_none() && self.organization.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageDirection {
    /// From the reporter to the PSIRT.
    Inbound,
    /// From the PSIRT to the reporter.
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportStatus {
    /// Recorded, not yet acknowledged to the reporter.
    Received,
    /// The reporter has been told the report arrived.
    Acknowledged,
}

/// A report as submitted, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitReport {
    /// [`ReportId::for_request`] when the client sent a request id, else [`ReportId::new`].
    pub report_id: ReportId,
    /// The client's idempotency key, recorded for support and audit.
    pub request_id: Option<String>,
    pub title: String,
    pub description: String,
    pub reporter: Reporter,
    /// `None` for an unknown or unspecified channel: refused.
    pub channel: Option<Channel>,
    pub affected_products: Vec<String>,
    pub suggested_cvss_vector: Option<String>,
    /// The disclosure date the reporter asks for (start of the embargo talk).
    pub requested_disclosure_at: Option<OffsetDateTime>,
    /// Where the report came from outside: an upstream advisory id for feed
    /// reports, a ticket or e-mail Message-ID.
    pub external_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportCommand {
    Submit(Box<SubmitReport>),
    /// Tells the reporter their report arrived, with this text.
    Acknowledge {
        message: String,
    },
    AddMessage {
        direction: MessageDirection,
        author: String,
        body: String,
        /// Most messages the report may hold (a quota of the deployment);
        /// one more is refused with [`ReportError::TooManyMessages`].
        max_messages: u32,
    },
    /// Links a likely duplicate; never merges nor drops either report.
    SuspectDuplicate {
        other: ReportId,
        reason: String,
    },
}

/// Facts about a report. Names and shapes are stable: see [`DomainEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ReportEvent {
    ReportReceived {
        report_id: ReportId,
        /// The case triage will open for this report ([`CaseId::for_report`]).
        case_id: CaseId,
        request_id: Option<String>,
        title: String,
        description: String,
        reporter: Reporter,
        channel: Channel,
        affected_products: Vec<String>,
        suggested_cvss_vector: Option<String>,
        #[serde(with = "time::serde::rfc3339::option")]
        requested_disclosure_at: Option<OffsetDateTime>,
        #[serde(with = "time::serde::rfc3339")]
        received_at: OffsetDateTime,
        #[serde(default)]
        external_reference: Option<String>,
    },
    ReportAcknowledged {
        report_id: ReportId,
        message: String,
        #[serde(with = "time::serde::rfc3339")]
        acknowledged_at: OffsetDateTime,
    },
    ReporterMessageAdded {
        report_id: ReportId,
        message_id: MessageId,
        direction: MessageDirection,
        author: String,
        body: String,
        #[serde(with = "time::serde::rfc3339")]
        added_at: OffsetDateTime,
    },
    DuplicateSuspected {
        report_id: ReportId,
        other: ReportId,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        suspected_at: OffsetDateTime,
    },
}

impl ReportEvent {
    /// The report the event is about.
    pub fn report_id(&self) -> ReportId {
        match self {
            Self::ReportReceived { report_id, .. }
            | Self::ReportAcknowledged { report_id, .. }
            | Self::ReporterMessageAdded { report_id, .. }
            | Self::DuplicateSuspected { report_id, .. } => *report_id,
        }
    }
}

impl DomainEvent for ReportEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ReportReceived { .. } => "ReportReceived",
            Self::ReportAcknowledged { .. } => "ReportAcknowledged",
            Self::ReporterMessageAdded { .. } => "ReporterMessageAdded",
            Self::DuplicateSuspected { .. } => "DuplicateSuspected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Also what a replayed submission gets: the caller decides whether the
    /// existing report answers its request.
    #[error("report {id} already exists")]
    AlreadyExists { id: ReportId },
    #[error("no such report")]
    NotFound,
    #[error("report {id} was already acknowledged")]
    AlreadyAcknowledged { id: ReportId },
    #[error("a report cannot be a duplicate of itself")]
    DuplicateOfSelf,
    #[error("report {id} holds its {limit} messages already")]
    TooManyMessages { id: ReportId, limit: u32 },
    #[error("invalid report: {}", validation::join(.0))]
    Validation(Vec<FieldViolation>),
}

/// One message of the conversation with the reporter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReporterMessage {
    pub id: MessageId,
    pub direction: MessageDirection,
    pub author: String,
    pub body: String,
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspectedDuplicate {
    pub other: ReportId,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub suspected_at: OffsetDateTime,
}

/// Everything known about a submitted report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportDetails {
    pub id: ReportId,
    pub case_id: CaseId,
    pub request_id: Option<String>,
    pub status: ReportStatus,
    pub title: String,
    pub description: String,
    pub reporter: Reporter,
    pub channel: Channel,
    pub affected_products: Vec<String>,
    pub suggested_cvss_vector: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub requested_disclosure_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
    /// The text sent to the reporter when acknowledging.
    pub acknowledgement: Option<String>,
    pub external_reference: Option<String>,
    pub messages: Vec<ReporterMessage>,
    pub suspected_duplicates: Vec<SuspectedDuplicate>,
}

/// The report aggregate. `Default` is a report not yet submitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    details: Option<ReportDetails>,
    version: u64,
}

impl Report {
    /// `None` until the report is submitted.
    pub fn details(&self) -> Option<&ReportDetails> {
        self.details.as_ref()
    }

    pub fn exists(&self) -> bool {
        self.details.is_some()
    }

    /// How many events have been applied. Not the event store's sequence:
    /// the stream interleaves aggregates, so the service tracks that itself.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn handle(
        &self,
        command: ReportCommand,
        now: OffsetDateTime,
    ) -> Result<Vec<ReportEvent>, ReportError> {
        match command {
            ReportCommand::Submit(submit) => self.submit(*submit, now),
            ReportCommand::Acknowledge { message } => {
                let report = self.submitted()?;
                if report.status == ReportStatus::Acknowledged {
                    return Err(ReportError::AlreadyAcknowledged { id: report.id });
                }
                let mut violations = Vec::new();
                check_text(&mut violations, "message", &message, true);
                reject(violations)?;
                Ok(vec![ReportEvent::ReportAcknowledged {
                    report_id: report.id,
                    message,
                    acknowledged_at: now,
                }])
            }
            ReportCommand::AddMessage { direction, author, body, max_messages } => {
                let report = self.submitted()?;
                if report.messages.len() >= max_messages as usize {
                    return Err(ReportError::TooManyMessages { id: report.id, limit: max_messages });
                }
                let mut violations = Vec::new();
                check_name(&mut violations, "author", &author);
                check_text(&mut violations, "body", &body, true);
                reject(violations)?;
                let ordinal = report.messages.len() as u64 + 1;
                Ok(vec![ReportEvent::ReporterMessageAdded {
                    report_id: report.id,
                    message_id: MessageId::for_report_message(report.id, ordinal),
                    direction,
                    author: author.trim().to_owned(),
                    body,
                    added_at: now,
                }])
            }
            ReportCommand::SuspectDuplicate { other, reason } => {
                let report = self.submitted()?;
                if other == report.id {
                    return Err(ReportError::DuplicateOfSelf);
                }
                let mut violations = Vec::new();
                check_text(&mut violations, "reason", &reason, false);
                reject(violations)?;
                if report.suspected_duplicates.iter().any(|d| d.other == other) {
                    return Ok(Vec::new());
                }
                Ok(vec![ReportEvent::DuplicateSuspected {
                    report_id: report.id,
                    other,
                    reason,
                    suspected_at: now,
                }])
            }
        }
    }

    fn submitted(&self) -> Result<&ReportDetails, ReportError> {
        self.details.as_ref().ok_or(ReportError::NotFound)
    }

    fn submit(&self, submit: SubmitReport, now: OffsetDateTime) -> Result<Vec<ReportEvent>, ReportError> {
        if let Some(existing) = &self.details {
            return Err(ReportError::AlreadyExists { id: existing.id });
        }
        reject(validate_submission(&submit, now))?;
        let channel = submit.channel.ok_or_else(|| {
            // validate_submission refuses a missing channel; kept typed rather than panicking.
            ReportError::Validation(vec![FieldViolation::new("channel", "channel must be specified")])
        })?;
        let text = |v: Option<String>| present(v.as_deref()).map(str::to_owned);
        Ok(vec![ReportEvent::ReportReceived {
            report_id: submit.report_id,
            case_id: CaseId::for_report(submit.report_id),
            request_id: text(submit.request_id),
            title: submit.title.trim().to_owned(),
            description: submit.description,
            reporter: submit.reporter.normalised(),
            channel,
            affected_products: submit.affected_products.iter().map(|p| p.trim().to_owned()).collect(),
            suggested_cvss_vector: text(submit.suggested_cvss_vector),
            requested_disclosure_at: submit.requested_disclosure_at,
            received_at: now,
            external_reference: text(submit.external_reference),
        }])
    }

    /// Evolves the state; events for another state than expected (an
    /// acknowledgement before any submission) are ignored rather than refused,
    /// since an event is a fact and replay must not fail.
    pub fn apply(&mut self, event: &ReportEvent) {
        self.version += 1;
        match event {
            ReportEvent::ReportReceived {
                report_id,
                case_id,
                request_id,
                title,
                description,
                reporter,
                channel,
                affected_products,
                suggested_cvss_vector,
                requested_disclosure_at,
                received_at,
                external_reference,
            } => {
                self.details = Some(ReportDetails {
                    id: *report_id,
                    case_id: *case_id,
                    request_id: request_id.clone(),
                    status: ReportStatus::Received,
                    title: title.clone(),
                    description: description.clone(),
                    reporter: reporter.clone(),
                    channel: *channel,
                    affected_products: affected_products.clone(),
                    suggested_cvss_vector: suggested_cvss_vector.clone(),
                    requested_disclosure_at: *requested_disclosure_at,
                    received_at: *received_at,
                    external_reference: external_reference.clone(),
                    acknowledged_at: None,
                    acknowledgement: None,
                    messages: Vec::new(),
                    suspected_duplicates: Vec::new(),
                });
            }
            ReportEvent::ReportAcknowledged { message, acknowledged_at, .. } => {
                if let Some(report) = &mut self.details {
                    report.status = ReportStatus::Acknowledged;
                    report.acknowledged_at = Some(*acknowledged_at);
                    report.acknowledgement = Some(message.clone());
                }
            }
            ReportEvent::ReporterMessageAdded { message_id, direction, author, body, added_at, .. } => {
                if let Some(report) = &mut self.details {
                    report.messages.push(ReporterMessage {
                        id: *message_id,
                        direction: *direction,
                        author: author.clone(),
                        body: body.clone(),
                        added_at: *added_at,
                    });
                }
            }
            ReportEvent::DuplicateSuspected { other, reason, suspected_at, .. } => {
                if let Some(report) = &mut self.details {
                    report.suspected_duplicates.push(SuspectedDuplicate {
                        other: *other,
                        reason: reason.clone(),
                        suspected_at: *suspected_at,
                    });
                }
            }
        }
    }
}

impl Aggregate for Report {
    type Command = ReportCommand;
    type Event = ReportEvent;
    type Error = ReportError;

    const AGGREGATE_TYPE: &'static str = "report";

    fn handle(&self, command: ReportCommand, now: OffsetDateTime) -> Result<Vec<ReportEvent>, ReportError> {
        Report::handle(self, command, now)
    }

    fn apply(&mut self, event: &ReportEvent) {
        Report::apply(self, event);
    }

    fn version(&self) -> u64 {
        self.version
    }
}

fn reject(violations: Vec<FieldViolation>) -> Result<(), ReportError> {
    if violations.is_empty() { Ok(()) } else { Err(ReportError::Validation(violations)) }
}

#[cfg(test)]
mod tests;
