//! `/v1/Accounts`: operators create and manage accounts; an account can read itself.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{Account, AccountStatus, AccountUpdate};
use crate::api::auth::{Operator, Tenant};
use crate::api::error::{ApiError, ApiResult};
use crate::api::{ApiForm, ApiQuery, PageParams, page_envelope};
use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/Accounts", get(list_accounts).post(create_account))
        .route(
            "/v1/Accounts/{Sid}",
            get(fetch_account).post(update_account),
        )
        .route("/2010-04-01/Accounts.json", get(list_own_account))
        .route("/2010-04-01/Accounts/{account_sid}", get(fetch_own_account))
}

/// The account as the reference's `2010-04-01` API shows it: what its SDKs read when a program
/// checks its credentials with `client.api.accounts(sid).fetch()`. The auth token is never shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AccountResource {
    sid: String,
    friendly_name: String,
    status: String,
    #[serde(rename = "type")]
    account_type: &'static str,
    owner_account_sid: String,
    auth_token: Option<String>,
    date_created: String,
    date_updated: String,
    uri: String,
    #[schema(value_type = Object)]
    subresource_uris: serde_json::Value,
}

impl AccountResource {
    fn of(account: Account) -> AccountResource {
        let path = format!("/2010-04-01/Accounts/{}", account.sid);
        let date = crate::store::rfc2822_of_rfc3339;
        AccountResource {
            friendly_name: account.friendly_name,
            status: account.status.as_str().to_string(),
            account_type: "Full",
            owner_account_sid: account.sid.clone(),
            auth_token: None,
            date_created: date(&account.date_created),
            date_updated: date(&account.date_updated),
            uri: format!("{path}.json"),
            subresource_uris: serde_json::json!({
                "applications": format!("{path}/Applications.json"),
                "calls": format!("{path}/Calls.json"),
                "incoming_phone_numbers": format!("{path}/IncomingPhoneNumbers.json"),
                "queues": format!("{path}/Queues.json"),
            }),
            sid: account.sid,
        }
    }
}

/// The caller's own account, in the `2010-04-01` shape; any other sid is not found.
#[utoipa::path(get, path = "/2010-04-01/Accounts/{Sid}.json", tag = "accounts", security(("account" = [])),
    params(("Sid" = String, Path)),
    responses((status = 200, body = AccountResource), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn fetch_own_account(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> ApiResult<Json<AccountResource>> {
    let sid = crate::telephony::api::sid_of(&file);
    let not_found = || ApiError::not_found(format!("/2010-04-01/Accounts/{sid}"));
    if account.sid != sid {
        return Err(not_found());
    }
    let stored = state.accounts.get(sid).await?.ok_or_else(not_found)?;
    Ok(Json(AccountResource::of(stored)))
}

/// The accounts the caller can see, in the `2010-04-01` list shape: its own.
#[utoipa::path(get, path = "/2010-04-01/Accounts.json", tag = "accounts", security(("account" = [])),
    responses((status = 200, description = "`{accounts: [...], page, page_size, uri, ...}`")))]
pub async fn list_own_account(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    let own = state.accounts.get(&account.sid).await?;
    let items: Vec<AccountResource> = own.into_iter().map(AccountResource::of).collect();
    Ok(crate::api::legacy_page_envelope(
        "accounts",
        "/2010-04-01/Accounts.json",
        &page,
        items,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateAccount {
    #[serde(default)]
    friendly_name: Option<String>,
}

/// The create answer: the account plus its auth token, shown only here.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AccountCreated {
    #[serde(flatten)]
    account: Account,
    auth_token: String,
}

/// Creates an account (operator only).
#[utoipa::path(post, path = "/v1/Accounts", tag = "accounts", security(("operator" = [])),
    request_body(content = CreateAccount, content_type = "application/x-www-form-urlencoded"),
    responses((status = 201, body = AccountCreated), (status = 401, body = crate::api::error::ErrorBody)))]
