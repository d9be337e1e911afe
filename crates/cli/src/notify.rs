//! `psirtctl notify ...`: subscriptions and deliveries of the notification
//! service (`--notification-server`), one command per `NotificationService`
//! RPC: subscribe, update, unsubscribe, list, deliveries, redeliver, tickets.
//!
//! A subscription delivers on one of four channels, chosen by exactly one
//! destination option of `subscribe` (and, to move it, of `update`):
//! `--webhook URL` (HTTP POST signed with the secret named by
//! `--secret-ref`, which a webhook requires), `--email ADDRESSES` (one or
//! more recipients separated by commas), `--jira PROJECT` (a Jira project
//! key) or `--servicenow TABLE` (a ServiceNow table). Jira and ServiceNow
//! subscriptions keep one ticket per case with the credentials of the
//! service's `[jira]` / `[servicenow]` configuration, so they take no
//! `--secret-ref`. A case is named by its id or its key (looked up at
//! `--triage-server` first, like the `remediation` commands).
//!
//! Commands that change something take `--request-id` (idempotency key;
//! default a new UUID, shown in the output) and, except `subscribe`,
//! `--expected-version`. Requests are built by pure functions from the
//! parsed arguments ([`NotifyCommand::build`], [`UpdateFields::build`]);
//! values the server would reject for their form (URLs, e-mail addresses,
//! Jira project keys, ServiceNow tables, event types, secret names, ids,
//! counts) and combinations it would reject (a webhook without
//! `--secret-ref`, a tracker with one) are refused while parsing, before
//! connecting.

use std::io::Write;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::error::ErrorKind;
use clap::{ArgMatches, Args, FromArgMatches, Subcommand, ValueEnum};
use psirt_proto::common::{CaseStatus, SeverityRating};
use psirt_proto::events::{
    DeliveryChannel, EscalationLevel, SubscriptionSettings, TicketStatusCategory, TicketSystem,
};
use psirt_proto::notification::{
    CreateSubscriptionRequest, DeleteSubscriptionRequest, Delivery, DeliveryStatus, ListDeliveriesRequest,
    ListDeliveriesResponse, ListExternalTicketsRequest, ListExternalTicketsResponse,
    ListSubscriptionsRequest, ListSubscriptionsResponse, RedeliverDeliveryRequest, Subscription,
    UpdateSubscriptionRequest, UpdateSubscriptionResponse,
};
use tonic::{Code, Status};

use crate::case::CaseStatusArg;
use crate::client::{Connection, NotificationClient};
use crate::output::{self, OutputFormat, Table};
use crate::remediation::resolve_case;
use crate::triage::parse_request_id;
use crate::{CliError, GlobalArgs};

/// The package of every event type a subscription can filter on.
pub const EVENTS_PACKAGE: &str = "psirt.events.v1";
/// Most event types (and most products) one subscription may filter on.
pub const MAX_FILTER_ENTRIES: usize = 100;
/// Longest subscription name, product and secret name.
const MAX_NAME_CHARS: usize = 200;
use psirt_domain::notification::{MAX_EMAIL_RECIPIENTS, MAX_ENDPOINT_CHARS};
/// Longest reason for a deletion.
const MAX_REASON_CHARS: usize = 1000;

/// The event type part of the help of `subscribe` and `update`.
macro_rules! event_type_help {
    () => {
        "\
Event types are messages of psirt.events.v1, given as the full name
(psirt.events.v1.CaseAccepted) or the short one (CaseAccepted), e.g.
CaseAccepted, CaseEscalated, SeverityAssessed, SlaBreached, AdvisoryPublished.
All filters must match for an event to be delivered; an empty filter matches
everything."
    };
}

/// The destination part of the help of `subscribe` and `update`.
macro_rules! destination_help {
    () => {
        "--webhook URL needs --secret-ref, the name of the signing secret (never
the secret itself: the service reads it from its [secrets] configuration).
--email takes one or more addresses separated by commas (at most 50).
--jira PROJECT (a project key such as SEC) and --servicenow TABLE (such as
incident or sn_vul_vulnerable_item) keep one ticket per case with the
credentials of the service's [jira] and [servicenow] configuration, so they
take no --secret-ref."
    };
}

const SUBSCRIBE_HELP: &str = concat!(
    event_type_help!(),
    "\n\nThe destination is exactly one of --webhook, --email, --jira, --servicenow.\n",
    destination_help!()
);

const UPDATE_HELP: &str = concat!(
    event_type_help!(),
    "\n\nAt most one of --webhook, --email, --jira, --servicenow moves the subscription to\n\
     that destination (and channel). A change of channel drops the secret name unless\n\
     --secret-ref gives one.\n",
    destination_help!()
);

/// `psirtctl notify <command>`.
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Subscribe a destination to events (admin role): a webhook, e-mail
    /// recipients, a Jira project or a ServiceNow table. Events appended
    /// after the subscription are delivered to it.
    #[command(after_help = SUBSCRIBE_HELP)]
    Subscribe(Checked<SubscribeFields>),
    /// Change a subscription: the options given replace those settings, the
    /// others stay as they are.
    #[command(after_help = UPDATE_HELP)]
    Update(Checked<UpdateFields>),
    /// Delete a subscription; its pending deliveries are dropped.
    Unsubscribe(UnsubscribeArgs),
    /// List subscriptions, oldest first.
    List(ListArgs),
    /// List deliveries, in the order of the events they deliver.
    Deliveries(DeliveriesArgs),
    /// Send a dead delivery again (a new series of attempts).
    Redeliver(RedeliverArgs),
    /// List the external tickets (Jira, ServiceNow) linked to a case.
    Tickets(TicketsArgs),
}

/// Arguments checked as a whole after clap has parsed them, so that
/// combinations clap cannot express are still refused at parse time.
pub trait Check {
    fn check(&self) -> Result<(), clap::Error>;
}

/// `T`'s arguments, refused at parse time unless [`Check::check`] passes.
#[derive(Debug, Clone)]
pub struct Checked<T>(pub T);

impl<T: FromArgMatches + Check> FromArgMatches for Checked<T> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let inner = T::from_arg_matches(matches)?;
        inner.check()?;
        Ok(Self(inner))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)?;
        self.0.check()
    }
}

impl<T: Args + Check> Args for Checked<T> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        T::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        T::augment_args_for_update(cmd)
    }
}

/// `notify subscribe`.
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
    /// The receiver may get details of embargoed cases; otherwise it gets
    /// only a redacted notice until disclosure.
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
    /// Let the receiver get details of embargoed cases.
    #[arg(long, conflicts_with = "untrusted")]
    pub trusted: bool,
    /// Send the receiver only redacted notices while a case is embargoed.
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
fn case_statuses(statuses: &[CaseStatusArg]) -> Vec<i32> {
    let mut out: Vec<i32> = Vec::new();
    for status in statuses.iter().map(|s| CaseStatus::from(*s) as i32) {
        if !out.contains(&status) {
            out.push(status);
        }
    }
    out
}

