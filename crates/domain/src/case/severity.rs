//! What triage records about how severe a case is: CVSS v3.x and v4.0 scores
//! and the SSVC decision the triage service derived. Events carry the vector,
//! score and rating as decided, so replaying a case never re-scores it (nor
//! fails on a vector a later, stricter parser would refuse).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::cvss_vector::{CvssSeverity, CvssVector, CvssVersion};
use crate::ssvc::SsvcInputs;
use crate::validation::{FieldViolation, present};

/// Longest SSVC decision label accepted (`Out-of-Cycle` is 12).
pub const MAX_SSVC_DECISION_CHARS: usize = 64;

/// One CVSS vector with the score and rating it was given when assessed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvssScore {
    /// The vector as the analyst wrote it (validated when assessed).
    pub vector: String,
    pub version: CvssVersion,
    pub score: f64,
    pub severity: CvssSeverity,
}

impl CvssScore {
    pub fn of(vector: &CvssVector) -> Self {
        Self {
            vector: vector.as_str().to_owned(),
            version: vector.version(),
            score: vector.score(),
            severity: vector.severity(),
        }
    }
}

/// What the analyst knew beside the scores when assessing: the SSVC
/// decision points, exploitation in the wild, the EPSS estimate, the
/// weakness, and why. Recorded as given (the triage API checks the ranges);
/// part of the assessment, so the same scores with other evidence are a new
/// assessment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeverityEvidence {
    /// The SSVC decision points the decision was derived from.
    pub ssvc_inputs: Option<SsvcInputs>,
    /// Listed in CISA KEV, or otherwise known to be exploited.
    pub known_exploited: bool,
    /// EPSS probability of exploitation in the next 30 days, 0.0 to 1.0.
    pub epss_probability: Option<f64>,
    /// EPSS percentile of that probability, 0.0 to 1.0.
    pub epss_percentile: Option<f64>,
    /// CWE ids, e.g. `CWE-79`.
    pub cwe_ids: Vec<String>,
    /// Why the analyst rated it this way.
    pub rationale: String,
}

/// The latest severity assessment of a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Severity {
    pub cvss_v3: Option<CvssScore>,
    pub cvss_v4: Option<CvssScore>,
    /// As the triage service computed it (`Immediate`, `Out-of-Cycle`, ...).
    pub ssvc_decision: Option<String>,
    /// The v4.0 rating if there is one, else the v3.x one.
    pub rating: Option<CvssSeverity>,
    pub evidence: SeverityEvidence,
    #[serde(with = "time::serde::rfc3339")]
    pub assessed_at: OffsetDateTime,
}

/// An assessment that passed validation, ready to become an event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Assessment {
    pub cvss_v3: Option<CvssScore>,
    pub cvss_v4: Option<CvssScore>,
    pub ssvc_decision: Option<String>,
    pub rating: Option<CvssSeverity>,
    pub evidence: SeverityEvidence,
}

impl Assessment {
    /// Whether `current` already says exactly this (a retried command).
    pub fn is_recorded_in(&self, current: Option<&Severity>) -> bool {
        current.is_some_and(|s| {
            s.cvss_v3 == self.cvss_v3
                && s.cvss_v4 == self.cvss_v4
                && s.ssvc_decision == self.ssvc_decision
                && s.evidence == self.evidence
        })
    }
}

/// Checks an `AssessSeverity` command. Blank strings count as absent
/// (protobuf strings have no presence); at least one part must be given.
pub(crate) fn assess(
    violations: &mut Vec<FieldViolation>,
    cvss_v3: Option<&str>,
    cvss_v4: Option<&str>,
    ssvc_decision: Option<&str>,
    evidence: SeverityEvidence,
) -> Option<Assessment> {
    let (cvss_v3, cvss_v4, ssvc_decision) = (present(cvss_v3), present(cvss_v4), present(ssvc_decision));
    let before = violations.len();
    if cvss_v3.is_none() && cvss_v4.is_none() && ssvc_decision.is_none() {
        violations.push(FieldViolation::new(
            "severity",
            "at least one of cvss_v3, cvss_v4 and ssvc_decision must be given",
        ));
    }
    let v3 = cvss_v3.and_then(|text| {
        vector(violations, "cvss_v3", text, |v| matches!(v, CvssVersion::V3_0 | CvssVersion::V3_1), "3.x")
    });
    let v4 = cvss_v4.and_then(|text| vector(violations, "cvss_v4", text, |v| v == CvssVersion::V4_0, "4.0"));
    if let Some(decision) = ssvc_decision {
        if decision.chars().count() > MAX_SSVC_DECISION_CHARS {
            violations.push(FieldViolation::new(
                "ssvc_decision",
                format!("ssvc_decision must be at most {MAX_SSVC_DECISION_CHARS} characters"),
            ));
        } else if decision.chars().any(char::is_control) {
            violations.push(FieldViolation::new(
                "ssvc_decision",
                "ssvc_decision must not contain control characters",
            ));
        }
    }
    if violations.len() > before {
        return None;
    }
    let rating = v4.as_ref().or(v3.as_ref()).map(|score| score.severity);
    Some(Assessment {
        cvss_v3: v3,
        cvss_v4: v4,
        ssvc_decision: ssvc_decision.map(str::to_owned),
        rating,
        evidence,
    })
}

fn vector(
    violations: &mut Vec<FieldViolation>,
    field: &str,
    text: &str,
    fits: impl Fn(CvssVersion) -> bool,
    expected: &str,
) -> Option<CvssScore> {
    match CvssVector::parse(text) {
        Ok(vector) if fits(vector.version()) => Some(CvssScore::of(&vector)),
        Ok(vector) => {
            violations.push(FieldViolation::new(
                field,
                format!("{field} must be a CVSS {expected} vector, not CVSS {}", vector.version()),
            ));
            None
        }
        Err(problem) => {
            violations.push(FieldViolation::new(field, format!("not a valid CVSS vector: {problem}")));
            None
        }
    }
}
