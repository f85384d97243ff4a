//! How a workspace is written and read back: one upsert per resource changed in a transition, all in
//! the transition's [`Change`](crate::store::batch::Change), and a loader that rebuilds the
//! in-memory [`Space`](super::space::Space) at start.

use sqlx::Row;

use super::model::{
    Activity, Reservation, ReservationStatus, Route, Task, TaskChannel, TaskQueue, TaskStatus,
    Worker, WorkerChannel, Workflow, Workspace,
};
use crate::store::Db;
use crate::store::batch::{Param, Statement};

fn flag(value: bool) -> Param {
    Param::Int(Some(i64::from(value)))
}

pub fn workspace_row(w: &Workspace) -> Statement {
    Statement::new(
        "INSERT INTO workspaces (sid, account_sid, friendly_name, event_callback_url, events_filter, multi_task_enabled, default_activity_sid, timeout_activity_sid, prioritize_queue_order, date_created, date_updated, presence_offline_activity_sid, presence_online_activity_sid)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (sid) DO UPDATE SET friendly_name = excluded.friendly_name, event_callback_url = excluded.event_callback_url,
           events_filter = excluded.events_filter, multi_task_enabled = excluded.multi_task_enabled,
           default_activity_sid = excluded.default_activity_sid, timeout_activity_sid = excluded.timeout_activity_sid,
           prioritize_queue_order = excluded.prioritize_queue_order, date_updated = excluded.date_updated,
           presence_offline_activity_sid = excluded.presence_offline_activity_sid, presence_online_activity_sid = excluded.presence_online_activity_sid",
        vec![
            w.sid.clone().into(),
            w.account_sid.clone().into(),
            w.friendly_name.clone().into(),
            w.event_callback_url.clone().into(),
            w.events_filter.clone().into(),
            flag(w.multi_task_enabled),
            w.default_activity_sid.clone().into(),
            w.timeout_activity_sid.clone().into(),
            w.prioritize_queue_order.clone().into(),
            w.date_created.into(),
            w.date_updated.into(),
            w.presence_offline_activity_sid.clone().into(),
            w.presence_online_activity_sid.clone().into(),
        ],
    )
}

pub fn activity_row(workspace_sid: &str, a: &Activity) -> Statement {
    Statement::new(
        "INSERT INTO activities (sid, workspace_sid, friendly_name, available, date_created, date_updated)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (sid) DO UPDATE SET friendly_name = excluded.friendly_name, date_updated = excluded.date_updated",
        vec![
            a.sid.clone().into(),
            workspace_sid.into(),
            a.friendly_name.clone().into(),
            flag(a.available),
            a.date_created.into(),
            a.date_updated.into(),
        ],
    )
}

pub fn channel_row(workspace_sid: &str, c: &TaskChannel) -> Statement {
    Statement::new(
        "INSERT INTO task_channels (sid, workspace_sid, friendly_name, unique_name, channel_optimized_routing, date_created, date_updated)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (sid) DO UPDATE SET friendly_name = excluded.friendly_name,
           channel_optimized_routing = excluded.channel_optimized_routing, date_updated = excluded.date_updated",
        vec![
            c.sid.clone().into(),
            workspace_sid.into(),
            c.friendly_name.clone().into(),
            c.unique_name.clone().into(),
            flag(c.channel_optimized_routing),
            c.date_created.into(),
            c.date_updated.into(),
        ],
    )
}

pub fn worker_row(workspace_sid: &str, w: &Worker) -> Statement {
    Statement::row(
        "INSERT INTO workers (sid, workspace_sid, friendly_name, attributes, activity_sid, date_status_changed, idle_since, version, date_created, date_updated)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (sid) DO UPDATE SET friendly_name = excluded.friendly_name, attributes = excluded.attributes,
           activity_sid = excluded.activity_sid, date_status_changed = excluded.date_status_changed,
           idle_since = excluded.idle_since, version = excluded.version, date_updated = excluded.date_updated",
        vec![
            w.sid.clone().into(),
            workspace_sid.into(),
            w.friendly_name.clone().into(),
            w.attributes_text.clone().into(),
            w.activity_sid.clone().into(),
            w.date_status_changed.into(),
            w.idle_since.into(),
            w.version.into(),
            w.date_created.into(),
            w.date_updated.into(),
        ],
    )
}

