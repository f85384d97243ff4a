//! Realtime and cumulative statistics of workspaces, task queues, workflows and workers, and the
//! reference's Events resource, which the cumulative figures are counted from.
//!
//! Realtime figures are read from the workspace's live state under its lock, so they are exact at
//! the instant of the request. Cumulative figures are read from the event log over a window (the
//! reference's `StartDate` / `EndDate` / `Minutes`, the last 15 minutes of the host clock by
//! default). Counters are `COUNT(*)`s in SQL, exact whatever the volume; wait and activity
//! durations need a field of each event, so they are taken from at most [`MAX_ROWS`] events per
//! figure (the oldest of the window first), as is an Events page.
//!
//! The log's `data` is JSON text with no index over it, and one SQL text serves SQLite and
//! PostgreSQL, so events are narrowed to a queue, workflow, worker or channel with
//! `data LIKE '%"task_queue_sid":"WQ..."%'` on the compact JSON the routing writes (see
//! [`like_pattern`]); rows read back are checked field by field.

use std::collections::{HashMap, HashSet};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use sqlx::Row;

use super::api::{Caller, QueryPairs, envelope};
use super::model::{Task, TaskChannel, TaskStatus, Worker};
use super::space::{QueueCounts, Space};
use super::views::date;
use crate::api::FormPairs;
use crate::api::error::{ApiError, ApiResult};
use crate::app::AppState;
use crate::store::batch::Param;
use crate::store::{Db, parse_rfc3339};

/// Events one request reads into memory at most: one Events page, or the events one duration
/// figure is computed from. Counters are not bounded by it.
const MAX_ROWS: i64 = 10_000;
/// The window when a request names none, as the reference defaults it.
const DEFAULT_MINUTES: i64 = 15;
/// Task queues one bulk realtime request may name, as the reference limits it.
const MAX_BULK_QUEUES: usize = 50;
/// Thresholds one `SplitByWaitTime` may list: each is a pass over the window's wait times.
const MAX_THRESHOLDS: usize = 20;

/// The reservation counters every cumulative figure set carries, with the event each counts.
const RESERVATION_COUNTERS: [(&str, &str); 6] = [
    ("reservations_created", "reservation.created"),
    ("reservations_accepted", "reservation.accepted"),
    ("reservations_rejected", "reservation.rejected"),
    ("reservations_timed_out", "reservation.timeout"),
    ("reservations_canceled", "reservation.canceled"),
    ("reservations_rescinded", "reservation.rescinded"),
];

/// Events list filters that name a field of the event's data.
const EVENT_FIELD_FILTERS: [(&str, &str); 5] = [
    ("TaskSid", "task_sid"),
    ("WorkerSid", "worker_sid"),
    ("ReservationSid", "reservation_sid"),
    ("TaskQueueSid", "task_queue_sid"),
    ("WorkflowSid", "workflow_sid"),
];

pub fn routes() -> Router<AppState> {
    let ws = "/v1/Workspaces/{workspace_sid}";
    // The literal segments (`/TaskQueues/Statistics`, `/Workers/RealTimeStatistics`, ...) win
    // over the `{sid}` routes of the same depth in the router, whatever the method.
    Router::new()
        .route(&format!("{ws}/Events"), get(list_events))
        .route(&format!("{ws}/Events/{{sid}}"), get(fetch_event))
        .route(&format!("{ws}/Statistics"), get(workspace_statistics))
        .route(&format!("{ws}/RealTimeStatistics"), get(workspace_realtime))
        .route(
            &format!("{ws}/CumulativeStatistics"),
            get(workspace_cumulative),
        )
        .route(
            &format!("{ws}/TaskQueues/Statistics"),
            get(list_queue_statistics),
        )
        .route(
            &format!("{ws}/TaskQueues/RealTimeStatistics"),
            post(bulk_queue_realtime),
        )
        .route(
            &format!("{ws}/TaskQueues/{{sid}}/Statistics"),
            get(queue_statistics),
        )
        .route(
            &format!("{ws}/TaskQueues/{{sid}}/RealTimeStatistics"),
            get(queue_realtime),
        )
        .route(
            &format!("{ws}/TaskQueues/{{sid}}/CumulativeStatistics"),
            get(queue_cumulative),
        )
        .route(
            &format!("{ws}/Workflows/{{sid}}/Statistics"),
            get(workflow_statistics),
        )
        .route(
            &format!("{ws}/Workflows/{{sid}}/RealTimeStatistics"),
            get(workflow_realtime),
        )
        .route(
            &format!("{ws}/Workflows/{{sid}}/CumulativeStatistics"),
            get(workflow_cumulative),
        )
        .route(&format!("{ws}/Workers/Statistics"), get(workers_statistics))
        .route(
            &format!("{ws}/Workers/RealTimeStatistics"),
            get(workers_realtime),
        )
        .route(
            &format!("{ws}/Workers/CumulativeStatistics"),
            get(workers_cumulative),
        )
        .route(
            &format!("{ws}/Workers/{{sid}}/Statistics"),
            get(worker_statistics),
        )
}

// ----- request parameters -----

/// The span of time cumulative figures and event lists cover, in unix ms, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    /// The window a request names: `EndDate` (or now) back to `StartDate`, or back `Minutes`
    /// (15 unless given) when there is no `StartDate`.
    pub fn parse(query: &FormPairs, now: i64) -> ApiResult<Window> {
        let start = instant(query, "StartDate")?;
        let end = instant(query, "EndDate")?.unwrap_or(now);
        let minutes = match query.get("Minutes") {
            Some(text) => text
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|m| *m >= 1)
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Minutes must be a whole number of minutes, 1 or more, not {text:?}"
                    ))
                })?,
            None => DEFAULT_MINUTES,
        };
        let start = start.unwrap_or_else(|| end.saturating_sub(minutes.saturating_mul(60_000)));
        if start > end {
            return Err(ApiError::invalid(format!(
                "StartDate {} is after EndDate {} (EndDate is now when not given)",
                date(start),
                date(end)
            )));
        }
        Ok(Window { start, end })
    }
}

/// A date parameter: ISO 8601 date and time, or a bare date meaning its midnight UTC.
fn instant(query: &FormPairs, name: &str) -> ApiResult<Option<i64>> {
    let Some(text) = query.get(name) else {
        return Ok(None);
    };
    let text = text.trim();
    let parsed = if text.len() == 10 {
        parse_rfc3339(&format!("{text}T00:00:00Z"))
    } else {
        parse_rfc3339(text)
    };
    parsed.map(Some).ok_or_else(|| {
        ApiError::invalid(format!(
            "{name} must be an ISO 8601 date and time such as 2024-05-01T12:00:00Z, not {text:?}"
        ))
    })
}

/// `SplitByWaitTime`: distinct thresholds in seconds, ascending.
fn thresholds(query: &FormPairs) -> ApiResult<Vec<i64>> {
    let Some(text) = query.get("SplitByWaitTime") else {
        return Ok(Vec::new());
    };
    let mut thresholds = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let seconds = part
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "SplitByWaitTime must list whole numbers of seconds separated by commas, such as 10,30,60; {part:?} is not one"
                ))
            })?;
        if !thresholds.contains(&seconds) {
            thresholds.push(seconds);
        }
    }
    if thresholds.len() > MAX_THRESHOLDS {
        return Err(ApiError::invalid(format!(
            "SplitByWaitTime may list at most {MAX_THRESHOLDS} thresholds"
        )));
    }
    thresholds.sort_unstable();
    Ok(thresholds)
}

/// `TaskChannel`, by sid or unique name.
fn task_channel<'a>(space: &'a Space, query: &FormPairs) -> ApiResult<Option<&'a TaskChannel>> {
    query
        .get("TaskChannel")
        .map(|text| {
            space.channel_by_ref(text).ok_or_else(|| {
                ApiError::invalid(format!(
                    "TaskChannel {text:?} is not a task channel of this workspace"
                ))
            })
        })
        .transpose()
}

// ----- reading the event log -----

