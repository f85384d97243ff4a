//! Tasks: created, listed, fetched, updated and deleted, live or as stored.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    Caller, QueryPairs, any_task, attributes, check_if_match, integer, not_found,
    rendered_envelope, versioned,
};
use crate::api::FormPairs;
use crate::api::error::{ApiError, ApiResult};
use crate::api::resources::{PageRequest, page_envelope_of};
use crate::app::AppState;
use crate::routing::model::*;
use crate::routing::space::Space;
use crate::routing::store::TaskPage;
use crate::routing::{find_workflow, lock, views};
use crate::sid::new_sid;

/// Checks a new task's parameters and builds it (not yet routed).
pub fn new_task(space: &Space, form: &FormPairs, call_sid: Option<String>) -> ApiResult<Task> {
    let (attributes_text, attributes) =
        attributes(form, "Attributes")?.unwrap_or_else(|| ("{}".into(), json!({})));
    let priority = integer(form, "Priority", 0..=2_147_483_647)?.unwrap_or(0);
    let timeout = integer(form, "Timeout", 1..=1_209_600)?.unwrap_or(86_400);
    let (workflow_sid, route) = destination(space, form)?;
    let channel = match form.get("TaskChannel") {
        Some(text) => space.channel_by_ref(text).ok_or_else(|| {
            ApiError::invalid(format!(
                "TaskChannel {text:?} is not a task channel of this workspace"
            ))
        })?,
        None => space.channel_by_ref("default").ok_or_else(|| {
            ApiError::invalid("TaskChannel is required: the workspace has no default channel")
        })?,
    };
    let now = space.now();
    let virtual_start = virtual_start_time(form)?.unwrap_or(now);
    Ok(Task {
        sid: new_sid("WT"),
        workflow_sid,
        queue_sid: None,
        task_channel_sid: channel.sid.clone(),
        attributes_text,
        attributes,
        priority,
        timeout,
        status: TaskStatus::Pending,
        reason: None,
        virtual_start_time: virtual_start,
        task_queue_entered_date: None,
        route,
        step_deadline: None,
        assignment_count: 0,
        call_sid,
        version: 0,
        date_created: now,
        date_updated: now,
        place: None,
        declined_by: Vec::new(),
        live: Vec::new(),
    })
}

