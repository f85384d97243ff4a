//! The sandbox: a wasmtime engine configured for untrusted tenant code, the compiled-artifact cache,
//! and one entry point per world that runs a module once under limits and meters it.
//!
//! Every invocation gets a fresh `Store` and instance (from the pooling allocator when the machine
//! allows), so nothing leaks between calls or tenants. Limits per invocation: fuel (instructions),
//! an epoch deadline (wall clock, which also makes long guests yield the thread), a memory budget
//! over all memories and tables, and a host-call budget.

pub mod artifacts;
pub mod bindings;
pub mod host;
pub mod io;
pub mod limits;
pub mod outcome;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Semaphore, SemaphorePermit};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};

use crate::config::{Limits, RuntimeSettings};
use crate::metering::{Committed, Meter, UsageRecord};
use artifacts::ArtifactCache;
use bindings::{subscriber, telephony, types, wait_state, workflow};
pub use host::{HostServices, Invocation, Principal};
use limits::DeadlineExceeded;
pub use outcome::{Failure, Outcome};

/// The contract a module implements, chosen at upload as its `Kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    TelephonyHandler,
    WaitState,
    WorkflowRules,
    EventSubscriber,
}

impl World {
    pub const ALL: [World; 4] = [
        World::TelephonyHandler,
        World::WaitState,
        World::WorkflowRules,
        World::EventSubscriber,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            World::TelephonyHandler => "telephony-handler",
            World::WaitState => "wait-state",
            World::WorkflowRules => "workflow-rules",
            World::EventSubscriber => "event-subscriber",
        }
    }

    pub fn parse(text: &str) -> Option<World> {
        World::ALL.into_iter().find(|w| w.as_str() == text)
    }
}

