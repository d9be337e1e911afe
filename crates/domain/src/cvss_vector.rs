//! CVSS v3.0, v3.1 and v4.0 vector strings, as reporters suggest them and
//! triage records them. The `cvss` crate scores; the structural checks it
//! leaves out (all base metrics present, metric names spelled exactly) are here.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The base metrics a v3.x vector must carry, in specification order.
pub const CVSS_V3_BASE_METRICS: [&str; 8] = ["AV", "AC", "PR", "UI", "S", "C", "I", "A"];
const CVSS_V3_OTHER_METRICS: [&str; 14] =
    ["E", "RL", "RC", "CR", "IR", "AR", "MAV", "MAC", "MPR", "MUI", "MS", "MC", "MI", "MA"];
/// The base metrics a v4.0 vector must carry, in specification order.
pub const CVSS_V4_BASE_METRICS: [&str; 11] =
    ["AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA"];
const CVSS_V4_OTHER_METRICS: [&str; 21] = [
    "E", "CR", "IR", "AR", "MAV", "MAC", "MAT", "MPR", "MUI", "MVC", "MVI", "MVA", "MSC", "MSI", "MSA", "S",
    "AU", "R", "V", "RE", "U",
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

    fn metrics(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Self::V3_0 | Self::V3_1 => (&CVSS_V3_BASE_METRICS, &CVSS_V3_OTHER_METRICS),
            Self::V4_0 => (&CVSS_V4_BASE_METRICS, &CVSS_V4_OTHER_METRICS),
        }
    }
}

impl fmt::Display for CvssVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Qualitative severity of a score (the same bands in v3.x and v4.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CvssSeverity {
    None,
    Low,
    Medium,
    High,
    Critical,
}

/// Why a vector string was refused.
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
    #[error("{reason}")]
    InvalidValue { reason: String },
}

/// A well-formed CVSS v3.x or v4.0 vector, kept as written.
#[derive(Debug, Clone, PartialEq)]
pub struct CvssVector {
    text: String,
    version: CvssVersion,
    parsed: ::cvss::Cvss,
}

