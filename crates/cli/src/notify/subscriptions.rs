//! `notify subscribe`, `update`, `unsubscribe` and `list`: their options
//! and checks, the settings they build, the read-modify-write of `update`,
//! and how subscriptions are printed.

use std::io::Write;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::error::ErrorKind;
use clap::{Args, ValueEnum};
use psirt_proto::common::{CaseStatus, SeverityRating};
use psirt_proto::events::{DeliveryChannel, EscalationLevel, SubscriptionSettings};
use psirt_proto::notification::{
    ListSubscriptionsRequest, ListSubscriptionsResponse, Subscription, UpdateSubscriptionRequest,
    UpdateSubscriptionResponse,
};
use tonic::{Code, Status};

use super::Check;
use super::labels::{
    channel_label, list_or, min_escalation_label, min_severity_label, short_event_type, yes_no,
};
use super::parse::{
    MAX_FILTER_ENTRIES, parse_email_recipients, parse_event_type, parse_jira_project, parse_name,
    parse_product, parse_reason, parse_secret_ref, parse_servicenow_table, parse_subscription_id,
    parse_webhook_url,
};
use crate::CliError;
use crate::case::CaseStatusArg;
use crate::client::NotificationClient;
use crate::output::{self, Table};
use crate::triage::parse_request_id;

#[derive(Debug, Clone, Args)]
pub struct SubscribeFields {
    /// Display name, e.g. 'SIEM on critical cases' (1..200 characters).
    #[arg(long, value_name = "NAME", value_parser = parse_name)]
    pub name: String,
    /// Where to deliver: exactly one of --webhook, --email, --jira, --servicenow.
    #[command(flatten)]
    pub destination: Destination,
    /// Name of the secret, configured in the service, that signs the
    /// deliveries (A-Z a-z 0-9 - _ .; not the secret itself). Required with
    /// --webhook; not used by --email; refused with --jira and --servicenow.
    #[arg(long, value_name = "NAME", value_parser = parse_secret_ref)]
    pub secret_ref: Option<String>,
    /// Deliver only this event type; repeat for several (at most 100).
    /// Default: all event types.
    #[arg(long = "event-type", value_name = "TYPE", value_parser = parse_event_type)]
    pub event_types: Vec<String>,
    /// Deliver only events of cases with at least this severity (so not of
    /// cases not yet assessed). Default: any.
    #[arg(long, value_enum, value_name = "RATING")]
    pub min_severity: Option<SeverityArg>,
    /// Deliver only events of cases affecting this product; repeat for
    /// several (at most 100). Default: all products.
    #[arg(long = "product", value_name = "PRODUCT", value_parser = parse_product)]
    pub products: Vec<String>,
    /// Deliver escalations (CaseEscalated) only at or above this level.
    /// Default: all levels.
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub min_escalation: Option<EscalationArg>,
    /// Deliver only events of cases in this status (the status after the
    /// event); repeat for several. Default: any status.
    #[arg(long = "case-status", value_enum, value_name = "STATUS")]
    pub case_statuses: Vec<CaseStatusArg>,
    /// The receiver may get details of undisclosed cases and report events;
    /// otherwise it gets only a redacted notice until disclosure.
    #[arg(long)]
    pub trusted: bool,
    /// Create the subscription disabled: it keeps its rule but nothing is delivered.
    #[arg(long)]
    pub disabled: bool,
    /// Idempotency key (1..128 characters of A-Z a-z 0-9 . _ : -); the
    /// subscription id derives from it, so a retry with the same key creates
    /// nothing new. Default: a new UUID.
    #[arg(long, value_name = "ID", value_parser = parse_request_id)]
    pub request_id: Option<String>,
}

impl Check for SubscribeFields {
    fn check(&self) -> Result<(), clap::Error> {
        let Some((channel, _)) = self.destination.get() else {
            return Err(clap::Error::raw(
                ErrorKind::MissingRequiredArgument,
                "give the destination: one of --webhook, --email, --jira, --servicenow",
            ));
        };
        if channel == DeliveryChannel::Webhook && self.secret_ref.is_none() {
            return Err(clap::Error::raw(
                ErrorKind::MissingRequiredArgument,
                "--webhook needs --secret-ref: the name of the secret, configured in the service, \
                 that signs the deliveries",
            ));
        }
        check_secret_ref_for(channel, self.secret_ref.as_deref())?;
        check_counts(&self.event_types, &self.products)
    }
}

