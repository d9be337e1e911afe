//! The case aggregate and its lifecycle (ISO/IEC 30111): triage decides, the
//! product teams remediate, the PSIRT discloses, and every case is closed with
//! a resolution and a root cause so the process can improve.
//!
//! | from \ to    | allowed next statuses                                   |
//! |--------------|---------------------------------------------------------|
//! | Received     | Triage                                                  |
//! | Triage       | Accepted, Rejected, Duplicate                           |
//! | Accepted     | Remediating, Closed (won't fix, end of life)            |
//! | Remediating  | Fixed, Closed (won't fix, end of life)                  |
//! | Fixed        | Disclosed, Closed (fixed without an advisory)           |
//! | Disclosed    | Closed                                                  |
//! | Rejected     | Closed                                                  |
//! | Duplicate    | Closed                                                  |
//! | Closed       | Triage (reopened)                                       |
//!
//! Not allowed, on purpose: skipping triage (every report is assessed before
//! a decision), disclosing before a fix exists (an advisory without a fix is
//! published from the fix's case once there is one; coordinated disclosure
//! deadlines are tracked on the embargo, not by the status), and reopening
//! anything but a closed case (a rejection or duplicate decision is undone by
//! closing and reopening, which leaves both decisions on record).
//!
//! What triage records, and in which status (anything else is refused with
//! [`CaseError::NotAllowed`] naming the status, or [`CaseError::Closed`]):
//!
//! | command                                          | received      | triage | accepted, remediating, fixed | disclosed | rejected, duplicate | closed |
//! |--------------------------------------------------|---------------|--------|------------------------------|-----------|---------------------|--------|
//! | Assign                                           | starts triage | yes    | yes                          | yes       | yes                 | no     |
//! | AssessSeverity, SetAffectedProducts, AssignCve   | starts triage | yes    | yes                          | yes       | no                  | no     |
//! | SetEmbargo                                       | starts triage | yes    | yes                          | no        | no                  | no     |
//! | Escalate, RecordSlaBreach                        | yes           | yes    | yes                          | yes       | yes                 | no     |
//! | LinkSuspectedDuplicate                           | yes           | yes    | yes                          | yes       | yes                 | yes    |
//! | Accept (needs a severity), Reject, MarkDuplicate | no            | yes    | no                           | no        | no                  | no     |
//!
//! Why: an analyst who assigns, scores or scopes a received case has started
//! triaging it, so those commands emit `TriageStarted` first rather than
//! refuse until someone remembers to start triage (the case view and the
//! triage metrics then show when work really began). The scheduler's
//! escalations and breaches, and intake's duplicate hints, are not someone
//! working on the case: they leave a received case received.
//! Findings stay editable until the case closes, including after disclosure
//! (an advisory revision adds a CVE, a version, a rescored vector); the
//! embargo stops being editable once the case is disclosed, as there is
//! nothing left to hold back. A rejected or duplicate case records no
//! findings: that decision is undone by closing and reopening. Accepting
//! needs a severity because the remediation due dates derive from it.
//! Duplicate hints are recorded even on closed cases: a new report of an old,
//! fixed vulnerability is exactly what the closed case's owner wants to see.

mod cve;
mod embargo;
mod escalation;
mod products;
mod severity;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use self::cve::{CveId, FIRST_CVE_YEAR, InvalidCveId, MAX_CVE_SEQUENCE_DIGITS};
pub use self::embargo::{Embargo, EmbargoTerms, check_time_zone};
pub use self::escalation::{Escalation, EscalationLevel, SlaBreach, SlaClock, SlaDeadline};
pub use self::products::{
    AffectedProduct, MAX_EXPLICIT_VERSIONS, MAX_VERSION_CHARS, MAX_VERSION_RANGE_CHARS, VersionSpec,
    check_affected_products,
};
pub use self::severity::{CvssScore, MAX_SSVC_DECISION_CHARS, Severity, SeverityEvidence};
use crate::aggregate::{Aggregate, DomainEvent};
use crate::case_key::CaseKey;
use crate::cvss_vector::CvssSeverity;
use crate::ids::{CaseId, ReportId};
use crate::report::Channel;
use crate::validation::{
    self, DISCLOSURE_DATE_TOLERANCE, FieldViolation, MAX_TITLE_CHARS, check_name, check_text,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    Received,
    Triage,
    Accepted,
    Rejected,
    Duplicate,
    Remediating,
    Fixed,
    Disclosed,
    Closed,
}

/// A status change the lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a case cannot go from {from} to {to}")]
pub struct InvalidTransition {
    pub from: CaseStatus,
    pub to: CaseStatus,
}

impl CaseStatus {
    pub const ALL: [CaseStatus; 9] = [
        Self::Received,
        Self::Triage,
        Self::Accepted,
        Self::Rejected,
        Self::Duplicate,
        Self::Remediating,
        Self::Fixed,
        Self::Disclosed,
        Self::Closed,
    ];

    /// The lifecycle, as in the table of the module documentation.
    pub fn can_transition_to(self, next: CaseStatus) -> bool {
        use CaseStatus::*;
        matches!(
            (self, next),
            (Received, Triage)
                | (Triage, Accepted | Rejected | Duplicate)
                | (Accepted, Remediating | Closed)
                | (Remediating, Fixed | Closed)
                | (Fixed, Disclosed | Closed)
                | (Disclosed, Closed)
                | (Rejected, Closed)
                | (Duplicate, Closed)
                | (Closed, Triage)
        )
    }

