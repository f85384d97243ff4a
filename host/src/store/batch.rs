//! Group commit for state changes: many small writes from many tasks, one transaction per batch.
//!
//! A call session changes state several times a second per call; a transaction per change would cap
//! the host at what the disk can sync. Writers hand a [`Change`] (a few statements that belong
//! together, e.g. a call's new status and the event announcing it) to the [`Writer`] and get a
//! [`Committed`] handle back. The writer task commits whatever is waiting as one transaction, then
//! resolves every handle in it. Whoever acknowledges or announces the change awaits the handle
//! first, so nothing is acknowledged before it is durable. Changes commit in submission order.
//!
//! On SQLite the writer is a thread with its own connection ([`sqlite`]). On PostgreSQL, where
//! several hosts write concurrently, it is an async task with a connection of its own, on a
//! thread and runtime of its own: a batch is a round trip per statement, and on the host's
//! runtime each reply waited for a worker busy with calls and modules.

mod sqlite;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot, watch};

use super::Db;
use crate::config::DatabaseSettings;

/// The writer could not commit a change.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the change could not be committed: {0}")]
pub struct NotCommitted(pub String);

/// The sequence numbers a committed change's events were given in the event log, in the order
/// the change appended them.
pub type Sequences = Vec<i64>;

/// Resolves once a change (or usage record) is committed to the database.
pub struct Committed(oneshot::Receiver<Result<Sequences, NotCommitted>>);

impl Committed {
    pub async fn wait(self) -> Result<(), NotCommitted> {
        self.sequences().await.map(|_| ())
    }

    /// Waits for the commit like [`Committed::wait`], and answers the sequence numbers of the
    /// change's events, so whoever appended an event need not read it back to learn its place.
    pub async fn sequences(self) -> Result<Sequences, NotCommitted> {
        self.0
            .await
            .unwrap_or_else(|_| Err(NotCommitted("the database writer stopped".into())))
    }
}

/// A bound parameter.
#[derive(Debug, Clone)]
pub enum Param {
    Text(Option<String>),
    Int(Option<i64>),
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

impl Param {
    fn bind<'q>(&self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        match self {
            Param::Text(value) => query.bind(value.clone()),
            Param::Int(value) => query.bind(*value),
        }
    }
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Param::Text(Some(value.to_string()))
    }
}

impl From<String> for Param {
    fn from(value: String) -> Self {
        Param::Text(Some(value))
    }
}

impl From<Option<String>> for Param {
    fn from(value: Option<String>) -> Self {
        Param::Text(value)
    }
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Param::Int(Some(value))
    }
}

impl From<Option<i64>> for Param {
    fn from(value: Option<i64>) -> Self {
        Param::Int(value)
    }
}

/// One statement of a change. The SQL is static so the connection's statement cache reuses it.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<Param>,
    /// Set for rows appended to a log table: `(table, columns)`.
    append: Option<(&'static str, &'static str)>,
    /// Set for row writes (see [`Statement::row`]).
    row: bool,
}

impl Statement {
    pub fn new(sql: &'static str, params: Vec<Param>) -> Self {
        Statement {
            sql,
            params,
            append: None,
            row: false,
        }
    }

    /// A row write that may join others of its kind: `INSERT INTO t (sid, ...) VALUES ($1, ...)
    /// ON CONFLICT (sid) DO UPDATE SET ...`, its parameters numbered in order, the first one the
    /// row's key, writing the whole current state of the row (the columns a conflict leaves alone
    /// never change). On PostgreSQL, where every statement is a round trip, the writer writes a
    /// batch's rows of one kind with multi-row statements, the last write of each key winning:
    /// a task create's task, reservation and worker rows then cost three statements per batch
    /// instead of three per task.
    pub fn row(sql: &'static str, params: Vec<Param>) -> Self {
        Statement {
            row: true,
            ..Statement::new(sql, params)
        }
    }

    /// A row appended to a log table (such as the event log) that no other statement of the same
    /// batch reads or changes. The writer inserts all such rows of a batch with multi-row inserts
    /// at the end of the batch's transaction, in submission order: same atomicity, far fewer
    /// statements. `columns` is the comma-separated column list, one per parameter.
    pub fn append(table: &'static str, columns: &'static str, params: Vec<Param>) -> Self {
        Statement {
            sql: "",
            params,
            append: Some((table, columns)),
            row: false,
        }
    }

