//! The Jira adapter: Jira Cloud (REST v3, descriptions and comments in the
//! Atlassian Document Format) and Jira Data Center (REST v2, plain text).
//!
//! Requests: `GET {api}/search` (JQL) to find a case's issue by its label
//! and to read the status of linked issues, `POST {api}/issue` to create,
//! `GET`/`POST {api}/issue/{key}/comment`, `GET`/`POST
//! {api}/issue/{key}/transitions`. Auth: API token (Basic, secret
//! `user:token`) or a personal access token (Bearer, the secret itself).

use std::collections::BTreeMap;
use std::time::Duration;

use psirt_domain::CvssSeverity;
use psirt_domain::template::{Template, Values};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Auth, AuthMode, Failure, Http, Ticket, TicketState, category_from_name};

/// Which JQL search endpoint Jira Cloud is asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchApi {
    /// `GET /rest/api/3/search/jql` (Jira Cloud since 2025).
    #[default]
    Jql,
    /// `GET /rest/api/3/search` (older Cloud sites and the 2022 API description).
    Legacy,
}

/// Which Jira speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deployment {
    /// Jira Cloud, REST API v3.
    #[default]
    Cloud,
    /// Jira Data Center / Server, REST API v2.
    DataCenter,
}

/// `[jira]`: the Jira instance and what tickets say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JiraSettings {
    /// Base URL, e.g. `https://example.atlassian.net`; empty: Jira is off
    /// (subscriptions of channel JIRA then fail their deliveries).
    pub base_url: String,
    pub deployment: Deployment,
    /// Jira Cloud's JQL search endpoint: `jql` or `legacy` (Data Center
    /// always uses `/rest/api/2/search`).
    pub search: SearchApi,
    /// `basic` (secret `user:api-token`) or `bearer` (secret: the token).
    pub auth: AuthMode,
    /// Name of the secret in `[secrets]` holding the credentials.
    pub credentials_secret: String,
    /// Issue type of created issues.
    pub issue_type: String,
    /// Events that create the case's issue when it has none yet; events of
    /// a case without an issue are otherwise not sent.
    pub create_on: Vec<String>,
    /// Labels of created issues; the case key is always added (the search
    /// that prevents a second issue after a crash looks for it).
    pub labels: Vec<String>,
    /// Template of the summary (at most 255 characters are sent).
    pub summary: String,
    /// Template of the description.
    pub description: String,
    /// Template of the comment added for each later event.
    pub comment: String,
    /// Jira priority name per severity (`critical`, `high`, `medium`,
    /// `low`, `none`); a severity without entry leaves Jira's default.
    pub priorities: BTreeMap<String, String>,
    /// Fields set on created issues, by field id (`customfield_10050`), as
    /// templates; the rendered text is sent as a string.
    pub fields: BTreeMap<String, String>,
    /// Transition (by name) to make when the case reaches a status
    /// (`remediating`, `fixed`, `disclosed`, `closed`, ...).
    pub transitions: BTreeMap<String, String>,
    /// Name of the secret in `[secrets]` that inbound webhooks must carry
    /// (`X-Hub-Signature: sha256=<hmac of the body>`); empty: inbound
    /// webhooks are refused.
    pub webhook_secret: String,
    /// Also accept the secret as `?token=` in the webhook URL (Jira Data
    /// Center, which cannot sign). Off by default: the URL, secret
    /// included, lands in proxy and access logs.
    pub webhook_query_token: bool,
    /// Commands driven by status changes of linked issues.
    pub inbound: Vec<super::InboundRule>,
    /// How often linked issues are read back to repair missed webhooks; 0s: never.
    #[serde(with = "psirt_kit::config::duration")]
    pub reconcile_interval: Duration,
    /// Timeout of one request.
    #[serde(with = "psirt_kit::config::duration")]
    pub timeout: Duration,
}

