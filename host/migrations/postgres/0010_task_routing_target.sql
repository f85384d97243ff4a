-- The worker or queue a task was sent to by `RoutingTarget` (null for tasks a workflow routes),
-- so the task list's `RoutingTarget` filter reads a page, not every task of the workspace.
ALTER TABLE tasks ADD COLUMN routing_target TEXT;
