//! Quotas and scopes at intake, with real tokens: one principal flooding is
//! refused with RESOURCE_EXHAUSTED and `google.rpc.RetryInfo`, nothing
//! appended, while another principal goes on; a report holds at most its
//! quota of messages; a reporter has at most N open reports; staff see
//! reports of their products only, and reporters never learn of other
//! reporters' reports.

mod common;

use common::{DEADLINE, Harness, SECRET, submission, with_token};
use psirt_kit::config::AuthMode;
use psirt_kit::quota::Rate;
use psirt_proto::intake;
use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_testkit::{BACKENDS, Backend, NatsServer, TestDatabase, eventually};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

fn token(sub: &str, roles: &[&str], products: &[&str]) -> String {
    common::token_with(sub, roles, products, 3600, SECRET)
}

async fn start(tweak: impl FnOnce(&mut psirt_intake::Config)) -> anyhow::Result<Harness> {
    start_on(Backend::Sqlite, tweak).await
}

async fn start_on(
    backend: Backend,
    tweak: impl FnOnce(&mut psirt_intake::Config),
) -> anyhow::Result<Harness> {
    let nats = NatsServer::start().await?;
    let db = TestDatabase::new(backend).await?;
    Harness::start_configured(nats, db, AuthMode::Jwt, tweak).await
}

async fn submit(
    client: &mut IntakeServiceClient<Channel>,
    token: &str,
    request_id: &str,
) -> Result<intake::SubmitReportResponse, tonic::Status> {
    client
        .submit_report(with_token(submission(request_id, "SQL injection in the login form"), token))
        .await
        .map(|r| r.into_inner())
}

async fn message(
    client: &mut IntakeServiceClient<Channel>,
    token: &str,
    report_id: &str,
    request_id: &str,
) -> Result<intake::AddReporterMessageResponse, tonic::Status> {
    let request = intake::AddReporterMessageRequest {
        report_id: report_id.to_owned(),
        request_id: request_id.to_owned(),
        body: "More detail on the proof of concept.".to_owned(),
        // Staff say which way a message goes; a reporter's is inbound anyway.
        direction: psirt_proto::common::MessageDirection::Outbound.into(),
        ..Default::default()
    };
    client.add_reporter_message(with_token(request, token)).await.map(|r| r.into_inner())
}

