//! The ServiceNow adapter, over the Table API.
//!
//! Requests: `GET /api/now/table/{table}?sysparm_query=...` to find a
//! case's record by its correlation field and to read the state of linked
//! records, `POST /api/now/table/{table}` to create, `PATCH
//! /api/now/table/{table}/{sys_id}` to add a work note and set the state,
//! `GET /api/now/table/sys_journal_field` to see whether a work note of a
//! delivery exists already. Answers are wrapped in `{"result": ...}`.
//! Rate limits answer 429 with `Retry-After`, which the delivery's retry
//! honours.

use std::collections::BTreeMap;
use std::time::Duration;

use psirt_domain::CvssSeverity;
use psirt_domain::template::{Template, Values};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Auth, AuthMode, Category, Failure, Http, Link, Ticket, TicketState, category_from_name};

/// `[servicenow]`: the instance and what records say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceNowSettings {
    /// Instance URL, e.g. `https://example.service-now.com`; empty:
    /// ServiceNow is off.
    pub base_url: String,
    /// `basic` (secret `user:password`) or `bearer` (an OAuth access token).
    pub auth: AuthMode,
    /// Name of the secret in `[secrets]` holding the credentials.
    pub credentials_secret: String,
    /// Events that create the case's record when it has none yet.
    pub create_on: Vec<String>,
    /// The field holding the case key, searched before creating (so a crash
    /// between creating and linking never makes a second record).
    pub correlation_field: String,
    /// Fields of created records, by name, as templates.
    pub fields: BTreeMap<String, String>,
    /// The field set from the severity, and its value per severity
    /// (`critical`, `high`, `medium`, `low`, `none`).
    pub severity_field: String,
    pub severities: BTreeMap<String, String>,
    /// The journal field later events are written to.
    pub notes_field: String,
    /// Template of the note added for each later event.
    pub note: String,
    /// The state field, and its value per case status reached.
    pub state_field: String,
    pub states: BTreeMap<String, String>,
    /// Workflow category of state values (`open`, `in_progress`, `done`),
    /// for the case view; the defaults are the incident table's.
    pub state_categories: BTreeMap<String, String>,
    /// Fields of a record holding how it was resolved, read with its state
    /// and joined (`close_code: close_notes`) as the resolution a
    /// `close_case` rule records on the case; at most 5. The defaults are
    /// the incident table's.
    pub resolution_fields: Vec<String>,
    /// Name of the secret in `[secrets]` that inbound webhooks must carry
    /// (`Authorization: Bearer <secret>`); empty: inbound webhooks are refused.
    pub webhook_secret: String,
    /// Commands driven by state changes of linked records (`status` is the
    /// state value, e.g. `6`).
    pub inbound: Vec<super::InboundRule>,
    /// How often linked records are read back; 0s: never.
    #[serde(with = "psirt_kit::config::duration")]
    pub reconcile_interval: Duration,
    /// Timeout of one request.
    #[serde(with = "psirt_kit::config::duration")]
    pub timeout: Duration,
}

