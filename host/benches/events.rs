//! Eventing benchmark: many live SSE subscribers on one channel while events are published at a
//! steady rate, on SQLite (or PostgreSQL with `BENCH_DATABASE_URL`).
//!
//! The host runs in-process (`Server::start` on 127.0.0.1:0 with a temporary data directory). An
//! account and a channel (`AllowPublish=true`) are made over HTTP. Subscribers are raw TCP
//! connections that send `GET /v1/Channels/bench/Stream` and read the text/event-stream, counting
//! every event (by its `id:` line, the sequence number); every twentieth subscriber also parses the
//! publish time carried in each event's data to time publish → receive. One more subscriber
//! connects and never reads a byte: the stalled reader the host must not wait for.
//!
//! Events are published in-process through the events facade (`Events::publish`, what
//! `POST /v1/Channels/{Sid}/Events` and the modules' `events.publish` call): each is committed to
//! the log before the call returns. A pacer starts one publish every 1/`BENCH_RATE` s (open loop),
//! so a slow host shows up as latency, not as a lower offered rate.
//!
//! Phases:
//! - baseline: the same paced publishing with no subscriber at all: the producer's latency
//!   (publish call, commit included) when nobody listens.
//! - stalled: one subscriber that connects and never reads, the same publishing: the producer's
//!   latency against the baseline shows what a reader that stopped costs it.
//! - fan-out: `BENCH_SUBSCRIBERS` readers plus the stalled one, the same publishing. Figures: events
//!   published and the rate achieved; deliveries (every event to every reader, checked by count,
//!   by order and by the last sequence number each reader saw; events of the earlier phases that
//!   the router hands over late are not counted); publish → receive p50 / p99 / max (target:
//!   p99 under 50 ms); the producer's p50 / p99 against the baseline's (the ratio shows what the
//!   subscribers, the stalled one included, cost the producer).
//! - memory and CPU time; the machine.
//! - floor, the baseline for the fan-out: the host stopped, a bare TCP server in the same process
//!   writes each of the same readers all the phase's frames (the same size) at once, with no
//!   HTTP framing, no database and no pacing. The deliveries a second the readers reach is the
//!   most these readers on these cores can take; the host's delivery rate is given against it.
//!
//! Knobs: `BENCH_SUBSCRIBERS` (1,000), `BENCH_RATE` (10,000 events/s), `BENCH_SECONDS` (5),
//! `BENCH_DATABASE_URL` (unset: SQLite).
//!
//! Run with `cargo bench -p switchboard-host --bench events`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;
use switchboard_host::app::Server;
use switchboard_host::config::Config;
use switchboard_host::events::Events;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

use common::{
    bench_account, cpu_model, cpu_seconds, env_number, mb, ms, percentile, resident_bytes,
};

const P99_TARGET_MS: f64 = 50.0;

/// What one reader saw.
#[derive(Default)]
struct Seen {
    /// Events of the phase (newer than the previous phase's last) seen.
    events: u64,
    last_sequence: i64,
    /// Events of the phase seen again or after a newer one.
    out_of_order: u64,
    /// Publish → receive (sampled readers only).
    latencies: Vec<Duration>,
}

/// What the readers of the fan-out phase share.
#[derive(Clone)]
struct Readers {
    addr: std::net::SocketAddr,
    auth: String,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    /// The phase's last sequence number, once published.
    last_published: Arc<AtomicI64>,
    /// The last sequence number of the earlier phases.
    after: i64,
}

