//! The resources of a workspace as the engine holds them in memory, with their stored form.
//!
//! Attributes are kept both as the text the tenant sent (returned verbatim, as the reference does)
//! and parsed, so expressions evaluate without re-parsing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::expression::Expression;
use super::workflow::{Configuration, KnownWorker, Target};

#[derive(Debug, Clone)]
pub struct Workspace {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub event_callback_url: Option<String>,
    /// Event types delivered to the callback URL; none = all.
    pub events_filter: Option<String>,
    pub multi_task_enabled: bool,
    pub default_activity_sid: Option<String>,
    pub timeout_activity_sid: Option<String>,
    /// Where workers reached as `client:NAME` go when NAME's last endpoint disconnects (and their
    /// pending reservations are rejected); `None` = their activity ignores presence.
    pub presence_offline_activity_sid: Option<String>,
    /// Where such workers go when NAME comes back online, if they are still in the offline
    /// activity; `None` = they stay until moved.
    pub presence_online_activity_sid: Option<String>,
    pub prioritize_queue_order: String,
    pub date_created: i64,
    pub date_updated: i64,
}

#[derive(Debug, Clone)]
pub struct Activity {
    pub sid: String,
    pub friendly_name: String,
    pub available: bool,
    pub date_created: i64,
    pub date_updated: i64,
}

#[derive(Debug, Clone)]
pub struct TaskChannel {
    pub sid: String,
    pub friendly_name: String,
    pub unique_name: String,
    pub channel_optimized_routing: bool,
    pub date_created: i64,
    pub date_updated: i64,
}

/// A worker's capacity on one task channel.
#[derive(Debug, Clone)]
pub struct WorkerChannel {
    pub sid: String,
    pub task_channel_sid: String,
    pub capacity: i64,
    pub available: bool,
    /// Reservations pending, accepted or wrapping on this channel: they use capacity.
    pub active: i64,
    /// Reservations accepted or wrapping: the reference's `assigned_tasks`.
    pub assigned: i64,
    pub date_created: i64,
    pub date_updated: i64,
}

#[derive(Debug, Clone)]
pub struct Worker {
    pub sid: String,
    pub friendly_name: String,
    pub attributes_text: String,
    pub attributes: Value,
    pub activity_sid: String,
    pub date_status_changed: i64,
    /// When the worker last got a reservation or became available: longest idle is served first.
    pub idle_since: i64,
    pub version: i64,
    pub date_created: i64,
    pub date_updated: i64,
    pub channels: Vec<WorkerChannel>,
    /// Task queues whose TargetWorkers match this worker.
    pub queues: Vec<String>,
    /// The key under which the worker is filed in its queues' ready sets, when filed: its
    /// `idle_since` then and its sid, shared by every set.
    pub filed_as: Option<ReadyKey>,
}

impl Worker {
    pub fn channel(&self, task_channel_sid: &str) -> Option<&WorkerChannel> {
        self.channels
            .iter()
            .find(|c| c.task_channel_sid == task_channel_sid)
    }

    pub fn channel_mut(&mut self, task_channel_sid: &str) -> Option<&mut WorkerChannel> {
        self.channels
            .iter_mut()
            .find(|c| c.task_channel_sid == task_channel_sid)
    }