pub fn worker_channel_row(workspace_sid: &str, worker_sid: &str, c: &WorkerChannel) -> Statement {
    Statement::new(
        "INSERT INTO worker_channels (sid, worker_sid, workspace_sid, task_channel_sid, capacity, available, date_created, date_updated)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (sid) DO UPDATE SET capacity = excluded.capacity, available = excluded.available,
           date_updated = excluded.date_updated",
        vec![
            c.sid.clone().into(),
            worker_sid.into(),
            workspace_sid.into(),
            c.task_channel_sid.clone().into(),
            c.capacity.into(),
            flag(c.available),
            c.date_created.into(),
            c.date_updated.into(),
        ],
    )
}

pub fn queue_row(workspace_sid: &str, q: &TaskQueue) -> Statement {
    Statement::new(
        "INSERT INTO task_queues (sid, workspace_sid, friendly_name, target_workers, max_reserved_workers, task_order, reservation_activity_sid, assignment_activity_sid, date_created, date_updated)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (sid) DO UPDATE SET friendly_name = excluded.friendly_name, target_workers = excluded.target_workers,
           max_reserved_workers = excluded.max_reserved_workers, task_order = excluded.task_order,
           reservation_activity_sid = excluded.reservation_activity_sid,
           assignment_activity_sid = excluded.assignment_activity_sid, date_updated = excluded.date_updated",
        vec![
            q.sid.clone().into(),
            workspace_sid.into(),
            q.friendly_name.clone().into(),
            q.target_workers.text().to_string().into(),
            q.max_reserved_workers.into(),
            q.task_order.as_str().into(),
            q.reservation_activity_sid.clone().into(),
            q.assignment_activity_sid.clone().into(),
            q.date_created.into(),
            q.date_updated.into(),
        ],
    )
}

pub fn workflow_row(workspace_sid: &str, w: &Workflow) -> Statement {
    Statement::new(
        "INSERT INTO workflows (sid, workspace_sid, friendly_name, configuration, assignment_callback_url, fallback_assignment_callback_url, task_reservation_timeout, date_created, date_updated)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (sid) DO UPDATE SET friendly_name = excluded.friendly_name, configuration = excluded.configuration,
           assignment_callback_url = excluded.assignment_callback_url,
           fallback_assignment_callback_url = excluded.fallback_assignment_callback_url,
           task_reservation_timeout = excluded.task_reservation_timeout, date_updated = excluded.date_updated",
        vec![
            w.sid.clone().into(),
            workspace_sid.into(),
            w.friendly_name.clone().into(),
            w.configuration_text.clone().into(),
            w.assignment_callback_url.clone().into(),
            w.fallback_assignment_callback_url.clone().into(),
            w.task_reservation_timeout.into(),
            w.date_created.into(),
            w.date_updated.into(),
        ],
    )
}

