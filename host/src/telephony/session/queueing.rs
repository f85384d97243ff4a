//! Queued calls, from both sides.
//!
//! The caller's side: an enqueue joins the queue (committed before anything plays), then the
//! wait-state application runs in a loop, asked again with fresh figures each time its
//! instructions run out, until the caller leaves, hangs up, or a dequeue arrives through the
//! queue. A failing wait-state application does not cost the caller its place: it hears the hold
//! fallback and the application is asked again.
//!
//! The dequeuer's side: a `Dial` to a queue claims the head caller, hands it a bridge end, and once
//! the caller is ready (after its whisper instructions, if any) both sessions stay connected until
//! either ends it. Each session runs only its own call; the two learn of each other's end through
//! the [`BridgeEnd`] pair.

use tokio::sync::oneshot;

use super::{Document, Flow, Mode, Session, Wake};
use crate::queues::{
    BridgeEnd, Connect, Dequeue, JoinError, MemberRef, Membership, Redirect, Ring, Seat,
    StoredMember, queue_result_name,
};
use crate::runtime::io::{Dial, DialStatus, Enqueue, Instruction, QueueResult, Trigger};
use crate::telephony::calls::{Experience, Party};
use crate::telephony::handler::{HandlerError, Request, resolve_uri};

/// Seconds of one cycle of hold (music or silence) when the enqueue names no wait-state URL.
const HOLD_CYCLE_S: u32 = 30;
/// Shortest clock time between two requests to a wait-state application, so one that answers
/// nothing (or only instant media) cannot make the host ask it in a tight loop.
const MIN_WAIT_CYCLE_MS: i64 = 1000;
/// How many redirects a whisper document may follow.
const MAX_WHISPER_DOCUMENTS: usize = 5;

/// Where a queued caller's wait comes from.
#[derive(Debug, Clone)]
enum Hold {
    /// The host's hold music (or silence when none is configured).
    Default,
    /// Silence (`waitUrl=""`).
    Silence,
    /// A wait-state application.
    Uri(String),
}

impl Hold {
    fn from_stored(wait_url: Option<&str>) -> Hold {
        match wait_url {
            None => Hold::Default,
            Some("") => Hold::Silence,
            Some(uri) => Hold::Uri(uri.to_string()),
        }
    }

    fn stored(&self) -> Option<String> {
        match self {
            Hold::Default => None,
            Hold::Silence => Some(String::new()),
            Hold::Uri(uri) => Some(uri.clone()),
        }
    }
}

/// What happens after the caller left the queue.
enum Then {
    /// The enqueue's action runs (or the instructions after the enqueue).
    Continue,
    /// The call is over.
    Ended(Party),
    /// The call runs this request instead (a dequeue or API redirect).
    Go(Box<Request>),
}

/// How a stay in a queue ended.
enum Exit {
    Left {
        result: QueueResult,
        queue_sid: String,
        queue_time_s: u32,
        then: Then,
    },
    /// The host is stopping: the caller stays queued and resumes at the next start.
    Suspended,
}

