//! Response-time commitments per severity rating (time to acknowledge the
//! reporter, time to triage) and the pure clock arithmetic behind them: due
//! times, due-soon warnings and breaches, from timestamps passed in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use crate::cvss_vector::CvssSeverity;
use crate::validation::FieldViolation;

/// The longest window a policy may give, ten years: far beyond any sane
/// commitment, and small enough that deadline arithmetic stays in range.
pub const MAX_SLA_DAYS: i64 = 3650;

/// A clock is due soon once less than this fraction (1/4) of its window is left.
const DUE_SOON_DIVISOR: i32 = 4;

const SECONDS_PER_MINUTE: i64 = 60;
const SECONDS_PER_HOUR: i64 = 60 * SECONDS_PER_MINUTE;
const SECONDS_PER_DAY: i64 = 24 * SECONDS_PER_HOUR;
const SECONDS_PER_WEEK: i64 = 7 * SECONDS_PER_DAY;

/// A non-negative window of at most [`MAX_SLA_DAYS`], written like
/// `1d`, `36h`, `1d12h` or `2w` (units w, d, h, m, s, largest first, each
/// at most once; spaces allowed between the parts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlaDuration(Duration);

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlaDurationError {
    #[error("a duration must not be empty")]
    Empty,
    #[error("{text:?} is not a duration like \"1d\", \"36h\" or \"1d12h\"")]
    Malformed { text: String },
    #[error("{unit:?} in {text:?} is not a unit (use w, d, h, m or s)")]
    UnknownUnit { text: String, unit: String },
    #[error("the units in {text:?} must each appear once, largest first")]
    OutOfOrder { text: String },
    #[error("{text:?} is negative")]
    Negative { text: String },
    #[error("{text:?} is longer than the {MAX_SLA_DAYS} days an SLA window may last")]
    TooLong { text: String },
}

impl SlaDuration {
    pub const ZERO: Self = Self(Duration::ZERO);

    /// A window from a `time::Duration`, refused when negative or longer
    /// than [`MAX_SLA_DAYS`].
    pub fn new(duration: Duration) -> Result<Self, SlaDurationError> {
        if duration.is_negative() {
            Err(SlaDurationError::Negative { text: duration.to_string() })
        } else if duration > Duration::days(MAX_SLA_DAYS) {
            Err(SlaDurationError::TooLong { text: duration.to_string() })
        } else {
            Ok(Self(duration))
        }
    }

    /// Only for the defaults and tests: callers go through `new` or parsing.
    const fn days(days: i64) -> Self {
        Self(Duration::days(days))
    }

    pub const fn as_duration(self) -> Duration {
        self.0
    }
}

impl FromStr for SlaDuration {
    type Err = SlaDurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // (unit, seconds), largest first: the order a duration must use.
        const UNITS: [(&str, i64); 5] = [
            ("w", SECONDS_PER_WEEK),
            ("d", SECONDS_PER_DAY),
            ("h", SECONDS_PER_HOUR),
            ("m", SECONDS_PER_MINUTE),
            ("s", 1),
        ];
        let malformed = || SlaDurationError::Malformed { text: text.to_owned() };
        let too_long = || SlaDurationError::TooLong { text: text.to_owned() };
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(SlaDurationError::Empty);
        }
        let mut seconds: i64 = 0;
        // Units still allowed: an index into UNITS, moving right as units are used.
        let mut next_unit = 0;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            if digits == 0 {
                return Err(malformed());
            }
            let (number, after) = rest.split_at(digits);
            // `1 d` reads as `1d`, and `1 day` gets told which units exist.
            let after = after.trim_start();
            let letters = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
            let (unit, after) = after.split_at(letters);
            if unit.is_empty() {
                return Err(malformed());
            }
            let position = UNITS.iter().position(|(name, _)| *name == unit).ok_or_else(|| {
                SlaDurationError::UnknownUnit { text: text.to_owned(), unit: unit.to_owned() }
            })?;
            if position < next_unit {
                return Err(SlaDurationError::OutOfOrder { text: text.to_owned() });
            }
            next_unit = position + 1;
            let number: i64 = number.parse().map_err(|_| too_long())?;
            seconds = number
                .checked_mul(UNITS[position].1)
                .and_then(|part| seconds.checked_add(part))
                .ok_or_else(too_long)?;
            rest = after.trim_start();
        }
        Self::new(Duration::seconds(seconds)).map_err(|_| too_long())
    }
}

