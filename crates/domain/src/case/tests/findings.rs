//! What triage finds out: owner, severity, affected products, CVE ids, embargo.

use super::*;
use crate::cvss_vector::CvssVersion;
use crate::validation::{MAX_AFFECTED_PRODUCTS, MAX_NAME_CHARS, MAX_PRODUCT_NAME_CHARS};

const FINDINGS: [CaseStatus; 6] = [
    CaseStatus::Received,
    CaseStatus::Triage,
    CaseStatus::Accepted,
    CaseStatus::Remediating,
    CaseStatus::Fixed,
    CaseStatus::Disclosed,
];

fn triage_started() -> CaseEvent {
    CaseEvent::TriageStarted { case_id: case_id(), started_at: NOW }
}

fn violations(result: Result<Vec<CaseEvent>, CaseError>) -> Vec<FieldViolation> {
    match result {
        Err(CaseError::Validation(violations)) => violations,
        other => panic!("expected field violations, got {other:?}"),
    }
}

fn fields(violations: &[FieldViolation]) -> Vec<&str> {
    violations.iter().map(|v| v.field.as_str()).collect()
}

// --- Assign -----------------------------------------------------------------

#[test]
fn assign_is_allowed_until_the_case_closes_and_starts_triage_on_a_received_case() {
    let open: Vec<CaseStatus> = CaseStatus::ALL.into_iter().filter(|s| *s != CaseStatus::Closed).collect();
    check_statuses(&CaseCommand::Assign { assignee: "bob".into(), team: None }, &open, true);
}

#[test]
fn assigning_a_received_case_starts_triage() {
    let case =
        given::<Case>([opened()]).when(CaseCommand::Assign { assignee: "alice".into(), team: None }).then([
            triage_started(),
            CaseEvent::CaseAssigned {
                case_id: case_id(),
                assignee: "alice".into(),
                assigned_at: NOW,
                team: None,
            },
        ]);
    assert_eq!(details(&case).status, CaseStatus::Triage);
}

#[test]
fn assign_refuses_an_overlong_name() {
    given::<Case>(history_to(CaseStatus::Triage))
        .when(CaseCommand::Assign { assignee: "a".repeat(MAX_NAME_CHARS + 1), team: None })
        .then_error(CaseError::Validation(vec![FieldViolation::new(
            "assignee",
            "assignee must be at most 200 characters",
        )]));
    given::<Case>(history_to(CaseStatus::Triage))
        .when(CaseCommand::Assign { assignee: "a".repeat(MAX_NAME_CHARS), team: None })
        .then_ok();
}

// --- AssessSeverity ---------------------------------------------------------

fn assess(cvss_v3: Option<&str>, cvss_v4: Option<&str>, ssvc_decision: Option<&str>) -> CaseCommand {
    CaseCommand::AssessSeverity {
        cvss_v3: cvss_v3.map(Into::into),
        cvss_v4: cvss_v4.map(Into::into),
        ssvc_decision: ssvc_decision.map(Into::into),
        evidence: SeverityEvidence::default(),
    }
}

#[test]
fn assess_a_v31_vector() {
    let case = given::<Case>([opened(), triage_started()]).when(assess(Some(V31), None, None)).then([
        CaseEvent::SeverityAssessed {
            case_id: case_id(),
            cvss_v3: Some(CvssScore {
                vector: V31.into(),
                version: CvssVersion::V3_1,
                score: 9.8,
                severity: CvssSeverity::Critical,
            }),
            cvss_v4: None,
            ssvc_decision: None,
            rating: Some(CvssSeverity::Critical),
            assessed_at: NOW,
            evidence: SeverityEvidence::default(),
        },
    ]);
    let severity = details(&case).severity.clone().expect("assessed");
    assert_eq!(severity.rating, Some(CvssSeverity::Critical));
    assert_eq!(severity.assessed_at, NOW);
    assert_eq!(details(&case).rating(), Some(CvssSeverity::Critical));
}

#[test]
fn assess_a_v40_vector_with_an_ssvc_decision() {
    given::<Case>([opened(), triage_started()]).when(assess(None, Some(V40), Some("Out-of-Cycle"))).then([
        CaseEvent::SeverityAssessed {
            case_id: case_id(),
            cvss_v3: None,
            cvss_v4: Some(CvssScore {
                vector: V40.into(),
                version: CvssVersion::V4_0,
                score: 9.3,
                severity: CvssSeverity::Critical,
            }),
            ssvc_decision: Some("Out-of-Cycle".into()),
            rating: Some(CvssSeverity::Critical),
            assessed_at: NOW,
            evidence: SeverityEvidence::default(),
        },
    ]);
}

