//! What a guest can reach: the per-invocation store data and the host side of every WIT interface.
//!
//! Each interface is a thin adapter onto its domain's facade, scoped to the invocation's account:
//! `kv` and `log` here, `queues`, `distribution`, `presence`, `media` and `events` in their domains.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Row;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{distribution, events, kv, log, media, presence, queues, types};
use super::limits::{HostCallLimitExceeded, MemoryBudget};
use crate::store::Db;

/// Longest key a module may store, in bytes.
pub const KV_MAX_KEY_BYTES: usize = 512;
/// Largest value a module may store, in bytes.
pub const KV_MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most keys one account may hold.
pub const KV_MAX_KEYS: i64 = 100_000;
/// Bytes of a guest's stderr kept for error reports (panic messages land there).
const STDERR_CAPACITY: usize = 16 * 1024;

/// Long-lived services host functions call into, shared by every invocation.
pub struct HostServices {
    pub db: Db,
    pub queues: crate::queues::Queues,
    pub routing: crate::routing::Routing,
    pub events: crate::events::Events,
    pub media: crate::media::MediaClient,
    pub presence: crate::presence::Presence,
}

/// Who is running: the account and module an invocation belongs to, for scoping and logging.
#[derive(Debug, Clone)]
pub struct Principal {
    pub account_sid: String,
    pub module_name: String,
    pub module_version: i64,
}

/// The data of one invocation's `Store`: created fresh for every call, dropped after it.
pub struct Invocation {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    pub(super) memory: MemoryBudget,
    pub(super) host_calls: u64,
    /// Characters synthesized at this invocation's request, for its usage record.
    pub(super) tts_characters: u64,
    host_call_limit: u64,
    pub(super) deadline: Instant,
    principal: Arc<Principal>,
    services: Arc<HostServices>,
}

impl Invocation {
    pub(super) fn new(
        services: Arc<HostServices>,
        principal: Arc<Principal>,
        memory_limit: u64,
        host_call_limit: u64,
        deadline: Instant,
    ) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // No preopened directories, no sockets, no environment: a module reaches the world only
        // through the platform interfaces.
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        Invocation {
            wasi,
            table: ResourceTable::new(),
            stderr,
            memory: MemoryBudget::new(usize::try_from(memory_limit).unwrap_or(usize::MAX)),
            host_calls: 0,
            tts_characters: 0,
            host_call_limit,
            deadline,
            principal,
            services,
        }
    }

    /// What the guest wrote to stderr, e.g. a panic message.
    pub(super) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents())
            .trim()
            .to_string()
    }

    /// Counts a host call against the invocation's budget; past it the guest traps.
    fn charge(&mut self) -> wasmtime::Result<()> {
        self.host_calls += 1;
        if self.host_calls > self.host_call_limit {
            return Err(HostCallLimitExceeded {
                limit: self.host_call_limit,
            }
            .into());
        }
        Ok(())
    }

    /// The kv store as this invocation may use it. Its operations are bounded by the invocation's
    /// deadline, since epoch interruption cannot stop the host while it waits on I/O.
    fn kv(&self) -> KvScope {
        KvScope {
            services: self.services.clone(),
            principal: self.principal.clone(),
            deadline: self.deadline,
        }
    }

    /// Awaits host I/O within the invocation's deadline (epoch interruption cannot stop the host
    /// while it waits).
    async fn within_deadline<T>(
        deadline: Instant,
        work: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(remaining, work)
            .await
            .unwrap_or_else(
                |_| Err("the invocation's deadline passed while the host worked".into()),
            )
    }
}