impl Default for JiraSettings {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            deployment: Deployment::Cloud,
            search: SearchApi::Jql,
            auth: AuthMode::Basic,
            credentials_secret: String::new(),
            issue_type: "Bug".to_owned(),
            create_on: vec!["psirt.events.v1.CaseAccepted".to_owned()],
            labels: vec!["psirt".to_owned()],
            summary: "[{{case.key}}] {{case.title}}".to_owned(),
            description: "Security case {{case.key}}: {{case.title}}\n\nSeverity: {{case.severity}}\nProducts: \
                          {{case.products}}\nCVEs: {{case.cves}}\n\nKept in step by the PSIRT platform; do not \
                          remove the {{case.key}} label."
                .to_owned(),
            comment: "{{event.summary}} ({{event.type}}, {{event.time}}). Case status: {{case.status}}.".to_owned(),
            priorities: [("critical", "Highest"), ("high", "High"), ("medium", "Medium"), ("low", "Low")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            fields: BTreeMap::new(),
            transitions: BTreeMap::new(),
            webhook_secret: String::new(),
            webhook_query_token: false,
            inbound: Vec::new(),
            reconcile_interval: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Severity names the priority map may use.
pub const SEVERITIES: [&str; 5] = ["none", "low", "medium", "high", "critical"];

impl JiraSettings {
    pub fn enabled(&self) -> bool {
        !self.base_url.is_empty()
    }

    /// Every problem, as (key relative to `[jira]`, problem).
    pub fn problems(&self, secret_names: &dyn Fn(&str) -> bool) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |k: &str, p: String| out.push((k.to_owned(), p));
        if !self.enabled() {
            return out;
        }
        super::common_settings!(self).problems(secret_names, &mut push);
        if self.issue_type.trim().is_empty() || self.issue_type.len() > 255 {
            push("issue_type", "must be 1..255 characters".to_owned());
        }
        for (i, l) in self.labels.iter().enumerate() {
            if l.is_empty() || l.len() > 255 || l.chars().any(char::is_whitespace) {
                push(&format!("labels[{i}]"), "a label is 1..255 characters without spaces".to_owned());
            }
        }
        for (key, text) in
            [("summary", &self.summary), ("description", &self.description), ("comment", &self.comment)]
        {
            if let Err(e) = Template::parse(text) {
                push(key, e.to_string());
            }
        }
        for (field, text) in &self.fields {
            let ok_id = field.starts_with("customfield_") && field[12..].chars().all(|c| c.is_ascii_digit())
                || field.chars().all(|c| c.is_ascii_lowercase());
            if !ok_id || field.is_empty() {
                push(&format!("fields.{field}"), "must be a field id such as customfield_10050".to_owned());
            }
            if let Err(e) = Template::parse(text) {
                push(&format!("fields.{field}"), e.to_string());
            }
        }
        for (severity, name) in &self.priorities {
            if !SEVERITIES.contains(&severity.as_str()) {
                push(&format!("priorities.{severity}"), format!("must be one of {}", SEVERITIES.join(", ")));
            }
            if name.trim().is_empty() {
                push(&format!("priorities.{severity}"), "must name a Jira priority".to_owned());
            }
        }
        for (status, name) in &self.transitions {
            if super::parse_case_status(status).is_none() {
                push(&format!("transitions.{status}"), "must be a case status such as fixed".to_owned());
            }
            if name.trim().is_empty() {
                push(&format!("transitions.{status}"), "must name a Jira transition".to_owned());
            }
        }
        out
    }
}

/// Parsed templates.
struct Templates {
    summary: Template,
    description: Template,
    comment: Template,
    fields: Vec<(String, Template)>,
}

pub struct Jira {
    http: Http,
    api: String,
    base: String,
    deployment: Deployment,
    settings: JiraSettings,
    templates: Templates,
}

/// The longest summary Jira takes.
const MAX_SUMMARY_CHARS: usize = 255;

/// A JQL string literal.
fn jql_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Jira {
    pub fn new(settings: &JiraSettings, auth: Auth, user_agent: &str) -> anyhow::Result<Self> {
        let base = settings.base_url.trim_end_matches('/').to_owned();
        let api = match settings.deployment {
            Deployment::Cloud => format!("{base}/rest/api/3"),
            Deployment::DataCenter => format!("{base}/rest/api/2"),
        };
        let templates = Templates {
            summary: Template::parse(&settings.summary)?,
            description: Template::parse(&settings.description)?,
            comment: Template::parse(&settings.comment)?,
            fields: settings
                .fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), Template::parse(v)?)))
                .collect::<anyhow::Result<_>>()?,
        };
        Ok(Self {
            http: Http::new(auth, user_agent, settings.timeout)?,
            api,
            base,
            deployment: settings.deployment,
            settings: settings.clone(),
            templates,
        })
    }

    pub fn settings(&self) -> &JiraSettings {
        &self.settings
    }

    /// JQL search: Jira Cloud's `search/jql` (the older `search` was
    /// withdrawn on Cloud; `search = "legacy"` keeps it), Data Center's `search`.
    fn search_url(&self) -> String {
        match (self.deployment, self.settings.search) {
            (Deployment::Cloud, SearchApi::Jql) => format!("{}/search/jql", self.api),
            _ => format!("{}/search", self.api),
        }
    }

    fn text(&self, text: &str) -> Value {
        match self.deployment {
            Deployment::DataCenter => Value::String(text.to_owned()),
            Deployment::Cloud => adf(text),
        }
    }

    fn ticket(&self, issue: &Value) -> Option<Ticket> {
        let key = issue.get("key")?.as_str()?.to_owned();
        let state = issue.get("fields").and_then(state_of_fields);
        Some(Ticket {
            url: format!("{}/browse/{key}", self.base),
            id: issue.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
            key,
            state,
        })
    }

    /// The issue of a case in `project`, by the case key label.
    pub async fn find(&self, project: &str, case_key: &str) -> Result<Option<Ticket>, Failure> {
        let jql = format!(
            "project = {} AND labels = {} ORDER BY created ASC",
            jql_string(project),
            jql_string(case_key)
        );
        let query = [("jql", jql.as_str()), ("fields", "status,labels"), ("maxResults", "2")];
        let body = self.http.get_json(&self.search_url(), &query).await?;
        let issues = issues(&body)?;
        Ok(issues.first().and_then(|i| self.ticket(i)))
    }

    /// Creates the issue of a case.
    pub async fn create(
        &self,
        project: &str,
        values: &Values,
        severity: Option<CvssSeverity>,
    ) -> Result<Ticket, Failure> {
        let case_key = values.get("case.key").unwrap_or_default();
        let mut labels = self.settings.labels.clone();
        if !case_key.is_empty() && !labels.iter().any(|l| l == case_key) {
            labels.push(case_key.to_owned());
        }
        let mut fields = serde_json::Map::new();
        fields.insert("project".into(), json!({ "key": project }));
        fields.insert("issuetype".into(), json!({ "name": self.settings.issue_type }));
        fields.insert(
            "summary".into(),
            json!(super::truncate(&self.templates.summary.render(values), MAX_SUMMARY_CHARS)),
        );
        let description = super::truncate(&self.templates.description.render(values), super::MAX_FIELD_CHARS);
        fields.insert("description".into(), self.text(&description));
        fields.insert("labels".into(), json!(labels));
        let severity_name = severity.map(|s| s.to_string().to_ascii_lowercase());
        if let Some(priority) = severity_name.and_then(|s| self.settings.priorities.get(&s)) {
            fields.insert("priority".into(), json!({ "name": priority }));
        }
        for (field, template) in &self.templates.fields {
            fields.insert(
                field.clone(),
                json!(super::truncate(&template.render(values), super::MAX_FIELD_CHARS)),
            );
        }
        let created = self
            .http
            .send_json(reqwest::Method::POST, &format!("{}/issue", self.api), &json!({ "fields": fields }))
            .await?;
        let key = created
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::bad_answer("created issue without key"))?;
        Ok(Ticket {
            url: format!("{}/browse/{key}", self.base),
            id: created.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
            key: key.to_owned(),
            state: None,
        })
    }

    /// Adds the comment of a delivery, once: a comment carrying the
    /// delivery's marker is not added again (a retry after a crash).
    pub async fn comment(&self, key: &str, values: &Values, marker: &str) -> Result<(), Failure> {
        let url = format!("{}/issue/{key}/comment", self.api);
        let existing = self.http.get_json(&url, &[("orderBy", "-created"), ("maxResults", "100")]).await?;
        let comments = existing
            .get("comments")
            .and_then(Value::as_array)
            .ok_or_else(|| Failure::bad_answer("comments answer without comments"))?;
        let seen = comments.iter().any(|c| c.get("body").is_some_and(|b| contains_text(b, marker)));
        if seen {
            return Ok(());
        }
        let comment = super::truncate(&self.templates.comment.render(values), super::MAX_FIELD_CHARS);
        let text = format!("{comment}\n\n[{marker}]");
        self.http.send_json(reqwest::Method::POST, &url, &json!({ "body": self.text(&text) })).await?;
        Ok(())
    }

    /// The transition named `name` the workflow offers the issue now
    /// (its id and the status it leads to); `None` when there is none.
    pub async fn find_transition(
        &self,
        key: &str,
        name: &str,
    ) -> Result<Option<(String, TicketState)>, Failure> {
        let url = format!("{}/issue/{key}/transitions", self.api);
        let offered = self.http.get_json(&url, &[]).await?;
        let transitions = offered
            .get("transitions")
            .and_then(Value::as_array)
            .ok_or_else(|| Failure::bad_answer("transitions answer without transitions"))?;
        Ok(transitions
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str).is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .map(|t| {
                let id = t.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
                (id, t.get("to").map(status_of).unwrap_or_else(|| TicketState::named(name)))
            }))
    }

    /// Makes the transition `id`.
    pub async fn transition(&self, key: &str, id: &str) -> Result<(), Failure> {
        let url = format!("{}/issue/{key}/transitions", self.api);
        self.http.send_json(reqwest::Method::POST, &url, &json!({ "transition": { "id": id } })).await?;
        Ok(())
    }

    /// The status of one issue now, read from the issue itself (not from
    /// search, whose index may lag).
    pub async fn state(&self, key: &str) -> Result<TicketState, Failure> {
        let url = format!("{}/issue/{key}", self.api);
        let body = self.http.get_json(&url, &[("fields", STATE_FIELDS)]).await?;
        body.get("fields")
            .and_then(state_of_fields)
            .ok_or_else(|| Failure::bad_answer("issue answer without fields.status"))
    }

    /// The status of each issue of `keys` (at most 50). JQL refuses a
    /// whole `key in (...)` query when one issue was deleted or moved
    /// (400): the keys are then read one by one and the missing ones skipped.
    pub async fn states(&self, keys: &[String]) -> Result<Vec<(String, TicketState)>, Failure> {
        match self.states_of(keys).await {
            Err(f) if f.http_status == Some(400) && keys.len() > 1 => {
                let mut found = Vec::new();
                for key in keys {
                    match self.states_of(std::slice::from_ref(key)).await {
                        Ok(states) => found.extend(states),
                        Err(f) if f.http_status == Some(400) => {
                            tracing::warn!(key = %key, "linked Jira issue not found; it was deleted or moved");
                        }
                        Err(f) => return Err(f),
                    }
                }
                Ok(found)
            }
            other => other,
        }
    }

    async fn states_of(&self, keys: &[String]) -> Result<Vec<(String, TicketState)>, Failure> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let list = keys.iter().map(|k| jql_string(k)).collect::<Vec<_>>().join(", ");
        let jql = format!("key in ({list})");
        let max = keys.len().to_string();
        let query = [("jql", jql.as_str()), ("fields", STATE_FIELDS), ("maxResults", max.as_str())];
        let body = self.http.get_json(&self.search_url(), &query).await?;
        Ok(issues(&body)?
            .iter()
            .filter_map(|i| self.ticket(i))
            .filter_map(|t| Some((t.key, t.state?)))
            .collect())
    }
}

