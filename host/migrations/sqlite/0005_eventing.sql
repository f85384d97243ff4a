-- Event channels: which events a tenant wants delivered, and how.
CREATE TABLE channels (
    sid TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    unique_name TEXT,
    friendly_name TEXT NOT NULL,
    -- JSON array of exact types and prefix globs (`task.*`); empty = every type.
    event_types TEXT NOT NULL,
    -- An expression in the routing expression language over the event's data; NULL = all.
    filter TEXT,
    retention_seconds BIGINT NOT NULL,
    max_delivery_rate BIGINT,
    allow_publish BIGINT NOT NULL,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);
CREATE UNIQUE INDEX channels_by_unique_name ON channels (account_sid, unique_name);

-- Durable subscribers of a channel (webhooks and modules), each with its delivery cursor: the
-- sequence number of the last event it has been given (or skipped as not matching).
CREATE TABLE subscribers (
    sid TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    channel_sid TEXT NOT NULL,
    type TEXT NOT NULL,
    url TEXT,
    module TEXT,
    secret TEXT,
    status TEXT NOT NULL,
    status_reason TEXT,
    cursor BIGINT NOT NULL,
    last_success BIGINT,
    last_error TEXT,
    last_error_time BIGINT,
    consecutive_failures BIGINT NOT NULL,
    delivered_count BIGINT NOT NULL,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);
CREATE INDEX subscribers_by_channel ON subscribers (account_sid, channel_sid);

-- Custom events published to a channel belong to that channel only.
ALTER TABLE events ADD COLUMN channel_sid TEXT;
