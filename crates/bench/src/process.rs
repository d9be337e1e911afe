//! The intake service as a child process for `all`: started on free ports
//! with a throwaway SQLite database, polled until `/readyz` answers 200, and
//! its memory read from `/proc/<pid>/status` while it is under load.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::report::Memory;

/// How long the intake may take to become ready (a busy 2-core machine
/// running migrations on a cold disk).
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// Times the child is started on fresh ports when it dies before becoming
/// ready: a port picked free can be taken before the child binds it.
const START_ATTEMPTS: usize = 3;

/// A directory removed with everything in it on drop.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(label: &str) -> anyhow::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("psirt-bench-{label}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).with_context(|| format!("failed to create {}", path.display()))?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `psirt-intake`, killed on drop.
pub struct IntakeProcess {
    child: Child,
    pid: u32,
    grpc: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
    // Declared last: dropped after the child is killed.
    _dir: ScratchDir,
}

impl IntakeProcess {
    /// Starts `bin` against NATS at `nats_url` (comma-separated servers)
    /// with an event stream of `replicas`, and waits until it is ready.
    pub async fn start(bin: &Path, nats_url: &str, replicas: usize) -> anyhow::Result<Self> {
        Self::start_service(bin, "intake", nats_url, replicas, None).await
    }

    /// Starts any service binary of the platform (`name` names its scratch
    /// folder and database) and waits until it is ready. It creates the
    /// event stream with `replicas` when missing, and refuses an existing
    /// one with another count. Its read model is an SQLite file in the
    /// scratch folder, or the database at `database_url`.
    pub async fn start_service(
        bin: &Path,
        name: &str,
        nats_url: &str,
        replicas: usize,
        database_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        if !bin.is_file() {
            bail!(
                "intake binary {} not found: build it with `cargo build -p psirt-intake --release` \
                 or pass --intake-bin",
                bin.display()
            );
        }
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            let mut process = Self::spawn(bin, name, nats_url, replicas, database_url)?;
            match process.wait_ready().await {
                Ok(()) => return Ok(process),
                Err(err) => {
                    let exited = process.child.try_wait().ok().flatten().is_some();
                    let err = err.context(format!("intake log:\n{}", process.log_tail(20)));
                    process.kill().await;
                    if !exited {
                        // Alive but never ready: another attempt will not help.
                        return Err(err);
                    }
                    last_err = Some(err);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("failed to start the intake")))
    }

    fn spawn(
        bin: &Path,
        name: &str,
        nats_url: &str,
        replicas: usize,
        database_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        let dir = ScratchDir::new(name)?;
        let grpc = SocketAddr::from(([127, 0, 0, 1], psirt_testkit::free_port()?));
        let admin = SocketAddr::from(([127, 0, 0, 1], psirt_testkit::free_port()?));
        let log = dir.path().join(format!("{name}.log"));
        let out =
            std::fs::File::create(&log).with_context(|| format!("failed to create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut command = Command::new(bin);
        // Only the settings below: a developer's own PSIRT_* variables or
        // config file must not change what is measured.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PSIRT_") {
                command.env_remove(key);
            }
        }
        command
            .arg("serve")
            .current_dir(dir.path())
            .env("PSIRT_AUTH__MODE", "none")
            .env("PSIRT_LOG__LEVEL", "warn")
            .env("PSIRT_NATS__URL", nats_url)
            .env("PSIRT_NATS__STREAM__MANAGE", "true")
            .env("PSIRT_NATS__STREAM__REPLICAS", replicas.to_string())
            .env(
                "PSIRT_DATABASE__URL",
                database_url.map_or_else(
                    || format!("sqlite://{}?mode=rwc", dir.path().join(format!("{name}.db")).display()),
                    str::to_owned,
                ),
            )
            .env("PSIRT_GRPC__LISTEN", grpc.to_string())
            .env("PSIRT_ADMIN__LISTEN", admin.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        if name == "intake" {
            // The benchmark's load is one principal far above any sane
            // quota: the staff submission rate is measured, not limited.
            command.env("PSIRT_QUOTAS__STAFF_SUBMIT_REPORTS__PER_MINUTE", "0");
        }
        let child = command.spawn().with_context(|| format!("failed to start {}", bin.display()))?;
        let pid = child.id().context("the intake exited at once")?;
        Ok(Self { child, pid, grpc, admin, log, _dir: dir })
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let admin = self.admin;
        let start = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the intake exited with {status} before it was ready");
            }
            if http_status(admin, "/readyz").await == Some(200) {
                return Ok(());
            }
            if start.elapsed() > READY_DEADLINE {
                bail!("the intake was not ready at http://{admin}/readyz after {READY_DEADLINE:?}");
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// `http://<grpc address>`.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The last `lines` lines of the child's output.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Kills the child and waits for it (bounded).
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// The status code of `GET <path>` on `addr`, or `None` when there is no
/// answer within a second. A raw HTTP/1.1 request: one status line is all
/// readiness needs.
pub async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut buf = [0u8; 256];
        let mut len = 0;
        while len < buf.len() && !buf[..len].contains(&b'\n') {
            let n = stream.read(&mut buf[len..]).await.ok()?;
            if n == 0 {
                break;
            }
            len += n;
        }
        parse_status_line(&buf[..len])
    };
    tokio::time::timeout(Duration::from_secs(1), exchange).await.ok().flatten()
}

/// The status code of an HTTP/1.x response's first line.
pub fn parse_status_line(response: &[u8]) -> Option<u16> {
    let line = response.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// The value of a `Key:   123 kB` line of a `/proc` file, in KiB.
pub fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        if k.trim() != key {
            return None;
        }
        let mut words = v.split_whitespace();
        let value = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") | None => Some(value),
            Some(_) => None,
        }
    })
}

