//! `psirtctl triage ...`: one command per `TriageService` RPC. Each takes a
//! case (id or key), `--expected-version` and `--request-id`, and prints the
//! case as the command left it. Requests are built by pure functions from the
//! parsed arguments ([`TriageCommand::build`]); values the server would
//! reject for their form (CVE ids, disclosure times, product syntax, request
//! ids) are caught while parsing, before connecting.

use std::io::Write;

use clap::builder::NonEmptyStringValueParser;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use psirt_proto::common::{
    ProductVersionRange, SsvcAutomatable, SsvcExploitation, SsvcPublicSafetyImpact, SsvcTechnicalImpact,
    SsvcValueDensity, VersionList, product_version_range,
};
use psirt_proto::events::{CaseResolution, EscalationLevel, RejectionReason};
use psirt_proto::triage::{
    AcceptCaseRequest, AssessSeverityRequest, AssignCaseRequest, AssignCveRequest, Case, CloseCaseRequest,
    EscalateCaseRequest, GetCaseResponse, MarkDuplicateRequest, RejectCaseRequest, ReopenCaseRequest,
    SetAffectedProductsRequest, SetEmbargoRequest, SsvcInputs, StartTriageRequest,
};
use time::PrimitiveDateTime;
use time::macros::format_description;
use tonic::Status;

use crate::case::{self, resolve_case_id};
use crate::client::{Connection, TriageClient};
use crate::output::{self, OutputFormat};
use crate::{CliError, GlobalArgs};

/// `psirtctl triage <command>`.
#[derive(Debug, Subcommand)]
pub enum TriageCommand {
    /// Start triage of a received case without recording anything else
    /// (received -> triage), e.g. before rejecting it.
    Start(StartArgs),
    /// Assign the case to an analyst, or reassign it.
    Assign(AssignArgs),
    /// Assess (or re-assess) the severity: CVSS vectors and/or SSVC decision
    /// points. Replaces the previous assessment as a whole.
    Assess(AssessArgs),
    /// Set the affected products and versions. Replaces the previous set.
    #[command(after_help = PRODUCTS_HELP)]
    Products(ProductsArgs),
    /// Accept the case as a vulnerability in scope (triage -> accepted);
    /// needs a severity assessment first.
    Accept(AcceptArgs),
    /// Reject the case (triage -> rejected).
    Reject(RejectArgs),
    /// Mark the case a duplicate of another case (triage -> duplicate).
    Duplicate(DuplicateArgs),
    /// Add a CVE id to the case.
    Cve(CveArgs),
    /// Set or move the embargo: the agreed disclosure time, as wall-clock
    /// time in a named time zone.
    Embargo(EmbargoArgs),
    /// Escalate the case to a higher escalation line (never down).
    Escalate(EscalateArgs),
    /// Close the case with resolution, root cause and lessons learned.
    Close(CloseArgs),
    /// Reopen a closed case (closed -> triage).
    Reopen(ReopenArgs),
}

pub(crate) const PRODUCTS_HELP: &str = "\
Product syntax (one --product per product; the name ends at the first '@' or '='):
  NAME@RANGE        a version range in package-url \"vers\" notation
                    e.g. --product 'acme-gateway@vers:semver/>=2.0.0|<2.4.1'
                         --product 'acme-cloud@vers:generic/*'   (all versions)
  NAME=V1,V2,...    an explicit list of versions
                    e.g. --product 'acme-portal=1.0,1.1'
Quote the value: '|', '<' and '>' are special to the shell.";

/// What every triage command takes: the case and the concurrency and
/// idempotency controls.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The case: its id (UUID) or its key (e.g. PSIRT-2026-0001; looked up first).
    #[arg(value_name = "CASE", value_parser = NonEmptyStringValueParser::new())]
    pub case: String,
    /// Apply only if the case is still at this version (`Version` of `case show`).
    #[arg(long, value_name = "N")]
    pub expected_version: Option<u64>,
    /// Idempotency key (1..128 characters of A-Z a-z 0-9 . _ : -); reuse the
    /// one printed by a failed attempt to retry safely. Default: a new UUID.
    #[arg(long, value_name = "ID", value_parser = parse_request_id)]
    pub request_id: Option<String>,
}

/// `triage start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub target: Target,
}

/// `triage assign`.
#[derive(Debug, Args)]
pub struct AssignArgs {
    #[command(flatten)]
    pub target: Target,
    /// User name of the analyst (the `sub` of their token, or their e-mail).
    #[arg(long, value_name = "USER", value_parser = NonEmptyStringValueParser::new())]
    pub assignee: String,
    /// Team the analyst handles the case for.
    #[arg(long)]
    pub team: Option<String>,
}

