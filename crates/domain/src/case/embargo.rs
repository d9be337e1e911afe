//! The coordinated disclosure date agreed with the reporter and other
//! vendors (ISO/IEC 29147). The instant is what deadlines compare; the IANA
//! zone name is kept beside it because the parties agreed on a local date,
//! and "10:00 in Europe/Berlin" must still read that way after a DST change.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A component of a zone name is at most this long (tz `Theory`: "must not
/// exceed 14 characters").
const MAX_ZONE_COMPONENT_CHARS: usize = 14;

/// The geographic areas of the tz database; `Etc` is handled apart.
const ZONE_AREAS: [&str; 10] = [
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Indian",
    "Pacific",
];

/// What was agreed beside the date: with whom, the date as the parties
/// wrote it (wall-clock time in the zone, and the zone's offset then), and a
/// note. Recorded as given (the triage API resolves and checks them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbargoTerms {
    /// Reporter, coordinators, other vendors.
    pub agreed_with: Vec<String>,
    /// On the agreement, or why the date moved.
    pub note: String,
    /// `YYYY-MM-DDTHH:MM:SS` in the embargo's zone, exactly as agreed.
    pub local_disclosure_time: String,
    /// The zone's UTC offset at the disclosure instant, seconds east.
    pub utc_offset_seconds: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Embargo {
    /// When the case may be disclosed, with the offset the caller sent.
    #[serde(with = "time::serde::rfc3339")]
    pub disclosure_at: OffsetDateTime,
    /// The IANA time zone the date was agreed in, e.g. `Asia/Tokyo`.
    pub time_zone: String,
    pub terms: EmbargoTerms,
    #[serde(with = "time::serde::rfc3339")]
    pub set_at: OffsetDateTime,
}

/// Checks that `name` is spelled like an IANA time zone name: `UTC`,
/// `Etc/...` (`Etc/UTC`, `Etc/GMT-9`), or `Area/Location[/Sub]` with a tz
/// database area (`America/Argentina/Buenos_Aires`).
///
/// Only the syntax: there is no tz database here, so `Europe/Atlantis`
/// passes. Legacy single names and backward links (`EST5EDT`, `Japan`,
/// `US/Eastern`) are refused on purpose: an embargo is recorded once, in
/// the canonical name. The error completes "time zone ...".
pub fn check_time_zone(name: &str) -> Result<(), &'static str> {
    if name == "UTC" {
        return Ok(());
    }
    let components: Vec<&str> = name.split('/').collect();
    match components.as_slice() {
        ["Etc", zone] => check_etc(zone),
        [area, locations @ ..] if ZONE_AREAS.contains(area) && matches!(locations.len(), 1 | 2) => {
            if locations.iter().all(|location| is_location(location)) {
                Ok(())
            } else {
                Err("must name a location in letters, '_' and '-', each part at most 14 characters")
            }
        }
        [_] => Err("must be UTC or an IANA name such as Europe/Berlin"),
        _ => Err("must be an IANA name: UTC, Etc/..., or one of Africa, America, Antarctica, Arctic, Asia, \
                  Atlantic, Australia, Europe, Indian, Pacific followed by /Location"),
    }
}

/// `Etc/UTC`, `Etc/Universal`, `Etc/GMT`, `Etc/GMT0`, and the fixed offsets
/// `Etc/GMT-14` to `Etc/GMT+12` (POSIX signs: `Etc/GMT-9` is UTC+9).
fn check_etc(zone: &str) -> Result<(), &'static str> {
    const NAMES: [&str; 9] =
        ["UTC", "UCT", "Universal", "Zulu", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich"];
    if NAMES.contains(&zone) {
        return Ok(());
    }
    let offset = |digits: &str, max: u8| {
        let valid = matches!(digits.len(), 1 | 2)
            && !(digits.len() == 2 && digits.starts_with('0'))
            && digits.bytes().all(|b| b.is_ascii_digit())
            && digits.parse::<u8>().is_ok_and(|hours| (1..=max).contains(&hours));
        if valid { Ok(()) } else { Err("must be an Etc zone from Etc/GMT-14 to Etc/GMT+12, or Etc/UTC") }
    };
    let rest = zone.strip_prefix("GMT").unwrap_or_default();
    if let Some(hours) = rest.strip_prefix('+') {
        offset(hours, 12)
    } else if let Some(hours) = rest.strip_prefix('-') {
        offset(hours, 14)
    } else {
        Err("must be an Etc zone from Etc/GMT-14 to Etc/GMT+12, or Etc/UTC")
    }
}

/// A tz location component: starts with an upper-case ASCII letter, then
/// ASCII letters, `_` and `-` (`Port-au-Prince`, `DumontDUrville`), no
/// trailing separator, at most 14 characters.
fn is_location(component: &str) -> bool {
    let mut chars = component.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && component.len() <= MAX_ZONE_COMPONENT_CHARS
        && chars.all(|c| c.is_ascii_alphabetic() || c == '_' || c == '-')
        && !component.ends_with(['_', '-'])
        && !component.contains("__")
        && !component.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_iana_names() {
        for name in [
            "UTC",
            "Etc/UTC",
            "Etc/GMT",
            "Etc/GMT0",
            "Etc/GMT-9",
            "Etc/GMT-14",
            "Etc/GMT+12",
            "Etc/GMT+5",
            "Europe/Berlin",
            "Asia/Tokyo",
            "America/New_York",
            "America/Port-au-Prince",
            "America/Argentina/Buenos_Aires",
            "America/North_Dakota/New_Salem",
            "America/Argentina/ComodRivadavia",
            "Antarctica/DumontDUrville",
            "Europe/Isle_of_Man",
            "Pacific/Port_Moresby",
            "Atlantic/Cape_Verde",
            "Indian/Kerguelen",
            "Arctic/Longyearbyen",
            "Australia/Lord_Howe",
        ] {
            assert_eq!(check_time_zone(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_iana_name() {
        for name in [
            "",
            "utc",
            "GMT",
            "JST",
            "EST5EDT",
            "Japan",
            "US/Eastern",
            "Canada/Pacific",
            "+09:00",
            "UTC+9",
            "Europe",
            "Europe/",
            "/Berlin",
            "Europe//Berlin",
            "Europe/berlin",
            "europe/Berlin",
            "Europe/Berlin ",
            " Europe/Berlin",
            "Europe/Ber lin",
            "Europe/Berlin1",
            "Europe/Berlin_",
            "Europe/Berlin-",
            "Europe/Ber__lin",
            "Europe/Zürich",
            "Europe/Abcdefghijklmno",
            "America/Argentina/Buenos_Aires/Centro",
            "Etc/GMT+13",
            "Etc/GMT-15",
            "Etc/GMT+09",
            "Etc/GMT+",
            "Etc/GMT+0x",
            "Etc/PST",
            "Etc/Berlin/X",
            "Moon/Tranquility_Base",
        ] {
            assert!(check_time_zone(name).is_err(), "{name:?}");
        }
    }
}
