//! `raw-publish`: the JetStream ceiling for intake's work. Per report one
//! publish of the `ReportReceived` event intake would append, to a new
//! subject, with the event store's headers and a no-stream expectation.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use async_nats::HeaderMap;
use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_ID};
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, Context as JetStream};
use bytes::Bytes;
use psirt_eventstore::{StreamSettings, headers};
use tokio::time::Instant;
use uuid::Uuid;

use crate::payload::{ACTOR, SubmitTemplate};
use crate::report::{Recorder, Summary, Window};

/// The row name in reports.
pub const WORKLOAD: &str = "raw jetstream publish";

/// The stream the intake appends to (`nats.stream.name` default).
pub const DEFAULT_STREAM: &str = "PSIRT_EVENTS";

/// How long acks still pending at the end of the window may take.
const GRACE: Duration = Duration::from_secs(5);

/// Pause after a failed publish, so a broken server does not turn the
/// client into a busy loop.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// The event store's request and ack timeout.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct RawOptions {
    /// `nats://host:port`, or several comma-separated (a cluster).
    pub nats: String,
    pub clients: usize,
    /// Acks each task keeps in flight.
    pub window: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Stream to create when missing.
    pub stream: String,
    /// Its replicas when created: the intake's stream has as many.
    pub replicas: usize,
}

/// The result of a raw run.
#[derive(Debug, Clone)]
pub struct RawRun {
    pub summary: Summary,
    /// The version the server announced.
    pub server_version: String,
}

/// Runs the load on one NATS connection (the intake has one too) and
/// returns its summary. Fails only on setup problems.
pub async fn run(opts: &RawOptions) -> anyhow::Result<RawRun> {
    if opts.clients == 0 || opts.window == 0 {
        bail!("--clients and --window must be at least 1");
    }
    let client = connect(&opts.nats).await?;
    // Room for every task's window: the library's default cap of 5000
    // pending acks would otherwise throttle large runs behind our back.
    let js = jetstream::ContextBuilder::new()
        .timeout(ACK_TIMEOUT)
        .max_ack_inflight((opts.clients * opts.window).max(5_000))
        .build(client.clone());
    ensure_stream(&js, &opts.stream, opts.replicas).await?;
    let template = Arc::new(RawTemplate::new(&SubmitTemplate::new(Uuid::now_v7())));

    // One append before the load: a stream that does not capture the
    // subjects or a server without JetStream is a setup failure.
    let (subject, message) = template.next();
    let ack = js.send_publish(subject, message).await.context("test publish failed")?;
    ack.await.context("test publish was not acknowledged")?;

    let window = Window::starting_at(Instant::now(), opts.warmup, opts.duration, GRACE);
    let tasks: Vec<_> = (0..opts.clients)
        .map(|_| tokio::spawn(publisher(js.clone(), template.clone(), opts.window, window)))
        .collect();
    let mut total = Recorder::new();
    for task in tasks {
        total.merge(&task.await.context("publisher task panicked")?);
    }
    Ok(RawRun {
        summary: total.summary(WORKLOAD, window.length()),
        server_version: client.server_info().version,
    })
}

/// Connects to one of the comma-separated servers of `url` (a random one,
/// as the services' client does).
async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    let servers: Vec<&str> = url.split(',').map(str::trim).collect();
    async_nats::ConnectOptions::new()
        .name("psirt-bench")
        .connection_timeout(Duration::from_secs(5))
        .connect(servers)
        .await
        .with_context(|| format!("failed to connect to nats at {url}"))
}

/// Creates the event stream as the event store would, with `replicas`,
/// unless it exists (an existing stream is used as it is).
pub async fn ensure_stream(js: &JetStream, name: &str, replicas: usize) -> anyhow::Result<()> {
    let settings = StreamSettings { name: name.to_owned(), replicas, ..StreamSettings::managed() };
    js.get_or_create_stream(settings.to_stream_config())
        .await
        .map_err(|e| anyhow!("failed to create or get stream {name}: {e}"))?;
    Ok(())
}

/// Deletes the stream: `all` gives the intake an empty stream, so its
/// projection does not spend the measured window on the raw run's events.
pub async fn delete_stream(url: &str, name: &str) -> anyhow::Result<()> {
    let client = connect(url).await?;
    let js = jetstream::new(client);
    js.delete_stream(name).await.map_err(|e| anyhow!("failed to delete stream {name}: {e}"))?;
    Ok(())
}

