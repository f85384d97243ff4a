//! Call-queue benchmark: 10,000 sim callers waiting at once, each with a looping wait-state module,
//! then taken out of the queue one by one through the Members `Front` dequeue. System clock, media at
//! real speed, SQLite (or PostgreSQL with `BENCH_DATABASE_URL`).
//!
//! The callers' number points at a small web application served by the benchmark itself, whose
//! only document is `<Enqueue waitUrl="module:hold-music">`. A queue holds at most
//! [`LARGEST_MAX_SIZE`] callers, so the callers are spread over as many queues of that size as
//! needed (two for 10,000), half on each.
//!
//! # What "looping" means here
//!
//! The wait-state module is the `hold-music` example, configured (through the account's key-value
//! store, as a tenant would) to its shortest interval, 5 seconds. Every cycle the host invokes the
//! module with fresh queue figures; the module reads its configuration from the store (two `kv`
//! reads) and answers a one-digit gather whose prompts are the position announcement (about 7 s of
//! speech at real speed) and 5 s of silence, then 1 s of gather timeout. So each caller's module
//! runs again every ~13 s, about 750 wait-state invocations per second for 10,000 callers, and the
//! 30 s hold phase lasts long enough for every caller to go round at least twice. The invocations
//! made during the hold (from the `switchboard_invocations_total` counter) are printed per waiting
//! caller next to how many cycles fit in the hold, so a host that cannot keep up shows as a
//! shortfall. (The callers all join within a few seconds, so their cycles stay nearly in step and
//! the count per caller is close to a whole number rather than the exact ratio.)
//! `BENCH_HOLD_INTERVAL` changes the interval (the module clamps it to 5..=600 s);
//! `BENCH_WAIT_MODULE=waiter` uses the test `waiter` module instead, which answers once per caller
//! and then pauses 600 s (no looping within the run: a measure of idle waiting).
//!
//! Prints, in one run:
//! - enqueue: the rate at which callers joined, from the first call placed until every caller's
//!   membership was committed (a join commits before the wait-state module is first asked);
//! - hold: the process's resident size with every caller waiting (target: under 300 MB), per
//!   waiting caller, and the wait-state invocation rate and latency meanwhile;
//! - dequeue: `Queues::redirect_member(.., MemberRef::Front, "module:hello", ..)`, what
//!   `POST .../Queues/{Sid}/Members/Front.json` runs, one at a time: first 100 a second (p50 /
//!   p99 / max; target: p99 under 2 ms), the latency of a dequeue while everyone waits; then as
//!   fast as each completes, and from 16 tasks at once, each as a rate. At full rate over a
//!   thousand dequeued calls a second run their next document (`module:hello`, a greeting, the
//!   hang-up) on the same two cores, so those latencies include the host being saturated;
//! - the baseline, measured in the same process: the latency of one durable commit of a one-row
//!   change through the host's group-commit writer, idle and under the hold's load. A dequeue is
//!   one durable commit, of a larger change (the member's row and its two indexes, the queue's
//!   average, the `member-left` and `positions-changed` events), submitted by the dequeuer itself,
//!   while the callers dequeued just before run their next document. The ratio of the dequeue p99
//!   to the loaded commit p99 is what all of that costs over the bare commit. On SQLite a
//!   checkpointer thread copies the write-ahead log back meanwhile, sharing the disk and the
//!   cores with the commits.
//!
//! `BENCH_CALLERS` and `BENCH_HOLD_SECONDS` override the number of callers and the hold's length.
//! `BENCH_SPEECH=off` runs without a text-to-speech engine, so the module's announcements fail at
//! once (error 32005, the call goes on) instead of being synthesized: the host's own costs alone.
//!
//! Run with `cargo bench -p switchboard-host --bench queues`.

mod common;

use common::{env_number, mb, ms, percentile, resident_bytes};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use switchboard_host::app::{App, AppState};
use switchboard_host::config::Config;
use switchboard_host::media::tts::Speech;
use switchboard_host::queues::{LARGEST_MAX_SIZE, MemberRef};
use switchboard_host::runtime::World;
use switchboard_host::store::batch::Statement;
use switchboard_host::telephony::resources::{PhoneNumbers, VoiceParams};

