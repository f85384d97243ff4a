//! Work-distribution benchmark: TaskRouter-compatible task routing driven over real HTTP, with
//! 10,000 workers of varied attributes, 100 task queues with TargetWorkers expressions and one
//! workflow of several filters, on SQLite (or PostgreSQL with `BENCH_DATABASE_URL`).
//!
//! The host runs in-process (`Server::start` on 127.0.0.1:0 with a temporary data directory); an
//! account is made through the operator API and everything after that goes through the tenant API
//! under `/v1/Workspaces` with a reqwest client, as the reference's SDKs would. Client and server
//! share the machine's cores, in the baseline as in the measured phases.
//!
//! # The workload
//!
//! - Workers: `skills` (3 of `skill_0`..`skill_99`), `languages` (1 to 3 of en, es, fr, de, pt),
//!   `level` (1..=5), `region` (amer, emea, apac), all in the `Available` activity. Their `default`
//!   channel capacity is raised to 50 (`POST /Workers/{Sid}/Channels/default Capacity=50`, the
//!   largest allowed) so that the workers absorb every task of the run without anybody accepting
//!   or completing: the create answer is all that is measured, and answering reservations over
//!   HTTP would add requests that are not task creation. Reservations therefore stay pending for
//!   the whole phase (the workflow's reservation timeout is the maximum, 86,400 s, so none times
//!   out mid-run and sends its worker to the timeout activity).
//! - Queues: 10 "team" queues on languages, level and region (a fifth to two thirds of the
//!   workers each), which the workflow targets, and 90 skill queues (`skills HAS 'skill_17'`,
//!   `... AND level >= 3`, `languages HAS 'es' AND skills HAS ...`, `(... OR ...) AND level >= 2`),
//!   so each worker belongs to about five to ten queues whose ready index a reservation updates.
//! - Workflow: 10 filters on the task's `type` (one of them with an `IN` list, one with `OR`), each
//!   leading to a team queue and then, after 600 s, to a skill queue; one first step narrows the
//!   queue with `worker.level >= task.min_level`, another with `task.skill IN worker.skills`; a
//!   `default_filter` catches the 5 % of tasks of an unknown type. An eleventh filter (`type ==
//!   'ordered'`) targets a team queue with `order_by: worker.level DESC`; it is used only by the
//!   last phase.
//!
//! # Phases and figures
//!
//! - setup: workspaces, queues, workflow and workers made over HTTP, `BENCH_SETUP_CONCURRENCY`
//!   requests at a time: how long it took and the worker creation rate over each tenth of the
//!   workers (a slowdown as the workspace fills shows work that grows with it); then the time one
//!   more TaskQueue create takes once the workers exist (it recomputes memberships).
//! - baseline: `GET /v1/Workspaces/{WS}/Activities/{WA}`, a cheap authenticated read, at the same
//!   client concurrency as the task creation.
//! - throughput: `BENCH_TASKS` `POST /v1/Workspaces/{WS}/Tasks`, `BENCH_CONCURRENCY` at a time. The
//!   answer is given once the task and its reservation (when a worker is free) are committed, so a
//!   create answered `reserved` has gone from `POST Tasks` to `reservation.created`. Tasks/s, the
//!   ratio to the baseline (target: at least 0.5), how many were answered `reserved`, and the
//!   rate over each quarter of the run (pending reservations pile up during it, since nobody
//!   accepts). Checked afterwards through `GET /RealTimeStatistics` and `GET /Tasks?
//!   AssignmentStatus=reserved&PageSize=1`. Target: at least 5,000 tasks/s.
//!   It runs first in a second workspace with `BENCH_SMALL_WORKERS` workers (same queues, workflow
//!   and task mix), then with all the workers: a rate that does not drop with ten times the
//!   workers shows that selection does not scale with their number. The database only grows from
//!   phase to phase, so the larger workspace runs second, against the larger database. Each
//!   phase's tasks are canceled afterwards, so every phase starts without live reservations.
//! - writer: during each phase, an empty change is sent through the host's group-commit writer
//!   every 10 ms; its round trip (p50 / p99) is how long a batch takes to commit meanwhile.
//! - latency: tasks created one at a time (the floor), then at a paced `BENCH_RATE` per second
//!   (open loop) for `BENCH_PACED_SECONDS`, each request timed from send to answer: p50 / p99 /
//!   max. Target: p99 under 10 ms at 1,000 tasks/s. When the host sustains less than 4/3 of that
//!   rate, the paced run is repeated at half the measured throughput, to show the latency below
//!   saturation.
//! - order_by: `BENCH_ORDERED_TASKS` tasks to the `order_by` target in each workspace, which ranks
//!   the queue's eligible ready workers, so its rate shows what that ranking costs with 10,000 and
//!   with fewer workers.
//! - resident memory after setup and at the end (and on stderr at every phase, with the time since
//!   the start and the process id, to attach a profiler to one phase); the machine.
//!
//! Knobs and their defaults: `BENCH_WORKERS` (10,000), `BENCH_SMALL_WORKERS` (1,000; 0 leaves the
//! second workspace out), `BENCH_QUEUES` (100, at least 20), `BENCH_CAPACITY` (50), `BENCH_TASKS`
//! (20,000), `BENCH_CONCURRENCY` (64), `BENCH_SETUP_CONCURRENCY` (32), `BENCH_RATE` (1,000),
//! `BENCH_PACED_SECONDS` (5), `BENCH_ORDERED_TASKS` (500), `BENCH_DATABASE_URL` (unset: SQLite).
//!
//! Run with `cargo bench -p switchboard-host --bench routing`.

