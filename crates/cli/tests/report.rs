//! `psirtctl report ...` against a real intake service: the happy path from
//! submit to message, idempotent retries, and the error and exit-code
//! contract (1 server error, 2 usage, 3 no server).

mod support;

use psirt_kit::config::AuthMode;
use psirt_testkit::{eventually, free_port};
use secrecy::SecretString;
use support::{Intake, PROJECTION_DEADLINE, psirtctl};

fn with_server<'a>(server: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--server", server];
    all.extend_from_slice(args);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_get_list_ack_and_message() -> anyhow::Result<()> {
    let intake = Intake::start().await?;
    let server = intake.server.clone();

    let submitted = psirtctl(with_server(
        &server,
        &[
            "report",
            "submit",
            "--title",
            "SQL injection in the login form",
            "--description",
            "The user field is concatenated into a query.",
            "--reporter-name",
            "Alice",
            "--reporter-email",
            "alice@example.org",
            "--channel",
            "web",
            "--product",
            "acme-portal",
            "--product",
            "acme-gateway",
            "--cvss",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "--external-reference",
            "HX-1",
        ],
    ))
    .run()
    .await
    .expect_code(0);
    let report_id = submitted.field("Report ID");
    assert_eq!(report_id.len(), 36, "a UUID: {report_id}");
    assert_eq!(submitted.field("Case ID").len(), 36);
    assert_eq!(submitted.field("Request ID").len(), 36, "the generated request id is shown");
    assert_eq!(submitted.field("Suspected duplicates"), "none");

    // get, as JSON: the canonical proto3 mapping.
    let got = psirtctl(with_server(&server, &["--output", "json", "report", "get", &report_id]))
        .run()
        .await
        .expect_code(0);
    assert!(got.stdout.contains(r#""status": "REPORT_STATUS_RECEIVED""#), "{}", got.stdout);
    let json = got.json();
    assert_eq!(json["report"]["reportId"], report_id.as_str());
    assert_eq!(json["report"]["title"], "SQL injection in the login form");
    assert_eq!(json["report"]["channel"], "REPORT_CHANNEL_WEB");
    assert_eq!(json["report"]["affectedProducts"], serde_json::json!(["acme-portal", "acme-gateway"]));
    assert!(json["report"]["receivedAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{json}");
    // uint64 is a string in proto3 JSON.
    let version = json["report"]["version"].as_str().unwrap_or_default().to_owned();
    assert!(version.parse::<u64>().is_ok(), "{json}");

    // list reads the projection, which lags behind the event stream.
    let listed = eventually(PROJECTION_DEADLINE, "the report in `report list`", || {
        let args =
            with_server(&server, &["report", "list"]).into_iter().map(str::to_owned).collect::<Vec<_>>();
        let report_id = report_id.clone();
        async move {
            let run = psirtctl(args).run().await.expect_code(0);
            run.stdout.contains(&report_id).then_some(run)
        }
    })
    .await?;
    let mut lines = listed.stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("REPORT ID"), "{}", listed.stdout);
    for column in ["STATUS", "CHANNEL", "RECEIVED", "TITLE"] {
        assert!(header.contains(column), "{header}");
    }
    let row = lines.find(|l| l.contains(&report_id)).unwrap_or_default();
    assert!(
        row.contains("received") && row.contains("web") && row.ends_with("SQL injection in the login form"),
        "{row}"
    );

    // ack, then a message whose body comes from stdin.
    let acked = psirtctl(with_server(
        &server,
        &["report", "ack", &report_id, "--message", "Thanks, we are on it.", "--expected-version", &version],
    ))
    .run()
    .await
    .expect_code(0);
    assert_eq!(acked.field("Status"), "acknowledged");
    let messaged = psirtctl(with_server(
        &server,
        &["report", "message", &report_id, "--body-file", "-", "--direction", "inbound", "--author", "Alice"],
    ))
    .stdin("Any news?\nStill reproducible on 2.4.")
    .run()
    .await
    .expect_code(0);
    assert_eq!(messaged.field("Message ID").len(), 36);

    let shown = psirtctl(with_server(&server, &["report", "get", &report_id])).run().await.expect_code(0);
    assert_eq!(shown.field("Status"), "acknowledged");
    assert_eq!(shown.field("Reporter"), "Alice <alice@example.org>");
    assert_eq!(shown.field("Products"), "acme-portal, acme-gateway");
    assert!(shown.stdout.contains("  The user field is concatenated into a query.\n"), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("inbound  Alice\n    Any news?\n    Still reproducible on 2.4.\n"),
        "{}",
        shown.stdout
    );

    // The filter reaches the server: the acknowledged report shows up under
    // --status acknowledged once the projection has it.
    eventually(PROJECTION_DEADLINE, "the report under --status acknowledged", || {
        let args = with_server(
            &server,
            &["--output", "json", "report", "list", "--status", "acknowledged", "--all"],
        )
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        let report_id = report_id.clone();
        async move {
            let run = psirtctl(args).run().await.expect_code(0);
            let json = run.json();
            let reports = json["reports"].as_array()?;
            reports.iter().any(|r| r["reportId"] == report_id.as_str()).then_some(())
        }
    })
    .await?;

    intake.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_retry_with_the_same_request_id_returns_the_same_report() -> anyhow::Result<()> {
    let intake = Intake::start().await?;
    // Server and output format from the environment this time.
    let submit = || {
        psirtctl([
            "report",
            "submit",
            "--title",
            "Path traversal",
            "--description-file",
            "-",
            "--request-id",
            "cli-retry-1",
        ])
        .env("PSIRT_SERVER", &intake.server)
        .env("PSIRT_OUTPUT", "json")
        .stdin("GET /../../etc/passwd")
    };
    let first = submit().run().await.expect_code(0).json();
    let second = submit().run().await.expect_code(0).json();
    assert_eq!(first["reportId"], second["reportId"]);
    assert_eq!(first["report"]["description"], "GET /../../etc/passwd");
    assert_eq!(first["report"]["channel"], "REPORT_CHANNEL_API", "api is the default channel");
    intake.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_exit_1_with_field_violations() -> anyhow::Result<()> {
    let intake = Intake::start().await?;

    let rejected =
        psirtctl(with_server(&intake.server, &["report", "submit", "--title", "", "--description", "d"]))
            .run()
            .await
            .expect_code(1);
    assert!(rejected.stderr.starts_with("error: INVALID_ARGUMENT: "), "{}", rejected.stderr);
    assert!(rejected.stderr.lines().any(|l| l == "  title: title must not be empty"), "{}", rejected.stderr);
    assert!(rejected.stdout.is_empty(), "{}", rejected.stdout);

    let missing = "0190f5a4-0000-4000-8000-000000000000";
    let not_found =
        psirtctl(with_server(&intake.server, &["report", "get", missing])).run().await.expect_code(1);
    assert!(not_found.stderr.starts_with("error: NOT_FOUND: "), "{}", not_found.stderr);

    intake.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_sent_as_bearer_and_never_printed() -> anyhow::Result<()> {
    let intake = Intake::start_with(|config| {
        config.auth.mode = AuthMode::Jwt;
        config.auth.hs256_secret = Some(SecretString::from("0123456789abcdef0123456789abcdef".to_owned()));
        config.auth.issuer = Some("https://idp.test/psirt".to_owned());
        config.auth.audience = Some("psirt".to_owned());
    })
    .await?;
    let args = with_server(&intake.server, &["report", "get", "0190f5a4-0000-4000-8000-000000000000"]);

    let anonymous = psirtctl(args.clone()).run().await.expect_code(1);
    assert!(anonymous.stderr.contains("UNAUTHENTICATED: missing bearer token"), "{}", anonymous.stderr);

    // The server saw a bearer token (and rejected it as not a JWT).
    let token = "not-a-jwt-but-secret";
    let with_token = psirtctl(args).env("PSIRT_TOKEN", token).run().await.expect_code(1);
    assert!(with_token.stderr.starts_with("error: UNAUTHENTICATED: "), "{}", with_token.stderr);
    assert!(!with_token.stderr.contains("missing bearer token"), "{}", with_token.stderr);
    assert!(!with_token.stderr.contains(token) && !with_token.stdout.contains(token));

    intake.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_exits_3() -> anyhow::Result<()> {
    // A port that was free a moment ago: nothing listens there.
    let server = format!("127.0.0.1:{}", free_port()?);
    let run = psirtctl(["--server", &server, "--timeout", "5s", "report", "list"]).run().await.expect_code(3);
    assert!(run.stderr.starts_with(&format!("error: cannot connect to http://{server}: ")), "{}", run.stderr);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_without_a_server() -> anyhow::Result<()> {
    // Nothing listens here; usage errors must be caught before connecting.
    let server = format!("127.0.0.1:{}", free_port()?);
    let cases: [&[&str]; 5] = [
        &["report", "submit", "--description", "no title"],
        &["report", "submit", "--title", "t"],
        &["report", "list", "--since", "yesterday"],
        &["report", "list", "--channel", "fax"],
        &["report", "submit", "--title", "t", "--description-file", "/nonexistent/psirt/description.md"],
    ];
    for args in cases {
        let run = psirtctl(with_server(&server, args)).run().await;
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
    }
    Ok(())
}

fn tls_fixture(name: &str) -> String {
    format!("{}/../kit/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_servers_ca_and_a_client_certificate_for_mutual_tls() -> anyhow::Result<()> {
    let intake = Intake::start_with(|config| {
        config.auth.mode = AuthMode::None;
        config.grpc.tls_cert_file = Some(tls_fixture("tls_server.pem").into());
        config.grpc.tls_key_file = Some(tls_fixture("tls_server_key.pem").into());
        config.grpc.tls_client_ca_file = Some(tls_fixture("tls_ca.pem").into());
    })
    .await?;
    let port = intake.server.rsplit(':').next().unwrap_or_default().to_owned();
    let server = format!("https://localhost:{port}");
    let (ca, cert, key) =
        (tls_fixture("tls_ca.pem"), tls_fixture("tls_client.pem"), tls_fixture("tls_client_key.pem"));
    let submit = ["report", "submit", "--title", "XSS over TLS", "--description", "d", "--channel", "api"];

    let tls = ["--ca-file", ca.as_str(), "--client-cert", cert.as_str(), "--client-key", key.as_str()];
    let mut args = with_server(&server, &tls);
    args.extend_from_slice(&submit);
    let submitted = psirtctl(args).run().await.expect_code(0);
    let report_id = submitted.field("Report ID");
    let mut args = with_server(&server, &tls);
    args.extend_from_slice(&["report", "get", &report_id]);
    let got = psirtctl(args).run().await.expect_code(0);
    assert!(got.stdout.contains("XSS over TLS"), "{}", got.stdout);

    // The server's certificate is signed by a private CA: not trusted without it.
    let mut args = with_server(&server, &["--timeout", "5s"]);
    args.extend_from_slice(&submit);
    let untrusted = psirtctl(args).run().await;
    assert_eq!(untrusted.code, 3, "{untrusted:#?}");
    assert!(untrusted.stderr.to_lowercase().contains("certificate"), "{}", untrusted.stderr);

    // Mutual TLS: without a client certificate nothing gets through.
    let mut args = with_server(&server, &["--timeout", "5s", "--ca-file", ca.as_str()]);
    args.extend_from_slice(&submit);
    let anonymous = psirtctl(args).run().await;
    assert_ne!(anonymous.code, 0, "{anonymous:#?}");
    assert!(!anonymous.stdout.contains("Report ID"), "{}", anonymous.stdout);

    // TLS files with a plaintext server address are a usage error, not ignored.
    let plaintext = format!("http://127.0.0.1:{port}");
    let mut args = with_server(&plaintext, &["--ca-file", ca.as_str()]);
    args.extend_from_slice(&submit);
    let run = psirtctl(args).run().await;
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("https://"), "{}", run.stderr);

    intake.stop().await
}
