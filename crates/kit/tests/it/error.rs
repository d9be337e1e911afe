//! `ApiError` to `tonic::Status`, decoded again as a client would see it on the wire.

use psirt_kit::{ApiError, FieldViolation};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// Sends a status through its HTTP header encoding, like a trailers-only response.
fn over_the_wire(status: Status) -> Status {
    let response = status.into_http::<()>();
    Status::from_header_map(response.headers()).expect("status in headers")
}

#[test]
fn invalid_argument_round_trips_its_field_violations() {
    let violations = vec![
        FieldViolation::new("report.title", "must not be empty"),
        FieldViolation::new("report.affected_products[1].version", "not a valid version range"),
    ];
    let status = over_the_wire(Status::from(ApiError::InvalidArgument(violations.clone())));
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("report.title"), "{}", status.message());
    let bad_request = status.get_details_bad_request().expect("bad request details");
    let decoded: Vec<FieldViolation> = bad_request
        .field_violations
        .into_iter()
        .map(|v| FieldViolation::new(v.field, v.description))
        .collect();
    assert_eq!(decoded, violations);
}

#[test]
fn failed_precondition_carries_the_current_state() {
    let status = over_the_wire(Status::from(ApiError::failed_precondition("case is closed", Some("closed"))));
    assert_eq!(status.code(), Code::FailedPrecondition);
    let failure = status.get_details_precondition_failure().expect("precondition failure");
    assert_eq!(failure.violations.len(), 1);
    assert_eq!(failure.violations[0].subject, "closed");
    assert_eq!(failure.violations[0].description, "case is closed");
    let info = status.get_details_error_info().expect("error info");
    assert_eq!(info.metadata["current_state"], "closed");
    assert_eq!(info.domain, "psirt");
}

#[test]
fn not_found_aborted_and_internal() {
    let status = over_the_wire(Status::from(ApiError::not_found("case", "c-42")));
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "case c-42 not found");
    let resource = status.get_details_resource_info().expect("resource info");
    assert_eq!(resource.resource_type, "case");
    assert_eq!(resource.resource_name, "c-42");

    let status = over_the_wire(Status::from(ApiError::Aborted {
        message: "case c-42 was changed concurrently".to_owned(),
    }));
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(status.get_details_error_info().expect("error info").reason, "CONCURRENCY_CONFLICT");

    let status = over_the_wire(Status::from(ApiError::internal("connection reset by peer")));
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(status.message(), "internal error");
}
