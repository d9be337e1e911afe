//! `psirtctl case ...` and `psirtctl triage ...` against real intake and
//! triage services on one event stream: a report submitted to intake opens a
//! case, which is triaged, shown, listed, watched and traced on its
//! timeline; plus the usage and connection errors of these commands.

mod support;

use std::time::Duration;

use psirt_testkit::{eventually, free_port};
use support::{PROJECTION_DEADLINE, Platform, Run, psirtctl};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const CVSS_V3: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";

/// `psirtctl --triage-server <triage> <args>`.
fn triage_cmd(platform: &Platform, args: &[&str]) -> Vec<String> {
    ["--triage-server", platform.triage.as_str()].iter().chain(args).map(|s| (*s).to_owned()).collect()
}

/// Runs `args` against triage until `done` accepts the (successful) run.
async fn until(
    platform: &Platform,
    what: &str,
    args: &[&str],
    done: impl Fn(&Run) -> bool + Clone,
) -> anyhow::Result<Run> {
    let args = triage_cmd(platform, args);
    eventually(PROJECTION_DEADLINE, what, || {
        let args = args.clone();
        let done = done.clone();
        async move {
            let run = psirtctl(args).run().await;
            (run.code == 0 && done(&run)).then_some(run)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_to_accepted_case() -> anyhow::Result<()> {
    let platform = Platform::start().await?;

    let submitted = psirtctl([
        "--server",
        &platform.intake,
        "report",
        "submit",
        "--title",
        "SQL injection in the login form",
        "--description",
        "The user field is concatenated into a query.",
        "--channel",
        "web",
        "--product",
        "acme-portal",
    ])
    .run()
    .await
    .expect_code(0);
    let case_id = submitted.field("Case ID");

    // Triage opens the case from intake's event.
    let shown = until(&platform, "the case in `case show`", &["case", "show", &case_id], |_| true).await?;
    assert_eq!(shown.field("Status"), "received");
    assert_eq!(shown.field("Severity"), "unassessed");
    assert_eq!(shown.field("Title"), "SQL injection in the login form");
    let key = shown.field("Case key");
    assert!(key.starts_with("PSIRT-"), "{key}");
    // Lookups by key read the case view, which may lag a moment behind.
    until(&platform, "the case by its key", &["case", "show", &key], |run| run.field("Case ID") == case_id)
        .await?;

    // Watch every change from the start of the stream, as JSON lines.
    let mut watch =
        psirtctl(triage_cmd(&platform, &["--output", "json", "case", "watch", "--after-sequence", "0"]))
            .spawn();

    // Assess by key: the key is resolved to the id first.
    let assessed = psirtctl(triage_cmd(
        &platform,
        &[
            "triage",
            "assess",
            &key,
            "--cvss-v3",
            CVSS_V3,
            "--exploitation",
            "poc",
            "--automatable",
            "yes",
            "--value-density",
            "concentrated",
            "--technical-impact",
            "total",
            "--public-safety-impact",
            "minimal",
            "--cwe",
            "CWE-89",
        ],
    ))
    .run()
    .await
    .expect_code(0);
    assert_eq!(assessed.field("Case ID"), case_id);
    assert_eq!(assessed.field("Status"), "triage", "assessing a received case starts triage");
    assert_eq!(assessed.field("Severity"), "critical 9.8");
    assert_eq!(assessed.field("Request ID").len(), 36, "a generated UUID is shown");

    let products = psirtctl(triage_cmd(
        &platform,
        &[
            "triage",
            "products",
            &case_id,
            "--product",
            "acme-portal=2.3.0,2.3.1",
            "--product",
            "acme-gateway@vers:semver/>=2.0.0|<2.4.1",
        ],
    ))
    .run()
    .await
    .expect_code(0);
    let version = products.field("Version");

    // A stale version is refused and changes nothing.
    let stale = psirtctl(triage_cmd(
        &platform,
        &["triage", "assign", &case_id, "--assignee", "bob", "--expected-version", "1"],
    ))
    .run()
    .await
    .expect_code(1);
    assert!(stale.stderr.starts_with("error: ABORTED: "), "{}", stale.stderr);

    // Accept at the current version, as JSON: `{"case": ...}`.
    let accepted = psirtctl(triage_cmd(
        &platform,
        &[
            "--output",
            "json",
            "triage",
            "accept",
            &key,
            "--expected-version",
            &version,
            "--request-id",
            "cli-accept-1",
        ],
    ))
    .run()
    .await
    .expect_code(0)
    .json();
    assert_eq!(accepted["case"]["status"], "CASE_STATUS_ACCEPTED");
    assert_eq!(accepted["case"]["caseKey"], key.as_str());

    // The case view catches up.
    let shown =
        until(&platform, "the accepted case", &["case", "show", &key], |run| run.stdout.contains("accepted"))
            .await?;
    assert_eq!(shown.field("Status"), "accepted");
    assert_eq!(shown.field("Severity"), "critical 9.8");
    assert!(
        shown.stdout.contains(&format!("  CVSS v3.1:        9.8 critical {CVSS_V3}\n")),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("  SSVC:             "), "{}", shown.stdout);
    assert!(shown.stdout.contains("  acme-portal = 2.3.0, 2.3.1\n"), "{}", shown.stdout);
    assert!(shown.stdout.contains("  acme-gateway @ vers:semver/>=2.0.0|<2.4.1\n"), "{}", shown.stdout);
    assert!(shown.stdout.contains("SLA clocks:\n  CLOCK "), "{}", shown.stdout);
    assert!(shown.stdout.contains(&submitted.field("Report ID")), "{}", shown.stdout);

    let json = psirtctl(triage_cmd(&platform, &["--output", "json", "case", "show", &case_id]))
        .run()
        .await
        .expect_code(0)
        .json();
    assert_eq!(json["case"]["severity"]["cvssV31"]["baseScore"], 9.8);
    assert_eq!(json["case"]["severity"]["rating"], "SEVERITY_RATING_CRITICAL");

    // Listed under its status and severity.
    let listed =
        until(&platform, "the case in `case list`", &["case", "list", "--status", "accepted"], |run| {
            run.stdout.contains("PSIRT-")
        })
        .await?;
    let header = listed.stdout.lines().next().unwrap_or_default();
    for column in ["KEY", "STATUS", "SEVERITY", "ASSIGNEE", "SLA", "OPENED", "TITLE"] {
        assert!(header.contains(column), "{header}");
    }
    let row = listed.stdout.lines().find(|l| l.starts_with(&key)).unwrap_or_default();
    assert!(row.contains("accepted") && row.contains("critical 9.8"), "{row}");
    assert!(row.ends_with("SQL injection in the login form"), "{row}");
    let none =
        psirtctl(triage_cmd(&platform, &["case", "list", "--status", "rejected"])).run().await.expect_code(0);
    assert_eq!(none.stdout, "No cases found.\n");

    // The timeline: one line per event, and JSON with the decoded events.
    let timeline = psirtctl(triage_cmd(&platform, &["case", "timeline", &key])).run().await.expect_code(0);
    for event in ["CaseOpened", "SeverityAssessed", "AffectedProductsSet", "CaseAccepted"] {
        assert!(timeline.stdout.contains(event), "{event} missing in\n{}", timeline.stdout);
    }
    let timeline = psirtctl(triage_cmd(&platform, &["--output", "json", "case", "timeline", &case_id]))
        .run()
        .await
        .expect_code(0)
        .json();
    let entries = timeline["entries"].as_array().cloned().unwrap_or_default();
    let assessed = entries
        .iter()
        .find(|e| e["eventType"] == "psirt.events.v1.SeverityAssessed")
        .unwrap_or_else(|| panic!("no SeverityAssessed in {timeline}"));
    assert_eq!(assessed["event"]["@type"], "type.googleapis.com/psirt.events.v1.SeverityAssessed");
    assert_eq!(assessed["event"]["caseId"], case_id.as_str());

    // The watch saw the acceptance; Ctrl-C ends it with exit code 0.
    let stdout = watch.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    tokio::time::timeout(PROJECTION_DEADLINE, async {
        while let Some(line) = lines.next_line().await.expect("read watch output") {
            let message: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
            if message["change"]["eventType"] == "psirt.events.v1.CaseAccepted" {
                assert_eq!(message["change"]["case"]["caseKey"], key.as_str());
                return;
            }
        }
        panic!("the watch ended before the acceptance");
    })
    .await?;
    let pid = watch.id().expect("running").to_string();
    let status = tokio::process::Command::new("kill").args(["-INT", &pid]).status().await?;
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), watch.wait()).await??;
    assert_eq!(exit.code(), Some(0), "Ctrl-C ends a watch normally");

    platform.stop().await
}

/// Submits a report to intake; returns the promised case id once triage
/// shows the case by id and by key, and its key.
async fn open_case(platform: &Platform, title: &str) -> anyhow::Result<(String, String)> {
    let submitted = psirtctl([
        "--server",
        &platform.intake,
        "report",
        "submit",
        "--title",
        title,
        "--description",
        "Details.",
    ])
    .run()
    .await
    .expect_code(0);
    let case_id = submitted.field("Case ID");
    let shown = until(platform, "the new case", &["case", "show", &case_id], |_| true).await?;
    let key = shown.field("Case key");
    until(platform, "the case by its key", &["case", "show", &key], |_| true).await?;
    Ok((case_id, key))
}

/// Runs one triage command that must succeed; returns its summary.
async fn triage(platform: &Platform, args: &[&str]) -> Run {
    let mut all = vec!["triage"];
    all.extend_from_slice(args);
    psirtctl(triage_cmd(platform, &all)).run().await.expect_code(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_triage_command() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let (a, a_key) = open_case(&platform, "Stored XSS in the profile page").await?;
    let (b, _) = open_case(&platform, "XSS in profile").await?;

    let assigned = triage(&platform, &["assign", &a_key, "--assignee", "alice", "--team", "web"]).await;
    assert_eq!((assigned.field("Status").as_str(), assigned.field("Assignee").as_str()), ("triage", "alice"));
    triage(&platform, &["cve", &a, "--cve", "cve-2026-12345", "--assigner", "acme"]).await;
    let next_year = time::OffsetDateTime::now_utc().year() + 1;
    let local = format!("{next_year}-12-01T09:00");
    triage(
        &platform,
        &["embargo", &a, "--disclosure-at", &local, "--time-zone", "Etc/GMT-9", "--agreed-with", "reporter"],
    )
    .await;
    triage(&platform, &["escalate", &a, "--level", "management", "--reason", "exploited", "--incident"])
        .await;

    let shown = until(&platform, "the escalated case", &["case", "show", &a], |run| {
        run.stdout.contains("Escalation:            management")
    })
    .await?;
    assert_eq!(shown.field("Assignee"), "alice (team web)");
    assert_eq!(shown.field("CVEs"), "CVE-2026-12345");
    assert_eq!(shown.field("Incident"), "yes");
    assert!(shown.stdout.contains("Embargo:\n  Active:         yes\n"), "{}", shown.stdout);
    // The service keeps the local time normalised to whole seconds.
    assert!(
        shown.stdout.contains(&format!("  Local time:     {local}:00 Etc/GMT-9 (UTC+09:00)\n")),
        "{}",
        shown.stdout
    );
    let embargoed =
        until(&platform, "the embargoed case listed", &["case", "list", "--embargoed", "true"], |run| {
            run.stdout.contains(&a_key)
        })
        .await?;
    assert_eq!(embargoed.stdout.lines().count(), 2, "only the embargoed case:\n{}", embargoed.stdout);

    // B: duplicate of A, closed, reopened, then rejected.
    triage(&platform, &["start", &b]).await;
    let duplicate = triage(&platform, &["duplicate", &b, "--of", &a_key, "--note", "same bug"]).await;
    assert_eq!(duplicate.field("Status"), "duplicate");
    let closed = triage(&platform, &["close", &b, "--resolution", "duplicate"]).await;
    assert_eq!(closed.field("Status"), "closed");
    let reopened = triage(&platform, &["reopen", &b, "--reason", "a different bug after all"]).await;
    assert_eq!(reopened.field("Status"), "triage");
    let rejected =
        triage(&platform, &["reject", &b, "--reason", "not-a-vulnerability", "--text", "works as designed"])
            .await;
    assert_eq!(rejected.field("Status"), "rejected");
    let shown = until(&platform, "the rejected case", &["case", "show", &b], |run| {
        run.stdout.contains("Status:                rejected")
    })
    .await?;
    assert_eq!(shown.field("Rejection"), "not-a-vulnerability");
    assert_eq!(shown.field("Rejection text"), "works as designed");
    assert_eq!(shown.field("Reopened"), "1 times");

    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_case_key_is_not_found() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    for args in [
        &["case", "show", "PSIRT-1999-9999"][..],
        &["case", "timeline", "PSIRT-1999-9999"],
        &["triage", "accept", "PSIRT-1999-9999"],
    ] {
        let run = psirtctl(triage_cmd(&platform, args)).run().await.expect_code(1);
        assert!(run.stderr.starts_with("error: NOT_FOUND"), "{args:?}: {}", run.stderr);
    }
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_triage_server_exits_3() -> anyhow::Result<()> {
    let server = format!("127.0.0.1:{}", free_port()?);
    // From the environment; --server (intake) is not used by case commands.
    let run = psirtctl(["--timeout", "5s", "case", "list"]).env("PSIRT_TRIAGE_SERVER", &server).run().await;
    let run = run.expect_code(3);
    assert!(run.stderr.starts_with(&format!("error: cannot connect to http://{server}: ")), "{}", run.stderr);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_without_a_server() -> anyhow::Result<()> {
    let server = format!("127.0.0.1:{}", free_port()?);
    let case = "0190f5a4-0000-4000-8000-000000000000";
    let cases: [&[&str]; 9] = [
        &["case", "list", "--status", "open"],
        &["case", "list", "--embargoed", "yes"],
        &["case", "show"],
        &["triage", "assess", case],
        &["triage", "assess", case, "--exploitation", "active"],
        &["triage", "products", case, "--product", "acme"],
        &["triage", "cve", case, "--cve", "CVE-26-1"],
        &["triage", "embargo", case, "--disclosure-at", "2026-12-01T09:00Z", "--time-zone", "UTC"],
        &["triage", "reject", case, "--reason", "boring"],
    ];
    for args in cases {
        let run = psirtctl(["--triage-server", server.as_str()].iter().chain(args).copied()).run().await;
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
    }
    Ok(())
}