    pub fn transition(self, next: CaseStatus) -> Result<CaseStatus, InvalidTransition> {
        if self.can_transition_to(next) { Ok(next) } else { Err(InvalidTransition { from: self, to: next }) }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Triage => "triage",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Duplicate => "duplicate",
            Self::Remediating => "remediating",
            Self::Fixed => "fixed",
            Self::Disclosed => "disclosed",
            Self::Closed => "closed",
        }
    }
}

impl std::fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why triage found a report not to be a vulnerability to handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    NotAVulnerability,
    /// Not one of our products or services, or not a supported version.
    OutOfScope,
    NotReproducible,
    InsufficientInformation,
    /// The reporter took the report back.
    Withdrawn,
    /// Anything else: the text must say what.
    Other,
}

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// A fix shipped (with or without an advisory).
    Fixed,
    /// An accepted vulnerability that will not be fixed (risk accepted).
    WontFix,
    /// An accepted vulnerability in a product past its end of life.
    EndOfLife,
    /// Triage rejected the report.
    Rejected,
    /// Triage found another case for it.
    Duplicate,
}

impl Resolution {
    /// Whether a case in `status` may close with this resolution: the
    /// resolution must agree with what the lifecycle says happened.
    pub fn fits(self, status: CaseStatus) -> bool {
        use CaseStatus as S;
        matches!(
            (self, status),
            (Self::Fixed, S::Fixed | S::Disclosed)
                | (Self::WontFix | Self::EndOfLife, S::Accepted | S::Remediating)
                | (Self::Rejected, S::Rejected)
                | (Self::Duplicate, S::Duplicate)
        )
    }

    /// Closing an accepted vulnerability requires its root cause: the
    /// evaluation step of ISO/IEC 30111 learns from it.
    pub fn needs_root_cause(self) -> bool {
        matches!(self, Self::Fixed | Self::WontFix | Self::EndOfLife)
    }
}

/// Where the findings (severity, affected products, CVEs) can be recorded.
const FINDINGS_STATUSES: [CaseStatus; 6] = [
    CaseStatus::Received,
    CaseStatus::Triage,
    CaseStatus::Accepted,
    CaseStatus::Remediating,
    CaseStatus::Fixed,
    CaseStatus::Disclosed,
];
/// Where an embargo can be set or moved: until the case is disclosed.
const EMBARGO_STATUSES: [CaseStatus; 5] = [
    CaseStatus::Received,
    CaseStatus::Triage,
    CaseStatus::Accepted,
    CaseStatus::Remediating,
    CaseStatus::Fixed,
];
/// Every status but closed.
const OPEN_STATUSES: [CaseStatus; 8] = [
    CaseStatus::Received,
    CaseStatus::Triage,
    CaseStatus::Accepted,
    CaseStatus::Rejected,
    CaseStatus::Duplicate,
    CaseStatus::Remediating,
    CaseStatus::Fixed,
    CaseStatus::Disclosed,
];

#[derive(Debug, Clone, PartialEq)]
pub enum CaseCommand {
    /// Opens the case; `report_id` is the report it stems from, if any
    /// (internal findings may open a case directly).
    Open {
        case_id: CaseId,
        key: CaseKey,
        report_id: Option<ReportId>,
        title: String,
        /// How the report reached us.
        channel: Option<Channel>,
        /// When the report was received: the SLA clocks start there.
        report_received_at: Option<OffsetDateTime>,
    },
    StartTriage,
    /// Assigns the case to a person (for a team); the same person and team
    /// again is a no-op.
    Assign {
        assignee: String,
        team: Option<String>,
    },
    /// Records the whole severity assessment, replacing the previous one
    /// (a part left out is no longer part of the assessment). Blank strings
    /// count as absent; at least one part must be given. The same
    /// assessment again is a no-op.
    AssessSeverity {
        /// A CVSS v3.0 or v3.1 vector.
        cvss_v3: Option<String>,
        /// A CVSS v4.0 vector.
        cvss_v4: Option<String>,
        /// The SSVC decision the triage service derived from its inputs.
        ssvc_decision: Option<String>,
        evidence: SeverityEvidence,
    },
    /// Replaces the list of affected products; the same list again is a no-op.
    SetAffectedProducts {
        entries: Vec<AffectedProduct>,
    },
    /// Needs a severity assessment first.
    Accept {
        note: String,
    },
    Reject {
        reason: RejectionReason,
        text: String,
    },
    MarkDuplicate {
        of: CaseId,
        /// The canonical case's key, as its own stream says.
        of_key: Option<CaseKey>,
        note: String,
    },
    /// Records intake's hint that `other` may be the same vulnerability;
    /// linking the same case again is a no-op.
    LinkSuspectedDuplicate {
        other: CaseId,
        reason: String,
        hint: DuplicateHint,
    },
    /// Adds a CVE id; a case may have several, and one it has is a no-op.
    AssignCve {
        cve_id: String,
        /// The CNA that assigned it.
        assigner: String,
    },
    /// Sets or moves the embargo; the same date, zone and terms again is a no-op.
    SetEmbargo {
        disclosure_at: OffsetDateTime,
        /// An IANA zone name: see [`check_time_zone`].
        time_zone: String,
        terms: EmbargoTerms,
    },
    /// Escalations only go up: the current level again is a no-op, a lower
    /// one is a no-op when `automatic` (the scheduler lost a race with a
    /// person) and refused otherwise.
    Escalate {
        level: EscalationLevel,
        reason: String,
        automatic: bool,
        /// Handle the case as an incident (exploited in the field).
        incident: bool,
        /// The deadline whose breach caused it, for the scheduler's escalations.
        sla_deadline: Option<SlaDeadline>,
    },
    /// A missed deadline; the same clock and deadline again is a no-op.
    RecordSlaBreach {
        clock: SlaClock,
        deadline: OffsetDateTime,
    },
    /// `plan_id`: the remediation plan whose work started.
    StartRemediation {
        plan_id: String,
    },
    /// `fixed_versions`: `<product>@<version>` of the releases that fixed it.
    MarkFixed {
        plan_id: String,
        fixed_versions: Vec<String>,
    },
    /// The published advisory that discloses the case.
    Disclose {
        advisory_id: String,
        tracking_id: String,
    },
    Close {
        resolution: Resolution,
        root_cause: String,
        lessons_learned: String,
    },
    Reopen {
        reason: String,
    },
}