mod common;

use common::{
    bench_account, cpu_model, cpu_seconds, env_number, mb, ms, percentile, resident_bytes,
    written_bytes,
};

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_host::app::{AppState, Server};
use switchboard_host::config::Config;

const LANGUAGES: [&str; 5] = ["en", "es", "fr", "de", "pt"];
const REGIONS: [&str; 3] = ["amer", "emea", "apac"];
const SKILLS: usize = 100;
/// The queues the workflow's filters lead to first.
const TEAM_QUEUES: [&str; 10] = [
    "languages HAS 'en'",
    "languages HAS 'es' AND level >= 2",
    "languages HAS 'fr' OR languages HAS 'de'",
    "level >= 3",
    "languages HAS 'pt' OR level >= 4",
    "'en' IN languages AND region != 'apac'",
    "(languages HAS 'en' OR languages HAS 'es') AND level >= 2",
    "region == 'emea' OR region == 'apac'",
    "level <= 3",
    "languages HAS 'de' OR region == 'amer'",
];
const FILTERS: usize = TEAM_QUEUES.len();
/// Tasks created one at a time for the unloaded latency.
const SINGLE_TASKS: usize = 300;
const THROUGHPUT_TARGET: f64 = 5_000.0;
const P99_TARGET_MS: f64 = 10.0;
const RATIO_TARGET: f64 = 0.5;

/// Announces a phase on stderr with the time since the start, so a profiler can be attached to
/// (or its samples cut to) one phase.
fn phase(started: Instant, name: &str) {
    eprintln!(
        "[routing bench, pid {}] {:>7.2} s, resident {:.0} MB: {name}",
        std::process::id(),
        started.elapsed().as_secs_f64(),
        mb(resident_bytes())
    );
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// The tenant API, over HTTP with the account's Basic credentials.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    account_sid: String,
    auth_token: String,
}

/// What the benchmark reads from a task's create answer.
#[derive(Deserialize)]
struct TaskAnswer {
    sid: String,
    assignment_status: String,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
        let response = request
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            Err(format!("{status}: {body}"))
        }
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<Value, String> {
        self.send(self.http.post(self.url(path)).form(form))
            .await?
            .json()
            .await
            .map_err(|e| format!("answer to POST {path} is not JSON: {e}"))
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        self.send(self.http.get(self.url(path)))
            .await?
            .json()
            .await
            .map_err(|e| format!("answer to GET {path} is not JSON: {e}"))
    }

    /// A GET whose answer is read but not parsed (the baseline).
    async fn get_body(&self, path: &str) -> Result<usize, String> {
        self.send(self.http.get(self.url(path)))
            .await?
            .bytes()
            .await
            .map(|b| b.len())
            .map_err(|e| format!("answer to GET {path} was cut: {e}"))
    }

    async fn create_task(&self, ws: &str, workflow: &str, attributes: &str) -> TaskAnswer {
        let path = format!("/v1/Workspaces/{ws}/Tasks");
        self.send(
            self.http
                .post(self.url(&path))
                .form(&[("WorkflowSid", workflow), ("Attributes", attributes)]),
        )
        .await
        .unwrap_or_else(|e| panic!("POST Tasks: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("POST Tasks answered something other than a task: {e}"))
    }

    async fn cancel_task(&self, ws: &str, task: &str) {
        let path = format!("/v1/Workspaces/{ws}/Tasks/{task}");
        self.post(
            &path,
            &[
                ("AssignmentStatus", "canceled"),
                ("Reason", "benchmark phase over"),
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("cancel a task: {e}"));
    }
}

fn sid_of(value: &Value) -> String {
    value
        .get("sid")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no sid in {value}"))
        .to_string()
}

/// Requests made `concurrency` at a time until `count` are done: each one's outcome and when it
/// finished, in finishing order.
struct Run<T> {
    elapsed: Duration,
    done: Vec<(Duration, T)>,
}

impl<T> Run<T> {
    fn rate(&self) -> f64 {
        self.done.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The rate over each of `parts` equal shares of the requests, in finishing order.
    fn rates(&self, parts: usize) -> Vec<f64> {
        let n = self.done.len();
        (0..parts)
            .map(|p| {
                let (from, to) = (p * n / parts, (p + 1) * n / parts);
                if to == from {
                    return 0.0;
                }
                let start = if from == 0 {
                    Duration::ZERO
                } else {
                    self.done[from - 1].0
                };
                let span = self.done[to - 1].0.saturating_sub(start);
                (to - from) as f64 / span.as_secs_f64().max(1e-9)
            })
            .collect()
    }
}

/// Makes `count` requests (`request(i)` for i in 0..count), `concurrency` at a time.
async fn drive<F, Fut, T>(count: usize, concurrency: usize, request: F) -> Run<T>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = T> + Send,
    T: Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (next, request) = (next.clone(), request.clone());
        loops.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return done;
                }
                let outcome = request(i).await;
                done.push((started.elapsed(), outcome));
            }
        });
    }
    let mut done = Vec::with_capacity(count);
    while let Some(part) = loops.join_next().await {
        done.extend(part.expect("request loop"));
    }
    let elapsed = started.elapsed();
    done.sort_by_key(|(at, _)| *at);
    Run { elapsed, done }
}

