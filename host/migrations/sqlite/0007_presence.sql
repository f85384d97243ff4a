-- API keys: they sign the access tokens clients present to register. The secret is kept because
-- verifying an HMAC signature needs it; deleting the key revokes every token it signed.
CREATE TABLE api_keys (
    sid TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    secret TEXT NOT NULL,
    date_created BIGINT NOT NULL,
    date_updated BIGINT NOT NULL
);
CREATE INDEX api_keys_by_account ON api_keys (account_sid, date_created);

-- Workers whose contact_uri is client:NAME follow NAME's presence in workspaces that name these
-- activities: the offline one when the client's last endpoint goes, the online one when it returns.
ALTER TABLE workspaces ADD COLUMN presence_offline_activity_sid TEXT;
ALTER TABLE workspaces ADD COLUMN presence_online_activity_sid TEXT;
