//! Presence: who is reachable. Clients connect over a WebSocket with an access token
//! ([`token`]) signed by one of the account's API keys ([`keys`]); each connection is an
//! *endpoint* of an *identity*, kept alive by heartbeats as a lease. Calls look identities up here
//! and ring every endpoint; the first to accept is connected.
//!
//! The directory lives in memory: presence is soft state that a restart ends anyway (every socket
//! closes). What must outlast a restart, that an identity went online or offline and why, goes to the
//! event log. The facade is [`Presence`]; the socket protocol is in [`socket`].

pub mod api;
pub mod keys;
pub mod socket;
pub mod token;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::accounts::{AccountStatus, Accounts};
use crate::api::error::{ApiError, Code};
use crate::clock::Clock;
use crate::config::PresenceSettings;
use crate::events::NewEvent;
use crate::routing::Routing;
use crate::sid::new_sid;
use crate::store::Db;
use crate::store::batch::Writer;
use crate::telephony::TelephonyHandle;
use crate::telephony::session::Action;
use token::{Claims, OutgoingGrant};

/// What the host sends a client.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    /// The endpoint is registered: calls to the identity now ring it.
    Registered {
        identity: String,
        endpoint_id: String,
        account_sid: String,
        heartbeat_interval_seconds: u64,
        lease_seconds: u64,
        /// RFC 3339: when the token runs out; send a `token` message with a fresh one before then.
        token_expires_at: String,
    },
    /// A heartbeat was received; the lease now runs until `lease_expires_at`.
    Heartbeat { lease_expires_at: String },
    /// A call is ringing this endpoint: answer with `accept` or `reject`.
    Incoming {
        call_sid: String,
        from: String,
        to: String,
    },
    /// Another endpoint of the identity accepted the call.
    AnsweredElsewhere { call_sid: String },
    /// The call stopped ringing (the caller hung up, another party answered, or it timed out).
    Canceled { call_sid: String },
    /// A call this endpoint placed has started.
    Calling { call_sid: String, to: String },
    /// A call this endpoint was on has ended.
    Hangup { call_sid: String },
    Error {
        code: u32,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        call_sid: Option<String>,
    },
}

impl ServerMessage {
    fn error(error: &ApiError, call_sid: Option<&str>) -> Self {
        ServerMessage::Error {
            code: error.code.number(),
            message: error.message.clone(),
            call_sid: call_sid.map(str::to_string),
        }
    }
}

/// What a connection's task is asked to do.
#[derive(Debug)]
pub enum Outgoing {
    /// Boxed: the outbox's channel allocates its slots in blocks up front, and ten thousand idle
    /// clients should not each hold a block of full-size messages.
    Message(Box<ServerMessage>),
    /// Close the socket with a close code and reason (the endpoint is revoked).
    Close { code: u16, reason: String },
}

/// What a token allows the endpoint now; replaced when the client sends a fresh token.
#[derive(Debug, Clone)]
struct Authority {
    key_sid: String,
    expires_at_s: i64,
    outgoing: Option<OutgoingGrant>,
}

/// One registered connection of an identity.
pub struct Endpoint {
    pub id: String,
    pub account_sid: String,
    pub identity: String,
    pub connected_at: i64,
    last_heartbeat: AtomicI64,
    authority: Mutex<Authority>,
    outbox: mpsc::UnboundedSender<Outgoing>,
}

impl Endpoint {
    fn send(&self, message: ServerMessage) {
        let _ = self.outbox.send(Outgoing::Message(Box::new(message)));
    }

    fn authority(&self) -> Authority {
        self.authority
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn last_heartbeat(&self) -> i64 {
        self.last_heartbeat.load(Ordering::Relaxed)
    }
}

/// An endpoint as lookups report it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    pub id: String,
    /// Unix milliseconds.
    pub connected_at: i64,
    /// Unix milliseconds.
    pub last_heartbeat: i64,
}

/// Whether an identity is online, and where. Cheap to produce: it shares the directory's list of
/// endpoints instead of copying it.
#[derive(Clone)]
pub struct PresenceStatus {
    identity: Arc<str>,
    endpoints: Endpoints,
}

