//! A CSAF trusted provider (CSAF 2.0 section 7.2.3): every document signed (requirement 19)
//! with the key published and listed in the metadata (requirement 20), checked the way a
//! CSAF checker does, with GnuPG: import the published key, compare its fingerprint with the
//! listed one, verify every `.asc` and hash. GnuPG must be installed (`just ensure-validators`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::record;
use pgp::composed::{ArmorOptions, EncryptionCaps, KeyType, SecretKeyParamsBuilder, SubkeyParamsBuilder};
use pgp::crypto::ecc_curve::ECCCurve;
use psirt_advisory::openpgp::{KeyError, SigningKey};
use psirt_advisory::provider::{ProviderConfig, ProviderDirectory, PublishedCsaf};
use psirt_advisory::{CsafCategory, Format, csaf, validate};
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;
use time::macros::datetime;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/openpgp").join(name)
}

/// The GnuPG-made test key: certify-only primary, signing subkey, passphrase.
const GPG_KEY_FINGERPRINT: &str = "C46EC6F4539A4D4271FC40D21965EF4D0521075B";

fn gpg_made_key() -> SigningKey {
    SigningKey::load(
        &testdata("subkey-signing.sec.asc"),
        Some(&testdata("subkey-signing.passphrase")),
        OffsetDateTime::now_utc(),
    )
    .expect("the test key loads")
}

/// A fresh ed25519 key whose primary key signs, no passphrase (made with the pgp crate).
fn generated_key_armored(uid: &str) -> String {
    let params = SecretKeyParamsBuilder::default()
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id(uid.into())
        .build()
        .expect("params");
    let key = params.generate(rand08::thread_rng()).expect("generate");
    key.to_armored_string(ArmorOptions::default()).expect("armor")
}

fn generated_key(uid: &str) -> SigningKey {
    SigningKey::from_armored(&generated_key_armored(uid), None, OffsetDateTime::now_utc()).expect("loads")
}

fn directory(root: &Path, key: Option<SigningKey>) -> ProviderDirectory {
    ProviderDirectory::new(
        root,
        ProviderConfig {
            base_url: "https://psirt.acme.example".into(),
            publisher: record().publisher,
            sha512: true,
            list_on_aggregators: true,
            mirror_on_aggregators: true,
            signing_key: key,
        },
    )
}

fn publish(dir: &ProviderDirectory, id: &str, bytes: &[u8]) {
    dir.publish(&PublishedCsaf {
        tracking_id: id,
        initial_release_date: datetime!(2026-02-01 00:00 UTC),
        current_release_date: datetime!(2026-02-02 00:00 UTC),
        bytes,
    })
    .expect("publish");
}

fn metadata(root: &Path) -> Value {
    serde_json::from_slice(&fs::read(root.join("provider-metadata.json")).expect("metadata")).expect("json")
}

/// A temporary GnuPG home holding only the key the metadata lists, imported from the
/// published file; checks the imported key's fingerprint is the listed one.
struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    fn with_listed_key(root: &Path) -> Self {
        let metadata = metadata(root);
        let keys = metadata["public_openpgp_keys"].as_array().expect("keys listed");
        assert_eq!(keys.len(), 1, "{metadata}");
        let fingerprint = keys[0]["fingerprint"].as_str().expect("fingerprint");
        let url = keys[0]["url"].as_str().expect("url");
        let rel =
            url.strip_prefix("https://psirt.acme.example/.well-known/csaf/").expect("url in the directory");
        let home = tempfile::Builder::new().prefix("gpg").tempdir_in("/tmp").expect("tempdir");
        let gpg = Self { home };
        let out = gpg.run(&["--import", &root.join(rel).display().to_string()]);
        assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
        let out = gpg.run(&["--with-colons", "--fingerprint", "--list-keys"]);
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        let primary = listing.lines().find(|l| l.starts_with("fpr:")).and_then(|l| l.split(':').nth(9));
        assert_eq!(primary, Some(fingerprint), "the published key is the listed one: {listing}");
        gpg
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("gpg")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--batch", "--no-tty", "--no-auto-key-locate", "--status-fd", "1"])
            .args(args)
            .output()
            .expect("gpg runs (install gnupg: just ensure-validators)")
    }

    /// `Ok(signer fingerprint, primary fingerprint)` from GnuPG's VALIDSIG, else its output.
    fn verify(&self, document: &Path) -> Result<(String, String), String> {
        let asc = format!("{}.asc", document.display());
        let out = self.run(&["--verify", &asc, &document.display().to_string()]);
        let status = String::from_utf8_lossy(&out.stdout).into_owned();
        let valid = status.lines().find_map(|l| l.strip_prefix("[GNUPG:] VALIDSIG "));
        match (out.status.success(), valid) {
            (true, Some(v)) => {
                let f: Vec<&str> = v.split(' ').collect();
                Ok((f[0].to_owned(), f.last().copied().unwrap_or_default().to_owned()))
            }
            _ => Err(format!("{status}{}", String::from_utf8_lossy(&out.stderr))),
        }
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        // Verification starts no agent, but stop any this home got, by its home only.
        let _ =
            Command::new("gpgconf").arg("--homedir").arg(self.home.path()).args(["--kill", "all"]).output();
    }
}

