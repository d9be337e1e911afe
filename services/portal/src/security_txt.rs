//! `/.well-known/security.txt` (RFC 9116): how researchers reach the PSIRT.
//! Every field comes from the configuration; `Expires` is computed from a
//! lifetime on every request, so the file never lapses while the portal runs.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;

/// The path RFC 9116 §3 places the file at.
pub const PATH: &str = "/.well-known/security.txt";
/// Where the portal serves the PSIRT's OpenPGP public key, when one is configured.
pub const KEY_PATH: &str = "/pgp-key.txt";
/// RFC 9116 §2.5.5: the lifetime should be less than a year.
pub const MAX_LIFETIME_DAYS: u32 = 365;
/// Most contacts, languages and lines of a field list.
pub const MAX_ENTRIES: usize = 16;
/// Longest URI of a field.
pub const MAX_URI_LEN: usize = 2048;

/// `[portal.security_txt]`: the fields of `security.txt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityTxtSettings {
    /// `Contact`: how to report, most preferred first (RFC 9116 §2.5.3):
    /// `mailto:`, `https:` or `tel:` URIs. At least one (no default: only
    /// the PSIRT knows where it wants reports).
    pub contacts: Vec<String>,
    /// Days from now the `Expires` field names (1..=365).
    pub lifetime_days: u32,
    /// `Encryption`: where the key to encrypt reports to is (an `https:`,
    /// `dns:` or `openpgp4fpr:` URI). Empty: the portal's own
    /// `<public_url>/pgp-key.txt` when `openpgp_key_file` is set, else none.
    pub encryption: String,
    /// An ASCII-armored OpenPGP **public** key, served at `/pgp-key.txt`. A
    /// file holding a secret key is refused. Empty: none.
    pub openpgp_key_file: String,
    /// `Policy`: the disclosure policy (an `https:` URI). Empty: none.
    pub policy: String,
    /// `Acknowledgments`: the page thanking researchers (`https:`). Empty: none.
    pub acknowledgments: String,
    /// `Hiring`: security jobs (`https:`). Empty: none.
    pub hiring: String,
    /// `Preferred-Languages`: language tags (RFC 5646), e.g. `["en", "de"]`.
    pub preferred_languages: Vec<String>,
}

impl Default for SecurityTxtSettings {
    fn default() -> Self {
        Self {
            contacts: Vec::new(),
            lifetime_days: 180,
            encryption: String::new(),
            openpgp_key_file: String::new(),
            policy: String::new(),
            acknowledgments: String::new(),
            hiring: String::new(),
            preferred_languages: vec!["en".to_owned()],
        }
    }
}

/// `security.txt` ready to serve: every field checked once at start.
#[derive(Debug, Clone)]
pub struct SecurityTxt {
    contacts: Vec<String>,
    lifetime: time::Duration,
    encryption: Option<String>,
    policy: Option<String>,
    acknowledgments: Option<String>,
    hiring: Option<String>,
    preferred_languages: Vec<String>,
    canonical: String,
}

/// Whether `uri` is an `https:` URI (web URIs in `security.txt` must be,
/// RFC 9116 §2.3).
fn https(key: &str, uri: &str, problems: &mut Vec<String>) -> Option<String> {
    checked(key, uri, &["https"], problems)
}

/// `uri` parsed and of one of `schemes`, or a problem naming `key`.
fn checked(key: &str, uri: &str, schemes: &[&str], problems: &mut Vec<String>) -> Option<String> {
    if uri.len() > MAX_URI_LEN {
        problems.push(format!("{key} is longer than {MAX_URI_LEN} characters"));
        return None;
    }
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        problems.push(format!("{key} {uri:?} holds white space or a control character"));
        return None;
    }
    match Url::parse(uri) {
        Ok(url) if schemes.contains(&url.scheme()) => Some(url.to_string()),
        Ok(url) => {
            problems.push(format!(
                "{key} {uri:?} is a {}: URI; expected one of {}",
                url.scheme(),
                schemes.join(", ")
            ));
            None
        }
        Err(e) => {
            problems.push(format!("{key} {uri:?} is not a URI: {e}"));
            None
        }
    }
}

/// Whether `tag` looks like a language tag (RFC 5646): letters, digits and
/// hyphens, starting with 2–8 letters.
fn language_tag(tag: &str) -> bool {
    let primary = tag.split('-').next().unwrap_or_default();
    (2..=8).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && tag.len() <= 35
        && tag.split('-').all(|part| {
            !part.is_empty() && part.len() <= 8 && part.chars().all(|c| c.is_ascii_alphanumeric())
        })
}

