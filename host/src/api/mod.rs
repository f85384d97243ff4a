//! HTTP assembly: each domain's routes, the cross-cutting layers, health, metrics, the error table
//! and the OpenAPI document.

pub mod admission;
pub mod auth;
pub mod error;
pub mod resources;

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::app::AppState;
use error::{ApiError, ApiResult, Code};

/// Builds the whole HTTP API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/Errors", get(list_errors))
        .route("/v1/Errors/{code}", get(fetch_error))
        .merge(crate::accounts::api::routes())
        .merge(crate::modules::api::routes(&state.config.modules))
        .merge(crate::metering::api::routes())
        .merge(crate::telephony::api::routes())
        .merge(crate::queues::api::routes())
        .merge(crate::routing::api::routes())
        .merge(crate::edge::sim::api::routes())
        .merge(crate::events::api::routes())
        .merge(crate::media::api::routes())
        .merge(crate::presence::api::routes())
        .fallback(not_found)
        .layer(admission::AdmissionLayer::new(
            state.writer.clone(),
            state.config.database.max_waiting_changes,
            state.config.accounts.max_concurrent_writes,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(Code::Internal, "An internal error occurred").into_response()
        }))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        Code::NotFound,
        "No such endpoint; see /openapi.json for the API",
    )
}

/// A form-encoded body (PascalCase parameters, as the reference API takes them) whose decoding
/// errors are answered in the error table's format.
pub struct ApiForm<T>(pub T);

impl<T, S> FromRequest<S> for ApiForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(ApiForm(value)),
            Err(rejection) => Err(ApiError::invalid(rejection.body_text())),
        }
    }
}

/// A form-encoded body as name/value pairs, for endpoints whose parameters may repeat (the
/// reference SDKs send `StatusCallbackEvent=ringing&StatusCallbackEvent=answered`).
pub struct FormPairs(pub Vec<(String, String)>);

