//! Properties of what the notification service reads from outside: the
//! bodies of the trackers' inbound webhooks (Jira, ServiceNow), the peer's
//! `Retry-After`, the signature of outbound webhooks, and the e-mail
//! addresses subscriptions and reporters give (which the mailer must be able
//! to send to). Whatever arrives, the answer is a value or a typed refusal,
//! never a panic. The hooks' authentication (signature, token) has its
//! properties next to the private code, in `tracker/inbound.rs`.

use std::time::Duration;

use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use psirt_notification::tracker::inbound::{BodyRefusal, jira_issue_key, servicenow_sys_id};
use psirt_notification::tracker::servicenow::ServiceNowSettings;
use psirt_notification::tracker::{jira, servicenow};
use psirt_notification::webhook::{parse_retry_after, sign};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use time::OffsetDateTime;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

/// Keys the parsers look for, and some others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            "issue", "key", "fields", "status", "name", "statusCategory", "result", "sys_id", "state",
            "u_state", "state_name", "webhookEvent",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

/// Any JSON value, nested a few levels, with the keys the parsers read.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A Jira `jira:issue_updated` body, with noise around what is read.
fn jira_body() -> impl Strategy<Value = (Value, String, String)> {
    ("[A-Z]{2,6}-[0-9]{1,5}", "\\PC{0,20}", json_value(), json_value()).prop_map(
        |(key, status, noise, more)| {
            let body = json!({
                "webhookEvent": "jira:issue_updated",
                "noise": noise,
                "issue": {
                    "key": key,
                    "id": "10001",
                    "fields": { "status": { "name": status, "statusCategory": { "key": "done" } }, "more": more },
                },
            });
            (body, key, status)
        },
    )
}

fn settings() -> ServiceNowSettings {
    ServiceNowSettings { state_field: "u_state".to_owned(), ..ServiceNowSettings::default() }
}

