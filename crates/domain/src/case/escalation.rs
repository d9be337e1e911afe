//! Getting a case the right attention in time: the escalation line (team,
//! management, executives) and the SLA deadlines a case has missed. The SLA
//! policy computes deadlines; the case only records what was breached and
//! who it was escalated to, once each.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Who a case is escalated to, in increasing order of reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationLevel {
    /// The owning team's lead.
    Team,
    Management,
    Executive,
}

impl EscalationLevel {
    pub const ALL: [EscalationLevel; 3] = [Self::Team, Self::Management, Self::Executive];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Team => "team",
            Self::Management => "management",
            Self::Executive => "executive",
        }
    }
}

impl fmt::Display for EscalationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The escalation a case currently stands at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub level: EscalationLevel,
    pub reason: String,
    /// Raised by the SLA scheduler rather than by a person.
    pub automatic: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub escalated_at: OffsetDateTime,
}

/// One clock's deadline (an escalation caused by it names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaDeadline {
    pub clock: SlaClock,
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
}

/// The SLA clocks a case runs against; the policy says how long each may run
/// for a given severity. Spelled as `sla::Clock` is (`acknowledge`,
/// `triage`), so the scheduler's clock and the recorded breach read the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaClock {
    /// Time to acknowledge the report to the reporter.
    Acknowledge,
    /// Time to a triage decision.
    Triage,
}

impl SlaClock {
    pub const ALL: [SlaClock; 2] = [Self::Acknowledge, Self::Triage];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Acknowledge => "acknowledge",
            Self::Triage => "triage",
        }
    }
}

impl fmt::Display for SlaClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A deadline the case missed, as recorded by the SLA scheduler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaBreach {
    pub clock: SlaClock,
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
}