/// Calls being placed at once while the callers arrive.
const PLACING_CONCURRENCY: usize = 64;
/// Dequeues at a steady rate, from the first queue: the latency of one dequeue under the hold's
/// load, with the dequeued calls adding only what a busy queue's agents would.
const PACED_DEQUEUES: usize = 1_000;
const PACED_PER_SECOND: u64 = 100;
/// Dequeues one at a time as fast as they complete, from the first queue: the host's rate, with
/// every dequeued call running its next document meanwhile.
const SEQUENTIAL_DEQUEUES: usize = 2_000;
/// Dequeues from the second queue by [`DEQUEUE_TASKS`] tasks at once.
const CONCURRENT_DEQUEUES: usize = 2_000;
const DEQUEUE_TASKS: usize = 16;
/// Durable one-row commits timed for the baseline, idle and under load.
const COMMITS: usize = 1_000;
/// The host's target for all callers waiting.
const RESIDENT_TARGET_MB: u64 = 300;
/// The target for a dequeue's 99th percentile.
const DEQUEUE_P99_TARGET_MS: f64 = 2.0;

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
                "waiter",
                "-p",
                "hold-music",
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

/// Wait-state invocations so far, in total and those that did not end `ok`.
fn wait_state_invocations(text: &str) -> (u64, u64) {
    let mut all = 0;
    let mut failed = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("switchboard_invocations_total{") else {
            continue;
        };
        let Some((labels, count)) = rest.split_once("} ") else {
            continue;
        };
        if !labels.contains("world=\"wait-state\"") {
            continue;
        }
        let count = count.trim().parse::<f64>().unwrap_or(0.0) as u64;
        all += count;
        if !labels.contains("outcome=\"ok\"") {
            failed += count;
        }
    }
    (all, failed)
}

/// Cumulative bucket counts of the wait-state invocation-time histogram, by upper bound.
fn wait_state_buckets(text: &str) -> Vec<(f64, u64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("switchboard_invocation_seconds_bucket{")?;
            let (labels, count) = rest.split_once("} ")?;
            if !labels.contains("world=\"wait-state\"") {
                return None;
            }
            let bound = labels.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, count.trim().parse::<f64>().ok()? as u64))
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

/// The tenant's web application: `/caller/{queue}` enqueues the caller into `queue` with
/// `wait_uri` as its wait-state application. Returns its base URL.
async fn tenant_app(wait_uri: String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the tenant's web application");
    let addr = listener.local_addr().expect("local address");
    let router = axum::Router::new().route(
        "/caller/{queue}",
        axum::routing::any(
            move |axum::extract::Path(queue): axum::extract::Path<String>| {
                let wait_uri = wait_uri.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "text/xml")],
                        format!(
                            r#"<Response><Enqueue waitUrl="{wait_uri}">{queue}</Enqueue></Response>"#
                        ),
                    )
                }
            },
        ),
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("serve the tenant's web application");
    });
    (format!("http://{addr}"), task)
}

