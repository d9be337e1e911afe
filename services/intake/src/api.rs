//! The `psirt.intake.v1.IntakeService` gRPC surface: authentication has
//! happened in the layer in front; each RPC takes the caller's principal and
//! hands the request to the command handlers.

use psirt_kit::request::principal;
use psirt_kit::{AuthPolicy, Role, Rule};
use psirt_proto::intake::{self, intake_service_server::IntakeService};
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::handlers::Intake;

/// The full name of the service, for health and reflection.
pub const SERVICE_NAME: &str = "psirt.intake.v1.IntakeService";

/// The gRPC services this binary serves, every RPC of which has a row in [`rules`].
pub const SERVED_SERVICES: &[&str] = &[SERVICE_NAME, psirt_kit::parked::ADMIN_SERVICE];

const PEOPLE: &[Role] = &[Role::Reporter, Role::Analyst, Role::Engineer, Role::Admin];
const STAFF: &[Role] = &[Role::Analyst, Role::Engineer, Role::Admin];
const ANALYSTS: &[Role] = &[Role::Analyst, Role::Admin];

/// Which roles may call which method of `IntakeService`. Reporters submit and
/// follow their own reports; analysts run intake. (`admin` may call everything.)
pub const RULES: &[Rule] = &[
    Rule::new("/psirt.intake.v1.IntakeService/SubmitReport", PEOPLE),
    Rule::new("/psirt.intake.v1.IntakeService/GetReport", PEOPLE),
    Rule::new("/psirt.intake.v1.IntakeService/AddReporterMessage", PEOPLE),
    Rule::new("/psirt.intake.v1.IntakeService/ListReports", STAFF),
    Rule::new("/psirt.intake.v1.IntakeService/AcknowledgeReport", ANALYSTS),
];

/// The whole table this binary enforces: [`RULES`] and the admin service's rows.
pub fn rules() -> Vec<Rule> {
    RULES.iter().chain(psirt_kit::parked::ADMIN_RULES).copied().collect()
}

/// The policy built from [`rules`]; a method without a row is denied.
pub fn policy() -> AuthPolicy {
    AuthPolicy::from_rules(&rules())
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
        let peer = request.remote_addr().map(|a| a.ip());
        Ok(Response::new(self.intake.submit(&principal, peer, request.into_inner()).await?))
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
        let peer = request.remote_addr().map(|a| a.ip());
        Ok(Response::new(self.intake.add_message(&principal, peer, request.into_inner()).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every RPC of every service this binary serves has exactly one row, every row
    /// names an RPC of the contract, and the policy enforces the table.
    #[test]
    fn every_rpc_of_the_served_services_has_exactly_one_rule() {
        assert_eq!(
            psirt_kit::auth::table_problems(SERVED_SERVICES, &rules(), &policy()),
            Vec::<String>::new()
        );
    }
}
