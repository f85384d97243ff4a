//! Call records: what is stored and shown of each call (`Calls.json`), its segments and timeline.

use std::sync::Arc;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::runtime::io::{CallDirection, CallStatus};
use crate::store::batch::Statement;
use crate::store::{Db, rfc2822, rfc3339};

/// Who ended a call, or a stretch of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Party {
    /// The caller (or, on an outbound call, the called party) hung up.
    Caller,
    /// The dialled party of a bridge hung up.
    Callee,
    /// The handler said so (`hangup`, `reject`, or its instructions ran out).
    Application,
    /// `POST Calls/{Sid}.json` with `Status=completed`.
    Api,
    /// The host ended it: an application error, a timeout, shutdown.
    System,
}

impl Party {
    pub fn as_str(self) -> &'static str {
        match self {
            Party::Caller => "caller",
            Party::Callee => "callee",
            Party::Application => "application",
            Party::Api => "api",
            Party::System => "system",
        }
    }
}

/// A call as stored.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub sid: String,
    pub account_sid: String,
    pub parent_call_sid: Option<String>,
    pub phone_number_sid: Option<String>,
    pub application_sid: Option<String>,
    pub from: String,
    pub to: String,
    pub direction: CallDirection,
    pub status: CallStatus,
    pub url: Option<String>,
    pub fallback_url: Option<String>,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    /// Which of initiated, ringing, answered, completed go to `status_callback`.
    pub status_callback_events: Vec<String>,
    /// When the call was answered.
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub ended_by: Option<Party>,
    pub date_created: i64,
    pub date_updated: i64,
}

impl CallRecord {
    /// A new call with a fresh sid, created `now`, with no handler, callback, parent or times yet.
    pub fn new(
        account_sid: &str,
        from: &str,
        to: &str,
        direction: CallDirection,
        status: CallStatus,
        now: i64,
    ) -> Self {
        CallRecord {
            sid: crate::sid::new_sid("CA"),
            account_sid: account_sid.to_string(),
            parent_call_sid: None,
            phone_number_sid: None,
            application_sid: None,
            from: from.to_string(),
            to: to.to_string(),
            direction,
            status,
            url: None,
            fallback_url: None,
            status_callback: None,
            status_callback_method: "POST".into(),
            status_callback_events: Vec::new(),
            start_time: None,
            end_time: None,
            ended_by: None,
            date_created: now,
            date_updated: now,
        }
    }

    pub fn insert(&self) -> Statement {
        Statement::new(
            "INSERT INTO calls (sid, account_sid, parent_call_sid, phone_number_sid, application_sid, from_number, to_number, direction, status, url, fallback_url, status_callback, status_callback_method, status_callback_events, start_time, end_time, date_created, date_updated)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
            vec![
                self.sid.clone().into(),
                self.account_sid.clone().into(),
                self.parent_call_sid.clone().into(),
                self.phone_number_sid.clone().into(),
                self.application_sid.clone().into(),
                self.from.clone().into(),
                self.to.clone().into(),
                self.direction.as_str().into(),
                self.status.as_str().into(),
                self.url.clone().into(),
                self.fallback_url.clone().into(),
                self.status_callback.clone().into(),
                self.status_callback_method.clone().into(),
                self.status_callback_events.join(" ").into(),
                self.start_time.into(),
                self.end_time.into(),
                self.date_created.into(),
                self.date_updated.into(),
            ],
        )
    }

    /// Stores the status and times as they are now.
    pub fn update_status(&self) -> Statement {
        Statement::new(
            "UPDATE calls SET status = $2, start_time = $3, end_time = $4, ended_by = $5, date_updated = $6 WHERE sid = $1",
            vec![
                self.sid.clone().into(),
                self.status.as_str().into(),
                self.start_time.into(),
                self.end_time.into(),
                self.ended_by.map(|p| p.as_str().to_string()).into(),
                self.date_updated.into(),
            ],
        )
    }