/// Which events of one workspace's log a query reads.
#[derive(Debug, Clone)]
struct Selection {
    account_sid: String,
    workspace_sid: String,
    window: Option<Window>,
    /// Event types; none = every type.
    types: Vec<String>,
    sid: Option<String>,
    /// Fields of the event's data that must hold these values.
    fields: Vec<(&'static str, String)>,
}

impl Selection {
    fn new(account_sid: &str, workspace_sid: &str) -> Selection {
        Selection {
            account_sid: account_sid.to_string(),
            workspace_sid: workspace_sid.to_string(),
            window: None,
            types: Vec::new(),
            sid: None,
            fields: Vec::new(),
        }
    }

    fn within(mut self, window: Window) -> Selection {
        self.window = Some(window);
        self
    }

    fn of_types(mut self, types: &[&str]) -> Selection {
        self.types = types.iter().map(|t| t.to_string()).collect();
        self
    }

    fn field(mut self, key: &'static str, value: &str) -> Selection {
        self.fields.push((key, value.to_string()));
        self
    }

    fn channel(self, channel: Option<&TaskChannel>) -> Selection {
        match channel {
            Some(channel) => self.field("task_channel_unique_name", &channel.unique_name),
            None => self,
        }
    }

    /// The WHERE condition and its parameters, numbered in order.
    fn filter(&self) -> (String, Vec<Param>) {
        let mut params: Vec<Param> = vec![
            self.account_sid.clone().into(),
            format!("/v1/Workspaces/{}", self.workspace_sid).into(),
        ];
        let mut sql = String::from("account_sid = $1 AND source = $2");
        let mut next = |param: Param| {
            params.push(param);
            format!("${}", params.len())
        };
        if let Some(window) = self.window {
            let start = next(window.start.into());
            let end = next(window.end.into());
            sql.push_str(&format!(" AND time >= {start} AND time <= {end}"));
        }
        if !self.types.is_empty() {
            let list: Vec<String> = self.types.iter().map(|t| next(t.clone().into())).collect();
            sql.push_str(&format!(" AND type IN ({})", list.join(", ")));
        }
        if let Some(sid) = &self.sid {
            let sid = next(sid.clone().into());
            sql.push_str(&format!(" AND sid = {sid}"));
        }
        for (key, value) in &self.fields {
            let pattern = next(like_pattern(key, value).into());
            sql.push_str(&format!(" AND data LIKE {pattern} ESCAPE '\\'"));
        }
        (sql, params)
    }

    /// Whether an event read back really has the fields (`LIKE` is case-blind on SQLite).
    fn holds(&self, data: &Value) -> bool {
        self.fields
            .iter()
            .all(|(key, value)| data.get(*key).and_then(Value::as_str) == Some(value.as_str()))
    }
}

/// A `LIKE` pattern matching JSON text that has `"key":value` at its top level: the value is
/// written as serde_json writes it (compact, escaped), and `\`, `%` and `_` are escaped for
/// `ESCAPE '\'`. A key inside a nested JSON string (task attributes) has its quotes escaped
/// there, so it does not match.
fn like_pattern(key: &str, value: &str) -> String {
    let text = format!("{}:{}", Value::from(key), Value::from(value));
    let mut pattern = String::with_capacity(text.len() + 8);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bound<'q>(sql: String, params: Vec<Param>) -> AnyQuery<'q> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for param in params {
        query = match param {
            Param::Text(value) => query.bind(value),
            Param::Int(value) => query.bind(value),
        };
    }
    query
}

/// How many selected events there are of each type.
async fn count_by_type(db: &Db, selection: &Selection) -> ApiResult<HashMap<String, i64>> {
    let (filter, params) = selection.filter();
    let sql = format!(
        "SELECT type, CAST(COUNT(*) AS BIGINT) AS n FROM events WHERE {filter} GROUP BY type"
    );
    let rows = bound(sql, params).fetch_all(db.pool()).await?;
    let counts = rows
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<String, _>("type")?,
                row.try_get::<i64, _>("n")?,
            ))
        })
        .collect::<Result<HashMap<_, _>, sqlx::Error>>()?;
    Ok(counts)
}

/// An event as the log holds it.
#[derive(Debug, Clone)]
struct Logged {
    sid: String,
    event_type: String,
    subject: Option<String>,
    time: i64,
    data: Value,
}

/// The selected events in log order, at most [`MAX_ROWS`].
async fn fetch(db: &Db, selection: &Selection) -> ApiResult<Vec<Logged>> {
    let (filter, params) = selection.filter();
    let sql = format!(
        "SELECT sid, type, subject, time, data FROM events WHERE {filter} ORDER BY sequence LIMIT {MAX_ROWS}"
    );
    let rows = bound(sql, params).fetch_all(db.pool()).await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        let data: String = row.try_get("data")?;
        let data = serde_json::from_str(&data).unwrap_or(Value::Null);
        if !selection.holds(&data) {
            continue;
        }
        events.push(Logged {
            sid: row.try_get("sid")?,
            event_type: row.try_get("type")?,
            subject: row.try_get("subject")?,
            time: row.try_get("time")?,
            data,
        });
    }
    Ok(events)
}

// ----- events -----

/// The absolute URL of the resource an event is about, for the types that have one.
fn resource_url(
    workspace_url: &str,
    resource_type: &str,
    sid: &str,
    data: &Value,
) -> Option<String> {
    let path = match resource_type {
        "workspace" => String::new(),
        "task" => format!("/Tasks/{sid}"),
        "reservation" => {
            let task = data.get("task_sid").and_then(Value::as_str)?;
            format!("/Tasks/{task}/Reservations/{sid}")
        }
        "worker" => format!("/Workers/{sid}"),
        "activity" => format!("/Activities/{sid}"),
        "task_queue" => format!("/TaskQueues/{sid}"),
        "workflow" => format!("/Workflows/{sid}"),
        "task_channel" => format!("/TaskChannels/{sid}"),
        _ => return None,
    };
    Some(format!("{workspace_url}{path}"))
}

fn event_view(base: &str, account_sid: &str, workspace_sid: &str, event: &Logged) -> Value {
    let workspace_url = format!("{base}/v1/Workspaces/{workspace_sid}");
    let text = |key: &str| event.data.get(key).and_then(Value::as_str);
    let resource_type = text("resource_type");
    let resource_sid = text("resource_sid").or(event.subject.as_deref());
    let resource_url = resource_type
        .zip(resource_sid)
        .and_then(|(kind, sid)| resource_url(&workspace_url, kind, sid, &event.data));
    json!({
        "account_sid": account_sid,
        "actor_sid": null,
        "actor_type": null,
        "actor_url": null,
        "description": text("description"),
        "event_data": event.data,
        "event_date": date(event.time),
        "event_date_ms": event.time,
        "event_type": event.event_type,
        "resource_sid": resource_sid,
        "resource_type": resource_type,
        "resource_url": resource_url,
        "sid": event.sid,
        "source": "switchboard",
        "source_ip_address": null,
        "url": format!("{workspace_url}/Events/{}", event.sid),
        "workspace_sid": workspace_sid,
    })
}

/// The workspace's events in log order, at most [`MAX_ROWS`] per request: narrow the window to
/// read further.
#[utoipa::path(get, operation_id = "list_workspace_events", path = "/v1/Workspaces/{WorkspaceSid}/Events", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "`events` list envelope in log order (window, `EventType`, sid and `TaskChannel` filters)"), (status = 400, description = "An invalid window (`StartDate`, `EndDate`, `Minutes`), `TaskChannel` or `SplitByWaitTime`", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn list_events(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let window = Window::parse(&query, state.routing.now())?;
    let channel = state.routing.read(&caller.account_sid, &ws, |space| {
        Ok(task_channel(space, &query)?.cloned())
    })?;
    let mut selection = Selection::new(&caller.account_sid, &ws)
        .within(window)
        .channel(channel.as_ref());
    selection.types = query
        .all("EventType")
        .into_iter()
        .map(str::to_string)
        .collect();
    selection.sid = query.get("Sid").map(str::to_string);
    for (param, key) in EVENT_FIELD_FILTERS {
        if let Some(value) = query.get(param) {
            selection = selection.field(key, value);
        }
    }
    let items = fetch(state.routing.db(), &selection)
        .await?
        .iter()
        .map(|event| event_view(&caller.base, &caller.account_sid, &ws, event))
        .collect();
    envelope(
        &caller.base,
        &format!("/v1/Workspaces/{ws}/Events"),
        "events",
        &query,
        items,
    )
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Events/{Sid}", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("Sid" = String, Path, description = "The event's sid (EV...)")),
    responses((status = 200, description = "The event"), (status = 404, description = "No such workspace or event", body = crate::api::error::ErrorBody)))]