impl Session {
    /// Carries out an enqueue. `None` = go on with the instruction after it.
    pub(super) async fn enqueue(
        &mut self,
        enqueue: &Enqueue,
        document: &Document,
        index: usize,
    ) -> Option<Flow> {
        let base = &document.request.uri;
        let action = match enqueue.action.as_deref().map(|a| resolve_uri(base, a)) {
            Some(Err(error)) => return Some(Flow::Failed(error)),
            Some(Ok(action)) => Some(action),
            None => None,
        };
        let hold = match enqueue.wait_uri.as_deref() {
            None => Hold::Default,
            Some(uri) if uri.trim().is_empty() => Hold::Silence,
            Some(uri) => match resolve_uri(base, uri) {
                Ok(uri) => Hold::Uri(uri),
                Err(error) => return Some(Flow::Failed(error)),
            },
        };
        self.fetches_without_progress = 0;
        // The steps before and after the wait are boxed, so a waiting caller's state holds only
        // the wait.
        let queue = match Box::pin(self.core.queues.ensure(&self.account.sid, &enqueue.queue)).await
        {
            Ok(queue) => queue,
            Err(error) => {
                tracing::error!(call = %self.leg.sid(), message = %error.message, "a queue could not be created");
                return self.refused(&enqueue.queue, action, QueueResult::SystemError);
            }
        };
        let rest = &document.instructions[index + 1..];
        let continuation = if action.is_some() {
            "[]".to_string()
        } else {
            serde_json::to_string(rest).unwrap_or_else(|_| "[]".into())
        };
        let membership = Membership {
            account_sid: self.account.sid.clone(),
            queue_sid: queue.sid.clone(),
            call_sid: self.leg.sid(),
            priority: enqueue.priority,
            wait_url: hold.stored(),
            action_url: action.clone(),
            document_url: document.request.uri.clone(),
            continuation,
            workflow_sid: enqueue.workflow_sid.clone(),
            task_attributes: enqueue.task_attributes.clone(),
        };
        let seat = match Box::pin(self.core.queues.join(membership)).await {
            Ok(seat) => seat,
            Err(JoinError::Full) => {
                return self.refused(&enqueue.queue, action, QueueResult::QueueFull);
            }
            Err(JoinError::NotCommitted(message)) => {
                tracing::error!(call = %self.leg.sid(), %message, "a caller could not be queued");
                return self.refused(&enqueue.queue, action, QueueResult::SystemError);
            }
        };
        if let Some(workflow_sid) = &enqueue.workflow_sid {
            Box::pin(self.create_task(workflow_sid, enqueue.task_attributes.as_deref())).await;
        }
        let exit = self.wait_in_queue(seat, hold, false).await;
        Box::pin(self.after_queue(exit, action, None)).await
    }

    /// Creates the task that routes this queued caller to a worker: its attributes are the
    /// call's (`call_sid`, `from`, `to`, `direction`, `account_sid`) with the enqueue's task
    /// attributes on top. A task that cannot be made leaves the caller waiting, as without one.
    async fn create_task(&mut self, workflow_sid: &str, extra: Option<&str>) {
        let record = self.leg.record();
        let mut attributes = serde_json::Map::new();
        attributes.insert("call_sid".into(), record.sid.clone().into());
        attributes.insert("account_sid".into(), record.account_sid.clone().into());
        attributes.insert("from".into(), record.from.clone().into());
        attributes.insert("to".into(), record.to.clone().into());
        attributes.insert("caller".into(), record.from.clone().into());
        attributes.insert("direction".into(), record.direction.as_str().into());
        if let Some(Ok(serde_json::Value::Object(extra))) =
            extra.map(serde_json::from_str::<serde_json::Value>)
        {
            attributes.extend(extra);
        }
        if let Err(error) = self
            .core
            .routing
            .create_call_task(&self.account.sid, workflow_sid, attributes, &record.sid)
            .await
        {
            tracing::warn!(call = %record.sid, %error, "the queued caller's task could not be created");
        }
    }

    /// Picks up the wait of a caller that was queued when the host stopped.
    pub(super) async fn resume_waiting(&mut self, member: StoredMember) -> Option<Flow> {
        let Some(seat) = self.core.queues.reattach(&member) else {
            return Some(Flow::End(Party::System));
        };
        let hold = Hold::from_stored(member.membership.wait_url.as_deref());
        let rest: Vec<Instruction> =
            serde_json::from_str(&member.membership.continuation).unwrap_or_default();
        let otherwise = Document {
            request: Request::new(
                member.membership.document_url.clone(),
                "POST",
                Trigger::Redirect,
            ),
            instructions: rest,
        };
        let exit = self.wait_in_queue(seat, hold, true).await;
        match Box::pin(self.after_queue(exit, member.membership.action_url, Some(otherwise))).await
        {
            Some(flow) => Some(flow),
            None => Some(Flow::End(Party::Application)),
        }
    }

    /// An enqueue that could not put the caller in the queue.
    fn refused(
        &mut self,
        queue: &str,
        action: Option<String>,
        result: QueueResult,
    ) -> Option<Flow> {
        self.leg.experience(
            self.core.clock.now_ms(),
            Experience::EnqueueFailed {
                queue: queue.to_string(),
                result: queue_result_name(result).into(),
            },
        );
        action.map(|uri| {
            Flow::Fetch(Request::new(
                uri,
                "POST",
                Trigger::Enqueue {
                    result,
                    queue_sid: None,
                    queue_time_seconds: 0,
                },
            ))
        })
    }

