//! The JetStream facts the event store relies on, tested against a real
//! nats-server rather than assumed.

use bytes::Bytes;
use psirt_eventstore::{
    EventStore, ExpectedVersion, Metadata, NewEvent, StoreError, StreamSettings, subject,
};
use psirt_testkit::NatsServer;
use uuid::Uuid;

fn event(subject: &str, body: &str) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        subject: subject.to_owned(),
        event_type: "psirt.test.v1.Thing".to_owned(),
        schema_version: 1,
        payload: Bytes::from(body.to_owned()),
        metadata: Metadata {
            causation_id: Some("cause-1".to_owned()),
            correlation_id: Some("corr-1".to_owned()),
            actor: Some("alice".to_owned()),
            actor_scopes: None,
        },
    }
}

async fn store(nats: &NatsServer) -> anyhow::Result<EventStore> {
    Ok(EventStore::open(nats.connect().await?, &StreamSettings::managed()).await?)
}

#[tokio::test]
async fn append_then_load_returns_events_in_order_with_envelope() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let store = store(&nats).await?;
    let subj = subject("report", Uuid::now_v7());
    let first = store.append(event(&subj, "one"), ExpectedVersion::NoStream).await?;
    let second = store.append(event(&subj, "two"), ExpectedVersion::Exactly(first.sequence)).await?;
    // another aggregate in between must not show up
    store.append(event(&subject("report", Uuid::now_v7()), "other"), ExpectedVersion::NoStream).await?;
    let third = store.append(event(&subj, "three"), ExpectedVersion::Exactly(second.sequence)).await?;

    let loaded = store.load(&subj).await?;
    let bodies: Vec<_> = loaded.iter().map(|e| e.payload.clone()).collect();
    assert_eq!(bodies, vec![Bytes::from("one"), Bytes::from("two"), Bytes::from("three")]);
    assert_eq!(
        loaded.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![first.sequence, second.sequence, third.sequence]
    );
    let e = &loaded[0];
    assert_eq!(e.event_type, "psirt.test.v1.Thing");
    assert_eq!(e.schema_version, 1);
    assert_eq!(e.metadata.actor.as_deref(), Some("alice"));
    assert_eq!(e.metadata.causation_id.as_deref(), Some("cause-1"));
    assert_eq!(e.metadata.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(e.metadata.actor_scopes, None, "no scopes given: no header, unknown");
    assert!(e.headers.get(psirt_eventstore::headers::ACTOR_SCOPES).is_none());
    assert!(e.id.is_some());
    assert_eq!(store.last_sequence(&subj).await?, Some(third.sequence));
    assert!(store.load(&subject("report", Uuid::now_v7())).await?.is_empty());

    // what a read model at `first` has not seen yet
    let after: Vec<u64> = store.load_after(&subj, first.sequence).await?.iter().map(|e| e.sequence).collect();
    assert_eq!(after, vec![second.sequence, third.sequence]);
    assert!(store.load_after(&subj, third.sequence).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_stream_with_limits_does_not_claim_to_keep_every_event() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let unlimited = store(&nats).await?;
    assert!(unlimited.keeps_every_event(), "the default stream keeps events forever");
    let other = NatsServer::start().await?;
    let limited = StreamSettings { max_age_secs: 3600, allow_expiry: true, ..StreamSettings::managed() };
    let aging = EventStore::open(other.connect().await?, &limited).await?;
    assert!(!aging.keeps_every_event(), "events older than an hour are removed: absence proves nothing");
    Ok(())
}

#[tokio::test]
async fn stale_expectation_is_a_typed_conflict() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let store = store(&nats).await?;
    let subj = subject("case", Uuid::now_v7());
    let first = store.append(event(&subj, "one"), ExpectedVersion::NoStream).await?;
    let second = store.append(event(&subj, "two"), ExpectedVersion::Exactly(first.sequence)).await?;

    let err =
        store.append(event(&subj, "stale"), ExpectedVersion::Exactly(first.sequence)).await.unwrap_err();
    match err {
        StoreError::Conflict { expected, actual, .. } => {
            assert_eq!(expected, ExpectedVersion::Exactly(first.sequence));
            assert_eq!(actual, Some(second.sequence));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let err = store.append(event(&subj, "new?"), ExpectedVersion::NoStream).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(store.load(&subj).await?.len(), 2, "nothing was appended by the stale writers");
    Ok(())
}

#[tokio::test]
async fn same_message_id_is_stored_once() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let store = store(&nats).await?;
    let subj = subject("report", Uuid::now_v7());
    let e = event(&subj, "once");
    let first = store.append(e.clone(), ExpectedVersion::Any).await?;
    let again = store.append(e.clone(), ExpectedVersion::Any).await?;
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.sequence, first.sequence);
    // a retry that still carries its original expectation is a duplicate too,
    // not a conflict (JetStream checks the expectation first; the store
    // recognises its own event)
    let retried = store.append(e, ExpectedVersion::NoStream).await?;
    assert!(retried.duplicate);
    assert_eq!(store.load(&subj).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn concurrent_writers_with_the_same_expectation_exactly_one_wins() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let store = store(&nats).await?;
    for round in 0..5 {
        let subj = subject("case", Uuid::now_v7());
        let base = store.append(event(&subj, "base"), ExpectedVersion::NoStream).await?;
        let writers = (0..8).map(|i| {
            let store = store.clone();
            let subj = subj.clone();
            tokio::spawn(async move {
                store
                    .append(event(&subj, &format!("writer {i}")), ExpectedVersion::Exactly(base.sequence))
                    .await
            })
        });
        let results = futures::future::join_all(writers).await;
        let mut wins = 0;
        let mut conflicts = 0;
        for result in results {
            match result? {
                Ok(_) => wins += 1,
                Err(StoreError::Conflict { .. }) => conflicts += 1,
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
        assert_eq!((wins, conflicts), (1, 7), "round {round}");
        assert_eq!(store.load(&subj).await?.len(), 2);
    }
    Ok(())
}

#[tokio::test]
async fn a_service_never_changes_the_stream_it_finds() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let client = nats.connect().await?;
    let settings = StreamSettings { duplicate_window_secs: 60, ..StreamSettings::managed() };
    let a = EventStore::open(client.clone(), &settings).await?;
    let subj = subject("report", Uuid::now_v7());
    a.append(event(&subj, "kept"), ExpectedVersion::NoStream).await?;
    // opening again with the same settings changes nothing and keeps events
    let b = EventStore::open(client.clone(), &settings).await?;
    assert_eq!(b.load(&subj).await?.len(), 1);

    // other settings: refused with one line per difference, stream untouched
    let changed = StreamSettings {
        duplicate_window_secs: 90,
        replicas: 1,
        max_age_secs: 3600,
        allow_expiry: true,
        max_msg_size: 4096,
        ..settings.clone()
    };
    let err = EventStore::open(client.clone(), &changed).await.err().expect("a mismatch is refused");
    let StoreError::Mismatch { differences, .. } = &err else { panic!("expected a mismatch, got {err:?}") };
    assert_eq!(differences.len(), 3, "{differences:?}");
    assert!(differences[0].starts_with("max_age: stream has 0s (forever), wanted 3600s"), "{differences:?}");
    assert!(differences[1].starts_with("duplicate_window: stream has 60s, wanted 90s"), "{differences:?}");
    assert!(differences[2].starts_with("max_msg_size: stream has 1048576, wanted 4096"), "{differences:?}");
    assert!(err.to_string().contains("psirtctl admin stream"), "{err}");
    let js = async_nats::jetstream::new(client.clone());
    let info = js.get_stream("PSIRT_EVENTS").await?.info().await?.clone();
    assert_eq!(info.config.duplicate_window, std::time::Duration::from_secs(60));
    assert_eq!(info.config.max_age, std::time::Duration::ZERO);
    assert_eq!(info.state.messages, 1);

    // an expiring stream must be meant
    let careless = StreamSettings { max_age_secs: 3600, ..settings.clone() };
    let err = EventStore::open(client.clone(), &careless).await.err().expect("max_age without allow_expiry");
    assert!(err.to_string().contains("allow_expiry"), "{err}");

    // the administrator's apply changes it; then the service opens again
    let plan = psirt_eventstore::apply_stream(&js, &changed).await?;
    assert!(matches!(plan, psirt_eventstore::StreamPlan::Update { .. }), "{plan:?}");
    EventStore::open(client.clone(), &changed).await?;
    let info = js.get_stream("PSIRT_EVENTS").await?.info().await?.clone();
    assert_eq!(info.config.duplicate_window, std::time::Duration::from_secs(90));
    assert!(info.config.allow_direct && info.config.deny_delete && info.config.deny_purge);
    assert_eq!(info.state.messages, 1);
    Ok(())
}

#[tokio::test]
async fn a_missing_stream_is_created_only_when_managed() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let client = nats.connect().await?;
    let err = EventStore::open(client.clone(), &StreamSettings::default()).await.err().expect("not managed");
    assert!(matches!(err, StoreError::Missing(_)), "{err:?}");
    assert!(err.to_string().contains("psirtctl admin stream apply"), "{err}");
    let js = async_nats::jetstream::new(client.clone());
    assert!(js.get_stream("PSIRT_EVENTS").await.is_err(), "nothing was created");
    EventStore::open(client.clone(), &StreamSettings::managed()).await?;
    EventStore::open(client, &StreamSettings::default()).await?;
    Ok(())
}

#[tokio::test]
async fn acknowledged_events_survive_a_server_kill() -> anyhow::Result<()> {
    let mut nats = NatsServer::start().await?;
    let subj = subject("report", Uuid::now_v7());
    {
        let store = store(&nats).await?;
        store.append(event(&subj, "durable"), ExpectedVersion::NoStream).await?;
    }
    nats.kill();
    nats.restart().await?;
    let store = store(&nats).await?;
    let loaded = store.load(&subj).await?;
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].payload, Bytes::from("durable"));
    Ok(())
}