pub fn task_row(workspace_sid: &str, t: &Task) -> Statement {
    let route = t.route.as_ref();
    Statement::row(
        "INSERT INTO tasks (sid, workspace_sid, workflow_sid, task_queue_sid, task_channel_sid, attributes, priority, timeout, assignment_status, reason, virtual_start_time, task_queue_entered_date, filter_index, target_index, step_deadline, routing_targets, assignment_count, call_sid, version, date_created, date_updated, routing_target)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
         ON CONFLICT (sid) DO UPDATE SET task_queue_sid = excluded.task_queue_sid, attributes = excluded.attributes,
           priority = excluded.priority, assignment_status = excluded.assignment_status, reason = excluded.reason,
           task_channel_sid = excluded.task_channel_sid, virtual_start_time = excluded.virtual_start_time,
           task_queue_entered_date = excluded.task_queue_entered_date, filter_index = excluded.filter_index,
           target_index = excluded.target_index, step_deadline = excluded.step_deadline,
           routing_targets = excluded.routing_targets, assignment_count = excluded.assignment_count,
           version = excluded.version, date_updated = excluded.date_updated",
        vec![
            t.sid.clone().into(),
            workspace_sid.into(),
            t.workflow_sid.clone().into(),
            t.queue_sid.clone().into(),
            t.task_channel_sid.clone().into(),
            t.attributes_text.clone().into(),
            t.priority.into(),
            t.timeout.into(),
            t.status.as_str().into(),
            t.reason.clone().into(),
            t.virtual_start_time.into(),
            t.task_queue_entered_date.into(),
            route.map(|r| r.filter_index).into(),
            route.map(|r| r.target_index as i64).into(),
            t.step_deadline.into(),
            route.and_then(|r| r.module_targets.clone()).into(),
            t.assignment_count.into(),
            t.call_sid.clone().into(),
            t.version.into(),
            t.date_created.into(),
            t.date_updated.into(),
            route
                .and_then(Route::routing_target)
                .map(|(sid, _)| sid.to_string())
                .into(),
        ],
    )
}

pub fn reservation_row(workspace_sid: &str, r: &Reservation) -> Statement {
    Statement::row(
        "INSERT INTO reservations (sid, task_sid, worker_sid, workspace_sid, task_queue_sid, reservation_status, timeout_at, previous_activity_sid, version, date_created, date_updated)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (sid) DO UPDATE SET reservation_status = excluded.reservation_status, timeout_at = excluded.timeout_at,
           version = excluded.version, date_updated = excluded.date_updated",
        vec![
            r.sid.clone().into(),
            r.task_sid.clone().into(),
            r.worker_sid.clone().into(),
            workspace_sid.into(),
            r.queue_sid.clone().into(),
            r.status.as_str().into(),
            r.timeout_at.into(),
            r.previous_activity_sid.clone().into(),
            r.version.into(),
            r.date_created.into(),
            r.date_updated.into(),
        ],
    )
}

/// Statements removing a resource by sid.
pub fn delete(table: Table, sid: &str) -> Statement {
    let sql = match table {
        Table::Workspace => "DELETE FROM workspaces WHERE sid = $1",
        Table::Activity => "DELETE FROM activities WHERE sid = $1",
        Table::TaskChannel => "DELETE FROM task_channels WHERE sid = $1",
        Table::Worker => "DELETE FROM workers WHERE sid = $1",
        Table::WorkerChannelsOfWorker => "DELETE FROM worker_channels WHERE worker_sid = $1",
        Table::WorkerChannelsOfChannel => "DELETE FROM worker_channels WHERE task_channel_sid = $1",
        Table::TaskQueue => "DELETE FROM task_queues WHERE sid = $1",
        Table::Workflow => "DELETE FROM workflows WHERE sid = $1",
    };
    Statement::new(sql, vec![sid.into()])
}

/// Statements removing a task and its reservations. A worker's idle time is kept in its latest
/// reservation's row rather than its own (see `Space::reserve`), so before those rows go, each
/// worker they name takes their latest creation time into its own row if it is later.
pub fn delete_task(task_sid: &str) -> Vec<Statement> {
    [
        "UPDATE workers SET idle_since = (SELECT MAX(r.date_created) FROM reservations r WHERE r.task_sid = $1 AND r.worker_sid = workers.sid)
         WHERE sid IN (SELECT r.worker_sid FROM reservations r WHERE r.task_sid = $1 AND r.date_created > workers.idle_since)",
        "DELETE FROM reservations WHERE task_sid = $1",
        "DELETE FROM tasks WHERE sid = $1",
    ]
    .into_iter()
    .map(|sql| Statement::new(sql, vec![task_sid.into()]))
    .collect()
}

