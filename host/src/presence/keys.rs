//! API keys (`SK...`): named secrets of an account that sign access tokens and authenticate REST
//! requests (`KeySid:Secret`, see `accounts`). The secret is shown once, in the answer to the
//! create call; deleting a key revokes every token it signed and its REST access (at once on the
//! host that deleted it, within `credential_cache_seconds` on others sharing the database).

use serde::Serialize;
use sqlx::Row;

use crate::sid::{new_secret, new_sid};
use crate::store::{Db, rfc3339};

/// A key as the API shows it (never with its secret, except once at creation).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub date_created: String,
    pub date_updated: String,
}

/// A key with its secret, for verifying signatures.
pub struct SigningKey {
    pub account_sid: String,
    pub secret: String,
}

/// The keys of one account.
pub struct Keys<'a> {
    pub db: &'a Db,
    pub account_sid: &'a str,
}

fn key_of(row: &sqlx::any::AnyRow) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        sid: row.try_get("sid")?,
        account_sid: row.try_get("account_sid")?,
        friendly_name: row.try_get("friendly_name")?,
        date_created: rfc3339(row.try_get("date_created")?),
        date_updated: rfc3339(row.try_get("date_updated")?),
    })
}

impl Keys<'_> {
    /// Creates a key; returns it with its secret.
    pub async fn create(
        &self,
        friendly_name: &str,
        now: i64,
    ) -> Result<(ApiKey, String), sqlx::Error> {
        let sid = new_sid("SK");
        let secret = new_secret(16);
        sqlx::query(
            "INSERT INTO api_keys (sid, account_sid, friendly_name, secret, date_created, date_updated)
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&sid)
        .bind(self.account_sid)
        .bind(friendly_name)
        .bind(&secret)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        let key = ApiKey {
            sid,
            account_sid: self.account_sid.to_string(),
            friendly_name: friendly_name.to_string(),
            date_created: rfc3339(now),
            date_updated: rfc3339(now),
        };
        Ok((key, secret))
    }

    pub async fn get(&self, sid: &str) -> Result<Option<ApiKey>, sqlx::Error> {
        sqlx::query(
            "SELECT sid, account_sid, friendly_name, date_created, date_updated FROM api_keys
             WHERE sid = $1 AND account_sid = $2",
        )
        .bind(sid)
        .bind(self.account_sid)
        .fetch_optional(self.db.pool())
        .await?
        .map(|row| key_of(&row))
        .transpose()
    }

    pub async fn list(&self) -> Result<Vec<ApiKey>, sqlx::Error> {
        sqlx::query(
            "SELECT sid, account_sid, friendly_name, date_created, date_updated FROM api_keys
             WHERE account_sid = $1 ORDER BY date_created, sid",
        )
        .bind(self.account_sid)
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(key_of)
        .collect()
    }

    /// Renames a key; `None` when the account has no such key.
    pub async fn rename(
        &self,
        sid: &str,
        friendly_name: &str,
        now: i64,
    ) -> Result<Option<ApiKey>, sqlx::Error> {
        let updated = sqlx::query(
            "UPDATE api_keys SET friendly_name = $3, date_updated = $4 WHERE sid = $1 AND account_sid = $2",
        )
        .bind(sid)
        .bind(self.account_sid)
        .bind(friendly_name)
        .bind(now)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        self.get(sid).await
    }

    /// Deletes a key; false when the account has no such key.
    pub async fn delete(&self, sid: &str) -> Result<bool, sqlx::Error> {
        Ok(
            sqlx::query("DELETE FROM api_keys WHERE sid = $1 AND account_sid = $2")
                .bind(sid)
                .bind(self.account_sid)
                .execute(self.db.pool())
                .await?
                .rows_affected()
                > 0,
        )
    }
}

/// The key named by a token's `iss`, whichever account holds it (the caller checks it is the
/// token's `sub`).
pub async fn signing_key(db: &Db, sid: &str) -> Result<Option<SigningKey>, sqlx::Error> {
    sqlx::query("SELECT account_sid, secret FROM api_keys WHERE sid = $1")
        .bind(sid)
        .fetch_optional(db.pool())
        .await?
        .map(|row| {
            Ok(SigningKey {
                account_sid: row.try_get("account_sid")?,
                secret: row.try_get("secret")?,
            })
        })
        .transpose()
}
