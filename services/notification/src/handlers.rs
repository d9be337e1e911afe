//! Notification's command handling and reads: load the subscription or
//! delivery from its stream, let the domain decide, append with an
//! expectation, retry a conflict once. Event ids derive from the caller's
//! request id and the event type, so a retried request appends nothing.

use std::sync::Arc;

use prost_reflect::DescriptorPool;
use psirt_domain::notification::{MAX_EVENT_TYPES, SubscriptionSettings, validate_settings};

/// Most tracker subscriptions of one channel looked through for a clash.
const MAX_TRACKER_SUBSCRIPTIONS: u32 = 10_000;
use psirt_domain::Scopes;
use psirt_domain::{
    DeliveryCommand, DeliveryError, DeliveryId, EventId, SubscriptionCommand, SubscriptionError,
    SubscriptionId,
};
use psirt_eventstore::repository::by_type;
use psirt_eventstore::{CommandError, EventStore, Metadata, RecordedEvent, Repository, Request, StoreError};
use psirt_kit::request::PageBytes;
use psirt_kit::{ApiError, FieldViolation, Principal, Refusal};
use psirt_proto::{events, notification as api};
use sqlx::AnyPool;
use tracing::instrument;

use crate::config::NotificationSettings;
use crate::secrets::Secrets;
use crate::worker::WorkError;
use crate::{mapping, readmodel, scope, view};

/// Most read-model pages one list call looks at to fill its page with items
/// in the caller's product scopes.
const MAX_SCOPED_READS: u32 = 8;

/// Most ticket links returned for one case.
const MAX_TICKETS_PER_CASE: u32 = 1000;

/// Everything a handler can fail with; one exhaustive mapping to a status.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read model: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored event does not decode: {0}")]
    Corrupt(#[from] psirt_eventstore::DecodeError),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<psirt_eventstore::ReadError> for NotificationError {
    fn from(e: psirt_eventstore::ReadError) -> Self {
        match e {
            psirt_eventstore::ReadError::Store(e) => Self::Store(e),
            psirt_eventstore::ReadError::Decode(e) => Self::Corrupt(e),
        }
    }
}

/// A failed command of the shared path as this service reports it.
fn from_command<D: Into<NotificationError>>(
    resource: &'static str,
    err: CommandError<D, NotificationError>,
) -> NotificationError {
    match psirt_kit::refusal(resource, err) {
        Refusal::Api(e) => e.into(),
        Refusal::Domain(e) => e.into(),
        Refusal::Rejected(e) => e,
    }
}

impl From<WorkError> for NotificationError {
    fn from(e: WorkError) -> Self {
        match e {
            WorkError::Store(e) => Self::Store(e),
            WorkError::Database(e) => Self::Database(e),
            WorkError::Corrupt(e) => Self::Corrupt(e),
        }
    }
}

fn settings_violations(v: Vec<psirt_domain::FieldViolation>) -> ApiError {
    ApiError::InvalidArgument(
        v.into_iter().map(|v| FieldViolation::new(format!("settings.{}", v.field), v.description)).collect(),
    )
}

impl From<NotificationError> for ApiError {
    fn from(err: NotificationError) -> Self {
        match err {
            NotificationError::Subscription(SubscriptionError::Validation(v)) => {
                let reason = v.iter().any(|v| v.field == "reason");
                if reason {
                    ApiError::InvalidArgument(
                        v.into_iter().map(|v| FieldViolation::new(v.field, v.description)).collect(),
                    )
                } else {
                    settings_violations(v)
                }
            }
            NotificationError::Subscription(SubscriptionError::NotFound) => {
                ApiError::not_found("subscription", String::new())
            }
            NotificationError::Subscription(e @ SubscriptionError::Deleted) => {
                ApiError::failed_precondition(e.to_string(), Some("DELETED"))
            }
            NotificationError::Subscription(SubscriptionError::AlreadyExists) => ApiError::AlreadyExists {
                resource: "subscription",
                id: "created by this request id with other settings".to_owned(),
            },
            NotificationError::Delivery(DeliveryError::NotFound) => {
                ApiError::not_found("delivery", String::new())
            }
            NotificationError::Delivery(e @ DeliveryError::AlreadyDelivered) => {
                ApiError::failed_precondition(e.to_string(), Some("DELIVERED"))
            }
            NotificationError::Delivery(e @ DeliveryError::NotPending(_)) => {
                ApiError::failed_precondition(e.to_string(), None::<String>)
            }
            NotificationError::Store(e) => e.into(),
            NotificationError::Database(e) => ApiError::Unavailable(format!("read model: {e}")),
            NotificationError::Corrupt(e) => ApiError::internal(e),
            NotificationError::Api(e) => e,
        }
    }
}

