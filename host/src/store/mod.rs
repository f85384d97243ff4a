//! The database: one pool over SQLite (embedded default) or PostgreSQL (for several hosts).
//!
//! Every domain speaks to the database through `sqlx::Any`, so one query text serves both backends.
//! The conventions that make that work: `$1`-style parameters (SQLite accepts them too), times as
//! unix milliseconds in `BIGINT`, JSON as `TEXT`, and aggregates cast back to `BIGINT` (PostgreSQL's
//! `SUM` yields `NUMERIC`, which `Any` cannot decode).

pub mod batch;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AnyPool, ConnectOptions};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Which database engine backs a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A cloneable handle on the pool, with the backend it talks to.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// The database file on SQLite: the group-commit writer opens its own connection to it.
    sqlite_path: Option<Arc<PathBuf>>,
    /// How to reach PostgreSQL: the group-commit writer opens its own connection with them.
    postgres_options: Option<Arc<AnyConnectOptions>>,
}

impl Db {
    /// Connects to `database_url`, or to `switchboard.db` in `data_dir` when no URL is given, and
    /// brings the schema up to date.
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let db = match database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let options = AnyConnectOptions::from_str(url)
                    .with_context(|| "the PostgreSQL database URL is not valid")?
                    .log_statements(tracing::log::LevelFilter::Trace);
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options.clone())
                    .await
                    .with_context(|| {
                        "could not connect to PostgreSQL: check --database-url and that the server is running"
                    })?;
                Db {
                    pool,
                    backend: Backend::Postgres,
                    sqlite_path: None,
                    postgres_options: Some(Arc::new(options)),
                }
            }
            // The writer opens a connection of its own to the file: to an in-memory database that
            // would be another database.
            Some(url)
                if url.starts_with("sqlite:")
                    && (url.contains(":memory:") || url.contains("mode=memory")) =>
            {
                anyhow::bail!(
                    "an in-memory SQLite database ({url:?}) is not supported: give a file (sqlite://PATH) or leave the URL unset for one in the data directory"
                )
            }
            Some(url) if url.starts_with("sqlite:") => {
                Self::open_sqlite(
                    SqliteConnectOptions::from_str(url)
                        .with_context(|| "the SQLite database URL is not valid")?,
                )
                .await?
            }
            Some(url) => anyhow::bail!(
                "unsupported database URL {url:?}: use postgres://... or sqlite://..., or leave it unset for a SQLite file in the data directory"
            ),
            None => {
                std::fs::create_dir_all(data_dir).with_context(|| {
                    format!("could not create the data directory {}", data_dir.display())
                })?;
                Self::open_sqlite(
                    SqliteConnectOptions::new().filename(data_dir.join("switchboard.db")),
                )
                .await?
            }
        };
        let migrator = match db.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&db.pool)
            .await
            .context("could not apply the database migrations")?;
        Ok(db)
    }

    /// WAL lets readers proceed while the single writer commits; `synchronous = FULL` makes every
    /// acknowledged commit survive a crash of the process or the machine.
    async fn open_sqlite(options: SqliteConnectOptions) -> anyhow::Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .log_statements(tracing::log::LevelFilter::Trace);
        let path = options.get_filename().to_path_buf();
        let url = options.to_url_lossy();
        let any = AnyConnectOptions::from_url(&url)?;
        // `Any` re-parses the URL, which carries only the file name: pragmas are re-applied per
        // connection instead.
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_with(any)
            .await
            .context("could not open the SQLite database")?;
        Ok(Db {
            pool,
            backend: Backend::Sqlite,
            sqlite_path: Some(Arc::new(path)),
            postgres_options: None,
        })
    }

    /// The database file, on SQLite.
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite_path.as_deref().map(PathBuf::as_path)
    }

    /// The connection options, on PostgreSQL.
    pub fn postgres_options(&self) -> Option<&AnyConnectOptions> {
        self.postgres_options.as_deref()
    }

    /// Takes the event log's append lock for the rest of `conn`'s transaction (PostgreSQL only).
    ///
    /// The log's sequence numbers are handed out at insert and become visible at commit, and the
    /// event router reads the log in sequence order: a transaction that took number 100 and
    /// committed after another took 101 would be passed over. On PostgreSQL every transaction that
    /// appends events (from this host or another on the same database) takes this lock just
    /// before appending, so sequence order is commit order. SQLite's single writer gives the same.
    pub async fn lock_event_log(&self, conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7472207)")
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The current time in unix milliseconds, the unit every table stores.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Renders stored unix milliseconds as RFC 3339, the format of every `date_*` field in `/v1` APIs.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Renders stored unix milliseconds as RFC 2822 (`Tue, 31 Aug 2010 20:36:28 +0000`), the date
/// format of the reference platform's `2010-04-01` API.
pub fn rfc2822(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_default()
}

/// Parses an RFC 3339 time into unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// An RFC 3339 time as the reference's `2010-04-01` API writes times (RFC 2822); empty if it is
/// not one.
pub fn rfc2822_of_rfc3339(text: &str) -> String {
    parse_rfc3339(text).map(rfc2822).unwrap_or_default()
}
