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
//!
//! The log starts over from its beginning only when a write transaction begins with every frame
//! of it copied back. A checkpoint running beside a writer that never pauses copies back what was
//! there when it started, while the writer appends more: the log would grow for as long as the
//! writes go on (gigabytes in a few minutes of sustained load, every frame a newly allocated
//! block of the file, and a restart after a crash reading all of it). So once the log is long,
//! the checkpointer copies back without pausing until little is appended while it does, and the
//! writer copies that short tail itself between two batches: its next transaction starts the log
//! over, and the file is cut back to [`Checkpointing::file_limit`].

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, watch};

use crate::config::DatabaseSettings;

use super::{
    Ack, BATCH_LIMIT, Backlog, Change, NotCommitted, Param, Sequences, acknowledge, announce_head,
    append_runs, appends_to_event_log, assign_sequences, first_sequences, insert_sql, owners,
    record_batch, split,
};

/// Checkpoints in a row that a long log gets at most before its tail is handed to the writer.
const CATCH_UP_PASSES: usize = 8;

/// How often the write-ahead log is copied back, and when it is started over under writes that
/// never pause.
#[derive(Debug, Clone, Copy)]
pub(super) struct Checkpointing {
    /// The checkpointer's pause after each checkpoint: under a busy writer it copies the log back
    /// about that often (ten times a second by default), each time what the commits since the
    /// last one wrote.
    pub pause: Duration,
    /// Frames in the log past which the checkpointer works to start it over.
    pub restart_after: i64,
    /// Frames appended during one checkpoint that are few enough for the writer to copy back
    /// itself between two batches (each frame is one page, 4 KiB by default).
    pub tail: i64,
}

impl Checkpointing {
    /// From the operator's settings (by default about 64 MiB of log, and a tail of about 1 MiB:
    /// a few milliseconds of the writer's time), once checked.
    pub fn from_settings(settings: &DatabaseSettings) -> anyhow::Result<Checkpointing> {
        settings.check()?;
        let DatabaseSettings {
            checkpoint_pause_ms,
            log_restart_pages,
            log_tail_pages,
            ..
        } = *settings;
        Ok(Checkpointing {
            pause: Duration::from_millis(checkpoint_pause_ms),
            restart_after: log_restart_pages.into(),
            tail: log_tail_pages.into(),
        })
    }

    /// The size the log's file is cut back to when it starts over (`journal_size_limit`): twice
    /// the log that triggers a restart, since it grows on while the checkpointer catches up.
    fn file_limit(&self, page_size: i64) -> i64 {
        2 * self.restart_after * (page_size + WAL_FRAME_HEADER)
    }
}

/// Bytes each frame of the write-ahead log adds to its page.
const WAL_FRAME_HEADER: i64 = 24;

/// Opens the connections, and starts the checkpointer and the writer threads.
pub(super) fn start(
    path: &Path,
    rx: mpsc::UnboundedReceiver<(Change, Ack)>,
    announce: watch::Sender<i64>,
    checkpointing: Checkpointing,
    backlog: Backlog,
) -> anyhow::Result<()> {
    let open =
        || open(path).with_context(|| format!("could not open {} for writing", path.display()));
    let (conn, checkpoint_conn) = (open()?, open()?);
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    conn.execute_batch(&format!(
        "PRAGMA journal_size_limit = {};",
        checkpointing.file_limit(page_size)
    ))?;
    let (checkpointer, wake) = std_mpsc::channel();
    let restart = Arc::new(AtomicBool::new(false));
    let wanted = restart.clone();
    std::thread::Builder::new()
        .name("switchboard-checkpoints".into())
        .spawn(move || checkpoints(checkpoint_conn, wake, wanted, checkpointing))
        .context("could not start the database checkpoint thread")?;
    std::thread::Builder::new()
        .name("switchboard-writer".into())
        .spawn(move || write_batches(conn, rx, announce, checkpointer, restart, backlog))
        .context("could not start the database writer thread")?;
    Ok(())
}

