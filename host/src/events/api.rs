//! The event API: `GET /v1/Events` (the account's log) and `/v1/Channels` with their subscribers,
//! custom events and live streams.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::channels::{self, Channel};
use super::delivery::check_target;
use super::subscribers::{self, Status, Subscriber, Target, new_secret};
use super::{Event, EventFilter, MAX_CUSTOM_EVENT_BYTES, channel_events_after, list};
use crate::api::auth::Tenant;
use crate::api::error::{ApiError, ApiResult, Code};
use crate::api::resources::{Caller, QueryPairs, boolean, envelope, friendly_name, integer};
use crate::api::{ApiQuery, FormPairs};
use crate::app::AppState;
use crate::modules::ModuleUri;
use crate::runtime::World;
use crate::sid::new_sid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/Events", get(list_events))
        .route("/v1/Channels", get(list_channels).post(create_channel))
        .route(
            "/v1/Channels/{sid}",
            get(fetch_channel)
                .post(update_channel)
                .delete(delete_channel),
        )
        .route(
            "/v1/Channels/{sid}/Subscribers",
            get(list_subscribers).post(create_subscriber),
        )
        .route(
            "/v1/Channels/{sid}/Subscribers/{subscriber}",
            get(fetch_subscriber)
                .post(update_subscriber)
                .delete(delete_subscriber),
        )
        .route(
            "/v1/Channels/{sid}/Events",
            get(list_channel_events).post(publish_event),
        )
        .route("/v1/Channels/{sid}/Stream", get(super::stream::stream))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct EventParams {
    /// Only events about this resource sid (e.g. a call's `CA...`).
    subject: Option<String>,
    /// Only events of this type, e.g. `call.status-changed`.
    #[serde(rename = "Type")]
    event_type: Option<String>,
    /// Only events after this sequence number: pass the last one seen to resume.
    after: Option<i64>,
    page_size: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventPage {
    events: Vec<Event>,
    /// The sequence number to pass as `After` for the next page, when this page is full.
    next_after: Option<i64>,
}

fn page_size(given: Option<i64>) -> ApiResult<i64> {
    let limit = given.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("PageSize must be between 1 and 1000"));
    }
    Ok(limit)
}

fn page(events: Vec<Event>, limit: i64, last_read: Option<i64>) -> EventPage {
    let next_after = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.sequence))
        .flatten()
        .or(last_read.filter(|_| events.len() as i64 == limit));
    EventPage { events, next_after }
}

/// An account's events in commit order.
#[utoipa::path(get, path = "/v1/Events", tag = "events", security(("account" = [])),
    params(("Subject" = Option<String>, Query), ("Type" = Option<String>, Query), ("After" = Option<i64>, Query), ("PageSize" = Option<i64>, Query)),
    responses((status = 200, body = EventPage), (status = 400, body = crate::api::error::ErrorBody)))]
pub async fn list_events(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<EventParams>,
) -> ApiResult<Json<EventPage>> {
    let limit = page_size(params.page_size)?;
    let events = list(
        &state.db,
        &account.sid,
        &EventFilter {
            subject: params.subject,
            event_type: params.event_type,
            after: params.after,
            limit,
        },
    )
    .await?;
    Ok(Json(page(events, limit, None)))
}

/// Reads a channel's configuration from a create or update form onto `channel`.
fn apply_form(
    channel: &mut Channel,
    form: &FormPairs,
    default_retention: i64,
    creating: bool,
) -> ApiResult<()> {
    if let Some(name) = friendly_name(form, false)? {
        channel.friendly_name = name;
    }
    if let Some(unique) = form.get("UniqueName") {
        let unique = unique.trim();
        if unique.is_empty() {
            channel.unique_name = None;
        } else if unique.chars().count() > 64 {
            return Err(ApiError::invalid(
                "UniqueName must be at most 64 characters",
            ));
        } else if unique.len() == 34 && unique.starts_with("EC") {
            return Err(ApiError::invalid(
                "UniqueName must not look like a channel sid (EC followed by 32 characters)",
            ));
        } else {
            channel.unique_name = Some(unique.to_string());
        }
    }
    let types = form.all("EventTypes");
    if !types.is_empty() || creating {
        channel.event_types = types
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
    }
    if let Some(filter) = form.get("Filter") {
        channel.filter = (!filter.trim().is_empty()).then(|| filter.to_string());
    }
    channels::validate(&channel.event_types, channel.filter.as_deref())
        .map_err(ApiError::invalid)?;
    if let Some(seconds) = integer(form, "RetentionSeconds", 1..=90 * 24 * 3600)? {
        channel.retention_seconds = seconds;
    } else if creating {
        channel.retention_seconds = default_retention;
    }
    match form.get("MaxDeliveryRate") {
        Some("") => channel.max_delivery_rate = None,
        Some(_) => channel.max_delivery_rate = integer(form, "MaxDeliveryRate", 1..=1_000)?,
        None => {}
    }
    if let Some(allow) = boolean(form, "AllowPublish")? {
        channel.allow_publish = allow;
    }
    Ok(())
}

