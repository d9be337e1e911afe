//! Hints for spotting duplicate reports: the same vulnerability reported
//! twice under slightly different words. Keys only flag a likely duplicate
//! for a human; nothing is merged or dropped on their account.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use time::Duration;

/// Reports with the same key received within this window are flagged.
pub const DUPLICATE_WINDOW: Duration = Duration::days(30);

/// Lowercases, turns punctuation and symbols into spaces, collapses
/// whitespace: "SQL-Injection in Login!" and "sql injection  in login" match.
///
/// Combining marks are kept with their letter, so a decomposed "é" does not
/// split its word in two.
pub fn normalise_title(title: &str) -> String {
    // One pass: a run of separators becomes one space, and none is kept at
    // either end (the same as splitting on white space and joining).
    let mut out = String::with_capacity(title.len());
    let mut pending_space = false;
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || is_combining_mark(c) {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        } else {
            pending_space = true;
        }
    }
    out
}

/// One key per distinct normalised product (sorted, so the order products
/// were listed in does not matter): the lowercase hex SHA-256 of
/// `normalised title + U+001F + normalised product`. The unit separator
/// cannot survive normalisation, so title and product never run together.
///
/// A report naming no product gets one key for its title alone; a title
/// that normalises to nothing gets no key, since it would match every other.
pub fn dedup_keys<S: AsRef<str>>(title: &str, products: &[S]) -> Vec<String> {
    let title = normalise_title(title);
    if title.is_empty() {
        return Vec::new();
    }
    let mut products: BTreeSet<String> =
        products.iter().map(|p| normalise_title(p.as_ref())).filter(|p| !p.is_empty()).collect();
    if products.is_empty() {
        products.insert(String::new());
    }
    products
        .iter()
        .map(|product| {
            let digest = Sha256::new()
                .chain_update(title.as_bytes())
                .chain_update("\u{1f}".as_bytes())
                .chain_update(product.as_bytes())
                .finalize();
            lower_hex(&digest)
        })
        .collect()
}

fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The combining diacritical blocks: enough for the Latin, Greek and
/// Cyrillic titles reporters send (no Unicode tables in the domain).
fn is_combining_mark(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036f}'
            | '\u{1ab0}'..='\u{1aff}'
            | '\u{1dc0}'..='\u{1dff}'
            | '\u{20d0}'..='\u{20ff}'
            | '\u{fe20}'..='\u{fe2f}'
            | '\u{3099}'..='\u{309a}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_punctuation_and_whitespace() {
        for (input, expected) in [
            ("SQL-Injection in Login!", "sql injection in login"),
            ("  sql   injection\tin\nlogin  ", "sql injection in login"),
            ("XSS (reflected) via ?q=<script>", "xss reflected via q script"),
            ("RCE: CVE-2024-3094 / xz-utils", "rce cve 2024 3094 xz utils"),
            ("use_after_free in foo::bar()", "use after free in foo bar"),
            ("Ünïcode ÉLAN", "ünïcode élan"),
            ("Cafe\u{301} au lait", "cafe\u{301} au lait"),
            ("ΣΊΣΥΦΟΣ", "σίσυφοσ"),
            ("ログイン画面の「XSS」脆弱性、再現手順", "ログイン画面の xss 脆弱性 再現手順"),
            ("!!!", ""),
            ("", ""),
        ] {
            assert_eq!(normalise_title(input), expected, "{input:?}");
        }
    }

    #[test]
    fn keys_match_for_equivalent_titles_and_products() {
        let a = dedup_keys("SQL injection in Login", &["Portal 2.0"]);
        let b = dedup_keys("sql-injection in login!!", &["portal  2.0 "]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].len(), 64);
        assert!(a[0].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn keys_are_stable() {
        // Stored hints depend on this: a change here orphans them.
        let expected: String = Sha256::digest("xss in search\u{1f}portal".as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(dedup_keys("XSS in search", &["Portal"]), vec![expected]);
    }

    #[test]
    fn one_key_per_distinct_product_in_a_stable_order() {
        let keys = dedup_keys("XSS in search", &["Portal", "Gateway", "PORTAL", "  "]);
        assert_eq!(keys.len(), 2);
        assert_eq!(keys, dedup_keys("xss in search", &["gateway", "portal"]));
        assert_ne!(keys[0], keys[1]);
    }

    #[test]
    fn different_titles_or_products_give_different_keys() {
        let base = dedup_keys("XSS in search", &["Portal"]);
        assert_ne!(base, dedup_keys("XSS in login", &["Portal"]));
        assert_ne!(base, dedup_keys("XSS in search", &["Gateway"]));
        // The separator keeps title and product apart.
        assert_ne!(dedup_keys("a b", &["c"]), dedup_keys("a", &["b c"]));
    }

    #[test]
    fn no_products_gives_a_title_key_and_no_title_gives_none() {
        let none: [&str; 0] = [];
        assert_eq!(dedup_keys("XSS in search", &none).len(), 1);
        assert_eq!(dedup_keys("XSS in search", &none), dedup_keys("XSS in search", &[""]));
        assert!(dedup_keys("?!", &["Portal"]).is_empty());
    }

    #[test]
    fn window_is_thirty_days() {
        assert_eq!(DUPLICATE_WINDOW.whole_days(), 30);
    }
}
