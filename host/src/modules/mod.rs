//! The module registry: immutable, numbered versions of each tenant module, their source bytes,
//! and the way from a `module:NAME@VERSION` URI to something the runtime can invoke.
//!
//! An upload is validated and compiled before anything is stored, so a rejected upload changes
//! nothing. Source bytes live in the database (content-addressed and shared between versions and
//! accounts), so any host on the same database can compile a module it has not seen.

pub mod api;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::accounts::Account;
use crate::api::error::{ApiError, Code};
use crate::config::{Limits, ModuleSettings};
use crate::runtime::{Principal, Rejection, Runtime, Target, World};
use crate::sid::new_sid;
use crate::store::{Db, now_ms, rfc3339};

/// One immutable version of a module.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModuleVersion {
    pub sid: String,
    pub account_sid: String,
    pub name: String,
    pub version: i64,
    pub kind: World,
    pub sha256: String,
    pub size: i64,
    pub date_created: String,
    /// The URI that names exactly this version wherever a handler URL is accepted.
    pub uri: String,
    pub url: String,
}

/// A parsed `module:NAME` or `module:NAME@VERSION` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleUri {
    pub name: String,
    /// `None` = the latest version at the time of use.
    pub version: Option<i64>,
}

impl ModuleUri {
    /// Parses a module URI; `None` when `text` is not one (an http URL, say).
    pub fn parse(text: &str) -> Option<Result<ModuleUri, String>> {
        let rest = text.strip_prefix("module:")?;
        let (name, version) = match rest.split_once('@') {
            Some((name, version)) => match version.parse::<i64>() {
                Ok(v) if v > 0 => (name, Some(v)),
                _ => {
                    return Some(Err(format!(
                        "{text:?}: the version after @ must be a positive whole number"
                    )));
                }
            },
            None => (rest, None),
        };
        Some(check_name(name).map(|()| ModuleUri {
            name: name.to_string(),
            version,
        }))
    }
}

/// Names appear in URIs (`module:NAME@3`) and URL paths, so they are kept to a safe alphabet.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "module name {name:?} is not valid: use 1 to 64 lowercase letters, digits, '-' or '_', starting with a letter or digit"
        ))
    }
}

/// The registry facade.
#[derive(Clone)]
pub struct Registry {
    db: Db,
    runtime: Arc<Runtime>,
    settings: ModuleSettings,
    defaults: Limits,
}

const COLUMNS: &str = "sid, account_sid, name, version, kind, sha256, size, date_created";

fn version_from_row(row: &sqlx::any::AnyRow) -> Result<ModuleVersion, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let name: String = row.try_get("name")?;
    let version: i64 = row.try_get("version")?;
    Ok(ModuleVersion {
        sid: row.try_get("sid")?,
        account_sid: row.try_get("account_sid")?,
        kind: World::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown module kind {kind:?}").into()))?,
        sha256: row.try_get("sha256")?,
        size: row.try_get("size")?,
        date_created: rfc3339(row.try_get("date_created")?),
        uri: format!("module:{name}@{version}"),
        url: format!("/v1/Modules/{name}/Versions/{version}"),
        name,
        version,
    })
}

fn rejection_error(rejection: Rejection) -> ApiError {
    match rejection {
        Rejection::NotWasm(_) | Rejection::Invalid(_) => {
            ApiError::new(Code::NotWasm, rejection.to_string())
        }
        Rejection::NotComponent => ApiError::new(Code::NotComponent, rejection.to_string()),
        Rejection::WorldMismatch { .. } => {
            ApiError::new(Code::WorldMismatch, rejection.to_string())
        }
        Rejection::CompileTimeout(_) => ApiError::new(Code::CompileFailed, rejection.to_string()),
        Rejection::Internal(error) => error.into(),
    }
}

impl Registry {
    pub fn new(db: Db, runtime: Arc<Runtime>, settings: ModuleSettings, defaults: Limits) -> Self {
        Registry {
            db,
            runtime,
            settings,
            defaults,
        }
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.settings.max_upload_bytes
    }