fn channel_of(state: &AppState, account_sid: &str, sid: &str) -> ApiResult<Channel> {
    state
        .events
        .channel(account_sid, sid)
        .map(|live| (*live.current().0).clone())
        .ok_or_else(|| ApiError::not_found(sid))
}

#[utoipa::path(post, operation_id = "create_event_channel", path = "/v1/Channels", tag = "events", security(("account" = [])),
    responses((status = 201, description = "The new channel"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody),
        (status = 409, description = "The UniqueName is taken", body = crate::api::error::ErrorBody)))]
pub async fn create_channel(
    caller: Caller,
    State(state): State<AppState>,
    form: FormPairs,
) -> ApiResult<Response> {
    let now = state.events.now();
    let mut channel = Channel {
        sid: new_sid("EC"),
        account_sid: caller.account_sid.clone(),
        unique_name: None,
        friendly_name: String::new(),
        event_types: Vec::new(),
        filter: None,
        retention_seconds: 0,
        max_delivery_rate: None,
        allow_publish: false,
        date_created: now,
        date_updated: now,
    };
    let default_retention =
        i64::try_from(state.events.settings().default_retention_seconds).unwrap_or(i64::MAX);
    apply_form(&mut channel, &form, default_retention, true)?;
    state.events.save_channel(channel.clone()).await?;
    Ok((StatusCode::CREATED, Json(channel.to_json(&caller.base))).into_response())
}

#[utoipa::path(get, operation_id = "list_event_channels", path = "/v1/Channels", tag = "events", security(("account" = [])),
    params(("PageSize" = Option<usize>, Query), ("Page" = Option<usize>, Query)),
    responses((status = 200, description = "The account's channels")))]
pub async fn list_channels(
    caller: Caller,
    State(state): State<AppState>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let items = state
        .events
        .channels(&caller.account_sid)
        .iter()
        .map(|c| c.to_json(&caller.base))
        .collect();
    envelope(&caller.base, "/v1/Channels", "channels", &query, items)
}