#[test]
fn a_signed_directory_is_a_trusted_provider_that_gnupg_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let key = gpg_made_key();
    assert_eq!(key.fingerprint(), GPG_KEY_FINGERPRINT);
    assert_ne!(key.signer_fingerprint(), GPG_KEY_FINGERPRINT, "the signing subkey signs");
    let dir = directory(root, Some(key.clone()));
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
    assert_eq!(files.signature.as_deref(), Some("2026/acme-sa-2026-0007.json.asc"));
    publish(&dir, "ACME-SA-2026-0001", b"{\"second\":true}\n");

    let metadata = metadata(root);
    validate(Format::CsafProviderMetadata, &metadata).unwrap();
    assert_eq!(metadata["role"], "csaf_trusted_provider");
    assert_eq!(
        metadata["public_openpgp_keys"],
        serde_json::json!([{
            "fingerprint": GPG_KEY_FINGERPRINT,
            "url": format!("https://psirt.acme.example/.well-known/csaf/openpgp/{GPG_KEY_FINGERPRINT}.asc"),
        }])
    );
    let published_key = fs::read_to_string(root.join(format!("openpgp/{GPG_KEY_FINGERPRINT}.asc"))).unwrap();
    assert!(published_key.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"), "{published_key}");
    assert!(!published_key.contains("PRIVATE"), "only the public key is published");

    let gpg = Gpg::with_listed_key(root);
    let index = fs::read_to_string(root.join("index.txt")).unwrap();
    assert_eq!(index.lines().count(), 2);
    for rel in index.lines() {
        let document = root.join(rel);
        let asc = fs::read_to_string(format!("{}.asc", document.display())).unwrap();
        assert!(asc.starts_with("-----BEGIN PGP SIGNATURE-----"), "ascii-armored: {asc}");
        let (signer, primary) = gpg.verify(&document).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(primary, GPG_KEY_FINGERPRINT);
        assert_eq!(signer, key.signer_fingerprint());
        let bytes = fs::read(&document).unwrap();
        let name = document.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            fs::read_to_string(format!("{}.sha256", document.display())).unwrap(),
            format!("{}  {name}\n", hex::encode(Sha256::digest(&bytes)))
        );
        assert_eq!(
            fs::read_to_string(format!("{}.sha512", document.display())).unwrap(),
            format!("{}  {name}\n", hex::encode(Sha512::digest(&bytes)))
        );
    }
}

#[test]
fn a_tampered_advisory_fails_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dir = directory(root, Some(generated_key("Acme PSIRT <psirt@acme.example>")));
    publish(&dir, "ACME-SA-2026-0002", b"{\"fixed\":\"2.4.1\"}\n");
    let gpg = Gpg::with_listed_key(root);
    let document = root.join("2026/acme-sa-2026-0002.json");
    gpg.verify(&document).expect("the untouched document verifies");
    fs::write(&document, b"{\"fixed\":\"2.4.2\"}\n").unwrap();
    let err = gpg.verify(&document).expect_err("a changed document must not verify");
    assert!(err.contains("BADSIG"), "{err}");
}