impl Default for ServiceNowSettings {
    fn default() -> Self {
        let map =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Self {
            base_url: String::new(),
            auth: AuthMode::Basic,
            credentials_secret: String::new(),
            create_on: vec!["psirt.events.v1.CaseAccepted".to_owned()],
            correlation_field: "correlation_id".to_owned(),
            fields: map(&[
                ("short_description", "[{{case.key}}] {{case.title}}"),
                (
                    "description",
                    "Security case {{case.key}}: {{case.title}}\nSeverity: {{case.severity}}\nProducts: {{case.products}}\nCVEs: {{case.cves}}",
                ),
            ]),
            severity_field: "urgency".to_owned(),
            severities: map(&[
                ("critical", "1"),
                ("high", "1"),
                ("medium", "2"),
                ("low", "3"),
                ("none", "3"),
            ]),
            notes_field: "work_notes".to_owned(),
            note: "{{event.summary}} ({{event.type}}, {{event.time}}). Case status: {{case.status}}."
                .to_owned(),
            state_field: "state".to_owned(),
            states: BTreeMap::new(),
            state_categories: map(&[
                ("1", "open"),
                ("2", "in_progress"),
                ("3", "in_progress"),
                ("6", "done"),
                ("7", "done"),
                ("8", "done"),
            ]),
            resolution_fields: vec!["close_code".to_owned(), "close_notes".to_owned()],
            webhook_secret: String::new(),
            inbound: Vec::new(),
            reconcile_interval: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }
}

fn field_name_ok(name: &str) -> bool {
    (1..=80).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl ServiceNowSettings {
    pub fn enabled(&self) -> bool {
        !self.base_url.is_empty()
    }

    /// Every problem, as (key relative to `[servicenow]`, problem).
    pub fn problems(&self, secret_names: &dyn Fn(&str) -> bool) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |k: &str, p: String| out.push((k.to_owned(), p));
        if !self.enabled() {
            return out;
        }
        super::common_settings!(self).problems(secret_names, &mut push);
        for (key, name) in [
            ("correlation_field", &self.correlation_field),
            ("severity_field", &self.severity_field),
            ("notes_field", &self.notes_field),
            ("state_field", &self.state_field),
        ] {
            if !field_name_ok(name) {
                push(key, "must be a field name (a-z, 0-9, _)".to_owned());
            }
        }
        if self.resolution_fields.len() > 5 {
            push("resolution_fields", "at most 5 fields".to_owned());
        }
        for (i, field) in self.resolution_fields.iter().enumerate() {
            if !field_name_ok(field) {
                push(&format!("resolution_fields[{i}]"), "must be a field name (a-z, 0-9, _)".to_owned());
            }
        }
        for (field, text) in &self.fields {
            if !field_name_ok(field) {
                push(&format!("fields.{field}"), "must be a field name (a-z, 0-9, _)".to_owned());
            }
            if let Err(e) = Template::parse(text) {
                push(&format!("fields.{field}"), e.to_string());
            }
        }
        if let Err(e) = Template::parse(&self.note) {
            push("note", e.to_string());
        }
        for severity in self.severities.keys() {
            if !super::jira::SEVERITIES.contains(&severity.as_str()) {
                push(
                    &format!("severities.{severity}"),
                    format!("must be one of {}", super::jira::SEVERITIES.join(", ")),
                );
            }
        }
        for status in self.states.keys() {
            if super::parse_case_status(status).is_none() {
                push(&format!("states.{status}"), "must be a case status such as fixed".to_owned());
            }
        }
        for (value, category) in &self.state_categories {
            if category_named(category).is_none() {
                push(&format!("state_categories.{value}"), "must be open, in_progress or done".to_owned());
            }
        }
        out
    }
}

pub struct ServiceNow {
    http: Http,
    base: String,
    settings: ServiceNowSettings,
    fields: Vec<(String, Template)>,
    note: Template,
}

fn category_named(name: &str) -> Option<Category> {
    match name {
        "open" => Some(Category::Open),
        "in_progress" => Some(Category::InProgress),
        "done" => Some(Category::Done),
        _ => None,
    }
}

/// A state value with its category from `state_categories`, else guessed
/// from `display` (the state's label, when the peer sent one).
pub fn state_of(settings: &ServiceNowSettings, value: &str, display: &str) -> TicketState {
    let category = settings
        .state_categories
        .get(value)
        .and_then(|c| category_named(c))
        .unwrap_or_else(|| category_from_name(display));
    TicketState { name: value.to_owned(), category, resolution: String::new() }
}

/// The `result` records of a Table API answer; an answer without them is not "none found".
fn records(body: &Value) -> Result<&Vec<Value>, Failure> {
    body.get("result")
        .and_then(Value::as_array)
        .ok_or_else(|| Failure::bad_answer("answer without result records"))
}

/// An encoded-query value: `^` separates terms, so it cannot be in one.
fn query_value(s: &str) -> String {
    s.replace('^', "")
}

impl ServiceNow {
    pub fn new(settings: &ServiceNowSettings, auth: Auth, user_agent: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: Http::new(auth, user_agent, settings.timeout)?,
            base: settings.base_url.trim_end_matches('/').to_owned(),
            fields: settings
                .fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), Template::parse(v)?)))
                .collect::<anyhow::Result<_>>()?,
            note: Template::parse(&settings.note)?,
            settings: settings.clone(),
        })
    }

    pub fn settings(&self) -> &ServiceNowSettings {
        &self.settings
    }

    fn table_url(&self, table: &str) -> String {
        format!("{}/api/now/table/{table}", self.base)
    }

    fn ticket(&self, table: &str, record: &Value) -> Option<Ticket> {
        let sys_id = record.get("sys_id")?.as_str()?.to_owned();
        let number = record.get("number").and_then(Value::as_str).unwrap_or(&sys_id).to_owned();
        let resolution = self
            .settings
            .resolution_fields
            .iter()
            .filter_map(|f| record.get(f).and_then(Value::as_str))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        let state = record.get(&self.settings.state_field).and_then(Value::as_str).map(|v| TicketState {
            resolution: super::truncate(&resolution, super::MAX_RESOLUTION_CHARS),
            ..state_of(&self.settings, v, "")
        });
        Some(Ticket {
            url: format!("{}/{table}.do?sys_id={sys_id}", self.base),
            id: sys_id,
            key: number,
            state,
        })
    }

    fn fields_param(&self) -> String {
        let mut fields = format!("sys_id,number,{}", self.settings.state_field);
        for f in &self.settings.resolution_fields {
            fields.push(',');
            fields.push_str(f);
        }
        fields
    }

    /// The record of a case in `table`, by the correlation field.
    pub async fn find(&self, table: &str, case_key: &str) -> Result<Option<Ticket>, Failure> {
        let query = format!("{}={}", self.settings.correlation_field, query_value(case_key));
        let fields = self.fields_param();
        let params =
            [("sysparm_query", query.as_str()), ("sysparm_fields", fields.as_str()), ("sysparm_limit", "1")];
        let body = self.http.get_json(&self.table_url(table), &params).await?;
        Ok(records(&body)?.first().and_then(|r| self.ticket(table, r)))
    }

    /// Creates the record of a case.
    pub async fn create(
        &self,
        table: &str,
        values: &Values,
        severity: Option<CvssSeverity>,
    ) -> Result<Ticket, Failure> {
        let mut record = serde_json::Map::new();
        for (field, template) in &self.fields {
            record.insert(
                field.clone(),
                json!(super::truncate(&template.render(values), super::MAX_FIELD_CHARS)),
            );
        }
        record.insert(
            self.settings.correlation_field.clone(),
            json!(values.get("case.key").unwrap_or_default()),
        );
        let severity = severity.map(|s| s.to_string().to_ascii_lowercase());
        if let Some(value) = severity.and_then(|s| self.settings.severities.get(&s)) {
            record.insert(self.settings.severity_field.clone(), json!(value));
        }
        let body = self
            .http
            .send_json(reqwest::Method::POST, &self.table_url(table), &Value::Object(record))
            .await?;
        body.get("result")
            .and_then(|r| self.ticket(table, r))
            .ok_or_else(|| Failure::bad_answer("created record without sys_id"))
    }

    /// The state of one record now, read from the record itself.
    pub async fn state(&self, link: &Link) -> Result<TicketState, Failure> {
        let table = Self::table_of(link).ok_or_else(|| Failure::permanent("link URL names no table"))?;
        let url = format!("{}/{}", self.table_url(table), link.sys_id);
        let fields = self.fields_param();
        let body = self.http.get_json(&url, &[("sysparm_fields", fields.as_str())]).await?;
        body.get("result")
            .and_then(|r| self.ticket(table, r))
            .and_then(|t| t.state)
            .ok_or_else(|| Failure::bad_answer("record answer without state"))
    }

    /// The table of a linked record, from its URL (`{base}/{table}.do?sys_id=`).
    pub fn table_of(link: &Link) -> Option<&str> {
        let path = link.url.split(".do?").next()?;
        let table = path.rsplit('/').next()?;
        (!table.is_empty()).then_some(table)
    }

    /// Adds the note of a delivery (once: a note with its marker is not
    /// added again) and sets the state when `state` is given. Returns the
    /// state set.
    pub async fn update(
        &self,
        link: &Link,
        values: &Values,
        marker: &str,
        state: Option<&str>,
    ) -> Result<Option<TicketState>, Failure> {
        let table = Self::table_of(link).ok_or_else(|| Failure::permanent("link URL names no table"))?;
        let journal = format!("{}/api/now/table/sys_journal_field", self.base);
        let query = format!("element_id={}^valueLIKE{}", query_value(&link.sys_id), query_value(marker));
        let params =
            [("sysparm_query", query.as_str()), ("sysparm_fields", "sys_id"), ("sysparm_limit", "1")];
        let existing = self.http.get_json(&journal, &params).await?;
        let noted = !records(&existing)?.is_empty();
        let mut patch = serde_json::Map::new();
        if !noted {
            patch.insert(
                self.settings.notes_field.clone(),
                json!(format!(
                    "{}\n[{marker}]",
                    super::truncate(&self.note.render(values), super::MAX_FIELD_CHARS)
                )),
            );
        }
        if let Some(state) = state {
            patch.insert(self.settings.state_field.clone(), json!(state));
        }
        if patch.is_empty() {
            return Ok(None);
        }
        let url = format!("{}/{}", self.table_url(table), link.sys_id);
        self.http.send_json(reqwest::Method::PATCH, &url, &Value::Object(patch)).await?;
        Ok(state.map(|v| state_of(&self.settings, v, "")))
    }

    /// The state of each record of `sys_ids` in `table` (at most 50), by sys_id.
    pub async fn states(
        &self,
        table: &str,
        sys_ids: &[String],
    ) -> Result<Vec<(String, TicketState)>, Failure> {
        if sys_ids.is_empty() {
            return Ok(Vec::new());
        }
        let query =
            format!("sys_idIN{}", sys_ids.iter().map(|s| query_value(s)).collect::<Vec<_>>().join(","));
        let fields = self.fields_param();
        let limit = sys_ids.len().to_string();
        let params = [
            ("sysparm_query", query.as_str()),
            ("sysparm_fields", fields.as_str()),
            ("sysparm_limit", limit.as_str()),
        ];
        let body = self.http.get_json(&self.table_url(table), &params).await?;
        Ok(records(&body)?
            .iter()
            .filter_map(|r| self.ticket(table, r))
            .filter_map(|t| Some((t.id, t.state?)))
            .collect())
    }
}