    /// Where the call goes once it left the queue. `otherwise` runs when there is no action (after
    /// a restart, the instructions that followed the enqueue); without it the caller's document
    /// simply goes on.
    async fn after_queue(
        &mut self,
        exit: Exit,
        action: Option<String>,
        otherwise: Option<Document>,
    ) -> Option<Flow> {
        let Exit::Left {
            result,
            queue_sid,
            queue_time_s,
            then,
        } = exit
        else {
            self.suspended = true;
            return Some(Flow::End(Party::System));
        };
        let outcome = |uri: String| {
            Request::new(
                uri,
                "POST",
                Trigger::Enqueue {
                    result,
                    queue_sid: Some(queue_sid.clone()),
                    queue_time_seconds: queue_time_s,
                },
            )
        };
        if matches!(result, QueueResult::Redirected) {
            // A dequeuer may have submitted the leaving: the application hears `redirected` only
            // once it is committed.
            self.core.writer.flush().await;
        }
        match then {
            Then::Go(request) => Some(Flow::Fetch(*request)),
            Then::Ended(by) => {
                // The action still learns how the stay ended; the call is over, so what it
                // answers is not run.
                if let Some(uri) = action {
                    let _ = self.fetch(&outcome(uri)).await;
                }
                Some(Flow::End(by))
            }
            Then::Continue => match action {
                Some(uri) => Some(Flow::Fetch(outcome(uri))),
                None => otherwise.map(Flow::Run),
            },
        }
    }

    /// Takes the caller out of its queue for `result` and notes it on the timeline. `Err` = a
    /// dequeuer had already taken the caller out (and committed that), sending it to this
    /// redirect instead.
    fn leave_queue(&mut self, seat: &Seat, result: QueueResult) -> Result<(), Redirect> {
        // The inbox is dropped only after leaving: when a dequeuer got there first, its redirect
        // is in it.
        let left = self.core.queues.leave(seat, result);
        let redirect = if left { None } else { self.redirect_waiting() };
        self.inbox = None;
        match redirect {
            Some(redirect) => Err(redirect),
            None => {
                self.left_queue(seat, result);
                Ok(())
            }
        }
    }

    /// The redirect a dequeuer left in the inbox when it took the caller out of its queue.
    fn redirect_waiting(&mut self) -> Option<Redirect> {
        match *self.inbox.as_mut()?.try_recv().ok()? {
            Dequeue::Redirect(redirect) => Some(redirect),
            Dequeue::Connect(_) | Dequeue::Ring(_) => None,
        }
    }

    /// Leaves the queue to be connected. The caller is claimed by the dequeuer that connects it,
    /// so no other dequeuer can have taken it out: leaving cannot fail.
    fn leave_bridged(&mut self, seat: &Seat) {
        self.core.queues.leave(seat, QueueResult::Bridged);
        self.inbox = None;
        self.left_queue(seat, QueueResult::Bridged);
    }

    /// What leaving the queue means besides the queue itself: the timeline, and a task waiting
    /// for the caller is canceled unless the caller went to a worker. Only an enqueue that named
    /// a workflow has a task.
    fn left_queue(&mut self, seat: &Seat, result: QueueResult) {
        if let (false, Some(workflow_sid)) = (
            matches!(result, QueueResult::Bridged),
            seat.workflow_sid.clone(),
        ) {
            let routing = self.core.routing.clone();
            let (account_sid, call_sid) = (seat.account_sid.clone(), seat.call_sid.clone());
            let reason = format!("The caller left the queue ({})", queue_result_name(result));
            tokio::spawn(async move {
                routing
                    .call_left(&account_sid, &call_sid, &workflow_sid, &reason)
                    .await
            });
        }
        self.leg.experience(
            self.core.clock.now_ms(),
            Experience::LeftQueue {
                queue_sid: seat.queue_sid.clone(),
                result: queue_result_name(result).into(),
                wait_ms: self.core.clock.now_ms() - seat.enqueued_at,
            },
        );
        self.leg.waiting(false);
    }

