//! Every format generated from the shared record validates against its bundled schema, says
//! what the record says, and comes out byte-identical twice; broken input is rejected.

mod common;

use common::{json, record};
use psirt_advisory::*;
use serde_json::json;

fn all_documents(r: &AdvisoryRecord) -> Vec<Document> {
    vec![
        csaf(r, CsafCategory::SecurityAdvisory).expect("csaf advisory"),
        csaf(r, CsafCategory::Vex).expect("csaf vex"),
        cve_record(r).expect("cve record"),
        osv(r).expect("osv"),
        openvex(r).expect("openvex"),
    ]
}

#[test]
fn every_format_validates_against_its_schema() {
    for doc in all_documents(&record()) {
        assert_eq!(doc.media_type, "application/json");
        validate(doc.format, &json(&doc)).unwrap_or_else(|e| panic!("{} revalidation: {e}", doc.format));
    }
}

#[test]
fn output_is_deterministic() {
    let first = all_documents(&record());
    let second = all_documents(&record());
    assert_eq!(first, second);
    // Product order in the record does not matter either.
    let mut shuffled = record();
    shuffled.products.reverse();
    assert_eq!(all_documents(&shuffled), first);
}

#[test]
fn csaf_advisory_carries_products_statuses_and_scores() {
    let doc = json(&csaf(&record(), CsafCategory::SecurityAdvisory).unwrap());
    assert_eq!(doc["document"]["category"], "csaf_security_advisory");
    assert_eq!(doc["document"]["tracking"]["version"], "2");
    let history = doc["document"]["tracking"]["revision_history"].as_array().unwrap();
    assert_eq!(history[0]["number"], "1", "revision history is sorted by date");
    assert_eq!(doc["document"]["references"][0]["category"], "self");
    assert_eq!(
        doc["document"]["references"][0]["url"],
        "https://psirt.acme.example/.well-known/csaf/2026/acme-sa-2026-0007.json"
    );
    // Sorted products: acme-gateway 2.4.1, acme-gateway range, portal sdk 3.2.0.
    let vendor = &doc["product_tree"]["branches"][0];
    assert_eq!(vendor["name"], "Acme Corp");
    let gateway = &vendor["branches"][0];
    assert_eq!(gateway["branches"][0]["category"], "product_version");
    assert_eq!(gateway["branches"][0]["product"]["product_id"], "CSAFPID-0001");
    assert_eq!(gateway["branches"][1]["category"], "product_version_range");
    assert_eq!(gateway["branches"][1]["name"], "vers:semver/>=2.0.0|<2.4.1");
    let sdk = &vendor["branches"][1]["branches"][0]["product"];
    assert_eq!(sdk["product_identification_helper"]["purl"], "pkg:npm/acme-portal-sdk@3.2.0");

    let v = &doc["vulnerabilities"][0];
    assert_eq!(v["cve"], "CVE-2026-12345");
    assert_eq!(v["cwe"]["id"], "CWE-79");
    assert_eq!(v["product_status"]["fixed"], json!(["CSAFPID-0001"]));
    assert_eq!(v["product_status"]["known_affected"], json!(["CSAFPID-0002"]));
    assert_eq!(v["product_status"]["known_not_affected"], json!(["CSAFPID-0003"]));
    assert_eq!(v["flags"][0]["label"], "vulnerable_code_not_in_execute_path");
    assert_eq!(v["threats"][0]["category"], "impact");
    assert_eq!(v["scores"][0]["cvss_v3"]["baseScore"], 6.1);
    assert_eq!(v["scores"][0]["products"], json!(["CSAFPID-0002"]));
    let categories: Vec<&str> =
        v["remediations"].as_array().unwrap().iter().map(|r| r["category"].as_str().unwrap()).collect();
    assert_eq!(categories, ["workaround", "vendor_fix"]);
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["title"] == "CVSS v4.0" && n["text"].as_str().unwrap().starts_with("CVSS:4.0/")),
        "cvss v4 travels as a note"
    );
}

#[test]
fn acknowledgments_respect_consent() {
    let r = record();
    let csaf_doc = json(&csaf(&r, CsafCategory::SecurityAdvisory).unwrap());
    let acks = &csaf_doc["document"]["acknowledgments"];
    assert_eq!(acks[0]["names"], json!(["Jane Doe"]));
    assert_eq!(acks[0]["organization"], "Example Security Lab");
    assert_eq!(acks[1], json!({ "summary": ANONYMOUS_CREDIT }));
    for doc in all_documents(&r) {
        let text = String::from_utf8(doc.bytes).unwrap();
        assert!(!text.contains("Private Person"), "{} names a researcher without consent", doc.format);
        assert!(!text.contains("Secret Org"), "{} names the organization without consent", doc.format);
        assert!(!text.contains("secret.example"), "{} links a researcher without consent", doc.format);
    }
}

