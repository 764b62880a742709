//! The Lua scripts. Each state change of the store is one script call: EVALSHA, with the script
//! loaded again automatically when the server answers NOSCRIPT (after a restart or
//! `SCRIPT FLUSH`; [`redis::Script`] does this).
//!
//! Every script is `lua/common.lua` (the key layout and shared helpers) followed by its own
//! body; both are documented in their header comments.

use redis::Script;

const COMMON: &str = include_str!("lua/common.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

/// Every script of the store, compiled (hashed) once per store.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) enqueue: Script,
    pub(crate) fetch: Script,
    pub(crate) complete: Script,
    pub(crate) extend: Script,
    pub(crate) requeue_expired: Script,
    pub(crate) peek: Script,
    pub(crate) bury: Script,
    pub(crate) delete_result: Script,
    pub(crate) purge_expired: Script,
    pub(crate) reschedule: Script,
    pub(crate) check_revoked: Script,
    pub(crate) lock: Script,
    pub(crate) rate: Script,
    pub(crate) dead: Script,
    pub(crate) admin: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            enqueue: script(include_str!("lua/enqueue.lua")),
            fetch: script(include_str!("lua/fetch.lua")),
            complete: script(include_str!("lua/complete.lua")),
            extend: script(include_str!("lua/extend.lua")),
            requeue_expired: script(include_str!("lua/requeue_expired.lua")),
            peek: script(include_str!("lua/peek.lua")),
            bury: script(include_str!("lua/bury.lua")),
            delete_result: script(include_str!("lua/delete_result.lua")),
            purge_expired: script(include_str!("lua/purge_expired.lua")),
            reschedule: script(include_str!("lua/reschedule.lua")),
            check_revoked: script(include_str!("lua/check_revoked.lua")),
            lock: script(include_str!("lua/lock.lua")),
            rate: script(include_str!("lua/rate.lua")),
            dead: script(include_str!("lua/dead.lua")),
            admin: script(include_str!("lua/admin.lua")),
        }
    }
}
