-- Work distribution (TaskRouter-compatible): workspaces and everything routed inside them.
--
-- The routing engine keeps a workspace's live state in memory and writes every transition here
-- before it is acknowledged or announced; at start the engine loads it back. Times are unix ms.
-- `version` columns back the ETag / If-Match of tasks, workers and reservations. Booleans are 0/1.

CREATE TABLE workspaces (
    sid TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    event_callback_url TEXT,
    events_filter TEXT,
    multi_task_enabled BIGINT NOT NULL,
    default_activity_sid TEXT,
    timeout_activity_sid TEXT,
    prioritize_queue_order TEXT NOT NULL,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);
CREATE INDEX workspaces_by_account ON workspaces (account_sid, date_created);

CREATE TABLE activities (
    sid TEXT PRIMARY KEY,
    workspace_sid TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    available BIGINT NOT NULL,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);
CREATE INDEX activities_by_workspace ON activities (workspace_sid);

CREATE TABLE task_channels (
    sid TEXT PRIMARY KEY,
    workspace_sid TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    unique_name TEXT NOT NULL,
    channel_optimized_routing BIGINT NOT NULL,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);
CREATE INDEX task_channels_by_workspace ON task_channels (workspace_sid);

-- idle_since: when the worker last got a reservation or became available, whichever is later;
-- longest idle is served first.
CREATE TABLE workers (
    sid TEXT PRIMARY KEY,
    workspace_sid TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    attributes TEXT NOT NULL,
    activity_sid TEXT NOT NULL,
    date_status_changed BIGINT NOT NULL,
    idle_since BIGINT NOT NULL,
    version BIGINT NOT NULL,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);
CREATE INDEX workers_by_workspace ON workers (workspace_sid);

CREATE TABLE worker_channels (
    sid TEXT PRIMARY KEY,
    worker_sid TEXT NOT NULL,
    workspace_sid TEXT NOT NULL,
    task_channel_sid TEXT NOT NULL,
    capacity BIGINT NOT NULL,
    available BIGINT NOT NULL,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);
CREATE INDEX worker_channels_by_workspace ON worker_channels (workspace_sid);

CREATE TABLE task_queues (
    sid TEXT PRIMARY KEY,
    workspace_sid TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    target_workers TEXT NOT NULL,
    max_reserved_workers BIGINT NOT NULL,
    task_order TEXT NOT NULL,
    reservation_activity_sid TEXT,
    assignment_activity_sid TEXT,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);
CREATE INDEX task_queues_by_workspace ON task_queues (workspace_sid);

CREATE TABLE workflows (
    sid TEXT PRIMARY KEY,
    workspace_sid TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    configuration TEXT NOT NULL,
    assignment_callback_url TEXT,
    fallback_assignment_callback_url TEXT,
    task_reservation_timeout BIGINT NOT NULL,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);
CREATE INDEX workflows_by_workspace ON workflows (workspace_sid);

-- A task's place in its workflow: the filter it matched (-1 = the default filter) and the target
-- it is at, with the deadline of that target (task age based, as the reference computes it) and
-- of its whole life (timeout). call_sid links a task made by <Enqueue workflowSid> to its caller.
CREATE TABLE tasks (
    sid TEXT PRIMARY KEY,
    workspace_sid TEXT NOT NULL,
    workflow_sid TEXT,
    task_queue_sid TEXT,
    task_channel_sid TEXT NOT NULL,
    attributes TEXT NOT NULL,
    priority BIGINT NOT NULL,
    timeout BIGINT NOT NULL,
    assignment_status TEXT NOT NULL,
    reason TEXT,
    virtual_start_time BIGINT NOT NULL,
    task_queue_entered_date BIGINT,
    filter_index BIGINT,
    target_index BIGINT,
    step_deadline BIGINT,
    routing_targets TEXT,
    assignment_count BIGINT NOT NULL,
    call_sid TEXT,
    version BIGINT NOT NULL,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);
CREATE INDEX tasks_by_workspace ON tasks (workspace_sid, assignment_status);
CREATE INDEX tasks_by_call ON tasks (call_sid);

CREATE TABLE reservations (
    sid TEXT PRIMARY KEY,
    task_sid TEXT NOT NULL,
    worker_sid TEXT NOT NULL,
    workspace_sid TEXT NOT NULL,
    task_queue_sid TEXT NOT NULL,
    reservation_status TEXT NOT NULL,
    timeout_at BIGINT,
    previous_activity_sid TEXT,
    version BIGINT NOT NULL,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);
CREATE INDEX reservations_by_task ON reservations (task_sid);
CREATE INDEX reservations_by_worker ON reservations (worker_sid);
CREATE INDEX reservations_live ON reservations (workspace_sid, reservation_status);

-- Routing events are read back by workspace and time (TaskRouter's Events and statistics).
CREATE INDEX events_by_source ON events (account_sid, source, time);
