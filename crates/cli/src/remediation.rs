//! `psirtctl remediation ...`: one command per `RemediationService` RPC of
//! the remediation service (`--remediation-server`). A case is named by its
//! id or its key; a key is looked up at the triage service's case view
//! (`--triage-server`) first, an id is used as it is (no triage connection).
//!
//! Every command that changes the plan takes `--expected-version` (the plan's
//! version) and `--request-id`, and prints the plan as the command left it.
//! Requests are built by pure functions from the parsed arguments
//! ([`RemediationCommand::build`]); values the server would reject for their
//! form (product syntax, times, URLs, a not-affected status without a
//! justification) are refused while parsing, before connecting.

use std::io::Write;

use clap::builder::NonEmptyStringValueParser;
use clap::error::ErrorKind;
use clap::{ArgMatches, Args, FromArgMatches, Subcommand, ValueEnum};
use prost_types::Timestamp;
use psirt_proto::common::{ProductVersionRange, product_version_range};
use psirt_proto::events::{ProductStatus, RemediationAction, VexJustification};
use psirt_proto::remediation::{
    ActionState, GetPlanRequest, GetPlanResponse, ListOverdueRequest, ListOverdueResponse, Plan,
    PlanActionRequest, PlanActionResponse, RecordReleaseRequest, RecordReleaseResponse,
    SetProductStatusRequest, SetProductStatusResponse, VerifyRemediationRequest, VerifyRemediationResponse,
};
use time::OffsetDateTime;
use tonic::Status;

use crate::case::{CaseRef, resolve_case_id};
use crate::client::{Connection, RemediationClient};
use crate::output::{self, OutputFormat, Table};
use crate::report::parse_timestamp;
use crate::triage::{PRODUCTS_HELP, parse_product, parse_request_id};
use crate::{CliError, GlobalArgs};

/// `psirtctl remediation <command>`.
#[derive(Debug, Subcommand)]
pub enum RemediationCommand {
    /// Show the remediation plan of a case: actions, releases, product status.
    Plan(PlanArgs),
    /// Plan a remediation action for a product and versions, or re-plan one
    /// (--action-id).
    #[command(after_help = PRODUCTS_HELP)]
    Action(ActionArgs),
    /// Record a shipped release carrying a fix.
    Release(ReleaseArgs),
    /// Set the VEX status of a product version (or version range).
    Status(StatusArgs),
    /// Record that an action's fix or mitigation was verified.
    Verify(VerifyArgs),
    /// List open actions past their due date, across cases, oldest first.
    Overdue(OverdueArgs),
}

/// The case and the concurrency and idempotency controls of a command that
/// changes a plan or an advisory.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The case: its id (UUID) or its key (e.g. PSIRT-2026-0001; looked up
    /// at --triage-server first).
    #[arg(value_name = "CASE", value_parser = NonEmptyStringValueParser::new())]
    pub case: String,
    /// Apply only if the plan (or advisory) is still at this version
    /// (`Version` of `remediation plan` or `advisory list`).
    #[arg(long, value_name = "N")]
    pub expected_version: Option<u64>,
    /// Idempotency key (1..128 characters of A-Z a-z 0-9 . _ : -); reuse the
    /// one printed by a failed attempt to retry safely. Default: a new UUID.
    #[arg(long, value_name = "ID", value_parser = parse_request_id)]
    pub request_id: Option<String>,
}

/// `remediation plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The case: its id (UUID) or its key (e.g. PSIRT-2026-0001).
    #[arg(value_name = "CASE", value_parser = NonEmptyStringValueParser::new())]
    pub case: String,
}

/// `remediation action`.
#[derive(Debug, Args)]
pub struct ActionArgs {
    #[command(flatten)]
    pub target: Target,
    /// Product and versions the action covers: NAME@RANGE or NAME=V1,V2
    /// (see below). The product must be one of the case's affected products.
    #[arg(long, value_name = "PRODUCT", value_parser = parse_product)]
    pub product: ProductVersionRange,
    /// What will be done.
    #[arg(long, value_enum)]
    pub action: ActionArg,
    /// Team that owns the action (1..200 characters).
    #[arg(long, value_name = "TEAM", value_parser = NonEmptyStringValueParser::new())]
    pub team: String,
    /// Release expected to carry the fix, e.g. 2.4.1.
    #[arg(long, value_name = "RELEASE")]
    pub target_release: Option<String>,
    /// Due date overriding the SLA policy (RFC 3339, e.g.
    /// 2026-12-01T00:00:00Z); needs --due-reason.
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp, requires = "due_reason")]
    pub due: Option<Timestamp>,
    /// Why the due date deviates from the SLA policy (with --due).
    #[arg(long, value_name = "TEXT", value_parser = NonEmptyStringValueParser::new(), requires = "due")]
    pub due_reason: Option<String>,
    /// What exactly is done.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Re-plan this existing action (its id, from `remediation plan`)
    /// instead of planning a new one.
    #[arg(long, value_name = "ID", value_parser = NonEmptyStringValueParser::new())]
    pub action_id: Option<String>,
}

/// `remediation release`.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub target: Target,
    /// Product, one of the plan's products.
    #[arg(long, value_name = "PRODUCT", value_parser = NonEmptyStringValueParser::new())]
    pub product: String,
    /// Version containing the fix.
    #[arg(long, value_name = "VERSION", value_parser = NonEmptyStringValueParser::new())]
    pub fixed_version: String,
    /// Id of the action the release fulfils.
    #[arg(long, value_name = "ID", value_parser = NonEmptyStringValueParser::new())]
    pub action_id: Option<String>,
    /// When the release shipped (RFC 3339). Default: now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    pub released_at: Option<Timestamp>,
    /// Release notes URL (https).
    #[arg(long, value_name = "URL", value_parser = parse_https_url)]
    pub notes_url: Option<String>,
}

