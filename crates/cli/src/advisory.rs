//! `psirtctl advisory ...`: one command per `AdvisoryService` RPC of the
//! remediation service (`--remediation-server`): draft, publish, export and
//! list the security advisory of a case. A case is named by its id or its
//! key (looked up at `--triage-server` first, like the `triage` commands).
//!
//! `draft` and `publish` take `--expected-version` (the advisory's version)
//! and `--request-id`, and print the advisory as the command left it.
//! Requests are built by pure functions from the parsed arguments
//! ([`AdvisoryCommand::build`]); malformed values (tracking ids, credits,
//! URLs) are refused while parsing, before connecting.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Subcommand, ValueEnum};
use psirt_proto::events::{Acknowledgment, AdvisoryContent, AdvisoryFormat};
use psirt_proto::remediation::{
    Advisory, AdvisoryState, DraftAdvisoryRequest, ExportAdvisoryRequest, ExportFormat,
    ListAdvisoriesRequest, ListAdvisoriesResponse, PublishAdvisoryRequest,
};

use crate::client::Connection;
use crate::output::{self, OutputFormat, Table};
use crate::remediation::{Target, parse_https_url, resolve_case};
use crate::{CliError, GlobalArgs};

/// `psirtctl advisory <command>`.
#[derive(Debug, Subcommand)]
pub enum AdvisoryCommand {
    /// Draft the advisory of a case, or replace the draft's text.
    Draft(DraftArgs),
    /// Publish the advisory (first 1.0.0, later revisions with
    /// --change-summary). Refused during the embargo unless an admin gives
    /// --override-reason, and while an affected product has no status.
    Publish(PublishArgs),
    /// Export the advisory as a document (CSAF, CVE JSON 5, OSV, OpenVEX),
    /// byte for byte as the server made it: to stdout, or to --out.
    Export(ExportArgs),
    /// List advisories, most recently changed first.
    List(ListArgs),
}

/// `advisory draft`. The draft's text is replaced as a whole.
#[derive(Debug, Args)]
pub struct DraftArgs {
    #[command(flatten)]
    pub target: Target,
    /// Title (1..300 characters).
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub title: String,
    /// Short summary (1..2000 characters).
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub summary: String,
    /// Full description of the vulnerability and its impact (plain text or Markdown).
    #[arg(long, value_name = "TEXT", conflicts_with = "details_file")]
    pub details: Option<String>,
    /// Read the details from a file; `-` reads standard input.
    #[arg(long, value_name = "PATH")]
    pub details_file: Option<PathBuf>,
    /// Workarounds and mitigations customers can apply before updating.
    #[arg(long, value_name = "TEXT")]
    pub workarounds: Option<String>,
    /// Public tracking id, e.g. ACME-SA-2026-0001 (1..100 characters of
    /// A-Z a-z 0-9 . _ -). Default: the current one, or on the first draft
    /// one derived from the case key.
    #[arg(long, value_name = "ID", value_parser = parse_tracking_id)]
    pub tracking_id: Option<String>,
    /// Credit: 'NAME[;ORG][;consent]'; `consent` as the last part means the
    /// person agreed to be credited by name. Repeat for several.
    #[arg(long = "credit", value_name = "CREDIT", value_parser = parse_credit)]
    pub credits: Vec<Acknowledgment>,
    /// Reference URL (https); repeat for several.
    #[arg(long = "reference", value_name = "URL", value_parser = parse_https_url)]
    pub references: Vec<String>,
}

/// `advisory publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub target: Target,
    /// Format to produce; repeat for several. Default: all four.
    #[arg(long = "format", value_enum, value_name = "FORMAT")]
    pub formats: Vec<PublishFormatArg>,
    /// Why the advisory is published before the embargo ends (admin only).
    #[arg(long, value_name = "TEXT", value_parser = NonEmptyStringValueParser::new())]
    pub override_reason: Option<String>,
    /// What changed (required for a revision, i.e. after the first publication).
    #[arg(long, value_name = "TEXT", value_parser = NonEmptyStringValueParser::new())]
    pub change_summary: Option<String>,
}

