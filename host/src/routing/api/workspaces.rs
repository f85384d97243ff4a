//! Workspaces, their activities and their task channels.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{
    Caller, QueryPairs, boolean, callback_url, created, envelope, friendly_name, not_found,
};
use crate::api::FormPairs;
use crate::api::error::{ApiError, ApiResult, Code};
use crate::app::AppState;
use crate::routing::model::*;
use crate::routing::space::{Effects, Space};
use crate::routing::{lock, views};
use crate::sid::new_sid;

#[utoipa::path(post, path = "/v1/Workspaces", tag = "work distribution", security(("account" = [])),
    responses((status = 201, description = "The new workspace, with the Offline, Available and Unavailable activities and the default task channels (and, with `Template=FIFO`, a sample queue and a workflow to it)"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody)))]
pub async fn create_workspace(
    caller: Caller,
    State(state): State<AppState>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, true)?.unwrap_or_default();
    let event_callback_url = callback_url(&form, "EventCallbackUrl")?;
    let multi_task = boolean(&form, "MultiTaskEnabled")?.unwrap_or(true);
    let fifo_template = match form.get("Template").map(str::to_ascii_uppercase).as_deref() {
        None | Some("" | "NONE") => false,
        Some("FIFO") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "Template must be NONE or FIFO (a sample queue and a workflow routing every task to it)",
            ));
        }
    };
    let order = match form.get("PrioritizeQueueOrder") {
        Some(text) => TaskOrder::parse(text)
            .ok_or_else(|| ApiError::invalid("PrioritizeQueueOrder must be FIFO or LIFO"))?
            .as_str(),
        None => "FIFO",
    };
    let now = state.routing.now();
    let activity = |name: &str, available: bool| Activity {
        sid: new_sid("WA"),
        friendly_name: name.to_string(),
        available,
        date_created: now,
        date_updated: now,
    };
    let activities = vec![
        activity("Offline", false),
        activity("Available", true),
        activity("Unavailable", false),
    ];
    let channels: Vec<TaskChannel> = [
        ("Default", "default"),
        ("Voice", "voice"),
        ("SMS", "sms"),
        ("Chat", "chat"),
        ("Video", "video"),
    ]
    .into_iter()
    .map(|(friendly_name, unique_name)| TaskChannel {
        sid: new_sid("TC"),
        friendly_name: friendly_name.to_string(),
        unique_name: unique_name.to_string(),
        channel_optimized_routing: false,
        date_created: now,
        date_updated: now,
    })
    .collect();
    let offline = activities[0].sid.clone();
    let workspace = Workspace {
        sid: new_sid("WS"),
        account_sid: caller.account_sid.clone(),
        friendly_name: name,
        event_callback_url,
        events_filter: form.get("EventsFilter").map(str::to_string),
        multi_task_enabled: multi_task,
        default_activity_sid: Some(offline.clone()),
        timeout_activity_sid: Some(offline),
        presence_offline_activity_sid: None,
        presence_online_activity_sid: None,
        prioritize_queue_order: order.to_string(),
        date_created: now,
        date_updated: now,
    };
    let mut space = Space::new(workspace);
    space.at(now);
    space.activities = activities;
    space.channels = channels;
    let mut fx = Effects::default();
    let ws = space.workspace.sid.clone();
    fx.change
        .push(crate::routing::store::workspace_row(&space.workspace));
    for a in &space.activities {
        fx.change.push(crate::routing::store::activity_row(&ws, a));
    }
    for c in &space.channels {
        fx.change.push(crate::routing::store::channel_row(&ws, c));
    }
    space.event(
        &mut fx,
        "workspace.created",
        "workspace",
        &ws,
        format!("Workspace {ws} created"),
        Default::default(),
    );
    if fifo_template {
        fifo_queue_and_workflow(&mut space, &mut fx, now)?;
    }
    state.writer.submit(fx.change).wait().await.map_err(|_| {
        ApiError::new(
            Code::Unavailable,
            "The workspace could not be stored; retry",
        )
    })?;
    let body = views::workspace(&caller.base, &space);
    state.routing.insert_space(space);
    Ok(created(body))
}

