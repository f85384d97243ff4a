//! The reference's TaskRouter REST API under `/v1/Workspaces`: form-encoded PascalCase in,
//! snake_case JSON out, list envelopes with absolute page URLs, ETag / If-Match on tasks, workers
//! and reservations.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::model::*;
use super::space::{Effects, Space, target_workers};
use super::{find_workflow, lock, views, workflow};
use crate::api::FormPairs;
use crate::api::auth::Tenant;
use crate::api::error::{ApiError, ApiResult, Code};
use crate::app::AppState;
use crate::sid::new_sid;
use crate::telephony::resources::check_callback_url;

pub fn routes() -> Router<AppState> {
    let ws = "/v1/Workspaces/{workspace_sid}";
    Router::new()
        .route(
            "/v1/Workspaces",
            get(list_workspaces).post(create_workspace),
        )
        .route(
            ws,
            get(fetch_workspace)
                .post(update_workspace)
                .delete(delete_workspace),
        )
        .route(
            &format!("{ws}/Activities"),
            get(list_activities).post(create_activity),
        )
        .route(
            &format!("{ws}/Activities/{{sid}}"),
            get(fetch_activity)
                .post(update_activity)
                .delete(delete_activity),
        )
        .route(
            &format!("{ws}/TaskChannels"),
            get(list_channels).post(create_channel),
        )
        .route(
            &format!("{ws}/TaskChannels/{{sid}}"),
            get(fetch_channel)
                .post(update_channel)
                .delete(delete_channel),
        )
        .route(
            &format!("{ws}/Workers"),
            get(list_workers).post(create_worker),
        )
        .route(
            &format!("{ws}/Workers/{{sid}}"),
            get(fetch_worker).post(update_worker).delete(delete_worker),
        )
        .route(
            &format!("{ws}/Workers/{{sid}}/Channels"),
            get(list_worker_channels),
        )
        .route(
            &format!("{ws}/Workers/{{sid}}/Channels/{{channel}}"),
            get(fetch_worker_channel).post(update_worker_channel),
        )
        .route(
            &format!("{ws}/Workers/{{sid}}/Reservations"),
            get(list_worker_reservations),
        )
        .route(
            &format!("{ws}/Workers/{{sid}}/Reservations/{{reservation}}"),
            get(fetch_worker_reservation).post(update_worker_reservation),
        )
        .route(
            &format!("{ws}/TaskQueues"),
            get(list_queues).post(create_queue),
        )
        .route(
            &format!("{ws}/TaskQueues/{{sid}}"),
            get(fetch_queue).post(update_queue).delete(delete_queue),
        )
        .route(
            &format!("{ws}/Workflows"),
            get(list_workflows).post(create_workflow),
        )
        .route(
            &format!("{ws}/Workflows/{{sid}}"),
            get(fetch_workflow)
                .post(update_workflow)
                .delete(delete_workflow),
        )
        .route(&format!("{ws}/Tasks"), get(list_tasks).post(create_task))
        .route(
            &format!("{ws}/Tasks/{{sid}}"),
            get(fetch_task).post(update_task).delete(delete_task),
        )
        .route(
            &format!("{ws}/Tasks/{{sid}}/Reservations"),
            get(list_task_reservations),
        )
        .route(
            &format!("{ws}/Tasks/{{sid}}/Reservations/{{reservation}}"),
            get(fetch_task_reservation).post(update_task_reservation),
        )
        .merge(super::statistics::routes())
}

/// An authenticated tenant request, with the absolute base URL its answers' links use.
pub struct Caller {
    pub account_sid: String,
    pub base: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Tenant(account) = Tenant::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Caller {
            account_sid: account.sid,
            base: base_url(&parts.headers),
        })
    }
}

/// The scheme and host clients reached us at, for the absolute URLs the reference's SDKs follow.
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// Query parameters as name/value pairs (list filters may repeat, e.g. `AssignmentStatus`).
pub struct QueryPairs(pub FormPairs);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map(|pairs| QueryPairs(FormPairs(pairs)))
            .map_err(|e| ApiError::invalid(format!("the query string is not valid: {e}")))
    }
}