pub async fn fetch_event(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
) -> ApiResult<Response> {
    state.routing.read(&caller.account_sid, &ws, |_| Ok(()))?;
    let mut selection = Selection::new(&caller.account_sid, &ws);
    selection.sid = Some(sid.clone());
    let event = fetch(state.routing.db(), &selection)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(&sid))?;
    Ok(Json(event_view(&caller.base, &caller.account_sid, &ws, &event)).into_response())
}

// ----- aggregation -----

/// Average (rounded), least, greatest and total of a set of durations in seconds; all 0 when
/// there are none, as the reference reports an empty window.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Summary {
    avg: i64,
    min: i64,
    max: i64,
    total: i64,
}

impl Summary {
    fn of(values: &[i64]) -> Summary {
        let (Some(min), Some(max)) = (values.iter().min(), values.iter().max()) else {
            return Summary::default();
        };
        let total: i64 = values.iter().sum();
        Summary {
            avg: (total as f64 / values.len() as f64).round() as i64,
            min: *min,
            max: *max,
            total,
        }
    }

    fn json(self) -> Value {
        json!({"avg": self.avg, "min": self.min, "max": self.max, "total": self.total})
    }
}

/// For each threshold, how many reservations were accepted and tasks canceled at or below it
/// (`below`) and past it (`above`), by the task's age then.
fn split_by_wait(accepted: &[i64], canceled: &[i64], thresholds: &[i64]) -> Value {
    if thresholds.is_empty() {
        return Value::Null;
    }
    let mut split = Map::new();
    for threshold in thresholds {
        let below = |ages: &[i64]| ages.iter().filter(|age| **age <= *threshold).count() as i64;
        let (accepted_below, canceled_below) = (below(accepted), below(canceled));
        split.insert(
            threshold.to_string(),
            json!({
                "below": {"reservations_accepted": accepted_below, "tasks_canceled": canceled_below},
                "above": {
                    "reservations_accepted": accepted.len() as i64 - accepted_below,
                    "tasks_canceled": canceled.len() as i64 - canceled_below,
                },
            }),
        );
    }
    Value::Object(split)
}

/// Whose tasks cumulative task figures are about; each level reports the reference's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Queue,
    Workflow,
    Workspace,
}

/// What task figures are computed from: event counts, and the task's age (seconds) at each
/// acceptance and cancellation, and at each acceptance the time it had spent in its queue.
#[derive(Debug, Default)]
struct TaskLog {
    counts: HashMap<String, i64>,
    accepted_ages: Vec<i64>,
    accepted_ages_in_queue: Vec<i64>,
    canceled_ages: Vec<i64>,
}

async fn task_log(db: &Db, selection: &Selection) -> ApiResult<TaskLog> {
    let counts = count_by_type(db, selection).await?;
    let timed = selection
        .clone()
        .of_types(&["reservation.accepted", "task.canceled"]);
    let mut log = TaskLog {
        counts,
        ..TaskLog::default()
    };
    for event in fetch(db, &timed).await? {
        let age = event
            .data
            .get("task_age")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        match event.event_type.as_str() {
            "reservation.accepted" => {
                log.accepted_ages.push(age);
                // Acceptances recorded before the event carried it are left out.
                if let Some(in_queue) = event.data.get("task_age_in_queue").and_then(Value::as_i64)
                {
                    log.accepted_ages_in_queue.push(in_queue);
                }
            }
            _ => log.canceled_ages.push(age),
        }
    }
    Ok(log)
}

fn count(counts: &HashMap<String, i64>, event_type: &str) -> i64 {
    counts.get(event_type).copied().unwrap_or(0)
}

/// The reference's cumulative fields for tasks of a queue, a workflow or the workspace.
fn task_figures(
    level: Level,
    log: &TaskLog,
    window: Window,
    thresholds: &[i64],
) -> Map<String, Value> {
    let count = |event_type: &str| count(&log.counts, event_type);
    let accepted = Summary::of(&log.accepted_ages);
    let mut figures = Map::new();
    figures.insert("avg_task_acceptance_time".into(), json!(accepted.avg));
    figures.insert("start_time".into(), json!(date(window.start)));
    figures.insert("end_time".into(), json!(date(window.end)));
    for (field, event_type) in RESERVATION_COUNTERS {
        figures.insert(field.into(), json!(count(event_type)));
    }
    figures.insert(
        "split_by_wait_time".into(),
        split_by_wait(&log.accepted_ages, &log.canceled_ages, thresholds),
    );
    figures.insert("tasks_canceled".into(), json!(count("task.canceled")));
    figures.insert("tasks_completed".into(), json!(count("task.completed")));
    figures.insert("tasks_deleted".into(), json!(count("task.deleted")));
    // A step timing out is followed by the next step, or (after the last one) by the task leaving
    // its workflow: only the former moved it on.
    let moved = (count("task-queue.timeout") - count("workflow.timeout")).max(0);
    figures.insert("tasks_moved".into(), json!(moved));
    match level {
        Level::Queue => {
            figures.insert("tasks_entered".into(), json!(count("task-queue.entered")));
            figures.insert(
                "wait_duration_in_queue_until_accepted".into(),
                Summary::of(&log.accepted_ages_in_queue).json(),
            );
        }
        Level::Workflow => {
            figures.insert("tasks_entered".into(), json!(count("workflow.entered")));
        }
        Level::Workspace => {
            figures.insert("tasks_created".into(), json!(count("task.created")));
        }
    }
    if level != Level::Queue {
        figures.insert(
            "tasks_timed_out_in_workflow".into(),
            json!(count("workflow.timeout")),
        );
    }
    figures.insert("wait_duration_until_accepted".into(), accepted.json());
    figures.insert(
        "wait_duration_until_canceled".into(),
        Summary::of(&log.canceled_ages).json(),
    );
    figures
}

/// What worker figures are computed from: reservation counts, and `(activity, seconds)` for each
/// time a worker left an activity.
#[derive(Debug, Default)]
struct WorkerLog {
    counts: HashMap<String, i64>,
    changes: Vec<(String, i64)>,
}

/// Whose worker figures a request is about.
struct WorkerScope {
    window: Window,
    /// The workers counted; `None` = every worker.
    workers: Option<HashSet<String>>,
    /// Narrows the reservation counters (to a queue, a worker, a channel).
    reservations: Selection,
    /// Narrows the activity changes read (to one worker).
    changes: Selection,
    /// The workspace's activities, `(sid, friendly_name)`, for the durations.
    activities: Vec<(String, String)>,
}

async fn worker_log(db: &Db, scope: &WorkerScope) -> ApiResult<WorkerLog> {
    if scope.workers.as_ref().is_some_and(HashSet::is_empty) {
        return Ok(WorkerLog::default());
    }
    let types: Vec<&str> = RESERVATION_COUNTERS.iter().map(|(_, t)| *t).collect();
    let counts = count_by_type(db, &scope.reservations.clone().of_types(&types)).await?;
    let changes = scope.changes.clone().of_types(&["worker.activity.update"]);
    let changes = fetch(db, &changes)
        .await?
        .into_iter()
        .filter(|event| {
            let worker = event.data.get("worker_sid").and_then(Value::as_str);
            scope
                .workers
                .as_ref()
                .is_none_or(|set| worker.is_some_and(|w| set.contains(w)))
        })
        .filter_map(|event| {
            let activity = event.data.get("worker_previous_activity_sid")?.as_str()?;
            let seconds = event
                .data
                .get("worker_time_in_previous_activity")?
                .as_i64()?;
            Some((activity.to_string(), seconds))
        })
        .collect();
    Ok(WorkerLog { counts, changes })
}

