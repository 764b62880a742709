//! Server binaries, the template data directory, and private servers ([`PostgresServer`]).

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{BIN_DIR, SUPERUSER};

/// Bumped when the template's `initdb` options change, so stale templates are not reused.
const TEMPLATE_REV: u32 = 2;

pub(super) const INSTALL: &str = "the PostgreSQL tests start their own server and need its \
     binaries (initdb, postgres, pg_ctl): install them (Debian/Ubuntu: `apt-get install \
     postgresql`; others: the PostgreSQL server package), or set SKIFF_TEST_POSTGRES_BIN to \
     their directory; SKIFF_TEST_POSTGRES_URL=postgres://… points the tests that need no \
     private server at an existing one";

/// The directory of `initdb`, `postgres` and `pg_ctl`.
pub(super) fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let complete = |d: &Path| {
            ["initdb", "postgres", "pg_ctl"]
                .iter()
                .all(|b| d.join(b).is_file())
        };
        if let Ok(dir) = std::env::var(BIN_DIR) {
            let dir = PathBuf::from(dir);
            assert!(
                complete(&dir),
                "{BIN_DIR}={} lacks initdb, postgres or pg_ctl; {INSTALL}",
                dir.display()
            );
            return dir;
        }
        let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                complete(&bin).then_some((version, bin))
            })
            .collect();
        versions.sort();
        if let Some((_, bin)) = versions.pop() {
            return bin;
        }
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .find(|d| complete(d))
            .unwrap_or_else(|| panic!("no PostgreSQL server binaries found: {INSTALL}"))
    })
}

/// `(uid, gid)` to run the server as: the `postgres` user when this process is root.
pub(super) fn server_user() -> Option<(u32, u32)> {
    static USER: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *USER.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok());
        if uid != Some(0) {
            return None;
        }
        let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
        let user = passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.first() != Some(&"postgres") {
                return None;
            }
            Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
        });
        Some(user.unwrap_or_else(|| {
            panic!(
                "running as root, the PostgreSQL test server needs a `postgres` user to run as \
                 (PostgreSQL refuses to run as root); it comes with the server package: {INSTALL}"
            )
        }))
    })
}

/// A command that runs `program` (a server binary, or a path) as the server's user.
pub(super) fn server_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let program = program.as_ref();
    let path = if Path::new(program).is_absolute() {
        PathBuf::from(program)
    } else if bin_dir().join(program).is_file() {
        bin_dir().join(program)
    } else {
        PathBuf::from(program)
    };
    let mut cmd = Command::new(path);
    if let Some((uid, gid)) = server_user() {
        cmd.uid(uid).gid(gid);
    }
    cmd.env_remove("PGDATA").env("LC_ALL", "C");
    cmd
}

/// Gives `path` to the server's user (when root).
pub(super) fn give_to_server(path: &Path) {
    if let Some((uid, gid)) = server_user() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
    }
}

/// Where templates and the shared server live: beside the test binaries
/// (`target/<profile>/skiff-postgres`), or in the temporary directory when the binary is
/// elsewhere (doc tests).
pub(super) fn cache_dir() -> PathBuf {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    let dir = match exe_dir {
        Some(deps) if deps.ends_with("deps") => {
            deps.parent().map_or(deps.clone(), Path::to_path_buf)
        }
        _ => std::env::temp_dir(),
    }
    .join("skiff-postgres");
    fs::create_dir_all(&dir).expect("create the PostgreSQL test directory");
    dir
}

/// The major version of the binaries (the name of their `/usr/lib/postgresql/<v>` directory).
fn version_tag() -> String {
    bin_dir()
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("local")
        .to_owned()
}

