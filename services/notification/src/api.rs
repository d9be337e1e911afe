//! The `psirt.notification.v1` gRPC surface. Authentication has happened in
//! the layer in front; each RPC takes the caller's principal and hands over.

use psirt_kit::request::principal;
use psirt_kit::{AuthPolicy, Role, Rule};
use psirt_proto::notification::{self as api, notification_service_server::NotificationService};
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::handlers::Notification;

/// The full name of the service, for health and reflection.
pub const NOTIFICATION_SERVICE: &str = "psirt.notification.v1.NotificationService";

/// Subscriptions decide where case details go (trusted destinations receive
/// embargoed details), so only admins change them; analysts redeliver;
/// analysts, engineers and admins read.
pub const RULES: &[Rule] = &[
    Rule::new("/psirt.notification.v1.NotificationService/CreateSubscription", ADMINS),
    Rule::new("/psirt.notification.v1.NotificationService/UpdateSubscription", ADMINS),
    Rule::new("/psirt.notification.v1.NotificationService/DeleteSubscription", ADMINS),
    Rule::new("/psirt.notification.v1.NotificationService/RedeliverDelivery", ANALYSTS),
    Rule::new("/psirt.notification.v1.NotificationService/ListSubscriptions", READERS),
    Rule::new("/psirt.notification.v1.NotificationService/ListDeliveries", READERS),
    Rule::new("/psirt.notification.v1.NotificationService/ListExternalTickets", READERS),
];

const ADMINS: &[Role] = &[Role::Admin];
const ANALYSTS: &[Role] = &[Role::Analyst, Role::Admin];
const READERS: &[Role] = &[Role::Analyst, Role::Engineer, Role::Admin];

/// The gRPC services this binary serves, every RPC of which has a row in [`rules`].
pub const SERVED_SERVICES: &[&str] = &[NOTIFICATION_SERVICE, psirt_kit::parked::ADMIN_SERVICE];

/// The whole table this binary enforces: [`RULES`] and the admin service's rows.
pub fn rules() -> Vec<Rule> {
    RULES.iter().chain(psirt_kit::parked::ADMIN_RULES).copied().collect()
}

/// The policy built from [`rules`]; a method without a row is denied.
pub fn policy() -> AuthPolicy {
    AuthPolicy::from_rules(&rules())
}

/// The `NotificationService`.
pub struct NotificationApi {
    notification: Notification,
}

impl NotificationApi {
    pub fn new(notification: Notification) -> Self {
        Self { notification }
    }
}

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    #[instrument(skip_all, fields(rpc = "CreateSubscription"))]
    async fn create_subscription(
        &self,
        request: Request<api::CreateSubscriptionRequest>,
    ) -> Result<Response<api::CreateSubscriptionResponse>, Status> {
        let principal = principal(&request)?;
        let subscription = self.notification.create_subscription(&principal, request.into_inner()).await?;
        Ok(Response::new(api::CreateSubscriptionResponse { subscription: Some(subscription) }))
    }

    #[instrument(skip_all, fields(rpc = "ListSubscriptions"))]
    async fn list_subscriptions(
        &self,
        request: Request<api::ListSubscriptionsRequest>,
    ) -> Result<Response<api::ListSubscriptionsResponse>, Status> {
        Ok(Response::new(self.notification.list_subscriptions(request.into_inner()).await?))
    }

    #[instrument(skip_all, fields(rpc = "UpdateSubscription"))]
    async fn update_subscription(
        &self,
        request: Request<api::UpdateSubscriptionRequest>,
    ) -> Result<Response<api::UpdateSubscriptionResponse>, Status> {
        let principal = principal(&request)?;
        let subscription = self.notification.update_subscription(&principal, request.into_inner()).await?;
        Ok(Response::new(api::UpdateSubscriptionResponse { subscription: Some(subscription) }))
    }

    #[instrument(skip_all, fields(rpc = "DeleteSubscription"))]
    async fn delete_subscription(
        &self,
        request: Request<api::DeleteSubscriptionRequest>,
    ) -> Result<Response<api::DeleteSubscriptionResponse>, Status> {
        let principal = principal(&request)?;
        let version = self.notification.delete_subscription(&principal, request.into_inner()).await?;
        Ok(Response::new(api::DeleteSubscriptionResponse { version }))
    }

    #[instrument(skip_all, fields(rpc = "ListDeliveries"))]
    async fn list_deliveries(
        &self,
        request: Request<api::ListDeliveriesRequest>,
    ) -> Result<Response<api::ListDeliveriesResponse>, Status> {
        Ok(Response::new(self.notification.list_deliveries(request.into_inner()).await?))
    }

    #[instrument(skip_all, fields(rpc = "RedeliverDelivery"))]
    async fn redeliver_delivery(
        &self,
        request: Request<api::RedeliverDeliveryRequest>,
    ) -> Result<Response<api::RedeliverDeliveryResponse>, Status> {
        let principal = principal(&request)?;
        let delivery = self.notification.redeliver(&principal, request.into_inner()).await?;
        Ok(Response::new(api::RedeliverDeliveryResponse { delivery: Some(delivery) }))
    }

    #[instrument(skip_all, fields(rpc = "ListExternalTickets"))]
    async fn list_external_tickets(
        &self,
        request: Request<api::ListExternalTicketsRequest>,
    ) -> Result<Response<api::ListExternalTicketsResponse>, Status> {
        Ok(Response::new(self.notification.list_external_tickets(request.into_inner()).await?))
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
