//! The presence API: `/v1/Keys` (API keys that sign access tokens), `GET /v1/Presence/Connect`
//! (the clients' WebSocket) and `/v1/Presence/Clients` (who is online).

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::keys::{ApiKey, Keys};
use super::socket::MAX_MESSAGE_BYTES;
use super::{PresenceView, socket};
use crate::api::FormPairs;
use crate::api::auth::AuthTokenOnly;
use crate::api::error::{ApiError, ApiResult, Code};
use crate::api::resources::{Caller, QueryPairs, envelope, friendly_name};
use crate::api::{ApiQuery, PageParams, legacy_page_envelope};
use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/Keys", get(list_keys).post(create_key))
        .route(
            "/v1/Keys/{sid}",
            get(fetch_key).post(update_key).delete(delete_key),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/Keys.json",
            get(list_account_keys).post(create_account_key),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/Keys/{file}",
            get(fetch_account_key)
                .post(update_account_key)
                .delete(delete_account_key),
        )
        .route("/v1/Presence/Connect", get(connect))
        .route("/v1/Presence/Clients", get(list_clients))
        .route("/v1/Presence/Clients/{identity}", get(fetch_client))
}

fn key_json(base: &str, key: &ApiKey) -> Value {
    json!({
        "sid": key.sid,
        "account_sid": key.account_sid,
        "friendly_name": key.friendly_name,
        "date_created": key.date_created,
        "date_updated": key.date_updated,
        "url": format!("{base}/v1/Keys/{}", key.sid),
    })
}

/// Creates an API key. The answer is the only time its `secret` is shown: keep it where the
/// backend that mints access tokens can read it.
#[utoipa::path(post, path = "/v1/Keys", tag = "presence", security(("account" = [])),
    responses((status = 201, description = "The key, with its secret (shown only here)"), (status = 400, description = "An invalid FriendlyName", body = crate::api::error::ErrorBody)))]
pub async fn create_key(
    caller: Caller,
    _: AuthTokenOnly,
    State(state): State<AppState>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, false)?.unwrap_or_default();
    let keys = Keys {
        db: state.presence.db(),
        account_sid: &caller.account_sid,
    };
    let (key, secret) = keys.create(&name, state.presence.clock().now_ms()).await?;
    let mut body = key_json(&caller.base, &key);
    body["secret"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(get, path = "/v1/Keys", tag = "presence", security(("account" = [])),
    responses((status = 200, description = "`keys` list envelope (secrets are never listed)")))]
pub async fn list_keys(
    caller: Caller,
    State(state): State<AppState>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let keys = Keys {
        db: state.presence.db(),
        account_sid: &caller.account_sid,
    }
    .list()
    .await?;
    let items = keys.iter().map(|k| key_json(&caller.base, k)).collect();
    envelope(&caller.base, "/v1/Keys", "keys", &query, items)
}

#[utoipa::path(get, path = "/v1/Keys/{Sid}", tag = "presence", security(("account" = [])),
    params(("Sid" = String, Path, description = "The key's sid (SK...)")),
    responses((status = 200, description = "The key (without its secret)"), (status = 404, description = "No such key", body = crate::api::error::ErrorBody)))]
pub async fn fetch_key(
    caller: Caller,
    State(state): State<AppState>,
    Path(sid): Path<String>,
) -> ApiResult<Json<Value>> {
    let key = Keys {
        db: state.presence.db(),
        account_sid: &caller.account_sid,
    }
    .get(&sid)
    .await?
    .ok_or_else(|| ApiError::not_found(&sid))?;
    Ok(Json(key_json(&caller.base, &key)))
}

/// Renames a key (`FriendlyName`); its secret never changes: create a new key to rotate.
#[utoipa::path(post, path = "/v1/Keys/{Sid}", tag = "presence", security(("account" = [])),
    params(("Sid" = String, Path, description = "The key's sid (SK...)")),
    responses((status = 200, description = "The renamed key"), (status = 400, description = "An invalid FriendlyName", body = crate::api::error::ErrorBody), (status = 404, description = "No such key", body = crate::api::error::ErrorBody)))]
pub async fn update_key(
    caller: Caller,
    _: AuthTokenOnly,
    State(state): State<AppState>,
    Path(sid): Path<String>,
    form: FormPairs,
) -> ApiResult<Json<Value>> {
    let name = friendly_name(&form, true)?.unwrap_or_default();
    let key = Keys {
        db: state.presence.db(),
        account_sid: &caller.account_sid,
    }
    .rename(&sid, &name, state.presence.clock().now_ms())
    .await?
    .ok_or_else(|| ApiError::not_found(&sid))?;
    Ok(Json(key_json(&caller.base, &key)))
}

