-- Call queues and the callers waiting in them.

-- A queue's friendly name is unique in its account: <Enqueue> and <Dial><Queue> address queues by name.
-- average_wait_ms is a moving average of the waits of callers taken out of the queue by a dequeue
-- (bridged or redirected), over about the last AVERAGE_WINDOW of them; dequeued_count counts them.
CREATE TABLE queues (
    sid TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    max_size BIGINT NOT NULL,
    average_wait_ms BIGINT NOT NULL,
    dequeued_count BIGINT NOT NULL,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL,
    UNIQUE (account_sid, friendly_name)
);
CREATE INDEX queues_by_account ON queues (account_sid, date_created);

-- One row per caller waiting, committed before the caller hears anything. Service order is
-- priority (higher first), then sequence (earlier first). The row carries what the call needs to
-- resume waiting after a restart: its wait-state URI, where its outcome goes, and the instructions
-- that followed the enqueue in its document (JSON), relative to document_url.
CREATE TABLE queue_members (
    call_sid TEXT PRIMARY KEY,
    queue_sid TEXT NOT NULL,
    account_sid TEXT NOT NULL,
    priority BIGINT NOT NULL,
    sequence BIGINT NOT NULL,
    enqueued_at BIGINT NOT NULL,
    wait_url TEXT,
    action_url TEXT,
    document_url TEXT NOT NULL,
    continuation TEXT NOT NULL,
    workflow_sid TEXT,
    task_attributes TEXT
);
CREATE INDEX queue_members_in_order ON queue_members (queue_sid, priority, sequence);
