//! CVSS v3.0, v3.1 and v4.0 vectors as reporters suggest and triage records
//! them: parsed strictly (every base metric, each once, values spelled as the
//! specifications spell them), normalised, scored by the `cvss` crate and rated.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The base metrics a v3.x vector must carry, in specification order.
pub const CVSS_V3_BASE_METRICS: [&str; 8] = ["AV", "AC", "PR", "UI", "S", "C", "I", "A"];
/// The base metrics a v4.0 vector must carry, in specification order.
pub const CVSS_V4_BASE_METRICS: [&str; 11] =
    ["AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA"];

/// "Not Defined": the value every optional metric may take, equivalent to
/// leaving the metric out (both specifications say so), so it is dropped
/// from the normalised vector.
const NOT_DEFINED: &str = "X";

/// One metric a version defines, with the values the specification allows,
/// spelled as it spells them.
#[derive(Debug)]
struct MetricSpec {
    name: &'static str,
    mandatory: bool,
    values: &'static [&'static str],
}

const fn base(name: &'static str, values: &'static [&'static str]) -> MetricSpec {
    MetricSpec { name, mandatory: true, values }
}

const fn optional(name: &'static str, values: &'static [&'static str]) -> MetricSpec {
    MetricSpec { name, mandatory: false, values }
}

const IMPACT: &[&str] = &["H", "L", "N"];
const REQUIREMENT: &[&str] = &["X", "H", "M", "L"];
const MODIFIED_IMPACT: &[&str] = &["X", "H", "L", "N"];

/// CVSS v3.0/v3.1 specification, section 6 (vector string) and 7.4 (metric
/// values), in the order the vector string lists them.
const CVSS_V3_METRICS: [MetricSpec; 22] = [
    base("AV", &["N", "A", "L", "P"]),
    base("AC", &["L", "H"]),
    base("PR", &["N", "L", "H"]),
    base("UI", &["N", "R"]),
    base("S", &["U", "C"]),
    base("C", IMPACT),
    base("I", IMPACT),
    base("A", IMPACT),
    // Temporal.
    optional("E", &["X", "H", "F", "P", "U"]),
    optional("RL", &["X", "U", "W", "T", "O"]),
    optional("RC", &["X", "C", "R", "U"]),
    // Environmental.
    optional("CR", REQUIREMENT),
    optional("IR", REQUIREMENT),
    optional("AR", REQUIREMENT),
    optional("MAV", &["X", "N", "A", "L", "P"]),
    optional("MAC", &["X", "L", "H"]),
    optional("MPR", &["X", "N", "L", "H"]),
    optional("MUI", &["X", "N", "R"]),
    optional("MS", &["X", "U", "C"]),
    optional("MC", MODIFIED_IMPACT),
    optional("MI", MODIFIED_IMPACT),
    optional("MA", MODIFIED_IMPACT),
];

/// CVSS v4.0 specification, section 7 (vector string, table 23), in the
/// order the vector string lists them.
const CVSS_V4_METRICS: [MetricSpec; 32] = [
    base("AV", &["N", "A", "L", "P"]),
    base("AC", &["L", "H"]),
    base("AT", &["N", "P"]),
    base("PR", &["N", "L", "H"]),
    base("UI", &["N", "P", "A"]),
    base("VC", IMPACT),
    base("VI", IMPACT),
    base("VA", IMPACT),
    base("SC", IMPACT),
    base("SI", IMPACT),
    base("SA", IMPACT),
    // Threat.
    optional("E", &["X", "A", "P", "U"]),
    // Environmental.
    optional("CR", REQUIREMENT),
    optional("IR", REQUIREMENT),
    optional("AR", REQUIREMENT),
    optional("MAV", &["X", "N", "A", "L", "P"]),
    optional("MAC", &["X", "L", "H"]),
    optional("MAT", &["X", "N", "P"]),
    optional("MPR", &["X", "N", "L", "H"]),
    optional("MUI", &["X", "N", "P", "A"]),
    optional("MVC", MODIFIED_IMPACT),
    optional("MVI", MODIFIED_IMPACT),
    optional("MVA", MODIFIED_IMPACT),
    optional("MSC", MODIFIED_IMPACT),
    // Safety (S) only exists for the modified subsequent integrity and availability.
    optional("MSI", &["X", "S", "H", "L", "N"]),
    optional("MSA", &["X", "S", "H", "L", "N"]),
    // Supplemental: never part of the score.
    optional("S", &["X", "N", "P"]),
    optional("AU", &["X", "N", "Y"]),
    optional("R", &["X", "A", "U", "I"]),
    optional("V", &["X", "D", "C"]),
    optional("RE", &["X", "L", "M", "H"]),
    optional("U", &["X", "Clear", "Green", "Amber", "Red"]),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CvssVersion {
    #[serde(rename = "3.0")]
    V3_0,
    #[serde(rename = "3.1")]
    V3_1,
    #[serde(rename = "4.0")]
    V4_0,
}

impl CvssVersion {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V3_0 => "3.0",
            Self::V3_1 => "3.1",
            Self::V4_0 => "4.0",
        }
    }

    const fn prefix(self) -> &'static str {
        match self {
            Self::V3_0 => "CVSS:3.0",
            Self::V3_1 => "CVSS:3.1",
            Self::V4_0 => "CVSS:4.0",
        }
    }

    fn metrics(self) -> &'static [MetricSpec] {
        match self {
            Self::V3_0 | Self::V3_1 => &CVSS_V3_METRICS,
            Self::V4_0 => &CVSS_V4_METRICS,
        }
    }
}

