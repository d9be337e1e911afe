//! The ServiceNow adapter of the real `psirt-notification` binary against a
//! stateful mock of the Table API in its documented shapes
//! (`../shared/specs/README.md`): `POST /api/now/table/{table}` with a JSON
//! body of field values, `PATCH /api/now/table/{table}/{sys_id}`, `GET
//! /api/now/table/{table}?sysparm_query=...` (encoded queries), answers
//! wrapped in `{"result": ...}`, Basic auth, and 429 with `Retry-After`
//! under rate limits. Work notes land in `sys_journal_field` (`element_id` =
//! the record's sys_id, `value` = the note).
//!
//! - Accepting a case creates exactly one record, after a 429 whose
//!   `Retry-After` the delivery's retry honours; the record carries the case
//!   key in `correlation_id`, the templated `short_description` and the
//!   `urgency` of the severity, and the link shows the record's number.
//! - A later event (a CVE assigned) becomes one work note.
//! - An inbound webhook (`Authorization: Bearer <secret>`) moving the record
//!   to state 7 drives the configured command (`close_case`); a wrong token
//!   is refused.
//! - A state change whose webhook never came is repaired by reconciliation,
//!   which after its first pass asks only for records updated since its
//!   cursor (`sys_updated_on>=javascript:gs.minutesAgoStart(<n>)`).
//! - Closing from ServiceNow records the record's `close_code` and
//!   `close_notes` on the case.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{Service, build, sqlite, tempfile_dir};
use psirt_proto::notification::notification_service_client::NotificationServiceClient;
use psirt_proto::triage::case_service_client::CaseServiceClient;
use psirt_proto::triage::triage_service_client::TriageServiceClient;
use psirt_proto::{common as pc, events, notification as api, triage};
use psirt_testkit::eventually;
use serde_json::{Map, Value, json};

const DEADLINE: Duration = Duration::from_secs(60);
const WEBHOOK_SECRET: &str = "servicenow-webhook-secret-0123456789";
const CREDENTIALS: &str = "psirt.integration:sn-password-0123456789";
/// `Basic` + base64 of [`CREDENTIALS`].
const BASIC: &str = "Basic cHNpcnQuaW50ZWdyYXRpb246c24tcGFzc3dvcmQtMDEyMzQ1Njc4OQ==";
const RETRY_AFTER_SECS: u64 = 2;
const CLOSED: i32 = pc::CaseStatus::Closed as i32;

// ---------------------------------------------------------------------------
// The ServiceNow mock
// ---------------------------------------------------------------------------

/// A request as the mock saw it, with its answer's status.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    query: HashMap<String, String>,
    body: Value,
    status: u16,
    at: Instant,
}

/// A record of a table: its fields, `sys_id`, `number` and `state` included.
#[derive(Debug, Clone)]
struct Record {
    table: String,
    fields: Map<String, Value>,
}

impl Record {
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).and_then(Value::as_str).unwrap_or_default()
    }
}

#[derive(Default)]
struct Sn {
    records: Vec<Record>,
    /// `sys_journal_field` rows: sys_id, element_id, element, name, value.
    journal: Vec<Map<String, Value>>,
    requests: Vec<Request>,
    /// When each record (by sys_id) was last updated: `sys_updated_on`.
    updated: HashMap<String, Instant>,
    /// Answer the next create with 429 + `Retry-After`.
    throttle_next_create: bool,
    throttled_at: Option<Instant>,
}

type Shared = Arc<Mutex<Sn>>;

/// Journal fields: a PATCH of one of them adds a `sys_journal_field` row.
const JOURNAL_FIELDS: [&str; 2] = ["work_notes", "comments"];

fn sys_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn failure(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": { "message": message, "detail": null }, "status": "failure" })))
        .into_response()
}

/// One term of an encoded query: `field=value`, `fieldINa,b`, `fieldLIKEtext`.
#[derive(Debug)]
enum Term {
    Eq(String, String),
    In(String, Vec<String>),
    Like(String, String),
    NotEmpty(String),
    /// `sys_updated_on>=javascript:gs.minutesAgoStart(<n>)`.
    UpdatedWithin(Duration),
    /// `ORDERBY<field>`: the mock keeps insertion order.
    OrderBy,
}

