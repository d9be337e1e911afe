//! Schema versions of the stored events, and the upcasters that lift an older
//! payload to today's shape.
//!
//! Every event appended carries its schema version in the envelope
//! (`Psirt-Schema-Version`); decoding reads it back
//! (`psirt_eventstore::RecordedEvent::decode`):
//!
//! - today's version decodes as it is;
//! - an older version is lifted one step at a time by [`EventSchema::upcast`]
//!   (`from` → `from + 1`) until it is today's, then decoded;
//! - a newer version (written by a later build) is refused: projections park
//!   it with a log line naming both versions, never decode it as if it were
//!   today's.
//!
//! How to change an event (docs/architecture.md, "Changing an event"): a
//! change that old readers would misread raises [`EventSchema::VERSION`] of
//! that message in the table below, keeps the old shape as a message of its
//! own (`<Name>V<n>` in the same package) for the upcaster to decode, and adds
//! a fixture of the old bytes with a test that it upcasts.

use crate::events;

/// A message stored as an event: its schema version today and how to lift
/// older payloads.
pub trait EventSchema: prost::Message + prost::Name + Default {
    /// Today's schema version of this event's payload.
    const VERSION: u32 = 1;

    /// Lifts the encoded payload of version `from` (below [`Self::VERSION`])
    /// to version `from + 1`. The default knows no older version.
    fn upcast(from: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
        let _ = payload;
        Err(format!("{} has no upcaster from schema version {from}", Self::full_name()))
    }
}

macro_rules! event_schemas {
    ($($name:ident => $version:literal),* $(,)?) => {
        $(
            impl EventSchema for events::$name {
                const VERSION: u32 = $version;
            }
        )*

        /// Today's schema version of the event type `event_type` (a full
        /// message name, `psirt.events.v1.ReportReceived`); `None` for a
        /// type that is not an event of the platform.
        pub fn version_of(event_type: &str) -> Option<u32> {
            let name = event_type.strip_prefix(crate::EVENTS_PACKAGE)?.strip_prefix('.')?;
            match name {
                $(stringify!($name) => Some($version),)*
                _ => None,
            }
        }

        /// Every event message name (without the package), in table order.
        pub const EVENT_NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

// One line per event message; raise a version only together with an
// upcaster (see the module documentation).
event_schemas! {
    // report
    ReportReceived => 1,
    ReportAcknowledged => 1,
    ReporterMessageAdded => 1,
    DuplicateSuspected => 1,
    // case
    CaseOpened => 1,
    TriageStarted => 1,
    CaseAssigned => 1,
    SeverityAssessed => 1,
    AffectedProductsSet => 1,
    CaseAccepted => 1,
    CaseRejected => 1,
    CaseMarkedDuplicate => 1,
    DuplicateLinked => 1,
    CveAssigned => 1,
    EmbargoSet => 1,
    CaseEscalated => 1,
    SlaBreached => 1,
    RemediationStarted => 1,
    CaseFixed => 1,
    CaseDisclosed => 1,
    CaseClosed => 1,
    CaseReopened => 1,
    // remediation plan
    RemediationPlanOpened => 1,
    RemediationActionPlanned => 1,
    ReleaseRecorded => 1,
    ProductStatusSet => 1,
    RemediationVerified => 1,
    RemediationDueDatesRecomputed => 1,
    // advisory
    AdvisoryDrafted => 1,
    AdvisoryPublished => 1,
    AdvisoryRevised => 1,
    // notification
    SubscriptionCreated => 1,
    SubscriptionUpdated => 1,
    SubscriptionDeleted => 1,
    DeliveryScheduled => 1,
    DeliveryAttempted => 1,
    DeliverySucceeded => 1,
    DeliveryDeadLettered => 1,
    ExternalTicketLinked => 1,
    ExternalTicketUpdated => 1,
}

/// Lifts `payload` of schema version `from` to `M`'s version today, one
/// step at a time. `Err` names the step that failed.
pub fn upcast_to_current<M: EventSchema>(from: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut bytes = payload.to_vec();
    let mut version = from;
    while version < M::VERSION {
        bytes = M::upcast(version, &bytes)
            .map_err(|e| format!("upcasting {} from schema version {version}: {e}", M::full_name()))?;
        version += 1;
    }
    Ok(bytes)
}
