//! The rule of every string and repeated field of every request message of
//! the intake, triage, remediation, notification and admin APIs (and of the
//! messages those requests contain), in one table: [`REQUEST_FIELDS`].
//!
//! The rules are the constants the validators apply (`Text::NAME`,
//! [`TEAM`], `vers::check_range` ...): a handler or an aggregate checks a
//! field with the rule named here, not with a number of its own. The proto
//! comments state the same limits in a fixed phrasing ("1..200 characters.",
//! "At most 64 KiB.", "At most 100 entries, each 1..200 characters.",
//! "(UUID)"), and `crates/domain/tests/request_rules.rs` reads the `.proto`
//! files and fails when a field has no row here, a row has no field, or a
//! comment states another limit than its row. A new request field therefore
//! needs a comment with its limit, a row here, and a check with that rule.
//!
//! Handlers check every row of their request before they read anything, and
//! gather the violations (`psirt_kit::request::Violations`): a request with
//! three problems hears of all three, and a too-long field of a case that
//! does not exist is INVALID_ARGUMENT, not NOT_FOUND. The domain checks the
//! same rules again where it decides. `tests/tests/field_rules.rs` drives every
//! row through the running services (one past the limit refused naming the
//! field, the limit itself accepted), so a handler that skips a row, or checks
//! it with a number of its own, fails there.

use super::{
    MAX_AFFECTED_PRODUCTS, MAX_EMAIL_LEN, MAX_EXTERNAL_REFERENCE_CHARS, MAX_NAME_CHARS,
    MAX_ORGANIZATION_CHARS, MAX_PAGE_TOKEN_CHARS, MAX_PRODUCT_NAME_CHARS, MAX_REPORTER_NAME_CHARS,
    MAX_REQUEST_ID_CHARS, MAX_TITLE_CHARS, Text,
};
use crate::case::{MAX_EXPLICIT_VERSIONS, MAX_VERSION_CHARS};
use crate::remediation::{MAX_REASON_CHARS, MAX_URL_CHARS};
use crate::vers::MAX_VERS_CHARS;

/// A report title, a case title.
pub const TITLE: Text = Text::line(1, MAX_TITLE_CHARS);
/// A product key, purl or free-text product name.
pub const PRODUCT: Text = Text::line(1, MAX_PRODUCT_NAME_CHARS);
/// An optional product filter.
pub const PRODUCT_FILTER: Text = Text::line(0, MAX_PRODUCT_NAME_CHARS);
/// A team a case or an action belongs to (optional on a case).
pub const TEAM: Text = Text::line(0, MAX_NAME_CHARS);
/// An optional user name filter.
pub const ASSIGNEE_FILTER: Text = Text::line(0, MAX_NAME_CHARS);
/// A CNA short name (`AssignCve.assigner`).
pub const CVE_ASSIGNER: Text = Text::line(0, 100);
/// A party an embargo was agreed with.
pub const EMBARGO_PARTY: Text = Text::line(1, MAX_NAME_CHARS);
/// Most parties an embargo names.
pub const MAX_EMBARGO_PARTIES: usize = 50;
/// Longest CVE id text looked at.
pub const MAX_CVE_ID_CHARS: usize = 50;
/// Longest CVSS v3.x vector with its prefix.
pub const MAX_CVSS_V3_VECTOR_CHARS: usize = 200;
/// Longest CVSS v4.0 vector with its prefix (also a reporter's suggestion, either version).
pub const MAX_CVSS_V4_VECTOR_CHARS: usize = 300;
/// Most CWE ids one assessment names.
pub const MAX_CWE_IDS: usize = 10;
/// Most values of one enum filter of `ListCases`.
pub const MAX_FILTER_VALUES: usize = 20;
/// Longest IANA time zone name.
pub const MAX_TIME_ZONE_CHARS: usize = 64;
/// A single version (a listed version, a target release, a fixed version).
pub const VERSION: Text = Text::line(1, MAX_VERSION_CHARS);
/// A version or a vers range (a product status).
pub const VERSION_OR_RANGE: Text = Text::line(1, MAX_VERS_CHARS);
/// A reason or change summary of at most 1000 characters.
pub const REASON: Text = Text::block_chars(0, MAX_REASON_CHARS);
/// An external reference of a report.
pub const EXTERNAL_REFERENCE: Text = Text::line(0, MAX_EXTERNAL_REFERENCE_CHARS);