/// Issues per page of a search for changed issues.
const CHANGED_PAGE: usize = 100;

impl Jira {
    /// The status of the issues of `projects` (at most 20) updated in the
    /// last `minutes`: `project in (...) AND updated >= -<minutes>m`. The
    /// relative date is Jira's own clock, so no time zone is involved. At
    /// most `max_pages` pages are read; the flag says whether that was all.
    pub async fn changed_since(
        &self,
        projects: &[String],
        minutes: i64,
        max_pages: usize,
    ) -> Result<(Vec<(String, TicketState)>, bool), Failure> {
        if projects.is_empty() {
            return Ok((Vec::new(), true));
        }
        let list = projects.iter().map(|p| jql_string(p)).collect::<Vec<_>>().join(", ");
        let jql = format!("project in ({list}) AND updated >= -{}m ORDER BY updated ASC", minutes.max(1));
        let page_size = CHANGED_PAGE.to_string();
        let mut found = Vec::new();
        let mut start_at = 0usize;
        let mut token: Option<String> = None;
        for _ in 0..max_pages {
            let start = start_at.to_string();
            let mut query =
                vec![("jql", jql.as_str()), ("fields", STATE_FIELDS), ("maxResults", page_size.as_str())];
            let jql_api = self.deployment == Deployment::Cloud && self.settings.search == SearchApi::Jql;
            if jql_api {
                if let Some(t) = &token {
                    query.push(("nextPageToken", t.as_str()));
                }
            } else {
                query.push(("startAt", start.as_str()));
            }
            let body = self.http.get_json(&self.search_url(), &query).await?;
            let page = issues(&body)?;
            let n = page.len();
            found.extend(page.iter().filter_map(|i| self.ticket(i)).filter_map(|t| Some((t.key, t.state?))));
            let last = if jql_api {
                token = body.get("nextPageToken").and_then(Value::as_str).map(str::to_owned);
                body.get("isLast").and_then(Value::as_bool).unwrap_or(token.is_none()) || token.is_none()
            } else {
                start_at += n;
                let total = body.get("total").and_then(Value::as_u64).unwrap_or(0);
                n == 0 || start_at as u64 >= total
            };
            if last {
                return Ok((found, true));
            }
        }
        Ok((found, false))
    }
}