/// `triage assess`. A part left out is no longer part of the assessment.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("assessment").required(true).multiple(true).args(["cvss_v3", "cvss_v4", "exploitation"])
))]
pub struct AssessArgs {
    #[command(flatten)]
    pub target: Target,
    /// CVSS v3.1 vector, e.g. CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H.
    #[arg(long, value_name = "VECTOR")]
    pub cvss_v3: Option<String>,
    /// CVSS v4.0 vector, e.g. CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N.
    #[arg(long, value_name = "VECTOR")]
    pub cvss_v4: Option<String>,
    /// SSVC Exploitation (with the four other SSVC options).
    #[arg(long, value_enum, help_heading = "SSVC decision points (all five or none)",
          requires_all = ["automatable", "value_density", "technical_impact", "public_safety_impact"])]
    pub exploitation: Option<ExploitationArg>,
    /// SSVC Automatable.
    #[arg(
        long,
        value_enum,
        help_heading = "SSVC decision points (all five or none)",
        requires = "exploitation"
    )]
    pub automatable: Option<AutomatableArg>,
    /// SSVC Value Density.
    #[arg(
        long,
        value_enum,
        help_heading = "SSVC decision points (all five or none)",
        requires = "exploitation"
    )]
    pub value_density: Option<ValueDensityArg>,
    /// SSVC Technical Impact.
    #[arg(
        long,
        value_enum,
        help_heading = "SSVC decision points (all five or none)",
        requires = "exploitation"
    )]
    pub technical_impact: Option<TechnicalImpactArg>,
    /// SSVC Public Safety Impact.
    #[arg(
        long,
        value_enum,
        help_heading = "SSVC decision points (all five or none)",
        requires = "exploitation"
    )]
    pub public_safety_impact: Option<PublicSafetyImpactArg>,
    /// Known to be exploited in the wild (e.g. listed in CISA KEV).
    #[arg(long)]
    pub known_exploited: bool,
    /// EPSS probability of exploitation, 0.0 to 1.0.
    #[arg(long, value_name = "P", value_parser = parse_probability)]
    pub epss: Option<f64>,
    /// EPSS percentile, 0.0 to 1.0 (with --epss).
    #[arg(long, value_name = "P", value_parser = parse_probability, requires = "epss")]
    pub epss_percentile: Option<f64>,
    /// CWE id, e.g. CWE-79; repeat for several.
    #[arg(long = "cwe", value_name = "CWE")]
    pub cwe_ids: Vec<String>,
    /// Why it is rated this way.
    #[arg(long)]
    pub rationale: Option<String>,
}

/// `triage products`.
#[derive(Debug, Args)]
pub struct ProductsArgs {
    #[command(flatten)]
    pub target: Target,
    /// An affected product: NAME@RANGE or NAME=V1,V2 (see below); repeat
    /// for several.
    #[arg(long = "product", value_name = "PRODUCT", required = true, value_parser = parse_product)]
    pub products: Vec<ProductVersionRange>,
}

/// `triage accept`.
#[derive(Debug, Args)]
pub struct AcceptArgs {
    #[command(flatten)]
    pub target: Target,
    /// Analyst's note on the decision.
    #[arg(long)]
    pub note: Option<String>,
}

/// `triage reject`.
#[derive(Debug, Args)]
pub struct RejectArgs {
    #[command(flatten)]
    pub target: Target,
    /// Why.
    #[arg(long, value_enum)]
    pub reason: RejectionReasonArg,
    /// Explanation, also the basis of the answer to the reporter (required
    /// by the server for `other`).
    #[arg(long)]
    pub text: Option<String>,
}

/// `triage duplicate`.
#[derive(Debug, Args)]
pub struct DuplicateArgs {
    #[command(flatten)]
    pub target: Target,
    /// The canonical case it duplicates: id (UUID) or key.
    #[arg(long, value_name = "CASE", value_parser = NonEmptyStringValueParser::new())]
    pub of: String,
    /// Analyst's note.
    #[arg(long)]
    pub note: Option<String>,
}

/// `triage cve`.
#[derive(Debug, Args)]
pub struct CveArgs {
    #[command(flatten)]
    pub target: Target,
    /// The CVE id, e.g. CVE-2026-12345.
    #[arg(long, value_name = "CVE", value_parser = parse_cve)]
    pub cve: String,
    /// The CNA that assigned it (our CNA's short name, or `mitre`).
    #[arg(long, value_name = "CNA")]
    pub assigner: Option<String>,
}

/// `triage embargo`.
#[derive(Debug, Args)]
pub struct EmbargoArgs {
    #[command(flatten)]
    pub target: Target,
    /// Agreed disclosure time as wall-clock time in --time-zone, without an
    /// offset: YYYY-MM-DDTHH:MM or YYYY-MM-DDTHH:MM:SS (e.g. 2026-12-01T09:00).
    #[arg(long, value_name = "LOCAL_TIME", value_parser = parse_local_time)]
    pub disclosure_at: String,
    /// IANA time zone the time is agreed in, e.g. Europe/Berlin, Asia/Tokyo, UTC.
    #[arg(long, value_name = "ZONE", value_parser = NonEmptyStringValueParser::new())]
    pub time_zone: String,
    /// Party the embargo was agreed with (reporter, CERT/CC, ...); repeat for several.
    #[arg(long = "agreed-with", value_name = "PARTY")]
    pub agreed_with: Vec<String>,
    /// Note on the agreement, or why the date moved.
    #[arg(long)]
    pub note: Option<String>,
}

