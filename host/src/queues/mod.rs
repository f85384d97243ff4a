//! Call queues: where callers wait, in what order, and how a second party takes them out.
//!
//! The facade is [`Queues`]. A call session joins a queue with [`Queues::join`], which commits the
//! caller's membership (and its place in the order) before returning, so nothing the caller hears
//! can precede the durable record of it being queued. The session then keeps the returned [`Seat`]
//! and listens on its inbox while the wait-state application plays. A dequeuer (a `Dial` to the
//! queue, the Members REST resource, a module through the `queues` interface) claims a caller and
//! sends it a [`Dequeue`] through that inbox; the caller's own session carries it out and records
//! why it left with [`Queues::leave`]. A redirect is the one dequeue that needs nothing from the
//! caller's session before it takes effect, so the dequeuer takes the caller out and commits that
//! itself ([`Queues::redirect_member`]), then tells the session where its call goes: the answer to
//! the dequeuer waits only for the commit, not for a busy session. Only the session that owns a
//! call ever changes the call itself.
//!
//! The order lives in memory ([`procession::Procession`]) and in `queue_members`; at start the
//! rows are read back in service order and handed to telephony, which resumes each caller's wait.

pub mod api;
pub mod procession;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sqlx::Row;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::api::error::{ApiError, ApiResult, Code};
use crate::clock::Clock;
use crate::events::NewEvent;
use crate::runtime::io::{QueueResult, QueueStatus};
use crate::sid::new_sid;
use crate::store::batch::{Change, Committed, Statement, Writer};
use crate::store::{Db, rfc2822};
use procession::{Entry, Place, Procession};

/// Queue size limit when none is given, and the largest allowed (as on the reference platform).
pub const DEFAULT_MAX_SIZE: i64 = 1000;
pub const LARGEST_MAX_SIZE: i64 = 5000;
/// Longest queue name.
pub const MAX_NAME_CHARS: usize = 64;
/// How many recent dequeues the average wait follows (a moving average over about this many).
const AVERAGE_WINDOW: i64 = 50;

/// What a dequeuer asks of a queued caller's session.
pub enum Dequeue {
    /// Leave the queue and run the instructions at `uri` (`QueueResult=redirected`).
    Redirect(Redirect),
    /// Leave the queue and be connected to the dequeuing call.
    Connect(Connect),
    /// Ring a worker for the caller (a reservation's dequeue instruction) and, once the worker
    /// answers, leave the queue connected to them.
    Ring(Ring),
}

impl std::fmt::Debug for Dequeue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dequeue::Redirect(r) => write!(f, "Redirect({})", r.uri),
            Dequeue::Connect(c) => write!(f, "Connect({})", c.dequeuer_call_sid),
            Dequeue::Ring(r) => write!(f, "Ring({})", r.to),
        }
    }
}

/// The caller has been taken out of its queue (the dequeuer submitted its leaving) and goes to
/// `uri` next.
pub struct Redirect {
    pub uri: String,
    pub method: String,
}

pub struct Connect {
    /// The call that dequeues (an agent's call running `Dial` with a `Queue`).
    pub dequeuer_call_sid: String,
    pub dequeuer_from: String,
    /// Instructions run on the queued caller before the two are connected.
    pub url: Option<String>,
    /// The caller's answer: sent once it is ready to be connected; dropped if it cannot be.
    pub accepted: oneshot::Sender<()>,
    /// The caller's end of the bridge.
    pub end: BridgeEnd,
}

/// Whom to ring for a queued caller, from a work-distribution reservation.
#[derive(Debug, Clone)]
pub struct Ring {
    /// The worker's number (its `contact_uri`, or the instruction's `to`).
    pub to: String,
    /// The caller id the worker sees; none = the caller's number.
    pub from: Option<String>,
    pub timeout_seconds: u32,
    /// Where the worker's leg posts its call progress, and on which events (none = `completed`).
    pub status_callback: Option<String>,
    pub status_callback_events: Vec<String>,
}

/// One side of a connection between two calls run by different sessions: each side learns when
/// the other is done, whether it said so or its session simply ended.
pub struct BridgeEnd {
    done: Option<oneshot::Sender<()>>,
    peer_done: oneshot::Receiver<()>,
}

impl BridgeEnd {
    /// Two ends that watch each other.
    pub fn pair() -> (BridgeEnd, BridgeEnd) {
        let (a_done, b_hears) = oneshot::channel();
        let (b_done, a_hears) = oneshot::channel();
        (
            BridgeEnd {
                done: Some(a_done),
                peer_done: a_hears,
            },
            BridgeEnd {
                done: Some(b_done),
                peer_done: b_hears,
            },
        )
    }

    /// Tells the other side this side is done.
    pub fn hang_up(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }

    /// Resolves when the other side is done.
    pub async fn peer_done(&mut self) {
        let _ = (&mut self.peer_done).await;
    }
}

/// A queue as stored.
#[derive(Debug, Clone)]
pub struct QueueRecord {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub max_size: i64,
    pub date_created: i64,
    pub date_updated: i64,
}

/// A queue as the reference platform's API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueueResource {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub current_size: i64,
    pub max_size: i64,
    /// Seconds, the moving average of the waits of recently dequeued callers.
    pub average_wait_time: i64,
    pub date_created: String,
    pub date_updated: String,
    pub uri: String,
    #[schema(value_type = Object)]
    pub subresource_uris: serde_json::Value,
}

/// A waiting caller as the reference platform's API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub call_sid: String,
    pub queue_sid: String,
    pub date_enqueued: String,
    /// 1 = the head of the queue.
    pub position: i64,
    /// Seconds waited so far.
    pub wait_time: i64,
    pub priority: i32,
    pub uri: String,
}

