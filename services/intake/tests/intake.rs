//! The intake service end to end in-process: real nats-server, real
//! PostgreSQL and SQLite, real gRPC.

mod common;

use common::{DEADLINE, Harness, SECRET, submission, token, with_token};
use psirt_kit::config::AuthMode;
use psirt_proto::{common as pc, intake};
use psirt_testkit::{BACKENDS, Backend, eventually};
use tonic::Code;
use tonic_types::StatusExt;

fn violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn submit_get_and_list_on_both_databases() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let h = Harness::start(backend, AuthMode::None).await?;
        let mut client = h.client().await?;
        let response =
            client.submit_report(submission("req-1", "SQL injection in login form")).await?.into_inner();
        assert!(!response.report_id.is_empty());
        let report_uuid: uuid::Uuid = response.report_id.parse()?;
        let case_uuid: uuid::Uuid = response.case_id.parse()?;
        assert_ne!(report_uuid, case_uuid);
        assert_eq!(
            response.case_id,
            psirt_domain::CaseId::for_report(response.report_id.parse()?).to_string(),
            "the case id is derived from the report id"
        );

        // readable at once, from the event stream
        let got = client
            .get_report(intake::GetReportRequest { report_id: response.report_id.clone() })
            .await?
            .into_inner()
            .report
            .expect("report");
        assert_eq!(got.title, "SQL injection in login form");
        assert_eq!(got.status, intake::ReportStatus::Received as i32);
        assert_eq!(got.channel, pc::ReportChannel::Web as i32);
        assert_eq!(got.affected_products, vec!["Portal".to_owned()]);
        assert!(got.version > 0);
        assert!(got.received_at.is_some());

        // listed once the projection caught up
        let listed = eventually(DEADLINE, "report listed", || {
            let mut client = client.clone();
            async move {
                let list =
                    client.list_reports(intake::ListReportsRequest::default()).await.ok()?.into_inner();
                list.reports.into_iter().next()
            }
        })
        .await?;
        assert_eq!(listed, got, "{backend:?}: read model and stream agree");
    }
    Ok(())
}