/// Per activity (`(sid, friendly_name)`, in the workspace's order), the time workers spent in it
/// before leaving it.
fn activity_durations(activities: &[(String, String)], changes: &[(String, i64)]) -> Value {
    let mut by_activity: HashMap<&str, Vec<i64>> = HashMap::new();
    for (activity, seconds) in changes {
        by_activity.entry(activity).or_default().push(*seconds);
    }
    activities
        .iter()
        .map(|(sid, name)| {
            let summary = Summary::of(
                by_activity
                    .get(sid.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            );
            json!({
                "sid": sid,
                "friendly_name": name,
                "avg": summary.avg,
                "min": summary.min,
                "max": summary.max,
                "total": summary.total,
            })
        })
        .collect()
}

/// The reference's cumulative fields for workers.
fn worker_figures(log: &WorkerLog, scope: &WorkerScope) -> Map<String, Value> {
    let mut figures = Map::new();
    figures.insert(
        "activity_durations".into(),
        activity_durations(&scope.activities, &log.changes),
    );
    for (field, event_type) in RESERVATION_COUNTERS {
        figures.insert(field.into(), json!(count(&log.counts, event_type)));
    }
    figures.insert("start_time".into(), json!(date(scope.window.start)));
    figures.insert("end_time".into(), json!(date(scope.window.end)));
    figures
}

fn activity_list(space: &Space) -> Vec<(String, String)> {
    space
        .activities
        .iter()
        .map(|a| (a.sid.clone(), a.friendly_name.clone()))
        .collect()
}

// ----- realtime, from the live state -----

fn waiting(task: &Task) -> bool {
    matches!(task.status, TaskStatus::Pending | TaskStatus::Reserved)
}

/// Live tasks, of one task channel when given.
fn live_tasks<'a>(
    space: &'a Space,
    channel: Option<&'a TaskChannel>,
) -> impl Iterator<Item = &'a Task> {
    space
        .tasks
        .values()
        .filter(move |t| channel.is_none_or(|c| t.task_channel_sid == c.sid))
}

fn task_counts<'a>(tasks: impl Iterator<Item = &'a Task>, now: i64) -> QueueCounts {
    let mut counts = QueueCounts::default();
    for task in tasks {
        counts.add(task, now);
    }
    counts
}

/// Tasks by status and priority, their total and the longest waiting.
fn task_fields(counts: &QueueCounts, figures: &mut Map<String, Value>) {
    let status = |s: TaskStatus| counts.by_status.get(s.as_str()).copied().unwrap_or(0);
    figures.insert(
        "tasks_by_status".into(),
        json!({
            "pending": status(TaskStatus::Pending),
            "reserved": status(TaskStatus::Reserved),
            "assigned": status(TaskStatus::Assigned),
            "wrapping": status(TaskStatus::Wrapping),
        }),
    );
    let by_priority: Map<String, Value> = counts
        .by_priority
        .iter()
        .map(|(priority, n)| (priority.to_string(), json!(n)))
        .collect();
    figures.insert("tasks_by_priority".into(), Value::Object(by_priority));
    figures.insert("total_tasks".into(), json!(counts.total));
    let (age, sid) = counts
        .longest_waiting
        .as_ref()
        .map_or((0, None), |(age, sid)| (*age, Some(sid.as_str())));
    figures.insert("longest_task_waiting_age".into(), json!(age));
    figures.insert("longest_task_waiting_sid".into(), json!(sid));
}

/// Workers per activity, every activity of the workspace listed.
fn activity_statistics(space: &Space, by_activity: &HashMap<String, i64>) -> Value {
    space
        .activities
        .iter()
        .map(|a| {
            json!({
                "friendly_name": a.friendly_name,
                "sid": a.sid,
                "workers": by_activity.get(&a.sid).copied().unwrap_or(0),
            })
        })
        .collect()
}

fn workers_by_activity<'a>(workers: impl Iterator<Item = &'a Worker>) -> HashMap<String, i64> {
    let mut by_activity = HashMap::new();
    for worker in workers {
        *by_activity.entry(worker.activity_sid.clone()).or_default() += 1;
    }
    by_activity
}

fn queue_live(space: &Space, queue_sid: &str, channel: Option<&TaskChannel>) -> Map<String, Value> {
    let now = space.now();
    let tasks: Vec<&Task> = live_tasks(space, channel)
        .filter(|t| t.queue_sid.as_deref() == Some(queue_sid))
        .collect();
    let mut counts = task_counts(tasks.iter().copied(), now);
    let members: Vec<&Worker> = space
        .queues
        .get(queue_sid)
        .map(|q| {
            q.members
                .iter()
                .filter_map(|sid| space.workers.get(sid))
                .collect()
        })
        .unwrap_or_default();
    counts.eligible = members.len() as i64;
    counts.available = members
        .iter()
        .filter(|w| space.worker_available(w))
        .filter(|w| channel.is_none_or(|c| w.channel(&c.sid).is_some_and(|wc| wc.available)))
        .count() as i64;
    counts.activities = workers_by_activity(members.iter().copied());
    let relative = tasks
        .iter()
        .filter(|t| waiting(t))
        .map(|t| {
            let entered = t.task_queue_entered_date.unwrap_or(t.date_created);
            ((now - entered).max(0) / 1000, t.sid.as_str())
        })
        .max();
    let mut figures = Map::new();
    figures.insert(
        "activity_statistics".into(),
        activity_statistics(space, &counts.activities),
    );
    task_fields(&counts, &mut figures);
    figures.insert(
        "longest_relative_task_age_in_queue".into(),
        json!(relative.map_or(0, |(age, _)| age)),
    );
    figures.insert(
        "longest_relative_task_sid_in_queue".into(),
        json!(relative.map(|(_, sid)| sid)),
    );
    figures.insert("total_available_workers".into(), json!(counts.available));
    figures.insert("total_eligible_workers".into(), json!(counts.eligible));
    figures
}

fn workflow_live(
    space: &Space,
    workflow_sid: &str,
    channel: Option<&TaskChannel>,
) -> Map<String, Value> {
    let tasks =
        live_tasks(space, channel).filter(|t| t.workflow_sid.as_deref() == Some(workflow_sid));
    let mut figures = Map::new();
    task_fields(&task_counts(tasks, space.now()), &mut figures);
    figures
}

fn workspace_live(space: &Space, channel: Option<&TaskChannel>) -> Map<String, Value> {
    let mut figures = Map::new();
    let by_activity = workers_by_activity(space.workers.values());
    figures.insert(
        "activity_statistics".into(),
        activity_statistics(space, &by_activity),
    );
    task_fields(
        &task_counts(live_tasks(space, channel), space.now()),
        &mut figures,
    );
    figures.insert("total_workers".into(), json!(space.workers.len()));
    figures
}

fn workers_live<'a>(
    space: &Space,
    workers: impl Iterator<Item = &'a Worker>,
) -> Map<String, Value> {
    let workers: Vec<&Worker> = workers.collect();
    let mut figures = Map::new();
    figures.insert(
        "activity_statistics".into(),
        activity_statistics(space, &workers_by_activity(workers.iter().copied())),
    );
    figures.insert("total_workers".into(), json!(workers.len()));
    figures
}

// ----- answers -----

/// Figures with the identity fields every statistics answer carries.
fn identified(mut body: Map<String, Value>, identity: &[(&str, &str)], url: String) -> Value {
    for (key, value) in identity {
        body.insert((*key).into(), json!(value));
    }
    body.insert("url".into(), json!(url));
    Value::Object(body)
}

fn combined(cumulative: Map<String, Value>, realtime: Map<String, Value>) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("cumulative".into(), Value::Object(cumulative));
    body.insert("realtime".into(), Value::Object(realtime));
    body
}