impl CaseCommand {
    /// The command's name, for errors and logs.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Open { .. } => "Open",
            Self::StartTriage => "StartTriage",
            Self::Assign { .. } => "Assign",
            Self::AssessSeverity { .. } => "AssessSeverity",
            Self::SetAffectedProducts { .. } => "SetAffectedProducts",
            Self::Accept { .. } => "Accept",
            Self::Reject { .. } => "Reject",
            Self::MarkDuplicate { .. } => "MarkDuplicate",
            Self::LinkSuspectedDuplicate { .. } => "LinkSuspectedDuplicate",
            Self::AssignCve { .. } => "AssignCve",
            Self::SetEmbargo { .. } => "SetEmbargo",
            Self::Escalate { .. } => "Escalate",
            Self::RecordSlaBreach { .. } => "RecordSlaBreach",
            Self::StartRemediation { .. } => "StartRemediation",
            Self::MarkFixed { .. } => "MarkFixed",
            Self::Disclose { .. } => "Disclose",
            Self::Close { .. } => "Close",
            Self::Reopen { .. } => "Reopen",
        }
    }
}

/// Facts about a case. Names and shapes are stable: see [`DomainEvent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum CaseEvent {
    CaseOpened {
        case_id: CaseId,
        key: CaseKey,
        report_id: Option<ReportId>,
        title: String,
        channel: Option<Channel>,
        #[serde(with = "time::serde::rfc3339::option")]
        report_received_at: Option<OffsetDateTime>,
        #[serde(with = "time::serde::rfc3339")]
        opened_at: OffsetDateTime,
    },
    TriageStarted {
        case_id: CaseId,
        #[serde(with = "time::serde::rfc3339")]
        started_at: OffsetDateTime,
    },
    CaseAssigned {
        case_id: CaseId,
        assignee: String,
        team: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        assigned_at: OffsetDateTime,
    },
    /// The whole assessment as decided: vectors with their scores, so a
    /// replay never re-scores.
    SeverityAssessed {
        case_id: CaseId,
        cvss_v3: Option<CvssScore>,
        cvss_v4: Option<CvssScore>,
        ssvc_decision: Option<String>,
        /// The v4.0 rating if there is one, else the v3.x one.
        rating: Option<CvssSeverity>,
        evidence: SeverityEvidence,
        #[serde(with = "time::serde::rfc3339")]
        assessed_at: OffsetDateTime,
    },
    /// The whole list, replacing the previous one.
    AffectedProductsSet {
        case_id: CaseId,
        products: Vec<AffectedProduct>,
        #[serde(with = "time::serde::rfc3339")]
        set_at: OffsetDateTime,
    },
    CaseAccepted {
        case_id: CaseId,
        note: String,
        #[serde(with = "time::serde::rfc3339")]
        accepted_at: OffsetDateTime,
    },
    CaseRejected {
        case_id: CaseId,
        reason: RejectionReason,
        text: String,
        #[serde(with = "time::serde::rfc3339")]
        rejected_at: OffsetDateTime,
    },
    CaseMarkedDuplicate {
        case_id: CaseId,
        of: CaseId,
        of_key: Option<CaseKey>,
        note: String,
        #[serde(with = "time::serde::rfc3339")]
        marked_at: OffsetDateTime,
    },
    /// A suspected duplicate, not a decision: the status does not change.
    DuplicateLinked {
        case_id: CaseId,
        other_case: CaseId,
        reason: String,
        hint: DuplicateHint,
        #[serde(with = "time::serde::rfc3339")]
        linked_at: OffsetDateTime,
    },
    CveAssigned {
        case_id: CaseId,
        cve_id: CveId,
        assigner: String,
        #[serde(with = "time::serde::rfc3339")]
        assigned_at: OffsetDateTime,
    },
    EmbargoSet {
        case_id: CaseId,
        #[serde(with = "time::serde::rfc3339")]
        disclosure_at: OffsetDateTime,
        time_zone: String,
        terms: EmbargoTerms,
        #[serde(with = "time::serde::rfc3339")]
        set_at: OffsetDateTime,
    },
    CaseEscalated {
        case_id: CaseId,
        level: EscalationLevel,
        reason: String,
        automatic: bool,
        incident: bool,
        sla_deadline: Option<SlaDeadline>,
        #[serde(with = "time::serde::rfc3339")]
        escalated_at: OffsetDateTime,
    },
    SlaBreached {
        case_id: CaseId,
        clock: SlaClock,
        #[serde(with = "time::serde::rfc3339")]
        deadline: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        recorded_at: OffsetDateTime,
    },
    RemediationStarted {
        case_id: CaseId,
        plan_id: String,
        #[serde(with = "time::serde::rfc3339")]
        started_at: OffsetDateTime,
    },
    CaseFixed {
        case_id: CaseId,
        plan_id: String,
        /// `<product>@<version>` of the releases that fixed it.
        fixed_versions: Vec<String>,
        #[serde(with = "time::serde::rfc3339")]
        fixed_at: OffsetDateTime,
    },
    CaseDisclosed {
        case_id: CaseId,
        advisory_id: String,
        /// The advisory's public tracking id, e.g. `ACME-SA-2026-0001`.
        tracking_id: String,
        #[serde(with = "time::serde::rfc3339")]
        disclosed_at: OffsetDateTime,
    },
    CaseClosed {
        case_id: CaseId,
        resolution: Resolution,
        root_cause: String,
        lessons_learned: String,
        #[serde(with = "time::serde::rfc3339")]
        closed_at: OffsetDateTime,
    },
    CaseReopened {
        case_id: CaseId,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        reopened_at: OffsetDateTime,
    },
}

