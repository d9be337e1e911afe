//! `grpc.max_message_bytes` on a service's own servers registered through
//! `ServiceRoutes`: a larger request is answered `RESOURCE_EXHAUSTED` (not tonic's
//! `OUT_OF_RANGE`) before the handler runs; a request within the limit is served.

use std::time::Duration;

use psirt_kit::auth::{AuthLayer, AuthPolicy};
use psirt_kit::config::{AuthConfig, AuthMode, GrpcConfig};
use psirt_kit::parked::{ADMIN_SERVICE, AdminApi, ParkedAdmin, allow_parked_methods};
use psirt_kit::{GrpcServer, ServiceRoutes, Shutdown};
use psirt_proto::admin::ListParkedEventsRequest;
use psirt_proto::admin::admin_service_client::AdminServiceClient;
use psirt_proto::admin::admin_service_server::AdminServiceServer;
use tonic::Code;
use tonic::transport::Channel;

#[tokio::test]
async fn a_request_over_grpc_max_message_bytes_is_resource_exhausted() {
    let config = GrpcConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        max_message_bytes: 2048,
        ..GrpcConfig::default()
    };
    config.validate().expect("valid config");
    let server = GrpcServer::bind(&config).await.expect("bind");
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
    let mut client = AdminServiceClient::new(channel);
    let list =
        |projection: String| ListParkedEventsRequest { projection, page_size: 0, page_token: String::new() };

    // Within the limit: served (no such projection).
    let status = client.list_parked_events(list("nope".to_owned())).await.expect_err("unknown projection");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    // Over the limit (tonic's default would take 4 MiB): refused before the handler.
    let status = client.list_parked_events(list("p".repeat(4096))).await.expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("grpc.max_message_bytes"), "{status:?}");
    // The connection stays usable.
    let status = client.list_parked_events(list("nope".to_owned())).await.expect_err("unknown projection");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("stops").expect("join").expect("served");
}