/// `advisory export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The case: its id (UUID) or its key (e.g. PSIRT-2026-0001).
    #[arg(value_name = "CASE", value_parser = NonEmptyStringValueParser::new())]
    pub case: String,
    /// Document format.
    #[arg(long, value_enum)]
    pub format: ExportFormatArg,
    /// Write the document to this file (atomically: a temporary file next to
    /// it, then renamed) instead of stdout; the path and media type go to stderr.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `advisory list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only advisories in this state.
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// Advisories per page (server default 100, at most 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub page_size: Option<i32>,
    /// Continue from the page token printed by an earlier listing.
    #[arg(long, value_name = "TOKEN")]
    pub page_token: Option<String>,
}

/// `publish --format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum PublishFormatArg {
    /// CSAF 2.0 (also written to the CSAF provider directory).
    Csaf,
    /// CVE JSON 5 record.
    Cve,
    /// OSV entry.
    Osv,
    /// OpenVEX document.
    Openvex,
}

/// `export --format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormatArg {
    /// CSAF 2.0, profile csaf_security_advisory.
    Csaf,
    /// CSAF 2.0, profile csaf_vex.
    CsafVex,
    /// CVE JSON 5 record.
    Cve,
    /// OSV entry.
    Osv,
    /// OpenVEX document.
    Openvex,
}

/// `list --state` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// Drafted, never published.
    Draft,
    /// Published.
    Published,
}

impl From<PublishFormatArg> for AdvisoryFormat {
    fn from(value: PublishFormatArg) -> Self {
        match value {
            PublishFormatArg::Csaf => AdvisoryFormat::Csaf,
            PublishFormatArg::Cve => AdvisoryFormat::CveJson,
            PublishFormatArg::Osv => AdvisoryFormat::Osv,
            PublishFormatArg::Openvex => AdvisoryFormat::Openvex,
        }
    }
}

impl From<ExportFormatArg> for ExportFormat {
    fn from(value: ExportFormatArg) -> Self {
        match value {
            ExportFormatArg::Csaf => ExportFormat::Csaf20,
            ExportFormatArg::CsafVex => ExportFormat::CsafVex,
            ExportFormatArg::Cve => ExportFormat::CveJson5,
            ExportFormatArg::Osv => ExportFormat::Osv,
            ExportFormatArg::Openvex => ExportFormat::Openvex,
        }
    }
}

impl From<StateArg> for AdvisoryState {
    fn from(value: StateArg) -> Self {
        match value {
            StateArg::Draft => AdvisoryState::Draft,
            StateArg::Published => AdvisoryState::Published,
        }
    }
}

/// A tracking id: 1..100 characters of `[A-Za-z0-9._-]`.
pub fn parse_tracking_id(value: &str) -> Result<String, String> {
    let value = value.trim();
    let ok = (1..=100).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(value.to_owned())
    } else {
        Err("1 to 100 characters of A-Z a-z 0-9 . _ - (e.g. ACME-SA-2026-0001)".to_owned())
    }
}

/// Parses `--credit`: `NAME`, `NAME;ORG`, `NAME;consent` or
/// `NAME;ORG;consent`. A last part `consent` (any case) sets the consent.
pub fn parse_credit(value: &str) -> Result<Acknowledgment, String> {
    let mut parts: Vec<&str> = value.split(';').map(str::trim).collect();
    let consent = parts.len() > 1 && parts.last().is_some_and(|p| p.eq_ignore_ascii_case("consent"));
    if consent {
        parts.pop();
    }
    let (name, organization) = match parts.as_slice() {
        [name] => (*name, ""),
        [name, organization] => (*name, *organization),
        _ => return Err("expected NAME[;ORG][;consent], e.g. 'Jane Doe;Example Research;consent'".to_owned()),
    };
    if name.is_empty() {
        return Err("the name to credit is empty".to_owned());
    }
    if name.chars().count() > 200 || organization.chars().count() > 200 {
        return Err("name and organization are at most 200 characters each".to_owned());
    }
    Ok(Acknowledgment {
        name: name.to_owned(),
        organization: organization.to_owned(),
        url: String::new(),
        consent,
    })
}

/// The request of one `advisory` command, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub enum AdvisoryRequest {
    Draft(DraftAdvisoryRequest),
    Publish(PublishAdvisoryRequest),
    Export(ExportAdvisoryRequest),
    List(ListAdvisoriesRequest),
}

