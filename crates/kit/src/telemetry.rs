//! Logs, traces and metrics for a service process: JSON (or pretty) logs on stdout, a
//! Prometheus registry fed by the OpenTelemetry meter provider (always), and OTLP/gRPC export
//! of traces and metrics when `otel.endpoint` is set. [`init`] returns a guard that flushes
//! and shuts the providers down.

use std::borrow::Cow;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{KeyValue, global};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use prometheus::{Encoder as _, TextEncoder};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{LogConfig, LogFormat, OtelConfig};

/// Name of the meter the kit records its own instruments with; services may use it too
/// (`opentelemetry::global::meter(psirt_kit::telemetry::METER)`).
pub const METER: &str = "psirt";

/// Version reported as `service.version`: all crates of the workspace share one version.
pub const SERVICE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Content type of the Prometheus text exposition format served on `/metrics`.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Name of the counter of SLA deadlines a scheduler recorded as breached (label `clock`:
/// `acknowledge`, `triage`, `remediation`; Prometheus `psirt_sla_breaches_total`).
pub const SLA_BREACHES_METRIC: &str = "psirt.sla.breaches";

fn sla_breaches() -> &'static opentelemetry::metrics::Counter<u64> {
    static COUNTER: std::sync::OnceLock<opentelemetry::metrics::Counter<u64>> = std::sync::OnceLock::new();
    COUNTER.get_or_init(|| {
        global::meter(METER)
            .u64_counter(SLA_BREACHES_METRIC)
            .with_description("SLA deadlines recorded as breached (SlaBreached appended), by clock")
            .build()
    })
}

/// Counts one SLA breach the scheduler recorded on `clock`.
pub fn record_sla_breach(clock: &str) {
    sla_breaches().add(1, &[KeyValue::new("clock", clock.to_owned())]);
}

/// Exposes the SLA breach counter of each of `clocks` at zero, so dashboards and alerts see
/// the series before the first breach. Call it after [`init`].
pub fn declare_sla_clocks(clocks: &[&str]) {
    for clock in clocks {
        sla_breaches().add(0, &[KeyValue::new("clock", (*clock).to_owned())]);
    }
}

/// Cheap cloneable handle that renders the process's metrics in Prometheus text format.
#[derive(Clone, Debug, Default)]
pub struct MetricsHandle {
    registry: prometheus::Registry,
}

impl MetricsHandle {
    /// Wraps an existing registry.
    pub fn new(registry: prometheus::Registry) -> Self {
        Self { registry }
    }

    /// The underlying registry, to register non-OpenTelemetry collectors.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Every metric in Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %err, "failed to encode prometheus metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Keeps the telemetry pipelines alive; dropping it (or [`TelemetryGuard::shutdown`]) flushes
/// pending spans and metrics and shuts the providers down.
pub struct TelemetryGuard {
    metrics: MetricsHandle,
    meter_provider: Option<SdkMeterProvider>,
    tracer_provider: Option<SdkTracerProvider>,
    otlp: bool,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard").field("otlp", &self.otlp).finish_non_exhaustive()
    }
}

impl TelemetryGuard {
    /// Handle for the admin server's `/metrics`.
    pub fn metrics(&self) -> MetricsHandle {
        self.metrics.clone()
    }

    /// The Prometheus registry the OpenTelemetry metrics are exported into.
    pub fn prometheus_registry(&self) -> &prometheus::Registry {
        self.metrics.registry()
    }

    /// True when traces and metrics are also exported over OTLP.
    pub fn otlp_enabled(&self) -> bool {
        self.otlp
    }

    /// Flushes and shuts down the providers. Blocks up to `otel.export_timeout` per provider
    /// when OTLP is enabled; from a multi-thread Tokio runtime the blocking is moved off the
    /// worker with `block_in_place`.
    pub fn shutdown(mut self) {
        self.shutdown_providers();
    }