/// The fields of `remediation status`; [`StatusArgs`] checks that they fit
/// together.
#[derive(Debug, Clone, Args)]
pub struct StatusFields {
    #[command(flatten)]
    pub target: Target,
    /// Product, one of the plan's products.
    #[arg(long, value_name = "PRODUCT", value_parser = NonEmptyStringValueParser::new())]
    pub product: String,
    /// A version (e.g. 2.4.0) or a "vers" range (e.g. 'vers:semver/<2.4.1').
    #[arg(long, value_name = "VERSION", value_parser = NonEmptyStringValueParser::new())]
    pub version: String,
    /// VEX status of that version.
    #[arg(long, value_enum)]
    pub status: StatusArg,
    /// Why the version is not affected: required with --status not-affected,
    /// refused with any other status.
    #[arg(long, value_enum)]
    pub justification: Option<JustificationArg>,
    /// Impact or action statement, e.g. "Update to 2.4.1.".
    #[arg(long, value_name = "TEXT")]
    pub statement: Option<String>,
}

/// `remediation status`: [`StatusFields`], refused at parse time when
/// `--status not-affected` lacks `--justification` (or another status has one).
#[derive(Debug, Clone)]
pub struct StatusArgs(pub StatusFields);

impl StatusFields {
    fn check(&self) -> Result<(), clap::Error> {
        match (self.status, self.justification) {
            (StatusArg::NotAffected, None) => Err(clap::Error::raw(
                ErrorKind::MissingRequiredArgument,
                "--status not-affected needs --justification: why the version is not affected \
                 (component-not-present, vulnerable-code-not-present, vulnerable-code-not-in-execute-path, \
                 vulnerable-code-cannot-be-controlled-by-adversary, inline-mitigations-already-exist)",
            )),
            (status, Some(_)) if status != StatusArg::NotAffected => Err(clap::Error::raw(
                ErrorKind::ArgumentConflict,
                format!(
                    "--justification applies to --status not-affected only, not to --status {}",
                    status.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
                ),
            )),
            _ => Ok(()),
        }
    }
}

impl FromArgMatches for StatusArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let fields = StatusFields::from_arg_matches(matches)?;
        fields.check()?;
        Ok(Self(fields))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)?;
        self.0.check()
    }
}

impl Args for StatusArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        StatusFields::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        StatusFields::augment_args_for_update(cmd)
    }
}

/// `remediation verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub target: Target,
    /// Id of the verified action (from `remediation plan`).
    #[arg(long, value_name = "ID", value_parser = NonEmptyStringValueParser::new())]
    pub action_id: String,
    /// How it was verified.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// `remediation overdue`.
#[derive(Debug, Args)]
pub struct OverdueArgs {
    /// Only actions owned by this team.
    #[arg(long, value_name = "TEAM")]
    pub team: Option<String>,
    /// Only actions for this product.
    #[arg(long, value_name = "PRODUCT")]
    pub product: Option<String>,
    /// Actions per page (server default 100, at most 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub page_size: Option<i32>,
    /// Continue from the page token printed by an earlier listing.
    #[arg(long, value_name = "TOKEN")]
    pub page_token: Option<String>,
}

/// `--action` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActionArg {
    /// A fixed release (patch, update).
    Fix,
    /// A configuration or usage change customers can apply themselves.
    Workaround,
    /// A measure that reduces the risk without removing the vulnerability.
    Mitigation,
    /// Suspend the product or service (or a feature) until fixed.
    Suspend,
    /// No action (end of life, risk accepted); say why in --description.
    None,
}

/// `--status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    /// The version is affected.
    Affected,
    /// The version is not affected (needs --justification).
    NotAffected,
    /// The version contains the fix.
    Fixed,
    /// Still being investigated.
    UnderInvestigation,
}

/// `--justification` values (CSAF / OpenVEX justifications).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JustificationArg {
    /// The vulnerable component is not part of the product.
    ComponentNotPresent,
    /// The component is present but not the vulnerable code.
    VulnerableCodeNotPresent,
    /// The vulnerable code is present but never executed.
    VulnerableCodeNotInExecutePath,
    /// The vulnerable code cannot be controlled by an adversary.
    VulnerableCodeCannotBeControlledByAdversary,
    /// Built-in protections prevent exploitation.
    InlineMitigationsAlreadyExist,
}

impl From<ActionArg> for RemediationAction {
    fn from(value: ActionArg) -> Self {
        match value {
            ActionArg::Fix => RemediationAction::Fix,
            ActionArg::Workaround => RemediationAction::Workaround,
            ActionArg::Mitigation => RemediationAction::Mitigation,
            ActionArg::Suspend => RemediationAction::Suspend,
            ActionArg::None => RemediationAction::None,
        }
    }
}

impl From<StatusArg> for ProductStatus {
    fn from(value: StatusArg) -> Self {
        match value {
            StatusArg::Affected => ProductStatus::KnownAffected,
            StatusArg::NotAffected => ProductStatus::KnownNotAffected,
            StatusArg::Fixed => ProductStatus::Fixed,
            StatusArg::UnderInvestigation => ProductStatus::UnderInvestigation,
        }
    }
}