/// Which member a request addresses.
#[derive(Debug, Clone)]
pub enum MemberRef {
    Front,
    Call(String),
}

/// What a joining caller leaves behind so its wait can resume after a restart.
#[derive(Debug, Clone)]
pub struct Membership {
    pub account_sid: String,
    pub queue_sid: String,
    pub call_sid: String,
    pub priority: i32,
    /// `None` = the host's hold music; `Some("")` = silence.
    pub wait_url: Option<String>,
    pub action_url: Option<String>,
    /// The document the enqueue came from, for relative URLs in the continuation.
    pub document_url: String,
    /// JSON array of the instructions after the enqueue.
    pub continuation: String,
    pub workflow_sid: Option<String>,
    pub task_attributes: Option<String>,
}

/// A stored membership, read back at start.
#[derive(Debug, Clone)]
pub struct StoredMember {
    pub membership: Membership,
    pub queue_name: String,
    pub enqueued_at: i64,
}

/// A caller's place in a queue, held by its session.
pub struct Seat {
    pub queue_sid: String,
    pub queue_name: String,
    pub account_sid: String,
    pub call_sid: String,
    pub enqueued_at: i64,
    /// The workflow its enqueue named: a task of that workflow routes the caller to a worker.
    pub workflow_sid: Option<String>,
    /// Taken by the session that serves the caller.
    pub inbox: Option<mpsc::UnboundedReceiver<Box<Dequeue>>>,
}

/// Why a caller could not join.
#[derive(Debug)]
pub enum JoinError {
    /// The queue is at its size limit (`QueueResult=queue-full`).
    Full,
    /// The membership could not be committed (`QueueResult=system-error`).
    NotCommitted(String),
}

/// A caller a dequeuer has claimed.
pub struct Claim {
    pub call_sid: String,
    pub queue_sid: String,
    pub enqueued_at: i64,
    pub inbox: mpsc::UnboundedSender<Box<Dequeue>>,
}

/// The live state of one queue.
struct Line {
    record: QueueRecord,
    procession: Procession,
    average_wait_ms: i64,
    dequeued_count: i64,
    /// Woken when a caller joins, for dequeuers waiting on an empty queue.
    joined: Arc<Notify>,
}

impl Line {
    fn new(record: QueueRecord, average_wait_ms: i64, dequeued_count: i64) -> Self {
        Line {
            record,
            procession: Procession::default(),
            average_wait_ms,
            dequeued_count,
            joined: Arc::new(Notify::new()),
        }
    }

    /// Takes `call_sid` out of the procession for `result`: the member as it was and the change
    /// that records its leaving (the row, the queue's average wait, the events). `None` when it
    /// is not in the queue.
    fn take_out(
        &mut self,
        call_sid: &str,
        enqueued_at: i64,
        result: QueueResult,
        now: i64,
    ) -> Option<(Member, Change)> {
        let (position, entry) = self.procession.remove(call_sid)?;
        let wait_ms = (now - enqueued_at).max(0);
        let member = self.member(&entry, position, now);
        let size = self.procession.len();
        let mut change: Change = vec![Statement::new(
            "DELETE FROM queue_members WHERE call_sid = $1",
            vec![call_sid.to_string().into()],
        )];
        if matches!(result, QueueResult::Bridged | QueueResult::Redirected) {
            self.dequeued_count += 1;
            let window = self.dequeued_count.min(AVERAGE_WINDOW);
            self.average_wait_ms += (wait_ms - self.average_wait_ms) / window;
            change.push(Statement::new(
                "UPDATE queues SET average_wait_ms = $2, dequeued_count = $3 WHERE sid = $1",
                vec![
                    self.record.sid.clone().into(),
                    self.average_wait_ms.into(),
                    self.dequeued_count.into(),
                ],
            ));
        }
        change.push(event(
            &self.record,
            "queue.member-left",
            call_sid,
            now,
            serde_json::json!({
                "queue_sid": self.record.sid,
                "queue": self.record.friendly_name,
                "call_sid": call_sid,
                "result": queue_result_name(result),
                "position": position,
                "wait_time": wait_ms / 1000,
                "wait_ms": wait_ms,
                "current_size": size,
            }),
        ));
        if position <= size {
            change.push(positions_changed(&self.record, position, -1, size, now));
        }
        Some((member, change))
    }

    fn resource(&self) -> QueueResource {
        let r = &self.record;
        let uri = queue_uri(&r.account_sid, &r.sid);
        QueueResource {
            sid: r.sid.clone(),
            account_sid: r.account_sid.clone(),
            friendly_name: r.friendly_name.clone(),
            current_size: self.procession.len() as i64,
            max_size: r.max_size,
            average_wait_time: (self.average_wait_ms + 500) / 1000,
            date_created: rfc2822(r.date_created),
            date_updated: rfc2822(r.date_updated),
            subresource_uris: serde_json::json!({
                "members": format!("{}/Members.json", uri.trim_end_matches(".json")),
            }),
            uri,
        }
    }

    fn member(&self, entry: &Entry, position: usize, now: i64) -> Member {
        let r = &self.record;
        Member {
            call_sid: entry.call_sid.clone(),
            queue_sid: r.sid.clone(),
            date_enqueued: rfc2822(entry.enqueued_at),
            position: position as i64,
            wait_time: (now - entry.enqueued_at).max(0) / 1000,
            priority: entry.priority,
            uri: format!(
                "/2010-04-01/Accounts/{}/Queues/{}/Members/{}.json",
                r.account_sid, r.sid, entry.call_sid
            ),
        }
    }
}