impl SecurityTxt {
    /// Checks `settings` for a portal reachable at `public_url`; `key_served`
    /// says whether the portal serves a key at [`KEY_PATH`]. Every problem is
    /// listed, each naming its key.
    pub fn new(
        settings: &SecurityTxtSettings,
        public_url: &Url,
        key_served: bool,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let key = "portal.security_txt";
        let own = |path: &str| public_url.join(path).map(|u| u.to_string()).unwrap_or_default();
        if settings.contacts.len() > MAX_ENTRIES {
            problems.push(format!("{key}.contacts: at most {MAX_ENTRIES} entries"));
        }
        let contacts: Vec<String> = settings
            .contacts
            .iter()
            .filter_map(|c| {
                checked(&format!("{key}.contacts"), c, &["mailto", "https", "tel"], &mut problems)
            })
            .collect();
        if settings.contacts.is_empty() {
            problems.push(format!(
                "{key}.contacts: at least one contact is required (RFC 9116 §2.5.3), e.g. \
                 [\"mailto:psirt@example.com\"] (PSIRT_PORTAL__SECURITY_TXT__CONTACTS)"
            ));
        }
        if !(1..=MAX_LIFETIME_DAYS).contains(&settings.lifetime_days) {
            problems.push(format!(
                "{key}.lifetime_days must be 1..={MAX_LIFETIME_DAYS} (RFC 9116: less than a year), not {}",
                settings.lifetime_days
            ));
        }
        let encryption = if !settings.encryption.is_empty() {
            checked(
                &format!("{key}.encryption"),
                &settings.encryption,
                &["https", "dns", "openpgp4fpr"],
                &mut problems,
            )
        } else if key_served {
            Some(own(KEY_PATH.trim_start_matches('/')))
        } else {
            None
        };
        let optional = |field: &str, value: &str, problems: &mut Vec<String>| {
            if value.is_empty() { None } else { https(&format!("{key}.{field}"), value, problems) }
        };
        let policy = optional("policy", &settings.policy, &mut problems);
        let acknowledgments = optional("acknowledgments", &settings.acknowledgments, &mut problems);
        let hiring = optional("hiring", &settings.hiring, &mut problems);
        if settings.preferred_languages.len() > MAX_ENTRIES {
            problems.push(format!("{key}.preferred_languages: at most {MAX_ENTRIES} entries"));
        }
        for tag in &settings.preferred_languages {
            if !language_tag(tag) {
                problems.push(format!("{key}.preferred_languages: {tag:?} is not a language tag (RFC 5646)"));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            contacts,
            lifetime: time::Duration::days(i64::from(settings.lifetime_days)),
            encryption,
            policy,
            acknowledgments,
            hiring,
            preferred_languages: settings.preferred_languages.clone(),
            canonical: own(PATH.trim_start_matches('/')),
        })
    }

    /// The file as of `now`: `Expires` is `now` plus the lifetime, to the second.
    pub fn render(&self, now: OffsetDateTime) -> String {
        let expires = (now + self.lifetime).replace_nanosecond(0).unwrap_or(now + self.lifetime);
        let expires = expires.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_default();
        let mut out = String::new();
        let mut field = |name: &str, value: &str| {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push('\n');
        };
        for contact in &self.contacts {
            field("Contact", contact);
        }
        field("Expires", &expires);
        if let Some(encryption) = &self.encryption {
            field("Encryption", encryption);
        }
        if let Some(acknowledgments) = &self.acknowledgments {
            field("Acknowledgments", acknowledgments);
        }
        if !self.preferred_languages.is_empty() {
            field("Preferred-Languages", &self.preferred_languages.join(", "));
        }
        field("Canonical", &self.canonical);
        if let Some(policy) = &self.policy {
            field("Policy", policy);
        }
        if let Some(hiring) = &self.hiring {
            field("Hiring", hiring);
        }
        out
    }
}