/// Cuts a page out of `items` and wraps it in the reference's envelope with absolute URLs that
/// keep the request's filters.
pub fn envelope(
    base: &str,
    path: &str,
    key: &str,
    query: &FormPairs,
    items: Vec<Value>,
) -> ApiResult<Response> {
    let size = match query.get("PageSize") {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(format!("PageSize must be 1 to 1000, not {text:?}"))
            })?,
        None => 50,
    };
    let page = match query.get("Page") {
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| ApiError::invalid(format!("Page must be a whole number, not {text:?}")))?,
        None => 0,
    };
    let filters: Vec<(String, String)> = query
        .0
        .iter()
        .filter(|(k, _)| k != "PageSize" && k != "Page" && k != "PageToken")
        .cloned()
        .collect();
    let url = |p: usize| {
        let mut pairs = filters.clone();
        pairs.push(("PageSize".into(), size.to_string()));
        pairs.push(("Page".into(), p.to_string()));
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        format!("{base}{path}?{query}")
    };
    let total = items.len();
    let start = page.saturating_mul(size);
    let items: Vec<Value> = items.into_iter().skip(start).take(size).collect();
    let more = start + items.len() < total;
    Ok(Json(json!({
        key: items,
        "meta": {
            "first_page_url": url(0),
            "key": key,
            "next_page_url": more.then(|| url(page + 1)),
            "page": page,
            "page_size": size,
            "previous_page_url": (page > 0).then(|| url(page - 1)),
            "url": url(page),
        }
    }))
    .into_response())
}

fn created(value: Value) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

/// An answer carrying the resource's version as its ETag.
fn versioned(status: StatusCode, value: Value, version: i64) -> Response {
    let mut response = (status, Json(value)).into_response();
    if let Ok(tag) = axum::http::HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

/// Checks `If-Match` against a resource's version (quoted or not, as clients send it).
fn check_if_match(headers: &HeaderMap, version: i64) -> ApiResult<()> {
    let Some(given) = headers.get(header::IF_MATCH).and_then(|h| h.to_str().ok()) else {
        return Ok(());
    };
    let given = given.trim();
    if given == "*" {
        return Ok(());
    }
    let bare = given.trim_start_matches("W/").trim_matches('"');
    if bare == version.to_string() {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::PreconditionFailed,
            format!(
                "If-Match {given} does not match the current version \"{version}\": fetch the resource again and retry"
            ),
        ))
    }
}

fn boolean(form: &FormPairs, name: &str) -> ApiResult<Option<bool>> {
    form.get(name)
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(ApiError::invalid(format!(
                "{name} must be true or false, not {v:?}"
            ))),
        })
        .transpose()
}

fn integer(
    form: &FormPairs,
    name: &str,
    range: std::ops::RangeInclusive<i64>,
) -> ApiResult<Option<i64>> {
    form.get(name)
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "{name} must be a whole number from {} to {}, not {v:?}",
                        range.start(),
                        range.end()
                    ))
                })
        })
        .transpose()
}

fn friendly_name(form: &FormPairs, required: bool) -> ApiResult<Option<String>> {
    match form.get("FriendlyName") {
        Some(name) if name.trim().is_empty() => {
            Err(ApiError::invalid("FriendlyName must not be empty"))
        }
        Some(name) if name.chars().count() > 64 => Err(ApiError::invalid(
            "FriendlyName must be at most 64 characters",
        )),
        Some(name) => Ok(Some(name.to_string())),
        None if required => Err(ApiError::invalid("FriendlyName is required")),
        None => Ok(None),
    }
}

/// A JSON object given as text (Attributes), at most 4096 characters as the reference limits it.
fn attributes(form: &FormPairs, name: &str) -> ApiResult<Option<(String, Value)>> {
    let Some(text) = form.get(name) else {
        return Ok(None);
    };
    if text.chars().count() > 4096 {
        return Err(ApiError::invalid(format!(
            "{name} must be at most 4096 characters"
        )));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Ok(Some((text.to_string(), value))),
        Ok(_) => Err(ApiError::invalid(format!("{name} must be a JSON object"))),
        Err(e) => Err(ApiError::invalid(format!("{name} is not valid JSON: {e}"))),
    }
}

fn callback_url(form: &FormPairs, name: &str) -> ApiResult<Option<String>> {
    match form.get(name) {
        Some("") => Ok(None),
        Some(url) => {
            check_callback_url(name, url)?;
            Ok(Some(url.to_string()))
        }
        None => Ok(None),
    }
}

fn not_found(what: &str) -> ApiError {
    ApiError::not_found(what)
}

// ----- workspaces -----

#[utoipa::path(post, path = "/v1/Workspaces", tag = "work distribution", security(("account" = [])),
    responses((status = 201, description = "The new workspace, with the Offline, Available and Unavailable activities and the default task channels"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody)))]
