//! Keeping passwords out of what Skiff prints: [`redact_url`], [`redact_text`] and
//! [`secrets`], shared by every store, the facade and the CLI.
//!
//! A store URL can carry a password in its user part (`redis://:PASSWORD@host/0`) or, for
//! PostgreSQL, in a `password=` parameter. Users do not always percent-encode it, so a password
//! may hold `/`, `?`, `#` or `@`; a URL parser then sees another URL (a host of `:ab`, a path
//! of `/cd@host`). The rule here: the user part runs from `://` to the **last** `@` of the URL.
//! When the `url` crate's reading of the URL agrees with that, its parse is used (and the
//! password set to `***`); when it does not, or the URL does not parse, everything between
//! `://` and the last `@` but the user name is hidden. Over-hiding is fine; printing part of a
//! password is not.

use std::borrow::Cow;

/// What replaces a secret.
const HIDDEN: &str = "***";

/// `url` with its password (user part and `password=` parameter) replaced by `***`.
///
/// # Examples
///
/// ```
/// use queue_core::redact::redact_url;
///
/// assert_eq!(redact_url("redis://:s3cret@host:6379/0"), "redis://:***@host:6379/0");
/// assert_eq!(redact_url("postgres://app:p%40ss@db/app?sslmode=require"), "postgres://app:***@db/app?sslmode=require");
/// // Unescaped `/`, `?`, `#` and `@` in a password: all of it is hidden.
/// assert_eq!(redact_url("redis://:ab/cd@host/0"), "redis://:***@host/0");
/// assert_eq!(redact_url("redis://u:a#b?c@d@host/0"), "redis://u:***@host/0");
/// assert_eq!(redact_url("postgresql://db/app?user=app&password=s3cret"), "postgresql://db/app?user=app&password=***");
/// assert_eq!(redact_url("sqlite:///var/lib/skiff/jobs.db"), "sqlite:///var/lib/skiff/jobs.db");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return hide_password_params(url, false).into_owned();
    };
    let userinfo_end = url[start..].rfind('@').map(|at| start + at);
    let out = match userinfo_end {
        None => url.to_owned(),
        Some(at) => {
            let userinfo = &url[start..at];
            // What follows the hidden part. If the `@` taken as the user part's end is inside a
            // `password=` parameter's value, the rest of that value is hidden too.
            let after = &url[at..];
            let after = if ends_inside_password_param(userinfo) {
                &after[after.find(['&', '#']).unwrap_or(after.len())..]
            } else {
                after
            };
            match parsed_userinfo(url) {
                // The parser agrees where the user part ends: trust its split.
                Some((user, Some(_))) if agrees(userinfo, &user) => {
                    format!("{}{user}:{HIDDEN}{after}", &url[..start])
                }
                Some((user, None)) if user == userinfo => url.to_owned(),
                // `user:` with nothing after the colon: nothing to hide.
                _ if userinfo.ends_with(':')
                    && !userinfo[..userinfo.len() - 1].contains([':', '/', '?', '#']) =>
                {
                    url.to_owned()
                }
                _ => {
                    // No agreement: keep a plain user name, hide the rest of the user part.
                    let user = userinfo
                        .split_once(':')
                        .map_or("", |(user, _)| user)
                        .trim_end_matches(['/', '?', '#']);
                    let user = if user.contains(['/', '?', '#']) {
                        ""
                    } else {
                        user
                    };
                    if userinfo.contains(':') || userinfo.contains(['/', '?', '#']) {
                        format!("{}{user}:{HIDDEN}{after}", &url[..start])
                    } else {
                        url.to_owned()
                    }
                }
            }
        }
    };
    hide_password_params(&out, true).into_owned()
}

/// Whether `text` ends inside the value of a `password=` parameter (no `&` or `#` after it).
fn ends_inside_password_param(text: &str) -> bool {
    text.to_ascii_lowercase()
        .rfind("password=")
        .is_some_and(|pos| !text[pos..].contains(['&', '#']))
}

/// Whether the parser's user name is the user part's name before its first `:`.
fn agrees(userinfo: &str, user: &str) -> bool {
    userinfo
        .split_once(':')
        .is_some_and(|(name, password)| name == user && !password.is_empty())
}

/// The user name (as written) and whether there is a password, per the `url` crate.
fn parsed_userinfo(url: &str) -> Option<(String, Option<()>)> {
    let parsed = url::Url::parse(url).ok()?;
    Some((
        parsed.username().to_owned(),
        parsed.password().filter(|p| !p.is_empty()).map(|_| ()),
    ))
}

