//! `case-latency`: how long after `SubmitReport` returned OK the case that the
//! response promised is readable with `GetCase`, at a steady submission rate.
//! The path it measures: intake append → JetStream → triage reaction opens
//! the case → case view projection → read model.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_proto::triage::case_service_client::CaseServiceClient;
use psirt_proto::triage::{GetCaseRequest, get_case_request};
use psirt_proto::{common, intake};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::intake::code_name;
use crate::report::{Recorder, Summary};

pub const WORKLOAD: &str = "case latency (submit OK -> GetCase OK)";

/// The `psirt-position` a command answered with.
fn position_of(metadata: &tonic::metadata::MetadataMap) -> Option<u64> {
    metadata.get(psirt_kit::consistency::POSITION)?.to_str().ok()?.trim().parse().ok()
}

/// How often a pending case is looked up: the resolution of the figure.
const POLL: Duration = Duration::from_millis(2);
/// A case not readable after this long counts as an error.
const GIVE_UP: Duration = Duration::from_secs(10);

pub struct CaseLatencyOptions {
    pub intake: String,
    pub triage: String,
    /// Reports per second, steady.
    pub rate: u32,
    pub duration: Duration,
    pub warmup: Duration,
    pub lookup: Lookup,
}

/// How a submitted report's case is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lookup {
    /// One `GetCase` with `psirt-min-position` set to the submit's position.
    Wait,
    /// `GetCase` every [`POLL`] until found.
    Poll,
}

pub(crate) async fn channel(url: &str) -> anyhow::Result<Channel> {
    let url = if url.contains("://") { url.to_owned() } else { format!("http://{url}") };
    Endpoint::from_shared(url.clone())
        .with_context(|| format!("invalid url {url}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("failed to connect to {url}"))
}

/// Report `n` of a steady-rate run of `workload` (`case-latency`, `read-lag`):
/// its own request id and title, one product.
pub(crate) fn request(workload: &str, run: uuid::Uuid, n: u64) -> intake::SubmitReportRequest {
    intake::SubmitReportRequest {
        request_id: format!("{workload}-{run}-{n}"),
        title: format!("{workload} finding {run} number {n}"),
        description: format!("Measured by psirt-bench {workload}."),
        reporter: Some(common::Reporter {
            name: "Bench".to_owned(),
            email: "bench@example.org".to_owned(),
            organization: String::new(),
        }),
        channel: common::ReportChannel::Api.into(),
        affected_products: vec!["Bench Product".to_owned()],
        suggested_cvss_vector: String::new(),
        requested_disclosure_at: None,
        external_reference: String::new(),
    }
}

/// Submits `rate` reports per second for warmup + duration and records,
/// for those submitted in the measured window, the time to a readable case.
pub async fn run(opts: &CaseLatencyOptions) -> anyhow::Result<Summary> {
    anyhow::ensure!(opts.rate > 0, "--rate must be greater than 0");
    let intake = IntakeServiceClient::new(channel(&opts.intake).await?);
    let cases = CaseServiceClient::new(channel(&opts.triage).await?);
    let run = uuid::Uuid::now_v7();
    let recorder = Arc::new(Mutex::new(Recorder::new()));
    let start = Instant::now();
    let measured_from = start + opts.warmup;
    let end = measured_from + opts.duration;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(opts.rate)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    let mut n = 0u64;
    let opts_lookup = opts.lookup;
    while Instant::now() < end {
        ticker.tick().await;
        n += 1;
        let (mut intake, mut cases, recorder) = (intake.clone(), cases.clone(), Arc::clone(&recorder));
        let measured = Instant::now() >= measured_from;
        tasks.push(tokio::spawn(async move {
            let (position, submitted) = match intake.submit_report(request("case-latency", run, n)).await {
                Ok(r) => (position_of(r.metadata()), r.into_inner()),
                Err(status) => {
                    if measured {
                        recorder.lock().await.error(code_name(status.code()));
                    }
                    return;
                }
            };
            let t0 = Instant::now();
            let lookup = GetCaseRequest { lookup: Some(get_case_request::Lookup::CaseId(submitted.case_id)) };
            if opts_lookup == Lookup::Wait
                && let Some(position) = position
            {
                let mut request = tonic::Request::new(lookup.clone());
                if let Ok(value) = position.to_string().parse() {
                    request.metadata_mut().insert(psirt_kit::consistency::MIN_POSITION, value);
                }
                match cases.get_case(request).await {
                    Ok(_) => {
                        if measured {
                            recorder.lock().await.ok(t0.elapsed());
                        }
                        return;
                    }
                    // Not yet (the read model is behind its wait): polled below.
                    Err(status)
                        if matches!(status.code(), tonic::Code::NotFound | tonic::Code::Unavailable) => {}
                    Err(status) => {
                        if measured {
                            recorder.lock().await.error(code_name(status.code()));
                        }
                        return;
                    }
                }
            }
            loop {
                match cases.get_case(lookup.clone()).await {
                    Ok(_) => {
                        if measured {
                            recorder.lock().await.ok(t0.elapsed());
                        }
                        return;
                    }
                    Err(status) if status.code() == tonic::Code::NotFound && t0.elapsed() < GIVE_UP => {
                        tokio::time::sleep(POLL).await;
                    }
                    Err(status) => {
                        if measured {
                            recorder.lock().await.error(code_name(status.code()));
                        }
                        return;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.context("case latency task panicked")?;
    }
    let recorder = recorder.lock().await;
    Ok(recorder.summary(WORKLOAD, opts.duration))
}