    /// Stores the final status of a call together with its whole timeline.
    pub fn update_final(&self, timeline: &[TimelineEntry]) -> Statement {
        Statement::new(
            "UPDATE calls SET status = $2, start_time = $3, end_time = $4, ended_by = $5, date_updated = $6, timeline = $7 WHERE sid = $1",
            vec![
                self.sid.clone().into(),
                self.status.as_str().into(),
                self.start_time.into(),
                self.end_time.into(),
                self.ended_by.map(|p| p.as_str().to_string()).into(),
                self.date_updated.into(),
                serde_json::to_string(timeline).unwrap_or_default().into(),
            ],
        )
    }

    /// The call as a handler request describes it.
    pub fn view(&self) -> super::handler::CallView<'_> {
        super::handler::CallView {
            call_sid: &self.sid,
            account_sid: &self.account_sid,
            from: &self.from,
            to: &self.to,
            direction: self.direction,
            status: self.status,
            parent_call_sid: self.parent_call_sid.as_deref(),
        }
    }

    /// The call's URL path on the `2010-04-01` API.
    pub fn uri(&self) -> String {
        format!(
            "/2010-04-01/Accounts/{}/Calls/{}.json",
            self.account_sid, self.sid
        )
    }

    /// Seconds from answer to end (or to now, while live).
    pub fn duration_seconds(&self, now_ms: i64) -> Option<i64> {
        let start = self.start_time?;
        Some((self.end_time.unwrap_or(now_ms) - start).max(0) / 1000)
    }

    pub fn resource(&self) -> CallResource {
        CallResource {
            sid: self.sid.clone(),
            account_sid: self.account_sid.clone(),
            parent_call_sid: self.parent_call_sid.clone(),
            phone_number_sid: self.phone_number_sid.clone(),
            to: self.to.clone(),
            to_formatted: self.to.clone(),
            from: self.from.clone(),
            from_formatted: self.from.clone(),
            status: self.status,
            direction: self.direction,
            start_time: self.start_time.map(rfc2822),
            end_time: self.end_time.map(rfc2822),
            duration: self
                .end_time
                .map(|_| self.duration_seconds(0).unwrap_or(0).to_string()),
            ended_by: self.ended_by,
            answered_by: None,
            api_version: "2010-04-01",
            price: None,
            price_unit: "USD",
            caller_name: None,
            forwarded_from: None,
            date_created: rfc2822(self.date_created),
            date_updated: rfc2822(self.date_updated),
            subresource_uris: serde_json::json!({
                "segments": format!("/v1/Calls/{}/Segments", self.sid),
                "timeline": format!("/v1/Sim/Calls/{}/Timeline", self.sid),
            }),
            uri: self.uri(),
        }
    }

    pub fn from_row(row: &AnyRow) -> Result<CallRecord, sqlx::Error> {
        let direction: String = row.try_get("direction")?;
        let status: String = row.try_get("status")?;
        let events: String = row.try_get("status_callback_events")?;
        let ended_by: Option<String> = row.try_get("ended_by")?;
        Ok(CallRecord {
            sid: row.try_get("sid")?,
            account_sid: row.try_get("account_sid")?,
            parent_call_sid: row.try_get("parent_call_sid")?,
            phone_number_sid: row.try_get("phone_number_sid")?,
            application_sid: row.try_get("application_sid")?,
            from: row.try_get("from_number")?,
            to: row.try_get("to_number")?,
            direction: CallDirection::parse(&direction).unwrap_or_default(),
            status: CallStatus::parse(&status).unwrap_or(CallStatus::Failed),
            url: row.try_get("url")?,
            fallback_url: row.try_get("fallback_url")?,
            status_callback: row.try_get("status_callback")?,
            status_callback_method: row.try_get("status_callback_method")?,
            status_callback_events: events.split_whitespace().map(str::to_string).collect(),
            start_time: row.try_get("start_time")?,
            end_time: row.try_get("end_time")?,
            ended_by: match ended_by.as_deref() {
                Some("caller") => Some(Party::Caller),
                Some("callee") => Some(Party::Callee),
                Some("application") => Some(Party::Application),
                Some("api") => Some(Party::Api),
                Some("system") => Some(Party::System),
                _ => None,
            },
            date_created: row.try_get("date_created")?,
            date_updated: row.try_get("date_updated")?,
        })
    }
}

