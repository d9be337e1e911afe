//! Properties of reading stored events back, which any writer on the stream
//! may have produced: the envelope (`RecordedEvent::from_parts`, the pure
//! part of every load: headers, payload and sequence of a stream message),
//! the screening of foreign events (`ownership::check`), decoding a payload
//! of arbitrary bytes as every event of the platform
//! (`RecordedEvent::decode`), and the schema versions and upcasters of
//! `psirt_proto::schema`. Whatever the bytes, the answer is a value or a
//! typed `DecodeError`, never a panic, and never a message decoded under a
//! type or version it does not have.

use std::fmt::Debug;
use std::str::FromStr;

use async_nats::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use proptest::prelude::*;
use psirt_eventstore::{DecodeError, RecordedEvent, headers, ownership};
use psirt_proto::schema::{EVENT_NAMES, upcast_to_current, version_of};
use psirt_proto::{EVENTS_PACKAGE, EventSchema, events};
use time::OffsetDateTime;
use uuid::Uuid;

fn full(name: &str) -> String {
    format!("{EVENTS_PACKAGE}.{name}")
}

/// Text a header value may carry (NATS headers end at a line break).
fn header_text() -> impl Strategy<Value = String> {
    "[^\r\n]{0,40}"
}

/// Bytes shaped like protobuf: fields with small numbers, varints and
/// length-delimited values (nested or not), so that decoding gets past the
/// first byte more often than with random bytes; or random bytes.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let field = (1..16u64, 0..6u64, any::<u64>(), proptest::collection::vec(any::<u8>(), 0..24)).prop_map(
        |(number, wire, value, bytes)| {
            let mut out = Vec::new();
            varint(number << 3 | wire, &mut out);
            match wire {
                0 => varint(value, &mut out),
                1 => out.extend_from_slice(&value.to_le_bytes()),
                2 => {
                    varint(bytes.len() as u64, &mut out);
                    out.extend_from_slice(&bytes);
                }
                5 => out.extend_from_slice(&value.to_le_bytes()[..4]),
                _ => out.extend_from_slice(&bytes),
            }
            out
        },
    );
    prop_oneof![
        proptest::collection::vec(field, 0..8).prop_map(|fields| fields.concat()),
        proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

fn version() -> impl Strategy<Value = u32> {
    prop_oneof![Just(1u32), Just(0u32), 2..5u32, any::<u32>()]
}

fn recorded(sequence: u64, event_type: &str, schema_version: u32, payload: Vec<u8>) -> RecordedEvent {
    let mut map = HeaderMap::new();
    map.insert(headers::EVENT_TYPE, event_type);
    map.insert(headers::SCHEMA_VERSION, schema_version.to_string().as_str());
    RecordedEvent::from_parts(
        sequence,
        "psirt.evt.x.y".into(),
        map,
        Bytes::from(payload),
        OffsetDateTime::UNIX_EPOCH,
    )
}

/// Decodes `event` as `M` and checks the answer against what the envelope
/// says: another type is `WrongType`, today's version decodes exactly as
/// prost decodes the bytes, version 0 or a later one is `NewerVersion`.
fn check_decode<M: EventSchema + PartialEq + Debug>(event: &RecordedEvent) -> Result<(), TestCaseError> {
    let result = event.decode::<M>();
    if event.event_type != M::full_name() {
        let wrong = matches!(&result, Err(DecodeError::WrongType { expected, actual })
            if *expected == M::full_name() && *actual == event.event_type);
        prop_assert!(wrong, "{} decoded as {}: {:?}", event.event_type, M::full_name(), result);
        return Ok(());
    }
    let version = event.schema_version;
    if version == M::VERSION {
        match (M::decode(event.payload.as_ref()), result) {
            (Ok(expected), Ok(decoded)) => prop_assert_eq!(decoded, expected),
            (Err(_), Err(DecodeError::Payload { event_type, sequence, .. })) => {
                prop_assert_eq!(event_type, event.event_type.clone());
                prop_assert_eq!(sequence, event.sequence);
            }
            (expected, decoded) => prop_assert!(false, "prost says {expected:?}, decode {decoded:?}"),
        }
    } else if version == 0 || version > M::VERSION {
        let parked = matches!(&result, Err(DecodeError::NewerVersion { version: v, known, sequence, .. })
            if *v == version && *known == M::VERSION && *sequence == event.sequence);
        prop_assert!(parked, "version {version} of {}: {result:?}", M::full_name());
    } else {
        prop_assert!(matches!(result, Ok(_) | Err(DecodeError::Payload { .. })), "{result:?}");
    }

    // Lifting to today's version: nothing to do from today's (or a later)
    // version; from an older one the chain runs or names the failing step.
    let payload = event.payload.as_ref();
    match upcast_to_current::<M>(version, payload) {
        Ok(bytes) if version >= M::VERSION => prop_assert_eq!(bytes.as_slice(), payload),
        Ok(_) => {}
        Err(message) => {
            prop_assert!(version < M::VERSION, "from {version}: {message}");
            prop_assert!(message.contains(&M::full_name()), "{message}");
        }
    }
    Ok(())
}

/// Calls `check_decode` with the event message named `name`; `None` for a
/// name this list lacks (a test below keeps it complete).
macro_rules! events_by_name {
    ($($name:ident),* $(,)?) => {
        fn check_decode_as(name: &str, event: &RecordedEvent) -> Option<Result<(), TestCaseError>> {
            match name {
                $(stringify!($name) => Some(check_decode::<events::$name>(event)),)*
                _ => None,
            }
        }
    };
}

events_by_name!(
    ReportReceived,
    ReportAcknowledged,
    ReporterMessageAdded,
    DuplicateSuspected,
    CaseOpened,
    TriageStarted,
    CaseAssigned,
    SeverityAssessed,
    AffectedProductsSet,
    CaseAccepted,
    CaseRejected,
    CaseMarkedDuplicate,
    DuplicateLinked,
    CveAssigned,
    EmbargoSet,
    CaseEscalated,
    SlaBreached,
    RemediationStarted,
    CaseFixed,
    CaseDisclosed,
    CaseClosed,
    CaseReopened,
    RemediationPlanOpened,
    RemediationActionPlanned,
    ReleaseRecorded,
    ProductStatusSet,
    RemediationVerified,
    RemediationDueDatesRecomputed,
    AdvisoryDrafted,
    AdvisoryPublished,
    AdvisoryRevised,
    SubscriptionCreated,
    SubscriptionUpdated,
    SubscriptionDeleted,
    DeliveryScheduled,
    DeliveryAttempted,
    DeliverySucceeded,
    DeliveryDeadLettered,
    ExternalTicketLinked,
    ExternalTicketUpdated,
);

#[test]
fn every_event_with_a_schema_version_is_decoded_by_the_properties() {
    let event = recorded(1, "x", 1, Vec::new());
    for name in EVENT_NAMES {
        assert!(check_decode_as(name, &event).is_some(), "{name} is missing from events_by_name!");
    }
}

fn event_name() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(EVENT_NAMES)
}

