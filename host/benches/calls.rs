//! Call-router benchmark: sim calls to a module application that says one line and hangs up, media
//! speed unbounded, on SQLite (or PostgreSQL with `BENCH_DATABASE_URL`).
//!
//! Prints, in one run:
//! - the baseline: the same module invoked directly through the runtime (what each call's handler
//!   costs by itself), in invocations per second;
//! - completed calls per second with every call, status change, segment and event committed, and
//!   its ratio to the baseline;
//! - call setup latency at a paced 500 calls/s: from the call reaching the router to its first
//!   instruction running (p50 / p99 from the `switchboard_call_setup_seconds` histogram), and the
//!   time until the placing request is acknowledged (committed);
//! - memory per live idle call (callers waiting in a gather), from the process's resident size.
//!
//! Run with `cargo bench -p switchboard-host --bench calls`.

mod common;

use common::resident_bytes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_host::app::App;
use switchboard_host::config::Config;
use switchboard_host::runtime::World;
use switchboard_host::runtime::io::{CallInfo, Trigger};
use switchboard_host::telephony::resources::{PhoneNumbers, VoiceParams};

fn guests() -> std::path::PathBuf {
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
                "-p",
                "ivr",
                "--target-dir",
            ])
            .arg(&target)
            .status()
            .expect("run cargo to build the guests");
    assert!(
        status.success(),
        "building the guests for wasm32-wasip2 failed"
    );
    target.join("wasm32-wasip2/release")
}

/// Cumulative bucket counts of a histogram in the Prometheus text, by upper bound.
fn buckets(text: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect()
}

