//! `CaseService.WatchCases` (filters, resume, limits) and
//! `psirt.admin.v1.AdminService/RebuildReadModel`, end to end in-process:
//! real nats-server, real PostgreSQL and SQLite, real gRPC.

mod common;

use common::{DEADLINE, Harness, token, with_token};
use psirt_domain::CaseId;
use psirt_kit::config::AuthMode;
use psirt_proto::admin::{self, admin_service_client::AdminServiceClient};
use psirt_proto::triage::watch_cases_response::Kind;
use psirt_proto::{common as pc, triage};
use psirt_testkit::{BACKENDS, Backend, NatsServer, TestDatabase, eventually};
use tonic::Code;

type Watch = tonic::Streaming<triage::WatchCasesResponse>;

async fn next(watch: &mut Watch) -> anyhow::Result<Kind> {
    tokio::time::timeout(DEADLINE, watch.message())
        .await??
        .and_then(|m| m.kind)
        .ok_or_else(|| anyhow::anyhow!("watch ended"))
}

/// The next change within the deadline, skipping checkpoints.
async fn next_change(watch: &mut Watch) -> anyhow::Result<triage::CaseChange> {
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let Kind::Change(change) = next(watch).await? {
                return Ok(change);
            }
        }
    })
    .await?
}

async fn watch(
    h: &Harness,
    filter: Option<triage::CaseFilter>,
    after: Option<u64>,
) -> Result<Watch, tonic::Status> {
    let mut cases = h.cases().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    Ok(cases.watch_cases(triage::WatchCasesRequest { filter, after_sequence: after }).await?.into_inner())
}