/// Where a new task goes: the workflow that routes it (`WorkflowSid`, or a `RoutingTarget` naming
/// a workflow), or the route to the queue or worker its `RoutingTarget` names. A worker target
/// takes `TaskQueueSid` as the queue the task counts in, and `IgnoreCapacity` (true unless said
/// otherwise, as in the reference) to reserve the worker whatever its activity and capacity.
fn destination(space: &Space, form: &FormPairs) -> ApiResult<(Option<String>, Option<Route>)> {
    let ignore_capacity = crate::api::resources::boolean(form, "IgnoreCapacity")?;
    let queue = form.get("TaskQueueSid");
    let target = form.get("RoutingTarget").filter(|t| !t.is_empty());
    let names_worker = target.is_some_and(|t| t.starts_with("WK"));
    if !names_worker && ignore_capacity.is_some() {
        return Err(ApiError::invalid(
            "IgnoreCapacity applies only to a task whose RoutingTarget is a worker (WK...)",
        ));
    }
    let workflow_sid = form.get("WorkflowSid");
    let Some(target) = target.filter(|t| !t.starts_with("WW")) else {
        if queue.is_some() {
            return Err(ApiError::invalid(
                "TaskQueueSid applies only to a task whose RoutingTarget is a worker (WK...); a workflow chooses the queues of the tasks it routes",
            ));
        }
        if let (Some(target), Some(workflow)) = (target, workflow_sid)
            && target != workflow
        {
            return Err(ApiError::invalid(format!(
                "RoutingTarget {target} and WorkflowSid {workflow} name different workflows"
            )));
        }
        let workflow = match target {
            Some(target) => space.workflows.get(target).ok_or_else(|| {
                ApiError::invalid(format!(
                    "RoutingTarget {target} is not a workflow of this workspace"
                ))
            })?,
            None => find_workflow(space, workflow_sid)?,
        };
        return Ok((Some(workflow.sid.clone()), None));
    };
    if workflow_sid.is_some() {
        return Err(ApiError::invalid(
            "WorkflowSid and a RoutingTarget naming a queue or a worker exclude each other: a task is routed by a workflow or sent straight to its target",
        ));
    }
    let known_queue = |sid: &str, name: &str| {
        if space.queues.contains_key(sid) {
            Ok(sid.to_string())
        } else {
            Err(ApiError::invalid(format!(
                "{name} {sid} is not a task queue of this workspace"
            )))
        }
    };
    if target.starts_with("WQ") {
        if let Some(queue) = queue.filter(|q| *q != target) {
            return Err(ApiError::invalid(format!(
                "TaskQueueSid {queue} differs from the RoutingTarget queue {target}"
            )));
        }
        let queue = known_queue(target, "RoutingTarget")?;
        return Ok((None, Some(Route::given(queue, None))));
    }
    if !names_worker {
        return Err(ApiError::invalid(format!(
            "RoutingTarget must be the sid of a worker (WK...), task queue (WQ...) or workflow (WW...) of this workspace, not {target:?}"
        )));
    }
    if !space.workers.contains_key(target) {
        return Err(ApiError::invalid(format!(
            "RoutingTarget {target} is not a worker of this workspace"
        )));
    }
    let Some(queue) = queue else {
        return Err(ApiError::invalid(
            "TaskQueueSid is required when RoutingTarget is a worker: it is the queue the task is counted in",
        ));
    };
    let queue = known_queue(queue, "TaskQueueSid")?;
    let worker = (target.to_string(), ignore_capacity.unwrap_or(true));
    Ok((None, Some(Route::given(queue, Some(worker)))))
}