fn queue_uri(account_sid: &str, queue_sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account_sid}/Queues/{queue_sid}.json")
}

#[derive(Default)]
struct Lines {
    by_sid: HashMap<String, Line>,
    /// (account sid, friendly name) → queue sid.
    by_name: HashMap<(String, String), String>,
}

struct Inner {
    db: Db,
    writer: Writer,
    clock: Clock,
    lines: Mutex<Lines>,
    next_sequence: AtomicI64,
}

/// The queues facade. Cheap to clone.
#[derive(Clone)]
pub struct Queues(Arc<Inner>);

impl Queues {
    pub fn new(db: Db, writer: Writer, clock: Clock) -> Self {
        Queues(Arc::new(Inner {
            db,
            writer,
            clock,
            lines: Mutex::new(Lines::default()),
            next_sequence: AtomicI64::new(1),
        }))
    }

    fn lines(&self) -> std::sync::MutexGuard<'_, Lines> {
        self.0
            .lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn clock(&self) -> &Clock {
        &self.0.clock
    }

    /// Reads every queue and every waiting caller back into memory, in service order, and returns
    /// the callers so their calls can resume waiting.
    pub async fn recover(&self) -> Result<Vec<StoredMember>, sqlx::Error> {
        let queues = sqlx::query(
            "SELECT sid, account_sid, friendly_name, max_size, average_wait_ms, dequeued_count, date_created, date_updated FROM queues",
        )
        .fetch_all(self.0.db.pool())
        .await?;
        let rows = sqlx::query(
            "SELECT call_sid, queue_sid, account_sid, priority, sequence, enqueued_at, wait_url, action_url, document_url, continuation, workflow_sid, task_attributes
             FROM queue_members ORDER BY queue_sid, priority DESC, sequence",
        )
        .fetch_all(self.0.db.pool())
        .await?;
        let mut lines = Lines::default();
        for row in queues {
            let record = QueueRecord {
                sid: row.try_get("sid")?,
                account_sid: row.try_get("account_sid")?,
                friendly_name: row.try_get("friendly_name")?,
                max_size: row.try_get("max_size")?,
                date_created: row.try_get("date_created")?,
                date_updated: row.try_get("date_updated")?,
            };
            lines.by_name.insert(
                (record.account_sid.clone(), record.friendly_name.clone()),
                record.sid.clone(),
            );
            let line = Line::new(
                record,
                row.try_get("average_wait_ms")?,
                row.try_get("dequeued_count")?,
            );
            lines.by_sid.insert(line.record.sid.clone(), line);
        }
        let mut members = Vec::new();
        let mut last_sequence = 0;
        for row in rows {
            let priority: i64 = row.try_get("priority")?;
            let priority = i32::try_from(priority).unwrap_or(0);
            let sequence: i64 = row.try_get("sequence")?;
            last_sequence = last_sequence.max(sequence);
            let membership = Membership {
                account_sid: row.try_get("account_sid")?,
                queue_sid: row.try_get("queue_sid")?,
                call_sid: row.try_get("call_sid")?,
                priority,
                wait_url: row.try_get("wait_url")?,
                action_url: row.try_get("action_url")?,
                document_url: row.try_get("document_url")?,
                continuation: row.try_get("continuation")?,
                workflow_sid: row.try_get("workflow_sid")?,
                task_attributes: row.try_get("task_attributes")?,
            };
            let enqueued_at: i64 = row.try_get("enqueued_at")?;
            let Some(line) = lines.by_sid.get_mut(&membership.queue_sid) else {
                continue;
            };
            line.procession.insert(Entry {
                call_sid: membership.call_sid.clone(),
                place: Place::new(priority, sequence),
                priority,
                enqueued_at,
                claimed: false,
                inbox: None,
            });
            members.push(StoredMember {
                queue_name: line.record.friendly_name.clone(),
                membership,
                enqueued_at,
            });
        }
        self.0
            .next_sequence
            .store(last_sequence + 1, Ordering::SeqCst);
        *self.lines() = lines;
        Ok(members)
    }

    /// The queue named `name` in the account, created (with the default size) on first use.
    pub async fn ensure(&self, account_sid: &str, name: &str) -> ApiResult<QueueRecord> {
        if let Some(record) = self.find_by_name(account_sid, name) {
            return Ok(record);
        }
        match self.create(account_sid, name, DEFAULT_MAX_SIZE).await {
            Ok(resource) => self
                .find(account_sid, &resource.sid)
                .ok_or_else(|| ApiError::not_found(&resource.sid)),
            // Another call created it at the same moment.
            Err(error) if error.code == Code::Conflict => self
                .find_by_name(account_sid, name)
                .ok_or_else(|| ApiError::not_found(name)),
            Err(error) => Err(error),
        }
    }

    pub fn find_by_name(&self, account_sid: &str, name: &str) -> Option<QueueRecord> {
        let lines = self.lines();
        let sid = lines
            .by_name
            .get(&(account_sid.to_string(), name.to_string()))?;
        lines.by_sid.get(sid).map(|line| line.record.clone())
    }

    fn find(&self, account_sid: &str, queue_sid: &str) -> Option<QueueRecord> {
        self.lines()
            .by_sid
            .get(queue_sid)
            .filter(|line| line.record.account_sid == account_sid)
            .map(|line| line.record.clone())
    }

