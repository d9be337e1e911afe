//! Product scopes (issue 15, point 2): a principal scoped to a product knows
//! only the cases of that product. A case out of scope answers NOT_FOUND
//! exactly like a missing one, lists and watches leave it out; `*` holders
//! and admins see every case; a case without products only they see.

mod common;

use common::{DEADLINE, Harness, scoped_token, token, with_token};
use psirt_domain::CaseId;
use psirt_kit::config::AuthMode;
use psirt_proto::triage::watch_cases_response::Kind;
use psirt_proto::{common as pc, triage};
use psirt_testkit::{Backend, eventually};
use tonic::Code;

fn by_id(id: &str) -> triage::GetCaseRequest {
    triage::GetCaseRequest { lookup: Some(triage::get_case_request::Lookup::CaseId(id.to_owned())) }
}

fn products(case_id: &str, request_id: &str, product: &str) -> triage::SetAffectedProductsRequest {
    triage::SetAffectedProductsRequest {
        case_id: case_id.to_owned(),
        request_id: request_id.to_owned(),
        products: vec![pc::ProductVersionRange {
            product: product.to_owned(),
            versions: Some(pc::product_version_range::Versions::Range("vers:semver/<2.0.0".to_owned())),
        }],
        ..Default::default()
    }
}

/// The status's code and its message with `id` written as `<id>`: a case
/// out of scope must answer as a missing one does.
fn shape(status: &tonic::Status, id: &str) -> (Code, String) {
    (status.code(), status.message().replace(id, "<id>"))
}

