//! The reference platform's voice REST API under `/2010-04-01/Accounts/{AccountSid}/`
//! (`Applications`, `IncomingPhoneNumbers`, `Calls`), and `/v1/Calls/{CallSid}/Segments`.
//!
//! Paths end in `.json` as the reference SDKs request them; the account in the path must be the
//! authenticated one, and anything else is a 404 like any resource of another account.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::CALLBACK_EVENTS;
use super::OutboundCall;
use super::calls::{CallFilter, Segment};
use super::resources::{
    Applications, PhoneNumbers, VoiceParams, application_voice, check_callback_url, check_method,
    check_uri,
};
use super::session::{Action, Handlers};
use crate::accounts::Account;
use crate::api::auth::Tenant;
use crate::api::error::{ApiError, ApiResult};
use crate::api::{ApiForm, ApiQuery, FormPairs, PageParams, legacy_page_envelope};
use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/2010-04-01/Accounts/{account_sid}/Applications.json",
            get(list_applications).post(create_application),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/Applications/{file}",
            get(fetch_application)
                .post(update_application)
                .delete(delete_application),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/IncomingPhoneNumbers.json",
            get(list_numbers).post(create_number),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/IncomingPhoneNumbers/{file}",
            get(fetch_number).post(update_number).delete(delete_number),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/Calls.json",
            get(list_calls).post(create_call),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/Calls/{file}",
            get(fetch_call).post(update_call),
        )
        .route("/v1/Calls/{call_sid}/Segments", get(list_segments))
}

/// The account named in the path, which must be the caller's own.
pub(crate) fn own_account(account: &Account, account_sid: &str) -> ApiResult<()> {
    if account.sid == account_sid {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "/2010-04-01/Accounts/{account_sid}"
        )))
    }
}

/// `AP....json` → `AP...`.
pub(crate) fn sid_of(file: &str) -> &str {
    file.strip_suffix(".json").unwrap_or(file)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApplicationParams {
    friendly_name: Option<String>,
    #[serde(flatten)]
    voice: VoiceParams,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApplicationListParams {
    friendly_name: Option<String>,
}

/// Creates a voice application.
#[utoipa::path(post, path = "/2010-04-01/Accounts/{AccountSid}/Applications.json", tag = "voice", security(("account" = [])),
    responses((status = 201, body = super::resources::Application), (status = 400, body = crate::api::error::ErrorBody)))]
pub async fn create_application(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(account_sid): Path<String>,
    ApiForm(params): ApiForm<ApplicationParams>,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let apps = Applications {
        db: &state.db,
        account_sid: &account.sid,
    };
    let app = apps
        .create(params.friendly_name.as_deref(), &params.voice)
        .await?;
    Ok((StatusCode::CREATED, Json(app)).into_response())
}

/// Lists the account's applications.
#[utoipa::path(get, path = "/2010-04-01/Accounts/{AccountSid}/Applications.json", tag = "voice", security(("account" = [])),
    responses((status = 200, description = "`applications` list envelope")))]
pub async fn list_applications(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(account_sid): Path<String>,
    ApiQuery(params): ApiQuery<ApplicationListParams>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let apps = Applications {
        db: &state.db,
        account_sid: &account.sid,
    };
    let items = apps.list(params.friendly_name.as_deref()).await?;
    let path = format!("/2010-04-01/Accounts/{account_sid}/Applications.json");
    Ok(legacy_page_envelope("applications", &path, &page, items))
}