impl fmt::Display for SlaDuration {
    /// The shortest spelling in days, hours, minutes and seconds: `1d12h`, `90s` → `1m30s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut seconds = self.0.whole_seconds();
        if seconds == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in
            [("d", SECONDS_PER_DAY), ("h", SECONDS_PER_HOUR), ("m", SECONDS_PER_MINUTE), ("s", 1)]
        {
            let count = seconds / size;
            if count > 0 {
                write!(f, "{count}{unit}")?;
                seconds -= count * size;
            }
        }
        Ok(())
    }
}

impl Serialize for SlaDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SlaDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The two commitments for one rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeverityClocks {
    /// From opening the case to acknowledging the report to the reporter.
    pub acknowledge: SlaDuration,
    /// From opening the case to a triage decision (accepted, rejected, duplicate).
    pub triage: SlaDuration,
}

impl SeverityClocks {
    const fn days(acknowledge: i64, triage: i64) -> Self {
        Self { acknowledge: SlaDuration::days(acknowledge), triage: SlaDuration::days(triage) }
    }

    pub fn window(&self, clock: Clock) -> SlaDuration {
        match clock {
            Clock::Acknowledge => self.acknowledge,
            Clock::Triage => self.triage,
        }
    }
}

/// How long the PSIRT gives itself, per rating. In configuration every entry
/// and every clock in it is optional; what is left out keeps its default:
///
/// | rating   | acknowledge | triage |
/// |----------|-------------|--------|
/// | critical | 1d          | 3d     |
/// | high     | 2d          | 5d     |
/// | medium   | 3d          | 10d    |
/// | low      | 5d          | 15d    |
/// | none     | 5d          | 15d    |
/// | unrated  | 3d          | 10d    |
///
/// `unrated` applies while a case has no rating yet. It defaults to the
/// medium clocks: acknowledging the reporter does not wait for a rating, and
/// a middle triage deadline neither floods the queue with presumed-critical
/// cases nor lets an unrated one sit for weeks; once rated, the case's own
/// clocks apply retroactively from its opening (see [`SlaClocks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "SlaPolicyConfig")]
pub struct SlaPolicy {
    pub critical: SeverityClocks,
    pub high: SeverityClocks,
    pub medium: SeverityClocks,
    pub low: SeverityClocks,
    pub none: SeverityClocks,
    pub unrated: SeverityClocks,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        Self {
            critical: SeverityClocks::days(1, 3),
            high: SeverityClocks::days(2, 5),
            medium: SeverityClocks::days(3, 10),
            low: SeverityClocks::days(5, 15),
            none: SeverityClocks::days(5, 15),
            unrated: SeverityClocks::days(3, 10),
        }
    }
}

impl SlaPolicy {
    /// The clocks of a rating, or of [`SlaPolicy::unrated`] for `None`.
    pub fn clocks_for(&self, severity: Option<CvssSeverity>) -> &SeverityClocks {
        match severity {
            Some(CvssSeverity::Critical) => &self.critical,
            Some(CvssSeverity::High) => &self.high,
            Some(CvssSeverity::Medium) => &self.medium,
            Some(CvssSeverity::Low) => &self.low,
            Some(CvssSeverity::None) => &self.none,
            None => &self.unrated,
        }
    }

