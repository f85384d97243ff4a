//! `GET /v1/Events`: an account's event log, oldest first, resumable by sequence number.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{Event, EventFilter, list};
use crate::api::ApiQuery;
use crate::api::auth::Tenant;
use crate::api::error::{ApiError, ApiResult};
use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/Events", get(list_events))
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

/// An account's events in commit order.
#[utoipa::path(get, path = "/v1/Events", tag = "events", security(("account" = [])),
    params(("Subject" = Option<String>, Query), ("Type" = Option<String>, Query), ("After" = Option<i64>, Query), ("PageSize" = Option<i64>, Query)),
    responses((status = 200, body = EventPage), (status = 400, body = crate::api::error::ErrorBody)))]
pub async fn list_events(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<EventParams>,
) -> ApiResult<Json<EventPage>> {
    let limit = params.page_size.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("PageSize must be between 1 and 1000"));
    }
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
    let next_after = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.sequence))
        .flatten();
    Ok(Json(EventPage { events, next_after }))
}
