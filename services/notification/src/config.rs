//! The service's own config sections: `[notification]` (API paging),
//! `[delivery]` (worker and retry policy), `[webhook]` (the channel).

use std::time::Duration;

use psirt_domain::RetryPolicy;
use serde::{Deserialize, Serialize};

/// `[notification]`: the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationSettings {
    /// Page size of the list calls when the request gives none.
    pub default_page_size: u32,
    /// Largest page.
    pub max_page_size: u32,
    /// Most subscriptions one principal may have (not deleted); 0: no limit.
    pub max_subscriptions_per_owner: u32,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self { default_page_size: 100, max_page_size: 1000, max_subscriptions_per_owner: 500 }
    }
}

/// `[delivery]`: the worker and the retry policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Pause between two looks for due deliveries.
    #[serde(with = "psirt_kit::config::duration")]
    pub poll_interval: Duration,
    /// Most due deliveries read per look.
    pub batch_size: usize,
    /// Most sends in flight at once, over all endpoints.
    pub max_in_flight: usize,
    /// One replica sends at a time; a standby takes over when the active one
    /// has not renewed its lease for this long.
    #[serde(with = "psirt_kit::config::duration")]
    pub lease: Duration,
    /// Attempts per series before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// Backoff ceiling after the first failed attempt; doubles per attempt
    /// (full jitter: the wait is drawn uniformly below the ceiling).
    #[serde(with = "psirt_kit::config::duration")]
    pub initial_backoff: Duration,
    /// The most the ceiling grows to.
    #[serde(with = "psirt_kit::config::duration")]
    pub max_backoff: Duration,
    /// The most a peer's `Retry-After` is honoured for.
    #[serde(with = "psirt_kit::config::duration")]
    pub max_retry_after: Duration,
    /// The link to a case in every notice, for people who may look (the
    /// staff console): `{case_id}` and `{case_key}` are filled in. Empty:
    /// notices carry no link.
    pub case_link: String,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        let policy = RetryPolicy::default();
        Self {
            poll_interval: Duration::from_millis(250),
            batch_size: 256,
            max_in_flight: 64,
            lease: Duration::from_secs(15),
            max_attempts: policy.max_attempts,
            initial_backoff: policy.initial_backoff,
            max_backoff: policy.max_backoff,
            max_retry_after: policy.max_retry_after,
            case_link: String::new(),
        }
    }
}

impl DeliverySettings {
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
            max_retry_after: self.max_retry_after,
        }
    }

    /// The link to one case (`case_link` filled in); empty without one.
    pub fn case_link(&self, case_id: &str, case_key: &str) -> String {
        if self.case_link.is_empty() || case_id.is_empty() {
            return String::new();
        }
        self.case_link.replace("{case_id}", case_id).replace("{case_key}", case_key)
    }

    /// Every problem, as (key, problem).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let link = &self.case_link;
        if !link.is_empty()
            && (link.len() > 1000
                || !(link.starts_with("https://") || link.starts_with("http://"))
                || link.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            out.push((
                "case_link".to_owned(),
                "must be an http(s) URL of at most 1000 characters without spaces".to_owned(),
            ));
        }
        let mut check = |ok: bool, key: &str, problem: &str| {
            if !ok {
                out.push((key.to_owned(), problem.to_owned()));
            }
        };
        check(
            (Duration::from_millis(10)..=Duration::from_secs(60)).contains(&self.poll_interval),
            "poll_interval",
            "must be between 10ms and 60s",
        );
        check((1..=10_000).contains(&self.batch_size), "batch_size", "must be between 1 and 10000");
        check((1..=10_000).contains(&self.max_in_flight), "max_in_flight", "must be between 1 and 10000");
        check(
            (Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.lease),
            "lease",
            "must be between 1s and 1h",
        );
        for (field, problem) in self.retry_policy().problems() {
            let key = field.trim_end_matches("_ms");
            out.push((key.to_owned(), problem.replace("_ms", "")));
        }
        out
    }
}

/// `[webhook]`: the webhook channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Timeout of one POST (connect, send, answer).
    #[serde(with = "psirt_kit::config::duration")]
    pub timeout: Duration,
    /// Most concurrent POSTs to one endpoint (scheme and host:port).
    pub max_concurrency_per_endpoint: usize,
    /// The CloudEvents `source` of every delivery.
    pub source: String,
    /// The `User-Agent` of every POST.
    pub user_agent: String,
    /// Networks webhooks may reach although they are loopback, private,
    /// link-local, CGNAT or otherwise internal (CIDR or single addresses,
    /// e.g. `10.20.0.0/16` for an on-premises receiver). Empty: public
    /// addresses only. Checked on the address connected to.
    pub allowed_networks: Vec<String>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_concurrency_per_endpoint: 4,
            source: "urn:psirt:notification".to_owned(),
            user_agent: concat!("psirt-notification/", env!("CARGO_PKG_VERSION")).to_owned(),
            allowed_networks: Vec::new(),
        }
    }
}

impl WebhookSettings {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !(Duration::from_millis(100)..=Duration::from_secs(300)).contains(&self.timeout) {
            out.push(("timeout".to_owned(), "must be between 100ms and 5m".to_owned()));
        }
        if !(1..=1000).contains(&self.max_concurrency_per_endpoint) {
            out.push(("max_concurrency_per_endpoint".to_owned(), "must be between 1 and 1000".to_owned()));
        }
        if self.source.trim().is_empty() || self.source.len() > 1000 {
            out.push(("source".to_owned(), "must be a URI reference of 1..1000 characters".to_owned()));
        }
        if self.user_agent.trim().is_empty() || self.user_agent.len() > 200 || !self.user_agent.is_ascii() {
            out.push(("user_agent".to_owned(), "must be 1..200 ASCII characters".to_owned()));
        }
        if self.allowed_networks.len() > 100 {
            out.push(("allowed_networks".to_owned(), "at most 100 networks".to_owned()));
        }
        for (i, network) in self.allowed_networks.iter().enumerate() {
            if let Err(problem) = crate::egress::parse_network(network) {
                out.push((format!("allowed_networks[{i}]"), problem));
            }
        }
        out
    }
}
