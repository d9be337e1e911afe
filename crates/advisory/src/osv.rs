//! OSV 1.6 entries. OSV lists affected packages only: not-affected and fixed versions show up
//! as range ends, never on their own. A product without a purl has no OSV ecosystem, so its
//! entry carries no `package` and names the product in `database_specific` instead.

use serde_json::{Map, Value, json};

use crate::products::{Catalog, Leaf, Span, is_purl, product_name, purl_parts};
use crate::record::AdvisoryRecord;
use crate::{DocumentError, credit_name, prepare, timestamp};

/// The OSV schema version the output follows (the bundled schema is 1.6.7).
const SCHEMA_VERSION: &str = "1.6.7";

/// The OSV ecosystem of a purl type, where one exists.
fn ecosystem(purl_type: &str) -> Option<&'static str> {
    Some(match purl_type {
        "npm" => "npm",
        "pypi" => "PyPI",
        "cargo" => "crates.io",
        "maven" => "Maven",
        "golang" => "Go",
        "gem" => "RubyGems",
        "nuget" => "NuGet",
        "composer" => "Packagist",
        "hex" => "Hex",
        "pub" => "Pub",
        "hackage" => "Hackage",
        "cran" => "CRAN",
        "swift" => "SwiftURL",
        "conan" => "ConanCenter",
        "github" => "GitHub Actions",
        _ => return None,
    })
}

pub(crate) fn generate(record: &AdvisoryRecord) -> Result<Value, DocumentError> {
    let (catalog, _) = prepare(record)?;
    let mut v = Map::new();
    v.insert("schema_version".into(), json!(SCHEMA_VERSION));
    let id = record.osv_id.as_deref().unwrap_or(&record.tracking_id);
    v.insert("id".into(), json!(id));
    v.insert("modified".into(), json!(timestamp(record.current_release_date)));
    v.insert("published".into(), json!(timestamp(record.initial_release_date)));
    let aliases: Vec<&str> =
        record.cve.iter().chain([&record.tracking_id]).map(String::as_str).filter(|a| *a != id).collect();
    if !aliases.is_empty() {
        v.insert("aliases".into(), json!(aliases));
    }
    v.insert("summary".into(), json!(record.title));
    v.insert("details".into(), json!(format!("{}\n\n{}", record.summary, record.details)));
    let mut severity = Vec::new();
    if let Some(v3) = &record.cvss_v3_1 {
        severity.push(json!({ "type": "CVSS_V3", "score": v3.vector }));
    }
    if let Some(v4) = &record.cvss_v4_0 {
        severity.push(json!({ "type": "CVSS_V4", "score": v4.vector }));
    }
    if !severity.is_empty() {
        v.insert("severity".into(), json!(severity));
    }
    let affected: Vec<Value> =
        catalog.products().into_iter().filter_map(|p| affected_entry(record, &catalog, p)).collect();
    if !affected.is_empty() {
        v.insert("affected".into(), json!(affected));
    }
    let mut references = vec![json!({ "type": "ADVISORY", "url": crate::canonical_url(record) })];
    for r in &record.references {
        references.push(json!({ "type": "WEB", "url": r.url }));
    }
    for release in &record.releases {
        if let Some(url) = &release.notes_url {
            references.push(json!({ "type": "FIX", "url": url }));
        }
    }
    let mut seen = Vec::new();
    references.retain(|r| {
        let fresh = !seen.contains(&r["url"]);
        seen.push(r["url"].clone());
        fresh
    });
    v.insert("references".into(), json!(references));
    let mut credits: Vec<Value> = Vec::new();
    for ack in &record.acknowledgments {
        let mut item = json!({ "name": credit_name(ack), "type": "FINDER" });
        if ack.consent {
            if let Some(url) = &ack.url {
                item["contact"] = json!([url]);
            }
        }
        if !credits.contains(&item) {
            credits.push(item);
        }
    }
    if !credits.is_empty() {
        v.insert("credits".into(), json!(credits));
    }
    if let Some(cwe) = &record.cwe {
        v.insert("database_specific".into(), json!({ "cwe_ids": [cwe.id] }));
    }
    Ok(Value::Object(v))
}

fn affected_entry(record: &AdvisoryRecord, catalog: &Catalog, product: &str) -> Option<Value> {
    let affected: Vec<&Leaf> = catalog.leaves_of(product).filter(|l| l.is_affected()).collect();
    if affected.is_empty() {
        return None;
    }
    let mut ranges = Vec::new();
    let mut versions = Vec::new();
    for leaf in &affected {
        match &leaf.range {
            None => versions.push(json!(leaf.version)),
            Some(range) => {
                let kind = if range.scheme == "semver" { "SEMVER" } else { "ECOSYSTEM" };
                // One range per span: OSV forbids fixed and last_affected in the same range.
                for span in &range.spans {
                    match span {
                        Span::Exact(v) => versions.push(json!(v)),
                        Span::Between { lower, upper } => {
                            let mut events = vec![
                                json!({ "introduced": lower.as_ref().map_or("0", |b| b.version.as_str()) }),
                            ];
                            match upper {
                                Some(b) if b.inclusive => events.push(json!({ "last_affected": b.version })),
                                Some(b) => events.push(json!({ "fixed": b.version })),
                                None => {}
                            }
                            ranges.push(json!({ "type": kind, "events": events }));
                        }
                    }
                }
            }
        }
    }
    let mut entry = Map::new();
    let purl = is_purl(product).then(|| purl_parts(product)).flatten();
    match purl.and_then(|(ty, name)| ecosystem(ty).map(|eco| (eco, name))) {
        Some((eco, name)) => {
            entry.insert("package".into(), json!({ "ecosystem": eco, "name": name, "purl": product }));
        }
        None => {
            entry.insert(
                "database_specific".into(),
                json!({ "vendor": record.publisher.name, "product": product_name(product) }),
            );
        }
    }
    if !ranges.is_empty() {
        entry.insert("ranges".into(), json!(ranges));
    }
    if !versions.is_empty() {
        entry.insert("versions".into(), json!(versions));
    }
    Some(Value::Object(entry))
}
