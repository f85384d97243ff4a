//! The reference platform's queue REST API under `/2010-04-01/Accounts/{AccountSid}/`: `Queues`
//! and their `Members`. A `POST` to a member (or to `Front`, the head) with `Url` dequeues that
//! caller and runs the URL (or `module:` URI) on its call.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::{DEFAULT_MAX_SIZE, MemberRef};
use crate::api::auth::Tenant;
use crate::api::error::{ApiError, ApiResult};
use crate::api::{ApiQuery, FormPairs, PageParams, legacy_page_envelope};
use crate::app::AppState;
use crate::telephony::api::{own_account, sid_of};
use crate::telephony::resources::{check_method, check_uri};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/2010-04-01/Accounts/{account_sid}/Queues.json",
            get(list_queues).post(create_queue),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/Queues/{file}",
            get(fetch_queue).post(update_queue).delete(delete_queue),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/Queues/{queue_sid}/Members.json",
            get(list_members),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/Queues/{queue_sid}/Members/{file}",
            get(fetch_member).post(dequeue_member),
        )
}

/// A whole number parameter, with a message naming it when it is not one.
fn integer(form: &FormPairs, name: &str) -> ApiResult<Option<i64>> {
    form.get(name)
        .map(|value| {
            value.trim().parse::<i64>().map_err(|_| {
                ApiError::invalid(format!("{name} must be a whole number, not {value:?}"))
            })
        })
        .transpose()
}

/// `Front.json` addresses the head of the queue; anything else names a call.
fn member_ref(file: &str) -> MemberRef {
    match sid_of(file) {
        "Front" => MemberRef::Front,
        call_sid => MemberRef::Call(call_sid.to_string()),
    }
}

/// Creates a queue.
#[utoipa::path(post, path = "/2010-04-01/Accounts/{AccountSid}/Queues.json", tag = "queues", security(("account" = [])),
    responses((status = 201, body = super::QueueResource), (status = 400, body = crate::api::error::ErrorBody), (status = 409, body = crate::api::error::ErrorBody)))]
pub async fn create_queue(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(account_sid): Path<String>,
    form: FormPairs,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let name = form
        .get("FriendlyName")
        .ok_or_else(|| ApiError::invalid("FriendlyName is required: name the queue"))?;
    let max_size = integer(&form, "MaxSize")?.unwrap_or(DEFAULT_MAX_SIZE);
    let queue = state.queues.create(&account.sid, name, max_size).await?;
    Ok((StatusCode::CREATED, Json(queue)).into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueListParams {
    friendly_name: Option<String>,
}

/// Lists the account's queues with their current size and average wait.
#[utoipa::path(get, path = "/2010-04-01/Accounts/{AccountSid}/Queues.json", tag = "queues", security(("account" = [])),
    responses((status = 200, description = "`queues` list envelope")))]
pub async fn list_queues(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(account_sid): Path<String>,
    ApiQuery(params): ApiQuery<QueueListParams>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let queues = state
        .queues
        .list(&account.sid, params.friendly_name.as_deref());
    let path = format!("/2010-04-01/Accounts/{account_sid}/Queues.json");
    Ok(legacy_page_envelope("queues", &path, &page, queues))
}

#[utoipa::path(get, path = "/2010-04-01/Accounts/{AccountSid}/Queues/{QueueSid}.json", tag = "queues", security(("account" = [])),
    responses((status = 200, body = super::QueueResource), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn fetch_queue(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((account_sid, file)): Path<(String, String)>,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let sid = sid_of(&file);
    let queue = state
        .queues
        .get(&account.sid, sid)
        .ok_or_else(|| ApiError::not_found(sid))?;
    Ok(Json(queue).into_response())
}

/// Renames a queue or changes its `MaxSize`.
#[utoipa::path(post, path = "/2010-04-01/Accounts/{AccountSid}/Queues/{QueueSid}.json", tag = "queues", security(("account" = [])),
    responses((status = 200, body = super::QueueResource), (status = 400, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn update_queue(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((account_sid, file)): Path<(String, String)>,
    form: FormPairs,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let sid = sid_of(&file);
    let max_size = integer(&form, "MaxSize")?;
    let queue = state
        .queues
        .update(&account.sid, sid, form.get("FriendlyName"), max_size)
        .await?;
    Ok(Json(queue).into_response())
}

/// Deletes an empty queue.
#[utoipa::path(delete, path = "/2010-04-01/Accounts/{AccountSid}/Queues/{QueueSid}.json", tag = "queues", security(("account" = [])),
    responses((status = 204), (status = 404, body = crate::api::error::ErrorBody), (status = 409, body = crate::api::error::ErrorBody)))]
pub async fn delete_queue(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((account_sid, file)): Path<(String, String)>,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    state.queues.delete(&account.sid, sid_of(&file)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The callers waiting in a queue, in service order.
#[utoipa::path(get, path = "/2010-04-01/Accounts/{AccountSid}/Queues/{QueueSid}/Members.json", tag = "queues", security(("account" = [])),
    responses((status = 200, description = "`queue_members` list envelope"), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn list_members(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((account_sid, queue_sid)): Path<(String, String)>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let members = state
        .queues
        .members(&account.sid, &queue_sid)
        .ok_or_else(|| ApiError::not_found(&queue_sid))?;
    let path = format!("/2010-04-01/Accounts/{account_sid}/Queues/{queue_sid}/Members.json");
    Ok(legacy_page_envelope("queue_members", &path, &page, members))
}

/// One waiting caller; `Front` is the head of the queue.
#[utoipa::path(get, path = "/2010-04-01/Accounts/{AccountSid}/Queues/{QueueSid}/Members/{CallSid}.json", tag = "queues", security(("account" = [])),
    responses((status = 200, body = super::Member), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn fetch_member(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((account_sid, queue_sid, file)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let member = state
        .queues
        .member(&account.sid, &queue_sid, &member_ref(&file))
        .ok_or_else(|| ApiError::not_found(&queue_sid))?
        .ok_or_else(|| ApiError::not_found(format!("{} in queue {queue_sid}", sid_of(&file))))?;
    Ok(Json(member).into_response())
}

/// Dequeues a caller (`Front` = the head) and runs `Url` on its call; the enqueue's outcome is
/// `redirected`. Answers once the caller has left the queue.
#[utoipa::path(post, path = "/2010-04-01/Accounts/{AccountSid}/Queues/{QueueSid}/Members/{CallSid}.json", tag = "queues", security(("account" = [])),
    responses((status = 200, body = super::Member), (status = 400, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn dequeue_member(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((account_sid, queue_sid, file)): Path<(String, String, String)>,
    form: FormPairs,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let url = form.get("Url").ok_or_else(|| {
        ApiError::invalid("Url is required: the instructions the dequeued call runs next")
    })?;
    check_uri("Url", url)?;
    let method = match form.get("Method") {
        Some(method) => check_method("Method", method)?,
        None => "POST".to_string(),
    };
    let member = state
        .queues
        .redirect_member(&account.sid, &queue_sid, member_ref(&file), url, &method)
        .await?;
    Ok(Json(member).into_response())
}