/// Records per page of a query for changed records.
const CHANGED_PAGE: usize = 100;

impl ServiceNow {
    /// The state of the records of `table` with a correlation value (ours)
    /// updated in the last `minutes`, by sys_id:
    /// `sys_updated_on>=javascript:gs.minutesAgoStart(<minutes>)`, the
    /// instance's own clock, so no time zone is involved. At most
    /// `max_pages` pages are read; the flag says whether that was all.
    pub async fn changed_since(
        &self,
        table: &str,
        minutes: i64,
        max_pages: usize,
    ) -> Result<(Vec<(String, TicketState)>, bool), Failure> {
        let query = format!(
            "sys_updated_on>=javascript:gs.minutesAgoStart({})^{}ISNOTEMPTY^ORDERBYsys_updated_on",
            minutes.max(1),
            self.settings.correlation_field
        );
        let fields = self.fields_param();
        let limit = CHANGED_PAGE.to_string();
        let mut found = Vec::new();
        for page in 0..max_pages {
            let offset = (page * CHANGED_PAGE).to_string();
            let params = [
                ("sysparm_query", query.as_str()),
                ("sysparm_fields", fields.as_str()),
                ("sysparm_limit", limit.as_str()),
                ("sysparm_offset", offset.as_str()),
            ];
            let body = self.http.get_json(&self.table_url(table), &params).await?;
            let records = records(&body)?;
            found.extend(
                records.iter().filter_map(|r| self.ticket(table, r)).filter_map(|t| Some((t.id, t.state?))),
            );
            if records.len() < CHANGED_PAGE {
                return Ok((found, true));
            }
        }
        Ok((found, false))
    }
}

