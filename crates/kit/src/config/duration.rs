//! Durations in config files and env vars as short human strings ("500ms", "30s", "2m",
//! "1h30m", "7d"); a bare integer means seconds. Use with `#[serde(with = "duration")]`.
//!
//! Units: `ms`, `s`, `m`, `h`, `d`. Serialization writes the largest unit that divides the
//! value exactly, so defaults round-trip through figment unchanged.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Parses "1h30m", "2m", "500ms", "7d" or a bare number of seconds.
pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration".to_owned());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration {input:?}: expected a number at {rest:?}"));
        }
        let value: u64 =
            rest[..digits].parse().map_err(|_| format!("invalid duration {input:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            "d" => Duration::from_secs(value.saturating_mul(86_400)),
            "" => {
                return Err(format!("invalid duration {input:?}: missing unit (ms, s, m, h, d)"));
            }
            other => {
                return Err(format!(
                    "invalid duration {input:?}: unknown unit {other:?} (use ms, s, m, h, d)"
                ));
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Formats with the largest unit that divides the duration exactly ("2m", "90s", "1500ms").
pub fn format(d: Duration) -> String {
    let millis = d.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    if millis % 1000 != 0 {
        return format!("{millis}ms");
    }
    let secs = d.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// serde `serialize_with` for a [`Duration`] field.
pub fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*d))
}

/// serde `deserialize_with` for a [`Duration`] field.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"30s\", \"2m\", \"1h\", \"7d\" or a number of seconds")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v).map(Duration::from_secs).map_err(|_| E::custom("duration must not be negative"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let cases = [
            ("30s", 30_000),
            ("2m", 120_000),
            ("1h30m", 5_400_000),
            ("7d", 604_800_000),
            ("500ms", 500),
            ("45", 45_000),
            ("1m 30s", 90_000),
        ];
        for (text, millis) in cases {
            assert_eq!(parse(text), Ok(Duration::from_millis(millis)), "{text}");
        }
        assert_eq!(format(Duration::from_secs(120)), "2m");
        assert_eq!(format(Duration::from_secs(90)), "90s");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(format(Duration::ZERO), "0s");
        assert!(parse("5x").is_err());
        assert!(parse("m").is_err());
        assert!(parse("10").is_ok());
        assert!(parse("").is_err());
    }
}
