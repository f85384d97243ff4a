//! Presence benchmark: many registered clients heartbeating while calls dial them.
//!
//! The host runs in this process (`Server::start` on 127.0.0.1:0, SQLite in a temporary
//! directory, or PostgreSQL with `BENCH_DATABASE_URL`). The clients run in a child process (this
//! same binary, started again in the client role), so the host's memory is measured alone and
//! neither process needs more than its own share of file descriptors. Each client is a real
//! WebSocket that presents its own access token (identities `c0`, `c1`, ...), heartbeats every
//! `BENCH_HEARTBEAT_MS`, and rejects every call that rings it.
//!
//! Phases:
//! - registration: `BENCH_CLIENTS` clients connect and register; the time it takes, and the host's
//!   resident memory with all of them connected against before (target: under 300 MB).
//! - lookups: in-process `Presence::lookup` of online identities on one thread, against the same
//!   number of lookups in a bare `RwLock<HashMap>` holding the same keys (the baseline).
//!   Target: at least 1,000,000 lookups/s.
//! - dial → ringing: `BENCH_CALLS` sim calls, paced at `BENCH_CALL_RATE` per second, each answered
//!   by an HTTP application (in this process) with `<Dial><Client>cN</Client></Dial>`. Latency runs
//!   from the moment the application hands the document over to the moment the client receives
//!   `incoming` (both stamped with the system clock, the same for both processes). Target: p99
//!   under 5 ms.
//! - the machine.
//!
//! Knobs: `BENCH_CLIENTS` (10,000), `BENCH_HEARTBEAT_MS` (10,000), `BENCH_CALLS` (2,000),
//! `BENCH_CALL_RATE` (200), `BENCH_LOOKUPS` (2,000,000), `BENCH_DATABASE_URL`.
//!
//! Run with `cargo bench -p switchboard-host --bench presence`.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_host::app::Server;
use switchboard_host::config::Config;
use switchboard_host::presence::token::{TokenSpec, mint};

mod common;

use common::{bench_account, cpu_model, env_number, mb, ms, percentile, resident_bytes};

const RSS_TARGET_MB: f64 = 300.0;
const LOOKUP_TARGET: f64 = 1_000_000.0;
const RING_P99_TARGET_MS: f64 = 5.0;

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn main() {
    // As the host's binary does.
    switchboard_host::memory::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    if std::env::var("BENCH_ROLE").as_deref() == Ok("clients") {
        runtime.block_on(clients());
    } else {
        runtime.block_on(host());
    }
}

/// The client role: registers every client, reports `ready`, then heartbeats and reports each ring
/// as `ring FROM UNIX_US` on stdout until stdin closes.
async fn clients() {
    let url = std::env::var("BENCH_URL").expect("BENCH_URL");
    let count = env_number("BENCH_CLIENTS", 10_000);
    let heartbeat_ms = env_number("BENCH_HEARTBEAT_MS", 10_000) as u64;
    let spec = TokenSpec {
        account_sid: std::env::var("BENCH_ACCOUNT").expect("BENCH_ACCOUNT"),
        key_sid: std::env::var("BENCH_KEY_SID").expect("BENCH_KEY_SID"),
        key_secret: std::env::var("BENCH_KEY_SECRET").expect("BENCH_KEY_SECRET"),
        identity: String::new(),
        incoming: true,
        outgoing_application_sid: None,
        issued_at: (unix_us() / 1_000_000) as i64,
        ttl_seconds: 3600,
    };
    let (rings, mut ring_lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (registered, mut registrations) = tokio::sync::mpsc::unbounded_channel::<()>();
    let connecting = Arc::new(tokio::sync::Semaphore::new(200));
    for index in 0..count {
        let token = mint(&TokenSpec {
            identity: format!("c{index}"),
            ..spec.clone()
        })
        .expect("token");
        let url = format!("{url}/v1/Presence/Connect?token={token}");
        let rings = rings.clone();
        let registered = registered.clone();
        let connecting = connecting.clone();
        tokio::spawn(async move {
            let permit = connecting.acquire_owned().await.expect("permit");
            let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                .read_buffer_size(4096)
                .write_buffer_size(0);
            let (mut socket, _) =
                tokio_tungstenite::connect_async_with_config(url, Some(config), false)
                    .await
                    .expect("connect a client");
            drop(permit);
            // Spread heartbeats over the interval.
            let offset = heartbeat_ms * (index as u64 % 100) / 100;
            let mut beat = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_millis(offset + 1),
                Duration::from_millis(heartbeat_ms.max(1)),
            );
            loop {
                tokio::select! {
                    message = socket.next() => {
                        let Some(Ok(message)) = message else { return };
                        let Ok(text) = message.to_text() else { continue };
                        let Ok(value) = serde_json::from_str::<Value>(text) else { continue };
                        match value["type"].as_str() {
                            Some("registered") => { let _ = registered.send(()); }
                            Some("incoming") => {
                                let received = unix_us();
                                let from = value["from"].as_str().unwrap_or_default();
                                let _ = rings.send(format!("ring {from} {received}"));
                                let reject = json!({"type": "reject", "call_sid": value["call_sid"]});
                                let _ = socket.send(reject.to_string().into()).await;
                            }
                            _ => {}
                        }
                    }
                    _ = beat.tick() => {
                        let _ = socket.send(json!({"type": "heartbeat"}).to_string().into()).await;
                    }
                }
            }
        });
    }
    for _ in 0..count {
        registrations.recv().await.expect("a registration");
    }
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "ready");
    let _ = stdout.flush();
    tokio::spawn(async move {
        while let Some(line) = ring_lines.recv().await {
            let mut stdout = std::io::stdout();
            let _ = writeln!(stdout, "{line}");
            let _ = stdout.flush();
        }
    });
    // The host closes stdin when it is done.
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    })
    .await;
}

