//! The one input every advisory format is generated from: what the PSIRT knows about one
//! vulnerability at publication time. Plain serde structs, independent of the proto types, so
//! the remediation service (or a test) can fill it from whatever it has.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Everything needed to publish one advisory about one vulnerability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvisoryRecord {
    pub publisher: Publisher,
    /// Stable advisory id, e.g. `ACME-SA-2026-0007`; the CSAF tracking id.
    pub tracking_id: String,
    /// The OSV id; the tracking id when absent. The official OSV schema accepts only ids
    /// with a prefix registered with OSV (`CVE-`, `GHSA-`, ...), so a vendor without a
    /// registered prefix publishes under the CVE id (the tracking id becomes an alias).
    #[serde(default)]
    pub osv_id: Option<String>,
    pub title: String,
    /// Short summary (one paragraph).
    pub summary: String,
    /// Technical details of the vulnerability.
    pub details: String,
    /// Free-text workarounds that apply to all affected products, if any.
    #[serde(default)]
    pub workarounds: Option<String>,
    /// Legal disclaimer; [`DEFAULT_LEGAL_DISCLAIMER`] when absent.
    #[serde(default)]
    pub legal_disclaimer: Option<String>,
    #[serde(default)]
    pub acknowledgments: Vec<Acknowledgment>,
    #[serde(default)]
    pub references: Vec<Reference>,
    /// The internal case key; published only as a CSAF `ids` entry when there is no CVE.
    pub case_key: String,
    #[serde(default)]
    pub cve: Option<String>,
    /// The CVE Numbering Authority data a CVE record needs.
    #[serde(default)]
    pub cna: Option<CveNumberingAuthority>,
    #[serde(default)]
    pub cwe: Option<Cwe>,
    #[serde(default)]
    pub cvss_v3_1: Option<CvssScore>,
    #[serde(default)]
    pub cvss_v4_0: Option<CvssScore>,
    /// Status of each product version (or version range) towards the vulnerability.
    pub products: Vec<ProductEntry>,
    #[serde(default)]
    pub remediations: Vec<Remediation>,
    /// Fixed releases; each one implies a `fixed` entry for its version unless one is listed.
    #[serde(default)]
    pub releases: Vec<Release>,
    /// At least one revision; the last one (by date) is the document version.
    pub revision_history: Vec<Revision>,
    #[serde(with = "time::serde::rfc3339")]
    pub initial_release_date: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub current_release_date: OffsetDateTime,
    pub status: DocumentStatus,
    /// Document language (BCP 47); `en`.
    #[serde(default = "default_language")]
    pub language: String,
    /// Canonical URL of the CSAF document; derived from the publisher namespace and the
    /// provider directory layout when absent.
    #[serde(default)]
    pub canonical_url: Option<String>,
}

fn default_language() -> String {
    "en".to_owned()
}

/// Used when a record carries no legal disclaimer of its own.
pub const DEFAULT_LEGAL_DISCLAIMER: &str = "This advisory is provided \"as is\" without warranty of any kind. \
The publisher may update it as new information becomes available.";

/// The organisation publishing the advisory (a vendor PSIRT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publisher {
    pub name: String,
    /// The publisher's namespace URL, e.g. `https://psirt.acme.example`.
    pub namespace: String,
    pub category: PublisherCategory,
    /// How to reach the PSIRT (e-mail, web form).
    pub contact_details: String,
    #[serde(default)]
    pub issuing_authority: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublisherCategory {
    Vendor,
}

impl PublisherCategory {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Vendor => "vendor",
        }
    }
}

/// A person or organisation credited for the finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgment {
    pub name: String,
    #[serde(default)]
    pub organization: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    /// Without consent the researcher is credited as [`ANONYMOUS_CREDIT`], nothing else.
    pub consent: bool,
}

/// How a researcher who did not consent to be named is credited.
pub const ANONYMOUS_CREDIT: &str = "an anonymous researcher";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub url: String,
    /// Short description; the URL itself when absent.
    #[serde(default)]
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CveNumberingAuthority {
    /// The CNA's organisation UUID in CVE Services.
    pub org_id: Uuid,
    pub short_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cwe {
    /// `CWE-79`.
    pub id: String,
    /// The exact CWE name (CSAF mandatory test 6.1.11 compares it with the catalogue).
    pub name: String,
}

/// A CVSS vector with its base score and severity (v3.1 or v4.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvssScore {
    pub vector: String,
    pub base_score: f64,
    pub severity: Severity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
            Self::Critical => "CRITICAL",
        }
    }
}

/// One product version (or range) and its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductEntry {
    /// A product key (`acme-gateway`) or a package URL without version (`pkg:npm/acme-sdk`).
    pub product: String,
    /// A single version (`2.4.1`) or a vers range (`vers:semver/>=2.0.0|<2.4.1`).
    pub version: String,
    /// In JSON: `"status": "known_not_affected", "justification": ..., "impact_statement": ...`.
    #[serde(flatten)]
    pub status: ProductStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ProductStatus {
    KnownAffected,
    KnownNotAffected { justification: Justification, impact_statement: String },
    Fixed,
    UnderInvestigation,
}

/// VEX justifications; the labels are the same in CSAF 2.0 flags and OpenVEX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Justification {
    ComponentNotPresent,
    VulnerableCodeNotPresent,
    VulnerableCodeCannotBeControlledByAdversary,
    VulnerableCodeNotInExecutePath,
    InlineMitigationsAlreadyExist,
}

impl Justification {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ComponentNotPresent => "component_not_present",
            Self::VulnerableCodeNotPresent => "vulnerable_code_not_present",
            Self::VulnerableCodeCannotBeControlledByAdversary => {
                "vulnerable_code_cannot_be_controlled_by_adversary"
            }
            Self::VulnerableCodeNotInExecutePath => "vulnerable_code_not_in_execute_path",
            Self::InlineMitigationsAlreadyExist => "inline_mitigations_already_exist",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remediation {
    pub category: RemediationCategory,
    pub details: String,
    /// The product entries this remediation applies to.
    pub products: Vec<ProductRef>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub date: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemediationCategory {
    VendorFix,
    Workaround,
    Mitigation,
    NoFixPlanned,
    NoneAvailable,
}

impl RemediationCategory {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::VendorFix => "vendor_fix",
            Self::Workaround => "workaround",
            Self::Mitigation => "mitigation",
            Self::NoFixPlanned => "no_fix_planned",
            Self::NoneAvailable => "none_available",
        }
    }
}

/// Points at product entries: one version (or range) exactly as written in
/// [`ProductEntry::version`], or, without a version, every affected or under-investigation
/// entry of the product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductRef {
    pub product: String,
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub product: String,
    pub fixed_version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub date: OffsetDateTime,
    #[serde(default)]
    pub notes_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// `1`, `2`, ... or semantic versions; never mixed.
    pub version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub date: OffsetDateTime,
    pub summary: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    Draft,
    Interim,
    Final,
}

impl DocumentStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Interim => "interim",
            Self::Final => "final",
        }
    }
}