/// The `issues` of a search answer; an answer without them is not "none found".
fn issues(body: &Value) -> Result<&Vec<Value>, Failure> {
    body.get("issues")
        .and_then(Value::as_array)
        .ok_or_else(|| Failure::bad_answer("search answer without issues"))
}

/// The fields read for an issue's state.
const STATE_FIELDS: &str = "status,resolution";

/// An issue's state from its `fields`: the status, and the resolution's
/// name when it has one (`fields.resolution` is null while unresolved).
fn state_of_fields(fields: &Value) -> Option<TicketState> {
    let mut state = status_of(fields.get("status")?);
    let resolution = fields.get("resolution").and_then(|r| r.get("name")).and_then(Value::as_str);
    state.resolution = super::truncate(resolution.unwrap_or_default(), super::MAX_RESOLUTION_CHARS);
    Some(state)
}

/// A Jira `status` object: name and category key (`new`,
/// `indeterminate`, `done`).
pub fn status_of(status: &Value) -> TicketState {
    let name = status.get("name").and_then(Value::as_str).unwrap_or_default();
    let category = status.get("statusCategory").and_then(|c| c.get("key")).and_then(Value::as_str);
    TicketState {
        name: name.to_owned(),
        category: match category {
            Some("new") => super::Category::Open,
            Some("indeterminate") => super::Category::InProgress,
            Some("done") => super::Category::Done,
            _ => category_from_name(name),
        },
        resolution: String::new(),
    }
}

