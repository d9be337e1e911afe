//! The role matrix, derived from the services' policy tables (`RULES` in
//! `services/*/src/api.rs`): every RPC of every service, on the real binaries with
//! `auth.mode = "jwt"`, called with a token of each role, with no token, an expired token,
//! a wrong issuer, a wrong audience and a bad signature. Token failures answer
//! UNAUTHENTICATED, a role outside the RPC's row PERMISSION_DENIED, an allowed role anything
//! else (the request is empty, so INVALID_ARGUMENT or NOT_FOUND are expected answers).
//!
//! Every request is the empty message (zero bytes on the wire), so one generic codec
//! reaches every unary and server-streaming method.

mod common;

use std::collections::BTreeMap;

use common::{Service, build, sqlite, tempfile_dir};
use psirt_kit::{Role, Rule};
use psirt_testkit::NatsServer;
use psirt_testkit::jwt::{Bearer, Token};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// One way of calling: a token (or none) and what it is.
struct Caller {
    name: String,
    bearer: Bearer,
    expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A token of this role: allowed where the row lists it (or it is admin).
    Role(Role),
    /// No usable token: UNAUTHENTICATED everywhere.
    Unauthenticated,
}

fn role_callers() -> Vec<Caller> {
    Role::ALL
        .into_iter()
        .map(|role| Caller {
            name: format!("role {role}"),
            bearer: Bearer::new(&Token::new(&format!("e2e-{role}"), &[role.as_str()])),
            expect: Expect::Role(role),
        })
        .collect()
}

fn rejected_token_callers() -> Vec<Caller> {
    // Admin tokens, so only the token's flaw can be the reason of a refusal.
    let admin = Token::admin;
    [
        ("no token", Bearer::none()),
        ("expired token", Bearer::new(&admin().expired())),
        ("wrong issuer", Bearer::new(&admin().issuer("https://idp.example.org/realms/other"))),
        ("wrong audience", Bearer::new(&admin().audience("another-app"))),
        ("bad signature", Bearer::new(&admin().signed_with("not-the-secret-of-the-services-at-all"))),
        ("not a JWT", Bearer::raw("Bearer not-a-jwt")),
    ]
    .into_iter()
    .map(|(name, bearer)| Caller { name: name.to_owned(), bearer, expect: Expect::Unauthenticated })
    .collect()
}

/// Product scopes are the other column: see
/// [`a_case_out_of_scope_answers_as_a_missing_one_on_every_rpc_that_names_it`], which
/// needs a seeded case and requests that name it rather than the empty message.
fn out_of_scope_callers() -> Vec<Caller> {
    Vec::new()
}

/// The code of one call with `body` (encoded bytes) as the request.
async fn call_with(
    channel: &Channel,
    bearer: &Bearer,
    path: &str,
    server_streaming: bool,
    body: Vec<u8>,
) -> Code {
    common::call_raw(channel, bearer, path, server_streaming, body).await.err().map_or(Code::Ok, |s| s.code())
}