    fn shutdown_providers(&mut self) {
        let tracer_provider = self.tracer_provider.take();
        let meter_provider = self.meter_provider.take();
        if tracer_provider.is_none() && meter_provider.is_none() {
            return;
        }
        let work = move || {
            if let Some(provider) = tracer_provider {
                if let Err(err) = provider.force_flush() {
                    tracing::warn!(error = %err, "failed to flush spans");
                }
                if let Err(err) = provider.shutdown() {
                    tracing::warn!(error = %err, "failed to shut down tracer provider");
                }
            }
            if let Some(provider) = meter_provider {
                if let Err(err) = provider.shutdown() {
                    tracing::warn!(error = %err, "failed to shut down meter provider");
                }
            }
        };
        let multi_thread = tokio::runtime::Handle::try_current()
            .map(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
            .unwrap_or(false);
        if self.otlp && multi_thread {
            tokio::task::block_in_place(work);
        } else {
            work();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown_providers();
    }
}

/// Installs logging, metrics and (with `otel.endpoint`) trace export for the process.
///
/// Call it once at startup, inside the Tokio runtime (the OTLP exporters spawn onto it).
/// Calling it again in the same process (tests) does not panic: the first `tracing`
/// subscriber stays installed, and the new guard gets a fresh, working Prometheus registry
/// and becomes the global meter provider.
pub fn init(
    service_name: &'static str,
    log: &LogConfig,
    otel: &OtelConfig,
) -> anyhow::Result<TelemetryGuard> {
    global::set_text_map_propagator(TraceContextPropagator::new());

    let name: Cow<'static, str> = match &otel.service_name {
        Some(name) => Cow::Owned(name.clone()),
        None => Cow::Borrowed(service_name),
    };
    let resource = Resource::builder()
        .with_service_name(name.clone())
        .with_attribute(KeyValue::new("service.version", SERVICE_VERSION))
        .build();

    // Metrics: Prometheus always, OTLP in addition when configured.
    let registry = prometheus::Registry::new();
    let prometheus_reader = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()
        .context("failed to build prometheus exporter")?;
    let mut meter_builder =
        SdkMeterProvider::builder().with_resource(resource.clone()).with_reader(prometheus_reader);

    let mut tracer_provider = None;
    if let Some(endpoint) = &otel.endpoint {
        let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(otel.export_timeout)
            .build()
            .context("failed to build otlp metric exporter")?;
        meter_builder = meter_builder.with_reader(
            PeriodicReader::builder(metric_exporter).with_interval(otel.metrics_interval).build(),
        );

        let span_exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(otel.export_timeout)
            .build()
            .context("failed to build otlp span exporter")?;
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(otel.sample_ratio))))
            .with_batch_exporter(span_exporter)
            .build();
        global::set_tracer_provider(provider.clone());
        tracer_provider = Some(provider);
    }
    let meter_provider = meter_builder.build();
    global::set_meter_provider(meter_provider.clone());

    install_subscriber(name, log, tracer_provider.as_ref())?;

    if let Some(endpoint) = &otel.endpoint {
        tracing::info!(endpoint = %endpoint, "exporting traces and metrics over otlp");
    }
    Ok(TelemetryGuard {
        metrics: MetricsHandle::new(registry),
        meter_provider: Some(meter_provider),
        otlp: tracer_provider.is_some(),
        tracer_provider,
    })
}

fn is_transport_internal(target: &str) -> bool {
    const PREFIXES: [&str; 7] =
        ["h2", "hyper", "tower", "tonic::transport", "opentelemetry", "reqwest", "rustls"];
    PREFIXES.iter().any(|p| target.starts_with(p))
}

fn install_subscriber(
    name: Cow<'static, str>,
    log: &LogConfig,
    tracer_provider: Option<&SdkTracerProvider>,
) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_new(&log.level).with_context(|| format!("invalid log.level {:?}", log.level))?;
    let fmt_layer = match log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stdout)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().pretty().with_writer(std::io::stdout).boxed(),
    };
    // Spans of the transport crates are not exported: with a debug log level they would
    // otherwise describe the OTLP export itself, which feeds back into the exporter.
    // The log level filters the logs only: traces keep every INFO span (the
    // RPC and handler spans) even when the logs are set to `warn`, or the
    // trace context would vanish from the events a service appends.
    let otel_layer = tracer_provider.map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer(name)).with_filter(filter_fn(|meta| {
            !is_transport_internal(meta.target()) && *meta.level() <= tracing::Level::INFO
        }))
    });
    let result =
        tracing_subscriber::registry().with(fmt_layer.with_filter(filter)).with(otel_layer).try_init();
    if let Err(err) = result {
        // A second init in one process (tests): the first subscriber stays.
        tracing::debug!(error = %err, "tracing subscriber already installed");
    }
    Ok(())
}