/// Times an empty change through the host's group-commit writer every 10 ms until stopped: it is
/// acknowledged once the batch it joins is committed, so under load it measures how long the
/// writer takes to commit one batch (plus the wait for the batch in progress). Also notes the
/// process's CPU time meanwhile.
struct WriterProbe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Duration>>,
    started: Instant,
    cpu: f64,
}

/// What a [`WriterProbe`] saw: the writer's round trip p50 and p99, and the share of the
/// machine's cores the process kept busy.
struct Probed {
    p50: Duration,
    p99: Duration,
    busy: f64,
}

impl WriterProbe {
    fn start(state: &AppState) -> WriterProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, state) = (stop.clone(), state.clone());
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let sent = Instant::now();
                state.writer.flush().await;
                samples.push(sent.elapsed());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            samples.sort();
            samples
        });
        WriterProbe {
            stop,
            task,
            started: Instant::now(),
            cpu: cpu_seconds(),
        }
    }

    async fn finish(self) -> Probed {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let busy = (cpu_seconds() - self.cpu)
            / (self.started.elapsed().as_secs_f64() * cores as f64).max(1e-9);
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.task.await.expect("writer probe");
        Probed {
            p50: percentile(&samples, 0.50),
            p99: percentile(&samples, 0.99),
            busy,
        }
    }
}

fn worker_attributes(i: usize) -> String {
    let mut rng = StdRng::seed_from_u64(0x5eed_0000 + i as u64);
    let skills: Vec<String> = rand::seq::index::sample(&mut rng, SKILLS, 3)
        .iter()
        .map(|k| format!("skill_{k}"))
        .collect();
    let spoken = rng.random_range(1..=3);
    let languages: Vec<&str> = rand::seq::index::sample(&mut rng, LANGUAGES.len(), spoken)
        .iter()
        .map(|l| LANGUAGES[l])
        .collect();
    json!({
        "skills": skills,
        "languages": languages,
        "level": rng.random_range(1..=5),
        "region": REGIONS[rng.random_range(0..REGIONS.len())],
        "contact_uri": format!("client:agent{i}"),
    })
    .to_string()
}

/// TargetWorkers of the skill queue `q` (q >= 10).
fn skill_queue(q: usize) -> String {
    let skill = q % SKILLS;
    let language = LANGUAGES[q % LANGUAGES.len()];
    match q % 4 {
        0 => format!("skills HAS 'skill_{skill}'"),
        1 => format!("skills HAS 'skill_{skill}' AND level >= 3"),
        2 => format!("languages HAS '{language}' AND skills HAS 'skill_{skill}'"),
        _ => format!(
            "(skills HAS 'skill_{skill}' OR skills HAS 'skill_{}') AND level >= 2",
            (skill + 50) % SKILLS
        ),
    }
}

