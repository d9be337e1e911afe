//! `psirt-bench`: load benchmarks of the intake path. `intake` loads a
//! running service, `raw-publish` measures the JetStream ceiling for the same
//! events, `all` runs it on a fresh nats-server (or a fresh cluster,
//! `--cluster`), then loads a no-op server on the same gRPC stack (the floor,
//! `floor.rs`) and a fresh intake child on the same NATS.

mod cases;
mod floor;
mod intake;
mod lag;
mod nats;
mod payload;
mod process;
mod raw;
mod rebuild;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::intake::IntakeOptions;
use crate::nats::Nats;
use crate::process::{IntakeProcess, MemorySampler};
use crate::raw::RawOptions;
use crate::report::{Document, Format, Parameters};

#[derive(Parser)]
#[command(name = "psirt-bench", version, about = "Load benchmarks of the PSIRT intake path")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load a running intake service with SubmitReport calls.
    Intake(IntakeArgs),
    /// Append the intake's events straight to JetStream: the ceiling for intake.
    /// Writes events to the stream: point it at a throwaway server.
    RawPublish(RawArgs),
    /// Start a fresh nats-server (or cluster), run raw-publish on it, load a
    /// no-op gRPC server (the floor), then start psirt-intake and load it;
    /// report all three and their ratios.
    All(AllArgs),
    /// The no-op SubmitReport server `all` loads as the gRPC floor (started
    /// by `all` as its own child; prints its address on stdout).
    #[command(hide = true)]
    FloorServer(FloorServerArgs),
    /// Start nats-server, psirt-intake and psirt-triage, submit reports at a
    /// steady rate, and measure how long until each promised case is readable.
    CaseLatency(CaseLatencyArgs),
    /// Start nats-server and psirt-intake, submit reports at a steady rate, and
    /// measure how far behind the stream the intake's read model is at the end
    /// (and, once a second, during the load).
    ReadLag(ReadLagArgs),
    /// Seed a fresh nats-server with realistic cases, rebuild the case view
    /// on a fresh PostgreSQL database, and run the raw floor of the same work
    /// (pull consume + multi-row upsert with checkpoint); report both rates.
    Rebuild(RebuildArgs),
}

#[derive(Args)]
struct FloorServerArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
}

