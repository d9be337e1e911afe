//! Properties of turning stored events into domain events (every
//! aggregate's decoder in this crate): a payload of any bytes under any of
//! the aggregate's event types gives a domain event or a typed
//! `DecodeError`, never a panic (ids that are not ids, timestamps out of
//! range, unknown enum values, vectors without a version); and a decoded
//! event, encoded again the way commands append it, decodes to itself.

use proptest::prelude::*;
use psirt_codec::{case, notification, remediation, report};
use psirt_eventstore::ownership::AGGREGATES;
use psirt_eventstore::{DecodeError, Encoded, Metadata, NewEvent, RecordedEvent};
use psirt_proto::EVENTS_PACKAGE;
use uuid::Uuid;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field(number: u64, wire: u64, out: &mut Vec<u8>) {
    varint(number << 3 | wire, out);
}

fn delimited(number: u64, bytes: &[u8], out: &mut Vec<u8>) {
    field(number, 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Text the decoders parse: ids, keys, CVE ids, vectors, versions, or any.
fn meaningful_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        1 => Just(Uuid::nil().to_string()),
        1 => Just("PSIRT-2026-0001".to_owned()),
        1 => Just("CVE-2026-12345".to_owned()),
        1 => Just("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".to_owned()),
        1 => Just("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N".to_owned()),
        1 => Just("1.2.0".to_owned()),
        1 => "[a-z_.]{0,12}",
        1 => "\\PC{0,12}",
    ]
}

/// A `google.protobuf.Timestamp` with any seconds and nanos (out of range
/// ones included).
fn timestamp() -> impl Strategy<Value = Vec<u8>> {
    (any::<i64>(), any::<i32>(), 0..3u8).prop_map(|(seconds, nanos, pick)| {
        let seconds = match pick {
            0 => seconds,
            1 => seconds % 4_000_000_000,
            _ => 1_767_225_600 + seconds % 1000,
        };
        let mut out = Vec::new();
        field(1, 0, &mut out);
        varint(seconds as u64, &mut out);
        field(2, 0, &mut out);
        varint(i64::from(nanos) as u64, &mut out);
        out
    })
}

/// One protobuf field of a likely wire type for its number: text, a
/// timestamp or a nested message of either, a varint (enum values in and
/// out of range, bools), a double; or any bytes.
fn proto_field() -> BoxedStrategy<Vec<u8>> {
    let number = 1..20u64;
    prop_oneof![
        4 => (number.clone(), meaningful_text()).prop_map(|(n, text)| {
            let mut out = Vec::new();
            delimited(n, text.as_bytes(), &mut out);
            out
        }),
        2 => (number.clone(), timestamp()).prop_map(|(n, ts)| {
            let mut out = Vec::new();
            delimited(n, &ts, &mut out);
            out
        }),
        2 => (number.clone(), proptest::collection::vec((1..8u64, meaningful_text()), 0..4)).prop_map(
            |(n, inner)| {
                let mut nested = Vec::new();
                for (m, text) in inner {
                    delimited(m, text.as_bytes(), &mut nested);
                }
                let mut out = Vec::new();
                delimited(n, &nested, &mut out);
                out
            }
        ),
        2 => (number.clone(), prop_oneof![0..12u64, any::<u64>()]).prop_map(|(n, v)| {
            let mut out = Vec::new();
            field(n, 0, &mut out);
            varint(v, &mut out);
            out
        }),
        1 => (number, prop_oneof![any::<f64>(), 0.0..10.0f64]).prop_map(|(n, f)| {
            let mut out = Vec::new();
            field(n, 1, &mut out);
            out.extend_from_slice(&f.to_le_bytes());
            out
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..16),
    ]
    .boxed()
}

/// Fields of any numbers; or the first fields (where most events keep
/// their ids) as uuids, then fewer fields of any numbers, so that more
/// payloads get past the id checks.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(proto_field(), 0..12).prop_map(|fields| fields.concat()),
        (1..4u64, any::<[u128; 3]>(), proptest::collection::vec(proto_field(), 0..4)).prop_map(
            |(ids, uuids, fields)| {
                let mut out = Vec::new();
                for (n, uuid) in (1..=ids).zip(uuids) {
                    delimited(n, Uuid::from_u128(uuid).to_string().as_bytes(), &mut out);
                }
                out.extend(fields.concat());
                out
            }
        ),
    ]
}

