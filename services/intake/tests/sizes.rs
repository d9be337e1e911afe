//! `grpc.max_message_bytes` on the intake API: an oversized request is answered
//! `RESOURCE_EXHAUSTED` and stores nothing, responses are held to the limit too,
//! and list pages stop at a byte budget with a token for the rest.

mod common;

use common::{DEADLINE, Harness, SECRET, submission, token, with_token};
use prost::Message as _;
use psirt_kit::config::AuthMode;
use psirt_kit::request::PAGE_BYTES_DIVISOR;
use psirt_proto::intake;
use psirt_testkit::{Backend, NatsServer, TestDatabase, eventually};
use tonic::Code;

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn a_5_mib_report_is_resource_exhausted_and_stores_nothing() -> anyhow::Result<()> {
    // The default limit: 4 MiB.
    let h = Harness::start(Backend::Sqlite, AuthMode::Jwt).await?;
    let mut client = h.client().await?;
    let reporter = token("rita", &["reporter"], 300, SECRET);
    let analyst = token("ann", &["analyst"], 300, SECRET);

    let mut huge = submission("huge-1", "A report of five mebibytes");
    huge.description = "x".repeat(5 * MIB);
    let status = client.submit_report(with_token(huge, &reporter)).await.expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("grpc.max_message_bytes"), "{status:?}");
    assert_eq!(h.stream_messages().await?, 0, "nothing appended");

    // The same client goes on; the normal report is the only one ever stored.
    let small = client
        .submit_report(with_token(submission("small-1", "A normal report"), &reporter))
        .await?
        .into_inner();
    assert_eq!(h.stream_messages().await?, 1);
    let listed = eventually(DEADLINE, "the normal report projected", || {
        let mut client = client.clone();
        let analyst = analyst.clone();
        async move {
            let page = client
                .list_reports(with_token(intake::ListReportsRequest::default(), &analyst))
                .await
                .ok()?
                .into_inner();
            (!page.reports.is_empty()).then_some(page.reports)
        }
    })
    .await?;
    let ids: Vec<_> = listed.iter().map(|r| r.report_id.clone()).collect();
    assert_eq!(ids, vec![small.report_id]);
    Ok(())
}

#[tokio::test]
async fn list_pages_stop_at_a_byte_budget_and_responses_at_the_limit() -> anyhow::Result<()> {
    const LIMIT: usize = 16 * 1024;
    let nats = NatsServer::start().await?;
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let h = Harness::start_configured(nats, db, AuthMode::Jwt, |c| c.grpc.max_message_bytes = LIMIT).await?;
    let mut client = h.client().await?;
    let reporter = token("rita", &["reporter"], 300, SECRET);
    let analyst = token("ann", &["analyst"], 300, SECRET);

    // Five reports of about 3 KiB: two fit a page's budget (8 KiB), three do not.
    for i in 0..5 {
        let mut report = submission(&format!("sized-{i}"), &format!("Finding number {i}"));
        report.description = format!("{i} {}", "d".repeat(3000));
        client.submit_report(with_token(report, &reporter)).await?;
    }
    eventually(DEADLINE, "all projected", || {
        let mut client = client.clone();
        let analyst = analyst.clone();
        async move {
            let request = intake::ListReportsRequest { page_size: 1, ..Default::default() };
            let page = client.list_reports(with_token(request, &analyst)).await.ok()?.into_inner();
            let mut rest = page.next_page_token;
            let mut count = page.reports.len();
            while !rest.is_empty() {
                let request =
                    intake::ListReportsRequest { page_size: 1, page_token: rest, ..Default::default() };
                let page = client.list_reports(with_token(request, &analyst)).await.ok()?.into_inner();
                count += page.reports.len();
                rest = page.next_page_token;
            }
            (count == 5).then_some(())
        }
    })
    .await?;

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut token = String::new();
    loop {
        let request =
            intake::ListReportsRequest { page_size: 100, page_token: token.clone(), ..Default::default() };
        let page = client.list_reports(with_token(request, &analyst)).await?.into_inner();
        assert!(page.encoded_len() <= LIMIT / PAGE_BYTES_DIVISOR + 256, "{} bytes", page.encoded_len());
        sizes.push(page.reports.len());
        seen.extend(page.reports.into_iter().map(|r| r.report_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(sizes, vec![2, 2, 1], "pages of 100 items bounded by bytes");
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 5, "every report once across the pages");

    // A response over the limit: the same reports served with a limit below one report.
    let h = h.restart_configured(|c| c.grpc.max_message_bytes = 2048).await?;
    let mut client = h.client().await?;
    let request = intake::GetReportRequest { report_id: seen[0].clone() };
    let status = client.get_report(with_token(request, &analyst)).await.expect_err("response too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("response message"), "{status:?}");
    Ok(())
}