    pub fn active_tasks(&self) -> i64 {
        self.channels.iter().map(|c| c.active).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOrder {
    Fifo,
    Lifo,
}

impl TaskOrder {
    pub fn parse(text: &str) -> Option<TaskOrder> {
        match text.to_ascii_uppercase().as_str() {
            "FIFO" => Some(TaskOrder::Fifo),
            "LIFO" => Some(TaskOrder::Lifo),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskOrder::Fifo => "FIFO",
            TaskOrder::Lifo => "LIFO",
        }
    }
}

/// Where a waiting task stands in its queue: higher priority first, then older first (FIFO) or
/// newer first (LIFO, which ignores priority as the reference does).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    pub rank: i64,
    pub time: i64,
    pub sequence: u64,
    pub task_sid: String,
}

/// A worker's place in a ready set: how long it has been idle, then its sid. The sid is shared,
/// so filing a worker in every queue and channel it serves allocates it once.
pub type ReadyKey = (i64, Arc<str>);

#[derive(Debug, Clone)]
pub struct TaskQueue {
    pub sid: String,
    pub friendly_name: String,
    pub target_workers: Expression,
    pub max_reserved_workers: i64,
    pub task_order: TaskOrder,
    pub reservation_activity_sid: Option<String>,
    pub assignment_activity_sid: Option<String>,
    pub date_created: i64,
    pub date_updated: i64,
    /// Workers matching TargetWorkers.
    pub members: HashSet<String>,
    /// Per task channel, the members that can take a task of that channel now, longest idle first.
    pub ready: HashMap<String, BTreeSet<ReadyKey>>,
    /// Tasks waiting in this queue for a worker, in service order.
    pub waiting: BTreeSet<Place>,
}

#[derive(Debug, Clone)]
pub struct Workflow {
    pub sid: String,
    pub friendly_name: String,
    pub configuration_text: String,
    pub configuration: Arc<Configuration>,
    pub assignment_callback_url: Option<String>,
    pub fallback_assignment_callback_url: Option<String>,
    pub task_reservation_timeout: i64,
    pub date_created: i64,
    pub date_updated: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Pending,
    Reserved,
    Assigned,
    Wrapping,
    Completed,
    Canceled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Reserved => "reserved",
            TaskStatus::Assigned => "assigned",
            TaskStatus::Wrapping => "wrapping",
            TaskStatus::Completed => "completed",
            TaskStatus::Canceled => "canceled",
        }
    }

    pub fn parse(text: &str) -> Option<TaskStatus> {
        Some(match text {
            "pending" => TaskStatus::Pending,
            "reserved" => TaskStatus::Reserved,
            "assigned" => TaskStatus::Assigned,
            "wrapping" => TaskStatus::Wrapping,
            "completed" => TaskStatus::Completed,
            "canceled" => TaskStatus::Canceled,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Canceled)
    }
}

/// Which steps a task walks through and where it is.
#[derive(Debug, Clone)]
pub struct Route {
    /// The filter matched: its index, `DEFAULT_FILTER`, or `MODULE_ROUTE` for a module's targets.
    pub filter_index: i64,
    pub targets: Arc<[Target]>,
    pub target_index: usize,
    /// Whether the task got here by skipping (it then still qualifies for the default filter).
    pub skipped: bool,
    /// The module's targets as stored, when a module chose them.
    pub module_targets: Option<String>,
}

pub const DEFAULT_FILTER: i64 = -1;
pub const MODULE_ROUTE: i64 = -2;
/// A route the task was given at creation (`RoutingTarget` naming a queue or a worker) instead of
/// one its workflow chose.
pub const ROUTING_TARGET: i64 = -3;

impl Route {
    pub fn target(&self) -> Option<&Target> {
        self.targets.get(self.target_index)
    }

    /// The one-step route of a task created with a `RoutingTarget`: its queue, and the worker
    /// (with whether capacity and availability are ignored) when the target is a worker.
    pub fn given(queue: String, worker: Option<(String, bool)>) -> Route {
        let stored = serde_json::json!([{
            "queue": queue,
            "worker": worker.as_ref().map(|(sid, _)| sid),
            "ignore_capacity": worker.as_ref().map(|(_, ignore)| ignore),
        }]);
        let target = Target {
            queue,
            priority: None,
            timeout: None,
            expression: None,
            order_by: None,
            skip_if: None,
            known_worker: worker.map(|(sid, ignore_capacity)| KnownWorker::Given {
                sid,
                ignore_capacity,
            }),
        };
        Route {
            filter_index: ROUTING_TARGET,
            targets: Arc::from(vec![target]),
            target_index: 0,
            skipped: false,
            module_targets: Some(stored.to_string()),
        }
    }

