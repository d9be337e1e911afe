//! Read your own writes through the real binaries (issue 19, item 3):
//! `psirtctl` shows what it just did, also when the read models take their
//! time (batches gathered for up to a second here); a read model held
//! back answers `UNAVAILABLE` naming the lag; a retried command answers
//! the position of the first attempt.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Service, report};
use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_proto::intake::{ListReportsRequest, SubmitReportResponse};
use tonic::{Code, Request};

/// The read models gather events for up to a second before applying them:
/// a read that does not wait for the position of the write before it
/// misses it.
fn slow_read_models() -> Vec<(&'static str, String)> {
    vec![("PSIRT_PROJECTION__MAX_BATCH_WAIT_MS", "1000".to_owned())]
}

struct Cli {
    intake: String,
    triage: String,
    state: std::path::PathBuf,
}

impl Cli {
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(common::bin("psirtctl"))
            .args(args)
            .args(["--server", &self.intake, "--triage-server", &self.triage])
            .env("PSIRT_TOKEN", psirt_testkit::jwt::Token::admin().mint())
            .env("PSIRT_STATE", &self.state)
            .env_remove("PSIRT_OUTPUT")
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        anyhow::ensure!(
            output.status.success(),
            "psirtctl {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(stdout)
    }
}

#[tokio::test]
async fn psirtctl_shows_what_it_just_did() -> anyhow::Result<()> {
    common::build()?;
    let nats = common::secured_nats().await?;
    let dir = common::tempfile_dir::Dir::new("ryw-cli")?;
    let intake =
        Service::start_with("intake", &nats, common::sqlite(&dir, "intake"), &slow_read_models()).await?;
    let triage =
        Service::start_with("triage", &nats, common::sqlite(&dir, "triage"), &slow_read_models()).await?;
    let cli = Cli {
        intake: format!("http://127.0.0.1:{}", intake.grpc),
        triage: format!("http://127.0.0.1:{}", triage.grpc),
        state: dir.0.join("psirtctl-state"),
    };

    let submitted = cli.run(&[
        "report",
        "submit",
        "--title",
        "SQL injection in the login form",
        "--description",
        "Concatenated.",
        "--reporter-name",
        "Alice",
        "--reporter-email",
        "alice@example.org",
        "--product",
        "Portal 2.4",
        "--output",
        "json",
    ])?;
    let json: serde_json::Value = serde_json::from_str(&submitted)?;
    let field =
        |camel: &str, snake: &str| json[camel].as_str().or_else(|| json[snake].as_str()).map(str::to_owned);
    let report_id = field("reportId", "report_id").ok_or_else(|| anyhow::anyhow!("no report id: {json}"))?;
    let case_id = field("caseId", "case_id").ok_or_else(|| anyhow::anyhow!("no case id: {json}"))?;
    let state = std::fs::read_to_string(&cli.state)?;
    assert!(state.starts_with(|c: char| c.is_ascii_digit()), "the position is remembered: {state}");

    // At once: the list shows the report, the case list (triage, opened by
    // its reactions) the case the submission promised.
    let list = cli.run(&["report", "list", "--output", "json"])?;
    assert!(list.contains(&report_id), "the report just submitted is listed: {list}");
    let cases = cli.run(&["case", "list", "--output", "json"])?;
    assert!(cases.contains(&case_id), "the case of the report is listed: {cases}");

    // A triage decision, then the case view shows it.
    cli.run(&["triage", "assign", &case_id, "--assignee", "alice"])?;
    let cases = cli.run(&["case", "list", "--output", "json"])?;
    let listed: serde_json::Value = serde_json::from_str(&cases)?;
    let case = listed["cases"]
        .as_array()
        .and_then(|cases| cases.iter().find(|c| c.to_string().contains(&case_id)))
        .ok_or_else(|| anyhow::anyhow!("case missing: {cases}"))?;
    assert_eq!(case["assignee"], "alice", "the assignment just made shows: {case}");

    // --no-wait reads the read model as it is; a position the stream does
    // not have (a platform reset since) is forgotten and the read answered.
    std::fs::write(
        &cli.state,
        format!("999999 {} {} http://127.0.0.1:50053 http://127.0.0.1:50054\n", cli.intake, cli.triage),
    )?;
    let list = cli.run(&["report", "list", "--output", "json"])?;
    assert!(list.contains(&report_id), "{list}");
    let state = std::fs::read_to_string(&cli.state)?;
    assert!(!state.contains("999999"), "the stale position is forgotten: {state}");
    cli.run(&["report", "list", "--no-wait"])?;
    Ok(())
}