#[test]
fn the_rating_is_the_v4_one_when_both_are_given() {
    // v3.x critical, v4.0 low: the newer standard wins.
    assert_ne!(score(V31).severity, score(V40_LOW).severity);
    let case =
        given::<Case>([opened(), triage_started()]).when(assess(Some(V31), Some(V40_LOW), None)).then_ok();
    assert_eq!(details(&case).rating(), Some(score(V40_LOW).severity));
    // v3.x low, v4.0 critical.
    let case = given::<Case>([opened(), triage_started()]).when(assess(Some(V30), Some(V40), None)).then_ok();
    assert_eq!(details(&case).rating(), Some(CvssSeverity::Critical));
}

#[test]
fn a_v30_vector_is_a_v3_vector() {
    let case = given::<Case>([opened(), triage_started()]).when(assess(Some(V30), None, None)).then_ok();
    let severity = details(&case).severity.clone().expect("assessed");
    assert_eq!(severity.cvss_v3.map(|s| s.version), Some(CvssVersion::V3_0));
    assert_eq!(severity.rating, Some(CvssSeverity::Low));
}

#[test]
fn an_ssvc_decision_alone_has_no_rating() {
    let case = given::<Case>([opened(), triage_started()]).when(assess(None, None, Some("Track*"))).then_ok();
    let severity = details(&case).severity.clone().expect("assessed");
    assert_eq!(severity.ssvc_decision.as_deref(), Some("Track*"));
    assert_eq!(severity.rating, None);
}

#[test]
fn blank_parts_count_as_absent_and_values_are_trimmed() {
    given::<Case>([opened(), triage_started()])
        .when(assess(Some(&format!("  {V31}\n")), Some("  "), Some(" ")))
        .then([CaseEvent::SeverityAssessed {
            case_id: case_id(),
            cvss_v3: Some(score(V31)),
            cvss_v4: None,
            ssvc_decision: None,
            rating: Some(CvssSeverity::Critical),
            assessed_at: NOW,
            evidence: SeverityEvidence::default(),
        }]);
}

#[test]
fn assess_needs_at_least_one_part() {
    for command in [assess(None, None, None), assess(Some(""), Some(" "), Some("\t"))] {
        given::<Case>(history_to(CaseStatus::Triage)).when(command).then_error(CaseError::Validation(vec![
            FieldViolation::new(
                "severity",
                "at least one of cvss_v3, cvss_v4 and ssvc_decision must be given",
            ),
        ]));
    }
}

#[test]
fn each_vector_must_be_of_its_version() {
    let found = violations(
        given::<Case>(history_to(CaseStatus::Triage)).when(assess(Some(V40), Some(V31), None)).result(),
    );
    assert_eq!(
        found,
        [
            FieldViolation::new("cvss_v3", "cvss_v3 must be a CVSS 3.x vector, not CVSS 4.0"),
            FieldViolation::new("cvss_v4", "cvss_v4 must be a CVSS 4.0 vector, not CVSS 3.1"),
        ]
    );
}

#[test]
fn vectors_are_parsed_strictly() {
    for vector in [
        // A v3.1 vector without its scope, which the `cvss` crate alone would accept.
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/C:H/I:H/A:H",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/AV:L",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/XX:Y",
        "CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P",
        "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    ] {
        let found = violations(
            given::<Case>(history_to(CaseStatus::Triage)).when(assess(Some(vector), None, None)).result(),
        );
        assert_eq!(fields(&found), ["cvss_v3"], "{vector}");
        let problem = CvssVector::parse(vector).expect_err("invalid");
        assert_eq!(found[0].description, format!("not a valid CVSS vector: {problem}"));
    }
    let found = violations(
        given::<Case>(history_to(CaseStatus::Triage))
            .when(assess(None, Some("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N"), None))
            .result(),
    );
    assert_eq!(
        found,
        [FieldViolation::new("cvss_v4", "not a valid CVSS vector: mandatory base metrics missing: SA")]
    );
}

