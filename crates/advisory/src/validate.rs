//! Validation of generated (or received) documents against the official JSON schemas bundled
//! in `schemas/`, compiled once and resolved offline, plus the checks the schemas cannot
//! express: a subset of the CSAF 2.0 mandatory tests, the OpenVEX rules beyond its schema,
//! and spec-derived checks for the CSAF provider metadata, whose official schema could not be
//! bundled (see `schemas/README.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use boon::{Compiler, SchemaIndex, Schemas, ValidationError};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{DocumentError, Format};

const CSAF_ID: &str = "https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json";
const CVE_ID: &str = "https://cveproject.github.io/cve-schema/schema/CVE_Record_Format.json";
const OSV_ID: &str = "https://raw.githubusercontent.com/ossf/osv-schema/main/validation/schema.json";
const OPENVEX_ID: &str = "https://github.com/openvex/spec/openvex_json_schema_0.2.0.json";

/// (location the schema is registered and referenced under, file content)
const RESOURCES: [(&str, &str); 7] = [
    (CSAF_ID, include_str!("../schemas/csaf_json_schema.json")),
    ("https://www.first.org/cvss/cvss-v2.0.json", include_str!("../schemas/cvss-v2.0.json")),
    ("https://www.first.org/cvss/cvss-v3.0.json", include_str!("../schemas/cvss-v3.0.json")),
    ("https://www.first.org/cvss/cvss-v3.1.json", include_str!("../schemas/cvss-v3.1.json")),
    (CVE_ID, include_str!("../schemas/CVE_JSON_bundled_5.1.1.json")),
    (OSV_ID, include_str!("../schemas/osv_schema.json")),
    (OPENVEX_ID, include_str!("../schemas/openvex_json_schema_0.2.0.json")),
];

struct Compiled {
    schemas: Schemas,
    csaf: SchemaIndex,
    cve: SchemaIndex,
    osv: SchemaIndex,
    openvex: SchemaIndex,
}

static COMPILED: LazyLock<Result<Compiled, String>> = LazyLock::new(compile);

fn compile() -> Result<Compiled, String> {
    let mut compiler = Compiler::new();
    // `format` is only an annotation by default in draft 2020-12; the CSAF, OSV and OpenVEX
    // specs mean date-time, uri and iri literally.
    compiler.enable_format_assertions();
    for (loc, text) in RESOURCES {
        let json: Value =
            serde_json::from_str(text).map_err(|e| format!("bundled schema {loc} is not json: {e}"))?;
        compiler.add_resource(loc, json).map_err(|e| format!("bundled schema {loc}: {e}"))?;
    }
    let mut schemas = Schemas::new();
    let mut one = |loc: &str| compiler.compile(loc, &mut schemas).map_err(|e| format!("schema {loc}: {e:#}"));
    let csaf = one(CSAF_ID)?;
    let cve = one(CVE_ID)?;
    let osv = one(OSV_ID)?;
    let openvex = one(OPENVEX_ID)?;
    Ok(Compiled { schemas, csaf, cve, osv, openvex })
}

/// Validates a document of the given format; `Err(DocumentError::Invalid)` lists what is wrong.
pub fn validate(format: Format, document: &Value) -> Result<(), DocumentError> {
    let messages = match format {
        Format::Csaf => {
            let mut m = schema_messages(format, document)?;
            if m.is_empty() {
                m = csaf_mandatory_messages(document);
            }
            m
        }
        Format::CveRecord | Format::Osv => schema_messages(format, document)?,
        Format::OpenVex => {
            let mut m = schema_messages(format, document)?;
            if m.is_empty() {
                m = openvex_messages(document);
            }
            m
        }
        Format::CsafProviderMetadata => provider_metadata_messages(document),
    };
    if messages.is_empty() { Ok(()) } else { Err(DocumentError::Invalid { format, messages }) }
}

fn schema_messages(format: Format, document: &Value) -> Result<Vec<String>, DocumentError> {
    let compiled = COMPILED.as_ref().map_err(|e| DocumentError::Invalid {
        format,
        messages: vec![format!("bundled schemas failed to compile: {e}")],
    })?;
    let index = match format {
        Format::Csaf => compiled.csaf,
        Format::CveRecord => compiled.cve,
        Format::OpenVex => compiled.openvex,
        _ => compiled.osv,
    };
    Ok(match compiled.schemas.validate(document, index) {
        Ok(()) => Vec::new(),
        Err(error) => {
            let mut out = BTreeSet::new();
            leaf_messages(&error, &mut out);
            out.into_iter().take(50).collect()
        }
    })
}

