-- Accounts, module registry, usage records and the tenant key-value store.
-- Times are unix milliseconds (INTEGER) so the same queries run on SQLite and PostgreSQL.

CREATE TABLE accounts (
    sid TEXT PRIMARY KEY,
    friendly_name TEXT NOT NULL,
    auth_token_sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    fuel_limit BIGINT,
    deadline_ms BIGINT,
    memory_limit_bytes BIGINT,
    host_call_limit BIGINT,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);

CREATE TABLE module_blobs (
    sha256 TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    bytes BLOB NOT NULL
);

-- The last version number handed out per module name; kept after deletes so a version number is
-- never reused for different code.
CREATE TABLE module_sequences (
    account_sid TEXT NOT NULL,
    name TEXT NOT NULL,
    last_version BIGINT NOT NULL,
    PRIMARY KEY (account_sid, name)
);

CREATE TABLE modules (
    sid TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    date_created BIGINT NOT NULL,
    UNIQUE (account_sid, name, version)
);
CREATE INDEX modules_by_sha256 ON modules (sha256);

CREATE TABLE usage_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_sid TEXT NOT NULL,
    module_sid TEXT NOT NULL,
    module_name TEXT NOT NULL,
    module_version BIGINT NOT NULL,
    world TEXT NOT NULL,
    fuel_consumed BIGINT NOT NULL,
    wall_time_us BIGINT NOT NULL,
    peak_memory_bytes BIGINT NOT NULL,
    host_calls BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    call_sid TEXT,
    task_sid TEXT,
    date_created BIGINT NOT NULL
);
CREATE INDEX usage_by_account_time ON usage_records (account_sid, date_created);

CREATE TABLE kv_entries (
    account_sid TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (account_sid, key)
);