/// `--secret-ref` is refused with a tracker: the service authenticates with
/// the credentials of its `[jira]` / `[servicenow]` configuration.
fn check_secret_ref_for(channel: DeliveryChannel, secret_ref: Option<&str>) -> Result<(), clap::Error> {
    let option = match channel {
        DeliveryChannel::Jira => "--jira",
        DeliveryChannel::Servicenow => "--servicenow",
        _ => return Ok(()),
    };
    if secret_ref.is_some() {
        let section = if channel == DeliveryChannel::Jira { "[jira]" } else { "[servicenow]" };
        return Err(clap::Error::raw(
            ErrorKind::ArgumentConflict,
            format!(
                "--secret-ref cannot be used with {option}: the service uses the credentials of its \
                 {section} configuration"
            ),
        ));
    }
    Ok(())
}

/// The destination of `notify subscribe`: exactly one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
#[group(id = "destination", required = true, multiple = false)]
pub struct Destination {
    /// Deliver to a webhook: an https URL (http only to a loopback host),
    /// without credentials or fragment. Needs --secret-ref.
    #[arg(long, value_name = "URL", value_parser = parse_webhook_url)]
    pub webhook: Option<String>,
    /// Deliver by e-mail to these addresses, separated by commas (at most 50),
    /// e.g. psirt@example.com,legal@example.com.
    #[arg(long, value_name = "ADDRESSES", value_parser = parse_email_recipients)]
    pub email: Option<String>,
    /// Keep one issue per case in this Jira project: its key, e.g. SEC (an
    /// upper-case letter, then A-Z 0-9 _; 2..10 characters).
    #[arg(long, value_name = "PROJECT", value_parser = parse_jira_project)]
    pub jira: Option<String>,
    /// Keep one record per case in this ServiceNow table, e.g. incident or
    /// sn_vul_vulnerable_item (a-z 0-9 _, starting with a letter; 1..80
    /// characters).
    #[arg(long, value_name = "TABLE", value_parser = parse_servicenow_table)]
    pub servicenow: Option<String>,
}

impl Destination {
    /// The channel and endpoint given, if any.
    pub fn get(&self) -> Option<(DeliveryChannel, &str)> {
        channel_endpoint([
            self.webhook.as_deref(),
            self.email.as_deref(),
            self.jira.as_deref(),
            self.servicenow.as_deref(),
        ])
    }
}

/// A new destination of `notify update`: at most one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
#[group(id = "destination", multiple = false)]
pub struct NewDestination {
    /// Deliver to this webhook instead (https; http only to a loopback
    /// host). From another channel, needs --secret-ref.
    #[arg(long, value_name = "URL", value_parser = parse_webhook_url)]
    pub webhook: Option<String>,
    /// Deliver by e-mail to these addresses instead, separated by commas (at
    /// most 50).
    #[arg(long, value_name = "ADDRESSES", value_parser = parse_email_recipients)]
    pub email: Option<String>,
    /// Keep the tickets in this Jira project instead (a project key, e.g. SEC).
    #[arg(long, value_name = "PROJECT", value_parser = parse_jira_project)]
    pub jira: Option<String>,
    /// Keep the tickets in this ServiceNow table instead (e.g. incident).
    #[arg(long, value_name = "TABLE", value_parser = parse_servicenow_table)]
    pub servicenow: Option<String>,
}

impl NewDestination {
    /// The channel and endpoint given, if any.
    pub fn get(&self) -> Option<(DeliveryChannel, &str)> {
        channel_endpoint([
            self.webhook.as_deref(),
            self.email.as_deref(),
            self.jira.as_deref(),
            self.servicenow.as_deref(),
        ])
    }
}

/// The first destination given (clap lets through at most one), of
/// `[webhook, email, jira, servicenow]`.
fn channel_endpoint(endpoints: [Option<&str>; 4]) -> Option<(DeliveryChannel, &str)> {
    let channels = [
        DeliveryChannel::Webhook,
        DeliveryChannel::Email,
        DeliveryChannel::Jira,
        DeliveryChannel::Servicenow,
    ];
    channels.into_iter().zip(endpoints).find_map(|(channel, endpoint)| endpoint.map(|e| (channel, e)))
}

