//! Telephony: applications, phone numbers, call sessions and the instruction interpreter.
//!
//! The facade is [`Telephony`]: edges hand it calls (`incoming`), the REST API creates outbound
//! calls and steers live ones (`outbound`, `command`), and readers get records, timelines and
//! segments. Each call runs as one [`session::Session`] task.

pub mod api;
pub mod calls;
pub mod handler;
pub mod resources;
pub mod session;
pub mod twiml;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc};

use crate::accounts::{Account, Accounts};
use crate::api::error::{ApiError, ApiResult, Code};
use crate::clock::Clock;
use crate::config::TelephonySettings;
use crate::modules::Registry;
use crate::queues::Queues;
use crate::runtime::Runtime;
use crate::runtime::io::{CallDirection, CallStatus};
use crate::store::Db;
use crate::store::batch::Writer;
use calls::{CallRecord, CallResource, Segment, TimelineEntry};
use session::{Action, Command, Handlers, Leg, Session};

/// A live call (or dialled leg) as the registry knows it.
#[derive(Clone)]
pub(crate) struct Live {
    account_sid: String,
    /// The owning session's channel (a dialled leg shares its parent's).
    commands: mpsc::UnboundedSender<Box<Command>>,
    leg: Leg,
    /// Woken when the call leaves the live calls, its end committed.
    ended: Arc<Notify>,
}

impl Live {
    pub(crate) fn new(
        account_sid: String,
        commands: mpsc::UnboundedSender<Box<Command>>,
        leg: Leg,
    ) -> Live {
        Live {
            account_sid,
            commands,
            leg,
            ended: Arc::new(Notify::new()),
        }
    }
}

/// How long ending a call through the API waits for the end to be committed before it answers
/// the call as it is then.
const END_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The call progress events a status callback may ask for (`StatusCallbackEvent`).
pub const CALLBACK_EVENTS: [&str; 4] = ["initiated", "ringing", "answered", "completed"];

/// What sessions share.
pub struct Core {
    pub db: Db,
    pub writer: Writer,
    pub clock: Clock,
    pub settings: TelephonySettings,
    pub registry: Registry,
    pub runtime: Arc<Runtime>,
    pub accounts: Accounts,
    pub http: reqwest::Client,
    pub media: crate::media::MediaClient,
    pub queues: Queues,
    /// Tasks of callers enqueued with a workflow.
    pub routing: crate::routing::Routing,
    /// Registered clients, for `client:NAME` calls and dials.
    pub presence: crate::presence::Presence,
    live: Mutex<HashMap<String, Live>>,
    /// Texts that timelines share.
    pub phrases: calls::Phrases,
    /// Set once the host begins to stop: queued callers then keep their place instead of leaving.
    stopping: AtomicBool,
}

impl Core {
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn register(&self, call_sid: &str, live: Live) {
        self.live().insert(call_sid.to_string(), live);
    }

    /// Registers a dialled leg so commands for it reach its parent's session.
    pub(crate) fn register_leg(
        &self,
        call_sid: &str,
        account_sid: &str,
        parent_sid: &str,
        leg: Leg,
    ) {
        let mut live = self.live();
        if let Some(parent) = live.get(parent_sid).cloned() {
            live.insert(
                call_sid.to_string(),
                Live::new(account_sid.to_string(), parent.commands, leg),
            );
        }
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub(crate) fn unregister(&self, call_sid: &str) {
        let removed = self.live().remove(call_sid);
        if let Some(live) = removed {
            live.ended.notify_waiters();
        }
    }

    fn find_live(&self, account_sid: &str, call_sid: &str) -> Option<Live> {
        self.live()
            .get(call_sid)
            .filter(|live| live.account_sid == account_sid)
            .cloned()
    }
}

/// The telephony facade. Cheap to clone.
#[derive(Clone)]
pub struct Telephony(Arc<Core>);

/// A handle on the telephony that does not keep it alive, for parts it holds itself (the routing
/// places and redirects calls for reservation instructions).
#[derive(Clone)]
pub struct TelephonyHandle(std::sync::Weak<Core>);

impl TelephonyHandle {
    pub fn upgrade(&self) -> Option<Telephony> {
        self.0.upgrade().map(Telephony)
    }
}

/// An outbound call as the REST API asks for it.
#[derive(Debug, Clone)]
pub struct OutboundCall {
    pub to: String,
    pub from: String,
    pub handlers: Handlers,
    pub application_sid: Option<String>,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    pub status_callback_events: Vec<String>,
    /// Seconds to ring before `no-answer`.
    pub timeout_seconds: u32,
}

impl Telephony {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        writer: Writer,
        clock: Clock,
        settings: TelephonySettings,
        registry: Registry,
        runtime: Arc<Runtime>,
        accounts: Accounts,
        queues: Queues,
        routing: crate::routing::Routing,
        media: crate::media::MediaClient,
        presence: crate::presence::Presence,
    ) -> Self {
        let http = handler::http_client(&settings);
        Telephony(Arc::new(Core {
            db,
            writer,
            clock,
            settings,
            registry,
            runtime,
            accounts,
            media,
            http,
            queues,
            routing,
            presence,
            live: Mutex::new(HashMap::new()),
            phrases: calls::Phrases::default(),
            stopping: AtomicBool::new(false),
        }))
    }