fn leaf_messages(error: &ValidationError<'_, '_>, out: &mut BTreeSet<String>) {
    if error.causes.is_empty() {
        let at = error.instance_location.to_string();
        let at = if at.is_empty() { "/".to_owned() } else { at };
        out.insert(format!("{at}: {}", error.kind));
    }
    for cause in &error.causes {
        leaf_messages(cause, out);
    }
}

/// Product ids defined in a CSAF product tree, with duplicates reported (test 6.1.2).
fn csaf_defined_ids(doc: &Value, messages: &mut Vec<String>) -> BTreeSet<String> {
    fn walk(branch: &Value, ids: &mut Vec<String>) {
        if let Some(id) = branch.pointer("/product/product_id").and_then(Value::as_str) {
            ids.push(id.to_owned());
        }
        for b in branch.get("branches").and_then(Value::as_array).into_iter().flatten() {
            walk(b, ids);
        }
    }
    let mut ids = Vec::new();
    if let Some(tree) = doc.get("product_tree") {
        walk(tree, &mut ids);
        for p in tree.get("full_product_names").and_then(Value::as_array).into_iter().flatten() {
            if let Some(id) = p.get("product_id").and_then(Value::as_str) {
                ids.push(id.to_owned());
            }
        }
        for r in tree.get("relationships").and_then(Value::as_array).into_iter().flatten() {
            if let Some(id) = r.pointer("/full_product_name/product_id").and_then(Value::as_str) {
                ids.push(id.to_owned());
            }
        }
    }
    let mut set = BTreeSet::new();
    for id in ids {
        if !set.insert(id.clone()) {
            messages.push(format!("/product_tree: product id {id} is defined more than once (6.1.2)"));
        }
    }
    set
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect()
}

