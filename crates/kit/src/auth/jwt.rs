//! Bearer JWT validation: HS256 with a shared secret (development) or RS/ES with keys from a
//! JWKS file or URL picked by `kid` (production). The URL is fetched at startup, refreshed
//! periodically, and re-fetched (rate-limited) when a token names an unknown `kid`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use super::{Principal, Role, Scopes};
use crate::config::{AuthConfig, AuthMode, MIN_HS256_SECRET_BYTES};

/// Algorithms accepted with JWKS keys.
const ASYMMETRIC_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// The largest JWKS document read (a real one holds a few keys: a few KiB).
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// An unknown `kid` triggers a JWKS re-fetch at most this often, so bogus tokens cannot
/// hammer the identity provider.
const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Timeout of one JWKS HTTP request.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the authenticator could not be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// `auth.mode = "jwt"` without any key source.
    #[error(
        "auth.mode is \"jwt\" but no key source is configured (set auth.jwks_url, auth.jwks_file, auth.hs256_secret_file or auth.hs256_secret)"
    )]
    NoKeySource,
    /// A secret or JWKS file could not be read.
    #[error("failed to read {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The HS256 secret is too short.
    #[error("the HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes")]
    WeakSecret,
    /// A JWKS document could not be fetched or parsed.
    #[error("invalid JWKS from {origin}: {reason}")]
    Jwks {
        /// File path or URL.
        origin: String,
        /// What went wrong.
        reason: String,
    },
}

/// Why a token was rejected (answered with `UNAUTHENTICATED`). The message is safe to return
/// to the caller: it names the problem, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenRejected(pub &'static str);

#[derive(Clone)]
struct KeyEntry {
    kid: Option<String>,
    alg: Option<Algorithm>,
    key: DecodingKey,
}

#[derive(Default)]
struct KeySets {
    file: Vec<KeyEntry>,
    url: Vec<KeyEntry>,
}

struct Inner {
    hs256: Option<DecodingKey>,
    keys: RwLock<KeySets>,
    jwks_file: Option<PathBuf>,
    jwks_url: Option<String>,
    http: Option<reqwest::Client>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    issuer: Option<String>,
    audience: Option<String>,
    roles_claim: String,
    scopes_claim: String,
    leeway: u64,
}

/// Validates bearer tokens into [`Principal`]s. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => f.write_str("Authenticator(disabled)"),
            Some(inner) => f
                .debug_struct("Authenticator")
                .field("hs256", &inner.hs256.is_some())
                .field("jwks_file", &inner.jwks_file)
                .field("jwks_url", &inner.jwks_url)
                .field("issuer", &inner.issuer)
                .field("audience", &inner.audience)
                .finish_non_exhaustive(),
        }
    }
}

