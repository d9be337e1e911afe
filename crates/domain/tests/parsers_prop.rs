//! Properties of the domain's parsers of outside input besides CVSS vectors
//! (tests/cvss_prop.rs): e-mail addresses and recipient lists, CVE ids, case
//! keys, entity ids, SLA durations, advisory versions, SSVC values and
//! severity names, and a submitted report as a whole. Arbitrary text never
//! panics and is refused with a typed error or accepted in a form that
//! satisfies the documented rules;
//! generated well-formed input is accepted (and reads back where the type
//! renders); small corruptions are refused.

use proptest::prelude::*;
use psirt_domain::notification::{MAX_EMAIL_RECIPIENTS, check_email_recipients, email_recipients};
use psirt_domain::sla::MAX_SLA_DAYS;
use psirt_domain::validation::{
    MAX_AFFECTED_PRODUCTS, MAX_EMAIL_LEN, MAX_EMAIL_LOCAL_PART_LEN, check_request_id, multi_line_text,
    single_line_text,
};
use psirt_domain::{
    AdvisoryVersion, CaseId, CaseKey, CaseKeyError, Channel, CveId, CvssSeverity, CvssVector, Exploitation,
    InvalidCveId, InvalidIdReason, ReportId, Reporter, SlaDuration, SlaDurationError, SsvcDecision,
    SubmitReport, Utility, check_email, validate_submission,
};
use time::OffsetDateTime;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

// --- e-mail addresses --------------------------------------------------------

/// RFC 5322 `atext`, what an unquoted local part is made of, 1 to 12 of them.
const ATOM: &str = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}";

/// A dot-atom local part of at most 64 bytes.
fn local_part() -> impl Strategy<Value = String> {
    proptest::collection::vec(ATOM, 1..5)
        .prop_map(|atoms| atoms.join("."))
        .prop_filter("at most 64 bytes", |l| l.len() <= MAX_EMAIL_LOCAL_PART_LEN)
}

/// A DNS name of two to four labels.
fn domain() -> impl Strategy<Value = String> {
    proptest::collection::vec("[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?", 2..5).prop_map(|l| l.join("."))
}

fn address() -> impl Strategy<Value = String> {
    (local_part(), domain()).prop_map(|(local, domain)| format!("{local}@{domain}"))
}

/// What every accepted address must satisfy (validation.rs's rules).
fn check_accepted_address(email: &str) -> Result<(), TestCaseError> {
    prop_assert!(email.len() <= MAX_EMAIL_LEN);
    prop_assert!(!email.chars().any(|c| c.is_whitespace() || c.is_control()));
    prop_assert_eq!(email.matches('@').count(), 1);
    let (local, domain) = email.split_once('@').expect("one @");
    prop_assert!((1..=MAX_EMAIL_LOCAL_PART_LEN).contains(&local.len()));
    prop_assert!(!local.starts_with('.') && !local.ends_with('.') && !local.contains(".."));
    prop_assert!(!local.chars().any(|c| "()<>[]:;,\\\"".contains(c)));
    let labels: Vec<&str> = domain.split('.').collect();
    prop_assert!(labels.len() >= 2);
    for label in labels {
        prop_assert!((1..=63).contains(&label.len()), "{label:?}");
        prop_assert!(!label.starts_with('-') && !label.ends_with('-'));
        prop_assert!(label.chars().all(|c| c.is_alphanumeric() || c == '-'));
    }
    Ok(())
}