/// A subset of the CSAF 2.0 mandatory tests (section 6.1) that the schema cannot express:
/// 6.1.1, 6.1.2, 6.1.6, 6.1.16, 6.1.27.4-11 and 6.1.29. The full set runs in the external
/// validator test (BSI csaf-validator-lib).
fn csaf_mandatory_messages(doc: &Value) -> Vec<String> {
    let mut messages = Vec::new();
    let defined = csaf_defined_ids(doc, &mut messages);
    let category = doc.pointer("/document/category").and_then(Value::as_str).unwrap_or_default();
    let profiled = matches!(category, "csaf_security_advisory" | "csaf_vex");
    let vex = category == "csaf_vex";

    // 6.1.16: the document version is the number of the newest revision.
    if let Some(history) = doc.pointer("/document/tracking/revision_history").and_then(Value::as_array) {
        let newest = history
            .iter()
            .filter_map(|r| Some((r.get("date")?.as_str()?, r.get("number")?.as_str()?)))
            .filter_map(|(d, n)| Some((OffsetDateTime::parse(d, &Rfc3339).ok()?, n)))
            .max_by_key(|(d, _)| *d);
        let version = doc.pointer("/document/tracking/version").and_then(Value::as_str);
        if let (Some((_, number)), Some(version)) = (newest, version) {
            if number != version {
                messages.push(format!(
                    "/document/tracking/version: {version} is not the newest revision {number} (6.1.16)"
                ));
            }
        }
    }
    if profiled && doc.get("product_tree").is_none() {
        messages.push(format!("/product_tree: required for {category} (6.1.27.4)"));
    }
    let vulns = doc.get("vulnerabilities").and_then(Value::as_array);
    if profiled && vulns.is_none_or(|v| v.is_empty()) {
        messages.push(format!("/vulnerabilities: required for {category} (6.1.27.11)"));
    }
    for (i, v) in vulns.into_iter().flatten().enumerate() {
        let at = format!("/vulnerabilities/{i}");
        let mut refs: Vec<(String, &str)> = Vec::new();
        let mut groups: BTreeMap<&str, &str> = BTreeMap::new();
        for (key, group) in [
            ("first_affected", "affected"),
            ("known_affected", "affected"),
            ("last_affected", "affected"),
            ("known_not_affected", "not affected"),
            ("first_fixed", "fixed"),
            ("fixed", "fixed"),
            ("recommended", ""),
            ("under_investigation", "under investigation"),
        ] {
            for id in strings(v.pointer(&format!("/product_status/{key}"))) {
                refs.push((format!("{at}/product_status/{key}"), id));
                if group.is_empty() {
                    continue;
                }
                if let Some(other) = groups.insert(id, group) {
                    if other != group {
                        messages
                            .push(format!("{at}/product_status: {id} is both {other} and {group} (6.1.6)"));
                    }
                }
            }
        }
        for (list, key) in
            [("remediations", "product_ids"), ("threats", "product_ids"), ("flags", "product_ids")]
        {
            for (j, item) in v.get(list).and_then(Value::as_array).into_iter().flatten().enumerate() {
                let ids = strings(item.get(key));
                if list == "remediations" && ids.is_empty() && item.get("group_ids").is_none() {
                    messages.push(format!("{at}/{list}/{j}: no product_ids or group_ids (6.1.29)"));
                }
                refs.extend(ids.into_iter().map(|id| (format!("{at}/{list}/{j}/{key}"), id)));
            }
        }
        for (j, score) in v.get("scores").and_then(Value::as_array).into_iter().flatten().enumerate() {
            refs.extend(
                strings(score.get("products")).into_iter().map(|id| (format!("{at}/scores/{j}"), id)),
            );
        }
        for (path, id) in refs {
            if !defined.contains(id) {
                messages.push(format!("{path}: product id {id} is not defined in the product tree (6.1.1)"));
            }
        }
        if profiled {
            if v.get("notes").and_then(Value::as_array).is_none_or(|n| n.is_empty()) {
                messages.push(format!("{at}/notes: required for {category} (6.1.27.5)"));
            }
            if v.get("product_status").is_none() {
                messages.push(format!("{at}/product_status: required for {category} (6.1.27.6)"));
            }
        }
        if vex {
            let status = |k: &str| strings(v.pointer(&format!("/product_status/{k}")));
            if ["fixed", "known_affected", "known_not_affected", "under_investigation"]
                .iter()
                .all(|k| status(k).is_empty())
            {
                messages.push(format!("{at}/product_status: no vex status (6.1.27.7)"));
            }
            if v.get("cve").is_none() && v.get("ids").is_none() {
                messages.push(format!("{at}: a vex vulnerability needs cve or ids (6.1.27.8)"));
            }
            let impact: BTreeSet<&str> = v
                .get("flags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|f| strings(f.get("product_ids")))
                .chain(
                    v.get("threats")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|t| t.get("category").and_then(Value::as_str) == Some("impact"))
                        .flat_map(|t| strings(t.get("product_ids"))),
                )
                .collect();
            for id in status("known_not_affected") {
                if !impact.contains(id) {
                    messages
                        .push(format!("{at}: known_not_affected {id} has no impact statement (6.1.27.9)"));
                }
            }
            let actions: BTreeSet<&str> = v
                .get("remediations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|r| strings(r.get("product_ids")))
                .collect();
            for id in status("known_affected") {
                if !actions.contains(id) {
                    messages.push(format!("{at}: known_affected {id} has no action statement (6.1.27.10)"));
                }
            }
        }
    }
    messages
}

fn is_rfc3339(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|s| OffsetDateTime::parse(s, &Rfc3339).is_ok())
}

fn non_empty_str(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty())
}

pub(crate) const OPENVEX_CONTEXT: &str = "https://openvex.dev/ns/v0.2.0";

/// The OpenVEX 0.2.0 rules the official schema cannot express; run once the document passes
/// the schema (which already checks the required fields, the RFC 3339 timestamps, the status
/// and justification values and that `not_affected` and `affected` carry their statements).
fn openvex_messages(doc: &Value) -> Vec<String> {
    let mut m = Vec::new();
    // The schema only asks for a uri; the specification fixes the context of this version.
    if doc.get("@context").and_then(Value::as_str) != Some(OPENVEX_CONTEXT) {
        m.push(format!("/@context: must be {OPENVEX_CONTEXT}"));
    }
    // The schema accepts empty strings where the specification means an identifier or text.
    for key in ["@id", "author"] {
        if !non_empty_str(doc.get(key)) {
            m.push(format!("/{key}: required non-empty string"));
        }
    }
    let statements = doc.get("statements").and_then(Value::as_array);
    for (i, s) in statements.into_iter().flatten().enumerate() {
        let at = format!("/statements/{i}");
        if !non_empty_str(s.pointer("/vulnerability/name")) {
            m.push(format!("{at}/vulnerability/name: required non-empty string"));
        }
        // A statement about no product says nothing (the schema leaves `products` optional).
        if s.get("products").and_then(Value::as_array).is_none_or(Vec::is_empty) {
            m.push(format!("{at}/products: required non-empty array"));
        }
        let status = s.get("status").and_then(Value::as_str).unwrap_or_default();
        if status == "not_affected"
            && s.get("justification").is_none()
            && !non_empty_str(s.get("impact_statement"))
        {
            m.push(format!("{at}: not_affected needs a justification or a non-empty impact_statement"));
        }
        if status == "affected" && !non_empty_str(s.get("action_statement")) {
            m.push(format!("{at}: affected needs a non-empty action_statement"));
        }
    }
    m
}

