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

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::model::Task;
use crate::api::FormPairs;
use crate::api::auth::Tenant;
use crate::api::error::{ApiError, ApiResult, Code};
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
