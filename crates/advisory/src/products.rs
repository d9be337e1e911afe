//! The product catalogue shared by every format: the record's product entries (plus the
//! `fixed` entries that releases imply), sorted and numbered once so that every generator
//! names the same product version the same way (`CSAFPID-0001`, ...).

use std::collections::BTreeSet;

use crate::DocumentError;
use crate::record::{AdvisoryRecord, Justification, ProductRef, ProductStatus};

/// One product version or version range with its status.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub product: String,
    pub version: String,
    pub range: Option<VersRange>,
    pub status: ProductStatus,
    pub product_id: String,
}

impl Leaf {
    pub fn is_affected(&self) -> bool {
        matches!(self.status, ProductStatus::KnownAffected | ProductStatus::UnderInvestigation)
    }

    pub fn justification(&self) -> Option<(Justification, &str)> {
        match &self.status {
            ProductStatus::KnownNotAffected { justification, impact_statement } => {
                Some((*justification, impact_statement))
            }
            _ => None,
        }
    }

    /// The package URL of this version (`pkg:npm/x@1.2.3`), or of the package for a range.
    pub fn purl(&self) -> Option<String> {
        if !is_purl(&self.product) {
            return None;
        }
        if self.range.is_some() {
            return Some(self.product.clone());
        }
        Some(purl_with_version(&self.product, &self.version))
    }
}

pub(crate) fn is_purl(product: &str) -> bool {
    product.starts_with("pkg:")
}

/// The purl's type (`npm`) and name (`acme-sdk`, or `@scope/acme-sdk` style namespaces kept).
pub(crate) fn purl_parts(purl: &str) -> Option<(&str, String)> {
    let rest = purl.strip_prefix("pkg:")?;
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let rest = rest.split('@').next().unwrap_or(rest);
    let (ty, path) = rest.split_once('/')?;
    let name = path.replace("%40", "@");
    Some((ty, name))
}

fn purl_with_version(purl: &str, version: &str) -> String {
    let split = purl.find(['?', '#']).unwrap_or(purl.len());
    let (base, tail) = purl.split_at(split);
    if base.rsplit('/').next().is_some_and(|last| last.contains('@')) {
        return purl.to_owned();
    }
    let encoded: String = version
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' | '~' | '+' => c.to_string(),
            other => format!("%{:02X}", other as u32),
        })
        .collect();
    format!("{base}@{encoded}{tail}")
}

/// The display name of a product: the key itself, or a purl's name.
pub(crate) fn product_name(product: &str) -> String {
    match purl_parts(product) {
        Some((_, name)) => name,
        None => product.to_owned(),
    }
}

#[derive(Debug)]
pub(crate) struct Catalog {
    pub leaves: Vec<Leaf>,
}

impl Catalog {
    pub fn build(record: &AdvisoryRecord) -> Result<Self, DocumentError> {
        let mut leaves: Vec<Leaf> = Vec::new();
        let mut seen = BTreeSet::new();
        for entry in &record.products {
            if entry.product.trim().is_empty() || entry.version.trim().is_empty() {
                return Err(DocumentError::record("products", "product and version must not be empty"));
            }
            if !seen.insert((entry.product.clone(), entry.version.clone())) {
                return Err(DocumentError::record(
                    "products",
                    format!("{} {} is listed more than once", entry.product, entry.version),
                ));
            }
            let missing_impact = matches!(&entry.status,
                ProductStatus::KnownNotAffected { impact_statement, .. } if impact_statement.trim().is_empty());
            if missing_impact {
                return Err(DocumentError::record(
                    "products",
                    format!(
                        "{} {} is not affected without an impact statement",
                        entry.product, entry.version
                    ),
                ));
            }
            leaves.push(Leaf {
                product: entry.product.clone(),
                version: entry.version.clone(),
                range: VersRange::parse_if_range(&entry.version)?,
                status: entry.status.clone(),
                product_id: String::new(),
            });
        }
        for release in &record.releases {
            if seen.insert((release.product.clone(), release.fixed_version.clone())) {
                leaves.push(Leaf {
                    product: release.product.clone(),
                    version: release.fixed_version.clone(),
                    range: VersRange::parse_if_range(&release.fixed_version)?,
                    status: ProductStatus::Fixed,
                    product_id: String::new(),
                });
            }
        }
        if leaves.is_empty() {
            return Err(DocumentError::record("products", "at least one product entry is required"));
        }
        leaves.sort_by(|a, b| (&a.product, &a.version).cmp(&(&b.product, &b.version)));
        for (i, leaf) in leaves.iter_mut().enumerate() {
            leaf.product_id = format!("CSAFPID-{:04}", i + 1);
        }
        Ok(Self { leaves })
    }

    /// Product keys in sorted order, each once.
    pub fn products(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.leaves.iter().map(|l| l.product.as_str()).collect();
        out.dedup();
        out
    }

