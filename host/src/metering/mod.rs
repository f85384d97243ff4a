//! Usage records: one per module invocation, committed through the host's group-commit writer.
//!
//! An invocation hands its record to [`Meter::record`] and gets a [`Committed`] handle back. The
//! record is a row appended in the writer's next batch, with the event announcing a failed
//! invocation, so it commits in one transaction with whatever state changes are waiting. Callers
//! that acknowledge work to a user await the handle, so nothing is acknowledged before its usage
//! is durable, while the hot path pays for one channel send instead of a transaction.

pub mod api;

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use crate::runtime::{Outcome, World};
use crate::store::Db;
use crate::store::batch::{Statement, Writer};

/// What one invocation used.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageRecord {
    pub account_sid: String,
    pub module_sid: String,
    pub module_name: String,
    pub module_version: i64,
    pub world: World,
    /// Instructions executed.
    pub fuel_consumed: u64,
    pub wall_time_us: u64,
    /// Most bytes of memory and tables held at once.
    pub peak_memory_bytes: u64,
    pub host_calls: u64,
    /// Characters the module had synthesized to speech through the `media` interface.
    pub tts_characters: u64,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_sid: Option<String>,
    /// Unix milliseconds.
    #[serde(skip)]
    pub date_created: i64,
}

pub use crate::store::batch::{Committed, NotCommitted};

/// Records usage. Cheap to clone.
#[derive(Clone)]
pub struct Meter {
    writer: Writer,
}

impl Meter {
    pub fn new(writer: Writer) -> Meter {
        Meter { writer }
    }

    /// Queues a record (and, for a failed invocation, its event) for the writer's next batch.
    pub fn record(&self, usage: &UsageRecord) -> Committed {
        let mut change = vec![usage_row(usage)];
        if usage.outcome != Outcome::Ok {
            change.push(failure_event(usage).statement());
        }
        metrics::counter!("switchboard_usage_records_total").increment(1);
        self.writer.submit(change)
    }

    /// Waits until every record queued before this call is committed.
    pub async fn flush(&self) {
        self.writer.flush().await;
    }
}

/// A usage record's row in `usage_records`.
fn usage_row(record: &UsageRecord) -> Statement {
    Statement::append(
        "usage_records",
        "account_sid, module_sid, module_name, module_version, world, fuel_consumed, wall_time_us, peak_memory_bytes, host_calls, tts_characters, outcome, call_sid, task_sid, date_created",
        vec![
            record.account_sid.clone().into(),
            record.module_sid.clone().into(),
            record.module_name.clone().into(),
            record.module_version.into(),
            record.world.as_str().into(),
            saturating_i64(record.fuel_consumed).into(),
            saturating_i64(record.wall_time_us).into(),
            saturating_i64(record.peak_memory_bytes).into(),
            saturating_i64(record.host_calls).into(),
            saturating_i64(record.tts_characters).into(),
            record.outcome.as_str().into(),
            record.call_sid.clone().into(),
            record.task_sid.clone().into(),
            record.date_created.into(),
        ],
    )
}

/// The event announcing a failed invocation: a limit the module reached (its quota of fuel, time,
/// memory or host calls), a trap, or an error it returned.
fn failure_event(record: &UsageRecord) -> crate::events::NewEvent<'_> {
    let event_type = match record.outcome {
        Outcome::OutOfFuel | Outcome::Deadline | Outcome::MemoryLimit | Outcome::HostCallLimit => {
            "module.limit-reached"
        }
        Outcome::GuestError => "module.guest-error",
        Outcome::HostError => "module.host-error",
        _ => "module.trapped",
    };
    crate::events::NewEvent {
        account_sid: &record.account_sid,
        event_type,
        source: format!("/v1/Modules/{}", record.module_name),
        subject: Some(&record.module_sid),
        time_ms: record.date_created,
        data: serde_json::json!({
            "module_sid": record.module_sid,
            "module_name": record.module_name,
            "module_version": record.module_version,
            "world": record.world.as_str(),
            "outcome": record.outcome.as_str(),
            "fuel_consumed": record.fuel_consumed,
            "wall_time_us": record.wall_time_us,
            "peak_memory_bytes": record.peak_memory_bytes,
            "host_calls": record.host_calls,
            "call_sid": record.call_sid,
            "task_sid": record.task_sid,
        }),
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Totals for one module version over a time range.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModuleUsage {
    pub module_name: String,
    pub module_version: i64,
    pub world: String,
    pub invocations: i64,
    pub fuel_consumed: i64,
    pub wall_time_us: i64,
    /// The largest peak of any single invocation.
    pub peak_memory_bytes: i64,
    pub host_calls: i64,
    /// Characters synthesized to speech at the module's own request.
    pub tts_characters: i64,
    /// Invocations per outcome (`ok`, `guest-error`, `out-of-fuel`, `deadline`, ...).
    pub outcomes: BTreeMap<String, i64>,
    /// Milliseconds calls spent under this module's control (the sum of its call segments).
    pub call_ms: i64,
    /// `call_ms` in seconds.
    pub call_seconds: f64,
}

/// Which usage to total.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    /// Unix milliseconds, inclusive.
    pub start: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub end: Option<i64>,
    pub module_name: Option<String>,
}