impl From<NotificationError> for tonic::Status {
    fn from(err: NotificationError) -> Self {
        ApiError::from(err).into()
    }
}

type Result<T> = std::result::Result<T, NotificationError>;

/// The notification application core, shared by the gRPC handlers.
#[derive(Clone)]
pub struct Notification {
    inner: Arc<Inner>,
}

struct Inner {
    subscriptions: Repository<mapping::SubscriptionCodec>,
    deliveries: Repository<mapping::DeliveryCodec>,
    pool: AnyPool,
    settings: NotificationSettings,
    secrets: Secrets,
    descriptors: &'static DescriptorPool,
}

fn invalid(field: &str, description: impl Into<String>) -> NotificationError {
    ApiError::invalid_argument(field, description).into()
}

fn metadata(principal: &Principal, request_id: &str) -> Metadata {
    Metadata {
        causation_id: Some(request_id.to_owned()),
        correlation_id: Some(request_id.to_owned()),
        actor: Some(principal.subject.clone()),
        actor_scopes: Some(principal.scopes.to_string()),
    }
}

fn command_event_id(
    aggregate: uuid::Uuid,
    principal: &Principal,
    request_id: &str,
    event_type: &str,
) -> EventId {
    EventId::derive(aggregate, &format!("{}\u{1f}{request_id}\u{1f}{event_type}", principal.subject))
}

/// A page token of the list `scope` (the kit's one format): a stream
/// sequence and an id.
fn encode_token(scope: &str, sequence: impl std::fmt::Display, id: &str) -> String {
    psirt_kit::request::page_token::encode(scope, &[&sequence.to_string(), id])
}

fn decode_token(token: &str, scope: &str) -> Result<(i64, String)> {
    let parts = psirt_kit::request::page_token::decode(token, scope, 2)?;
    let sequence = parts[0].parse().map_err(|_| invalid("page_token", "not a page token of this query"))?;
    Ok((sequence, parts[1].clone()))
}

fn parse_id<T: std::str::FromStr>(field: &str, value: &str, kind: &str) -> Result<T> {
    value.trim().parse().map_err(|_| invalid(field, format!("{value:?} is not a {kind} id (a UUID)")))
}

fn subscription_view(events: &[RecordedEvent]) -> Result<Option<api::Subscription>> {
    let mut view = None;
    for e in events {
        view = view::fold_subscription(view, e)?;
    }
    Ok(view)
}

fn delivery_view(events: &[RecordedEvent]) -> Result<Option<api::Delivery>> {
    let mut view = None;
    for e in events {
        view = view::fold_delivery(view, e)?;
    }
    Ok(view)
}

impl Notification {
    pub fn new(
        store: EventStore,
        pool: AnyPool,
        settings: NotificationSettings,
        secrets: Secrets,
        descriptors: &'static DescriptorPool,
    ) -> Self {
        let subscriptions = Repository::new(store.clone(), mapping::SubscriptionCodec);
        let deliveries = Repository::new(store.clone(), mapping::DeliveryCodec);
        Self { inner: Arc::new(Inner { subscriptions, deliveries, pool, settings, secrets, descriptors }) }
    }

    fn page_size(&self, requested: i32) -> Result<u32> {
        let max = self.inner.settings.max_page_size;
        match requested {
            0 => Ok(self.inner.settings.default_page_size),
            n if n < 0 => Err(invalid("page_size", "page size must not be negative")),
            n => Ok(u32::try_from(n).unwrap_or(max).min(max)),
        }
    }

