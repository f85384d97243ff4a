//! One workspace's live state and the routing engine that moves it.
//!
//! Every change goes through a method here while the workspace's lock is held. A method changes
//! memory and records, in [`Effects`], the rows to write, the events to append, the reservations to
//! announce and the deadlines to arm; the caller commits the effects before it answers or announces
//! anything. Memory is therefore at most one commit ahead of the database, and only in the moment
//! between a change and its commit.
//!
//! # Indexes
//!
//! Selection never scans every worker: each task queue keeps the workers matching its TargetWorkers
//! (`members`, recomputed when a worker's attributes or the queue's expression change), and per task
//! channel the members able to take a task now (`ready`), ordered by how long they have been idle.
//! A task entering a queue looks only at that queue's ready workers, in idle order; a worker freeing
//! up looks only at the waiting tasks of its own queues, in service order.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::event_data::EventData;
use super::expression::{Document, Expression, Scope, Segment, follow};
use super::model::*;
use super::store;
use super::timers::Timer;
use super::workflow::{KnownWorker, Target};
use crate::api::error::{ApiError, ApiResult, Code};
use crate::events::NewEvent;
use crate::sid::new_sid;
use crate::store::batch::Change;

/// How many waiting tasks of one queue a freed worker looks through for one it matches.
const WAITING_SCAN_LIMIT: usize = 1_000;
/// Reservations a task may have had before it is canceled, as the reference caps it.
pub const MAX_ASSIGNMENTS: i64 = 1_000;
/// Why a task sent by `RoutingTarget` to one worker ended when that worker declined it.
pub const DECLINED_BY_TARGET: &str = "Declined by its routing target worker";
/// Default reservation timeout in seconds.
pub const DEFAULT_RESERVATION_TIMEOUT: i64 = 120;

/// What a transition leaves to do once its rows are committed.
#[derive(Default)]
pub struct Effects {
    pub change: Change,
    /// Events appended, for the workspace's event callback: `(type, data as JSON text)`; empty
    /// when it has none.
    pub events: Vec<(String, String)>,
    /// Reservations created under a workflow with an assignment callback: the callbacks go out
    /// after the commit.
    pub offers: Vec<String>,
    pub timers: Vec<(i64, Timer)>,
    /// Calls whose task asked (through a dequeue instruction) to be connected to a worker.
    pub dequeues: Vec<Dequeue>,
    /// Calls to place or redirect for `call` and `redirect` instructions.
    pub calls: Vec<CallOrder>,
    /// Deadlines no longer needed (their task finished), so the timer set does not keep them.
    pub disarmed: Vec<(i64, Timer)>,
    /// Tasks whose workflow scores workers with a module: the caller asks the module, then
    /// routes them with [`Space::route_task`] and the scores.
    pub to_score: Vec<String>,
    tasks: Vec<String>,
    workers: Vec<String>,
    reservations: Vec<String>,
}

/// A call a reservation instruction asks for, carried out once the instruction is committed.
#[derive(Debug, Clone)]
pub enum CallOrder {
    /// `call`: place an outbound call to `to` from `from` running `url`, ringing for
    /// `timeout_seconds`, with the call's status posted to `status_callback` when it ends.
    Place {
        to: String,
        from: String,
        url: String,
        timeout_seconds: u32,
        status_callback: Option<String>,
    },
    /// `redirect`: send a live call of the account to `url`.
    Redirect { call_sid: String, url: String },
}

/// A reservation's dequeue instruction, to be carried out by the queues once committed.
#[derive(Debug, Clone)]
pub struct Dequeue {
    pub reservation_sid: String,
    pub worker_sid: String,
    pub call_sid: String,
    pub to: String,
    pub from: Option<String>,
    pub timeout_seconds: i64,
    pub post_work_activity_sid: Option<String>,
    /// Where the worker's call leg posts its status, and on which events (none = `completed`).
    pub status_callback: Option<String>,
    pub status_callback_events: Vec<String>,
}

fn touch(list: &mut Vec<String>, sid: &str) {
    if !list.iter().any(|s| s == sid) {
        list.push(sid.to_string());
    }
}

/// A task's view of a worker for target expressions: `task.` paths read the task's attributes,
/// `worker.` paths the worker's, plus the worker's own fields and channel figures.
pub struct TargetScope<'a> {
    pub task: &'a Value,
    pub worker: &'a Worker,
    pub activity_name: &'a str,
    pub channels: &'a [TaskChannel],
}

impl Scope for TargetScope<'_> {
    fn lookup(&self, path: &[Segment]) -> Option<std::borrow::Cow<'_, Value>> {
        let (Segment::Key(root), rest) = path.split_first()? else {
            return None;
        };
        match root.as_str() {
            "task" => follow(self.task, rest).map(std::borrow::Cow::Borrowed),
            "worker" => worker_value(self.worker, self.activity_name, self.channels, rest),
            _ => None,
        }
    }
}

/// One worker, for the workers list's `TargetWorkersExpression`: its attributes plus its own
/// fields and channel figures, as `worker.` paths see them in target expressions.
pub struct WorkerScope<'a> {
    pub worker: &'a Worker,
    pub activity_name: &'a str,
    pub channels: &'a [TaskChannel],
}

impl Scope for WorkerScope<'_> {
    fn lookup(&self, path: &[Segment]) -> Option<std::borrow::Cow<'_, Value>> {
        worker_value(self.worker, self.activity_name, self.channels, path)
    }
}

/// A worker's `sid`, `friendly_name`, `activity_sid` and `activity_name`, its
/// `channel.<name>.<figure>`, else its attribute at `path`.
fn worker_value<'a>(
    worker: &'a Worker,
    activity_name: &str,
    channels: &[TaskChannel],
    path: &[Segment],
) -> Option<std::borrow::Cow<'a, Value>> {
    use std::borrow::Cow;
    if let [Segment::Key(key)] = path {
        let own = match key.as_str() {
            "sid" => Some(worker.sid.as_str()),
            "friendly_name" => Some(worker.friendly_name.as_str()),
            "activity_sid" => Some(worker.activity_sid.as_str()),
            "activity_name" => Some(activity_name),
            _ => None,
        };
        if let Some(own) = own {
            return Some(Cow::Owned(Value::String(own.to_string())));
        }
    }
    if let [
        Segment::Key(channel),
        Segment::Key(name),
        Segment::Key(figure),
    ] = path
        && channel == "channel"
    {
        let task_channel = channels.iter().find(|c| &c.unique_name == name)?;
        let capacity = worker.channel(&task_channel.sid)?;
        let value = match figure.as_str() {
            "configured_capacity" => json!(capacity.capacity),
            "assigned_tasks" => json!(capacity.assigned),
            "available_capacity_percentage" => json!(percentage(capacity)),
            _ => return None,
        };
        return Some(Cow::Owned(value));
    }
    follow(&worker.attributes, path).map(Cow::Borrowed)
}

pub fn percentage(channel: &WorkerChannel) -> i64 {
    if channel.capacity <= 0 {
        0
    } else {
        // A task routed to its worker with `IgnoreCapacity` may take the channel past its capacity.
        ((1.0 - channel.active as f64 / channel.capacity as f64) * 100.0)
            .floor()
            .max(0.0) as i64
    }
}

/// `workers.available`, `workers.unavailable` and `workers.<ActivitySid>` of one queue, for
/// `skip_if`.
struct QueueWorkersScope {
    counts: HashMap<String, i64>,
}

impl Scope for QueueWorkersScope {
    fn lookup(&self, path: &[Segment]) -> Option<std::borrow::Cow<'_, Value>> {
        match path {
            [Segment::Key(root), Segment::Key(name)] if root == "workers" => Some(
                std::borrow::Cow::Owned(json!(self.counts.get(name).copied().unwrap_or(0))),
            ),
            _ => None,
        }
    }
}

pub struct Space {
    pub workspace: Workspace,
    pub activities: Vec<Activity>,
    pub channels: Vec<TaskChannel>,
    pub workers: HashMap<String, Worker>,
    pub queues: HashMap<String, TaskQueue>,
    pub workflows: HashMap<String, Workflow>,
    /// Tasks not yet completed or canceled.
    pub tasks: HashMap<String, Task>,
    /// Reservations pending, accepted or wrapping.
    pub reservations: HashMap<String, Reservation>,
    sequence: u64,
    now: i64,
}

impl Space {
    pub fn new(workspace: Workspace) -> Space {
        Space {
            workspace,
            activities: Vec::new(),
            channels: Vec::new(),
            workers: HashMap::new(),
            queues: HashMap::new(),
            workflows: HashMap::new(),
            tasks: HashMap::new(),
            reservations: HashMap::new(),
            sequence: 0,
            now: 0,
        }
    }

    /// Sets the time every change made until the next call is stamped with.
    pub fn at(&mut self, now: i64) -> &mut Space {
        self.now = now;
        self
    }

    pub fn now(&self) -> i64 {
        self.now
    }

    pub fn source(&self) -> String {
        format!("/v1/Workspaces/{}", self.workspace.sid)
    }

    // ----- lookups -----

