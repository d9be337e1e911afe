//! One rule per request field and one vers parser, through the real gRPC
//! service (real nats-server, SQLite read model): a range the advisory
//! exports cannot say (`>`) is refused by `SetAffectedProducts`, the first
//! command that carries it, and names with control or bidirectional-override
//! characters are refused; nothing is appended.

mod common;

use common::Harness;
use psirt_proto::{common as pc, triage};
use psirt_testkit::Backend;
use tonic::Code;
use tonic_types::StatusExt;

fn violations(status: &tonic::Status) -> Vec<(String, String)> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| (v.field, v.description)).collect())
        .unwrap_or_default()
}

fn products(range: &str) -> Vec<pc::ProductVersionRange> {
    vec![pc::ProductVersionRange {
        product: "acme-gateway".to_owned(),
        versions: Some(pc::product_version_range::Versions::Range(range.to_owned())),
    }]
}

#[tokio::test]
async fn unusable_ranges_and_names_are_refused_by_the_first_command() -> anyhow::Result<()> {
    let h = Harness::start(Backend::Sqlite).await?;
    let (_, case_id) = h.report("Gateway auth bypass").await?;
    h.opened(case_id).await?;
    let mut client = h.triage().await?;
    let id = case_id.to_string();
    let before = h.case_events(case_id).await?.len();

    // The range that used to pass triage and fail at publish.
    for (n, range) in
        ["vers:semver/>2.0.0|<2.4.1", ">=2.0.0, <2.4.1", "vers:semver/!=2.0.0"].into_iter().enumerate()
    {
        let status = client
            .set_affected_products(triage::SetAffectedProductsRequest {
                case_id: id.clone(),
                request_id: format!("products-bad-{n}"),
                products: products(range),
                ..Default::default()
            })
            .await
            .expect_err(range);
        assert_eq!(status.code(), Code::InvalidArgument, "{range}: {status:?}");
        let found = violations(&status);
        assert!(
            found.iter().any(|(f, d)| f.starts_with("products[0]") && d.contains("vers range")),
            "{range}: {found:?}"
        );
    }

    type Mutation = fn(&mut triage::AssignCaseRequest);
    let assignments: Vec<(&str, Mutation)> = vec![
        ("assignee", |r| r.assignee = "alice\u{202E}".to_owned()),
        ("assignee", |r| r.assignee = "al\u{0}ice".to_owned()),
        ("team", |r| r.team = "red\u{2067}team".to_owned()),
    ];
    for (n, (field, mutate)) in assignments.into_iter().enumerate() {
        let mut request = triage::AssignCaseRequest {
            case_id: id.clone(),
            request_id: format!("assign-bad-{n}"),
            assignee: "alice".to_owned(),
            team: "psirt".to_owned(),
            ..Default::default()
        };
        mutate(&mut request);
        let status = client.assign_case(request).await.expect_err(field);
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        let found = violations(&status);
        assert!(found.iter().any(|(f, d)| f == field && d.contains("must not contain U+")), "{found:?}");
    }
    assert_eq!(h.case_events(case_id).await?.len(), before, "nothing was appended");

    // The same product with a range every export can say is taken.
    client
        .set_affected_products(triage::SetAffectedProductsRequest {
            case_id: id.clone(),
            request_id: "products-good".to_owned(),
            products: products("vers:semver/>=2.0.0|<2.4.1"),
            ..Default::default()
        })
        .await?;
    assert!(h.case_events(case_id).await?.len() > before);
    Ok(())
}
