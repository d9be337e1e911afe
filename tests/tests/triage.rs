//! Intake and triage as real processes: a submitted report's promised case
//! appears within a second and is worked through triage; a `kill -9` of
//! triage while reports flow opens every case exactly once.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::{Service, build, sqlite, tempfile_dir};

use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_proto::triage::case_service_client::CaseServiceClient;
use psirt_proto::triage::triage_service_client::TriageServiceClient;
use psirt_proto::{common as pc, intake, triage};
use psirt_testkit::{NatsServer, eventually};

fn report(request_id: &str, title: &str) -> intake::SubmitReportRequest {
    common::report(request_id, title, "Gateway 5")
}

fn by_id(case_id: &str) -> triage::GetCaseRequest {
    triage::GetCaseRequest { lookup: Some(triage::get_case_request::Lookup::CaseId(case_id.to_owned())) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_becomes_a_case_within_a_second_and_is_triaged_then_rebuilt_identically()
-> anyhow::Result<()> {
    build()?;
    let nats = NatsServer::start().await?;
    let dir = tempfile_dir::Dir::new("triage-flow")?;
    let _intake = Service::start("intake", &nats, sqlite(&dir, "intake")).await?;
    let mut triage_service = Service::start("triage", &nats, sqlite(&dir, "triage")).await?;
    let mut intake_client = IntakeServiceClient::new(_intake.channel().await?);
    let cases = CaseServiceClient::new(triage_service.channel().await?);
    let mut commands = TriageServiceClient::new(triage_service.channel().await?);

    let submitted =
        intake_client.submit_report(report("flow-1", "Heap overflow in the parser")).await?.into_inner();
    let returned = Instant::now();
    let case = eventually(Duration::from_secs(5), "case opened", || {
        let mut cases = cases.clone();
        let id = submitted.case_id.clone();
        async move { cases.get_case(by_id(&id)).await.ok()?.into_inner().case }
    })
    .await?;
    let waited = returned.elapsed();
    assert!(waited < Duration::from_secs(1), "the case was readable after {waited:?}");
    assert_eq!(case.case_id, submitted.case_id);
    assert!(case.case_key.starts_with("PSIRT-"), "{}", case.case_key);
    assert!(case.report_ids.contains(&submitted.report_id));

    let assessed = commands
        .assess_severity(triage::AssessSeverityRequest {
            case_id: case.case_id.clone(),
            request_id: "assess-1".to_owned(),
            cvss_v3_vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let assessed = assessed.case.expect("case");
    commands
        .accept_case(triage::AcceptCaseRequest {
            case_id: case.case_id.clone(),
            request_id: "accept-1".to_owned(),
            expected_version: Some(assessed.version),
            ..Default::default()
        })
        .await?;
    let embargoed = commands
        .set_embargo(triage::SetEmbargoRequest {
            case_id: case.case_id.clone(),
            request_id: "embargo-1".to_owned(),
            local_disclosure_time: "2030-03-10T09:00:00".to_owned(),
            time_zone: "UTC".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .case
        .expect("case");
    assert_eq!(embargoed.status, pc::CaseStatus::Accepted as i32);

    // the timeline lists every event of the case, in stream order
    let final_view = eventually(Duration::from_secs(10), "view caught up", || {
        let mut cases = cases.clone();
        let id = case.case_id.clone();
        let version = embargoed.version;
        async move {
            let view = cases.get_case(by_id(&id)).await.ok()?.into_inner().case?;
            (view.version >= version && view.embargo.is_some()).then_some(view)
        }
    })
    .await?;
    // (the timeline is read from the case view's index: poll until it has caught up)
    let expected = [
        "psirt.events.v1.ReportReceived",
        "psirt.events.v1.CaseOpened",
        "psirt.events.v1.SeverityAssessed",
        "psirt.events.v1.CaseAccepted",
        "psirt.events.v1.EmbargoSet",
    ];
    let timeline = eventually(Duration::from_secs(10), "timeline complete", || {
        let mut cases = cases.clone();
        let id = case.case_id.clone();
        async move {
            let timeline = cases
                .get_case_timeline(triage::GetCaseTimelineRequest { case_id: id, ..Default::default() })
                .await
                .ok()?
                .into_inner();
            let types: Vec<&str> = timeline.entries.iter().map(|e| e.event_type.as_str()).collect();
            expected.iter().all(|t| types.contains(t)).then_some(timeline)
        }
    })
    .await?;
    let sequences: Vec<u64> = timeline.entries.iter().map(|e| e.sequence).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "stream order: {sequences:?}");

    // rebuild through the real binary, then the same case field for field
    triage_service.stop()?;
    let status = triage_service.command(&nats).arg("rebuild").status()?;
    assert!(status.success(), "rebuild failed");
    triage_service.spawn(&nats).await?;
    triage_service.ready().await?;
    let mut cases = CaseServiceClient::new(triage_service.channel().await?);
    let rebuilt = cases.get_case(by_id(&case.case_id)).await?.into_inner().case.expect("case");
    assert_eq!(rebuilt, final_view);
    Ok(())
}

const REPORTS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_triage_while_reports_flow_opens_every_case_exactly_once() -> anyhow::Result<()> {
    build()?;
    let nats = NatsServer::start().await?;
    let dir = tempfile_dir::Dir::new("triage-crash")?;
    let intake_service = Service::start("intake", &nats, sqlite(&dir, "intake")).await?;
    let mut triage_service = Service::start("triage", &nats, sqlite(&dir, "triage")).await?;
    let intake_client = IntakeServiceClient::new(intake_service.channel().await?);

    let submit = |i: usize| {
        let mut client = intake_client.clone();
        async move { client.submit_report(report(&format!("flow-{i}"), &format!("Finding {i}"))).await }
    };
    let first_half = futures::future::join_all((0..REPORTS / 2).map(submit)).await;
    triage_service.kill_9()?;
    let second_half = futures::future::join_all((REPORTS / 2..REPORTS).map(submit)).await;
    let mut case_ids = BTreeSet::new();
    for response in first_half.into_iter().chain(second_half) {
        case_ids.insert(response?.into_inner().case_id);
    }
    assert_eq!(case_ids.len(), REPORTS);

    triage_service.spawn(&nats).await?;
    triage_service.ready().await?;
    let mut cases = CaseServiceClient::new(triage_service.channel().await?);
    eventually(Duration::from_secs(120), "all cases open", || {
        let mut cases = cases.clone();
        async move {
            let mut seen = 0;
            let mut token = String::new();
            loop {
                let page = cases
                    .list_cases(triage::ListCasesRequest {
                        page_size: 1000,
                        page_token: token.clone(),
                        ..Default::default()
                    })
                    .await
                    .ok()?
                    .into_inner();
                seen += page.cases.len();
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            (seen == REPORTS).then_some(())
        }
    })
    .await?;

    // each promised case exists, was opened once, and has its own key
    let store = psirt_eventstore::EventStore::open(
        nats.connect().await?,
        &psirt_eventstore::StreamSettings::managed(),
    )
    .await?;
    let mut keys = BTreeSet::new();
    for id in &case_ids {
        let view = cases.get_case(by_id(id)).await?.into_inner().case.expect("case");
        keys.insert(view.case_key);
        let events = store.load(&format!("psirt.evt.case.{id}")).await?;
        let opened = events.iter().filter(|e| e.event_type == "psirt.events.v1.CaseOpened").count();
        assert_eq!(opened, 1, "case {id} opened {opened} times");
    }
    assert_eq!(keys.len(), REPORTS, "every case has its own key");
    Ok(())
}
