//! `grpc.health.v1` tells what `/readyz` tells: with a [`Readiness`] attached, every
//! served service name and `""` are `NOT_SERVING` while a check is not ready (a lost
//! dependency, a stalled projection) and `SERVING` again when it recovers.

use std::time::Duration;

use psirt_kit::admin::Readiness;
use psirt_kit::auth::{AuthLayer, AuthPolicy};
use psirt_kit::config::{AuthConfig, AuthMode, GrpcConfig};
use psirt_kit::parked::{ADMIN_SERVICE, AdminApi, ParkedAdmin, allow_parked_methods};
use psirt_kit::{GrpcServer, ServiceRoutes, Shutdown};
use psirt_proto::admin::admin_service_server::AdminServiceServer;
use psirt_testkit::eventually;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const DEADLINE: Duration = Duration::from_secs(10);

async fn status(client: &HealthClient<Channel>, service: &str) -> Option<ServingStatus> {
    let response =
        client.clone().check(HealthCheckRequest { service: service.to_owned() }).await.ok()?.into_inner();
    ServingStatus::try_from(response.status).ok()
}

async fn wait_all(client: &HealthClient<Channel>, want: ServingStatus, what: &str) {
    for service in ["", ADMIN_SERVICE] {
        eventually(DEADLINE, &format!("{what}: {service:?} {want:?}"), || async move {
            (status(client, service).await? == want).then_some(())
        })
        .await
        .expect("health status");
    }
}

#[tokio::test]
async fn grpc_health_follows_readiness_per_service_and_overall() {
    let config = GrpcConfig { listen: "127.0.0.1:0".parse().expect("addr"), ..GrpcConfig::default() };
    let readiness = Readiness::new();
    let serving = readiness.register("grpc");
    let nats = readiness.register("nats");
    nats.set_ready(true);
    let server = GrpcServer::bind(&config).await.expect("bind").with_readiness(readiness.clone());
    let addr = server.local_addr();
    let auth = AuthConfig { mode: AuthMode::None, ..AuthConfig::default() };
    let layer = AuthLayer::from_config(&auth, allow_parked_methods(AuthPolicy::new())).await.expect("auth");
    let routes = ServiceRoutes::new()
        .add_service(AdminServiceServer::new(AdminApi::new("test", ParkedAdmin::new(vec![]))));
    let shutdown = Shutdown::new();
    let task = tokio::spawn(server.serve(
        routes,
        layer,
        &[psirt_proto::FILE_DESCRIPTOR_SET],
        &[ADMIN_SERVICE],
        shutdown.clone(),
    ));
    let channel =
        Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect");
    let client = HealthClient::new(channel);

    // Not ready until the service says it serves.
    wait_all(&client, ServingStatus::NotServing, "before the service is ready").await;
    serving.set_ready(true);
    wait_all(&client, ServingStatus::Serving, "ready").await;

    // A dependency lost: NOT_SERVING, per name and overall, as /readyz answers 503.
    nats.set_ready(false);
    assert!(!readiness.is_ready());
    wait_all(&client, ServingStatus::NotServing, "nats lost").await;
    nats.set_ready(true);
    wait_all(&client, ServingStatus::Serving, "nats back").await;

    // A check registered later (a projection) counts too.
    let projection = readiness.register("projection cases");
    wait_all(&client, ServingStatus::NotServing, "a new projection not yet ready").await;
    projection.set_ready(true);
    wait_all(&client, ServingStatus::Serving, "projection ready").await;

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("stops").expect("join").expect("served");
}