    /// A dequeuer took the caller out of its queue and sends it to the redirect's URI; `ended`
    /// when the call ended meanwhile, so only the queue's action hears of it.
    fn redirected(&mut self, seat: &Seat, redirect: Redirect, ended: Option<Party>) -> Exit {
        self.inbox = None;
        let queue_time_s = self.queue_time_s(seat);
        self.left_queue(seat, QueueResult::Redirected);
        let then = match ended {
            Some(by) => Then::Ended(by),
            None => Then::Go(Box::new(Request::new(
                redirect.uri,
                redirect.method,
                Trigger::Enqueue {
                    result: QueueResult::Redirected,
                    queue_sid: Some(seat.queue_sid.clone()),
                    queue_time_seconds: queue_time_s,
                },
            ))),
        };
        Exit::Left {
            result: QueueResult::Redirected,
            queue_sid: seat.queue_sid.clone(),
            queue_time_s,
            then,
        }
    }

    fn queue_time_s(&self, seat: &Seat) -> u32 {
        ((self.core.clock.now_ms() - seat.enqueued_at).max(0) / 1000) as u32
    }

    /// The caller waits until it leaves the queue; the wait-state application decides what it hears.
    async fn wait_in_queue(&mut self, mut seat: Seat, hold: Hold, resumed: bool) -> Exit {
        self.inbox = seat.inbox.take();
        self.leg.waiting(true);
        let position = self
            .core
            .queues
            .status(&seat)
            .map_or(0, |status| status.position);
        self.leg.experience(
            self.core.clock.now_ms(),
            Experience::Enqueued {
                queue_sid: seat.queue_sid.clone(),
                queue: seat.queue_name.clone(),
                position,
                resumed,
            },
        );
        let wait_uri = match &hold {
            Hold::Uri(uri) => Some(uri.clone()),
            Hold::Default | Hold::Silence => None,
        };
        // The next request to the wait-state application: its own URI at first and whenever a
        // document runs out; a gather's action or a redirect in between.
        let ask_again = || {
            wait_uri
                .clone()
                .map(|uri| Request::new(uri, "POST", Trigger::Incoming))
        };
        let mut next = ask_again();
        loop {
            let Some(status) = self.core.queues.status(&seat) else {
                if let Err(redirect) = self.leave_queue(&seat, QueueResult::SystemError) {
                    return self.redirected(&seat, redirect, None);
                }
                return Exit::Left {
                    result: QueueResult::SystemError,
                    queue_sid: seat.queue_sid.clone(),
                    queue_time_s: self.queue_time_s(&seat),
                    then: Then::Continue,
                };
            };
            let cycle_started = self.core.clock.now_ms();
            let flow = match next.take() {
                Some(mut request) => {
                    request.parameters = queue_parameters(&status);
                    request.wait = Some(status);
                    match self.fetch_while_queued(&request).await {
                        Ok(Ok(document)) => self.run_document(&document, Mode::Wait).await,
                        Ok(Err(error)) => Box::pin(self.wait_failed(&seat, &request, error)).await,
                        Err(dequeued) => dequeued,
                    }
                }
                None => Box::pin(self.hold(&hold)).await,
            };
            let flow = match flow {
                Flow::Failed(error) => {
                    let failed = Request::new(
                        wait_uri.clone().unwrap_or_default(),
                        "POST",
                        Trigger::Incoming,
                    );
                    Box::pin(self.wait_failed(&seat, &failed, error)).await
                }
                flow => flow,
            };
            match flow {
                Flow::Exhausted | Flow::Run(_) | Flow::Failed(_) => {
                    let spent = self.core.clock.now_ms() - cycle_started;
                    if spent < MIN_WAIT_CYCLE_MS
                        && let Err(flow) = self.idle(MIN_WAIT_CYCLE_MS - spent).await
                        && let Some(exit) = self.leave_for(&seat, flow).await
                    {
                        return exit;
                    }
                    next = ask_again();
                }
                // A gather's outcome or a redirect inside the wait: the next wait document.
                Flow::Fetch(request) => next = Some(request),
                flow => {
                    if let Some(exit) = self.leave_for(&seat, flow).await {
                        return exit;
                    }
                    next = ask_again();
                }
            }
        }
    }

