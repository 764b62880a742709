//! Keeping passwords out of messages: [`redact_url`] and the [`Redactor`] every error of this
//! crate goes through.
//!
//! Redis errors rarely echo credentials, but a URL that fails to parse, a TLS error or a future
//! library version might. So every message this crate builds is scrubbed of the password (as
//! written in the URL and percent-decoded), and the original Redis error is not kept as the
//! `source` (its text is, scrubbed).

use std::fmt;

use queue_core::Error;

const BACKEND: &str = "redis";

/// `url` with its password replaced by `***` (the one redactor of every Skiff crate,
/// [`queue_core::redact::redact_url`]).
///
/// # Examples
///
/// ```
/// use queue_redis::redact_url;
///
/// assert_eq!(redact_url("redis://:s3cret@host:6379/0"), "redis://:***@host:6379/0");
/// assert_eq!(redact_url("rediss://user:pw@host/1"), "rediss://user:***@host/1");
/// assert_eq!(redact_url("redis://:ab/cd@host/0"), "redis://:***@host/0");
/// assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    queue_core::redact::redact_url(url)
}

/// Scrubs one store's secrets from messages and turns Redis errors into
/// [`Error::Storage`].
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
    url: String,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    pub(crate) fn for_url(url: &str) -> Self {
        Self {
            secrets: queue_core::redact::secrets(url),
            url: redact_url(url),
        }
    }

    /// The URL with its password hidden, for messages.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn scrub(&self, message: &str) -> String {
        queue_core::redact::scrub(message, &self.secrets)
    }

    /// A storage error for `what` failing with `err`, scrubbed.
    pub(crate) fn error(&self, what: &str, err: impl fmt::Display) -> Error {
        let message = self.scrub(&format!("{what} on {}: {err}", self.url));
        Error::storage_msg(BACKEND, message)
    }

    /// A mistake in the configuration (not worth retrying), with passwords scrubbed.
    pub(crate) fn invalid(&self, what: &str, err: impl fmt::Display) -> Error {
        Error::InvalidInput(self.scrub(&format!("{what} {}: {err}", self.url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_raw_and_decoded_passwords() {
        let r = Redactor::for_url("redis://u:p%40ss@h:1/0");
        assert_eq!(r.url(), "redis://u:***@h:1/0");
        assert_eq!(
            r.scrub("auth p@ss and p%40ss failed"),
            "auth *** and *** failed"
        );
        let e = r.error("connect", "bad password p@ss");
        assert!(!e.to_string().contains("p@ss"), "{e}");
    }

    #[test]
    fn urls_without_passwords_pass_through() {
        assert_eq!(redact_url("redis://user@h/0"), "redis://user@h/0");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("redis://:@h"), "redis://:@h");
        assert!(Redactor::for_url("redis://h").secrets.is_empty());
    }
}