/// The `Call` resource, wire-compatible with the reference API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CallResource {
    pub sid: String,
    pub account_sid: String,
    pub parent_call_sid: Option<String>,
    pub phone_number_sid: Option<String>,
    pub to: String,
    pub to_formatted: String,
    pub from: String,
    pub from_formatted: String,
    pub status: CallStatus,
    pub direction: CallDirection,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    /// Whole seconds from answer to end, once ended.
    pub duration: Option<String>,
    /// Who ended the call, once ended.
    pub ended_by: Option<Party>,
    pub answered_by: Option<String>,
    pub api_version: &'static str,
    pub price: Option<String>,
    pub price_unit: &'static str,
    pub caller_name: Option<String>,
    pub forwarded_from: Option<String>,
    pub date_created: String,
    pub date_updated: String,
    #[schema(value_type = Object)]
    pub subresource_uris: serde_json::Value,
    pub uri: String,
}

/// Text that many timelines hold at once, kept once: thousands of callers waiting in a queue
/// hear the same prompts, from the same clips, every cycle, and their timelines would otherwise
/// each keep a copy of every one. Bounded: past [`Phrases::BUDGET_BYTES`] (the texts and what
/// keeping each costs) it starts afresh (texts already on timelines stay where they are), and a
/// text longer than [`Phrases::LONGEST`] is not kept (it is unlikely to recur).
#[derive(Default)]
pub struct Phrases(std::sync::Mutex<PhraseSet>);

#[derive(Default)]
struct PhraseSet {
    texts: std::collections::HashSet<Arc<str>>,
    bytes: usize,
}

impl Phrases {
    const BUDGET_BYTES: usize = 1 << 20;
    const LONGEST: usize = 512;
    /// What keeping one text costs besides its bytes: the shared allocation's counts and the
    /// set's slot.
    const OVERHEAD_BYTES: usize = 64;

    /// `text`, shared with every timeline that already holds it.
    pub fn share(&self, text: &str) -> Arc<str> {
        if text.len() > Self::LONGEST {
            return Arc::from(text);
        }
        let mut phrases = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(shared) = phrases.texts.get(text) {
            return shared.clone();
        }
        let cost = text.len() + Self::OVERHEAD_BYTES;
        if phrases.bytes + cost > Self::BUDGET_BYTES {
            *phrases = PhraseSet::default();
        }
        let shared: Arc<str> = Arc::from(text);
        phrases.bytes += cost;
        phrases.texts.insert(shared.clone());
        shared
    }
}

/// What the caller experienced at one moment.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Experience {
    /// The call's status changed.
    Status { status: String },
    /// Speech was played: `media_url` is the synthesized clip's persistent address. When speech
    /// could not be synthesized, `error` says why, nothing played and the call went on.
    Say {
        #[schema(value_type = String)]
        text: Arc<str>,
        #[schema(value_type = Option<String>)]
        voice: Option<Arc<str>>,
        #[schema(value_type = Option<String>)]
        language: Option<Arc<str>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        media_url: Option<Arc<str>>,
        duration_ms: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        error: Option<Arc<str>>,
    },
    /// Audio was played: `url` as the document named it, `media_url` the transcoded clip's
    /// persistent address. When the audio could not be fetched or decoded, `error` says why,
    /// nothing played (`duration_ms` is null) and the call went on.
    Play {
        #[schema(value_type = String)]
        url: Arc<str>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        media_url: Option<Arc<str>>,
        duration_ms: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        error: Option<Arc<str>>,
    },
    /// Silence.
    Pause { duration_ms: i64 },
    /// The call began listening for keys.
    Gather {
        num_digits: Option<u32>,
        timeout_seconds: u32,
        finish_on_key: Option<String>,
    },
    /// Listening ended.
    GatherEnded { digits: String, timed_out: bool },
    /// The caller pressed keys.
    Digits { digits: String },
    /// The call started ringing another party.
    Dialing { call_sid: String, to: String },
    /// The caller was connected to another call.
    Bridged { call_sid: String, to: String },
    /// The connection to another call ended.
    Unbridged { call_sid: String, duration_ms: i64 },
    /// Both the handler and its fallback failed; the caller heard the application-error message.
    ApplicationError { code: u32, message: String },
    /// The caller joined a queue (or resumed waiting in it after a restart).
    Enqueued {
        queue_sid: String,
        queue: String,
        position: u32,
        resumed: bool,
    },
    /// The caller could not join a queue.
    EnqueueFailed { queue: String, result: String },
    /// The caller left its queue, and why (`QueueResult`).
    LeftQueue {
        queue_sid: String,
        result: String,
        wait_ms: i64,
    },
    /// The wait-state application failed; the caller heard the hold fallback and stayed queued.
    WaitStateError {
        uri: String,
        code: u32,
        message: String,
    },
    /// The call ended.
    Hangup { by: Party },
}

