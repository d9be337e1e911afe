//! The human-facing case key, `PSIRT-2026-0001`: what people quote in e-mails,
//! tickets and advisories. Only the canonical spelling parses, so two equal
//! keys are always the same string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The fixed prefix of every case key.
pub const CASE_KEY_PREFIX: &str = "PSIRT";
/// The sequence is zero-padded to at least this many digits.
pub const CASE_KEY_MIN_SEQUENCE_DIGITS: usize = 4;
/// The longest canonical key, `PSIRT-9999-4294967295`: nothing longer parses.
pub const MAX_CASE_KEY_CHARS: usize = 21;

/// `PSIRT-<year>-<sequence>`: the sequence restarts every year, starts at 1
/// and grows past 9999 with more digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaseKey {
    // Field order gives the chronological ordering.
    year: u16,
    sequence: u32,
}

/// Why a case key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseKeyError {
    #[error("case key {input:?} is not of the form PSIRT-YYYY-NNNN")]
    Malformed { input: String },
    #[error("case key year {year} is not a four-digit year")]
    Year { year: u32 },
    #[error("case key sequence starts at 1")]
    ZeroSequence,
    /// `PSIRT-2026-1` or `PSIRT-2026-00012`: the same case must have one spelling.
    #[error(
        "case key {input:?} is not zero-padded to exactly {CASE_KEY_MIN_SEQUENCE_DIGITS} digits or its natural length"
    )]
    NotCanonical { input: String },
    #[error("case key sequence in {input:?} is too large")]
    SequenceTooLarge { input: String },
}

impl CaseKey {
    pub fn new(year: u16, sequence: u32) -> Result<Self, CaseKeyError> {
        if !(1000..=9999).contains(&year) {
            return Err(CaseKeyError::Year { year: year.into() });
        }
        if sequence == 0 {
            return Err(CaseKeyError::ZeroSequence);
        }
        Ok(Self { year, sequence })
    }

    pub const fn year(&self) -> u16 {
        self.year
    }

    pub const fn sequence(&self) -> u32 {
        self.sequence
    }
}

impl fmt::Display for CaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{CASE_KEY_PREFIX}-{}-{:0width$}",
            self.year,
            self.sequence,
            width = CASE_KEY_MIN_SEQUENCE_DIGITS
        )
    }
}

impl FromStr for CaseKey {
    type Err = CaseKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || CaseKeyError::Malformed { input: s.to_owned() };
        let mut parts = s.split('-');
        let (Some(prefix), Some(year), Some(sequence), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if prefix != CASE_KEY_PREFIX || year.len() != 4 || !all_digits(year) || !all_digits(sequence) {
            return Err(malformed());
        }
        let year: u16 = year.parse().map_err(|_| malformed())?;
        let seq: u32 =
            sequence.parse().map_err(|_| CaseKeyError::SequenceTooLarge { input: s.to_owned() })?;
        let key = Self::new(year, seq)?;
        if key.to_string() != s {
            return Err(CaseKeyError::NotCanonical { input: s.to_owned() });
        }
        Ok(key)
    }
}

impl Serialize for CaseKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CaseKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(year: u16, seq: u32) -> CaseKey {
        CaseKey::new(year, seq).expect("valid key")
    }

    #[test]
    fn formats_with_four_digit_padding() {
        assert_eq!(key(2026, 1).to_string(), "PSIRT-2026-0001");
        assert_eq!(key(2026, 42).to_string(), "PSIRT-2026-0042");
        assert_eq!(key(2026, 9999).to_string(), "PSIRT-2026-9999");
    }

    #[test]
    fn grows_past_9999_with_more_digits() {
        assert_eq!(key(2026, 10000).to_string(), "PSIRT-2026-10000");
        assert_eq!(key(2026, u32::MAX).to_string(), "PSIRT-2026-4294967295");
        assert_eq!(key(9999, u32::MAX).to_string().len(), MAX_CASE_KEY_CHARS);
        assert_eq!("PSIRT-2026-10000".parse(), Ok(key(2026, 10000)));
    }

    #[test]
    fn parses_what_it_formats() {
        for k in [key(1999, 1), key(2026, 7), key(2026, 123_456), key(9999, 9999)] {
            assert_eq!(k.to_string().parse::<CaseKey>(), Ok(k));
        }
    }

    #[test]
    fn new_refuses_sequence_zero_and_odd_years() {
        assert_eq!(CaseKey::new(2026, 0), Err(CaseKeyError::ZeroSequence));
        assert_eq!(CaseKey::new(999, 1), Err(CaseKeyError::Year { year: 999 }));
        assert_eq!(CaseKey::new(10000, 1), Err(CaseKeyError::Year { year: 10000 }));
    }

    #[test]
    fn refuses_non_canonical_spellings() {
        for input in ["PSIRT-2026-1", "PSIRT-2026-001", "PSIRT-2026-00001", "PSIRT-2026-012345"] {
            assert!(matches!(input.parse::<CaseKey>(), Err(CaseKeyError::NotCanonical { .. })), "{input}");
        }
    }

    #[test]
    fn refuses_malformed_keys() {
        for input in [
            "",
            "PSIRT",
            "PSIRT-2026",
            "PSIRT-2026-",
            "psirt-2026-0001",
            "CSIRT-2026-0001",
            "PSIRT-26-0001",
            "PSIRT-02026-0001",
            "PSIRT-2026-0001-1",
            "PSIRT-2026-+001",
            "PSIRT-2026- 001",
            " PSIRT-2026-0001",
            "PSIRT-2026-0001 ",
            "PSIRT_2026_0001",
            "PSIRT-2026-００01",
        ] {
            assert!(matches!(input.parse::<CaseKey>(), Err(CaseKeyError::Malformed { .. })), "{input:?}");
        }
    }

    #[test]
    fn refuses_zero_sequence_and_overflow() {
        assert_eq!("PSIRT-2026-0000".parse::<CaseKey>(), Err(CaseKeyError::ZeroSequence));
        assert!(matches!(
            "PSIRT-2026-99999999999".parse::<CaseKey>(),
            Err(CaseKeyError::SequenceTooLarge { .. })
        ));
        assert_eq!("PSIRT-0999-0001".parse::<CaseKey>(), Err(CaseKeyError::Year { year: 999 }));
    }

    #[test]
    fn orders_by_year_then_sequence() {
        assert!(key(2025, 9999) < key(2026, 1));
        assert!(key(2026, 2) < key(2026, 10));
    }

    #[test]
    fn serializes_as_the_key_string() {
        let json = serde_json::to_string(&key(2026, 1)).expect("serializes");
        assert_eq!(json, "\"PSIRT-2026-0001\"");
        assert_eq!(serde_json::from_str::<CaseKey>(&json).expect("deserializes"), key(2026, 1));
        assert!(serde_json::from_str::<CaseKey>("\"PSIRT-2026-1\"").is_err());
    }
}
