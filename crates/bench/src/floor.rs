//! The gRPC floor: what `SubmitReport` costs on this machine when the
//! service does nothing at all.
//!
//! `psirt-bench floor-server` (a child of `all`, started from this same
//! executable) serves `psirt.intake.v1.IntakeService` on the service kit's
//! gRPC stack exactly as `psirt-intake` does (telemetry and auth layers,
//! health, reflection, JSON logs, the Prometheus meter) and answers every
//! `SubmitReport` with the response the intake would give for the benchmark's
//! report, built once from the first request by the intake's own mapping and
//! domain. No event store, no read model. The same load then measures the
//! highest rate any implementation of the call could reach here: the bench
//! client, HTTP/2 and the server stack on the same cores. `all` reports it
//! next to the raw JetStream rate, so a run shows how much of the raw rate
//! the transport alone leaves to the service.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use psirt_domain::{CaseId, Report, ReportCommand, ReportId};
use psirt_kit::config::{AuthConfig, AuthMode, GrpcConfig, LogConfig, LogFormat, OtelConfig};
use psirt_kit::{AuthLayer, GrpcServer, Shutdown};
use psirt_proto::intake::intake_service_server::{IntakeService, IntakeServiceServer};
use psirt_proto::intake::{self};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::{Request, Response, Status};

/// The name of the floor workload in reports.
pub const WORKLOAD: &str = "grpc floor (no-op)";

/// The line the server prints on stdout once it listens, before the address.
const LISTENING: &str = "psirt-bench floor-server listening on ";

/// How long the child may take to print its address.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// Serves the no-op intake until SIGINT/SIGTERM (the parent kills it).
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    // The intake's telemetry as the benchmark starts it (log level warn).
    let log = LogConfig { level: "warn".to_owned(), format: LogFormat::Json };
    let telemetry = psirt_kit::telemetry::init("psirt-bench-floor", &log, &OtelConfig::default())?;
    let auth = AuthConfig { mode: AuthMode::None, ..AuthConfig::default() };
    let auth = AuthLayer::from_config(&auth, psirt_intake::api::policy()).await?;
    let server = GrpcServer::bind(&GrpcConfig { listen, ..GrpcConfig::default() }).await?;
    println!("{LISTENING}{}", server.local_addr());
    let routes = psirt_kit::ServiceRoutes::new().add_service(IntakeServiceServer::new(NoopIntake::default()));
    let result = server
        .serve(
            routes,
            auth,
            &[psirt_proto::FILE_DESCRIPTOR_SET],
            &[psirt_intake::api::SERVICE_NAME],
            Shutdown::on_signals(),
        )
        .await;
    telemetry.shutdown();
    result
}

/// Answers `SubmitReport` with one prepared response; every other method is
/// unimplemented.
#[derive(Default)]
struct NoopIntake {
    response: OnceLock<Arc<intake::SubmitReportResponse>>,
}

/// The response `psirt-intake` gives for `req` as the first submission of a
/// new report (version 1, no duplicate hint).
fn intake_response(req: intake::SubmitReportRequest) -> Result<intake::SubmitReportResponse, Status> {
    let request_id = req.request_id.trim().to_owned();
    let report_id = ReportId::for_request(crate::payload::ACTOR, &request_id);
    let submit = psirt_intake::mapping::submission(report_id, &request_id, req).map_err(Status::from)?;
    let events = Report::default()
        .handle(ReportCommand::Submit(Box::new(submit)), time::OffsetDateTime::now_utc())
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let mut view = intake::Report::default();
    for event in &events {
        psirt_intake::mapping::fold(&mut view, event, 1);
    }
    Ok(intake::SubmitReportResponse {
        report_id: report_id.to_string(),
        case_id: CaseId::for_report(report_id).to_string(),
        suspected_duplicate_report_ids: Vec::new(),
        report: Some(view),
    })
}

