//! A projection whose database writes keep failing is a stalled
//! projection: the service answers `/readyz` with 503 naming it and shows
//! it in a metric, instead of retrying in silence; it is ready again once
//! the writes go through.

mod common;

use std::time::Duration;

use common::{Service, report};
use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_testkit::eventually;
use sqlx::Connection;

/// The value of `psirt_projection_stalled` for `projection` in a
/// Prometheus text body.
fn stalled_gauge(metrics: &str, projection: &str) -> Option<f64> {
    let label = format!("projection=\"{projection}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("psirt_projection_stalled") && l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn a_projection_whose_writes_keep_failing_makes_the_service_not_ready_until_it_moves()
-> anyhow::Result<()> {
    common::build()?;
    let nats = common::secured_nats().await?;
    let dir = common::tempfile_dir::Dir::new("projection-stall")?;
    let db = common::sqlite(&dir, "intake");
    let env = [("PSIRT_PROJECTION__STALLED_AFTER_MS", "2000".to_owned())];
    let intake = Service::start_with("intake", &nats, db.clone(), &env).await?;
    let mut client = IntakeServiceClient::new(intake.channel().await?);
    let first = client.submit_report(report("stall-1", "before the stall", "Portal")).await?.into_inner();
    let reader = client.clone();
    let get = |id: String| {
        let client = reader.clone();
        async move {
            let mut client = client.clone();
            client.get_report(psirt_proto::intake::GetReportRequest { report_id: id }).await.ok().map(|_| ())
        }
    };
    eventually(Duration::from_secs(20), "the first report in the read model", || {
        get(first.report_id.clone())
    })
    .await?;
    let (status, _) = intake.admin_get("/readyz").await?;
    assert_eq!(status, 200, "ready before the stall");

    // The read model's database refuses every write of the projection
    // (as a full disk or a broken migration would), while it still answers.
    let mut conn = sqlx::SqliteConnection::connect(&db).await?;
    sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut conn).await?;
    sqlx::query(
        "CREATE TRIGGER refuse_reports BEFORE INSERT ON intake_reports
         BEGIN SELECT RAISE(ABORT, 'the read model refuses writes'); END",
    )
    .execute(&mut conn)
    .await?;
    let second = client.submit_report(report("stall-2", "during the stall", "Portal")).await?.into_inner();

    let body = eventually(Duration::from_secs(20), "/readyz 503 naming the stalled projection", || {
        let intake = &intake;
        async move {
            let (status, body) = intake.admin_get("/readyz").await.ok()?;
            (status == 503 && body.contains("projection intake-reports")).then_some(body)
        }
    })
    .await?;
    let report: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(
        report["not_ready"],
        serde_json::json!(["projection intake-reports"]),
        "only the projection: {body}"
    );
    let (_, metrics) = intake.admin_get("/metrics").await?;
    assert_eq!(stalled_gauge(&metrics, "intake-reports"), Some(1.0), "the stall in the metrics");
    let mut lister = client.clone();
    let listed = lister.list_reports(psirt_proto::intake::ListReportsRequest::default()).await?.into_inner();
    assert!(
        listed.reports.iter().all(|r| r.report_id != second.report_id),
        "the stalled read model lacks the report"
    );

    // The writes go through again: ready, the report there, the gauge 0.
    sqlx::query("DROP TRIGGER refuse_reports").execute(&mut conn).await?;
    conn.close().await?;
    intake.ready().await?;
    eventually(Duration::from_secs(20), "the second report in the read model", || {
        let (mut lister, id) = (client.clone(), second.report_id.clone());
        async move {
            let listed =
                lister.list_reports(psirt_proto::intake::ListReportsRequest::default()).await.ok()?;
            listed.into_inner().reports.iter().any(|r| r.report_id == id).then_some(())
        }
    })
    .await?;
    let (_, metrics) = intake.admin_get("/metrics").await?;
    assert_eq!(stalled_gauge(&metrics, "intake-reports"), Some(0.0), "the gauge back at 0");
    Ok(())
}