/// The smallest bucket bound holding `q` of the observations made between two snapshots.
fn quantile_bound(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> f64 {
    let count = |snapshot: &[(f64, u64)], bound: f64| {
        snapshot
            .iter()
            .find(|(b, _)| *b == bound)
            .map(|(_, c)| *c)
            .unwrap_or(0)
    };
    let total =
        after.last().map(|(_, c)| *c).unwrap_or(0) - before.last().map(|(_, c)| *c).unwrap_or(0);
    for (bound, cumulative) in after {
        let delta = cumulative - count(before, *bound);
        if delta as f64 >= q * total as f64 {
            return *bound;
        }
    }
    f64::INFINITY
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
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

async fn wait_idle(state: &switchboard_host::app::AppState) {
    while state.telephony.live_calls() > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn bench() {
    let guests = guests();
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
    config.telephony.media_speed = 0.0;
    let state = App::build(config).await.expect("build the host");
    let (account, _) = state.accounts.create("bench").await.expect("account");
    let mut hello = None;
    for name in ["hello", "ivr"] {
        let bytes = std::fs::read(guests.join(format!("{name}.wasm"))).expect("guest wasm");
        let module = state
            .registry
            .upload(&account.sid, name, World::TelephonyHandler, bytes)
            .await
            .expect("upload");
        if name == "hello" {
            hello = Some(module);
        }
    }
    let numbers = PhoneNumbers {
        db: &state.db,
        account_sid: &account.sid,
    };
    for (number, uri) in [
        ("+15550000001", "module:hello"),
        ("+15550000002", "module:ivr"),
    ] {
        numbers
            .create(
                number,
                None,
                None,
                &VoiceParams {
                    voice_url: Some(uri.into()),
                    ..Default::default()
                },
            )
            .await
            .expect("number");
    }
    let account = Arc::new(account);
    const CONCURRENCY: usize = 64;

    // Baseline: the handler alone, through the runtime (limits and usage records included).
    let target = Arc::new(
        state
            .registry
            .target(&account, hello.as_ref().expect("hello"))
            .await
            .expect("target"),
    );
    let info = CallInfo {
        from: "+15559999999".into(),
        to: "+15550000001".into(),
        ..Default::default()
    }
    .to_wit(&account.sid);
    let trigger = Trigger::Incoming.to_wit();
    let invocations = 20_000;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (runtime, target, info, trigger) = (
            state.runtime.clone(),
            target.clone(),
            info.clone(),
            trigger.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for _ in 0..invocations / CONCURRENCY {
                let invoked = runtime.handle(&target, &info, &trigger).await;
                assert!(invoked.result.is_ok());
            }
        }));
    }
    for task in tasks {
        task.await.expect("baseline task");
    }
    let baseline =
        (invocations / CONCURRENCY * CONCURRENCY) as f64 / started.elapsed().as_secs_f64();
    state.meter.flush().await;

    // Throughput: calls placed as fast as the router takes them, until all have completed.
    let calls = 20_000;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (telephony, account) = (state.telephony.clone(), account.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..calls / CONCURRENCY {
                telephony
                    .incoming(&account, "+15559999999", "+15550000001")
                    .await
                    .expect("place a call");
            }
        }));
    }
    for task in tasks {
        task.await.expect("placing task");
    }
    wait_idle(&state).await;
    let placed = calls / CONCURRENCY * CONCURRENCY;
    let elapsed = started.elapsed();
    let throughput = placed as f64 / elapsed.as_secs_f64();
    state.writer.flush().await;
    let completed: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM calls WHERE status = 'completed' AND timeline IS NOT NULL",
    )
    .fetch_one(state.db.pool())
    .await
    .expect("count calls");
    assert_eq!(
        completed as usize, placed,
        "every call completed and stored"
    );

    // Latency at a paced 500 calls/s.
    let before = buckets(&state.metrics.render(), "switchboard_call_setup_seconds");
    let mut ticker = tokio::time::interval(Duration::from_millis(2));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut acks = Vec::new();
    for _ in 0..2_500 {
        ticker.tick().await;
        let (telephony, account) = (state.telephony.clone(), account.clone());
        acks.push(tokio::spawn(async move {
            let placed = Instant::now();
            telephony
                .incoming(&account, "+15559999999", "+15550000001")
                .await
                .expect("place a call");
            placed.elapsed()
        }));
    }
    let mut ack_times = Vec::new();
    for ack in acks {
        ack_times.push(ack.await.expect("paced call"));
    }
    wait_idle(&state).await;
    ack_times.sort();
    let after = buckets(&state.metrics.render(), "switchboard_call_setup_seconds");
    let p50 = quantile_bound(&before, &after, 0.50);
    let p99 = quantile_bound(&before, &after, 0.99);

    // Memory: callers waiting in the IVR's gather (5 s timeout on the system clock).
    let idle_calls = 2_000;
    let resident_before = resident_bytes();
    for _ in 0..idle_calls {
        state
            .telephony
            .incoming(&account, "+15559999999", "+15550000002")
            .await
            .expect("place an idle call");
    }
    while state.telephony.clock().pending_timers() < idle_calls {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let resident_idle = resident_bytes();
    let per_call = resident_idle.saturating_sub(resident_before) as f64 / idle_calls as f64;
    wait_idle(&state).await;

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("switchboard call-router benchmark ({backend}, {cores} cores, media speed unbounded)");
    println!("  baseline: hello handler invoked directly: {baseline:>10.0} invocations/s");
    println!(
        "  sim calls placed, run and completed:       {throughput:>10.0} calls/s ({placed} calls in {:.2} s, all stored; {:.2}x the baseline's rate)",
        elapsed.as_secs_f64(),
        throughput / baseline
    );
    println!(
        "  at 500 calls/s, call reaching the router -> first instruction: p50 <= {:.2} ms, p99 <= {:.2} ms (histogram bucket bounds)",
        p50 * 1000.0,
        p99 * 1000.0
    );
    println!(
        "  at 500 calls/s, placing request acknowledged (call committed): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&ack_times, 0.50).as_secs_f64() * 1000.0,
        percentile(&ack_times, 0.99).as_secs_f64() * 1000.0
    );
    println!(
        "  memory per live idle call (waiting in a gather): {:.1} KB ({idle_calls} calls, resident size {} -> {} MB)",
        per_call / 1024.0,
        resident_before / (1 << 20),
        resident_idle / (1 << 20)
    );
}
