//! `psirtctl`, the command-line client of the PSIRT platform's gRPC services.
//!
//! One top-level subcommand per service area (`report`, `case`, `triage`,
//! `remediation`, `advisory`, `notify`, `admin`), each owned by its own module
//! with its clap arguments and handlers; this file only wires them to the
//! shared options.
//!
//! Each service has its own endpoint: `--server` for intake (`report`),
//! `--triage-server` for triage (`case`, `triage`, `admin ... triage`),
//! `--remediation-server` for remediation (`remediation`, `advisory`),
//! `--notification-server` for notification (`notify`).

pub mod admin;
pub mod advisory;
pub mod case;
pub mod client;
pub mod error;
pub mod notify;
pub mod output;
pub mod position;
pub mod remediation;
pub mod report;
pub mod stream;
pub mod triage;

use std::io::Write;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use error::CliError;
use output::OutputFormat;

/// The whole command line.
#[derive(Debug, Parser)]
#[command(name = "psirtctl", version, about = "Command-line client of the PSIRT platform")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes. `global = true` lets them follow the
/// subcommand too (`psirtctl report list --output json`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// gRPC endpoint of the intake service, used by the `report` commands:
    /// `https://host:port` (TLS), `http://host:port` or `host:port` (plaintext).
    #[arg(
        long,
        global = true,
        env = "PSIRT_SERVER",
        default_value = client::DEFAULT_SERVER,
        value_parser = client::parse_server,
    )]
    pub server: String,

    /// gRPC endpoint of the triage service, used by the `case` and `triage`
    /// commands: `https://host:port`, `http://host:port` or `host:port`.
    #[arg(
        long,
        global = true,
        env = "PSIRT_TRIAGE_SERVER",
        default_value = client::DEFAULT_TRIAGE_SERVER,
        value_parser = client::parse_server,
    )]
    pub triage_server: String,

    /// gRPC endpoint of the remediation service, used by the `remediation`
    /// and `advisory` commands: `https://host:port`, `http://host:port` or `host:port`.
    #[arg(
        long,
        global = true,
        env = "PSIRT_REMEDIATION_SERVER",
        default_value = client::DEFAULT_REMEDIATION_SERVER,
        value_parser = client::parse_server,
    )]
    pub remediation_server: String,

    /// gRPC endpoint of the notification service, used by the `notify`
    /// commands: `https://host:port`, `http://host:port` or `host:port`.
    #[arg(
        long,
        global = true,
        env = "PSIRT_NOTIFICATION_SERVER",
        default_value = client::DEFAULT_NOTIFICATION_SERVER,
        value_parser = client::parse_server,
    )]
    pub notification_server: String,

    /// Bearer token sent with every call. Prefer the environment variable:
    /// a command line is visible to every local user.
    // The value is never echoed: not in `--help` (hide_env_values) and not in
    // errors, which is why it is validated later instead of in a value parser.
    #[arg(long, global = true, env = "PSIRT_TOKEN", hide_env_values = true)]
    pub token: Option<client::Token>,

    /// PEM CA certificate(s) to trust for `https://` servers, besides the
    /// system's and the public roots (a private CA).
    #[arg(long, global = true, env = "PSIRT_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<std::path::PathBuf>,

    /// PEM client certificate for servers that require mutual TLS (with
    /// --client-key).
    #[arg(long, global = true, env = "PSIRT_CLIENT_CERT", value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<std::path::PathBuf>,

    /// PEM private key of --client-cert.
    #[arg(long, global = true, env = "PSIRT_CLIENT_KEY", value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<std::path::PathBuf>,

    /// Output format.
    #[arg(long, global = true, env = "PSIRT_OUTPUT", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Deadline for connecting and for each call: `10s`, `500ms`, `2m`, or
    /// plain seconds.
    #[arg(long, global = true, default_value = "10s", value_parser = client::parse_timeout)]
    pub timeout: Duration,

    /// Answer only once the services' read models reflect this stream
    /// position (by default: the position of the last command psirtctl
    /// ran against these servers, kept in $PSIRT_STATE or
    /// $XDG_STATE_HOME/psirtctl/positions).
    #[arg(long, global = true, value_name = "POSITION", conflicts_with = "no_wait")]
    pub min_position: Option<u64>,

    /// Do not wait for the read models to reflect the last command: answer
    /// from them as they are.
    #[arg(long, global = true)]
    pub no_wait: bool,

    /// The positions of this invocation (not an option).
    #[arg(skip)]
    pub session: position::Session,
}