    /// Every problem with the policy, empty when it is usable: windows of
    /// zero, acknowledging allowed to take longer than triaging, and a more
    /// severe rating given more time than a less severe one.
    pub fn validate(&self) -> Vec<FieldViolation> {
        let mut violations = Vec::new();
        let entries = [
            ("critical", &self.critical),
            ("high", &self.high),
            ("medium", &self.medium),
            ("low", &self.low),
            ("none", &self.none),
            ("unrated", &self.unrated),
        ];
        for (name, clocks) in entries {
            for clock in Clock::ALL {
                if clocks.window(clock) == SlaDuration::ZERO {
                    violations.push(FieldViolation::new(
                        format!("{name}.{clock}"),
                        format!("{name}.{clock} must be longer than zero"),
                    ));
                }
            }
            if clocks.acknowledge > clocks.triage {
                violations.push(FieldViolation::new(
                    format!("{name}.acknowledge"),
                    format!(
                        "{name}.acknowledge ({}) must not be longer than {name}.triage ({}): triage includes acknowledging",
                        clocks.acknowledge, clocks.triage
                    ),
                ));
            }
        }
        // Rated entries, most severe first; `unrated` may sit anywhere.
        for pair in entries[..5].windows(2) {
            let [(severe, severe_clocks), (milder, milder_clocks)] = pair else { continue };
            for clock in Clock::ALL {
                let (severe_window, milder_window) =
                    (severe_clocks.window(clock), milder_clocks.window(clock));
                if severe_window > milder_window {
                    violations.push(FieldViolation::new(
                        format!("{severe}.{clock}"),
                        format!(
                            "{severe}.{clock} ({severe_window}) is longer than {milder}.{clock} ({milder_window}): a more severe rating must not get more time"
                        ),
                    ));
                }
            }
        }
        violations
    }
}

/// The configuration form of [`SlaPolicy`]: everything optional, filled in
/// from the defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlaPolicyConfig {
    critical: Option<SeverityClocksConfig>,
    high: Option<SeverityClocksConfig>,
    medium: Option<SeverityClocksConfig>,
    low: Option<SeverityClocksConfig>,
    none: Option<SeverityClocksConfig>,
    unrated: Option<SeverityClocksConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeverityClocksConfig {
    acknowledge: Option<SlaDuration>,
    triage: Option<SlaDuration>,
}

impl From<SlaPolicyConfig> for SlaPolicy {
    fn from(config: SlaPolicyConfig) -> Self {
        fn merge(default: SeverityClocks, config: Option<SeverityClocksConfig>) -> SeverityClocks {
            let Some(config) = config else { return default };
            SeverityClocks {
                acknowledge: config.acknowledge.unwrap_or(default.acknowledge),
                triage: config.triage.unwrap_or(default.triage),
            }
        }
        let default = Self::default();
        Self {
            critical: merge(default.critical, config.critical),
            high: merge(default.high, config.high),
            medium: merge(default.medium, config.medium),
            low: merge(default.low, config.low),
            none: merge(default.none, config.none),
            unrated: merge(default.unrated, config.unrated),
        }
    }
}

/// The two clocks a case runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    Acknowledge,
    Triage,
}

impl Clock {
    pub const ALL: [Clock; 2] = [Self::Acknowledge, Self::Triage];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Acknowledge => "acknowledge",
            Self::Triage => "triage",
        }
    }
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one clock stands at the time it was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockStatus {
    /// Not met, and more than a quarter of the window left.
    OnTrack,
    /// Not met, and at most a quarter of the window left before the deadline.
    DueSoon,
    /// Not met, and the deadline (`at`) has passed.
    Breached { at: OffsetDateTime },
    /// Met at `at`; `late` when that was at or after the deadline.
    Met { at: OffsetDateTime, late: bool },
}

/// One clock of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockState {
    pub clock: Clock,
    /// The window the case's rating gives.
    pub window: Duration,
    /// The first instant that is late.
    pub due_at: OffsetDateTime,
    /// From this instant on, an unmet clock is [`ClockStatus::DueSoon`].
    pub due_soon_at: OffsetDateTime,
    pub met_at: Option<OffsetDateTime>,
    pub status: ClockStatus,
}