/// `notify update`.
#[derive(Debug, Clone, Args)]
pub struct UpdateFields {
    /// The subscription's id (UUID, from `notify list`).
    #[arg(value_name = "SUBSCRIPTION_ID", value_parser = parse_subscription_id)]
    pub subscription: String,
    /// New display name (1..200 characters).
    #[arg(long, value_name = "NAME", value_parser = parse_name)]
    pub name: Option<String>,
    /// A new destination: at most one of --webhook, --email, --jira, --servicenow.
    #[command(flatten)]
    pub destination: NewDestination,
    /// New signing secret name (webhook; not used by e-mail; refused with
    /// --jira and --servicenow).
    #[arg(long, value_name = "NAME", value_parser = parse_secret_ref)]
    pub secret_ref: Option<String>,
    /// Replace the event type filter; repeat for several (at most 100).
    #[arg(long = "event-type", value_name = "TYPE", value_parser = parse_event_type)]
    pub event_types: Vec<String>,
    /// Clear the event type filter: deliver all event types.
    #[arg(long, conflicts_with = "event_types")]
    pub all_event_types: bool,
    /// New minimum severity.
    #[arg(long, value_enum, value_name = "RATING")]
    pub min_severity: Option<SeverityArg>,
    /// Clear the minimum severity: any severity, including not yet assessed.
    #[arg(long, conflicts_with = "min_severity")]
    pub any_severity: bool,
    /// Replace the product filter; repeat for several (at most 100).
    #[arg(long = "product", value_name = "PRODUCT", value_parser = parse_product)]
    pub products: Vec<String>,
    /// Clear the product filter: all products.
    #[arg(long, conflicts_with = "products")]
    pub all_products: bool,
    /// New minimum escalation level.
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub min_escalation: Option<EscalationArg>,
    /// Clear the minimum escalation level: all levels.
    #[arg(long, conflicts_with = "min_escalation")]
    pub any_escalation: bool,
    /// Replace the case status filter; repeat for several.
    #[arg(long = "case-status", value_enum, value_name = "STATUS")]
    pub case_statuses: Vec<CaseStatusArg>,
    /// Clear the case status filter: any status.
    #[arg(long, conflicts_with = "case_statuses")]
    pub all_case_statuses: bool,
    /// Let the receiver get details of undisclosed cases and report events.
    #[arg(long, conflicts_with = "untrusted")]
    pub trusted: bool,
    /// Send the receiver only redacted notices until a case is disclosed.
    #[arg(long)]
    pub untrusted: bool,
    /// Deliver again.
    #[arg(long, conflicts_with = "disabled")]
    pub enabled: bool,
    /// Stop delivering; the rule is kept.
    #[arg(long)]
    pub disabled: bool,
    /// Apply only if the subscription is still at this version (`VERSION`
    /// of `notify list`). Default: the version read just before the change,
    /// so a concurrent change is never overwritten unseen (the command then
    /// reads and applies the changes again).
    #[arg(long, value_name = "N")]
    pub expected_version: Option<u64>,
    /// Idempotency key (1..128 characters of A-Z a-z 0-9 . _ : -); reuse the
    /// one printed by a failed attempt to retry safely. Default: a new UUID.
    #[arg(long, value_name = "ID", value_parser = parse_request_id)]
    pub request_id: Option<String>,
}

impl UpdateFields {
    /// Whether any setting is to change.
    fn changes_anything(&self) -> bool {
        self.name.is_some()
            || self.destination.get().is_some()
            || self.secret_ref.is_some()
            || !self.event_types.is_empty()
            || self.all_event_types
            || self.min_severity.is_some()
            || self.any_severity
            || !self.products.is_empty()
            || self.all_products
            || self.min_escalation.is_some()
            || self.any_escalation
            || !self.case_statuses.is_empty()
            || self.all_case_statuses
            || self.trusted
            || self.untrusted
            || self.enabled
            || self.disabled
    }

