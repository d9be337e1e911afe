//! `psirtctl admin ...`: operations on a running service
//! (`psirt.admin.v1.AdminService`, admin role required).
//!
//! `admin rebuild <service>` rebuilds the service's read model in place:
//! the service replays the event stream from sequence 1 and streams its
//! progress, shown as one line that is updated (on a terminal) or one line
//! per update (otherwise) on stderr; the result goes to stdout. Each service
//! is reached at its own endpoint: `triage` at `--triage-server`.
//!
//! `admin parked list|replay <service>` shows the events a service's
//! projections parked (undecodable, or foreign: a type that does not belong
//! to its subject's aggregate) and replays them once their cause is fixed;
//! the service re-checks every replayed event, so a forged one stays parked.

use std::io::{IsTerminal as _, Write};

use clap::{Args, Subcommand, ValueEnum};
use psirt_proto::admin::{
    ListParkedEventsRequest, ListParkedEventsResponse, RebuildReadModelRequest, RebuildReadModelResponse,
    ReplayParkedEventsRequest, ReplayParkedEventsResponse,
};

use crate::client::Connection;
use crate::output::{self, OutputFormat, Table};
use crate::{CliError, GlobalArgs};

/// `psirtctl admin <command>`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Rebuild a service's read model in the running service: reset it and
    /// replay the event stream from sequence 1, showing progress.
    ///
    /// The service stops its projection, replays and then follows the stream
    /// again; reads see the read model partially filled meanwhile. Needs the
    /// admin role. Exits 0 once the replay is done, non-zero if it failed
    /// (repeating it is safe).
    Rebuild(RebuildArgs),
    /// A service's parked events: `list` shows them, `replay` applies them
    /// again once their cause is fixed (a foreign event is never applied).
    #[command(subcommand)]
    Parked(ParkedCommand),
    /// The event stream's settings: `plan` shows a change, `apply` makes it
    /// (connected to NATS with the admin identity, not to a service).
    #[command(subcommand)]
    Stream(crate::stream::StreamCommand),
    /// Make the NATS identities of the admin and the four services: an NKey
    /// seed file each and the public keys for the server's configuration.
    NatsIdentities(crate::stream::IdentitiesArgs),
}

/// Services that serve `AdminService`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AdminTarget {
    /// The intake service (`intake-reports`), at --server.
    Intake,
    /// The triage service's case view (`triage-cases`) and reactions, at --triage-server.
    Triage,
    /// The remediation service, at --remediation-server.
    Remediation,
    /// The notification service, at --notification-server.
    Notification,
}

/// `admin parked <command>`.
#[derive(Debug, Subcommand)]
pub enum ParkedCommand {
    /// List the parked events of a service's projections, oldest first.
    List(ParkedListArgs),
    /// Replay parked events: each is read again from the stream, checked
    /// against its subject's aggregate again, and applied; those that still
    /// fail (or are foreign) stay parked. Exits non-zero if any stayed.
    Replay(ParkedReplayArgs),
}

/// `admin parked list`.
#[derive(Debug, Clone, Args)]
pub struct ParkedListArgs {
    /// Which service.
    #[arg(value_enum)]
    pub service: AdminTarget,
    /// One projection by name (e.g. `intake-reports`); default all of the service's.
    #[arg(long)]
    pub projection: Option<String>,
    /// Most events to show per projection (1..=1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
}

/// `admin parked replay`.
#[derive(Debug, Clone, Args)]
pub struct ParkedReplayArgs {
    /// Which service.
    #[arg(value_enum)]
    pub service: AdminTarget,
    /// One projection by name; default every projection of the service that
    /// has parked events.
    #[arg(long)]
    pub projection: Option<String>,
    /// Only these stream sequences (repeatable; needs --projection); default all.
    #[arg(long = "sequence", requires = "projection")]
    pub sequences: Vec<u64>,
}

/// `admin rebuild`.
#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    /// Which service's read model.
    #[arg(value_enum)]
    pub service: AdminTarget,
    /// The read model by name; default the service's main read model.
    #[arg(long)]
    pub read_model: Option<String>,
}

/// The endpoint of a service from the global options.
pub fn endpoint(global: &GlobalArgs, target: AdminTarget) -> &str {
    match target {
        AdminTarget::Intake => &global.server,
        AdminTarget::Triage => &global.triage_server,
        AdminTarget::Remediation => &global.remediation_server,
        AdminTarget::Notification => &global.notification_server,
    }
}

/// The request of `admin rebuild`.
pub fn rebuild_request(args: &RebuildArgs) -> RebuildReadModelRequest {
    RebuildReadModelRequest { read_model: args.read_model.clone().unwrap_or_default() }
}

