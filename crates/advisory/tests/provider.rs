//! The CSAF provider directory: layout, hashes, index, changes and metadata. Signatures and
//! the trusted provider role are in `signing.rs`.

mod common;

use std::fs;

use common::record;
use psirt_advisory::provider::{ProviderConfig, ProviderDirectory, PublishedCsaf, PublishedFiles};
use psirt_advisory::{CsafCategory, Format, csaf, validate};
use sha2::{Digest, Sha256, Sha512};
use time::macros::datetime;

fn directory(root: &std::path::Path, sha512: bool) -> ProviderDirectory {
    ProviderDirectory::new(
        root,
        ProviderConfig {
            base_url: "https://psirt.acme.example/".into(),
            publisher: record().publisher,
            sha512,
            list_on_aggregators: true,
            mirror_on_aggregators: true,
            signing_key: None,
        },
    )
}

#[test]
fn publishing_lays_out_the_directory_with_correct_hashes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = directory(tmp.path(), true);
    let r = record();
    let doc = csaf(&r, CsafCategory::SecurityAdvisory).unwrap();
    let files = dir
        .publish(&PublishedCsaf {
            tracking_id: &r.tracking_id,
            initial_release_date: r.initial_release_date,
            current_release_date: r.current_release_date,
            bytes: &doc.bytes,
        })
        .unwrap();
    assert_eq!(
        files,
        PublishedFiles {
            document: "2026/acme-sa-2026-0007.json".into(),
            sha256: "2026/acme-sa-2026-0007.json.sha256".into(),
            sha512: Some("2026/acme-sa-2026-0007.json.sha512".into()),
            signature: None,
        }
    );
    let root = tmp.path();
    assert_eq!(fs::read(root.join("2026/acme-sa-2026-0007.json")).unwrap(), doc.bytes);
    let sha256 = fs::read_to_string(root.join("2026/acme-sa-2026-0007.json.sha256")).unwrap();
    assert_eq!(sha256, format!("{}  acme-sa-2026-0007.json\n", hex::encode(Sha256::digest(&doc.bytes))));
    let sha512 = fs::read_to_string(root.join("2026/acme-sa-2026-0007.json.sha512")).unwrap();
    assert_eq!(sha512, format!("{}  acme-sa-2026-0007.json\n", hex::encode(Sha512::digest(&doc.bytes))));
    assert_eq!(fs::read_to_string(root.join("index.txt")).unwrap(), "2026/acme-sa-2026-0007.json\n");
    assert_eq!(
        fs::read_to_string(root.join("changes.csv")).unwrap(),
        "\"2026/acme-sa-2026-0007.json\",\"2026-03-09T12:00:00Z\"\n"
    );

    let metadata: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("provider-metadata.json")).unwrap()).unwrap();
    validate(Format::CsafProviderMetadata, &metadata).unwrap();
    // Without a signing key the directory claims only what it meets: no signatures, no key.
    assert_eq!(metadata["role"], "csaf_provider");
    assert!(metadata.get("public_openpgp_keys").is_none(), "{metadata}");
    assert!(!root.join("2026/acme-sa-2026-0007.json.asc").exists());
    assert!(!root.join("openpgp").exists());
    assert_eq!(
        metadata["canonical_url"],
        "https://psirt.acme.example/.well-known/csaf/provider-metadata.json"
    );
    assert_eq!(metadata["distributions"][0]["directory_url"], "https://psirt.acme.example/.well-known/csaf/");
    assert_eq!(metadata["last_updated"], "2026-03-09T12:00:00Z");
    assert_eq!(metadata["publisher"]["name"], "Acme Corp");

    // No temporary files are left behind.
    let leftovers: Vec<_> =
        fs::read_dir(root.join("2026")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 3, "{leftovers:?}");
}