/// Reads one SSE connection until `stop`, counting events and (when `timed`) timing them.
async fn read_stream(readers: Readers, timed: bool, ready: tokio::sync::mpsc::Sender<()>) -> Seen {
    let Readers {
        addr,
        auth,
        epoch,
        stop,
        last_published,
        after,
    } = readers;
    // Events of the earlier phases that the router hands over after this reader connected are
    // passed over, so the counts are of this phase's events alone.
    let mut seen = Seen {
        last_sequence: after,
        ..Seen::default()
    };
    let mut socket = TcpStream::connect(addr)
        .await
        .expect("connect a subscriber");
    let request = format!(
        "GET /v1/Channels/bench/Stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\nAccept: text/event-stream\r\n\r\n"
    );
    socket
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    // The readers share the host's cores, so what they spend per event is taken from the
    // fan-out measured: the socket is read straight into the buffer, and only complete frames are
    // looked at, each found by its `id:` line with precomputed finders (every frame starts on a
    // line of its own, after the blank line that ends the one before), its number parsed from
    // the bytes. The data line is read by the timed readers alone.
    let mut buffer: Vec<u8> = Vec::with_capacity(1 << 17);
    let mut announced = false;
    let id_line = memchr::memmem::Finder::new(b"\nid: ");
    let blank_line = memchr::memmem::Finder::new(b"\n\n");
    let last_blank_line = memchr::memmem::FinderRev::new(b"\n\n");
    let published_field = memchr::memmem::Finder::new(b"\"published_us\":");
    while !stop.load(Ordering::Relaxed) {
        let target = last_published.load(Ordering::Relaxed);
        if target > 0 && seen.last_sequence >= target {
            break;
        }
        buffer.reserve(1 << 16);
        match tokio::time::timeout(Duration::from_millis(200), socket.read_buf(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => continue,
        }
        let now_us = epoch.elapsed().as_micros() as u64;
        if !announced && memchr::memmem::find(&buffer, b"\n: connected").is_some() {
            announced = true;
            let _ = ready.send(()).await;
        }
        // Frames end with a blank line; what follows the last one waits for the next read.
        let Some(last_end) = last_blank_line.rfind(&buffer) else {
            continue;
        };
        let complete = &buffer[..last_end + 2];
        for at in id_line.find_iter(complete) {
            let frame = &complete[at + 5..];
            let digits = frame.iter().take_while(|b| b.is_ascii_digit()).count();
            let sequence = digits_value(&frame[..digits]) as i64;
            if sequence <= after {
                continue;
            }
            seen.events += 1;
            if sequence <= seen.last_sequence {
                seen.out_of_order += 1;
            }
            seen.last_sequence = seen.last_sequence.max(sequence);
            if timed {
                let frame = &frame[..blank_line.find(frame).unwrap_or(frame.len())];
                if let Some(field) = published_field.find(frame) {
                    let value = &frame[field + 15..];
                    let length = value.iter().take_while(|b| b.is_ascii_digit()).count();
                    let published = digits_value(&value[..length]);
                    seen.latencies
                        .push(Duration::from_micros(now_us.saturating_sub(published)));
                }
            }
        }
        // The blank line's last newline stays: it starts the next frame's `id:` line.
        buffer.drain(..last_end + 1);
    }
    seen
}

/// The number a run of ASCII digits writes.
fn digits_value(digits: &[u8]) -> u64 {
    digits
        .iter()
        .fold(0u64, |value, digit| value * 10 + u64::from(digit - b'0'))
}

/// Publishes `total` events at `rate` per second (open loop); answers each publish call's
/// duration, sorted, and the last sequence number.
async fn publish_paced(
    events: &Events,
    account: &str,
    total: usize,
    rate: usize,
    epoch: Instant,
) -> (Vec<Duration>, i64) {
    let started = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let (events, account, last) = (events.clone(), account.to_string(), last.clone());
        tasks.push(tokio::spawn(async move {
            let began = Instant::now();
            let data = json!({"n": n, "published_us": epoch.elapsed().as_micros() as u64});
            let stored = events
                .publish(&account, "bench", "bench.tick", data)
                .await
                .expect("publish");
            last.fetch_max(stored.sequence as u64, Ordering::Relaxed);
            began.elapsed()
        }));
    }
    let mut durations = Vec::with_capacity(total);
    for task in tasks {
        durations.push(task.await.expect("publish task"));
    }
    durations.sort_unstable();
    (durations, last.load(Ordering::Relaxed) as i64)
}

/// What one fan-out phase gave.
struct FanOut {
    delivered: u64,
    expected: u64,
    out_of_order: u64,
    /// Readers that got every event once, in order.
    complete: usize,
    /// Publish → receive, sorted (sampled readers only).
    latencies: Vec<Duration>,
    publish_seconds: f64,
    /// From the first publish until the last reader stopped.
    seconds: f64,
    cpu_seconds: f64,
}

impl FanOut {
    fn print(&self, subscribers: usize, last_sequence: i64) {
        println!(
            "  delivered {} of {} ({:.2} %); {} seen again or out of order; {} of {subscribers} subscribers got every event once, in order, ending at sequence {last_sequence}",
            self.delivered,
            self.expected,
            self.delivered as f64 * 100.0 / self.expected.max(1) as f64,
            self.out_of_order,
            self.complete,
        );
        println!(
            "  publish -> receive ({} samples from every 20th subscriber): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.latencies.len(),
            ms(percentile(&self.latencies, 0.5)),
            ms(percentile(&self.latencies, 0.99)),
            ms(percentile(&self.latencies, 1.0)),
        );
    }
}