impl AdvisoryCommand {
    /// The case argument and controls of `draft` and `publish`.
    pub fn target(&self) -> Option<&Target> {
        match self {
            AdvisoryCommand::Draft(a) => Some(&a.target),
            AdvisoryCommand::Publish(a) => Some(&a.target),
            AdvisoryCommand::Export(_) | AdvisoryCommand::List(_) => None,
        }
    }

    /// The case argument (id or key), if the command takes one.
    pub fn case(&self) -> Option<&str> {
        match self {
            AdvisoryCommand::Export(a) => Some(&a.case),
            AdvisoryCommand::List(_) => None,
            _ => self.target().map(|t| t.case.as_str()),
        }
    }

    /// The request for the case `case_id` (already resolved from a key;
    /// ignored by `list`) with idempotency key `request_id` (ignored by the
    /// reads). `draft --details-file` must have been read into `--details`
    /// by now (see [`run`]).
    pub fn build(&self, case_id: String, request_id: String) -> AdvisoryRequest {
        let expected_version = self.target().and_then(|t| t.expected_version);
        let text = |t: &Option<String>| t.clone().unwrap_or_default();
        match self {
            AdvisoryCommand::Draft(a) => AdvisoryRequest::Draft(DraftAdvisoryRequest {
                case_id,
                request_id,
                expected_version,
                tracking_id: text(&a.tracking_id),
                content: Some(AdvisoryContent {
                    title: a.title.clone(),
                    summary: a.summary.clone(),
                    details: text(&a.details),
                    workarounds: text(&a.workarounds),
                    acknowledgments: a.credits.clone(),
                    references: a.references.clone(),
                }),
            }),
            AdvisoryCommand::Publish(a) => {
                // Each format once, in a stable order.
                let formats: BTreeSet<PublishFormatArg> = a.formats.iter().copied().collect();
                AdvisoryRequest::Publish(PublishAdvisoryRequest {
                    case_id,
                    request_id,
                    expected_version,
                    formats: formats.into_iter().map(|f| AdvisoryFormat::from(f) as i32).collect(),
                    embargo_override_reason: text(&a.override_reason),
                    change_summary: text(&a.change_summary),
                })
            }
            AdvisoryCommand::Export(a) => AdvisoryRequest::Export(ExportAdvisoryRequest {
                case_id,
                format: ExportFormat::from(a.format) as i32,
            }),
            AdvisoryCommand::List(a) => AdvisoryRequest::List(ListAdvisoriesRequest {
                state: a.state.map_or(AdvisoryState::Unspecified, AdvisoryState::from) as i32,
                page_size: a.page_size.unwrap_or(0),
                page_token: text(&a.page_token),
            }),
        }
    }
}

/// Reads `--details-file` (`-` = stdin).
fn read_details(path: &Path) -> Result<String, CliError> {
    if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| CliError::Usage(format!("cannot read the details from standard input: {e}")))
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("cannot read the details from {}: {e}", path.display())))
    }
}

/// Writes `bytes` to `path` atomically: into a new temporary file in the
/// same directory, flushed to disk, then renamed over `path`, so a reader
/// never sees a partial document and a failure leaves any old file intact.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a file name", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let temp = dir.join(temp_name);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        // Best effort: the temporary file may not even exist.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Runs one `advisory` command.
pub async fn run(
    global: &GlobalArgs,
    mut command: AdvisoryCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if let AdvisoryCommand::Draft(args) = &mut command
        && let Some(path) = args.details_file.take()
    {
        args.details = Some(read_details(&path)?);
    }
    let request_id = crate::report::request_id(command.target().and_then(|t| t.request_id.clone()));
    let case_id = match command.case() {
        Some(case) => resolve_case(global, case).await?,
        None => String::new(),
    };
    let request = command.build(case_id, request_id.clone());
    let connection = Connection::open(global, &global.remediation_server).await?;
    let mut client = connection.advisories();
    let retry_hint = |status: tonic::Status| {
        if crate::error::may_have_been_applied(&status) {
            eprintln!("to retry safely: --request-id {request_id}");
        }
        CliError::from(status)
    };
    match request {
        AdvisoryRequest::Draft(r) => {
            let response = client.draft_advisory(r).await.map_err(retry_hint)?.into_inner();
            write_changed(global, out, &response, response.advisory.as_ref(), &request_id)
        }
        AdvisoryRequest::Publish(r) => {
            let response = client.publish_advisory(r).await.map_err(retry_hint)?.into_inner();
            write_changed(global, out, &response, response.advisory.as_ref(), &request_id)
        }
        AdvisoryRequest::Export(r) => {
            let response = client.export_advisory(r).await?.into_inner();
            match &command {
                AdvisoryCommand::Export(ExportArgs { out: Some(path), .. }) => {
                    write_atomically(path, &response.document).map_err(|e| {
                        CliError::Other(anyhow::anyhow!("cannot write {}: {e}", path.display()))
                    })?;
                    eprintln!(
                        "wrote {} ({})",
                        path.display(),
                        output::sanitize_line(&output::or_dash(&response.media_type))
                    );
                    Ok(())
                }
                // The document as returned, whatever --output says: it is
                // the format's own JSON.
                _ => {
                    out.write_all(&response.document)?;
                    Ok(())
                }
            }
        }
        AdvisoryRequest::List(r) => {
            let page = client.list_advisories(r).await?.into_inner();
            match global.output {
                OutputFormat::Json => output::write_json(out, &page),
                OutputFormat::Table => {
                    write_advisory_table(out, &page)?;
                    if !page.next_page_token.is_empty() {
                        eprintln!("more advisories: --page-token {}", page.next_page_token);
                    }
                    Ok(())
                }
            }
        }
    }
}

