//! `psirt.admin.v1.AdminService` for a service's projections: the parked
//! events listed and replayed (`psirtctl admin parked list|replay`). Every
//! service serves it; triage adds the in-place rebuild of its case view.

use psirt_projection::{ParkedEvents, ParkedRow, ReplayError};
use psirt_proto::admin::{self, admin_service_server::AdminService};
use tonic::{Request, Response, Status};

use crate::auth::Rule;
use crate::{ApiError, AuthPolicy, Principal, Role};

/// The full name of the admin service.
pub const ADMIN_SERVICE: &str = "psirt.admin.v1.AdminService";

/// The policy rows of every method of the admin service, which every service serves:
/// `admin` only. (A service without an in-place rebuild answers `RebuildReadModel` with
/// UNIMPLEMENTED, to admins; to anyone else PERMISSION_DENIED.)
pub const ADMIN_RULES: &[Rule] = &[
    Rule::new("/psirt.admin.v1.AdminService/RebuildReadModel", &[Role::Admin]),
    Rule::new("/psirt.admin.v1.AdminService/ListParkedEvents", &[Role::Admin]),
    Rule::new("/psirt.admin.v1.AdminService/ReplayParkedEvents", &[Role::Admin]),
];

/// The methods of the admin service ([`ADMIN_RULES`]) added to `policy`.
pub fn allow_parked_methods(policy: AuthPolicy) -> AuthPolicy {
    ADMIN_RULES.iter().fold(policy, |policy, rule| policy.allow(rule.method, rule.roles))
}

/// Default and largest page of `ListParkedEvents`.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// The parked events of a service's projections.
#[derive(Clone)]
pub struct ParkedAdmin {
    projections: Vec<ParkedEvents>,
}

fn require_admin<T>(request: &Request<T>) -> Result<Principal, Status> {
    crate::request::require_role(request, Role::Admin)
}

fn parked_event(projection: &str, row: ParkedRow) -> admin::ParkedEvent {
    admin::ParkedEvent {
        projection: projection.to_owned(),
        sequence: row.sequence,
        subject: row.subject,
        event_type: row.event_type,
        error: row.error,
        parked_at: Some(prost_types::Timestamp {
            seconds: row.parked_at_ms.div_euclid(1000),
            nanos: i32::try_from(row.parked_at_ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
        }),
        foreign: row.foreign,
    }
}

fn database(e: sqlx::Error) -> Status {
    ApiError::Unavailable(format!("database: {e}")).into()
}

impl ParkedAdmin {
    pub fn new(projections: Vec<ParkedEvents>) -> Self {
        Self { projections }
    }

    fn projection(&self, name: &str) -> Result<&ParkedEvents, Status> {
        self.projections
            .iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| ApiError::not_found("projection", name).into())
    }

    /// `ListParkedEvents`.
    pub async fn list(
        &self,
        request: Request<admin::ListParkedEventsRequest>,
    ) -> Result<Response<admin::ListParkedEventsResponse>, Status> {
        require_admin(&request)?;
        let admin::ListParkedEventsRequest { projection, page_size, page_token } = request.into_inner();
        let mut violations = crate::error::Violations::new();
        violations.check(page_size <= MAX_PAGE, "page_size", format!("at most {MAX_PAGE}"));
        let after = if page_token.is_empty() {
            Some(0)
        } else {
            page_token.parse::<u64>().ok().filter(|_| page_token.len() <= 20)
        };
        violations.check(after.is_some(), "page_token", "not a token of this method");
        violations.check(
            page_token.is_empty() || !projection.is_empty(),
            "page_token",
            "pages need a projection",
        );
        violations.finish()?;
        let limit = if page_size == 0 { DEFAULT_PAGE } else { page_size } as usize;
        let after = after.unwrap_or(0);
        let mut response = admin::ListParkedEventsResponse::default();
        if projection.is_empty() {
            for parked in &self.projections {
                let rows = parked.list(0, limit).await.map_err(database)?;
                response.events.extend(rows.into_iter().map(|row| parked_event(parked.name(), row)));
            }
            return Ok(Response::new(response));
        }
        let parked = self.projection(&projection)?;
        // One more than the page tells whether there is a next page.
        let mut rows = parked.list(after, limit + 1).await.map_err(database)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        response.events = rows.into_iter().map(|row| parked_event(parked.name(), row)).collect();
        // Bounded in bytes too: the next page starts after the last event kept.
        let more = crate::request::PageBytes::current().fit(&mut response.events) || more;
        if more {
            response.next_page_token =
                response.events.last().map(|e| e.sequence.to_string()).unwrap_or_default();
        }
        Ok(Response::new(response))
    }

    /// `ReplayParkedEvents`.
    pub async fn replay(
        &self,
        request: Request<admin::ReplayParkedEventsRequest>,
    ) -> Result<Response<admin::ReplayParkedEventsResponse>, Status> {
        let principal = require_admin(&request)?;
        let admin::ReplayParkedEventsRequest { projection, sequences } = request.into_inner();
        let mut violations = crate::error::Violations::new();
        violations.check(!projection.is_empty(), "projection", "required");
        let limit = psirt_projection::REPLAY_LIMIT;
        violations.check(sequences.len() <= limit, "sequences", format!("at most {limit}"));
        violations.check(!sequences.contains(&0), "sequences", "stream sequences start at 1");
        violations.finish()?;
        let parked = self.projection(&projection)?;
        tracing::info!(subject = %principal.subject, projection = %projection, count = sequences.len(), "replay of parked events requested");
        let outcome = parked.replay(sequences).await.map_err(|e| match e {
            ReplayError::NotRunning(_) => {
                Status::from(ApiError::failed_precondition(e.to_string(), None::<String>))
            }
            ReplayError::Failed { .. } => ApiError::Unavailable(e.to_string()).into(),
            ReplayError::Database(e) => database(e),
        })?;
        let events = |list: Vec<(u64, String)>| {
            list.into_iter().map(|(sequence, error)| admin::ReplayedEvent { sequence, error }).collect()
        };
        Ok(Response::new(admin::ReplayParkedEventsResponse {
            replayed: outcome.replayed,
            refused: events(outcome.refused),
            still_parked: events(outcome.still_parked),
            not_parked: outcome.not_parked,
        }))
    }
}

