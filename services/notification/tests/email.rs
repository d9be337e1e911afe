//! The e-mail channel against a real SMTP server (aiosmtpd, see
//! `psirt_testkit::smtp`): what arrives, and how failures classify.

use std::collections::BTreeMap;
use std::time::Duration;

use psirt_domain::notification::AttemptKind;
use psirt_domain::template::Values;
use psirt_notification::email::{EmailSecurity, EmailSettings, Mailer, TemplateOverride};
use psirt_notification::{SecretSource, Secrets};
use psirt_testkit::smtp::SmtpServer;

const DEADLINE: Duration = Duration::from_secs(10);
const DELIVERY_ID: &str = "0196f0c2-7d1e-7000-8000-00000000d001";

fn settings(port: u16) -> EmailSettings {
    EmailSettings {
        host: "127.0.0.1".to_owned(),
        port,
        security: EmailSecurity::Plain,
        from: "PSIRT <psirt@example.com>".to_owned(),
        timeout: Duration::from_secs(5),
        ..EmailSettings::default()
    }
}

fn values() -> Values {
    Values::default()
        .with("case.id", "0196f0c2-0000-7000-8000-00000000c001")
        .with("case.key", "PSIRT-2026-0001")
        .with("case.title", "Heap overflow in the parser")
        .with("case.status", "ACCEPTED")
        .with("case.severity", "HIGH")
        .with("event.type", "CaseAccepted")
        .with("event.time", "2026-01-02T03:04:05Z")
        .with("event.summary", "Case accepted")
        .with("delivery.id", DELIVERY_ID)
}

fn mailer(settings: &EmailSettings) -> Mailer {
    assert_eq!(settings.problems(&BTreeMap::new()), Vec::<(String, String)>::new());
    Mailer::new(settings, &Secrets::default()).expect("mailer")
}

#[tokio::test]
async fn a_delivery_arrives_templated_to_every_recipient_with_the_delivery_id() -> anyhow::Result<()> {
    let Some(server) = SmtpServer::start_or_skip().await? else { return Ok(()) };
    let mailer = mailer(&settings(server.port()));

    let result =
        mailer.send("alice@example.com, bob@example.org", &values(), "psirt.events.v1.CaseAccepted").await;
    assert_eq!(result.kind, AttemptKind::Succeeded, "{result:?}");
    let message_id = format!("<{DELIVERY_ID}@psirt.notification>");
    assert_eq!(result.external_reference, message_id);
    assert!(result.error.is_empty(), "{result:?}");

    let messages = server.wait_for_messages(1, DEADLINE).await?;
    assert_eq!(messages.len(), 1, "one message for both recipients");
    let m = &messages[0];
    assert_eq!(m.mail_from, "psirt@example.com");
    assert_eq!(m.rcpt_to, ["alice@example.com", "bob@example.org"]);
    assert_eq!(m.header("Subject"), Some("[PSIRT-2026-0001] Case accepted"));
    assert_eq!(m.header("Message-ID"), Some(message_id.as_str()));
    assert_eq!(m.header("From"), Some("PSIRT <psirt@example.com>"));
    let to = m.header("To").unwrap_or_default();
    assert!(to.contains("alice@example.com") && to.contains("bob@example.org"), "{to}");
    assert!(m.header("Date").is_some_and(|d| !d.is_empty()), "{:?}", m.headers);
    assert_eq!(m.header("Auto-Submitted"), Some("auto-generated"));
    assert!(m.header("Content-Type").unwrap_or_default().starts_with("text/plain"), "{:?}", m.headers);
    for line in [
        "Case accepted",
        "PSIRT-2026-0001 Heap overflow in the parser",
        "ACCEPTED",
        "HIGH",
        "CaseAccepted at 2026-01-02T03:04:05Z",
        DELIVERY_ID,
    ] {
        assert!(m.body.contains(line), "body lacks {line:?}:\n{}", m.body);
    }

    // A resend of the same delivery carries the same Message-ID.
    let again = mailer.send("alice@example.com", &values(), "psirt.events.v1.CaseAccepted").await;
    assert_eq!(again.kind, AttemptKind::Succeeded, "{again:?}");
    let messages = server.wait_for_messages(2, DEADLINE).await?;
    assert_eq!(messages[1].header("Message-ID"), Some(message_id.as_str()));
    Ok(())
}