/// Why an upload cannot become a runnable module.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("the upload is not a WebAssembly binary ({0})")]
    NotWasm(String),
    #[error("the upload is a core WebAssembly module, not a component")]
    NotComponent,
    #[error("the component is not valid for this host: {0}")]
    Invalid(String),
    #[error("the component does not implement the {world} world: {reason}")]
    WorldMismatch { world: &'static str, reason: String },
    #[error("compiling the component took longer than {0} ms")]
    CompileTimeout(u64),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A module compiled and linked against its world, ready to instantiate many times.
pub enum Loaded {
    TelephonyHandler(telephony::TelephonyHandlerPre<Invocation>),
    WaitState(wait_state::WaitStatePre<Invocation>),
    WorkflowRules(workflow::WorkflowRulesPre<Invocation>),
    EventSubscriber(subscriber::EventSubscriberPre<Invocation>),
}

impl Loaded {
    pub fn world(&self) -> World {
        match self {
            Loaded::TelephonyHandler(_) => World::TelephonyHandler,
            Loaded::WaitState(_) => World::WaitState,
            Loaded::WorkflowRules(_) => World::WorkflowRules,
            Loaded::EventSubscriber(_) => World::EventSubscriber,
        }
    }
}

/// One linker per world: each offers exactly the imports its world allows (plus WASI with no
/// capabilities), so a component importing anything else is refused at upload.
struct Linkers {
    telephony: Linker<Invocation>,
    wait_state: Linker<Invocation>,
    workflow: Linker<Invocation>,
    subscriber: Linker<Invocation>,
}

impl Linkers {
    fn new(engine: &Engine) -> anyhow::Result<Self> {
        fn base(engine: &Engine) -> anyhow::Result<Linker<Invocation>> {
            let mut linker = Linker::new(engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
            Ok(linker)
        }
        let mut telephony = base(engine)?;
        telephony::TelephonyHandler::add_to_linker::<_, HasSelf<Invocation>>(
            &mut telephony,
            |s| s,
        )?;
        let mut wait_state = base(engine)?;
        wait_state::WaitState::add_to_linker::<_, HasSelf<Invocation>>(&mut wait_state, |s| s)?;
        let mut workflow = base(engine)?;
        workflow::WorkflowRules::add_to_linker::<_, HasSelf<Invocation>>(&mut workflow, |s| s)?;
        let mut subscriber = base(engine)?;
        subscriber::EventSubscriber::add_to_linker::<_, HasSelf<Invocation>>(
            &mut subscriber,
            |s| s,
        )?;
        Ok(Linkers {
            telephony,
            wait_state,
            workflow,
            subscriber,
        })
    }

    fn link(&self, component: &Component, world: World) -> Result<Loaded, Rejection> {
        let mismatch = |error: wasmtime::Error| Rejection::WorldMismatch {
            world: world.as_str(),
            reason: format!("{error:#}"),
        };
        Ok(match world {
            World::TelephonyHandler => Loaded::TelephonyHandler(
                telephony::TelephonyHandlerPre::new(
                    self.telephony
                        .instantiate_pre(component)
                        .map_err(mismatch)?,
                )
                .map_err(mismatch)?,
            ),
            World::WaitState => Loaded::WaitState(
                wait_state::WaitStatePre::new(
                    self.wait_state
                        .instantiate_pre(component)
                        .map_err(mismatch)?,
                )
                .map_err(mismatch)?,
            ),
            World::WorkflowRules => Loaded::WorkflowRules(
                workflow::WorkflowRulesPre::new(
                    self.workflow.instantiate_pre(component).map_err(mismatch)?,
                )
                .map_err(mismatch)?,
            ),
            World::EventSubscriber => Loaded::EventSubscriber(
                subscriber::EventSubscriberPre::new(
                    self.subscriber
                        .instantiate_pre(component)
                        .map_err(mismatch)?,
                )
                .map_err(mismatch)?,
            ),
        })
    }
}

/// Counters about the artifact pipeline, for operators and for proving artifacts are reused.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct RuntimeStats {
    /// Whether instances come from the pooling allocator.
    pub pooling: bool,
    /// Components compiled by this process.
    pub compilations: u64,
    /// Compiled artifacts loaded from disk instead of compiling.
    pub artifact_loads: u64,
    /// Modules linked and ready in memory.
    pub loaded_modules: u64,
}

/// Which module an invocation runs, for whom, under which limits, and what it serves.
#[derive(Clone)]
pub struct Target {
    pub principal: Arc<Principal>,
    pub module_sid: String,
    pub loaded: Arc<Loaded>,
    pub limits: Limits,
    /// The call this invocation serves, if any.
    pub call_sid: Option<String>,
    /// The task this invocation serves, if any.
    pub task_sid: Option<String>,
}

/// What an invocation produced, with its usage record and a handle to await that record's commit.
pub struct Invoked<T> {
    pub result: Result<T, Failure>,
    pub usage: UsageRecord,
    pub committed: Committed,
}

/// A store being set up or run, holding its concurrency slot.
struct Running<'a> {
    store: Store<Invocation>,
    started: Instant,
    _slot: SemaphorePermit<'a>,
}

/// Epoch ticks per second: the granularity of deadlines and of yielding to other tasks.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// How long an invocation waits for a free slot before it is refused as busy.
const SLOT_WAIT: Duration = Duration::from_secs(5);

pub struct Runtime {
    engine: Engine,
    linkers: Linkers,
    artifacts: ArtifactCache,
    loaded: RwLock<HashMap<(String, World), Arc<Loaded>>>,
    slots: Semaphore,
    services: Arc<HostServices>,
    meter: Meter,
    pooling: bool,
    compilations: AtomicU64,
    artifact_loads: AtomicU64,
}

/// Engine settings shared by the pooled and on-demand variants.
fn engine_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.consume_fuel(true);
    config.epoch_interruption(true);
    // Proposals tenants do not need stay off: less attack surface (most 2026 advisories are in
    // them) and no way around the memory budget through shared memories.
    config.wasm_threads(false);
    config.wasm_shared_everything_threads(false);
    config.wasm_gc(false);
    config.wasm_function_references(false);
    config.wasm_exceptions(false);
    config.wasm_stack_switching(false);
    config.wasm_memory64(false);
    config.wasm_component_model_async(false);
    config.max_wasm_stack(512 * 1024);
    config
}

