//! Migrations refused with a cause an operator can act on.

use std::path::Path;

use sqlx::migrate::Migrator;

async fn migrator(dir: &Path, files: &[(&str, &str)]) -> anyhow::Result<Migrator> {
    std::fs::create_dir_all(dir)?;
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql)?;
    }
    Ok(Migrator::new(dir).await?)
}

#[tokio::test]
async fn a_database_of_another_service_is_refused_with_the_reason() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("shared.db").display());
    let pool = sqlx::AnyPool::connect(&url).await?;
    let intake = migrator(
        &dir.path().join("intake"),
        &[("0001_reports.sql", "CREATE TABLE reports (id TEXT PRIMARY KEY);")],
    )
    .await?;
    let triage = migrator(
        &dir.path().join("triage"),
        &[("0001_cases.sql", "CREATE TABLE cases (id TEXT PRIMARY KEY);")],
    )
    .await?;

    psirt_kit::backbone::migrate(&intake, &pool, "intake").await?;
    psirt_kit::backbone::migrate(&intake, &pool, "intake").await?; // again: nothing to do
    let refused = psirt_kit::backbone::migrate(&triage, &pool, "triage").await.expect_err("not its database");
    let message = refused.to_string();
    assert!(message.contains("psirt-triage"), "{message}");
    assert!(message.contains("each service needs a database of its own"), "{message}");
    assert!(message.contains("migration 1"), "sqlx's own finding is kept: {message}");
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'cases'")
            .fetch_all(&pool)
            .await?;
    assert!(tables.is_empty(), "nothing of the refused migrations was applied");
    pool.close().await;
    Ok(())
}