/// `values` without repetitions, in their first order.
fn dedup(values: &[String]) -> Vec<String> {
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

/// `notify deliveries`. Filters combine.
#[derive(Debug, Clone, Args)]
pub struct DeliveriesArgs {
    /// Only deliveries of this case: its id (UUID) or its key (e.g.
    /// PSIRT-2026-0001; looked up at --triage-server first).
    #[arg(long, value_name = "CASE", value_parser = NonEmptyStringValueParser::new())]
    pub case: Option<String>,
    /// Only deliveries to this subscription (its id, a UUID).
    #[arg(long, value_name = "ID", value_parser = parse_subscription_id)]
    pub subscription: Option<String>,
    /// Only deliveries in this status.
    #[arg(long, value_enum)]
    pub status: Option<DeliveryStatusArg>,
    /// Deliveries per page (server default 100, at most 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub page_size: Option<i32>,
    /// Continue from the page token printed by an earlier listing.
    #[arg(long, value_name = "TOKEN", value_parser = NonEmptyStringValueParser::new())]
    pub page_token: Option<String>,
}

/// `notify redeliver`.
#[derive(Debug, Clone, Args)]
pub struct RedeliverArgs {
    /// The delivery's id (UUID, from `notify deliveries`).
    #[arg(value_name = "DELIVERY_ID", value_parser = parse_delivery_id)]
    pub delivery: String,
    /// Redeliver only if the delivery is still at this version.
    #[arg(long, value_name = "N")]
    pub expected_version: Option<u64>,
    /// Idempotency key (1..128 characters of A-Z a-z 0-9 . _ : -). Default: a new UUID.
    #[arg(long, value_name = "ID", value_parser = parse_request_id)]
    pub request_id: Option<String>,
}

/// `notify tickets`.
#[derive(Debug, Clone, Args)]
pub struct TicketsArgs {
    /// The case: its id (UUID) or its key (e.g. PSIRT-2026-0001).
    #[arg(value_name = "CASE", value_parser = NonEmptyStringValueParser::new())]
    pub case: String,
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

/// `--status` values of `notify deliveries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeliveryStatusArg {
    /// Waiting for its first or next attempt.
    Pending,
    /// The destination acknowledged it.
    Delivered,
    /// Given up; can be sent again with `notify redeliver`.
    Dead,
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

impl From<DeliveryStatusArg> for DeliveryStatus {
    fn from(value: DeliveryStatusArg) -> Self {
        match value {
            DeliveryStatusArg::Pending => DeliveryStatus::Pending,
            DeliveryStatusArg::Delivered => DeliveryStatus::Delivered,
            DeliveryStatusArg::Dead => DeliveryStatus::Dead,
        }
    }
}

// ---------------------------------------------------------------------------
// Value parsers
// ---------------------------------------------------------------------------

/// A subscription name: 1..200 characters, no control characters.
pub fn parse_name(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("the name is empty".to_owned());
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(format!("the name is longer than {MAX_NAME_CHARS} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("the name contains control characters".to_owned());
    }
    Ok(value.to_owned())
}

/// A product of a filter: 1..200 characters.
pub fn parse_product(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("the product is empty".to_owned());
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(format!("the product is longer than {MAX_NAME_CHARS} characters"));
    }
    Ok(value.to_owned())
}

/// A secret name: 1..200 characters of `A-Z a-z 0-9 - _ .`.
pub fn parse_secret_ref(value: &str) -> Result<String, String> {
    let value = value.trim();
    let ok = (1..=MAX_NAME_CHARS).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(value.to_owned())
    } else {
        Err("the name of a secret configured in the service: 1 to 200 characters of A-Z a-z 0-9 - _ . \
             (the secret itself is never given)"
            .to_owned())
    }
}

/// A reason: at most 1000 characters.
pub fn parse_reason(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.chars().count() > MAX_REASON_CHARS {
        return Err(format!("the reason is longer than {MAX_REASON_CHARS} characters"));
    }
    Ok(value.to_owned())
}

/// An event type: `psirt.events.v1.CaseAccepted` or `CaseAccepted`, a
/// message of the events package this client knows; the full name.
pub fn parse_event_type(value: &str) -> Result<String, String> {
    let value = value.trim();
    let full = if value.contains('.') { value.to_owned() } else { format!("{EVENTS_PACKAGE}.{value}") };
    let Some(name) = full.strip_prefix(EVENTS_PACKAGE).and_then(|rest| rest.strip_prefix('.')) else {
        return Err(format!(
            "an event type is a message of {EVENTS_PACKAGE}, e.g. CaseAccepted or {EVENTS_PACKAGE}.CaseAccepted"
        ));
    };
    let mut chars = name.chars();
    let well_formed =
        chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric());
    let pool = output::descriptor_pool().map_err(|_| "the embedded descriptors are unusable".to_owned())?;
    if !well_formed || pool.get_message_by_name(&full).is_none() {
        return Err(format!(
            "{value:?} is not an event type of {EVENTS_PACKAGE} (e.g. CaseAccepted, CaseEscalated)"
        ));
    }
    Ok(full)
}

/// A webhook URL: `https://host[:port][/path][?query]`, or `http://` to a
/// loopback host (a receiver on the same machine); no credentials, no
/// fragment, no whitespace, at most 2048 characters.
pub fn parse_webhook_url(value: &str) -> Result<String, String> {
    let url = value.trim();
    psirt_domain::notification::check_webhook_url(url).map_err(|problem| {
        format!("{}, e.g. https://siem.example.com/psirt", problem.replace("endpoint", "the URL"))
    })?;
    Ok(url.to_owned())
}

/// The recipients of an e-mail subscription: one address or several
/// separated by commas, at most [`MAX_EMAIL_RECIPIENTS`]; given back
/// trimmed, separated by commas alone.
pub fn parse_email_recipients(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("no e-mail address: give one, or several separated by commas".to_owned());
    }
    let addresses: Vec<&str> = value.split(',').map(str::trim).collect();
    if addresses.len() > MAX_EMAIL_RECIPIENTS {
        return Err(format!(
            "{} addresses: an e-mail subscription has at most {MAX_EMAIL_RECIPIENTS} recipients",
            addresses.len()
        ));
    }
    for address in &addresses {
        if address.is_empty() {
            return Err(
                "an empty address between commas (separate the addresses by single commas)".to_owned()
            );
        }
        psirt_domain::check_email(address)
            .map_err(|problem| format!("{address:?} is not an e-mail address: {problem}"))?;
    }
    let joined = addresses.join(",");
    if joined.chars().count() > MAX_ENDPOINT_CHARS {
        return Err(format!("the addresses are longer than {MAX_ENDPOINT_CHARS} characters together"));
    }
    Ok(joined)
}

/// A Jira project key: an upper-case letter, then upper-case letters,
/// digits or underscores, 2..10 characters (Jira's default rule), e.g. SEC.
pub fn parse_jira_project(value: &str) -> Result<String, String> {
    let key = value.trim();
    let valid = |key: &str| psirt_domain::notification::check_jira_project(key).is_ok();
    if valid(key) {
        return Ok(key.to_owned());
    }
    let hint = if valid(&key.to_ascii_uppercase()) {
        format!(" (keys are upper-case: {})", key.to_ascii_uppercase())
    } else {
        String::new()
    };
    Err(format!(
        "{key:?} is not a Jira project key: an upper-case letter, then A-Z 0-9 _, 2 to 10 characters, \
         e.g. SEC{hint}"
    ))
}

/// A ServiceNow table name: a lower-case letter, then lower-case letters,
/// digits or underscores, at most 80 characters, e.g. incident,
/// sn_vul_vulnerable_item or u_psirt_case.
pub fn parse_servicenow_table(value: &str) -> Result<String, String> {
    let table = value.trim();
    let valid = |table: &str| psirt_domain::notification::check_servicenow_table(table).is_ok();
    if valid(table) {
        return Ok(table.to_owned());
    }
    let hint = if valid(&table.to_ascii_lowercase()) {
        format!(" (table names are lower-case: {})", table.to_ascii_lowercase())
    } else {
        String::new()
    };
    Err(format!(
        "{table:?} is not a ServiceNow table name: a lower-case letter, then a-z 0-9 _, at most \
         80 characters, e.g. incident or sn_vul_vulnerable_item{hint}"
    ))
}

fn parse_uuid(value: &str, what: &str) -> Result<String, String> {
    uuid::Uuid::try_parse(value.trim())
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| format!("not a {what} id (a UUID, as `notify list` or `notify deliveries` shows it)"))
}

/// A subscription id, in canonical lowercase form.
pub fn parse_subscription_id(value: &str) -> Result<String, String> {
    parse_uuid(value, "subscription")
}