#[test]
fn csaf_vex_has_a_statement_for_every_status() {
    let doc = json(&csaf(&record(), CsafCategory::Vex).unwrap());
    assert_eq!(doc["document"]["category"], "csaf_vex");
    let v = &doc["vulnerabilities"][0];
    assert_eq!(v["threats"][0]["product_ids"], json!(["CSAFPID-0003"]));
    assert!(
        v["remediations"].as_array().unwrap().iter().all(|r| r["product_ids"] == json!(["CSAFPID-0002"]))
    );
}

#[test]
fn cve_record_describes_ranges_metrics_and_credits() {
    let doc = json(&cve_record(&record()).unwrap());
    assert_eq!(doc["dataType"], "CVE_RECORD");
    assert_eq!(doc["dataVersion"], "5.1");
    assert_eq!(doc["cveMetadata"]["state"], "PUBLISHED");
    assert_eq!(doc["cveMetadata"]["assignerShortName"], "acme");
    let cna = &doc["containers"]["cna"];
    let gateway = &cna["affected"][0];
    assert_eq!(gateway["product"], "acme-gateway");
    assert_eq!(gateway["versions"][0], json!({ "version": "2.4.1", "status": "unaffected" }));
    assert_eq!(
        gateway["versions"][1],
        json!({ "version": "2.0.0", "lessThan": "2.4.1", "versionType": "semver", "status": "affected" })
    );
    assert_eq!(cna["affected"][1]["versions"][0]["status"], "unaffected");
    assert_eq!(cna["problemTypes"][0]["descriptions"][0]["cweId"], "CWE-79");
    assert_eq!(cna["metrics"][0]["cvssV3_1"]["baseScore"], 6.1);
    assert_eq!(cna["metrics"][1]["cvssV4_0"]["baseScore"], 5.3);
    assert_eq!(cna["credits"][0]["value"], "Jane Doe (Example Security Lab)");
    assert_eq!(cna["credits"][1]["value"], ANONYMOUS_CREDIT);
    assert!(cna["solutions"][0]["value"].as_str().unwrap().contains("2.4.1"));
    assert_eq!(cna["workarounds"].as_array().unwrap().len(), 2);
}

#[test]
fn cve_record_needs_a_cve_id_and_a_cna() {
    let mut r = record();
    r.cve = None;
    assert!(matches!(cve_record(&r), Err(DocumentError::MissingCveId)));
    let mut r = record();
    r.cna = None;
    assert!(matches!(cve_record(&r), Err(DocumentError::MissingCna)));
}

#[test]
fn osv_lists_affected_ranges_and_severities() {
    let doc = json(&osv(&record()).unwrap());
    assert_eq!(doc["id"], "CVE-2026-12345");
    assert_eq!(doc["aliases"], json!(["ACME-SA-2026-0007"]));
    assert_eq!(
        doc["severity"][0],
        json!({ "type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N" })
    );
    assert_eq!(doc["severity"][1]["type"], "CVSS_V4");
    let affected = doc["affected"].as_array().unwrap();
    assert_eq!(affected.len(), 1, "the not-affected sdk is not listed");
    assert_eq!(
        affected[0]["ranges"][0],
        json!({ "type": "SEMVER", "events": [{ "introduced": "2.0.0" }, { "fixed": "2.4.1" }] })
    );
    assert_eq!(affected[0]["database_specific"]["product"], "acme-gateway");
    assert_eq!(doc["credits"][1]["name"], ANONYMOUS_CREDIT);
}

#[test]
fn osv_rejects_unregistered_id_prefixes() {
    let mut r = record();
    r.osv_id = None;
    let (format, messages) = invalid_messages(osv(&r));
    assert_eq!(format, Format::Osv);
    assert!(messages.iter().any(|m| m.starts_with("/id:")), "{messages:?}");
    r.osv_id = Some("GHSA-abcd-efgh-ijkl".into());
    let doc = json(&osv(&r).unwrap());
    assert_eq!(doc["aliases"], json!(["CVE-2026-12345", "ACME-SA-2026-0007"]));
}

#[test]
fn osv_names_purl_packages_by_ecosystem() {
    let mut r = record();
    r.products[0].status = ProductStatus::KnownAffected;
    r.remediations.clear();
    let doc = json(&osv(&r).unwrap());
    let sdk = &doc["affected"][1];
    assert_eq!(
        sdk["package"],
        json!({ "ecosystem": "npm", "name": "acme-portal-sdk", "purl": "pkg:npm/acme-portal-sdk" })
    );
    assert_eq!(sdk["versions"], json!(["3.2.0"]));
}