    /// The settings of a request, checked in full: the domain's rules plus
    /// what only the service knows (event types, configured secrets).
    fn checked_settings(
        &self,
        settings: Option<&events::SubscriptionSettings>,
    ) -> Result<SubscriptionSettings> {
        let Some(settings) = settings else { return Err(invalid("settings", "settings are required")) };
        let mut violations = Vec::new();
        let domain = match mapping::settings_from_proto(settings) {
            Ok(domain) => Some(domain),
            Err(v) => {
                violations.extend(v);
                None
            }
        };
        if let Some(domain) = &domain {
            violations.extend(validate_settings(domain));
        }
        for (i, t) in settings.event_types.iter().enumerate().take(MAX_EVENT_TYPES) {
            let known = t.starts_with("psirt.events.v1.")
                && self.inner.descriptors.get_message_by_name(t.trim()).is_some();
            if !known && !violations.iter().any(|v| v.field == format!("event_types[{i}]")) {
                violations.push(psirt_domain::FieldViolation::new(
                    format!("event_types[{i}]"),
                    format!("{t:?} is not an event type"),
                ));
            }
        }
        let secret = settings.secret_ref.trim();
        if !secret.is_empty()
            && !violations.iter().any(|v| v.field == "secret_ref")
            && !self.inner.secrets.contains(secret)
        {
            violations.push(psirt_domain::FieldViolation::new(
                "secret_ref",
                format!("no secret named {secret:?} is configured in the service"),
            ));
        }
        match domain {
            Some(domain) if violations.is_empty() => Ok(domain),
            _ => Err(settings_violations(violations).into()),
        }
    }

    /// At most `notification.max_subscriptions_per_owner` subscriptions per
    /// principal: one identity cannot fill the stream with subscriptions (and
    /// each event with deliveries). A retried create of an existing one passes.
    async fn check_subscription_quota(&self, principal: &Principal, id: SubscriptionId) -> Result<()> {
        let max = self.inner.settings.max_subscriptions_per_owner;
        if max == 0 || readmodel::subscription(&self.inner.pool, &id.to_string()).await?.is_some() {
            return Ok(());
        }
        let owned = readmodel::subscriptions_of(&self.inner.pool, &principal.subject).await?;
        if owned >= i64::from(max) {
            return Err(ApiError::ResourceExhausted(format!(
                "{owned} subscriptions: at most {max} per owner; delete some first"
            ))
            .into());
        }
        Ok(())
    }

    /// A tracker keeps one ticket per case and subscription: two
    /// subscriptions of one tracker on the same project or table would make
    /// two tickets per case and comment every event twice. Refused; the
    /// existing subscription is to be updated instead.
    async fn check_tracker_endpoint_free(
        &self,
        settings: &SubscriptionSettings,
        own: SubscriptionId,
    ) -> Result<()> {
        if !settings.channel.is_tracker() {
            return Ok(());
        }
        let channel = mapping::channel_to_proto(settings.channel) as i32;
        let existing =
            readmodel::subscriptions(&self.inner.pool, Some(channel), None, MAX_TRACKER_SUBSCRIPTIONS)
                .await?;
        let own = own.to_string();
        let taken = existing.iter().map(|(_, s)| s).find(|s| {
            s.subscription_id != own && s.settings.as_ref().is_some_and(|x| x.endpoint == settings.endpoint)
        });
        match taken {
            Some(other) => Err(settings_violations(vec![psirt_domain::FieldViolation::new(
                "endpoint",
                format!(
                    "subscription {} already keeps {} tickets in {:?}; update it instead",
                    other.subscription_id,
                    settings.channel.as_str(),
                    settings.endpoint
                ),
            )])
            .into()),
            None => Ok(()),
        }
    }

    /// Decides `command` on a subscription and appends the result, on the
    /// shared command path. A retried update or delete answers as the first
    /// did, whatever the version now; a create compares the settings in the
    /// domain.
    async fn decide_subscription(
        &self,
        principal: &Principal,
        request_id: &str,
        id: SubscriptionId,
        expected: Option<u64>,
        command: SubscriptionCommand,
    ) -> Result<Vec<RecordedEvent>> {
        let own_type = match &command {
            SubscriptionCommand::Create { .. } => None,
            SubscriptionCommand::Update { .. } => Some("SubscriptionUpdated"),
            SubscriptionCommand::Delete { .. } => Some("SubscriptionDeleted"),
        };
        let event_id = |t: &str| command_event_id(id.into(), principal, request_id, t).into();
        let request = Request {
            must_exist: false,
            expected,
            idempotency: own_type.map(event_id).into_iter().collect(),
            ..Request::new(id, metadata(principal, request_id))
        };
        let decide = |_: &psirt_eventstore::Loaded<psirt_domain::Subscription>| Ok(Some(command.clone()));
        let executed = self
            .inner
            .subscriptions
            .execute::<NotificationError>(&request, &by_type(&event_id), decide)
            .await
            .map_err(|e| from_command("subscription", e))?;
        Ok(executed.loaded.events)
    }