#[tokio::test]
async fn an_event_type_override_replaces_the_default_templates() -> anyhow::Result<()> {
    let Some(server) = SmtpServer::start_or_skip().await? else { return Ok(()) };
    let mut settings = settings(server.port());
    settings.templates.insert(
        "psirt.events.v1.CaseAccepted".to_owned(),
        TemplateOverride {
            subject: Some("Accepted: {{case.key}} ({{case.severity}})".to_owned()),
            body: Some("Hello,\n\n{{case.title}} was accepted.\nÜmlaut stays intact.\n".to_owned()),
        },
    );
    settings.templates.insert(
        "psirt.events.v1.CaseClosed".to_owned(),
        TemplateOverride { subject: Some("Closed: {{case.key}}".to_owned()), body: None },
    );
    let mailer = mailer(&settings);

    let accepted = mailer.send("carol@example.com", &values(), "psirt.events.v1.CaseAccepted").await;
    assert_eq!(accepted.kind, AttemptKind::Succeeded, "{accepted:?}");
    let closed = values().with("event.summary", "Case closed").with("delivery.id", "d-closed");
    let closed = mailer.send("carol@example.com", &closed, "psirt.events.v1.CaseClosed").await;
    assert_eq!(closed.kind, AttemptKind::Succeeded, "{closed:?}");
    let other = mailer.send("carol@example.com", &values(), "psirt.events.v1.CaseTriaged").await;
    assert_eq!(other.kind, AttemptKind::Succeeded, "{other:?}");

    let messages = server.wait_for_messages(3, DEADLINE).await?;
    assert_eq!(messages[0].header("Subject"), Some("Accepted: PSIRT-2026-0001 (HIGH)"));
    assert_eq!(
        messages[0].body.replace("\r\n", "\n").trim_end(),
        "Hello,\n\nHeap overflow in the parser was accepted.\nÜmlaut stays intact."
    );
    // Only the subject is overridden: the default body stays.
    assert_eq!(messages[1].header("Subject"), Some("Closed: PSIRT-2026-0001"));
    assert!(messages[1].body.contains("Case closed"), "{}", messages[1].body);
    assert_eq!(messages[1].header("Message-ID"), Some("<d-closed@psirt.notification>"));
    // No override: the defaults.
    assert_eq!(messages[2].header("Subject"), Some("[PSIRT-2026-0001] Case accepted"));
    Ok(())
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_failure() -> anyhow::Result<()> {
    // A port that was free a moment ago: nothing listens there.
    let port = psirt_testkit::free_port()?;
    let mailer = mailer(&settings(port));
    let result = mailer.send("alice@example.com", &values(), "psirt.events.v1.CaseAccepted").await;
    assert_eq!(result.kind, AttemptKind::RetryableFailure, "{result:?}");
    assert!(!result.error.is_empty());
    assert!(result.external_reference.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_refused_recipient_is_a_permanent_failure() -> anyhow::Result<()> {
    let Some(server) = SmtpServer::start_or_skip().await? else { return Ok(()) };
    let mailer = mailer(&settings(server.port()));
    let result = mailer
        .send("alice@example.com, reject-me@example.com", &values(), "psirt.events.v1.CaseAccepted")
        .await;
    assert_eq!(result.kind, AttemptKind::PermanentFailure, "{result:?}");
    assert!(result.error.contains("550"), "{result:?}");
    assert!(result.external_reference.is_empty());
    assert!(server.messages()?.is_empty(), "nothing is sent when a recipient is refused");
    Ok(())
}

#[tokio::test]
async fn a_deferred_recipient_is_a_retryable_failure() -> anyhow::Result<()> {
    let Some(server) = SmtpServer::start_or_skip().await? else { return Ok(()) };
    let mailer = mailer(&settings(server.port()));
    let result = mailer.send("defer@example.com", &values(), "psirt.events.v1.CaseAccepted").await;
    assert_eq!(result.kind, AttemptKind::RetryableFailure, "{result:?}");
    assert!(result.error.contains("451"), "{result:?}");
    Ok(())
}

#[tokio::test]
async fn credentials_from_a_secret_authenticate_and_a_wrong_password_never_shows() -> anyhow::Result<()> {
    const USER: &str = "psirt-relay";
    const PASSWORD: &str = "s3cret-relay-password-4711";
    let Some(server) = SmtpServer::start_with_auth_or_skip(USER, PASSWORD).await? else { return Ok(()) };

    let mailer_with = |secret: &str| -> anyhow::Result<Mailer> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("smtp");
        std::fs::write(&path, format!("{USER}:{secret}\n"))?;
        let sources =
            BTreeMap::from([("smtp-relay".to_owned(), SecretSource { env: None, file: Some(path) })]);
        let settings =
            EmailSettings { credentials_secret: Some("smtp-relay".to_owned()), ..settings(server.port()) };
        assert_eq!(settings.problems(&sources), Vec::<(String, String)>::new());
        let secrets = Secrets::resolve(&sources)?;
        Mailer::new(&settings, &secrets)
    };

    let ok =
        mailer_with(PASSWORD)?.send("alice@example.com", &values(), "psirt.events.v1.CaseAccepted").await;
    assert_eq!(ok.kind, AttemptKind::Succeeded, "{ok:?}");
    let messages = server.wait_for_messages(1, DEADLINE).await?;
    assert_eq!(messages[0].auth_user.as_deref(), Some(USER));

    let wrong = "wrong-relay-password-0815";
    let wrong_mailer = mailer_with(wrong)?;
    assert!(!format!("{wrong_mailer:?}").contains(wrong));
    let failed = wrong_mailer.send("alice@example.com", &values(), "psirt.events.v1.CaseAccepted").await;
    assert_eq!(failed.kind, AttemptKind::PermanentFailure, "{failed:?}");
    assert!(failed.error.contains("535"), "{failed:?}");
    assert!(!failed.error.contains(wrong) && !failed.error.contains(PASSWORD), "{failed:?}");

    // No credentials where the server requires them: refused, not sent.
    let anonymous = mailer(&settings(server.port()));
    let refused = anonymous.send("alice@example.com", &values(), "psirt.events.v1.CaseAccepted").await;
    assert_eq!(refused.kind, AttemptKind::PermanentFailure, "{refused:?}");
    assert_eq!(server.messages()?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn changed_relay_credentials_are_used_without_a_restart() -> anyhow::Result<()> {
    const USER: &str = "psirt-relay";
    const PASSWORD: &str = "rotated-relay-password-1312";
    let Some(server) = SmtpServer::start_with_auth_or_skip(USER, PASSWORD).await? else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("smtp");
    // Replaced the way secret volumes do it: a new file renamed over the old one.
    let write = |text: &str| -> std::io::Result<()> {
        let next = dir.path().join("smtp.new");
        std::fs::write(&next, format!("{text}\n"))?;
        std::fs::rename(&next, &path)
    };
    write(&format!("{USER}:old-relay-password-0000"))?;
    let sources =
        BTreeMap::from([("smtp-relay".to_owned(), SecretSource { env: None, file: Some(path.clone()) })]);
    let settings =
        EmailSettings { credentials_secret: Some("smtp-relay".to_owned()), ..settings(server.port()) };
    let mailer = Mailer::new(&settings, &Secrets::resolve(&sources)?)?;

    let before = mailer.send("alice@example.com", &values(), "psirt.events.v1.CaseAccepted").await;
    assert_eq!(before.kind, AttemptKind::PermanentFailure, "the old password is refused: {before:?}");
    assert!(before.error.contains("535"), "{before:?}");

    write(&format!("{USER}:{PASSWORD}"))?;
    let after = mailer.send("alice@example.com", &values(), "psirt.events.v1.CaseAccepted").await;
    assert_eq!(after.kind, AttemptKind::Succeeded, "the same mailer uses the new password: {after:?}");
    let messages = server.wait_for_messages(1, DEADLINE).await?;
    assert_eq!(messages[0].auth_user.as_deref(), Some(USER));

    // A malformed replacement is refused; the last good credentials stay in use.
    write("no-colon-in-this-secret")?;
    let kept = mailer.clone().send("bob@example.com", &values(), "psirt.events.v1.CaseAccepted").await;
    assert_eq!(kept.kind, AttemptKind::Succeeded, "{kept:?}");
    server.wait_for_messages(2, DEADLINE).await?;
    Ok(())
}

#[tokio::test]
async fn starttls_is_required_when_configured_so_nothing_goes_out_in_plain_text() -> anyhow::Result<()> {
    // The test server offers no STARTTLS: the mailer must not fall back.
    let Some(server) = SmtpServer::start_or_skip().await? else { return Ok(()) };
    let settings = EmailSettings { security: EmailSecurity::StartTls, ..settings(server.port()) };
    let mailer = mailer(&settings);
    let result = mailer.send("alice@example.com", &values(), "psirt.events.v1.CaseAccepted").await;
    assert_ne!(result.kind, AttemptKind::Succeeded, "{result:?}");
    assert!(result.error.to_lowercase().contains("starttls"), "{result:?}");
    assert!(server.messages()?.is_empty());
    Ok(())
}
