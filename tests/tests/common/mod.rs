//! The harness of the end-to-end tests: the real service binaries as child
//! processes on a test nats-server, each with its own SQLite file.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use psirt_testkit::jwt::{Bearer, Token};
use psirt_testkit::{NatsServer, eventually};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// What [`Service::channel`] returns: a channel that sends an admin's bearer token
/// (every product in scope) with every call, as the services run with JWT auth on.
pub type AuthChannel = InterceptedService<Channel, Bearer>;

pub fn bin(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("debug")
        .join(name)
}

pub fn build() -> anyhow::Result<()> {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "psirt-intake",
            "-p",
            "psirt-triage",
            "-p",
            "psirt-remediation",
            "-p",
            "psirt-notification",
            "-p",
            "psirt-cli",
        ])
        .status()?;
    anyhow::ensure!(status.success(), "build failed");
    Ok(())
}

/// A nats-server with the shipped identities and permissions
/// (`deploy/nats/psirt-auth.conf`) and the event stream created by the admin
/// identity, as `psirtctl admin stream apply` does in production: every
/// service started on it connects as itself and may only do what its
/// identity may.
pub async fn secured_nats() -> anyhow::Result<NatsServer> {
    let nats = NatsServer::start_secured(psirt_testkit::Security::identities()?).await?;
    let js = async_nats::jetstream::new(nats.connect().await?);
    psirt_eventstore::apply_stream(&js, &psirt_eventstore::StreamSettings::default()).await?;
    Ok(nats)
}

/// A service binary as a child process. It binds port 0 for gRPC and admin and writes the
/// addresses it bound to its ports file (`--ports-file`, whatever the log level);
/// [`Service::spawn`] reads them from there, so a restarted service gets new ports and
/// `grpc`/`admin` follow. No port is picked, released and hoped for.
pub struct Service {
    pub child: Child,
    /// The bound ports of the running (last spawned) process.
    pub grpc: u16,
    pub admin: u16,
    ports_file: PathBuf,
    /// Bind the ports of the previous process again ([`Service::spawn_on_same_ports`]).
    keep_ports: bool,
    pub db: String,
    pub name: &'static str,
    pub env: Vec<(String, String)>,
}

impl Service {
    pub async fn start(name: &'static str, nats: &NatsServer, db: String) -> anyhow::Result<Self> {
        Self::start_with(name, nats, db, &[]).await
    }

    /// Like [`Service::start`], with extra environment (config) variables.
    pub async fn start_with(
        name: &'static str,
        nats: &NatsServer,
        db: String,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let ports_file = std::env::temp_dir()
            .join(format!("psirt-e2e-{name}-{}.ports.json", uuid::Uuid::new_v4().simple()));
        let mut service = Self {
            child: spawn_placeholder()?,
            grpc: 0,
            admin: 0,
            ports_file,
            keep_ports: false,
            db,
            name,
            env: Vec::new(),
        };
        service.child.kill()?;
        service.child.wait()?;
        service.env = env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        service.spawn(nats).await?;
        service.ready().await?;
        Ok(service)
    }

