//! What the runner tells the outside: the spans events are handled in (so
//! a trace continues from the service that appended an event into every
//! service that consumes it) and the projection metrics.

use psirt_eventstore::RecordedEvent;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The span of one event's handling by `projection`: a consumer span whose
/// parent is the trace context the event was appended under (its
/// `traceparent` header), so the trace that appended the event continues in
/// every service that consumes it, and whatever the handler appends under
/// this span carries the same trace on. An event without trace context
/// starts a trace of its own. The default
/// [`Projection::apply_batch`](crate::Projection::apply_batch) runs
/// each `apply` in it; a projection that overrides `apply_batch` and appends
/// events (a reaction) must run each event's work in it.
pub fn event_span(projection: &str, event: &RecordedEvent) -> tracing::Span {
    let short = event.event_type.rsplit('.').next().unwrap_or(event.event_type.as_str());
    let span = tracing::info_span!(
        "projection.apply",
        otel.name = %format_args!("{projection} {short}"),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.destination.name = %event.subject,
        psirt.projection = projection,
        psirt.event_type = %event.event_type,
        psirt.stream_sequence = event.sequence,
    );
    // Fails only when no OpenTelemetry layer is installed (no OTLP endpoint).
    let _ = span.set_parent(psirt_eventstore::extract_trace_context(&event.headers));
    span
}

/// A span for work an event causes outside a projection (a notification
/// delivery sending the event to a peer), parented to the span that
/// appended the event, like [`event_span`]. `kind` is an OpenTelemetry
/// span kind (`client`, `producer`, `internal`).
pub fn caused_span(name: &str, kind: &'static str, event: &RecordedEvent) -> tracing::Span {
    let span = tracing::info_span!(
        "caused",
        otel.name = %name,
        otel.kind = kind,
        messaging.system = "nats",
        messaging.destination.name = %event.subject,
        psirt.event_type = %event.event_type,
        psirt.stream_sequence = event.sequence,
    );
    let _ = span.set_parent(psirt_eventstore::extract_trace_context(&event.headers));
    span
}

/// Records whether a projection is stalled (gauge
/// `psirt.projection.stalled`, 1 while it is), for the service's watcher.
pub fn record_stalled(name: &str, stalled: bool) {
    metrics::stalled(name, stalled);
}

/// The projection metrics (OpenTelemetry instruments of the `psirt` meter).
pub(crate) mod metrics {
    use std::sync::OnceLock;

    use opentelemetry::KeyValue;
    use opentelemetry::metrics::{Counter, Gauge};

    struct Instruments {
        applied: Counter<u64>,
        undecodable: Counter<u64>,
        foreign: Counter<u64>,
        lag: Gauge<u64>,
        pending: Gauge<u64>,
        stalled: Gauge<u64>,
    }

    fn instruments() -> &'static Instruments {
        static I: OnceLock<Instruments> = OnceLock::new();
        I.get_or_init(|| {
            let meter = opentelemetry::global::meter("psirt");
            Instruments {
                applied: meter
                    .u64_counter("psirt.projection.events_applied")
                    .with_description("events applied to a read model")
                    .build(),
                undecodable: meter
                    .u64_counter("psirt.projection.events_undecodable")
                    .with_description("events a projection could not decode (skipped or parked)")
                    .build(),
                foreign: meter
                    .u64_counter("psirt.projection.events_foreign")
                    .with_description(
                        "events parked because their type does not belong to the aggregate of their subject",
                    )
                    .build(),
                lag: meter
                    .u64_gauge("psirt.projection.lag")
                    .with_description("stream last sequence minus the projection checkpoint")
                    .build(),
                stalled: meter
                    .u64_gauge("psirt.projection.stalled")
                    .with_description(
                        "1 while a projection is stalled (failing or too far behind for projection.stalled_after_ms)",
                    )
                    .build(),
                pending: meter
                    .u64_gauge("psirt.projection.consumer_pending")
                    .with_description(
                        "messages of the projection's consumer not yet delivered or not yet acknowledged",
                    )
                    .build(),
            }
        })
    }

    pub(crate) fn applied(name: &str, n: u64) {
        if n > 0 {
            instruments().applied.add(n, &[KeyValue::new("projection", name.to_owned())]);
        }
    }

    /// Exposes the projection's counters at zero before its first event, so
    /// rates and alerts see the series from the start.
    pub(crate) fn declare(name: &str) {
        let labels = [KeyValue::new("projection", name.to_owned())];
        instruments().applied.add(0, &labels);
        instruments().undecodable.add(0, &labels);
        instruments().foreign.add(0, &labels);
    }

    pub(crate) fn foreign(name: &str) {
        instruments().foreign.add(1, &[KeyValue::new("projection", name.to_owned())]);
    }

    pub(crate) fn undecodable(name: &str) {
        instruments().undecodable.add(1, &[KeyValue::new("projection", name.to_owned())]);
    }

    pub(crate) fn stalled(name: &str, stalled: bool) {
        instruments().stalled.record(u64::from(stalled), &[KeyValue::new("projection", name.to_owned())]);
    }

    pub(crate) fn lag(name: &str, lag: u64) {
        instruments().lag.record(lag, &[KeyValue::new("projection", name.to_owned())]);
    }

    pub(crate) fn consumer_pending(name: &str, consumer: &str, pending: u64) {
        instruments().pending.record(
            pending,
            &[KeyValue::new("projection", name.to_owned()), KeyValue::new("consumer", consumer.to_owned())],
        );
    }
}
