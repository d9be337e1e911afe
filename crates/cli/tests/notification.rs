//! `psirtctl notify ...` against a real notification service in-process
//! (real nats-server, temp SQLite, real gRPC) and a real HTTP receiver. The
//! accepted case is appended to the event stream as triage would write it;
//! commands name it by id, so no triage service is needed.

mod support;

use psirt_kit::service::ServiceConfig as _;
use std::time::Duration;

use psirt_domain::{CaseId, EventId, ReportId};
use psirt_eventstore::{EventStore, ExpectedVersion, Metadata, NewEvent};
use psirt_kit::Shutdown;
use psirt_kit::config::AuthMode;
use psirt_notification::{Application, Config, SecretSource};
use psirt_proto::{common, events};
use psirt_testkit::{NatsServer, TestDatabase, eventually, free_port};
use secrecy::SecretString;
use support::{PROJECTION_DEADLINE, Run, psirtctl};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The name of the signing secret configured in the service.
const SECRET: &str = "cli-hook";

/// A running notification service and what it depends on.
struct Notification {
    /// `127.0.0.1:<port>` (for `--notification-server`).
    server: String,
    store: EventStore,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Dropped after the service is stopped.
    _telemetry: psirt_kit::TelemetryGuard,
    _secrets: tempfile::TempDir,
    _db: TestDatabase,
    _nats: NatsServer,
}

impl Notification {
    async fn start() -> anyhow::Result<Self> {
        let nats = NatsServer::start().await?;
        let db = TestDatabase::sqlite()?;
        let secrets = tempfile::tempdir()?;
        let key = secrets.path().join("cli-hook.key");
        std::fs::write(&key, "0123456789abcdef0123456789abcdef\n")?;
        let mut config = Config::default();
        config.grpc.listen = "127.0.0.1:0".parse()?;
        config.admin.listen = "127.0.0.1:0".parse()?;
        config.nats.url = nats.url();
        config.nats.stream.manage = true;
        config.database.url = SecretString::from(db.url().to_owned());
        config.auth.mode = AuthMode::None;
        config.log.level = "warn".to_owned();
        config.delivery.poll_interval = Duration::from_millis(20);
        config.delivery.max_attempts = 2;
        config.delivery.initial_backoff = Duration::from_millis(10);
        config.delivery.max_backoff = Duration::from_millis(50);
        // The receiver listens on loopback, which the egress guard refuses
        // unless allowed.
        config.webhook.allowed_networks = vec!["127.0.0.1/32".to_owned()];
        config.secrets.insert(SECRET.to_owned(), SecretSource { env: None, file: Some(key) });
        config.validate()?;
        let telemetry = psirt_kit::telemetry::init("test-notification", &config.log, &config.otel)?;
        let app = Box::pin(Application::build(&config, telemetry.metrics())).await?;
        let server = app.grpc_addr().to_string();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let store =
            EventStore::open(nats.connect().await?, &psirt_kit::backbone::stream_settings(&config.nats))
                .await?;
        Ok(Self {
            server,
            store,
            shutdown,
            task: Some(task),
            _telemetry: telemetry,
            _secrets: secrets,
            _db: db,
            _nats: nats,
        })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }

    /// A critical case, opened and accepted, as triage appends it.
    async fn accepted_case(&self) -> anyhow::Result<CaseId> {
        let case = CaseId::for_report(ReportId::new());
        let id = case.to_string();
        let key = "PSIRT-2026-0077".to_owned();
        let now = ts(OffsetDateTime::now_utc());
        self.case_event(
            case,
            "opened",
            &events::CaseOpened {
                case_id: id.clone(),
                case_key: key.clone(),
                title: "Stored XSS in the gateway admin console".to_owned(),
                opened_at: now,
                ..Default::default()
            },
        )
        .await?;
        self.case_event(
            case,
            "accepted",
            &events::CaseAccepted {
                case_id: id,
                case_key: key,
                severity: common::SeverityRating::Critical.into(),
                affected_products: vec![common::ProductVersionRange {
                    product: "acme-gateway".to_owned(),
                    versions: Some(common::product_version_range::Versions::Range(
                        "vers:semver/<2.4.1".to_owned(),
                    )),
                }],
                note: String::new(),
                accepted_at: now,
            },
        )
        .await?;
        Ok(case)
    }

