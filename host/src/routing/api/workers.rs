//! Workers and their capacity per task channel (worker channels).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{
    Caller, QueryPairs, attributes, boolean, check_if_match, envelope, friendly_name, integer,
    not_found, rendered_envelope, versioned,
};
use crate::api::FormPairs;
use crate::api::error::{ApiError, ApiResult, Code};
use crate::app::AppState;
use crate::routing::model::*;
use crate::routing::space::Space;
use crate::routing::views;
use crate::sid::new_sid;

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/Workers", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 201, description = "The new worker; its version is the ETag"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody), (status = 409, description = "A worker of that name exists", body = crate::api::error::ErrorBody)))]
pub async fn create_worker(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, true)?.unwrap_or_default();
    let (attributes_text, attributes) =
        attributes(&form, "Attributes")?.unwrap_or_else(|| ("{}".into(), json!({})));
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            if space
                .workers
                .values()
                .any(|w| w.friendly_name.eq_ignore_ascii_case(&name))
            {
                return Err(ApiError::new(
                    Code::Conflict,
                    format!("A worker named {name:?} already exists in this workspace"),
                ));
            }
            let activity_sid = match form.get("ActivitySid") {
                Some(sid) => space.activity(sid).map(|a| a.sid.clone()).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "ActivitySid {sid} is not an activity of this workspace"
                    ))
                })?,
                None => space
                    .workspace
                    .default_activity_sid
                    .clone()
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "ActivitySid is required: the workspace has no default activity",
                        )
                    })?,
            };
            let now = space.now();
            let channels = space
                .channels
                .iter()
                .map(|c| WorkerChannel {
                    sid: new_sid("WC"),
                    task_channel_sid: c.sid.clone(),
                    capacity: 1,
                    available: true,
                    active: 0,
                    assigned: 0,
                    date_created: now,
                    date_updated: now,
                })
                .collect();
            let worker = Worker {
                sid: new_sid("WK"),
                friendly_name: name,
                attributes_text,
                attributes,
                activity_sid,
                date_status_changed: now,
                idle_since: now,
                version: 0,
                date_created: now,
                date_updated: now,
                channels,
                queues: Vec::new(),
                filed_as: None,
            };
            let sid = worker.sid.clone();
            space.add_worker(fx, worker);
            let worker = space.workers.get(&sid).ok_or_else(|| not_found(&sid))?;
            Ok(versioned(
                StatusCode::CREATED,
                views::worker(&caller.base, space, worker),
                worker.version,
            ))
        })
        .await
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workers", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "`workers` list envelope (activity, availability, queue, name and `TargetWorkersExpression` filters)"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn list_workers(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let available = boolean(&query, "Available")?;
    let expression = query
        .get("TargetWorkersExpression")
        .map(|text| {
            crate::routing::expression::Expression::parse(text)
                .map_err(|e| ApiError::invalid(format!("TargetWorkersExpression: {e}")))
        })
        .transpose()?;
    state.routing.read(&caller.account_sid, &ws, |space| {
        let queue = match (query.get("TaskQueueSid"), query.get("TaskQueueName")) {
            (Some(sid), _) => Some(space.queues.get(sid).ok_or_else(|| {
                ApiError::invalid(format!(
                    "TaskQueueSid {sid} is not a task queue of this workspace"
                ))
            })?),
            (None, Some(name)) => Some(
                space
                    .queues
                    .values()
                    .find(|q| q.friendly_name == name)
                    .ok_or_else(|| ApiError::invalid(format!("No task queue is named {name:?}")))?,
            ),
            (None, None) => None,
        };
        let mut workers: Vec<&Worker> = space
            .workers
            .values()
            .filter(|w| query.get("ActivitySid").is_none_or(|a| w.activity_sid == a))
            .filter(|w| {
                query
                    .get("ActivityName")
                    .is_none_or(|a| space.activity_name(&w.activity_sid) == a)
            })
            // Worker names are case-insensitive in the reference.
            .filter(|w| {
                query
                    .get("FriendlyName")
                    .is_none_or(|n| w.friendly_name.eq_ignore_ascii_case(n))
            })
            .filter(|w| available.is_none_or(|v| space.worker_available(w) == v))
            .filter(|w| queue.is_none_or(|q| q.members.contains(&w.sid)))
            .filter(|w| {
                expression.as_ref().is_none_or(|e| {
                    e.evaluate(&crate::routing::space::WorkerScope {
                        worker: w,
                        activity_name: space.activity_name(&w.activity_sid),
                        channels: &space.channels,
                    })
                })
            })
            .collect();
        workers.sort_by(|a, b| (a.date_created, &a.sid).cmp(&(b.date_created, &b.sid)));
        rendered_envelope(
            &caller.base,
            &format!("/v1/Workspaces/{ws}/Workers"),
            "workers",
            &query,
            workers,
            |w| views::worker(&caller.base, space, w),
        )
    })
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workers/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The worker's sid (WK...)")),
    responses((status = 200, description = "The worker; its version is the ETag"), (status = 404, description = "No such workspace or worker", body = crate::api::error::ErrorBody)))]