#[derive(Args)]
struct RebuildArgs {
    /// Events to seed and replay.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    events: u64,
    /// Cases whose events are interleaved phase by phase on the stream
    /// (1: each case's events in a row).
    #[arg(long, default_value_t = rebuild::DEFAULT_INTERLEAVE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    interleave: usize,
    /// Events per transaction, for the rebuild and the raw pass alike
    /// (default: the projection's `rebuild_batch_size`).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    batch_size: Option<usize>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct CaseLatencyArgs {
    /// The psirt-intake binary [default: next to this executable].
    #[arg(long, value_name = "PATH")]
    intake_bin: Option<PathBuf>,
    /// The psirt-triage binary [default: next to this executable].
    #[arg(long, value_name = "PATH")]
    triage_bin: Option<PathBuf>,
    /// Reports submitted per second, steadily.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rate: u32,
    /// Measured time, e.g. `10`, `10s`, `2m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured time before the measured window.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// The services' read models: an SQLite file each (the embedded
    /// default), or a fresh database on the test kit's PostgreSQL server
    /// (`PSIRT_TEST_DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/postgres).
    #[arg(long, value_enum, default_value_t = BenchDatabase::Sqlite)]
    database: BenchDatabase,
    /// How the case is looked up: `wait` sends one `GetCase` that carries
    /// the submit's `psirt-position` as `psirt-min-position` (triage answers
    /// once its reactions opened the case: read your writes, as psirtctl
    /// does); `poll` asks `GetCase` every 2 ms until it is found (each
    /// pending case adds 500 calls/s to the load it measures).
    #[arg(long, value_enum, default_value_t = cases::Lookup::Wait)]
    lookup: cases::Lookup,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct ReadLagArgs {
    /// The psirt-intake binary [default: next to this executable].
    #[arg(long, value_name = "PATH")]
    intake_bin: Option<PathBuf>,
    /// Reports submitted per second, steadily.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rate: u32,
    /// Measured time, e.g. `15`, `15s`, `2m`.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured time before the measured window.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// The intake's read model: an SQLite file (the embedded default) or a
    /// fresh database on the test kit's PostgreSQL server.
    #[arg(long, value_enum, default_value_t = BenchDatabase::Sqlite)]
    database: BenchDatabase,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BenchDatabase {
    Sqlite,
    Postgres,
}

impl BenchDatabase {
    /// A fresh PostgreSQL database for one service (dropped with the value);
    /// `None` for SQLite, where each service makes its own file.
    async fn create(self) -> anyhow::Result<Option<psirt_testkit::TestDatabase>> {
        Ok(match self {
            Self::Sqlite => None,
            Self::Postgres => Some(psirt_testkit::TestDatabase::postgres().await?),
        })
    }
}

/// What a steady-rate command (`case-latency`, `read-lag`) ran.
fn steady_rate_parameters(
    command: &str,
    rate: u32,
    database: BenchDatabase,
    duration: Duration,
    warmup: Duration,
) -> Parameters {
    Parameters {
        command: command.to_owned(),
        clients: rate as usize,
        connections: None,
        ack_window: None,
        duration_secs: duration.as_secs_f64(),
        warmup_secs: warmup.as_secs_f64(),
        target: Some(format!("{rate} reports/s ({database:?})")),
        nats_servers: None,
    }
}

#[derive(Args)]
struct LoadArgs {
    /// Concurrent client tasks.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=9_999))]
    clients: u32,
    /// Measured time, e.g. `10`, `10s`, `500ms`, `2m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured time before the measured window.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
}

#[derive(Args)]
struct OutputArgs {
    /// Also write the JSON document to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Args)]
struct IntakeArgs {
    /// The intake's gRPC address, e.g. `http://127.0.0.1:50051`.
    #[arg(long)]
    server: String,
    /// gRPC connections the clients share [default: min(clients, 8)].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    connections: Option<u32>,
    /// Bearer token, when the service authenticates callers.
    #[arg(long, env = "PSIRT_BENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Deadline of one call.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    call_timeout: Duration,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct RawArgs {
    /// NATS server, e.g. `nats://127.0.0.1:4222`.
    #[arg(long)]
    nats: String,
    /// Publish acks each client keeps in flight.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    window: u32,
    /// Stream capturing `psirt.evt.>`, created when missing.
    #[arg(long, default_value = raw::DEFAULT_STREAM)]
    stream: String,
    /// Replicas of the stream when it is created (at most the servers of
    /// the cluster; `--nats` may list several, comma-separated).
    #[arg(long, default_value_t = 1, value_parser = replicas())]
    replicas: usize,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct AllArgs {
    /// The psirt-intake binary [default: next to this executable].
    #[arg(long, value_name = "PATH")]
    intake_bin: Option<PathBuf>,
    /// gRPC connections the intake clients share [default: min(clients, 8)].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    connections: Option<u32>,
    /// Publish acks each raw client keeps in flight.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    window: u32,
    /// Run all three on a fresh cluster of N nats-servers (routes on
    /// loopback) whose event streams have N replicas; 1: one server.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = replicas())]
    cluster: usize,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Servers of a cluster and replicas of a stream: 1 to 5, as JetStream
/// (and `nats.stream.replicas`) allows.
fn replicas() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..=5)
}

/// Parses `10`, `10s`, `1.5s`, `500ms`, `2m` (a bare number is seconds).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let invalid = || format!("invalid duration {text:?}: use e.g. 10, 10s, 500ms, 2m");
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        _ => return Err(invalid()),
    };
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(invalid());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Multi-threaded, one worker per core (the default): the client shares
    // two cores with the server(s) it measures, so it gets no more.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let command = async {
            match cli.command {
                Command::Intake(args) => intake_command(args).await,
                Command::RawPublish(args) => raw_command(args).await,
                Command::All(args) => all_command(args).await,
                Command::FloorServer(args) => floor::serve(args.listen).await,
                Command::CaseLatency(args) => case_latency_command(args).await,
                Command::ReadLag(args) => read_lag_command(args).await,
                Command::Rebuild(args) => Box::pin(rebuild_command(args)).await,
            }
        };
        // On Ctrl-C the command is dropped, which kills the nats-server and
        // intake children and removes their directories.
        tokio::select! {
            result = command => result,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        }
    })
}

fn check_load(load: &LoadArgs) -> anyhow::Result<()> {
    if load.duration.is_zero() {
        bail!("--duration must be greater than 0");
    }
    Ok(())
}

fn parameters(command: &str, load: &LoadArgs) -> Parameters {
    Parameters {
        command: command.to_owned(),
        clients: load.clients as usize,
        connections: None,
        ack_window: None,
        duration_secs: load.duration.as_secs_f64(),
        warmup_secs: load.warmup.as_secs_f64(),
        target: None,
        nats_servers: None,
    }
}