pub async fn create_workspace(
    caller: Caller,
    State(state): State<AppState>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, true)?.unwrap_or_default();
    let event_callback_url = callback_url(&form, "EventCallbackUrl")?;
    let multi_task = boolean(&form, "MultiTaskEnabled")?.unwrap_or(true);
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
        .push(super::store::workspace_row(&space.workspace));
    for a in &space.activities {
        fx.change.push(super::store::activity_row(&ws, a));
    }
    for c in &space.channels {
        fx.change.push(super::store::channel_row(&ws, c));
    }
    space.event(
        &mut fx,
        "workspace.created",
        "workspace",
        &ws,
        format!("Workspace {ws} created"),
        Default::default(),
    );
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
            for field in ["DefaultActivitySid", "TimeoutActivitySid"] {
                if let Some(sid) = form.get(field)
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
            if let Some(sid) = form.get("DefaultActivitySid") {
                w.default_activity_sid = Some(sid.to_string());
            }
            if let Some(sid) = form.get("TimeoutActivitySid") {
                w.timeout_activity_sid = Some(sid.to_string());
            }
            let now = space.now();
            let w = &mut space.workspace;
            w.date_updated = now;
            fx.change
                .push(super::store::workspace_row(&space.workspace));
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
            fx.change.extend(super::store::delete_workspace_contents(
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
            fx.change
                .push(super::store::activity_row(&space.workspace.sid, &activity));
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
                .push(super::store::activity_row(&ws_sid, &activity));
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
            if w.default_activity_sid.as_deref() == Some(sid.as_str()) || w.timeout_activity_sid.as_deref() == Some(sid.as_str()) {
                return Err(ApiError::new(Code::Conflict, "The activity is the workspace's default or timeout activity; change those first"));
            }
            if space.workers.values().any(|w| w.activity_sid == sid) {
                return Err(ApiError::new(Code::Conflict, "Workers are in this activity; move them to another first"));
            }
            if space.queues.values().any(|q| q.reservation_activity_sid.as_deref() == Some(sid.as_str()) || q.assignment_activity_sid.as_deref() == Some(sid.as_str())) {
                return Err(ApiError::new(Code::Conflict, "A task queue uses this activity for reservations or assignments; change the queue first"));
            }
            space.activities.retain(|a| a.sid != sid);
            fx.change.push(super::store::delete(super::store::Table::Activity, &sid));
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
            fx.change.push(super::store::channel_row(&ws_sid, &channel));
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
                fx.change.push(super::store::worker_channel_row(
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
            fx.change.push(super::store::channel_row(&ws_sid, &channel));
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
            fx.change.push(super::store::delete(
                super::store::Table::TaskChannel,
                &channel,
            ));
            fx.change.push(super::store::delete(
                super::store::Table::WorkerChannelsOfChannel,
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

// ----- workers -----

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
                views::worker(&caller.base, space, worker, true),
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
            super::expression::Expression::parse(text)
                .map_err(|e| ApiError::invalid(format!("TargetWorkersExpression: {e}")))
        })
        .transpose()?;
    let items = state.routing.read(&caller.account_sid, &ws, |space| {
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
            .filter(|w| {
                query
                    .get("FriendlyName")
                    .is_none_or(|n| w.friendly_name == n)
            })
            .filter(|w| available.is_none_or(|v| space.worker_available(w) == v))
            .filter(|w| queue.is_none_or(|q| q.members.contains(&w.sid)))
            .filter(|w| {
                expression
                    .as_ref()
                    .is_none_or(|e| e.evaluate(&super::expression::Document(&w.attributes)))
            })
            .collect();
        workers.sort_by(|a, b| (a.date_created, &a.sid).cmp(&(b.date_created, &b.sid)));
        Ok(workers
            .into_iter()
            .map(|w| views::worker(&caller.base, space, w, false))
            .collect())
    })?;
    envelope(
        &caller.base,
        &format!("/v1/Workspaces/{ws}/Workers"),
        "workers",
        &query,
        items,
    )
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
            views::worker(&caller.base, space, worker, true),
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
            Ok(versioned(StatusCode::OK, views::worker(&caller.base, space, worker, true), worker.version))
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
                    ready.retain(|(_, w)| w != &sid);
                }
            }
            space.workers.remove(&sid);
            fx.change
                .push(super::store::delete(super::store::Table::Worker, &sid));
            fx.change.push(super::store::delete(
                super::store::Table::WorkerChannelsOfWorker,
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

// ----- task queues -----

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
            fx.change
                .push(super::store::queue_row(&space.workspace.sid, &queue));
            space.queues.insert(sid.clone(), queue);
            space.recompute_queue(&sid);
            space.event(
                fx,
                "task-queue.created",
                "task_queue",
                &sid,
                format!("Task queue {sid} created"),
                Default::default(),
            );
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
                worker_attributes
                    .as_ref()
                    .is_none_or(|a| q.target_workers.evaluate(&super::expression::Document(a)))
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
            fx.change
                .push(super::store::queue_row(&space.workspace.sid, queue));
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
            fx.change
                .push(super::store::delete(super::store::Table::TaskQueue, &sid));
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

// ----- workflows -----

fn reservation_timeout(form: &FormPairs) -> ApiResult<Option<i64>> {
    integer(form, "TaskReservationTimeout", 1..=86_400)
}

fn compile(space: &Space, text: &str) -> ApiResult<workflow::Configuration> {
    workflow::parse(text, &|sid| space.queues.contains_key(sid))
        .map_err(|e| ApiError::invalid(e.to_string()))
}

/// An assignment callback: an http(s) URL, or a `module:` URI naming an event-subscriber module.
fn assignment_url(form: &FormPairs, name: &str) -> ApiResult<Option<String>> {
    match form.get(name) {
        Some("") | None => Ok(None),
        Some(url) => {
            crate::telephony::resources::check_uri(name, url)?;
            Ok(Some(url.to_string()))
        }
    }
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/Workflows", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 201, description = "The new workflow"), (status = 400, description = "An invalid parameter or Configuration (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn create_workflow(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, true)?.unwrap_or_default();
    let text = form
        .get("Configuration")
        .ok_or_else(|| ApiError::invalid("Configuration is required"))?
        .to_string();
    let url = assignment_url(&form, "AssignmentCallbackUrl")?;
    let fallback = assignment_url(&form, "FallbackAssignmentCallbackUrl")?;
    let timeout = reservation_timeout(&form)?.unwrap_or(super::space::DEFAULT_RESERVATION_TIMEOUT);
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            let configuration = compile(space, &text)?;
            let now = space.now();
            let workflow = Workflow {
                sid: new_sid("WW"),
                friendly_name: name,
                configuration_text: text,
                configuration: Arc::new(configuration),
                assignment_callback_url: url,
                fallback_assignment_callback_url: fallback,
                task_reservation_timeout: timeout,
                date_created: now,
                date_updated: now,
            };
            fx.change
                .push(super::store::workflow_row(&space.workspace.sid, &workflow));
            space.event(
                fx,
                "workflow.created",
                "workflow",
                &workflow.sid,
                format!("Workflow {} created", workflow.friendly_name),
                Default::default(),
            );
            let body = views::workflow(&caller.base, space, &workflow);
            space.workflows.insert(workflow.sid.clone(), workflow);
            Ok(created(body))
        })
        .await
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workflows", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "`workflows` list envelope (`FriendlyName` narrows)"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn list_workflows(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let items = state.routing.read(&caller.account_sid, &ws, |space| {
        let mut workflows: Vec<&Workflow> = space
            .workflows
            .values()
            .filter(|w| {
                query
                    .get("FriendlyName")
                    .is_none_or(|n| w.friendly_name == n)
            })
            .collect();
        workflows.sort_by(|a, b| (a.date_created, &a.sid).cmp(&(b.date_created, &b.sid)));
        Ok(workflows
            .into_iter()
            .map(|w| views::workflow(&caller.base, space, w))
            .collect())
    })?;
    envelope(
        &caller.base,
        &format!("/v1/Workspaces/{ws}/Workflows"),
        "workflows",
        &query,
        items,
    )
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workflows/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The workflow's sid (WW...)")),
    responses((status = 200, description = "The workflow"), (status = 404, description = "No such workspace or workflow", body = crate::api::error::ErrorBody)))]
pub async fn fetch_workflow(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
) -> ApiResult<Response> {
    state.routing.read(&caller.account_sid, &ws, |space| {
        let workflow = space.workflows.get(&sid).ok_or_else(|| not_found(&sid))?;
        Ok(Json(views::workflow(&caller.base, space, workflow)).into_response())
    })
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/Workflows/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The workflow's sid (WW...)")),
    responses((status = 200, description = "The updated workflow (`ReEvaluateTasks` reroutes its pending tasks)"), (status = 400, description = "An invalid parameter or Configuration (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or workflow", body = crate::api::error::ErrorBody)))]
