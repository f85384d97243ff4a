//! Realtime and cumulative statistics of workspaces, task queues, workflows and workers.

use axum::Router;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
