//! From the read model (case facts, plan, advisory) to the one
//! [`psirt_advisory::AdvisoryRecord`] every format is generated from, and to
//! the CSAF provider directory.

use std::path::PathBuf;

use psirt_advisory as doc;
use psirt_proto::{events, remediation as api};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::mapping::from_ts;
use crate::view::CaseFacts;

/// Who publishes, and where (`[advisory]` in the config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Publisher name in every document, e.g. `ACME PSIRT`.
    pub publisher_name: String,
    /// Publisher namespace URL (CSAF `document.publisher.namespace`).
    pub publisher_namespace: String,
    /// How to reach the PSIRT (CSAF `document.publisher.contact_details`).
    pub contact_details: String,
    /// Folder of the CSAF provider directory.
    pub csaf_directory: PathBuf,
    /// The PSIRT's ASCII-armored OpenPGP secret key file: every CSAF document
    /// in the directory gets a detached `.asc` signature, the public key is
    /// published and listed, and the directory claims `csaf_trusted_provider`.
    /// Unset: no signatures and the role `csaf_provider`.
    pub signing_key_file: Option<PathBuf>,
    /// File holding the signing key's passphrase (first line), if it has one.
    pub signing_key_passphrase_file: Option<PathBuf>,
    /// Public https base URL the directory is served under (its
    /// `/.well-known/csaf/` lives below it). CSAF requires https for the
    /// provider metadata's canonical URL and distributions.
    pub public_base_url: String,
    /// The CNA's organisation UUID in CVE Services (for CVE records);
    /// empty: CVE JSON exports are refused.
    pub cna_org_id: String,
    /// The CNA's short name in CVE Services.
    pub cna_short_name: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            publisher_name: "Example PSIRT".to_owned(),
            publisher_namespace: "https://psirt.example.com".to_owned(),
            contact_details: "psirt@example.com".to_owned(),
            csaf_directory: PathBuf::from(".psirt/csaf"),
            signing_key_file: None,
            signing_key_passphrase_file: None,
            public_base_url: "https://psirt.example.com".to_owned(),
            cna_org_id: String::new(),
            cna_short_name: String::new(),
        }
    }
}

impl Settings {
    /// Problems as (field, description).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.publisher_name.trim().is_empty() {
            out.push(("publisher_name", "must not be empty".to_owned()));
        }
        if !(self.publisher_namespace.starts_with("https://")
            || self.publisher_namespace.starts_with("http://"))
        {
            out.push(("publisher_namespace", "must be an http(s) URL".to_owned()));
        }
        if !self.public_base_url.starts_with("https://")
            || self.public_base_url.trim_end_matches('/').len() <= 8
        {
            out.push((
                "public_base_url",
                "must be an https URL (CSAF requires https for the provider directory)".to_owned(),
            ));
        }
        if self.contact_details.trim().is_empty() {
            out.push(("contact_details", "must not be empty".to_owned()));
        }
        if !self.cna_org_id.is_empty() && self.cna_org_id.parse::<uuid::Uuid>().is_err() {
            out.push(("cna_org_id", "must be a UUID or empty".to_owned()));
        }
        if self.cna_org_id.is_empty() != self.cna_short_name.is_empty() {
            out.push(("cna_short_name", "cna_org_id and cna_short_name go together".to_owned()));
        }
        match (&self.signing_key_file, &self.signing_key_passphrase_file) {
            (None, Some(_)) => {
                out.push(("signing_key_passphrase_file", "set without advisory.signing_key_file".to_owned()))
            }
            (Some(_), _) => {
                if let Err((field, problem)) = self.signing_key() {
                    out.push((field, problem));
                }
            }
            (None, None) => {}
        }
        out
    }

    /// The configured signing key, loaded and checked (parses, unlocks, can
    /// sign, not expired nor revoked); `None` when none is configured. The
    /// error names the config key at fault.
    pub fn signing_key(&self) -> Result<Option<doc::openpgp::SigningKey>, (&'static str, String)> {
        let Some(key_file) = &self.signing_key_file else {
            return Ok(None);
        };
        let passphrase = self.signing_key_passphrase_file.as_deref();
        doc::openpgp::SigningKey::load(key_file, passphrase, OffsetDateTime::now_utc()).map(Some).map_err(
            |e| {
                let field = match (&e, passphrase) {
                    (doc::openpgp::KeyError::Passphrase(..), _) => "signing_key_passphrase_file",
                    (
                        doc::openpgp::KeyError::Io { path, .. }
                        | doc::openpgp::KeyError::TooLarge { path, .. },
                        Some(p),
                    ) if path == p => "signing_key_passphrase_file",
                    _ => "signing_key_file",
                };
                (field, e.to_string())
            },
        )
    }
}

