//! The e-mail channel: one plain-text message per delivery, sent over SMTP
//! to every recipient of the subscription's endpoint.
//!
//! Subject and body are [`Template`]s over the case and the event (`[email]`
//! `subject` and `body`, overridable per event type in `[email.templates]`).
//! Every message carries `Message-ID: <{delivery.id}@psirt.notification>`:
//! the delivery id is stable across attempts, so a recipient (or a mail
//! filter) can recognise a resend of the same delivery.
//!
//! Classification: SMTP 4xx replies, connection errors, TLS errors and
//! timeouts are retryable; 5xx replies (e.g. `550` for an unknown mailbox)
//! are permanent. The relay's password never appears in an error.
//!
//! The relay credentials (`credentials_secret`) are read again when their
//! secret file changes: the next message authenticates with the new value,
//! without a restart. A changed value that is not `user:password` is refused
//! with a warning and the last good one stays in use.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use psirt_domain::notification::{
    AttemptKind, AttemptResult, EVENTS_PACKAGE, MAX_EVENT_TYPE_CHARS, email_recipients,
};
use psirt_domain::template::{Template, Values};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::secrets::{SecretSource, Secrets};

/// The domain part of every Message-ID.
pub const MESSAGE_ID_DOMAIN: &str = "psirt.notification";

/// The default subject template.
pub const DEFAULT_SUBJECT: &str = "[{{case.key}}] {{event.summary}}";

/// The default body template.
pub const DEFAULT_BODY: &str = "\
{{event.summary}}

Case:      {{case.key}} {{case.title}}
Status:    {{case.status}}
Severity:  {{case.severity}}
Products:  {{case.products}}
CVEs:      {{case.cves}}
Link:      {{case.link}}

Event:     {{event.type}} at {{event.time}}
Delivery:  {{delivery.id}}
";

/// Most override entries in `[email.templates]`.
pub const MAX_TEMPLATE_OVERRIDES: usize = 500;

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmailSecurity {
    /// Plain connection upgraded with STARTTLS; refused if the relay does
    /// not offer it (no silent downgrade). Usually port 587.
    #[default]
    #[serde(rename = "starttls")]
    StartTls,
    /// Implicit TLS from the first byte ("SMTPS"). Usually port 465.
    #[serde(rename = "tls")]
    Tls,
    /// No encryption at all: only for a relay on the loopback interface.
    #[serde(rename = "none")]
    Plain,
}

/// Subject and/or body for one event type; an omitted one falls back to
/// `[email]` `subject` / `body`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateOverride {
    /// Subject template for this event type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Body template for this event type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// `[email]`: the SMTP relay and the templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailSettings {
    /// Host name or IP address of the SMTP relay. With TLS the certificate
    /// must be valid for this name.
    pub host: String,
    /// TCP port of the relay: 587 for `starttls`, 465 for `tls`.
    pub port: u16,
    /// `starttls` (default; STARTTLS required), `tls` (implicit TLS) or
    /// `none` (plain text; only allowed for a loopback host).
    pub security: EmailSecurity,
    /// The sender: `psirt@example.com` or `PSIRT <psirt@example.com>`.
    pub from: String,
    /// Name of a secret in `[secrets]` holding `user:password` for SMTP
    /// AUTH; omitted: no authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// Timeout of one message: connect, TLS, every command and the data.
    #[serde(with = "psirt_kit::config::duration")]
    pub timeout: Duration,
    /// Most messages in flight at once (connections to the relay).
    pub max_concurrency: usize,
    /// Subject template (one line); see `psirt_domain::template` for the names.
    pub subject: String,
    /// Plain-text body template.
    pub body: String,
    /// Per-event-type overrides, keyed by fully-qualified event type
    /// (`psirt.events.v1.CaseAccepted`).
    pub templates: BTreeMap<String, TemplateOverride>,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 587,
            security: EmailSecurity::StartTls,
            from: "psirt@localhost".to_owned(),
            credentials_secret: None,
            timeout: Duration::from_secs(10),
            max_concurrency: 4,
            subject: DEFAULT_SUBJECT.to_owned(),
            body: DEFAULT_BODY.to_owned(),
            templates: BTreeMap::new(),
        }
    }
}

/// Is `host` the loopback interface?
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A host name (RFC 1123 labels) or an IP address.
fn valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// A fully-qualified event type name: `psirt.events.v1.<UpperCamel>`.
fn valid_event_type(t: &str) -> bool {
    t.chars().count() <= MAX_EVENT_TYPE_CHARS
        && t.strip_prefix(EVENTS_PACKAGE).and_then(|r| r.strip_prefix('.')).is_some_and(|name| {
            let mut chars = name.chars();
            chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())
        })
}

