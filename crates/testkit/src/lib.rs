//! Test kit: real dependencies for tests, isolated per test.
//!
//! A `nats-server` child with JetStream in a temporary directory on a free port,
//! and a fresh database per test (a temporary SQLite file, or a PostgreSQL
//! database created and dropped around the test). Readiness is always polled
//! with a deadline, never waited for with a fixed sleep. [`OtlpCollector`] is a
//! real OTLP/gRPC trace receiver for asserting on exported traces.

use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub mod config_example;
pub mod jwt;
mod nats;
mod otlp;
pub mod smtp;

pub use nats::{
    Identities, MIN_NATS_SERVER_VERSION, NatsCluster, NatsServer, Security, TlsFiles, nats_server_bin,
    nats_server_version, tls_fixture,
};
pub use otlp::{OtlpCollector, ReceivedSpan, SpanKind};

/// Polls `check` until it returns `Some`, or fails after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if start.elapsed() > deadline {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago. Released before it is
/// returned, so another process may take it: for an address nothing should listen on, or
/// one that must be known before anything starts (a NATS cluster's routes). A child
/// process the test starts binds port 0 and reports what it bound instead (a service's
/// `--ports-file`, nats-server's `ports_file_dir`).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("failed to bind a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Which SQL backend a test database runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests use: `PSIRT_TEST_DATABASE_URL`, by default the
/// local trust-auth server.
pub fn postgres_admin_url() -> String {
    std::env::var("PSIRT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test: a temp SQLite file, or a PostgreSQL
/// database created for the test and dropped afterwards.
pub struct TestDatabase {
    url: String,
    backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDatabase {
    /// A fresh SQLite database file in a temp dir.
    pub fn sqlite() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("psirt.db");
        Ok(Self {
            url: format!("sqlite://{}?mode=rwc", path.display()),
            backend: Backend::Sqlite,
            _dir: Some(dir),
            pg_name: None,
        })
    }

    /// A fresh PostgreSQL database. Fails when the server is unreachable:
    /// CI always has one, and a silently skipped test proves nothing.
    pub async fn postgres() -> anyhow::Result<Self> {
        use sqlx::Connection;
        let admin = postgres_admin_url();
        let name = format!("psirt_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .with_context(|| format!("failed to connect to postgres at {admin}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .context("failed to create test database")?;
        let url = match admin.rfind('/') {
            Some(idx) if admin[..idx].contains("://") && admin[..idx].matches('/').count() >= 2 => {
                let (base, rest) = admin.split_at(idx);
                let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
                format!("{base}/{name}{query}")
            }
            _ => format!("{}/{name}", admin.trim_end_matches('/')),
        };
        Ok(Self { url, backend: Backend::Postgres, _dir: None, pg_name: Some(name) })
    }

    /// Opens a database of the given backend.
    pub async fn new(backend: Backend) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => Self::postgres().await,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        let admin = postgres_admin_url();
        // Drop runs outside any runtime guarantee: use a short-lived thread
        // with its own runtime so the database never outlives the test.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Both backends, for tests that must hold on each.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
