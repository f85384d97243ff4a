//! A call session: one task per call that owns the call's state, asks handlers for instructions and
//! carries them out, and is the only writer of that call's record.
//!
//! Everything from outside (keys pressed, hang-ups, REST redirects, a dialled party answering)
//! arrives as a [`Command`] on the session's channel; everything the caller experiences is appended
//! to the call's timeline. Every status change and segment boundary is committed together with its
//! event through the group-commit writer, and status callbacks are sent only after that commit.

mod queueing;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::calls::{CallRecord, Experience, Party, TimelineEntry};
use super::handler::{Answer as HandlerAnswer, Controller, HandlerError, Request, resolve_uri};
use super::{Core, Live};
use crate::accounts::Account;
use crate::api::error::Code;
use crate::events::NewEvent;
use crate::queues::{Dequeue, StoredMember};
use crate::runtime::io::{
    CallStatus, Dial, DialStatus, DialTarget, Gather, HandlerFailure, Instruction, Prompt, Trigger,
};
use crate::store::batch::{Change, Statement};

/// Something that happened to a call from outside the session.
#[derive(Debug)]
pub enum Action {
    /// The caller pressed keys.
    Digits(String),
    /// A party hung up, or the API ended the call.
    Hangup(Party),
    /// Run the instructions at this URI now (`POST Calls/{Sid}.json` with `Url`).
    Redirect { uri: String, method: String },
    /// The called party answered (outbound calls and dialled legs).
    Answer,
    /// The called party declined.
    Reject,
    /// The called party was busy.
    Busy,
    /// A dequeuer took the caller out of its queue (arrives through the queue, not the API).
    Dequeued(Dequeue),
}

/// An [`Action`] for one leg of the session (the call itself or a leg it dialled).
#[derive(Debug)]
pub struct Command {
    pub call_sid: String,
    pub action: Action,
}

/// The part of a leg's state the API reads while the call is live.
pub struct LegState {
    pub record: CallRecord,
    pub timeline: Vec<TimelineEntry>,
    /// While the call waits in a queue: where the wait's entries begin on the timeline.
    waiting_since: Option<usize>,
}

/// A leg: its record and timeline, shared with the live-call registry.
#[derive(Clone)]
pub struct Leg(pub Arc<Mutex<LegState>>);