impl DomainEvent for CaseEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::CaseOpened { .. } => "CaseOpened",
            Self::TriageStarted { .. } => "TriageStarted",
            Self::CaseAssigned { .. } => "CaseAssigned",
            Self::SeverityAssessed { .. } => "SeverityAssessed",
            Self::AffectedProductsSet { .. } => "AffectedProductsSet",
            Self::CaseAccepted { .. } => "CaseAccepted",
            Self::CaseRejected { .. } => "CaseRejected",
            Self::CaseMarkedDuplicate { .. } => "CaseMarkedDuplicate",
            Self::DuplicateLinked { .. } => "DuplicateLinked",
            Self::CveAssigned { .. } => "CveAssigned",
            Self::EmbargoSet { .. } => "EmbargoSet",
            Self::CaseEscalated { .. } => "CaseEscalated",
            Self::SlaBreached { .. } => "SlaBreached",
            Self::RemediationStarted { .. } => "RemediationStarted",
            Self::CaseFixed { .. } => "CaseFixed",
            Self::CaseDisclosed { .. } => "CaseDisclosed",
            Self::CaseClosed { .. } => "CaseClosed",
            Self::CaseReopened { .. } => "CaseReopened",
        }
    }
}

impl CaseEvent {
    /// The status this event moves the case to, if it is a status change.
    pub fn status_after(&self) -> Option<CaseStatus> {
        match self {
            Self::CaseOpened { .. } => Some(CaseStatus::Received),
            Self::TriageStarted { .. } | Self::CaseReopened { .. } => Some(CaseStatus::Triage),
            Self::CaseAccepted { .. } => Some(CaseStatus::Accepted),
            Self::CaseRejected { .. } => Some(CaseStatus::Rejected),
            Self::CaseMarkedDuplicate { .. } => Some(CaseStatus::Duplicate),
            Self::RemediationStarted { .. } => Some(CaseStatus::Remediating),
            Self::CaseFixed { .. } => Some(CaseStatus::Fixed),
            Self::CaseDisclosed { .. } => Some(CaseStatus::Disclosed),
            Self::CaseClosed { .. } => Some(CaseStatus::Closed),
            Self::CaseAssigned { .. }
            | Self::SeverityAssessed { .. }
            | Self::AffectedProductsSet { .. }
            | Self::DuplicateLinked { .. }
            | Self::CveAssigned { .. }
            | Self::EmbargoSet { .. }
            | Self::CaseEscalated { .. }
            | Self::SlaBreached { .. } => None,
        }
    }

    /// The case the event belongs to.
    pub fn case_id(&self) -> CaseId {
        match self {
            Self::CaseOpened { case_id, .. }
            | Self::TriageStarted { case_id, .. }
            | Self::CaseAssigned { case_id, .. }
            | Self::SeverityAssessed { case_id, .. }
            | Self::AffectedProductsSet { case_id, .. }
            | Self::CaseAccepted { case_id, .. }
            | Self::CaseRejected { case_id, .. }
            | Self::CaseMarkedDuplicate { case_id, .. }
            | Self::DuplicateLinked { case_id, .. }
            | Self::CveAssigned { case_id, .. }
            | Self::EmbargoSet { case_id, .. }
            | Self::CaseEscalated { case_id, .. }
            | Self::SlaBreached { case_id, .. }
            | Self::RemediationStarted { case_id, .. }
            | Self::CaseFixed { case_id, .. }
            | Self::CaseDisclosed { case_id, .. }
            | Self::CaseClosed { case_id, .. }
            | Self::CaseReopened { case_id, .. } => *case_id,
        }
    }