    pub fn command(&self, nats: &NatsServer) -> Command {
        let mut command = Command::new(bin(&format!("psirt-{}", self.name)));
        // Authentication on, as in production: HS256 tokens of psirt_testkit::jwt
        // (Service::channel sends an admin's).
        command.envs(psirt_testkit::jwt::env());
        command
            .env("PSIRT_LOG__LEVEL", "error")
            .env("PSIRT_NATS__URL", nats.url())
            .env("PSIRT_DATABASE__URL", &self.db)
            .env("PSIRT_GRPC__LISTEN", format!("127.0.0.1:{}", if self.keep_ports { self.grpc } else { 0 }))
            .env("PSIRT_ADMIN__LISTEN", format!("127.0.0.1:{}", if self.keep_ports { self.admin } else { 0 }))
            .env("PSIRT_PORTS_FILE", &self.ports_file)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if self.name == "notification" {
            // The tests' webhook receivers listen on loopback, which the
            // egress guard refuses unless allowed.
            command.env("PSIRT_WEBHOOK__ALLOWED_NETWORKS", r#"["127.0.0.1/32"]"#);
        }
        match nats.security() {
            // The service's own identity from the shipped server
            // configuration; the stream is the admin's (secured_nats).
            Some(security) => {
                command.env("PSIRT_NATS__NKEY_SEED_FILE", security.identities.seed_file(self.name));
            }
            None => {
                command.env("PSIRT_NATS__STREAM__MANAGE", "true");
            }
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Starts the process and waits until it has bound its listeners (its ports file
    /// appeared); `grpc` and `admin` are then its new ports. Fails early when the process
    /// exits first.
    pub async fn spawn(&mut self, nats: &NatsServer) -> anyhow::Result<()> {
        self.keep_ports = false;
        self.spawn_and_read_ports(nats).await
    }

    /// Like [`Service::spawn`], on the ports the previous process bound, for a test whose
    /// clients keep their channels across a restart (as clients of a Kubernetes Service
    /// do). The ports were the old process's until it stopped, so nothing picked them and
    /// let them go; the residual race is another process binding one in the moment
    /// between the stop and this start (the start then fails with "address in use").
    pub async fn spawn_on_same_ports(&mut self, nats: &NatsServer) -> anyhow::Result<()> {
        self.keep_ports = true;
        let (grpc, admin) = (self.grpc, self.admin);
        let result = self.spawn_and_read_ports(nats).await;
        self.keep_ports = false;
        result?;
        anyhow::ensure!((self.grpc, self.admin) == (grpc, admin), "psirt-{} bound other ports", self.name);
        Ok(())
    }

    async fn spawn_and_read_ports(&mut self, nats: &NatsServer) -> anyhow::Result<()> {
        match std::fs::remove_file(&self.ports_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        self.child = self.command(nats).spawn()?;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let (grpc, admin) = loop {
            if let Some(ports) = read_ports_file(&self.ports_file) {
                break ports;
            }
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("psirt-{} exited before binding its ports: {status}", self.name);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "psirt-{} did not bind its ports within 60 s",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.grpc = grpc;
        self.admin = admin;
        Ok(())
    }

    pub async fn ready(&self) -> anyhow::Result<()> {
        let admin = self.admin;
        eventually(Duration::from_secs(30), "service ready", || async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", admin)).await.ok()?;
            stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.ok()?;
            let mut buf = Vec::new();
            stream.read_to_end(&mut buf).await.ok()?;
            buf.starts_with(b"HTTP/1.1 200").then_some(())
        })
        .await
    }

    /// GET `path` on the admin port: (status code, body).
    pub async fn admin_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.admin)).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        Ok((status, body))
    }

    /// SIGTERM, as an operator stops a service before a rebuild.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        self.child.wait()?;
        Ok(())
    }

    pub fn kill_9(&mut self) -> anyhow::Result<()> {
        self.child.kill()?; // SIGKILL
        self.child.wait()?;
        Ok(())
    }

    /// A channel to the service's gRPC port sending an admin's token with every call
    /// (see [`Service::plain_channel`] for the transport).
    pub async fn channel(&self) -> anyhow::Result<AuthChannel> {
        self.channel_as(&Token::admin()).await
    }

    /// A channel sending `token` with every call.
    pub async fn channel_as(&self, token: &Token) -> anyhow::Result<AuthChannel> {
        Ok(InterceptedService::new(self.plain_channel().await?, Bearer::new(token)))
    }

    /// A channel to the service's gRPC port, without a token: plaintext, or mutual TLS
    /// with the test client certificate when the service was started with
    /// [`mutual_tls_env`].
    pub async fn plain_channel(&self) -> anyhow::Result<Channel> {
        if !self.env.iter().any(|(key, _)| key == "PSIRT_GRPC__TLS_CERT_FILE") {
            return Ok(Channel::from_shared(format!("http://127.0.0.1:{}", self.grpc))?.connect().await?);
        }
        let read = |name: &str| std::fs::read(tls_fixture(name));
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("tls_ca.pem")?))
            .identity(Identity::from_pem(read("tls_client.pem")?, read("tls_client_key.pem")?))
            .domain_name("localhost");
        Ok(Channel::from_shared(format!("https://localhost:{}", self.grpc))?
            .tls_config(tls)?
            .connect()
            .await?)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.ports_file);
    }
}

/// The (gRPC, admin) ports of a service's ports file (`{"grpc": "127.0.0.1:N", "admin": ...}`),
/// once it is there.
pub fn read_ports_file(path: &Path) -> Option<(u16, u16)> {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let port = |key: &str| json[key].as_str()?.parse::<std::net::SocketAddr>().ok().map(|a| a.port());
    Some((port("grpc")?, port("admin")?))
}

