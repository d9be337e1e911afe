//! `psirtctl case ...`: the case view of the triage service (`CaseService`):
//! list, show, timeline and watch. Also what `psirtctl triage` shares with
//! it: how a case argument (id or key) is resolved and how a case is shown.

use std::io::Write;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Subcommand, ValueEnum};
use psirt_proto::common::{
    CaseStatus, ProductVersionRange, ReportChannel, SeverityRating, SsvcAutomatable, SsvcDecision,
    SsvcExploitation, SsvcPublicSafetyImpact, SsvcTechnicalImpact, SsvcValueDensity, product_version_range,
};
use psirt_proto::events::{
    CaseResolution, EscalationLevel, ProductStatus, RejectionReason, SlaClock, TicketStatusCategory,
    TicketSystem,
};
use psirt_proto::triage::{
    AdvisoryStatus, Case, CaseFilter, GetCaseRequest, GetCaseTimelineRequest, GetCaseTimelineResponse,
    ListCasesRequest, ListCasesResponse, Severity, SlaClockStatus, SlaState, TimelineEntry,
    WatchCasesRequest, WatchCasesResponse, get_case_request, watch_cases_response,
};

use crate::client::{CaseClient, Connection};
use crate::output::{self, OutputFormat, Table};
use crate::{CliError, GlobalArgs};

/// `case list --all` stops after this many cases.
const LIST_ALL_MAX_CASES: usize = 10_000;

/// `case timeline` stops after this many events (a case has dozens).
const TIMELINE_MAX_ENTRIES: usize = 100_000;

/// Titles are cut to this many characters in `case list`.
const TITLE_COLUMN_CHARS: usize = 60;

/// Event types are shown without this package prefix in tables.
const EVENTS_PREFIX: &str = "psirt.events.v1.";

/// `psirtctl case <command>`.
#[derive(Debug, Subcommand)]
pub enum CaseCommand {
    /// List cases, filtered and sorted (newest first by default).
    List(ListArgs),
    /// Show one case: status, severity, products, CVEs, embargo, SLA clocks, ...
    Show(ShowArgs),
    /// Show every event of a case, from every service, in order.
    Timeline(TimelineArgs),
    /// Follow changes of cases live, one line per change, until Ctrl-C.
    ///
    /// With `--output json`, one JSON object per line (JSON Lines): a
    /// `{"change": ...}` per change and a `{"checkpoint": ...}` whenever the
    /// server reports progress; resume with `--after-sequence` of the last
    /// `sequence` seen.
    Watch(WatchArgs),
}

/// Which cases `case list` and `case watch` cover. Options combine with AND;
/// a repeated option matches any of its values.
#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    /// Only cases in this status; repeat for several.
    #[arg(long = "status", value_enum, value_name = "STATUS")]
    pub statuses: Vec<CaseStatusArg>,
    /// Only cases with this overall severity (`unassessed`: not assessed
    /// yet); repeat for several.
    #[arg(long = "severity", value_enum, value_name = "RATING")]
    pub severities: Vec<SeverityArg>,
    /// Only cases with this affected product (exact identifier).
    #[arg(long, value_name = "PRODUCT")]
    pub product: Option<String>,
    /// Only cases assigned to this analyst (exact user name).
    #[arg(long, value_name = "USER", conflicts_with = "unassigned")]
    pub assignee: Option<String>,
    /// Only cases nobody is assigned to.
    #[arg(long, conflicts_with = "assigned")]
    pub unassigned: bool,
    /// Only cases someone is assigned to.
    #[arg(long)]
    pub assigned: bool,
    /// Only cases with an SLA clock in this state; repeat for several.
    #[arg(long = "sla-state", value_enum, value_name = "STATE")]
    pub sla_states: Vec<SlaStateArg>,
    /// Only cases with (true) or without (false) an active embargo.
    #[arg(long, value_name = "true|false")]
    pub embargoed: Option<bool>,
}

impl FilterArgs {
    /// The filter of the request; `None` when no option narrows it.
    pub fn to_filter(&self) -> Option<CaseFilter> {
        let assigned = if self.unassigned {
            Some(false)
        } else if self.assigned {
            Some(true)
        } else {
            None
        };
        let filter = CaseFilter {
            statuses: self.statuses.iter().map(|s| CaseStatus::from(*s) as i32).collect(),
            severities: self.severities.iter().map(|s| SeverityRating::from(*s) as i32).collect(),
            product: self.product.clone().unwrap_or_default(),
            assignee: self.assignee.clone().unwrap_or_default(),
            assigned,
            sla_states: self.sla_states.iter().map(|s| SlaState::from(*s) as i32).collect(),
            embargoed: self.embargoed,
        };
        (filter != CaseFilter::default()).then_some(filter)
    }
}

/// `case list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Sort order: comma-separated fields among `opened_at`, `updated_at`,
    /// `severity`, `case_key`, `next_due_at`, each optionally followed by
    /// ` desc`, e.g. "severity desc,opened_at". Default: "opened_at desc".
    #[arg(long, value_name = "ORDER")]
    pub order_by: Option<String>,
    /// Cases per page (server default 50, at most 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub page_size: Option<i32>,
    /// Continue from the `next page token` of an earlier listing (same
    /// filter and order).
    #[arg(long, value_name = "TOKEN")]
    pub page_token: Option<String>,
    /// Follow page tokens and show every matching case (at most 10000).
    #[arg(long)]
    pub all: bool,
}

/// `case show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The case: its id (UUID) or its key (e.g. PSIRT-2026-0001).
    #[arg(value_name = "CASE", value_parser = NonEmptyStringValueParser::new())]
    pub case: String,
}

/// `case timeline`.
#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// The case: its id (UUID) or its key (e.g. PSIRT-2026-0001).
    #[arg(value_name = "CASE", value_parser = NonEmptyStringValueParser::new())]
    pub case: String,
}

/// `case watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Replay every change after this stream sequence first (0: from the
    /// start), then follow live. Default: only changes from now on.
    #[arg(long, value_name = "N")]
    pub after_sequence: Option<u64>,
}

/// `--status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CaseStatusArg {
    Received,
    Triage,
    Accepted,
    Rejected,
    Duplicate,
    Remediating,
    Fixed,
    Disclosed,
    Closed,
}

