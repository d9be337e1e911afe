//! The output checked by independent implementations:
//! - CSAF: the BSI csaf-validator-lib (strict CSAF 2.0 schema + all mandatory tests 6.1.x),
//!   run with node from `scripts/advisory/csaf-validator`
//!   (install: `npm ci --prefix scripts/advisory/csaf-validator`);
//! - CVE: the CVE Project's `cvelib` (`cve validate -s full`; install: `pip install cvelib==1.8.0`);
//! - OSV: python-jsonschema over the bundled OSV schema (`scripts/advisory/jsonschema_check.py`;
//!   install: `pip install jsonschema==4.26.0`).
//!
//! A missing tool fails the test with the install command; set
//! `PSIRT_SKIP_EXTERNAL_VALIDATORS=1` to skip these tests instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::record;
use psirt_advisory::{CsafCategory, csaf, cve_record, osv};

const SKIP: &str = "PSIRT_SKIP_EXTERNAL_VALIDATORS";

fn validator_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/advisory/csaf-validator")
}

fn skipped(what: &str) -> bool {
    let skip = std::env::var(SKIP).as_deref() == Ok("1");
    if skip {
        eprintln!("{SKIP}=1: external {what} validator skipped");
    }
    skip
}

/// Runs a validator; a tool that cannot start fails with the install hint.
fn run(mut command: Command, install: &str) -> (bool, String) {
    let output = match command.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run {:?} ({e}): {install} (or set {SKIP}=1 to skip this test)",
            command.get_program()
        ),
    };
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if text.contains("No module named") {
        panic!("{text}\n{install} (or set {SKIP}=1 to skip this test)");
    }
    (output.status.success(), text)
}

/// Runs the BSI validator over the files; `None` when skipping is requested.
fn bsi_validate(files: &[PathBuf]) -> Option<(bool, String)> {
    if skipped("csaf") {
        return None;
    }
    let dir = validator_dir();
    assert!(
        dir.join("node_modules/@secvisogram/csaf-validator-lib/package.json").exists(),
        "the BSI csaf validator is not installed: run `npm ci --prefix scripts/advisory/csaf-validator` \
         (or set {SKIP}=1 to skip this test)"
    );
    let mut command = Command::new("node");
    command.arg(dir.join("validate.mjs")).args(files).current_dir(&dir);
    Some(run(command, "install node.js 18+ and run `npm ci --prefix scripts/advisory/csaf-validator`"))
}

#[test]
fn csaf_documents_pass_the_bsi_validator() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, category) in
        [("advisory.json", CsafCategory::SecurityAdvisory), ("vex.json", CsafCategory::Vex)]
    {
        let path = tmp.path().join(name);
        std::fs::write(&path, csaf(&record(), category).unwrap().bytes).unwrap();
        files.push(path);
    }
    let mut no_cve = record();
    no_cve.cve = None;
    let path = tmp.path().join("vex-without-cve.json");
    std::fs::write(&path, csaf(&no_cve, CsafCategory::Vex).unwrap().bytes).unwrap();
    files.push(path);

    if let Some((ok, report)) = bsi_validate(&files) {
        assert!(ok, "BSI csaf-validator-lib rejected the output:\n{report}");
        assert_eq!(report.matches("VALID ").count(), files.len(), "{report}");
    }
}

#[test]
fn the_bsi_validator_catches_what_the_schema_cannot() {
    // A wrong CWE name is schema-valid but fails mandatory test 6.1.11; proves the external
    // check adds something and really runs.
    let mut r = record();
    r.cwe.as_mut().unwrap().name = "Cross-site Scripting".into();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("wrong-cwe.json");
    std::fs::write(&path, csaf(&r, CsafCategory::SecurityAdvisory).unwrap().bytes).unwrap();
    if let Some((ok, report)) = bsi_validate(&[path]) {
        assert!(!ok, "expected a failure:\n{report}");
        assert!(report.contains("mandatoryTest_6_1_11"), "{report}");
    }
}

#[test]
fn cve_record_passes_cvelib() {
    if skipped("cve") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("cve.json");
    std::fs::write(&good, cve_record(&record()).unwrap().bytes).unwrap();
    let mut tampered: serde_json::Value = serde_json::from_slice(&std::fs::read(&good).unwrap()).unwrap();
    tampered["containers"]["cna"]["affected"][0]["versions"][0]["status"] = serde_json::json!("vulnerable");
    let bad = tmp.path().join("tampered.json");
    std::fs::write(&bad, serde_json::to_vec(&tampered).unwrap()).unwrap();

    let cve = |file: &Path| {
        let mut c = Command::new("cve");
        c.args(["validate", "-s", "full", "-f"]).arg(file);
        run(c, "install cvelib: `pip install cvelib==1.8.0`")
    };
    let (ok, report) = cve(&good);
    assert!(ok && report.contains("CVE record is valid"), "cvelib rejected the output:\n{report}");
    let (ok, report) = cve(&bad);
    assert!(!ok, "cvelib accepted a tampered record:\n{report}");
}

#[test]
fn osv_passes_python_jsonschema() {
    if skipped("osv") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("osv.json");
    std::fs::write(&good, osv(&record()).unwrap().bytes).unwrap();
    let mut tampered: serde_json::Value = serde_json::from_slice(&std::fs::read(&good).unwrap()).unwrap();
    tampered["id"] = serde_json::json!("ACME-SA-2026-0007");
    let bad = tmp.path().join("tampered.json");
    std::fs::write(&bad, serde_json::to_vec(&tampered).unwrap()).unwrap();

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let check = |file: &Path| {
        let mut c = Command::new("python3");
        c.arg(root.join("../../scripts/advisory/jsonschema_check.py"))
            .arg(root.join("schemas/osv_schema.json"))
            .arg(file);
        run(c, "install python-jsonschema: `pip install jsonschema==4.26.0`")
    };
    let (ok, report) = check(&good);
    assert!(ok, "python-jsonschema rejected the output:\n{report}");
    let (ok, report) = check(&bad);
    assert!(!ok && report.contains("/id"), "python-jsonschema accepted a tampered entry:\n{report}");
}
