//! The notification read model: subscriptions, deliveries and ticket links
//! kept by one projection (`notification-views`), and the queries of the
//! API and of the delivery worker.

use prost::Message;
use psirt_eventstore::RecordedEvent;
use psirt_projection::{ApplyError, Projection};
use psirt_proto::{events, notification as api};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::mapping::millis;
use crate::view;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const PROJECTION_NAME: &str = "notification-views";

/// The projection behind every list of the API and the worker's queue.
pub struct ViewsProjection;

fn corrupt(what: &str, e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored {what} does not decode: {e}").into())
}

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, sqlx::Error> {
    M::decode(bytes).map_err(|e| corrupt(what, e))
}

fn seq(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

async fn subscription_row(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<api::Subscription>, sqlx::Error> {
    let row = sqlx::query("SELECT view FROM notification_subscriptions WHERE subscription_id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| decode(&r.try_get::<Vec<u8>, _>("view")?, "subscription")).transpose()
}

async fn delivery_row(conn: &mut AnyConnection, id: &str) -> Result<Option<api::Delivery>, sqlx::Error> {
    let row = sqlx::query("SELECT view FROM notification_deliveries WHERE delivery_id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| decode(&r.try_get::<Vec<u8>, _>("view")?, "delivery")).transpose()
}

async fn ticket_row(conn: &mut AnyConnection, id: &str) -> Result<Option<api::ExternalTicket>, sqlx::Error> {
    let row = sqlx::query("SELECT view FROM notification_tickets WHERE link_id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| decode(&r.try_get::<Vec<u8>, _>("view")?, "ticket")).transpose()
}

/// The aggregate id in the event's subject (`psirt.evt.<aggregate>.<id>`).
fn subject_id(e: &RecordedEvent) -> &str {
    e.subject.rsplit('.').next().unwrap_or_default()
}

impl Projection for ViewsProjection {
    fn name(&self) -> &str {
        PROJECTION_NAME
    }

    async fn apply(&self, conn: &mut AnyConnection, e: &RecordedEvent) -> Result<(), ApplyError> {
        let t = e.event_type.as_str();
        if t.starts_with("psirt.events.v1.Subscription") {
            let id = subject_id(e);
            let current = subscription_row(conn, id).await?;
            let Some(next) = view::fold_subscription(current, e)? else { return Ok(()) };
            let deleted = i32::from(view::is_subscription_deleted(e));
            let channel = next.settings.as_ref().map_or(0, |s| s.channel);
            sqlx::query(
                "INSERT INTO notification_subscriptions (subscription_id, created_seq, channel, deleted, view, owner) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (subscription_id) DO UPDATE SET channel = excluded.channel, \
                 deleted = CASE WHEN notification_subscriptions.deleted = 1 THEN 1 ELSE excluded.deleted END, \
                 view = excluded.view",
            )
            .bind(&next.subscription_id)
            .bind(seq(e.sequence))
            .bind(channel)
            .bind(deleted)
            .bind(next.encode_to_vec())
            // The first event's actor; later events keep it (not in the update).
            .bind(e.metadata.actor.as_deref())
            .execute(&mut *conn)
            .await?;
        } else if t.starts_with("psirt.events.v1.Delivery") {
            let id = subject_id(e);
            let current = delivery_row(conn, id).await?;
            let Some(next) = view::fold_delivery(current, e)? else { return Ok(()) };
            let next_attempt = if next.status == api::DeliveryStatus::Pending as i32 {
                millis(next.next_attempt_at.as_ref())
            } else {
                0
            };
            sqlx::query(
                "INSERT INTO notification_deliveries (delivery_id, subscription_id, case_id, event_sequence, status, \
                 next_attempt_ms, view) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (delivery_id) DO UPDATE SET \
                 status = excluded.status, next_attempt_ms = excluded.next_attempt_ms, view = excluded.view",
            )
            .bind(&next.delivery_id)
            .bind(&next.subscription_id)
            .bind(&next.case_id)
            .bind(seq(next.event_sequence))
            .bind(next.status)
            .bind(next_attempt)
            .bind(next.encode_to_vec())
            .execute(&mut *conn)
            .await?;
        } else if psirt_eventstore::is_type::<events::ExternalTicketLinked>(t)
            || psirt_eventstore::is_type::<events::ExternalTicketUpdated>(t)
        {
            let id = subject_id(e);
            let current = ticket_row(conn, id).await?;
            let Some(next) = view::fold_ticket(current, e)? else { return Ok(()) };
            let sys_id = if psirt_eventstore::is_type::<events::ExternalTicketLinked>(t) {
                e.decode::<events::ExternalTicketLinked>().map_err(|e| corrupt("ticket link", e))?.sys_id
            } else {
                String::new()
            };
            sqlx::query(
                "INSERT INTO notification_tickets \
                 (link_id, case_id, linked_seq, view, ticket_system, ticket_key, sys_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (link_id) DO UPDATE SET view = excluded.view",
            )
            .bind(&next.link_id)
            .bind(&next.case_id)
            .bind(seq(e.sequence))
            .bind(next.encode_to_vec())
            .bind(next.system)
            .bind(&next.key)
            .bind(sys_id)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        for table in ["notification_subscriptions", "notification_deliveries", "notification_tickets"] {
            sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// The routing's facts of a case (`notification_cases`), `None` when
/// unknown or unreadable.
pub async fn case_facts(
    pool: &AnyPool,
    case_id: &str,
) -> Result<Option<psirt_domain::notification::CaseFacts>, sqlx::Error> {
    let row = sqlx::query("SELECT facts FROM notification_cases WHERE case_id = $1")
        .bind(case_id.to_lowercase())
        .fetch_optional(pool)
        .await?;
    Ok(row.and_then(|r| r.try_get::<String, _>("facts").ok()).and_then(|t| serde_json::from_str(&t).ok()))
}

/// One page of live subscriptions after `(created_seq, id)`, oldest first.
pub async fn subscriptions(
    pool: &AnyPool,
    channel: Option<i32>,
    after: Option<(i64, String)>,
    limit: u32,
) -> Result<Vec<(i64, api::Subscription)>, sqlx::Error> {
    let (after_seq, after_id) = after.unwrap_or((-1, String::new()));
    let rows = sqlx::query(
        "SELECT created_seq, view FROM notification_subscriptions WHERE deleted = 0 \
         AND ($1 = 0 OR channel = $1) AND (created_seq > $2 OR (created_seq = $2 AND subscription_id > $3)) \
         ORDER BY created_seq, subscription_id LIMIT $4",
    )
    .bind(channel.unwrap_or(0))
    .bind(after_seq)
    .bind(after_id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>("created_seq")?,
                decode(&r.try_get::<Vec<u8>, _>("view")?, "subscription")?,
            ))
        })
        .collect()
}

/// A subscription by id, deleted or not, with its deletion flag.
pub async fn subscription(
    pool: &AnyPool,
    id: &str,
) -> Result<Option<(api::Subscription, bool)>, sqlx::Error> {
    let row = sqlx::query("SELECT deleted, view FROM notification_subscriptions WHERE subscription_id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.map(|r| {
        Ok((decode(&r.try_get::<Vec<u8>, _>("view")?, "subscription")?, r.try_get::<i32, _>("deleted")? != 0))
    })
    .transpose()
}

/// Filters of `ListDeliveries`.
#[derive(Debug, Default)]
pub struct DeliveryFilter {
    pub case_id: Option<String>,
    pub subscription_id: Option<String>,
    pub status: Option<i32>,
}

/// One page of deliveries after `(event_sequence, id)`, in event order.
pub async fn deliveries(
    pool: &AnyPool,
    filter: &DeliveryFilter,
    after: Option<(i64, String)>,
    limit: u32,
) -> Result<Vec<api::Delivery>, sqlx::Error> {
    let (after_seq, after_id) = after.unwrap_or((-1, String::new()));
    let rows = sqlx::query(
        "SELECT view FROM notification_deliveries WHERE ($1 = '' OR case_id = $1) \
         AND ($2 = '' OR subscription_id = $2) AND ($3 = 0 OR status = $3) \
         AND (event_sequence > $4 OR (event_sequence = $4 AND delivery_id > $5)) \
         ORDER BY event_sequence, delivery_id LIMIT $6",
    )
    .bind(filter.case_id.clone().unwrap_or_default())
    .bind(filter.subscription_id.clone().unwrap_or_default())
    .bind(filter.status.unwrap_or(0))
    .bind(after_seq)
    .bind(after_id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(|r| decode(&r.try_get::<Vec<u8>, _>("view")?, "delivery")).collect()
}

/// Pending deliveries due at `now_ms` that head their (subscription, case)
/// chain: no pending delivery of an earlier event to the same subscription
/// and case, so each chain is delivered in stream order.
pub async fn due(pool: &AnyPool, now_ms: i64, limit: u32) -> Result<Vec<api::Delivery>, sqlx::Error> {
    let pending = api::DeliveryStatus::Pending as i32;
    let rows = sqlx::query(
        "SELECT d.view FROM notification_deliveries d WHERE d.status = $1 AND d.next_attempt_ms <= $2 \
         AND NOT EXISTS (SELECT 1 FROM notification_deliveries e WHERE e.subscription_id = d.subscription_id \
         AND e.case_id = d.case_id AND e.status = $1 AND e.event_sequence < d.event_sequence) \
         ORDER BY d.next_attempt_ms, d.event_sequence LIMIT $3",
    )
    .bind(pending)
    .bind(now_ms)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(|r| decode(&r.try_get::<Vec<u8>, _>("view")?, "delivery")).collect()
}

/// The ticket links of a case, oldest first (bounded).
pub async fn tickets(
    pool: &AnyPool,
    case_id: &str,
    limit: u32,
) -> Result<Vec<api::ExternalTicket>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT view FROM notification_tickets WHERE case_id = $1 ORDER BY linked_seq, link_id LIMIT $2",
    )
    .bind(case_id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(|r| decode(&r.try_get::<Vec<u8>, _>("view")?, "ticket")).collect()
}

/// A linked ticket as inbound webhooks and reconciliation look it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRef {
    pub link_id: String,
    pub key: String,
    pub sys_id: String,
    pub url: String,
    /// Recorded as deleted in the tracker: not read back any more.
    pub deleted: bool,
}

/// The link of a ticket, by the Jira issue key or the ServiceNow sys_id.
pub async fn ticket_by_external_id(
    pool: &AnyPool,
    system: i32,
    external_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let column = if system == events::TicketSystem::Servicenow as i32 { "sys_id" } else { "ticket_key" };
    let row = sqlx::query(&format!(
        "SELECT link_id FROM notification_tickets WHERE ticket_system = $1 AND {column} = $2 \
         ORDER BY linked_seq LIMIT 1"
    ))
    .bind(system)
    .bind(external_id)
    .fetch_optional(pool)
    .await?;
    row.map(|r| r.try_get::<String, _>("link_id")).transpose()
}

/// A page of the linked tickets of a tracker, after `after` (a link id), by link id.
pub async fn tickets_of_system(
    pool: &AnyPool,
    system: i32,
    after: &str,
    limit: u32,
) -> Result<Vec<TicketRef>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT link_id, ticket_key, sys_id, view FROM notification_tickets \
         WHERE ticket_system = $1 AND link_id > $2 ORDER BY link_id LIMIT $3",
    )
    .bind(system)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let view: api::ExternalTicket = decode(&r.try_get::<Vec<u8>, _>("view")?, "ticket")?;
            Ok(TicketRef {
                link_id: r.try_get("link_id")?,
                key: r.try_get("ticket_key")?,
                sys_id: r.try_get("sys_id")?,
                deleted: view.status_category == events::TicketStatusCategory::Deleted as i32,
                url: view.url,
            })
        })
        .collect()
}

