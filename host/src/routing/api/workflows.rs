//! Workflows: the routing configurations tasks are created against.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{Caller, QueryPairs, boolean, created, envelope, friendly_name, integer, not_found};
use crate::api::FormPairs;
use crate::api::error::{ApiError, ApiResult};
use crate::app::AppState;
use crate::routing::model::*;
use crate::routing::space::Space;
use crate::routing::{views, workflow};
use crate::sid::new_sid;

fn reservation_timeout(form: &FormPairs) -> ApiResult<Option<i64>> {
    integer(form, "TaskReservationTimeout", 1..=86_400)
}

fn compile(space: &Space, text: &str) -> ApiResult<workflow::Configuration> {
    workflow::parse(text, &|sid| space.queues.contains_key(sid))
        .map_err(|e| ApiError::invalid(e.to_string()))
}

/// An assignment callback: an http(s) URL, or a `module:` URI naming an event-subscriber module.
fn assignment_url(form: &FormPairs, name: &str) -> ApiResult<Option<String>> {
    match form.get(name) {
        Some("") | None => Ok(None),
        Some(url) => {
            crate::telephony::resources::check_uri(name, url)?;
            Ok(Some(url.to_string()))
        }
    }
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/Workflows", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 201, description = "The new workflow"), (status = 400, description = "An invalid parameter or Configuration (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn create_workflow(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, true)?.unwrap_or_default();
    let text = form
        .get("Configuration")
        .ok_or_else(|| ApiError::invalid("Configuration is required"))?
        .to_string();
    let url = assignment_url(&form, "AssignmentCallbackUrl")?;
    let fallback = assignment_url(&form, "FallbackAssignmentCallbackUrl")?;
    let timeout =
        reservation_timeout(&form)?.unwrap_or(crate::routing::space::DEFAULT_RESERVATION_TIMEOUT);
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            let configuration = compile(space, &text)?;
            let now = space.now();
            let workflow = Workflow {
                sid: new_sid("WW"),
                friendly_name: name,
                configuration_text: text,
                configuration: Arc::new(configuration),
                assignment_callback_url: url,
                fallback_assignment_callback_url: fallback,
                task_reservation_timeout: timeout,
                date_created: now,
                date_updated: now,
            };
            let body = views::workflow(&caller.base, space, &workflow);
            space.add_workflow(fx, workflow);
            Ok(created(body))
        })
        .await
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workflows", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "`workflows` list envelope (`FriendlyName` narrows)"), (status = 400, description = "An invalid parameter (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn list_workflows(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let items = state.routing.read(&caller.account_sid, &ws, |space| {
        let mut workflows: Vec<&Workflow> = space
            .workflows
            .values()
            .filter(|w| {
                query
                    .get("FriendlyName")
                    .is_none_or(|n| w.friendly_name == n)
            })
            .collect();
        workflows.sort_by(|a, b| (a.date_created, &a.sid).cmp(&(b.date_created, &b.sid)));
        Ok(workflows
            .into_iter()
            .map(|w| views::workflow(&caller.base, space, w))
            .collect())
    })?;
    envelope(
        &caller.base,
        &format!("/v1/Workspaces/{ws}/Workflows"),
        "workflows",
        &query,
        items,
    )
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workflows/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The workflow's sid (WW...)")),
    responses((status = 200, description = "The workflow"), (status = 404, description = "No such workspace or workflow", body = crate::api::error::ErrorBody)))]