/// A delivery id, in canonical lowercase form.
pub fn parse_delivery_id(value: &str) -> Result<String, String> {
    parse_uuid(value, "delivery")
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// The request of one `notify` command, ready to send. `update` is not
/// among them: it needs the subscription as it stands ([`UpdateFields::build`]).
#[derive(Debug, Clone, PartialEq)]
pub enum NotifyRequest {
    Subscribe(CreateSubscriptionRequest),
    Unsubscribe(DeleteSubscriptionRequest),
    List(ListSubscriptionsRequest),
    Deliveries(ListDeliveriesRequest),
    Redeliver(RedeliverDeliveryRequest),
    Tickets(ListExternalTicketsRequest),
}

impl NotifyCommand {
    /// The `--request-id` given to a command that changes something.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            NotifyCommand::Subscribe(a) => a.0.request_id.as_deref(),
            NotifyCommand::Update(a) => a.0.request_id.as_deref(),
            NotifyCommand::Unsubscribe(a) => a.request_id.as_deref(),
            NotifyCommand::Redeliver(a) => a.request_id.as_deref(),
            NotifyCommand::List(_) | NotifyCommand::Deliveries(_) | NotifyCommand::Tickets(_) => None,
        }
    }

    /// Whether the command changes something (and so takes a request id).
    pub fn is_change(&self) -> bool {
        !matches!(self, NotifyCommand::List(_) | NotifyCommand::Deliveries(_) | NotifyCommand::Tickets(_))
    }

    /// The case argument (id or key), if the command takes one.
    pub fn case(&self) -> Option<&str> {
        match self {
            NotifyCommand::Deliveries(a) => a.case.as_deref(),
            NotifyCommand::Tickets(a) => Some(&a.case),
            _ => None,
        }
    }

    /// The request for the case `case_id` (already resolved from a key;
    /// ignored by commands without a case) with idempotency key
    /// `request_id` (ignored by the reads). `None` for `update`.
    pub fn build(&self, case_id: String, request_id: String) -> Option<NotifyRequest> {
        let text = |t: &Option<String>| t.clone().unwrap_or_default();
        Some(match self {
            NotifyCommand::Subscribe(Checked(a)) => NotifyRequest::Subscribe(CreateSubscriptionRequest {
                request_id,
                settings: Some(SubscriptionSettings {
                    name: a.name.clone(),
                    channel: a.destination.get().map_or(DeliveryChannel::Unspecified, |(c, _)| c) as i32,
                    endpoint: a.destination.get().map(|(_, e)| e.to_owned()).unwrap_or_default(),
                    event_types: dedup(&a.event_types),
                    min_severity: a.min_severity.map_or(SeverityRating::Unspecified, SeverityRating::from)
                        as i32,
                    products: dedup(&a.products),
                    min_escalation_level: a
                        .min_escalation
                        .map_or(EscalationLevel::Unspecified, EscalationLevel::from)
                        as i32,
                    trusted: a.trusted,
                    secret_ref: text(&a.secret_ref),
                    enabled: !a.disabled,
                    case_statuses: case_statuses(&a.case_statuses),
                }),
            }),
            NotifyCommand::Update(_) => return None,
            NotifyCommand::Unsubscribe(a) => NotifyRequest::Unsubscribe(DeleteSubscriptionRequest {
                subscription_id: a.subscription.clone(),
                request_id,
                expected_version: a.expected_version,
                reason: text(&a.reason),
            }),
            NotifyCommand::List(a) => NotifyRequest::List(ListSubscriptionsRequest {
                channel: a.channel.map_or(DeliveryChannel::Unspecified, DeliveryChannel::from) as i32,
                page_size: a.page_size.unwrap_or(0),
                page_token: text(&a.page_token),
            }),
            NotifyCommand::Deliveries(a) => NotifyRequest::Deliveries(ListDeliveriesRequest {
                case_id,
                subscription_id: text(&a.subscription),
                status: a.status.map_or(DeliveryStatus::Unspecified, DeliveryStatus::from) as i32,
                page_size: a.page_size.unwrap_or(0),
                page_token: text(&a.page_token),
            }),
            NotifyCommand::Redeliver(a) => NotifyRequest::Redeliver(RedeliverDeliveryRequest {
                delivery_id: a.delivery.clone(),
                request_id,
                expected_version: a.expected_version,
            }),
            NotifyCommand::Tickets(_) => NotifyRequest::Tickets(ListExternalTicketsRequest { case_id }),
        })
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
async fn update(
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

/// Runs one `notify` command: resolves a case key, sends the request, prints
/// the result (table; JSON: the RPC's response).
pub async fn run(global: &GlobalArgs, command: NotifyCommand, out: &mut dyn Write) -> Result<(), CliError> {
    let request_id = crate::report::request_id(command.request_id().map(str::to_owned));
    let case_id = match command.case() {
        Some(case) => resolve_case(global, case).await?,
        None => String::new(),
    };
    let connection = Connection::open(global, &global.notification_server).await?;
    let mut client = connection.notifications();
    let retry_hint = |status: Status| {
        if crate::error::may_have_been_applied(&status) {
            eprintln!("to retry safely: --request-id {request_id}");
        }
        CliError::from(status)
    };
    let json = global.output == OutputFormat::Json;
    let Some(request) = command.build(case_id, request_id.clone()) else {
        let NotifyCommand::Update(Checked(args)) = &command else {
            return Err(CliError::Other(anyhow::anyhow!("no request for {command:?}")));
        };
        let response = update(&mut client, args, &request_id).await.map_err(|e| match e {
            CliError::Rpc(status) => retry_hint(status),
            other => other,
        })?;
        if json {
            return output::write_json(out, &response);
        }
        write_subscription(out, &response.subscription.unwrap_or_default(), Some(&request_id))?;
        return Ok(());
    };
    match request {
        NotifyRequest::Subscribe(r) => {
            let response = client.create_subscription(r).await.map_err(retry_hint)?.into_inner();
            if json {
                return output::write_json(out, &response);
            }
            write_subscription(out, &response.subscription.unwrap_or_default(), Some(&request_id))?;
        }
        NotifyRequest::Unsubscribe(r) => {
            let id = r.subscription_id.clone();
            let response = client.delete_subscription(r).await.map_err(retry_hint)?.into_inner();
            if json {
                return output::write_json(out, &response);
            }
            output::write_fields(
                out,
                &[
                    ("Subscription ID", id),
                    ("Deleted", "yes".to_owned()),
                    ("Version", response.version.to_string()),
                    ("Request ID", request_id.clone()),
                ],
            )?;
        }
        NotifyRequest::List(r) => {
            let response = client.list_subscriptions(r).await?.into_inner();
            if json {
                return output::write_json(out, &response);
            }
            write_subscriptions(out, &response)?;
            if !response.next_page_token.is_empty() {
                eprintln!("more subscriptions: --page-token {}", response.next_page_token);
            }
        }
        NotifyRequest::Deliveries(r) => {
            let response = client.list_deliveries(r).await?.into_inner();
            if json {
                return output::write_json(out, &response);
            }
            write_deliveries(out, &response)?;
            if !response.next_page_token.is_empty() {
                eprintln!("more deliveries: --page-token {}", response.next_page_token);
            }
        }
        NotifyRequest::Redeliver(r) => {
            let response = client.redeliver_delivery(r).await.map_err(retry_hint)?.into_inner();
            if json {
                return output::write_json(out, &response);
            }
            write_delivery(out, &response.delivery.unwrap_or_default(), Some(&request_id))?;
        }
        NotifyRequest::Tickets(r) => {
            let response = client.list_external_tickets(r).await?.into_inner();
            if json {
                return output::write_json(out, &response);
            }
            write_tickets(out, &response)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/// `webhook`, matching `--channel`.
pub fn channel_label(channel: i32) -> String {
    let name = DeliveryChannel::try_from(channel).ok().map(|c| c.as_str_name());
    output::enum_label(name, "DELIVERY_CHANNEL_", channel)
}

/// `pending`, `delivered`, `dead`, matching `--status`.
pub fn delivery_status_label(status: i32) -> String {
    let name = DeliveryStatus::try_from(status).ok().map(|s| s.as_str_name());
    output::enum_label(name, "DELIVERY_STATUS_", status)
}

/// A `--min-severity` value, or `any` when unset.
pub fn min_severity_label(rating: i32) -> String {
    match SeverityRating::try_from(rating) {
        Ok(SeverityRating::Unspecified) => "any".to_owned(),
        other => output::enum_label(other.ok().map(|r| r.as_str_name()), "SEVERITY_RATING_", rating),
    }
}

/// A `--min-escalation` value, or `any` when unset.
pub fn min_escalation_label(level: i32) -> String {
    match EscalationLevel::try_from(level) {
        Ok(EscalationLevel::Unspecified) => "any".to_owned(),
        other => output::enum_label(other.ok().map(|l| l.as_str_name()), "ESCALATION_LEVEL_", level),
    }
}

fn ticket_system_label(system: i32) -> String {
    let name = TicketSystem::try_from(system).ok().map(|s| s.as_str_name());
    output::enum_label(name, "TICKET_SYSTEM_", system)
}

fn ticket_category_label(category: i32) -> String {
    match TicketStatusCategory::try_from(category) {
        Ok(TicketStatusCategory::Unspecified) => "-".to_owned(),
        other => output::enum_label(other.ok().map(|c| c.as_str_name()), "TICKET_STATUS_CATEGORY_", category)
            .replace('_', "-"),
    }
}

/// `CaseAccepted` for `psirt.events.v1.CaseAccepted`: the short name the
/// options accept too.
pub fn short_event_type(event_type: &str) -> &str {
    event_type.strip_prefix(EVENTS_PACKAGE).and_then(|r| r.strip_prefix('.')).unwrap_or(event_type)
}

fn list_or(values: &[String], empty: &str) -> String {
    if values.is_empty() { empty.to_owned() } else { values.join(", ") }
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
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

/// One delivery as a key/value block.
pub fn write_delivery(
    out: &mut dyn Write,
    delivery: &Delivery,
    request_id: Option<&str>,
) -> std::io::Result<()> {
    let mut fields = vec![
        ("Delivery ID", output::or_dash(&delivery.delivery_id)),
        ("Subscription ID", output::or_dash(&delivery.subscription_id)),
        ("Case ID", output::or_dash(&delivery.case_id)),
        ("Event", output::or_dash(short_event_type(&delivery.event_type))),
        ("Event ID", output::or_dash(&delivery.event_id)),
        ("Channel", channel_label(delivery.channel)),
        ("Status", delivery_status_label(delivery.status)),
        ("Redacted", yes_no(delivery.redacted)),
        ("Series", delivery.series.to_string()),
        ("Attempts", format!("{} ({} in all)", delivery.attempts, delivery.total_attempts)),
        (
            "Last HTTP status",
            if delivery.last_http_status == 0 {
                "-".to_owned()
            } else {
                delivery.last_http_status.to_string()
            },
        ),
        ("Last error", output::or_dash(&delivery.last_error)),
        ("Scheduled", output::timestamp(delivery.scheduled_at.as_ref())),
        ("Next attempt", output::timestamp(delivery.next_attempt_at.as_ref())),
        ("Last attempt", output::timestamp(delivery.last_attempt_at.as_ref())),
        ("Finished", output::timestamp(delivery.finished_at.as_ref())),
        ("Version", delivery.version.to_string()),
    ];
    if let Some(id) = request_id {
        fields.push(("Request ID", id.to_owned()));
    }
    output::write_fields(out, &fields)
}

/// One row per delivery.
pub fn write_deliveries(out: &mut dyn Write, page: &ListDeliveriesResponse) -> std::io::Result<()> {
    if page.deliveries.is_empty() {
        return writeln!(out, "No deliveries found.");
    }
    let mut table = Table::new([
        "ID",
        "STATUS",
        "EVENT",
        "CASE",
        "SUBSCRIPTION",
        "ATTEMPTS",
        "HTTP",
        "NEXT ATTEMPT",
        "VERSION",
        "LAST ERROR",
    ]);
    for d in &page.deliveries {
        table.row([
            d.delivery_id.clone(),
            delivery_status_label(d.status),
            short_event_type(&d.event_type).to_owned(),
            output::or_dash(&d.case_id),
            d.subscription_id.clone(),
            d.attempts.to_string(),
            if d.last_http_status == 0 { "-".to_owned() } else { d.last_http_status.to_string() },
            output::timestamp(d.next_attempt_at.as_ref()),
            d.version.to_string(),
            output::truncate(&output::or_dash(&d.last_error), 60),
        ]);
    }
    table.write(out)
}

/// One row per linked ticket.
pub fn write_tickets(out: &mut dyn Write, page: &ListExternalTicketsResponse) -> std::io::Result<()> {
    if page.tickets.is_empty() {
        return writeln!(out, "No external tickets linked.");
    }
    let mut table = Table::new(["SYSTEM", "KEY", "STATUS", "CATEGORY", "ACTION", "LINKED", "URL"]);
    for t in &page.tickets {
        table.row([
            ticket_system_label(t.system),
            t.key.clone(),
            output::or_dash(&t.external_status),
            ticket_category_label(t.status_category),
            output::or_dash(&t.action_id),
            output::timestamp(t.linked_at.as_ref()),
            output::or_dash(&t.url),
        ]);
    }
    table.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;
    use prost_types::Timestamp;
    use psirt_proto::notification::ExternalTicket;

    const SUB: &str = "0190f5a4-0000-4000-8000-00000000000a";
    const DELIVERY: &str = "0190f5a4-0000-4000-8000-00000000000b";
    const CASE: &str = "0190f5a4-0000-4000-8000-000000000001";
    const HOOK: &str = "https://siem.example.com/psirt?x=1";

    fn parse(args: &[&str]) -> Result<crate::Cli, clap::Error> {
        crate::Cli::try_parse_from(["psirtctl", "notify"].into_iter().chain(args.iter().copied()))
    }

    fn command(args: &[&str]) -> NotifyCommand {
        match parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}")).command {
            crate::Command::Notify(command) => command,
            other => panic!("not a notify command: {other:?}"),
        }
    }

    fn request(args: &[&str]) -> NotifyRequest {
        command(args).build("c1".to_owned(), "r1".to_owned()).expect("a request")
    }

    fn error(args: &[&str]) -> String {
        parse(args).map(|_| ()).expect_err("refused").to_string()
    }

    fn subscribe(extra: &[&'static str]) -> Vec<&'static str> {
        ["subscribe", "--name", "SIEM", "--webhook", HOOK, "--secret-ref", "siem-hook"]
            .iter()
            .chain(extra)
            .copied()
            .collect()
    }

    fn settings(args: &[&str]) -> SubscriptionSettings {
        match request(args) {
            NotifyRequest::Subscribe(r) => r.settings.expect("settings"),
            other => panic!("not subscribe: {other:?}"),
        }
    }

    #[test]
    fn notification_server_option() {
        let cli = parse(&["list", "--notification-server", "psirt.example:7000"]).expect("parses");
        assert_eq!(cli.global.notification_server, "http://psirt.example:7000");
        let cli = parse(&["list"]).expect("parses");
        assert_eq!(cli.global.notification_server, crate::client::DEFAULT_NOTIFICATION_SERVER);
        assert_eq!(crate::client::DEFAULT_NOTIFICATION_SERVER, "http://127.0.0.1:50054");
        let cli = parse(&["list", "--notification-server", "https://x:1"]).expect("TLS endpoint");
        assert_eq!(cli.global.notification_server, "https://x:1");
        assert!(parse(&["list", "--notification-server", "ftp://x:1"]).is_err());
    }

    #[test]
    fn subscribe_maps_every_field() {
        assert_eq!(
            request(&subscribe(&[
                "--event-type",
                "CaseAccepted",
                "--event-type",
                "psirt.events.v1.CaseEscalated",
                "--event-type",
                "psirt.events.v1.CaseAccepted",
                "--min-severity",
                "high",
                "--product",
                "acme-gateway",
                "--product",
                "pkg:cargo/openssl",
                "--min-escalation",
                "management",
                "--case-status",
                "accepted",
                "--case-status",
                "remediating",
                "--case-status",
                "accepted",
                "--trusted",
                "--disabled",
                "--request-id",
                "siem-1",
            ])),
            NotifyRequest::Subscribe(CreateSubscriptionRequest {
                request_id: "r1".to_owned(),
                settings: Some(SubscriptionSettings {
                    name: "SIEM".to_owned(),
                    channel: DeliveryChannel::Webhook as i32,
                    endpoint: HOOK.to_owned(),
                    event_types: vec![
                        "psirt.events.v1.CaseAccepted".to_owned(),
                        "psirt.events.v1.CaseEscalated".to_owned(),
                    ],
                    min_severity: SeverityRating::High as i32,
                    products: vec!["acme-gateway".to_owned(), "pkg:cargo/openssl".to_owned()],
                    min_escalation_level: EscalationLevel::Management as i32,
                    trusted: true,
                    secret_ref: "siem-hook".to_owned(),
                    enabled: false,
                    case_statuses: vec![CaseStatus::Accepted as i32, CaseStatus::Remediating as i32],
                }),
            })
        );
        let command = command(&subscribe(&["--request-id", "siem-1"]));
        assert_eq!(command.request_id(), Some("siem-1"));
        assert!(command.is_change() && command.case().is_none());

        // Defaults: every filter empty, enabled, untrusted.
        assert_eq!(
            settings(&subscribe(&[])),
            SubscriptionSettings {
                name: "SIEM".to_owned(),
                channel: DeliveryChannel::Webhook as i32,
                endpoint: HOOK.to_owned(),
                secret_ref: "siem-hook".to_owned(),
                enabled: true,
                ..SubscriptionSettings::default()
            }
        );
        for (value, rating) in [
            ("none", SeverityRating::None),
            ("low", SeverityRating::Low),
            ("medium", SeverityRating::Medium),
            ("high", SeverityRating::High),
            ("critical", SeverityRating::Critical),
        ] {
            assert_eq!(
                settings(&subscribe(&["--min-severity", value])).min_severity,
                rating as i32,
                "{value}"
            );
        }
        for (value, level) in [
            ("team", EscalationLevel::Team),
            ("management", EscalationLevel::Management),
            ("executive", EscalationLevel::Executive),
        ] {
            assert_eq!(
                settings(&subscribe(&["--min-escalation", value])).min_escalation_level,
                level as i32,
                "{value}"
            );
        }
    }

    #[test]
    fn subscribe_refuses_bad_input() {
        assert!(parse(&subscribe(&[])).is_ok());
        for missing in ["--name", "--webhook", "--secret-ref"] {
            let args = subscribe(&[]);
            let i = args.iter().position(|a| *a == missing).expect("option");
            let without: Vec<&str> =
                args.iter().enumerate().filter(|(j, _)| *j != i && *j != i + 1).map(|(_, a)| *a).collect();
            assert!(parse(&without).is_err(), "{missing} is required");
        }
        let mut bad = subscribe(&[]);
        bad[2] = " ";
        assert!(parse(&bad).is_err(), "empty name");
        let long_name = "n".repeat(201);
        bad[2] = long_name.as_str();
        assert!(parse(&bad).is_err(), "long name");
        for secret in ["", "siem hook", "a/b", "key=value"] {
            let mut bad = subscribe(&[]);
            bad[6] = secret;
            assert!(parse(&bad).is_err(), "{secret:?}");
        }
        for bad in [
            &["--min-severity", "severe"][..],
            &["--min-severity", "unspecified"],
            &["--min-escalation", "board"],
            &["--case-status", "open"],
            &["--product", " "],
            &["--event-type", "CaseExploded"],
            &["--event-type", "caseAccepted"],
            &["--event-type", "psirt.triage.v1.Case"],
            &["--event-type", "psirt.events.v1."],
            &["--request-id", "has space"],
            // A second destination.
            &["--email", "legal@example.com"],
            &["--jira", "SEC"],
            &["--servicenow", "incident"],
            &["--channel", "webhook"],
            &["--expected-version", "1"],
        ] {
            assert!(parse(&subscribe(bad)).is_err(), "{bad:?}");
        }
        let message = error(&subscribe(&["--event-type", "CaseExploded"]));
        assert!(message.contains("not an event type"), "{message}");
    }

    #[test]
    fn filters_hold_at_most_100_entries() {
        let types = [
            "CaseAccepted",
            "CaseEscalated",
            "CaseOpened",
            "SeverityAssessed",
            "SlaBreached",
            "AdvisoryPublished",
        ];
        // Repetitions count once.
        let mut args = subscribe(&[]);
        for _ in 0..30 {
            for t in types {
                args.extend(["--event-type", t]);
            }
        }
        assert_eq!(settings(&args).event_types.len(), types.len());

        let products: Vec<String> = (0..=100).map(|i| format!("p{i}")).collect();
        let mut args: Vec<&str> = subscribe(&[]);
        for p in &products {
            args.extend(["--product", p.as_str()]);
        }
        let message = error(&args);
        assert!(message.contains("--product is given 101 times"), "{message}");
        args.truncate(args.len() - 2);
        assert_eq!(settings(&args).products.len(), 100);
        let mut update: Vec<&str> = vec!["update", SUB];
        for p in &products {
            update.extend(["--product", p.as_str()]);
        }
        assert!(error(&update).contains("at most 100"));
    }

    #[test]
    fn webhook_urls() {
        for ok in [
            "https://siem.example.com",
            "https://siem.example.com:8443/psirt?token=abc",
            "https://[2001:db8::1]:443/hook",
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://[::1]:9000/",
            "  https://trimmed.example.com/x  ",
        ] {
            assert_eq!(parse_webhook_url(ok).as_deref(), Ok(ok.trim()), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("siem.example.com/psirt", "https://"),
            ("ftp://siem.example.com", "https://"),
            ("http://siem.example.com/psirt", "loopback"),
            ("http://10.0.0.1/psirt", "loopback"),
            ("https://user:pw@siem.example.com/", "credentials"),
            ("https://siem.example.com/#frag", "fragment"),
            ("https://siem.example.com/a b", "whitespace"),
            ("https://sïem.example.com/", "ASCII"),
            ("https:///psirt", "host"),
            ("https://siem.example.com:99999/", "host"),
            ("https://[::1/", "host"),
        ] {
            let message = parse_webhook_url(bad).expect_err(bad);
            assert!(message.contains(why), "{bad}: {message}");
        }
        let long = format!("https://siem.example.com/{}", "a".repeat(2048));
        assert!(parse_webhook_url(&long).is_err());
    }

    #[test]
    fn event_types() {
        assert_eq!(parse_event_type("CaseAccepted").as_deref(), Ok("psirt.events.v1.CaseAccepted"));
        assert_eq!(
            parse_event_type(" psirt.events.v1.SlaBreached ").as_deref(),
            Ok("psirt.events.v1.SlaBreached")
        );
        for bad in
            ["", "CaseExploded", "psirt.events.v2.CaseAccepted", "psirt.common.v1.Cvss", "Case-Accepted"]
        {
            assert!(parse_event_type(bad).is_err(), "{bad:?}");
        }
        assert_eq!(short_event_type("psirt.events.v1.CaseAccepted"), "CaseAccepted");
        assert_eq!(short_event_type("other.Type"), "other.Type");
    }

    fn current() -> Subscription {
        Subscription {
            subscription_id: SUB.to_owned(),
            settings: Some(SubscriptionSettings {
                name: "Legal".to_owned(),
                channel: DeliveryChannel::Webhook as i32,
                endpoint: "https://legal.example.com/hook".to_owned(),
                event_types: vec!["psirt.events.v1.CaseAccepted".to_owned()],
                min_severity: SeverityRating::High as i32,
                products: vec!["acme-gateway".to_owned()],
                min_escalation_level: EscalationLevel::Team as i32,
                trusted: true,
                secret_ref: "legal-hook".to_owned(),
                enabled: true,
                case_statuses: vec![CaseStatus::Accepted as i32],
            }),
            version: 7,
            created_at: None,
            updated_at: None,
        }
    }

    fn update(args: &[&str]) -> UpdateSubscriptionRequest {
        let mut all = vec!["update", SUB];
        all.extend_from_slice(args);
        match command(&all) {
            NotifyCommand::Update(Checked(fields)) => fields.build(&current(), "r1".to_owned()),
            other => panic!("not update: {other:?}"),
        }
    }

    #[test]
    fn update_applies_each_change_to_the_current_settings() {
        let before = current().settings.expect("settings");
        // One change: everything else stays; the version read is expected.
        let r = update(&["--name", "Legal team"]);
        assert_eq!(r.subscription_id, SUB);
        assert_eq!(r.request_id, "r1");
        assert_eq!(r.expected_version, Some(7));
        assert_eq!(
            r.settings,
            Some(SubscriptionSettings { name: "Legal team".to_owned(), ..before.clone() })
        );

        let r = update(&[
            "--webhook",
            "https://new.example.com/h",
            "--secret-ref",
            "new-key",
            "--event-type",
            "CaseEscalated",
            "--event-type",
            "SlaBreached",
            "--min-severity",
            "critical",
            "--product",
            "acme-agent",
            "--min-escalation",
            "executive",
            "--case-status",
            "disclosed",
            "--untrusted",
            "--disabled",
            "--expected-version",
            "6",
        ]);
        assert_eq!(r.expected_version, Some(6), "--expected-version wins");
        assert_eq!(
            r.settings,
            Some(SubscriptionSettings {
                name: "Legal".to_owned(),
                channel: DeliveryChannel::Webhook as i32,
                endpoint: "https://new.example.com/h".to_owned(),
                event_types: vec![
                    "psirt.events.v1.CaseEscalated".to_owned(),
                    "psirt.events.v1.SlaBreached".to_owned()
                ],
                min_severity: SeverityRating::Critical as i32,
                products: vec!["acme-agent".to_owned()],
                min_escalation_level: EscalationLevel::Executive as i32,
                trusted: false,
                secret_ref: "new-key".to_owned(),
                enabled: false,
                case_statuses: vec![CaseStatus::Disclosed as i32],
            })
        );

        let r = update(&[
            "--all-event-types",
            "--any-severity",
            "--all-products",
            "--any-escalation",
            "--all-case-statuses",
        ]);
        let s = r.settings.expect("settings");
        assert!(s.event_types.is_empty() && s.products.is_empty() && s.case_statuses.is_empty());
        assert_eq!((s.min_severity, s.min_escalation_level), (0, 0));
        assert_eq!((s.trusted, s.enabled), (true, true), "flags not given stay");

        let s = update(&["--enabled"]).settings.expect("settings");
        assert!(s.enabled);
        let off = SubscriptionSettings { enabled: false, trusted: false, ..before.clone() };
        let mut fields = match command(&["update", SUB, "--enabled", "--trusted"]) {
            NotifyCommand::Update(Checked(fields)) => fields,
            other => panic!("{other:?}"),
        };
        let s = fields.apply(&off);
        assert!(s.enabled && s.trusted);
        fields.request_id = Some("x".to_owned());
        assert_eq!(NotifyCommand::Update(Checked(fields)).build(String::new(), String::new()), None);
    }

    #[test]
    fn update_refuses_bad_input() {
        let message = error(&["update", SUB]);
        assert!(message.contains("nothing to change"), "{message}");
        assert_eq!(parse(&["update", SUB]).map(|_| ()).expect_err("refused").exit_code(), 2);
        assert!(parse(&["update", "not-a-uuid", "--enabled"]).is_err());
        assert!(parse(&["update", "--enabled"]).is_err(), "id required");
        for bad in [
            &["--enabled", "--disabled"][..],
            &["--trusted", "--untrusted"],
            &["--event-type", "CaseAccepted", "--all-event-types"],
            &["--product", "p", "--all-products"],
            &["--min-severity", "low", "--any-severity"],
            &["--min-escalation", "team", "--any-escalation"],
            &["--case-status", "fixed", "--all-case-statuses"],
            &["--webhook", "http://siem.example.com"],
            &["--name", ""],
            &["--secret-ref", "a b"],
            &["--event-type", "Nope"],
            &["--enabled", "--expected-version", "x"],
            &["--enabled", "--request-id", ""],
        ] {
            let mut args = vec!["update", SUB];
            args.extend_from_slice(bad);
            assert!(parse(&args).is_err(), "{bad:?}");
        }
        // An upper-case id is accepted and normalised.
        let upper = SUB.to_uppercase();
        let NotifyCommand::Update(Checked(fields)) = command(&["update", upper.as_str(), "--enabled"]) else {
            panic!()
        };
        assert_eq!(fields.subscription, SUB);
    }

    #[test]
    fn unsubscribe() {
        assert_eq!(
            request(&[
                "unsubscribe",
                SUB,
                "--reason",
                "replaced by the new SIEM",
                "--expected-version",
                "9",
                "--request-id",
                "del-1"
            ]),
            NotifyRequest::Unsubscribe(DeleteSubscriptionRequest {
                subscription_id: SUB.to_owned(),
                request_id: "r1".to_owned(),
                expected_version: Some(9),
                reason: "replaced by the new SIEM".to_owned(),
            })
        );
        assert_eq!(command(&["unsubscribe", SUB, "--request-id", "del-1"]).request_id(), Some("del-1"));
        assert_eq!(
            request(&["unsubscribe", SUB]),
            NotifyRequest::Unsubscribe(DeleteSubscriptionRequest {
                subscription_id: SUB.to_owned(),
                request_id: "r1".to_owned(),
                expected_version: None,
                reason: String::new(),
            })
        );
        assert!(parse(&["unsubscribe"]).is_err());
        assert!(parse(&["unsubscribe", "PSIRT-2026-0001"]).is_err());
        let long = "x".repeat(1001);
        assert!(parse(&["unsubscribe", SUB, "--reason", long.as_str()]).is_err());
    }

    #[test]
    fn list() {
        assert_eq!(
            request(&["list", "--channel", "webhook", "--page-size", "50", "--page-token", "t2"]),
            NotifyRequest::List(ListSubscriptionsRequest {
                channel: DeliveryChannel::Webhook as i32,
                page_size: 50,
                page_token: "t2".to_owned(),
            })
        );
        assert_eq!(request(&["list"]), NotifyRequest::List(ListSubscriptionsRequest::default()));
        for (value, channel) in [
            ("webhook", DeliveryChannel::Webhook),
            ("email", DeliveryChannel::Email),
            ("jira", DeliveryChannel::Jira),
            ("servicenow", DeliveryChannel::Servicenow),
        ] {
            let NotifyRequest::List(r) = request(&["list", "--channel", value]) else { panic!() };
            assert_eq!(r.channel, channel as i32, "{value}");
            assert_eq!(channel_label(r.channel), value, "listed as it is given");
        }
        let list = command(&["list"]);
        assert!(!list.is_change() && list.request_id().is_none() && list.case().is_none());
        for bad in [
            &["--channel", "sms"][..],
            &["--channel", "service-now"],
            &["--channel", "unspecified"],
            &["--page-size", "0"],
            &["--page-size", "1001"],
            &["--page-size", "-5"],
            &["--page-token", ""],
            &["--request-id", "x"],
        ] {
            let mut args = vec!["list"];
            args.extend_from_slice(bad);
            assert!(parse(&args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deliveries() {
        assert_eq!(
            request(&[
                "deliveries",
                "--case",
                "PSIRT-2026-0001",
                "--subscription",
                SUB,
                "--status",
                "dead",
                "--page-size",
                "1000",
                "--page-token",
                "t3",
            ]),
            NotifyRequest::Deliveries(ListDeliveriesRequest {
                case_id: "c1".to_owned(),
                subscription_id: SUB.to_owned(),
                status: DeliveryStatus::Dead as i32,
                page_size: 1000,
                page_token: "t3".to_owned(),
            })
        );
        assert_eq!(command(&["deliveries", "--case", "PSIRT-2026-0001"]).case(), Some("PSIRT-2026-0001"));
        assert_eq!(command(&["deliveries", "--case", CASE]).case(), Some(CASE));
        assert_eq!(command(&["deliveries"]).case(), None);
        assert_eq!(
            command(&["deliveries"]).build(String::new(), "r1".to_owned()),
            Some(NotifyRequest::Deliveries(ListDeliveriesRequest::default()))
        );
        for (value, status) in [
            ("pending", DeliveryStatus::Pending),
            ("delivered", DeliveryStatus::Delivered),
            ("dead", DeliveryStatus::Dead),
        ] {
            let NotifyRequest::Deliveries(r) = request(&["deliveries", "--status", value]) else { panic!() };
            assert_eq!(r.status, status as i32, "{value}");
        }
        for bad in [
            &["--status", "failed"][..],
            &["--subscription", "abc"],
            &["--case", ""],
            &["--page-size", "0"],
            &["--page-size", "1001"],
        ] {
            let mut args = vec!["deliveries"];
            args.extend_from_slice(bad);
            assert!(parse(&args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn redeliver_and_tickets() {
        assert_eq!(
            request(&["redeliver", DELIVERY, "--expected-version", "3", "--request-id", "again-1"]),
            NotifyRequest::Redeliver(RedeliverDeliveryRequest {
                delivery_id: DELIVERY.to_owned(),
                request_id: "r1".to_owned(),
                expected_version: Some(3),
            })
        );
        let redeliver = command(&["redeliver", DELIVERY, "--request-id", "again-1"]);
        assert_eq!(redeliver.request_id(), Some("again-1"));
        assert!(redeliver.is_change());
        assert!(parse(&["redeliver"]).is_err());
        assert!(parse(&["redeliver", "d-1"]).is_err(), "a UUID");

        assert_eq!(
            request(&["tickets", "PSIRT-2026-0001"]),
            NotifyRequest::Tickets(ListExternalTicketsRequest { case_id: "c1".to_owned() })
        );
        let tickets = command(&["tickets", CASE]);
        assert_eq!(tickets.case(), Some(CASE));
        assert!(!tickets.is_change());
        assert!(parse(&["tickets"]).is_err());
        assert!(parse(&["tickets", ""]).is_err());
    }

    /// `notify subscribe --name SIEM` with `extra`.
    fn subscribe_to(extra: &[&'static str]) -> Vec<&'static str> {
        ["subscribe", "--name", "SIEM"].iter().chain(extra).copied().collect()
    }

    #[test]
    fn subscribe_builds_each_channel() {
        let expect = |channel: DeliveryChannel, endpoint: &str, secret_ref: &str| SubscriptionSettings {
            name: "SIEM".to_owned(),
            channel: channel as i32,
            endpoint: endpoint.to_owned(),
            secret_ref: secret_ref.to_owned(),
            enabled: true,
            ..SubscriptionSettings::default()
        };
        assert_eq!(
            settings(&subscribe_to(&["--webhook", HOOK, "--secret-ref", "siem-hook"])),
            expect(DeliveryChannel::Webhook, HOOK, "siem-hook")
        );
        assert_eq!(
            settings(&subscribe_to(&["--email", "psirt@example.com"])),
            expect(DeliveryChannel::Email, "psirt@example.com", "")
        );
        // Several recipients, trimmed; a secret name is allowed (and unused).
        assert_eq!(
            settings(&subscribe_to(&[
                "--email",
                " psirt@example.com , legal@example.co.uk,ciso+psirt@example.com ",
                "--secret-ref",
                "unused",
            ])),
            expect(
                DeliveryChannel::Email,
                "psirt@example.com,legal@example.co.uk,ciso+psirt@example.com",
                "unused"
            )
        );
        assert_eq!(settings(&subscribe_to(&["--jira", "SEC"])), expect(DeliveryChannel::Jira, "SEC", ""));
        assert_eq!(
            settings(&subscribe_to(&["--servicenow", "sn_vul_vulnerable_item"])),
            expect(DeliveryChannel::Servicenow, "sn_vul_vulnerable_item", "")
        );
        // The filters do not depend on the channel.
        let s = settings(&subscribe_to(&[
            "--jira",
            "PSIRT_2",
            "--event-type",
            "CaseAccepted",
            "--min-severity",
            "critical",
            "--trusted",
        ]));
        assert_eq!((s.channel, s.endpoint.as_str()), (DeliveryChannel::Jira as i32, "PSIRT_2"));
        assert_eq!(s.event_types, vec!["psirt.events.v1.CaseAccepted".to_owned()]);
        assert_eq!(s.min_severity, SeverityRating::Critical as i32);
        assert!(s.trusted && s.secret_ref.is_empty());
    }

    #[test]
    fn subscribe_takes_exactly_one_destination() {
        for two in [
            &["--webhook", HOOK, "--email", "psirt@example.com"][..],
            &["--email", "psirt@example.com", "--jira", "SEC"],
            &["--jira", "SEC", "--servicenow", "incident"],
            &["--webhook", HOOK, "--servicenow", "incident"],
        ] {
            let mut args = subscribe_to(two);
            args.extend(["--secret-ref", "siem-hook"]);
            let refused = parse(&args).map(|_| ()).expect_err("two destinations");
            assert_eq!(refused.kind(), ErrorKind::ArgumentConflict, "{two:?}");
            assert_eq!(refused.exit_code(), 2, "a usage error");
            assert!(refused.to_string().contains("cannot be used with"), "{refused}");
            // The same destination twice is no better.
            let first = two[..2].to_vec();
            let mut twice = subscribe_to(&[]);
            twice.extend(first.iter().chain(&first));
            assert!(parse(&twice).is_err(), "{first:?} twice");
        }
        let refused = parse(&subscribe_to(&["--secret-ref", "siem-hook"])).map(|_| ()).expect_err("none");
        assert_eq!(refused.kind(), ErrorKind::MissingRequiredArgument);
        let message = refused.to_string();
        for option in ["--webhook", "--email", "--jira", "--servicenow"] {
            assert!(message.contains(option), "{message}");
        }
    }

    #[test]
    fn secret_ref_goes_with_webhooks_only() {
        let refused = parse(&subscribe_to(&["--webhook", HOOK])).map(|_| ()).expect_err("no secret");
        assert_eq!(refused.kind(), ErrorKind::MissingRequiredArgument);
        assert!(refused.to_string().contains("--webhook needs --secret-ref"), "{refused}");
        for (option, value, section) in
            [("--jira", "SEC", "[jira]"), ("--servicenow", "incident", "[servicenow]")]
        {
            let mut args = subscribe_to(&["--secret-ref", "tracker-token"]);
            args.extend([option, value]);
            let refused = parse(&args).map(|_| ()).expect_err("secret with a tracker");
            assert_eq!(refused.kind(), ErrorKind::ArgumentConflict, "{option}");
            assert_eq!(refused.exit_code(), 2);
            let message = refused.to_string();
            assert!(message.contains(&format!("--secret-ref cannot be used with {option}")), "{message}");
            assert!(message.contains(section), "{message}");
            // The same on update.
            let refused = error(&["update", SUB, option, value, "--secret-ref", "tracker-token"]);
            assert!(refused.contains(&format!("--secret-ref cannot be used with {option}")), "{refused}");
        }
        assert!(parse(&subscribe_to(&["--email", "psirt@example.com"])).is_ok(), "optional for e-mail");
    }

    #[test]
    fn bad_destinations_are_explained() {
        for (args, why) in [
            (&["--jira", "sec"][..], "not a Jira project key"),
            (&["--jira", "sec"], "upper-case: SEC"),
            (&["--jira", "S"], "2 to 10 characters"),
            (&["--jira", "SECURITY123"], "not a Jira project key"),
            (&["--jira", "1SEC"], "not a Jira project key"),
            (&["--jira", "SEC-1"], "not a Jira project key"),
            (&["--jira", ""], "not a Jira project key"),
            (&["--servicenow", "Incident"], "not a ServiceNow table name"),
            (&["--servicenow", "Incident"], "lower-case: incident"),
            (&["--servicenow", "_incident"], "a lower-case letter"),
            (&["--servicenow", "sn-vul"], "not a ServiceNow table name"),
            (&["--servicenow", ""], "not a ServiceNow table name"),
            (&["--email", ""], "no e-mail address"),
            (&["--email", "psirt.example.com"], "\"psirt.example.com\" is not an e-mail address"),
            (&["--email", "psirt@example.com,legal"], "\"legal\" is not an e-mail address"),
            (&["--email", "psirt@example.com,,legal@example.com"], "empty address"),
            (&["--email", "psirt@example.com,"], "empty address"),
            (&["--email", "psirt@localhost"], "a domain with a dot"),
            (&["--email", "a b@example.com"], "spaces"),
            (&["--email", "a@b@example.com"], "exactly one @"),
            (&["--email", ".a@example.com"], "dot"),
            (&["--email", "a@-example.com"], "letters, digits and hyphens"),
            (&["--webhook", "http://siem.example.com"], "loopback"),
        ] {
            let message = error(&subscribe_to(args));
            assert!(message.contains(why), "{args:?}: {message}");
            let mut update = vec!["update", SUB];
            update.extend_from_slice(args);
            assert!(error(&update).contains(why), "update {args:?}");
        }
        let fifty: Vec<String> = (0..50).map(|i| format!("r{i}@example.com")).collect();
        assert_eq!(parse_email_recipients(&fifty.join(",")).map(|r| r.split(',').count()), Ok(50));
        let message = parse_email_recipients(&format!("{},x@example.com", fifty.join(","))).expect_err("51");
        assert!(message.contains("at most 50 recipients"), "{message}");
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(parse_email_recipients(&long).expect_err("long").contains("64"));
        assert_eq!(parse_jira_project(" SEC_2 ").as_deref(), Ok("SEC_2"));
        assert_eq!(parse_jira_project("ABCDEFGHIJ").as_deref(), Ok("ABCDEFGHIJ"));
        assert_eq!(parse_servicenow_table("u_psirt_case").as_deref(), Ok("u_psirt_case"));
        assert_eq!(parse_servicenow_table(&"t".repeat(80)).map(|t| t.len()), Ok(80));
        assert!(parse_servicenow_table(&"t".repeat(81)).is_err());
    }

    #[test]
    fn update_moves_a_subscription_to_another_channel() {
        let before = current().settings.expect("settings");
        let fields = |args: &[&str]| {
            let mut all = vec!["update", SUB];
            all.extend_from_slice(args);
            match command(&all) {
                NotifyCommand::Update(Checked(fields)) => fields,
                other => panic!("not update: {other:?}"),
            }
        };
        // Webhook to Jira: the signing secret goes.
        let to_jira = fields(&["--jira", "SEC"]);
        assert_eq!(to_jira.check_against(&before), Ok(()));
        let jira = to_jira.apply(&before);
        assert_eq!(
            jira,
            SubscriptionSettings {
                channel: DeliveryChannel::Jira as i32,
                endpoint: "SEC".to_owned(),
                secret_ref: String::new(),
                ..before.clone()
            }
        );
        // Jira to ServiceNow, and to e-mail (with or without a secret name).
        let s = fields(&["--servicenow", "incident"]).apply(&jira);
        assert_eq!((s.channel, s.endpoint.as_str()), (DeliveryChannel::Servicenow as i32, "incident"));
        let s = fields(&["--email", "a@example.com,b@example.com"]).apply(&before);
        assert_eq!(
            (s.channel, s.endpoint.as_str()),
            (DeliveryChannel::Email as i32, "a@example.com,b@example.com")
        );
        assert!(s.secret_ref.is_empty(), "a new channel drops the secret name");
        let s = fields(&["--email", "a@example.com", "--secret-ref", "mail"]).apply(&before);
        assert_eq!(s.secret_ref, "mail");
        // Another webhook keeps the secret.
        let s = fields(&["--webhook", "https://new.example.com/h"]).apply(&before);
        assert_eq!((s.endpoint.as_str(), s.secret_ref.as_str()), ("https://new.example.com/h", "legal-hook"));

        // Back to a webhook: only with a secret.
        let back = fields(&["--webhook", HOOK]);
        let message = back.check_against(&jira).expect_err("no secret");
        assert!(message.contains("--secret-ref"), "{message}");
        let back = fields(&["--webhook", HOOK, "--secret-ref", "siem-hook"]);
        assert_eq!(back.check_against(&jira), Ok(()));
        let s = back.apply(&jira);
        assert_eq!(
            (s.channel, s.endpoint.as_str(), s.secret_ref.as_str()),
            (DeliveryChannel::Webhook as i32, HOOK, "siem-hook")
        );
        // A secret name for a Jira subscription is refused; other changes are fine.
        let message = fields(&["--secret-ref", "x"]).check_against(&jira).expect_err("tracker");
        assert!(message.contains("[jira]"), "{message}");
        assert_eq!(fields(&["--disabled"]).check_against(&jira), Ok(()));
        assert_eq!(fields(&["--secret-ref", "x"]).check_against(&before), Ok(()));

        // At most one destination.
        let refused = parse(&["update", SUB, "--jira", "SEC", "--email", "a@example.com"]).map(|_| ());
        assert_eq!(refused.expect_err("two").kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn help_names_every_channel() {
        use clap::CommandFactory as _;
        let mut cli = crate::Cli::command();
        let notify = cli.find_subcommand_mut("notify").expect("notify");
        let help = notify.find_subcommand_mut("subscribe").expect("subscribe").render_long_help().to_string();
        assert!(
            help.contains("<--webhook <URL>|--email <ADDRESSES>|--jira <PROJECT>|--servicenow <TABLE>>"),
            "{help}"
        );
        assert!(help.contains("[jira]") && help.contains("[servicenow]"), "{help}");
        let help = notify.find_subcommand_mut("update").expect("update").render_long_help().to_string();
        assert!(help.contains("--servicenow <TABLE>") && help.contains("At most one of"), "{help}");
        let help = notify.find_subcommand_mut("list").expect("list").render_long_help().to_string();
        assert!(help.contains("servicenow"), "{help}");
    }

    fn render(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
        let mut buf = Vec::new();
        f(&mut buf).expect("write");
        String::from_utf8(buf).expect("utf-8")
    }

    #[test]
    fn subscription_rendering() {
        let subscription = current();
        let text = render(|w| write_subscription(w, &subscription, Some("r1")));
        assert!(text.contains(&format!("Subscription ID:  {SUB}")), "{text}");
        assert!(text.contains("Channel:          webhook"), "{text}");
        assert!(text.contains("Event types:      CaseAccepted"), "{text}");
        assert!(text.contains("Min severity:     high"), "{text}");
        assert!(text.contains("Min escalation:   team"), "{text}");
        assert!(text.contains("Case statuses:    accepted"), "{text}");
        assert!(text.contains("Trusted:          yes"), "{text}");
        assert!(text.contains("Version:          7"), "{text}");
        assert!(text.contains("Request ID:       r1"), "{text}");
        let bare = Subscription { settings: None, ..current() };
        let text = render(|w| write_subscription(w, &bare, None));
        assert!(text.contains("Event types:      all"), "{text}");
        assert!(text.contains("Min severity:     any"), "{text}");
        assert!(text.contains("Products:         all"), "{text}");
        assert!(!text.contains("Request ID"), "{text}");

        let mut many = current();
        if let Some(s) = many.settings.as_mut() {
            s.event_types.push("psirt.events.v1.CaseEscalated".to_owned());
            s.min_severity = 0;
        }
        let page = ListSubscriptionsResponse {
            subscriptions: vec![current(), many],
            next_page_token: String::new(),
        };
        let text = render(|w| write_subscriptions(w, &page));
        assert!(text.starts_with("ID  ") && text.contains("CHANNEL  ENABLED  TRUSTED  EVENTS"), "{text}");
        assert!(text.contains("webhook  yes      yes      CaseAccepted  high"), "{text}");
        assert!(text.contains("2 types       any"), "{text}");
        assert!(text.contains("https://legal.example.com/hook  Legal"), "{text}");
        assert_eq!(
            render(|w| write_subscriptions(w, &ListSubscriptionsResponse::default())),
            "No subscriptions found.\n"
        );
    }

    #[test]
    fn delivery_and_ticket_rendering() {
        let delivery = Delivery {
            delivery_id: DELIVERY.to_owned(),
            subscription_id: SUB.to_owned(),
            case_id: CASE.to_owned(),
            event_type: "psirt.events.v1.CaseAccepted".to_owned(),
            channel: DeliveryChannel::Webhook as i32,
            status: DeliveryStatus::Dead as i32,
            attempts: 5,
            total_attempts: 10,
            series: 2,
            last_http_status: 503,
            last_error: "HTTP 503\nService Unavailable".to_owned(),
            finished_at: Some(Timestamp { seconds: 0, nanos: 0 }),
            version: 12,
            ..Delivery::default()
        };
        let text = render(|w| write_delivery(w, &delivery, Some("again-1")));
        assert!(text.contains("Status:            dead"), "{text}");
        assert!(text.contains("Attempts:          5 (10 in all)"), "{text}");
        assert!(text.contains("Last HTTP status:  503"), "{text}");
        assert!(text.contains("Last error:        HTTP 503 Service Unavailable"), "{text}");
        assert!(text.contains("Finished:          1970-01-01T00:00:00Z"), "{text}");
        assert!(text.contains("Next attempt:      -"), "{text}");
        assert!(text.contains("Request ID:        again-1"), "{text}");

        let page = ListDeliveriesResponse {
            deliveries: vec![
                delivery,
                Delivery { status: DeliveryStatus::Pending as i32, ..Delivery::default() },
            ],
            next_page_token: "t".to_owned(),
        };
        let text = render(|w| write_deliveries(w, &page));
        assert!(text.starts_with("ID "), "{text}");
        assert!(text.contains(&format!("{DELIVERY}  dead     CaseAccepted  {CASE}  {SUB}  5")), "{text}");
        assert!(text.contains("HTTP 503 Service Unavailable"), "{text}");
        assert!(text.contains("pending"), "{text}");
        assert_eq!(
            render(|w| write_deliveries(w, &ListDeliveriesResponse::default())),
            "No deliveries found.\n"
        );

        let tickets = ListExternalTicketsResponse {
            tickets: vec![ExternalTicket {
                system: TicketSystem::Jira as i32,
                key: "SEC-123".to_owned(),
                url: "https://jira.example.com/browse/SEC-123".to_owned(),
                external_status: "In Review".to_owned(),
                status_category: TicketStatusCategory::InProgress as i32,
                ..ExternalTicket::default()
            }],
        };
        let text = render(|w| write_tickets(w, &tickets));
        assert!(text.contains("jira    SEC-123  In Review  in-progress  -"), "{text}");
        assert_eq!(
            render(|w| write_tickets(w, &ListExternalTicketsResponse::default())),
            "No external tickets linked.\n"
        );
    }

    #[test]
    fn labels() {
        assert_eq!(channel_label(DeliveryChannel::Webhook as i32), "webhook");
        assert_eq!(channel_label(42), "unknown(42)");
        assert_eq!(delivery_status_label(DeliveryStatus::Delivered as i32), "delivered");
        assert_eq!(min_severity_label(SeverityRating::Critical as i32), "critical");
        assert_eq!(min_severity_label(0), "any");
        assert_eq!(min_escalation_label(EscalationLevel::Executive as i32), "executive");
        assert_eq!(min_escalation_label(0), "any");
        assert_eq!(ticket_system_label(TicketSystem::Servicenow as i32), "servicenow");
        assert_eq!(ticket_category_label(0), "-");
    }
}