    /// A row write's key: its first parameter.
    fn key(&self) -> Option<&str> {
        match self.params.first() {
            Some(Param::Text(Some(key))) => Some(key),
            _ => None,
        }
    }

    async fn execute(&self, conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
        let mut query = sqlx::query(self.sql);
        for param in &self.params {
            query = param.bind(query);
        }
        query.execute(conn).await.map(|_| ())
    }
}

/// Statements that commit together or not at all.
pub type Change = Vec<Statement>;

type Ack = oneshot::Sender<Result<Sequences, NotCommitted>>;

/// The sending side of the writer. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<(Change, Ack)>,
    events_committed: watch::Receiver<i64>,
    backlog: Backlog,
}

/// Changes submitted and not yet taken into a batch. Submitting never waits (changes are
/// submitted under the locks that order them), so the queue has no bound of its own: the HTTP
/// API reads this to turn new writes away while the database is far behind.
#[derive(Clone, Default)]
pub struct Backlog(Arc<AtomicUsize>);

impl Backlog {
    pub fn get(&self) -> usize {
        self.0.load(AtomicOrdering::Relaxed)
    }

    fn submitted(&self) {
        self.0.fetch_add(1, AtomicOrdering::Relaxed);
    }

    /// The writer took `count` changes into a batch.
    fn taken(&self, count: usize) {
        self.0.fetch_sub(count, AtomicOrdering::Relaxed);
    }
}

/// Changes per transaction at most: bounds how long one commit holds SQLite's write lock.
const BATCH_LIMIT: usize = 512;

impl Writer {
    /// Starts the writer: on SQLite a thread with its own connection, checkpointing as `settings`
    /// say; on PostgreSQL a thread with its own connection and runtime.
    pub fn start(db: Db, settings: &DatabaseSettings) -> anyhow::Result<Writer> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (announce, events_committed) = watch::channel(0);
        let backlog = Backlog::default();
        match db.sqlite_path() {
            Some(path) => {
                let checkpointing = sqlite::Checkpointing::from_settings(settings)?;
                sqlite::start(path, rx, announce, checkpointing, backlog.clone())?
            }
            None => {
                let options = db
                    .postgres_options()
                    .context("the database is neither a SQLite file nor PostgreSQL")?
                    .clone();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("could not start the database writer's runtime")?;
                let link = Link {
                    db,
                    options,
                    conn: None,
                };
                let taken = backlog.clone();
                std::thread::Builder::new()
                    .name("switchboard-writer".into())
                    .spawn(move || runtime.block_on(write_batches(link, rx, announce, taken)))
                    .context("could not start the database writer thread")?;
            }
        }
        Ok(Writer {
            tx,
            events_committed,
            backlog,
        })
    }

    /// Changes waiting for the writer to take them.
    pub fn backlog(&self) -> usize {
        self.backlog.get()
    }

    /// The highest sequence number among the events this writer committed, changed by each batch
    /// that appended to the event log: the event router's cue to read the log, so it never reads
    /// ahead of what is durable. Every event numbered up to it is committed too: on SQLite this is
    /// the one writer, and on PostgreSQL numbers are drawn under the log's lock, held to the commit.
    pub fn events_committed(&self) -> watch::Receiver<i64> {
        self.events_committed.clone()
    }

    /// Queues a change for the next batch.
    pub fn submit(&self, change: Change) -> Committed {
        let (ack, done) = oneshot::channel();
        self.backlog.submitted();
        if let Err(error) = self.tx.send((change, ack)) {
            self.backlog.taken(1);
            let (_, ack) = error.0;
            let _ = ack.send(Err(NotCommitted("the database writer stopped".into())));
        }
        Committed(done)
    }

    /// Waits until every change submitted before this call is committed.
    pub async fn flush(&self) {
        let _ = self.submit(Vec::new()).wait().await;
    }
}

/// The PostgreSQL writer's connection, made when first needed and made again after it failed.
struct Link {
    db: Db,
    options: sqlx::any::AnyConnectOptions,
    conn: Option<sqlx::AnyConnection>,
}

