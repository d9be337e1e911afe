//! The intake API's side of a report: the domain command a `SubmitReport`
//! asks for, and the fold of report events into the `Report` view that
//! `GetReport` answers and the read model keeps. The events' stored form is
//! in `psirt_codec::report`, re-exported here.

pub use psirt_codec::report::*;
use psirt_domain::{ReportEvent, ReportId, SubmitReport};
use psirt_proto::intake;

/// The domain command a `SubmitReport` request asks for, validated later
/// by the domain (all problems at once); only an unreadable timestamp is
/// refused here. `request_id` is the trimmed idempotency key, empty if none.
pub fn submission(
    report_id: ReportId,
    request_id: &str,
    req: intake::SubmitReportRequest,
) -> Result<SubmitReport, psirt_kit::ApiError> {
    let requested_disclosure_at = match req.requested_disclosure_at.as_ref() {
        None => None,
        Some(t) => Some(from_timestamp(t).ok_or_else(|| {
            psirt_kit::ApiError::invalid_argument("requested_disclosure_at", "not a valid timestamp")
        })?),
    };
    Ok(SubmitReport {
        report_id,
        request_id: (!request_id.is_empty()).then(|| request_id.to_owned()),
        title: req.title,
        description: req.description,
        reporter: reporter_from_proto(req.reporter.as_ref()),
        channel: channel_from_proto(req.channel),
        affected_products: req.affected_products,
        suggested_cvss_vector: Some(req.suggested_cvss_vector),
        requested_disclosure_at,
        external_reference: Some(req.external_reference),
    })
}

/// Folds one domain event into the view; `sequence` becomes its version.
pub fn fold(view: &mut intake::Report, event: &ReportEvent, sequence: u64) {
    view.version = sequence;
    match event {
        ReportEvent::ReportReceived {
            report_id,
            case_id,
            title,
            description,
            reporter,
            channel,
            affected_products,
            suggested_cvss_vector,
            requested_disclosure_at,
            received_at,
            external_reference,
            request_id: _,
        } => {
            view.report_id = report_id.to_string();
            view.case_id = case_id.to_string();
            view.status = intake::ReportStatus::Received.into();
            view.title = title.clone();
            view.description = description.clone();
            view.reporter = Some(reporter_to_proto(reporter));
            view.channel = channel_to_proto(*channel).into();
            view.affected_products = affected_products.clone();
            view.suggested_cvss_vector = suggested_cvss_vector.clone().unwrap_or_default();
            view.requested_disclosure_at = requested_disclosure_at.map(timestamp);
            view.received_at = Some(timestamp(*received_at));
            view.external_reference = external_reference.clone().unwrap_or_default();
        }
        ReportEvent::ReportAcknowledged { acknowledged_at, .. } => {
            view.status = intake::ReportStatus::Acknowledged.into();
            view.acknowledged_at = Some(timestamp(*acknowledged_at));
        }
        ReportEvent::ReporterMessageAdded { message_id, direction, author, body, added_at, .. } => {
            view.messages.push(intake::ReporterMessage {
                message_id: message_id.to_string(),
                direction: direction_to_proto(*direction).into(),
                author: author.clone(),
                body: body.clone(),
                sent_at: Some(timestamp(*added_at)),
            });
        }
        ReportEvent::DuplicateSuspected { other, .. } => {
            let other = other.to_string();
            if !view.suspected_duplicate_report_ids.contains(&other) {
                view.suspected_duplicate_report_ids.push(other);
            }
        }
    }
}