#[tokio::test]
async fn every_bad_input_is_invalid_argument_with_a_field_violation_and_appends_nothing() -> anyhow::Result<()>
{
    let h = Harness::start(Backend::Sqlite, AuthMode::None).await?;
    let mut client = h.client().await?;
    let before = h.stream_messages().await?;
    type Mutation = fn(&mut intake::SubmitReportRequest);
    let cases: Vec<(&str, Mutation)> = vec![
        ("title", |r| r.title = String::new()),
        ("title", |r| r.title = "   ".to_owned()),
        ("title", |r| r.title = "x".repeat(301)),
        ("description", |r| r.description = "y".repeat(64 * 1024 + 1)),
        ("reporter.email", |r| r.reporter.as_mut().expect("reporter").email = "not-an-email".to_owned()),
        ("reporter.email", |r| r.reporter.as_mut().expect("reporter").email = "a@b".to_owned()),
        ("channel", |r| r.channel = 0),
        ("channel", |r| r.channel = 99),
        ("suggested_cvss_vector", |r| r.suggested_cvss_vector = "CVSS:3.1/AV:N/AC:L".to_owned()),
        ("suggested_cvss_vector", |r| r.suggested_cvss_vector = "not a vector".to_owned()),
        ("affected_products", |r| r.affected_products = (0..101).map(|i| format!("p{i}")).collect()),
    ];
    for (field, mutate) in cases {
        let mut request = submission(&format!("bad-{field}-{}", uuid::Uuid::new_v4()), "A title");
        mutate(&mut request);
        let status = client.submit_report(request).await.expect_err("must be refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(violations(&status).iter().any(|f| f == field), "{field}: {:?}", violations(&status));
    }
    // all problems at once
    let mut request = submission("bad-all", "");
    request.description = String::new();
    request.channel = 0;
    request.suggested_cvss_vector = "CVSS:9/XX".to_owned();
    request.reporter.as_mut().expect("reporter").email = "nope".to_owned();
    let status = client.submit_report(request).await.expect_err("refused");
    let fields = violations(&status);
    for field in ["title", "description", "channel", "suggested_cvss_vector", "reporter.email"] {
        assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
    }
    assert_eq!(h.stream_messages().await?, before, "nothing was appended");
    Ok(())
}

#[tokio::test]
async fn the_same_request_id_yields_one_report_also_concurrently_and_after_a_restart() -> anyhow::Result<()> {
    let h = Harness::start(Backend::Postgres, AuthMode::None).await?;
    let client = h.client().await?;
    // sequential retry
    let first = client.clone().submit_report(submission("retry-1", "XSS in search")).await?.into_inner();
    let again = client.clone().submit_report(submission("retry-1", "XSS in search")).await?.into_inner();
    assert_eq!(first.report_id, again.report_id);
    assert_eq!(first.report, again.report);
    // concurrent retries of a new request
    let calls = (0..16).map(|_| {
        let mut c = client.clone();
        tokio::spawn(async move { c.submit_report(submission("retry-2", "CSRF in settings")).await })
    });
    let mut ids = std::collections::BTreeSet::new();
    for call in futures::future::join_all(calls).await {
        ids.insert(call??.into_inner().report_id);
    }
    assert_eq!(ids.len(), 1, "one report id for one request id: {ids:?}");
    let concurrent_id = ids.into_iter().next().expect("one id");
    for id in [&first.report_id, &concurrent_id] {
        let events = h.report_events(id).await?;
        assert_eq!(events.len(), 1, "exactly one event for {id}");
        assert_eq!(events[0].event_type, "psirt.events.v1.ReportReceived");
    }
    // after a restart (the duplicate window is not what saves us here: the
    // deterministic subject and expectation are)
    let h = Box::pin(h.restart()).await?;
    let mut client = h.client().await?;
    let after = client.submit_report(submission("retry-1", "XSS in search")).await?.into_inner();
    assert_eq!(after.report_id, first.report_id);
    assert_eq!(h.report_events(&first.report_id).await?.len(), 1);
    // a different principal's identical request id is a different report
    Ok(())
}

#[tokio::test]
async fn request_ids_are_scoped_by_principal() -> anyhow::Result<()> {
    let h = Harness::start(Backend::Sqlite, AuthMode::Jwt).await?;
    let mut client = h.client().await?;
    let alice = token("alice", &["reporter"], 300, SECRET);
    let bob = token("bob", &["reporter"], 300, SECRET);
    let a =
        client.submit_report(with_token(submission("same", "Path traversal"), &alice)).await?.into_inner();
    let b = client.submit_report(with_token(submission("same", "Path traversal"), &bob)).await?.into_inner();
    assert_ne!(a.report_id, b.report_id);
    // a reporter cannot read someone else's report: not found, not denied
    let status = client
        .get_report(with_token(intake::GetReportRequest { report_id: a.report_id.clone() }, &bob))
        .await
        .expect_err("hidden");
    assert_eq!(status.code(), Code::NotFound);
    let own =
        client.get_report(with_token(intake::GetReportRequest { report_id: a.report_id }, &alice)).await?;
    assert!(own.into_inner().report.is_some());
    Ok(())
}

#[tokio::test]
async fn authentication_and_roles_are_enforced() -> anyhow::Result<()> {
    let h = Harness::start(Backend::Sqlite, AuthMode::Jwt).await?;
    let mut client = h.client().await?;
    let list = intake::ListReportsRequest::default;

    let status = client.list_reports(list()).await.expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);

    let expired = token("carol", &["analyst"], -3600, SECRET);
    let status = client.list_reports(with_token(list(), &expired)).await.expect_err("expired");
    assert_eq!(status.code(), Code::Unauthenticated);

    let forged = token("carol", &["analyst"], 300, "another-secret-that-is-also-long-enough!!");
    let status = client.list_reports(with_token(list(), &forged)).await.expect_err("bad signature");
    assert_eq!(status.code(), Code::Unauthenticated);

    let status = client.list_reports(with_token(list(), "not.a.jwt")).await.expect_err("malformed");
    assert_eq!(status.code(), Code::Unauthenticated);

    let reporter = token("dave", &["reporter"], 300, SECRET);
    let status = client.list_reports(with_token(list(), &reporter)).await.expect_err("wrong role");
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = client
        .acknowledge_report(with_token(
            intake::AcknowledgeReportRequest {
                report_id: uuid::Uuid::now_v7().to_string(),
                ..Default::default()
            },
            &reporter,
        ))
        .await
        .expect_err("wrong role");
    assert_eq!(status.code(), Code::PermissionDenied);

    let analyst = token("erin", &["analyst"], 300, SECRET);
    client.list_reports(with_token(list(), &analyst)).await?;
    let admin = token("root", &["admin"], 300, SECRET);
    client.list_reports(with_token(list(), &admin)).await?;
    Ok(())
}

