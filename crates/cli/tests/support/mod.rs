//! Shared by the `psirtctl` end-to-end tests: a real intake service in-process
//! (real nats-server, temp SQLite), optionally with a real triage service on
//! the same event stream, and a runner for the real `psirtctl` binary, so the
//! tests cover argument parsing, the wire and the exit codes.

#![allow(dead_code)] // each test file uses its own subset

use std::process::Stdio;
use std::time::Duration;

use psirt_intake::{Application, Config};
use psirt_kit::config::AuthMode;
use psirt_kit::{Shutdown, TelemetryGuard};
use psirt_testkit::{NatsServer, TestDatabase};
use psirt_triage::{Application as TriageApplication, Config as TriageConfig};
use secrecy::SecretString;
use tokio::io::AsyncWriteExt as _;
use tokio::task::JoinHandle;

/// How long a test waits for the read model to catch up.
pub const PROJECTION_DEADLINE: Duration = Duration::from_secs(20);

/// A running intake service and what it depends on.
pub struct Intake {
    /// `127.0.0.1:<port>`, without a scheme (as a user may type it).
    pub server: String,
    shutdown: Shutdown,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    // Dropped after the service is stopped: the service needs them to drain.
    _telemetry: TelemetryGuard,
    _db: TestDatabase,
    _nats: NatsServer,
}

impl Intake {
    /// Starts intake without authentication.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|config| config.auth.mode = AuthMode::None).await
    }

    /// Starts intake with a config adjusted by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let nats = NatsServer::start().await?;
        let db = TestDatabase::sqlite()?;
        let mut config = Config::default();
        config.grpc.listen = "127.0.0.1:0".parse()?;
        config.admin.listen = "127.0.0.1:0".parse()?;
        config.nats.url = nats.url();
        config.nats.stream.manage = true;
        config.database.url = SecretString::from(db.url().to_owned());
        config.log.level = "warn".to_owned();
        configure(&mut config);
        let telemetry = psirt_kit::telemetry::init("test", &config.log, &config.otel)?;
        let app = Application::build(&config, telemetry.metrics()).await?;
        let server = app.grpc_addr().to_string();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Ok(Self { server, shutdown, task: Some(task), _telemetry: telemetry, _db: db, _nats: nats })
    }

    /// Stops the service and returns how it ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Intake and triage on one event stream: reports submitted to intake open
/// cases in triage.
pub struct Platform {
    /// Intake's `127.0.0.1:<port>` (for `--server`).
    pub intake: String,
    /// Triage's `127.0.0.1:<port>` (for `--triage-server`).
    pub triage: String,
    shutdown: Shutdown,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    // Dropped after the services are stopped.
    _telemetry: Vec<TelemetryGuard>,
    _dbs: Vec<TestDatabase>,
    _nats: NatsServer,
}

impl Platform {
    /// Starts both services without authentication.
    pub async fn start() -> anyhow::Result<Self> {
        let nats = NatsServer::start().await?;
        let shutdown = Shutdown::new();

        let intake_db = TestDatabase::sqlite()?;
        let mut config = Config::default();
        config.grpc.listen = "127.0.0.1:0".parse()?;
        config.admin.listen = "127.0.0.1:0".parse()?;
        config.nats.url = nats.url();
        config.nats.stream.manage = true;
        config.database.url = SecretString::from(intake_db.url().to_owned());
        config.log.level = "warn".to_owned();
        config.auth.mode = AuthMode::None;
        let intake_telemetry = psirt_kit::telemetry::init("test-intake", &config.log, &config.otel)?;
        let intake = Box::pin(Application::build(&config, intake_telemetry.metrics())).await?;
        let intake_addr = intake.grpc_addr().to_string();

        let triage_db = TestDatabase::sqlite()?;
        let mut config = TriageConfig::default();
        config.grpc.listen = "127.0.0.1:0".parse()?;
        config.admin.listen = "127.0.0.1:0".parse()?;
        config.nats.url = nats.url();
        config.nats.stream.manage = true;
        config.database.url = SecretString::from(triage_db.url().to_owned());
        config.log.level = "warn".to_owned();
        config.auth.mode = AuthMode::None;
        let triage_telemetry = psirt_kit::telemetry::init("test-triage", &config.log, &config.otel)?;
        let triage = Box::pin(TriageApplication::build(&config, triage_telemetry.metrics())).await?;
        let triage_addr = triage.grpc_addr().to_string();

        let tasks = vec![
            tokio::spawn(intake.run_until_stopped(shutdown.clone())),
            tokio::spawn(triage.run_until_stopped(shutdown.clone())),
        ];
        Ok(Self {
            intake: intake_addr,
            triage: triage_addr,
            shutdown,
            tasks,
            _telemetry: vec![intake_telemetry, triage_telemetry],
            _dbs: vec![intake_db, triage_db],
            _nats: nats,
        })
    }

    /// Stops both services and returns how they ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        for task in std::mem::take(&mut self.tasks) {
            task.await??;
        }
        Ok(())
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// What one `psirtctl` run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with both streams unless the run exited with `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "psirtctl exited {} (expected {code})\n{self:#?}", self.code);
        self
    }

    /// The value of a `Key:  value` line of table output.
    #[track_caller]
    pub fn field(&self, key: &str) -> String {
        let prefix = format!("{key}:");
        self.stdout
            .lines()
            .find_map(|line| line.strip_prefix(&prefix).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {key:?} line in\n{}", self.stdout))
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// A `psirtctl` invocation.
#[derive(Debug, Default)]
pub struct Psirtctl {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
}

/// `psirtctl <args>`; the `PSIRT_*` variables of the test's own environment
/// are not passed on.
pub fn psirtctl<I, S>(args: I) -> Psirtctl
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Psirtctl { args: args.into_iter().map(Into::into).collect(), ..Psirtctl::default() }
}

impl Psirtctl {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.to_owned());
        self
    }

    /// Starts the command without waiting for it, stdout piped (for
    /// long-running commands such as `case watch`); killed when dropped.
    pub fn spawn(self) -> tokio::process::Child {
        self.command().stdin(Stdio::null()).spawn().expect("spawn psirtctl")
    }

    fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_psirtctl"));
        command
            .args(&self.args)
            .env_remove("PSIRT_SERVER")
            .env_remove("PSIRT_TRIAGE_SERVER")
            .env_remove("PSIRT_NOTIFICATION_SERVER")
            .env_remove("PSIRT_TOKEN")
            .env_remove("PSIRT_OUTPUT")
            // The positions psirtctl remembers stay in the test's own file,
            // never in the user's state directory.
            .env(
                "PSIRT_STATE",
                std::env::temp_dir().join(format!("psirtctl-test-{}.positions", std::process::id())),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    pub async fn run(self) -> Run {
        let mut command = self.command();
        command.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = command.spawn().expect("spawn psirtctl");
        if let Some(text) = &self.stdin {
            let mut stdin = child.stdin.take().expect("piped stdin");
            stdin.write_all(text.as_bytes()).await.expect("write stdin");
            // Closing stdin ends the child's read.
            drop(stdin);
        }
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("psirtctl finished within 60s")
            .expect("psirtctl output");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}