impl PresenceStatus {
    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn online(&self) -> bool {
        !self.endpoints.is_empty()
    }

    pub fn endpoints(&self) -> impl Iterator<Item = EndpointView> + '_ {
        self.endpoints.iter().map(|endpoint| EndpointView {
            id: endpoint.id.clone(),
            connected_at: endpoint.connected_at,
            last_heartbeat: endpoint.last_heartbeat(),
        })
    }

    /// The status as the API shows it.
    pub fn view(&self) -> PresenceView {
        PresenceView {
            identity: self.identity.to_string(),
            online: self.online(),
            endpoints: self.endpoints().collect(),
        }
    }
}

/// An identity's presence as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PresenceView {
    pub identity: String,
    pub online: bool,
    pub endpoints: Vec<EndpointView>,
}

/// Why an endpoint left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// The client closed the socket (or the connection dropped).
    Closed,
    /// No heartbeat within the lease.
    LeaseExpired,
    /// The token ran out and no fresh one came.
    TokenExpired,
    /// The key that signed the token was deleted.
    Revoked,
    /// The host is stopping.
    HostStopping,
}

impl Departure {
    pub fn as_str(self) -> &'static str {
        match self {
            Departure::Closed => "closed",
            Departure::LeaseExpired => "lease-expired",
            Departure::TokenExpired => "token-expired",
            Departure::Revoked => "revoked",
            Departure::HostStopping => "host-stopping",
        }
    }
}

/// A call tied to endpoints: ringing them, or connected to the one that answered (or placed it).
struct Tie {
    account_sid: String,
    endpoints: Endpoints,
    declined: HashSet<String>,
    answered_by: Option<Arc<Endpoint>>,
    /// The endpoint placed the call (its hangup is the caller's), rather than being rung.
    placed: bool,
}

/// An identity's endpoints, replaced as a whole when one comes or goes, so that a lookup copies a
/// pointer instead of a list.
type Endpoints = Arc<[Arc<Endpoint>]>;

/// Identity → endpoints, per account.
type Directory = HashMap<String, HashMap<Arc<str>, Endpoints>>;

/// Workers to move with a client's presence: account, `client:NAME`, online.
type Follow = (String, String, bool);

struct Inner {
    db: Db,
    writer: Writer,
    clock: Clock,
    settings: PresenceSettings,
    accounts: Accounts,
    directory: RwLock<Directory>,
    ties: Mutex<HashMap<String, Tie>>,
    telephony: OnceLock<TelephonyHandle>,
    stopping: watch::Sender<bool>,
    /// Presence changes for `routing`, applied one at a time in the order they happened.
    follows: mpsc::UnboundedSender<Follow>,
}

/// The presence facade. Cheap to clone.
#[derive(Clone)]
pub struct Presence(Arc<Inner>);

/// Keeps a call tied to the endpoints it rings or is connected to. Dropping it (the dial is over,
/// the call ended) tells them: `canceled` to those still ringing, `hangup` to the one connected.
pub struct CallAttachment {
    presence: std::sync::Weak<Inner>,
    call_sid: String,
}

impl Drop for CallAttachment {
    fn drop(&mut self) {
        if let Some(inner) = self.presence.upgrade() {
            Presence(inner).detach(&self.call_sid);
        }
    }
}

/// A call ringing registered clients.
#[derive(Debug, Clone)]
pub struct IncomingCall {
    pub call_sid: String,
    pub from: String,
    pub to: String,
}

/// A call a client places over its socket.
#[derive(Debug, Clone)]
pub struct ClientCall {
    pub identity: String,
    pub endpoint_id: String,
    pub application_sid: String,
    pub to: String,
    /// The token's outgoing params, then the message's own.
    pub parameters: Vec<(String, String)>,
}