/// `triage escalate`.
#[derive(Debug, Args)]
pub struct EscalateArgs {
    #[command(flatten)]
    pub target: Target,
    /// Escalation line to reach.
    #[arg(long, value_enum)]
    pub level: EscalationLevelArg,
    /// Why.
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub reason: String,
    /// Handle the case as an incident from now on (exploited in the field).
    #[arg(long)]
    pub incident: bool,
}

/// `triage close`.
#[derive(Debug, Args)]
pub struct CloseArgs {
    #[command(flatten)]
    pub target: Target,
    /// How the case ended; must fit its status (fixed from fixed or
    /// disclosed; wont-fix, end-of-life, mitigated, suspended from accepted
    /// or remediating; rejected from rejected; duplicate from duplicate).
    #[arg(long, value_enum)]
    pub resolution: ResolutionArg,
    /// Why the vulnerability got into the product (required by the server
    /// for fixed, wont-fix, end-of-life, mitigated and suspended).
    #[arg(long, value_name = "TEXT")]
    pub root_cause: Option<String>,
    /// Lessons learned and recurrence prevention.
    #[arg(long, value_name = "TEXT")]
    pub lessons_learned: Option<String>,
}

/// `triage reopen`.
#[derive(Debug, Args)]
pub struct ReopenArgs {
    #[command(flatten)]
    pub target: Target,
    /// Why it is reopened.
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub reason: String,
}

/// `--exploitation` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExploitationArg {
    /// No evidence of exploitation, no public proof of concept.
    #[value(name = "none")]
    NoExploitation,
    /// A public proof of concept or well-known method exists.
    Poc,
    /// Exploited in the wild.
    Active,
}

/// `--automatable` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AutomatableArg {
    Yes,
    No,
}

/// `--value-density` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValueDensityArg {
    Diffuse,
    Concentrated,
}

/// `--technical-impact` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TechnicalImpactArg {
    Partial,
    Total,
}

/// `--public-safety-impact` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PublicSafetyImpactArg {
    Minimal,
    Significant,
}

/// `reject --reason` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RejectionReasonArg {
    NotAVulnerability,
    OutOfScope,
    CannotReproduce,
    InsufficientInformation,
    Withdrawn,
    Other,
}

/// `escalate --level` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EscalationLevelArg {
    Team,
    Management,
    Executive,
}

/// `close --resolution` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResolutionArg {
    Fixed,
    Mitigated,
    Suspended,
    WontFix,
    EndOfLife,
    Rejected,
    Duplicate,
}

macro_rules! enum_map {
    ($from:ty => $to:ty { $($a:ident => $b:ident),+ $(,)? }) => {
        impl From<$from> for $to {
            fn from(value: $from) -> Self {
                match value { $(<$from>::$a => <$to>::$b),+ }
            }
        }
    };
}

enum_map!(ExploitationArg => SsvcExploitation { NoExploitation => None, Poc => Poc, Active => Active });
enum_map!(AutomatableArg => SsvcAutomatable { Yes => Yes, No => No });
enum_map!(ValueDensityArg => SsvcValueDensity { Diffuse => Diffuse, Concentrated => Concentrated });
enum_map!(TechnicalImpactArg => SsvcTechnicalImpact { Partial => Partial, Total => Total });
enum_map!(PublicSafetyImpactArg => SsvcPublicSafetyImpact { Minimal => Minimal, Significant => Significant });
enum_map!(RejectionReasonArg => RejectionReason {
    NotAVulnerability => NotAVulnerability,
    OutOfScope => OutOfScope,
    CannotReproduce => CannotReproduce,
    InsufficientInformation => InsufficientInformation,
    Withdrawn => Withdrawn,
    Other => Other,
});
enum_map!(EscalationLevelArg => EscalationLevel { Team => Team, Management => Management, Executive => Executive });
enum_map!(ResolutionArg => CaseResolution {
    Fixed => Fixed,
    Mitigated => Mitigated,
    Suspended => Suspended,
    WontFix => WontFix,
    EndOfLife => EndOfLife,
    Rejected => Rejected,
    Duplicate => Duplicate,
});

