//! CSAF 2.0 documents (`csaf_security_advisory` and `csaf_vex`) from a record.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::products::{Catalog, Leaf, product_name};
use crate::record::{AdvisoryRecord, DEFAULT_LEGAL_DISCLAIMER, ProductStatus, RemediationCategory};
use crate::{CsafCategory, DocumentError, canonical_url, credit_name, prepare, timestamp};

pub(crate) fn generate(record: &AdvisoryRecord, category: CsafCategory) -> Result<Value, DocumentError> {
    let (catalog, revs) = prepare(record)?;
    let version = revs.last().map(|r| r.version.clone()).unwrap_or_default();

    let mut document = Map::new();
    document.insert("category".into(), json!(category.as_str()));
    document.insert("csaf_version".into(), json!("2.0"));
    document.insert("lang".into(), json!(record.language));
    document.insert("title".into(), json!(record.title));
    let mut publisher = json!({
        "category": record.publisher.category.as_str(),
        "name": record.publisher.name,
        "namespace": record.publisher.namespace,
        "contact_details": record.publisher.contact_details,
    });
    if let Some(authority) = &record.publisher.issuing_authority {
        publisher["issuing_authority"] = json!(authority);
    }
    document.insert("publisher".into(), publisher);
    document.insert(
        "distribution".into(),
        json!({ "tlp": { "label": "WHITE", "url": "https://www.first.org/tlp/" } }),
    );
    document.insert(
        "tracking".into(),
        json!({
            "id": record.tracking_id,
            "status": record.status.as_str(),
            "version": version,
            "initial_release_date": timestamp(record.initial_release_date),
            "current_release_date": timestamp(record.current_release_date),
            "revision_history": revs.iter().map(|r| json!({
                "number": r.version,
                "date": timestamp(r.date),
                "summary": r.summary,
            })).collect::<Vec<_>>(),
            "generator": {
                "engine": { "name": "psirt-advisory", "version": env!("CARGO_PKG_VERSION") },
                "date": timestamp(record.current_release_date),
            },
        }),
    );
    let mut notes = vec![
        json!({ "category": "summary", "title": "Summary", "text": record.summary }),
        json!({ "category": "details", "title": "Details", "text": record.details }),
    ];
    if let Some(w) = &record.workarounds {
        notes.push(json!({ "category": "general", "title": "Workarounds", "text": w }));
    }
    notes.push(json!({
        "category": "legal_disclaimer",
        "title": "Terms of use",
        "text": record.legal_disclaimer.as_deref().unwrap_or(DEFAULT_LEGAL_DISCLAIMER),
    }));
    document.insert("notes".into(), json!(notes));

    let acks = acknowledgments(record);
    if !acks.is_empty() {
        document.insert("acknowledgments".into(), json!(acks));
    }
    let mut references = vec![json!({
        "category": "self",
        "summary": format!("Canonical URL of {}", record.tracking_id),
        "url": canonical_url(record),
    })];
    for r in &record.references {
        references.push(json!({
            "category": "external",
            "summary": r.summary.as_deref().unwrap_or(&r.url),
            "url": r.url,
        }));
    }
    document.insert("references".into(), json!(references));

    Ok(json!({
        "document": document,
        "product_tree": product_tree(record, &catalog),
        "vulnerabilities": [vulnerability(record, &catalog)?],
    }))
}

fn acknowledgments(record: &AdvisoryRecord) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for ack in &record.acknowledgments {
        let v = if ack.consent {
            let mut v = json!({ "names": [ack.name] });
            if let Some(org) = &ack.organization {
                v["organization"] = json!(org);
            }
            if let Some(url) = &ack.url {
                v["urls"] = json!([url]);
            }
            v
        } else {
            json!({ "summary": credit_name(ack) })
        };
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn product_tree(record: &AdvisoryRecord, catalog: &Catalog) -> Value {
    let vendor = &record.publisher.name;
    let products: Vec<Value> = catalog
        .products()
        .into_iter()
        .map(|product| {
            let name = product_name(product);
            let versions: Vec<Value> = catalog
                .leaves_of(product)
                .map(|leaf| {
                    let mut full = json!({
                        "name": format!("{vendor} {name} {}", leaf.version),
                        "product_id": leaf.product_id,
                    });
                    if let Some(purl) = leaf.purl() {
                        full["product_identification_helper"] = json!({ "purl": purl });
                    }
                    json!({
                        "category": if leaf.range.is_some() { "product_version_range" } else { "product_version" },
                        "name": leaf.version,
                        "product": full,
                    })
                })
                .collect();
            json!({ "category": "product_name", "name": name, "branches": versions })
        })
        .collect();
    json!({ "branches": [{ "category": "vendor", "name": vendor, "branches": products }] })
}

fn ids<'a>(leaves: impl IntoIterator<Item = &'a Leaf>) -> Vec<String> {
    let mut v: Vec<String> = leaves.into_iter().map(|l| l.product_id.clone()).collect();
    v.sort();
    v.dedup();
    v
}