#[test]
fn a_rotated_key_signs_every_document_again_and_only_it_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // Started without a key: a plain provider.
    publish(&directory(root, None), "ACME-SA-2026-0003", b"{\"n\":3}\n");
    assert_eq!(metadata(root)["role"], "csaf_provider");
    assert!(!root.join("2026/acme-sa-2026-0003.json.asc").exists());

    // A key is configured: refreshing signs what was published before.
    let old = generated_key("Acme PSIRT 2026 <psirt@acme.example>");
    directory(root, Some(old.clone())).refresh().unwrap();
    assert_eq!(metadata(root)["role"], "csaf_trusted_provider");
    let gpg = Gpg::with_listed_key(root);
    let (_, primary) = gpg.verify(&root.join("2026/acme-sa-2026-0003.json")).unwrap();
    assert_eq!(primary, old.fingerprint());

    // Rotation: the next publication with the new key signs every document with it.
    let new = generated_key("Acme PSIRT 2027 <psirt@acme.example>");
    publish(&directory(root, Some(new.clone())), "ACME-SA-2026-0004", b"{\"n\":4}\n");
    let listed = metadata(root)["public_openpgp_keys"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["fingerprint"], new.fingerprint());
    let gpg = Gpg::with_listed_key(root);
    for rel in ["2026/acme-sa-2026-0003.json", "2026/acme-sa-2026-0004.json"] {
        let (_, primary) = gpg.verify(&root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(primary, new.fingerprint());
    }

    // The key removed again: no signature is left that the metadata does not back.
    directory(root, None).refresh().unwrap();
    let metadata = metadata(root);
    assert_eq!(metadata["role"], "csaf_provider");
    assert!(metadata.get("public_openpgp_keys").is_none());
    assert!(!root.join("2026/acme-sa-2026-0003.json.asc").exists());
    assert!(!root.join("2026/acme-sa-2026-0004.json.asc").exists());
}

#[test]
fn unusable_keys_are_refused_with_the_reason() {
    let now = OffsetDateTime::now_utc();
    let load = |file: &str, pass: Option<&str>, now| {
        SigningKey::load(&testdata(file), pass.map(testdata).as_deref(), now)
    };
    // Wrong or missing passphrase.
    let tmp = tempfile::tempdir().unwrap();
    let wrong = tmp.path().join("wrong");
    fs::write(&wrong, "not the passphrase\n").unwrap();
    let err = SigningKey::load(&testdata("subkey-signing.sec.asc"), Some(&wrong), now).unwrap_err();
    assert!(matches!(err, KeyError::Passphrase(..)), "{err}");
    let err = load("subkey-signing.sec.asc", None, now).unwrap_err();
    assert!(matches!(err, KeyError::Passphrase(..)), "{err}");
    // Expired: made with a clock in 2020, valid for a year; and the long-lived key in 2080.
    let err = load("expired.sec.asc", None, now).unwrap_err();
    assert!(matches!(err, KeyError::Expired { .. }), "{err}");
    assert!(err.to_string().contains("2020-12-31"), "{err}");
    let err =
        load("subkey-signing.sec.asc", Some("subkey-signing.passphrase"), datetime!(2080-01-01 00:00 UTC))
            .unwrap_err();
    assert!(matches!(err, KeyError::Expired { .. }), "{err}");
    // Not a secret key: the public key, garbage.
    let public = gpg_made_key().public_key_armored().to_owned();
    let err = SigningKey::from_armored(&public, None, now).unwrap_err();
    assert!(matches!(err, KeyError::Parse(_)), "{err}");
    let err =
        SigningKey::from_armored("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxx\n", None, now).unwrap_err();
    assert!(matches!(err, KeyError::Parse(_)), "{err}");
    // A key that cannot sign: certify-only primary with an encryption subkey.
    let params = SecretKeyParamsBuilder::default()
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(false)
        .primary_user_id("No signing <nosign@acme.example>".into())
        .subkeys(vec![
            SubkeyParamsBuilder::default()
                .key_type(KeyType::ECDH(ECCCurve::Curve25519Legacy))
                .can_encrypt(EncryptionCaps::All)
                .build()
                .unwrap(),
        ])
        .build()
        .unwrap();
    let armored =
        params.generate(rand08::thread_rng()).unwrap().to_armored_string(ArmorOptions::default()).unwrap();
    let err = SigningKey::from_armored(&armored, None, now).unwrap_err();
    assert!(matches!(err, KeyError::CannotSign(_)), "{err}");
    // Too large a file is not read.
    let big = tmp.path().join("big.asc");
    fs::write(&big, vec![b'a'; 2 * 1024 * 1024]).unwrap();
    let err = SigningKey::load(&big, None, now).unwrap_err();
    assert!(matches!(err, KeyError::TooLarge { .. }), "{err}");
}

#[test]
fn debug_output_shows_no_secret_material() {
    let key = gpg_made_key();
    let debug = format!("{key:?}");
    assert!(debug.contains(GPG_KEY_FINGERPRINT), "{debug}");
    assert!(!debug.contains("secret") && !debug.contains("PRIVATE"), "{debug}");
}