/// Parses `--product`: `NAME@RANGE` (a version range in `vers:` notation,
/// passed on as given) or `NAME=V1,V2,...` (explicit versions). The name
/// ends at the first `@` or `=`, so a range may contain `=` (`>=2.0`).
pub fn parse_product(value: &str) -> Result<ProductVersionRange, String> {
    let Some(split) = value.find(['@', '=']) else {
        return Err(
            "expected NAME@RANGE (e.g. acme@vers:semver/<2.4.1) or NAME=V1,V2 (e.g. acme=1.0,1.1)".to_owned()
        );
    };
    let product = value[..split].trim();
    let rest = value[split + 1..].trim();
    if product.is_empty() {
        return Err("the product name before '@' or '=' is empty".to_owned());
    }
    let versions = if value[split..].starts_with('@') {
        if rest.is_empty() {
            return Err(format!("no version range after '{product}@'"));
        }
        product_version_range::Versions::Range(rest.to_owned())
    } else {
        let versions: Vec<String> = rest.split(',').map(|v| v.trim().to_owned()).collect();
        if versions.iter().any(String::is_empty) {
            return Err(format!("empty version in '{product}={rest}': list versions as V1,V2"));
        }
        product_version_range::Versions::Explicit(VersionList { versions })
    };
    Ok(ProductVersionRange { product: product.to_owned(), versions: Some(versions) })
}

/// Parses a CVE id (`CVE-YYYY-NNNN...`, any case) into its canonical upper-case form.
pub fn parse_cve(value: &str) -> Result<String, String> {
    let id = value.trim().to_ascii_uppercase();
    let valid = id.len() <= 50
        && id.strip_prefix("CVE-").and_then(|rest| rest.split_once('-')).is_some_and(|(year, number)| {
            year.len() == 4
                && number.len() >= 4
                && year.bytes().chain(number.bytes()).all(|b| b.is_ascii_digit())
        });
    if valid { Ok(id) } else { Err("not a CVE id like CVE-2026-12345".to_owned()) }
}

/// Checks a local date-time without offset (`YYYY-MM-DDTHH:MM[:SS]`) and
/// passes it on as given; the server resolves it in the time zone.
pub fn parse_local_time(value: &str) -> Result<String, String> {
    let value = value.trim();
    let minutes = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    PrimitiveDateTime::parse(value, &minutes)
        .or_else(|_| PrimitiveDateTime::parse(value, &seconds))
        .map(|_| value.to_owned())
        .map_err(|_| {
            "not a local time like 2026-12-01T09:00 (no offset: give the zone with --time-zone)".to_owned()
        })
}

/// A probability or percentile, 0.0 to 1.0.
pub fn parse_probability(value: &str) -> Result<f64, String> {
    let p: f64 = value.trim().parse().map_err(|_| format!("{value:?} is not a number"))?;
    if (0.0..=1.0).contains(&p) { Ok(p) } else { Err("must be between 0.0 and 1.0".to_owned()) }
}

/// A request id as the services accept it: 1..128 characters of `[A-Za-z0-9._:-]`.
pub fn parse_request_id(value: &str) -> Result<String, String> {
    let ok = (1..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok { Ok(value.to_owned()) } else { Err("1 to 128 characters of A-Z a-z 0-9 . _ : -".to_owned()) }
}

/// The request of one triage command, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub enum TriageRequest {
    Start(StartTriageRequest),
    Assign(AssignCaseRequest),
    Assess(AssessSeverityRequest),
    Products(SetAffectedProductsRequest),
    Accept(AcceptCaseRequest),
    Reject(RejectCaseRequest),
    Duplicate(MarkDuplicateRequest),
    Cve(AssignCveRequest),
    Embargo(SetEmbargoRequest),
    Escalate(EscalateCaseRequest),
    Close(CloseCaseRequest),
    Reopen(ReopenCaseRequest),
}

impl TriageCommand {
    /// The case and controls of the command.
    pub fn target(&self) -> &Target {
        match self {
            TriageCommand::Start(a) => &a.target,
            TriageCommand::Assign(a) => &a.target,
            TriageCommand::Assess(a) => &a.target,
            TriageCommand::Products(a) => &a.target,
            TriageCommand::Accept(a) => &a.target,
            TriageCommand::Reject(a) => &a.target,
            TriageCommand::Duplicate(a) => &a.target,
            TriageCommand::Cve(a) => &a.target,
            TriageCommand::Embargo(a) => &a.target,
            TriageCommand::Escalate(a) => &a.target,
            TriageCommand::Close(a) => &a.target,
            TriageCommand::Reopen(a) => &a.target,
        }
    }