    /// What a flow that interrupts the wait means for the caller's place: `None` = it stays.
    async fn leave_for(&mut self, seat: &Seat, flow: Flow) -> Option<Exit> {
        match flow {
            Flow::Dequeued(Dequeue::Redirect(redirect)) => {
                Some(self.redirected(seat, redirect, None))
            }
            // Boxed: rare, and large (a whisper, a bridge) next to the wait itself.
            Flow::Dequeued(Dequeue::Connect(connect)) => {
                Box::pin(self.connect_caller(seat, connect)).await
            }
            Flow::Dequeued(Dequeue::Ring(ring)) => Box::pin(self.ring_worker(seat, ring)).await,
            flow => self.left_by(seat, flow),
        }
    }

    /// The exits that need no waiting: leave, hang-up, an API redirect, the host stopping.
    fn left_by(&mut self, seat: &Seat, flow: Flow) -> Option<Exit> {
        let queue_time_s = self.queue_time_s(seat);
        let (result, then) = match flow {
            Flow::Leave => (QueueResult::Leave, Then::Continue),
            Flow::End(Party::System) if self.core.is_stopping() => {
                if self.core.queues.detach(seat) {
                    self.inbox = None;
                    return Some(Exit::Suspended);
                }
                // A dequeuer took the caller out just before: its leaving is committed, so the
                // call cannot resume waiting; it ends with the host's other calls.
                if let Some(redirect) = self.redirect_waiting() {
                    return Some(self.redirected(seat, redirect, Some(Party::System)));
                }
                (QueueResult::Hangup, Then::Ended(Party::System))
            }
            Flow::End(by) => (QueueResult::Hangup, Then::Ended(by)),
            Flow::Transfer(request) => {
                let request = Request {
                    trigger: Trigger::Enqueue {
                        result: QueueResult::Redirected,
                        queue_sid: Some(seat.queue_sid.clone()),
                        queue_time_seconds: queue_time_s,
                    },
                    ..request
                };
                (QueueResult::Redirected, Then::Go(Box::new(request)))
            }
            Flow::Fetch(_)
            | Flow::Run(_)
            | Flow::Exhausted
            | Flow::Failed(_)
            | Flow::Dequeued(_) => return None,
        };
        if let Err(redirect) = self.leave_queue(seat, result) {
            let ended = match then {
                Then::Ended(by) => Some(by),
                Then::Continue => None,
                Then::Go(request) => {
                    tracing::info!(call = %seat.call_sid, uri = %request.uri, dequeue = %redirect.uri, "the call was redirected while a dequeue had just redirected it; the dequeue's redirect is followed");
                    None
                }
            };
            return Some(self.redirected(seat, redirect, ended));
        }
        Some(Exit::Left {
            result,
            queue_sid: seat.queue_sid.clone(),
            queue_time_s,
            then,
        })
    }

    /// One cycle of hold when there is no wait-state application.
    async fn hold(&mut self, hold: &Hold) -> Flow {
        let played = match (hold, self.core.settings.hold_music_url.clone()) {
            (Hold::Default, Some(url)) => self.play(&url, 1, false).await,
            _ => self.pause(HOLD_CYCLE_S, false).await,
        };
        match played {
            Ok(()) | Err(Ok(_)) => Flow::Exhausted,
            Err(Err(flow)) => flow,
        }
    }

    /// The wait-state application failed: the caller keeps its place and hears the hold fallback
    /// for a while; the failure goes to the timeline and the event log.
    async fn wait_failed(&mut self, seat: &Seat, request: &Request, error: HandlerError) -> Flow {
        tracing::info!(call = %self.leg.sid(), uri = %request.uri, code = error.code.number(), message = %error.message, "wait-state application failed; the caller stays queued");
        let now = self.core.clock.now_ms();
        self.leg.experience(
            now,
            Experience::WaitStateError {
                uri: request.uri.clone(),
                code: error.code.number(),
                message: error.message.clone(),
            },
        );
        let record = self.leg.record();
        self.core.writer.submit(vec![
            crate::events::NewEvent {
                account_sid: &record.account_sid,
                event_type: "queue.wait-failed",
                source: format!(
                    "/2010-04-01/Accounts/{}/Queues/{}.json",
                    record.account_sid, seat.queue_sid
                ),
                subject: Some(&record.sid),
                time_ms: now,
                data: serde_json::json!({
                    "queue_sid": seat.queue_sid,
                    "call_sid": record.sid,
                    "uri": request.uri,
                    "code": error.code.number(),
                    "message": error.message,
                }),
            }
            .statement(),
        ]);
        let seconds = self.core.settings.wait_fallback_seconds.max(1);
        let played = match self.core.settings.hold_music_url.clone() {
            Some(url) => self.play(&url, 1, false).await,
            None => self.pause(seconds, false).await,
        };
        match played {
            Ok(()) | Err(Ok(_)) => Flow::Exhausted,
            Err(Err(flow)) => flow,
        }
    }

