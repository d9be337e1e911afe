//! Input rules for what reporters and staff send in, checked all at once so a
//! caller learns every problem in one round trip (`google.rpc.BadRequest`
//! field violations at the gRPC edge).

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::cvss_vector::CvssVector;
use crate::report::SubmitReport;

pub mod fields;
mod text;

pub use self::text::{Lines, Text, Unit, multi_line_text, single_line_text};

/// A report title longer than this many characters (not bytes) is refused.
pub const MAX_TITLE_CHARS: usize = 300;
/// A report description over 64 KiB (bytes, as stored) is refused.
pub const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;
/// RFC 5321's limit on a forward path, the longest address that can be mailed.
pub const MAX_EMAIL_LEN: usize = 254;
/// RFC 5321's limit on the part before the `@`.
pub const MAX_EMAIL_LOCAL_PART_LEN: usize = 64;
pub const MAX_REPORTER_NAME_CHARS: usize = 200;
pub const MAX_ORGANIZATION_CHARS: usize = 200;
pub const MAX_AFFECTED_PRODUCTS: usize = 100;
pub const MAX_PRODUCT_NAME_CHARS: usize = 200;
/// Longest external reference (advisory id, ticket key, Message-ID): the
/// one a report is submitted with and the one a tracker answers with.
pub const MAX_EXTERNAL_REFERENCE_CHARS: usize = 300;
/// Longest client idempotency key; [`check_request_id`] is the whole rule.
pub const MAX_REQUEST_ID_CHARS: usize = 128;
/// Longest page token any list accepts (they are hex of a short keyset position).
pub const MAX_PAGE_TOKEN_CHARS: usize = 1024;
/// Bounds free text recorded on reports and cases (messages, reasons, root causes).
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Bounds short free text: an assignee, a message author, a team.
pub const MAX_NAME_CHARS: usize = 200;
/// A requested disclosure date may lie this far in the past: clients in
/// other time zones send "today" as a date at midnight.
pub const DISCLOSURE_DATE_TOLERANCE: Duration = Duration::days(1);

/// One problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldViolation {
    /// The path of the field: `title`, `reporter.email`, `affected_products[3]`.
    pub field: String,
    /// What is wrong, for a human.
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

impl std::fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// Renders violations on one line, for error messages.
pub(crate) fn join(violations: &[FieldViolation]) -> String {
    violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Every problem with a submitted report.
///
/// Blank optional strings count as absent (protobuf has no presence for
/// strings). Beyond [`MAX_AFFECTED_PRODUCTS`] only the count is reported,
/// so a hostile list cannot make the answer as large as the request.
pub fn validate_submission(report: &SubmitReport, now: OffsetDateTime) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    let mut violation = |field: String, description: String| {
        violations.push(FieldViolation { field, description });
    };

    let title = report.title.trim();
    if title.is_empty() {
        violation("title".into(), "title must not be empty".into());
    } else if title.chars().count() > MAX_TITLE_CHARS {
        violation("title".into(), format!("title must be at most {MAX_TITLE_CHARS} characters"));
    } else if let Err(problem) = single_line_text(title) {
        violation("title".into(), format!("title {problem}"));
    }

    if report.description.trim().is_empty() {
        violation("description".into(), "description must not be empty".into());
    } else if report.description.len() > MAX_DESCRIPTION_BYTES {
        violation("description".into(), format!("description must be at most {MAX_DESCRIPTION_BYTES} bytes"));
    } else if let Err(problem) = multi_line_text(&report.description) {
        violation("description".into(), format!("description {problem}"));
    }

    if let Some(email) = present(report.reporter.email.as_deref()) {
        if let Err(problem) = check_email(email) {
            violation("reporter.email".into(), format!("e-mail address {problem}"));
        }
    }
    if let Some(name) = present(report.reporter.name.as_deref()) {
        if name.chars().count() > MAX_REPORTER_NAME_CHARS {
            violation(
                "reporter.name".into(),
                format!("name must be at most {MAX_REPORTER_NAME_CHARS} characters"),
            );
        } else if let Err(problem) = single_line_text(name) {
            violation("reporter.name".into(), format!("name {problem}"));
        }
    }
    if let Some(organization) = present(report.reporter.organization.as_deref()) {
        if organization.chars().count() > MAX_ORGANIZATION_CHARS {
            violation(
                "reporter.organization".into(),
                format!("organization must be at most {MAX_ORGANIZATION_CHARS} characters"),
            );
        } else if let Err(problem) = single_line_text(organization) {
            violation("reporter.organization".into(), format!("organization {problem}"));
        }
    }

    if report.channel.is_none() {
        violation("channel".into(), "channel must be one of web, email, api, feed, internal".into());
    }

    if report.affected_products.len() > MAX_AFFECTED_PRODUCTS {
        violation("affected_products".into(), format!("at most {MAX_AFFECTED_PRODUCTS} affected products"));
    }
    for (index, product) in report.affected_products.iter().enumerate().take(MAX_AFFECTED_PRODUCTS) {
        let product = product.trim();
        if product.is_empty() {
            violation(format!("affected_products[{index}]"), "product name must not be empty".into());
        } else if product.chars().count() > MAX_PRODUCT_NAME_CHARS {
            violation(
                format!("affected_products[{index}]"),
                format!("product name must be at most {MAX_PRODUCT_NAME_CHARS} characters"),
            );
        } else if let Err(problem) = single_line_text(product) {
            violation(format!("affected_products[{index}]"), format!("product name {problem}"));
        }
    }

    if let Some(vector) = present(report.suggested_cvss_vector.as_deref()) {
        let max = fields::MAX_CVSS_V4_VECTOR_CHARS;
        if vector.chars().count() > max {
            violation(
                "suggested_cvss_vector".into(),
                format!("suggested_cvss_vector must be at most {max} characters"),
            );
        } else if let Err(problem) = vector.parse::<CvssVector>() {
            violation("suggested_cvss_vector".into(), format!("not a CVSS v3.x or v4.0 vector: {problem}"));
        }
    }

    if let Some(request_id) = present(report.request_id.as_deref()) {
        if let Err(problem) = check_request_id(request_id) {
            violation("request_id".into(), problem);
        }
    }

    if let Some(reference) = present(report.external_reference.as_deref()) {
        if reference.chars().count() > MAX_EXTERNAL_REFERENCE_CHARS {
            violation(
                "external_reference".into(),
                format!("external reference must be at most {MAX_EXTERNAL_REFERENCE_CHARS} characters"),
            );
        }
        if let Err(problem) = single_line_text(reference) {
            violation("external_reference".into(), format!("external reference {problem}"));
        }
    }

    if let Some(disclosure) = report.requested_disclosure_at {
        if disclosure < now - DISCLOSURE_DATE_TOLERANCE {
            violation(
                "requested_disclosure_at".into(),
                "requested disclosure date must not be in the past".into(),
            );
        }
    }

    violations
}

