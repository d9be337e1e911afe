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

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::aggregate::{Aggregate, DomainEvent};
use crate::case_key::CaseKey;
use crate::ids::{CaseId, ReportId};
use crate::validation::{self, FieldViolation, MAX_TITLE_CHARS, check_name, check_text};

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseCommand {
    /// Opens the case; `report_id` is the report it stems from, if any
    /// (internal findings may open a case directly).
    Open {
        case_id: CaseId,
        key: CaseKey,
        report_id: Option<ReportId>,
        title: String,
    },
    StartTriage,
    /// Assigns the case to a person or team; re-assigning the same one is a no-op.
    Assign {
        assignee: String,
    },
    Accept,
    Reject {
        reason: RejectionReason,
        text: String,
    },
    MarkDuplicate {
        of: CaseId,
    },
    StartRemediation,
    MarkFixed,
    Disclose,
    Close {
        resolution: Resolution,
        root_cause: String,
        lessons_learned: String,
    },
    Reopen {
        reason: String,
    },
}

/// Facts about a case. Names and shapes are stable: see [`DomainEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum CaseEvent {
    CaseOpened {
        case_id: CaseId,
        key: CaseKey,
        report_id: Option<ReportId>,
        title: String,
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
        #[serde(with = "time::serde::rfc3339")]
        assigned_at: OffsetDateTime,
    },
    CaseAccepted {
        case_id: CaseId,
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
        #[serde(with = "time::serde::rfc3339")]
        marked_at: OffsetDateTime,
    },
    RemediationStarted {
        case_id: CaseId,
        #[serde(with = "time::serde::rfc3339")]
        started_at: OffsetDateTime,
    },
    CaseFixed {
        case_id: CaseId,
        #[serde(with = "time::serde::rfc3339")]
        fixed_at: OffsetDateTime,
    },
    CaseDisclosed {
        case_id: CaseId,
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
            Self::CaseAccepted { .. } => "CaseAccepted",
            Self::CaseRejected { .. } => "CaseRejected",
            Self::CaseMarkedDuplicate { .. } => "CaseMarkedDuplicate",
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
            Self::CaseAssigned { .. } => None,
            Self::CaseAccepted { .. } => Some(CaseStatus::Accepted),
            Self::CaseRejected { .. } => Some(CaseStatus::Rejected),
            Self::CaseMarkedDuplicate { .. } => Some(CaseStatus::Duplicate),
            Self::RemediationStarted { .. } => Some(CaseStatus::Remediating),
            Self::CaseFixed { .. } => Some(CaseStatus::Fixed),
            Self::CaseDisclosed { .. } => Some(CaseStatus::Disclosed),
            Self::CaseClosed { .. } => Some(CaseStatus::Closed),
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

/// Everything known about an opened case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseDetails {
    pub id: CaseId,
    pub key: CaseKey,
    pub report_id: Option<ReportId>,
    pub title: String,
    pub status: CaseStatus,
    pub assignee: Option<String>,
    /// Set while the case stands as a duplicate; cleared on reopening.
    pub duplicate_of: Option<CaseId>,
    /// Set while the case stands rejected; cleared on reopening.
    pub rejection: Option<Rejection>,
    /// The latest closure; cleared on reopening.
    pub closure: Option<Closure>,
    pub reopen_count: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub status_changed_at: OffsetDateTime,
}