#[test]
fn index_is_sorted_and_changes_are_newest_first_one_line_per_document() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = directory(tmp.path(), false);
    let publish = |id: &str, initial, current| {
        dir.publish(&PublishedCsaf {
            tracking_id: id,
            initial_release_date: initial,
            current_release_date: current,
            bytes: format!("{{\"id\":\"{id}\"}}").as_bytes(),
        })
        .unwrap()
    };
    publish("ACME-SA-2026-0002", datetime!(2026-02-01 00:00 UTC), datetime!(2026-02-01 00:00 UTC));
    publish("ACME-SA-2025-0099", datetime!(2025-12-01 00:00 UTC), datetime!(2025-12-01 00:00 UTC));
    let files =
        publish("ACME-SA-2026-0001", datetime!(2026-01-10 00:00 UTC), datetime!(2026-01-10 00:00 UTC));
    assert_eq!(files.sha512, None);
    // A revision of an existing document moves it to the top of changes.csv, once.
    publish("ACME-SA-2025-0099", datetime!(2025-12-01 00:00 UTC), datetime!(2026-03-01 08:30 UTC));

    let root = tmp.path();
    assert_eq!(
        fs::read_to_string(root.join("index.txt")).unwrap(),
        "2025/acme-sa-2025-0099.json\n2026/acme-sa-2026-0001.json\n2026/acme-sa-2026-0002.json\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("changes.csv")).unwrap(),
        "\"2025/acme-sa-2025-0099.json\",\"2026-03-01T08:30:00Z\"\n\
         \"2026/acme-sa-2026-0002.json\",\"2026-02-01T00:00:00Z\"\n\
         \"2026/acme-sa-2026-0001.json\",\"2026-01-10T00:00:00Z\"\n"
    );
    assert!(!root.join("2026/acme-sa-2026-0001.json.sha512").exists());
    let metadata: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("provider-metadata.json")).unwrap()).unwrap();
    assert_eq!(metadata["last_updated"], "2026-03-01T08:30:00Z");
}

#[test]
fn a_malformed_changes_file_is_reported_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("changes.csv"), "garbage\n").unwrap();
    let err = directory(tmp.path(), false)
        .publish(&PublishedCsaf {
            tracking_id: "ACME-SA-2026-0003",
            initial_release_date: datetime!(2026-01-01 00:00 UTC),
            current_release_date: datetime!(2026-01-01 00:00 UTC),
            bytes: b"{}",
        })
        .unwrap_err();
    assert!(err.to_string().contains("changes.csv"), "{err}");
    assert_eq!(fs::read_to_string(tmp.path().join("changes.csv")).unwrap(), "garbage\n");
}

#[test]
fn provider_metadata_checks_reject_a_wrong_role() {
    let metadata = serde_json::json!({
        "canonical_url": "https://psirt.acme.example/.well-known/csaf/provider-metadata.json",
        "distributions": [{ "directory_url": "https://psirt.acme.example/.well-known/csaf/" }],
        "last_updated": "2026-03-01T08:30:00Z",
        "list_on_CSAF_aggregators": true,
        "metadata_version": "2.0",
        "mirror_on_CSAF_aggregators": true,
        "publisher": { "category": "vendor", "name": "Acme Corp", "namespace": "https://psirt.acme.example" },
        "role": "csaf_trusted_provider",
        "public_openpgp_keys": [{
            "fingerprint": "C46EC6F4539A4D4271FC40D21965EF4D0521075B",
            "url": "https://psirt.acme.example/.well-known/csaf/openpgp/C46EC6F4539A4D4271FC40D21965EF4D0521075B.asc",
        }],
    });
    validate(Format::CsafProviderMetadata, &metadata).unwrap();
    let mut wrong = metadata.clone();
    wrong["role"] = serde_json::json!("trusted");
    assert!(validate(Format::CsafProviderMetadata, &wrong).is_err());
    // A trusted provider lists the key its signatures verify against.
    let mut unsigned = metadata.clone();
    unsigned.as_object_mut().unwrap().remove("public_openpgp_keys");
    let err = validate(Format::CsafProviderMetadata, &unsigned).unwrap_err();
    assert!(err.to_string().contains("/public_openpgp_keys"), "{err}");
    unsigned["role"] = serde_json::json!("csaf_provider");
    validate(Format::CsafProviderMetadata, &unsigned).unwrap();
    let mut short = metadata;
    short["public_openpgp_keys"][0]["fingerprint"] = serde_json::json!("C46EC6F4");
    assert!(validate(Format::CsafProviderMetadata, &short).is_err());
}