/// Every case a caller lists, page by page (one case a page).
async fn listed(h: &Harness, token: &str) -> anyhow::Result<Vec<String>> {
    let mut cases = h.cases().await?;
    let mut seen = Vec::new();
    let mut page_token = String::new();
    for _ in 0..100 {
        let page = cases
            .list_cases(with_token(
                triage::ListCasesRequest {
                    page_size: 1,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                token,
            ))
            .await?
            .into_inner();
        assert!(page.cases.len() <= 1, "page size holds");
        seen.extend(page.cases.into_iter().map(|c| c.case_id));
        if page.next_page_token.is_empty() {
            seen.sort();
            return Ok(seen);
        }
        page_token = page.next_page_token;
    }
    anyhow::bail!("the list did not end")
}

#[tokio::test]
async fn a_scoped_principal_knows_only_the_cases_of_its_products() -> anyhow::Result<()> {
    let h = Harness::start_with(Backend::Sqlite, AuthMode::Jwt).await?;
    let admin = token("ada", &["admin"]);
    let star = token("sam", &["engineer"]);
    let router = scoped_token("rob", &["analyst"], &["Router"]);
    let mut cases = h.cases().await?;
    let mut decide = h.triage().await?;

    // A watch of the Router analyst from before any case exists.
    let mut watch =
        cases.watch_cases(with_token(triage::WatchCasesRequest::default(), &router)).await?.into_inner();

    let mut ids = Vec::new();
    for title in ["Router overflow", "Switch overflow", "Unsorted overflow"] {
        let (_, case_id) = h.report(title).await?;
        let id = case_id.to_string();
        eventually(DEADLINE, "case opened", || {
            let mut cases = cases.clone();
            let request = with_token(by_id(&id), &admin);
            async move { cases.get_case(request).await.ok() }
        })
        .await?;
        ids.push(id);
    }
    let [a, b, none] = [ids[0].clone(), ids[1].clone(), ids[2].clone()];
    decide.set_affected_products(with_token(products(&a, "p-a", "router"), &admin)).await?;
    decide.set_affected_products(with_token(products(&b, "p-b", "Switch"), &admin)).await?;
    let missing = CaseId::new().to_string();

    // Reads: product B's case and the case without products are missing to
    // the Router analyst, in the words of a missing case.
    let absent = cases.get_case(with_token(by_id(&missing), &router)).await.expect_err("missing");
    assert_eq!(absent.code(), Code::NotFound);
    for id in [&b, &none] {
        let hidden = cases.get_case(with_token(by_id(id), &router)).await.expect_err("out of scope");
        assert_eq!(shape(&hidden, id), shape(&absent, &missing));
    }
    let seen = cases.get_case(with_token(by_id(&a), &router)).await?.into_inner().case.expect("case");
    assert_eq!(seen.case_id, a);
    let b_key =
        cases.get_case(with_token(by_id(&b), &admin)).await?.into_inner().case.expect("case").case_key;
    let by_key =
        triage::GetCaseRequest { lookup: Some(triage::get_case_request::Lookup::CaseKey(b_key.clone())) };
    let hidden = cases.get_case(with_token(by_key, &router)).await.expect_err("out of scope by key");
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(hidden.message(), format!("case {b_key} not found"));
    let timeline = |id: &str| triage::GetCaseTimelineRequest { case_id: id.to_owned(), ..Default::default() };
    let absent_timeline =
        cases.get_case_timeline(with_token(timeline(&missing), &router)).await.expect_err("missing");
    let hidden = cases.get_case_timeline(with_token(timeline(&b), &router)).await.expect_err("out of scope");
    assert_eq!(shape(&hidden, &b), shape(&absent_timeline, &missing));
    assert!(
        !cases.get_case_timeline(with_token(timeline(&a), &router)).await?.into_inner().entries.is_empty()
    );

    // Commands: the same answer, also with an expected version.
    let assign = |id: &str, expected_version: Option<u64>| triage::AssignCaseRequest {
        case_id: id.to_owned(),
        request_id: format!("assign-{id}"),
        assignee: "rob".to_owned(),
        expected_version,
        ..Default::default()
    };
    let absent = decide.assign_case(with_token(assign(&missing, None), &router)).await.expect_err("missing");
    assert_eq!(absent.code(), Code::NotFound);
    for id in [&b, &none] {
        for expected in [None, Some(999)] {
            let hidden =
                decide.assign_case(with_token(assign(id, expected), &router)).await.expect_err("scope");
            assert_eq!(shape(&hidden, id), shape(&absent, &missing), "expected version {expected:?}");
        }
    }
    let assigned =
        decide.assign_case(with_token(assign(&a, None), &router)).await?.into_inner().case.expect("case");
    assert_eq!(assigned.assignee, "rob");

    // Audit: the actor's scopes are recorded with the command's event.
    let events = h.case_events(a.parse()?).await?;
    let last = events.last().expect("events");
    assert_eq!(last.metadata.actor.as_deref(), Some("rob"));
    assert_eq!(last.metadata.actor_scopes.as_deref(), Some("Router"));
    let admin_event = h.case_events(b.parse()?).await?.pop().expect("events");
    assert_eq!(admin_event.metadata.actor_scopes.as_deref(), Some("*"));

    // The watch saw product A's changes and nothing of the others: the
    // assignment is the last change, and every change before it is A's.
    let mut changed = Vec::new();
    loop {
        let message = tokio::time::timeout(DEADLINE, watch.message()).await??.expect("watch open");
        if let Some(Kind::Change(change)) = message.kind {
            let case = change.case.expect("case");
            changed.push(case.case_id.clone());
            if case.case_id == a && case.assignee == "rob" {
                break;
            }
        }
    }
    assert!(changed.iter().all(|id| *id == a), "only product A's case: {changed:?}");

    // Lists: each sees what its scopes allow, in pages that stay whole.
    eventually(DEADLINE, "assignment in the case view", || {
        let mut cases = cases.clone();
        let request = with_token(triage::ListCasesRequest::default(), &admin);
        async move {
            let page = cases.list_cases(request).await.ok()?.into_inner();
            page.cases.iter().any(|c| c.assignee == "rob").then_some(())
        }
    })
    .await?;
    let mut all = vec![a.clone(), b.clone(), none.clone()];
    all.sort();
    assert_eq!(listed(&h, &router).await?, vec![a.clone()]);
    assert_eq!(listed(&h, &star).await?, all);
    assert_eq!(listed(&h, &admin).await?, all);
    assert!(listed(&h, &scoped_token("nobody", &["engineer"], &[])).await?.is_empty(), "no claim: no case");
    for token in [&star, &admin] {
        cases.get_case(with_token(by_id(&none), token)).await?;
    }

    // The current products count: A moved to another product leaves the
    // Router analyst's sight.
    decide.set_affected_products(with_token(products(&a, "p-a2", "Switch"), &admin)).await?;
    let gone = cases.get_case(with_token(by_id(&a), &router)).await.expect_err("moved out of scope");
    assert_eq!(shape(&gone, &a), shape(&absent_shape(&mut cases, &router).await, "<missing>"));
    Ok(())
}

/// The answer to a GetCase of a case that does not exist, its id as `<missing>`.
async fn absent_shape(
    cases: &mut psirt_proto::triage::case_service_client::CaseServiceClient<tonic::transport::Channel>,
    token: &str,
) -> tonic::Status {
    let missing = CaseId::new().to_string();
    let status = cases.get_case(with_token(by_id(&missing), token)).await.expect_err("missing");
    tonic::Status::new(status.code(), status.message().replace(&missing, "<missing>"))
}
