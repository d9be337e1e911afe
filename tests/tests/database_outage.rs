//! Readiness follows the database: each real service reaches its
//! PostgreSQL database through a TCP relay the test can cut. While the
//! relay is down, `/readyz` answers 503 and `grpc.health.v1` answers
//! `NOT_SERVING` for the service's API and overall (a load balancer stops
//! sending calls that would fail); once it is back, the service turns ready
//! by itself and serves again, without a restart.

mod common;

use std::time::Duration;

use common::{Service, build};
use psirt_proto::intake;
use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_testkit::{TestDatabase, eventually, free_port};
use tokio::task::JoinSet;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const DEADLINE: Duration = Duration::from_secs(30);

/// A TCP relay from a local port to the database server; `cut` drops the
/// listener and every relayed connection, `restore` listens again on the
/// same port.
struct Relay {
    port: u16,
    upstream: String,
    tasks: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(upstream: String) -> anyhow::Result<Self> {
        let mut relay = Self { port: free_port()?, upstream, tasks: None };
        relay.restore().await?;
        Ok(relay)
    }

    async fn restore(&mut self) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await?;
        let upstream = self.upstream.clone();
        self.tasks = Some(tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every relayed connection.
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
        Ok(())
    }

    async fn cut(&mut self) {
        if let Some(task) = self.tasks.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// `url` with its host:port replaced by the relay's.
fn through(url: &str, port: u16) -> anyhow::Result<(String, String)> {
    let (scheme_user, rest) = url.split_once('@').ok_or_else(|| anyhow::anyhow!("no host in {url}"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    Ok((format!("{scheme_user}@127.0.0.1:{port}/{path}"), authority.to_owned()))
}

async fn readyz(admin: u16) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", admin)).await.ok()?;
    stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.ok()?;
    String::from_utf8_lossy(&buf).split(' ').nth(1)?.parse().ok()
}

/// Waits for `/readyz` to answer `want`, then checks the gRPC health tells the same,
/// for the service's API and overall.
async fn wait_readyz(service: &Service, want: u16, what: &str) -> anyhow::Result<()> {
    let admin = service.admin;
    eventually(DEADLINE, what, || async move { (readyz(admin).await? == want).then_some(()) }).await?;
    let status = if want == 200 { ServingStatus::Serving } else { ServingStatus::NotServing };
    let api = match service.name {
        "intake" => "psirt.intake.v1.IntakeService",
        "triage" => "psirt.triage.v1.TriageService",
        "remediation" => "psirt.remediation.v1.RemediationService",
        _ => "psirt.notification.v1.NotificationService",
    };
    let client = HealthClient::new(service.channel().await?);
    for name in [api, ""] {
        eventually(DEADLINE, &format!("{what}: grpc health of {name:?} {status:?}"), || {
            let mut client = client.clone();
            async move {
                let answer = client.check(HealthCheckRequest { service: name.to_owned() }).await.ok()?;
                (answer.into_inner().status == status as i32).then_some(())
            }
        })
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_and_recovers_by_itself() -> anyhow::Result<()> {
    build()?;
    let nats = common::secured_nats().await?;
    let mut relays = Vec::new();
    let mut services = Vec::new();
    let mut databases = Vec::new();
    for name in ["intake", "triage", "remediation", "notification"] {
        let db = TestDatabase::postgres().await?;
        let (_, upstream) = through(db.url(), 0)?;
        let relay = Relay::start(upstream).await?;
        let (url, _) = through(db.url(), relay.port)?;
        services.push(Service::start(name, &nats, url).await?);
        relays.push(relay);
        databases.push(db);
    }
    for service in &services {
        wait_readyz(service, 200, &format!("{} ready", service.name)).await?;
    }

    for relay in &mut relays {
        relay.cut().await;
    }
    for service in &services {
        wait_readyz(service, 503, &format!("{} not ready while its database is away", service.name)).await?;
    }

    for relay in &mut relays {
        relay.restore().await?;
    }
    for service in &services {
        wait_readyz(service, 200, &format!("{} ready again without a restart", service.name)).await?;
    }

    // And it serves: intake stores and reads a report through the restored database.
    let mut client = IntakeServiceClient::new(services[0].channel().await?);
    let submitted = client
        .submit_report(intake::SubmitReportRequest {
            description: "A malformed option loops forever.".to_owned(),
            ..common::report("after-outage", "Denial of service in the DHCP client", "acme-dhcp")
        })
        .await?
        .into_inner();
    eventually(DEADLINE, "report readable after the outage", || {
        let mut client = client.clone();
        let id = submitted.report_id.clone();
        async move {
            client.get_report(intake::GetReportRequest { report_id: id }).await.ok()?.into_inner().report
        }
    })
    .await?;
    drop(services);
    Ok(())
}
