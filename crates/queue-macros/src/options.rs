//! The options of `#[task(...)]`: parsing, checking and duration strings.
//!
//! Each option is one arm of [`TaskOptions::parse_one`]; its value is checked here, at macro
//! time, so a bad value is a compile error that points at it. To add an option: add a field,
//! an entry in [`OPTIONS`], an arm in `parse_one`, and its code in `expand::options_fn`.

use proc_macro2::Span;
use queue_core::task::RateLimit;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Lit, LitStr, Path, UnOp};

/// Every option, in the order error messages list them.
pub(crate) const OPTIONS: &[&str] = &[
    "name",
    "retries",
    "retry_delay",
    "retry_backoff",
    "priority",
    "timeout",
    "expires",
    "queue",
    "periodic",
    "lock",
    "rate_limit",
    "context",
    "crate",
];

/// The parsed `#[task(...)]` options. `None` = not given (the default of `TaskOptions`).
#[derive(Debug, Default)]
pub(crate) struct TaskOptions {
    pub(crate) name: Option<String>,
    pub(crate) retries: Option<u32>,
    /// Milliseconds.
    pub(crate) retry_delay: Option<u64>,
    pub(crate) retry_backoff: Option<f64>,
    pub(crate) priority: Option<i16>,
    /// Milliseconds.
    pub(crate) timeout: Option<u64>,
    /// Milliseconds.
    pub(crate) expires: Option<u64>,
    pub(crate) queue: Option<String>,
    /// A cron expression (seconds first), checked; and the span of the option.
    pub(crate) periodic: Option<(String, Span)>,
    pub(crate) lock: Option<String>,
    pub(crate) rate_limit: Option<RateLimit>,
    /// The span of the `context` flag.
    pub(crate) context: Option<Span>,
    /// The path of the `skiff` crate (default `::skiff`).
    pub(crate) krate: Option<Path>,
}

impl TaskOptions {
    /// Parses the attribute's arguments (`retries = 3, context, …`).
    pub(crate) fn parse(args: proc_macro2::TokenStream) -> syn::Result<Self> {
        let mut opts = Self::default();
        let parser = syn::meta::parser(|meta| opts.parse_one(meta));
        syn::parse::Parser::parse2(parser, args)?;
        Ok(opts)
    }