    /// When the event happened (when it was decided, not a date it carries:
    /// an embargo's `disclosure_at` or a breach's `deadline` is data).
    pub fn at(&self) -> OffsetDateTime {
        match self {
            Self::CaseOpened { opened_at: at, .. }
            | Self::TriageStarted { started_at: at, .. }
            | Self::CaseAssigned { assigned_at: at, .. }
            | Self::SeverityAssessed { assessed_at: at, .. }
            | Self::AffectedProductsSet { set_at: at, .. }
            | Self::CaseAccepted { accepted_at: at, .. }
            | Self::CaseRejected { rejected_at: at, .. }
            | Self::CaseMarkedDuplicate { marked_at: at, .. }
            | Self::DuplicateLinked { linked_at: at, .. }
            | Self::CveAssigned { assigned_at: at, .. }
            | Self::EmbargoSet { set_at: at, .. }
            | Self::CaseEscalated { escalated_at: at, .. }
            | Self::SlaBreached { recorded_at: at, .. }
            | Self::RemediationStarted { started_at: at, .. }
            | Self::CaseFixed { fixed_at: at, .. }
            | Self::CaseDisclosed { disclosed_at: at, .. }
            | Self::CaseClosed { closed_at: at, .. }
            | Self::CaseReopened { reopened_at: at, .. } => *at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    #[error("case {id} already exists")]
    AlreadyExists { id: CaseId },
    #[error("no such case")]
    NotFound,
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    /// A command that records something, in a status where it cannot be
    /// recorded (see the table in the module documentation).
    #[error("case {id} is {status}: {command} is not allowed")]
    NotAllowed { id: CaseId, status: CaseStatus, command: &'static str },
    #[error("case {id} cannot be accepted before its severity is assessed")]
    SeverityNotAssessed { id: CaseId },
    #[error("a case cannot be a duplicate of itself")]
    DuplicateOfSelf,
    /// Only `Reopen` (and reading) applies to a closed case.
    #[error("case {id} is closed; reopen it first")]
    Closed { id: CaseId },
    #[error("case {id} is {status}, not closed, so it cannot be reopened")]
    NotClosed { id: CaseId, status: CaseStatus },
    #[error("invalid case command: {}", validation::join(.0))]
    Validation(Vec<FieldViolation>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub reason: RejectionReason,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    pub resolution: Resolution,
    pub root_cause: String,
    pub lessons_learned: String,
    #[serde(with = "time::serde::rfc3339")]
    pub closed_at: OffsetDateTime,
}

/// Which of intake's duplicate rules matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateMatch {
    /// The normalized titles are equal or very similar.
    Title,
    /// Overlapping affected products and similar titles.
    TitleAndProduct,
    /// The same external reference (an upstream advisory id, a CVE id).
    ExternalReference,
    /// Same reporter and overlapping products within a short window.
    ReporterAndProduct,
}

/// What intake's duplicate hint said: which reports matched, by which rule,
/// how closely, and when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DuplicateHint {
    /// This case's report the hint named.
    pub report_id: Option<ReportId>,
    /// The other case's report the hint named.
    pub other_report_id: Option<ReportId>,
    pub match_kind: Option<DuplicateMatch>,
    /// 0.0 (unrelated) to 1.0 (identical).
    pub similarity: f64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub suspected_at: Option<OffsetDateTime>,
}

/// Another case intake suspects to be about the same vulnerability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedDuplicate {
    pub other_case: CaseId,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub linked_at: OffsetDateTime,
}

/// Everything known about an opened case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseDetails {
    pub id: CaseId,
    pub key: CaseKey,
    pub report_id: Option<ReportId>,
    pub title: String,
    pub status: CaseStatus,
    pub assignee: Option<String>,
    /// The team of the current assignment.
    pub team: Option<String>,
    /// The latest assessment; kept on reopening (a reopened case is
    /// reassessed, not assessed from nothing).
    pub severity: Option<Severity>,
    /// The latest list; kept on reopening.
    pub affected_products: Vec<AffectedProduct>,
    /// In the order they were assigned.
    pub cves: Vec<CveId>,
    /// The latest embargo, also once past: it says when the case could be disclosed.
    pub embargo: Option<Embargo>,
    /// The level the case stands escalated to; cleared on reopening, so
    /// that the reopened case's own deadlines escalate it again.
    pub escalation: Option<Escalation>,
    /// Every deadline missed, in the order recorded; kept on reopening (SLA
    /// compliance counts them).
    pub sla_breaches: Vec<SlaBreach>,
    /// Intake's hints, in the order they came.
    pub suspected_duplicates: Vec<LinkedDuplicate>,
    /// Set while the case stands as a duplicate; cleared on reopening.
    pub duplicate_of: Option<CaseId>,
    /// Set while the case stands rejected; cleared on reopening.
    pub rejection: Option<Rejection>,
    /// The latest closure; cleared on reopening.
    pub closure: Option<Closure>,
    pub reopen_count: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    /// The latest event's time (never moves back, whatever the clocks of
    /// the replicas that wrote the events).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub status_changed_at: OffsetDateTime,
    /// When triage first started; kept on reopening (the SLA clocks and the
    /// time-to-triage metric measure the first triage).
    #[serde(with = "time::serde::rfc3339::option")]
    pub triage_started_at: Option<OffsetDateTime>,
    /// When triage first decided (accepted, rejected or duplicate); kept on reopening.
    #[serde(with = "time::serde::rfc3339::option")]
    pub triaged_at: Option<OffsetDateTime>,
    /// Set while the case stands closed; cleared on reopening.
    #[serde(with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
}

impl CaseDetails {
    /// Whether the case may not be disclosed yet at `now`: an embargo that
    /// has not lifted, on a case not yet disclosed or closed.
    pub fn is_under_embargo(&self, now: OffsetDateTime) -> bool {
        !matches!(self.status, CaseStatus::Disclosed | CaseStatus::Closed)
            && self.embargo.as_ref().is_some_and(|embargo| embargo.disclosure_at > now)
    }

    pub fn escalation_level(&self) -> Option<EscalationLevel> {
        self.escalation.as_ref().map(|escalation| escalation.level)
    }

    /// The rating lists filter on: v4.0 if assessed, else v3.x.
    pub fn rating(&self) -> Option<CvssSeverity> {
        self.severity.as_ref().and_then(|severity| severity.rating)
    }

    /// Refuses `command` unless the case is in one of `allowed`.
    fn allows(&self, command: &'static str, allowed: &[CaseStatus]) -> Result<(), CaseError> {
        if allowed.contains(&self.status) {
            Ok(())
        } else if self.status == CaseStatus::Closed {
            Err(CaseError::Closed { id: self.id })
        } else {
            Err(CaseError::NotAllowed { id: self.id, status: self.status, command })
        }
    }

    /// `event`, preceded by `TriageStarted` when the case is still received:
    /// working on a received case is triaging it.
    fn triaging(&self, event: CaseEvent, now: OffsetDateTime) -> Vec<CaseEvent> {
        if self.status == CaseStatus::Received {
            vec![CaseEvent::TriageStarted { case_id: self.id, started_at: now }, event]
        } else {
            vec![event]
        }
    }
}

