//! Projections: events from the stream folded into SQL read models, exactly once.
//!
//! Each projection has a durable pull consumer. A batch of events is applied
//! in one SQL transaction together with the projection's checkpoint (the last
//! stream sequence applied); events at or below the checkpoint are skipped;
//! the batch is acknowledged only after the commit. A crash anywhere leaves
//! either the whole batch and its checkpoint or neither, so replaying
//! converges on the same state as a full rebuild.
//!
//! One runner per projection is active at a time: a lease in the checkpoint
//! row keeps a second replica of the service on standby.
//!
//! Where things are:
//! - `projection`: what a read model implements ([`Projection`], and
//!   [`PreparesBatches`] for pipelined rebuilds).
//! - `runner`: [`ProjectionRunner`], its consumer sessions and batches.
//! - `checkpoint`: the projection tables ([`ensure_schema`]), checkpoints
//!   and the lease.
//! - `parked`: events parked instead of applied, listed and replayed
//!   ([`ParkedEvents`]).
//! - `progress`: [`Progress`] and stall detection.
//! - `position`: whether a read model reflects a stream position, and
//!   waiting until it does ([`ReadModelPosition`]).
//! - `telemetry`: spans ([`event_span`], [`caused_span`]) and metrics.
//! - `settings`: [`ProjectionSettings`]; [`sql`]: helpers for batched writes.

mod checkpoint;
mod parked;
mod position;
mod progress;
mod projection;
mod runner;
mod settings;
pub mod sql;
mod telemetry;

pub use checkpoint::{checkpoint, ensure_schema};
pub use parked::{ParkedEvents, ParkedRow, REPLAY_LIMIT, ReplayError, ReplayOutcome};
pub use position::{PositionError, ReadModelPosition};
pub use progress::Progress;
pub use projection::{ApplyError, DeferrableIndex, Pipeline, PreparesBatches, Projection};
pub use psirt_eventstore::ownership::EventRule;
pub use runner::{BatchOutcome, ProjectionError, ProjectionRunner};
pub use settings::{ProjectionSettings, UndecodablePolicy};
pub use telemetry::{caused_span, event_span, record_stalled};
