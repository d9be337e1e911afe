//! The security advisory of a case (ISO/IEC 29147 disclosure): drafted,
//! published once the embargo lifts and every affected product has a
//! status, then revised as new versions.
//!
//! A case has exactly one advisory ([`AdvisoryId::for_case`]). The draft
//! stays editable after publication: an edit is the content of the next
//! revision, published by the next `Publish`.
//!
//! Versions follow CSAF 2.0 `document.tracking.version` in semantic
//! versioning: the first publication is `1.0.0`; every revision after it
//! increments the minor version and resets the patch (`1.1.0`, `1.2.0`,
//! ...). A revision is new information for the same advisory (more products
//! fixed, corrected scores, new references), which is what a minor
//! increment says; the major version is left to a future explicit command.
//! Every publication is in [`Advisory::revisions`], the CSAF revision
//! history: the first with the summary "Initial public release".
//!
//! Publishing is refused (the service answers FAILED_PRECONDITION) without
//! a draft, while the embargo runs (unless an administrator overrides it with
//! a reason, which the event records), and while a product of the plan has
//! no status; bad input is refused with field violations (INVALID_ARGUMENT).
//! Revisions are not held by the embargo: the advisory is already public.
//! A revision may republish unchanged text: product statuses, scores and CVE
//! ids come from the case and the plan at export time, so "more products
//! fixed" is a revision of its own.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use crate::aggregate::{Aggregate, DomainEvent};
use crate::ids::{AdvisoryId, CaseId};
use crate::remediation::{MAX_REASON_CHARS, check_chars, check_reason, check_required_chars, check_url};
use crate::validation::{self, FieldViolation, MAX_TITLE_CHARS, present};

/// Longest tracking id (`ACME-SA-2026-0001`).
pub const MAX_TRACKING_ID_CHARS: usize = 100;
/// Longest summary.
pub const MAX_SUMMARY_CHARS: usize = 2000;
/// Most acknowledgments one advisory credits.
pub const MAX_ACKNOWLEDGMENTS: usize = 50;
/// Most reference URLs.
pub const MAX_REFERENCES: usize = 50;
/// Longest name or organization in an acknowledgment.
pub const MAX_CREDIT_CHARS: usize = 200;
/// Longest change summary of a revision.
pub const MAX_CHANGE_SUMMARY_CHARS: usize = 1000;
/// The revision history's summary of the first publication.
pub const INITIAL_RELEASE_SUMMARY: &str = "Initial public release";

/// Credit for a person or organization.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Acknowledgment {
    pub name: String,
    pub organization: Option<String>,
    /// An https URL.
    pub url: Option<String>,
    /// Whether the person agreed to be credited by name.
    pub consent: bool,
}

/// The text of an advisory as customers read it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AdvisoryContent {
    pub title: String,
    pub summary: String,
    pub details: String,
    /// Empty if none.
    pub workarounds: String,
    pub acknowledgments: Vec<Acknowledgment>,
    /// https URLs.
    pub references: Vec<String>,
}

/// Machine-readable formats the export produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvisoryFormat {
    /// OASIS CSAF 2.0.
    Csaf,
    /// CVE JSON 5 record.
    CveJson,
    /// OSV schema entry.
    Osv,
    /// OpenVEX document.
    OpenVex,
}

/// A semantic version `major.minor.patch` (CSAF `document.tracking.version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AdvisoryVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl AdvisoryVersion {
    /// The version of the first publication.
    pub const INITIAL: Self = Self { major: 1, minor: 0, patch: 0 };

    /// The version of the next revision: minor incremented, patch reset.
    pub const fn next_revision(self) -> Self {
        Self { major: self.major, minor: self.minor.saturating_add(1), patch: 0 }
    }
}

impl fmt::Display for AdvisoryVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Text that is not `major.minor.patch` in decimal numbers without leading zeros.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a version like 1.0.0")]
pub struct InvalidAdvisoryVersion(pub String);

impl FromStr for AdvisoryVersion {
    type Err = InvalidAdvisoryVersion;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidAdvisoryVersion(text.to_owned());
        let number = |part: &str| {
            let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
            let leading_zero = part.len() > 1 && part.starts_with('0');
            if digits && !leading_zero { part.parse::<u32>().ok() } else { None }
        };
        let parts: Vec<&str> = text.split('.').collect();
        let [major, minor, patch] = parts.as_slice() else { return Err(invalid()) };
        match (number(major), number(minor), number(patch)) {
            (Some(major), Some(minor), Some(patch)) => Ok(Self { major, minor, patch }),
            _ => Err(invalid()),
        }
    }
}