pub async fn update_workflow(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, false)?;
    let timeout = reservation_timeout(&form)?;
    let url = form
        .get("AssignmentCallbackUrl")
        .map(|_| assignment_url(&form, "AssignmentCallbackUrl"))
        .transpose()?;
    let fallback = form
        .get("FallbackAssignmentCallbackUrl")
        .map(|_| assignment_url(&form, "FallbackAssignmentCallbackUrl"))
        .transpose()?;
    let reevaluate = boolean(&form, "ReEvaluateTasks")?.unwrap_or(false);
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            let configuration = form
                .get("Configuration")
                .map(|text| compile(space, text).map(|c| (text.to_string(), c)))
                .transpose()?;
            let now = space.now();
            let workflow = space
                .workflows
                .get_mut(&sid)
                .ok_or_else(|| not_found(&sid))?;
            if let Some(name) = name {
                workflow.friendly_name = name;
            }
            if let Some((text, compiled)) = configuration {
                workflow.configuration_text = text;
                workflow.configuration = Arc::new(compiled);
            }
            if let Some(url) = url {
                workflow.assignment_callback_url = url;
            }
            if let Some(fallback) = fallback {
                workflow.fallback_assignment_callback_url = fallback;
            }
            if let Some(timeout) = timeout {
                workflow.task_reservation_timeout = timeout;
            }
            workflow.date_updated = now;
            fx.change
                .push(super::store::workflow_row(&space.workspace.sid, workflow));
            space.event(
                fx,
                "workflow.updated",
                "workflow",
                &sid,
                format!("Workflow {sid} updated"),
                Default::default(),
            );
            if reevaluate {
                let waiting: Vec<String> = space
                    .tasks
                    .values()
                    .filter(|t| {
                        t.status == TaskStatus::Pending
                            && t.workflow_sid.as_deref() == Some(sid.as_str())
                    })
                    .map(|t| t.sid.clone())
                    .collect();
                for task in waiting {
                    let attributes = space
                        .tasks
                        .get(&task)
                        .map(|t| (t.attributes_text.clone(), t.attributes.clone()));
                    if let Some((text, value)) = attributes {
                        space.update_task_attributes(fx, &task, text, value);
                    }
                }
            }
            let workflow = space.workflows.get(&sid).ok_or_else(|| not_found(&sid))?;
            Ok(Json(views::workflow(&caller.base, space, workflow)).into_response())
        })
        .await
}

