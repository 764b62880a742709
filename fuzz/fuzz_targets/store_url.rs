//! Store URL parsing, without connecting: SQLite (`SqliteOptions::from_url`), PostgreSQL
//! (`PostgresOptions::new`), Redis (the options and URL reading of `RedisStorage::open`), and
//! the redactors every message goes through. Never panics; an error message does not carry
//! the URL's password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use queue_core::redact;

/// Passwords of `url` that a message must not show: long enough and written only once in the
/// URL, so finding one in a message means it was copied from the password itself. One with
/// `*` or `://` in it is skipped: the redacted form `scheme://user:***@` can spell it. Text
/// without `://` is no URL: where its `password=` value ends is a guess (`redact_url` reads it
/// as text, `secrets` as a query), so it is not checked.
/// One also written before the first `://` (the scheme, which is shown as it is; a percent-
/// decoded secret can match it) is skipped too.
fn secrets(url: &str) -> Vec<String> {
    let Some(scheme_end) = url.find("://") else {
        return Vec::new();
    };
    redact::secrets(url)
        .into_iter()
        .filter(|s| s.len() >= 6 && url.matches(s.as_str()).count() <= 1)
        .filter(|s| {
            !s.contains('*') && !s.contains("://") && !url[..scheme_end].contains(s.as_str())
        })
        .collect()
}

fn assert_hidden(url: &str, what: &str, message: &str) {
    for secret in secrets(url) {
        assert!(
            !message.contains(&secret),
            "{what} of `{url}` shows the password `{secret}`: {message}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let shown = redact::redact_url(url);
    assert_hidden(url, "redact_url", &shown);
    let _ = redact::redact_text(url);
    let _ = redact::scrub(url, &redact::secrets(url));
    let _ = queue_postgres::redact_url(url);
    let _ = queue_redis::redact_url(url);

    match queue_sqlite::SqliteOptions::from_url(url) {
        Ok(options) => {
            let _ = options.path();
            let _ = format!("{options:?}");
        }
        Err(err) => assert_hidden(url, "the SQLite error", &err.to_string()),
    }
    match queue_postgres::PostgresOptions::new(url) {
        Ok(options) => {
            let _ = options.schema_name();
            assert_hidden(
                url,
                "the PostgreSQL options' Debug",
                &format!("{options:?}"),
            );
        }
        Err(err) => assert_hidden(url, "the PostgreSQL error", &err.to_string()),
    }
    match queue_redis::fuzzing::parse_url(url) {
        Ok(shown) => assert_hidden(url, "the Redis URL shown", &shown),
        Err(err) => assert_hidden(url, "the Redis error", &err.to_string()),
    }
    let _ = queue_redis::fuzzing::scrub(url, url);
});
