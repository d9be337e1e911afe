//! Trace context crosses the event bus: with OTLP export configured, the
//! trace a gRPC caller started is carried into the stored event's
//! `traceparent` header, for the services that react to it.

mod common;

use common::submission;
use psirt_intake::{Application, Config};
use psirt_kit::Shutdown;
use psirt_kit::config::AuthMode;
use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_testkit::{NatsServer, TestDatabase, free_port};
use tonic::transport::Channel;

#[tokio::test]
async fn the_callers_trace_id_reaches_the_event_headers() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let db = TestDatabase::sqlite()?;
    let mut config: Config = common::config(&nats, &db, AuthMode::None);
    // Nothing listens there: export fails quietly, propagation still works.
    config.otel.endpoint = Some(format!("http://127.0.0.1:{}", free_port()?));
    config.otel.export_timeout = std::time::Duration::from_millis(500);
    let telemetry = psirt_kit::telemetry::init("psirt-intake-trace-test", &config.log, &config.otel)?;
    let app = Application::build(&config, telemetry.metrics()).await?;
    let addr = app.grpc_addr();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    let channel = Channel::from_shared(format!("http://{addr}"))?.connect().await?;
    let mut client = IntakeServiceClient::new(channel);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = tonic::Request::new(submission("trace-1", "Open redirect in the login flow"));
    request
        .metadata_mut()
        .insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().expect("header"));
    let report_id = client.submit_report(request).await?.into_inner().report_id;

    let store = psirt_eventstore::EventStore::open(
        nats.connect().await?,
        &psirt_eventstore::StreamSettings::managed(),
    )
    .await?;
    let events = store.load(&format!("psirt.evt.report.{report_id}")).await?;
    let header = events[0].headers.get("traceparent").map(|v| v.as_str().to_owned()).unwrap_or_default();
    assert!(
        header.starts_with(&format!("00-{trace_id}-")),
        "traceparent {header:?} continues the caller's trace"
    );
    let parent = psirt_eventstore::extract_trace_context(&events[0].headers);
    use opentelemetry::trace::TraceContextExt;
    assert_eq!(parent.span().span_context().trace_id().to_string(), trace_id);

    shutdown.trigger();
    task.await??;
    Ok(())
}
