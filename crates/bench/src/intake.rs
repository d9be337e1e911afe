//! `intake`: N client tasks over C shared gRPC connections call
//! `SubmitReport` back to back. Every call has a new request id and title, so
//! the service does the full work of a first submission each time.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::time::Instant;
use tonic::client::Grpc;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::payload::{MAX_TASK, SubmitTemplate};
use crate::report::{Recorder, Summary, Window};

/// The row name in reports.
pub const WORKLOAD: &str = "intake SubmitReport";

const SUBMIT_PATH: &str = "/psirt.intake.v1.IntakeService/SubmitReport";

/// How long calls still running at the end of the window may take to finish.
const GRACE: Duration = Duration::from_secs(5);

/// Pause after a failed call: a service that fails at once must not turn the
/// client into a busy loop that starves it of CPU.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct IntakeOptions {
    /// `http://host:port`.
    pub server: String,
    pub clients: usize,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Bearer token, when the service authenticates.
    pub token: Option<String>,
    /// Deadline of one call.
    pub call_timeout: Duration,
}

/// The connections to use for `clients` tasks when none are asked for: one
/// HTTP/2 connection per task up to 8, as a handful of client services
/// would open, not one per request.
pub fn default_connections(clients: usize) -> usize {
    clients.clamp(1, 8)
}

