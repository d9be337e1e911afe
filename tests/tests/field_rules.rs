//! One rule per request field, held by the handlers: every row of
//! `psirt_domain::validation::fields::REQUEST_FIELDS` is driven through the
//! real binaries. For each request field the descriptors name (and each field
//! of the messages a request contains), the test builds a request with only
//! that field set and calls the RPC as an admin:
//!
//! - a text one past its row's maximum is refused with INVALID_ARGUMENT and a
//!   field violation naming exactly that field; at the maximum no violation
//!   names it;
//! - a list one entry past its maximum is refused naming the list; an entry
//!   one past the entry rule's maximum is refused naming `field[0]`;
//! - an id that is no UUID, a request id outside its characters, a page
//!   token past its length, a name outside its set, a value of a syntax
//!   past its length: refused naming the field.
//!
//! So a handler that checks a field with a number of its own, or not at all,
//! fails here, whatever the proto comment and the table say
//! (`crates/domain/tests/request_rules.rs` holds those two together).

mod common;

use std::collections::BTreeMap;

use common::{Service, build, call_raw, sqlite, tempfile_dir};
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use psirt_domain::validation::fields::{Each, REQUEST_FIELDS, Rule};
use psirt_domain::validation::{MAX_PAGE_TOKEN_CHARS, MAX_REQUEST_ID_CHARS};
use psirt_testkit::NatsServer;
use psirt_testkit::jwt::{Bearer, Token};
use tonic::Code;
use tonic_types::StatusExt;

/// What one probe expects of the field it sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// INVALID_ARGUMENT with a violation naming the field.
    Refused,
    /// No violation names the field (other fields may be missing).
    NotNamed,
    /// A name outside a fixed set: NOT_FOUND, or INVALID_ARGUMENT naming the field.
    Unknown,
}

/// One request to send: the value of one field (at `path` inside the request).
struct Probe {
    /// `title`, `filter.product`, `products[0].range`.
    path: String,
    what: String,
    message: DynamicMessage,
    expect: Expect,
}

fn repeat(n: usize) -> String {
    "a".repeat(n)
}

/// An entry of a list that its entry rule accepts (or the closest there is).
fn entry(field: &FieldDescriptor, each: Each) -> Value {
    match (field.kind(), each) {
        (Kind::Message(m), _) => Value::Message(DynamicMessage::new(m)),
        (Kind::Enum(_), _) => Value::EnumNumber(1),
        (Kind::Uint64, _) => Value::U64(1),
        (Kind::Int64, _) => Value::I64(1),
        (Kind::Uint32, _) => Value::U32(1),
        (Kind::Int32, _) => Value::I32(1),
        _ => Value::String("a".to_owned()),
    }
}

/// The values to try for `field` under `rule`: (what, value, expectation,
/// the path suffix the violation names).
fn values(field: &FieldDescriptor, rule: Rule) -> Vec<(String, Value, Expect, String)> {
    let text = |s: String| Value::String(s);
    let name = field.name().to_owned();
    match rule {
        Rule::Text(t) => vec![
            (
                format!("{} chars (max {})", t.max + 1, t.max),
                text(repeat(t.max + 1)),
                Expect::Refused,
                name.clone(),
            ),
            (format!("{} chars (the max)", t.max), text(repeat(t.max)), Expect::NotNamed, name),
        ],
        Rule::Id => vec![("not a UUID".to_owned(), text("not-a-uuid".to_owned()), Expect::Refused, name)],
        Rule::RequestId => vec![
            ("a space".to_owned(), text("has spaces".to_owned()), Expect::Refused, name.clone()),
            (
                format!("{} chars", MAX_REQUEST_ID_CHARS + 1),
                text(repeat(MAX_REQUEST_ID_CHARS + 1)),
                Expect::Refused,
                name.clone(),
            ),
            (
                format!("{MAX_REQUEST_ID_CHARS} chars"),
                text(repeat(MAX_REQUEST_ID_CHARS)),
                Expect::NotNamed,
                name,
            ),
        ],
        Rule::PageToken => vec![(
            format!("{} chars", MAX_PAGE_TOKEN_CHARS + 1),
            text(repeat(MAX_PAGE_TOKEN_CHARS + 1)),
            Expect::Refused,
            name,
        )],
        Rule::VersRange => vec![
            (
                "a range with >".to_owned(),
                text("vers:generic/>1.0".to_owned()),
                Expect::Refused,
                name.clone(),
            ),
            (
                format!("{} chars", psirt_domain::vers::MAX_VERS_CHARS + 1),
                text(format!("vers:generic/{}", repeat(psirt_domain::vers::MAX_VERS_CHARS))),
                Expect::Refused,
                name,
            ),
        ],
        Rule::Syntax { max } => {
            vec![(format!("{} chars", max + 1), text(repeat(max + 1)), Expect::Refused, name)]
        }
        Rule::Known => vec![("an unknown name".to_owned(), text(repeat(300)), Expect::Unknown, name)],
        Rule::List { max, each, .. } => {
            let mut out = vec![(
                format!("{} entries (max {max})", max + 1),
                Value::List(vec![entry(field, each); max + 1]),
                Expect::Refused,
                name.clone(),
            )];
            if let Each::Text(t) = each {
                out.push((
                    format!("an entry of {} chars (max {})", t.max + 1, t.max),
                    Value::List(vec![text(repeat(t.max + 1))]),
                    Expect::Refused,
                    format!("{name}[0]"),
                ));
                out.push((
                    format!("an entry of {} chars", t.max),
                    Value::List(vec![text(repeat(t.max))]),
                    Expect::NotNamed,
                    format!("{name}[0]"),
                ));
            }
            if let Each::Syntax { max } = each {
                out.push((
                    format!("an entry of {} chars", max + 1),
                    Value::List(vec![text(repeat(max + 1))]),
                    Expect::Refused,
                    format!("{name}[0]"),
                ));
            }
            out
        }
        Rule::Message => Vec::new(),
    }
}

