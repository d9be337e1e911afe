//! The Jira adapter in-process against an HTTP mock speaking Jira Cloud's
//! REST v3 shapes (`/rest/api/3/search/jql`, `/issue`, `/issue/{key}`,
//! `/comment`, `/transitions`; 404 with `errorMessages` for an issue that does
//! not exist), on a real nats-server and database:
//!
//! - a deleted issue (404) is recorded once as DELETED; the delivery that
//!   found it ends with a terminal result, later events send nothing to it,
//!   webhooks and reconciliation leave it alone;
//! - reconciliation keeps a cursor in the read model: after the first pass
//!   it asks Jira only for issues updated since (less the overlap), still
//!   picks a change up, and goes on from the cursor after a restart;
//! - rotated secret files apply without a restart: the next request to
//!   Jira carries the new credentials, and a webhook signed with the new key
//!   gets in while the old key is refused.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use psirt_domain::CaseId;
use psirt_notification::SecretSource;
use psirt_notification::tracker::jira::JiraSettings;
use psirt_proto::{common, events, notification as api};
use psirt_testkit::{Backend, eventually};
use serde_json::{Value, json};
use sha2::Sha256;
use support::{DEADLINE, Harness, ts};
use time::OffsetDateTime;

const CREDENTIALS: &str = "psirt-bot@example.com:first-api-token-0123";
const ROTATED: &str = "psirt-bot@example.com:second-api-token-4567";
const HOOK_KEY: &str = "jira-webhook-key-first-0123456789";
const HOOK_KEY_ROTATED: &str = "jira-webhook-key-second-987654321";

// ---------------------------------------------------------------------------
// The Jira mock
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Issue {
    key: String,
    labels: Vec<String>,
    status: (&'static str, &'static str),
    resolution: Option<&'static str>,
    updated: Instant,
    comments: Vec<Value>,
    deleted: bool,
}

/// A request as the mock saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: &'static str,
    path: String,
    jql: String,
    authorization: String,
}

#[derive(Default)]
struct Jira {
    issues: Vec<Issue>,
    requests: Vec<Seen>,
}

type Shared = Arc<Mutex<Jira>>;

