-- Applications, phone numbers, calls, call segments and the event log.
-- URIs are kept as given (module:NAME, module:NAME@VERSION or http(s) URLs).

CREATE TABLE applications (
    sid TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    voice_url TEXT,
    voice_method TEXT NOT NULL,
    voice_fallback_url TEXT,
    voice_fallback_method TEXT NOT NULL,
    status_callback TEXT,
    status_callback_method TEXT NOT NULL,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);
CREATE INDEX applications_by_account ON applications (account_sid, date_created);

-- A phone number belongs to one account at a time: the number is unique across the host.
CREATE TABLE incoming_phone_numbers (
    sid TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    phone_number TEXT NOT NULL UNIQUE,
    friendly_name TEXT NOT NULL,
    voice_application_sid TEXT,
    voice_url TEXT,
    voice_method TEXT NOT NULL,
    voice_fallback_url TEXT,
    voice_fallback_method TEXT NOT NULL,
    status_callback TEXT,
    status_callback_method TEXT NOT NULL,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);
CREATE INDEX numbers_by_account ON incoming_phone_numbers (account_sid, date_created);

CREATE TABLE calls (
    sid TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    parent_call_sid TEXT,
    phone_number_sid TEXT,
    application_sid TEXT,
    from_number TEXT NOT NULL,
    to_number TEXT NOT NULL,
    direction TEXT NOT NULL,
    status TEXT NOT NULL,
    url TEXT,
    fallback_url TEXT,
    status_callback TEXT,
    status_callback_method TEXT NOT NULL,
    status_callback_events TEXT NOT NULL,
    start_time BIGINT,
    end_time BIGINT,
    ended_by TEXT,
    -- JSON array of everything the caller experienced; written when the call ends.
    timeline TEXT,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);
CREATE INDEX calls_by_account ON calls (account_sid, date_created);

-- One stretch of a call under one handler (module version or URL).
CREATE TABLE call_segments (
    call_sid TEXT NOT NULL,
    position BIGINT NOT NULL,
    account_sid TEXT NOT NULL,
    uri TEXT NOT NULL,
    module_name TEXT,
    module_version BIGINT,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    invocations BIGINT NOT NULL,
    fuel_consumed BIGINT NOT NULL,
    wall_time_us BIGINT NOT NULL,
    media_ms BIGINT NOT NULL,
    tts_characters BIGINT NOT NULL,
    PRIMARY KEY (call_sid, position)
);
CREATE INDEX segments_by_account_module ON call_segments (account_sid, module_name, module_version);

-- The event log: every state change of every domain, in commit order per writer.
CREATE TABLE events (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    sid TEXT NOT NULL UNIQUE,
    account_sid TEXT NOT NULL,
    type TEXT NOT NULL,
    source TEXT NOT NULL,
    subject TEXT,
    time BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_by_account ON events (account_sid, sequence);
CREATE INDEX events_by_subject ON events (account_sid, subject, sequence);