    /// Waits `ms` of clock time, listening for commands. `Err` carries what interrupted it.
    async fn idle(&mut self, ms: i64) -> Result<(), Flow> {
        let deadline = self.core.clock.now_ms() + ms;
        loop {
            let left = deadline - self.core.clock.now_ms();
            if left <= 0 {
                return Ok(());
            }
            match self.wait(Some(left)).await {
                Wake::Elapsed => return Ok(()),
                Wake::Command(command) => {
                    if let Some(Err(flow)) = self.interruption(command, false) {
                        return Err(flow);
                    }
                }
            }
        }
    }

    /// The queued caller's side of a `Dial` to its queue: hear the whisper, then be connected.
    /// `None` = the dequeuer went away first and the caller keeps waiting in its place.
    async fn connect_caller(&mut self, seat: &Seat, connect: Connect) -> Option<Exit> {
        let Connect {
            dequeuer_call_sid,
            dequeuer_from,
            url,
            accepted,
            end,
        } = connect;
        if let Some(url) = url {
            let mut request = Request {
                parameters: vec![
                    ("QueueSid".into(), seat.queue_sid.clone()),
                    ("QueueTime".into(), self.queue_time_s(seat).to_string()),
                    ("DequeingCallSid".into(), dequeuer_call_sid.clone()),
                ],
                ..Request::new(url, "POST", Trigger::Incoming)
            };
            for _ in 0..MAX_WHISPER_DOCUMENTS {
                let document = match self.fetch(&request).await {
                    Ok(document) => document,
                    Err(error) => {
                        tracing::info!(call = %self.leg.sid(), message = %error.message, "the whisper for a dequeued caller failed; connecting anyway");
                        break;
                    }
                };
                match self.run_document(&document, Mode::Whisper).await {
                    Flow::Fetch(next) => {
                        request = Request {
                            parameters: request.parameters.clone(),
                            ..next
                        }
                    }
                    flow @ (Flow::End(_) | Flow::Transfer(_)) => {
                        // The caller hung up or was moved while hearing the whisper; the
                        // dequeuer learns it when `accepted` is dropped.
                        return self.left_by(seat, flow);
                    }
                    Flow::Failed(error) => {
                        tracing::info!(call = %self.leg.sid(), message = %error.message, "the whisper for a dequeued caller failed; connecting anyway");
                        break;
                    }
                    Flow::Exhausted | Flow::Run(_) | Flow::Leave | Flow::Dequeued(_) => break,
                }
            }
        }
        if accepted.send(()).is_err() {
            self.core.queues.release(&seat.queue_sid, &seat.call_sid);
            return None;
        }
        let queue_time_s = self.queue_time_s(seat);
        self.leave_bridged(seat);
        let (_, flow) = self
            .bridged(&dequeuer_call_sid, &dequeuer_from, end, None)
            .await;
        let then = match flow {
            None => Then::Continue,
            Some(Flow::End(by)) => Then::Ended(by),
            Some(Flow::Transfer(request)) => Then::Go(Box::new(request)),
            Some(_) => Then::Continue,
        };
        Some(Exit::Left {
            result: QueueResult::Bridged,
            queue_sid: seat.queue_sid.clone(),
            queue_time_s,
            then,
        })
    }

