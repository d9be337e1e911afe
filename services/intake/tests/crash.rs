//! Durability of the real binary: `kill -9` with 1,000 `SubmitReport` calls
//! in flight loses no acknowledged report and stores none twice.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::submission;
use psirt_proto::intake::{self, intake_service_client::IntakeServiceClient};
use psirt_testkit::{NatsServer, TestDatabase, eventually};
use tonic::transport::Channel;

struct Intake {
    child: Child,
    grpc: u16,
}

async fn spawn_intake(nats: &NatsServer, db: &TestDatabase) -> anyhow::Result<Intake> {
    // Port 0: the binary writes the addresses it bound to its ports file.
    let ports_file = std::env::temp_dir().join(format!("psirt-intake-crash-{}.json", uuid::Uuid::new_v4()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_psirt-intake"))
        .env("PSIRT_AUTH__MODE", "none")
        .env("PSIRT_LOG__LEVEL", "error")
        .env("PSIRT_NATS__URL", nats.url())
        .env("PSIRT_NATS__STREAM__MANAGE", "true")
        .env("PSIRT_DATABASE__URL", db.url())
        .env("PSIRT_GRPC__LISTEN", "127.0.0.1:0")
        .env("PSIRT_ADMIN__LISTEN", "127.0.0.1:0")
        .env("PSIRT_PORTS_FILE", &ports_file)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let (grpc, admin) = eventually(Duration::from_secs(30), "intake bound its ports", || {
        let exited = child.try_wait().ok().flatten();
        let ports_file = ports_file.clone();
        async move {
            assert!(exited.is_none(), "psirt-intake exited before binding: {exited:?}");
            let json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(ports_file).ok()?).ok()?;
            let port = |key: &str| json[key].as_str()?.parse::<std::net::SocketAddr>().ok().map(|a| a.port());
            Some((port("grpc")?, port("admin")?))
        }
    })
    .await?;
    let _ = std::fs::remove_file(&ports_file);
    eventually(Duration::from_secs(30), "intake ready", || async move {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", admin)).await.ok()?;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.ok()?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.ok()?;
        buf.starts_with(b"HTTP/1.1 200").then_some(())
    })
    .await?;
    Ok(Intake { child, grpc })
}

async fn client(port: u16) -> anyhow::Result<IntakeServiceClient<Channel>> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))?.connect().await?;
    Ok(IntakeServiceClient::new(channel))
}

const CALLS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_calls_in_flight_loses_nothing_and_duplicates_nothing() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let db = TestDatabase::sqlite()?;
    let mut intake = spawn_intake(&nats, &db).await?;
    let clients = [client(intake.grpc).await?, client(intake.grpc).await?, client(intake.grpc).await?];

    let ok = Arc::new(AtomicUsize::new(0));
    let mut calls = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let mut c = clients[i % clients.len()].clone();
        let ok = Arc::clone(&ok);
        calls.push(tokio::spawn(async move {
            let request_id = format!("crash-{i}");
            let result = c.submit_report(submission(&request_id, &format!("Crash finding {i}"))).await;
            if result.is_ok() {
                ok.fetch_add(1, Ordering::SeqCst);
            }
            (request_id, result.map(|r| r.into_inner().report_id))
        }));
    }
    // Kill the process while calls are still in flight: as soon as the first
    // few have answered (polled tightly, with a deadline).
    let start = std::time::Instant::now();
    while ok.load(Ordering::SeqCst) < 20 {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(60), "no call answered within 60 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    intake.child.kill()?; // SIGKILL
    intake.child.wait()?;

    let mut acknowledged = BTreeMap::new();
    let mut failed = 0;
    for call in calls {
        let (request_id, result) = call.await?;
        match result {
            Ok(report_id) => {
                acknowledged.insert(request_id, report_id);
            }
            Err(_) => failed += 1,
        }
    }
    assert!(failed > 0, "the kill happened with calls in flight ({} answered)", acknowledged.len());

    let mut intake = spawn_intake(&nats, &db).await?;
    let mut c = client(intake.grpc).await?;

    // every acknowledged report is there
    for report_id in acknowledged.values() {
        let got = c.get_report(intake::GetReportRequest { report_id: report_id.clone() }).await?;
        assert!(got.into_inner().report.is_some());
    }
    // clients retry everything: the acknowledged keep their ids, the rest are stored now
    let mut ids = BTreeSet::new();
    for i in 0..CALLS {
        let request_id = format!("crash-{i}");
        let response =
            c.submit_report(submission(&request_id, &format!("Crash finding {i}"))).await?.into_inner();
        if let Some(before) = acknowledged.get(&request_id) {
            assert_eq!(&response.report_id, before, "{request_id} kept its report");
        }
        ids.insert(response.report_id);
    }
    assert_eq!(ids.len(), CALLS);

    // the stream holds exactly one ReportReceived per report, and nothing else
    let js = async_nats::jetstream::new(nats.connect().await?);
    let mut stream = js.get_stream("PSIRT_EVENTS").await?;
    let info = stream.info().await?;
    assert_eq!(info.state.messages, CALLS as u64, "one event per report, none twice");
    assert_eq!(info.state.subjects_count, CALLS as u64);

    // and the read model converges on exactly those reports
    eventually(Duration::from_secs(60), "read model complete", || {
        let mut c = c.clone();
        async move {
            let page = c
                .list_reports(intake::ListReportsRequest { page_size: 1000, ..Default::default() })
                .await
                .ok()?
                .into_inner();
            (page.reports.len() == CALLS && page.next_page_token.is_empty()).then_some(())
        }
    })
    .await?;
    intake.child.kill()?;
    intake.child.wait()?;
    Ok(())
}