fn recorded(event_type: &str, payload: Vec<u8>) -> RecordedEvent {
    let new = NewEvent {
        id: Uuid::from_u128(7),
        subject: "psirt.evt.x.y".into(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        payload: payload.into(),
        metadata: Metadata::default(),
    };
    RecordedEvent::from_new(&new, 42)
}

fn again(encoded: Encoded) -> RecordedEvent {
    recorded(&encoded.event_type, encoded.payload.to_vec())
}

/// An aggregate's event type, by aggregate name.
fn event_of(aggregate: &'static str) -> impl Strategy<Value = String> {
    let types = AGGREGATES.iter().find(|a| a.name == aggregate).expect("an aggregate").event_types;
    proptest::sample::select(types).prop_map(|name| format!("{EVENTS_PACKAGE}.{name}"))
}

/// The plan an event names (commands encode it from the subject, which a
/// stored event's payload repeats; an SLA breach names none).
fn plan_id_of(event: &psirt_domain::PlanEvent) -> psirt_domain::PlanId {
    use psirt_domain::PlanEvent as E;
    match event {
        E::RemediationPlanOpened { plan_id, .. }
        | E::RemediationActionPlanned { plan_id, .. }
        | E::ReleaseRecorded { plan_id, .. }
        | E::ProductStatusSet { plan_id, .. }
        | E::RemediationVerified { plan_id, .. }
        | E::RemediationDueDatesRecomputed { plan_id, .. } => *plan_id,
        E::SlaBreached { case_id, .. } => psirt_domain::PlanId::for_case(*case_id),
    }
}

/// What a decoder may answer with for an event of its own types.
fn typed<T>(result: &Result<T, DecodeError>) -> Result<(), TestCaseError> {
    match result {
        Ok(_) | Err(DecodeError::Payload { .. }) => Ok(()),
        Err(other) => Err(TestCaseError::fail(format!("an event of its own type answered {other:?}"))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn report_events_decode_or_are_typed_errors(event_type in event_of("report"), payload in payload()) {
        let result = report::to_domain(&recorded(&event_type, payload));
        typed(&result)?;
        if let Ok(event) = result {
            let request_id = match &event {
                psirt_domain::ReportEvent::ReportReceived { request_id, .. } => request_id.clone().unwrap_or_default(),
                _ => String::new(),
            };
            prop_assert_eq!(report::to_domain(&again(report::encode(&event, &request_id))), Ok(event));
        }
    }

    #[test]
    fn case_events_decode_or_are_typed_errors(event_type in event_of("case"), payload in payload()) {
        let result = case::to_domain(&recorded(&event_type, payload));
        typed(&result)?;
        if let Ok(event) = result {
            let encoded = case::encode(&event, None);
            prop_assert_eq!(case::to_domain(&again(encoded)), Ok(event));
        }
    }

    #[test]
    fn plan_events_decode_or_are_typed_errors(event_type in event_of("remediation"), payload in payload()) {
        let result = remediation::plan_event_from_recorded(&recorded(&event_type, payload));
        typed(&result)?;
        if let Ok(Some(event)) = result {
            let encoded = remediation::encode_plan_event(&event, plan_id_of(&event));
            prop_assert_eq!(remediation::plan_event_from_recorded(&again(encoded)), Ok(Some(event)));
        }
    }

    #[test]
    fn advisory_events_decode_or_are_typed_errors(event_type in event_of("advisory"), payload in payload()) {
        let result = remediation::advisory_event_from_recorded(&recorded(&event_type, payload));
        typed(&result)?;
        if let Ok(Some(event)) = result {
            let encoded = remediation::encode_advisory_event(&event);
            prop_assert_eq!(remediation::advisory_event_from_recorded(&again(encoded)), Ok(Some(event)));
        }
    }

    #[test]
    fn subscription_events_decode_or_are_typed_errors(event_type in event_of("subscription"), payload in payload()) {
        let result = notification::subscription_event_from_recorded(&recorded(&event_type, payload));
        typed(&result)?;
        if let Ok(Some(event)) = result {
            let encoded = notification::encode_subscription_event(&event);
            prop_assert_eq!(notification::subscription_event_from_recorded(&again(encoded)), Ok(Some(event)));
        }
    }

    #[test]
    fn delivery_events_decode_or_are_typed_errors(event_type in event_of("delivery"), payload in payload()) {
        let result = notification::delivery_event_from_recorded(&recorded(&event_type, payload));
        typed(&result)?;
        if let Ok(Some(event)) = result {
            let encoded = notification::encode_delivery_event(&event);
            prop_assert_eq!(notification::delivery_event_from_recorded(&again(encoded)), Ok(Some(event)));
        }
    }
}