#[test]
fn the_ssvc_decision_is_a_short_label() {
    let found = violations(
        given::<Case>(history_to(CaseStatus::Triage))
            .when(assess(None, None, Some(&"x".repeat(MAX_SSVC_DECISION_CHARS + 1))))
            .result(),
    );
    assert_eq!(found, [FieldViolation::new("ssvc_decision", "ssvc_decision must be at most 64 characters")]);
    let found = violations(
        given::<Case>(history_to(CaseStatus::Triage)).when(assess(None, None, Some("Act\u{0}"))).result(),
    );
    assert_eq!(fields(&found), ["ssvc_decision"]);
}

#[test]
fn every_severity_problem_is_reported_at_once() {
    let found = violations(
        given::<Case>(history_to(CaseStatus::Triage))
            .when(assess(Some("CVSS:3.1/AV:N"), Some(V31), Some(&"x".repeat(65))))
            .result(),
    );
    assert_eq!(fields(&found), ["cvss_v3", "cvss_v4", "ssvc_decision"]);
}

#[test]
fn the_same_assessment_again_is_a_no_op() {
    // The main path's triage assessed V31 alone.
    given::<Case>(history_to(CaseStatus::Remediating)).when(assess(Some(V31), None, None)).then_nothing();
    given::<Case>(history_to(CaseStatus::Remediating))
        .when(assess(Some(&format!(" {V31} ")), Some(""), None))
        .then_nothing();
}

#[test]
fn a_new_assessment_replaces_the_whole_previous_one() {
    let case = given::<Case>(history_to(CaseStatus::Accepted))
        .at(NOW + Duration::days(2))
        .when(assess(None, Some(V40_LOW), Some("Scheduled")))
        .then_ok();
    let severity = details(&case).severity.clone().expect("assessed");
    assert_eq!(severity.cvss_v3, None, "a part left out is no longer part of the assessment");
    assert_eq!(severity.cvss_v4, Some(score(V40_LOW)));
    assert_eq!(severity.assessed_at, NOW + Duration::days(2));
    assert_eq!(details(&case).status, CaseStatus::Accepted);
}

#[test]
fn assessing_a_received_case_starts_triage() {
    let case =
        given::<Case>([opened()]).when(assess(Some(V31), None, None)).then([triage_started(), assessed()]);
    assert_eq!(details(&case).status, CaseStatus::Triage);
}

#[test]
fn severity_can_be_assessed_until_the_case_closes_but_not_on_a_rejected_or_duplicate_case() {
    check_statuses(&assess(None, Some(V40), None), &FINDINGS, true);
}

#[test]
fn the_status_is_checked_before_the_input() {
    given::<Case>(history_to(CaseStatus::Rejected)).when(assess(None, None, None)).then_error(
        CaseError::NotAllowed { id: case_id(), status: CaseStatus::Rejected, command: "AssessSeverity" },
    );
}

// --- SetAffectedProducts ----------------------------------------------------

fn range(product: &str, range: &str) -> AffectedProduct {
    AffectedProduct { product: product.into(), versions: VersionSpec::Range(range.into()) }
}

fn explicit(product: &str, versions: &[&str]) -> AffectedProduct {
    AffectedProduct {
        product: product.into(),
        versions: VersionSpec::Explicit(versions.iter().map(|v| (*v).to_owned()).collect()),
    }
}

fn set_products(entries: Vec<AffectedProduct>) -> CaseCommand {
    CaseCommand::SetAffectedProducts { entries }
}

#[test]
fn set_affected_products_records_them_trimmed() {
    let case = given::<Case>(history_to(CaseStatus::Triage))
        .when(set_products(vec![
            range(" Router OS ", " vers:semver/>=2.0|<2.4.1 "),
            explicit("Router Manager", &[" 1.0", "1.1 "]),
        ]))
        .then([CaseEvent::AffectedProductsSet {
            case_id: case_id(),
            products: vec![
                range("Router OS", "vers:semver/>=2.0|<2.4.1"),
                explicit("Router Manager", &["1.0", "1.1"]),
            ],
            set_at: NOW,
        }]);
    assert_eq!(details(&case).affected_products.len(), 2);
}