/// The formats of `ExportAdvisory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csaf,
    CsafVex,
    CveJson,
    Osv,
    OpenVex,
}

impl Format {
    pub const ALL: [Self; 5] = [Self::Csaf, Self::CsafVex, Self::CveJson, Self::Osv, Self::OpenVex];

    pub fn proto(self) -> api::ExportFormat {
        match self {
            Self::Csaf => api::ExportFormat::Csaf20,
            Self::CsafVex => api::ExportFormat::CsafVex,
            Self::CveJson => api::ExportFormat::CveJson5,
            Self::Osv => api::ExportFormat::Osv,
            Self::OpenVex => api::ExportFormat::Openvex,
        }
    }

    pub fn from_proto(value: i32) -> Option<Self> {
        Some(match api::ExportFormat::try_from(value).ok()? {
            api::ExportFormat::Unspecified => return None,
            api::ExportFormat::Csaf20 => Self::Csaf,
            api::ExportFormat::CsafVex => Self::CsafVex,
            api::ExportFormat::CveJson5 => Self::CveJson,
            api::ExportFormat::Osv => Self::Osv,
            api::ExportFormat::Openvex => Self::OpenVex,
        })
    }

    /// File name suffix, after the tracking id.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Csaf => ".json",
            Self::CsafVex => ".vex.json",
            Self::CveJson => ".cve.json",
            Self::Osv => ".osv.json",
            Self::OpenVex => ".openvex.json",
        }
    }
}

/// A rendered document.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub media_type: &'static str,
    pub file_name: String,
}

/// Names of the CWE entries the documents may carry (CWE 4.x catalogue,
/// exactly as published: CSAF mandatory test 6.1.11 compares them). A
/// weakness outside this list is left out of the documents rather than
/// published with a guessed name.
const CWE_NAMES: &[(&str, &str)] = &[
    ("CWE-20", "Improper Input Validation"),
    ("CWE-22", "Improper Limitation of a Pathname to a Restricted Directory ('Path Traversal')"),
    ("CWE-77", "Improper Neutralization of Special Elements used in a Command ('Command Injection')"),
    ("CWE-78", "Improper Neutralization of Special Elements used in an OS Command ('OS Command Injection')"),
    ("CWE-79", "Improper Neutralization of Input During Web Page Generation ('Cross-site Scripting')"),
    ("CWE-89", "Improper Neutralization of Special Elements used in an SQL Command ('SQL Injection')"),
    ("CWE-94", "Improper Control of Generation of Code ('Code Injection')"),
    ("CWE-119", "Improper Restriction of Operations within the Bounds of a Memory Buffer"),
    ("CWE-125", "Out-of-bounds Read"),
    ("CWE-190", "Integer Overflow or Wraparound"),
    ("CWE-200", "Exposure of Sensitive Information to an Unauthorized Actor"),
    ("CWE-269", "Improper Privilege Management"),
    ("CWE-287", "Improper Authentication"),
    ("CWE-306", "Missing Authentication for Critical Function"),
    ("CWE-352", "Cross-Site Request Forgery (CSRF)"),
    ("CWE-400", "Uncontrolled Resource Consumption"),
    ("CWE-416", "Use After Free"),
    ("CWE-434", "Unrestricted Upload of File with Dangerous Type"),
    ("CWE-476", "NULL Pointer Dereference"),
    ("CWE-502", "Deserialization of Untrusted Data"),
    ("CWE-787", "Out-of-bounds Write"),
    ("CWE-798", "Use of Hard-coded Credentials"),
    ("CWE-862", "Missing Authorization"),
    ("CWE-863", "Incorrect Authorization"),
    ("CWE-918", "Server-Side Request Forgery (SSRF)"),
];

fn cwe(facts: &CaseFacts) -> Option<doc::Cwe> {
    facts.cwe_ids.iter().find_map(|id| {
        CWE_NAMES
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(id))
            .map(|(id, name)| doc::Cwe { id: (*id).to_owned(), name: (*name).to_owned() })
    })
}

fn severity(rating: i32) -> doc::Severity {
    use psirt_proto::common::SeverityRating as R;
    match R::try_from(rating).unwrap_or_default() {
        R::Critical => doc::Severity::Critical,
        R::High => doc::Severity::High,
        R::Medium => doc::Severity::Medium,
        R::Low => doc::Severity::Low,
        R::None | R::Unspecified => doc::Severity::None,
    }
}

