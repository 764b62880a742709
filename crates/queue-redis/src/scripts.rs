//! The Lua scripts, and how they are run. Each state change of the store is one script call.
//!
//! Every script is `lua/common.lua` (the key layout and shared helpers) and a body of its own;
//! both are documented in their header comments. They run in one of two ways:
//!
//! * **As a Redis Functions library** (Redis 7.0 and later, the default): common.lua and every
//!   body are loaded once per server with `FUNCTION LOAD`, and a call is `FCALL`. Only the body
//!   runs per call. The library's name carries a hash of its code, so stores of different
//!   Skiff versions on one server each call their own; a server that lost it (restart without
//!   persistence, `FUNCTION FLUSH`) gets it again on the first call that misses it.
//! * **As scripts** (older servers, or [`RedisOptions::functions(false)`]): each call is
//!   `EVALSHA` of common.lua followed by the body, loaded again when the server answers
//!   `NOSCRIPT` ([`redis::Script`] hashes it). Lua then runs common.lua on every call: it
//!   builds a closure per helper, ~250,000 instructions of the server's per call, which is
//!   most of a single-task call's cost.
//!
//! [`RedisOptions::functions(false)`]: crate::RedisOptions::functions

use redis::{Cmd, ErrorKind, RedisError, Script, ServerErrorKind, ToRedisArgs};

const COMMON: &str = include_str!("lua/common.lua");

/// One script: its function name in the library and its `EVALSHA` form.
#[derive(Debug)]
pub(crate) struct LuaScript {
    function: String,
    code: String,
    sha: String,
    /// Whether it may change the store (every script but the read-only ones).
    pub(crate) writes: bool,
}

/// Every script of the store, and the library that holds them as functions.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) enqueue: LuaScript,
    pub(crate) fetch: LuaScript,
    pub(crate) complete: LuaScript,
    pub(crate) extend: LuaScript,
    pub(crate) requeue_expired: LuaScript,
    pub(crate) peek: LuaScript,
    pub(crate) bury: LuaScript,
    pub(crate) delete_result: LuaScript,
    pub(crate) purge_expired: LuaScript,
    pub(crate) reschedule: LuaScript,
    pub(crate) check_revoked: LuaScript,
    pub(crate) lock: LuaScript,
    pub(crate) rate: LuaScript,
    pub(crate) dead: LuaScript,
    /// dead.lua for `list`, `ids`, `purge` and `discard`, which never add data: as a function
    /// it runs while the server is out of memory, so a full store can still be purged.
    pub(crate) dead_free: LuaScript,
    pub(crate) admin: LuaScript,
    /// admin.lua for `counts`, `queues`, `task` and `progress`, which only read: as a function
    /// it runs while the server is out of memory and refuses to write.
    pub(crate) admin_read: LuaScript,
    pub(crate) pause: LuaScript,
    /// purge_queue.lua only removes data: as a function it runs while the server is out of
    /// memory, so a full queue can still be purged.
    pub(crate) purge_queue: LuaScript,
    pub(crate) cancel: LuaScript,
    pub(crate) heartbeat: LuaScript,
    /// workers.lua (`list`, `remove`) only removes data.
    pub(crate) workers: LuaScript,
    /// The `FUNCTION LOAD` source of the library.
    pub(crate) library: String,
}

/// Flags of a function that only reads (it may run on a full server, and may not write).
const READS: &str = "'no-writes'";
/// Flags of a function that only removes data (it may run on a full server).
const FREES: &str = "'allow-oom'";

/// Each script: its name, its body and its flags as a function (Redis refuses to start a
/// function without flags while it is out of memory, rather than failing at its first write).
const BODIES: [(&str, &str, &str); 22] = [
    ("enqueue", include_str!("lua/enqueue.lua"), ""),
    ("fetch", include_str!("lua/fetch.lua"), ""),
    ("complete", include_str!("lua/complete.lua"), ""),
    ("extend", include_str!("lua/extend.lua"), ""),
    (
        "requeue_expired",
        include_str!("lua/requeue_expired.lua"),
        "",
    ),
    ("peek", include_str!("lua/peek.lua"), READS),
    ("bury", include_str!("lua/bury.lua"), ""),
    (
        "delete_result",
        include_str!("lua/delete_result.lua"),
        FREES,
    ),
    (
        "purge_expired",
        include_str!("lua/purge_expired.lua"),
        FREES,
    ),
    ("reschedule", include_str!("lua/reschedule.lua"), ""),
    ("check_revoked", include_str!("lua/check_revoked.lua"), ""),
    ("lock", include_str!("lua/lock.lua"), ""),
    ("rate", include_str!("lua/rate.lua"), ""),
    ("dead", include_str!("lua/dead.lua"), ""),
    ("dead_free", include_str!("lua/dead.lua"), FREES),
    ("admin", include_str!("lua/admin.lua"), ""),
    ("admin_read", include_str!("lua/admin.lua"), READS),
    ("pause", include_str!("lua/pause.lua"), ""),
    ("purge_queue", include_str!("lua/purge_queue.lua"), FREES),
    ("cancel", include_str!("lua/cancel.lua"), ""),
    ("heartbeat", include_str!("lua/heartbeat.lua"), ""),
    ("workers", include_str!("lua/workers.lua"), FREES),
];

