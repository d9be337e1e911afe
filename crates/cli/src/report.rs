//! `psirtctl report ...`: the intake service's reports (submit, get, list,
//! ack, message). Requests are built, and input files read, before
//! connecting, so a bad command line fails fast without a server.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use prost_types::Timestamp;
use psirt_proto::common::{MessageDirection, ReportChannel, Reporter};
use psirt_proto::intake::{
    AcknowledgeReportRequest, AddReporterMessageRequest, GetReportRequest, ListReportsRequest,
    ListReportsResponse, Report, ReportStatus, SubmitReportRequest,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::client::Connection;
use crate::output::{self, OutputFormat, Table};
use crate::{CliError, GlobalArgs};

/// `report list --all` stops after this many reports: enough for any real
/// intake backlog, small enough not to exhaust memory or the server.
const LIST_ALL_MAX_REPORTS: usize = 10_000;

/// Titles are cut to this many characters in `report list`.
const TITLE_COLUMN_CHARS: usize = 60;

/// `psirtctl report <command>`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Submit a new vulnerability report.
    Submit(SubmitArgs),
    /// Show one report, with its messages.
    Get(GetArgs),
    /// List reports, newest first.
    List(ListArgs),
    /// Acknowledge a report to its reporter.
    Ack(AckArgs),
    /// Record a message exchanged with the reporter.
    Message(MessageArgs),
}

/// `report submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Short summary, one line (1..300 characters).
    #[arg(long)]
    pub title: String,
    /// Full description: component, steps to reproduce, impact.
    #[arg(long, required_unless_present = "description_file", conflicts_with = "description_file")]
    pub description: Option<String>,
    /// Read the description from a file; `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    pub description_file: Option<PathBuf>,
    /// Reporter's name.
    #[arg(long, value_name = "NAME")]
    pub reporter_name: Option<String>,
    /// Reporter's e-mail address (needed to acknowledge the report).
    #[arg(long, value_name = "EMAIL")]
    pub reporter_email: Option<String>,
    /// Reporter's organization.
    #[arg(long, value_name = "ORG")]
    pub reporter_org: Option<String>,
    /// How the report reached the PSIRT.
    #[arg(long, value_enum, default_value_t = ChannelArg::Api)]
    pub channel: ChannelArg,
    /// Affected product (key, purl or free text); repeat for several.
    #[arg(long = "product", value_name = "PRODUCT")]
    pub products: Vec<String>,
    /// Suggested CVSS vector (`CVSS:3.1/...` or `CVSS:4.0/...`).
    #[arg(long, value_name = "VECTOR")]
    pub cvss: Option<String>,
    /// Requested disclosure date (RFC 3339, e.g. 2030-01-31T00:00:00Z).
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    pub disclosure_at: Option<Timestamp>,
    /// Identifier in the source: advisory id, ticket id, Message-ID.
    #[arg(long, value_name = "ID")]
    pub external_reference: Option<String>,
    /// Idempotency key; reuse the one printed by a failed attempt to retry
    /// without creating a second report. Default: a new UUID.
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
}

/// `report get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Id of the report (UUID).
    pub report_id: String,
}

/// `report list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only reports in this state.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Only reports received through this channel.
    #[arg(long, value_enum)]
    pub channel: Option<ChannelArg>,
    /// Only reports received at or after this time (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    pub since: Option<Timestamp>,
    /// Only reports received before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    pub until: Option<Timestamp>,
    /// Reports per page (server default 50, at most 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub page_size: Option<i32>,
    /// Continue from the `next page token` of an earlier listing.
    #[arg(long, value_name = "TOKEN")]
    pub page_token: Option<String>,
    /// Follow page tokens and show every matching report (at most 10000).
    #[arg(long)]
    pub all: bool,
}

/// `report ack`.
#[derive(Debug, Args)]
pub struct AckArgs {
    /// Id of the report (UUID).
    pub report_id: String,
    /// Acknowledgement text for the reporter. Default: the server's template.
    #[arg(long)]
    pub message: Option<String>,
    /// Apply only if the report is still at this version.
    #[arg(long, value_name = "N")]
    pub expected_version: Option<u64>,
    /// Idempotency key. Default: a new UUID.
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
}