impl fmt::Display for CvssVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Qualitative severity rating of a score, the same bands in v3.x and v4.0:
/// None 0.0, Low 0.1-3.9, Medium 4.0-6.9, High 7.0-8.9, Critical 9.0-10.0.
/// Ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CvssSeverity {
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl CvssSeverity {
    /// Every rating, least severe first.
    pub const ALL: [CvssSeverity; 5] = [Self::None, Self::Low, Self::Medium, Self::High, Self::Critical];

    /// The rating of a score (CVSS v3.1 section 5, v4.0 section 6). Scores
    /// carry one decimal, so the bands are compared at their lower bounds;
    /// anything below 0.1 (or not a number) rates None.
    pub fn from_score(score: f64) -> Self {
        if score >= 9.0 {
            Self::Critical
        } else if score >= 7.0 {
            Self::High
        } else if score >= 4.0 {
            Self::Medium
        } else if score >= 0.1 {
            Self::Low
        } else {
            Self::None
        }
    }

    /// The specification's name of the rating.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Low => "Low",
            Self::Medium => "Medium",
            Self::High => "High",
            Self::Critical => "Critical",
        }
    }
}

impl fmt::Display for CvssSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rating name that is none of None, Low, Medium, High, Critical.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a severity rating (expected None, Low, Medium, High or Critical)")]
pub struct UnknownSeverity(pub String);

impl FromStr for CvssSeverity {
    type Err = UnknownSeverity;

    /// Accepts the names in any case: configuration files and APIs write
    /// `critical` as often as `Critical`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|severity| severity.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| UnknownSeverity(text.to_owned()))
    }
}

/// Which metric groups a score accounts for (CVSS v4.0 section 1.3): the
/// label a number must travel with (`CVSS-B 9.3`, `CVSS-BT 8.9`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CvssNomenclature {
    /// Base metrics only.
    #[serde(rename = "CVSS-B")]
    Base,
    /// Base and threat metrics.
    #[serde(rename = "CVSS-BT")]
    BaseThreat,
    /// Base and environmental metrics.
    #[serde(rename = "CVSS-BE")]
    BaseEnvironmental,
    /// Base, threat and environmental metrics.
    #[serde(rename = "CVSS-BTE")]
    BaseThreatEnvironmental,
}

impl CvssNomenclature {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Base => "CVSS-B",
            Self::BaseThreat => "CVSS-BT",
            Self::BaseEnvironmental => "CVSS-BE",
            Self::BaseThreatEnvironmental => "CVSS-BTE",
        }
    }
}

impl fmt::Display for CvssNomenclature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a vector string was refused. Every variant names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CvssError {
    #[error("the vector is empty")]
    Empty,
    #[error("{prefix:?} is not a supported CVSS version (expected CVSS:3.0, CVSS:3.1 or CVSS:4.0)")]
    UnsupportedVersion { prefix: String },
    #[error("{component:?} is not a METRIC:VALUE component")]
    MalformedComponent { component: String },
    #[error("{metric:?} is not a CVSS {version} metric")]
    UnknownMetric { version: CvssVersion, metric: String },
    #[error("metric {metric} appears more than once")]
    RepeatedMetric { metric: String },
    #[error("mandatory base metrics missing: {}", .metrics.join(", "))]
    MissingBaseMetrics { metrics: Vec<&'static str> },
    #[error("{value:?} is not a value of CVSS {version} metric {metric} (allowed: {})", .allowed.join(", "))]
    InvalidValue {
        version: CvssVersion,
        metric: &'static str,
        value: String,
        allowed: &'static [&'static str],
    },
    /// The scorer refused a vector these checks accepted: a gap between the
    /// metric tables here and the `cvss` crate, never the caller's fault.
    #[error("the CVSS scorer refused the vector: {reason}")]
    Unscorable { reason: String },
}

/// A well-formed CVSS v3.x or v4.0 vector. Keeps the text as written (what
/// `as_str`, `Display` and serde give back) and its normalised form.
#[derive(Debug, Clone, PartialEq)]
pub struct CvssVector {
    text: String,
    normalized: String,
    version: CvssVersion,
    /// Metric name and value as written, `X` included, keyed by the
    /// metric's position in the specification's order.
    metrics: BTreeMap<usize, (&'static str, &'static str)>,
    score: f64,
    nomenclature: CvssNomenclature,
}