/// The case aggregate. `Default` is a case not yet opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Case {
    details: Option<CaseDetails>,
    version: u64,
}

impl Case {
    /// `None` until the case is opened.
    pub fn details(&self) -> Option<&CaseDetails> {
        self.details.as_ref()
    }

    pub fn exists(&self) -> bool {
        self.details.is_some()
    }

    /// How many events have been applied (not the event store's sequence).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Decides. Checks run in this order, so a caller learns the most
    /// fundamental problem first: the case exists, the status allows the
    /// command, the input is valid (every violation at once), and only then
    /// whether it would change anything (a command that would not is a
    /// no-op: no events, no error, so retries are safe).
    pub fn handle(&self, command: CaseCommand, now: OffsetDateTime) -> Result<Vec<CaseEvent>, CaseError> {
        let Some(case) = &self.details else {
            return match command {
                CaseCommand::Open { case_id, key, report_id, title, channel, report_received_at } => {
                    let title = checked_title(&title)?;
                    Ok(vec![CaseEvent::CaseOpened {
                        case_id,
                        key,
                        report_id,
                        title,
                        channel,
                        report_received_at,
                        opened_at: now,
                    }])
                }
                _ => Err(CaseError::NotFound),
            };
        };
        let case_id = case.id;
        let name = command.name();
        let event = match command {
            CaseCommand::Open { .. } => return Err(CaseError::AlreadyExists { id: case_id }),
            CaseCommand::StartTriage => {
                // Closed -> Triage is a reopening, which must say why.
                if case.status == CaseStatus::Closed {
                    return Err(CaseError::Closed { id: case_id });
                }
                case.status.transition(CaseStatus::Triage)?;
                CaseEvent::TriageStarted { case_id, started_at: now }
            }
            CaseCommand::Assign { assignee, team } => {
                case.allows(name, &OPEN_STATUSES)?;
                let mut violations = Vec::new();
                check_name(&mut violations, "assignee", &assignee);
                if let Some(team) = &team {
                    check_text(&mut violations, "team", team, false);
                }
                reject(violations)?;
                let assignee = assignee.trim();
                let team = team.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
                if case.assignee.as_deref() == Some(assignee) && case.team == team {
                    return Ok(Vec::new());
                }
                let event = CaseEvent::CaseAssigned {
                    case_id,
                    assignee: assignee.to_owned(),
                    team,
                    assigned_at: now,
                };
                return Ok(case.triaging(event, now));
            }
            CaseCommand::AssessSeverity { cvss_v3, cvss_v4, ssvc_decision, evidence } => {
                case.allows(name, &FINDINGS_STATUSES)?;
                let mut violations = Vec::new();
                let assessment = severity::assess(
                    &mut violations,
                    cvss_v3.as_deref(),
                    cvss_v4.as_deref(),
                    ssvc_decision.as_deref(),
                    evidence,
                );
                let Some(assessment) = assessment else {
                    return Err(CaseError::Validation(violations));
                };
                if assessment.is_recorded_in(case.severity.as_ref()) {
                    return Ok(Vec::new());
                }
                let event = CaseEvent::SeverityAssessed {
                    case_id,
                    cvss_v3: assessment.cvss_v3,
                    cvss_v4: assessment.cvss_v4,
                    ssvc_decision: assessment.ssvc_decision,
                    rating: assessment.rating,
                    evidence: assessment.evidence,
                    assessed_at: now,
                };
                return Ok(case.triaging(event, now));
            }
            CaseCommand::SetAffectedProducts { entries } => {
                case.allows(name, &FINDINGS_STATUSES)?;
                let mut violations = Vec::new();
                let products = products::check(&mut violations, &entries);
                reject(violations)?;
                if case.affected_products == products {
                    return Ok(Vec::new());
                }
                let event = CaseEvent::AffectedProductsSet { case_id, products, set_at: now };
                return Ok(case.triaging(event, now));
            }
            CaseCommand::Accept { note } => {
                case.status.transition(CaseStatus::Accepted)?;
                if case.severity.is_none() {
                    return Err(CaseError::SeverityNotAssessed { id: case_id });
                }
                CaseEvent::CaseAccepted { case_id, note, accepted_at: now }
            }
            CaseCommand::Reject { reason, text } => {
                case.status.transition(CaseStatus::Rejected)?;
                let mut violations = Vec::new();
                // "Other" says nothing by itself; the reporter is owed an explanation.
                check_text(&mut violations, "text", &text, reason == RejectionReason::Other);
                reject(violations)?;
                CaseEvent::CaseRejected { case_id, reason, text, rejected_at: now }
            }
            CaseCommand::MarkDuplicate { of, of_key, note } => {
                if of == case_id {
                    return Err(CaseError::DuplicateOfSelf);
                }
                case.status.transition(CaseStatus::Duplicate)?;
                CaseEvent::CaseMarkedDuplicate { case_id, of, of_key, note, marked_at: now }
            }
            CaseCommand::LinkSuspectedDuplicate { other, reason, hint } => {
                if other == case_id {
                    return Err(CaseError::DuplicateOfSelf);
                }
                let mut violations = Vec::new();
                check_text(&mut violations, "reason", &reason, false);
                reject(violations)?;
                if case.suspected_duplicates.iter().any(|link| link.other_case == other) {
                    return Ok(Vec::new());
                }
                CaseEvent::DuplicateLinked { case_id, other_case: other, reason, hint, linked_at: now }
            }
            CaseCommand::AssignCve { cve_id, assigner } => {
                case.allows(name, &FINDINGS_STATUSES)?;
                let cve_id = check_cve_id(&cve_id, now)?;
                if case.cves.contains(&cve_id) {
                    return Ok(Vec::new());
                }
                let event = CaseEvent::CveAssigned { case_id, cve_id, assigner, assigned_at: now };
                return Ok(case.triaging(event, now));
            }
            CaseCommand::SetEmbargo { disclosure_at, time_zone, terms } => {
                case.allows(name, &EMBARGO_STATUSES)?;
                let time_zone = time_zone.trim();
                let mut violations = Vec::new();
                if let Err(problem) = check_time_zone(time_zone) {
                    violations.push(FieldViolation::new("time_zone", format!("time zone {problem}")));
                }
                if disclosure_at < now - DISCLOSURE_DATE_TOLERANCE {
                    violations.push(FieldViolation::new(
                        "disclosure_at",
                        "disclosure date must not be in the past",
                    ));
                }
                reject(violations)?;
                if case.embargo.as_ref().is_some_and(|embargo| {
                    embargo.disclosure_at == disclosure_at
                        && embargo.time_zone == time_zone
                        && embargo.terms == terms
                }) {
                    return Ok(Vec::new());
                }
                let event = CaseEvent::EmbargoSet {
                    case_id,
                    disclosure_at,
                    time_zone: time_zone.to_owned(),
                    terms,
                    set_at: now,
                };
                return Ok(case.triaging(event, now));
            }
            CaseCommand::Escalate { level, reason, automatic, incident, sla_deadline } => {
                case.allows(name, &OPEN_STATUSES)?;
                let mut violations = Vec::new();
                check_text(&mut violations, "reason", &reason, true);
                if let Some(current) = case.escalation_level() {
                    if level < current && !automatic {
                        violations.push(FieldViolation::new(
                            "level",
                            format!("the case is already escalated to {current}; escalations only go up"),
                        ));
                    }
                }
                reject(violations)?;
                if case.escalation_level().is_some_and(|current| level <= current) {
                    return Ok(Vec::new());
                }
                CaseEvent::CaseEscalated {
                    case_id,
                    level,
                    reason,
                    automatic,
                    incident,
                    sla_deadline,
                    escalated_at: now,
                }
            }
            CaseCommand::RecordSlaBreach { clock, deadline } => {
                case.allows(name, &OPEN_STATUSES)?;
                if deadline > now {
                    return Err(CaseError::Validation(vec![FieldViolation::new(
                        "deadline",
                        "deadline has not passed yet",
                    )]));
                }
                if case.sla_breaches.iter().any(|breach| breach.clock == clock && breach.deadline == deadline)
                {
                    return Ok(Vec::new());
                }
                CaseEvent::SlaBreached { case_id, clock, deadline, recorded_at: now }
            }
            CaseCommand::StartRemediation { plan_id } => {
                case.status.transition(CaseStatus::Remediating)?;
                CaseEvent::RemediationStarted { case_id, plan_id, started_at: now }
            }
            CaseCommand::MarkFixed { plan_id, fixed_versions } => {
                case.status.transition(CaseStatus::Fixed)?;
                CaseEvent::CaseFixed { case_id, plan_id, fixed_versions, fixed_at: now }
            }
            CaseCommand::Disclose { advisory_id, tracking_id } => {
                case.status.transition(CaseStatus::Disclosed)?;
                CaseEvent::CaseDisclosed { case_id, advisory_id, tracking_id, disclosed_at: now }
            }
            CaseCommand::Close { resolution, root_cause, lessons_learned } => {
                case.status.transition(CaseStatus::Closed)?;
                let mut violations = Vec::new();
                if !resolution.fits(case.status) {
                    violations.push(FieldViolation::new(
                        "resolution",
                        format!("a {} case cannot be closed as {resolution:?}", case.status),
                    ));
                }
                check_text(&mut violations, "root_cause", &root_cause, resolution.needs_root_cause());
                check_text(&mut violations, "lessons_learned", &lessons_learned, false);
                reject(violations)?;
                CaseEvent::CaseClosed { case_id, resolution, root_cause, lessons_learned, closed_at: now }
            }
            CaseCommand::Reopen { reason } => {
                if case.status != CaseStatus::Closed {
                    return Err(CaseError::NotClosed { id: case_id, status: case.status });
                }
                let mut violations = Vec::new();
                check_text(&mut violations, "reason", &reason, true);
                reject(violations)?;
                CaseEvent::CaseReopened { case_id, reason, reopened_at: now }
            }
        };
        Ok(vec![event])
    }