#[utoipa::path(delete, path = "/v1/Workspaces/{WorkspaceSid}/Workflows/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The workflow's sid (WW...)")),
    responses((status = 204, description = "The workflow is deleted"), (status = 400, description = "Tasks of this workflow are still open", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or workflow", body = crate::api::error::ErrorBody)))]
pub async fn delete_workflow(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
) -> ApiResult<Response> {
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            space.workflows.get(&sid).ok_or_else(|| not_found(&sid))?;
            if space
                .tasks
                .values()
                .any(|t| t.workflow_sid.as_deref() == Some(sid.as_str()))
            {
                return Err(ApiError::invalid(
                    "Tasks of this workflow are still open; finish them first",
                ));
            }
            space.workflows.remove(&sid);
            fx.change
                .push(super::store::delete(super::store::Table::Workflow, &sid));
            space.event(
                fx,
                "workflow.deleted",
                "workflow",
                &sid,
                format!("Workflow {sid} deleted"),
                Default::default(),
            );
            Ok(StatusCode::NO_CONTENT.into_response())
        })
        .await
}

// ----- tasks -----

/// Checks a new task's parameters and builds it (not yet routed).
pub fn new_task(space: &Space, form: &FormPairs, call_sid: Option<String>) -> ApiResult<Task> {
    let (attributes_text, attributes) =
        attributes(form, "Attributes")?.unwrap_or_else(|| ("{}".into(), json!({})));
    let priority = integer(form, "Priority", 0..=2_147_483_647)?.unwrap_or(0);
    let timeout = integer(form, "Timeout", 1..=1_209_600)?.unwrap_or(86_400);
    let workflow = find_workflow(space, form.get("WorkflowSid"))?;
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
    let virtual_start = match form.get("VirtualStartTime") {
        Some(text) => crate::store::parse_rfc3339(text).ok_or_else(|| {
            ApiError::invalid(format!(
                "VirtualStartTime must be an ISO 8601 time, not {text:?}"
            ))
        })?,
        None => now,
    };
    Ok(Task {
        sid: new_sid("WT"),
        workflow_sid: Some(workflow.sid.clone()),
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
        route: None,
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
    state.routing.read(&caller.account_sid, &ws, |space| {
        let live = space.tasks.get(&sid).unwrap_or(&task);
        Ok(versioned(
            StatusCode::CREATED,
            views::task(&caller.base, space, live, true),
            live.version,
        ))
    })
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Tasks", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "`tasks` list envelope, live and finished (status, queue, workflow, priority and `EvaluateTaskAttributes` filters; `Ordering`)"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn list_tasks(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let statuses = query.all("AssignmentStatus");
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
            super::expression::Expression::parse(text)
                .map_err(|e| ApiError::invalid(format!("EvaluateTaskAttributes: {e}")))
        })
        .transpose()?;
    let priority = integer(&query, "Priority", 0..=2_147_483_647)?;
    let space = state.routing.space(&caller.account_sid, &ws)?;
    let stored = super::store::stored_tasks(state.routing.db(), &ws).await?;
    let items = {
        let guard = lock(&space);
        let mut tasks: Vec<Task> = stored
            .into_iter()
            .map(|s| guard.tasks.get(&s.task.sid).cloned().unwrap_or(s.task))
            .collect();
        let mut fresh: Vec<Task> = guard
            .tasks
            .values()
            .filter(|t| !tasks.iter().any(|s| s.sid == t.sid))
            .cloned()
            .collect();
        fresh.sort_by(|a, b| (a.date_created, &a.sid).cmp(&(b.date_created, &b.sid)));
        tasks.extend(fresh);
        let ordering = query.get("Ordering").unwrap_or("DateCreated:asc");
        let descending = ordering.to_ascii_lowercase().ends_with(":desc");
        if ordering.starts_with("Priority") {
            tasks.sort_by_key(|t| (t.priority, t.date_created));
        }
        if descending {
            tasks.reverse();
        }
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
                expression
                    .as_ref()
                    .is_none_or(|e| e.evaluate(&super::expression::Document(&t.attributes)))
            })
            .map(|t| views::task(&caller.base, &guard, t, true))
            .collect()
    };
    envelope(
        &caller.base,
        &format!("/v1/Workspaces/{ws}/Tasks"),
        "tasks",
        &query,
        items,
    )
}