fn position_of<T>(response: &tonic::Response<T>) -> u64 {
    response
        .metadata()
        .get("psirt-position")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("a command answers psirt-position")
}

fn list_at(position: &str) -> Request<ListReportsRequest> {
    let mut request = Request::new(ListReportsRequest::default());
    request.metadata_mut().insert("psirt-min-position", position.parse().expect("ascii"));
    request
}

/// Intake's projection held back deterministically: another runner (a
/// replica that never commits) holds its lease, so the read model stays
/// at its checkpoint while commands are answered from the stream.
#[tokio::test]
async fn a_read_model_held_back_answers_unavailable_with_the_lag() -> anyhow::Result<()> {
    common::build()?;
    let nats = common::secured_nats().await?;
    let dir = common::tempfile_dir::Dir::new("ryw-held")?;
    let db = common::sqlite(&dir, "intake");
    {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&db).await?;
        psirt_projection::ensure_schema(&pool).await?;
        let until = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 3_600_000;
        sqlx::query(
            "INSERT INTO projection_checkpoints (name, last_sequence, lease_owner, lease_until_ms, updated_at_ms)
             VALUES ('intake-reports', 0, 'another-replica', $1, 0)",
        )
        .bind(until)
        .execute(&pool)
        .await?;
        pool.close().await;
    }
    let intake =
        Service::start_with("intake", &nats, db, &[("PSIRT_PROJECTION__READ_WAIT_MS", "300".to_owned())])
            .await?;
    let mut client = IntakeServiceClient::new(intake.channel().await?);

    let submitted = client.submit_report(report("ryw-1", "XSS in search", "Portal 2.4")).await?;
    let position = position_of(&submitted);
    assert!(position > 0);
    // A retry answers the position of the first attempt, and stores nothing.
    let retried = client.submit_report(report("ryw-1", "XSS in search", "Portal 2.4")).await?;
    assert_eq!(position_of(&retried), position, "the retry answers the first attempt's position");
    let SubmitReportResponse { report_id, .. } = retried.into_inner();

    // Without a position: answered from the read model as it is.
    let listed = client.list_reports(ListReportsRequest::default()).await?.into_inner();
    assert!(listed.reports.iter().all(|r| r.report_id != report_id));
    // With it: waits read_wait_ms, then UNAVAILABLE naming the lag.
    let started = std::time::Instant::now();
    let behind = client.list_reports(list_at(&position.to_string())).await.expect_err("behind");
    assert_eq!(behind.code(), Code::Unavailable, "{behind:?}");
    assert!(
        behind.message().contains(&format!("read model intake-reports at 0, asked for {position}")),
        "{behind:?}"
    );
    assert!(!behind.details().is_empty(), "RetryInfo: {behind:?}");
    assert!(started.elapsed() >= Duration::from_millis(300), "waited projection.read_wait_ms");
    // Beyond the stream: refused at once.
    let beyond = client.list_reports(list_at(&(position + 1000).to_string())).await.expect_err("beyond");
    assert_eq!(beyond.code(), Code::OutOfRange, "{beyond:?}");
    let bad = client.list_reports(list_at("soon")).await.expect_err("not a number");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert!(bad.message().contains("psirt-min-position"), "{bad:?}");
    Ok(())
}
