//! The OTLP pipeline: W3C trace context from request metadata becomes the parent of the
//! server span, and the guard shuts down promptly even when the collector is unreachable.

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use opentelemetry::trace::TraceContextExt as _;
use psirt_kit::config::{LogConfig, OtelConfig};
use psirt_kit::grpc::RpcTelemetryLayer;
use tower::{Layer, Service};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Records the trace id of the span the handler runs in.
#[derive(Clone, Default)]
struct TraceCapture {
    trace_id: Arc<Mutex<Option<String>>>,
}

impl Service<http::Request<tonic::body::Body>> for TraceCapture {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: http::Request<tonic::body::Body>) -> Self::Future {
        let context = tracing::Span::current().context();
        let trace_id = context.span().span_context().trace_id().to_string();
        *self.trace_id.lock().expect("lock") = Some(trace_id);
        Box::pin(async { Ok(tonic::Status::ok("").into_http()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_pipeline_follows_incoming_trace_context_and_shuts_down() {
    let guard = psirt_kit::telemetry::init(
        "kit-otel-test",
        &LogConfig { level: "info".to_owned(), ..LogConfig::default() },
        &OtelConfig {
            // Loopback port with nothing listening: exports fail fast.
            endpoint: Some("http://127.0.0.1:1".to_owned()),
            export_timeout: Duration::from_secs(1),
            ..OtelConfig::default()
        },
    )
    .expect("telemetry");
    assert!(guard.otlp_enabled());

    let capture = TraceCapture::default();
    let mut service =
        RpcTelemetryLayer::new(HashSet::from(["/psirt.test.v1.Test/Do".to_owned()])).layer(capture.clone());
    let request = http::Request::builder()
        .uri("http://localhost/psirt.test.v1.Test/Do")
        .header("content-type", "application/grpc")
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .body(tonic::body::Body::empty())
        .expect("request");
    let response = service.call(request).await.expect("infallible");
    assert_eq!(response.headers()["grpc-status"], "0");
    assert_eq!(capture.trace_id.lock().expect("lock").as_deref(), Some(TRACE_ID));

    let started = Instant::now();
    guard.shutdown();
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown took {:?}", started.elapsed());
}
