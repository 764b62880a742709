//! Keeping passwords out of messages: [`redact_url`].

/// `text` with the password of any `scheme://user:password@host` URL in it, and the value of
/// any `password=` parameter, replaced by `***`. Used for every URL a message, log line or
/// `Debug` output of this crate shows.
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
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // Userinfo passwords: `://user:password@`.
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '`')
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":***@");
                    out.push_str(host);
                }
                None => out.push_str(authority),
            },
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    redact_params(&out)
}

/// Replaces the values of `password=` parameters.
fn redact_params(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("password=") {
        let starts_param = pos == 0 || rest[..pos].ends_with(['?', '&', ' ']);
        let (head, tail) = rest.split_at(pos + "password=".len());
        out.push_str(head);
        if starts_param {
            let end = tail
                .find(|c: char| c == '&' || c == '#' || c.is_whitespace() || c == '`')
                .unwrap_or(tail.len());
            out.push_str("***");
            rest = &tail[end..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
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
