//! CVE identifiers as the CVE Program spells them (`CVE-YYYY-NNNN…`), so a
//! case only ever records ids a CNA could have assigned and the same id is
//! never recorded twice under two spellings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The first year of the CVE list.
pub const FIRST_CVE_YEAR: i32 = 1999;
/// The CVE JSON 5 schema allows at most this many sequence digits.
pub const MAX_CVE_SEQUENCE_DIGITS: usize = 19;

/// A syntactically valid CVE id, in canonical form (upper-case `CVE-`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CveId {
    text: String,
    year: i32,
}

/// Why a string is not a CVE id; completes "CVE id ...".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCveId {
    #[error("must look like CVE-YYYY-NNNN")]
    Format,
    #[error("must not have a year before {FIRST_CVE_YEAR}")]
    YearTooEarly,
    #[error("must have a sequence number of at least 4 digits")]
    SequenceTooShort,
    #[error("must have a sequence number of at most {MAX_CVE_SEQUENCE_DIGITS} digits")]
    SequenceTooLong,
    /// The syntax pads to four digits and no further: `CVE-2024-01234` is
    /// not a spelling of `CVE-2024-1234`, it is no id at all.
    #[error("must not pad a sequence number longer than 4 digits with leading zeros")]
    LeadingZero,
}

impl CveId {
    /// Parses `CVE-YYYY-NNNN…`. Surrounding whitespace is ignored and the
    /// prefix may be in lower case; everything else is strict.
    pub fn parse(text: &str) -> Result<Self, InvalidCveId> {
        let text = text.trim();
        let (prefix, rest) = text.split_at_checked(4).ok_or(InvalidCveId::Format)?;
        if !prefix.eq_ignore_ascii_case("CVE-") {
            return Err(InvalidCveId::Format);
        }
        let (year, sequence) = rest.split_once('-').ok_or(InvalidCveId::Format)?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if year.len() != 4 || !all_digits(year) || !all_digits(sequence) {
            return Err(InvalidCveId::Format);
        }
        let year: i32 = year.parse().map_err(|_| InvalidCveId::Format)?;
        if year < FIRST_CVE_YEAR {
            return Err(InvalidCveId::YearTooEarly);
        }
        if sequence.len() < 4 {
            return Err(InvalidCveId::SequenceTooShort);
        }
        if sequence.len() > MAX_CVE_SEQUENCE_DIGITS {
            return Err(InvalidCveId::SequenceTooLong);
        }
        if sequence.len() > 4 && sequence.starts_with('0') {
            return Err(InvalidCveId::LeadingZero);
        }
        Ok(Self { text: format!("CVE-{year}-{sequence}"), year })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The year part: when the id was reserved, or the vulnerability made public.
    pub fn year(&self) -> i32 {
        self.year
    }
}

impl FromStr for CveId {
    type Err = InvalidCveId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for CveId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for CveId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for CveId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ids_of_the_cve_syntax() {
        for (input, canonical) in [
            ("CVE-1999-0001", "CVE-1999-0001"),
            ("CVE-2014-0160", "CVE-2014-0160"),
            ("CVE-2021-44228", "CVE-2021-44228"),
            ("CVE-2024-1234567", "CVE-2024-1234567"),
            ("cve-2024-3094", "CVE-2024-3094"),
            (" CVE-2024-3094\n", "CVE-2024-3094"),
            ("CVE-2024-1000000000000000000", "CVE-2024-1000000000000000000"),
        ] {
            let id = CveId::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(id.as_str(), canonical);
            assert_eq!(id.to_string(), canonical);
        }
        assert_eq!(CveId::parse("CVE-2021-44228").map(|id| id.year()), Ok(2021));
    }

    #[test]
    fn refuses_what_the_syntax_does_not_allow() {
        for (input, error) in [
            ("", InvalidCveId::Format),
            ("CVE", InvalidCveId::Format),
            ("CVE-2024", InvalidCveId::Format),
            ("CVE-2024-", InvalidCveId::Format),
            ("CAN-2024-1234", InvalidCveId::Format),
            ("CVE 2024 1234", InvalidCveId::Format),
            ("CVE-24-1234", InvalidCveId::Format),
            ("CVE-02024-1234", InvalidCveId::Format),
            ("CVE-2024-12a4", InvalidCveId::Format),
            ("CVE-2024-+1234", InvalidCveId::Format),
            ("CVE-2024-1234-1", InvalidCveId::Format),
            ("CVE-２０２４-1234", InvalidCveId::Format),
            ("GHSA-2024-1234", InvalidCveId::Format),
            ("CVE-1998-1234", InvalidCveId::YearTooEarly),
            ("CVE-0000-1234", InvalidCveId::YearTooEarly),
            ("CVE-2024-123", InvalidCveId::SequenceTooShort),
            ("CVE-2024-1", InvalidCveId::SequenceTooShort),
            ("CVE-2024-01234", InvalidCveId::LeadingZero),
            ("CVE-2024-00001", InvalidCveId::LeadingZero),
            ("CVE-2024-10000000000000000000", InvalidCveId::SequenceTooLong),
        ] {
            assert_eq!(CveId::parse(input), Err(error), "{input:?}");
        }
    }

    #[test]
    fn serializes_as_the_canonical_string() {
        let id = CveId::parse("cve-2021-44228").expect("valid");
        let json = serde_json::to_string(&id).expect("serializes");
        assert_eq!(json, "\"CVE-2021-44228\"");
        assert_eq!(serde_json::from_str::<CveId>(&json).expect("deserializes"), id);
        assert!(serde_json::from_str::<CveId>("\"CVE-2021-4\"").is_err());
    }
}