impl Link {
    async fn commit(&mut self, batch: &[(Change, Ack)]) -> Result<Vec<Sequences>, sqlx::Error> {
        use sqlx::Connection;
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self
                .conn
                .insert(sqlx::AnyConnection::connect_with(&self.options).await?),
        };
        let result = commit(&self.db, conn, batch).await;
        // A refused statement leaves the connection usable; anything else may not have.
        if let Err(error) = &result
            && !matches!(error, sqlx::Error::Database(_))
        {
            self.conn = None;
        }
        result
    }
}

async fn write_batches(
    mut db: Link,
    mut rx: mpsc::UnboundedReceiver<(Change, Ack)>,
    announce: watch::Sender<i64>,
    backlog: Backlog,
) {
    let mut batch = Vec::with_capacity(BATCH_LIMIT);
    while rx.recv_many(&mut batch, BATCH_LIMIT).await > 0 {
        backlog.taken(batch.len());
        record_batch(batch.len(), rx.len());
        let result = match db.commit(&batch).await {
            Ok(sequences) => Ok(sequences),
            // One change the database refuses (a constraint, a bad value) must not take the
            // others of its batch down with it: commit them one by one, each with its own result.
            Err(error) if batch.len() > 1 => {
                tracing::warn!(%error, changes = batch.len(), "a batch of state changes failed; committing them one at a time");
                for entry in batch.drain(..) {
                    let single = std::slice::from_ref(&entry);
                    let result = commit_with_retry(&mut db, single).await;
                    if let Ok(sequences) = &result {
                        announce_head(&announce, sequences);
                    }
                    let _ = entry.1.send(result.map(first_sequences));
                }
                continue;
            }
            Err(_) => commit_with_retry(&mut db, &batch).await,
        };
        if let Ok(sequences) = &result {
            announce_head(&announce, sequences);
        }
        acknowledge(&mut batch, result);
    }
}

/// Counts the changes of a batch the writer took, and shows how many still wait behind it. A
/// waiting count that keeps growing means the database cannot keep up; the HTTP API then turns
/// new writes away (see [`Backlog`]).
fn record_batch(taken: usize, waiting: usize) {
    metrics::counter!("switchboard_state_changes_total").increment(taken as u64);
    metrics::gauge!("switchboard_writer_waiting_changes").set(waiting as f64);
}

/// Tells the event router how far the log is committed, when a batch appended to it.
fn announce_head(announce: &watch::Sender<i64>, committed: &[Sequences]) {
    if let Some(top) = committed.iter().flatten().max().copied() {
        announce.send_if_modified(|head| {
            let higher = top > *head;
            *head = (*head).max(top);
            higher
        });
    }
}

/// Answers every change of a committed (or failed) batch, each with its own events' sequence
/// numbers.
fn acknowledge(batch: &mut Vec<(Change, Ack)>, result: Result<Vec<Sequences>, NotCommitted>) {
    match result {
        Ok(sequences) => {
            let mut sequences = sequences.into_iter();
            for (_, ack) in batch.drain(..) {
                let _ = ack.send(Ok(sequences.next().unwrap_or_default()));
            }
        }
        Err(error) => {
            for (_, ack) in batch.drain(..) {
                let _ = ack.send(Err(error.clone()));
            }
        }
    }
}

/// The sequence numbers of a batch of one change.
fn first_sequences(mut sequences: Vec<Sequences>) -> Sequences {
    sequences.pop().unwrap_or_default()
}