pub async fn fetch_worker(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
) -> ApiResult<Response> {
    state.routing.read(&caller.account_sid, &ws, |space| {
        let worker = space.workers.get(&sid).ok_or_else(|| not_found(&sid))?;
        Ok(versioned(
            StatusCode::OK,
            views::worker(&caller.base, space, worker),
            worker.version,
        ))
    })
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/Workers/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The worker's sid (WK...)"), ("If-Match" = Option<String>, Header, description = "The ETag of the version the change is based on; a mismatch is answered 412")),
    responses((status = 200, description = "The updated worker; its new version is the ETag"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or worker", body = crate::api::error::ErrorBody), (status = 409, description = "Another worker has that name", body = crate::api::error::ErrorBody), (status = 412, description = "If-Match does not match the current version", body = crate::api::error::ErrorBody)))]
pub async fn update_worker(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    headers: HeaderMap,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, false)?;
    let new_attributes = attributes(&form, "Attributes")?;
    let reject_pending = boolean(&form, "RejectPendingReservations")?.unwrap_or(false);
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            let worker = space.workers.get(&sid).ok_or_else(|| not_found(&sid))?;
            check_if_match(&headers, worker.version)?;
            let activity = form
                .get("ActivitySid")
                .map(|a| space.activity(a).cloned().ok_or_else(|| ApiError::invalid(format!("ActivitySid {a} is not an activity of this workspace"))))
                .transpose()?;
            if reject_pending && activity.as_ref().is_none_or(|a| a.available) {
                return Err(ApiError::invalid("RejectPendingReservations needs an ActivitySid whose activity is not available"));
            }
            if let Some(name) = &name
                && space.workers.values().any(|w| w.sid != sid && w.friendly_name.eq_ignore_ascii_case(name))
            {
                return Err(ApiError::new(Code::Conflict, format!("A worker named {name:?} already exists in this workspace")));
            }
            let now = space.now();
            let attributes_changed = new_attributes.is_some();
            if let Some(worker) = space.workers.get_mut(&sid) {
                if let Some(name) = name {
                    worker.friendly_name = name;
                }
                if let Some((text, value)) = new_attributes {
                    worker.attributes_text = text;
                    worker.attributes = value;
                }
                worker.version += 1;
                worker.date_updated = now;
            }
            space.touch_worker(fx, &sid);
            if attributes_changed {
                space.recompute_membership(&sid);
                space.worker_event(fx, "worker.attributes.update", &sid);
            }
            if let Some(activity) = activity {
                space.set_activity(fx, &sid, &activity.sid);
                if reject_pending {
                    space.reject_pending_of(fx, &sid);
                }
            }
            space.offer_worker(fx, &sid);
            let worker = space.workers.get(&sid).ok_or_else(|| not_found(&sid))?;
            Ok(versioned(StatusCode::OK, views::worker(&caller.base, space, worker), worker.version))
        })
        .await
}

#[utoipa::path(delete, path = "/v1/Workspaces/{WorkspaceSid}/Workers/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The worker's sid (WK...)"), ("If-Match" = Option<String>, Header, description = "The ETag of the version the change is based on; a mismatch is answered 412")),
    responses((status = 204, description = "The worker is deleted"), (status = 404, description = "No such workspace or worker", body = crate::api::error::ErrorBody), (status = 409, description = "The worker holds reservations", body = crate::api::error::ErrorBody), (status = 412, description = "If-Match does not match the current version", body = crate::api::error::ErrorBody)))]