/// A service's `AdminService`: the parked events of its projections, and the
/// in-place rebuild of the read models it was given rebuilders for
/// ([`crate::rebuild`]); without any, `RebuildReadModel` answers UNIMPLEMENTED
/// (rebuilt offline, `psirt-<service> rebuild`).
pub struct AdminApi {
    service: &'static str,
    parked: ParkedAdmin,
    rebuilders: Vec<crate::rebuild::Rebuilder>,
}

impl AdminApi {
    /// `service` names the binary (`psirt-intake`) in the errors.
    pub fn new(service: &'static str, parked: ParkedAdmin) -> Self {
        Self { service, parked, rebuilders: Vec::new() }
    }

    /// Serves the in-place rebuild of these read models.
    pub fn with_rebuilders(mut self, rebuilders: Vec<crate::rebuild::Rebuilder>) -> Self {
        self.rebuilders = rebuilders;
        self
    }
}

impl crate::ServiceRoutes {
    /// Adds the admin API of `service` (`psirt-intake`): its projections'
    /// parked events and the read models it rebuilds in place.
    #[must_use]
    pub fn admin(
        self,
        service: &'static str,
        parked: ParkedAdmin,
        rebuilders: Vec<crate::rebuild::Rebuilder>,
    ) -> Self {
        let api = AdminApi::new(service, parked).with_rebuilders(rebuilders);
        self.add_service(psirt_proto::admin::admin_service_server::AdminServiceServer::new(api))
    }
}

type RebuildStream = crate::rebuild::RebuildStream;

#[tonic::async_trait]
impl AdminService for AdminApi {
    type RebuildReadModelStream = RebuildStream;

    async fn rebuild_read_model(
        &self,
        request: Request<admin::RebuildReadModelRequest>,
    ) -> Result<Response<Self::RebuildReadModelStream>, Status> {
        let principal = require_admin(&request)?;
        if self.rebuilders.is_empty() {
            return Err(Status::unimplemented(format!(
                "{} rebuilds its read models offline: stop it and run `{} rebuild`",
                self.service, self.service
            )));
        }
        let requested = request.into_inner().read_model;
        let stream = crate::rebuild::start(&self.rebuilders, &requested)?;
        tracing::info!(subject = %principal.subject, read_model = %requested, "rebuild requested");
        Ok(Response::new(stream))
    }

    async fn list_parked_events(
        &self,
        request: Request<admin::ListParkedEventsRequest>,
    ) -> Result<Response<admin::ListParkedEventsResponse>, Status> {
        self.parked.list(request).await
    }

    async fn replay_parked_events(
        &self,
        request: Request<admin::ReplayParkedEventsRequest>,
    ) -> Result<Response<admin::ReplayParkedEventsResponse>, Status> {
        self.parked.replay(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &[Role]) -> Principal {
        Principal {
            subject: "someone".to_owned(),
            roles: roles.to_vec(),
            issuer: None,
            scopes: psirt_domain::Scopes::All,
            claims: serde_json::Map::new(),
        }
    }

    fn as_role(roles: &[Role], page_size: u32) -> Request<admin::ListParkedEventsRequest> {
        let mut request = Request::new(admin::ListParkedEventsRequest { page_size, ..Default::default() });
        request.extensions_mut().insert(principal(roles));
        request
    }

    #[tokio::test]
    async fn only_admins_list_or_replay_parked_events() {
        let parked = ParkedAdmin::new(Vec::new());
        for role in [Role::Reporter, Role::Analyst, Role::Engineer] {
            let denied = parked.list(as_role(&[role], 0)).await.expect_err("not an admin");
            assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{role:?}");
            let mut replay = Request::new(admin::ReplayParkedEventsRequest {
                projection: "intake-reports".to_owned(),
                sequences: vec![],
            });
            replay.extensions_mut().insert(principal(&[role]));
            let denied = parked.replay(replay).await.expect_err("not an admin");
            assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{role:?}");
        }
        let anonymous = Request::new(admin::ListParkedEventsRequest::default());
        assert_eq!(
            parked.list(anonymous).await.expect_err("no principal").code(),
            tonic::Code::Unauthenticated
        );
        // An admin passes the role check and meets the field rules.
        let invalid = parked.list(as_role(&[Role::Admin], 5000)).await.expect_err("too large a page");
        assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
        let listed = parked.list(as_role(&[Role::Admin], 10)).await.expect("an admin lists");
        assert!(listed.into_inner().events.is_empty());
        let policy = allow_parked_methods(AuthPolicy::new());
        for method in ["ListParkedEvents", "ReplayParkedEvents"] {
            let access = policy.access_for(&format!("/{ADMIN_SERVICE}/{method}"));
            assert!(
                matches!(access, Some(crate::Access::AnyOf(roles)) if roles == &[Role::Admin]),
                "{method}: {access:?}"
            );
        }
    }
}