impl Authenticator {
    /// Builds the authenticator for `config`: reads secret and JWKS files, fetches the JWKS
    /// URL (an unreachable URL fails startup) and starts its periodic refresh. Must be called
    /// inside a Tokio runtime.
    pub async fn from_config(config: &AuthConfig) -> Result<Self, AuthSetupError> {
        if config.mode == AuthMode::None {
            return Ok(Self::disabled());
        }
        if !config.has_key_source() {
            return Err(AuthSetupError::NoKeySource);
        }
        let hs256 = match (&config.hs256_secret, &config.hs256_secret_file) {
            (Some(secret), _) => Some(hs256_key(secret.expose_secret().as_bytes())?),
            (None, Some(path)) => {
                let text = read_file(path).await?;
                Some(hs256_key(text.trim().as_bytes())?)
            }
            (None, None) => None,
        };
        let http = match &config.jwks_url {
            Some(_) => Some(
                reqwest::Client::builder()
                    .timeout(JWKS_FETCH_TIMEOUT)
                    // A redirect could lead off the configured (https) origin.
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| AuthSetupError::Jwks {
                        origin: "http client".to_owned(),
                        reason: e.to_string(),
                    })?,
            ),
            None => None,
        };
        let inner = Arc::new(Inner {
            hs256,
            keys: RwLock::new(KeySets::default()),
            jwks_file: config.jwks_file.clone(),
            jwks_url: config.jwks_url.clone(),
            http,
            last_fetch: tokio::sync::Mutex::new(None),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            roles_claim: config.roles_claim.clone(),
            scopes_claim: config.scopes_claim.clone(),
            leeway: config.leeway_seconds,
        });
        if let Some(path) = &inner.jwks_file {
            let keys = load_jwks_file(path).await?;
            tracing::info!(path = %path.display(), keys = keys.len(), "loaded jwks file");
            write_keys(&inner).file = keys;
        }
        if let Some(url) = &inner.jwks_url {
            let keys = fetch_jwks(&inner, url).await?;
            tracing::info!(url = %url, keys = keys.len(), "fetched jwks");
            write_keys(&inner).url = keys;
            *inner.last_fetch.lock().await = Some(Instant::now());
        }
        if inner.jwks_file.is_some() || inner.jwks_url.is_some() {
            spawn_refresh(Arc::downgrade(&inner), config.jwks_refresh);
        }
        Ok(Self { inner: Some(inner) })
    }

    /// Authentication disabled: every call of a method in the policy is `anonymous` with
    /// every role (methods missing from the policy stay denied). Logs a warning. The
    /// listeners must be loopback addresses: config validation
    /// ([`crate::config::check_unauthenticated_listeners`]) and
    /// [`crate::GrpcServer::serve`] refuse anything else.
    pub fn disabled() -> Self {
        tracing::warn!(
            "authentication is disabled (auth.mode = \"none\"): every caller is anonymous with \
             every role, on loopback listeners only; never use in production"
        );
        Self { inner: None }
    }

    /// True when `auth.mode = "none"`.
    pub fn is_disabled(&self) -> bool {
        self.inner.is_none()
    }

    /// Validates `token` (without the `Bearer ` prefix) and returns its principal.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, TokenRejected> {
        let Some(inner) = &self.inner else {
            return Ok(Principal::anonymous_with_all_roles());
        };
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejected("malformed token"))?;
        let key = if header.alg == Algorithm::HS256 {
            inner.hs256.clone().ok_or(TokenRejected("token algorithm not accepted"))?
        } else if ASYMMETRIC_ALGORITHMS.contains(&header.alg) {
            match find_key(inner, header.kid.as_deref(), header.alg) {
                Some(key) => key,
                None => {
                    refetch_for_unknown_kid(inner).await;
                    find_key(inner, header.kid.as_deref(), header.alg)
                        .ok_or(TokenRejected("token signed with an unknown key"))?
                }
            }
        } else {
            return Err(TokenRejected("token algorithm not accepted"));
        };

        let mut validation = Validation::new(header.alg);
        validation.leeway = inner.leeway;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &inner.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &inner.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);

        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| reject_reason(e.kind()))?;
        let claims = data.claims;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(TokenRejected("token has no subject"))?
            .to_owned();
        let issuer = claims.get("iss").and_then(Value::as_str).map(str::to_owned);
        let roles = roles_from_claims(&claims, &inner.roles_claim);
        let scopes = if roles.contains(&Role::Admin) {
            Scopes::All
        } else {
            Scopes::from_claim(claim_values(&claims, &inner.scopes_claim).iter().map(String::as_str))
        };
        Ok(Principal { subject, roles, issuer, scopes, claims })
    }
}

fn reject_reason(kind: &ErrorKind) -> TokenRejected {
    TokenRejected(match kind {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not yet valid",
        ErrorKind::InvalidSignature => "invalid token signature",
        ErrorKind::InvalidIssuer => "token issuer not accepted",
        ErrorKind::InvalidAudience => "token audience not accepted",
        ErrorKind::MissingRequiredClaim(_) => "token is missing a required claim",
        ErrorKind::InvalidAlgorithm => "token algorithm does not match its key",
        _ => "malformed token",
    })
}

/// Roles from `claim`: first the literal claim name (namespaced claims such as
/// `https://psirt.example/roles` contain dots), then a dotted path (`realm_access.roles`).
/// Accepts a string array or a space-separated string; unknown role names are dropped.
fn roles_from_claims(claims: &Map<String, Value>, claim: &str) -> Vec<Role> {
    let names: Vec<&str> = match claim_value(claims, claim) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => s.split_whitespace().collect(),
        _ => Vec::new(),
    };
    let mut roles: Vec<Role> = names.iter().filter_map(|n| n.parse().ok()).collect();
    roles.sort();
    roles.dedup();
    roles
}

/// A claim by its literal name, then as a dotted path.
fn claim_value<'a>(claims: &'a Map<String, Value>, claim: &str) -> Option<&'a Value> {
    claims.get(claim).or_else(|| {
        let mut parts = claim.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |v, part| v.get(part))
    })
}

/// Product scopes from `claim`: a string array, or one string of
/// comma-separated scopes (product names may hold spaces).
fn claim_values(claims: &Map<String, Value>, claim: &str) -> Vec<String> {
    match claim_value(claims, claim) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(s)) => s.split(',').map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn hs256_key(secret: &[u8]) -> Result<DecodingKey, AuthSetupError> {
    if secret.len() < MIN_HS256_SECRET_BYTES {
        return Err(AuthSetupError::WeakSecret);
    }
    Ok(DecodingKey::from_secret(secret))
}