fn respond(value: Value) -> ApiResult<Response> {
    Ok(Json(value).into_response())
}

fn workspace_url(caller: &Caller, ws: &str) -> String {
    format!("{}/v1/Workspaces/{ws}", caller.base)
}

// ----- workspace -----

async fn workspace_cumulative_figures(
    state: &AppState,
    caller: &Caller,
    ws: &str,
    query: &FormPairs,
) -> ApiResult<(Map<String, Value>, Option<TaskChannel>)> {
    let window = Window::parse(query, state.routing.now())?;
    let thresholds = thresholds(query)?;
    let channel = state.routing.read(&caller.account_sid, ws, |space| {
        Ok(task_channel(space, query)?.cloned())
    })?;
    let selection = Selection::new(&caller.account_sid, ws)
        .within(window)
        .channel(channel.as_ref());
    let log = task_log(state.routing.db(), &selection).await?;
    Ok((
        task_figures(Level::Workspace, &log, window, &thresholds),
        channel,
    ))
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/CumulativeStatistics", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "The workspace's cumulative statistics over the window"), (status = 400, description = "An invalid window (`StartDate`, `EndDate`, `Minutes`), `TaskChannel` or `SplitByWaitTime`", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn workspace_cumulative(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let (figures, _) = workspace_cumulative_figures(&state, &caller, &ws, &query).await?;
    let identity = [
        ("account_sid", caller.account_sid.as_str()),
        ("workspace_sid", ws.as_str()),
    ];
    let url = format!("{}/CumulativeStatistics", workspace_url(&caller, &ws));
    respond(identified(figures, &identity, url))
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/RealTimeStatistics", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "The workspace's realtime statistics"), (status = 400, description = "An invalid `TaskChannel`", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn workspace_realtime(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let figures = state.routing.read(&caller.account_sid, &ws, |space| {
        Ok(workspace_live(space, task_channel(space, &query)?))
    })?;
    let identity = [
        ("account_sid", caller.account_sid.as_str()),
        ("workspace_sid", ws.as_str()),
    ];
    let url = format!("{}/RealTimeStatistics", workspace_url(&caller, &ws));
    respond(identified(figures, &identity, url))
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Statistics", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "The workspace's cumulative and realtime statistics"), (status = 400, description = "An invalid window (`StartDate`, `EndDate`, `Minutes`), `TaskChannel` or `SplitByWaitTime`", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn workspace_statistics(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let (cumulative, channel) = workspace_cumulative_figures(&state, &caller, &ws, &query).await?;
    let realtime = state.routing.read(&caller.account_sid, &ws, |space| {
        Ok(workspace_live(space, channel.as_ref()))
    })?;
    let identity = [
        ("account_sid", caller.account_sid.as_str()),
        ("workspace_sid", ws.as_str()),
    ];
    let url = format!("{}/Statistics", workspace_url(&caller, &ws));
    respond(identified(combined(cumulative, realtime), &identity, url))
}

// ----- task queues -----

