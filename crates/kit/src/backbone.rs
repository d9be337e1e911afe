//! Connections to the backbone: NATS (with the event stream made sure of)
//! and the SQL database picked by `database.url`.

use std::time::Duration;

use crate::config::{self, DatabaseConfig, NatsConfig};
use anyhow::Context;
use psirt_eventstore::{EventStore, StorageKind, StreamSettings};
use secrecy::ExposeSecret;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// The event store's view of `[nats.stream]`.
pub fn stream_settings(nats: &NatsConfig) -> StreamSettings {
    let s = &nats.stream;
    StreamSettings {
        name: s.name.clone(),
        subjects: s.subjects.clone(),
        replicas: s.replicas,
        storage: match s.storage {
            config::StorageKind::File => StorageKind::File,
            config::StorageKind::Memory => StorageKind::Memory,
        },
        max_age_secs: s.max_age.as_secs(),
        duplicate_window_secs: s.duplicate_window.as_secs().max(1),
        max_msg_size: i32::try_from(s.max_msg_size).unwrap_or(i32::MAX),
        request_timeout: Duration::from_secs(5),
    }
}

/// Connects to NATS with the configured credentials and TLS.
pub async fn connect_nats(nats: &NatsConfig, service: &str) -> anyhow::Result<async_nats::Client> {
    let mut options = async_nats::ConnectOptions::new()
        .name(nats.name.clone().unwrap_or_else(|| service.to_owned()))
        .connection_timeout(nats.connect_timeout)
        .retry_on_initial_connect()
        .max_reconnects(None);
    if let Some(path) = &nats.credentials_file {
        options = options
            .credentials_file(path)
            .await
            .with_context(|| format!("failed to read nats credentials {}", path.display()))?;
    }
    if let Some(token) = &nats.token {
        options = options.token(token.expose_secret().to_owned());
    }
    if let Some(ca) = &nats.tls_ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if nats.tls_required {
        options = options.require_tls(true);
    }
    let client = options
        .connect(nats.url.as_str())
        .await
        .with_context(|| format!("failed to connect to nats at {}", nats.url))?;
    Ok(client)
}

/// Connects to NATS and makes sure the event stream exists with the
/// configured settings. Waits (bounded) for NATS to come up.
pub async fn open_event_store(nats: &NatsConfig, service: &str) -> anyhow::Result<EventStore> {
    let client = connect_nats(nats, service).await?;
    let settings = stream_settings(nats);
    let problems = settings.problems();
    if !problems.is_empty() {
        anyhow::bail!("invalid nats.stream settings: {}", problems.join("; "));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match EventStore::open(client.clone(), &settings).await {
            Ok(store) => return Ok(store),
            Err(psirt_eventstore::StoreError::Unavailable(e)) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "event stream not reachable yet, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).context("failed to open the event stream"),
        }
    }
}

/// Opens the database named by `database.url` (PostgreSQL or SQLite).
pub async fn open_database(db: &DatabaseConfig) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let url = db.url.expose_secret();
    if let Some(path) = url.strip_prefix("sqlite://").map(|p| p.split('?').next().unwrap_or(p)) {
        // Make sure the folder of an embedded database exists.
        if let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create {}", parent.display()))?;
        }
    }
    // SQLite has one writer at a time (the projection runners take turns)
    // and, in WAL mode, readers beside it: with two connections, reads
    // (`GetCase` polled by clients) queued behind the projections' batches
    // and the batches behind the reads; four keep both moving.
    let sqlite = url.starts_with("sqlite:");
    let max = if sqlite { db.max_connections.min(4) } else { db.max_connections };
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(db.acquire_timeout)
        // A pooled SQLite connection is a thread beside an open file: it
        // cannot break the way a network connection does, and a ping before
        // each use was one more thread handoff per query (a quarter of a
        // loaded triage's CPU went to such handoffs). PostgreSQL connections
        // are still checked before use.
        .test_before_acquire(!sqlite)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if sqlite {
                    // WAL without an fsync per commit: a power loss can only
                    // lose the last committed batches together with their
                    // checkpoint, which the projection then replays. A small
                    // page cache per connection keeps the process lean.
                    sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA cache_size = -256").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA temp_store = MEMORY").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .with_context(|| format!("failed to open database {}", db.redacted_url()))
}