/// Totals per module and version for one account, ordered by name then version.
pub async fn module_totals(
    db: &Db,
    account_sid: &str,
    filter: &UsageFilter,
) -> Result<Vec<ModuleUsage>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT module_name, module_version, world, outcome, \
            CAST(COUNT(*) AS BIGINT) AS invocations, \
            CAST(SUM(fuel_consumed) AS BIGINT) AS fuel_consumed, \
            CAST(SUM(wall_time_us) AS BIGINT) AS wall_time_us, \
            CAST(MAX(peak_memory_bytes) AS BIGINT) AS peak_memory_bytes, \
            CAST(SUM(host_calls) AS BIGINT) AS host_calls, \
            CAST(SUM(tts_characters) AS BIGINT) AS tts_characters \
         FROM usage_records \
         WHERE account_sid = $1 AND date_created >= $2 AND date_created < $3 \
           AND ($4 = '' OR module_name = $4) \
         GROUP BY module_name, module_version, world, outcome \
         ORDER BY module_name, module_version",
    )
    .bind(account_sid)
    .bind(filter.start.unwrap_or(i64::MIN))
    .bind(filter.end.unwrap_or(i64::MAX))
    .bind(filter.module_name.clone().unwrap_or_default())
    .fetch_all(db.pool())
    .await?;
    let mut totals: Vec<ModuleUsage> = Vec::new();
    for row in rows {
        let name: String = row.try_get("module_name")?;
        let version: i64 = row.try_get("module_version")?;
        let outcome: String = row.try_get("outcome")?;
        let invocations: i64 = row.try_get("invocations")?;
        let fuel: i64 = row.try_get("fuel_consumed")?;
        let wall: i64 = row.try_get("wall_time_us")?;
        let peak: i64 = row.try_get("peak_memory_bytes")?;
        let host_calls: i64 = row.try_get("host_calls")?;
        let tts_characters: i64 = row.try_get("tts_characters")?;
        let entry = match totals.last_mut() {
            Some(last) if last.module_name == name && last.module_version == version => last,
            _ => {
                totals.push(ModuleUsage {
                    module_name: name,
                    module_version: version,
                    world: row.try_get("world")?,
                    invocations: 0,
                    fuel_consumed: 0,
                    wall_time_us: 0,
                    peak_memory_bytes: 0,
                    host_calls: 0,
                    tts_characters: 0,
                    outcomes: BTreeMap::new(),
                    call_ms: 0,
                    call_seconds: 0.0,
                });
                totals.last_mut().ok_or(sqlx::Error::RowNotFound)?
            }
        };
        entry.invocations += invocations;
        entry.fuel_consumed += fuel;
        entry.wall_time_us += wall;
        entry.peak_memory_bytes = entry.peak_memory_bytes.max(peak);
        entry.host_calls += host_calls;
        entry.tts_characters += tts_characters;
        *entry.outcomes.entry(outcome).or_default() += invocations;
    }
    let segments = sqlx::query(
        "SELECT module_name, module_version, CAST(SUM(ended_at - started_at) AS BIGINT) AS call_ms \
         FROM call_segments \
         WHERE account_sid = $1 AND module_name IS NOT NULL AND ended_at IS NOT NULL \
           AND started_at >= $2 AND started_at < $3 AND ($4 = '' OR module_name = $4) \
         GROUP BY module_name, module_version",
    )
    .bind(account_sid)
    .bind(filter.start.unwrap_or(i64::MIN))
    .bind(filter.end.unwrap_or(i64::MAX))
    .bind(filter.module_name.clone().unwrap_or_default())
    .fetch_all(db.pool())
    .await?;
    for row in segments {
        let name: String = row.try_get("module_name")?;
        let version: i64 = row.try_get("module_version")?;
        let call_ms: i64 = row.try_get("call_ms")?;
        if let Some(entry) = totals
            .iter_mut()
            .find(|t| t.module_name == name && t.module_version == version)
        {
            entry.call_ms = call_ms;
            entry.call_seconds = call_ms as f64 / 1000.0;
        }
    }
    Ok(totals)
}

/// Records per account, for tests and the benchmark to check every record arrived.
pub async fn count_records(db: &Db, account_sid: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM usage_records WHERE account_sid = $1")
        .bind(account_sid)
        .fetch_one(db.pool())
        .await
}
