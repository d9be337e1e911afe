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
//!
//! Where things are:
//! - this module: the command tree ([`NotifyCommand`]), the requests built
//!   from it ([`NotifyRequest`]) and [`run`], which sends them;
//! - `subscriptions`: `subscribe`, `update`, `unsubscribe`, `list`;
//! - `deliveries`: `deliveries`, `redeliver`;
//! - `tickets`: `tickets`;
//! - `parse`: the value parsers of the options;
//! - `labels`: how enum values are shown.

mod deliveries;
mod labels;
mod parse;
mod subscriptions;
#[cfg(test)]
mod tests;
mod tickets;

use std::io::Write;

use clap::{ArgMatches, Args, FromArgMatches, Subcommand};
use psirt_proto::common::SeverityRating;
use psirt_proto::events::{DeliveryChannel, EscalationLevel, SubscriptionSettings};
use psirt_proto::notification::{
    CreateSubscriptionRequest, DeleteSubscriptionRequest, DeliveryStatus, ListDeliveriesRequest,
    ListExternalTicketsRequest, ListSubscriptionsRequest, RedeliverDeliveryRequest,
};
use tonic::Status;

pub use deliveries::{DeliveriesArgs, DeliveryStatusArg, RedeliverArgs, write_deliveries, write_delivery};
pub use labels::{
    channel_label, delivery_status_label, min_escalation_label, min_severity_label, short_event_type,
};
pub use parse::{
    EVENTS_PACKAGE, MAX_FILTER_ENTRIES, parse_delivery_id, parse_email_recipients, parse_event_type,
    parse_jira_project, parse_name, parse_product, parse_reason, parse_secret_ref, parse_servicenow_table,
    parse_subscription_id, parse_webhook_url,
};
pub use subscriptions::{
    ChannelArg, Destination, EscalationArg, ListArgs, NewDestination, SeverityArg, SubscribeFields,
    UnsubscribeArgs, UpdateFields, find_subscription, write_subscription, write_subscriptions,
};
pub use tickets::{TicketsArgs, write_tickets};

use crate::client::Connection;
use crate::output::{self, OutputFormat};
use crate::remediation::resolve_case;
use crate::{CliError, GlobalArgs};
use subscriptions::{case_statuses, dedup, update};

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