#[tonic::async_trait]
impl IntakeService for NoopIntake {
    async fn submit_report(
        &self,
        request: Request<intake::SubmitReportRequest>,
    ) -> Result<Response<intake::SubmitReportResponse>, Status> {
        if let Some(prepared) = self.response.get() {
            return Ok(Response::new(intake::SubmitReportResponse::clone(prepared)));
        }
        let response = intake_response(request.into_inner())?;
        let prepared = self.response.get_or_init(|| Arc::new(response));
        Ok(Response::new(intake::SubmitReportResponse::clone(prepared)))
    }

    async fn get_report(
        &self,
        _: Request<intake::GetReportRequest>,
    ) -> Result<Response<intake::GetReportResponse>, Status> {
        Err(Status::unimplemented("the floor server only answers SubmitReport"))
    }

    async fn list_reports(
        &self,
        _: Request<intake::ListReportsRequest>,
    ) -> Result<Response<intake::ListReportsResponse>, Status> {
        Err(Status::unimplemented("the floor server only answers SubmitReport"))
    }

    async fn acknowledge_report(
        &self,
        _: Request<intake::AcknowledgeReportRequest>,
    ) -> Result<Response<intake::AcknowledgeReportResponse>, Status> {
        Err(Status::unimplemented("the floor server only answers SubmitReport"))
    }

    async fn add_reporter_message(
        &self,
        _: Request<intake::AddReporterMessageRequest>,
    ) -> Result<Response<intake::AddReporterMessageResponse>, Status> {
        Err(Status::unimplemented("the floor server only answers SubmitReport"))
    }
}

/// A running floor server (this executable, `floor-server`), killed on drop.
pub struct FloorProcess {
    child: Child,
    addr: SocketAddr,
}

impl FloorProcess {
    /// Starts the floor server on a free port and waits for its address.
    pub async fn start() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot locate psirt-bench")?;
        let mut child = Command::new(exe)
            .args(["floor-server", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("failed to start the floor server")?;
        let stdout = child.stdout.take().context("the floor server has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        // The server's JSON log shares stdout: skip to the address line.
        let addr = tokio::time::timeout(START_DEADLINE, async {
            loop {
                match lines.next_line().await.context("failed to read the floor server's output")? {
                    Some(line) => {
                        if let Some(addr) = parse_listening(&line) {
                            return Ok(addr);
                        }
                    }
                    None => bail!("the floor server exited before listening"),
                }
            }
        })
        .await
        .context("the floor server did not print its address in time")??;
        // Keep draining its log so a write never blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, addr })
    }

    /// `http://<address>`.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills the child and waits for it (bounded).
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

fn parse_listening(line: &str) -> Option<SocketAddr> {
    line.strip_prefix(LISTENING)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_line_parses_and_nothing_else_does() {
        assert_eq!(
            parse_listening(&format!("{LISTENING}127.0.0.1:4567")),
            Some(SocketAddr::from(([127, 0, 0, 1], 4567)))
        );
        assert_eq!(parse_listening("127.0.0.1:4567"), None);
        assert_eq!(parse_listening(&format!("{LISTENING}nowhere")), None);
    }

    #[test]
    fn the_prepared_response_is_what_the_intake_answers_a_first_submission() {
        let request = crate::payload::SubmitTemplate::new(uuid::Uuid::now_v7()).request(3, 7);
        let request_id = request.request_id.clone();
        let response = intake_response(request).expect("the benchmark's report is valid");
        let expected_id = ReportId::for_request(crate::payload::ACTOR, &request_id);
        assert_eq!(response.report_id, expected_id.to_string());
        assert_eq!(response.case_id, CaseId::for_report(expected_id).to_string());
        let view = response.report.expect("the response carries the report");
        assert_eq!(view.version, 1);
        assert_eq!(view.affected_products, crate::payload::PRODUCTS.to_vec());
        assert!(view.description.len() > 1000, "the view carries the description");
    }
}