fn email_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("@".to_owned()),
        Just(".".to_owned()),
        Just("-".to_owned()),
        "[a-z0-9]{1,8}",
        "[ \t\"(),:;<>\\[\\]\\\\]",
        "\\PC",
    ];
    proptest::collection::vec(piece, 0..20).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_email_address_is_refused_or_well_formed(email in prop_oneof!["\\PC{0,300}", email_like()]) {
        if check_email(&email).is_ok() {
            check_accepted_address(&email)?;
        }
    }

    #[test]
    fn well_formed_addresses_are_accepted(email in address()) {
        prop_assert_eq!(check_email(&email), Ok(()), "{}", email);
    }

    /// Space or a control character anywhere, a second @, a dot at an end
    /// of the local part or the domain, or a domain without a dot: refused.
    #[test]
    fn corrupted_addresses_are_refused(
        local in local_part(),
        domain in domain(),
        at in any::<proptest::sample::Index>(),
        bad in proptest::sample::select(vec![" ", "\t", "\r\n", "\u{0}", "\u{85}", "\u{2028}", "@", "\"", ","]),
        corruption in 0..5u8,
    ) {
        let email = format!("{local}@{domain}");
        let broken = match corruption {
            0 => {
                let i = at.index(email.len() + 1);
                format!("{}{bad}{}", &email[..i], &email[i..])
            }
            1 => format!(".{email}"),
            2 => format!("{local}.@{domain}"),
            3 => format!("{email}."),
            _ => format!("{local}@{}", domain.replace('.', "")),
        };
        prop_assert!(check_email(&broken).is_err(), "{:?} accepted", broken);
    }

    #[test]
    fn any_recipient_list_is_refused_or_every_address_is_well_formed(endpoint in prop_oneof![
        "\\PC{0,300}",
        proptest::collection::vec(prop_oneof![address(), email_like()], 0..6).prop_map(|a| a.join(",")),
    ]) {
        if check_email_recipients(&endpoint).is_ok() {
            let recipients: Vec<&str> = email_recipients(&endpoint).collect();
            prop_assert!(!recipients.is_empty() && recipients.len() <= MAX_EMAIL_RECIPIENTS);
            prop_assert_eq!(recipients.len(), endpoint.split(',').count());
            for r in recipients {
                check_accepted_address(r)?;
            }
        }
    }

    /// Lists of well-formed addresses, with blanks around the commas, are
    /// accepted and read back as written; one bad address spoils the list.
    #[test]
    fn recipient_lists_read_back_and_one_bad_address_spoils_them(
        addresses in proptest::collection::vec(address(), 1..6),
        spaces in proptest::collection::vec("[ \t]{0,2}", 12),
        bad in prop_oneof![Just(String::new()), Just("alice".to_owned()), Just("a@b".to_owned()), Just("a b@c.d".to_owned())],
        at in any::<proptest::sample::Index>(),
    ) {
        let endpoint = addresses
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}{a}{}", spaces[2 * i], spaces[2 * i + 1]))
            .collect::<Vec<_>>()
            .join(",");
        prop_assert!(check_email_recipients(&endpoint).is_ok(), "{:?}", endpoint);
        prop_assert_eq!(email_recipients(&endpoint).collect::<Vec<_>>(), addresses.iter().map(String::as_str).collect::<Vec<_>>());

        let mut spoiled = addresses.clone();
        spoiled.insert(at.index(addresses.len() + 1), bad.clone());
        let spoiled = spoiled.join(",");
        prop_assert!(check_email_recipients(&spoiled).is_err(), "{:?} accepted", spoiled);
    }
}

// --- CVE ids -------------------------------------------------------------------

fn cve_sequence() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9]{4}", "[1-9][0-9]{4,18}"]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_cve_id_is_refused_or_canonical(text in prop_oneof![
        "\\PC{0,40}",
        "[cC][vV][eE]-[0-9]{0,5}-[0-9]{0,22}",
        "\\s{0,2}CVE-[0-9-]{0,25}\\s{0,2}",
    ]) {
        if let Ok(id) = CveId::parse(&text) {
            let canonical = id.as_str();
            prop_assert!(canonical.starts_with("CVE-"));
            let (year, sequence) = canonical["CVE-".len()..].split_once('-').expect("two parts");
            prop_assert!(year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit()));
            prop_assert!(year.parse::<i32>().expect("digits") >= 1999);
            prop_assert_eq!(year.parse::<i32>().expect("digits"), id.year());
            prop_assert!((4..=19).contains(&sequence.len()) && sequence.bytes().all(|b| b.is_ascii_digit()));
            prop_assert!(sequence.len() == 4 || !sequence.starts_with('0'));
            prop_assert!(canonical.eq_ignore_ascii_case(text.trim()));
            let again = CveId::parse(canonical);
            prop_assert_eq!(again.as_ref(), Ok(&id));
        }
    }

    #[test]
    fn well_formed_cve_ids_parse_in_any_prefix_case(
        year in 1999..=9999i32,
        sequence in cve_sequence(),
        prefix in "[cC][vV][eE]",
        blank in "\\s{0,2}",
    ) {
        let id = CveId::parse(&format!("{blank}{prefix}-{year}-{sequence}{blank}")).expect("parses");
        prop_assert_eq!(id.as_str(), format!("CVE-{year}-{sequence}"));
        prop_assert_eq!(id.year(), year);
    }

    #[test]
    fn malformed_cve_ids_are_refused(
        year in 0..=9999i32,
        digits in "[0-9]{0,25}",
        sequence in cve_sequence(),
    ) {
        let early = CveId::parse(&format!("CVE-{year:04}-{sequence}"));
        if year < 1999 {
            prop_assert_eq!(early, Err(InvalidCveId::YearTooEarly));
        }
        let result = CveId::parse(&format!("CVE-2024-{digits}"));
        let expected = if digits.is_empty() {
            Err(InvalidCveId::Format)
        } else if digits.len() < 4 {
            Err(InvalidCveId::SequenceTooShort)
        } else if digits.len() > 19 {
            Err(InvalidCveId::SequenceTooLong)
        } else if digits.len() > 4 && digits.starts_with('0') {
            Err(InvalidCveId::LeadingZero)
        } else {
            Ok(format!("CVE-2024-{digits}"))
        };
        prop_assert_eq!(result.map(|id| id.as_str().to_owned()), expected);
    }
}

