//! `psirt-bench floor-server`: the no-op SubmitReport server `all` loads as
//! the gRPC floor answers as the intake would for a first submission, and
//! nothing else.

use std::time::Duration;

use psirt_proto::common;
use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_proto::intake::{GetReportRequest, SubmitReportRequest};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn the_floor_server_answers_submissions_like_the_intake_and_nothing_else() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_psirt-bench"))
        .args(["floor-server", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(addr) = line.strip_prefix("psirt-bench floor-server listening on ") {
                return addr.trim().to_owned();
            }
        }
        panic!("the floor server exited without listening");
    })
    .await
    .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let mut client = IntakeServiceClient::connect(format!("http://{addr}")).await.unwrap();
    let request = SubmitReportRequest {
        request_id: "floor-test-1".to_owned(),
        title: "Stored XSS in the export preview".to_owned(),
        description: "The export preview does not escape titles.".to_owned(),
        reporter: Some(common::Reporter {
            name: "R. Searcher".to_owned(),
            email: "r@example.org".to_owned(),
            organization: String::new(),
        }),
        channel: common::ReportChannel::Api as i32,
        affected_products: vec!["acme-portal 4.2".to_owned()],
        suggested_cvss_vector: "CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N".to_owned(),
        ..SubmitReportRequest::default()
    };
    let first = client.submit_report(request.clone()).await.unwrap().into_inner();
    let report_id = psirt_domain::ReportId::for_request("anonymous", "floor-test-1");
    assert_eq!(first.report_id, report_id.to_string());
    assert_eq!(first.case_id, psirt_domain::CaseId::for_report(report_id).to_string());
    let view = first.report.clone().unwrap();
    assert_eq!(view.title, request.title);
    assert_eq!(view.description, request.description);
    assert_eq!(view.affected_products, request.affected_products);
    assert_eq!(view.version, 1);

    // Later calls get the prepared answer without any work.
    let again = client.submit_report(request).await.unwrap().into_inner();
    assert_eq!(again, first);

    let status = client.get_report(GetReportRequest { report_id: first.report_id }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    child.kill().await.unwrap();
}
