//! The event backbone on a three-server NATS cluster (routes on loopback,
//! an R3 stream, the shipped identities), through the real service binaries.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{AuthChannel, Service, report};
use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_testkit::{NatsCluster, Security, eventually};

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What a load run saw.
#[derive(Default)]
struct Outcome {
    /// Report ids answered OK.
    ok: Vec<String>,
    /// Calls answered UNAVAILABLE (a server away: the caller retries).
    unavailable: usize,
    /// Calls answered RESOURCE_EXHAUSTED: the load outran the caller's
    /// quota (`quotas.staff_submit_reports`, 1,000/s) on a fast machine; the
    /// caller waits as told and goes on, as a real one does.
    throttled: usize,
    /// Anything else, and calls without an answer within [`CALL_TIMEOUT`].
    unexpected: Vec<String>,
}

/// SubmitReport load from `workers` tasks until stopped; `answered_ok`
/// counts the OK answers as they come.
struct Load {
    stop: Arc<AtomicBool>,
    answered_ok: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Outcome>>,
}

impl Load {
    fn start(client: &IntakeServiceClient<AuthChannel>, run: &str, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered_ok = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for w in 0..workers {
            let (client, stop, counter, run) =
                (client.clone(), stop.clone(), answered_ok.clone(), run.to_owned());
            tasks.push(tokio::spawn(async move {
                let mut outcome = Outcome::default();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let request =
                        report(&format!("{run}-{w}-{i}"), &format!("cluster report {w}/{i}"), "Portal");
                    let mut client = client.clone();
                    match tokio::time::timeout(CALL_TIMEOUT, client.submit_report(request)).await {
                        Ok(Ok(response)) => {
                            outcome.ok.push(response.into_inner().report_id);
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                            outcome.unavailable += 1;
                            // A client backs off before it retries.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Ok(Err(status)) if status.code() == tonic::Code::ResourceExhausted => {
                            outcome.throttled += 1;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Ok(Err(status)) => {
                            outcome.unexpected.push(format!("{:?} {}", status.code(), status.message()))
                        }
                        Err(_) => {
                            outcome.unexpected.push(format!("no answer within {CALL_TIMEOUT:?} (a hang)"))
                        }
                    }
                    i += 1;
                }
                outcome
            }));
        }
        Self { stop, answered_ok, tasks }
    }

    fn answered_ok(&self) -> usize {
        self.answered_ok.load(Ordering::Relaxed)
    }

    /// Waits until `more` calls beyond the ones so far answered OK.
    async fn progresses(&self, more: usize, what: &str) -> anyhow::Result<()> {
        let want = self.answered_ok() + more;
        eventually(
            Duration::from_secs(60),
            what,
            || async move { (self.answered_ok() >= want).then_some(()) },
        )
        .await
    }

    async fn finish(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Outcome::default();
        for task in self.tasks {
            let outcome = task.await.expect("load task");
            all.ok.extend(outcome.ok);
            all.unavailable += outcome.unavailable;
            all.throttled += outcome.throttled;
            all.unexpected.extend(outcome.unexpected);
        }
        all
    }
}

/// A secured three-server cluster with the platform's stream at R3 (made
/// by the admin identity), and psirt-intake on it with every server's URL
/// (or `urls`).
async fn cluster_with_intake(
    label: &str,
    urls: Option<String>,
) -> anyhow::Result<(NatsCluster, Service, common::tempfile_dir::Dir)> {
    common::build()?;
    let cluster = NatsCluster::start(3, Some(Security::identities()?)).await?;
    let js = async_nats::jetstream::new(cluster.connect().await?);
    let settings = psirt_eventstore::StreamSettings { replicas: 3, ..Default::default() };
    psirt_eventstore::apply_stream(&js, &settings).await?;
    let dir = common::tempfile_dir::Dir::new(label)?;
    let env = [
        ("PSIRT_NATS__URL", urls.unwrap_or_else(|| cluster.urls())),
        ("PSIRT_NATS__STREAM__REPLICAS", "3".to_owned()),
    ];
    let intake =
        Service::start_with("intake", &cluster.servers[0], common::sqlite(&dir, "intake"), &env).await?;
    Ok((cluster, intake, dir))
}