impl From<CaseStatusArg> for CaseStatus {
    fn from(status: CaseStatusArg) -> Self {
        match status {
            CaseStatusArg::Received => CaseStatus::Received,
            CaseStatusArg::Triage => CaseStatus::Triage,
            CaseStatusArg::Accepted => CaseStatus::Accepted,
            CaseStatusArg::Rejected => CaseStatus::Rejected,
            CaseStatusArg::Duplicate => CaseStatus::Duplicate,
            CaseStatusArg::Remediating => CaseStatus::Remediating,
            CaseStatusArg::Fixed => CaseStatus::Fixed,
            CaseStatusArg::Disclosed => CaseStatus::Disclosed,
            CaseStatusArg::Closed => CaseStatus::Closed,
        }
    }
}

/// `--severity` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeverityArg {
    /// Not assessed yet.
    Unassessed,
    #[value(name = "none")]
    NoneRating,
    Low,
    Medium,
    High,
    Critical,
}

impl From<SeverityArg> for SeverityRating {
    fn from(severity: SeverityArg) -> Self {
        match severity {
            SeverityArg::Unassessed => SeverityRating::Unspecified,
            SeverityArg::NoneRating => SeverityRating::None,
            SeverityArg::Low => SeverityRating::Low,
            SeverityArg::Medium => SeverityRating::Medium,
            SeverityArg::High => SeverityRating::High,
            SeverityArg::Critical => SeverityRating::Critical,
        }
    }
}

/// `--sla-state` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SlaStateArg {
    OnTrack,
    DueSoon,
    Breached,
    Met,
    MetLate,
}

impl From<SlaStateArg> for SlaState {
    fn from(state: SlaStateArg) -> Self {
        match state {
            SlaStateArg::OnTrack => SlaState::OnTrack,
            SlaStateArg::DueSoon => SlaState::DueSoon,
            SlaStateArg::Breached => SlaState::Breached,
            SlaStateArg::Met => SlaState::Met,
            SlaStateArg::MetLate => SlaState::MetLate,
        }
    }
}

/// A case as named on the command line: a UUID is an id, anything else a
/// key such as `PSIRT-2026-0001`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseRef {
    /// Case id, in canonical lowercase hyphenated form.
    Id(String),
    /// Case key, as given (trimmed).
    Key(String),
}

impl CaseRef {
    pub fn parse(value: &str) -> Self {
        let value = value.trim();
        match uuid::Uuid::try_parse(value) {
            Ok(id) => CaseRef::Id(id.hyphenated().to_string()),
            Err(_) => CaseRef::Key(value.to_owned()),
        }
    }

    /// The `GetCase` lookup for it.
    pub fn lookup(&self) -> get_case_request::Lookup {
        match self {
            CaseRef::Id(id) => get_case_request::Lookup::CaseId(id.clone()),
            CaseRef::Key(key) => get_case_request::Lookup::CaseKey(key.clone()),
        }
    }
}

/// The case id for a case argument: an id as it is, a key looked up with
/// `CaseService/GetCase` (the triage commands take ids only).
pub async fn resolve_case_id(cases: &mut CaseClient, value: &str) -> Result<String, CliError> {
    match CaseRef::parse(value) {
        CaseRef::Id(id) => Ok(id),
        key @ CaseRef::Key(_) => {
            let response = cases.get_case(GetCaseRequest { lookup: Some(key.lookup()) }).await?.into_inner();
            response
                .case
                .map(|c| c.case_id)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| CliError::Other(anyhow::anyhow!("the server returned no case for {value}")))
        }
    }
}

/// Runs one `case` command.
pub async fn run(global: &GlobalArgs, command: CaseCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        CaseCommand::List(args) => list(global, args, out).await,
        CaseCommand::Show(args) => show(global, args, out).await,
        CaseCommand::Timeline(args) => timeline(global, args, out).await,
        CaseCommand::Watch(args) => watch(global, args, out).await,
    }
}

/// The `ListCases` request of `case list` (first page).
pub fn list_request(args: &ListArgs) -> ListCasesRequest {
    ListCasesRequest {
        page_size: args.page_size.unwrap_or(0),
        page_token: args.page_token.clone().unwrap_or_default(),
        filter: args.filter.to_filter(),
        order_by: args.order_by.clone().unwrap_or_default(),
    }
}

/// The `WatchCases` request of `case watch`.
pub fn watch_request(args: &WatchArgs) -> WatchCasesRequest {
    WatchCasesRequest { filter: args.filter.to_filter(), after_sequence: args.after_sequence }
}

async fn list(global: &GlobalArgs, args: ListArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut request = list_request(&args);
    let mut client = Connection::open(global, &global.triage_server).await?.cases();
    let mut page = client.list_cases(request.clone()).await?.into_inner();
    if args.all {
        // The first page's position: a watch from there misses no change
        // made while the later pages were read.
        let as_of_sequence = page.as_of_sequence;
        let mut cases = std::mem::take(&mut page.cases);
        while !page.next_page_token.is_empty() && cases.len() < LIST_ALL_MAX_CASES {
            if page.next_page_token == request.page_token {
                return Err(CliError::Other(anyhow::anyhow!("the server repeated a page token")));
            }
            request.page_token = std::mem::take(&mut page.next_page_token);
            page = client.list_cases(request.clone()).await?.into_inner();
            cases.append(&mut page.cases);
        }
        if !page.next_page_token.is_empty() {
            eprintln!(
                "stopped after {} cases; continue with --page-token {}",
                cases.len(),
                page.next_page_token
            );
        }
        page = ListCasesResponse { cases, next_page_token: page.next_page_token, as_of_sequence };
    }
    match global.output {
        OutputFormat::Json => output::write_json(out, &page),
        OutputFormat::Table => {
            write_case_table(out, &page.cases)?;
            if !args.all && !page.next_page_token.is_empty() {
                eprintln!("more cases: --page-token {} (or --all)", page.next_page_token);
            }
            Ok(())
        }
    }
}

async fn show(global: &GlobalArgs, args: ShowArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let request = GetCaseRequest { lookup: Some(CaseRef::parse(&args.case).lookup()) };
    let mut client = Connection::open(global, &global.triage_server).await?.cases();
    let response = client.get_case(request).await?.into_inner();
    match global.output {
        OutputFormat::Json => output::write_json(out, &response),
        OutputFormat::Table => {
            write_case(out, &response.case.unwrap_or_default())?;
            Ok(())
        }
    }
}

