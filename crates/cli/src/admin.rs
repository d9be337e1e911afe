//! `psirtctl admin ...`: operations on a running service
//! (`psirt.admin.v1.AdminService`, admin role required).
//!
//! `admin rebuild <service>` rebuilds the service's read model in place:
//! the service replays the event stream from sequence 1 and streams its
//! progress, shown as one line that is updated (on a terminal) or one line
//! per update (otherwise) on stderr; the result goes to stdout. Each service
//! is reached at its own endpoint: `triage` at `--triage-server`.

use std::io::{IsTerminal as _, Write};

use clap::{Args, Subcommand, ValueEnum};
use psirt_proto::admin::{RebuildReadModelRequest, RebuildReadModelResponse};

use crate::client::Connection;
use crate::output::{self, OutputFormat};
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
    /// The triage service's case view (`triage-cases`), at --triage-server.
    Triage,
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
        AdminTarget::Triage => &global.triage_server,
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
