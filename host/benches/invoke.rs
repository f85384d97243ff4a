//! Invocation overhead: the `hello` handler through the full host path (limits, fuel, deadline,
//! memory budget, metering, usage record persisted in batches) against the same component run
//! with bare wasmtime (new store, instantiate from `InstancePre`, call) on the same engine, in the
//! same process.
//!
//! Run with `cargo bench -p switchboard-host --bench invoke`. Set `BENCH_DATABASE_URL` to measure
//! on PostgreSQL instead of SQLite.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_host::app::App;
use switchboard_host::config::Config;
use switchboard_host::metering::count_records;
use switchboard_host::runtime::bindings::telephony::TelephonyHandlerPre;
use switchboard_host::runtime::bindings::types;
use switchboard_host::runtime::{Runtime, Target};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

const LATENCY_SAMPLES: usize = 20_000;
const THROUGHPUT_TASKS: usize = 16;
const THROUGHPUT_PER_TASK: usize = 10_000;

/// Store data for the bare baseline: WASI only, as the component needs it.
struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn hello_wasm() -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target").join("guest");
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                "hello",
                "--target-dir",
            ])
            .arg(&target)
            .status()
            .expect("run cargo to build the hello guest");
    assert!(status.success(), "building hello for wasm32-wasip2 failed");
    std::fs::read(target.join("wasm32-wasip2/release/hello.wasm")).expect("hello.wasm")
}

fn call() -> (types::CallInfo, types::Trigger) {
    (
        types::CallInfo {
            call_sid: "CA00000000000000000000000000000000".into(),
            account_sid: "AC00000000000000000000000000000000".into(),
            from: "+15550001".into(),
            to: "+15550002".into(),
            direction: types::CallDirection::Inbound,
            status: types::CallStatus::InProgress,
            failure: None,
            parameters: Vec::new(),
        },
        types::Trigger::Incoming,
    )
}

async fn bare_once(
    engine: &Engine,
    pre: &TelephonyHandlerPre<Bare>,
    call: &types::CallInfo,
    trigger: &types::Trigger,
) {
    let mut store = Store::new(
        engine,
        Bare {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    );
    // The engine meters fuel and checks epochs, so the baseline must grant both.
    store.set_fuel(u64::MAX).expect("fuel");
    store.set_epoch_deadline(u64::MAX / 2);
    let instance = pre
        .instantiate_async(&mut store)
        .await
        .expect("instantiate");
    let result = instance
        .call_handle(&mut store, call, trigger)
        .await
        .expect("call");
    assert!(result.is_ok());
}

async fn full_once(
    runtime: &Runtime,
    target: &Target,
    call: &types::CallInfo,
    trigger: &types::Trigger,
) {
    let invoked = runtime.handle(target, call, trigger).await;
    assert!(invoked.result.is_ok(), "{:?}", invoked.result.err());
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cores} cores, {cpu}")
}

fn main() {
    // As the host's binary does.
    switchboard_host::memory::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    runtime.block_on(bench());
}

async fn bench() {
    let wasm = hello_wasm();
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = std::env::var("BENCH_DATABASE_URL").ok();
    let backend = if database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        database_url,
        admin_token: Some("bench".into()),
        ..Config::default()
    };
    config.runtime.max_concurrent_invocations = 64;
    let state = App::build(config).await.expect("build the host");
    let (account, _) = state.accounts.create("bench").await.expect("account");
    let module = state
        .registry
        .upload(
            &account.sid,
            "hello",
            switchboard_host::runtime::World::TelephonyHandler,
            wasm.clone(),
        )
        .await
        .expect("upload hello");
    let target = Arc::new(
        state
            .registry
            .target(&account, &module)
            .await
            .expect("target"),
    );
    let host = state.runtime.clone();

    let engine = host.engine().clone();
    let component = Component::new(&engine, &wasm).expect("compile");
    let mut linker: Linker<Bare> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
    let pre = Arc::new(
        TelephonyHandlerPre::new(linker.instantiate_pre(&component).expect("instantiate_pre"))
            .expect("world"),
    );
    let (call, trigger) = call();

    // Warm up both paths.
    for _ in 0..500 {
        bare_once(&engine, &pre, &call, &trigger).await;
        full_once(&host, &target, &call, &trigger).await;
    }

    // Latency: one invocation at a time, the two paths interleaved so drift hits both alike.
    let mut bare = Vec::with_capacity(LATENCY_SAMPLES);
    let mut full = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let start = Instant::now();
        bare_once(&engine, &pre, &call, &trigger).await;
        bare.push(start.elapsed());
        let start = Instant::now();
        full_once(&host, &target, &call, &trigger).await;
        full.push(start.elapsed());
    }
    bare.sort();
    full.sort();
    let (bare_median, full_median) = (percentile(&bare, 0.5), percentile(&full, 0.5));

    // Throughput: many concurrent invocations across all cores; the full path is timed until every
    // usage record it produced is committed.
    state.meter.flush().await;
    let before = count_records(&state.db, &account.sid).await.expect("count");
    let total = THROUGHPUT_TASKS * THROUGHPUT_PER_TASK;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..THROUGHPUT_TASKS {
        let (host, target, call, trigger) =
            (host.clone(), target.clone(), call.clone(), trigger.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..THROUGHPUT_PER_TASK {
                full_once(&host, &target, &call, &trigger).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    state.meter.flush().await;
    let full_elapsed = start.elapsed();
    let persisted = count_records(&state.db, &account.sid).await.expect("count") - before;

    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..THROUGHPUT_TASKS {
        let (engine, pre, call, trigger) =
            (engine.clone(), pre.clone(), call.clone(), trigger.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..THROUGHPUT_PER_TASK {
                bare_once(&engine, &pre, &call, &trigger).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let bare_elapsed = start.elapsed();

    let full_rate = total as f64 / full_elapsed.as_secs_f64();
    let bare_rate = total as f64 / bare_elapsed.as_secs_f64();
    println!("invoke benchmark: hello handler, {backend}, {}", machine());
    println!(
        "  latency (sequential, {LATENCY_SAMPLES} samples): bare median {:.1} us p99 {:.1} us | full median {:.1} us p99 {:.1} us | median ratio {:.2}x",
        micros(bare_median),
        micros(percentile(&bare, 0.99)),
        micros(full_median),
        micros(percentile(&full, 0.99)),
        full_median.as_secs_f64() / bare_median.as_secs_f64(),
    );
    println!(
        "  throughput ({total} invocations, {THROUGHPUT_TASKS} concurrent tasks): bare {bare_rate:.0}/s | full {full_rate:.0}/s with {persisted} usage records persisted | ratio {:.2}",
        full_rate / bare_rate
    );
    assert_eq!(
        persisted as usize, total,
        "every usage record must be persisted"
    );
}
