-- Lists of finished tasks are read a page at a time, in creation order, straight from this index;
-- it replaces the one on (workspace_sid, assignment_status), which is its prefix.
DROP INDEX tasks_by_workspace;
CREATE INDEX tasks_by_status_and_age ON tasks (workspace_sid, assignment_status, date_created, sid);
-- Unfiltered lists page through a workspace's tasks in creation order.
CREATE INDEX tasks_by_age ON tasks (workspace_sid, date_created, sid);