    /// Evolves the state. Events that do not fit the current state are still
    /// applied as far as they can be: an event is a fact, and replay must not fail.
    pub fn apply(&mut self, event: &CaseEvent) {
        self.version += 1;
        if let CaseEvent::CaseOpened { case_id, key, report_id, title, opened_at, .. } = event {
            self.details = Some(CaseDetails {
                id: *case_id,
                key: *key,
                report_id: *report_id,
                title: title.clone(),
                status: CaseStatus::Received,
                assignee: None,
                team: None,
                severity: None,
                affected_products: Vec::new(),
                cves: Vec::new(),
                embargo: None,
                escalation: None,
                sla_breaches: Vec::new(),
                suspected_duplicates: Vec::new(),
                duplicate_of: None,
                rejection: None,
                closure: None,
                reopen_count: 0,
                opened_at: *opened_at,
                updated_at: *opened_at,
                status_changed_at: *opened_at,
                triage_started_at: None,
                triaged_at: None,
                closed_at: None,
            });
            return;
        }
        let Some(case) = &mut self.details else {
            return;
        };
        let at = event.at();
        case.updated_at = case.updated_at.max(at);
        match event {
            CaseEvent::CaseOpened { .. }
            | CaseEvent::RemediationStarted { .. }
            | CaseEvent::CaseFixed { .. }
            | CaseEvent::CaseDisclosed { .. } => {}
            CaseEvent::TriageStarted { .. } => {
                case.triage_started_at.get_or_insert(at);
            }
            CaseEvent::CaseAccepted { .. } => {
                case.triaged_at.get_or_insert(at);
            }
            CaseEvent::CaseAssigned { assignee, team, .. } => {
                case.assignee = Some(assignee.clone());
                case.team = team.clone();
            }
            CaseEvent::SeverityAssessed {
                cvss_v3,
                cvss_v4,
                ssvc_decision,
                rating,
                evidence,
                assessed_at,
                ..
            } => {
                case.severity = Some(Severity {
                    cvss_v3: cvss_v3.clone(),
                    cvss_v4: cvss_v4.clone(),
                    ssvc_decision: ssvc_decision.clone(),
                    rating: *rating,
                    evidence: evidence.clone(),
                    assessed_at: *assessed_at,
                });
            }
            CaseEvent::AffectedProductsSet { products, .. } => case.affected_products = products.clone(),
            CaseEvent::CaseRejected { reason, text, .. } => {
                case.rejection = Some(Rejection { reason: *reason, text: text.clone() });
                case.triaged_at.get_or_insert(at);
            }
            CaseEvent::CaseMarkedDuplicate { of, .. } => {
                case.duplicate_of = Some(*of);
                case.triaged_at.get_or_insert(at);
            }
            CaseEvent::DuplicateLinked { other_case, reason, linked_at, .. } => {
                if !case.suspected_duplicates.iter().any(|link| link.other_case == *other_case) {
                    case.suspected_duplicates.push(LinkedDuplicate {
                        other_case: *other_case,
                        reason: reason.clone(),
                        linked_at: *linked_at,
                    });
                }
            }
            CaseEvent::CveAssigned { cve_id, .. } => {
                if !case.cves.contains(cve_id) {
                    case.cves.push(cve_id.clone());
                }
            }
            CaseEvent::EmbargoSet { disclosure_at, time_zone, terms, set_at, .. } => {
                case.embargo = Some(Embargo {
                    disclosure_at: *disclosure_at,
                    time_zone: time_zone.clone(),
                    terms: terms.clone(),
                    set_at: *set_at,
                });
            }
            CaseEvent::CaseEscalated { level, reason, automatic, escalated_at, .. } => {
                case.escalation = Some(Escalation {
                    level: *level,
                    reason: reason.clone(),
                    automatic: *automatic,
                    escalated_at: *escalated_at,
                });
            }
            CaseEvent::SlaBreached { clock, deadline, recorded_at, .. } => {
                if !case.sla_breaches.iter().any(|b| b.clock == *clock && b.deadline == *deadline) {
                    case.sla_breaches.push(SlaBreach {
                        clock: *clock,
                        deadline: *deadline,
                        recorded_at: *recorded_at,
                    });
                }
            }
            CaseEvent::CaseClosed { resolution, root_cause, lessons_learned, closed_at, .. } => {
                case.closure = Some(Closure {
                    resolution: *resolution,
                    root_cause: root_cause.clone(),
                    lessons_learned: lessons_learned.clone(),
                    closed_at: *closed_at,
                });
                case.closed_at = Some(*closed_at);
            }
            CaseEvent::CaseReopened { .. } => {
                case.reopen_count += 1;
                case.closure = None;
                case.closed_at = None;
                case.rejection = None;
                case.duplicate_of = None;
                case.escalation = None;
            }
        }
        if let Some(status) = event.status_after() {
            case.status = status;
            case.status_changed_at = at;
        }
    }
}