/// The initialized, never-started data directory every test server is a copy of.
pub(super) fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let root = cache_dir();
        let done = root.join(format!("template-{}-r{TEMPLATE_REV}", version_tag()));
        if done.join(".skiff-ready").is_file() {
            return done;
        }
        // Build under a name of our own, then publish with one rename: a process that finds
        // the finished name uses it; one that loses the race throws its copy away.
        let tmp = root.join(format!(
            "template-build-{}-{}",
            std::process::id(),
            unique_suffix()
        ));
        // Templates of other revisions are never used again.
        for entry in fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("template-") && !name.starts_with("template-build-") {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        fs::create_dir_all(&tmp).expect("create a template directory");
        give_to_server(&tmp);
        let out = server_command("initdb")
            .arg("-D")
            .arg(&tmp)
            .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"])
            // 1 MB WAL segments instead of 16: every copy of the template is 15 MB smaller.
            .args(["--wal-segsize=1", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run initdb: {e}; {INSTALL}"));
        assert!(
            out.status.success(),
            "initdb failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        fs::write(tmp.join(".skiff-ready"), b"").expect("mark the template ready");
        if fs::rename(&tmp, &done).is_err() {
            let _ = fs::remove_dir_all(&tmp);
            assert!(
                done.join(".skiff-ready").is_file(),
                "could not publish the PostgreSQL template at {}",
                done.display()
            );
        }
        done
    })
}

/// A fresh copy of the template at `data` (which must not exist), owned by the server's user.
pub(super) fn copy_template(data: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(template())
        .arg(data)
        .stdin(Stdio::null())
        .status()
        .expect("run cp");
    assert!(status.success(), "copy the PostgreSQL template");
    let _ = fs::remove_file(data.join(".skiff-ready"));
}

pub(super) fn unique_suffix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}x{nanos:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

pub(super) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// How a private server is started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerConfig {
    /// PostgreSQL's default durability (`fsync`, `full_page_writes`): for benchmarks. Tests
    /// run without them (a crash of the server process still loses nothing: the OS has every
    /// write), which makes every commit cheaper.
    pub durable: bool,
    /// TLS on (`ssl=on`) with a certificate for `localhost` and `127.0.0.1` signed by a test
    /// authority ([`PostgresServer::tls_root_cert`] is the root to verify it with); plain
    /// connections are still accepted.
    pub tls: bool,
}

/// Starts `postgres` on `data` and waits until it accepts connections; the server log on
/// failure. `detached` servers get a process group of their own (they outlive this process).
pub(super) fn launch(
    data: &Path,
    port: u16,
    log: &Path,
    detached: bool,
    config: ServerConfig,
) -> Result<Child, String> {
    let log_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the server log");
    let mut cmd = server_command("postgres");
    cmd.arg("-D")
        .arg(data)
        .arg("-p")
        .arg(port.to_string())
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "unix_socket_directories="])
        .args(["-c", "max_connections=300"])
        .args(["-c", "max_wal_senders=0", "-c", "wal_level=minimal"])
        .args(["-c", "log_min_messages=warning"]);
    if config.durable {
        // The defaults, except the buffer cache: 128 MB.
        cmd.args(["-c", "shared_buffers=128MB"]);
    } else {
        // Test servers trade durability against power loss for speed; a crash of the server
        // process (what the crash tests do) loses nothing, the OS still has every write.
        cmd.args(["-c", "shared_buffers=32MB"]);
        cmd.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
    }
    if config.tls {
        let dir = data.join("tls");
        if !dir.join("cert.pem").exists() {
            make_certificate(&dir);
        }
        cmd.args(["-c", "ssl=on"])
            .arg("-c")
            .arg(format!("ssl_cert_file={}", dir.join("cert.pem").display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", dir.join("key.pem").display()));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    if detached {
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("run postgres: {e}; {INSTALL}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if is_ready(data) {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "postgres exited ({status}) on port {port}:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            ));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "postgres did not get ready on port {port} within a minute:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A certificate and key in `dir` the server may read (its key owned by the server's user,
/// mode 0600, as PostgreSQL demands).
fn make_certificate(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dir).expect("create the certificate directory");
    let certs = queue_core::testing::test_certificates(dir);
    fs::set_permissions(&certs.key, fs::Permissions::from_mode(0o600)).expect("chmod the key");
    for path in [dir, certs.cert.as_path(), certs.key.as_path()] {
        give_to_server(path);
    }
}

/// Whether the server on `data` runs and accepts connections: PostgreSQL writes `ready` as
/// the last line of `postmaster.pid` once it does (after crash recovery, if any).
pub(super) fn is_ready(data: &Path) -> bool {
    let pid_file = fs::read_to_string(data.join("postmaster.pid")).unwrap_or_default();
    let mut lines = pid_file.lines();
    let alive = lines
        .next()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
    alive && pid_file.lines().nth(7).map(str::trim) == Some("ready")
}

/// Sends `signal` to `child` and waits for it to exit (30 s at most, then SIGKILL).
fn stop_child(mut child: Child, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A private PostgreSQL server: its own data directory (a copy of the template) in a
/// temporary directory, on a free port of 127.0.0.1, stopped and removed on drop.
pub struct PostgresServer {
    child: Option<Child>,
    port: u16,
    data: PathBuf,
    log: PathBuf,
    tmp: Option<tempfile::TempDir>,
    config: ServerConfig,
    /// The watchdog: when its stdin closes (this handle is dropped, or the process dies,
    /// however), it stops the server and removes its files.
    watchdog: Option<Child>,
}

impl std::fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresServer")
            .field("port", &self.port)
            .field("data", &self.data)
            .field("running", &self.child.is_some())
            .finish()
    }
}

