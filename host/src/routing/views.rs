//! The wire shapes of the resources (snake_case JSON with absolute `url` and `links`, as the
//! reference returns them and its SDKs read them), the views modules receive, and the rebuilding
//! of a workspace from what was stored.

use std::sync::Arc;

use serde_json::{Value, json};

use super::expression::Expression;
use super::model::*;
use super::space::{Space, percentage};
use super::store::{ReservationOwner, StoredWorkspace};
use crate::runtime::bindings::types;
use crate::store::rfc3339;

/// Dates as the reference's SDKs parse them: `YYYY-MM-DDTHH:MM:SSZ`, no fractions.
pub fn date(ms: i64) -> String {
    rfc3339(ms - ms.rem_euclid(1000))
}

fn opt_date(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(date(ms)))
}

pub fn workspace(base: &str, space: &Space) -> Value {
    let w = &space.workspace;
    let url = format!("{base}/v1/Workspaces/{}", w.sid);
    json!({
        "account_sid": w.account_sid,
        "date_created": date(w.date_created),
        "date_updated": date(w.date_updated),
        "default_activity_name": w.default_activity_sid.as_deref().map(|a| space.activity_name(a)),
        "default_activity_sid": w.default_activity_sid,
        "event_callback_url": w.event_callback_url,
        "events_filter": w.events_filter,
        "friendly_name": w.friendly_name,
        "multi_task_enabled": w.multi_task_enabled,
        "presence_offline_activity_sid": w.presence_offline_activity_sid,
        "presence_online_activity_sid": w.presence_online_activity_sid,
        "prioritize_queue_order": w.prioritize_queue_order,
        "sid": w.sid,
        "timeout_activity_name": w.timeout_activity_sid.as_deref().map(|a| space.activity_name(a)),
        "timeout_activity_sid": w.timeout_activity_sid,
        "url": url,
        "links": {
            "activities": format!("{url}/Activities"),
            "events": format!("{url}/Events"),
            "statistics": format!("{url}/Statistics"),
            "cumulative_statistics": format!("{url}/CumulativeStatistics"),
            "real_time_statistics": format!("{url}/RealTimeStatistics"),
            "task_channels": format!("{url}/TaskChannels"),
            "task_queues": format!("{url}/TaskQueues"),
            "tasks": format!("{url}/Tasks"),
            "workers": format!("{url}/Workers"),
            "workflows": format!("{url}/Workflows"),
        },
    })
}

pub fn activity(base: &str, space: &Space, a: &Activity) -> Value {
    let ws = &space.workspace.sid;
    json!({
        "account_sid": space.workspace.account_sid,
        "available": a.available,
        "date_created": date(a.date_created),
        "date_updated": date(a.date_updated),
        "friendly_name": a.friendly_name,
        "sid": a.sid,
        "workspace_sid": ws,
        "url": format!("{base}/v1/Workspaces/{ws}/Activities/{}", a.sid),
        "links": {"workspace": format!("{base}/v1/Workspaces/{ws}")},
    })
}

pub fn task_channel(base: &str, space: &Space, c: &TaskChannel) -> Value {
    let ws = &space.workspace.sid;
    json!({
        "account_sid": space.workspace.account_sid,
        "channel_optimized_routing": c.channel_optimized_routing,
        "date_created": date(c.date_created),
        "date_updated": date(c.date_updated),
        "friendly_name": c.friendly_name,
        "sid": c.sid,
        "unique_name": c.unique_name,
        "workspace_sid": ws,
        "url": format!("{base}/v1/Workspaces/{ws}/TaskChannels/{}", c.sid),
        "links": {"workspace": format!("{base}/v1/Workspaces/{ws}")},
    })
}