impl Serialize for AdvisoryVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AdvisoryVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdvisoryCommand {
    /// Drafts the advisory, or edits the draft (also after publication: the
    /// edit becomes the next revision). The same draft again is a no-op.
    Draft { case_id: CaseId, tracking_id: String, content: AdvisoryContent },
    /// Publishes the draft: `1.0.0` the first time, a revision afterwards.
    Publish {
        /// At least one.
        formats: Vec<AdvisoryFormat>,
        /// The case's embargo, if it has one.
        embargo_until: Option<OffsetDateTime>,
        /// Why to publish before the embargo lifts (administrators only).
        override_reason: Option<String>,
        actor_is_admin: bool,
        /// The plan's affected products without a status (the service computes them).
        unresolved_products: Vec<String>,
        /// Required for a revision; ignored for the first publication.
        change_summary: Option<String>,
    },
}

/// Facts about an advisory; the names are the protobuf message names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AdvisoryEvent {
    AdvisoryDrafted {
        advisory_id: AdvisoryId,
        case_id: CaseId,
        tracking_id: String,
        content: AdvisoryContent,
        #[serde(with = "time::serde::rfc3339")]
        drafted_at: OffsetDateTime,
    },
    AdvisoryPublished {
        advisory_id: AdvisoryId,
        case_id: CaseId,
        tracking_id: String,
        version: AdvisoryVersion,
        content: AdvisoryContent,
        formats: Vec<AdvisoryFormat>,
        #[serde(with = "time::serde::rfc3339")]
        published_at: OffsetDateTime,
        /// Set exactly when it was published before the embargo lifted.
        embargo_override_reason: Option<String>,
    },
    AdvisoryRevised {
        advisory_id: AdvisoryId,
        case_id: CaseId,
        tracking_id: String,
        version: AdvisoryVersion,
        content: AdvisoryContent,
        change_summary: String,
        formats: Vec<AdvisoryFormat>,
        #[serde(with = "time::serde::rfc3339")]
        revised_at: OffsetDateTime,
    },
}

impl DomainEvent for AdvisoryEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::AdvisoryDrafted { .. } => "AdvisoryDrafted",
            Self::AdvisoryPublished { .. } => "AdvisoryPublished",
            Self::AdvisoryRevised { .. } => "AdvisoryRevised",
        }
    }
}

impl AdvisoryEvent {
    pub fn advisory_id(&self) -> AdvisoryId {
        match self {
            Self::AdvisoryDrafted { advisory_id, .. }
            | Self::AdvisoryPublished { advisory_id, .. }
            | Self::AdvisoryRevised { advisory_id, .. } => *advisory_id,
        }
    }

    pub fn case_id(&self) -> CaseId {
        match self {
            Self::AdvisoryDrafted { case_id, .. }
            | Self::AdvisoryPublished { case_id, .. }
            | Self::AdvisoryRevised { case_id, .. } => *case_id,
        }
    }