#[test]
fn openvex_statements_follow_product_status() {
    let doc = json(&openvex(&record()).unwrap());
    assert_eq!(doc["@context"], "https://openvex.dev/ns/v0.2.0");
    assert_eq!(doc["version"], 2);
    let statements = doc["statements"].as_array().unwrap();
    let status: Vec<&str> = statements.iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(status, ["fixed", "affected", "not_affected"]);
    assert_eq!(statements[0]["vulnerability"]["name"], "CVE-2026-12345");
    assert_eq!(statements[0]["products"][0]["@id"], "https://psirt.acme.example/products/acme-gateway@2.4.1");
    assert!(statements[1]["action_statement"].as_str().unwrap().contains("2.4.1"));
    assert_eq!(statements[2]["justification"], "vulnerable_code_not_in_execute_path");
    assert_eq!(statements[2]["products"][0]["@id"], "pkg:npm/acme-portal-sdk@3.2.0");
    assert!(statements[2]["impact_statement"].as_str().unwrap().contains("never renders"));
}

#[test]
fn csaf_without_cve_identifies_the_vulnerability_by_case() {
    let mut r = record();
    r.cve = None;
    let doc = json(&csaf(&r, CsafCategory::Vex).unwrap());
    assert_eq!(doc["vulnerabilities"][0]["ids"][0]["text"], "CASE-2026-0042");
    assert_eq!(json(&openvex(&r).unwrap())["statements"][0]["vulnerability"]["name"], "ACME-SA-2026-0007");
}

fn invalid_messages(result: Result<Document, DocumentError>) -> (Format, Vec<String>) {
    match result {
        Err(DocumentError::Invalid { format, messages }) => (format, messages),
        other => panic!("expected an invalid document, got {other:?}"),
    }
}

#[test]
fn a_record_that_breaks_a_schema_is_rejected() {
    let mut r = record();
    r.cvss_v3_1.as_mut().unwrap().vector = "CVSS:3.1/AV:X".into();
    let (format, messages) = invalid_messages(csaf(&r, CsafCategory::SecurityAdvisory));
    assert_eq!(format, Format::Csaf);
    assert!(
        messages.iter().any(|m| m.contains("/vulnerabilities/0/scores/0/cvss_v3/vectorString")),
        "{messages:?}"
    );
    let (format, _) = invalid_messages(cve_record(&r));
    assert_eq!(format, Format::CveRecord);
    let (format, _) = invalid_messages(osv(&r));
    assert_eq!(format, Format::Osv);

    let mut r = record();
    r.cve = Some("CVE-26-1".into());
    assert!(matches!(cve_record(&r), Err(DocumentError::Invalid { .. })));
    assert!(matches!(csaf(&r, CsafCategory::Vex), Err(DocumentError::Invalid { .. })));
}

#[test]
fn a_vex_without_action_statement_is_rejected() {
    let mut r = record();
    r.remediations.clear();
    r.releases.clear();
    // The advisory profile does not need remediations, the VEX profile does (6.1.27.10).
    csaf(&r, CsafCategory::SecurityAdvisory).expect("advisory without remediations");
    let (_, messages) = invalid_messages(csaf(&r, CsafCategory::Vex));
    assert!(messages.iter().any(|m| m.contains("6.1.27.10")), "{messages:?}");
}

#[test]
fn tampered_documents_fail_public_validation() {
    let r = record();
    let mut doc = json(&csaf(&r, CsafCategory::Vex).unwrap());
    doc["vulnerabilities"][0]["product_status"]["fixed"] = json!(["CSAFPID-0099"]);
    let err = validate(Format::Csaf, &doc).unwrap_err();
    assert!(err.to_string().contains("CSAFPID-0099"), "{err}");

    let mut doc = json(&csaf(&r, CsafCategory::SecurityAdvisory).unwrap());
    doc["document"]["tracking"]["status"] = json!("published");
    assert!(matches!(validate(Format::Csaf, &doc), Err(DocumentError::Invalid { format: Format::Csaf, .. })));

    let mut doc = json(&cve_record(&r).unwrap());
    doc["cveMetadata"]["state"] = json!("DRAFT");
    assert!(validate(Format::CveRecord, &doc).is_err());

    let mut doc = json(&osv(&r).unwrap());
    doc["affected"][0]["ranges"][0]["events"] = json!([{ "fixed": "2.4.1" }]);
    assert!(validate(Format::Osv, &doc).is_err(), "a range needs an introduced event");

    let mut doc = json(&openvex(&r).unwrap());
    doc["statements"][1].as_object_mut().unwrap().remove("action_statement");
    assert!(validate(Format::OpenVex, &doc).is_err(), "affected needs an action statement");
}

