//! E-mail through the real binaries: a case accepted in triage reaches an
//! e-mail subscription of `psirt-notification` as a message at a real SMTP
//! server (Python's aiosmtpd), with the templated subject and body; an
//! untrusted subscription gets an embargoed case without its details.

mod common;

use std::time::Duration;

use common::{Service, build, sqlite, tempfile_dir};
use psirt_proto::notification::notification_service_client::NotificationServiceClient;
use psirt_proto::triage::triage_service_client::TriageServiceClient;
use psirt_proto::{events, notification as api, triage};
use psirt_testkit::eventually;
use psirt_testkit::smtp::SmtpServer;

const DEADLINE: Duration = Duration::from_secs(60);

fn subscription(name: &str, to: &str, trusted: bool) -> events::SubscriptionSettings {
    events::SubscriptionSettings {
        name: name.to_owned(),
        channel: events::DeliveryChannel::Email.into(),
        endpoint: to.to_owned(),
        event_types: vec!["psirt.events.v1.CaseAccepted".to_owned()],
        trusted,
        enabled: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_case_arrives_by_mail_with_the_templated_subject() -> anyhow::Result<()> {
    build()?;
    let smtp = SmtpServer::start().await?;
    let nats = common::secured_nats().await?;
    let dir = tempfile_dir::Dir::new("email-delivery")?;
    let intake = Service::start("intake", &nats, sqlite(&dir, "intake")).await?;
    let triage = Service::start("triage", &nats, sqlite(&dir, "triage")).await?;
    let env = [
        ("PSIRT_EMAIL__HOST", smtp.host().to_owned()),
        ("PSIRT_EMAIL__PORT", smtp.port().to_string()),
        ("PSIRT_EMAIL__SECURITY", "none".to_owned()),
        ("PSIRT_EMAIL__FROM", "PSIRT <psirt@example.com>".to_owned()),
        ("PSIRT_EMAIL__SUBJECT", "[{{case.key}}] {{event.summary}}: {{case.title}}".to_owned()),
        ("PSIRT_DELIVERY__POLL_INTERVAL", "20ms".to_owned()),
    ];
    let notification = Service::start_with("notification", &nats, sqlite(&dir, "notification"), &env).await?;
    let mut subscriptions = NotificationServiceClient::new(notification.channel().await?);
    for (request_id, settings) in [
        ("mail-legal", subscription("Legal", "legal@example.com, counsel@example.com", true)),
        ("mail-support", subscription("Support", "support@example.com", false)),
    ] {
        subscriptions
            .create_subscription(api::CreateSubscriptionRequest {
                request_id: request_id.to_owned(),
                settings: Some(settings),
            })
            .await?;
    }

    let case =
        common::open_case(&intake, &triage, "mail-1", "Authentication bypass in the admin console").await?;
    let case_id = case.case_id.clone();
    let mut decisions = TriageServiceClient::new(triage.channel().await?);
    decisions
        .set_embargo(triage::SetEmbargoRequest {
            case_id: case_id.clone(),
            request_id: "embargo".to_owned(),
            local_disclosure_time: "2099-03-01T16:00:00".to_owned(),
            time_zone: "Europe/Berlin".to_owned(),
            ..Default::default()
        })
        .await?;
    common::assess_and_accept(&triage, &case_id, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").await?;

    let mails = smtp.wait_for_messages(2, DEADLINE).await?;
    assert_eq!(mails.len(), 2, "one message per subscription");
    let to_legal = mails
        .iter()
        .find(|m| m.rcpt_to.iter().any(|r| r == "legal@example.com"))
        .expect("the trusted subscription's message");
    assert_eq!(
        to_legal.header("Subject"),
        Some(
            format!("[{}] Case accepted: Authentication bypass in the admin console", case.case_key).as_str()
        )
    );
    let mut recipients = to_legal.rcpt_to.clone();
    recipients.sort();
    assert_eq!(recipients, ["counsel@example.com", "legal@example.com"]);
    assert!(
        to_legal.body.contains("Authentication bypass in the admin console")
            && to_legal.body.contains("Critical"),
        "trusted: details in the body:\n{}",
        to_legal.body
    );
    let message_id = to_legal.header("Message-ID").expect("a Message-ID");
    assert!(message_id.ends_with("@psirt.notification>"), "{message_id}");

    let to_support = mails
        .iter()
        .find(|m| m.rcpt_to.iter().any(|r| r == "support@example.com"))
        .expect("the untrusted subscription's message");
    let subject = to_support.header("Subject").expect("a subject");
    assert_eq!(subject, format!("[{}] Case accepted: (undisclosed)", case.case_key));
    assert!(
        !to_support.raw.contains("Authentication bypass") && !to_support.raw.contains("Critical"),
        "an untrusted subscription gets an embargoed case without details:\n{}",
        to_support.raw
    );

    // Both deliveries end recorded as delivered (the read model follows the
    // appended outcome).
    eventually(DEADLINE, "both deliveries delivered", || {
        let mut subscriptions = subscriptions.clone();
        let case_id = case_id.clone();
        async move {
            let request = api::ListDeliveriesRequest { case_id, ..Default::default() };
            let deliveries = subscriptions.list_deliveries(request).await.ok()?.into_inner().deliveries;
            (deliveries.len() == 2
                && deliveries.iter().all(|d| d.status == api::DeliveryStatus::Delivered as i32))
            .then_some(())
        }
    })
    .await?;
    assert_eq!(smtp.messages()?.len(), 2, "each message once");
    Ok(())
}
