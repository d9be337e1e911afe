//! Measurements and their presentation: per-task recorders merged into one
//! summary per workload, the measured window, the text table and the JSON
//! document (machine facts, parameters, results).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Latencies are clamped here: a call that slow has failed anyway.
const MAX_LATENCY_MICROS: u64 = 60_000_000;

/// One task's measurements. Each task owns one, so recording takes no lock;
/// they are merged when the run is over.
#[derive(Debug)]
pub struct Recorder {
    /// Latency of successful calls, in microseconds.
    latency: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<&'static str, u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        // Three significant digits: 0.1 % resolution from 1 µs to 60 s, in
        // a fixed-size histogram that never allocates while recording.
        let latency =
            Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3).expect("1..60s with 3 digits is valid");
        Self { latency, ok: 0, errors: BTreeMap::new() }
    }

    /// A successful call that took `latency`.
    pub fn ok(&mut self, latency: Duration) {
        self.ok += 1;
        self.latency.saturating_record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// A failed call, by error code.
    pub fn error(&mut self, code: &'static str) {
        *self.errors.entry(code).or_insert(0) += 1;
    }

    pub fn merge(&mut self, other: &Self) {
        self.ok += other.ok;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        for (code, n) in &other.errors {
            *self.errors.entry(code).or_insert(0) += n;
        }
    }

    /// The summary of a run whose measured window lasted `window`.
    pub fn summary(&self, workload: &str, window: Duration) -> Summary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let h = &self.latency;
        let latency = if h.is_empty() {
            Latency::default()
        } else {
            Latency {
                p50: ms(h.value_at_quantile(0.50)),
                p90: ms(h.value_at_quantile(0.90)),
                p99: ms(h.value_at_quantile(0.99)),
                p999: ms(h.value_at_quantile(0.999)),
                max: ms(h.max()),
                mean: h.mean() / 1000.0,
            }
        };
        let secs = window.as_secs_f64();
        Summary {
            workload: workload.to_owned(),
            ok: self.ok,
            errors: self.errors.values().sum(),
            errors_by_code: self.errors.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            window_secs: secs,
            rate_per_sec: if secs > 0.0 { self.ok as f64 / secs } else { 0.0 },
            latency_ms: latency,
        }
    }
}

/// Latency percentiles of the successful calls, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// The result of one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub workload: String,
    /// Calls that succeeded inside the measured window.
    pub ok: u64,
    /// Calls that failed inside the measured window.
    pub errors: u64,
    /// Failed calls by gRPC code (intake) or publish error kind (raw).
    pub errors_by_code: BTreeMap<String, u64>,
    /// Length of the measured window, in seconds.
    pub window_secs: f64,
    /// Successful calls per second of the measured window.
    pub rate_per_sec: f64,
    pub latency_ms: Latency,
}

/// When a run measures: after the warmup, for the duration. Calls that end
/// inside count; calls still running at `hard_stop` are abandoned, so a run
/// always ends.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
    pub hard_stop: Instant,
}

impl Window {
    pub fn starting_at(t0: Instant, warmup: Duration, duration: Duration, grace: Duration) -> Self {
        let start = t0 + warmup;
        let end = start + duration;
        Self { start, end, hard_stop: end + grace }
    }

    pub fn contains(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }

    pub fn length(&self) -> Duration {
        self.end - self.start
    }
}

/// Facts about the machine, to tell runs on different hardware apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: Option<String>,
    pub mem_total_bytes: Option<u64>,
    pub kernel: Option<String>,
}

impl Machine {
    pub fn detect() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        Self {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: read("/proc/cpuinfo").as_deref().and_then(cpu_model),
            mem_total_bytes: read("/proc/meminfo")
                .as_deref()
                .and_then(|t| crate::process::kib_field(t, "MemTotal"))
                .map(|kib| kib * 1024),
            kernel: read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()),
        }
    }
}

/// The first `model name` of `/proc/cpuinfo`.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Memory of the intake child while it was under load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Largest `VmRSS` sampled (every 100 ms).
    pub rss_peak_bytes: u64,
    /// Mean of the `VmRSS` samples.
    pub rss_mean_bytes: u64,
    /// `VmHWM` at the end: the kernel's own peak, between samples too.
    pub vm_hwm_bytes: Option<u64>,
    pub samples: u64,
}