impl Presence {
    pub fn new(
        db: Db,
        writer: Writer,
        clock: Clock,
        settings: PresenceSettings,
        accounts: Accounts,
        routing: Routing,
    ) -> Self {
        let (follows, mut to_follow) = mpsc::unbounded_channel::<Follow>();
        tokio::spawn(async move {
            while let Some((account_sid, contact_uri, online)) = to_follow.recv().await {
                routing
                    .follow_presence(&account_sid, &contact_uri, online)
                    .await;
            }
        });
        Presence(Arc::new(Inner {
            db,
            writer,
            clock,
            settings,
            accounts,
            follows,
            directory: RwLock::new(HashMap::new()),
            ties: Mutex::new(HashMap::new()),
            telephony: OnceLock::new(),
            stopping: watch::channel(false).0,
        }))
    }

    /// Lets presence steer calls (answers, hang-ups, calls placed by clients).
    pub fn attach_telephony(&self, telephony: TelephonyHandle) {
        let _ = self.0.telephony.set(telephony);
    }

    pub fn settings(&self) -> &PresenceSettings {
        &self.0.settings
    }

    pub fn clock(&self) -> &Clock {
        &self.0.clock
    }

    pub fn db(&self) -> &Db {
        &self.0.db
    }

    fn directory(&self) -> std::sync::RwLockReadGuard<'_, Directory> {
        self.0
            .directory
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn directory_mut(&self) -> std::sync::RwLockWriteGuard<'_, Directory> {
        self.0
            .directory
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn ties(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tie>> {
        self.0
            .ties
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the identity has at least one endpoint.
    pub fn is_online(&self, account_sid: &str, identity: &str) -> bool {
        self.directory()
            .get(account_sid)
            .and_then(|identities| identities.get(identity))
            .is_some_and(|endpoints| !endpoints.is_empty())
    }

    /// The identity's presence.
    pub fn lookup(&self, account_sid: &str, identity: &str) -> PresenceStatus {
        let found = self
            .directory()
            .get(account_sid)
            .and_then(|identities| identities.get_key_value(identity))
            .map(|(name, endpoints)| PresenceStatus {
                identity: name.clone(),
                endpoints: endpoints.clone(),
            });
        found.unwrap_or_else(|| PresenceStatus {
            identity: Arc::from(identity),
            endpoints: Arc::from(Vec::new()),
        })
    }

    /// Every online identity of the account, by identity.
    pub fn clients(&self, account_sid: &str) -> Vec<PresenceView> {
        let mut clients: Vec<PresenceView> = self
            .directory()
            .get(account_sid)
            .map(|identities| {
                identities
                    .iter()
                    .map(|(identity, endpoints)| {
                        PresenceStatus {
                            identity: identity.clone(),
                            endpoints: endpoints.clone(),
                        }
                        .view()
                    })
                    .collect()
            })
            .unwrap_or_default();
        clients.sort_by(|a, b| a.identity.cmp(&b.identity));
        clients
    }

    /// Endpoints connected to this host, all accounts.
    pub fn endpoint_count(&self) -> usize {
        self.directory()
            .values()
            .flat_map(|identities| identities.values())
            .map(|endpoints| endpoints.len())
            .sum()
    }

    /// Checks a token: its key exists and belongs to the account it names, the signature verifies
    /// with that key's secret, it is within its time window, the account is active and it names a
    /// valid identity.
    pub async fn authorize(&self, token: &str) -> Result<Claims, ApiError> {
        let unverified = token::unverified_claims(token)?;
        let revoked = || {
            ApiError::new(
                Code::AccessTokenRevoked,
                format!(
                    "Key {} was deleted or is not this account's: its tokens are revoked",
                    unverified.iss
                ),
            )
        };
        let key = keys::signing_key(&self.0.db, &unverified.iss)
            .await?
            .filter(|key| key.account_sid == unverified.sub)
            .ok_or_else(revoked)?;
        let now_s = self.0.clock.now_ms() / 1000;
        let claims = token::verify(
            token,
            &key.secret,
            now_s,
            i64::try_from(self.0.settings.token_leeway_seconds).unwrap_or(i64::MAX),
        )?;
        match self.0.accounts.get(&claims.sub).await? {
            Some(account) if account.status == AccountStatus::Active => {}
            _ => {
                return Err(ApiError::new(
                    Code::AccessTokenRevoked,
                    format!("Account {} is suspended or closed", claims.sub),
                ));
            }
        }
        let identity = claims.identity().ok_or_else(|| {
            ApiError::new(
                Code::InvalidAccessToken,
                "The token has no grants.identity: mint it with the identity the client registers as",
            )
        })?;
        crate::telephony::twiml::check_identity(identity).map_err(|reason| {
            ApiError::new(
                Code::InvalidAccessToken,
                format!("The token's identity {identity:?} is not valid: {reason}"),
            )
        })?;
        Ok(claims)
    }

    /// Registers an endpoint for a verified token. The identity's `presence.online` event (when this
    /// is its first endpoint) is committed before this returns.
    pub async fn register(
        &self,
        claims: &Claims,
    ) -> Result<(Arc<Endpoint>, mpsc::UnboundedReceiver<Outgoing>), ApiError> {
        if !claims.allows_incoming() {
            return Err(ApiError::new(
                Code::GrantMissing,
                "The token has no incoming voice grant (grants.voice.incoming.allow): only clients that may take calls register",
            ));
        }
        let identity = claims.identity().unwrap_or_default().to_string();
        let now = self.0.clock.now_ms();
        let (outbox, inbox) = mpsc::unbounded_channel();
        let endpoint = Arc::new(Endpoint {
            id: new_sid("EP"),
            account_sid: claims.sub.clone(),
            identity: identity.clone(),
            connected_at: now,
            last_heartbeat: AtomicI64::new(now),
            authority: Mutex::new(Authority {
                key_sid: claims.iss.clone(),
                expires_at_s: claims.exp,
                outgoing: claims.outgoing().cloned(),
            }),
            outbox,
        });
        // The event is submitted under the directory's lock, so the log orders an identity's
        // online and offline events as the directory saw them.
        let online = {
            let mut directory = self.directory_mut();
            let identities = directory.entry(claims.sub.clone()).or_default();
            let current: Vec<Arc<Endpoint>> = identities
                .get(identity.as_str())
                .map(|endpoints| endpoints.to_vec())
                .unwrap_or_default();
            if current.len() >= self.0.settings.max_endpoints_per_identity {
                return Err(ApiError::new(
                    Code::TooManyEndpoints,
                    format!(
                        "Identity {identity:?} already has {} endpoints connected, the most allowed",
                        current.len()
                    ),
                ));
            }
            let first = current.is_empty();
            let mut endpoints = current;
            endpoints.push(endpoint.clone());
            identities.insert(Arc::from(identity.as_str()), endpoints.into());
            first.then(|| {
                let event = self.event(&endpoint, "presence.online", None);
                let committed = self.0.writer.submit(vec![event]);
                self.follow(&endpoint.account_sid, &identity, true);
                committed
            })
        };
        metrics::gauge!("switchboard_presence_endpoints").increment(1.0);
        if let Some(committed) = online
            && let Err(error) = committed.wait().await
        {
            self.unregister(&endpoint, Departure::Closed).await;
            return Err(ApiError::new(Code::Unavailable, error.to_string()));
        }
        // A key deleted since the token was checked revoked endpoints before this one was in the
        // directory: look again now that it is.
        match keys::signing_key(&self.0.db, &claims.iss).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                self.unregister(&endpoint, Departure::Revoked).await;
                return Err(ApiError::new(
                    Code::AccessTokenRevoked,
                    format!("Key {} was deleted: its tokens are revoked", claims.iss),
                ));
            }
            Err(error) => {
                self.unregister(&endpoint, Departure::Closed).await;
                return Err(error.into());
            }
        }
        Ok((endpoint, inbox))
    }