#[utoipa::path(get, path = "/2010-04-01/Accounts/{AccountSid}/Applications/{Sid}.json", tag = "voice", security(("account" = [])),
    responses((status = 200, body = super::resources::Application), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn fetch_application(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((account_sid, file)): Path<(String, String)>,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let sid = sid_of(&file);
    let apps = Applications {
        db: &state.db,
        account_sid: &account.sid,
    };
    let app = apps
        .get(sid)
        .await?
        .ok_or_else(|| ApiError::not_found(sid))?;
    Ok(Json(app).into_response())
}

#[utoipa::path(post, path = "/2010-04-01/Accounts/{AccountSid}/Applications/{Sid}.json", tag = "voice", security(("account" = [])),
    responses((status = 200, body = super::resources::Application), (status = 400, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn update_application(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((account_sid, file)): Path<(String, String)>,
    ApiForm(params): ApiForm<ApplicationParams>,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let apps = Applications {
        db: &state.db,
        account_sid: &account.sid,
    };
    let app = apps
        .update(
            sid_of(&file),
            params.friendly_name.as_deref(),
            &params.voice,
        )
        .await?;
    Ok(Json(app).into_response())
}

#[utoipa::path(delete, path = "/2010-04-01/Accounts/{AccountSid}/Applications/{Sid}.json", tag = "voice", security(("account" = [])),
    responses((status = 204), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn delete_application(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((account_sid, file)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    own_account(&account, &account_sid)?;
    let sid = sid_of(&file);
    let apps = Applications {
        db: &state.db,
        account_sid: &account.sid,
    };
    if apps.delete(sid).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(sid))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NumberParams {
    phone_number: Option<String>,
    friendly_name: Option<String>,
    voice_application_sid: Option<String>,
    #[serde(flatten)]
    voice: VoiceParams,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NumberListParams {
    phone_number: Option<String>,
}

/// Provisions a phone number for the account (E.164, unique on the host).
#[utoipa::path(post, path = "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json", tag = "voice", security(("account" = [])),
    responses((status = 201, body = super::resources::PhoneNumber), (status = 400, body = crate::api::error::ErrorBody)))]
pub async fn create_number(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(account_sid): Path<String>,
    ApiForm(params): ApiForm<NumberParams>,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let Some(phone_number) = params.phone_number.as_deref() else {
        return Err(ApiError::invalid(
            "PhoneNumber is required, in E.164 format, e.g. +14155550100",
        ));
    };
    let numbers = PhoneNumbers {
        db: &state.db,
        account_sid: &account.sid,
    };
    let number = numbers
        .create(
            phone_number,
            params.friendly_name.as_deref(),
            params.voice_application_sid.as_deref(),
            &params.voice,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(number)).into_response())
}

#[utoipa::path(get, path = "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json", tag = "voice", security(("account" = [])),
    responses((status = 200, description = "`incoming_phone_numbers` list envelope")))]
pub async fn list_numbers(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(account_sid): Path<String>,
    ApiQuery(params): ApiQuery<NumberListParams>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let numbers = PhoneNumbers {
        db: &state.db,
        account_sid: &account.sid,
    };
    let items = numbers.list(params.phone_number.as_deref()).await?;
    let path = format!("/2010-04-01/Accounts/{account_sid}/IncomingPhoneNumbers.json");
    Ok(legacy_page_envelope(
        "incoming_phone_numbers",
        &path,
        &page,
        items,
    ))
}

#[utoipa::path(get, path = "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json", tag = "voice", security(("account" = [])),
    responses((status = 200, body = super::resources::PhoneNumber), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn fetch_number(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((account_sid, file)): Path<(String, String)>,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let sid = sid_of(&file);
    let numbers = PhoneNumbers {
        db: &state.db,
        account_sid: &account.sid,
    };
    let number = numbers
        .get(sid)
        .await?
        .ok_or_else(|| ApiError::not_found(sid))?;
    Ok(Json(number).into_response())
}

#[utoipa::path(post, path = "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json", tag = "voice", security(("account" = [])),
    responses((status = 200, body = super::resources::PhoneNumber), (status = 400, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn update_number(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((account_sid, file)): Path<(String, String)>,
    ApiForm(params): ApiForm<NumberParams>,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    if params.phone_number.is_some() {
        return Err(ApiError::invalid(
            "PhoneNumber cannot be changed; release this number and provision another",
        ));
    }
    let numbers = PhoneNumbers {
        db: &state.db,
        account_sid: &account.sid,
    };
    let number = numbers
        .update(
            sid_of(&file),
            params.friendly_name.as_deref(),
            params.voice_application_sid.as_deref(),
            &params.voice,
        )
        .await?;
    Ok(Json(number).into_response())
}

#[utoipa::path(delete, path = "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json", tag = "voice", security(("account" = [])),
    responses((status = 204), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn delete_number(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((account_sid, file)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    own_account(&account, &account_sid)?;
    let sid = sid_of(&file);
    let numbers = PhoneNumbers {
        db: &state.db,
        account_sid: &account.sid,
    };
    if numbers.delete(sid).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(sid))
    }
}

/// Places an outbound call: `To`, `From`, and `Url` or `ApplicationSid`; optional `Method`,
/// `FallbackUrl`, `StatusCallback`, `StatusCallbackEvent` (repeatable), `Timeout`.
#[utoipa::path(post, path = "/2010-04-01/Accounts/{AccountSid}/Calls.json", tag = "voice", security(("account" = [])),
    responses((status = 201, body = super::calls::CallResource), (status = 400, body = crate::api::error::ErrorBody)))]
pub async fn create_call(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(account_sid): Path<String>,
    form: FormPairs,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let required = |name: &str| {
        form.get(name)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| ApiError::invalid(format!("{name} is required")))
    };
    let to = required("To")?;
    if let Some(identity) = to.strip_prefix("client:") {
        crate::telephony::twiml::check_identity(identity).map_err(|reason| {
            ApiError::invalid(format!(
                "To names the client {identity:?}, which is not a valid identity: {reason}"
            ))
        })?;
    }
    let from = required("From")?;
    let method = |name: &str| {
        form.get(name)
            .map(|m| check_method(name, m))
            .transpose()
            .map(|m| m.unwrap_or_else(|| "POST".into()))
    };
    let handlers = match (form.get("Url"), form.get("ApplicationSid")) {
        (Some(url), None) => {
            check_uri("Url", url)?;
            let fallback_url = form.get("FallbackUrl").filter(|u| !u.is_empty());
            if let Some(fallback) = fallback_url {
                check_uri("FallbackUrl", fallback)?;
            }
            Handlers {
                url: url.to_string(),
                method: method("Method")?,
                fallback_url: fallback_url.map(str::to_string),
                fallback_method: method("FallbackMethod")?,
            }
        }
        (None, Some(app_sid)) => {
            let voice = application_voice(&state.db, &account.sid, app_sid)
                .await?
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "ApplicationSid {app_sid} is not an application of this account"
                    ))
                })?;
            let url = voice.voice_url.ok_or_else(|| {
                ApiError::invalid(format!(
                    "Application {app_sid} has no VoiceUrl to run the call"
                ))
            })?;
            Handlers {
                url,
                method: voice.voice_method,
                fallback_url: voice.voice_fallback_url,
                fallback_method: voice.voice_fallback_method,
            }
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "Give either Url or ApplicationSid, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "Url or ApplicationSid is required: where the call's instructions come from",
            ));
        }
    };
    let status_callback = form.get("StatusCallback").filter(|u| !u.is_empty());
    if let Some(url) = status_callback {
        check_callback_url("StatusCallback", url)?;
    }
    let mut events = Vec::new();
    for value in form.all("StatusCallbackEvent") {
        for event in value.split_whitespace() {
            if !CALLBACK_EVENTS.contains(&event) {
                return Err(ApiError::invalid(format!(
                    "StatusCallbackEvent {event:?} is not one of initiated, ringing, answered, completed"
                )));
            }
            events.push(event.to_string());
        }
    }
    let timeout_seconds = match form.get("Timeout") {
        None => 60,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|t| (1..=600).contains(t))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "Timeout {text:?} must be a whole number of seconds from 1 to 600"
                ))
            })?,
    };
    let call = state
        .telephony
        .outbound(
            &account,
            OutboundCall {
                to,
                from,
                handlers,
                application_sid: form.get("ApplicationSid").map(str::to_string),
                status_callback: status_callback.map(str::to_string),
                status_callback_method: method("StatusCallbackMethod")?,
                status_callback_events: events,
                timeout_seconds,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(call)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallListParams {
    to: Option<String>,
    from: Option<String>,
    status: Option<String>,
    parent_call_sid: Option<String>,
}

#[utoipa::path(get, path = "/2010-04-01/Accounts/{AccountSid}/Calls.json", tag = "voice", security(("account" = [])),
    responses((status = 200, description = "`calls` list envelope, newest first")))]