    /// Validates, compiles and stores a new version of `name`.
    pub async fn upload(
        &self,
        account_sid: &str,
        name: &str,
        kind: World,
        bytes: Vec<u8>,
    ) -> Result<ModuleVersion, ApiError> {
        check_name(name).map_err(ApiError::invalid)?;
        if bytes.len() as u64 > self.settings.max_upload_bytes {
            return Err(ApiError::new(
                Code::ModuleTooLarge,
                format!(
                    "the module is {} bytes; the limit is {} bytes",
                    bytes.len(),
                    self.settings.max_upload_bytes
                ),
            ));
        }
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let bytes = Arc::new(bytes);
        self.runtime
            .compile(
                &sha256,
                bytes.clone(),
                kind,
                Duration::from_millis(self.settings.compile_timeout_ms),
            )
            .await
            .map_err(rejection_error)?;

        let sid = new_sid("MD");
        let now = now_ms();
        let mut tx = self.db.pool().begin().await?;
        sqlx::query(
            "INSERT INTO module_blobs (sha256, size, bytes) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&sha256)
        .bind(bytes.len() as i64)
        .bind(bytes.as_slice())
        .execute(&mut *tx)
        .await?;
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO module_sequences (account_sid, name, last_version) VALUES ($1, $2, 1) \
             ON CONFLICT (account_sid, name) DO UPDATE SET last_version = module_sequences.last_version + 1 \
             RETURNING last_version",
        )
        .bind(account_sid)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO modules (sid, account_sid, name, version, kind, sha256, size, date_created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&sid)
        .bind(account_sid)
        .bind(name)
        .bind(version)
        .bind(kind.as_str())
        .bind(&sha256)
        .bind(bytes.len() as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        self.db.lock_event_log(&mut tx).await?;
        crate::events::append(
            &mut tx,
            &crate::events::NewEvent {
                account_sid,
                event_type: "module.uploaded",
                source: format!("/v1/Modules/{name}"),
                subject: Some(&sid),
                time_ms: now,
                data: serde_json::json!({
                    "module_sid": sid,
                    "module_name": name,
                    "module_version": version,
                    "kind": kind.as_str(),
                    "sha256": sha256,
                    "size": bytes.len(),
                }),
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(account = account_sid, module = name, version, %sha256, kind = kind.as_str(), "module uploaded");
        Ok(ModuleVersion {
            sid,
            account_sid: account_sid.to_string(),
            name: name.to_string(),
            version,
            kind,
            sha256,
            size: bytes.len() as i64,
            date_created: rfc3339(now),
            uri: format!("module:{name}@{version}"),
            url: format!("/v1/Modules/{name}/Versions/{version}"),
        })
    }

    /// The latest version of every module of the account, by name.
    pub async fn list_latest(&self, account_sid: &str) -> Result<Vec<ModuleVersion>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM modules m WHERE account_sid = $1 AND version = \
             (SELECT MAX(version) FROM modules WHERE account_sid = m.account_sid AND name = m.name) ORDER BY name"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_sid)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(version_from_row).collect()
    }

    /// Every version of one module, oldest first.
    pub async fn versions(
        &self,
        account_sid: &str,
        name: &str,
    ) -> Result<Vec<ModuleVersion>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM modules WHERE account_sid = $1 AND name = $2 ORDER BY version"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_sid)
            .bind(name)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(version_from_row).collect()
    }

    /// One version, or the latest when `version` is `None`.
    pub async fn get(
        &self,
        account_sid: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<ModuleVersion>, sqlx::Error> {
        let row = match version {
            Some(version) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM modules WHERE account_sid = $1 AND name = $2 AND version = $3"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(account_sid)
                    .bind(name)
                    .bind(version)
                    .fetch_optional(self.db.pool())
                    .await?
            }
            None => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM modules WHERE account_sid = $1 AND name = $2 ORDER BY version DESC LIMIT 1"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(account_sid)
                    .bind(name)
                    .fetch_optional(self.db.pool())
                    .await?
            }
        };
        row.as_ref().map(version_from_row).transpose()
    }

    /// The module a URI names, within the account.
    pub async fn resolve(
        &self,
        account_sid: &str,
        uri: &ModuleUri,
    ) -> Result<Option<ModuleVersion>, sqlx::Error> {
        self.get(account_sid, &uri.name, uri.version).await
    }

