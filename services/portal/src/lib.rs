//! `psirt-portal`: the platform's public front door on HTTP. Today it serves
//! what lets the outside world find the PSIRT: `/.well-known/security.txt`
//! (RFC 9116) and the PSIRT's OpenPGP public key, with strict security
//! headers on every answer; the admin port has `/metrics`, `/healthz` and
//! `/readyz` like every service's. It holds no case data.

pub mod client;
pub mod headers;
pub mod security_txt;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use psirt_kit::config::{AdminConfig, LogConfig, OtelConfig};
use psirt_kit::quota::{Rate, RateLimiter};
use psirt_kit::{Readiness, Shutdown};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::security_txt::{SecurityTxt, SecurityTxtSettings};

/// The service's name in logs, traces and metrics.
pub const SERVICE: &str = "psirt-portal";

/// `[portal]`: where the portal listens and how the world reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortalSettings {
    /// Address the public HTTP server binds. Default `127.0.0.1:8080`; port 0
    /// picks a free port.
    pub listen: SocketAddr,
    /// The URL the public reaches the portal at (behind the Ingress):
    /// `Canonical` and the key's address in `security.txt` are built from it.
    /// Must be `https:`; `http:` only for a loopback host (a laptop).
    pub public_url: String,
    /// Requests per client address (`per_minute` sustained, `burst` at once)
    /// across every public page; over it the answer is 429 with `Retry-After`.
    pub rate: Rate,
    /// Proxies (CIDR networks) whose `X-Forwarded-For` the portal believes,
    /// e.g. the Ingress controller's pod network. Empty: the TCP peer is the
    /// client. Behind a proxy not listed here, every client shares the
    /// proxy's limit.
    pub trusted_proxies: Vec<String>,
    /// `security.txt` and the key it points to.
    pub security_txt: SecurityTxtSettings,
}

impl Default for PortalSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080/".to_owned(),
            rate: Rate::new(600, 120),
            trusted_proxies: Vec::new(),
            security_txt: SecurityTxtSettings::default(),
        }
    }
}

/// The portal's configuration: defaults < TOML file < `PSIRT_*` environment
/// (`PSIRT_PORTAL__PUBLIC_URL` sets `portal.public_url`). Like every
/// service's, the top level takes other `PSIRT_*` variables of a shared
/// environment without complaint; each section refuses keys it does not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub portal: PortalSettings,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub otel: OtelConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            portal: PortalSettings::default(),
            // The portal's admin port sits beside the public one on a laptop.
            admin: AdminConfig { listen: SocketAddr::from(([127, 0, 0, 1], 9105)) },
            log: LogConfig::default(),
            otel: OtelConfig::default(),
        }
    }
}

/// What the portal serves, checked once at start.
#[derive(Debug, Clone)]
pub struct Site {
    security_txt: SecurityTxt,
    public_key: Option<Arc<str>>,
    hsts: bool,
    limits: client::Limits,
}

impl Site {
    /// Checks the configuration and reads the key file; every problem is
    /// listed, each naming its key.
    pub fn new(settings: &PortalSettings) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let public_url = match Url::parse(&settings.public_url) {
            Ok(url) => Some(url),
            Err(e) => {
                problems.push(format!("portal.public_url {:?} is not a URL: {e}", settings.public_url));
                None
            }
        };
        if let Some(url) = &public_url {
            let loopback = match url.host() {
                Some(url::Host::Domain(host)) => host == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            match url.scheme() {
                "https" => {}
                "http" if loopback => {}
                "http" => problems.push(format!(
                    "portal.public_url {:?} is http: the public pages must be served over https \
                     (http is accepted for a loopback host only)",
                    settings.public_url
                )),
                other => problems.push(format!("portal.public_url has scheme {other:?}; expected https")),
            }
            if url.query().is_some() || url.fragment().is_some() {
                problems.push("portal.public_url must not have a query or fragment".to_owned());
            }
        }
        for (key, problem) in settings.rate.problems("portal.rate") {
            problems.push(format!("{key}: {problem}"));
        }
        if settings.rate.per_minute == 0 {
            problems.push(
                "portal.rate.per_minute: the public pages need a limit per client (0 would turn it off)"
                    .to_owned(),
            );
        }
        if settings.trusted_proxies.len() > 64 {
            problems.push("portal.trusted_proxies: at most 64 networks".to_owned());
        }
        let trusted_proxies: Vec<ipnet::IpNet> = settings
            .trusted_proxies
            .iter()
            .filter_map(|net| match net.parse::<ipnet::IpNet>() {
                Ok(net) => Some(net),
                Err(_) => {
                    problems.push(format!(
                        "portal.trusted_proxies: {net:?} is not a CIDR network (e.g. 10.0.0.0/8)"
                    ));
                    None
                }
            })
            .collect();
        let public_key = if settings.security_txt.openpgp_key_file.is_empty() {
            None
        } else {
            match security_txt::load_public_key(Path::new(&settings.security_txt.openpgp_key_file)) {
                Ok(key) => Some(Arc::from(key)),
                Err(problem) => {
                    problems.push(problem);
                    None
                }
            }
        };
        let base = public_url.clone().map(|mut url| {
            // Relative joins below the base need its path to end with '/'.
            if !url.path().ends_with('/') {
                let path = format!("{}/", url.path());
                url.set_path(&path);
            }
            url
        });
        let security_txt = match &base {
            Some(base) => match SecurityTxt::new(&settings.security_txt, base, public_key.is_some()) {
                Ok(file) => Some(file),
                Err(more) => {
                    problems.extend(more);
                    None
                }
            },
            None => None,
        };
        match (security_txt, problems.is_empty()) {
            (Some(security_txt), true) => Ok(Self {
                security_txt,
                public_key,
                hsts: base.is_some_and(|url| url.scheme() == "https"),
                limits: client::Limits {
                    limiter: Arc::new(RateLimiter::new(settings.rate)),
                    trusted_proxies: trusted_proxies.into(),
                },
            }),
            _ => Err(problems),
        }
    }

