//! Connecting to the PSIRT services: server address and timeout parsing, one
//! eager connection per invocation (so "cannot connect" is told apart from a
//! server error), and the interceptor that adds the bearer token to each call.

use std::fmt;
use std::time::Duration;

use psirt_proto::admin::admin_service_client::AdminServiceClient;
use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_proto::notification::notification_service_client::NotificationServiceClient;
use psirt_proto::remediation::advisory_service_client::AdvisoryServiceClient;
use psirt_proto::remediation::remediation_service_client::RemediationServiceClient;
use psirt_proto::triage::case_service_client::CaseServiceClient;
use psirt_proto::triage::triage_service_client::TriageServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

use crate::{CliError, GlobalArgs};

/// Where `psirtctl` reaches the intake service (`report` commands) unless
/// told otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// Where `psirtctl` reaches the triage service (`case` and `triage`
/// commands) unless told otherwise.
pub const DEFAULT_TRIAGE_SERVER: &str = "http://127.0.0.1:50052";

/// Where `psirtctl` reaches the remediation service (`remediation` and
/// `advisory` commands) unless told otherwise.
pub const DEFAULT_REMEDIATION_SERVER: &str = "http://127.0.0.1:50053";

/// Where `psirtctl` reaches the notification service (`notify` commands)
/// unless told otherwise.
pub const DEFAULT_NOTIFICATION_SERVER: &str = "http://127.0.0.1:50054";

/// Largest response accepted. Tonic's default of 4 MiB is too small for a
/// full page of reports with long descriptions; the server's own limit is
/// what really bounds a response.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The connection under every client: the channel, with the positions of
/// read-your-writes ([`crate::position`]).
pub type Transport = crate::position::Tracked<Channel>;

/// A client of `psirt.intake.v1.IntakeService` that sends the token.
pub type IntakeClient = IntakeServiceClient<InterceptedService<Transport, AuthInterceptor>>;

/// A client of `psirt.triage.v1.TriageService` (case decisions) that sends the token.
pub type TriageClient = TriageServiceClient<InterceptedService<Transport, AuthInterceptor>>;

/// A client of `psirt.triage.v1.CaseService` (case view) that sends the token.
pub type CaseClient = CaseServiceClient<InterceptedService<Transport, AuthInterceptor>>;

/// A client of `psirt.admin.v1.AdminService` (any service's) that sends the token.
pub type AdminClient = AdminServiceClient<InterceptedService<Transport, AuthInterceptor>>;

/// A client of `psirt.remediation.v1.RemediationService` (plans) that sends the token.
pub type RemediationClient = RemediationServiceClient<InterceptedService<Transport, AuthInterceptor>>;

/// A client of `psirt.remediation.v1.AdvisoryService` that sends the token.
pub type AdvisoryClient = AdvisoryServiceClient<InterceptedService<Transport, AuthInterceptor>>;

/// A client of `psirt.notification.v1.NotificationService` that sends the token.
pub type NotificationClient = NotificationServiceClient<InterceptedService<Transport, AuthInterceptor>>;

/// Normalises `--server`: `host:port` gets `http://`; the result must be a
/// valid http URI.
pub fn parse_server(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("the server address is empty".to_owned());
    }
    let url = if value.contains("://") { value.to_owned() } else { format!("http://{value}") };
    let endpoint = Endpoint::from_shared(url.clone()).map_err(|e| format!("not a server address: {e}"))?;
    match endpoint.uri().scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("the scheme must be https or http".to_owned()),
    }
    if endpoint.uri().host().is_none_or(str::is_empty) {
        return Err("the server address has no host".to_owned());
    }
    Ok(url)
}

/// Parses `--timeout`: `500ms`, `10s`, `2m`, `1h`, or plain seconds; must be
/// positive.
pub fn parse_timeout(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{value:?} is not a duration like 10s or 500ms"))?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        other => return Err(format!("unknown unit {other:?}: use ms, s, m or h")),
    };
    if duration.is_zero() {
        return Err("the timeout must be positive".to_owned());
    }
    Ok(duration)
}

/// The bearer token. Its `Debug` never shows the value, so a debug print of
/// the parsed command line cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl From<String> for Token {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone, Default)]
pub struct AuthInterceptor {
    authorization: Option<MetadataValue<Ascii>>,
}

impl AuthInterceptor {
    /// An interceptor for `token`; none or an empty token sends no header.
    pub fn new(token: Option<&Token>) -> Result<Self, CliError> {
        let Some(token) = token.map(|t| t.0.trim()).filter(|t| !t.is_empty()) else {
            return Ok(Self::default());
        };
        let mut value = MetadataValue::try_from(format!("Bearer {token}"))
            // Without the value: an error message must not leak the token.
            .map_err(|_| {
                CliError::Usage("the token contains characters not allowed in a header".to_owned())
            })?;
        // Keeps the value out of HTTP/2 header compression tables and debug output.
        value.set_sensitive(true);
        Ok(Self { authorization: Some(value) })
    }
}

