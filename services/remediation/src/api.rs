//! The `psirt.remediation.v1` gRPC surface: `RemediationService` (plans)
//! and `AdvisoryService` (advisories). Authentication has happened in the
//! layer in front; each RPC takes the caller's principal and hands over.

use psirt_kit::request::principal;
use psirt_kit::{AuthPolicy, Role, Rule};
use psirt_proto::remediation::{
    self as api, advisory_service_server::AdvisoryService, remediation_service_server::RemediationService,
};
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::handlers::Remediation;

/// The full names of the services, for health and reflection.
pub const REMEDIATION_SERVICE: &str = "psirt.remediation.v1.RemediationService";
pub const ADVISORY_SERVICE: &str = "psirt.remediation.v1.AdvisoryService";

/// Engineers and analysts work the plan; analysts draft and publish
/// advisories (an admin may override an embargo); every one of them reads.
pub const RULES: &[Rule] = &[
    Rule::new("/psirt.remediation.v1.RemediationService/GetPlan", WORKERS),
    Rule::new("/psirt.remediation.v1.RemediationService/PlanAction", WORKERS),
    Rule::new("/psirt.remediation.v1.RemediationService/RecordRelease", WORKERS),
    Rule::new("/psirt.remediation.v1.RemediationService/SetProductStatus", WORKERS),
    Rule::new("/psirt.remediation.v1.RemediationService/VerifyRemediation", WORKERS),
    Rule::new("/psirt.remediation.v1.RemediationService/ListOverdue", WORKERS),
    Rule::new("/psirt.remediation.v1.AdvisoryService/ExportAdvisory", WORKERS),
    Rule::new("/psirt.remediation.v1.AdvisoryService/ListAdvisories", WORKERS),
    Rule::new("/psirt.remediation.v1.AdvisoryService/DraftAdvisory", ANALYSTS),
    Rule::new("/psirt.remediation.v1.AdvisoryService/PublishAdvisory", ANALYSTS),
];

const WORKERS: &[Role] = &[Role::Analyst, Role::Engineer, Role::Admin];
const ANALYSTS: &[Role] = &[Role::Analyst, Role::Admin];

/// The gRPC services this binary serves, every RPC of which has a row in [`rules`].
pub const SERVED_SERVICES: &[&str] =
    &[REMEDIATION_SERVICE, ADVISORY_SERVICE, psirt_kit::parked::ADMIN_SERVICE];

/// The whole table this binary enforces: [`RULES`] and the admin service's rows.
pub fn rules() -> Vec<Rule> {
    RULES.iter().chain(psirt_kit::parked::ADMIN_RULES).copied().collect()
}

/// The policy built from [`rules`]; a method without a row is denied.
pub fn policy() -> AuthPolicy {
    AuthPolicy::from_rules(&rules())
}

/// The `RemediationService`.
pub struct RemediationApi {
    remediation: Remediation,
}

impl RemediationApi {
    pub fn new(remediation: Remediation) -> Self {
        Self { remediation }
    }
}

#[tonic::async_trait]
impl RemediationService for RemediationApi {
    #[instrument(skip_all, fields(rpc = "GetPlan"))]
    async fn get_plan(
        &self,
        request: Request<api::GetPlanRequest>,
    ) -> Result<Response<api::GetPlanResponse>, Status> {
        let plan = self.remediation.get_plan(request.into_inner()).await?;
        Ok(Response::new(api::GetPlanResponse { plan: Some(plan) }))
    }

    #[instrument(skip_all, fields(rpc = "PlanAction"))]
    async fn plan_action(
        &self,
        request: Request<api::PlanActionRequest>,
    ) -> Result<Response<api::PlanActionResponse>, Status> {
        let principal = principal(&request)?;
        let (plan, action_id) = self.remediation.plan_action(&principal, request.into_inner()).await?;
        Ok(Response::new(api::PlanActionResponse { plan: Some(plan), action_id }))
    }

    #[instrument(skip_all, fields(rpc = "RecordRelease"))]
    async fn record_release(
        &self,
        request: Request<api::RecordReleaseRequest>,
    ) -> Result<Response<api::RecordReleaseResponse>, Status> {
        let principal = principal(&request)?;
        let plan = self.remediation.record_release(&principal, request.into_inner()).await?;
        Ok(Response::new(api::RecordReleaseResponse { plan: Some(plan) }))
    }

    #[instrument(skip_all, fields(rpc = "SetProductStatus"))]
    async fn set_product_status(
        &self,
        request: Request<api::SetProductStatusRequest>,
    ) -> Result<Response<api::SetProductStatusResponse>, Status> {
        let principal = principal(&request)?;
        let plan = self.remediation.set_product_status(&principal, request.into_inner()).await?;
        Ok(Response::new(api::SetProductStatusResponse { plan: Some(plan) }))
    }

    #[instrument(skip_all, fields(rpc = "VerifyRemediation"))]
    async fn verify_remediation(
        &self,
        request: Request<api::VerifyRemediationRequest>,
    ) -> Result<Response<api::VerifyRemediationResponse>, Status> {
        let principal = principal(&request)?;
        let plan = self.remediation.verify(&principal, request.into_inner()).await?;
        Ok(Response::new(api::VerifyRemediationResponse { plan: Some(plan) }))
    }

    #[instrument(skip_all, fields(rpc = "ListOverdue"))]
    async fn list_overdue(
        &self,
        request: Request<api::ListOverdueRequest>,
    ) -> Result<Response<api::ListOverdueResponse>, Status> {
        Ok(Response::new(self.remediation.list_overdue(request.into_inner()).await?))
    }
}

/// The `AdvisoryService`.
pub struct AdvisoryApi {
    remediation: Remediation,
}

impl AdvisoryApi {
    pub fn new(remediation: Remediation) -> Self {
        Self { remediation }
    }
}

#[tonic::async_trait]
impl AdvisoryService for AdvisoryApi {
    #[instrument(skip_all, fields(rpc = "DraftAdvisory"))]
    async fn draft_advisory(
        &self,
        request: Request<api::DraftAdvisoryRequest>,
    ) -> Result<Response<api::DraftAdvisoryResponse>, Status> {
        let principal = principal(&request)?;
        let advisory = self.remediation.draft_advisory(&principal, request.into_inner()).await?;
        Ok(Response::new(api::DraftAdvisoryResponse { advisory: Some(advisory) }))
    }

    #[instrument(skip_all, fields(rpc = "PublishAdvisory"))]
    async fn publish_advisory(
        &self,
        request: Request<api::PublishAdvisoryRequest>,
    ) -> Result<Response<api::PublishAdvisoryResponse>, Status> {
        let principal = principal(&request)?;
        let advisory = self.remediation.publish_advisory(&principal, request.into_inner()).await?;
        Ok(Response::new(api::PublishAdvisoryResponse { advisory: Some(advisory) }))
    }

    #[instrument(skip_all, fields(rpc = "ExportAdvisory"))]
    async fn export_advisory(
        &self,
        request: Request<api::ExportAdvisoryRequest>,
    ) -> Result<Response<api::ExportAdvisoryResponse>, Status> {
        Ok(Response::new(self.remediation.export_advisory(request.into_inner()).await?))
    }

    #[instrument(skip_all, fields(rpc = "ListAdvisories"))]
    async fn list_advisories(
        &self,
        request: Request<api::ListAdvisoriesRequest>,
    ) -> Result<Response<api::ListAdvisoriesResponse>, Status> {
        Ok(Response::new(self.remediation.list_advisories(request.into_inner()).await?))
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
