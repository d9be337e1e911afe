//! Per-RPC tracing and metrics: a server span per call whose parent is the W3C trace context
//! in the request metadata, and the `rpc.server.duration` histogram (seconds) by service,
//! method and gRPC status code. The status is read from the trailers, so the measurement
//! covers the whole call including streamed responses.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::Body as _;
use http_body::Frame;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use opentelemetry::propagation::Extractor;
use tonic::Status;
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::auth::split_method_path;
use crate::telemetry::METER;

/// Name of the RPC latency histogram (unit seconds; Prometheus name
/// `rpc_server_duration_seconds`).
pub const RPC_DURATION_METRIC: &str = "rpc.server.duration";

/// Label value used for methods the server does not serve, so that arbitrary paths sent by
/// clients cannot blow up metric cardinality.
pub const OTHER: &str = "_OTHER";

/// Bucket boundaries in seconds, from 1 ms to 10 s.
const BUCKETS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Tower layer adding the span and the duration metric to every request.
#[derive(Clone, Debug)]
pub struct RpcTelemetryLayer {
    duration: Histogram<f64>,
    known_methods: Arc<HashSet<String>>,
}

impl RpcTelemetryLayer {
    /// Records into the global meter [`METER`] (so call it after `telemetry::init`).
    /// `known_methods` are full paths (`/pkg.Service/Method`); others are labelled `_OTHER`.
    pub fn new(known_methods: HashSet<String>) -> Self {
        let duration = opentelemetry::global::meter(METER)
            .f64_histogram(RPC_DURATION_METRIC)
            .with_unit("s")
            .with_description("Duration of gRPC calls handled by the server")
            .with_boundaries(BUCKETS.to_vec())
            .build();
        Self { duration, known_methods: Arc::new(known_methods) }
    }
}

impl<S> Layer<S> for RpcTelemetryLayer {
    type Service = RpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcTelemetry { inner, layer: self.clone() }
    }
}

/// The service produced by [`RpcTelemetryLayer`].
#[derive(Clone, Debug)]
pub struct RpcTelemetry<S> {
    inner: S,
    layer: RpcTelemetryLayer,
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqBody> Service<Request<ReqBody>> for RpcTelemetry<S>
where
    S: Service<Request<ReqBody>, Response = Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let path = req.uri().path();
        let (service, method) = match split_method_path(path) {
            Some(parts) if self.layer.known_methods.contains(path) => parts,
            _ => (OTHER, OTHER),
        };
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
            enduser.id = Empty,
        );
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(req.headers()))
        });
        // Fails only when no OpenTelemetry layer is installed (no OTLP endpoint).
        let _ = span.set_parent(parent);

        let observation = Observation {
            start: Instant::now(),
            span: span.clone(),
            histogram: self.layer.duration.clone(),
            attributes: [
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", service.to_owned()),
                KeyValue::new("rpc.method", method.to_owned()),
            ],
        };
        let future = span.in_scope(|| self.inner.call(req));
        Box::pin(
            async move {
                let response = future.await?;
                // Trailers-only response (errors, auth rejections): the status is a header.
                if let Some(code) = grpc_status(response.headers()) {
                    observation.finish(code);
                    return Ok(response);
                }
                if response.body().is_end_stream() {
                    // No trailers will come: not a well-formed gRPC response.
                    observation.finish(tonic::Code::Unknown as i32);
                    return Ok(response);
                }
                Ok(response.map(|body| {
                    tonic::body::Body::new(ObservedBody { inner: body, observation: Some(observation) })
                }))
            }
            .instrument(span),
        )
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    headers.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

struct Observation {
    start: Instant,
    span: tracing::Span,
    histogram: Histogram<f64>,
    attributes: [KeyValue; 3],
}

impl Observation {
    fn finish(self, code: i32) {
        let elapsed = self.start.elapsed().as_secs_f64();
        let Observation { span, histogram, attributes: [system, service, method], .. } = self;
        histogram.record(
            elapsed,
            &[system, service, method, KeyValue::new("rpc.grpc.status_code", i64::from(code))],
        );
        span.record("rpc.grpc.status_code", code);
        // Server-side error codes per the OpenTelemetry gRPC conventions.
        let is_error = matches!(
            tonic::Code::from_i32(code),
            tonic::Code::Unknown
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Unimplemented
                | tonic::Code::Internal
                | tonic::Code::Unavailable
                | tonic::Code::DataLoss
        );
        span.record("otel.status_code", if is_error { "ERROR" } else { "OK" });
        tracing::debug!(parent: &span, code, elapsed_s = elapsed, "rpc finished");
    }
}

/// Response body that records the observation when the trailers arrive, the stream ends,
/// or the client goes away (recorded as `CANCELLED`).
struct ObservedBody {
    inner: tonic::body::Body,
    observation: Option<Observation>,
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let code = match &polled {
            Some(Ok(frame)) => {
                frame.trailers_ref().map(|t| grpc_status(t).unwrap_or(tonic::Code::Unknown as i32))
            }
            Some(Err(status)) => Some(status.code() as i32),
            None => Some(tonic::Code::Unknown as i32),
        };
        if let Some(code) = code {
            if let Some(observation) = self.observation.take() {
                observation.finish(code);
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        if let Some(observation) = self.observation.take() {
            observation.finish(tonic::Code::Cancelled as i32);
        }
    }
}