/// Deletes a key. Tokens it signed stop working at once, and clients registered with them are
/// disconnected.
#[utoipa::path(delete, path = "/v1/Keys/{Sid}", tag = "presence", security(("account" = [])),
    params(("Sid" = String, Path, description = "The key's sid (SK...)")),
    responses((status = 204, description = "The key is deleted and its tokens revoked"), (status = 404, description = "No such key", body = crate::api::error::ErrorBody)))]
pub async fn delete_key(
    caller: Caller,
    _: AuthTokenOnly,
    State(state): State<AppState>,
    Path(sid): Path<String>,
) -> ApiResult<StatusCode> {
    let deleted = Keys {
        db: state.presence.db(),
        account_sid: &caller.account_sid,
    }
    .delete(&sid)
    .await?;
    if !deleted {
        return Err(ApiError::not_found(&sid));
    }
    revoke(&state, &caller.account_sid, &sid);
    Ok(StatusCode::NO_CONTENT)
}

/// A deleted key stops working: its REST credentials at this host's next request, its tokens and
/// the clients registered with them at once.
fn revoke(state: &AppState, account_sid: &str, sid: &str) {
    state.accounts.forget_key(sid);
    state.presence.revoke_key(account_sid, sid);
}

/// A key as the reference's `2010-04-01` API shows it (`client.keys`, `client.new_keys` in its
/// SDKs): RFC 2822 dates, no account or url field.
fn legacy_key_json(key: &ApiKey) -> Value {
    json!({
        "sid": key.sid,
        "friendly_name": key.friendly_name,
        "date_created": crate::store::rfc2822_of_rfc3339(&key.date_created),
        "date_updated": crate::store::rfc2822_of_rfc3339(&key.date_updated),
    })
}

/// The account's keys facade, when the path's account is the caller's.
fn account_keys<'a>(
    state: &'a AppState,
    caller: &'a Caller,
    account_sid: &str,
) -> ApiResult<Keys<'a>> {
    if caller.account_sid != account_sid {
        return Err(ApiError::not_found(format!(
            "/2010-04-01/Accounts/{account_sid}"
        )));
    }
    Ok(Keys {
        db: state.presence.db(),
        account_sid: &caller.account_sid,
    })
}

/// Creates a key through the `2010-04-01` API (`NewKey`): the answer carries its `secret`, shown
/// only here.
#[utoipa::path(post, path = "/2010-04-01/Accounts/{AccountSid}/Keys.json", tag = "presence", security(("account" = [])),
    responses((status = 201, description = "The key, with its secret (shown only here)"), (status = 400, description = "An invalid FriendlyName", body = crate::api::error::ErrorBody), (status = 404, description = "Another account", body = crate::api::error::ErrorBody)))]
pub async fn create_account_key(
    caller: Caller,
    _: AuthTokenOnly,
    State(state): State<AppState>,
    Path(account_sid): Path<String>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, false)?.unwrap_or_default();
    let keys = account_keys(&state, &caller, &account_sid)?;
    let (key, secret) = keys.create(&name, state.presence.clock().now_ms()).await?;
    let mut body = legacy_key_json(&key);
    body["secret"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(get, path = "/2010-04-01/Accounts/{AccountSid}/Keys.json", tag = "presence", security(("account" = [])),
    responses((status = 200, description = "`keys` in the `2010-04-01` list shape (secrets are never listed)"), (status = 404, description = "Another account", body = crate::api::error::ErrorBody)))]
pub async fn list_account_keys(
    caller: Caller,
    State(state): State<AppState>,
    Path(account_sid): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    let keys = account_keys(&state, &caller, &account_sid)?.list().await?;
    let items: Vec<Value> = keys.iter().map(legacy_key_json).collect();
    Ok(legacy_page_envelope(
        "keys",
        &format!("/2010-04-01/Accounts/{account_sid}/Keys.json"),
        &page,
        items,
    ))
}

#[utoipa::path(get, path = "/2010-04-01/Accounts/{AccountSid}/Keys/{Sid}.json", tag = "presence", security(("account" = [])),
    responses((status = 200, description = "The key (without its secret)"), (status = 404, description = "No such key", body = crate::api::error::ErrorBody)))]