impl CvssVector {
    pub fn parse(text: &str) -> Result<Self, CvssError> {
        text.parse()
    }

    /// The vector as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The vector in the specification's metric order, without the metrics
    /// whose value is `X` (Not Defined): two vectors that mean the same
    /// have the same normalised form.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    pub fn version(&self) -> CvssVersion {
        self.version
    }

    /// The value a metric has in this vector as written (`X` included), by
    /// its specification name (`"AV"`, `"E"`, `"U"`).
    pub fn metric(&self, name: &str) -> Option<&'static str> {
        self.metrics.values().find(|(metric, _)| *metric == name).map(|(_, value)| *value)
    }

    /// The score the `cvss` crate computes: for v3.x the base score (the
    /// crate does not score v3 temporal or environmental metrics, so those
    /// are validated and kept but do not change the number); for v4.0 the
    /// score of every metric given, labelled by [`CvssVector::nomenclature`].
    pub fn score(&self) -> f64 {
        self.score
    }

    /// Which metric groups [`CvssVector::score`] accounts for; always
    /// [`CvssNomenclature::Base`] for v3.x (see `score`).
    pub fn nomenclature(&self) -> CvssNomenclature {
        self.nomenclature
    }

    /// The qualitative rating of [`CvssVector::score`].
    pub fn severity(&self) -> CvssSeverity {
        CvssSeverity::from_score(self.score)
    }
}

impl FromStr for CvssVector {
    type Err = CvssError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(CvssError::Empty);
        }
        let mut components = text.split('/');
        let prefix = components.next().unwrap_or_default();
        // Exact match: the specifications spell the prefix in upper case and
        // allow no white space anywhere in a vector.
        let version = match prefix {
            "CVSS:3.0" => CvssVersion::V3_0,
            "CVSS:3.1" => CvssVersion::V3_1,
            "CVSS:4.0" => CvssVersion::V4_0,
            _ => return Err(CvssError::UnsupportedVersion { prefix: prefix.to_owned() }),
        };
        let specs = version.metrics();
        let mut metrics = BTreeMap::new();
        for component in components {
            let malformed = || CvssError::MalformedComponent { component: component.to_owned() };
            let (metric, value) = component.split_once(':').ok_or_else(malformed)?;
            if metric.is_empty() || value.is_empty() || value.contains(':') {
                return Err(malformed());
            }
            // Names and values are matched exactly: the `cvss` crate would
            // take `av:n` or `U:RED`, which no other tool needs to accept.
            let (position, spec) = specs
                .iter()
                .enumerate()
                .find(|(_, spec)| spec.name == metric)
                .ok_or_else(|| CvssError::UnknownMetric { version, metric: metric.to_owned() })?;
            let value = spec.values.iter().copied().find(|allowed| *allowed == value).ok_or_else(|| {
                CvssError::InvalidValue {
                    version,
                    metric: spec.name,
                    value: value.to_owned(),
                    allowed: spec.values,
                }
            })?;
            if metrics.insert(position, (spec.name, value)).is_some() {
                return Err(CvssError::RepeatedMetric { metric: spec.name.to_owned() });
            }
        }
        let missing: Vec<&'static str> = specs
            .iter()
            .enumerate()
            .filter(|(position, spec)| spec.mandatory && !metrics.contains_key(position))
            .map(|(_, spec)| spec.name)
            .collect();
        if !missing.is_empty() {
            return Err(CvssError::MissingBaseMetrics { metrics: missing });
        }

        let mut normalized = version.prefix().to_owned();
        for (metric, value) in metrics.values().filter(|(_, value)| *value != NOT_DEFINED) {
            normalized.push('/');
            normalized.push_str(metric);
            normalized.push(':');
            normalized.push_str(value);
        }
        // The normalised form is what gets scored: with the `X` metrics gone
        // the crate's v4.0 nomenclature says which groups really count.
        let parsed = normalized
            .parse::<::cvss::Cvss>()
            .map_err(|e| CvssError::Unscorable { reason: e.to_string() })?;
        let nomenclature = match &parsed {
            ::cvss::Cvss::CvssV40(vector) => match vector.nomenclature() {
                ::cvss::v4::Nomenclature::CvssB => CvssNomenclature::Base,
                ::cvss::v4::Nomenclature::CvssBT => CvssNomenclature::BaseThreat,
                ::cvss::v4::Nomenclature::CvssBE => CvssNomenclature::BaseEnvironmental,
                ::cvss::v4::Nomenclature::CvssBTE => CvssNomenclature::BaseThreatEnvironmental,
            },
            _ => CvssNomenclature::Base,
        };
        Ok(Self { text: text.to_owned(), normalized, version, metrics, score: parsed.score(), nomenclature })
    }
}

impl fmt::Display for CvssVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for CvssVector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for CvssVector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