    /// `current` with the changes applied (the settings are replaced as a
    /// whole by `UpdateSubscription`).
    pub fn apply(&self, current: &SubscriptionSettings) -> SubscriptionSettings {
        let mut settings = current.clone();
        if let Some(name) = &self.name {
            settings.name.clone_from(name);
        }
        if let Some((channel, endpoint)) = self.destination.get() {
            // A secret is named for one destination's channel: a change of
            // channel drops it unless --secret-ref gives one.
            if settings.channel != channel as i32 {
                settings.secret_ref.clear();
            }
            settings.channel = channel as i32;
            endpoint.clone_into(&mut settings.endpoint);
        }
        if let Some(secret_ref) = &self.secret_ref {
            settings.secret_ref.clone_from(secret_ref);
        }
        if self.all_event_types {
            settings.event_types.clear();
        } else if !self.event_types.is_empty() {
            settings.event_types = dedup(&self.event_types);
        }
        if self.any_severity {
            settings.min_severity = SeverityRating::Unspecified as i32;
        } else if let Some(rating) = self.min_severity {
            settings.min_severity = SeverityRating::from(rating) as i32;
        }
        if self.all_products {
            settings.products.clear();
        } else if !self.products.is_empty() {
            settings.products = dedup(&self.products);
        }
        if self.any_escalation {
            settings.min_escalation_level = EscalationLevel::Unspecified as i32;
        } else if let Some(level) = self.min_escalation {
            settings.min_escalation_level = EscalationLevel::from(level) as i32;
        }
        if self.all_case_statuses {
            settings.case_statuses.clear();
        } else if !self.case_statuses.is_empty() {
            settings.case_statuses = case_statuses(&self.case_statuses);
        }
        if self.trusted || self.untrusted {
            settings.trusted = self.trusted;
        }
        if self.enabled || self.disabled {
            settings.enabled = self.enabled;
        }
        settings
    }

    /// Why the changes cannot apply to `current` (the settings as they
    /// stand), as the service would refuse them: a webhook left without a
    /// signing secret, or a secret name given to a Jira or ServiceNow
    /// subscription.
    pub fn check_against(&self, current: &SubscriptionSettings) -> Result<(), String> {
        let settings = self.apply(current);
        let channel = DeliveryChannel::try_from(settings.channel).unwrap_or(DeliveryChannel::Unspecified);
        match channel {
            DeliveryChannel::Webhook if settings.secret_ref.trim().is_empty() => {
                Err("a webhook needs a signing secret: give --secret-ref with the name of the secret, \
                 configured in the service, that signs the deliveries"
                    .to_owned())
            }
            DeliveryChannel::Jira | DeliveryChannel::Servicenow if self.secret_ref.is_some() => Err(format!(
                "--secret-ref cannot be used with a {} subscription: the service uses the credentials of \
                 its [{}] configuration",
                channel_label(settings.channel),
                channel_label(settings.channel),
            )),
            _ => Ok(()),
        }
    }

    /// The `UpdateSubscription` request for the subscription as it stands
    /// (`current`, looked up first) with idempotency key `request_id`.
    pub fn build(&self, current: &Subscription, request_id: String) -> UpdateSubscriptionRequest {
        UpdateSubscriptionRequest {
            subscription_id: self.subscription.clone(),
            request_id,
            expected_version: Some(self.expected_version.unwrap_or(current.version)),
            settings: Some(self.apply(&current.settings.clone().unwrap_or_default())),
        }
    }
}

impl Check for UpdateFields {
    fn check(&self) -> Result<(), clap::Error> {
        if !self.changes_anything() {
            return Err(clap::Error::raw(
                ErrorKind::MissingRequiredArgument,
                "nothing to change: give at least one of --name, --webhook, --email, --jira, \
                 --servicenow, --secret-ref, --event-type, --all-event-types, --min-severity, --any-severity, --product, \
                 --all-products, --min-escalation, --any-escalation, --case-status, \
                 --all-case-statuses, --trusted, --untrusted, --enabled, --disabled",
            ));
        }
        if let Some((channel, _)) = self.destination.get() {
            check_secret_ref_for(channel, self.secret_ref.as_deref())?;
        }
        check_counts(&self.event_types, &self.products)
    }
}

/// At most [`MAX_FILTER_ENTRIES`] distinct event types and products.
fn check_counts(event_types: &[String], products: &[String]) -> Result<(), clap::Error> {
    for (what, values) in [("--event-type", event_types), ("--product", products)] {
        let distinct = dedup(values).len();
        if distinct > MAX_FILTER_ENTRIES {
            return Err(clap::Error::raw(
                ErrorKind::TooManyValues,
                format!(
                    "{what} is given {distinct} times: a subscription filters on at most {MAX_FILTER_ENTRIES}"
                ),
            ));
        }
    }
    Ok(())
}