impl ClockState {
    fn compute(
        clock: Clock,
        window: Duration,
        opened_at: OffsetDateTime,
        met_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Self {
        let due_at = add_saturating(opened_at, window);
        let due_soon_at = add_saturating(opened_at, window - window / DUE_SOON_DIVISOR);
        let status = match met_at {
            Some(at) => ClockStatus::Met { at, late: at >= due_at },
            None if now >= due_at => ClockStatus::Breached { at: due_at },
            None if now >= due_soon_at => ClockStatus::DueSoon,
            None => ClockStatus::OnTrack,
        };
        Self { clock, window, due_at, due_soon_at, met_at, status }
    }

    /// Not met yet, whatever the time.
    pub fn is_open(&self) -> bool {
        self.met_at.is_none()
    }
}

/// Adds without the panic `OffsetDateTime + Duration` has on overflow: a
/// deadline past the last representable instant is, for every purpose, never.
fn add_saturating(at: OffsetDateTime, window: Duration) -> OffsetDateTime {
    at.checked_add(window).unwrap_or_else(|| PrimitiveDateTime::MAX.assume_utc())
}

/// The SLA clocks of a case at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaState {
    /// The rating the windows were taken from; `None` for unrated.
    pub severity: Option<CvssSeverity>,
    pub acknowledge: ClockState,
    pub triage: ClockState,
}

impl SlaState {
    pub fn clocks(&self) -> [&ClockState; 2] {
        [&self.acknowledge, &self.triage]
    }

    /// The earliest deadline still ahead: of the clocks neither met nor
    /// breached when computed. `None` when nothing is pending.
    pub fn next_deadline(&self) -> Option<(Clock, OffsetDateTime)> {
        self.clocks()
            .into_iter()
            .filter(|state| matches!(state.status, ClockStatus::OnTrack | ClockStatus::DueSoon))
            .min_by_key(|state| state.due_at)
            .map(|state| (state.clock, state.due_at))
    }

    /// For a scheduler: the clocks whose deadline has passed by `now` and
    /// that are not met, earliest deadline first.
    pub fn breaches_due(&self, now: OffsetDateTime) -> Vec<(Clock, OffsetDateTime)> {
        let mut due: Vec<_> = self
            .clocks()
            .into_iter()
            .filter(|state| state.is_open() && state.due_at <= now)
            .map(|state| (state.clock, state.due_at))
            .collect();
        due.sort_by_key(|(_, at)| *at);
        due
    }
}

/// Computes [`SlaState`]s; holds nothing, all input is passed in.
///
/// Deadlines are always measured from when the case was opened, with the
/// windows of the case's *current* rating. Re-rating a case therefore moves
/// its deadlines: a case rated Critical on day two has had its one-day
/// acknowledgement deadline since day one, and shows as breached if it was
/// not acknowledged by then. That is deliberate: the commitment follows the
/// real severity, not how quickly triage noticed it.
///
/// A deadline is the first instant that is late: a clock met strictly
/// before its due time is on time, and an unmet clock is breached from its
/// due time on (so a scheduler woken at the deadline sees the breach).
#[derive(Debug, Clone, Copy)]
pub struct SlaClocks;

impl SlaClocks {
    /// The clocks of a case opened at `opened_at`, as they stand at `now`.
    /// The acknowledgement and triage timestamps are taken as given, even
    /// when earlier than the opening (clock skew between systems): such a
    /// clock is simply met, on time.
    pub fn compute(
        policy: &SlaPolicy,
        opened_at: OffsetDateTime,
        acknowledged_at: Option<OffsetDateTime>,
        triaged_at: Option<OffsetDateTime>,
        severity: Option<CvssSeverity>,
        now: OffsetDateTime,
    ) -> SlaState {
        let clocks = policy.clocks_for(severity);
        SlaState {
            severity,
            acknowledge: ClockState::compute(
                Clock::Acknowledge,
                clocks.acknowledge.as_duration(),
                opened_at,
                acknowledged_at,
                now,
            ),
            triage: ClockState::compute(
                Clock::Triage,
                clocks.triage.as_duration(),
                opened_at,
                triaged_at,
                now,
            ),
        }
    }
}

#[cfg(test)]
mod tests;