/// `report message`.
#[derive(Debug, Args)]
pub struct MessageArgs {
    /// Id of the report (UUID).
    pub report_id: String,
    /// Message text (plain text or Markdown).
    #[arg(long, required_unless_present = "body_file", conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Read the message text from a file; `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// Who wrote it: the reporter (inbound) or the PSIRT (outbound).
    #[arg(long, value_enum, default_value_t = DirectionArg::Outbound)]
    pub direction: DirectionArg,
    /// Author's name. Default: the caller's identity on the server.
    #[arg(long)]
    pub author: Option<String>,
    /// Apply only if the report is still at this version.
    #[arg(long, value_name = "N")]
    pub expected_version: Option<u64>,
    /// Idempotency key. Default: a new UUID.
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
}

/// `--channel` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChannelArg {
    Web,
    Email,
    Api,
    Feed,
    Internal,
}

impl From<ChannelArg> for ReportChannel {
    fn from(channel: ChannelArg) -> Self {
        match channel {
            ChannelArg::Web => ReportChannel::Web,
            ChannelArg::Email => ReportChannel::Email,
            ChannelArg::Api => ReportChannel::Api,
            ChannelArg::Feed => ReportChannel::Feed,
            ChannelArg::Internal => ReportChannel::Internal,
        }
    }
}

/// `--status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Received,
    Acknowledged,
}

impl From<StatusArg> for ReportStatus {
    fn from(status: StatusArg) -> Self {
        match status {
            StatusArg::Received => ReportStatus::Received,
            StatusArg::Acknowledged => ReportStatus::Acknowledged,
        }
    }
}

/// `--direction` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    Inbound,
    Outbound,
}

impl From<DirectionArg> for MessageDirection {
    fn from(direction: DirectionArg) -> Self {
        match direction {
            DirectionArg::Inbound => MessageDirection::Inbound,
            DirectionArg::Outbound => MessageDirection::Outbound,
        }
    }
}

/// Parses an RFC 3339 time into a protobuf timestamp.
pub fn parse_timestamp(value: &str) -> Result<Timestamp, String> {
    let t = OffsetDateTime::parse(value.trim(), &Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time like 2030-01-31T00:00:00Z: {e}"))?;
    let nanos = i32::try_from(t.nanosecond()).map_err(|_| "nanoseconds out of range".to_owned())?;
    Ok(Timestamp { seconds: t.unix_timestamp(), nanos })
}

/// Runs one `report` command.
pub async fn run(global: &GlobalArgs, command: ReportCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        ReportCommand::Submit(args) => submit(global, args, out).await,
        ReportCommand::Get(args) => get(global, args, out).await,
        ReportCommand::List(args) => list(global, args, out).await,
        ReportCommand::Ack(args) => ack(global, args, out).await,
        ReportCommand::Message(args) => message(global, args, out).await,
    }
}