/// What was run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameters {
    pub command: String,
    pub clients: usize,
    /// gRPC connections shared by the intake clients.
    pub connections: Option<usize>,
    /// Publish acks each raw task keeps in flight.
    pub ack_window: Option<usize>,
    pub duration_secs: f64,
    pub warmup_secs: f64,
    /// The server(s) measured, when given on the command line.
    pub target: Option<String>,
    /// The nats-servers `all` started (more than 1: a cluster, whose event
    /// streams have a replica on every server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_servers: Option<usize>,
}

/// Everything one invocation reports; the `--json` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// RFC 3339, UTC, when the run ended.
    pub timestamp: String,
    pub machine: Machine,
    pub nats_server_version: Option<String>,
    pub parameters: Parameters,
    pub results: Vec<Summary>,
    /// Intake rate divided by the raw rate (`all` only).
    pub ratio_intake_over_raw: Option<f64>,
    /// The no-op gRPC server's rate divided by the raw rate (`all` only):
    /// the most of the raw rate any `SubmitReport` could reach on this
    /// machine with this client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_floor_over_raw: Option<f64>,
    /// Intake rate divided by the no-op gRPC server's rate (`all` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_intake_over_floor: Option<f64>,
    /// `1/(1/floor + 1/raw)` (`all` only): the rate of a service that did
    /// the floor's gRPC work and the raw append one after the other, with
    /// nothing else; the yardstick of the append path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composed_limit_per_sec: Option<f64>,
    /// Intake rate divided by the composed limit (`all` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_intake_over_composed: Option<f64>,
    /// The intake child's memory (`all` only).
    pub intake_memory: Option<Memory>,
    /// The rebuild and raw passes (`rebuild` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<crate::rebuild::RebuildResult>,
    /// How far behind the stream the intake's read model was (`read-lag` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_lag: Option<crate::lag::LagResult>,
}

/// `1/(1/a + 1/b)`: the rate of doing work at rate `a` and work at rate `b`
/// one after the other; `None` unless both are positive.
pub fn composed_rate(a: f64, b: f64) -> Option<f64> {
    (a > 0.0 && b > 0.0).then(|| 1.0 / (1.0 / a + 1.0 / b))
}

