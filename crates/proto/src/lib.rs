//! Generated protobuf contracts of the PSIRT platform.
//!
//! The `.proto` sources live in `proto/` at the repository root; `build.rs`
//! compiles them with protox and generates code with tonic-prost-build.
//!
//! - [`admin`] (`psirt.admin.v1`): `AdminService`, operations on a running
//!   service (rebuild a read model), served by every service with read models.
//! - [`common`] (`psirt.common.v1`): shared types (reporter, CVSS, SSVC, ...).
//! - [`events`] (`psirt.events.v1`): the event payloads of every aggregate.
//!   Every message implements [`prost::Name`], so
//!   `ReportReceived::full_name()` is the event type of the NATS envelope.
//! - [`intake`] (`psirt.intake.v1`): `IntakeService` messages, client and server.
//! - [`notification`] (`psirt.notification.v1`): `NotificationService`
//!   (subscriptions, deliveries, external ticket links).
//! - [`remediation`] (`psirt.remediation.v1`): `RemediationService` (plans,
//!   releases, VEX status) and `AdvisoryService` (draft, publish, export).
//! - [`triage`] (`psirt.triage.v1`): `TriageService` (case decisions) and
//!   `CaseService` (case view: get, list, watch, timeline), messages, clients
//!   and servers.
//! - [`schema`]: the schema version of every stored event and the upcasters
//!   that lift older payloads ([`EventSchema`]).
//! - [`FILE_DESCRIPTOR_SET`]: all descriptors, for gRPC reflection and for
//!   decoding any event dynamically (e.g. to JSON).
//! - [`MessageLimits`]: the message size limits of every generated server.

/// Module tree mirroring the protobuf packages (`psirt.<area>.v1`).
pub mod psirt {
    /// Package `psirt.admin`.
    pub mod admin {
        /// Package `psirt.admin.v1`: operations on a running service (read model rebuild).
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all, rust_2018_idioms)]
            include!(concat!(env!("OUT_DIR"), "/psirt.admin.v1.rs"));
        }
    }

    /// Package `psirt.common`.
    pub mod common {
        /// Package `psirt.common.v1`: types shared by events and APIs.
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all, rust_2018_idioms)]
            include!(concat!(env!("OUT_DIR"), "/psirt.common.v1.rs"));
        }
    }

    /// Package `psirt.events`.
    pub mod events {
        /// Package `psirt.events.v1`: event payloads of all aggregates.
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all, rust_2018_idioms)]
            include!(concat!(env!("OUT_DIR"), "/psirt.events.v1.rs"));
        }
    }

    /// Package `psirt.intake`.
    pub mod intake {
        /// Package `psirt.intake.v1`: the intake API.
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all, rust_2018_idioms)]
            include!(concat!(env!("OUT_DIR"), "/psirt.intake.v1.rs"));
        }
    }

    /// Package `psirt.notification`.
    pub mod notification {
        /// Package `psirt.notification.v1`: the notification API.
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all, rust_2018_idioms)]
            include!(concat!(env!("OUT_DIR"), "/psirt.notification.v1.rs"));
        }
    }

    /// Package `psirt.remediation`.
    pub mod remediation {
        /// Package `psirt.remediation.v1`: the remediation plan and advisory APIs.
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all, rust_2018_idioms)]
            include!(concat!(env!("OUT_DIR"), "/psirt.remediation.v1.rs"));
        }
    }

    /// Package `psirt.triage`.
    pub mod triage {
        /// Package `psirt.triage.v1`: the triage and case view APIs.
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all, rust_2018_idioms)]
            include!(concat!(env!("OUT_DIR"), "/psirt.triage.v1.rs"));
        }
    }
}

pub mod schema;

pub use psirt::admin::v1 as admin;
pub use psirt::common::v1 as common;
pub use psirt::events::v1 as events;
pub use psirt::intake::v1 as intake;
pub use psirt::notification::v1 as notification;
pub use psirt::remediation::v1 as remediation;
pub use psirt::triage::v1 as triage;

/// Encoded `google.protobuf.FileDescriptorSet` of every `.proto` file of the
/// project plus its imports (`google/protobuf/*.proto`), with source info
/// (comments). Feed it to gRPC reflection or to a dynamic decoder.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/psirt_descriptor.bin"));

/// The largest message a generated gRPC server decodes and encodes. Implemented (by
/// `build.rs`) for the server of every service in [`FILE_DESCRIPTOR_SET`]; the service kit
/// registers servers through it, so each gets the configured `grpc.max_message_bytes`.
pub trait MessageLimits {
    /// Sets both the decoding and the encoding limit to `max_bytes`.
    #[must_use]
    fn limit_messages(self, max_bytes: usize) -> Self;
}

include!(concat!(env!("OUT_DIR"), "/message_limits.rs"));

/// One RPC of a gRPC service in [`FILE_DESCRIPTOR_SET`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rpc {
    /// The full service name, `psirt.intake.v1.IntakeService`.
    pub service: String,
    /// The method name, `SubmitReport`.
    pub method: String,
    /// The client streams requests.
    pub client_streaming: bool,
    /// The server streams responses (`WatchCases`, `RebuildReadModel`).
    pub server_streaming: bool,
}

impl Rpc {
    /// The gRPC path, `/psirt.intake.v1.IntakeService/SubmitReport`.
    pub fn path(&self) -> String {
        format!("/{}/{}", self.service, self.method)
    }
}

/// Every RPC of the service named `service` (`psirt.intake.v1.IntakeService`) as the
/// descriptors declare it; empty for an unknown service. For tests that hold a policy
/// table or a client against the contract.
pub fn service_rpcs(service: &str) -> Vec<Rpc> {
    use prost::Message as _;
    let set =
        prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("FILE_DESCRIPTOR_SET decodes");
    set.file
        .iter()
        .flat_map(|file| file.service.iter().map(move |s| (file.package(), s)))
        .filter(|(package, s)| format!("{package}.{}", s.name()) == service)
        .flat_map(|(_, s)| s.method.iter())
        .map(|m| Rpc {
            service: service.to_owned(),
            method: m.name().to_owned(),
            client_streaming: m.client_streaming(),
            server_streaming: m.server_streaming(),
        })
        .collect()
}

/// Package name of the event messages; the event type of an envelope is
/// `"{EVENTS_PACKAGE}.{MessageName}"`.
pub const EVENTS_PACKAGE: &str = "psirt.events.v1";

pub use schema::EventSchema;

/// The canonical name of a gRPC status code (`INVALID_ARGUMENT`), as the
/// gRPC specification and other tools spell it; `Code`'s `Display` is a
/// sentence instead.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