/// The given idempotency key, or a new one. Generated once per invocation
/// and printed, so the user can retry a call whose answer got lost.
pub(crate) fn request_id(given: Option<String>) -> String {
    given.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Text from `--x` or `--x-file` (`-` = stdin); clap ensures exactly one.
async fn text_argument(inline: Option<String>, file: Option<&Path>, what: &str) -> Result<String, CliError> {
    match (inline, file) {
        (Some(text), _) => Ok(text),
        (None, Some(path)) if path == Path::new("-") => {
            // A blocking read is fine: nothing else runs yet, and the
            // workspace's tokio lacks the `io-std` feature.
            std::io::read_to_string(std::io::stdin())
                .map_err(|e| CliError::Usage(format!("cannot read the {what} from standard input: {e}")))
        }
        (None, Some(path)) => tokio::fs::read_to_string(path)
            .await
            .map_err(|e| CliError::Usage(format!("cannot read the {what} from {}: {e}", path.display()))),
        (None, None) => Err(CliError::Usage(format!("the {what} is missing"))),
    }
}

async fn submit(global: &GlobalArgs, args: SubmitArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let description =
        text_argument(args.description, args.description_file.as_deref(), "description").await?;
    let reporter = Reporter {
        name: args.reporter_name.unwrap_or_default(),
        email: args.reporter_email.unwrap_or_default(),
        organization: args.reporter_org.unwrap_or_default(),
    };
    let request_id = request_id(args.request_id);
    let request = SubmitReportRequest {
        request_id: request_id.clone(),
        title: args.title,
        description,
        // An anonymous report has no reporter at all rather than an empty one.
        reporter: (reporter != Reporter::default()).then_some(reporter),
        channel: ReportChannel::from(args.channel) as i32,
        affected_products: args.products,
        suggested_cvss_vector: args.cvss.unwrap_or_default(),
        requested_disclosure_at: args.disclosure_at,
        external_reference: args.external_reference.unwrap_or_default(),
    };
    let mut client = Connection::open(global, &global.server).await?.intake();
    let response = match client.submit_report(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            // After a timeout or a broken connection the report may have been
            // stored anyway: the same request id makes a retry safe.
            if crate::error::may_have_been_applied(&status) {
                eprintln!("to retry without a second report: --request-id {request_id}");
            }
            return Err(status.into());
        }
    };
    match global.output {
        OutputFormat::Json => output::write_json(out, &response),
        OutputFormat::Table => {
            let duplicates = if response.suspected_duplicate_report_ids.is_empty() {
                "none".to_owned()
            } else {
                response.suspected_duplicate_report_ids.join(", ")
            };
            output::write_fields(
                out,
                &[
                    ("Report ID", response.report_id),
                    ("Case ID", response.case_id),
                    ("Request ID", request_id),
                    ("Suspected duplicates", duplicates),
                ],
            )?;
            Ok(())
        }
    }
}

async fn get(global: &GlobalArgs, args: GetArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut client = Connection::open(global, &global.server).await?.intake();
    let response = client.get_report(GetReportRequest { report_id: args.report_id }).await?.into_inner();
    match global.output {
        OutputFormat::Json => output::write_json(out, &response),
        OutputFormat::Table => {
            let report = response.report.unwrap_or_default();
            write_report(out, &report)?;
            Ok(())
        }
    }
}

async fn list(global: &GlobalArgs, args: ListArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut request = ListReportsRequest {
        page_size: args.page_size.unwrap_or(0),
        page_token: args.page_token.unwrap_or_default(),
        status: args.status.map_or(ReportStatus::Unspecified, ReportStatus::from) as i32,
        channel: args.channel.map_or(ReportChannel::Unspecified, ReportChannel::from) as i32,
        received_after: args.since,
        received_before: args.until,
    };
    let mut client = Connection::open(global, &global.server).await?.intake();
    let mut page = client.list_reports(request.clone()).await?.into_inner();
    if args.all {
        let mut reports = std::mem::take(&mut page.reports);
        while !page.next_page_token.is_empty() && reports.len() < LIST_ALL_MAX_REPORTS {
            if page.next_page_token == request.page_token {
                // A server that hands back the same token would loop forever.
                return Err(CliError::Other(anyhow::anyhow!("the server repeated a page token")));
            }
            request.page_token = std::mem::take(&mut page.next_page_token);
            page = client.list_reports(request.clone()).await?.into_inner();
            reports.append(&mut page.reports);
        }
        if !page.next_page_token.is_empty() {
            eprintln!(
                "stopped after {} reports; continue with --page-token {}",
                reports.len(),
                page.next_page_token
            );
        }
        page = ListReportsResponse { reports, next_page_token: page.next_page_token };
    }
    match global.output {
        OutputFormat::Json => output::write_json(out, &page),
        OutputFormat::Table => {
            write_report_table(out, &page.reports)?;
            if !args.all && !page.next_page_token.is_empty() {
                // On stderr: stdout stays just the table for `grep`/`wc`.
                eprintln!("more reports: --page-token {} (or --all)", page.next_page_token);
            }
            Ok(())
        }
    }
}

