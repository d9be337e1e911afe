//! Telemetry of the real binaries: one trace across the event bus, received
//! by a real OTLP/gRPC receiver, and the documented metrics on `/metrics`.
//!
//! A client submits a report and accepts its case in one trace (it sends a
//! `traceparent`, as any OpenTelemetry-instrumented client does). The trace
//! must then hold spans of intake, triage and remediation: triage's
//! reaction to `ReportReceived` is a child of the span that appended it in
//! intake, the `CaseOpened` it appends carries that reaction's span on, and
//! remediation's reaction to `CaseAccepted` is a child of the triage span
//! that accepted the case and the span its `PlanOpened` names; and
//! notification's routing of `CaseAccepted` is a child of that same triage
//! span, and the webhook delivery it scheduled is sent in a span below it.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_proto::notification::notification_service_client::NotificationServiceClient;
use psirt_proto::remediation::remediation_service_client::RemediationServiceClient;
use psirt_proto::triage::case_service_client::CaseServiceClient;
use psirt_proto::triage::triage_service_client::TriageServiceClient;
use psirt_proto::{common as pc, events, intake, notification, remediation as api, triage};
use psirt_testkit::{NatsServer, OtlpCollector, ReceivedSpan, eventually};
use tonic::metadata::MetadataValue;

use crate::common::{Service, build, sqlite, tempfile_dir};

const DEADLINE: Duration = Duration::from_secs(60);