/// Everything a workspace holds, by workspace sid, for deleting the workspace.
pub fn delete_workspace_contents(workspace_sid: &str) -> Vec<Statement> {
    [
        "DELETE FROM activities WHERE workspace_sid = $1",
        "DELETE FROM task_channels WHERE workspace_sid = $1",
        "DELETE FROM workers WHERE workspace_sid = $1",
        "DELETE FROM worker_channels WHERE workspace_sid = $1",
        "DELETE FROM task_queues WHERE workspace_sid = $1",
        "DELETE FROM workflows WHERE workspace_sid = $1",
        "DELETE FROM tasks WHERE workspace_sid = $1",
        "DELETE FROM reservations WHERE workspace_sid = $1",
        "DELETE FROM workspaces WHERE sid = $1",
    ]
    .into_iter()
    .map(|sql| Statement::new(sql, vec![workspace_sid.into()]))
    .collect()
}

#[derive(Debug, Clone, Copy)]
pub enum Table {
    Workspace,
    Activity,
    TaskChannel,
    Worker,
    WorkerChannelsOfWorker,
    WorkerChannelsOfChannel,
    TaskQueue,
    Workflow,
}

/// A task or reservation as stored, for those no longer held in memory (finished ones).
pub async fn stored_task(
    db: &Db,
    workspace_sid: &str,
    sid: &str,
) -> Result<Option<StoredTask>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT sid, workflow_sid, task_queue_sid, task_channel_sid, attributes, priority, timeout, assignment_status, reason,
                virtual_start_time, task_queue_entered_date, assignment_count, call_sid, version, date_created, date_updated,
                filter_index, target_index, step_deadline, routing_targets
         FROM tasks WHERE workspace_sid = $1 AND sid = $2",
    )
    .bind(workspace_sid)
    .bind(sid)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(stored_task_from_row).transpose()
}

/// A task as stored.
#[derive(Debug, Clone)]
pub struct StoredTask {
    pub task: Task,
    pub filter_index: Option<i64>,
    pub target_index: Option<i64>,
    pub routing_targets: Option<String>,
}

fn stored_task_from_row(row: &sqlx::any::AnyRow) -> Result<StoredTask, sqlx::Error> {
    let attributes_text: String = row.try_get("attributes")?;
    let status: String = row.try_get("assignment_status")?;
    let filter_index: Option<i64> = row.try_get("filter_index")?;
    let target_index: Option<i64> = row.try_get("target_index")?;
    let routing_targets: Option<String> = row.try_get("routing_targets")?;
    // A route given at creation needs no workflow to be rebuilt, and says the task's
    // `routing_target` also once the task is finished.
    let route = (filter_index == Some(super::model::ROUTING_TARGET))
        .then(|| {
            super::stored_route(
                None,
                filter_index,
                target_index,
                routing_targets.as_deref(),
                &|_| true,
            )
        })
        .flatten();
    Ok(StoredTask {
        task: Task {
            sid: row.try_get("sid")?,
            workflow_sid: row.try_get("workflow_sid")?,
            queue_sid: row.try_get("task_queue_sid")?,
            task_channel_sid: row.try_get("task_channel_sid")?,
            attributes: serde_json::from_str(&attributes_text).unwrap_or_default(),
            attributes_text,
            priority: row.try_get("priority")?,
            timeout: row.try_get("timeout")?,
            status: TaskStatus::parse(&status).unwrap_or(TaskStatus::Canceled),
            reason: row.try_get("reason")?,
            virtual_start_time: row.try_get("virtual_start_time")?,
            task_queue_entered_date: row.try_get("task_queue_entered_date")?,
            route,
            step_deadline: row.try_get("step_deadline")?,
            assignment_count: row.try_get("assignment_count")?,
            call_sid: row.try_get("call_sid")?,
            version: row.try_get("version")?,
            date_created: row.try_get("date_created")?,
            date_updated: row.try_get("date_updated")?,
            place: None,
            declined_by: Vec::new(),
            live: Vec::new(),
        },
        filter_index,
        target_index,
        routing_targets,
    })
}