impl WasiView for Invocation {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for Invocation {}

fn kv_unavailable(error: impl std::fmt::Display) -> kv::KvError {
    tracing::warn!(%error, "kv store error");
    kv::KvError::Unavailable("the key-value store did not answer; nothing was changed".into())
}

fn check_key(key: &str) -> Result<(), kv::KvError> {
    if key.is_empty() {
        return Err(kv::KvError::InvalidKey("keys must not be empty".into()));
    }
    if key.len() > KV_MAX_KEY_BYTES {
        return Err(kv::KvError::InvalidKey(format!(
            "key is {} bytes; the limit is {KV_MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

/// What a kv operation needs, detached from the store data (which is not `Sync`) so the operation
/// can await I/O.
struct KvScope {
    services: Arc<HostServices>,
    principal: Arc<Principal>,
    deadline: Instant,
}

impl KvScope {
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, kv::KvError> {
        check_key(key)?;
        let query = sqlx::query("SELECT value FROM kv_entries WHERE account_sid = $1 AND key = $2")
            .bind(&self.principal.account_sid)
            .bind(key)
            .fetch_optional(self.services.db.pool());
        let row = tokio::time::timeout(self.remaining(), query)
            .await
            .map_err(kv_unavailable)?
            .map_err(kv_unavailable)?;
        row.map(|row| row.try_get::<Vec<u8>, _>("value"))
            .transpose()
            .map_err(kv_unavailable)
    }

    async fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), kv::KvError> {
        check_key(key)?;
        if value.len() > KV_MAX_VALUE_BYTES {
            return Err(kv::KvError::TooLarge(format!(
                "value is {} bytes; the limit is {KV_MAX_VALUE_BYTES}",
                value.len()
            )));
        }
        let pool = self.services.db.pool();
        let account = &self.principal.account_sid;
        let work = async {
            let updated =
                sqlx::query("UPDATE kv_entries SET value = $3 WHERE account_sid = $1 AND key = $2")
                    .bind(account)
                    .bind(key)
                    .bind(value)
                    .execute(pool)
                    .await?;
            if updated.rows_affected() > 0 {
                return Ok(Ok(()));
            }
            let count: i64 = sqlx::query_scalar(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM kv_entries WHERE account_sid = $1",
            )
            .bind(account)
            .fetch_one(pool)
            .await?;
            if count >= KV_MAX_KEYS {
                return Ok(Err(kv::KvError::QuotaExceeded(format!(
                    "the account holds {count} keys; the limit is {KV_MAX_KEYS}"
                ))));
            }
            sqlx::query(
                "INSERT INTO kv_entries (account_sid, key, value) VALUES ($1, $2, $3) ON CONFLICT (account_sid, key) DO UPDATE SET value = excluded.value",
            )
            .bind(account)
            .bind(key)
            .bind(value)
            .execute(pool)
            .await?;
            Ok::<_, sqlx::Error>(Ok(()))
        };
        tokio::time::timeout(self.remaining(), work)
            .await
            .map_err(kv_unavailable)?
            .map_err(kv_unavailable)?
    }

    async fn kv_delete(&self, key: &str) -> Result<bool, kv::KvError> {
        check_key(key)?;
        let query = sqlx::query("DELETE FROM kv_entries WHERE account_sid = $1 AND key = $2")
            .bind(&self.principal.account_sid)
            .bind(key)
            .execute(self.services.db.pool());
        let done = tokio::time::timeout(self.remaining(), query)
            .await
            .map_err(kv_unavailable)?
            .map_err(kv_unavailable)?;
        Ok(done.rows_affected() > 0)
    }

    /// A compare-and-swap loop, so concurrent invocations never lose an increment on either backend.
    async fn kv_increment(&self, key: &str, delta: i64) -> Result<i64, kv::KvError> {
        check_key(key)?;
        let pool = self.services.db.pool();
        let account = &self.principal.account_sid;
        let work = async {
            loop {
                let current: Option<Vec<u8>> = sqlx::query_scalar(
                    "SELECT value FROM kv_entries WHERE account_sid = $1 AND key = $2",
                )
                .bind(account)
                .bind(key)
                .fetch_optional(pool)
                .await?;
                let old = match &current {
                    None => 0,
                    Some(bytes) => match std::str::from_utf8(bytes)
                        .ok()
                        .and_then(|t| t.parse::<i64>().ok())
                    {
                        Some(value) => value,
                        None => {
                            return Ok(Err(kv::KvError::InvalidKey(format!(
                                "the value of {key:?} is not a decimal integer, so it cannot be incremented"
                            ))));
                        }
                    },
                };
                let new = old.saturating_add(delta);
                let new_bytes = new.to_string().into_bytes();
                let swapped = match current {
                    None => sqlx::query(
                        "INSERT INTO kv_entries (account_sid, key, value) VALUES ($1, $2, $3) ON CONFLICT (account_sid, key) DO NOTHING",
                    )
                    .bind(account)
                    .bind(key)
                    .bind(new_bytes)
                    .execute(pool)
                    .await?,
                    Some(old_bytes) => sqlx::query(
                        "UPDATE kv_entries SET value = $3 WHERE account_sid = $1 AND key = $2 AND value = $4",
                    )
                    .bind(account)
                    .bind(key)
                    .bind(new_bytes)
                    .bind(old_bytes)
                    .execute(pool)
                    .await?,
                };
                if swapped.rows_affected() == 1 {
                    return Ok::<_, sqlx::Error>(Ok(new));
                }
            }
        };
        tokio::time::timeout(self.remaining(), work)
            .await
            .map_err(kv_unavailable)?
            .map_err(kv_unavailable)?
    }

    async fn kv_list(&self, prefix: &str, limit: u32) -> Result<Vec<String>, kv::KvError> {
        // Prefix match by range rather than LIKE, so `%` and `_` in keys need no escaping.
        let mut upper = prefix.to_string();
        upper.push(char::MAX);
        let query = sqlx::query_scalar(
            "SELECT key FROM kv_entries WHERE account_sid = $1 AND key >= $2 AND key < $3 ORDER BY key LIMIT $4",
        )
        .bind(&self.principal.account_sid)
        .bind(prefix)
        .bind(upper)
        .bind(i64::from(limit.min(1_000)))
        .fetch_all(self.services.db.pool());
        tokio::time::timeout(self.remaining(), query)
            .await
            .map_err(kv_unavailable)?
            .map_err(kv_unavailable)
    }
}

impl kv::Host for Invocation {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, kv::KvError>> {
        self.charge()?;
        Ok(self.kv().kv_get(&key).await)
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv::KvError>> {
        self.charge()?;
        Ok(self.kv().kv_set(&key, &value).await)
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, kv::KvError>> {
        self.charge()?;
        Ok(self.kv().kv_delete(&key).await)
    }

    async fn increment(
        &mut self,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, kv::KvError>> {
        self.charge()?;
        Ok(self.kv().kv_increment(&key, delta).await)
    }

    async fn list_keys(
        &mut self,
        prefix: String,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<String>, kv::KvError>> {
        self.charge()?;
        Ok(self.kv().kv_list(&prefix, limit).await)
    }
}

/// Longest log message kept, so a guest cannot flood the host's logs with one call.
const LOG_MAX_BYTES: usize = 4 * 1024;

impl log::Host for Invocation {
    async fn log(
        &mut self,
        level: log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        self.charge()?;
        let mut message = message;
        if message.len() > LOG_MAX_BYTES {
            let mut cut = LOG_MAX_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let principal = &self.principal;
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "switchboard::guest",
                    $level,
                    account = %principal.account_sid,
                    module = %principal.module_name,
                    version = principal.module_version,
                    fields = ?fields,
                    "{message}"
                )
            };
        }
        match level {
            log::Level::Trace => emit!(tracing::Level::TRACE),
            log::Level::Debug => emit!(tracing::Level::DEBUG),
            log::Level::Info => emit!(tracing::Level::INFO),
            log::Level::Warn => emit!(tracing::Level::WARN),
            log::Level::Error => emit!(tracing::Level::ERROR),
        }
        Ok(())
    }
}

impl Invocation {
    /// The sid of the account's queue named `name`.
    fn queue_sid(&self, name: &str) -> Result<String, String> {
        self.services
            .queues
            .find_by_name(&self.principal.account_sid, name)
            .map(|queue| queue.sid)
            .ok_or_else(|| format!("this account has no queue named {name:?}"))
    }
}

impl queues::Host for Invocation {
    async fn enqueue(
        &mut self,
        _queue: String,
        _call_sid: String,
        _priority: i32,
    ) -> wasmtime::Result<Result<u32, String>> {
        self.charge()?;
        Ok(Err(
            "a call joins a queue by running an enqueue instruction: return one from the call's telephony handler"
                .into(),
        ))
    }

    async fn dequeue(
        &mut self,
        queue: String,
        uri: String,
    ) -> wasmtime::Result<Result<Option<String>, String>> {
        self.charge()?;
        let queue_sid = match self.queue_sid(&queue) {
            Ok(sid) => sid,
            Err(message) => return Ok(Err(message)),
        };
        if let Err(error) = crate::telephony::resources::check_uri("uri", &uri) {
            return Ok(Err(error.message));
        }
        let taken = self.services.queues.take_out_redirected(
            &self.principal.account_sid,
            &queue_sid,
            crate::queues::MemberRef::Front,
            &uri,
            "POST",
        );
        let (member, committed) = match taken {
            Ok(taken) => taken,
            Err(error) if error.code == crate::api::error::Code::NotFound => return Ok(Ok(None)),
            Err(error) => return Ok(Err(error.message)),
        };
        // The caller is already on its way to `uri`; only the acknowledgement waits for the
        // commit, and not past the invocation's deadline.
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        Ok(
            match tokio::time::timeout(remaining, committed.wait()).await {
                Ok(Ok(())) => Ok(Some(member.call_sid)),
                Ok(Err(error)) => Err(format!(
                    "call {} left queue {queue_sid} and was redirected, but its leaving could not be stored ({error})",
                    member.call_sid
                )),
                Err(_) => Err(format!(
                    "call {} left queue {queue_sid} and was redirected, but its leaving was not yet committed at the invocation's deadline",
                    member.call_sid
                )),
            },
        )
    }

    async fn position(
        &mut self,
        queue: String,
        call_sid: String,
    ) -> wasmtime::Result<Result<Option<u32>, String>> {
        self.charge()?;
        let queue_sid = match self.queue_sid(&queue) {
            Ok(sid) => sid,
            Err(message) => return Ok(Err(message)),
        };
        let member = self.services.queues.member(
            &self.principal.account_sid,
            &queue_sid,
            &crate::queues::MemberRef::Call(call_sid),
        );
        Ok(Ok(member
            .flatten()
            .map(|m| u32::try_from(m.position).unwrap_or(u32::MAX))))
    }

    async fn info(
        &mut self,
        queue: String,
    ) -> wasmtime::Result<Result<Option<queues::QueueInfo>, String>> {
        self.charge()?;
        let Ok(queue_sid) = self.queue_sid(&queue) else {
            return Ok(Ok(None));
        };
        let info = self
            .services
            .queues
            .get(&self.principal.account_sid, &queue_sid)
            .map(|q| queues::QueueInfo {
                sid: q.sid,
                name: q.friendly_name,
                current_size: u32::try_from(q.current_size).unwrap_or(u32::MAX),
                max_size: u32::try_from(q.max_size).unwrap_or(u32::MAX),
                average_wait_seconds: u32::try_from(q.average_wait_time).unwrap_or(u32::MAX),
            });
        Ok(Ok(info))
    }

    async fn members(
        &mut self,
        queue: String,
    ) -> wasmtime::Result<Result<Vec<queues::Member>, String>> {
        self.charge()?;
        let queue_sid = match self.queue_sid(&queue) {
            Ok(sid) => sid,
            Err(message) => return Ok(Err(message)),
        };
        let members = self
            .services
            .queues
            .members(&self.principal.account_sid, &queue_sid)
            .unwrap_or_default()
            .into_iter()
            .map(|m| queues::Member {
                call_sid: m.call_sid,
                position: u32::try_from(m.position).unwrap_or(u32::MAX),
                wait_seconds: u32::try_from(m.wait_time).unwrap_or(u32::MAX),
                priority: m.priority,
            })
            .collect();
        Ok(Ok(members))
    }
}

impl distribution::Host for Invocation {
    async fn create_task(
        &mut self,
        workspace_sid: String,
        workflow_sid: String,
        attributes: String,
        priority: Option<i32>,
        timeout_seconds: Option<u32>,
    ) -> wasmtime::Result<Result<types::Task, String>> {
        self.charge()?;
        let routing = self.services.routing.clone();
        let account_sid = self.principal.account_sid.clone();
        let created = routing.guest_create_task(
            &account_sid,
            &workspace_sid,
            &workflow_sid,
            &attributes,
            priority,
            timeout_seconds,
        );
        Ok(Self::within_deadline(self.deadline, created).await)
    }

    async fn update_task(
        &mut self,
        workspace_sid: String,
        task_sid: String,
        attributes: Option<String>,
        priority: Option<i32>,
    ) -> wasmtime::Result<Result<types::Task, String>> {
        self.charge()?;
        let routing = self.services.routing.clone();
        let account_sid = self.principal.account_sid.clone();
        let updated = routing.guest_update_task(
            &account_sid,
            &workspace_sid,
            &task_sid,
            attributes.as_deref(),
            priority,
        );
        Ok(Self::within_deadline(self.deadline, updated).await)
    }

    async fn get_task(
        &mut self,
        workspace_sid: String,
        task_sid: String,
    ) -> wasmtime::Result<Result<Option<types::Task>, String>> {
        self.charge()?;
        Ok(self
            .services
            .routing
            .guest_task(&self.principal.account_sid, &workspace_sid, &task_sid))
    }

    async fn get_worker(
        &mut self,
        workspace_sid: String,
        worker_sid: String,
    ) -> wasmtime::Result<Result<Option<types::Worker>, String>> {
        self.charge()?;
        Ok(self.services.routing.guest_worker(
            &self.principal.account_sid,
            &workspace_sid,
            &worker_sid,
        ))
    }

    async fn list_workers(
        &mut self,
        workspace_sid: String,
        expression: Option<String>,
    ) -> wasmtime::Result<Result<Vec<types::Worker>, String>> {
        self.charge()?;
        Ok(self.services.routing.guest_workers(
            &self.principal.account_sid,
            &workspace_sid,
            expression.as_deref(),
        ))
    }

    async fn instruct_reservation(
        &mut self,
        workspace_sid: String,
        reservation_sid: String,
        instruction: String,
    ) -> wasmtime::Result<Result<(), String>> {
        self.charge()?;
        let routing = self.services.routing.clone();
        let account_sid = self.principal.account_sid.clone();
        let done =
            routing.guest_instruct(&account_sid, &workspace_sid, &reservation_sid, &instruction);
        Ok(Self::within_deadline(self.deadline, done).await)
    }

    async fn get_queue_statistics(
        &mut self,
        workspace_sid: String,
        queue: String,
    ) -> wasmtime::Result<Result<distribution::QueueStatistics, String>> {
        self.charge()?;
        Ok(self.services.routing.guest_queue_statistics(
            &self.principal.account_sid,
            &workspace_sid,
            &queue,
        ))
    }
}

impl presence::Host for Invocation {
    async fn lookup(
        &mut self,
        identity: String,
    ) -> wasmtime::Result<Result<presence::PresenceStatus, String>> {
        self.charge()?;
        let status = self
            .services
            .presence
            .lookup(&self.principal.account_sid, &identity);
        Ok(Ok(presence::PresenceStatus {
            identity: status.identity().to_string(),
            online: status.online(),
            endpoints: status
                .endpoints()
                .map(|endpoint| presence::Endpoint {
                    id: endpoint.id,
                    connected_at: crate::store::rfc3339(endpoint.connected_at),
                })
                .collect(),
        }))
    }
}

/// The media layer's answer as the WIT record (durations past `u32::MAX` ms, 49 days, saturate).
fn media_info(info: crate::media::MediaInfo) -> media::MediaInfo {
    media::MediaInfo {
        duration_ms: u32::try_from(info.duration_ms).unwrap_or(u32::MAX),
        id: info.id,
        url: info.url,
    }
}

/// The media layer's work runs as a task of its own, so an invocation whose deadline passes while
/// it waits stops waiting but the fetch or synthesis still completes and is cached for the next ask.
impl media::Host for Invocation {
    async fn resolve_url(
        &mut self,
        url: String,
    ) -> wasmtime::Result<Result<media::MediaInfo, String>> {
        self.charge()?;
        let media = self.services.media.clone();
        let work = async move {
            media
                .resolve_url(&url)
                .await
                .map(media_info)
                .map_err(|error| error.message)
        };
        Ok(Self::within_deadline(self.deadline, work).await)
    }

    async fn synthesize(
        &mut self,
        text: String,
        voice: Option<String>,
        language: Option<String>,
    ) -> wasmtime::Result<Result<media::MediaInfo, String>> {
        self.charge()?;
        let media = self.services.media.clone();
        let characters = text.chars().count() as u64;
        let work = async move {
            media
                .synthesize(&text, voice.as_deref(), language.as_deref())
                .await
                .map(media_info)
                .map_err(|error| error.message)
        };
        let synthesized = Self::within_deadline(self.deadline, work).await;
        if synthesized.is_ok() {
            self.tts_characters += characters;
        }
        Ok(synthesized)
    }

    async fn duration(&mut self, id: String) -> wasmtime::Result<Result<Option<u32>, String>> {
        self.charge()?;
        let media = self.services.media.clone();
        let work = async move {
            media
                .describe(&id)
                .await
                .map(|info| info.map(|info| u32::try_from(info.duration_ms).unwrap_or(u32::MAX)))
                .map_err(|error| error.message)
        };
        Ok(Self::within_deadline(self.deadline, work).await)
    }
}

impl events::Host for Invocation {
    async fn publish(
        &mut self,
        channel: String,
        type_: String,
        data: String,
    ) -> wasmtime::Result<Result<u64, String>> {
        self.charge()?;
        let data: serde_json::Value = match serde_json::from_str(&data) {
            Ok(data) => data,
            Err(error) => return Ok(Err(format!("data is not JSON: {error}"))),
        };
        let events = self.services.events.clone();
        let account_sid = self.principal.account_sid.clone();
        let published = async move {
            events
                .publish(&account_sid, &channel, &type_, data)
                .await
                .map(|event| u64::try_from(event.sequence).unwrap_or(0))
                .map_err(|error| error.message)
        };
        Ok(Self::within_deadline(self.deadline, published).await)
    }
}