    pub fn handle(&self) -> TelephonyHandle {
        TelephonyHandle(Arc::downgrade(&self.0))
    }

    pub fn clock(&self) -> &Clock {
        &self.0.clock
    }

    /// Calls running now, dialled legs included.
    pub fn live_calls(&self) -> usize {
        self.0.live().len()
    }

    /// Ends every live call (the host is stopping) and waits, up to `patience`, until their
    /// sessions have stored their final state. Callers waiting in a queue are not hung up: they
    /// keep their place and resume waiting at the next start.
    pub async fn hang_up_all(&self, patience: std::time::Duration) {
        self.0.stopping.store(true, Ordering::SeqCst);
        let live: Vec<(String, Live)> = self
            .0
            .live()
            .iter()
            .map(|(sid, live)| (sid.clone(), live.clone()))
            .collect();
        for (call_sid, live) in live {
            let _ = live.commands.send(Box::new(Command {
                call_sid,
                action: Action::Hangup(calls::Party::System),
            }));
        }
        let deadline = std::time::Instant::now() + patience;
        while self.live_calls() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Whether the call is running now.
    pub fn is_live(&self, account_sid: &str, call_sid: &str) -> bool {
        self.0.find_live(account_sid, call_sid).is_some()
    }

    /// Resumes the callers a previous run left waiting in queues, and ends the other calls it
    /// left live (see [`calls::fail_interrupted`]).
    pub async fn recover(&self) -> anyhow::Result<()> {
        let members = self.0.queues.recover().await?;
        let mut resumed = 0;
        for member in members {
            let call_sid = &member.membership.call_sid;
            let record = calls::get(&self.0.db, &member.membership.account_sid, call_sid).await?;
            let account = self.0.accounts.get(&member.membership.account_sid).await?;
            match (record, account) {
                (Some(record), Some(account)) if !record.status.is_final() => {
                    let segments = calls::segment_count(&self.0.db, call_sid).await?;
                    let handlers = record.url.clone().map(|url| Handlers {
                        url,
                        method: "POST".into(),
                        fallback_url: record.fallback_url.clone(),
                        fallback_method: "POST".into(),
                    });
                    Session::resume(self.0.clone(), account, record, handlers, member, segments);
                    resumed += 1;
                }
                _ => {
                    self.0
                        .queues
                        .discard(&member.membership.queue_sid, call_sid)
                        .await?;
                }
            }
        }
        if resumed > 0 {
            tracing::info!(
                calls = resumed,
                "callers waiting in queues resumed their wait"
            );
        }
        let ended = calls::fail_interrupted(&self.0.db, self.0.clock.now_ms()).await?;
        if ended > 0 {
            tracing::warn!(
                calls = ended,
                "calls that were live when the host stopped were ended as failed"
            );
        }
        Ok(())
    }

    /// An inbound call from the network to `to`, placed by `account`'s edge. The call is committed
    /// before this returns; its session then runs on its own.
    pub async fn incoming(
        &self,
        account: &Account,
        from: &str,
        to: &str,
    ) -> ApiResult<CallResource> {
        let arrived = std::time::Instant::now();
        let routing = resources::route_number(&self.0.db, to).await?;
        let Some(routing) = routing.filter(|r| r.account_sid == account.sid) else {
            return Err(ApiError::new(
                Code::UnknownNumber,
                format!("The call to {to} was rejected: no phone number of this account is {to}"),
            ));
        };
        let now = self.0.clock.now_ms();
        let record = CallRecord {
            phone_number_sid: Some(routing.phone_number_sid.clone()),
            application_sid: routing.application_sid.clone(),
            url: routing.voice.voice_url.clone(),
            fallback_url: routing.voice.voice_fallback_url.clone(),
            status_callback: routing.voice.status_callback.clone(),
            status_callback_method: routing.voice.status_callback_method.clone(),
            ..CallRecord::new(
                &account.sid,
                from,
                to,
                CallDirection::Inbound,
                CallStatus::Ringing,
                now,
            )
        };
        // The session starts at once: the caller should not wait for the disk. The placing request
        // is acknowledged only once the call is committed, and a call whose record cannot be
        // committed is hung up.
        let committed = self.0.writer.submit(vec![record.insert()]);
        let handlers = routing.voice.voice_url.clone().map(|url| Handlers {
            url,
            method: routing.voice.voice_method.clone(),
            fallback_url: routing.voice.voice_fallback_url.clone(),
            fallback_method: routing.voice.voice_fallback_method.clone(),
        });
        let resource = record.resource();
        Session::start(
            self.0.clone(),
            account.clone(),
            record,
            handlers,
            0,
            Some(arrived),
        );
        self.acknowledge(&account.sid, &resource.sid, committed)
            .await?;
        Ok(resource)
    }

    /// Waits for a new call's record to commit; if it cannot be, the call is ended and the request
    /// fails, so nothing unrecorded keeps running.
    async fn acknowledge(
        &self,
        account_sid: &str,
        call_sid: &str,
        committed: crate::store::batch::Committed,
    ) -> ApiResult<()> {
        if let Err(error) = committed.wait().await {
            let _ = self
                .command(account_sid, call_sid, Action::Hangup(calls::Party::System))
                .await;
            return Err(ApiError::new(Code::Unavailable, error.to_string()));
        }
        Ok(())
    }

    /// An outbound call placed through the REST API: it rings the called party, which answers
    /// through the edge; then `handlers` drive it.
    pub async fn outbound(&self, account: &Account, call: OutboundCall) -> ApiResult<CallResource> {
        let now = self.0.clock.now_ms();
        let record = CallRecord {
            application_sid: call.application_sid.clone(),
            url: Some(call.handlers.url.clone()),
            fallback_url: call.handlers.fallback_url.clone(),
            status_callback: call.status_callback,
            status_callback_method: call.status_callback_method,
            status_callback_events: call.status_callback_events,
            ..CallRecord::new(
                &account.sid,
                &call.from,
                &call.to,
                CallDirection::OutboundApi,
                CallStatus::Queued,
                now,
            )
        };
        self.0
            .writer
            .submit(vec![record.insert()])
            .wait()
            .await
            .map_err(|error| ApiError::new(Code::Unavailable, error.to_string()))?;
        let resource = record.resource();
        Session::start(
            self.0.clone(),
            account.clone(),
            record,
            Some(call.handlers),
            call.timeout_seconds,
            None,
        );
        Ok(resource)
    }

    /// A call placed by a registered client over its socket: it runs the application its token's
    /// outgoing grant names, with `From=client:IDENTITY`, as an inbound call from the client (the
    /// reference platform's convention). The client hears when it ends.
    pub async fn client_call(
        &self,
        account_sid: &str,
        call: crate::presence::ClientCall,
    ) -> ApiResult<String> {
        let account = self
            .0
            .accounts
            .get(account_sid)
            .await?
            .filter(|account| account.status == crate::accounts::AccountStatus::Active)
            .ok_or_else(|| {
                ApiError::new(
                    Code::AccessTokenRevoked,
                    format!("Account {account_sid} is suspended; its clients cannot place calls"),
                )
            })?;
        let voice = resources::application_voice(&self.0.db, account_sid, &call.application_sid)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    Code::GrantMissing,
                    format!(
                        "The token's outgoing grant names application {}, which this account does not have",
                        call.application_sid
                    ),
                )
            })?;
        let url = voice.voice_url.clone().ok_or_else(|| {
            ApiError::new(
                Code::GrantMissing,
                format!(
                    "Application {} has no VoiceUrl to run the client's calls",
                    call.application_sid
                ),
            )
        })?;
        let now = self.0.clock.now_ms();
        let from = format!("client:{}", call.identity);
        let record = CallRecord {
            application_sid: Some(call.application_sid.clone()),
            url: Some(url.clone()),
            fallback_url: voice.voice_fallback_url.clone(),
            status_callback: voice.status_callback.clone(),
            status_callback_method: voice.status_callback_method.clone(),
            ..CallRecord::new(
                account_sid,
                &from,
                &call.to,
                CallDirection::Inbound,
                CallStatus::Ringing,
                now,
            )
        };
        self.0
            .writer
            .submit(vec![record.insert()])
            .wait()
            .await
            .map_err(|error| ApiError::new(Code::Unavailable, error.to_string()))?;
        let handlers = Handlers {
            url,
            method: voice.voice_method.clone(),
            fallback_url: voice.voice_fallback_url.clone(),
            fallback_method: voice.voice_fallback_method.clone(),
        };
        let mut parameters = vec![("ApplicationSid".to_string(), call.application_sid.clone())];
        parameters.extend(call.parameters);
        let attachment = self.0.presence.attach_caller(
            account_sid,
            &call.identity,
            &call.endpoint_id,
            &record.sid,
        );
        let sid = record.sid.clone();
        Session::start_for_client(
            self.0.clone(),
            account,
            record,
            handlers,
            parameters,
            attachment,
        );
        Ok(sid)
    }

    /// Hands an action to a live call of the account: 404 for calls the account does not have,
    /// 409 for calls that have ended.
    pub async fn command(
        &self,
        account_sid: &str,
        call_sid: &str,
        action: Action,
    ) -> ApiResult<()> {
        if let Some(live) = self.0.find_live(account_sid, call_sid)
            && live
                .commands
                .send(Box::new(Command {
                    call_sid: call_sid.to_string(),
                    action,
                }))
                .is_ok()
        {
            return Ok(());
        }
        match calls::get(&self.0.db, account_sid, call_sid).await? {
            Some(record) => Err(ApiError::new(
                Code::CallNotLive,
                format!(
                    "Call {call_sid} is {}; it no longer takes actions",
                    record.status.as_str()
                ),
            )),
            None => Err(ApiError::not_found(call_sid)),
        }
    }

    /// Ends a call for the API (`Status=completed` or `canceled`) and waits, up to [`END_WAIT`],
    /// until it has left the live calls, then answers the call as its session last recorded it:
    /// with its final status, as the reference's answer has it. A call that is not live is
    /// refused as [`Telephony::command`] refuses it.
    pub async fn hang_up(&self, account_sid: &str, call_sid: &str) -> ApiResult<CallRecord> {
        let hang_up = || Action::Hangup(calls::Party::Api);
        let Some(live) = self.0.find_live(account_sid, call_sid) else {
            self.command(account_sid, call_sid, hang_up()).await?;
            return Err(ApiError::not_found(call_sid));
        };
        // Listening before the command is sent, so an end that comes at once is not missed.
        let ended = live.ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        self.command(account_sid, call_sid, hang_up()).await?;
        if self.0.find_live(account_sid, call_sid).is_some()
            && tokio::time::timeout(END_WAIT, ended).await.is_err()
        {
            tracing::warn!(call = %call_sid, "the call had not ended when its hang-up was answered");
        }
        // The session's own record: a dialled leg leaves the live calls as soon as its end is
        // submitted, before the commit a read of the stored record would need.
        Ok(live.leg.record())
    }

    /// A call as it is now: the live state while the call runs, else the stored record.
    pub async fn get(&self, account_sid: &str, call_sid: &str) -> ApiResult<Option<CallRecord>> {
        if let Some(live) = self.0.find_live(account_sid, call_sid) {
            return Ok(Some(live.leg.record()));
        }
        Ok(calls::get(&self.0.db, account_sid, call_sid).await?)
    }

    pub async fn list(
        &self,
        account_sid: &str,
        filter: &calls::CallFilter,
    ) -> ApiResult<Vec<CallRecord>> {
        let mut records = calls::list(&self.0.db, account_sid, filter).await?;
        for record in &mut records {
            if let Some(live) = self.0.find_live(account_sid, &record.sid) {
                *record = live.leg.record();
            }
        }
        if let Some(status) = &filter.status {
            records.retain(|r| r.status.as_str() == status);
        }
        Ok(records)
    }

    /// Everything the caller experienced so far.
    pub async fn timeline(
        &self,
        account_sid: &str,
        call_sid: &str,
    ) -> ApiResult<Option<Vec<TimelineEntry>>> {
        if let Some(live) = self.0.find_live(account_sid, call_sid) {
            return Ok(Some(live.leg.timeline()));
        }
        Ok(calls::stored_timeline(&self.0.db, account_sid, call_sid).await?)
    }

    pub async fn segments(
        &self,
        account_sid: &str,
        call_sid: &str,
    ) -> ApiResult<Option<Vec<Segment>>> {
        if calls::get(&self.0.db, account_sid, call_sid)
            .await?
            .is_none()
            && self.0.find_live(account_sid, call_sid).is_none()
        {
            return Ok(None);
        }
        // Segment rows are written behind the call; wait for what is queued so the answer is whole.
        self.0.writer.flush().await;
        Ok(Some(
            calls::segments(&self.0.db, account_sid, call_sid, self.0.clock.now_ms()).await?,
        ))
    }

    pub fn db(&self) -> &Db {
        &self.0.db
    }

    pub fn settings(&self) -> &TelephonySettings {
        &self.0.settings
    }

    pub fn accounts(&self) -> &Accounts {
        &self.0.accounts
    }
}
