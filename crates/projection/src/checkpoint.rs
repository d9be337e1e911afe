//! The projection tables (`projection_checkpoints`, `projection_parked`)
//! and the SQL of the checkpoint row: a projection's checkpoint (the last
//! stream sequence applied) and the lease that keeps one runner per
//! projection active.

use sqlx::{AnyConnection, AnyPool};

/// Creates the checkpoint and parking tables if they do not exist. Portable
/// SQL for PostgreSQL and SQLite.
pub async fn ensure_schema(pool: &AnyPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS projection_checkpoints (
            name TEXT PRIMARY KEY,
            last_sequence BIGINT NOT NULL,
            lease_owner TEXT,
            lease_until_ms BIGINT NOT NULL DEFAULT 0,
            updated_at_ms BIGINT NOT NULL
        )",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS projection_parked (
            projection TEXT NOT NULL,
            sequence BIGINT NOT NULL,
            subject TEXT NOT NULL,
            event_type TEXT NOT NULL,
            error TEXT NOT NULL,
            payload BYTEA NOT NULL,
            parked_at_ms BIGINT NOT NULL,
            PRIMARY KEY (projection, sequence)
        )",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Now, in ms since the epoch, as the tables store times.
pub(crate) fn now_ms() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

/// A stream sequence as the tables store it.
pub(crate) fn to_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// The checkpoint of a projection (0 when it never ran).
pub async fn checkpoint(pool: &AnyPool, name: &str) -> Result<u64, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT last_sequence FROM projection_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(s,)| u64::try_from(s).unwrap_or(0)).unwrap_or(0))
}

/// Locks the checkpoint row of projection `name` for the transaction `conn`
/// is in, and returns the checkpoint (0 without a row); `None` while the
/// lease of a runner other than `owner` runs at `now`.
pub(crate) async fn lock(
    conn: &mut AnyConnection,
    name: &str,
    owner: &str,
    now: i64,
) -> Result<Option<u64>, sqlx::Error> {
    // Write first: on SQLite a transaction that reads first and writes
    // later fails at once ("database is locked") when another writer
    // committed in between, instead of waiting for the lock; on
    // PostgreSQL this row lock serialises two runners' batches.
    let row: Option<(i64, Option<String>, i64)> = sqlx::query_as(
        "UPDATE projection_checkpoints SET updated_at_ms = updated_at_ms WHERE name = $1
         RETURNING last_sequence, lease_owner, lease_until_ms",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    let (checkpoint, lease_ok) = match &row {
        None => (0u64, true),
        Some((seq, holder, until)) => {
            (u64::try_from(*seq).unwrap_or(0), holder.as_deref().is_none_or(|o| o == owner) || *until < now)
        }
    };
    Ok(lease_ok.then_some(checkpoint))
}

/// Stores the checkpoint of projection `name` and the lease of `owner`
/// until `lease_until`, in the transaction `conn` is in; `false` (nothing
/// stored) while another runner's lease runs at `now`.
pub(crate) async fn store(
    conn: &mut AnyConnection,
    name: &str,
    checkpoint: u64,
    owner: &str,
    lease_until: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "INSERT INTO projection_checkpoints (name, last_sequence, lease_owner, lease_until_ms, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET last_sequence = excluded.last_sequence,
             lease_owner = excluded.lease_owner, lease_until_ms = excluded.lease_until_ms,
             updated_at_ms = excluded.updated_at_ms
         WHERE projection_checkpoints.lease_owner IS NULL
            OR projection_checkpoints.lease_owner = excluded.lease_owner
            OR projection_checkpoints.lease_until_ms < $5",
    )
    .bind(name)
    .bind(to_i64(checkpoint))
    .bind(owner)
    .bind(lease_until)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(updated.rows_affected() > 0)
}

/// Gives up `owner`'s lease of projection `name` so a standby runner takes
/// over at once.
pub(crate) async fn release_lease(pool: &AnyPool, name: &str, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection_checkpoints SET lease_owner = NULL, lease_until_ms = 0 WHERE name = $1 AND lease_owner = $2",
    )
    .bind(name)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(())
}

/// Moves the checkpoint of projection `name` back to 0, in the transaction
/// `conn` is in.
pub(crate) async fn rewind(conn: &mut AnyConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE projection_checkpoints SET last_sequence = 0 WHERE name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