    /// A reservation's dequeue: ring the worker while the caller keeps its place; once the worker
    /// answers, leave the queue connected to them. `None` = the worker did not answer and the
    /// caller waits on (its task is routed again).
    async fn ring_worker(&mut self, seat: &Seat, ring: Ring) -> Option<Exit> {
        let caller_id = ring.from.unwrap_or_else(|| self.leg.record().from);
        // A worker reached as client:NAME is rung through presence until the bridge ends.
        let progress = ring
            .status_callback
            .as_deref()
            .map(|url| (url, ring.status_callback_events.as_slice()));
        let (legs, _rung_clients) = self.open_legs(vec![ring.to], &caller_id, progress);
        let (outcome, answered) = self.ring_legs(&legs, ring.timeout_seconds).await;
        let call_sid = self.leg.sid();
        let Some(leg) = answered else {
            self.release_legs(&legs, None);
            self.core.queues.release(&seat.queue_sid, &seat.call_sid);
            return match outcome {
                Err(flow) => self.left_by(seat, flow),
                Ok(_) => {
                    let routing = self.core.routing.clone();
                    let account_sid = self.account.sid.clone();
                    tokio::spawn(async move {
                        routing.dequeue_unanswered(&call_sid, &account_sid).await;
                    });
                    None
                }
            };
        };
        let queue_time_s = self.queue_time_s(seat);
        self.leave_bridged(seat);
        let dial = Dial {
            targets: Vec::new(),
            timeout_seconds: ring.timeout_seconds,
            action: None,
            caller_id: None,
            time_limit_seconds: None,
        };
        let (_, _, flow) = self.bridge(&leg, &dial).await;
        self.release_legs(&legs, Some(&leg));
        self.core.routing.dequeue_ended(&call_sid).await;
        let then = match flow {
            Some(Flow::End(by)) => Then::Ended(by),
            Some(Flow::Transfer(request)) => Then::Go(Box::new(request)),
            _ => Then::Continue,
        };
        Some(Exit::Left {
            result: QueueResult::Bridged,
            queue_sid: seat.queue_sid.clone(),
            queue_time_s,
            then,
        })
    }

    /// Keeps this call connected to a call of another session until either side ends it or the
    /// time limit passes. Returns the seconds connected and, when this side ended it, what this
    /// call does next (`None` = the other side or the limit ended it; the call goes on).
    async fn bridged(
        &mut self,
        peer_sid: &str,
        peer_number: &str,
        mut end: BridgeEnd,
        limit_s: Option<u32>,
    ) -> (u32, Option<Flow>) {
        let started = self.core.clock.now_ms();
        self.leg.experience(
            started,
            Experience::Bridged {
                call_sid: peer_sid.to_string(),
                to: peer_number.to_string(),
            },
        );
        self.fetches_without_progress = 0;
        let deadline = limit_s.map(|s| started + i64::from(s) * 1000);
        let flow = loop {
            let left = deadline.map(|d| d - self.core.clock.now_ms());
            let wake = tokio::select! {
                wake = self.wait(left) => Some(wake),
                () = end.peer_done() => None,
            };
            match wake {
                None => break None,
                Some(Wake::Elapsed) => break None,
                Some(Wake::Command(command)) => {
                    if let Some(Err(flow)) = self.interruption(command, false) {
                        break Some(flow);
                    }
                }
            }
        };
        end.hang_up();
        let now = self.core.clock.now_ms();
        self.leg.experience(
            now,
            Experience::Unbridged {
                call_sid: peer_sid.to_string(),
                duration_ms: now - started,
            },
        );
        (((now - started) / 1000) as u32, flow)
    }