    /// The request for the case `case_id` (already resolved from a key) with
    /// idempotency key `request_id`. `duplicate --of` must hold a case id by
    /// now too (see [`run`]).
    pub fn build(&self, case_id: String, request_id: String) -> TriageRequest {
        let expected_version = self.target().expected_version;
        let text = |t: &Option<String>| t.clone().unwrap_or_default();
        match self {
            TriageCommand::Start(_) => {
                TriageRequest::Start(StartTriageRequest { case_id, request_id, expected_version })
            }
            TriageCommand::Assign(a) => TriageRequest::Assign(AssignCaseRequest {
                case_id,
                request_id,
                expected_version,
                assignee: a.assignee.clone(),
                team: text(&a.team),
            }),
            TriageCommand::Assess(a) => {
                let ssvc = match (
                    a.exploitation,
                    a.automatable,
                    a.value_density,
                    a.technical_impact,
                    a.public_safety_impact,
                ) {
                    (Some(e), Some(au), Some(vd), Some(ti), Some(ps)) => Some(SsvcInputs {
                        exploitation: SsvcExploitation::from(e) as i32,
                        automatable: SsvcAutomatable::from(au) as i32,
                        value_density: SsvcValueDensity::from(vd) as i32,
                        technical_impact: SsvcTechnicalImpact::from(ti) as i32,
                        public_safety_impact: SsvcPublicSafetyImpact::from(ps) as i32,
                    }),
                    // clap requires all five or none.
                    _ => None,
                };
                TriageRequest::Assess(AssessSeverityRequest {
                    case_id,
                    request_id,
                    expected_version,
                    cvss_v3_vector: text(&a.cvss_v3),
                    cvss_v4_vector: text(&a.cvss_v4),
                    ssvc,
                    known_exploited: a.known_exploited,
                    epss_probability: a.epss,
                    epss_percentile: a.epss_percentile,
                    cwe_ids: a.cwe_ids.clone(),
                    rationale: text(&a.rationale),
                })
            }
            TriageCommand::Products(a) => TriageRequest::Products(SetAffectedProductsRequest {
                case_id,
                request_id,
                expected_version,
                products: a.products.clone(),
            }),
            TriageCommand::Accept(a) => TriageRequest::Accept(AcceptCaseRequest {
                case_id,
                request_id,
                expected_version,
                note: text(&a.note),
            }),
            TriageCommand::Reject(a) => TriageRequest::Reject(RejectCaseRequest {
                case_id,
                request_id,
                expected_version,
                reason: RejectionReason::from(a.reason) as i32,
                reason_text: text(&a.text),
            }),
            TriageCommand::Duplicate(a) => TriageRequest::Duplicate(MarkDuplicateRequest {
                case_id,
                request_id,
                expected_version,
                duplicate_of_case_id: a.of.clone(),
                note: text(&a.note),
            }),
            TriageCommand::Cve(a) => TriageRequest::Cve(AssignCveRequest {
                case_id,
                request_id,
                expected_version,
                cve_id: a.cve.clone(),
                assigner: text(&a.assigner),
            }),
            TriageCommand::Embargo(a) => TriageRequest::Embargo(SetEmbargoRequest {
                case_id,
                request_id,
                expected_version,
                local_disclosure_time: a.disclosure_at.clone(),
                time_zone: a.time_zone.clone(),
                agreed_with: a.agreed_with.clone(),
                note: text(&a.note),
            }),
            TriageCommand::Escalate(a) => TriageRequest::Escalate(EscalateCaseRequest {
                case_id,
                request_id,
                expected_version,
                level: EscalationLevel::from(a.level) as i32,
                reason: a.reason.clone(),
                incident: a.incident,
            }),
            TriageCommand::Close(a) => TriageRequest::Close(CloseCaseRequest {
                case_id,
                request_id,
                expected_version,
                resolution: CaseResolution::from(a.resolution) as i32,
                root_cause: text(&a.root_cause),
                lessons_learned: text(&a.lessons_learned),
            }),
            TriageCommand::Reopen(a) => TriageRequest::Reopen(ReopenCaseRequest {
                case_id,
                request_id,
                expected_version,
                reason: a.reason.clone(),
            }),
        }
    }
}

/// Sends one request; every response is the case after the command.
pub async fn send(client: &mut TriageClient, request: TriageRequest) -> Result<Option<Case>, Status> {
    Ok(match request {
        TriageRequest::Start(r) => client.start_triage(r).await?.into_inner().case,
        TriageRequest::Assign(r) => client.assign_case(r).await?.into_inner().case,
        TriageRequest::Assess(r) => client.assess_severity(r).await?.into_inner().case,
        TriageRequest::Products(r) => client.set_affected_products(r).await?.into_inner().case,
        TriageRequest::Accept(r) => client.accept_case(r).await?.into_inner().case,
        TriageRequest::Reject(r) => client.reject_case(r).await?.into_inner().case,
        TriageRequest::Duplicate(r) => client.mark_duplicate(r).await?.into_inner().case,
        TriageRequest::Cve(r) => client.assign_cve(r).await?.into_inner().case,
        TriageRequest::Embargo(r) => client.set_embargo(r).await?.into_inner().case,
        TriageRequest::Escalate(r) => client.escalate_case(r).await?.into_inner().case,
        TriageRequest::Close(r) => client.close_case(r).await?.into_inner().case,
        TriageRequest::Reopen(r) => client.reopen_case(r).await?.into_inner().case,
    })
}