/// Connects `subscribers` readers (every twentieth timed), runs `publish` once all are attached,
/// and waits for the readers to reach the last sequence number it answers (or 10 s more).
async fn fan_out<P>(
    readers: Readers,
    subscribers: usize,
    total: usize,
    publish: impl Future<Output = (P, i64)>,
) -> (FanOut, (P, i64)) {
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(subscribers + 1);
    let mut tasks = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        tasks.push(tokio::spawn(read_stream(
            readers.clone(),
            i % 20 == 0,
            ready_tx.clone(),
        )));
    }
    for _ in 0..subscribers {
        ready_rx.recv().await.expect("a subscriber attached");
    }
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let (published, last_sequence) = publish.await;
    let publish_seconds = started.elapsed().as_secs_f64();
    readers
        .last_published
        .store(last_sequence, Ordering::Relaxed);
    let stop = readers.stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        stop.store(true, Ordering::Relaxed);
    });
    let mut outcome = FanOut {
        delivered: 0,
        expected: (total * subscribers) as u64,
        out_of_order: 0,
        complete: 0,
        latencies: Vec::new(),
        publish_seconds,
        seconds: 0.0,
        cpu_seconds: 0.0,
    };
    for task in tasks {
        let seen = task.await.expect("reader");
        outcome.delivered += seen.events;
        outcome.out_of_order += seen.out_of_order;
        if seen.events as usize == total
            && seen.out_of_order == 0
            && seen.last_sequence == last_sequence
        {
            outcome.complete += 1;
        }
        outcome.latencies.extend(seen.latencies);
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome.cpu_seconds = cpu_seconds() - cpu_before;
    outcome.latencies.sort_unstable();
    (outcome, (published, last_sequence))
}

/// The fan-out floor of this machine: the phase's frames, rendered as the host renders a
/// CloudEvent of the same size, written at once to each of the same readers by a bare TCP server
/// that does nothing else (no HTTP framing, no database, no host, no pacing). How fast the readers
/// get them all is the most deliveries a second that these readers on these cores can take.
async fn fan_out_floor(subscribers: usize, total: usize, epoch: Instant) -> FanOut {
    let mut frames = Vec::new();
    for sequence in 1..=total {
        let cloud_event = json!({
            "specversion": "1.0",
            "id": format!("EV{sequence:032x}"),
            "source": "/v1/Channels/EC0123456789abcdef0123456789abcdef",
            "type": "bench.tick",
            "time": "2026-01-01T00:00:00.000Z",
            "sequence": sequence.to_string(),
            "data": {"n": sequence - 1, "published_us": epoch.elapsed().as_micros() as u64},
        });
        frames.extend_from_slice(
            format!("id: {sequence}\nevent: bench.tick\ndata: {cloud_event}\n\n").as_bytes(),
        );
    }
    let frames = bytes::Bytes::from(frames);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the bare server");
    let addr = listener.local_addr().expect("its address");
    let (go, started) = tokio::sync::watch::channel(false);
    let acceptor = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve_bare(socket, started.clone(), frames.clone()));
        }
    });
    let readers = Readers {
        addr,
        auth: String::new(),
        epoch,
        stop: Arc::new(AtomicBool::new(false)),
        last_published: Arc::new(AtomicI64::new(0)),
        after: 0,
    };
    let publish = async {
        let _ = go.send(true);
        ((), total as i64)
    };
    let (outcome, _) = fan_out(readers, subscribers, total, publish).await;
    acceptor.abort();
    outcome
}