/// `Template=FIFO`, as the reference's service does it: a "Sample Queue" every worker belongs to
/// and a "Default Fifo Workflow" sending every task there, so tasks can be created at once
/// (without `WorkflowSid`: the workspace has one workflow).
fn fifo_queue_and_workflow(space: &mut Space, fx: &mut Effects, now: i64) -> ApiResult<()> {
    let queue = TaskQueue {
        sid: new_sid("WQ"),
        friendly_name: "Sample Queue".into(),
        target_workers: crate::routing::space::target_workers(Some("1==1"))?,
        max_reserved_workers: 1,
        task_order: TaskOrder::Fifo,
        reservation_activity_sid: None,
        assignment_activity_sid: None,
        date_created: now,
        date_updated: now,
        members: Default::default(),
        ready: Default::default(),
        waiting: Default::default(),
    };
    let queue_sid = queue.sid.clone();
    space.add_queue(fx, queue);
    let text = serde_json::json!({
        "task_routing": {"filters": [], "default_filter": {"queue": queue_sid}}
    })
    .to_string();
    let configuration = crate::routing::workflow::parse(&text, &|sid| sid == queue_sid)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let workflow = Workflow {
        sid: new_sid("WW"),
        friendly_name: "Default Fifo Workflow".into(),
        configuration_text: text,
        configuration: std::sync::Arc::new(configuration),
        assignment_callback_url: None,
        fallback_assignment_callback_url: None,
        task_reservation_timeout: crate::routing::space::DEFAULT_RESERVATION_TIMEOUT,
        date_created: now,
        date_updated: now,
    };
    space.add_workflow(fx, workflow);
    Ok(())
}

#[utoipa::path(get, path = "/v1/Workspaces", tag = "work distribution", security(("account" = [])),
    responses((status = 200, description = "`workspaces` list envelope (`FriendlyName` narrows)"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody)))]
pub async fn list_workspaces(
    caller: Caller,
    State(state): State<AppState>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let name = query.get("FriendlyName");
    let items = state
        .routing
        .workspaces(&caller.account_sid)
        .iter()
        .filter_map(|space| {
            let guard = lock(space);
            name.is_none_or(|n| guard.workspace.friendly_name == n)
                .then(|| views::workspace(&caller.base, &guard))
        })
        .collect();
    envelope(&caller.base, "/v1/Workspaces", "workspaces", &query, items)
}

#[utoipa::path(get, path = "/v1/Workspaces/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("Sid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "The workspace"), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn fetch_workspace(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
) -> ApiResult<Response> {
    state.routing.read(&caller.account_sid, &ws, |space| {
        Ok(Json(views::workspace(&caller.base, space)).into_response())
    })
}

#[utoipa::path(post, path = "/v1/Workspaces/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("Sid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "The updated workspace"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn update_workspace(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, false)?;
    let url = match form.get("EventCallbackUrl") {
        Some(_) => Some(callback_url(&form, "EventCallbackUrl")?),
        None => None,
    };
    let multi_task = boolean(&form, "MultiTaskEnabled")?;
    let order = form
        .get("PrioritizeQueueOrder")
        .map(|t| {
            TaskOrder::parse(t)
                .ok_or_else(|| ApiError::invalid("PrioritizeQueueOrder must be FIFO or LIFO"))
        })
        .transpose()?;
    let base = caller.base.clone();
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            for field in [
                "DefaultActivitySid",
                "TimeoutActivitySid",
                "PresenceOfflineActivitySid",
                "PresenceOnlineActivitySid",
            ] {
                if let Some(sid) = form.get(field).filter(|sid| !sid.is_empty())
                    && space.activity(sid).is_none()
                {
                    return Err(ApiError::invalid(format!(
                        "{field} {sid} is not an activity of this workspace"
                    )));
                }
            }
            if multi_task == Some(false) && space.workspace.multi_task_enabled {
                return Err(ApiError::invalid(
                    "A multi-tasking workspace can't be made single-tasking",
                ));
            }
            let w = &mut space.workspace;
            if let Some(name) = name {
                w.friendly_name = name;
            }
            if let Some(url) = url {
                w.event_callback_url = url;
            }
            if let Some(filter) = form.get("EventsFilter") {
                w.events_filter = (!filter.is_empty()).then(|| filter.to_string());
            }
            if let Some(multi) = multi_task {
                w.multi_task_enabled = multi;
            }
            if let Some(order) = order {
                w.prioritize_queue_order = order.as_str().to_string();
            }
            // An empty value unsets: new workers then need an ActivitySid, and a worker whose
            // reservation times out keeps its activity.
            if let Some(sid) = form.get("DefaultActivitySid") {
                w.default_activity_sid = (!sid.is_empty()).then(|| sid.to_string());
            }
            if let Some(sid) = form.get("TimeoutActivitySid") {
                w.timeout_activity_sid = (!sid.is_empty()).then(|| sid.to_string());
            }
            // An empty value unbinds workers from presence.
            if let Some(sid) = form.get("PresenceOfflineActivitySid") {
                w.presence_offline_activity_sid = (!sid.is_empty()).then(|| sid.to_string());
            }
            if let Some(sid) = form.get("PresenceOnlineActivitySid") {
                w.presence_online_activity_sid = (!sid.is_empty()).then(|| sid.to_string());
            }
            let now = space.now();
            let w = &mut space.workspace;
            w.date_updated = now;
            fx.change
                .push(crate::routing::store::workspace_row(&space.workspace));
            let sid = space.workspace.sid.clone();
            space.event(
                fx,
                "workspace.updated",
                "workspace",
                &sid,
                format!("Workspace {sid} updated"),
                Default::default(),
            );
            Ok(Json(views::workspace(&base, space)).into_response())
        })
        .await
}