fn vulnerability(record: &AdvisoryRecord, catalog: &Catalog) -> Result<Value, DocumentError> {
    let mut v = Map::new();
    match &record.cve {
        Some(cve) => {
            v.insert("cve".into(), json!(cve));
        }
        None => {
            v.insert(
                "ids".into(),
                json!([{ "system_name": format!("{} PSIRT case", record.publisher.name), "text": record.case_key }]),
            );
        }
    }
    if let Some(cwe) = &record.cwe {
        v.insert("cwe".into(), json!({ "id": cwe.id, "name": cwe.name }));
    }
    v.insert("title".into(), json!(record.title));
    let mut notes = vec![
        json!({ "category": "description", "title": "Vulnerability description", "text": record.details }),
    ];
    if let Some(v4) = &record.cvss_v4_0 {
        // CSAF 2.0 has no cvss_v4 score object; the vector travels as a note instead.
        notes.push(json!({
            "category": "other",
            "title": "CVSS v4.0",
            "text": format!("{} (base score {:.1}, {})", v4.vector, v4.base_score, v4.severity.as_str()),
        }));
    }
    v.insert("notes".into(), json!(notes));

    let by_status = |f: fn(&ProductStatus) -> bool| ids(catalog.leaves.iter().filter(|l| f(&l.status)));
    let mut status = Map::new();
    for (key, list) in [
        ("fixed", by_status(|s| matches!(s, ProductStatus::Fixed))),
        ("known_affected", by_status(|s| matches!(s, ProductStatus::KnownAffected))),
        ("known_not_affected", by_status(|s| matches!(s, ProductStatus::KnownNotAffected { .. }))),
        ("under_investigation", by_status(|s| matches!(s, ProductStatus::UnderInvestigation))),
    ] {
        if !list.is_empty() {
            status.insert(key.into(), json!(list));
        }
    }
    v.insert("product_status".into(), Value::Object(status));

    // One flag per justification, one impact threat per distinct statement (6.1.33: a product
    // carries at most one justification).
    let mut flags: BTreeMap<&str, Vec<&Leaf>> = BTreeMap::new();
    let mut impacts: BTreeMap<&str, Vec<&Leaf>> = BTreeMap::new();
    for leaf in &catalog.leaves {
        if let Some((justification, impact)) = leaf.justification() {
            flags.entry(justification.as_str()).or_default().push(leaf);
            impacts.entry(impact).or_default().push(leaf);
        }
    }
    if !flags.is_empty() {
        let flags: Vec<Value> = flags
            .into_iter()
            .map(|(label, leaves)| json!({ "label": label, "product_ids": ids(leaves) }))
            .collect();
        v.insert("flags".into(), json!(flags));
    }
    if !impacts.is_empty() {
        let threats: Vec<Value> = impacts
            .into_iter()
            .map(|(details, leaves)| json!({ "category": "impact", "details": details, "product_ids": ids(leaves) }))
            .collect();
        v.insert("threats".into(), json!(threats));
    }

    let mut remediations = Vec::new();
    for r in &record.remediations {
        let mut item = json!({
            "category": r.category.as_str(),
            "details": r.details,
            "product_ids": ids(catalog.resolve(&r.products, "remediations.products")?),
        });
        if let Some(url) = &r.url {
            item["url"] = json!(url);
        }
        if let Some(date) = r.date {
            item["date"] = json!(timestamp(date));
        }
        remediations.push(item);
    }
    for release in &record.releases {
        let affected: Vec<&Leaf> = catalog.leaves_of(&release.product).filter(|l| l.is_affected()).collect();
        if affected.is_empty() {
            continue;
        }
        let mut item = json!({
            "category": RemediationCategory::VendorFix.as_str(),
            "details": format!("Update {} to version {} or later.", product_name(&release.product), release.fixed_version),
            "product_ids": ids(affected),
            "date": timestamp(release.date),
        });
        if let Some(url) = &release.notes_url {
            item["url"] = json!(url);
        }
        remediations.push(item);
    }
    if !remediations.is_empty() {
        v.insert("remediations".into(), json!(remediations));
    }

    if let Some(v3) = &record.cvss_v3_1 {
        let scored = ids(catalog.leaves.iter().filter(|l| l.is_affected()));
        if !scored.is_empty() {
            v.insert(
                "scores".into(),
                json!([{
                    "cvss_v3": {
                        "version": "3.1",
                        "vectorString": v3.vector,
                        "baseScore": v3.base_score,
                        "baseSeverity": v3.severity.as_str(),
                    },
                    "products": scored,
                }]),
            );
        }
    }
    Ok(Value::Object(v))
}
