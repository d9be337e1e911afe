//! Checks the triage contracts: `TriageService` and `CaseService` in the
//! descriptor set, the command conventions, the case events and SSVC.

use prost::{Message, Name};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet, ServiceDescriptorProto};
use psirt_proto::{FILE_DESCRIPTOR_SET, common, events, triage};

fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("FILE_DESCRIPTOR_SET decodes")
}

fn service<'a>(set: &'a FileDescriptorSet, package: &str, name: &str) -> &'a ServiceDescriptorProto {
    set.file
        .iter()
        .filter(|f| f.package() == package)
        .flat_map(|f| f.service.iter())
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("service {package}.{name} present"))
}

/// The top-level message with the fully-qualified `name` (with or without the
/// leading dot descriptors use in type references).
fn message<'a>(set: &'a FileDescriptorSet, name: &str) -> &'a DescriptorProto {
    let name = name.trim_start_matches('.');
    set.file
        .iter()
        .flat_map(|f| f.message_type.iter().map(move |m| (f.package(), m)))
        .find(|(package, m)| format!("{package}.{}", m.name()) == name)
        .map(|(_, m)| m)
        .unwrap_or_else(|| panic!("message {name} present"))
}

fn field_names(msg: &DescriptorProto) -> Vec<&str> {
    msg.field.iter().map(|f| f.name()).collect()
}

const TRIAGE_COMMANDS: [&str; 12] = [
    "StartTriage",
    "AssignCase",
    "AssessSeverity",
    "SetAffectedProducts",
    "AcceptCase",
    "RejectCase",
    "MarkDuplicate",
    "AssignCve",
    "SetEmbargo",
    "EscalateCase",
    "CloseCase",
    "ReopenCase",
];

#[test]
fn descriptor_set_contains_triage_service() {
    let set = descriptor_set();
    let service = service(&set, "psirt.triage.v1", "TriageService");
    let methods: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
    for rpc in TRIAGE_COMMANDS {
        assert!(methods.contains(&rpc), "missing rpc {rpc}: {methods:?}");
    }
    assert_eq!(methods.len(), TRIAGE_COMMANDS.len(), "unexpected rpcs: {methods:?}");
}

#[test]
fn descriptor_set_contains_case_service() {
    let set = descriptor_set();
    let service = service(&set, "psirt.triage.v1", "CaseService");
    let methods: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
    for rpc in ["GetCase", "ListCases", "WatchCases", "GetCaseTimeline"] {
        assert!(methods.contains(&rpc), "missing rpc {rpc}: {methods:?}");
    }
    for method in &service.method {
        // Only WatchCases streams, and only from the server.
        assert!(!method.client_streaming(), "{} streams from the client", method.name());
        assert_eq!(method.server_streaming(), method.name() == "WatchCases", "{}", method.name());
    }
}

