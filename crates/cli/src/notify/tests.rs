//! Tests of `psirtctl notify`: parsing, the requests built, the checks and
//! the printing.

use super::labels::{ticket_category_label, ticket_system_label};
use super::*;
use clap::Parser as _;
use clap::error::ErrorKind;
use prost_types::Timestamp;
use psirt_proto::common::CaseStatus;
use psirt_proto::events::{TicketStatusCategory, TicketSystem};
use psirt_proto::notification::{
    Delivery, ExternalTicket, ListDeliveriesResponse, ListExternalTicketsResponse, ListSubscriptionsResponse,
    Subscription, UpdateSubscriptionRequest,
};

const SUB: &str = "0190f5a4-0000-4000-8000-00000000000a";
const DELIVERY: &str = "0190f5a4-0000-4000-8000-00000000000b";
const CASE: &str = "0190f5a4-0000-4000-8000-000000000001";
const HOOK: &str = "https://siem.example.com/psirt?x=1";

fn parse(args: &[&str]) -> Result<crate::Cli, clap::Error> {
    crate::Cli::try_parse_from(["psirtctl", "notify"].into_iter().chain(args.iter().copied()))
}

fn command(args: &[&str]) -> NotifyCommand {
    match parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}")).command {
        crate::Command::Notify(command) => command,
        other => panic!("not a notify command: {other:?}"),
    }
}

fn request(args: &[&str]) -> NotifyRequest {
    command(args).build("c1".to_owned(), "r1".to_owned()).expect("a request")
}

fn error(args: &[&str]) -> String {
    parse(args).map(|_| ()).expect_err("refused").to_string()
}

