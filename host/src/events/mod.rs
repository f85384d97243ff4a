//! The event log and the event router.
//!
//! Every state change a domain makes appends its event here, in the same transaction as the change
//! itself, so an event exists exactly when its change is durable. Events carry the log's sequence
//! number: its row id, increasing in commit order because one writer commits every change.
//!
//! The router follows the log: each time the writer commits a batch with events (and once a second,
//! for events another host committed to a shared PostgreSQL) it reads what is new, matches every
//! event against the channels of its account, and hands it to the channel's live streams (in
//! memory, never blocking: a stream that falls behind catches up from the log) and wakes the
//! channel's durable subscribers. Each durable subscriber has its own task and its own cursor in the
//! log, so a slow or failing webhook delays nobody else, and a restart resumes where it stopped.

pub mod api;
pub mod channels;
mod delivery;
pub mod stream;
pub mod subscribers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::Row;
use tokio::sync::{Notify, broadcast, watch};

use crate::accounts::Accounts;
use crate::api::error::{ApiError, ApiResult, Code};
use crate::clock::Clock;
use crate::config::EventSettings;
use crate::modules::Registry;
use crate::runtime::Runtime;
use crate::sid::new_sid;
use crate::store::batch::{Sequences, Statement, Writer};
use crate::store::{Db, rfc3339};
use channels::{Candidate, Channel, Selector};
use stream::{Run, RunBuilder};
use subscribers::{Status, Subscriber};

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
    pub data: Value,
    /// The channel a custom event was published to; domain events have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_sid: Option<String>,
    #[serde(skip)]
    pub time_ms: i64,
}

impl Event {
    /// The event as a CloudEvents 1.0 structured-mode JSON object, with the log's sequence number
    /// in the `sequence` extension attribute (a string, as that extension defines it).
    ///
    /// `datacontenttype` is left out: in the JSON format its absence means `application/json`,
    /// which every event's data is, and each of the millions of frames a busy channel fans out a
    /// second is about an eighth shorter without it.
    pub fn cloud_event(&self) -> Value {
        let mut object = Map::new();
        object.insert("specversion".into(), json!("1.0"));
        object.insert("id".into(), json!(self.sid));
        object.insert("source".into(), json!(self.source));
        object.insert("type".into(), json!(self.event_type));
        if let Some(subject) = &self.subject {
            object.insert("subject".into(), json!(subject));
        }
        object.insert("time".into(), json!(self.time));
        object.insert("sequence".into(), json!(self.sequence.to_string()));
        object.insert("data".into(), self.data.clone());
        Value::Object(object)
    }

    fn candidate(&self) -> Candidate<'_> {
        Candidate {
            event_type: &self.event_type,
            channel_sid: self.channel_sid.as_deref(),
            data: &self.data,
        }
    }
}

/// A new event, ready to be committed alongside the change it announces.
///
/// The data is a JSON value, or JSON text already written (routing writes its events' data
/// straight into text; see `routing::event_data`): whatever it is, it is stored as its text.
pub struct NewEvent<'a, D = Value> {
    pub account_sid: &'a str,
    pub event_type: &'a str,
    pub source: String,
    pub subject: Option<&'a str>,
    pub time_ms: i64,
    pub data: D,
}

impl<D: std::fmt::Display> NewEvent<'_, D> {
    /// The insert to put in the same [`crate::store::batch::Change`] as the state change.
    pub fn statement(&self) -> Statement {
        self.statement_with_sid(new_sid("EV"), None)
    }

    fn statement_with_sid(&self, sid: String, channel_sid: Option<&str>) -> Statement {
        Statement::append(
            "events",
            "sid, account_sid, type, source, subject, time, data, channel_sid",
            vec![
                sid.into(),
                self.account_sid.into(),
                self.event_type.into(),
                self.source.clone().into(),
                self.subject.map(str::to_string).into(),
                self.time_ms.into(),
                self.data.to_string().into(),
                channel_sid.map(str::to_string).into(),
            ],
        )
    }
}