    async fn case_event<M: psirt_proto::EventSchema>(
        &self,
        case: CaseId,
        tag: &str,
        message: &M,
    ) -> anyhow::Result<()> {
        let event = NewEvent::from_message(
            EventId::derive(case.into(), tag).into(),
            format!("psirt.evt.case.{case}"),
            message,
            Metadata { actor: Some("psirt-triage".to_owned()), ..Metadata::default() },
        );
        self.store.append(event, ExpectedVersion::Any).await?;
        Ok(())
    }

    /// `psirtctl --notification-server <server> <args>`, run to completion.
    async fn run(&self, args: &[&str]) -> Run {
        psirtctl(["--notification-server", self.server.as_str()].iter().chain(args).copied()).run().await
    }

    /// Waits until `psirtctl --output json notify deliveries <filter>` lists
    /// exactly one delivery, and returns it.
    async fn one_delivery(&self, filter: &[&str]) -> anyhow::Result<serde_json::Value> {
        let args: Vec<String> = ["--notification-server", self.server.as_str(), "--output", "json"]
            .into_iter()
            .chain(["notify", "deliveries"])
            .chain(filter.iter().copied())
            .map(str::to_owned)
            .collect();
        eventually(PROJECTION_DEADLINE, &format!("one delivery for {filter:?}"), || {
            let args = args.clone();
            async move {
                let run = psirtctl(args).run().await;
                if run.code != 0 {
                    return None;
                }
                match run.json()["deliveries"].as_array().map(Vec::as_slice) {
                    Some([one]) => Some(one.clone()),
                    _ => None,
                }
            }
        })
        .await
    }
}

impl Drop for Notification {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

fn ts(t: OffsetDateTime) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: t.unix_timestamp(), nanos: 0 })
}