/// One connection of [`fan_out_floor`]: the request head is read and answered, and once told to
/// start, every frame is written in one call; the connection then waits for the reader to leave.
async fn serve_bare(
    mut socket: TcpStream,
    mut started: tokio::sync::watch::Receiver<bool>,
    frames: bytes::Bytes,
) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while memchr::memmem::find(&head, b"\r\n\r\n").is_none() {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let opening = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n: connected\n\n";
    if socket.write_all(opening).await.is_err() || started.wait_for(|go| *go).await.is_err() {
        return;
    }
    if socket.write_all(&frames).await.is_err() {
        return;
    }
    while let Ok(n) = socket.read(&mut buffer).await {
        if n == 0 {
            return;
        }
    }
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
    let subscribers = env_number("BENCH_SUBSCRIBERS", 1_000);
    let rate = env_number("BENCH_RATE", 10_000).max(1);
    let seconds = env_number("BENCH_SECONDS", 5).max(1);
    let total = rate * seconds;

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
    let http = reqwest::Client::new();
    let (account_sid, token) = bench_account(&http, &base).await;
    let created = http
        .post(format!("{base}/v1/Channels"))
        .basic_auth(&account_sid, Some(&token))
        .form(&[
            ("UniqueName", "bench"),
            ("AllowPublish", "true"),
            ("EventTypes", "bench.*"),
        ])
        .send()
        .await
        .expect("create the channel");
    assert!(created.status().is_success(), "the channel was not created");
    let events = server.state.events.clone();
    let epoch = Instant::now();

    println!(
        "switchboard eventing benchmark ({backend}, {} cores, {})",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu_model()
    );
    println!(
        "  {subscribers} SSE subscribers on one channel, {rate} events/s for {seconds} s, plus one subscriber that never reads"
    );

    // Baseline: nobody listens.
    let (baseline, _) = publish_paced(&events, &account_sid, total, rate, epoch).await;
    let baseline_p50 = ms(percentile(&baseline, 0.5));
    let baseline_p99 = ms(percentile(&baseline, 0.99));
    println!(
        "  baseline (no subscriber): producer p50 {baseline_p50:.2} ms, p99 {baseline_p99:.2} ms"
    );

    // A subscriber that never reads, alone: what it costs the producer.
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{account_sid}:{token}"));
    let mut stalled = TcpStream::connect(server.addr)
        .await
        .expect("connect the stalled reader");
    stalled
        .write_all(format!("GET /v1/Channels/bench/Stream HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\r\n").as_bytes())
        .await
        .expect("stalled request");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (with_stalled, before_fan_out) =
        publish_paced(&events, &account_sid, total, rate, epoch).await;
    let stalled_p50 = ms(percentile(&with_stalled, 0.5));
    let stalled_p99 = ms(percentile(&with_stalled, 0.99));
    println!(
        "  one subscriber that stopped reading: producer p50 {stalled_p50:.2} ms, p99 {stalled_p99:.2} ms; ratio to the baseline p50 {:.2}, p99 {:.2}",
        stalled_p50 / baseline_p50.max(0.001),
        stalled_p99 / baseline_p99.max(0.001)
    );

    // Fan-out, the stalled subscriber still attached.
    let readers = Readers {
        addr: server.addr,
        auth: auth.clone(),
        epoch,
        stop: Arc::new(AtomicBool::new(false)),
        last_published: Arc::new(AtomicI64::new(0)),
        after: before_fan_out,
    };
    let resident_before = mb(resident_bytes());
    let (host, (producer, last_sequence)) = fan_out(readers, subscribers, total, async {
        publish_paced(&events, &account_sid, total, rate, epoch).await
    })
    .await;
    drop(stalled);
    let p99 = ms(percentile(&host.latencies, 0.99));
    println!(
        "  published {total} events in {:.2} s ({:.0} events/s)",
        host.publish_seconds,
        total as f64 / host.publish_seconds
    );
    host.print(subscribers, last_sequence);
    println!(
        "    target p99 < {P99_TARGET_MS} ms: {}",
        if p99 < P99_TARGET_MS && host.complete == subscribers {
            "met"
        } else {
            "NOT met"
        }
    );
    let p50 = ms(percentile(&producer, 0.5));
    let producer_p99 = ms(percentile(&producer, 0.99));
    println!(
        "  producer with subscribers and the stalled reader: p50 {p50:.2} ms, p99 {producer_p99:.2} ms; ratio to the baseline p50 {:.2}, p99 {:.2}",
        p50 / baseline_p50.max(0.001),
        producer_p99 / baseline_p99.max(0.001)
    );
    println!(
        "  resident {resident_before:.0} MB with the subscribers attached, {:.0} MB at the end; CPU {:.1} s over {:.1} s",
        mb(resident_bytes()),
        host.cpu_seconds,
        host.seconds
    );
    events.shutdown();
    server.stop().await.expect("stop the host");

    // The machine's floor: the same readers, fed the same frames all at once by a bare server.
    let floor = fan_out_floor(subscribers, total, epoch).await;
    let floor_rate = floor.delivered as f64 / floor.seconds;
    let host_rate = host.delivered as f64 / host.seconds;
    println!(
        "  floor (no host: a bare TCP server writes each reader all {total} frames at once; no HTTP, no database, no pacing): {} of {} delivered in {:.2} s, {:.2} M deliveries/s, CPU {:.1} s",
        floor.delivered,
        floor.expected,
        floor.seconds,
        floor_rate / 1e6,
        floor.cpu_seconds
    );
    println!(
        "    the host delivered {:.2} M/s, {:.2} of the floor; the offered load was {:.2} M/s",
        host_rate / 1e6,
        host_rate / floor_rate.max(1.0),
        (rate * subscribers) as f64 / 1e6
    );
}