/// Appends an event inside a transaction that is not the writer's (the caller has taken
/// [`Db::lock_event_log`]). The router finds it at its next look at the log.
pub async fn append<D: std::fmt::Display>(
    conn: &mut sqlx::AnyConnection,
    event: &NewEvent<'_, D>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO events (sid, account_sid, type, source, subject, time, data, channel_sid) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
    )
    .bind(new_sid("EV"))
    .bind(event.account_sid)
    .bind(event.event_type)
    .bind(event.source.clone())
    .bind(event.subject)
    .bind(event.time_ms)
    .bind(event.data.to_string())
    .execute(conn)
    .await
    .map(|_| ())
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

const EVENT_COLUMNS: &str =
    "sequence, sid, account_sid, type, source, subject, time, data, channel_sid";

fn event_from_row(row: &sqlx::any::AnyRow) -> Result<Event, sqlx::Error> {
    let data: String = row.try_get("data")?;
    let time_ms: i64 = row.try_get("time")?;
    Ok(Event {
        sequence: row.try_get("sequence")?,
        sid: row.try_get("sid")?,
        account_sid: row.try_get("account_sid")?,
        event_type: row.try_get("type")?,
        source: row.try_get("source")?,
        subject: row.try_get("subject")?,
        time: rfc3339(time_ms),
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
        channel_sid: row.try_get("channel_sid")?,
        time_ms,
    })
}

/// Reads an account's events in sequence order.
pub async fn list(
    db: &Db,
    account_sid: &str,
    filter: &EventFilter,
) -> Result<Vec<Event>, sqlx::Error> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events
         WHERE account_sid = $1 AND ($2 IS NULL OR subject = $2) AND ($3 IS NULL OR type = $3) AND sequence > $4
         ORDER BY sequence LIMIT $5"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(account_sid)
        .bind(filter.subject.clone())
        .bind(filter.event_type.clone())
        .bind(filter.after.unwrap_or(0))
        .bind(filter.limit)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(event_from_row).collect()
}

/// The events a channel can see after `after`, oldest first: the account's domain events and the
/// channel's own custom events. Selection by type and filter is the caller's.
async fn channel_events_after(
    db: &Db,
    account_sid: &str,
    channel_sid: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events
         WHERE account_sid = $1 AND sequence > $2 AND (channel_sid IS NULL OR channel_sid = $3)
         ORDER BY sequence LIMIT $4"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(account_sid)
        .bind(after)
        .bind(channel_sid)
        .bind(limit)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(event_from_row).collect()
}

/// Above this many accounts with channels, the router reads every account's events and sets
/// aside those it has no channel for, instead of naming the accounts in its query.
const NAMED_ACCOUNTS: usize = 64;