/// Runs the load and returns its summary. Fails only when the service cannot
/// be reached or rejects a first test call (setup problems); failures under
/// load are counted.
pub async fn run(opts: &IntakeOptions) -> anyhow::Result<Summary> {
    if opts.clients == 0 || opts.clients > MAX_TASK as usize {
        bail!("--clients must be 1..={MAX_TASK}");
    }
    let server =
        if opts.server.contains("://") { opts.server.clone() } else { format!("http://{}", opts.server) };
    let endpoint = Endpoint::from_shared(server.clone())
        .with_context(|| format!("invalid server url {server}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(opts.call_timeout)
        .tcp_nodelay(true);
    let mut channels = Vec::with_capacity(opts.connections.max(1));
    for _ in 0..opts.connections.max(1) {
        // `connect` (not lazy): each channel is its own HTTP/2 connection,
        // opened now so an unreachable server is a setup failure.
        channels.push(endpoint.connect().await.with_context(|| format!("failed to connect to {server}"))?);
    }
    let auth: Option<AsciiMetadataValue> = match &opts.token {
        Some(token) => Some(MetadataValue::try_from(format!("Bearer {token}")).context("invalid token")?),
        None => None,
    };
    let codec = SubmitCodec { template: Arc::new(SubmitTemplate::new(uuid::Uuid::now_v7())) };

    // One call before the load: a wrong address, a missing token or a broken
    // service is a setup failure, not a run full of errors. Task number
    // `MAX_TASK` is never a load task, so its id is not reused.
    let mut probe = Caller::new(channels[0].clone(), codec.clone(), auth.clone());
    probe.call(MAX_TASK, 0).await.map_err(|s| anyhow::anyhow!("test call of SubmitReport failed: {s}"))?;

    let window = Window::starting_at(Instant::now(), opts.warmup, opts.duration, GRACE);
    let tasks: Vec<_> = (0..opts.clients)
        .map(|i| {
            let caller = Caller::new(channels[i % channels.len()].clone(), codec.clone(), auth.clone());
            tokio::spawn(client_task(i as u32, caller, window))
        })
        .collect();
    let mut total = Recorder::new();
    for task in tasks {
        total.merge(&task.await.context("client task panicked")?);
    }
    Ok(total.summary(WORKLOAD, window.length()))
}

/// One client: calls until the window ends, one call at a time.
async fn client_task(task: u32, mut caller: Caller, window: Window) -> Recorder {
    let mut recorder = Recorder::new();
    let mut seq = 0u64;
    loop {
        let started = Instant::now();
        if started >= window.end {
            break;
        }
        seq += 1;
        let Ok(result) = tokio::time::timeout_at(window.hard_stop, caller.call(task, seq)).await else {
            break;
        };
        let done = Instant::now();
        let failed = result.is_err();
        if window.contains(done) {
            match result {
                Ok(()) => recorder.ok(done - started),
                Err(status) => recorder.error(code_name(status.code())),
            }
        }
        if failed {
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
    recorder
}

/// A client on one shared channel.
struct Caller {
    grpc: Grpc<Channel>,
    codec: SubmitCodec,
    auth: Option<AsciiMetadataValue>,
    path: PathAndQuery,
}

impl Caller {
    fn new(channel: Channel, codec: SubmitCodec, auth: Option<AsciiMetadataValue>) -> Self {
        Self { grpc: Grpc::new(channel), codec, auth, path: PathAndQuery::from_static(SUBMIT_PATH) }
    }

    async fn call(&mut self, task: u32, seq: u64) -> Result<(), Status> {
        let mut request = Request::new(Call { task, seq });
        if let Some(auth) = &self.auth {
            request.metadata_mut().insert("authorization", auth.clone());
        }
        self.grpc.ready().await.map_err(|e| Status::unavailable(format!("connection not ready: {e}")))?;
        let response = self.grpc.unary(request, self.path.clone(), self.codec.clone()).await?;
        if response.get_ref().report_id.is_empty() {
            return Err(Status::internal("response without report id"));
        }
        Ok(())
    }
}

/// Which call to encode: the template is stamped at encoding time.
#[derive(Debug, Clone, Copy)]
struct Call {
    task: u32,
    seq: u64,
}

/// What the bench reads of `SubmitReportResponse`: the report id only. The
/// other fields (the whole stored report) are skipped without allocating.
#[derive(Clone, PartialEq, prost::Message)]
struct SubmitAck {
    #[prost(string, tag = "1")]
    report_id: String,
}

/// Encodes `Call`s from the shared template, decodes [`SubmitAck`]s.
#[derive(Debug, Clone)]
struct SubmitCodec {
    template: Arc<SubmitTemplate>,
}

/// A request is ~1.3 KiB and a response ~1.5 KiB: tonic's default 8 KiB
/// buffer per call would be mostly unused memory traffic.
fn buffer_settings() -> BufferSettings {
    BufferSettings::new(4 * 1024, 32 * 1024)
}

impl Codec for SubmitCodec {
    type Encode = Call;
    type Decode = SubmitAck;
    type Encoder = SubmitEncoder;
    type Decoder = AckDecoder;

    fn encoder(&mut self) -> SubmitEncoder {
        SubmitEncoder { template: self.template.clone() }
    }

    fn decoder(&mut self) -> AckDecoder {
        AckDecoder
    }
}

struct SubmitEncoder {
    template: Arc<SubmitTemplate>,
}

impl Encoder for SubmitEncoder {
    type Item = Call;
    type Error = Status;

    fn encode(&mut self, call: Call, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(self.template.encoded_len());
        self.template.encode(call.task, call.seq, dst);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        buffer_settings()
    }
}

struct AckDecoder;

impl Decoder for AckDecoder {
    type Item = SubmitAck;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<SubmitAck>, Status> {
        use prost::Message;
        SubmitAck::decode(src).map(Some).map_err(|e| Status::internal(format!("bad response: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        buffer_settings()
    }
}

pub use psirt_proto::code_name;

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use tonic::Code;

    #[test]
    fn ack_decodes_from_a_full_response() {
        let template = SubmitTemplate::new(uuid::Uuid::now_v7());
        let request = template.request(3, 9);
        let response = psirt_proto::intake::SubmitReportResponse {
            report_id: "0190f0c2-0000-7000-8000-000000000001".to_owned(),
            case_id: "0190f0c2-0000-7000-8000-000000000002".to_owned(),
            suspected_duplicate_report_ids: vec![],
            report: Some(psirt_proto::intake::Report {
                title: request.title,
                description: request.description,
                affected_products: request.affected_products,
                ..Default::default()
            }),
        };
        let ack = SubmitAck::decode(response.encode_to_vec().as_slice()).unwrap();
        assert_eq!(ack.report_id, response.report_id);
    }

    #[test]
    fn default_connections_caps_at_eight() {
        assert_eq!(default_connections(1), 1);
        assert_eq!(default_connections(5), 5);
        assert_eq!(default_connections(32), 8);
    }

    #[test]
    fn code_names_follow_the_spec() {
        assert_eq!(code_name(Code::Unavailable), "UNAVAILABLE");
        assert_eq!(code_name(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
    }
}
