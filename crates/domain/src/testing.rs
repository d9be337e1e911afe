//! Given/when/then for aggregates: given these past events, when this
//! command, then these new events or this error. No IO, a fixed clock.
//! Available to other crates' tests with the `testing` feature.

use std::fmt::Debug;

use time::OffsetDateTime;
use time::macros::datetime;

use crate::aggregate::Aggregate;

/// The clock of every scenario unless [`Given::at`] says otherwise.
pub const NOW: OffsetDateTime = datetime!(2026-03-02 09:30 UTC);

/// Starts a scenario from past events.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let mut aggregate = A::default();
    for event in events {
        aggregate.apply(&event);
    }
    Given { aggregate, now: NOW }
}

/// The aggregate rebuilt from past events, waiting for a command.
#[must_use = "a scenario does nothing until `when` and `then`"]
pub struct Given<A: Aggregate> {
    aggregate: A,
    now: OffsetDateTime,
}

impl<A: Aggregate> Given<A> {
    /// Decides at this instant instead of [`NOW`].
    pub fn at(mut self, now: OffsetDateTime) -> Self {
        self.now = now;
        self
    }

    pub fn when(self, command: A::Command) -> Then<A> {
        let result = self.aggregate.handle(command, self.now);
        Then { aggregate: self.aggregate, result }
    }
}

/// The outcome of a command, to check.
#[must_use = "a scenario checks nothing until `then`"]
pub struct Then<A: Aggregate> {
    aggregate: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A> Then<A>
where
    A: Aggregate,
    A::Event: Debug + PartialEq,
    A::Error: Debug + PartialEq,
{
    /// Asserts the command produced exactly these events, applies them, and
    /// returns the new state for further checks.
    #[track_caller]
    pub fn then(mut self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "unexpected events");
                let before = self.aggregate.version();
                for event in &events {
                    self.aggregate.apply(event);
                }
                assert_eq!(self.aggregate.version(), before + events.len() as u64, "version");
                self.aggregate
            }
            Err(error) => panic!("expected events {expected:?}, got error {error:?}"),
        }
    }

    /// Asserts the command was accepted, whatever its events, applies them,
    /// and returns the new state.
    #[track_caller]
    pub fn then_ok(mut self) -> A {
        match self.result {
            Ok(events) => {
                for event in &events {
                    self.aggregate.apply(event);
                }
                self.aggregate
            }
            Err(error) => panic!("expected the command to be accepted, got error {error:?}"),
        }
    }

    /// Asserts the command was a no-op: accepted, and no event.
    #[track_caller]
    pub fn then_nothing(self) -> A {
        self.then([])
    }

    #[track_caller]
    pub fn then_error(self, expected: A::Error) {
        match self.result {
            Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
            Err(error) => assert_eq!(error, expected, "unexpected error"),
        }
    }

    /// The raw outcome, for checks the helpers do not cover.
    pub fn result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}