fn not_found() -> (StatusCode, Json<Value>) {
    let body = json!({ "errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {} });
    (StatusCode::NOT_FOUND, Json(body))
}

fn log(jira: &Shared, method: &'static str, path: String, jql: String, headers: &HeaderMap) {
    let authorization =
        headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    jira.lock().expect("lock").requests.push(Seen { method, path, jql, authorization });
}

fn issue_json(i: &Issue) -> Value {
    let resolution = i.resolution.map_or(Value::Null, |r| json!({ "name": r }));
    json!({ "id": i.key.replace("SEC-", "1000"), "key": i.key, "self": format!("http://jira.test/rest/api/3/issue/{}", i.key),
            "fields": { "status": { "name": i.status.0, "statusCategory": { "key": i.status.1 } },
                        "resolution": resolution, "labels": i.labels } })
}

/// The quoted literals after `after` in a JQL query, up to the next clause.
fn literals(jql: &str, after: &str) -> Vec<String> {
    let Some(start) = jql.find(after) else { return Vec::new() };
    let rest = &jql[start + after.len()..];
    let end = rest.find(" AND ").or_else(|| rest.find(" ORDER BY")).unwrap_or(rest.len());
    rest[..end].split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

/// `updated >= -<n>m`: the minutes, when the query has such a clause.
fn updated_minutes(jql: &str) -> Option<u64> {
    let rest = &jql[jql.find("updated >= -")? + "updated >= -".len()..];
    rest[..rest.find('m')?].parse().ok()
}

async fn search(
    State(jira): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let jql = q.get("jql").cloned().unwrap_or_default();
    log(&jira, "GET", "/rest/api/3/search/jql".to_owned(), jql.clone(), &headers);
    let labels = literals(&jql, "labels = ");
    let keys = literals(&jql, "key in (");
    let projects = [literals(&jql, "project = "), literals(&jql, "project in (")].concat();
    let minutes = updated_minutes(&jql);
    let state = jira.lock().expect("lock");
    let hits: Vec<Value> = state
        .issues
        .iter()
        .filter(|i| !i.deleted)
        .filter(|i| labels.iter().all(|l| i.labels.contains(l)))
        .filter(|i| keys.is_empty() || keys.contains(&i.key))
        .filter(|i| projects.is_empty() || projects.iter().any(|p| i.key.starts_with(&format!("{p}-"))))
        .filter(|i| minutes.is_none_or(|m| i.updated.elapsed() <= Duration::from_secs(m * 60)))
        .map(issue_json)
        .collect();
    Json(json!({ "issues": hits, "isLast": true }))
}

async fn create(
    State(jira): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    log(&jira, "POST", "/rest/api/3/issue".to_owned(), String::new(), &headers);
    let mut state = jira.lock().expect("lock");
    let key = format!("SEC-{}", state.issues.len() + 1);
    let labels = body["fields"]["labels"]
        .as_array()
        .map(|ls| ls.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    state.issues.push(Issue {
        key: key.clone(),
        labels,
        status: ("To Do", "new"),
        resolution: None,
        updated: Instant::now(),
        comments: Vec::new(),
        deleted: false,
    });
    let answer = json!({ "id": key.replace("SEC-", "1000"), "key": key, "self": format!("http://jira.test/rest/api/3/issue/{key}") });
    (StatusCode::CREATED, Json(answer))
}

async fn issue(
    State(jira): State<Shared>,
    headers: HeaderMap,
    UrlPath(key): UrlPath<String>,
) -> (StatusCode, Json<Value>) {
    log(&jira, "GET", format!("/rest/api/3/issue/{key}"), String::new(), &headers);
    let state = jira.lock().expect("lock");
    match state.issues.iter().find(|i| i.key == key && !i.deleted) {
        Some(i) => (StatusCode::OK, Json(issue_json(i))),
        None => not_found(),
    }
}

async fn comments(
    State(jira): State<Shared>,
    headers: HeaderMap,
    UrlPath(key): UrlPath<String>,
) -> (StatusCode, Json<Value>) {
    log(&jira, "GET", format!("/rest/api/3/issue/{key}/comment"), String::new(), &headers);
    let state = jira.lock().expect("lock");
    match state.issues.iter().find(|i| i.key == key && !i.deleted) {
        Some(i) => (
            StatusCode::OK,
            Json(
                json!({ "startAt": 0, "maxResults": 100, "total": i.comments.len(), "comments": i.comments }),
            ),
        ),
        None => not_found(),
    }
}

async fn add_comment(
    State(jira): State<Shared>,
    headers: HeaderMap,
    UrlPath(key): UrlPath<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    log(&jira, "POST", format!("/rest/api/3/issue/{key}/comment"), String::new(), &headers);
    let mut state = jira.lock().expect("lock");
    let Some(issue) = state.issues.iter_mut().find(|i| i.key == key && !i.deleted) else {
        return not_found();
    };
    let comment = json!({ "id": format!("{}", 20_000 + issue.comments.len()), "body": body["body"] });
    issue.comments.push(comment.clone());
    (StatusCode::CREATED, Json(comment))
}

async fn start_mock(jira: Shared) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new()
        .route("/rest/api/3/search/jql", get(search))
        .route("/rest/api/3/issue", post(create))
        .route("/rest/api/3/issue/{key}", get(issue))
        .route("/rest/api/3/issue/{key}/comment", get(comments).post(add_comment))
        .with_state(jira);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

// ---------------------------------------------------------------------------
// The service with Jira configured
// ---------------------------------------------------------------------------

struct Setup {
    h: Harness,
    jira: Shared,
    dir: tempfile::TempDir,
}

/// Replaces a secret file the way secret volumes do: a new file renamed over it.
fn rotate(path: &Path, value: &str) -> anyhow::Result<()> {
    let next = path.with_extension("new");
    std::fs::write(&next, format!("{value}\n"))?;
    std::fs::rename(&next, path)?;
    Ok(())
}

impl Setup {
    async fn start(backend: Backend, reconcile: Duration) -> anyhow::Result<Self> {
        let jira: Shared = Arc::default();
        let addr = start_mock(Arc::clone(&jira)).await?;
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("jira.cred"), CREDENTIALS)?;
        std::fs::write(dir.path().join("jirahook.key"), HOOK_KEY)?;
        let files: Vec<(String, PathBuf)> = ["jira.cred", "jirahook.key"]
            .iter()
            .map(|f| (f.split('.').next().unwrap_or_default().to_owned(), dir.path().join(f)))
            .collect();
        let h = Harness::start_with(backend, move |c| {
            c.jira = JiraSettings {
                base_url: format!("http://{addr}"),
                credentials_secret: "jira".to_owned(),
                webhook_secret: "jirahook".to_owned(),
                reconcile_interval: reconcile,
                timeout: Duration::from_secs(5),
                ..JiraSettings::default()
            };
            for (name, file) in files {
                c.secrets.insert(name, SecretSource { env: None, file: Some(file) });
            }
        })
        .await?;
        h.subscribe(
            "jira-sec",
            events::SubscriptionSettings {
                name: "SEC project".to_owned(),
                channel: events::DeliveryChannel::Jira.into(),
                endpoint: "SEC".to_owned(),
                event_types: vec![
                    "psirt.events.v1.CaseAccepted".to_owned(),
                    "psirt.events.v1.CveAssigned".to_owned(),
                ],
                trusted: true,
                enabled: true,
                ..Default::default()
            },
        )
        .await?;
        Ok(Self { h, jira, dir })
    }

    /// A case accepted and its issue linked; the case and the issue key.
    async fn linked_case(&self) -> anyhow::Result<(CaseId, String)> {
        let (case, _) = self.h.accepted_case(common::SeverityRating::High, false).await?;
        let ticket =
            eventually(DEADLINE, "issue linked", || async { self.tickets(case).await.into_iter().next() })
                .await?;
        Ok((case, ticket.key))
    }

    async fn tickets(&self, case: CaseId) -> Vec<api::ExternalTicket> {
        let Ok(mut client) = self.h.client().await else { return Vec::new() };
        client
            .list_external_tickets(api::ListExternalTicketsRequest { case_id: case.to_string() })
            .await
            .map(|r| r.into_inner().tickets)
            .unwrap_or_default()
    }

    /// Appends a `CveAssigned` to the case (routed to the subscription).
    async fn cve(&self, case: CaseId, n: u32) -> anyhow::Result<()> {
        let event = events::CveAssigned {
            case_id: case.to_string(),
            cve_id: format!("CVE-2026-{:05}", 10_000 + n),
            assigned_at: ts(OffsetDateTime::now_utc()),
            ..Default::default()
        };
        self.h.case_event(case, &format!("cve-{n}"), &event).await?;
        Ok(())
    }

    fn requests(&self) -> Vec<Seen> {
        self.jira.lock().expect("lock").requests.clone()
    }

    fn with_issue(&self, key: &str, change: impl FnOnce(&mut Issue)) {
        let mut state = self.jira.lock().expect("lock");
        if let Some(issue) = state.issues.iter_mut().find(|i| i.key == key) {
            change(issue);
        }
    }

    /// POSTs a `jira:issue_updated` webhook for `key`, signed with `key_text`.
    async fn webhook(&self, key: &str, key_text: &str) -> anyhow::Result<u16> {
        let body = serde_json::to_vec(&json!({
            "timestamp": 1_700_000_000_000_i64,
            "webhookEvent": "jira:issue_updated",
            "issue": { "id": "1", "key": key, "fields": { "status": { "name": "Done", "statusCategory": { "key": "done" } } } }
        }))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key_text.as_bytes())?;
        mac.update(&body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let answer = reqwest::Client::new()
            .post(format!("http://{}/hooks/jira", self.h.admin))
            .header("content-type", "application/json")
            .header("x-hub-signature", signature)
            .body(body)
            .send()
            .await?;
        Ok(answer.status().as_u16())
    }
}

/// The `ExternalTicketUpdated` events of the case's link of category DELETED.
async fn deleted_events(h: &Harness, case: CaseId) -> anyhow::Result<usize> {
    let tickets = psirt_notification::readmodel::tickets(&h.pool, &case.to_string(), 10).await?;
    let Some(link) = tickets.first() else { return Ok(0) };
    let events = h.store.load(&psirt_notification::tracker::link_subject(&link.link_id)).await?;
    let mut n = 0;
    for e in events {
        if psirt_eventstore::is_type::<events::ExternalTicketUpdated>(&e.event_type) {
            let m: events::ExternalTicketUpdated = e.decode()?;
            n += usize::from(m.status_category == events::TicketStatusCategory::Deleted as i32);
        }
    }
    Ok(n)
}

fn to_issue(requests: &[Seen], key: &str) -> usize {
    let prefix = format!("/rest/api/3/issue/{key}");
    requests.iter().filter(|r| r.path.starts_with(&prefix)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_issue_is_recorded_once_and_never_sent_to_again() -> anyhow::Result<()> {
    let s = Setup::start(Backend::Sqlite, Duration::ZERO).await?;
    let (case, key) = s.linked_case().await?;

    // The issue is deleted in Jira; the next event's comment meets a 404.
    s.with_issue(&key, |i| i.deleted = true);
    s.cve(case, 1).await?;
    let ticket = eventually(DEADLINE, "the link recorded as deleted", || async {
        s.tickets(case)
            .await
            .into_iter()
            .find(|t| t.status_category == events::TicketStatusCategory::Deleted as i32)
    })
    .await?;
    assert_eq!(ticket.key, key);
    assert_eq!(ticket.external_status, "To Do", "the last known status stays");
    // The delivery that met the 404 ends, delivered, saying why; no retry,
    // no dead letter.
    let deliveries = eventually(DEADLINE, "the CVE delivery ended", || async {
        let all =
            s.h.deliveries(api::ListDeliveriesRequest {
                case_id: case.to_string(),
                page_size: 100,
                ..Default::default()
            })
            .await
            .ok()?;
        all.iter().all(|d| d.status != api::DeliveryStatus::Pending as i32).then_some(all)
    })
    .await?;
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert!(deliveries.iter().all(|d| d.status == api::DeliveryStatus::Delivered as i32), "{deliveries:?}");
    let cve = deliveries.iter().find(|d| d.event_type.ends_with("CveAssigned")).expect("the CVE delivery");
    assert_eq!(cve.attempts, 1, "not retried: {cve:?}");
    assert!(cve.last_error.contains("no longer exists"), "{cve:?}");

    // Later events, a webhook and reconciliation send nothing to it.
    let before = to_issue(&s.requests(), &key);
    s.cve(case, 2).await?;
    s.h.routed_everything().await?;
    eventually(DEADLINE, "the second CVE delivery ended", || async {
        let all =
            s.h.deliveries(api::ListDeliveriesRequest {
                case_id: case.to_string(),
                page_size: 100,
                ..Default::default()
            })
            .await
            .ok()?;
        (all.len() == 3 && all.iter().all(|d| d.status == api::DeliveryStatus::Delivered as i32))
            .then_some(())
    })
    .await?;
    assert_eq!(s.webhook(&key, HOOK_KEY).await?, 200, "the webhook is answered");
    assert_eq!(to_issue(&s.requests(), &key), before, "nothing sent to or read of the deleted issue");
    assert_eq!(deleted_events(&s.h, case).await?, 1, "the deletion is recorded once");
    assert_eq!(
        s.requests().iter().filter(|r| r.method == "POST" && r.path == "/rest/api/3/issue").count(),
        1,
        "no new issue"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_asks_only_for_issues_changed_since_its_cursor() -> anyhow::Result<()> {
    for backend in psirt_testkit::BACKENDS {
        reconciliation_cursor_on(backend).await?;
    }
    Ok(())
}

async fn reconciliation_cursor_on(backend: Backend) -> anyhow::Result<()> {
    let mut s = Setup::start(backend, Duration::from_secs(1)).await?;
    let (case, key) = s.linked_case().await?;
    let pool = s.h.pool.clone();
    let cursor = || async {
        psirt_notification::readmodel::cursor(&pool, "ticket-reconciler-ticket_system_jira")
            .await
            .ok()
            .flatten()
    };
    let first = eventually(DEADLINE, "a cursor after the first pass", cursor).await?;
    // A later pass asks for the changes since the cursor only.
    eventually(DEADLINE, "a pass after the cursor", || async { (cursor().await? > first).then_some(()) })
        .await?;
    let searches: Vec<Seen> = s
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/search/jql") && !r.jql.contains("labels ="))
        .collect();
    let incremental = searches.last().expect("a reconciliation search");
    assert!(incremental.jql.starts_with("project in (\"SEC\") AND updated >= -"), "{}", incremental.jql);
    assert!(
        updated_minutes(&incremental.jql).is_some_and(|m| m <= 4),
        "the overlap is minutes: {}",
        incremental.jql
    );

    // A change since is still picked up.
    s.with_issue(&key, |i| {
        i.status = ("In Progress", "indeterminate");
        i.updated = Instant::now();
    });
    eventually(DEADLINE, "the change picked up", || async {
        s.tickets(case).await.into_iter().find(|t| t.external_status == "In Progress")
    })
    .await?;

    // After a restart the passes go on from the cursor: no rescan of every linked issue.
    s.h.restart_after(&[]).await?;
    let restarted = s.requests().len();
    let before = cursor().await.expect("cursor");
    eventually(DEADLINE, "a pass after the restart", || async { (cursor().await? > before).then_some(()) })
        .await?;
    let after_restart: Vec<Seen> =
        s.requests()[restarted..].iter().filter(|r| r.path.ends_with("/search/jql")).cloned().collect();
    assert!(!after_restart.is_empty());
    assert!(after_restart.iter().all(|r| !r.jql.contains("key in (")), "rescanned: {after_restart:?}");
    assert!(s.requests().iter().filter(|r| r.jql.contains("key in (")).count() <= 1, "one full pass in all");
    drop(s.dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_secret_files_apply_without_a_restart() -> anyhow::Result<()> {
    let s = Setup::start(Backend::Sqlite, Duration::ZERO).await?;
    let (case, key) = s.linked_case().await?;
    let basic = |creds: &str| {
        use base64_like::encode;
        format!("Basic {}", encode(creds.as_bytes()))
    };
    assert!(s.requests().iter().all(|r| r.authorization == basic(CREDENTIALS)), "{:?}", s.requests());

    // The credentials file is replaced: the next request carries the new ones.
    rotate(&s.dir.path().join("jira.cred"), ROTATED)?;
    let seen = s.requests().len();
    s.cve(case, 1).await?;
    eventually(DEADLINE, "the comment sent", || async {
        let requests = s.requests();
        requests[seen..].iter().any(|r| r.method == "POST" && r.path.ends_with("/comment")).then_some(())
    })
    .await?;
    let after = &s.requests()[seen..];
    assert!(after.iter().all(|r| r.authorization == basic(ROTATED)), "{after:?}");

    // The webhook key is replaced: the new one gets in, the old one is refused.
    assert_eq!(s.webhook(&key, HOOK_KEY).await?, 200);
    rotate(&s.dir.path().join("jirahook.key"), HOOK_KEY_ROTATED)?;
    assert_eq!(s.webhook(&key, HOOK_KEY).await?, 401, "the old key is refused");
    assert_eq!(s.webhook(&key, HOOK_KEY_ROTATED).await?, 200, "the new key gets in");
    Ok(())
}

/// Standard base64 (for the expected `Authorization: Basic` values).
mod base64_like {
    pub fn encode(bytes: &[u8]) -> String {
        const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
