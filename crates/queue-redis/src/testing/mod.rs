//! Test support (feature `testing`): private `redis-server` processes, and stores with unique
//! key prefixes, for Skiff's own tests and for applications that test against Redis.
//!
//! * [`RedisServer::start`] runs `redis-server` on a free port of 127.0.0.1 in a temporary
//!   directory (`--save ""`, AOF on or off), killed on drop. [`RedisServer::stop`] and
//!   [`RedisServer::restart`] stop it and bring it back on the same port and directory (so an
//!   AOF server keeps its data).
//! * [`shared_url`] is one server for the whole test binary, started on first use, for tests
//!   that only need isolation by key prefix ([`unique_prefix`]). A watchdog process kills it
//!   when the test binary exits.
//! * With `SKIFF_TEST_REDIS_URL` set, [`shared_url`] is that URL instead; tests that need a
//!   server of their own (to restart it, say) still start one.
//! * [`RedisCluster::start`] runs a Redis Cluster of 3 masters and 3 replicas the same way;
//!   [`shared_cluster_url`] is one for the whole test binary.
//! * Every server the tests use is checked for [`MIN_VERSION`]: an older one fails the test
//!   with the version found and the one needed, instead of failing cases one by one.

// Test support: a panic here is the failure report of the test that called it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::{RedisOptions, RedisStorage};
use queue_core::Clock;

mod cluster;

pub use cluster::{shared_cluster_url, RedisCluster};

/// The variable that points the tests at an existing server instead.
pub const EXTERNAL: &str = "SKIFF_TEST_REDIS_URL";

/// Whether the tests run against an external server.
pub fn external_url() -> Option<String> {
    std::env::var(EXTERNAL).ok().filter(|u| !u.is_empty())
}

/// How a private server is started.
#[derive(Clone, Debug, Default)]
pub struct ServerConfig {
    /// Turn on the append-only file (data survives a restart).
    pub appendonly: bool,
    /// Require this password.
    pub password: Option<String>,
    /// Microseconds the server waits per key while it loads its data at start (Redis's
    /// `key-load-delay`), so that it answers `LOADING` for a while after
    /// [`RedisServer::restart_loading`].
    pub key_load_delay_us: Option<u32>,
    /// Start as a node of a Redis Cluster (`--cluster-enabled yes`; see [`RedisCluster`]).
    pub cluster: bool,
    /// Start as a replica of the server on this port of 127.0.0.1 (`--replicaof`).
    pub replica_of: Option<u16>,
}

/// A private `redis-server` process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    config: ServerConfig,
}

/// The oldest server the tests accept: the conformance suite runs the store's Lua code as a
/// Functions library, which Redis has since 7.0 (the store itself also runs on 6.2, as scripts).
pub const MIN_VERSION: (u32, u32) = (7, 0);

/// `(major, minor)` from a version text such as `7.0.15`.
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn require_version(found: &str, what: &str) {
    match parse_version(found) {
        Some(version) if version >= MIN_VERSION => {}
        _ => panic!(
            "{what} is Redis {found}, but the Redis tests need {}.{} or later (the conformance \
             suite runs the store's Lua code as Functions). Install a newer redis-server or set \
             {EXTERNAL} to a newer server.",
            MIN_VERSION.0, MIN_VERSION.1
        ),
    }
}

fn check_installed() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let out = match Command::new("redis-server").arg("--version").output() {
            Ok(out) if out.status.success() => out,
            _ => panic!(
                "`redis-server` is not on PATH: the Redis tests start their own server. \
                 Install it (`apt-get install redis-server`); {EXTERNAL}=redis://host:port/db \
                 points the tests that need no private server at an existing one"
            ),
        };
        // "Redis server v=7.0.15 sha=…"
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text
            .split_whitespace()
            .find_map(|word| word.strip_prefix("v="))
            .unwrap_or("(unknown version)");
        require_version(version, "`redis-server` on PATH");
    });
}

/// Checks an external server's version (`INFO server`).
fn check_external(url: &str) {
    let info: String = redis::Client::open(url)
        .and_then(|client| client.get_connection())
        .and_then(|mut conn| redis::cmd("INFO").arg("server").query(&mut conn))
        .unwrap_or_else(|e| panic!("{EXTERNAL} ({}): {e}", crate::redact_url(url)));
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .unwrap_or("(unknown version)");
    require_version(version, &format!("the server at {EXTERNAL}"));
}

pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// A server without persistence or password.
    pub fn start() -> Self {
        Self::with(ServerConfig::default())
    }

    /// A server started with `config`.
    pub fn with(config: ServerConfig) -> Self {
        Self::on_port(config, free_port())
    }

    /// A server started with `config` on `port` of 127.0.0.1.
    pub fn on_port(config: ServerConfig, port: u16) -> Self {
        check_installed();
        let tmp = tempfile::tempdir().expect("temp dir for redis-server");
        let mut server = Self {
            child: None,
            port,
            dir: tmp.path().to_path_buf(),
            _tmp: Some(tmp),
            config,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        self.spawn();
        self.wait_ready(true);
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg(if self.config.appendonly { "yes" } else { "no" })
            .arg("--appendfsync")
            .arg("always")
            .arg("--daemonize")
            .arg("no")
            .arg("--logfile")
            .arg("redis.log");
        if let Some(pw) = &self.config.password {
            cmd.arg("--requirepass").arg(pw);
        }
        if self.config.cluster {
            cmd.arg("--cluster-enabled")
                .arg("yes")
                .arg("--cluster-config-file")
                .arg("nodes.conf")
                .arg("--cluster-node-timeout")
                .arg("2000")
                // A replica may take over however long its master has been gone (a test kills
                // masters on purpose).
                .arg("--cluster-replica-validity-factor")
                .arg("0");
        }
        if self.config.cluster || self.config.replica_of.is_some() {
            // Replicas sync at once instead of after the default 5 s.
            cmd.arg("--repl-diskless-sync-delay").arg("0");
        }
        if let Some(port) = self.config.replica_of {
            cmd.arg("--replicaof")
                .arg("127.0.0.1")
                .arg(port.to_string());
        }
        if let Some(us) = self.config.key_load_delay_us {
            // Answers (LOADING) between small parts of the load, not only after it.
            cmd.arg("--key-load-delay")
                .arg(us.to_string())
                .arg("--loading-process-events-interval-bytes")
                .arg("1024");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
    }

    /// Waits until the server answers; with `loaded`, until it answers other than `LOADING`.
    fn wait_ready(&mut self, loaded: bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 64];
                if s.write_all(b"PING\r\n").is_ok() && matches!(s.read(&mut buf), Ok(n) if n > 0) {
                    // "-LOADING" while the AOF is read back: not ready yet.
                    if !loaded || !buf.starts_with(b"-LOADING") {
                        return;
                    }
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let log =
                        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                    panic!(
                        "redis-server exited ({status}) on port {}:\n{log}",
                        self.port
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `redis://[:password@]127.0.0.1:port/0`.
    pub fn url(&self) -> String {
        match &self.config.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Kills the server (SIGKILL: nothing is saved but what the AOF already holds).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Saves the data (`SAVE`), kills the server and starts it again, returning as soon as it
    /// accepts connections: while it loads the saved data it answers `LOADING` (for long with
    /// [`ServerConfig::key_load_delay_us`] and many keys).
    pub fn restart_loading(&mut self) {
        let saved: redis::RedisResult<()> = redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("SAVE").query(&mut c));
        saved.expect("SAVE before a restart");
        self.stop();
        self.spawn();
        self.wait_ready(false);
    }

    /// Keeps the server running after this handle is gone, until the test binary exits.
    pub(crate) fn detach_until_exit(self) -> (String, u16) {
        self.detach_until_exit_of(std::process::id(), "")
    }

    /// Keeps the server running after this handle is gone, until process `pid` exits; then
    /// the watchdog also removes `also` (a path, or nothing if empty).
    pub(crate) fn detach_until_exit_of(mut self, pid: u32, also: &str) -> (String, u16) {
        let child = self.child.take().expect("running");
        let tmp = self._tmp.take().expect("temp dir");
        let dir = tmp.keep();
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; kill -9 {redis} 2>/dev/null; rm -rf '{dir}' {also}",
            parent = pid,
            redis = child.id(),
            dir = dir.display(),
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        // The watchdog owns the process now.
        std::mem::forget(child);
        (self.url(), self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One server for the whole test binary (or the external one).
pub fn shared_url() -> String {
    static SHARED: OnceLock<String> = OnceLock::new();
    SHARED
        .get_or_init(|| match external_url() {
            Some(url) => {
                check_external(&url);
                url
            }
            None => RedisServer::start().detach_until_exit().0,
        })
        .clone()
}

/// A key prefix no other test of any run uses.
pub fn unique_prefix(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "skiff-test-{tag}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Options for a store on the shared server with a fresh prefix.
pub fn shared_options(tag: &str) -> RedisOptions {
    RedisOptions::new(shared_url())
        .key_prefix(unique_prefix(tag))
        .pool_size(4)
        .blocking_pool_size(4)
}

/// A store on the shared server with a fresh prefix and `clock`.
pub async fn shared_store(tag: &str, clock: Arc<dyn Clock>) -> RedisStorage {
    RedisStorage::open(shared_options(tag).clock(clock))
        .await
        .expect("open a Redis store on the test server")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare() {
        assert_eq!(parse_version("7.0.15"), Some((7, 0)));
        assert_eq!(parse_version("6.2"), Some((6, 2)));
        assert_eq!(parse_version("unknown"), None);
        assert!(parse_version("7.2.4").unwrap() >= MIN_VERSION);
        assert!(parse_version("6.2.14").unwrap() < MIN_VERSION);
    }

    #[test]
    #[should_panic(expected = "need 7.0 or later")]
    fn an_old_server_is_refused_with_the_versions() {
        require_version("6.2.14", "test server");
    }
}