    pub fn leaves_of<'a>(&'a self, product: &str) -> impl Iterator<Item = &'a Leaf> + use<'a> {
        let product = product.to_owned();
        self.leaves.iter().filter(move |l| l.product == product)
    }

    /// Resolves references to leaves (sorted, each once); an unknown reference is an error.
    pub fn resolve(&self, refs: &[ProductRef], field: &str) -> Result<Vec<&Leaf>, DocumentError> {
        let mut out: Vec<&Leaf> = Vec::new();
        for r in refs {
            let matched: Vec<&Leaf> = match &r.version {
                Some(v) => self.leaves_of(&r.product).filter(|l| &l.version == v).collect(),
                None => self.leaves_of(&r.product).filter(|l| l.is_affected()).collect(),
            };
            if matched.is_empty() {
                return Err(DocumentError::record(
                    field,
                    format!(
                        "{} {} matches no affected or listed product entry",
                        r.product,
                        r.version.as_deref().unwrap_or("(any version)")
                    ),
                ));
            }
            out.extend(matched);
        }
        out.sort_by(|a, b| a.product_id.cmp(&b.product_id));
        out.dedup_by(|a, b| a.product_id == b.product_id);
        Ok(out)
    }
}

/// A version range in the vers notation (`vers:semver/>=2.0.0|<2.4.1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VersRange {
    pub scheme: String,
    pub spans: Vec<Span>,
}

/// One contiguous part of a vers range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Span {
    Exact(String),
    Between { lower: Option<Bound>, upper: Option<Bound> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bound {
    pub version: String,
    pub inclusive: bool,
}

impl VersRange {
    pub fn parse_if_range(version: &str) -> Result<Option<Self>, DocumentError> {
        if version.starts_with("vers:") { Self::parse(version).map(Some) } else { Ok(None) }
    }

    pub fn parse(text: &str) -> Result<Self, DocumentError> {
        let bad = |why: &str| DocumentError::record("products.version", format!("{text}: {why}"));
        let rest = text.strip_prefix("vers:").ok_or_else(|| bad("not a vers range"))?;
        let (scheme, constraints) = rest.split_once('/').ok_or_else(|| bad("missing versioning scheme"))?;
        if scheme.is_empty() || constraints.is_empty() {
            return Err(bad("empty scheme or constraints"));
        }
        let mut spans = Vec::new();
        if constraints.trim() == "*" {
            spans.push(Span::Between { lower: None, upper: None });
            return Ok(Self { scheme: scheme.to_ascii_lowercase(), spans });
        }
        let mut open: Option<Bound> = None;
        for raw in constraints.split('|') {
            let c = raw.trim();
            let (op, version) = [">=", "<=", "!=", ">", "<", "="]
                .iter()
                .find_map(|op| c.strip_prefix(op).map(|v| (*op, v.trim())))
                .unwrap_or(("=", c));
            if version.is_empty() {
                return Err(bad("empty version in constraint"));
            }
            let version = version.to_owned();
            match op {
                ">" => {
                    // CVE `version` and OSV `introduced` are inclusive; there is no honest
                    // translation of an exclusive lower bound.
                    return Err(bad(
                        "exclusive lower bounds (>) are not supported; use >= with the first affected version",
                    ));
                }
                ">=" => {
                    if open.is_some() {
                        return Err(bad("two lower bounds in a row"));
                    }
                    open = Some(Bound { version, inclusive: true });
                }
                "<=" | "<" => spans.push(Span::Between {
                    lower: open.take(),
                    upper: Some(Bound { version, inclusive: op == "<=" }),
                }),
                "=" => {
                    if open.is_some() {
                        return Err(bad("an exact version inside an open range"));
                    }
                    spans.push(Span::Exact(version));
                }
                _ => return Err(bad("the != comparator is not supported")),
            }
        }
        if let Some(lower) = open {
            spans.push(Span::Between { lower: Some(lower), upper: None });
        }
        Ok(Self { scheme: scheme.to_ascii_lowercase(), spans })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vers_ranges_split_into_spans() {
        let r = VersRange::parse("vers:semver/>=2.0.0|<2.4.1|3.0.0|>=4.0.0").unwrap();
        assert_eq!(r.scheme, "semver");
        assert_eq!(r.spans.len(), 3);
        assert_eq!(
            r.spans[0],
            Span::Between {
                lower: Some(Bound { version: "2.0.0".into(), inclusive: true }),
                upper: Some(Bound { version: "2.4.1".into(), inclusive: false }),
            }
        );
        assert_eq!(r.spans[1], Span::Exact("3.0.0".into()));
        assert!(VersRange::parse("vers:semver/!=1.0.0").is_err());
        assert!(VersRange::parse("vers:semver/>1.0.0").is_err());
        assert!(VersRange::parse("vers:semver").is_err());
    }

    #[test]
    fn purls_get_versions_before_qualifiers() {
        assert_eq!(purl_with_version("pkg:npm/acme-sdk", "1.2.3"), "pkg:npm/acme-sdk@1.2.3");
        assert_eq!(
            purl_with_version("pkg:deb/debian/curl?arch=amd64", "7.1"),
            "pkg:deb/debian/curl@7.1?arch=amd64"
        );
        assert_eq!(purl_parts("pkg:npm/%40acme/sdk@1.0"), Some(("npm", "@acme/sdk".to_owned())));
    }
}
