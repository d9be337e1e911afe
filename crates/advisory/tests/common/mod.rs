//! A realistic advisory record shared by the integration tests: an XSS in the Acme gateway's
//! admin console, fixed in 2.4.1; the Acme portal SDK ships the same template code but never
//! renders it.

#![allow(dead_code)]

use psirt_advisory::*;
use time::macros::datetime;
use uuid::Uuid;

pub fn record() -> AdvisoryRecord {
    AdvisoryRecord {
        publisher: Publisher {
            name: "Acme Corp".into(),
            namespace: "https://psirt.acme.example".into(),
            category: PublisherCategory::Vendor,
            contact_details: "psirt@acme.example".into(),
            issuing_authority: Some("Acme Product Security Incident Response Team".into()),
        },
        tracking_id: "ACME-SA-2026-0007".into(),
        // "ACME-" is no OSV-registered prefix; see `osv_rejects_unregistered_id_prefixes`.
        osv_id: Some("CVE-2026-12345".into()),
        title: "Stored cross-site scripting in the Acme Gateway admin console".into(),
        summary: "A stored cross-site scripting vulnerability in the Acme Gateway admin console lets an \
                  authenticated operator run script in another administrator's browser."
            .into(),
        details: "The device name field of the admin console is rendered without output encoding. An \
                  operator with device-edit rights can store a script that runs when an administrator \
                  opens the device list."
            .into(),
        workarounds: Some("Restrict device-edit rights to trusted administrators.".into()),
        legal_disclaimer: None,
        acknowledgments: vec![
            Acknowledgment {
                name: "Jane Doe".into(),
                organization: Some("Example Security Lab".into()),
                url: Some("https://lab.example/jane".into()),
                consent: true,
            },
            Acknowledgment {
                name: "Private Person".into(),
                organization: Some("Secret Org".into()),
                url: Some("https://secret.example".into()),
                consent: false,
            },
        ],
        references: vec![Reference {
            url: "https://docs.acme.example/gateway/release-notes/2.4.1".into(),
            summary: Some("Acme Gateway 2.4.1 release notes".into()),
        }],
        case_key: "CASE-2026-0042".into(),
        cve: Some("CVE-2026-12345".into()),
        cna: Some(CveNumberingAuthority {
            org_id: Uuid::from_u128(0x6a4e_1b52_3c7d_4e8f_9a0b_1c2d_3e4f_5a6b),
            short_name: "acme".into(),
        }),
        cwe: Some(Cwe {
            id: "CWE-79".into(),
            name: "Improper Neutralization of Input During Web Page Generation ('Cross-site Scripting')"
                .into(),
        }),
        cvss_v3_1: Some(CvssScore {
            vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N".into(),
            base_score: 6.1,
            severity: Severity::Medium,
        }),
        cvss_v4_0: Some(CvssScore {
            vector: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:P/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N".into(),
            base_score: 5.3,
            severity: Severity::Medium,
        }),
        products: vec![
            ProductEntry {
                product: "pkg:npm/acme-portal-sdk".into(),
                version: "3.2.0".into(),
                status: ProductStatus::KnownNotAffected {
                    justification: Justification::VulnerableCodeNotInExecutePath,
                    impact_statement: "The SDK bundles the template but never renders the device list."
                        .into(),
                },
            },
            ProductEntry {
                product: "acme-gateway".into(),
                version: "vers:semver/>=2.0.0|<2.4.1".into(),
                status: ProductStatus::KnownAffected,
            },
        ],
        remediations: vec![Remediation {
            category: RemediationCategory::Workaround,
            details: "Restrict device-edit rights to trusted administrators until the update is installed."
                .into(),
            products: vec![ProductRef { product: "acme-gateway".into(), version: None }],
            url: None,
            date: None,
        }],
        releases: vec![Release {
            product: "acme-gateway".into(),
            fixed_version: "2.4.1".into(),
            date: datetime!(2026-03-01 09:00 UTC),
            notes_url: Some("https://docs.acme.example/gateway/release-notes/2.4.1".into()),
        }],
        revision_history: vec![
            Revision {
                version: "2".into(),
                date: datetime!(2026-03-09 12:00 UTC),
                summary: "Added CVSS v4.0".into(),
            },
            Revision {
                version: "1".into(),
                date: datetime!(2026-03-02 10:00 UTC),
                summary: "Initial release".into(),
            },
        ],
        initial_release_date: datetime!(2026-03-02 10:00 UTC),
        current_release_date: datetime!(2026-03-09 12:00 UTC),
        status: DocumentStatus::Final,
        language: "en".into(),
        canonical_url: None,
    }
}

pub fn json(doc: &Document) -> serde_json::Value {
    serde_json::from_slice(&doc.bytes).expect("generated documents are json")
}
