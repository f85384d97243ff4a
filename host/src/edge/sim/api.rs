//! HTTP endpoints of the simulated edge.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::check_digits;
use crate::api::ApiForm;
use crate::api::auth::{Operator, Tenant};
use crate::api::error::{ApiError, ApiResult, Code};
use crate::app::AppState;
use crate::telephony::calls::{Party, TimelineEntry};
use crate::telephony::session::Action;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/Sim/Calls", post(place_call))
        .route("/v1/Sim/Calls/{call_sid}/Digits", post(press_digits))
        .route("/v1/Sim/Calls/{call_sid}/Hangup", post(hang_up))
        .route("/v1/Sim/Calls/{call_sid}/Answer", post(answer))
        .route("/v1/Sim/Calls/{call_sid}/Reject", post(reject))
        .route("/v1/Sim/Calls/{call_sid}/Busy", post(busy))
        .route("/v1/Sim/Calls/{call_sid}/Timeline", get(timeline))
        .route("/v1/Sim/Clock", get(clock).post(advance_clock))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlaceParams {
    from: Option<String>,
    to: Option<String>,
}

/// Places an inbound call from `From` to `To`, one of the account's numbers. 201 with the call.
#[utoipa::path(post, path = "/v1/Sim/Calls", tag = "sim", security(("account" = [])),
    responses((status = 201, body = crate::telephony::calls::CallResource), (status = 400, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn place_call(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    ApiForm(params): ApiForm<PlaceParams>,
) -> ApiResult<Response> {
    let to = params
        .to
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::invalid("To is required: the number being called"))?;
    let from = params
        .from
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "anonymous".into());
    let call = state.telephony.incoming(&account, &from, &to).await?;
    Ok((StatusCode::CREATED, Json(call)).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    call_sid: String,
    action: &'static str,
}

async fn act(
    state: &AppState,
    account_sid: &str,
    call_sid: String,
    action: Action,
    name: &'static str,
) -> ApiResult<Response> {
    state
        .telephony
        .command(account_sid, &call_sid, action)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            call_sid,
            action: name,
        }),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DigitsParams {
    digits: Option<String>,
}

/// The caller presses keys.
#[utoipa::path(post, path = "/v1/Sim/Calls/{CallSid}/Digits", tag = "sim", security(("account" = [])),
    responses((status = 202, body = Accepted), (status = 400, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody), (status = 409, body = crate::api::error::ErrorBody)))]
pub async fn press_digits(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(call_sid): Path<String>,
    ApiForm(params): ApiForm<DigitsParams>,
) -> ApiResult<Response> {
    let digits = params.digits.unwrap_or_default();
    check_digits(&digits).map_err(ApiError::invalid)?;
    act(
        &state,
        &account.sid,
        call_sid,
        Action::Digits(digits),
        "digits",
    )
    .await
}

/// The caller (or a dialled party, for a dialled leg) hangs up.
#[utoipa::path(post, path = "/v1/Sim/Calls/{CallSid}/Hangup", tag = "sim", security(("account" = [])),
    responses((status = 202, body = Accepted), (status = 404, body = crate::api::error::ErrorBody), (status = 409, body = crate::api::error::ErrorBody)))]
pub async fn hang_up(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(call_sid): Path<String>,
) -> ApiResult<Response> {
    act(
        &state,
        &account.sid,
        call_sid,
        Action::Hangup(Party::Caller),
        "hangup",
    )
    .await
}

/// The called party of an outbound call or a dialled leg answers.
#[utoipa::path(post, path = "/v1/Sim/Calls/{CallSid}/Answer", tag = "sim", security(("account" = [])),
    responses((status = 202, body = Accepted), (status = 404, body = crate::api::error::ErrorBody), (status = 409, body = crate::api::error::ErrorBody)))]
pub async fn answer(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(call_sid): Path<String>,
) -> ApiResult<Response> {
    act(&state, &account.sid, call_sid, Action::Answer, "answer").await
}

