//! `/v1/Modules`: upload, list, fetch and delete module versions, and dry-run a module.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ModuleVersion, check_name};
use crate::api::auth::{Operator, Tenant};
use crate::api::error::{ApiError, ApiResult, Code};
use crate::api::{ApiQuery, PageParams, page_envelope};
use crate::app::AppState;
use crate::config::ModuleSettings;
use crate::metering::UsageRecord;
use crate::runtime::io::{
    CallInfo, Event, Instruction, QueueStatus, RoutingDecision, Task, Trigger, WaitInstruction,
    Worker,
};
use crate::runtime::{Failure, Invoked, Outcome, RuntimeStats, World};

pub fn routes(settings: &ModuleSettings) -> Router<AppState> {
    // Room for the multipart framing and the other fields around the module itself.
    let upload_limit = usize::try_from(settings.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    Router::new()
        .route(
            "/v1/Modules",
            get(list_modules)
                .post(upload_module)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/v1/Modules/{Name}",
            get(fetch_module).delete(delete_module),
        )
        .route("/v1/Modules/{Name}/Versions", get(list_versions))
        .route(
            "/v1/Modules/{Name}/Versions/{Version}",
            get(fetch_version).delete(delete_version),
        )
        .route("/v1/Modules/{Name}/Invoke", post(invoke_module))
        .route("/v1/Runtime", get(runtime_stats))
}

/// The multipart form of an upload.
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "describes the multipart body for the OpenAPI document only"
)]
pub struct UploadForm {
    /// Module name: lowercase letters, digits, '-' and '_'.
    #[schema(rename = "Name")]
    name: String,
    /// telephony-handler, wait-state, workflow-rules or event-subscriber.
    #[schema(rename = "Kind")]
    kind: String,
    /// The component (.wasm).
    #[schema(rename = "Module", format = Binary)]
    module: Vec<u8>,
}

fn multipart_error(error: axum::extract::multipart::MultipartError, limit: u64) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            Code::ModuleTooLarge,
            format!("the upload is larger than the limit of {limit} bytes"),
        )
    } else {
        ApiError::invalid(format!(
            "the multipart body could not be read: {}",
            error.body_text()
        ))
    }
}

/// Uploads a new version of a module (multipart: `Name`, `Kind`, file part `Module`).
#[utoipa::path(post, path = "/v1/Modules", tag = "modules", security(("account" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = ModuleVersion),
        (status = 400, description = "not wasm, a core module, an unknown kind or a bad name", body = crate::api::error::ErrorBody),
        (status = 413, description = "over the size limit", body = crate::api::error::ErrorBody),
        (status = 422, description = "does not implement the declared world", body = crate::api::error::ErrorBody)))]
pub async fn upload_module(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Response> {
    let limit = state.registry.max_upload_bytes();
    let mut multipart = multipart.map_err(|rejection| {
        ApiError::new(
            Code::UnsupportedMediaType,
            format!(
                "upload the module as multipart/form-data with fields Name, Kind and a file part Module ({})",
                rejection.body_text()
            ),
        )
    })?;
    let (mut name, mut kind, mut bytes) = (None, None, None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        match field.name().unwrap_or_default() {
            "Name" => name = Some(field.text().await.map_err(|e| multipart_error(e, limit))?),
            "Kind" => kind = Some(field.text().await.map_err(|e| multipart_error(e, limit))?),
            "Module" => bytes = Some(field.bytes().await.map_err(|e| multipart_error(e, limit))?),
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown field {other:?}: the upload takes Name, Kind and Module"
                )));
            }
        }
    }
    let name = name.ok_or_else(|| ApiError::invalid("the Name field is required"))?;
    let kind = kind.ok_or_else(|| ApiError::invalid("the Kind field is required"))?;
    let bytes = bytes.ok_or_else(|| ApiError::invalid("the Module file part is required"))?;
    let world = World::parse(kind.trim()).ok_or_else(|| {
        ApiError::new(
            Code::UnknownKind,
            format!(
                "unknown Kind {kind:?}: use telephony-handler, wait-state, workflow-rules or event-subscriber"
            ),
        )
    })?;
    let module = state
        .registry
        .upload(&account.sid, name.trim(), world, bytes.to_vec())
        .await?;
    Ok((StatusCode::CREATED, Json(module)).into_response())
}