    /// The public routes, each answer with the security headers.
    pub fn router(self) -> Router {
        let hsts = self.hsts;
        let limits = self.limits.clone();
        let site = Arc::new(self);
        let txt = Arc::clone(&site);
        let mut router = Router::new().route(
            security_txt::PATH,
            get(move || {
                let body = txt.security_txt.render(time::OffsetDateTime::now_utc());
                async move { text(body, "public, max-age=3600") }
            }),
        );
        // RFC 9116 §3: the legacy location may redirect to the well-known one.
        router = router.route(
            "/security.txt",
            get(|| async {
                (
                    StatusCode::MOVED_PERMANENTLY,
                    [(header::LOCATION, HeaderValue::from_static(security_txt::PATH))],
                )
            }),
        );
        if let Some(key) = site.public_key.clone() {
            router = router.route(
                security_txt::KEY_PATH,
                get(move || {
                    let key = Arc::clone(&key);
                    async move {
                        let mut response = text(key.to_string(), "public, max-age=3600");
                        response.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/pgp-keys; charset=utf-8"),
                        );
                        response
                    }
                }),
            );
        }
        router
            .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
            // Inner: the rate limit per client; outer: the security headers,
            // on every answer including a 429.
            .layer(axum::middleware::from_fn(move |request, next| {
                client::limit(limits.clone(), request, next)
            }))
            .layer(axum::middleware::from_fn(move |request, next| headers::secure(request, next, hsts)))
    }
}

/// A `text/plain` answer with a cache policy.
fn text(body: String, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response()
}

/// The addresses the portal bound.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub http: SocketAddr,
    pub admin: SocketAddr,
}

/// Binds both listeners, writes `ports_file` (`{"http": ..., "admin": ...}`)
/// when given, and serves until `shutdown`.
pub async fn serve(
    config: Config,
    shutdown: Shutdown,
    ports_file: Option<PathBuf>,
    metrics: psirt_kit::MetricsHandle,
    on_bound: impl FnOnce(Bound) + Send,
) -> anyhow::Result<()> {
    let site = Site::new(&config.portal).map_err(|problems| anyhow::anyhow!(problems.join("\n")))?;
    let listener = tokio::net::TcpListener::bind(config.portal.listen)
        .await
        .with_context(|| format!("failed to bind portal.listen {}", config.portal.listen))?;
    let http = listener.local_addr().context("failed to read the portal's address")?;
    let readiness = Readiness::new();
    let ready = readiness.register("http");
    let admin = psirt_kit::AdminServer::bind(config.admin.listen, readiness, metrics).await?;
    let bound = Bound { http, admin: admin.local_addr() };
    if let Some(path) = &ports_file {
        psirt_kit::service::write_named_ports_file(path, &[("http", bound.http), ("admin", bound.admin)])?;
    }
    on_bound(bound);
    tracing::info!(addr = %http, public_url = %config.portal.public_url, "portal listening");
    let public = {
        let shutdown = shutdown.clone();
        let router = site.router();
        async move {
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move { shutdown.wait().await })
                .await
                .context("portal server failed")
        }
    };
    ready.set_ready(true);
    let (public, admin) = tokio::join!(public, admin.serve(shutdown));
    public.and(admin)
}

/// `psirt-portal [serve] [--config FILE] [--ports-file FILE]` and
/// `psirt-portal config [--config FILE]` (checks the configuration and
/// prints the effective one as JSON).
pub fn main() -> anyhow::Result<()> {
    use clap::{Arg, Command};
    let config_arg = || {
        Arg::new("config")
            .long("config")
            .short('c')
            .env("PSIRT_CONFIG")
            .value_parser(clap::value_parser!(PathBuf))
            .help("TOML configuration file (PSIRT_* environment variables override it)")
    };
    let matches = Command::new("psirt-portal")
        .about("PSIRT portal: security.txt and the PSIRT's OpenPGP key on HTTP")
        .subcommand(
            Command::new("serve").about("Serve (the default)").arg(config_arg()).arg(
                Arg::new("ports-file")
                    .long("ports-file")
                    .env("PSIRT_PORTS_FILE")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("Write the bound addresses here as JSON"),
            ),
        )
        .subcommand(
            Command::new("config")
                .about("Check the configuration and print the effective one (JSON)")
                .arg(config_arg()),
        )
        .arg(config_arg())
        .get_matches();
    let (sub, args) = match matches.subcommand() {
        Some((name, args)) => (name, args),
        None => ("serve", &matches),
    };
    let file = args.get_one::<PathBuf>("config").cloned();
    let config: Config = psirt_kit::config::load(file.as_deref())?;
    if sub == "config" {
        Site::new(&config.portal).map_err(|problems| anyhow::anyhow!(problems.join("\n")))?;
        println!("{}", serde_json::to_string_pretty(&config).context("failed to print the configuration")?);
        return Ok(());
    }
    let ports_file = args.try_get_one::<PathBuf>("ports-file").ok().flatten().cloned();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let telemetry = psirt_kit::telemetry::init(SERVICE, &config.log, &config.otel)?;
        let shutdown = Shutdown::on_signals();
        let result = serve(config, shutdown, ports_file, telemetry.metrics(), |_| {}).await;
        telemetry.shutdown();
        result
    })
}