pub async fn create_account(
    _: Operator,
    State(state): State<AppState>,
    ApiForm(form): ApiForm<CreateAccount>,
) -> ApiResult<Response> {
    let name = form.friendly_name.unwrap_or_default();
    if name.chars().count() > 64 {
        return Err(ApiError::invalid(
            "FriendlyName must be at most 64 characters",
        ));
    }
    let (account, auth_token) = state.accounts.create(&name).await?;
    Ok((
        StatusCode::CREATED,
        Json(AccountCreated {
            account,
            auth_token,
        }),
    )
        .into_response())
}

/// Lists every account (operator only).
#[utoipa::path(get, path = "/v1/Accounts", tag = "accounts", security(("operator" = [])),
    responses((status = 200, description = "`{accounts: [...], meta}`")))]
pub async fn list_accounts(
    _: Operator,
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    let accounts = state.accounts.list().await?;
    Ok(page_envelope("accounts", "/v1/Accounts", &page, accounts))
}

/// Fetches the authenticated account as stored now (the credentials may have been checked from
/// memory); any other sid is not found.
#[utoipa::path(get, path = "/v1/Accounts/{Sid}", tag = "accounts", security(("account" = [])),
    params(("Sid" = String, Path)),
    responses((status = 200, body = Account), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn fetch_account(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(sid): Path<String>,
) -> ApiResult<Json<Account>> {
    let not_found = || ApiError::not_found(format!("/v1/Accounts/{sid}"));
    if account.sid != sid {
        return Err(not_found());
    }
    let stored = state.accounts.get(&sid).await?.ok_or_else(not_found)?;
    Ok(Json(stored))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UpdateAccount {
    friendly_name: Option<String>,
    /// `active` or `suspended`.
    status: Option<String>,
    /// Instruction budget per invocation; empty = host default.
    fuel_limit: Option<String>,
    /// Wall-clock milliseconds per invocation; empty = host default.
    deadline_ms: Option<String>,
    /// Bytes of memory and tables per invocation; empty = host default.
    memory_limit_bytes: Option<String>,
    /// Host calls per invocation; empty = host default.
    host_call_limit: Option<String>,
}

/// `Some("")` resets to the default (`Some(None)`); a number sets it.
fn limit(name: &str, value: Option<String>) -> ApiResult<Option<Option<u64>>> {
    match value {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(Some(None)),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(Some(n))),
            _ => Err(ApiError::invalid(format!(
                "{name} must be a positive whole number, or empty to use the host default"
            ))),
        },
    }
}

/// Updates an account's name, status or invocation limits (operator only).
#[utoipa::path(post, path = "/v1/Accounts/{Sid}", tag = "accounts", security(("operator" = [])),
    params(("Sid" = String, Path)),
    request_body(content = UpdateAccount, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = Account), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn update_account(
    _: Operator,
    State(state): State<AppState>,
    Path(sid): Path<String>,
    ApiForm(form): ApiForm<UpdateAccount>,
) -> ApiResult<Json<Account>> {
    let status = match form.status.as_deref() {
        None => None,
        Some(text) => Some(
            AccountStatus::parse(text)
                .ok_or_else(|| ApiError::invalid("Status must be `active` or `suspended`"))?,
        ),
    };
    let update = AccountUpdate {
        friendly_name: form.friendly_name,
        status,
        fuel: limit("FuelLimit", form.fuel_limit)?,
        deadline_ms: limit("DeadlineMs", form.deadline_ms)?,
        memory_bytes: limit("MemoryLimitBytes", form.memory_limit_bytes)?,
        host_calls: limit("HostCallLimit", form.host_call_limit)?,
    };
    let account = state
        .accounts
        .update(&sid, update)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("/v1/Accounts/{sid}")))?;
    // A suspended account's registered clients go offline at once, not when their tokens expire.
    if account.status == AccountStatus::Suspended {
        state.presence.revoke_account(&account.sid);
    }
    Ok(Json(account))
}