    /// Takes the endpoint out of the directory and out of the calls it rings or is on (the actions
    /// those calls need are returned). When it was the identity's last endpoint, the identity's
    /// `presence.offline` event and the workers' move are submitted, under the lock (see
    /// [`Presence::register`]), and the event's commit returned.
    ///
    /// Locks are taken in one order everywhere: the directory, then the ties. So a call cannot
    /// tie itself to an endpoint that has already left.
    fn remove(
        &self,
        endpoint: &Endpoint,
        departure: Departure,
    ) -> (
        Option<crate::store::batch::Committed>,
        Vec<(String, String, Action)>,
    ) {
        let mut directory = self.directory_mut();
        let actions = self.untie(endpoint);
        let Some(identities) = directory.get_mut(&endpoint.account_sid) else {
            return (None, actions);
        };
        let Some(current) = identities.get(endpoint.identity.as_str()) else {
            return (None, actions);
        };
        if !current.iter().any(|e| e.id == endpoint.id) {
            return (None, actions);
        }
        let remaining: Vec<Arc<Endpoint>> = current
            .iter()
            .filter(|e| e.id != endpoint.id)
            .cloned()
            .collect();
        metrics::gauge!("switchboard_presence_endpoints").decrement(1.0);
        if !remaining.is_empty() {
            identities.insert(Arc::from(endpoint.identity.as_str()), remaining.into());
            return (None, actions);
        }
        identities.remove(endpoint.identity.as_str());
        if identities.is_empty() {
            directory.remove(&endpoint.account_sid);
        }
        let event = self.event(endpoint, "presence.offline", Some(departure));
        let committed = self.0.writer.submit(vec![event]);
        self.follow(&endpoint.account_sid, &endpoint.identity, false);
        (Some(committed), actions)
    }