/// Stands for the library's name until its code is complete and can be hashed.
const NAME: &str = "skiff_LIBRARY";

impl Scripts {
    pub(crate) fn new() -> Self {
        // While the library loads, `redis` is the loading API (register_function); common.lua
        // then shadows the name with the one it uses at run time.
        let mut library = format!("#!lua name={NAME}\nlocal LOADING = redis\n{COMMON}\n");
        for (short, body, flags) in BODIES {
            library.push_str(&format!(
                "local function body_{short}()\n{body}\nend\n\
                 LOADING.register_function{{function_name = '{NAME}_{short}', flags = {{{flags}}},\n  \
                 callback = function(keys, args)\n    init(keys, args)\n    return body_{short}()\n  end}}\n"
            ));
        }
        // A name per version of the whole library (sha1, as Redis names scripts), so a store
        // never calls another version's functions.
        let name = format!("skiff_{}", &Script::new(&library).get_hash()[..12]);
        let library = library.replace(NAME, &name);
        let mut scripts = BODIES
            .map(|(short, body, flags)| {
                let code = format!(
                    "local EVAL_KEYS, EVAL_ARGS = KEYS, ARGV\n{COMMON}\ninit(EVAL_KEYS, EVAL_ARGS)\n{body}"
                );
                LuaScript {
                    writes: flags != READS,
                    function: format!("{name}_{short}"),
                    sha: Script::new(&code).get_hash().to_owned(),
                    code,
                }
            })
            .into_iter();
        let mut next = || {
            scripts
                .next()
                .unwrap_or_else(|| unreachable!("one per body"))
        };
        Self {
            enqueue: next(),
            fetch: next(),
            complete: next(),
            extend: next(),
            requeue_expired: next(),
            peek: next(),
            bury: next(),
            delete_result: next(),
            purge_expired: next(),
            reschedule: next(),
            check_revoked: next(),
            lock: next(),
            rate: next(),
            dead: next(),
            dead_free: next(),
            admin: next(),
            admin_read: next(),
            pause: next(),
            purge_queue: next(),
            cancel: next(),
            heartbeat: next(),
            workers: next(),
            library,
        }
    }
}

/// One call of a script, built argument by argument (like [`redis::ScriptInvocation`]) and
/// run by [`RedisStorage::run`](crate::RedisStorage): `FCALL name 1 key args…` or
/// `EVALSHA sha 1 key args…`, where `key` is a key of the hash tag the call works in (a
/// cluster routes the call by it; see `lua/common.lua`).
pub(crate) struct Call<'a> {
    pub(crate) script: &'a LuaScript,
    /// The key the call is routed by.
    pub(crate) key: String,
    pub(crate) cmd: Cmd,
    pub(crate) functions: bool,
}

impl<'a> Call<'a> {
    pub(crate) fn new(script: &'a LuaScript, functions: bool, key: &str) -> Self {
        let mut cmd = if functions {
            let mut c = redis::cmd("FCALL");
            c.arg(&script.function);
            c
        } else {
            let mut c = redis::cmd("EVALSHA");
            c.arg(&script.sha);
            c
        };
        cmd.arg(1).arg(key);
        Self {
            script,
            key: key.to_owned(),
            cmd,
            functions,
        }
    }

    /// Appends an argument.
    pub(crate) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    /// The command that makes the server know this call's code again after `err`, if `err`
    /// says it does not (`NOSCRIPT`, or an unknown function).
    pub(crate) fn reload(&self, err: &RedisError, library: &str) -> Option<Cmd> {
        if self.functions {
            let missing = err.to_string().contains("Function not found");
            missing.then(|| load_library(library))
        } else if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) {
            let mut load = redis::cmd("SCRIPT");
            load.arg("LOAD").arg(&self.script.code);
            Some(load)
        } else {
            None
        }
    }
}

/// `FUNCTION LOAD` of `library`.
pub(crate) fn load_library(library: &str) -> Cmd {
    let mut load = redis::cmd("FUNCTION");
    load.arg("LOAD").arg(library);
    load
}

/// Whether a `FUNCTION LOAD` failed only because the library is there already.
pub(crate) fn already_loaded(err: &RedisError) -> bool {
    err.to_string().contains("already exists")
}

#[cfg(test)]
mod tests {
    use super::COMMON;

    #[test]
    fn the_scripts_keep_dead_letter_results_as_long_as_the_other_stores() {
        let ms = queue_core::storage::DEAD_RESULT_TTL.as_millis();
        assert!(
            COMMON.contains(&format!("local DEAD_RESULT_TTL_MS = {ms}\n")),
            "common.lua's DEAD_RESULT_TTL_MS must be {ms}"
        );
    }
}
