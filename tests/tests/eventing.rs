//! Real-time eventing end to end: channels select events by type and by expression, and deliver
//! them to live SSE and WebSocket streams, signed webhooks and event-subscriber modules, at least
//! once and in order, through failures, hangs and a `kill -9` restart.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use switchboard_tests::{Tenant, TestApp, get, guest, post};

/// A host whose webhooks may target this machine and whose retries come quickly.
async fn spawn() -> TestApp {
    TestApp::spawn_with(configure).await
}

fn configure(config: &mut switchboard_host::config::Config) {
    config.events.allow_private_targets = true;
    config.events.retry_schedule_ms = vec![20, 40, 80];
    config.events.disable_after_failures = 5;
    config.events.webhook_timeout_ms = 1_000;
}

async fn channel(app: &TestApp, tenant: &Tenant, form: &[(&str, &str)]) -> String {
    let body = post(app, tenant, "/v1/Channels", form).await;
    body["sid"].as_str().expect("channel sid").to_string()
}

async fn publish_raw(
    app: &TestApp,
    tenant: &Tenant,
    channel: &str,
    event: &Value,
) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.path(&format!("/v1/Channels/{channel}/Events")))
        .basic_auth(&tenant.sid, Some(&tenant.token))
        .json(event)
        .send()
        .await
        .expect("publish");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Publishes a custom event and answers its sequence number.