async fn intake_command(args: IntakeArgs) -> anyhow::Result<()> {
    check_load(&args.load)?;
    let clients = args.load.clients as usize;
    let options = IntakeOptions {
        server: args.server.clone(),
        clients,
        connections: args.connections.map_or_else(|| intake::default_connections(clients), |c| c as usize),
        duration: args.load.duration,
        warmup: args.load.warmup,
        token: args.token,
        call_timeout: args.call_timeout,
    };
    eprintln!(
        "psirt-bench: {} with {clients} clients on {} connections, {}s warmup + {}s",
        intake::WORKLOAD,
        options.connections,
        options.warmup.as_secs_f64(),
        options.duration.as_secs_f64()
    );
    let summary = intake::run(&options).await?;
    let mut params = parameters("intake", &args.load);
    params.connections = Some(options.connections);
    params.target = Some(args.server);
    let doc = Document::new(params, vec![summary]);
    report::emit(&doc, args.output.format, args.output.json.as_deref())
}

async fn raw_command(args: RawArgs) -> anyhow::Result<()> {
    check_load(&args.load)?;
    let options = RawOptions {
        nats: args.nats.clone(),
        clients: args.load.clients as usize,
        window: args.window as usize,
        duration: args.load.duration,
        warmup: args.load.warmup,
        stream: args.stream,
        replicas: args.replicas,
    };
    eprintln!(
        "psirt-bench: {} with {} clients x {} acks in flight, {}s warmup + {}s",
        raw::WORKLOAD,
        options.clients,
        options.window,
        options.warmup.as_secs_f64(),
        options.duration.as_secs_f64()
    );
    let run = raw::run(&options).await?;
    let mut params = parameters("raw-publish", &args.load);
    params.ack_window = Some(options.window);
    params.target = Some(args.nats);
    let mut doc = Document::new(params, vec![run.summary]);
    doc.nats_server_version = Some(run.server_version);
    report::emit(&doc, args.output.format, args.output.json.as_deref())
}