/// One progress line: `rebuilding triage-cases: 1200/5000 events (24%)`.
pub fn progress_line(progress: &RebuildReadModelResponse) -> String {
    let name = output::sanitize_line(&progress.read_model);
    if progress.done {
        return format!("rebuilt {name}: replayed {} events", progress.target_sequence);
    }
    let total = progress.target_sequence;
    if total == 0 {
        return format!("rebuilding {name}: starting");
    }
    let applied = progress.applied_sequence.min(total);
    let percent = applied.saturating_mul(100).checked_div(total).unwrap_or(0);
    format!("rebuilding {name}: {applied}/{total} events ({percent}%)")
}

/// Runs one `admin` command.
pub async fn run(global: &GlobalArgs, command: AdminCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        AdminCommand::Rebuild(args) => rebuild(global, args, out).await,
        AdminCommand::Parked(ParkedCommand::List(args)) => parked_list(global, args, out).await,
        AdminCommand::Parked(ParkedCommand::Replay(args)) => parked_replay(global, args, out).await,
        AdminCommand::Stream(command) => crate::stream::run(command, out).await,
        AdminCommand::NatsIdentities(args) => crate::stream::identities(&args, out),
    }
}

async fn rebuild(global: &GlobalArgs, args: RebuildArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut client = Connection::open(global, endpoint(global, args.service)).await?.admin();
    let mut stream = client.rebuild_read_model(rebuild_request(&args)).await?.into_inner();
    let terminal = std::io::stderr().is_terminal();
    let mut last: Option<RebuildReadModelResponse> = None;
    loop {
        let message = match stream.message().await {
            Ok(message) => message,
            Err(status) => {
                if terminal && last.is_some() {
                    eprintln!();
                }
                return Err(status.into());
            }
        };
        let Some(progress) = message else { break };
        let line = progress_line(&progress);
        if !progress.done {
            if terminal {
                eprint!("\r{line}\x1b[K");
            } else {
                eprintln!("{line}");
            }
        }
        last = Some(progress);
    }
    if terminal && last.is_some() {
        eprintln!();
    }
    let Some(done) = last.filter(|p| p.done) else {
        return Err(CliError::Other(anyhow::anyhow!(
            "the server ended the rebuild without reporting it done; check the service's logs"
        )));
    };
    match global.output {
        OutputFormat::Json => output::write_json(out, &done)?,
        OutputFormat::Table => writeln!(out, "{}", progress_line(&done))?,
    }
    Ok(())
}

/// The table of `admin parked list`.
pub fn parked_table(listed: &ListParkedEventsResponse) -> Table {
    let mut table = Table::new(["PROJECTION", "SEQUENCE", "EVENT TYPE", "FOREIGN", "PARKED", "ERROR"]);
    for event in &listed.events {
        table.row([
            output::sanitize_line(&event.projection),
            event.sequence.to_string(),
            output::sanitize_line(event.event_type.rsplit('.').next().unwrap_or(&event.event_type)),
            if event.foreign { "yes" } else { "no" }.to_owned(),
            output::timestamp(event.parked_at.as_ref()),
            output::truncate(&output::sanitize_line(&event.error), 100),
        ]);
    }
    table
}

async fn parked_list(global: &GlobalArgs, args: ParkedListArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut client = Connection::open(global, endpoint(global, args.service)).await?.admin();
    let request = ListParkedEventsRequest {
        projection: args.projection.unwrap_or_default(),
        page_size: args.limit,
        page_token: String::new(),
    };
    let listed = client.list_parked_events(request).await?.into_inner();
    match global.output {
        OutputFormat::Json => output::write_json(out, &listed)?,
        OutputFormat::Table if listed.events.is_empty() => writeln!(out, "no parked events")?,
        OutputFormat::Table => {
            parked_table(&listed).write(out)?;
            if !listed.next_page_token.is_empty() {
                writeln!(out, "(more parked events: raise --limit)")?;
            }
        }
    }
    Ok(())
}

/// The summary line of one projection's replay.
pub fn replay_line(projection: &str, outcome: &ReplayParkedEventsResponse) -> String {
    let mut line = format!(
        "{}: {} replayed, {} still parked, {} refused as foreign",
        output::sanitize_line(projection),
        outcome.replayed.len(),
        outcome.still_parked.len(),
        outcome.refused.len()
    );
    if !outcome.not_parked.is_empty() {
        let list: Vec<String> = outcome.not_parked.iter().map(u64::to_string).collect();
        line.push_str(&format!(", not parked: {}", list.join(", ")));
    }
    line
}

