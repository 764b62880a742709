//! [`PostgresOptions`]: where the store lives and how it talks to PostgreSQL.
//!
//! Build options from a URL ([`PostgresOptions::new`], what
//! [`PostgresStorage::connect`](crate::PostgresStorage::connect) uses), adjust them with the
//! chained setters, and pass them to [`PostgresStorage::open`](crate::PostgresStorage::open).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::ConnectOptions;

use queue_core::clock::system_clock;
use queue_core::{Clock, Error, Result};

use crate::redact::redact_url;

/// The schema a store's tables live in unless [`PostgresOptions::schema`] says otherwise.
pub const DEFAULT_SCHEMA: &str = "skiff";

/// The default of [`PostgresOptions::query_timeout`].
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The default of [`PostgresOptions::vacuum_every`].
pub const DEFAULT_VACUUM_EVERY: u64 = 50_000;

/// The longest schema name a store accepts (the wake-up channel is `skiff_` + the schema, and
/// PostgreSQL names are at most 63 bytes).
pub const MAX_SCHEMA_LEN: usize = 57;

/// The parameters of a store URL that Skiff reads itself (the others go to sqlx).
const OWN_PARAMS: [&str; 8] = [
    "schema",
    "vacuum_every",
    "pool_size",
    "acquire_timeout_ms",
    "query_timeout_ms",
    "poll_interval_ms",
    "listen",
    "migrate",
];

/// Options for [`PostgresStorage::open`](crate::PostgresStorage::open).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use queue_postgres::PostgresOptions;
///
/// let options = PostgresOptions::new("postgres://app:secret@db.internal/app?sslmode=require")?
///     .schema("jobs")?
///     .pool_size(16)
///     .acquire_timeout(Duration::from_secs(5));
/// assert_eq!(options.schema_name(), "jobs");
/// // The password never shows.
/// assert!(!format!("{options:?}").contains("secret"));
///
/// let parsed = PostgresOptions::new("postgresql://localhost/app?schema=billing&pool_size=4")?;
/// assert_eq!(parsed.schema_name(), "billing");
/// # Ok::<(), queue_core::Error>(())
/// ```
#[derive(Clone)]
pub struct PostgresOptions {
    pub(crate) url: String,
    pub(crate) connect: PgConnectOptions,
    pub(crate) schema: String,
    pub(crate) pool_size: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) query_timeout: Duration,
    pub(crate) vacuum_every: u64,
    pub(crate) poll_interval: Duration,
    pub(crate) listen: bool,
    pub(crate) migrate: bool,
    pub(crate) clock: Arc<dyn Clock>,
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &queue_core::redact::redact_url(&self.url))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("query_timeout", &self.query_timeout)
            .field("vacuum_every", &self.vacuum_every)
            .field("poll_interval", &self.poll_interval)
            .field("listen", &self.listen)
            .field("migrate", &self.migrate)
            .finish_non_exhaustive()
    }
}

impl PostgresOptions {
    /// Options for the database at a `postgres://` or `postgresql://` URL.
    ///
    /// Everything libpq-style URLs carry is understood by sqlx: user, password, host, port,
    /// database, and parameters such as `sslmode=disable|prefer|require|verify-ca|verify-full`,
    /// `sslrootcert=PATH` or `application_name=NAME`. Skiff reads a few parameters of its own
    /// and removes them before connecting: `schema=NAME`, `pool_size=N`,
    /// `acquire_timeout_ms=N`, `query_timeout_ms=N`, `vacuum_every=N`, `poll_interval_ms=N`,
    /// `listen=true|false`,
    /// `migrate=true|false` (see the setters of the same names).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming what is wrong with the URL (its password replaced by
    /// `***`).
    pub fn new(url: &str) -> Result<Self> {
        // Parts of the URL are quoted in messages as written: scrub what could be a password.
        Self::parse(url).map_err(|err| match err {
            Error::InvalidInput(message) => Error::InvalidInput(queue_core::redact::scrub(
                &message,
                &queue_core::redact::secrets(url),
            )),
            other => other,
        })
    }

