//! Work distribution, compatible with the reference's TaskRouter: workspaces of workers, task
//! queues and workflows, tasks routed to workers through reservations, and workflow-rule modules
//! that choose targets and score workers.
//!
//! Each workspace's live state is a [`Space`] behind its own lock; a change runs as a synchronous
//! transition on it (see [`space`]), is committed through the group-commit writer, and only then is
//! answered, announced (event callback, assignment callback) and timed (deadlines armed). The
//! facade here owns the parts that wait: committing, module invocations, HTTP callbacks and timers.

pub mod api;
pub mod callbacks;
pub mod event_data;
pub mod expression;
pub mod guests;
pub mod model;
pub mod space;
pub mod statistics;
pub mod store;
pub mod timers;
pub mod views;
pub mod workflow;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde_json::Value;

use crate::accounts::Accounts;
use crate::api::error::{ApiError, ApiResult, Code};
use crate::clock::Clock;
use crate::modules::{ModuleUri, Registry};
use crate::queues::{Queues, Ring};
use crate::runtime::bindings::types;
use crate::runtime::{Failure, Runtime};
use crate::store::Db;
use crate::store::batch::Writer;
use model::{Route, Task, TaskQueue, TaskStatus, Workflow};
use space::{Effects, Space};
use timers::Timers;
use workflow::Target;

/// Workers a workflow-rules module scores for one task at most (the longest idle eligible ones):
/// each score is an invocation, and a queue may hold thousands of workers.
pub const SCORED_WORKERS: usize = 25;

/// The work-distribution facade. Cheap to clone.
#[derive(Clone)]
pub struct Routing {
    inner: Arc<Inner>,
}

/// A workspace in memory, beside the account that owns it. The owner never changes, so checking
/// it (every request does) takes no turn on the workspace's lock.
struct Held {
    account_sid: String,
    space: Arc<Mutex<Space>>,
}

impl Held {
    fn new(space: Space) -> Held {
        Held {
            account_sid: space.workspace.account_sid.clone(),
            space: Arc::new(Mutex::new(space)),
        }
    }
}

struct Inner {
    db: Db,
    writer: Writer,
    clock: Clock,
    spaces: RwLock<HashMap<String, Held>>,
    timers: Timers,
    modules: OnceLock<Modules>,
    callbacks: callbacks::Callbacks,
    queues: Queues,
    /// Places and redirects calls for reservation instructions.
    telephony: OnceLock<crate::telephony::TelephonyHandle>,
    /// Calls connected to a worker by a dequeue instruction: the task and the activity the worker
    /// takes when the call ends.
    dequeued: Mutex<HashMap<String, Dequeued>>,
}

/// A caller handed to a worker by a dequeue instruction.
#[derive(Debug, Clone)]
struct Dequeued {
    workspace_sid: String,
    task_sid: String,
    worker_sid: String,
    post_work_activity_sid: Option<String>,
}

/// What the routing needs to run workflow-rule modules; attached once the runtime exists (the
/// runtime's host services need the routing first).
struct Modules {
    registry: Registry,
    accounts: Accounts,
    runtime: Arc<Runtime>,
}

impl Routing {
    pub fn new(
        db: Db,
        writer: Writer,
        clock: Clock,
        http: reqwest::Client,
        queues: Queues,
    ) -> Routing {
        Routing {
            inner: Arc::new(Inner {
                db,
                writer,
                clock,
                spaces: RwLock::default(),
                timers: Timers::default(),
                modules: OnceLock::new(),
                callbacks: callbacks::Callbacks::new(http),
                queues,
                telephony: OnceLock::new(),
                dequeued: Mutex::default(),
            }),
        }
    }

    /// Gives the routing what it needs to run workflow-rule modules.
    pub fn attach(&self, registry: Registry, accounts: Accounts, runtime: Arc<Runtime>) {
        let _ = self.inner.modules.set(Modules {
            registry,
            accounts,
            runtime,
        });
    }

