//! The command line: global flags and subcommands.

use clap::{Args, Parser, Subcommand};

/// Inspect and repair a Skiff task store (SQLite, Redis or PostgreSQL) without the task code.
#[derive(Debug, Parser)]
#[command(name = "skiff", version, propagate_version = true)]
pub(crate) struct Cli {
    /// The store: sqlite://PATH, sqlite:///ABS/PATH, redis://[:PASSWORD@]HOST:PORT/DB, rediss://…,
    /// redis+cluster://[:PASSWORD@]HOST:PORT/ (a seed node of a Redis Cluster),
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?schema=NAME] (or postgresql://…)
    #[arg(long, global = true, env = "SKIFF_URL", hide_env_values = true)]
    pub(crate) url: Option<String>,

    /// Print one JSON document instead of a table.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Give up when the store has not answered after this many seconds (at least 1).
    #[arg(long, global = true, default_value_t = 10.0, value_name = "SECONDS")]
    pub(crate) timeout: f64,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Tasks by state: ready, scheduled, leased, dead, results.
    Stats {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
    },
    /// The queues that have pending or dead tasks, with their counts.
    Queues,
    /// Tasks due now and waiting for a worker, in delivery order.
    Pending(ListArgs),
    /// Tasks waiting for their eta, soonest first.
    Scheduled(ListArgs),
    /// Tasks held by workers, by lease expiry.
    Leased(ListArgs),
    /// The dead-letter queue.
    #[command(subcommand)]
    Dead(DeadCommand),
    /// The stored result (or failure) of a task.
    Result {
        /// The task id.
        id: String,
    },
    /// Revoke a pending task: it is dropped instead of run.
    Revoke {
        /// The task id.
        id: String,
        /// Store the revocation even if no such task is pending (it may be enqueued later).
        #[arg(long)]
        force: bool,
    },
    /// Undo a revocation.
    Restore {
        /// The task id.
        id: String,
    },
    /// Stop workers taking tasks from a queue (it still accepts new ones; running tasks finish).
    Pause {
        /// The queue.
        queue: String,
    },
    /// Let workers take tasks from a paused queue again.
    Resume {
        /// The queue.
        queue: String,
    },
    /// Delete the waiting (ready and scheduled) tasks of one queue.
    Purge {
        /// The queue.
        queue: String,
        /// Yes, delete them (asked on a terminal otherwise).
        #[arg(long)]
        yes: bool,
    },
    /// Cancel a task: a running one is stopped by its worker within about a second, a
    /// waiting one is revoked.
    Cancel {
        /// The task id.
        id: String,
    },
    /// The live workers (every process on this store) and what each runs now.
    Workers,
    /// One task's whole record: state, arguments, attempts, the worker running it,
    /// progress, result.
    Task {
        /// The task id.
        id: String,
    },
    /// Delete everything in the store: tasks, results, dead tasks, locks, revocations.
    Flush {
        /// Yes, delete everything (asked on a terminal otherwise).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Show at most this many.
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: u32,
    /// Skip this many first.
    #[arg(long, default_value_t = 0)]
    pub(crate) offset: u64,
    /// Only this queue.
    #[arg(long)]
    pub(crate) queue: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeadCommand {
    /// Dead tasks, oldest first.
    List(ListArgs),
    /// One dead task with its whole envelope.
    Show {
        /// The task id.
        id: String,
    },
    /// Put dead tasks back on their queues with fresh attempt counts.
    Requeue {
        /// The task id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every dead task (of --queue, or all).
        #[arg(long)]
        all: bool,
        /// With --all: only this queue.
        #[arg(long, requires = "all")]
        queue: Option<String>,
        /// With --all: yes, requeue them (asked on a terminal otherwise).
        #[arg(long)]
        yes: bool,
    },
    /// Delete chosen dead tasks for good.
    ///
    /// A discarded task can no longer be listed or requeued, and its failure result goes with
    /// it, as with `dead purge`. Ids that are not dead tasks are skipped; it fails if none is.
    Discard {
        /// The ids of the dead tasks.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        /// Yes, delete them (asked on a terminal otherwise).
        #[arg(long)]
        yes: bool,
    },
    /// Delete dead tasks (of --queue, or all).
    Purge {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Yes, delete them (asked on a terminal otherwise).
        #[arg(long)]
        yes: bool,
    },
}

impl Cli {
    /// For a command that changes many things at once or deletes dead tasks, and was not given
    /// `--yes`: what it is about to do, to confirm first.
    pub(crate) fn unconfirmed(&self, shown_url: &str) -> Option<String> {
        let scope = |queue: &Option<String>| match queue {
            Some(q) => format!("of queue {q}"),
            None => "of every queue".to_owned(),
        };
        match &self.command {
            Command::Flush { yes: false } => Some(format!("delete everything in {shown_url}")),
            Command::Purge { queue, yes: false } => {
                Some(format!("delete the waiting tasks of queue {queue}"))
            }
            Command::Dead(DeadCommand::Purge { queue, yes: false }) => {
                Some(format!("delete the dead tasks {}", scope(queue)))
            }
            Command::Dead(DeadCommand::Discard { ids, yes: false }) => Some(match &ids[..] {
                [id] => format!("delete dead task {id}"),
                _ => {
                    let shown: Vec<&str> = ids.iter().take(3).map(String::as_str).collect();
                    let more = if ids.len() > shown.len() { ", …" } else { "" };
                    let shown = shown.join(", ");
                    format!("delete {} dead tasks ({shown}{more})", ids.len())
                }
            }),
            Command::Dead(DeadCommand::Requeue {
                all: true,
                queue,
                yes: false,
                ..
            }) => Some(format!("requeue the dead tasks {}", scope(queue))),
            _ => None,
        }
    }
}