// --- case keys and entity ids ------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_case_key_is_refused_or_canonical(text in prop_oneof![
        "\\PC{0,30}",
        "PSIRT-[0-9]{0,5}-[0-9]{0,12}",
    ]) {
        if let Ok(key) = text.parse::<CaseKey>() {
            prop_assert_eq!(key.to_string(), text);
            prop_assert!((1000..=9999).contains(&key.year()) && key.sequence() >= 1);
        }
    }

    /// Every key reads back from its text; any other padding of the same
    /// number is refused, so a case has one spelling.
    #[test]
    fn case_keys_read_back_and_have_one_spelling(
        year in 1000..=9999u16,
        sequence in prop_oneof![1..10_000u32, 1..=u32::MAX],
        padding in 1..8usize,
    ) {
        let key = CaseKey::new(year, sequence).expect("valid");
        prop_assert_eq!(key.to_string().parse::<CaseKey>(), Ok(key));
        let other = format!("PSIRT-{year}-{sequence:0padding$}");
        if other != key.to_string() {
            let refused = matches!(other.parse::<CaseKey>(), Err(CaseKeyError::NotCanonical { .. }));
            prop_assert!(refused, "{}", other);
        }
    }

    #[test]
    fn any_id_is_refused_or_a_non_nil_uuid(text in prop_oneof!["\\PC{0,40}", "[0-9a-fA-F-]{30,40}"]) {
        match text.parse::<CaseId>() {
            Ok(id) => {
                prop_assert!(!id.as_uuid().is_nil());
                prop_assert_eq!(id.to_string().parse::<CaseId>(), Ok(id));
            }
            Err(e) => {
                prop_assert_eq!(e.kind, CaseId::KIND);
                prop_assert_eq!(e.input, text);
            }
        }
    }

    #[test]
    fn ids_read_back_from_their_text(bytes in any::<[u8; 16]>()) {
        let uuid = uuid::Uuid::from_bytes(bytes);
        let parsed = uuid.hyphenated().to_string().parse::<ReportId>();
        if uuid.is_nil() {
            prop_assert!(matches!(parsed, Err(e) if e.reason == InvalidIdReason::Nil));
        } else {
            prop_assert_eq!(parsed.map(|id| *id.as_uuid()), Ok(uuid));
        }
    }
}

// --- SLA durations, advisory versions, SSVC and severity names ---------------------

