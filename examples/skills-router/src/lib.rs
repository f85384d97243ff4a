//! Skill-level routing for tasks: sends a task to the workers best at the skill it needs, widens the
//! search if none of them is free in time, and prefers the least loaded of equally skilled workers.
//!
//! Name it in a workflow's configuration as the workflow's rules module; the host then asks it
//! where each task entering the workflow should go (`route`) and how well each eligible worker fits
//! the task (`score`).
//!
//! # Attributes
//!
//! Task attributes (a JSON object; `null` counts as absent):
//!
//! | attribute | meaning |
//! |---|---|
//! | `skill` | the skill the task needs, e.g. `"billing"`; without it the module leaves the task alone |
//! | `language` | a language tag the worker must speak, e.g. `"es"` |
//! | `min_level` | the level a worker needs in the first target (default 1); an integer or a string holding one, clamped to 1..=5 |
//! | `queue` | the task queue (sid or friendly name) to route to, instead of the queue named after the skill |
//! | `escalate_after` | seconds in the first target before widening; an integer or a string holding one, at least 1; default from the store (below) |
//!
//! Worker attributes:
//!
//! | attribute | meaning |
//! |---|---|
//! | `skills` | an object of skill → level, integers 1..=5, e.g. `{"billing": 4, "sales": 2}`; a level above 5 counts as 5, a missing, zero, negative or non-integer level means the worker lacks the skill |
//! | `languages` | an array of language tags, e.g. `["en", "es"]` |
//!
//! # Route
//!
//! For a task with a `skill`, two targets in the same queue (`queue`, or the skill's name):
//!
//! 1. workers at the required level, `worker.skills.<skill> >= <min_level>`, for `escalate_after`
//!    seconds;
//! 2. then anyone in the queue, with no timeout (the task waits there until its TTL).
//!
//! Neither target sets a priority, so the task keeps its own.
//!
//! Otherwise:
//!
//! - No `skill` attribute, or task attributes that are not a JSON object: `use-configuration`, the
//!   workflow's static filters route the task.
//! - A `queue`, `min_level` or `escalate_after` the module cannot read (a `queue` that is not a
//!   non-empty string, a level or timeout that is not an integer): `use-configuration` too. The
//!   module does not guess what a malformed attribute meant.
//! - A `skill` that is not a string, not a plain identifier (`[A-Za-z_][A-Za-z0-9_]*`; hyphens are
//!   not allowed in routing expressions) or is a word of the expression language (`and`, `or`,
//!   `not`, `in`, `has`, `contains`, `true`, `false`, `null`, in any case): `cancel`, with the
//!   reason. Such a skill cannot be put into a worker expression safely, and routing the task
//!   anywhere else would ignore what it asked for.
//!
//! Each decision is logged at info level with the task sid and the decision's details.
//!
//! # Score
//!
//! Every eligible worker of the chosen target is scored; the highest score gets the task, and equal
//! scores go to the worker idle longest.
//!
//! - The worker lacks the task's skill → no score: the worker must not get the task. This holds in
//!   the second, wider target too, so "anyone in the queue" means anyone there who has the skill at
//!   all, at any level.
//! - The task has a `language` the worker's `languages` do not contain (compared ignoring ASCII
//!   case and surrounding spaces) → no score.
//! - Otherwise `level × 10 + (5 if the language matches) − active tasks × 3`, which may be
//!   negative. One level is worth more than three tasks of load but less than four.
//!
//! A task without a `skill` (scored, say, after `use-configuration`) has no skill to lack: its
//! workers score `(5 if the language matches) − active tasks × 3`. A task whose `skill` `route`
//! would cancel, or task or worker attributes that are not a JSON object, give no score. A
//! `language` that is not a non-empty string is no language requirement.
//!
//! As every scored worker of a task with a `language` speaks it, the language bonus shifts all of
//! that task's scores alike; it is there so a score reads the same across tasks.
//!
//! The weights are constants, not configuration: the host scores every eligible worker, and a
//! store read per worker would cost more than the flexibility is worth.
//!
//! # Configuration
//!
//! Read from the account's key-value store ([`kv`]) when a task needs it:
//!
//! | key | value | default |
//! |---|---|---|
//! | `skills-router/escalate-after-seconds` | seconds in the first target when the task has no `escalate_after`, as decimal text; at least 1 | 60 |
//!
//! A missing, malformed or unreadable value means the default; read failures are logged as
//! warnings.

mod rules;

use switchboard_guest::kv;
use switchboard_guest::log::{self, Level};
use switchboard_guest::workflow_rules::{Guest, RoutingDecision, Task, Worker};

/// Store key of the first target's default timeout, in seconds.
const ESCALATE_AFTER_KEY: &str = "skills-router/escalate-after-seconds";

struct SkillsRouter;

impl Guest for SkillsRouter {
    fn route(task: Task) -> RoutingDecision {
        let route = rules::route(&task.attributes, || {
            rules::default_escalate_after(read(ESCALATE_AFTER_KEY).as_deref())
        });
        let mut fields = vec![("task_sid".to_string(), task.sid)];
        fields.extend(route.log_fields());
        log::log(Level::Info, "skills-router: routed task", &fields);
        route.decision()
    }

    fn score(task: Task, worker: Worker) -> Option<f64> {
        rules::score(&task.attributes, &worker.attributes, worker.active_tasks)
    }
}

/// The stored value of `key`; `None` when it is unset or the store cannot be read.
fn read(key: &str) -> Option<Vec<u8>> {
    kv::get(key).unwrap_or_else(|error| {
        log::log(
            Level::Warn,
            "skills-router: cannot read configuration, using the default",
            &[
                ("key".to_string(), key.to_string()),
                ("error".to_string(), error.to_string()),
            ],
        );
        None
    })
}

switchboard_guest::export_workflow_rules!(SkillsRouter);