    /// Puts a caller in a queue and commits it there. The caller is refused when the queue is
    /// full; a caller whose membership cannot be committed is taken out again.
    pub async fn join(&self, membership: Membership) -> Result<Seat, JoinError> {
        let now = self.0.clock.now_ms();
        let sequence = self.0.next_sequence.fetch_add(1, Ordering::SeqCst);
        let (inbox, receiver) = mpsc::unbounded_channel();
        let (change, queue_name, joined) = {
            let mut lines = self.lines();
            let Some(line) = lines.by_sid.get_mut(&membership.queue_sid) else {
                return Err(JoinError::NotCommitted(format!(
                    "queue {} no longer exists",
                    membership.queue_sid
                )));
            };
            if line.procession.len() as i64 >= line.record.max_size {
                return Err(JoinError::Full);
            }
            let position = line.procession.insert(Entry {
                call_sid: membership.call_sid.clone(),
                place: Place::new(membership.priority, sequence),
                priority: membership.priority,
                enqueued_at: now,
                claimed: false,
                inbox: Some(inbox),
            });
            let size = line.procession.len();
            let mut change = vec![
                Statement::new(
                    "INSERT INTO queue_members (call_sid, queue_sid, account_sid, priority, sequence, enqueued_at, wait_url, action_url, document_url, continuation, workflow_sid, task_attributes)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    vec![
                        membership.call_sid.clone().into(),
                        membership.queue_sid.clone().into(),
                        membership.account_sid.clone().into(),
                        i64::from(membership.priority).into(),
                        sequence.into(),
                        now.into(),
                        membership.wait_url.clone().into(),
                        membership.action_url.clone().into(),
                        membership.document_url.clone().into(),
                        membership.continuation.clone().into(),
                        membership.workflow_sid.clone().into(),
                        membership.task_attributes.clone().into(),
                    ],
                ),
                event(
                    &line.record,
                    "queue.member-joined",
                    &membership.call_sid,
                    now,
                    serde_json::json!({
                        "queue_sid": line.record.sid,
                        "queue": line.record.friendly_name,
                        "call_sid": membership.call_sid,
                        "position": position,
                        "priority": membership.priority,
                        "current_size": size,
                    }),
                ),
            ];
            if position < size {
                change.push(positions_changed(&line.record, position + 1, 1, size, now));
            }
            (
                change,
                line.record.friendly_name.clone(),
                line.joined.clone(),
            )
        };
        if let Err(error) = self.0.writer.submit(change).wait().await {
            self.remove(&membership.queue_sid, &membership.call_sid);
            return Err(JoinError::NotCommitted(error.to_string()));
        }
        joined.notify_waiters();
        Ok(Seat {
            queue_sid: membership.queue_sid,
            queue_name,
            account_sid: membership.account_sid,
            call_sid: membership.call_sid,
            enqueued_at: now,
            workflow_sid: membership.workflow_sid,
            inbox: Some(receiver),
        })
    }

    /// Takes over a caller read back at start: its session now receives its dequeues.
    pub fn reattach(&self, stored: &StoredMember) -> Option<Seat> {
        let (inbox, receiver) = mpsc::unbounded_channel();
        let joined = {
            let mut lines = self.lines();
            let line = lines.by_sid.get_mut(&stored.membership.queue_sid)?;
            let entry = line.procession.get_mut(&stored.membership.call_sid)?;
            entry.inbox = Some(inbox);
            entry.claimed = false;
            line.joined.clone()
        };
        joined.notify_waiters();
        Some(Seat {
            queue_sid: stored.membership.queue_sid.clone(),
            queue_name: stored.queue_name.clone(),
            account_sid: stored.membership.account_sid.clone(),
            call_sid: stored.membership.call_sid.clone(),
            enqueued_at: stored.enqueued_at,
            workflow_sid: stored.membership.workflow_sid.clone(),
            inbox: Some(receiver),
        })
    }

    /// Drops a stored member whose call is over (it ended while the host was down).
    pub async fn discard(&self, queue_sid: &str, call_sid: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM queue_members WHERE call_sid = $1")
            .bind(call_sid)
            .execute(self.0.db.pool())
            .await?;
        self.remove(queue_sid, call_sid);
        Ok(())
    }

    /// Forgets a caller's membership of a queue without a trace (a join that did not commit).
    fn remove(&self, queue_sid: &str, call_sid: &str) {
        if let Some(line) = self.lines().by_sid.get_mut(queue_sid) {
            line.procession.remove(call_sid);
        }
    }

    /// The figures a wait-state application gets for the seated caller.
    pub fn status(&self, seat: &Seat) -> Option<QueueStatus> {
        let now = self.0.clock.now_ms();
        let lines = self.lines();
        let line = lines.by_sid.get(&seat.queue_sid)?;
        let position = line.procession.position(&seat.call_sid)?;
        Some(QueueStatus {
            queue_sid: line.record.sid.clone(),
            queue_name: line.record.friendly_name.clone(),
            position: position as u32,
            queue_time_seconds: ((now - seat.enqueued_at).max(0) / 1000) as u32,
            average_wait_seconds: ((line.average_wait_ms + 500) / 1000) as u32,
            current_size: line.procession.len() as u32,
            max_size: u32::try_from(line.record.max_size).unwrap_or(u32::MAX),
        })
    }

    /// Takes the seated caller out of its queue for `result` and submits that with its events.
    /// False when the caller was no longer in the queue: most often a dequeuer has taken it out,
    /// and then the [`Dequeue::Redirect`] it sent is already in the seat's inbox.
    pub fn leave(&self, seat: &Seat, result: QueueResult) -> bool {
        let now = self.0.clock.now_ms();
        let change = self
            .lines()
            .by_sid
            .get_mut(&seat.queue_sid)
            .and_then(|line| {
                line.take_out(&seat.call_sid, seat.enqueued_at, result, now)
                    .map(|(_, change)| change)
            });
        match change {
            Some(change) => {
                self.0.writer.submit(change);
                true
            }
            None => false,
        }
    }

    /// Stops a seated caller's session from receiving dequeues without taking it out of the queue:
    /// the host is stopping and the caller's wait resumes at the next start. False when the
    /// caller was no longer in the queue (see [`Queues::leave`]).
    pub fn detach(&self, seat: &Seat) -> bool {
        match self
            .lines()
            .by_sid
            .get_mut(&seat.queue_sid)
            .and_then(|line| line.procession.get_mut(&seat.call_sid))
        {
            Some(entry) => {
                entry.inbox = None;
                true
            }
            None => false,
        }
    }

    /// Gives a claimed caller back to the queue (its dequeuer went away before taking it).
    pub fn release(&self, queue_sid: &str, call_sid: &str) {
        if let Some(entry) = self
            .lines()
            .by_sid
            .get_mut(queue_sid)
            .and_then(|line| line.procession.get_mut(call_sid))
        {
            entry.claimed = false;
        }
    }

    /// Claims the first caller of the queue that no one else is serving.
    pub fn claim(&self, queue_sid: &str, member: &MemberRef) -> Option<Claim> {
        let mut lines = self.lines();
        let line = lines.by_sid.get_mut(queue_sid)?;
        let entry = match member {
            MemberRef::Front => line.procession.first_unclaimed()?,
            MemberRef::Call(call_sid) => line
                .procession
                .get_mut(call_sid)
                .filter(|e| e.available())?,
        };
        entry.claimed = true;
        Some(Claim {
            call_sid: entry.call_sid.clone(),
            queue_sid: queue_sid.to_string(),
            enqueued_at: entry.enqueued_at,
            inbox: entry.inbox.clone()?,
        })
    }

    /// Claims the queued caller `call_sid`, wherever it waits, and asks its session to ring a
    /// worker for it. False when the caller is no longer waiting (or is already being served).
    pub fn ring(&self, call_sid: &str, ring: Ring) -> bool {
        let queue_sid = self
            .lines()
            .by_sid
            .iter()
            .find(|(_, line)| line.procession.get(call_sid).is_some())
            .map(|(sid, _)| sid.clone());
        let Some(queue_sid) = queue_sid else {
            return false;
        };
        let Some(claim) = self.claim(&queue_sid, &MemberRef::Call(call_sid.to_string())) else {
            return false;
        };
        if claim.inbox.send(Box::new(Dequeue::Ring(ring))).is_err() {
            self.release(&queue_sid, call_sid);
            return false;
        }
        true
    }

    /// Woken whenever a caller joins the queue.
    pub fn joined(&self, queue_sid: &str) -> Option<Arc<Notify>> {
        self.lines()
            .by_sid
            .get(queue_sid)
            .map(|line| line.joined.clone())
    }

    /// Takes a member out of the queue and sends its call to `uri` (`QueueResult=redirected`);
    /// answers once the caller's leaving is committed, with the member as it was.
    pub async fn redirect_member(
        &self,
        account_sid: &str,
        queue_sid: &str,
        member: MemberRef,
        uri: &str,
        method: &str,
    ) -> ApiResult<Member> {
        let (left, committed) =
            self.take_out_redirected(account_sid, queue_sid, member, uri, method)?;
        match committed.wait().await {
            Ok(()) => Ok(left),
            Err(error) => Err(ApiError::new(
                Code::Unavailable,
                format!(
                    "call {} left queue {queue_sid} but its leaving could not be stored ({error}); the call has been redirected",
                    left.call_sid
                ),
            )),
        }
    }

    /// The first half of [`Queues::redirect_member`]: the member is out of the queue and its call
    /// on its way to `uri` when this returns; its leaving is committed when the handle resolves.
    /// For a caller that must bound the wait and still tell what happened.
    pub fn take_out_redirected(
        &self,
        account_sid: &str,
        queue_sid: &str,
        member: MemberRef,
        uri: &str,
        method: &str,
    ) -> ApiResult<(Member, Committed)> {
        if self.find(account_sid, queue_sid).is_none() {
            return Err(ApiError::not_found(queue_sid));
        }
        // A claimed caller whose session has just ended is skipped; bounded so a queue of
        // ending calls cannot keep the request busy.
        for _ in 0..8 {
            let Some(claim) = self.claim(queue_sid, &member) else {
                break;
            };
            if let Some(taken) = self.redirect_claimed(&claim, uri, method) {
                return Ok(taken);
            }
        }
        Err(match member {
            MemberRef::Front => ApiError::new(
                Code::NotFound,
                format!("Queue {queue_sid} has no caller waiting to be dequeued"),
            ),
            MemberRef::Call(call_sid) => ApiError::new(
                Code::NotFound,
                format!("Call {call_sid} is not waiting in queue {queue_sid}"),
            ),
        })
    }

    /// Takes a claimed caller out of its queue, submits that, and tells its session to go to
    /// `uri`. `None` when the caller is no longer in the queue.
    ///
    /// All under the queues' lock, so a session that finds itself out of the queue (see
    /// [`Queues::leave`]) finds the redirect in its inbox; and the change is submitted before the
    /// session can hear of it, so a session that waits for the writer to catch up
    /// ([`crate::store::batch::Writer::flush`]) knows its leaving is committed.
    fn redirect_claimed(
        &self,
        claim: &Claim,
        uri: &str,
        method: &str,
    ) -> Option<(Member, Committed)> {
        let now = self.0.clock.now_ms();
        let (member, committed) = {
            let mut lines = self.lines();
            let line = lines
                .by_sid
                .get_mut(&claim.queue_sid)
                .filter(|line| line.procession.get(&claim.call_sid).is_some())?;
            let (member, change) = line.take_out(
                &claim.call_sid,
                claim.enqueued_at,
                QueueResult::Redirected,
                now,
            )?;
            let committed = self.0.writer.submit(change);
            // A session that is gone (it panicked) hears nothing; its call is over anyway.
            let _ = claim.inbox.send(Box::new(Dequeue::Redirect(Redirect {
                uri: uri.to_string(),
                method: method.to_string(),
            })));
            (member, committed)
        };
        Some((member, committed))
    }

    /// A queue of the account, with its live figures.
    pub fn get(&self, account_sid: &str, queue_sid: &str) -> Option<QueueResource> {
        self.lines()
            .by_sid
            .get(queue_sid)
            .filter(|line| line.record.account_sid == account_sid)
            .map(Line::resource)
    }

    /// The account's queues, oldest first, optionally only the one with `friendly_name`.
    pub fn list(&self, account_sid: &str, friendly_name: Option<&str>) -> Vec<QueueResource> {
        let lines = self.lines();
        let mut queues: Vec<&Line> = lines
            .by_sid
            .values()
            .filter(|line| line.record.account_sid == account_sid)
            .filter(|line| friendly_name.is_none_or(|n| line.record.friendly_name == n))
            .collect();
        queues.sort_by(|a, b| {
            (a.record.date_created, &a.record.sid).cmp(&(b.record.date_created, &b.record.sid))
        });
        queues.into_iter().map(Line::resource).collect()
    }

    /// Creates a queue; names are unique in an account.
    pub async fn create(
        &self,
        account_sid: &str,
        friendly_name: &str,
        max_size: i64,
    ) -> ApiResult<QueueResource> {
        check_name(friendly_name)?;
        check_max_size(max_size)?;
        if self.find_by_name(account_sid, friendly_name).is_some() {
            return Err(name_taken(friendly_name));
        }
        let now = self.0.clock.now_ms();
        let record = QueueRecord {
            sid: new_sid("QU"),
            account_sid: account_sid.to_string(),
            friendly_name: friendly_name.to_string(),
            max_size,
            date_created: now,
            date_updated: now,
        };
        let inserted = sqlx::query(
            "INSERT INTO queues (sid, account_sid, friendly_name, max_size, average_wait_ms, dequeued_count, date_created, date_updated)
             VALUES ($1, $2, $3, $4, 0, 0, $5, $5)",
        )
        .bind(&record.sid)
        .bind(&record.account_sid)
        .bind(&record.friendly_name)
        .bind(record.max_size)
        .bind(now)
        .execute(self.0.db.pool())
        .await;
        if let Err(error) = inserted {
            if is_unique_violation(&error) {
                return Err(name_taken(friendly_name));
            }
            return Err(error.into());
        }
        let mut lines = self.lines();
        lines.by_name.insert(
            (account_sid.to_string(), friendly_name.to_string()),
            record.sid.clone(),
        );
        let line = Line::new(record, 0, 0);
        let resource = line.resource();
        lines.by_sid.insert(line.record.sid.clone(), line);
        Ok(resource)
    }

    /// Renames a queue or changes its size limit. A smaller limit than the queue's size keeps the
    /// callers already waiting and refuses new ones until it drains.
    pub async fn update(
        &self,
        account_sid: &str,
        queue_sid: &str,
        friendly_name: Option<&str>,
        max_size: Option<i64>,
    ) -> ApiResult<QueueResource> {
        let Some(mut record) = self.find(account_sid, queue_sid) else {
            return Err(ApiError::not_found(queue_sid));
        };
        if let Some(name) = friendly_name {
            check_name(name)?;
            if name != record.friendly_name && self.find_by_name(account_sid, name).is_some() {
                return Err(name_taken(name));
            }
        }
        if let Some(size) = max_size {
            check_max_size(size)?;
        }
        let old_name = record.friendly_name.clone();
        record.friendly_name = friendly_name.map_or(old_name.clone(), str::to_string);
        record.max_size = max_size.unwrap_or(record.max_size);
        record.date_updated = self.0.clock.now_ms();
        let updated = sqlx::query(
            "UPDATE queues SET friendly_name = $2, max_size = $3, date_updated = $4 WHERE sid = $1",
        )
        .bind(&record.sid)
        .bind(&record.friendly_name)
        .bind(record.max_size)
        .bind(record.date_updated)
        .execute(self.0.db.pool())
        .await;
        if let Err(error) = updated {
            if is_unique_violation(&error) {
                return Err(name_taken(&record.friendly_name));
            }
            return Err(error.into());
        }
        let mut lines = self.lines();
        lines.by_name.remove(&(account_sid.to_string(), old_name));
        lines.by_name.insert(
            (account_sid.to_string(), record.friendly_name.clone()),
            record.sid.clone(),
        );
        let line = lines
            .by_sid
            .get_mut(queue_sid)
            .ok_or_else(|| ApiError::not_found(queue_sid))?;
        line.record = record;
        Ok(line.resource())
    }

    /// Deletes an empty queue; a queue with callers waiting is refused.
    pub async fn delete(&self, account_sid: &str, queue_sid: &str) -> ApiResult<()> {
        {
            let lines = self.lines();
            let Some(line) = lines
                .by_sid
                .get(queue_sid)
                .filter(|line| line.record.account_sid == account_sid)
            else {
                return Err(ApiError::not_found(queue_sid));
            };
            if !line.procession.is_empty() {
                return Err(ApiError::new(
                    Code::Conflict,
                    format!(
                        "Queue {queue_sid} has {} callers waiting; dequeue them (or let them leave) before deleting it",
                        line.procession.len()
                    ),
                ));
            }
        }
        sqlx::query("DELETE FROM queues WHERE sid = $1 AND account_sid = $2")
            .bind(queue_sid)
            .bind(account_sid)
            .execute(self.0.db.pool())
            .await?;
        let mut lines = self.lines();
        if let Some(line) = lines.by_sid.remove(queue_sid) {
            lines
                .by_name
                .remove(&(account_sid.to_string(), line.record.friendly_name));
        }
        Ok(())
    }

    /// The queue's callers in service order.
    pub fn members(&self, account_sid: &str, queue_sid: &str) -> Option<Vec<Member>> {
        let now = self.0.clock.now_ms();
        let lines = self.lines();
        let line = lines
            .by_sid
            .get(queue_sid)
            .filter(|line| line.record.account_sid == account_sid)?;
        Some(
            line.procession
                .iter()
                .enumerate()
                .map(|(i, entry)| line.member(entry, i + 1, now))
                .collect(),
        )
    }

    /// One caller of the queue (`Front` = the head); `None` when the queue is not the account's,
    /// `Some(None)` when the caller is not in it.
    pub fn member(
        &self,
        account_sid: &str,
        queue_sid: &str,
        member: &MemberRef,
    ) -> Option<Option<Member>> {
        let now = self.0.clock.now_ms();
        let lines = self.lines();
        let line = lines
            .by_sid
            .get(queue_sid)
            .filter(|line| line.record.account_sid == account_sid)?;
        let found = match member {
            MemberRef::Front => line.procession.iter().next().map(|e| (1, e)),
            MemberRef::Call(call_sid) => line
                .procession
                .position(call_sid)
                .and_then(|p| line.procession.get(call_sid).map(|e| (p, e))),
        };
        Some(found.map(|(position, entry)| line.member(entry, position, now)))
    }

    /// How many callers wait in all queues of the host.
    pub fn waiting(&self) -> usize {
        self.lines()
            .by_sid
            .values()
            .map(|line| line.procession.len())
            .sum()
    }
}