/// Plain text as an Atlassian Document Format document: a paragraph per
/// paragraph, hard breaks for single newlines.
pub fn adf(text: &str) -> Value {
    let paragraphs: Vec<Value> = text
        .split("\n\n")
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut content = Vec::new();
            for (i, line) in p.split('\n').enumerate() {
                if i > 0 {
                    content.push(json!({ "type": "hardBreak" }));
                }
                if !line.is_empty() {
                    content.push(json!({ "type": "text", "text": line }));
                }
            }
            json!({ "type": "paragraph", "content": content })
        })
        .collect();
    json!({ "type": "doc", "version": 1, "content": paragraphs })
}

/// Whether a comment body (ADF or plain text) contains `needle`.
fn contains_text(body: &Value, needle: &str) -> bool {
    match body {
        Value::String(s) => s.contains(needle),
        Value::Array(items) => items.iter().any(|v| contains_text(v, needle)),
        Value::Object(map) => map.values().any(|v| contains_text(v, needle)),
        _ => false,
    }
}

/// What an inbound Jira webhook (`jira:issue_updated`) says: the issue key
/// and its status now.
pub fn parse_webhook(body: &Value) -> Option<(String, TicketState)> {
    let issue = body.get("issue")?;
    let key = issue.get("key")?.as_str()?.to_owned();
    let status = issue.get("fields")?.get("status")?;
    Some((key, status_of(status)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adf_has_paragraphs_and_hard_breaks() {
        let doc = adf("one\ntwo\n\nthree");
        assert_eq!(doc["type"], "doc");
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["content"].as_array().map(Vec::len), Some(2));
        assert_eq!(doc["content"][0]["content"][1]["type"], "hardBreak");
        assert_eq!(doc["content"][1]["content"][0]["text"], "three");
        assert!(contains_text(&doc, "two"));
        assert!(!contains_text(&doc, "four"));
    }

    #[test]
    fn jql_literals_are_quoted_and_escaped() {
        assert_eq!(jql_string("PSIRT-2026-0001"), "\"PSIRT-2026-0001\"");
        assert_eq!(jql_string("a\"b\\"), "\"a\\\"b\\\\\"");
    }

    #[test]
    fn statuses_map_by_category_then_name() {
        let s = status_of(&json!({"name": "Fertig", "statusCategory": {"key": "done"}}));
        assert_eq!(s.category, crate::tracker::Category::Done);
        let s = status_of(&json!({"name": "In Progress"}));
        assert_eq!(s.category, crate::tracker::Category::InProgress);
    }

    #[test]
    fn webhooks_give_key_and_status() {
        let body = json!({"webhookEvent": "jira:issue_updated",
            "issue": {"key": "SEC-1", "fields": {"status": {"name": "Done", "statusCategory": {"key": "done"}}}}});
        let (key, state) = parse_webhook(&body).expect("parsed");
        assert_eq!(key, "SEC-1");
        assert_eq!(state.name, "Done");
    }

    /// Jira Data Center: REST v2 paths, plain-text description and
    /// comment, a personal access token as bearer.
    #[tokio::test]
    async fn data_center_speaks_rest_v2_with_plain_text_and_bearer_tokens() {
        use std::sync::{Arc, Mutex};

        use axum::extract::State;
        use axum::http::HeaderMap;
        type Seen = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;
        async fn record(
            State(seen): State<Seen>,
            uri: axum::http::Uri,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> (axum::http::StatusCode, axum::Json<Value>) {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            seen.lock().expect("lock").push((uri.path().to_owned(), auth, body));
            let answer = if uri.path().ends_with("/comment") && uri.query().is_some() {
                json!({"startAt": 0, "maxResults": 100, "total": 0, "comments": []})
            } else {
                json!({"id": "10001", "key": "SEC-7", "self": "x"})
            };
            (axum::http::StatusCode::CREATED, axum::Json(answer))
        }
        let seen: Seen = Arc::default();
        let app = axum::Router::new().fallback(record).with_state(Arc::clone(&seen));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });

        let settings = JiraSettings {
            base_url: format!("http://{addr}"),
            deployment: Deployment::DataCenter,
            auth: AuthMode::Bearer,
            credentials_secret: "jira".into(),
            ..JiraSettings::default()
        };
        let auth = Auth::new(AuthMode::Bearer, b"personal-access-token-0123").expect("auth");
        let jira = Jira::new(&settings, auth, "psirt-test").expect("client");
        let values = Values::default().with("case.key", "PSIRT-2026-0042").with("case.title", "Overflow");
        let ticket = jira.create("SEC", &values, Some(CvssSeverity::Critical)).await.expect("created");
        assert_eq!(ticket.key, "SEC-7");
        assert_eq!(ticket.url, format!("http://{addr}/browse/SEC-7"));
        jira.comment("SEC-7", &values, "psirt-delivery:d1").await.expect("commented");

        let seen = seen.lock().expect("lock").clone();
        let paths: Vec<&str> = seen.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            ["/rest/api/2/issue", "/rest/api/2/issue/SEC-7/comment", "/rest/api/2/issue/SEC-7/comment"]
        );
        assert!(seen.iter().all(|(_, a, _)| a.as_deref() == Some("Bearer personal-access-token-0123")));
        let fields = &seen[0].2["fields"];
        assert!(fields["description"].as_str().is_some_and(|d| d.contains("PSIRT-2026-0042")), "{fields}");
        assert_eq!(fields["priority"]["name"], "Highest");
        assert_eq!(fields["labels"], json!(["psirt", "PSIRT-2026-0042"]));
        let comment = seen[2].2["body"].as_str().expect("a plain-text comment");
        assert!(comment.contains("psirt-delivery:d1"), "{comment}");
    }

    /// A deleted issue makes JQL refuse `key in (...)`: the others are
    /// still read back.
    #[tokio::test]
    async fn reconciliation_skips_issues_jira_no_longer_knows() {
        async fn search(
            axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
        ) -> (axum::http::StatusCode, axum::Json<Value>) {
            let jql = q.get("jql").cloned().unwrap_or_default();
            if jql.contains("SEC-9") {
                let error =
                    json!({"errorMessages": ["An issue with key 'SEC-9' does not exist for field 'key'."]});
                return (axum::http::StatusCode::BAD_REQUEST, axum::Json(error));
            }
            let issues: Vec<Value> = ["SEC-1", "SEC-2"]
                .iter()
                .filter(|k| jql.contains(*k))
                .map(|k| json!({"id": "1", "key": k, "fields": {"status": {"name": "Done", "statusCategory": {"key": "done"}}}}))
                .collect();
            (axum::http::StatusCode::OK, axum::Json(json!({"issues": issues})))
        }
        let app = axum::Router::new().route("/rest/api/3/search/jql", axum::routing::get(search));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let settings = JiraSettings { base_url: format!("http://{addr}"), ..JiraSettings::default() };
        let jira = Jira::new(&settings, Auth::new(AuthMode::Basic, b"bot:token").expect("auth"), "t")
            .expect("client");
        let keys = ["SEC-1", "SEC-9", "SEC-2"].map(str::to_owned);
        let states = jira.states(&keys).await.expect("read back");
        let found: Vec<&str> = states.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(found, ["SEC-1", "SEC-2"]);
        assert!(states.iter().all(|(_, s)| s.category == crate::tracker::Category::Done));
    }

    #[test]
    fn settings_problems_name_their_keys() {
        let mut s = JiraSettings {
            base_url: "https://jira.example.com".into(),
            credentials_secret: "jira".into(),
            ..JiraSettings::default()
        };
        assert!(s.problems(&|n| n == "jira").is_empty(), "{:?}", s.problems(&|n| n == "jira"));
        s.summary = "{{case.nope}}".into();
        s.priorities.insert("urgent".into(), "P1".into());
        s.transitions.insert("shipped".into(), "Done".into());
        s.credentials_secret = "missing".into();
        let keys: Vec<String> = s.problems(&|n| n == "jira").into_iter().map(|(k, _)| k).collect();
        for k in ["summary", "priorities.urgent", "transitions.shipped", "credentials_secret"] {
            assert!(keys.iter().any(|x| x == k), "{k} in {keys:?}");
        }
    }
}