/// `nats-server --version` of the binary the test kit starts.
fn nats_server_version() -> Option<String> {
    let bin = psirt_testkit::nats_server_bin().ok()?;
    let out = std::process::Command::new(bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

async fn all_command(args: AllArgs) -> anyhow::Result<()> {
    check_load(&args.load)?;
    let intake_bin = match args.intake_bin {
        Some(path) => path,
        None => std::env::current_exe().context("cannot locate psirt-bench")?.with_file_name("psirt-intake"),
    };
    if !intake_bin.is_file() {
        bail!(
            "intake binary {} not found: run `cargo build -p psirt-intake --release` or pass --intake-bin",
            intake_bin.display()
        );
    }
    let clients = args.load.clients as usize;
    let connections = args.connections.map_or_else(|| intake::default_connections(clients), |c| c as usize);

    let nats = Nats::start(args.cluster).await?;
    eprintln!("psirt-bench: measuring on {}", nats.describe());
    let raw_options = RawOptions {
        nats: nats.url(),
        clients,
        window: args.window as usize,
        duration: args.load.duration,
        warmup: args.load.warmup,
        stream: raw::DEFAULT_STREAM.to_owned(),
        replicas: nats.replicas(),
    };
    eprintln!(
        "psirt-bench: {} with {clients} clients x {} acks in flight, {}s warmup + {}s",
        raw::WORKLOAD,
        raw_options.window,
        raw_options.warmup.as_secs_f64(),
        raw_options.duration.as_secs_f64()
    );
    let raw_run = raw::run(&raw_options).await?;
    raw::delete_stream(&nats.url(), raw::DEFAULT_STREAM).await?;

    // The floor and the intake get the same load.
    let load = |server: String, workload: &str| {
        let options = IntakeOptions {
            server,
            clients,
            connections,
            duration: args.load.duration,
            warmup: args.load.warmup,
            token: None,
            call_timeout: Duration::from_secs(30),
        };
        eprintln!(
            "psirt-bench: {workload} with {clients} clients on {connections} connections, {}s warmup + {}s",
            options.warmup.as_secs_f64(),
            options.duration.as_secs_f64()
        );
        options
    };

    let mut floor_child = floor::FloorProcess::start().await?;
    let floor_result = intake::run(&load(floor_child.grpc_url(), floor::WORKLOAD)).await;
    floor_child.kill().await;
    let mut floor_summary = floor_result.context("loading the floor server failed")?;
    floor_summary.workload = floor::WORKLOAD.to_owned();

    eprintln!("psirt-bench: starting {}", intake_bin.display());
    let mut child = IntakeProcess::start(&intake_bin, &nats.url(), nats.replicas()).await?;
    let intake_options = load(child.grpc_url(), intake::WORKLOAD);
    let sampler = MemorySampler::start(child.pid(), Duration::from_millis(100));
    let result = intake::run(&intake_options).await;
    let memory = sampler.finish().await;
    let log = child.log_tail(20);
    child.kill().await;
    let intake_summary = result.with_context(|| format!("intake log:\n{log}"))?;
    let nats_servers = nats.servers();
    drop(nats);

    let mut params = parameters("all", &args.load);
    params.connections = Some(connections);
    params.ack_window = Some(raw_options.window);
    params.nats_servers = Some(nats_servers);
    let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
    let (raw_rate, floor_rate, intake_rate) =
        (raw_run.summary.rate_per_sec, floor_summary.rate_per_sec, intake_summary.rate_per_sec);
    let mut doc = Document::new(params, vec![raw_run.summary, floor_summary, intake_summary]);
    doc.nats_server_version = nats_server_version().or(Some(raw_run.server_version));
    doc.ratio_intake_over_raw = ratio(intake_rate, raw_rate);
    doc.ratio_floor_over_raw = ratio(floor_rate, raw_rate);
    doc.ratio_intake_over_floor = ratio(intake_rate, floor_rate);
    doc.composed_limit_per_sec = report::composed_rate(floor_rate, raw_rate);
    doc.ratio_intake_over_composed = doc.composed_limit_per_sec.and_then(|limit| ratio(intake_rate, limit));
    doc.intake_memory = Some(memory);
    report::emit(&doc, args.output.format, args.output.json.as_deref())
}

fn sibling_binary(given: Option<PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(path) => path,
        None => std::env::current_exe().context("cannot locate psirt-bench")?.with_file_name(name),
    };
    if !path.is_file() {
        bail!(
            "{name} binary {} not found: run `cargo build --release -p {name}` or pass its path",
            path.display()
        );
    }
    Ok(path)
}

async fn case_latency_command(args: CaseLatencyArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.duration.is_zero(), "--duration must be greater than 0");
    let intake_bin = sibling_binary(args.intake_bin, "psirt-intake")?;
    let triage_bin = sibling_binary(args.triage_bin, "psirt-triage")?;
    let nats = psirt_testkit::NatsServer::start().await.context("failed to start nats-server")?;
    // A database per service (each migrates its own), dropped at the end.
    let (intake_db, triage_db) = (args.database.create().await?, args.database.create().await?);
    let url = |db: &Option<psirt_testkit::TestDatabase>| db.as_ref().map(|db| db.url().to_owned());
    let mut intake_child =
        IntakeProcess::start_service(&intake_bin, "intake", &nats.url(), 1, url(&intake_db).as_deref())
            .await?;
    let mut triage_child =
        IntakeProcess::start_service(&triage_bin, "triage", &nats.url(), 1, url(&triage_db).as_deref())
            .await?;
    eprintln!(
        "psirt-bench: {} at {} reports/s on {:?}, lookup {:?}, {}s warmup + {}s",
        cases::WORKLOAD,
        args.rate,
        args.database,
        args.lookup,
        args.warmup.as_secs_f64(),
        args.duration.as_secs_f64()
    );
    let options = cases::CaseLatencyOptions {
        intake: intake_child.grpc_url(),
        triage: triage_child.grpc_url(),
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
        lookup: args.lookup,
    };
    let result = cases::run(&options).await;
    let logs =
        format!("intake log:\n{}\ntriage log:\n{}", intake_child.log_tail(10), triage_child.log_tail(10));
    intake_child.kill().await;
    triage_child.kill().await;
    let summary = result.with_context(|| logs)?;
    drop(nats);
    let mut params =
        steady_rate_parameters("case-latency", args.rate, args.database, args.duration, args.warmup);
    params.target = params.target.map(|target| format!("{target}, lookup {:?}", args.lookup));
    let mut doc = Document::new(params, vec![summary]);
    doc.nats_server_version = nats_server_version();
    report::emit(&doc, args.output.format, args.output.json.as_deref())
}