const MAX_SLA_SECONDS: i64 = MAX_SLA_DAYS * 86_400;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_sla_duration_is_refused_or_in_range(text in prop_oneof![
        "\\PC{0,30}",
        "([0-9]{1,20} ?[wdhmsx]{1,2} ?){0,6}",
    ]) {
        if let Ok(duration) = text.parse::<SlaDuration>() {
            let seconds = duration.as_duration().whole_seconds();
            prop_assert!((0..=MAX_SLA_SECONDS).contains(&seconds), "{text:?}: {seconds}s");
            prop_assert_eq!(duration.to_string().parse::<SlaDuration>(), Ok(duration));
        }
    }

    /// Units given largest first add up; too much is refused as too long,
    /// a unit again or out of order is refused as out of order.
    #[test]
    fn sla_durations_add_up_their_units(
        counts in proptest::collection::vec(proptest::option::of(0..5000i64), 5),
        blank in "[ ]{0,1}",
        swap in any::<proptest::sample::Index>(),
    ) {
        const UNITS: [(&str, i64); 5] = [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
        let given: Vec<(usize, i64)> =
            counts.iter().enumerate().filter_map(|(i, c)| c.map(|c| (i, c))).collect();
        prop_assume!(!given.is_empty());
        let text: String = given.iter().map(|(i, c)| format!("{c}{blank}{}{blank}", UNITS[*i].0)).collect();
        let seconds: i64 = given.iter().map(|(i, c)| c * UNITS[*i].1).sum();
        let parsed = text.parse::<SlaDuration>();
        if seconds <= MAX_SLA_SECONDS {
            prop_assert_eq!(parsed.map(|d| d.as_duration().whole_seconds()), Ok(seconds), "{:?}", text);
        } else {
            prop_assert!(matches!(parsed, Err(SlaDurationError::TooLong { .. })), "{text:?}: {parsed:?}");
        }
        if given.len() >= 2 {
            let i = swap.index(given.len() - 1);
            let mut reordered = given.clone();
            reordered.swap(i, i + 1);
            let text: String = reordered.iter().map(|(u, c)| format!("{c}{}", UNITS[*u].0)).collect();
            let parsed = text.parse::<SlaDuration>();
            prop_assert!(matches!(parsed, Err(SlaDurationError::OutOfOrder { .. })), "{text:?}: {parsed:?}");
        }
    }

    #[test]
    fn any_advisory_version_is_refused_or_canonical(text in prop_oneof!["\\PC{0,30}", "[0-9.]{0,14}"]) {
        if let Ok(version) = text.parse::<AdvisoryVersion>() {
            prop_assert_eq!(version.to_string(), text);
        }
    }

    #[test]
    fn advisory_versions_read_back(major in any::<u32>(), minor in any::<u32>(), patch in any::<u32>()) {
        let version = AdvisoryVersion { major, minor, patch };
        prop_assert_eq!(version.to_string().parse::<AdvisoryVersion>(), Ok(version));
        let padded = format!("0{major}.{minor}.{patch}");
        prop_assert!(padded.parse::<AdvisoryVersion>().is_err(), "{}", padded);
    }

    /// SSVC values and severity names: any text is refused or is the name
    /// (or documented alias) in some ASCII case; every name reads back in
    /// any case.
    #[test]
    fn named_values_are_refused_or_their_name_in_any_case(
        text in prop_oneof!["\\PC{0,20}", "[a-zA-Z -]{0,16}"],
        flips in proptest::collection::vec(any::<bool>(), 16),
    ) {
        let flip = |name: &str| -> String {
            name.chars()
                .zip(flips.iter().cycle())
                .map(|(c, f)| if *f { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect()
        };
        if let Ok(v) = text.parse::<Exploitation>() {
            prop_assert!(text.eq_ignore_ascii_case(v.as_str()) || text.eq_ignore_ascii_case("public poc"));
        }
        if let Ok(v) = text.parse::<Utility>() {
            prop_assert!(text.eq_ignore_ascii_case(v.as_str()));
        }
        if let Ok(v) = text.parse::<SsvcDecision>() {
            prop_assert!(text.eq_ignore_ascii_case(v.as_str()));
        }
        if let Ok(v) = text.parse::<CvssSeverity>() {
            prop_assert!(text.eq_ignore_ascii_case(v.as_str()));
        }
        for v in [Exploitation::None, Exploitation::PoC, Exploitation::Active] {
            prop_assert_eq!(flip(v.as_str()).parse::<Exploitation>(), Ok(v));
        }
        for v in [SsvcDecision::Defer, SsvcDecision::Scheduled, SsvcDecision::OutOfCycle, SsvcDecision::Immediate] {
            prop_assert_eq!(flip(v.as_str()).parse::<SsvcDecision>(), Ok(v));
        }
        for v in CvssSeverity::ALL {
            prop_assert_eq!(flip(v.as_str()).parse::<CvssSeverity>(), Ok(v));
        }
    }
}

// --- a submitted report as a whole ---------------------------------------------------

fn optional_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        6 => "[a-zA-Z0-9 .-]{1,30}",
        1 => "\\PC{0,30}",
        1 => "[ \t]{0,3}",
        1 => "[a-z\u{0}\u{7}\n]{0,12}",
        1 => (120..300usize).prop_map(|n| "x".repeat(n)),
    ])
}

