//! Reservations of tasks and workers, and the instructions that move them.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{
    Caller, QueryPairs, any_task, check_if_match, not_found, rendered_envelope, versioned,
};
use crate::api::FormPairs;
use crate::api::error::{ApiError, ApiResult, Code};
use crate::app::AppState;
use crate::routing::model::*;
use crate::routing::space::{Effects, Space};
use crate::routing::store::ReservationOwner;
use crate::routing::{lock, views};

/// A task's or a worker's reservations: live ones from memory, finished ones as stored (only
/// the live ones when `live_only`: every live reservation is in memory). `finished_status` narrows
/// the stored rows to one finished status, which memory never holds.
async fn owned_reservations(
    state: &AppState,
    caller: &Caller,
    ws: &str,
    owner: ReservationOwner<'_>,
    live_only: bool,
    finished_status: Option<&str>,
) -> ApiResult<Vec<Reservation>> {
    let space = state.routing.space(&caller.account_sid, ws)?;
    let stored = if live_only {
        Vec::new()
    } else {
        crate::routing::store::stored_reservations(state.routing.db(), ws, owner, finished_status)
            .await?
    };
    let guard = lock(&space);
    // Live reservations are read from memory, which may be a commit ahead of the rows: the list
    // then agrees with what fetching the task or the reservation shows.
    let mut all: Vec<Reservation> = stored
        .into_iter()
        .map(|r| guard.reservations.get(&r.sid).cloned().unwrap_or(r))
        .collect();
    let listed: HashSet<&str> = all.iter().map(|r| r.sid.as_str()).collect();
    let mut fresh: Vec<Reservation> = guard
        .reservations
        .values()
        .filter(|r| owner.owns(r) && !listed.contains(r.sid.as_str()))
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
    owner: ReservationOwner<'_>,
    path: String,
) -> ApiResult<Response> {
    let status = query.get("ReservationStatus");
    let parsed = status.and_then(ReservationStatus::parse);
    let live_only = parsed.is_some_and(ReservationStatus::is_live);
    let finished_status = status.filter(|_| parsed.is_some_and(|s| !s.is_live()));
    let reservations =
        owned_reservations(&state, &caller, &ws, owner, live_only, finished_status).await?;
    state.routing.read(&caller.account_sid, &ws, |space| {
        let matching: Vec<&Reservation> = reservations
            .iter()
            .filter(|r| status.is_none_or(|s| r.status.as_str() == s))
            .filter(|r| query.get("WorkerSid").is_none_or(|w| r.worker_sid == w))
            .collect();
        rendered_envelope(&caller.base, &path, "reservations", &query, matching, |r| {
            views::reservation(&caller.base, space, r, owner)
        })
    })
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
    reservation_list(caller, state, ws, query, ReservationOwner::Task(&sid), path).await
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
    reservation_list(
        caller,
        state,
        ws,
        query,
        ReservationOwner::Worker(&sid),
        path,
    )
    .await
}

/// A reservation, checked to belong to the task or worker in the path.
async fn one_reservation(
    state: &AppState,
    caller: &Caller,
    ws: &str,
    owner: ReservationOwner<'_>,
    sid: &str,
) -> ApiResult<Reservation> {
    let live = state.routing.read(&caller.account_sid, ws, |space| {
        Ok(space.reservations.get(sid).cloned())
    })?;
    let reservation = match live {
        Some(r) => r,
        None => crate::routing::store::stored_reservation(state.routing.db(), ws, sid)
            .await?
            .ok_or_else(|| not_found(sid))?,
    };
    if owner.owns(&reservation) {
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
    Path((ws, task, sid)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    fetch_reservation(caller, state, ws, ReservationOwner::Task(&task), sid).await
}

async fn fetch_reservation(
    caller: Caller,
    state: AppState,
    ws: String,
    owner: ReservationOwner<'_>,
    sid: String,
) -> ApiResult<Response> {
    let r = one_reservation(&state, &caller, &ws, owner, &sid).await?;
    state.routing.read(&caller.account_sid, &ws, |space| {
        Ok(versioned(
            StatusCode::OK,
            views::reservation(&caller.base, space, &r, owner),
            r.version,
        ))
    })
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Reservations/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("WorkerSid" = String, Path, description = "The worker's sid (WK...)"), ("Sid" = String, Path, description = "The reservation's sid (WR...)")),
    responses((status = 200, description = "The reservation; its version is the ETag"), (status = 404, description = "No such workspace, or no such reservation of the worker", body = crate::api::error::ErrorBody)))]