#[test]
fn the_same_products_again_are_a_no_op_and_a_new_list_replaces_the_old() {
    let mut history = history_to(CaseStatus::Triage);
    history.push(CaseEvent::AffectedProductsSet {
        case_id: case_id(),
        products: vec![range("Router OS", "vers:semver/<2.4.1")],
        set_at: NOW,
    });
    given::<Case>(history.clone())
        .when(set_products(vec![range(" Router OS", "vers:semver/<2.4.1 ")]))
        .then_nothing();
    let case = given::<Case>(history).when(set_products(vec![explicit("Router OS", &["2.4.0"])])).then_ok();
    assert_eq!(details(&case).affected_products, [explicit("Router OS", &["2.4.0"])]);
}

#[test]
fn setting_products_on_a_received_case_starts_triage() {
    given::<Case>([opened()]).when(set_products(vec![range("Router OS", "vers:generic/*")])).then([
        triage_started(),
        CaseEvent::AffectedProductsSet {
            case_id: case_id(),
            products: vec![range("Router OS", "vers:generic/*")],
            set_at: NOW,
        },
    ]);
}

#[test]
fn products_can_be_set_until_the_case_closes_but_not_on_a_rejected_or_duplicate_case() {
    check_statuses(&set_products(vec![range("Router OS", "vers:generic/*")]), &FINDINGS, true);
}

#[test]
fn at_least_one_product() {
    given::<Case>(history_to(CaseStatus::Triage)).when(set_products(vec![])).then_error(
        CaseError::Validation(vec![FieldViolation::new(
            "entries",
            "at least one affected product must be given",
        )]),
    );
}

#[test]
fn at_most_100_products_and_only_the_count_is_reported() {
    let entries: Vec<AffectedProduct> = (0..=MAX_AFFECTED_PRODUCTS).map(|_| range("", "")).collect();
    given::<Case>(history_to(CaseStatus::Triage)).when(set_products(entries)).then_error(
        CaseError::Validation(vec![FieldViolation::new("entries", "at most 100 affected products")]),
    );
}

#[test]
fn the_limits_themselves_are_accepted() {
    let versions: Vec<String> = (0..MAX_EXPLICIT_VERSIONS).map(|i| format!("{i:0>100}")).collect();
    let mut entries: Vec<AffectedProduct> = (0..MAX_AFFECTED_PRODUCTS - 2)
        .map(|i| {
            range(
                &format!("product {i}"),
                &format!("vers:generic/{}", "r".repeat(MAX_VERSION_RANGE_CHARS - 13)),
            )
        })
        .collect();
    entries.push(AffectedProduct {
        product: "p".repeat(MAX_PRODUCT_NAME_CHARS),
        versions: VersionSpec::Range("vers:generic/*".into()),
    });
    entries.push(AffectedProduct { product: "listed".into(), versions: VersionSpec::Explicit(versions) });
    let case = given::<Case>(history_to(CaseStatus::Triage)).when(set_products(entries)).then_ok();
    assert_eq!(details(&case).affected_products.len(), MAX_AFFECTED_PRODUCTS);
}

#[test]
fn every_product_problem_is_reported_at_once_with_its_path() {
    let mut too_many_versions = vec!["1".to_owned(); MAX_EXPLICIT_VERSIONS + 1];
    too_many_versions[0] = String::new();
    let found = violations(
        given::<Case>(history_to(CaseStatus::Triage))
            .when(set_products(vec![
                range(" ", "vers:generic/*"),
                range(&"p".repeat(MAX_PRODUCT_NAME_CHARS + 1), "vers:generic/*"),
                range("Router OS", " "),
                range("router os ", &format!("vers:generic/{}", "r".repeat(MAX_VERSION_RANGE_CHARS - 12))),
                explicit("Switch", &[]),
                explicit("Firewall", &["1.0", " ", &"v".repeat(MAX_VERSION_CHARS + 1), "1.0 "]),
                AffectedProduct {
                    product: "Gateway".into(),
                    versions: VersionSpec::Explicit(too_many_versions),
                },
            ]))
            .result(),
    );
    assert_eq!(
        found,
        [
            FieldViolation::new("entries[0].product", "product name must not be empty"),
            FieldViolation::new("entries[1].product", "product name must be at most 200 characters"),
            FieldViolation::new("entries[2].versions", "version range must not be empty"),
            FieldViolation::new(
                "entries[3].product",
                "product \"router os\" is already listed at entries[2]"
            ),
            FieldViolation::new("entries[3].versions", "version range must be at most 500 characters"),
            FieldViolation::new("entries[4].versions", "at least one version must be listed"),
            FieldViolation::new("entries[5].versions[1]", "version must not be empty"),
            FieldViolation::new("entries[5].versions[2]", "version must be at most 100 characters"),
            FieldViolation::new("entries[5].versions[3]", "version \"1.0\" is already listed at [0]"),
            FieldViolation::new("entries[6].versions", "at most 100 versions"),
        ]
    );
}

