//! `just up` as a new user runs it: the script starts nats-server and the
//! services on embedded defaults; reflection lists the APIs; `psirtctl`
//! submits, gets and lists a report; Ctrl-C stops everything.
//!
//! Every port is 0 (the kernel picks; the test reads the bound ones from the ports
//! files), and the script runs in its own process group, killed whole when the test
//! ends, so a failing test leaves nothing running.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use psirt_testkit::eventually;

/// Every binary `scripts/up.sh` runs: the four services, the portal and psirtctl.
const UP_PACKAGES: [&str; 6] =
    ["psirt-intake", "psirt-triage", "psirt-remediation", "psirt-notification", "psirt-portal", "psirt-cli"];

/// `scripts/up.sh` in its own process group; dropping it (the test passed, failed or
/// panicked) kills the whole group: the script, nats-server and the services.
struct Platform {
    child: Child,
}

impl Platform {
    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        // The group's id is the script's pid (process_group(0)).
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.pid())]).status();
        let _ = self.child.wait();
    }
}

/// The ports named `keys` of the ports file `<state>/<name>.ports.json`.
fn ports_in(state: &Path, name: &str, keys: [&str; 2]) -> anyhow::Result<(u16, u16)> {
    let text = std::fs::read_to_string(state.join(format!("{name}.ports.json")))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let port = |key: &str| -> anyhow::Result<u16> {
        let addr: std::net::SocketAddr =
            json[key].as_str().ok_or_else(|| anyhow::anyhow!("{name}: no {key} in {text}"))?.parse()?;
        Ok(addr.port())
    };
    Ok((port(keys[0])?, port(keys[1])?))
}

/// (gRPC, admin) ports a service bound, from the ports file it writes under the state dir.
fn service_ports(state: &Path, service: &str) -> anyhow::Result<(u16, u16)> {
    ports_in(state, service, ["grpc", "admin"])
}

/// (HTTP, admin) ports the portal bound, from its ports file.
fn portal_ports(state: &Path) -> anyhow::Result<(u16, u16)> {
    ports_in(state, "portal", ["http", "admin"])
}

/// The client port of the nats-server `up.sh` started, from its ports file.
fn nats_port(state: &Path) -> anyhow::Result<u16> {
    for entry in std::fs::read_dir(state.join("nats"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "ports") {
            let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            let url = json["nats"][0].as_str().unwrap_or_default();
            return Ok(url.rsplit(':').next().unwrap_or_default().parse()?);
        }
    }
    anyhow::bail!("no nats-server ports file in {}", state.join("nats").display())
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bin_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from).join("debug")
}

/// psirtctl against the service at `grpc`, keeping its positions under `state`.
fn psirtctl(state: &Path, grpc: u16, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(bin_dir().join("psirtctl"))
        .env("PSIRT_STATE", state.join("psirtctl.state"))
        .args(["--server", &format!("127.0.0.1:{grpc}")])
        .args(args)
        .output()?)
}

/// Builds every binary the script starts (`just up` builds first; a no-op when built).
fn build() -> anyhow::Result<()> {
    let mut build = Command::new(env!("CARGO"));
    build.arg("build");
    for package in UP_PACKAGES {
        build.args(["-p", package]);
    }
    anyhow::ensure!(build.status()?.success(), "build failed");
    Ok(())
}

/// Starts `scripts/up.sh` with its state under `state`, every port 0, and waits for
/// its banner; returns the platform, its output so far (growing) and the banner.
async fn start(state: &Path) -> anyhow::Result<(Platform, Arc<Mutex<String>>, String)> {
    let mut script = Command::new("bash");
    script
        .arg(root().join("scripts/up.sh"))
        .env("STATE_DIR", state)
        .env("PSIRT_BIN_DIR", bin_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0);
    for var in [
        "PSIRT_NATS_PORT",
        "PSIRT_UP_INTAKE_GRPC_PORT",
        "PSIRT_UP_INTAKE_ADMIN_PORT",
        "PSIRT_UP_TRIAGE_GRPC_PORT",
        "PSIRT_UP_TRIAGE_ADMIN_PORT",
        "PSIRT_UP_REMEDIATION_GRPC_PORT",
        "PSIRT_UP_REMEDIATION_ADMIN_PORT",
        "PSIRT_UP_NOTIFICATION_GRPC_PORT",
        "PSIRT_UP_NOTIFICATION_ADMIN_PORT",
        "PSIRT_UP_PORTAL_PORT",
        "PSIRT_UP_PORTAL_ADMIN_PORT",
    ] {
        script.env(var, "0");
    }
    let mut up = Platform { child: script.spawn()? };
    let out = Arc::new(Mutex::new(String::new()));
    let stdout = up.child.stdout.take().expect("piped");
    let sink = Arc::clone(&out);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().expect("lock").push_str(&(line + "\n"));
        }
    });
    let banner = eventually(Duration::from_secs(90), "platform up", || {
        let out = Arc::clone(&out);
        async move {
            let text = out.lock().ok()?.clone();
            text.contains("PSIRT platform is up").then_some(text)
        }
    })
    .await?;
    Ok((up, out, banner))
}