/// Issue 15, point 2, in the matrix: a staff member whose scopes leave out a case's
/// product gets, on every RPC whose request names a case or report (`case_id`,
/// `report_id`), the very answer a missing id gets; its existence is not confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_out_of_scope_answers_as_a_missing_one_on_every_rpc_that_names_it() -> anyhow::Result<()> {
    use prost_reflect::{DescriptorPool, DynamicMessage, Value};

    build()?;
    let dir = tempfile_dir::Dir::new("role-matrix-scopes")?;
    let nats = NatsServer::start().await?;
    let mut services = BTreeMap::new();
    for name in ["intake", "triage", "remediation", "notification"] {
        services.insert(name, Service::start(name, &nats, sqlite(&dir, name)).await?);
    }
    // A case of product acme-router, accepted (so remediation holds its plan).
    let case =
        common::open_case(&services["intake"], &services["triage"], "scope-matrix-1", "Overflow").await?;
    common::assess_and_accept(
        &services["triage"],
        &case.case_id,
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    )
    .await?;
    let report_id =
        case.report_ids.first().cloned().ok_or_else(|| anyhow::anyhow!("the case names no report"))?;
    let missing_case = uuid::Uuid::now_v7().to_string();
    let missing_report = uuid::Uuid::now_v7().to_string();

    let pool = DescriptorPool::decode(psirt_proto::FILE_DESCRIPTOR_SET)?;
    let mut compared = 0usize;
    let mut seen_in_scope = 0usize;
    let mut failures = Vec::new();
    for (name, rules, served) in tables() {
        let channel = services[name].plain_channel().await?;
        for service in served.iter() {
            let Some(descriptor) = pool.get_service_by_name(service) else { continue };
            for method in descriptor.methods() {
                let path = format!("/{service}/{}", method.name());
                let Some(rule) = rules.iter().find(|r| r.method == path) else { continue };
                let input = method.input();
                let Some((field, seeded, missing)) =
                    [("case_id", &case.case_id, &missing_case), ("report_id", &report_id, &missing_report)]
                        .into_iter()
                        .find_map(|(f, seeded, missing)| {
                            input.get_field_by_name(f).map(|field| (field, seeded, missing))
                        })
                else {
                    continue;
                };
                // The narrowest staff role the row allows (admins hold every scope).
                let Some(role) =
                    [Role::Analyst, Role::Engineer, Role::TrackerSync].into_iter().find(|r| rule.allows(*r))
                else {
                    continue;
                };
                let scoped =
                    Bearer::new(&Token::new("e2e-scoped", &[role.as_str()]).products(&["acme-portal"]));
                let everything =
                    Bearer::new(&Token::new("e2e-everything", &[role.as_str()]).products(&["*"]));
                let body = |id: &str| {
                    let mut message = DynamicMessage::new(input.clone());
                    message.set_field(&field, Value::String(id.to_owned()));
                    prost::Message::encode_to_vec(&message)
                };
                let streaming = method.is_server_streaming();
                let out_of_scope = call_with(&channel, &scoped, &path, streaming, body(seeded)).await;
                let not_there = call_with(&channel, &scoped, &path, streaming, body(missing)).await;
                let in_scope = call_with(&channel, &everything, &path, streaming, body(seeded)).await;
                compared += 1;
                if out_of_scope != not_there {
                    failures.push(format!(
                        "{path} as {role} out of scope: {out_of_scope:?}, for a missing id: {not_there:?}"
                    ));
                }
                if in_scope != out_of_scope {
                    seen_in_scope += 1;
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} RPCs confirm an out-of-scope case:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(compared >= 15, "only {compared} RPCs name a case or a report");
    // Not vacuous: in scope, the seeded case answers differently on many of them.
    assert!(
        seen_in_scope >= 5,
        "only {seen_in_scope} of {compared} RPCs tell the seeded case apart in scope"
    );
    Ok(())
}

/// The outcome of one call: the status code, `Ok` when the call was accepted.
async fn call(channel: &Channel, bearer: &Bearer, path: &str, server_streaming: bool) -> Code {
    let mut grpc = tonic::client::Grpc::new(InterceptedService::new(channel.clone(), bearer.clone()));
    if let Err(e) = grpc.ready().await {
        panic!("{path}: channel not ready: {e}");
    }
    let path = http::uri::PathAndQuery::try_from(path).expect("method path");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let result = if server_streaming {
        // Accepted once the response headers arrive; the stream is dropped unread.
        grpc.server_streaming(tonic::Request::new(()), path, codec).await.map(|_| ())
    } else {
        grpc.unary(tonic::Request::new(()), path, codec).await.map(|_| ())
    };
    result.err().map_or(Code::Ok, |status| status.code())
}

fn check(rule: &Rule, caller: &Caller, code: Code) -> Result<(), String> {
    let verdict = |ok: bool, wanted: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("{} as {}: {code:?}, expected {wanted}", rule.method, caller.name))
        }
    };
    match caller.expect {
        Expect::Unauthenticated => verdict(code == Code::Unauthenticated, "UNAUTHENTICATED"),
        Expect::Role(role) if rule.allows(role) => verdict(
            !matches!(code, Code::Unauthenticated | Code::PermissionDenied),
            "neither UNAUTHENTICATED nor PERMISSION_DENIED",
        ),
        Expect::Role(_) => verdict(code == Code::PermissionDenied, "PERMISSION_DENIED"),
    }
}

