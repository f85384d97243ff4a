-- A worker's idle time is kept in its latest reservation's row (a reservation no longer rewrites
-- the worker's row); the loader reads each worker's latest reservation from this index in one
-- step, and a worker's reservation list comes out of it in creation order.
DROP INDEX reservations_by_worker;
CREATE INDEX reservations_by_worker ON reservations (worker_sid, date_created);
-- No query looks tasks up by call: the link from a queued call to its task is held in memory
-- with the live task. The index cost an entry per task.
DROP INDEX tasks_by_call;
