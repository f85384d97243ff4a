//! Task queues.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{Caller, QueryPairs, created, envelope, friendly_name, integer, not_found};
use crate::api::FormPairs;
use crate::api::error::{ApiError, ApiResult};
use crate::app::AppState;
use crate::routing::model::*;
use crate::routing::space::{Space, target_workers};
use crate::routing::views;
use crate::sid::new_sid;

fn queue_activity(
    space: &Space,
    form: &FormPairs,
    name: &str,
) -> ApiResult<Option<Option<String>>> {
    match form.get(name) {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(sid) => space
            .activity(sid)
            .map(|a| Some(Some(a.sid.clone())))
            .ok_or_else(|| {
                ApiError::invalid(format!("{name} {sid} is not an activity of this workspace"))
            }),
    }
}

#[utoipa::path(post, operation_id = "create_task_queue", path = "/v1/Workspaces/{WorkspaceSid}/TaskQueues", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 201, description = "The new task queue"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn create_queue(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, true)?.unwrap_or_default();
    let target = target_workers(form.get("TargetWorkers"))?;
    let max_reserved = integer(&form, "MaxReservedWorkers", 1..=50)?.unwrap_or(1);
    let order = form
        .get("TaskOrder")
        .map(|t| {
            TaskOrder::parse(t).ok_or_else(|| ApiError::invalid("TaskOrder must be FIFO or LIFO"))
        })
        .transpose()?
        .unwrap_or(TaskOrder::Fifo);
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            let reservation_activity =
                queue_activity(space, &form, "ReservationActivitySid")?.flatten();
            let assignment_activity =
                queue_activity(space, &form, "AssignmentActivitySid")?.flatten();
            let now = space.now();
            let queue = TaskQueue {
                sid: new_sid("WQ"),
                friendly_name: name,
                target_workers: target,
                max_reserved_workers: max_reserved,
                task_order: order,
                reservation_activity_sid: reservation_activity,
                assignment_activity_sid: assignment_activity,
                date_created: now,
                date_updated: now,
                members: Default::default(),
                ready: Default::default(),
                waiting: Default::default(),
            };
            let sid = queue.sid.clone();
            space.add_queue(fx, queue);
            let queue = space.queues.get(&sid).ok_or_else(|| not_found(&sid))?;
            Ok(created(views::task_queue(&caller.base, space, queue)))
        })
        .await
}

#[utoipa::path(get, operation_id = "list_task_queues", path = "/v1/Workspaces/{WorkspaceSid}/TaskQueues", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "`task_queues` list envelope (`FriendlyName`, `WorkerSid`, `EvaluateWorkerAttributes` narrow)"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn list_queues(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let worker_attributes = query
        .get("EvaluateWorkerAttributes")
        .map(|text| {
            serde_json::from_str::<Value>(text).map_err(|e| {
                ApiError::invalid(format!("EvaluateWorkerAttributes is not valid JSON: {e}"))
            })
        })
        .transpose()?;
    let items = state.routing.read(&caller.account_sid, &ws, |space| {
        let mut queues: Vec<&TaskQueue> = space
            .queues
            .values()
            .filter(|q| {
                query
                    .get("FriendlyName")
                    .is_none_or(|n| q.friendly_name == n)
            })
            .filter(|q| query.get("WorkerSid").is_none_or(|w| q.members.contains(w)))
            .filter(|q| {
                worker_attributes.as_ref().is_none_or(|a| {
                    q.target_workers
                        .evaluate(&crate::routing::expression::Document(a))
                })
            })
            .collect();
        queues.sort_by(|a, b| (a.date_created, &a.sid).cmp(&(b.date_created, &b.sid)));
        Ok(queues
            .into_iter()
            .map(|q| views::task_queue(&caller.base, space, q))
            .collect())
    })?;
    envelope(
        &caller.base,
        &format!("/v1/Workspaces/{ws}/TaskQueues"),
        "task_queues",
        &query,
        items,
    )
}

#[utoipa::path(get, operation_id = "fetch_task_queue", path = "/v1/Workspaces/{WorkspaceSid}/TaskQueues/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The task queue's sid (WQ...)")),
    responses((status = 200, description = "The task queue"), (status = 404, description = "No such workspace or task queue", body = crate::api::error::ErrorBody)))]