/// Runs one `triage` command: resolves case keys, sends the command, prints
/// the case (table: a summary with the request id; JSON: `{"case": ...}`,
/// the shape of every TriageService response and of `case show`).
pub async fn run(
    global: &GlobalArgs,
    mut command: TriageCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let target = command.target().clone();
    let request_id = crate::report::request_id(target.request_id);
    let connection = Connection::open(global, &global.triage_server).await?;
    let mut cases = connection.cases();
    let case_id = resolve_case_id(&mut cases, &target.case).await?;
    if let TriageCommand::Duplicate(args) = &mut command {
        args.of = resolve_case_id(&mut cases, &args.of).await?;
    }
    let request = command.build(case_id, request_id.clone());
    let case = match send(&mut connection.triage(), request).await {
        Ok(case) => case.unwrap_or_default(),
        Err(status) => {
            if crate::error::may_have_been_applied(&status) {
                eprintln!("to retry safely: --request-id {request_id}");
            }
            return Err(status.into());
        }
    };
    match global.output {
        OutputFormat::Json => output::write_json(out, &GetCaseResponse { case: Some(case) }),
        OutputFormat::Table => {
            case::write_case_summary(out, &case, &request_id)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    const CASE: &str = "0190f5a4-0000-4000-8000-000000000001";

    fn parse(args: &[&str]) -> Result<crate::Cli, clap::Error> {
        crate::Cli::try_parse_from(["psirtctl", "triage"].into_iter().chain(args.iter().copied()))
    }

    fn command(args: &[&str]) -> TriageCommand {
        match parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}")).command {
            crate::Command::Triage(command) => command,
            other => panic!("not a triage command: {other:?}"),
        }
    }

    /// The request built for `args` with case id `c1` and request id `r1`.
    fn request(args: &[&str]) -> TriageRequest {
        command(args).build("c1".to_owned(), "r1".to_owned())
    }

    #[test]
    fn every_command_takes_the_common_options() {
        for sub in [
            &["start"][..],
            &["assign", "--assignee", "alice"],
            &["assess", "--cvss-v3", "CVSS:3.1/AV:N"],
            &["products", "--product", "a=1"],
            &["accept"],
            &["reject", "--reason", "other"],
            &["duplicate", "--of", "PSIRT-2026-0001"],
            &["cve", "--cve", "CVE-2026-1234"],
            &["embargo", "--disclosure-at", "2026-12-01T09:00", "--time-zone", "UTC"],
            &["escalate", "--level", "team", "--reason", "r"],
            &["close", "--resolution", "fixed"],
            &["reopen", "--reason", "r"],
        ] {
            let mut args =
                vec![sub[0], "PSIRT-2026-0007", "--expected-version", "12", "--request-id", "req.1:a-b_c"];
            args.extend_from_slice(&sub[1..]);
            let command = command(&args);
            let target = command.target();
            assert_eq!(target.case, "PSIRT-2026-0007");
            assert_eq!(target.expected_version, Some(12));
            assert_eq!(target.request_id.as_deref(), Some("req.1:a-b_c"));
            // Without a case the command is incomplete.
            let mut no_case = vec![sub[0]];
            no_case.extend_from_slice(&sub[1..]);
            assert!(parse(&no_case).is_err(), "{no_case:?} without a case");
        }
        assert!(parse(&["start", CASE, "--request-id", "has space"]).is_err());
        assert!(parse(&["start", CASE, "--request-id", ""]).is_err());
        assert!(parse(&["start", CASE, "--expected-version", "-1"]).is_err());
        assert!(parse(&["start", ""]).is_err());
    }

    #[test]
    fn start_and_accept() {
        assert_eq!(
            request(&["start", CASE]),
            TriageRequest::Start(StartTriageRequest {
                case_id: "c1".to_owned(),
                request_id: "r1".to_owned(),
                expected_version: None
            })
        );
        assert_eq!(
            request(&["accept", CASE, "--note", "confirmed", "--expected-version", "3"]),
            TriageRequest::Accept(AcceptCaseRequest {
                case_id: "c1".to_owned(),
                request_id: "r1".to_owned(),
                expected_version: Some(3),
                note: "confirmed".to_owned(),
            })
        );
    }

    #[test]
    fn assign() {
        assert_eq!(
            request(&["assign", CASE, "--assignee", "alice", "--team", "web"]),
            TriageRequest::Assign(AssignCaseRequest {
                case_id: "c1".to_owned(),
                request_id: "r1".to_owned(),
                expected_version: None,
                assignee: "alice".to_owned(),
                team: "web".to_owned(),
            })
        );
        assert!(parse(&["assign", CASE]).is_err(), "--assignee is required");
    }

    #[test]
    fn assess_with_cvss_and_ssvc() {
        let TriageRequest::Assess(r) = request(&[
            "assess",
            CASE,
            "--cvss-v3",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "--cvss-v4",
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            "--exploitation",
            "poc",
            "--automatable",
            "yes",
            "--value-density",
            "concentrated",
            "--technical-impact",
            "total",
            "--public-safety-impact",
            "significant",
            "--known-exploited",
            "--epss",
            "0.42",
            "--epss-percentile",
            "0.9",
            "--cwe",
            "CWE-89",
            "--cwe",
            "CWE-20",
            "--rationale",
            "pre-auth RCE",
        ]) else {
            panic!("not assess")
        };
        assert_eq!(r.cvss_v3_vector, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H");
        assert!(r.cvss_v4_vector.starts_with("CVSS:4.0/"));
        assert_eq!(
            r.ssvc,
            Some(SsvcInputs {
                exploitation: SsvcExploitation::Poc as i32,
                automatable: SsvcAutomatable::Yes as i32,
                value_density: SsvcValueDensity::Concentrated as i32,
                technical_impact: SsvcTechnicalImpact::Total as i32,
                public_safety_impact: SsvcPublicSafetyImpact::Significant as i32,
            })
        );
        assert!(r.known_exploited);
        assert_eq!((r.epss_probability, r.epss_percentile), (Some(0.42), Some(0.9)));
        assert_eq!(r.cwe_ids, ["CWE-89", "CWE-20"]);
        assert_eq!(r.rationale, "pre-auth RCE");
    }

    #[test]
    fn assess_options_that_belong_together() {
        // Something to assess is required.
        assert!(parse(&["assess", CASE]).is_err());
        assert!(parse(&["assess", CASE, "--known-exploited"]).is_err());
        // CVSS alone: no SSVC.
        let TriageRequest::Assess(r) = request(&["assess", CASE, "--cvss-v4", "CVSS:4.0/AV:N"]) else {
            panic!()
        };
        assert_eq!(r.ssvc, None);
        assert_eq!(r.cvss_v3_vector, "");
        // SSVC: all five or none.
        assert!(parse(&["assess", CASE, "--exploitation", "active"]).is_err());
        assert!(parse(&["assess", CASE, "--cvss-v3", "V", "--automatable", "yes"]).is_err());
        let ssvc_only = [
            "assess",
            CASE,
            "--exploitation",
            "none",
            "--automatable",
            "no",
            "--value-density",
            "diffuse",
            "--technical-impact",
            "partial",
            "--public-safety-impact",
            "minimal",
        ];
        let TriageRequest::Assess(r) = request(&ssvc_only) else { panic!() };
        assert_eq!(r.ssvc.map(|s| s.exploitation), Some(SsvcExploitation::None as i32));
        // Enum values and ranges.
        assert!(parse(&["assess", CASE, "--cvss-v3", "V", "--epss", "1.5"]).is_err());
        assert!(
            parse(&["assess", CASE, "--cvss-v3", "V", "--epss-percentile", "0.5"]).is_err(),
            "needs --epss"
        );
        let mut bad = ssvc_only.to_vec();
        bad[3] = "likely";
        assert!(parse(&bad).is_err());
    }

    #[test]
    fn product_syntax() {
        let range = parse_product("acme-gateway@vers:semver/>=2.0.0|<2.4.1").expect("range");
        assert_eq!(range.product, "acme-gateway");
        assert_eq!(
            range.versions,
            Some(product_version_range::Versions::Range("vers:semver/>=2.0.0|<2.4.1".to_owned()))
        );
        let explicit = parse_product(" acme-portal = 1.0, 1.1 ").expect("explicit");
        assert_eq!(explicit.product, "acme-portal");
        assert_eq!(
            explicit.versions,
            Some(product_version_range::Versions::Explicit(VersionList {
                versions: vec!["1.0".to_owned(), "1.1".to_owned()]
            }))
        );
        // A purl is a product name too; the first '@' or '=' splits.
        let purl = parse_product("pkg:cargo/openssl=0.10.55").expect("purl");
        assert_eq!(purl.product, "pkg:cargo/openssl");
        assert!(parse_product("acme").is_err(), "no versions");
        assert!(parse_product("@vers:generic/*").is_err(), "no name");
        assert!(parse_product("acme@").is_err(), "no range");
        assert!(parse_product("acme=").is_err(), "no versions");
        assert!(parse_product("acme=1.0,,1.1").is_err(), "empty version");
    }

    #[test]
    fn products_request_keeps_the_order() {
        let TriageRequest::Products(r) = request(&[
            "products",
            CASE,
            "--product",
            "acme-gateway@vers:semver/<2.4.1",
            "--product",
            "acme-portal=1.0,1.1",
        ]) else {
            panic!("not products")
        };
        let names: Vec<&str> = r.products.iter().map(|p| p.product.as_str()).collect();
        assert_eq!(names, ["acme-gateway", "acme-portal"]);
        assert!(parse(&["products", CASE]).is_err(), "at least one product");
        assert!(parse(&["products", CASE, "--product", "acme"]).is_err());
    }

    #[test]
    fn reject_reasons() {
        for (value, reason) in [
            ("not-a-vulnerability", RejectionReason::NotAVulnerability),
            ("out-of-scope", RejectionReason::OutOfScope),
            ("cannot-reproduce", RejectionReason::CannotReproduce),
            ("insufficient-information", RejectionReason::InsufficientInformation),
            ("withdrawn", RejectionReason::Withdrawn),
            ("other", RejectionReason::Other),
        ] {
            let TriageRequest::Reject(r) = request(&["reject", CASE, "--reason", value, "--text", "why"])
            else {
                panic!()
            };
            assert_eq!(r.reason, reason as i32, "{value}");
            assert_eq!(r.reason_text, "why");
        }
        assert!(parse(&["reject", CASE]).is_err());
        assert!(parse(&["reject", CASE, "--reason", "boring"]).is_err());
    }

    #[test]
    fn duplicate_cve_and_embargo() {
        assert_eq!(
            request(&["duplicate", CASE, "--of", "c0", "--note", "same bug"]),
            TriageRequest::Duplicate(MarkDuplicateRequest {
                case_id: "c1".to_owned(),
                request_id: "r1".to_owned(),
                expected_version: None,
                duplicate_of_case_id: "c0".to_owned(),
                note: "same bug".to_owned(),
            })
        );
        assert!(parse(&["duplicate", CASE]).is_err());

        let TriageRequest::Cve(r) = request(&["cve", CASE, "--cve", "cve-2026-12345", "--assigner", "acme"])
        else {
            panic!()
        };
        assert_eq!((r.cve_id.as_str(), r.assigner.as_str()), ("CVE-2026-12345", "acme"));
        for bad in ["CVE-26-12345", "CVE-2026-123", "2026-12345", "CVE-2026-12a45", ""] {
            assert!(parse_cve(bad).is_err(), "{bad}");
        }

        assert_eq!(
            request(&[
                "embargo",
                CASE,
                "--disclosure-at",
                "2026-12-01T09:00",
                "--time-zone",
                "Europe/Berlin",
                "--agreed-with",
                "reporter",
                "--agreed-with",
                "CERT/CC",
                "--note",
                "agreed by mail",
            ]),
            TriageRequest::Embargo(SetEmbargoRequest {
                case_id: "c1".to_owned(),
                request_id: "r1".to_owned(),
                expected_version: None,
                local_disclosure_time: "2026-12-01T09:00".to_owned(),
                time_zone: "Europe/Berlin".to_owned(),
                agreed_with: vec!["reporter".to_owned(), "CERT/CC".to_owned()],
                note: "agreed by mail".to_owned(),
            })
        );
        assert_eq!(parse_local_time("2026-12-01T09:00:30").as_deref(), Ok("2026-12-01T09:00:30"));
        for bad in
            ["2026-12-01T09:00Z", "2026-12-01T09:00+01:00", "2026-12-01", "2026-13-01T09:00", "tomorrow"]
        {
            assert!(parse_local_time(bad).is_err(), "{bad}");
        }
        assert!(parse(&["embargo", CASE, "--disclosure-at", "2026-12-01T09:00"]).is_err(), "zone required");
    }

    #[test]
    fn escalate_close_reopen() {
        let TriageRequest::Escalate(r) =
            request(&["escalate", CASE, "--level", "management", "--reason", "exploited", "--incident"])
        else {
            panic!()
        };
        assert_eq!(
            (r.level, r.reason.as_str(), r.incident),
            (EscalationLevel::Management as i32, "exploited", true)
        );
        for (value, level) in [("team", EscalationLevel::Team), ("executive", EscalationLevel::Executive)] {
            let TriageRequest::Escalate(r) = request(&["escalate", CASE, "--level", value, "--reason", "x"])
            else {
                panic!()
            };
            assert_eq!(r.level, level as i32);
        }
        assert!(parse(&["escalate", CASE, "--level", "ceo", "--reason", "x"]).is_err());
        assert!(parse(&["escalate", CASE, "--level", "team"]).is_err(), "reason required");

        for (value, resolution) in [
            ("fixed", CaseResolution::Fixed),
            ("mitigated", CaseResolution::Mitigated),
            ("suspended", CaseResolution::Suspended),
            ("wont-fix", CaseResolution::WontFix),
            ("end-of-life", CaseResolution::EndOfLife),
            ("rejected", CaseResolution::Rejected),
            ("duplicate", CaseResolution::Duplicate),
        ] {
            let TriageRequest::Close(r) = request(&[
                "close",
                CASE,
                "--resolution",
                value,
                "--root-cause",
                "unchecked input",
                "--lessons-learned",
                "fuzz it",
            ]) else {
                panic!()
            };
            assert_eq!(r.resolution, resolution as i32, "{value}");
            assert_eq!((r.root_cause.as_str(), r.lessons_learned.as_str()), ("unchecked input", "fuzz it"));
        }
        assert!(parse(&["close", CASE]).is_err());

        assert_eq!(
            request(&["reopen", CASE, "--reason", "regression"]),
            TriageRequest::Reopen(ReopenCaseRequest {
                case_id: "c1".to_owned(),
                request_id: "r1".to_owned(),
                expected_version: None,
                reason: "regression".to_owned(),
            })
        );
        assert!(parse(&["reopen", CASE, "--reason", ""]).is_err());
    }
}