/// When the application handed over each call's document, by the caller's number.
type Handed = Arc<Mutex<HashMap<String, u64>>>;

/// The HTTP application: dials the client named by the caller's number.
async fn application(handed: Handed) -> std::net::SocketAddr {
    use axum::extract::State;
    use axum::routing::post;
    async fn dial(
        State(handed): State<Handed>,
        axum::Form(form): axum::Form<HashMap<String, String>>,
    ) -> ([(&'static str, &'static str); 1], String) {
        let from = form.get("From").cloned().unwrap_or_default();
        let index = from.trim_start_matches("+1555");
        let body = format!(
            "<Response><Dial timeout=\"5\"><Client>c{}</Client></Dial></Response>",
            index.trim_start_matches('0').parse::<u64>().unwrap_or(0)
        );
        if let Ok(mut handed) = handed.lock() {
            handed.insert(from, unix_us());
        }
        ([("content-type", "text/xml")], body)
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the application");
    let addr = listener.local_addr().expect("address");
    let router = axum::Router::new()
        .route("/dial", post(dial))
        .with_state(handed);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

async fn host() {
    let clients = env_number("BENCH_CLIENTS", 10_000);
    let heartbeat_ms = env_number("BENCH_HEARTBEAT_MS", 10_000);
    let clients = clients.max(1);
    // Each call dials a different client, so every caller's number names one call.
    let calls = env_number("BENCH_CALLS", 2_000).min(clients);
    let call_rate = env_number("BENCH_CALL_RATE", 200).max(1);
    let lookups = env_number("BENCH_LOOKUPS", 2_000_000);

    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = std::env::var("BENCH_DATABASE_URL").ok();
    let backend = if database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let mut config = Config {
        bind: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.path().to_path_buf(),
        database_url,
        admin_token: Some("bench".into()),
        ..Config::default()
    };
    config.presence.lease_seconds = 120;
    let server = Server::start(config).await.expect("start the host");
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let (sid, token) = bench_account(&http, &base).await;
    let key: Value = http
        .post(format!("{base}/v1/Keys"))
        .basic_auth(&sid, Some(&token))
        .form(&[("FriendlyName", "bench")])
        .send()
        .await
        .expect("create a key")
        .json()
        .await
        .expect("the key as JSON");
    let handed: Handed = Arc::new(Mutex::new(HashMap::new()));
    let application = application(handed.clone()).await;
    let number = http
        .post(format!(
            "{base}/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json"
        ))
        .basic_auth(&sid, Some(&token))
        .form(&[
            ("PhoneNumber", "+14155550100"),
            ("VoiceUrl", &format!("http://{application}/dial")),
        ])
        .send()
        .await
        .expect("buy a number");
    assert!(number.status().is_success(), "the number was refused");

    println!("presence benchmark: {clients} clients, heartbeat every {heartbeat_ms} ms, {backend}");
    let rss_before = resident_bytes();
    let started = Instant::now();
    let mut child = std::process::Command::new(std::env::current_exe().expect("this binary"))
        .env("BENCH_ROLE", "clients")
        .env("BENCH_URL", base.replacen("http", "ws", 1))
        .env("BENCH_CLIENTS", clients.to_string())
        .env("BENCH_HEARTBEAT_MS", heartbeat_ms.to_string())
        .env("BENCH_ACCOUNT", &sid)
        .env("BENCH_KEY_SID", key["sid"].as_str().expect("key sid"))
        .env(
            "BENCH_KEY_SECRET",
            key["secret"].as_str().expect("key secret"),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the clients");
    let stdout = child.stdout.take().expect("the clients' stdout");
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        match lines.recv().await.as_deref() {
            Some("ready") => break,
            Some(_) => continue,
            None => panic!("the clients stopped before registering"),
        }
    }
    let registration = started.elapsed();
    let presence = server.state.presence.clone();
    assert_eq!(
        presence.endpoint_count(),
        clients,
        "every client is registered"
    );
    // Let a round of heartbeats land before reading memory.
    tokio::time::sleep(Duration::from_millis(heartbeat_ms as u64 + 500)).await;
    let rss = resident_bytes();
    println!(
        "  registration: {clients} clients in {:.2} s ({:.0}/s)",
        registration.as_secs_f64(),
        clients as f64 / registration.as_secs_f64()
    );
    println!(
        "  memory: host RSS {:.1} MB with every client connected (before: {:.1} MB; {:.1} KB per client); target < {RSS_TARGET_MB} MB: {}",
        mb(rss),
        mb(rss_before),
        (rss.saturating_sub(rss_before)) as f64 / 1024.0 / clients as f64,
        if mb(rss) < RSS_TARGET_MB {
            "met"
        } else {
            "NOT met"
        }
    );

    // Lookups, against a bare map with the same keys.
    let identities: Vec<String> = (0..clients).map(|i| format!("c{i}")).collect();
    let bare: RwLock<HashMap<String, HashMap<String, Vec<u64>>>> = RwLock::new(HashMap::from([(
        sid.clone(),
        identities
            .iter()
            .map(|identity| (identity.clone(), vec![1]))
            .collect(),
    )]));
    let started = Instant::now();
    let mut found = 0usize;
    for i in 0..lookups {
        let guard = bare.read().expect("lock");
        found += guard
            .get(&sid)
            .and_then(|m| m.get(&identities[i % identities.len()]))
            .map_or(0, Vec::len);
    }
    let baseline = started.elapsed();
    let started = Instant::now();
    let mut online = 0usize;
    for i in 0..lookups {
        let status = presence.lookup(&sid, &identities[i % identities.len()]);
        online += usize::from(status.online());
    }
    let measured = started.elapsed();
    assert_eq!(online, lookups, "every identity looked up is online");
    assert_eq!(found, lookups);
    let rate = lookups as f64 / measured.as_secs_f64();
    println!(
        "  lookups: {:.0}/s ({:.0} ns each; bare RwLock<HashMap> {:.0} ns, ratio {:.2}); target >= {LOOKUP_TARGET}/s: {}",
        rate,
        measured.as_nanos() as f64 / lookups as f64,
        baseline.as_nanos() as f64 / lookups as f64,
        measured.as_secs_f64() / baseline.as_secs_f64(),
        if rate >= LOOKUP_TARGET {
            "met"
        } else {
            "NOT met"
        }
    );

    // Dial → ringing.
    let account = server
        .state
        .accounts
        .get(&sid)
        .await
        .expect("read the account")
        .expect("the account");
    let mut rung: HashMap<String, u64> = HashMap::new();
    let pace = Duration::from_secs_f64(1.0 / call_rate as f64);
    let started = Instant::now();
    for call in 0..calls {
        let due = started + pace * call as u32;
        tokio::time::sleep_until(due.into()).await;
        let from = format!("+1555{call:07}");
        server
            .state
            .telephony
            .incoming(&account, &from, "+14155550100")
            .await
            .expect("place a call");
        while let Ok(line) = lines.try_recv() {
            record_ring(&mut rung, &line);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while rung.len() < calls && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), lines.recv()).await {
            Ok(Some(line)) => record_ring(&mut rung, &line),
            Ok(None) => break,
            Err(_) => continue,
        }
    }
    let handed = handed.lock().map(|h| h.clone()).unwrap_or_default();
    let mut latencies: Vec<Duration> = rung
        .iter()
        .filter_map(|(from, received)| {
            let handed = handed.get(from)?;
            Some(Duration::from_micros(received.saturating_sub(*handed)))
        })
        .collect();
    latencies.sort();
    let p99 = percentile(&latencies, 0.99);
    println!(
        "  dial client → ringing: {} rings of {} calls at {call_rate}/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; target p99 < {RING_P99_TARGET_MS} ms: {}",
        latencies.len(),
        calls,
        ms(percentile(&latencies, 0.5)),
        ms(p99),
        ms(latencies.last().copied().unwrap_or_default()),
        if ms(p99) < RING_P99_TARGET_MS && !latencies.is_empty() {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  machine: {} ({} cores)",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    server.stop().await.expect("stop the host");
}

/// Keeps the first ring of each caller's number.
fn record_ring(rung: &mut HashMap<String, u64>, line: &str) {
    let mut parts = line.split_whitespace();
    if let (Some("ring"), Some(from), Some(at)) = (parts.next(), parts.next(), parts.next())
        && let Ok(at) = at.parse::<u64>()
    {
        rung.entry(from.to_string()).or_insert(at);
    }
}
