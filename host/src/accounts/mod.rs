//! Tenants. An operator creates accounts; each authenticates with `AccountSid:AuthToken`, or with
//! one of its API keys as `KeySid:Secret` (as the reference's SDKs do when given a key), and may
//! carry its own invocation limits overriding the host's defaults.

pub mod api;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use moka::sync::Cache;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::config::{AccountSettings, Limits};
use crate::sid::{new_secret, new_sid};
use crate::store::{Db, now_ms, rfc3339};

/// Per-account overrides of the invocation limits; `None` keeps the host default.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct LimitOverrides {
    pub fuel: Option<u64>,
    pub deadline_ms: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub host_calls: Option<u64>,
}

impl LimitOverrides {
    /// The limits in force: each override, else the default.
    pub fn apply(&self, defaults: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.unwrap_or(defaults.fuel),
            deadline_ms: self.deadline_ms.unwrap_or(defaults.deadline_ms),
            memory_bytes: self.memory_bytes.unwrap_or(defaults.memory_bytes),
            host_calls: self.host_calls.unwrap_or(defaults.host_calls),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Active,
    Suspended,
}

impl AccountStatus {
    fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Suspended => "suspended",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(AccountStatus::Active),
            "suspended" => Some(AccountStatus::Suspended),
            _ => None,
        }
    }
}

/// An account as the API shows it. The auth token is never stored in clear, so it appears only in
/// the answer to the create call.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Account {
    pub sid: String,
    pub friendly_name: String,
    pub status: AccountStatus,
    pub limits: LimitOverrides,
    pub date_created: String,
    pub date_updated: String,
}

/// What changes on an update; `None` leaves a field as it is. A limit given as `Some(None)` goes back
/// to the host default.
#[derive(Debug, Default)]
pub struct AccountUpdate {
    pub friendly_name: Option<String>,
    pub status: Option<AccountStatus>,
    pub fuel: Option<Option<u64>>,
    pub deadline_ms: Option<Option<u64>>,
    pub memory_bytes: Option<Option<u64>>,
    pub host_calls: Option<Option<u64>>,
}

/// The accounts facade.
#[derive(Clone)]
pub struct Accounts {
    db: Db,
    verified: Verified,
}

/// Credentials checked recently, by account sid or API key sid. Every tenant request authenticates, and asking
/// the database each time costs a round trip to its connection's thread (a fifth of the CPU of a
/// busy host); an entry stands for its token's digest and the account as read, until it is older
/// than the configured time or this host changes the account.
#[derive(Clone)]
struct Verified {
    entries: Option<Cache<String, Arc<Credential>>>,
    /// Counts the accounts this host changed: a check that read the database before a change is
    /// not remembered after it, so a suspension cannot be undone by a request already in flight.
    changes: Arc<AtomicU64>,
    clock: Clock,
    lifetime_ms: i64,
}

struct Credential {
    token_sha256: String,
    account: Account,
    checked_ms: i64,
}

/// Accounts whose credentials are remembered at once; past it the least used are forgotten.
const VERIFIED_ACCOUNTS: u64 = 100_000;

impl Verified {
    fn new(settings: &AccountSettings, clock: Clock) -> Verified {
        let lifetime_ms = i64::try_from(settings.credential_cache_seconds.saturating_mul(1_000))
            .unwrap_or(i64::MAX);
        Verified {
            entries: (lifetime_ms > 0).then(|| Cache::new(VERIFIED_ACCOUNTS)),
            changes: Arc::new(AtomicU64::new(0)),
            clock,
            lifetime_ms,
        }
    }

    /// The account, when these credentials were verified recently enough.
    fn recall(&self, sid: &str, token_sha256: &str) -> Option<Account> {
        let credential = self.entries.as_ref()?.get(sid)?;
        let fresh = self.clock.now_ms().saturating_sub(credential.checked_ms) < self.lifetime_ms;
        let same = bool::from(
            credential
                .token_sha256
                .as_bytes()
                .ct_eq(token_sha256.as_bytes()),
        );
        (fresh && same).then(|| credential.account.clone())
    }

    /// Where the count of changes stands, before the database is read.
    fn mark(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    fn remember(&self, sid: &str, token_sha256: String, account: &Account, mark: u64) {
        if let Some(entries) = &self.entries {
            if self.mark() != mark {
                return;
            }
            let credential = Credential {
                token_sha256,
                account: account.clone(),
                checked_ms: self.clock.now_ms(),
            };
            entries.insert(sid.to_string(), Arc::new(credential));
            // A change that landed while inserting counts before it invalidates: one of the two
            // sees the other.
            if self.mark() != mark {
                entries.invalidate(sid);
            }
        }
    }

    /// Forgets one credential: a deleted API key.
    fn forget(&self, sid: &str) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        if let Some(entries) = &self.entries {
            entries.invalidate(sid);
        }
    }