fn subject_problem(source: &str) -> Option<String> {
    if source.contains(['\r', '\n']) {
        return Some("must be one line".to_owned());
    }
    if source.trim().is_empty() {
        return Some("must not be empty".to_owned());
    }
    Template::parse(source).err().map(|e| e.to_string())
}

fn body_problem(source: &str) -> Option<String> {
    Template::parse(source).err().map(|e| e.to_string())
}

impl EmailSettings {
    /// Every problem, as (key, problem); keys are relative to `[email]`.
    pub fn problems(&self, secrets: &BTreeMap<String, SecretSource>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |key: &str, problem: String| out.push((key.to_owned(), problem));
        if !valid_host(&self.host) {
            push("host", "must be a host name or an IP address".to_owned());
        }
        if self.port == 0 {
            push("port", "must be between 1 and 65535".to_owned());
        }
        if self.security == EmailSecurity::Plain && !is_loopback(&self.host) {
            push(
                "security",
                format!(
                    "\"none\" sends mail (and credentials) in plain text: only allowed for a loopback host, \
                     not {:?}; use \"starttls\" or \"tls\"",
                    self.host
                ),
            );
        }
        if let Err(e) = self.from.parse::<Mailbox>() {
            push("from", format!("must be an e-mail address such as psirt@example.com: {e}"));
        }
        if let Some(name) = &self.credentials_secret {
            if !secrets.contains_key(name) {
                push("credentials_secret", format!("names no secret in [secrets]: {name:?}"));
            }
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(300)).contains(&self.timeout) {
            push("timeout", "must be between 100ms and 5m".to_owned());
        }
        if !(1..=1000).contains(&self.max_concurrency) {
            push("max_concurrency", "must be between 1 and 1000".to_owned());
        }
        if let Some(problem) = subject_problem(&self.subject) {
            push("subject", problem);
        }
        if let Some(problem) = body_problem(&self.body) {
            push("body", problem);
        }
        if self.templates.len() > MAX_TEMPLATE_OVERRIDES {
            push("templates", format!("at most {MAX_TEMPLATE_OVERRIDES} event types"));
        }
        for (event_type, o) in &self.templates {
            let key = format!("templates.{event_type:?}");
            if !valid_event_type(event_type) {
                push(
                    &key,
                    format!("must be a fully-qualified event type such as {EVENTS_PACKAGE}.CaseAccepted"),
                );
            }
            if let Some(problem) = o.subject.as_deref().and_then(subject_problem) {
                push(&format!("{key}.subject"), problem);
            }
            if let Some(problem) = o.body.as_deref().and_then(body_problem) {
                push(&format!("{key}.body"), problem);
            }
        }
        out
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): auto-responders stay quiet.
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

#[derive(Debug)]
struct Templates {
    subject: Template,
    body: Template,
}

/// Sends e-mail deliveries.
#[derive(Clone)]
pub struct Mailer {
    relay: Arc<Relay>,
    from: Mailbox,
    timeout: Duration,
    permits: Arc<Semaphore>,
    default: Arc<Templates>,
    overrides: Arc<BTreeMap<String, Templates>>,
}

/// The connection to the relay, rebuilt when its credentials change.
struct Relay {
    /// Everything but the credentials.
    builder: AsyncSmtpTransportBuilder,
    /// The secret holding `user:password`, with the secrets to read it from.
    credentials: Option<(String, Secrets)>,
    current: Mutex<Connection>,
}

#[derive(Clone)]
struct Connection {
    /// The secret's text this transport authenticates with.
    credentials: Option<String>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// Texts that must never appear in an error (the relay password).
    redact: Arc<Vec<String>>,
}

/// `user:password` split, refused without a user.
fn split_credentials(text: &str) -> Option<(&str, &str)> {
    text.split_once(':').filter(|(user, _)| !user.is_empty())
}

impl Relay {
    fn connect(builder: &AsyncSmtpTransportBuilder, credentials: Option<&str>) -> Option<Connection> {
        let mut builder = builder.clone();
        let mut redact = Vec::new();
        if let Some(text) = credentials {
            let (user, password) = split_credentials(text)?;
            redact.push(text.to_owned());
            if !password.is_empty() {
                redact.push(password.to_owned());
            }
            builder = builder.credentials(Credentials::new(user.to_owned(), password.to_owned()));
        }
        Some(Connection {
            credentials: credentials.map(str::to_owned),
            transport: builder.build(),
            redact: Arc::new(redact),
        })
    }

