//! The media layer end to end: audio served by a local web server becomes cached 8 kHz μ-law with a
//! persistent address; HTTP caching (ETag, no-cache, max-age) and single flight; speech with
//! espeak-ng; bad input that fails clearly without stopping the call or leaving anything behind;
//! the cache's byte budget and its survival across a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use reqwest::StatusCode;
use serde_json::Value;
use switchboard_host::clock::ClockKind;
use switchboard_host::config::Config;
use switchboard_host::media::transcode::tone_wav;
use switchboard_tests::{HttpApp, Reply, Tenant, TestApp, experience_types};

/// How the media server answers one path.
#[derive(Clone, Default)]
struct Resource {
    body: Vec<u8>,
    content_type: &'static str,
    etag: Option<&'static str>,
    cache_control: Option<&'static str>,
    delay_ms: u64,
    /// Stream this many zero bytes instead of `body`.
    zeros: Option<u64>,
    /// Send `Content-Length` with `zeros`.
    declare_length: bool,
}

impl Resource {
    fn audio(content_type: &'static str, body: Vec<u8>) -> Resource {
        Resource {
            body,
            content_type,
            ..Resource::default()
        }
    }
}

/// A web server hosting audio, counting every request and every 304 it answers.
struct MediaServer {
    url: String,
    requests: Arc<Mutex<HashMap<String, usize>>>,
    not_modified: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl MediaServer {
    async fn start(resources: Vec<(&str, Resource)>) -> MediaServer {
        let resources: Arc<HashMap<String, Resource>> = Arc::new(
            resources
                .into_iter()
                .map(|(path, resource)| (path.to_string(), resource))
                .collect(),
        );
        let requests = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
        let not_modified = Arc::new(Mutex::new(0));
        let (seen, answered_304) = (requests.clone(), not_modified.clone());
        let app = axum::Router::new().fallback(move |request: Request| {
            let resources = resources.clone();
            let seen = seen.clone();
            let answered_304 = answered_304.clone();
            async move {
                let path = request.uri().path().to_string();
                *seen.lock().expect("lock").entry(path.clone()).or_default() += 1;
                let Some(resource) = resources.get(&path).cloned() else {
                    return Response::builder()
                        .status(404)
                        .body(Body::from("not found"))
                        .expect("response");
                };
                if resource.delay_ms > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(resource.delay_ms)).await;
                }
                let mut builder = Response::builder().header("content-type", resource.content_type);
                if let Some(etag) = resource.etag {
                    builder = builder.header("etag", etag);
                    let matches = request
                        .headers()
                        .get("if-none-match")
                        .is_some_and(|value| value.as_bytes() == etag.as_bytes());
                    if matches {
                        *answered_304.lock().expect("lock") += 1;
                        return builder.status(304).body(Body::empty()).expect("response");
                    }
                }
                if let Some(cache_control) = resource.cache_control {
                    builder = builder.header("cache-control", cache_control);
                }
                let body = match resource.zeros {
                    Some(total) => {
                        if resource.declare_length {
                            builder = builder.header("content-length", total);
                        }
                        let chunk = Bytes::from(vec![0u8; 64 * 1024]);
                        let chunks = total / chunk.len() as u64;
                        Body::from_stream(futures::stream::iter(
                            (0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                        ))
                    }
                    None => Body::from(resource.body),
                };
                builder.body(body).expect("response")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the media server");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MediaServer {
            url: format!("http://{addr}"),
            requests,
            not_modified,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    fn requests(&self, path: &str) -> usize {
        self.requests
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn not_modified(&self) -> usize {
        *self.not_modified.lock().expect("lock")
    }
}

impl Drop for MediaServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Calls run on a manual clock with media that plays instantly.
fn instant_calls(config: &mut Config) {
    config.telephony.clock = ClockKind::Manual;
    config.telephony.media_speed = 0.0;
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(instant_calls).await
}

/// `POST /v1/Media` with a form (`Url=...` or `Text=...`).
async fn resolve(app: &TestApp, tenant: &Tenant, form: &[(&str, &str)]) -> (StatusCode, Value) {
    app.post_form(tenant, "/v1/Media", form).await
}

async fn resolve_url(app: &TestApp, tenant: &Tenant, url: &str) -> Value {
    let (status, body) = resolve(app, tenant, &[("Url", url)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn cache_stats(app: &TestApp) -> Value {
    let (status, body) = app.operator_get("/v1/Media/Cache").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The clip behind a persistent address, in the given format.
async fn clip(app: &TestApp, tenant: &Tenant, media_url: &str, format: &str) -> (String, Vec<u8>) {
    let response = app
        .client
        .get(app.path(&format!("{media_url}?Format={format}")))
        .basic_auth(&tenant.sid, Some(&tenant.token))
        .send()
        .await
        .expect("GET media");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = response.bytes().await.expect("body").to_vec();
    (content_type, bytes)
}

/// Runs a call whose HTTP application answers `twiml`, and returns its sid and ended timeline.
async fn call(app: &TestApp, tenant: &Tenant, number: &str, twiml: &str) -> (String, Value) {
    let web = HttpApp::start(vec![("/voice", Reply::twiml(twiml))]).await;
    app.buy_number(tenant, number, &[("VoiceUrl", &web.url("/voice"))])
        .await;
    let sid = app.place_call(tenant, "+14155550100", number).await;
    let timeline = app.wait_ended(tenant, &sid).await;
    (sid, timeline)
}

fn entries_of<'a>(timeline: &'a Value, kind: &str) -> Vec<&'a Value> {
    timeline["timeline"]
        .as_array()
        .map(|entries| entries.iter().filter(|e| e["type"] == kind).collect())
        .unwrap_or_default()
}

/// Files left in the cache's scratch folder.
fn scratch_files(app: &TestApp) -> usize {
    std::fs::read_dir(app.data_dir().join("media/tmp"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

fn mp3_fixture() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/tone-2s-44k-stereo.mp3"
    ))
    .expect("the MP3 fixture")
}

#[tokio::test]
async fn played_wav_and_mp3_become_8_khz_mulaw_of_their_length_and_are_cached() {
    let cacheable = Some("max-age=3600");
    let server = MediaServer::start(vec![
        (
            "/tone.wav",
            Resource {
                cache_control: cacheable,
                ..Resource::audio("audio/wav", tone_wav(44_100, 2, 66_150, 440.0))
            },
        ),
        (
            "/tone.mp3",
            Resource {
                cache_control: cacheable,
                ..Resource::audio("audio/mpeg", mp3_fixture())
            },
        ),
    ])
    .await;
    let app = spawn().await;
    let tenant = app.tenant().await;
    let twiml = format!(
        "<Response><Play>{}</Play><Play>{}</Play><Hangup/></Response>",
        server.url("/tone.wav"),
        server.url("/tone.mp3")
    );
    let (_, timeline) = call(&app, &tenant, "+14155550111", &twiml).await;
    let plays = entries_of(&timeline, "play");
    assert_eq!(plays.len(), 2, "{timeline:#}");
    // 1.5 s of 44.1 kHz stereo: 12 000 samples of 8 kHz μ-law, exactly.
    assert_eq!(plays[0]["duration_ms"], 1_500, "{timeline:#}");
    // 2 s of MP3, within one MP3 frame (1152 samples, 26 ms).
    let mp3_ms = plays[1]["duration_ms"].as_i64().expect("duration");
    assert!((mp3_ms - 2_000).abs() <= 26, "{timeline:#}");

    let wav_address = plays[0]["media_url"].as_str().expect("media_url");
    assert!(wav_address.starts_with("/v1/Media/ME"), "{wav_address}");
    let (content_type, raw) = clip(&app, &tenant, wav_address, "basic").await;
    assert_eq!(content_type, "audio/basic");
    assert_eq!(raw.len(), 12_000);
    assert!(
        raw.iter().any(|&byte| byte != raw[0]),
        "a tone, not silence"
    );
    let (content_type, wav) = clip(&app, &tenant, wav_address, "wav").await;
    assert_eq!(content_type, "audio/wav");
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(u16::from_le_bytes([wav[20], wav[21]]), 7, "μ-law WAV");
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 1, "mono");
    assert_eq!(
        u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]),
        8_000
    );
    assert_eq!(&wav[wav.len() - raw.len()..], &raw[..]);
    let (content_type, alaw) = clip(&app, &tenant, wav_address, "alaw").await;
    assert_eq!(content_type, "audio/x-alaw-basic");
    assert_eq!(alaw.len(), raw.len());
    let mp3_address = plays[1]["media_url"].as_str().expect("media_url");
    let (_, mp3_clip) = clip(&app, &tenant, mp3_address, "basic").await;
    assert_eq!(mp3_clip.len() as i64, mp3_ms * 8);

    // The second call is served from the cache: no request reaches the server.
    let (again_sid, again) = call(&app, &tenant, "+14155550112", &twiml).await;
    let plays_again = entries_of(&again, "play");
    assert_eq!(plays_again[0]["media_url"], plays[0]["media_url"]);
    assert_eq!(plays_again[1]["media_url"], plays[1]["media_url"]);
    assert_eq!(server.requests("/tone.wav"), 1);
    assert_eq!(server.requests("/tone.mp3"), 1);
    let stats = cache_stats(&app).await;
    assert_eq!(stats["hits"], 2, "{stats}");
    assert_eq!(stats["fetches"], 2, "{stats}");
    assert_eq!(stats["clips"], 2, "{stats}");

    // The played seconds are charged to the segment that asked.
    let (_, segments) = app
        .get(&tenant, &format!("/v1/Calls/{again_sid}/Segments"))
        .await;
    assert_eq!(
        segments["segments"][0]["media_ms"],
        1_500 + mp3_ms,
        "{segments:#}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn etag_revalidation_reuses_the_clip_and_no_cache_forces_it() {
    let server = MediaServer::start(vec![
        (
            "/no-cache.wav",
            Resource {
                etag: Some("\"v1\""),
                cache_control: Some("no-cache"),
                ..Resource::audio("audio/wav", tone_wav(16_000, 1, 8_000, 300.0))
            },
        ),
        (
            "/fresh.wav",
            Resource {
                etag: Some("\"v1\""),
                cache_control: Some("max-age=3600"),
                ..Resource::audio("audio/wav", tone_wav(16_000, 1, 8_000, 500.0))
            },
        ),
    ])
    .await;
    let app = spawn().await;
    let tenant = app.tenant().await;

    let first = resolve_url(&app, &tenant, &server.url("/no-cache.wav")).await;
    assert_eq!(first["duration_ms"], 500);
    let second = resolve_url(&app, &tenant, &server.url("/no-cache.wav")).await;
    let third = resolve_url(&app, &tenant, &server.url("/no-cache.wav")).await;
    // Every use asked the server again, which answered 304, and the same clip was kept.
    assert_eq!(server.requests("/no-cache.wav"), 3);
    assert_eq!(server.not_modified(), 2);
    assert_eq!(second["url"], first["url"]);
    assert_eq!(third["url"], first["url"]);

    // A fresh answer (max-age) is not asked again.
    resolve_url(&app, &tenant, &server.url("/fresh.wav")).await;
    resolve_url(&app, &tenant, &server.url("/fresh.wav")).await;
    assert_eq!(server.requests("/fresh.wav"), 1);

    let stats = cache_stats(&app).await;
    assert_eq!(stats["revalidations"], 2, "{stats}");
    assert_eq!(stats["clips"], 2, "{stats}");
    assert_eq!(stats["hits"], 1, "{stats}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_hundred_concurrent_requests_for_one_new_url_fetch_it_once() {
    let server = MediaServer::start(vec![(
        "/popular.wav",
        Resource {
            delay_ms: 300,
            cache_control: Some("max-age=3600"),
            ..Resource::audio("audio/wav", tone_wav(22_050, 2, 22_050, 440.0))
        },
    )])
    .await;
    let app = spawn().await;
    let tenant = app.tenant().await;
    let url = server.url("/popular.wav");
    let form = [("Url", url.as_str())];
    let requests = (0..100).map(|_| resolve(&app, &tenant, &form));
    let answers = futures::future::join_all(requests).await;
    let addresses: std::collections::HashSet<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::OK, "{body}");
            body["url"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    assert_eq!(server.requests("/popular.wav"), 1);
    assert_eq!(cache_stats(&app).await["fetches"], 1);
    app.shutdown().await;
}

#[tokio::test]
async fn say_is_synthesized_by_espeak_ng_and_cached() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let short = "Hello.";
    let long = "Hello. Thank you for calling. All of our agents are busy right now, please stay on the line.";
    let (status, spoken_short) = resolve(&app, &tenant, &[("Text", short)]).await;
    assert_eq!(status, StatusCode::OK, "{spoken_short}");
    let (status, spoken_long) = resolve(&app, &tenant, &[("Text", long)]).await;
    assert_eq!(status, StatusCode::OK, "{spoken_long}");
    let short_ms = spoken_short["duration_ms"].as_i64().expect("duration");
    let long_ms = spoken_long["duration_ms"].as_i64().expect("duration");
    assert!(short_ms > 200, "{spoken_short}");
    assert!(long_ms > 3 * short_ms, "{short_ms} ms vs {long_ms} ms");

    // In a call, the same text is a cache hit and the timeline shows the clip.
    let hits_before = cache_stats(&app).await["hits"].as_i64().unwrap_or_default();
    let (sid, timeline) = call(
        &app,
        &tenant,
        "+14155550113",
        &format!("<Response><Say>{short}</Say><Say language=\"fr-FR\" voice=\"woman\">Bonjour</Say></Response>"),
    )
    .await;
    let says = entries_of(&timeline, "say");
    assert_eq!(says[0]["media_url"], spoken_short["url"], "{timeline:#}");
    assert_eq!(says[0]["duration_ms"], short_ms);
    assert!(says[1]["media_url"].as_str().is_some(), "{timeline:#}");
    let stats = cache_stats(&app).await;
    assert_eq!(
        stats["hits"].as_i64().unwrap_or_default(),
        hits_before + 1,
        "{stats}"
    );

    let (_, segments) = app.get(&tenant, &format!("/v1/Calls/{sid}/Segments")).await;
    assert_eq!(
        segments["segments"][0]["tts_characters"],
        (short.len() + "Bonjour".len()) as i64,
        "{segments:#}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn without_a_speech_engine_say_fails_clearly_and_the_call_goes_on() {
    let server = MediaServer::start(vec![(
        "/after.wav",
        Resource::audio("audio/wav", tone_wav(8_000, 1, 4_000, 440.0)),
    )])
    .await;
    let app = TestApp::spawn_with(|config| {
        instant_calls(config);
        config.media.tts_command = "/nonexistent/espeak-ng".into();
    })
    .await;
    let tenant = app.tenant().await;
    let (_, timeline) = call(
        &app,
        &tenant,
        "+14155550114",
        &format!(
            "<Response><Say>Hello</Say><Play>{}</Play></Response>",
            server.url("/after.wav")
        ),
    )
    .await;
    let say = entries_of(&timeline, "say")[0];
    assert!(
        say["error"]
            .as_str()
            .unwrap_or_default()
            .contains("espeak-ng"),
        "{timeline:#}"
    );
    assert!(say.get("media_url").is_none(), "{timeline:#}");
    assert_eq!(
        entries_of(&timeline, "play")[0]["duration_ms"],
        500,
        "{timeline:#}"
    );
    let (status, body) = resolve(&app, &tenant, &[("Text", "Hello")]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], 32005);
    app.shutdown().await;
}

#[tokio::test]
async fn bad_media_fails_clearly_the_call_goes_on_and_nothing_is_cached() {
    let mut truncated = tone_wav(44_100, 2, 44_100, 440.0);
    truncated.truncate(truncated.len() / 3);
    let gigabyte = 1024 * 1024 * 1024;
    let server = MediaServer::start(vec![
        (
            "/page.wav",
            Resource::audio("text/html", b"<html><body>Not found</body></html>".to_vec()),
        ),
        (
            "/disguised.wav",
            Resource::audio("audio/wav", b"<html><body>Not found</body></html>".to_vec()),
        ),
        ("/truncated.wav", Resource::audio("audio/wav", truncated)),
        (
            "/declared-gigabyte.wav",
            Resource {
                zeros: Some(gigabyte),
                declare_length: true,
                ..Resource::audio("audio/wav", Vec::new())
            },
        ),
        (
            "/streamed-gigabyte.wav",
            Resource {
                zeros: Some(gigabyte),
                ..Resource::audio("audio/wav", Vec::new())
            },
        ),
        (
            "/good.wav",
            Resource::audio("audio/wav", tone_wav(8_000, 1, 800, 440.0)),
        ),
    ])
    .await;
    // A closed port: nothing listens there.
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!(
            "http://{}/gone.wav",
            listener.local_addr().expect("address")
        )
    };
    let app = TestApp::spawn_with(|config| {
        instant_calls(config);
        config.media.max_fetch_bytes = 4 * 1024 * 1024;
    })
    .await;
    let tenant = app.tenant().await;
    let bad = [
        (server.url("/page.wav"), 32004, "text/html"),
        (server.url("/disguised.wav"), 32004, "not audio"),
        (server.url("/truncated.wav"), 32004, "truncated"),
        (
            server.url("/declared-gigabyte.wav"),
            32003,
            "larger than the limit",
        ),
        (
            server.url("/streamed-gigabyte.wav"),
            32003,
            "larger than the limit",
        ),
        (server.url("/missing.wav"), 32001, "404"),
        (unreachable.clone(), 32001, "unreachable"),
    ];
    let mut twiml = String::from("<Response>");
    for (url, _, _) in &bad {
        twiml.push_str(&format!("<Play>{url}</Play>"));
    }
    twiml.push_str(&format!(
        "<Play>{}</Play></Response>",
        server.url("/good.wav")
    ));
    let (_, timeline) = call(&app, &tenant, "+14155550115", &twiml).await;
    let plays = entries_of(&timeline, "play");
    assert_eq!(plays.len(), bad.len() + 1, "{timeline:#}");
    for ((url, _, expected), play) in bad.iter().zip(&plays) {
        let error = play["error"].as_str().unwrap_or_default();
        assert!(error.contains(expected), "{url}: {error}");
        assert!(play["duration_ms"].is_null(), "{play}");
        assert!(play.get("media_url").is_none(), "{play}");
    }
    // The call went on past every failure.
    assert_eq!(plays[bad.len()]["duration_ms"], 100, "{timeline:#}");
    assert_eq!(
        experience_types(&timeline).last().map(String::as_str),
        Some("hangup")
    );

    // Over the API, each failure carries its code from the error table.
    for (url, code, _) in &bad {
        let (status, body) = resolve(&app, &tenant, &[("Url", url)]).await;
        assert_eq!(body["code"], *code, "{url}: {status} {body}");
        assert!(status.is_client_error() || status.is_server_error());
    }
    let (status, body) = resolve(&app, &tenant, &[("Url", "ftp://example.com/a.wav")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let stats = cache_stats(&app).await;
    assert_eq!(stats["clips"], 1, "only the good clip: {stats}");
    assert_eq!(scratch_files(&app), 0, "nothing half-written is left");
    let clips = std::fs::read_dir(app.data_dir().join("media/clips"))
        .expect("clips")
        .count();
    assert_eq!(clips, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn private_addresses_are_refused_unless_the_operator_allows_them() {
    let server = MediaServer::start(vec![(
        "/internal.wav",
        Resource::audio("audio/wav", tone_wav(8_000, 1, 800, 440.0)),
    )])
    .await;
    let app = TestApp::spawn_with(|config| {
        instant_calls(config);
        config.media.allow_private_addresses = false;
    })
    .await;
    let tenant = app.tenant().await;
    let port = server
        .url
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    let by_name = format!("http://localhost:{port}/internal.wav");
    for url in [server.url("/internal.wav"), by_name] {
        let (status, body) = resolve(&app, &tenant, &[("Url", &url)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{url}: {body}");
        assert_eq!(body["code"], 32002);
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("private"),
            "{body}"
        );
    }
    let (_, timeline) = call(
        &app,
        &tenant,
        "+14155550116",
        &format!(
            "<Response><Play>{}</Play><Pause length=\"1\"/></Response>",
            server.url("/internal.wav")
        ),
    )
    .await;
    assert!(
        entries_of(&timeline, "play")[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("private address"),
        "{timeline:#}"
    );
    assert_eq!(entries_of(&timeline, "pause").len(), 1, "the call went on");
    assert_eq!(server.requests("/internal.wav"), 0);
    app.shutdown().await;
}

#[tokio::test]
async fn the_cache_stays_within_its_budget_and_survives_a_restart() {
    // Ten one-second clips (8 000 bytes each) through a cache that holds four.
    let budget = 32_000;
    let resources: Vec<(String, Resource)> = (0..10)
        .map(|n| {
            (
                format!("/clip-{n}.wav"),
                Resource {
                    cache_control: Some("max-age=3600"),
                    ..Resource::audio(
                        "audio/wav",
                        tone_wav(16_000, 1, 16_000, 200.0 + 50.0 * n as f32),
                    )
                },
            )
        })
        .collect();
    let server = MediaServer::start(
        resources
            .iter()
            .map(|(path, resource)| (path.as_str(), resource.clone()))
            .collect(),
    )
    .await;
    let app = TestApp::spawn_with(|config| {
        instant_calls(config);
        config.media.cache_bytes = budget;
    })
    .await;
    let tenant = app.tenant().await;
    for round in 0..2 {
        for n in 0..10 {
            resolve_url(&app, &tenant, &server.url(&format!("/clip-{n}.wav"))).await;
            let stats = cache_stats(&app).await;
            assert!(
                stats["bytes"].as_u64().unwrap_or(u64::MAX) <= budget,
                "round {round}: {stats}"
            );
            let on_disk: u64 = std::fs::read_dir(app.data_dir().join("media/clips"))
                .expect("clips")
                .filter_map(|entry| entry.ok()?.metadata().ok())
                .map(|metadata| metadata.len())
                .sum();
            assert!(on_disk <= budget, "{on_disk} bytes on disk");
        }
    }
    let stats = cache_stats(&app).await;
    assert_eq!(stats["clips"], 4, "{stats}");
    assert!(
        stats["evictions"].as_u64().unwrap_or_default() >= 16,
        "{stats}"
    );
    // The working set was larger than the cache: the second round fetched everything again.
    assert_eq!(server.requests("/clip-0.wav"), 2);

    // After a restart the index is rebuilt from disk: the four newest clips are hits.
    let app = app.restart().await;
    let tenant_again = tenant.clone();
    let stats = cache_stats(&app).await;
    assert_eq!(stats["clips"], 4, "{stats}");
    let newest = resolve_url(&app, &tenant_again, &server.url("/clip-9.wav")).await;
    assert_eq!(
        server.requests("/clip-9.wav"),
        2,
        "no fetch after the restart"
    );
    let (_, audio) = clip(
        &app,
        &tenant_again,
        newest["url"].as_str().unwrap_or_default(),
        "basic",
    )
    .await;
    assert_eq!(audio.len(), 8_000);
    app.shutdown().await;
}

#[tokio::test]
async fn tenants_upload_their_own_media() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let response = app
        .client
        .post(app.path("/v1/Media"))
        .basic_auth(&tenant.sid, Some(&tenant.token))
        .header("content-type", "audio/mpeg")
        .body(mp3_fixture())
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::CREATED);
    let uploaded: Value = response.json().await.expect("json");
    let duration = uploaded["duration_ms"].as_i64().expect("duration");
    assert!((duration - 2_000).abs() <= 26, "{uploaded}");
    let (content_type, audio) = clip(
        &app,
        &tenant,
        uploaded["url"].as_str().unwrap_or_default(),
        "basic",
    )
    .await;
    assert_eq!(content_type, "audio/basic");
    assert_eq!(audio.len() as i64, duration * 8);

    // Uploading the same audio again stores nothing new: the address is the content's hash.
    let again: Value = app
        .client
        .post(app.path("/v1/Media"))
        .basic_auth(&tenant.sid, Some(&tenant.token))
        .header("content-type", "audio/mpeg")
        .body(mp3_fixture())
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("json");
    assert_eq!(again["url"], uploaded["url"]);
    assert_eq!(cache_stats(&app).await["clips"], 1);

    // An upload is its tenant's: another account gets a 404 for its address, as for any
    // resource of another account.
    let other = app.tenant().await;
    let (status, _) = app
        .get(&other, uploaded["url"].as_str().unwrap_or_default())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let response = app
        .client
        .post(app.path("/v1/Media"))
        .basic_auth(&tenant.sid, Some(&tenant.token))
        .header("content-type", "audio/wav")
        .body("this is not audio")
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app
        .get(&tenant, "/v1/Media/MEffffffffffffffffffffffffffffffff")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get(&tenant, "/v1/Media/Cache").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the cache statistics are the operator's"
    );
    assert_eq!(scratch_files(&app), 0);
    app.shutdown().await;
}

#[tokio::test]
async fn media_endpoints_are_documented() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .client
        .get(app.path("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("json");
    for (path, method) in [
        ("/v1/Media", "post"),
        ("/v1/Media/{Id}", "get"),
        ("/v1/Media/Cache", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_module_that_has_speech_synthesized_is_charged_its_characters() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let (status, body) = app
        .upload(
            &tenant,
            "misbehave",
            "telephony-handler",
            switchboard_tests::guest("misbehave"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let result = app.misbehave(&tenant, "speak").await;
    assert_eq!(result["outcome"], "ok", "{result}");
    let said = result["output"][0]["text"].as_str().expect("text");
    let spoken_ms: i64 = said
        .trim_start_matches("spoke for ")
        .trim_end_matches(" ms")
        .parse()
        .expect("a duration");
    assert!(spoken_ms > 500, "{said}");
    let characters = "hello from a module".chars().count() as u64;
    assert_eq!(result["usage"]["tts_characters"], characters);
    // A module that has nothing synthesized is charged nothing.
    let plain = app.misbehave(&tenant, "kv").await;
    assert_eq!(plain["usage"]["tts_characters"], 0);
    let (_, usage) = app
        .get(&tenant, "/v1/Usage/Modules?ModuleName=misbehave")
        .await;
    assert_eq!(usage["usage"][0]["tts_characters"], characters, "{usage}");
    app.shutdown().await;
}