async fn timeline(global: &GlobalArgs, args: TimelineArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut client = Connection::open(global, &global.triage_server).await?.cases();
    let case_id = resolve_case_id(&mut client, &args.case).await?;
    let mut request = GetCaseTimelineRequest { case_id, page_size: 0, page_token: String::new() };
    let mut entries = Vec::new();
    loop {
        let mut page = client.get_case_timeline(request.clone()).await?.into_inner();
        entries.append(&mut page.entries);
        if page.next_page_token.is_empty() {
            break;
        }
        if page.next_page_token == request.page_token {
            return Err(CliError::Other(anyhow::anyhow!("the server repeated a page token")));
        }
        if entries.len() >= TIMELINE_MAX_ENTRIES {
            eprintln!("stopped after {} events", entries.len());
            break;
        }
        request.page_token = page.next_page_token;
    }
    match global.output {
        OutputFormat::Json => {
            let entries = entries.into_iter().map(displayable_entry).collect::<Result<Vec<_>, _>>()?;
            output::write_json(out, &GetCaseTimelineResponse { entries, next_page_token: String::new() })
        }
        OutputFormat::Table => {
            write_timeline(out, &entries)?;
            Ok(())
        }
    }
}

/// The entry with its event payload made printable as JSON (see
/// [`output::displayable_any`]).
fn displayable_entry(mut entry: TimelineEntry) -> Result<TimelineEntry, CliError> {
    entry.event = entry.event.map(output::displayable_any).transpose()?;
    Ok(entry)
}

async fn watch(global: &GlobalArgs, args: WatchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let request = watch_request(&args);
    let mut client = Connection::open(global, &global.triage_server).await?.cases();
    let mut stream = client.watch_cases(request).await?.into_inner();
    let mut position = args.after_sequence;
    let mut caught_up = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let message = tokio::select! {
            // Ctrl-C is the normal way to stop watching.
            _ = &mut ctrl_c => return Ok(()),
            message = stream.message() => message,
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => {
                resume_hint(position);
                return Err(CliError::Other(anyhow::anyhow!("the server ended the watch")));
            }
            Err(status) => {
                resume_hint(position);
                return Err(status.into());
            }
        };
        match &response.kind {
            Some(watch_cases_response::Kind::Change(change)) => position = Some(change.sequence),
            Some(watch_cases_response::Kind::Checkpoint(checkpoint)) => {
                position = Some(checkpoint.sequence);
                if checkpoint.caught_up && !caught_up && global.output == OutputFormat::Table {
                    eprintln!(
                        "caught up at sequence {}; following live changes (Ctrl-C to stop)",
                        checkpoint.sequence
                    );
                }
                caught_up |= checkpoint.caught_up;
            }
            None => {}
        }
        match global.output {
            OutputFormat::Json => output::write_json_line(out, &response)?,
            OutputFormat::Table => {
                if let Some(line) = watch_line(&response) {
                    writeln!(out, "{line}")?;
                }
            }
        }
        // A watch is read live (or piped into another tool): no buffering.
        out.flush()?;
    }
}

fn resume_hint(position: Option<u64>) {
    if let Some(sequence) = position {
        eprintln!("to resume: --after-sequence {sequence}");
    }
}

/// The table-mode line of a watch message: `SEQUENCE  EVENT  CASE KEY
/// STATUS` for a change; nothing for a checkpoint.
pub fn watch_line(response: &WatchCasesResponse) -> Option<String> {
    let Some(watch_cases_response::Kind::Change(change)) = &response.kind else { return None };
    let case = change.case.clone().unwrap_or_default();
    let key = if case.case_key.is_empty() { case.case_id.clone() } else { case.case_key.clone() };
    let mut line = format!(
        "{:>8}  {:<24}  {:<16}  {}",
        change.sequence,
        short_event_type(&change.event_type),
        key,
        status_label(case.status)
    );
    if !change.matches_filter {
        line.push_str("  (no longer matches)");
    }
    Some(output::sanitize_line(&line))
}

