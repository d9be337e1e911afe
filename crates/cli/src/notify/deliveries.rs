//! `notify deliveries` and `notify redeliver`: their options and how
//! deliveries are printed.

use std::io::Write;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, ValueEnum};
use psirt_proto::notification::{Delivery, DeliveryStatus, ListDeliveriesResponse};

use super::labels::{channel_label, delivery_status_label, short_event_type, yes_no};
use super::parse::{parse_delivery_id, parse_subscription_id};
use crate::output::{self, Table};
use crate::triage::parse_request_id;

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

impl From<DeliveryStatusArg> for DeliveryStatus {
    fn from(value: DeliveryStatusArg) -> Self {
        match value {
            DeliveryStatusArg::Pending => DeliveryStatus::Pending,
            DeliveryStatusArg::Delivered => DeliveryStatus::Delivered,
            DeliveryStatusArg::Dead => DeliveryStatus::Dead,
        }
    }
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