async fn parked_replay(
    global: &GlobalArgs,
    args: ParkedReplayArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut client = Connection::open(global, endpoint(global, args.service)).await?.admin();
    let projections = match args.projection {
        Some(name) => vec![name],
        None => {
            let listed = client.list_parked_events(ListParkedEventsRequest::default()).await?.into_inner();
            let mut names: Vec<String> = listed.events.into_iter().map(|e| e.projection).collect();
            names.dedup();
            names
        }
    };
    let mut left = 0;
    for projection in projections {
        let request =
            ReplayParkedEventsRequest { projection: projection.clone(), sequences: args.sequences.clone() };
        let outcome = client.replay_parked_events(request).await?.into_inner();
        left += outcome.still_parked.len() + outcome.refused.len();
        match global.output {
            OutputFormat::Json => output::write_json(out, &outcome)?,
            OutputFormat::Table => {
                writeln!(out, "{}", replay_line(&projection, &outcome))?;
                for event in outcome.refused.iter().chain(&outcome.still_parked) {
                    writeln!(out, "  {} {}", event.sequence, output::sanitize_line(&event.error))?;
                }
            }
        }
    }
    if left > 0 {
        return Err(CliError::Other(anyhow::anyhow!("{left} events are still parked")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Command};

    #[test]
    fn rebuild_triage_parses_and_uses_the_triage_endpoint() {
        let cli = Cli::try_parse_from(["psirtctl", "admin", "rebuild", "triage", "--triage-server", "h:7"])
            .expect("parses");
        let Command::Admin(AdminCommand::Rebuild(args)) = &cli.command else { panic!("admin rebuild") };
        assert_eq!(args.service, AdminTarget::Triage);
        assert_eq!(endpoint(&cli.global, args.service), "http://h:7");
        assert_eq!(rebuild_request(args).read_model, "");
        assert!(Cli::try_parse_from(["psirtctl", "admin", "rebuild", "nothing"]).is_err());
    }

    #[test]
    fn parked_commands_parse_and_use_each_services_endpoint() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        let cli =
            parse(&["psirtctl", "admin", "parked", "list", "intake", "--server", "h:1"]).expect("parses");
        let Command::Admin(AdminCommand::Parked(ParkedCommand::List(args))) = &cli.command else {
            panic!("admin parked list")
        };
        assert_eq!(endpoint(&cli.global, args.service), "http://h:1");
        assert_eq!((args.projection.as_deref(), args.limit), (None, 100));
        let cli = parse(&[
            "psirtctl",
            "admin",
            "parked",
            "replay",
            "notification",
            "--projection",
            "notification-routing",
            "--sequence",
            "7",
            "--sequence",
            "9",
            "--notification-server",
            "h:4",
        ])
        .expect("parses");
        let Command::Admin(AdminCommand::Parked(ParkedCommand::Replay(args))) = &cli.command else {
            panic!("admin parked replay")
        };
        assert_eq!(endpoint(&cli.global, args.service), "http://h:4");
        assert_eq!(args.sequences, vec![7, 9]);
        assert!(
            parse(&["psirtctl", "admin", "parked", "replay", "triage", "--sequence", "7"]).is_err(),
            "--sequence needs --projection"
        );
        assert!(parse(&["psirtctl", "admin", "parked", "list", "triage", "--limit", "0"]).is_err());
        assert!(parse(&["psirtctl", "admin", "parked", "list", "nothing"]).is_err());
    }

    #[test]
    fn replay_lines() {
        let outcome = ReplayParkedEventsResponse {
            replayed: vec![3, 4],
            refused: vec![psirt_proto::admin::ReplayedEvent { sequence: 5, error: "foreign".to_owned() }],
            still_parked: vec![],
            not_parked: vec![8],
        };
        assert_eq!(
            replay_line("intake-reports", &outcome),
            "intake-reports: 2 replayed, 0 still parked, 1 refused as foreign, not parked: 8"
        );
    }

    #[test]
    fn progress_lines() {
        let mut p = RebuildReadModelResponse {
            read_model: "triage-cases".to_owned(),
            applied_sequence: 250,
            target_sequence: 1000,
            done: false,
        };
        assert_eq!(progress_line(&p), "rebuilding triage-cases: 250/1000 events (25%)");
        p.target_sequence = 0;
        p.applied_sequence = 0;
        assert_eq!(progress_line(&p), "rebuilding triage-cases: starting");
        p.target_sequence = 1000;
        p.done = true;
        assert_eq!(progress_line(&p), "rebuilt triage-cases: replayed 1000 events");
    }
}
