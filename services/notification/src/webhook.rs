//! The webhook channel: a CloudEvents 1.0 structured-mode JSON body, signed
//! with HMAC-SHA256 over `"<timestamp>.<body>"`, POSTed with a timeout and
//! without following redirects (a redirect could lead off the checked URL).
//!
//! Headers: `Content-Type: application/cloudevents+json`,
//! `X-Psirt-Timestamp: <unix seconds>` and
//! `X-Psirt-Signature: v1=<hex hmac>`. Receivers recompute the HMAC with the
//! shared secret, compare in constant time, refuse stale timestamps (replay
//! protection) and deduplicate on the CloudEvent `id` (the delivery id,
//! stable across attempts).

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use psirt_domain::notification::{AttemptKind, AttemptResult, classify_http_status};
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::egress::{Egress, RefusedName};

pub const TIMESTAMP_HEADER: &str = "X-Psirt-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Psirt-Signature";
pub const CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";

/// The signature header's value: `v1=<hex hmac-sha256(secret, "<timestamp>.<body>")>`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return String::new() };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a CloudEvent says about one delivery.
pub struct CloudEvent<'a> {
    /// The delivery id: stable across attempts, the receiver's dedup key.
    pub id: &'a str,
    pub source: &'a str,
    /// The event type (fully-qualified message name).
    pub event_type: &'a str,
    /// The case id; omitted when empty.
    pub subject: &'a str,
    /// When the event was stored.
    pub time: OffsetDateTime,
    pub data: Value,
}

impl CloudEvent<'_> {
    /// The structured-mode JSON body.
    pub fn to_body(&self) -> Vec<u8> {
        let mut event = json!({
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.event_type,
            "time": self.time.format(&Rfc3339).unwrap_or_default(),
            "datacontenttype": "application/json",
            "data": self.data,
        });
        if !self.subject.is_empty()
            && let Some(map) = event.as_object_mut()
        {
            map.insert("subject".to_owned(), Value::String(self.subject.to_owned()));
        }
        serde_json::to_vec(&event).unwrap_or_default()
    }
}

/// The peer's `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

/// Sends webhook deliveries.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    egress: Egress,
}

impl Sender {
    /// A client that connects only where `egress` allows (every resolved
    /// address checked at connect), follows no redirect and uses no proxy
    /// (a proxy would connect on our behalf, unchecked).
    pub fn new(user_agent: &str, egress: Egress) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(egress.resolver())
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { client, egress })
    }

    /// POSTs `body` to `url`, signed with `secret`, and classifies the
    /// answer. A refused address is a permanent failure: nothing is sent.
    pub async fn send(&self, url: &str, body: Vec<u8>, secret: &[u8], timeout: Duration) -> AttemptResult {
        let started = Instant::now();
        if let Err(r) = self.egress.check_url(url) {
            return refused(r.to_string());
        }
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signature = sign(secret, timestamp, &body);
        let response = self
            .client
            .post(url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        let duration_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
        match response {
            Ok(response) => {
                let status = response.status().as_u16();
                let kind = classify_http_status(status);
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, OffsetDateTime::now_utc()));
                let error = match kind {
                    AttemptKind::Succeeded => String::new(),
                    _ => format!("HTTP {status}"),
                };
                AttemptResult {
                    kind,
                    http_status: Some(status),
                    error,
                    retry_after,
                    external_reference: String::new(),
                    duration_ms,
                }
            }
            Err(e) if refused_name(&e).is_some() => {
                refused(refused_name(&e).map(ToString::to_string).unwrap_or_default())
            }
            Err(e) => AttemptResult {
                kind: AttemptKind::RetryableFailure,
                http_status: None,
                // reqwest's message names the URL, never the headers.
                error: if e.is_timeout() { format!("timed out after {timeout:?}") } else { error_chain(&e) },
                retry_after: None,
                external_reference: String::new(),
                duration_ms,
            },
        }
    }
}

fn refused(error: String) -> AttemptResult {
    AttemptResult {
        kind: AttemptKind::PermanentFailure,
        http_status: None,
        error,
        retry_after: None,
        external_reference: String::new(),
        duration_ms: 0,
    }
}

/// The guard's refusal somewhere in an error's chain.
fn refused_name<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a RefusedName> {
    let mut next = Some(e);
    while let Some(error) = next {
        if let Some(refused) = error.downcast_ref::<RefusedName>() {
            return Some(refused);
        }
        next = error.source();
    }
    None
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // RFC 4231 test case 2 ("Jefe"), with the message split at the dot.
        let sig = sign(b"Jefe", 0, b"what do ya want for nothing?");
        assert!(sig.starts_with("v1="));
        assert_eq!(sig.len(), 3 + 64);
        assert_eq!(sign(b"Jefe", 0, b"x"), sign(b"Jefe", 0, b"x"));
        assert_ne!(sign(b"Jefe", 0, b"x"), sign(b"Jefe", 1, b"x"));
        assert_ne!(sign(b"Jefe", 0, b"x"), sign(b"Jeff", 0, b"x"));
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").expect("key");
        mac.update(b"The quick brown fox jumps over the lazy dog");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = OffsetDateTime::from_unix_timestamp(784_111_777).expect("time");
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO));
        let later = OffsetDateTime::from_unix_timestamp(784_111_777 - 30).expect("time");
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn the_body_is_a_structured_cloudevent() {
        let body = CloudEvent {
            id: "d1",
            source: "urn:psirt:notification",
            event_type: "psirt.events.v1.CaseAccepted",
            subject: "c1",
            time: OffsetDateTime::UNIX_EPOCH,
            data: json!({"caseId": "c1"}),
        }
        .to_body();
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["id"], "d1");
        assert_eq!(v["subject"], "c1");
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
        assert_eq!(v["data"]["caseId"], "c1");
    }
}