pub async fn fetch_worker_reservation(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, worker, sid)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    fetch_reservation(caller, state, ws, ReservationOwner::Worker(&worker), sid).await
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/Tasks/{TaskSid}/Reservations/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("TaskSid" = String, Path, description = "The task's sid (WT...)"), ("Sid" = String, Path, description = "The reservation's sid (WR...)"), ("If-Match" = Option<String>, Header, description = "The ETag of the version the change is based on; a mismatch is answered 412")),
    responses((status = 200, description = "The updated reservation; its new version is the ETag"), (status = 400, description = "An invalid ReservationStatus or instruction (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace, or no such reservation of the task", body = crate::api::error::ErrorBody), (status = 409, description = "The reservation is not pending (or not accepted, to wrap or complete it)", body = crate::api::error::ErrorBody), (status = 412, description = "If-Match does not match the current version", body = crate::api::error::ErrorBody)))]
pub async fn update_task_reservation(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, task, sid)): Path<(String, String, String)>,
    headers: HeaderMap,
    form: FormPairs,
) -> ApiResult<Response> {
    let owner = ReservationOwner::Task(&task);
    update_reservation(caller, state, ws, owner, sid, headers, form).await
}

async fn update_reservation(
    caller: Caller,
    state: AppState,
    ws: String,
    owner: ReservationOwner<'_>,
    sid: String,
    headers: HeaderMap,
    form: FormPairs,
) -> ApiResult<Response> {
    let current = one_reservation(&state, &caller, &ws, owner, &sid).await?;
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
    let r = one_reservation(&state, &caller, &ws, owner, &sid).await?;
    state.routing.read(&caller.account_sid, &ws, |space| {
        Ok(versioned(
            StatusCode::OK,
            views::reservation(&caller.base, space, &r, owner),
            r.version,
        ))
    })
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Reservations/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("WorkerSid" = String, Path, description = "The worker's sid (WK...)"), ("Sid" = String, Path, description = "The reservation's sid (WR...)"), ("If-Match" = Option<String>, Header, description = "The ETag of the version the change is based on; a mismatch is answered 412")),
    responses((status = 200, description = "The updated reservation; its new version is the ETag"), (status = 400, description = "An invalid ReservationStatus or instruction (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace, or no such reservation of the worker", body = crate::api::error::ErrorBody), (status = 409, description = "The reservation is not pending (or not accepted, to wrap or complete it)", body = crate::api::error::ErrorBody), (status = 412, description = "If-Match does not match the current version", body = crate::api::error::ErrorBody)))]
pub async fn update_worker_reservation(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, worker, sid)): Path<(String, String, String)>,
    headers: HeaderMap,
    form: FormPairs,
) -> ApiResult<Response> {
    let owner = ReservationOwner::Worker(&worker);
    update_reservation(caller, state, ws, owner, sid, headers, form).await
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
            ("DequeueStatusCallbackUrl", "status_callback_url"),
            ("WorkerActivitySid", "activity_sid"),
            ("CallTo", "to"),
            ("CallFrom", "from"),
            ("CallUrl", "url"),
            ("CallAccept", "accept"),
            ("CallTimeout", "timeout"),
            ("CallStatusCallbackUrl", "status_callback_url"),
            ("RedirectCallSid", "call_sid"),
            ("RedirectUrl", "url"),
            ("RedirectAccept", "accept"),
        ] {
            if let Some(v) = form.get(param) {
                value[key] = json!(v);
            }
        }
        let events = form.all("DequeueStatusCallbackEvent");
        if !events.is_empty() {
            value["status_callback_events"] = json!(events.join(","));
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

/// How long a `call` instruction rings: `timeout` as a number or numeric text, 60 s by default.
fn call_timeout(value: Option<&Value>) -> ApiResult<u32> {
    let seconds = match value {
        None | Some(Value::Null) => return Ok(60),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(text)) => text.trim().parse().ok(),
        Some(_) => None,
    };
    seconds
        .filter(|s| (1..=600).contains(s))
        .and_then(|s| u32::try_from(s).ok())
        .ok_or_else(|| {
            ApiError::invalid(
                "The call instruction's timeout (CallTimeout) is seconds from 1 to 600",
            )
        })
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
                let status_callback = text("status_callback_url").filter(|u| !u.is_empty());
                if let Some(url) = &status_callback {
                    crate::telephony::resources::check_callback_url("status_callback_url", url)?;
                }
                crate::routing::space::CallOrder::Place {
                    to,
                    from,
                    url,
                    timeout_seconds: call_timeout(instruction.get("timeout"))?,
                    status_callback,
                }
            } else {
                let call_sid = required("call_sid")?;
                if !crate::sid::is_sid("CA", &call_sid) {
                    return Err(ApiError::invalid(format!(
                        "call_sid {call_sid:?} is not a call sid"
                    )));
                }
                crate::routing::space::CallOrder::Redirect { call_sid, url }
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
