//! Authentication and authorization through a real tonic server on loopback, plus the
//! layer's response shape and the claim checks of the authenticator.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use psirt_kit::ServiceRoutes;
use psirt_kit::auth::{Access, AuthLayer, AuthPolicy, Authenticator, Principal, Role};
use psirt_kit::config::{AuthConfig, AuthMode, GrpcConfig, LogConfig, OtelConfig};
use psirt_kit::{GrpcServer, Shutdown};
use secrecy::SecretString;
use serde_json::{Value, json};
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::{Layer, Service};

use crate::support::fixture;

const SECRET: &str = "test-secret-test-secret-test-secret-0123";
const CHECK: &str = "/grpc.health.v1.Health/Check";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after epoch").as_secs()
}

fn claims(sub: &str, roles: Value, exp_offset: i64) -> Value {
    let exp = now().saturating_add_signed(exp_offset);
    json!({ "sub": sub, "roles": roles, "exp": exp, "iat": now() })
}

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("encode hs256")
}

fn signed_with_pem(claims: &Value, alg: Algorithm, kid: Option<&str>, pem_file: &str) -> String {
    let pem = std::fs::read(fixture(pem_file)).expect("read key fixture");
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .expect("parse private key");
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).expect("encode")
}

fn hs256_config() -> AuthConfig {
    AuthConfig { hs256_secret: Some(SecretString::from(SECRET)), ..AuthConfig::default() }
}

fn jwks_file_config() -> AuthConfig {
    AuthConfig { jwks_file: Some(fixture("jwks.json")), ..AuthConfig::default() }
}

fn test_policy() -> AuthPolicy {
    AuthPolicy::new().allow(CHECK, &[Role::Analyst])
}

struct TestServer {
    addr: SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    async fn start(auth: AuthConfig, policy: AuthPolicy) -> Self {
        let grpc = GrpcConfig { listen: "127.0.0.1:0".parse().expect("addr"), ..GrpcConfig::default() };
        let server = GrpcServer::bind(&grpc).await.expect("bind");
        let addr = server.local_addr();
        let layer = AuthLayer::from_config(&auth, policy).await.expect("auth");
        let shutdown = Shutdown::new();
        let task = tokio::spawn(server.serve(
            ServiceRoutes::new(),
            layer,
            &[],
            &["psirt.test.v1.TestService"],
            shutdown.clone(),
        ));
        Self { addr, shutdown, task }
    }

    async fn client(&self) -> HealthClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        HealthClient::new(channel)
    }

    async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops within the deadline")
            .expect("server task")
            .expect("server result");
    }
}

async fn check(client: &mut HealthClient<Channel>, token: Option<&str>) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(HealthCheckRequest { service: String::new() });
    if let Some(token) = token {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("metadata");
        request.metadata_mut().insert("authorization", value);
    }
    let response = client.check(request).await?;
    assert_eq!(response.into_inner().status, ServingStatus::Serving as i32);
    Ok(())
}

