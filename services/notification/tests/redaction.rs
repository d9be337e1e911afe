//! Redaction by default, channel by channel: what an untrusted webhook,
//! e-mail, Jira and ServiceNow destination receives of a case that has no
//! embargo, one under embargo, one disclosed, a report, and a case whose
//! facts are missing or unreadable. Real nats-server, SQLite, a real SMTP
//! server (aiosmtpd) and HTTP mocks of Jira Cloud REST v3 and the ServiceNow
//! Table API answering with the shapes of their documentation; a trusted
//! webhook receives everything in full, which shows the details were there
//! to leak.

mod support;

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use psirt_domain::{CaseId, ReportId};
use psirt_eventstore::{ExpectedVersion, Metadata, NewEvent};
use psirt_notification::SecretSource;
use psirt_notification::email::EmailSecurity;
use psirt_proto::{common, events, notification as api};
use psirt_testkit::smtp::SmtpServer;
use psirt_testkit::{Backend, eventually};
use serde_json::{Value, json};
use support::*;
use time::OffsetDateTime;

/// One request that reached the tracker mock.
#[derive(Debug, Clone)]
struct Call {
    method: Method,
    path: String,
    body: String,
}

#[derive(Default)]
struct Trackers {
    calls: Vec<Call>,
    created: u32,
}

type Shared = Arc<Mutex<Trackers>>;

/// Jira Cloud REST v3 (search, create, read, comment) and the ServiceNow
/// Table API (query, insert, read, update) in one mock.
async fn tracker(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    body: String,
) -> (StatusCode, Json<Value>) {
    let path = uri.path().to_owned();
    let mut s = state.lock().expect("tracker state");
    s.calls.push(Call { method: method.clone(), path: path.clone(), body });
    let jira_status = json!({ "name": "To Do", "statusCategory": { "key": "new" } });
    match (method, path.as_str()) {
        (Method::GET, "/rest/api/3/search/jql") => {
            (StatusCode::OK, Json(json!({ "issues": [], "isLast": true })))
        }
        (Method::POST, "/rest/api/3/issue") => {
            s.created += 1;
            let id = 10_000 + s.created;
            let key = format!("SEC-{}", s.created);
            (
                StatusCode::CREATED,
                Json(json!({ "id": id.to_string(), "key": key, "self": format!("/rest/api/3/issue/{id}") })),
            )
        }
        (Method::GET, p) if p.starts_with("/rest/api/3/issue/") && p.ends_with("/comment") => {
            (StatusCode::OK, Json(json!({ "comments": [], "startAt": 0, "maxResults": 100, "total": 0 })))
        }
        (Method::POST, p) if p.starts_with("/rest/api/3/issue/") && p.ends_with("/comment") => {
            (StatusCode::CREATED, Json(json!({ "id": "1", "body": {} })))
        }
        (Method::GET, p) if p.starts_with("/rest/api/3/issue/") => {
            let key = p.trim_start_matches("/rest/api/3/issue/");
            (StatusCode::OK, Json(json!({ "id": "10001", "key": key, "fields": { "status": jira_status } })))
        }
        (Method::GET, "/api/now/table/sys_journal_field") | (Method::GET, "/api/now/table/incident") => {
            (StatusCode::OK, Json(json!({ "result": [] })))
        }
        (Method::POST, "/api/now/table/incident") => {
            s.created += 1;
            let sys_id = format!("{:032x}", s.created);
            let number = format!("INC00100{:02}", s.created);
            (
                StatusCode::CREATED,
                Json(json!({ "result": { "sys_id": sys_id, "number": number, "state": "1" } })),
            )
        }
        (Method::GET | Method::PATCH, p) if p.starts_with("/api/now/table/incident/") => {
            let sys_id = p.trim_start_matches("/api/now/table/incident/");
            (
                StatusCode::OK,
                Json(json!({ "result": { "sys_id": sys_id, "number": "INC0010001", "state": "1" } })),
            )
        }
        _ => (StatusCode::NOT_FOUND, Json(json!({ "errorMessages": ["no such resource"] }))),
    }
}

async fn start_trackers() -> anyhow::Result<(Shared, String)> {
    let state = Shared::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().fallback(tracker).with_state(Arc::clone(&state));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((state, url))
}

/// Everything one case's details may be recognised by.
struct Secrets {
    title: String,
    product: String,
    cve: String,
}