    fn parse(url: &str) -> Result<Self> {
        // The URL as a whole (a password may hold a space); `redact_url` of this crate reads
        // text word by word.
        let shown = queue_core::redact::redact_url(url);
        let scheme = url.split("://").next().unwrap_or_default();
        if !matches!(scheme, "postgres" | "postgresql") || !url.contains("://") {
            return Err(Error::InvalidInput(format!(
                "`{shown}` is not a PostgreSQL URL: expected postgres://USER:PASSWORD@HOST:PORT/DATABASE (or postgresql://…)"
            )));
        }
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        let mut rest = Vec::new();
        let mut own = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if OWN_PARAMS.contains(&key) {
                own.push((key, value));
            } else {
                rest.push(pair);
            }
        }
        let sqlx_url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let connect = PgConnectOptions::from_str(&sqlx_url)
            .map_err(|e| {
                Error::InvalidInput(format!(
                    "`{shown}` is not a valid PostgreSQL URL: {}",
                    redact_url(&e.to_string())
                ))
            })?
            // Statements are logged by Skiff's own spans when needed, not one line per query.
            .disable_statement_logging();
        let mut options = Self {
            url: url.to_owned(),
            connect,
            schema: DEFAULT_SCHEMA.to_owned(),
            pool_size: 10,
            acquire_timeout: Duration::from_secs(10),
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            vacuum_every: DEFAULT_VACUUM_EVERY,
            poll_interval: Duration::from_millis(250),
            listen: true,
            migrate: true,
            clock: system_clock(),
        };
        for (key, value) in own {
            options = options.apply_param(&shown, key, value)?;
        }
        Ok(options)
    }

    fn apply_param(self, shown: &str, key: &str, value: &str) -> Result<Self> {
        let number = |v: &str| {
            v.parse::<u64>().map_err(|_| {
                Error::InvalidInput(format!("`{key}={v}` in `{shown}`: expected a whole number"))
            })
        };
        let flag = |v: &str| match v {
            "true" | "1" | "on" | "yes" => Ok(true),
            "false" | "0" | "off" | "no" => Ok(false),
            _ => Err(Error::InvalidInput(format!(
                "`{key}={v}` in `{shown}`: expected true or false"
            ))),
        };
        Ok(match key {
            "schema" => self.schema(value)?,
            "pool_size" => self.pool_size(u32::try_from(number(value)?).unwrap_or(u32::MAX)),
            "acquire_timeout_ms" => self.acquire_timeout(Duration::from_millis(number(value)?)),
            "query_timeout_ms" => self.query_timeout(Duration::from_millis(number(value)?)),
            "vacuum_every" => self.vacuum_every(number(value)?),
            "poll_interval_ms" => self.poll_interval(Duration::from_millis(number(value)?)),
            "listen" => self.listen(flag(value)?),
            "migrate" => self.migrate(flag(value)?),
            _ => self,
        })
    }

    /// The schema every table of the store lives in (`skiff` by default); created at connect
    /// if it does not exist. Several stores can share a database under different schemas.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] unless the name is 1 to [`MAX_SCHEMA_LEN`] ASCII letters,
    /// digits and underscores, not starting with a digit, and not starting with `pg_` (reserved
    /// by PostgreSQL).
    pub fn schema(mut self, schema: &str) -> Result<Self> {
        check_schema(schema)?;
        self.schema = schema.to_owned();
        Ok(self)
    }

    /// The schema the store uses.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// The URL the options were made from (with its password: print [`redact_url`] of it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The most connections the store opens for its own queries (10 by default). Three more
    /// are its own: the wake-up listener's, the notifier's (which tells other processes' waits
    /// about committed writes) and the one kept for single-task enqueues, so a store holds up
    /// to `pool_size + 3` connections to the server.
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long a call waits for a free connection (or for a new one to connect) before it
    /// fails with an error saying the pool is exhausted or the server unreachable; 10 s by
    /// default.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long one call of the store (a fetch, a completion, a heartbeat, a count…) waits for
    /// PostgreSQL's answers before it fails with a storage error; 30 s by default
    /// ([`DEFAULT_QUERY_TIMEOUT`]). The same bound applies to the `LISTEN` connection, which is
    /// checked with a round trip after 5 s without traffic, and replaced if it does not answer.
    ///
    /// Without it, a call whose connection died silently (a network partition after which a
    /// NAT or firewall forgets the connection, a server host that vanished) would wait for an
    /// answer forever: sqlx sets no read timeout, and the kernel does not notice a dead peer
    /// while it has nothing to send. A call that timed out is failed like any other storage
    /// error (workers retry; their leased tasks come back after their leases); the statement
    /// may still have been carried out. Set it above the slowest call you expect (a purge of a
    /// very large queue, counts of a very large table). Waits (`wait_for_work`, `wait_result`)
    /// last as long as asked; each of their statements has this bound.
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// After how many finished tasks the store vacuums its task table itself
    /// ([`DEFAULT_VACUUM_EVERY`], 50,000, by default; 0: never, leaving it to autovacuum).
    ///
    /// Each claimed and each finished task leaves an index entry that only a vacuum removes,
    /// and claims walk past those at the head of their queue: with autovacuum's defaults the
    /// claim's cost per task grew fivefold over 1,000,000 tasks. The vacuum runs in the
    /// background on one pool connection (`VACUUM (SKIP_LOCKED)`: never beside another one),
    /// and needs the role to own the table; a role that may not gets one warning and no more
    /// tries. Set 0 when autovacuum is tuned for the table instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use queue_postgres::PostgresOptions;
    ///
    /// let options = PostgresOptions::new("postgres://app@localhost/app?vacuum_every=0")?;
    /// let also = PostgresOptions::new("postgres://app@localhost/app")?.vacuum_every(100_000);
    /// # let _ = (options, also);
    /// # Ok::<(), queue_core::Error>(())
    /// ```
    pub fn vacuum_every(mut self, tasks: u64) -> Self {
        self.vacuum_every = tasks;
        self
    }

    /// How often waits look for work and results while the `LISTEN` connection is down (or
    /// with [`listen(false)`](Self::listen)); 250 ms by default.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Whether waits are woken by `LISTEN/NOTIFY` (the default). Turn it off behind a
    /// connection pooler in transaction mode, where `LISTEN` does not work: waits then poll
    /// every [`poll_interval`](Self::poll_interval).
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// Whether connecting creates or upgrades the schema (the default). With `false`, a missing
    /// or older schema is an error: for deployments whose application role may not create
    /// tables, where the schema is set up once by a role that may.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// The clock every time in the store comes from (etas, leases, TTLs, rate windows). The
    /// system clock by default; tests pass a [`ManualClock`](queue_core::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The sqlx connection options (host, credentials, TLS), to adjust what a URL cannot say.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = queue_postgres::PostgresOptions::new("postgres://localhost/app")?
    ///     .map_connect(|c| c.application_name("billing-worker"));
    /// assert_eq!(options.connect_options().get_application_name(), Some("billing-worker"));
    /// # Ok::<(), queue_core::Error>(())
    /// ```
    pub fn map_connect(mut self, f: impl FnOnce(PgConnectOptions) -> PgConnectOptions) -> Self {
        self.connect = f(self.connect);
        self
    }

    /// The sqlx connection options the store connects with.
    pub fn connect_options(&self) -> &PgConnectOptions {
        &self.connect
    }
}

