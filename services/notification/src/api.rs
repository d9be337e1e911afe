//! The `psirt.notification.v1` gRPC surface. Authentication has happened in
//! the layer in front; each RPC takes the caller's principal and hands over.

use psirt_kit::request::principal;
use psirt_kit::{AuthPolicy, Role};
use psirt_proto::notification::{self as api, notification_service_server::NotificationService};
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::handlers::Notification;

/// The full name of the service, for health and reflection.
pub const NOTIFICATION_SERVICE: &str = "psirt.notification.v1.NotificationService";

/// Subscriptions decide where case details go (trusted destinations receive
/// embargoed details), so only admins change them; analysts redeliver;
/// analysts, engineers and admins read.
pub fn policy() -> AuthPolicy {
    let readers = [Role::Analyst, Role::Engineer, Role::Admin];
    let mut policy = AuthPolicy::new();
    for method in ["CreateSubscription", "UpdateSubscription", "DeleteSubscription"] {
        policy = policy.allow(&format!("/{NOTIFICATION_SERVICE}/{method}"), &[Role::Admin]);
    }
    policy =
        policy.allow(&format!("/{NOTIFICATION_SERVICE}/RedeliverDelivery"), &[Role::Analyst, Role::Admin]);
    for method in ["ListSubscriptions", "ListDeliveries", "ListExternalTickets"] {
        policy = policy.allow(&format!("/{NOTIFICATION_SERVICE}/{method}"), &readers);
    }
    psirt_kit::parked::allow_parked_methods(policy)
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