#[tokio::test]
async fn acknowledge_and_messages_with_optimistic_concurrency() -> anyhow::Result<()> {
    let h = Harness::start(Backend::Sqlite, AuthMode::None).await?;
    let mut client = h.client().await?;
    let submitted = client.submit_report(submission("ack-1", "RCE in upload")).await?.into_inner();
    let report = submitted.report.expect("report");

    // a stale expectation is refused
    let status = client
        .acknowledge_report(intake::AcknowledgeReportRequest {
            report_id: report.report_id.clone(),
            request_id: "ack-req".to_owned(),
            expected_version: Some(report.version + 1000),
            message: None,
        })
        .await
        .expect_err("stale");
    assert_eq!(status.code(), Code::Aborted);

    let acked = client
        .acknowledge_report(intake::AcknowledgeReportRequest {
            report_id: report.report_id.clone(),
            request_id: "ack-req".to_owned(),
            expected_version: Some(report.version),
            message: Some("Thanks, we are on it.".to_owned()),
        })
        .await?
        .into_inner()
        .report
        .expect("report");
    assert_eq!(acked.status, intake::ReportStatus::Acknowledged as i32);
    assert!(acked.version > report.version);

    // the same request retried answers the same, a new one is refused
    let retried = client
        .acknowledge_report(intake::AcknowledgeReportRequest {
            report_id: report.report_id.clone(),
            request_id: "ack-req".to_owned(),
            expected_version: None,
            message: Some("Thanks, we are on it.".to_owned()),
        })
        .await?
        .into_inner()
        .report
        .expect("report");
    assert_eq!(retried.version, acked.version);
    let status = client
        .acknowledge_report(intake::AcknowledgeReportRequest {
            report_id: report.report_id.clone(),
            request_id: "ack-other".to_owned(),
            expected_version: None,
            message: None,
        })
        .await
        .expect_err("twice");
    assert_eq!(status.code(), Code::FailedPrecondition);

    let added = client
        .add_reporter_message(intake::AddReporterMessageRequest {
            report_id: report.report_id.clone(),
            request_id: "msg-1".to_owned(),
            direction: pc::MessageDirection::Outbound.into(),
            author: "psirt@example.com".to_owned(),
            body: "Could you share a proof of concept?".to_owned(),
            expected_version: None,
        })
        .await?
        .into_inner();
    assert!(!added.message_id.is_empty());
    let again = client
        .add_reporter_message(intake::AddReporterMessageRequest {
            report_id: report.report_id.clone(),
            request_id: "msg-1".to_owned(),
            direction: pc::MessageDirection::Outbound.into(),
            author: "psirt@example.com".to_owned(),
            body: "Could you share a proof of concept?".to_owned(),
            expected_version: None,
        })
        .await?
        .into_inner();
    assert_eq!(again.message_id, added.message_id);
    let view = again.report.expect("report");
    assert_eq!(view.messages.len(), 1, "the retried message is stored once");
    assert_eq!(h.report_events(&report.report_id).await?.len(), 3);

    let status = client
        .get_report(intake::GetReportRequest { report_id: uuid::Uuid::now_v7().to_string() })
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .get_report(intake::GetReportRequest { report_id: "nope".to_owned() })
        .await
        .expect_err("bad id");
    assert_eq!(status.code(), Code::InvalidArgument);
    Ok(())
}

#[tokio::test]
async fn a_likely_duplicate_is_linked_never_dropped() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let h = Harness::start(backend, AuthMode::None).await?;
        let mut client = h.client().await?;
        let first =
            client.submit_report(submission("dup-1", "SQL Injection in the login form!")).await?.into_inner();
        // wait for the first to be in the read model
        eventually(DEADLINE, "first report projected", || {
            let mut client = client.clone();
            async move {
                let list =
                    client.list_reports(intake::ListReportsRequest::default()).await.ok()?.into_inner();
                (!list.reports.is_empty()).then_some(())
            }
        })
        .await?;
        let mut second_req = submission("dup-2", "sql injection in the LOGIN form");
        second_req.affected_products = vec!["portal".to_owned(), "Gateway".to_owned()];
        let second = client.submit_report(second_req).await?.into_inner();
        assert_ne!(second.report_id, first.report_id, "both reports are kept");
        assert_eq!(second.suspected_duplicate_report_ids, vec![first.report_id.clone()], "{backend:?}");
        let events = h.report_events(&second.report_id).await?;
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].event_type, "psirt.events.v1.DuplicateSuspected");

        // the first shows the link back once projected
        eventually(DEADLINE, "link back", || {
            let mut client = client.clone();
            let (first, second) = (first.report_id.clone(), second.report_id.clone());
            async move {
                let got =
                    client.get_report(intake::GetReportRequest { report_id: first }).await.ok()?.into_inner();
                got.report?.suspected_duplicate_report_ids.contains(&second).then_some(())
            }
        })
        .await?;

        // an unrelated title is no duplicate
        let other = client.submit_report(submission("dup-3", "Weak TLS ciphers")).await?.into_inner();
        assert!(other.suspected_duplicate_report_ids.is_empty());
    }
    Ok(())
}