/// Runs `service`'s embedded migrations. A database that holds migrations
/// the service does not know (another service's database, or one a newer
/// release migrated) is refused with what to do about it, not only sqlx's
/// "previously applied but missing/modified".
pub async fn migrate(
    migrator: &sqlx::migrate::Migrator,
    pool: &AnyPool,
    service: &str,
) -> anyhow::Result<()> {
    use sqlx::migrate::MigrateError;
    match migrator.run(pool).await {
        Ok(()) => Ok(()),
        Err(e @ (MigrateError::VersionMissing(_) | MigrateError::VersionMismatch(_))) => {
            Err(anyhow::anyhow!(
                "the database of psirt-{service} holds migrations this release of psirt-{service} does not have \
             ({e}): each service needs a database of its own (two services sharing one fail this way), \
             and a release cannot start on a database a newer release migrated (restore the backup taken \
             before the upgrade, or empty the database and let the service replay the stream; \
             docs/operations.md)"
            ))
        }
        Err(e) => {
            Err(anyhow::Error::new(e).context(format!("failed to migrate the psirt-{service} database")))
        }
    }
}

/// Keeps the readiness checks `nats` and `database` in step with the
/// backbone: a service whose bus or database is away is not ready (its
/// commands and reads would fail), and turns ready again by itself once
/// both are back. One task; stops with `shutdown`.
pub fn watch_backbone(
    client: async_nats::Client,
    pool: sqlx::AnyPool,
    readiness: &crate::Readiness,
    shutdown: crate::Shutdown,
) -> tokio::task::JoinHandle<()> {
    let nats = watch_nats(client, readiness.register("nats"), shutdown.clone());
    let database = watch_database(pool, readiness.register("database"), shutdown);
    tokio::spawn(async move {
        let _ = nats.await;
        let _ = database.await;
    })
}

/// How often the database is probed, and how long a probe may take.
const DATABASE_PROBE_EVERY: Duration = Duration::from_secs(1);
const DATABASE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Keeps a readiness check in step with the database: `SELECT 1` every
/// second on a connection of its own (a pool busy with work must not look
/// like a database that is away), not ready while it fails or takes longer
/// than two seconds; the connection is opened again after a failure.
pub fn watch_database(
    pool: sqlx::AnyPool,
    check: crate::ReadinessCheck,
    shutdown: crate::Shutdown,
) -> tokio::task::JoinHandle<()> {
    use sqlx::{ConnectOptions, Connection};
    tokio::spawn(async move {
        let options = pool.connect_options();
        let mut conn: Option<sqlx::AnyConnection> = None;
        let mut last = None;
        loop {
            let probe = async {
                if conn.is_none() {
                    conn = Some(options.connect().await?);
                }
                match conn.as_mut() {
                    Some(c) => c.ping().await,
                    None => Ok(()),
                }
            };
            let up = matches!(tokio::time::timeout(DATABASE_PROBE_TIMEOUT, probe).await, Ok(Ok(())));
            if !up {
                conn = None;
            }
            if last != Some(up) {
                if up {
                    if last.is_some() {
                        tracing::info!("database reachable again");
                    }
                } else {
                    tracing::warn!("database unreachable, not ready until it is back");
                }
                check.set_ready(up);
                last = Some(up);
            }
            tokio::select! {
                () = shutdown.wait() => break,
                () = tokio::time::sleep(DATABASE_PROBE_EVERY) => {}
            }
        }
    })
}

/// Keeps a readiness check in step with the NATS connection: a service
/// whose bus is away is not ready (commands would fail), and turns ready
/// again by itself once the client has reconnected.
pub fn watch_nats(
    client: async_nats::Client,
    check: crate::ReadinessCheck,
    shutdown: crate::Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = None;
        loop {
            let connected = client.connection_state() == async_nats::connection::State::Connected;
            if last != Some(connected) {
                if !connected {
                    tracing::warn!("nats connection lost, not ready until it is back");
                }
                check.set_ready(connected);
                last = Some(connected);
            }
            tokio::select! {
                () = shutdown.wait() => break,
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    })
}