#[utoipa::path(delete, path = "/v1/Workspaces/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("Sid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 204, description = "The workspace and everything in it are deleted"), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn delete_workspace(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
) -> ApiResult<Response> {
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            fx.change
                .extend(crate::routing::store::delete_workspace_contents(
                    &space.workspace.sid,
                ));
            let sid = space.workspace.sid.clone();
            space.event(
                fx,
                "workspace.deleted",
                "workspace",
                &sid,
                format!("Workspace {sid} deleted"),
                Default::default(),
            );
            space.tasks.clear();
            space.reservations.clear();
            Ok(())
        })
        .await?;
    state.routing.remove_space(&ws);
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----- activities -----

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/Activities", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 201, description = "The new activity"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody), (status = 409, description = "An activity of that name exists", body = crate::api::error::ErrorBody)))]
pub async fn create_activity(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, true)?.unwrap_or_default();
    let available = boolean(&form, "Available")?.unwrap_or(false);
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            if space
                .activities
                .iter()
                .any(|a| a.friendly_name.eq_ignore_ascii_case(&name))
            {
                return Err(ApiError::new(
                    Code::Conflict,
                    format!("An activity named {name:?} already exists in this workspace"),
                ));
            }
            let now = space.now();
            let activity = Activity {
                sid: new_sid("WA"),
                friendly_name: name,
                available,
                date_created: now,
                date_updated: now,
            };
            fx.change.push(crate::routing::store::activity_row(
                &space.workspace.sid,
                &activity,
            ));
            space.event(
                fx,
                "activity.created",
                "activity",
                &activity.sid,
                format!("Activity {} created", activity.friendly_name),
                Default::default(),
            );
            let body = views::activity(&caller.base, space, &activity);
            space.activities.push(activity);
            Ok(created(body))
        })
        .await
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Activities", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "`activities` list envelope (`FriendlyName`, `Available` narrow)"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn list_activities(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let available = boolean(&query, "Available")?;
    let items = state.routing.read(&caller.account_sid, &ws, |space| {
        Ok(space
            .activities
            .iter()
            .filter(|a| {
                query
                    .get("FriendlyName")
                    .is_none_or(|n| a.friendly_name == n)
            })
            .filter(|a| available.is_none_or(|v| a.available == v))
            .map(|a| views::activity(&caller.base, space, a))
            .collect())
    })?;
    envelope(
        &caller.base,
        &format!("/v1/Workspaces/{ws}/Activities"),
        "activities",
        &query,
        items,
    )
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Activities/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The activity's sid (WA...)")),
    responses((status = 200, description = "The activity"), (status = 404, description = "No such workspace or activity", body = crate::api::error::ErrorBody)))]