/// The CSAF 2.0 provider metadata rules (section 7.1.7 and the provider schema's required
/// properties); the official `provider_json_schema.json` is not available through the
/// package registries (see `schemas/README.md`).
fn provider_metadata_messages(doc: &Value) -> Vec<String> {
    let mut m = Vec::new();
    let canonical = doc.get("canonical_url").and_then(Value::as_str).unwrap_or_default();
    if !(canonical.starts_with("https://") && canonical.ends_with("/.well-known/csaf/provider-metadata.json"))
    {
        m.push("/canonical_url: must be https://<host>/.well-known/csaf/provider-metadata.json".to_owned());
    }
    if doc.get("metadata_version").and_then(Value::as_str) != Some("2.0") {
        m.push("/metadata_version: must be 2.0".to_owned());
    }
    if !is_rfc3339(doc.get("last_updated")) {
        m.push("/last_updated: must be an rfc 3339 date-time".to_owned());
    }
    for key in ["list_on_CSAF_aggregators", "mirror_on_CSAF_aggregators"] {
        if !doc.get(key).is_some_and(Value::is_boolean) {
            m.push(format!("/{key}: required boolean"));
        }
    }
    let role = doc.get("role").and_then(Value::as_str).unwrap_or_default();
    if !["csaf_publisher", "csaf_provider", "csaf_trusted_provider"].contains(&role) {
        m.push("/role: must be csaf_publisher, csaf_provider or csaf_trusted_provider".to_owned());
    }
    for key in ["category", "name", "namespace"] {
        if !non_empty_str(doc.pointer(&format!("/publisher/{key}"))) {
            m.push(format!("/publisher/{key}: required"));
        }
    }
    // Requirement 20 and the provider schema's `public_openpgp_keys`; a trusted provider
    // signs (requirement 19), so it must list the key its signatures verify against.
    let keys = doc.get("public_openpgp_keys").and_then(Value::as_array);
    if role == "csaf_trusted_provider" && keys.is_none_or(|k| k.is_empty()) {
        m.push(
            "/public_openpgp_keys: a csaf_trusted_provider lists the public OpenPGP key it signs with"
                .to_owned(),
        );
    }
    for (i, k) in keys.into_iter().flatten().enumerate() {
        let fingerprint = k.get("fingerprint").and_then(Value::as_str);
        if fingerprint.is_some_and(|f| f.len() < 40 || !f.bytes().all(|b| b.is_ascii_hexdigit())) {
            m.push(format!("/public_openpgp_keys/{i}/fingerprint: must be at least 40 hex digits"));
        }
        if !k.get("url").and_then(Value::as_str).is_some_and(|u| u.starts_with("https://")) {
            m.push(format!("/public_openpgp_keys/{i}/url: required https url"));
        }
    }
    let distributions = doc.get("distributions").and_then(Value::as_array);
    if distributions.is_none_or(|d| d.is_empty()) {
        m.push("/distributions: required non-empty array".to_owned());
    }
    for (i, d) in distributions.into_iter().flatten().enumerate() {
        let dir = d.get("directory_url").and_then(Value::as_str);
        if d.get("rolie").is_none() && dir.is_none() {
            m.push(format!("/distributions/{i}: needs directory_url or rolie"));
        }
        if dir.is_some_and(|u| !(u.starts_with("https://") && u.ends_with('/'))) {
            m.push(format!("/distributions/{i}/directory_url: must be an https url ending in /"));
        }
    }
    m
}