/// What an inbound ServiceNow webhook says: `{"sys_id": ..., "state": ...}`
/// (a business rule or flow posting the record's sys_id and state).
pub fn parse_webhook(settings: &ServiceNowSettings, body: &Value) -> Option<(String, TicketState)> {
    let record = body.get("result").unwrap_or(body);
    let sys_id = record.get("sys_id")?.as_str()?.to_owned();
    let state = match record.get(&settings.state_field).or_else(|| record.get("state"))? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let display = record.get("state_name").and_then(Value::as_str).unwrap_or_default();
    Some((sys_id, state_of(settings, &state, display)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_comes_from_the_link_url() {
        let link = Link { url: "https://x.service-now.com/incident.do?sys_id=abc".into(), ..Link::default() };
        assert_eq!(ServiceNow::table_of(&link), Some("incident"));
    }

    #[test]
    fn webhooks_give_sys_id_and_state() {
        let settings = ServiceNowSettings::default();
        let (id, state) = parse_webhook(&settings, &json!({"sys_id": "abc", "state": 6})).expect("parsed");
        assert_eq!(id, "abc");
        assert_eq!(state.name, "6");
        assert_eq!(state.category, Category::Done, "incident state 6 is Resolved");
        let custom = json!({"sys_id": "abc", "state": "42", "state_name": "In Review"});
        let (_, custom) = parse_webhook(&settings, &custom).expect("parsed");
        assert_eq!(custom.category, Category::InProgress, "unknown values fall back to the label");
    }

    #[test]
    fn settings_problems_name_their_keys() {
        let mut s = ServiceNowSettings {
            base_url: "https://x.service-now.com".into(),
            credentials_secret: "sn".into(),
            ..ServiceNowSettings::default()
        };
        assert!(s.problems(&|n| n == "sn").is_empty(), "{:?}", s.problems(&|n| n == "sn"));
        s.fields.insert("Bad Field".into(), "{{case.key}}".into());
        s.states.insert("shipped".into(), "6".into());
        let keys: Vec<String> = s.problems(&|n| n == "sn").into_iter().map(|(k, _)| k).collect();
        assert!(keys.contains(&"fields.Bad Field".to_owned()), "{keys:?}");
        assert!(keys.contains(&"states.shipped".to_owned()), "{keys:?}");
    }
}