    #[instrument(skip_all)]
    pub async fn create_subscription(
        &self,
        principal: &Principal,
        req: api::CreateSubscriptionRequest,
    ) -> Result<api::Subscription> {
        let request_id = psirt_kit::request::request_id(&req.request_id)?;
        let settings = self.checked_settings(req.settings.as_ref())?;
        let (id, request_id) = if request_id.is_empty() {
            let fresh = uuid::Uuid::now_v7().to_string();
            (SubscriptionId::for_request(&principal.subject, &fresh), fresh)
        } else {
            (SubscriptionId::for_request(&principal.subject, &request_id), request_id)
        };
        self.check_tracker_endpoint_free(&settings, id).await?;
        self.check_subscription_quota(principal, id).await?;
        let events = self
            .decide_subscription(
                principal,
                &request_id,
                id,
                None,
                SubscriptionCommand::Create { subscription_id: id, settings },
            )
            .await?;
        subscription_view(&events)?
            .ok_or_else(|| ApiError::internal("created subscription has no view").into())
    }

    #[instrument(skip_all)]
    pub async fn update_subscription(
        &self,
        principal: &Principal,
        req: api::UpdateSubscriptionRequest,
    ) -> Result<api::Subscription> {
        let id: SubscriptionId = parse_id("subscription_id", &req.subscription_id, "subscription")?;
        let request_id = psirt_kit::request::request_id(&req.request_id)?;
        let request_id = if request_id.is_empty() { uuid::Uuid::now_v7().to_string() } else { request_id };
        let settings = self.checked_settings(req.settings.as_ref())?;
        self.check_tracker_endpoint_free(&settings, id).await?;
        let events = self
            .decide_subscription(
                principal,
                &request_id,
                id,
                req.expected_version,
                SubscriptionCommand::Update { settings },
            )
            .await
            .map_err(|e| not_found_id(e, "subscription", id))?;
        subscription_view(&events)?.ok_or_else(|| ApiError::not_found("subscription", id.to_string()).into())
    }

    #[instrument(skip_all)]
    pub async fn delete_subscription(
        &self,
        principal: &Principal,
        req: api::DeleteSubscriptionRequest,
    ) -> Result<u64> {
        let id: SubscriptionId = parse_id("subscription_id", &req.subscription_id, "subscription")?;
        let request_id = psirt_kit::request::request_id(&req.request_id)?;
        let request_id = if request_id.is_empty() { uuid::Uuid::now_v7().to_string() } else { request_id };
        let mut bad = psirt_kit::request::Violations::new();
        bad.text("reason", &req.reason, psirt_domain::validation::fields::REASON);
        bad.finish()?;
        let events = self
            .decide_subscription(
                principal,
                &request_id,
                id,
                req.expected_version,
                SubscriptionCommand::Delete { reason: req.reason },
            )
            .await
            .map_err(|e| not_found_id(e, "subscription", id))?;
        Ok(events.last().map_or(0, |e| e.sequence))
    }

    /// Whether the case is in `scopes` by its current products (the routing's
    /// case facts; unknown facts or no case: only for every scope); `cache`
    /// keeps the answers of one call.
    async fn case_in_scope(
        &self,
        scopes: &Scopes,
        case_id: &str,
        cache: &mut std::collections::HashMap<String, bool>,
    ) -> Result<bool> {
        if scopes.is_all() {
            return Ok(true);
        }
        if case_id.is_empty() {
            return Ok(false);
        }
        if let Some(known) = cache.get(case_id) {
            return Ok(*known);
        }
        let facts = readmodel::case_facts(&self.inner.pool, case_id).await?.unwrap_or_default();
        let permitted = scopes.permits(&facts.products);
        cache.insert(case_id.to_owned(), permitted);
        Ok(permitted)
    }