/// The result of `draft` or `publish`: the response as JSON, or the
/// advisory with the request id.
fn write_changed<M>(
    global: &GlobalArgs,
    out: &mut dyn Write,
    response: &M,
    advisory: Option<&Advisory>,
    request_id: &str,
) -> Result<(), CliError>
where
    M: prost::Message + prost::Name,
{
    match global.output {
        OutputFormat::Json => output::write_json(out, response),
        OutputFormat::Table => {
            write_advisory(out, advisory.unwrap_or(&Advisory::default()), Some(request_id))?;
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

pub fn state_label(state: i32) -> String {
    let name = AdvisoryState::try_from(state).ok().map(|s| s.as_str_name());
    output::enum_label(name, "ADVISORY_STATE_", state)
}

/// `csaf`, `cve`, `osv`, `openvex`: the `--format` values of `publish`.
pub fn format_label(format: i32) -> String {
    match AdvisoryFormat::try_from(format) {
        Ok(AdvisoryFormat::CveJson) => "cve".to_owned(),
        other => output::enum_label(other.ok().map(|f| f.as_str_name()), "ADVISORY_FORMAT_", format),
    }
}

/// The advisory as a key/value block; with the request id of the command
/// that changed it.
pub fn write_advisory(
    out: &mut dyn Write,
    advisory: &Advisory,
    request_id: Option<&str>,
) -> std::io::Result<()> {
    let content = advisory.content.clone().unwrap_or_default();
    let formats: Vec<String> = advisory.formats.iter().map(|f| format_label(*f)).collect();
    let mut fields = vec![
        ("Advisory ID", output::or_dash(&advisory.advisory_id)),
        ("Case ID", output::or_dash(&advisory.case_id)),
        ("Case key", output::or_dash(&advisory.case_key)),
        ("Tracking ID", output::or_dash(&advisory.tracking_id)),
        ("State", state_label(advisory.state)),
        ("Published version", output::or_dash(&advisory.published_version)),
        ("Formats", if formats.is_empty() { "-".to_owned() } else { formats.join(", ") }),
        ("Title", output::or_dash(&content.title)),
        ("Credits", content.acknowledgments.len().to_string()),
        ("References", content.references.len().to_string()),
        ("Version", advisory.version.to_string()),
        ("Updated", output::timestamp(advisory.updated_at.as_ref())),
    ];
    if !advisory.embargo_override_reason.is_empty() {
        fields.push(("Embargo override", advisory.embargo_override_reason.clone()));
    }
    if let Some(id) = request_id {
        fields.push(("Request ID", id.to_owned()));
    }
    output::write_fields(out, &fields)?;
    if !advisory.revisions.is_empty() {
        writeln!(out, "\nRevisions:")?;
        let mut table = Table::new(["VERSION", "DATE", "SUMMARY"]);
        for r in &advisory.revisions {
            table.row([r.version.clone(), output::timestamp(r.date.as_ref()), output::or_dash(&r.summary)]);
        }
        table.write_indented(out, 2)?;
    }
    Ok(())
}

/// One row per advisory.
pub fn write_advisory_table(out: &mut dyn Write, page: &ListAdvisoriesResponse) -> std::io::Result<()> {
    if page.advisories.is_empty() {
        return writeln!(out, "No advisories found.");
    }
    let mut table = Table::new(["TRACKING ID", "CASE", "STATE", "PUBLISHED", "VERSION", "UPDATED", "TITLE"]);
    for a in &page.advisories {
        table.row([
            output::or_dash(&a.tracking_id),
            if a.case_key.is_empty() { a.case_id.clone() } else { a.case_key.clone() },
            state_label(a.state),
            output::or_dash(&a.published_version),
            a.version.to_string(),
            output::timestamp(a.updated_at.as_ref()),
            output::truncate(&a.content.as_ref().map(|c| c.title.clone()).unwrap_or_default(), 60),
        ]);
    }
    table.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;
    use psirt_proto::remediation::Revision;

    const CASE: &str = "0190f5a4-0000-4000-8000-000000000001";

    fn parse(args: &[&str]) -> Result<crate::Cli, clap::Error> {
        crate::Cli::try_parse_from(["psirtctl", "advisory"].into_iter().chain(args.iter().copied()))
    }

    fn command(args: &[&str]) -> AdvisoryCommand {
        match parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}")).command {
            crate::Command::Advisory(command) => command,
            other => panic!("not an advisory command: {other:?}"),
        }
    }

    fn request(args: &[&str]) -> AdvisoryRequest {
        command(args).build("c1".to_owned(), "r1".to_owned())
    }

    #[test]
    fn draft_and_publish_take_the_common_options() {
        for sub in [&["draft", "--title", "t", "--summary", "s"][..], &["publish"]] {
            let mut args =
                vec![sub[0], "PSIRT-2026-0007", "--expected-version", "3", "--request-id", "req-1"];
            args.extend_from_slice(&sub[1..]);
            let command = command(&args);
            let target = command.target().expect("target");
            assert_eq!(target.case, "PSIRT-2026-0007");
            assert_eq!(target.expected_version, Some(3));
            assert_eq!(target.request_id.as_deref(), Some("req-1"));
            let mut no_case = vec![sub[0]];
            no_case.extend_from_slice(&sub[1..]);
            assert!(parse(&no_case).is_err(), "{no_case:?}");
            let mut bad = args.clone();
            bad[5] = "a/b";
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            command(&["export", "PSIRT-2026-0007", "--format", "osv"]).case(),
            Some("PSIRT-2026-0007")
        );
        assert!(command(&["export", CASE, "--format", "osv"]).target().is_none());
        assert!(parse(&["export", CASE, "--format", "osv", "--request-id", "x"]).is_err(), "a read");
        assert_eq!(command(&["list"]).case(), None);
    }

    #[test]
    fn draft_maps_every_field() {
        assert_eq!(
            request(&[
                "draft",
                CASE,
                "--title",
                "ACME Gateway: stored XSS",
                "--summary",
                "A stored XSS in the admin console.",
                "--details",
                "Device names are not escaped.",
                "--workarounds",
                "Restrict admin access.",
                "--tracking-id",
                "ACME-SA-2026-0001",
                "--credit",
                "Jane Doe;Example Research;consent",
                "--credit",
                "John Roe",
                "--reference",
                "https://psirt.acme.example/notes/2.4.1",
                "--reference",
                "https://cve.org/CVERecord?id=CVE-2026-12345",
                "--expected-version",
                "2",
            ]),
            AdvisoryRequest::Draft(DraftAdvisoryRequest {
                case_id: "c1".to_owned(),
                request_id: "r1".to_owned(),
                expected_version: Some(2),
                tracking_id: "ACME-SA-2026-0001".to_owned(),
                content: Some(AdvisoryContent {
                    title: "ACME Gateway: stored XSS".to_owned(),
                    summary: "A stored XSS in the admin console.".to_owned(),
                    details: "Device names are not escaped.".to_owned(),
                    workarounds: "Restrict admin access.".to_owned(),
                    acknowledgments: vec![
                        Acknowledgment {
                            name: "Jane Doe".to_owned(),
                            organization: "Example Research".to_owned(),
                            url: String::new(),
                            consent: true,
                        },
                        Acknowledgment {
                            name: "John Roe".to_owned(),
                            organization: String::new(),
                            url: String::new(),
                            consent: false,
                        },
                    ],
                    references: vec![
                        "https://psirt.acme.example/notes/2.4.1".to_owned(),
                        "https://cve.org/CVERecord?id=CVE-2026-12345".to_owned(),
                    ],
                }),
            })
        );
        let AdvisoryRequest::Draft(r) = request(&["draft", CASE, "--title", "t", "--summary", "s"]) else {
            panic!()
        };
        assert_eq!(r.tracking_id, "");
        let content = r.content.expect("content");
        assert_eq!((content.details.as_str(), content.workarounds.as_str()), ("", ""));
        assert!(content.acknowledgments.is_empty() && content.references.is_empty());
    }

    #[test]
    fn draft_refuses_bad_input() {
        let ok = ["draft", CASE, "--title", "t", "--summary", "s"];
        let with =
            |extra: &[&'static str]| -> Vec<&'static str> { ok.iter().chain(extra).copied().collect() };
        assert!(parse(&ok).is_ok());
        assert!(parse(&["draft", CASE, "--summary", "s"]).is_err(), "title required");
        assert!(parse(&["draft", CASE, "--title", "t"]).is_err(), "summary required");
        assert!(parse(&["draft", CASE, "--title", "", "--summary", "s"]).is_err());
        assert!(parse(&with(&["--details", "x", "--details-file", "f.md"])).is_err(), "one of the two");
        let file = command(&with(&["--details-file", "f.md"]));
        let AdvisoryCommand::Draft(args) = file else { panic!() };
        assert_eq!(args.details_file.as_deref(), Some(Path::new("f.md")));
        for bad in ["ACME SA", "ACME/SA", ""] {
            assert!(parse(&with(&["--tracking-id", bad])).is_err(), "{bad:?}");
        }
        assert!(parse_tracking_id(&"A".repeat(101)).is_err());
        assert_eq!(parse_tracking_id(&"A".repeat(100)).map(|id| id.len()), Ok(100));
        for bad in ["", ";Org", "a;b;c;consent", "a;b;c"] {
            assert!(parse(&with(&["--credit", bad])).is_err(), "{bad:?}");
        }
        assert!(parse(&with(&["--reference", "http://example.com"])).is_err());
        assert!(parse(&with(&["--reference", "example.com"])).is_err());
    }

    #[test]
    fn credit_syntax() {
        let credit = parse_credit(" Jane Doe ; consent ").expect("credit");
        assert_eq!(
            (credit.name.as_str(), credit.organization.as_str(), credit.consent),
            ("Jane Doe", "", true)
        );
        let credit = parse_credit("Jane;ACME;CONSENT").expect("credit");
        assert_eq!((credit.organization.as_str(), credit.consent), ("ACME", true));
        let credit = parse_credit("Jane;ACME").expect("credit");
        assert_eq!((credit.organization.as_str(), credit.consent), ("ACME", false));
        // A lone name "consent" is a name.
        assert_eq!(parse_credit("consent").expect("credit").name, "consent");
        assert!(parse_credit(&"x".repeat(201)).is_err());
    }

    #[test]
    fn publish_maps_every_field() {
        assert_eq!(
            request(&[
                "publish",
                CASE,
                "--format",
                "openvex",
                "--format",
                "csaf",
                "--format",
                "csaf",
                "--format",
                "cve",
                "--format",
                "osv",
                "--override-reason",
                "exploited in the wild",
                "--change-summary",
                "more products fixed",
            ]),
            AdvisoryRequest::Publish(PublishAdvisoryRequest {
                case_id: "c1".to_owned(),
                request_id: "r1".to_owned(),
                expected_version: None,
                formats: vec![
                    AdvisoryFormat::Csaf as i32,
                    AdvisoryFormat::CveJson as i32,
                    AdvisoryFormat::Osv as i32,
                    AdvisoryFormat::Openvex as i32,
                ],
                embargo_override_reason: "exploited in the wild".to_owned(),
                change_summary: "more products fixed".to_owned(),
            })
        );
        let AdvisoryRequest::Publish(r) = request(&["publish", CASE]) else { panic!() };
        assert!(r.formats.is_empty(), "all four by default");
        assert!(parse(&["publish", CASE, "--format", "csaf-vex"]).is_err(), "an export format only");
        assert!(parse(&["publish", CASE, "--override-reason", ""]).is_err());
    }

    #[test]
    fn export_and_list() {
        for (value, format) in [
            ("csaf", ExportFormat::Csaf20),
            ("csaf-vex", ExportFormat::CsafVex),
            ("cve", ExportFormat::CveJson5),
            ("osv", ExportFormat::Osv),
            ("openvex", ExportFormat::Openvex),
        ] {
            assert_eq!(
                request(&["export", CASE, "--format", value]),
                AdvisoryRequest::Export(ExportAdvisoryRequest {
                    case_id: "c1".to_owned(),
                    format: format as i32
                }),
                "{value}"
            );
        }
        assert!(parse(&["export", CASE]).is_err(), "format required");
        assert!(parse(&["export", CASE, "--format", "pdf"]).is_err());
        let AdvisoryCommand::Export(args) =
            command(&["export", CASE, "--format", "osv", "--out", "a/b.json"])
        else {
            panic!()
        };
        assert_eq!(args.out.as_deref(), Some(Path::new("a/b.json")));

        assert_eq!(
            request(&["list", "--state", "published", "--page-size", "10", "--page-token", "t"]),
            AdvisoryRequest::List(ListAdvisoriesRequest {
                state: AdvisoryState::Published as i32,
                page_size: 10,
                page_token: "t".to_owned(),
            })
        );
        let AdvisoryRequest::List(r) = request(&["list", "--state", "draft"]) else { panic!() };
        assert_eq!(r.state, AdvisoryState::Draft as i32);
        assert_eq!(request(&["list"]), AdvisoryRequest::List(ListAdvisoriesRequest::default()));
        assert!(parse(&["list", "--state", "retracted"]).is_err());
        assert!(parse(&["list", "--page-size", "0"]).is_err());
        assert!(parse(&["list", "--page-size", "1001"]).is_err());
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = std::env::temp_dir().join(format!("psirtctl-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).expect("dir");
        let path = dir.join("doc.json");
        std::fs::write(&path, b"old").expect("old");
        write_atomically(&path, b"{\"new\": true}\n").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"{\"new\": true}\n");
        let names: Vec<_> =
            std::fs::read_dir(&dir).expect("list").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, ["doc.json"], "no temporary file left");
        assert!(write_atomically(&dir.join("missing/doc.json"), b"x").is_err());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn rendering() {
        let advisory = Advisory {
            advisory_id: "a1".to_owned(),
            case_key: "PSIRT-2026-0001".to_owned(),
            tracking_id: "ACME-SA-2026-0001".to_owned(),
            state: AdvisoryState::Published as i32,
            published_version: "1.0.0".to_owned(),
            formats: vec![AdvisoryFormat::Csaf as i32, AdvisoryFormat::CveJson as i32],
            content: Some(AdvisoryContent { title: "XSS".to_owned(), ..AdvisoryContent::default() }),
            revisions: vec![Revision {
                version: "1.0.0".to_owned(),
                date: None,
                summary: "Initial".to_owned(),
            }],
            version: 4,
            ..Advisory::default()
        };
        let mut buf = Vec::new();
        write_advisory(&mut buf, &advisory, Some("r1")).expect("write");
        let text = String::from_utf8(buf).expect("utf-8");
        assert!(text.contains("State:              published"), "{text}");
        assert!(text.contains("Formats:            csaf, cve"), "{text}");
        assert!(text.contains("Request ID:         r1"), "{text}");
        assert!(text.contains("1.0.0    -     Initial"), "{text}");

        let mut buf = Vec::new();
        write_advisory_table(
            &mut buf,
            &ListAdvisoriesResponse { advisories: vec![advisory], next_page_token: String::new() },
        )
        .expect("write");
        let text = String::from_utf8(buf).expect("utf-8");
        assert!(text.starts_with("TRACKING ID"), "{text}");
        assert!(text.contains("ACME-SA-2026-0001  PSIRT-2026-0001  published  1.0.0"), "{text}");
        let mut buf = Vec::new();
        write_advisory_table(&mut buf, &ListAdvisoriesResponse::default()).expect("write");
        assert_eq!(buf, b"No advisories found.\n");
    }
}