/// The cursor `name` (epoch ms), `None` before the first complete pass.
pub async fn cursor(pool: &AnyPool, name: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT at_ms FROM notification_cursors WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
}

/// Moves the cursor `name` to `at_ms`.
pub async fn set_cursor(pool: &AnyPool, name: &str, at_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notification_cursors (name, at_ms) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET at_ms = excluded.at_ms",
    )
    .bind(name)
    .bind(at_ms)
    .execute(pool)
    .await?;
    Ok(())
}

/// The distinct endpoints (Jira projects, ServiceNow tables) of the live
/// subscriptions of `channel`, at most `max`.
pub async fn endpoints_of_channel(
    pool: &AnyPool,
    channel: i32,
    max: usize,
) -> Result<Vec<String>, sqlx::Error> {
    let mut out = std::collections::BTreeSet::new();
    let mut after = None;
    loop {
        let page = subscriptions(pool, Some(channel), after.clone(), 500).await?;
        let Some((seq, last)) = page.last() else { break };
        after = Some((*seq, last.subscription_id.clone()));
        for (_, s) in &page {
            if let Some(settings) = &s.settings {
                out.insert(settings.endpoint.clone());
            }
        }
        if page.len() < 500 || out.len() >= max {
            break;
        }
    }
    Ok(out.into_iter().take(max).collect())
}

/// Takes or renews the lease `name` for `owner` until `now + lease`; false
/// while someone else holds it.
pub async fn acquire_lease(
    pool: &AnyPool,
    name: &str,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO notification_leases (name, owner, until_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms \
         WHERE notification_leases.owner = excluded.owner OR notification_leases.until_ms < $4",
    )
    .bind(name)
    .bind(owner)
    .bind(now_ms.saturating_add(lease_ms))
    .bind(now_ms)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives the lease up so a standby takes over at once.
pub async fn release_lease(pool: &AnyPool, name: &str, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE notification_leases SET until_ms = 0 WHERE name = $1 AND owner = $2")
        .bind(name)
        .bind(owner)
        .execute(pool)
        .await?;
    Ok(())
}

/// How many subscriptions `owner` created that are not deleted.
pub async fn subscriptions_of(pool: &AnyPool, owner: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM notification_subscriptions WHERE owner = $1 AND deleted = 0")
        .bind(owner)
        .fetch_one(pool)
        .await
}
