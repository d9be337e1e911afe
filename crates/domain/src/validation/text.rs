//! Which characters text fields take, and the one rule type ([`Text`]) every
//! text limit of every request is stated in.
//!
//! Two character classes:
//!
//! - [`single_line_text`] for titles, names, products, versions, references:
//!   no control character at all (C0, DEL, C1: so no tab and no line break,
//!   U+2028 and U+2029 included), no bidirectional embedding, override or
//!   isolate (U+202A–U+202E, U+2066–U+2069), and no invisible character that
//!   makes two different strings look alike (zero-width space U+200B, word
//!   joiner and invisible operators U+2060–U+2064, the deprecated format
//!   characters U+206A–U+206F, the byte order mark U+FEFF, soft hyphen U+00AD,
//!   interlinear annotations U+FFF9–U+FFFB).
//! - [`multi_line_text`] for descriptions, messages, notes, reasons: line feed,
//!   carriage return and tab are kept; the other C0 and C1 controls and the
//!   bidirectional embeddings, overrides and isolates are refused. Zero-width
//!   characters are kept: pasted text carries them, and in a body of text they
//!   can neither reorder nor disguise what a reader sees as a name.
//!
//! Kept on purpose in both: the zero-width joiner and non-joiner (U+200D,
//! U+200C: emoji sequences, Persian and Indic scripts), the directional marks
//! (U+200E, U+200F, U+061C: they set the direction of neutral characters and
//! cannot reorder a run the way an override can), variation selectors and
//! tag characters (emoji presentation, subdivision flags).

use super::FieldViolation;

/// Whether a text may span lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// [`single_line_text`].
    Single,
    /// [`multi_line_text`].
    Multi,
}

/// What a text limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Unicode scalar values (`str::chars`).
    Chars,
    /// Bytes of UTF-8.
    Bytes,
}

/// One text rule: `min..=max` `unit`s after trimming white space at both
/// ends, of the character class `lines`. `min` 0: blank is allowed (and
/// means "not given").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    pub min: usize,
    pub max: usize,
    pub unit: Unit,
    pub lines: Lines,
}

impl Text {
    /// Single-line text of `min..=max` characters.
    pub const fn line(min: usize, max: usize) -> Self {
        Self { min, max, unit: Unit::Chars, lines: Lines::Single }
    }

    /// Multi-line text of `min..=max` characters.
    pub const fn block_chars(min: usize, max: usize) -> Self {
        Self { min, max, unit: Unit::Chars, lines: Lines::Multi }
    }

    /// Multi-line text of `min..=max` bytes.
    pub const fn block_bytes(min: usize, max: usize) -> Self {
        Self { min, max, unit: Unit::Bytes, lines: Lines::Multi }
    }

    /// Optional free text: notes, rationales, statements.
    pub const FREE: Self = Self::block_bytes(0, super::MAX_TEXT_BYTES);
    /// Required free text: message bodies, reasons.
    pub const FREE_REQUIRED: Self = Self::block_bytes(1, super::MAX_TEXT_BYTES);
    /// A person's or team's name.
    pub const NAME: Self = Self::line(1, super::MAX_NAME_CHARS);
    /// An optional name.
    pub const OPTIONAL_NAME: Self = Self::line(0, super::MAX_NAME_CHARS);

    /// The same rule with another minimum.
    pub const fn with_min(self, min: usize) -> Self {
        Self { min, ..self }
    }

    /// The length of `value` in this rule's unit.
    pub fn length(&self, value: &str) -> usize {
        match self.unit {
            Unit::Chars => value.chars().count(),
            Unit::Bytes => value.len(),
        }
    }

