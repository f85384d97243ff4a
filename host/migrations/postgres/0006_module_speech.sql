-- Characters a module had synthesized through the media interface, charged to its invocation.
ALTER TABLE usage_records ADD COLUMN tts_characters BIGINT NOT NULL DEFAULT 0;