pub async fn list_calls(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(account_sid): Path<String>,
    ApiQuery(params): ApiQuery<CallListParams>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let filter = CallFilter {
        to: params.to,
        from: params.from,
        status: params.status,
        parent_call_sid: params.parent_call_sid,
    };
    let records = state.telephony.list(&account.sid, &filter).await?;
    let items: Vec<_> = records.iter().map(|r| r.resource()).collect();
    let path = format!("/2010-04-01/Accounts/{account_sid}/Calls.json");
    Ok(legacy_page_envelope("calls", &path, &page, items))
}

#[utoipa::path(get, path = "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json", tag = "voice", security(("account" = [])),
    responses((status = 200, body = super::calls::CallResource), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn fetch_call(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((account_sid, file)): Path<(String, String)>,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let sid = sid_of(&file);
    let record = state
        .telephony
        .get(&account.sid, sid)
        .await?
        .ok_or_else(|| ApiError::not_found(sid))?;
    Ok(Json(record.resource()).into_response())
}

/// Steers a live call: `Url` (+ `Method`) runs new instructions now; `Status=completed` hangs up
/// an answered call and `Status=canceled` one that is still ringing, answering once the end is
/// committed, with the call's final status.
#[utoipa::path(post, path = "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json", tag = "voice", security(("account" = [])),
    responses((status = 200, body = super::calls::CallResource), (status = 400, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody), (status = 409, body = crate::api::error::ErrorBody)))]