/// The range that used to pass triage and fail at publish (`>` has no
/// translation into CVE or OSV) is refused by `SetAffectedProducts`, with
/// the same parser the exports use; so are text that is no vers range and a
/// product name with a bidirectional override.
#[test]
fn ranges_the_exports_cannot_say_are_refused_when_set() {
    let found = violations(
        given::<Case>(history_to(CaseStatus::Triage))
            .when(set_products(vec![
                range("Router OS", "vers:semver/>2.0.0|<2.4.1"),
                range("Switch", ">=2.0, <2.4.1"),
                range("Gate\u{202E}way", "vers:generic/*"),
                explicit("Firewall", &["1.0", "vers:semver/!=2"]),
            ]))
            .result(),
    );
    let fields: Vec<&str> = found.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        ["entries[0].versions", "entries[1].versions", "entries[2].product", "entries[3].versions[1]"]
    );
    assert!(found[0].description.contains("exclusive lower bounds (>)"), "{found:?}");
}

// --- AssignCve --------------------------------------------------------------

fn assign_cve(cve_id: &str) -> CaseCommand {
    CaseCommand::AssignCve { cve_id: cve_id.into(), assigner: String::new() }
}

fn cve(id: &str) -> CveId {
    CveId::parse(id).expect("valid CVE id")
}

#[test]
fn assign_cve_records_the_canonical_id() {
    let case = given::<Case>(history_to(CaseStatus::Accepted)).when(assign_cve(" cve-2026-12345 ")).then([
        CaseEvent::CveAssigned {
            case_id: case_id(),
            cve_id: cve("CVE-2026-12345"),
            assigned_at: NOW,
            assigner: String::new(),
        },
    ]);
    assert_eq!(details(&case).cves, [cve("CVE-2026-12345")]);
}

#[test]
fn a_case_can_hold_several_cves_and_assigning_one_it_has_is_a_no_op() {
    let mut history = history_to(CaseStatus::Remediating);
    history.push(CaseEvent::CveAssigned {
        case_id: case_id(),
        cve_id: cve("CVE-2026-1234"),
        assigned_at: NOW,
        assigner: String::new(),
    });
    given::<Case>(history.clone()).when(assign_cve("CVE-2026-1234")).then_nothing();
    given::<Case>(history.clone()).when(assign_cve("cve-2026-1234")).then_nothing();
    let case = given::<Case>(history).when(assign_cve("CVE-2025-99999")).then_ok();
    assert_eq!(details(&case).cves, [cve("CVE-2026-1234"), cve("CVE-2025-99999")]);
}

#[test]
fn assign_cve_refuses_what_is_not_a_cve_id() {
    for (input, description) in [
        ("", "CVE id must look like CVE-YYYY-NNNN"),
        ("GHSA-xxxx-yyyy-zzzz", "CVE id must look like CVE-YYYY-NNNN"),
        ("CVE-26-1234", "CVE id must look like CVE-YYYY-NNNN"),
        ("CVE-1998-0001", "CVE id must not have a year before 1999"),
        ("CVE-2026-123", "CVE id must have a sequence number of at least 4 digits"),
        ("CVE-2026-01234", "CVE id must not pad a sequence number longer than 4 digits with leading zeros"),
        ("CVE-2028-1234", "CVE id must not have a year after 2027"),
    ] {
        given::<Case>(history_to(CaseStatus::Triage))
            .when(assign_cve(input))
            .then_error(CaseError::Validation(vec![FieldViolation::new("cve_id", description)]));
    }
    // Reserved for next year already: fine.
    given::<Case>(history_to(CaseStatus::Triage)).when(assign_cve("CVE-2027-0001")).then_ok();
    given::<Case>(history_to(CaseStatus::Triage)).when(assign_cve("CVE-1999-0001")).then_ok();
}