/// One task: keeps up to `depth` publishes in flight, settling the oldest
/// when full, until the window ends; then settles what is left.
async fn publisher(js: JetStream, template: Arc<RawTemplate>, depth: usize, window: Window) -> Recorder {
    let mut recorder = Recorder::new();
    // Acks of one connection and one stream come back in publish order:
    // waiting for the oldest first is waiting for the next to arrive.
    let mut in_flight: VecDeque<(Instant, PublishAckFuture)> = VecDeque::with_capacity(depth);
    loop {
        if Instant::now() >= window.end {
            break;
        }
        if in_flight.len() >= depth {
            if let Some((started, ack)) = in_flight.pop_front()
                && !settle(&mut recorder, window, started, ack).await
            {
                return recorder;
            }
            continue;
        }
        let (subject, message) = template.next();
        let started = Instant::now();
        match js.send_publish(subject, message).await {
            Ok(ack) => in_flight.push_back((started, ack)),
            Err(e) => {
                if window.contains(Instant::now()) {
                    recorder.error(kind_name(e.kind()));
                }
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    while let Some((started, ack)) = in_flight.pop_front() {
        if !settle(&mut recorder, window, started, ack).await {
            break;
        }
    }
    recorder
}

/// Waits for one ack and records it when it came inside the window.
/// Returns false when the hard stop passed.
async fn settle(recorder: &mut Recorder, window: Window, started: Instant, ack: PublishAckFuture) -> bool {
    let Ok(result) = tokio::time::timeout_at(window.hard_stop, ack).await else {
        return false;
    };
    let done = Instant::now();
    if window.contains(done) {
        match result {
            // A fresh message id can only be a duplicate if ids repeat: a
            // bench bug, not a server result.
            Ok(ack) if ack.duplicate => recorder.error("DUPLICATE"),
            Ok(_) => recorder.ok(done - started),
            Err(e) => recorder.error(kind_name(e.kind())),
        }
    }
    true
}

fn kind_name(kind: PublishErrorKind) -> &'static str {
    match kind {
        PublishErrorKind::StreamNotFound => "STREAM_NOT_FOUND",
        PublishErrorKind::WrongLastMessageId => "WRONG_LAST_MESSAGE_ID",
        PublishErrorKind::WrongLastSequence => "WRONG_LAST_SEQUENCE",
        PublishErrorKind::TimedOut => "TIMED_OUT",
        PublishErrorKind::BrokenPipe => "BROKEN_PIPE",
        PublishErrorKind::MaxAckPending => "MAX_ACK_PENDING",
        PublishErrorKind::MaxPayloadExceeded => "MAX_PAYLOAD_EXCEEDED",
        PublishErrorKind::Other => "OTHER",
    }
}

/// The message every publish sends, built once: only the subject and the
/// message id are new per publish.
struct RawTemplate {
    /// `psirt.evt.report.`
    subject_prefix: String,
    /// An encoded `ReportReceived` of the intake's request.
    payload: Bytes,
    /// The envelope the event store writes for a submission: event type,
    /// schema version, causation and correlation (the request id; the same
    /// value each time, which costs the server the same), actor, and the
    /// no-stream expectation.
    headers: HeaderMap,
}

impl RawTemplate {
    fn new(submit: &SubmitTemplate) -> Self {
        let request_id = submit.request(0, 0).request_id;
        let mut h = HeaderMap::new();
        h.insert(headers::EVENT_TYPE, <psirt_proto::events::ReportReceived as prost::Name>::full_name());
        h.insert(headers::SCHEMA_VERSION, "1");
        h.insert(headers::CAUSATION_ID, request_id.as_str());
        h.insert(headers::CORRELATION_ID, request_id.as_str());
        h.insert(headers::ACTOR, ACTOR);
        h.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
        Self {
            subject_prefix: psirt_eventstore::subject("report", ""),
            payload: submit.event_payload(0, 0),
            headers: h,
        }
    }

    /// A new report's subject (`psirt.evt.report.<uuidv7>`) and its message
    /// with a fresh `Nats-Msg-Id`.
    fn next(&self) -> (String, PublishMessage) {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let mut subject = String::with_capacity(self.subject_prefix.len() + text.len());
        subject.push_str(&self.subject_prefix);
        subject.push_str(Uuid::now_v7().hyphenated().encode_lower(&mut text));
        let mut headers = self.headers.clone();
        headers.insert(NATS_MESSAGE_ID, &*Uuid::new_v4().hyphenated().encode_lower(&mut text));
        (subject, PublishMessage::build().payload(self.payload.clone()).headers(headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_go_to_new_report_subjects_with_the_envelope() {
        let t = RawTemplate::new(&SubmitTemplate::new(Uuid::now_v7()));
        let (a, _) = t.next();
        let (b, _) = t.next();
        assert_ne!(a, b);
        assert!(a.starts_with("psirt.evt.report."));
        let id: Uuid = a["psirt.evt.report.".len()..].parse().unwrap();
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(
            t.headers.get(headers::EVENT_TYPE).map(|v| v.as_str()),
            Some("psirt.events.v1.ReportReceived")
        );
        assert_eq!(t.headers.get(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE).map(|v| v.as_str()), Some("0"));
        assert_eq!(t.headers.get(headers::ACTOR).map(|v| v.as_str()), Some(ACTOR));
    }
}
