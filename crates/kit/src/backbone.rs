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
        manage: s.manage,
        allow_expiry: s.allow_expiry,
    }
}

/// The oldest nats-server the platform supports. Older servers lack what the
/// event store relies on (2.9 answers the JetStream account and consumer APIs
/// in shapes this client does not read, so nothing starts), and are refused
/// at connect with both versions named.
pub const MIN_NATS_SERVER_VERSION: (u64, u64, u64) = (2, 10, 0);

/// Parses `2.10.22` (or `v2.10.22-beta`) into numbers.
pub fn parse_server_version(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.trim().trim_start_matches('v');
    let core = core.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next().unwrap_or(Some(0))?))
}

/// Refuses a server older than [`MIN_NATS_SERVER_VERSION`].
pub fn check_server_version(version: &str) -> anyhow::Result<()> {
    let (a, b, c) = MIN_NATS_SERVER_VERSION;
    match parse_server_version(version) {
        Some(v) if v >= MIN_NATS_SERVER_VERSION => Ok(()),
        Some(_) => anyhow::bail!(
            "nats-server {version} is older than the oldest supported version {a}.{b}.{c}: upgrade the NATS servers"
        ),
        None => anyhow::bail!(
            "nats-server reports the version {version:?}, which is not a version number (need {a}.{b}.{c} or newer)"
        ),
    }
}

/// The inbox prefix of a service's connection: replies (JetStream
/// acknowledgements, consumer deliveries) arrive under it, and the server's
/// permissions let the service subscribe to its own inboxes only.
pub fn inbox_prefix(service: &str) -> String {
    format!("_INBOX_{}", service.strip_prefix("psirt-").unwrap_or(service))
}

/// Connects to NATS with the configured identity and TLS. `nats.url` may
/// list several servers (comma-separated); the client also keeps the servers
/// the cluster announces.
pub async fn connect_nats(nats: &NatsConfig, service: &str) -> anyhow::Result<async_nats::Client> {
    Ok(connect_nats_watched(nats, service).await?.0)
}

/// The last connection problem the client reported (a refused identity, a
/// certificate the server does not trust), for the start-up error.
type LastProblem = std::sync::Arc<std::sync::Mutex<Option<String>>>;

async fn connect_nats_watched(
    nats: &NatsConfig,
    service: &str,
) -> anyhow::Result<(async_nats::Client, LastProblem)> {
    let problem: LastProblem = LastProblem::default();
    let seen = problem.clone();
    let servers = nats
        .url
        .split(',')
        .map(config::parse_nats_url)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("nats.url: {e}"))?;
    let mut options = async_nats::ConnectOptions::new()
        .name(nats.name.clone().unwrap_or_else(|| service.to_owned()))
        .custom_inbox_prefix(inbox_prefix(service))
        .connection_timeout(nats.connect_timeout)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                match &event {
                    async_nats::Event::Connected => tracing::info!("nats connected"),
                    async_nats::Event::Disconnected => tracing::warn!("nats disconnected"),
                    other => {
                        tracing::warn!(event = %other, "nats connection problem");
                        *seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                            Some(other.to_string());
                    }
                }
            }
        });
    if let Some(path) = &nats.credentials_file {
        options = options
            .credentials_file(path)
            .await
            .with_context(|| format!("failed to read nats credentials {}", path.display()))?;
    }
    if let Some(token) = &nats.token {
        options = options.token(token.expose_secret().to_owned());
    }
    if let Some(path) = &nats.nkey_seed_file {
        let seed = read_secret_file(path, "nats.nkey_seed_file")?;
        // Checked here, so a wrong file is named at start rather than
        // failing every reconnect with an authorization error.
        nkeys::KeyPair::from_seed(&seed)
            .map_err(|e| anyhow::anyhow!("nats.nkey_seed_file {} holds no NKey seed: {e}", path.display()))?;
        options = options.nkey(seed);
    }
    if let (Some(user), Some(path)) = (&nats.user, &nats.password_file) {
        let password = read_secret_file(path, "nats.password_file")?;
        options = options.user_and_password(user.clone(), password);
    }
    if let Some(ca) = &nats.tls_ca_file {
        anyhow::ensure!(ca.is_file(), "nats.tls_ca_file {} is not a readable file", ca.display());
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&nats.tls_client_cert_file, &nats.tls_client_key_file) {
        for (path, key_name) in [(cert, "nats.tls_client_cert_file"), (key, "nats.tls_client_key_file")] {
            anyhow::ensure!(path.is_file(), "{key_name} {} is not a readable file", path.display());
        }
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    if nats.tls_required {
        options = options.require_tls(true);
    }
    let client = options
        .connect(servers)
        .await
        .with_context(|| format!("failed to connect to nats at {}", nats.url))?;
    Ok((client, problem))
}