impl PostgresServer {
    /// Starts a server on a fresh copy of the template, configured for tests.
    pub fn start() -> Self {
        Self::with(ServerConfig::default())
    }

    /// Starts a server on a fresh copy of the template, configured by `config`.
    pub fn with(config: ServerConfig) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("skiff-pg-")
            .tempdir()
            .expect("temp dir for a PostgreSQL server");
        give_to_server(tmp.path());
        let data = tmp.path().join("data");
        copy_template(&data);
        let watchdog = watchdog(&data, tmp.path());
        let mut server = Self {
            child: None,
            port: 0,
            log: tmp.path().join("postgres.log"),
            data,
            tmp: Some(tmp),
            config,
            watchdog: Some(watchdog),
        };
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match launch(&server.data, server.port, &server.log, false, config) {
                Ok(child) => {
                    server.child = Some(child);
                    return server;
                }
                // Most likely another process took the port between our probe and the bind.
                Err(log) => last = log,
            }
        }
        panic!("the PostgreSQL test server did not start:\n{last}");
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server log (its stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The root that signed the certificate of a server started with [`ServerConfig::tls`],
    /// for `sslrootcert=`.
    pub fn tls_root_cert(&self) -> Option<PathBuf> {
        self.config
            .tls
            .then(|| self.data.join("tls").join("root.pem"))
    }

    /// `postgres://skiff@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server the way `pg_ctl stop -m immediate` does (SIGQUIT: every server process
    /// exits at once, nothing is flushed or checkpointed; the next start replays the WAL), and
    /// waits for it.
    pub fn crash(&mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child, "QUIT");
        }
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`: SIGINT, then a checkpoint), and waits.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child, "INT");
        }
    }

    /// Starts the server again (crashing it first if it runs) on the same port and data.
    pub fn restart(&mut self) {
        self.crash();
        match launch(&self.data, self.port, &self.log, false, self.config) {
            Ok(child) => self.child = Some(child),
            Err(log) => panic!("the PostgreSQL test server did not restart:\n{log}"),
        }
    }

    /// Keeps the server running after this handle is gone, until the test process exits (then
    /// its watchdog stops it and removes its files).
    pub(super) fn detach_until_exit(mut self) -> String {
        static WATCHDOGS: Mutex<Vec<Child>> = Mutex::new(Vec::new());
        let url = self.url();
        let _ = self.tmp.take().map(tempfile::TempDir::keep);
        if let Some(watchdog) = self.watchdog.take() {
            WATCHDOGS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(watchdog);
        }
        // The watchdog owns the server now.
        std::mem::forget(self.child.take());
        url
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.crash();
        drop(self.tmp.take());
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

/// Starts the watchdog of a private server: a shell, as the server's user, that waits for its
/// stdin to close (this process dropped the server, or died), then stops the server on
/// `data` (`pg_ctl stop -m immediate`, a no-op when it does not run) and removes `dir`.
fn watchdog(data: &Path, dir: &Path) -> Child {
    let script = format!(
        "read _ignored; '{pg_ctl}' stop -D '{data}' -m immediate -w >/dev/null 2>&1; rm -rf '{dir}'",
        pg_ctl = bin_dir().join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    server_command("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn the PostgreSQL watchdog")
}
