//! Checks that the descriptor set and the generated code match the contracts.

use prost::{Message, Name};
use prost_types::FileDescriptorSet;
use psirt_proto::{FILE_DESCRIPTOR_SET, events, intake};

fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("FILE_DESCRIPTOR_SET decodes")
}

/// Fully-qualified names of all messages (top level) in the set.
fn message_names(set: &FileDescriptorSet) -> Vec<String> {
    set.file
        .iter()
        .flat_map(|file| {
            file.message_type.iter().map(move |msg| format!("{}.{}", file.package(), msg.name()))
        })
        .collect()
}

#[test]
fn descriptor_set_contains_intake_service() {
    let set = descriptor_set();
    let service = set
        .file
        .iter()
        .filter(|f| f.package() == "psirt.intake.v1")
        .flat_map(|f| f.service.iter())
        .find(|s| s.name() == "IntakeService")
        .expect("IntakeService present");
    let methods: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
    for rpc in ["SubmitReport", "GetReport", "ListReports", "AcknowledgeReport", "AddReporterMessage"] {
        assert!(methods.contains(&rpc), "missing rpc {rpc}: {methods:?}");
    }
}

#[test]
fn descriptor_set_contains_events_and_imports() {
    let set = descriptor_set();
    let names = message_names(&set);
    for event in [
        "psirt.events.v1.ReportReceived",
        "psirt.events.v1.ReportAcknowledged",
        "psirt.events.v1.DuplicateSuspected",
        "psirt.events.v1.CaseOpened",
        "psirt.events.v1.SeverityAssessed",
        "psirt.events.v1.CaseAccepted",
        "psirt.events.v1.EmbargoSet",
        "psirt.events.v1.RemediationActionPlanned",
        "psirt.events.v1.ProductStatusSet",
        "psirt.events.v1.AdvisoryPublished",
        "psirt.events.v1.DeliveryAttempted",
        "psirt.events.v1.ExternalTicketLinked",
        "psirt.common.v1.Reporter",
        "google.protobuf.Timestamp",
    ] {
        assert!(names.iter().any(|n| n == event), "missing message {event}");
    }
    // Comments are kept for reflection and documentation.
    assert!(
        set.file.iter().filter(|f| f.package().starts_with("psirt.")).all(|f| f.source_code_info.is_some())
    );
}

#[test]
fn generated_messages_know_their_names() {
    assert_eq!(events::ReportReceived::full_name(), "psirt.events.v1.ReportReceived");
    assert_eq!(events::ReportReceived::type_url(), "type.googleapis.com/psirt.events.v1.ReportReceived");
    assert_eq!(events::CaseOpened::PACKAGE, psirt_proto::EVENTS_PACKAGE);
    assert_eq!(intake::SubmitReportRequest::full_name(), "psirt.intake.v1.SubmitReportRequest");
}

#[test]
fn event_round_trips() {
    let event = events::ReportReceived {
        report_id: "0190f6a4-8e1c-7b2a-9d3e-1f2a3b4c5d6e".into(),
        title: "XSS in login page".into(),
        channel: psirt_proto::common::ReportChannel::Web as i32,
        reporter: Some(psirt_proto::common::Reporter {
            name: "Alice".into(),
            email: "alice@example.org".into(),
            organization: String::new(),
        }),
        ..Default::default()
    };
    let bytes = event.encode_to_vec();
    let decoded = events::ReportReceived::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(decoded, event);
}

#[test]
fn service_code_is_generated() {
    // Client and server exist and are nameable.
    let _ = std::any::type_name::<
        intake::intake_service_client::IntakeServiceClient<tonic::transport::Channel>,
    >();
    assert_eq!(
        <intake::intake_service_server::IntakeServiceServer<Unimplemented> as tonic::server::NamedService>::NAME,
        "psirt.intake.v1.IntakeService"
    );
}

/// Minimal server implementation to instantiate the generated server type.
struct Unimplemented;

#[tonic::async_trait]
impl intake::intake_service_server::IntakeService for Unimplemented {
    async fn submit_report(
        &self,
        _: tonic::Request<intake::SubmitReportRequest>,
    ) -> Result<tonic::Response<intake::SubmitReportResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("test"))
    }
    async fn get_report(
        &self,
        _: tonic::Request<intake::GetReportRequest>,
    ) -> Result<tonic::Response<intake::GetReportResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("test"))
    }
    async fn list_reports(
        &self,
        _: tonic::Request<intake::ListReportsRequest>,
    ) -> Result<tonic::Response<intake::ListReportsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("test"))
    }
    async fn acknowledge_report(
        &self,
        _: tonic::Request<intake::AcknowledgeReportRequest>,
    ) -> Result<tonic::Response<intake::AcknowledgeReportResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("test"))
    }
    async fn add_reporter_message(
        &self,
        _: tonic::Request<intake::AddReporterMessageRequest>,
    ) -> Result<tonic::Response<intake::AddReporterMessageResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("test"))
    }
}

#[test]
fn service_rpcs_lists_methods_and_streaming() {
    let rpcs = psirt_proto::service_rpcs("psirt.triage.v1.CaseService");
    let watch = rpcs.iter().find(|r| r.method == "WatchCases").expect("WatchCases");
    assert!(watch.server_streaming && !watch.client_streaming);
    assert_eq!(watch.path(), "/psirt.triage.v1.CaseService/WatchCases");
    assert!(rpcs.iter().any(|r| r.method == "GetCase" && !r.server_streaming));
    assert!(psirt_proto::service_rpcs("psirt.nope.v1.Nope").is_empty());
}