/// The `case_statuses` of the settings: each status once, in the order given.
pub(super) fn case_statuses(statuses: &[CaseStatusArg]) -> Vec<i32> {
    let mut out: Vec<i32> = Vec::new();
    for status in statuses.iter().map(|s| CaseStatus::from(*s) as i32) {
        if !out.contains(&status) {
            out.push(status);
        }
    }
    out
}

/// `values` without repetitions, in their first order.
pub(super) fn dedup(values: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    values.iter().filter(|v| seen.insert(v.as_str())).cloned().collect()
}

/// `notify unsubscribe`.
#[derive(Debug, Clone, Args)]
pub struct UnsubscribeArgs {
    /// The subscription's id (UUID, from `notify list`).
    #[arg(value_name = "SUBSCRIPTION_ID", value_parser = parse_subscription_id)]
    pub subscription: String,
    /// Why (at most 1000 characters); kept in the subscription's history.
    #[arg(long, value_name = "TEXT", value_parser = parse_reason)]
    pub reason: Option<String>,
    /// Delete only if the subscription is still at this version.
    #[arg(long, value_name = "N")]
    pub expected_version: Option<u64>,
    /// Idempotency key (1..128 characters of A-Z a-z 0-9 . _ : -). Default: a new UUID.
    #[arg(long, value_name = "ID", value_parser = parse_request_id)]
    pub request_id: Option<String>,
}

/// `notify list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only subscriptions of this channel.
    #[arg(long, value_enum)]
    pub channel: Option<ChannelArg>,
    /// Subscriptions per page (server default 100, at most 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub page_size: Option<i32>,
    /// Continue from the page token printed by an earlier listing.
    #[arg(long, value_name = "TOKEN", value_parser = NonEmptyStringValueParser::new())]
    pub page_token: Option<String>,
}

/// `--min-severity` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeverityArg {
    /// CVSS 0.0.
    None,
    /// CVSS 0.1 to 3.9.
    Low,
    /// CVSS 4.0 to 6.9.
    Medium,
    /// CVSS 7.0 to 8.9.
    High,
    /// CVSS 9.0 to 10.0.
    Critical,
}

/// `--min-escalation` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EscalationArg {
    /// PSIRT lead and the owning development teams.
    Team,
    /// Management of the product line, with QA, legal and customer support.
    Management,
    /// Executives, with PR and legal (incident response).
    Executive,
}

/// `--channel` values of `notify list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChannelArg {
    /// HTTP POST of a CloudEvent, signed with HMAC-SHA256.
    Webhook,
    /// E-mail to one or more addresses.
    Email,
    /// One Jira issue per case.
    Jira,
    /// One ServiceNow record per case.
    #[value(name = "servicenow")]
    ServiceNow,
}

impl From<SeverityArg> for SeverityRating {
    fn from(value: SeverityArg) -> Self {
        match value {
            SeverityArg::None => SeverityRating::None,
            SeverityArg::Low => SeverityRating::Low,
            SeverityArg::Medium => SeverityRating::Medium,
            SeverityArg::High => SeverityRating::High,
            SeverityArg::Critical => SeverityRating::Critical,
        }
    }
}

impl From<EscalationArg> for EscalationLevel {
    fn from(value: EscalationArg) -> Self {
        match value {
            EscalationArg::Team => EscalationLevel::Team,
            EscalationArg::Management => EscalationLevel::Management,
            EscalationArg::Executive => EscalationLevel::Executive,
        }
    }
}

impl From<ChannelArg> for DeliveryChannel {
    fn from(value: ChannelArg) -> Self {
        match value {
            ChannelArg::Webhook => DeliveryChannel::Webhook,
            ChannelArg::Email => DeliveryChannel::Email,
            ChannelArg::Jira => DeliveryChannel::Jira,
            ChannelArg::ServiceNow => DeliveryChannel::Servicenow,
        }
    }
}

/// The subscription `id`, looked up in the pages of `ListSubscriptions`
/// (the API has no single-subscription read).
pub async fn find_subscription(client: &mut NotificationClient, id: &str) -> Result<Subscription, CliError> {
    let mut page_token = String::new();
    loop {
        let page = client
            .list_subscriptions(ListSubscriptionsRequest { channel: 0, page_size: 1000, page_token })
            .await?
            .into_inner();
        if let Some(found) =
            page.subscriptions.into_iter().find(|s| s.subscription_id.eq_ignore_ascii_case(id))
        {
            return Ok(found);
        }
        if page.next_page_token.is_empty() {
            return Err(Status::not_found(format!("subscription {id} not found (or deleted)")).into());
        }
        page_token = page.next_page_token;
    }
}