/// Tasks of a workspace as stored, newest first, optionally only some statuses.
pub async fn stored_tasks(db: &Db, workspace_sid: &str) -> Result<Vec<StoredTask>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT sid, workflow_sid, task_queue_sid, task_channel_sid, attributes, priority, timeout, assignment_status, reason,
                virtual_start_time, task_queue_entered_date, assignment_count, call_sid, version, date_created, date_updated,
                filter_index, target_index, step_deadline, routing_targets
         FROM tasks WHERE workspace_sid = $1 ORDER BY date_created, sid",
    )
    .bind(workspace_sid)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(stored_task_from_row).collect()
}

/// Which stored tasks a list asks for, and which page of them.
pub struct TaskPage<'a> {
    /// Any status when empty.
    pub statuses: &'a [&'a str],
    pub workflow_sid: Option<&'a str>,
    pub queue_sid: Option<&'a str>,
    /// The workflow routing the tasks, or the queue or worker they were sent to.
    pub routing_target: Option<&'a str>,
    pub priority: Option<i64>,
    /// Newest first instead of oldest first.
    pub descending: bool,
    pub offset: usize,
    pub limit: usize,
}

/// A page of a workspace's tasks as stored, in creation order (or its reverse). Only the page is
/// read: finished tasks accumulate, and a list must not cost the whole of them.
pub async fn task_page(
    db: &Db,
    workspace_sid: &str,
    query: &TaskPage<'_>,
) -> Result<Vec<StoredTask>, sqlx::Error> {
    /// Binds `text` as the next parameter and answers its placeholder.
    fn placeholder<'t>(texts: &mut Vec<&'t str>, text: &'t str) -> String {
        texts.push(text);
        format!("${}", texts.len())
    }
    let mut texts: Vec<&str> = Vec::new();
    let mut conditions = vec![format!(
        "workspace_sid = {}",
        placeholder(&mut texts, workspace_sid)
    )];
    let statuses: Vec<String> = query
        .statuses
        .iter()
        .map(|status| placeholder(&mut texts, status))
        .collect();
    if !statuses.is_empty() {
        conditions.push(format!("assignment_status IN ({})", statuses.join(", ")));
    }
    if let Some(workflow_sid) = query.workflow_sid {
        let at = placeholder(&mut texts, workflow_sid);
        conditions.push(format!("workflow_sid = {at}"));
    }
    if let Some(queue_sid) = query.queue_sid {
        let at = placeholder(&mut texts, queue_sid);
        conditions.push(format!("task_queue_sid = {at}"));
    }
    if let Some(target) = query.routing_target {
        let workflow = placeholder(&mut texts, target);
        let sent_to = placeholder(&mut texts, target);
        conditions.push(format!(
            "(workflow_sid = {workflow} OR routing_target = {sent_to})"
        ));
    }
    let mut next = texts.len() + 1;
    if query.priority.is_some() {
        conditions.push(format!("priority = ${next}"));
        next += 1;
    }
    let direction = if query.descending { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT sid, workflow_sid, task_queue_sid, task_channel_sid, attributes, priority, timeout, assignment_status, reason,
                virtual_start_time, task_queue_entered_date, assignment_count, call_sid, version, date_created, date_updated,
                filter_index, target_index, step_deadline, routing_targets
         FROM tasks WHERE {} ORDER BY date_created {direction}, sid {direction} LIMIT ${next} OFFSET ${}",
        conditions.join(" AND "),
        next + 1
    );
    let mut statement = sqlx::query(sqlx::AssertSqlSafe(sql));
    for text in texts {
        statement = statement.bind(text);
    }
    if let Some(priority) = query.priority {
        statement = statement.bind(priority);
    }
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
    let rows = statement
        .bind(limit)
        .bind(offset)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(stored_task_from_row).collect()
}