/// Every command takes `case_id`, `request_id` and an explicitly optional
/// `uint64 expected_version`, and answers with the updated `Case`.
#[test]
fn triage_commands_follow_the_conventions() {
    let set = descriptor_set();
    let service = service(&set, "psirt.triage.v1", "TriageService");
    for method in &service.method {
        let request = message(&set, method.input_type());
        let field = |name: &str| {
            request
                .field
                .iter()
                .find(|f| f.name() == name)
                .unwrap_or_else(|| panic!("{} lacks {name}", request.name()))
        };
        assert_eq!(field("case_id").r#type(), Type::String, "{}", request.name());
        assert_eq!(field("request_id").r#type(), Type::String, "{}", request.name());
        let expected_version = field("expected_version");
        assert_eq!(expected_version.r#type(), Type::Uint64, "{}", request.name());
        assert!(expected_version.proto3_optional(), "{}.expected_version is not optional", request.name());

        let response = message(&set, method.output_type());
        let case = response
            .field
            .iter()
            .find(|f| f.name() == "case")
            .unwrap_or_else(|| panic!("{} lacks case", response.name()));
        assert_eq!(case.type_name(), ".psirt.triage.v1.Case", "{}", response.name());
    }
}

#[test]
fn case_view_carries_the_whole_case() {
    let set = descriptor_set();
    let case = message(&set, "psirt.triage.v1.Case");
    let names = field_names(case);
    for field in [
        "case_id",
        "case_key",
        "status",
        "title",
        "report_ids",
        "suspected_duplicate_case_ids",
        "assignee",
        "severity",
        "affected_products",
        "cve_ids",
        "embargo",
        "escalation_level",
        "sla_clocks",
        "remediation",
        "advisory",
        "external_tickets",
        "resolution",
        "root_cause",
        "lessons_learned",
        "version",
        "opened_at",
        "updated_at",
        "closed_at",
    ] {
        assert!(names.contains(&field), "Case lacks {field}: {names:?}");
    }
    let version = case.field.iter().find(|f| f.name() == "version").expect("version");
    assert_eq!(version.r#type(), Type::Uint64);

    let embargo = field_names(message(&set, "psirt.triage.v1.Embargo"));
    for field in ["disclosure_at", "time_zone", "local_disclosure_time", "active"] {
        assert!(embargo.contains(&field), "Embargo lacks {field}");
    }
    let sla = field_names(message(&set, "psirt.triage.v1.SlaClockStatus"));
    for field in ["clock", "state", "due_at", "met_at"] {
        assert!(sla.contains(&field), "SlaClockStatus lacks {field}");
    }
}

#[test]
fn watch_and_timeline_messages() {
    let set = descriptor_set();
    let watch = message(&set, "psirt.triage.v1.WatchCasesRequest");
    let after = watch.field.iter().find(|f| f.name() == "after_sequence").expect("after_sequence");
    assert_eq!(after.r#type(), Type::Uint64);
    assert!(after.proto3_optional());
    let change = field_names(message(&set, "psirt.triage.v1.CaseChange"));
    for field in ["sequence", "event_type", "case"] {
        assert!(change.contains(&field), "CaseChange lacks {field}");
    }

    let entry = message(&set, "psirt.triage.v1.TimelineEntry");
    let names = field_names(entry);
    for field in ["sequence", "event_type", "occurred_at", "actor", "subject", "event", "summary"] {
        assert!(names.contains(&field), "TimelineEntry lacks {field}");
    }
    let event = entry.field.iter().find(|f| f.name() == "event").expect("event");
    assert_eq!(event.type_name(), ".google.protobuf.Any");
    // Any is in the set, so a reflection client can decode the timeline.
    message(&set, "google.protobuf.Any");
}

/// Every event of the domain's case aggregate (`psirt_domain::case::CaseEvent`)
/// and every triage fact has a proto message, and every message of case.proto
/// starts with `case_id` and carries the instant it occurred.
#[test]
fn case_events_are_complete() {
    let set = descriptor_set();
    let case_file =
        set.file.iter().find(|f| f.name() == "psirt/events/v1/case.proto").expect("case.proto in the set");
    let names: Vec<&str> = case_file.message_type.iter().map(|m| m.name()).collect();
    for event in [
        // The domain's events.
        "CaseOpened",
        "TriageStarted",
        "CaseAssigned",
        "CaseAccepted",
        "CaseRejected",
        "CaseMarkedDuplicate",
        "RemediationStarted",
        "CaseFixed",
        "CaseDisclosed",
        "CaseClosed",
        "CaseReopened",
        // The rest of what triage records.
        "SeverityAssessed",
        "AffectedProductsSet",
        "DuplicateLinked",
        "CveAssigned",
        "EmbargoSet",
        "CaseEscalated",
        "SlaBreached",
    ] {
        assert!(names.contains(&event), "missing event {event}: {names:?}");
    }
    for event in &case_file.message_type {
        let first = event.field.iter().find(|f| f.number() == 1).expect("field 1");
        assert_eq!((first.name(), first.r#type()), ("case_id", Type::String), "{}", event.name());
        assert!(
            event.field.iter().any(|f| f.type_name() == ".google.protobuf.Timestamp"
                && f.label() == Label::Optional
                && f.name().ends_with("_at")),
            "{} has no occurrence timestamp",
            event.name()
        );
    }
}

#[test]
fn ssvc_is_the_supplier_tree() {
    let set = descriptor_set();
    let ssvc = field_names(message(&set, "psirt.common.v1.Ssvc"));
    assert_eq!(
        ssvc,
        [
            "exploitation",
            "automatable",
            "value_density",
            "technical_impact",
            "public_safety_impact",
            "decision"
        ]
    );
    assert_eq!(common::SsvcExploitation::Poc.as_str_name(), "SSVC_EXPLOITATION_POC");
    assert_eq!(common::SsvcValueDensity::Concentrated.as_str_name(), "SSVC_VALUE_DENSITY_CONCENTRATED");
    assert_eq!(
        common::SsvcPublicSafetyImpact::Significant.as_str_name(),
        "SSVC_PUBLIC_SAFETY_IMPACT_SIGNIFICANT"
    );
    let decisions: Vec<&str> = [
        common::SsvcDecision::Defer,
        common::SsvcDecision::Scheduled,
        common::SsvcDecision::OutOfCycle,
        common::SsvcDecision::Immediate,
    ]
    .iter()
    .map(|d| d.as_str_name())
    .collect();
    assert_eq!(
        decisions,
        [
            "SSVC_DECISION_DEFER",
            "SSVC_DECISION_SCHEDULED",
            "SSVC_DECISION_OUT_OF_CYCLE",
            "SSVC_DECISION_IMMEDIATE"
        ]
    );
}

#[test]
fn timeline_event_round_trips_through_any() {
    let event = events::CaseAccepted {
        case_id: "0190f6a4-8e1c-7b2a-9d3e-1f2a3b4c5d6e".into(),
        case_key: "PSIRT-2026-0001".into(),
        severity: common::SeverityRating::High as i32,
        ..Default::default()
    };
    let entry = triage::TimelineEntry {
        sequence: 42,
        event_type: events::CaseAccepted::full_name(),
        event: Some(prost_types::Any::from_msg(&event).expect("packs")),
        summary: "Accepted".into(),
        ..Default::default()
    };
    let decoded = triage::TimelineEntry::decode(entry.encode_to_vec().as_slice()).expect("decodes");
    let any = decoded.event.expect("event");
    assert_eq!(any.type_url, format!("type.googleapis.com/{}", decoded.event_type));
    assert_eq!(any.to_msg::<events::CaseAccepted>().expect("unpacks"), event);
}

#[test]
fn triage_service_code_is_generated() {
    let _ = std::any::type_name::<
        triage::triage_service_client::TriageServiceClient<tonic::transport::Channel>,
    >();
    let _ =
        std::any::type_name::<triage::case_service_client::CaseServiceClient<tonic::transport::Channel>>();
    assert_eq!(
        <triage::triage_service_server::TriageServiceServer<()> as tonic::server::NamedService>::NAME,
        "psirt.triage.v1.TriageService"
    );
    assert_eq!(
        <triage::case_service_server::CaseServiceServer<()> as tonic::server::NamedService>::NAME,
        "psirt.triage.v1.CaseService"
    );
    assert_eq!(triage::Case::full_name(), "psirt.triage.v1.Case");
    // A lookup by key is expressible.
    let by_key = triage::GetCaseRequest {
        lookup: Some(triage::get_case_request::Lookup::CaseKey("PSIRT-2026-0001".into())),
    };
    assert_eq!(triage::GetCaseRequest::decode(by_key.encode_to_vec().as_slice()).expect("decodes"), by_key);
}