    /// Gives the routing the telephony it places and redirects calls through.
    pub fn attach_telephony(&self, telephony: crate::telephony::TelephonyHandle) {
        let _ = self.inner.telephony.set(telephony);
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Loads every workspace, re-arms its deadlines and starts the timer loop.
    pub async fn recover(&self) -> anyhow::Result<()> {
        for sid in store::workspace_sids(&self.inner.db).await? {
            let Some(stored) = store::load(&self.inner.db, &sid).await? else {
                continue;
            };
            let space = views::rebuild(stored);
            let deadlines = space.deadlines();
            self.inner.timers.arm(&sid, deadlines);
            self.inner
                .spaces
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(sid, Held::new(space));
        }
        let routing = self.clone();
        tokio::spawn(async move { routing.run_timers().await });
        Ok(())
    }

    /// Fires deadlines as they come, on the host's clock.
    async fn run_timers(self) {
        let weak = Arc::downgrade(&self.inner);
        drop(self);
        loop {
            let Some(inner) = weak.upgrade() else { return };
            let routing = Routing { inner };
            let now = routing.now();
            match routing.inner.timers.next() {
                Some(at) if at <= now => {
                    for (at, workspace_sid, timer) in routing.inner.timers.due(now) {
                        let result = routing
                            .transition_by_sid(&workspace_sid, |space, fx| {
                                space.fire(fx, &timer, at);
                                Ok(())
                            })
                            .await;
                        if let Err(error) = result {
                            tracing::debug!(%error, workspace = %workspace_sid, "timer for a removed workspace");
                        }
                    }
                }
                Some(at) => {
                    let clock = routing.inner.clock.clone();
                    let inner = routing.inner.clone();
                    drop(routing);
                    tokio::select! {
                        () = clock.sleep_ms(at - now) => {}
                        () = inner.timers.changed() => {}
                    }
                }
                None => {
                    let inner = routing.inner.clone();
                    drop(routing);
                    inner.timers.changed().await;
                }
            }
        }
    }

    fn space_by_sid(&self, workspace_sid: &str) -> Option<Arc<Mutex<Space>>> {
        self.inner
            .spaces
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(workspace_sid)
            .map(|held| held.space.clone())
    }

    /// The workspace, when it belongs to the account (another account's is a 404, never a 403).
    pub fn space(&self, account_sid: &str, workspace_sid: &str) -> ApiResult<Arc<Mutex<Space>>> {
        self.inner
            .spaces
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(workspace_sid)
            .filter(|held| held.account_sid == account_sid)
            .map(|held| held.space.clone())
            .ok_or_else(|| ApiError::not_found(workspace_sid))
    }

    /// Reads a workspace under its lock.
    pub fn read<R>(
        &self,
        account_sid: &str,
        workspace_sid: &str,
        f: impl FnOnce(&Space) -> ApiResult<R>,
    ) -> ApiResult<R> {
        let space = self.space(account_sid, workspace_sid)?;
        let mut guard = lock(&space);
        let now = self.now();
        guard.at(now);
        f(&guard)
    }

    /// Runs a change on a workspace, commits it, then carries out what it left to do. The answer
    /// is returned only once the change is durable.
    pub async fn transition<R>(
        &self,
        account_sid: &str,
        workspace_sid: &str,
        f: impl FnOnce(&mut Space, &mut Effects) -> ApiResult<R>,
    ) -> ApiResult<R> {
        let space = self.space(account_sid, workspace_sid)?;
        self.run(workspace_sid, &space, f).await
    }

    async fn transition_by_sid<R>(
        &self,
        workspace_sid: &str,
        f: impl FnOnce(&mut Space, &mut Effects) -> ApiResult<R>,
    ) -> ApiResult<R> {
        let space = self
            .space_by_sid(workspace_sid)
            .ok_or_else(|| ApiError::not_found(workspace_sid))?;
        self.run(workspace_sid, &space, f).await
    }

    async fn run<R>(
        &self,
        workspace_sid: &str,
        space: &Arc<Mutex<Space>>,
        f: impl FnOnce(&mut Space, &mut Effects) -> ApiResult<R>,
    ) -> ApiResult<R> {
        let mut fx = Effects::default();
        let (result, committed, callback) = {
            let mut guard = lock(space);
            let now = self.now();
            guard.at(now);
            let result = f(&mut guard, &mut fx);
            guard.finish(&mut fx);
            let change = std::mem::take(&mut fx.change);
            // Submitted under the lock, so changes to one workspace commit in the order made.
            let committed = (!change.is_empty()).then(|| self.inner.writer.submit(change));
            let callback = callbacks::EventTarget::of(&guard.workspace);
            (result, committed, callback)
        };
        if let Some(committed) = committed {
            committed.wait().await.map_err(|error| {
                tracing::error!(%error, workspace = %workspace_sid, "routing change not committed");
                ApiError::new(Code::Unavailable, "The change could not be stored; retry")
            })?;
        }
        let result = result?;
        self.after_commit(workspace_sid, fx, callback);
        Ok(result)
    }

    /// What a committed transition left to do: arm deadlines, send the event and assignment
    /// callbacks, let modules score.
    fn after_commit(
        &self,
        workspace_sid: &str,
        fx: Effects,
        callback: Option<callbacks::EventTarget>,
    ) {
        self.inner.timers.arm(workspace_sid, fx.timers);
        self.inner.timers.disarm(workspace_sid, fx.disarmed);
        if let Some(target) = callback {
            self.inner.callbacks.events(&target, fx.events);
        }
        for reservation_sid in fx.offers {
            let routing = self.clone();
            let workspace_sid = workspace_sid.to_string();
            tokio::spawn(async move {
                routing.offer(&workspace_sid, &reservation_sid).await;
            });
        }
        for dequeue in fx.dequeues {
            self.ring_worker(workspace_sid, dequeue);
        }
        if !fx.calls.is_empty() {
            let routing = self.clone();
            let workspace_sid = workspace_sid.to_string();
            tokio::spawn(async move {
                for order in fx.calls {
                    routing.carry_out(&workspace_sid, order).await;
                }
            });
        }
        if !fx.to_score.is_empty() {
            let routing = self.clone();
            let workspace_sid = workspace_sid.to_string();
            tokio::spawn(async move {
                for task_sid in fx.to_score {
                    routing.score_and_route(&workspace_sid, &task_sid).await;
                }
            });
        }
    }

    /// Carries out a committed dequeue instruction: the queued caller's session rings the worker.
    fn ring_worker(&self, workspace_sid: &str, dequeue: space::Dequeue) {
        let task_sid = self.space_by_sid(workspace_sid).and_then(|space| {
            lock(&space)
                .tasks
                .values()
                .find(|t| t.call_sid.as_deref() == Some(dequeue.call_sid.as_str()))
                .map(|t| (t.sid.clone(), dequeue.worker_sid.clone()))
        });
        let Some((task_sid, worker_sid)) = task_sid else {
            return;
        };
        lock_map(&self.inner.dequeued).insert(
            dequeue.call_sid.clone(),
            Dequeued {
                workspace_sid: workspace_sid.to_string(),
                task_sid,
                worker_sid,
                post_work_activity_sid: dequeue.post_work_activity_sid.clone(),
            },
        );
        let ring = Ring {
            to: dequeue.to.clone(),
            from: dequeue.from.clone(),
            timeout_seconds: u32::try_from(dequeue.timeout_seconds).unwrap_or(60),
            status_callback: dequeue.status_callback.clone(),
            status_callback_events: dequeue.status_callback_events.clone(),
        };
        if !self.inner.queues.ring(&dequeue.call_sid, ring) {
            tracing::info!(call = %dequeue.call_sid, reservation = %dequeue.reservation_sid, "dequeue: the caller is no longer waiting");
            lock_map(&self.inner.dequeued).remove(&dequeue.call_sid);
        }
    }

    /// Places or redirects a call for a committed `call` or `redirect` instruction.
    async fn carry_out(&self, workspace_sid: &str, order: space::CallOrder) {
        let Some(telephony) = self.inner.telephony.get().and_then(|t| t.upgrade()) else {
            return;
        };
        let Some(account_sid) = self
            .space_by_sid(workspace_sid)
            .map(|space| lock(&space).workspace.account_sid.clone())
        else {
            return;
        };
        let result = match order {
            space::CallOrder::Redirect { call_sid, url } => {
                telephony
                    .command(
                        &account_sid,
                        &call_sid,
                        crate::telephony::session::Action::Redirect {
                            uri: url,
                            method: "POST".into(),
                        },
                    )
                    .await
            }
            space::CallOrder::Place {
                to,
                from,
                url,
                timeout_seconds,
                status_callback,
            } => match telephony.accounts().get(&account_sid).await {
                Ok(Some(account)) => telephony
                    .outbound(
                        &account,
                        crate::telephony::OutboundCall {
                            to,
                            from,
                            handlers: crate::telephony::session::Handlers {
                                url,
                                method: "POST".into(),
                                fallback_url: None,
                                fallback_method: "POST".into(),
                            },
                            application_sid: None,
                            status_callback,
                            status_callback_method: "POST".into(),
                            status_callback_events: Vec::new(),
                            timeout_seconds,
                        },
                    )
                    .await
                    .map(|_| ()),
                Ok(None) => return,
                Err(error) => Err(error.into()),
            },
        };
        if let Err(error) = result {
            tracing::info!(%error, "a reservation's call instruction was not carried out");
        }
    }

    /// A queued caller with a task created an `<Enqueue workflowSid>`: the task for it, with the
    /// call's parameters (and the enqueue's task attributes) as its attributes.
    pub async fn create_call_task(
        &self,
        account_sid: &str,
        workflow_sid: &str,
        attributes: serde_json::Map<String, Value>,
        call_sid: &str,
    ) -> Result<String, String> {
        let workspace_sid = self
            .workflow_workspace(account_sid, workflow_sid)
            .ok_or_else(|| {
                format!("workflowSid {workflow_sid} is not a workflow of this account")
            })?;
        let form = crate::api::FormPairs(vec![
            ("WorkflowSid".into(), workflow_sid.to_string()),
            ("Attributes".into(), Value::Object(attributes).to_string()),
            ("TaskChannel".into(), "voice".into()),
        ]);
        let task = self
            .read(account_sid, &workspace_sid, |space| {
                api::new_task(space, &form, Some(call_sid.to_string()))
            })
            .map_err(|e| e.message)?;
        let task = self
            .create_task(account_sid, &workspace_sid, task)
            .await
            .map_err(|e| e.message)?;
        Ok(task.sid)
    }

    /// The account's workspace that holds `workflow_sid`.
    fn workflow_workspace(&self, account_sid: &str, workflow_sid: &str) -> Option<String> {
        self.workspaces(account_sid).iter().find_map(|space| {
            let guard = lock(space);
            guard
                .workflows
                .contains_key(workflow_sid)
                .then(|| guard.workspace.sid.clone())
        })
    }

    /// The queued caller behind a task of `workflow_sid` left its queue without being connected
    /// to a worker (it hung up, left or was redirected): a task still waiting is canceled.
    pub async fn call_left(
        &self,
        account_sid: &str,
        call_sid: &str,
        workflow_sid: &str,
        reason: &str,
    ) {
        lock_map(&self.inner.dequeued).remove(call_sid);
        self.cancel_call_task(account_sid, call_sid, workflow_sid, reason)
            .await;
    }

    /// The worker a dequeue rang did not answer: that task ends, the worker goes to the timeout
    /// activity, and a new task routes the still-waiting caller again.
    pub async fn dequeue_unanswered(&self, call_sid: &str, account_sid: &str) {
        let Some(dequeued) = lock_map(&self.inner.dequeued).remove(call_sid) else {
            return;
        };
        let again = self
            .transition_by_sid(&dequeued.workspace_sid, |space, fx| {
                let task = space.tasks.get(&dequeued.task_sid).cloned();
                space.complete_task(fx, &dequeued.task_sid, "Worker did not answer the dequeue");
                if let Some(activity) = space.workspace.timeout_activity_sid.clone() {
                    space.set_activity(fx, &dequeued.worker_sid, &activity);
                }
                Ok(task)
            })
            .await;
        let Ok(Some(task)) = again else { return };
        let Some(workflow_sid) = task.workflow_sid.clone() else {
            return;
        };
        let attributes = match task.attributes {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        if let Err(error) = self
            .create_call_task(account_sid, &workflow_sid, attributes, call_sid)
            .await
        {
            tracing::warn!(call = %call_sid, %error, "could not route the caller again");
        }
    }

    /// The connection a dequeue made has ended: the task wraps up and the worker moves to the
    /// instruction's post-work activity.
    pub async fn dequeue_ended(&self, call_sid: &str) {
        let Some(dequeued) = lock_map(&self.inner.dequeued).remove(call_sid) else {
            return;
        };
        let result = self
            .transition_by_sid(&dequeued.workspace_sid, |space, fx| {
                if space
                    .tasks
                    .get(&dequeued.task_sid)
                    .is_some_and(|t| t.status == TaskStatus::Assigned)
                {
                    space.wrap_task(fx, &dequeued.task_sid);
                }
                if let Some(activity) = &dequeued.post_work_activity_sid {
                    space.set_activity(fx, &dequeued.worker_sid, activity);
                }
                Ok(())
            })
            .await;
        if let Err(error) = result {
            tracing::debug!(%error, "dequeue end not recorded");
        }
    }

    /// Sends a new reservation to its workflow's assignment callback (an http URL, or a
    /// `module:` URI naming an event-subscriber module that answers through the `distribution`
    /// interface), then its fallback if that fails, and carries out an instruction answered.
    async fn offer(&self, workspace_sid: &str, reservation_sid: &str) {
        let Some(space) = self.space_by_sid(workspace_sid) else {
            return;
        };
        let prepared = {
            let guard = lock(&space);
            // Most workflows have no assignment callback: nothing to build for them.
            let Some(request) =
                callbacks::AssignmentRequest::of(&guard, reservation_sid, self.now())
            else {
                return;
            };
            let event = guard
                .reservation_data(reservation_sid)
                .map(|(description, data)| types::Event {
                    id: reservation_sid.to_string(),
                    sequence: 0,
                    account_sid: guard.workspace.account_sid.clone(),
                    type_: "reservation.created".into(),
                    source: guard.source(),
                    time: crate::store::rfc3339(self.now()),
                    data: guard.event_data("reservation", reservation_sid, description, data),
                });
            event.map(|e| (request, e, guard.workspace.account_sid.clone()))
        };
        let Some((request, event, account_sid)) = prepared else {
            return;
        };
        for url in [&request.url, &request.fallback_url].into_iter().flatten() {
            if url.starts_with("module:") {
                match self.assign_by_module(&account_sid, url, &event).await {
                    Ok(()) => return,
                    Err(failure) => {
                        tracing::info!(reservation = %reservation_sid, module = %url, %failure, "assignment module failed");
                        continue;
                    }
                }
            }
            let Some(answer) = self.inner.callbacks.assign(url, &request.parameters).await else {
                continue;
            };
            let Some(instruction) = answer else { return };
            let result = self
                .transition_by_sid(workspace_sid, |space, fx| {
                    api::apply_instruction(space, fx, reservation_sid, &instruction)
                })
                .await;
            if let Err(error) = result {
                tracing::info!(%error, reservation = %reservation_sid, "assignment instruction not carried out");
            }
            return;
        }
    }

    /// Delivers a new reservation to an event-subscriber module acting as assignment callback.
    async fn assign_by_module(
        &self,
        account_sid: &str,
        uri: &str,
        event: &types::Event,
    ) -> Result<(), String> {
        let target = self.rule_module(account_sid, uri, "").await?;
        let runtime = self
            .runtime()
            .ok_or("modules are not available on this host")?;
        runtime
            .on_event(&target, event)
            .await
            .result
            .map_err(|failure| describe(&failure))
    }

    /// The workflow-rules module named by a workflow, ready to invoke.
    async fn rule_module(
        &self,
        account_sid: &str,
        uri: &str,
        task_sid: &str,
    ) -> Result<crate::runtime::Target, String> {
        let modules = self
            .inner
            .modules
            .get()
            .ok_or("workflow-rule modules are not available on this host")?;
        let parsed = match ModuleUri::parse(uri) {
            Some(Ok(parsed)) => parsed,
            _ => return Err(format!("{uri:?} is not a module URI")),
        };
        let account = modules
            .accounts
            .get(account_sid)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the account is gone")?;
        let module = modules
            .registry
            .resolve(account_sid, &parsed)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no module {uri} in this account"))?;
        let mut target = modules
            .registry
            .target(&account, &module)
            .await
            .map_err(|e| e.message)?;
        target.task_sid = (!task_sid.is_empty()).then(|| task_sid.to_string());
        Ok(target)
    }

    fn runtime(&self) -> Option<&Arc<Runtime>> {
        self.inner.modules.get().map(|m| &m.runtime)
    }

    /// Asks a workflow's module for a new task's targets. `None` = use the static configuration
    /// (the module said so, or failed; a failure is reported as a `workflow.rule-failed` event).
    pub async fn module_route(
        &self,
        account_sid: &str,
        workspace_sid: &str,
        module: &str,
        task: &types::Task,
    ) -> Result<Option<(Arc<[Target]>, String)>, String> {
        let failure = match self.rule_module(account_sid, module, &task.sid).await {
            Ok(target) => {
                let Some(runtime) = self.runtime() else {
                    return Ok(None);
                };
                let invoked = runtime.route(&target, task).await;
                match invoked.result {
                    Ok(types::RoutingDecision::UseConfiguration) => return Ok(None),
                    Ok(types::RoutingDecision::Cancel(reason)) => return Err(reason),
                    Ok(types::RoutingDecision::Targets(targets)) => {
                        match self.resolve_targets(account_sid, workspace_sid, &targets) {
                            Ok(resolved) => return Ok(Some(resolved)),
                            Err(message) => message,
                        }
                    }
                    Err(failure) => describe(&failure),
                }
            }
            Err(message) => message,
        };
        self.report_rule_failure(workspace_sid, &task.sid, module, "route", &failure)
            .await;
        Ok(None)
    }

    async fn report_rule_failure(
        &self,
        workspace_sid: &str,
        task_sid: &str,
        module: &str,
        function: &str,
        failure: &str,
    ) {
        tracing::info!(task = %task_sid, %module, %function, %failure, "workflow rule failed; using the static configuration");
        let result = self
            .transition_by_sid(workspace_sid, |space, fx| {
                let mut data = event_data::EventData::default();
                data.text("task_sid", task_sid)
                    .text("module", module)
                    .text("function", function)
                    .text("failure", failure);
                space.event(
                    fx,
                    "workflow.rule-failed",
                    "task",
                    task_sid,
                    format!("Workflow rule {module} failed in {function}: {failure}"),
                    data,
                );
                Ok(())
            })
            .await;
        if let Err(error) = result {
            tracing::debug!(%error, "could not report a rule failure");
        }
    }

    /// A module's targets, with queues named by sid or friendly name and expressions compiled.
    fn resolve_targets(
        &self,
        account_sid: &str,
        workspace_sid: &str,
        targets: &[types::RoutingTarget],
    ) -> Result<(Arc<[Target]>, String), String> {
        if targets.is_empty() {
            return Err("the module returned no targets".into());
        }
        let space = self
            .space(account_sid, workspace_sid)
            .map_err(|e| e.message)?;
        let guard = lock(&space);
        let mut resolved = Vec::with_capacity(targets.len());
        let mut stored = Vec::with_capacity(targets.len());
        for target in targets {
            let queue = guard
                .queues
                .values()
                .find(|q| q.sid == target.queue || q.friendly_name == target.queue)
                .ok_or_else(|| {
                    format!("the module named an unknown task queue {:?}", target.queue)
                })?;
            let expression = target
                .expression
                .as_deref()
                .map(expression::Expression::parse)
                .transpose()
                .map_err(|e| format!("the module's worker expression is invalid: {e}"))?;
            stored.push(serde_json::json!({
                "queue": queue.sid,
                "expression": target.expression,
                "priority": target.priority,
                "timeout": target.timeout_seconds,
            }));
            resolved.push(Target {
                queue: queue.sid.clone(),
                priority: target.priority.map(i64::from),
                timeout: target.timeout_seconds.map(i64::from).filter(|t| *t > 0),
                expression,
                order_by: None,
                skip_if: None,
                known_worker: None,
            });
        }
        Ok((Arc::from(resolved), Value::Array(stored).to_string()))
    }

    /// Lets the workflow's module score the task's eligible workers, then routes it.
    async fn score_and_route(&self, workspace_sid: &str, task_sid: &str) {
        let Some(space) = self.space_by_sid(workspace_sid) else {
            return;
        };
        let prepared = {
            let mut guard = lock(&space);
            let now = self.now();
            guard.at(now);
            let module = guard.scoring_module(task_sid);
            let candidates = guard.candidates(task_sid, None, SCORED_WORKERS);
            let task = guard
                .tasks
                .get(task_sid)
                .map(|t| views::wasm_task(&guard, t));
            let workers: Vec<types::Worker> = candidates
                .iter()
                .filter_map(|sid| guard.workers.get(sid))
                .map(|w| views::wasm_worker(&guard, w))
                .collect();
            let account = guard.workspace.account_sid.clone();
            module.zip(task).map(|(m, t)| (m, t, workers, account))
        };
        let Some((module, task, workers, account_sid)) = prepared else {
            return;
        };
        let mut scores = HashMap::new();
        let mut failure = None;
        match self.rule_module(&account_sid, &module, task_sid).await {
            Ok(target) => {
                if let Some(runtime) = self.runtime() {
                    for worker in &workers {
                        let invoked = runtime.score(&target, &task, worker).await;
                        match invoked.result {
                            Ok(Some(score)) if score.is_finite() => {
                                scores.insert(worker.sid.clone(), score);
                            }
                            Ok(_) => {}
                            Err(error) => {
                                failure = Some(describe(&error));
                                break;
                            }
                        }
                    }
                }
            }
            Err(message) => failure = Some(message),
        }
        if let Some(failure) = &failure {
            self.report_rule_failure(workspace_sid, task_sid, &module, "score", failure)
                .await;
        }
        let scores = failure.is_none().then_some(scores);
        let result = self
            .transition_by_sid(workspace_sid, |space, fx| {
                space.route_scored(fx, task_sid, scores);
                Ok(())
            })
            .await;
        if let Err(error) = result {
            tracing::debug!(%error, "scored routing not carried out");
        }
    }

    /// Adds a workspace to memory (it has just been created).
    pub fn insert_space(&self, space: Space) {
        let sid = space.workspace.sid.clone();
        self.inner
            .spaces
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sid, Held::new(space));
    }

    /// Drops a workspace from memory (it has just been deleted).
    pub fn remove_space(&self, workspace_sid: &str) {
        self.inner
            .spaces
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(workspace_sid);
        self.inner.timers.forget_workspace(workspace_sid);
    }

    /// Moves workers reached as `contact_uri` (a `client:NAME`) with their client's presence, in
    /// every workspace of the account that binds activities to presence: to its offline activity,
    /// rejecting their pending reservations, when the client's last endpoint goes; back to its
    /// online activity, if they are still in the offline one, when it returns.
    pub async fn follow_presence(&self, account_sid: &str, contact_uri: &str, online: bool) {
        for space in self.workspaces(account_sid) {
            let (workspace_sid, offline_activity, online_activity) = {
                let guard = lock(&space);
                let w = &guard.workspace;
                (
                    w.sid.clone(),
                    w.presence_offline_activity_sid.clone(),
                    w.presence_online_activity_sid.clone(),
                )
            };
            let Some(offline_activity) = offline_activity else {
                continue;
            };
            let target = if online {
                match online_activity {
                    Some(activity) => activity,
                    None => continue,
                }
            } else {
                offline_activity.clone()
            };
            let result = self
                .run(&workspace_sid, &space, |space, fx| {
                    let bound: Vec<String> = space
                        .workers
                        .values()
                        .filter(|w| {
                            w.attributes.get("contact_uri").and_then(|v| v.as_str())
                                == Some(contact_uri)
                        })
                        .filter(|w| !online || w.activity_sid == offline_activity)
                        .map(|w| w.sid.clone())
                        .collect();
                    for worker_sid in bound {
                        space.set_activity(fx, &worker_sid, &target);
                        if online {
                            space.offer_worker(fx, &worker_sid);
                        } else {
                            space.reject_pending_of(fx, &worker_sid);
                        }
                    }
                    Ok(())
                })
                .await;
            if let Err(error) = result {
                tracing::warn!(workspace = %workspace_sid, %contact_uri, %error, "workers could not follow their client's presence");
            }
        }
    }

    /// The account's workspaces.
    pub fn workspaces(&self, account_sid: &str) -> Vec<Arc<Mutex<Space>>> {
        let spaces = self.inner.spaces.read().unwrap_or_else(|p| p.into_inner());
        let mut owned: Vec<(i64, String, Arc<Mutex<Space>>)> = spaces
            .values()
            .filter(|held| held.account_sid == account_sid)
            .map(|held| {
                let guard = lock(&held.space);
                (
                    guard.workspace.date_created,
                    guard.workspace.sid.clone(),
                    held.space.clone(),
                )
            })
            .collect();
        owned.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        owned.into_iter().map(|(_, _, space)| space).collect()
    }

    /// Creates a task (the REST create, a module, or an enqueued call), asking the workflow's
    /// module for targets first when the workflow names one.
    pub async fn create_task(
        &self,
        account_sid: &str,
        workspace_sid: &str,
        task: Task,
    ) -> ApiResult<Task> {
        let module = self.read(account_sid, workspace_sid, |space| {
            Ok(task
                .workflow_sid
                .as_deref()
                .and_then(|w| space.workflows.get(w))
                .and_then(|w| w.configuration.module.clone())
                .map(|m| (m, views::wasm_task(space, &task))))
        })?;
        let mut module_targets = None;
        let mut cancel = None;
        if let Some((module, view)) = module {
            match self
                .module_route(account_sid, workspace_sid, &module, &view)
                .await
            {
                Ok(targets) => module_targets = targets,
                Err(reason) => cancel = Some(reason),
            }
        }
        let sid = task.sid.clone();
        self.transition(account_sid, workspace_sid, move |space, fx| {
            space.add_task(fx, task, module_targets);
            if let Some(reason) = cancel {
                space.cancel_task(fx, &sid, &reason);
            }
            let task = space.tasks.get(&sid).cloned();
            Ok(task)
        })
        .await?
        .map_or_else(
            || {
                Err(ApiError::new(
                    Code::Internal,
                    "the task ended as it was created",
                ))
            },
            Ok,
        )
    }

    /// Cancels the task behind a queued call (the caller hung up or left the queue). The task is
    /// looked for only in the workspace of the workflow that routes the call.
    async fn cancel_call_task(
        &self,
        account_sid: &str,
        call_sid: &str,
        workflow_sid: &str,
        reason: &str,
    ) {
        let Some(workspace_sid) = self.workflow_workspace(account_sid, workflow_sid) else {
            return;
        };
        let waiting = self.read(account_sid, &workspace_sid, |space| {
            Ok(space
                .tasks
                .values()
                .find(|t| {
                    t.call_sid.as_deref() == Some(call_sid)
                        && matches!(t.status, TaskStatus::Pending | TaskStatus::Reserved)
                })
                .map(|t| t.sid.clone()))
        });
        if let Ok(Some(task_sid)) = waiting {
            let _ = self
                .transition(account_sid, &workspace_sid, |space, fx| {
                    space.cancel_task(fx, &task_sid, reason);
                    Ok(())
                })
                .await;
        }
    }
}

fn lock_map<T>(map: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    map.lock().unwrap_or_else(|p| p.into_inner())
}

/// Locks a workspace; a poisoned lock (a panic mid-transition) still yields the state, which the
/// transition had not yet committed, so nothing half-done was acknowledged.
pub fn lock(space: &Mutex<Space>) -> std::sync::MutexGuard<'_, Space> {
    space.lock().unwrap_or_else(|p| p.into_inner())
}

