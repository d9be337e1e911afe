//! The `psirt.triage.v1` gRPC surface: `TriageService` (decisions on cases)
//! and `CaseService` (the case view), and `psirt.admin.v1.AdminService`
//! (rebuild the case view in the running service). Authentication has
//! happened in the layer in front; each RPC takes the caller's principal and
//! hands over.

use std::pin::Pin;

use psirt_kit::request::principal;
use psirt_kit::{AuthPolicy, Role, Rule};
use psirt_proto::triage::{self, case_service_server::CaseService, triage_service_server::TriageService};
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::handlers::Triage;
use crate::watch::WatchHub;

/// The full names of the services, for health and reflection.
pub const TRIAGE_SERVICE: &str = "psirt.triage.v1.TriageService";
pub const CASE_SERVICE: &str = "psirt.triage.v1.CaseService";
pub const ADMIN_SERVICE: &str = "psirt.admin.v1.AdminService";

/// Analysts (and admins) decide; engineers may read the case view; only
/// admins administer. `tracker-sync` (psirt-notification's inbound tracker
/// rules, `[upstream] token_secret`) may close, reopen and escalate, nothing
/// else: those are the only calls `tracker::inbound` makes.
pub const RULES: &[Rule] = &[
    Rule::new("/psirt.triage.v1.TriageService/StartTriage", ANALYSTS),
    Rule::new("/psirt.triage.v1.TriageService/AssignCase", ANALYSTS),
    Rule::new("/psirt.triage.v1.TriageService/AssessSeverity", ANALYSTS),
    Rule::new("/psirt.triage.v1.TriageService/SetAffectedProducts", ANALYSTS),
    Rule::new("/psirt.triage.v1.TriageService/AcceptCase", ANALYSTS),
    Rule::new("/psirt.triage.v1.TriageService/RejectCase", ANALYSTS),
    Rule::new("/psirt.triage.v1.TriageService/MarkDuplicate", ANALYSTS),
    Rule::new("/psirt.triage.v1.TriageService/AssignCve", ANALYSTS),
    Rule::new("/psirt.triage.v1.TriageService/SetEmbargo", ANALYSTS),
    Rule::new("/psirt.triage.v1.TriageService/EscalateCase", ANALYSTS_AND_TRACKERS),
    Rule::new("/psirt.triage.v1.TriageService/CloseCase", ANALYSTS_AND_TRACKERS),
    Rule::new("/psirt.triage.v1.TriageService/ReopenCase", ANALYSTS_AND_TRACKERS),
    Rule::new("/psirt.triage.v1.CaseService/GetCase", READERS),
    Rule::new("/psirt.triage.v1.CaseService/ListCases", READERS),
    Rule::new("/psirt.triage.v1.CaseService/WatchCases", READERS),
    Rule::new("/psirt.triage.v1.CaseService/GetCaseTimeline", READERS),
];

const ANALYSTS: &[Role] = &[Role::Analyst, Role::Admin];
const ANALYSTS_AND_TRACKERS: &[Role] = &[Role::Analyst, Role::Admin, Role::TrackerSync];
const READERS: &[Role] = &[Role::Analyst, Role::Engineer, Role::Admin];

/// The gRPC services this binary serves, every RPC of which has a row in [`rules`].
pub const SERVED_SERVICES: &[&str] = &[TRIAGE_SERVICE, CASE_SERVICE, ADMIN_SERVICE];

/// The whole table this binary enforces: [`RULES`] and the admin service's rows
/// (`RebuildReadModel` rebuilds the case view in place here).
pub fn rules() -> Vec<Rule> {
    RULES.iter().chain(psirt_kit::parked::ADMIN_RULES).copied().collect()
}

/// The policy built from [`rules`]; a method without a row is denied.
pub fn policy() -> AuthPolicy {
    AuthPolicy::from_rules(&rules())
}

/// The `TriageService`.
pub struct TriageApi {
    triage: Triage,
}

impl TriageApi {
    pub fn new(triage: Triage) -> Self {
        Self { triage }
    }
}

#[tonic::async_trait]
impl TriageService for TriageApi {
    #[instrument(skip_all, fields(rpc = "StartTriage"))]
    async fn start_triage(
        &self,
        request: Request<triage::StartTriageRequest>,
    ) -> Result<Response<triage::StartTriageResponse>, Status> {
        let principal = principal(&request)?;
        let case = self.triage.start_triage(&principal, request.into_inner()).await?;
        Ok(Response::new(triage::StartTriageResponse { case: Some(case) }))
    }

    #[instrument(skip_all, fields(rpc = "AssignCase"))]
    async fn assign_case(
        &self,
        request: Request<triage::AssignCaseRequest>,
    ) -> Result<Response<triage::AssignCaseResponse>, Status> {
        let principal = principal(&request)?;
        let case = self.triage.assign(&principal, request.into_inner()).await?;
        Ok(Response::new(triage::AssignCaseResponse { case: Some(case) }))
    }

    #[instrument(skip_all, fields(rpc = "AssessSeverity"))]
    async fn assess_severity(
        &self,
        request: Request<triage::AssessSeverityRequest>,
    ) -> Result<Response<triage::AssessSeverityResponse>, Status> {
        let principal = principal(&request)?;
        let case = self.triage.assess(&principal, request.into_inner()).await?;
        Ok(Response::new(triage::AssessSeverityResponse { case: Some(case) }))
    }

    #[instrument(skip_all, fields(rpc = "SetAffectedProducts"))]
    async fn set_affected_products(
        &self,
        request: Request<triage::SetAffectedProductsRequest>,
    ) -> Result<Response<triage::SetAffectedProductsResponse>, Status> {
        let principal = principal(&request)?;
        let case = self.triage.set_products(&principal, request.into_inner()).await?;
        Ok(Response::new(triage::SetAffectedProductsResponse { case: Some(case) }))
    }

