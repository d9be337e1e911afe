//! Parked events through the real binaries: a forged event (a type that
//! does not belong to its subject's aggregate, published by a service's own
//! identity on its own subjects) is parked by the projection, listed by
//! `psirtctl admin parked list`, and `psirtctl admin parked replay` never
//! applies it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Service, report};
use psirt_eventstore::{EventStore, ExpectedVersion, Metadata, NewEvent, StreamSettings};
use psirt_proto::admin::admin_service_client::AdminServiceClient;
use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_testkit::eventually;

fn psirtctl(intake: &Service, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let output = Command::new(common::bin("psirtctl"))
        .args(args)
        .args(["--server", &format!("http://127.0.0.1:{}", intake.grpc)])
        .env("PSIRT_TOKEN", psirt_testkit::jwt::Token::admin().mint())
        .output()?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn a_forged_event_is_parked_listed_and_never_replayed_into_the_read_model() -> anyhow::Result<()> {
    common::build()?;
    let nats = common::secured_nats().await?;
    let dir = common::tempfile_dir::Dir::new("parked")?;
    let intake = Service::start("intake", &nats, common::sqlite(&dir, "intake")).await?;
    let mut client = IntakeServiceClient::new(intake.channel().await?);
    let submitted = client.submit_report(report("parked-1", "a real report", "Portal")).await?.into_inner();
    let report_id = submitted.report_id.clone();

    // The intake identity may publish on report subjects: it puts a
    // CaseDisclosed there, as a compromised intake would.
    let store = EventStore::open(nats.connect_as("intake").await?, &StreamSettings::default()).await?;
    let forged = psirt_proto::events::CaseDisclosed {
        case_id: report_id.clone(),
        advisory_id: "forged".to_owned(),
        tracking_id: "FORGED-1".to_owned(),
        disclosed_at: Some(prost_types::Timestamp { seconds: 1_790_000_000, nanos: 0 }),
    };
    let appended = store
        .append(
            NewEvent::from_message(
                uuid::Uuid::new_v4(),
                format!("psirt.evt.report.{report_id}"),
                &forged,
                Metadata { actor: Some("intruder".to_owned()), ..Metadata::default() },
            ),
            ExpectedVersion::Any,
        )
        .await?;

    // Listed, marked foreign.
    let listed = eventually(Duration::from_secs(20), "the forged event parked", || {
        let intake = &intake;
        async move {
            let (ok, out, _) =
                psirtctl(intake, &["admin", "parked", "list", "intake", "--output", "json"]).ok()?;
            let json: serde_json::Value = serde_json::from_str(&out).ok().filter(|_| ok)?;
            (json["events"].as_array()?.len() == 1).then_some(json)
        }
    })
    .await?;
    let event = &listed["events"][0];
    assert_eq!(event["projection"], "intake-reports");
    assert_eq!(event["sequence"], appended.sequence.to_string(), "{listed}");
    assert_eq!(event["eventType"], "psirt.events.v1.CaseDisclosed");
    assert_eq!(event["foreign"], true);
    let (ok, table, _) = psirtctl(&intake, &["admin", "parked", "list", "intake"])?;
    assert!(ok && table.contains("CaseDisclosed") && table.contains("yes"), "{table}");

    // A replay refuses it: still parked, the command says so and fails.
    let (ok, out, err) = psirtctl(&intake, &["admin", "parked", "replay", "intake"])?;
    assert!(!ok, "a replay that left events parked exits non-zero: {out}");
    assert!(out.contains("intake-reports: 0 replayed, 0 still parked, 1 refused as foreign"), "{out}");
    assert!(err.contains("1 events are still parked"), "{err}");
    let (_, out, _) = psirtctl(&intake, &["admin", "parked", "list", "intake", "--output", "json"])?;
    let json: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(json["events"].as_array().map(Vec::len), Some(1), "still parked: {json}");
    assert!(json["events"][0]["error"].as_str().unwrap_or("").starts_with("foreign event"), "{json}");

    // The read model's report is as it was. (Loading the report for a
    // command reads its subject, forged event included, and fails: only
    // the owner's identity can put one there.)
    let listed = client.list_reports(psirt_proto::intake::ListReportsRequest::default()).await?.into_inner();
    let now = listed.reports.iter().find(|r| r.report_id == report_id).expect("the report listed");
    assert_eq!(Some(now.version), submitted.report.map(|r| r.version), "nothing applied");

    // Bad requests name the field; unknown projections are NOT_FOUND.
    let mut admin = AdminServiceClient::new(intake.channel().await?);
    let unknown = admin
        .replay_parked_events(psirt_proto::admin::ReplayParkedEventsRequest {
            projection: "nothing".to_owned(),
            sequences: vec![],
        })
        .await
        .expect_err("no such projection");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let too_many = admin
        .list_parked_events(psirt_proto::admin::ListParkedEventsRequest {
            page_size: 5000,
            page_token: "x".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("bad page");
    assert_eq!(too_many.code(), tonic::Code::InvalidArgument);
    assert!(
        too_many.message().contains("page_size") && too_many.message().contains("page_token"),
        "{too_many:?}"
    );
    Ok(())
}
