//! A real SMTP server for tests: Python's `aiosmtpd` as a child process on a
//! 127.0.0.1 port of the kernel's choosing (it binds port 0 and writes the
//! port it bound to a file the test reads), storing every accepted message as a JSON file in a
//! temporary directory.
//!
//! Recipients whose local part starts with `reject` are refused with
//! `550 5.1.1` (a permanent failure), those starting with `defer` with
//! `451 4.3.0` (a transient one). [`SmtpServer::start_with_auth`] requires
//! SMTP AUTH (PLAIN/LOGIN, allowed without TLS on loopback) with the given
//! user and password.
//!
//! CI installs `aiosmtpd==1.4.6` (`python3 -m pip install aiosmtpd==1.4.6`).
//! Without it, starting fails — unless `PSIRT_SKIP_SMTP_TESTS=1` is set, in
//! which case [`SmtpServer::start_or_skip`] returns `None` and says why.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;

/// Set to `1` to skip SMTP tests where `aiosmtpd` is not installed.
pub const SKIP_ENV: &str = "PSIRT_SKIP_SMTP_TESTS";

/// The pip requirement the SMTP tests need.
pub const REQUIREMENT: &str = "aiosmtpd==1.4.6";

const SCRIPT: &str = r#"
import asyncio, email, email.policy, json, os, sys
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

host, port, out, port_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
user = os.environ.get("SMTP_TEST_USER")
password = os.environ.get("SMTP_TEST_PASSWORD")

class Handler:
    def __init__(self):
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        if local.startswith("defer"):
            return "451 4.3.0 <%s>: try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = "" if msg.is_multipart() else msg.get_content()
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_to": list(envelope.rcpt_tos),
            "headers": [[k, str(v)] for k, v in msg.items()],
            "body": body,
            "raw": raw.decode("utf-8", "replace"),
            "auth_user": session.authenticated and user or None,
        }
        path = os.path.join(out, "%06d.json" % self.count)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)
        return "250 2.0.0 Ok: queued"

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login.decode() == user and auth_data.password.decode() == password)
    return AuthResult(success=ok, handled=False)

async def main():
    handler = Handler()
    def factory():
        if user is None:
            return SMTP(handler, hostname="psirt-test-smtp")
        return SMTP(handler, hostname="psirt-test-smtp", authenticator=authenticator,
                    auth_required=True, auth_require_tls=False)
    server = await asyncio.get_running_loop().create_server(factory, host, port)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    os.replace(port_file + ".tmp", port_file)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"#;

/// One message the server accepted.
#[derive(Debug, Clone, Deserialize)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`) that were accepted.
    pub rcpt_to: Vec<String>,
    /// Every header in order, values decoded (RFC 2047) and unfolded.
    pub headers: Vec<(String, String)>,
    /// The decoded text body (empty for multipart messages).
    pub body: String,
    /// The message as received.
    pub raw: String,
    /// The user that authenticated, if the server required AUTH.
    pub auth_user: Option<String>,
}

impl ReceivedMail {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Is `aiosmtpd` importable by `python3`?
pub fn aiosmtpd_available() -> bool {
    Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A real SMTP server, killed on drop.
pub struct SmtpServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts a server accepting mail without authentication.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_inner(None).await
    }

    /// Starts a server that requires AUTH with `user` and `password`.
    pub async fn start_with_auth(user: &str, password: &str) -> anyhow::Result<Self> {
        Self::start_inner(Some((user, password))).await
    }

    /// [`start`](Self::start), or `None` (with a note on stderr) when
    /// `aiosmtpd` is missing and `PSIRT_SKIP_SMTP_TESTS=1` is set.
    pub async fn start_or_skip() -> anyhow::Result<Option<Self>> {
        if skip() {
            return Ok(None);
        }
        Self::start().await.map(Some)
    }

    /// [`start_with_auth`](Self::start_with_auth), or `None` as in
    /// [`start_or_skip`](Self::start_or_skip).
    pub async fn start_with_auth_or_skip(user: &str, password: &str) -> anyhow::Result<Option<Self>> {
        if skip() {
            return Ok(None);
        }
        Self::start_with_auth(user, password).await.map(Some)
    }

    async fn start_inner(auth: Option<(&str, &str)>) -> anyhow::Result<Self> {
        if !aiosmtpd_available() {
            bail!(
                "python3 cannot import aiosmtpd: run `python3 -m pip install {REQUIREMENT}` \
                 (or set {SKIP_ENV}=1 to skip the SMTP tests)"
            );
        }
        let dir = tempfile::tempdir().context("failed to create the mail dir")?;
        let mut server = Self { child: None, port: 0, dir };
        server.spawn_and_wait(auth).await?;
        Ok(server)
    }

    async fn spawn_and_wait(&mut self, auth: Option<(&str, &str)>) -> anyhow::Result<()> {
        let script = self.dir.path().join("smtp_server.py");
        std::fs::write(&script, SCRIPT).context("failed to write the SMTP server script")?;
        let mail = self.mail_dir();
        std::fs::create_dir_all(&mail)?;
        let log = std::fs::File::create(self.dir.path().join("server.log"))?;
        let mut command = Command::new("python3");
        command
            .arg(&script)
            .arg("127.0.0.1")
            .arg("0")
            .arg(&mail)
            .arg(self.port_file())
            .env_remove("SMTP_TEST_USER")
            .env_remove("SMTP_TEST_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some((user, password)) = auth {
            command.env("SMTP_TEST_USER", user).env("SMTP_TEST_PASSWORD", password);
        }
        self.child = Some(command.spawn().context("failed to spawn python3")?);

        let deadline = Duration::from_secs(15);
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            if self.port == 0
                && let Some(port) =
                    std::fs::read_to_string(self.port_file()).ok().and_then(|p| p.trim().parse().ok())
            {
                self.port = port;
            }
            if self.port != 0 && self.greets() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                bail!("the SMTP server exited early with {status}: {}", self.log());
            }
            if started.elapsed() > deadline {
                self.kill();
                bail!("timed out after {deadline:?} waiting for the SMTP server: {}", self.log());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Does the server answer with its `220` greeting?
    fn greets(&self) -> bool {
        use std::io::Read;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut greeting = [0u8; 3];
        stream.read_exact(&mut greeting).is_ok() && &greeting == b"220"
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Where the server writes the port it bound.
    fn port_file(&self) -> PathBuf {
        self.dir.path().join("port")
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message accepted so far, in arrival order.
    pub fn messages(&self) -> anyhow::Result<Vec<ReceivedMail>> {
        read_messages(&self.mail_dir())
    }

    /// Polls until at least `count` messages arrived, or fails after `deadline`.
    pub async fn wait_for_messages(
        &self,
        count: usize,
        deadline: Duration,
    ) -> anyhow::Result<Vec<ReceivedMail>> {
        crate::eventually(deadline, &format!("{count} e-mail message(s)"), || async {
            self.messages().ok().filter(|m| m.len() >= count)
        })
        .await
    }

    /// Kills the server and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether to skip: `aiosmtpd` is missing and `PSIRT_SKIP_SMTP_TESTS=1`.
fn skip() -> bool {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") && !aiosmtpd_available() {
        eprintln!("skipping: python3 cannot import aiosmtpd and {SKIP_ENV}=1 (pip install {REQUIREMENT})");
        return true;
    }
    false
}

fn read_messages(dir: &Path) -> anyhow::Result<Vec<ReceivedMail>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("failed to read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("failed to read {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("failed to parse {}", p.display()))
        })
        .collect()
}