    #[instrument(skip_all, fields(rpc = "AcceptCase"))]
    async fn accept_case(
        &self,
        request: Request<triage::AcceptCaseRequest>,
    ) -> Result<Response<triage::AcceptCaseResponse>, Status> {
        let principal = principal(&request)?;
        let case = self.triage.accept(&principal, request.into_inner()).await?;
        Ok(Response::new(triage::AcceptCaseResponse { case: Some(case) }))
    }

    #[instrument(skip_all, fields(rpc = "RejectCase"))]
    async fn reject_case(
        &self,
        request: Request<triage::RejectCaseRequest>,
    ) -> Result<Response<triage::RejectCaseResponse>, Status> {
        let principal = principal(&request)?;
        let case = self.triage.reject(&principal, request.into_inner()).await?;
        Ok(Response::new(triage::RejectCaseResponse { case: Some(case) }))
    }

    #[instrument(skip_all, fields(rpc = "MarkDuplicate"))]
    async fn mark_duplicate(
        &self,
        request: Request<triage::MarkDuplicateRequest>,
    ) -> Result<Response<triage::MarkDuplicateResponse>, Status> {
        let principal = principal(&request)?;
        let case = self.triage.mark_duplicate(&principal, request.into_inner()).await?;
        Ok(Response::new(triage::MarkDuplicateResponse { case: Some(case) }))
    }

    #[instrument(skip_all, fields(rpc = "AssignCve"))]
    async fn assign_cve(
        &self,
        request: Request<triage::AssignCveRequest>,
    ) -> Result<Response<triage::AssignCveResponse>, Status> {
        let principal = principal(&request)?;
        let case = self.triage.assign_cve(&principal, request.into_inner()).await?;
        Ok(Response::new(triage::AssignCveResponse { case: Some(case) }))
    }

    #[instrument(skip_all, fields(rpc = "SetEmbargo"))]
    async fn set_embargo(
        &self,
        request: Request<triage::SetEmbargoRequest>,
    ) -> Result<Response<triage::SetEmbargoResponse>, Status> {
        let principal = principal(&request)?;
        let case = self.triage.set_embargo(&principal, request.into_inner()).await?;
        Ok(Response::new(triage::SetEmbargoResponse { case: Some(case) }))
    }

    #[instrument(skip_all, fields(rpc = "EscalateCase"))]
    async fn escalate_case(
        &self,
        request: Request<triage::EscalateCaseRequest>,
    ) -> Result<Response<triage::EscalateCaseResponse>, Status> {
        let principal = principal(&request)?;
        let case = self.triage.escalate(&principal, request.into_inner()).await?;
        Ok(Response::new(triage::EscalateCaseResponse { case: Some(case) }))
    }

    #[instrument(skip_all, fields(rpc = "CloseCase"))]
    async fn close_case(
        &self,
        request: Request<triage::CloseCaseRequest>,
    ) -> Result<Response<triage::CloseCaseResponse>, Status> {
        let principal = principal(&request)?;
        let case = self.triage.close(&principal, request.into_inner()).await?;
        Ok(Response::new(triage::CloseCaseResponse { case: Some(case) }))
    }

    #[instrument(skip_all, fields(rpc = "ReopenCase"))]
    async fn reopen_case(
        &self,
        request: Request<triage::ReopenCaseRequest>,
    ) -> Result<Response<triage::ReopenCaseResponse>, Status> {
        let principal = principal(&request)?;
        let case = self.triage.reopen(&principal, request.into_inner()).await?;
        Ok(Response::new(triage::ReopenCaseResponse { case: Some(case) }))
    }
}

/// The `CaseService`.
pub struct CaseApi {
    triage: Triage,
    hub: WatchHub,
}

impl CaseApi {
    pub fn new(triage: Triage, hub: WatchHub) -> Self {
        Self { triage, hub }
    }
}

type WatchStream = Pin<Box<dyn futures::Stream<Item = Result<triage::WatchCasesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl CaseService for CaseApi {
    type WatchCasesStream = WatchStream;

    #[instrument(skip_all, fields(rpc = "GetCase"))]
    async fn get_case(
        &self,
        request: Request<triage::GetCaseRequest>,
    ) -> Result<Response<triage::GetCaseResponse>, Status> {
        principal(&request)?;
        let case = self.triage.get(request.into_inner()).await?;
        Ok(Response::new(triage::GetCaseResponse { case: Some(case) }))
    }

    #[instrument(skip_all, fields(rpc = "ListCases"))]
    async fn list_cases(
        &self,
        request: Request<triage::ListCasesRequest>,
    ) -> Result<Response<triage::ListCasesResponse>, Status> {
        principal(&request)?;
        Ok(Response::new(self.triage.list(request.into_inner()).await?))
    }

    #[instrument(skip_all, fields(rpc = "WatchCases"))]
    async fn watch_cases(
        &self,
        request: Request<triage::WatchCasesRequest>,
    ) -> Result<Response<Self::WatchCasesStream>, Status> {
        principal(&request)?;
        let changes = self.hub.watch(request.into_inner())?;
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(changes))))
    }

    #[instrument(skip_all, fields(rpc = "GetCaseTimeline"))]
    async fn get_case_timeline(
        &self,
        request: Request<triage::GetCaseTimelineRequest>,
    ) -> Result<Response<triage::GetCaseTimelineResponse>, Status> {
        principal(&request)?;
        Ok(Response::new(self.triage.timeline(request.into_inner()).await?))
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