/// The task mix: a filter's type for 95 %, an unknown type (the default filter) for the rest.
fn task_attributes(seed: u64, count: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let kind = if rng.random_range(0..100) < 5 {
                "other".to_string()
            } else {
                format!("t{}", rng.random_range(0..FILTERS))
            };
            let class = ["gold", "silver", "bronze"][rng.random_range(0..3)];
            json!({
                "type": kind,
                "skill": format!("skill_{}", rng.random_range(0..SKILLS)),
                "min_level": rng.random_range(1..=3),
                "priority_class": class,
                "escalated": false,
                "customer": format!("customer{i}"),
            })
            .to_string()
        })
        .collect()
}

fn ordered_attributes(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| json!({"type": "ordered", "customer": format!("customer{i}")}).to_string())
        .collect()
}

struct Workspace {
    sid: String,
    workflow_sid: String,
    available_sid: String,
    workers: usize,
    setup: Duration,
    worker_rates: Vec<f64>,
}

async fn setup_workspace(
    api: &Api,
    name: &str,
    workers: usize,
    queues: usize,
    capacity: usize,
    concurrency: usize,
) -> Workspace {
    let started = Instant::now();
    let workspace = api
        .post("/v1/Workspaces", &[("FriendlyName", name)])
        .await
        .expect("create the workspace");
    let ws = sid_of(&workspace);
    assert_eq!(
        workspace.get("multi_task_enabled"),
        Some(&json!(true)),
        "a workspace is multitasking by default"
    );
    let activities = api
        .get(&format!(
            "/v1/Workspaces/{ws}/Activities?FriendlyName=Available"
        ))
        .await
        .expect("list activities");
    let available_sid = activities
        .get("activities")
        .and_then(|a| a.get(0))
        .map(sid_of)
        .expect("an Available activity");

    let mut queue_sids = Vec::with_capacity(queues);
    for q in 0..queues {
        let expression = match TEAM_QUEUES.get(q) {
            Some(team) => team.to_string(),
            None => skill_queue(q),
        };
        let queue = api
            .post(
                &format!("/v1/Workspaces/{ws}/TaskQueues"),
                &[
                    ("FriendlyName", &format!("queue {q}")),
                    ("TargetWorkers", &expression),
                ],
            )
            .await
            .expect("create a task queue");
        queue_sids.push(sid_of(&queue));
    }

    let mut filters = Vec::new();
    for f in 0..FILTERS {
        let expression = match f {
            8 => "type == 't8' AND priority_class IN ['gold', 'silver']".to_string(),
            9 => "type == 't9' OR escalated == true".to_string(),
            _ => format!("type == 't{f}'"),
        };
        let mut first = json!({"queue": queue_sids[f], "timeout": 600});
        match f {
            1 => first["expression"] = json!("worker.level >= task.min_level"),
            2 => first["expression"] = json!("task.skill IN worker.skills"),
            4 => first["priority"] = json!(5),
            _ => {}
        }
        filters.push(json!({
            "filter_friendly_name": format!("type t{f}"),
            "expression": expression,
            "targets": [first, {"queue": queue_sids[FILTERS + f]}],
        }));
    }
    filters.push(json!({
        "filter_friendly_name": "ordered",
        "expression": "type == 'ordered'",
        "targets": [{"queue": queue_sids[3], "order_by": "worker.level DESC"}],
    }));
    let configuration = json!({
        "task_routing": {"filters": filters, "default_filter": {"queue": queue_sids[0]}}
    })
    .to_string();
    let workflow = api
        .post(
            &format!("/v1/Workspaces/{ws}/Workflows"),
            &[
                ("FriendlyName", "bench"),
                ("Configuration", &configuration),
                ("TaskReservationTimeout", "86400"),
            ],
        )
        .await
        .expect("create the workflow");
    let workflow_sid = sid_of(&workflow);

    let capacity = capacity.to_string();
    let made = {
        let (api, ws, available) = (api.clone(), ws.clone(), available_sid.clone());
        drive(workers, concurrency, move |i| {
            let (api, ws, available, capacity) =
                (api.clone(), ws.clone(), available.clone(), capacity.clone());
            async move {
                let worker = api
                    .post(
                        &format!("/v1/Workspaces/{ws}/Workers"),
                        &[
                            ("FriendlyName", &format!("agent{i}")),
                            ("ActivitySid", &available),
                            ("Attributes", &worker_attributes(i)),
                        ],
                    )
                    .await
                    .unwrap_or_else(|e| panic!("create a worker: {e}"));
                let sid = sid_of(&worker);
                api.post(
                    &format!("/v1/Workspaces/{ws}/Workers/{sid}/Channels/default"),
                    &[("Capacity", &capacity)],
                )
                .await
                .unwrap_or_else(|e| panic!("set a worker's capacity: {e}"));
            }
        })
        .await
    };
    Workspace {
        sid: ws,
        workflow_sid,
        available_sid,
        workers,
        setup: started.elapsed(),
        worker_rates: made.rates(10),
    }
}

