//! The reference's TaskRouter REST API under `/v1/Workspaces`: form-encoded PascalCase in,
//! snake_case JSON out, list envelopes with absolute page URLs, ETag / If-Match on tasks, workers
//! and reservations.

mod queues;
mod reservations;
mod tasks;
mod workers;
mod workflows;
mod workspaces;

pub use queues::*;
pub use reservations::*;
pub use tasks::*;
pub use workers::*;
pub use workflows::*;
pub use workspaces::*;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::model::Task;
use crate::api::FormPairs;
use crate::api::error::{ApiError, ApiResult, Code};
pub use crate::api::resources::{Caller, QueryPairs, base_url, envelope, rendered_envelope};
use crate::api::resources::{boolean, friendly_name, integer};
use crate::app::AppState;
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