async fn read_lag_command(args: ReadLagArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.duration.is_zero(), "--duration must be greater than 0");
    let intake_bin = sibling_binary(args.intake_bin, "psirt-intake")?;
    let nats = psirt_testkit::NatsServer::start().await.context("failed to start nats-server")?;
    let db = args.database.create().await?;
    let url = db.as_ref().map(|db| db.url().to_owned());
    let mut child =
        IntakeProcess::start_service(&intake_bin, "intake", &nats.url(), 1, url.as_deref()).await?;
    eprintln!(
        "psirt-bench: {} at {} reports/s on {:?}, {}s warmup + {}s",
        lag::WORKLOAD,
        args.rate,
        args.database,
        args.warmup.as_secs_f64(),
        args.duration.as_secs_f64()
    );
    let options = lag::LagOptions {
        intake: child.grpc_url(),
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
    };
    let result = lag::run(&options).await;
    let log = child.log_tail(20);
    child.kill().await;
    let (summary, lag) = result.with_context(|| format!("intake log:\n{log}"))?;
    drop(nats);
    let params = steady_rate_parameters("read-lag", args.rate, args.database, args.duration, args.warmup);
    let mut doc = Document::new(params, vec![summary]);
    doc.nats_server_version = nats_server_version();
    doc.read_lag = Some(lag);
    report::emit(&doc, args.output.format, args.output.json.as_deref())
}

async fn rebuild_command(args: RebuildArgs) -> anyhow::Result<()> {
    let nats = psirt_testkit::NatsServer::start().await.context("failed to start nats-server")?;
    let options = rebuild::RebuildOptions {
        nats: nats.url(),
        events: args.events,
        interleave: args.interleave,
        batch_size: args.batch_size,
    };
    let result = Box::pin(rebuild::run(&options)).await?;
    drop(nats);
    let params = Parameters {
        command: "rebuild".to_owned(),
        clients: 1,
        connections: None,
        ack_window: None,
        duration_secs: result.rebuild.secs + result.raw.secs,
        warmup_secs: 0.0,
        target: Some(format!("{} events on PostgreSQL", result.events)),
        nats_servers: None,
    };
    let mut doc = Document::new(params, Vec::new());
    doc.nats_server_version = nats_server_version();
    doc.rebuild = Some(result);
    report::emit(&doc, args.output.format, args.output.json.as_deref())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "s", "10h", "-1s", "1e9", "ten"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn all_defaults() {
        let cli = Cli::try_parse_from(["psirt-bench", "all", "--clients", "4", "--duration", "3"]).unwrap();
        let Command::All(args) = cli.command else { panic!("not all") };
        assert_eq!(args.load.clients, 4);
        assert_eq!(args.load.duration, Duration::from_secs(3));
        assert_eq!(args.load.warmup, Duration::from_secs(2));
        assert_eq!(args.window, 32);
        assert_eq!(args.cluster, 1);
        assert_eq!(args.output.format, Format::Table);
    }

    #[test]
    fn all_on_a_cluster() {
        let parse = |cluster: &str| {
            Cli::try_parse_from(["psirt-bench", "all", "--cluster", cluster]).map(|cli| match cli.command {
                Command::All(args) => args.cluster,
                _ => panic!("not all"),
            })
        };
        assert_eq!(parse("3").unwrap(), 3);
        assert_eq!(parse("1").unwrap(), 1);
        assert_eq!(parse("5").unwrap(), 5);
        for bad in ["0", "6", "three", "-1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn raw_publish_replicas() {
        let parse = |extra: &[&str]| {
            let args =
                [&["psirt-bench", "raw-publish", "--nats", "nats://a:4222,nats://b:4222"], extra].concat();
            Cli::try_parse_from(args).map(|cli| match cli.command {
                Command::RawPublish(args) => args.replicas,
                _ => panic!("not raw-publish"),
            })
        };
        assert_eq!(parse(&[]).unwrap(), 1);
        assert_eq!(parse(&["--replicas", "3"]).unwrap(), 3);
        assert!(parse(&["--replicas", "0"]).is_err());
    }

    #[test]
    fn read_lag_defaults() {
        let cli = Cli::try_parse_from(["psirt-bench", "read-lag"]).unwrap();
        let Command::ReadLag(args) = cli.command else { panic!("not read-lag") };
        assert_eq!(args.rate, 5000);
        assert_eq!(args.duration, Duration::from_secs(15));
        assert_eq!(args.database, BenchDatabase::Sqlite);
        assert!(Cli::try_parse_from(["psirt-bench", "read-lag", "--rate", "0"]).is_err());
    }

    #[test]
    fn rebuild_defaults() {
        let cli = Cli::try_parse_from(["psirt-bench", "rebuild"]).unwrap();
        let Command::Rebuild(args) = cli.command else { panic!("not rebuild") };
        assert_eq!(args.events, 1_000_000);
        assert_eq!(args.interleave, 64);
        assert!(Cli::try_parse_from(["psirt-bench", "rebuild", "--events", "0"]).is_err());
        assert!(Cli::try_parse_from(["psirt-bench", "rebuild", "--interleave", "0"]).is_err());
    }
}