#[test]
fn broken_records_are_typed_errors() {
    let mut r = record();
    r.products.push(r.products[0].clone());
    assert!(matches!(osv(&r), Err(DocumentError::InvalidRecord { .. })));
    let mut r = record();
    r.remediations[0].products[0].product = "acme-unknown".into();
    assert!(matches!(csaf(&r, CsafCategory::Vex), Err(DocumentError::InvalidRecord { .. })));
    let mut r = record();
    r.products[1].version = "vers:semver/!=2.0.0".into();
    assert!(matches!(openvex(&r), Err(DocumentError::InvalidRecord { .. })));
    let mut r = record();
    r.revision_history.clear();
    assert!(matches!(cve_record(&r), Err(DocumentError::InvalidRecord { .. })));
}

#[test]
fn scores_must_match_their_vectors() {
    let mut r = record();
    r.cvss_v3_1.as_mut().unwrap().base_score = 9.8;
    let err = csaf(&r, CsafCategory::SecurityAdvisory).unwrap_err();
    assert!(err.to_string().contains("computes to 6.1 MEDIUM"), "{err}");
    let mut r = record();
    r.cvss_v4_0.as_mut().unwrap().severity = Severity::High;
    let err = osv(&r).unwrap_err();
    assert!(err.to_string().contains("computes to 5.3 MEDIUM"), "{err}");
}

#[test]
#[ignore = "writes the documents to $PSIRT_ADVISORY_DUMP for inspection"]
fn dump_documents() {
    let dir = std::env::var("PSIRT_ADVISORY_DUMP").expect("PSIRT_ADVISORY_DUMP");
    for (i, doc) in all_documents(&record()).into_iter().enumerate() {
        std::fs::write(format!("{dir}/{i}-{}.json", doc.format.to_string().replace(' ', "_")), doc.bytes)
            .unwrap();
    }
}

#[test]
fn records_round_trip_through_json() {
    let r = record();
    let text = serde_json::to_string(&r).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["products"][0]["status"], "known_not_affected");
    assert_eq!(value["products"][0]["justification"], "vulnerable_code_not_in_execute_path");
    assert_eq!(value["initial_release_date"], "2026-03-02T10:00:00Z");
    let back: AdvisoryRecord = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
}

/// The official OpenVEX 0.2.0 schema (bundled) refuses what only it states: unknown
/// properties, wrong types, a product without an identifier, a malformed timestamp; the
/// messages point at the offending place.
#[test]
fn openvex_is_checked_against_the_official_schema() {
    let r = record();
    let doc = json(&openvex(&r).unwrap());
    validate(Format::OpenVex, &doc).expect("the generated document passes the schema");
    let refused = |doc: &serde_json::Value, at: &str| match validate(Format::OpenVex, doc) {
        Err(DocumentError::Invalid { format: Format::OpenVex, messages }) => {
            assert!(messages.iter().any(|m| m.starts_with(at)), "{at} not in {messages:?}")
        }
        other => panic!("expected {at} to be refused, got {other:?}"),
    };

    let mut broken = doc.clone();
    broken["statements"][0]["severity"] = json!("high");
    refused(&broken, "/statements/0");
    let mut broken = doc.clone();
    broken["version"] = json!("2");
    refused(&broken, "/version");
    let mut broken = doc.clone();
    broken["statements"][2]["products"][0] = json!({ "hashes": { "sha-256": "ab" } });
    refused(&broken, "/statements/2/products/0");
    let mut broken = doc.clone();
    broken["statements"][0]["vulnerability"]["aliases"] = json!(["ACME-1", "ACME-1"]);
    refused(&broken, "/statements/0/vulnerability/aliases");
    let mut broken = doc.clone();
    broken["last_updated"] = json!("2026-03-09 12:00");
    refused(&broken, "/last_updated");
    let mut broken = doc;
    broken["statements"][2]["justification"] = json!("not_exploitable");
    refused(&broken, "/statements/2/justification");

    // What the schema cannot say is still checked: this version's context, non-empty text.
    let mut other = json(&openvex(&r).unwrap());
    other["@context"] = json!("https://openvex.dev/ns/v0.1.0");
    refused(&other, "/@context");
    let mut other = json(&openvex(&r).unwrap());
    other["statements"][1]["action_statement"] = json!(" ");
    refused(&other, "/statements/1");
}