impl Document {
    pub fn new(parameters: Parameters, results: Vec<Summary>) -> Self {
        Self {
            timestamp: now_rfc3339(),
            machine: Machine::detect(),
            nats_server_version: None,
            parameters,
            results,
            ratio_intake_over_raw: None,
            ratio_floor_over_raw: None,
            ratio_intake_over_floor: None,
            composed_limit_per_sec: None,
            ratio_intake_over_composed: None,
            intake_memory: None,
            rebuild: None,
            read_lag: None,
        }
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// How results go to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The human-readable table.
    Table,
    /// The JSON document.
    Json,
}

/// Prints `doc` to stdout in `format` and writes it as JSON to `json_file`.
pub fn emit(doc: &Document, format: Format, json_file: Option<&Path>) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(doc)?;
    if let Some(path) = json_file {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    match format {
        Format::Table => print!("{}", render_text(doc)),
        Format::Json => println!("{json}"),
    }
    Ok(())
}

const COLUMNS: [(&str, usize); 7] =
    [("ok", 9), ("err", 7), ("rate/s", 9), ("p50 ms", 9), ("p99 ms", 9), ("p999 ms", 9), ("max ms", 9)];
const WORKLOAD_WIDTH: usize = 22;

/// The results as a table, one row per workload.
pub fn table(rows: &[Summary]) -> String {
    let mut out = format!("{:<WORKLOAD_WIDTH$}", "workload");
    for (name, width) in COLUMNS {
        let _ = write!(out, "{name:>width$}");
    }
    out.push('\n');
    for row in rows {
        let l = &row.latency_ms;
        let cells = [
            row.ok.to_string(),
            row.errors.to_string(),
            format!("{:.0}", row.rate_per_sec),
            format!("{:.2}", l.p50),
            format!("{:.2}", l.p99),
            format!("{:.2}", l.p999),
            format!("{:.2}", l.max),
        ];
        let _ = write!(out, "{:<WORKLOAD_WIDTH$}", row.workload);
        for (cell, (_, width)) in cells.iter().zip(COLUMNS) {
            let _ = write!(out, "{cell:>width$}");
        }
        out.push('\n');
    }
    out
}

/// The rebuild and raw passes side by side, and their ratio.
pub fn rebuild_table(r: &crate::rebuild::RebuildResult) -> String {
    let mut out =
        format!("{:<WORKLOAD_WIDTH$}{:>10}{:>10}{:>11}\n", "workload", "events", "secs", "events/s");
    for (name, pass) in
        [(crate::rebuild::REBUILD_WORKLOAD, &r.rebuild), (crate::rebuild::RAW_WORKLOAD, &r.raw)]
    {
        let _ = writeln!(
            out,
            "{name:<WORKLOAD_WIDTH$}{:>10}{:>10.2}{:>11.0}",
            pass.events, pass.secs, pass.events_per_sec
        );
    }
    let ratio = r.ratio_rebuild_over_raw.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    let _ = writeln!(
        out,
        "ratio rebuild/raw: {ratio}   batch {}   {} cases (interleave {})   seeded in {:.1}s",
        r.batch_size, r.cases, r.interleave, r.seed_secs
    );
    out
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The table, error breakdowns, and the ratio and memory line when known.
pub fn render_text(doc: &Document) -> String {
    let mut out =
        if doc.results.is_empty() && doc.rebuild.is_some() { String::new() } else { table(&doc.results) };
    if let Some(r) = &doc.rebuild {
        out.push_str(&rebuild_table(r));
    }
    for row in doc.results.iter().filter(|r| !r.errors_by_code.is_empty()) {
        let codes: Vec<String> = row.errors_by_code.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "errors of {}: {}", row.workload, codes.join(", "));
    }
    let mut footer = Vec::new();
    if let Some(n) = doc.parameters.nats_servers.filter(|n| *n > 1) {
        footer.push(format!("nats: {n} servers, stream R{n}"));
    }
    if let Some(ratio) = doc.ratio_intake_over_raw {
        footer.push(format!("ratio intake/raw: {ratio:.2}"));
    }
    if let Some(ratio) = doc.ratio_floor_over_raw {
        footer.push(format!("floor/raw: {ratio:.2}"));
    }
    if let Some(ratio) = doc.ratio_intake_over_floor {
        footer.push(format!("intake/floor: {ratio:.2}"));
    }
    if let (Some(limit), Some(ratio)) = (doc.composed_limit_per_sec, doc.ratio_intake_over_composed) {
        footer.push(format!("composed limit 1/(1/floor+1/raw): {limit:.0}/s   intake/composed: {ratio:.2}"));
    }
    if let Some(m) = &doc.intake_memory {
        let hwm = m.vm_hwm_bytes.map_or_else(String::new, |h| format!(" (VmHWM {:.1} MiB)", mib(h)));
        footer.push(format!("intake RSS peak: {:.1} MiB{hwm}", mib(m.rss_peak_bytes)));
    }
    if let Some(lag) = &doc.read_lag {
        footer.push(format!(
            "read model lag at the end: {:.0} ms (largest during the load: {:.0} ms; position {}; {} ticks not started)",
            lag.lag_at_end_ms, lag.lag_during_max_ms, lag.last_position, lag.ticks_dropped
        ));
    }
    if !footer.is_empty() {
        let _ = writeln!(out, "{}", footer.join("   "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary_of(latencies_us: impl IntoIterator<Item = u64>, window: Duration) -> Summary {
        let mut r = Recorder::new();
        for us in latencies_us {
            r.ok(Duration::from_micros(us));
        }
        r.summary("w", window)
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        // 1..=10000 µs: p50 is 5 ms, p99 9.9 ms, p999 9.99 ms, max 10 ms.
        let s = summary_of(1..=10_000, Duration::from_secs(2));
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.002;
        assert!(close(s.latency_ms.p50, 5.0), "{:?}", s.latency_ms);
        assert!(close(s.latency_ms.p99, 9.9), "{:?}", s.latency_ms);
        assert!(close(s.latency_ms.p999, 9.99), "{:?}", s.latency_ms);
        assert!(close(s.latency_ms.max, 10.0), "{:?}", s.latency_ms);
        assert!(close(s.latency_ms.mean, 5.0005), "{:?}", s.latency_ms);
        assert_eq!(s.ok, 10_000);
        assert!((s.rate_per_sec - 5_000.0).abs() < 1e-9);
    }

    #[test]
    fn a_few_slow_calls_show_in_the_tail_only() {
        let s = summary_of(std::iter::repeat_n(1_000, 999).chain([250_000]), Duration::from_secs(1));
        assert!((s.latency_ms.p50 - 1.0).abs() < 0.01);
        assert!((s.latency_ms.p99 - 1.0).abs() < 0.01);
        assert!((s.latency_ms.max - 250.0).abs() < 0.5);
    }

    #[test]
    fn empty_run_reports_zeros() {
        let s = Recorder::new().summary("w", Duration::ZERO);
        assert_eq!((s.ok, s.errors, s.rate_per_sec), (0, 0, 0.0));
        assert_eq!(s.latency_ms, Latency::default());
    }

    #[test]
    fn latencies_beyond_the_bound_are_clamped() {
        let s = summary_of([120_000_000], Duration::from_secs(1));
        assert!(s.latency_ms.max >= 59_000.0 && s.latency_ms.max <= 61_000.0, "{}", s.latency_ms.max);
    }

    #[test]
    fn merge_adds_counts_errors_and_latencies() {
        let mut a = Recorder::new();
        a.ok(Duration::from_millis(1));
        a.error("UNAVAILABLE");
        let mut b = Recorder::new();
        b.ok(Duration::from_millis(3));
        b.error("UNAVAILABLE");
        b.error("ABORTED");
        a.merge(&b);
        let s = a.summary("w", Duration::from_secs(1));
        assert_eq!(s.ok, 2);
        assert_eq!(s.errors, 3);
        assert_eq!(s.errors_by_code.get("UNAVAILABLE"), Some(&2));
        assert_eq!(s.errors_by_code.get("ABORTED"), Some(&1));
        assert!((s.latency_ms.max - 3.0).abs() < 0.01);
    }

    #[test]
    fn window_counts_from_warmup_end_to_duration_end() {
        let t0 = Instant::now();
        let w =
            Window::starting_at(t0, Duration::from_secs(2), Duration::from_secs(10), Duration::from_secs(5));
        assert!(!w.contains(t0 + Duration::from_millis(1999)));
        assert!(w.contains(t0 + Duration::from_secs(2)));
        assert!(w.contains(t0 + Duration::from_millis(11_999)));
        assert!(!w.contains(t0 + Duration::from_secs(12)));
        assert_eq!(w.length(), Duration::from_secs(10));
        assert_eq!(w.hard_stop, t0 + Duration::from_secs(17));
    }

    fn row(workload: &str, ok: u64, errors: u64, rate: f64, p50: f64) -> Summary {
        Summary {
            workload: workload.to_owned(),
            ok,
            errors,
            errors_by_code: if errors > 0 {
                BTreeMap::from([("UNAVAILABLE".to_owned(), errors)])
            } else {
                BTreeMap::new()
            },
            window_secs: 10.0,
            rate_per_sec: rate,
            latency_ms: Latency { p50, p90: 2.0, p99: 3.456, p999: 12.5, max: 101.25, mean: 1.5 },
        }
    }

    #[test]
    fn table_aligns_columns() {
        let text = table(&[
            row("raw jetstream publish", 123_456, 0, 12_345.6, 1.234),
            row("intake", 7, 2, 0.7, 0.5),
        ]);
        let expected = "\
workload                     ok    err   rate/s   p50 ms   p99 ms  p999 ms   max ms
raw jetstream publish    123456      0    12346     1.23     3.46    12.50   101.25
intake                        7      2        1     0.50     3.46    12.50   101.25
";
        assert_eq!(text, expected);
    }

    fn document(results: Vec<Summary>) -> Document {
        Document {
            timestamp: "2025-01-01T00:00:00Z".to_owned(),
            machine: Machine {
                nproc: 2,
                cpu_model: Some("cpu".to_owned()),
                mem_total_bytes: None,
                kernel: None,
            },
            nats_server_version: Some("nats-server: v2.11.0".to_owned()),
            parameters: Parameters {
                command: "all".to_owned(),
                clients: 32,
                connections: Some(8),
                ack_window: Some(32),
                duration_secs: 10.0,
                warmup_secs: 2.0,
                target: None,
                nats_servers: None,
            },
            results,
            ratio_intake_over_raw: None,
            ratio_floor_over_raw: None,
            ratio_intake_over_floor: None,
            composed_limit_per_sec: None,
            ratio_intake_over_composed: None,
            intake_memory: None,
            rebuild: None,
            read_lag: None,
        }
    }

    #[test]
    fn text_has_error_codes_ratio_and_memory() {
        let mut doc = document(vec![row("raw", 10, 0, 1.0, 1.0), row("intake", 5, 3, 0.5, 1.0)]);
        doc.ratio_intake_over_raw = Some(0.6234);
        doc.intake_memory = Some(Memory {
            rss_peak_bytes: 43_306_598,
            rss_mean_bytes: 40 << 20,
            vm_hwm_bytes: Some(45_088_768),
            samples: 120,
        });
        let text = render_text(&doc);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[3], "errors of intake: UNAVAILABLE 3");
        assert_eq!(lines[4], "ratio intake/raw: 0.62   intake RSS peak: 41.3 MiB (VmHWM 43.0 MiB)");
    }

    #[test]
    fn the_composed_limit_is_the_rate_of_both_works_in_turn() {
        // 30,000/s and 60,000/s in turn: 1/(1/30000 + 1/60000) = 20,000/s.
        let limit = composed_rate(30_000.0, 60_000.0).unwrap();
        assert!((limit - 20_000.0).abs() < 1e-6, "{limit}");
        assert_eq!(composed_rate(0.0, 60_000.0), None);
        let mut doc = document(vec![row("raw", 10, 0, 1.0, 1.0)]);
        doc.composed_limit_per_sec = Some(limit);
        doc.ratio_intake_over_composed = Some(0.3);
        assert_eq!(
            render_text(&doc).lines().last(),
            Some("composed limit 1/(1/floor+1/raw): 20000/s   intake/composed: 0.30")
        );
        let value = serde_json::to_value(&doc).unwrap();
        assert_eq!(value["composed_limit_per_sec"], 20_000.0);
    }

    #[test]
    fn text_names_a_cluster_only() {
        let mut doc = document(vec![row("raw", 10, 0, 1.0, 1.0)]);
        doc.ratio_intake_over_raw = Some(0.5);
        doc.parameters.nats_servers = Some(1);
        assert_eq!(render_text(&doc).lines().last(), Some("ratio intake/raw: 0.50"));
        doc.parameters.nats_servers = Some(3);
        assert_eq!(
            render_text(&doc).lines().last(),
            Some("nats: 3 servers, stream R3   ratio intake/raw: 0.50")
        );
        let value = serde_json::to_value(&doc).unwrap();
        assert_eq!(value["parameters"]["nats_servers"], 3);
    }

    #[test]
    fn text_without_ratio_is_the_table_alone() {
        let doc = document(vec![row("raw", 10, 0, 1.0, 1.0)]);
        assert_eq!(render_text(&doc), table(&doc.results));
    }

    #[test]
    fn document_round_trips_through_json() {
        let doc = document(vec![row("raw", 10, 1, 1.0, 1.0)]);
        let json = serde_json::to_string(&doc).unwrap();
        let back: Document = serde_json::from_str(&json).unwrap();
        assert_eq!(back, doc);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["results"][0]["latency_ms"]["p99"], 3.456);
        assert_eq!(value["results"][0]["errors_by_code"]["UNAVAILABLE"], 1);
    }

    #[test]
    fn cpu_model_is_the_first_model_name() {
        let info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\
                    processor\t: 1\nmodel name\t: other\n";
        assert_eq!(cpu_model(info).as_deref(), Some("Intel(R) Xeon(R) CPU @ 2.20GHz"));
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    fn rebuild_result() -> crate::rebuild::RebuildResult {
        use crate::rebuild::{Pass, RebuildResult};
        RebuildResult {
            events: 1_000_000,
            cases: 181_824,
            interleave: 64,
            batch_size: 256,
            seed_secs: 15.8,
            rebuild: Pass { events: 1_000_000, secs: 80.0, events_per_sec: 12_500.0 },
            raw: Pass { events: 1_000_000, secs: 8.0, events_per_sec: 125_000.0 },
            ratio_rebuild_over_raw: Some(0.1),
            postgres_version: Some("PostgreSQL 15".to_owned()),
        }
    }

    #[test]
    fn rebuild_text_is_its_own_table() {
        let mut doc = document(Vec::new());
        doc.rebuild = Some(rebuild_result());
        let expected = "\
workload                  events      secs   events/s
case view rebuild        1000000     80.00      12500
raw consume+upsert       1000000      8.00     125000
ratio rebuild/raw: 0.10   batch 256   181824 cases (interleave 64)   seeded in 15.8s
";
        assert_eq!(render_text(&doc), expected);
    }

    #[test]
    fn rebuild_document_round_trips_and_others_omit_it() {
        let mut doc = document(Vec::new());
        doc.rebuild = Some(rebuild_result());
        let json = serde_json::to_string(&doc).unwrap();
        assert_eq!(serde_json::from_str::<Document>(&json).unwrap(), doc);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["rebuild"]["raw"]["events_per_sec"], 125_000.0);
        let plain = serde_json::to_value(document(Vec::new())).unwrap();
        assert!(plain.get("rebuild").is_none());
    }
}