/// The actor's product scopes are part of the audit trail: written as the
/// `Psirt-Actor-Scopes` header when given, read back into the metadata.
#[tokio::test]
async fn actor_scopes_round_trip_as_a_header() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let store = store(&nats).await?;
    let subj = subject("case", Uuid::now_v7());
    let mut scoped = event(&subj, "scoped");
    scoped.metadata.actor_scopes = Some("Acme Router,pkg:npm/@acme/".to_owned());
    let first = store.append(scoped, ExpectedVersion::NoStream).await?;
    let mut none = event(&subj, "no scope at all");
    none.metadata.actor_scopes = Some(String::new());
    store.append(none, ExpectedVersion::Exactly(first.sequence)).await?;

    let loaded = store.load(&subj).await?;
    assert_eq!(loaded[0].metadata.actor_scopes.as_deref(), Some("Acme Router,pkg:npm/@acme/"));
    assert_eq!(
        loaded[0].headers.get(psirt_eventstore::headers::ACTOR_SCOPES).map(|v| v.as_str()),
        Some("Acme Router,pkg:npm/@acme/")
    );
    assert_eq!(loaded[1].metadata.actor_scopes.as_deref(), Some(""), "no scope is recorded as such");
    let direct = store.get(first.sequence).await?.expect("stored");
    assert_eq!(direct.metadata.actor_scopes.as_deref(), Some("Acme Router,pkg:npm/@acme/"));
    Ok(())
}