/// A task from memory when live, else as stored.
async fn any_task(state: &AppState, caller: &Caller, ws: &str, sid: &str) -> ApiResult<Task> {
    let live = state.routing.read(&caller.account_sid, ws, |space| {
        Ok(space.tasks.get(sid).cloned())
    })?;
    match live {
        Some(task) => Ok(task),
        None => super::store::stored_task(state.routing.db(), ws, sid)
            .await?
            .map(|s| s.task)
            .ok_or_else(|| not_found(sid)),
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
            if let Some(priority) = priority {
                space.update_task_priority(fx, &sid, priority);
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
                fx.change.push(super::store::delete(
                    super::store::Table::ReservationsOfTask,
                    &sid,
                ));
                fx.change
                    .push(super::store::delete(super::store::Table::Task, &sid));
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        })
        .await
}

// ----- reservations -----

/// Reservations of a workspace, live from memory and finished ones as stored.
async fn all_reservations(
    state: &AppState,
    caller: &Caller,
    ws: &str,
) -> ApiResult<Vec<Reservation>> {
    let space = state.routing.space(&caller.account_sid, ws)?;
    let stored = super::store::stored_reservations(state.routing.db(), ws).await?;
    let guard = lock(&space);
    // Live reservations are read from memory, which may be a commit ahead of the rows: the list
    // then agrees with what fetching the task or the reservation shows.
    let mut all: Vec<Reservation> = stored
        .into_iter()
        .map(|r| guard.reservations.get(&r.sid).cloned().unwrap_or(r))
        .collect();
    let mut fresh: Vec<Reservation> = guard
        .reservations
        .values()
        .filter(|r| !all.iter().any(|s| s.sid == r.sid))
        .cloned()
        .collect();
    fresh.sort_by(|a, b| (a.date_created, &a.sid).cmp(&(b.date_created, &b.sid)));
    all.extend(fresh);
    Ok(all)
}