impl Secrets {
    fn new(tag: &str) -> Self {
        Self {
            title: format!("Heap overflow in the {tag} parser"),
            product: format!("acme-{tag}-gateway"),
            cve: format!("CVE-2026-{}", 40_000 + tag.len() * 101 + usize::from(tag.as_bytes()[0])),
        }
    }

    fn all(&self) -> [&str; 3] {
        [&self.title, &self.product, &self.cve]
    }
}

const REPORT_TEXT: &str = "PoC: curl -d @exploit.bin https://gw.acme.example/upload";
const REPORTER: &str = "mallory.researcher@example.org";
const LINK: &str = "https://psirt.example.com/cases/";
/// Opened, accepted, CVE for three cases, an embargo for one, a disclosure
/// for another.
const CASE_EVENTS: usize = 3 * 3 + 2;
/// Each case event to the five subscriptions, the report to the trusted one.
const FIRST: usize = CASE_EVENTS * 5 + 1;

struct Case {
    id: CaseId,
    key: String,
    secrets: Secrets,
}

impl Case {
    fn new(tag: &str, n: u32) -> Self {
        Self {
            id: CaseId::for_report(ReportId::new()),
            key: format!("PSIRT-2026-{n:04}"),
            secrets: Secrets::new(tag),
        }
    }
}

async fn open_and_accept(h: &Harness, c: &Case, embargo: bool) -> anyhow::Result<()> {
    let id = c.id.to_string();
    let now = OffsetDateTime::now_utc();
    h.case_event(
        c.id,
        "opened",
        &events::CaseOpened {
            case_id: id.clone(),
            case_key: c.key.clone(),
            title: c.secrets.title.clone(),
            opened_at: ts(now),
            ..Default::default()
        },
    )
    .await?;
    if embargo {
        h.case_event(
            c.id,
            "embargo",
            &events::EmbargoSet {
                case_id: id.clone(),
                disclosure_at: ts(now + time::Duration::days(30)),
                time_zone: "UTC".to_owned(),
                set_at: ts(now),
                ..Default::default()
            },
        )
        .await?;
    }
    h.case_event(
        c.id,
        "accepted",
        &events::CaseAccepted {
            case_id: id.clone(),
            case_key: c.key.clone(),
            severity: common::SeverityRating::Critical.into(),
            affected_products: vec![common::ProductVersionRange {
                product: c.secrets.product.clone(),
                versions: Some(common::product_version_range::Versions::Range(
                    "vers:semver/<2.4.1".to_owned(),
                )),
            }],
            note: "confirmed".to_owned(),
            accepted_at: ts(now),
        },
    )
    .await?;
    cve(h, c, &c.secrets.cve.clone(), "cve").await
}