    /// Deletes versions (one, or all when `version` is `None`); returns how many went. Source bytes
    /// and artifacts no version refers to any more are removed too.
    pub async fn delete(
        &self,
        account_sid: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<u64, sqlx::Error> {
        let doomed = match version {
            Some(v) => self
                .get(account_sid, name, Some(v))
                .await?
                .into_iter()
                .collect(),
            None => self.versions(account_sid, name).await?,
        };
        if doomed.is_empty() {
            return Ok(0);
        }
        let mut tx = self.db.pool().begin().await?;
        for module in &doomed {
            sqlx::query("DELETE FROM modules WHERE sid = $1")
                .bind(&module.sid)
                .execute(&mut *tx)
                .await?;
        }
        let mut orphaned = Vec::new();
        for module in &doomed {
            let users: i64 = sqlx::query_scalar(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM modules WHERE sha256 = $1",
            )
            .bind(&module.sha256)
            .fetch_one(&mut *tx)
            .await?;
            if users == 0 {
                sqlx::query("DELETE FROM module_blobs WHERE sha256 = $1")
                    .bind(&module.sha256)
                    .execute(&mut *tx)
                    .await?;
                orphaned.push(module.sha256.clone());
            }
        }
        tx.commit().await?;
        for sha256 in orphaned {
            self.runtime.forget(&sha256);
        }
        Ok(doomed.len() as u64)
    }

    async fn source(db: Db, sha256: String) -> anyhow::Result<Vec<u8>> {
        let bytes: Vec<u8> = sqlx::query_scalar("SELECT bytes FROM module_blobs WHERE sha256 = $1")
            .bind(&sha256)
            .fetch_one(db.pool())
            .await?;
        Ok(bytes)
    }

    /// Everything the runtime needs to invoke `module` for `account`.
    pub async fn target(
        &self,
        account: &Account,
        module: &ModuleVersion,
    ) -> Result<Target, ApiError> {
        let loaded = self
            .runtime
            .load(
                &module.sha256,
                module.kind,
                Self::source(self.db.clone(), module.sha256.clone()),
            )
            .await
            .map_err(rejection_error)?;
        Ok(Target {
            principal: Arc::new(Principal {
                account_sid: account.sid.clone(),
                module_name: module.name.clone(),
                module_version: module.version,
            }),
            module_sid: module.sid.clone(),
            loaded,
            limits: account.limits.apply(&self.defaults),
            call_sid: None,
            task_sid: None,
        })
    }

    /// Loads every stored module in the background, so the first call to each does not pay for
    /// loading (or, after an engine upgrade, compiling) it.
    pub fn warm_up(&self) {
        let registry = self.clone();
        tokio::spawn(async move {
            let rows = sqlx::query("SELECT DISTINCT sha256, kind FROM modules")
                .fetch_all(registry.db.pool())
                .await;
            let Ok(rows) = rows else { return };
            for row in rows {
                let (Ok(sha256), Ok(kind)) = (
                    row.try_get::<String, _>("sha256"),
                    row.try_get::<String, _>("kind"),
                ) else {
                    continue;
                };
                let Some(world) = World::parse(&kind) else {
                    continue;
                };
                let fetch = Self::source(registry.db.clone(), sha256.clone());
                if let Err(error) = registry.runtime.load(&sha256, world, fetch).await {
                    tracing::warn!(%sha256, %error, "could not load a stored module");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_uris_parse_name_and_version() {
        assert_eq!(
            ModuleUri::parse("module:ivr@3"),
            Some(Ok(ModuleUri {
                name: "ivr".into(),
                version: Some(3)
            }))
        );
        assert_eq!(
            ModuleUri::parse("module:ivr"),
            Some(Ok(ModuleUri {
                name: "ivr".into(),
                version: None
            }))
        );
        assert!(matches!(ModuleUri::parse("module:ivr@0"), Some(Err(_))));
        assert!(matches!(ModuleUri::parse("module:IVR"), Some(Err(_))));
        assert_eq!(ModuleUri::parse("https://example.com/voice"), None);
    }

    #[test]
    fn names_are_restricted_to_a_uri_safe_alphabet() {
        assert!(check_name("hold-music_2").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name("a@b").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
    }
}