fn find_key(inner: &Inner, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    let keys = inner.keys.read().unwrap_or_else(|e| e.into_inner());
    let usable = |k: &&KeyEntry| k.alg.is_none_or(|a| a == alg);
    let all = || keys.file.iter().chain(keys.url.iter());
    let found = match kid {
        Some(kid) => all().filter(usable).find(|k| k.kid.as_deref() == Some(kid)),
        // Without a kid only an unambiguous single key is used.
        None => {
            let mut candidates = all().filter(usable);
            match (candidates.next(), candidates.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }
    };
    found.map(|k| k.key.clone())
}

fn write_keys(inner: &Inner) -> std::sync::RwLockWriteGuard<'_, KeySets> {
    inner.keys.write().unwrap_or_else(|e| e.into_inner())
}

async fn refetch_for_unknown_kid(inner: &Inner) {
    let Some(url) = &inner.jwks_url else { return };
    let mut last = inner.last_fetch.lock().await;
    if last.is_some_and(|t| t.elapsed() < MIN_REFETCH_INTERVAL) {
        return;
    }
    *last = Some(Instant::now());
    match fetch_jwks(inner, url).await {
        Ok(keys) => {
            tracing::info!(url = %url, keys = keys.len(), "re-fetched jwks for an unknown key id");
            write_keys(inner).url = keys;
        }
        Err(err) => tracing::warn!(error = %err, "failed to re-fetch jwks"),
    }
}

fn spawn_refresh(inner: Weak<Inner>, every: Duration) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // the first tick is immediate; keys were just loaded
        loop {
            ticker.tick().await;
            // Stop when the authenticator is gone.
            let Some(inner) = inner.upgrade() else { return };
            if let Some(path) = &inner.jwks_file {
                match load_jwks_file(path).await {
                    Ok(keys) => write_keys(&inner).file = keys,
                    Err(err) => {
                        tracing::warn!(error = %err, "failed to reload jwks file, keeping previous keys")
                    }
                }
            }
            if let Some(url) = &inner.jwks_url {
                let mut last = inner.last_fetch.lock().await;
                match fetch_jwks(&inner, url).await {
                    Ok(keys) => write_keys(&inner).url = keys,
                    Err(err) => tracing::warn!(error = %err, "failed to refresh jwks, keeping previous keys"),
                }
                *last = Some(Instant::now());
            }
        }
    });
}

async fn read_file(path: &Path) -> Result<String, AuthSetupError> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|source| AuthSetupError::ReadFile { path: path.to_path_buf(), source })
}

async fn load_jwks_file(path: &Path) -> Result<Vec<KeyEntry>, AuthSetupError> {
    let text = read_file(path).await?;
    let origin = path.display().to_string();
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| AuthSetupError::Jwks { origin: origin.clone(), reason: e.to_string() })?;
    parse_jwks(&origin, &doc)
}