    /// The connection to use now: rebuilt first when the secret changed.
    fn connection(&self) -> Connection {
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((name, secrets)) = &self.credentials {
            if let Some(value) = secrets.get(name) {
                let text = value.expose_secret();
                if current.credentials.as_deref() != Some(text) {
                    match Self::connect(&self.builder, Some(text)) {
                        Some(next) => {
                            info!(secret = %name, "e-mail relay credentials changed; new connections use them");
                            *current = next;
                        }
                        None => warn!(
                            secret = %name,
                            "the changed relay credentials are not user:password; the last ones stay in use"
                        ),
                    }
                }
            }
        }
        current.clone()
    }
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Mailer {
    /// Parses the templates and sets up the transport; connects lazily, at
    /// the first message. Expects settings that passed [`EmailSettings::problems`].
    pub fn new(settings: &EmailSettings, secrets: &Secrets) -> anyhow::Result<Self> {
        let parse = |key: &str, source: &str| {
            Template::parse(source).with_context(|| format!("email.{key}: invalid template"))
        };
        let default =
            Templates { subject: parse("subject", &settings.subject)?, body: parse("body", &settings.body)? };
        let mut overrides = BTreeMap::new();
        for (event_type, o) in &settings.templates {
            let key = format!("templates.{event_type:?}");
            let subject = match &o.subject {
                Some(s) => parse(&format!("{key}.subject"), s)?,
                None => default.subject.clone(),
            };
            let body = match &o.body {
                Some(s) => parse(&format!("{key}.body"), s)?,
                None => default.body.clone(),
            };
            overrides.insert(event_type.clone(), Templates { subject, body });
        }
        let from: Mailbox = settings
            .from
            .parse()
            .with_context(|| format!("email.from: invalid address {:?}", settings.from))?;
        if settings.security == EmailSecurity::Plain && !is_loopback(&settings.host) {
            bail!("email.security: \"none\" is only allowed for a loopback host");
        }

        let host = settings.host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(settings.port)
            .timeout(Some(settings.timeout));
        builder = match settings.security {
            EmailSecurity::StartTls => builder
                .tls(Tls::Required(TlsParameters::new(host.clone()).context("email: failed to set up TLS")?)),
            EmailSecurity::Tls => {
                builder.tls(Tls::Wrapper(TlsParameters::new(host).context("email: failed to set up TLS")?))
            }
            EmailSecurity::Plain => builder.tls(Tls::None),
        };
        let credentials = match &settings.credentials_secret {
            Some(name) => {
                let raw = secrets.get(name).with_context(|| {
                    format!("email.credentials_secret: secret {name:?} is not configured")
                })?;
                Some((name.clone(), raw.expose_secret().to_owned()))
            }
            None => None,
        };
        let connection = Relay::connect(&builder, credentials.as_ref().map(|(_, text)| text.as_str()))
            .with_context(|| {
                let name = settings.credentials_secret.as_deref().unwrap_or_default();
                format!("email.credentials_secret: secret {name:?} must hold user:password")
            })?;
        let relay = Relay {
            builder,
            credentials: credentials.map(|(name, _)| (name, secrets.clone())),
            current: Mutex::new(connection),
        };
        Ok(Self {
            relay: Arc::new(relay),
            from,
            timeout: settings.timeout,
            permits: Arc::new(Semaphore::new(settings.max_concurrency.max(1))),
            default: Arc::new(default),
            overrides: Arc::new(overrides),
        })
    }

    /// The Message-ID of a delivery: `<{delivery.id}@psirt.notification>`,
    /// the same on every attempt. Without a delivery id a random one.
    pub fn message_id(values: &Values) -> String {
        let id: String = values
            .get("delivery.id")
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            .take(128)
            .collect();
        let id = if id.is_empty() { uuid::Uuid::new_v4().to_string() } else { id };
        format!("<{id}@{MESSAGE_ID_DOMAIN}>")
    }

    /// The subject and body for `event_type` (the override, else the default).
    pub fn render(&self, values: &Values, event_type: &str) -> (String, String) {
        let t = self.overrides.get(event_type).unwrap_or(&self.default);
        // A value with a line break must not end the header early.
        let subject: String =
            t.subject.render(values).chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        (subject.trim().to_owned(), t.body.render(values))
    }

    fn build(
        &self,
        endpoint: &str,
        values: &Values,
        event_type: &str,
        message_id: &str,
    ) -> Result<Message, String> {
        let mut to = Mailboxes::new();
        for address in email_recipients(endpoint) {
            let mailbox: Mailbox =
                address.parse().map_err(|e| format!("invalid recipient {address:?}: {e}"))?;
            to.push(mailbox);
        }
        if to.iter().next().is_none() {
            return Err("the endpoint names no recipient".to_owned());
        }
        let (subject, body) = self.render(values, event_type);
        Message::builder()
            .from(self.from.clone())
            .mailbox(lettre::message::header::To::from(to))
            .subject(subject)
            .message_id(Some(message_id.to_owned()))
            .date_now()
            .header(AutoSubmitted)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| format!("failed to build the message: {e}"))
    }