/// Checks a schema name (see [`PostgresOptions::schema`]).
pub(crate) fn check_schema(schema: &str) -> Result<()> {
    let valid_chars = schema
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let starts_well = schema
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !valid_chars || !starts_well || schema.len() > MAX_SCHEMA_LEN {
        return Err(Error::InvalidInput(format!(
            "schema `{schema}` is not a valid Skiff schema name: use 1 to {MAX_SCHEMA_LEN} ASCII letters, digits and underscores, not starting with a digit"
        )));
    }
    if schema.to_ascii_lowercase().starts_with("pg_") {
        return Err(Error::InvalidInput(format!(
            "schema `{schema}`: names starting with pg_ are reserved by PostgreSQL"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn parses_own_parameters_and_passes_the_rest_on() {
        let o = PostgresOptions::new(
            "postgres://u:pw@h:5433/db?schema=jobs&sslmode=disable&pool_size=3&listen=false&migrate=0&acquire_timeout_ms=250&poll_interval_ms=20&query_timeout_ms=4000",
        )
        .unwrap();
        assert_eq!(o.schema, "jobs");
        assert_eq!(o.pool_size, 3);
        assert!(!o.listen);
        assert!(!o.migrate);
        assert_eq!(o.acquire_timeout, Duration::from_millis(250));
        assert_eq!(o.poll_interval, Duration::from_millis(20));
        assert_eq!(o.query_timeout, Duration::from_secs(4));
        assert_eq!(o.connect.get_port(), 5433);
        assert_eq!(o.connect.get_database(), Some("db"));
        assert!(matches!(
            o.connect.get_ssl_mode(),
            sqlx::postgres::PgSslMode::Disable
        ));
        let plain = PostgresOptions::new("postgresql://localhost/app").unwrap();
        assert_eq!(plain.schema, DEFAULT_SCHEMA);
        assert!(plain.listen && plain.migrate);
        assert_eq!(plain.query_timeout, DEFAULT_QUERY_TIMEOUT);
    }

    #[test]
    fn rejects_bad_input_with_a_reason_and_no_password() {
        for (url, needle) in [
            ("redis://x", "not a PostgreSQL URL"),
            (
                "postgres://u:hunter2@h/db?schema=1abc",
                "not a valid Skiff schema",
            ),
            ("postgres://u:hunter2@h/db?schema=pg_x", "reserved"),
            ("postgres://u:hunter2@h/db?pool_size=x", "whole number"),
            ("postgres://u:hunter2@h/db?listen=maybe", "true or false"),
            (
                "postgres://u:hunter2@h/db?sslmode=sometimes",
                "not a valid PostgreSQL URL",
            ),
        ] {
            let err = PostgresOptions::new(url).err().unwrap().to_string();
            assert!(err.contains(needle), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
        let long = "s".repeat(MAX_SCHEMA_LEN + 1);
        assert!(check_schema(&long).is_err());
        assert!(check_schema(&"s".repeat(MAX_SCHEMA_LEN)).is_ok());
        assert!(check_schema("with space").is_err());
        assert!(check_schema("").is_err());
    }

    #[test]
    fn a_password_with_a_space_is_hidden() {
        // Found by the `store_url` fuzz target: the URL was redacted as text, word by word,
        // so the part of a password before an unescaped space was shown.
        for url in [
            "postgres://app:hunter2 x@db/app?pool_size=x",
            "postgresql://app:x hunter2@db/app?sslmode=sometimes",
            "postgres://app:hunter2 x@db/app",
        ] {
            let shown = match PostgresOptions::new(url) {
                Ok(options) => format!("{options:?}"),
                Err(err) => err.to_string(),
            };
            assert!(!shown.contains("hunter2"), "{url}: {shown}");
        }
    }

    #[test]
    fn a_parameter_quoted_in_an_error_is_scrubbed() {
        // Found by the `store_url` fuzz target: a parameter value is quoted as written, and
        // here it holds what the URL's password is (everything from the first `://` to the
        // last `@` is the user part).
        let err = PostgresOptions::new("postgresql://db/app?listen=x://u:hunter2@")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("true or false"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