/// A queue's realtime figures and the selection of its events, checked under the lock.
fn queue_scope(
    space: &Space,
    caller: &Caller,
    queue_sid: &str,
    query: &FormPairs,
    window: Window,
) -> ApiResult<QueueScope> {
    let queue = space
        .queues
        .get(queue_sid)
        .ok_or_else(|| ApiError::not_found(queue_sid))?;
    let channel = task_channel(space, query)?;
    let selection = Selection::new(&caller.account_sid, &space.workspace.sid)
        .within(window)
        .field("task_queue_sid", &queue.sid)
        .channel(channel);
    Ok(QueueScope {
        sid: queue.sid.clone(),
        realtime: queue_live(space, &queue.sid, channel),
        selection,
    })
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/TaskQueues/{TaskQueueSid}/CumulativeStatistics", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("TaskQueueSid" = String, Path, description = "The task queue's sid (WQ...)")),
    responses((status = 200, description = "The task queue's cumulative statistics over the window"), (status = 400, description = "An invalid window (`StartDate`, `EndDate`, `Minutes`), `TaskChannel` or `SplitByWaitTime`", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or task queue", body = crate::api::error::ErrorBody)))]
pub async fn queue_cumulative(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let window = Window::parse(&query, state.routing.now())?;
    let thresholds = thresholds(&query)?;
    let scope = state.routing.read(&caller.account_sid, &ws, |space| {
        queue_scope(space, &caller, &sid, &query, window)
    })?;
    let log = task_log(state.routing.db(), &scope.selection).await?;
    let figures = task_figures(Level::Queue, &log, window, &thresholds);
    let identity = [
        ("account_sid", caller.account_sid.as_str()),
        ("task_queue_sid", sid.as_str()),
        ("workspace_sid", ws.as_str()),
    ];
    let url = format!(
        "{}/TaskQueues/{sid}/CumulativeStatistics",
        workspace_url(&caller, &ws)
    );
    respond(identified(figures, &identity, url))
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/TaskQueues/{TaskQueueSid}/RealTimeStatistics", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("TaskQueueSid" = String, Path, description = "The task queue's sid (WQ...)")),
    responses((status = 200, description = "The task queue's realtime statistics"), (status = 400, description = "An invalid `TaskChannel`", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or task queue", body = crate::api::error::ErrorBody)))]
pub async fn queue_realtime(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let figures = state.routing.read(&caller.account_sid, &ws, |space| {
        space
            .queues
            .get(&sid)
            .ok_or_else(|| ApiError::not_found(&sid))?;
        Ok(queue_live(space, &sid, task_channel(space, &query)?))
    })?;
    let identity = [
        ("account_sid", caller.account_sid.as_str()),
        ("task_queue_sid", sid.as_str()),
        ("workspace_sid", ws.as_str()),
    ];
    let url = format!(
        "{}/TaskQueues/{sid}/RealTimeStatistics",
        workspace_url(&caller, &ws)
    );
    respond(identified(figures, &identity, url))
}

/// What one queue's combined statistics are made of: its sid, realtime figures and events.
struct QueueScope {
    sid: String,
    realtime: Map<String, Value>,
    selection: Selection,
}

/// One queue's combined statistics, as both the instance and the list answer them.
async fn queue_statistics_of(
    state: &AppState,
    caller: &Caller,
    ws: &str,
    scope: QueueScope,
    window: Window,
    thresholds: &[i64],
) -> ApiResult<Value> {
    let log = task_log(state.routing.db(), &scope.selection).await?;
    let cumulative = task_figures(Level::Queue, &log, window, thresholds);
    let identity = [
        ("account_sid", caller.account_sid.as_str()),
        ("task_queue_sid", scope.sid.as_str()),
        ("workspace_sid", ws),
    ];
    let url = format!(
        "{}/TaskQueues/{}/Statistics",
        workspace_url(caller, ws),
        scope.sid
    );
    Ok(identified(
        combined(cumulative, scope.realtime),
        &identity,
        url,
    ))
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/TaskQueues/{TaskQueueSid}/Statistics", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("TaskQueueSid" = String, Path, description = "The task queue's sid (WQ...)")),
    responses((status = 200, description = "The task queue's cumulative and realtime statistics"), (status = 400, description = "An invalid window (`StartDate`, `EndDate`, `Minutes`), `TaskChannel` or `SplitByWaitTime`", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or task queue", body = crate::api::error::ErrorBody)))]
pub async fn queue_statistics(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let window = Window::parse(&query, state.routing.now())?;
    let thresholds = thresholds(&query)?;
    let scope = state.routing.read(&caller.account_sid, &ws, |space| {
        queue_scope(space, &caller, &sid, &query, window)
    })?;
    respond(queue_statistics_of(&state, &caller, &ws, scope, window, &thresholds).await?)
}

/// Every queue's combined statistics (`FriendlyName` narrows), oldest queue first. Each queue
/// costs two queries of the log.
#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/TaskQueues/Statistics", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "`task_queues_statistics` list envelope: each queue's cumulative and realtime statistics"), (status = 400, description = "An invalid window (`StartDate`, `EndDate`, `Minutes`), `TaskChannel` or `SplitByWaitTime`", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn list_queue_statistics(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let window = Window::parse(&query, state.routing.now())?;
    let thresholds = thresholds(&query)?;
    let scopes = state.routing.read(&caller.account_sid, &ws, |space| {
        let mut queues: Vec<_> = space
            .queues
            .values()
            .filter(|q| {
                query
                    .get("FriendlyName")
                    .is_none_or(|n| q.friendly_name == n)
            })
            .collect();
        queues.sort_by(|a, b| (a.date_created, &a.sid).cmp(&(b.date_created, &b.sid)));
        queues
            .iter()
            .map(|q| queue_scope(space, &caller, &q.sid, &query, window))
            .collect::<ApiResult<Vec<_>>>()
    })?;
    let mut items = Vec::with_capacity(scopes.len());
    for scope in scopes {
        items.push(queue_statistics_of(&state, &caller, &ws, scope, window, &thresholds).await?);
    }
    envelope(
        &caller.base,
        &format!("/v1/Workspaces/{ws}/TaskQueues/Statistics"),
        "task_queues_statistics",
        &query,
        items,
    )
}

/// The queue sids a bulk request names: a JSON body (`{"QueueSids": [...]}` or a bare list) or a
/// form with `QueueSids` repeated. Duplicates are answered once.
fn bulk_queue_sids(headers: &HeaderMap, body: &[u8]) -> ApiResult<Vec<String>> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().starts_with("application/json"));
    let given: Vec<String> = if json {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("the body is not valid JSON: {e}")))?;
        let list = match &value {
            Value::Object(map) => map
                .get("QueueSids")
                .or_else(|| map.get("queue_sids"))
                .unwrap_or(&Value::Null),
            other => other,
        };
        match list {
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_str().map(str::to_string).ok_or_else(|| {
                        ApiError::invalid("QueueSids must be a list of task queue sids")
                    })
                })
                .collect::<ApiResult<_>>()?,
            Value::String(sid) => vec![sid.clone()],
            _ => Vec::new(),
        }
    } else {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map_err(|e| ApiError::invalid(format!("the body is not a valid form: {e}")))?
            .into_iter()
            .filter(|(key, _)| key == "QueueSids")
            .map(|(_, sid)| sid)
            .collect()
    };
    let mut sids: Vec<String> = Vec::with_capacity(given.len());
    for sid in given {
        if !sids.contains(&sid) {
            sids.push(sid);
        }
    }
    if sids.is_empty() {
        return Err(ApiError::invalid(format!(
            "QueueSids is required: the task queues to report, up to {MAX_BULK_QUEUES}"
        )));
    }
    if sids.len() > MAX_BULK_QUEUES {
        return Err(ApiError::invalid(format!(
            "QueueSids may name at most {MAX_BULK_QUEUES} task queues, not {}",
            sids.len()
        )));
    }
    Ok(sids)
}

#[utoipa::path(post, path = "/v1/Workspaces/{WorkspaceSid}/TaskQueues/RealTimeStatistics", tag = "work distribution", security(("account" = [])),
    request_body(description = "`QueueSids`: a JSON body (`{\"QueueSids\": [...]}` or a bare list) or a form with `QueueSids` repeated",
        content(("application/json"), ("application/x-www-form-urlencoded"))),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "Realtime statistics of up to 50 task queues named by `QueueSids` (JSON or form body)"), (status = 400, description = "QueueSids is missing, malformed or names more than 50 queues", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or task queue", body = crate::api::error::ErrorBody)))]
pub async fn bulk_queue_realtime(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let sids = bulk_queue_sids(&headers, &body)?;
    let data = state.routing.read(&caller.account_sid, &ws, |space| {
        sids.iter()
            .map(|sid| {
                space
                    .queues
                    .get(sid)
                    .ok_or_else(|| ApiError::not_found(sid))?;
                let mut figures = queue_live(space, sid, None);
                figures.insert("task_queue_sid".into(), json!(sid));
                Ok(Value::Object(figures))
            })
            .collect::<ApiResult<Vec<Value>>>()
    })?;
    let mut body = Map::new();
    body.insert("task_queue_response_count".into(), json!(data.len()));
    body.insert("task_queue_data".into(), Value::Array(data));
    let identity = [
        ("account_sid", caller.account_sid.as_str()),
        ("workspace_sid", ws.as_str()),
    ];
    let url = format!(
        "{}/TaskQueues/RealTimeStatistics",
        workspace_url(&caller, &ws)
    );
    respond(identified(body, &identity, url))
}

// ----- workflows -----

/// A workflow's realtime figures and the selection of its events, checked under the lock.
fn workflow_scope(
    space: &Space,
    caller: &Caller,
    workflow_sid: &str,
    query: &FormPairs,
    window: Window,
) -> ApiResult<(Map<String, Value>, Selection)> {
    let workflow = space
        .workflows
        .get(workflow_sid)
        .ok_or_else(|| ApiError::not_found(workflow_sid))?;
    let channel = task_channel(space, query)?;
    let selection = Selection::new(&caller.account_sid, &space.workspace.sid)
        .within(window)
        .field("workflow_sid", &workflow.sid)
        .channel(channel);
    Ok((workflow_live(space, &workflow.sid, channel), selection))
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workflows/{WorkflowSid}/CumulativeStatistics", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("WorkflowSid" = String, Path, description = "The workflow's sid (WW...)")),
    responses((status = 200, description = "The workflow's cumulative statistics over the window"), (status = 400, description = "An invalid window (`StartDate`, `EndDate`, `Minutes`), `TaskChannel` or `SplitByWaitTime`", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or workflow", body = crate::api::error::ErrorBody)))]
pub async fn workflow_cumulative(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let window = Window::parse(&query, state.routing.now())?;
    let thresholds = thresholds(&query)?;
    let (_, selection) = state.routing.read(&caller.account_sid, &ws, |space| {
        workflow_scope(space, &caller, &sid, &query, window)
    })?;
    let log = task_log(state.routing.db(), &selection).await?;
    let figures = task_figures(Level::Workflow, &log, window, &thresholds);
    let identity = [
        ("account_sid", caller.account_sid.as_str()),
        ("workflow_sid", sid.as_str()),
        ("workspace_sid", ws.as_str()),
    ];
    let url = format!(
        "{}/Workflows/{sid}/CumulativeStatistics",
        workspace_url(&caller, &ws)
    );
    respond(identified(figures, &identity, url))
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workflows/{WorkflowSid}/RealTimeStatistics", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("WorkflowSid" = String, Path, description = "The workflow's sid (WW...)")),
    responses((status = 200, description = "The workflow's realtime statistics"), (status = 400, description = "An invalid `TaskChannel`", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or workflow", body = crate::api::error::ErrorBody)))]
pub async fn workflow_realtime(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let figures = state.routing.read(&caller.account_sid, &ws, |space| {
        space
            .workflows
            .get(&sid)
            .ok_or_else(|| ApiError::not_found(&sid))?;
        Ok(workflow_live(space, &sid, task_channel(space, &query)?))
    })?;
    let identity = [
        ("account_sid", caller.account_sid.as_str()),
        ("workflow_sid", sid.as_str()),
        ("workspace_sid", ws.as_str()),
    ];
    let url = format!(
        "{}/Workflows/{sid}/RealTimeStatistics",
        workspace_url(&caller, &ws)
    );
    respond(identified(figures, &identity, url))
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workflows/{WorkflowSid}/Statistics", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("WorkflowSid" = String, Path, description = "The workflow's sid (WW...)")),
    responses((status = 200, description = "The workflow's cumulative and realtime statistics"), (status = 400, description = "An invalid window (`StartDate`, `EndDate`, `Minutes`), `TaskChannel` or `SplitByWaitTime`", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or workflow", body = crate::api::error::ErrorBody)))]
pub async fn workflow_statistics(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let window = Window::parse(&query, state.routing.now())?;
    let thresholds = thresholds(&query)?;
    let (realtime, selection) = state.routing.read(&caller.account_sid, &ws, |space| {
        workflow_scope(space, &caller, &sid, &query, window)
    })?;
    let log = task_log(state.routing.db(), &selection).await?;
    let cumulative = task_figures(Level::Workflow, &log, window, &thresholds);
    let identity = [
        ("account_sid", caller.account_sid.as_str()),
        ("workflow_sid", sid.as_str()),
        ("workspace_sid", ws.as_str()),
    ];
    let url = format!("{}/Workflows/{sid}/Statistics", workspace_url(&caller, &ws));
    respond(identified(combined(cumulative, realtime), &identity, url))
}

// ----- workers -----

/// The workers a Workers statistics request is about, with their realtime figures. `TaskQueueSid` / `TaskQueueName` narrow to a queue's members (and its
/// reservations), `FriendlyName` to one worker; `TaskChannel` narrows the reservation counters.
fn workers_scope(
    space: &Space,
    caller: &Caller,
    query: &FormPairs,
    window: Window,
) -> ApiResult<(Map<String, Value>, WorkerScope)> {
    let base = Selection::new(&caller.account_sid, &space.workspace.sid).within(window);
    let mut reservations = base.clone().channel(task_channel(space, query)?);
    let mut changes = base;
    let queue = match (query.get("TaskQueueSid"), query.get("TaskQueueName")) {
        (Some(sid), _) => Some(space.queues.get(sid).ok_or_else(|| {
            ApiError::invalid(format!(
                "TaskQueueSid {sid} is not a task queue of this workspace"
            ))
        })?),
        (None, Some(name)) => Some(
            space
                .queues
                .values()
                .find(|q| q.friendly_name == name)
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "TaskQueueName {name:?} is not a task queue of this workspace"
                    ))
                })?,
        ),
        (None, None) => None,
    };
    let name = query.get("FriendlyName");
    let workers: Vec<&Worker> = space
        .workers
        .values()
        .filter(|w| queue.is_none_or(|q| q.members.contains(&w.sid)))
        .filter(|w| name.is_none_or(|n| w.friendly_name == n))
        .collect();
    if let Some(queue) = queue {
        reservations = reservations.field("task_queue_sid", &queue.sid);
    }
    if name.is_some()
        && let [worker] = workers.as_slice()
    {
        reservations = reservations.field("worker_sid", &worker.sid);
        changes = changes.field("worker_sid", &worker.sid);
    }
    let narrowed = queue.is_some() || name.is_some();
    let scope = WorkerScope {
        window,
        workers: narrowed.then(|| workers.iter().map(|w| w.sid.clone()).collect()),
        reservations,
        changes,
        activities: activity_list(space),
    };
    Ok((workers_live(space, workers.iter().copied()), scope))
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workers/CumulativeStatistics", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "The workers' cumulative statistics over the window"), (status = 400, description = "An invalid window, `TaskChannel`, `TaskQueueSid` or `TaskQueueName`", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn workers_cumulative(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let window = Window::parse(&query, state.routing.now())?;
    let (_, scope) = state.routing.read(&caller.account_sid, &ws, |space| {
        workers_scope(space, &caller, &query, window)
    })?;
    let log = worker_log(state.routing.db(), &scope).await?;
    let figures = worker_figures(&log, &scope);
    let identity = [
        ("account_sid", caller.account_sid.as_str()),
        ("workspace_sid", ws.as_str()),
    ];
    let url = format!(
        "{}/Workers/CumulativeStatistics",
        workspace_url(&caller, &ws)
    );
    respond(identified(figures, &identity, url))
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workers/RealTimeStatistics", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "The workers' realtime statistics: counts by activity"), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn workers_realtime(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
) -> ApiResult<Response> {
    let figures = state.routing.read(&caller.account_sid, &ws, |space| {
        Ok(workers_live(space, space.workers.values()))
    })?;
    let identity = [
        ("account_sid", caller.account_sid.as_str()),
        ("workspace_sid", ws.as_str()),
    ];
    let url = format!("{}/Workers/RealTimeStatistics", workspace_url(&caller, &ws));
    respond(identified(figures, &identity, url))
}

#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workers/Statistics", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)")),
    responses((status = 200, description = "The workers' cumulative and realtime statistics (`TaskQueueSid`, `TaskQueueName`, `FriendlyName` narrow)"), (status = 400, description = "An invalid window, `TaskChannel`, `TaskQueueSid` or `TaskQueueName`", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace", body = crate::api::error::ErrorBody)))]
pub async fn workers_statistics(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let window = Window::parse(&query, state.routing.now())?;
    let (realtime, scope) = state.routing.read(&caller.account_sid, &ws, |space| {
        workers_scope(space, &caller, &query, window)
    })?;
    let log = worker_log(state.routing.db(), &scope).await?;
    let cumulative = worker_figures(&log, &scope);
    let identity = [
        ("account_sid", caller.account_sid.as_str()),
        ("workspace_sid", ws.as_str()),
    ];
    let url = format!("{}/Workers/Statistics", workspace_url(&caller, &ws));
    respond(identified(combined(cumulative, realtime), &identity, url))
}

/// One worker's cumulative figures (the reference has no realtime part here).
#[utoipa::path(get, path = "/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Statistics", tag = "work distribution", security(("account" = [])),
    params(("WorkspaceSid" = String, Path, description = "The workspace's sid (WS...)"), ("WorkerSid" = String, Path, description = "The worker's sid (WK...)")),
    responses((status = 200, description = "The worker's cumulative statistics over the window"), (status = 400, description = "An invalid window (`StartDate`, `EndDate`, `Minutes`), `TaskChannel` or `SplitByWaitTime`", body = crate::api::error::ErrorBody), (status = 404, description = "No such workspace or worker", body = crate::api::error::ErrorBody)))]
pub async fn worker_statistics(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, sid)): Path<(String, String)>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let window = Window::parse(&query, state.routing.now())?;
    let scope = state.routing.read(&caller.account_sid, &ws, |space| {
        let worker = space
            .workers
            .get(&sid)
            .ok_or_else(|| ApiError::not_found(&sid))?;
        let base = Selection::new(&caller.account_sid, &space.workspace.sid)
            .within(window)
            .field("worker_sid", &worker.sid);
        Ok(WorkerScope {
            window,
            workers: None,
            reservations: base.clone().channel(task_channel(space, &query)?),
            changes: base,
            activities: activity_list(space),
        })
    })?;
    let log = worker_log(state.routing.db(), &scope).await?;
    let mut cumulative = worker_figures(&log, &scope);
    cumulative.insert(
        "tasks_assigned".into(),
        json!(count(&log.counts, "reservation.accepted")),
    );
    let mut body = Map::new();
    body.insert("cumulative".into(), Value::Object(cumulative));
    let identity = [
        ("account_sid", caller.account_sid.as_str()),
        ("worker_sid", sid.as_str()),
        ("workspace_sid", ws.as_str()),
    ];
    let url = format!("{}/Workers/{sid}/Statistics", workspace_url(&caller, &ws));
    respond(identified(body, &identity, url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> FormPairs {
        FormPairs(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    const NOW: i64 = 1_714_564_800_000; // 2024-05-01T12:00:00Z

    #[test]
    fn the_window_defaults_to_the_last_fifteen_minutes() {
        let window = Window::parse(&query(&[]), NOW).expect("window");
        assert_eq!(
            window,
            Window {
                start: NOW - 15 * 60_000,
                end: NOW
            }
        );
    }

    #[test]
    fn minutes_and_dates_set_the_window() {
        let window = Window::parse(&query(&[("Minutes", "60")]), NOW).expect("window");
        assert_eq!(window.start, NOW - 3_600_000);
        let window = Window::parse(
            &query(&[
                ("StartDate", "2024-05-01T10:00:00Z"),
                ("EndDate", "2024-05-01T11:00:00Z"),
                ("Minutes", "5"),
            ]),
            NOW,
        )
        .expect("window");
        assert_eq!(
            window,
            Window {
                start: NOW - 2 * 3_600_000,
                end: NOW - 3_600_000
            }
        );
        // An end date alone: Minutes count back from it.
        let window =
            Window::parse(&query(&[("EndDate", "2024-05-01T11:00:00Z")]), NOW).expect("window");
        assert_eq!(window.start, NOW - 3_600_000 - 15 * 60_000);
        // A bare date is its midnight.
        let window = Window::parse(&query(&[("StartDate", "2024-05-01")]), NOW).expect("window");
        assert_eq!(window.start, NOW - 12 * 3_600_000);
    }

    #[test]
    fn bad_windows_name_the_parameter() {
        for (pairs, name) in [
            (vec![("StartDate", "yesterday")], "StartDate"),
            (vec![("EndDate", "2024-13-01T00:00:00Z")], "EndDate"),
            (vec![("Minutes", "0")], "Minutes"),
            (vec![("Minutes", "ten")], "Minutes"),
            (vec![("StartDate", "2024-05-02T00:00:00Z")], "StartDate"),
        ] {
            let error = Window::parse(&query(&pairs), NOW).expect_err("refused");
            assert!(error.message.contains(name), "{}", error.message);
        }
    }

    #[test]
    fn split_by_wait_time_is_a_list_of_seconds() {
        let parsed = thresholds(&query(&[("SplitByWaitTime", "30, 10,30")])).expect("parsed");
        assert_eq!(parsed, vec![10, 30]);
        assert!(thresholds(&query(&[])).expect("none").is_empty());
        let error = thresholds(&query(&[("SplitByWaitTime", "10,-1")])).expect_err("refused");
        assert!(error.message.contains("SplitByWaitTime"));
    }

    #[test]
    fn summaries_average_and_round() {
        assert_eq!(Summary::of(&[]), Summary::default());
        assert_eq!(
            Summary::of(&[1, 2, 4]),
            Summary {
                avg: 2,
                min: 1,
                max: 4,
                total: 7
            }
        );
        assert_eq!(Summary::of(&[1, 2]).avg, 2);
    }

    #[test]
    fn wait_times_split_at_each_threshold() {
        let split = split_by_wait(&[5, 10, 40], &[50], &[10]);
        assert_eq!(split["10"]["below"]["reservations_accepted"], 2);
        assert_eq!(split["10"]["above"]["reservations_accepted"], 1);
        assert_eq!(split["10"]["above"]["tasks_canceled"], 1);
        assert_eq!(split_by_wait(&[1], &[], &[]), Value::Null);
    }

    #[test]
    fn activity_durations_list_every_activity() {
        let activities = vec![
            ("WA1".to_string(), "Available".to_string()),
            ("WA2".to_string(), "Offline".to_string()),
        ];
        let changes = vec![
            ("WA1".to_string(), 30),
            ("WA1".to_string(), 10),
            ("WA9".to_string(), 5),
        ];
        let durations = activity_durations(&activities, &changes);
        assert_eq!(
            durations,
            json!([
                {"sid": "WA1", "friendly_name": "Available", "avg": 20, "min": 10, "max": 30, "total": 40},
                {"sid": "WA2", "friendly_name": "Offline", "avg": 0, "min": 0, "max": 0, "total": 0},
            ])
        );
    }

    #[test]
    fn task_figures_follow_the_level() {
        let log = TaskLog {
            counts: [
                ("task-queue.entered", 3),
                ("workflow.entered", 2),
                ("task.created", 2),
                ("reservation.accepted", 2),
                ("task-queue.timeout", 2),
                ("workflow.timeout", 1),
            ]
            .into_iter()
            .map(|(t, n)| (t.to_string(), n))
            .collect(),
            accepted_ages: vec![4, 8],
            accepted_ages_in_queue: vec![1, 3],
            canceled_ages: vec![],
        };
        let window = Window {
            start: 0,
            end: 60_000,
        };
        let queue = task_figures(Level::Queue, &log, window, &[]);
        assert_eq!(queue["tasks_entered"], 3);
        assert_eq!(queue["reservations_accepted"], 2);
        assert_eq!(queue["tasks_moved"], 1);
        assert_eq!(queue["avg_task_acceptance_time"], 6);
        assert_eq!(queue["wait_duration_until_accepted"]["max"], 8);
        assert_eq!(
            queue["wait_duration_in_queue_until_accepted"],
            json!({"avg": 2, "min": 1, "max": 3, "total": 4})
        );
        assert_eq!(queue["end_time"], "1970-01-01T00:01:00Z");
        assert!(queue.get("tasks_timed_out_in_workflow").is_none());
        let workflow = task_figures(Level::Workflow, &log, window, &[]);
        assert_eq!(workflow["tasks_entered"], 2);
        assert!(
            workflow
                .get("wait_duration_in_queue_until_accepted")
                .is_none()
        );
        assert_eq!(workflow["tasks_timed_out_in_workflow"], 1);
        let workspace = task_figures(Level::Workspace, &log, window, &[]);
        assert_eq!(workspace["tasks_created"], 2);
        assert!(workspace.get("tasks_entered").is_none());
    }

    #[test]
    fn like_patterns_match_one_top_level_field_exactly() {
        assert_eq!(like_pattern("task_sid", "WT1"), r#"%"task\_sid":"WT1"%"#);
        assert_eq!(like_pattern("k", "a%b"), r#"%"k":"a\%b"%"#);
        assert_eq!(like_pattern("k", r#"say "hi""#), r#"%"k":"say \\"hi\\""%"#);
    }

    #[test]
    fn selections_number_their_parameters_in_order() {
        let selection = Selection::new("AC1", "WS1")
            .within(Window { start: 1, end: 2 })
            .of_types(&["a", "b"])
            .field("task_sid", "WT1");
        let (sql, params) = selection.filter();
        assert_eq!(
            sql,
            "account_sid = $1 AND source = $2 AND time >= $3 AND time <= $4 AND type IN ($5, $6) AND data LIKE $7 ESCAPE '\\'"
        );
        assert_eq!(params.len(), 7);
        assert!(matches!(&params[1], Param::Text(Some(s)) if s == "/v1/Workspaces/WS1"));
        assert!(selection.holds(&json!({"task_sid": "WT1"})));
        assert!(!selection.holds(&json!({"task_sid": "wt1"})));
    }

    #[test]
    fn resource_urls_follow_the_resource_type() {
        let ws = "http://h/v1/Workspaces/WS1";
        let data = json!({"task_sid": "WT1"});
        assert_eq!(
            resource_url(ws, "reservation", "WR1", &data).as_deref(),
            Some("http://h/v1/Workspaces/WS1/Tasks/WT1/Reservations/WR1")
        );
        assert_eq!(
            resource_url(ws, "worker", "WK1", &data).as_deref(),
            Some("http://h/v1/Workspaces/WS1/Workers/WK1")
        );
        assert_eq!(resource_url(ws, "reservation", "WR1", &json!({})), None);
        assert_eq!(resource_url(ws, "mystery", "X1", &data), None);
    }

    #[test]
    fn bulk_requests_take_json_or_repeated_form_fields() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/json".parse().expect("value"),
        );
        let sids =
            bulk_queue_sids(&headers, br#"{"QueueSids": ["WQ1", "WQ2", "WQ1"]}"#).expect("sids");
        assert_eq!(sids, vec!["WQ1", "WQ2"]);
        assert_eq!(
            bulk_queue_sids(&headers, br#"["WQ3"]"#).expect("sids"),
            vec!["WQ3"]
        );
        let form = HeaderMap::new();
        assert_eq!(
            bulk_queue_sids(&form, b"QueueSids=WQ1&QueueSids=WQ2").expect("sids"),
            vec!["WQ1", "WQ2"]
        );
        assert!(bulk_queue_sids(&form, b"").is_err());
        let many: String = (0..51)
            .map(|i| format!("QueueSids=WQ{i}"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(bulk_queue_sids(&form, many.as_bytes()).is_err());
    }
}
