//! Identifiers of reports, cases, events and reporter messages.
//!
//! Fresh ids are UUIDv7 (time-ordered, so streams and indexes stay local);
//! ids that retries must reproduce are UUIDv5 under the frozen namespaces below.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Namespaces of the derived (UUIDv5) ids.
///
/// Each is `uuid5(NAMESPACE_URL, "urn:psirt:id-namespace:<name>")`, written out
/// as a literal because every id ever derived depends on it: changing one
/// would silently break idempotency for requests and events already stored.
/// One namespace per derivation, so that a case id can never equal the
/// report id it was derived from, nor an event id derived from the same bytes.
pub mod namespaces {
    use uuid::Uuid;

    /// `ReportId::for_request`: `urn:psirt:id-namespace:report-request`.
    pub const REPORT_REQUEST: Uuid = Uuid::from_u128(0x6b7c2dda_bcca_52e3_8e98_95b95c0a1933);
    /// `CaseId::for_report`: `urn:psirt:id-namespace:case-for-report`.
    pub const CASE_FOR_REPORT: Uuid = Uuid::from_u128(0xb139cb21_bdd7_5c60_91ea_eaa3d767ebfb);
    /// `EventId::derive`: `urn:psirt:id-namespace:event`.
    pub const EVENT: Uuid = Uuid::from_u128(0xcc2013a9_f748_509a_aaa3_059c946680eb);
    /// `MessageId::for_report_message`: `urn:psirt:id-namespace:message`.
    pub const MESSAGE: Uuid = Uuid::from_u128(0xd83a6f46_a569_5498_8260_3005f4d47904);
    /// `PlanId::for_case`: `urn:psirt:id-namespace:plan-for-case`.
    pub const PLAN_FOR_CASE: Uuid = Uuid::from_u128(0x2c6fc5d9_9adc_5981_b365_a93bff67b0f3);
    /// `AdvisoryId::for_case`: `urn:psirt:id-namespace:advisory-for-case`.
    pub const ADVISORY_FOR_CASE: Uuid = Uuid::from_u128(0x0ab9050e_2033_594a_b2e5_b55529a6c3c6);
    /// `ActionId::for_request`: `urn:psirt:id-namespace:action-request`.
    pub const ACTION_REQUEST: Uuid = Uuid::from_u128(0x13edcc7c_685b_5d63_bff6_b1bc0a80498d);
    /// `SubscriptionId::for_request`: `urn:psirt:id-namespace:subscription-request`.
    pub const SUBSCRIPTION_REQUEST: Uuid = Uuid::from_u128(0xde1dfad3_334e_55bd_98f8_4b62ed68293e);
    /// `DeliveryId::for_event`: `urn:psirt:id-namespace:delivery`.
    pub const DELIVERY: Uuid = Uuid::from_u128(0x65e3a0af_0747_57a4_b3df_b7677cfa17ef);
    /// `LinkId::for_ticket`: `urn:psirt:id-namespace:ticket-link`.
    pub const TICKET_LINK: Uuid = Uuid::from_u128(0x27562bad_c7f2_5823_906c_d28603a7e08f);
}

/// A string that is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id {input:?}: {reason}")]
pub struct InvalidId {
    /// Which id was expected: `report`, `case`, `event` or `message`.
    pub kind: &'static str,
    pub input: String,
    pub reason: InvalidIdReason,
}

