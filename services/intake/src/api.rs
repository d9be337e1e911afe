//! The `psirt.intake.v1.IntakeService` gRPC surface: authentication has
//! happened in the layer in front; each RPC takes the caller's principal and
//! hands the request to the command handlers.

use psirt_kit::request::principal;
use psirt_kit::{AuthPolicy, Role};
use psirt_proto::intake::{self, intake_service_server::IntakeService};
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::handlers::Intake;

/// The full name of the service, for health and reflection.
pub const SERVICE_NAME: &str = "psirt.intake.v1.IntakeService";

/// Which roles may call which method. Reporters submit and follow their own
/// reports; analysts run intake.
pub fn policy() -> AuthPolicy {
    let all = [Role::Reporter, Role::Analyst, Role::Engineer, Role::Admin];
    let staff = [Role::Analyst, Role::Engineer, Role::Admin];
    let analysts = [Role::Analyst, Role::Admin];
    let policy = AuthPolicy::new()
        .allow(&format!("/{SERVICE_NAME}/SubmitReport"), &all)
        .allow(&format!("/{SERVICE_NAME}/GetReport"), &all)
        .allow(&format!("/{SERVICE_NAME}/AddReporterMessage"), &all)
        .allow(&format!("/{SERVICE_NAME}/ListReports"), &staff)
        .allow(&format!("/{SERVICE_NAME}/AcknowledgeReport"), &analysts);
    psirt_kit::parked::allow_parked_methods(policy)
}

/// The gRPC service.
pub struct IntakeApi {
    intake: Intake,
}

impl IntakeApi {
    pub fn new(intake: Intake) -> Self {
        Self { intake }
    }
}

#[tonic::async_trait]
impl IntakeService for IntakeApi {
    #[instrument(skip_all, fields(rpc = "SubmitReport"))]
    async fn submit_report(
        &self,
        request: Request<intake::SubmitReportRequest>,
    ) -> Result<Response<intake::SubmitReportResponse>, Status> {
        let principal = principal(&request)?;
        Ok(Response::new(self.intake.submit(&principal, request.into_inner()).await?))
    }

    #[instrument(skip_all, fields(rpc = "GetReport"))]
    async fn get_report(
        &self,
        request: Request<intake::GetReportRequest>,
    ) -> Result<Response<intake::GetReportResponse>, Status> {
        let principal = principal(&request)?;
        let report = self.intake.get(&principal, request.into_inner()).await?;
        Ok(Response::new(intake::GetReportResponse { report: Some(report) }))
    }

    #[instrument(skip_all, fields(rpc = "ListReports"))]
    async fn list_reports(
        &self,
        request: Request<intake::ListReportsRequest>,
    ) -> Result<Response<intake::ListReportsResponse>, Status> {
        let principal = principal(&request)?;
        Ok(Response::new(self.intake.list(&principal, request.into_inner()).await?))
    }

    #[instrument(skip_all, fields(rpc = "AcknowledgeReport"))]
    async fn acknowledge_report(
        &self,
        request: Request<intake::AcknowledgeReportRequest>,
    ) -> Result<Response<intake::AcknowledgeReportResponse>, Status> {
        let principal = principal(&request)?;
        let report = self.intake.acknowledge(&principal, request.into_inner()).await?;
        Ok(Response::new(intake::AcknowledgeReportResponse { report: Some(report) }))
    }

    #[instrument(skip_all, fields(rpc = "AddReporterMessage"))]
    async fn add_reporter_message(
        &self,
        request: Request<intake::AddReporterMessageRequest>,
    ) -> Result<Response<intake::AddReporterMessageResponse>, Status> {
        let principal = principal(&request)?;
        Ok(Response::new(self.intake.add_message(&principal, request.into_inner()).await?))
    }
}