impl fmt::Debug for AuthInterceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthInterceptor").field("token", &self.authorization.is_some()).finish()
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.authorization {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// TLS for an `https://` server: the system's and the public roots, plus
/// `--ca-file`; `--client-cert`/`--client-key` for mutual TLS. A file that is
/// missing or holds no PEM block is a usage error naming it. (The services
/// use `psirt_kit::grpc::client_tls`; the CLI stays free of the service kit.)
fn client_tls(global: &GlobalArgs) -> Result<ClientTlsConfig, CliError> {
    let read = |path: &std::path::Path, block: &str| -> Result<Vec<u8>, CliError> {
        let pem = std::fs::read(path)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
        let text = String::from_utf8_lossy(&pem);
        let end = format!("{block}-----");
        if !text.lines().any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&end)) {
            return Err(CliError::Usage(format!("{} holds no PEM {block}", path.display())));
        }
        Ok(pem)
    };
    let mut tls = ClientTlsConfig::new().with_enabled_roots();
    if let Some(ca) = &global.ca_file {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca, "CERTIFICATE")?));
    }
    if let (Some(cert), Some(key)) = (&global.client_cert, &global.client_key) {
        tls = tls.identity(Identity::from_pem(read(cert, "CERTIFICATE")?, read(key, "PRIVATE KEY")?));
    }
    Ok(tls)
}

/// An open connection to the server, from which each service's client is made.
#[derive(Debug, Clone)]
pub struct Connection {
    channel: Transport,
    auth: AuthInterceptor,
}

impl Connection {
    /// Connects to `server` (`--server` or `--triage-server`, already
    /// normalised by [`parse_server`]) within `--timeout`. The timeout bounds
    /// each call until its response headers arrive, so it does not cut off
    /// a long-running stream such as `case watch`.
    pub async fn open(global: &GlobalArgs, server: &str) -> Result<Self, CliError> {
        let auth = AuthInterceptor::new(global.token.as_ref())?;
        let mut endpoint = Endpoint::from_shared(server.to_owned())
            .map_err(|e| CliError::Usage(format!("invalid server address {server}: {e}")))?
            .connect_timeout(global.timeout)
            .timeout(global.timeout);
        if endpoint.uri().scheme_str() == Some("https") {
            endpoint = endpoint
                .tls_config(client_tls(global)?)
                .map_err(|e| CliError::Usage(format!("invalid TLS settings: {}", error_chain(&e))))?;
        } else if global.ca_file.is_some() || global.client_cert.is_some() {
            return Err(CliError::Usage(format!(
                "--ca-file and --client-cert are for https:// servers, and {server} is plaintext"
            )));
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| CliError::Connect { server: server.to_owned(), reason: error_chain(&e) })?;
        let channel = crate::position::Tracked::new(channel, global.session.clone());
        Ok(Self { channel, auth })
    }

    /// A client of the intake service.
    pub fn intake(&self) -> IntakeClient {
        IntakeServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// A client of the triage service's case decisions.
    pub fn triage(&self) -> TriageClient {
        TriageServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// A client of the triage service's case view.
    pub fn cases(&self) -> CaseClient {
        CaseServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// A client of the service's administration (`admin` commands).
    pub fn admin(&self) -> AdminClient {
        AdminServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// A client of the remediation service's plans (`remediation` commands).
    pub fn remediation(&self) -> RemediationClient {
        RemediationServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// A client of the remediation service's advisories (`advisory` commands).
    pub fn advisories(&self) -> AdvisoryClient {
        AdvisoryServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// A client of the notification service (`notify` commands).
    pub fn notifications(&self) -> NotificationClient {
        NotificationServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }
}

/// `outer: inner: root` — tonic's transport error says only "transport
/// error"; the cause (connection refused, DNS) is further down the chain.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_without_scheme_gets_http() {
        assert_eq!(parse_server("localhost:50051").as_deref(), Ok("http://localhost:50051"));
        assert_eq!(parse_server("[::1]:7000").as_deref(), Ok("http://[::1]:7000"));
        assert_eq!(parse_server("http://psirt.example:80").as_deref(), Ok("http://psirt.example:80"));
        assert_eq!(parse_server("https://psirt.example:443").as_deref(), Ok("https://psirt.example:443"));
        assert!(parse_server("").is_err());
        assert!(parse_server("ftp://x:1").is_err());
        assert!(parse_server("http://").is_err());
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_timeout("7"), Ok(Duration::from_secs(7)));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("ten").is_err());
        assert!(parse_timeout("5d").is_err());
    }

    #[test]
    fn interceptor_adds_bearer_token() {
        let token = Token::from("abc.def.ghi".to_owned());
        let mut interceptor = AuthInterceptor::new(Some(&token)).expect("valid token");
        let request = interceptor.call(Request::new(())).expect("intercepted");
        let header = request.metadata().get("authorization").expect("header set");
        assert_eq!(header.to_str().ok(), Some("Bearer abc.def.ghi"));
        assert!(!format!("{token:?} {interceptor:?}").contains("abc"));
    }

    #[test]
    fn no_or_empty_token_sends_nothing() {
        for token in [None, Some(Token::from("  ".to_owned()))] {
            let mut interceptor = AuthInterceptor::new(token.as_ref()).expect("ok");
            let request = interceptor.call(Request::new(())).expect("intercepted");
            assert!(request.metadata().get("authorization").is_none());
        }
    }

    #[test]
    fn bad_token_error_does_not_echo_it() {
        let token = Token::from("sec\nret".to_owned());
        let err = AuthInterceptor::new(Some(&token)).expect_err("newline is not allowed");
        let mut buf = Vec::new();
        err.print(&mut buf).expect("print");
        assert!(!String::from_utf8_lossy(&buf).contains("sec"));
    }
}