/// `text` (a message, an error, a log line) with every URL in it redacted by
/// [`redact_url`] and the value of every `password=` parameter hidden.
///
/// # Examples
///
/// ```
/// use queue_core::redact::redact_text;
///
/// assert_eq!(
///     redact_text("cannot reach `postgres://u:p@ss@h/db`: refused"),
///     "cannot reach `postgres://u:***@h/db`: refused"
/// );
/// assert_eq!(redact_text("host=db password=s3cret user=app"), "host=db password=*** user=app");
/// ```
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match word.find("://") {
            Some(scheme_end) => {
                // The URL is the word without the quotes or punctuation around it.
                let begin = word[..scheme_end]
                    .char_indices()
                    .rev()
                    .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
                    .map_or(0, |(i, c)| i + c.len_utf8());
                let end = word
                    .trim_end_matches(['`', '\'', '"', ')', ']', '>', ',', ';', ':'])
                    .len()
                    .max(scheme_end + 3);
                // What surrounds the URL in the word may carry a `password=` of its own.
                out.push_str(&hide_password_params(&word[..begin], false));
                out.push_str(&redact_url(&word[begin..end]));
                out.push_str(&hide_password_params(&word[end..], false));
            }
            None => out.push_str(&hide_password_params(word, false)),
        }
    }
    out
}

/// The secrets in `url`, as written and percent-decoded, longest first: what a message that
/// may quote them (a driver's error, a server's reply) must not contain.
///
/// # Examples
///
/// ```
/// use queue_core::redact::secrets;
///
/// assert_eq!(secrets("redis://u:p%40ss@h:1/0"), ["p%40ss", "p@ss"]);
/// assert_eq!(secrets("postgres://h/db?password=x%2Fy"), ["x%2Fy", "x/y"]);
/// assert!(secrets("redis://h:1/0").is_empty());
/// ```
pub fn secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(start) = url.find("://").map(|i| i + 3) {
        if let Some(at) = url[start..].rfind('@') {
            if let Some((_, password)) = url[start..start + at].split_once(':') {
                found.push(password.to_owned());
            }
        }
    }
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split(['&', '#']) {
            if let Some((key, value)) = pair.split_once('=') {
                if key.eq_ignore_ascii_case("password") {
                    found.push(value.to_owned());
                }
            }
        }
    }
    let decoded: Vec<String> = found
        .iter()
        .map(|s| percent_decode(s))
        .filter(|d| !found.contains(d))
        .collect();
    found.extend(decoded);
    found.retain(|s| !s.is_empty());
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    found
}

/// `message` with each of `secrets` replaced by `***` (give them longest first, as
/// [`secrets`] does).
pub fn scrub(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_owned();
    for secret in secrets {
        out = out.replace(secret.as_str(), HIDDEN);
    }
    out
}

