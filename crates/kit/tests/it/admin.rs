//! The admin HTTP server: liveness, readiness transitions, Prometheus metrics recorded
//! through the global OpenTelemetry meter, merged routes and shutdown.

use std::time::Duration;

use opentelemetry::KeyValue;
use psirt_kit::admin::ReadinessReport;
use psirt_kit::config::{LogConfig, OtelConfig};
use psirt_kit::{AdminServer, Readiness, Shutdown};

#[tokio::test]
async fn healthz_readyz_metrics_and_extra_routes() {
    let telemetry = psirt_kit::telemetry::init(
        "kit-admin-test",
        &LogConfig { level: "warn".to_owned(), ..LogConfig::default() },
        &OtelConfig::default(),
    )
    .expect("telemetry");
    // A second init in the same process must not panic and must still work.
    let telemetry = {
        drop(telemetry);
        psirt_kit::telemetry::init("kit-admin-test", &LogConfig::default(), &OtelConfig::default())
            .expect("second init")
    };

    let readiness = Readiness::new();
    let nats = readiness.register("nats");
    let database = readiness.register("database");
    let extra =
        axum::Router::new().route("/csaf/provider-metadata.json", axum::routing::get(|| async { "{}" }));
    let server =
        AdminServer::bind("127.0.0.1:0".parse().expect("addr"), readiness.clone(), telemetry.metrics())
            .await
            .expect("bind")
            .merge(extra);
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let shutdown = Shutdown::new();
    let task = tokio::spawn(server.serve(shutdown.clone()));
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");

    let healthz = http.get(url("/healthz")).send().await.expect("healthz");
    assert_eq!(healthz.status(), 200);
    assert_eq!(healthz.text().await.expect("body"), "ok");

    let readyz = http.get(url("/readyz")).send().await.expect("readyz");
    assert_eq!(readyz.status(), 503);
    let report: ReadinessReport = readyz.json().await.expect("json");
    assert_eq!(report.not_ready, vec!["database".to_owned(), "nats".to_owned()]);

    database.set_ready(true);
    let report: ReadinessReport =
        http.get(url("/readyz")).send().await.expect("readyz").json().await.expect("json");
    assert_eq!(report.not_ready, vec!["nats".to_owned()]);

    nats.set_ready(true);
    let readyz = http.get(url("/readyz")).send().await.expect("readyz");
    assert_eq!(readyz.status(), 200);
    let report: ReadinessReport = readyz.json().await.expect("json");
    assert!(report.ready);

    nats.set_ready(false);
    assert_eq!(http.get(url("/readyz")).send().await.expect("readyz").status(), 503);

    let counter = opentelemetry::global::meter(psirt_kit::telemetry::METER)
        .u64_counter("kit_test.reports_received")
        .with_description("reports received in the admin test")
        .build();
    counter.add(3, &[KeyValue::new("channel", "web")]);
    let metrics = http.get(url("/metrics")).send().await.expect("metrics");
    assert_eq!(metrics.status(), 200);
    let content_type = metrics.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = metrics.text().await.expect("body");
    assert!(
        text.lines().any(|l| l.starts_with("kit_test_reports_received_total{")
            && l.contains("channel=\"web\"")
            && l.ends_with(" 3")),
        "{text}"
    );
    assert!(text.contains("service_name=\"kit-admin-test\""), "{text}");

    let extra = http.get(url("/csaf/provider-metadata.json")).send().await.expect("extra");
    assert_eq!(extra.status(), 200);

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("admin server stops")
        .expect("join")
        .expect("serve result");
    telemetry.shutdown();
}
