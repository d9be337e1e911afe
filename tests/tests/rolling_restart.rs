//! A rolling restart, simulated: all four services run as real processes on
//! one nats-server, a webhook subscription on notification points at a local
//! receiver, and a steady load submits reports to intake. While the load
//! runs, each service in turn (intake, triage, remediation, notification) is
//! stopped with SIGTERM, started again and waited for. The load sees no error
//! but `UNAVAILABLE` (or the client transport's CANCELLED for a call queued
//! on a connection the draining server closed, which never reached the
//! service), retried with the same request id; afterwards every
//! report exists once, has its case under the promised id, opened once, and
//! each of its events (`ReportReceived`, `CaseOpened`) reached the receiver
//! exactly once, by CloudEvent id, and is recorded as delivered.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_proto::notification::notification_service_client::NotificationServiceClient;
use psirt_proto::triage::case_service_client::CaseServiceClient;
use psirt_proto::{common as pc, events, intake, notification as api, triage};
use psirt_testkit::eventually;

use crate::common::{AuthChannel, Service, build, sqlite, tempfile_dir};

/// How long the system may take to settle after the load stops.
const DEADLINE: Duration = Duration::from_secs(60);
/// Reports a second of the load.
const RATE_PER_SECOND: u64 = 20;
/// Reports accepted before the first restart and after each one (~2 s of load).
const REPORTS_PER_STEP: usize = 40;
/// Longest a single submission may go unanswered before the load calls it an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between retries of one submission while intake is away.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
const SECRET: &str = "0123456789abcdef0123456789abcdef";
const REPORT_RECEIVED: &str = "psirt.events.v1.ReportReceived";
const CASE_OPENED: &str = "psirt.events.v1.CaseOpened";
/// The event types the subscription asks for: one event of each per report.
const EVENT_TYPES: [&str; 2] = [REPORT_RECEIVED, CASE_OPENED];

/// A report intake acknowledged, with what it promised.
#[derive(Debug, Clone)]
struct Accepted {
    request_id: String,
    report_id: String,
    case_id: String,
}

/// What the load saw: the acknowledged reports, how many `UNAVAILABLE`
/// answers it retried, and every other error (each one a failure).
#[derive(Debug, Default)]
struct LoadOutcome {
    accepted: Vec<Accepted>,
    retried_unavailable: usize,
    unexpected: Vec<String>,
}

fn report(run: &str, i: usize) -> intake::SubmitReportRequest {
    intake::SubmitReportRequest {
        request_id: format!("rolling-{run}-{i}"),
        title: format!("Report {i} of rolling restart {run}"),
        description: "Found while every service restarts in turn.".to_owned(),
        channel: pc::ReportChannel::Api.into(),
        affected_products: vec![format!("Product {run} {i}")],
        ..Default::default()
    }
}

/// CANCELLED raised by the client's transport (the connection closed under
/// a queued call), not by the service.
fn transport_cancelled(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Cancelled
        && std::error::Error::source(status)
            .is_some_and(|s| s.downcast_ref::<tonic::transport::Error>().is_some())
}

/// Submits reports at a steady rate until `stop`; each one is retried with
/// its own request id on `UNAVAILABLE` until intake acknowledges it.
async fn load(
    client: IntakeServiceClient<AuthChannel>,
    run: String,
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicUsize>,
) -> LoadOutcome {
    let mut outcome = LoadOutcome::default();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE_PER_SECOND));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let request = report(&run, i);
        loop {
            let mut client = client.clone();
            match tokio::time::timeout(CALL_TIMEOUT, client.submit_report(request.clone())).await {
                Ok(Ok(response)) => {
                    let response = response.into_inner();
                    outcome.accepted.push(Accepted {
                        request_id: request.request_id.clone(),
                        report_id: response.report_id,
                        case_id: response.case_id,
                    });
                    progress.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                    // Intake is away (refused connection) or draining: the
                    // same request again, paced.
                    outcome.retried_unavailable += 1;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Ok(Err(status)) if transport_cancelled(&status) => {
                    // A call queued on the connection at the moment the
                    // draining server closed it never reached the service;
                    // tonic's client reports it as CANCELLED with a
                    // transport error where the gRPC spec says UNAVAILABLE.
                    // Retried like UNAVAILABLE.
                    outcome.retried_unavailable += 1;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Ok(Err(status)) => {
                    outcome.unexpected.push(format!(
                        "{}: {:?} {:?} (source: {:?})",
                        request.request_id,
                        status.code(),
                        status.message(),
                        std::error::Error::source(&status).map(ToString::to_string),
                    ));
                    break;
                }
                Err(_) => {
                    outcome
                        .unexpected
                        .push(format!("{}: no answer within {CALL_TIMEOUT:?}", request.request_id));
                    break;
                }
            }
        }
        i += 1;
    }
    outcome
}