/// An event type header: the target's, another event's, a near miss or any text.
fn event_type_for(target: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(full(target)),
        1 => event_name().prop_map(full),
        1 => Just(target.to_owned()),
        1 => Just(format!("psirt.events.v2.{target}")),
        1 => Just(full(&target.to_ascii_lowercase())),
        1 => "\\PC{0,40}",
    ]
}

/// A uuid as any of the forms the `uuid` crate reads.
fn uuid_text() -> impl Strategy<Value = (Uuid, String)> {
    (any::<u128>(), 0..4u8).prop_map(|(n, form)| {
        let uuid = Uuid::from_u128(n);
        let text = match form {
            0 => uuid.hyphenated().to_string(),
            1 => uuid.simple().to_string(),
            2 => uuid.braced().to_string(),
            _ => uuid.hyphenated().to_string().to_ascii_uppercase(),
        };
        (uuid, text)
    })
}

/// A version header: a number with blanks around, or any text.
#[derive(Debug, Clone)]
enum VersionHeader {
    Absent,
    Number(u32, String),
    Text(String),
}

fn version_header() -> impl Strategy<Value = VersionHeader> {
    prop_oneof![
        Just(VersionHeader::Absent),
        (any::<u32>(), "[ \t]{0,2}", "[ \t]{0,2}")
            .prop_map(|(n, before, after)| VersionHeader::Number(n, format!("{before}{n}{after}"))),
        // Text with a character no decimal number has.
        ("[^\r\n]{0,10}", "[^\r\n0-9+\\s]", "[^\r\n]{0,10}")
            .prop_map(|(a, b, c)| VersionHeader::Text(format!("{a}{b}{c}"))),
        // Numbers past u32.
        (u64::from(u32::MAX) + 1..=u64::MAX).prop_map(|n| VersionHeader::Text(n.to_string())),
    ]
}

#[derive(Debug, Clone)]
struct Envelope {
    id: Option<(Option<Uuid>, String)>,
    event_type: Option<String>,
    version: VersionHeader,
    causation: Option<String>,
    correlation: Option<String>,
    actor: Option<String>,
    /// Headers of other names (a foreign writer's, trace context).
    others: Vec<(String, String)>,
}

