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
    let (ty, path) = rest.split_once('/')?;
    if ty.contains('@') {
        return None;
    }
    // The version follows an `@` in the last segment (the name): an `@` of a
    // namespace (`@scope`, which the spec spells `%40scope`) is not one.
    let path = match path.rsplit_once('/') {
        Some((namespace, name)) => format!("{namespace}/{}", name.split('@').next().unwrap_or(name)),
        None => path.split('@').next().unwrap_or(path).to_owned(),
    };
    Some((ty, path.replace("%40", "@")))
}

fn purl_with_version(purl: &str, version: &str) -> String {
    let split = purl.find(['?', '#']).unwrap_or(purl.len());
    let (base, tail) = purl.split_at(split);
    if base.rsplit('/').next().is_some_and(|last| last.contains('@')) {
        return purl.to_owned();
    }
    // Percent-encoding encodes the UTF-8 bytes of a character, not its code point.
    let encoded: String = version
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' | b'+' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
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
                range: range_of(&entry.version)?,
                status: entry.status.clone(),
                product_id: String::new(),
            });
        }
        for release in &record.releases {
            if seen.insert((release.product.clone(), release.fixed_version.clone())) {
                leaves.push(Leaf {
                    product: release.product.clone(),
                    version: release.fixed_version.clone(),
                    range: range_of(&release.fixed_version)?,
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

/// Version ranges are read with the domain's one vers parser, the one triage
/// and remediation check commands with: what they accepted, the exports can say.
pub(crate) use psirt_domain::vers::{Span, VersRange};

/// A range if `version` is written as one, as a document error if it does not parse.
fn range_of(version: &str) -> Result<Option<VersRange>, DocumentError> {
    VersRange::parse_if_range(version).map_err(|e| DocumentError::record("products.version", e.to_string()))
}

#[cfg(test)]
mod tests {
    use psirt_domain::vers::Bound;

    use super::*;

    #[test]
    fn purls_get_versions_before_qualifiers() {
        assert_eq!(purl_with_version("pkg:npm/acme-sdk", "1.2.3"), "pkg:npm/acme-sdk@1.2.3");
        assert_eq!(
            purl_with_version("pkg:deb/debian/curl?arch=amd64", "7.1"),
            "pkg:deb/debian/curl@7.1?arch=amd64"
        );
        assert_eq!(purl_parts("pkg:npm/%40acme/sdk@1.0"), Some(("npm", "@acme/sdk".to_owned())));
        assert_eq!(purl_parts("pkg:npm/@acme/sdk@1.0"), Some(("npm", "@acme/sdk".to_owned())));
        assert_eq!(purl_with_version("pkg:npm/sdk", "1.0-ä"), "pkg:npm/sdk@1.0-%C3%A4");
    }

    /// Properties of the vers and purl parsers (products and versions come
    /// from advisory records, which staff and imports write).
    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// The text of spans as vers constraints, with blanks around them.
        fn render(scheme: &str, spans: &[Span], blank: &str) -> String {
            let mut constraints = Vec::new();
            for span in spans {
                match span {
                    Span::Exact(v) => constraints.push(format!("{blank}{v}{blank}")),
                    Span::Between { lower, upper } => {
                        if let Some(l) = lower {
                            constraints.push(format!("{blank}>={blank}{}", l.version));
                        }
                        if let Some(u) = upper {
                            let op = if u.inclusive { "<=" } else { "<" };
                            constraints.push(format!("{op}{}{blank}", u.version));
                        }
                    }
                }
            }
            format!("vers:{scheme}/{}", constraints.join("|"))
        }

        fn version() -> impl Strategy<Value = String> {
            "[0-9A-Za-z][0-9A-Za-z.+~-]{0,10}"
        }

        fn bound(inclusive: impl Strategy<Value = bool>) -> impl Strategy<Value = Bound> {
            (version(), inclusive).prop_map(|(version, inclusive)| Bound { version, inclusive })
        }

        /// Spans the parser can give: a range open at the top only last.
        fn spans() -> impl Strategy<Value = Vec<Span>> {
            let closed = prop_oneof![
                version().prop_map(Span::Exact),
                (proptest::option::of(bound(Just(true))), bound(any::<bool>()))
                    .prop_map(|(lower, upper)| Span::Between { lower, upper: Some(upper) }),
            ];
            let last = proptest::option::of(bound(Just(true)))
                .prop_map(|lower| lower.map(|l| Span::Between { lower: Some(l), upper: None }));
            (proptest::collection::vec(closed, 0..6), last).prop_filter_map(
                "at least one span",
                |(mut spans, last)| {
                    spans.extend(last);
                    (!spans.is_empty()).then_some(spans)
                },
            )
        }

        fn vers_like() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("vers:".to_owned()),
                Just("/".to_owned()),
                Just("|".to_owned()),
                Just("*".to_owned()),
                proptest::sample::select(vec![">=", "<=", "!=", ">", "<", "="]).prop_map(str::to_owned),
                "[a-z0-9.]{1,6}",
                "[ \t]",
                "\\PC",
            ];
            proptest::collection::vec(piece, 0..16).prop_map(|p| p.concat())
        }

        fn decode_percent(text: &str) -> Option<String> {
            let bytes = text.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' {
                    let hex = text.get(i + 1..i + 3)?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).ok()
        }

        /// A purl without a version, and the type and name it should give.
        fn purl() -> impl Strategy<Value = (String, String, String)> {
            (
                "[a-z][a-z0-9.+-]{0,8}",
                proptest::collection::vec(
                    prop_oneof!["[A-Za-z0-9._-]{1,8}", "%40[a-z]{1,6}", "@[a-z]{1,6}"],
                    0..3,
                ),
                "[A-Za-z0-9._-]{1,12}",
                proptest::option::of("\\?[a-z]{1,5}=[a-z0-9]{1,5}"),
                proptest::option::of("#[a-z/]{1,8}"),
            )
                .prop_map(|(ty, namespace, name, qualifiers, subpath)| {
                    let mut path = namespace.clone();
                    path.push(name);
                    let path = path.join("/");
                    let purl = format!(
                        "pkg:{ty}/{path}{}{}",
                        qualifiers.unwrap_or_default(),
                        subpath.unwrap_or_default()
                    );
                    (purl, ty, path.replace("%40", "@"))
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any text: a typed error or spans that are each well formed.
            #[test]
            fn any_vers_text_is_refused_or_well_formed(text in prop_oneof!["\\PC{0,80}", vers_like()]) {
                let _ = VersRange::parse_if_range(&text);
                if let Ok(range) = VersRange::parse(&text) {
                    prop_assert!(text.starts_with("vers:"));
                    prop_assert!(!range.scheme.is_empty());
                    prop_assert_eq!(range.scheme.clone(), range.scheme.to_ascii_lowercase());
                    prop_assert!(!range.spans.is_empty());
                    let well_formed = |v: &str| !v.is_empty() && v == v.trim();
                    for (i, span) in range.spans.iter().enumerate() {
                        match span {
                            Span::Exact(v) => prop_assert!(well_formed(v), "{v:?}"),
                            Span::Between { lower, upper } => {
                                if let Some(l) = lower {
                                    prop_assert!(l.inclusive && well_formed(&l.version));
                                }
                                if let Some(u) = upper {
                                    prop_assert!(well_formed(&u.version));
                                }
                                if upper.is_none() {
                                    prop_assert_eq!(i, range.spans.len() - 1, "an open range is last");
                                }
                            }
                        }
                    }
                }
            }

            /// Generated ranges parse back to their spans, the scheme in lower case.
            #[test]
            fn generated_vers_ranges_parse_to_their_spans(
                scheme in "[A-Za-z][A-Za-z0-9.-]{0,8}",
                spans in spans(),
                blank in "[ ]{0,1}",
            ) {
                let text = render(&scheme, &spans, &blank);
                let range = VersRange::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
                prop_assert_eq!(range.scheme, scheme.to_ascii_lowercase());
                prop_assert_eq!(range.spans, spans);
                prop_assert!(VersRange::parse_if_range(&text).is_ok_and(|r| r.is_some()));
            }

            /// What the advisory formats cannot say is refused: `>` and `!=`,
            /// two lower bounds in a row, an exact version inside an open
            /// range, an empty version, no scheme.
            #[test]
            fn unsupported_vers_constraints_are_refused(
                spans in spans(),
                a in version(),
                b in version(),
                at in any::<proptest::sample::Index>(),
                bad in 0..6u8,
            ) {
                let text = render("semver", &spans, "");
                let (head, constraints) = text.split_once('/').expect("scheme");
                let mut parts: Vec<String> = constraints.split('|').map(str::to_owned).collect();
                let i = at.index(parts.len() + 1);
                let broken: Vec<String> = match bad {
                    0 => vec![format!(">{a}")],
                    1 => vec![format!("!={a}")],
                    2 => vec![format!(">={a}"), format!(">={b}")],
                    3 => vec![format!(">={a}"), format!("={b}")],
                    4 => vec![">=".to_owned()],
                    _ => vec![String::new()],
                };
                parts.splice(i..i, broken);
                let broken = format!("{head}/{}", parts.join("|"));
                prop_assert!(VersRange::parse(&broken).is_err(), "{} accepted", broken);
                let no_scheme = format!("vers:/{constraints}");
                prop_assert!(VersRange::parse(&no_scheme).is_err());
                prop_assert!(VersRange::parse(head).is_err());
            }

            /// Any product key and version: no panic.
            #[test]
            fn any_purl_text_is_handled(purl in "(pkg:)?\\PC{0,60}", version in "\\PC{0,20}") {
                let _ = purl_parts(&purl);
                let _ = product_name(&purl);
                let with = purl_with_version(&purl, &version);
                prop_assert!(with.len() >= purl.len());
            }

            /// A purl gives its type and name (namespace included, `%40`
            /// decoded) with or without a version; the version is added
            /// once, before qualifiers and subpath, percent-encoded as UTF-8.
            #[test]
            fn purls_give_type_and_name_and_take_one_version(
                (purl, ty, name) in purl(),
                version in "\\PC{1,12}",
                other in "\\PC{1,12}",
            ) {
                prop_assert_eq!(purl_parts(&purl), Some((ty.as_str(), name.clone())));
                prop_assert_eq!(product_name(&purl), name.clone());
                let with = purl_with_version(&purl, &version);
                prop_assert_eq!(purl_parts(&with), Some((ty.as_str(), name.clone())), "{}", with);
                prop_assert_eq!(purl_with_version(&with, &other), with.clone(), "a version is added once");
                let split = purl.find(['?', '#']).unwrap_or(purl.len());
                let (base, tail) = purl.split_at(split);
                let encoded = with
                    .strip_prefix(base)
                    .and_then(|r| r.strip_prefix('@'))
                    .and_then(|r| r.strip_suffix(tail))
                    .ok_or_else(|| TestCaseError::fail(format!("{with}: not {base}@...{tail}")))?;
                prop_assert!(
                    encoded.chars().all(|c| c.is_ascii_alphanumeric() || ".-_~+%".contains(c)),
                    "{}", encoded
                );
                prop_assert_eq!(decode_percent(encoded), Some(version));
            }
        }
    }
}
