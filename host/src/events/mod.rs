//! The event log: every state change a domain makes is appended here, in the same transaction as
//! the change itself, so an event exists exactly when its change is durable.
//!
//! Events are CloudEvents-shaped (`id`, `type`, `source`, `time`, `data`) and carry the account's
//! sequence number: the log's own row id, increasing in commit order of the host's writer.

pub mod api;

use serde::Serialize;
use sqlx::Row;

use crate::sid::new_sid;
use crate::store::batch::Statement;
use crate::store::{Db, rfc3339};

/// One entry of the log, as the API returns it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub sid: String,
    pub sequence: i64,
    pub account_sid: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: String,
    /// The sid of the resource the event is about (a call, a task, ...).
    pub subject: Option<String>,
    pub time: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A new event, ready to be committed alongside the change it announces.
pub struct NewEvent<'a> {
    pub account_sid: &'a str,
    pub event_type: &'a str,
    pub source: String,
    pub subject: Option<&'a str>,
    pub time_ms: i64,
    pub data: serde_json::Value,
}

impl NewEvent<'_> {
    /// The insert to put in the same [`crate::store::batch::Change`] as the state change.
    pub fn statement(&self) -> Statement {
        Statement::append(
            "events",
            "sid, account_sid, type, source, subject, time, data",
            vec![
                new_sid("EV").into(),
                self.account_sid.into(),
                self.event_type.into(),
                self.source.clone().into(),
                self.subject.map(str::to_string).into(),
                self.time_ms.into(),
                self.data.to_string().into(),
            ],
        )
    }
}

/// Which events to read.
#[derive(Debug, Default)]
pub struct EventFilter {
    pub subject: Option<String>,
    pub event_type: Option<String>,
    /// Only events with a greater sequence number.
    pub after: Option<i64>,
    pub limit: i64,
}

/// Reads an account's events in sequence order.
pub async fn list(
    db: &Db,
    account_sid: &str,
    filter: &EventFilter,
) -> Result<Vec<Event>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT sequence, sid, account_sid, type, source, subject, time, data FROM events
         WHERE account_sid = $1 AND ($2 IS NULL OR subject = $2) AND ($3 IS NULL OR type = $3) AND sequence > $4
         ORDER BY sequence LIMIT $5",
    )
    .bind(account_sid)
    .bind(filter.subject.clone())
    .bind(filter.event_type.clone())
    .bind(filter.after.unwrap_or(0))
    .bind(filter.limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let data: String = row.try_get("data")?;
            Ok(Event {
                sequence: row.try_get("sequence")?,
                sid: row.try_get("sid")?,
                account_sid: row.try_get("account_sid")?,
                event_type: row.try_get("type")?,
                source: row.try_get("source")?,
                subject: row.try_get("subject")?,
                time: rfc3339(row.try_get("time")?),
                data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
}