impl Leg {
    pub fn new(record: CallRecord) -> Self {
        Leg(Arc::new(Mutex::new(LegState {
            record,
            timeline: Vec::new(),
            waiting_since: None,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LegState> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn record(&self) -> CallRecord {
        self.lock().record.clone()
    }

    pub fn timeline(&self) -> Vec<TimelineEntry> {
        self.lock().timeline.clone()
    }

    fn sid(&self) -> String {
        self.lock().record.sid.clone()
    }

    /// Marks where a wait in a queue begins (`true`) or that it is over. A wait that begins late
    /// in a long call first makes room for itself within [`TIMELINE_LIMIT`], as later entries
    /// would: the oldest after the first [`TIMELINE_KEEP_FIRST`] go.
    fn waiting(&self, waiting: bool) {
        let mut state = self.lock();
        let excess = (state.timeline.len() + WAIT_LIMIT).saturating_sub(TIMELINE_LIMIT);
        if waiting && excess > 0 {
            state
                .timeline
                .drain(TIMELINE_KEEP_FIRST..TIMELINE_KEEP_FIRST + excess);
        }
        state.waiting_since = waiting.then_some(state.timeline.len());
    }

    fn status(&self) -> CallStatus {
        self.lock().record.status
    }

    /// Appends to the timeline. Past [`TIMELINE_LIMIT`] entries the oldest after the first
    /// [`TIMELINE_KEEP_FIRST`] (how the call began) are dropped, so memory stays bounded.
    ///
    /// A caller can wait in a queue for hours, its wait-state application adding entries every
    /// few seconds, and thousands wait at once: a wait keeps its first [`WAIT_KEEP_FIRST`]
    /// entries (joining, the first cycle) and its latest, [`WAIT_LIMIT`] in all.
    fn experience(&self, now_ms: i64, experience: Experience) {
        let mut state = self.lock();
        let created = state.record.date_created;
        let (keep_first, limit) = match state.waiting_since {
            Some(start) => (start + WAIT_KEEP_FIRST, start + WAIT_LIMIT),
            None => (TIMELINE_KEEP_FIRST, TIMELINE_LIMIT),
        };
        if state.timeline.len() >= limit {
            state.timeline.remove(keep_first);
        }
        state
            .timeline
            .push(TimelineEntry::new(created, now_ms, experience));
    }
}

/// Most entries a call's timeline holds.
const TIMELINE_LIMIT: usize = 128;
/// Entries at the start of a timeline that are never dropped.
const TIMELINE_KEEP_FIRST: usize = 16;
/// Most entries a wait in a queue adds to the timeline: two or three cycles of a wait-state
/// application, which repeat anyway.
const WAIT_LIMIT: usize = 24;
/// Entries at the start of a wait that are never dropped.
const WAIT_KEEP_FIRST: usize = 8;

/// Where a document's instructions lead.
enum Flow {
    /// Ask a handler for the next document.
    Fetch(Request),
    /// The REST API moved the call to another handler (`POST Calls/{Sid}.json` with `Url`).
    Transfer(Request),
    /// Carry on with these instructions (what followed an enqueue, after a restart).
    Run(Document),
    /// The call is over.
    End(Party),
    /// The document cannot be carried out; the fallback may take over.
    Failed(HandlerError),
    /// A wait document asked to leave the queue.
    Leave,
    /// A wait or whisper document ran out of instructions.
    Exhausted,
    /// A dequeuer took the queued caller out.
    Dequeued(Dequeue),
}

/// What a document is run for: the verbs allowed and what running out of them means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The call's own handler: running out ends the call.
    Call,
    /// A wait-state application: running out asks it again.
    Wait,
    /// Instructions run on a dequeued caller before it is connected: play, say, pause, redirect.
    Whisper,
}

/// What interrupted a wait.
enum Wake {
    Elapsed,
    Command(Command),
}

/// A handler's instructions, with where they came from.
struct Document {
    request: Request,
    instructions: Vec<Instruction>,
}

/// A segment being recorded.
struct OpenSegment {
    position: i64,
    controller: Controller,
    started_at: i64,
    invocations: i64,
    fuel_consumed: i64,
    wall_time_us: i64,
    media_ms: i64,
    tts_characters: i64,
}

/// Which handlers serve the call.
#[derive(Debug, Clone)]
pub struct Handlers {
    pub url: String,
    pub method: String,
    pub fallback_url: Option<String>,
    pub fallback_method: String,
}

/// A status callback waiting for its change to commit.
struct Callback {
    committed: crate::store::batch::Committed,
    url: String,
    method: String,
    params: Vec<(String, String)>,
}

/// A dialled leg's sid and its tie to the client it rings.
type RungClient = (String, crate::presence::CallAttachment);

/// What the caller hears when the handler and its fallback both fail.
const APPLICATION_ERROR_MESSAGE: &str = "We are sorry, an application error has occurred. Goodbye.";

/// Seconds a dialled party rings before `no-answer` when the instruction does not say.
const RING_TIMEOUT_DEFAULT_S: u32 = 30;
/// Upper bound of a bridge when the instruction does not say (4 hours, as on the reference platform).
const BRIDGE_LIMIT_DEFAULT_S: u32 = 14_400;

pub struct Session {
    core: Arc<Core>,
    account: Account,
    leg: Leg,
    handlers: Option<Handlers>,
    commands: mpsc::UnboundedReceiver<Box<Command>>,
    /// Status callbacks to send, in order; started with the first one (most calls have none).
    callbacks: Option<mpsc::UnboundedSender<Callback>>,
    segment: Option<OpenSegment>,
    segments_opened: i64,
    fetches_without_progress: u32,
    /// The next status callback's `SequenceNumber`, per call: this call's and each leg it rang
    /// count from 0, as the reference numbers each call's callbacks.
    callback_sequences: HashMap<String, u32>,
    /// Seconds an outbound call rings before `no-answer`.
    ring_timeout_s: u32,
    /// When an inbound call reached the router; taken when its first instruction runs, to measure
    /// call setup (post-dial delay).
    arrived: Option<std::time::Instant>,
    /// Dequeues for the caller while it waits in a queue.
    inbox: Option<mpsc::UnboundedReceiver<Box<Dequeue>>>,
    /// Set when the host stopped while the caller waited in a queue: the call is left as it is,
    /// and resumes waiting at the next start.
    suspended: bool,
    /// Parameters of the first request only (a client's call parameters).
    first_parameters: Vec<(String, String)>,
    /// Registered clients this call rings or is connected to; dropped when the call ends, which
    /// tells them.
    attachments: Vec<crate::presence::CallAttachment>,
}

impl Session {
    /// Registers the call as live and starts its task. The call's record must already be committed.
    pub fn start(
        core: Arc<Core>,
        account: Account,
        record: CallRecord,
        handlers: Option<Handlers>,
        ring_timeout_s: u32,
        arrived: Option<std::time::Instant>,
    ) {
        let session = Self::register(core, account, record, handlers, ring_timeout_s, arrived);
        tokio::spawn(session.run());
    }

    /// Starts a call a registered client placed: its first request carries `parameters`, and the
    /// client's endpoint is told when it ends.
    pub fn start_for_client(
        core: Arc<Core>,
        account: Account,
        record: CallRecord,
        handlers: Handlers,
        parameters: Vec<(String, String)>,
        attachment: Option<crate::presence::CallAttachment>,
    ) {
        let mut session = Self::register(core, account, record, Some(handlers), 0, None);
        session.first_parameters = parameters;
        session.attachments.extend(attachment);
        tokio::spawn(session.run());
    }

    /// Resumes a call that was waiting in a queue when the host stopped: it waits again in the
    /// same place, then goes on as its enqueue said.
    pub fn resume(
        core: Arc<Core>,
        account: Account,
        record: CallRecord,
        handlers: Option<Handlers>,
        member: StoredMember,
        segments: i64,
    ) {
        let mut session = Self::register(core, account, record, handlers, 0, None);
        session.segments_opened = segments;
        tokio::spawn(session.run_resumed(member));
    }

    fn register(
        core: Arc<Core>,
        account: Account,
        record: CallRecord,
        handlers: Option<Handlers>,
        ring_timeout_s: u32,
        arrived: Option<std::time::Instant>,
    ) -> Session {
        let (tx, commands) = mpsc::unbounded_channel();
        let leg = Leg::new(record);
        core.register(&leg.sid(), Live::new(account.sid.clone(), tx, leg.clone()));
        Session {
            core,
            account,
            leg,
            handlers,
            commands,
            callbacks: None,
            segment: None,
            segments_opened: 0,
            fetches_without_progress: 0,
            callback_sequences: HashMap::new(),
            ring_timeout_s,
            arrived,
            inbox: None,
            suspended: false,
            first_parameters: Vec::new(),
            attachments: Vec::new(),
        }
    }

    async fn run(mut self) {
        let record = self.leg.record();
        // Announce the state the call was created in.
        let committed = self
            .core
            .writer
            .submit(vec![status_event(&record, self.core.clock.now_ms())]);
        self.leg.experience(
            self.core.clock.now_ms(),
            Experience::Status {
                status: record.status.as_str().into(),
            },
        );
        if record.direction != crate::runtime::io::CallDirection::Inbound {
            self.callback(&record, "initiated", committed);
            if !Box::pin(self.ring_outbound()).await {
                // The clients it rang hear at once that it stopped.
                self.attachments.clear();
                return Box::pin(self.finish()).await;
            }
        }
        let Some(handlers) = self.handlers.clone() else {
            Box::pin(self.end(Party::System)).await;
            return Box::pin(self.finish()).await;
        };
        let first = Request {
            parameters: std::mem::take(&mut self.first_parameters),
            ..Request::new(
                handlers.url.clone(),
                handlers.method.clone(),
                Trigger::Incoming,
            )
        };
        let by = self.drive(Flow::Fetch(first)).await;
        if !self.suspended {
            Box::pin(self.end(by)).await;
        }
        Box::pin(self.finish()).await;
    }

    async fn run_resumed(mut self, member: StoredMember) {
        let first = Box::pin(self.resume_waiting(member)).await;
        let by = match first {
            Some(flow) => self.drive(flow).await,
            None => Party::Application,
        };
        if !self.suspended {
            Box::pin(self.end(by)).await;
        }
        Box::pin(self.finish()).await;
    }

    /// Rings the called party of an outbound call; true once it answers.
    async fn ring_outbound(&mut self) -> bool {
        let record = self.leg.record();
        if let Some(identity) = record.to.strip_prefix("client:") {
            let call = crate::presence::IncomingCall {
                call_sid: record.sid.clone(),
                from: record.from.clone(),
                to: record.to.clone(),
            };
            match self.core.presence.ring(&self.account.sid, identity, call) {
                Some(attachment) => self.attachments.push(attachment),
                // An offline client is not rung at all.
                None => {
                    self.set_status(&self.leg.clone(), CallStatus::NoAnswer, Some(Party::System));
                    return false;
                }
            }
        }
        self.set_status(&self.leg.clone(), CallStatus::Ringing, None);
        let sid = self.leg.sid();
        let deadline = self.core.clock.now_ms() + i64::from(self.ring_timeout_s) * 1000;
        loop {
            let left = deadline - self.core.clock.now_ms();
            match self.wait(Some(left)).await {
                Wake::Elapsed => {
                    self.set_status(&self.leg.clone(), CallStatus::NoAnswer, Some(Party::System));
                    return false;
                }
                Wake::Command(command) if command.call_sid == sid => match command.action {
                    Action::Answer => {
                        self.answer();
                        return true;
                    }
                    Action::Reject => {
                        self.set_status(
                            &self.leg.clone(),
                            CallStatus::NoAnswer,
                            Some(Party::Caller),
                        );
                        return false;
                    }
                    Action::Busy => {
                        self.set_status(&self.leg.clone(), CallStatus::Busy, Some(Party::Caller));
                        return false;
                    }
                    Action::Hangup(by) => {
                        self.set_status(&self.leg.clone(), CallStatus::Canceled, Some(by));
                        return false;
                    }
                    Action::Digits(_) | Action::Redirect { .. } | Action::Dequeued(_) => {}
                },
                Wake::Command(_) => {}
            }
        }
    }

    /// Runs documents until the call ends; returns who ended it.
    async fn drive(&mut self, first: Flow) -> Party {
        let mut next = first;
        loop {
            let document = match next {
                Flow::Fetch(request) | Flow::Transfer(request) => {
                    match self.fetch(&request).await {
                        Ok(document) => document,
                        Err(error) => match Box::pin(self.fall_back(&request, &error)).await {
                            Some(document) => document,
                            None => return Box::pin(self.application_error(&error)).await,
                        },
                    }
                }
                Flow::Run(document) => document,
                Flow::End(by) => return by,
                Flow::Failed(error) => return Box::pin(self.application_error(&error)).await,
                // Only a wait document leaves a queue or runs out; a dequeue reaches only a
                // queued caller.
                Flow::Leave | Flow::Exhausted | Flow::Dequeued(_) => {
                    return Party::Application;
                }
            };
            next = match self.run_document(&document, Mode::Call).await {
                Flow::Failed(error) => {
                    match Box::pin(self.fall_back(&document.request, &error)).await {
                        Some(fallback) => match self.run_document(&fallback, Mode::Call).await {
                            Flow::Failed(error) => {
                                return Box::pin(self.application_error(&error)).await;
                            }
                            flow => flow,
                        },
                        None => return self.application_error(&error).await,
                    }
                }
                flow => flow,
            };
        }
    }

    /// Asks a handler for a document, moving the call into that handler's segment.
    async fn fetch(&mut self, request: &Request) -> Result<Document, HandlerError> {
        self.count_fetch()?;
        let record = self.leg.record();
        let view = record.view();
        // Boxed: the request (a module invocation or an HTTP exchange) is large and short-lived,
        // and would otherwise be part of every waiting call's state.
        let answer = Box::pin(self.core.request(&self.account, &view, request)).await;
        self.document(request, answer)
    }

    /// [`Session::fetch`] for a queued caller's wait-state application: a dequeue that arrives
    /// meanwhile takes effect at once (`Err`). The request runs on a task of its own, so an
    /// abandoned invocation still finishes and is metered; its document is dropped.
    async fn fetch_while_queued(
        &mut self,
        request: &Request,
    ) -> Result<Result<Document, HandlerError>, Flow> {
        if let Err(error) = self.count_fetch() {
            return Ok(Err(error));
        }
        let core = self.core.clone();
        let account = self.account.clone();
        let record = self.leg.record();
        let owned = request.clone();
        let answer =
            tokio::spawn(async move { core.request(&account, &record.view(), &owned).await });
        let answer = match self.unless_dequeued(answer).await {
            Ok(answer) => answer,
            Err(dequeued) => {
                // Not a request that led nowhere: the caller leaves the queue.
                self.fetches_without_progress -= 1;
                return Err(dequeued);
            }
        };
        match answer {
            Ok(answer) => Ok(self.document(request, answer)),
            Err(error) => Ok(Err(HandlerError::new(
                Code::ModuleHostError,
                format!("the wait-state request stopped: {error}"),
            ))),
        }
    }

    /// Counts a request toward the redirect-loop limit.
    fn count_fetch(&mut self) -> Result<(), HandlerError> {
        self.fetches_without_progress += 1;
        if self.fetches_without_progress > self.core.settings.max_fetches_without_progress {
            return Err(HandlerError::new(
                Code::RedirectLoop,
                format!(
                    "{} handler requests in a row without playing anything or waiting for input",
                    self.fetches_without_progress - 1
                ),
            ));
        }
        Ok(())
    }

    /// What a handler answered, as a document; the call moves into the handler's segment.
    fn document(
        &mut self,
        request: &Request,
        answer: HandlerAnswer,
    ) -> Result<Document, HandlerError> {
        self.enter_segment(&answer.controller);
        if let Some(segment) = self.segment.as_mut() {
            segment.invocations += 1;
            segment.fuel_consumed += answer.cost.fuel_consumed as i64;
            segment.wall_time_us += answer.cost.wall_time_us as i64;
        }
        answer.instructions.map(|instructions| Document {
            request: request.clone(),
            instructions,
        })
    }

    /// Requests the fallback for a failed request, if the call has one and it was not the fallback
    /// that failed.
    async fn fall_back(&mut self, failed: &Request, error: &HandlerError) -> Option<Document> {
        tracing::info!(
            call = %self.leg.sid(),
            uri = %failed.uri,
            code = error.code.number(),
            message = %error.message,
            "call handler failed"
        );
        let handlers = self.handlers.clone()?;
        let fallback = handlers.fallback_url?;
        if failed.failure.is_some() || failed.uri == fallback {
            return None;
        }
        let request = Request {
            failure: Some(HandlerFailure {
                code: error.code.number(),
                uri: failed.uri.clone(),
            }),
            parameters: failed.parameters.clone(),
            ..Request::new(fallback, handlers.fallback_method, failed.trigger.clone())
        };
        match self.fetch(&request).await {
            Ok(document) => Some(document),
            Err(fallback_error) => {
                tracing::info!(call = %self.leg.sid(), uri = %request.uri, message = %fallback_error.message, "fallback handler failed too");
                None
            }
        }
    }

    /// Plays the application-error message and ends the call.
    async fn application_error(&mut self, error: &HandlerError) -> Party {
        let now = self.core.clock.now_ms();
        self.leg.experience(
            now,
            Experience::ApplicationError {
                code: error.code.number(),
                message: error.message.clone(),
            },
        );
        if !self.leg.status().is_final() {
            self.answer();
            let _ = self
                .say_text(APPLICATION_ERROR_MESSAGE, None, None, 1, false)
                .await;
        }
        Party::System
    }

    /// Starts a new segment when control passes to a different handler.
    fn enter_segment(&mut self, controller: &Controller) {
        if self
            .segment
            .as_ref()
            .is_some_and(|open| &open.controller == controller)
        {
            return;
        }
        let now = self.core.clock.now_ms();
        self.close_segment(now);
        self.segments_opened += 1;
        let segment = OpenSegment {
            position: self.segments_opened,
            controller: controller.clone(),
            started_at: now,
            invocations: 0,
            fuel_consumed: 0,
            wall_time_us: 0,
            media_ms: 0,
            tts_characters: 0,
        };
        let record = self.leg.record();
        let change: Change = vec![
            Statement::new(
                "INSERT INTO call_segments (call_sid, position, account_sid, uri, module_name, module_version, started_at, invocations, fuel_consumed, wall_time_us, media_ms, tts_characters)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, 0, 0, 0)",
                vec![
                    record.sid.clone().into(),
                    segment.position.into(),
                    record.account_sid.clone().into(),
                    controller.uri.clone().into(),
                    controller.module_name.clone().into(),
                    controller.module_version.into(),
                    now.into(),
                ],
            ),
            NewEvent {
                account_sid: &record.account_sid,
                event_type: "call.segment-started",
                source: record.uri(),
                subject: Some(&record.sid),
                time_ms: now,
                data: serde_json::json!({
                    "call_sid": record.sid,
                    "position": segment.position,
                    "uri": controller.uri,
                    "module_name": controller.module_name,
                    "module_version": controller.module_version,
                }),
            }
            .statement(),
        ];
        self.core.writer.submit(change);
        self.segment = Some(segment);
    }

    /// Ends the open segment at `now` and stores what it used.
    fn close_segment(&mut self, now: i64) {
        let Some(segment) = self.segment.take() else {
            return;
        };
        let record = self.leg.record();
        let change: Change = vec![
            Statement::new(
                "UPDATE call_segments SET ended_at = $3, invocations = $4, fuel_consumed = $5, wall_time_us = $6, media_ms = $7, tts_characters = $8
                 WHERE call_sid = $1 AND position = $2",
                vec![
                    record.sid.clone().into(),
                    segment.position.into(),
                    now.into(),
                    segment.invocations.into(),
                    segment.fuel_consumed.into(),
                    segment.wall_time_us.into(),
                    segment.media_ms.into(),
                    segment.tts_characters.into(),
                ],
            ),
            NewEvent {
                account_sid: &record.account_sid,
                event_type: "call.segment-ended",
                source: record.uri(),
                subject: Some(&record.sid),
                time_ms: now,
                data: serde_json::json!({
                    "call_sid": record.sid,
                    "position": segment.position,
                    "uri": segment.controller.uri,
                    "duration_ms": now - segment.started_at,
                    "invocations": segment.invocations,
                    "fuel_consumed": segment.fuel_consumed,
                    "wall_time_us": segment.wall_time_us,
                    "media_ms": segment.media_ms,
                    "tts_characters": segment.tts_characters,
                }),
            }
            .statement(),
        ];
        self.core.writer.submit(change);
    }

    /// Carries out one document, verb by verb.
    async fn run_document(&mut self, document: &Document, mode: Mode) -> Flow {
        for (index, instruction) in document.instructions.iter().enumerate() {
            if let Some(arrived) = self.arrived.take() {
                metrics::histogram!("switchboard_call_setup_seconds")
                    .record(arrived.elapsed().as_secs_f64());
            }
            if self.leg.status() != CallStatus::InProgress {
                // A reject as the first instruction refuses the call unanswered.
                if let (0, Instruction::Reject { reason }) = (index, instruction) {
                    let status = match reason {
                        crate::runtime::io::RejectReason::Busy => CallStatus::Busy,
                        crate::runtime::io::RejectReason::Rejected => CallStatus::NoAnswer,
                    };
                    self.set_status(&self.leg.clone(), status, Some(Party::Application));
                    return Flow::End(Party::Application);
                }
                self.answer();
            }
            // Every verb's work is boxed: a call's task is as large as the largest state any of
            // its awaits can reach, and thousands of callers waiting in queues should each pay
            // only for the verb they are in, not for the largest verb there is.
            let flow = match instruction {
                Instruction::Say(say) => Box::pin(self.say(say, false))
                    .await
                    .err()
                    .and_then(Result::err),
                Instruction::Play(play) => Box::pin(self.play(
                    &media_url(&document.request, &play.url),
                    play.loop_count,
                    false,
                ))
                .await
                .err()
                .and_then(Result::err),
                Instruction::Pause { length_seconds } => {
                    Box::pin(self.pause(*length_seconds, false))
                        .await
                        .err()
                        .and_then(Result::err)
                }
                Instruction::Gather(_) | Instruction::Hangup if mode == Mode::Whisper => {
                    Some(not_allowed(instruction, mode))
                }
                Instruction::Gather(gather) => {
                    match Box::pin(self.gather(gather, &document.request)).await {
                        Ok(None) => None,
                        Ok(Some(flow)) | Err(flow) => Some(flow),
                    }
                }
                Instruction::Dial(_) | Instruction::Enqueue(_) | Instruction::Reject { .. }
                    if mode != Mode::Call =>
                {
                    Some(not_allowed(instruction, mode))
                }
                Instruction::Dial(dial) => Box::pin(self.dial(dial, &document.request)).await,
                Instruction::Enqueue(enqueue) => {
                    Box::pin(self.enqueue(enqueue, document, index)).await
                }
                Instruction::Leave if mode == Mode::Wait => Some(Flow::Leave),
                Instruction::Leave => Some(Flow::Failed(HandlerError::new(
                    Code::SchemaValidation,
                    "leave: the call is not waiting in a queue; leave belongs in a wait-state application's answer",
                ))),
                Instruction::Redirect { uri } => {
                    Some(match resolve_uri(&document.request.uri, uri) {
                        Ok(uri) => Flow::Fetch(Request::new(uri, "POST", Trigger::Redirect)),
                        Err(error) => Flow::Failed(error),
                    })
                }
                Instruction::Hangup => Some(Flow::End(Party::Application)),
                // A reject after the call was answered ends it like a hangup.
                Instruction::Reject { .. } => Some(Flow::End(Party::Application)),
            };
            if let Some(flow) = flow {
                return flow;
            }
        }
        match mode {
            // Out of instructions: the call ends, as on the reference platform.
            Mode::Call => Flow::End(Party::Application),
            Mode::Wait | Mode::Whisper => Flow::Exhausted,
        }
    }

    /// Answers the call if it is not yet in progress.
    fn answer(&mut self) {
        if self.leg.status() != CallStatus::InProgress {
            let leg = self.leg.clone();
            self.set_status(&leg, CallStatus::InProgress, None);
        }
    }

    /// Waits for a command (or a dequeue, while queued) or for `ms` of clock time (`None` = no
    /// timer).
    async fn wait(&mut self, ms: Option<i64>) -> Wake {
        let clock = self.core.clock.clone();
        let timer = async move {
            match ms {
                Some(ms) => clock.sleep_ms(ms).await,
                None => std::future::pending::<()>().await,
            }
        };
        let inbox = self.inbox.as_mut();
        let dequeued = async move {
            match inbox {
                Some(inbox) => match inbox.recv().await {
                    Some(dequeue) => dequeue,
                    // The queue dropped the caller's entry: nothing more will come.
                    None => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        let sid = self.leg.sid();
        tokio::select! {
            biased;
            command = self.commands.recv() => match command {
                Some(command) => Wake::Command(*command),
                // Every sender is gone: the host is shutting down.
                None => Wake::Command(Command { call_sid: sid, action: Action::Hangup(Party::System) }),
            },
            dequeue = dequeued => Wake::Command(Command { call_sid: sid, action: Action::Dequeued(*dequeue) }),
            () = timer => Wake::Elapsed,
        }
    }

    /// What a command means while the caller is listening to media or silence: `Some` when it
    /// ends the current document. Keys are recorded; in a gather's prompts they also interrupt.
    fn interruption(&mut self, command: Command, barge_in: bool) -> Option<Result<String, Flow>> {
        if command.call_sid != self.leg.sid() {
            return None;
        }
        match command.action {
            Action::Hangup(by) => Some(Err(Flow::End(by))),
            Action::Redirect { uri, method } => Some(Err(Flow::Transfer(Request::new(
                uri,
                method,
                Trigger::Redirect,
            )))),
            Action::Dequeued(dequeue) => Some(Err(Flow::Dequeued(dequeue))),
            Action::Digits(digits) => {
                self.fetches_without_progress = 0;
                self.leg.experience(
                    self.core.clock.now_ms(),
                    Experience::Digits {
                        digits: digits.clone(),
                    },
                );
                barge_in.then_some(Ok(digits))
            }
            Action::Answer | Action::Reject | Action::Busy => None,
        }
    }

    /// Plays `ms` of media (scaled by the media speed). `Err` carries what interrupted it: keys
    /// (when `barge_in`) or a flow-changing command.
    async fn play_for(&mut self, ms: i64, barge_in: bool) -> Result<(), Result<String, Flow>> {
        let speed = self.core.settings.media_speed;
        if speed <= 0.0 || ms <= 0 {
            // No waiting, but commands that already arrived still take effect.
            while let Ok(command) = self.commands.try_recv() {
                if let Some(interrupt) = self.interruption(*command, barge_in) {
                    return Err(interrupt);
                }
            }
            return Ok(());
        }
        let scaled = ((ms as f64) / speed).ceil() as i64;
        let deadline = self.core.clock.now_ms() + scaled;
        loop {
            let left = deadline - self.core.clock.now_ms();
            if left <= 0 {
                return Ok(());
            }
            match self.wait(Some(left)).await {
                Wake::Elapsed => return Ok(()),
                Wake::Command(command) => {
                    if let Some(interrupt) = self.interruption(command, barge_in) {
                        return Err(interrupt);
                    }
                }
            }
        }
    }

    /// Runs `work` (fetching or synthesizing media); a queued caller's dequeue takes effect at
    /// once rather than after the media is ready. Other commands wait for the media as before,
    /// so keys pressed meanwhile still cut the prompt short once it plays.
    async fn unless_dequeued<T>(
        &mut self,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, Flow> {
        tokio::pin!(work);
        if let Some(inbox) = self.inbox.as_mut() {
            tokio::select! {
                biased;
                done = &mut work => return Ok(done),
                Some(dequeue) = inbox.recv() => return Err(Flow::Dequeued(*dequeue)),
            }
        }
        Ok(work.await)
    }

    /// How much of `duration_ms` of media the caller heard: all of it unless something cut it
    /// short, then the clock time it played for (scaled by the media speed).
    fn heard_ms(&self, duration_ms: i64, started: i64, completed: bool) -> i64 {
        let speed = self.core.settings.media_speed;
        if completed || speed <= 0.0 {
            return duration_ms;
        }
        let elapsed = (self.core.clock.now_ms() - started) as f64 * speed;
        (elapsed as i64).clamp(0, duration_ms)
    }

    fn add_media(&mut self, media_ms: i64, tts_characters: i64) {
        self.fetches_without_progress = 0;
        if let Some(segment) = self.segment.as_mut() {
            segment.media_ms += media_ms;
            segment.tts_characters += tts_characters;
        }
    }

    /// Says a `<Say>`: the text, in its voice and language, as often as it loops.
    async fn say(
        &mut self,
        say: &crate::runtime::io::Say,
        barge_in: bool,
    ) -> Result<(), Result<String, Flow>> {
        self.say_text(
            &say.text,
            say.voice.clone(),
            say.language.clone(),
            say.loop_count,
            barge_in,
        )
        .await
    }

    /// A clip as a timeline entry shows it, in shared text: its address and length, or why there
    /// is none.
    fn clip_entry(
        &self,
        clip: Result<crate::media::MediaInfo, crate::media::MediaError>,
    ) -> (Option<Arc<str>>, Option<i64>, Option<Arc<str>>) {
        let phrases = &self.core.phrases;
        match clip {
            Ok(clip) => (
                Some(phrases.share(&clip.url)),
                Some(clip.duration_ms as i64),
                None,
            ),
            Err(error) => (None, None, Some(phrases.share(&error.to_string()))),
        }
    }

    async fn say_text(
        &mut self,
        text: &str,
        voice: Option<String>,
        language: Option<String>,
        loop_count: u32,
        barge_in: bool,
    ) -> Result<(), Result<String, Flow>> {
        let media = self.core.media.clone();
        let speech = self
            .unless_dequeued(media.synthesize(text, voice.as_deref(), language.as_deref()))
            .await
            .map_err(Err)?;
        if let Err(error) = &speech {
            tracing::info!(call_sid = %self.leg.sid(), %error, "speech could not be synthesized");
        }
        let (media_url, duration_ms, error) = self.clip_entry(speech);
        let duration_ms = duration_ms.unwrap_or(0);
        let phrases = &self.core.phrases;
        let text_shared = phrases.share(text);
        let voice = voice.as_deref().map(|voice| phrases.share(voice));
        let language = language.as_deref().map(|language| phrases.share(language));
        let repeats = if error.is_some() {
            1
        } else {
            repetitions(loop_count)
        };
        for _ in 0..repeats {
            self.leg.experience(
                self.core.clock.now_ms(),
                Experience::Say {
                    text: text_shared.clone(),
                    voice: voice.clone(),
                    language: language.clone(),
                    media_url: media_url.clone(),
                    duration_ms,
                    error: error.clone(),
                },
            );
            if error.is_some() {
                // Nothing to play: the call moves on to the next instruction.
                return self.play_for(0, barge_in).await;
            }
            let started = self.core.clock.now_ms();
            let played = self.play_for(duration_ms, barge_in).await;
            let heard = self.heard_ms(duration_ms, started, played.is_ok());
            self.add_media(heard, text.chars().count() as i64);
            played?;
        }
        Ok(())
    }

    async fn play(
        &mut self,
        url: &str,
        loop_count: u32,
        barge_in: bool,
    ) -> Result<(), Result<String, Flow>> {
        let media = self.core.media.clone();
        let resolved = self
            .unless_dequeued(media.resolve_url(url))
            .await
            .map_err(Err)?;
        if let Err(error) = &resolved {
            tracing::info!(call_sid = %self.leg.sid(), %url, %error, "media could not be played");
        }
        let (media_url, duration_ms, error) = self.clip_entry(resolved);
        let url_shared = self.core.phrases.share(url);
        let repeats = if error.is_some() {
            1
        } else {
            repetitions(loop_count)
        };
        for _ in 0..repeats {
            self.leg.experience(
                self.core.clock.now_ms(),
                Experience::Play {
                    url: url_shared.clone(),
                    media_url: media_url.clone(),
                    duration_ms,
                    error: error.clone(),
                },
            );
            let length = duration_ms.unwrap_or(0);
            let started = self.core.clock.now_ms();
            let played = self.play_for(length, barge_in).await;
            let heard = self.heard_ms(length, started, played.is_ok());
            self.add_media(heard, 0);
            played?;
        }
        Ok(())
    }

    async fn pause(&mut self, seconds: u32, barge_in: bool) -> Result<(), Result<String, Flow>> {
        let duration_ms = i64::from(seconds) * 1000;
        self.leg
            .experience(self.core.clock.now_ms(), Experience::Pause { duration_ms });
        self.fetches_without_progress = 0;
        self.play_for(duration_ms, barge_in).await
    }

    /// Plays the prompts, collects keys, and decides what follows: `Ok(None)` = no input, go on
    /// with the next instruction; `Ok(Some(flow))` = the outcome goes to the action.
    async fn gather(&mut self, gather: &Gather, request: &Request) -> Result<Option<Flow>, Flow> {
        let action = match &gather.action {
            Some(action) => match resolve_uri(&request.uri, action) {
                Ok(uri) => uri,
                Err(error) => return Err(Flow::Failed(error)),
            },
            None => request.uri.clone(),
        };
        self.leg.experience(
            self.core.clock.now_ms(),
            Experience::Gather {
                num_digits: gather.num_digits,
                timeout_seconds: gather.timeout_seconds,
                finish_on_key: gather.finish_on_key.clone(),
            },
        );
        self.fetches_without_progress = 0;
        let mut collected = String::new();
        let mut finished = false;
        let pressed = |keys: &str, collected: &mut String| -> bool {
            for key in keys.chars() {
                if gather
                    .finish_on_key
                    .as_deref()
                    .is_some_and(|f| f.starts_with(key))
                {
                    return true;
                }
                collected.push(key);
                if gather
                    .num_digits
                    .is_some_and(|n| collected.chars().count() >= n as usize)
                {
                    return true;
                }
            }
            false
        };
        // Prompts play until the first key (barge-in).
        for prompt in &gather.prompts {
            let played = match prompt {
                // Boxed, as verbs are in `run_document`: the gather waits through all of them.
                Prompt::Say(say) => Box::pin(self.say(say, true)).await,
                Prompt::Play(play) => {
                    Box::pin(self.play(&media_url(request, &play.url), play.loop_count, true)).await
                }
                Prompt::Pause { length_seconds } => {
                    Box::pin(self.pause(*length_seconds, true)).await
                }
            };
            match played {
                Ok(()) => {}
                Err(Ok(keys)) => {
                    finished = pressed(&keys, &mut collected);
                    break;
                }
                Err(Err(flow)) => return Err(flow),
            }
        }
        let mut timed_out = false;
        let timeout_ms = i64::from(gather.timeout_seconds) * 1000;
        let sid = self.leg.sid();
        while !finished {
            match self.wait(Some(timeout_ms)).await {
                Wake::Elapsed => {
                    timed_out = true;
                    break;
                }
                Wake::Command(command) if command.call_sid == sid => {
                    match self.interruption(command, true) {
                        Some(Ok(keys)) => finished = pressed(&keys, &mut collected),
                        Some(Err(flow)) => return Err(flow),
                        None => {}
                    }
                }
                Wake::Command(_) => {}
            }
        }
        self.leg.experience(
            self.core.clock.now_ms(),
            Experience::GatherEnded {
                digits: collected.clone(),
                timed_out,
            },
        );
        if collected.is_empty() {
            return Ok(None);
        }
        Ok(Some(Flow::Fetch(Request::new(
            action,
            "POST",
            Trigger::Gather {
                digits: collected,
                timed_out,
            },
        ))))
    }

    /// Rings the dialled numbers, bridges the first to answer, and reports how it went.
    async fn dial(&mut self, dial: &Dial, request: &Request) -> Option<Flow> {
        let mut numbers = Vec::new();
        for target in &dial.targets {
            match target {
                DialTarget::Number { number } => numbers.push(number.clone()),
                // An offline client is not rung: with nobody else to ring, the dial ends
                // `no-answer` at once.
                DialTarget::Client { identity } => {
                    if self.core.presence.is_online(&self.account.sid, identity) {
                        numbers.push(format!("client:{identity}"));
                    }
                }
                DialTarget::Queue { name, url } => {
                    return self.dial_queue(name, url.as_deref(), dial, request).await;
                }
            }
        }
        let action = match &dial.action {
            Some(action) => match resolve_uri(&request.uri, action) {
                Ok(uri) => Some(uri),
                Err(error) => return Some(Flow::Failed(error)),
            },
            None => None,
        };
        self.fetches_without_progress = 0;
        let caller_id = dial
            .caller_id
            .clone()
            .unwrap_or_else(|| self.leg.record().from);
        // Clients rung are told when the dial is over, when this goes out of scope.
        let (legs, mut rung_clients) = self.open_legs(numbers, &caller_id, None);
        let (outcome, answered) = self.ring_legs(&legs, dial.timeout_seconds).await;
        if let Some(winner) = &answered {
            self.cancel_losers(&legs, winner, &mut rung_clients);
        }
        let mut result = match outcome {
            Ok(status) => (status, None, 0),
            Err(flow) => {
                self.release_legs(&legs, None);
                return Some(flow);
            }
        };
        if let Some(leg) = answered {
            let (status, duration_s, flow) = self.bridge(&leg, dial).await;
            result = (status, Some(leg.sid()), duration_s);
            if let Some(flow) = flow {
                self.release_legs(&legs, Some(&leg));
                return Some(flow);
            }
        }
        self.release_legs(&legs, None);
        let (status, dial_call_sid, duration_seconds) = result;
        action.map(|uri| {
            Flow::Fetch(Request::new(
                uri,
                "POST",
                Trigger::Dial {
                    status,
                    dial_call_sid,
                    duration_seconds,
                },
            ))
        })
    }

    /// The first to answer wins: every other leg stops ringing now (not when the bridge ends), and
    /// the clients they rang are told.
    fn cancel_losers(&mut self, legs: &[Leg], winner: &Leg, rung_clients: &mut Vec<RungClient>) {
        let winner_sid = winner.sid();
        for leg in legs.iter().filter(|leg| leg.sid() != winner_sid) {
            if matches!(leg.status(), CallStatus::Queued | CallStatus::Ringing) {
                self.set_status(leg, CallStatus::Canceled, Some(Party::System));
            }
            self.core.unregister(&leg.sid());
        }
        rung_clients.retain(|(leg_sid, _)| *leg_sid == winner_sid);
    }

    /// Creates a ringing leg to each number (or `client:NAME`), as children of this call. Clients are
    /// rung through presence; the attachments tell them when the dial is over, so the caller keeps
    /// them until then. A client gone offline since the lookup gets no ringing leg. `progress`
    /// asks every leg to post its call progress (a URL and the events wanted; none = `completed`),
    /// as a reservation's dequeue may.
    fn open_legs(
        &mut self,
        numbers: Vec<String>,
        caller_id: &str,
        progress: Option<(&str, &[String])>,
    ) -> (Vec<Leg>, Vec<RungClient>) {
        let mut attachments = Vec::new();
        let parent = self.leg.record();
        let now = self.core.clock.now_ms();
        let mut legs = Vec::new();
        for number in numbers {
            let record = CallRecord {
                parent_call_sid: Some(parent.sid.clone()),
                status_callback: progress.map(|(url, _)| url.to_string()),
                status_callback_events: progress
                    .map(|(_, events)| events.to_vec())
                    .unwrap_or_default(),
                ..CallRecord::new(
                    &parent.account_sid,
                    caller_id,
                    &number,
                    crate::runtime::io::CallDirection::OutboundDial,
                    CallStatus::Queued,
                    now,
                )
            };
            let leg = Leg::new(record.clone());
            let committed = self
                .core
                .writer
                .submit(vec![record.insert(), status_event(&record, now)]);
            self.callback(&record, "initiated", committed);
            self.core
                .register_leg(&record.sid, &self.account.sid, &parent.sid, leg.clone());
            self.leg.experience(
                now,
                Experience::Dialing {
                    call_sid: record.sid.clone(),
                    to: record.to.clone(),
                },
            );
            if let Some(identity) = record.to.strip_prefix("client:") {
                let call = crate::presence::IncomingCall {
                    call_sid: record.sid.clone(),
                    from: record.from.clone(),
                    to: record.to.clone(),
                };
                match self.core.presence.ring(&self.account.sid, identity, call) {
                    Some(attachment) => attachments.push((record.sid.clone(), attachment)),
                    None => {
                        self.set_status(&leg, CallStatus::NoAnswer, Some(Party::System));
                        self.core.unregister(&record.sid);
                        continue;
                    }
                }
            }
            self.set_status(&leg, CallStatus::Ringing, None);
            legs.push(leg);
        }
        (legs, attachments)
    }

    /// Rings until one leg answers (returned), all decline, the timeout passes, or the caller
    /// hangs up or is redirected (`Err`).
    async fn ring_legs(
        &mut self,
        legs: &[Leg],
        timeout_seconds: u32,
    ) -> (Result<DialStatus, Flow>, Option<Leg>) {
        let timeout = if timeout_seconds == 0 {
            RING_TIMEOUT_DEFAULT_S
        } else {
            timeout_seconds
        };
        let deadline = self.core.clock.now_ms() + i64::from(timeout) * 1000;
        let mut busy = 0;
        let mut declined = 0;
        loop {
            if busy + declined == legs.len() {
                let status = if busy > 0 {
                    DialStatus::Busy
                } else {
                    DialStatus::NoAnswer
                };
                return (Ok(status), None);
            }
            let left = deadline - self.core.clock.now_ms();
            let command = match self.wait(Some(left)).await {
                Wake::Elapsed => {
                    for leg in legs {
                        if leg.status() == CallStatus::Ringing {
                            self.set_status(leg, CallStatus::NoAnswer, Some(Party::System));
                        }
                    }
                    return (Ok(DialStatus::NoAnswer), None);
                }
                Wake::Command(command) => command,
            };
            let Some(leg) = legs.iter().find(|leg| leg.sid() == command.call_sid) else {
                if let Some(Err(flow)) = self.interruption(command, false) {
                    return (Err(flow), None);
                }
                continue;
            };
            if leg.status() != CallStatus::Ringing {
                continue;
            }
            match command.action {
                Action::Answer => {
                    self.set_status(leg, CallStatus::InProgress, None);
                    return (Ok(DialStatus::Completed), Some(leg.clone()));
                }
                Action::Busy => {
                    busy += 1;
                    self.set_status(leg, CallStatus::Busy, Some(Party::Callee));
                }
                Action::Hangup(Party::Api) => {
                    // Canceled through the API: the leg is over now, whatever the others do.
                    declined += 1;
                    self.set_status(leg, CallStatus::Canceled, Some(Party::Api));
                    self.core.unregister(&leg.sid());
                }
                Action::Reject | Action::Hangup(_) => {
                    declined += 1;
                    self.set_status(leg, CallStatus::NoAnswer, Some(Party::Callee));
                }
                Action::Digits(_) | Action::Redirect { .. } | Action::Dequeued(_) => {}
            }
        }
    }

    /// Keeps the caller connected to `leg` until one side hangs up or the time limit passes.
    async fn bridge(&mut self, leg: &Leg, dial: &Dial) -> (DialStatus, u32, Option<Flow>) {
        let started = self.core.clock.now_ms();
        let record = leg.record();
        self.leg.experience(
            started,
            Experience::Bridged {
                call_sid: record.sid.clone(),
                to: record.to.clone(),
            },
        );
        leg.experience(
            started,
            Experience::Bridged {
                call_sid: self.leg.sid(),
                to: self.leg.record().from,
            },
        );
        let limit = i64::from(dial.time_limit_seconds.unwrap_or(BRIDGE_LIMIT_DEFAULT_S)) * 1000;
        let deadline = started + limit;
        let (ender, flow) = loop {
            let left = deadline - self.core.clock.now_ms();
            match self.wait(Some(left)).await {
                Wake::Elapsed => break (Party::System, None),
                Wake::Command(command) if command.call_sid == record.sid => {
                    if let Action::Hangup(by) = command.action {
                        let ender = if by == Party::Api { by } else { Party::Callee };
                        break (ender, None);
                    }
                }
                Wake::Command(command) => {
                    if let Some(Err(flow)) = self.interruption(command, false) {
                        break (Party::Caller, Some(flow));
                    }
                }
            }
        };
        let now = self.core.clock.now_ms();
        let duration_ms = now - started;
        for party in [&self.leg.clone(), leg] {
            let other = if party.sid() == record.sid {
                self.leg.sid()
            } else {
                record.sid.clone()
            };
            party.experience(
                now,
                Experience::Unbridged {
                    call_sid: other,
                    duration_ms,
                },
            );
        }
        self.set_status(leg, CallStatus::Completed, Some(ender));
        (DialStatus::Completed, (duration_ms / 1000) as u32, flow)
    }

    /// Ends every dialled leg still ringing or connected (except `keep`, already ended) and takes
    /// them out of the live registry.
    fn release_legs(&mut self, legs: &[Leg], keep: Option<&Leg>) {
        for leg in legs {
            if keep.is_some_and(|k| k.sid() == leg.sid()) {
                self.core.unregister(&leg.sid());
                continue;
            }
            match leg.status() {
                CallStatus::Queued | CallStatus::Ringing => {
                    self.set_status(leg, CallStatus::Canceled, Some(Party::System));
                }
                CallStatus::InProgress => {
                    self.set_status(leg, CallStatus::Completed, Some(Party::System));
                }
                _ => {}
            }
            self.core.unregister(&leg.sid());
        }
    }

    /// Ends the call with the right final status.
    async fn end(&mut self, by: Party) {
        let status = match self.leg.status() {
            CallStatus::InProgress => CallStatus::Completed,
            CallStatus::Queued | CallStatus::Ringing => match by {
                Party::Caller | Party::Api => CallStatus::Canceled,
                _ => CallStatus::Failed,
            },
            done => done,
        };
        if !self.leg.status().is_final() {
            let leg = self.leg.clone();
            self.set_status(&leg, status, Some(by));
        }
    }

    /// Closes the segment and waits until everything is committed before the call leaves the live
    /// registry (so a read after that sees the final state).
    async fn finish(mut self) {
        let now = self.core.clock.now_ms();
        self.close_segment(now);
        let sid = self.leg.sid();
        if let Err(error) = self.core.writer.submit(Vec::new()).wait().await {
            tracing::error!(call = %sid, %error, "the end of a call could not be stored");
        }
        self.core.unregister(&sid);
    }

    /// Records a status change of `leg`, commits it with its event, and queues its callbacks.
    fn set_status(&mut self, leg: &Leg, status: CallStatus, by: Option<Party>) {
        let now = self.core.clock.now_ms();
        let record = {
            let mut state = leg.lock();
            let record = &mut state.record;
            record.status = status;
            record.date_updated = now;
            if status == CallStatus::InProgress && record.start_time.is_none() {
                record.start_time = Some(now);
            }
            if status.is_final() {
                record.end_time = Some(now);
                record.ended_by = by;
            }
            record.clone()
        };
        leg.experience(
            now,
            Experience::Status {
                status: status.as_str().into(),
            },
        );
        // The call's own end also closes its timeline, stored with the final status.
        let update = if status.is_final() && record.sid == self.leg.sid() {
            leg.experience(
                now,
                Experience::Hangup {
                    by: by.unwrap_or(Party::System),
                },
            );
            record.update_final(&leg.timeline())
        } else {
            record.update_status()
        };
        let committed = self
            .core
            .writer
            .submit(vec![update, status_event(&record, now)]);
        let callback_event = match status {
            CallStatus::Ringing => Some("ringing"),
            CallStatus::InProgress => Some("answered"),
            status if status.is_final() => Some("completed"),
            _ => None,
        };
        if let Some(event) = callback_event {
            self.callback(&record, event, committed);
        }
    }

    /// Queues a status callback for `event` if the call asked for it.
    fn callback(
        &mut self,
        record: &CallRecord,
        event: &str,
        committed: crate::store::batch::Committed,
    ) {
        let Some(url) = record.status_callback.clone() else {
            return;
        };
        let wanted = if record.status_callback_events.is_empty() {
            event == "completed"
        } else {
            record.status_callback_events.iter().any(|e| e == event)
        };
        if !wanted {
            return;
        }
        let now = self.core.clock.now_ms();
        let view = record.view();
        let mut params = super::handler::request_parameters(
            &view,
            &Request::new(
                url.clone(),
                record.status_callback_method.clone(),
                Trigger::Incoming,
            ),
        );
        if event == "initiated" {
            for (name, value) in &mut params {
                if name == "CallStatus" {
                    *value = "initiated".into();
                }
            }
        }
        params.push(("CallbackSource".into(), "call-progress-events".into()));
        let sequence = self
            .callback_sequences
            .entry(record.sid.clone())
            .or_insert(0);
        params.push(("SequenceNumber".into(), sequence.to_string()));
        *sequence += 1;
        params.push(("Timestamp".into(), crate::store::rfc2822(now)));
        if let Some(duration) = record.end_time.and(record.duration_seconds(now)) {
            params.push(("CallDuration".into(), duration.to_string()));
        }
        let http = self.core.http.clone();
        let callbacks = self.callbacks.get_or_insert_with(|| {
            let (callbacks, queue) = mpsc::unbounded_channel();
            tokio::spawn(send_callbacks(http, queue));
            callbacks
        });
        let _ = callbacks.send(Callback {
            committed,
            url,
            method: record.status_callback_method.clone(),
            params,
        });
    }
}

/// The failure of an instruction that cannot run in this kind of document.
fn not_allowed(instruction: &Instruction, mode: Mode) -> Flow {
    let (name, allowed) = match mode {
        Mode::Call => ("a call handler's answer", "any instruction but leave"),
        Mode::Wait => (
            "a wait-state application's answer",
            "say, play, pause, gather, redirect, leave and hangup",
        ),
        Mode::Whisper => (
            "the instructions run on a dequeued caller",
            "say, play, pause and redirect",
        ),
    };
    Flow::Failed(HandlerError::new(
        Code::SchemaValidation,
        format!(
            "{}: not allowed in {name}, which may use {allowed}",
            crate::telephony::twiml::instruction_name(instruction)
        ),
    ))
}

/// The `call.status-changed` event for the record's current status.
fn status_event(record: &CallRecord, now: i64) -> Statement {
    NewEvent {
        account_sid: &record.account_sid,
        event_type: "call.status-changed",
        source: record.uri(),
        subject: Some(&record.sid),
        time_ms: now,
        data: serde_json::json!({
            "call_sid": record.sid,
            "parent_call_sid": record.parent_call_sid,
            "status": record.status.as_str(),
            "direction": record.direction.as_str(),
            "from": record.from,
            "to": record.to,
            "ended_by": record.ended_by,
        }),
    }
    .statement()
}

/// A media URL as written in a document: relative URLs are relative to the document's own URL.
fn media_url(request: &Request, url: &str) -> String {
    resolve_uri(&request.uri, url).unwrap_or_else(|_| url.to_string())
}

/// How many times a `loop` attribute plays: 0 means "until the call moves on", capped at 1000 as on
/// the reference platform.
fn repetitions(loop_count: u32) -> u32 {
    if loop_count == 0 {
        1000
    } else {
        loop_count.min(1000)
    }
}

/// Sends status callbacks one at a time, in order, each after its change is committed.
async fn send_callbacks(http: reqwest::Client, mut queue: mpsc::UnboundedReceiver<Callback>) {
    while let Some(callback) = queue.recv().await {
        if callback.committed.wait().await.is_err() {
            continue;
        }
        let request = if callback.method == "GET" {
            http.get(&callback.url).query(&callback.params)
        } else {
            http.post(&callback.url).form(&callback.params)
        };
        if let Err(error) = request.send().await {
            tracing::info!(url = %callback.url, %error, "a status callback could not be delivered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::io::CallDirection;

    fn pause(ms: i64) -> Experience {
        Experience::Pause { duration_ms: ms }
    }

    fn durations(leg: &Leg) -> Vec<i64> {
        leg.timeline()
            .iter()
            .map(|entry| match entry.experience {
                Experience::Pause { duration_ms } => duration_ms,
                _ => -1,
            })
            .collect()
    }

    fn leg() -> Leg {
        Leg::new(CallRecord::new(
            "AC1",
            "+15550000001",
            "+15550000002",
            CallDirection::Inbound,
            CallStatus::InProgress,
            0,
        ))
    }

    #[test]
    fn a_wait_keeps_its_beginning_and_its_latest_entries() {
        let leg = leg();
        for n in 0..3 {
            leg.experience(n, pause(n));
        }
        leg.waiting(true);
        for n in 3..1000 {
            leg.experience(n, pause(n));
        }
        let kept = durations(&leg);
        assert_eq!(kept.len(), 3 + WAIT_LIMIT);
        let first = 3 + WAIT_KEEP_FIRST;
        assert_eq!(kept[..first], (0..first as i64).collect::<Vec<_>>());
        let latest = (1000 - (WAIT_LIMIT - WAIT_KEEP_FIRST) as i64)..1000;
        assert_eq!(kept[first..], latest.collect::<Vec<_>>());

        // Once the wait is over the call's own limit applies again: its first entries stay.
        let waited = kept;
        leg.waiting(false);
        for n in 1000..2000 {
            leg.experience(n, pause(n));
        }
        let kept = durations(&leg);
        assert_eq!(kept.len(), TIMELINE_LIMIT);
        assert_eq!(kept[..TIMELINE_KEEP_FIRST], waited[..TIMELINE_KEEP_FIRST]);
        assert_eq!(kept.last(), Some(&1999));
    }

    #[test]
    fn a_wait_late_in_a_long_call_keeps_its_beginning_too() {
        let leg = leg();
        for n in 0..TIMELINE_LIMIT as i64 {
            leg.experience(n, pause(n));
        }
        leg.waiting(true);
        for n in 1000..2000 {
            leg.experience(n, pause(n));
        }
        let kept = durations(&leg);
        assert_eq!(kept.len(), TIMELINE_LIMIT);
        assert_eq!(
            kept[..TIMELINE_KEEP_FIRST],
            (0..TIMELINE_KEEP_FIRST as i64).collect::<Vec<_>>()
        );
        let start = TIMELINE_LIMIT - WAIT_LIMIT;
        assert_eq!(
            kept[start - 1],
            TIMELINE_LIMIT as i64 - 1,
            "the last entry before the wait"
        );
        let first = (1000..1000 + WAIT_KEEP_FIRST as i64).collect::<Vec<_>>();
        assert_eq!(
            kept[start..start + WAIT_KEEP_FIRST],
            first,
            "the wait's beginning"
        );
        assert_eq!(kept.last(), Some(&1999));
    }
}