#[test]
fn assigning_a_cve_to_a_received_case_starts_triage() {
    given::<Case>([opened()]).when(assign_cve("CVE-2026-1234")).then([
        triage_started(),
        CaseEvent::CveAssigned {
            case_id: case_id(),
            cve_id: cve("CVE-2026-1234"),
            assigned_at: NOW,
            assigner: String::new(),
        },
    ]);
}

#[test]
fn cves_can_be_assigned_until_the_case_closes_but_not_on_a_rejected_or_duplicate_case() {
    check_statuses(&assign_cve("CVE-2026-1234"), &FINDINGS, true);
}

// --- SetEmbargo -------------------------------------------------------------

fn set_embargo(disclosure_at: OffsetDateTime, time_zone: &str) -> CaseCommand {
    CaseCommand::SetEmbargo { disclosure_at, time_zone: time_zone.into(), terms: EmbargoTerms::default() }
}

#[test]
fn set_embargo_keeps_the_instant_and_the_zone() {
    let disclosure_at = time::macros::datetime!(2026-04-01 10:00 +09:00);
    let case = given::<Case>(history_to(CaseStatus::Remediating))
        .when(set_embargo(disclosure_at, " Asia/Tokyo "))
        .then([CaseEvent::EmbargoSet {
            case_id: case_id(),
            disclosure_at,
            time_zone: "Asia/Tokyo".into(),
            set_at: NOW,
            terms: EmbargoTerms::default(),
        }]);
    let details = details(&case);
    let embargo = details.embargo.clone().expect("embargoed");
    assert_eq!(embargo.disclosure_at.offset(), time::macros::offset!(+09:00));
    assert_eq!(embargo.time_zone, "Asia/Tokyo");
    assert!(details.is_under_embargo(NOW));
    assert!(details.is_under_embargo(disclosure_at - Duration::seconds(1)));
    assert!(!details.is_under_embargo(disclosure_at));
}

#[test]
fn an_embargo_no_longer_holds_once_the_case_is_disclosed() {
    let mut history = history_to(CaseStatus::Fixed);
    history.push(CaseEvent::EmbargoSet {
        case_id: case_id(),
        disclosure_at: NOW + Duration::days(10),
        time_zone: "UTC".into(),
        set_at: NOW,
        terms: EmbargoTerms::default(),
    });
    assert!(Case::from_events(&history).details().is_some_and(|d| d.is_under_embargo(NOW)));
    history.push(CaseEvent::CaseDisclosed {
        case_id: case_id(),
        disclosed_at: NOW,
        advisory_id: String::new(),
        tracking_id: String::new(),
    });
    assert!(!Case::from_events(&history).details().is_some_and(|d| d.is_under_embargo(NOW)));
}

#[test]
fn the_same_embargo_again_is_a_no_op_and_a_new_date_moves_it() {
    let disclosure_at = NOW + Duration::days(45);
    let mut history = history_to(CaseStatus::Accepted);
    history.push(CaseEvent::EmbargoSet {
        case_id: case_id(),
        disclosure_at,
        time_zone: "Europe/Berlin".into(),
        set_at: NOW,
        terms: EmbargoTerms::default(),
    });
    // The same instant, written with another offset, is the same date.
    let same_instant = disclosure_at.to_offset(time::macros::offset!(+01:00));
    given::<Case>(history.clone()).when(set_embargo(same_instant, "Europe/Berlin")).then_nothing();
    // The same instant agreed in another zone is a different agreement.
    given::<Case>(history.clone()).when(set_embargo(disclosure_at, "Europe/Paris")).then_ok();
    let case = given::<Case>(history)
        .when(set_embargo(disclosure_at + Duration::days(14), "Europe/Berlin"))
        .then_ok();
    assert_eq!(
        details(&case).embargo.as_ref().map(|e| e.disclosure_at),
        Some(disclosure_at + Duration::days(14))
    );
}