/// The called party declines (the call ends `no-answer`).
#[utoipa::path(post, path = "/v1/Sim/Calls/{CallSid}/Reject", tag = "sim", security(("account" = [])),
    responses((status = 202, body = Accepted), (status = 404, body = crate::api::error::ErrorBody), (status = 409, body = crate::api::error::ErrorBody)))]
pub async fn reject(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(call_sid): Path<String>,
) -> ApiResult<Response> {
    act(&state, &account.sid, call_sid, Action::Reject, "reject").await
}

/// The called party is busy (the call ends `busy`).
#[utoipa::path(post, path = "/v1/Sim/Calls/{CallSid}/Busy", tag = "sim", security(("account" = [])),
    responses((status = 202, body = Accepted), (status = 404, body = crate::api::error::ErrorBody), (status = 409, body = crate::api::error::ErrorBody)))]
pub async fn busy(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(call_sid): Path<String>,
) -> ApiResult<Response> {
    act(&state, &account.sid, call_sid, Action::Busy, "busy").await
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Timeline {
    call_sid: String,
    status: String,
    /// Whether the call is still running (more entries may follow).
    live: bool,
    timeline: Vec<TimelineEntry>,
}

/// Everything the caller experienced, in order.
#[utoipa::path(get, path = "/v1/Sim/Calls/{CallSid}/Timeline", tag = "sim", security(("account" = [])),
    responses((status = 200, body = Timeline), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn timeline(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(call_sid): Path<String>,
) -> ApiResult<Json<Timeline>> {
    let record = state
        .telephony
        .get(&account.sid, &call_sid)
        .await?
        .ok_or_else(|| ApiError::not_found(&call_sid))?;
    let timeline = state
        .telephony
        .timeline(&account.sid, &call_sid)
        .await?
        .unwrap_or_default();
    Ok(Json(Timeline {
        call_sid,
        status: record.status.as_str().into(),
        live: state.telephony.is_live(&account.sid, &record.sid),
        timeline,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ClockState {
    /// RFC 3339.
    now: String,
    now_ms: i64,
    manual: bool,
    /// Timers of live calls (gather and ring timeouts, media playing) waiting on the clock.
    pending_timers: usize,
    /// Calls running now, dialled legs included.
    live_calls: usize,
}

fn clock_state(state: &AppState) -> ClockState {
    let clock = state.telephony.clock();
    ClockState {
        now: crate::store::rfc3339(clock.now_ms()),
        now_ms: clock.now_ms(),
        manual: clock.is_manual(),
        pending_timers: clock.pending_timers(),
        live_calls: state.telephony.live_calls(),
    }
}

/// The host's call clock (operator only).
#[utoipa::path(get, path = "/v1/Sim/Clock", tag = "sim", security(("operator" = [])),
    responses((status = 200, body = ClockState)))]
pub async fn clock(_: Operator, State(state): State<AppState>) -> Json<ClockState> {
    Json(clock_state(&state))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AdvanceParams {
    /// Milliseconds to move a manual clock forward.
    advance_ms: Option<i64>,
}

/// Moves a manual clock forward, firing every timer that falls due (operator only).
#[utoipa::path(post, path = "/v1/Sim/Clock", tag = "sim", security(("operator" = [])),
    responses((status = 200, body = ClockState), (status = 400, body = crate::api::error::ErrorBody), (status = 409, body = crate::api::error::ErrorBody)))]
pub async fn advance_clock(
    _: Operator,
    State(state): State<AppState>,
    ApiForm(params): ApiForm<AdvanceParams>,
) -> ApiResult<Json<ClockState>> {
    let ms = params
        .advance_ms
        .filter(|ms| (1..=86_400_000).contains(ms))
        .ok_or_else(|| {
            ApiError::invalid("AdvanceMs must be a whole number of milliseconds from 1 to 86400000")
        })?;
    if state.telephony.clock().advance(ms).is_none() {
        return Err(ApiError::new(
            Code::ClockNotManual,
            "This host runs on the system clock; start it with telephony.clock = \"manual\" to move time by hand",
        ));
    }
    Ok(Json(clock_state(&state)))
}