    /// Forgets every credential, after an account changed: its API keys' entries carry the account
    /// too, and accounts change rarely (an operator's update), so no index from an account to its
    /// keys is kept.
    fn forget_all(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        if let Some(entries) = &self.entries {
            entries.invalidate_all();
        }
    }
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn to_i64(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

fn to_u64(value: Option<i64>) -> Option<u64> {
    value.map(|v| u64::try_from(v).unwrap_or(0))
}

const COLUMNS: &str = "sid, friendly_name, status, fuel_limit, deadline_ms, memory_limit_bytes, host_call_limit, date_created, date_updated";

/// [`COLUMNS`] of the account `a` in a join.
const KEYED_COLUMNS: &str = "a.sid, a.friendly_name, a.status, a.fuel_limit, a.deadline_ms, a.memory_limit_bytes, a.host_call_limit, a.date_created, a.date_updated";

fn account_from_row(row: &sqlx::any::AnyRow) -> Result<Account, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(Account {
        sid: row.try_get("sid")?,
        friendly_name: row.try_get("friendly_name")?,
        status: AccountStatus::parse(&status).unwrap_or(AccountStatus::Suspended),
        limits: LimitOverrides {
            fuel: to_u64(row.try_get("fuel_limit")?),
            deadline_ms: to_u64(row.try_get("deadline_ms")?),
            memory_bytes: to_u64(row.try_get("memory_limit_bytes")?),
            host_calls: to_u64(row.try_get("host_call_limit")?),
        },
        date_created: rfc3339(row.try_get("date_created")?),
        date_updated: rfc3339(row.try_get("date_updated")?),
    })
}

impl Accounts {
    pub fn new(db: Db, settings: &AccountSettings, clock: Clock) -> Self {
        Accounts {
            db,
            verified: Verified::new(settings, clock),
        }
    }

    /// Creates an account and returns it with its auth token, which is shown this once.
    pub async fn create(&self, friendly_name: &str) -> Result<(Account, String), sqlx::Error> {
        let sid = new_sid("AC");
        let token = new_secret(16);
        let now = now_ms();
        sqlx::query(
            "INSERT INTO accounts (sid, friendly_name, auth_token_sha256, status, date_created, date_updated) VALUES ($1, $2, $3, 'active', $4, $4)",
        )
        .bind(&sid)
        .bind(friendly_name)
        .bind(token_hash(&token))
        .bind(now)
        .execute(self.db.pool())
        .await?;
        let account = self.get(&sid).await?.ok_or(sqlx::Error::RowNotFound)?;
        Ok((account, token))
    }

    pub async fn get(&self, sid: &str) -> Result<Option<Account>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM accounts WHERE sid = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sid)
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    pub async fn list(&self) -> Result<Vec<Account>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM accounts ORDER BY date_created, sid");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(account_from_row).collect()
    }

    /// The active account whose credentials these are, if they are right: an account's sid and
    /// auth token, or an API key's sid (`SK...`) and secret. Credentials verified within the
    /// configured time are answered from memory; anything else (a first request, a different
    /// token, an expired entry) asks the database.
    pub async fn authenticate(
        &self,
        sid: &str,
        token: &str,
    ) -> Result<Option<Account>, sqlx::Error> {
        let presented = token_hash(token);
        if let Some(account) = self.verified.recall(sid, &presented) {
            return Ok(Some(account));
        }
        let mark = self.verified.mark();
        // One read for the check and the account. A key's secret is kept as is (it signs access
        // tokens), so its digest is taken here to compare like an auth token's.
        let by_key = crate::sid::is_sid("SK", sid);
        let sql = if by_key {
            format!(
                "SELECT {KEYED_COLUMNS}, k.secret AS key_secret FROM api_keys k JOIN accounts a ON a.sid = k.account_sid WHERE k.sid = $1"
            )
        } else {
            format!("SELECT {COLUMNS}, auth_token_sha256 FROM accounts WHERE sid = $1")
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sid)
            .fetch_optional(self.db.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let stored = if by_key {
            token_hash(&row.try_get::<String, _>("key_secret")?)
        } else {
            row.try_get("auth_token_sha256")?
        };
        if !bool::from(stored.as_bytes().ct_eq(presented.as_bytes())) {
            return Ok(None);
        }
        let account = account_from_row(&row)?;
        if account.status != AccountStatus::Active {
            self.verified.forget(sid);
            return Ok(None);
        }
        self.verified.remember(sid, presented, &account, mark);
        Ok(Some(account))
    }

    /// Stops a deleted API key's credentials at this host's next request.
    pub fn forget_key(&self, key_sid: &str) {
        self.verified.forget(key_sid);
    }

    pub async fn update(
        &self,
        sid: &str,
        update: AccountUpdate,
    ) -> Result<Option<Account>, sqlx::Error> {
        let Some(current) = self.get(sid).await? else {
            return Ok(None);
        };
        let limits = LimitOverrides {
            fuel: update.fuel.unwrap_or(current.limits.fuel),
            deadline_ms: update.deadline_ms.unwrap_or(current.limits.deadline_ms),
            memory_bytes: update.memory_bytes.unwrap_or(current.limits.memory_bytes),
            host_calls: update.host_calls.unwrap_or(current.limits.host_calls),
        };
        sqlx::query(
            "UPDATE accounts SET friendly_name = $2, status = $3, fuel_limit = $4, deadline_ms = $5, memory_limit_bytes = $6, host_call_limit = $7, date_updated = $8 WHERE sid = $1",
        )
        .bind(sid)
        .bind(update.friendly_name.unwrap_or(current.friendly_name))
        .bind(update.status.unwrap_or(current.status).as_str())
        .bind(to_i64(limits.fuel))
        .bind(to_i64(limits.deadline_ms))
        .bind(to_i64(limits.memory_bytes))
        .bind(to_i64(limits.host_calls))
        .bind(now_ms())
        .execute(self.db.pool())
        .await?;
        // A suspension must stop the next request, not one a cache lifetime later, also for the
        // account's API keys.
        self.verified.forget_all();
        self.get(sid).await
    }
}