/// Assigns the case and waits until the case view has the assignment.
async fn assign(h: &Harness, case_id: CaseId, who: &str) -> anyhow::Result<triage::Case> {
    let mut client = h.triage().await?;
    let case = client
        .assign_case(triage::AssignCaseRequest {
            case_id: case_id.to_string(),
            request_id: format!("assign-{who}"),
            assignee: who.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .case
        .ok_or_else(|| anyhow::anyhow!("no case"))?;
    h.case_at(case_id, case.version).await
}

/// A case opened from a report and moved to TRIAGE, both in the case view.
async fn case_in_triage(h: &Harness, title: &str) -> anyhow::Result<(CaseId, triage::Case)> {
    let (_, case_id) = h.report(title).await?;
    h.opened(case_id).await?;
    let started = h
        .triage()
        .await?
        .start_triage(triage::StartTriageRequest {
            case_id: case_id.to_string(),
            request_id: "start".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .case
        .ok_or_else(|| anyhow::anyhow!("no case"))?;
    Ok((case_id, h.case_at(case_id, started.version).await?))
}

#[tokio::test]
async fn only_changes_matching_the_filter_are_sent_also_when_a_case_leaves_it() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let h = Harness::start(backend).await?;
        let (case_a, _) = case_in_triage(&h, "Path traversal in the file API").await?;
        let (case_b, _) = case_in_triage(&h, "Weak session ids").await?;
        let alice = Some(triage::CaseFilter { assignee: "alice".to_owned(), ..Default::default() });
        let mut w = watch(&h, alice, None).await?;
        let Kind::Checkpoint(start) = next(&mut w).await? else { anyhow::bail!("a checkpoint first") };
        assert!(start.caught_up);

        // bob's assignment does not match: the first change is alice's
        let to_bob = assign(&h, case_a, "bob").await?;
        let to_alice = assign(&h, case_a, "alice").await?;
        let change = next_change(&mut w).await?;
        assert_eq!(change.sequence, to_alice.last_sequence, "{backend:?}: bob's change is not sent");
        assert!(change.sequence > to_bob.last_sequence);
        assert_eq!(change.event_type, "psirt.events.v1.CaseAssigned");
        assert!(!change.event_id.is_empty());
        assert!(change.matches_filter);
        assert_eq!(change.case.as_ref().map(|c| c.assignee.as_str()), Some("alice"));

        // case B to bob: not sent; case A away from alice: sent, no longer matching
        assign(&h, case_b, "bob").await?;
        let to_carol = assign(&h, case_a, "carol").await?;
        let left = next_change(&mut w).await?;
        assert_eq!(left.sequence, to_carol.last_sequence, "{backend:?}");
        assert_eq!(left.case.as_ref().map(|c| c.case_id.clone()), Some(case_a.to_string()));
        assert!(!left.matches_filter, "{backend:?}: the case left the filter");
    }
    Ok(())
}

#[tokio::test]
async fn a_resumed_watch_replays_every_change_after_its_position_in_order() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let h = Harness::start(backend).await?;
        let (case_id, started) = case_in_triage(&h, "Stored XSS in comments").await?;
        let mut expected = Vec::new();
        for who in ["alice", "bob", "carol"] {
            let case = assign(&h, case_id, who).await?;
            expected.push((case.last_sequence, who.to_owned()));
        }
        // from the position of the triage start: the three assignments, one by one
        let mut w = watch(&h, None, Some(started.last_sequence)).await?;
        let mut seen = Vec::new();
        for _ in 0..3 {
            let change = next_change(&mut w).await?;
            seen.push((change.sequence, change.case.map(|c| c.assignee).unwrap_or_default()));
        }
        assert_eq!(seen, expected, "{backend:?}");
        let Kind::Checkpoint(caught_up) = next(&mut w).await? else { anyhow::bail!("caught up next") };
        assert!(caught_up.caught_up && caught_up.sequence >= expected[2].0);

        // from the second assignment: only the third
        let mut w = watch(&h, None, Some(expected[1].0)).await?;
        let change = next_change(&mut w).await?;
        assert_eq!(
            (change.sequence, change.case.map(|c| c.assignee)),
            (expected[2].0, Some("carol".to_owned()))
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_position_older_than_the_server_can_replay_is_out_of_range() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let mut config = common::config(&nats, &db, AuthMode::None);
    config.watch.buffer_size = 2;
    let h = Box::pin(Harness::start_configured(nats, db, config)).await?;
    let (case_id, started) = case_in_triage(&h, "CSRF on the settings page").await?;
    let mut last = started.clone();
    for who in ["alice", "bob", "carol"] {
        last = assign(&h, case_id, who).await?;
    }
    for old in [0, started.last_sequence] {
        let refused = watch(&h, None, Some(old)).await.expect_err("evicted from the buffer");
        assert_eq!(refused.code(), Code::OutOfRange, "{old}: {refused:?}");
        assert!(refused.message().contains("as_of_sequence"), "tells the client to list again");
    }
    // the last two changes are kept
    let mut w = watch(&h, None, Some(last.last_sequence - 1)).await?;
    assert_eq!(next_change(&mut w).await?.sequence, last.last_sequence);
    Ok(())
}

#[tokio::test]
async fn watches_beyond_the_limit_are_refused_until_one_ends() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let mut config = common::config(&nats, &db, AuthMode::None);
    config.watch.max_watchers = 2;
    let h = Box::pin(Harness::start_configured(nats, db, config)).await?;
    let mut first = watch(&h, None, None).await?;
    let mut second = watch(&h, None, None).await?;
    assert!(matches!(next(&mut first).await?, Kind::Checkpoint(_)));
    assert!(matches!(next(&mut second).await?, Kind::Checkpoint(_)));
    let refused = watch(&h, None, None).await.expect_err("a third watch");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("watch.max_watchers"));
    drop(first);
    eventually(DEADLINE, "a watch slot freed by the ended watch", || async {
        watch(&h, None, None).await.ok()
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn watching_needs_a_reading_role() -> anyhow::Result<()> {
    let h = Harness::start_with(Backend::Sqlite, AuthMode::Jwt).await?;
    let mut cases = h.cases().await?;
    let request = || triage::WatchCasesRequest { filter: None, after_sequence: None };
    let denied = cases
        .watch_cases(with_token(request(), &token("rita", &["reporter"])))
        .await
        .expect_err("reporters see no cases");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut w = cases.watch_cases(with_token(request(), &token("erin", &["engineer"]))).await?.into_inner();
    assert!(matches!(next(&mut w).await?, Kind::Checkpoint(_)));
    Ok(())
}

async fn rebuild(
    client: &mut AdminServiceClient<tonic::transport::Channel>,
    token: &str,
) -> Result<Vec<admin::RebuildReadModelResponse>, tonic::Status> {
    let mut request =
        tonic::Request::new(admin::RebuildReadModelRequest { read_model: "triage-cases".to_owned() });
    if !token.is_empty() {
        request = with_token(request.into_inner(), token);
    }
    let mut stream = client.rebuild_read_model(request).await?.into_inner();
    let mut messages = Vec::new();
    while let Some(message) = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("no progress"))??
    {
        messages.push(message);
    }
    Ok(messages)
}

fn listed(response: triage::ListCasesResponse, case_id: CaseId) -> Option<triage::Case> {
    let mut case = response.cases.into_iter().find(|c| c.case_id == case_id.to_string())?;
    // computed when served
    for c in &mut case.sla_clocks {
        c.state = 0;
    }
    Some(case)
}

#[tokio::test]
async fn an_admin_rebuilds_the_case_view_of_the_running_service() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let h = Harness::start_with(backend, AuthMode::Jwt).await?;
        let admin_token = token("root", &["admin"]);
        let (_, case_id) = h.report("Unauthenticated metrics endpoint").await?;
        let mut triage_client = h.triage().await?;
        let accepted = {
            let id = case_id.to_string();
            let reader = admin_token.clone();
            let mut cases = h.cases().await?;
            eventually(DEADLINE, "case opened", || {
                let mut cases = cases.clone();
                let request = with_token(
                    triage::GetCaseRequest {
                        lookup: Some(triage::get_case_request::Lookup::CaseId(id.clone())),
                    },
                    &reader,
                );
                async move { cases.get_case(request).await.ok() }
            })
            .await?;
            let assigned = triage_client
                .assign_case(with_token(
                    triage::AssignCaseRequest {
                        case_id: id.clone(),
                        request_id: "a1".to_owned(),
                        assignee: "alice".to_owned(),
                        ..Default::default()
                    },
                    &admin_token,
                ))
                .await?
                .into_inner()
                .case
                .expect("case");
            let list = || {
                with_token(triage::ListCasesRequest { page_size: 100, ..Default::default() }, &admin_token)
            };
            eventually(DEADLINE, "assignment in the case view", || {
                let mut cases = cases.clone();
                let request = list();
                async move {
                    let case = listed(cases.list_cases(request).await.ok()?.into_inner(), case_id)?;
                    (case.version >= assigned.version).then_some(case)
                }
            })
            .await?;
            cases.list_cases(list()).await?.into_inner()
        };
        let before = listed(accepted, case_id).expect("listed");

        let mut admin_client = AdminServiceClient::connect(format!("http://{}", h.grpc)).await?;
        let denied =
            rebuild(&mut admin_client, &token("alice", &["analyst"])).await.expect_err("analysts may not");
        assert_eq!(denied.code(), Code::PermissionDenied, "{backend:?}");

        let progress = rebuild(&mut admin_client, &admin_token).await?;
        let last = progress.last().expect("progress");
        assert!(last.done, "{backend:?}: {progress:?}");
        assert_eq!(last.read_model, "triage-cases");
        assert!(last.target_sequence >= before.last_sequence);
        assert!(last.applied_sequence >= last.target_sequence);
        assert!(progress.iter().filter(|p| p.done).count() == 1);

        // the read model itself (ListCases never folds the stream) has the same case
        let mut cases = h.cases().await?;
        let after = listed(
            cases
                .list_cases(with_token(
                    triage::ListCasesRequest { page_size: 100, ..Default::default() },
                    &admin_token,
                ))
                .await?
                .into_inner(),
            case_id,
        )
        .expect("rebuilt");
        assert_eq!(after, before, "{backend:?}: rebuild gives the same case");
        let got = cases
            .get_case(with_token(
                triage::GetCaseRequest {
                    lookup: Some(triage::get_case_request::Lookup::CaseId(case_id.to_string())),
                },
                &admin_token,
            ))
            .await?
            .into_inner()
            .case
            .expect("case");
        assert_eq!(
            (got.case_key, got.assignee, got.last_sequence),
            (before.case_key.clone(), before.assignee.clone(), before.last_sequence)
        );

        // and the projection follows the stream again
        let mut w = cases
            .watch_cases(with_token(
                triage::WatchCasesRequest { filter: None, after_sequence: None },
                &admin_token,
            ))
            .await?
            .into_inner();
        assert!(matches!(next(&mut w).await?, Kind::Checkpoint(_)));
        triage_client
            .escalate_case(with_token(
                triage::EscalateCaseRequest {
                    case_id: case_id.to_string(),
                    request_id: "e1".to_owned(),
                    level: psirt_proto::events::EscalationLevel::Team as i32,
                    reason: "customer impact".to_owned(),
                    ..Default::default()
                },
                &admin_token,
            ))
            .await?;
        let change = next_change(&mut w).await?;
        assert!(change.sequence > before.last_sequence, "{backend:?}: no replayed change is sent again");
        assert_eq!(change.event_type, "psirt.events.v1.CaseEscalated");
        assert_eq!(change.case.map(|c| c.status), Some(pc::CaseStatus::Triage as i32));
    }
    Ok(())
}