    /// Takes the endpoint out of the calls tied to it: a call it was on ends, a call that rang only
    /// endpoints that have all declined or left is declined. Called under the directory lock.
    fn untie(&self, endpoint: &Endpoint) -> Vec<(String, String, Action)> {
        let mut actions = Vec::new();
        {
            let mut ties = self.ties();
            for (call_sid, tie) in ties.iter_mut() {
                if !tie.endpoints.iter().any(|e| e.id == endpoint.id) {
                    continue;
                }
                if tie
                    .answered_by
                    .as_ref()
                    .is_some_and(|e| e.id == endpoint.id)
                {
                    let party = if tie.placed {
                        crate::telephony::calls::Party::Caller
                    } else {
                        crate::telephony::calls::Party::Callee
                    };
                    actions.push((
                        tie.account_sid.clone(),
                        call_sid.clone(),
                        Action::Hangup(party),
                    ));
                } else if tie.answered_by.is_none() {
                    tie.declined.insert(endpoint.id.clone());
                    if tie.declined.len() == tie.endpoints.len() {
                        actions.push((tie.account_sid.clone(), call_sid.clone(), Action::Reject));
                    }
                }
            }
        }
        actions
    }

    /// The endpoint is gone: calls ringing only it stop ringing, a call it was on ends, and when
    /// it was the identity's last endpoint the identity goes offline.
    pub async fn unregister(&self, endpoint: &Arc<Endpoint>, departure: Departure) {
        let (offline, actions) = self.remove(endpoint, departure);
        for (account_sid, call_sid, action) in actions {
            self.command(&account_sid, &call_sid, action).await;
        }
        if let Some(committed) = offline
            && let Err(error) = committed.wait().await
        {
            tracing::warn!(%error, identity = %endpoint.identity, "a presence.offline event could not be stored");
        }
    }

    /// Lets workers whose contact_uri is the client follow its presence.
    fn follow(&self, account_sid: &str, identity: &str, online: bool) {
        let _ = self.0.follows.send((
            account_sid.to_string(),
            format!("client:{identity}"),
            online,
        ));
    }

    fn event(
        &self,
        endpoint: &Endpoint,
        event_type: &str,
        departure: Option<Departure>,
    ) -> crate::store::batch::Statement {
        let source = format!("/v1/Presence/Clients/{}", endpoint.identity);
        NewEvent {
            account_sid: &endpoint.account_sid,
            event_type,
            source,
            subject: Some(&endpoint.identity),
            time_ms: self.0.clock.now_ms(),
            data: serde_json::json!({
                "identity": endpoint.identity,
                "endpoint_id": endpoint.id,
                "connected_at": crate::store::rfc3339(endpoint.connected_at),
                "reason": departure.map(Departure::as_str),
            }),
        }
        .statement()
    }