/// A webhook receiver on a free loopback port that answers every request
/// with 200 and counts them.
async fn receiver() -> anyhow::Result<(String, std::sync::Arc<std::sync::atomic::AtomicUsize>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = std::sync::Arc::clone(&counter);
            tokio::spawn(async move {
                // Read the head, then as many body bytes as it announces.
                let mut request = Vec::new();
                let mut buf = [0_u8; 4096];
                let body_start = loop {
                    let Ok(n) = stream.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break end + 4;
                    }
                };
                let head = String::from_utf8_lossy(&request[..body_start]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while request.len() < body_start + length {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok((url, count))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_list_and_follow_deliveries() -> anyhow::Result<()> {
    let service = Notification::start().await?;
    let (url, received) = receiver().await?;
    // Nothing listens here: every attempt fails, the delivery goes dead.
    let dead_url = format!("http://127.0.0.1:{}/hook", free_port()?);

    // Subscribe a webhook; the same request id again creates nothing new.
    let subscribe = [
        "notify",
        "subscribe",
        "--name",
        "Receiver on accepted cases",
        "--webhook",
        url.as_str(),
        "--secret-ref",
        SECRET,
        "--event-type",
        "CaseAccepted",
        "--product",
        "acme-gateway",
        "--request-id",
        "sub-ok",
    ];
    let created = service.run(&subscribe).await.expect_code(0);
    let ok_id = created.field("Subscription ID");
    assert_eq!(created.field("Request ID"), "sub-ok");
    assert_eq!(created.field("Channel"), "webhook");
    assert_eq!(created.field("Event types"), "CaseAccepted");
    assert_eq!(created.field("Products"), "acme-gateway");
    assert_eq!(created.field("Enabled"), "yes");
    assert_eq!(created.field("Trusted"), "no");
    let again = service.run(&subscribe).await.expect_code(0);
    assert_eq!(again.field("Subscription ID"), ok_id);

    // A second one, as JSON, to an endpoint nobody answers.
    let dead = service
        .run(&[
            "--output",
            "json",
            "notify",
            "subscribe",
            "--name",
            "Nobody home",
            "--webhook",
            dead_url.as_str(),
            "--secret-ref",
            SECRET,
            "--event-type",
            "psirt.events.v1.CaseAccepted",
            "--min-severity",
            "high",
            "--trusted",
        ])
        .await
        .expect_code(0);
    let json = dead.json();
    let dead_id = json["subscription"]["subscriptionId"].as_str().expect("an id").to_owned();
    assert_eq!(json["subscription"]["settings"]["minSeverity"], "SEVERITY_RATING_HIGH");
    assert_eq!(json["subscription"]["settings"]["channel"], "DELIVERY_CHANNEL_WEBHOOK");
    assert_eq!(json["subscription"]["settings"]["trusted"], true);

    // Refused by the server (a secret it does not have): exit 1; refused
    // while parsing (not https): exit 2, before connecting.
    let unknown = service
        .run(&["notify", "subscribe", "--name", "x", "--webhook", url.as_str(), "--secret-ref", "nope"])
        .await
        .expect_code(1);
    assert!(
        unknown.stderr.contains("INVALID_ARGUMENT") && unknown.stderr.contains("secret_ref"),
        "{unknown:?}"
    );
    let http = service
        .run(&[
            "notify",
            "subscribe",
            "--name",
            "x",
            "--webhook",
            "http://siem.example.com/psirt",
            "--secret-ref",
            SECRET,
        ])
        .await
        .expect_code(2);
    assert!(http.stderr.contains("https://"), "{}", http.stderr);

    // Both listed, oldest first (the listing is a read model: it catches up shortly).
    let args = ["--notification-server", service.server.as_str(), "notify", "list", "--channel", "webhook"]
        .map(str::to_owned);
    let listed = eventually(PROJECTION_DEADLINE, "both subscriptions listed", || {
        let args = args.clone();
        async move {
            let run = psirtctl(args).run().await;
            (run.code == 0 && run.stdout.lines().count() == 3).then_some(run)
        }
    })
    .await?;
    let rows: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(rows.len(), 3, "{}", listed.stdout);
    assert!(rows[0].starts_with("ID "), "{}", listed.stdout);
    assert!(
        rows[1].starts_with(&ok_id) && rows[1].contains("Receiver on accepted cases"),
        "{}",
        listed.stdout
    );
    assert!(rows[2].starts_with(&dead_id) && rows[2].contains("high"), "{}", listed.stdout);
    let page = service.run(&["notify", "list", "--page-size", "1"]).await.expect_code(0);
    assert!(page.stderr.contains("--page-token"), "{page:?}");

    // A case is accepted: one delivery to each subscription.
    let case = service.accepted_case().await?.to_string();
    let delivered =
        service.one_delivery(&["--subscription", ok_id.as_str(), "--status", "delivered"]).await?;
    assert_eq!(delivered["caseId"], case.as_str());
    assert_eq!(delivered["eventType"], "psirt.events.v1.CaseAccepted");
    assert_eq!(delivered["lastHttpStatus"], 200);
    assert!(received.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    let dead_delivery = service.one_delivery(&["--case", case.as_str(), "--status", "dead"]).await?;
    assert_eq!(dead_delivery["subscriptionId"], dead_id.as_str());
    let dead_delivery_id = dead_delivery["deliveryId"].as_str().expect("an id").to_owned();

    let table = service.run(&["notify", "deliveries", "--case", case.as_str()]).await.expect_code(0);
    assert!(table.stdout.starts_with("ID "), "{}", table.stdout);
    assert!(table.stdout.contains("delivered  CaseAccepted"), "{}", table.stdout);
    assert!(table.stdout.contains("dead       CaseAccepted"), "{}", table.stdout);

    // The dead one is sent again: a new series.
    let redelivered = service
        .run(&["notify", "redeliver", dead_delivery_id.as_str(), "--request-id", "again-1"])
        .await
        .expect_code(0);
    assert_eq!(redelivered.field("Delivery ID"), dead_delivery_id);
    assert_eq!(redelivered.field("Series"), "2");
    assert_eq!(redelivered.field("Request ID"), "again-1");

    // Update: only what is given changes; a stale version is refused.
    let updated = service
        .run(&["notify", "update", ok_id.as_str(), "--disabled", "--min-severity", "critical"])
        .await
        .expect_code(0);
    assert_eq!(updated.field("Enabled"), "no");
    assert_eq!(updated.field("Min severity"), "critical");
    assert_eq!(updated.field("Products"), "acme-gateway");
    assert_eq!(updated.field("Name"), "Receiver on accepted cases");
    assert!(updated.field("Version").parse::<u64>()? > created.field("Version").parse::<u64>()?);
    let stale = service
        .run(&["notify", "update", ok_id.as_str(), "--enabled", "--expected-version", "1"])
        .await
        .expect_code(1);
    assert!(stale.stderr.contains("ABORTED"), "{}", stale.stderr);
    let missing = service
        .run(&["notify", "update", "0190f5a4-0000-4000-8000-0000000000ff", "--enabled"])
        .await
        .expect_code(1);
    assert!(missing.stderr.contains("NOT_FOUND"), "{}", missing.stderr);

    let tickets = service.run(&["notify", "tickets", case.as_str()]).await.expect_code(0);
    assert_eq!(tickets.stdout, "No external tickets linked.\n");

    // Unsubscribe: gone from the list.
    let deleted = service
        .run(&["notify", "unsubscribe", dead_id.as_str(), "--reason", "nobody answers"])
        .await
        .expect_code(0);
    assert_eq!(deleted.field("Deleted"), "yes");
    // The listing is a read model: it catches up shortly.
    let args = ["--notification-server", service.server.as_str(), "--output", "json", "notify", "list"]
        .map(str::to_owned);
    let remaining = eventually(PROJECTION_DEADLINE, "the deleted subscription gone from the list", || {
        let args = args.clone();
        let dead_id = dead_id.clone();
        async move {
            let run = psirtctl(args).run().await;
            let json = (run.code == 0).then(|| run.json())?;
            let ids: Vec<String> = json["subscriptions"]
                .as_array()
                .map(|all| {
                    all.iter().filter_map(|s| s["subscriptionId"].as_str().map(str::to_owned)).collect()
                })
                .unwrap_or_default();
            (!ids.contains(&dead_id)).then_some(ids)
        }
    })
    .await?;
    assert_eq!(remaining, [ok_id]);

    service.stop().await
}

#[tokio::test]
async fn connection_errors() -> anyhow::Result<()> {
    // A case key is resolved at the triage service: none there, exit 3.
    let triage = format!("127.0.0.1:{}", free_port()?);
    let notification = format!("127.0.0.1:{}", free_port()?);
    let run = psirtctl([
        "--notification-server",
        notification.as_str(),
        "--triage-server",
        triage.as_str(),
        "notify",
        "tickets",
        "PSIRT-2026-0001",
    ])
    .run()
    .await
    .expect_code(3);
    assert!(run.stderr.contains(&triage), "{}", run.stderr);
    // The notification server from the environment, as for the others.
    let run = psirtctl(["notify", "deliveries", "--case", "0190f5a4-0000-4000-8000-000000000001"])
        .env("PSIRT_NOTIFICATION_SERVER", notification.as_str())
        .run()
        .await
        .expect_code(3);
    assert!(run.stderr.contains(&notification), "{}", run.stderr);
    Ok(())
}