pub async fn delete_worker(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            let worker = space.workers.get(&sid).ok_or_else(|| not_found(&sid))?;
            check_if_match(&headers, worker.version)?;
            if space.reservations.values().any(|r| r.worker_sid == sid) {
                return Err(ApiError::new(
                    Code::Conflict,
                    "The worker holds reservations; finish, reject or let them time out first",
                ));
            }
            space.worker_event(fx, "worker.deleted", &sid);
            space.recompute_membership(&sid);
            for queue in space.queues.values_mut() {
                queue.members.remove(&sid);
                for ready in queue.ready.values_mut() {
                    ready.retain(|(_, w)| **w != *sid);
                }
            }
            space.workers.remove(&sid);
            fx.change.push(crate::routing::store::delete(
                crate::routing::store::Table::Worker,
                &sid,
            ));
            fx.change.push(crate::routing::store::delete(
                crate::routing::store::Table::WorkerChannelsOfWorker,
                &sid,
            ));
            Ok(StatusCode::NO_CONTENT.into_response())
        })
        .await
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Channels", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("WorkerSid" = String, Path, description = "The worker's sid (WK...)")),
    responses((status = 200, description = "`channels` list envelope: the worker's capacity per task channel"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or worker", body = crate::api::error::ErrorBody)))]
pub async fn list_worker_channels(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let items = state.routing.read(&caller.account_sid, &ws, |space| {
        let worker = space.workers.get(&sid).ok_or_else(|| not_found(&sid))?;
        Ok(worker
            .channels
            .iter()
            .map(|c| views::worker_channel(&caller.base, space, worker, c))
            .collect())
    })?;
    envelope(
        &caller.base,
        &format!("/v1/Workspaces/{ws}/Workers/{sid}/Channels"),
        "channels",
        &query,
        items,
    )
}

/// A worker channel by its sid or by its task channel's sid or unique name.
fn worker_channel_sid(space: &Space, worker: &Worker, text: &str) -> Option<String> {
    let task_channel = space.channel_by_ref(text).map(|c| c.sid.clone());
    worker
        .channels
        .iter()
        .find(|c| c.sid == text || Some(&c.task_channel_sid) == task_channel.as_ref())
        .map(|c| c.sid.clone())
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Channels/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("WorkerSid" = String, Path, description = "The worker's sid (WK...)"), ("Sid" = String, Path, description = "The worker channel's sid (WC...), or its task channel's sid or unique name")),
    responses((status = 200, description = "The worker channel"), (status = 404, description = "No such workspace, worker or worker channel", body = crate::api::error::ErrorBody)))]
pub async fn fetch_worker_channel(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid, channel)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    state.routing.read(&caller.account_sid, &ws, |space| {
        let worker = space.workers.get(&sid).ok_or_else(|| not_found(&sid))?;
        let wc = worker_channel_sid(space, worker, &channel).ok_or_else(|| not_found(&channel))?;
        let c = worker
            .channels
            .iter()
            .find(|c| c.sid == wc)
            .ok_or_else(|| not_found(&channel))?;
        Ok(Json(views::worker_channel(&caller.base, space, worker, c)).into_response())
    })
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Channels/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("WorkerSid" = String, Path, description = "The worker's sid (WK...)"), ("Sid" = String, Path, description = "The worker channel's sid (WC...), or its task channel's sid or unique name")),
    responses((status = 200, description = "The updated worker channel (`Capacity`, `Available`)"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace, worker or worker channel", body = crate::api::error::ErrorBody)))]
pub async fn update_worker_channel(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid, channel)): Path<(String, String, String)>,
    form: FormPairs,
) -> ApiResult<Response> {
    let capacity = integer(&form, "Capacity", 0..=50)?;
    let available = boolean(&form, "Available")?;
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            let worker = space.workers.get(&sid).ok_or_else(|| not_found(&sid))?;
            let wc =
                worker_channel_sid(space, worker, &channel).ok_or_else(|| not_found(&channel))?;
            let now = space.now();
            space.set_worker_channel(fx, &sid, &wc, capacity, available, now);
            let worker = space.workers.get(&sid).ok_or_else(|| not_found(&sid))?;
            let c = worker
                .channels
                .iter()
                .find(|c| c.sid == wc)
                .ok_or_else(|| not_found(&channel))?;
            Ok(Json(views::worker_channel(&caller.base, space, worker, c)).into_response())
        })
        .await
}