/// A worker. Lists carry `attributes` too, as tasks' do: the reference documents them as null in
/// lists, but its service answers them, and client programs read them from lists.
pub fn worker(base: &str, space: &Space, w: &Worker) -> Value {
    let ws = &space.workspace.sid;
    let url = format!("{base}/v1/Workspaces/{ws}/Workers/{}", w.sid);
    json!({
        "account_sid": space.workspace.account_sid,
        "activity_name": space.activity_name(&w.activity_sid),
        "activity_sid": w.activity_sid,
        "attributes": w.attributes_text,
        "available": space.worker_available(w),
        "date_created": date(w.date_created),
        "date_status_changed": date(w.date_status_changed),
        "date_updated": date(w.date_updated),
        "friendly_name": w.friendly_name,
        "sid": w.sid,
        "workspace_sid": ws,
        "url": url,
        "links": {
            "channels": format!("{url}/Channels"),
            "reservations": format!("{url}/Reservations"),
            "statistics": format!("{url}/Statistics"),
            "activity": format!("{base}/v1/Workspaces/{ws}/Activities/{}", w.activity_sid),
            "workspace": format!("{base}/v1/Workspaces/{ws}"),
        },
    })
}

pub fn worker_channel(base: &str, space: &Space, w: &Worker, c: &WorkerChannel) -> Value {
    let ws = &space.workspace.sid;
    json!({
        "account_sid": space.workspace.account_sid,
        "assigned_tasks": c.assigned,
        "available": c.available,
        "available_capacity_percentage": percentage(c),
        "configured_capacity": c.capacity,
        "date_created": date(c.date_created),
        "date_updated": date(c.date_updated),
        "sid": c.sid,
        "task_channel_sid": c.task_channel_sid,
        "task_channel_unique_name": space.channel_name(&c.task_channel_sid),
        "worker_sid": w.sid,
        "workspace_sid": ws,
        "url": format!("{base}/v1/Workspaces/{ws}/Workers/{}/Channels/{}", w.sid, c.sid),
    })
}

pub fn task_queue(base: &str, space: &Space, q: &TaskQueue) -> Value {
    let ws = &space.workspace.sid;
    let url = format!("{base}/v1/Workspaces/{ws}/TaskQueues/{}", q.sid);
    let name = |sid: &Option<String>| sid.as_deref().map(|a| space.activity_name(a).to_string());
    json!({
        "account_sid": space.workspace.account_sid,
        "assignment_activity_name": name(&q.assignment_activity_sid),
        "assignment_activity_sid": q.assignment_activity_sid,
        "date_created": date(q.date_created),
        "date_updated": date(q.date_updated),
        "friendly_name": q.friendly_name,
        "max_reserved_workers": q.max_reserved_workers,
        "reservation_activity_name": name(&q.reservation_activity_sid),
        "reservation_activity_sid": q.reservation_activity_sid,
        "sid": q.sid,
        "target_workers": q.target_workers.text(),
        "task_order": q.task_order.as_str(),
        "workspace_sid": ws,
        "url": url,
        "links": {
            "statistics": format!("{url}/Statistics"),
            "real_time_statistics": format!("{url}/RealTimeStatistics"),
            "cumulative_statistics": format!("{url}/CumulativeStatistics"),
            "workspace": format!("{base}/v1/Workspaces/{ws}"),
        },
    })
}

pub fn workflow(base: &str, space: &Space, w: &Workflow) -> Value {
    let ws = &space.workspace.sid;
    let url = format!("{base}/v1/Workspaces/{ws}/Workflows/{}", w.sid);
    json!({
        "account_sid": space.workspace.account_sid,
        "assignment_callback_url": w.assignment_callback_url,
        "configuration": w.configuration_text,
        "date_created": date(w.date_created),
        "date_updated": date(w.date_updated),
        "document_content_type": "application/json",
        "fallback_assignment_callback_url": w.fallback_assignment_callback_url,
        "friendly_name": w.friendly_name,
        "sid": w.sid,
        "task_reservation_timeout": w.task_reservation_timeout,
        "workspace_sid": ws,
        "url": url,
        "links": {
            "statistics": format!("{url}/Statistics"),
            "real_time_statistics": format!("{url}/RealTimeStatistics"),
            "cumulative_statistics": format!("{url}/CumulativeStatistics"),
            "workspace": format!("{base}/v1/Workspaces/{ws}"),
        },
    })
}