    pub fn activity(&self, sid: &str) -> Option<&Activity> {
        self.activities.iter().find(|a| a.sid == sid)
    }

    pub fn activity_name(&self, sid: &str) -> &str {
        self.activity(sid).map_or("", |a| a.friendly_name.as_str())
    }

    pub fn channel_by_ref(&self, text: &str) -> Option<&TaskChannel> {
        self.channels
            .iter()
            .find(|c| c.sid == text || c.unique_name == text)
    }

    pub fn channel_name(&self, sid: &str) -> &str {
        self.channels
            .iter()
            .find(|c| c.sid == sid)
            .map_or("", |c| c.unique_name.as_str())
    }

    pub fn worker_available(&self, worker: &Worker) -> bool {
        self.activity(&worker.activity_sid)
            .is_some_and(|a| a.available)
    }

    /// The task channels on which a worker can take a task now.
    fn ready_channels<'w>(&self, worker: &'w Worker) -> Vec<&'w str> {
        if !self.worker_available(worker) {
            return Vec::new();
        }
        if !self.workspace.multi_task_enabled && worker.active_tasks() > 0 {
            return Vec::new();
        }
        worker
            .channels
            .iter()
            .filter(|c| c.available && c.active < c.capacity)
            .map(|c| c.task_channel_sid.as_str())
            .collect()
    }

    /// A task's live reservations (pending, accepted or wrapping), through the task's own list
    /// so no lookup scans the workspace's reservations.
    pub fn reservations_of<'a>(
        &'a self,
        task_sid: &str,
    ) -> impl Iterator<Item = &'a Reservation> + use<'a> {
        let live = self.tasks.get(task_sid).map(|t| t.live.as_slice());
        live.unwrap_or_default()
            .iter()
            .filter_map(|sid| self.reservations.get(sid))
    }

    // ----- events and rows -----

    /// Appends an event to the log (and to the callback list), in the same change as the rows.
    pub fn event(
        &self,
        fx: &mut Effects,
        event_type: &str,
        resource_type: &str,
        resource_sid: &str,
        description: String,
        data: EventData,
    ) {
        let data = self.event_data(resource_type, resource_sid, description, data);
        // Only a workspace with an EventCallbackUrl posts its events; the others need no copy.
        let callback = self
            .workspace
            .event_callback_url
            .is_some()
            .then(|| (event_type.to_string(), data.clone()));
        fx.change.push(
            NewEvent {
                account_sid: &self.workspace.account_sid,
                event_type,
                source: self.source(),
                subject: Some(resource_sid),
                time_ms: self.now,
                data,
            }
            .statement(),
        );
        fx.events.extend(callback);
    }

    /// An event's data: its own fields plus the workspace, resource and time every event carries.
    pub fn event_data(
        &self,
        resource_type: &str,
        resource_sid: &str,
        description: String,
        mut data: EventData,
    ) -> String {
        data.text("workspace_sid", &self.workspace.sid)
            .text("workspace_name", &self.workspace.friendly_name)
            .text("account_sid", &self.workspace.account_sid)
            .text("resource_type", resource_type)
            .text("resource_sid", resource_sid)
            .text("description", &description)
            .number("timestamp_ms", self.now);
        data.into_json()
    }

    fn task_data(&self, task: &Task) -> EventData {
        self.task_data_in(task, task.queue_sid.as_deref())
    }

    /// A task's fields, with `queue` as its queue (a reservation's queue for its events).
    fn task_data_in(&self, task: &Task, queue: Option<&str>) -> EventData {
        let mut data = EventData::default();
        data.text("task_sid", &task.sid)
            .text("task_attributes", &task.attributes_text)
            .number("task_age", task.age_seconds(self.now))
            .number("task_priority", task.priority)
            .text("task_assignment_status", task.status.as_str())
            .text(
                "task_channel_unique_name",
                self.channel_name(&task.task_channel_sid),
            );
        if let Some(queue) = queue {
            data.text("task_queue_sid", queue);
            if let Some(q) = self.queues.get(queue) {
                data.text("task_queue_name", &q.friendly_name);
            }
        }
        if let Some(workflow) = task.workflow_sid.as_deref() {
            data.text("workflow_sid", workflow);
            if let Some(w) = self.workflows.get(workflow) {
                data.text("workflow_name", &w.friendly_name);
            }
        }
        data
    }

    fn worker_data(&self, worker: &Worker, data: &mut EventData) {
        data.text("worker_sid", &worker.sid)
            .text("worker_name", &worker.friendly_name)
            .text("worker_attributes", &worker.attributes_text)
            .text("worker_activity_sid", &worker.activity_sid)
            .text(
                "worker_activity_name",
                self.activity_name(&worker.activity_sid),
            )
            .number("worker_version", worker.version);
    }

    fn task_event(&self, fx: &mut Effects, event_type: &str, task: &Task, description: String) {
        let data = self.task_data(task);
        self.event(fx, event_type, "task", &task.sid, description, data);
    }

    fn reservation_event(&self, fx: &mut Effects, event_type: &str, reservation_sid: &str) {
        let Some((description, data)) = self.reservation_data(reservation_sid) else {
            return;
        };
        self.event(
            fx,
            event_type,
            "reservation",
            reservation_sid,
            description,
            data,
        );
    }

    /// What a reservation's events carry: the task's, the worker's and the reservation's fields.
    pub fn reservation_data(&self, reservation_sid: &str) -> Option<(String, EventData)> {
        let reservation = self.reservations.get(reservation_sid)?;
        let mut data = match self.tasks.get(&reservation.task_sid) {
            Some(task) => self.task_data_in(task, Some(&reservation.queue_sid)),
            None => {
                let mut data = EventData::default();
                data.text("task_queue_sid", &reservation.queue_sid);
                data
            }
        };
        if let Some(worker) = self.workers.get(&reservation.worker_sid) {
            self.worker_data(worker, &mut data);
        }
        data.text("reservation_sid", &reservation.sid);
        let description = format!(
            "Reservation {} {} for worker {}",
            reservation.sid,
            reservation.status.as_str(),
            reservation.worker_sid
        );
        Some((description, data))
    }

    pub fn worker_event(&self, fx: &mut Effects, event_type: &str, worker_sid: &str) {
        let Some(worker) = self.workers.get(worker_sid) else {
            return;
        };
        let mut data = EventData::default();
        self.worker_data(worker, &mut data);
        let description = format!("Worker {} {event_type}", worker.friendly_name);
        self.event(fx, event_type, "worker", worker_sid, description, data);
    }

    /// Writes the rows of every task, worker and reservation the transition touched. Called once
    /// at the end of each transition so a resource changed several times is written once.
    pub fn finish(&mut self, fx: &mut Effects) {
        let ws = self.workspace.sid.clone();
        for sid in std::mem::take(&mut fx.workers) {
            if let Some(worker) = self.workers.get(&sid) {
                fx.change.push(store::worker_row(&ws, worker));
            }
        }
        for sid in std::mem::take(&mut fx.reservations) {
            if let Some(reservation) = self.reservations.get(&sid) {
                fx.change.push(store::reservation_row(&ws, reservation));
                if !reservation.status.is_live() {
                    let task_sid = reservation.task_sid.clone();
                    self.reservations.remove(&sid);
                    if let Some(task) = self.tasks.get_mut(&task_sid) {
                        task.live.retain(|live| live != &sid);
                    }
                }
            }
        }
        for sid in std::mem::take(&mut fx.tasks) {
            if let Some(task) = self.tasks.get(&sid) {
                fx.change.push(store::task_row(&ws, task));
                if task.status.is_final() {
                    fx.disarmed
                        .push((task.ttl_deadline(), Timer::Ttl(sid.clone())));
                    self.tasks.remove(&sid);
                }
            }
        }
    }

    // ----- the ready index -----

    fn unfile(&mut self, worker_sid: &str) {
        let Some(worker) = self.workers.get_mut(worker_sid) else {
            return;
        };
        let Some(key) = worker.filed_as.take() else {
            return;
        };
        for queue_sid in &worker.queues {
            if let Some(queue) = self.queues.get_mut(queue_sid) {
                for set in queue.ready.values_mut() {
                    set.remove(&key);
                }
            }
        }
    }

    fn file(&mut self, worker_sid: &str) {
        let Some(worker) = self.workers.get(worker_sid) else {
            return;
        };
        let channels = self.ready_channels(worker);
        if channels.is_empty() {
            return;
        }
        let key: ReadyKey = (worker.idle_since, Arc::from(worker.sid.as_str()));
        // The workers and the queues are borrowed apart, so filing copies neither the worker's
        // queue list nor a channel sid per queue: a reservation files its worker in every queue
        // and channel, under the workspace lock. Only the sets that exist are kept: a queue has
        // a set for a channel once a task of that channel looked for a worker in it
        // ([`Space::open_ready_set`]), so channels nobody routes on cost nothing.
        for queue_sid in &worker.queues {
            if let Some(queue) = self.queues.get_mut(queue_sid) {
                for &channel in &channels {
                    if let Some(ready) = queue.ready.get_mut(channel) {
                        ready.insert(key.clone());
                    }
                }
            }
        }
        if let Some(worker) = self.workers.get_mut(worker_sid) {
            worker.filed_as = Some(key);
        }
    }

    /// Re-evaluates which queues a worker belongs to.
    pub fn recompute_membership(&mut self, worker_sid: &str) {
        self.unfile(worker_sid);
        let Some(worker) = self.workers.get(worker_sid) else {
            return;
        };
        let document = Document(&worker.attributes);
        let mut now_in = Vec::new();
        for queue in self.queues.values() {
            if queue.target_workers.evaluate(&document) {
                now_in.push(queue.sid.clone());
            }
        }
        now_in.sort();
        for queue in self.queues.values_mut() {
            if now_in.contains(&queue.sid) {
                queue.members.insert(worker_sid.to_string());
            } else {
                queue.members.remove(worker_sid);
            }
        }
        if let Some(worker) = self.workers.get_mut(worker_sid) {
            worker.queues = now_in;
        }
        self.file(worker_sid);
    }

    /// Re-evaluates one queue's TargetWorkers against every worker (the queue is new or its
    /// expression changed); other queues' memberships are untouched.
    pub fn recompute_queue(&mut self, queue_sid: &str) {
        let Some(queue) = self.queues.get(queue_sid) else {
            return;
        };
        let expression = queue.target_workers.clone();
        let sids: Vec<String> = self.workers.keys().cloned().collect();
        for sid in sids {
            let Some(worker) = self.workers.get(&sid) else {
                continue;
            };
            let member = expression.evaluate(&Document(&worker.attributes));
            if member == worker.queues.iter().any(|q| q == queue_sid) {
                continue;
            }
            self.unfile(&sid);
            if let Some(worker) = self.workers.get_mut(&sid) {
                if member {
                    worker.queues.push(queue_sid.to_string());
                } else {
                    worker.queues.retain(|q| q != queue_sid);
                }
            }
            if let Some(queue) = self.queues.get_mut(queue_sid) {
                if member {
                    queue.members.insert(sid.clone());
                } else {
                    queue.members.remove(&sid);
                }
            }
            self.file(&sid);
        }
    }

    // ----- workers -----

    /// Moves a worker to another activity, announcing it.
    pub fn set_activity(&mut self, fx: &mut Effects, worker_sid: &str, activity_sid: &str) {
        let now = self.now;
        let becomes_available = self.activity(activity_sid).is_some_and(|a| a.available);
        let Some(worker) = self.workers.get(worker_sid) else {
            return;
        };
        if worker.activity_sid == activity_sid {
            return;
        }
        let was_available = self.worker_available(worker);
        let previous = worker.activity_sid.clone();
        let time_in_previous = now - worker.date_status_changed;
        self.unfile(worker_sid);
        if let Some(worker) = self.workers.get_mut(worker_sid) {
            worker.activity_sid = activity_sid.to_string();
            worker.date_status_changed = now;
            worker.date_updated = now;
            worker.version += 1;
            if becomes_available && !was_available {
                worker.idle_since = now;
            }
        }
        self.file(worker_sid);
        touch(&mut fx.workers, worker_sid);
        if let Some(worker) = self.workers.get(worker_sid) {
            let mut data = EventData::default();
            self.worker_data(worker, &mut data);
            data.text("worker_previous_activity_sid", &previous)
                .number("worker_time_in_previous_activity", time_in_previous / 1000)
                .number("worker_time_in_previous_activity_ms", time_in_previous);
            let description = format!(
                "Worker {} updated to {} Activity",
                worker.friendly_name,
                self.activity_name(activity_sid)
            );
            self.event(
                fx,
                "worker.activity.update",
                "worker",
                worker_sid,
                description,
                data,
            );
        }
    }

    /// Mark a worker's row to be written at the end of the transition.
    pub fn touch_worker(&mut self, fx: &mut Effects, worker_sid: &str) {
        touch(&mut fx.workers, worker_sid);
    }

    pub fn touch_task(&mut self, fx: &mut Effects, task_sid: &str) {
        touch(&mut fx.tasks, task_sid);
    }

    /// Adds a worker (already validated) and offers it work.
    pub fn add_worker(&mut self, fx: &mut Effects, worker: Worker) {
        let sid = worker.sid.clone();
        let ws = self.workspace.sid.clone();
        for channel in &worker.channels {
            fx.change
                .push(store::worker_channel_row(&ws, &sid, channel));
        }
        self.workers.insert(sid.clone(), worker);
        self.recompute_membership(&sid);
        touch(&mut fx.workers, &sid);
        self.worker_event(fx, "worker.created", &sid);
        self.offer_worker(fx, &sid);
    }

    /// Adds a queue (already validated): its row, its members, and `task-queue.created`.
    pub fn add_queue(&mut self, fx: &mut Effects, queue: TaskQueue) {
        let sid = queue.sid.clone();
        fx.change
            .push(store::queue_row(&self.workspace.sid, &queue));
        self.queues.insert(sid.clone(), queue);
        self.recompute_queue(&sid);
        self.event(
            fx,
            "task-queue.created",
            "task_queue",
            &sid,
            format!("Task queue {sid} created"),
            Default::default(),
        );
    }

    /// Adds a workflow (its configuration already compiled): its row and `workflow.created`.
    pub fn add_workflow(&mut self, fx: &mut Effects, workflow: Workflow) {
        fx.change
            .push(store::workflow_row(&self.workspace.sid, &workflow));
        self.event(
            fx,
            "workflow.created",
            "workflow",
            &workflow.sid,
            format!("Workflow {} created", workflow.friendly_name),
            Default::default(),
        );
        self.workflows.insert(workflow.sid.clone(), workflow);
    }

    // ----- tasks entering and walking their workflow -----

    /// Files a pending task in its queue's waiting set.
    fn file_task(&mut self, task_sid: &str) {
        let Some(task) = self.tasks.get(task_sid) else {
            return;
        };
        let Some(queue_sid) = task.queue_sid.clone() else {
            return;
        };
        let Some(queue) = self.queues.get(&queue_sid) else {
            return;
        };
        self.sequence += 1;
        let place = match queue.task_order {
            TaskOrder::Fifo => Place {
                rank: -task.priority,
                time: task.virtual_start_time,
                sequence: self.sequence,
                task_sid: task.sid.clone(),
            },
            TaskOrder::Lifo => Place {
                rank: 0,
                time: -task.virtual_start_time,
                sequence: u64::MAX - self.sequence,
                task_sid: task.sid.clone(),
            },
        };
        if let Some(queue) = self.queues.get_mut(&queue_sid) {
            queue.waiting.insert(place.clone());
        }
        if let Some(task) = self.tasks.get_mut(task_sid) {
            task.place = Some(place);
        }
    }

    fn unfile_task(&mut self, task_sid: &str) {
        let Some(task) = self.tasks.get_mut(task_sid) else {
            return;
        };
        let Some(place) = task.place.take() else {
            return;
        };
        if let Some(queue) = task
            .queue_sid
            .as_deref()
            .and_then(|q| self.queues.get_mut(q))
        {
            queue.waiting.remove(&place);
        }
    }

    /// Adds a new task and routes it. `module_targets` are the targets a workflow-rules module
    /// chose (with their stored form), or none to use the workflow's filters.
    pub fn add_task(
        &mut self,
        fx: &mut Effects,
        task: Task,
        module_targets: Option<(Arc<[Target]>, String)>,
    ) {
        let sid = task.sid.clone();
        let ttl = task.ttl_deadline();
        self.tasks.insert(sid.clone(), task);
        touch(&mut fx.tasks, &sid);
        fx.timers.push((ttl, Timer::Ttl(sid.clone())));
        if let Some(task) = self.tasks.get(&sid) {
            self.task_event(fx, "task.created", task, format!("Task {sid} created"));
        }
        self.enter_workflow(fx, &sid, module_targets);
    }

    /// Matches the task against its workflow and sends it to the first step.
    pub fn enter_workflow(
        &mut self,
        fx: &mut Effects,
        task_sid: &str,
        module_targets: Option<(Arc<[Target]>, String)>,
    ) {
        let Some(task) = self.tasks.get(task_sid) else {
            return;
        };
        // A task given its route at creation (`RoutingTarget`) has no workflow to consult.
        if task
            .route
            .as_ref()
            .is_some_and(|r| r.filter_index == ROUTING_TARGET)
        {
            if let Some(task) = self.tasks.get_mut(task_sid) {
                task.step_deadline = None;
            }
            self.enter_step(fx, task_sid, 0, None);
            return;
        }
        let Some(workflow) = task
            .workflow_sid
            .as_deref()
            .and_then(|w| self.workflows.get(w))
        else {
            return;
        };
        let configuration = workflow.configuration.clone();
        let route = match module_targets {
            Some((targets, stored)) => Some(Route {
                filter_index: MODULE_ROUTE,
                targets,
                target_index: 0,
                skipped: false,
                module_targets: Some(stored),
            }),
            None => match configuration.matching_filter(&task.attributes, 0) {
                Some(index) => Some(Route {
                    filter_index: index as i64,
                    targets: configuration.filters[index].targets.clone(),
                    target_index: 0,
                    skipped: false,
                    module_targets: None,
                }),
                None => configuration.default_target.clone().map(|targets| Route {
                    filter_index: DEFAULT_FILTER,
                    targets,
                    target_index: 0,
                    skipped: false,
                    module_targets: None,
                }),
            },
        };
        let filter_name = route.as_ref().map(|r| match r.filter_index {
            DEFAULT_FILTER => "Default Filter".to_string(),
            MODULE_ROUTE => "Workflow Rule Module".to_string(),
            index => configuration
                .filters
                .get(index as usize)
                .map_or_else(String::new, |f| f.name.clone()),
        });
        if let Some(task) = self.tasks.get(task_sid) {
            let mut data = self.task_data(task);
            if let Some(name) = &filter_name {
                data.text("workflow_filter_name", name);
            }
            let description = format!("Task {task_sid} entered its workflow");
            self.event(fx, "workflow.entered", "task", task_sid, description, data);
        }
        let Some(route) = route else {
            // Matches no filter and the workflow has no default: the task waits, unrouted, until
            // it is updated, canceled or its TTL ends, as the reference leaves such tasks.
            return;
        };
        if let Some(task) = self.tasks.get_mut(task_sid) {
            task.route = Some(route);
            task.step_deadline = None;
        }
        self.enter_step(fx, task_sid, 0, None);
    }

    /// Puts the task at step `index` of its route; `base` is when the step's time starts counting
    /// (the previous step's deadline, so steps add up on the task's age).
    fn enter_step(&mut self, fx: &mut Effects, task_sid: &str, index: usize, base: Option<i64>) {
        let now = self.now;
        let Some(task) = self.tasks.get_mut(task_sid) else {
            return;
        };
        let Some(route) = task.route.as_mut() else {
            return;
        };
        route.target_index = index;
        let Some(target) = route.targets.get(index).cloned() else {
            return;
        };
        let queue_changed = task.queue_sid.as_deref() != Some(target.queue.as_str());
        task.queue_sid = Some(target.queue.clone());
        if let Some(priority) = target.priority {
            task.priority = priority;
        }
        task.step_deadline = target
            .timeout
            .map(|t| base.unwrap_or(task.date_created).saturating_add(t * 1000));
        if queue_changed || task.task_queue_entered_date.is_none() {
            task.task_queue_entered_date = Some(now);
        }
        task.declined_by.clear();
        task.version += 1;
        task.date_updated = now;
        if let Some(deadline) = task.step_deadline {
            fx.timers
                .push((deadline, Timer::Step(task_sid.to_string())));
        }
        touch(&mut fx.tasks, task_sid);
        if let Some(task) = self.tasks.get(task_sid) {
            let mut data = self.task_data(task);
            data.number("target_index", index as i64);
            if let Some(expression) = &target.expression {
                data.text("target_expression", expression.text());
            }
            self.event(
                fx,
                "task-queue.entered",
                "task",
                task_sid,
                format!("Task {task_sid} entered queue {}", target.queue),
                data.clone(),
            );
            let by_workflow = task
                .route
                .as_ref()
                .is_some_and(|r| r.filter_index != ROUTING_TARGET);
            if by_workflow {
                self.event(
                    fx,
                    "workflow.target-matched",
                    "task",
                    task_sid,
                    format!("Task {task_sid} matched a workflow target"),
                    data,
                );
            }
        }
        self.file_task(task_sid);
        if self.route_task(fx, task_sid, None) == Some(0) {
            self.skip_if_nobody(fx, task_sid);
        }
    }

    fn queue_workers_scope(&self, queue_sid: &str) -> QueueWorkersScope {
        let mut counts: HashMap<String, i64> = HashMap::new();
        if let Some(queue) = self.queues.get(queue_sid) {
            for sid in &queue.members {
                if let Some(worker) = self.workers.get(sid) {
                    let key = if self.worker_available(worker) {
                        "available"
                    } else {
                        "unavailable"
                    };
                    *counts.entry(key.to_string()).or_default() += 1;
                    *counts.entry(worker.activity_sid.clone()).or_default() += 1;
                }
            }
        }
        QueueWorkersScope { counts }
    }

    /// Moves a pending task past its current step: a timeout (`skipped = false`) or a `skip_if`.
    pub fn advance(&mut self, fx: &mut Effects, task_sid: &str, skipped: bool) {
        let now = self.now;
        self.unfile_task(task_sid);
        let Some(task) = self.tasks.get(task_sid) else {
            return;
        };
        let Some(route) = task.route.clone() else {
            return;
        };
        if !skipped {
            self.task_event(
                fx,
                "task-queue.timeout",
                task,
                format!("Task {task_sid} timed out of its routing step"),
            );
        }
        let base = task.step_deadline.filter(|_| !skipped).or(Some(now));
        let next = route.target_index + 1;
        if next < route.targets.len() {
            self.enter_step(fx, task_sid, next, base);
            return;
        }
        // The filter's last step is over: the next matching filter, then (for a task that skipped
        // out) the default filter; otherwise the task leaves the workflow and is canceled.
        let configuration = task
            .workflow_sid
            .as_deref()
            .and_then(|w| self.workflows.get(w))
            .map(|w| w.configuration.clone());
        let mut next_route = None;
        if let Some(configuration) = configuration {
            if route.filter_index >= 0
                && let Some(index) =
                    configuration.matching_filter(&task.attributes, route.filter_index as usize + 1)
            {
                next_route = Some(Route {
                    filter_index: index as i64,
                    targets: configuration.filters[index].targets.clone(),
                    target_index: 0,
                    skipped: false,
                    module_targets: None,
                });
            } else if (skipped || route.skipped)
                && route.filter_index != DEFAULT_FILTER
                && let Some(targets) = configuration.default_target.clone()
            {
                next_route = Some(Route {
                    filter_index: DEFAULT_FILTER,
                    targets,
                    target_index: 0,
                    skipped: true,
                    module_targets: None,
                });
            }
        }
        match next_route {
            Some(route) => {
                if let Some(task) = self.tasks.get_mut(task_sid) {
                    task.route = Some(route);
                }
                self.enter_step(fx, task_sid, 0, base);
            }
            None => {
                let (event, reason) = if skipped {
                    ("workflow.skipped", "Workflow Skipped")
                } else {
                    ("workflow.timeout", "Workflow Timeout")
                };
                if let Some(task) = self.tasks.get(task_sid) {
                    self.task_event(
                        fx,
                        event,
                        task,
                        format!("Task {task_sid} left its workflow"),
                    );
                }
                self.cancel_task(fx, task_sid, reason);
            }
        }
    }

    /// Whether a worker may take this task at its current step.
    fn fits(&self, task: &Task, target: &Target, worker: &Worker) -> bool {
        let known = match &target.known_worker {
            Some(KnownWorker::Sid(path)) => Some((
                follow(&task.attributes, path).and_then(Value::as_str),
                worker.sid.as_str(),
            )),
            Some(KnownWorker::FriendlyName(path)) => Some((
                follow(&task.attributes, path).and_then(Value::as_str),
                worker.friendly_name.as_str(),
            )),
            Some(KnownWorker::Given { sid, .. }) => Some((Some(sid.as_str()), worker.sid.as_str())),
            None => None,
        };
        if let Some((wanted, actual)) = known
            && wanted != Some(actual)
        {
            return false;
        }
        match &target.expression {
            Some(expression) => expression.evaluate(&TargetScope {
                task: &task.attributes,
                worker,
                activity_name: self.activity_name(&worker.activity_sid),
                channels: &self.channels,
            }),
            None => true,
        }
    }

    /// Makes the queue's ready set for a channel (which it does not have yet), the first time a
    /// task of that channel looks for a worker there, from the queue's members that are ready on
    /// it; filing keeps it up to date from then on.
    fn open_ready_set(&mut self, queue_sid: &str, channel_sid: &str) {
        let Some(queue) = self.queues.get(queue_sid) else {
            return;
        };
        let ready: BTreeSet<ReadyKey> = queue
            .members
            .iter()
            .filter_map(|sid| self.workers.get(sid))
            .filter(|worker| self.ready_channels(worker).contains(&channel_sid))
            .filter_map(|worker| worker.filed_as.clone())
            .collect();
        if let Some(queue) = self.queues.get_mut(queue_sid) {
            queue.ready.insert(channel_sid.to_string(), ready);
        }
    }

    /// The workers that may take the task now, best first. `scores` (from a workflow-rules module)
    /// ranks them when given: the highest score wins, workers scored none are left out, ties keep
    /// the idle order.
    pub fn candidates(
        &mut self,
        task_sid: &str,
        scores: Option<&HashMap<String, f64>>,
        limit: usize,
    ) -> Vec<String> {
        let unopened = self.tasks.get(task_sid).and_then(|task| {
            let target = task.route.as_ref().and_then(Route::target)?;
            let queue = self.queues.get(&target.queue)?;
            (!queue.ready.contains_key(&task.task_channel_sid))
                .then(|| (target.queue.clone(), task.task_channel_sid.clone()))
        });
        if let Some((queue, channel)) = unopened {
            self.open_ready_set(&queue, &channel);
        }
        let Some(task) = self.tasks.get(task_sid) else {
            return Vec::new();
        };
        let Some(target) = task.route.as_ref().and_then(Route::target) else {
            return Vec::new();
        };
        let Some(queue) = self.queues.get(&target.queue) else {
            return Vec::new();
        };
        let Some(ready) = queue.ready.get(&task.task_channel_sid) else {
            return Vec::new();
        };
        let holding: HashSet<&str> = self
            .reservations_of(&task.sid)
            .map(|r| r.worker_sid.as_str())
            .collect();
        // A task created for one worker with `IgnoreCapacity` goes to that worker whatever its
        // activity, capacity or queues.
        if let Some(KnownWorker::Given {
            sid,
            ignore_capacity: true,
        }) = &target.known_worker
        {
            let free = self.workers.contains_key(sid) && !holding.contains(sid.as_str());
            return if free && limit > 0 {
                vec![sid.clone()]
            } else {
                Vec::new()
            };
        }
        let full_scan = target.order_by.is_some() || scores.is_some();
        let mut fresh: Vec<&Worker> = Vec::new();
        let mut declined: Vec<&Worker> = Vec::new();
        for (_, sid) in ready {
            let sid: &str = sid;
            if holding.contains(sid) {
                continue;
            }
            let Some(worker) = self.workers.get(sid) else {
                continue;
            };
            if !self.fits(task, target, worker) {
                continue;
            }
            if let Some(scores) = scores
                && !scores.contains_key(sid)
            {
                continue;
            }
            if task.declined_by.iter().any(|declined| declined == sid) {
                declined.push(worker);
            } else {
                fresh.push(worker);
                if !full_scan && fresh.len() >= limit {
                    break;
                }
            }
        }
        let rank = |a: &Worker, b: &Worker| {
            let by_score = scores.map_or(Ordering::Equal, |scores| {
                let score = |w: &Worker| scores.get(&w.sid).copied().unwrap_or(f64::MIN);
                score(b).total_cmp(&score(a))
            });
            by_score.then_with(|| {
                target
                    .order_by
                    .as_ref()
                    .map_or(Ordering::Equal, |o| o.compare(&a.attributes, &b.attributes))
            })
        };
        // Workers who declined the task get it again only when nobody else can take it.
        let chosen = if fresh.is_empty() {
            declined.truncate(limit);
            declined
        } else if full_scan {
            best_first(fresh, limit, rank)
        } else {
            fresh
        };
        chosen.into_iter().map(|w| w.sid.clone()).collect()
    }

    /// Whether a task's workflow scores workers with a module (the caller then asks it first).
    pub fn scoring_module(&self, task_sid: &str) -> Option<String> {
        let task = self.tasks.get(task_sid)?;
        let workflow = self.workflows.get(task.workflow_sid.as_deref()?)?;
        workflow.configuration.module.clone()
    }

    /// Reserves workers for a pending task at its step; returns how many reservations it made, or
    /// `None` when the workflow's module must score the workers first (the task is then listed in
    /// [`Effects::to_score`]).
    pub fn route_task(
        &mut self,
        fx: &mut Effects,
        task_sid: &str,
        scores: Option<&HashMap<String, f64>>,
    ) -> Option<usize> {
        let task = self.tasks.get(task_sid)?;
        if task.status != TaskStatus::Pending && task.status != TaskStatus::Reserved {
            return Some(0);
        }
        if scores.is_none() && self.scoring_module(task_sid).is_some() {
            touch(&mut fx.to_score, task_sid);
            return None;
        }
        let Some(queue) = task.queue_sid.as_deref().and_then(|q| self.queues.get(q)) else {
            return Some(0);
        };
        let live = self
            .reservations_of(task_sid)
            .filter(|r| r.status == ReservationStatus::Pending)
            .count() as i64;
        let wanted = (queue.max_reserved_workers - live).max(0) as usize;
        if wanted == 0 {
            return Some(0);
        }
        let workers = self.candidates(task_sid, scores, wanted);
        for worker_sid in &workers {
            self.reserve(fx, task_sid, worker_sid);
        }
        Some(workers.len())
    }

    /// Routes a task with the scores its workflow's module gave (none when the module failed:
    /// the idle order then decides), and applies the step's `skip_if` when nobody was reserved.
    pub fn route_scored(
        &mut self,
        fx: &mut Effects,
        task_sid: &str,
        scores: Option<HashMap<String, f64>>,
    ) {
        let reserved = match scores {
            Some(scores) => self.route_task(fx, task_sid, Some(&scores)),
            None => {
                let all = self.candidates(task_sid, None, usize::MAX);
                let scores: HashMap<String, f64> = all.into_iter().map(|w| (w, 0.0)).collect();
                self.route_task(fx, task_sid, Some(&scores))
            }
        };
        if reserved == Some(0) {
            self.skip_if_nobody(fx, task_sid);
        }
    }

    fn skip_if_nobody(&mut self, fx: &mut Effects, task_sid: &str) {
        let Some(target) = self
            .tasks
            .get(task_sid)
            .filter(|t| t.status == TaskStatus::Pending)
            .and_then(|t| t.route.as_ref())
            .and_then(Route::target)
            .cloned()
        else {
            return;
        };
        if let Some(skip_if) = &target.skip_if
            && skip_if.evaluate(&self.queue_workers_scope(&target.queue))
        {
            self.advance(fx, task_sid, true);
        }
    }

    /// Offers a worker who may have become able to take work the best waiting task it fits, again
    /// while it has capacity left.
    pub fn offer_worker(&mut self, fx: &mut Effects, worker_sid: &str) {
        loop {
            let Some(worker) = self.workers.get(worker_sid) else {
                return;
            };
            let ready = self.ready_channels(worker);
            if ready.is_empty() {
                return;
            }
            let lifo_first = self.workspace.prioritize_queue_order == "LIFO";
            let mut best: Option<((bool, i64, i64), String)> = None;
            for queue_sid in &worker.queues {
                let Some(queue) = self.queues.get(queue_sid) else {
                    continue;
                };
                for place in queue.waiting.iter().take(WAITING_SCAN_LIMIT) {
                    let Some(task) = self.tasks.get(&place.task_sid) else {
                        continue;
                    };
                    if !ready.contains(&task.task_channel_sid.as_str())
                        || task.declined_by.iter().any(|s| s == worker_sid)
                        || fx.to_score.contains(&task.sid)
                        || self
                            .reservations_of(&task.sid)
                            .any(|r| r.worker_sid == worker_sid)
                    {
                        continue;
                    }
                    let Some(target) = task.route.as_ref().and_then(Route::target) else {
                        continue;
                    };
                    if !self.fits(task, target, worker) {
                        continue;
                    }
                    let is_lifo = queue.task_order == TaskOrder::Lifo;
                    let key = (
                        is_lifo != lifo_first,
                        -task.priority,
                        task.virtual_start_time,
                    );
                    if best.as_ref().is_none_or(|(k, _)| key < *k) {
                        best = Some((key, task.sid.clone()));
                    }
                    break;
                }
            }
            let Some((_, task_sid)) = best else {
                return;
            };
            // A module scores the workers of its workflow's tasks: the task is routed again with
            // the scores instead of going straight to this worker.
            if self.scoring_module(&task_sid).is_some() {
                touch(&mut fx.to_score, &task_sid);
                continue;
            }
            self.reserve(fx, &task_sid, worker_sid);
        }
    }

    /// Creates a pending reservation of `worker` for `task`.
    fn reserve(&mut self, fx: &mut Effects, task_sid: &str, worker_sid: &str) {
        let now = self.now;
        let Some(task) = self.tasks.get(task_sid) else {
            return;
        };
        let Some(queue_sid) = task.queue_sid.clone() else {
            return;
        };
        let channel_sid = task.task_channel_sid.clone();
        let timeout = task
            .workflow_sid
            .as_deref()
            .and_then(|w| self.workflows.get(w))
            .map_or(DEFAULT_RESERVATION_TIMEOUT, |w| w.task_reservation_timeout);
        let reservation_activity = self
            .queues
            .get(&queue_sid)
            .and_then(|q| q.reservation_activity_sid.clone());
        let Some(worker) = self.workers.get(worker_sid) else {
            return;
        };
        let reservation = Reservation {
            sid: new_sid("WR"),
            task_sid: task_sid.to_string(),
            worker_sid: worker_sid.to_string(),
            queue_sid,
            task_channel_sid: channel_sid.clone(),
            status: ReservationStatus::Pending,
            timeout_at: Some(now.saturating_add(timeout.saturating_mul(1000))),
            previous_activity_sid: Some(worker.activity_sid.clone()),
            version: 0,
            date_created: now,
            date_updated: now,
        };
        self.unfile(worker_sid);
        if let Some(worker) = self.workers.get_mut(worker_sid) {
            if let Some(channel) = worker.channel_mut(&channel_sid) {
                channel.active += 1;
            }
            worker.idle_since = now;
        }
        self.file(worker_sid);
        // The worker's row is not written for its new idle time: the reservation row records
        // it, and the loader takes the later of the two. A row rewrite here would dirty a random
        // page of the workers table on every task.
        self.unfile_task(task_sid);
        if let Some(task) = self.tasks.get_mut(task_sid) {
            task.status = TaskStatus::Reserved;
            task.assignment_count += 1;
            task.version += 1;
            task.date_updated = now;
        }
        touch(&mut fx.tasks, task_sid);
        let sid = reservation.sid.clone();
        if let Some(deadline) = reservation.timeout_at {
            fx.timers.push((deadline, Timer::Reservation(sid.clone())));
        }
        self.reservations.insert(sid.clone(), reservation);
        if let Some(task) = self.tasks.get_mut(task_sid) {
            task.live.push(sid.clone());
        }
        touch(&mut fx.reservations, &sid);
        self.reservation_event(fx, "reservation.created", &sid);
        if !self.workspace.multi_task_enabled
            && let Some(activity) = reservation_activity
        {
            self.set_activity(fx, worker_sid, &activity);
        }
        // Most workflows have no assignment callback: their reservations wait for the worker's
        // answer over the API, with nothing to send.
        let calls_back = self
            .tasks
            .get(task_sid)
            .and_then(|t| t.workflow_sid.as_deref())
            .and_then(|w| self.workflows.get(w))
            .is_some_and(|w| {
                w.assignment_callback_url.is_some() || w.fallback_assignment_callback_url.is_some()
            });
        if calls_back {
            fx.offers.push(sid);
        }
    }

    /// Gives a reservation's capacity back to its worker.
    fn release(&mut self, reservation_sid: &str, was: ReservationStatus) {
        let Some(reservation) = self.reservations.get(reservation_sid) else {
            return;
        };
        let worker_sid = reservation.worker_sid.clone();
        let channel_sid = reservation.task_channel_sid.clone();
        self.unfile(&worker_sid);
        if let Some(worker) = self.workers.get_mut(&worker_sid)
            && let Some(channel) = worker.channel_mut(&channel_sid)
        {
            channel.active = (channel.active - 1).max(0);
            if matches!(
                was,
                ReservationStatus::Accepted | ReservationStatus::Wrapping
            ) {
                channel.assigned = (channel.assigned - 1).max(0);
            }
        }
        self.file(&worker_sid);
    }

    fn set_reservation_status(
        &mut self,
        fx: &mut Effects,
        reservation_sid: &str,
        status: ReservationStatus,
    ) -> Option<ReservationStatus> {
        let now = self.now;
        let reservation = self.reservations.get_mut(reservation_sid)?;
        let was = reservation.status;
        reservation.status = status;
        reservation.version += 1;
        reservation.date_updated = now;
        if status != ReservationStatus::Pending {
            reservation.timeout_at = None;
        }
        touch(&mut fx.reservations, reservation_sid);
        if !status.is_live() {
            self.release(reservation_sid, was);
        } else if status == ReservationStatus::Accepted {
            let worker_sid = reservation.worker_sid.clone();
            let channel_sid = reservation.task_channel_sid.clone();
            if let Some(channel) = self
                .workers
                .get_mut(&worker_sid)
                .and_then(|w| w.channel_mut(&channel_sid))
            {
                channel.assigned += 1;
            }
        }
        Some(was)
    }

    fn reservation_worker(&self, reservation_sid: &str) -> Option<String> {
        self.reservations
            .get(reservation_sid)
            .map(|r| r.worker_sid.clone())
    }

    /// A worker accepts: the task is assigned and every other pending reservation of it rescinded.
    pub fn accept(&mut self, fx: &mut Effects, reservation_sid: &str) -> ApiResult<()> {
        let reservation = self.pending(reservation_sid)?;
        let task_sid = reservation.task_sid.clone();
        let worker_sid = reservation.worker_sid.clone();
        let queue_sid = reservation.queue_sid.clone();
        self.set_reservation_status(fx, reservation_sid, ReservationStatus::Accepted);
        let now = self.now;
        if let Some(task) = self.tasks.get_mut(&task_sid) {
            task.status = TaskStatus::Assigned;
            task.version += 1;
            task.date_updated = now;
            task.step_deadline = None;
        }
        touch(&mut fx.tasks, &task_sid);
        if let Some((description, mut data)) = self.reservation_data(reservation_sid) {
            // How long the task waited in the queue that found its worker, for that queue's
            // `wait_duration_in_queue_until_accepted`: `task_age` counts from its creation.
            if let Some(entered) = self
                .tasks
                .get(&task_sid)
                .and_then(|t| t.task_queue_entered_date)
            {
                data.number("task_age_in_queue", (now - entered).max(0) / 1000);
            }
            let event = "reservation.accepted";
            self.event(fx, event, "reservation", reservation_sid, description, data);
        }
        let others: Vec<String> = self
            .reservations_of(&task_sid)
            .filter(|r| r.sid != reservation_sid && r.status == ReservationStatus::Pending)
            .map(|r| r.sid.clone())
            .collect();
        for other in others {
            self.set_reservation_status(fx, &other, ReservationStatus::Rescinded);
            self.reservation_event(fx, "reservation.rescinded", &other);
            if let Some(worker) = self.reservation_worker(&other) {
                self.offer_worker(fx, &worker);
            }
        }
        if !self.workspace.multi_task_enabled
            && let Some(activity) = self
                .queues
                .get(&queue_sid)
                .and_then(|q| q.assignment_activity_sid.clone())
        {
            self.set_activity(fx, &worker_sid, &activity);
        }
        Ok(())
    }

    /// Checks a reservation is pending (an instruction can only answer a pending one).
    pub fn pending_reservation(&self, reservation_sid: &str) -> ApiResult<()> {
        self.pending(reservation_sid).map(|_| ())
    }

    fn pending(&self, reservation_sid: &str) -> ApiResult<&Reservation> {
        let reservation = self
            .reservations
            .get(reservation_sid)
            .ok_or_else(|| not_pending(reservation_sid, None))?;
        if reservation.status != ReservationStatus::Pending {
            return Err(not_pending(reservation_sid, Some(reservation.status)));
        }
        Ok(reservation)
    }

    /// A worker rejects: it moves to `activity_sid` (or back to the activity it had before the
    /// reservation moved it), and the task is routed again.
    pub fn reject(
        &mut self,
        fx: &mut Effects,
        reservation_sid: &str,
        activity_sid: Option<&str>,
    ) -> ApiResult<()> {
        let reservation = self.pending(reservation_sid)?;
        let task_sid = reservation.task_sid.clone();
        let worker_sid = reservation.worker_sid.clone();
        let previous = reservation.previous_activity_sid.clone();
        self.set_reservation_status(fx, reservation_sid, ReservationStatus::Rejected);
        self.reservation_event(fx, "reservation.rejected", reservation_sid);
        let moved_by_reservation = self
            .workers
            .get(&worker_sid)
            .is_some_and(|w| Some(&w.activity_sid) != previous.as_ref());
        match activity_sid {
            Some(activity) => self.set_activity(fx, &worker_sid, activity),
            None if moved_by_reservation => {
                if let Some(previous) = previous {
                    self.set_activity(fx, &worker_sid, &previous);
                }
            }
            None => {}
        }
        if let Some(task) = self.tasks.get_mut(&task_sid) {
            task.declined_by.push(worker_sid.clone());
        }
        self.reservation_ended(fx, &task_sid);
        self.offer_worker(fx, &worker_sid);
        Ok(())
    }

    /// A pending reservation's time is up: the worker goes to the workspace's timeout activity
    /// and the task is routed again.
    pub fn time_out(&mut self, fx: &mut Effects, reservation_sid: &str) {
        let Ok(reservation) = self.pending(reservation_sid) else {
            return;
        };
        let task_sid = reservation.task_sid.clone();
        let worker_sid = reservation.worker_sid.clone();
        self.set_reservation_status(fx, reservation_sid, ReservationStatus::Timeout);
        self.reservation_event(fx, "reservation.timeout", reservation_sid);
        if let Some(activity) = self.workspace.timeout_activity_sid.clone() {
            self.set_activity(fx, &worker_sid, &activity);
        }
        if let Some(task) = self.tasks.get_mut(&task_sid) {
            task.declined_by.push(worker_sid.clone());
        }
        self.reservation_ended(fx, &task_sid);
        self.offer_worker(fx, &worker_sid);
    }

    /// After a reservation ended without acceptance: when none is left pending the task is pending
    /// again and is routed anew (to the next step if its step's time is up).
    fn reservation_ended(&mut self, fx: &mut Effects, task_sid: &str) {
        let now = self.now;
        let still_reserved = self
            .reservations_of(task_sid)
            .any(|r| r.status == ReservationStatus::Pending);
        let Some(task) = self.tasks.get_mut(task_sid) else {
            return;
        };
        if still_reserved || task.status != TaskStatus::Reserved {
            return;
        }
        task.status = TaskStatus::Pending;
        task.version += 1;
        task.date_updated = now;
        let count = task.assignment_count;
        let step_over = task.step_deadline.is_some_and(|d| d <= now);
        touch(&mut fx.tasks, task_sid);
        if count >= MAX_ASSIGNMENTS {
            self.cancel_task(fx, task_sid, "Max assignment count exceeded");
            return;
        }
        // A task sent to one worker has nobody else to go to: once that worker has declined it
        // (rejected it, or let the reservation time out) it ends, rather than wait unseen.
        let declined_target = self
            .tasks
            .get(task_sid)
            .and_then(|t| t.route.as_ref())
            .is_some_and(|r| r.given_worker().is_some());
        if declined_target {
            self.cancel_task(fx, task_sid, DECLINED_BY_TARGET);
            return;
        }
        self.file_task(task_sid);
        if step_over {
            self.advance(fx, task_sid, false);
        } else {
            self.route_task(fx, task_sid, None);
        }
    }

    /// Cancels a task not yet assigned; its pending reservations are canceled.
    pub fn cancel_task(&mut self, fx: &mut Effects, task_sid: &str, reason: &str) {
        let now = self.now;
        self.unfile_task(task_sid);
        let reservations: Vec<String> = self
            .reservations_of(task_sid)
            .filter(|r| r.status == ReservationStatus::Pending)
            .map(|r| r.sid.clone())
            .collect();
        for sid in &reservations {
            self.set_reservation_status(fx, sid, ReservationStatus::Canceled);
            self.reservation_event(fx, "reservation.canceled", sid);
        }
        let Some(task) = self.tasks.get_mut(task_sid) else {
            return;
        };
        task.status = TaskStatus::Canceled;
        task.reason = Some(reason.to_string());
        task.version += 1;
        task.date_updated = now;
        task.step_deadline = None;
        touch(&mut fx.tasks, task_sid);
        if let Some(task) = self.tasks.get(task_sid) {
            let mut data = self.task_data(task);
            data.text("task_canceled_reason", reason);
            self.event(
                fx,
                "task.canceled",
                "task",
                task_sid,
                format!("Task {task_sid} canceled: {reason}"),
                data,
            );
        }
        for sid in reservations {
            if let Some(worker) = self.reservation_worker(&sid) {
                self.offer_worker(fx, &worker);
            }
        }
    }

    /// Moves an assigned task (and its accepted reservations) to wrapping.
    pub fn wrap_task(&mut self, fx: &mut Effects, task_sid: &str) {
        let now = self.now;
        let accepted: Vec<String> = self
            .reservations_of(task_sid)
            .filter(|r| r.status == ReservationStatus::Accepted)
            .map(|r| r.sid.clone())
            .collect();
        for sid in &accepted {
            self.set_reservation_status(fx, sid, ReservationStatus::Wrapping);
            self.reservation_event(fx, "reservation.wrapup", sid);
        }
        if let Some(task) = self.tasks.get_mut(task_sid) {
            task.status = TaskStatus::Wrapping;
            task.version += 1;
            task.date_updated = now;
        }
        touch(&mut fx.tasks, task_sid);
        if let Some(task) = self.tasks.get(task_sid) {
            self.task_event(
                fx,
                "task.wrapup",
                task,
                format!("Task {task_sid} wrapping up"),
            );
        }
    }

    /// Completes an assigned or wrapping task; its workers' capacity comes back.
    pub fn complete_task(&mut self, fx: &mut Effects, task_sid: &str, reason: &str) {
        let now = self.now;
        let held: Vec<String> = self
            .reservations_of(task_sid)
            .filter(|r| {
                matches!(
                    r.status,
                    ReservationStatus::Accepted | ReservationStatus::Wrapping
                )
            })
            .map(|r| r.sid.clone())
            .collect();
        if let Some(task) = self.tasks.get_mut(task_sid) {
            task.status = TaskStatus::Completed;
            task.reason = Some(reason.to_string());
            task.version += 1;
            task.date_updated = now;
        }
        touch(&mut fx.tasks, task_sid);
        if let Some(task) = self.tasks.get(task_sid) {
            let mut data = self.task_data(task);
            data.text("task_completed_reason", reason);
            self.event(
                fx,
                "task.completed",
                "task",
                task_sid,
                format!("Task {task_sid} completed: {reason}"),
                data,
            );
        }
        for sid in &held {
            self.set_reservation_status(fx, sid, ReservationStatus::Completed);
            self.reservation_event(fx, "reservation.completed", sid);
        }
        for sid in held {
            if let Some(worker) = self.reservation_worker(&sid) {
                self.offer_worker(fx, &worker);
            }
        }
    }

    /// Removes a task whatever its state (its reservations end as canceled).
    pub fn delete_task(&mut self, fx: &mut Effects, task_sid: &str) {
        self.unfile_task(task_sid);
        let live: Vec<String> = self
            .reservations_of(task_sid)
            .map(|r| r.sid.clone())
            .collect();
        for sid in &live {
            self.set_reservation_status(fx, sid, ReservationStatus::Canceled);
        }
        if let Some(task) = self.tasks.get(task_sid) {
            self.task_event(fx, "task.deleted", task, format!("Task {task_sid} deleted"));
        }
        self.tasks.remove(task_sid);
        fx.tasks.retain(|s| s != task_sid);
        fx.reservations.retain(|s| !live.contains(s));
        for sid in &live {
            self.reservations.remove(sid);
        }
        fx.change.extend(store::delete_task(task_sid));
    }

    /// Changes a task's attributes; a task still waiting is matched against its workflow again.
    pub fn update_task_attributes(
        &mut self,
        fx: &mut Effects,
        task_sid: &str,
        text: String,
        value: Value,
    ) {
        let now = self.now;
        let rerouted = self
            .tasks
            .get(task_sid)
            .is_some_and(|t| t.status == TaskStatus::Pending);
        if rerouted {
            self.unfile_task(task_sid);
        }
        if let Some(task) = self.tasks.get_mut(task_sid) {
            task.attributes_text = text;
            task.attributes = value;
            task.version += 1;
            task.date_updated = now;
        }
        touch(&mut fx.tasks, task_sid);
        if let Some(task) = self.tasks.get(task_sid) {
            self.task_event(fx, "task.updated", task, format!("Task {task_sid} updated"));
        }
        if rerouted {
            self.enter_workflow(fx, task_sid, None);
        }
    }

    /// Changes what orders a task in its queue: its priority, its virtual start time, or both.
    /// A waiting task takes its new place at once.
    pub fn reorder_task(
        &mut self,
        fx: &mut Effects,
        task_sid: &str,
        priority: Option<i64>,
        virtual_start_time: Option<i64>,
    ) {
        let now = self.now;
        let waiting = self.tasks.get(task_sid).is_some_and(|t| t.place.is_some());
        if waiting {
            self.unfile_task(task_sid);
        }
        if let Some(task) = self.tasks.get_mut(task_sid) {
            if let Some(priority) = priority {
                task.priority = priority;
            }
            if let Some(time) = virtual_start_time {
                task.virtual_start_time = time;
            }
            task.version += 1;
            task.date_updated = now;
        }
        if waiting {
            self.file_task(task_sid);
        }
        touch(&mut fx.tasks, task_sid);
    }

    /// Changes a worker's capacity or availability on one task channel.
    pub fn set_worker_channel(
        &mut self,
        fx: &mut Effects,
        worker_sid: &str,
        channel_sid: &str,
        capacity: Option<i64>,
        available: Option<bool>,
        now: i64,
    ) {
        self.unfile(worker_sid);
        let ws = self.workspace.sid.clone();
        let mut changed = None;
        if let Some(channel) = self
            .workers
            .get_mut(worker_sid)
            .and_then(|w| w.channels.iter_mut().find(|c| c.sid == channel_sid))
        {
            if let Some(capacity) = capacity {
                channel.capacity = capacity;
            }
            if let Some(available) = available {
                channel.available = available;
            }
            channel.date_updated = now;
            changed = Some(channel.clone());
        }
        self.file(worker_sid);
        let Some(channel) = changed else { return };
        fx.change
            .push(store::worker_channel_row(&ws, worker_sid, &channel));
        if capacity.is_some() {
            self.worker_event(fx, "worker.capacity.update", worker_sid);
        }
        if available.is_some() {
            self.worker_event(fx, "worker.channel.availability.update", worker_sid);
        }
        self.offer_worker(fx, worker_sid);
    }

    /// The dequeue instruction: accepts the reservation and asks the queues to connect the task's
    /// waiting caller to the worker (`to`, by default the worker's `contact_uri`).
    pub fn dequeue(
        &mut self,
        fx: &mut Effects,
        reservation_sid: &str,
        instruction: &Value,
    ) -> ApiResult<()> {
        let reservation = self.pending(reservation_sid)?;
        let task_sid = reservation.task_sid.clone();
        let worker_sid = reservation.worker_sid.clone();
        let call_sid = self
            .tasks
            .get(&task_sid)
            .and_then(|t| t.call_sid.clone())
            .ok_or_else(|| {
                ApiError::invalid(
                    "The dequeue instruction needs a task made by <Enqueue workflowSid>: this task has no waiting call",
                )
            })?;
        let contact = self
            .workers
            .get(&worker_sid)
            .and_then(|w| w.attributes.get("contact_uri"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let to = instruction
            .get("to")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(contact)
            .ok_or_else(|| {
                ApiError::invalid(
                    "The dequeue instruction needs `to` (DequeueTo), or a contact_uri attribute on the worker",
                )
            })?;
        let timeout_seconds = instruction
            .get("timeout")
            .and_then(|t| {
                t.as_i64()
                    .or_else(|| t.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(60)
            .clamp(1, 999);
        let post_work_activity_sid = instruction
            .get("post_work_activity_sid")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(activity) = &post_work_activity_sid
            && self.activity(activity).is_none()
        {
            return Err(ApiError::invalid(format!(
                "post_work_activity_sid {activity} is not an activity of this workspace"
            )));
        }
        let status_callback = instruction
            .get("status_callback_url")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_string);
        if let Some(url) = &status_callback {
            crate::telephony::resources::check_callback_url("status_callback_url", url)?;
        }
        let status_callback_events = callback_events(instruction.get("status_callback_events"))?;
        self.accept(fx, reservation_sid)?;
        fx.dequeues.push(Dequeue {
            reservation_sid: reservation_sid.to_string(),
            worker_sid,
            call_sid,
            to,
            from: instruction
                .get("from")
                .and_then(Value::as_str)
                .map(str::to_string),
            timeout_seconds,
            post_work_activity_sid,
            status_callback,
            status_callback_events,
        });
        Ok(())
    }

    /// Pending reservations of a worker are rejected (the worker went to an unavailable activity
    /// with RejectPendingReservations).
    pub fn reject_pending_of(&mut self, fx: &mut Effects, worker_sid: &str) {
        let pending: Vec<String> = self
            .reservations
            .values()
            .filter(|r| r.worker_sid == worker_sid && r.status == ReservationStatus::Pending)
            .map(|r| r.sid.clone())
            .collect();
        for sid in pending {
            let _ = self.reject(fx, &sid, None);
        }
    }

    /// A timer fired: acts only when the state it was armed for still holds.
    pub fn fire(&mut self, fx: &mut Effects, timer: &Timer, deadline: i64) {
        match timer {
            Timer::Reservation(sid) => {
                if self
                    .reservations
                    .get(sid)
                    .is_some_and(|r| r.timeout_at == Some(deadline))
                {
                    self.time_out(fx, sid);
                }
            }
            Timer::Step(task_sid) => {
                if let Some(task) = self.tasks.get(task_sid)
                    && task.step_deadline == Some(deadline)
                    && task.status == TaskStatus::Pending
                {
                    self.advance(fx, task_sid, false);
                }
            }
            Timer::Ttl(task_sid) => {
                if let Some(task) = self.tasks.get(task_sid)
                    && task.ttl_deadline() == deadline
                    && matches!(task.status, TaskStatus::Pending | TaskStatus::Reserved)
                {
                    self.cancel_task(fx, task_sid, "Task TTL Exceeded");
                }
            }
        }
    }

    /// Every deadline the workspace's live state holds, for arming timers after a restart.
    pub fn deadlines(&self) -> Vec<(i64, Timer)> {
        let mut deadlines = Vec::new();
        for task in self.tasks.values() {
            if matches!(task.status, TaskStatus::Pending | TaskStatus::Reserved) {
                deadlines.push((task.ttl_deadline(), Timer::Ttl(task.sid.clone())));
            }
            if let Some(step) = task.step_deadline {
                deadlines.push((step, Timer::Step(task.sid.clone())));
            }
        }
        for reservation in self.reservations.values() {
            if let Some(at) = reservation.timeout_at {
                deadlines.push((at, Timer::Reservation(reservation.sid.clone())));
            }
        }
        deadlines
    }

    /// Rebuilds the indexes after loading: queue memberships, ready sets, waiting sets and the
    /// capacity live reservations hold.
    pub fn rebuild(&mut self) {
        let reservations: Vec<Reservation> = self.reservations.values().cloned().collect();
        for mut reservation in reservations {
            if let Some(task) = self.tasks.get(&reservation.task_sid) {
                reservation.task_channel_sid = task.task_channel_sid.clone();
            }
            if let Some(channel) = self
                .workers
                .get_mut(&reservation.worker_sid)
                .and_then(|w| w.channel_mut(&reservation.task_channel_sid))
            {
                channel.active += 1;
                if reservation.status != ReservationStatus::Pending {
                    channel.assigned += 1;
                }
            }
            if let Some(task) = self.tasks.get_mut(&reservation.task_sid) {
                task.live.push(reservation.sid.clone());
            }
            self.reservations
                .insert(reservation.sid.clone(), reservation);
        }
        let workers: Vec<String> = self.workers.keys().cloned().collect();
        for sid in workers {
            self.recompute_membership(&sid);
        }
        let mut waiting: Vec<(i64, String)> = self
            .tasks
            .values()
            .filter(|t| t.status == TaskStatus::Pending)
            .map(|t| (t.date_created, t.sid.clone()))
            .collect();
        waiting.sort();
        for (_, sid) in waiting {
            self.file_task(&sid);
        }
    }

    /// Realtime figures of one queue.
    pub fn queue_counts(&self, queue_sid: &str) -> QueueCounts {
        let mut counts = QueueCounts::default();
        for task in self.tasks.values() {
            if task.queue_sid.as_deref() != Some(queue_sid) {
                continue;
            }
            counts.add(task, self.now);
        }
        if let Some(queue) = self.queues.get(queue_sid) {
            for sid in &queue.members {
                if let Some(worker) = self.workers.get(sid) {
                    counts.eligible += 1;
                    if self.worker_available(worker) {
                        counts.available += 1;
                    }
                    *counts
                        .activities
                        .entry(worker.activity_sid.clone())
                        .or_default() += 1;
                }
            }
        }
        counts
    }
}

/// Realtime task and worker figures.
#[derive(Debug, Default, Clone)]
pub struct QueueCounts {
    pub by_status: HashMap<&'static str, i64>,
    pub by_priority: HashMap<i64, i64>,
    pub total: i64,
    pub longest_waiting: Option<(i64, String)>,
    pub eligible: i64,
    pub available: i64,
    pub activities: HashMap<String, i64>,
}

impl QueueCounts {
    pub fn add(&mut self, task: &Task, now: i64) {
        self.total += 1;
        *self.by_status.entry(task.status.as_str()).or_default() += 1;
        *self.by_priority.entry(task.priority).or_default() += 1;
        if matches!(task.status, TaskStatus::Pending | TaskStatus::Reserved) {
            let age = task.age_seconds(now);
            if self
                .longest_waiting
                .as_ref()
                .is_none_or(|(oldest, _)| age > *oldest)
            {
                self.longest_waiting = Some((age, task.sid.clone()));
            }
        }
    }
}

fn not_pending(sid: &str, status: Option<ReservationStatus>) -> ApiError {
    let status = status.map_or("finished", |s| s.as_str());
    ApiError::new(
        Code::ReservationNotPending,
        format!(
            "Reservation {sid} is {status}, not pending: only a pending reservation can be accepted or rejected"
        ),
    )
}

/// A dequeue's `status_callback_events`: call progress events, as a list or as text separated by
/// commas or spaces (`DequeueStatusCallbackEvent` repeated arrives joined by commas).
fn callback_events(value: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let names: Vec<String> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => text
            .split([',', ' '])
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string).unwrap_or_default())
            .collect(),
        Some(other) => vec![other.to_string()],
    };
    for name in &names {
        if !crate::telephony::CALLBACK_EVENTS.contains(&name.as_str()) {
            return Err(ApiError::invalid(format!(
                "status_callback_events {name:?} is not one of initiated, ringing, answered, completed"
            )));
        }
    }
    Ok(names)
}

/// An expression for a queue's TargetWorkers, with the reference's default.
pub fn target_workers(text: Option<&str>) -> Result<Expression, ApiError> {
    let text = text.filter(|t| !t.trim().is_empty()).unwrap_or("1==1");
    Expression::parse(text).map_err(|e| ApiError::invalid(format!("TargetWorkers: {e}")))
}

/// The `limit` best of `items`, best first, where `rank(a, b)` is `Less` when `a` is better. Each
/// pick is the first item that no later item beats, so ties keep the items' order (the idle order
/// of a ready set). Linear passes rather than a sort: order_by's comparison is not a total order
/// (a value that is not an integer ties with every other), which a sort may reject, and a task
/// wants one or a few workers out of thousands.
fn best_first(
    mut items: Vec<&Worker>,
    limit: usize,
    rank: impl Fn(&Worker, &Worker) -> Ordering,
) -> Vec<&Worker> {
    let mut picked = Vec::with_capacity(limit.min(items.len()));
    while picked.len() < limit && !items.is_empty() {
        let mut best = 0;
        for (index, item) in items.iter().enumerate().skip(1) {
            if rank(item, items[best]) == Ordering::Less {
                best = index;
            }
        }
        picked.push(items.remove(best));
    }
    picked
}