/// `message` with every id field (`Rule::Id`) holding a fresh UUID, so that a
/// handler that parses its ids first goes on to the field under test.
fn base(message: &MessageDescriptor, rows: &BTreeMap<String, Rule>) -> DynamicMessage {
    let mut m = DynamicMessage::new(message.clone());
    for field in message.fields() {
        if rows.get(&format!("{}.{}", message.name(), field.name())) == Some(&Rule::Id) && !field.is_list() {
            m.set_field(&field, Value::String(uuid::Uuid::now_v7().to_string()));
        }
    }
    m
}

/// Every probe of `message`'s fields, nested messages included (as the one
/// entry of a list, `field[0]`), down to `depth` levels.
fn probes(message: &MessageDescriptor, rows: &BTreeMap<String, Rule>, depth: usize) -> Vec<Probe> {
    let mut out = Vec::new();
    for field in message.fields() {
        let Some(rule) = rows.get(&format!("{}.{}", message.name(), field.name())).copied() else { continue };
        for (what, value, expect, path) in values(&field, rule) {
            let mut m = base(message, rows);
            m.set_field(&field, value);
            out.push(Probe { path, what, message: m, expect });
        }
        let Kind::Message(inner) = field.kind() else { continue };
        if depth == 0 || inner.package_name() == psirt_proto::EVENTS_PACKAGE {
            continue;
        }
        for nested in probes(&inner, rows, depth - 1) {
            let mut m = base(message, rows);
            let (prefix, value) = if field.is_list() {
                (format!("{}[0]", field.name()), Value::List(vec![Value::Message(nested.message)]))
            } else {
                (field.name().to_owned(), Value::Message(nested.message))
            };
            m.set_field(&field, value);
            out.push(Probe {
                path: format!("{prefix}.{}", nested.path),
                what: nested.what,
                message: m,
                expect: nested.expect,
            });
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_field_is_checked_by_its_handler_with_the_rule_of_its_row() -> anyhow::Result<()> {
    build()?;
    let dir = tempfile_dir::Dir::new("field-rules")?;
    let nats = NatsServer::start().await?;
    let pool = DescriptorPool::decode(psirt_proto::FILE_DESCRIPTOR_SET)?;
    let rows: BTreeMap<String, Rule> = REQUEST_FIELDS.iter().map(|(k, r)| ((*k).to_owned(), *r)).collect();
    let admin = Bearer::new(&Token::admin().products(&["*"]));
    let served = [
        ("intake", psirt_intake::api::SERVED_SERVICES),
        ("triage", psirt_triage::api::SERVED_SERVICES),
        ("remediation", psirt_remediation::api::SERVED_SERVICES),
        ("notification", psirt_notification::api::SERVED_SERVICES),
    ];
    let mut failures = Vec::new();
    let mut refused = 0usize;
    let mut covered = std::collections::BTreeSet::new();
    let mut admin_done = false;
    for (name, services) in served {
        let service = Service::start(name, &nats, sqlite(&dir, name)).await?;
        let channel = service.plain_channel().await?;
        for full_name in services.iter() {
            // The admin API is the same kit code in every binary: probed once.
            if full_name.starts_with("psirt.admin.") {
                if admin_done {
                    continue;
                }
                admin_done = true;
            }
            let Some(descriptor) = pool.get_service_by_name(full_name) else { continue };
            for method in descriptor.methods() {
                let path = format!("/{full_name}/{}", method.name());
                let input = method.input();
                for probe in probes(&input, &rows, 3) {
                    let body = prost::Message::encode_to_vec(&probe.message);
                    let result = call_raw(&channel, &admin, &path, method.is_server_streaming(), body).await;
                    let named: Vec<String> = match &result {
                        Err(status) => status
                            .get_details_bad_request()
                            .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
                            .unwrap_or_default(),
                        Ok(()) => Vec::new(),
                    };
                    let names_it = named.contains(&probe.path);
                    let label = format!("{path} {} = {}", probe.path, probe.what);
                    match probe.expect {
                        Expect::Refused => {
                            let code = result.as_ref().err().map(tonic::Status::code);
                            if code == Some(Code::InvalidArgument) && names_it {
                                refused += 1;
                                covered.insert(format!("{}.{}", input.name(), probe.path));
                            } else {
                                failures.push(format!(
                                    "{label}: expected INVALID_ARGUMENT naming it, got {:?} naming {named:?}",
                                    result.err().map(|s| (s.code(), s.message().to_owned()))
                                ));
                            }
                        }
                        Expect::Unknown => {
                            let code = result.as_ref().err().map(tonic::Status::code);
                            if code == Some(Code::NotFound)
                                || (code == Some(Code::InvalidArgument) && names_it)
                            {
                                refused += 1;
                            } else {
                                failures.push(format!(
                                    "{label}: expected NOT_FOUND or INVALID_ARGUMENT naming it, got {:?}",
                                    result.err().map(|s| (s.code(), s.message().to_owned()))
                                ));
                            }
                        }
                        Expect::NotNamed if names_it => failures.push(format!(
                            "{label}: refused at its limit: {:?}",
                            result.err().map(|s| s.message().to_owned())
                        )),
                        Expect::NotNamed => {}
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} probes answered wrongly:\n{}", failures.len(), failures.join("\n"));
    // Not vacuous: the table has 150-odd rows; most are reached through a request.
    assert!(refused >= 150, "only {refused} refusals over {} fields", covered.len());
    Ok(())
}