/// Opens the writer's connection with the pragmas every connection of the pool has; its commits
/// leave checkpoints to [`checkpoints`].
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;",
    )?;
    // Every statement text the host's changes use, plus one multi-row insert per row count.
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// What a checkpoint found: frames in the log, and frames copied back to the database file.
#[derive(Debug, Clone, Copy, Default)]
struct Pass {
    log: i64,
    copied: i64,
}

/// A passive checkpoint: copies back what no reader still needs, never waits for anyone.
fn checkpoint(conn: &Connection) -> Pass {
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok(Pass {
            log: row.get(1)?,
            copied: row.get(2)?,
        })
    }) {
        Ok(pass) => pass,
        Err(error) => {
            tracing::warn!(%error, "write-ahead log checkpoint failed; the next one retries");
            Pass::default()
        }
    }
}

/// The checkpointer thread: a passive checkpoint after the writer has committed, and a last one
/// when the writer stops. When the log is long, it checkpoints until a pass finds little appended
/// since the one before, then asks the writer (`restart`) to copy back that tail; until the
/// writer has, it leaves the log alone, so the two never wait on each other's copy.
fn checkpoints(
    conn: Connection,
    wake: std_mpsc::Receiver<()>,
    restart: Arc<AtomicBool>,
    checkpointing: Checkpointing,
) {
    // Wake-ups that arrive during a checkpoint or the pause stay queued and bring the next one.
    while wake.recv().is_ok() {
        while wake.try_recv().is_ok() {}
        if restart.load(Ordering::Acquire) {
            continue;
        }
        let mut pass = checkpoint(&conn);
        if pass.log > checkpointing.restart_after {
            for _ in 0..CATCH_UP_PASSES {
                let next = checkpoint(&conn);
                let appended = next.log - pass.log;
                pass = next;
                if appended <= checkpointing.tail {
                    restart.store(true, Ordering::Release);
                    break;
                }
            }
        }
        std::thread::sleep(checkpointing.pause);
    }
    checkpoint(&conn);
}

/// The writer thread: commits what is waiting as one transaction, acknowledges, repeats until
/// every [`super::Writer`] is gone. Tells the checkpointer after each commit, and copies back the
/// log's tail when the checkpointer asks (`restart`).
fn write_batches(
    mut conn: Connection,
    mut rx: mpsc::UnboundedReceiver<(Change, Ack)>,
    announce: watch::Sender<i64>,
    checkpointer: std_mpsc::Sender<()>,
    restart: Arc<AtomicBool>,
    backlog: Backlog,
) {
    let mut batch = Vec::with_capacity(BATCH_LIMIT);
    while rx.blocking_recv_many(&mut batch, BATCH_LIMIT) > 0 {
        backlog.taken(batch.len());
        record_batch(batch.len(), rx.len());
        write_batch(&mut conn, &mut batch, &announce);
        copy_back_tail(&conn, &restart);
        let _ = checkpointer.send(());
    }
}

/// Commits one batch as a transaction and answers each of its changes, announcing the log's new
/// head; the batch is left empty.
fn write_batch(
    conn: &mut Connection,
    batch: &mut Vec<(Change, Ack)>,
    announce: &watch::Sender<i64>,
) {
    let result = match commit(conn, batch) {
        Ok(sequences) => Ok(sequences),
        // One change the database refuses (a constraint, a bad value) must not take the
        // others of its batch down with it: commit them one by one, each with its own result.
        Err(error) if batch.len() > 1 => {
            tracing::warn!(%error, changes = batch.len(), "a batch of state changes failed; committing them one at a time");
            for entry in batch.drain(..) {
                let single = std::slice::from_ref(&entry);
                let result = commit_with_retry(conn, single);
                if let Ok(sequences) = &result {
                    announce_head(announce, sequences);
                }
                let _ = entry.1.send(result.map(first_sequences));
            }
            return;
        }
        Err(_) => commit_with_retry(conn, batch),
    };
    if let Ok(sequences) = &result {
        announce_head(announce, sequences);
    }
    acknowledge(batch, result);
}