#[test]
fn set_embargo_needs_an_iana_zone_and_a_date_not_in_the_past() {
    let found = violations(
        given::<Case>(history_to(CaseStatus::Triage))
            .when(set_embargo(NOW - Duration::days(2), "JST"))
            .result(),
    );
    assert_eq!(
        found,
        [
            FieldViolation::new("time_zone", "time zone must be UTC or an IANA name such as Europe/Berlin"),
            FieldViolation::new("disclosure_at", "disclosure date must not be in the past"),
        ]
    );
    for zone in ["", "+09:00", "US/Eastern", "Europe/berlin", "Etc/GMT+13"] {
        let found =
            violations(given::<Case>(history_to(CaseStatus::Triage)).when(set_embargo(NOW, zone)).result());
        assert_eq!(fields(&found), ["time_zone"], "{zone:?}");
    }
}

#[test]
fn an_embargo_date_of_today_in_another_zone_is_not_in_the_past() {
    // Clients send "today" at midnight: up to a day ago is still accepted.
    given::<Case>(history_to(CaseStatus::Triage))
        .when(set_embargo(NOW - DISCLOSURE_DATE_TOLERANCE, "UTC"))
        .then_ok();
}

#[test]
fn setting_an_embargo_on_a_received_case_starts_triage() {
    given::<Case>([opened()]).when(set_embargo(NOW + Duration::days(90), "Etc/UTC")).then([
        triage_started(),
        CaseEvent::EmbargoSet {
            case_id: case_id(),
            disclosure_at: NOW + Duration::days(90),
            time_zone: "Etc/UTC".into(),
            set_at: NOW,
            terms: EmbargoTerms::default(),
        },
    ]);
}

#[test]
fn an_embargo_can_be_set_until_the_case_is_disclosed() {
    let allowed = [
        CaseStatus::Received,
        CaseStatus::Triage,
        CaseStatus::Accepted,
        CaseStatus::Remediating,
        CaseStatus::Fixed,
    ];
    check_statuses(&set_embargo(NOW + Duration::days(30), "America/New_York"), &allowed, true);
}

// --- facts recorded beside the decisions --------------------------------------

#[test]
fn the_evidence_is_part_of_the_assessment() {
    let evidence = SeverityEvidence {
        ssvc_inputs: None,
        known_exploited: true,
        epss_probability: Some(0.5),
        epss_percentile: Some(0.9),
        cwe_ids: vec!["CWE-89".into()],
        rationale: "Reachable without login.".into(),
    };
    let with_evidence = CaseCommand::AssessSeverity {
        cvss_v3: Some(V31.into()),
        cvss_v4: None,
        ssvc_decision: None,
        evidence: evidence.clone(),
    };
    // The main path assessed V31 without evidence: the same scores with
    // evidence are a new assessment, recorded with it.
    let case = given::<Case>(history_to(CaseStatus::Accepted)).when(with_evidence.clone()).then_ok();
    let severity = details(&case).severity.clone().expect("assessed");
    assert_eq!(severity.evidence, evidence);
    let mut history = history_to(CaseStatus::Accepted);
    history.extend(case_after(&history, with_evidence.clone()));
    given::<Case>(history).when(with_evidence).then_nothing();
}

#[test]
fn the_terms_are_part_of_the_embargo() {
    let disclosure_at = NOW + Duration::days(30);
    let terms = EmbargoTerms {
        agreed_with: vec!["reporter".into(), "CERT/CC".into()],
        note: "Agreed by mail.".into(),
        local_disclosure_time: "2026-02-01T10:00:00".into(),
        utc_offset_seconds: 3600,
    };
    let command = |terms: EmbargoTerms| CaseCommand::SetEmbargo {
        disclosure_at,
        time_zone: "Europe/Berlin".into(),
        terms,
    };
    let mut history = history_to(CaseStatus::Accepted);
    history.extend(case_after(&history, command(terms.clone())));
    let embargo = Case::from_events(&history).details().and_then(|d| d.embargo.clone()).expect("embargoed");
    assert_eq!(embargo.terms, terms);
    given::<Case>(history.clone()).when(command(terms.clone())).then_nothing();
    // Another party to the same date is a new agreement.
    let wider = EmbargoTerms { agreed_with: vec!["reporter".into()], ..terms };
    let case = given::<Case>(history).when(command(wider.clone())).then_ok();
    assert_eq!(details(&case).embargo.as_ref().map(|e| &e.terms), Some(&wider));
}

/// The events `command` appends to a case with `history`.
fn case_after(history: &[CaseEvent], command: CaseCommand) -> Vec<CaseEvent> {
    Case::from_events(history).handle(command, NOW).expect("accepted")
}