async fn cve(h: &Harness, c: &Case, cve_id: &str, tag: &str) -> anyhow::Result<()> {
    h.case_event(
        c.id,
        tag,
        &events::CveAssigned {
            case_id: c.id.to_string(),
            cve_id: cve_id.to_owned(),
            assigned_at: ts(OffsetDateTime::now_utc()),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// Waits until routing is through and every delivery is delivered.
async fn all_delivered(h: &Harness, at_least: usize) -> anyhow::Result<Vec<api::Delivery>> {
    h.routed_everything().await?;
    eventually(DEADLINE, "every delivery delivered", || async {
        let all =
            h.deliveries(api::ListDeliveriesRequest { page_size: 1000, ..Default::default() }).await.ok()?;
        (all.len() >= at_least && all.iter().all(|d| d.status == api::DeliveryStatus::Delivered as i32))
            .then_some(all)
    })
    .await
}

fn leaks<'a>(text: &str, forbidden: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let lower = text.to_lowercase();
    forbidden.into_iter().filter(|f| lower.contains(&f.to_lowercase())).map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn untrusted_destinations_of_every_channel_learn_nothing_before_disclosure() -> anyhow::Result<()> {
    let smtp = SmtpServer::start().await?;
    let (trackers, tracker_url) = start_trackers().await?;
    let creds = tempfile::tempdir()?;
    let creds_file = creds.path().join("tracker");
    std::fs::write(&creds_file, "psirt-bot:api-token-0123456789")?;
    let mut h = Harness::start_with(Backend::Sqlite, |c| {
        c.secrets.insert("tracker".to_owned(), SecretSource { env: None, file: Some(creds_file.clone()) });
        c.email.host = smtp.host().to_owned();
        c.email.port = smtp.port();
        c.email.security = EmailSecurity::Plain;
        c.delivery.case_link = format!("{LINK}{{case_key}}");
        c.jira.base_url = tracker_url.clone();
        c.jira.credentials_secret = "tracker".to_owned();
        c.jira.comment =
            "{{event.summary}}: {{case.title}} {{case.products}} {{case.cves}} {{case.link}}".to_owned();
        c.servicenow.base_url = tracker_url.clone();
        c.servicenow.credentials_secret = "tracker".to_owned();
        c.servicenow.note = "{{event.summary}}: {{case.title}} {{case.products}} {{case.cves}}".to_owned();
    })
    .await?;
    let untrusted_hook = Receiver::start(&[], 200).await?;
    let trusted_hook = Receiver::start(&[], 200).await?;
    // The events of this test (not the ticket links the trackers add).
    let types =
        ["CaseOpened", "EmbargoSet", "CaseAccepted", "CveAssigned", "CaseDisclosed", "ReportReceived"]
            .map(|t| format!("psirt.events.v1.{t}"));
    let every =
        |s: events::SubscriptionSettings| events::SubscriptionSettings { event_types: types.to_vec(), ..s };
    h.subscribe("hook", every(webhook("Partner SOC", &untrusted_hook.url()))).await?;
    h.subscribe("trusted", trusted(every(webhook("PSIRT core", &trusted_hook.url())))).await?;
    for (name, channel, endpoint) in [
        ("Support desk", events::DeliveryChannel::Email, "support@example.com"),
        ("Engineering Jira", events::DeliveryChannel::Jira, "SEC"),
        ("IT ServiceNow", events::DeliveryChannel::Servicenow, "incident"),
    ] {
        let settings = events::SubscriptionSettings {
            channel: channel.into(),
            endpoint: endpoint.to_owned(),
            secret_ref: String::new(),
            ..every(webhook(name, ""))
        };
        h.subscribe(&name.replace(' ', "-"), settings).await?;
    }

    // No embargo, an embargo, and one disclosed; then a report.
    let open = Case::new("open", 1);
    let embargoed = Case::new("embargoed", 2);
    let disclosed = Case::new("disclosed", 3);
    open_and_accept(&h, &open, false).await?;
    open_and_accept(&h, &embargoed, true).await?;
    open_and_accept(&h, &disclosed, false).await?;
    // Sent before the disclosure (a delivery attempted after it may carry
    // the public facts, which are public by then).
    all_delivered(&h, (CASE_EVENTS - 1) * 5).await?;
    h.case_event(
        disclosed.id,
        "disclosed",
        &events::CaseDisclosed {
            case_id: disclosed.id.to_string(),
            disclosed_at: ts(OffsetDateTime::now_utc()),
            ..Default::default()
        },
    )
    .await?;
    let report = ReportId::new();
    let report_event = NewEvent::from_message(
        uuid::Uuid::now_v7(),
        format!("psirt.evt.report.{report}"),
        &events::ReportReceived {
            report_id: report.to_string(),
            case_id: CaseId::for_report(report).to_string(),
            title: "Unauthenticated upload".to_owned(),
            description: REPORT_TEXT.to_owned(),
            reporter: Some(common::Reporter {
                name: "Mallory".to_owned(),
                email: REPORTER.to_owned(),
                organization: String::new(),
            }),
            ..Default::default()
        },
        Metadata { actor: Some("psirt-intake".to_owned()), ..Metadata::default() },
    );
    h.store.append(report_event, ExpectedVersion::Any).await?;
    all_delivered(&h, FIRST).await?;

    // Facts missing (the open case) and unreadable (the embargoed case):
    // the tickets both hold are not enriched with the new CVEs.
    let (missing_cve, unreadable_cve) = ("CVE-2026-51111", "CVE-2026-52222");
    sqlx::query("DELETE FROM notification_cases WHERE case_id = $1")
        .bind(open.id.to_string())
        .execute(&h.pool)
        .await?;
    sqlx::query("UPDATE notification_cases SET facts = '{not json' WHERE case_id = $1")
        .bind(embargoed.id.to_string())
        .execute(&h.pool)
        .await?;
    cve(&h, &open, missing_cve, "cve-missing").await?;
    cve(&h, &embargoed, unreadable_cve, "cve-unreadable").await?;
    let deliveries = all_delivered(&h, FIRST + 2 * 5).await?;
    assert_eq!(deliveries.len(), FIRST + 2 * 5, "the report only to the trusted webhook");

    let undisclosed: Vec<&str> = open
        .secrets
        .all()
        .into_iter()
        .chain(embargoed.secrets.all())
        .chain([REPORT_TEXT, REPORTER, "Unauthenticated upload", missing_cve, unreadable_cve, "confirmed"])
        .collect();
    let public = disclosed.secrets.all();

    // The trusted receiver had every detail to leak.
    let full: String =
        trusted_hook.requests().iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect();
    assert!(
        leaks(&full, undisclosed.iter().copied()).len() == undisclosed.len(),
        "the trusted webhook got everything"
    );

    // Webhook: notices until disclosure, then the public facts; never a report.
    let requests = untrusted_hook.requests();
    assert_eq!(requests.len(), CASE_EVENTS + 2, "one CloudEvent per case event, none for the report");
    for r in &requests {
        verify_signature(r);
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(leaks(&body, undisclosed.iter().copied()), Vec::<String>::new(), "{body}");
        let data = &r.json["data"];
        let is_disclosure = r.json["subject"] == disclosed.id.to_string()
            && r.json["type"] == "psirt.events.v1.CaseDisclosed";
        if is_disclosure {
            assert_eq!(data["redacted"], false);
            assert_eq!(data["title"], disclosed.secrets.title, "{body}");
            assert_eq!(data["products"][0], disclosed.secrets.product);
            assert_eq!(data["cveIds"][0], disclosed.secrets.cve);
            assert!(
                data.get("note").is_none() && data.get("affectedProducts").is_none(),
                "not the event itself"
            );
        } else {
            assert_eq!(data["redacted"], true, "{body}");
            assert_eq!(leaks(&body, public), Vec::<String>::new(), "{body}");
            assert!(!body.to_lowercase().contains("critical"), "no severity: {body}");
            let keys: Vec<&str> = data.as_object().expect("data").keys().map(String::as_str).collect();
            assert!(
                keys.iter().all(|k| ["caseId", "caseKey", "status", "redacted", "link"].contains(k)),
                "{keys:?}"
            );
            let key = data["caseKey"].as_str().unwrap_or_default();
            if !key.is_empty() {
                assert_eq!(data["link"], format!("{LINK}{key}"), "a link for people who may look");
            }
            assert!(r.json["time"].is_string() && r.json["type"].is_string(), "time and event type");
        }
    }

    // E-mail: the same rule, in the rendered message.
    let mails = smtp.wait_for_messages(CASE_EVENTS + 2, DEADLINE).await?;
    assert_eq!(mails.len(), CASE_EVENTS + 2, "no mail for the report");
    let mut disclosure_mails = 0;
    for mail in &mails {
        assert_eq!(leaks(&mail.raw, undisclosed.iter().copied()), Vec::<String>::new(), "{}", mail.raw);
        if mail.header("subject").is_some_and(|s| s.contains(&disclosed.key) && s.contains("Case disclosed"))
        {
            disclosure_mails += 1;
            assert!(
                mail.body.contains(&disclosed.secrets.title) && mail.body.contains(&disclosed.secrets.cve),
                "{}",
                mail.body
            );
        } else {
            assert_eq!(leaks(&mail.raw, public), Vec::<String>::new(), "{}", mail.raw);
            assert!(!mail.raw.to_lowercase().contains("critical"), "no severity: {}", mail.raw);
        }
    }
    assert_eq!(disclosure_mails, 1);
    let link = format!("{LINK}{}", embargoed.key);
    assert!(
        mails.iter().any(|m| m.body.contains(&link)),
        "a notice links to the case for people who may look"
    );

    // Jira and ServiceNow: tickets created redacted, comments and notes
    // without details until the disclosure's, no priority or urgency.
    let calls = trackers.lock().expect("tracker state").calls.clone();
    let writes: Vec<&Call> = calls.iter().filter(|c| c.method != Method::GET).collect();
    let created = writes.iter().filter(|c| c.method == Method::POST && !c.path.ends_with("/comment")).count();
    assert_eq!(created, 2 * 3, "one Jira issue and one ServiceNow record per case");
    let mut disclosure_notes = 0;
    for call in &writes {
        assert_eq!(leaks(&call.body, undisclosed.iter().copied()), Vec::<String>::new(), "{call:?}");
        assert!(!call.body.contains("priority") && !call.body.contains("urgency"), "no severity: {call:?}");
        if call.body.contains("Case disclosed") && call.body.contains(&disclosed.secrets.cve) {
            disclosure_notes += 1;
        } else {
            assert_eq!(leaks(&call.body, public), Vec::<String>::new(), "{call:?}");
        }
    }
    assert_eq!(
        disclosure_notes, 2,
        "the disclosure's Jira comment and ServiceNow note carry the public facts"
    );
    h.stop().await
}