pub async fn fetch_activity(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
) -> ApiResult<Response> {
    state.routing.read(&caller.account_sid, &ws, |space| {
        let activity = space.activity(&sid).ok_or_else(|| not_found(&sid))?;
        Ok(Json(views::activity(&caller.base, space, activity)).into_response())
    })
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/Activities/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The activity's sid (WA...)")),
    responses((status = 200, description = "The renamed activity"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or activity", body = crate::api::error::ErrorBody)))]
pub async fn update_activity(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, false)?;
    if form.get("Available").is_some() {
        return Err(ApiError::invalid(
            "Available cannot be changed after the activity is created",
        ));
    }
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            let now = space.now();
            let ws_sid = space.workspace.sid.clone();
            let activity = space
                .activities
                .iter_mut()
                .find(|a| a.sid == sid)
                .ok_or_else(|| not_found(&sid))?;
            if let Some(name) = name {
                activity.friendly_name = name;
            }
            activity.date_updated = now;
            let activity = activity.clone();
            fx.change
                .push(crate::routing::store::activity_row(&ws_sid, &activity));
            space.event(
                fx,
                "activity.updated",
                "activity",
                &sid,
                format!("Activity {} updated", activity.friendly_name),
                Default::default(),
            );
            Ok(Json(views::activity(&caller.base, space, &activity)).into_response())
        })
        .await
}

#[utoipa::path(delete, path = "/v1/Workspaces/{WorkspaceSid}/Activities/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The activity's sid (WA...)")),
    responses((status = 204, description = "The activity is deleted"), (status = 404, description = "No such workspace or activity", body = crate::api::error::ErrorBody), (status = 409, description = "The activity is the workspace's default or timeout activity, has workers, or a task queue uses it", body = crate::api::error::ErrorBody)))]
pub async fn delete_activity(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
) -> ApiResult<Response> {
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            space.activity(&sid).ok_or_else(|| not_found(&sid))?;
            let w = &space.workspace;
            if [&w.default_activity_sid, &w.timeout_activity_sid, &w.presence_offline_activity_sid, &w.presence_online_activity_sid].iter().any(|a| a.as_deref() == Some(sid.as_str())) {
                return Err(ApiError::new(Code::Conflict, "The activity is the workspace's default, timeout or presence activity; change those first"));
            }
            if space.workers.values().any(|w| w.activity_sid == sid) {
                return Err(ApiError::new(Code::Conflict, "Workers are in this activity; move them to another first"));
            }
            if space.queues.values().any(|q| q.reservation_activity_sid.as_deref() == Some(sid.as_str()) || q.assignment_activity_sid.as_deref() == Some(sid.as_str())) {
                return Err(ApiError::new(Code::Conflict, "A task queue uses this activity for reservations or assignments; change the queue first"));
            }
            space.activities.retain(|a| a.sid != sid);
            fx.change.push(crate::routing::store::delete(crate::routing::store::Table::Activity, &sid));
            space.event(fx, "activity.deleted", "activity", &sid, format!("Activity {sid} deleted"), Default::default());
            Ok(StatusCode::NO_CONTENT.into_response())
        })
        .await
}

// ----- task channels -----

fn valid_unique_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/TaskChannels", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 201, description = "The new task channel (every worker gets capacity 1 on it)"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody), (status = 409, description = "A task channel of that unique name exists", body = crate::api::error::ErrorBody)))]
pub async fn create_channel(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, true)?.unwrap_or_default();
    let unique = form
        .get("UniqueName")
        .ok_or_else(|| ApiError::invalid("UniqueName is required"))?
        .to_string();
    if !valid_unique_name(&unique) {
        return Err(ApiError::invalid(
            "UniqueName must be letters, digits, _ and $, not starting with a digit",
        ));
    }
    let optimized = boolean(&form, "ChannelOptimizedRouting")?.unwrap_or(false);
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            if space.channels.iter().any(|c| c.unique_name == unique) {
                return Err(ApiError::new(
                    Code::Conflict,
                    format!("A task channel {unique:?} already exists"),
                ));
            }
            if space.channels.len() >= 15 {
                return Err(ApiError::invalid(
                    "A workspace holds at most 15 task channels",
                ));
            }
            let now = space.now();
            let channel = TaskChannel {
                sid: new_sid("TC"),
                friendly_name: name,
                unique_name: unique,
                channel_optimized_routing: optimized,
                date_created: now,
                date_updated: now,
            };
            let ws_sid = space.workspace.sid.clone();
            fx.change
                .push(crate::routing::store::channel_row(&ws_sid, &channel));
            let worker_sids: Vec<String> = space.workers.keys().cloned().collect();
            for worker_sid in worker_sids {
                let capacity = WorkerChannel {
                    sid: new_sid("WC"),
                    task_channel_sid: channel.sid.clone(),
                    capacity: 1,
                    available: true,
                    active: 0,
                    assigned: 0,
                    date_created: now,
                    date_updated: now,
                };
                fx.change.push(crate::routing::store::worker_channel_row(
                    &ws_sid,
                    &worker_sid,
                    &capacity,
                ));
                if let Some(worker) = space.workers.get_mut(&worker_sid) {
                    worker.channels.push(capacity);
                }
            }
            space.event(
                fx,
                "task-channel.created",
                "task_channel",
                &channel.sid,
                format!("Task channel {} created", channel.unique_name),
                Default::default(),
            );
            let body = views::task_channel(&caller.base, space, &channel);
            space.channels.push(channel);
            let workers: Vec<String> = space.workers.keys().cloned().collect();
            for worker in workers {
                space.recompute_membership(&worker);
            }
            Ok(created(body))
        })
        .await
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/TaskChannels", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "`channels` list envelope"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn list_channels(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let items = state.routing.read(&caller.account_sid, &ws, |space| {
        Ok(space
            .channels
            .iter()
            .map(|c| views::task_channel(&caller.base, space, c))
            .collect())
    })?;
    envelope(
        &caller.base,
        &format!("/v1/Workspaces/{ws}/TaskChannels"),
        "channels",
        &query,
        items,
    )
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/TaskChannels/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The task channel's sid (TC...) or unique name")),
    responses((status = 200, description = "The task channel"), (status = 404, description = "No such workspace or task channel", body = crate::api::error::ErrorBody)))]