/// `VirtualStartTime`, the time a task counts as created for its place in FIFO and LIFO queues.
fn virtual_start_time(form: &FormPairs) -> ApiResult<Option<i64>> {
    form.get("VirtualStartTime")
        .map(|text| {
            crate::store::parse_rfc3339(text).ok_or_else(|| {
                ApiError::invalid(format!(
                    "VirtualStartTime must be an ISO 8601 time, not {text:?}"
                ))
            })
        })
        .transpose()
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/Tasks", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 201, description = "The new task, already routed; its version is the ETag"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn create_task(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    form: FormPairs,
) -> ApiResult<Response> {
    let task = state.routing.read(&caller.account_sid, &ws, |space| {
        new_task(space, &form, None)
    })?;
    let sid = task.sid.clone();
    let task = state
        .routing
        .create_task(&caller.account_sid, &ws, task)
        .await?;
    // The body is serialized after the lock is let go: other requests wait on it meanwhile.
    let (view, version) = state.routing.read(&caller.account_sid, &ws, |space| {
        let live = space.tasks.get(&sid).unwrap_or(&task);
        Ok((views::task(&caller.base, space, live, true), live.version))
    })?;
    Ok(versioned(StatusCode::CREATED, view, version))
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Tasks", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "`tasks` list envelope, live and finished (status, queue, workflow, priority, `RoutingTarget` and `EvaluateTaskAttributes` filters; `Ordering`)"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn list_tasks(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    // Repeated keys, as the reference's SDKs send them, or one comma-separated value.
    let statuses: Vec<&str> = query
        .all("AssignmentStatus")
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|status| !status.is_empty())
        .collect();
    for status in &statuses {
        if TaskStatus::parse(status).is_none() {
            return Err(ApiError::invalid(format!(
                "AssignmentStatus {status:?} is not one of pending, reserved, assigned, wrapping, completed, canceled"
            )));
        }
    }
    let expression = query
        .get("EvaluateTaskAttributes")
        .map(|text| {
            crate::routing::expression::Expression::parse(text)
                .map_err(|e| ApiError::invalid(format!("EvaluateTaskAttributes: {e}")))
        })
        .transpose()?;
    let priority = integer(&query, "Priority", 0..=2_147_483_647)?;
    let space = state.routing.space(&caller.account_sid, &ws)?;
    let path = format!("/v1/Workspaces/{ws}/Tasks");
    // No task here has add-ons (the reference's marketplace extensions): asking for those
    // that do finds none.
    if crate::api::resources::boolean(&query, "HasAddons")? == Some(true) {
        return rendered_envelope(
            &caller.base,
            &path,
            "tasks",
            &query,
            Vec::<Value>::new(),
            |v| v,
        );
    }
    let ordering = TaskOrdering::parse(query.get("Ordering"))?;
    // Every live task is in memory; the stored rows only add the finished ones.
    let live_only = !statuses.is_empty()
        && statuses
            .iter()
            .all(|s| TaskStatus::parse(s).is_some_and(|s| !s.is_final()));
    let (queue, workflow) = {
        let guard = lock(&space);
        (
            SidFilter::of(
                query.get("TaskQueueSid"),
                query.get("TaskQueueName"),
                guard.queues.values().map(|q| (&q.friendly_name, &q.sid)),
            ),
            SidFilter::of(
                query.get("WorkflowSid"),
                query.get("WorkflowName"),
                guard.workflows.values().map(|w| (&w.friendly_name, &w.sid)),
            ),
        )
    };
    // A list that needs stored rows (no status, or a finished one among them) is read a page at a
    // time from the database, where every acknowledged task has its row, unless it filters on
    // attributes or orders by priority; live tasks are then shown as memory holds them. Names of
    // queues and workflows are turned into their sids first. `RoutingTarget` names a workflow,
    // or the queue or worker a task was sent to.
    let routing_target = query.get("RoutingTarget").filter(|t| !t.is_empty());
    if !live_only
        && expression.is_none()
        && let Some(descending) = ordering.by_creation_only()
        && queue.resolved()
        && workflow.resolved()
    {
        let page = PageRequest::of(&query)?;
        let stored = if queue.is_nothing() || workflow.is_nothing() {
            Vec::new()
        } else {
            crate::routing::store::task_page(
                state.routing.db(),
                &ws,
                &TaskPage {
                    statuses: &statuses,
                    workflow_sid: workflow.sid(),
                    queue_sid: queue.sid(),
                    routing_target,
                    priority,
                    descending,
                    offset: page.offset(),
                    limit: page.size + 1,
                },
            )
            .await?
        };
        let more = stored.len() > page.size;
        let guard = lock(&space);
        let items = stored
            .iter()
            .take(page.size)
            .map(|s| guard.tasks.get(&s.task.sid).unwrap_or(&s.task))
            // A live task's row can trail memory by the commit under way: shown as it is now,
            // it must still be what the list asks for.
            .filter(|task| statuses.is_empty() || statuses.contains(&task.status.as_str()))
            .map(|task| views::task(&caller.base, &guard, task, true))
            .collect();
        return Ok(page_envelope_of(
            &caller.base,
            &path,
            "tasks",
            &query,
            page,
            items,
            more,
        ));
    }
    let stored = if live_only {
        Vec::new()
    } else {
        crate::routing::store::stored_tasks(state.routing.db(), &ws).await?
    };
    let stored_sids: HashSet<String> = stored.iter().map(|s| s.task.sid.clone()).collect();
    let guard = lock(&space);
    let matching: Vec<&Task> = {
        // Live tasks are in memory, possibly ahead of their rows; finished ones only in the log.
        let mut tasks: Vec<&Task> = stored
            .iter()
            .map(|s| guard.tasks.get(&s.task.sid).unwrap_or(&s.task))
            .collect();
        let fresh: Vec<&Task> = guard
            .tasks
            .values()
            .filter(|t| !stored_sids.contains(&t.sid))
            .collect();
        tasks.extend(fresh);
        tasks.sort_by(|a, b| ordering.compare(a, b));
        tasks
            .iter()
            .filter(|t| statuses.is_empty() || statuses.contains(&t.status.as_str()))
            .filter(|t| {
                query
                    .get("WorkflowSid")
                    .is_none_or(|w| t.workflow_sid.as_deref() == Some(w))
            })
            .filter(|t| {
                query
                    .get("TaskQueueSid")
                    .is_none_or(|q| t.queue_sid.as_deref() == Some(q))
            })
            .filter(|t| {
                query.get("TaskQueueName").is_none_or(|n| {
                    t.queue_sid
                        .as_deref()
                        .and_then(|q| guard.queues.get(q))
                        .is_some_and(|q| q.friendly_name == n)
                })
            })
            .filter(|t| {
                query.get("WorkflowName").is_none_or(|n| {
                    t.workflow_sid
                        .as_deref()
                        .and_then(|w| guard.workflows.get(w))
                        .is_some_and(|w| w.friendly_name == n)
                })
            })
            .filter(|t| priority.is_none_or(|p| t.priority == p))
            .filter(|t| {
                // The workflow routing the task, or the queue or worker it was sent to.
                routing_target.is_none_or(|target| {
                    t.workflow_sid.as_deref() == Some(target)
                        || t.route
                            .as_ref()
                            .and_then(Route::routing_target)
                            .is_some_and(|(sid, _)| sid == target)
                })
            })
            .filter(|t| {
                expression.as_ref().is_none_or(|e| {
                    e.evaluate(&crate::routing::expression::Document(&t.attributes))
                })
            })
            .copied()
            .collect()
    };
    rendered_envelope(&caller.base, &path, "tasks", &query, matching, |task| {
        views::task(&caller.base, &guard, task, true)
    })
}