    fn parse_one(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let key = option_name(&meta.path);
        let span = meta.path.span();
        match key.as_str() {
            "name" => {
                let s = lit_str(
                    &meta,
                    &key,
                    "a task name string, e.g. `name = \"emails.send\"`",
                )?;
                if s.value().trim().is_empty() {
                    return Err(syn::Error::new(s.span(), "`name` must not be empty"));
                }
                set(&mut self.name, &key, span, s.value())
            }
            "retries" => {
                let (value, _) =
                    int::<u32>(&meta, &key, "a whole number of retries, e.g. `retries = 3`")?;
                set(&mut self.retries, &key, span, value)
            }
            "retry_delay" => {
                let (ms, _) = duration(&meta, &key)?;
                set(&mut self.retry_delay, &key, span, ms)
            }
            "retry_backoff" => {
                let (factor, vspan) = float(
                    &meta,
                    &key,
                    "a backoff factor of at least 1.0, e.g. `retry_backoff = 2.0`",
                )?;
                if !(factor.is_finite() && factor >= 1.0) {
                    return Err(syn::Error::new(
                        vspan,
                        "`retry_backoff` must be a factor of at least 1.0, e.g. `retry_backoff = 2.0`",
                    ));
                }
                set(&mut self.retry_backoff, &key, span, factor)
            }
            "priority" => {
                let (value, _) = int::<i16>(
                    &meta,
                    &key,
                    "an integer from -32768 to 32767 (higher runs first), e.g. `priority = 100`",
                )?;
                set(&mut self.priority, &key, span, value)
            }
            "timeout" => {
                let (ms, vspan) = duration(&meta, &key)?;
                if ms == 0 {
                    return Err(syn::Error::new(vspan, "`timeout` must be longer than zero"));
                }
                set(&mut self.timeout, &key, span, ms)
            }
            "expires" => {
                let (ms, vspan) = duration(&meta, &key)?;
                if ms == 0 {
                    return Err(syn::Error::new(vspan, "`expires` must be longer than zero"));
                }
                set(&mut self.expires, &key, span, ms)
            }
            "queue" => {
                let s = lit_str(
                    &meta,
                    &key,
                    "a queue name string, e.g. `queue = \"emails\"`",
                )?;
                let q = s.value();
                if q.is_empty() || q.len() > 200 {
                    return Err(syn::Error::new(
                        s.span(),
                        "`queue` must be 1 to 200 bytes long",
                    ));
                }
                if q.contains(['{', '}']) {
                    return Err(syn::Error::new(
                        s.span(),
                        "`queue` must not contain `{` or `}`",
                    ));
                }
                set(&mut self.queue, &key, span, q)
            }
            "periodic" => {
                let s = lit_str(
                    &meta,
                    &key,
                    "a cron expression with a seconds field, e.g. `periodic = \"0 */5 * * * *\"`",
                )?;
                // The parser of `queue_runtime::Schedule::cron`, so compile-time and run-time
                // errors agree.
                queue_core::cron_expr::parse_cron(&s.value())
                    .map_err(|e| syn::Error::new(s.span(), invalid(e)))?;
                set(&mut self.periodic, &key, span, (s.value(), span))
            }
            "lock" => {
                let s = lit_str(&meta, &key, "a lock name string, e.g. `lock = \"reports\"`")?;
                if s.value().trim().is_empty() {
                    return Err(syn::Error::new(s.span(), "`lock` must not be empty"));
                }
                set(&mut self.lock, &key, span, s.value())
            }
            "rate_limit" => {
                let s = lit_str(
                    &meta,
                    &key,
                    "a rate string COUNT/UNIT with UNIT s, m or h, e.g. `rate_limit = \"100/s\"`",
                )?;
                let rate = s
                    .value()
                    .parse::<RateLimit>()
                    .map_err(|e| syn::Error::new(s.span(), invalid(e)))?;
                set(&mut self.rate_limit, &key, span, rate)
            }
            "context" => {
                if !(meta.input.is_empty() || meta.input.peek(syn::Token![,])) {
                    return Err(meta.error(
                        "`context` is a flag and takes no value; write `#[task(context)]` and make the first parameter a `TaskContext`",
                    ));
                }
                if self.context.is_some() {
                    return Err(duplicate(span, &key));
                }
                self.context = Some(span);
                Ok(())
            }
            "crate" => {
                let s = lit_str(&meta, &key, "a path string, e.g. `crate = \"::skiff\"`")?;
                let path: Path = s.parse().map_err(|_| {
                    syn::Error::new(
                        s.span(),
                        "`crate` must be a path, e.g. `crate = \"::skiff\"`",
                    )
                })?;
                set(&mut self.krate, &key, span, path)
            }
            _ => Err(unknown(span, &key)),
        }
    }
}

/// The option's name as written (`crate` is a keyword, so not `Path::get_ident`).
fn option_name(path: &Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// Stores an option's value, refusing a second one.
fn set<T>(slot: &mut Option<T>, key: &str, key_span: Span, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(duplicate(key_span, key));
    }
    *slot = Some(value);
    Ok(())
}

fn duplicate(span: Span, key: &str) -> syn::Error {
    syn::Error::new(
        span,
        format!("duplicate option `{key}`; give each option once"),
    )
}

fn unknown(span: Span, key: &str) -> syn::Error {
    let mut msg = format!(
        "unknown option `{key}`; expected one of: {}",
        OPTIONS.join(", ")
    );
    if let Some(near) = closest(key) {
        msg.push_str(&format!(" (did you mean `{near}`?)"));
    }
    syn::Error::new(span, msg)
}

