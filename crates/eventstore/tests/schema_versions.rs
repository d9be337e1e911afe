//! Decoding honours the envelope's schema version: today's decodes, an older
//! one is upcast step by step, a newer one (or none that parses) is refused
//! with a typed error that names both versions.

use bytes::Bytes;
use psirt_eventstore::{DecodeError, Metadata, NewEvent, RecordedEvent, headers};
use psirt_proto::EventSchema;
use uuid::Uuid;

/// Version 1 of a test event: one free-text `who`.
#[derive(Clone, PartialEq, prost::Message)]
struct GreetedV1 {
    #[prost(string, tag = "1")]
    who: String,
}

/// Version 2 splits it: `who` became `name`, plus a `greeting` (field 2).
#[derive(Clone, PartialEq, prost::Message)]
struct GreetedV2 {
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "2")]
    greeting: String,
}

/// Version 3 (today's): adds `loud`.
#[derive(Clone, PartialEq, prost::Message)]
struct Greeted {
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "2")]
    greeting: String,
    #[prost(bool, tag = "4")]
    loud: bool,
}

impl prost::Name for Greeted {
    const NAME: &'static str = "Greeted";
    const PACKAGE: &'static str = "psirt.test.v1";
}

impl EventSchema for Greeted {
    const VERSION: u32 = 3;

    fn upcast(from: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
        use prost::Message;
        match from {
            1 => {
                let v1 = GreetedV1::decode(payload).map_err(|e| e.to_string())?;
                Ok(GreetedV2 { name: v1.who, greeting: "hello".into() }.encode_to_vec())
            }
            // v2 → v3 adds a field whose default is right: the bytes stay.
            2 => Ok(payload.to_vec()),
            other => Err(format!("no upcaster from {other}")),
        }
    }
}

fn recorded(version: u32, payload: Vec<u8>) -> RecordedEvent {
    let new = NewEvent {
        id: Uuid::now_v7(),
        subject: "psirt.evt.report.x".into(),
        event_type: "psirt.test.v1.Greeted".into(),
        schema_version: version,
        payload: Bytes::from(payload),
        metadata: Metadata::default(),
    };
    RecordedEvent::from_new(&new, 42)
}

#[test]
fn today_s_version_decodes_and_older_ones_are_upcast_step_by_step() {
    use prost::Message;
    let today = Greeted { name: "ada".into(), greeting: "hi".into(), loud: true };
    assert_eq!(recorded(3, today.encode_to_vec()).decode::<Greeted>().unwrap(), today);

    let v1 = recorded(1, GreetedV1 { who: "ada".into() }.encode_to_vec()).decode::<Greeted>().unwrap();
    assert_eq!(v1, Greeted { name: "ada".into(), greeting: "hello".into(), loud: false });

    let v2 = GreetedV2 { name: "bob".into(), greeting: "hey".into() }.encode_to_vec();
    assert_eq!(
        recorded(2, v2).decode::<Greeted>().unwrap(),
        Greeted { name: "bob".into(), greeting: "hey".into(), loud: false }
    );

    // Read as today's shape, v1 bytes would have lost the name: that is
    // what the version prevents.
    let misread = Greeted::decode(GreetedV1 { who: "ada".into() }.encode_to_vec().as_slice()).unwrap();
    assert_eq!(misread.name, "");
}

#[test]
fn a_newer_version_is_refused_never_decoded_as_today_s() {
    use prost::Message;
    let bytes = Greeted { name: "ada".into(), greeting: "hi".into(), loud: true }.encode_to_vec();
    let err = recorded(4, bytes.clone()).decode::<Greeted>().unwrap_err();
    assert_eq!(
        err,
        DecodeError::NewerVersion {
            event_type: "psirt.test.v1.Greeted".into(),
            sequence: 42,
            version: 4,
            known: 3
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("schema version 4") && text.contains("up to 3") && text.contains("parked"),
        "{text}"
    );
    // Version 0 is no version at all.
    assert!(matches!(
        recorded(0, bytes).decode::<Greeted>(),
        Err(DecodeError::NewerVersion { version: 0, .. })
    ));
}

#[test]
fn a_version_header_that_is_not_a_number_never_decodes() {
    let mut map = async_nats::HeaderMap::new();
    map.insert(headers::EVENT_TYPE, "psirt.test.v1.Greeted");
    map.insert(headers::SCHEMA_VERSION, "two");
    let event = RecordedEvent::from_parts(
        7,
        "psirt.evt.report.x".into(),
        map,
        Bytes::new(),
        time::OffsetDateTime::now_utc(),
    );
    assert_eq!(event.schema_version, 0);
    assert!(matches!(event.decode::<Greeted>(), Err(DecodeError::NewerVersion { .. })));

    let mut map = async_nats::HeaderMap::new();
    map.insert(headers::EVENT_TYPE, "psirt.test.v1.Greeted");
    let unversioned = RecordedEvent::from_parts(
        8,
        "psirt.evt.report.x".into(),
        map,
        Bytes::new(),
        time::OffsetDateTime::now_utc(),
    );
    assert_eq!(unversioned.schema_version, 1, "no header: version 1, upcast like any v1");
}

#[test]
fn a_failing_upcaster_is_a_payload_error_naming_the_step() {
    let err = recorded(1, vec![0xff, 0xff]).decode::<Greeted>().unwrap_err();
    match err {
        DecodeError::Payload { message, sequence, .. } => {
            assert_eq!(sequence, 42);
            assert!(message.contains("from schema version 1"), "{message}");
        }
        other => panic!("expected a payload error, got {other:?}"),
    }
}

#[test]
fn every_event_of_every_aggregate_has_a_schema_version() {
    for aggregate in psirt_eventstore::ownership::AGGREGATES {
        for name in aggregate.event_types {
            let full = format!("psirt.events.v1.{name}");
            assert!(psirt_proto::schema::version_of(&full).is_some(), "{full} has no schema version");
        }
    }
    for name in psirt_proto::schema::EVENT_NAMES {
        assert!(
            psirt_eventstore::ownership::AGGREGATES.iter().any(|a| a.event_types.contains(name)),
            "{name} has a schema version but no aggregate carries it"
        );
    }
    assert_eq!(psirt_proto::schema::version_of("psirt.events.v1.Nope"), None);
    assert_eq!(psirt_proto::schema::version_of("ReportReceived"), None);
}
