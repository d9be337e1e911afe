//! NATS goes away under the service: `/readyz` says so, nothing acknowledged
//! is lost, and the service reconnects by itself when NATS is back.

mod common;

use common::{DEADLINE, Harness, http_status, submission};
use psirt_kit::config::AuthMode;
use psirt_proto::intake;
use psirt_testkit::{Backend, eventually};

#[tokio::test]
async fn readiness_follows_nats_and_the_service_reconnects() -> anyhow::Result<()> {
    let mut h = Harness::start(Backend::Sqlite, AuthMode::None).await?;
    let admin = h.admin;
    eventually(DEADLINE, "ready", || async move {
        (http_status(admin, "/readyz").await == Some(200)).then_some(())
    })
    .await?;
    let mut client = h.client().await?;
    let before = client.submit_report(submission("nats-1", "Before the outage")).await?.into_inner();

    h.nats.kill();
    eventually(DEADLINE, "not ready while nats is away", || async move {
        (http_status(admin, "/readyz").await == Some(503)).then_some(())
    })
    .await?;
    let status = client.submit_report(submission("nats-2", "During the outage")).await.expect_err("no bus");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");

    h.nats.restart().await?;
    eventually(DEADLINE, "ready again", || async move {
        (http_status(admin, "/readyz").await == Some(200)).then_some(())
    })
    .await?;
    // the retried request goes through, and the report from before is still there
    let during = eventually(DEADLINE, "submission after reconnect", || {
        let mut client = client.clone();
        async move { client.submit_report(submission("nats-2", "During the outage")).await.ok() }
    })
    .await?
    .into_inner();
    assert_ne!(during.report_id, before.report_id);
    let got = client.get_report(intake::GetReportRequest { report_id: before.report_id.clone() }).await?;
    assert_eq!(got.into_inner().report.expect("report").title, "Before the outage");
    Ok(())
}