/// Why an id string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIdReason {
    #[error("not a uuid")]
    NotAUuid,
    /// The nil uuid is what an unset protobuf field decodes to, never a real id.
    #[error("the nil uuid is not an id")]
    Nil,
}

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// What [`InvalidId::kind`] says for this id.
            pub const KIND: &'static str = $kind;

            /// A fresh, time-ordered id (UUIDv7).
            #[allow(clippy::new_without_default)] // a default id would hide a missing one
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps a uuid read from a trusted source (the event store, a projection).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            pub const fn into_uuid(self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let invalid = |reason| InvalidId { kind: $kind, input: s.to_owned(), reason };
                let uuid = Uuid::try_parse(s).map_err(|_| invalid(InvalidIdReason::NotAUuid))?;
                if uuid.is_nil() {
                    return Err(invalid(InvalidIdReason::Nil));
                }
                Ok(Self(uuid))
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

uuid_id!(
    /// The id of a vulnerability report, from submission on.
    ReportId,
    "report"
);
uuid_id!(
    /// The id of a case: the unit the PSIRT triages, remediates and discloses.
    CaseId,
    "case"
);
uuid_id!(
    /// The id of one event; the event store deduplicates appends on it.
    EventId,
    "event"
);
uuid_id!(
    /// The id of one message exchanged with a reporter.
    MessageId,
    "message"
);
uuid_id!(
    /// The id of a case's remediation plan (one per case).
    PlanId,
    "plan"
);
uuid_id!(
    /// The id of a case's security advisory (one per case).
    AdvisoryId,
    "advisory"
);
uuid_id!(
    /// The id of one remediation action, unique within its plan.
    ActionId,
    "action"
);

uuid_id!(
    /// The id of a notification subscription (routing rule and destination).
    SubscriptionId,
    "subscription"
);
uuid_id!(
    /// The id of one delivery: one event to one subscription.
    DeliveryId,
    "delivery"
);

uuid_id!(
    /// The id of the link between a case and a ticket in an external tracker.
    LinkId,
    "ticket link"
);

impl LinkId {
    /// The ticket of a case kept by one tracker subscription: the case's 16
    /// bytes, then the subscription's. A retried or replayed delivery names
    /// the same link, so a case gets one ticket per subscription.
    pub fn for_ticket(case: CaseId, subscription: SubscriptionId) -> Self {
        let mut name = [0u8; 32];
        name[..16].copy_from_slice(case.0.as_bytes());
        name[16..].copy_from_slice(subscription.0.as_bytes());
        Self(Uuid::new_v5(&namespaces::TICKET_LINK, &name))
    }
}

impl SubscriptionId {
    /// The subscription a client's request id stands for, scoped by the
    /// principal (length-prefixed, as [`ReportId::for_request`]), so that a
    /// retried `CreateSubscription` creates the same subscription once.
    pub fn for_request(principal: &str, request_id: &str) -> Self {
        let name = format!("{}:{principal}{request_id}", principal.len());
        Self(Uuid::new_v5(&namespaces::SUBSCRIPTION_REQUEST, name.as_bytes()))
    }
}

impl DeliveryId {
    /// The delivery of one event to one subscription: the event's 16 bytes,
    /// then the subscription's. Routing the same event again (a redelivered
    /// message, a replay) names the same delivery, so it is scheduled once.
    pub fn for_event(event: EventId, subscription: SubscriptionId) -> Self {
        let mut name = [0u8; 32];
        name[..16].copy_from_slice(event.0.as_bytes());
        name[16..].copy_from_slice(subscription.0.as_bytes());
        Self(Uuid::new_v5(&namespaces::DELIVERY, &name))
    }
}

impl ReportId {
    /// The report a client's idempotency key stands for.
    ///
    /// Scoped by the authenticated principal, so two clients that happen to
    /// pick the same request id never collide, and a client can only ever
    /// replay its own submissions. The principal is length-prefixed so that
    /// `("ab", "c")` and `("a", "bc")` give different ids.
    pub fn for_request(principal: &str, request_id: &str) -> Self {
        let name = format!("{}:{principal}{request_id}", principal.len());
        Self(Uuid::new_v5(&namespaces::REPORT_REQUEST, name.as_bytes()))
    }
}

impl CaseId {
    /// The case a report will open: known at submission, before triage
    /// exists, so the intake service can answer with it and a triage retry
    /// opens the same case rather than a second one.
    pub fn for_report(report: ReportId) -> Self {
        Self(Uuid::new_v5(&namespaces::CASE_FOR_REPORT, report.0.as_bytes()))
    }
}

impl EventId {
    /// The id of an event fixed by its aggregate and a discriminator
    /// (`"received"`, `"reaction-to:<event id>"`, ...), so that a retried
    /// command or a redelivered message appends an event the store has
    /// already seen and drops. The aggregate's 16 bytes come first, so the
    /// discriminator needs no separator.
    pub fn derive(aggregate: Uuid, discriminator: &str) -> Self {
        let mut name = Vec::with_capacity(16 + discriminator.len());
        name.extend_from_slice(aggregate.as_bytes());
        name.extend_from_slice(discriminator.as_bytes());
        Self(Uuid::new_v5(&namespaces::EVENT, &name))
    }
}

impl MessageId {
    /// The id of the `ordinal`-th message (from 1) of a report's conversation:
    /// derived, because the domain has no randomness and a retried command
    /// must produce the same message.
    pub fn for_report_message(report: ReportId, ordinal: u64) -> Self {
        let mut name = Vec::with_capacity(24);
        name.extend_from_slice(report.0.as_bytes());
        name.extend_from_slice(&ordinal.to_be_bytes());
        Self(Uuid::new_v5(&namespaces::MESSAGE, &name))
    }
}

impl PlanId {
    /// The plan of a case: a case has exactly one, so a redelivered
    /// `CaseAccepted` opens the same plan rather than a second one.
    pub fn for_case(case: CaseId) -> Self {
        Self(Uuid::new_v5(&namespaces::PLAN_FOR_CASE, case.0.as_bytes()))
    }
}

impl AdvisoryId {
    /// The advisory of a case: a case has exactly one.
    pub fn for_case(case: CaseId) -> Self {
        Self(Uuid::new_v5(&namespaces::ADVISORY_FOR_CASE, case.0.as_bytes()))
    }
}

impl ActionId {
    /// The action a client's request id stands for within a plan, so that a
    /// retried `PlanAction` re-plans the same action instead of adding one.
    /// The plan's 16 bytes come first, so the request id needs no separator.
    pub fn for_request(plan: PlanId, request_id: &str) -> Self {
        let mut name = Vec::with_capacity(16 + request_id.len());
        name.extend_from_slice(plan.0.as_bytes());
        name.extend_from_slice(request_id.as_bytes());
        Self(Uuid::new_v5(&namespaces::ACTION_REQUEST, &name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_the_documented_derivations() {
        for (ns, name) in [
            (namespaces::REPORT_REQUEST, "report-request"),
            (namespaces::CASE_FOR_REPORT, "case-for-report"),
            (namespaces::EVENT, "event"),
            (namespaces::MESSAGE, "message"),
            (namespaces::PLAN_FOR_CASE, "plan-for-case"),
            (namespaces::ADVISORY_FOR_CASE, "advisory-for-case"),
            (namespaces::ACTION_REQUEST, "action-request"),
            (namespaces::SUBSCRIPTION_REQUEST, "subscription-request"),
            (namespaces::DELIVERY, "delivery"),
            (namespaces::TICKET_LINK, "ticket-link"),
        ] {
            let expected =
                Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("urn:psirt:id-namespace:{name}").as_bytes());
            assert_eq!(ns, expected, "{name}");
        }
    }

    #[test]
    fn new_ids_are_v7_and_distinct() {
        let a = ReportId::new();
        let b = ReportId::new();
        assert_ne!(a, b);
        assert_eq!(a.as_uuid().get_version_num(), 7);
    }

    #[test]
    fn report_id_for_request_is_deterministic_and_v5() {
        let a = ReportId::for_request("client-a", "req-1");
        assert_eq!(a, ReportId::for_request("client-a", "req-1"));
        assert_eq!(a.as_uuid().get_version_num(), 5);
    }

    #[test]
    fn report_id_for_request_differs_by_principal_and_request() {
        let a = ReportId::for_request("client-a", "req-1");
        assert_ne!(a, ReportId::for_request("client-b", "req-1"));
        assert_ne!(a, ReportId::for_request("client-a", "req-2"));
    }

    #[test]
    fn report_id_for_request_does_not_confuse_the_boundary() {
        assert_ne!(ReportId::for_request("ab", "c"), ReportId::for_request("a", "bc"));
        assert_ne!(ReportId::for_request("", "1:x"), ReportId::for_request("x", ""));
    }

    #[test]
    fn pinned_derivations_never_change() {
        // Stored ids depend on these values: a failure here is a breaking change.
        let report = ReportId::for_request("client-a", "req-1");
        let again: ReportId = report.to_string().parse().expect("a derived id parses");
        assert_eq!(report, again);
        assert_eq!(report.into_uuid(), Uuid::new_v5(&namespaces::REPORT_REQUEST, b"8:client-areq-1"));
    }

    #[test]
    fn case_id_for_report_is_deterministic_and_not_the_report_id() {
        let report = ReportId::for_request("p", "r");
        let case = CaseId::for_report(report);
        assert_eq!(case, CaseId::for_report(report));
        assert_ne!(case.into_uuid(), report.into_uuid());
        assert_ne!(case, CaseId::for_report(ReportId::for_request("p", "r2")));
    }

    #[test]
    fn event_id_derive_is_deterministic_per_aggregate_and_discriminator() {
        let aggregate = ReportId::for_request("p", "r").into_uuid();
        let other = ReportId::for_request("p", "r2").into_uuid();
        let received = EventId::derive(aggregate, "received");
        assert_eq!(received, EventId::derive(aggregate, "received"));
        assert_ne!(received, EventId::derive(aggregate, "acknowledged"));
        assert_ne!(received, EventId::derive(other, "received"));
    }

    #[test]
    fn message_ids_differ_by_ordinal_and_report() {
        let report = ReportId::for_request("p", "r");
        let first = MessageId::for_report_message(report, 1);
        assert_eq!(first, MessageId::for_report_message(report, 1));
        assert_ne!(first, MessageId::for_report_message(report, 2));
        assert_ne!(first, MessageId::for_report_message(ReportId::for_request("p", "x"), 1));
    }

    #[test]
    fn plan_and_advisory_ids_follow_the_case_and_differ_from_it() {
        let case = CaseId::for_report(ReportId::for_request("p", "r"));
        let plan = PlanId::for_case(case);
        let advisory = AdvisoryId::for_case(case);
        assert_eq!(plan, PlanId::for_case(case));
        assert_eq!(advisory, AdvisoryId::for_case(case));
        assert_eq!(plan.as_uuid().get_version_num(), 5);
        assert_ne!(plan.into_uuid(), case.into_uuid());
        assert_ne!(plan.into_uuid(), advisory.into_uuid());
        assert_ne!(plan, PlanId::for_case(CaseId::for_report(ReportId::for_request("p", "r2"))));
    }

    #[test]
    fn action_ids_differ_by_plan_and_request() {
        let plan = PlanId::for_case(CaseId::for_report(ReportId::for_request("p", "r")));
        let other = PlanId::for_case(CaseId::for_report(ReportId::for_request("p", "r2")));
        let action = ActionId::for_request(plan, "req-1");
        assert_eq!(action, ActionId::for_request(plan, "req-1"));
        assert_ne!(action, ActionId::for_request(plan, "req-2"));
        assert_ne!(action, ActionId::for_request(other, "req-1"));
    }

    #[test]
    fn delivery_ids_follow_event_and_subscription() {
        let event = EventId::derive(ReportId::for_request("p", "r").into_uuid(), "received");
        let other_event = EventId::derive(ReportId::for_request("p", "r").into_uuid(), "acknowledged");
        let sub = SubscriptionId::for_request("admin", "req-1");
        let other_sub = SubscriptionId::for_request("admin", "req-2");
        let delivery = DeliveryId::for_event(event, sub);
        assert_eq!(delivery, DeliveryId::for_event(event, sub));
        assert_eq!(delivery.as_uuid().get_version_num(), 5);
        assert_ne!(delivery, DeliveryId::for_event(other_event, sub));
        assert_ne!(delivery, DeliveryId::for_event(event, other_sub));
        assert_ne!(sub, SubscriptionId::for_request("other", "req-1"));
    }

    #[test]
    fn ids_round_trip_through_display_and_from_str() {
        let id = CaseId::new();
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.parse::<CaseId>(), Ok(id));
    }

    #[test]
    fn parse_errors_are_typed() {
        let err = "not-a-uuid".parse::<ReportId>().expect_err("garbage is refused");
        assert_eq!(err.kind, "report");
        assert_eq!(err.reason, InvalidIdReason::NotAUuid);
        let err = Uuid::nil().to_string().parse::<EventId>().expect_err("nil is refused");
        assert_eq!(err.kind, "event");
        assert_eq!(err.reason, InvalidIdReason::Nil);
        assert_eq!("".parse::<MessageId>().map_err(|e| e.reason), Err(InvalidIdReason::NotAUuid));
    }

    #[test]
    fn ids_serialize_as_plain_strings() {
        let id = ReportId::new();
        let json = serde_json::to_string(&id).expect("serializes");
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<ReportId>(&json).expect("deserializes"), id);
    }
}
