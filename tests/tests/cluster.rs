//! The event backbone on a three-server NATS cluster (routes on loopback,
//! an R3 stream, the shipped identities), through the real service binaries.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Service, report};
use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_testkit::{NatsCluster, Security, eventually};
use tonic::transport::Channel;

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Submits reports from `workers` tasks until `stop`; returns the report
/// ids answered OK and how many calls answered UNAVAILABLE.
async fn load(
    client: IntakeServiceClient<Channel>,
    run: &str,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<String>, usize, Vec<String>) {
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, stop, run) = (client.clone(), stop.clone(), run.to_owned());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut unavailable, mut unexpected) = (Vec::new(), 0usize, Vec::new());
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let request = report(&format!("{run}-{w}-{i}"), &format!("cluster report {w}/{i}"), "Portal");
                let mut client = client.clone();
                match tokio::time::timeout(CALL_TIMEOUT, client.submit_report(request)).await {
                    Ok(Ok(response)) => ok.push(response.into_inner().report_id),
                    Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                        unavailable += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(Err(status)) => unexpected.push(format!("{:?} {}", status.code(), status.message())),
                    Err(_) => unexpected.push(format!("no answer within {CALL_TIMEOUT:?} (a hang)")),
                }
                i += 1;
            }
            (ok, unavailable, unexpected)
        }));
    }
    let mut all = (Vec::new(), 0, Vec::new());
    for task in tasks {
        let (ok, unavailable, unexpected) = task.await.expect("load task");
        all.0.extend(ok);
        all.1 += unavailable;
        all.2.extend(unexpected);
    }
    all
}

#[tokio::test]
async fn kill_9_of_the_stream_leader_under_load_loses_and_repeats_nothing() -> anyhow::Result<()> {
    common::build()?;
    let mut cluster = NatsCluster::start(3, Some(Security::identities()?)).await?;
    let js = async_nats::jetstream::new(cluster.connect().await?);
    let settings = psirt_eventstore::StreamSettings { replicas: 3, ..Default::default() };
    psirt_eventstore::apply_stream(&js, &settings).await?;
    let dir = common::tempfile_dir::Dir::new("cluster-leader")?;
    let env = [("PSIRT_NATS__URL", cluster.urls()), ("PSIRT_NATS__STREAM__REPLICAS", "3".to_owned())];
    let intake =
        Service::start_with("intake", &cluster.servers[0], common::sqlite(&dir, "intake"), &env).await?;
    let client = IntakeServiceClient::new(intake.channel().await?);

    let stop = Arc::new(AtomicBool::new(false));
    let loading = tokio::spawn(load(client.clone(), "leader", 16, stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = cluster.stream_leader("PSIRT_EVENTS", Duration::from_secs(10)).await?;
    let index = cluster.index_of(&leader).expect("the leader is one of ours");
    cluster.servers[index].kill();
    let killed_at = Instant::now();
    // A new leader among the two left; the service is ready again within 10 s of it.
    let new_leader = eventually(Duration::from_secs(30), "a new stream leader", || {
        let (cluster, leader) = (&cluster, &leader);
        async move {
            let now = cluster.stream_leader("PSIRT_EVENTS", Duration::from_secs(2)).await.ok()?;
            (now != *leader).then_some(now)
        }
    })
    .await?;
    let elected_at = Instant::now();
    intake.ready().await?;
    let ready_after = elected_at.elapsed();
    assert!(ready_after <= Duration::from_secs(10), "ready {ready_after:?} after the election");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, unavailable, unexpected) = loading.await?;
    assert!(
        unexpected.is_empty(),
        "{} unexpected answers, e.g. {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)]
    );
    assert!(ok.len() > 100, "load ran: {} OK", ok.len());
    let unique: HashSet<&String> = ok.iter().collect();
    assert_eq!(unique.len(), ok.len(), "every OK is a different report");

    // In the stream once each.
    let stream = js.get_stream("PSIRT_EVENTS").await?;
    for id in &ok {
        let subject = format!("psirt.evt.report.{id}");
        let first = stream.get_first_raw_message_by_subject(&subject, 1).await?;
        let after = stream.get_first_raw_message_by_subject(&subject, first.sequence + 1).await;
        assert!(after.is_err(), "{id} stored twice");
    }
    // In the read model once each.
    let reader = client.clone();
    let listed = eventually(Duration::from_secs(30), "every report in the read model", || {
        let mut reader = reader.clone();
        let want = ok.len();
        async move {
            let mut ids = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = reader
                    .list_reports(psirt_proto::intake::ListReportsRequest {
                        page_size: 1000,
                        page_token: page_token.clone(),
                        ..Default::default()
                    })
                    .await
                    .ok()?
                    .into_inner();
                ids.extend(page.reports.into_iter().map(|r| r.report_id));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            (ids.len() >= want).then_some(ids)
        }
    })
    .await?;
    let listed_set: HashSet<&String> = listed.iter().collect();
    assert_eq!(listed_set.len(), listed.len(), "no report twice in the read model");
    for id in &ok {
        assert!(listed_set.contains(id), "{id} missing from the read model");
    }
    eprintln!(
        "leader {leader} killed; {new_leader} elected {:?} later; intake ready {ready_after:?} after; {} OK, {unavailable} UNAVAILABLE",
        elected_at - killed_at,
        ok.len()
    );
    Ok(())
}
