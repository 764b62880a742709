//! One PostgreSQL server shared by every test process of a build, started by the first one
//! that needs it and stopped a few seconds after the last one is gone.
//!
//! cargo-nextest runs each test in a process of its own, so a server per process would cost
//! a server start (and a copy of the template) per test. Instead, under
//! `target/<profile>/skiff-postgres/shared-<version>/`:
//!
//! * every test process that uses the server holds a **shared** `flock` on `clients.lock`
//!   for as long as it lives (a `flock -s … cat` helper whose stdin is a pipe from the test
//!   process: the lock goes when the process does, however it ends);
//! * the process that finds no server running (under the exclusive `start.lock`) copies the
//!   template to `data/`, starts `postgres` in a process group of its own, writes `url`, and
//!   starts a **watchdog** shell;
//! * the watchdog checks every second whether it could take `clients.lock` exclusively; after
//!   five seconds in a row of no clients it stops the server (`pg_ctl stop -m immediate`)
//!   while holding that exclusive lock, so no test can attach to a server that is stopping.
//!
//! Tests isolate themselves by schema ([`unique_schema`](super::unique_schema)). A server
//! that dies is started again by the next test process that attaches.
//!
//! Without the `flock` command (util-linux) each test process starts a private server instead.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use super::server::ServerConfig;
use super::server::{
    bin_dir, cache_dir, copy_template, free_port, give_to_server, is_ready, launch, server_command,
    server_user, PostgresServer,
};
use super::SUPERUSER;

/// Seconds without clients before the watchdog stops the shared server.
const IDLE_SECONDS: u32 = 5;

/// A held `flock`: released when dropped (or when this process ends).
struct Flock(Child);

impl Flock {
    /// Takes `path` shared or exclusively; blocks until it is held.
    fn take(path: &Path, exclusive: bool) -> Option<Self> {
        let mut child = Command::new("flock")
            .arg(if exclusive { "-x" } else { "-s" })
            .arg(path)
            .args(["sh", "-c", "echo locked; exec cat >/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ok()?;
        let mut line = String::new();
        let out = child.stdout.take()?;
        let _ = BufReader::new(out).read_line(&mut line);
        if line.trim() == "locked" {
            Some(Self(child))
        } else {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

impl Drop for Flock {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// Whether the `flock` command is there.
fn have_flock() -> bool {
    Command::new("flock")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The URL of the shared server, started if needed; this process stays a client until it
/// exits.
pub(super) fn attach() -> String {
    if !have_flock() {
        return PostgresServer::start().detach_until_exit();
    }
    static CLIENT: Mutex<Option<Flock>> = Mutex::new(None);
    let dir = shared_dir();
    let clients = dir.join("clients.lock");
    let client = Flock::take(&clients, false).expect("take the shared server's client lock");
    *CLIENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(client);
    let _starting =
        Flock::take(&dir.join("start.lock"), true).expect("take the shared server's start lock");
    let data = dir.join("data");
    if let Some(url) = fs::read_to_string(dir.join("url"))
        .ok()
        .filter(|_| is_ready(&data))
    {
        return url.trim().to_owned();
    }
    start(&dir, &data)
}

/// The shared server's directory, with its lock files in place (readable by the server's
/// user, which runs the watchdog).
fn shared_dir() -> PathBuf {
    let version = bin_dir()
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("local")
        .to_owned();
    let dir = cache_dir().join(format!("shared-{version}"));
    fs::create_dir_all(&dir).expect("create the shared server's directory");
    for lock in ["clients.lock", "start.lock"] {
        let path = dir.join(lock);
        if !path.exists() {
            fs::write(&path, b"").expect("create a lock file");
        }
        give_to_server(&path);
    }
    give_to_server(&dir);
    dir
}

/// Starts the shared server on a fresh copy of the template, and its watchdog.
fn start(dir: &Path, data: &Path) -> String {
    // A server that died leaves its data behind; a stopped one too. Start clean.
    let stale = dir.join(format!("data-old-{}", std::process::id()));
    if data.exists() {
        let _ = fs::rename(data, &stale);
        let _ = fs::remove_dir_all(&stale);
    }
    let _ = fs::remove_file(dir.join("url"));
    copy_template(data);
    let log = dir.join("postgres.log");
    let _ = fs::remove_file(&log);
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        match launch(data, port, &log, true, ServerConfig::default()) {
            Ok(child) => {
                // The watchdog stops it; this process only forgets it.
                std::mem::forget(child);
                let url = format!("postgres://{SUPERUSER}@127.0.0.1:{port}/postgres");
                fs::write(dir.join("url"), &url).expect("write the shared server's URL");
                watchdog(dir, data);
                return url;
            }
            Err(e) => last = e,
        }
    }
    panic!("the shared PostgreSQL test server did not start:\n{last}");
}

/// Starts the watchdog described in the [module docs](self), detached from this process.
fn watchdog(dir: &Path, data: &Path) {
    let script = format!(
        r#"lock='{lock}'; idle=0
while sleep 1; do
  if [ ! -f '{data}/postmaster.pid' ]; then exit 0; fi
  if flock -xn "$lock" true; then idle=$((idle + 1)); else idle=0; fi
  if [ "$idle" -ge {IDLE_SECONDS} ]; then
    if flock -xn "$lock" sh -c "'{pg_ctl}' stop -D '{data}' -m immediate -w >/dev/null 2>&1; rm -f '{url}'"; then
      exit 0
    fi
    idle=0
  fi
done"#,
        lock = dir.join("clients.lock").display(),
        data = data.display(),
        pg_ctl = bin_dir().join("pg_ctl").display(),
        url = dir.join("url").display(),
    );
    let mut cmd = if server_user().is_some() {
        server_command("sh")
    } else {
        Command::new("sh")
    };
    let child = cmd
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn the shared server's watchdog");
    // It outlives this process on purpose.
    std::mem::forget(child);
}
