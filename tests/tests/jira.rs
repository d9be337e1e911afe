//! The Jira adapter of the real `psirt-notification` binary against a
//! stateful Jira mock behind Prism's validating proxy, which checks every
//! request against Atlassian's official Jira Cloud REST v3 OpenAPI
//! description (`../shared/specs/`) and refuses, with 422, anything that does
//! not fit it. A request reaches the mock only if it passed validation.
//!
//! - Accepting a case creates exactly one issue (project, labels with the
//!   case key, priority from the severity, an operator-configured custom
//!   field); later events become comments.
//! - A Jira webhook moving the issue to Done drives the configured command
//!   (`close_case`) on the case in triage, over mutual TLS: triage here serves
//!   only TLS and demands a client certificate. The case records the issue's
//!   resolution (`Won't Fix`) read from Jira.
//! - A status change whose webhook never came is repaired by reconciliation.
//! - `kill -9` between the issue's creation and the link: after a restart the
//!   issue is found by its case key label and linked; no second issue.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use common::{Service, build, sqlite, tempfile_dir};
use hmac::{Hmac, Mac};
use psirt_proto::notification::notification_service_client::NotificationServiceClient;
use psirt_proto::triage::case_service_client::CaseServiceClient;
use psirt_proto::{common as pc, events, notification as api, triage};
use psirt_testkit::eventually;
use serde_json::{Value, json};
use sha2::Sha256;

const DEADLINE: Duration = Duration::from_secs(60);
const WEBHOOK_SECRET: &str = "jira-webhook-secret-0123456789";

// ---------------------------------------------------------------------------
// The Jira mock
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Issue {
    id: String,
    key: String,
    fields: Value,
    status: (&'static str, &'static str),
    /// `fields.resolution.name`; null while unresolved.
    resolution: Option<&'static str>,
    comments: Vec<Value>,
}