pub async fn fetch_workflow(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
) -> ApiResult<Response> {
    state.routing.read(&caller.account_sid, &ws, |space| {
        let workflow = space.workflows.get(&sid).ok_or_else(|| not_found(&sid))?;
        Ok(Json(views::workflow(&caller.base, space, workflow)).into_response())
    })
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/Workflows/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The workflow's sid (WW...)")),
    responses((status = 200, description = "The updated workflow (`ReEvaluateTasks` reroutes its pending tasks)"), (status = 400, description = "An invalid parameter or Configuration (the message names it)", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or workflow", body = crate::api::error::ErrorBody)))]
pub async fn update_workflow(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    form: FormPairs,
) -> ApiResult<Response> {
    let name = friendly_name(&form, false)?;
    let timeout = reservation_timeout(&form)?;
    let url = form
        .get("AssignmentCallbackUrl")
        .map(|_| assignment_url(&form, "AssignmentCallbackUrl"))
        .transpose()?;
    let fallback = form
        .get("FallbackAssignmentCallbackUrl")
        .map(|_| assignment_url(&form, "FallbackAssignmentCallbackUrl"))
        .transpose()?;
    let reevaluate = boolean(&form, "ReEvaluateTasks")?.unwrap_or(false);
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            let configuration = form
                .get("Configuration")
                .map(|text| compile(space, text).map(|c| (text.to_string(), c)))
                .transpose()?;
            let now = space.now();
            let workflow = space
                .workflows
                .get_mut(&sid)
                .ok_or_else(|| not_found(&sid))?;
            if let Some(name) = name {
                workflow.friendly_name = name;
            }
            if let Some((text, compiled)) = configuration {
                workflow.configuration_text = text;
                workflow.configuration = Arc::new(compiled);
            }
            if let Some(url) = url {
                workflow.assignment_callback_url = url;
            }
            if let Some(fallback) = fallback {
                workflow.fallback_assignment_callback_url = fallback;
            }
            if let Some(timeout) = timeout {
                workflow.task_reservation_timeout = timeout;
            }
            workflow.date_updated = now;
            fx.change.push(crate::routing::store::workflow_row(
                &space.workspace.sid,
                workflow,
            ));
            space.event(
                fx,
                "workflow.updated",
                "workflow",
                &sid,
                format!("Workflow {sid} updated"),
                Default::default(),
            );
            if reevaluate {
                let waiting: Vec<String> = space
                    .tasks
                    .values()
                    .filter(|t| {
                        t.status == TaskStatus::Pending
                            && t.workflow_sid.as_deref() == Some(sid.as_str())
                    })
                    .map(|t| t.sid.clone())
                    .collect();
                for task in waiting {
                    let attributes = space
                        .tasks
                        .get(&task)
                        .map(|t| (t.attributes_text.clone(), t.attributes.clone()));
                    if let Some((text, value)) = attributes {
                        space.update_task_attributes(fx, &task, text, value);
                    }
                }
            }
            let workflow = space.workflows.get(&sid).ok_or_else(|| not_found(&sid))?;
            Ok(Json(views::workflow(&caller.base, space, workflow)).into_response())
        })
        .await
}

#[utoipa::path(delete, path = "/v1/Workspaces/{WorkspaceSid}/Workflows/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The workflow's sid (WW...)")),
    responses((status = 204, description = "The workflow is deleted"), (status = 400, description = "Tasks of this workflow are still open", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or workflow", body = crate::api::error::ErrorBody)))]
pub async fn delete_workflow(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
) -> ApiResult<Response> {
    state
        .routing
        .transition(&caller.account_sid, &ws, |space, fx| {
            space.workflows.get(&sid).ok_or_else(|| not_found(&sid))?;
            if space
                .tasks
                .values()
                .any(|t| t.workflow_sid.as_deref() == Some(sid.as_str()))
            {
                return Err(ApiError::invalid(
                    "Tasks of this workflow are still open; finish them first",
                ));
            }
            space.workflows.remove(&sid);
            fx.change.push(crate::routing::store::delete(
                crate::routing::store::Table::Workflow,
                &sid,
            ));
            space.event(
                fx,
                "workflow.deleted",
                "workflow",
                &sid,
                format!("Workflow {sid} deleted"),
                Default::default(),
            );
            Ok(StatusCode::NO_CONTENT.into_response())
        })
        .await
}