/// Service areas. Each later service adds one variant wrapping its module's
/// own subcommand enum, plus one arm in [`run`].
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Vulnerability reports: submit, inspect, acknowledge, message (intake service).
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Cases: list, show, timeline, watch (case view of the triage service).
    ///
    /// Connects to --triage-server. A case is named by its id (UUID) or its
    /// key (e.g. PSIRT-2026-0001).
    #[command(subcommand)]
    Case(case::CaseCommand),
    /// Triage decisions on a case: assign, assess, accept, reject, ... (triage service).
    ///
    /// Connects to --triage-server. A case is named by its id (UUID) or its
    /// key (e.g. PSIRT-2026-0001), which is looked up first. Every command
    /// takes --expected-version (apply only at that version) and
    /// --request-id (idempotency key; default a new UUID, shown in the
    /// output), and prints the case as the command left it: a short summary,
    /// or with --output json the whole case as {"case": ...}, like `case show`.
    #[command(subcommand)]
    Triage(triage::TriageCommand),
    /// Operations on a running service: rebuild a read model (admin role).
    ///
    /// Connects to the named service's endpoint (--triage-server for triage).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Remediation plans of accepted cases: plan, action, release, status,
    /// verify, overdue (remediation service).
    ///
    /// Connects to --remediation-server; a case key (e.g. PSIRT-2026-0001)
    /// is looked up at --triage-server first, a case id (UUID) is used as it
    /// is. Commands that change the plan take --expected-version (the plan's
    /// version) and --request-id (idempotency key; default a new UUID, shown
    /// in the output), and print the plan as the command left it (with
    /// --output json: the response, {"plan": ...}).
    #[command(subcommand)]
    Remediation(remediation::RemediationCommand),
    /// Security advisories of cases: draft, publish, export, list
    /// (remediation service).
    ///
    /// Connects to --remediation-server; a case key (e.g. PSIRT-2026-0001)
    /// is looked up at --triage-server first. `draft` and `publish` take
    /// --expected-version (the advisory's version) and --request-id.
    #[command(subcommand)]
    Advisory(advisory::AdvisoryCommand),
    /// Notification subscriptions (webhook, e-mail, Jira, ServiceNow) and
    /// their deliveries: subscribe, update, unsubscribe, list, deliveries,
    /// redeliver, tickets (notification service).
    ///
    /// Connects to --notification-server; a case key (e.g. PSIRT-2026-0001)
    /// is looked up at --triage-server first. Commands that change something
    /// take --request-id (idempotency key; default a new UUID, shown in the
    /// output) and, except `subscribe`, --expected-version. A subscription's
    /// destination is one of --webhook URL (with --secret-ref), --email
    /// ADDRESSES, --jira PROJECT or --servicenow TABLE.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
}

/// Runs one parsed command line, writing results to stdout.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let state = position::state_file();
    let platform = position::platform(&cli.global);
    let min_position = match (cli.global.no_wait, cli.global.min_position) {
        (true, _) => None,
        (false, Some(position)) => Some(position),
        (false, None) => state.as_deref().and_then(|file| position::load(file, &platform)),
    };
    let session = cli.global.session.clone();
    session.set_min_position(min_position);
    let mut stdout = std::io::stdout();
    let result = match cli.command {
        Command::Report(command) => report::run(&cli.global, command, &mut stdout).await,
        Command::Case(command) => case::run(&cli.global, command, &mut stdout).await,
        Command::Triage(command) => triage::run(&cli.global, command, &mut stdout).await,
        Command::Admin(command) => admin::run(&cli.global, command, &mut stdout).await,
        Command::Remediation(command) => remediation::run(&cli.global, command, &mut stdout).await,
        Command::Advisory(command) => advisory::run(&cli.global, command, &mut stdout).await,
        Command::Notify(command) => notify::run(&cli.global, command, &mut stdout).await,
    };
    // The last write is what the next reads must show; a position the
    // servers' stream does not have (it was reset) is forgotten.
    if let Some(file) = &state {
        match session.answered() {
            Some(position) => position::save(file, &platform, Some(position)),
            None if session.is_stale() => position::save(file, &platform, None),
            None => {}
        }
    }
    let result = result.and_then(|()| stdout.flush().map_err(CliError::Output));
    match result {
        // `psirtctl report list | head` closing the pipe early is not a failure.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn command_line_definition_is_consistent() {
        // Catches conflicting or dangling argument references (`requires`,
        // `conflicts_with`, groups) that clap only checks in debug builds.
        super::Cli::command().debug_assert();
    }
}
