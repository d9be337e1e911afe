//! CVE JSON record format 5.1 (a published record with its CNA container).

use serde_json::{Map, Value, json};

use crate::products::{Catalog, Leaf, Span, product_name};
use crate::record::{AdvisoryRecord, ProductStatus, RemediationCategory};
use crate::{DocumentError, canonical_url, credit_name, prepare, timestamp};

pub(crate) fn generate(record: &AdvisoryRecord) -> Result<Value, DocumentError> {
    let cve_id = record.cve.as_deref().ok_or(DocumentError::MissingCveId)?;
    let cna = record.cna.as_ref().ok_or(DocumentError::MissingCna)?;
    let (catalog, _) = prepare(record)?;
    let updated = timestamp(record.current_release_date);

    let mut container = Map::new();
    container.insert(
        "providerMetadata".into(),
        json!({ "orgId": cna.org_id.to_string(), "shortName": cna.short_name, "dateUpdated": updated }),
    );
    container.insert("title".into(), json!(record.title));
    container.insert("datePublic".into(), json!(timestamp(record.initial_release_date)));
    container.insert(
        "descriptions".into(),
        json!([{ "lang": "en", "value": format!("{}\n\n{}", record.summary, record.details) }]),
    );
    container.insert("affected".into(), json!(affected(record, &catalog)));
    if let Some(cwe) = &record.cwe {
        container.insert(
            "problemTypes".into(),
            json!([{ "descriptions": [{
                "lang": "en",
                "cweId": cwe.id,
                "description": format!("{}: {}", cwe.id, cwe.name),
                "type": "CWE",
            }] }]),
        );
    }
    let mut metrics = Vec::new();
    if let Some(v3) = &record.cvss_v3_1 {
        metrics.push(json!({
            "format": "CVSS",
            "scenarios": [{ "lang": "en", "value": "GENERAL" }],
            "cvssV3_1": {
                "version": "3.1",
                "vectorString": v3.vector,
                "baseScore": v3.base_score,
                "baseSeverity": v3.severity.as_str(),
            },
        }));
    }
    if let Some(v4) = &record.cvss_v4_0 {
        metrics.push(json!({
            "format": "CVSS",
            "scenarios": [{ "lang": "en", "value": "GENERAL" }],
            "cvssV4_0": {
                "version": "4.0",
                "vectorString": v4.vector,
                "baseScore": v4.base_score,
                "baseSeverity": v4.severity.as_str(),
            },
        }));
    }
    if !metrics.is_empty() {
        container.insert("metrics".into(), json!(metrics));
    }
    let mut references = vec![
        json!({ "url": canonical_url(record), "name": record.tracking_id, "tags": ["vendor-advisory"] }),
    ];
    for r in &record.references {
        let mut item = json!({ "url": r.url });
        if let Some(summary) = &r.summary {
            item["name"] = json!(summary);
        }
        if !references.iter().any(|x| x["url"] == item["url"]) {
            references.push(item);
        }
    }
    container.insert("references".into(), json!(references));

    let mut credits: Vec<Value> = Vec::new();
    for ack in &record.acknowledgments {
        let value = match (&ack.organization, ack.consent) {
            (Some(org), true) => format!("{} ({org})", ack.name),
            _ => credit_name(ack).to_owned(),
        };
        let item = json!({ "lang": "en", "value": value, "type": "finder" });
        if !credits.contains(&item) {
            credits.push(item);
        }
    }
    if !credits.is_empty() {
        container.insert("credits".into(), json!(credits));
    }
    let mut solutions = Vec::new();
    let mut workarounds = Vec::new();
    if let Some(w) = &record.workarounds {
        workarounds.push(json!({ "lang": "en", "value": w }));
    }
    for r in &record.remediations {
        catalog.resolve(&r.products, "remediations.products")?;
        let item = json!({ "lang": "en", "value": r.details });
        match r.category {
            RemediationCategory::Workaround | RemediationCategory::Mitigation => workarounds.push(item),
            RemediationCategory::VendorFix
            | RemediationCategory::NoFixPlanned
            | RemediationCategory::NoneAvailable => solutions.push(item),
        }
    }
    for release in &record.releases {
        solutions.push(json!({
            "lang": "en",
            "value": format!("Update {} to version {} or later.", product_name(&release.product), release.fixed_version),
        }));
    }
    for (key, list) in [("solutions", solutions), ("workarounds", workarounds)] {
        let list = unique(list);
        if !list.is_empty() {
            container.insert(key.into(), json!(list));
        }
    }

    Ok(json!({
        "dataType": "CVE_RECORD",
        "dataVersion": "5.1",
        "cveMetadata": {
            "cveId": cve_id,
            "assignerOrgId": cna.org_id.to_string(),
            "assignerShortName": cna.short_name,
            "state": "PUBLISHED",
            "datePublished": timestamp(record.initial_release_date),
            "dateUpdated": updated,
        },
        "containers": { "cna": container },
    }))
}

/// The CVE schema wants unique items in every list.
fn unique(list: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::with_capacity(list.len());
    for v in list {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn cve_status(leaf: &Leaf) -> &'static str {
    match leaf.status {
        ProductStatus::KnownAffected => "affected",
        ProductStatus::KnownNotAffected { .. } | ProductStatus::Fixed => "unaffected",
        ProductStatus::UnderInvestigation => "unknown",
    }
}

fn affected(record: &AdvisoryRecord, catalog: &Catalog) -> Vec<Value> {
    catalog
        .products()
        .into_iter()
        .map(|product| {
            let mut versions: Vec<Value> = Vec::new();
            let mut push = |v: Value| {
                // The schema wants unique items.
                if !versions.contains(&v) {
                    versions.push(v);
                }
            };
            for leaf in catalog.leaves_of(product) {
                let status = cve_status(leaf);
                match &leaf.range {
                    None => push(json!({ "version": leaf.version, "status": status })),
                    Some(range) => {
                        for span in &range.spans {
                            push(match span {
                                Span::Exact(v) => json!({ "version": v, "status": status }),
                                Span::Between { lower, upper } => {
                                    let mut item = json!({
                                        "version": lower.as_ref().map_or("0", |b| b.version.as_str()),
                                        "status": status,
                                        "versionType": range.scheme,
                                    });
                                    match upper {
                                        Some(b) if b.inclusive => item["lessThanOrEqual"] = json!(b.version),
                                        Some(b) => item["lessThan"] = json!(b.version),
                                        // The CVE schema's documented wildcard for "and later".
                                        None => item["lessThanOrEqual"] = json!("*"),
                                    }
                                    item
                                }
                            });
                        }
                    }
                }
            }
            json!({
                "vendor": record.publisher.name,
                "product": product_name(product),
                "versions": versions,
                "defaultStatus": "unknown",
            })
        })
        .collect()
}