/// A database that is briefly unavailable should not lose changes: retry with backoff, then report.
async fn commit_with_retry(
    db: &mut Link,
    batch: &[(Change, Ack)],
) -> Result<Vec<Sequences>, NotCommitted> {
    let mut delay = Duration::from_millis(50);
    for attempt in 0.. {
        match db.commit(batch).await {
            Ok(sequences) => return Ok(sequences),
            Err(error) if attempt < 5 => {
                tracing::warn!(%error, attempt, "state changes not committed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(error) => {
                tracing::error!(%error, changes = batch.len(), "state changes lost after retries");
                return Err(NotCommitted(error.to_string()));
            }
        }
    }
    Err(NotCommitted("unreachable retry loop end".into()))
}

/// Whether a batch appends to the event log: the event router is told when such a batch commits.
fn appends_events(batch: &[(Change, Ack)]) -> bool {
    batch.iter().any(|(change, _)| {
        change
            .iter()
            .any(|statement| matches!(statement.append, Some(("events", _))))
    })
}

/// A batch's statements split for running: the plain ones in submission order, to run one by one,
/// and the appended rows in submission order, to insert together after them.
fn split(batch: &[(Change, Ack)]) -> (Vec<&Statement>, Vec<&Statement>) {
    batch
        .iter()
        .flat_map(|(change, _)| change)
        .partition(|statement| statement.append.is_none())
}

/// For each appended row of a batch, in [`split`]'s order, the index of the change it belongs to.
fn owners(batch: &[(Change, Ack)]) -> Vec<usize> {
    batch
        .iter()
        .enumerate()
        .flat_map(|(index, (change, _))| {
            change
                .iter()
                .filter(|statement| statement.append.is_some())
                .map(move |_| index)
        })
        .collect()
}

/// Whether a run of appended rows goes to the event log.
fn appends_to_event_log(rows: &[&Statement]) -> bool {
    rows.first()
        .is_some_and(|row| matches!(row.append, Some(("events", _))))
}

/// Hands the events of a run that starts at `offset` among a batch's appended rows their
/// sequence numbers, in row order, each to the change it belongs to.
fn assign_sequences(
    sequences: &mut [Sequences],
    owners: &[usize],
    offset: usize,
    numbers: impl IntoIterator<Item = i64>,
) {
    let run_owners = owners.get(offset..).unwrap_or_default();
    for (owner, number) in run_owners.iter().zip(numbers) {
        if let Some(change) = sequences.get_mut(*owner) {
            change.push(number);
        }
    }
}

/// Appended rows per multi-row insert. Full chunks reuse one prepared statement; the chunk stays
/// small because each shorter run is a statement of its own, and every one up to the chunk's
/// length stays in SQLite's prepared-statement cache.
const ROWS_PER_INSERT: usize = 32;

/// Splits a batch's appended rows, in order, into runs that one multi-row insert can take: same
/// table and columns, at most [`ROWS_PER_INSERT`] rows.
fn append_runs<'a, 's>(appended: &'a [&'s Statement]) -> impl Iterator<Item = &'a [&'s Statement]> {
    appended
        .chunk_by(|a, b| a.append == b.append)
        .flat_map(|run| run.chunks(ROWS_PER_INSERT))
}

/// The multi-row insert for a run of appended rows, with the number of parameters per row.
/// Parameters are numbered `$1..` across the rows, in order, each appearing once. `verb` is
/// `INSERT` or a backend's variant of it.
fn insert_sql(rows: &[&Statement], verb: &str) -> Option<(String, usize)> {
    let (table, columns) = rows.first()?.append?;
    let width = columns.split(',').count();
    let mut sql = format!("{verb} INTO {table} ({columns}) VALUES ");
    push_values(&mut sql, rows.len(), width);
    Some((sql, width))
}

/// Appends `rows` values lists of `width` parameters each, numbered `$1..` across the rows.
fn push_values(sql: &mut String, rows: usize, width: usize) {
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ",(" });
        for column in 0..width {
            if column > 0 {
                sql.push(',');
            }
            sql.push('$');
            sql.push_str(&(row * width + column + 1).to_string());
        }
        sql.push(')');
    }
}

/// Writes row writes on PostgreSQL: per kind, the last write of each key, up to
/// [`ROWS_PER_INSERT`] rows per statement.
async fn write_rows(
    conn: &mut sqlx::AnyConnection,
    rows: &[&Statement],
) -> Result<(), sqlx::Error> {
    for kind in last_writes_by_kind(rows) {
        for chunk in kind.chunks(ROWS_PER_INSERT) {
            let merged = match chunk {
                [_, _, ..] => rows_sql(chunk),
                _ => None,
            };
            let Some(sql) = merged else {
                for row in chunk {
                    row.execute(conn).await?;
                }
                continue;
            };
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                for param in &row.params {
                    query = param.bind(query);
                }
            }
            query.execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// Row writes grouped by kind (their statement), kinds in the order they first come, and of
/// each key only its last write, which holds the row's latest state.
fn last_writes_by_kind<'s>(rows: &[&'s Statement]) -> Vec<Vec<&'s Statement>> {
    let mut last = std::collections::HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        last.insert((row.sql, row.key()), index);
        if !order.contains(&row.sql) {
            order.push(row.sql);
        }
    }
    let mut kinds: Vec<Vec<&Statement>> = vec![Vec::new(); order.len()];
    for (index, row) in rows.iter().enumerate() {
        let kind = order.iter().position(|sql| *sql == row.sql);
        if last.get(&(row.sql, row.key())) == Some(&index)
            && let Some(kind) = kind.and_then(|k| kinds.get_mut(k))
        {
            kind.push(row);
        }
    }
    kinds
}

