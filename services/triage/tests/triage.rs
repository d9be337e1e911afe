//! The triage service end to end in-process: real nats-server, real
//! PostgreSQL and SQLite, real gRPC.

mod common;

use common::{DEADLINE, Harness, token, with_token};
use psirt_kit::config::AuthMode;
use psirt_kit::service::ServiceConfig as _;
use psirt_proto::{common as pc, events, triage};
use psirt_testkit::{BACKENDS, Backend, eventually};
use tonic::Code;
use tonic_types::StatusExt;

const V31: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
const V40: &str = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N";

fn violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

fn year() -> i32 {
    time::OffsetDateTime::now_utc().year()
}

fn by_key(key: &str) -> triage::GetCaseRequest {
    triage::GetCaseRequest { lookup: Some(triage::get_case_request::Lookup::CaseKey(key.to_owned())) }
}

#[tokio::test]
async fn reports_open_the_promised_cases_with_sequential_keys_on_both_databases() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let h = Harness::start(backend).await?;
        let (report1, case1) = h.report("SQL injection in login form").await?;
        let (_, case2) = h.report("XSS in search").await?;
        let first = h.opened(case1).await?;
        let second = h.opened(case2).await?;
        assert_eq!(first.case_key, format!("PSIRT-{}-0001", year()), "{backend:?}");
        assert_eq!(second.case_key, format!("PSIRT-{}-0002", year()), "{backend:?}");
        assert_eq!(first.title, "SQL injection in login form");
        assert_eq!(first.report_ids, vec![report1.to_string()]);
        assert_eq!(first.status, pc::CaseStatus::Received as i32);
        assert_eq!(first.channel, pc::ReportChannel::Web as i32);
        assert_eq!(first.sla_clocks.len(), 2, "acknowledge and triage clocks run");
        assert!(
            first
                .sla_clocks
                .iter()
                .all(|c| c.due_at.is_some() && c.state == triage::SlaState::OnTrack as i32)
        );
        // by key from the read model, once the projection has the case
        h.case_at(case1, first.version).await?;
        let mut cases = h.cases().await?;
        let again = cases.get_case(by_key(&first.case_key)).await?.into_inner().case.expect("case");
        assert_eq!(again.case_id, case1.to_string());
        let missing =
            cases.get_case(by_key(&format!("PSIRT-{}-0099", year()))).await.expect_err("no such key");
        assert_eq!(missing.code(), Code::NotFound);
    }
    Ok(())
}

#[tokio::test]
async fn redelivery_and_restart_never_open_or_link_twice() -> anyhow::Result<()> {
    let h = Harness::start(Backend::Sqlite).await?;
    let (report1, case1) = h.report("SQL injection in login form").await?;
    let (report2, case2) = h.report("SQL injection in the login form").await?;
    h.duplicate_hint(report2, report1).await?;
    h.opened(case1).await?;
    let linked = eventually(DEADLINE, "duplicate linked", || {
        let h = &h;
        async move {
            let events = h.case_events(case2).await.ok()?;
            (events.len() == 2).then_some(events)
        }
    })
    .await?;
    assert_eq!(linked[1].event_type, "psirt.events.v1.DuplicateLinked");

    // Replay every reaction: the stream already has their events.
    let mut h = h;
    h.stop().await?;
    let pool = psirt_kit::backbone::open_database(&h.config().database).await?;
    sqlx::query("UPDATE projection_checkpoints SET last_sequence = 0 WHERE name = 'triage-reactions'")
        .execute(&pool)
        .await?;
    pool.close().await;
    let h = h.restart().await?;
    let (_, case3) = h.report("CSRF in settings").await?;
    let third = h.opened(case3).await?;
    assert_eq!(third.case_key, format!("PSIRT-{}-0003", year()), "redelivered opens did not use up numbers");
    assert_eq!(h.case_events(case1).await?.len(), 1, "opened once");
    assert_eq!(h.case_events(case2).await?.len(), 2, "opened and linked once");
    let view = eventually(DEADLINE, "link in the view", || {
        let h = &h;
        async move {
            let case = h.opened(case2).await.ok()?;
            (!case.suspected_duplicate_case_ids.is_empty()).then_some(case)
        }
    })
    .await?;
    assert_eq!(view.suspected_duplicate_case_ids, vec![case1.to_string()]);
    Ok(())
}