/// What a task list's `Ordering` may sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrderKey {
    DateCreated,
    Priority,
    VirtualStartTime,
}

/// A task list's `Ordering`: `Attribute:Order` pairs, comma-separated, the first deciding first
/// (`Priority:desc,DateCreated:asc`). Ties left by every pair go oldest first.
struct TaskOrdering(Vec<(OrderKey, bool)>);

impl TaskOrdering {
    fn parse(text: Option<&str>) -> ApiResult<TaskOrdering> {
        let mut pairs: Vec<(OrderKey, bool)> = Vec::new();
        for pair in text.unwrap_or_default().split(',').map(str::trim) {
            if pair.is_empty() {
                continue;
            }
            let (name, order) = pair.split_once(':').unwrap_or((pair, "asc"));
            let key = match name.trim().to_ascii_lowercase().as_str() {
                "datecreated" => OrderKey::DateCreated,
                "priority" => OrderKey::Priority,
                "virtualstarttime" => OrderKey::VirtualStartTime,
                _ => {
                    return Err(ApiError::invalid(format!(
                        "Ordering {pair:?}: sort by DateCreated, Priority or VirtualStartTime"
                    )));
                }
            };
            let descending = match order.trim().to_ascii_lowercase().as_str() {
                "asc" => false,
                "desc" => true,
                _ => {
                    return Err(ApiError::invalid(format!(
                        "Ordering {pair:?}: the order is asc or desc, as in Priority:desc"
                    )));
                }
            };
            if pairs.iter().any(|(seen, _)| *seen == key) {
                return Err(ApiError::invalid(format!("Ordering names {name} twice")));
            }
            pairs.push((key, descending));
        }
        let keys: Vec<OrderKey> = pairs.iter().map(|(key, _)| *key).collect();
        if keys.contains(&OrderKey::DateCreated) && keys.contains(&OrderKey::VirtualStartTime) {
            return Err(ApiError::invalid(
                "Ordering may not pair DateCreated with VirtualStartTime",
            ));
        }
        Ok(TaskOrdering(pairs))
    }