pub async fn fetch_channel(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
) -> ApiResult<Response> {
    state.routing.read(&caller.account_sid, &ws, |space| {
        let channel = space.channel_by_ref(&sid).ok_or_else(|| not_found(&sid))?;
        Ok(Json(views::task_channel(&caller.base, space, channel)).into_response())
    })
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/TaskChannels/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The task channel's sid (TC...) or unique name")),
    responses((status = 200, description = "The updated task channel"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or task channel", body = crate::api::error::ErrorBody)))]
pub async fn update_channel(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, false)?;
    let optimized = boolean(&form, "ChannelOptimizedRouting")?;
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            let now = space.now();
            let ws_sid = space.workspace.sid.clone();
            let channel = space
                .channels
                .iter_mut()
                .find(|c| c.sid == sid || c.unique_name == sid)
                .ok_or_else(|| not_found(&sid))?;
            if let Some(name) = name {
                channel.friendly_name = name;
            }
            if let Some(optimized) = optimized {
                channel.channel_optimized_routing = optimized;
            }
            channel.date_updated = now;
            let channel = channel.clone();
            fx.change
                .push(crate::routing::store::channel_row(&ws_sid, &channel));
            space.event(
                fx,
                "task-channel.updated",
                "task_channel",
                &channel.sid,
                format!("Task channel {} updated", channel.unique_name),
                Default::default(),
            );
            Ok(Json(views::task_channel(&caller.base, space, &channel)).into_response())
        })
        .await
}

#[utoipa::path(delete, path = "/v1/Workspaces/{WorkspaceSid}/TaskChannels/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The task channel's sid (TC...) or unique name")),
    responses((status = 204, description = "The task channel is deleted"), (status = 404, description = "No such workspace or task channel", body = crate::api::error::ErrorBody), (status = 409, description = "Tasks of this channel are still open", body = crate::api::error::ErrorBody)))]
pub async fn delete_channel(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
) -> ApiResult<Response> {
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            let channel = space
                .channel_by_ref(&sid)
                .ok_or_else(|| not_found(&sid))?
                .sid
                .clone();
            if space.tasks.values().any(|t| t.task_channel_sid == channel) {
                return Err(ApiError::new(
                    Code::Conflict,
                    "Tasks of this channel are still open; finish them first",
                ));
            }
            space.channels.retain(|c| c.sid != channel);
            for worker in space.workers.values_mut() {
                worker.channels.retain(|c| c.task_channel_sid != channel);
            }
            fx.change.push(crate::routing::store::delete(
                crate::routing::store::Table::TaskChannel,
                &channel,
            ));
            fx.change.push(crate::routing::store::delete(
                crate::routing::store::Table::WorkerChannelsOfChannel,
                &channel,
            ));
            space.event(
                fx,
                "task-channel.deleted",
                "task_channel",
                &channel,
                format!("Task channel {channel} deleted"),
                Default::default(),
            );
            Ok(StatusCode::NO_CONTENT.into_response())
        })
        .await
}