pub async fn update_call(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((account_sid, file)): Path<(String, String)>,
    form: FormPairs,
) -> ApiResult<Response> {
    own_account(&account, &account_sid)?;
    let sid = sid_of(&file);
    let action = match (form.get("Url"), form.get("Status")) {
        (Some(url), None) => {
            check_uri("Url", url)?;
            let method = form
                .get("Method")
                .map(|m| check_method("Method", m))
                .transpose()?
                .unwrap_or_else(|| "POST".into());
            Action::Redirect {
                uri: url.to_string(),
                method,
            }
        }
        (None, Some("completed" | "canceled")) => {
            let record = state.telephony.hang_up(&account.sid, sid).await?;
            return Ok(Json(record.resource()).into_response());
        }
        (None, Some(other)) => {
            return Err(ApiError::invalid(format!(
                "Status {other:?} cannot be set: use completed (hang up) or canceled (stop ringing)"
            )));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("Give either Url or Status, not both"));
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "Give Url (redirect the call) or Status (end it)",
            ));
        }
    };
    state.telephony.command(&account.sid, sid, action).await?;
    let record = state
        .telephony
        .get(&account.sid, sid)
        .await?
        .ok_or_else(|| ApiError::not_found(sid))?;
    Ok(Json(record.resource()).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SegmentList {
    call_sid: String,
    segments: Vec<Segment>,
    /// The sums over all segments.
    totals: SegmentTotals,
}

#[derive(Serialize, Default, utoipa::ToSchema)]
pub struct SegmentTotals {
    duration_ms: i64,
    invocations: i64,
    fuel_consumed: i64,
    wall_time_us: i64,
    media_ms: i64,
    tts_characters: i64,
}

/// A call's segments: each stretch under one handler, with what it used.
#[utoipa::path(get, path = "/v1/Calls/{CallSid}/Segments", tag = "voice", security(("account" = [])),
    responses((status = 200, body = SegmentList), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn list_segments(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(call_sid): Path<String>,
) -> ApiResult<Json<SegmentList>> {
    let segments = state
        .telephony
        .segments(&account.sid, &call_sid)
        .await?
        .ok_or_else(|| ApiError::not_found(&call_sid))?;
    let mut totals = SegmentTotals::default();
    for segment in &segments {
        totals.duration_ms += segment.duration_ms;
        totals.invocations += segment.invocations;
        totals.fuel_consumed += segment.fuel_consumed;
        totals.wall_time_us += segment.wall_time_us;
        totals.media_ms += segment.media_ms;
        totals.tts_characters += segment.tts_characters;
    }
    Ok(Json(SegmentList {
        call_sid,
        segments,
        totals,
    }))
}
