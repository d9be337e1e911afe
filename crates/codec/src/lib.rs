//! Every stored event's mapping between the domain's form and its protobuf
//! form on the stream, one module per area, and the [`EventCodec`]s the
//! shared command path (`psirt_eventstore::Repository`) loads and appends
//! with:
//!
//! | module | aggregate (subject) | codec |
//! | --- | --- | --- |
//! | [`report`] | `Report` (`psirt.evt.report.<id>`) | [`report::ReportCodec`] |
//! | [`case`] | `Case` (`psirt.evt.case.<id>`) | [`case::CaseCodec`] |
//! | [`remediation`] | `Plan` (`psirt.evt.remediation.<id>`), `Advisory` (`psirt.evt.advisory.<id>`) | [`remediation::PlanCodec`], [`remediation::AdvisoryCodec`] |
//! | [`notification`] | `Subscription`, `Delivery`, tracker links (`psirt.evt.ticket.<id>`) | [`notification::SubscriptionCodec`], [`notification::DeliveryCodec`] |
//!
//! Subjects are built from each aggregate's `AGGREGATE_TYPE`. Schema
//! versions and upcasters of the payloads are in `psirt_proto::schema`.
//! [`convert`] holds the shared value types (ratings, products).
//!
//! [`EventCodec`]: psirt_eventstore::EventCodec

pub mod case;
pub mod convert;
pub mod notification;
pub mod remediation;
pub mod report;
