//! `psirt-bench raw-publish` against a real nats-server: it appends events to
//! the stream it creates, counts them, and prints and writes a JSON document.

use std::time::Duration;

#[tokio::test]
async fn raw_publish_counts_appends_and_reports_json() {
    let nats = psirt_testkit::NatsServer::start().await.unwrap();
    let json_file = std::env::temp_dir().join(format!("psirt-bench-test-{}.json", uuid::Uuid::new_v4()));
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_psirt-bench"))
        .args(["raw-publish", "--nats", &nats.url(), "--clients", "4", "--duration", "1s"])
        .args(["--warmup", "0", "--format", "json", "--json"])
        .arg(&json_file)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.unwrap().unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));

    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json_file);
    assert_eq!(doc, written);

    let result = &doc["results"][0];
    assert_eq!(result["workload"], "raw jetstream publish");
    let ok = result["ok"].as_u64().unwrap();
    assert!(ok > 0, "{result}");
    assert!(result["rate_per_sec"].as_f64().unwrap() > 0.0);
    assert!(result["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert_eq!(doc["parameters"]["clients"], 4);
    assert!(doc["nats_server_version"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(doc["machine"]["nproc"].as_u64().unwrap() >= 1);

    // Every counted append is in the stream (plus the test publish and the
    // appends that ended after the window).
    let js = async_nats::jetstream::new(nats.connect().await.unwrap());
    let mut stream = js.get_stream("PSIRT_EVENTS").await.unwrap();
    let info = stream.info().await.unwrap();
    assert!(info.state.messages > ok, "{} stored, {ok} counted", info.state.messages);
}

/// On a cluster (`all --cluster 3` does the same): the server list as the
/// services take it, and a stream replicated on every server.
#[tokio::test]
async fn raw_publish_on_a_cluster_creates_a_replicated_stream() {
    let cluster = psirt_testkit::NatsCluster::start(3, None).await.unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_psirt-bench"))
        .args(["raw-publish", "--nats", &cluster.urls(), "--replicas", "3", "--clients", "2"])
        .args(["--duration", "1s", "--warmup", "0", "--format", "json"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.unwrap().unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ok = doc["results"][0]["ok"].as_u64().unwrap();
    assert!(ok > 0, "{doc}");

    let js = async_nats::jetstream::new(cluster.connect().await.unwrap());
    let mut stream = js.get_stream("PSIRT_EVENTS").await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.num_replicas, 3);
    assert!(info.state.messages > ok, "{} stored, {ok} counted", info.state.messages);
}