/// The services, their tables and the proto services they serve.
fn tables() -> Vec<(&'static str, Vec<Rule>, &'static [&'static str])> {
    vec![
        ("intake", psirt_intake::api::rules(), psirt_intake::api::SERVED_SERVICES),
        ("triage", psirt_triage::api::rules(), psirt_triage::api::SERVED_SERVICES),
        ("remediation", psirt_remediation::api::rules(), psirt_remediation::api::SERVED_SERVICES),
        ("notification", psirt_notification::api::rules(), psirt_notification::api::SERVED_SERVICES),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_of_every_service_answers_each_role_and_each_bad_token_as_its_table_says()
-> anyhow::Result<()> {
    build()?;
    let dir = tempfile_dir::Dir::new("role-matrix")?;
    let nats = NatsServer::start().await?;
    let mut callers = role_callers();
    callers.extend(rejected_token_callers());
    callers.extend(out_of_scope_callers());

    let mut failures = Vec::new();
    let mut calls = 0usize;
    for (name, rules, served) in tables() {
        let service = Service::start(name, &nats, sqlite(&dir, name)).await?;
        let channel = service.plain_channel().await?;
        // Derived from the contract: every RPC the binary serves has a row, and the
        // streaming ones are called as streams.
        let streaming: BTreeMap<String, bool> = served
            .iter()
            .flat_map(|s| psirt_proto::service_rpcs(s))
            .map(|rpc| (rpc.path(), rpc.server_streaming))
            .collect();
        for path in streaming.keys() {
            anyhow::ensure!(rules.iter().any(|r| r.method == path), "{name}: {path} has no row");
        }
        for rule in &rules {
            let server_streaming = *streaming
                .get(rule.method)
                .ok_or_else(|| anyhow::anyhow!("{name}: row {} is no RPC it serves", rule.method))?;
            for caller in &callers {
                let code = call(&channel, &caller.bearer, rule.method, server_streaming).await;
                calls += 1;
                if let Err(failure) = check(rule, caller, code) {
                    failures.push(format!("{name}: {failure}"));
                }
            }
        }
        // A method without a row is denied, even to an admin: one of another service,
        // one that does not exist.
        let admin = Bearer::new(&Token::admin());
        let foreign = if name == "triage" {
            "/psirt.intake.v1.IntakeService/SubmitReport"
        } else {
            "/psirt.triage.v1.TriageService/CloseCase"
        };
        for path in [foreign, "/psirt.admin.v1.AdminService/NoSuchMethod"] {
            let code = call(&channel, &admin, path, false).await;
            if code != Code::PermissionDenied {
                failures.push(format!("{name}: {path} as admin: {code:?}, expected PERMISSION_DENIED"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {calls} calls answered wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // 50 RPCs today; a table that lost its rows must not pass by calling nothing.
    assert!(calls >= 40 * callers.len(), "only {calls} calls");
    Ok(())
}

/// tracker-sync may do exactly what notification's inbound rules do in triage (close,
/// reopen, escalate) and nothing anywhere else.
#[test]
fn tracker_sync_is_allowed_only_the_inbound_tracker_commands() {
    let allowed: Vec<&str> = tables()
        .iter()
        .flat_map(|(_, rules, _)| rules.clone())
        .filter(|rule| rule.roles.contains(&Role::TrackerSync))
        .map(|rule| rule.method)
        .collect();
    assert_eq!(
        allowed,
        [
            "/psirt.triage.v1.TriageService/EscalateCase",
            "/psirt.triage.v1.TriageService/CloseCase",
            "/psirt.triage.v1.TriageService/ReopenCase",
        ]
    );
}