fn subscribe(extra: &[&'static str]) -> Vec<&'static str> {
    ["subscribe", "--name", "SIEM", "--webhook", HOOK, "--secret-ref", "siem-hook"]
        .iter()
        .chain(extra)
        .copied()
        .collect()
}

fn settings(args: &[&str]) -> SubscriptionSettings {
    match request(args) {
        NotifyRequest::Subscribe(r) => r.settings.expect("settings"),
        other => panic!("not subscribe: {other:?}"),
    }
}

#[test]
fn notification_server_option() {
    let cli = parse(&["list", "--notification-server", "psirt.example:7000"]).expect("parses");
    assert_eq!(cli.global.notification_server, "http://psirt.example:7000");
    let cli = parse(&["list"]).expect("parses");
    assert_eq!(cli.global.notification_server, crate::client::DEFAULT_NOTIFICATION_SERVER);
    assert_eq!(crate::client::DEFAULT_NOTIFICATION_SERVER, "http://127.0.0.1:50054");
    let cli = parse(&["list", "--notification-server", "https://x:1"]).expect("TLS endpoint");
    assert_eq!(cli.global.notification_server, "https://x:1");
    assert!(parse(&["list", "--notification-server", "ftp://x:1"]).is_err());
}

#[test]
fn subscribe_maps_every_field() {
    assert_eq!(
        request(&subscribe(&[
            "--event-type",
            "CaseAccepted",
            "--event-type",
            "psirt.events.v1.CaseEscalated",
            "--event-type",
            "psirt.events.v1.CaseAccepted",
            "--min-severity",
            "high",
            "--product",
            "acme-gateway",
            "--product",
            "pkg:cargo/openssl",
            "--min-escalation",
            "management",
            "--case-status",
            "accepted",
            "--case-status",
            "remediating",
            "--case-status",
            "accepted",
            "--trusted",
            "--disabled",
            "--request-id",
            "siem-1",
        ])),
        NotifyRequest::Subscribe(CreateSubscriptionRequest {
            request_id: "r1".to_owned(),
            settings: Some(SubscriptionSettings {
                name: "SIEM".to_owned(),
                channel: DeliveryChannel::Webhook as i32,
                endpoint: HOOK.to_owned(),
                event_types: vec![
                    "psirt.events.v1.CaseAccepted".to_owned(),
                    "psirt.events.v1.CaseEscalated".to_owned(),
                ],
                min_severity: SeverityRating::High as i32,
                products: vec!["acme-gateway".to_owned(), "pkg:cargo/openssl".to_owned()],
                min_escalation_level: EscalationLevel::Management as i32,
                trusted: true,
                secret_ref: "siem-hook".to_owned(),
                enabled: false,
                case_statuses: vec![CaseStatus::Accepted as i32, CaseStatus::Remediating as i32],
            }),
        })
    );
    let command = command(&subscribe(&["--request-id", "siem-1"]));
    assert_eq!(command.request_id(), Some("siem-1"));
    assert!(command.is_change() && command.case().is_none());

    // Defaults: every filter empty, enabled, untrusted.
    assert_eq!(
        settings(&subscribe(&[])),
        SubscriptionSettings {
            name: "SIEM".to_owned(),
            channel: DeliveryChannel::Webhook as i32,
            endpoint: HOOK.to_owned(),
            secret_ref: "siem-hook".to_owned(),
            enabled: true,
            ..SubscriptionSettings::default()
        }
    );
    for (value, rating) in [
        ("none", SeverityRating::None),
        ("low", SeverityRating::Low),
        ("medium", SeverityRating::Medium),
        ("high", SeverityRating::High),
        ("critical", SeverityRating::Critical),
    ] {
        assert_eq!(settings(&subscribe(&["--min-severity", value])).min_severity, rating as i32, "{value}");
    }
    for (value, level) in [
        ("team", EscalationLevel::Team),
        ("management", EscalationLevel::Management),
        ("executive", EscalationLevel::Executive),
    ] {
        assert_eq!(
            settings(&subscribe(&["--min-escalation", value])).min_escalation_level,
            level as i32,
            "{value}"
        );
    }
}

#[test]
fn subscribe_refuses_bad_input() {
    assert!(parse(&subscribe(&[])).is_ok());
    for missing in ["--name", "--webhook", "--secret-ref"] {
        let args = subscribe(&[]);
        let i = args.iter().position(|a| *a == missing).expect("option");
        let without: Vec<&str> =
            args.iter().enumerate().filter(|(j, _)| *j != i && *j != i + 1).map(|(_, a)| *a).collect();
        assert!(parse(&without).is_err(), "{missing} is required");
    }
    let mut bad = subscribe(&[]);
    bad[2] = " ";
    assert!(parse(&bad).is_err(), "empty name");
    let long_name = "n".repeat(201);
    bad[2] = long_name.as_str();
    assert!(parse(&bad).is_err(), "long name");
    for secret in ["", "siem hook", "a/b", "key=value"] {
        let mut bad = subscribe(&[]);
        bad[6] = secret;
        assert!(parse(&bad).is_err(), "{secret:?}");
    }
    for bad in [
        &["--min-severity", "severe"][..],
        &["--min-severity", "unspecified"],
        &["--min-escalation", "board"],
        &["--case-status", "open"],
        &["--product", " "],
        &["--event-type", "CaseExploded"],
        &["--event-type", "caseAccepted"],
        &["--event-type", "psirt.triage.v1.Case"],
        &["--event-type", "psirt.events.v1."],
        &["--request-id", "has space"],
        // A second destination.
        &["--email", "legal@example.com"],
        &["--jira", "SEC"],
        &["--servicenow", "incident"],
        &["--channel", "webhook"],
        &["--expected-version", "1"],
    ] {
        assert!(parse(&subscribe(bad)).is_err(), "{bad:?}");
    }
    let message = error(&subscribe(&["--event-type", "CaseExploded"]));
    assert!(message.contains("not an event type"), "{message}");
}

#[test]
fn filters_hold_at_most_100_entries() {
    let types = [
        "CaseAccepted",
        "CaseEscalated",
        "CaseOpened",
        "SeverityAssessed",
        "SlaBreached",
        "AdvisoryPublished",
    ];
    // Repetitions count once.
    let mut args = subscribe(&[]);
    for _ in 0..30 {
        for t in types {
            args.extend(["--event-type", t]);
        }
    }
    assert_eq!(settings(&args).event_types.len(), types.len());

    let products: Vec<String> = (0..=100).map(|i| format!("p{i}")).collect();
    let mut args: Vec<&str> = subscribe(&[]);
    for p in &products {
        args.extend(["--product", p.as_str()]);
    }
    let message = error(&args);
    assert!(message.contains("--product is given 101 times"), "{message}");
    args.truncate(args.len() - 2);
    assert_eq!(settings(&args).products.len(), 100);
    let mut update: Vec<&str> = vec!["update", SUB];
    for p in &products {
        update.extend(["--product", p.as_str()]);
    }
    assert!(error(&update).contains("at most 100"));
}

#[test]
fn webhook_urls() {
    for ok in [
        "https://siem.example.com",
        "https://siem.example.com:8443/psirt?token=abc",
        "https://[2001:db8::1]:443/hook",
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]:9000/",
        "  https://trimmed.example.com/x  ",
    ] {
        assert_eq!(parse_webhook_url(ok).as_deref(), Ok(ok.trim()), "{ok}");
    }
    for (bad, why) in [
        ("", "empty"),
        ("siem.example.com/psirt", "https://"),
        ("ftp://siem.example.com", "https://"),
        ("http://siem.example.com/psirt", "loopback"),
        ("http://10.0.0.1/psirt", "loopback"),
        ("https://user:pw@siem.example.com/", "credentials"),
        ("https://siem.example.com/#frag", "fragment"),
        ("https://siem.example.com/a b", "whitespace"),
        ("https://sïem.example.com/", "ASCII"),
        ("https:///psirt", "host"),
        ("https://siem.example.com:99999/", "host"),
        ("https://[::1/", "host"),
    ] {
        let message = parse_webhook_url(bad).expect_err(bad);
        assert!(message.contains(why), "{bad}: {message}");
    }
    let long = format!("https://siem.example.com/{}", "a".repeat(2048));
    assert!(parse_webhook_url(&long).is_err());
}

#[test]
fn event_types() {
    assert_eq!(parse_event_type("CaseAccepted").as_deref(), Ok("psirt.events.v1.CaseAccepted"));
    assert_eq!(
        parse_event_type(" psirt.events.v1.SlaBreached ").as_deref(),
        Ok("psirt.events.v1.SlaBreached")
    );
    for bad in ["", "CaseExploded", "psirt.events.v2.CaseAccepted", "psirt.common.v1.Cvss", "Case-Accepted"] {
        assert!(parse_event_type(bad).is_err(), "{bad:?}");
    }
    assert_eq!(short_event_type("psirt.events.v1.CaseAccepted"), "CaseAccepted");
    assert_eq!(short_event_type("other.Type"), "other.Type");
}

fn current() -> Subscription {
    Subscription {
        subscription_id: SUB.to_owned(),
        settings: Some(SubscriptionSettings {
            name: "Legal".to_owned(),
            channel: DeliveryChannel::Webhook as i32,
            endpoint: "https://legal.example.com/hook".to_owned(),
            event_types: vec!["psirt.events.v1.CaseAccepted".to_owned()],
            min_severity: SeverityRating::High as i32,
            products: vec!["acme-gateway".to_owned()],
            min_escalation_level: EscalationLevel::Team as i32,
            trusted: true,
            secret_ref: "legal-hook".to_owned(),
            enabled: true,
            case_statuses: vec![CaseStatus::Accepted as i32],
        }),
        version: 7,
        created_at: None,
        updated_at: None,
    }
}

fn update(args: &[&str]) -> UpdateSubscriptionRequest {
    let mut all = vec!["update", SUB];
    all.extend_from_slice(args);
    match command(&all) {
        NotifyCommand::Update(Checked(fields)) => fields.build(&current(), "r1".to_owned()),
        other => panic!("not update: {other:?}"),
    }
}

#[test]
fn update_applies_each_change_to_the_current_settings() {
    let before = current().settings.expect("settings");
    // One change: everything else stays; the version read is expected.
    let r = update(&["--name", "Legal team"]);
    assert_eq!(r.subscription_id, SUB);
    assert_eq!(r.request_id, "r1");
    assert_eq!(r.expected_version, Some(7));
    assert_eq!(r.settings, Some(SubscriptionSettings { name: "Legal team".to_owned(), ..before.clone() }));

    let r = update(&[
        "--webhook",
        "https://new.example.com/h",
        "--secret-ref",
        "new-key",
        "--event-type",
        "CaseEscalated",
        "--event-type",
        "SlaBreached",
        "--min-severity",
        "critical",
        "--product",
        "acme-agent",
        "--min-escalation",
        "executive",
        "--case-status",
        "disclosed",
        "--untrusted",
        "--disabled",
        "--expected-version",
        "6",
    ]);
    assert_eq!(r.expected_version, Some(6), "--expected-version wins");
    assert_eq!(
        r.settings,
        Some(SubscriptionSettings {
            name: "Legal".to_owned(),
            channel: DeliveryChannel::Webhook as i32,
            endpoint: "https://new.example.com/h".to_owned(),
            event_types: vec![
                "psirt.events.v1.CaseEscalated".to_owned(),
                "psirt.events.v1.SlaBreached".to_owned()
            ],
            min_severity: SeverityRating::Critical as i32,
            products: vec!["acme-agent".to_owned()],
            min_escalation_level: EscalationLevel::Executive as i32,
            trusted: false,
            secret_ref: "new-key".to_owned(),
            enabled: false,
            case_statuses: vec![CaseStatus::Disclosed as i32],
        })
    );

    let r = update(&[
        "--all-event-types",
        "--any-severity",
        "--all-products",
        "--any-escalation",
        "--all-case-statuses",
    ]);
    let s = r.settings.expect("settings");
    assert!(s.event_types.is_empty() && s.products.is_empty() && s.case_statuses.is_empty());
    assert_eq!((s.min_severity, s.min_escalation_level), (0, 0));
    assert_eq!((s.trusted, s.enabled), (true, true), "flags not given stay");

    let s = update(&["--enabled"]).settings.expect("settings");
    assert!(s.enabled);
    let off = SubscriptionSettings { enabled: false, trusted: false, ..before.clone() };
    let mut fields = match command(&["update", SUB, "--enabled", "--trusted"]) {
        NotifyCommand::Update(Checked(fields)) => fields,
        other => panic!("{other:?}"),
    };
    let s = fields.apply(&off);
    assert!(s.enabled && s.trusted);
    fields.request_id = Some("x".to_owned());
    assert_eq!(NotifyCommand::Update(Checked(fields)).build(String::new(), String::new()), None);
}

#[test]
fn update_refuses_bad_input() {
    let message = error(&["update", SUB]);
    assert!(message.contains("nothing to change"), "{message}");
    assert_eq!(parse(&["update", SUB]).map(|_| ()).expect_err("refused").exit_code(), 2);
    assert!(parse(&["update", "not-a-uuid", "--enabled"]).is_err());
    assert!(parse(&["update", "--enabled"]).is_err(), "id required");
    for bad in [
        &["--enabled", "--disabled"][..],
        &["--trusted", "--untrusted"],
        &["--event-type", "CaseAccepted", "--all-event-types"],
        &["--product", "p", "--all-products"],
        &["--min-severity", "low", "--any-severity"],
        &["--min-escalation", "team", "--any-escalation"],
        &["--case-status", "fixed", "--all-case-statuses"],
        &["--webhook", "http://siem.example.com"],
        &["--name", ""],
        &["--secret-ref", "a b"],
        &["--event-type", "Nope"],
        &["--enabled", "--expected-version", "x"],
        &["--enabled", "--request-id", ""],
    ] {
        let mut args = vec!["update", SUB];
        args.extend_from_slice(bad);
        assert!(parse(&args).is_err(), "{bad:?}");
    }
    // An upper-case id is accepted and normalised.
    let upper = SUB.to_uppercase();
    let NotifyCommand::Update(Checked(fields)) = command(&["update", upper.as_str(), "--enabled"]) else {
        panic!()
    };
    assert_eq!(fields.subscription, SUB);
}

#[test]
fn unsubscribe() {
    assert_eq!(
        request(&[
            "unsubscribe",
            SUB,
            "--reason",
            "replaced by the new SIEM",
            "--expected-version",
            "9",
            "--request-id",
            "del-1"
        ]),
        NotifyRequest::Unsubscribe(DeleteSubscriptionRequest {
            subscription_id: SUB.to_owned(),
            request_id: "r1".to_owned(),
            expected_version: Some(9),
            reason: "replaced by the new SIEM".to_owned(),
        })
    );
    assert_eq!(command(&["unsubscribe", SUB, "--request-id", "del-1"]).request_id(), Some("del-1"));
    assert_eq!(
        request(&["unsubscribe", SUB]),
        NotifyRequest::Unsubscribe(DeleteSubscriptionRequest {
            subscription_id: SUB.to_owned(),
            request_id: "r1".to_owned(),
            expected_version: None,
            reason: String::new(),
        })
    );
    assert!(parse(&["unsubscribe"]).is_err());
    assert!(parse(&["unsubscribe", "PSIRT-2026-0001"]).is_err());
    let long = "x".repeat(1001);
    assert!(parse(&["unsubscribe", SUB, "--reason", long.as_str()]).is_err());
}

#[test]
fn list() {
    assert_eq!(
        request(&["list", "--channel", "webhook", "--page-size", "50", "--page-token", "t2"]),
        NotifyRequest::List(ListSubscriptionsRequest {
            channel: DeliveryChannel::Webhook as i32,
            page_size: 50,
            page_token: "t2".to_owned(),
        })
    );
    assert_eq!(request(&["list"]), NotifyRequest::List(ListSubscriptionsRequest::default()));
    for (value, channel) in [
        ("webhook", DeliveryChannel::Webhook),
        ("email", DeliveryChannel::Email),
        ("jira", DeliveryChannel::Jira),
        ("servicenow", DeliveryChannel::Servicenow),
    ] {
        let NotifyRequest::List(r) = request(&["list", "--channel", value]) else { panic!() };
        assert_eq!(r.channel, channel as i32, "{value}");
        assert_eq!(channel_label(r.channel), value, "listed as it is given");
    }
    let list = command(&["list"]);
    assert!(!list.is_change() && list.request_id().is_none() && list.case().is_none());
    for bad in [
        &["--channel", "sms"][..],
        &["--channel", "service-now"],
        &["--channel", "unspecified"],
        &["--page-size", "0"],
        &["--page-size", "1001"],
        &["--page-size", "-5"],
        &["--page-token", ""],
        &["--request-id", "x"],
    ] {
        let mut args = vec!["list"];
        args.extend_from_slice(bad);
        assert!(parse(&args).is_err(), "{bad:?}");
    }
}

#[test]
fn deliveries() {
    assert_eq!(
        request(&[
            "deliveries",
            "--case",
            "PSIRT-2026-0001",
            "--subscription",
            SUB,
            "--status",
            "dead",
            "--page-size",
            "1000",
            "--page-token",
            "t3",
        ]),
        NotifyRequest::Deliveries(ListDeliveriesRequest {
            case_id: "c1".to_owned(),
            subscription_id: SUB.to_owned(),
            status: DeliveryStatus::Dead as i32,
            page_size: 1000,
            page_token: "t3".to_owned(),
        })
    );
    assert_eq!(command(&["deliveries", "--case", "PSIRT-2026-0001"]).case(), Some("PSIRT-2026-0001"));
    assert_eq!(command(&["deliveries", "--case", CASE]).case(), Some(CASE));
    assert_eq!(command(&["deliveries"]).case(), None);
    assert_eq!(
        command(&["deliveries"]).build(String::new(), "r1".to_owned()),
        Some(NotifyRequest::Deliveries(ListDeliveriesRequest::default()))
    );
    for (value, status) in [
        ("pending", DeliveryStatus::Pending),
        ("delivered", DeliveryStatus::Delivered),
        ("dead", DeliveryStatus::Dead),
    ] {
        let NotifyRequest::Deliveries(r) = request(&["deliveries", "--status", value]) else { panic!() };
        assert_eq!(r.status, status as i32, "{value}");
    }
    for bad in [
        &["--status", "failed"][..],
        &["--subscription", "abc"],
        &["--case", ""],
        &["--page-size", "0"],
        &["--page-size", "1001"],
    ] {
        let mut args = vec!["deliveries"];
        args.extend_from_slice(bad);
        assert!(parse(&args).is_err(), "{bad:?}");
    }
}

#[test]
fn redeliver_and_tickets() {
    assert_eq!(
        request(&["redeliver", DELIVERY, "--expected-version", "3", "--request-id", "again-1"]),
        NotifyRequest::Redeliver(RedeliverDeliveryRequest {
            delivery_id: DELIVERY.to_owned(),
            request_id: "r1".to_owned(),
            expected_version: Some(3),
        })
    );
    let redeliver = command(&["redeliver", DELIVERY, "--request-id", "again-1"]);
    assert_eq!(redeliver.request_id(), Some("again-1"));
    assert!(redeliver.is_change());
    assert!(parse(&["redeliver"]).is_err());
    assert!(parse(&["redeliver", "d-1"]).is_err(), "a UUID");

    assert_eq!(
        request(&["tickets", "PSIRT-2026-0001"]),
        NotifyRequest::Tickets(ListExternalTicketsRequest { case_id: "c1".to_owned() })
    );
    let tickets = command(&["tickets", CASE]);
    assert_eq!(tickets.case(), Some(CASE));
    assert!(!tickets.is_change());
    assert!(parse(&["tickets"]).is_err());
    assert!(parse(&["tickets", ""]).is_err());
}

/// `notify subscribe --name SIEM` with `extra`.
fn subscribe_to(extra: &[&'static str]) -> Vec<&'static str> {
    ["subscribe", "--name", "SIEM"].iter().chain(extra).copied().collect()
}

#[test]
fn subscribe_builds_each_channel() {
    let expect = |channel: DeliveryChannel, endpoint: &str, secret_ref: &str| SubscriptionSettings {
        name: "SIEM".to_owned(),
        channel: channel as i32,
        endpoint: endpoint.to_owned(),
        secret_ref: secret_ref.to_owned(),
        enabled: true,
        ..SubscriptionSettings::default()
    };
    assert_eq!(
        settings(&subscribe_to(&["--webhook", HOOK, "--secret-ref", "siem-hook"])),
        expect(DeliveryChannel::Webhook, HOOK, "siem-hook")
    );
    assert_eq!(
        settings(&subscribe_to(&["--email", "psirt@example.com"])),
        expect(DeliveryChannel::Email, "psirt@example.com", "")
    );
    // Several recipients, trimmed; a secret name is allowed (and unused).
    assert_eq!(
        settings(&subscribe_to(&[
            "--email",
            " psirt@example.com , legal@example.co.uk,ciso+psirt@example.com ",
            "--secret-ref",
            "unused",
        ])),
        expect(
            DeliveryChannel::Email,
            "psirt@example.com,legal@example.co.uk,ciso+psirt@example.com",
            "unused"
        )
    );
    assert_eq!(settings(&subscribe_to(&["--jira", "SEC"])), expect(DeliveryChannel::Jira, "SEC", ""));
    assert_eq!(
        settings(&subscribe_to(&["--servicenow", "sn_vul_vulnerable_item"])),
        expect(DeliveryChannel::Servicenow, "sn_vul_vulnerable_item", "")
    );
    // The filters do not depend on the channel.
    let s = settings(&subscribe_to(&[
        "--jira",
        "PSIRT_2",
        "--event-type",
        "CaseAccepted",
        "--min-severity",
        "critical",
        "--trusted",
    ]));
    assert_eq!((s.channel, s.endpoint.as_str()), (DeliveryChannel::Jira as i32, "PSIRT_2"));
    assert_eq!(s.event_types, vec!["psirt.events.v1.CaseAccepted".to_owned()]);
    assert_eq!(s.min_severity, SeverityRating::Critical as i32);
    assert!(s.trusted && s.secret_ref.is_empty());
}

#[test]
fn subscribe_takes_exactly_one_destination() {
    for two in [
        &["--webhook", HOOK, "--email", "psirt@example.com"][..],
        &["--email", "psirt@example.com", "--jira", "SEC"],
        &["--jira", "SEC", "--servicenow", "incident"],
        &["--webhook", HOOK, "--servicenow", "incident"],
    ] {
        let mut args = subscribe_to(two);
        args.extend(["--secret-ref", "siem-hook"]);
        let refused = parse(&args).map(|_| ()).expect_err("two destinations");
        assert_eq!(refused.kind(), ErrorKind::ArgumentConflict, "{two:?}");
        assert_eq!(refused.exit_code(), 2, "a usage error");
        assert!(refused.to_string().contains("cannot be used with"), "{refused}");
        // The same destination twice is no better.
        let first = two[..2].to_vec();
        let mut twice = subscribe_to(&[]);
        twice.extend(first.iter().chain(&first));
        assert!(parse(&twice).is_err(), "{first:?} twice");
    }
    let refused = parse(&subscribe_to(&["--secret-ref", "siem-hook"])).map(|_| ()).expect_err("none");
    assert_eq!(refused.kind(), ErrorKind::MissingRequiredArgument);
    let message = refused.to_string();
    for option in ["--webhook", "--email", "--jira", "--servicenow"] {
        assert!(message.contains(option), "{message}");
    }
}

#[test]
fn secret_ref_goes_with_webhooks_only() {
    let refused = parse(&subscribe_to(&["--webhook", HOOK])).map(|_| ()).expect_err("no secret");
    assert_eq!(refused.kind(), ErrorKind::MissingRequiredArgument);
    assert!(refused.to_string().contains("--webhook needs --secret-ref"), "{refused}");
    for (option, value, section) in
        [("--jira", "SEC", "[jira]"), ("--servicenow", "incident", "[servicenow]")]
    {
        let mut args = subscribe_to(&["--secret-ref", "tracker-token"]);
        args.extend([option, value]);
        let refused = parse(&args).map(|_| ()).expect_err("secret with a tracker");
        assert_eq!(refused.kind(), ErrorKind::ArgumentConflict, "{option}");
        assert_eq!(refused.exit_code(), 2);
        let message = refused.to_string();
        assert!(message.contains(&format!("--secret-ref cannot be used with {option}")), "{message}");
        assert!(message.contains(section), "{message}");
        // The same on update.
        let refused = error(&["update", SUB, option, value, "--secret-ref", "tracker-token"]);
        assert!(refused.contains(&format!("--secret-ref cannot be used with {option}")), "{refused}");
    }
    assert!(parse(&subscribe_to(&["--email", "psirt@example.com"])).is_ok(), "optional for e-mail");
}

#[test]
fn bad_destinations_are_explained() {
    for (args, why) in [
        (&["--jira", "sec"][..], "not a Jira project key"),
        (&["--jira", "sec"], "upper-case: SEC"),
        (&["--jira", "S"], "2 to 10 characters"),
        (&["--jira", "SECURITY123"], "not a Jira project key"),
        (&["--jira", "1SEC"], "not a Jira project key"),
        (&["--jira", "SEC-1"], "not a Jira project key"),
        (&["--jira", ""], "not a Jira project key"),
        (&["--servicenow", "Incident"], "not a ServiceNow table name"),
        (&["--servicenow", "Incident"], "lower-case: incident"),
        (&["--servicenow", "_incident"], "a lower-case letter"),
        (&["--servicenow", "sn-vul"], "not a ServiceNow table name"),
        (&["--servicenow", ""], "not a ServiceNow table name"),
        (&["--email", ""], "no e-mail address"),
        (&["--email", "psirt.example.com"], "\"psirt.example.com\" is not an e-mail address"),
        (&["--email", "psirt@example.com,legal"], "\"legal\" is not an e-mail address"),
        (&["--email", "psirt@example.com,,legal@example.com"], "empty address"),
        (&["--email", "psirt@example.com,"], "empty address"),
        (&["--email", "psirt@localhost"], "a domain with a dot"),
        (&["--email", "a b@example.com"], "spaces"),
        (&["--email", "a@b@example.com"], "exactly one @"),
        (&["--email", ".a@example.com"], "dot"),
        (&["--email", "a@-example.com"], "letters, digits and hyphens"),
        (&["--webhook", "http://siem.example.com"], "loopback"),
    ] {
        let message = error(&subscribe_to(args));
        assert!(message.contains(why), "{args:?}: {message}");
        let mut update = vec!["update", SUB];
        update.extend_from_slice(args);
        assert!(error(&update).contains(why), "update {args:?}");
    }
    let fifty: Vec<String> = (0..50).map(|i| format!("r{i}@example.com")).collect();
    assert_eq!(parse_email_recipients(&fifty.join(",")).map(|r| r.split(',').count()), Ok(50));
    let message = parse_email_recipients(&format!("{},x@example.com", fifty.join(","))).expect_err("51");
    assert!(message.contains("at most 50 recipients"), "{message}");
    let long = format!("{}@example.com", "a".repeat(65));
    assert!(parse_email_recipients(&long).expect_err("long").contains("64"));
    assert_eq!(parse_jira_project(" SEC_2 ").as_deref(), Ok("SEC_2"));
    assert_eq!(parse_jira_project("ABCDEFGHIJ").as_deref(), Ok("ABCDEFGHIJ"));
    assert_eq!(parse_servicenow_table("u_psirt_case").as_deref(), Ok("u_psirt_case"));
    assert_eq!(parse_servicenow_table(&"t".repeat(80)).map(|t| t.len()), Ok(80));
    assert!(parse_servicenow_table(&"t".repeat(81)).is_err());
}

#[test]
fn update_moves_a_subscription_to_another_channel() {
    let before = current().settings.expect("settings");
    let fields = |args: &[&str]| {
        let mut all = vec!["update", SUB];
        all.extend_from_slice(args);
        match command(&all) {
            NotifyCommand::Update(Checked(fields)) => fields,
            other => panic!("not update: {other:?}"),
        }
    };
    // Webhook to Jira: the signing secret goes.
    let to_jira = fields(&["--jira", "SEC"]);
    assert_eq!(to_jira.check_against(&before), Ok(()));
    let jira = to_jira.apply(&before);
    assert_eq!(
        jira,
        SubscriptionSettings {
            channel: DeliveryChannel::Jira as i32,
            endpoint: "SEC".to_owned(),
            secret_ref: String::new(),
            ..before.clone()
        }
    );
    // Jira to ServiceNow, and to e-mail (with or without a secret name).
    let s = fields(&["--servicenow", "incident"]).apply(&jira);
    assert_eq!((s.channel, s.endpoint.as_str()), (DeliveryChannel::Servicenow as i32, "incident"));
    let s = fields(&["--email", "a@example.com,b@example.com"]).apply(&before);
    assert_eq!(
        (s.channel, s.endpoint.as_str()),
        (DeliveryChannel::Email as i32, "a@example.com,b@example.com")
    );
    assert!(s.secret_ref.is_empty(), "a new channel drops the secret name");
    let s = fields(&["--email", "a@example.com", "--secret-ref", "mail"]).apply(&before);
    assert_eq!(s.secret_ref, "mail");
    // Another webhook keeps the secret.
    let s = fields(&["--webhook", "https://new.example.com/h"]).apply(&before);
    assert_eq!((s.endpoint.as_str(), s.secret_ref.as_str()), ("https://new.example.com/h", "legal-hook"));

    // Back to a webhook: only with a secret.
    let back = fields(&["--webhook", HOOK]);
    let message = back.check_against(&jira).expect_err("no secret");
    assert!(message.contains("--secret-ref"), "{message}");
    let back = fields(&["--webhook", HOOK, "--secret-ref", "siem-hook"]);
    assert_eq!(back.check_against(&jira), Ok(()));
    let s = back.apply(&jira);
    assert_eq!(
        (s.channel, s.endpoint.as_str(), s.secret_ref.as_str()),
        (DeliveryChannel::Webhook as i32, HOOK, "siem-hook")
    );
    // A secret name for a Jira subscription is refused; other changes are fine.
    let message = fields(&["--secret-ref", "x"]).check_against(&jira).expect_err("tracker");
    assert!(message.contains("[jira]"), "{message}");
    assert_eq!(fields(&["--disabled"]).check_against(&jira), Ok(()));
    assert_eq!(fields(&["--secret-ref", "x"]).check_against(&before), Ok(()));

    // At most one destination.
    let refused = parse(&["update", SUB, "--jira", "SEC", "--email", "a@example.com"]).map(|_| ());
    assert_eq!(refused.expect_err("two").kind(), ErrorKind::ArgumentConflict);
}

#[test]
fn help_names_every_channel() {
    use clap::CommandFactory as _;
    let mut cli = crate::Cli::command();
    let notify = cli.find_subcommand_mut("notify").expect("notify");
    let help = notify.find_subcommand_mut("subscribe").expect("subscribe").render_long_help().to_string();
    assert!(
        help.contains("<--webhook <URL>|--email <ADDRESSES>|--jira <PROJECT>|--servicenow <TABLE>>"),
        "{help}"
    );
    assert!(help.contains("[jira]") && help.contains("[servicenow]"), "{help}");
    let help = notify.find_subcommand_mut("update").expect("update").render_long_help().to_string();
    assert!(help.contains("--servicenow <TABLE>") && help.contains("At most one of"), "{help}");
    let help = notify.find_subcommand_mut("list").expect("list").render_long_help().to_string();
    assert!(help.contains("servicenow"), "{help}");
}

fn render(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut buf = Vec::new();
    f(&mut buf).expect("write");
    String::from_utf8(buf).expect("utf-8")
}

#[test]
fn subscription_rendering() {
    let subscription = current();
    let text = render(|w| write_subscription(w, &subscription, Some("r1")));
    assert!(text.contains(&format!("Subscription ID:  {SUB}")), "{text}");
    assert!(text.contains("Channel:          webhook"), "{text}");
    assert!(text.contains("Event types:      CaseAccepted"), "{text}");
    assert!(text.contains("Min severity:     high"), "{text}");
    assert!(text.contains("Min escalation:   team"), "{text}");
    assert!(text.contains("Case statuses:    accepted"), "{text}");
    assert!(text.contains("Trusted:          yes"), "{text}");
    assert!(text.contains("Version:          7"), "{text}");
    assert!(text.contains("Request ID:       r1"), "{text}");
    let bare = Subscription { settings: None, ..current() };
    let text = render(|w| write_subscription(w, &bare, None));
    assert!(text.contains("Event types:      all"), "{text}");
    assert!(text.contains("Min severity:     any"), "{text}");
    assert!(text.contains("Products:         all"), "{text}");
    assert!(!text.contains("Request ID"), "{text}");

    let mut many = current();
    if let Some(s) = many.settings.as_mut() {
        s.event_types.push("psirt.events.v1.CaseEscalated".to_owned());
        s.min_severity = 0;
    }
    let page =
        ListSubscriptionsResponse { subscriptions: vec![current(), many], next_page_token: String::new() };
    let text = render(|w| write_subscriptions(w, &page));
    assert!(text.starts_with("ID  ") && text.contains("CHANNEL  ENABLED  TRUSTED  EVENTS"), "{text}");
    assert!(text.contains("webhook  yes      yes      CaseAccepted  high"), "{text}");
    assert!(text.contains("2 types       any"), "{text}");
    assert!(text.contains("https://legal.example.com/hook  Legal"), "{text}");
    assert_eq!(
        render(|w| write_subscriptions(w, &ListSubscriptionsResponse::default())),
        "No subscriptions found.\n"
    );
}

#[test]
fn delivery_and_ticket_rendering() {
    let delivery = Delivery {
        delivery_id: DELIVERY.to_owned(),
        subscription_id: SUB.to_owned(),
        case_id: CASE.to_owned(),
        event_type: "psirt.events.v1.CaseAccepted".to_owned(),
        channel: DeliveryChannel::Webhook as i32,
        status: DeliveryStatus::Dead as i32,
        attempts: 5,
        total_attempts: 10,
        series: 2,
        last_http_status: 503,
        last_error: "HTTP 503\nService Unavailable".to_owned(),
        finished_at: Some(Timestamp { seconds: 0, nanos: 0 }),
        version: 12,
        ..Delivery::default()
    };
    let text = render(|w| write_delivery(w, &delivery, Some("again-1")));
    assert!(text.contains("Status:            dead"), "{text}");
    assert!(text.contains("Attempts:          5 (10 in all)"), "{text}");
    assert!(text.contains("Last HTTP status:  503"), "{text}");
    assert!(text.contains("Last error:        HTTP 503 Service Unavailable"), "{text}");
    assert!(text.contains("Finished:          1970-01-01T00:00:00Z"), "{text}");
    assert!(text.contains("Next attempt:      -"), "{text}");
    assert!(text.contains("Request ID:        again-1"), "{text}");

    let page = ListDeliveriesResponse {
        deliveries: vec![
            delivery,
            Delivery { status: DeliveryStatus::Pending as i32, ..Delivery::default() },
        ],
        next_page_token: "t".to_owned(),
    };
    let text = render(|w| write_deliveries(w, &page));
    assert!(text.starts_with("ID "), "{text}");
    assert!(text.contains(&format!("{DELIVERY}  dead     CaseAccepted  {CASE}  {SUB}  5")), "{text}");
    assert!(text.contains("HTTP 503 Service Unavailable"), "{text}");
    assert!(text.contains("pending"), "{text}");
    assert_eq!(render(|w| write_deliveries(w, &ListDeliveriesResponse::default())), "No deliveries found.\n");

    let tickets = ListExternalTicketsResponse {
        tickets: vec![ExternalTicket {
            system: TicketSystem::Jira as i32,
            key: "SEC-123".to_owned(),
            url: "https://jira.example.com/browse/SEC-123".to_owned(),
            external_status: "In Review".to_owned(),
            status_category: TicketStatusCategory::InProgress as i32,
            ..ExternalTicket::default()
        }],
    };
    let text = render(|w| write_tickets(w, &tickets));
    assert!(text.contains("jira    SEC-123  In Review  in-progress  -"), "{text}");
    assert_eq!(
        render(|w| write_tickets(w, &ListExternalTicketsResponse::default())),
        "No external tickets linked.\n"
    );
}

#[test]
fn labels() {
    assert_eq!(channel_label(DeliveryChannel::Webhook as i32), "webhook");
    assert_eq!(channel_label(42), "unknown(42)");
    assert_eq!(delivery_status_label(DeliveryStatus::Delivered as i32), "delivered");
    assert_eq!(min_severity_label(SeverityRating::Critical as i32), "critical");
    assert_eq!(min_severity_label(0), "any");
    assert_eq!(min_escalation_label(EscalationLevel::Executive as i32), "executive");
    assert_eq!(min_escalation_label(0), "any");
    assert_eq!(ticket_system_label(TicketSystem::Servicenow as i32), "servicenow");
    assert_eq!(ticket_category_label(0), "-");
}