/// Lists the latest version of each of the account's modules.
#[utoipa::path(get, path = "/v1/Modules", tag = "modules", security(("account" = [])),
    responses((status = 200, description = "`{modules: [...], meta}`")))]
pub async fn list_modules(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    let modules = state.registry.list_latest(&account.sid).await?;
    Ok(page_envelope("modules", "/v1/Modules", &page, modules))
}

fn not_found(name: &str, version: Option<i64>) -> ApiError {
    match version {
        Some(v) => ApiError::not_found(format!("/v1/Modules/{name}/Versions/{v}")),
        None => ApiError::not_found(format!("/v1/Modules/{name}")),
    }
}

/// Fetches the latest version of a module.
#[utoipa::path(get, path = "/v1/Modules/{Name}", tag = "modules", security(("account" = [])),
    params(("Name" = String, Path)),
    responses((status = 200, body = ModuleVersion), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn fetch_module(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ModuleVersion>> {
    state
        .registry
        .get(&account.sid, &name, None)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(&name, None))
}

/// Deletes a module and all its versions. Version numbers are never reused.
#[utoipa::path(delete, path = "/v1/Modules/{Name}", tag = "modules", security(("account" = [])),
    params(("Name" = String, Path)),
    responses((status = 204), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn delete_module(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    match state.registry.delete(&account.sid, &name, None).await? {
        0 => Err(not_found(&name, None)),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// Lists every version of a module, oldest first.
#[utoipa::path(get, path = "/v1/Modules/{Name}/Versions", tag = "modules", security(("account" = [])),
    params(("Name" = String, Path)),
    responses((status = 200, description = "`{versions: [...], meta}`"), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn list_versions(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    let versions = state.registry.versions(&account.sid, &name).await?;
    if versions.is_empty() {
        return Err(not_found(&name, None));
    }
    Ok(page_envelope(
        "versions",
        &format!("/v1/Modules/{name}/Versions"),
        &page,
        versions,
    ))
}

fn parse_version(text: &str) -> ApiResult<i64> {
    text.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
        ApiError::invalid(format!("version {text:?} must be a positive whole number"))
    })
}

/// Fetches one version of a module.
#[utoipa::path(get, path = "/v1/Modules/{Name}/Versions/{Version}", tag = "modules", security(("account" = [])),
    params(("Name" = String, Path), ("Version" = i64, Path)),
    responses((status = 200, body = ModuleVersion), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn fetch_version(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<ModuleVersion>> {
    let version = parse_version(&version)?;
    state
        .registry
        .get(&account.sid, &name, Some(version))
        .await?
        .map(Json)
        .ok_or_else(|| not_found(&name, Some(version)))
}

/// Deletes one version of a module.
#[utoipa::path(delete, path = "/v1/Modules/{Name}/Versions/{Version}", tag = "modules", security(("account" = [])),
    params(("Name" = String, Path), ("Version" = i64, Path)),
    responses((status = 204), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn delete_version(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let version = parse_version(&version)?;
    match state
        .registry
        .delete(&account.sid, &name, Some(version))
        .await?
    {
        0 => Err(not_found(&name, Some(version))),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvokeParams {
    version: Option<String>,
}

/// Input of a telephony-handler dry run.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HandleInput {
    call: CallInfo,
    trigger: Trigger,
}

/// Input of a wait-state dry run.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WaitInput {
    call: CallInfo,
    queue: QueueStatus,
}

/// Input of a workflow-rules dry run: `route(task)`, or `score(task, worker)` when a worker is given.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RulesInput {
    task: Task,
    worker: Option<Worker>,
}

/// Input of an event-subscriber dry run.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EventInput {
    event: Event,
}

/// What a dry run returns: the output (or why there is none) and the usage record, committed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InvokeResult {
    module: ModuleVersion,
    outcome: Outcome,
    /// The module's answer, shaped by its world; absent when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    output: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Failure>,
    usage: UsageRecord,
}

fn parse_input<T: for<'de> Deserialize<'de> + Default>(body: &Bytes, world: World) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|error| {
        ApiError::new(
            Code::InvalidInvocationInput,
            format!(
                "the input does not match the {} world: {error}",
                world.as_str()
            ),
        )
    })
}

/// Runs a module once with a JSON input matching its world and returns its output and usage.
/// The usage record is committed before the answer is sent.
#[utoipa::path(post, path = "/v1/Modules/{Name}/Invoke", tag = "modules", security(("account" = [])),
    params(("Name" = String, Path), ("Version" = Option<i64>, Query, description = "default: latest")),
    request_body(content = HandleInput, description = "telephony-handler: {call, trigger}; wait-state: {call, queue}; workflow-rules: {task, worker?}; event-subscriber: {event}"),
    responses((status = 200, body = InvokeResult), (status = 400, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn invoke_module(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<InvokeParams>,
    body: Bytes,
) -> ApiResult<Json<InvokeResult>> {
    check_name(&name).map_err(|_| not_found(&name, None))?;
    let version = params.version.as_deref().map(parse_version).transpose()?;
    let module = state
        .registry
        .get(&account.sid, &name, version)
        .await?
        .ok_or_else(|| not_found(&name, version))?;
    let target = state.registry.target(&account, &module).await?;
    let runtime = &state.runtime;
    let world = module.kind;

    fn finish<T>(
        invoked: Invoked<T>,
        to_json: impl FnOnce(T) -> serde_json::Value,
    ) -> (
        Result<serde_json::Value, Failure>,
        UsageRecord,
        crate::metering::Committed,
    ) {
        (
            invoked.result.map(to_json),
            invoked.usage,
            invoked.committed,
        )
    }
    let (result, usage, committed) = match world {
        World::TelephonyHandler => {
            let input: HandleInput = parse_input(&body, world)?;
            let invoked = runtime
                .handle(
                    &target,
                    &input.call.to_wit(&account.sid),
                    &input.trigger.to_wit(),
                )
                .await;
            finish(invoked, |instructions| {
                let list: Vec<Instruction> = instructions.iter().map(Instruction::from).collect();
                serde_json::to_value(list).unwrap_or_default()
            })
        }
        World::WaitState => {
            let input: WaitInput = parse_input(&body, world)?;
            let invoked = runtime
                .on_wait(
                    &target,
                    &input.call.to_wit(&account.sid),
                    &input.queue.to_wit(),
                )
                .await;
            finish(invoked, |instructions| {
                let list: Vec<WaitInstruction> =
                    instructions.iter().map(WaitInstruction::from).collect();
                serde_json::to_value(list).unwrap_or_default()
            })
        }
        World::WorkflowRules => {
            let input: RulesInput = parse_input(&body, world)?;
            let task = input.task.to_wit();
            match input.worker {
                Some(worker) => {
                    let invoked = runtime.score(&target, &task, &worker.to_wit()).await;
                    finish(invoked, |score| serde_json::json!({ "score": score }))
                }
                None => {
                    let invoked = runtime.route(&target, &task).await;
                    finish(invoked, |decision| {
                        serde_json::to_value(RoutingDecision::from(&decision)).unwrap_or_default()
                    })
                }
            }
        }
        World::EventSubscriber => {
            let input: EventInput = parse_input(&body, world)?;
            let invoked = runtime
                .on_event(&target, &input.event.to_wit(&account.sid))
                .await;
            finish(invoked, |()| serde_json::json!({ "delivered": true }))
        }
    };
    committed
        .wait()
        .await
        .map_err(|error| ApiError::new(Code::Unavailable, error.to_string()))?;
    let (output, error) = match result {
        Ok(output) => (Some(output), None),
        Err(failure) => (None, Some(failure)),
    };
    Ok(Json(InvokeResult {
        module,
        outcome: usage.outcome,
        output,
        error,
        usage,
    }))
}

/// Runtime counters for operators: pooling, compilations, artifacts loaded from disk.
#[utoipa::path(get, path = "/v1/Runtime", tag = "operations", security(("operator" = [])),
    responses((status = 200, body = RuntimeStats)))]
pub async fn runtime_stats(_: Operator, State(state): State<AppState>) -> impl IntoResponse {
    Json(state.runtime.stats())
}