impl Aggregate for Case {
    type Command = CaseCommand;
    type Event = CaseEvent;
    type Error = CaseError;

    const AGGREGATE_TYPE: &'static str = "case";

    fn handle(&self, command: CaseCommand, now: OffsetDateTime) -> Result<Vec<CaseEvent>, CaseError> {
        Case::handle(self, command, now)
    }

    fn apply(&mut self, event: &CaseEvent) {
        Case::apply(self, event);
    }

    fn version(&self) -> u64 {
        self.version
    }
}

/// The title a case opens with, trimmed.
fn checked_title(title: &str) -> Result<String, CaseError> {
    let title = title.trim();
    let mut violations = Vec::new();
    if title.is_empty() {
        violations.push(FieldViolation::new("title", "title must not be empty"));
    } else if title.chars().count() > MAX_TITLE_CHARS {
        violations.push(FieldViolation::new(
            "title",
            format!("title must be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    reject(violations)?;
    Ok(title.to_owned())
}

/// A CVE id that is well formed and could have been assigned by `now`
/// (a year after next year is a typo, not a reservation).
fn check_cve_id(cve_id: &str, now: OffsetDateTime) -> Result<CveId, CaseError> {
    let invalid =
        |description: String| CaseError::Validation(vec![FieldViolation::new("cve_id", description)]);
    let cve_id = CveId::parse(cve_id).map_err(|problem| invalid(format!("CVE id {problem}")))?;
    let latest_year = now.year() + 1;
    if cve_id.year() > latest_year {
        return Err(invalid(format!("CVE id must not have a year after {latest_year}")));
    }
    Ok(cve_id)
}

fn reject(violations: Vec<FieldViolation>) -> Result<(), CaseError> {
    if violations.is_empty() { Ok(()) } else { Err(CaseError::Validation(violations)) }
}

#[cfg(test)]
mod tests;