fn pooled_config(settings: &RuntimeSettings) -> wasmtime::Config {
    let slots = settings.max_concurrent_invocations.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        // Components built by wit-component hold a few core instances (main module, shims).
        .total_core_instances(slots.saturating_mul(8))
        .total_memories(slots.saturating_mul(2))
        .total_tables(slots.saturating_mul(8))
        .total_stacks(slots)
        .max_memories_per_module(1)
        .max_tables_per_module(4)
        // Reset the first pages of a reused slot with memset instead of returning them to the OS:
        // small handlers then reuse warm pages instead of taking page faults on every call. Kept
        // small because the memset runs on every call whether the guest touched the pages or not.
        .linear_memory_keep_resident(64 << 10)
        .table_keep_resident(64 << 10)
        .async_stack_keep_resident(128 << 10)
        // Return the rest of the slots' pages to the OS in batches: each return flushes the TLB of
        // every core running the process, and one flush per batch is far cheaper than one per
        // call. A slot waiting in a batch is reclaimed at once if the pool runs short.
        .decommit_batch_size(64);
    let mut config = engine_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // Copy data segments in at instantiation instead of mapping the module's memory image
    // copy-on-write: a handler writes to most of its few data pages, and every copy-on-write fault
    // flushes the TLB of all cores (an interprocessor interrupt). Copying a few KiB costs less;
    // measured, it more than doubled invocations per second on two cores.
    config.memory_init_cow(false);
    config
}