impl From<JustificationArg> for VexJustification {
    fn from(value: JustificationArg) -> Self {
        match value {
            JustificationArg::ComponentNotPresent => VexJustification::ComponentNotPresent,
            JustificationArg::VulnerableCodeNotPresent => VexJustification::VulnerableCodeNotPresent,
            JustificationArg::VulnerableCodeNotInExecutePath => {
                VexJustification::VulnerableCodeNotInExecutePath
            }
            JustificationArg::VulnerableCodeCannotBeControlledByAdversary => {
                VexJustification::VulnerableCodeCannotBeControlledByAdversary
            }
            JustificationArg::InlineMitigationsAlreadyExist => {
                VexJustification::InlineMitigationsAlreadyExist
            }
        }
    }
}

/// An `https://host/...` URL (release notes, references), passed on as given.
pub fn parse_https_url(value: &str) -> Result<String, String> {
    let value = value.trim();
    let rest = value
        .strip_prefix("https://")
        .ok_or_else(|| "must be an https:// URL, e.g. https://example.com/notes".to_owned())?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Err("the URL has no host".to_owned());
    }
    if value.chars().any(char::is_whitespace) || value.chars().count() > 2048 {
        return Err("must be a URL of at most 2048 characters without spaces".to_owned());
    }
    Ok(value.to_owned())
}

/// The request of one `remediation` command, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub enum RemediationRequest {
    Plan(GetPlanRequest),
    Action(PlanActionRequest),
    Release(RecordReleaseRequest),
    Status(SetProductStatusRequest),
    Verify(VerifyRemediationRequest),
    Overdue(ListOverdueRequest),
}

impl RemediationCommand {
    /// The case argument and the controls of a command that changes the
    /// plan; `None` for `plan` and `overdue`.
    pub fn target(&self) -> Option<&Target> {
        match self {
            RemediationCommand::Action(a) => Some(&a.target),
            RemediationCommand::Release(a) => Some(&a.target),
            RemediationCommand::Status(a) => Some(&a.0.target),
            RemediationCommand::Verify(a) => Some(&a.target),
            RemediationCommand::Plan(_) | RemediationCommand::Overdue(_) => None,
        }
    }

    /// The case argument (id or key), if the command takes one.
    pub fn case(&self) -> Option<&str> {
        match self {
            RemediationCommand::Plan(a) => Some(&a.case),
            RemediationCommand::Overdue(_) => None,
            _ => self.target().map(|t| t.case.as_str()),
        }
    }

    /// The request for the case `case_id` (already resolved from a key; ignored
    /// by `overdue`) with idempotency key `request_id` (ignored by the reads).
    /// `now` is the default release time of `release`.
    pub fn build(&self, case_id: String, request_id: String, now: Timestamp) -> RemediationRequest {
        let expected_version = self.target().and_then(|t| t.expected_version);
        let text = |t: &Option<String>| t.clone().unwrap_or_default();
        match self {
            RemediationCommand::Plan(_) => RemediationRequest::Plan(GetPlanRequest { case_id }),
            RemediationCommand::Action(a) => RemediationRequest::Action(PlanActionRequest {
                case_id,
                request_id,
                expected_version,
                action_id: text(&a.action_id),
                target: Some(a.product.clone()),
                action: RemediationAction::from(a.action) as i32,
                owner_team: a.team.clone(),
                target_release: text(&a.target_release),
                due_at_override: a.due,
                due_date_override_reason: text(&a.due_reason),
                description: text(&a.description),
            }),
            RemediationCommand::Release(a) => RemediationRequest::Release(RecordReleaseRequest {
                case_id,
                request_id,
                expected_version,
                action_id: text(&a.action_id),
                product: a.product.clone(),
                fixed_version: a.fixed_version.clone(),
                released_at: Some(a.released_at.unwrap_or(now)),
                release_notes_url: text(&a.notes_url),
            }),
            RemediationCommand::Status(StatusArgs(a)) => {
                RemediationRequest::Status(SetProductStatusRequest {
                    case_id,
                    request_id,
                    expected_version,
                    product: a.product.clone(),
                    version: a.version.clone(),
                    status: ProductStatus::from(a.status) as i32,
                    justification: a
                        .justification
                        .map_or(VexJustification::Unspecified, VexJustification::from)
                        as i32,
                    statement: text(&a.statement),
                })
            }
            RemediationCommand::Verify(a) => RemediationRequest::Verify(VerifyRemediationRequest {
                case_id,
                request_id,
                expected_version,
                action_id: a.action_id.clone(),
                verification_note: text(&a.note),
            }),
            RemediationCommand::Overdue(a) => RemediationRequest::Overdue(ListOverdueRequest {
                owner_team: text(&a.team),
                product: text(&a.product),
                page_size: a.page_size.unwrap_or(0),
                page_token: text(&a.page_token),
            }),
        }
    }
}

/// The current time as a protobuf timestamp (whole seconds).
pub fn now() -> Timestamp {
    Timestamp { seconds: OffsetDateTime::now_utc().unix_timestamp(), nanos: 0 }
}

/// The case id for a case argument: an id as it is (no connection), a key
/// looked up at the triage service (`--triage-server`).
pub async fn resolve_case(global: &GlobalArgs, case: &str) -> Result<String, CliError> {
    match CaseRef::parse(case) {
        CaseRef::Id(id) => Ok(id),
        CaseRef::Key(_) => {
            let connection = Connection::open(global, &global.triage_server).await?;
            resolve_case_id(&mut connection.cases(), case).await
        }
    }
}