    /// `Some(descending)` when the list is ordered by creation time alone, which the stored
    /// tasks' index serves a page at a time.
    fn by_creation_only(&self) -> Option<bool> {
        match self.0.as_slice() {
            [] => Some(false),
            [(OrderKey::DateCreated, descending)] => Some(*descending),
            _ => None,
        }
    }

    fn compare(&self, a: &Task, b: &Task) -> std::cmp::Ordering {
        self.0
            .iter()
            .map(|(key, descending)| {
                let order = match key {
                    OrderKey::DateCreated => a.date_created.cmp(&b.date_created),
                    OrderKey::Priority => a.priority.cmp(&b.priority),
                    OrderKey::VirtualStartTime => a.virtual_start_time.cmp(&b.virtual_start_time),
                };
                if *descending { order.reverse() } else { order }
            })
            .find(|order| order.is_ne())
            .unwrap_or_else(|| (a.date_created, &a.sid).cmp(&(b.date_created, &b.sid)))
    }
}

/// A task list's filter on its queue or workflow, given by sid, by name or both.
enum SidFilter {
    /// Neither given.
    Any,
    /// The tasks of this one.
    Only(String),
    /// The sid and the name disagree, or no such name: no task can match.
    Nothing,
    /// The name is shared by several: only the in-memory filter can tell.
    Several,
}

impl SidFilter {
    fn of<'a>(
        sid: Option<&str>,
        name: Option<&str>,
        named: impl Iterator<Item = (&'a String, &'a String)>,
    ) -> SidFilter {
        let by_name = match name {
            None => None,
            Some(name) => {
                let mut sids = named.filter(|(n, _)| n.as_str() == name).map(|(_, s)| s);
                match (sids.next(), sids.next()) {
                    (None, _) => return SidFilter::Nothing,
                    (Some(sid), None) => Some(sid.as_str()),
                    (Some(_), Some(_)) => return SidFilter::Several,
                }
            }
        };
        match (sid, by_name) {
            (None, None) => SidFilter::Any,
            (Some(sid), None) | (None, Some(sid)) => SidFilter::Only(sid.to_string()),
            (Some(given), Some(named)) if given == named => SidFilter::Only(given.to_string()),
            (Some(_), Some(_)) => SidFilter::Nothing,
        }
    }

    fn resolved(&self) -> bool {
        !matches!(self, SidFilter::Several)
    }

    fn is_nothing(&self) -> bool {
        matches!(self, SidFilter::Nothing)
    }

    fn sid(&self) -> Option<&str> {
        match self {
            SidFilter::Only(sid) => Some(sid),
            _ => None,
        }
    }
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Tasks/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The task's sid (WT...)")),
    responses((status = 200, description = "The task; its version is the ETag"), (status = 404, description = "No such workspace or task", body = crate::api::error::ErrorBody)))]
