//! Keeping passwords out of messages: [`redact_url`].

/// `text` with the password of any `scheme://user:password@host` URL in it, and the value of
/// any `password=` parameter, replaced by `***` ([`queue_core::redact::redact_text`], the one
/// redactor of every Skiff crate). Used for every URL a message, log line or `Debug` output of
/// this crate shows.
///
/// # Examples
///
/// ```
/// use queue_postgres::redact_url;
///
/// assert_eq!(
///     redact_url("postgres://app:s3cret@db:5432/app?sslmode=require"),
///     "postgres://app:***@db:5432/app?sslmode=require"
/// );
/// assert_eq!(
///     redact_url("postgresql://db/app?user=app&password=s3cret"),
///     "postgresql://db/app?user=app&password=***"
/// );
/// assert_eq!(redact_url("postgres://db/app"), "postgres://db/app");
/// ```
pub fn redact_url(text: &str) -> String {
    queue_core::redact::redact_text(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_every_form_of_password() {
        assert_eq!(
            redact_url("cannot reach `postgres://u:p%40ss@h/db`: refused"),
            "cannot reach `postgres://u:***@h/db`: refused"
        );
        assert_eq!(
            redact_url("postgres://u:a@b@h/db"),
            "postgres://u:***@h/db",
            "an unescaped @ in the password"
        );
        assert_eq!(
            redact_url("postgres://h/db?password=x&sslmode=require"),
            "postgres://h/db?password=***&sslmode=require"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("no url here"), "no url here");
        assert_eq!(redact_url("old_password=x"), "old_password=x");
    }
}
