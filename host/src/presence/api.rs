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
use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/Keys", get(list_keys).post(create_key))
        .route(
            "/v1/Keys/{sid}",
            get(fetch_key).post(update_key).delete(delete_key),
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
    state.accounts.forget_key(&sid);
    state.presence.revoke_key(&caller.account_sid, &sid);
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
