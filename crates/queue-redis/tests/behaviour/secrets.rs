//! Passwords never appear in errors, logs or debug output.

use queue_redis::{RedisOptions, RedisStorage};

use crate::support::{RedisServer, ServerConfig};

const RIGHT: &str = "right-Pw-7731";
const WRONG: &str = "wrong-Pw-0042";

fn assert_clean(message: &str) {
    for secret in [RIGHT, WRONG] {
        assert!(!message.contains(secret), "password leaked: {message}");
    }
}

#[tokio::test]
async fn wrong_password_error_does_not_show_it() {
    let server = RedisServer::with(ServerConfig {
        password: Some(RIGHT.into()),
        ..ServerConfig::default()
    });
    let url = format!("redis://:{WRONG}@127.0.0.1:{}/0", server.port());
    let err = RedisStorage::connect(&url).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(err.is_transient(), "a storage error: {text}");
    assert!(text.contains(":***@"), "the URL is shown redacted: {text}");
    assert_clean(&text);

    // The right password works, and the store's Debug output hides it.
    let store = RedisStorage::connect(&server.url()).await.unwrap();
    assert_clean(&format!("{store:?}"));
    assert_clean(&format!("{:?}", RedisOptions::new(server.url())));
}

#[tokio::test]
async fn unreachable_server_error_does_not_show_the_password() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for url in [
        format!("redis://:{WRONG}@127.0.0.1:{port}/0"),
        format!("redis://user:{WRONG}@127.0.0.1:{port}/0"),
        format!("rediss://:{WRONG}@127.0.0.1:{port}/0"),
        format!("redis://:{WRONG}@127.0.0.1:{port}/not-a-db"),
    ] {
        let err = RedisStorage::connect(&url).await.unwrap_err();
        assert_clean(&format!("{err} {err:?}"));
    }
}
