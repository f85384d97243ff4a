//! Durable subscribers of a channel: webhooks and event-subscriber modules, each with a cursor in
//! the event log and the record of how its deliveries went.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::Row;

use crate::store::batch::Statement;
use crate::store::{Db, rfc3339};

/// Where a subscriber's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An http(s) URL, signed with the subscriber's Standard Webhooks secret (`whsec_...`).
    Webhook { url: String, secret: String },
    /// An event-subscriber module of the account: `module:NAME[@VERSION]`.
    Module { uri: String },
}

/// Whether a subscriber is being delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    /// Stopped after a 410 or a run of failures; `Status=active` or a replay starts it again.
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Subscriber {
    pub sid: String,
    pub account_sid: String,
    pub channel_sid: String,
    pub target: Target,
    pub status: Status,
    pub status_reason: Option<String>,
    /// The sequence number of the last event delivered or passed over as not matching.
    pub cursor: i64,
    pub last_success: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_time: Option<i64>,
    pub consecutive_failures: i64,
    pub delivered_count: i64,
    pub date_created: i64,
    pub date_updated: i64,
}

/// A fresh signing secret: 24 random bytes, in the Standard Webhooks `whsec_` form.
pub fn new_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The `webhook-signature` header value for one attempt: `v1,` + base64 HMAC-SHA256 of
/// `{id}.{timestamp}.{body}` keyed with the secret's decoded bytes.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    // HMAC takes keys of any length; the error case exists only for fixed-key MACs.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
        return String::new();
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

impl Subscriber {
    pub fn kind(&self) -> &'static str {
        match self.target {
            Target::Webhook { .. } => "webhook",
            Target::Module { .. } => "module",
        }
    }

    /// The wire form. The secret is shown only in the create answer, which adds it.
    pub fn to_json(&self, base: &str) -> Value {
        let (url, module) = match &self.target {
            Target::Webhook { url, .. } => (Some(url.as_str()), None),
            Target::Module { uri } => (None, Some(uri.as_str())),
        };
        json!({
            "sid": self.sid,
            "account_sid": self.account_sid,
            "channel_sid": self.channel_sid,
            "type": self.kind(),
            "target_url": url,
            "module": module,
            "status": self.status.as_str(),
            "status_reason": self.status_reason,
            "cursor": self.cursor,
            "last_success": self.last_success.map(rfc3339),
            "last_error": self.last_error,
            "last_error_time": self.last_error_time.map(rfc3339),
            "consecutive_failures": self.consecutive_failures,
            "delivered_count": self.delivered_count,
            "date_created": rfc3339(self.date_created),
            "date_updated": rfc3339(self.date_updated),
            "url": format!("{base}/v1/Channels/{}/Subscribers/{}", self.channel_sid, self.sid),
        })
    }

    pub fn upsert(&self) -> Statement {
        let (url, module, secret) = match &self.target {
            Target::Webhook { url, secret } => (Some(url.clone()), None, Some(secret.clone())),
            Target::Module { uri } => (None, Some(uri.clone()), None),
        };
        Statement::new(
            "INSERT INTO subscribers (sid, account_sid, channel_sid, type, url, module, secret, status, status_reason, cursor, last_success, last_error, last_error_time, consecutive_failures, delivered_count, date_created, date_updated)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (sid) DO UPDATE SET status = excluded.status, status_reason = excluded.status_reason,
               cursor = excluded.cursor, last_success = excluded.last_success, last_error = excluded.last_error,
               last_error_time = excluded.last_error_time, consecutive_failures = excluded.consecutive_failures,
               delivered_count = excluded.delivered_count, date_updated = excluded.date_updated",
            vec![
                self.sid.clone().into(),
                self.account_sid.clone().into(),
                self.channel_sid.clone().into(),
                self.kind().into(),
                url.into(),
                module.into(),
                secret.into(),
                self.status.as_str().into(),
                self.status_reason.clone().into(),
                self.cursor.into(),
                self.last_success.into(),
                self.last_error.clone().into(),
                self.last_error_time.into(),
                self.consecutive_failures.into(),
                self.delivered_count.into(),
                self.date_created.into(),
                self.date_updated.into(),
            ],
        )
    }

    pub fn delete(&self) -> Statement {
        Statement::new(
            "DELETE FROM subscribers WHERE sid = $1",
            vec![self.sid.clone().into()],
        )
    }
}

const COLUMNS: &str = "sid, account_sid, channel_sid, type, url, module, secret, status, status_reason, cursor, last_success, last_error, last_error_time, consecutive_failures, delivered_count, date_created, date_updated";

/// Every subscriber, for the router's start.
pub async fn load_all(db: &Db) -> Result<Vec<Subscriber>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM subscribers ORDER BY date_created, sid");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

/// One subscriber as committed, or `None` when it is not the account's.
pub async fn fetch(
    db: &Db,
    account_sid: &str,
    sid: &str,
) -> Result<Option<Subscriber>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM subscribers WHERE account_sid = $1 AND sid = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(account_sid)
        .bind(sid)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A channel's subscribers as committed.
pub async fn of_channel(
    db: &Db,
    account_sid: &str,
    channel_sid: &str,
) -> Result<Vec<Subscriber>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM subscribers WHERE account_sid = $1 AND channel_sid = $2 ORDER BY date_created, sid"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(account_sid)
        .bind(channel_sid)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Subscriber, sqlx::Error> {
    let kind: String = row.try_get("type")?;
    let target = if kind == "module" {
        Target::Module {
            uri: row
                .try_get::<Option<String>, _>("module")?
                .unwrap_or_default(),
        }
    } else {
        Target::Webhook {
            url: row.try_get::<Option<String>, _>("url")?.unwrap_or_default(),
            secret: row
                .try_get::<Option<String>, _>("secret")?
                .unwrap_or_default(),
        }
    };
    let status: String = row.try_get("status")?;
    Ok(Subscriber {
        sid: row.try_get("sid")?,
        account_sid: row.try_get("account_sid")?,
        channel_sid: row.try_get("channel_sid")?,
        target,
        status: if status == "disabled" {
            Status::Disabled
        } else {
            Status::Active
        },
        status_reason: row.try_get("status_reason")?,
        cursor: row.try_get("cursor")?,
        last_success: row.try_get("last_success")?,
        last_error: row.try_get("last_error")?,
        last_error_time: row.try_get("last_error_time")?,
        consecutive_failures: row.try_get("consecutive_failures")?,
        delivered_count: row.try_get("delivered_count")?,
        date_created: row.try_get("date_created")?,
        date_updated: row.try_get("date_updated")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries.
    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_random_and_in_the_whsec_form() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.starts_with("whsec_") && a != b);
        let decoded = STANDARD.decode(a.trim_start_matches("whsec_")).unwrap();
        assert_eq!(decoded.len(), 24);
    }
}
