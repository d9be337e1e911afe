//! The impact scope triage records: which products, and which of their
//! versions, a case hits. Remediation plans one action per entry, and VEX
//! publishes a status per product and version.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::validation::{FieldViolation, MAX_AFFECTED_PRODUCTS, MAX_PRODUCT_NAME_CHARS, single_line_text};
use crate::vers;

/// Longest version range expression (`vers:semver/>=2.0.0|<2.4.1`): the one
/// limit of [`vers::MAX_VERS_CHARS`].
pub const MAX_VERSION_RANGE_CHARS: usize = vers::MAX_VERS_CHARS;
/// Most versions one entry may list explicitly.
pub const MAX_EXPLICIT_VERSIONS: usize = 100;
/// Longest single version string.
pub const MAX_VERSION_CHARS: usize = 100;

/// One affected product and the versions of it that are affected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AffectedProduct {
    pub product: String,
    pub versions: VersionSpec,
}

/// Which versions of a product: a range in the vers notation (kept as text,
/// checked by [`vers::VersRange::parse`] on every command that sets one), or a list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionSpec {
    Range(String),
    Explicit(Vec<String>),
}

/// Checks a `SetAffectedProducts` command and returns the entries trimmed.
///
/// Beyond [`MAX_AFFECTED_PRODUCTS`] entries (or [`MAX_EXPLICIT_VERSIONS`]
/// versions) only the count is reported, so a hostile list cannot make the
/// answer as large as the request. Product names are compared without case:
/// `Router OS` and `router os` are one product entered twice.
/// The rules of an affected-product list that need no case: count, names,
/// duplicates, versions and ranges. A handler runs it before it reads
/// anything; `SetAffectedProducts` runs it again on the case.
pub fn check_affected_products(entries: &[AffectedProduct]) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    check(&mut violations, entries);
    violations
}

pub(crate) fn check(
    violations: &mut Vec<FieldViolation>,
    entries: &[AffectedProduct],
) -> Vec<AffectedProduct> {
    if entries.is_empty() {
        violations.push(FieldViolation::new("entries", "at least one affected product must be given"));
    } else if entries.len() > MAX_AFFECTED_PRODUCTS {
        violations.push(FieldViolation::new(
            "entries",
            format!("at most {MAX_AFFECTED_PRODUCTS} affected products"),
        ));
        return Vec::new();
    }
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    let mut checked = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let product = entry.product.trim();
        let field = format!("entries[{index}].product");
        if product.is_empty() {
            violations.push(FieldViolation::new(field, "product name must not be empty"));
        } else if product.chars().count() > MAX_PRODUCT_NAME_CHARS {
            violations.push(FieldViolation::new(
                field,
                format!("product name must be at most {MAX_PRODUCT_NAME_CHARS} characters"),
            ));
        } else if let Err(problem) = single_line_text(product) {
            violations.push(FieldViolation::new(field, format!("product name {problem}")));
        } else if let Some(first) = first_seen.get(&product.to_lowercase()) {
            violations.push(FieldViolation::new(
                field,
                format!("product {product:?} is already listed at entries[{first}]"),
            ));
        } else {
            first_seen.insert(product.to_lowercase(), index);
        }
        let versions = check_versions(violations, index, &entry.versions);
        checked.push(AffectedProduct { product: product.to_owned(), versions });
    }
    checked
}

fn check_versions(violations: &mut Vec<FieldViolation>, index: usize, versions: &VersionSpec) -> VersionSpec {
    let field = format!("entries[{index}].versions");
    match versions {
        VersionSpec::Range(range) => {
            let range = range.trim();
            vers::check_range(violations, &field, range);
            VersionSpec::Range(range.to_owned())
        }
        VersionSpec::Explicit(list) => {
            if list.is_empty() {
                violations.push(FieldViolation::new(field.as_str(), "at least one version must be listed"));
            } else if list.len() > MAX_EXPLICIT_VERSIONS {
                violations
                    .push(FieldViolation::new(field, format!("at most {MAX_EXPLICIT_VERSIONS} versions")));
                return VersionSpec::Explicit(Vec::new());
            }
            let mut trimmed: Vec<String> = Vec::with_capacity(list.len());
            for (position, version) in list.iter().enumerate() {
                let version = version.trim();
                let field = format!("{field}[{position}]");
                if version.is_empty() {
                    violations.push(FieldViolation::new(field, "version must not be empty"));
                } else if version.chars().count() > MAX_VERSION_CHARS {
                    violations.push(FieldViolation::new(
                        field,
                        format!("version must be at most {MAX_VERSION_CHARS} characters"),
                    ));
                } else if let Err(problem) = single_line_text(version) {
                    violations.push(FieldViolation::new(field, format!("version {problem}")));
                } else if vers::VersRange::parse_if_range(version).is_err() {
                    vers::check_version_or_range(violations, &field, version);
                } else if let Some(first) = trimmed.iter().position(|v| v == version) {
                    violations.push(FieldViolation::new(
                        field,
                        format!("version {version:?} is already listed at [{first}]"),
                    ));
                }
                trimmed.push(version.to_owned());
            }
            VersionSpec::Explicit(trimmed)
        }
    }
}