fn envelope() -> impl Strategy<Value = Envelope> {
    let id = prop_oneof![
        uuid_text().prop_map(|(uuid, text)| (Some(uuid), text)),
        // Text without a hex digit is no uuid.
        "[^\r\n0-9a-fA-F]{0,40}".prop_map(|text| (None, text)),
    ];
    (
        proptest::option::of(id),
        proptest::option::of(header_text()),
        version_header(),
        proptest::option::of(header_text()),
        proptest::option::of(header_text()),
        proptest::option::of(header_text()),
        proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,20}", header_text()), 0..4),
    )
        .prop_map(|(id, event_type, version, causation, correlation, actor, others)| Envelope {
            id,
            event_type,
            version,
            causation,
            correlation,
            actor,
            others,
        })
}

const OUR_HEADERS: [&str; 6] = [
    headers::MSG_ID,
    headers::EVENT_TYPE,
    headers::SCHEMA_VERSION,
    headers::CAUSATION_ID,
    headers::CORRELATION_ID,
    headers::ACTOR,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any headers give an envelope that says what they say: the event id
    /// when the id header is a uuid, the type (empty when absent), the
    /// schema version (1 without the header, 0 when it is not a number),
    /// the metadata as written; the payload and sequence untouched.
    #[test]
    fn any_headers_give_the_envelope_they_say(
        envelope in envelope(),
        sequence in any::<u64>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in &envelope.others {
            if OUR_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                continue;
            }
            if let (Ok(name), Ok(value)) = (HeaderName::from_str(name), HeaderValue::from_str(value)) {
                map.append(name, value);
            }
        }
        let mut set = |name: &str, value: &Option<String>| {
            if let Some(value) = value {
                map.insert(name, HeaderValue::from_str(value).expect("no line break"));
            }
        };
        set(headers::MSG_ID, &envelope.id.as_ref().map(|(_, text)| text.clone()));
        set(headers::EVENT_TYPE, &envelope.event_type);
        set(headers::CAUSATION_ID, &envelope.causation);
        set(headers::CORRELATION_ID, &envelope.correlation);
        set(headers::ACTOR, &envelope.actor);
        let expected_version = match &envelope.version {
            VersionHeader::Absent => 1,
            VersionHeader::Number(n, text) => {
                set(headers::SCHEMA_VERSION, &Some(text.clone()));
                *n
            }
            VersionHeader::Text(text) => {
                set(headers::SCHEMA_VERSION, &Some(text.clone()));
                0
            }
        };

        let event = RecordedEvent::from_parts(
            sequence,
            "psirt.evt.case.x".into(),
            map,
            Bytes::from(payload.clone()),
            OffsetDateTime::UNIX_EPOCH,
        );
        prop_assert_eq!(event.sequence, sequence);
        prop_assert_eq!(event.payload.as_ref(), payload.as_slice());
        prop_assert_eq!(event.id, envelope.id.as_ref().and_then(|(uuid, _)| *uuid));
        prop_assert_eq!(&event.event_type, envelope.event_type.as_deref().unwrap_or_default());
        prop_assert_eq!(event.schema_version, expected_version, "{:?}", envelope.version);
        prop_assert_eq!(event.metadata.causation_id, envelope.causation);
        prop_assert_eq!(event.metadata.correlation_id, envelope.correlation);
        prop_assert_eq!(event.metadata.actor, envelope.actor);
    }

    /// A payload of any bytes under any type and version header, decoded
    /// as any event of the platform: a message or a typed error, as
    /// `check_decode` spells out.
    #[test]
    fn any_payload_decodes_as_any_event_or_is_a_typed_error(
        (target, event_type) in event_name().prop_flat_map(|t| (Just(t), event_type_for(t))),
        version in version(),
        payload in payload(),
        sequence in any::<u64>(),
    ) {
        let event = recorded(sequence, &event_type, version, payload);
        check_decode_as(target, &event).expect("every event is listed")?;
    }

    /// Whatever is decoded re-encodes to a message that decodes the same:
    /// decoding loses nothing a consumer reads.
    #[test]
    fn decoded_events_round_trip(name in event_name(), payload in payload()) {
        fn round_trip<M: EventSchema + PartialEq + Debug>(payload: Vec<u8>) -> Result<(), TestCaseError> {
            if let Ok(message) = recorded(1, &M::full_name(), M::VERSION, payload).decode::<M>() {
                let again = recorded(2, &M::full_name(), M::VERSION, message.encode_to_vec()).decode::<M>();
                prop_assert_eq!(again, Ok(message));
            }
            Ok(())
        }
        macro_rules! dispatch {
            ($($n:ident),*) => {
                match name {
                    $(stringify!($n) => round_trip::<events::$n>(payload)?,)*
                    _ => {}
                }
            };
        }
        dispatch!(ReportReceived, ReporterMessageAdded, CaseOpened, SeverityAssessed, AffectedProductsSet,
            CaseDisclosed, CaseClosed, ReleaseRecorded, ProductStatusSet, AdvisoryPublished,
            SubscriptionCreated, DeliveryScheduled, DeliveryAttempted, ExternalTicketUpdated);
    }

    /// The schema table knows exactly the platform's event types.
    #[test]
    fn version_of_knows_exactly_the_event_types(text in prop_oneof![
        "\\PC{0,40}",
        event_name().prop_map(|n| format!("psirt.events.v1.{n}x")),
        event_name().prop_map(|n| format!("psirt.events.v1{n}")),
        event_name().prop_map(str::to_owned),
    ]) {
        let known = text
            .strip_prefix("psirt.events.v1.")
            .is_some_and(|name| EVENT_NAMES.contains(&name));
        prop_assert_eq!(version_of(&text).is_some(), known, "{}", text);
    }

    /// Screening: an event is its subject's only when the subject is an
    /// aggregate subject of the platform and the type one of that
    /// aggregate's events.
    #[test]
    fn foreign_events_are_screened(
        aggregate in proptest::sample::select(ownership::AGGREGATES),
        id in "[^\r\n]{1,20}",
        own in any::<proptest::sample::Index>(),
        other in event_name(),
        subject_text in "\\PC{0,30}",
        type_text in "\\PC{0,30}",
        pick in 0..4u8,
    ) {
        let subject = format!("psirt.evt.{}.{id}", aggregate.name);
        let own_type = full(aggregate.event_types[own.index(aggregate.event_types.len())]);
        prop_assert_eq!(ownership::check(&subject, &own_type), Ok(()));
        let (subject, event_type) = match pick {
            0 => (subject, full(other)),
            1 => (subject, type_text),
            2 => (subject_text, own_type),
            _ => (format!("psirt.evt.{}.", aggregate.name), own_type),
        };
        let accepted = ownership::check(&subject, &event_type).is_ok();
        let expected = subject
            .strip_prefix("psirt.evt.")
            .and_then(|rest| rest.split_once('.'))
            .filter(|(_, id)| !id.is_empty())
            .is_some_and(|(name, _)| {
                ownership::AGGREGATES.iter().any(|a| {
                    a.name == name
                        && event_type
                            .strip_prefix("psirt.events.v1.")
                            .is_some_and(|t| a.event_types.contains(&t))
                })
            });
        prop_assert_eq!(accepted, expected, "{} / {}", subject, event_type);
    }
}