/// Reads and checks the PSIRT's public key: it must parse as an OpenPGP
/// public key, and a secret key is refused (the portal is public: a
/// misplaced secret key would be published).
pub fn load_public_key(path: &std::path::Path) -> Result<String, String> {
    use pgp::composed::{Deserializable as _, SignedPublicKey};
    let armored = std::fs::read_to_string(path)
        .map_err(|e| format!("portal.security_txt.openpgp_key_file {}: {e}", path.display()))?;
    if armored.contains("PRIVATE KEY BLOCK") {
        return Err(format!(
            "portal.security_txt.openpgp_key_file {} holds a secret key; the portal publishes this file: \
             give it the public key only (gpg --armor --export)",
            path.display()
        ));
    }
    let (key, _) = SignedPublicKey::from_string(&armored).map_err(|e| {
        format!(
            "portal.security_txt.openpgp_key_file {} is not an armored OpenPGP public key: {e}",
            path.display()
        )
    })?;
    key.verify_bindings().map_err(|e| {
        format!(
            "portal.security_txt.openpgp_key_file {}: the key's self-signatures do not verify: {e}",
            path.display()
        )
    })?;
    Ok(armored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public() -> Url {
        Url::parse("https://psirt.example.com/").expect("url")
    }

    #[test]
    fn the_file_has_every_configured_field_and_expires_after_its_lifetime() {
        let settings = SecurityTxtSettings {
            contacts: vec!["mailto:psirt@example.com".to_owned(), "https://example.com/report".to_owned()],
            lifetime_days: 30,
            policy: "https://example.com/policy".to_owned(),
            acknowledgments: "https://example.com/thanks".to_owned(),
            hiring: "https://example.com/jobs".to_owned(),
            preferred_languages: vec!["en".to_owned(), "de-CH".to_owned()],
            ..SecurityTxtSettings::default()
        };
        let file = SecurityTxt::new(&settings, &public(), true).expect("valid");
        let now = time::macros::datetime!(2026-12-07 10:11:12.5 UTC);
        let text = file.render(now);
        assert_eq!(
            text,
            "Contact: mailto:psirt@example.com\n\
             Contact: https://example.com/report\n\
             Expires: 2027-01-06T10:11:12Z\n\
             Encryption: https://psirt.example.com/pgp-key.txt\n\
             Acknowledgments: https://example.com/thanks\n\
             Preferred-Languages: en, de-CH\n\
             Canonical: https://psirt.example.com/.well-known/security.txt\n\
             Policy: https://example.com/policy\n\
             Hiring: https://example.com/jobs\n"
        );
    }

    fn contact() -> SecurityTxtSettings {
        SecurityTxtSettings {
            contacts: vec!["mailto:psirt@example.com".to_owned()],
            ..SecurityTxtSettings::default()
        }
    }

    #[test]
    fn without_a_contact_the_file_is_refused_and_without_a_key_there_is_no_encryption() {
        let problems =
            SecurityTxt::new(&SecurityTxtSettings::default(), &public(), false).expect_err("no contact");
        assert!(problems[0].contains("at least one contact is required"), "{problems:?}");
        let text =
            SecurityTxt::new(&contact(), &public(), false).expect("valid").render(OffsetDateTime::now_utc());
        assert!(text.starts_with("Contact: mailto:psirt@example.com\n"), "{text}");
        assert!(!text.contains("Encryption:"), "{text}");
    }

    #[test]
    fn every_bad_field_is_named() {
        let settings = SecurityTxtSettings {
            contacts: vec!["http://example.com/report".to_owned(), "not a uri".to_owned()],
            lifetime_days: 400,
            encryption: "ftp://example.com/key".to_owned(),
            policy: "http://example.com/policy".to_owned(),
            preferred_languages: vec!["english!".to_owned()],
            ..SecurityTxtSettings::default()
        };
        let problems = SecurityTxt::new(&settings, &public(), false).expect_err("invalid");
        let all = problems.join("\n");
        for expected in [
            "contacts \"http://example.com/report\" is a http: URI",
            "contacts \"not a uri\" holds white space",
            "lifetime_days must be 1..=365",
            "encryption \"ftp://example.com/key\" is a ftp: URI",
            "policy \"http://example.com/policy\" is a http: URI",
            "\"english!\" is not a language tag",
        ] {
            assert!(all.contains(expected), "{expected:?} missing from:\n{all}");
        }
        assert_eq!(problems.len(), 6, "{all}");
    }

    #[test]
    fn a_lifetime_of_zero_days_is_refused() {
        let settings = SecurityTxtSettings { lifetime_days: 0, ..contact() };
        let problems = SecurityTxt::new(&settings, &public(), false).expect_err("zero days");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("lifetime_days must be 1..=365"), "{problems:?}");
    }

    proptest::proptest! {
        /// Whatever the clock says, the file names exactly one Expires, in
        /// the future, less than a year ahead, and no field value breaks a
        /// line.
        #[test]
        fn expires_is_always_in_the_future_and_within_a_year(
            seconds in 0i64..4_102_444_800,
            days in 1u32..=MAX_LIFETIME_DAYS,
        ) {
            let now = OffsetDateTime::from_unix_timestamp(seconds).expect("in range");
            let settings = SecurityTxtSettings { lifetime_days: days, ..contact() };
            let text = SecurityTxt::new(&settings, &public(), false).expect("valid").render(now);
            let expires: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("Expires: ")).collect();
            proptest::prop_assert_eq!(expires.len(), 1);
            let at = OffsetDateTime::parse(expires[0], &Rfc3339).expect("RFC 3339");
            proptest::prop_assert!(at > now);
            proptest::prop_assert!(at - now <= time::Duration::days(365));
            for line in text.lines() {
                proptest::prop_assert!(line.contains(": "), "{}", line);
            }
        }

        /// A configured contact either is refused or comes out as one
        /// `Contact:` line: configuration never injects another field.
        #[test]
        fn a_contact_never_injects_a_field(contact in "\\PC{0,80}") {
            let settings = SecurityTxtSettings { contacts: vec![contact], ..SecurityTxtSettings::default() };
            if let Ok(file) = SecurityTxt::new(&settings, &public(), false) {
                let text = file.render(OffsetDateTime::now_utc());
                proptest::prop_assert_eq!(text.lines().filter(|l| l.starts_with("Contact: ")).count(), 1);
                proptest::prop_assert_eq!(text.lines().filter(|l| l.starts_with("Expires: ")).count(), 1);
            }
        }
    }
}
