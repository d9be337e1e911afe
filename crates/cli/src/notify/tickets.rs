//! `notify tickets`: the external tickets (Jira, ServiceNow) linked to a
//! case.

use std::io::Write;

use clap::Args;
use clap::builder::NonEmptyStringValueParser;
use psirt_proto::notification::ListExternalTicketsResponse;

use super::labels::{ticket_category_label, ticket_system_label};
use crate::output::{self, Table};

/// `notify tickets`.
#[derive(Debug, Clone, Args)]
pub struct TicketsArgs {
    /// The case: its id (UUID) or its key (e.g. PSIRT-2026-0001).
    #[arg(value_name = "CASE", value_parser = NonEmptyStringValueParser::new())]
    pub case: String,
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