impl Runtime {
    pub fn new(
        settings: &RuntimeSettings,
        artifacts_dir: PathBuf,
        services: Arc<HostServices>,
        meter: Meter,
    ) -> anyhow::Result<Self> {
        let (engine, pooling) = if settings.pooling {
            match Engine::new(&pooled_config(settings)) {
                Ok(engine) => (engine, true),
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "the pooling allocator is not available on this machine (address space too small?); using on-demand allocation"
                    );
                    (Engine::new(&engine_config())?, false)
                }
            }
        } else {
            (Engine::new(&engine_config())?, false)
        };
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        let linkers = Linkers::new(&engine)?;
        let artifacts = ArtifactCache::new(artifacts_dir, &engine)?;
        Ok(Runtime {
            engine,
            linkers,
            artifacts,
            loaded: RwLock::new(HashMap::new()),
            slots: Semaphore::new(settings.max_concurrent_invocations.max(1) as usize),
            services,
            meter,
            pooling,
            compilations: AtomicU64::new(0),
            artifact_loads: AtomicU64::new(0),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn stats(&self) -> RuntimeStats {
        RuntimeStats {
            pooling: self.pooling,
            compilations: self.compilations.load(Ordering::Relaxed),
            artifact_loads: self.artifact_loads.load(Ordering::Relaxed),
            loaded_modules: self.loaded.read().map(|m| m.len() as u64).unwrap_or(0),
        }
    }

    /// Checks the header before handing bytes to the compiler, so the common mistakes get a precise
    /// answer: not wasm at all, or a core module where a component is needed.
    fn check_header(bytes: &[u8]) -> Result<(), Rejection> {
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(Rejection::NotWasm(
                "it does not start with the WebAssembly magic bytes \\0asm".into(),
            ));
        }
        match &bytes[4..8] {
            [1, 0, 0, 0] => Err(Rejection::NotComponent),
            [0x0d, 0x00, 0x01, 0x00] => Ok(()),
            other => Err(Rejection::NotWasm(format!(
                "unsupported WebAssembly version/layer {other:02x?}"
            ))),
        }
    }

    /// Validates `bytes` as a component implementing `world`, compiles it off the async threads
    /// within `timeout`, stores the artifact and keeps the linked module ready.
    pub async fn compile(
        &self,
        sha256: &str,
        bytes: Arc<Vec<u8>>,
        world: World,
        timeout: Duration,
    ) -> Result<Arc<Loaded>, Rejection> {
        Self::check_header(&bytes)?;
        let engine = self.engine.clone();
        let compiling = tokio::task::spawn_blocking(move || engine.precompile_component(&bytes));
        let artifact = tokio::time::timeout(timeout, compiling)
            .await
            .map_err(|_| Rejection::CompileTimeout(timeout.as_millis() as u64))?
            .map_err(|join| Rejection::Internal(anyhow::anyhow!("compiler task failed: {join}")))?
            .map_err(|error| Rejection::Invalid(format!("{error:#}")))?;
        self.compilations.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("switchboard_module_compilations_total").increment(1);
        // SAFETY: the bytes were produced just above by this engine's own compiler.
        let component = unsafe { Component::deserialize(&self.engine, &artifact) }
            .map_err(|error| Rejection::Internal(error.into()))?;
        let loaded = Arc::new(self.linkers.link(&component, world)?);
        self.artifacts.store(sha256, &artifact)?;
        self.remember(sha256, world, loaded.clone());
        Ok(loaded)
    }

    fn remember(&self, sha256: &str, world: World, loaded: Arc<Loaded>) {
        if let Ok(mut map) = self.loaded.write() {
            map.insert((sha256.to_string(), world), loaded);
        }
    }

    /// The linked module for `sha256`: from memory, else from its artifact on disk, else compiled
    /// from the source bytes `fetch` provides (a new engine version, or a fresh node on a shared
    /// database).
    pub async fn load<F>(
        &self,
        sha256: &str,
        world: World,
        fetch: F,
    ) -> Result<Arc<Loaded>, Rejection>
    where
        F: std::future::Future<Output = anyhow::Result<Vec<u8>>>,
    {
        if let Some(loaded) = self
            .loaded
            .read()
            .ok()
            .and_then(|map| map.get(&(sha256.to_string(), world)).cloned())
        {
            return Ok(loaded);
        }
        if let Some(component) = self.artifacts.load(sha256, &self.engine) {
            self.artifact_loads.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("switchboard_artifact_loads_total").increment(1);
            let loaded = Arc::new(self.linkers.link(&component, world)?);
            self.remember(sha256, world, loaded.clone());
            return Ok(loaded);
        }
        let bytes = fetch.await?;
        self.compile(sha256, Arc::new(bytes), world, Duration::from_secs(300))
            .await
    }

    /// Drops the in-memory and on-disk forms of a module no version refers to any more.
    pub fn forget(&self, sha256: &str) {
        if let Ok(mut map) = self.loaded.write() {
            map.retain(|(hash, _), _| hash != sha256);
        }
        self.artifacts.remove(sha256);
    }

    async fn begin(&self, target: &Target) -> Result<Running<'_>, Failure> {
        let slot = tokio::time::timeout(SLOT_WAIT, self.slots.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| Failure {
                outcome: Outcome::HostError,
                message: "the host is running as many invocations as it allows; retry shortly"
                    .into(),
                backtrace: None,
                stderr: None,
            })?;
        let started = Instant::now();
        let deadline = started + Duration::from_millis(target.limits.deadline_ms);
        let data = Invocation::new(
            self.services.clone(),
            target.principal.clone(),
            target.limits.memory_bytes,
            target.limits.host_calls,
            deadline,
        );
        let mut store = Store::new(&self.engine, data);
        store.limiter(|data| &mut data.memory);
        let host_error = |error: wasmtime::Error| Failure {
            outcome: Outcome::HostError,
            message: format!("could not prepare the invocation: {error:#}"),
            backtrace: None,
            stderr: None,
        };
        store.set_fuel(target.limits.fuel).map_err(host_error)?;
        // Check the clock at every tick: stop the guest once its deadline has passed, otherwise
        // yield the thread. Yielding through tokio (rather than waking at once) lets the runtime
        // poll I/O before the guest runs again, so a spinning guest cannot starve other tenants'
        // requests of their database and network round-trips.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|context| {
            if Instant::now() >= context.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        Ok(Running {
            store,
            started,
            _slot: slot,
        })
    }

    /// Bounds a whole invocation, host calls included, by the deadline plus a grace period: epoch
    /// interruption only stops wasm code, not a host call waiting on I/O.
    async fn bounded<T>(
        limits: &Limits,
        work: impl std::future::Future<Output = wasmtime::Result<T>>,
    ) -> wasmtime::Result<T> {
        let allowed = Duration::from_millis(limits.deadline_ms) + 2 * EPOCH_TICK;
        match tokio::time::timeout(allowed, work).await {
            Ok(result) => result,
            Err(_) => Err(DeadlineExceeded {
                deadline_ms: limits.deadline_ms,
            }
            .into()),
        }
    }

    async fn finish<T>(
        &self,
        target: &Target,
        running: Running<'_>,
        result: wasmtime::Result<Result<T, String>>,
    ) -> Invoked<T> {
        let wall = running.started.elapsed();
        let store = running.store;
        let fuel_left = store.get_fuel().unwrap_or(0);
        let result = match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(Failure {
                outcome: Outcome::GuestError,
                message,
                backtrace: None,
                stderr: None,
            }),
            Err(error) => {
                let (outcome, message) = outcome::classify(&error);
                let stderr = store.data().stderr_text();
                Err(Failure {
                    outcome,
                    message,
                    backtrace: outcome::backtrace(&error),
                    stderr: (!stderr.is_empty()).then_some(stderr),
                })
            }
        };
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(failure) => failure.outcome,
        };
        let data = store.data();
        let usage = UsageRecord {
            account_sid: target.principal.account_sid.clone(),
            module_sid: target.module_sid.clone(),
            module_name: target.principal.module_name.clone(),
            module_version: target.principal.module_version,
            world: target.loaded.world(),
            fuel_consumed: target.limits.fuel.saturating_sub(fuel_left),
            wall_time_us: wall.as_micros() as u64,
            peak_memory_bytes: data.memory.peak() as u64,
            host_calls: data.host_calls,
            tts_characters: data.tts_characters,
            outcome,
            call_sid: target.call_sid.clone(),
            task_sid: target.task_sid.clone(),
            date_created: crate::store::now_ms(),
        };
        let world = usage.world.as_str();
        let outcome_label = usage.outcome.as_str();
        metrics::counter!("switchboard_invocations_total", "world" => world, "outcome" => outcome_label)
            .increment(1);
        if usage.outcome.is_trap() {
            metrics::counter!("switchboard_traps_total", "world" => world, "outcome" => outcome_label)
                .increment(1);
        }
        metrics::counter!("switchboard_fuel_consumed_total", "world" => world)
            .increment(usage.fuel_consumed);
        metrics::histogram!("switchboard_invocation_seconds", "world" => world)
            .record(wall.as_secs_f64());
        if let Err(failure) = &result {
            tracing::info!(
                account = %usage.account_sid,
                module = %usage.module_name,
                version = usage.module_version,
                outcome = failure.outcome.as_str(),
                message = %failure.message,
                "module invocation failed"
            );
        }
        let committed = self.meter.record(&usage);
        Invoked {
            result,
            usage,
            committed,
        }
    }

    /// A failure before the guest ran (no slot, store setup): still metered, as a host error.
    async fn refused<T>(&self, target: &Target, failure: Failure) -> Invoked<T> {
        let usage = UsageRecord {
            account_sid: target.principal.account_sid.clone(),
            module_sid: target.module_sid.clone(),
            module_name: target.principal.module_name.clone(),
            module_version: target.principal.module_version,
            world: target.loaded.world(),
            fuel_consumed: 0,
            wall_time_us: 0,
            peak_memory_bytes: 0,
            host_calls: 0,
            tts_characters: 0,
            outcome: failure.outcome,
            call_sid: target.call_sid.clone(),
            task_sid: target.task_sid.clone(),
            date_created: crate::store::now_ms(),
        };
        let committed = self.meter.record(&usage);
        Invoked {
            result: Err(failure),
            usage,
            committed,
        }
    }

    async fn wrong_world<T>(&self, target: &Target, wanted: World) -> Invoked<T> {
        self.refused(
            target,
            Failure {
                outcome: Outcome::HostError,
                message: format!(
                    "the module is a {} module; this use needs a {} module",
                    target.loaded.world().as_str(),
                    wanted.as_str()
                ),
                backtrace: None,
                stderr: None,
            },
        )
        .await
    }

    /// Asks a telephony handler for the instructions to run on a call.
    pub async fn handle(
        &self,
        target: &Target,
        call: &types::CallInfo,
        trigger: &types::Trigger,
    ) -> Invoked<Vec<types::Instruction>> {
        let Loaded::TelephonyHandler(pre) = &*target.loaded else {
            return self.wrong_world(target, World::TelephonyHandler).await;
        };
        let mut running = match self.begin(target).await {
            Ok(running) => running,
            Err(failure) => return self.refused(target, failure).await,
        };
        let store = &mut running.store;
        let result = Self::bounded(&target.limits, async {
            let instance = pre.instantiate_async(&mut *store).await?;
            instance.call_handle(&mut *store, call, trigger).await
        })
        .await;
        self.finish(target, running, result).await
    }

    /// Asks a wait-state application what a queued caller hears next.
    pub async fn on_wait(
        &self,
        target: &Target,
        call: &types::CallInfo,
        status: &types::QueueStatus,
    ) -> Invoked<Vec<types::WaitInstruction>> {
        let Loaded::WaitState(pre) = &*target.loaded else {
            return self.wrong_world(target, World::WaitState).await;
        };
        let mut running = match self.begin(target).await {
            Ok(running) => running,
            Err(failure) => return self.refused(target, failure).await,
        };
        let store = &mut running.store;
        let result = Self::bounded(&target.limits, async {
            let instance = pre.instantiate_async(&mut *store).await?;
            instance
                .call_on_wait(&mut *store, call, status)
                .await
                .map(Ok)
        })
        .await;
        self.finish(target, running, result).await
    }

    /// Asks a workflow rule how to route a task.
    pub async fn route(
        &self,
        target: &Target,
        task: &types::Task,
    ) -> Invoked<types::RoutingDecision> {
        let Loaded::WorkflowRules(pre) = &*target.loaded else {
            return self.wrong_world(target, World::WorkflowRules).await;
        };
        let mut running = match self.begin(target).await {
            Ok(running) => running,
            Err(failure) => return self.refused(target, failure).await,
        };
        let store = &mut running.store;
        let result = Self::bounded(&target.limits, async {
            let instance = pre.instantiate_async(&mut *store).await?;
            instance.call_route(&mut *store, task).await.map(Ok)
        })
        .await;
        self.finish(target, running, result).await
    }

    /// Asks a workflow rule to score a worker for a task.
    pub async fn score(
        &self,
        target: &Target,
        task: &types::Task,
        worker: &types::Worker,
    ) -> Invoked<Option<f64>> {
        let Loaded::WorkflowRules(pre) = &*target.loaded else {
            return self.wrong_world(target, World::WorkflowRules).await;
        };
        let mut running = match self.begin(target).await {
            Ok(running) => running,
            Err(failure) => return self.refused(target, failure).await,
        };
        let store = &mut running.store;
        let result = Self::bounded(&target.limits, async {
            let instance = pre.instantiate_async(&mut *store).await?;
            instance.call_score(&mut *store, task, worker).await.map(Ok)
        })
        .await;
        self.finish(target, running, result).await
    }

    /// Delivers an event to a subscriber module.
    pub async fn on_event(&self, target: &Target, event: &types::Event) -> Invoked<()> {
        let Loaded::EventSubscriber(pre) = &*target.loaded else {
            return self.wrong_world(target, World::EventSubscriber).await;
        };
        let mut running = match self.begin(target).await {
            Ok(running) => running,
            Err(failure) => return self.refused(target, failure).await,
        };
        let store = &mut running.store;
        let result = Self::bounded(&target.limits, async {
            let instance = pre.instantiate_async(&mut *store).await?;
            instance.call_on_event(&mut *store, event).await
        })
        .await;
        self.finish(target, running, result).await
    }
}