async fn reservation_list(
    caller: Caller,
    state: AppState,
    ws: String,
    query: FormPairs,
    filter: impl Fn(&Reservation) -> bool,
    path: String,
) -> ApiResult<Response> {
    let status = query.get("ReservationStatus");
    let reservations = all_reservations(&state, &caller, &ws).await?;
    let items = state.routing.read(&caller.account_sid, &ws, |space| {
        Ok(reservations
            .iter()
            .filter(|r| filter(r))
            .filter(|r| status.is_none_or(|s| r.status.as_str() == s))
            .filter(|r| query.get("WorkerSid").is_none_or(|w| r.worker_sid == w))
            .map(|r| views::reservation(&caller.base, space, r, None))
            .collect())
    })?;
    envelope(&caller.base, &path, "reservations", &query, items)
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Tasks/{TaskSid}/Reservations", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("TaskSid" = String, Path, description = "The task's sid (WT...)")),
    responses((status = 200, description = "`reservations` list envelope of the task (`ReservationStatus`, `WorkerSid` narrow)"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or task", body = crate::api::error::ErrorBody)))]
pub async fn list_task_reservations(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    any_task(&state, &caller, &ws, &sid).await?;
    let path = format!("/v1/Workspaces/{ws}/Tasks/{sid}/Reservations");
    reservation_list(caller, state, ws, query, move |r| r.task_sid == sid, path).await
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Reservations", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("WorkerSid" = String, Path, description = "The worker's sid (WK...)")),
    responses((status = 200, description = "`reservations` list envelope of the worker (`ReservationStatus` narrows)"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or worker", body = crate::api::error::ErrorBody)))]
pub async fn list_worker_reservations(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    state.routing.read(&caller.account_sid, &ws, |space| {
        space
            .workers
            .get(&sid)
            .map(|_| ())
            .ok_or_else(|| not_found(&sid))
    })?;
    let path = format!("/v1/Workspaces/{ws}/Workers/{sid}/Reservations");
    reservation_list(caller, state, ws, query, move |r| r.worker_sid == sid, path).await
}

/// A reservation, checked to belong to the task or worker in the path.
async fn one_reservation(
    state: &AppState,
    caller: &Caller,
    ws: &str,
    owner: &str,
    sid: &str,
) -> ApiResult<Reservation> {
    let live = state.routing.read(&caller.account_sid, ws, |space| {
        Ok(space.reservations.get(sid).cloned())
    })?;
    let reservation = match live {
        Some(r) => r,
        None => super::store::stored_reservation(state.routing.db(), ws, sid)
            .await?
            .ok_or_else(|| not_found(sid))?,
    };
    if reservation.task_sid == owner || reservation.worker_sid == owner {
        Ok(reservation)
    } else {
        Err(not_found(sid))
    }
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Tasks/{TaskSid}/Reservations/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("TaskSid" = String, Path, description = "The task's sid (WT...)"), ("Sid" = String, Path, description = "The reservation's sid (WR...)")),
    responses((status = 200, description = "The reservation; its version is the ETag"), (status = 404, description = "No such workspace, or no such reservation of the task", body = crate::api::error::ErrorBody)))]
pub async fn fetch_task_reservation(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, owner, sid)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let r = one_reservation(&state, &caller, &ws, &owner, &sid).await?;
    state.routing.read(&caller.account_sid, &ws, |space| {
        Ok(versioned(
            StatusCode::OK,
            views::reservation(&caller.base, space, &r, None),
            r.version,
        ))
    })
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Reservations/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("WorkerSid" = String, Path, description = "The worker's sid (WK...)"), ("Sid" = String, Path, description = "The reservation's sid (WR...)")),
    responses((status = 200, description = "The reservation; its version is the ETag"), (status = 404, description = "No such workspace, or no such reservation of the worker", body = crate::api::error::ErrorBody)))]
pub async fn fetch_worker_reservation(
    caller: Caller,
    state: State<AppState>,
    path: Path<(String, String, String)>,
) -> ApiResult<Response> {
    fetch_task_reservation(caller, state, path).await
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/Tasks/{TaskSid}/Reservations/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("TaskSid" = String, Path, description = "The task's sid (WT...)"), ("Sid" = String, Path, description = "The reservation's sid (WR...)"), ("If-Match" = Option<String>, Header, description = "The ETag of the version the change is based on; a mismatch is answered 412")),
    responses((status = 200, description = "The updated reservation; its new version is the ETag"), (status = 400, description = "An invalid ReservationStatus or instruction (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace, or no such reservation of the task", body = crate::api::error::ErrorBody), (status = 409, description = "The reservation is not pending (or not accepted, to wrap or complete it)", body = crate::api::error::ErrorBody), (status = 412, description = "If-Match does not match the current version", body = crate::api::error::ErrorBody)))]
pub async fn update_task_reservation(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, owner, sid)): Path<(String, String, String)>,
    headers: HeaderMap,
    form: FormPairs,
) -> ApiResult<Response> {
    let current = one_reservation(&state, &caller, &ws, &owner, &sid).await?;
    check_if_match(&headers, current.version)?;
    let instruction = reservation_instruction(&form)?;
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            if let Some(r) = space.reservations.get(&sid) {
                check_if_match(&headers, r.version)?;
            }
            match instruction {
                Some(instruction) => apply_instruction(space, fx, &sid, &instruction),
                None => Ok(()),
            }
        })
        .await?;
    let r = one_reservation(&state, &caller, &ws, &owner, &sid).await?;
    state.routing.read(&caller.account_sid, &ws, |space| {
        Ok(versioned(
            StatusCode::OK,
            views::reservation(&caller.base, space, &r, None),
            r.version,
        ))
    })
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Reservations/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("WorkerSid" = String, Path, description = "The worker's sid (WK...)"), ("Sid" = String, Path, description = "The reservation's sid (WR...)"), ("If-Match" = Option<String>, Header, description = "The ETag of the version the change is based on; a mismatch is answered 412")),
    responses((status = 200, description = "The updated reservation; its new version is the ETag"), (status = 400, description = "An invalid ReservationStatus or instruction (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace, or no such reservation of the worker", body = crate::api::error::ErrorBody), (status = 409, description = "The reservation is not pending (or not accepted, to wrap or complete it)", body = crate::api::error::ErrorBody), (status = 412, description = "If-Match does not match the current version", body = crate::api::error::ErrorBody)))]
pub async fn update_worker_reservation(
    caller: Caller,
    state: State<AppState>,
    path: Path<(String, String, String)>,
    headers: HeaderMap,
    form: FormPairs,
) -> ApiResult<Response> {
    update_task_reservation(caller, state, path, headers, form).await
}