fn describe(failure: &Failure) -> String {
    format!("{}: {}", failure.outcome.as_str(), failure.message)
}

/// The queue a task or module named, by sid or friendly name.
pub fn find_queue<'a>(space: &'a Space, text: &str) -> Option<&'a TaskQueue> {
    space
        .queues
        .get(text)
        .or_else(|| space.queues.values().find(|q| q.friendly_name == text))
}

/// The workflow a task names; a workspace with exactly one workflow lets tasks omit it.
pub fn find_workflow<'a>(space: &'a Space, sid: Option<&str>) -> ApiResult<&'a Workflow> {
    match sid {
        Some(sid) => space.workflows.get(sid).ok_or_else(|| {
            ApiError::invalid(format!(
                "WorkflowSid {sid} is not a workflow of this workspace"
            ))
        }),
        None if space.workflows.len() == 1 => space
            .workflows
            .values()
            .next()
            .ok_or_else(|| ApiError::invalid("WorkflowSid is required")),
        None => Err(ApiError::invalid(
            "WorkflowSid is required: this workspace has more than one workflow (or none)",
        )),
    }
}

/// A task's route rebuilt from what was stored.
pub fn stored_route(
    workflow: Option<&Workflow>,
    filter_index: Option<i64>,
    target_index: Option<i64>,
    routing_targets: Option<&str>,
    queue_exists: &dyn Fn(&str) -> bool,
) -> Option<Route> {
    let filter_index = filter_index?;
    let target_index = usize::try_from(target_index?).ok()?;
    let targets: Arc<[Target]> = match filter_index {
        model::ROUTING_TARGET => {
            let stored: Vec<Value> = serde_json::from_str(routing_targets?).ok()?;
            let item = stored.first()?;
            let queue = item.get("queue")?.as_str()?.to_string();
            if !queue_exists(&queue) {
                return None;
            }
            let worker = item.get("worker").and_then(Value::as_str).map(|sid| {
                let ignore = item.get("ignore_capacity").and_then(Value::as_bool);
                (sid.to_string(), ignore.unwrap_or(true))
            });
            let mut route = Route::given(queue, worker);
            route.target_index = target_index;
            return Some(route);
        }
        model::MODULE_ROUTE => {
            let stored: Vec<Value> = serde_json::from_str(routing_targets?).ok()?;
            let mut targets = Vec::new();
            for item in stored {
                let queue = item.get("queue")?.as_str()?.to_string();
                if !queue_exists(&queue) {
                    return None;
                }
                targets.push(Target {
                    queue,
                    priority: item.get("priority").and_then(Value::as_i64),
                    timeout: item.get("timeout").and_then(Value::as_i64),
                    expression: item
                        .get("expression")
                        .and_then(Value::as_str)
                        .and_then(|e| expression::Expression::parse(e).ok()),
                    order_by: None,
                    skip_if: None,
                    known_worker: None,
                });
            }
            Arc::from(targets)
        }
        model::DEFAULT_FILTER => workflow?.configuration.default_target.clone()?,
        index => workflow?
            .configuration
            .filters
            .get(usize::try_from(index).ok()?)?
            .targets
            .clone(),
    };
    Some(Route {
        filter_index,
        targets,
        target_index,
        skipped: false,
        module_targets: routing_targets.map(str::to_string),
    })
}
