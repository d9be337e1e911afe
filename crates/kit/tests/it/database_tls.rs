//! PostgreSQL over TLS, as managed PostgreSQL services require: the URL's
//! `sslmode` / `sslrootcert` parameters are honoured (this build carries
//! rustls), and a server certificate the given CA did not sign is refused.
//!
//! The test server must have `ssl = on`; Debian's PostgreSQL (what `.ci/run`
//! installs) has it, with the package's self-signed certificate.

use psirt_kit::config::DatabaseConfig;
use psirt_testkit::TestDatabase;
use secrecy::SecretString;

fn with_params(url: &str, params: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{params}")
}

fn config(url: String) -> DatabaseConfig {
    DatabaseConfig { url: SecretString::from(url), max_connections: 2, ..DatabaseConfig::default() }
}

async fn encrypted(pool: &sqlx::AnyPool) -> anyhow::Result<bool> {
    // `pg_stat_ssl.ssl` as text: the Any driver has no portable boolean.
    let (ssl,): (String,) = sqlx::query_as("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(pool)
        .await?;
    Ok(ssl == "true")
}

#[tokio::test]
async fn a_postgres_url_asking_for_tls_gets_an_encrypted_connection() -> anyhow::Result<()> {
    let db = TestDatabase::postgres().await?;

    let plain = psirt_kit::backbone::open_database(&config(with_params(db.url(), "sslmode=disable"))).await?;
    assert!(
        !encrypted(&plain).await?,
        "sslmode=disable must not encrypt (else the check below proves nothing)"
    );
    plain.close().await;

    let pool = psirt_kit::backbone::open_database(&config(with_params(db.url(), "sslmode=require")))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "sslmode=require refused ({e:#}); the test PostgreSQL must run with ssl = on, as Debian's does"
            )
        })?;
    assert!(encrypted(&pool).await?, "sslmode=require gave a plaintext connection");
    pool.close().await;
    Ok(())
}

#[tokio::test]
async fn a_server_certificate_the_configured_ca_did_not_sign_is_refused() -> anyhow::Result<()> {
    let db = TestDatabase::postgres().await?;
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/other_ca.pem");
    let url = with_params(db.url(), &format!("sslmode=verify-ca&sslrootcert={ca}"));
    let refused = psirt_kit::backbone::open_database(&config(url)).await.expect_err("an unknown CA");
    let message = format!("{refused:#}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    assert!(!message.contains("without TLS support"), "the build must carry TLS: {message}");
    Ok(())
}