/// The sequence of the first message on `subject` from `from` on, `None`
/// when there is none. A stream whose leader is being elected again (just
/// after a kill) answers "temporarily unavailable": asked again until a
/// deadline, never taken for "no message".
async fn first_from(
    stream: &async_nats::jetstream::stream::Stream,
    subject: &str,
    from: u64,
) -> anyhow::Result<Option<u64>> {
    use async_nats::jetstream::{ErrorCode, stream::LastRawMessageErrorKind};
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match stream.get_first_raw_message_by_subject(subject, from).await {
            Ok(message) => return Ok(Some(message.sequence)),
            Err(e) => match e.kind() {
                LastRawMessageErrorKind::NoMessageFound => return Ok(None),
                LastRawMessageErrorKind::JetStream(j) if j.error_code() == ErrorCode::NO_MESSAGE_FOUND => {
                    return Ok(None);
                }
                _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                _ => return Err(e.into()),
            },
        }
    }
}

/// Every report answered OK is in the stream once and in the read model
/// once; nothing unexpected was answered.
async fn assert_each_once(
    cluster: &NatsCluster,
    client: &IntakeServiceClient<AuthChannel>,
    outcome: &Outcome,
) -> anyhow::Result<()> {
    let Outcome { ok, unexpected, .. } = outcome;
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
    let js = async_nats::jetstream::new(cluster.connect().await?);
    let stream = js.get_stream("PSIRT_EVENTS").await?;
    for id in ok {
        let subject = format!("psirt.evt.report.{id}");
        let first = first_from(&stream, &subject, 1).await?;
        let first = first.unwrap_or_else(|| panic!("{id} was answered OK but is not in the stream"));
        let after = first_from(&stream, &subject, first + 1).await?;
        assert_eq!(after, None, "{id} stored twice");
    }
    // In the read model once each: the projection may have to find its
    // consumer's new leader first (a missed heartbeat ends its session).
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut reader = client.clone();
    let listed = loop {
        let ids = list_report_ids(&mut reader).await.unwrap_or_default();
        if ids.len() >= ok.len() {
            break ids;
        }
        assert!(
            Instant::now() < deadline,
            "the read model lists {} of the {} reports answered OK after 90 s",
            ids.len(),
            ok.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let listed_set: HashSet<&String> = listed.iter().collect();
    assert_eq!(listed_set.len(), listed.len(), "no report twice in the read model");
    for id in ok {
        assert!(listed_set.contains(id), "{id} missing from the read model");
    }
    Ok(())
}

/// Every report id of the read model, page by page.
async fn list_report_ids(
    reader: &mut IntakeServiceClient<AuthChannel>,
) -> Result<Vec<String>, tonic::Status> {
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = reader
            .list_reports(psirt_proto::intake::ListReportsRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        ids.extend(page.reports.into_iter().map(|r| r.report_id));
        if page.next_page_token.is_empty() {
            return Ok(ids);
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn kill_9_of_the_stream_leader_under_load_loses_and_repeats_nothing() -> anyhow::Result<()> {
    let (mut cluster, intake, _dir) = cluster_with_intake("cluster-leader", None).await?;
    let client = IntakeServiceClient::new(intake.channel().await?);

    let load = Load::start(&client, "leader", 16);
    load.progresses(200, "load before the kill").await?;
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
    load.progresses(200, "load after the election").await?;
    let outcome = load.finish().await;
    assert_each_once(&cluster, &client, &outcome).await?;
    eprintln!(
        "leader {leader} killed; {new_leader} elected {:?} later; intake ready {ready_after:?} after; {} OK, {} UNAVAILABLE, {} RESOURCE_EXHAUSTED",
        elected_at - killed_at,
        outcome.ok.len(),
        outcome.unavailable,
        outcome.throttled
    );
    Ok(())
}

#[tokio::test]
async fn kill_9_of_the_server_the_service_is_connected_to_moves_it_to_another() -> anyhow::Result<()> {
    let (mut cluster, intake, _dir) = cluster_with_intake("cluster-moves", None).await?;
    let client = IntakeServiceClient::new(intake.channel().await?);
    let on = eventually(Duration::from_secs(10), "psirt-intake connected", || {
        let cluster = &cluster;
        async move { cluster.connected_to("psirt-intake").await }
    })
    .await?;

    let load = Load::start(&client, "moves", 8);
    load.progresses(100, "load before the kill").await?;
    cluster.servers[on].kill();
    let moved_to = eventually(Duration::from_secs(20), "psirt-intake on another server", || {
        let cluster = &cluster;
        async move { cluster.connected_to("psirt-intake").await.filter(|now| *now != on) }
    })
    .await?;
    intake.ready().await?;
    load.progresses(200, "load after the move").await?;
    let outcome = load.finish().await;
    assert_each_once(&cluster, &client, &outcome).await?;
    eprintln!(
        "psirt-intake moved from {} to {}; {} OK, {} UNAVAILABLE",
        cluster.servers[on].name(),
        cluster.servers[moved_to].name(),
        outcome.ok.len(),
        outcome.unavailable
    );
    Ok(())
}

#[tokio::test]
async fn two_of_three_servers_down_appends_fail_fast_reads_work_and_writes_resume() -> anyhow::Result<()> {
    let (mut cluster, intake, _dir) = cluster_with_intake("cluster-quorum", None).await?;
    let mut client = IntakeServiceClient::new(intake.channel().await?);
    let mut before = Vec::new();
    for i in 0..20 {
        let answer = client.submit_report(report(&format!("quorum-before-{i}"), "before", "Portal")).await?;
        before.push(answer.into_inner().report_id);
    }
    eventually(Duration::from_secs(20), "the reports in the read model", || {
        let mut reader = client.clone();
        async move { (list_report_ids(&mut reader).await.ok()?.len() >= 20).then_some(()) }
    })
    .await?;

    // The two servers the service is not connected to go away: the one
    // left has no JetStream quorum.
    let on = eventually(Duration::from_secs(10), "psirt-intake connected", || {
        let cluster = &cluster;
        async move { cluster.connected_to("psirt-intake").await }
    })
    .await?;
    let down: Vec<usize> = (0..3).filter(|i| *i != on).collect();
    for i in &down {
        cluster.servers[*i].kill();
    }

    // Appends answer UNAVAILABLE within the caller's deadline: no hang, no OK.
    let deadline = Duration::from_secs(10);
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let mut request = tonic::Request::new(report(&format!("quorum-down-{i}"), "during", "Portal"));
        request.set_timeout(deadline);
        let started = Instant::now();
        let answer = tokio::time::timeout(deadline + Duration::from_secs(2), client.submit_report(request))
            .await
            .map_err(|_| anyhow::anyhow!("SubmitReport hung beyond its deadline with two servers down"))?;
        let took = started.elapsed();
        match answer {
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "an append without a quorum: {status:?}")
            }
            Ok(response) => anyhow::bail!("appended without a quorum: {:?}", response.into_inner().report_id),
        }
        assert!(took < deadline, "UNAVAILABLE after {took:?}, beyond the deadline of {deadline:?}");
        slowest = slowest.max(took);
    }
    // Reads of the read model keep working.
    let ids = list_report_ids(&mut client).await?;
    for id in &before {
        assert!(ids.contains(id), "{id} readable while the stream has no quorum");
    }
    let one = client
        .get_report(psirt_proto::intake::GetReportRequest { report_id: before[0].clone() })
        .await?
        .into_inner();
    assert_eq!(one.report.map(|r| r.report_id), Some(before[0].clone()));

    // One server back: a quorum again, and writes resume.
    cluster.servers[down[0]].restart().await?;
    let resumed_at = Instant::now();
    let id = eventually(Duration::from_secs(60), "an append after the quorum is back", || {
        let mut client = client.clone();
        async move {
            let mut request = tonic::Request::new(report("quorum-after", "after", "Portal"));
            request.set_timeout(Duration::from_secs(5));
            client.submit_report(request).await.ok().map(|r| r.into_inner().report_id)
        }
    })
    .await?;
    eventually(Duration::from_secs(20), "the new report in the read model", || {
        let (mut reader, id) = (client.clone(), id.clone());
        async move { list_report_ids(&mut reader).await.ok()?.contains(&id).then_some(()) }
    })
    .await?;
    eprintln!(
        "two servers down: appends UNAVAILABLE within {slowest:?}; writes resumed {:?} after a second server returned",
        resumed_at.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_rolling_restart_of_the_three_servers_under_load_loses_and_repeats_nothing() -> anyhow::Result<()> {
    let (mut cluster, intake, _dir) = cluster_with_intake("cluster-rolling", None).await?;
    let client = IntakeServiceClient::new(intake.channel().await?);
    let load = Load::start(&client, "rolling", 8);
    load.progresses(100, "load before the restarts").await?;
    for i in 0..3 {
        // One member at a time, each once the stream is whole again.
        cluster.wait_stream_current("PSIRT_EVENTS", Duration::from_secs(60)).await?;
        cluster.servers[i].restart().await?;
        load.progresses(100, "load after a member restarted").await?;
    }
    cluster.wait_stream_current("PSIRT_EVENTS", Duration::from_secs(60)).await?;
    intake.ready().await?;
    let outcome = load.finish().await;
    assert_each_once(&cluster, &client, &outcome).await?;
    eprintln!("rolling restart: {} OK, {} UNAVAILABLE", outcome.ok.len(), outcome.unavailable);
    Ok(())
}

/// A command right after another on the same aggregate sees it, also
/// through a replica connected to a follower of the stream (where a direct
/// get could answer from a lagging replica).
#[tokio::test]
async fn submit_then_acknowledge_through_a_follower_never_reads_stale() -> anyhow::Result<()> {
    common::build()?;
    let cluster = NatsCluster::start(3, Some(Security::identities()?)).await?;
    let js = async_nats::jetstream::new(cluster.connect().await?);
    let settings = psirt_eventstore::StreamSettings { replicas: 3, ..Default::default() };
    psirt_eventstore::apply_stream(&js, &settings).await?;
    let leader = cluster.stream_leader("PSIRT_EVENTS", Duration::from_secs(10)).await?;
    let follower = (0..3).find(|i| cluster.servers[*i].name() != leader).expect("two followers");
    let dir = common::tempfile_dir::Dir::new("cluster-stale")?;
    let env = [
        ("PSIRT_NATS__URL", cluster.servers[follower].url()),
        ("PSIRT_NATS__STREAM__REPLICAS", "3".to_owned()),
    ];
    let intake =
        Service::start_with("intake", &cluster.servers[0], common::sqlite(&dir, "intake"), &env).await?;
    let on = eventually(Duration::from_secs(10), "psirt-intake connected", || {
        let cluster = &cluster;
        async move { cluster.connected_to("psirt-intake").await }
    })
    .await?;
    assert_eq!(on, follower, "the replica is connected to a follower");
    assert_ne!(cluster.servers[on].name(), leader);
    let client = IntakeServiceClient::new(intake.channel().await?);

    let load = Load::start(&client, "stale-load", 4);
    const PAIRS: usize = 500;
    const WORKERS: usize = 4;
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let (mut stale, mut other) = (Vec::new(), Vec::new());
            for i in 0..PAIRS / WORKERS {
                let mut c = client.clone();
                let submitted = c
                    .submit_report(report(&format!("pair-{w}-{i}"), &format!("pair {w}/{i}"), "Portal"))
                    .await;
                let (report_id, version) = match submitted {
                    Ok(r) => {
                        let r = r.into_inner();
                        (r.report_id, r.report.map(|r| r.version))
                    }
                    Err(status) => {
                        other.push(format!("submit {:?} {}", status.code(), status.message()));
                        continue;
                    }
                };
                let acknowledged = c
                    .acknowledge_report(psirt_proto::intake::AcknowledgeReportRequest {
                        report_id: report_id.clone(),
                        request_id: format!("pair-ack-{w}-{i}"),
                        expected_version: version,
                        message: None,
                    })
                    .await;
                match acknowledged {
                    Ok(_) => {}
                    Err(s) if matches!(s.code(), tonic::Code::NotFound | tonic::Code::Aborted) => {
                        stale.push(format!("{report_id}: {:?} {}", s.code(), s.message()))
                    }
                    Err(s) => other.push(format!("acknowledge {:?} {}", s.code(), s.message())),
                }
            }
            (stale, other)
        }));
    }
    let (mut stale, mut other) = (Vec::new(), Vec::new());
    for task in tasks {
        let (s, o) = task.await?;
        stale.extend(s);
        other.extend(o);
    }
    let outcome = load.finish().await;
    assert!(
        stale.is_empty(),
        "{} of {PAIRS} acknowledgements read a stale report: {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );
    assert!(other.is_empty(), "{} other failures: {:?}", other.len(), &other[..other.len().min(5)]);
    assert!(outcome.ok.len() > 100, "the load ran beside the pairs: {} OK", outcome.ok.len());
    eprintln!(
        "{PAIRS} Submit→Acknowledge pairs through a follower, {} reports of load beside: none stale",
        outcome.ok.len()
    );
    Ok(())
}