/// The known option nearest to `key`, if it is plausibly a typo of it.
fn closest(key: &str) -> Option<&'static str> {
    OPTIONS
        .iter()
        .map(|o| (edit_distance(key, o), *o))
        .filter(|(d, o)| *d <= 2.max(o.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses `= <expr>` and returns the expression, with a message naming the option when the
/// `=` is missing.
fn value(meta: &ParseNestedMeta<'_>, key: &str, expected: &str) -> syn::Result<Expr> {
    if !meta.input.peek(syn::Token![=]) {
        return Err(meta.error(format!("`{key}` needs a value: {expected}")));
    }
    meta.value()?.parse()
}

fn wrong_type(expr: &Expr, key: &str, expected: &str) -> syn::Error {
    syn::Error::new_spanned(expr, format!("`{key}` expects {expected}"))
}

fn lit_str(meta: &ParseNestedMeta<'_>, key: &str, expected: &str) -> syn::Result<LitStr> {
    match value(meta, key, expected)? {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s),
        other => Err(wrong_type(&other, key, expected)),
    }
}

/// An integer literal, optionally negated, that fits `T`.
fn int<T>(meta: &ParseNestedMeta<'_>, key: &str, expected: &str) -> syn::Result<(T, Span)>
where
    T: std::str::FromStr,
{
    let expr = value(meta, key, expected)?;
    let (negative, lit) = match &expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => (false, i),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr: inner,
            ..
        }) => match &**inner {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => (true, i),
            _ => return Err(wrong_type(&expr, key, expected)),
        },
        _ => return Err(wrong_type(&expr, key, expected)),
    };
    let digits = format!("{}{}", if negative { "-" } else { "" }, lit.base10_digits());
    let parsed = digits.parse::<T>().map_err(|_| {
        syn::Error::new(
            expr.span(),
            format!("`{key}` is out of range: expected {expected}"),
        )
    })?;
    Ok((parsed, expr.span()))
}

/// A float or integer literal.
fn float(meta: &ParseNestedMeta<'_>, key: &str, expected: &str) -> syn::Result<(f64, Span)> {
    let expr = value(meta, key, expected)?;
    let parsed = match &expr {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse::<f64>(),
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<f64>(),
        _ => return Err(wrong_type(&expr, key, expected)),
    };
    Ok((parsed?, expr.span()))
}