    /// Rings every endpoint of the identity with the call; `None` when it has none (offline).
    pub fn ring(
        &self,
        account_sid: &str,
        identity: &str,
        call: IncomingCall,
    ) -> Option<CallAttachment> {
        let directory = self.directory();
        let endpoints: Endpoints = directory
            .get(account_sid)
            .and_then(|identities| identities.get(identity))
            .filter(|endpoints| !endpoints.is_empty())?
            .clone();
        for endpoint in endpoints.iter() {
            endpoint.send(ServerMessage::Incoming {
                call_sid: call.call_sid.clone(),
                from: call.from.clone(),
                to: call.to.clone(),
            });
        }
        self.ties().insert(
            call.call_sid.clone(),
            Tie {
                account_sid: account_sid.to_string(),
                endpoints,
                declined: HashSet::new(),
                answered_by: None,
                placed: false,
            },
        );
        drop(directory);
        Some(CallAttachment {
            presence: Arc::downgrade(&self.0),
            call_sid: call.call_sid,
        })
    }

    /// Ties a call a client placed to its endpoint, so the client can hang it up and hears when it
    /// ends.
    pub fn attach_caller(
        &self,
        account_sid: &str,
        identity: &str,
        endpoint_id: &str,
        call_sid: &str,
    ) -> Option<CallAttachment> {
        let directory = self.directory();
        let endpoint = directory
            .get(account_sid)
            .and_then(|identities| identities.get(identity))
            .and_then(|endpoints| endpoints.iter().find(|e| e.id == endpoint_id).cloned())?;
        self.ties().insert(
            call_sid.to_string(),
            Tie {
                account_sid: account_sid.to_string(),
                endpoints: Arc::from(vec![endpoint.clone()]),
                declined: HashSet::new(),
                answered_by: Some(endpoint),
                placed: true,
            },
        );
        drop(directory);
        Some(CallAttachment {
            presence: Arc::downgrade(&self.0),
            call_sid: call_sid.to_string(),
        })
    }

    /// The call is over for its endpoints.
    fn detach(&self, call_sid: &str) {
        let Some(tie) = self.ties().remove(call_sid) else {
            return;
        };
        match &tie.answered_by {
            Some(endpoint) => endpoint.send(ServerMessage::Hangup {
                call_sid: call_sid.to_string(),
            }),
            None => {
                for endpoint in tie
                    .endpoints
                    .iter()
                    .filter(|e| !tie.declined.contains(&e.id))
                {
                    endpoint.send(ServerMessage::Canceled {
                        call_sid: call_sid.to_string(),
                    });
                }
            }
        }
    }

    async fn command(&self, account_sid: &str, call_sid: &str, action: Action) -> Option<ApiError> {
        let Some(telephony) = self.0.telephony.get().and_then(TelephonyHandle::upgrade) else {
            return Some(ApiError::new(Code::Unavailable, "The host is stopping"));
        };
        telephony.command(account_sid, call_sid, action).await.err()
    }