fn justification(value: i32) -> doc::Justification {
    use events::VexJustification as J;
    match J::try_from(value).unwrap_or_default() {
        J::ComponentNotPresent | J::Unspecified => doc::Justification::ComponentNotPresent,
        J::VulnerableCodeNotPresent => doc::Justification::VulnerableCodeNotPresent,
        J::VulnerableCodeNotInExecutePath => doc::Justification::VulnerableCodeNotInExecutePath,
        J::VulnerableCodeCannotBeControlledByAdversary => {
            doc::Justification::VulnerableCodeCannotBeControlledByAdversary
        }
        J::InlineMitigationsAlreadyExist => doc::Justification::InlineMitigationsAlreadyExist,
    }
}

fn time_or(ts: Option<&prost_types::Timestamp>, fallback: OffsetDateTime) -> OffsetDateTime {
    from_ts(ts).unwrap_or(fallback)
}

/// The record of an advisory: text from the advisory, scores, CWE and CVE
/// from the case, product status, remediations and releases from the plan.
/// Every date comes from an event, so the same events give the same record.
pub fn record(
    settings: &Settings,
    facts: &CaseFacts,
    plan: &api::Plan,
    advisory: &api::Advisory,
) -> Result<doc::AdvisoryRecord, doc::DocumentError> {
    let content = advisory.content.clone().unwrap_or_default();
    let epoch = OffsetDateTime::UNIX_EPOCH;
    let updated = time_or(advisory.updated_at.as_ref(), epoch);
    let mut revision_history: Vec<doc::Revision> = advisory
        .revisions
        .iter()
        .map(|r| doc::Revision {
            version: r.version.clone(),
            date: time_or(r.date.as_ref(), updated),
            summary: r.summary.clone(),
        })
        .collect();
    let published = !revision_history.is_empty();
    if !published {
        // A draft previews as version 0.1.0 of a draft document.
        revision_history.push(doc::Revision {
            version: "0.1.0".to_owned(),
            date: updated,
            summary: "Draft".to_owned(),
        });
    }
    let initial_release_date = revision_history.first().map_or(updated, |r| r.date);
    let current_release_date = revision_history.last().map_or(updated, |r| r.date);

    let mut products = Vec::new();
    for s in &plan.statuses {
        let status = match events::ProductStatus::try_from(s.status).unwrap_or_default() {
            events::ProductStatus::KnownAffected => doc::ProductStatus::KnownAffected,
            events::ProductStatus::KnownNotAffected => doc::ProductStatus::KnownNotAffected {
                justification: justification(s.justification),
                impact_statement: if s.statement.trim().is_empty() {
                    "The product is not affected.".to_owned()
                } else {
                    s.statement.clone()
                },
            },
            events::ProductStatus::Fixed => doc::ProductStatus::Fixed,
            events::ProductStatus::UnderInvestigation | events::ProductStatus::Unspecified => {
                doc::ProductStatus::UnderInvestigation
            }
        };
        products.push(doc::ProductEntry { product: s.product.clone(), version: s.version.clone(), status });
    }
    // Affected products of the plan without an explicit status are affected
    // in the versions the case names (a published advisory has none: the
    // publication requires a status for every product).
    for p in &plan.affected_products {
        if plan.statuses.iter().any(|s| s.product.eq_ignore_ascii_case(&p.product)) {
            continue;
        }
        let versions = crate::view::ProductVersions::from_proto(p);
        let listed: Vec<String> =
            if versions.range.is_empty() { versions.versions.clone() } else { vec![versions.range.clone()] };
        for version in listed {
            products.push(doc::ProductEntry {
                product: p.product.clone(),
                version,
                status: doc::ProductStatus::KnownAffected,
            });
        }
    }

    let releases: Vec<doc::Release> = plan
        .releases
        .iter()
        .map(|r| doc::Release {
            product: r.product.clone(),
            fixed_version: r.fixed_version.clone(),
            date: time_or(r.released_at.as_ref(), updated),
            notes_url: (!r.release_notes_url.is_empty()).then(|| r.release_notes_url.clone()),
        })
        .collect();

    let mut remediations = Vec::new();
    for a in &plan.actions {
        let Some(target) = &a.target else { continue };
        let category = match events::RemediationAction::try_from(a.action).unwrap_or_default() {
            events::RemediationAction::Fix => {
                if plan.releases.iter().any(|r| r.product.eq_ignore_ascii_case(&target.product)) {
                    doc::RemediationCategory::VendorFix
                } else {
                    // A fix not released yet is no remediation customers can apply.
                    continue;
                }
            }
            events::RemediationAction::Workaround => doc::RemediationCategory::Workaround,
            events::RemediationAction::Mitigation => doc::RemediationCategory::Mitigation,
            events::RemediationAction::Suspend => doc::RemediationCategory::NoneAvailable,
            events::RemediationAction::None | events::RemediationAction::Unspecified => {
                doc::RemediationCategory::NoFixPlanned
            }
        };
        // Only products the document lists as affected can carry a remediation.
        let affected = products.iter().any(|p| {
            p.product.eq_ignore_ascii_case(&target.product)
                && matches!(
                    p.status,
                    doc::ProductStatus::KnownAffected | doc::ProductStatus::UnderInvestigation
                )
        });
        if !affected {
            continue;
        }
        let release = plan.releases.iter().find(|r| r.product.eq_ignore_ascii_case(&target.product));
        let details = if a.description.trim().is_empty() {
            match release {
                Some(r) => format!("Update {} to version {} or later.", r.product, r.fixed_version),
                None => format!("{} for {}", category_name(category), target.product),
            }
        } else {
            a.description.clone()
        };
        remediations.push(doc::Remediation {
            category,
            details,
            products: vec![doc::ProductRef { product: target.product.clone(), version: None }],
            url: release.and_then(|r| (!r.release_notes_url.is_empty()).then(|| r.release_notes_url.clone())),
            date: release.and_then(|r| from_ts(r.released_at.as_ref())),
        });
    }

    let cna = match (settings.cna_org_id.parse::<uuid::Uuid>(), settings.cna_short_name.is_empty()) {
        (Ok(org_id), false) => {
            Some(doc::CveNumberingAuthority { org_id, short_name: settings.cna_short_name.clone() })
        }
        _ => None,
    };
    let workarounds = (!content.workarounds.trim().is_empty()).then(|| content.workarounds.clone());
    Ok(doc::AdvisoryRecord {
        publisher: publisher(settings),
        tracking_id: advisory.tracking_id.clone(),
        // The OSV schema takes only ids with a prefix registered with OSV:
        // the advisory is published there under its CVE id.
        osv_id: facts.cve_ids.first().cloned(),
        title: content.title.clone(),
        summary: content.summary.clone(),
        details: if content.details.trim().is_empty() {
            content.summary.clone()
        } else {
            content.details.clone()
        },
        workarounds,
        legal_disclaimer: None,
        acknowledgments: content
            .acknowledgments
            .iter()
            .map(|a| doc::Acknowledgment {
                name: a.name.clone(),
                organization: (!a.organization.is_empty()).then(|| a.organization.clone()),
                url: (!a.url.is_empty()).then(|| a.url.clone()),
                consent: a.consent,
            })
            .collect(),
        references: content
            .references
            .iter()
            .map(|u| doc::Reference { url: u.clone(), summary: None })
            .collect(),
        case_key: if facts.case_key.is_empty() { plan.case_key.clone() } else { facts.case_key.clone() },
        cve: facts.cve_ids.first().cloned(),
        cna,
        cwe: cwe(facts),
        cvss_v3_1: facts.cvss_v31.as_ref().filter(|s| s.vector.starts_with("CVSS:3.1/")).map(|s| {
            doc::CvssScore { vector: s.vector.clone(), base_score: s.score, severity: severity(s.rating) }
        }),
        cvss_v4_0: facts.cvss_v40.as_ref().map(|s| doc::CvssScore {
            vector: s.vector.clone(),
            base_score: s.score,
            severity: severity(s.rating),
        }),
        products,
        remediations,
        releases,
        revision_history,
        initial_release_date,
        current_release_date,
        status: if published { doc::DocumentStatus::Final } else { doc::DocumentStatus::Draft },
        language: "en".to_owned(),
        canonical_url: Some(format!(
            "{}/.well-known/csaf/{}",
            settings.public_base_url.trim_end_matches('/'),
            doc::provider::document_path(&advisory.tracking_id, initial_release_date.year())
        )),
    })
}