/// Latencies of `count` durable one-row commits through the host's writer, one at a time, sorted.
async fn commit_latencies(state: &AppState, queue_sid: &str, count: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        let started = Instant::now();
        state
            .writer
            .submit(vec![Statement::new(
                "UPDATE queues SET date_updated = $2 WHERE sid = $1",
                vec![queue_sid.to_string().into(), (i as i64).into()],
            )])
            .wait()
            .await
            .expect("commit");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

/// Dequeues the head of `queue_sid` to `module:hello`, as `POST .../Members/Front.json` does;
/// returns how long that took.
async fn dequeue_front(state: &AppState, account_sid: &str, queue_sid: &str) -> Duration {
    let started = Instant::now();
    let member = state
        .queues
        .redirect_member(
            account_sid,
            queue_sid,
            MemberRef::Front,
            "module:hello",
            "POST",
        )
        .await
        .expect("dequeue the head");
    let took = started.elapsed();
    assert_eq!(member.position, 1, "the head of the queue left");
    took
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
    let guests = guests();
    let callers = env_number("BENCH_CALLERS", 10_000);
    let hold_seconds = env_number("BENCH_HOLD_SECONDS", 30) as u64;
    let hold_interval = env_number("BENCH_HOLD_INTERVAL", 5);
    let wait_module = std::env::var("BENCH_WAIT_MODULE").unwrap_or_else(|_| "hold-music".into());
    assert!(
        matches!(wait_module.as_str(), "hold-music" | "waiter"),
        "BENCH_WAIT_MODULE is hold-music or waiter"
    );
    assert!(
        callers >= 2 * (PACED_DEQUEUES + SEQUENTIAL_DEQUEUES).max(CONCURRENT_DEQUEUES),
        "BENCH_CALLERS must leave callers for the dequeues"
    );

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
    config.telephony.media_speed = 1.0;
    let speech = std::env::var("BENCH_SPEECH").map_or(true, |v| v != "off");
    if !speech {
        config.media.tts_command = "/nonexistent/tts".into();
    }
    let state = App::build(config).await.expect("build the host");
    let (account, _) = state.accounts.create("bench").await.expect("account");
    for (name, file, world) in [
        ("hello", "hello", World::TelephonyHandler),
        ("waiter", "waiter", World::WaitState),
        ("hold-music", "hold_music", World::WaitState),
    ] {
        let bytes = std::fs::read(guests.join(format!("{file}.wasm"))).expect("guest wasm");
        state
            .registry
            .upload(&account.sid, name, world, bytes)
            .await
            .expect("upload");
    }
    sqlx::query("INSERT INTO kv_entries (account_sid, key, value) VALUES ($1, $2, $3)")
        .bind(&account.sid)
        .bind("hold-music/interval-seconds")
        .bind(hold_interval.to_string().into_bytes())
        .execute(state.db.pool())
        .await
        .expect("configure hold-music");

    let (web, web_task) = tenant_app(format!("module:{wait_module}")).await;
    let queue_count = callers.div_ceil(LARGEST_MAX_SIZE as usize).max(2);
    let numbers = PhoneNumbers {
        db: &state.db,
        account_sid: &account.sid,
    };
    let mut queue_sids = Vec::new();
    let mut dialled = Vec::new();
    for q in 0..queue_count {
        let name = format!("bench-{q}");
        let queue = state
            .queues
            .create(&account.sid, &name, LARGEST_MAX_SIZE)
            .await
            .expect("queue");
        queue_sids.push(queue.sid);
        let number = format!("+1555000{:04}", q + 1);
        numbers
            .create(
                &number,
                None,
                None,
                &VoiceParams {
                    voice_url: Some(format!("{web}/caller/{name}")),
                    ..Default::default()
                },
            )
            .await
            .expect("number");
        dialled.push(number);
    }
    let baseline_queue = state
        .queues
        .create(&account.sid, "bench-baseline", 1)
        .await
        .expect("baseline queue");

    // Baseline, idle: the writer's round trip without a write, and a durable one-row commit.
    let mut round_trips = Vec::with_capacity(COMMITS);
    for _ in 0..COMMITS {
        let started = Instant::now();
        state.writer.submit(vec![]).wait().await.expect("commit");
        round_trips.push(started.elapsed());
    }
    round_trips.sort();
    let idle_commits = commit_latencies(&state, &baseline_queue.sid, COMMITS).await;

    // Phase 1: every caller calls in and joins a queue.
    let account = Arc::new(account);
    let dialled = Arc::new(dialled);
    let resident_before = resident_bytes();
    let metrics_before = state.metrics.render();
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut placing = tokio::task::JoinSet::new();
    for _ in 0..PLACING_CONCURRENCY {
        let (telephony, account, dialled, next) = (
            state.telephony.clone(),
            account.clone(),
            dialled.clone(),
            next.clone(),
        );
        placing.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= callers {
                    break;
                }
                let from = format!("+1444{i:07}");
                telephony
                    .incoming(&account, &from, &dialled[i % dialled.len()])
                    .await
                    .expect("place a call");
            }
        });
    }
    while let Some(done) = placing.join_next().await {
        done.expect("placing task");
    }
    let placed_in = started.elapsed();
    let mut resident_peak = resident_bytes();
    let deadline = Instant::now() + Duration::from_secs(120);
    while state.queues.waiting() < callers {
        assert!(
            Instant::now() < deadline,
            "only {} of {callers} callers joined within 2 minutes ({} calls live)",
            state.queues.waiting(),
            state.telephony.live_calls()
        );
        resident_peak = resident_peak.max(resident_bytes());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Every join submitted by now; once the writer has committed them, they are durable.
    state.writer.flush().await;
    let enqueued_in = started.elapsed();
    let enqueue_rate = callers as f64 / enqueued_in.as_secs_f64();
    let stored: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM queue_members")
        .fetch_one(state.db.pool())
        .await
        .expect("count members");
    assert_eq!(stored as usize, callers, "every caller's membership stored");

    // Phase 2: everyone waits while the wait-state module loops.
    let hold_started = Instant::now();
    let (invocations_at_hold, _) = wait_state_invocations(&state.metrics.render());
    let buckets_at_hold = wait_state_buckets(&state.metrics.render());
    let resident_at_hold = resident_bytes();
    while hold_started.elapsed() < Duration::from_secs(hold_seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        resident_peak = resident_peak.max(resident_bytes());
    }
    let held = hold_started.elapsed();
    let metrics_after_hold = state.metrics.render();
    let (invocations_after_hold, failed_after_hold) = wait_state_invocations(&metrics_after_hold);
    let (invocations_before, failed_before) = wait_state_invocations(&metrics_before);
    let hold_invocations = invocations_after_hold - invocations_at_hold;
    let hold_rate = hold_invocations as f64 / held.as_secs_f64();
    let hold_failures = failed_after_hold - failed_before;
    let first_invocations = invocations_at_hold - invocations_before;
    let invocation_p50 = quantile_bound(
        &buckets_at_hold,
        &wait_state_buckets(&metrics_after_hold),
        0.50,
    );
    let invocation_p99 = quantile_bound(
        &buckets_at_hold,
        &wait_state_buckets(&metrics_after_hold),
        0.99,
    );
    let resident_held = resident_bytes();
    resident_peak = resident_peak.max(resident_held);
    let waiting_held = state.queues.waiting();
    let live_held = state.telephony.live_calls();

    // The baseline again, with every caller waiting and the modules looping.
    let loaded_commits = commit_latencies(&state, &baseline_queue.sid, COMMITS).await;

    // Phase 3: dequeues from the head of the first queue, one at a time: first at a steady
    // rate, then as fast as they complete.
    let mut paced = Vec::with_capacity(PACED_DEQUEUES);
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / PACED_PER_SECOND));
    for _ in 0..PACED_DEQUEUES {
        ticks.tick().await;
        paced.push(dequeue_front(&state, &account.sid, &queue_sids[0]).await);
    }
    paced.sort();
    let mut dequeues = Vec::with_capacity(SEQUENTIAL_DEQUEUES);
    let sequential_started = Instant::now();
    for _ in 0..SEQUENTIAL_DEQUEUES {
        dequeues.push(dequeue_front(&state, &account.sid, &queue_sids[0]).await);
    }
    let sequential_in = sequential_started.elapsed();
    let sequential_rate = SEQUENTIAL_DEQUEUES as f64 / sequential_in.as_secs_f64();
    dequeues.sort();

    // Then from the second queue, by several dequeuers at once.
    let concurrent_started = Instant::now();
    let mut dequeuers = tokio::task::JoinSet::new();
    for _ in 0..DEQUEUE_TASKS {
        let (queues, account_sid, queue_sid) = (
            state.queues.clone(),
            account.sid.clone(),
            queue_sids[1].clone(),
        );
        dequeuers.spawn(async move {
            let mut latencies = Vec::new();
            for _ in 0..CONCURRENT_DEQUEUES / DEQUEUE_TASKS {
                let started = Instant::now();
                queues
                    .redirect_member(
                        &account_sid,
                        &queue_sid,
                        MemberRef::Front,
                        "module:hello",
                        "POST",
                    )
                    .await
                    .expect("dequeue the head");
                latencies.push(started.elapsed());
            }
            latencies
        });
    }
    let mut concurrent = Vec::new();
    while let Some(latencies) = dequeuers.join_next().await {
        concurrent.extend(latencies.expect("dequeuing task"));
    }
    let concurrent_in = concurrent_started.elapsed();
    let concurrent_rate = concurrent.len() as f64 / concurrent_in.as_secs_f64();
    concurrent.sort();
    let dequeued = PACED_DEQUEUES + SEQUENTIAL_DEQUEUES + concurrent.len();

    // The dequeued callers hear hello's line and hang up; the others keep waiting.
    let still_waiting = state.queues.waiting();
    let deadline = Instant::now() + Duration::from_secs(30);
    while state.telephony.live_calls() > still_waiting && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    state.writer.flush().await;
    let completed: i64 =
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM calls WHERE status = 'completed'")
            .fetch_one(state.db.pool())
            .await
            .expect("count calls");
    let members_left: i64 =
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM queue_members")
            .fetch_one(state.db.pool())
            .await
            .expect("count members");

    // Stop as the server does: queued callers keep their place, the rest are hung up.
    state.telephony.hang_up_all(Duration::from_secs(30)).await;
    state.writer.flush().await;
    state.meter.flush().await;
    state.db.close().await;
    web_task.abort();

    // One hold-music cycle: the announcement (a typical one for these queues), the interval,
    // and the gather's 1 s timeout.
    let announcement = state
        .media
        .synthesize(Speech {
            text: "Thank you for holding. You are number 2500 in line. You will be connected shortly. Press 0 to leave a message.".into(),
            voice: None,
            language: None,
        })
        .await
        .map_or(0, |clip| clip.duration_ms);
    let cycle_s = (announcement as f64 / 1000.0) + hold_interval as f64 + 1.0;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let waited = |met: bool| if met { "met" } else { "NOT met" };
    println!(
        "switchboard call-queue benchmark ({backend}, {cores} cores, system clock, media at real speed)"
    );
    println!(
        "  {callers} callers in {queue_count} queues of up to {LARGEST_MAX_SIZE}, wait-state module {wait_module}{}",
        if wait_module == "hold-music" {
            format!(" (interval {hold_interval} s: a cycle of ~{cycle_s:.1} s)")
        } else {
            " (answers once, then a 600 s pause)".to_string()
        }
    );
    println!(
        "  baseline, idle: writer round trip without a write p50 {:.2} ms, p99 {:.2} ms; durable one-row commit p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&round_trips, 0.50)),
        ms(percentile(&round_trips, 0.99)),
        ms(percentile(&idle_commits, 0.50)),
        ms(percentile(&idle_commits, 0.99)),
        ms(percentile(&idle_commits, 1.0)),
    );
    println!(
        "  enqueue: {enqueue_rate:>8.0} callers joined/s ({callers} joined and committed in {:.2} s; calls placed in {:.2} s, {PLACING_CONCURRENCY} at a time; {first_invocations} wait-state invocations by then)",
        enqueued_in.as_secs_f64(),
        placed_in.as_secs_f64(),
    );
    println!(
        "  hold ({:.0} s, {waiting_held} waiting, {live_held} calls live): wait-state module invoked {hold_rate:.0}/s ({hold_invocations} invocations, {hold_failures} not ok; p50 <= {:.2} ms, p99 <= {:.2} ms per invocation)",
        held.as_secs_f64(),
        invocation_p50 * 1000.0,
        invocation_p99 * 1000.0,
    );
    if wait_module == "hold-music" {
        println!(
            "        {:.2} invocations per waiting caller during the hold; a cycle of ~{cycle_s:.1} s fits {:.2} times in it",
            hold_invocations as f64 / waiting_held.max(1) as f64,
            held.as_secs_f64() / cycle_s,
        );
    }
    println!(
        "  resident size: {:.0} MB before the callers, {:.0} MB once all joined, {:.0} MB after the hold (peak {:.0} MB; target < {RESIDENT_TARGET_MB} MB: {}); {:.1} KB per waiting caller",
        mb(resident_before),
        mb(resident_at_hold),
        mb(resident_held),
        mb(resident_peak),
        waited(resident_peak < RESIDENT_TARGET_MB << 20),
        resident_held.saturating_sub(resident_before) as f64 / callers as f64 / 1024.0,
    );
    println!(
        "  baseline under the hold's load: durable one-row commit p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&loaded_commits, 0.50)),
        ms(percentile(&loaded_commits, 0.99)),
        ms(percentile(&loaded_commits, 1.0)),
    );
    let loaded_p99 = ms(percentile(&loaded_commits, 0.99));
    let paced_p99 = ms(percentile(&paced, 0.99));
    println!(
        "  dequeue (Members Front), {PACED_PER_SECOND}/s:        {PACED_PER_SECOND:>8} dequeues/s; p50 {:.2} ms, p99 {paced_p99:.2} ms, max {:.2} ms (target p99 < {DEQUEUE_P99_TARGET_MS} ms: {}); p99 {:.2}x the loaded commit's p99",
        ms(percentile(&paced, 0.50)),
        ms(percentile(&paced, 1.0)),
        waited(paced_p99 < DEQUEUE_P99_TARGET_MS),
        paced_p99 / loaded_p99,
    );
    let p99 = ms(percentile(&dequeues, 0.99));
    println!(
        "  dequeue (Members Front), one at a time: {sequential_rate:>8.0} dequeues/s; p50 {:.2} ms, p99 {p99:.2} ms, max {:.2} ms (target p99 < {DEQUEUE_P99_TARGET_MS} ms: {}); p99 {:.2}x the loaded commit's p99",
        ms(percentile(&dequeues, 0.50)),
        ms(percentile(&dequeues, 1.0)),
        waited(p99 < DEQUEUE_P99_TARGET_MS),
        p99 / loaded_p99,
    );
    println!(
        "  dequeue (Members Front), {DEQUEUE_TASKS} at once:    {concurrent_rate:>8.0} dequeues/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&concurrent, 0.50)),
        ms(percentile(&concurrent, 0.99)),
        ms(percentile(&concurrent, 1.0)),
    );
    println!(
        "  afterwards: {completed} of {dequeued} dequeued calls completed (ran module:hello), {members_left} members stored for {still_waiting} still waiting"
    );
}