/// What a request field must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Text of this rule.
    Text(Text),
    /// A UUID (`"... (UUID)"` in the comment); blank where the field is optional.
    Id,
    /// A client idempotency key: `validation::check_request_id`.
    RequestId,
    /// An opaque page token of at most [`MAX_PAGE_TOKEN_CHARS`].
    PageToken,
    /// A vers range: `vers::check_range`.
    VersRange,
    /// Text of a syntax its parser checks (a CVE id, a CVSS vector, an
    /// e-mail address, a URL), at most `max` characters.
    Syntax { max: usize },
    /// One of a fixed set of names (a sort order, a projection): bounded by the set.
    Known,
    /// A list of `min..=max` entries, each by `each`.
    List { min: usize, max: usize, each: Each },
    /// A message whose own fields have their rules (in this table, or, for
    /// types of `psirt.events.v1`, in the comment of the request field).
    Message,
}

/// What each entry of a list must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Each {
    Text(Text),
    /// An enum value or a number: bounded by its type.
    Value,
    /// A value of a syntax its parser checks, at most `max` characters.
    Syntax {
        max: usize,
    },
    /// A message with rules of its own.
    Message,
}

/// One row: `Message.field` (the proto's simple names) and its rule.
pub type FieldRule = (&'static str, Rule);

const fn list(min: usize, max: usize, each: Each) -> Rule {
    Rule::List { min, max, each }
}

const FREE: Rule = Rule::Text(Text::FREE);
const FREE_REQUIRED: Rule = Rule::Text(Text::FREE_REQUIRED);

/// Every string and repeated field of every request (see the module docs).
pub const REQUEST_FIELDS: &[FieldRule] = &[
    // psirt.common.v1
    ("Reporter.name", Rule::Text(Text::line(0, MAX_REPORTER_NAME_CHARS))),
    ("Reporter.email", Rule::Syntax { max: MAX_EMAIL_LEN }),
    ("Reporter.organization", Rule::Text(Text::line(0, MAX_ORGANIZATION_CHARS))),
    ("ProductVersionRange.product", Rule::Text(PRODUCT)),
    ("ProductVersionRange.range", Rule::VersRange),
    ("VersionList.versions", list(1, MAX_EXPLICIT_VERSIONS, Each::Text(VERSION))),
    // psirt.intake.v1
    ("SubmitReportRequest.request_id", Rule::RequestId),
    ("SubmitReportRequest.title", Rule::Text(TITLE)),
    ("SubmitReportRequest.description", Rule::Text(Text::block_bytes(1, super::MAX_DESCRIPTION_BYTES))),
    ("SubmitReportRequest.affected_products", list(0, MAX_AFFECTED_PRODUCTS, Each::Text(PRODUCT))),
    ("SubmitReportRequest.suggested_cvss_vector", Rule::Syntax { max: MAX_CVSS_V4_VECTOR_CHARS }),
    ("SubmitReportRequest.external_reference", Rule::Text(EXTERNAL_REFERENCE)),
    ("GetReportRequest.report_id", Rule::Id),
    ("ListReportsRequest.page_token", Rule::PageToken),
    ("AcknowledgeReportRequest.report_id", Rule::Id),
    ("AcknowledgeReportRequest.request_id", Rule::RequestId),
    ("AcknowledgeReportRequest.message", FREE),
    ("AddReporterMessageRequest.report_id", Rule::Id),
    ("AddReporterMessageRequest.request_id", Rule::RequestId),
    ("AddReporterMessageRequest.author", Rule::Text(Text::NAME)),
    ("AddReporterMessageRequest.body", FREE_REQUIRED),
    // psirt.triage.v1
    ("StartTriageRequest.case_id", Rule::Id),
    ("StartTriageRequest.request_id", Rule::RequestId),
    ("AcceptCaseRequest.case_id", Rule::Id),
    ("AcceptCaseRequest.request_id", Rule::RequestId),
    ("AcceptCaseRequest.note", FREE),
    ("AssessSeverityRequest.case_id", Rule::Id),
    ("AssessSeverityRequest.request_id", Rule::RequestId),
    ("AssessSeverityRequest.cvss_v3_vector", Rule::Syntax { max: MAX_CVSS_V3_VECTOR_CHARS }),
    ("AssessSeverityRequest.cvss_v4_vector", Rule::Syntax { max: MAX_CVSS_V4_VECTOR_CHARS }),
    ("AssessSeverityRequest.cwe_ids", list(0, MAX_CWE_IDS, Each::Syntax { max: 14 })),
    ("AssessSeverityRequest.rationale", FREE),
    ("AssignCaseRequest.case_id", Rule::Id),
    ("AssignCaseRequest.request_id", Rule::RequestId),
    ("AssignCaseRequest.assignee", Rule::Text(Text::NAME)),
    ("AssignCaseRequest.team", Rule::Text(TEAM)),
    ("AssignCveRequest.case_id", Rule::Id),
    ("AssignCveRequest.request_id", Rule::RequestId),
    ("AssignCveRequest.cve_id", Rule::Syntax { max: MAX_CVE_ID_CHARS }),
    ("AssignCveRequest.assigner", Rule::Text(CVE_ASSIGNER)),
    ("CaseFilter.statuses", list(0, MAX_FILTER_VALUES, Each::Value)),
    ("CaseFilter.severities", list(0, MAX_FILTER_VALUES, Each::Value)),
    ("CaseFilter.product", Rule::Text(PRODUCT_FILTER)),
    ("CaseFilter.assignee", Rule::Text(ASSIGNEE_FILTER)),
    ("CaseFilter.sla_states", list(0, MAX_FILTER_VALUES, Each::Value)),
    ("CloseCaseRequest.case_id", Rule::Id),
    ("CloseCaseRequest.request_id", Rule::RequestId),
    ("CloseCaseRequest.root_cause", FREE),
    ("CloseCaseRequest.lessons_learned", FREE),
    ("EscalateCaseRequest.case_id", Rule::Id),
    ("EscalateCaseRequest.request_id", Rule::RequestId),
    ("EscalateCaseRequest.reason", FREE_REQUIRED),
    ("GetCaseRequest.case_id", Rule::Id),
    ("GetCaseRequest.case_key", Rule::Syntax { max: crate::case_key::MAX_CASE_KEY_CHARS }),
    ("GetCaseTimelineRequest.case_id", Rule::Id),
    ("GetCaseTimelineRequest.page_token", Rule::PageToken),
    ("ListCasesRequest.page_token", Rule::PageToken),
    ("ListCasesRequest.order_by", Rule::Known),
    ("MarkDuplicateRequest.case_id", Rule::Id),
    ("MarkDuplicateRequest.request_id", Rule::RequestId),
    ("MarkDuplicateRequest.duplicate_of_case_id", Rule::Id),
    ("MarkDuplicateRequest.note", FREE),
    ("RejectCaseRequest.case_id", Rule::Id),
    ("RejectCaseRequest.request_id", Rule::RequestId),
    ("RejectCaseRequest.reason_text", FREE),
    ("ReopenCaseRequest.case_id", Rule::Id),
    ("ReopenCaseRequest.request_id", Rule::RequestId),
    ("ReopenCaseRequest.reason", FREE_REQUIRED),
    ("SetAffectedProductsRequest.case_id", Rule::Id),
    ("SetAffectedProductsRequest.request_id", Rule::RequestId),
    ("SetAffectedProductsRequest.products", list(1, MAX_AFFECTED_PRODUCTS, Each::Message)),
    ("SetEmbargoRequest.case_id", Rule::Id),
    ("SetEmbargoRequest.request_id", Rule::RequestId),
    ("SetEmbargoRequest.local_disclosure_time", Rule::Syntax { max: MAX_LOCAL_TIME_CHARS }),
    ("SetEmbargoRequest.time_zone", Rule::Syntax { max: MAX_TIME_ZONE_CHARS }),
    ("SetEmbargoRequest.agreed_with", list(0, MAX_EMBARGO_PARTIES, Each::Text(EMBARGO_PARTY))),
    ("SetEmbargoRequest.note", FREE),
    // psirt.remediation.v1
    ("GetPlanRequest.case_id", Rule::Id),
    ("PlanActionRequest.case_id", Rule::Id),
    ("PlanActionRequest.request_id", Rule::RequestId),
    ("PlanActionRequest.action_id", Rule::Id),
    ("PlanActionRequest.owner_team", Rule::Text(Text::NAME)),
    ("PlanActionRequest.target_release", Rule::Text(VERSION.with_min(0))),
    ("PlanActionRequest.due_date_override_reason", Rule::Text(REASON)),
    ("PlanActionRequest.description", FREE),
    ("RecordReleaseRequest.case_id", Rule::Id),
    ("RecordReleaseRequest.request_id", Rule::RequestId),
    ("RecordReleaseRequest.action_id", Rule::Id),
    ("RecordReleaseRequest.product", Rule::Text(PRODUCT)),
    ("RecordReleaseRequest.fixed_version", Rule::Text(VERSION)),
    ("RecordReleaseRequest.release_notes_url", Rule::Syntax { max: MAX_URL_CHARS }),
    ("SetProductStatusRequest.case_id", Rule::Id),
    ("SetProductStatusRequest.request_id", Rule::RequestId),
    ("SetProductStatusRequest.product", Rule::Text(PRODUCT)),
    ("SetProductStatusRequest.version", Rule::Text(VERSION_OR_RANGE)),
    ("SetProductStatusRequest.statement", FREE),
    ("VerifyRemediationRequest.case_id", Rule::Id),
    ("VerifyRemediationRequest.request_id", Rule::RequestId),
    ("VerifyRemediationRequest.action_id", Rule::Id),
    ("VerifyRemediationRequest.verification_note", FREE),
    ("ListOverdueRequest.owner_team", Rule::Text(TEAM)),
    ("ListOverdueRequest.product", Rule::Text(PRODUCT_FILTER)),
    ("ListOverdueRequest.page_token", Rule::PageToken),
    ("DraftAdvisoryRequest.case_id", Rule::Id),
    ("DraftAdvisoryRequest.request_id", Rule::RequestId),
    ("DraftAdvisoryRequest.tracking_id", Rule::Syntax { max: crate::advisory::MAX_TRACKING_ID_CHARS }),
    ("PublishAdvisoryRequest.case_id", Rule::Id),
    ("PublishAdvisoryRequest.request_id", Rule::RequestId),
    ("PublishAdvisoryRequest.formats", list(0, MAX_PUBLISH_FORMATS, Each::Value)),
    ("PublishAdvisoryRequest.embargo_override_reason", Rule::Text(REASON)),
    ("PublishAdvisoryRequest.change_summary", Rule::Text(REASON)),
    ("ExportAdvisoryRequest.case_id", Rule::Id),
    ("ListAdvisoriesRequest.page_token", Rule::PageToken),
    // psirt.notification.v1
    ("CreateSubscriptionRequest.request_id", Rule::RequestId),
    ("UpdateSubscriptionRequest.subscription_id", Rule::Id),
    ("UpdateSubscriptionRequest.request_id", Rule::RequestId),
    ("DeleteSubscriptionRequest.subscription_id", Rule::Id),
    ("DeleteSubscriptionRequest.request_id", Rule::RequestId),
    ("DeleteSubscriptionRequest.reason", Rule::Text(REASON)),
    ("ListSubscriptionsRequest.page_token", Rule::PageToken),
    ("ListDeliveriesRequest.case_id", Rule::Id),
    ("ListDeliveriesRequest.subscription_id", Rule::Id),
    ("ListDeliveriesRequest.page_token", Rule::PageToken),
    ("RedeliverDeliveryRequest.delivery_id", Rule::Id),
    ("RedeliverDeliveryRequest.request_id", Rule::RequestId),
    ("ListExternalTicketsRequest.case_id", Rule::Id),
    // psirt.admin.v1
    ("ListParkedEventsRequest.projection", Rule::Known),
    ("ListParkedEventsRequest.page_token", Rule::Syntax { max: 20 }),
    ("ReplayParkedEventsRequest.projection", Rule::Known),
    ("ReplayParkedEventsRequest.sequences", list(0, MAX_REPLAY_SEQUENCES, Each::Value)),
    ("RebuildReadModelRequest.read_model", Rule::Known),
];

/// Most formats one publication names (there are four).
pub const MAX_PUBLISH_FORMATS: usize = 4;

/// Most parked events one replay names (`psirt_projection::REPLAY_LIMIT`,
/// asserted equal where the admin service applies it).
pub const MAX_REPLAY_SEQUENCES: usize = 1000;

/// Longest local date-time text of an embargo (`YYYY-MM-DDTHH:MM:SS`).
pub const MAX_LOCAL_TIME_CHARS: usize = 19;

/// The rule of `Message.field`, if the table has one.
pub fn rule(field: &str) -> Option<Rule> {
    REQUEST_FIELDS.iter().find(|(name, _)| *name == field).map(|(_, rule)| *rule)
}

/// The text rule of `Message.field`; panics if the table's row is not a
/// text rule (a programming error a test of the caller finds).
pub fn text(field: &str) -> Text {
    match rule(field) {
        Some(Rule::Text(text)) => text,
        other => panic!("{field} has no text rule in REQUEST_FIELDS: {other:?}"),
    }
}

/// Request ids are the one rule everywhere: [`MAX_REQUEST_ID_CHARS`].
pub const REQUEST_ID_MAX: usize = MAX_REQUEST_ID_CHARS;
/// Page tokens: [`MAX_PAGE_TOKEN_CHARS`].
pub const PAGE_TOKEN_MAX: usize = MAX_PAGE_TOKEN_CHARS;