/// One statement writing rows of one kind: the row write's insert with a values list per row,
/// parameters numbered on across the rows, and its conflict clause. `None` when the statement is
/// not of the shape [`Statement::row`] asks for.
fn rows_sql(rows: &[&Statement]) -> Option<String> {
    let sql = rows.first()?.sql;
    let values = sql.find("VALUES")?;
    let head = sql[..values].trim_end();
    let after = sql[values + "VALUES".len()..].trim_start();
    let close = after.strip_prefix('(')?.find(')')? + 1;
    let conflict = after[close + 1..].trim_start();
    let width = rows[0].params.len();
    if width == 0 || rows.iter().any(|row| row.params.len() != width) {
        return None;
    }
    // The rows' parameters are bound one row after the other, so the values must be `$1` to
    // `$n` in order: anything else is written row by row.
    let in_order = after[1..close]
        .split(',')
        .map(str::trim)
        .eq((1..=width).map(|n| format!("${n}")));
    if !in_order {
        return None;
    }
    let mut merged = format!("{head} VALUES ");
    push_values(&mut merged, rows.len(), width);
    merged.push(' ');
    merged.push_str(conflict);
    Some(merged)
}

/// Commits a batch on PostgreSQL. The event log's inserts return their sequence numbers. The
/// log's lock is held, so no other host draws from its sequence meanwhile and one insert's numbers
/// rise in the order of its rows.
async fn commit(
    db: &Db,
    conn: &mut sqlx::AnyConnection,
    batch: &[(Change, Ack)],
) -> Result<Vec<Sequences>, sqlx::Error> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let (plain, appended) = split(batch);
    // Row writes wait to be written together until another statement comes, which may read or
    // change what they write; rows of different kinds write different tables, so their order
    // among themselves does not matter.
    let mut rows = Vec::new();
    for statement in plain {
        if statement.row && statement.key().is_some() {
            rows.push(statement);
            continue;
        }
        write_rows(&mut tx, &rows).await?;
        rows.clear();
        statement.execute(&mut tx).await?;
    }
    write_rows(&mut tx, &rows).await?;
    if appends_events(batch) {
        db.lock_event_log(&mut tx).await?;
    }
    let owners = owners(batch);
    let mut sequences = vec![Sequences::new(); batch.len()];
    let mut offset = 0;
    for rows in append_runs(&appended) {
        let Some((mut sql, _)) = insert_sql(rows, "INSERT") else {
            continue;
        };
        let to_event_log = appends_to_event_log(rows);
        if to_event_log {
            sql.push_str(" RETURNING sequence");
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in rows {
            for param in &row.params {
                query = param.bind(query);
            }
        }
        if to_event_log {
            let mut numbers = Vec::with_capacity(rows.len());
            for row in query.fetch_all(&mut *tx).await? {
                numbers.push(sqlx::Row::try_get::<i64, _>(&row, 0)?);
            }
            numbers.sort_unstable();
            assign_sequences(&mut sequences, &owners, offset, numbers);
        } else {
            query.execute(&mut *tx).await?;
        }
        offset += rows.len();
    }
    tx.commit().await?;
    Ok(sequences)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain (not appended) statement: a queue row.
    fn queue_row(sid: &str) -> Statement {
        Statement::new(
            "INSERT INTO queues (sid, account_sid, friendly_name, max_size, average_wait_ms, dequeued_count, date_created, date_updated) VALUES ($1, 'AC1', $1, 1, 0, 0, 0, 0)",
            vec![sid.into()],
        )
    }

    fn worker(sid: &str, version: i64) -> Statement {
        Statement::row(
            "INSERT INTO workers (sid, version)\n VALUES ($1, $2)\n ON CONFLICT (sid) DO UPDATE SET version = excluded.version",
            vec![sid.into(), version.into()],
        )
    }

    #[test]
    fn row_writes_of_one_kind_become_one_statement_numbered_on_across_the_rows() {
        let (a, b) = (worker("WK1", 1), worker("WK2", 1));
        assert_eq!(
            rows_sql(&[&a, &b]).as_deref(),
            Some(
                "INSERT INTO workers (sid, version) VALUES ($1,$2),($3,$4) ON CONFLICT (sid) DO UPDATE SET version = excluded.version"
            )
        );
        let odd = Statement::row("UPDATE workers SET version = $2 WHERE sid = $1", vec![]);
        assert_eq!(rows_sql(&[&odd, &odd]), None, "not a row write's shape");
        let swapped = Statement::row(
            "INSERT INTO workers (version, sid) VALUES ($2, $1) ON CONFLICT (sid) DO NOTHING",
            vec!["WK1".into(), 1.into()],
        );
        assert_eq!(
            rows_sql(&[&swapped, &swapped]),
            None,
            "values out of order are written row by row"
        );
    }

    #[test]
    fn of_each_key_only_the_last_write_is_kept_and_kinds_keep_their_first_place() {
        let first = worker("WK1", 1);
        let task = Statement::row(
            "INSERT INTO tasks (sid) VALUES ($1) ON CONFLICT (sid) DO NOTHING",
            vec!["WT1".into()],
        );
        let other = worker("WK2", 1);
        let last = worker("WK1", 2);
        let kinds = last_writes_by_kind(&[&first, &task, &other, &last]);
        let shown: Vec<Vec<(Option<&str>, String)>> = kinds
            .iter()
            .map(|kind| {
                kind.iter()
                    .map(|row| (row.key(), format!("{:?}", row.params.get(1))))
                    .collect()
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                vec![
                    (Some("WK2"), "Some(Int(Some(1)))".to_string()),
                    (Some("WK1"), "Some(Int(Some(2)))".to_string()),
                ],
                vec![(Some("WT1"), "None".to_string())],
            ]
        );
    }

    /// An event appended to the log, of account `AC1`.
    pub(super) fn appended_event(event_type: Param, time: i64, data: &str) -> Statement {
        Statement::append(
            "events",
            "sid, account_sid, type, source, subject, time, data",
            vec![
                crate::sid::new_sid("EV").into(),
                "AC1".into(),
                event_type,
                "/test".into(),
                Param::Text(None),
                time.into(),
                data.into(),
            ],
        )
    }

    /// A writer on a new SQLite database; the directory lives as long as the first element.
    async fn sqlite_writer() -> (tempfile::TempDir, Db, Writer) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(None, dir.path()).await.expect("database");
        let writer = Writer::start(db.clone(), &DatabaseSettings::default()).expect("writer");
        (dir, db, writer)
    }

    #[tokio::test]
    async fn a_refused_change_does_not_take_its_batch_down() {
        let (_dir, db, writer) = sqlite_writer().await;
        let insert = |sid: &str| vec![queue_row(sid)];
        // Submitted together, so they share a batch: the duplicate key fails, the others commit.
        let first = writer.submit(insert("QU1"));
        let duplicate = writer.submit(insert("QU1"));
        let second = writer.submit(insert("QU2"));
        assert!(first.wait().await.is_ok());
        assert!(duplicate.wait().await.is_err());
        assert!(second.wait().await.is_ok());
        let count: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM queues")
            .fetch_one(db.pool())
            .await
            .expect("count");
        assert_eq!(count, 2);
    }

    #[tokio::test]
    async fn an_appended_row_the_database_refuses_fails_its_change_alone() {
        let (_dir, db, writer) = sqlite_writer().await;
        let event = |event_type: Option<&str>| {
            appended_event(event_type.map(str::to_string).into(), 0, "{}")
        };
        // One multi-row insert carries all three; the row without a type is refused.
        let first = writer.submit(vec![event(Some("a.one"))]);
        let refused = writer.submit(vec![event(Some("b.one")), event(None)]);
        let second = writer.submit(vec![event(Some("c.one"))]);
        let first = first.sequences().await.expect("first");
        assert!(refused.wait().await.is_err());
        let second = second.sequences().await.expect("second");
        let stored: Vec<(i64, String)> =
            sqlx::query_as("SELECT sequence, type FROM events ORDER BY sequence")
                .fetch_all(db.pool())
                .await
                .expect("events");
        let types: Vec<&str> = stored.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            types,
            vec!["a.one", "c.one"],
            "the refused change left nothing"
        );
        assert_eq!(first, vec![stored[0].0]);
        assert_eq!(second, vec![stored[1].0]);
    }

    #[tokio::test]
    async fn the_writer_announces_the_head_of_the_log_it_committed() {
        let (_dir, _db, writer) = sqlite_writer().await;
        let mut committed = writer.events_committed();
        let event = crate::events::NewEvent {
            account_sid: "AC1",
            event_type: "a.one",
            source: "/test".into(),
            subject: None,
            time_ms: 0,
            data: serde_json::json!({}),
        };
        let numbers = writer
            .submit(vec![event.statement(), event.statement()])
            .sequences()
            .await
            .expect("events");
        assert!(committed.has_changed().expect("writer running"));
        assert_eq!(*committed.borrow_and_update(), numbers[1]);
        // A change without events leaves the announcement alone.
        let queue = queue_row("QU1");
        writer.submit(vec![queue]).wait().await.expect("queue");
        assert!(!committed.has_changed().expect("writer running"));
    }

    #[tokio::test]
    async fn each_change_learns_the_sequence_numbers_of_its_own_events() {
        let (_dir, db, writer) = sqlite_writer().await;
        let event = |event_type: &str| {
            crate::events::NewEvent {
                account_sid: "AC1",
                event_type,
                source: "/test".into(),
                subject: None,
                time_ms: 0,
                data: serde_json::json!({}),
            }
            .statement()
        };
        let queue = queue_row("QU1");
        // Submitted together, so they share a batch and its multi-row inserts.
        let first = writer.submit(vec![event("a.one"), queue, event("a.two")]);
        let none = writer.submit(Vec::new());
        let second = writer.submit(vec![event("b.one")]);
        let (first, none, second) = (
            first.sequences().await.expect("first"),
            none.sequences().await.expect("none"),
            second.sequences().await.expect("second"),
        );
        assert!(none.is_empty());
        let stored: Vec<(i64, String)> =
            sqlx::query_as("SELECT sequence, type FROM events ORDER BY sequence")
                .fetch_all(db.pool())
                .await
                .expect("events");
        let types_of = |sequences: &[i64]| -> Vec<String> {
            sequences
                .iter()
                .filter_map(|n| stored.iter().find(|(s, _)| s == n))
                .map(|(_, t)| t.clone())
                .collect()
        };
        assert_eq!(types_of(&first), vec!["a.one", "a.two"]);
        assert_eq!(types_of(&second), vec!["b.one"]);
    }

    #[tokio::test]
    async fn an_in_memory_database_is_refused_with_a_way_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = Db::open(Some("sqlite::memory:"), dir.path())
            .await
            .err()
            .expect("refused");
        assert!(
            error.to_string().contains("give a file (sqlite://PATH)"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn parameters_bind_by_their_number_in_any_order() {
        let (_dir, db, writer) = sqlite_writer().await;
        // `$2` comes first in the text: SQLite would number it 1 if bound by position.
        let change = vec![Statement::new(
            "INSERT INTO queues (friendly_name, sid, account_sid, max_size, average_wait_ms, dequeued_count, date_created, date_updated) VALUES ($2, $1, 'AC1', $3, 0, 0, $3, $3)",
            vec!["QU1".into(), "support".into(), 7i64.into()],
        )];
        writer.submit(change).wait().await.expect("committed");
        let (name, size): (String, i64) = sqlx::query_as(
            "SELECT friendly_name, CAST(max_size AS BIGINT) FROM queues WHERE sid = 'QU1'",
        )
        .fetch_one(db.pool())
        .await
        .expect("row");
        assert_eq!((name.as_str(), size), ("support", 7));
    }
}
