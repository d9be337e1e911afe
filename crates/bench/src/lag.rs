//! `read-lag`: does the intake's read model keep up with the writes?
//! Submits reports at a steady rate; every response names the stream
//! position it wrote (`psirt-position`). Once the last submission is
//! answered, a `ListReports` asking for the highest of them
//! (`psirt-min-position`) waits until the read model has applied it: the
//! time that takes is how far behind the stream the read model was when the
//! load ended. During the load the same question is asked once a second for
//! the position answered last, so the figure also shows whether the lag
//! grew.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_proto::intake::{self, ListReportsRequest};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::report::{Recorder, Summary};

pub const WORKLOAD: &str = "intake at steady rate";

/// The answer header of a command: the stream position it wrote.
const POSITION: &str = "psirt-position";
/// The request header of a read: the position it must reflect.
const MIN_POSITION: &str = "psirt-min-position";
/// Submissions in flight at most; beyond it the rate is not kept (counted).
const MAX_IN_FLIGHT: usize = 1024;
/// A read model not caught up after this long: the run fails.
const GIVE_UP: Duration = Duration::from_secs(120);

pub struct LagOptions {
    pub intake: String,
    pub rate: u32,
    pub duration: Duration,
    pub warmup: Duration,
}

/// How far behind the stream the intake's read model was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagResult {
    /// Time from the last answered submission until a read for its
    /// position succeeded: the read model's lag when the load stopped.
    pub lag_at_end_ms: f64,
    /// The same, asked once a second during the load (largest sample).
    pub lag_during_max_ms: f64,
    /// Ticks the generator could not start because `MAX_IN_FLIGHT`
    /// submissions were still open (the service did not keep the rate).
    pub ticks_dropped: u64,
    /// The highest position a submission answered.
    pub last_position: u64,
}

/// Time until a read asking for `position` succeeds.
async fn time_to_read(client: &IntakeServiceClient<Channel>, position: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let mut request = tonic::Request::new(ListReportsRequest { page_size: 1, ..Default::default() });
        request.metadata_mut().insert(MIN_POSITION, position.into());
        match client.clone().list_reports(request).await {
            Ok(_) => return Ok(started.elapsed()),
            // The wait is bounded by the service (`projection.read_wait_ms`): ask again.
            Err(status) if status.code() == tonic::Code::Unavailable && started.elapsed() < GIVE_UP => {}
            Err(status) => {
                anyhow::bail!(
                    "the read for position {position} failed after {:?}: {status}",
                    started.elapsed()
                )
            }
        }
    }
}

pub async fn run(opts: &LagOptions) -> anyhow::Result<(Summary, LagResult)> {
    anyhow::ensure!(opts.rate > 0, "--rate must be greater than 0");
    let client = IntakeServiceClient::new(crate::cases::channel(&opts.intake).await?);
    let run = uuid::Uuid::now_v7();
    let recorder = Arc::new(Mutex::new(Recorder::new()));
    let highest = Arc::new(AtomicU64::new(0));
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let start = Instant::now();
    let measured_from = start + opts.warmup;
    let end = measured_from + opts.duration;

    // Once a second: how long until the position answered last is readable.
    let sampler = {
        let (client, highest) = (client.clone(), Arc::clone(&highest));
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.tick().await;
            while Instant::now() < end {
                every.tick().await;
                let position = highest.load(Ordering::Relaxed);
                if position > 0 {
                    worst = worst.max(time_to_read(&client, position).await?);
                }
            }
            anyhow::Ok(worst)
        })
    };

    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(opts.rate)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    let (mut n, mut dropped) = (0u64, 0u64);
    while Instant::now() < end {
        ticker.tick().await;
        n += 1;
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            dropped += 1;
            continue;
        };
        let (mut client, recorder, highest) = (client.clone(), Arc::clone(&recorder), Arc::clone(&highest));
        let measured = Instant::now() >= measured_from;
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let t0 = Instant::now();
            let answer = client
                .submit_report(intake::SubmitReportRequest {
                    // The intake benchmark's ~1 KiB description: a realistic row.
                    description: crate::payload::DESCRIPTION.to_owned(),
                    ..crate::cases::request("read-lag", run, n)
                })
                .await;
            let elapsed = t0.elapsed();
            match answer {
                Ok(response) => {
                    let position = response
                        .metadata()
                        .get(POSITION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    if let Some(position) = position {
                        highest.fetch_max(position, Ordering::Relaxed);
                    }
                    if measured {
                        recorder.lock().await.ok(elapsed);
                    }
                }
                Err(status) => {
                    if measured {
                        recorder.lock().await.error(crate::intake::code_name(status.code()));
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.context("submission task panicked")?;
    }
    let last_position = highest.load(Ordering::Relaxed);
    anyhow::ensure!(last_position > 0, "no submission answered a position ({POSITION})");
    let lag_at_end = time_to_read(&client, last_position).await?;
    let lag_during = sampler.await.context("lag sampler panicked")??;
    let summary = recorder.lock().await.summary(WORKLOAD, opts.duration);
    Ok((
        summary,
        LagResult {
            lag_at_end_ms: lag_at_end.as_secs_f64() * 1e3,
            lag_during_max_ms: lag_during.as_secs_f64() * 1e3,
            ticks_dropped: dropped,
            last_position,
        },
    ))
}
