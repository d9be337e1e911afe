//! `psirtctl admin rebuild <service>` rebuilds each service's read model in the
//! running service (`psirt.admin.v1.AdminService/RebuildReadModel`): rows lost from
//! the read model (deleted behind the service's back, its checkpoint left as it was)
//! come back from the stream, and the service goes on serving.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Service, open_case};
use psirt_proto::events;
use psirt_proto::notification as n;
use psirt_proto::notification::notification_service_client::NotificationServiceClient;
use psirt_testkit::eventually;

const DEADLINE: Duration = Duration::from_secs(60);

/// Runs psirtctl as an admin against `service`; (success, stdout, stderr).
fn psirtctl(service: &Service, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let flag = match service.name {
        "intake" => "--server",
        "triage" => "--triage-server",
        "remediation" => "--remediation-server",
        _ => "--notification-server",
    };
    let output = Command::new(common::bin("psirtctl"))
        .args(args)
        .args([flag, &format!("http://127.0.0.1:{}", service.grpc)])
        .env("PSIRT_TOKEN", psirt_testkit::jwt::Token::admin().mint())
        .output()?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// Runs one SQL statement on a service's SQLite file with Python's sqlite3 (a
/// second, independent client of the file); returns the first column of the
/// first row, if any.
fn sql(db: &Path, statement: &str) -> anyhow::Result<Option<i64>> {
    let script = "import sqlite3, sys\n\
        c = sqlite3.connect(sys.argv[1], timeout=30)\n\
        r = c.execute(sys.argv[2]).fetchone()\n\
        c.commit()\n\
        print('' if r is None else r[0])\n";
    let output = Command::new("python3").args(["-c", script]).arg(db).arg(statement).output()?;
    anyhow::ensure!(output.status.success(), "sqlite3: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok(if text.is_empty() { None } else { Some(text.parse()?) })
}

fn count(db: &Path, table: &str) -> anyhow::Result<i64> {
    Ok(sql(db, &format!("SELECT count(*) FROM {table}"))?.unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_rebuilds_the_read_model_of_every_running_service() -> anyhow::Result<()> {
    common::build()?;
    let nats = common::secured_nats().await?;
    let dir = common::tempfile_dir::Dir::new("online-rebuild")?;
    let key = dir.0.join("hook.key");
    std::fs::write(&key, "a webhook signing key of the rebuild test")?;
    let mut services = Vec::new();
    for name in ["intake", "triage", "remediation", "notification"] {
        let env = [("PSIRT_SECRETS__REBUILD_HOOK__FILE", key.display().to_string())];
        let env = if name == "notification" { &env[..] } else { &[] };
        services.push(Service::start_with(name, &nats, common::sqlite(&dir, name), env).await?);
    }
    let [intake, triage, remediation, notification] = &services[..] else { unreachable!() };

    // Something in every read model: a report and its case, the case's plan
    // (remediation opens it when the case is accepted), a subscription.
    let case = open_case(intake, triage, "rebuild-1", "Stored XSS in the admin console").await?;
    common::assess_and_accept(triage, &case.case_id, "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N").await?;
    let (url, _received) = common::webhook_receiver().await?;
    NotificationServiceClient::new(notification.channel().await?)
        .create_subscription(n::CreateSubscriptionRequest {
            request_id: "rebuild-sub".to_owned(),
            settings: Some(events::SubscriptionSettings {
                name: "Rebuild watchers".to_owned(),
                channel: events::DeliveryChannel::Webhook.into(),
                endpoint: url,
                secret_ref: "rebuild_hook".to_owned(),
                enabled: true,
                ..Default::default()
            }),
        })
        .await?;

    let tables = [
        (intake, "intake_reports", "intake-reports"),
        (triage, "triage_cases", "triage-cases"),
        (remediation, "remediation_plans", "remediation-views"),
        (notification, "notification_subscriptions", "notification-views"),
    ];
    for (service, table, read_model) in tables {
        let db = dir.0.join(format!("{}.db", service.name));
        let rows = eventually(DEADLINE, &format!("{table} filled"), || {
            let db = db.clone();
            async move { count(&db, table).ok().filter(|n| *n > 0) }
        })
        .await?;

        // The rows are lost; the checkpoint says everything was applied, so the
        // running projection does not bring them back by itself.
        sql(&db, &format!("DELETE FROM {table}"))?;
        assert_eq!(count(&db, table)?, 0);

        let (ok, out, err) = psirtctl(service, &["admin", "rebuild", service.name])?;
        assert!(ok, "{}: rebuild failed: {out} {err}", service.name);
        assert!(out.contains(&format!("rebuilt {read_model}")), "{}: {out} {err}", service.name);
        assert_eq!(count(&db, table)?, rows, "{}: {table} rebuilt", service.name);

        // Naming another read model is refused, with the ones there are.
        let (ok, _, err) =
            psirtctl(service, &["admin", "rebuild", service.name, "--read-model", "no-such-view"])?;
        assert!(!ok && err.contains(read_model), "{}: {err}", service.name);
    }

    // The services go on following the stream after the rebuild: a new report
    // reaches intake's and triage's read models.
    let later = open_case(intake, triage, "rebuild-2", "Open redirect after login").await?;
    let triage_db = dir.0.join("triage.db");
    eventually(DEADLINE, "the later case in the rebuilt case view", || {
        let (db, id) = (triage_db.clone(), later.case_id.clone());
        async move {
            sql(&db, &format!("SELECT count(*) FROM triage_cases WHERE case_id = '{id}'"))
                .ok()?
                .filter(|n| *n == 1)
        }
    })
    .await?;
    Ok(())
}