/// The `QueueResult` value of a result.
pub fn queue_result_name(result: QueueResult) -> &'static str {
    match result {
        QueueResult::Bridged => "bridged",
        QueueResult::BridgingInProgress => "bridging-in-progress",
        QueueResult::QueueFull => "queue-full",
        QueueResult::Redirected => "redirected",
        QueueResult::Hangup => "hangup",
        QueueResult::Leave => "leave",
        QueueResult::Error => "error",
        QueueResult::SystemError => "system-error",
    }
}

fn event(
    record: &QueueRecord,
    event_type: &str,
    call_sid: &str,
    now: i64,
    data: serde_json::Value,
) -> Statement {
    NewEvent {
        account_sid: &record.account_sid,
        event_type,
        source: queue_uri(&record.account_sid, &record.sid),
        subject: Some(call_sid),
        time_ms: now,
        data,
    }
    .statement()
}

/// One event for a whole shift of the procession (every caller from `from_position` on moved by
/// `delta`), rather than one per caller: a dequeue at the head of a long queue stays one row.
fn positions_changed(
    record: &QueueRecord,
    from_position: usize,
    delta: i64,
    size: usize,
    now: i64,
) -> Statement {
    let moved = (size + 1).saturating_sub(from_position);
    NewEvent {
        account_sid: &record.account_sid,
        event_type: "queue.positions-changed",
        source: queue_uri(&record.account_sid, &record.sid),
        subject: Some(&record.sid),
        time_ms: now,
        data: serde_json::json!({
            "queue_sid": record.sid,
            "queue": record.friendly_name,
            "from_position": from_position,
            "delta": delta,
            "members_moved": moved,
            "current_size": size,
        }),
    }
    .statement()
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() {
        return Err(ApiError::invalid("FriendlyName must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid(format!(
            "FriendlyName is {} characters; a queue name is at most {MAX_NAME_CHARS}",
            name.chars().count()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "FriendlyName must not contain control characters",
        ));
    }
    Ok(())
}