#[utoipa::path(get, operation_id = "fetch_event_channel", path = "/v1/Channels/{Sid}", tag = "events", security(("account" = [])),
    params(("Sid" = String, Path, description = "The channel's sid or unique name")),
    responses((status = 200, description = "The channel"), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn fetch_channel(
    caller: Caller,
    State(state): State<AppState>,
    Path(sid): Path<String>,
) -> ApiResult<Json<Value>> {
    let channel = channel_of(&state, &caller.account_sid, &sid)?;
    Ok(Json(channel.to_json(&caller.base)))
}

#[utoipa::path(post, operation_id = "update_event_channel", path = "/v1/Channels/{Sid}", tag = "events", security(("account" = [])),
    params(("Sid" = String, Path, description = "The channel's sid or unique name")),
    responses((status = 200, description = "The changed channel; the change applies to the next event"), (status = 400, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn update_channel(
    caller: Caller,
    State(state): State<AppState>,
    Path(sid): Path<String>,
    form: FormPairs,
) -> ApiResult<Json<Value>> {
    let mut channel = channel_of(&state, &caller.account_sid, &sid)?;
    let retention = channel.retention_seconds;
    apply_form(&mut channel, &form, retention, false)?;
    channel.date_updated = state.events.now();
    state.events.save_channel(channel.clone()).await?;
    Ok(Json(channel.to_json(&caller.base)))
}

#[utoipa::path(delete, operation_id = "delete_event_channel", path = "/v1/Channels/{Sid}", tag = "events", security(("account" = [])),
    params(("Sid" = String, Path, description = "The channel's sid or unique name")),
    responses((status = 204, description = "Deleted with its subscribers and custom events; its streams end"), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn delete_channel(
    caller: Caller,
    State(state): State<AppState>,
    Path(sid): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .events
        .delete_channel(&caller.account_sid, &sid)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/Channels/{Sid}/Subscribers", tag = "events", security(("account" = [])),
    params(("Sid" = String, Path, description = "The channel's sid or unique name")),
    responses((status = 201, description = "The new subscriber; a webhook's answer carries its signing `secret`, shown only this once"),
        (status = 400, description = "An invalid parameter, or a webhook target that is not allowed", body = crate::api::error::ErrorBody),
        (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn create_subscriber(
    caller: Caller,
    State(state): State<AppState>,
    Path(sid): Path<String>,
    form: FormPairs,
) -> ApiResult<Response> {
    let channel = channel_of(&state, &caller.account_sid, &sid)?;
    let target = match form.get("Type").unwrap_or("webhook") {
        "webhook" => {
            let url = form
                .get("Url")
                .ok_or_else(|| ApiError::invalid("Url is required for a webhook subscriber"))?;
            check_target(url, state.events.settings().allow_private_targets)
                .await
                .map_err(|message| ApiError::new(Code::WebhookTargetRefused, message))?;
            Target::Webhook {
                url: url.to_string(),
                secret: new_secret(),
            }
        }
        "module" => {
            let uri = form.get("Module").ok_or_else(|| {
                ApiError::invalid("Module is required for a module subscriber (module:NAME or module:NAME@VERSION)")
            })?;
            let uri = if uri.starts_with("module:") {
                uri.to_string()
            } else {
                format!("module:{uri}")
            };
            let parsed = match ModuleUri::parse(&uri) {
                Some(Ok(parsed)) => parsed,
                _ => {
                    return Err(ApiError::invalid(format!(
                        "Module {uri:?} is not module:NAME or module:NAME@VERSION"
                    )));
                }
            };
            let module = state
                .registry
                .resolve(&caller.account_sid, &parsed)
                .await?
                .ok_or_else(|| {
                    ApiError::invalid(format!("this account has no module {uri}; upload it first"))
                })?;
            if module.kind != World::EventSubscriber {
                return Err(ApiError::invalid(format!(
                    "module {uri} is a {} module; subscribers must be event-subscriber modules",
                    module.kind.as_str()
                )));
            }
            Target::Module { uri }
        }
        "stream" => {
            return Err(ApiError::invalid(format!(
                "stream subscribers need no resource: connect to /v1/Channels/{}/Stream (SSE, or WebSocket by upgrading)",
                channel.sid
            )));
        }
        other => {
            return Err(ApiError::invalid(format!(
                "Type must be webhook or module, not {other:?}"
            )));
        }
    };
    let now = state.events.now();
    let subscriber = Subscriber {
        sid: new_sid("ES"),
        account_sid: caller.account_sid.clone(),
        channel_sid: channel.sid.clone(),
        target,
        status: Status::Active,
        status_reason: None,
        cursor: state.events.last_sequence().await?,
        last_success: None,
        last_error: None,
        last_error_time: None,
        consecutive_failures: 0,
        delivered_count: 0,
        date_created: now,
        date_updated: now,
    };
    state.events.save_subscriber(subscriber.clone()).await?;
    let mut body = subscriber.to_json(&caller.base);
    if let Target::Webhook { secret, .. } = &subscriber.target {
        body["secret"] = Value::String(secret.clone());
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(get, path = "/v1/Channels/{Sid}/Subscribers", tag = "events", security(("account" = [])),
    params(("Sid" = String, Path, description = "The channel's sid or unique name"), ("PageSize" = Option<usize>, Query), ("Page" = Option<usize>, Query)),
    responses((status = 200, description = "The channel's durable subscribers with their delivery status"), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn list_subscribers(
    caller: Caller,
    State(state): State<AppState>,
    Path(sid): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let channel = channel_of(&state, &caller.account_sid, &sid)?;
    let items = subscribers::of_channel(&state.db, &caller.account_sid, &channel.sid)
        .await?
        .iter()
        .map(|s| s.to_json(&caller.base))
        .collect();
    let path = format!("/v1/Channels/{}/Subscribers", channel.sid);
    envelope(&caller.base, &path, "subscribers", &query, items)
}

async fn subscriber_of(
    state: &AppState,
    account_sid: &str,
    channel: &str,
    sid: &str,
) -> ApiResult<Subscriber> {
    let channel = channel_of(state, account_sid, channel)?;
    subscribers::fetch(&state.db, account_sid, sid)
        .await?
        .filter(|s| s.channel_sid == channel.sid)
        .ok_or_else(|| ApiError::not_found(sid))
}

#[utoipa::path(get, path = "/v1/Channels/{Sid}/Subscribers/{SubscriberSid}", tag = "events", security(("account" = [])),
    params(("Sid" = String, Path), ("SubscriberSid" = String, Path)),
    responses((status = 200, description = "The subscriber: status, cursor, last success, last error, consecutive failures"), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn fetch_subscriber(
    caller: Caller,
    State(state): State<AppState>,
    Path((channel, sid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let subscriber = subscriber_of(&state, &caller.account_sid, &channel, &sid).await?;
    Ok(Json(subscriber.to_json(&caller.base)))
}

#[utoipa::path(post, path = "/v1/Channels/{Sid}/Subscribers/{SubscriberSid}", tag = "events", security(("account" = [])),
    params(("Sid" = String, Path), ("SubscriberSid" = String, Path)),
    responses((status = 200, description = "`Status=active` re-enables a disabled subscriber; `ReplayFrom=N` delivers again from sequence number N"),
        (status = 400, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn update_subscriber(
    caller: Caller,
    State(state): State<AppState>,
    Path((channel, sid)): Path<(String, String)>,
    form: FormPairs,
) -> ApiResult<Json<Value>> {
    let mut subscriber = subscriber_of(&state, &caller.account_sid, &channel, &sid).await?;
    match form.get("Status") {
        Some("active") => {
            subscriber.status = Status::Active;
            subscriber.status_reason = None;
            subscriber.consecutive_failures = 0;
        }
        Some("disabled") => {
            subscriber.status = Status::Disabled;
            subscriber.status_reason = Some("disabled over the API".into());
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "Status must be active or disabled, not {other:?}"
            )));
        }
        None => {}
    }
    if let Some(from) = integer(&form, "ReplayFrom", 1..=i64::MAX)? {
        subscriber.cursor = from - 1;
        subscriber.consecutive_failures = 0;
        if form.get("Status").is_none() {
            subscriber.status = Status::Active;
            subscriber.status_reason = None;
        }
    }
    subscriber.date_updated = state.events.now();
    state.events.save_subscriber(subscriber.clone()).await?;
    Ok(Json(subscriber.to_json(&caller.base)))
}

#[utoipa::path(delete, path = "/v1/Channels/{Sid}/Subscribers/{SubscriberSid}", tag = "events", security(("account" = [])),
    params(("Sid" = String, Path), ("SubscriberSid" = String, Path)),
    responses((status = 204, description = "Deleted; deliveries stop"), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn delete_subscriber(
    caller: Caller,
    State(state): State<AppState>,
    Path((channel, sid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let subscriber = subscriber_of(&state, &caller.account_sid, &channel, &sid).await?;
    state.events.delete_subscriber(&subscriber).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of a custom event.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomEvent {
    /// Letters, digits, '.', '-' and '_', e.g. `order.shipped`.
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Option<Value>,
}

#[utoipa::path(post, path = "/v1/Channels/{Sid}/Events", tag = "events", security(("account" = [])),
    params(("Sid" = String, Path, description = "The channel's sid or unique name")),
    request_body(content = CustomEvent, content_type = "application/json"),
    responses((status = 201, body = Event, description = "The stored event, with its sequence number"),
        (status = 400, body = crate::api::error::ErrorBody), (status = 403, description = "The channel does not allow publishing", body = crate::api::error::ErrorBody),
        (status = 404, body = crate::api::error::ErrorBody), (status = 413, body = crate::api::error::ErrorBody)))]
pub async fn publish_event(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let json_body = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            "send the event as application/json: {\"type\": \"...\", \"data\": {...}}",
        ));
    }
    if body.len() > MAX_CUSTOM_EVENT_BYTES + 1024 {
        return Err(ApiError::new(
            Code::PayloadTooLarge,
            format!("an event may be at most {MAX_CUSTOM_EVENT_BYTES} bytes"),
        ));
    }
    let event: CustomEvent = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("the body is not a valid event: {e}")))?;
    let stored = state
        .events
        .publish(
            &account.sid,
            &sid,
            &event.event_type,
            event
                .data
                .unwrap_or_else(|| Value::Object(Default::default())),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ChannelEventParams {
    after: Option<i64>,
    page_size: Option<i64>,
}

#[utoipa::path(get, path = "/v1/Channels/{Sid}/Events", tag = "events", security(("account" = [])),
    params(("Sid" = String, Path, description = "The channel's sid or unique name"), ("After" = Option<i64>, Query), ("PageSize" = Option<i64>, Query)),
    responses((status = 200, body = EventPage, description = "The events the channel selects, in sequence order"), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn list_channel_events(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(sid): Path<String>,
    ApiQuery(params): ApiQuery<ChannelEventParams>,
) -> ApiResult<Json<EventPage>> {
    let live = state
        .events
        .channel(&account.sid, &sid)
        .ok_or_else(|| ApiError::not_found(&sid))?;
    let (channel, selector) = live.current();
    let limit = page_size(params.page_size)?;
    let mut after = params.after.unwrap_or(0);
    let mut selected = Vec::new();
    // Read in pages until the answer is full or the log ends, passing over what is not selected.
    loop {
        let read = channel_events_after(&state.db, &account.sid, &channel.sid, after, 500).await?;
        let done = read.len() < 500;
        for event in read {
            after = event.sequence;
            if selector.matches(&event.candidate()) {
                selected.push(event);
                if selected.len() as i64 == limit {
                    return Ok(Json(page(selected, limit, Some(after))));
                }
            }
        }
        if done {
            return Ok(Json(page(selected, limit, None)));
        }
    }
}