#[tokio::test]
async fn assess_accept_cve_and_embargo_end_to_end_then_timeline_and_rebuild() -> anyhow::Result<()> {
    let h = Harness::start(Backend::Postgres).await?;
    let (_, case_id) = h.report("Remote code execution in the gateway").await?;
    h.opened(case_id).await?;
    let mut client = h.triage().await?;
    let id = case_id.to_string();
    let assessed = client
        .assess_severity(triage::AssessSeverityRequest {
            case_id: id.clone(),
            request_id: "assess-1".to_owned(),
            cvss_v3_vector: V31.to_owned(),
            cvss_v4_vector: V40.to_owned(),
            ssvc: Some(triage::SsvcInputs {
                exploitation: pc::SsvcExploitation::Active.into(),
                automatable: pc::SsvcAutomatable::Yes.into(),
                value_density: pc::SsvcValueDensity::Concentrated.into(),
                technical_impact: pc::SsvcTechnicalImpact::Total.into(),
                public_safety_impact: pc::SsvcPublicSafetyImpact::Significant.into(),
            }),
            cwe_ids: vec!["CWE-78".to_owned()],
            ..Default::default()
        })
        .await?
        .into_inner()
        .case
        .expect("case");
    assert_eq!(assessed.status, pc::CaseStatus::Triage as i32, "assessing a received case starts triage");
    let severity = assessed.severity.clone().expect("severity");
    let v31 = severity.cvss_v31.expect("v3.1");
    assert!((v31.base_score - 9.8).abs() < 1e-9, "FIRST: 9.8, got {}", v31.base_score);
    let v40 = severity.cvss_v40.expect("v4.0");
    assert!((v40.score - 9.3).abs() < 1e-9, "FIRST: 9.3, got {}", v40.score);
    assert_eq!(severity.rating, pc::SeverityRating::Critical as i32);
    assert_eq!(severity.ssvc.expect("ssvc").decision, pc::SsvcDecision::Immediate as i32);

    client
        .set_affected_products(triage::SetAffectedProductsRequest {
            case_id: id.clone(),
            request_id: "products-1".to_owned(),
            products: vec![pc::ProductVersionRange {
                product: "acme-gateway".to_owned(),
                versions: Some(pc::product_version_range::Versions::Range("vers:semver/<2.4.1".to_owned())),
            }],
            ..Default::default()
        })
        .await?;
    let accepted = client
        .accept_case(triage::AcceptCaseRequest {
            case_id: id.clone(),
            request_id: "accept-1".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .case
        .expect("case");
    assert_eq!(accepted.status, pc::CaseStatus::Accepted as i32);
    assert!(
        accepted
            .sla_clocks
            .iter()
            .any(|c| c.clock == events::SlaClock::Triage as i32 && c.state == triage::SlaState::Met as i32)
    );
    client
        .assign_cve(triage::AssignCveRequest {
            case_id: id.clone(),
            request_id: "cve-1".to_owned(),
            cve_id: "CVE-2026-12345".to_owned(),
            ..Default::default()
        })
        .await?;
    let embargoed = client
        .set_embargo(triage::SetEmbargoRequest {
            case_id: id.clone(),
            request_id: "embargo-1".to_owned(),
            local_disclosure_time: format!("{}-03-10T09:00", year() + 1),
            time_zone: "Etc/GMT-9".to_owned(),
            agreed_with: vec!["reporter".to_owned()],
            ..Default::default()
        })
        .await?
        .into_inner()
        .case
        .expect("case");
    assert_eq!(embargoed.cve_ids, vec!["CVE-2026-12345".to_owned()]);
    let embargo = embargoed.embargo.clone().expect("embargo");
    assert!(embargo.active);
    assert_eq!(embargo.utc_offset_seconds, 9 * 3600);
    assert_eq!(embargo.local_disclosure_time, format!("{}-03-10T09:00:00", year() + 1));

    // The projection catches up with the command responses.
    let projected = h.case_at(case_id, embargoed.version).await?;
    let mut cases = h.cases().await?;
    let mut got = cases
        .get_case(triage::GetCaseRequest {
            lookup: Some(triage::get_case_request::Lookup::CaseId(id.clone())),
        })
        .await?
        .into_inner()
        .case
        .expect("case");
    assert_eq!(got.version, embargoed.version);
    assert_eq!(got.severity, embargoed.severity);
    assert_eq!(got.status, embargoed.status);
    assert_eq!(got.embargo, embargoed.embargo);
    assert_eq!(projected.affected_products.len(), 1);

    // Filters over the read model.
    let list =
        |filter: triage::CaseFilter| triage::ListCasesRequest { filter: Some(filter), ..Default::default() };
    let mut cases2 = cases.clone();
    let found = cases2
        .list_cases(list(triage::CaseFilter {
            statuses: vec![pc::CaseStatus::Accepted as i32],
            severities: vec![pc::SeverityRating::Critical as i32],
            product: "acme-gateway".to_owned(),
            embargoed: Some(true),
            ..Default::default()
        }))
        .await?
        .into_inner();
    assert_eq!(found.cases.len(), 1);
    assert!(found.as_of_sequence >= got.version);
    let none = cases2
        .list_cases(list(triage::CaseFilter { product: "other".to_owned(), ..Default::default() }))
        .await?
        .into_inner();
    assert!(none.cases.is_empty());
    // triage met in time, acknowledgement still running
    let sla = |states: Vec<triage::SlaState>| triage::CaseFilter {
        sla_states: states.into_iter().map(|s| s as i32).collect(),
        ..Default::default()
    };
    for (states, expected) in [
        (vec![triage::SlaState::Met], 1),
        (vec![triage::SlaState::OnTrack], 1),
        (vec![triage::SlaState::Breached, triage::SlaState::MetLate], 0),
    ] {
        let found = cases2.list_cases(list(sla(states.clone()))).await?.into_inner();
        assert_eq!(found.cases.len(), expected, "{states:?}");
    }

    // The timeline: every event of the case, in stream order.
    let timeline = cases
        .get_case_timeline(triage::GetCaseTimelineRequest { case_id: id.clone(), ..Default::default() })
        .await?
        .into_inner();
    let types: Vec<&str> = timeline.entries.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "psirt.events.v1.ReportReceived",
            "psirt.events.v1.CaseOpened",
            "psirt.events.v1.TriageStarted",
            "psirt.events.v1.SeverityAssessed",
            "psirt.events.v1.AffectedProductsSet",
            "psirt.events.v1.CaseAccepted",
            "psirt.events.v1.CveAssigned",
            "psirt.events.v1.EmbargoSet",
        ]
    );
    assert!(timeline.entries.windows(2).all(|w| w[0].sequence < w[1].sequence));
    let assessed_entry = &timeline.entries[3];
    assert_eq!(
        assessed_entry.event.as_ref().map(|a| a.type_url.as_str()),
        Some("type.googleapis.com/psirt.events.v1.SeverityAssessed")
    );
    assert!(assessed_entry.summary.contains("CRITICAL"), "{}", assessed_entry.summary);
    let page = cases
        .get_case_timeline(triage::GetCaseTimelineRequest {
            case_id: id.clone(),
            page_size: 3,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(page.entries.len(), 3);
    let rest = cases
        .get_case_timeline(triage::GetCaseTimelineRequest {
            case_id: id.clone(),
            page_size: 100,
            page_token: page.next_page_token.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(rest.entries.len(), 5);
    assert!(rest.next_page_token.is_empty());

    // Rebuild, then the same case field for field.
    let mut h = h;
    h.stop().await?;
    let mut config = h.config();
    // Batches of two: the case's events span many batches, each folded
    // while the one before it is written (the carry-over at work).
    config.projection.rebuild_batch_size = 2;
    let total = psirt_triage::rebuild(&config, |_, _| {}).await?;
    assert!(total >= got.last_sequence);
    let h = h.restart().await?;
    let mut cases = h.cases().await?;
    let mut rebuilt = cases
        .get_case(triage::GetCaseRequest {
            lookup: Some(triage::get_case_request::Lookup::CaseId(id.clone())),
        })
        .await?
        .into_inner()
        .case
        .expect("case");
    // due-soon and embargo activity are computed when served; same instant-independent state here
    for c in rebuilt.sla_clocks.iter_mut().chain(got.sla_clocks.iter_mut()) {
        c.state = 0;
    }
    assert_eq!(rebuilt, got, "rebuild gives the same case");
    Ok(())
}

/// Sets an embargo at `local` in `zone` on `case_id`.
fn embargo_at(case_id: &str, request_id: &str, local: &str, zone: &str) -> triage::SetEmbargoRequest {
    triage::SetEmbargoRequest {
        case_id: case_id.to_owned(),
        request_id: request_id.to_owned(),
        local_disclosure_time: local.to_owned(),
        time_zone: zone.to_owned(),
        agreed_with: vec!["reporter".to_owned()],
        ..Default::default()
    }
}

/// The field violations of a refusal with their descriptions.
fn described_violations(status: &tonic::Status) -> Vec<(String, String)> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| (v.field, v.description)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn embargo_local_times_resolve_with_the_iana_time_zone_database() -> anyhow::Result<()> {
    use time::{Date, Month, Weekday};
    let h = Harness::start(Backend::Sqlite).await?;
    let (_, case_id) = h.report("Authentication bypass in the admin API").await?;
    h.opened(case_id).await?;
    let id = case_id.to_string();
    let mut client = h.triage().await?;
    let next = year() + 1;
    let utc = |month: Month, day: u8, hour: u8, minute: u8| -> anyhow::Result<_> {
        Ok(Date::from_calendar_date(next, month, day)?.with_hms(hour, minute, 0)?.assume_utc())
    };

    // (local time, zone as sent, zone as stored, instant, offset)
    let cases = [
        (
            format!("{next}-01-15T10:00"),
            "Europe/Berlin",
            "Europe/Berlin",
            utc(Month::January, 15, 9, 0)?,
            3600,
        ),
        (format!("{next}-07-15T10:00"), "Europe/Berlin", "Europe/Berlin", utc(Month::July, 15, 8, 0)?, 7200),
        (format!("{next}-03-10T09:00"), "Asia/Tokyo", "Asia/Tokyo", utc(Month::March, 10, 0, 0)?, 9 * 3600),
        // The tz database's spelling is what is stored.
        (
            format!("{next}-01-20T09:30"),
            "America/NEW_YORK",
            "America/New_York",
            utc(Month::January, 20, 14, 30)?,
            -5 * 3600,
        ),
        (
            format!("{next}-07-04T12:00"),
            "America/New_York",
            "America/New_York",
            utc(Month::July, 4, 16, 0)?,
            -4 * 3600,
        ),
        (
            format!("{next}-06-01T00:00:30"),
            "UTC",
            "UTC",
            utc(Month::June, 1, 0, 0)? + time::Duration::seconds(30),
            0,
        ),
    ];
    for (i, (local, zone, stored, instant, offset)) in cases.iter().enumerate() {
        let case = client
            .set_embargo(embargo_at(&id, &format!("embargo-{i}"), local, zone))
            .await?
            .into_inner()
            .case
            .expect("case");
        let embargo = case.embargo.expect("embargo");
        assert_eq!(embargo.disclosure_at, Some(psirt_triage::mapping::timestamp(*instant)), "{local} {zone}");
        assert_eq!(embargo.utc_offset_seconds, *offset, "{local} {zone}");
        assert_eq!(embargo.time_zone, *stored);
        assert!(embargo.active);
        let events = h.case_events(case_id).await?;
        let set: events::EmbargoSet = events.last().expect("appended").decode()?;
        let seconds = if local.len() == "YYYY-MM-DDTHH:MM".len() { ":00" } else { "" };
        assert_eq!(set.local_disclosure_time, format!("{local}{seconds}"), "stored as given");
        assert_eq!(set.time_zone, *stored);
        assert_eq!(set.utc_offset_seconds, *offset);
        assert_eq!(set.disclosure_at, Some(psirt_triage::mapping::timestamp(*instant)));
    }

    // Times the clocks skip or repeat are refused, never shifted: the
    // agreement named a wall clock reading and only the parties know which
    // instant they meant. The 2026 ones are past, so the description shows
    // it is the gap or fold that was refused, not the date.
    let last_sunday = |month: Month| -> anyhow::Result<Date> {
        Ok(Date::from_calendar_date(next, month.next(), 1)?.prev_occurrence(Weekday::Sunday))
    };
    let refusals = [
        (
            "2026-03-29T02:30".to_owned(),
            "Europe/Berlin",
            "local_disclosure_time",
            "does not exist in Europe/Berlin",
        ),
        (
            "2026-10-25T02:30".to_owned(),
            "Europe/Berlin",
            "local_disclosure_time",
            "is ambiguous in Europe/Berlin",
        ),
        (
            format!("{}T02:30", last_sunday(Month::March)?),
            "Europe/Berlin",
            "local_disclosure_time",
            "does not exist",
        ),
        (
            format!("{}T02:30", last_sunday(Month::October)?),
            "Europe/Berlin",
            "local_disclosure_time",
            "is ambiguous",
        ),
        (format!("{next}-03-10T09:00"), "Mars/Olympus", "time_zone", "IANA name"),
        (format!("{next}-03-10T09:00"), "Europe/Atlantis", "time_zone", "not in the IANA time zone database"),
    ];
    let appended = h.case_events(case_id).await?.len();
    for (i, (local, zone, field, says)) in refusals.iter().enumerate() {
        let refused = client
            .set_embargo(embargo_at(&id, &format!("refused-{i}"), local, zone))
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{local} {zone}");
        let found = described_violations(&refused);
        assert_eq!(found.len(), 1, "{local} {zone}: {found:?}");
        assert_eq!(found[0].0, *field, "{local} {zone}");
        assert!(found[0].1.contains(says), "{local} {zone}: {}", found[0].1);
    }
    assert_eq!(h.case_events(case_id).await?.len(), appended, "refusals append nothing");
    Ok(())
}

#[tokio::test]
async fn refused_commands_append_nothing() -> anyhow::Result<()> {
    let h = Harness::start(Backend::Sqlite).await?;
    let (_, case_id) = h.report("Path traversal in file download").await?;
    let opened = h.opened(case_id).await?;
    let id = case_id.to_string();
    let mut client = h.triage().await?;

    // invalid transitions name the current state
    let accept = client
        .accept_case(triage::AcceptCaseRequest {
            case_id: id.clone(),
            request_id: "a1".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("received cannot be accepted");
    assert_eq!(accept.code(), Code::FailedPrecondition);
    assert!(accept.message().contains("RECEIVED"), "{}", accept.message());
    let close = client
        .close_case(triage::CloseCaseRequest {
            case_id: id.clone(),
            request_id: "c1".to_owned(),
            resolution: events::CaseResolution::Fixed.into(),
            root_cause: "input not validated".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("an untriaged case cannot be closed");
    assert_eq!(close.code(), Code::FailedPrecondition);
    assert!(close.message().contains("RECEIVED"), "{}", close.message());

    // stale expected version
    let stale = client
        .assign_case(triage::AssignCaseRequest {
            case_id: id.clone(),
            request_id: "s1".to_owned(),
            expected_version: Some(opened.version + 100),
            assignee: "alice".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("stale");
    assert_eq!(stale.code(), Code::Aborted);
    assert!(stale.message().contains(&opened.version.to_string()), "{}", stale.message());

    // bad input, with field violations
    let bad_vector = client
        .assess_severity(triage::AssessSeverityRequest {
            case_id: id.clone(),
            request_id: "v1".to_owned(),
            cvss_v3_vector: "CVSS:3.1/AV:N/AC:L".to_owned(),
            cvss_v4_vector: "CVSS:4.0/AV:N/AV:N".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("incomplete vectors");
    assert_eq!(bad_vector.code(), Code::InvalidArgument);
    assert_eq!(violations(&bad_vector), vec!["cvss_v3_vector".to_owned(), "cvss_v4_vector".to_owned()]);
    let bad_ssvc = client
        .assess_severity(triage::AssessSeverityRequest {
            case_id: id.clone(),
            request_id: "v2".to_owned(),
            ssvc: Some(triage::SsvcInputs::default()),
            ..Default::default()
        })
        .await
        .expect_err("ssvc without decision points");
    assert!(violations(&bad_ssvc).contains(&"ssvc.exploitation".to_owned()));
    for cve in ["CVE-24-1", "CVE-2026-01234", "GHSA-2026-1234"] {
        let bad_cve = client
            .assign_cve(triage::AssignCveRequest {
                case_id: id.clone(),
                request_id: format!("cve-{cve}"),
                cve_id: cve.to_owned(),
                ..Default::default()
            })
            .await
            .expect_err("bad cve id");
        assert_eq!(bad_cve.code(), Code::InvalidArgument, "{cve}");
        assert_eq!(violations(&bad_cve), vec!["cve_id".to_owned()], "{cve}");
    }
    let bad_products = client
        .set_affected_products(triage::SetAffectedProductsRequest {
            case_id: id.clone(),
            request_id: "p1".to_owned(),
            products: vec![pc::ProductVersionRange {
                product: "portal".to_owned(),
                versions: Some(pc::product_version_range::Versions::Explicit(pc::VersionList {
                    versions: vec![],
                })),
            }],
            ..Default::default()
        })
        .await
        .expect_err("no versions");
    assert_eq!(violations(&bad_products), vec!["products[0].explicit.versions".to_owned()]);
    let unknown = client
        .start_triage(triage::StartTriageRequest {
            case_id: psirt_domain::CaseId::new().to_string(),
            ..Default::default()
        })
        .await
        .expect_err("unknown case");
    assert_eq!(unknown.code(), Code::NotFound);

    assert_eq!(h.case_events(case_id).await?.len(), 1, "nothing was appended");
    Ok(())
}

#[tokio::test]
async fn two_analysts_racing_on_one_version_one_wins_and_retries_are_idempotent() -> anyhow::Result<()> {
    let h = Harness::start(Backend::Postgres).await?;
    let (_, case_id) = h.report("Session fixation").await?;
    h.opened(case_id).await?;
    let id = case_id.to_string();
    let client = h.triage().await?;
    let started = client
        .clone()
        .start_triage(triage::StartTriageRequest {
            case_id: id.clone(),
            request_id: "start".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .case
        .expect("case");
    let version = started.version;
    let calls = ["alice", "bob"].map(|who| {
        let mut c = client.clone();
        let id = id.clone();
        tokio::spawn(async move {
            c.assign_case(triage::AssignCaseRequest {
                case_id: id,
                request_id: format!("assign-{who}"),
                expected_version: Some(version),
                assignee: who.to_owned(),
                ..Default::default()
            })
            .await
        })
    });
    let mut won = 0;
    let mut aborted = 0;
    for call in calls {
        match call.await? {
            Ok(_) => won += 1,
            Err(status) if status.code() == Code::Aborted => aborted += 1,
            Err(status) => anyhow::bail!("unexpected {status:?}"),
        }
    }
    assert_eq!((won, aborted), (1, 1));
    let stored = h.case_events(case_id).await?;
    assert_eq!(stored.len(), 3, "opened, triage started, one assignment");

    // the same request again appends nothing and answers with the case
    let request = triage::AssignCaseRequest {
        case_id: id.clone(),
        request_id: "assign-carol".to_owned(),
        assignee: "carol".to_owned(),
        ..Default::default()
    };
    let first = client.clone().assign_case(request.clone()).await?.into_inner().case.expect("case");
    let again = client.clone().assign_case(request).await?.into_inner().case.expect("case");
    assert_eq!(first.version, again.version);
    assert_eq!(again.assignee, "carol");
    assert_eq!(h.case_events(case_id).await?.len(), 4);
    Ok(())
}

#[tokio::test]
async fn analysts_decide_engineers_read_and_reporters_do_neither() -> anyhow::Result<()> {
    let h = Harness::start_with(Backend::Sqlite, AuthMode::Jwt).await?;
    let (_, case_id) = h.report("Open redirect").await?;
    let id = case_id.to_string();
    let get =
        || triage::GetCaseRequest { lookup: Some(triage::get_case_request::Lookup::CaseId(id.clone())) };
    let assign = |who: &str| triage::AssignCaseRequest {
        case_id: id.clone(),
        request_id: format!("assign-{who}"),
        assignee: who.to_owned(),
        ..Default::default()
    };
    let engineer = token("erin", &["engineer"]);
    let analyst = token("alice", &["analyst"]);
    let reporter = token("rita", &["reporter"]);
    let mut cases = h.cases().await?;
    let mut triage_client = h.triage().await?;
    eventually(DEADLINE, "case readable by an engineer", || {
        let mut cases = cases.clone();
        let request = with_token(get(), &engineer);
        async move { cases.get_case(request).await.ok() }
    })
    .await?;
    let denied = triage_client
        .assign_case(with_token(assign("erin"), &engineer))
        .await
        .expect_err("engineers read only");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = cases.get_case(with_token(get(), &reporter)).await.expect_err("reporters see no cases");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let anonymous = cases.get_case(get()).await.expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let assigned = triage_client
        .assign_case(with_token(assign("alice"), &analyst))
        .await?
        .into_inner()
        .case
        .expect("case");
    assert_eq!(assigned.assignee, "alice");
    let events = h.case_events(case_id).await?;
    assert_eq!(
        events.last().and_then(|e| e.metadata.actor.as_deref()),
        Some("alice"),
        "the actor is the principal"
    );
    Ok(())
}

async fn next(
    watch: &mut tonic::Streaming<triage::WatchCasesResponse>,
) -> anyhow::Result<triage::watch_cases_response::Kind> {
    tokio::time::timeout(DEADLINE, watch.message())
        .await??
        .and_then(|m| m.kind)
        .ok_or_else(|| anyhow::anyhow!("watch ended"))
}

#[tokio::test]
async fn watch_replays_from_a_position_then_follows_live() -> anyhow::Result<()> {
    use triage::watch_cases_response::Kind;
    let h = Harness::start(Backend::Sqlite).await?;
    let (_, case_id) = h.report("Clickjacking on the admin page").await?;
    let opened = h.opened(case_id).await?;
    h.case_at(case_id, opened.version).await?;
    let mut cases = h.cases().await?;
    let mut watch = cases
        .watch_cases(triage::WatchCasesRequest { filter: None, after_sequence: Some(0) })
        .await?
        .into_inner();
    let Kind::Change(first) = next(&mut watch).await? else { anyhow::bail!("expected the backlog first") };
    assert_eq!(first.case.as_ref().map(|c| c.case_id.clone()), Some(case_id.to_string()));
    assert_eq!(first.event_type, "psirt.events.v1.CaseOpened");
    let Kind::Checkpoint(checkpoint) = next(&mut watch).await? else { anyhow::bail!("expected caught up") };
    assert!(checkpoint.caught_up);
    assert!(checkpoint.sequence >= first.sequence);

    let mut client = h.triage().await?;
    client
        .assign_case(triage::AssignCaseRequest {
            case_id: case_id.to_string(),
            request_id: "w1".to_owned(),
            assignee: "alice".to_owned(),
            ..Default::default()
        })
        .await?;
    let live = loop {
        match next(&mut watch).await? {
            Kind::Change(change) => break change,
            Kind::Checkpoint(_) => {}
        }
    };
    assert!(live.sequence > checkpoint.sequence);
    assert_eq!(live.case.map(|c| c.assignee), Some("alice".to_owned()));

    // a filter that matches nothing sends only checkpoints
    let mut none = cases
        .watch_cases(triage::WatchCasesRequest {
            filter: Some(triage::CaseFilter {
                statuses: vec![pc::CaseStatus::Closed as i32],
                ..Default::default()
            }),
            after_sequence: Some(0),
        })
        .await?
        .into_inner();
    assert!(matches!(next(&mut none).await?, Kind::Checkpoint(_)));
    Ok(())
}

#[tokio::test]
async fn a_burst_of_reports_across_a_restart_opens_each_case_once_with_unique_keys() -> anyhow::Result<()> {
    let h = Harness::start(Backend::Postgres).await?;
    let mut cases = Vec::new();
    for i in 0..20 {
        cases.push(h.report(&format!("Report {i}")).await?.1);
    }
    let mut h = h;
    h.stop().await?;
    let h = h.restart().await?;
    for i in 20..40 {
        cases.push(h.report(&format!("Report {i}")).await?.1);
    }
    let mut client = h.cases().await?;
    let listed = eventually(DEADLINE, "every case in the view", || {
        let mut client = client.clone();
        async move {
            let list = client
                .list_cases(triage::ListCasesRequest {
                    page_size: 1000,
                    order_by: "case_key".to_owned(),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            (list.cases.len() == 40).then_some(list.cases)
        }
    })
    .await?;
    let keys: Vec<String> = listed.iter().map(|c| c.case_key.clone()).collect();
    let expected: Vec<String> = (1..=40).map(|n| format!("PSIRT-{}-{n:04}", year())).collect();
    assert_eq!(keys, expected, "sequential, unique, none skipped");
    for case_id in &cases {
        assert_eq!(h.case_events(*case_id).await?.len(), 1, "opened once");
    }
    // paging by key gives the same order
    let first = client
        .list_cases(triage::ListCasesRequest {
            page_size: 15,
            order_by: "case_key desc".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let second = client
        .list_cases(triage::ListCasesRequest {
            page_size: 30,
            order_by: "case_key desc".to_owned(),
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let paged: Vec<String> = first.cases.iter().chain(&second.cases).map(|c| c.case_key.clone()).collect();
    let mut reversed = expected;
    reversed.reverse();
    assert_eq!(paged, reversed);
    assert!(second.next_page_token.is_empty());
    let bad = client
        .list_cases(triage::ListCasesRequest {
            order_by: "opened_at".to_owned(),
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .expect_err("token of another order");
    assert_eq!(violations(&bad), vec!["page_token".to_owned()]);

    // several sort keys: pages of 7 give the order of one big page
    for order_by in ["severity desc,case_key", "next_due_at,case_key desc", "updated_at desc,severity"] {
        let all = client
            .list_cases(triage::ListCasesRequest {
                page_size: 1000,
                order_by: order_by.to_owned(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .cases;
        let mut paged = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .list_cases(triage::ListCasesRequest {
                    page_size: 7,
                    order_by: order_by.to_owned(),
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            paged.extend(page.cases);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let ids = |cases: &[triage::Case]| cases.iter().map(|c| c.case_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&paged), ids(&all), "{order_by}");
        assert_eq!(all.len(), 40);
    }
    let keys_of = |cases: &[triage::Case]| cases.iter().map(|c| c.case_key.clone()).collect::<Vec<_>>();
    let by_severity_then_key = client
        .list_cases(triage::ListCasesRequest {
            page_size: 1000,
            order_by: "severity desc,case_key".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(
        keys_of(&by_severity_then_key.cases),
        (1..=40).map(|n| format!("PSIRT-{}-{n:04}", year())).collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test]
async fn missed_deadlines_are_recorded_and_escalated_once_also_with_two_replicas() -> anyhow::Result<()> {
    let nats = psirt_testkit::NatsServer::start().await?;
    let db = psirt_testkit::TestDatabase::new(Backend::Postgres).await?;
    let mut config = common::config(&nats, &db, AuthMode::None);
    config.triage.sla.unrated =
        psirt_domain::SeverityClocks { acknowledge: "1s".parse()?, triage: "2s".parse()? };
    config.triage.sla_check_interval_ms = 100;
    config.validate()?;
    // a second replica with the same settings: its scheduler races the first
    let telemetry = psirt_kit::telemetry::init("psirt-triage-test", &config.log, &config.otel)?;
    let replica = Box::pin(psirt_triage::Application::build(&config, telemetry.metrics())).await?;
    let replica_core = replica.triage().clone();
    let replica_stop = psirt_kit::Shutdown::new();
    let replica_task = tokio::spawn(replica.run_until_stopped(replica_stop.clone()));
    let h = Box::pin(Harness::start_configured(nats, db, config)).await?;

    let (_, case_id) = h.report("Unauthenticated API endpoint").await?;
    let recorded = eventually(DEADLINE, "both deadlines recorded and escalated", || {
        let h = &h;
        async move {
            let events = h.case_events(case_id).await.ok()?;
            (events.len() >= 5).then_some(events)
        }
    })
    .await?;
    let types: Vec<&str> = recorded.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "psirt.events.v1.CaseOpened",
            "psirt.events.v1.SlaBreached",
            "psirt.events.v1.CaseEscalated",
            "psirt.events.v1.SlaBreached",
            "psirt.events.v1.CaseEscalated",
        ]
    );
    let escalated: events::CaseEscalated = recorded[4].decode()?;
    assert!(escalated.automatic);
    assert_eq!(escalated.level, events::EscalationLevel::Management as i32);
    assert_eq!(escalated.sla_clock, events::SlaClock::Triage as i32);
    // once the view shows the breaches, further passes record nothing
    let view = eventually(DEADLINE, "breaches in the view", || {
        let h = &h;
        async move {
            let case = h.opened(case_id).await.ok()?;
            case.sla_clocks.iter().all(|c| c.breached_at.is_some()).then_some(case)
        }
    })
    .await?;
    assert!(view.sla_clocks.iter().all(|c| c.state == triage::SlaState::Breached as i32));
    assert_eq!(view.escalation_level, events::EscalationLevel::Management as i32);
    assert_eq!(view.status, pc::CaseStatus::Received as i32, "the scheduler is not someone triaging");
    // The scheduler reads the read model (GetCase above folds the stream):
    // wait until the read model has both breaches before another pass.
    eventually(DEADLINE, "breaches in the read model", || {
        let h = &h;
        async move {
            let page = h
                .cases()
                .await
                .ok()?
                .list_cases(triage::ListCasesRequest {
                    filter: Some(triage::CaseFilter {
                        sla_states: vec![triage::SlaState::Breached as i32],
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            page.cases
                .iter()
                .any(|c| c.sla_clocks.iter().all(|clock| clock.breached_at.is_some()))
                .then_some(())
        }
    })
    .await?;
    assert_eq!(replica_core.record_breaches().await.map_err(|e| anyhow::anyhow!("{e}"))?, 0);
    assert_eq!(h.case_events(case_id).await?.len(), 5, "each deadline once");
    let late = h
        .cases()
        .await?
        .list_cases(triage::ListCasesRequest {
            filter: Some(triage::CaseFilter {
                sla_states: vec![triage::SlaState::Breached as i32],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(late.cases.len(), 1);
    replica_stop.trigger();
    replica_task.await??;
    Ok(())
}

#[tokio::test]
async fn a_duplicate_shows_on_its_canonical_case_and_a_rejection_is_undone_by_close_and_reopen()
-> anyhow::Result<()> {
    let h = Harness::start(Backend::Sqlite).await?;
    let (report1, case1) = h.report("Stored XSS in comments").await?;
    let (report2, case2) = h.report("XSS in the comment field").await?;
    let (_, case3) = h.report("Not a bug").await?;
    for case in [case1, case2, case3] {
        h.opened(case).await?;
    }
    let mut client = h.triage().await?;
    let start = |case: psirt_domain::CaseId| triage::StartTriageRequest {
        case_id: case.to_string(),
        request_id: "start".to_owned(),
        ..Default::default()
    };
    client.start_triage(start(case2)).await?;
    let self_duplicate = client
        .mark_duplicate(triage::MarkDuplicateRequest {
            case_id: case2.to_string(),
            request_id: "dup-self".to_owned(),
            duplicate_of_case_id: case2.to_string(),
            ..Default::default()
        })
        .await
        .expect_err("not of itself");
    assert_eq!(violations(&self_duplicate), vec!["duplicate_of_case_id".to_owned()]);
    let duplicate = client
        .mark_duplicate(triage::MarkDuplicateRequest {
            case_id: case2.to_string(),
            request_id: "dup".to_owned(),
            duplicate_of_case_id: case1.to_string(),
            note: "same sink".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .case
        .expect("case");
    assert_eq!(duplicate.status, pc::CaseStatus::Duplicate as i32);
    assert_eq!(duplicate.duplicate_of_case_id, case1.to_string());
    let marked: events::CaseMarkedDuplicate = h.case_events(case2).await?.last().expect("event").decode()?;
    assert!(marked.duplicate_of_case_key.starts_with("PSIRT-"));

    let canonical = eventually(DEADLINE, "duplicate on the canonical case", || {
        let h = &h;
        async move {
            let case = h.opened(case1).await.ok()?;
            (!case.duplicate_case_ids.is_empty()).then_some(case)
        }
    })
    .await?;
    assert_eq!(canonical.duplicate_case_ids, vec![case2.to_string()]);
    assert_eq!(canonical.report_ids, vec![report1.to_string(), report2.to_string()]);
    let timeline = h
        .cases()
        .await?
        .get_case_timeline(triage::GetCaseTimelineRequest {
            case_id: case1.to_string(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(
        timeline.entries.last().map(|e| e.event_type.as_str()),
        Some("psirt.events.v1.CaseMarkedDuplicate"),
        "the canonical case's timeline shows the duplicate"
    );

    // reject, close as rejected, reopen: back in triage, the rejection cleared
    client.start_triage(start(case3)).await?;
    let rejected = client
        .reject_case(triage::RejectCaseRequest {
            case_id: case3.to_string(),
            request_id: "reject".to_owned(),
            reason: events::RejectionReason::NotAVulnerability.into(),
            reason_text: "works as designed".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .case
        .expect("case");
    assert_eq!(rejected.rejection_reason, events::RejectionReason::NotAVulnerability as i32);
    let accept = client
        .accept_case(triage::AcceptCaseRequest {
            case_id: case3.to_string(),
            request_id: "a".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("a rejected case cannot be accepted");
    assert_eq!(accept.code(), Code::FailedPrecondition);
    assert!(accept.message().contains("REJECTED"), "{}", accept.message());
    let wrong = client
        .close_case(triage::CloseCaseRequest {
            case_id: case3.to_string(),
            request_id: "close-wrong".to_owned(),
            resolution: events::CaseResolution::Fixed.into(),
            root_cause: "none".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("resolution must fit");
    assert_eq!(violations(&wrong), vec!["resolution".to_owned()]);
    let closed = client
        .close_case(triage::CloseCaseRequest {
            case_id: case3.to_string(),
            request_id: "close".to_owned(),
            resolution: events::CaseResolution::Rejected.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .case
        .expect("case");
    assert_eq!(closed.status, pc::CaseStatus::Closed as i32);
    assert!(closed.closed_at.is_some());
    let assign = client
        .assign_case(triage::AssignCaseRequest {
            case_id: case3.to_string(),
            request_id: "late".to_owned(),
            assignee: "alice".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("closed");
    assert_eq!(assign.code(), Code::FailedPrecondition);
    assert!(assign.message().contains("CLOSED"), "{}", assign.message());
    let reopened = client
        .reopen_case(triage::ReopenCaseRequest {
            case_id: case3.to_string(),
            request_id: "reopen".to_owned(),
            reason: "new proof of concept".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .case
        .expect("case");
    assert_eq!(reopened.status, pc::CaseStatus::Triage as i32);
    assert_eq!(reopened.reopen_count, 1);
    assert_eq!(reopened.rejection_reason, 0);
    assert!(reopened.closed_at.is_none());
    Ok(())
}

#[tokio::test]
async fn get_case_reads_its_own_writes_by_id_and_by_key() -> anyhow::Result<()> {
    let h = Harness::start(Backend::Sqlite).await?;
    let (_, case_id) = h.report("Read your writes").await?;
    let opened = h.opened(case_id).await?;
    let mut commands = h.triage().await?;
    let mut cases = h.cases().await?;
    // A key is known to the read model once the case is projected.
    eventually(DEADLINE, "case visible by key", || {
        let mut cases = cases.clone();
        let key = opened.case_key.clone();
        async move {
            cases
                .get_case(triage::GetCaseRequest {
                    lookup: Some(triage::get_case_request::Lookup::CaseKey(key)),
                })
                .await
                .ok()
        }
    })
    .await?;
    for (round, assignee) in ["alice", "bob", "carol"].iter().enumerate() {
        let updated = commands
            .assign_case(triage::AssignCaseRequest {
                case_id: case_id.to_string(),
                request_id: format!("ryw-{round}"),
                assignee: (*assignee).to_owned(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .case
            .expect("case");
        // immediately, without waiting for the projection
        let by_key = cases
            .get_case(triage::GetCaseRequest {
                lookup: Some(triage::get_case_request::Lookup::CaseKey(opened.case_key.clone())),
            })
            .await?
            .into_inner()
            .case
            .expect("case");
        assert_eq!(by_key.assignee, *assignee, "by key, round {round}");
        assert_eq!(by_key.version, updated.version);
        let by_id = cases
            .get_case(triage::GetCaseRequest {
                lookup: Some(triage::get_case_request::Lookup::CaseId(case_id.to_string())),
            })
            .await?
            .into_inner()
            .case
            .expect("case");
        assert_eq!(by_id.assignee, *assignee, "by id, round {round}");
    }
    Ok(())
}

/// The case as the read model lists it.
async fn listed(h: &Harness, case_id: psirt_domain::CaseId) -> Option<triage::Case> {
    let page = h
        .cases()
        .await
        .ok()?
        .list_cases(triage::ListCasesRequest { page_size: 10, ..Default::default() })
        .await
        .ok()?
        .into_inner();
    page.cases.into_iter().find(|c| c.case_id == case_id.to_string())
}

#[tokio::test]
async fn an_acknowledgement_before_the_case_opened_stops_the_clock_also_after_a_rebuild() -> anyhow::Result<()>
{
    for backend in BACKENDS {
        let nats = psirt_testkit::NatsServer::start().await?;
        let db = psirt_testkit::TestDatabase::new(backend).await?;
        // Intake's events land before triage runs: received, then acknowledged.
        let detached = Harness::detached(nats, db).await?;
        let (report, case_id) = detached.report("Path traversal in the file API").await?;
        let acknowledged_at = time::OffsetDateTime::now_utc();
        let ack = events::ReportAcknowledged {
            report_id: report.to_string(),
            case_id: case_id.to_string(),
            request_id: "ack-1".to_owned(),
            message: String::new(),
            acknowledged_at: Some(psirt_triage::mapping::timestamp(acknowledged_at)),
        };
        let new = psirt_eventstore::NewEvent::from_message(
            psirt_domain::EventId::derive(report.into(), "acknowledged").into(),
            format!("psirt.evt.report.{report}"),
            &ack,
            psirt_eventstore::Metadata::default(),
        );
        detached.store.append(new, psirt_eventstore::ExpectedVersion::Any).await?;
        let Harness { nats, db, .. } = detached;
        let mut h = Box::pin(Harness::start_on(nats, db, AuthMode::None)).await?;
        let met = |case: &triage::Case| {
            case.sla_clocks
                .iter()
                .find(|c| c.clock == events::SlaClock::Acknowledge as i32)
                .and_then(|c| c.met_at)
                .map(|t| t.seconds)
        };
        let case = eventually(DEADLINE, "the opened case with its acknowledgement", || async {
            listed(&h, case_id).await.filter(|c| met(c).is_some())
        })
        .await?;
        assert_eq!(met(&case), Some(acknowledged_at.unix_timestamp()), "{backend:?}");
        assert_eq!(
            case.sla_clocks.iter().find(|c| c.clock == events::SlaClock::Acknowledge as i32).map(|c| c.state),
            Some(triage::SlaState::Met as i32)
        );
        // A rebuild (the early acknowledgement table is reset and refilled) agrees.
        h.stop().await?;
        // One event per batch: the acknowledgement and the opening are
        // folded in different batches, the opening while the
        // acknowledgement's batch may still be committing.
        let mut config = h.config();
        config.projection.rebuild_batch_size = 1;
        psirt_triage::rebuild(&config, |_, _| {}).await?;
        let h = Box::pin(h.restart()).await?;
        let rebuilt =
            eventually(DEADLINE, "the rebuilt case", || async { listed(&h, case_id).await }).await?;
        assert_eq!(met(&rebuilt), Some(acknowledged_at.unix_timestamp()), "{backend:?} after the rebuild");
    }
    Ok(())
}

/// The indexes an offline rebuild builds at its end instead of row by row.
const DEFERRED_INDEXES: [&str; 5] = [
    "triage_case_events_key",
    "triage_cases_opened",
    "triage_cases_status",
    "triage_cases_assignee",
    "triage_case_products_product",
];

/// Which of [`DEFERRED_INDEXES`] the database has.
async fn deferred_indexes_present(pool: &sqlx::AnyPool, backend: Backend) -> anyhow::Result<Vec<String>> {
    let sql = match backend {
        Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'index' AND name = $1",
        Backend::Postgres => "SELECT indexname::text FROM pg_indexes WHERE indexname = $1",
    };
    let mut present = Vec::new();
    for name in DEFERRED_INDEXES {
        let found: Option<(String,)> = sqlx::query_as(sql).bind(name).fetch_optional(pool).await?;
        present.extend(found.map(|(n,)| n));
    }
    Ok(present)
}

#[tokio::test]
async fn an_offline_rebuild_builds_its_deferred_indexes_and_a_start_restores_lost_ones() -> anyhow::Result<()>
{
    for backend in BACKENDS {
        let mut h = Harness::start(backend).await?;
        let (_, case_id) = h.report("Heap overflow in the parser").await?;
        let opened = h.opened(case_id).await?;
        h.case_at(case_id, opened.version).await?;
        h.stop().await?;
        let config = h.config();
        let pool = psirt_kit::backbone::open_database(&config.database).await?;
        assert_eq!(
            deferred_indexes_present(&pool, backend).await?,
            DEFERRED_INDEXES,
            "{backend:?}: migrated"
        );

        let total = psirt_triage::rebuild(&config, |_, _| {}).await?;
        assert!(total >= opened.version);
        assert_eq!(
            deferred_indexes_present(&pool, backend).await?,
            DEFERRED_INDEXES,
            "{backend:?}: built again at the end of the rebuild"
        );

        // A rebuild killed before its end leaves them dropped; the next
        // start of the service creates them before its first batch.
        for name in DEFERRED_INDEXES {
            sqlx::query(&format!("DROP INDEX {name}")).execute(&pool).await?;
        }
        assert!(deferred_indexes_present(&pool, backend).await?.is_empty());
        let h = h.restart().await?;
        let restored = eventually(DEADLINE, "indexes restored", || {
            let pool = &pool;
            async move {
                let present = deferred_indexes_present(pool, backend).await.ok()?;
                (present.len() == DEFERRED_INDEXES.len()).then_some(present)
            }
        })
        .await?;
        assert_eq!(restored, DEFERRED_INDEXES, "{backend:?}");
        // the timeline key is unique again: the live path's conflict target
        let again = sqlx::query(
            "INSERT INTO triage_case_events (case_id, sequence, event_type, occurred_at_ms)
             SELECT case_id, sequence, event_type, occurred_at_ms FROM triage_case_events",
        )
        .execute(&pool)
        .await;
        assert!(again.is_err(), "{backend:?}: a second row for a (case, sequence) is refused");
        let mut cases = h.cases().await?;
        let timeline = cases
            .get_case_timeline(triage::GetCaseTimelineRequest {
                case_id: case_id.to_string(),
                page_size: 100,
                page_token: String::new(),
            })
            .await?
            .into_inner();
        assert!(!timeline.entries.is_empty(), "{backend:?}: the timeline reads after the rebuild");
        pool.close().await;
    }
    Ok(())
}

#[tokio::test]
async fn the_timeline_keeps_its_rows_when_its_key_becomes_a_unique_index() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let db = psirt_testkit::TestDatabase::new(backend).await?;
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(db.url()).await?;
        // A database as the release before migration 0005 left it: the same
        // migration files (so the same checksums), up to 0004.
        let dir = tempfile::tempdir()?;
        for m in psirt_triage::readmodel::MIGRATOR.iter().filter(|m| m.version <= 4) {
            let file = format!("{:04}_{}.sql", m.version, m.description.replace(' ', "_"));
            std::fs::write(dir.path().join(file), m.sql.as_bytes())?;
        }
        sqlx::migrate::Migrator::new(dir.path()).await?.run(&pool).await?;
        sqlx::query(
            "INSERT INTO triage_case_events (case_id, sequence, event_type, occurred_at_ms)
             VALUES ('c1', 1, 'psirt.events.v1.CaseOpened', 10), ('c1', 4, 'psirt.events.v1.CaseAssigned', 40),
                    ('c2', 2, 'psirt.events.v1.CaseOpened', 20)",
        )
        .execute(&pool)
        .await?;

        psirt_triage::readmodel::MIGRATOR.run(&pool).await?;
        let rows: Vec<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT case_id, sequence, event_type, occurred_at_ms FROM triage_case_events ORDER BY case_id, sequence",
        )
        .fetch_all(&pool)
        .await?;
        assert_eq!(
            rows,
            vec![
                ("c1".to_owned(), 1, "psirt.events.v1.CaseOpened".to_owned(), 10),
                ("c1".to_owned(), 4, "psirt.events.v1.CaseAssigned".to_owned(), 40),
                ("c2".to_owned(), 2, "psirt.events.v1.CaseOpened".to_owned(), 20),
            ],
            "{backend:?}: every row carried over"
        );
        // the key holds as a unique index: the live path's conflict target
        sqlx::query(
            "INSERT INTO triage_case_events (case_id, sequence, event_type, occurred_at_ms)
             VALUES ('c1', 4, 'psirt.events.v1.CaseAssigned', 40) ON CONFLICT (case_id, sequence) DO NOTHING",
        )
        .execute(&pool)
        .await?;
        let count: (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM triage_case_events").fetch_one(&pool).await?;
        assert_eq!(count.0, 3, "{backend:?}");
        pool.close().await;
    }
    Ok(())
}

/// The case as `GetCase` by id answers it.
async fn get_by_id(h: &Harness, case_id: psirt_domain::CaseId) -> Option<triage::Case> {
    let mut cases = h.cases().await.ok()?;
    let request = triage::GetCaseRequest {
        lookup: Some(triage::get_case_request::Lookup::CaseId(case_id.to_string())),
    };
    cases.get_case(request).await.ok()?.into_inner().case
}

/// The tickets the notification service linked in Jira or ServiceNow show on the
/// case view (`Case.external_tickets`), with the tracker's status as its updates
/// tell it, also after a rebuild.
#[tokio::test]
async fn the_case_view_lists_its_tracker_tickets_with_their_status() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let mut h = Box::pin(Harness::start(backend)).await?;
        let (_, case_id) = h.report("Heap overflow in the image decoder").await?;
        h.opened(case_id).await?;
        let link = uuid::Uuid::now_v7();
        let subject = format!("psirt.evt.ticket.{link}");
        let at = psirt_triage::mapping::timestamp(time::OffsetDateTime::now_utc());
        let linked = events::ExternalTicketLinked {
            link_id: link.to_string(),
            case_id: case_id.to_string(),
            action_id: String::new(),
            system: events::TicketSystem::Jira.into(),
            key: "SEC-42".to_owned(),
            url: "https://jira.example.com/browse/SEC-42".to_owned(),
            sys_id: String::new(),
            linked_at: Some(at),
        };
        let updated = |status: &str, category: events::TicketStatusCategory| events::ExternalTicketUpdated {
            link_id: link.to_string(),
            case_id: case_id.to_string(),
            system: events::TicketSystem::Jira.into(),
            key: "SEC-42".to_owned(),
            direction: events::TicketUpdateDirection::Inbound.into(),
            external_status: status.to_owned(),
            status_category: category.into(),
            updated_at: Some(at),
            ..Default::default()
        };
        let append = |message: &dyn Fn(uuid::Uuid, String) -> psirt_eventstore::NewEvent| {
            let new = message(uuid::Uuid::now_v7(), subject.clone());
            let store = h.store.clone();
            async move { store.append(new, psirt_eventstore::ExpectedVersion::Any).await }
        };
        let meta = psirt_eventstore::Metadata::default;
        append(&|id, s| psirt_eventstore::NewEvent::from_message(id, s, &linked, meta())).await?;
        let review = updated("In Review", events::TicketStatusCategory::InProgress);
        append(&|id, s| psirt_eventstore::NewEvent::from_message(id, s, &review, meta())).await?;

        let ticket_of = |case: &triage::Case| case.external_tickets.first().cloned();
        let case = eventually(DEADLINE, "the ticket on the case view", || async {
            get_by_id(&h, case_id)
                .await
                .filter(|c| ticket_of(c).is_some_and(|t| t.external_status == "In Review"))
        })
        .await?;
        assert_eq!(case.external_tickets.len(), 1, "{backend:?}: {case:?}");
        let ticket = ticket_of(&case).expect("ticket");
        assert_eq!(ticket.key, "SEC-42");
        assert_eq!(ticket.url, "https://jira.example.com/browse/SEC-42");
        assert_eq!(ticket.system, events::TicketSystem::Jira as i32);
        assert_eq!(ticket.status_category, events::TicketStatusCategory::InProgress as i32);
        // The list shows the same view.
        let listed_case =
            eventually(DEADLINE, "the listed case", || async { listed(&h, case_id).await }).await?;
        assert_eq!(listed_case.external_tickets, case.external_tickets, "{backend:?}");

        // The tracker lost the ticket: it stays listed, as deleted, with its last status.
        let gone = updated("", events::TicketStatusCategory::Deleted);
        append(&|id, s| psirt_eventstore::NewEvent::from_message(id, s, &gone, meta())).await?;
        let case = eventually(DEADLINE, "the ticket marked deleted", || async {
            get_by_id(&h, case_id).await.filter(|c| {
                ticket_of(c)
                    .is_some_and(|t| t.status_category == events::TicketStatusCategory::Deleted as i32)
            })
        })
        .await?;
        assert_eq!(ticket_of(&case).map(|t| t.external_status), Some("In Review".to_owned()));

        // A rebuild folds the same.
        h.stop().await?;
        psirt_triage::rebuild(&h.config(), |_, _| {}).await?;
        let h = Box::pin(h.restart()).await?;
        let rebuilt = eventually(DEADLINE, "the rebuilt case", || async {
            listed(&h, case_id).await.filter(|c| !c.external_tickets.is_empty())
        })
        .await?;
        assert_eq!(rebuilt.external_tickets, case.external_tickets, "{backend:?} after the rebuild");
    }
    Ok(())
}