fn category_name(c: doc::RemediationCategory) -> &'static str {
    match c {
        doc::RemediationCategory::VendorFix => "Vendor fix",
        doc::RemediationCategory::Workaround => "Workaround",
        doc::RemediationCategory::Mitigation => "Mitigation",
        doc::RemediationCategory::NoFixPlanned => "No fix planned",
        doc::RemediationCategory::NoneAvailable => "No remediation available",
    }
}

/// Renders one format, validated against its official schema.
pub fn render(
    settings: &Settings,
    format: Format,
    facts: &CaseFacts,
    plan: &api::Plan,
    advisory: &api::Advisory,
) -> Result<Rendered, doc::DocumentError> {
    let record = record(settings, facts, plan, advisory)?;
    let document = match format {
        Format::Csaf => doc::csaf(&record, doc::CsafCategory::SecurityAdvisory)?,
        Format::CsafVex => doc::csaf(&record, doc::CsafCategory::Vex)?,
        Format::CveJson => doc::cve_record(&record)?,
        Format::Osv => doc::osv(&record)?,
        Format::OpenVex => doc::openvex(&record)?,
    };
    Ok(Rendered {
        bytes: document.bytes,
        media_type: document.media_type,
        file_name: format!("{}{}", file_stem(&advisory.tracking_id), format.suffix()),
    })
}