/// Parses the terms the adapter uses (joined by `^`); anything else is an error,
/// where the real instance would silently ignore it and list every record.
fn parse_query(query: &str) -> Result<Vec<Term>, String> {
    query
        .split('^')
        .filter(|t| !t.is_empty())
        .map(|term| {
            if term.starts_with("ORDERBY") {
                return Ok(Term::OrderBy);
            }
            if let Some(rest) = term.strip_prefix("sys_updated_on>=javascript:gs.minutesAgoStart(") {
                let minutes: u64 = rest
                    .strip_suffix(')')
                    .and_then(|m| m.parse().ok())
                    .ok_or_else(|| format!("bad minutesAgoStart in {term:?}"))?;
                return Ok(Term::UpdatedWithin(Duration::from_secs(60 * minutes)));
            }
            let split = term
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .ok_or_else(|| format!("no operator in {term:?}"))?;
            let (field, rest) = term.split_at(split);
            if field.is_empty() {
                return Err(format!("no field in {term:?}"));
            }
            let field = field.to_owned();
            if rest == "ISNOTEMPTY" {
                Ok(Term::NotEmpty(field))
            } else if let Some(v) = rest.strip_prefix("LIKE") {
                Ok(Term::Like(field, v.to_owned()))
            } else if let Some(v) = rest.strip_prefix("IN") {
                Ok(Term::In(field, v.split(',').map(str::to_owned).collect()))
            } else if let Some(v) = rest.strip_prefix('=') {
                Ok(Term::Eq(field, v.to_owned()))
            } else {
                Err(format!("unsupported operator in {term:?}"))
            }
        })
        .collect()
}

fn matches(fields: &Map<String, Value>, updated: Option<&Instant>, terms: &[Term]) -> bool {
    let value = |f: &str| fields.get(f).and_then(Value::as_str).unwrap_or_default().to_owned();
    terms.iter().all(|t| match t {
        Term::Eq(f, v) => value(f) == *v,
        Term::In(f, vs) => vs.contains(&value(f)),
        Term::Like(f, v) => value(f).contains(v.as_str()),
        Term::NotEmpty(f) => !value(f).is_empty(),
        Term::UpdatedWithin(d) => updated.is_some_and(|u| u.elapsed() <= *d),
        Term::OrderBy => true,
    })
}