/// The case aggregate. `Default` is a case not yet opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

    pub fn handle(&self, command: CaseCommand, now: OffsetDateTime) -> Result<Vec<CaseEvent>, CaseError> {
        let Some(case) = &self.details else {
            return match command {
                CaseCommand::Open { case_id, key, report_id, title } => {
                    open(case_id, key, report_id, &title, now)
                }
                _ => Err(CaseError::NotFound),
            };
        };
        let case_id = case.id;
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
            CaseCommand::Assign { assignee } => {
                if case.status == CaseStatus::Closed {
                    return Err(CaseError::Closed { id: case_id });
                }
                let mut violations = Vec::new();
                check_name(&mut violations, "assignee", &assignee);
                reject(violations)?;
                let assignee = assignee.trim();
                if case.assignee.as_deref() == Some(assignee) {
                    return Ok(Vec::new());
                }
                CaseEvent::CaseAssigned { case_id, assignee: assignee.to_owned(), assigned_at: now }
            }
            CaseCommand::Accept => {
                case.status.transition(CaseStatus::Accepted)?;
                CaseEvent::CaseAccepted { case_id, accepted_at: now }
            }
            CaseCommand::Reject { reason, text } => {
                case.status.transition(CaseStatus::Rejected)?;
                let mut violations = Vec::new();
                // "Other" says nothing by itself; the reporter is owed an explanation.
                check_text(&mut violations, "text", &text, reason == RejectionReason::Other);
                reject(violations)?;
                CaseEvent::CaseRejected { case_id, reason, text, rejected_at: now }
            }
            CaseCommand::MarkDuplicate { of } => {
                if of == case_id {
                    return Err(CaseError::DuplicateOfSelf);
                }
                case.status.transition(CaseStatus::Duplicate)?;
                CaseEvent::CaseMarkedDuplicate { case_id, of, marked_at: now }
            }
            CaseCommand::StartRemediation => {
                case.status.transition(CaseStatus::Remediating)?;
                CaseEvent::RemediationStarted { case_id, started_at: now }
            }
            CaseCommand::MarkFixed => {
                case.status.transition(CaseStatus::Fixed)?;
                CaseEvent::CaseFixed { case_id, fixed_at: now }
            }
            CaseCommand::Disclose => {
                case.status.transition(CaseStatus::Disclosed)?;
                CaseEvent::CaseDisclosed { case_id, disclosed_at: now }
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
        if let CaseEvent::CaseOpened { case_id, key, report_id, title, opened_at } = event {
            self.details = Some(CaseDetails {
                id: *case_id,
                key: *key,
                report_id: *report_id,
                title: title.clone(),
                status: CaseStatus::Received,
                assignee: None,
                duplicate_of: None,
                rejection: None,
                closure: None,
                reopen_count: 0,
                opened_at: *opened_at,
                status_changed_at: *opened_at,
            });
            return;
        }
        let Some(case) = &mut self.details else {
            return;
        };
        let at = match event {
            CaseEvent::CaseOpened { .. } => return,
            CaseEvent::CaseAssigned { assignee, .. } => {
                case.assignee = Some(assignee.clone());
                return;
            }
            CaseEvent::TriageStarted { started_at, .. } => *started_at,
            CaseEvent::CaseAccepted { accepted_at, .. } => *accepted_at,
            CaseEvent::CaseRejected { reason, text, rejected_at, .. } => {
                case.rejection = Some(Rejection { reason: *reason, text: text.clone() });
                *rejected_at
            }
            CaseEvent::CaseMarkedDuplicate { of, marked_at, .. } => {
                case.duplicate_of = Some(*of);
                *marked_at
            }
            CaseEvent::RemediationStarted { started_at, .. } => *started_at,
            CaseEvent::CaseFixed { fixed_at, .. } => *fixed_at,
            CaseEvent::CaseDisclosed { disclosed_at, .. } => *disclosed_at,
            CaseEvent::CaseClosed { resolution, root_cause, lessons_learned, closed_at, .. } => {
                case.closure = Some(Closure {
                    resolution: *resolution,
                    root_cause: root_cause.clone(),
                    lessons_learned: lessons_learned.clone(),
                    closed_at: *closed_at,
                });
                *closed_at
            }
            CaseEvent::CaseReopened { reopened_at, .. } => {
                case.reopen_count += 1;
                case.closure = None;
                case.rejection = None;
                case.duplicate_of = None;
                *reopened_at
            }
        };
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

fn open(
    case_id: CaseId,
    key: CaseKey,
    report_id: Option<ReportId>,
    title: &str,
    now: OffsetDateTime,
) -> Result<Vec<CaseEvent>, CaseError> {
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
    Ok(vec![CaseEvent::CaseOpened { case_id, key, report_id, title: title.to_owned(), opened_at: now }])
}

fn reject(violations: Vec<FieldViolation>) -> Result<(), CaseError> {
    if violations.is_empty() { Ok(()) } else { Err(CaseError::Validation(violations)) }
}

#[cfg(test)]
mod tests;