#[tokio::test]
async fn a_replica_on_standby_follows_the_read_model_and_refuses_to_rebuild() -> anyhow::Result<()> {
    let h = Harness::start(Backend::Postgres).await?;
    // the first replica's projection holds the lease once it applied something
    let (case_id, _) = case_in_triage(&h, "Directory listing enabled").await?;
    let config = h.config();
    let telemetry = psirt_kit::telemetry::init("psirt-triage-test", &config.log, &config.otel)?;
    let standby = Box::pin(psirt_triage::Application::build(&config, telemetry.metrics())).await?;
    let standby_addr = format!("http://{}", standby.grpc_addr());
    let standby_stop = psirt_kit::Shutdown::new();
    let standby_task = tokio::spawn(standby.run_until_stopped(standby_stop.clone()));

    let mut cases = triage::case_service_client::CaseServiceClient::connect(standby_addr.clone()).await?;
    let mut w = cases
        .watch_cases(triage::WatchCasesRequest { filter: None, after_sequence: None })
        .await?
        .into_inner();
    assert!(matches!(next(&mut w).await?, Kind::Checkpoint(_)));
    let assigned = assign(&h, case_id, "alice").await?;
    let change = next_change(&mut w).await?;
    assert_eq!(change.sequence, assigned.last_sequence);
    assert_eq!(change.event_type, "psirt.events.v1.CaseAssigned");
    assert_eq!(change.case.map(|c| c.assignee), Some("alice".to_owned()));

    // resetting here while the other replica applies would leave a hole
    let mut admin_client = AdminServiceClient::connect(standby_addr).await?;
    let refused = rebuild(&mut admin_client, "").await.expect_err("the lease is elsewhere");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("lease"));
    // nothing was reset: the case view still has the case
    let listed = h.cases().await?.list_cases(triage::ListCasesRequest::default()).await?.into_inner();
    assert!(listed.cases.iter().any(|c| c.case_id == case_id.to_string()));

    standby_stop.trigger();
    standby_task.await??;
    Ok(())
}