/// The fields of `sysparm_fields` only, when given.
fn select(fields: &Map<String, Value>, wanted: Option<&String>) -> Value {
    match wanted {
        Some(list) => {
            let names: Vec<&str> = list.split(',').map(str::trim).collect();
            Value::Object(
                fields
                    .iter()
                    .filter(|(k, _)| names.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        }
        None => Value::Object(fields.clone()),
    }
}

fn log(
    sn: &mut Sn,
    method: &Method,
    path: String,
    query: HashMap<String, String>,
    body: Value,
    status: StatusCode,
) {
    sn.requests.push(Request {
        method: method.to_string(),
        path,
        query,
        body,
        status: status.as_u16(),
        at: Instant::now(),
    });
}

/// `GET` and `POST /api/now/table/{table}`.
async fn table(
    State(sn): State<Shared>,
    method: Method,
    Path(table): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/api/now/table/{table}");
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut state = sn.lock().expect("lock");
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(BASIC) {
        log(&mut state, &method, path, query, body, StatusCode::UNAUTHORIZED);
        return failure(StatusCode::UNAUTHORIZED, "User Not Authenticated");
    }
    if method == Method::GET {
        let terms = match parse_query(query.get("sysparm_query").map_or("", String::as_str)) {
            Ok(t) => t,
            Err(e) => {
                log(&mut state, &method, path, query, body, StatusCode::BAD_REQUEST);
                return failure(StatusCode::BAD_REQUEST, &e);
            }
        };
        let limit = query.get("sysparm_limit").and_then(|l| l.parse().ok()).unwrap_or(10_000usize);
        let rows: Vec<&Map<String, Value>> = if table == "sys_journal_field" {
            state.journal.iter().collect()
        } else {
            state.records.iter().filter(|r| r.table == table).map(|r| &r.fields).collect()
        };
        let result: Vec<Value> = rows
            .into_iter()
            .filter(|f| {
                let id = f.get("sys_id").and_then(Value::as_str).unwrap_or_default();
                matches(f, state.updated.get(id), &terms)
            })
            .take(limit)
            .map(|f| select(f, query.get("sysparm_fields")))
            .collect();
        log(&mut state, &method, path, query, body, StatusCode::OK);
        return (StatusCode::OK, Json(json!({ "result": result }))).into_response();
    }
    // POST: create a record from the body's field values.
    if state.throttle_next_create {
        state.throttle_next_create = false;
        state.throttled_at = Some(Instant::now());
        log(&mut state, &method, path, query, body, StatusCode::TOO_MANY_REQUESTS);
        let mut answer = failure(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string().parse().expect("header"));
        return answer;
    }
    let Some(values) = body.as_object() else {
        log(&mut state, &method, path, query, body, StatusCode::BAD_REQUEST);
        return failure(StatusCode::BAD_REQUEST, "Request body is not a JSON object of field values");
    };
    let mut fields: Map<String, Value> = values
        .iter()
        .filter(|(k, _)| !JOURNAL_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let id = sys_id();
    let n = state.records.len() + 1;
    fields.insert("sys_id".to_owned(), json!(id));
    fields.insert("number".to_owned(), json!(format!("INC{:07}", 10_000 + n)));
    fields.entry("state").or_insert(json!("1"));
    let record = Record { table: table.clone(), fields };
    state.updated.insert(record.field("sys_id").to_owned(), Instant::now());
    let answer = json!({ "result": record.fields });
    state.records.push(record);
    log(&mut state, &method, path, query, body, StatusCode::CREATED);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// `GET` and `PATCH /api/now/table/{table}/{sys_id}`.
async fn record(
    State(sn): State<Shared>,
    method: Method,
    Path((table, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/api/now/table/{table}/{id}");
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut state = sn.lock().expect("lock");
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(BASIC) {
        log(&mut state, &method, path, query, body, StatusCode::UNAUTHORIZED);
        return failure(StatusCode::UNAUTHORIZED, "User Not Authenticated");
    }
    let Some(index) = state.records.iter().position(|r| r.table == table && r.field("sys_id") == id) else {
        log(&mut state, &method, path, query, body, StatusCode::NOT_FOUND);
        return failure(StatusCode::NOT_FOUND, "No Record found");
    };
    if method == Method::PATCH {
        let Some(values) = body.as_object().cloned() else {
            log(&mut state, &method, path, query, body, StatusCode::BAD_REQUEST);
            return failure(StatusCode::BAD_REQUEST, "Request body is not a JSON object of field values");
        };
        for (field, value) in values {
            if JOURNAL_FIELDS.contains(&field.as_str()) {
                let row = json!({
                    "sys_id": sys_id(), "element_id": id, "element": field, "name": table,
                    "value": value.as_str().unwrap_or_default(),
                });
                state.journal.push(row.as_object().cloned().expect("object"));
            } else {
                state.records[index].fields.insert(field, value);
            }
        }
        state.updated.insert(id.clone(), Instant::now());
    }
    let answer = json!({ "result": state.records[index].fields });
    log(&mut state, &method, path, query, body, StatusCode::OK);
    (StatusCode::OK, Json(answer)).into_response()
}

async fn start_mock(sn: Shared) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new()
        .route("/api/now/table/{table}", get(table).post(table))
        .route("/api/now/table/{table}/{sys_id}", get(record).patch(record))
        .with_state(sn);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

// ---------------------------------------------------------------------------
// The platform
// ---------------------------------------------------------------------------

struct Platform {
    _nats: psirt_testkit::NatsServer,
    intake: Service,
    triage: Service,
    notification: Service,
    sn: Shared,
    mock: SocketAddr,
    _dir: tempfile_dir::Dir,
}

fn config(mock: SocketAddr) -> String {
    format!(
        r#"
[servicenow]
base_url = "http://{mock}"
auth = "basic"
credentials_secret = "servicenow"
webhook_secret = "snhook"
reconcile_interval = "1s"

[servicenow.states]
closed = "7"

[[servicenow.inbound]]
status = "7"
command = "close_case"
resolution = "wont_fix"

[delivery]
poll_interval = "20ms"
lease = "1s"
initial_backoff = "100ms"
max_backoff = "1s"
"#
    )
}

impl Platform {
    async fn start(label: &str) -> anyhow::Result<Self> {
        build()?;
        let sn: Shared = Arc::default();
        let mock = start_mock(Arc::clone(&sn)).await?;
        let dir = tempfile_dir::Dir::new(label)?;
        let nats = common::secured_nats().await?;
        let intake = Service::start("intake", &nats, sqlite(&dir, "intake")).await?;
        let triage = Service::start("triage", &nats, sqlite(&dir, "triage")).await?;
        let config_file = dir.0.join("notification.toml");
        std::fs::write(&config_file, config(mock))?;
        std::fs::write(dir.0.join("servicenow.cred"), CREDENTIALS)?;
        std::fs::write(dir.0.join("snhook.key"), WEBHOOK_SECRET)?;
        // The inbound changes reach triage with the narrow tracker-sync identity.
        let tracker_sync = psirt_testkit::jwt::Token::new("psirt-notification", &["tracker-sync"]);
        std::fs::write(dir.0.join("tracker.jwt"), tracker_sync.mint())?;
        let env = vec![
            ("PSIRT_CONFIG", config_file.display().to_string()),
            ("PSIRT_SECRETS__SERVICENOW__FILE", dir.0.join("servicenow.cred").display().to_string()),
            ("PSIRT_SECRETS__SNHOOK__FILE", dir.0.join("snhook.key").display().to_string()),
            ("PSIRT_SECRETS__TRACKER__FILE", dir.0.join("tracker.jwt").display().to_string()),
            ("PSIRT_UPSTREAM__TOKEN_SECRET", "tracker".to_owned()),
            ("PSIRT_UPSTREAM__TRIAGE_URL", format!("http://127.0.0.1:{}", triage.grpc)),
            ("PSIRT_PROJECTION__LEASE_MS", "1000".to_owned()),
        ];
        let notification =
            Service::start_with("notification", &nats, sqlite(&dir, "notification"), &env).await?;
        let platform = Self { _nats: nats, intake, triage, notification, sn, mock, _dir: dir };
        platform.subscribe().await?;
        Ok(platform)
    }

    async fn subscribe(&self) -> anyhow::Result<()> {
        NotificationServiceClient::new(self.notification.channel().await?)
            .create_subscription(api::CreateSubscriptionRequest {
                request_id: "servicenow-incident".to_owned(),
                settings: Some(events::SubscriptionSettings {
                    name: "Security incidents".to_owned(),
                    channel: events::DeliveryChannel::Servicenow.into(),
                    endpoint: "incident".to_owned(),
                    event_types: vec![
                        "psirt.events.v1.CaseAccepted".to_owned(),
                        "psirt.events.v1.CveAssigned".to_owned(),
                        "psirt.events.v1.CaseClosed".to_owned(),
                    ],
                    trusted: true,
                    secret_ref: String::new(),
                    enabled: true,
                    ..Default::default()
                }),
            })
            .await?;
        Ok(())
    }

    /// Submits, assesses (high) and accepts a case; returns (case id, case key).
    async fn accepted_case(&self, title: &str) -> anyhow::Result<(String, String)> {
        let case =
            common::open_case(&self.intake, &self.triage, &format!("sn-{}", title.replace(' ', "-")), title)
                .await?;
        common::assess_and_accept(
            &self.triage,
            &case.case_id,
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:L/A:N",
        )
        .await?;
        Ok((case.case_id, case.case_key))
    }

    async fn tickets(&self, case_id: &str) -> Vec<api::ExternalTicket> {
        let Ok(channel) = self.notification.channel().await else { return Vec::new() };
        NotificationServiceClient::new(channel)
            .list_external_tickets(api::ListExternalTicketsRequest { case_id: case_id.to_owned() })
            .await
            .map(|r| r.into_inner().tickets)
            .unwrap_or_default()
    }

    /// The case's link, once there is one.
    async fn linked(&self, case_id: &str) -> anyhow::Result<Vec<api::ExternalTicket>> {
        eventually(DEADLINE, "ticket linked", || async move {
            let t = self.tickets(case_id).await;
            (!t.is_empty()).then_some(t)
        })
        .await
    }

    async fn case_status(&self, case_id: &str) -> Option<i32> {
        let mut cases = CaseServiceClient::new(self.triage.channel().await.ok()?);
        let lookup = Some(triage::get_case_request::Lookup::CaseId(case_id.to_owned()));
        Some(cases.get_case(triage::GetCaseRequest { lookup }).await.ok()?.into_inner().case?.status)
    }

    async fn closed(&self, case_id: &str, what: &str) -> anyhow::Result<()> {
        eventually(
            DEADLINE,
            what,
            || async move { (self.case_status(case_id).await? == CLOSED).then_some(()) },
        )
        .await
    }

    fn records_of(&self, case_key: &str) -> Vec<Record> {
        let state = self.sn.lock().expect("lock");
        state.records.iter().filter(|r| r.field("correlation_id") == case_key).cloned().collect()
    }

    /// The work notes of a record.
    fn notes(&self, sys_id: &str) -> Vec<String> {
        let state = self.sn.lock().expect("lock");
        state
            .journal
            .iter()
            .filter(|row| row["element_id"] == sys_id && row["element"] == "work_notes")
            .map(|row| row["value"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn requests(&self, method: &str, path: &str) -> Vec<Request> {
        let state = self.sn.lock().expect("lock");
        state.requests.iter().filter(|r| r.method == method && r.path == path).cloned().collect()
    }

    /// Reconciliation reads: `GET` of the table with `sys_idIN...` (the
    /// first pass) or `sys_updated_on>=` (the passes after its cursor).
    fn reconcile_reads(&self) -> usize {
        self.reconcile_queries().len()
    }

    fn reconcile_queries(&self) -> Vec<String> {
        self.requests("GET", "/api/now/table/incident")
            .iter()
            .filter_map(|r| r.query.get("sysparm_query").cloned())
            .filter(|q| q.starts_with("sys_idIN") || q.starts_with("sys_updated_on>="))
            .collect()
    }

    /// Sets fields of a record (as someone working it in ServiceNow would).
    fn set_fields(&self, sys_id: &str, values: &[(&str, &str)]) {
        let mut sn = self.sn.lock().expect("lock");
        if let Some(record) = sn.records.iter_mut().find(|r| r.field("sys_id") == sys_id) {
            for (field, value) in values {
                record.fields.insert((*field).to_owned(), json!(value));
            }
        }
        sn.updated.insert(sys_id.to_owned(), Instant::now());
    }

    fn set_state(&self, sys_id: &str, state: &str) {
        self.set_fields(sys_id, &[("state", state)]);
    }

    async fn root_cause(&self, case_id: &str) -> Option<String> {
        let mut cases = CaseServiceClient::new(self.triage.channel().await.ok()?);
        let lookup = Some(triage::get_case_request::Lookup::CaseId(case_id.to_owned()));
        Some(cases.get_case(triage::GetCaseRequest { lookup }).await.ok()?.into_inner().case?.root_cause)
    }

    /// POSTs an inbound webhook as a business rule on the table would.
    async fn webhook(&self, token: &str, body: &Value) -> anyhow::Result<(u16, String)> {
        let auth = format!("Bearer {token}");
        http(
            self.notification.admin,
            "POST",
            "/hooks/servicenow",
            &[("Authorization", &auth)],
            &serde_json::to_vec(body)?,
        )
        .await
    }
}

/// A bare HTTP/1.1 request; the status code and the body.
async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_cases_get_one_record_and_servicenow_changes_drive_the_case() -> anyhow::Result<()> {
    let p = Platform::start("servicenow-sync").await?;

    // The mock checks Basic auth like the instance does.
    let (anonymous, _) = http(p.mock.port(), "GET", "/api/now/table/incident", &[], b"").await?;
    assert_eq!(anonymous, 401, "the mock refuses requests without Basic auth");

    // Accepting a case creates exactly one record; the first create is
    // rate-limited and the retry waits for Retry-After.
    p.sn.lock().expect("lock").throttle_next_create = true;
    let title_a = "Heap overflow in the TLV parser";
    let (case_a, key_a) = p.accepted_case(title_a).await?;
    eventually(DEADLINE, "the throttled create", || {
        let p = &p;
        async move { p.sn.lock().expect("lock").throttled_at.map(|_| ()) }
    })
    .await?;
    // A later event while the create waits out the rate limit: deliveries of
    // a case are chained, so it is noted once the record exists, not lost.
    TriageServiceClient::new(p.triage.channel().await?)
        .assign_cve(triage::AssignCveRequest {
            case_id: case_a.clone(),
            request_id: "assign-cve".to_owned(),
            cve_id: "CVE-2026-12345".to_owned(),
            assigner: "mitre".to_owned(),
            ..Default::default()
        })
        .await?;
    let tickets = p.linked(&case_a).await?;
    assert_eq!(tickets.len(), 1);
    let records = p.records_of(&key_a);
    assert_eq!(records.len(), 1, "one record per case");
    let record_a = &records[0];
    let sys_a = record_a.field("sys_id").to_owned();
    assert_eq!(sys_a.len(), 32);
    assert_eq!(record_a.field("number"), "INC0010001");
    assert_eq!(record_a.field("short_description"), format!("[{key_a}] {title_a}"));
    assert!(record_a.field("description").contains(&key_a), "{}", record_a.field("description"));
    assert_eq!(record_a.field("urgency"), "1", "severity high maps to urgency 1");
    assert_eq!(tickets[0].key, "INC0010001", "the link shows the record's number");
    assert_eq!(tickets[0].system, events::TicketSystem::Servicenow as i32);
    assert!(tickets[0].url.ends_with(&format!("/incident.do?sys_id={sys_a}")), "{}", tickets[0].url);

    let creates = p.requests("POST", "/api/now/table/incident");
    assert_eq!(
        creates.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 201],
        "one throttled create, then one create"
    );
    let throttled_at = p.sn.lock().expect("lock").throttled_at.expect("a throttled create");
    let waited = creates[1].at.duration_since(throttled_at);
    assert!(
        waited >= Duration::from_millis(RETRY_AFTER_SECS * 1000 - 50),
        "the retry came {waited:?} after a 429 with Retry-After: {RETRY_AFTER_SECS}"
    );
    assert_eq!(creates[1].body["correlation_id"], key_a.as_str());
    let searched_first = p.requests("GET", "/api/now/table/incident").iter().any(|r| {
        r.at < creates[0].at && r.query.get("sysparm_query") == Some(&format!("correlation_id={key_a}"))
    });
    assert!(searched_first, "the case key is searched before creating");

    // The CVE becomes one work note, after looking for it in the journal.
    let note = eventually(DEADLINE, "CveAssigned work note", || {
        let p = &p;
        let sys_a = sys_a.clone();
        async move { p.notes(&sys_a).into_iter().find(|n| n.contains("(CveAssigned,")) }
    })
    .await?;
    assert!(note.contains("[psirt-delivery:"), "the note carries its delivery marker: {note}");
    assert!(note.starts_with("CVE assigned"), "the note follows the template: {note}");
    let journal_reads = p.requests("GET", "/api/now/table/sys_journal_field");
    assert!(
        journal_reads.iter().any(|r| r
            .query
            .get("sysparm_query")
            .is_some_and(|q| q.starts_with(&format!("element_id={sys_a}^valueLIKEpsirt-delivery:")))),
        "the journal is searched for the delivery's note: {:?}",
        journal_reads.iter().map(|r| &r.query).collect::<Vec<_>>()
    );

    // Inbound: a wrong or missing token is refused.
    let change = json!({ "sys_id": sys_a, "state": "7" });
    let (wrong, _) = p.webhook("not-the-secret", &change).await?;
    assert_eq!(wrong, 401, "a webhook with a wrong token is refused");
    let (missing, _) =
        http(p.notification.admin, "POST", "/hooks/servicenow", &[], &serde_json::to_vec(&change)?).await?;
    assert_eq!(missing, 401, "a webhook without a token is refused");
    assert_ne!(p.case_status(&case_a).await, Some(CLOSED));

    // Reconciliation reads the state of linked records: the new record's 1.
    eventually(DEADLINE, "state 1 read back", || {
        let p = &p;
        let case_a = case_a.clone();
        async move { (p.tickets(&case_a).await.first()?.external_status == "1").then_some(()) }
    })
    .await?;

    // The record moves to state 7 and its business rule calls us. Right after
    // a reconciliation pass has read the records, so that the webhook, not the
    // next pass (a second later), is the one that sees the change.
    let reads = p.reconcile_reads();
    eventually(DEADLINE, "a reconciliation pass", || {
        let p = &p;
        async move { (p.reconcile_reads() > reads).then_some(()) }
    })
    .await?;
    p.set_fields(
        &sys_a,
        &[
            ("state", "7"),
            ("close_code", "Solved (Work Around)"),
            ("close_notes", "Disabled the diagnostics page"),
        ],
    );
    let (status, answer) = p.webhook(WEBHOOK_SECRET, &change).await?;
    assert_eq!(
        (status, answer.as_str()),
        (200, "close_case driven on the case"),
        "the webhook drives the rule's command"
    );
    p.closed(&case_a, "case A closed by the ServiceNow webhook").await?;
    let root_cause = p.root_cause(&case_a).await.unwrap_or_default();
    assert!(
        root_cause.starts_with("Solved (Work Around): Disabled the diagnostics page (resolution of INC"),
        "the record's close code and notes are recorded: {root_cause:?}"
    );

    // The closure comes back as a second note, with the state of [servicenow.states].
    eventually(DEADLINE, "CaseClosed work note", || {
        let p = &p;
        let sys_a = sys_a.clone();
        async move { p.notes(&sys_a).iter().any(|n| n.contains("(CaseClosed,")).then_some(()) }
    })
    .await?;
    let notes = p.notes(&sys_a);
    assert_eq!(
        notes.iter().filter(|n| n.contains("(CveAssigned,")).count(),
        1,
        "the CVE is noted once: {notes:?}"
    );
    assert_eq!(notes.len(), 2, "{notes:?}");
    let patches = p.requests("PATCH", &format!("/api/now/table/incident/{sys_a}"));
    let cve_patches = patches
        .iter()
        .filter(|r| r.body["work_notes"].as_str().is_some_and(|n| n.contains("(CveAssigned,")))
        .count();
    assert_eq!(cve_patches, 1, "one PATCH for the CVE note");
    assert!(
        patches.iter().any(|r| r.body["state"] == "7"
            && r.body["work_notes"].as_str().is_some_and(|n| n.contains("(CaseClosed,"))),
        "the closure sets the configured state"
    );
    let linked = p.tickets(&case_a).await;
    assert_eq!(linked[0].external_status, "7");

    // A missed webhook: the record moves to state 7, nobody tells us;
    // reconciliation reads it back and drives the command.
    let (case_b, key_b) = p.accepted_case("Command injection in the diagnostics page").await?;
    let tickets_b = p.linked(&case_b).await?;
    let records_b = p.records_of(&key_b);
    assert_eq!(records_b.len(), 1, "one record per case");
    let sys_b = records_b[0].field("sys_id").to_owned();
    assert_eq!(tickets_b[0].key, "INC0010002");
    assert_ne!(p.case_status(&case_b).await, Some(CLOSED));
    p.set_state(&sys_b, "7");
    p.closed(&case_b, "case B closed by reconciliation").await?;
    // After the first pass, reconciliation asks only for records updated since its cursor.
    // (The first pass reads every linked record, if there was one yet.)
    let queries = p.reconcile_queries();
    let first_incremental = queries.iter().position(|q| q.starts_with("sys_updated_on>="));
    let first_incremental = first_incremental.unwrap_or_else(|| panic!("no incremental pass: {queries:?}"));
    assert!(first_incremental <= 1, "{queries:?}");
    assert!(
        queries[first_incremental..]
            .iter()
            .all(|q| q.starts_with("sys_updated_on>=javascript:gs.minutesAgoStart(")
                && q.ends_with("^correlation_idISNOTEMPTY^ORDERBYsys_updated_on")),
        "{queries:?}"
    );

    // One create per case (plus the throttled one), and the adapter always
    // authenticated.
    let creates = p.requests("POST", "/api/now/table/incident");
    assert_eq!(creates.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 201, 201]);
    let refused = p.sn.lock().expect("lock").requests.iter().filter(|r| r.status == 401).count();
    assert_eq!(refused, 1, "only the deliberate anonymous request was refused");
    let bad =
        p.sn.lock()
            .expect("lock")
            .requests
            .iter()
            .filter(|r| r.status == 400 || r.status == 404)
            .map(|r| format!("{} {} {:?}", r.method, r.path, r.query))
            .collect::<Vec<_>>();
    assert!(bad.is_empty(), "requests the mock could not serve: {bad:?}");
    Ok(())
}