    /// When the event was decided.
    pub fn at(&self) -> OffsetDateTime {
        match self {
            Self::AdvisoryDrafted { drafted_at: at, .. }
            | Self::AdvisoryPublished { published_at: at, .. }
            | Self::AdvisoryRevised { revised_at: at, .. } => *at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvisoryError {
    /// Nothing drafted yet (FAILED_PRECONDITION).
    #[error("the advisory has no draft to publish")]
    NoDraft,
    /// The embargo has not lifted, and no administrator overrode it with a
    /// reason (FAILED_PRECONDITION).
    #[error("the embargo runs until {until}; only an administrator can publish earlier, with a reason")]
    EmbargoInEffect { until: OffsetDateTime },
    /// Products of the plan without a status (FAILED_PRECONDITION).
    #[error("products without a status: {}", .products.join(", "))]
    UnresolvedProducts { products: Vec<String> },
    /// Bad input (INVALID_ARGUMENT), every problem at once.
    #[error("invalid advisory command: {}", validation::join(.0))]
    Validation(Vec<FieldViolation>),
}

/// One entry of the revision history (CSAF `document.tracking.revision_history`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub version: AdvisoryVersion,
    #[serde(with = "time::serde::rfc3339")]
    pub date: OffsetDateTime,
    pub summary: String,
}

/// What was last made public.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    pub version: AdvisoryVersion,
    pub content: AdvisoryContent,
    pub formats: Vec<AdvisoryFormat>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Everything known about a drafted advisory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvisoryDetails {
    pub id: AdvisoryId,
    pub case_id: CaseId,
    pub tracking_id: String,
    /// The latest draft: what the next `Publish` makes public.
    pub draft: AdvisoryContent,
    #[serde(with = "time::serde::rfc3339")]
    pub drafted_at: OffsetDateTime,
    /// The latest publication or revision.
    pub published: Option<Publication>,
    /// When first published (CSAF `initial_release_date`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_published_at: Option<OffsetDateTime>,
    /// Why the first publication did not wait for the embargo, if it did not.
    pub embargo_override_reason: Option<String>,
    pub revisions: Vec<Revision>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The advisory aggregate. `Default` is an advisory not yet drafted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Advisory {
    details: Option<AdvisoryDetails>,
    version: u64,
}

impl Advisory {
    /// `None` until drafted.
    pub fn details(&self) -> Option<&AdvisoryDetails> {
        self.details.as_ref()
    }

    pub fn exists(&self) -> bool {
        self.details.is_some()
    }

    /// How many events have been applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every publication, oldest first; empty until published.
    pub fn revisions(&self) -> &[Revision] {
        self.details.as_ref().map_or(&[], |details| details.revisions.as_slice())
    }

    /// The version last published.
    pub fn current_version(&self) -> Option<AdvisoryVersion> {
        self.details.as_ref()?.published.as_ref().map(|publication| publication.version)
    }

    pub fn is_published(&self) -> bool {
        self.current_version().is_some()
    }

    /// The version the next `Publish` would give.
    pub fn next_version(&self) -> AdvisoryVersion {
        self.current_version().map_or(AdvisoryVersion::INITIAL, AdvisoryVersion::next_revision)
    }

    /// Whether the draft differs from what was last published (or was never published).
    pub fn has_unpublished_changes(&self) -> bool {
        self.details.as_ref().is_some_and(|details| {
            details.published.as_ref().is_none_or(|publication| publication.content != details.draft)
        })
    }

    /// Decides: the advisory exists, the input is valid (every violation at
    /// once), then the preconditions (embargo, unresolved products).
    pub fn handle(
        &self,
        command: AdvisoryCommand,
        now: OffsetDateTime,
    ) -> Result<Vec<AdvisoryEvent>, AdvisoryError> {
        match command {
            AdvisoryCommand::Draft { case_id, tracking_id, content } => {
                self.draft(case_id, &tracking_id, &content, now)
            }
            AdvisoryCommand::Publish {
                formats,
                embargo_until,
                override_reason,
                actor_is_admin,
                unresolved_products,
                change_summary,
            } => {
                let Some(advisory) = &self.details else { return Err(AdvisoryError::NoDraft) };
                let mut violations = Vec::new();
                let mut unique_formats: Vec<AdvisoryFormat> = Vec::with_capacity(formats.len());
                for format in formats {
                    if !unique_formats.contains(&format) {
                        unique_formats.push(format);
                    }
                }
                if unique_formats.is_empty() {
                    violations.push(FieldViolation::new("formats", "at least one format must be given"));
                }
                let override_reason = present(override_reason.as_deref()).map(str::to_owned);
                if let Some(reason) = &override_reason {
                    check_reason(&mut violations, "override_reason", reason, MAX_REASON_CHARS);
                }
                let change_summary = present(change_summary.as_deref()).map(str::to_owned);
                if advisory.published.is_some() {
                    match &change_summary {
                        None => violations.push(FieldViolation::new(
                            "change_summary",
                            "a revision needs a summary of the change",
                        )),
                        Some(summary) => {
                            check_reason(
                                &mut violations,
                                "change_summary",
                                summary,
                                MAX_CHANGE_SUMMARY_CHARS,
                            );
                        }
                    }
                }
                reject(violations)?;

                let first = advisory.published.is_none();
                let mut embargo_override_reason = None;
                if let Some(until) = embargo_until.filter(|until| first && now < *until) {
                    match override_reason {
                        Some(reason) if actor_is_admin => embargo_override_reason = Some(reason),
                        _ => return Err(AdvisoryError::EmbargoInEffect { until }),
                    }
                }
                let mut unresolved: Vec<String> = Vec::new();
                for product in &unresolved_products {
                    let product = product.trim();
                    if !product.is_empty() && !unresolved.iter().any(|p| p == product) {
                        unresolved.push(product.to_owned());
                    }
                }
                if !unresolved.is_empty() {
                    return Err(AdvisoryError::UnresolvedProducts { products: unresolved });
                }

                let (advisory_id, case_id, tracking_id) =
                    (advisory.id, advisory.case_id, advisory.tracking_id.clone());
                let content = advisory.draft.clone();
                let event = match &advisory.published {
                    None => AdvisoryEvent::AdvisoryPublished {
                        advisory_id,
                        case_id,
                        tracking_id,
                        version: AdvisoryVersion::INITIAL,
                        content,
                        formats: unique_formats,
                        published_at: now,
                        embargo_override_reason,
                    },
                    Some(publication) => AdvisoryEvent::AdvisoryRevised {
                        advisory_id,
                        case_id,
                        tracking_id,
                        version: publication.version.next_revision(),
                        content,
                        change_summary: change_summary.unwrap_or_default(),
                        formats: unique_formats,
                        revised_at: now,
                    },
                };
                Ok(vec![event])
            }
        }
    }

    fn draft(
        &self,
        case_id: CaseId,
        tracking_id: &str,
        content: &AdvisoryContent,
        now: OffsetDateTime,
    ) -> Result<Vec<AdvisoryEvent>, AdvisoryError> {
        let mut violations = Vec::new();
        let tracking_id = tracking_id.trim();
        if let Err(problem) = check_tracking_id(tracking_id) {
            violations.push(FieldViolation::new("tracking_id", format!("tracking id {problem}")));
        }
        let content = check_content(&mut violations, content);
        if let Some(advisory) = &self.details {
            if advisory.case_id != case_id {
                violations.push(FieldViolation::new(
                    "case_id",
                    format!("advisory {} belongs to case {}", advisory.id, advisory.case_id),
                ));
            }
            if advisory.published.is_some() && advisory.tracking_id != tracking_id {
                violations.push(FieldViolation::new(
                    "tracking_id",
                    format!("a published advisory keeps its tracking id {:?}", advisory.tracking_id),
                ));
            }
        }
        reject(violations)?;
        if self.details.as_ref().is_some_and(|a| a.tracking_id == tracking_id && a.draft == content) {
            return Ok(Vec::new());
        }
        Ok(vec![AdvisoryEvent::AdvisoryDrafted {
            advisory_id: AdvisoryId::for_case(case_id),
            case_id,
            tracking_id: tracking_id.to_owned(),
            content,
            drafted_at: now,
        }])
    }

    /// Evolves the state; events that do not fit are applied as far as they can be.
    pub fn apply(&mut self, event: &AdvisoryEvent) {
        self.version += 1;
        match event {
            AdvisoryEvent::AdvisoryDrafted { advisory_id, case_id, tracking_id, content, drafted_at } => {
                match &mut self.details {
                    Some(details) => {
                        details.tracking_id = tracking_id.clone();
                        details.draft = content.clone();
                        details.drafted_at = *drafted_at;
                        details.updated_at = details.updated_at.max(*drafted_at);
                    }
                    None => {
                        self.details = Some(AdvisoryDetails {
                            id: *advisory_id,
                            case_id: *case_id,
                            tracking_id: tracking_id.clone(),
                            draft: content.clone(),
                            drafted_at: *drafted_at,
                            published: None,
                            first_published_at: None,
                            embargo_override_reason: None,
                            revisions: Vec::new(),
                            updated_at: *drafted_at,
                        });
                    }
                }
            }
            AdvisoryEvent::AdvisoryPublished {
                version,
                content,
                formats,
                published_at,
                embargo_override_reason,
                ..
            } => {
                let Some(details) = &mut self.details else { return };
                details.publish(*version, content, formats, *published_at, INITIAL_RELEASE_SUMMARY);
                details.first_published_at.get_or_insert(*published_at);
                if details.embargo_override_reason.is_none() {
                    details.embargo_override_reason.clone_from(embargo_override_reason);
                }
            }
            AdvisoryEvent::AdvisoryRevised {
                version, content, change_summary, formats, revised_at, ..
            } => {
                let Some(details) = &mut self.details else { return };
                details.publish(*version, content, formats, *revised_at, change_summary);
            }
        }
    }
}

impl AdvisoryDetails {
    fn publish(
        &mut self,
        version: AdvisoryVersion,
        content: &AdvisoryContent,
        formats: &[AdvisoryFormat],
        at: OffsetDateTime,
        summary: &str,
    ) {
        self.published =
            Some(Publication { version, content: content.clone(), formats: formats.to_vec(), at });
        if !self.revisions.iter().any(|revision| revision.version == version) {
            self.revisions.push(Revision { version, date: at, summary: summary.to_owned() });
        }
        self.updated_at = self.updated_at.max(at);
    }
}

impl Aggregate for Advisory {
    type Command = AdvisoryCommand;
    type Event = AdvisoryEvent;
    type Error = AdvisoryError;

    const AGGREGATE_TYPE: &'static str = "advisory";

    fn handle(
        &self,
        command: AdvisoryCommand,
        now: OffsetDateTime,
    ) -> Result<Vec<AdvisoryEvent>, AdvisoryError> {
        Advisory::handle(self, command, now)
    }

    fn apply(&mut self, event: &AdvisoryEvent) {
        Advisory::apply(self, event);
    }

    fn version(&self) -> u64 {
        self.version
    }
}

/// 1 to [`MAX_TRACKING_ID_CHARS`] of `[A-Za-z0-9._-]`. The error completes "tracking id ...".
pub fn check_tracking_id(tracking_id: &str) -> Result<(), &'static str> {
    if tracking_id.is_empty() {
        Err("must not be empty")
    } else if tracking_id.len() > MAX_TRACKING_ID_CHARS {
        Err("must be at most 100 characters")
    } else if !tracking_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        Err("must only contain letters, digits, '.', '_' and '-'")
    } else {
        Ok(())
    }
}

/// Checks the content and returns it trimmed (title, summary, credits,
/// references; the Markdown texts are kept as written).
fn check_content(violations: &mut Vec<FieldViolation>, content: &AdvisoryContent) -> AdvisoryContent {
    let title = content.title.trim();
    check_required_chars(violations, "content.title", title, MAX_TITLE_CHARS);
    let summary = content.summary.trim();
    crate::validation::Text::block_chars(1, MAX_SUMMARY_CHARS).check(violations, "content.summary", summary);
    for (field, text) in
        [("content.details", &content.details), ("content.workarounds", &content.workarounds)]
    {
        crate::validation::Text::FREE.check(violations, field, text);
    }
    let mut acknowledgments = Vec::new();
    if content.acknowledgments.len() > MAX_ACKNOWLEDGMENTS {
        violations.push(FieldViolation::new(
            "content.acknowledgments",
            format!("at most {MAX_ACKNOWLEDGMENTS} acknowledgments"),
        ));
    } else {
        for (index, credit) in content.acknowledgments.iter().enumerate() {
            let field = |part: &str| format!("content.acknowledgments[{index}].{part}");
            let name = credit.name.trim();
            check_required_chars(violations, &field("name"), name, MAX_CREDIT_CHARS);
            let organization = present(credit.organization.as_deref()).map(str::to_owned);
            if let Some(organization) = &organization {
                check_chars(violations, &field("organization"), organization, MAX_CREDIT_CHARS);
            }
            let url = present(credit.url.as_deref()).map(str::to_owned);
            if let Some(url) = &url {
                check_url(violations, &field("url"), url);
            }
            acknowledgments.push(Acknowledgment {
                name: name.to_owned(),
                organization,
                url,
                consent: credit.consent,
            });
        }
    }
    let mut references: Vec<String> = Vec::new();
    if content.references.len() > MAX_REFERENCES {
        violations
            .push(FieldViolation::new("content.references", format!("at most {MAX_REFERENCES} references")));
    } else {
        for (index, reference) in content.references.iter().enumerate() {
            let reference = reference.trim();
            let field = format!("content.references[{index}]");
            if reference.is_empty() {
                violations.push(FieldViolation::new(field, "reference must not be empty"));
            } else if let Some(first) = references.iter().position(|r| r == reference) {
                violations.push(FieldViolation::new(field, format!("already listed at [{first}]")));
            } else {
                check_url(violations, &field, reference);
            }
            references.push(reference.to_owned());
        }
    }
    AdvisoryContent {
        title: title.to_owned(),
        summary: summary.to_owned(),
        details: content.details.clone(),
        workarounds: content.workarounds.clone(),
        acknowledgments,
        references,
    }
}

fn reject(violations: Vec<FieldViolation>) -> Result<(), AdvisoryError> {
    if violations.is_empty() { Ok(()) } else { Err(AdvisoryError::Validation(violations)) }
}

#[cfg(test)]
mod tests;