/// The instruction a reservation update carries, in the assignment callback's JSON shape.
fn reservation_instruction(form: &FormPairs) -> ApiResult<Option<Value>> {
    if let Some(instruction) = form.get("Instruction") {
        let mut value = json!({"instruction": instruction.to_ascii_lowercase()});
        for (param, key) in [
            ("DequeueTo", "to"),
            ("DequeueFrom", "from"),
            ("DequeueTimeout", "timeout"),
            ("DequeuePostWorkActivitySid", "post_work_activity_sid"),
            ("WorkerActivitySid", "activity_sid"),
            ("CallTo", "to"),
            ("CallFrom", "from"),
            ("CallUrl", "url"),
            ("CallAccept", "accept"),
            ("RedirectCallSid", "call_sid"),
            ("RedirectUrl", "url"),
            ("RedirectAccept", "accept"),
        ] {
            if let Some(v) = form.get(param) {
                value[key] = json!(v);
            }
        }
        return Ok(Some(value));
    }
    let Some(status) = form.get("ReservationStatus") else {
        return Ok(None);
    };
    let value = match status {
        "accepted" => json!({"instruction": "accept"}),
        "rejected" => {
            json!({"instruction": "reject", "activity_sid": form.get("WorkerActivitySid")})
        }
        "completed" => {
            json!({"instruction": "complete", "reason": form.get("Reason").unwrap_or("completed")})
        }
        "wrapping" => json!({"instruction": "wrap"}),
        other => {
            return Err(ApiError::invalid(format!(
                "ReservationStatus {other:?} can't be set: use accepted, rejected, wrapping or completed"
            )));
        }
    };
    Ok(Some(value))
}

/// Carries out an instruction on a reservation: from the REST API or an assignment callback.
pub fn apply_instruction(
    space: &mut Space,
    fx: &mut Effects,
    reservation_sid: &str,
    instruction: &Value,
) -> ApiResult<()> {
    let name = instruction
        .get("instruction")
        .and_then(Value::as_str)
        .unwrap_or("");
    let activity = instruction.get("activity_sid").and_then(Value::as_str);
    if let Some(activity) = activity
        && space.activity(activity).is_none()
    {
        return Err(ApiError::invalid(format!(
            "activity_sid {activity} is not an activity of this workspace"
        )));
    }
    match name {
        "accept" => space.accept(fx, reservation_sid),
        "reject" => space.reject(fx, reservation_sid, activity),
        "complete" | "wrap" => {
            let reservation = space
                .reservations
                .get(reservation_sid)
                .ok_or_else(|| not_found(reservation_sid))?;
            if !matches!(
                reservation.status,
                ReservationStatus::Accepted | ReservationStatus::Wrapping
            ) {
                return Err(ApiError::new(
                    Code::ReservationNotPending,
                    format!(
                        "Reservation {reservation_sid} is {}, not accepted",
                        reservation.status.as_str()
                    ),
                ));
            }
            let task = reservation.task_sid.clone();
            if name == "wrap" {
                space.wrap_task(fx, &task);
            } else {
                let reason = instruction
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("completed")
                    .to_string();
                space.complete_task(fx, &task, &reason);
            }
            Ok(())
        }
        "dequeue" => space.dequeue(fx, reservation_sid, instruction),
        "call" | "redirect" => {
            let text = |key: &str| {
                instruction
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let required = |key: &str| {
                text(key).ok_or_else(|| {
                    ApiError::invalid(format!("The {name} instruction needs `{key}`"))
                })
            };
            let url = required("url")?;
            crate::telephony::resources::check_uri("url", &url)?;
            let order = if name == "call" {
                let to = required("to")?;
                let from = required("from")?;
                super::space::CallOrder::Place { to, from, url }
            } else {
                let call_sid = required("call_sid")?;
                if !crate::sid::is_sid("CA", &call_sid) {
                    return Err(ApiError::invalid(format!(
                        "call_sid {call_sid:?} is not a call sid"
                    )));
                }
                super::space::CallOrder::Redirect { call_sid, url }
            };
            let accept = match instruction.get("accept") {
                Some(Value::Bool(accept)) => *accept,
                Some(Value::String(text)) => text.eq_ignore_ascii_case("true"),
                _ => false,
            };
            space.pending_reservation(reservation_sid)?;
            if accept {
                space.accept(fx, reservation_sid)?;
            }
            fx.calls.push(order);
            Ok(())
        }
        "conference" | "supervise" => Err(ApiError::new(
            Code::VerbNotAvailable,
            format!(
                "The {name} instruction is not available on this host: use accept, reject, dequeue, call or redirect"
            ),
        )),
        other => Err(ApiError::invalid(format!(
            "{other:?} is not an instruction: use accept, reject, dequeue, call or redirect"
        ))),
    }
}