/// Creates one task per attribute text, `concurrency` at a time: the run and how many were
/// answered `reserved`.
async fn create_tasks(
    api: &Api,
    space: &Workspace,
    attributes: Arc<Vec<String>>,
    concurrency: usize,
) -> (Run<TaskAnswer>, usize) {
    let (api, ws, workflow) = (api.clone(), space.sid.clone(), space.workflow_sid.clone());
    let run = drive(attributes.len(), concurrency, move |i| {
        let (api, ws, workflow, attributes) = (
            api.clone(),
            ws.clone(),
            workflow.clone(),
            attributes.clone(),
        );
        async move { api.create_task(&ws, &workflow, &attributes[i]).await }
    })
    .await;
    let reserved = run
        .done
        .iter()
        .filter(|(_, t)| t.assignment_status == "reserved")
        .count();
    (run, reserved)
}

/// Tasks reserved now, from the workspace's realtime statistics.
async fn reserved_now(api: &Api, ws: &str) -> i64 {
    let stats = api
        .get(&format!("/v1/Workspaces/{ws}/RealTimeStatistics"))
        .await
        .expect("realtime statistics");
    stats
        .pointer("/tasks_by_status/reserved")
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or_else(|| panic!("no tasks_by_status.reserved in {stats}"))
}

async fn cancel_all(api: &Api, ws: &str, tasks: Vec<String>, concurrency: usize) -> Run<()> {
    let tasks = Arc::new(tasks);
    let (api, ws) = (api.clone(), ws.to_string());
    drive(tasks.len(), concurrency, move |i| {
        let (api, ws, tasks) = (api.clone(), ws.clone(), tasks.clone());
        async move { api.cancel_task(&ws, &tasks[i]).await }
    })
    .await
}

/// What a paced run saw.
struct Paced {
    rate: usize,
    seconds: usize,
    sent_in: Duration,
    elapsed: Duration,
    /// Sorted.
    latencies: Vec<Duration>,
    /// The requests answered later than the p99 target: when each was sent (from the phase's
    /// start) and how long it took, in the order sent. Stalls show up as runs of these.
    late: Vec<(Duration, Duration)>,
    reserved: usize,
    reserved_stats: i64,
    writer: Probed,
}

/// Creates tasks at `rate` per second for `seconds` (open loop: each request is sent on time
/// whether or not the earlier ones were answered), timing each from send to answer; the tasks are
/// canceled afterwards.
async fn paced(
    api: &Api,
    state: &AppState,
    space: &Workspace,
    rate: usize,
    seconds: usize,
    seed: u64,
    concurrency: usize,
) -> Paced {
    let count = rate * seconds;
    let mix = Arc::new(task_attributes(seed, count));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut requests = tokio::task::JoinSet::new();
    let probe = WriterProbe::start(state);
    let started = Instant::now();
    for i in 0..count {
        ticker.tick().await;
        let (api, ws, workflow, mix) = (
            api.clone(),
            space.sid.clone(),
            space.workflow_sid.clone(),
            mix.clone(),
        );
        requests.spawn(async move {
            let sent = Instant::now();
            let answer = api.create_task(&ws, &workflow, &mix[i]).await;
            (sent - started, sent.elapsed(), answer)
        });
    }
    let sent_in = started.elapsed();
    let mut latencies = Vec::with_capacity(count);
    let mut late = Vec::new();
    let mut sids = Vec::with_capacity(count);
    let mut reserved = 0;
    while let Some(done) = requests.join_next().await {
        let (offset, latency, answer) = done.expect("paced request");
        latencies.push(latency);
        if ms(latency) >= P99_TARGET_MS {
            late.push((offset, latency));
        }
        reserved += usize::from(answer.assignment_status == "reserved");
        sids.push(answer.sid);
    }
    let elapsed = started.elapsed();
    let writer = probe.finish().await;
    latencies.sort();
    late.sort();
    let reserved_stats = reserved_now(api, &space.sid).await;
    cancel_all(api, &space.sid, sids, concurrency).await;
    Paced {
        rate,
        seconds,
        sent_in,
        elapsed,
        latencies,
        late,
        reserved,
        reserved_stats,
        writer,
    }
}

