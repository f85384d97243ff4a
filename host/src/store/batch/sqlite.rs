//! The SQLite side of the group-commit writer: a thread with a connection of its own.
//!
//! Through sqlx every statement is a round trip between an async task and the connection's worker
//! thread, and under load each hop waits for a turn on the runtime's two cores: a batch of a few
//! hundred statements spent most of its time waiting rather than writing, and the writer is the
//! one serial stage every state change passes through. Here a batch runs synchronously, statement
//! after statement on one thread with its prepared statements cached, and only the
//! acknowledgements cross back to the async side.
//!
//! Checkpoints (copying the write-ahead log back into the database file) run on a second thread
//! with its own connection. Left to SQLite they would run inside whichever commit crosses the
//! log's threshold, and every change waiting behind that commit would wait for the copy and its
//! sync as well. A passive checkpoint never blocks the writer.

use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, watch};

use super::{
    Ack, BATCH_LIMIT, Change, NotCommitted, Param, Sequences, acknowledge, announce_head,
    append_runs, appends_to_event_log, assign_sequences, first_sequences, insert_sql, owners,
    split,
};

/// The checkpointer's pause after each checkpoint: under a busy writer it copies the log back
/// about ten times a second, each time what the commits since the last one wrote.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(100);

/// Opens the writer's connection with the pragmas every connection of the pool has; its commits
/// leave checkpoints to [`checkpoints`].
pub(super) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;",
    )?;
    // Every statement text the host's changes use, plus one multi-row insert per row count.
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// The checkpointer thread: a passive checkpoint after the writer has committed, and a last one
/// when the writer stops.
pub(super) fn checkpoints(conn: Connection, wake: std_mpsc::Receiver<()>) {
    let checkpoint = || {
        if let Err(error) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
            tracing::warn!(%error, "write-ahead log checkpoint failed; the next one retries");
        }
    };
    // Wake-ups that arrive during a checkpoint or the pause stay queued and bring the next one.
    while wake.recv().is_ok() {
        while wake.try_recv().is_ok() {}
        checkpoint();
        std::thread::sleep(CHECKPOINT_PAUSE);
    }
    checkpoint();
}

/// The writer thread: commits what is waiting as one transaction, acknowledges, repeats until
/// every [`super::Writer`] is gone. Tells the checkpointer after each commit.
pub(super) fn write_batches(
    mut conn: Connection,
    mut rx: mpsc::UnboundedReceiver<(Change, Ack)>,
    announce: watch::Sender<i64>,
    checkpointer: std_mpsc::Sender<()>,
) {
    let mut batch = Vec::with_capacity(BATCH_LIMIT);
    while rx.blocking_recv_many(&mut batch, BATCH_LIMIT) > 0 {
        metrics::counter!("switchboard_state_changes_total").increment(batch.len() as u64);
        let result = match commit(&mut conn, &batch) {
            Ok(sequences) => Ok(sequences),
            // One change the database refuses (a constraint, a bad value) must not take the
            // others of its batch down with it: commit them one by one, each with its own result.
            Err(error) if batch.len() > 1 => {
                tracing::warn!(%error, changes = batch.len(), "a batch of state changes failed; committing them one at a time");
                for entry in batch.drain(..) {
                    let single = std::slice::from_ref(&entry);
                    let result = commit_with_retry(&mut conn, single);
                    if let Ok(sequences) = &result {
                        announce_head(&announce, sequences);
                    }
                    let _ = entry.1.send(result.map(first_sequences));
                }
                let _ = checkpointer.send(());
                continue;
            }
            Err(_) => commit_with_retry(&mut conn, &batch),
        };
        if let Ok(sequences) = &result {
            announce_head(&announce, sequences);
        }
        acknowledge(&mut batch, result);
        let _ = checkpointer.send(());
    }
}