/// TLS material of the service kit's tests: a CA, a server certificate it signed for
/// `localhost` and `127.0.0.1`, and a client certificate it signed.
pub fn tls_fixture(name: &str) -> String {
    format!("{}/../crates/kit/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Config variables that make a service's gRPC port speak only mutual TLS (clients
/// present a certificate of the test CA).
pub fn mutual_tls_env() -> Vec<(&'static str, String)> {
    vec![
        ("PSIRT_GRPC__TLS_CERT_FILE", tls_fixture("tls_server.pem")),
        ("PSIRT_GRPC__TLS_KEY_FILE", tls_fixture("tls_server_key.pem")),
        ("PSIRT_GRPC__TLS_CLIENT_CA_FILE", tls_fixture("tls_ca.pem")),
    ]
}

fn spawn_placeholder() -> anyhow::Result<Child> {
    Ok(Command::new("true").spawn()?)
}

pub fn sqlite(dir: &tempfile_dir::Dir, name: &str) -> String {
    format!("sqlite://{}?mode=rwc", dir.0.join(format!("{name}.db")).display())
}

pub mod tempfile_dir {
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new(label: &str) -> anyhow::Result<Self> {
            let dir =
                std::env::temp_dir().join(format!("psirt-e2e-{label}-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir)?;
            Ok(Self(dir))
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// How long the helpers below wait for the platform.
const FLOW_DEADLINE: Duration = Duration::from_secs(60);

/// A report as a researcher files it through the web form: `request_id`,
/// `title`, one affected `product`; tests change other fields with
/// `SubmitReportRequest { .., ..report(..) }`.
pub fn report(request_id: &str, title: &str, product: &str) -> psirt_proto::intake::SubmitReportRequest {
    use psirt_proto::common as pc;
    psirt_proto::intake::SubmitReportRequest {
        request_id: request_id.to_owned(),
        title: title.to_owned(),
        description: "Found during a code review.".to_owned(),
        reporter: Some(pc::Reporter {
            name: "Sam".to_owned(),
            email: "sam@example.org".to_owned(),
            organization: String::new(),
        }),
        channel: pc::ReportChannel::Web.into(),
        affected_products: vec![product.to_owned()],
        ..Default::default()
    }
}

/// Submits a report to intake (web channel, one reporter) and waits until
/// triage has opened its case under the promised id; returns the case.
pub async fn open_case(
    intake: &Service,
    triage: &Service,
    request_id: &str,
    title: &str,
) -> anyhow::Result<psirt_proto::triage::Case> {
    use psirt_proto::intake::intake_service_client::IntakeServiceClient;
    use psirt_proto::triage as t;
    use psirt_proto::triage::case_service_client::CaseServiceClient;
    let submitted = IntakeServiceClient::new(intake.channel().await?)
        .submit_report(report(request_id, title, "acme-router"))
        .await?
        .into_inner();
    let cases = CaseServiceClient::new(triage.channel().await?);
    eventually(FLOW_DEADLINE, "case opened", || {
        let mut cases = cases.clone();
        let id = submitted.case_id.clone();
        async move {
            let lookup = Some(t::get_case_request::Lookup::CaseId(id));
            cases.get_case(t::GetCaseRequest { lookup }).await.ok()?.into_inner().case
        }
    })
    .await
}

/// Assesses a case with a CVSS 3.1 vector and accepts it.
pub async fn assess_and_accept(triage: &Service, case_id: &str, cvss_v3_vector: &str) -> anyhow::Result<()> {
    use psirt_proto::triage as t;
    use psirt_proto::triage::triage_service_client::TriageServiceClient;
    let mut decisions = TriageServiceClient::new(triage.channel().await?);
    decisions
        .assess_severity(t::AssessSeverityRequest {
            case_id: case_id.to_owned(),
            request_id: "assess".to_owned(),
            cvss_v3_vector: cvss_v3_vector.to_owned(),
            ..Default::default()
        })
        .await?;
    decisions
        .accept_case(t::AcceptCaseRequest {
            case_id: case_id.to_owned(),
            request_id: "accept".to_owned(),
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// What the receiver saw of one CloudEvent id: how many POSTs, and its type.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub count: usize,
    pub event_type: String,
}

pub type Received = Arc<Mutex<BTreeMap<String, Seen>>>;

/// A minimal HTTP/1.1 server (keep-alive, `Content-Length` bodies) that
/// records the CloudEvent id and type of every POST and answers 200.
pub async fn webhook_receiver() -> anyhow::Result<(String, Received)> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let received: Received = Arc::default();
    let recorder = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let received = Arc::clone(&recorder);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    let mut first = true;
                    loop {
                        line.clear();
                        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" && !first {
                            break;
                        }
                        first = false;
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if read.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    if let Some(id) = json["id"].as_str() {
                        let mut received = received.lock().expect("received");
                        let seen = received.entry(id.to_owned()).or_default();
                        seen.count += 1;
                        json["type"].as_str().unwrap_or_default().clone_into(&mut seen.event_type);
                    }
                    if write.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok((url, received))
}

/// A request body given as its encoded bytes (built through the descriptors).
#[derive(Clone, Default, PartialEq)]
pub struct Raw(pub Vec<u8>);

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Raw({} bytes)", self.0.len())
    }
}

impl prost::Message for Raw {
    fn encode_raw(&self, buf: &mut impl bytes::BufMut) {
        buf.put_slice(&self.0);
    }
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

/// One call of `path` with `body` (a request's encoded bytes) as the request;
/// a server stream answers with its first message or error (or nothing for
/// half a second: accepted).
pub async fn call_raw(
    channel: &Channel,
    bearer: &Bearer,
    path: &str,
    server_streaming: bool,
    body: Vec<u8>,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(InterceptedService::new(channel.clone(), bearer.clone()));
    if let Err(e) = grpc.ready().await {
        panic!("{path}: channel not ready: {e}");
    }
    let path = http::uri::PathAndQuery::try_from(path).expect("method path");
    let codec = tonic_prost::ProstCodec::<Raw, Raw>::default();
    let request = tonic::Request::new(Raw(body));
    if server_streaming {
        let mut stream = grpc.server_streaming(request, path, codec).await?.into_inner();
        match tokio::time::timeout(Duration::from_millis(500), stream.message()).await {
            Ok(Err(status)) => Err(status),
            _ => Ok(()),
        }
    } else {
        grpc.unary(request, path, codec).await.map(|_| ())
    }
}
