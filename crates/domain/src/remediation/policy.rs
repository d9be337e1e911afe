//! How long a remediation action may take, per severity rating and, where a
//! product needs its own commitments, per product.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use crate::cvss_vector::CvssSeverity;
use crate::sla::SlaDuration;
use crate::validation::{FieldViolation, MAX_PRODUCT_NAME_CHARS};

/// Longest policy label (`name@version`), as the `sla_policy` event fields allow.
pub const MAX_POLICY_LABEL_CHARS: usize = 100;

const DEFAULT_NAME: &str = "default";
const DEFAULT_VERSION: u32 = 1;

/// The remediation due-date policy: the window from opening a plan to each
/// action's due date. In configuration everything is optional; what is left
/// out keeps its default:
///
/// | rating   | window |
/// |----------|--------|
/// | critical | 7d     |
/// | high     | 30d    |
/// | medium   | 90d    |
/// | low      | 180d   |
/// | none     | 180d   |
/// | unrated  | 90d    |
///
/// `unrated` applies while the case has no rating (like the medium window:
/// neither a rush nor a parking lot). `name` (default `default`) and
/// `version` (default `1`) make the label `name@version` that events record
/// in `sla_policy`; bump the version when changing the windows.
///
/// `products` gives a product its own windows, keyed by the product
/// identifier (matched without case); a rating it leaves out takes the
/// global window. Configuration shape (TOML):
///
/// ```toml
/// name = "default"
/// version = 2
/// critical = "7d"
/// high = "30d"
///
/// [products.acme-gateway]
/// critical = "3d"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RemediationPolicyConfig")]
pub struct RemediationPolicy {
    name: String,
    version: u32,
    pub critical: SlaDuration,
    pub high: SlaDuration,
    pub medium: SlaDuration,
    pub low: SlaDuration,
    pub none: SlaDuration,
    pub unrated: SlaDuration,
    pub products: BTreeMap<String, ProductWindows>,
}

/// One product's own windows; `None` takes the policy's global window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductWindows {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<SlaDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<SlaDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<SlaDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<SlaDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub none: Option<SlaDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unrated: Option<SlaDuration>,
}

impl ProductWindows {
    fn get(&self, severity: Option<CvssSeverity>) -> Option<SlaDuration> {
        match severity {
            Some(CvssSeverity::Critical) => self.critical,
            Some(CvssSeverity::High) => self.high,
            Some(CvssSeverity::Medium) => self.medium,
            Some(CvssSeverity::Low) => self.low,
            Some(CvssSeverity::None) => self.none,
            None => self.unrated,
        }
    }
}

fn days(days: i64) -> SlaDuration {
    SlaDuration::new(Duration::days(days)).expect("default windows are within the SLA bounds")
}

impl Default for RemediationPolicy {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_owned(),
            version: DEFAULT_VERSION,
            critical: days(7),
            high: days(30),
            medium: days(90),
            low: days(180),
            none: days(180),
            unrated: days(90),
            products: BTreeMap::new(),
        }
    }
}

/// Ratings in the order they are validated: most severe first, then unrated.
const RATINGS: [(&str, Option<CvssSeverity>); 6] = [
    ("critical", Some(CvssSeverity::Critical)),
    ("high", Some(CvssSeverity::High)),
    ("medium", Some(CvssSeverity::Medium)),
    ("low", Some(CvssSeverity::Low)),
    ("none", Some(CvssSeverity::None)),
    ("unrated", None),
];

impl RemediationPolicy {
    /// The default windows under another name and version.
    pub fn named(name: impl Into<String>, version: u32) -> Self {
        Self { name: name.into(), version, ..Self::default() }
    }