/// A duration string, in milliseconds.
fn duration(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<(u64, Span)> {
    let expected = "a duration string such as \"500ms\", \"30s\", \"2m\", \"1h\" or \"1h30m\"";
    let s = lit_str(meta, key, expected)?;
    let ms = parse_duration(&s.value()).map_err(|why| {
        syn::Error::new(
            s.span(),
            format!("invalid `{key}` {why}; expected {expected}"),
        )
    })?;
    Ok((ms, s.span()))
}

/// The message of a `queue_core` parse error, as the run time would report it.
fn invalid(err: queue_core::Error) -> String {
    match err {
        queue_core::Error::InvalidInput(message) => message,
        other => other.to_string(),
    }
}

/// Parses a duration such as `"500ms"`, `"30s"`, `"2m"`, `"1h"`, `"1d"` or `"1h30m"` into
/// milliseconds. Units: `ms`, `s`, `m`, `h`, `d`. The error says what is wrong with it.
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("\"\": the duration is empty".to_owned());
    }
    let bad = |why: &str| format!("{text:?}: {why}");
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad("expected a number before each unit"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("the number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u64 = match rest[..unit_len].trim() {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(bad("the number has no unit (ms, s, m, h or d)")),
            _ => return Err(bad("unknown unit (use ms, s, m, h or d)")),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(unit_ms)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| bad("the duration is too long"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse(tokens: proc_macro2::TokenStream) -> syn::Result<TaskOptions> {
        TaskOptions::parse(tokens)
    }

    fn err(tokens: proc_macro2::TokenStream) -> String {
        match parse(tokens) {
            Ok(opts) => panic!("expected an error, parsed {opts:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("60s"), Ok(60_000));
        assert_eq!(parse_duration("2m"), Ok(120_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration("1d"), Ok(86_400_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("1m 30s"), Ok(90_000));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("60").unwrap_err().contains("no unit"));
        assert!(parse_duration("soon").unwrap_err().contains("number"));
        assert!(parse_duration("5y").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("9999999999999999d")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn all_options() {
        let o = parse(quote!(
            name = "emails.send",
            retries = 3,
            retry_delay = "60s",
            retry_backoff = 2.0,
            priority = -5,
            timeout = "30s",
            expires = "1h",
            queue = "emails",
            periodic = "0 */5 * * * *",
            lock = "reports",
            rate_limit = "100/s",
            context,
            crate = "queue_core"
        ))
        .unwrap();
        assert_eq!(o.periodic.as_ref().unwrap().0, "0 */5 * * * *");
        assert_eq!(o.lock.as_deref(), Some("reports"));
        assert_eq!(
            o.rate_limit,
            Some(RateLimit {
                limit: 100,
                per: std::time::Duration::from_secs(1)
            })
        );
        assert_eq!(o.name.unwrap(), "emails.send");
        assert_eq!(o.retries.unwrap(), 3);
        assert_eq!(o.retry_delay.unwrap(), 60_000);
        assert_eq!(o.retry_backoff.unwrap(), 2.0);
        assert_eq!(o.priority.unwrap(), -5);
        assert_eq!(o.timeout.unwrap(), 30_000);
        assert_eq!(o.expires.unwrap(), 3_600_000);
        assert_eq!(o.queue.unwrap(), "emails");
        assert!(o.context.is_some());
        let krate = o.krate.unwrap();
        assert_eq!(quote!(#krate).to_string(), "queue_core");
    }

    #[test]
    fn empty_and_integer_backoff() {
        let o = parse(quote!()).unwrap();
        assert!(o.retries.is_none() && o.context.is_none());
        assert_eq!(
            parse(quote!(retry_backoff = 2))
                .unwrap()
                .retry_backoff
                .unwrap(),
            2.0
        );
    }

    #[test]
    fn unknown_options_list_the_known_ones() {
        let e = err(quote!(retires = 3));
        assert!(
            e.starts_with("unknown option `retires`; expected one of: name, retries,"),
            "{e}"
        );
        assert!(e.contains("did you mean `retries`?"), "{e}");
        assert!(!err(quote!(frobnicate = 1)).contains("did you mean"));
    }

    #[test]
    fn duplicates_and_bad_values() {
        assert!(err(quote!(retries = 1, retries = 2)).contains("duplicate option `retries`"));
        assert!(err(quote!(context, context)).contains("duplicate option `context`"));
        assert!(err(quote!(retries = "3")).contains("`retries` expects a whole number"));
        assert!(err(quote!(retries = -1)).contains("out of range"));
        assert!(err(quote!(retries)).contains("`retries` needs a value"));
        assert!(err(quote!(priority = 40000)).contains("out of range"));
        assert!(err(quote!(priority = high)).contains("`priority` expects an integer"));
        assert!(err(quote!(retry_delay = 60)).contains("`retry_delay` expects a duration"));
        assert!(err(quote!(retry_delay = "60")).contains("invalid `retry_delay`"));
        assert!(err(quote!(timeout = "0s")).contains("longer than zero"));
        assert!(err(quote!(retry_backoff = 0.5)).contains("at least 1.0"));
        assert!(err(quote!(queue = "a{b}")).contains("must not contain"));
        assert!(err(quote!(queue = "")).contains("1 to 200 bytes"));
        assert!(err(quote!(name = "")).contains("must not be empty"));
        assert!(err(quote!(context = true)).contains("`context` is a flag"));
        assert!(err(quote!(crate = "not a path")).contains("`crate` must be a path"));
        assert!(err(quote!(periodic = "0 61 * * * *")).contains("invalid minute field `61`"));
        assert!(err(quote!(periodic = "*/5 * * * *")).contains("no seconds field"));
        assert!(err(quote!(periodic = 5)).contains("`periodic` expects a cron expression"));
        assert!(err(quote!(lock = "")).contains("must not be empty"));
        assert!(err(quote!(rate_limit = "100")).contains("no `/`"));
        assert!(err(quote!(rate_limit = "0/s")).contains("allows nothing"));
        assert!(err(quote!(rate_limit = "5/d")).contains("unknown unit"));
    }

    #[test]
    fn rates_and_cron_expressions_are_read_as_at_run_time() {
        let o = parse(quote!(rate_limit = " 2 / h ", periodic = "@daily")).unwrap();
        assert_eq!(
            o.rate_limit.unwrap().per,
            std::time::Duration::from_secs(3600)
        );
        assert!(parse(quote!(periodic = "0 0 9 * * MON-FRI")).is_ok());
        let e = err(quote!(rate_limit = "lots/s"));
        assert_eq!(
            e,
            invalid("lots/s".parse::<RateLimit>().unwrap_err()),
            "the run-time message"
        );
    }
}