    /// The dequeuer's side of a `Dial` to a queue: connect to the head caller, waiting for one
    /// to join (up to the dial timeout) when the queue is empty.
    pub(super) async fn dial_queue(
        &mut self,
        name: &str,
        url: Option<&str>,
        dial: &Dial,
        request: &Request,
    ) -> Option<Flow> {
        let action = match &dial.action {
            Some(action) => match resolve_uri(&request.uri, action) {
                Ok(uri) => Some(uri),
                Err(error) => return Some(Flow::Failed(error)),
            },
            None => None,
        };
        let url = match url.map(|u| resolve_uri(&request.uri, u)) {
            Some(Ok(url)) => Some(url),
            Some(Err(error)) => return Some(Flow::Failed(error)),
            None => None,
        };
        self.fetches_without_progress = 0;
        let outcome = |status, call_sid: Option<String>, duration_seconds, parameters| {
            action.clone().map(|uri| {
                Flow::Fetch(Request {
                    parameters,
                    ..Request::new(
                        uri,
                        "POST",
                        Trigger::Dial {
                            status,
                            dial_call_sid: call_sid,
                            duration_seconds,
                        },
                    )
                })
            })
        };
        let Some(queue) = self.core.queues.find_by_name(&self.account.sid, name) else {
            tracing::info!(call = %self.leg.sid(), queue = %name, "dial to a queue that does not exist");
            return outcome(DialStatus::Failed, None, 0, Vec::new());
        };
        let Some(joined) = self.core.queues.joined(&queue.sid) else {
            return outcome(DialStatus::Failed, None, 0, Vec::new());
        };
        self.leg.experience(
            self.core.clock.now_ms(),
            Experience::Dialing {
                call_sid: queue.sid.clone(),
                to: format!("queue:{name}"),
            },
        );
        let timeout = if dial.timeout_seconds == 0 {
            super::RING_TIMEOUT_DEFAULT_S
        } else {
            dial.timeout_seconds
        };
        let deadline = self.core.clock.now_ms() + i64::from(timeout) * 1000;
        let me = self.leg.record();
        loop {
            let notified = joined.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(claim) = self.core.queues.claim(&queue.sid, &MemberRef::Front) {
                let (mine, theirs) = BridgeEnd::pair();
                let (accepted, answer) = oneshot::channel();
                let sent = claim.inbox.send(Box::new(Dequeue::Connect(Connect {
                    dequeuer_call_sid: me.sid.clone(),
                    dequeuer_from: me.from.clone(),
                    url: url.clone(),
                    accepted,
                    end: theirs,
                })));
                if sent.is_err() {
                    continue;
                }
                tokio::pin!(answer);
                let ready = loop {
                    let wake = tokio::select! {
                        ready = &mut answer => break ready.is_ok(),
                        wake = self.wait(None) => wake,
                    };
                    if let Wake::Command(command) = wake
                        && let Some(Err(flow)) = self.interruption(command, false)
                    {
                        return Some(flow);
                    }
                };
                if !ready {
                    continue;
                }
                let queue_time = (self.core.clock.now_ms() - claim.enqueued_at).max(0) / 1000;
                let caller = self
                    .core
                    .find_live(&self.account.sid, &claim.call_sid)
                    .map(|live| live.leg.record().from)
                    .unwrap_or_default();
                let limit = dial
                    .time_limit_seconds
                    .unwrap_or(super::BRIDGE_LIMIT_DEFAULT_S);
                let (duration, flow) = self
                    .bridged(&claim.call_sid, &caller, mine, Some(limit))
                    .await;
                if let Some(flow) = flow {
                    return Some(flow);
                }
                return outcome(
                    DialStatus::Completed,
                    Some(claim.call_sid),
                    duration,
                    vec![
                        ("QueueSid".into(), queue.sid.clone()),
                        ("QueueTime".into(), queue_time.to_string()),
                    ],
                );
            }
            let left = deadline - self.core.clock.now_ms();
            if left <= 0 {
                return outcome(DialStatus::NoAnswer, None, 0, Vec::new());
            }
            let wake = tokio::select! {
                () = &mut notified => None,
                wake = self.wait(Some(left)) => Some(wake),
            };
            match wake {
                None => {}
                Some(Wake::Elapsed) => return outcome(DialStatus::NoAnswer, None, 0, Vec::new()),
                Some(Wake::Command(command)) => {
                    if let Some(Err(flow)) = self.interruption(command, false) {
                        return Some(flow);
                    }
                }
            }
        }
    }
}

/// The queue figures a wait-state application receives as parameters.
fn queue_parameters(status: &crate::runtime::io::QueueStatus) -> Vec<(String, String)> {
    vec![
        ("QueuePosition".into(), status.position.to_string()),
        ("QueueSid".into(), status.queue_sid.clone()),
        ("QueueTime".into(), status.queue_time_seconds.to_string()),
        (
            "AvgQueueTime".into(),
            status.average_wait_seconds.to_string(),
        ),
        ("CurrentQueueSize".into(), status.current_size.to_string()),
        ("MaxQueueSize".into(), status.max_size.to_string()),
    ]
}