#[tokio::test]
async fn list_filters_and_pages() -> anyhow::Result<()> {
    let h = Harness::start(Backend::Postgres, AuthMode::None).await?;
    let mut client = h.client().await?;
    for i in 0..7 {
        let mut req = submission(&format!("page-{i}"), &format!("Finding number {i}"));
        if i % 2 == 0 {
            req.channel = pc::ReportChannel::Email.into();
        }
        client.submit_report(req).await?;
    }
    eventually(DEADLINE, "all projected", || {
        let mut client = client.clone();
        async move {
            let list = client
                .list_reports(intake::ListReportsRequest { page_size: 100, ..Default::default() })
                .await
                .ok()?
                .into_inner();
            (list.reports.len() == 7).then_some(())
        }
    })
    .await?;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_reports(intake::ListReportsRequest {
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        assert!(page.reports.len() <= 3);
        seen.extend(page.reports.into_iter().map(|r| r.title));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 7);
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 7, "no report twice across pages");
    let email = client
        .list_reports(intake::ListReportsRequest {
            channel: pc::ReportChannel::Email.into(),
            page_size: 100,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(email.reports.len(), 4);
    let status = client
        .list_reports(intake::ListReportsRequest { page_token: "garbage".to_owned(), ..Default::default() })
        .await
        .expect_err("bad token");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violations(&status), vec!["page_token".to_owned()]);
    Ok(())
}

#[tokio::test]
async fn rebuilding_the_read_model_gives_the_incremental_result() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let mut h = Harness::start(backend, AuthMode::None).await?;
        let mut client = h.client().await?;
        let first = client.submit_report(submission("rb-1", "Stored XSS in comments")).await?.into_inner();
        client.submit_report(submission("rb-2", "Weak password hashing")).await?;
        client
            .acknowledge_report(intake::AcknowledgeReportRequest {
                report_id: first.report_id.clone(),
                request_id: "rb-ack".to_owned(),
                ..Default::default()
            })
            .await?;
        let list = || {
            let mut client = client.clone();
            async move {
                client
                    .list_reports(intake::ListReportsRequest { page_size: 100, ..Default::default() })
                    .await
                    .ok()
                    .map(|r| r.into_inner().reports)
            }
        };
        let incremental = eventually(DEADLINE, "projection caught up", || async {
            let reports = list().await?;
            (reports.len() == 2
                && reports.iter().any(|r| r.status == intake::ReportStatus::Acknowledged as i32))
            .then_some(reports)
        })
        .await?;
        h.stop().await?;

        let config = common::config(&h.nats, &h.db, AuthMode::None);
        let replayed = psirt_intake::rebuild(&config, |_, _| {}).await?;
        assert!(replayed >= 3, "{backend:?}: replayed {replayed} events");
        let h = Box::pin(h.restart()).await?;
        let mut client = h.client().await?;
        let rebuilt = client
            .list_reports(intake::ListReportsRequest { page_size: 100, ..Default::default() })
            .await?
            .into_inner()
            .reports;
        assert_eq!(rebuilt, incremental, "{backend:?}");
    }
    Ok(())
}

#[tokio::test]
async fn the_duplicate_filter_reads_each_new_key_once_by_stream_sequence() -> anyhow::Result<()> {
    use psirt_intake::dedup::DedupFilter;
    for backend in BACKENDS {
        let db = psirt_testkit::TestDatabase::new(backend).await?;
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(2).connect(db.url()).await?;
        psirt_intake::readmodel::MIGRATOR.run(&pool).await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        let day = 86_400_000;
        let insert = |key: String, received: i64, sequence: i64| {
            let pool = pool.clone();
            async move {
                sqlx::query(
                    "INSERT INTO intake_dedup_keys (dedup_key, report_id, received_at_ms, sequence) VALUES ($1, $2, $3, $4)",
                )
                .bind(key)
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(received)
                .bind(sequence)
                .execute(&pool)
                .await
            }
        };
        let key = |title: &str| psirt_domain::dedup_keys(title, &["Portal".to_owned()]).remove(0);
        // before sequences were recorded (0), inside and outside the window
        insert(key("old inside"), now - day, 0).await?;
        insert(key("old outside"), now - 40 * day, 0).await?;
        insert(key("first"), now, 5).await?;

        let filter = DedupFilter::default();
        assert_eq!(filter.refresh(&pool, now - 30 * day).await?, 2, "{backend:?}: the window");
        assert!(filter.may_contain(&[key("old inside")]) && filter.may_contain(&[key("first")]));
        assert!(!filter.may_contain(&[key("old outside")]), "{backend:?}: outside the window");

        // Another replica's reports reach the read model: only they are read.
        insert(key("second"), now, 7).await?;
        insert(key("third"), now, 9).await?;
        assert_eq!(filter.refresh(&pool, now - 30 * day).await?, 2, "{backend:?}: the new keys");
        assert!(filter.may_contain(&[key("second")]) && filter.may_contain(&[key("third")]));
        assert_eq!(filter.refresh(&pool, now - 30 * day).await?, 0, "{backend:?}: nothing read twice");
    }
    Ok(())
}
