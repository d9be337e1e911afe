//! The event backbone trusts no one: each service's NATS identity from the
//! shipped server configuration (`deploy/nats/psirt-auth.conf`) against a
//! real nats-server, the guarded stream, TLS, server lists and versions.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use psirt_eventstore::{EventStore, ExpectedVersion, Metadata, NewEvent, StreamSettings, subject};
use psirt_kit::backbone::{self, open_event_store};
use psirt_kit::config::NatsConfig;
use psirt_testkit::{Identities, NatsServer, Security, TlsFiles, tls_fixture};
use uuid::Uuid;

/// A service's `[nats]` with its own identity on `server`.
fn config_as(server: &NatsServer, identities: &Identities, service: &str) -> NatsConfig {
    let mut nats = NatsConfig {
        url: server.url(),
        nkey_seed_file: Some(identities.seed_file(service)),
        connect_timeout: Duration::from_millis(500),
        ..NatsConfig::default()
    };
    nats.stream.manage = false;
    nats
}

fn event(subject: &str, event_type: &str) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        subject: subject.to_owned(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        payload: Bytes::from_static(b"x"),
        metadata: Metadata::default(),
    }
}

/// The admin creates the stream, as `psirtctl admin stream apply` would.
async fn admin_creates_the_stream(server: &NatsServer) -> anyhow::Result<EventStore> {
    let admin = server.connect().await?;
    let js = async_nats::jetstream::new(admin.clone());
    psirt_eventstore::apply_stream(&js, &StreamSettings::default()).await?;
    Ok(EventStore::open(admin, &StreamSettings::default()).await?)
}

async fn stream_messages(server: &NatsServer) -> anyhow::Result<u64> {
    let js = async_nats::jetstream::new(server.connect().await?);
    Ok(js.get_stream("PSIRT_EVENTS").await?.info().await?.state.messages)
}

#[tokio::test]
async fn each_service_publishes_only_its_own_aggregates() -> anyhow::Result<()> {
    let security = Security::identities()?;
    let server = NatsServer::start_secured(security.clone()).await?;
    let admin_store = admin_creates_the_stream(&server).await?;
    let ids = &security.identities;

    for (service, aggregates) in psirt_eventstore::ownership::owners() {
        let store = open_event_store(&config_as(&server, ids, service), service).await?;
        let mut refused = Vec::new();
        for aggregate in psirt_eventstore::ownership::AGGREGATES {
            let subj = subject(aggregate.name, Uuid::now_v7());
            let ty = format!("psirt.events.v1.{}", aggregate.event_types[0]);
            if aggregates.contains(&aggregate.name) {
                store
                    .append(event(&subj, &ty), ExpectedVersion::NoStream)
                    .await
                    .map_err(|e| anyhow::anyhow!("{service} on {subj}: {e}"))?;
                assert_eq!(admin_store.load(&subj).await?.len(), 1, "{service} appended on {subj}");
            } else {
                refused.push((subj, ty));
            }
        }
        // The server drops what the identity may not publish; the append
        // times out. All at once: one timeout per service.
        let before = stream_messages(&server).await?;
        let results = futures::future::join_all(
            refused.iter().map(|(subj, ty)| store.append(event(subj, ty), ExpectedVersion::NoStream)),
        )
        .await;
        for ((subj, _), result) in refused.iter().zip(results) {
            assert!(result.is_err(), "{service} may not publish on {subj}");
            assert!(admin_store.load(subj).await?.is_empty(), "nothing stored on {subj}");
        }
        assert_eq!(stream_messages(&server).await?, before);
    }
    let log = server.log();
    assert!(
        log.contains("\"v0.51.0:rust:intake\"")
            && log.contains("Publish Violation - Subject \"psirt.evt.case."),
        "{log}"
    );
    Ok(())
}