/// The router's read of the log: up to [`READ_BATCH`] events in `(after, head]` of the given
/// accounts (of every account when they are many).
async fn events_of_accounts(
    db: &Db,
    accounts: &[String],
    after: i64,
    head: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    let named = accounts.len() <= NAMED_ACCOUNTS;
    let which = if named {
        let placeholders: Vec<String> =
            (0..accounts.len()).map(|i| format!("${}", i + 4)).collect();
        format!(" AND account_sid IN ({})", placeholders.join(", "))
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE sequence > $1 AND sequence <= $2{which} ORDER BY sequence LIMIT $3"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(after)
        .bind(head)
        .bind(READ_BATCH);
    if named {
        for account_sid in accounts {
            query = query.bind(account_sid.as_str());
        }
    }
    let rows = query.fetch_all(db.pool()).await?;
    rows.iter().map(event_from_row).collect()
}

async fn last_sequence(db: &Db) -> Result<i64, sqlx::Error> {
    let last: Option<i64> = sqlx::query_scalar("SELECT CAST(MAX(sequence) AS BIGINT) FROM events")
        .fetch_one(db.pool())
        .await?;
    Ok(last.unwrap_or(0))
}

/// A channel the router delivers for: its current configuration, its live streams and the tasks
/// of its durable subscribers.
pub struct LiveChannel {
    config: RwLock<(Arc<Channel>, Arc<Selector>)>,
    /// Runs of events for the live streams, at most [`RUN_LENGTH`] events each.
    hub: broadcast::Sender<Arc<Run>>,
    workers: Mutex<HashMap<String, Worker>>,
}

/// The task delivering to one durable subscriber, and how to wake it.
struct Worker {
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LiveChannel {
    /// The configuration in force: read afresh for every event, so a change applies to the next.
    pub fn current(&self) -> (Arc<Channel>, Arc<Selector>) {
        let config = self.config.read().unwrap_or_else(|p| p.into_inner());
        (config.0.clone(), config.1.clone())
    }

    fn lock_workers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Worker>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Access to modules, attached once the registry and runtime exist.
struct ModuleAccess {
    registry: Registry,
    accounts: Accounts,
    runtime: Arc<Runtime>,
}

/// The event router's facade.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    writer: Writer,
    clock: Clock,
    settings: EventSettings,
    http: reqwest::Client,
    /// Channels by account, then by sid.
    channels: RwLock<HashMap<String, HashMap<String, Arc<LiveChannel>>>>,
    modules: OnceLock<ModuleAccess>,
    shutdown: watch::Sender<bool>,
}

/// How often the router looks at the log without being told, for events committed elsewhere.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Events read from the log per query.
const READ_BATCH: i64 = 1_000;
/// Most events the router hands a channel's live streams in one run. Streams take runs whole, so
/// a busy channel costs a stream one hub message per run rather than per event; the hub keeps
/// `stream_buffer / RUN_LENGTH` runs.
const RUN_LENGTH: usize = 64;
/// Largest custom event body.
pub const MAX_CUSTOM_EVENT_BYTES: usize = 64 * 1024;

impl Events {
    pub fn new(db: Db, writer: Writer, clock: Clock, settings: EventSettings) -> Events {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.webhook_timeout_ms))
            .connect_timeout(Duration::from_millis(
                settings.webhook_timeout_ms.min(5_000),
            ))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Events {
            inner: Arc::new(Inner {
                db,
                writer,
                clock,
                settings,
                http,
                channels: RwLock::default(),
                modules: OnceLock::new(),
                shutdown: watch::channel(false).0,
            }),
        }
    }

    /// Lets module subscribers be invoked.
    pub fn attach(&self, registry: Registry, accounts: Accounts, runtime: Arc<Runtime>) {
        let _ = self.inner.modules.set(ModuleAccess {
            registry,
            accounts,
            runtime,
        });
    }

    /// Loads the channels and subscribers and starts following the log from its current end
    /// (durable subscribers resume from their own cursors, streams from their Last-Event-ID).
    pub async fn start(&self) -> anyhow::Result<()> {
        for channel in channels::load_all(&self.inner.db).await? {
            self.install(channel)?;
        }
        for subscriber in subscribers::load_all(&self.inner.db).await? {
            self.start_worker(subscriber);
        }
        let position = last_sequence(&self.inner.db).await?;
        tokio::spawn(self.clone().follow_log(position));
        tokio::spawn(self.clone().prune_custom_events());
        Ok(())
    }

    /// Ends every stream and delivery task, so the HTTP server can finish its graceful shutdown.
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        let channels = self.read_channels();
        for channel in channels.values().flat_map(|by_sid| by_sid.values()) {
            channel.lock_workers().clear();
        }
    }

    fn stopping(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    pub fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    pub fn settings(&self) -> &EventSettings {
        &self.inner.settings
    }

    fn read_channels(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<String, HashMap<String, Arc<LiveChannel>>>> {
        self.inner
            .channels
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn write_channels(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<String, HashMap<String, Arc<LiveChannel>>>> {
        self.inner
            .channels
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a channel's configuration in force (new or changed).
    fn install(&self, channel: Channel) -> anyhow::Result<()> {
        let selector = Selector::new(&channel).map_err(anyhow::Error::msg)?;
        let mut channels = self.write_channels();
        let by_sid = channels.entry(channel.account_sid.clone()).or_default();
        match by_sid.get(&channel.sid) {
            Some(live) => {
                *live.config.write().unwrap_or_else(|p| p.into_inner()) =
                    (Arc::new(channel), Arc::new(selector));
            }
            None => {
                let runs = (self.inner.settings.stream_buffer / RUN_LENGTH).max(16);
                let (hub, _) = broadcast::channel(runs);
                by_sid.insert(
                    channel.sid.clone(),
                    Arc::new(LiveChannel {
                        config: RwLock::new((Arc::new(channel), Arc::new(selector))),
                        hub,
                        workers: Mutex::default(),
                    }),
                );
            }
        }
        Ok(())
    }

    /// A channel of the account by sid or unique name.
    pub fn channel(&self, account_sid: &str, sid_or_name: &str) -> Option<Arc<LiveChannel>> {
        let channels = self.read_channels();
        let by_sid = channels.get(account_sid)?;
        by_sid.get(sid_or_name).cloned().or_else(|| {
            by_sid
                .values()
                .find(|c| c.current().0.unique_name.as_deref() == Some(sid_or_name))
                .cloned()
        })
    }

    /// The account's channels, oldest first.
    pub fn channels(&self, account_sid: &str) -> Vec<Arc<Channel>> {
        let channels = self.read_channels();
        let mut list: Vec<Arc<Channel>> = channels
            .get(account_sid)
            .map(|by_sid| by_sid.values().map(|c| c.current().0).collect())
            .unwrap_or_default();
        list.sort_by(|a, b| (a.date_created, &a.sid).cmp(&(b.date_created, &b.sid)));
        list
    }

    /// Commits a new or changed channel, then puts it in force.
    pub async fn save_channel(&self, channel: Channel) -> ApiResult<()> {
        Selector::new(&channel).map_err(ApiError::invalid)?;
        if let Some(name) = &channel.unique_name
            && let Some(other) = self.channel(&channel.account_sid, name)
            && other.current().0.sid != channel.sid
        {
            return Err(ApiError::new(
                Code::Conflict,
                format!("another channel of this account already has the UniqueName {name:?}"),
            ));
        }
        self.commit(vec![channel.upsert()]).await?;
        self.install(channel)
            .map_err(|e| ApiError::invalid(e.to_string()))
    }

    /// Deletes a channel with its subscribers and custom events; its streams end.
    pub async fn delete_channel(&self, account_sid: &str, channel_sid: &str) -> ApiResult<()> {
        let Some(live) = self.channel(account_sid, channel_sid) else {
            return Err(ApiError::not_found(channel_sid));
        };
        let (channel, _) = live.current();
        live.lock_workers().clear();
        self.commit(channel.delete()).await?;
        if let Some(by_sid) = self.write_channels().get_mut(account_sid) {
            by_sid.remove(&channel.sid);
        }
        Ok(())
    }

    async fn commit(&self, change: Vec<Statement>) -> ApiResult<()> {
        self.commit_numbered(change).await.map(|_| ())
    }

    /// Commits a change and answers the sequence numbers its events were given.
    async fn commit_numbered(&self, change: Vec<Statement>) -> ApiResult<Sequences> {
        self.inner
            .writer
            .submit(change)
            .sequences()
            .await
            .map_err(|error| ApiError::new(Code::Unavailable, error.to_string()))
    }

    /// The log's last sequence number: where a new subscriber starts.
    pub async fn last_sequence(&self) -> ApiResult<i64> {
        Ok(last_sequence(&self.inner.db).await?)
    }

    /// Commits a subscriber (new or changed over the API) and (re)starts its delivery.
    pub async fn save_subscriber(&self, subscriber: Subscriber) -> ApiResult<()> {
        if let Some(live) = self.channel(&subscriber.account_sid, &subscriber.channel_sid) {
            live.lock_workers().remove(&subscriber.sid);
        }
        self.commit(vec![subscriber.upsert()]).await?;
        self.start_worker(subscriber);
        Ok(())
    }

    pub async fn delete_subscriber(&self, subscriber: &Subscriber) -> ApiResult<()> {
        if let Some(live) = self.channel(&subscriber.account_sid, &subscriber.channel_sid) {
            live.lock_workers().remove(&subscriber.sid);
        }
        self.commit(vec![subscriber.delete()]).await
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    fn start_worker(&self, subscriber: Subscriber) {
        if subscriber.status != Status::Active || *self.inner.shutdown.borrow() {
            return;
        }
        let Some(live) = self.channel(&subscriber.account_sid, &subscriber.channel_sid) else {
            return;
        };
        let wake = Arc::new(Notify::new());
        let sid = subscriber.sid.clone();
        let task = tokio::spawn(delivery::run(
            self.clone(),
            live.clone(),
            subscriber,
            wake.clone(),
        ));
        live.lock_workers().insert(sid, Worker { wake, task });
    }

    /// Publishes a custom event to a channel that allows it; answers the stored event.
    pub async fn publish(
        &self,
        account_sid: &str,
        channel: &str,
        event_type: &str,
        data: Value,
    ) -> Result<Event, ApiError> {
        let live = self
            .channel(account_sid, channel)
            .ok_or_else(|| ApiError::not_found(channel))?;
        let (config, _) = live.current();
        if !config.allow_publish {
            return Err(ApiError::new(
                Code::PublishNotAllowed,
                format!(
                    "channel {} does not allow publishing; update it with AllowPublish=true first",
                    config.sid
                ),
            ));
        }
        let valid_type = !event_type.is_empty()
            && event_type.len() <= 128
            && event_type
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !valid_type {
            return Err(ApiError::invalid(format!(
                "type {event_type:?} must be 1 to 128 letters, digits, '.', '-' or '_'"
            )));
        }
        if !data.is_object() {
            return Err(ApiError::invalid("data must be a JSON object"));
        }
        if data.to_string().len() > MAX_CUSTOM_EVENT_BYTES {
            return Err(ApiError::new(
                Code::PayloadTooLarge,
                format!("an event's data may be at most {MAX_CUSTOM_EVENT_BYTES} bytes"),
            ));
        }
        let sid = new_sid("EV");
        let new = NewEvent {
            account_sid,
            event_type,
            source: format!("/v1/Channels/{}", config.sid),
            subject: None,
            time_ms: self.now(),
            data,
        };
        let statement = new.statement_with_sid(sid.clone(), Some(&config.sid));
        // The writer answers the sequence number the event was given: the stored event is
        // what was written, with its place in the log, and need not be read back.
        let sequence = self
            .commit_numbered(vec![statement])
            .await?
            .first()
            .copied()
            .ok_or_else(|| {
                ApiError::new(
                    Code::Unavailable,
                    "the event was committed but its sequence number was not reported",
                )
            })?;
        Ok(Event {
            sid,
            sequence,
            account_sid: new.account_sid.to_string(),
            event_type: new.event_type.to_string(),
            source: new.source,
            subject: None,
            time: rfc3339(new.time_ms),
            data: new.data,
            channel_sid: Some(config.sid.clone()),
            time_ms: new.time_ms,
        })
    }

    /// Follows the log: reads what committed since `position` and routes it, each time the writer
    /// announces events and once per [`POLL_INTERVAL`] in any case. The writer's announcement
    /// carries the head it committed, so the router reads nothing more to learn it; the poll reads
    /// the head from the log, which other hosts may have moved.
    async fn follow_log(self, mut position: i64) {
        let mut committed = self.inner.writer.events_committed();
        let mut stopping = self.stopping();
        let mut announced = None;
        loop {
            loop {
                match self.route_after(position, announced).await {
                    Ok((next, more)) => {
                        position = next;
                        if !more {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the event router could not read the log");
                        break;
                    }
                }
            }
            announced = None;
            tokio::select! {
                changed = committed.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(POLL_INTERVAL).await;
                    } else {
                        announced = Some(*committed.borrow_and_update());
                    }
                }
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = stopping.changed() => return,
            }
        }
    }

    /// Routes up to [`READ_BATCH`] events committed after `position`: the new position, and
    /// whether more are waiting. `head` is the log's committed head when the writer announced it;
    /// otherwise it is read. Only the events of accounts that have a channel are read, so the log
    /// of accounts without one (and of a host without any) costs the router nothing but knowing
    /// its head.
    ///
    /// The head is known before the accounts are listed. Sequence order is commit order, so every
    /// event up to the head had committed when the list was taken: an account missing from it had
    /// no channel then, and none of its channels can be owed those events.
    async fn route_after(
        &self,
        position: i64,
        head: Option<i64>,
    ) -> Result<(i64, bool), sqlx::Error> {
        let head = match head {
            Some(head) => head,
            None => last_sequence(&self.inner.db).await?,
        };
        if head <= position {
            return Ok((position, false));
        }
        let accounts: Vec<String> = self
            .read_channels()
            .iter()
            .filter(|(_, by_sid)| !by_sid.is_empty())
            .map(|(account_sid, _)| account_sid.clone())
            .collect();
        if accounts.is_empty() {
            return Ok((head, false));
        }
        let events = events_of_accounts(&self.inner.db, &accounts, position, head).await?;
        self.route(&events);
        match events.last() {
            Some(last) if events.len() as i64 == READ_BATCH => Ok((last.sequence, true)),
            _ => Ok((head, false)),
        }
    }

    /// Hands committed events to every matching channel of their accounts: to its live streams as
    /// runs (each event rendered once, however many channels and streams take it), and a wake-up
    /// to its durable subscribers, once for all the events.
    fn route(&self, events: &[Event]) {
        let channels = self.read_channels();
        let mut runs: HashMap<&str, (&LiveChannel, RunBuilder)> = HashMap::new();
        let mut matched: HashMap<&str, &LiveChannel> = HashMap::new();
        let mut frame = Vec::new();
        let mut routed = 0u64;
        for event in events {
            let Some(by_sid) = channels.get(&event.account_sid) else {
                continue;
            };
            let candidate = event.candidate();
            let mut json = None;
            for (sid, live) in by_sid {
                let (_, selector) = live.current();
                if !selector.matches(&candidate) {
                    continue;
                }
                routed += 1;
                matched.insert(sid, live);
                if live.hub.receiver_count() == 0 {
                    continue;
                }
                let json = json
                    .get_or_insert_with(|| stream::render_frame(event, &mut frame))
                    .clone();
                let (_, run) = runs
                    .entry(sid)
                    .or_insert_with(|| (live, RunBuilder::default()));
                run.push(event.sequence, &frame, json);
                if run.len() == RUN_LENGTH {
                    let _ = live.hub.send(Arc::new(run.finish()));
                }
            }
        }
        for (live, mut run) in runs.into_values() {
            if !run.is_empty() {
                let _ = live.hub.send(Arc::new(run.finish()));
            }
        }
        for live in matched.into_values() {
            for worker in live.lock_workers().values() {
                worker.wake.notify_one();
            }
        }
        metrics::counter!("switchboard_events_routed_total").increment(routed);
    }

    /// Deletes custom events that outlived their channel's retention, once a minute. Domain events
    /// stay in the log (the Events API and statistics read them); retention bounds how far back a
    /// stream may resume.
    async fn prune_custom_events(self) {
        let mut stopping = self.stopping();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = stopping.changed() => return,
            }
            let all: Vec<Arc<Channel>> = {
                let channels = self.read_channels();
                channels
                    .values()
                    .flat_map(|by_sid| by_sid.values().map(|c| c.current().0))
                    .collect()
            };
            for channel in all {
                let horizon = self.now() - channel.retention_seconds.saturating_mul(1000);
                let statement = Statement::new(
                    "DELETE FROM events WHERE channel_sid = $1 AND time < $2",
                    vec![channel.sid.clone().into(), horizon.into()],
                );
                if let Err(error) = self.inner.writer.submit(vec![statement]).wait().await {
                    tracing::warn!(%error, channel = %channel.sid, "expired custom events not pruned");
                }
            }
        }
    }
}