pub async fn fetch_account_key(
    caller: Caller,
    State(state): State<AppState>,
    Path((account_sid, file)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let sid = crate::telephony::api::sid_of(&file);
    let key = account_keys(&state, &caller, &account_sid)?
        .get(sid)
        .await?
        .ok_or_else(|| ApiError::not_found(sid))?;
    Ok(Json(legacy_key_json(&key)))
}

#[utoipa::path(post, path = "/2010-04-01/Accounts/{AccountSid}/Keys/{Sid}.json", tag = "presence", security(("account" = [])),
    responses((status = 200, description = "The renamed key"), (status = 400, description = "An invalid FriendlyName", body = crate::api::error::ErrorBody), (status = 404, description = "No such key", body = crate::api::error::ErrorBody)))]
pub async fn update_account_key(
    caller: Caller,
    _: AuthTokenOnly,
    State(state): State<AppState>,
    Path((account_sid, file)): Path<(String, String)>,
    form: FormPairs,
) -> ApiResult<Json<Value>> {
    let sid = crate::telephony::api::sid_of(&file);
    let name = friendly_name(&form, true)?.unwrap_or_default();
    let key = account_keys(&state, &caller, &account_sid)?
        .rename(sid, &name, state.presence.clock().now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found(sid))?;
    Ok(Json(legacy_key_json(&key)))
}

#[utoipa::path(delete, path = "/2010-04-01/Accounts/{AccountSid}/Keys/{Sid}.json", tag = "presence", security(("account" = [])),
    responses((status = 204, description = "The key is deleted and its tokens revoked"), (status = 404, description = "No such key", body = crate::api::error::ErrorBody)))]
pub async fn delete_account_key(
    caller: Caller,
    _: AuthTokenOnly,
    State(state): State<AppState>,
    Path((account_sid, file)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let sid = crate::telephony::api::sid_of(&file);
    if !account_keys(&state, &caller, &account_sid)?
        .delete(sid)
        .await?
    {
        return Err(ApiError::not_found(sid));
    }
    revoke(&state, &caller.account_sid, sid);
    Ok(StatusCode::NO_CONTENT)
}

/// The token a client presents: `?token=` (browsers cannot set headers on a WebSocket) or
/// `Authorization: Bearer`.
fn presented_token(parts: &Parts) -> Option<String> {
    let from_query = parts.uri.query().and_then(|query| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .ok()?
            .into_iter()
            .find(|(name, _)| name == "token")
            .map(|(_, value)| value)
    });
    from_query.or_else(|| {
        let header = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = header.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string())
    })
}

/// Registers a client: upgrade to a WebSocket, presenting an access token. See
/// [`socket`] for the messages.
#[utoipa::path(get, path = "/v1/Presence/Connect", tag = "presence",
    params(("token" = Option<String>, Query, description = "The access token (or send it as Authorization: Bearer)")),
    responses((status = 101, description = "WebSocket of JSON messages; a refused token gets an `error` message and a close code 4401/4403 with the reason"), (status = 400, description = "Not a WebSocket upgrade request", body = crate::api::error::ErrorBody)))]
pub async fn connect(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    use axum::extract::FromRequestParts;
    let (mut parts, _) = request.into_parts();
    let token = presented_token(&parts);
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(upgrade) => upgrade,
        Err(_) => {
            return ApiError::new(
                Code::InvalidParameter,
                "/v1/Presence/Connect is a WebSocket: connect with a WebSocket client (Upgrade: websocket), presenting the access token as ?token=",
            )
            .into_response();
        }
    };
    let presence = state.presence.clone();
    // Small buffers: ten thousand idle clients must not cost a megabyte each.
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |websocket| socket::serve(presence, websocket, token))
}

/// Online clients of the account, with their endpoints.
#[utoipa::path(get, path = "/v1/Presence/Clients", tag = "presence", security(("account" = [])),
    responses((status = 200, description = "`clients` list envelope of online identities")))]
pub async fn list_clients(
    caller: Caller,
    State(state): State<AppState>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let items = state
        .presence
        .clients(&caller.account_sid)
        .into_iter()
        .map(|status| serde_json::to_value(status).unwrap_or(Value::Null))
        .collect();
    envelope(
        &caller.base,
        "/v1/Presence/Clients",
        "clients",
        &query,
        items,
    )
}

/// One identity's presence: `online` false with no endpoints when it has none.
#[utoipa::path(get, path = "/v1/Presence/Clients/{Identity}", tag = "presence", security(("account" = [])),
    params(("Identity" = String, Path, description = "The client identity")),
    responses((status = 200, body = PresenceView)))]
pub async fn fetch_client(
    caller: Caller,
    State(state): State<AppState>,
    Path(identity): Path<String>,
) -> Json<PresenceView> {
    Json(state.presence.lookup(&caller.account_sid, &identity).view())
}