/// A task; `attributes` only in single-resource answers, as the reference documents.
pub fn task(base: &str, space: &Space, t: &Task, with_attributes: bool) -> Value {
    let ws = &space.workspace.sid;
    let url = format!("{base}/v1/Workspaces/{ws}/Tasks/{}", t.sid);
    let queue = t.queue_sid.as_deref().and_then(|q| space.queues.get(q));
    let workflow = t
        .workflow_sid
        .as_deref()
        .and_then(|w| space.workflows.get(w));
    let given = t.route.as_ref().and_then(Route::routing_target);
    json!({
        "account_sid": space.workspace.account_sid,
        "addons": "{}",
        "age": t.age_seconds(space.now()),
        "assignment_status": t.status.as_str(),
        "attributes": with_attributes.then_some(&t.attributes_text),
        "date_created": date(t.date_created),
        "date_updated": date(t.date_updated),
        "ignore_capacity": given.is_some_and(|(_, ignore)| ignore),
        "priority": t.priority,
        "reason": t.reason,
        "routing_target": given.map(|(sid, _)| sid),
        "sid": t.sid,
        "task_channel_sid": t.task_channel_sid,
        "task_channel_unique_name": space.channel_name(&t.task_channel_sid),
        "task_queue_entered_date": opt_date(t.task_queue_entered_date),
        "task_queue_friendly_name": queue.map(|q| q.friendly_name.clone()),
        "task_queue_sid": t.queue_sid,
        "timeout": t.timeout,
        "virtual_start_time": date(t.virtual_start_time),
        "workflow_friendly_name": workflow.map(|w| w.friendly_name.clone()),
        "workflow_sid": t.workflow_sid,
        "workspace_sid": ws,
        "url": url,
        "links": {
            "reservations": format!("{url}/Reservations"),
            "task_queue": t.queue_sid.as_deref().map(|q| format!("{base}/v1/Workspaces/{ws}/TaskQueues/{q}")),
            "workflow": t.workflow_sid.as_deref().map(|w| format!("{base}/v1/Workspaces/{ws}/Workflows/{w}")),
            "workspace": format!("{base}/v1/Workspaces/{ws}"),
        },
    })
}

/// A reservation as seen under `owner`: its `url` is the path it was asked by, the task's
/// reservations or the worker's, as the reference's service answers.
pub fn reservation(base: &str, space: &Space, r: &Reservation, owner: ReservationOwner) -> Value {
    let ws = &space.workspace.sid;
    let name = space
        .workers
        .get(&r.worker_sid)
        .map(|w| w.friendly_name.clone());
    let url = match owner {
        ReservationOwner::Task(_) => {
            format!(
                "{base}/v1/Workspaces/{ws}/Tasks/{}/Reservations/{}",
                r.task_sid, r.sid
            )
        }
        ReservationOwner::Worker(_) => {
            format!(
                "{base}/v1/Workspaces/{ws}/Workers/{}/Reservations/{}",
                r.worker_sid, r.sid
            )
        }
    };
    json!({
        "account_sid": space.workspace.account_sid,
        "date_created": date(r.date_created),
        "date_updated": date(r.date_updated),
        "reservation_status": r.status.as_str(),
        "sid": r.sid,
        "task_sid": r.task_sid,
        "worker_name": name,
        "worker_sid": r.worker_sid,
        "workspace_sid": ws,
        "url": url,
        "links": {
            "task": format!("{base}/v1/Workspaces/{ws}/Tasks/{}", r.task_sid),
            "worker": format!("{base}/v1/Workspaces/{ws}/Workers/{}", r.worker_sid),
            "workspace": format!("{base}/v1/Workspaces/{ws}"),
        },
    })
}