/// How often `update` reads and writes again when the subscription changed
/// in between or the listing had not caught up with it yet.
const UPDATE_ATTEMPTS: u32 = 5;

/// `notify update`: reads the subscription, applies the changes, writes the
/// settings. Without `--expected-version` the version read is expected. The
/// listing is a read model a moment behind the writes, so a subscription
/// not found (just created) or an `ABORTED` without `--expected-version` (a
/// change in between, or a listing not caught up yet) is read and applied
/// again, a few times over about a second and a half.
pub(super) async fn update(
    client: &mut NotificationClient,
    args: &UpdateFields,
    request_id: &str,
) -> Result<UpdateSubscriptionResponse, CliError> {
    let mut attempt = 1;
    loop {
        let result = match find_subscription(client, &args.subscription).await {
            Ok(current) => {
                args.check_against(&current.settings.clone().unwrap_or_default()).map_err(CliError::Usage)?;
                client
                    .update_subscription(args.build(&current, request_id.to_owned()))
                    .await
                    .map(tonic::Response::into_inner)
            }
            Err(CliError::Rpc(status)) => Err(status),
            Err(other) => return Err(other),
        };
        match result {
            Ok(response) => return Ok(response),
            Err(status)
                if attempt < UPDATE_ATTEMPTS
                    && (status.code() == Code::NotFound
                        || (status.code() == Code::Aborted && args.expected_version.is_none())) =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            Err(status) => return Err(status.into()),
        }
    }
}

/// One subscription as a key/value block.
pub fn write_subscription(
    out: &mut dyn Write,
    subscription: &Subscription,
    request_id: Option<&str>,
) -> std::io::Result<()> {
    let settings = subscription.settings.clone().unwrap_or_default();
    let event_types: Vec<String> =
        settings.event_types.iter().map(|t| short_event_type(t).to_owned()).collect();
    let statuses: Vec<String> =
        settings.case_statuses.iter().map(|s| crate::case::status_label(*s)).collect();
    let mut fields = vec![
        ("Subscription ID", output::or_dash(&subscription.subscription_id)),
        ("Name", output::or_dash(&settings.name)),
        ("Channel", channel_label(settings.channel)),
        ("Endpoint", output::or_dash(&settings.endpoint)),
        ("Secret ref", output::or_dash(&settings.secret_ref)),
        ("Event types", list_or(&event_types, "all")),
        ("Min severity", min_severity_label(settings.min_severity)),
        ("Products", list_or(&settings.products, "all")),
        ("Min escalation", min_escalation_label(settings.min_escalation_level)),
        ("Case statuses", list_or(&statuses, "any")),
        ("Trusted", yes_no(settings.trusted)),
        ("Enabled", yes_no(settings.enabled)),
        ("Version", subscription.version.to_string()),
        ("Created", output::timestamp(subscription.created_at.as_ref())),
        ("Updated", output::timestamp(subscription.updated_at.as_ref())),
    ];
    if let Some(id) = request_id {
        fields.push(("Request ID", id.to_owned()));
    }
    output::write_fields(out, &fields)
}

/// One row per subscription.
pub fn write_subscriptions(out: &mut dyn Write, page: &ListSubscriptionsResponse) -> std::io::Result<()> {
    if page.subscriptions.is_empty() {
        return writeln!(out, "No subscriptions found.");
    }
    let mut table = Table::new([
        "ID",
        "CHANNEL",
        "ENABLED",
        "TRUSTED",
        "EVENTS",
        "MIN SEVERITY",
        "VERSION",
        "ENDPOINT",
        "NAME",
    ]);
    for s in &page.subscriptions {
        let settings = s.settings.clone().unwrap_or_default();
        let events = match settings.event_types.as_slice() {
            [] => "all".to_owned(),
            [one] => short_event_type(one).to_owned(),
            many => format!("{} types", many.len()),
        };
        table.row([
            s.subscription_id.clone(),
            channel_label(settings.channel),
            yes_no(settings.enabled),
            yes_no(settings.trusted),
            events,
            min_severity_label(settings.min_severity),
            s.version.to_string(),
            output::truncate(&settings.endpoint, 60),
            output::truncate(&settings.name, 60),
        ]);
    }
    table.write(out)
}