/// OTLP settings for a service: export to `collector`, spans batched for at
/// most 100 ms (the SDK reads `OTEL_BSP_SCHEDULE_DELAY`), metrics not
/// pushed (the receiver takes traces only; metrics are scraped).
fn otel_env(collector: &OtlpCollector) -> Vec<(&'static str, String)> {
    vec![
        ("PSIRT_OTEL__ENDPOINT", collector.endpoint()),
        ("PSIRT_OTEL__EXPORT_TIMEOUT", "2s".to_owned()),
        ("PSIRT_OTEL__METRICS_INTERVAL", "1h".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ]
}

/// A W3C trace context of the test's own client span.
struct ClientTrace {
    trace_id: String,
    span_id: String,
}

impl ClientTrace {
    fn new() -> Self {
        let trace_id = uuid::Uuid::new_v4().simple().to_string();
        let span_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
        Self { trace_id, span_id }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let traceparent = format!("00-{}-{}-01", self.trace_id, self.span_id);
        request.metadata_mut().insert("traceparent", MetadataValue::try_from(traceparent).expect("ascii"));
        request
    }
}

/// (trace id, span id) of a `traceparent` header.
fn traceparent(event: &psirt_eventstore::RecordedEvent) -> Option<(String, String)> {
    let value = event.headers.get("traceparent")?.as_str().to_owned();
    let mut parts = value.split('-');
    let (_version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
    Some((trace.to_owned(), span.to_owned()))
}

struct Platform {
    nats: NatsServer,
    intake: Service,
    triage: Service,
    remediation: Service,
    notification: Service,
    /// CaseAccepted CloudEvents the webhook receiver got.
    received: common::Received,
    _dir: tempfile_dir::Dir,
}

impl Platform {
    /// Waits until the webhook receiver got the CaseAccepted CloudEvent.
    async fn delivered(&self) -> anyhow::Result<()> {
        let received = &self.received;
        eventually(DEADLINE, "the CaseAccepted CloudEvent at the receiver", || {
            std::future::ready((!received.lock().expect("received").is_empty()).then_some(()))
        })
        .await
    }

    async fn start(label: &str, env: &[(&str, String)]) -> anyhow::Result<Self> {
        build()?;
        let nats = NatsServer::start().await?;
        let dir = tempfile_dir::Dir::new(label)?;
        let intake = Service::start_with("intake", &nats, sqlite(&dir, "intake"), env).await?;
        let triage = Service::start_with("triage", &nats, sqlite(&dir, "triage"), env).await?;
        let remediation = Service::start_with("remediation", &nats, sqlite(&dir, "remediation"), env).await?;
        let key = dir.0.join("hook.key");
        std::fs::write(&key, "tracing-webhook-signing-key-0123")?;
        let mut notification_env = env.to_vec();
        notification_env.push(("PSIRT_SECRETS__HOOK__FILE", key.display().to_string()));
        notification_env.push(("PSIRT_DELIVERY__POLL_INTERVAL", "20ms".to_owned()));
        let notification =
            Service::start_with("notification", &nats, sqlite(&dir, "notification"), &notification_env)
                .await?;
        let (url, received) = common::webhook_receiver().await?;
        NotificationServiceClient::new(notification.channel().await?)
            .create_subscription(notification::CreateSubscriptionRequest {
                request_id: "tracing-hook".to_owned(),
                settings: Some(events::SubscriptionSettings {
                    name: "Accepted cases".to_owned(),
                    channel: events::DeliveryChannel::Webhook.into(),
                    endpoint: url,
                    event_types: vec!["psirt.events.v1.CaseAccepted".to_owned()],
                    trusted: true,
                    secret_ref: "hook".to_owned(),
                    enabled: true,
                    ..Default::default()
                }),
            })
            .await?;
        // Routing matches an event against the subscriptions as they stood at
        // its position in the stream: this one precedes every case event.
        Ok(Self { nats, intake, triage, remediation, notification, received, _dir: dir })
    }

    /// Submits a report and accepts its case, every call in `trace`; returns
    /// (report id, case id, plan id) once remediation opened the plan.
    async fn submit_and_accept(&self, trace: &ClientTrace) -> anyhow::Result<(String, String, String)> {
        let mut intake_client = IntakeServiceClient::new(self.intake.channel().await?);
        let cases = CaseServiceClient::new(self.triage.channel().await?);
        let mut decisions = TriageServiceClient::new(self.triage.channel().await?);
        let plans = RemediationServiceClient::new(self.remediation.channel().await?);
        let submitted = intake_client
            .submit_report(trace.request(intake::SubmitReportRequest {
                description: "A crafted file name escapes the upload directory.".to_owned(),
                ..common::report("traced-1", "Path traversal in the firmware upload", "acme-router")
            }))
            .await?
            .into_inner();
        let report_id = submitted.report_id.clone();
        let case_id = submitted.case_id.clone();
        eventually(DEADLINE, "case opened", || {
            let mut cases = cases.clone();
            let id = case_id.clone();
            async move {
                let lookup = Some(triage::get_case_request::Lookup::CaseId(id));
                cases.get_case(triage::GetCaseRequest { lookup }).await.ok()?.into_inner().case
            }
        })
        .await?;
        decisions
            .assess_severity(trace.request(triage::AssessSeverityRequest {
                case_id: case_id.clone(),
                request_id: "assess".to_owned(),
                cvss_v3_vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:N".to_owned(),
                ..Default::default()
            }))
            .await?;
        decisions
            .set_affected_products(trace.request(triage::SetAffectedProductsRequest {
                case_id: case_id.clone(),
                request_id: "products".to_owned(),
                products: vec![pc::ProductVersionRange {
                    product: "acme-router".to_owned(),
                    versions: Some(pc::product_version_range::Versions::Range(
                        "vers:semver/<3.2.0".to_owned(),
                    )),
                }],
                ..Default::default()
            }))
            .await?;
        decisions
            .accept_case(trace.request(triage::AcceptCaseRequest {
                case_id: case_id.clone(),
                request_id: "accept".to_owned(),
                ..Default::default()
            }))
            .await?;
        let plan = eventually(DEADLINE, "remediation plan opened", || {
            let mut plans = plans.clone();
            let id = case_id.clone();
            async move { plans.get_plan(api::GetPlanRequest { case_id: id }).await.ok()?.into_inner().plan }
        })
        .await?;
        Ok((report_id, case_id, plan.plan_id))
    }
}

/// The first event of type `event_type` on `subject`.
async fn event_of(
    store: &psirt_eventstore::EventStore,
    subject: &str,
    event_type: &str,
) -> anyhow::Result<psirt_eventstore::RecordedEvent> {
    let events = store.load(subject).await?;
    events
        .into_iter()
        .find(|e| e.event_type == event_type)
        .ok_or_else(|| anyhow::anyhow!("no {event_type} on {subject}"))
}

/// The span `span_id` of the trace, with a readable failure.
fn span<'a>(spans: &'a [ReceivedSpan], span_id: &str, what: &str) -> &'a ReceivedSpan {
    spans.iter().find(|s| s.span_id == span_id).unwrap_or_else(|| {
        panic!("{what}: span {span_id} not received; the trace holds {:#?}", summary(spans))
    })
}

fn summary(spans: &[ReceivedSpan]) -> Vec<String> {
    spans
        .iter()
        .map(|s| format!("{} {} {} <- {:?}", s.service_name, s.name, s.span_id, s.parent_span_id))
        .collect()
}

