//! TLS (`sslmode`) against a private server with a certificate of a test authority: the store's pool
//! and its LISTEN connection both use TLS when asked, verify the certificate when told to, and
//! refuse with a clear error what cannot be verified or is not offered.

use std::time::Duration;

use queue_core::Storage;
use queue_postgres::testing::{PostgresServer, ServerConfig};
use queue_postgres::PostgresStorage;

use crate::{env, manual_clock, within, HOUR};

/// A private server with TLS on.
fn tls_server() -> PostgresServer {
    PostgresServer::with(ServerConfig {
        tls: true,
        ..Default::default()
    })
}

/// `url` with `params` appended to its query.
fn with(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// Whether the store's pool connections use TLS (the server's own view).
async fn pool_uses_tls(store: &PostgresStorage) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// How many of the server's client connections use TLS, and how many do not.
async fn connections_by_tls(store: &PostgresStorage) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.backend_type = 'client backend'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_and_verify_full_connect_over_tls() {
    let server = tls_server();
    let root = server.tls_root_cert().unwrap();
    for params in [
        "sslmode=require".to_owned(),
        format!("sslmode=verify-full&sslrootcert={}", root.display()),
        format!("sslmode=verify-ca&sslrootcert={}", root.display()),
    ] {
        let store = PostgresStorage::connect(&with(&server.url(), &params))
            .await
            .unwrap_or_else(|e| panic!("{params}: {e}"));
        assert!(pool_uses_tls(&store).await, "{params}: not over TLS");
        // The listener connects the same way: every client connection is on TLS.
        within("the listener connects", async {
            while !store.is_listening() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let (tls, plain) = connections_by_tls(&store).await;
        assert!(
            tls >= 2 && plain == 0,
            "{params}: {tls} on TLS, {plain} without"
        );
        // And the store works over it.
        let clock = manual_clock();
        store
            .enqueue(vec![env(&clock, "default", "t")])
            .await
            .unwrap();
        store.wait_for_work("default", HOUR).await.unwrap();
        assert_eq!(store.fetch("default", 1, HOUR).await.unwrap().len(), 1);
    }
    // sslmode=disable still connects in the clear.
    let plain = PostgresStorage::connect(&with(&server.url(), "sslmode=disable"))
        .await
        .unwrap();
    assert!(!pool_uses_tls(&plain).await);
}

#[tokio::test]
async fn a_certificate_that_cannot_be_verified_is_refused_clearly() {
    let server = tls_server();
    // A root that did not sign the server's certificate.
    let other = tempfile::tempdir().unwrap();
    let wrong_root = queue_core::testing::test_certificates(other.path()).root;
    let url = with(
        &server.url(),
        &format!("sslmode=verify-full&sslrootcert={}", wrong_root.display()),
    );
    let err = PostgresStorage::connect(&url)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("tls"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn sslmode_require_against_a_server_without_tls_is_a_clear_error() {
    let server = PostgresServer::start();
    let err = PostgresStorage::connect(&with(&server.url(), "sslmode=require"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.to_lowercase().contains("tls") || err.to_lowercase().contains("ssl"),
        "{err}"
    );
}
