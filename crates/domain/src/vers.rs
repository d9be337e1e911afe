//! Version ranges in the package-url "vers" notation
//! (`vers:semver/>=2.0.0|<2.4.1`, `vers:generic/*`), the one parser of the
//! platform: triage checks `SetAffectedProducts` with it, remediation its
//! action targets, product statuses and fixed versions, and the advisory
//! exports (CSAF, CVE, OSV, OpenVEX) read ranges with it. What it accepts,
//! every export can say; what no export can say (`>`, `!=`) is refused at
//! the first command that carries it.

use crate::validation::FieldViolation;

/// Longest version range expression, in characters.
pub const MAX_VERS_CHARS: usize = 500;

/// A version range in the vers notation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersRange {
    /// The versioning scheme, lower case (`semver`, `generic`, `deb`).
    pub scheme: String,
    /// The contiguous parts, in the order written; one open at the top only last.
    pub spans: Vec<Span>,
}

/// One contiguous part of a vers range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    Exact(String),
    Between { lower: Option<Bound>, upper: Option<Bound> },
}

/// One end of a [`Span::Between`]; a lower bound is always inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub version: String,
    pub inclusive: bool,
}

/// Why a text is not a vers range this platform can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}: {why}")]
pub struct VersError {
    pub text: String,
    pub why: &'static str,
}

impl VersRange {
    /// A range if `version` is written as one (`vers:` prefix), else `None`
    /// (a plain version).
    pub fn parse_if_range(version: &str) -> Result<Option<Self>, VersError> {
        if version.starts_with("vers:") { Self::parse(version).map(Some) } else { Ok(None) }
    }

    /// Parses a vers range. Refused: no `vers:` prefix, no scheme, no
    /// constraints, an empty version, `>` (CVE `version` and OSV `introduced`
    /// are inclusive: there is no honest translation of an exclusive lower
    /// bound), `!=`, two lower bounds in a row, an exact version inside an
    /// open range.
    pub fn parse(text: &str) -> Result<Self, VersError> {
        let bad = |why: &'static str| VersError { text: text.to_owned(), why };
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

/// A range field (`ProductVersionRange.range`): required, at most
/// [`MAX_VERS_CHARS`], a vers range [`VersRange::parse`] accepts. Pushes
/// one violation of `field` at most.
pub fn check_range(violations: &mut Vec<FieldViolation>, field: &str, range: &str) {
    let range = range.trim();
    if range.is_empty() {
        violations.push(FieldViolation::new(field, "version range must not be empty"));
    } else if range.chars().count() > MAX_VERS_CHARS {
        violations.push(FieldViolation::new(
            field,
            format!("version range must be at most {MAX_VERS_CHARS} characters"),
        ));
    } else if let Err(error) = VersRange::parse(range) {
        violations.push(FieldViolation::new(
            field,
            format!("not a usable vers range (e.g. vers:semver/>=2.0.0|<2.4.1): {}", error.why),
        ));
    }
}

/// A field that holds a version or a range (a product status, a fixed
/// version): when written as a range (`vers:` prefix) it must parse.
pub fn check_version_or_range(violations: &mut Vec<FieldViolation>, field: &str, version: &str) {
    if let Err(error) = VersRange::parse_if_range(version.trim()) {
        violations.push(FieldViolation::new(field, format!("not a usable vers range: {}", error.why)));
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
    fn range_fields_need_a_parsable_vers_range() {
        let check = |text: &str| {
            let mut v = Vec::new();
            check_range(&mut v, "f", text);
            v
        };
        assert!(check("vers:semver/>=2.0.0|<2.4.1").is_empty());
        assert!(check(" vers:generic/* ").is_empty());
        for bad in ["", "<2", ">=2.0, <2.4.1", "vers:semver/>1.0.0", "vers:semver/!=1"] {
            let v = check(bad);
            assert_eq!(v.len(), 1, "{bad:?}");
            assert_eq!(v[0].field, "f");
        }
        assert_eq!(check(&format!("vers:generic/{}", "1".repeat(MAX_VERS_CHARS - 13))), vec![]);
        assert_eq!(check(&format!("vers:generic/{}", "1".repeat(MAX_VERS_CHARS - 12))).len(), 1);
        let mut v = Vec::new();
        check_version_or_range(&mut v, "version", "2.4.1");
        check_version_or_range(&mut v, "version", "vers:semver/<2.4.1");
        assert!(v.is_empty());
        check_version_or_range(&mut v, "version", "vers:semver/>2.4.1");
        assert_eq!(v.len(), 1);
    }
}