/// True when `descendant` is `ancestor` or below it in the trace.
fn descends_from(spans: &[ReceivedSpan], descendant: &str, ancestor: &str) -> bool {
    let parents: HashMap<&str, Option<&str>> =
        spans.iter().map(|s| (s.span_id.as_str(), s.parent_span_id.as_deref())).collect();
    let mut current = Some(descendant);
    let mut steps = 0;
    while let Some(id) = current {
        if id == ancestor {
            return true;
        }
        steps += 1;
        if steps > spans.len() {
            return false;
        }
        current = parents.get(id).copied().flatten();
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_intake_triage_and_remediation_across_the_event_bus() -> anyhow::Result<()> {
    let collector = OtlpCollector::start().await?;
    let platform = Platform::start("tracing", &otel_env(&collector)).await?;
    let trace = ClientTrace::new();
    let (report_id, case_id, plan_id) = platform.submit_and_accept(&trace).await?;

    // What each appended event names as its producing span.
    let store = psirt_eventstore::EventStore::open(
        platform.nats.connect().await?,
        &psirt_eventstore::StreamSettings::managed(),
    )
    .await?;
    let received =
        event_of(&store, &format!("psirt.evt.report.{report_id}"), "psirt.events.v1.ReportReceived").await?;
    let opened = event_of(&store, &format!("psirt.evt.case.{case_id}"), "psirt.events.v1.CaseOpened").await?;
    let accepted =
        event_of(&store, &format!("psirt.evt.case.{case_id}"), "psirt.events.v1.CaseAccepted").await?;
    let plan_opened = event_of(
        &store,
        &format!("psirt.evt.remediation.{plan_id}"),
        "psirt.events.v1.RemediationPlanOpened",
    )
    .await?;
    let mut producers = Vec::new();
    for (name, event) in [
        ("ReportReceived", &received),
        ("CaseOpened", &opened),
        ("CaseAccepted", &accepted),
        ("RemediationPlanOpened", &plan_opened),
    ] {
        let (trace_id, span_id) =
            traceparent(event).ok_or_else(|| anyhow::anyhow!("{name} carries no traceparent"))?;
        assert_eq!(trace_id, trace.trace_id, "{name} was appended in another trace");
        producers.push(span_id);
    }
    let [received_by, opened_by, accepted_by, plan_opened_by] =
        <[String; 4]>::try_from(producers).map_err(|_| anyhow::anyhow!("four producers"))?;

    // Spans arrive in batches: wait until every span the assertions need is in.
    let wanted = [received_by.clone(), opened_by.clone(), accepted_by.clone(), plan_opened_by.clone()];
    let spans = eventually(DEADLINE, "the spans of the trace", || {
        let spans = collector.trace(&trace.trace_id);
        let complete = {
            let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
            let services: BTreeSet<&str> = spans.iter().map(|s| s.service_name.as_str()).collect();
            // Closed: every parent is in, or is the client's span.
            let closed = spans
                .iter()
                .all(|s| s.parent_span_id.as_deref().is_none_or(|p| p == trace.span_id || ids.contains(p)));
            let delivered = spans.iter().any(|s| s.name == "notification-delivery webhook CaseAccepted");
            closed
                && delivered
                && wanted.iter().all(|w| ids.contains(w.as_str()))
                && ["psirt-intake", "psirt-triage", "psirt-remediation", "psirt-notification"]
                    .iter()
                    .all(|n| services.contains(n))
        };
        std::future::ready(complete.then_some(spans))
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}; received {:#?}, of every trace {:#?}",
            summary(&collector.trace(&trace.trace_id)),
            summary(&collector.spans())
        )
    })?;

    // intake: the SubmitReport server span continues the client's trace, and
    // ReportReceived was appended under it.
    let submit = spans
        .iter()
        .find(|s| s.service_name == "psirt-intake" && s.attribute("rpc.method") == Some("SubmitReport"))
        .expect("the SubmitReport span");
    assert_eq!(submit.parent_span_id.as_deref(), Some(trace.span_id.as_str()), "SubmitReport's parent");
    let producer = span(&spans, &received_by, "ReportReceived's producer");
    assert_eq!(producer.service_name, "psirt-intake");
    assert!(
        descends_from(&spans, &received_by, &submit.span_id),
        "ReportReceived appended under SubmitReport"
    );

    // triage: the reaction that opened the case is a child of that span,
    // and CaseOpened carries the reaction's span on.
    let reaction = span(&spans, &opened_by, "CaseOpened's producer");
    assert_eq!(reaction.service_name, "psirt-triage");
    assert_eq!(reaction.name, "triage-reactions ReportReceived");
    assert_eq!(reaction.kind, 5, "a consumer span");
    assert_eq!(reaction.parent_span_id.as_deref(), Some(received_by.as_str()), "parented to the producer");

    // remediation: the reaction to CaseAccepted is a child of the triage
    // span that accepted the case, and PlanOpened names it.
    let acceptor = span(&spans, &accepted_by, "CaseAccepted's producer");
    assert_eq!(acceptor.service_name, "psirt-triage");
    let plan_reaction = span(&spans, &plan_opened_by, "PlanOpened's producer");
    assert_eq!(plan_reaction.service_name, "psirt-remediation");
    assert_eq!(plan_reaction.name, "remediation-reactions CaseAccepted");
    assert_eq!(
        plan_reaction.parent_span_id.as_deref(),
        Some(accepted_by.as_str()),
        "parented to the producer"
    );

    // notification: routing CaseAccepted is a child of the span that
    // accepted the case; the webhook delivery it scheduled was sent in a
    // span below it, and the receiver got the CloudEvent.
    let routing = spans
        .iter()
        .find(|s| s.service_name == "psirt-notification" && s.name == "notification-routing CaseAccepted")
        .unwrap_or_else(|| panic!("no routing span for CaseAccepted: {:#?}", summary(&spans)));
    assert_eq!(
        routing.parent_span_id.as_deref(),
        Some(accepted_by.as_str()),
        "routing parented to the producer"
    );
    let delivery = spans
        .iter()
        .find(|s| s.name == "notification-delivery webhook CaseAccepted")
        .expect("the delivery span");
    assert_eq!(delivery.service_name, "psirt-notification");
    assert_eq!(delivery.kind, 3, "a client span");
    assert!(
        descends_from(&spans, &delivery.span_id, &routing.span_id),
        "the delivery continues routing's span: {:#?}",
        summary(&spans)
    );
    platform.delivered().await?;

    // Every span of a service in this trace hangs off the client's span:
    // nothing restarted the trace half-way.
    for s in &spans {
        assert!(
            descends_from(&spans, &s.span_id, &trace.span_id)
                || s.parent_span_id.as_deref() == Some(&trace.span_id),
            "span {} of {} is detached from the trace: {:#?}",
            s.name,
            s.service_name,
            summary(&spans)
        );
    }
    Ok(())
}

/// One row of the metrics table in docs/operations.md.
struct DocumentedMetric {
    name: String,
    kind: String,
    services: String,
}

/// The rows of the `## Metrics` table of docs/operations.md: the test reads
/// the names from the doc, so doc and code cannot drift apart.
fn documented_metrics() -> anyhow::Result<Vec<DocumentedMetric>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md");
    let text = std::fs::read_to_string(&path)?;
    let section = text
        .split("\n## Metrics\n")
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("docs/operations.md has no ## Metrics section"))?;
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        anyhow::ensure!(cells.len() >= 5, "metrics row with fewer than five cells: {line}");
        rows.push(DocumentedMetric {
            name: cells[0].trim_matches('`').to_owned(),
            kind: cells[1].to_owned(),
            services: cells[3].to_owned(),
        });
    }
    anyhow::ensure!(!rows.is_empty(), "the metrics table of docs/operations.md is empty");
    Ok(rows)
}

