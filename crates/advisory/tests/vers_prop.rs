//! One vers parser: whatever range the domain's check accepts (the check
//! `SetAffectedProducts` and the remediation commands apply), every export
//! (CSAF advisory and VEX, CVE, OSV, OpenVEX) renders and validates against
//! its schema. A range no export can say is refused by the command instead.

mod common;

use proptest::prelude::*;
use psirt_advisory::{CsafCategory, csaf, cve_record, openvex, osv};
use psirt_domain::vers;

/// Text shaped like vers ranges, well formed or not.
fn vers_like() -> impl Strategy<Value = String> {
    let version = "[0-9][0-9a-z.+~-]{0,6}";
    let constraint = prop_oneof![
        version.prop_map(|v| v),
        (proptest::sample::select(vec![">=", "<=", "<", "=", ">", "!="]), version)
            .prop_map(|(op, v)| format!("{op}{v}")),
    ];
    (
        proptest::sample::select(vec!["semver", "generic", "deb", "pypi", "npm", "SemVer"]),
        prop_oneof![
            Just("*".to_owned()),
            proptest::collection::vec(constraint, 1..6).prop_map(|c| c.join("|")),
        ],
    )
        .prop_map(|(scheme, constraints)| format!("vers:{scheme}/{constraints}"))
}

fn check(range: &str) -> bool {
    let mut violations = Vec::new();
    vers::check_range(&mut violations, "range", range);
    violations.is_empty()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn whatever_the_domain_accepts_every_export_accepts(range in vers_like()) {
        prop_assume!(check(&range));
        let mut record = common::record();
        record.products[1].version = range.clone();
        for (format, result) in [
            ("csaf", csaf(&record, CsafCategory::SecurityAdvisory).map(|_| ())),
            ("csaf-vex", csaf(&record, CsafCategory::Vex).map(|_| ())),
            ("cve", cve_record(&record).map(|_| ())),
            ("osv", osv(&record).map(|_| ())),
            ("openvex", openvex(&record).map(|_| ())),
        ] {
            prop_assert!(result.is_ok(), "{} refused {}: {:?}", format, range, result);
        }
    }
}

/// The range that used to pass triage and fail at publish: the domain's
/// check refuses it now, with the reason the exports gave.
#[test]
fn the_range_that_failed_at_publish_is_refused_by_the_domain() {
    let range = "vers:semver/>2.0.0|<2.4.1";
    assert!(!check(range));
    let mut record = common::record();
    record.products[1].version = range.to_owned();
    assert!(csaf(&record, CsafCategory::SecurityAdvisory).is_err(), "and the exports cannot say it");
}