/// A task as a workflow-rules module sees it.
pub fn wasm_task(space: &Space, t: &Task) -> types::Task {
    types::Task {
        sid: t.sid.clone(),
        workspace_sid: space.workspace.sid.clone(),
        workflow_sid: t.workflow_sid.clone(),
        attributes: t.attributes_text.clone(),
        priority: i32::try_from(t.priority).unwrap_or(i32::MAX),
        task_channel: space.channel_name(&t.task_channel_sid).to_string(),
        age_seconds: u32::try_from(t.age_seconds(space.now())).unwrap_or(u32::MAX),
        assignment_status: t.status.as_str().to_string(),
    }
}

/// A worker as a workflow-rules module sees it.
pub fn wasm_worker(space: &Space, w: &Worker) -> types::Worker {
    types::Worker {
        sid: w.sid.clone(),
        friendly_name: w.friendly_name.clone(),
        attributes: w.attributes_text.clone(),
        activity_name: space.activity_name(&w.activity_sid).to_string(),
        available: space.worker_available(w),
        idle_seconds: u32::try_from((space.now() - w.idle_since).max(0) / 1000).unwrap_or(u32::MAX),
        active_tasks: u32::try_from(w.active_tasks()).unwrap_or(u32::MAX),
    }
}

/// A workspace rebuilt from its rows: configurations compiled, indexes filled.
pub fn rebuild(stored: StoredWorkspace) -> Space {
    let mut space = Space::new(stored.workspace);
    space.activities = stored.activities;
    space.channels = stored.channels;
    for q in stored.queues {
        let target_workers = Expression::parse(&q.target_workers).unwrap_or_else(|error| {
            tracing::warn!(queue = %q.sid, %error, "stored TargetWorkers no longer parses; the queue matches nobody");
            Expression::parse("1 == 0").expect("a constant expression parses")
        });
        space.queues.insert(
            q.sid.clone(),
            TaskQueue {
                sid: q.sid,
                friendly_name: q.friendly_name,
                target_workers,
                max_reserved_workers: q.max_reserved_workers,
                task_order: TaskOrder::parse(&q.task_order).unwrap_or(TaskOrder::Fifo),
                reservation_activity_sid: q.reservation_activity_sid,
                assignment_activity_sid: q.assignment_activity_sid,
                date_created: q.date_created,
                date_updated: q.date_updated,
                members: Default::default(),
                ready: Default::default(),
                waiting: Default::default(),
            },
        );
    }
    for mut w in stored.workflows {
        let queues: Vec<String> = space.queues.keys().cloned().collect();
        match super::workflow::parse(&w.configuration_text, &|sid| {
            queues.iter().any(|q| q == sid)
        }) {
            Ok(configuration) => w.configuration = Arc::new(configuration),
            Err(error) => {
                tracing::warn!(workflow = %w.sid, %error, "stored workflow configuration no longer compiles");
            }
        }
        space.workflows.insert(w.sid.clone(), w);
    }
    for (mut worker, channels) in stored.workers {
        worker.channels = channels;
        space.workers.insert(worker.sid.clone(), worker);
    }
    let queue_sids: Vec<String> = space.queues.keys().cloned().collect();
    for stored_task in stored.live_tasks {
        let mut task = stored_task.task;
        let workflow = task
            .workflow_sid
            .as_deref()
            .and_then(|w| space.workflows.get(w));
        task.route = super::stored_route(
            workflow,
            stored_task.filter_index,
            stored_task.target_index,
            stored_task.routing_targets.as_deref(),
            &|sid| queue_sids.iter().any(|q| q == sid),
        );
        space.tasks.insert(task.sid.clone(), task);
    }
    for reservation in stored.live_reservations {
        space
            .reservations
            .insert(reservation.sid.clone(), reservation);
    }
    space.rebuild();
    space
}