fn reservation_from_row(row: &sqlx::any::AnyRow) -> Result<Reservation, sqlx::Error> {
    let status: String = row.try_get("reservation_status")?;
    Ok(Reservation {
        sid: row.try_get("sid")?,
        task_sid: row.try_get("task_sid")?,
        worker_sid: row.try_get("worker_sid")?,
        queue_sid: row.try_get("task_queue_sid")?,
        task_channel_sid: String::new(),
        status: ReservationStatus::parse(&status).unwrap_or(ReservationStatus::Canceled),
        timeout_at: row.try_get("timeout_at")?,
        previous_activity_sid: row.try_get("previous_activity_sid")?,
        version: row.try_get("version")?,
        date_created: row.try_get("date_created")?,
        date_updated: row.try_get("date_updated")?,
    })
}

const RESERVATION_COLUMNS: &str = "sid, task_sid, worker_sid, task_queue_sid, reservation_status, timeout_at, previous_activity_sid, version, date_created, date_updated";

/// Reservations of a workspace as stored, oldest first.
pub async fn stored_reservations(
    db: &Db,
    workspace_sid: &str,
    owner: ReservationOwner<'_>,
    status: Option<&str>,
) -> Result<Vec<Reservation>, sqlx::Error> {
    // Each owner column has its index, so a list costs the task's or worker's rows alone.
    let (column, owner_sid) = match owner {
        ReservationOwner::Task(sid) => ("task_sid", sid),
        ReservationOwner::Worker(sid) => ("worker_sid", sid),
    };
    let narrowed = if status.is_some() {
        " AND reservation_status = $3"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE workspace_sid = $1 AND {column} = $2{narrowed} ORDER BY date_created, sid"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(workspace_sid)
        .bind(owner_sid);
    if let Some(status) = status {
        query = query.bind(status);
    }
    let rows = query.fetch_all(db.pool()).await?;
    rows.iter().map(reservation_from_row).collect()
}

/// Whose reservations a list shows.
#[derive(Debug, Clone, Copy)]
pub enum ReservationOwner<'a> {
    Task(&'a str),
    Worker(&'a str),
}

impl ReservationOwner<'_> {
    pub fn owns(&self, reservation: &Reservation) -> bool {
        match self {
            ReservationOwner::Task(sid) => reservation.task_sid == *sid,
            ReservationOwner::Worker(sid) => reservation.worker_sid == *sid,
        }
    }
}

/// One workspace's rows, as the loader needs them.
pub struct StoredWorkspace {
    pub workspace: Workspace,
    pub activities: Vec<Activity>,
    pub channels: Vec<TaskChannel>,
    pub workers: Vec<(Worker, Vec<WorkerChannel>)>,
    pub queues: Vec<StoredQueue>,
    pub workflows: Vec<Workflow>,
    pub live_tasks: Vec<StoredTask>,
    pub live_reservations: Vec<Reservation>,
}

/// A task queue as stored; its TargetWorkers are compiled by the loader.
pub struct StoredQueue {
    pub sid: String,
    pub friendly_name: String,
    pub target_workers: String,
    pub max_reserved_workers: i64,
    pub task_order: String,
    pub reservation_activity_sid: Option<String>,
    pub assignment_activity_sid: Option<String>,
    pub date_created: i64,
    pub date_updated: i64,
}

fn flag_of(row: &sqlx::any::AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

/// Every workspace's sid.
pub async fn workspace_sids(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT sid FROM workspaces ORDER BY date_created, sid")
        .fetch_all(db.pool())
        .await
}

/// Reads one workspace with its live tasks and reservations. Workflow configurations are returned
/// as text; the caller compiles them (queues must exist first).
pub async fn load(db: &Db, sid: &str) -> Result<Option<StoredWorkspace>, sqlx::Error> {
    let pool = db.pool();
    let Some(row) = sqlx::query(
        "SELECT sid, account_sid, friendly_name, event_callback_url, events_filter, multi_task_enabled, default_activity_sid,
                timeout_activity_sid, prioritize_queue_order, date_created, date_updated, presence_offline_activity_sid,
                presence_online_activity_sid FROM workspaces WHERE sid = $1",
    )
    .bind(sid)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let workspace = Workspace {
        sid: row.try_get("sid")?,
        account_sid: row.try_get("account_sid")?,
        friendly_name: row.try_get("friendly_name")?,
        event_callback_url: row.try_get("event_callback_url")?,
        events_filter: row.try_get("events_filter")?,
        multi_task_enabled: flag_of(&row, "multi_task_enabled")?,
        default_activity_sid: row.try_get("default_activity_sid")?,
        timeout_activity_sid: row.try_get("timeout_activity_sid")?,
        presence_offline_activity_sid: row.try_get("presence_offline_activity_sid")?,
        presence_online_activity_sid: row.try_get("presence_online_activity_sid")?,
        prioritize_queue_order: row.try_get("prioritize_queue_order")?,
        date_created: row.try_get("date_created")?,
        date_updated: row.try_get("date_updated")?,
    };
    let activities = sqlx::query(
        "SELECT sid, friendly_name, available, date_created, date_updated FROM activities WHERE workspace_sid = $1 ORDER BY date_created, sid",
    )
    .bind(sid)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok(Activity {
            sid: row.try_get("sid")?,
            friendly_name: row.try_get("friendly_name")?,
            available: flag_of(row, "available")?,
            date_created: row.try_get("date_created")?,
            date_updated: row.try_get("date_updated")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let channels = sqlx::query(
        "SELECT sid, friendly_name, unique_name, channel_optimized_routing, date_created, date_updated FROM task_channels WHERE workspace_sid = $1 ORDER BY date_created, sid",
    )
    .bind(sid)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok(TaskChannel {
            sid: row.try_get("sid")?,
            friendly_name: row.try_get("friendly_name")?,
            unique_name: row.try_get("unique_name")?,
            channel_optimized_routing: flag_of(row, "channel_optimized_routing")?,
            date_created: row.try_get("date_created")?,
            date_updated: row.try_get("date_updated")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let mut worker_channels: std::collections::HashMap<String, Vec<WorkerChannel>> =
        std::collections::HashMap::new();
    for row in sqlx::query(
        "SELECT sid, worker_sid, task_channel_sid, capacity, available, date_created, date_updated FROM worker_channels WHERE workspace_sid = $1 ORDER BY date_created, sid",
    )
    .bind(sid)
    .fetch_all(pool)
    .await?
    {
        let worker_sid: String = row.try_get("worker_sid")?;
        worker_channels
            .entry(worker_sid)
            .or_default()
            .push(WorkerChannel {
                sid: row.try_get("sid")?,
                task_channel_sid: row.try_get("task_channel_sid")?,
                capacity: row.try_get("capacity")?,
                available: flag_of(&row, "available")?,
                active: 0,
                assigned: 0,
                date_created: row.try_get("date_created")?,
                date_updated: row.try_get("date_updated")?,
            });
    }
    let workers = sqlx::query(
        "SELECT sid, friendly_name, attributes, activity_sid, date_status_changed, idle_since, version, date_created, date_updated,
                (SELECT MAX(r.date_created) FROM reservations r WHERE r.worker_sid = workers.sid) AS last_reserved
         FROM workers WHERE workspace_sid = $1 ORDER BY date_created, sid",
    )
    .bind(sid)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        let attributes_text: String = row.try_get("attributes")?;
        let sid: String = row.try_get("sid")?;
        let channels = worker_channels.remove(&sid).unwrap_or_default();
        Ok((
            Worker {
                sid,
                friendly_name: row.try_get("friendly_name")?,
                attributes: serde_json::from_str(&attributes_text).unwrap_or_default(),
                attributes_text,
                activity_sid: row.try_get("activity_sid")?,
                date_status_changed: row.try_get("date_status_changed")?,
                // A reservation does not rewrite its worker's row: the latest one tells when
                // the worker stopped being idle, if that is later than the row says.
                idle_since: row
                    .try_get::<i64, _>("idle_since")?
                    .max(row.try_get::<Option<i64>, _>("last_reserved")?.unwrap_or(i64::MIN)),
                version: row.try_get("version")?,
                date_created: row.try_get("date_created")?,
                date_updated: row.try_get("date_updated")?,
                channels: Vec::new(),
                queues: Vec::new(),
                filed_as: None,
            },
            channels,
        ))
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let queues = sqlx::query(
        "SELECT sid, friendly_name, target_workers, max_reserved_workers, task_order, reservation_activity_sid, assignment_activity_sid, date_created, date_updated FROM task_queues WHERE workspace_sid = $1 ORDER BY date_created, sid",
    )
    .bind(sid)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok(StoredQueue {
            sid: row.try_get("sid")?,
            friendly_name: row.try_get("friendly_name")?,
            target_workers: row.try_get("target_workers")?,
            max_reserved_workers: row.try_get("max_reserved_workers")?,
            task_order: row.try_get("task_order")?,
            reservation_activity_sid: row.try_get("reservation_activity_sid")?,
            assignment_activity_sid: row.try_get("assignment_activity_sid")?,
            date_created: row.try_get("date_created")?,
            date_updated: row.try_get("date_updated")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let workflows = sqlx::query(
        "SELECT sid, friendly_name, configuration, assignment_callback_url, fallback_assignment_callback_url, task_reservation_timeout, date_created, date_updated FROM workflows WHERE workspace_sid = $1 ORDER BY date_created, sid",
    )
    .bind(sid)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok(Workflow {
            sid: row.try_get("sid")?,
            friendly_name: row.try_get("friendly_name")?,
            configuration_text: row.try_get("configuration")?,
            configuration: std::sync::Arc::new(super::workflow::Configuration {
                module: None,
                filters: Vec::new(),
                default_target: None,
            }),
            assignment_callback_url: row.try_get("assignment_callback_url")?,
            fallback_assignment_callback_url: row.try_get("fallback_assignment_callback_url")?,
            task_reservation_timeout: row.try_get("task_reservation_timeout")?,
            date_created: row.try_get("date_created")?,
            date_updated: row.try_get("date_updated")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let live_tasks = sqlx::query(
        "SELECT sid, workflow_sid, task_queue_sid, task_channel_sid, attributes, priority, timeout, assignment_status, reason,
                virtual_start_time, task_queue_entered_date, assignment_count, call_sid, version, date_created, date_updated,
                filter_index, target_index, step_deadline, routing_targets
         FROM tasks WHERE workspace_sid = $1 AND assignment_status IN ('pending', 'reserved', 'assigned', 'wrapping')
         ORDER BY date_created, sid",
    )
    .bind(sid)
    .fetch_all(pool)
    .await?
    .iter()
    .map(stored_task_from_row)
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let sql = format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE workspace_sid = $1 AND reservation_status IN ('pending', 'accepted', 'wrapping') ORDER BY date_created, sid"
    );
    let live_reservations = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(sid)
        .fetch_all(pool)
        .await?
        .iter()
        .map(reservation_from_row)
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some(StoredWorkspace {
        workspace,
        activities,
        channels,
        workers,
        queues,
        workflows,
        live_tasks,
        live_reservations,
    }))
}

/// A reservation as stored (finished ones are no longer in memory).
pub async fn stored_reservation(
    db: &Db,
    workspace_sid: &str,
    sid: &str,
) -> Result<Option<Reservation>, sqlx::Error> {
    let sql = format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE workspace_sid = $1 AND sid = $2"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(workspace_sid)
        .bind(sid)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(reservation_from_row).transpose()
}