pub async fn fetch_queue(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
) -> ApiResult<Response> {
    state.routing.read(&caller.account_sid, &ws, |space| {
        let queue = space.queues.get(&sid).ok_or_else(|| not_found(&sid))?;
        Ok(Json(views::task_queue(&caller.base, space, queue)).into_response())
    })
}

#[utoipa::path(post, operation_id = "update_task_queue", path = "/v1/Workspaces/{WorkspaceSid}/TaskQueues/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The task queue's sid (WQ...)")),
    responses((status = 200, description = "The updated task queue"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or task queue", body = crate::api::error::ErrorBody)))]
pub async fn update_queue(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, false)?;
    let target = form
        .get("TargetWorkers")
        .map(|t| target_workers(Some(t)))
        .transpose()?;
    let max_reserved = integer(&form, "MaxReservedWorkers", 1..=50)?;
    let order = form
        .get("TaskOrder")
        .map(|t| {
            TaskOrder::parse(t).ok_or_else(|| ApiError::invalid("TaskOrder must be FIFO or LIFO"))
        })
        .transpose()?;
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            let reservation_activity = queue_activity(space, &form, "ReservationActivitySid")?;
            let assignment_activity = queue_activity(space, &form, "AssignmentActivitySid")?;
            let now = space.now();
            let target_changed = target.is_some();
            let queue = space.queues.get_mut(&sid).ok_or_else(|| not_found(&sid))?;
            if let Some(name) = name {
                queue.friendly_name = name;
            }
            if let Some(target) = target {
                queue.target_workers = target;
            }
            if let Some(max) = max_reserved {
                queue.max_reserved_workers = max;
            }
            if let Some(order) = order {
                queue.task_order = order;
            }
            if let Some(activity) = reservation_activity {
                queue.reservation_activity_sid = activity;
            }
            if let Some(activity) = assignment_activity {
                queue.assignment_activity_sid = activity;
            }
            queue.date_updated = now;
            fx.change.push(crate::routing::store::queue_row(
                &space.workspace.sid,
                queue,
            ));
            if target_changed {
                space.recompute_queue(&sid);
                space.event(
                    fx,
                    "task-queue.expression.updated",
                    "task_queue",
                    &sid,
                    format!("Task queue {sid} TargetWorkers updated"),
                    Default::default(),
                );
                let members: Vec<String> = space
                    .queues
                    .get(&sid)
                    .map(|q| q.members.iter().cloned().collect())
                    .unwrap_or_default();
                for worker in members {
                    space.offer_worker(fx, &worker);
                }
            }
            let queue = space.queues.get(&sid).ok_or_else(|| not_found(&sid))?;
            Ok(Json(views::task_queue(&caller.base, space, queue)).into_response())
        })
        .await
}

#[utoipa::path(delete, operation_id = "delete_task_queue", path = "/v1/Workspaces/{WorkspaceSid}/TaskQueues/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The task queue's sid (WQ...)")),
    responses((status = 204, description = "The task queue is deleted"), (status = 400, description = "Tasks are still in the queue, or a workflow routes to it", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or task queue", body = crate::api::error::ErrorBody)))]
pub async fn delete_queue(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
) -> ApiResult<Response> {
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            space.queues.get(&sid).ok_or_else(|| not_found(&sid))?;
            if space
                .tasks
                .values()
                .any(|t| t.queue_sid.as_deref() == Some(sid.as_str()))
            {
                return Err(ApiError::invalid(
                    "Tasks are still in this queue; finish or move them first",
                ));
            }
            if space
                .workflows
                .values()
                .any(|w| w.configuration.queues().any(|q| q == sid))
            {
                return Err(ApiError::invalid(
                    "A workflow routes to this queue; change the workflow first",
                ));
            }
            let members: Vec<String> = space
                .queues
                .get(&sid)
                .map(|q| q.members.iter().cloned().collect())
                .unwrap_or_default();
            space.queues.remove(&sid);
            for worker in members {
                space.recompute_membership(&worker);
            }
            fx.change.push(crate::routing::store::delete(
                crate::routing::store::Table::TaskQueue,
                &sid,
            ));
            space.event(
                fx,
                "task-queue.deleted",
                "task_queue",
                &sid,
                format!("Task queue {sid} deleted"),
                Default::default(),
            );
            Ok(StatusCode::NO_CONTENT.into_response())
        })
        .await
}