    /// The endpoint accepts a call ringing it: the others are told it was answered elsewhere.
    pub async fn accept(&self, endpoint: &Arc<Endpoint>, call_sid: &str) -> Result<(), ApiError> {
        let (account_sid, others) = {
            let mut ties = self.ties();
            let tie = ties
                .get_mut(call_sid)
                .filter(|tie| !tie.placed && tie.endpoints.iter().any(|e| e.id == endpoint.id))
                .ok_or_else(|| not_ringing(call_sid))?;
            if let Some(answered) = &tie.answered_by {
                return Err(ApiError::new(
                    Code::CallNotLive,
                    if answered.id == endpoint.id {
                        format!("Call {call_sid} is already answered on this endpoint")
                    } else {
                        format!("Call {call_sid} was answered on another endpoint")
                    },
                ));
            }
            if tie.declined.contains(&endpoint.id) {
                return Err(not_ringing(call_sid));
            }
            tie.answered_by = Some(endpoint.clone());
            let others: Vec<Arc<Endpoint>> = tie
                .endpoints
                .iter()
                .filter(|e| e.id != endpoint.id && !tie.declined.contains(&e.id))
                .cloned()
                .collect();
            (tie.account_sid.clone(), others)
        };
        for other in others {
            other.send(ServerMessage::AnsweredElsewhere {
                call_sid: call_sid.to_string(),
            });
        }
        match self.command(&account_sid, call_sid, Action::Answer).await {
            Some(error) => {
                if let Some(tie) = self.ties().get_mut(call_sid)
                    && tie
                        .answered_by
                        .as_ref()
                        .is_some_and(|e| e.id == endpoint.id)
                {
                    tie.answered_by = None;
                }
                Err(error)
            }
            None => Ok(()),
        }
    }

    /// The endpoint declines a call ringing it; once every endpoint has, the call is busy.
    pub async fn reject(&self, endpoint: &Arc<Endpoint>, call_sid: &str) -> Result<(), ApiError> {
        let (account_sid, all_declined) = {
            let mut ties = self.ties();
            let tie = ties
                .get_mut(call_sid)
                .filter(|tie| {
                    tie.answered_by.is_none() && tie.endpoints.iter().any(|e| e.id == endpoint.id)
                })
                .ok_or_else(|| not_ringing(call_sid))?;
            tie.declined.insert(endpoint.id.clone());
            (
                tie.account_sid.clone(),
                tie.declined.len() == tie.endpoints.len(),
            )
        };
        if all_declined
            && let Some(error) = self.command(&account_sid, call_sid, Action::Busy).await
        {
            return Err(error);
        }
        Ok(())
    }

    /// The endpoint hangs up a call it answered or placed (or declines one still ringing it).
    pub async fn hang_up(&self, endpoint: &Arc<Endpoint>, call_sid: &str) -> Result<(), ApiError> {
        let connected = {
            let ties = self.ties();
            let tie = ties
                .get(call_sid)
                .filter(|tie| tie.endpoints.iter().any(|e| e.id == endpoint.id))
                .ok_or_else(|| {
                    ApiError::new(
                        Code::CallNotLive,
                        format!("Call {call_sid} is not a call of this endpoint"),
                    )
                })?;
            match &tie.answered_by {
                Some(answered) if answered.id == endpoint.id => Some((
                    tie.account_sid.clone(),
                    if tie.placed {
                        crate::telephony::calls::Party::Caller
                    } else {
                        crate::telephony::calls::Party::Callee
                    },
                )),
                Some(_) => {
                    return Err(ApiError::new(
                        Code::CallNotLive,
                        format!("Call {call_sid} was answered on another endpoint"),
                    ));
                }
                None => None,
            }
        };
        match connected {
            Some((account_sid, party)) => {
                match self
                    .command(&account_sid, call_sid, Action::Hangup(party))
                    .await
                {
                    Some(error) => Err(error),
                    None => Ok(()),
                }
            }
            None => self.reject(endpoint, call_sid).await,
        }
    }