async fn ack(global: &GlobalArgs, args: AckArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let request_id = request_id(args.request_id);
    let request = AcknowledgeReportRequest {
        report_id: args.report_id,
        request_id: request_id.clone(),
        expected_version: args.expected_version,
        message: args.message,
    };
    let mut client = Connection::open(global, &global.server).await?.intake();
    let response = client.acknowledge_report(request).await?.into_inner();
    match global.output {
        OutputFormat::Json => output::write_json(out, &response),
        OutputFormat::Table => {
            let report = response.report.unwrap_or_default();
            output::write_fields(
                out,
                &[
                    ("Report ID", report.report_id.clone()),
                    ("Status", status_label(&report)),
                    ("Acknowledged at", output::timestamp(report.acknowledged_at.as_ref())),
                    ("Version", report.version.to_string()),
                    ("Request ID", request_id),
                ],
            )?;
            Ok(())
        }
    }
}

async fn message(global: &GlobalArgs, args: MessageArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let body = text_argument(args.body, args.body_file.as_deref(), "message text").await?;
    let request_id = request_id(args.request_id);
    let request = AddReporterMessageRequest {
        report_id: args.report_id,
        request_id: request_id.clone(),
        direction: MessageDirection::from(args.direction) as i32,
        author: args.author.unwrap_or_default(),
        body,
        expected_version: args.expected_version,
    };
    let mut client = Connection::open(global, &global.server).await?.intake();
    let response = client.add_reporter_message(request).await?.into_inner();
    match global.output {
        OutputFormat::Json => output::write_json(out, &response),
        OutputFormat::Table => {
            let report = response.report.unwrap_or_default();
            output::write_fields(
                out,
                &[
                    ("Message ID", response.message_id),
                    ("Report ID", report.report_id.clone()),
                    ("Version", report.version.to_string()),
                    ("Request ID", request_id),
                ],
            )?;
            Ok(())
        }
    }
}

fn status_label(report: &Report) -> String {
    let name = ReportStatus::try_from(report.status).ok().map(|s| s.as_str_name());
    output::enum_label(name, "REPORT_STATUS_", report.status)
}

fn channel_label(channel: i32) -> String {
    let name = ReportChannel::try_from(channel).ok().map(|c| c.as_str_name());
    output::enum_label(name, "REPORT_CHANNEL_", channel)
}

fn direction_label(direction: i32) -> String {
    let name = MessageDirection::try_from(direction).ok().map(|d| d.as_str_name());
    output::enum_label(name, "MESSAGE_DIRECTION_", direction)
}

fn reporter_label(reporter: Option<&Reporter>) -> String {
    let Some(r) = reporter else { return "-".to_owned() };
    let mut parts = Vec::new();
    if !r.name.is_empty() {
        parts.push(r.name.clone());
    }
    if !r.email.is_empty() {
        parts.push(format!("<{}>", r.email));
    }
    if !r.organization.is_empty() {
        parts.push(format!("({})", r.organization));
    }
    if parts.is_empty() { "-".to_owned() } else { parts.join(" ") }
}

fn write_report_table(out: &mut dyn Write, reports: &[Report]) -> std::io::Result<()> {
    if reports.is_empty() {
        return writeln!(out, "No reports found.");
    }
    let mut table = Table::new(["REPORT ID", "STATUS", "CHANNEL", "RECEIVED", "TITLE"]);
    for report in reports {
        table.row([
            report.report_id.clone(),
            status_label(report),
            channel_label(report.channel),
            output::timestamp(report.received_at.as_ref()),
            output::truncate(&output::sanitize_line(&report.title), TITLE_COLUMN_CHARS),
        ]);
    }
    table.write(out)
}