    /// The task resource's `routing_target` and `ignore_capacity`, for a task routed by
    /// `RoutingTarget` to a queue or a worker.
    pub fn routing_target(&self) -> Option<(&str, bool)> {
        if self.filter_index != ROUTING_TARGET {
            return None;
        }
        let target = self.targets.first()?;
        Some(
            self.given_worker()
                .unwrap_or((target.queue.as_str(), false)),
        )
    }

    /// The worker a task was sent to by `RoutingTarget`, with its `IgnoreCapacity`.
    pub fn given_worker(&self) -> Option<(&str, bool)> {
        match &self.targets.first()?.known_worker {
            Some(KnownWorker::Given {
                sid,
                ignore_capacity,
            }) if self.filter_index == ROUTING_TARGET => Some((sid.as_str(), *ignore_capacity)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub sid: String,
    pub workflow_sid: Option<String>,
    pub queue_sid: Option<String>,
    pub task_channel_sid: String,
    pub attributes_text: String,
    pub attributes: Value,
    pub priority: i64,
    pub timeout: i64,
    pub status: TaskStatus,
    pub reason: Option<String>,
    pub virtual_start_time: i64,
    pub task_queue_entered_date: Option<i64>,
    pub route: Option<Route>,
    pub step_deadline: Option<i64>,
    pub assignment_count: i64,
    pub call_sid: Option<String>,
    pub version: i64,
    pub date_created: i64,
    pub date_updated: i64,
    /// Where the task is filed in its queue's waiting set, while it waits.
    pub place: Option<Place>,
    /// Workers that rejected or let this task time out since it last changed step: they are asked
    /// again only when nobody else can take it.
    pub declined_by: Vec<String>,
    /// Sids of this task's reservations still pending, accepted or wrapping.
    pub live: Vec<String>,
}

impl Task {
    pub fn ttl_deadline(&self) -> i64 {
        self.date_created
            .saturating_add(self.timeout.saturating_mul(1000))
    }

    pub fn age_seconds(&self, now: i64) -> i64 {
        (now - self.date_created).max(0) / 1000
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    Pending,
    Accepted,
    Rejected,
    Timeout,
    Canceled,
    Rescinded,
    Wrapping,
    Completed,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Pending => "pending",
            ReservationStatus::Accepted => "accepted",
            ReservationStatus::Rejected => "rejected",
            ReservationStatus::Timeout => "timeout",
            ReservationStatus::Canceled => "canceled",
            ReservationStatus::Rescinded => "rescinded",
            ReservationStatus::Wrapping => "wrapping",
            ReservationStatus::Completed => "completed",
        }
    }

    pub fn parse(text: &str) -> Option<ReservationStatus> {
        Some(match text {
            "pending" => ReservationStatus::Pending,
            "accepted" => ReservationStatus::Accepted,
            "rejected" => ReservationStatus::Rejected,
            "timeout" => ReservationStatus::Timeout,
            "canceled" => ReservationStatus::Canceled,
            "rescinded" => ReservationStatus::Rescinded,
            "wrapping" => ReservationStatus::Wrapping,
            "completed" => ReservationStatus::Completed,
            _ => return None,
        })
    }

    /// Pending, accepted and wrapping reservations hold a worker's capacity.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            ReservationStatus::Pending | ReservationStatus::Accepted | ReservationStatus::Wrapping
        )
    }
}

#[derive(Debug, Clone)]
pub struct Reservation {
    pub sid: String,
    pub task_sid: String,
    pub worker_sid: String,
    pub queue_sid: String,
    pub task_channel_sid: String,
    pub status: ReservationStatus,
    pub timeout_at: Option<i64>,
    pub previous_activity_sid: Option<String>,
    pub version: i64,
    pub date_created: i64,
    pub date_updated: i64,
}