async fn fetch_jwks(inner: &Inner, url: &str) -> Result<Vec<KeyEntry>, AuthSetupError> {
    let err = |reason: String| AuthSetupError::Jwks { origin: url.to_owned(), reason };
    let Some(http) = &inner.http else {
        return Err(err("no http client".to_owned()));
    };
    let mut response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| err(e.to_string()))?;
    if !response.status().is_success() {
        // Redirects are not followed (they could lead off the configured origin).
        return Err(err(format!("answered HTTP {}", response.status().as_u16())));
    }
    // Bounded: a hostile or broken endpoint cannot make us buffer without end.
    if response.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
        return Err(err(format!("document larger than {MAX_JWKS_BYTES} bytes")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| err(e.to_string()))? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(err(format!("document larger than {MAX_JWKS_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let doc: Value = serde_json::from_slice(&body).map_err(|e| err(e.to_string()))?;
    parse_jwks(url, &doc)
}

/// Parses a JWKS document key by key, so one unsupported key (e.g. an encryption key or an
/// unknown `kty`) does not disable the others.
fn parse_jwks(origin: &str, doc: &Value) -> Result<Vec<KeyEntry>, AuthSetupError> {
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return Err(AuthSetupError::Jwks {
            origin: origin.to_owned(),
            reason: "missing \"keys\" array".to_owned(),
        });
    };
    let mut entries = Vec::new();
    let mut seen = HashSet::new();
    for raw in keys {
        if raw.get("use").and_then(Value::as_str) == Some("enc") {
            continue;
        }
        let kid = raw.get("kid").and_then(Value::as_str).map(str::to_owned);
        let parsed = serde_json::from_value::<Jwk>(raw.clone()).map_err(|e| e.to_string()).and_then(|jwk| {
            let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
            let alg = jwk.common.key_algorithm.and_then(|a| a.to_string().parse::<Algorithm>().ok());
            Ok((key, alg))
        });
        match parsed {
            Ok((key, alg)) => {
                if key.family() == jsonwebtoken::AlgorithmFamily::Hmac {
                    // Symmetric keys never come from a published key set.
                    tracing::warn!(origin, kid = ?kid, "skipping symmetric key in jwks");
                    continue;
                }
                if let Some(kid) = &kid {
                    if !seen.insert(kid.clone()) {
                        tracing::warn!(origin, kid = %kid, "duplicate key id in jwks, keeping the first");
                        continue;
                    }
                }
                entries.push(KeyEntry { kid, alg, key });
            }
            Err(reason) => {
                tracing::warn!(origin, kid = ?kid, reason = %reason, "skipping unsupported jwks key");
            }
        }
    }
    if entries.is_empty() {
        return Err(AuthSetupError::Jwks {
            origin: origin.to_owned(),
            reason: "no usable signing key".to_owned(),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Serves `body` at `/jwks.json` on loopback (optionally redirecting).
    async fn idp(body: String, redirect: Option<String>) -> String {
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (body, redirect) = (body.clone(), redirect.clone());
                async move {
                    match redirect {
                        Some(to) => (
                            axum::http::StatusCode::FOUND,
                            [(axum::http::header::LOCATION, to)],
                            String::new(),
                        ),
                        None => (
                            axum::http::StatusCode::OK,
                            [(axum::http::header::CONTENT_TYPE, "application/json".to_owned())],
                            body,
                        ),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/jwks.json")
    }

    fn jwks_config(url: String) -> crate::config::AuthConfig {
        crate::config::AuthConfig { jwks_url: Some(url), ..crate::config::AuthConfig::default() }
    }

    #[tokio::test]
    async fn jwks_answers_are_bounded_and_redirects_not_followed() {
        let huge = format!("{{\"keys\": [], \"pad\": \"{}\"}}", "x".repeat(MAX_JWKS_BYTES));
        let err =
            Authenticator::from_config(&jwks_config(idp(huge, None).await)).await.expect_err("too large");
        assert!(err.to_string().contains("larger than"), "{err}");
        let keys = include_str!("../../tests/fixtures/jwks.json").to_owned();
        let good = idp(keys, None).await;
        Authenticator::from_config(&jwks_config(good.clone())).await.expect("the document itself is fine");
        let err = Authenticator::from_config(&jwks_config(idp(String::new(), Some(good)).await))
            .await
            .expect_err("a redirect is an error, not followed");
        assert!(err.to_string().contains("302"), "{err}");
    }

    #[test]
    fn roles_from_array_string_and_nested_claims() {
        let claims = json!({
            "roles": ["analyst", "unknown", "Admin"],
            "scope_roles": "reporter engineer",
            "realm_access": {"roles": ["engineer"]},
            "https://psirt.example/roles": ["reporter"],
        });
        let claims = claims.as_object().expect("object");
        assert_eq!(roles_from_claims(claims, "roles"), vec![Role::Analyst, Role::Admin]);
        assert_eq!(roles_from_claims(claims, "scope_roles"), vec![Role::Reporter, Role::Engineer]);
        assert_eq!(roles_from_claims(claims, "realm_access.roles"), vec![Role::Engineer]);
        assert_eq!(roles_from_claims(claims, "https://psirt.example/roles"), vec![Role::Reporter]);
        assert!(roles_from_claims(claims, "missing").is_empty());
    }

    #[test]
    fn scopes_from_an_array_or_a_comma_separated_string() {
        let claims = json!({
            "psirt_products": ["Acme Router", "pkg:npm/@acme/"],
            "flat": "Acme Router, Acme Switch",
            "ext": { "products": ["*"] },
        });
        let claims = claims.as_object().expect("object");
        assert_eq!(claim_values(claims, "psirt_products"), ["Acme Router", "pkg:npm/@acme/"]);
        let flat = Scopes::from_claim(claim_values(claims, "flat").iter().map(String::as_str));
        assert!(flat.permits(&["acme switch"]) && flat.permits(&["Acme Router"]));
        let all = Scopes::from_claim(claim_values(claims, "ext.products").iter().map(String::as_str));
        assert!(all.is_all());
        assert!(claim_values(claims, "missing").is_empty());
    }
}