/// `CaseAccepted` for `psirt.events.v1.CaseAccepted`; other packages in full.
pub fn short_event_type(event_type: &str) -> &str {
    event_type.strip_prefix(EVENTS_PREFIX).unwrap_or(event_type)
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

pub fn status_label(status: i32) -> String {
    let name = CaseStatus::try_from(status).ok().map(|s| s.as_str_name());
    output::enum_label(name, "CASE_STATUS_", status)
}

pub fn rating_label(rating: i32) -> String {
    match SeverityRating::try_from(rating) {
        Ok(SeverityRating::Unspecified) => "unassessed".to_owned(),
        other => output::enum_label(other.ok().map(|r| r.as_str_name()), "SEVERITY_RATING_", rating),
    }
}

/// `critical 9.3` (rating and the score it came from), `unassessed`.
pub fn severity_summary(severity: Option<&Severity>) -> String {
    let Some(severity) = severity else { return "unassessed".to_owned() };
    let score = match (&severity.cvss_v40, &severity.cvss_v31) {
        (Some(v4), _) => Some(v4.score),
        (None, Some(v3)) => Some(v3.base_score),
        (None, None) => None,
    };
    match score {
        Some(score) => format!("{} {score:.1}", rating_label(severity.rating)),
        None => rating_label(severity.rating),
    }
}

fn sla_state_label(state: i32) -> String {
    label(state, "SLA_STATE_", SlaState::as_str_name)
}

fn clock_label(clock: i32) -> String {
    label(clock, "SLA_CLOCK_", SlaClock::as_str_name)
}

/// How pressing a clock's state is, for the SLA column: breached first.
fn urgency(state: i32) -> u8 {
    match SlaState::try_from(state) {
        Ok(SlaState::Breached) => 5,
        Ok(SlaState::DueSoon) => 4,
        Ok(SlaState::OnTrack) => 3,
        Ok(SlaState::MetLate) => 2,
        Ok(SlaState::Met) => 1,
        _ => 0,
    }
}

/// The SLA column of `case list`: the most pressing clock as
/// `<clock>:<state>` (e.g. `triage:due-soon`), `-` if no clock has a state.
pub fn sla_summary(clocks: &[SlaClockStatus]) -> String {
    clocks
        .iter()
        .filter(|c| urgency(c.state) > 0)
        // The first of equally pressing clocks: the earlier stage.
        .fold(None::<&SlaClockStatus>, |best, c| match best {
            Some(b) if urgency(b.state) >= urgency(c.state) => Some(b),
            _ => Some(c),
        })
        .map_or_else(|| "-".to_owned(), |c| format!("{}:{}", clock_label(c.clock), sla_state_label(c.state)))
}

/// [`output::enum_label`] of a proto enum value in the command line's
/// spelling (`REJECTION_REASON_NOT_A_VULNERABILITY` is
/// `not-a-vulnerability`, as `--reason` takes it), e.g.
/// `label(v, "SLA_CLOCK_", SlaClock::as_str_name)`.
fn label<E>(value: i32, prefix: &str, name: impl Fn(&E) -> &'static str) -> String
where
    E: TryFrom<i32>,
{
    output::enum_label(E::try_from(value).ok().as_ref().map(name), prefix, value).replace('_', "-")
}

fn list_or_dash(items: &[String]) -> String {
    if items.is_empty() { "-".to_owned() } else { items.join(", ") }
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

/// `acme-gateway vers:semver/>=2.0.0|<2.4.1` or `acme-portal = 1.0, 1.1`:
/// the same syntax `triage products --product` takes, with spaces.
pub fn product_label(product: &ProductVersionRange) -> String {
    match &product.versions {
        Some(product_version_range::Versions::Range(range)) => format!("{} @ {range}", product.product),
        Some(product_version_range::Versions::Explicit(list)) => {
            format!("{} = {}", product.product, list.versions.join(", "))
        }
        None => product.product.clone(),
    }
}

/// `+09:00` for seconds east of UTC.
fn utc_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.unsigned_abs() / 60;
    format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

fn write_case_table(out: &mut dyn Write, cases: &[Case]) -> std::io::Result<()> {
    if cases.is_empty() {
        return writeln!(out, "No cases found.");
    }
    let mut table = Table::new(["KEY", "STATUS", "SEVERITY", "ASSIGNEE", "SLA", "OPENED", "TITLE"]);
    for case in cases {
        table.row([
            if case.case_key.is_empty() { case.case_id.clone() } else { case.case_key.clone() },
            status_label(case.status),
            severity_summary(case.severity.as_ref()),
            output::or_dash(&case.assignee),
            sla_summary(&case.sla_clocks),
            output::timestamp(case.opened_at.as_ref()),
            output::truncate(&output::sanitize_line(&case.title), TITLE_COLUMN_CHARS),
        ]);
    }
    table.write(out)
}

/// The short block every `triage` command prints: what the command changed
/// is visible at a glance; `case show` has the rest.
pub fn write_case_summary(out: &mut dyn Write, case: &Case, request_id: &str) -> std::io::Result<()> {
    output::write_fields(
        out,
        &[
            ("Case ID", case.case_id.clone()),
            ("Case key", output::or_dash(&case.case_key)),
            ("Status", status_label(case.status)),
            ("Severity", severity_summary(case.severity.as_ref())),
            ("Assignee", output::or_dash(&case.assignee)),
            ("Version", case.version.to_string()),
            ("Request ID", request_id.to_owned()),
        ],
    )
}

/// The full key/value block of `case show`.
pub fn write_case(out: &mut dyn Write, case: &Case) -> std::io::Result<()> {
    let assignee = match (case.assignee.as_str(), case.team.as_str()) {
        ("", _) => "-".to_owned(),
        (user, "") => user.to_owned(),
        (user, team) => format!("{user} (team {team})"),
    };
    let escalation = match EscalationLevel::try_from(case.escalation_level) {
        Ok(EscalationLevel::Unspecified) => "-".to_owned(),
        _ => label(case.escalation_level, "ESCALATION_LEVEL_", EscalationLevel::as_str_name),
    };
    let channel = match ReportChannel::try_from(case.channel) {
        Ok(ReportChannel::Unspecified) => "-".to_owned(),
        _ => label(case.channel, "REPORT_CHANNEL_", ReportChannel::as_str_name),
    };
    let mut fields = vec![
        ("Case ID", case.case_id.clone()),
        ("Case key", output::or_dash(&case.case_key)),
        ("Title", case.title.clone()),
        ("Status", status_label(case.status)),
        ("Version", case.version.to_string()),
        ("Assignee", assignee),
        ("Severity", severity_summary(case.severity.as_ref())),
        ("CVEs", list_or_dash(&case.cve_ids)),
        ("Escalation", escalation),
        ("Incident", yes_no(case.incident)),
        ("Channel", channel),
        ("Reports", list_or_dash(&case.report_ids)),
        ("Suspected duplicates", list_or_dash(&case.suspected_duplicate_case_ids)),
        ("Duplicate of", output::or_dash(&case.duplicate_of_case_id)),
        ("Duplicates", list_or_dash(&case.duplicate_case_ids)),
        ("Opened at", output::timestamp(case.opened_at.as_ref())),
        ("Updated at", output::timestamp(case.updated_at.as_ref())),
    ];
    if case.reopen_count > 0 {
        fields.push(("Reopened", format!("{} times", case.reopen_count)));
    }
    if case.rejection_reason != RejectionReason::Unspecified as i32 {
        fields.push((
            "Rejection",
            label(case.rejection_reason, "REJECTION_REASON_", RejectionReason::as_str_name),
        ));
        fields.push(("Rejection text", output::or_dash(&case.rejection_text)));
    }
    if case.resolution != CaseResolution::Unspecified as i32 || case.closed_at.is_some() {
        fields.push(("Closed at", output::timestamp(case.closed_at.as_ref())));
        fields.push(("Resolution", label(case.resolution, "CASE_RESOLUTION_", CaseResolution::as_str_name)));
        fields.push(("Root cause", output::or_dash(&case.root_cause)));
        fields.push(("Lessons learned", output::or_dash(&case.lessons_learned)));
    }
    output::write_fields(out, &fields)?;

    writeln!(out)?;
    write_severity(out, case.severity.as_ref())?;

    writeln!(out)?;
    writeln!(out, "Affected products ({}):", case.affected_products.len())?;
    if case.affected_products.is_empty() {
        writeln!(out, "  -")?;
    }
    for product in &case.affected_products {
        writeln!(out, "  {}", output::sanitize_line(&product_label(product)))?;
    }

    writeln!(out)?;
    match &case.embargo {
        None => writeln!(out, "Embargo: none")?,
        Some(embargo) => {
            writeln!(out, "Embargo:")?;
            output::write_fields_indented(
                out,
                &[
                    ("Active", yes_no(embargo.active)),
                    ("Disclosure at", output::timestamp(embargo.disclosure_at.as_ref())),
                    (
                        "Local time",
                        format!(
                            "{} {} (UTC{})",
                            embargo.local_disclosure_time,
                            embargo.time_zone,
                            utc_offset(embargo.utc_offset_seconds)
                        ),
                    ),
                    ("Agreed with", list_or_dash(&embargo.agreed_with)),
                    ("Note", output::or_dash(&embargo.note)),
                    ("Set at", output::timestamp(embargo.set_at.as_ref())),
                ],
                2,
            )?;
        }
    }

    writeln!(out)?;
    writeln!(out, "SLA clocks:")?;
    if case.sla_clocks.is_empty() {
        writeln!(out, "  -")?;
    } else {
        let mut table = Table::new(["CLOCK", "STATE", "STARTED", "DUE", "MET", "BREACHED", "POLICY"]);
        for clock in &case.sla_clocks {
            table.row([
                clock_label(clock.clock),
                sla_state_label(clock.state),
                output::timestamp(clock.started_at.as_ref()),
                output::timestamp(clock.due_at.as_ref()),
                output::timestamp(clock.met_at.as_ref()),
                output::timestamp(clock.breached_at.as_ref()),
                output::or_dash(&clock.sla_policy),
            ]);
        }
        table.write_indented(out, 2)?;
    }

    writeln!(out)?;
    match &case.remediation {
        None => writeln!(out, "Remediation: none (no plan yet)")?,
        Some(plan) => {
            writeln!(out, "Remediation:")?;
            let statuses = plan
                .product_status_counts
                .iter()
                .map(|c| {
                    format!("{} {}", label(c.status, "PRODUCT_STATUS_", ProductStatus::as_str_name), c.count)
                })
                .collect::<Vec<_>>();
            output::write_fields_indented(
                out,
                &[
                    ("Plan ID", plan.plan_id.clone()),
                    (
                        "Actions",
                        format!(
                            "{} total, {} open, {} released, {} verified, {} overdue",
                            plan.actions_total,
                            plan.actions_open,
                            plan.actions_released,
                            plan.actions_verified,
                            plan.actions_overdue
                        ),
                    ),
                    ("Next due at", output::timestamp(plan.next_due_at.as_ref())),
                    ("Product status", list_or_dash(&statuses)),
                ],
                2,
            )?;
        }
    }

    writeln!(out)?;
    match &case.advisory {
        None => writeln!(out, "Advisory: none (not drafted)")?,
        Some(advisory) => {
            writeln!(out, "Advisory:")?;
            output::write_fields_indented(
                out,
                &[
                    ("Advisory ID", advisory.advisory_id.clone()),
                    ("Tracking ID", output::or_dash(&advisory.tracking_id)),
                    ("Status", label(advisory.status, "ADVISORY_STATUS_", AdvisoryStatus::as_str_name)),
                    ("Version", output::or_dash(&advisory.version)),
                    ("Published at", output::timestamp(advisory.published_at.as_ref())),
                    ("Updated at", output::timestamp(advisory.updated_at.as_ref())),
                ],
                2,
            )?;
        }
    }

    if !case.external_tickets.is_empty() {
        writeln!(out)?;
        writeln!(out, "Tickets:")?;
        let mut table = Table::new(["SYSTEM", "KEY", "STATUS", "URL"]);
        for ticket in &case.external_tickets {
            let category =
                label(ticket.status_category, "TICKET_STATUS_CATEGORY_", TicketStatusCategory::as_str_name);
            let status = if ticket.external_status.is_empty() {
                category
            } else {
                format!("{} ({category})", ticket.external_status)
            };
            table.row([
                label(ticket.system, "TICKET_SYSTEM_", TicketSystem::as_str_name),
                ticket.key.clone(),
                status,
                ticket.url.clone(),
            ]);
        }
        table.write_indented(out, 2)?;
    }
    Ok(())
}

fn write_severity(out: &mut dyn Write, severity: Option<&Severity>) -> std::io::Result<()> {
    let Some(severity) = severity else { return writeln!(out, "Assessment: none") };
    let cvss_v31 = severity.cvss_v31.as_ref().map_or_else(
        || "-".to_owned(),
        |c| format!("{:.1} {} {}", c.base_score, rating_label(c.rating), c.vector),
    );
    let cvss_v40 = severity.cvss_v40.as_ref().map_or_else(
        || "-".to_owned(),
        |c| format!("{:.1} {} {}", c.score, rating_label(c.rating), c.vector),
    );
    let ssvc = severity.ssvc.as_ref().map_or_else(
        || "-".to_owned(),
        |s| {
            format!(
                "{} (exploitation {}, automatable {}, value density {}, technical impact {}, public safety impact {})",
                label(s.decision, "SSVC_DECISION_", SsvcDecision::as_str_name),
                label(s.exploitation, "SSVC_EXPLOITATION_", SsvcExploitation::as_str_name),
                label(s.automatable, "SSVC_AUTOMATABLE_", SsvcAutomatable::as_str_name),
                label(s.value_density, "SSVC_VALUE_DENSITY_", SsvcValueDensity::as_str_name),
                label(s.technical_impact, "SSVC_TECHNICAL_IMPACT_", SsvcTechnicalImpact::as_str_name),
                label(s.public_safety_impact, "SSVC_PUBLIC_SAFETY_IMPACT_", SsvcPublicSafetyImpact::as_str_name),
            )
        },
    );
    let epss = match (severity.epss_probability, severity.epss_percentile) {
        (Some(p), Some(pct)) => format!("{p} (percentile {pct})"),
        (Some(p), None) => p.to_string(),
        (None, _) => "-".to_owned(),
    };
    writeln!(out, "Assessment:")?;
    output::write_fields_indented(
        out,
        &[
            ("Rating", rating_label(severity.rating)),
            ("CVSS v3.1", cvss_v31),
            ("CVSS v4.0", cvss_v40),
            ("SSVC", ssvc),
            ("Known exploited", yes_no(severity.known_exploited)),
            ("EPSS", epss),
            ("CWE", list_or_dash(&severity.cwe_ids)),
            ("Rationale", output::or_dash(&severity.rationale)),
            ("Assessed at", output::timestamp(severity.assessed_at.as_ref())),
            ("Assessed by", output::or_dash(&severity.assessed_by)),
        ],
        2,
    )
}

/// `case timeline` in table mode: one line per event.
pub fn write_timeline(out: &mut dyn Write, entries: &[TimelineEntry]) -> std::io::Result<()> {
    if entries.is_empty() {
        return writeln!(out, "No events.");
    }
    let mut table = Table::new(["SEQ", "TIME", "TYPE", "ACTOR", "SUMMARY"]);
    for entry in entries {
        table.row([
            entry.sequence.to_string(),
            output::timestamp(entry.occurred_at.as_ref()),
            short_event_type(&entry.event_type).to_owned(),
            output::or_dash(&entry.actor),
            entry.summary.clone(),
        ]);
    }
    table.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;
    use prost_types::Timestamp;
    use psirt_proto::common::{CvssV31, CvssV40, Ssvc, VersionList};
    use psirt_proto::triage::{CaseChange, Embargo, WatchCheckpoint};

    fn parse(args: &[&str]) -> Result<crate::Cli, clap::Error> {
        crate::Cli::try_parse_from(std::iter::once("psirtctl").chain(args.iter().copied()))
    }

    fn command(args: &[&str]) -> CaseCommand {
        match parse(args).expect("valid command line").command {
            crate::Command::Case(command) => command,
            other => panic!("not a case command: {other:?}"),
        }
    }

    fn rendered(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
        let mut buf = Vec::new();
        write(&mut buf).expect("write");
        String::from_utf8(buf).expect("utf-8")
    }

    #[test]
    fn list_filters_become_the_request() {
        let CaseCommand::List(args) = command(&[
            "case",
            "list",
            "--status",
            "triage",
            "--status",
            "accepted",
            "--severity",
            "critical",
            "--severity",
            "unassessed",
            "--product",
            "acme-gateway",
            "--assignee",
            "alice",
            "--sla-state",
            "due-soon",
            "--sla-state",
            "met-late",
            "--embargoed",
            "true",
            "--order-by",
            "severity desc,opened_at",
            "--page-size",
            "20",
            "--page-token",
            "tok",
        ]) else {
            panic!("not list")
        };
        let request = list_request(&args);
        assert_eq!(request.page_size, 20);
        assert_eq!(request.page_token, "tok");
        assert_eq!(request.order_by, "severity desc,opened_at");
        let filter = request.filter.expect("a filter");
        assert_eq!(filter.statuses, [CaseStatus::Triage as i32, CaseStatus::Accepted as i32]);
        assert_eq!(filter.severities, [SeverityRating::Critical as i32, SeverityRating::Unspecified as i32]);
        assert_eq!(filter.product, "acme-gateway");
        assert_eq!(filter.assignee, "alice");
        assert_eq!(filter.assigned, None);
        assert_eq!(filter.sla_states, [SlaState::DueSoon as i32, SlaState::MetLate as i32]);
        assert_eq!(filter.embargoed, Some(true));
    }

    #[test]
    fn list_without_options_sends_no_filter() {
        let CaseCommand::List(args) = command(&["case", "list"]) else { panic!("not list") };
        let request = list_request(&args);
        assert_eq!(request, ListCasesRequest::default());
    }

    #[test]
    fn assigned_and_unassigned() {
        let CaseCommand::List(args) = command(&["case", "list", "--unassigned"]) else { panic!() };
        assert_eq!(list_request(&args).filter.and_then(|f| f.assigned), Some(false));
        let CaseCommand::List(args) = command(&["case", "list", "--assigned"]) else { panic!() };
        assert_eq!(list_request(&args).filter.and_then(|f| f.assigned), Some(true));
        let CaseCommand::List(args) = command(&["case", "list", "--embargoed", "false"]) else { panic!() };
        assert_eq!(list_request(&args).filter.and_then(|f| f.embargoed), Some(false));
        assert!(parse(&["case", "list", "--unassigned", "--assignee", "bob"]).is_err());
        assert!(parse(&["case", "list", "--unassigned", "--assigned"]).is_err());
        assert!(parse(&["case", "list", "--embargoed", "maybe"]).is_err());
        assert!(parse(&["case", "list", "--embargoed"]).is_err(), "true or false must be given");
    }

    #[test]
    fn enum_values_are_the_documented_ones() {
        for status in [
            "received",
            "triage",
            "accepted",
            "rejected",
            "duplicate",
            "remediating",
            "fixed",
            "disclosed",
            "closed",
        ] {
            assert!(parse(&["case", "list", "--status", status]).is_ok(), "{status}");
        }
        for severity in ["unassessed", "none", "low", "medium", "high", "critical"] {
            assert!(parse(&["case", "list", "--severity", severity]).is_ok(), "{severity}");
        }
        for state in ["on-track", "due-soon", "breached", "met", "met-late"] {
            assert!(parse(&["case", "list", "--sla-state", state]).is_ok(), "{state}");
        }
        assert!(parse(&["case", "list", "--status", "open"]).is_err());
        assert!(parse(&["case", "list", "--severity", "severe"]).is_err());
        assert!(parse(&["case", "list", "--page-size", "0"]).is_err());
    }

    #[test]
    fn watch_request_and_triage_server() {
        let cli = parse(&[
            "case",
            "watch",
            "--status",
            "received",
            "--after-sequence",
            "0",
            "--triage-server",
            "h:7",
        ])
        .expect("valid");
        assert_eq!(cli.global.triage_server, "http://h:7");
        assert_eq!(cli.global.server, crate::client::DEFAULT_SERVER, "intake's endpoint untouched");
        let crate::Command::Case(CaseCommand::Watch(args)) = cli.command else { panic!("not watch") };
        let request = watch_request(&args);
        assert_eq!(request.after_sequence, Some(0));
        assert_eq!(request.filter.map(|f| f.statuses), Some(vec![CaseStatus::Received as i32]));
        let CaseCommand::Watch(args) = command(&["case", "watch"]) else { panic!() };
        assert_eq!(watch_request(&args), WatchCasesRequest::default(), "live only, no filter");
    }

    #[test]
    fn show_and_timeline_need_a_case() {
        assert!(parse(&["case", "show"]).is_err());
        assert!(parse(&["case", "show", ""]).is_err());
        assert!(parse(&["case", "timeline"]).is_err());
        let CaseCommand::Show(args) = command(&["case", "show", "PSIRT-2026-0001"]) else { panic!() };
        assert_eq!(args.case, "PSIRT-2026-0001");
    }

    #[test]
    fn case_refs() {
        assert_eq!(
            CaseRef::parse("0190F5A4-0000-4000-8000-000000000001"),
            CaseRef::Id("0190f5a4-0000-4000-8000-000000000001".to_owned())
        );
        assert_eq!(CaseRef::parse(" PSIRT-2026-0001 "), CaseRef::Key("PSIRT-2026-0001".to_owned()));
        assert_eq!(
            CaseRef::parse("PSIRT-2026-0001").lookup(),
            get_case_request::Lookup::CaseKey("PSIRT-2026-0001".to_owned())
        );
    }

    fn sample_case() -> Case {
        let ts = |seconds| Some(Timestamp { seconds, nanos: 0 });
        Case {
            case_id: "0190f5a4-0000-4000-8000-000000000001".to_owned(),
            case_key: "PSIRT-2026-0001".to_owned(),
            status: CaseStatus::Accepted as i32,
            title: "SQL injection\nin login".to_owned(),
            report_ids: vec!["r1".to_owned()],
            channel: ReportChannel::Web as i32,
            assignee: "alice".to_owned(),
            team: "web".to_owned(),
            severity: Some(Severity {
                cvss_v31: Some(CvssV31 {
                    vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".to_owned(),
                    base_score: 9.8,
                    rating: SeverityRating::Critical as i32,
                }),
                cvss_v40: None,
                ssvc: Some(Ssvc {
                    exploitation: SsvcExploitation::Poc as i32,
                    automatable: SsvcAutomatable::Yes as i32,
                    value_density: SsvcValueDensity::Concentrated as i32,
                    technical_impact: SsvcTechnicalImpact::Total as i32,
                    public_safety_impact: SsvcPublicSafetyImpact::Minimal as i32,
                    decision: SsvcDecision::OutOfCycle as i32,
                }),
                rating: SeverityRating::Critical as i32,
                cwe_ids: vec!["CWE-89".to_owned()],
                assessed_by: "alice".to_owned(),
                ..Severity::default()
            }),
            affected_products: vec![
                ProductVersionRange {
                    product: "acme-gateway".to_owned(),
                    versions: Some(product_version_range::Versions::Range(
                        "vers:semver/>=2.0.0|<2.4.1".to_owned(),
                    )),
                },
                ProductVersionRange {
                    product: "acme-portal".to_owned(),
                    versions: Some(product_version_range::Versions::Explicit(VersionList {
                        versions: vec!["1.0".to_owned(), "1.1".to_owned()],
                    })),
                },
            ],
            cve_ids: vec!["CVE-2026-12345".to_owned()],
            embargo: Some(Embargo {
                disclosure_at: ts(1_796_112_000),
                time_zone: "Europe/Berlin".to_owned(),
                local_disclosure_time: "2026-12-01T09:00".to_owned(),
                utc_offset_seconds: 3600,
                active: true,
                ..Embargo::default()
            }),
            sla_clocks: vec![
                SlaClockStatus {
                    clock: SlaClock::Acknowledge as i32,
                    state: SlaState::Met as i32,
                    started_at: ts(0),
                    due_at: ts(86_400),
                    met_at: ts(3_600),
                    sla_policy: "default@3".to_owned(),
                    ..SlaClockStatus::default()
                },
                SlaClockStatus {
                    clock: SlaClock::Remediation as i32,
                    state: SlaState::DueSoon as i32,
                    started_at: ts(0),
                    due_at: ts(864_000),
                    sla_policy: "default@3".to_owned(),
                    ..SlaClockStatus::default()
                },
            ],
            version: 7,
            opened_at: ts(0),
            ..Case::default()
        }
    }

    #[test]
    fn case_block_shows_everything_on_its_own_line() {
        let text = rendered(|buf| write_case(buf, &sample_case()));
        for expected in [
            "Case key:              PSIRT-2026-0001\n",
            "Title:                 SQL injection in login\n",
            "Status:                accepted\n",
            "Assignee:              alice (team web)\n",
            "Severity:              critical 9.8\n",
            "CVEs:                  CVE-2026-12345\n",
            "Version:               7\n",
            "  CVSS v3.1:        9.8 critical CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\n",
            "  CVSS v4.0:        -\n",
            "  SSVC:             out-of-cycle (exploitation poc, automatable yes, value density concentrated, \
             technical impact total, public safety impact minimal)\n",
            "Affected products (2):\n  acme-gateway @ vers:semver/>=2.0.0|<2.4.1\n  acme-portal = 1.0, 1.1\n",
            "  Active:         yes\n",
            "  Local time:     2026-12-01T09:00 Europe/Berlin (UTC+01:00)\n",
            "  CLOCK        STATE     STARTED               DUE                   MET                   BREACHED  POLICY\n",
            "  acknowledge  met       1970-01-01T00:00:00Z  1970-01-02T00:00:00Z  1970-01-01T01:00:00Z  -         default@3\n",
            "  remediation  due-soon",
            "Remediation: none (no plan yet)\n",
            "Advisory: none (not drafted)\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(!text.contains("Resolution:"), "not closed: {text}");
    }

    #[test]
    fn unassessed_case_and_list_row() {
        let case = Case {
            case_key: "PSIRT-2026-0002".to_owned(),
            status: CaseStatus::Received as i32,
            ..Case::default()
        };
        let text = rendered(|buf| write_case(buf, &case));
        assert!(text.contains("Severity:              unassessed\n"), "{text}");
        assert!(text.contains("Assessment: none\n"), "{text}");
        assert!(text.contains("Embargo: none\n"), "{text}");
        let table = rendered(|buf| write_case_table(buf, &[sample_case(), case]));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "KEY              STATUS    SEVERITY      ASSIGNEE  SLA                   OPENED                TITLE"
        );
        assert_eq!(
            lines[1],
            "PSIRT-2026-0001  accepted  critical 9.8  alice     remediation:due-soon  1970-01-01T00:00:00Z  SQL injection in login"
        );
        assert_eq!(lines[2], "PSIRT-2026-0002  received  unassessed    -         -                     -");
        assert_eq!(rendered(|buf| write_case_table(buf, &[])), "No cases found.\n");
    }

    #[test]
    fn closed_case_shows_its_ending_in_command_line_spelling() {
        let case = Case {
            status: CaseStatus::Closed as i32,
            rejection_reason: RejectionReason::NotAVulnerability as i32,
            rejection_text: "works as designed".to_owned(),
            resolution: CaseResolution::WontFix as i32,
            root_cause: "legacy API".to_owned(),
            closed_at: Some(Timestamp { seconds: 60, nanos: 0 }),
            reopen_count: 2,
            ..Case::default()
        };
        let text = rendered(|buf| write_case(buf, &case));
        for expected in [
            "Status:                closed\n",
            "Rejection:             not-a-vulnerability\n",
            "Rejection text:        works as designed\n",
            "Resolution:            wont-fix\n",
            "Root cause:            legacy API\n",
            "Lessons learned:       -\n",
            "Closed at:             1970-01-01T00:01:00Z\n",
            "Reopened:              2 times\n",
            "Affected products (0):\n  -\n",
            "SLA clocks:\n  -\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert_eq!(label(99, "CASE_RESOLUTION_", CaseResolution::as_str_name), "unknown(99)");
    }

    #[test]
    fn sla_summary_picks_the_most_pressing_clock() {
        let clock = |clock: SlaClock, state: SlaState| SlaClockStatus {
            clock: clock as i32,
            state: state as i32,
            ..SlaClockStatus::default()
        };
        assert_eq!(sla_summary(&[]), "-");
        assert_eq!(
            sla_summary(&[
                clock(SlaClock::Acknowledge, SlaState::OnTrack),
                clock(SlaClock::Triage, SlaState::OnTrack)
            ]),
            "acknowledge:on-track"
        );
        assert_eq!(
            sla_summary(&[
                clock(SlaClock::Acknowledge, SlaState::Met),
                clock(SlaClock::Triage, SlaState::Breached)
            ]),
            "triage:breached"
        );
        assert_eq!(sla_summary(&[clock(SlaClock::Remediation, SlaState::Unspecified)]), "-");
    }

    #[test]
    fn summary_block_of_triage_commands() {
        let mut case = sample_case();
        case.severity = Some(Severity {
            cvss_v40: Some(CvssV40 {
                vector: "CVSS:4.0/...".to_owned(),
                score: 9.3,
                rating: SeverityRating::Critical as i32,
            }),
            rating: SeverityRating::Critical as i32,
            ..Severity::default()
        });
        let text = rendered(|buf| write_case_summary(buf, &case, "req-1"));
        assert_eq!(
            text,
            "Case ID:     0190f5a4-0000-4000-8000-000000000001\nCase key:    PSIRT-2026-0001\n\
             Status:      accepted\nSeverity:    critical 9.3\nAssignee:    alice\nVersion:     7\n\
             Request ID:  req-1\n"
        );
    }

    fn entry() -> TimelineEntry {
        TimelineEntry {
            sequence: 42,
            event_id: "e1".to_owned(),
            event_type: "psirt.events.v1.CaseAssigned".to_owned(),
            subject: "psirt.evt.case.c1".to_owned(),
            occurred_at: Some(Timestamp { seconds: 1_714_564_800, nanos: 0 }),
            actor: "bob".to_owned(),
            event: Some(prost_types::Any {
                type_url: "type.googleapis.com/psirt.events.v1.CaseAssigned".to_owned(),
                value: prost::Message::encode_to_vec(&psirt_proto::events::CaseAssigned {
                    case_id: "c1".to_owned(),
                    assignee: "alice".to_owned(),
                    ..Default::default()
                }),
            }),
            summary: "Assigned to alice".to_owned(),
            ..TimelineEntry::default()
        }
    }

    #[test]
    fn timeline_line_per_event() {
        let text = rendered(|buf| write_timeline(buf, &[entry()]));
        assert_eq!(
            text,
            "SEQ  TIME                  TYPE          ACTOR  SUMMARY\n\
             42   2024-05-01T12:00:00Z  CaseAssigned  bob    Assigned to alice\n"
        );
        assert_eq!(rendered(|buf| write_timeline(buf, &[])), "No events.\n");
    }

    #[test]
    fn timeline_json_decodes_the_event() {
        let unknown = TimelineEntry {
            sequence: 43,
            event_type: "psirt.events.v1.FromTheFuture".to_owned(),
            event: Some(prost_types::Any {
                type_url: "type.googleapis.com/psirt.events.v1.FromTheFuture".to_owned(),
                value: vec![8, 1],
            }),
            ..TimelineEntry::default()
        };
        let entries =
            vec![entry(), unknown].into_iter().map(displayable_entry).collect::<Result<Vec<_>, _>>();
        let response = GetCaseTimelineResponse {
            entries: entries.expect("displayable"),
            next_page_token: String::new(),
        };
        let mut buf = Vec::new();
        output::write_json(&mut buf, &response).expect("json");
        let json: serde_json::Value = serde_json::from_slice(&buf).expect("valid json");
        let known = &json["entries"][0];
        assert_eq!(known["sequence"], "42");
        assert_eq!(known["eventType"], "psirt.events.v1.CaseAssigned");
        assert_eq!(known["event"]["@type"], "type.googleapis.com/psirt.events.v1.CaseAssigned");
        assert_eq!(known["event"]["assignee"], "alice");
        assert_eq!(known["event"]["caseId"], "c1");
        // Unknown to this client: the stored bytes, base64, with the type in eventType.
        let unknown = &json["entries"][1];
        assert_eq!(unknown["eventType"], "psirt.events.v1.FromTheFuture");
        assert_eq!(unknown["event"]["@type"], "type.googleapis.com/google.protobuf.BytesValue");
        assert_eq!(unknown["event"]["value"], "CAE=");
    }

    #[test]
    fn watch_lines() {
        let change = WatchCasesResponse {
            kind: Some(watch_cases_response::Kind::Change(CaseChange {
                sequence: 1234,
                event_type: "psirt.events.v1.CaseAccepted".to_owned(),
                case: Some(sample_case()),
                matches_filter: true,
                ..CaseChange::default()
            })),
        };
        assert_eq!(
            watch_line(&change).as_deref(),
            Some("    1234  CaseAccepted              PSIRT-2026-0001   accepted")
        );
        let checkpoint = WatchCasesResponse {
            kind: Some(watch_cases_response::Kind::Checkpoint(WatchCheckpoint {
                sequence: 9,
                caught_up: true,
            })),
        };
        assert_eq!(watch_line(&checkpoint), None);
        let mut buf = Vec::new();
        output::write_json_line(&mut buf, &checkpoint).expect("json");
        assert_eq!(
            String::from_utf8(buf).expect("utf-8"),
            "{\"checkpoint\":{\"sequence\":\"9\",\"caughtUp\":true}}\n"
        );
    }
}