/// Reads a one-line secret (a seed, a password) from a file.
fn read_secret_file(path: &std::path::Path, key: &str) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("failed to read {key} {}", path.display()))?;
    let secret = text.trim().to_owned();
    anyhow::ensure!(!secret.is_empty(), "{key} {} is empty", path.display());
    Ok(secret)
}

/// Connects to NATS and opens the event stream: created when missing only
/// with `nats.stream.manage`, otherwise compared with `[nats.stream]` and
/// refused on a difference (services never change it). Waits (bounded)
/// for NATS to come up, then refuses a server older than the supported one.
pub async fn open_event_store(nats: &NatsConfig, service: &str) -> anyhow::Result<EventStore> {
    let (client, problem) = connect_nats_watched(nats, service).await?;
    // EventStore::open checks the settings (StoreError::Config, not retried).
    let settings = stream_settings(nats);
    // NATS may come up after the service (a cluster starting): wait, bounded.
    let patience = nats.connect_timeout * 6;
    let deadline = tokio::time::Instant::now() + patience;
    // The server's version is known once the first connection is up.
    while client.connection_state() != async_nats::connection::State::Connected {
        if tokio::time::Instant::now() >= deadline {
            let cause = problem.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            let tls =
                if nats.tls_required { " (nats.tls_required: servers without TLS are refused)" } else { "" };
            anyhow::bail!(
                "failed to connect to nats at {} within {patience:?}: {}{tls}",
                nats.url,
                cause.unwrap_or_else(|| "no server answered".to_owned())
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let info = client.server_info();
    check_server_version(&info.version)
        .with_context(|| format!("nats server {} at {}:{}", info.server_name, info.host, info.port))?;
    let store = loop {
        match EventStore::open(client.clone(), &settings).await {
            Ok(store) => break store,
            Err(psirt_eventstore::StoreError::Unavailable(e)) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "event stream not reachable yet, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).context("failed to open the event stream"),
        }
    };
    Ok(store)
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

/// How often the projections are checked for a stall.
const PROJECTION_CHECK_EVERY: Duration = Duration::from_millis(500);

/// Keeps one readiness check per projection (`projection <name>`) in step
/// with whether it is stalled ([`psirt_projection::Progress::stalled`]):
/// a projection whose writes keep failing, or that stays too far behind
/// the stream, makes the service not ready, names itself in `/readyz`,
/// sets `psirt_projection_stalled` and logs why; it turns ready again by
/// itself once it moves. One task; stops with `shutdown`.
pub fn watch_projections(
    projections: Vec<(String, std::sync::Arc<psirt_projection::Progress>)>,
    stalled_after: Duration,
    readiness: &crate::Readiness,
    shutdown: crate::Shutdown,
) -> tokio::task::JoinHandle<()> {
    let watched: Vec<_> = projections
        .into_iter()
        .map(|(name, progress)| {
            let check = readiness.register(&format!("projection {name}"));
            check.set_ready(true);
            psirt_projection::record_stalled(&name, false);
            (name, progress, check)
        })
        .collect();
    tokio::spawn(async move {
        loop {
            for (name, progress, check) in &watched {
                let stalled = progress.stalled(stalled_after);
                let was_ready = check.is_ready();
                match &stalled {
                    Some(reason) if was_ready => {
                        tracing::error!(projection = %name, reason = %reason, "projection stalled, not ready until it moves");
                    }
                    None if !was_ready => tracing::info!(projection = %name, "projection moving again"),
                    _ => {}
                }
                check.set_ready(stalled.is_none());
                psirt_projection::record_stalled(name, stalled.is_some());
            }
            tokio::select! {
                () = shutdown.wait() => break,
                () = tokio::time::sleep(PROJECTION_CHECK_EVERY) => {}
            }
        }
    })
}
