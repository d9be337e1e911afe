//! Triage killed without a chance to clean up (its runtime dropped, like
//! `kill -9` drops a process) while reports flow, then restarted: every
//! report ends with exactly one case, and the case keys stay unique.

mod common;

use std::time::Duration;

use common::{DEADLINE, Harness};
use psirt_kit::Shutdown;
use psirt_kit::config::AuthMode;
use psirt_proto::triage;
use psirt_testkit::{Backend, NatsServer, TestDatabase, eventually};
use psirt_triage::Application;

/// Runs triage on a runtime of its own, so dropping the runtime kills every
/// task of it at once, mid-transaction and mid-append.
fn start_killable(
    config: &psirt_triage::Config,
) -> anyhow::Result<(tokio::runtime::Runtime, std::net::SocketAddr)> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let config = config.clone();
    let addr = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                runtime.block_on(async move {
                    let metrics =
                        psirt_kit::telemetry::init("psirt-triage-crash", &config.log, &config.otel)?;
                    let app = Application::build(&config, metrics.metrics()).await?;
                    let addr = app.grpc_addr();
                    tokio::spawn(async move {
                        let _metrics = metrics;
                        app.run_until_stopped(Shutdown::new()).await
                    });
                    anyhow::Ok(addr)
                })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("triage start panicked"))?
    })?;
    Ok((runtime, addr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_triage_while_reports_flow_opens_every_case_exactly_once() -> anyhow::Result<()> {
    const REPORTS: usize = 120;
    let nats = NatsServer::start().await?;
    let db = TestDatabase::new(Backend::Postgres).await?;
    let mut config = common::config(&nats, &db, AuthMode::None);
    // A killed runner cannot release its lease; a short one lets the next take over soon.
    config.projection.lease = Duration::from_secs(1);
    let (killed, _) = start_killable(&config)?;
    // The stream, independent of the process that is killed.
    let h = Harness::detached(nats, db).await?;
    let mut cases = Vec::with_capacity(REPORTS);
    for i in 0..REPORTS / 2 {
        cases.push(h.report(&format!("Report {i}")).await?.1);
    }
    // Kill it while it works through the reports: some opened, some not yet.
    let working = cases[REPORTS / 8];
    eventually(DEADLINE, "triage at work", || {
        let h = &h;
        async move { (h.case_events(working).await.ok()?.len() == 1).then_some(()) }
    })
    .await?;
    // kill -9: no drain, no lease released, transactions and appends cut off
    killed.shutdown_background();
    let opened_before_restart = cases.len();
    let (survivor, addr) = start_killable(&config)?;
    for i in opened_before_restart..REPORTS {
        cases.push(h.report(&format!("Report {i}")).await?.1);
    }
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?.connect().await?;
    let client = psirt_proto::triage::case_service_client::CaseServiceClient::new(channel);
    let listed = eventually(DEADLINE, "every report's case in the view", || {
        let mut client = client.clone();
        async move {
            let list = client
                .list_cases(triage::ListCasesRequest {
                    page_size: 1000,
                    order_by: "case_key".to_owned(),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            (list.cases.len() == REPORTS).then_some(list.cases)
        }
    })
    .await?;
    let mut keys: Vec<String> = listed.iter().map(|c| c.case_key.clone()).collect();
    keys.dedup();
    assert_eq!(keys.len(), REPORTS, "unique keys");
    for case_id in &cases {
        assert_eq!(h.case_events(*case_id).await?.len(), 1, "case {case_id} opened once");
    }
    survivor.shutdown_background();
    Ok(())
}