/// A database that is briefly unavailable should not lose changes: retry with backoff, then report.
/// A change the database refuses (a constraint, a bad value) fails at once: retrying cannot help,
/// and every other change waits behind this thread.
fn commit_with_retry(
    conn: &mut Connection,
    batch: &[(Change, Ack)],
) -> Result<Vec<Sequences>, NotCommitted> {
    let mut delay = Duration::from_millis(50);
    let mut attempt = 0;
    loop {
        match commit(conn, batch) {
            Ok(sequences) => return Ok(sequences),
            Err(error) if attempt < 5 && transient(&error) => {
                tracing::warn!(%error, attempt, "state changes not committed; retrying");
                std::thread::sleep(delay);
                delay *= 2;
                attempt += 1;
            }
            Err(error) => {
                tracing::error!(%error, changes = batch.len(), "state changes lost after retries");
                return Err(NotCommitted(error.to_string()));
            }
        }
    }
}

/// Errors that may pass: the database busy or locked past the busy timeout, or the disk.
fn transient(error: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::OutOfMemory
        )
    )
}

/// Commits the batch as one transaction. On failure the transaction is rolled back; should the
/// rollback itself fail, it is retried here so the next batch does not start inside it.
fn commit(conn: &mut Connection, batch: &[(Change, Ack)]) -> rusqlite::Result<Vec<Sequences>> {
    let result = write(conn, batch);
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

/// Runs a batch in one transaction. The event log's sequence is its row id: one writer inserts a
/// run of rows with consecutive ids, the last of which SQLite reports.
///
/// The multi-row inserts say `OR ROLLBACK`. A statement that writes several rows may fail part
/// way, so by default SQLite keeps a statement journal, a copy of every page the statement
/// changes, to undo that statement alone; a failure here rolls back the whole transaction anyway
/// ([`commit`]), and saying so spares the copies.
fn write(conn: &mut Connection, batch: &[(Change, Ack)]) -> rusqlite::Result<Vec<Sequences>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (plain, appended) = split(batch);
    for statement in plain {
        execute(&tx, statement.sql, Numbering::Named, |n| {
            n.checked_sub(1).and_then(|i| statement.params.get(i))
        })?;
    }
    let owners = owners(batch);
    let mut sequences = vec![Sequences::new(); batch.len()];
    let mut offset = 0;
    for rows in append_runs(&appended) {
        if let Some((sql, width)) = insert_sql(rows, "INSERT OR ROLLBACK") {
            execute(&tx, &sql, Numbering::InOrder, |n| {
                let i = n.checked_sub(1)?;
                rows.get(i / width)?.params.get(i % width)
            })?;
            if appends_to_event_log(rows) {
                let last = tx.last_insert_rowid();
                let first = last - rows.len() as i64 + 1;
                assign_sequences(&mut sequences, &owners, offset, first..=last);
            }
        }
        offset += rows.len();
    }
    tx.commit()?;
    Ok(sequences)
}

/// How a statement's `$n` parameters map to SQLite's parameter indexes.
#[derive(Clone, Copy)]
enum Numbering {
    /// SQLite numbers named parameters by first appearance, so each index's name is looked up.
    Named,
    /// `$1, $2, ...` each appear once, in order: the index is the number. Looking names up costs
    /// a scan of the statement's parameters each, which a multi-row insert of hundreds of
    /// parameters feels.
    InOrder,
}

/// Runs one statement; `param(n)` gives the value of `$n`, the form both backends accept.
fn execute<'p>(
    conn: &Connection,
    sql: &str,
    numbering: Numbering,
    param: impl Fn(usize) -> Option<&'p Param>,
) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(sql)?;
    for index in 1..=statement.parameter_count() {
        let number = match numbering {
            Numbering::InOrder => index,
            Numbering::Named => statement
                .parameter_name(index)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|digits| digits.parse::<usize>().ok())
                .unwrap_or(index),
        };
        match param(number) {
            Some(Param::Text(text)) => statement.raw_bind_parameter(index, text.as_deref())?,
            Some(Param::Int(int)) => statement.raw_bind_parameter(index, *int)?,
            None => statement.raw_bind_parameter(index, rusqlite::types::Null)?,
        }
    }
    let mut rows = statement.raw_query();
    while rows.next()?.is_some() {}
    Ok(())
}