/// A response of the remediation service.
#[derive(Debug, Clone, PartialEq)]
pub enum RemediationResponse {
    Plan(GetPlanResponse),
    Action(PlanActionResponse),
    Release(RecordReleaseResponse),
    Status(SetProductStatusResponse),
    Verify(VerifyRemediationResponse),
    Overdue(ListOverdueResponse),
}

/// Sends one request.
pub async fn send(
    client: &mut RemediationClient,
    request: RemediationRequest,
) -> Result<RemediationResponse, Status> {
    Ok(match request {
        RemediationRequest::Plan(r) => RemediationResponse::Plan(client.get_plan(r).await?.into_inner()),
        RemediationRequest::Action(r) => {
            RemediationResponse::Action(client.plan_action(r).await?.into_inner())
        }
        RemediationRequest::Release(r) => {
            RemediationResponse::Release(client.record_release(r).await?.into_inner())
        }
        RemediationRequest::Status(r) => {
            RemediationResponse::Status(client.set_product_status(r).await?.into_inner())
        }
        RemediationRequest::Verify(r) => {
            RemediationResponse::Verify(client.verify_remediation(r).await?.into_inner())
        }
        RemediationRequest::Overdue(r) => {
            RemediationResponse::Overdue(client.list_overdue(r).await?.into_inner())
        }
    })
}

