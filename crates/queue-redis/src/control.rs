//! Scheduling and control: reschedule, revocations, locks, rate limits.
//!
//! Revocations live in one hash `P:{~revoked}:revoked` (`i:<id>` or `t:<task name>` →
//! `"<until ms>|<once>"`), those with an end also in the expiry index
//! `P:{~revoked}:revoked-exp`; a lock is a hash `P:{~locks}:lock:<name>` with its owner and
//! expiry (and a real `PEXPIRE` a minute past it, for cleanup), indexed by expiry in
//! `P:{~locks}:lock-exp` (both indexes let `purge_expired` read only what lapsed; see
//! `lock.lua`); a rate limit is a hash `P:rate:<key>` (a slot of its own) holding the start of
//! the current fixed window and its hit count. Expiries are compared with the store's clock,
//! never Redis' own. Each group is a hash tag of its own, never in a call with a queue's keys.

use std::time::Duration;

use chrono::{DateTime, Utc};
use queue_core::clock::{duration_millis, to_millis};
use queue_core::storage::{RateDecision, RateWindow, Revocation, RevokeTarget};
use queue_core::{Error, Result, TaskId};

use crate::hot::EXPIRY_SLACK_MS;
use crate::store::RedisStorage;

fn field(target: &RevokeTarget) -> String {
    match target {
        RevokeTarget::Id(id) => format!("i:{id}"),
        RevokeTarget::Task(name) => format!("t:{name}"),
    }
}

impl RedisStorage {
    pub(crate) async fn reschedule_task(&self, id: TaskId, eta: DateTime<Utc>) -> Result<bool> {
        let Some(queue) = self.pending_queue(id).await? else {
            return Ok(false);
        };
        let mut inv = self.qcall(&self.scripts.reschedule, &queue, self.now_ms());
        inv.arg(&*queue).arg(id.to_string()).arg(to_millis(eta));
        let n: i64 = self.run(inv, "reschedule").await?;
        Ok(n == 1)
    }

    pub(crate) async fn store_revocation(&self, revocation: Revocation) -> Result<()> {
        let until = revocation
            .until
            .map(|u| to_millis(u).max(0).to_string())
            .unwrap_or_default();
        let value = format!("{until}|{}", u8::from(revocation.once));
        // One script call: the revocation and its place in the expiry index (lock.lua).
        let mut inv = self.wcall(&self.scripts.lock, "revoked", self.now_ms());
        inv.arg("revoke")
            .arg(field(&revocation.target))
            .arg(value)
            .arg(until);
        self.revocations
            .writing(self.run::<i64>(inv, "revoke"))
            .await?;
        Ok(())
    }

    pub(crate) async fn remove_revocation(&self, target: &RevokeTarget) -> Result<bool> {
        let mut inv = self.wcall(&self.scripts.lock, "revoked", self.now_ms());
        inv.arg("restore").arg(field(target));
        let n: i64 = self.run(inv, "restore").await?;
        Ok(n > 0)
    }

    pub(crate) async fn revoked(&self, tasks: &[(TaskId, &str)]) -> Result<Vec<bool>> {
        // Fast path: no revocation exists (the usual case), as the last fetch (one EXISTS in
        // its script) or an EXISTS says.
        let any = || async {
            let mut exists = redis::cmd("EXISTS");
            exists.arg(self.wkey("revoked", "revoked"));
            let n: i64 = self.cmd(&exists, "check revocations").await?;
            Ok::<_, Error>(n != 0)
        };
        let each = || async {
            let mut inv = self.wcall(&self.scripts.check_revoked, "revoked", self.now_ms());
            for (id, name) in tasks {
                inv.arg(id.to_string()).arg(*name);
            }
            let flags: Vec<i64> = self.run(inv, "check revocations").await?;
            Ok(flags.into_iter().map(|f| f == 1).collect())
        };
        self.revocations.check_revoked(tasks.len(), any, each).await
    }

    pub(crate) async fn lock_acquire(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let now = self.now_ms();
        let ttl = duration_millis(ttl);
        let mut inv = self.wcall(&self.scripts.lock, "locks", now);
        inv.arg("acquire")
            .arg(name)
            .arg(owner)
            .arg(now.saturating_add(ttl))
            .arg(ttl.saturating_add(EXPIRY_SLACK_MS));
        let n: i64 = self.run(inv, "acquire a lock").await?;
        Ok(n == 1)
    }

    pub(crate) async fn lock_release(&self, name: &str, owner: &str) -> Result<bool> {
        let mut inv = self.wcall(&self.scripts.lock, "locks", self.now_ms());
        inv.arg("release").arg(name).arg(owner);
        let n: i64 = self.run(inv, "release a lock").await?;
        Ok(n == 1)
    }

    pub(crate) async fn lock_flush(&self) -> Result<u64> {
        let mut inv = self.wcall(&self.scripts.lock, "locks", self.now_ms());
        inv.arg("flush");
        let n: i64 = self.run(inv, "flush locks").await?;
        Ok(crate::wire::count64(n))
    }

    pub(crate) async fn rate_hit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<RateDecision> {
        let now = self.now_ms();
        let window = RateWindow::at(now, window);
        let mut inv = self.call(&self.scripts.rate, &self.key(&format!("rate:{key}")), now);
        inv.arg(key)
            .arg(window.start)
            .arg(limit)
            .arg(window.length.saturating_add(EXPIRY_SLACK_MS));
        let allowed: i64 = self.run(inv, "rate limit").await?;
        Ok(window.decision(allowed == 1, now))
    }
}
