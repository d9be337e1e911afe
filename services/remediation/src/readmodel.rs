//! The remediation read model: case facts, plans, actions, advisories and
//! the frozen documents of every publication, kept by one projection
//! (`remediation-views`) from the case, plan and advisory events.

use prost::Message;
use psirt_eventstore::RecordedEvent;
use psirt_projection::{ApplyError, Projection};
use psirt_proto::{events, remediation as api};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::documents::{self, Format};
use crate::view::{self, CaseFacts};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const PROJECTION_NAME: &str = "remediation-views";

/// The projection behind every read of the service.
pub struct ViewsProjection {
    pub documents: documents::Settings,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored {what} does not decode: {e}").into())
}

pub(crate) async fn facts_in(
    conn: &mut AnyConnection,
    case_id: &str,
) -> Result<Option<CaseFacts>, sqlx::Error> {
    let row = sqlx::query("SELECT facts FROM remediation_cases WHERE case_id = $1")
        .bind(case_id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        None => Ok(None),
        Some(row) => {
            let text: String = row.try_get("facts")?;
            serde_json::from_str(&text).map(Some).map_err(|e| corrupt("case facts", e))
        }
    }
}

async fn save_facts(conn: &mut AnyConnection, facts: &CaseFacts) -> Result<(), sqlx::Error> {
    let text = serde_json::to_string(facts).map_err(|e| corrupt("case facts", e))?;
    sqlx::query(
        "INSERT INTO remediation_cases (case_id, facts) VALUES ($1, $2) \
         ON CONFLICT (case_id) DO UPDATE SET facts = excluded.facts",
    )
    .bind(&facts.case_id)
    .bind(text)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn plan_by_id(conn: &mut AnyConnection, plan_id: &str) -> Result<Option<api::Plan>, sqlx::Error> {
    let row = sqlx::query("SELECT view FROM remediation_plans WHERE plan_id = $1")
        .bind(plan_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| decode::<api::Plan>(&r.try_get::<Vec<u8>, _>("view")?, "plan")).transpose()
}

pub(crate) async fn plan_in(
    conn: &mut AnyConnection,
    case_id: &str,
) -> Result<Option<api::Plan>, sqlx::Error> {
    let row = sqlx::query("SELECT view FROM remediation_plans WHERE case_id = $1")
        .bind(case_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| decode::<api::Plan>(&r.try_get::<Vec<u8>, _>("view")?, "plan")).transpose()
}

async fn save_plan(conn: &mut AnyConnection, plan: &api::Plan) -> Result<(), sqlx::Error> {
    let version = i64::try_from(plan.version).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO remediation_plans (case_id, plan_id, version, updated_at_ms, view) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (case_id) DO UPDATE SET plan_id = excluded.plan_id, version = excluded.version, \
         updated_at_ms = excluded.updated_at_ms, view = excluded.view",
    )
    .bind(&plan.case_id)
    .bind(&plan.plan_id)
    .bind(version)
    .bind(view::millis(plan.updated_at.as_ref()))
    .bind(plan.encode_to_vec())
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM remediation_actions WHERE case_id = $1")
        .bind(&plan.case_id)
        .execute(&mut *conn)
        .await?;
    for a in &plan.actions {
        sqlx::query(
            "INSERT INTO remediation_actions (case_id, action_id, owner_team, product, due_at_ms, is_open) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&plan.case_id)
        .bind(&a.action_id)
        .bind(&a.owner_team)
        .bind(a.target.as_ref().map(|t| t.product.to_lowercase()).unwrap_or_default())
        .bind(view::millis(a.due_at.as_ref()))
        .bind(i32::from(a.state == api::ActionState::Open as i32))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn advisory_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<api::Advisory>, sqlx::Error> {
    let row = sqlx::query("SELECT view FROM remediation_advisories WHERE advisory_id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| decode::<api::Advisory>(&r.try_get::<Vec<u8>, _>("view")?, "advisory")).transpose()
}

pub(crate) async fn advisory_in(
    conn: &mut AnyConnection,
    case_id: &str,
) -> Result<Option<api::Advisory>, sqlx::Error> {
    let row = sqlx::query("SELECT view FROM remediation_advisories WHERE case_id = $1")
        .bind(case_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| decode::<api::Advisory>(&r.try_get::<Vec<u8>, _>("view")?, "advisory")).transpose()
}

async fn save_advisory(conn: &mut AnyConnection, advisory: &api::Advisory) -> Result<(), sqlx::Error> {
    let version = i64::try_from(advisory.version).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO remediation_advisories (case_id, advisory_id, state, version, updated_at_ms, view) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (case_id) DO UPDATE SET advisory_id = excluded.advisory_id, state = excluded.state, \
         version = excluded.version, updated_at_ms = excluded.updated_at_ms, view = excluded.view",
    )
    .bind(&advisory.case_id)
    .bind(&advisory.advisory_id)
    .bind(advisory.state)
    .bind(version)
    .bind(view::millis(advisory.updated_at.as_ref()))
    .bind(advisory.encode_to_vec())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, sqlx::Error> {
    M::decode(bytes).map_err(|e| corrupt(what, e))
}

impl ViewsProjection {
    /// Freezes the documents of a publication: every format the record
    /// allows, built from the read model as it stands at the publication's
    /// position in the stream, so a rebuild writes the same bytes.
    async fn freeze_documents(
        &self,
        conn: &mut AnyConnection,
        advisory: &api::Advisory,
        sequence: u64,
    ) -> Result<(), sqlx::Error> {
        let facts = facts_in(conn, &advisory.case_id).await?.unwrap_or_default();
        let plan = plan_in(conn, &advisory.case_id).await?.unwrap_or_default();
        let sequence = i64::try_from(sequence).unwrap_or(i64::MAX);
        for format in Format::ALL {
            // A format the record cannot fill (a CVE record without a CVE
            // id) or that fails its schema is left out; the export answers
            // with the reason.
            let Ok(document) = documents::render(&self.documents, format, &facts, &plan, advisory) else {
                continue;
            };
            if format == Format::Csaf
                && let Err(e) = documents::write_to_directory(&self.documents, advisory, &document.bytes)
            {
                tracing::warn!(error = %e, case_id = %advisory.case_id, "writing the CSAF provider directory failed");
            }
            sqlx::query(
                "INSERT INTO remediation_documents (case_id, format, version, sequence, document) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (case_id, format, version) DO UPDATE SET \
                 sequence = excluded.sequence, document = excluded.document",
            )
            .bind(&advisory.case_id)
            .bind(format.proto() as i32)
            .bind(&advisory.published_version)
            .bind(sequence)
            .bind(document.bytes)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

impl Projection for ViewsProjection {
    fn name(&self) -> &str {
        PROJECTION_NAME
    }

    async fn apply(&self, conn: &mut AnyConnection, event: &RecordedEvent) -> Result<(), ApplyError> {
        if let Some(case_id) = view::case_id_of(event) {
            let mut facts = facts_in(conn, case_id)
                .await?
                .unwrap_or_else(|| CaseFacts { case_id: case_id.to_owned(), ..CaseFacts::default() });
            if view::apply_case_event(&mut facts, event)? {
                facts.case_id = case_id.to_owned();
                save_facts(conn, &facts).await?;
            }
        } else if let Some(plan_id) = event.subject.strip_prefix("psirt.evt.remediation.") {
            let mut plan = plan_by_id(conn, plan_id).await?.unwrap_or_default();
            view::apply_plan_event(&mut plan, event)?;
            if !plan.case_id.is_empty() {
                save_plan(conn, &plan).await?;
            }
        } else if let Some(advisory_id) = event.subject.strip_prefix("psirt.evt.advisory.") {
            let mut advisory = advisory_by_id(conn, advisory_id).await?.unwrap_or_default();
            view::apply_advisory_event(&mut advisory, event)?;
            if !advisory.case_id.is_empty() {
                save_advisory(conn, &advisory).await?;
                let t = event.event_type.as_str();
                if psirt_eventstore::is_type::<events::AdvisoryPublished>(t)
                    || psirt_eventstore::is_type::<events::AdvisoryRevised>(t)
                {
                    self.freeze_documents(conn, &advisory, event.sequence).await?;
                }
            }
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        for table in [
            "remediation_cases",
            "remediation_plans",
            "remediation_actions",
            "remediation_advisories",
            "remediation_documents",
        ] {
            sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// The facts of a case.
pub async fn facts(pool: &AnyPool, case_id: &str) -> Result<Option<CaseFacts>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    facts_in(&mut conn, case_id).await
}

/// The plan of a case.
pub async fn plan(pool: &AnyPool, case_id: &str) -> Result<Option<api::Plan>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    plan_in(&mut conn, case_id).await
}

/// The advisory of a case.
pub async fn advisory(pool: &AnyPool, case_id: &str) -> Result<Option<api::Advisory>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    advisory_in(&mut conn, case_id).await
}

/// The frozen document of the latest publication in `format`.
pub async fn published_document(
    pool: &AnyPool,
    case_id: &str,
    format: Format,
    version: &str,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT document FROM remediation_documents WHERE case_id = $1 AND format = $2 AND version = $3",
    )
    .bind(case_id)
    .bind(format.proto() as i32)
    .bind(version)
    .fetch_optional(pool)
    .await?;
    row.map(|r| r.try_get::<Vec<u8>, _>("document")).transpose()
}

/// A page of open actions due at or before `now_ms`, oldest due first.
/// Keyset pagination on (due_at_ms, case_id, action_id).
pub async fn overdue(
    pool: &AnyPool,
    now_ms: i64,
    owner_team: &str,
    product: &str,
    after: Option<(i64, String, String)>,
    limit: u32,
) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    let (due, case_id, action_id) = after.unwrap_or((i64::MIN, String::new(), String::new()));
    let rows = sqlx::query(
        "SELECT case_id, action_id, due_at_ms FROM remediation_actions \
         WHERE is_open = 1 AND due_at_ms <= $1 AND ($2 = '' OR owner_team = $2) AND ($3 = '' OR product = $3) \
         AND (due_at_ms > $4 OR (due_at_ms = $4 AND (case_id > $5 OR (case_id = $5 AND action_id > $6)))) \
         ORDER BY due_at_ms, case_id, action_id LIMIT $7",
    )
    .bind(now_ms)
    .bind(owner_team)
    .bind(product.to_lowercase())
    .bind(due)
    .bind(case_id)
    .bind(action_id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| Ok((r.try_get("case_id")?, r.try_get("action_id")?, r.try_get("due_at_ms")?)))
        .collect()
}

/// Cases with at least one open action due at or before `now_ms`.
pub async fn cases_with_due_actions(
    pool: &AnyPool,
    now_ms: i64,
    limit: u32,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT DISTINCT case_id FROM remediation_actions WHERE is_open = 1 AND due_at_ms <= $1 \
         ORDER BY case_id LIMIT $2",
    )
    .bind(now_ms)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(|r| r.try_get("case_id")).collect()
}

/// A page of advisories, most recently changed first; keyset on
/// (updated_at_ms, case_id) descending.
pub async fn advisories(
    pool: &AnyPool,
    state: i32,
    after: Option<(i64, String)>,
    limit: u32,
) -> Result<Vec<api::Advisory>, sqlx::Error> {
    let (updated, case_id) = after.unwrap_or((i64::MAX, "\u{10ffff}".to_owned()));
    let rows = sqlx::query(
        "SELECT view FROM remediation_advisories WHERE ($1 = 0 OR state = $1) \
         AND (updated_at_ms < $2 OR (updated_at_ms = $2 AND case_id < $3)) \
         ORDER BY updated_at_ms DESC, case_id DESC LIMIT $4",
    )
    .bind(state)
    .bind(updated)
    .bind(case_id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(|r| decode(&r.try_get::<Vec<u8>, _>("view")?, "advisory")).collect()
}