/// `text` with the value of every `password=` parameter hidden. In a URL (`in_url`) a value
/// runs to the next `&` or `#`, as URL readers take it (`;` and spaces are part of it); in
/// other text it also ends at a space, `;` or a backquote.
fn hide_password_params(text: &str, in_url: bool) -> Cow<'_, str> {
    if !text.to_ascii_lowercase().contains("password=") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.to_ascii_lowercase().find("password=") {
        let starts_param = pos == 0 || rest[..pos].ends_with(['?', '&', '#', ' ', ';']);
        let (head, tail) = rest.split_at(pos + "password=".len());
        out.push_str(head);
        if starts_param {
            let end = tail
                .find(|c: char| {
                    matches!(c, '&' | '#')
                        || (!in_url && (matches!(c, '`' | ';') || c.is_whitespace()))
                })
                .unwrap_or(tail.len());
            out.push_str(HIDDEN);
            rest = &tail[end..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passwords with every character that confuses a URL reader: none of it is printed.
    #[test]
    fn no_part_of_a_hostile_password_is_printed() {
        let passwords = [
            "ab/cd",
            "a?b",
            "a#b",
            "a@b",
            "a@b@c",
            "p%40ss",
            "1234/5678",
            "a:b",
            "/lead",
            "trail/",
            "?",
            "#",
            "@",
            "a b",
            "ünï",
            "x%2Fy",
        ];
        for scheme in ["redis", "rediss", "postgres", "postgresql"] {
            for password in passwords {
                for user in ["", "app"] {
                    let url = format!("{scheme}://{user}:{password}@db.internal:6379/0");
                    let shown = redact_url(&url);
                    assert_eq!(
                        shown,
                        format!("{scheme}://{user}:***@db.internal:6379/0"),
                        "{url}"
                    );
                    let text = redact_text(&format!("cannot reach `{url}`: refused"));
                    for piece in password
                        .split(['/', '?', '#', '@', ':', ' '])
                        .filter(|p| p.len() > 1)
                    {
                        assert!(!text.contains(piece), "{url} -> {text}");
                    }
                    for secret in secrets(&url) {
                        assert!(
                            !scrub(&format!("auth {password} failed"), &secrets(&url))
                                .contains(&secret),
                            "{url}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn urls_without_passwords_pass_through() {
        for url in [
            "redis://user@h/0",
            "redis://h:6379",
            "sqlite:///var/lib/skiff/jobs.db",
            "sqlite::memory:",
            "postgres://app@db/app?sslmode=require",
            "not a url",
        ] {
            assert_eq!(redact_url(url), url);
        }
        assert_eq!(redact_url("redis://:@h"), "redis://:@h");
    }

    #[test]
    fn password_parameters_are_hidden() {
        assert_eq!(
            redact_url("postgres://h/db?password=x&sslmode=require"),
            "postgres://h/db?password=***&sslmode=require"
        );
        assert_eq!(redact_text("old_password=x"), "old_password=x");
        assert_eq!(redact_text("PASSWORD=x y"), "PASSWORD=*** y");
    }

    #[test]
    fn a_password_parameter_next_to_a_url_is_hidden() {
        // Found by the `store_url` fuzz target: text before (or after) a `://` in the same
        // word was copied as it was.
        for (text, shown) in [
            (
                "postgrredis+unixb/app?user=app&password=hunter_timeout_ms=5&://usql://d/tm",
                "postgrredis+unixb/app?user=app&password=***&://usql://d/tm",
            ),
            (
                "`db?password=s3cret;redis://h`",
                "`db?password=***;redis://h`",
            ),
        ] {
            assert_eq!(redact_text(text), shown, "{text}");
        }
    }

    #[test]
    fn a_password_parameter_runs_to_the_next_parameter_in_a_url() {
        // Found by the `store_url` fuzz target: in a URL, `;` and spaces are part of a
        // parameter's value, so hiding stopped inside the password.
        assert_eq!(
            redact_url("postgres://h/db?password=a;b c`d&sslmode=require"),
            "postgres://h/db?password=***&sslmode=require"
        );
        let fuzzed = "postgrredJ\0/app?user=app&password=;;;;;\0\u{6}7e\0;?\0 eql\u{1}qpg_l://d/tm";
        assert_eq!(redact_url(fuzzed), "postgrredJ\0/app?user=app&password=***");
        // In other text a space still ends the value.
        assert_eq!(redact_text("password=a b"), "password=*** b");
    }

    #[test]
    fn an_at_sign_in_a_password_parameter_hides_all_of_it() {
        // Found by the `store_url` fuzz target: the last `@` is taken as the end of the user
        // part, so the part of a `password=` value after an `@` in it was shown.
        for (url, shown) in [
            (
                "postgresql://db/app?user=app&password=p@ss&sslmode=require",
                "postgresql://:***&sslmode=require",
            ),
            ("postgres://u:pw@h/db?password=a@b", "postgres://u:***"),
            ("postgres://h/db?password=a@b#frag", "postgres://:***#frag"),
            // An `@` in another parameter leaves the rest as it was.
            (
                "postgres://h/db?application_name=a@b&password=x",
                "postgres://:***@b&password=***",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        // A `password=` right after `#` is hidden too (`secrets` reads it as a parameter).
        assert_eq!(
            redact_url("redis://h/0?a=1&#password=s3cret"),
            "redis://h/0?a=1&#password=***"
        );
    }

    #[test]
    fn any_text_is_handled_without_panicking() {
        for text in [
            "rediss://…,",
            "é://x",
            "«redis://:p@h»",
            "://",
            "a://",
            "ü:://@@",
            "redis://:pé@h…",
        ] {
            let _ = redact_text(text);
            let _ = redact_url(text);
            let _ = secrets(text);
        }
        assert_eq!(redact_text("«redis://:pé@h/0»"), "«redis://:***@h/0»");
    }
}