#[tokio::test]
async fn no_service_may_create_change_delete_or_purge_the_stream() -> anyhow::Result<()> {
    let security = Security::identities()?;
    let server = NatsServer::start_secured(security.clone()).await?;
    let ids = &security.identities;

    // manage = true does not make a service an administrator: the server
    // refuses the creation and the start fails.
    let mut managing = config_as(&server, ids, "intake");
    managing.stream.manage = true;
    let err = open_event_store(&managing, "intake").await.err().expect("a service cannot create the stream");
    assert!(format!("{err:#}").contains("failed to create stream"), "{err:#}");
    let admin_js = async_nats::jetstream::new(server.connect().await?);
    assert!(admin_js.get_stream("PSIRT_EVENTS").await.is_err(), "no stream was created");

    admin_creates_the_stream(&server).await?;
    // The admin identity manages the stream; it writes no events either.
    let admin_events = EventStore::open(
        server.connect().await?,
        &StreamSettings { request_timeout: Duration::from_secs(1), ..StreamSettings::default() },
    )
    .await?;
    let report = subject("report", Uuid::now_v7());
    assert!(
        admin_events
            .append(event(&report, "psirt.events.v1.ReportReceived"), ExpectedVersion::Any)
            .await
            .is_err()
    );
    let intake = open_event_store(&config_as(&server, ids, "intake"), "intake").await?;
    intake.append(event(&report, "psirt.events.v1.ReportReceived"), ExpectedVersion::Any).await?;
    for service in ["intake", "triage", "remediation", "notification"] {
        let client = server.connect_as(service).await?;
        let js = async_nats::jetstream::ContextBuilder::new().timeout(Duration::from_secs(2)).build(client);
        let changed = StreamSettings { duplicate_window_secs: 30, ..StreamSettings::default() };
        assert!(js.update_stream(changed.to_stream_config()).await.is_err(), "{service} updated the stream");
        assert!(js.delete_stream("PSIRT_EVENTS").await.is_err(), "{service} deleted the stream");
        let stream = js.get_stream_no_info("PSIRT_EVENTS").await?;
        assert!(stream.purge().await.is_err(), "{service} purged the stream");
        assert!(stream.delete_message(1).await.is_err(), "{service} deleted an event");
        // Another service's consumer is not its own either.
        let foreign_consumer = if service == "triage" { "proj-intake-reports" } else { "proj-triage-cases" };
        assert!(
            stream
                .create_consumer(async_nats::jetstream::consumer::pull::Config {
                    durable_name: Some(foreign_consumer.to_owned()),
                    ..Default::default()
                })
                .await
                .is_err(),
            "{service} created {foreign_consumer}"
        );
    }
    let info = admin_js.get_stream("PSIRT_EVENTS").await?.info().await?.clone();
    assert_eq!(info.config.duplicate_window, Duration::from_secs(120), "unchanged");
    assert_eq!(info.state.messages, 1, "nothing deleted or purged");
    assert_eq!(info.state.consumer_count, 0);
    Ok(())
}

#[tokio::test]
async fn a_mismatching_stream_stops_the_start_with_the_differences_and_stays_as_it_is() -> anyhow::Result<()>
{
    let security = Security::identities()?;
    let server = NatsServer::start_secured(security.clone()).await?;
    admin_creates_the_stream(&server).await?;
    let mut nats = config_as(&server, &security.identities, "triage");
    nats.stream.max_age = Duration::from_secs(3600);
    nats.stream.allow_expiry = true;
    nats.stream.replicas = 1;
    nats.stream.max_msg_size = 2048;
    let err = open_event_store(&nats, "triage").await.err().expect("a mismatch stops the start");
    let text = format!("{err:#}");
    assert!(text.contains("max_age: stream has 0s (forever), wanted 3600s"), "{text}");
    assert!(text.contains("max_msg_size: stream has 1048576, wanted 2048"), "{text}");
    assert!(text.contains("psirtctl admin stream plan|apply"), "{text}");
    let js = async_nats::jetstream::new(server.connect().await?);
    let info = js.get_stream("PSIRT_EVENTS").await?.info().await?.clone();
    assert_eq!(info.config.max_age, Duration::ZERO);
    assert_eq!(info.config.max_message_size, 1024 * 1024);
    Ok(())
}

#[tokio::test]
async fn an_unknown_identity_or_none_is_refused() -> anyhow::Result<()> {
    let security = Security::identities()?;
    let server = NatsServer::start_secured(security.clone()).await?;
    admin_creates_the_stream(&server).await?;
    let anonymous = NatsConfig {
        url: server.url(),
        connect_timeout: Duration::from_millis(300),
        ..NatsConfig::default()
    };
    let err = open_event_store(&anonymous, "intake").await.err().expect("anonymous is refused");
    assert!(format!("{err:#}").contains("authorization"), "{err:#}");
    let stranger = Identities::generate()?;
    let err = open_event_store(&config_as(&server, &stranger, "intake"), "intake")
        .await
        .err()
        .expect("an identity the server does not list is refused");
    assert!(format!("{err:#}").contains("authorization"), "{err:#}");
    Ok(())
}

fn tls_security(verify_clients: bool) -> anyhow::Result<Arc<Security>> {
    Ok(Arc::new(Security {
        identities: Identities::generate()?,
        tls: Some(TlsFiles {
            cert: tls_fixture("tls_server.pem"),
            key: tls_fixture("tls_server_key.pem"),
            ca: tls_fixture("tls_ca.pem"),
            verify_clients,
        }),
    }))
}