    /// Places a call for the endpoint through the application its token's outgoing grant names.
    pub async fn place(
        &self,
        endpoint: &Arc<Endpoint>,
        to: &str,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, ApiError> {
        let authority = endpoint.authority();
        let grant = authority.outgoing.ok_or_else(|| {
            ApiError::new(
                Code::GrantMissing,
                "The token has no outgoing voice grant (grants.voice.outgoing.application_sid); this client cannot place calls",
            )
        })?;
        let to = to.trim();
        if to.is_empty() || to.chars().count() > 256 {
            return Err(ApiError::new(
                Code::ClientMessageInvalid,
                "call: `to` must be 1 to 256 characters (a number, client:NAME or anything the application understands)",
            ));
        }
        let mut parameters: Vec<(String, String)> = Vec::new();
        for (name, value) in grant.params.iter().chain(params.iter()) {
            let value = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            parameters.push((name.clone(), value));
        }
        let telephony = self
            .0
            .telephony
            .get()
            .and_then(TelephonyHandle::upgrade)
            .ok_or_else(|| ApiError::new(Code::Unavailable, "The host is stopping"))?;
        let call = ClientCall {
            identity: endpoint.identity.clone(),
            endpoint_id: endpoint.id.clone(),
            application_sid: grant.application_sid,
            to: to.to_string(),
            parameters,
        };
        telephony.client_call(&endpoint.account_sid, call).await
    }

    /// Replaces what the endpoint may do with a fresh token of the same identity and account.
    pub async fn renew(&self, endpoint: &Arc<Endpoint>, token: &str) -> Result<(), ApiError> {
        let claims = self.authorize(token).await?;
        if claims.sub != endpoint.account_sid || claims.identity() != Some(&endpoint.identity) {
            return Err(ApiError::new(
                Code::InvalidAccessToken,
                "The new token is for another account or identity; a token can only be renewed with one for the same identity",
            ));
        }
        if !claims.allows_incoming() {
            return Err(ApiError::new(
                Code::GrantMissing,
                "The new token has no incoming voice grant; the endpoint keeps its current token",
            ));
        }
        *endpoint
            .authority
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Authority {
            key_sid: claims.iss.clone(),
            expires_at_s: claims.exp,
            outgoing: claims.outgoing().cloned(),
        };
        Ok(())
    }

    /// Closes the endpoints registered with tokens of a deleted key.
    pub fn revoke_key(&self, account_sid: &str, key_sid: &str) {
        self.revoke(
            account_sid,
            |endpoint| endpoint.authority().key_sid == key_sid,
            "the API key that signed this token was deleted",
        );
    }

    /// Closes the endpoints of a suspended account.
    pub fn revoke_account(&self, account_sid: &str) {
        self.revoke(account_sid, |_| true, "the account is suspended");
    }

    /// Closes the account's endpoints that `revoked` picks, telling them why.
    fn revoke(&self, account_sid: &str, revoked: impl Fn(&Endpoint) -> bool, reason: &str) {
        let directory = self.directory();
        let Some(identities) = directory.get(account_sid) else {
            return;
        };
        for endpoint in identities.values().flat_map(|endpoints| endpoints.iter()) {
            if revoked(endpoint) {
                let _ = endpoint.outbox.send(Outgoing::Close {
                    code: socket::close_code(Code::AccessTokenRevoked),
                    reason: reason.into(),
                });
            }
        }
    }

    /// Closes every socket (the host is stopping) and waits, up to `patience`, until their
    /// endpoints are gone.
    pub async fn stop(&self, patience: std::time::Duration) {
        self.0.stopping.send_replace(true);
        let deadline = std::time::Instant::now() + patience;
        while self.endpoint_count() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    fn stopping(&self) -> watch::Receiver<bool> {
        self.0.stopping.subscribe()
    }

    /// Records a heartbeat; returns when the lease now runs out (Unix ms).
    fn heartbeat(&self, endpoint: &Endpoint) -> i64 {
        let now = self.0.clock.now_ms();
        endpoint.last_heartbeat.store(now, Ordering::Relaxed);
        now.saturating_add(self.lease_ms())
    }

    /// When the endpoint's token stops being accepted (Unix ms): its `exp` plus the leeway that
    /// admitted it.
    fn token_ends_ms(&self, endpoint: &Endpoint) -> i64 {
        let leeway = i64::try_from(self.0.settings.token_leeway_seconds).unwrap_or(i64::MAX);
        endpoint
            .authority()
            .expires_at_s
            .saturating_add(leeway)
            .saturating_mul(1000)
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.0.settings.lease_seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

fn not_ringing(call_sid: &str) -> ApiError {
    ApiError::new(
        Code::CallNotLive,
        format!(
            "Call {call_sid} is not ringing this endpoint (it was answered, canceled or never rang here)"
        ),
    )
}