/// Every port the platform under `state` bound: the services' gRPC and admin
/// ports, the portal's HTTP and admin ports and nats-server's client port.
fn bound_ports(state: &Path) -> anyhow::Result<Vec<u16>> {
    let mut ports = vec![nats_port(state)?];
    for service in ["intake", "triage", "remediation", "notification"] {
        let (grpc, admin) = service_ports(state, service)?;
        ports.extend([grpc, admin]);
    }
    let (http, admin) = portal_ports(state)?;
    ports.extend([http, admin]);
    Ok(ports)
}

/// Pids of the processes started with `STATE_DIR=<state>` in their environment
/// (the script, nats-server and the services inherit it).
fn processes_of(state: &Path) -> Vec<String> {
    let needle = format!("STATE_DIR={}\0", state.display());
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The environment variable that makes [`a_run_that_fails_on_purpose`] run.
const FAIL_ON_PURPOSE: &str = "PSIRT_UP_FAIL_ON_PURPOSE_STATE";

/// Not a test of its own: [`a_failing_test_leaves_nothing_running`] runs it in a
/// child process (this test binary, `--exact --ignored`), with the state dir in
/// [`FAIL_ON_PURPOSE`]. It starts the platform and fails while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by a_failing_test_leaves_nothing_running, which checks what it leaves behind"]
async fn a_run_that_fails_on_purpose() -> anyhow::Result<()> {
    let state = PathBuf::from(
        std::env::var_os(FAIL_ON_PURPOSE).ok_or_else(|| anyhow::anyhow!("{FAIL_ON_PURPOSE} is not set"))?,
    );
    let (_up, _out, banner) = start(&state).await?;
    assert!(banner.contains("a banner this platform never prints"), "failing on purpose, platform up");
    Ok(())
}

/// A test of `just up` that fails (here: an assertion while the platform runs) kills
/// what it started: afterwards no process of that platform runs and every port it
/// bound is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_test_leaves_nothing_running() -> anyhow::Result<()> {
    build()?;
    let state = tempfile_dir("fails")?;
    let run = Command::new(std::env::current_exe()?)
        .args(["a_run_that_fails_on_purpose", "--exact", "--ignored", "--nocapture"])
        .env(FAIL_ON_PURPOSE, &state)
        .output()?;
    let output = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(!run.status.success(), "the inner run must fail: {output}");
    assert!(output.contains("failing on purpose, platform up"), "it failed where meant to: {output}");
    // It was up: every service, the portal and nats-server wrote the ports they bound.
    let ports = bound_ports(&state)?;
    assert_eq!(ports.len(), 11, "{ports:?}");
    let gone = eventually(Duration::from_secs(15), "nothing of the platform left running", || {
        let left = processes_of(&state);
        let bound = ports.iter().any(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok());
        async move { (left.is_empty() && !bound).then_some(()) }
    })
    .await;
    assert!(gone.is_ok(), "still running: pids {:?}", processes_of(&state));
    std::fs::remove_dir_all(&state)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn just_up_serves_reflection_and_psirtctl_and_stops_on_ctrl_c() -> anyhow::Result<()> {
    build()?;
    let state = tempfile_dir("up")?;
    let (mut up, out, banner) = start(&state).await?;
    assert!(banner.contains("authentication is disabled"), "{banner}");
    let (grpc, admin) = service_ports(&state, "intake")?;
    let (triage_grpc, triage_admin) = service_ports(&state, "triage")?;
    let (remediation_grpc, remediation_admin) = service_ports(&state, "remediation")?;
    let (notification_grpc, notification_admin) = service_ports(&state, "notification")?;
    let nats = nats_port(&state)?;
    for port in [grpc, triage_grpc, remediation_grpc, notification_grpc, nats] {
        assert!(banner.contains(&format!("127.0.0.1:{port} ")), "port {port} in the banner: {banner}");
    }

    // server reflection over v1alpha, as older grpcurl and the Python client speak it
    let script = r#"
import sys, grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
db = ProtoReflectionDescriptorDatabase(grpc.insecure_channel(sys.argv[1]))
print("\n".join(db.get_services()))
"#;
    let listed = Command::new("python3").args(["-c", script, &format!("127.0.0.1:{grpc}")]).output()?;
    assert!(
        listed.status.success(),
        "the Python gRPC reflection client failed (`just test` installs grpcio and grpcio-reflection: \
         the ensure-python-tools recipe): {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let services = String::from_utf8(listed.stdout)?;
    assert!(services.lines().any(|s| s == "psirt.intake.v1.IntakeService"), "{services}");
    let listed =
        Command::new("python3").args(["-c", script, &format!("127.0.0.1:{triage_grpc}")]).output()?;
    let services = String::from_utf8(listed.stdout)?;
    for service in ["psirt.triage.v1.TriageService", "psirt.triage.v1.CaseService"] {
        assert!(services.lines().any(|s| s == service), "{service} in {services}");
    }
    let listed =
        Command::new("python3").args(["-c", script, &format!("127.0.0.1:{remediation_grpc}")]).output()?;
    let services = String::from_utf8(listed.stdout)?;
    for service in ["psirt.remediation.v1.RemediationService", "psirt.remediation.v1.AdvisoryService"] {
        assert!(services.lines().any(|s| s == service), "{service} in {services}");
    }
    let listed =
        Command::new("python3").args(["-c", script, &format!("127.0.0.1:{notification_grpc}")]).output()?;
    let services = String::from_utf8(listed.stdout)?;
    assert!(
        services.lines().any(|s| s == "psirt.notification.v1.NotificationService"),
        "NotificationService in {services}"
    );

    // The portal's security.txt (RFC 9116), as `curl` after `just up` gets it.
    let (portal, _) = portal_ports(&state)?;
    let url = format!("http://127.0.0.1:{portal}/.well-known/security.txt");
    assert!(banner.contains(&url), "the portal's URL in the banner: {banner}");
    let fetched = Command::new("python3")
        .args(["-c", "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())", &url])
        .output()?;
    assert!(fetched.status.success(), "{}", String::from_utf8_lossy(&fetched.stderr));
    let text = String::from_utf8(fetched.stdout)?;
    assert!(text.lines().any(|l| l == "Contact: mailto:psirt@localhost"), "{text}");
    assert!(text.lines().any(|l| l == format!("Canonical: {url}")), "{text}");
    let expires: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("Expires: ")).collect();
    assert_eq!(expires.len(), 1, "{text}");
    let expires = time::OffsetDateTime::parse(expires[0], &time::format_description::well_known::Rfc3339)?;
    assert!(expires > time::OffsetDateTime::now_utc() + time::Duration::days(30), "{text}");

    let submitted = psirtctl(
        &state,
        grpc,
        &[
            "--output",
            "json",
            "report",
            "submit",
            "--title",
            "Heap overflow in the image parser",
            "--description",
            "A crafted PNG overflows a heap buffer.",
            "--product",
            "Viewer 3",
        ],
    )?;
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stderr));
    let json: serde_json::Value = serde_json::from_slice(&submitted.stdout)?;
    let report_id = json["reportId"].as_str().expect("reportId").to_owned();

    let got = psirtctl(&state, grpc, &["--output", "json", "report", "get", &report_id])?;
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    let json: serde_json::Value = serde_json::from_slice(&got.stdout)?;
    assert_eq!(json["report"]["title"], "Heap overflow in the image parser");

    // Read your own writes: the list right after the submission shows it (psirtctl
    // passes the position the submission answered; the read waits for it).
    let listed = psirtctl(&state, grpc, &["report", "list"])?;
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&report_id), "listed at once: {listed:?}");

    // Ctrl-C: the script stops nats-server and the services, then exits.
    let pid = up.pid().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status()?.success());
    let exited = eventually(Duration::from_secs(30), "up.sh exit", || {
        let status = up.child.try_wait().ok().flatten();
        async move { status }
    })
    .await?;
    let _ = exited;
    for port in [
        grpc,
        admin,
        nats,
        triage_grpc,
        triage_admin,
        remediation_grpc,
        remediation_admin,
        notification_grpc,
        notification_admin,
    ] {
        eventually(Duration::from_secs(15), "port released", || async move {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err().then_some(())
        })
        .await?;
    }
    assert!(out.lock().expect("lock").contains("stopped"));
    std::fs::remove_dir_all(&state)?;
    Ok(())
}

fn tempfile_dir(name: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("psirt-up-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