async fn scrape(admin: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", admin)).await.ok()?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8(buf).ok()?;
    text.starts_with("HTTP/1.1 200").then_some(text)
}

/// The documented metrics of `service` missing from its `/metrics`.
fn missing(exposition: &str, documented: &[DocumentedMetric], service: &str) -> Vec<String> {
    documented
        .iter()
        .filter(|m| m.services.split(',').any(|s| s.trim() == service))
        .filter(|m| !exposition.contains(&format!("# TYPE {} {}\n", m.name, m.kind)))
        .map(|m| format!("{} ({})", m.name, m.kind))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_metric_is_exposed_after_traced_traffic() -> anyhow::Result<()> {
    let documented = documented_metrics()?;
    let collector = OtlpCollector::start().await?;
    let platform = Platform::start("metrics", &otel_env(&collector)).await?;
    platform.submit_and_accept(&ClientTrace::new()).await?;
    // The delivery series appear with the first delivery.
    platform.delivered().await?;
    for (service, name) in [
        (&platform.intake, "intake"),
        (&platform.triage, "triage"),
        (&platform.remediation, "remediation"),
        (&platform.notification, "notification"),
    ] {
        let admin = service.admin;
        let documented = &documented;
        // Gauges are sampled by the projections (about once a second).
        let result = eventually(DEADLINE, "every documented metric", || async move {
            let exposition = scrape(admin).await?;
            missing(&exposition, documented, name).is_empty().then_some(())
        })
        .await;
        if result.is_err() {
            let exposition = scrape(admin).await.unwrap_or_default();
            panic!(
                "psirt-{name} does not expose {:?}; /metrics:\n{exposition}",
                missing(&exposition, documented, name)
            );
        }
    }
    Ok(())
}