/// Free text ([`Text::FREE`] or [`Text::FREE_REQUIRED`]): at most
/// [`MAX_TEXT_BYTES`], [`multi_line_text`], and not blank when `required`.
pub(crate) fn check_text(violations: &mut Vec<FieldViolation>, field: &str, text: &str, required: bool) {
    let rule = if required { Text::FREE_REQUIRED } else { Text::FREE };
    rule.check(violations, field, text);
}

/// A person's or team's name ([`Text::NAME`]): not blank, at most
/// [`MAX_NAME_CHARS`], [`single_line_text`].
pub(crate) fn check_name(violations: &mut Vec<FieldViolation>, field: &str, name: &str) {
    Text::NAME.check(violations, field, name);
}

/// A client idempotency key: at most [`MAX_REQUEST_ID_CHARS`] characters of
/// `[A-Za-z0-9._:-]` (a UUID fits); empty is allowed (no idempotency). The
/// one rule every service applies (`psirt_kit::request::request_id`).
pub fn check_request_id(value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_REQUEST_ID_CHARS {
        return Err(format!("request id must be at most {MAX_REQUEST_ID_CHARS} characters"));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')) {
        return Err("request id must consist of A-Z a-z 0-9 . _ : -".into());
    }
    Ok(())
}

/// A string that carries something: blank counts as absent.
pub(crate) fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// A practical subset of RFC 5322 `addr-spec`: `local@domain` with a dotted
/// domain, no whitespace, no quoted local parts nor address literals
/// (nobody reports vulnerabilities from `"john doe"@[10.0.0.1]`).
///
/// The error says what is wrong, to complete "e-mail address ...".
pub fn check_email(email: &str) -> Result<(), &'static str> {
    if email.len() > MAX_EMAIL_LEN {
        return Err("must be at most 254 characters");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces");
    }
    let (local, domain) = match email.split_once('@') {
        Some((local, domain)) if !domain.contains('@') => (local, domain),
        _ => return Err("must contain exactly one @"),
    };
    if local.is_empty() {
        return Err("must have a name before the @");
    }
    if local.len() > MAX_EMAIL_LOCAL_PART_LEN {
        return Err("must have at most 64 characters before the @");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("must not have a dot at either end of, or two dots in a row in, the name");
    }
    // RFC 5322 `specials` are only allowed inside quoted strings, which are not accepted.
    if local.chars().any(|c| "()<>[]:;,\\\"".contains(c)) {
        return Err("must not contain ()<>[]:;,\\\" before the @");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("must have a domain with a dot");
    }
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if !labels.iter().all(label_ok) {
        return Err("must have a domain made of letters, digits and hyphens between dots");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for email in [
            "alice@example.com",
            "a@b.co",
            "first.last+psirt@sub.example.org",
            "o'brien@example.ie",
            "user_name-1@xn--bcher-kva.example",
            "研究者@例え.jp",
            "x!#$%&*=?^`{|}~@example.com",
        ] {
            assert_eq!(check_email(email), Ok(()), "{email}");
        }
    }

    #[test]
    fn refuses_malformed_addresses() {
        for email in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@example",
            "alice@@example.com",
            "alice@bob@example.com",
            "alice smith@example.com",
            "alice@exa mple.com",
            "alice\t@example.com",
            ".alice@example.com",
            "alice.@example.com",
            "al..ice@example.com",
            "alice@.example.com",
            "alice@example..com",
            "alice@example.com.",
            "alice@-example.com",
            "alice@example-.com",
            "alice@exa_mple.com",
            "\"alice\"@example.com",
            "alice@[10.0.0.1]",
            "a,b@example.com",
        ] {
            assert!(check_email(email).is_err(), "{email:?}");
        }
    }

    #[test]
    fn refuses_overlong_addresses() {
        let address = |last_label: usize| {
            format!("{}@{}.{}.{}", "l".repeat(64), "a".repeat(63), "b".repeat(63), "c".repeat(last_label))
        };
        assert_eq!(address(61).len(), MAX_EMAIL_LEN);
        assert_eq!(check_email(&address(61)), Ok(()));
        assert!(check_email(&address(62)).is_err());
        assert!(check_email(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(check_email(&format!("a@{}.com", "d".repeat(64))).is_err());
    }
}