pub async fn fetch_task(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
) -> ApiResult<Response> {
    let task = any_task(&state, &caller, &ws, &sid).await?;
    state.routing.read(&caller.account_sid, &ws, |space| {
        Ok(versioned(
            StatusCode::OK,
            views::task(&caller.base, space, &task, true),
            task.version,
        ))
    })
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/Tasks/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The task's sid (WT...)"), ("If-Match" = Option<String>, Header, description = "The ETag of the version the change is based on; a mismatch is answered 412")),
    responses((status = 200, description = "The updated task; its new version is the ETag"), (status = 400, description = "An invalid parameter or status change, or the task is final", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or task", body = crate::api::error::ErrorBody), (status = 412, description = "If-Match does not match the current version", body = crate::api::error::ErrorBody)))]
pub async fn update_task(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    headers: HeaderMap,
    form: FormPairs,
) -> ApiResult<Response> {
    let new_attributes = attributes(&form, "Attributes")?;
    let priority = integer(&form, "Priority", 0..=2_147_483_647)?;
    let status = form
        .get("AssignmentStatus")
        .map(|s| {
            TaskStatus::parse(s).ok_or_else(|| {
                ApiError::invalid(format!("AssignmentStatus {s:?} is not a task status"))
            })
        })
        .transpose()?;
    let reason = form.get("Reason").map(str::to_string);
    let virtual_start_time = virtual_start_time(&form)?;
    let stored = any_task(&state, &caller, &ws, &sid).await?;
    check_if_match(&headers, stored.version)?;
    if stored.status.is_final() {
        return Err(ApiError::invalid(format!(
            "Task {sid} is {} and can no longer change",
            stored.status.as_str()
        )));
    }
    let base = caller.base.clone();
    let task = state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            let task = space.tasks.get(&sid).ok_or_else(|| not_found(&sid))?;
            check_if_match(&headers, task.version)?;
            if let Some(text) = form.get("TaskChannel") {
                let same = space
                    .channel_by_ref(text)
                    .is_some_and(|c| c.sid == task.task_channel_sid);
                if !same {
                    return Err(ApiError::invalid(format!(
                        "TaskChannel {text:?}: a task keeps the channel it was created on; cancel it and create it again on another"
                    )));
                }
            }
            let current = task.status;
            if let Some(status) = status {
                match (current, status) {
                    (TaskStatus::Pending | TaskStatus::Reserved, TaskStatus::Canceled) => {}
                    (TaskStatus::Assigned, TaskStatus::Wrapping) => {}
                    (TaskStatus::Assigned | TaskStatus::Wrapping, TaskStatus::Completed) => {}
                    (from, to) if from == to => {}
                    (from, to) => {
                        return Err(ApiError::invalid(format!(
                            "A task that is {} can't be moved to {}",
                            from.as_str(),
                            to.as_str()
                        )));
                    }
                }
                if matches!(status, TaskStatus::Canceled | TaskStatus::Completed)
                    && reason.is_none()
                {
                    return Err(ApiError::invalid(
                        "Reason is required to cancel or complete a task",
                    ));
                }
            }
            if let Some((text, value)) = new_attributes {
                space.update_task_attributes(fx, &sid, text, value);
            }
            if priority.is_some() || virtual_start_time.is_some() {
                space.reorder_task(fx, &sid, priority, virtual_start_time);
            }
            let reason = reason.as_deref().unwrap_or("");
            match status {
                Some(TaskStatus::Canceled) if current != TaskStatus::Canceled => {
                    space.cancel_task(fx, &sid, reason)
                }
                Some(TaskStatus::Wrapping) if current == TaskStatus::Assigned => {
                    space.wrap_task(fx, &sid)
                }
                Some(TaskStatus::Completed) if current != TaskStatus::Completed => {
                    space.complete_task(fx, &sid, reason)
                }
                _ => {}
            }
            space.touch_task(fx, &sid);
            Ok(space.tasks.get(&sid).cloned())
        })
        .await?;
    let task = match task {
        Some(task) => task,
        None => any_task(&state, &caller, &ws, &sid).await?,
    };
    state.routing.read(&caller.account_sid, &ws, |space| {
        Ok(versioned(
            StatusCode::OK,
            views::task(&base, space, &task, true),
            task.version,
        ))
    })
}

#[utoipa::path(delete, path = "/v1/Workspaces/{WorkspaceSid}/Tasks/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The task's sid (WT...)"), ("If-Match" = Option<String>, Header, description = "The ETag of the version the change is based on; a mismatch is answered 412")),
    responses((status = 204, description = "The task and its reservations are deleted"), (status = 404, description = "No such workspace or task", body = crate::api::error::ErrorBody), (status = 412, description = "If-Match does not match the current version", body = crate::api::error::ErrorBody)))]
pub async fn delete_task(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let stored = any_task(&state, &caller, &ws, &sid).await?;
    check_if_match(&headers, stored.version)?;
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            if space.tasks.contains_key(&sid) {
                space.delete_task(fx, &sid);
            } else {
                fx.change.extend(crate::routing::store::delete_task(&sid));
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        })
        .await
}
