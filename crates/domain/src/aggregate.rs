//! The decide/evolve contract every aggregate follows, so the service layer
//! and the test helpers can load, decide and append without knowing which
//! aggregate they hold.

use time::OffsetDateTime;

/// An event-sourced aggregate: `handle` decides, `apply` evolves.
///
/// `handle` never mutates and never does IO; the current time comes in as an
/// argument so that decisions are reproducible in tests and on replay.
/// `apply` is infallible: an event is a fact that already happened, so
/// refusing it on replay would only make the aggregate unloadable.
pub trait Aggregate: Default {
    type Command;
    type Event: DomainEvent;
    type Error: std::error::Error;

    /// The aggregate's name in stream subjects (`psirt.evt.<type>.<id>`).
    const AGGREGATE_TYPE: &'static str;

    fn handle(&self, command: Self::Command, now: OffsetDateTime) -> Result<Vec<Self::Event>, Self::Error>;

    fn apply(&mut self, event: &Self::Event);

    /// How many events have been applied.
    fn version(&self) -> u64;

    /// Rebuilds the aggregate from its history.
    fn from_events<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        let mut aggregate = Self::default();
        for event in events {
            aggregate.apply(event);
        }
        aggregate
    }
}

/// A past-tense fact with a stable name and schema version.
///
/// The name is what the event store and the projections key on: never rename
/// one; a breaking change to an event's shape is a new version.
pub trait DomainEvent {
    /// The stable name, e.g. `ReportReceived`.
    fn event_type(&self) -> &'static str;

    /// The schema version of this event's payload.
    fn event_version(&self) -> u32 {
        1
    }
}