/// The writer's part in starting the log over: between two batches nothing else appends, so a
/// checkpoint copies back every frame no reader still needs, and the next transaction starts the
/// log from its beginning (a reader on an older snapshot defers that to a later try).
fn copy_back_tail(conn: &Connection, restart: &AtomicBool) {
    if restart.load(Ordering::Acquire) {
        let pass = checkpoint(conn);
        tracing::debug!(
            frames = pass.log,
            copied = pass.copied,
            "write-ahead log copied back to start it over"
        );
        restart.store(false, Ordering::Release);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Db;
    use crate::store::batch::Writer;
    use crate::store::batch::tests::appended_event;

    /// How many times the log has started over: the checkpoint sequence number in its header
    /// (bytes 12 to 15, big-endian), which SQLite increments at every restart.
    fn restarts(log: &Path) -> u32 {
        let header = std::fs::read(log).expect("the write-ahead log");
        u32::from_be_bytes(header[12..16].try_into().expect("a header"))
    }

    #[test]
    fn checkpointing_comes_from_the_settings_and_an_unreachable_tail_is_refused() {
        let settings = DatabaseSettings {
            checkpoint_pause_ms: 250,
            log_restart_pages: 1_000,
            log_tail_pages: 10,
            ..DatabaseSettings::default()
        };
        let checkpointing = Checkpointing::from_settings(&settings).expect("valid settings");
        assert_eq!(checkpointing.pause, Duration::from_millis(250));
        assert_eq!(
            (checkpointing.restart_after, checkpointing.tail),
            (1_000, 10)
        );
        assert_eq!(checkpointing.file_limit(4096), 2 * 1_000 * (4096 + 24));
        for (restart, tail) in [(100, 100), (100, 500), (100, 0)] {
            let settings = DatabaseSettings {
                log_restart_pages: restart,
                log_tail_pages: tail,
                ..settings
            };
            let error = Checkpointing::from_settings(&settings).expect_err("refused");
            let message = error.to_string();
            assert!(
                message.contains(&format!("database.log_tail_pages is {tail}"))
                    && message.contains(&format!("database.log_restart_pages is {restart}")),
                "{message}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_starts_over_while_writes_never_pause() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(None, dir.path()).await.expect("database");
        let path = db.sqlite_path().expect("a SQLite file").to_path_buf();
        let (tx, rx) = mpsc::unbounded_channel();
        let (announce, events_committed) = watch::channel(0);
        let checkpointing = Checkpointing {
            pause: Duration::from_millis(10),
            restart_after: 64,
            tail: 16,
        };
        let backlog = Backlog::default();
        start(&path, rx, announce, checkpointing, backlog.clone()).expect("writer");
        let writer = Writer {
            tx,
            events_committed,
            backlog,
        };
        let data = "x".repeat(1_000);
        let event = |n: usize| appended_event("load.test".into(), n as i64, &data);
        // Everything is queued before the first batch commits, so the writer always has the next
        // batch waiting: without the writer's part, no checkpoint could ever catch up with it.
        let changes = 20_000;
        let committed: Vec<_> = (0..changes)
            .map(|n| writer.submit(vec![event(n)]))
            .collect();
        for change in committed {
            change.wait().await.expect("committed");
        }
        assert_eq!(writer.backlog(), 0, "every change was taken");
        let mut log = path.clone().into_os_string();
        log.push("-wal");
        let log = std::path::PathBuf::from(log);
        let written = (changes * data.len()) as u64;
        let size = std::fs::metadata(&log).expect("the log").len();
        assert!(
            restarts(&log) >= 3,
            "the log started over {} times while {written} bytes were written",
            restarts(&log)
        );
        assert!(
            size < written / 4,
            "the log holds {size} bytes of the {written} written"
        );
        let stored: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM events")
            .fetch_one(db.pool())
            .await
            .expect("count");
        assert_eq!(stored, changes as i64, "every change is in the database");
    }
}