fn check_max_size(size: i64) -> ApiResult<()> {
    if !(1..=LARGEST_MAX_SIZE).contains(&size) {
        return Err(ApiError::invalid(format!(
            "MaxSize {size} is invalid: a queue holds 1 to {LARGEST_MAX_SIZE} callers"
        )));
    }
    Ok(())
}

fn name_taken(name: &str) -> ApiError {
    ApiError::new(
        Code::Conflict,
        format!("This account already has a queue named {name:?}; queue names are unique"),
    )
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ClockKind;

    /// Queues on a fresh database, with one queue, "support".
    struct Fixture {
        _dir: tempfile::TempDir,
        queues: Queues,
        db: Db,
        writer: Writer,
        queue: QueueRecord,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(None, dir.path()).await.expect("database");
        let writer =
            Writer::start(db.clone(), &crate::config::DatabaseSettings::default()).expect("writer");
        let queues = Queues::new(db.clone(), writer.clone(), Clock::new(ClockKind::Manual));
        let queue = queues.ensure("AC1", "support").await.expect("queue");
        Fixture {
            _dir: dir,
            queues,
            db,
            writer,
            queue,
        }
    }

    fn membership(queue_sid: &str, call_sid: &str, workflow_sid: Option<&str>) -> Membership {
        Membership {
            account_sid: "AC1".into(),
            queue_sid: queue_sid.into(),
            call_sid: call_sid.into(),
            priority: 0,
            wait_url: None,
            action_url: None,
            document_url: String::new(),
            continuation: "[]".into(),
            workflow_sid: workflow_sid.map(str::to_string),
            task_attributes: None,
        }
    }

    async fn seat(queues: &Queues, queue_sid: &str, call_sid: &str) -> Seat {
        queues
            .join(membership(queue_sid, call_sid, None))
            .await
            .unwrap_or_else(|_| panic!("{call_sid} joins"))
    }

    async fn left_events(db: &Db) -> Vec<String> {
        sqlx::query_scalar("SELECT data FROM events WHERE type = 'queue.member-left'")
            .fetch_all(db.pool())
            .await
            .expect("events")
    }

    #[tokio::test]
    async fn a_redirect_takes_the_caller_out_before_its_session_hears_of_it() {
        let f = fixture().await;
        let mut first = seat(&f.queues, &f.queue.sid, "CA1").await;
        let second = seat(&f.queues, &f.queue.sid, "CA2").await;

        let member = f
            .queues
            .redirect_member("AC1", &f.queue.sid, MemberRef::Front, "module:after", "GET")
            .await
            .expect("dequeued");
        assert_eq!((member.call_sid.as_str(), member.position), ("CA1", 1));
        // Answered after the commit: the row is gone and the queue moved up.
        let stored: Vec<String> = sqlx::query_scalar("SELECT call_sid FROM queue_members")
            .fetch_all(f.db.pool())
            .await
            .expect("members");
        assert_eq!(stored, ["CA2"]);
        assert_eq!(f.queues.status(&second).map(|s| s.position), Some(1));

        // The session, leaving for a reason of its own meanwhile, finds it already out and
        // the redirect waiting for it; the leaving is recorded once, as the dequeuer's.
        assert!(!f.queues.leave(&first, QueueResult::Leave));
        let inbox = first.inbox.as_mut().expect("inbox");
        match inbox.try_recv().map(|dequeue| *dequeue) {
            Ok(Dequeue::Redirect(redirect)) => {
                assert_eq!(
                    (redirect.uri.as_str(), redirect.method.as_str()),
                    ("module:after", "GET")
                );
            }
            other => panic!("expected the redirect, got {other:?}"),
        }
        f.writer.flush().await;
        let left = left_events(&f.db).await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].contains(r#""result":"redirected""#), "{left:?}");
    }

    /// Leaving the queue cancels the caller's task only when its seat names the workflow that
    /// routes it, so the seat must name it, also once the host has restarted.
    #[tokio::test]
    async fn a_routed_callers_seat_names_its_workflow_also_after_a_restart() {
        let f = fixture().await;
        let plain = seat(&f.queues, &f.queue.sid, "CA1").await;
        let routed = f
            .queues
            .join(membership(&f.queue.sid, "CA2", Some("WW1")))
            .await
            .unwrap_or_else(|_| panic!("CA2 joins"));
        assert_eq!(plain.workflow_sid, None);
        assert_eq!(routed.workflow_sid.as_deref(), Some("WW1"));

        let restarted = Queues::new(
            f.db.clone(),
            f.writer.clone(),
            Clock::new(ClockKind::Manual),
        );
        let stored = restarted.recover().await.expect("recover");
        let seats: Vec<(String, Option<String>)> = stored
            .iter()
            .filter_map(|member| restarted.reattach(member))
            .map(|seat| (seat.call_sid, seat.workflow_sid))
            .collect();
        assert_eq!(
            seats,
            [
                ("CA1".to_string(), None),
                ("CA2".to_string(), Some("WW1".to_string()))
            ]
        );
    }

    /// What a module's `queues.dequeue` relies on to tell the truth when its deadline comes
    /// before the commit: the caller is out as soon as the call returns.
    #[tokio::test]
    async fn a_caller_taken_out_is_out_before_its_leaving_commits() {
        let f = fixture().await;
        let caller = seat(&f.queues, &f.queue.sid, "CA1").await;
        let refused = f
            .queues
            .take_out_redirected(
                "AC2",
                &f.queue.sid,
                MemberRef::Front,
                "module:after",
                "POST",
            )
            .err()
            .expect("another account's queue is not found");
        assert_eq!(refused.code, Code::NotFound);
        assert!(f.queues.status(&caller).is_some(), "still waiting");

        let (member, committed) = f
            .queues
            .take_out_redirected(
                "AC1",
                &f.queue.sid,
                MemberRef::Front,
                "module:after",
                "POST",
            )
            .expect("taken out");
        assert_eq!(member.call_sid, "CA1");
        assert!(f.queues.status(&caller).is_none(), "out before the commit");
        committed.wait().await.expect("committed");
        let stored: Vec<String> = sqlx::query_scalar("SELECT call_sid FROM queue_members")
            .fetch_all(f.db.pool())
            .await
            .expect("members");
        assert!(stored.is_empty(), "{stored:?}");
    }

    #[tokio::test]
    async fn a_caller_that_left_first_is_not_redirected() {
        let f = fixture().await;
        let mut caller = seat(&f.queues, &f.queue.sid, "CA1").await;
        assert!(f.queues.leave(&caller, QueueResult::Leave));
        let refused = f
            .queues
            .redirect_member(
                "AC1",
                &f.queue.sid,
                MemberRef::Front,
                "module:after",
                "POST",
            )
            .await
            .expect_err("nobody waits");
        assert_eq!(refused.code, Code::NotFound);
        assert!(caller.inbox.as_mut().expect("inbox").try_recv().is_err());
        f.writer.flush().await;
        let left = left_events(&f.db).await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].contains(r#""result":"leave""#), "{left:?}");
    }
}
