//! Media-layer benchmark: cache hits, transcoding speed, and memory while transcoding a long file.
//!
//! Prints, in one run:
//! - memory: the process's peak resident memory before and after transcoding a 40-minute 44.1 kHz
//!   stereo WAV (423 MB) from disk to disk. Measured first, so nothing else has raised the peak;
//!   streaming keeps the growth to a few megabytes whatever the length;
//! - transcode: a 60 s 44.1 kHz stereo WAV to 8 kHz μ-law (best of several runs), as time and as a
//!   multiple of real time, against the baseline of only decoding the same file with symphonia (no
//!   downmix, resampling or encoding) in the same process;
//! - cache hits: `resolve_url` answers per second for a cached URL, directly and through the
//!   layer's HTTP interface (what calls use), against the baseline of a bare `Mutex<HashMap>`
//!   lookup of the URL, the least any in-memory cache does.
//!
//! Run with `cargo bench -p switchboard-host --bench media` (about 30 s).

use std::collections::HashMap;
use std::hint::black_box;
use std::io::{Cursor, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard_host::config::MediaSettings;
use switchboard_host::media::transcode::{self, SourceHint, pcm_wav_header, tone_wav};
use switchboard_host::media::{Media, MediaClient};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::DecoderOptions;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

const RUNS: usize = 5;
const HIT_TIME: Duration = Duration::from_secs(2);

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("switchboard media benchmark ({cores} cores)");
    memory_while_transcoding_40_minutes();
    transcoding_speed();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(cache_hits());
}

/// Peak resident memory of this process, in kB.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0)
}

fn memory_while_transcoding_40_minutes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input_path = dir.path().join("long.wav");
    let rate = 44_100u32;
    let frames = rate * 60 * 40;
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&input_path).expect("create"));
        file.write_all(&pcm_wav_header(rate, 2, frames))
            .expect("header");
        // One second of tone, written 2 400 times.
        let second = tone_wav(rate, 2, rate, 440.0);
        for _ in 0..frames / rate {
            file.write_all(&second[44..]).expect("write");
        }
        file.flush().expect("flush");
    }
    let input_bytes = std::fs::metadata(&input_path).map_or(0, |m| m.len());
    let before = peak_rss_kb();
    let started = Instant::now();
    let input = std::fs::File::open(&input_path).expect("open");
    let mut output =
        std::io::BufWriter::new(std::fs::File::create(dir.path().join("long.ulaw")).expect("out"));
    let written =
        transcode::transcode(Box::new(input), &wav_hint(), &mut output).expect("transcoded");
    let elapsed = started.elapsed();
    let after = peak_rss_kb();
    println!(
        "memory     40-minute 44.1 kHz stereo WAV ({:.0} MB) -> {:.1} MB μ-law in {:.2} s ({:.0}x real time)",
        input_bytes as f64 / 1e6,
        written as f64 / 1e6,
        elapsed.as_secs_f64(),
        2_400.0 / elapsed.as_secs_f64()
    );
    println!(
        "           peak resident memory {:.1} MB before, {:.1} MB after: +{:.1} MB ({:.2}% of the file)",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0,
        after.saturating_sub(before) as f64 * 1024.0 * 100.0 / input_bytes.max(1) as f64
    );
}

fn wav_hint() -> SourceHint {
    SourceHint {
        extension: Some("wav".into()),
        content_type: None,
    }
}

fn transcoding_speed() {
    let wav = tone_wav(44_100, 2, 44_100 * 60, 440.0);
    let best = |work: &dyn Fn() -> u64| {
        (0..RUNS)
            .map(|_| {
                let started = Instant::now();
                black_box(work());
                started.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let transcoded = best(&|| {
        let mut out = Vec::with_capacity(480_000);
        transcode::transcode(Box::new(Cursor::new(wav.clone())), &wav_hint(), &mut out)
            .expect("transcoded")
    });
    let decoded = best(&|| decode_only(&wav));
    println!(
        "transcode  60 s 44.1 kHz stereo WAV -> 8 kHz μ-law: {:.1} ms ({:.0}x real time; target 1000x, under 60 ms)",
        transcoded.as_secs_f64() * 1e3,
        60.0 / transcoded.as_secs_f64()
    );
    println!(
        "           baseline, decoding only: {:.1} ms; transcoding costs {:.2}x decoding",
        decoded.as_secs_f64() * 1e3,
        transcoded.as_secs_f64() / decoded.as_secs_f64()
    );
}

/// Decodes every packet to f32 samples and does nothing else.
fn decode_only(wav: &[u8]) -> u64 {
    let stream = MediaSourceStream::new(Box::new(Cursor::new(wav.to_vec())), Default::default());
    let mut hint = Hint::new();
    hint.with_extension("wav");
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .expect("probe");
    let mut format = probed.format;
    let track = format.default_track().expect("track").clone();
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .expect("decoder");
    let mut samples = 0u64;
    let mut buffer: Option<SampleBuffer<f32>> = None;
    while let Ok(packet) = format.next_packet() {
        let decoded = decoder.decode(&packet).expect("decode");
        let buffer = buffer
            .get_or_insert_with(|| SampleBuffer::new(decoded.capacity() as u64, *decoded.spec()));
        buffer.copy_interleaved_ref(decoded);
        samples += buffer.samples().len() as u64;
    }
    samples
}

/// Answers per second of `work`, run for [`HIT_TIME`].
async fn rate<F: std::future::Future<Output = bool>>(mut work: impl FnMut() -> F) -> f64 {
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < HIT_TIME {
        for _ in 0..1_000 {
            assert!(work().await);
        }
        count += 1_000;
    }
    count as f64 / started.elapsed().as_secs_f64()
}

async fn cache_hits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = MediaSettings {
        allow_private_addresses: true,
        ..MediaSettings::default()
    };
    let media = Arc::new(Media::open(&settings, dir.path()).expect("media"));
    let wav = tone_wav(44_100, 2, 44_100 * 5, 440.0);
    let app = axum::Router::new().route(
        "/hold.wav",
        axum::routing::get(move || {
            let wav = wav.clone();
            async move {
                (
                    [
                        ("content-type", "audio/wav"),
                        ("cache-control", "max-age=3600"),
                    ],
                    wav,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hold.wav", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let first = media.resolve_url(&url).await.expect("first fetch");

    let direct = rate(|| {
        let media = media.clone();
        let url = url.clone();
        async move { media.resolve_url(&url).await.is_ok() }
    })
    .await;
    let client = MediaClient::in_process(media.clone());
    let through_interface = rate(|| {
        let client = client.clone();
        let url = url.clone();
        async move { client.resolve_url(&url).await.is_ok() }
    })
    .await;
    let map = Mutex::new(HashMap::from([(url.clone(), first.id.clone())]));
    let baseline = rate(|| {
        let found = map
            .lock()
            .map(|map| black_box(map.get(black_box(&url))).is_some())
            .unwrap_or(false);
        async move { found }
    })
    .await;
    let stats = media.stats();
    println!(
        "cache hits {direct:>10.0}/s direct, {through_interface:.0}/s through the HTTP interface (target 50,000/s)"
    );
    println!(
        "           baseline, Mutex<HashMap> lookup: {baseline:.0}/s; a hit costs {:.1}x the bare lookup directly, {:.1}x through the interface",
        baseline / direct,
        baseline / through_interface
    );
    println!(
        "           {} hits, {} fetch(es) for the {} ms clip",
        stats.hits, stats.fetches, first.duration_ms
    );
}