// --- an event with three schema versions and its upcasters ------------------------

/// Version 1: one free-text `who`.
#[derive(Clone, PartialEq, prost::Message)]
struct GreetedV1 {
    #[prost(string, tag = "1")]
    who: String,
}

/// Version 2: `who` became `name` (field 3), plus a `greeting`.
#[derive(Clone, PartialEq, prost::Message)]
struct GreetedV2 {
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "2")]
    greeting: String,
}

/// Version 3, today's: adds `loud`.
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
            2 => Ok(payload.to_vec()),
            other => Err(format!("no upcaster from {other}")),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes at any version: each older version goes through its
    /// upcasters (a failing step is a payload error naming it), a later one
    /// or 0 is parked, never decoded as today's.
    #[test]
    fn any_payload_at_any_version_is_upcast_or_refused(version in version(), payload in payload()) {
        use prost::Message;
        let event = recorded(9, "psirt.test.v1.Greeted", version, payload.clone());
        check_decode::<Greeted>(&event)?;
        let result = event.decode::<Greeted>();
        match version {
            1 => match GreetedV1::decode(payload.as_slice()) {
                Ok(v1) => prop_assert_eq!(
                    result,
                    Ok(Greeted { name: v1.who, greeting: "hello".into(), loud: false })
                ),
                Err(_) => {
                    let step = matches!(&result, Err(DecodeError::Payload { message, sequence: 9, .. })
                        if message.contains("from schema version 1"));
                    prop_assert!(step, "{result:?}");
                }
            },
            2 => match Greeted::decode(payload.as_slice()) {
                Ok(today) => prop_assert_eq!(result, Ok(today)),
                Err(_) => {
                    let after = matches!(&result, Err(DecodeError::Payload { message, .. })
                        if message.contains("after upcasting"));
                    prop_assert!(after, "{result:?}");
                }
            },
            _ => {}
        }
    }
}