/// The late requests of a paced run as stalls: runs of late requests sent less than 100 ms
/// apart. Says how many runs there were and describes the three with the most late requests.
fn stalls(late: &[(Duration, Duration)]) -> String {
    let mut runs: Vec<(Duration, Duration, usize, Duration)> = Vec::new();
    for &(offset, latency) in late {
        match runs.last_mut() {
            Some((_, last, count, worst)) if offset - *last < Duration::from_millis(100) => {
                *last = offset;
                *count += 1;
                *worst = (*worst).max(latency);
            }
            _ => runs.push((offset, offset, 1, latency)),
        }
    }
    if runs.is_empty() {
        return "none".into();
    }
    let total = runs.len();
    runs.sort_by_key(|&(_, _, count, _)| std::cmp::Reverse(count));
    let largest = runs
        .iter()
        .take(3)
        .map(|(first, last, count, worst)| {
            format!(
                "at {:.2} s for {:.0} ms ({count} late, worst {:.1} ms)",
                first.as_secs_f64(),
                ms(*last - *first),
                ms(*worst)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let plural = if total == 1 { "" } else { "s" };
    format!("{total} run{plural} of them, the largest {largest}")
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
    let workers = env_number("BENCH_WORKERS", 10_000);
    let small_workers = env_number("BENCH_SMALL_WORKERS", 1_000);
    let queues = env_number("BENCH_QUEUES", 100);
    let tasks = env_number("BENCH_TASKS", 20_000);
    let concurrency = env_number("BENCH_CONCURRENCY", 64);
    let setup_concurrency = env_number("BENCH_SETUP_CONCURRENCY", 32);
    let rate = env_number("BENCH_RATE", 1_000).max(1);
    let paced_seconds = env_number("BENCH_PACED_SECONDS", 5);
    let ordered_tasks = env_number("BENCH_ORDERED_TASKS", 500);
    let capacity = env_number("BENCH_CAPACITY", 50);
    assert!(
        queues >= 2 * FILTERS,
        "BENCH_QUEUES must be at least {}",
        2 * FILTERS
    );

    let bench_started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = std::env::var("BENCH_DATABASE_URL").ok();
    let backend = if database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let config = Config {
        bind: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.path().to_path_buf(),
        database_url,
        admin_token: Some("bench".into()),
        ..Config::default()
    };
    let server = Server::start(config).await.expect("start the host");
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client");
    let (account_sid, auth_token) = bench_account(&http, &base).await;
    let api = Api {
        http,
        base,
        account_sid,
        auth_token,
    };

    // Setup.
    phase(bench_started, "setup");
    let resident_start = resident_bytes();
    let large = setup_workspace(
        &api,
        "bench-large",
        workers,
        queues,
        capacity,
        setup_concurrency,
    )
    .await;
    let small = if small_workers > 0 {
        Some(
            setup_workspace(
                &api,
                "bench-small",
                small_workers,
                queues,
                capacity,
                setup_concurrency,
            )
            .await,
        )
    } else {
        None
    };
    let started = Instant::now();
    api.post(
        &format!("/v1/Workspaces/{}/TaskQueues", large.sid),
        &[
            ("FriendlyName", "late queue"),
            ("TargetWorkers", "skills HAS 'skill_42' AND level >= 4"),
        ],
    )
    .await
    .expect("create a queue once the workers exist");
    let late_queue = started.elapsed();
    let resident_setup = resident_bytes();

    // Baseline: a cheap authenticated read at the same concurrency.
    phase(bench_started, "baseline");
    let probe = WriterProbe::start(&server.state);
    let baseline = {
        let (api, path) = (
            api.clone(),
            format!(
                "/v1/Workspaces/{}/Activities/{}",
                large.sid, large.available_sid
            ),
        );
        drive(tasks.max(1), concurrency, move |_| {
            let (api, path) = (api.clone(), path.clone());
            async move {
                api.get_body(&path)
                    .await
                    .unwrap_or_else(|e| panic!("baseline GET: {e}"))
            }
        })
        .await
    };
    let baseline_rate = baseline.rate();
    let idle_writer = probe.finish().await;

    // Throughput with fewer workers, first: the database grows with every phase, so the run with
    // every worker works against the larger one (the comparison errs against it).
    let mix = Arc::new(task_attributes(1, tasks));
    let small_run = match &small {
        Some(space) => {
            phase(bench_started, "throughput, fewer workers");
            let probe = WriterProbe::start(&server.state);
            let (run, reserved) = create_tasks(&api, space, mix.clone(), concurrency).await;
            let writer = probe.finish().await;
            let rate = run.rate();
            let quarters = run.rates(4);
            let stats = reserved_now(&api, &space.sid).await;
            cancel_all(
                &api,
                &space.sid,
                run.done.into_iter().map(|(_, t)| t.sid).collect(),
                concurrency,
            )
            .await;
            Some((rate, quarters, reserved, stats, writer))
        }
        None => None,
    };

    // Throughput with every worker.
    phase(bench_started, "throughput, every worker");
    let probe = WriterProbe::start(&server.state);
    let written_before = written_bytes();
    let (run, reserved) = create_tasks(&api, &large, mix.clone(), concurrency).await;
    let large_writer = probe.finish().await;
    let large_written = written_bytes().saturating_sub(written_before);
    let large_rate = run.rate();
    let large_quarters = run.rates(4);
    let large_reserved_stats = reserved_now(&api, &large.sid).await;
    let resident_before_list = resident_bytes();
    let started = Instant::now();
    let listed = api
        .get(&format!(
            "/v1/Workspaces/{}/Tasks?AssignmentStatus=reserved&PageSize=1",
            large.sid
        ))
        .await
        .expect("list reserved tasks");
    let list_time = started.elapsed();
    let resident_after_list = resident_bytes();
    let listed_one = listed
        .get("tasks")
        .and_then(Value::as_array)
        .is_some_and(|t| t.len() == 1 && t[0]["assignment_status"] == "reserved");
    let large_elapsed = run.elapsed;
    phase(bench_started, "cancel");
    let cancel = cancel_all(
        &api,
        &large.sid,
        run.done.into_iter().map(|(_, t)| t.sid).collect(),
        concurrency,
    )
    .await;
    let after_cancel = reserved_now(&api, &large.sid).await;

    // Latency one request at a time (the floor), then at a paced rate, with every worker.
    phase(bench_started, "one at a time");
    let single_mix = Arc::new(task_attributes(3, SINGLE_TASKS));
    let mut single = Vec::with_capacity(SINGLE_TASKS);
    let mut single_sids = Vec::with_capacity(SINGLE_TASKS);
    for attributes in single_mix.iter() {
        let sent = Instant::now();
        let answer = api
            .create_task(&large.sid, &large.workflow_sid, attributes)
            .await;
        single.push(sent.elapsed());
        single_sids.push(answer.sid);
    }
    single.sort();
    cancel_all(&api, &large.sid, single_sids, concurrency).await;
    phase(bench_started, "paced");
    let paced_main = paced(
        &api,
        &server.state,
        &large,
        rate,
        paced_seconds,
        2,
        concurrency,
    )
    .await;
    // Below saturation too, when the paced rate is more than the host sustains here.
    let slower = (large_rate / 2.0).floor() as usize;
    let paced_slower = if paced_seconds > 0 && slower > 0 && (slower as f64) < rate as f64 * 0.75 {
        phase(bench_started, "paced, below saturation");
        Some(
            paced(
                &api,
                &server.state,
                &large,
                slower,
                paced_seconds,
                4,
                concurrency,
            )
            .await,
        )
    } else {
        None
    };

    // A target with order_by ranks every eligible ready worker of its queue.
    let mut ordered = Vec::new();
    if ordered_tasks > 0 {
        phase(bench_started, "order_by");
        let ordered_mix = Arc::new(ordered_attributes(ordered_tasks));
        for space in std::iter::once(&large).chain(small.as_ref()) {
            let (run, reserved) = create_tasks(&api, space, ordered_mix.clone(), concurrency).await;
            ordered.push((space.workers, run.rate(), reserved));
        }
    }
    let resident_end = resident_bytes();
    phase(bench_started, "done");
    server.stop().await.expect("stop the host");

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let rates = |r: &[f64]| {
        r.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!(
        "switchboard work-distribution benchmark ({backend}, {cores} cores: {}; client in the same process)",
        cpu_model()
    );
    println!(
        "  {workers} workers (and {small_workers} in a second workspace), {queues} task queues, one workflow of {} filters + default; worker capacity {capacity} on `default`; {concurrency} requests at a time",
        FILTERS + 1
    );
    for space in std::iter::once(&large).chain(small.as_ref()) {
        println!(
            "  setup, {} workers: {:.1} s over HTTP ({setup_concurrency} at a time: worker create + channel capacity); per tenth of the workers, pairs/s: {}",
            space.workers,
            space.setup.as_secs_f64(),
            rates(&space.worker_rates)
        );
    }
    println!(
        "  one more TaskQueue create ({} queues then) with {workers} workers in the workspace: {:.1} ms",
        queues + 1,
        ms(late_queue)
    );
    println!(
        "  baseline: GET Activities/{{Sid}} (authenticated no-op): {baseline_rate:>8.0} requests/s ({} in {:.2} s); meanwhile the process used {:.0} % of the cores, and a writer round trip (no other writes) took p50 {:.2} ms, p99 {:.2} ms",
        baseline.done.len(),
        baseline.elapsed.as_secs_f64(),
        idle_writer.busy * 100.0,
        ms(idle_writer.p50),
        ms(idle_writer.p99),
    );
    let ratio = large_rate / baseline_rate;
    println!(
        "  POST Tasks -> reservation.created, {workers} workers: {large_rate:>8.0} tasks/s ({tasks} in {:.2} s; {reserved} answered reserved; {:.2}x the baseline: target >= {RATIO_TARGET}x {}; target >= {THROUGHPUT_TARGET:.0}/s {})",
        large_elapsed.as_secs_f64(),
        ratio,
        met(ratio >= RATIO_TARGET),
        met(large_rate >= THROUGHPUT_TARGET),
    );
    println!(
        "        per quarter of the run (pending reservations piling up to {tasks}), tasks/s: {}; meanwhile {:.0} % of the cores busy, group-commit writer round trip p50 {:.2} ms, p99 {:.2} ms; {:.0} MB written to storage, {:.1} KB per task",
        rates(&large_quarters),
        large_writer.busy * 100.0,
        ms(large_writer.p50),
        ms(large_writer.p99),
        mb(large_written),
        large_written as f64 / 1024.0 / tasks.max(1) as f64,
    );
    println!(
        "        afterwards: {large_reserved_stats} tasks reserved by RealTimeStatistics; GET Tasks?AssignmentStatus=reserved&PageSize=1 {} in {:.1} ms (resident size {:.0} -> {:.0} MB); canceled all at {:.0}/s, {after_cancel} left reserved",
        if listed_one {
            "answered one reserved task"
        } else {
            "did NOT answer one reserved task"
        },
        ms(list_time),
        mb(resident_before_list),
        mb(resident_after_list),
        cancel.rate(),
    );
    if let Some((rate, quarters, reserved, stats, writer)) = &small_run {
        println!(
            "  POST Tasks -> reservation.created, {small_workers} workers: {rate:>8.0} tasks/s ({reserved} answered reserved, {stats} by RealTimeStatistics; per quarter {}; {:.0} % of the cores busy, writer round trip p50 {:.2} ms); {workers} workers at {:.2}x this rate",
            rates(quarters),
            writer.busy * 100.0,
            ms(writer.p50),
            large_rate / rate
        );
    }
    println!(
        "  one at a time, {workers} workers: POST Tasks answered p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({SINGLE_TASKS} tasks)",
        ms(percentile(&single, 0.50)),
        ms(percentile(&single, 0.99)),
        ms(percentile(&single, 1.0)),
    );
    for run in std::iter::once(&paced_main).chain(paced_slower.as_ref()) {
        if run.latencies.is_empty() {
            continue;
        }
        let p99 = ms(percentile(&run.latencies, 0.99));
        println!(
            "  at {} tasks/s for {} s ({} sent in {:.2} s, all answered in {:.2} s), {workers} workers: POST Tasks answered (task and reservation committed) p50 {:.2} ms, p99 {p99:.2} ms, max {:.2} ms (target p99 < {P99_TARGET_MS} ms at {rate}/s: {}); {} answered reserved, {} by RealTimeStatistics; {:.0} % of the cores busy, writer round trip p50 {:.2} ms, p99 {:.2} ms; answers of {P99_TARGET_MS} ms or more: {}",
            run.rate,
            run.seconds,
            run.latencies.len(),
            run.sent_in.as_secs_f64(),
            run.elapsed.as_secs_f64(),
            ms(percentile(&run.latencies, 0.50)),
            ms(percentile(&run.latencies, 1.0)),
            if run.rate == rate {
                met(p99 < P99_TARGET_MS)
            } else {
                "not the target's rate"
            },
            run.reserved,
            run.reserved_stats,
            run.writer.busy * 100.0,
            ms(run.writer.p50),
            ms(run.writer.p99),
            stalls(&run.late),
        );
    }
    for (count, rate, reserved) in &ordered {
        println!(
            "  target with order_by (ranks the queue's ready workers), {count} workers: {rate:>8.0} tasks/s ({reserved} of {ordered_tasks} answered reserved)"
        );
    }
    println!(
        "  resident size: {:.0} MB at start, {:.0} MB after setup, {:.0} MB at the end",
        mb(resident_start),
        mb(resident_setup),
        mb(resident_end)
    );
}