    /// What is wrong with `value`, to follow the field's name: "must not be
    /// empty", "must be at most 200 characters", "must not contain U+202E (a
    /// bidirectional override)". Blank is empty; characters are counted
    /// after trimming (names are stored trimmed), bytes as sent (free text is
    /// stored as written).
    pub fn problem(&self, value: &str) -> Option<String> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return (self.min > 0).then(|| "must not be empty".to_owned());
        }
        let (unit, length) = match self.unit {
            Unit::Chars => ("characters", self.length(trimmed)),
            Unit::Bytes => ("bytes", self.length(value)),
        };
        let value = trimmed;
        if length > self.max {
            return Some(format!("must be at most {} {unit}", self.max));
        }
        if length < self.min {
            return Some(format!("must be at least {} {unit}", self.min));
        }
        match self.lines {
            Lines::Single => single_line_text(value),
            Lines::Multi => multi_line_text(value),
        }
        .err()
    }

    /// Pushes a violation of `field` if `value` breaks the rule; whether it did.
    pub fn check(&self, violations: &mut Vec<FieldViolation>, field: &str, value: &str) -> bool {
        match self.problem(value) {
            Some(problem) => {
                violations.push(FieldViolation::new(field, format!("{field} {problem}")));
                false
            }
            None => true,
        }
    }
}

/// Why a character is refused, if it is: the class's name.
fn refused_anywhere(c: char) -> Option<&'static str> {
    match c {
        '\u{202A}'..='\u{202E}' => Some("a bidirectional embedding or override"),
        '\u{2066}'..='\u{2069}' => Some("a bidirectional isolate"),
        _ if c.is_control() && !matches!(c, '\n' | '\r' | '\t') => Some("a control character"),
        _ => None,
    }
}

/// Titles, names, short fields: see the module documentation for what is refused.
/// The error completes "<field> ...".
pub fn single_line_text(value: &str) -> Result<(), String> {
    for c in value.chars() {
        let why = refused_anywhere(c).or(match c {
            '\n' | '\r' | '\t' | '\u{2028}' | '\u{2029}' => Some("a line break or tab"),
            '\u{200B}' | '\u{2060}'..='\u{2064}' | '\u{206A}'..='\u{206F}' | '\u{FEFF}' | '\u{00AD}' => {
                Some("an invisible character")
            }
            '\u{FFF9}'..='\u{FFFB}' => Some("an interlinear annotation character"),
            _ => None,
        });
        if let Some(why) = why {
            return Err(format!("must not contain U+{:04X} ({why})", u32::from(c)));
        }
    }
    Ok(())
}

