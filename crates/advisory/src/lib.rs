//! Advisory documents out of one [`AdvisoryRecord`]: CSAF 2.0 (security advisory or VEX),
//! CVE JSON 5.1 record, OSV and OpenVEX 0.2.0, plus a CSAF trusted provider directory writer.
//! Every document is validated against the official JSON schema bundled in `schemas/` (and,
//! for CSAF, a subset of the mandatory tests) before it is returned; the same record always
//! gives the same bytes.
//!
//! CSAF 2.0 has no `cvss_v4` score key: a CVSS v4.0 vector is published as a vulnerability
//! note (category `other`, title `CVSS v4.0`), which keeps the document schema-valid.

mod csaf;
mod cve;
pub mod openpgp;
mod openvex;
mod osv;
mod products;
pub mod provider;
mod record;
mod validate;

use std::fmt;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use record::*;
pub use validate::validate;

/// The document formats this crate produces and validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// CSAF 2.0 (`csaf_security_advisory` or `csaf_vex`).
    Csaf,
    /// CVE JSON record format 5.1.
    CveRecord,
    /// OSV schema 1.6.
    Osv,
    /// OpenVEX 0.2.0.
    OpenVex,
    /// CSAF 2.0 `provider-metadata.json`.
    CsafProviderMetadata,
}

impl Format {
    pub fn media_type(self) -> &'static str {
        // None of these formats has a registered media type of its own; the CSAF 2.0
        // distribution requirements and the CVE/OSV/OpenVEX tooling all use plain JSON.
        "application/json"
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Csaf => "csaf 2.0",
            Self::CveRecord => "cve json 5.1",
            Self::Osv => "osv",
            Self::OpenVex => "openvex 0.2.0",
            Self::CsafProviderMetadata => "csaf provider metadata",
        })
    }
}

/// Which CSAF 2.0 profile to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsafCategory {
    SecurityAdvisory,
    Vex,
}

impl CsafCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecurityAdvisory => "csaf_security_advisory",
            Self::Vex => "csaf_vex",
        }
    }
}

/// A generated, validated document: pretty-printed JSON bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub format: Format,
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{format} document is invalid: {}", messages.join("; "))]
    Invalid { format: Format, messages: Vec<String> },
    #[error("a cve record needs a cve id")]
    MissingCveId,
    #[error("a cve record needs the cna org id and short name")]
    MissingCna,
    #[error("invalid advisory record: {field}: {reason}")]
    InvalidRecord { field: String, reason: String },
    #[error("failed to encode the {format} document as json")]
    Encode {
        format: Format,
        #[source]
        source: serde_json::Error,
    },
}

impl DocumentError {
    pub(crate) fn record(field: &str, reason: impl Into<String>) -> Self {
        Self::InvalidRecord { field: field.to_owned(), reason: reason.into() }
    }
}

/// CSAF 2.0 advisory or VEX document.
pub fn csaf(record: &AdvisoryRecord, category: CsafCategory) -> Result<Document, DocumentError> {
    finish(Format::Csaf, csaf::generate(record, category)?)
}

/// CVE JSON 5.1 record; needs [`AdvisoryRecord::cve`] and [`AdvisoryRecord::cna`].
pub fn cve_record(record: &AdvisoryRecord) -> Result<Document, DocumentError> {
    finish(Format::CveRecord, cve::generate(record)?)
}

/// OSV 1.6 entry; its id is [`AdvisoryRecord::osv_id`], else the tracking id.
pub fn osv(record: &AdvisoryRecord) -> Result<Document, DocumentError> {
    finish(Format::Osv, osv::generate(record)?)
}

/// OpenVEX 0.2.0 document.
pub fn openvex(record: &AdvisoryRecord) -> Result<Document, DocumentError> {
    finish(Format::OpenVex, openvex::generate(record)?)
}

fn finish(format: Format, value: Value) -> Result<Document, DocumentError> {
    validate(format, &value)?;
    let mut bytes =
        serde_json::to_vec_pretty(&value).map_err(|source| DocumentError::Encode { format, source })?;
    bytes.push(b'\n');
    Ok(Document { format, media_type: format.media_type(), bytes })
}

