//! `/v1/Usage/Modules`: usage totals per module and version.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ModuleUsage, UsageFilter, module_totals};
use crate::api::ApiQuery;
use crate::api::auth::Tenant;
use crate::api::error::{ApiError, ApiResult};
use crate::app::AppState;
use crate::store::parse_rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/Usage/Modules", get(module_usage))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UsageParams {
    /// RFC 3339, inclusive.
    start_time: Option<String>,
    /// RFC 3339, exclusive.
    end_time: Option<String>,
    module_name: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    start_time: Option<String>,
    end_time: Option<String>,
    usage: Vec<ModuleUsage>,
}

fn time(name: &str, value: &Option<String>) -> ApiResult<Option<i64>> {
    value
        .as_deref()
        .map(|text| {
            parse_rfc3339(text).ok_or_else(|| {
                ApiError::invalid(format!(
                    "{name} {text:?} is not an RFC 3339 time such as 2026-11-21T09:30:00Z"
                ))
            })
        })
        .transpose()
}

/// Usage totals per module and version (invocations, fuel, wall time, peak memory, host calls,
/// outcomes), optionally within `[StartTime, EndTime)` and for one `ModuleName`.
#[utoipa::path(get, path = "/v1/Usage/Modules", tag = "usage", security(("account" = [])),
    params(("StartTime" = Option<String>, Query), ("EndTime" = Option<String>, Query), ("ModuleName" = Option<String>, Query)),
    responses((status = 200, body = UsageReport), (status = 400, body = crate::api::error::ErrorBody)))]
pub async fn module_usage(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> ApiResult<Json<UsageReport>> {
    let filter = UsageFilter {
        start: time("StartTime", &params.start_time)?,
        end: time("EndTime", &params.end_time)?,
        module_name: params.module_name,
    };
    if let (Some(start), Some(end)) = (filter.start, filter.end)
        && start >= end
    {
        return Err(ApiError::invalid("StartTime must be before EndTime"));
    }
    let usage = module_totals(&state.db, &account.sid, &filter).await?;
    Ok(Json(UsageReport {
        start_time: params.start_time,
        end_time: params.end_time,
        usage,
    }))
}