    /// The label events record in `sla_policy`: `name@version`, e.g. `default@1`.
    pub fn name(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// The global window of a rating (`None`: unrated).
    pub fn global_window(&self, severity: Option<CvssSeverity>) -> SlaDuration {
        match severity {
            Some(CvssSeverity::Critical) => self.critical,
            Some(CvssSeverity::High) => self.high,
            Some(CvssSeverity::Medium) => self.medium,
            Some(CvssSeverity::Low) => self.low,
            Some(CvssSeverity::None) => self.none,
            None => self.unrated,
        }
    }

    /// The product's own windows, the key matched without case.
    pub fn product_windows(&self, product: &str) -> Option<&ProductWindows> {
        let product = product.trim().to_lowercase();
        self.products.iter().find(|(key, _)| key.trim().to_lowercase() == product).map(|(_, windows)| windows)
    }

    /// The window for an action on `product` under a case of `severity`:
    /// the product's own window for the rating if it has one, else the global one.
    pub fn window(&self, severity: Option<CvssSeverity>, product: &str) -> SlaDuration {
        self.product_windows(product)
            .and_then(|windows| windows.get(severity))
            .unwrap_or_else(|| self.global_window(severity))
    }

    /// When an action on `product` is due, for a plan opened at `opened_at`.
    /// Saturates at the last representable instant instead of panicking.
    pub fn due_at(
        &self,
        opened_at: OffsetDateTime,
        severity: Option<CvssSeverity>,
        product: &str,
    ) -> OffsetDateTime {
        let window = self.window(severity, product).as_duration();
        opened_at.checked_add(window).unwrap_or_else(|| PrimitiveDateTime::MAX.assume_utc())
    }

    /// Every problem with the policy, empty when it is usable: a blank or
    /// overlong label, windows of zero, a more severe rating given more time
    /// than a less severe one (globally and per product, with the product's
    /// fallbacks), and product keys that are blank, too long, or the same
    /// product written twice.
    pub fn validate(&self) -> Vec<FieldViolation> {
        let mut violations = Vec::new();
        let name = self.name.trim();
        if name.is_empty() || name.contains('@') || name.chars().any(char::is_control) {
            violations.push(FieldViolation::new(
                "name",
                "name must not be empty nor contain '@' or control characters",
            ));
        } else if self.name().chars().count() > MAX_POLICY_LABEL_CHARS {
            violations.push(FieldViolation::new(
                "name",
                format!("name@version must be at most {MAX_POLICY_LABEL_CHARS} characters"),
            ));
        }
        self.check_windows(&mut violations, "", |severity| self.global_window(severity));
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (key, windows) in &self.products {
            let trimmed = key.trim();
            let field = format!("products.{key}");
            if trimmed.is_empty() || trimmed.chars().count() > MAX_PRODUCT_NAME_CHARS {
                violations.push(FieldViolation::new(
                    field.as_str(),
                    format!("product key must be 1 to {MAX_PRODUCT_NAME_CHARS} characters"),
                ));
            }
            if let Some(first) = seen.insert(trimmed.to_lowercase(), key) {
                violations.push(FieldViolation::new(
                    field.as_str(),
                    format!("product {key:?} is the same as {first:?} (keys are matched without case)"),
                ));
            }
            let prefix = format!("{field}.");
            self.check_windows(&mut violations, &prefix, |severity| {
                windows.get(severity).unwrap_or_else(|| self.global_window(severity))
            });
        }
        violations
    }

    fn check_windows(
        &self,
        violations: &mut Vec<FieldViolation>,
        prefix: &str,
        window: impl Fn(Option<CvssSeverity>) -> SlaDuration,
    ) {
        for (name, severity) in RATINGS {
            if window(severity) == SlaDuration::ZERO {
                violations.push(FieldViolation::new(
                    format!("{prefix}{name}"),
                    format!("{prefix}{name} must be longer than zero"),
                ));
            }
        }
        // Rated entries, most severe first; `unrated` may sit anywhere.
        for pair in RATINGS[..5].windows(2) {
            let [(severe, severe_rating), (milder, milder_rating)] = pair else { continue };
            let (severe_window, milder_window) = (window(*severe_rating), window(*milder_rating));
            if severe_window > milder_window {
                violations.push(FieldViolation::new(
                    format!("{prefix}{severe}"),
                    format!(
                        "{prefix}{severe} ({severe_window}) is longer than {prefix}{milder} ({milder_window}): a more severe rating must not get more time"
                    ),
                ));
            }
        }
    }
}

/// The configuration form of [`RemediationPolicy`]: everything optional,
/// filled in from the defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemediationPolicyConfig {
    name: Option<String>,
    version: Option<u32>,
    critical: Option<SlaDuration>,
    high: Option<SlaDuration>,
    medium: Option<SlaDuration>,
    low: Option<SlaDuration>,
    none: Option<SlaDuration>,
    unrated: Option<SlaDuration>,
    #[serde(default)]
    products: BTreeMap<String, ProductWindows>,
}

impl From<RemediationPolicyConfig> for RemediationPolicy {
    fn from(config: RemediationPolicyConfig) -> Self {
        let default = Self::default();
        Self {
            name: config.name.unwrap_or(default.name),
            version: config.version.unwrap_or(default.version),
            critical: config.critical.unwrap_or(default.critical),
            high: config.high.unwrap_or(default.high),
            medium: config.medium.unwrap_or(default.medium),
            low: config.low.unwrap_or(default.low),
            none: config.none.unwrap_or(default.none),
            unrated: config.unrated.unwrap_or(default.unrated),
            products: config.products,
        }
    }
}