#[derive(Default)]
struct Jira {
    issues: Vec<Issue>,
    /// (method, path, body) of every request that reached the mock.
    requests: Vec<(String, String, Value)>,
    /// While set, a create stores the issue, reports it here and never answers.
    hold_creates: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

type Shared = Arc<Mutex<Jira>>;

const STATUSES: [(&str, &str); 3] = [("To Do", "new"), ("In Progress", "indeterminate"), ("Done", "done")];

fn issue_json(base: &str, issue: &Issue) -> Value {
    json!({
        "id": issue.id,
        "key": issue.key,
        "self": format!("{base}/rest/api/3/issue/{}", issue.id),
        "fields": {
            "status": { "name": issue.status.0, "statusCategory": { "key": issue.status.1 } },
            "resolution": issue.resolution.map_or(Value::Null, |r| json!({ "name": r })),
            "labels": issue.fields["labels"],
        }
    })
}

fn log(jira: &Shared, method: &str, path: String, body: Value) {
    jira.lock().expect("lock").requests.push((method.to_owned(), path, body));
}

/// The quoted literals of a JQL clause `name = "..."` or `key in ("a", "b")`.
fn jql_literals(jql: &str, after: &str) -> Vec<String> {
    let Some(start) = jql.find(after) else { return Vec::new() };
    let rest = &jql[start + after.len()..];
    let end = rest.find(" AND ").or_else(|| rest.find(" ORDER BY")).unwrap_or(rest.len());
    rest[..end].split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

async fn search(State(jira): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let jql = q.get("jql").cloned().unwrap_or_default();
    log(&jira, "GET", "/rest/api/3/search".to_owned(), json!({ "jql": jql }));
    let labels = jql_literals(&jql, "labels = ");
    let keys = jql_literals(&jql, "key in (");
    let projects = jql_literals(&jql, "project = ");
    let state = jira.lock().expect("lock");
    let hits: Vec<Value> = state
        .issues
        .iter()
        .filter(|i| {
            labels.iter().all(|l| i.fields["labels"].as_array().is_some_and(|ls| ls.iter().any(|x| x == l)))
        })
        .filter(|i| keys.is_empty() || keys.contains(&i.key))
        .filter(|i| projects.iter().all(|p| i.fields["project"]["key"] == *p))
        .map(|i| issue_json("http://jira.test", i))
        .collect();
    Json(json!({ "startAt": 0, "maxResults": 50, "total": hits.len(), "issues": hits }))
}

async fn create(State(jira): State<Shared>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    log(&jira, "POST", "/rest/api/3/issue".to_owned(), body.clone());
    let (answer, hold) = {
        let mut state = jira.lock().expect("lock");
        let n = state.issues.len() + 1;
        let project = body["fields"]["project"]["key"].as_str().unwrap_or("X").to_owned();
        let issue = Issue {
            id: format!("{}", 10_000 + n),
            key: format!("{project}-{n}"),
            fields: body["fields"].clone(),
            status: STATUSES[0],
            resolution: None,
            comments: Vec::new(),
        };
        let answer = json!({ "id": issue.id, "key": issue.key, "self": format!("http://jira.test/rest/api/3/issue/{}", issue.id) });
        let hold = state.hold_creates.clone().map(|tx| (tx, issue.key.clone()));
        state.issues.push(issue);
        (answer, hold)
    };
    if let Some((tx, key)) = hold {
        let _ = tx.send(key);
        // The caller is killed meanwhile; this answer goes nowhere.
        std::future::pending::<()>().await;
    }
    (StatusCode::CREATED, Json(answer))
}

async fn issue(State(jira): State<Shared>, Path(key): Path<String>) -> (StatusCode, Json<Value>) {
    log(&jira, "GET", format!("/rest/api/3/issue/{key}"), Value::Null);
    let state = jira.lock().expect("lock");
    match state.issues.iter().find(|i| i.key == key) {
        Some(i) => (StatusCode::OK, Json(issue_json("http://jira.test", i))),
        None => (StatusCode::NOT_FOUND, Json(json!({ "errorMessages": ["Issue does not exist"] }))),
    }
}

async fn comments(State(jira): State<Shared>, Path(key): Path<String>) -> (StatusCode, Json<Value>) {
    log(&jira, "GET", format!("/rest/api/3/issue/{key}/comment"), Value::Null);
    let state = jira.lock().expect("lock");
    match state.issues.iter().find(|i| i.key == key) {
        Some(i) => (
            StatusCode::OK,
            Json(
                json!({ "startAt": 0, "maxResults": 100, "total": i.comments.len(), "comments": i.comments }),
            ),
        ),
        None => (StatusCode::NOT_FOUND, Json(json!({ "errorMessages": ["Issue does not exist"] }))),
    }
}

async fn add_comment(
    State(jira): State<Shared>,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    log(&jira, "POST", format!("/rest/api/3/issue/{key}/comment"), body.clone());
    let mut state = jira.lock().expect("lock");
    let Some(issue) = state.issues.iter_mut().find(|i| i.key == key) else {
        return (StatusCode::NOT_FOUND, Json(json!({ "errorMessages": ["Issue does not exist"] })));
    };
    let comment = json!({ "id": format!("{}", 20_000 + issue.comments.len()), "body": body["body"] });
    issue.comments.push(comment.clone());
    (StatusCode::CREATED, Json(comment))
}

async fn transitions(State(jira): State<Shared>, Path(key): Path<String>) -> Json<Value> {
    log(&jira, "GET", format!("/rest/api/3/issue/{key}/transitions"), Value::Null);
    let list: Vec<Value> = STATUSES
        .iter()
        .enumerate()
        .map(|(i, (name, category))| {
            json!({ "id": format!("{}", 11 + 10 * i), "name": name,
                    "to": { "name": name, "statusCategory": { "key": category } } })
        })
        .collect();
    Json(json!({ "transitions": list }))
}

/// 204 with a JSON content type: Prism checks the answer's media type
/// against the description even when there is no body.
async fn transition(
    State(jira): State<Shared>,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, [(axum::http::header::HeaderName, &'static str); 1]) {
    log(&jira, "POST", format!("/rest/api/3/issue/{key}/transitions"), body.clone());
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    let id = body["transition"]["id"].as_str().unwrap_or_default().to_owned();
    let mut state = jira.lock().expect("lock");
    let Some(issue) = state.issues.iter_mut().find(|i| i.key == key) else {
        return (StatusCode::NOT_FOUND, json);
    };
    match STATUSES.iter().enumerate().find(|(i, _)| format!("{}", 11 + 10 * i) == id) {
        Some((_, s)) => {
            issue.status = *s;
            (StatusCode::NO_CONTENT, json)
        }
        None => (StatusCode::BAD_REQUEST, json),
    }
}

async fn start_mock(jira: Shared) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new()
        .route("/rest/api/3/search", get(search))
        .route("/rest/api/3/issue", post(create))
        .route("/rest/api/3/issue/{key}", get(issue))
        .route("/rest/api/3/issue/{key}/comment", get(comments).post(add_comment))
        .route("/rest/api/3/issue/{key}/transitions", get(transitions).post(transition))
        .with_state(jira);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

// ---------------------------------------------------------------------------
// Prism, validating against the official description
// ---------------------------------------------------------------------------

struct Prism {
    child: Child,
    port: u16,
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The official description: `../shared/specs/` beside the checkout, else
/// the copy kept (gzipped) in `scripts/jira-mock/`.
fn spec_file(dir: &tempfile_dir::Dir) -> anyhow::Result<PathBuf> {
    const NAME: &str = "jira-cloud-platform-rest-v3.openapi.json";
    let shared = root().join("../shared/specs").join(NAME);
    if shared.exists() {
        return Ok(shared);
    }
    let packed = root().join("scripts/jira-mock").join(format!("{NAME}.gz"));
    let out = dir.0.join(NAME);
    let unpacked = Command::new("gzip").arg("-dc").arg(&packed).output()?;
    anyhow::ensure!(unpacked.status.success(), "cannot unpack {}", packed.display());
    std::fs::write(&out, unpacked.stdout)?;
    Ok(out)
}

/// `prism proxy --errors` in front of `upstream`: requests that do not fit
/// the official description answer 422 and are not forwarded.
async fn start_prism(upstream: SocketAddr, dir: &tempfile_dir::Dir) -> anyhow::Result<Prism> {
    let bin = root().join("scripts/jira-mock/node_modules/.bin/prism");
    anyhow::ensure!(bin.exists(), "{} is missing: run `npm ci --prefix scripts/jira-mock`", bin.display());
    let spec = spec_file(dir)?;
    // Port 0: Prism logs the port it bound ("Prism is listening on http://127.0.0.1:N");
    // its log is read to the end, so the pipe never fills.
    let mut child = Command::new(bin)
        .args(["proxy", "--errors", "-h", "127.0.0.1", "-p", "0"])
        .arg(&spec)
        .arg(format!("http://{upstream}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let mut prism = Prism { child, port: 0 };
    let bound: Arc<Mutex<Option<u16>>> = Arc::default();
    let found = Arc::clone(&bound);
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((_, rest)) = line.split_once("Prism is listening on http://127.0.0.1:")
                && let Ok(port) = rest.trim().trim_end_matches('/').parse()
            {
                *found.lock().expect("lock") = Some(port);
            }
        }
    });
    prism.port = eventually(Duration::from_secs(120), "prism listening", || {
        let port = *bound.lock().expect("lock");
        async move { port }
    })
    .await?;
    Ok(prism)
}

// ---------------------------------------------------------------------------
// The platform
// ---------------------------------------------------------------------------

struct Platform {
    nats: psirt_testkit::NatsServer,
    intake: Service,
    triage: Service,
    notification: Service,
    jira: Shared,
    prism: Prism,
    _dir: tempfile_dir::Dir,
}

const CONFIG: &str = r#"
[jira]
deployment = "cloud"
# The 2022 API description predates /rest/api/3/search/jql.
search = "legacy"
auth = "basic"
credentials_secret = "jira"
issue_type = "Bug"
labels = ["psirt", "security"]
webhook_secret = "jirahook"
reconcile_interval = "1s"

[jira.fields]
customfield_10050 = "{{case.key}} / {{case.cves}}"

[[jira.inbound]]
status = "Done"
command = "close_case"
resolution = "wont_fix"

[delivery]
poll_interval = "20ms"
lease = "1s"
initial_backoff = "100ms"
max_backoff = "1s"
"#;

impl Platform {
    async fn start(label: &str) -> anyhow::Result<Self> {
        build()?;
        let jira: Shared = Arc::default();
        let mock = start_mock(Arc::clone(&jira)).await?;
        let dir = tempfile_dir::Dir::new(label)?;
        let prism = start_prism(mock, &dir).await?;
        let nats = common::secured_nats().await?;
        let intake = Service::start("intake", &nats, sqlite(&dir, "intake")).await?;
        // Triage speaks only mutual TLS here: notification's calls to it (the inbound
        // changes below) go over TLS with a client certificate.
        let triage =
            Service::start_with("triage", &nats, sqlite(&dir, "triage"), &common::mutual_tls_env()).await?;
        let config = dir.0.join("notification.toml");
        std::fs::write(&config, CONFIG)?;
        std::fs::write(dir.0.join("jira.cred"), "psirt-bot@example.com:api-token-0123456789")?;
        std::fs::write(dir.0.join("jirahook.key"), WEBHOOK_SECRET)?;
        // The inbound changes reach triage with the narrow tracker-sync identity.
        let tracker_sync = psirt_testkit::jwt::Token::new("psirt-notification", &["tracker-sync"]);
        std::fs::write(dir.0.join("tracker.jwt"), tracker_sync.mint())?;
        let env = vec![
            ("PSIRT_CONFIG", config.display().to_string()),
            ("PSIRT_JIRA__BASE_URL", format!("http://127.0.0.1:{}", prism.port)),
            ("PSIRT_SECRETS__JIRA__FILE", dir.0.join("jira.cred").display().to_string()),
            ("PSIRT_SECRETS__JIRAHOOK__FILE", dir.0.join("jirahook.key").display().to_string()),
            ("PSIRT_SECRETS__TRACKER__FILE", dir.0.join("tracker.jwt").display().to_string()),
            ("PSIRT_UPSTREAM__TOKEN_SECRET", "tracker".to_owned()),
            ("PSIRT_UPSTREAM__TRIAGE_URL", format!("https://localhost:{}", triage.grpc)),
            ("PSIRT_UPSTREAM__TLS_CA_FILE", common::tls_fixture("tls_ca.pem")),
            ("PSIRT_UPSTREAM__TLS_CLIENT_CERT_FILE", common::tls_fixture("tls_client.pem")),
            ("PSIRT_UPSTREAM__TLS_CLIENT_KEY_FILE", common::tls_fixture("tls_client_key.pem")),
            ("PSIRT_PROJECTION__LEASE_MS", "1000".to_owned()),
        ];
        let notification =
            Service::start_with("notification", &nats, sqlite(&dir, "notification"), &env).await?;
        let platform = Self { nats, intake, triage, notification, jira, prism, _dir: dir };
        platform.subscribe().await?;
        Ok(platform)
    }

    async fn subscribe(&self) -> anyhow::Result<()> {
        NotificationServiceClient::new(self.notification.channel().await?)
            .create_subscription(api::CreateSubscriptionRequest {
                request_id: "jira-sec".to_owned(),
                settings: Some(events::SubscriptionSettings {
                    name: "SEC project".to_owned(),
                    channel: events::DeliveryChannel::Jira.into(),
                    endpoint: "SEC".to_owned(),
                    event_types: vec![
                        "psirt.events.v1.CaseAccepted".to_owned(),
                        "psirt.events.v1.CveAssigned".to_owned(),
                        "psirt.events.v1.CaseClosed".to_owned(),
                    ],
                    trusted: true,
                    enabled: true,
                    ..Default::default()
                }),
            })
            .await?;
        Ok(())
    }

    /// Submits, assesses (high) and accepts a case; returns (case id, case key).
    async fn accepted_case(&self, title: &str) -> anyhow::Result<(String, String)> {
        // A request id of the documented characters, whatever the title.
        let request_id: String = format!("jira-{title}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let case = common::open_case(&self.intake, &self.triage, &request_id, title).await?;
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

    async fn case(&self, case_id: &str) -> Option<triage::Case> {
        let mut cases = CaseServiceClient::new(self.triage.channel().await.ok()?);
        let lookup = Some(triage::get_case_request::Lookup::CaseId(case_id.to_owned()));
        cases.get_case(triage::GetCaseRequest { lookup }).await.ok()?.into_inner().case
    }

    fn resolve(&self, key: &str, resolution: &'static str) {
        let mut state = self.jira.lock().expect("lock");
        if let Some(issue) = state.issues.iter_mut().find(|i| i.key == key) {
            issue.resolution = Some(resolution);
        }
    }

    async fn case_status(&self, case_id: &str) -> Option<i32> {
        let mut cases = CaseServiceClient::new(self.triage.channel().await.ok()?);
        let lookup = Some(triage::get_case_request::Lookup::CaseId(case_id.to_owned()));
        Some(cases.get_case(triage::GetCaseRequest { lookup }).await.ok()?.into_inner().case?.status)
    }

    fn issues_labelled(&self, label: &str) -> Vec<Issue> {
        let state = self.jira.lock().expect("lock");
        state
            .issues
            .iter()
            .filter(|i| i.fields["labels"].as_array().is_some_and(|ls| ls.iter().any(|l| l == label)))
            .cloned()
            .collect()
    }

    fn set_status(&self, key: &str, status: (&'static str, &'static str)) {
        let mut state = self.jira.lock().expect("lock");
        if let Some(issue) = state.issues.iter_mut().find(|i| i.key == key) {
            issue.status = status;
        }
    }

    /// POSTs a `jira:issue_updated` webhook, signed as Jira does.
    async fn webhook(&self, key: &str, status: (&str, &str)) -> anyhow::Result<u16> {
        let body = serde_json::to_vec(&json!({
            "timestamp": 1_700_000_000_000_i64,
            "webhookEvent": "jira:issue_updated",
            "issue": { "id": "1", "key": key, "fields": { "status": { "name": status.0, "statusCategory": { "key": status.1 } } } },
            "changelog": { "items": [ { "field": "status", "toString": status.0 } ] }
        }))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes())?;
        mac.update(&body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        post_hook(self.notification.admin, &signature, &body).await
    }
}

async fn post_hook(admin: u16, signature: &str, body: &[u8]) -> anyhow::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", admin)).await?;
    let head = format!(
        "POST /hooks/jira HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Hub-Signature: {signature}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(status)
}

const CLOSED: i32 = pc::CaseStatus::Closed as i32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_cases_get_one_validated_issue_and_jira_changes_drive_the_case() -> anyhow::Result<()> {
    let p = Platform::start("jira-sync").await?;

    // The proxy validates for real: a request off the description is refused
    // and never reaches the mock.
    let refused =
        reqwest_like_post(p.prism.port, "/rest/api/3/issue", &json!({ "fields": "not an object" })).await?;
    assert_eq!(refused, 422, "Prism must refuse a request that does not fit the official description");
    assert!(p.jira.lock().expect("lock").requests.is_empty(), "a refused request reached the mock");

    // Accepting a case creates exactly one issue, through the validating proxy.
    let (case_a, key_a) = p.accepted_case("Heap overflow in the TLV parser").await?;
    let tickets = eventually(DEADLINE, "ticket linked", || {
        let p = &p;
        let case_a = case_a.clone();
        async move {
            let t = p.tickets(&case_a).await;
            (!t.is_empty()).then_some(t)
        }
    })
    .await?;
    assert_eq!(tickets.len(), 1);
    let issues = p.issues_labelled(&key_a);
    assert_eq!(issues.len(), 1, "one issue per case");
    let issue = &issues[0];
    assert_eq!(tickets[0].key, issue.key);
    assert_eq!(tickets[0].system, events::TicketSystem::Jira as i32);
    assert!(tickets[0].url.ends_with(&format!("/browse/{}", issue.key)), "{}", tickets[0].url);
    let f = &issue.fields;
    assert_eq!(f["project"]["key"], "SEC");
    assert_eq!(f["issuetype"]["name"], "Bug");
    assert_eq!(f["summary"], format!("[{key_a}] Heap overflow in the TLV parser"));
    assert_eq!(f["priority"]["name"], "High", "severity high maps to priority High");
    assert_eq!(f["labels"], json!(["psirt", "security", key_a]));
    assert_eq!(f["customfield_10050"], format!("{key_a} / "), "operator-configured field from its template");
    assert_eq!(f["description"]["type"], "doc", "v3 descriptions are ADF documents");
    let searched_first = {
        let state = p.jira.lock().expect("lock");
        let create = state.requests.iter().position(|r| r.0 == "POST" && r.1 == "/rest/api/3/issue");
        let search = state.requests.iter().position(|r| r.1 == "/rest/api/3/search");
        matches!((search, create), (Some(s), Some(c)) if s < c)
    };
    assert!(searched_first, "the case key is searched before creating");

    // A Jira webhook moving the issue to Done drives close_case on the case,
    // which records the issue's resolution.
    p.set_status(&issue.key, STATUSES[2]);
    p.resolve(&issue.key, "Won't Fix");
    let bad = post_hook(p.notification.admin, "sha256=00", b"{}").await?;
    assert_eq!(bad, 401, "an unsigned webhook is refused");
    let status = p.webhook(&issue.key, ("Done", "done")).await?;
    assert_eq!(status, 200, "the webhook is applied");
    eventually(DEADLINE, "case A closed by the Jira webhook", || {
        let p = &p;
        let case_a = case_a.clone();
        async move { (p.case_status(&case_a).await? == CLOSED).then_some(()) }
    })
    .await?;
    // The closure comes back as a comment on the issue, once.
    eventually(DEADLINE, "CaseClosed commented", || {
        let p = &p;
        let key = key_a.clone();
        async move {
            let issues = p.issues_labelled(&key);
            (issues.first()?.comments.len() == 1).then_some(())
        }
    })
    .await?;
    let closed = p.case(&case_a).await.expect("case A");
    assert!(
        closed.root_cause.starts_with("Won't Fix (resolution of "),
        "the tracker's resolution is recorded: {:?}",
        closed.root_cause
    );
    let linked = p.tickets(&case_a).await;
    assert_eq!(linked[0].external_status, "Done");
    assert_eq!(linked[0].status_category, events::TicketStatusCategory::Done as i32);

    // A missed webhook: the issue moves to Done in Jira, nobody tells us;
    // reconciliation reads it back and drives the command.
    let (case_b, key_b) = p.accepted_case("Command injection in the diagnostics page").await?;
    let issue_b = eventually(DEADLINE, "case B's issue", || {
        let p = &p;
        let key_b = key_b.clone();
        let case_b = case_b.clone();
        async move {
            let linked = p.tickets(&case_b).await;
            let issue = p.issues_labelled(&key_b).into_iter().next()?;
            (!linked.is_empty()).then_some(issue)
        }
    })
    .await?;
    assert_ne!(p.case_status(&case_b).await, Some(CLOSED));
    p.set_status(&issue_b.key, STATUSES[2]);
    eventually(DEADLINE, "case B closed by reconciliation", || {
        let p = &p;
        let case_b = case_b.clone();
        async move { (p.case_status(&case_b).await? == CLOSED).then_some(()) }
    })
    .await?;

    // Every request that reached the mock passed the official description;
    // none was refused after the deliberate one (refusals would have failed
    // the deliveries and kept the cases open).
    assert_eq!(p.issues_labelled(&key_a).len() + p.issues_labelled(&key_b).len(), 2, "no duplicate issue");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_creating_and_linking_makes_no_second_issue() -> anyhow::Result<()> {
    let mut p = Platform::start("jira-crash").await?;
    let (tx, mut created) = tokio::sync::mpsc::unbounded_channel();
    p.jira.lock().expect("lock").hold_creates = Some(tx);

    let (case_id, case_key) = p.accepted_case("Stack overflow in the SNMP agent").await?;
    // The issue exists in Jira; the service has no answer yet: kill it now.
    let key = tokio::time::timeout(DEADLINE, created.recv()).await?.expect("a create request");
    p.notification.kill_9()?;
    p.jira.lock().expect("lock").hold_creates = None;
    assert!(p.tickets(&case_id).await.is_empty(), "nothing linked before the crash");

    p.notification.spawn(&p.nats).await?;
    p.notification.ready().await?;
    let tickets = eventually(DEADLINE, "ticket linked after the restart", || {
        let p = &p;
        let case_id = case_id.clone();
        async move {
            let t = p.tickets(&case_id).await;
            (!t.is_empty()).then_some(t)
        }
    })
    .await?;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].key, key, "the issue created before the crash is the one linked");
    let issues = p.issues_labelled(&case_key);
    assert_eq!(issues.len(), 1, "no second issue: {:?}", issues.iter().map(|i| &i.key).collect::<Vec<_>>());
    let creates = p
        .jira
        .lock()
        .expect("lock")
        .requests
        .iter()
        .filter(|r| r.0 == "POST" && r.1 == "/rest/api/3/issue")
        .count();
    assert_eq!(creates, 1, "one create request in all");
    Ok(())
}

/// A bare HTTP/1.1 POST with Basic auth; the status code.
async fn reqwest_like_post(port: u16, path: &str, body: &Value) -> anyhow::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = serde_json::to_vec(body)?;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Authorization: Basic cHNpcnQ6dG9rZW4=\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let text = String::from_utf8_lossy(&answer);
    Ok(text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0))
}