    #[instrument(skip_all)]
    pub async fn list_subscriptions(
        &self,
        req: api::ListSubscriptionsRequest,
    ) -> Result<api::ListSubscriptionsResponse> {
        let limit = self.page_size(req.page_size)?;
        if events::DeliveryChannel::try_from(req.channel).is_err() {
            return Err(invalid("channel", "unknown channel"));
        }
        let after = if req.page_token.is_empty() {
            None
        } else {
            Some(decode_token(&req.page_token, "subscriptions")?)
        };
        let channel = (req.channel != 0).then_some(req.channel);
        // A subscription is listed to a caller whose product scopes permit a
        // product of its filter (one of every product: `*` holders and
        // admins only). Pages are read until this one is full (or
        // MAX_SCOPED_READS were looked at); the next page starts after the
        // last subscription looked at, so only those out of scope are skipped.
        let scopes = scope::current();
        let mut after = after;
        let mut rows = Vec::new();
        let mut looked_at = None;
        let mut more;
        let mut reads = 0;
        'read: loop {
            reads += 1;
            let mut page =
                readmodel::subscriptions(&self.inner.pool, channel, after.clone(), limit + 1).await?;
            let page_more = page.len() > limit as usize;
            page.truncate(limit as usize);
            for (seq, s) in page {
                if rows.len() == limit as usize {
                    more = true;
                    break 'read;
                }
                looked_at = Some((seq, s.subscription_id.clone()));
                let products = s.settings.as_ref().map(|s| s.products.as_slice()).unwrap_or_default();
                if scopes.permits(products) {
                    rows.push((seq, s));
                }
            }
            more = page_more;
            if !page_more || rows.len() == limit as usize || reads >= MAX_SCOPED_READS {
                break;
            }
            after.clone_from(&looked_at);
        }
        // Bounded in bytes too: the next page starts after the last subscription kept.
        let cut = PageBytes::current().fit_with(&mut rows, |(_, s)| s);
        let next_page_token = match (rows.last(), looked_at) {
            (Some((seq, s)), _) if cut => encode_token("subscriptions", seq, &s.subscription_id),
            (_, Some((seq, id))) if more => encode_token("subscriptions", seq, &id),
            _ => String::new(),
        };
        Ok(api::ListSubscriptionsResponse {
            subscriptions: rows.into_iter().map(|(_, s)| s).collect(),
            next_page_token,
        })
    }

    #[instrument(skip_all)]
    pub async fn list_deliveries(
        &self,
        req: api::ListDeliveriesRequest,
    ) -> Result<api::ListDeliveriesResponse> {
        let limit = self.page_size(req.page_size)?;
        let mut violations = psirt_kit::error::Violations::new();
        let case_id = req.case_id.trim();
        violations.check(
            case_id.is_empty() || case_id.parse::<psirt_domain::CaseId>().is_ok(),
            "case_id",
            "not a case id (a UUID)",
        );
        let subscription_id = req.subscription_id.trim();
        violations.check(
            subscription_id.is_empty() || subscription_id.parse::<SubscriptionId>().is_ok(),
            "subscription_id",
            "not a subscription id (a UUID)",
        );
        violations.check(
            api::DeliveryStatus::try_from(req.status).is_ok(),
            "status",
            "unknown delivery status",
        );
        violations.finish()?;
        let filter = readmodel::DeliveryFilter {
            case_id: (!case_id.is_empty()).then(|| case_id.to_lowercase()),
            subscription_id: (!subscription_id.is_empty()).then(|| subscription_id.to_lowercase()),
            status: (req.status != 0).then_some(req.status),
        };
        let after =
            if req.page_token.is_empty() { None } else { Some(decode_token(&req.page_token, "deliveries")?) };
        // Deliveries of cases out of the caller's product scopes are left
        // out: pages are read until this one is full (or MAX_SCOPED_READS
        // were looked at); the next page starts after the last delivery
        // looked at, so only deliveries out of scope are skipped.
        let scopes = scope::current();
        let mut cache = std::collections::HashMap::new();
        let mut after = after;
        let mut deliveries = Vec::new();
        let mut looked_at = None;
        let mut more;
        let mut reads = 0;
        'read: loop {
            reads += 1;
            let mut page = readmodel::deliveries(&self.inner.pool, &filter, after.clone(), limit + 1).await?;
            let page_more = page.len() > limit as usize;
            page.truncate(limit as usize);
            for d in page {
                if deliveries.len() == limit as usize {
                    more = true;
                    break 'read;
                }
                looked_at = Some((d.event_sequence, d.delivery_id.clone()));
                if self.case_in_scope(&scopes, &d.case_id, &mut cache).await? {
                    deliveries.push(d);
                }
            }
            more = page_more;
            if !page_more || deliveries.len() == limit as usize || reads >= MAX_SCOPED_READS {
                break;
            }
            after = looked_at.clone().map(|(seq, id)| (i64::try_from(seq).unwrap_or(i64::MAX), id));
        }
        // Bounded in bytes too: the next page starts after the last delivery kept.
        let cut = PageBytes::current().fit(&mut deliveries);
        let next_page_token = match (deliveries.last(), looked_at) {
            (Some(d), _) if cut => encode_token("deliveries", d.event_sequence, &d.delivery_id),
            (_, Some((seq, id))) if more => encode_token("deliveries", seq, &id),
            _ => String::new(),
        };
        Ok(api::ListDeliveriesResponse { deliveries, next_page_token })
    }

    #[instrument(skip_all)]
    pub async fn redeliver(
        &self,
        principal: &Principal,
        req: api::RedeliverDeliveryRequest,
    ) -> Result<api::Delivery> {
        let id: DeliveryId = parse_id("delivery_id", &req.delivery_id, "delivery")?;
        let request_id = psirt_kit::request::request_id(&req.request_id)?;
        let request_id = if request_id.is_empty() { uuid::Uuid::now_v7().to_string() } else { request_id };
        // A retried request answers as the first did, whatever the version now.
        let event_id: uuid::Uuid =
            command_event_id(id.into(), principal, &request_id, "DeliveryScheduled").into();
        let request = Request {
            expected: req.expected_version,
            idempotency: vec![event_id],
            ..Request::new(id, metadata(principal, &request_id))
        };
        // A delivery of a case out of the caller's scopes is missing to it,
        // before any answer that depends on the delivery.
        if !principal.scopes.is_all() {
            let loaded = self.inner.deliveries.get(id).await?;
            if let Some(delivery) = delivery_view(&loaded.events)?
                && !self.case_in_scope(&principal.scopes, &delivery.case_id, &mut Default::default()).await?
            {
                return Err(ApiError::not_found("delivery", id.to_string()).into());
            }
        }
        let decide =
            |_: &psirt_eventstore::Loaded<psirt_domain::Delivery>| Ok(Some(DeliveryCommand::Redeliver));
        let executed =
            match self.inner.deliveries.execute::<NotificationError>(&request, &|_| event_id, decide).await {
                Ok(executed) => executed,
                Err(CommandError::Domain(DeliveryError::NotFound)) => {
                    return Err(ApiError::not_found("delivery", id.to_string()).into());
                }
                Err(e) => return Err(from_command("delivery", e)),
            };
        delivery_view(&executed.loaded.events)?
            .ok_or_else(|| ApiError::not_found("delivery", id.to_string()).into())
    }

    #[instrument(skip_all)]
    pub async fn list_external_tickets(
        &self,
        req: api::ListExternalTicketsRequest,
    ) -> Result<api::ListExternalTicketsResponse> {
        let case_id: psirt_domain::CaseId = parse_id("case_id", &req.case_id, "case")?;
        // A case out of the caller's scopes has no tickets, like a missing one.
        if !self.case_in_scope(&scope::current(), &case_id.to_string(), &mut Default::default()).await? {
            return Ok(api::ListExternalTicketsResponse { tickets: Vec::new() });
        }
        let tickets =
            readmodel::tickets(&self.inner.pool, &case_id.to_string(), MAX_TICKETS_PER_CASE).await?;
        Ok(api::ListExternalTicketsResponse { tickets })
    }
}

fn not_found_id(
    e: NotificationError,
    resource: &'static str,
    id: impl std::fmt::Display,
) -> NotificationError {
    match e {
        NotificationError::Subscription(SubscriptionError::NotFound) => {
            ApiError::not_found(resource, id.to_string()).into()
        }
        other => other,
    }
}