/// One line of a timeline.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// Milliseconds since the call was created, on the host's clock.
    pub offset_ms: i64,
    /// RFC 3339. Kept as milliseconds and written out when shown: a long wait in a queue holds
    /// many entries per call.
    #[serde(rename = "time", with = "rfc3339_ms")]
    #[schema(value_type = String)]
    pub time_ms: i64,
    #[serde(flatten)]
    pub experience: Experience,
}

impl TimelineEntry {
    pub fn new(created_ms: i64, now_ms: i64, experience: Experience) -> Self {
        TimelineEntry {
            offset_ms: now_ms - created_ms,
            time_ms: now_ms,
            experience,
        }
    }
}

/// Unix milliseconds shown as RFC 3339 text.
mod rfc3339_ms {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&crate::store::rfc3339(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        let text = String::deserialize(deserializer)?;
        crate::store::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time")))
    }
}

/// One stretch of a call under one handler, with what it used.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Segment {
    pub call_sid: String,
    /// 1 for the first handler of the call, then 2, 3, ...
    pub position: i64,
    /// `module:NAME@VERSION` or the URL.
    pub uri: String,
    pub module_name: Option<String>,
    pub module_version: Option<i64>,
    pub start_time: String,
    pub end_time: Option<String>,
    /// Milliseconds this handler was in control; grows while the segment is open.
    pub duration_ms: i64,
    pub invocations: i64,
    pub fuel_consumed: i64,
    pub wall_time_us: i64,
    /// Milliseconds of speech and audio played.
    pub media_ms: i64,
    /// Characters sent to speech synthesis.
    pub tts_characters: i64,
}

pub async fn get(db: &Db, account_sid: &str, sid: &str) -> Result<Option<CallRecord>, sqlx::Error> {
    sqlx::query("SELECT * FROM calls WHERE account_sid = $1 AND sid = $2")
        .bind(account_sid)
        .bind(sid)
        .fetch_optional(db.pool())
        .await?
        .as_ref()
        .map(CallRecord::from_row)
        .transpose()
}

/// Filters of `GET Calls.json`.
#[derive(Debug, Default)]
pub struct CallFilter {
    pub to: Option<String>,
    pub from: Option<String>,
    pub status: Option<String>,
    pub parent_call_sid: Option<String>,
}

pub async fn list(
    db: &Db,
    account_sid: &str,
    filter: &CallFilter,
) -> Result<Vec<CallRecord>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM calls WHERE account_sid = $1 AND ($2 IS NULL OR to_number = $2) AND ($3 IS NULL OR from_number = $3)
           AND ($4 IS NULL OR status = $4) AND ($5 IS NULL OR parent_call_sid = $5)
         ORDER BY date_created DESC, sid",
    )
    .bind(account_sid)
    .bind(filter.to.clone())
    .bind(filter.from.clone())
    .bind(filter.status.clone())
    .bind(filter.parent_call_sid.clone())
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(CallRecord::from_row)
    .collect()
}