fn assert_rate_limited(status: &tonic::Status) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let details = status.get_error_details();
    let retry = details.retry_info().and_then(|r| r.retry_delay).expect("google.rpc.RetryInfo with a delay");
    assert!(retry > std::time::Duration::ZERO, "{retry:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_principal_is_limited_and_another_is_not() -> anyhow::Result<()> {
    // One call a minute after a burst of three: the refill never comes
    // within the test.
    let mut h = start(|c| {
        c.quotas.submit_reports = Rate::new(1, 3);
        c.quotas.reporter_messages = Rate::new(1, 2);
    })
    .await?;
    let mut client = h.client().await?;
    let (mallory, alice) = (token("mallory", &["reporter"], &[]), token("alice", &["reporter"], &[]));

    let mut first = None;
    for i in 0..3 {
        let submitted = submit(&mut client, &mallory, &format!("flood-{i}")).await?;
        first.get_or_insert(submitted.report_id);
    }
    let stored = h.stream_messages().await?;
    for i in 3..10 {
        let refused = submit(&mut client, &mallory, &format!("flood-{i}")).await.expect_err("over the burst");
        assert_rate_limited(&refused);
    }
    assert_eq!(h.stream_messages().await?, stored, "nothing appended for a refused call");
    submit(&mut client, &alice, "alice-1").await.expect("another principal is not affected");

    let report = first.expect("a report");
    message(&mut client, &mallory, &report, "m-1").await?;
    message(&mut client, &mallory, &report, "m-2").await?;
    let before = h.report_events(&report).await?.len();
    assert_rate_limited(&message(&mut client, &mallory, &report, "m-3").await.expect_err("over the burst"));
    assert_eq!(h.report_events(&report).await?.len(), before, "nothing appended");
    let alices = h.report_events(&report).await?.len();
    let own = submit(&mut client, &alice, "alice-2").await?.report_id;
    message(&mut client, &alice, &own, "a-1").await.expect("alice's messages have their own bucket");
    assert_eq!(h.report_events(&report).await?.len(), alices);
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_holds_at_most_its_quota_of_messages() -> anyhow::Result<()> {
    let mut h = start(|c| c.quotas.max_messages_per_report = 2).await?;
    let mut client = h.client().await?;
    let alice = token("alice", &["reporter"], &[]);
    let analyst = token("ana", &["analyst"], &["*"]);
    let report = submit(&mut client, &alice, "r-1").await?.report_id;
    message(&mut client, &alice, &report, "m-1").await?;
    message(&mut client, &analyst, &report, "m-2").await?;
    let before = h.report_events(&report).await?.len();
    for (who, id) in [(&alice, "m-3"), (&analyst, "m-4")] {
        let refused = message(&mut client, who, &report, id).await.expect_err("the report is full");
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert!(refused.message().contains("2 messages"), "{}", refused.message());
    }
    assert_eq!(h.report_events(&report).await?.len(), before, "nothing appended");
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reporter_has_at_most_n_open_reports() -> anyhow::Result<()> {
    // The count is SQL on the read model: both databases.
    for backend in BACKENDS {
        open_reports_on(backend).await?;
    }
    Ok(())
}

async fn open_reports_on(backend: Backend) -> anyhow::Result<()> {
    let mut h = start_on(backend, |c| c.quotas.max_open_reports_per_reporter = 2).await?;
    let mut client = h.client().await?;
    let (alice, bob) = (token("alice", &["reporter"], &[]), token("bob", &["reporter"], &[]));
    let analyst = token("ana", &["analyst"], &["*"]);
    submit(&mut client, &alice, "open-1").await?;
    submit(&mut client, &alice, "open-2").await?;
    // The count comes from the read model: wait until it holds both.
    eventually(DEADLINE, "both reports projected", || {
        let (mut client, analyst) = (client.clone(), analyst.clone());
        async move {
            let list = client
                .list_reports(with_token(intake::ListReportsRequest::default(), &analyst))
                .await
                .ok()?
                .into_inner();
            (list.reports.len() == 2).then_some(())
        }
    })
    .await?;
    let stored = h.stream_messages().await?;
    let refused = submit(&mut client, &alice, "open-3").await.expect_err("a third open report");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("at most 2"), "{}", refused.message());
    assert_eq!(h.stream_messages().await?, stored, "nothing appended");
    submit(&mut client, &bob, "bob-1").await.expect("another reporter is not affected");
    submit(&mut client, &analyst, "staff-1").await.expect("staff are not counted");
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_see_reports_of_their_products_and_reporters_no_other_reports() -> anyhow::Result<()> {
    let mut h = start(|_| {}).await?;
    let mut client = h.client().await?;
    let (alice, bob) = (token("alice", &["reporter"], &[]), token("bob", &["reporter"], &[]));
    let portal = token("pat", &["analyst"], &["portal"]);
    let router = token("rob", &["analyst"], &["Router", "pkg:npm/@acme/"]);
    let everything = token("eve", &["analyst"], &["*"]);
    let unscoped = token("una", &["analyst"], &[]);
    let admin = token("adm", &["admin"], &[]);

    let first = submit(&mut client, &alice, "a-1").await?;
    eventually(DEADLINE, "first report projected", || {
        let (mut client, everything) = (client.clone(), everything.clone());
        async move {
            let list = client
                .list_reports(with_token(intake::ListReportsRequest::default(), &everything))
                .await
                .ok()?
                .into_inner();
            (!list.reports.is_empty()).then_some(())
        }
    })
    .await?;
    // Bob reports the same flaw: staff see the hint, Bob never learns of
    // Alice's report.
    let second = submit(&mut client, &bob, "b-1").await?;
    assert!(second.suspected_duplicate_report_ids.is_empty(), "{second:?}");
    assert!(second.report.as_ref().is_some_and(|r| r.suspected_duplicate_report_ids.is_empty()));
    let get = |report_id: &str, token: &str| {
        with_token(intake::GetReportRequest { report_id: report_id.to_owned() }, token)
    };
    let bobs = client.get_report(get(&second.report_id, &bob)).await?.into_inner().report.expect("report");
    assert!(bobs.suspected_duplicate_report_ids.is_empty(), "the reporter's own view");
    let staff =
        client.get_report(get(&second.report_id, &portal)).await?.into_inner().report.expect("report");
    assert_eq!(staff.suspected_duplicate_report_ids, vec![first.report_id.clone()], "staff see the link");

    // Product "Portal": in scope for "portal" (any case), "*" and admins.
    for allowed in [&portal, &everything, &admin] {
        client.get_report(get(&first.report_id, allowed)).await.expect("in scope");
    }
    let missing_id = uuid::Uuid::now_v7().to_string();
    let missing = client.get_report(get(&missing_id, &router)).await.expect_err("missing");
    for denied in [&router, &unscoped] {
        let refused = client.get_report(get(&first.report_id, denied)).await.expect_err("out of scope");
        assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
        assert_eq!(
            refused.message().replace(&first.report_id, "ID"),
            missing.message().replace(&missing_id, "ID"),
            "the same answer as for a missing report"
        );
        let list = client
            .list_reports(with_token(intake::ListReportsRequest::default(), denied))
            .await?
            .into_inner();
        assert!(list.reports.is_empty(), "lists leave it out: {list:?}");
        let ack =
            intake::AcknowledgeReportRequest { report_id: first.report_id.clone(), ..Default::default() };
        assert_eq!(
            client.acknowledge_report(with_token(ack, denied)).await.expect_err("out of scope").code(),
            Code::NotFound
        );
    }
    let list =
        client.list_reports(with_token(intake::ListReportsRequest::default(), &portal)).await?.into_inner();
    assert_eq!(list.reports.len(), 2);
    h.stop().await
}
