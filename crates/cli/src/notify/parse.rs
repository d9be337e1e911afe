//! The value parsers of the `notify` options: values the server would
//! reject for their form are refused while parsing, before connecting.

use psirt_domain::notification::{MAX_EMAIL_RECIPIENTS, MAX_ENDPOINT_CHARS};

use crate::output;

/// The package of every event type a subscription can filter on.
pub const EVENTS_PACKAGE: &str = "psirt.events.v1";
/// Most event types (and most products) one subscription may filter on.
pub const MAX_FILTER_ENTRIES: usize = 100;
/// Longest subscription name, product and secret name.
const MAX_NAME_CHARS: usize = 200;
/// Longest reason for a deletion.
const MAX_REASON_CHARS: usize = 1000;

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