async fn publish(
    app: &TestApp,
    tenant: &Tenant,
    channel: &str,
    event_type: &str,
    data: Value,
) -> i64 {
    let (status, body) = publish_raw(
        app,
        tenant,
        channel,
        &json!({"type": event_type, "data": data}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["sequence"].as_i64().expect("sequence")
}

/// Polls until `done` holds for the GET answer, or fails showing the last one.
async fn eventually(
    app: &TestApp,
    tenant: &Tenant,
    path: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..500 {
        last = get(app, tenant, path).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("GET {path} never reached the expected state: {last:#}");
}

/// One Server-Sent Events connection, parsed frame by frame.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

/// An SSE frame: its `id` (the sequence), `event` (the type) and the CloudEvent in `data`.
#[derive(Debug)]
struct Frame {
    id: i64,
    event: String,
    data: Value,
}

impl Sse {
    async fn connect(
        app: &TestApp,
        tenant: &Tenant,
        channel: &str,
        last_event_id: Option<i64>,
    ) -> Sse {
        let mut request = app
            .client
            .get(app.path(&format!("/v1/Channels/{channel}/Stream")))
            .basic_auth(&tenant.sid, Some(&tenant.token));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.expect("connect the stream");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let mut sse = Sse {
            response,
            buffer: String::new(),
        };
        // The opening comment says the stream is attached to the channel.
        sse.read_block().await.expect("the opening comment");
        sse
    }

    async fn read_block(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block = self.buffer[..end].to_string();
                self.buffer.drain(..end + 2);
                return Some(block);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event frame (comments skipped); panics after 10 s without one.
    async fn next(&mut self) -> Frame {
        loop {
            let block = self.read_block().await.expect("an event on the stream");
            if block.starts_with(':') {
                continue;
            }
            let mut frame = Frame {
                id: 0,
                event: String::new(),
                data: Value::Null,
            };
            for line in block.lines() {
                if let Some(id) = line.strip_prefix("id: ") {
                    frame.id = id.parse().expect("numeric id");
                } else if let Some(event) = line.strip_prefix("event: ") {
                    frame.event = event.to_string();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    frame.data = serde_json::from_str(data).expect("JSON data");
                }
            }
            return frame;
        }
    }

    /// Whether another event arrives within `ms`.
    async fn quiet_for(&mut self, ms: u64) -> bool {
        tokio::time::timeout(Duration::from_millis(ms), self.next())
            .await
            .is_err()
    }
}

/// A webhook endpoint: records each delivery and answers from a script of statuses (200 once the
/// script runs out), optionally after a delay.
#[derive(Clone, Default)]
struct Hook {
    /// Each delivery: its headers, its body and the status it was answered.
    received: Arc<Mutex<Vec<(axum::http::HeaderMap, String, u16)>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    default_status: Arc<Mutex<u16>>,
    delay_ms: Arc<Mutex<u64>>,
}

impl Hook {
    async fn start(hook: Hook) -> String {
        *hook.default_status.lock().unwrap() = 200;
        let state = hook.clone();
        let app =
            axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let delay = *state.delay_ms.lock().unwrap();
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    let status = state
                        .script
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or(*state.default_status.lock().unwrap());
                    state.received.lock().unwrap().push((headers, body, status));
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        url
    }

    fn bodies(&self) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body, _)| serde_json::from_str(body).expect("JSON body"))
            .collect()
    }

    async fn wait_for(&self, count: usize) -> Vec<Value> {
        for _ in 0..500 {
            if self.received.lock().unwrap().len() >= count {
                return self.bodies();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "the webhook received {:?}, expected {count} deliveries",
            self.bodies()
        );
    }
}

async fn subscribe_webhook(app: &TestApp, tenant: &Tenant, channel: &str, url: &str) -> Value {
    post(
        app,
        tenant,
        &format!("/v1/Channels/{channel}/Subscribers"),
        &[("Type", "webhook"), ("Url", url)],
    )
    .await
}

/// Verifies a delivery the way a Standard Webhooks receiver does.
fn signature_verifies(secret: &str, headers: &axum::http::HeaderMap, body: &str) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(
        format!(
            "{}.{}.{body}",
            header("webhook-id"),
            header("webhook-timestamp")
        )
        .as_bytes(),
    );
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

/// A workspace with one queue and a workflow into it: enough to create tasks.
async fn workspace(app: &TestApp, tenant: &Tenant) -> (String, String) {
    let ws = post(
        app,
        tenant,
        "/v1/Workspaces",
        &[("FriendlyName", "support")],
    )
    .await;
    let ws = ws["sid"].as_str().unwrap().to_string();
    let queue = post(
        app,
        tenant,
        &format!("/v1/Workspaces/{ws}/TaskQueues"),
        &[("FriendlyName", "everyone"), ("TargetWorkers", "1==1")],
    )
    .await;
    let config =
        json!({"task_routing": {"filters": [], "default_filter": {"queue": queue["sid"]}}})
            .to_string();
    let workflow = post(
        app,
        tenant,
        &format!("/v1/Workspaces/{ws}/Workflows"),
        &[("FriendlyName", "router"), ("Configuration", &config)],
    )
    .await;
    (ws, workflow["sid"].as_str().unwrap().to_string())
}

/// A host and an account with `examples/audit-subscriber` uploaded.
async fn with_auditor() -> (TestApp, Tenant) {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let (status, body) = app
        .upload(
            &tenant,
            "audit-subscriber",
            "event-subscriber",
            guest("audit_subscriber"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (app, tenant)
}

#[tokio::test]
async fn a_new_task_reaches_a_stream_a_signed_webhook_and_a_module() {
    let (app, tenant) = with_auditor().await;
    let tasks = channel(
        &app,
        &tenant,
        &[("UniqueName", "tasks"), ("EventTypes", "task.*")],
    )
    .await;
    let mut stream = Sse::connect(&app, &tenant, "tasks", None).await;
    let hook = Hook::default();
    let url = Hook::start(hook.clone()).await;
    let webhook = subscribe_webhook(&app, &tenant, &tasks, &url).await;
    let secret = webhook["secret"]
        .as_str()
        .expect("the secret, once")
        .to_string();
    assert!(secret.starts_with("whsec_"));
    let module = post(
        &app,
        &tenant,
        &format!("/v1/Channels/{tasks}/Subscribers"),
        &[("Type", "module"), ("Module", "module:audit-subscriber")],
    )
    .await;
    assert!(module.get("secret").is_none());

    let (ws, workflow) = workspace(&app, &tenant).await;
    let task = post(
        &app,
        &tenant,
        &format!("/v1/Workspaces/{ws}/Tasks"),
        &[
            ("WorkflowSid", &workflow),
            ("Attributes", r#"{"language": "fr"}"#),
        ],
    )
    .await;
    let task_sid = task["sid"].as_str().unwrap();

    // The stream: CloudEvents 1.0 with the sequence as the SSE id; only task.* events.
    let frame = stream.next().await;
    assert_eq!(frame.event, "task.created");
    let cloud = &frame.data;
    assert_eq!(cloud["specversion"], "1.0");
    assert_eq!(cloud["type"], "task.created");
    assert_eq!(cloud["sequence"], frame.id.to_string());
    assert!(cloud["id"].as_str().unwrap().starts_with("EV"));
    assert_eq!(cloud["data"]["resource_sid"], task_sid);
    assert!(cloud["source"].as_str().unwrap().contains(&ws));

    // The webhook: the same event, signed with the subscriber's secret.
    hook.wait_for(1).await;
    let (headers, body, _) = hook.received.lock().unwrap()[0].clone();
    assert_eq!(
        headers["content-type"].to_str().unwrap(),
        "application/cloudevents+json; charset=utf-8"
    );
    assert!(signature_verifies(&secret, &headers, &body), "{headers:?}");
    assert!(!signature_verifies(
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &headers,
        &body
    ));
    let delivered: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(delivered["id"], cloud["id"]);
    assert_eq!(
        headers["webhook-id"].to_str().unwrap(),
        cloud["id"].as_str().unwrap()
    );

    // The module: invoked (and metered) for each task event, successfully.
    let module_sid = module["sid"].as_str().unwrap();
    let status = eventually(
        &app,
        &tenant,
        &format!("/v1/Channels/{tasks}/Subscribers/{module_sid}"),
        |s| s["delivered_count"].as_i64() >= Some(1),
    )
    .await;
    assert_eq!(status["status"], "active");
    assert_eq!(status["consecutive_failures"], 0);
    assert!(status["last_success"].is_string());
    assert!(status["cursor"].as_i64().unwrap() >= frame.id);
    app.shutdown().await;
}

#[tokio::test]
async fn types_and_filters_select_exactly_the_matching_events() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let orders = channel(
        &app,
        &tenant,
        &[
            ("UniqueName", "orders"),
            ("EventTypes", "order.*"),
            ("Filter", "priority > 5 AND region IN ['eu', 'us']"),
            ("AllowPublish", "true"),
        ],
    )
    .await;
    let mut stream = Sse::connect(&app, &tenant, &orders, None).await;
    let mut published = Vec::new();
    for (event_type, data) in [
        ("order.created", json!({"priority": 7, "region": "eu"})),
        ("order.created", json!({"priority": 3, "region": "eu"})),
        ("order.created", json!({"priority": 9, "region": "apac"})),
        ("refund.created", json!({"priority": 9, "region": "us"})),
        ("order.shipped", json!({"priority": 6, "region": "us"})),
    ] {
        published.push(publish(&app, &tenant, "orders", event_type, data).await);
    }
    // Only the first and the last are of a selected type with priority > 5 in eu or us.
    let (wanted, also) = (published[0], published[4]);

    assert_eq!(stream.next().await.id, wanted);
    assert_eq!(stream.next().await.id, also);
    assert!(stream.quiet_for(300).await);
    let listed = get(&app, &tenant, &format!("/v1/Channels/{orders}/Events")).await;
    let sequences: Vec<i64> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, vec![wanted, also]);

    // A configuration change applies to the next event.
    post(
        &app,
        &tenant,
        &format!("/v1/Channels/{orders}"),
        &[("Filter", "priority < 5")],
    )
    .await;
    publish(
        &app,
        &tenant,
        "orders",
        "order.created",
        json!({"priority": 7, "region": "eu"}),
    )
    .await;
    let low = publish(
        &app,
        &tenant,
        "orders",
        "order.created",
        json!({"priority": 1}),
    )
    .await;
    assert_eq!(stream.next().await.id, low);
    app.shutdown().await;
}

#[tokio::test]
async fn a_failing_webhook_is_retried_in_order_and_a_410_disables_it() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let events = channel(
        &app,
        &tenant,
        &[("UniqueName", "ops"), ("AllowPublish", "true")],
    )
    .await;
    let hook = Hook::default();
    hook.script.lock().unwrap().extend([500, 503, 500]);
    let url = Hook::start(hook.clone()).await;
    let subscriber = subscribe_webhook(&app, &tenant, &events, &url).await;
    let sid = subscriber["sid"].as_str().unwrap().to_string();
    let first = publish(&app, &tenant, "ops", "ops.one", json!({})).await;
    let second = publish(&app, &tenant, "ops", "ops.two", json!({})).await;

    // Three failed attempts and the success, all of the first event, then the second once.
    let bodies = hook.wait_for(5).await;
    let order: Vec<String> = bodies
        .iter()
        .map(|b| b["sequence"].as_str().unwrap().to_string())
        .collect();
    let (a, b) = (first.to_string(), second.to_string());
    assert_eq!(order, vec![a.clone(), a.clone(), a.clone(), a, b]);
    let ids: Vec<&str> = bodies[..4]
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "a retry keeps the event id"
    );
    let status = eventually(
        &app,
        &tenant,
        &format!("/v1/Channels/{events}/Subscribers/{sid}"),
        |s| s["cursor"] == json!(second),
    )
    .await;
    assert_eq!(status["consecutive_failures"], 0);
    assert_eq!(status["delivered_count"], 2);
    assert!(
        status["last_error"].as_str().unwrap().contains("500"),
        "{status}"
    );
    assert!(hook.quiet_after(5, 200).await);

    // 410 Gone disables at once: no retry, an event says why.
    hook.script.lock().unwrap().push_back(410);
    publish(&app, &tenant, "ops", "ops.three", json!({})).await;
    let status = eventually(
        &app,
        &tenant,
        &format!("/v1/Channels/{events}/Subscribers/{sid}"),
        |s| s["status"] == "disabled",
    )
    .await;
    assert!(status["status_reason"].as_str().unwrap().contains("410"));
    assert!(hook.quiet_after(6, 300).await);
    let disabled = get(&app, &tenant, "/v1/Events?Type=subscriber.disabled").await;
    assert_eq!(disabled["events"][0]["subject"], json!(sid));

    // Re-enabling with a replay delivers from the chosen sequence number again.
    post(
        &app,
        &tenant,
        &format!("/v1/Channels/{events}/Subscribers/{sid}"),
        &[("ReplayFrom", &second.to_string())],
    )
    .await;
    let bodies = hook.wait_for(8).await;
    let replayed: Vec<&str> = bodies[6..8]
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(replayed, vec!["ops.two", "ops.three"]);
    app.shutdown().await;
}

impl Hook {
    /// Whether the count stays at `count` for `ms`.
    async fn quiet_after(&self, count: usize, ms: u64) -> bool {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.received.lock().unwrap().len() == count
    }
}

#[tokio::test]
async fn max_delivery_rate_paces_each_subscriber_on_the_host_clock() {
    let app = TestApp::spawn_with(|config| {
        configure(config);
        config.telephony.clock = switchboard_host::clock::ClockKind::Manual;
    })
    .await;
    let tenant = app.tenant().await;
    let events = channel(
        &app,
        &tenant,
        &[
            ("UniqueName", "slow"),
            ("AllowPublish", "true"),
            ("MaxDeliveryRate", "2"),
        ],
    )
    .await;
    let hook = Hook::default();
    let url = Hook::start(hook.clone()).await;
    subscribe_webhook(&app, &tenant, &events, &url).await;
    for n in 0..3 {
        publish(&app, &tenant, "slow", "slow.tick", json!({"n": n})).await;
    }
    hook.wait_for(1).await;
    // Two per second: the next one waits for half a second of the host's clock to pass.
    assert!(hook.quiet_after(1, 300).await);
    app.advance_clock(500).await;
    hook.wait_for(2).await;
    assert!(hook.quiet_after(2, 300).await);
    app.advance_clock(500).await;
    let bodies = hook.wait_for(3).await;
    let ns: Vec<i64> = bodies
        .iter()
        .map(|b| b["data"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, vec![0, 1, 2]);
    app.shutdown().await;
}

#[tokio::test]
async fn a_hung_webhook_delays_neither_another_subscriber_nor_the_publisher() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let events = channel(
        &app,
        &tenant,
        &[("UniqueName", "ops"), ("AllowPublish", "true")],
    )
    .await;
    let hung = Hook::default();
    *hung.delay_ms.lock().unwrap() = 60_000;
    let hung_url = Hook::start(hung.clone()).await;
    let healthy = Hook::default();
    let healthy_url = Hook::start(healthy.clone()).await;
    subscribe_webhook(&app, &tenant, &events, &hung_url).await;
    subscribe_webhook(&app, &tenant, &events, &healthy_url).await;
    for n in 0..5 {
        publish(&app, &tenant, "ops", "ops.tick", json!({"n": n})).await;
    }
    let bodies = healthy.wait_for(5).await;
    let ns: Vec<i64> = bodies
        .iter()
        .map(|b| b["data"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, vec![0, 1, 2, 3, 4]);
    assert!(hung.received.lock().unwrap().is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn a_stream_resumes_after_its_last_event_id_with_exactly_the_missed_events() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    channel(
        &app,
        &tenant,
        &[("UniqueName", "feed"), ("AllowPublish", "true")],
    )
    .await;
    let mut stream = Sse::connect(&app, &tenant, "feed", None).await;
    let first = publish(&app, &tenant, "feed", "feed.item", json!({"n": 1})).await;
    assert_eq!(stream.next().await.id, first);
    drop(stream);
    let mut missed = Vec::new();
    for n in 2..=4 {
        missed.push(publish(&app, &tenant, "feed", "feed.item", json!({"n": n})).await);
    }
    let mut resumed = Sse::connect(&app, &tenant, "feed", Some(first)).await;
    for expected in &missed {
        let frame = resumed.next().await;
        assert_eq!(frame.id, *expected);
        assert_eq!(frame.data["sequence"], expected.to_string());
    }
    let live = publish(&app, &tenant, "feed", "feed.item", json!({"n": 5})).await;
    assert_eq!(resumed.next().await.id, live);
    assert!(resumed.quiet_for(200).await, "no event twice");

    // The same over WebSocket, resuming with the query parameter.
    let ws_url = format!(
        "{}/v1/Channels/feed/Stream?LastEventId={}",
        app.url.replace("http://", "ws://"),
        missed[2]
    );
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url)
            .unwrap();
    let credentials = STANDARD.encode(format!("{}:{}", tenant.sid, tenant.token));
    request.headers_mut().insert(
        "authorization",
        format!("Basic {credentials}").parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket");
    let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a message")
        .expect("open")
        .expect("text");
    let cloud: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
    assert_eq!(cloud["sequence"], live.to_string());
    app.shutdown().await;
}

#[tokio::test]
async fn pending_deliveries_survive_a_kill_and_restart() {
    let app = TestApp::spawn_crashable(|config| {
        configure(config);
        config.events.retry_schedule_ms = vec![50];
        config.events.disable_after_failures = 10_000;
    })
    .await;
    let tenant = app.tenant().await;
    let events = channel(
        &app,
        &tenant,
        &[("UniqueName", "ledger"), ("AllowPublish", "true")],
    )
    .await;
    let hook = Hook::default();
    let url = Hook::start(hook.clone()).await;
    *hook.default_status.lock().unwrap() = 503;
    subscribe_webhook(&app, &tenant, &events, &url).await;
    let mut published = Vec::new();
    for n in 0..3 {
        published.push(publish(&app, &tenant, "ledger", "ledger.entry", json!({"n": n})).await);
    }
    hook.wait_for(2).await;
    let app = app.crash_and_restart().await;
    *hook.default_status.lock().unwrap() = 200;
    // Every acknowledged event is delivered after the restart, in order, none skipped (a
    // repeat is allowed: at least once).
    let mut delivered: Vec<i64> = Vec::new();
    for _ in 0..500 {
        delivered = hook
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, status)| *status == 200)
            .map(|(_, body, _)| {
                let body: Value = serde_json::from_str(body).unwrap();
                body["sequence"].as_str().unwrap().parse().unwrap()
            })
            .collect();
        delivered.dedup();
        if delivered.len() >= published.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(delivered, published);
    app.shutdown().await;
}

#[tokio::test]
async fn module_uploads_traps_and_limits_are_events() {
    let app = TestApp::spawn_with(|config| config.limits.fuel = 50_000_000).await;
    let tenant = app.tenant().await;
    channel(
        &app,
        &tenant,
        &[("UniqueName", "modules"), ("EventTypes", "module.*")],
    )
    .await;
    let mut stream = Sse::connect(&app, &tenant, "modules", None).await;
    let (status, body) = app
        .upload(
            &tenant,
            "misbehave",
            "telephony-handler",
            guest("misbehave"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let uploaded = stream.next().await;
    assert_eq!(uploaded.event, "module.uploaded");
    assert_eq!(uploaded.data["data"]["module_name"], "misbehave");
    assert_eq!(uploaded.data["data"]["module_version"], 1);

    app.misbehave(&tenant, "trap").await;
    let trapped = stream.next().await;
    assert_eq!(trapped.event, "module.trapped");
    assert_eq!(trapped.data["data"]["outcome"], "unreachable");
    app.misbehave(&tenant, "loop").await;
    let limited = stream.next().await;
    assert_eq!(limited.event, "module.limit-reached");
    assert_eq!(limited.data["data"]["outcome"], "out-of-fuel");
    assert!(trapped.id < limited.id);
    app.shutdown().await;
}

#[tokio::test]
async fn accounts_never_see_each_others_channels_or_events() {
    let app = spawn().await;
    let alice = app.tenant().await;
    let bob = app.tenant().await;
    let mine = channel(
        &app,
        &alice,
        &[("UniqueName", "all"), ("AllowPublish", "true")],
    )
    .await;
    let theirs = channel(
        &app,
        &bob,
        &[("UniqueName", "all"), ("AllowPublish", "true")],
    )
    .await;
    let mut stream = Sse::connect(&app, &alice, "all", None).await;
    publish(&app, &bob, "all", "secret.plan", json!({"owner": "bob"})).await;
    workspace(&app, &bob).await;
    let own = publish(&app, &alice, "all", "own.note", json!({})).await;
    assert_eq!(
        stream.next().await.id,
        own,
        "bob's events never reach alice"
    );
    let listed = get(&app, &alice, &format!("/v1/Channels/{mine}/Events")).await;
    assert_eq!(listed["events"].as_array().unwrap().len(), 1);

    for path in [
        format!("/v1/Channels/{theirs}"),
        format!("/v1/Channels/{theirs}/Subscribers"),
        format!("/v1/Channels/{theirs}/Events"),
        format!("/v1/Channels/{theirs}/Stream"),
    ] {
        let (status, body) = app.get(&alice, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, _) = publish_raw(&app, &alice, &theirs, &json!({"type": "x.y", "data": {}})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.shutdown().await;
}

/// The router reads only the log of accounts that have a channel, and every account's log once
/// more accounts have one than it names in a query: both ways a stream gets its own events, and
/// events written meanwhile by an account without a channel do not get in the way.
#[tokio::test]
async fn streams_get_their_events_whether_few_or_many_accounts_have_channels() {
    let app = spawn().await;
    let quiet = app.tenant().await;
    workspace(&app, &quiet).await;
    let alice = app.tenant().await;
    channel(
        &app,
        &alice,
        &[("UniqueName", "all"), ("AllowPublish", "true")],
    )
    .await;
    let mut stream = Sse::connect(&app, &alice, "all", None).await;
    workspace(&app, &quiet).await;
    let first = publish(&app, &alice, "all", "first.note", json!({})).await;
    assert_eq!(stream.next().await.id, first);

    for _ in 0..70 {
        let other = app.tenant().await;
        channel(&app, &other, &[("UniqueName", "all")]).await;
    }
    workspace(&app, &quiet).await;
    let second = publish(&app, &alice, "all", "second.note", json!({})).await;
    let frame = stream.next().await;
    assert_eq!((frame.id, frame.event.as_str()), (second, "second.note"));
    app.shutdown().await;
}

#[tokio::test]
async fn an_event_subscriber_module_counts_and_publishes_alerts() {
    let (app, tenant) = with_auditor().await;
    let audit = channel(
        &app,
        &tenant,
        &[
            ("UniqueName", "queue-audit"),
            ("EventTypes", "queue.*"),
            ("EventTypes", "audit.configure"),
            ("AllowPublish", "true"),
        ],
    )
    .await;
    let alerts = channel(
        &app,
        &tenant,
        &[
            ("UniqueName", "alerts"),
            ("AllowPublish", "true"),
            ("EventTypes", "queue.wait-alert"),
        ],
    )
    .await;
    let mut alert_stream = Sse::connect(&app, &tenant, &alerts, None).await;
    post(
        &app,
        &tenant,
        &format!("/v1/Channels/{audit}/Subscribers"),
        &[("Type", "module"), ("Module", "audit-subscriber")],
    )
    .await;
    publish(
        &app,
        &tenant,
        "queue-audit",
        "audit.configure",
        json!({"wait_threshold_ms": 1000}),
    )
    .await;
    let left = |wait_ms: i64| json!({"queue_sid": "QU1", "queue": "support", "wait_ms": wait_ms});
    publish(&app, &tenant, "queue-audit", "queue.member-left", left(400)).await;
    publish(
        &app,
        &tenant,
        "queue-audit",
        "queue.member-left",
        left(2500),
    )
    .await;

    let frame = alert_stream.next().await;
    assert_eq!(frame.event, "queue.wait-alert");
    assert_eq!(frame.data["data"]["wait_ms"], 2500);
    assert_eq!(frame.data["data"]["threshold_ms"], 1000);
    assert_eq!(frame.data["data"]["callers_left"], 2);
    assert!(
        alert_stream.quiet_for(300).await,
        "the short wait raised no alert"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn bad_channel_subscriber_and_event_input_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    for (form, needle) in [
        (("Filter", "priority >"), "Filter is not valid"),
        (("EventTypes", "task*"), "prefix glob"),
        (("RetentionSeconds", "0"), "RetentionSeconds"),
        (("AllowPublish", "maybe"), "AllowPublish"),
    ] {
        let (status, body) = app.post_form(&tenant, "/v1/Channels", &[form]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}: {body}");
        assert!(body["message"].as_str().unwrap().contains(needle), "{body}");
    }
    let listed = get(&app, &tenant, "/v1/Channels").await;
    assert!(listed["channels"].as_array().unwrap().is_empty());

    let sid = channel(&app, &tenant, &[("UniqueName", "quiet")]).await;
    let (status, body) = app
        .post_form(&tenant, "/v1/Channels", &[("UniqueName", "quiet")])
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Publishing needs AllowPublish, a JSON object, a valid type and a bounded size.
    let (status, body) =
        publish_raw(&app, &tenant, &sid, &json!({"type": "a.b", "data": {}})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], 50001);
    post(
        &app,
        &tenant,
        &format!("/v1/Channels/{sid}"),
        &[("AllowPublish", "true")],
    )
    .await;
    for (event, expected) in [
        (json!({"type": "a.b", "data": [1]}), StatusCode::BAD_REQUEST),
        (json!({"type": "a b", "data": {}}), StatusCode::BAD_REQUEST),
        (json!({"data": {}}), StatusCode::BAD_REQUEST),
        (
            json!({"type": "a.b", "data": {"blob": "x".repeat(70_000)}}),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let (status, body) = publish_raw(&app, &tenant, &sid, &event).await;
        assert_eq!(status, expected, "{body}");
    }
    let listed = get(&app, &tenant, &format!("/v1/Channels/{sid}/Events")).await;
    assert!(listed["events"].as_array().unwrap().is_empty());

    // Webhooks to this machine are refused unless the operator allows them; unknown kinds too.
    let subscribers = format!("/v1/Channels/{sid}/Subscribers");
    let (status, body) = app
        .post_form(
            &tenant,
            &subscribers,
            &[("Type", "webhook"), ("Url", "http://127.0.0.1:9/hook")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 50002);
    for form in [
        &[("Type", "carrier-pigeon"), ("Url", "http://example.com")][..],
        &[("Type", "module"), ("Module", "module:nothing-here")][..],
        &[("Type", "webhook"), ("Url", "ftp://example.com/x")][..],
    ] {
        let (status, body) = app.post_form(&tenant, &subscribers, form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}: {body}");
    }
    let (status, body) = app
        .post_form(&tenant, &subscribers, &[("Type", "stream")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("/Stream"));
    let listed = get(&app, &tenant, &subscribers).await;
    assert!(listed["subscribers"].as_array().unwrap().is_empty());

    let (status, _) = app
        .client
        .get(app.path(&format!("/v1/Channels/{sid}/Stream")))
        .basic_auth(&tenant.sid, Some(&tenant.token))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.shutdown().await;
}