fn submission() -> impl Strategy<Value = SubmitReport> {
    let channel = proptest::option::weighted(
        0.9,
        proptest::sample::select(vec![
            Channel::Web,
            Channel::Email,
            Channel::Api,
            Channel::Feed,
            Channel::Internal,
        ]),
    );
    let title = prop_oneof![
        6 => "[a-zA-Z0-9 .-]{0,40}",
        1 => "\\PC{0,40}",
        1 => "[ \t\n]{0,3}",
        1 => (298..303usize).prop_map(|n| "t".repeat(n)),
    ];
    let description = prop_oneof![
        6 => "\\PC{0,60}",
        1 => "[ \t\n]{0,3}",
        1 => (64 * 1024 - 1..64 * 1024 + 2usize).prop_map(|n| "d".repeat(n)),
    ];
    let email = proptest::option::of(prop_oneof![4 => address(), 1 => email_like(), 1 => "\\PC{0,20}"]);
    let products = prop_oneof![
        4 => proptest::collection::vec(
            prop_oneof![
                8 => "[a-z][a-z0-9 -]{0,19}",
                1 => "\\PC{0,20}",
                1 => " {0,2}",
                1 => (199..202usize).prop_map(|n| "p".repeat(n)),
            ],
            0..5
        ),
        1 => proptest::collection::vec("[a-z]{0,3}", 95..110),
    ];
    let vector = proptest::option::of(prop_oneof![
        2 => Just("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".to_owned()),
        2 => Just("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N".to_owned()),
        1 => "\\PC{0,30}",
    ]);
    let disclosure = proptest::option::of(-3 * 86_400..86_400 * 30i64);
    (
        title,
        description,
        (optional_text(), email, optional_text()),
        channel,
        products,
        vector,
        (optional_text(), optional_text(), disclosure),
    )
        .prop_map(
            |(title, description, (name, email, organization), channel, affected_products, vector, extra)| {
                let (request_id, external_reference, disclosure) = extra;
                SubmitReport {
                    report_id: ReportId::new(),
                    request_id,
                    title,
                    description,
                    reporter: Reporter { name, email, organization },
                    channel,
                    affected_products,
                    suggested_cvss_vector: vector,
                    requested_disclosure_at: disclosure.map(|s| {
                        OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000) + time::Duration::seconds(s)
                    }),
                    external_reference,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any submission: the answer names fields of the request only, stays
    /// small however long the product list, and is empty exactly when
    /// every rule holds.
    #[test]
    fn a_submission_is_valid_exactly_when_every_rule_holds(report in submission()) {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let violations = validate_submission(&report, now);
        prop_assert!(violations.len() <= 12 + MAX_AFFECTED_PRODUCTS, "{}", violations.len());
        for v in &violations {
            let field = v.field.split('[').next().unwrap_or_default();
            prop_assert!(
                [
                    "title", "description", "reporter.email", "reporter.name", "reporter.organization",
                    "channel", "affected_products", "suggested_cvss_vector", "request_id",
                    "external_reference", "requested_disclosure_at",
                ]
                .contains(&field),
                "{}", v.field
            );
        }
        let present = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let chars = |v: &str| v.chars().count();
        let title = report.title.trim();
        let line = |v: &str| single_line_text(v).is_ok();
        let products_ok = report.affected_products.len() <= MAX_AFFECTED_PRODUCTS
            && report.affected_products.iter().all(|p| !p.trim().is_empty() && chars(p.trim()) <= 200 && line(p.trim()));
        let valid = !title.is_empty()
            && chars(title) <= 300
            && line(title)
            && !report.description.trim().is_empty()
            && report.description.len() <= 64 * 1024
            && multi_line_text(&report.description).is_ok()
            && present(&report.reporter.email).is_none_or(|e| check_email(&e).is_ok())
            && present(&report.reporter.name).is_none_or(|n| chars(&n) <= 200 && line(&n))
            && present(&report.reporter.organization).is_none_or(|o| chars(&o) <= 200 && line(&o))
            && report.channel.is_some()
            && products_ok
            && present(&report.suggested_cvss_vector)
                .is_none_or(|v| chars(&v) <= 300 && CvssVector::parse(&v).is_ok())
            && present(&report.request_id).is_none_or(|r| check_request_id(&r).is_ok())
            && present(&report.external_reference).is_none_or(|r| chars(&r) <= 300 && line(&r))
            && report.requested_disclosure_at.is_none_or(|d| d >= now - time::Duration::days(1));
        prop_assert_eq!(violations.is_empty(), valid, "{:?}", violations);
    }
}