impl FormPairs {
    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value given for `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

impl<S> FromRequest<S> for FormPairs
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
            .map(FormPairs)
            .map_err(|error| {
                ApiError::invalid(format!(
                    "the body is not a valid form-encoded body: {error}"
                ))
            })
    }
}

/// Query parameters decoded like [`ApiForm`].
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::invalid(rejection.body_text())),
        }
    }
}

/// Paging parameters of list endpoints.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PageParams {
    #[serde(default)]
    pub page: Option<u32>,
    #[serde(default)]
    pub page_size: Option<u32>,
}

impl PageParams {
    pub fn page(&self) -> u32 {
        self.page.unwrap_or(0)
    }

    pub fn page_size(&self) -> u32 {
        self.page_size.unwrap_or(50).clamp(1, 1000)
    }
}

/// The `meta` block of a list envelope, as the reference `/v1` APIs return it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PageMeta {
    pub page: u32,
    pub page_size: u32,
    pub first_page_url: String,
    pub previous_page_url: Option<String>,
    pub url: String,
    pub next_page_url: Option<String>,
    pub key: String,
}

/// Cuts one page out of `items` and builds the envelope `{KEY: [...], "meta": {...}}`.
pub fn page_envelope<T: Serialize>(
    key: &str,
    path: &str,
    params: &PageParams,
    items: Vec<T>,
) -> Response {
    let page = params.page();
    let size = params.page_size();
    let start = (page as usize).saturating_mul(size as usize);
    let total = items.len();
    let items: Vec<T> = items.into_iter().skip(start).take(size as usize).collect();
    let url = |p: u32| format!("{path}?PageSize={size}&Page={p}");
    let meta = PageMeta {
        page,
        page_size: size,
        first_page_url: url(0),
        previous_page_url: (page > 0).then(|| url(page - 1)),
        url: url(page),
        next_page_url: (start + items.len() < total).then(|| url(page + 1)),
        key: key.to_string(),
    };
    let mut body = serde_json::Map::new();
    body.insert(
        key.to_string(),
        serde_json::to_value(items).unwrap_or_default(),
    );
    body.insert(
        "meta".into(),
        serde_json::to_value(meta).unwrap_or_default(),
    );
    Json(serde_json::Value::Object(body)).into_response()
}

/// The list envelope of the `2010-04-01` API: `{KEY: [...], "page", "page_size", "start", "end",
/// "uri", "first_page_uri", "next_page_uri", "previous_page_uri"}`, which its SDKs page through.
pub fn legacy_page_envelope<T: Serialize>(
    key: &str,
    path: &str,
    params: &PageParams,
    items: Vec<T>,
) -> Response {
    let page = params.page();
    let size = params.page_size();
    let start = (page as usize).saturating_mul(size as usize);
    let total = items.len();
    let items: Vec<T> = items.into_iter().skip(start).take(size as usize).collect();
    let uri = |p: u32| format!("{path}?PageSize={size}&Page={p}");
    let count = items.len();
    let end = (start + count).saturating_sub(1);
    let body = serde_json::json!({
        key: items,
        "page": page,
        "page_size": size,
        "start": start,
        "end": end,
        "uri": uri(page),
        "first_page_uri": uri(0),
        "previous_page_uri": (page > 0).then(|| uri(page - 1)),
        "next_page_uri": (start + count < total).then(|| uri(page + 1)),
    });
    Json(body).into_response()
}

#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    status: &'static str,
    database: &'static str,
}

/// Liveness and database reachability.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn healthz(State(state): State<AppState>) -> Response {
    let reachable = sqlx::query("SELECT 1")
        .execute(state.db.pool())
        .await
        .is_ok();
    let (status, body) = if reachable {
        (
            StatusCode::OK,
            Health {
                status: "ok",
                database: "ok",
            },
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Health {
                status: "degraded",
                database: "unreachable",
            },
        )
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics: invocations, traps, fuel, latency histograms, compilations.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
async fn metrics(State(state): State<AppState>) -> Response {
    metrics::gauge!("switchboard_writer_backlog").set(state.writer.backlog() as f64);
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

#[derive(Serialize, utoipa::ToSchema)]
struct ErrorEntry {
    code: u32,
    status: u16,
    title: &'static str,
    advice: &'static str,
}

fn entry(code: Code) -> ErrorEntry {
    ErrorEntry {
        code: code.number(),
        status: code.status().as_u16(),
        title: code.title(),
        advice: code.advice(),
    }
}

/// Every error code the API answers with, and what to do about each.
#[utoipa::path(get, path = "/v1/Errors", tag = "operations", responses((status = 200, body = [ErrorEntry])))]
async fn list_errors() -> Json<Vec<ErrorEntry>> {
    Json(Code::ALL.iter().map(|c| entry(*c)).collect())
}

#[utoipa::path(get, path = "/v1/Errors/{code}", tag = "operations", params(("code" = u32, Path)), responses((status = 200, body = ErrorEntry), (status = 404, body = error::ErrorBody)))]
async fn fetch_error(Path(code): Path<u32>) -> ApiResult<Json<ErrorEntry>> {
    Code::ALL
        .iter()
        .find(|c| c.number() == code)
        .map(|c| Json(entry(*c)))
        .ok_or_else(|| ApiError::not_found(format!("/v1/Errors/{code}")))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "switchboard", description = "Multi-tenant communications platform extended with WebAssembly"),
    paths(
        healthz,
        metrics,
        list_errors,
        fetch_error,
        crate::accounts::api::create_account,
        crate::accounts::api::list_accounts,
        crate::accounts::api::fetch_account,
        crate::accounts::api::update_account,
        crate::accounts::api::fetch_own_account,
        crate::presence::api::create_account_key,
        crate::presence::api::list_account_keys,
        crate::presence::api::fetch_account_key,
        crate::presence::api::update_account_key,
        crate::presence::api::delete_account_key,
        crate::accounts::api::list_own_account,
        crate::modules::api::upload_module,
        crate::modules::api::list_modules,
        crate::modules::api::fetch_module,
        crate::modules::api::delete_module,
        crate::modules::api::list_versions,
        crate::modules::api::fetch_version,
        crate::modules::api::delete_version,
        crate::modules::api::invoke_module,
        crate::modules::api::runtime_stats,
        crate::metering::api::module_usage,
        crate::telephony::api::create_application,
        crate::telephony::api::list_applications,
        crate::telephony::api::fetch_application,
        crate::telephony::api::update_application,
        crate::telephony::api::delete_application,
        crate::telephony::api::create_number,
        crate::telephony::api::list_numbers,
        crate::telephony::api::fetch_number,
        crate::telephony::api::update_number,
        crate::telephony::api::delete_number,
        crate::telephony::api::create_call,
        crate::telephony::api::list_calls,
        crate::telephony::api::fetch_call,
        crate::telephony::api::update_call,
        crate::telephony::api::list_segments,
        crate::queues::api::create_queue,
        crate::queues::api::list_queues,
        crate::queues::api::fetch_queue,
        crate::queues::api::update_queue,
        crate::queues::api::delete_queue,
        crate::queues::api::list_members,
        crate::queues::api::fetch_member,
        crate::queues::api::dequeue_member,
        crate::routing::api::create_workspace,
        crate::routing::api::list_workspaces,
        crate::routing::api::fetch_workspace,
        crate::routing::api::update_workspace,
        crate::routing::api::delete_workspace,
        crate::routing::api::create_activity,
        crate::routing::api::list_activities,
        crate::routing::api::fetch_activity,
        crate::routing::api::update_activity,
        crate::routing::api::delete_activity,
        crate::routing::api::create_channel,
        crate::routing::api::list_channels,
        crate::routing::api::fetch_channel,
        crate::routing::api::update_channel,
        crate::routing::api::delete_channel,
        crate::routing::api::create_worker,
        crate::routing::api::list_workers,
        crate::routing::api::fetch_worker,
        crate::routing::api::update_worker,
        crate::routing::api::delete_worker,
        crate::routing::api::list_worker_channels,
        crate::routing::api::fetch_worker_channel,
        crate::routing::api::update_worker_channel,
        crate::routing::api::create_queue,
        crate::routing::api::list_queues,
        crate::routing::api::fetch_queue,
        crate::routing::api::update_queue,
        crate::routing::api::delete_queue,
        crate::routing::api::create_workflow,
        crate::routing::api::list_workflows,
        crate::routing::api::fetch_workflow,
        crate::routing::api::update_workflow,
        crate::routing::api::delete_workflow,
        crate::routing::api::create_task,
        crate::routing::api::list_tasks,
        crate::routing::api::fetch_task,
        crate::routing::api::update_task,
        crate::routing::api::delete_task,
        crate::routing::api::list_task_reservations,
        crate::routing::api::fetch_task_reservation,
        crate::routing::api::update_task_reservation,
        crate::routing::api::list_worker_reservations,
        crate::routing::api::fetch_worker_reservation,
        crate::routing::api::update_worker_reservation,
        crate::routing::statistics::list_events,
        crate::routing::statistics::fetch_event,
        crate::routing::statistics::workspace_statistics,
        crate::routing::statistics::workspace_realtime,
        crate::routing::statistics::workspace_cumulative,
        crate::routing::statistics::list_queue_statistics,
        crate::routing::statistics::bulk_queue_realtime,
        crate::routing::statistics::queue_statistics,
        crate::routing::statistics::queue_realtime,
        crate::routing::statistics::queue_cumulative,
        crate::routing::statistics::workflow_statistics,
        crate::routing::statistics::workflow_realtime,
        crate::routing::statistics::workflow_cumulative,
        crate::routing::statistics::workers_statistics,
        crate::routing::statistics::workers_realtime,
        crate::routing::statistics::workers_cumulative,
        crate::routing::statistics::worker_statistics,
        crate::edge::sim::api::place_call,
        crate::edge::sim::api::press_digits,
        crate::edge::sim::api::hang_up,
        crate::edge::sim::api::answer,
        crate::edge::sim::api::reject,
        crate::edge::sim::api::busy,
        crate::edge::sim::api::timeline,
        crate::edge::sim::api::clock,
        crate::edge::sim::api::advance_clock,
        crate::events::api::list_events,
        crate::events::api::create_channel,
        crate::events::api::list_channels,
        crate::events::api::fetch_channel,
        crate::events::api::update_channel,
        crate::events::api::delete_channel,
        crate::events::api::create_subscriber,
        crate::events::api::list_subscribers,
        crate::events::api::fetch_subscriber,
        crate::events::api::update_subscriber,
        crate::events::api::delete_subscriber,
        crate::events::api::publish_event,
        crate::events::api::list_channel_events,
        crate::events::stream::stream,
        crate::media::api::upload_media,
        crate::media::api::fetch_media,
        crate::media::api::cache_statistics,
        crate::presence::api::create_key,
        crate::presence::api::list_keys,
        crate::presence::api::fetch_key,
        crate::presence::api::update_key,
        crate::presence::api::delete_key,
        crate::presence::api::connect,
        crate::presence::api::list_clients,
        crate::presence::api::fetch_client,
    ),
    modifiers(&Security),
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "account",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "operator",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document, generated from the handlers' annotations.
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