/// The year of a date in UTC: the provider directory's `<year>/` folder.
pub(crate) fn utc_year(t: OffsetDateTime) -> i32 {
    t.to_offset(time::UtcOffset::UTC).year()
}

/// RFC 3339 in UTC (`2026-03-02T10:00:00Z`), the form every schema here accepts.
pub(crate) fn timestamp(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// What every generator needs from a record, checked once: the product catalogue, the sorted
/// revision history, remediations that point at known products, consistent CVSS scores.
pub(crate) fn prepare(record: &AdvisoryRecord) -> Result<(products::Catalog, Vec<&Revision>), DocumentError> {
    let catalog = products::Catalog::build(record)?;
    let revs = revisions(record)?;
    for r in &record.remediations {
        catalog.resolve(&r.products, "remediations.products")?;
    }
    check_cvss(record)?;
    Ok((catalog, revs))
}

/// A published score must be the one its vector computes to (CSAF mandatory test 6.1.9 and
/// what every consumer recomputes).
fn check_cvss(record: &AdvisoryRecord) -> Result<(), DocumentError> {
    fn severity(s: cvss::Severity) -> Severity {
        match s {
            cvss::Severity::None => Severity::None,
            cvss::Severity::Low => Severity::Low,
            cvss::Severity::Medium => Severity::Medium,
            cvss::Severity::High => Severity::High,
            cvss::Severity::Critical => Severity::Critical,
        }
    }
    let mismatch = |field: &str, given: &CvssScore, score: f64, sev: Severity| {
        if (given.base_score - score).abs() > 0.05 || given.severity != sev {
            Err(DocumentError::record(
                field,
                format!(
                    "{} computes to {score:.1} {}, not {:.1} {}",
                    given.vector,
                    sev.as_str(),
                    given.base_score,
                    given.severity.as_str()
                ),
            ))
        } else {
            Ok(())
        }
    };
    if let Some(v3) = &record.cvss_v3_1 {
        if !v3.vector.starts_with("CVSS:3.1/") {
            return Err(DocumentError::record("cvss_v3_1.vector", "not a CVSS:3.1 vector"));
        }
        // An unparsable vector is left to the schemas, which say precisely what is wrong.
        if let Ok(vector) = v3.vector.parse::<cvss::v3::Vector>() {
            let base = vector.base_score();
            mismatch("cvss_v3_1", v3, base.value(), severity(base.severity()))?;
        }
    }
    if let Some(v4) = &record.cvss_v4_0 {
        match v4.vector.parse::<cvss::v4::Vector>() {
            Ok(vector) => {
                let score = vector.score();
                let sev = severity(vector.score().severity());
                mismatch("cvss_v4_0", v4, score.value(), sev)?;
            }
            Err(e) => return Err(DocumentError::record("cvss_v4_0.vector", e.to_string())),
        }
    }
    Ok(())
}

/// The revision history sorted by date (ties keep the record's order), checked for what
/// every format relies on: not empty, no duplicate numbers.
pub(crate) fn revisions(record: &AdvisoryRecord) -> Result<Vec<&Revision>, DocumentError> {
    let mut revs: Vec<&Revision> = record.revision_history.iter().collect();
    if revs.is_empty() {
        return Err(DocumentError::record("revision_history", "at least one revision is required"));
    }
    revs.sort_by_key(|r| r.date);
    let mut numbers: Vec<&str> = revs.iter().map(|r| r.version.as_str()).collect();
    numbers.sort_unstable();
    if numbers.windows(2).any(|w| w[0] == w[1]) {
        return Err(DocumentError::record("revision_history", "a version number is used twice"));
    }
    Ok(revs)
}

/// The text a researcher is credited with.
pub(crate) fn credit_name(ack: &Acknowledgment) -> &str {
    if ack.consent { &ack.name } else { ANONYMOUS_CREDIT }
}

/// The CSAF document's canonical URL.
pub(crate) fn canonical_url(record: &AdvisoryRecord) -> String {
    match &record.canonical_url {
        Some(url) => url.clone(),
        None => format!(
            "{}/.well-known/csaf/{}",
            record.publisher.namespace.trim_end_matches('/'),
            provider::document_path(&record.tracking_id, utc_year(record.initial_release_date))
        ),
    }
}