impl CvssVector {
    pub fn parse(text: &str) -> Result<Self, CvssError> {
        text.parse()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn version(&self) -> CvssVersion {
        self.version
    }

    /// The score of everything the vector carries: for v3.x the base score
    /// (the `cvss` crate does not score v3 temporal/environmental metrics),
    /// for v4.0 the CVSS-BTE score its metrics amount to.
    pub fn score(&self) -> f64 {
        self.parsed.score()
    }

    pub fn severity(&self) -> CvssSeverity {
        match self.parsed.severity() {
            ::cvss::Severity::None => CvssSeverity::None,
            ::cvss::Severity::Low => CvssSeverity::Low,
            ::cvss::Severity::Medium => CvssSeverity::Medium,
            ::cvss::Severity::High => CvssSeverity::High,
            ::cvss::Severity::Critical => CvssSeverity::Critical,
        }
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
        let version = match prefix {
            "CVSS:3.0" => CvssVersion::V3_0,
            "CVSS:3.1" => CvssVersion::V3_1,
            "CVSS:4.0" => CvssVersion::V4_0,
            _ => return Err(CvssError::UnsupportedVersion { prefix: prefix.to_owned() }),
        };
        let (base, other) = version.metrics();
        let mut seen = BTreeSet::new();
        for component in components {
            let malformed = || CvssError::MalformedComponent { component: component.to_owned() };
            let (metric, value) = component.split_once(':').ok_or_else(malformed)?;
            if metric.is_empty() || value.is_empty() || value.contains(':') {
                return Err(malformed());
            }
            // Names are matched exactly: the specification spells them in
            // upper case, and the `cvss` crate would otherwise accept `av:n`.
            if !base.contains(&metric) && !other.contains(&metric) {
                return Err(CvssError::UnknownMetric { version, metric: metric.to_owned() });
            }
            if !seen.insert(metric) {
                return Err(CvssError::RepeatedMetric { metric: metric.to_owned() });
            }
        }
        let missing: Vec<&'static str> =
            base.iter().copied().filter(|metric| !seen.contains(metric)).collect();
        if !missing.is_empty() {
            return Err(CvssError::MissingBaseMetrics { metrics: missing });
        }
        let parsed =
            text.parse::<::cvss::Cvss>().map_err(|e| CvssError::InvalidValue { reason: e.to_string() })?;
        Ok(Self { text: text.to_owned(), version, parsed })
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
mod tests {
    use super::*;

    const V31_CRITICAL: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
    const V40: &str = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N";

    fn parse(text: &str) -> Result<CvssVector, CvssError> {
        text.parse()
    }

    #[test]
    fn accepts_v30_v31_and_v40_base_vectors() {
        let v31 = parse(V31_CRITICAL).expect("valid v3.1");
        assert_eq!(v31.version(), CvssVersion::V3_1);
        assert!((v31.score() - 9.8).abs() < 1e-9);
        assert_eq!(v31.severity(), CvssSeverity::Critical);
        assert_eq!(v31.as_str(), V31_CRITICAL);

        let v30 = parse("CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N").expect("valid v3.0");
        assert_eq!(v30.version(), CvssVersion::V3_0);
        assert_eq!(v30.severity(), CvssSeverity::Low);

        let v40 = parse(V40).expect("valid v4.0");
        assert_eq!(v40.version(), CvssVersion::V4_0);
        assert!((v40.score() - 9.3).abs() < 1e-9);
        assert_eq!(v40.severity(), CvssSeverity::Critical);
    }

    #[test]
    fn accepts_optional_metric_groups_in_any_order() {
        parse("CVSS:3.1/S:U/AV:N/AC:L/PR:N/UI:N/C:H/I:H/A:H/E:P/RL:O/RC:C/CR:H/MAV:A")
            .expect("v3.1 with temporal and environmental metrics");
        parse(&format!("{V40}/E:A/CR:H/MAV:A/S:P/AU:Y/R:A/V:D/RE:L/U:Red"))
            .expect("v4.0 with threat, environmental and supplemental metrics");
    }

    #[test]
    fn refuses_unsupported_versions_and_prefixes() {
        for (text, prefix) in [
            ("CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", "CVSS:2.0"),
            ("AV:N/AC:L/Au:N/C:P/I:P/A:P", "AV:N"),
            ("CVSS:5.0/AV:N", "CVSS:5.0"),
            ("cvss:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "cvss:3.1"),
            (" CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", " CVSS:3.1"),
        ] {
            assert_eq!(
                parse(text),
                Err(CvssError::UnsupportedVersion { prefix: prefix.to_owned() }),
                "{text}"
            );
        }
        assert_eq!(parse(""), Err(CvssError::Empty));
    }

    #[test]
    fn refuses_missing_base_metrics_that_the_cvss_crate_would_accept() {
        assert_eq!(
            parse("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/C:H/I:H/A:H"),
            Err(CvssError::MissingBaseMetrics { metrics: vec!["S"] })
        );
        assert_eq!(
            parse("CVSS:3.1/AV:N"),
            Err(CvssError::MissingBaseMetrics { metrics: vec!["AC", "PR", "UI", "S", "C", "I", "A"] })
        );
        assert_eq!(
            parse("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N"),
            Err(CvssError::MissingBaseMetrics { metrics: vec!["SA"] })
        );
    }

    #[test]
    fn refuses_unknown_metrics() {
        assert!(matches!(
            parse(&format!("{V31_CRITICAL}/XX:Y")),
            Err(CvssError::UnknownMetric { metric, .. }) if metric == "XX"
        ));
        // A v4.0 metric in a v3.1 vector and a v3.1 metric in a v4.0 vector.
        assert!(matches!(
            parse(&format!("{V31_CRITICAL}/AT:N")),
            Err(CvssError::UnknownMetric { metric, .. }) if metric == "AT"
        ));
        assert!(matches!(
            parse(&format!("{V40}/C:H")),
            Err(CvssError::UnknownMetric { metric, .. }) if metric == "C"
        ));
        assert!(matches!(
            parse("CVSS:3.1/av:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
            Err(CvssError::UnknownMetric { metric, .. }) if metric == "av"
        ));
    }

    #[test]
    fn refuses_repeated_metrics() {
        assert_eq!(
            parse(&format!("{V31_CRITICAL}/AV:L")),
            Err(CvssError::RepeatedMetric { metric: "AV".to_owned() })
        );
        assert_eq!(
            parse(&format!("{V40}/E:A/E:U")),
            Err(CvssError::RepeatedMetric { metric: "E".to_owned() })
        );
    }

    #[test]
    fn refuses_malformed_components_and_values() {
        for text in [
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/",
            "CVSS:3.1//AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AVN/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AV:/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AV:N:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        ] {
            assert!(matches!(parse(text), Err(CvssError::MalformedComponent { .. })), "{text}");
        }
        assert!(matches!(
            parse("CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
            Err(CvssError::InvalidValue { .. })
        ));
        assert!(matches!(
            parse("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:Z"),
            Err(CvssError::InvalidValue { .. })
        ));
    }

    #[test]
    fn serializes_as_the_vector_string() {
        let vector = parse(V40).expect("valid");
        let json = serde_json::to_string(&vector).expect("serializes");
        assert_eq!(json, format!("\"{V40}\""));
        assert_eq!(serde_json::from_str::<CvssVector>(&json).expect("deserializes"), vector);
    }
}
