//! NATS restarted under load, with every service running as a real process:
//! each service reports not ready while NATS is away and ready again once it
//! is back, reconnecting by itself; the load sees only errors it can retry
//! with the same request id; afterwards every acknowledged report has its
//! case, opened exactly once.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_proto::triage::case_service_client::CaseServiceClient;
use psirt_proto::{common as pc, intake, triage};
use psirt_testkit::eventually;

use crate::common::{Service, build, sqlite, tempfile_dir};

const DEADLINE: Duration = Duration::from_secs(60);

/// `/readyz` of a service: `Some(true)` 200, `Some(false)` 503, `None` no answer.
async fn ready(admin: u16) -> Option<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", admin)).await.ok()?;
    stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.ok()?;
    if buf.starts_with(b"HTTP/1.1 200") {
        Some(true)
    } else if buf.starts_with(b"HTTP/1.1 503") {
        Some(false)
    } else {
        None
    }
}

fn report(i: usize) -> intake::SubmitReportRequest {
    intake::SubmitReportRequest {
        request_id: format!("nats-restart-{i}"),
        title: format!("Report {i} while the bus restarts"),
        description: "Found by fuzzing.".to_owned(),
        channel: pc::ReportChannel::Api.into(),
        affected_products: vec![format!("Product {i}")],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_follow_a_nats_restart_under_load_and_lose_nothing() -> anyhow::Result<()> {
    build()?;
    let mut nats = common::secured_nats().await?;
    let dir = tempfile_dir::Dir::new("nats-restart")?;
    let services = [
        Service::start("intake", &nats, sqlite(&dir, "intake")).await?,
        Service::start("triage", &nats, sqlite(&dir, "triage")).await?,
        Service::start("remediation", &nats, sqlite(&dir, "remediation")).await?,
        Service::start("notification", &nats, sqlite(&dir, "notification")).await?,
    ];
    let intake_client = IntakeServiceClient::new(services[0].channel().await?);
    let mut cases = CaseServiceClient::new(services[1].channel().await?);

    // Steady load: each report is retried with its own request id until
    // intake acknowledges it; only UNAVAILABLE (and deadline errors) may occur.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = Arc::clone(&stop);
        let client = intake_client.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut unexpected = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                loop {
                    match client.clone().submit_report(report(i)).await {
                        Ok(response) => {
                            acknowledged.push(response.into_inner().case_id);
                            break;
                        }
                        Err(status)
                            if matches!(
                                status.code(),
                                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                            ) =>
                        {
                            // The bus is away: pace the retries of the same request.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(status) => {
                            unexpected.push(status);
                            break;
                        }
                    }
                }
                i += 1;
                // About 40 reports a second: load, not a benchmark.
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            (acknowledged, unexpected)
        })
    };

    // Some reports flow, then NATS goes away.
    eventually(DEADLINE, "reports flowing", || {
        let mut cases = cases.clone();
        async move {
            let listed = cases
                .list_cases(triage::ListCasesRequest { page_size: 1000, ..Default::default() })
                .await
                .ok()?;
            (listed.into_inner().cases.len() >= 20).then_some(())
        }
    })
    .await?;
    nats.kill();
    for service in &services {
        let admin = service.admin;
        eventually(DEADLINE, &format!("{} not ready without NATS", service.name), || async move {
            (ready(admin).await == Some(false)).then_some(())
        })
        .await?;
    }

    // NATS is back (same port, same store): every service reconnects by itself.
    nats.restart().await?;
    for service in &services {
        let admin = service.admin;
        eventually(DEADLINE, &format!("{} ready again", service.name), || async move {
            (ready(admin).await == Some(true)).then_some(())
        })
        .await?;
    }
    // A little more load after the restart, then stop it.
    let before = {
        let listed =
            cases.list_cases(triage::ListCasesRequest { page_size: 1000, ..Default::default() }).await?;
        listed.into_inner().cases.len()
    };
    eventually(DEADLINE, "reports flowing after the restart", || {
        let mut cases = cases.clone();
        async move {
            let listed = cases
                .list_cases(triage::ListCasesRequest { page_size: 1000, ..Default::default() })
                .await
                .ok()?;
            (listed.into_inner().cases.len() >= before + 20).then_some(())
        }
    })
    .await?;
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, unexpected) = load.await?;
    assert!(unexpected.is_empty(), "errors other than UNAVAILABLE: {unexpected:?}");

    // Every acknowledged report has its case, each opened once.
    let expected: BTreeSet<String> = acknowledged.iter().cloned().collect();
    assert_eq!(expected.len(), acknowledged.len(), "distinct case ids");
    let listed = eventually(DEADLINE, "every acknowledged report's case", || {
        let mut cases = cases.clone();
        let expected = expected.clone();
        async move {
            let listed = cases
                .list_cases(triage::ListCasesRequest { page_size: 1000, ..Default::default() })
                .await
                .ok()?
                .into_inner()
                .cases;
            let ids: BTreeSet<String> = listed.iter().map(|c| c.case_id.clone()).collect();
            (ids == expected).then_some(listed)
        }
    })
    .await?;
    let keys: BTreeSet<&str> = listed.iter().map(|c| c.case_key.as_str()).collect();
    assert_eq!(keys.len(), listed.len(), "every case has its own key");
    for case in &listed {
        let events = cases
            .get_case_timeline(triage::GetCaseTimelineRequest {
                case_id: case.case_id.clone(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .entries;
        let opened = events.iter().filter(|e| e.event_type == "psirt.events.v1.CaseOpened").count();
        assert_eq!(opened, 1, "case {} opened {opened} times", case.case_key);
    }
    Ok(())
}