/// Runs one `remediation` command: resolves a case key, sends the request,
/// prints the plan (table; JSON: the RPC's response, `{"plan": ...}`) or the
/// overdue actions.
pub async fn run(
    global: &GlobalArgs,
    command: RemediationCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let request_id = crate::report::request_id(command.target().and_then(|t| t.request_id.clone()));
    let case_id = match command.case() {
        Some(case) => resolve_case(global, case).await?,
        None => String::new(),
    };
    let request = command.build(case_id, request_id.clone(), now());
    let connection = Connection::open(global, &global.remediation_server).await?;
    let response = match send(&mut connection.remediation(), request).await {
        Ok(response) => response,
        Err(status) => {
            if command.target().is_some() && crate::error::may_have_been_applied(&status) {
                eprintln!("to retry safely: --request-id {request_id}");
            }
            return Err(status.into());
        }
    };
    let shown_request_id = command.target().is_some().then_some(request_id.as_str());
    match (global.output, response) {
        (OutputFormat::Json, RemediationResponse::Plan(r)) => output::write_json(out, &r),
        (OutputFormat::Json, RemediationResponse::Action(r)) => output::write_json(out, &r),
        (OutputFormat::Json, RemediationResponse::Release(r)) => output::write_json(out, &r),
        (OutputFormat::Json, RemediationResponse::Status(r)) => output::write_json(out, &r),
        (OutputFormat::Json, RemediationResponse::Verify(r)) => output::write_json(out, &r),
        (OutputFormat::Json, RemediationResponse::Overdue(r)) => output::write_json(out, &r),
        (OutputFormat::Table, RemediationResponse::Overdue(r)) => {
            write_overdue(out, &r)?;
            if !r.next_page_token.is_empty() {
                eprintln!("more actions: --page-token {}", r.next_page_token);
            }
            Ok(())
        }
        (OutputFormat::Table, RemediationResponse::Action(r)) => {
            let mut fields = vec![("Action ID", r.action_id.clone())];
            if let Some(id) = shown_request_id {
                fields.push(("Request ID", id.to_owned()));
            }
            output::write_fields(out, &fields)?;
            writeln!(out)?;
            write_plan(out, &r.plan.unwrap_or_default())?;
            Ok(())
        }
        (OutputFormat::Table, response) => {
            let plan = match response {
                RemediationResponse::Plan(r) => r.plan,
                RemediationResponse::Release(r) => r.plan,
                RemediationResponse::Status(r) => r.plan,
                RemediationResponse::Verify(r) => r.plan,
                RemediationResponse::Action(r) => r.plan,
                RemediationResponse::Overdue(_) => None,
            };
            if let Some(id) = shown_request_id {
                output::write_fields(out, &[("Request ID", id.to_owned())])?;
                writeln!(out)?;
            }
            write_plan(out, &plan.unwrap_or_default())?;
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/// `vers:semver/<2.4.1` or `1.0,1.1`: the versions part of the `--product`
/// syntax.
pub fn versions_label(target: Option<&ProductVersionRange>) -> String {
    match target.and_then(|t| t.versions.as_ref()) {
        Some(product_version_range::Versions::Range(range)) => range.clone(),
        Some(product_version_range::Versions::Explicit(list)) => list.versions.join(","),
        None => "-".to_owned(),
    }
}

pub fn action_label(action: i32) -> String {
    let name = RemediationAction::try_from(action).ok().map(|a| a.as_str_name());
    output::enum_label(name, "REMEDIATION_ACTION_", action)
}

pub fn state_label(state: i32) -> String {
    let name = ActionState::try_from(state).ok().map(|s| s.as_str_name());
    output::enum_label(name, "ACTION_STATE_", state)
}

/// `not-affected`, matching the `--status` values.
pub fn product_status_label(status: i32) -> String {
    match ProductStatus::try_from(status) {
        Ok(ProductStatus::KnownAffected) => "affected".to_owned(),
        Ok(ProductStatus::KnownNotAffected) => "not-affected".to_owned(),
        other => output::enum_label(other.ok().map(|s| s.as_str_name()), "PRODUCT_STATUS_", status)
            .replace('_', "-"),
    }
}

/// `vulnerable-code-not-present`, matching the `--justification` values;
/// `-` when unset.
pub fn justification_label(justification: i32) -> String {
    match VexJustification::try_from(justification) {
        Ok(VexJustification::Unspecified) => "-".to_owned(),
        other => output::enum_label(other.ok().map(|j| j.as_str_name()), "VEX_JUSTIFICATION_", justification)
            .replace('_', "-"),
    }
}

/// The plan: a key/value block, then the actions, releases and statuses.
pub fn write_plan(out: &mut dyn Write, plan: &Plan) -> std::io::Result<()> {
    let products: Vec<String> = plan.affected_products.iter().map(crate::case::product_label).collect();
    output::write_fields(
        out,
        &[
            ("Case ID", output::or_dash(&plan.case_id)),
            ("Case key", output::or_dash(&plan.case_key)),
            ("Plan ID", output::or_dash(&plan.plan_id)),
            ("Severity", crate::case::rating_label(plan.severity)),
            ("SLA policy", output::or_dash(&plan.sla_policy)),
            ("Products", if products.is_empty() { "-".to_owned() } else { products.join("; ") }),
            ("Complete", if plan.complete { "yes" } else { "no" }.to_owned()),
            ("Version", plan.version.to_string()),
            ("Opened", output::timestamp(plan.opened_at.as_ref())),
            ("Updated", output::timestamp(plan.updated_at.as_ref())),
        ],
    )?;

    writeln!(out, "\nActions:")?;
    if plan.actions.is_empty() {
        writeln!(out, "  none")?;
    } else {
        let mut table =
            Table::new(["ID", "PRODUCT", "VERSIONS", "ACTION", "TEAM", "DUE", "STATE", "OVERDUE"]);
        for a in &plan.actions {
            table.row([
                a.action_id.clone(),
                a.target.as_ref().map_or_else(|| "-".to_owned(), |t| t.product.clone()),
                versions_label(a.target.as_ref()),
                action_label(a.action),
                output::or_dash(&a.owner_team),
                output::timestamp(a.due_at.as_ref()),
                state_label(a.state),
                if a.overdue { "yes" } else { "no" }.to_owned(),
            ]);
        }
        table.write_indented(out, 2)?;
    }

    writeln!(out, "\nReleases:")?;
    if plan.releases.is_empty() {
        writeln!(out, "  none")?;
    } else {
        let mut table = Table::new(["PRODUCT", "FIXED VERSION", "RELEASED", "ACTION", "NOTES"]);
        for r in &plan.releases {
            table.row([
                r.product.clone(),
                r.fixed_version.clone(),
                output::timestamp(r.released_at.as_ref()),
                output::or_dash(&r.action_id),
                output::or_dash(&r.release_notes_url),
            ]);
        }
        table.write_indented(out, 2)?;
    }

    writeln!(out, "\nStatuses:")?;
    if plan.statuses.is_empty() {
        writeln!(out, "  none")?;
    } else {
        let mut table = Table::new(["PRODUCT", "VERSION", "STATUS", "JUSTIFICATION", "SET", "STATEMENT"]);
        for s in &plan.statuses {
            table.row([
                s.product.clone(),
                s.version.clone(),
                product_status_label(s.status),
                justification_label(s.justification),
                output::timestamp(s.set_at.as_ref()),
                output::truncate(&output::or_dash(&s.statement), 60),
            ]);
        }
        table.write_indented(out, 2)?;
    }
    Ok(())
}

/// The overdue actions, one row each.
pub fn write_overdue(out: &mut dyn Write, page: &ListOverdueResponse) -> std::io::Result<()> {
    if page.actions.is_empty() {
        return writeln!(out, "No overdue actions.");
    }
    let mut table =
        Table::new(["CASE", "SEVERITY", "ACTION ID", "PRODUCT", "VERSIONS", "ACTION", "TEAM", "DUE"]);
    for o in &page.actions {
        let action = o.action.clone().unwrap_or_default();
        table.row([
            if o.case_key.is_empty() { o.case_id.clone() } else { o.case_key.clone() },
            crate::case::rating_label(o.severity),
            action.action_id.clone(),
            action.target.as_ref().map_or_else(|| "-".to_owned(), |t| t.product.clone()),
            versions_label(action.target.as_ref()),
            action_label(action.action),
            output::or_dash(&action.owner_team),
            output::timestamp(action.due_at.as_ref()),
        ]);
    }
    table.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;
    use psirt_proto::common::VersionList;
    use psirt_proto::remediation::{OverdueAction, PlannedAction, ProductVersionStatus, Release};

    const CASE: &str = "0190f5a4-0000-4000-8000-000000000001";
    const NOW: Timestamp = Timestamp { seconds: 1_800_000_000, nanos: 0 };

    fn parse(args: &[&str]) -> Result<crate::Cli, clap::Error> {
        crate::Cli::try_parse_from(["psirtctl", "remediation"].into_iter().chain(args.iter().copied()))
    }

    fn command(args: &[&str]) -> RemediationCommand {
        match parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}")).command {
            crate::Command::Remediation(command) => command,
            other => panic!("not a remediation command: {other:?}"),
        }
    }

    fn request(args: &[&str]) -> RemediationRequest {
        command(args).build("c1".to_owned(), "r1".to_owned(), NOW)
    }

    fn error(args: &[&str]) -> String {
        parse(args).map(|_| ()).expect_err("refused").to_string()
    }

    #[test]
    fn mutating_commands_take_the_common_options() {
        for sub in [
            &["action", "--product", "a=1", "--action", "fix", "--team", "t"][..],
            &["release", "--product", "a", "--fixed-version", "1.1"],
            &["status", "--product", "a", "--version", "1", "--status", "affected"],
            &["verify", "--action-id", "x"],
        ] {
            let mut args =
                vec![sub[0], "PSIRT-2026-0007", "--expected-version", "12", "--request-id", "req.1:a-b_c"];
            args.extend_from_slice(&sub[1..]);
            let command = command(&args);
            let target = command.target().expect("a target");
            assert_eq!(target.case, "PSIRT-2026-0007");
            assert_eq!(command.case(), Some("PSIRT-2026-0007"));
            assert_eq!(target.expected_version, Some(12));
            assert_eq!(target.request_id.as_deref(), Some("req.1:a-b_c"));
            let mut no_case = vec![sub[0]];
            no_case.extend_from_slice(&sub[1..]);
            assert!(parse(&no_case).is_err(), "{no_case:?} without a case");
            let mut bad_id = args.clone();
            bad_id[5] = "has space";
            assert!(parse(&bad_id).is_err(), "{bad_id:?}");
        }
        assert!(parse(&["plan", ""]).is_err());
        assert!(parse(&["plan"]).is_err());
        assert!(parse(&["plan", CASE, "--request-id", "x"]).is_err(), "plan is a read");
    }

    #[test]
    fn remediation_server_option() {
        let cli = parse(&["plan", CASE, "--remediation-server", "psirt.example:7000"]).expect("parses");
        assert_eq!(cli.global.remediation_server, "http://psirt.example:7000");
        let cli = parse(&["plan", CASE]).expect("parses");
        assert_eq!(cli.global.remediation_server, crate::client::DEFAULT_REMEDIATION_SERVER);
        let cli = parse(&["plan", CASE, "--remediation-server", "https://x:1"]).expect("TLS endpoint");
        assert_eq!(cli.global.remediation_server, "https://x:1");
        assert!(parse(&["plan", CASE, "--remediation-server", "ftp://x:1"]).is_err());
    }

    #[test]
    fn plan() {
        assert_eq!(
            request(&["plan", CASE]),
            RemediationRequest::Plan(GetPlanRequest { case_id: "c1".to_owned() })
        );
        assert!(command(&["plan", CASE]).target().is_none());
    }

    #[test]
    fn action_maps_every_field() {
        assert_eq!(
            request(&[
                "action",
                CASE,
                "--product",
                "acme-gateway@vers:semver/>=2.0.0|<2.4.1",
                "--action",
                "fix",
                "--team",
                "gateway-team",
                "--target-release",
                "2.4.1",
                "--due",
                "2027-01-15T00:00:00Z",
                "--due-reason",
                "promised to the reporter",
                "--description",
                "Escape device names.",
                "--action-id",
                "a-1",
                "--expected-version",
                "4",
            ]),
            RemediationRequest::Action(PlanActionRequest {
                case_id: "c1".to_owned(),
                request_id: "r1".to_owned(),
                expected_version: Some(4),
                action_id: "a-1".to_owned(),
                target: Some(ProductVersionRange {
                    product: "acme-gateway".to_owned(),
                    versions: Some(product_version_range::Versions::Range(
                        "vers:semver/>=2.0.0|<2.4.1".to_owned()
                    )),
                }),
                action: RemediationAction::Fix as i32,
                owner_team: "gateway-team".to_owned(),
                target_release: "2.4.1".to_owned(),
                due_at_override: Some(Timestamp { seconds: 1_799_971_200, nanos: 0 }),
                due_date_override_reason: "promised to the reporter".to_owned(),
                description: "Escape device names.".to_owned(),
            })
        );
        let RemediationRequest::Action(r) = request(&[
            "action",
            CASE,
            "--product",
            "acme-portal=1.0, 1.1",
            "--action",
            "none",
            "--team",
            "t",
        ]) else {
            panic!("not action")
        };
        assert_eq!(
            r.target.and_then(|t| t.versions),
            Some(product_version_range::Versions::Explicit(VersionList {
                versions: vec!["1.0".to_owned(), "1.1".to_owned()]
            }))
        );
        assert_eq!((r.action_id.as_str(), r.due_at_override, r.target_release.as_str()), ("", None, ""));
        for (value, action) in [
            ("fix", RemediationAction::Fix),
            ("workaround", RemediationAction::Workaround),
            ("mitigation", RemediationAction::Mitigation),
            ("suspend", RemediationAction::Suspend),
            ("none", RemediationAction::None),
        ] {
            let RemediationRequest::Action(r) =
                request(&["action", CASE, "--product", "a=1", "--action", value, "--team", "t"])
            else {
                panic!()
            };
            assert_eq!(r.action, action as i32, "{value}");
        }
    }

    #[test]
    fn action_refuses_bad_input() {
        let ok = ["action", CASE, "--product", "a=1", "--action", "fix", "--team", "t"];
        assert!(parse(&ok).is_ok());
        let without = |skip: &str| -> Vec<&str> {
            let i = ok.iter().position(|a| *a == skip).expect("option");
            ok.iter().enumerate().filter(|(j, _)| *j != i && *j != i + 1).map(|(_, a)| *a).collect()
        };
        assert!(parse(&without("--product")).is_err());
        assert!(parse(&without("--action")).is_err());
        assert!(parse(&without("--team")).is_err());
        let with =
            |extra: &[&'static str]| -> Vec<&'static str> { ok.iter().chain(extra).copied().collect() };
        assert!(parse(&with(&["--due", "2027-01-15T00:00:00Z"])).is_err(), "--due needs --due-reason");
        assert!(parse(&with(&["--due-reason", "why"])).is_err(), "--due-reason needs --due");
        assert!(parse(&with(&["--due", "2027-01-15", "--due-reason", "why"])).is_err(), "not RFC 3339");
        assert!(parse(&with(&["--action-id", ""])).is_err());
        let mut bad = ok.to_vec();
        bad[3] = "acme";
        assert!(parse(&bad).is_err(), "product without versions");
        bad[3] = "a=1";
        bad[5] = "patch";
        assert!(parse(&bad).is_err(), "unknown action");
        bad[5] = "fix";
        bad[7] = "";
        assert!(parse(&bad).is_err(), "empty team");
    }

    #[test]
    fn release_maps_every_field() {
        assert_eq!(
            request(&[
                "release",
                CASE,
                "--product",
                "acme-gateway",
                "--fixed-version",
                "2.4.1",
                "--action-id",
                "a-1",
                "--released-at",
                "2026-11-20T10:00:00Z",
                "--notes-url",
                "https://psirt.acme.example/notes/2.4.1",
            ]),
            RemediationRequest::Release(RecordReleaseRequest {
                case_id: "c1".to_owned(),
                request_id: "r1".to_owned(),
                expected_version: None,
                action_id: "a-1".to_owned(),
                product: "acme-gateway".to_owned(),
                fixed_version: "2.4.1".to_owned(),
                released_at: Some(Timestamp { seconds: 1_795_168_800, nanos: 0 }),
                release_notes_url: "https://psirt.acme.example/notes/2.4.1".to_owned(),
            })
        );
        // Released now by default.
        let RemediationRequest::Release(r) =
            request(&["release", CASE, "--product", "p", "--fixed-version", "1"])
        else {
            panic!()
        };
        assert_eq!(r.released_at, Some(NOW));
        assert_eq!((r.action_id.as_str(), r.release_notes_url.as_str()), ("", ""));
        assert!(parse(&["release", CASE, "--product", "p"]).is_err(), "fixed version required");
        assert!(parse(&["release", CASE, "--fixed-version", "1"]).is_err(), "product required");
        for url in ["http://x.example/n", "https://", "notes", "https://x.example/a b"] {
            assert!(
                parse(&["release", CASE, "--product", "p", "--fixed-version", "1", "--notes-url", url])
                    .is_err(),
                "{url}"
            );
        }
        assert!(
            parse(&["release", CASE, "--product", "p", "--fixed-version", "1", "--released-at", "yesterday"])
                .is_err()
        );
    }

    #[test]
    fn status_maps_every_field() {
        assert_eq!(
            request(&[
                "status",
                CASE,
                "--product",
                "acme-agent",
                "--version",
                "vers:semver/<1.9.0",
                "--status",
                "not-affected",
                "--justification",
                "vulnerable-code-not-in-execute-path",
                "--statement",
                "The agent never renders the console.",
                "--expected-version",
                "7",
            ]),
            RemediationRequest::Status(SetProductStatusRequest {
                case_id: "c1".to_owned(),
                request_id: "r1".to_owned(),
                expected_version: Some(7),
                product: "acme-agent".to_owned(),
                version: "vers:semver/<1.9.0".to_owned(),
                status: ProductStatus::KnownNotAffected as i32,
                justification: VexJustification::VulnerableCodeNotInExecutePath as i32,
                statement: "The agent never renders the console.".to_owned(),
            })
        );
        for (value, status) in [
            ("affected", ProductStatus::KnownAffected),
            ("fixed", ProductStatus::Fixed),
            ("under-investigation", ProductStatus::UnderInvestigation),
        ] {
            let RemediationRequest::Status(r) =
                request(&["status", CASE, "--product", "p", "--version", "1", "--status", value])
            else {
                panic!()
            };
            assert_eq!((r.status, r.justification), (status as i32, 0), "{value}");
        }
        for (value, justification) in [
            ("component-not-present", VexJustification::ComponentNotPresent),
            ("vulnerable-code-not-present", VexJustification::VulnerableCodeNotPresent),
            ("vulnerable-code-not-in-execute-path", VexJustification::VulnerableCodeNotInExecutePath),
            (
                "vulnerable-code-cannot-be-controlled-by-adversary",
                VexJustification::VulnerableCodeCannotBeControlledByAdversary,
            ),
            ("inline-mitigations-already-exist", VexJustification::InlineMitigationsAlreadyExist),
        ] {
            let RemediationRequest::Status(r) = request(&[
                "status",
                CASE,
                "--product",
                "p",
                "--version",
                "1",
                "--status",
                "not-affected",
                "--justification",
                value,
            ]) else {
                panic!()
            };
            assert_eq!(r.justification, justification as i32, "{value}");
        }
    }

    #[test]
    fn not_affected_needs_a_justification_at_parse_time() {
        let message =
            error(&["status", CASE, "--product", "p", "--version", "1", "--status", "not-affected"]);
        assert!(message.contains("--status not-affected needs --justification"), "{message}");
        let err = parse(&["status", CASE, "--product", "p", "--version", "1", "--status", "not-affected"])
            .map(|_| ())
            .expect_err("refused");
        assert_eq!(err.exit_code(), 2);
        let message = error(&[
            "status",
            CASE,
            "--product",
            "p",
            "--version",
            "1",
            "--status",
            "affected",
            "--justification",
            "component-not-present",
        ]);
        assert!(message.contains("not-affected only"), "{message}");
        assert!(parse(&["status", CASE, "--product", "p", "--version", "1", "--status", "broken"]).is_err());
        assert!(parse(&["status", CASE, "--product", "p", "--version", "1"]).is_err(), "status required");
        assert!(parse(&["status", CASE, "--product", "p", "--status", "fixed"]).is_err(), "version required");
    }

    #[test]
    fn verify_and_overdue() {
        assert_eq!(
            request(&["verify", CASE, "--action-id", "a-1", "--note", "retested with the PoC"]),
            RemediationRequest::Verify(VerifyRemediationRequest {
                case_id: "c1".to_owned(),
                request_id: "r1".to_owned(),
                expected_version: None,
                action_id: "a-1".to_owned(),
                verification_note: "retested with the PoC".to_owned(),
            })
        );
        assert!(parse(&["verify", CASE]).is_err(), "action id required");

        assert_eq!(
            request(&[
                "overdue",
                "--team",
                "web",
                "--product",
                "acme-portal",
                "--page-size",
                "20",
                "--page-token",
                "t2"
            ]),
            RemediationRequest::Overdue(ListOverdueRequest {
                owner_team: "web".to_owned(),
                product: "acme-portal".to_owned(),
                page_size: 20,
                page_token: "t2".to_owned(),
            })
        );
        assert_eq!(request(&["overdue"]), RemediationRequest::Overdue(ListOverdueRequest::default()));
        assert!(command(&["overdue"]).case().is_none());
        for bad in ["0", "1001", "-1", "ten"] {
            assert!(parse(&["overdue", "--page-size", bad]).is_err(), "{bad}");
        }
        assert!(parse(&["overdue", CASE]).is_err(), "takes no case");
    }

    fn render(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
        let mut buf = Vec::new();
        f(&mut buf).expect("write");
        String::from_utf8(buf).expect("utf-8")
    }

    #[test]
    fn plan_table() {
        let plan = Plan {
            case_id: "c1".to_owned(),
            case_key: "PSIRT-2026-0001".to_owned(),
            plan_id: "p1".to_owned(),
            version: 5,
            actions: vec![PlannedAction {
                action_id: "a1".to_owned(),
                target: Some(ProductVersionRange {
                    product: "acme-gateway".to_owned(),
                    versions: Some(product_version_range::Versions::Range("vers:semver/<2.4.1".to_owned())),
                }),
                action: RemediationAction::Fix as i32,
                owner_team: "gw".to_owned(),
                due_at: Some(Timestamp { seconds: 0, nanos: 0 }),
                state: ActionState::Open as i32,
                overdue: true,
                ..PlannedAction::default()
            }],
            releases: vec![Release {
                product: "acme-gateway".to_owned(),
                fixed_version: "2.4.1".to_owned(),
                ..Release::default()
            }],
            statuses: vec![ProductVersionStatus {
                product: "acme-agent".to_owned(),
                version: "1.0".to_owned(),
                status: ProductStatus::KnownNotAffected as i32,
                justification: VexJustification::ComponentNotPresent as i32,
                ..ProductVersionStatus::default()
            }],
            ..Plan::default()
        };
        let text = render(|w| write_plan(w, &plan));
        assert!(text.contains("Case key:    PSIRT-2026-0001"), "{text}");
        assert!(
            text.contains(
                "ID  PRODUCT       VERSIONS            ACTION  TEAM  DUE                   STATE  OVERDUE"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "a1  acme-gateway  vers:semver/<2.4.1  fix     gw    1970-01-01T00:00:00Z  open   yes"
            ),
            "{text}"
        );
        assert!(text.contains("acme-gateway  2.4.1"), "{text}");
        assert!(text.contains("acme-agent  1.0      not-affected  component-not-present"), "{text}");

        let empty = render(|w| write_plan(w, &Plan::default()));
        assert_eq!(empty.matches("  none").count(), 3, "{empty}");

        let page = ListOverdueResponse {
            actions: vec![OverdueAction {
                case_key: "PSIRT-2026-0001".to_owned(),
                action: plan.actions.first().cloned(),
                ..OverdueAction::default()
            }],
            next_page_token: String::new(),
        };
        let text = render(|w| write_overdue(w, &page));
        assert!(text.starts_with("CASE"), "{text}");
        assert!(text.contains("PSIRT-2026-0001  unassessed  a1"), "{text}");
        assert_eq!(render(|w| write_overdue(w, &ListOverdueResponse::default())), "No overdue actions.\n");
    }

    #[test]
    fn labels() {
        assert_eq!(product_status_label(ProductStatus::UnderInvestigation as i32), "under-investigation");
        assert_eq!(product_status_label(ProductStatus::Fixed as i32), "fixed");
        assert_eq!(product_status_label(99), "unknown(99)");
        assert_eq!(justification_label(0), "-");
        assert_eq!(
            justification_label(VexJustification::InlineMitigationsAlreadyExist as i32),
            "inline-mitigations-already-exist"
        );
        assert_eq!(state_label(ActionState::Settled as i32), "settled");
        assert_eq!(action_label(RemediationAction::Workaround as i32), "workaround");
    }
}