async fn all_cases(client: &CaseServiceClient<AuthChannel>) -> Option<Vec<triage::Case>> {
    let mut client = client.clone();
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_cases(triage::ListCasesRequest { page_size: 1000, page_token: token, ..Default::default() })
            .await
            .ok()?
            .into_inner();
        all.extend(page.cases);
        if page.next_page_token.is_empty() {
            return Some(all);
        }
        token = page.next_page_token;
    }
}

async fn all_reports(client: &IntakeServiceClient<AuthChannel>) -> Option<Vec<intake::Report>> {
    let mut client = client.clone();
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_reports(intake::ListReportsRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner();
        all.extend(page.reports);
        if page.next_page_token.is_empty() {
            return Some(all);
        }
        token = page.next_page_token;
    }
}

async fn all_deliveries(client: &NotificationServiceClient<AuthChannel>) -> Option<Vec<api::Delivery>> {
    let mut client = client.clone();
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_deliveries(api::ListDeliveriesRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner();
        all.extend(page.deliveries);
        if page.next_page_token.is_empty() {
            return Some(all);
        }
        token = page.next_page_token;
    }
}

/// Waits until the load has acknowledged `target` reports.
async fn accepted_at_least(progress: &AtomicUsize, target: usize, what: &str) -> anyhow::Result<()> {
    eventually(DEADLINE, what, || async move { (progress.load(Ordering::Relaxed) >= target).then_some(()) })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_load_loses_and_repeats_nothing() -> anyhow::Result<()> {
    build()?;
    let started = Instant::now();
    let nats = common::secured_nats().await?;
    let dir = tempfile_dir::Dir::new("rolling-restart")?;
    let key = dir.0.join("hook.key");
    std::fs::write(&key, SECRET)?;
    let notification_env = [("PSIRT_SECRETS__E2E_HOOK__FILE", key.display().to_string())];
    let mut services = [
        Service::start("intake", &nats, sqlite(&dir, "intake")).await?,
        Service::start("triage", &nats, sqlite(&dir, "triage")).await?,
        Service::start("remediation", &nats, sqlite(&dir, "remediation")).await?,
        Service::start_with("notification", &nats, sqlite(&dir, "notification"), &notification_env).await?,
    ];
    let intake_client = IntakeServiceClient::new(services[0].channel().await?);
    let cases = CaseServiceClient::new(services[1].channel().await?);

    let (url, received) = common::webhook_receiver().await?;
    let subscription = NotificationServiceClient::new(services[3].channel().await?)
        .create_subscription(api::CreateSubscriptionRequest {
            request_id: "rolling-restart-hook".to_owned(),
            settings: Some(events::SubscriptionSettings {
                name: "Rolling restart receiver".to_owned(),
                channel: events::DeliveryChannel::Webhook.into(),
                endpoint: url,
                event_types: EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect(),
                trusted: true,
                secret_ref: "e2e_hook".to_owned(),
                enabled: true,
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .subscription
        .ok_or_else(|| anyhow::anyhow!("CreateSubscription answered no subscription"))?;

    // The steady load, from the subscription on.
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let load = tokio::spawn(load(intake_client.clone(), run, Arc::clone(&stop), Arc::clone(&progress)));
    accepted_at_least(&progress, REPORTS_PER_STEP, "the load under way").await?;

    // Each service in turn: SIGTERM, start again on the same ports and
    // database, ready, then some more load before the next one.
    for service in &mut services {
        let step = Instant::now();
        // `stop` waits for the process: keep the runtime's other worker free.
        tokio::task::block_in_place(|| service.stop())?;
        let stopped = step.elapsed();
        service.spawn_on_same_ports(&nats).await?;
        service.ready().await?;
        let ready = step.elapsed();
        let at_ready = progress.load(Ordering::Relaxed);
        accepted_at_least(
            &progress,
            at_ready + REPORTS_PER_STEP,
            &format!("load flowing after {} restarted", service.name),
        )
        .await?;
        // The restarted service does its part for reports submitted since it
        // came back: more cases (deliveries) than there were reports when it
        // was ready means some are those of newer reports.
        match service.name {
            "triage" => {
                eventually(DEADLINE, "triage opening cases again after its restart", || async {
                    (all_cases(&cases).await?.len() > at_ready).then_some(())
                })
                .await?;
            }
            "notification" => {
                eventually(DEADLINE, "notification delivering again after its restart", || async {
                    (received.lock().expect("received").len() > at_ready * EVENT_TYPES.len()).then_some(())
                })
                .await?;
            }
            _ => {}
        }
        eprintln!(
            "{}: stopped in {stopped:?}, ready after {ready:?}, {REPORTS_PER_STEP} more reports after {:?}",
            service.name,
            step.elapsed()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let outcome = load.await?;
    let n = outcome.accepted.len();
    eprintln!(
        "load: {n} reports acknowledged, {} UNAVAILABLE answers retried, {:?} since start",
        outcome.retried_unavailable,
        started.elapsed()
    );
    assert!(
        outcome.unexpected.is_empty(),
        "the load saw {} errors other than UNAVAILABLE: {:#?}",
        outcome.unexpected.len(),
        outcome.unexpected
    );

    // Every acknowledged report once, under its own ids.
    let report_ids: BTreeSet<String> = outcome.accepted.iter().map(|a| a.report_id.clone()).collect();
    let case_ids: BTreeSet<String> = outcome.accepted.iter().map(|a| a.case_id.clone()).collect();
    let request_ids: BTreeSet<&str> = outcome.accepted.iter().map(|a| a.request_id.as_str()).collect();
    assert_eq!(request_ids.len(), n, "each request acknowledged once");
    assert_eq!(report_ids.len(), n, "each acknowledged report has its own report id");
    assert_eq!(case_ids.len(), n, "each acknowledged report promises its own case id");

    // Intake stored each report once: a retried request appended nothing.
    let intake_client = IntakeServiceClient::new(services[0].channel().await?);
    let reports = eventually(DEADLINE, "every acknowledged report listed by intake", || {
        let intake_client = intake_client.clone();
        let report_ids = report_ids.clone();
        async move {
            let listed = all_reports(&intake_client).await?;
            let ids: BTreeSet<String> = listed.iter().map(|r| r.report_id.clone()).collect();
            ids.is_superset(&report_ids).then_some(listed)
        }
    })
    .await?;
    let extra: Vec<&intake::Report> = reports.iter().filter(|r| !report_ids.contains(&r.report_id)).collect();
    assert!(
        reports.len() == n && extra.is_empty(),
        "intake lists {} reports for {n} acknowledged ones; not acknowledged: {extra:#?}",
        reports.len()
    );

    // Triage opened each promised case once, from its report.
    let cases = CaseServiceClient::new(services[1].channel().await?);
    let listed = eventually(DEADLINE, "every promised case listed by triage", || {
        let cases = cases.clone();
        let case_ids = case_ids.clone();
        async move {
            let listed = all_cases(&cases).await?;
            let ids: BTreeSet<String> = listed.iter().map(|c| c.case_id.clone()).collect();
            ids.is_superset(&case_ids).then_some(listed)
        }
    })
    .await?;
    let ids: BTreeSet<&str> = listed.iter().map(|c| c.case_id.as_str()).collect();
    assert_eq!(ids.len(), listed.len(), "ListCases names each case once");
    assert_eq!(listed.len(), n, "triage has exactly one case per acknowledged report");
    let keys: BTreeSet<&str> = listed.iter().map(|c| c.case_key.as_str()).collect();
    assert_eq!(keys.len(), n, "every case has its own key");
    let problems: Vec<String> = futures::stream::iter(outcome.accepted.iter().cloned())
        .map(|accepted| {
            let mut cases = cases.clone();
            async move {
                let case = match cases
                    .get_case(triage::GetCaseRequest {
                        lookup: Some(triage::get_case_request::Lookup::CaseId(accepted.case_id.clone())),
                    })
                    .await
                {
                    Ok(answer) => answer.into_inner().case,
                    Err(status) => return Some(format!("GetCase {}: {status}", accepted.case_id)),
                };
                let Some(case) = case else { return Some(format!("GetCase {}: no case", accepted.case_id)) };
                if case.report_ids != [accepted.report_id.clone()] {
                    return Some(format!(
                        "case {} names reports {:?}, expected [{}]",
                        case.case_key, case.report_ids, accepted.report_id
                    ));
                }
                let timeline = match cases
                    .get_case_timeline(triage::GetCaseTimelineRequest {
                        case_id: accepted.case_id.clone(),
                        page_size: 1000,
                        ..Default::default()
                    })
                    .await
                {
                    Ok(answer) => answer.into_inner().entries,
                    Err(status) => return Some(format!("GetCaseTimeline {}: {status}", accepted.case_id)),
                };
                let opened = timeline.iter().filter(|e| e.event_type == CASE_OPENED).count();
                (opened != 1).then(|| format!("case {} opened {opened} times", case.case_key))
            }
        })
        .buffer_unordered(8)
        .filter_map(|problem| async move { problem })
        .collect()
        .await;
    assert!(problems.is_empty(), "{} cases are wrong: {problems:#?}", problems.len());

    // The receiver got each matching event once: one ReportReceived and one
    // CaseOpened per report, no CloudEvent id twice.
    let expected_deliveries = n * EVENT_TYPES.len();
    let settled = eventually(DEADLINE, "every delivery at the receiver", || async {
        (received.lock().expect("received").len() >= expected_deliveries).then_some(())
    })
    .await;
    let seen = received.lock().expect("received").clone();
    let notification = NotificationServiceClient::new(services[3].channel().await?);
    if let Err(e) = settled {
        let statuses = all_deliveries(&notification).await.map(|all| {
            let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
            for d in all {
                *by_status.entry(format!("{:?}", d.status())).or_default() += 1;
            }
            by_status
        });
        anyhow::bail!(
            "{e}: the receiver has {} of {expected_deliveries} deliveries; notification's deliveries by status: \
             {statuses:?}",
            seen.len()
        );
    }
    let twice: Vec<(&String, &common::Seen)> = seen.iter().filter(|(_, s)| s.count != 1).collect();
    assert!(
        twice.is_empty(),
        "{} CloudEvent ids reached the receiver more than once (of {}): {twice:#?}",
        twice.len(),
        seen.len()
    );
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for s in seen.values() {
        *by_type.entry(s.event_type.as_str()).or_default() += 1;
    }
    let want: BTreeMap<&str, usize> = EVENT_TYPES.iter().map(|t| (*t, n)).collect();
    assert_eq!(by_type, want, "deliveries by event type at the receiver, for {n} reports");

    // Notification recorded each of them as delivered, one per event type
    // and case.
    let deliveries = eventually(DEADLINE, "every delivery recorded as delivered", || {
        let notification = notification.clone();
        async move {
            let all = all_deliveries(&notification).await?;
            (all.len() >= expected_deliveries
                && all.iter().all(|d| d.status() == api::DeliveryStatus::Delivered))
            .then_some(all)
        }
    })
    .await?;
    assert_eq!(deliveries.len(), expected_deliveries, "deliveries listed by notification");
    let listed_ids: BTreeSet<&str> = deliveries.iter().map(|d| d.delivery_id.as_str()).collect();
    let seen_ids: BTreeSet<&str> = seen.keys().map(String::as_str).collect();
    assert_eq!(listed_ids, seen_ids, "the deliveries notification lists are those the receiver got");
    let mut per_case: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for d in &deliveries {
        assert_eq!(
            d.subscription_id, subscription.subscription_id,
            "delivery {} subscription",
            d.delivery_id
        );
        per_case.entry(d.case_id.as_str()).or_default().push(d.event_type.as_str());
    }
    let wrong: Vec<(&str, Vec<&str>)> = per_case
        .into_iter()
        .filter(|(case, types)| {
            let mut types = types.clone();
            types.sort_unstable();
            !case_ids.contains(*case) || types != [CASE_OPENED, REPORT_RECEIVED]
        })
        .collect();
    assert!(wrong.is_empty(), "cases without exactly one delivery of each event type: {wrong:#?}");
    let attempts_over_one = deliveries.iter().filter(|d| d.total_attempts != 1).count();
    eprintln!(
        "settled: {n} reports, {n} cases, {expected_deliveries} deliveries ({attempts_over_one} needed more \
         than one attempt), {:?} since start",
        started.elapsed()
    );

    for service in &mut services {
        tokio::task::block_in_place(|| service.stop())?;
    }
    Ok(())
}
