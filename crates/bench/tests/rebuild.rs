//! `psirt-bench rebuild` against the test kit's nats-server and PostgreSQL:
//! both passes replay every seeded event, and the JSON document parses.

use std::time::Duration;

#[tokio::test]
async fn rebuild_reports_both_rates_as_json() {
    let json_file =
        std::env::temp_dir().join(format!("psirt-bench-rebuild-test-{}.json", uuid::Uuid::new_v4()));
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_psirt-bench"))
        // batches of 64: the pipelined rebuild crosses many batches
        .args(["rebuild", "--events", "2000", "--batch-size", "64", "--format", "json", "--json"])
        .arg(&json_file)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run).await.unwrap().unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));

    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json_file);
    assert_eq!(doc, written);

    assert_eq!(doc["parameters"]["command"], "rebuild");
    let r = &doc["rebuild"];
    assert_eq!(r["events"], 2000);
    assert!(r["cases"].as_u64().unwrap() > 300, "{r}");
    assert_eq!(r["batch_size"], 64);
    for pass in ["rebuild", "raw"] {
        assert_eq!(r[pass]["events"], 2000, "{r}");
        assert!(r[pass]["events_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!(r["ratio_rebuild_over_raw"].as_f64().unwrap() > 0.0, "{r}");
    assert!(doc["machine"]["nproc"].as_u64().unwrap() >= 1);
    assert!(doc["nats_server_version"].as_str().is_some_and(|v| !v.is_empty()));
}