    /// Sends one delivery to the recipients of `endpoint`.
    pub async fn send(&self, endpoint: &str, values: &Values, event_type: &str) -> AttemptResult {
        let message_id = Self::message_id(values);
        let result = |kind, error: String, started: Instant, reference: &str| AttemptResult {
            kind,
            http_status: None,
            error,
            retry_after: None,
            external_reference: reference.to_owned(),
            duration_ms: u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
        };
        let message = match self.build(endpoint, values, event_type, &message_id) {
            Ok(message) => message,
            Err(e) => return result(AttemptKind::PermanentFailure, e, Instant::now(), ""),
        };
        let Ok(_permit) = self.permits.acquire().await else {
            return result(
                AttemptKind::RetryableFailure,
                "the mailer is shut down".to_owned(),
                Instant::now(),
                "",
            );
        };
        let started = Instant::now();
        let connection = self.relay.connection();
        // lettre bounds every command by the timeout; this bounds the whole send.
        let sent = tokio::time::timeout(self.timeout, connection.transport.send(message)).await;
        match sent {
            Ok(Ok(_response)) => result(AttemptKind::Succeeded, String::new(), started, &message_id),
            Ok(Err(e)) => {
                let kind = if e.is_permanent() {
                    AttemptKind::PermanentFailure
                } else {
                    AttemptKind::RetryableFailure
                };
                let text = if e.is_timeout() {
                    format!("timed out after {:?}: {}", self.timeout, error_chain(&e))
                } else {
                    error_chain(&e)
                };
                result(kind, redacted(&connection.redact, text), started, "")
            }
            Err(_) => result(
                AttemptKind::RetryableFailure,
                format!("timed out after {:?}", self.timeout),
                started,
                "",
            ),
        }
    }
}

/// `text` with every secret in `redact` replaced.
fn redacted(redact: &[String], mut text: String) -> String {
    for secret in redact {
        if !secret.is_empty() {
            text = text.replace(secret.as_str(), "[redacted]");
        }
    }
    text
}

/// The error and its sources, deduplicated (lettre repeats the source in
/// its own message).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets_config(names: &[&str]) -> BTreeMap<String, SecretSource> {
        names
            .iter()
            .map(|n| ((*n).to_owned(), SecretSource { env: Some("PSIRT_TEST_SMTP".to_owned()), file: None }))
            .collect()
    }

    fn keys(problems: &[(String, String)]) -> Vec<&str> {
        problems.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn the_defaults_have_no_problems() {
        let settings = EmailSettings::default();
        assert_eq!(settings.problems(&BTreeMap::new()), Vec::<(String, String)>::new());
        assert_eq!(settings.port, 587);
        assert_eq!(settings.security, EmailSecurity::StartTls);
        Mailer::new(&settings, &Secrets::default()).expect("mailer");
    }

    #[test]
    fn a_bad_template_is_a_problem_naming_its_key() {
        let mut settings = EmailSettings { subject: "[{{case.kee}}]".to_owned(), ..EmailSettings::default() };
        settings.body = "{{case.title".to_owned();
        settings.templates.insert(
            "psirt.events.v1.CaseAccepted".to_owned(),
            TemplateOverride { subject: Some("{{nope}}".to_owned()), body: None },
        );
        settings.templates.insert("CaseClosed".to_owned(), TemplateOverride::default());
        let problems = settings.problems(&BTreeMap::new());
        assert_eq!(
            keys(&problems),
            [
                "subject",
                "body",
                "templates.\"CaseClosed\"",
                "templates.\"psirt.events.v1.CaseAccepted\".subject"
            ],
            "{problems:?}"
        );
        assert!(problems[0].1.contains("case.kee"), "{problems:?}");
        assert!(Mailer::new(&settings, &Secrets::default()).is_err());
    }

    #[test]
    fn a_multi_line_subject_is_a_problem() {
        let settings = EmailSettings { subject: "a\nb".to_owned(), ..EmailSettings::default() };
        assert_eq!(keys(&settings.problems(&BTreeMap::new())), ["subject"]);
    }

    #[test]
    fn plain_text_is_only_allowed_to_a_loopback_host() {
        let remote = EmailSettings {
            host: "smtp.example.com".to_owned(),
            security: EmailSecurity::Plain,
            ..EmailSettings::default()
        };
        let problems = remote.problems(&BTreeMap::new());
        assert_eq!(keys(&problems), ["security"], "{problems:?}");
        assert!(problems[0].1.contains("smtp.example.com"), "{problems:?}");
        assert!(Mailer::new(&remote, &Secrets::default()).is_err());
        for host in ["127.0.0.1", "localhost", "::1", "127.0.0.2"] {
            let local = EmailSettings {
                host: host.to_owned(),
                security: EmailSecurity::Plain,
                ..EmailSettings::default()
            };
            assert!(local.problems(&BTreeMap::new()).is_empty(), "{host}");
        }
        let tls = EmailSettings { host: "smtp.example.com".to_owned(), ..EmailSettings::default() };
        assert!(tls.problems(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn an_unknown_credentials_secret_is_a_problem() {
        let settings =
            EmailSettings { credentials_secret: Some("smtp-relay".to_owned()), ..EmailSettings::default() };
        let problems = settings.problems(&secrets_config(&["webhook-key"]));
        assert_eq!(keys(&problems), ["credentials_secret"], "{problems:?}");
        assert!(settings.problems(&secrets_config(&["smtp-relay"])).is_empty());
    }

    #[test]
    fn sender_host_timeout_and_concurrency_are_checked() {
        let settings = EmailSettings {
            host: "smtp example".to_owned(),
            port: 0,
            from: "not an address".to_owned(),
            timeout: Duration::from_millis(1),
            max_concurrency: 0,
            ..EmailSettings::default()
        };
        assert_eq!(
            keys(&settings.problems(&BTreeMap::new())),
            ["host", "port", "from", "timeout", "max_concurrency"]
        );
        let named =
            EmailSettings { from: "PSIRT <psirt@example.com>".to_owned(), ..EmailSettings::default() };
        assert!(named.problems(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn settings_read_from_toml_with_overrides() {
        use figment::providers::Format;
        let settings: EmailSettings = figment::Figment::new()
            .merge(figment::providers::Toml::string(
                r#"
                host = "smtp.example.com"
                port = 465
                security = "tls"
                timeout = "30s"
                [templates."psirt.events.v1.CaseAccepted"]
                subject = "Accepted: {{case.key}}"
                "#,
            ))
            .extract()
            .expect("settings");
        assert_eq!(settings.security, EmailSecurity::Tls);
        assert_eq!(settings.timeout, Duration::from_secs(30));
        assert_eq!(settings.subject, DEFAULT_SUBJECT);
        assert_eq!(
            settings.templates["psirt.events.v1.CaseAccepted"],
            TemplateOverride { subject: Some("Accepted: {{case.key}}".to_owned()), body: None }
        );
        let unknown = figment::Figment::new()
            .merge(figment::providers::Toml::string("hots = \"x\""))
            .extract::<EmailSettings>();
        assert!(unknown.is_err());
    }

    #[test]
    fn the_message_id_is_the_delivery_id() {
        let values = Values::default().with("delivery.id", "0196f0c2-7d1e-7000-8000-000000000001");
        assert_eq!(Mailer::message_id(&values), "<0196f0c2-7d1e-7000-8000-000000000001@psirt.notification>");
        let odd = Values::default().with("delivery.id", "a b>c");
        assert_eq!(Mailer::message_id(&odd), "<abc@psirt.notification>");
        assert_ne!(Mailer::message_id(&Values::default()), Mailer::message_id(&Values::default()));
    }

    #[test]
    fn overrides_fall_back_to_the_defaults_and_subjects_stay_one_line() {
        let mut settings = EmailSettings::default();
        settings.templates.insert(
            "psirt.events.v1.CaseAccepted".to_owned(),
            TemplateOverride { subject: Some("Accepted {{case.key}}".to_owned()), body: None },
        );
        let mailer = Mailer::new(&settings, &Secrets::default()).expect("mailer");
        let values =
            Values::default().with("case.key", "PSIRT-2026-0001").with("event.summary", "Line\r\nbreak");
        let (subject, body) = mailer.render(&values, "psirt.events.v1.CaseAccepted");
        assert_eq!(subject, "Accepted PSIRT-2026-0001");
        assert!(body.starts_with("Line\r\nbreak\n"), "{body}");
        let (subject, _) = mailer.render(&values, "psirt.events.v1.CaseClosed");
        assert_eq!(subject, "[PSIRT-2026-0001] Line  break");
    }
}
