//! gRPC over TLS and mutual TLS (`grpc.tls_*`): clients that trust the CA are
//! served, plaintext and unknown CAs are not, and with a client CA only
//! clients presenting a certificate it signed get through. Broken settings
//! stop the start with the file named.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use psirt_kit::ServiceRoutes;
use psirt_kit::auth::{AuthLayer, AuthPolicy};
use psirt_kit::config::{AuthConfig, AuthMode, GrpcConfig};
use psirt_kit::{GrpcServer, Shutdown};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::fixture;

const SERVICE: &str = "psirt.test.v1.TestService";

fn tls_config(client_ca: Option<PathBuf>) -> GrpcConfig {
    GrpcConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        tls_cert_file: Some(fixture("tls_server.pem")),
        tls_key_file: Some(fixture("tls_server_key.pem")),
        tls_client_ca_file: client_ca,
        ..GrpcConfig::default()
    }
}

async fn start(config: GrpcConfig) -> (SocketAddr, Shutdown) {
    config.validate().expect("valid config");
    let server = GrpcServer::bind(&config).await.expect("bind");
    let addr = server.local_addr();
    let auth = AuthConfig { mode: AuthMode::None, ..AuthConfig::default() };
    let layer = AuthLayer::from_config(&auth, AuthPolicy::new()).await.expect("auth");
    let shutdown = Shutdown::new();
    tokio::spawn(server.serve(ServiceRoutes::new(), layer, &[], &[SERVICE], shutdown.clone()));
    (addr, shutdown)
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture")
}

/// Health of the served API over a channel to `url`; the error as text.
async fn check(url: String, tls: Option<ClientTlsConfig>) -> Result<i32, String> {
    let mut endpoint = Channel::from_shared(url).map_err(|e| e.to_string())?.timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| format!("{e:?}"))?;
    }
    let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest { service: SERVICE.to_owned() })
        .await
        .map_err(|s| format!("{s:?}"))?;
    Ok(response.into_inner().status)
}

fn trusting(ca: &str) -> ClientTlsConfig {
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem(ca))).domain_name("localhost")
}

#[tokio::test]
async fn a_tls_server_serves_clients_that_trust_its_ca_and_nobody_else() {
    let (addr, shutdown) = start(tls_config(None)).await;
    let https = format!("https://localhost:{}", addr.port());

    let status = check(https.clone(), Some(trusting("tls_ca.pem"))).await.expect("trusted CA");
    assert_eq!(status, ServingStatus::Serving as i32);

    let unknown = check(https, Some(trusting("other_ca.pem"))).await.expect_err("unknown CA");
    assert!(unknown.to_lowercase().contains("certificate"), "{unknown}");

    let plaintext = check(format!("http://{addr}"), None).await.expect_err("plaintext to a TLS port");
    assert!(!plaintext.is_empty());
    shutdown.trigger();
}

#[tokio::test]
async fn mutual_tls_serves_only_clients_with_a_certificate_the_client_ca_signed() {
    let (addr, shutdown) = start(tls_config(Some(fixture("tls_ca.pem")))).await;
    let https = format!("https://localhost:{}", addr.port());

    let anonymous =
        check(https.clone(), Some(trusting("tls_ca.pem"))).await.expect_err("no client certificate");
    assert!(!anonymous.is_empty());

    let identified =
        trusting("tls_ca.pem").identity(Identity::from_pem(pem("tls_client.pem"), pem("tls_client_key.pem")));
    let status =
        check(https.clone(), Some(identified)).await.expect("client certificate signed by the client CA");
    assert_eq!(status, ServingStatus::Serving as i32);

    // The kit's client settings (notification's calls to triage) do the same.
    let (ca, cert, key) = (fixture("tls_ca.pem"), fixture("tls_client.pem"), fixture("tls_client_key.pem"));
    let kit = psirt_kit::grpc::client_tls(Some(&ca), Some((&cert, &key))).expect("client TLS");
    assert_eq!(check(https.clone(), Some(kit)).await.expect("kit client TLS"), ServingStatus::Serving as i32);
    let without_identity = psirt_kit::grpc::client_tls(Some(&ca), None).expect("client TLS");
    assert!(check(https, Some(without_identity)).await.is_err(), "no client certificate");
    let swapped =
        psirt_kit::grpc::client_tls(Some(&ca), Some((&key, &cert))).expect_err("key and cert swapped");
    assert!(format!("{swapped:#}").contains("tls_client_key.pem"), "{swapped:#}");
    shutdown.trigger();
}

#[tokio::test]
async fn broken_tls_settings_stop_the_start_with_the_file_named() {
    let missing =
        GrpcConfig { tls_key_file: Some(PathBuf::from("/nonexistent/grpc.key")), ..tls_config(None) };
    let err = format!("{:#}", GrpcServer::bind(&missing).await.expect_err("missing key file"));
    assert!(err.contains("/nonexistent/grpc.key"), "{err}");

    // A certificate where the key belongs.
    let swapped = GrpcConfig { tls_key_file: Some(fixture("tls_ca.pem")), ..tls_config(None) };
    let err = format!("{:#}", GrpcServer::bind(&swapped).await.expect_err("no key in the key file"));
    assert!(err.contains("tls_ca.pem") && err.contains("PRIVATE KEY"), "{err}");

    // Another certificate's key.
    let mismatched = GrpcConfig { tls_key_file: Some(fixture("tls_client_key.pem")), ..tls_config(None) };
    let err = format!("{:#}", GrpcServer::bind(&mismatched).await.expect_err("key of another certificate"));
    assert!(err.contains("tls_server.pem"), "{err}");

    let half = GrpcConfig { tls_key_file: None, ..tls_config(None) };
    let problems = half.validate().expect_err("certificate without key").to_string();
    assert!(problems.contains("grpc.tls_cert_file"), "{problems}");

    let client_ca_alone = GrpcConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        tls_client_ca_file: Some(fixture("tls_ca.pem")),
        ..GrpcConfig::default()
    };
    let problems = client_ca_alone.validate().expect_err("client CA without TLS").to_string();
    assert!(problems.contains("grpc.tls_client_ca_file"), "{problems}");
}