fn code(result: Result<(), tonic::Status>) -> Code {
    match result {
        Ok(()) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_tokens_through_a_real_server() {
    let telemetry = psirt_kit::telemetry::init(
        "kit-auth-test",
        &LogConfig { level: "warn".to_owned(), ..LogConfig::default() },
        &OtelConfig::default(),
    )
    .expect("telemetry");
    let server = TestServer::start(hs256_config(), test_policy()).await;
    let mut client = server.client().await;

    assert_eq!(code(check(&mut client, None).await), Code::Unauthenticated);
    assert_eq!(code(check(&mut client, Some("not-a-jwt")).await), Code::Unauthenticated);
    let expired = hs256(&claims("alice", json!(["analyst"]), -3600), SECRET);
    assert_eq!(code(check(&mut client, Some(&expired)).await), Code::Unauthenticated);
    let forged =
        hs256(&claims("alice", json!(["analyst"]), 600), "another-secret-another-secret-another-secret");
    assert_eq!(code(check(&mut client, Some(&forged)).await), Code::Unauthenticated);
    let reporter = hs256(&claims("bob", json!(["reporter"]), 600), SECRET);
    let denied = check(&mut client, Some(&reporter)).await.expect_err("denied");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("analyst"), "{}", denied.message());
    let analyst = hs256(&claims("alice", json!(["analyst"]), 600), SECRET);
    assert_eq!(code(check(&mut client, Some(&analyst)).await), Code::Ok);
    let admin = hs256(&claims("root", json!(["admin"]), 600), SECRET);
    assert_eq!(code(check(&mut client, Some(&admin)).await), Code::Ok);
    let space_separated = hs256(&claims("carol", json!("reporter analyst"), 600), SECRET);
    assert_eq!(code(check(&mut client, Some(&space_separated)).await), Code::Ok);
    // A valid token for an RS256-only deployment shape: alg not accepted without a key.
    let rs = signed_with_pem(
        &claims("dave", json!(["admin"]), 600),
        Algorithm::RS256,
        Some("rsa-1"),
        "rsa_private.pem",
    );
    assert_eq!(code(check(&mut client, Some(&rs)).await), Code::Unauthenticated);

    // Watch stays public (built-in), even without a token.
    let mut watch = client
        .watch(HealthCheckRequest { service: "psirt.test.v1.TestService".to_owned() })
        .await
        .expect("watch is public")
        .into_inner();
    let first = watch.message().await.expect("watch message").expect("some");
    assert_eq!(first.status, ServingStatus::Serving as i32);
    drop(watch);

    // The latency histogram saw both the rejections and the successes.
    let metrics = telemetry.metrics().render();
    assert!(metrics.contains("rpc_server_duration_seconds_bucket"), "{metrics}");
    for needle in [
        "rpc_method=\"Check\"",
        "rpc_service=\"grpc.health.v1.Health\"",
        "rpc_grpc_status_code=\"16\"",
        "rpc_grpc_status_code=\"7\"",
        "rpc_grpc_status_code=\"0\"",
    ] {
        assert!(metrics.contains(needle), "{needle} not in {metrics}");
    }
    server.stop().await;
}

#[tokio::test]
async fn rs256_and_es256_with_a_jwks_file() {
    let server = TestServer::start(jwks_file_config(), test_policy()).await;
    let mut client = server.client().await;
    let analyst = claims("erin", json!(["analyst"]), 600);

    let rs = signed_with_pem(&analyst, Algorithm::RS256, Some("rsa-1"), "rsa_private.pem");
    assert_eq!(code(check(&mut client, Some(&rs)).await), Code::Ok);
    let es = signed_with_pem(&analyst, Algorithm::ES256, Some("ec-1"), "ec_private.pem");
    assert_eq!(code(check(&mut client, Some(&es)).await), Code::Ok);
    // Right kid, wrong key: bad signature.
    let forged = signed_with_pem(&analyst, Algorithm::RS256, Some("rsa-1"), "rsa_other_private.pem");
    assert_eq!(code(check(&mut client, Some(&forged)).await), Code::Unauthenticated);
    // Unknown kid.
    let unknown = signed_with_pem(&analyst, Algorithm::RS256, Some("rsa-9"), "rsa_private.pem");
    assert_eq!(code(check(&mut client, Some(&unknown)).await), Code::Unauthenticated);
    // The encryption key in the set is never used for signatures.
    let enc = signed_with_pem(&analyst, Algorithm::RS256, Some("enc-1"), "rsa_private.pem");
    assert_eq!(code(check(&mut client, Some(&enc)).await), Code::Unauthenticated);
    // HS256 is not accepted when only a JWKS is configured.
    let hs = hs256(&analyst, SECRET);
    assert_eq!(code(check(&mut client, Some(&hs)).await), Code::Unauthenticated);
    let engineer = signed_with_pem(
        &claims("frank", json!(["engineer"]), 600),
        Algorithm::ES256,
        Some("ec-1"),
        "ec_private.pem",
    );
    assert_eq!(code(check(&mut client, Some(&engineer)).await), Code::PermissionDenied);
    server.stop().await;
}

#[tokio::test]
async fn jwks_url_is_fetched_at_startup() {
    let jwks = std::fs::read_to_string(fixture("jwks.json")).expect("jwks fixture");
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { ([(http::header::CONTENT_TYPE, "application/json")], jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let idp = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let config = AuthConfig {
        jwks_url: Some(format!("http://{idp}/.well-known/jwks.json")),
        issuer: Some("https://idp.test".to_owned()),
        audience: Some("psirt".to_owned()),
        ..AuthConfig::default()
    };
    let server = TestServer::start(config, test_policy()).await;
    let mut client = server.client().await;
    let mut good = claims("gina", json!(["analyst"]), 600);
    good["iss"] = json!("https://idp.test");
    good["aud"] = json!("psirt");
    let token = signed_with_pem(&good, Algorithm::RS256, Some("rsa-1"), "rsa_private.pem");
    assert_eq!(code(check(&mut client, Some(&token)).await), Code::Ok);
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    let token = signed_with_pem(&wrong_aud, Algorithm::RS256, Some("rsa-1"), "rsa_private.pem");
    assert_eq!(code(check(&mut client, Some(&token)).await), Code::Unauthenticated);
    server.stop().await;

    // An unreachable JWKS URL fails startup.
    let config =
        AuthConfig { jwks_url: Some("http://127.0.0.1:9/jwks.json".to_owned()), ..AuthConfig::default() };
    assert!(Authenticator::from_config(&config).await.is_err());
}

#[tokio::test]
async fn authenticator_checks_claims() {
    let config = AuthConfig {
        issuer: Some("https://idp.test".to_owned()),
        audience: Some("psirt".to_owned()),
        leeway_seconds: 0,
        ..hs256_config()
    };
    let auth = Authenticator::from_config(&config).await.expect("authenticator");
    let mut good = claims("hank", json!(["engineer", "bogus"]), 600);
    good["iss"] = json!("https://idp.test");
    good["aud"] = json!(["other", "psirt"]);
    good["products"] = json!(["router-x"]);
    let principal = auth.authenticate(&hs256(&good, SECRET)).await.expect("valid");
    assert_eq!(principal.subject, "hank");
    assert_eq!(principal.roles, vec![Role::Engineer]);
    assert_eq!(principal.issuer.as_deref(), Some("https://idp.test"));
    assert_eq!(principal.claims["products"], json!(["router-x"]));

    let reject = |claims: Value| {
        let auth = auth.clone();
        async move { auth.authenticate(&hs256(&claims, SECRET)).await.expect_err("rejected").0 }
    };
    let mut c = good.clone();
    c["iss"] = json!("https://evil.test");
    assert_eq!(reject(c).await, "token issuer not accepted");
    let mut c = good.clone();
    c.as_object_mut().expect("object").remove("aud");
    assert_eq!(reject(c).await, "token is missing a required claim");
    let mut c = good.clone();
    c["nbf"] = json!(now() + 3600);
    assert_eq!(reject(c).await, "token not yet valid");
    let mut c = good.clone();
    c.as_object_mut().expect("object").remove("sub");
    assert_eq!(reject(c).await, "token is missing a required claim");
    let mut c = good.clone();
    c["exp"] = json!(now() - 10);
    assert_eq!(reject(c).await, "token expired");
}

/// Captures what the auth layer hands to the service.
#[derive(Clone, Default)]
struct Capture {
    seen: Arc<Mutex<Vec<Option<Principal>>>>,
}

impl Service<http::Request<tonic::body::Body>> for Capture {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        self.seen.lock().expect("lock").push(req.extensions().get::<Principal>().cloned());
        Box::pin(async { Ok(tonic::Status::ok("").into_http()) })
    }
}

fn request(path: &str, token: Option<&str>) -> http::Request<tonic::body::Body> {
    let mut builder = http::Request::builder()
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(tonic::body::Body::empty()).expect("request")
}

#[tokio::test]
async fn layer_answers_trailers_only_and_inserts_the_principal() {
    let policy = AuthPolicy::new()
        .allow("/psirt.intake.v1.IntakeService/SubmitReport", &[Role::Reporter])
        .method("/psirt.intake.v1.IntakeService/Ping", Access::Public);
    let layer = AuthLayer::from_config(&hs256_config(), policy).await.expect("layer");
    let capture = Capture::default();
    let mut service = layer.layer(capture.clone());
    let reporter = hs256(&claims("ivy", json!(["reporter"]), 600), SECRET);

    // Unknown method: denied even with a valid token (fail closed).
    let response = service
        .call(request("/psirt.intake.v1.IntakeService/DeleteEverything", Some(&reporter)))
        .await
        .expect("infallible");
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert_eq!(response.headers()["grpc-status"], "7");
    // Missing token: trailers-only UNAUTHENTICATED with a message.
    let response =
        service.call(request("/psirt.intake.v1.IntakeService/SubmitReport", None)).await.expect("infallible");
    assert_eq!(response.headers()["grpc-status"], "16");
    assert!(response.headers().contains_key("grpc-message"));
    assert!(capture.seen.lock().expect("lock").is_empty());

    // Allowed: the handler sees the principal.
    let response = service
        .call(request("/psirt.intake.v1.IntakeService/SubmitReport", Some(&reporter)))
        .await
        .expect("infallible");
    assert_eq!(response.headers()["grpc-status"], "0");
    // Public: anonymous without roles.
    service.call(request("/psirt.intake.v1.IntakeService/Ping", None)).await.expect("infallible");
    let seen = capture.seen.lock().expect("lock").clone();
    let principal = seen[0].as_ref().expect("principal");
    assert_eq!(principal.subject, "ivy");
    assert_eq!(principal.roles, vec![Role::Reporter]);
    let anonymous = seen[1].as_ref().expect("principal");
    assert!(anonymous.is_anonymous());
    assert!(anonymous.roles.is_empty());
}

#[tokio::test]
async fn mode_none_lets_everyone_in_with_every_role_to_the_methods_of_the_policy_only() {
    let config = AuthConfig { mode: AuthMode::None, ..AuthConfig::default() };
    let policy = AuthPolicy::new().allow("/psirt.triage.v1.TriageService/AcceptCase", &[Role::Analyst]);
    let layer = AuthLayer::from_config(&config, policy).await.expect("layer");
    let capture = Capture::default();
    let mut service = layer.layer(capture.clone());
    let response =
        service.call(request("/psirt.triage.v1.TriageService/AcceptCase", None)).await.expect("infallible");
    assert_eq!(response.headers()["grpc-status"], "0");
    let seen = capture.seen.lock().expect("lock").clone();
    let principal = seen[0].as_ref().expect("principal");
    assert_eq!(principal.subject, "anonymous");
    assert!(principal.has_role(Role::Admin));
    assert_eq!(principal.roles, Role::ALL.to_vec());
    // A method missing from the policy is denied without authentication too (fail closed).
    for path in ["/psirt.triage.v1.TriageService/DeleteEverything", "/psirt.other.v1.Other/Call", "/nope"] {
        let response = service.call(request(path, None)).await.expect("infallible");
        assert_eq!(response.headers()["grpc-status"], "7", "{path}");
    }
    assert_eq!(capture.seen.lock().expect("lock").len(), 1, "the denied calls never reach the service");
    // The kit's health check stays public.
    let response = service.call(request(CHECK, None)).await.expect("infallible");
    assert_eq!(response.headers()["grpc-status"], "0");
}

#[tokio::test]
async fn the_server_refuses_to_serve_without_authentication_on_a_non_loopback_address() {
    let none = AuthConfig { mode: AuthMode::None, ..AuthConfig::default() };
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let grpc = GrpcConfig { listen: listen.parse().expect("addr"), ..GrpcConfig::default() };
        let Ok(server) = GrpcServer::bind(&grpc).await else {
            continue; // no IPv6 on this host
        };
        let layer = AuthLayer::from_config(&none, AuthPolicy::new()).await.expect("layer");
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            server.serve(ServiceRoutes::new(), layer, &[], &["psirt.test.v1.TestService"], Shutdown::new()),
        )
        .await
        .expect("refused at once, not serving");
        let err = result.expect_err("refused").to_string();
        assert!(err.contains("grpc.listen") && err.contains("loopback"), "{err}");
    }
    // On loopback it serves.
    let server = TestServer::start(none, test_policy()).await;
    let mut client = server.client().await;
    assert_eq!(code(check(&mut client, None).await), Code::Ok);
    server.stop().await;
    // With authentication any address is served.
    let grpc = GrpcConfig { listen: "0.0.0.0:0".parse().expect("addr"), ..GrpcConfig::default() };
    let server = GrpcServer::bind(&grpc).await.expect("bind");
    let layer = AuthLayer::from_config(&hs256_config(), test_policy()).await.expect("layer");
    let shutdown = Shutdown::new();
    let task = tokio::spawn(server.serve(ServiceRoutes::new(), layer, &[], &[], shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!task.is_finished(), "serving");
    shutdown.trigger();
    task.await.expect("join").expect("served");
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_services_without_a_token() {
    use tonic_reflection::pb::{v1, v1alpha};

    let server = TestServer::start(hs256_config(), test_policy()).await;
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection v1")
        .into_inner();
    let response = stream.message().await.expect("message").expect("some");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("unexpected reflection response");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");

    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut stream = client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection v1alpha")
        .into_inner();
    assert!(stream.message().await.expect("message").is_some());
    server.stop().await;
}

#[tokio::test]
async fn shutdown_marks_services_not_serving_and_stops() {
    let grpc = GrpcConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        shutdown_grace: Duration::from_millis(200),
        ..GrpcConfig::default()
    };
    let server = GrpcServer::bind(&grpc).await.expect("bind");
    let addr = server.local_addr();
    let layer = AuthLayer::from_config(&hs256_config(), AuthPolicy::new()).await.expect("layer");
    let shutdown = Shutdown::new();
    let task = tokio::spawn(server.serve(
        ServiceRoutes::new(),
        layer,
        &[],
        &["psirt.test.v1.TestService"],
        shutdown.clone(),
    ));
    let channel =
        Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect");
    let mut client = HealthClient::new(channel);
    // An open Watch stream would keep a graceful drain waiting forever; the grace period
    // bounds it.
    let mut watch = client
        .watch(HealthCheckRequest { service: "psirt.test.v1.TestService".to_owned() })
        .await
        .expect("watch")
        .into_inner();
    let first = watch.message().await.expect("message").expect("some");
    assert_eq!(first.status, ServingStatus::Serving as i32);

    shutdown.trigger();
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("status update before the deadline")
        .expect("message")
        .expect("some");
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("server stops within the grace period")
        .expect("join")
        .expect("serve result");
}