fn write_report(out: &mut dyn Write, report: &Report) -> std::io::Result<()> {
    let list = |items: &[String]| if items.is_empty() { "-".to_owned() } else { items.join(", ") };
    output::write_fields(
        out,
        &[
            ("Report ID", report.report_id.clone()),
            ("Case ID", output::or_dash(&report.case_id)),
            ("Status", status_label(report)),
            ("Version", report.version.to_string()),
            ("Title", report.title.clone()),
            ("Channel", channel_label(report.channel)),
            ("Reporter", reporter_label(report.reporter.as_ref())),
            ("Products", list(&report.affected_products)),
            ("CVSS", output::or_dash(&report.suggested_cvss_vector)),
            ("Disclosure at", output::timestamp(report.requested_disclosure_at.as_ref())),
            ("External reference", output::or_dash(&report.external_reference)),
            ("Received at", output::timestamp(report.received_at.as_ref())),
            ("Acknowledged at", output::timestamp(report.acknowledged_at.as_ref())),
            ("Suspected duplicates", list(&report.suspected_duplicate_report_ids)),
        ],
    )?;
    writeln!(out)?;
    writeln!(out, "Description:")?;
    if report.description.trim().is_empty() {
        writeln!(out, "  -")?;
    } else {
        output::write_block(out, &report.description, 2)?;
    }
    writeln!(out)?;
    writeln!(out, "Messages ({}):", report.messages.len())?;
    for message in &report.messages {
        writeln!(
            out,
            "  {}  {}  {}",
            output::timestamp(message.sent_at.as_ref()),
            direction_label(message.direction),
            output::sanitize_line(&message.author)
        )?;
        output::write_block(out, &message.body, 4)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn parse(args: &[&str]) -> Result<crate::Cli, clap::Error> {
        crate::Cli::try_parse_from(std::iter::once("psirtctl").chain(args.iter().copied()))
    }

    #[test]
    fn timestamps_parse_rfc3339() {
        let ts = parse_timestamp("2024-05-01T12:00:00.5+02:00").expect("valid");
        assert_eq!(ts, Timestamp { seconds: 1_714_557_600, nanos: 500_000_000 });
        assert!(parse_timestamp("2024-05-01").is_err());
    }

    #[test]
    fn submit_needs_exactly_one_description() {
        assert!(parse(&["report", "submit", "--title", "t"]).is_err());
        assert!(
            parse(&["report", "submit", "--title", "t", "--description", "d", "--description-file", "f"])
                .is_err()
        );
        let cli = parse(&[
            "report",
            "submit",
            "--title",
            "t",
            "--description-file",
            "-",
            "--product",
            "a",
            "--product",
            "b",
        ])
        .expect("valid");
        let crate::Command::Report(ReportCommand::Submit(args)) = cli.command else { panic!("not submit") };
        assert_eq!(args.products, ["a", "b"]);
        assert_eq!(args.channel, ChannelArg::Api);
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&["report", "list", "--output", "json", "--server", "h:1", "--all"]).expect("valid");
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.server, "http://h:1");
        assert!(parse(&["report", "list", "--page-size", "0"]).is_err());
    }

    #[test]
    fn report_block_shows_messages() {
        let report = Report {
            report_id: "r1".to_owned(),
            status: ReportStatus::Acknowledged as i32,
            title: "XSS".to_owned(),
            channel: ReportChannel::Web as i32,
            description: "line 1\nline 2".to_owned(),
            messages: vec![psirt_proto::intake::ReporterMessage {
                direction: MessageDirection::Outbound as i32,
                author: "psirt".to_owned(),
                body: "thanks".to_owned(),
                ..Default::default()
            }],
            ..Report::default()
        };
        let mut buf = Vec::new();
        write_report(&mut buf, &report).expect("write");
        let text = String::from_utf8(buf).expect("utf-8");
        assert!(text.contains("Status:                acknowledged\n"), "{text}");
        assert!(text.contains("Channel:               web\n"), "{text}");
        assert!(text.contains("Description:\n  line 1\n  line 2\n"), "{text}");
        assert!(text.contains("Messages (1):\n  -  outbound  psirt\n    thanks\n"), "{text}");
    }
}
