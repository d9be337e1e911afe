//! OpenVEX 0.2.0 documents: one statement per product version (or range). A product is
//! named by its purl when it has one; otherwise by an IRI under the publisher namespace
//! (`<namespace>/products/<key>@<version>`, a range percent-encoded after `#`).

use serde_json::{Value, json};

use crate::products::{Catalog, Leaf, product_name};
use crate::record::{AdvisoryRecord, ProductStatus};
use crate::validate::OPENVEX_CONTEXT;
use crate::{DocumentError, canonical_url, prepare, timestamp};

pub(crate) fn generate(record: &AdvisoryRecord) -> Result<Value, DocumentError> {
    let (catalog, revs) = prepare(record)?;
    let namespace = record.publisher.namespace.trim_end_matches('/');
    let vulnerability = match &record.cve {
        Some(cve) => json!({ "name": cve, "aliases": [record.tracking_id] }),
        None => json!({ "name": record.tracking_id }),
    };
    let statements: Vec<Value> = catalog
        .leaves
        .iter()
        .map(|leaf| statement(record, &catalog, leaf, namespace, &vulnerability))
        .collect::<Result<_, _>>()?;
    Ok(json!({
        "@context": OPENVEX_CONTEXT,
        "@id": format!("{namespace}/openvex/{}", record.tracking_id.to_lowercase()),
        "author": record.publisher.name,
        "role": "Document Creator",
        "timestamp": timestamp(record.initial_release_date),
        "last_updated": timestamp(record.current_release_date),
        "version": revs.len(),
        "tooling": format!("psirt-advisory/{}", env!("CARGO_PKG_VERSION")),
        "statements": statements,
    }))
}

fn percent_encode(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' | '~' | ':' | '/' => c.to_string(),
            other => {
                let mut buf = [0u8; 4];
                other.encode_utf8(&mut buf).bytes().map(|b| format!("%{b:02X}")).collect()
            }
        })
        .collect()
}

fn product(leaf: &Leaf, namespace: &str) -> Value {
    match leaf.purl() {
        Some(purl) if leaf.range.is_none() => json!({ "@id": purl, "identifiers": { "purl": purl } }),
        Some(purl) => json!({ "@id": format!("{purl}#{}", percent_encode(&leaf.version)) }),
        None => {
            let base = format!("{namespace}/products/{}", percent_encode(&leaf.product));
            match &leaf.range {
                None => json!({ "@id": format!("{base}@{}", percent_encode(&leaf.version)) }),
                Some(_) => json!({ "@id": format!("{base}#{}", percent_encode(&leaf.version)) }),
            }
        }
    }
}

fn statement(
    record: &AdvisoryRecord,
    catalog: &Catalog,
    leaf: &Leaf,
    namespace: &str,
    vulnerability: &Value,
) -> Result<Value, DocumentError> {
    let mut s = json!({
        "vulnerability": vulnerability,
        "products": [product(leaf, namespace)],
        "timestamp": timestamp(record.current_release_date),
    });
    match &leaf.status {
        ProductStatus::KnownAffected => {
            s["status"] = json!("affected");
            s["action_statement"] = json!(action_statement(record, catalog, leaf)?);
        }
        ProductStatus::KnownNotAffected { justification, impact_statement } => {
            s["status"] = json!("not_affected");
            s["justification"] = json!(justification.as_str());
            s["impact_statement"] = json!(impact_statement);
        }
        ProductStatus::Fixed => s["status"] = json!("fixed"),
        ProductStatus::UnderInvestigation => s["status"] = json!("under_investigation"),
    }
    Ok(s)
}

/// What an affected user should do: the remediations and releases that cover the entry, or a
/// pointer to the advisory when none does yet.
fn action_statement(
    record: &AdvisoryRecord,
    catalog: &Catalog,
    leaf: &Leaf,
) -> Result<String, DocumentError> {
    let mut actions = Vec::new();
    for r in &record.remediations {
        if catalog
            .resolve(&r.products, "remediations.products")?
            .iter()
            .any(|l| l.product_id == leaf.product_id)
        {
            actions.push(r.details.clone());
        }
    }
    for release in record.releases.iter().filter(|r| r.product == leaf.product) {
        actions.push(format!(
            "Update {} to version {} or later.",
            product_name(&release.product),
            release.fixed_version
        ));
    }
    if actions.is_empty() {
        actions
            .push(format!("No remediation is available yet; follow {} for updates.", canonical_url(record)));
    }
    Ok(actions.join(" "))
}