fn publisher(settings: &Settings) -> doc::Publisher {
    doc::Publisher {
        name: settings.publisher_name.clone(),
        namespace: settings.publisher_namespace.clone(),
        category: doc::PublisherCategory::Vendor,
        contact_details: settings.contact_details.clone(),
        issuing_authority: None,
    }
}

/// The file name stem of a tracking id (CSAF 2.0 section 5.1).
pub fn file_stem(tracking_id: &str) -> String {
    let name = doc::provider::file_name(tracking_id);
    name.trim_end_matches(".json").to_owned()
}

/// Writes one published CSAF document into the provider directory, with
/// its hashes, its signature (with a signing key), `index.txt`,
/// `changes.csv` and `provider-metadata.json`.
pub fn write_to_directory(
    settings: &Settings,
    advisory: &api::Advisory,
    document: &[u8],
) -> anyhow::Result<()> {
    let first = advisory.revisions.first().and_then(|r| from_ts(r.date.as_ref()));
    let current = advisory.revisions.last().and_then(|r| from_ts(r.date.as_ref()));
    let (Some(first), Some(current)) = (first, current) else {
        anyhow::bail!("advisory {} has no publication date", advisory.tracking_id);
    };
    directory(settings)?.publish(&doc::provider::PublishedCsaf {
        tracking_id: &advisory.tracking_id,
        initial_release_date: first,
        current_release_date: current,
        bytes: document,
    })?;
    Ok(())
}

/// The provider directory as configured. The key was checked at start
/// (config validation); it is loaded again when its file changes, so a
/// rotated key file is picked up by the next publication, and an expired key
/// fails the write with the reason.
fn directory(settings: &Settings) -> anyhow::Result<doc::provider::ProviderDirectory> {
    let signing_key = cached_signing_key(settings)?;
    Ok(doc::provider::ProviderDirectory::new(
        settings.csaf_directory.clone(),
        doc::provider::ProviderConfig {
            base_url: settings.public_base_url.clone(),
            publisher: publisher(settings),
            sha512: true,
            list_on_aggregators: true,
            mirror_on_aggregators: true,
            signing_key,
        },
    ))
}

type KeyStamp = (PathBuf, Option<PathBuf>, Option<std::time::SystemTime>, Option<std::time::SystemTime>);

/// The signing key, unlocked once per key (and passphrase) file version:
/// unlocking runs the passphrase's key derivation, which is slow on purpose.
fn cached_signing_key(settings: &Settings) -> anyhow::Result<Option<doc::openpgp::SigningKey>> {
    static CACHE: std::sync::Mutex<Option<(KeyStamp, doc::openpgp::SigningKey)>> =
        std::sync::Mutex::new(None);
    let Some(key_file) = &settings.signing_key_file else {
        return Ok(None);
    };
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let passphrase = settings.signing_key_passphrase_file.clone();
    let stamp =
        (key_file.clone(), passphrase.clone(), modified(key_file), passphrase.as_deref().and_then(modified));
    let mut cache = CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((cached, key)) = cache.as_ref()
        && *cached == stamp
        && key.expires_at().is_none_or(|t| t > OffsetDateTime::now_utc())
    {
        return Ok(Some(key.clone()));
    }
    let key =
        settings.signing_key().map_err(|(field, problem)| anyhow::anyhow!("advisory.{field}: {problem}"))?;
    *cache = key.clone().map(|k| (stamp, k));
    Ok(key)
}