/// Descriptions, messages, notes: line feed, carriage return and tab are
/// kept; see the module documentation for what is refused. The error
/// completes "<field> ...".
pub fn multi_line_text(value: &str) -> Result<(), String> {
    match value.chars().find_map(|c| refused_anywhere(c).map(|why| (c, why))) {
        Some((c, why)) => Err(format!("must not contain U+{:04X} ({why})", u32::from(c))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Characters neither class may hold.
    fn refused_everywhere() -> impl Strategy<Value = char> {
        prop_oneof![
            (0u32..0x20).prop_filter("not LF CR TAB", |c| ![0x0A, 0x0D, 0x09].contains(c)),
            Just(0x7F),
            0x80u32..0xA0,
            0x202Au32..=0x202E,
            0x2066u32..=0x2069,
        ]
        .prop_map(|c| char::from_u32(c).expect("scalar"))
    }

    /// Characters only single-line text refuses.
    fn refused_in_a_line() -> impl Strategy<Value = char> {
        proptest::sample::select(vec![
            '\n', '\r', '\t', '\u{2028}', '\u{2029}', '\u{200B}', '\u{2060}', '\u{FEFF}', '\u{00AD}',
            '\u{FFF9}',
        ])
    }

    fn is_refused_everywhere(c: char) -> bool {
        (c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
            || ('\u{202A}'..='\u{202E}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    }

    #[test]
    fn legitimate_unicode_is_accepted() {
        for text in [
            "Déjà vu in the Zürich façade",
            "认证绕过 in 管理界面",
            "ログイン画面のXSS",
            "Ошибка проверки подписи",
            "خطأ في التحقق", // Arabic, right to left by itself
            "👨\u{200D}👩\u{200D}👧 family emoji, ☃ snowman, 🏳️\u{200D}🌈",
            "नमस्ते",            // Devanagari with combining marks
            "می\u{200C}خواهم", // Persian with a zero-width non-joiner
            "mixed \u{200F}RTL mark",
        ] {
            assert_eq!(single_line_text(text), Ok(()), "{text}");
            assert_eq!(multi_line_text(text), Ok(()), "{text}");
        }
        assert_eq!(multi_line_text("line one\r\nline two\n\tindented"), Ok(()));
    }

    #[test]
    fn the_reported_characters_are_refused() {
        for c in ['\u{0}', '\u{202E}', '\u{2066}', '\u{1B}', '\u{85}', '\u{7F}'] {
            let text = format!("title{c}evil");
            assert!(single_line_text(&text).is_err(), "{c:?}");
            assert!(multi_line_text(&text).is_err(), "{c:?}");
        }
        let problem = single_line_text("a\u{202E}b").unwrap_err();
        assert_eq!(problem, "must not contain U+202E (a bidirectional embedding or override)");
        assert!(single_line_text("two\nlines").is_err());
        assert!(single_line_text("zero\u{200B}width").is_err());
    }

    #[test]
    fn text_rules_count_in_their_unit_after_trimming() {
        let rule = Text::line(1, 3);
        assert_eq!(rule.problem("  äöü  "), None);
        assert_eq!(rule.problem("äöüß").as_deref(), Some("must be at most 3 characters"));
        assert_eq!(rule.problem("  ").as_deref(), Some("must not be empty"));
        assert_eq!(Text::line(0, 3).problem(""), None);
        let bytes = Text::block_bytes(0, 3);
        assert_eq!(bytes.problem("abc"), None);
        assert_eq!(bytes.problem("äb"), None);
        assert_eq!(bytes.problem("äbc").as_deref(), Some("must be at most 3 bytes"));
        assert_eq!(bytes.problem("abc ").as_deref(), Some("must be at most 3 bytes"), "bytes as sent");
        let mut violations = Vec::new();
        assert!(!Text::NAME.check(&mut violations, "assignee", "a\u{0}b"));
        assert_eq!(violations[0].field, "assignee");
        assert!(violations[0].description.starts_with("assignee must not contain U+0000"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever single-line text accepts holds none of the refused
        /// characters; whatever multi-line text accepts holds none of the
        /// characters refused everywhere.
        #[test]
        fn accepted_text_never_holds_refused_characters(text in "\\PC{0,40}|[\\x00-\\x{FFFF}]{0,40}") {
            let line_breaks = ['\n', '\r', '\t', '\u{2028}', '\u{2029}', '\u{200B}', '\u{FEFF}'];
            if single_line_text(&text).is_ok() {
                let clean = !text.chars().any(|c| is_refused_everywhere(c) || line_breaks.contains(&c));
                prop_assert!(clean, "single line accepted {:?}", text);
            }
            if multi_line_text(&text).is_ok() {
                let clean = !text.chars().any(is_refused_everywhere);
                prop_assert!(clean, "multi-line accepted {:?}", text);
            }
        }

        /// One refused character anywhere in otherwise fine text is enough.
        #[test]
        fn one_refused_character_is_enough(
            before in "[\\p{L}\\p{N} .,!?()-]{0,20}",
            after in "[\\p{L}\\p{N} .,!?()-]{0,20}",
            bad in refused_everywhere(),
            line_bad in refused_in_a_line(),
        ) {
            let with_bad = format!("{before}{bad}{after}");
            let with_line_bad = format!("{before}{line_bad}{after}");
            prop_assert!(single_line_text(&with_bad).is_err(), "{:?}", with_bad);
            prop_assert!(multi_line_text(&with_bad).is_err(), "{:?}", with_bad);
            prop_assert!(single_line_text(&with_line_bad).is_err(), "{:?}", with_line_bad);
        }

        /// Letters, marks, numbers, punctuation, symbols (accents, CJK,
        /// emoji) and plain spaces are accepted by both classes.
        #[test]
        fn letters_numbers_symbols_and_emoji_are_accepted(
            text in "[\\p{L}\\p{M}\\p{N}\\p{P}\\p{S} ]{0,60}"
        ) {
            prop_assert_eq!(single_line_text(&text), Ok(()));
            prop_assert_eq!(multi_line_text(&text), Ok(()));
        }
    }
}