/// Samples a process's `VmRSS` every `every` until finished.
pub struct MemorySampler {
    pid: u32,
    stop: oneshot::Sender<()>,
    task: JoinHandle<(u64, u64, u64)>,
}

impl MemorySampler {
    pub fn start(pid: u32, every: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let path = format!("/proc/{pid}/status");
        let task = tokio::spawn(async move {
            let (mut peak, mut sum, mut samples) = (0u64, 0u64, 0u64);
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticks.tick() => {}
                }
                let Ok(text) = tokio::fs::read_to_string(&path).await else { break };
                if let Some(kib) = kib_field(&text, "VmRSS") {
                    peak = peak.max(kib);
                    sum += kib;
                    samples += 1;
                }
            }
            (peak, sum, samples)
        });
        Self { pid, stop, task }
    }

    /// Stops sampling and reads `VmHWM`; call before the process ends.
    pub async fn finish(self) -> Memory {
        let _ = self.stop.send(());
        let (peak, sum, samples) = self.task.await.unwrap_or((0, 0, 0));
        let hwm = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|t| kib_field(&t, "VmHWM"));
        Memory {
            rss_peak_bytes: peak * 1024,
            rss_mean_bytes: sum.checked_div(samples).unwrap_or(0) * 1024,
            vm_hwm_bytes: hwm.map(|k| k * 1024),
            samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str =
        "Name:\tpsirt-intake\nVmPeak:\t  812345 kB\nVmHWM:\t   44032 kB\nVmRSS:\t   42292 kB\nThreads:\t5\n";

    #[test]
    fn reads_kib_fields() {
        assert_eq!(kib_field(STATUS, "VmRSS"), Some(42_292));
        assert_eq!(kib_field(STATUS, "VmHWM"), Some(44_032));
        assert_eq!(kib_field(STATUS, "VmSwap"), None);
        assert_eq!(kib_field("MemTotal:       24684000 kB\n", "MemTotal"), Some(24_684_000));
        assert_eq!(kib_field(STATUS, "Threads"), Some(5));
        assert_eq!(kib_field(STATUS, "Name"), None);
    }

    #[test]
    fn parses_status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.1 503 Service Unavailable\r\n"), Some(503));
        assert_eq!(parse_status_line(b"HTTP/1.0 200\r\n"), Some(200));
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line(b""), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 20"), None);
    }

    #[tokio::test]
    async fn http_status_reads_a_real_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let n = socket.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /readyz HTTP/1.1\r\n"));
            socket.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await.unwrap();
        });
        assert_eq!(http_status(addr, "/readyz").await, Some(503));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn samples_own_memory() {
        let sampler = MemorySampler::start(std::process::id(), Duration::from_millis(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let memory = sampler.finish().await;
        assert!(memory.samples >= 1);
        assert!(memory.rss_peak_bytes > 0);
        assert!(memory.vm_hwm_bytes.unwrap() >= memory.rss_peak_bytes);
    }
}