pub async fn stored_timeline(
    db: &Db,
    account_sid: &str,
    sid: &str,
) -> Result<Option<Vec<TimelineEntry>>, sqlx::Error> {
    let timeline: Option<Option<String>> =
        sqlx::query_scalar("SELECT timeline FROM calls WHERE account_sid = $1 AND sid = $2")
            .bind(account_sid)
            .bind(sid)
            .fetch_optional(db.pool())
            .await?;
    Ok(timeline.map(|text| {
        text.and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }))
}

pub async fn segments(
    db: &Db,
    account_sid: &str,
    call_sid: &str,
    now_ms: i64,
) -> Result<Vec<Segment>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM call_segments WHERE account_sid = $1 AND call_sid = $2 ORDER BY position",
    )
    .bind(account_sid)
    .bind(call_sid)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| {
        let started: i64 = row.try_get("started_at")?;
        let ended: Option<i64> = row.try_get("ended_at")?;
        Ok(Segment {
            call_sid: row.try_get("call_sid")?,
            position: row.try_get("position")?,
            uri: row.try_get("uri")?,
            module_name: row.try_get("module_name")?,
            module_version: row.try_get("module_version")?,
            start_time: rfc3339(started),
            end_time: ended.map(rfc3339),
            duration_ms: ended.unwrap_or(now_ms) - started,
            invocations: row.try_get("invocations")?,
            fuel_consumed: row.try_get("fuel_consumed")?,
            wall_time_us: row.try_get("wall_time_us")?,
            media_ms: row.try_get("media_ms")?,
            tts_characters: row.try_get("tts_characters")?,
        })
    })
    .collect()
}

/// Calls that were live when the host stopped cannot resume (the instructions they were running are
/// gone): at start they are ended as failed, so no call stays "in-progress" forever. Callers waiting
/// in a queue are the exception: their membership holds all they need, and they resume waiting.
pub async fn fail_interrupted(db: &Db, now_ms: i64) -> Result<u64, sqlx::Error> {
    let ended = sqlx::query(
        "UPDATE calls SET status = 'failed', end_time = $1, ended_by = 'system', date_updated = $1
         WHERE status IN ('queued', 'ringing', 'in-progress')
           AND sid NOT IN (SELECT call_sid FROM queue_members)",
    )
    .bind(now_ms)
    .execute(db.pool())
    .await?
    .rows_affected();
    sqlx::query("UPDATE call_segments SET ended_at = $1 WHERE ended_at IS NULL")
        .bind(now_ms)
        .execute(db.pool())
        .await?;
    Ok(ended)
}

/// How many segments a call has recorded, so a resumed call numbers its next one after them.
pub async fn segment_count(db: &Db, call_sid: &str) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(MAX(position), 0) AS BIGINT) AS segments FROM call_segments WHERE call_sid = $1",
    )
    .bind(call_sid)
    .fetch_one(db.pool())
    .await?;
    row.try_get("segments")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_are_kept_once_and_within_their_budget() {
        let phrases = Phrases::default();
        let first = phrases.share("You are number");
        let again = phrases.share(&String::from("You are number"));
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(&*again, "You are number");

        let long = "a".repeat(Phrases::LONGEST + 1);
        assert!(!Arc::ptr_eq(&phrases.share(&long), &phrases.share(&long)));

        // Filling the budget starts afresh: the text is still right, only no longer shared
        // with what came before.
        let text = "b".repeat(Phrases::LONGEST);
        for n in 0..=(Phrases::BUDGET_BYTES / (Phrases::LONGEST + Phrases::OVERHEAD_BYTES)) {
            phrases.share(&format!("{n}{text}")[..Phrases::LONGEST]);
        }
        let after = phrases.share("You are number");
        assert_eq!(&*after, "You are number");
        assert!(!Arc::ptr_eq(&first, &after));
    }
}