/// What a ServiceNow body should give: the record (under `result` when
/// there is one) with a string `sys_id` and a state (the configured field,
/// else `state`) that is a string or a number.
fn servicenow_expected(body: &Value) -> Option<(String, String)> {
    let record = body.pointer("/result").unwrap_or(body);
    let sys_id = record.pointer("/sys_id")?.as_str()?.to_owned();
    let state = record.pointer("/u_state").or_else(|| record.pointer("/state"))?;
    let state = match state {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some((sys_id, state))
}

#[test]
fn refusals_answer_with_their_status() {
    assert_eq!(BodyRefusal::NotJson.answer().0, StatusCode::BAD_REQUEST);
    assert_eq!(BodyRefusal::NotAnIssueChange.answer().0, StatusCode::OK);
    assert_eq!(BodyRefusal::NotConfigured.answer().0, StatusCode::NOT_FOUND);
    assert_eq!(BodyRefusal::NoRecord.answer().0, StatusCode::BAD_REQUEST);
    assert_eq!(jira_issue_key(b"{\"issue\":"), Err(BodyRefusal::NotJson));
    assert_eq!(servicenow_sys_id(None, b"{}"), Err(BodyRefusal::NotConfigured));
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes as a webhook body: not JSON is refused as such; JSON
    /// gives a ticket or a typed refusal.
    #[test]
    fn any_webhook_bytes_are_refused_or_name_a_ticket(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            "\\PC{0,64}".prop_map(String::into_bytes),
            json_value().prop_map(|v| serde_json::to_vec(&v).expect("JSON")),
        ],
    ) {
        let is_json = serde_json::from_slice::<Value>(&body).is_ok();
        let jira = jira_issue_key(&body);
        prop_assert_eq!(jira == Err(BodyRefusal::NotJson), !is_json);
        let settings = settings();
        let sn = servicenow_sys_id(Some(&settings), &body);
        prop_assert_eq!(sn == Err(BodyRefusal::NotJson), !is_json);
        let unconfigured = servicenow_sys_id(None, &body);
        let expected = if is_json { BodyRefusal::NotConfigured } else { BodyRefusal::NotJson };
        prop_assert_eq!(unconfigured, Err(expected));
    }

    /// Any JSON value: Jira's hook takes `/issue/key` when it is a string
    /// and the issue has a status, and ignores anything else; ServiceNow's
    /// takes a record's `sys_id` and state, and refuses anything else.
    #[test]
    fn any_json_gives_the_ticket_it_names_or_a_refusal(body in json_value()) {
        let bytes = serde_json::to_vec(&body).expect("JSON");

        let key = body.pointer("/issue/key").and_then(Value::as_str).map(str::to_owned);
        let expected = match key {
            Some(key) if body.pointer("/issue/fields/status").is_some() => Ok(key),
            _ => Err(BodyRefusal::NotAnIssueChange),
        };
        prop_assert_eq!(jira_issue_key(&bytes), expected.clone());
        prop_assert_eq!(jira::parse_webhook(&body).map(|(k, _)| k).ok_or(BodyRefusal::NotAnIssueChange), expected);

        let settings = settings();
        let expected = servicenow_expected(&body);
        let parsed = servicenow::parse_webhook(&settings, &body);
        prop_assert_eq!(parsed.as_ref().map(|(id, state)| (id.clone(), state.name.clone())), expected.clone());
        prop_assert_eq!(
            servicenow_sys_id(Some(&settings), &bytes),
            expected.map(|(id, _)| id).ok_or(BodyRefusal::NoRecord)
        );
    }

    /// A Jira issue change, whatever else it carries, gives its key and status.
    #[test]
    fn jira_issue_changes_give_key_and_status((body, key, status) in jira_body()) {
        let bytes = serde_json::to_vec(&body).expect("JSON");
        prop_assert_eq!(jira_issue_key(&bytes), Ok(key.clone()));
        let (parsed_key, state) = jira::parse_webhook(&body).expect("an issue change");
        prop_assert_eq!(parsed_key, key);
        prop_assert_eq!(state.name, status);
    }

    /// A ServiceNow record, bare or under `result`, with its state as text
    /// or a number, gives its sys_id and state.
    #[test]
    fn servicenow_records_give_sys_id_and_state(
        sys_id in "[0-9a-f]{32}",
        state in prop_oneof!["\\PC{0,8}".prop_map(Value::String), any::<i32>().prop_map(|n| json!(n))],
        wrapped in any::<bool>(),
        configured_field in any::<bool>(),
        noise in json_value(),
    ) {
        let field = if configured_field { "u_state" } else { "state" };
        let mut record = json!({ "sys_id": sys_id, "noise": noise });
        record[field] = state.clone();
        let body = if wrapped { json!({ "result": record }) } else { record };
        let bytes = serde_json::to_vec(&body).expect("JSON");
        prop_assert_eq!(servicenow_sys_id(Some(&settings()), &bytes), Ok(sys_id));
        let (_, parsed) = servicenow::parse_webhook(&settings(), &body).expect("a record");
        let expected = match state {
            Value::String(s) => s,
            other => other.to_string(),
        };
        prop_assert_eq!(parsed.name, expected);
    }

    /// The outbound signature is the HMAC-SHA256 of `"<timestamp>.<body>"`
    /// under the subscription's secret, as receivers recompute it; another
    /// timestamp, body or secret gives another signature.
    #[test]
    fn webhook_signatures_are_what_receivers_recompute(
        secret in proptest::collection::vec(any::<u8>(), 0..64),
        timestamp in any::<i64>(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
        other_secret in proptest::collection::vec(any::<u8>(), 0..64),
        other_timestamp in any::<i64>(),
        other_body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("any key length");
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(&body);
        let signature = sign(&secret, timestamp, &body);
        prop_assert_eq!(&signature, &format!("v1={}", hex::encode(mac.finalize().into_bytes())));
        let other = sign(&other_secret, other_timestamp, &other_body);
        let same_key = Hmac::<Sha256>::new_from_slice(&secret).expect("key").finalize()
            == Hmac::<Sha256>::new_from_slice(&other_secret).expect("key").finalize();
        if (same_key, timestamp, &body) != (true, other_timestamp, &other_body) {
            prop_assert_ne!(signature, other);
        }
    }

    /// `Retry-After` as delay-seconds or an HTTP date (IMF-fixdate, what
    /// servers send, or RFC 2822 with an offset): the wait it says, none
    /// for a date past; any other text is no wait, never a panic.
    #[test]
    fn retry_after_is_the_wait_it_says(
        now in 946_684_800..4_102_444_800i64,
        seconds in any::<u64>(),
        ahead in 0..10_000_000i64,
        past in 1..10_000_000i64,
        blank in "[ \t]{0,2}",
        text in "\\PC{0,40}",
    ) {
        let now = OffsetDateTime::from_unix_timestamp(now).expect("in range");
        prop_assert_eq!(
            parse_retry_after(&format!("{blank}{seconds}{blank}"), now),
            Some(Duration::from_secs(seconds))
        );
        let imf = time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        let at = now + time::Duration::seconds(ahead);
        let header = at.format(&imf).expect("formats");
        prop_assert_eq!(
            parse_retry_after(&header, now),
            Some(Duration::from_secs(ahead.unsigned_abs())),
            "{}", header
        );
        let rfc2822 = (now - time::Duration::seconds(past))
            .format(&time::format_description::well_known::Rfc2822)
            .expect("formats");
        prop_assert_eq!(parse_retry_after(&rfc2822, now), Some(Duration::ZERO), "{}", rfc2822);
        let _ = parse_retry_after(&text, now);
    }
}

// --- e-mail addresses the service sends to ------------------------------------------

/// A dot-atom local part: RFC 5322 `atext`, or UTF-8 letters (RFC 6531).
fn local_part() -> impl Strategy<Value = String> {
    let atom = prop_oneof!["[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,10}", "[\\p{L}\\p{N}]{1,6}",];
    proptest::collection::vec(atom, 1..4).prop_map(|atoms| atoms.join("."))
}

/// A domain of ASCII labels or labels of letters and digits of any script.
fn domain() -> impl Strategy<Value = String> {
    let label = prop_oneof![
        3 => "[A-Za-z0-9]([A-Za-z0-9-]{0,16}[A-Za-z0-9])?",
        1 => "[\\p{L}\\p{N}]{1,8}",
    ];
    proptest::collection::vec(label, 2..4).prop_map(|labels| labels.join("."))
}

proptest! {
    #![proptest_config(config())]

    /// Every address the platform accepts (a reporter's, a subscription's)
    /// is one the mailer can send to: `check_email` never accepts what
    /// lettre refuses, which would fail every delivery after the fact.
    #[test]
    fn accepted_addresses_are_addresses_the_mailer_takes(
        address in prop_oneof![
            3 => (local_part(), domain()).prop_map(|(l, d)| format!("{l}@{d}")),
            1 => "\\PC{1,30}@\\PC{1,30}",
        ],
    ) {
        if psirt_domain::check_email(&address).is_ok() {
            let parsed = address.parse::<lettre::Address>();
            prop_assert!(parsed.is_ok(), "{:?} accepted but lettre says {:?}", address, parsed);
            let mailbox = address.parse::<lettre::message::Mailbox>();
            prop_assert!(mailbox.is_ok(), "{:?} accepted but lettre says {:?}", address, mailbox);
        }
    }
}