#[tokio::test]
async fn mutual_tls_to_nats_is_verified_and_plaintext_or_a_wrong_ca_refused() -> anyhow::Result<()> {
    let security = tls_security(true)?;
    let server = NatsServer::start_secured(security.clone()).await?;
    admin_creates_the_stream(&server).await?;
    let ids = &security.identities;
    let tls = |ca: &str, client_cert: bool| {
        let mut nats = config_as(&server, ids, "intake");
        nats.tls_ca_file = Some(tls_fixture(ca));
        nats.tls_required = true;
        if client_cert {
            nats.tls_client_cert_file = Some(tls_fixture("tls_client.pem"));
            nats.tls_client_key_file = Some(tls_fixture("tls_client_key.pem"));
        }
        nats
    };
    // verified both ways
    let store = open_event_store(&tls("tls_ca.pem", true), "intake").await?;
    store
        .append(
            event(&subject("report", Uuid::now_v7()), "psirt.events.v1.ReportReceived"),
            ExpectedVersion::NoStream,
        )
        .await?;
    // no client certificate: the server refuses
    assert!(open_event_store(&tls("tls_ca.pem", false), "intake").await.is_err());
    // a CA that did not sign the server's certificate: the client refuses
    let err = open_event_store(&tls("other_ca.pem", true), "intake").await.err().expect("wrong CA");
    assert!(format!("{err:#}").contains("failed to connect to nats"), "{err:#}");
    // plaintext (no TLS settings) against a TLS server
    assert!(open_event_store(&config_as(&server, ids, "intake"), "intake").await.is_err());
    Ok(())
}

#[tokio::test]
async fn tls_required_refuses_a_plaintext_server() -> anyhow::Result<()> {
    let security = Security::identities()?;
    let server = NatsServer::start_secured(security.clone()).await?;
    admin_creates_the_stream(&server).await?;
    let mut nats = config_as(&server, &security.identities, "intake");
    nats.tls_required = true;
    nats.tls_ca_file = Some(tls_fixture("tls_ca.pem"));
    let err = open_event_store(&nats, "intake").await.err().expect("plaintext server refused");
    assert!(format!("{err:#}").contains("nats.tls_required"), "{err:#}");
    Ok(())
}

#[tokio::test]
async fn a_comma_separated_server_list_connects_past_a_dead_entry() -> anyhow::Result<()> {
    let server = NatsServer::start().await?;
    let dead = psirt_testkit::free_port()?;
    let mut nats = NatsConfig {
        url: format!("nats://127.0.0.1:{dead}, {}", server.url()),
        connect_timeout: Duration::from_millis(500),
        ..NatsConfig::default()
    };
    nats.stream.manage = true;
    let store = open_event_store(&nats, "intake").await?;
    store
        .append(
            event(&subject("report", Uuid::now_v7()), "psirt.events.v1.ReportReceived"),
            ExpectedVersion::NoStream,
        )
        .await?;
    let bad = NatsConfig { url: format!("{},nats://[::1", server.url()), ..NatsConfig::default() };
    let err = backbone::connect_nats(&bad, "intake").await.expect_err("a bad URL is an error");
    assert!(format!("{err:#}").contains("nats://[::1"), "{err:#}");
    Ok(())
}

/// A server that greets like nats-server 2.9.10 and answers pings: enough
/// for the version check, which reads the greeting.
async fn old_server() -> anyhow::Result<(u16, tokio::task::JoinHandle<()>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let info = format!(
                    "INFO {{\"server_id\":\"OLD\",\"server_name\":\"old\",\"version\":\"2.9.10\",\"proto\":1,\"host\":\"127.0.0.1\",\"port\":{port},\"headers\":true,\"max_payload\":1048576,\"jetstream\":true}}\r\n"
                );
                if socket.write_all(info.as_bytes()).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 4096];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    if String::from_utf8_lossy(&buf[..n]).contains("PING")
                        && socket.write_all(b"PONG\r\n").await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok((port, task))
}

#[tokio::test]
async fn an_older_server_is_refused_naming_both_versions() -> anyhow::Result<()> {
    let (port, task) = old_server().await?;
    let nats = NatsConfig {
        url: format!("nats://127.0.0.1:{port}"),
        connect_timeout: Duration::from_millis(500),
        ..NatsConfig::default()
    };
    let err = open_event_store(&nats, "intake").await.err().expect("2.9 is refused");
    let text = format!("{err:#}");
    assert!(text.contains("2.9.10") && text.contains("2.10.0"), "{text}");
    task.abort();
    assert_eq!(backbone::MIN_NATS_SERVER_VERSION, psirt_testkit::MIN_NATS_SERVER_VERSION);
    Ok(())
}
