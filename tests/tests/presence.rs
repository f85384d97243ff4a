//! Presence end to end: API keys and access tokens, clients registering over the WebSocket, calls
//! ringing every endpoint of an identity, calls placed by clients, heartbeat leases, and workers
//! whose activity follows their client.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;
use switchboard_host::clock::ClockKind;
use switchboard_host::presence::token::{TokenSpec, mint};
use switchboard_tests::{HttpApp, Reply, Tenant, TestApp, get, guest, has_experience, json, post};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn spawn() -> TestApp {
    TestApp::spawn_with(|config| {
        config.telephony.clock = ClockKind::Manual;
        config.telephony.media_speed = 0.0;
        config.telephony.http_timeout_ms = 2_000;
    })
    .await
}

/// An API key's sid and secret.
struct Key {
    sid: String,
    secret: String,
}

async fn create_key(app: &TestApp, tenant: &Tenant) -> Key {
    let body = post(app, tenant, "/v1/Keys", &[("FriendlyName", "softphones")]).await;
    Key {
        sid: body["sid"].as_str().expect("sid").to_string(),
        secret: body["secret"].as_str().expect("secret").to_string(),
    }
}

/// The host's clock in Unix seconds (a manual clock starts at the real time).
fn now_s() -> i64 {
    switchboard_host::store::now_ms() / 1000
}

fn token(tenant: &Tenant, key: &Key, identity: &str) -> String {
    mint(&TokenSpec {
        account_sid: tenant.sid.clone(),
        key_sid: key.sid.clone(),
        key_secret: key.secret.clone(),
        identity: identity.into(),
        incoming: true,
        outgoing_application_sid: None,
        issued_at: now_s(),
        ttl_seconds: 3600,
    })
    .expect("token")
}

/// A client connection.
struct Client {
    socket: Socket,
}

impl Client {
    async fn connect(app: &TestApp, token: &str) -> Client {
        let url = format!(
            "{}/v1/Presence/Connect?token={token}",
            app.url.replacen("http", "ws", 1)
        );
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket");
        Client { socket }
    }

    /// Connects and waits for `registered`; answers the endpoint id.
    async fn register(app: &TestApp, token: &str) -> (Client, String) {
        let mut client = Self::connect(app, token).await;
        let hello = client.next().await;
        assert_eq!(hello["type"], "registered", "{hello}");
        let endpoint = hello["endpoint_id"].as_str().expect("endpoint").to_string();
        (client, endpoint)
    }

    /// The next message, as JSON.
    async fn next(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("a message within 10 s")
                .expect("the socket is open")
                .expect("a frame");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// The next message of `kind`, skipping others.
    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let message = self.next().await;
            if message["type"] == kind {
                return message;
            }
        }
    }

    async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send");
    }

    /// Reads until the host closes the socket; the messages before it and the close frame.
    async fn closed(&mut self) -> (Vec<Value>, u16, String) {
        let mut before = Vec::new();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("the socket closes within 10 s");
            match message {
                Some(Ok(Message::Text(text))) => {
                    before.push(serde_json::from_str(&text).expect("JSON"))
                }
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (before, u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                    return (before, u16::from(CloseCode::Status), String::new());
                }
                Some(Ok(_)) => continue,
            }
        }
    }
}

async fn online(app: &TestApp, tenant: &Tenant) -> Vec<String> {
    let body = get(app, tenant, "/v1/Presence/Clients").await;
    body["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .map(|c| c["identity"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Polls until the online identities are `expected`.
async fn wait_online(app: &TestApp, tenant: &Tenant, expected: &[&str]) {
    for _ in 0..500 {
        if online(app, tenant).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "online clients stayed {:?}, expected {expected:?}",
        online(app, tenant).await
    );
}

/// Waits until `count` timers sleep on the host clock.
async fn wait_timers(app: &TestApp, count: u64) {
    for _ in 0..500 {
        let (_, clock) = app.operator_get("/v1/Sim/Clock").await;
        if clock["pending_timers"].as_u64() == Some(count) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the host never had {count} timers pending");
}

async fn events_of(app: &TestApp, tenant: &Tenant, kind: &str) -> Vec<Value> {
    let body = get(app, tenant, &format!("/v1/Events?Type={kind}")).await;
    body["events"].as_array().cloned().unwrap_or_default()
}

/// Polls until the log holds `count` events of `kind` (an endpoint leaves the directory before
/// its `presence.offline` commits).
async fn wait_events(app: &TestApp, tenant: &Tenant, kind: &str, count: usize) -> Vec<Value> {
    for _ in 0..500 {
        let events = events_of(app, tenant, kind).await;
        if events.len() >= count {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    events_of(app, tenant, kind).await
}

#[tokio::test]
async fn tokens_register_or_are_refused_with_a_clear_close_reason() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let key = create_key(&app, &tenant).await;

    // The secret is shown once: never in a fetch or a list, and other accounts see no key at all.
    let fetched = get(&app, &tenant, &format!("/v1/Keys/{}", key.sid)).await;
    assert!(fetched.get("secret").is_none(), "{fetched}");
    let listed = get(&app, &tenant, "/v1/Keys").await;
    assert_eq!(listed["keys"].as_array().map(Vec::len), Some(1));
    assert!(listed["keys"][0].get("secret").is_none());
    let other = app.tenant().await;
    let (status, _) = app.get(&other, &format!("/v1/Keys/{}", key.sid)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete(&other, &format!("/v1/Keys/{}", key.sid)).await,
        StatusCode::NOT_FOUND
    );

    let (mut alice, endpoint) = Client::register(&app, &token(&tenant, &key, "alice")).await;
    assert!(endpoint.starts_with("EP"));
    let status = get(&app, &tenant, "/v1/Presence/Clients/alice").await;
    assert_eq!(status["online"], true);
    assert_eq!(status["endpoints"][0]["id"], json!(endpoint));

    let spec = |identity: &str| TokenSpec {
        account_sid: tenant.sid.clone(),
        key_sid: key.sid.clone(),
        key_secret: key.secret.clone(),
        identity: identity.into(),
        incoming: true,
        outgoing_application_sid: None,
        issued_at: now_s(),
        ttl_seconds: 3600,
    };
    let deleted = create_key(&app, &tenant).await;
    assert_eq!(
        app.delete(&tenant, &format!("/v1/Keys/{}", deleted.sid))
            .await,
        StatusCode::NO_CONTENT
    );
    let refused = [
        (
            mint(&TokenSpec {
                issued_at: now_s() - 7200,
                ..spec("expired")
            })
            .expect("token"),
            51002,
            4401,
            "expired",
        ),
        (
            mint(&TokenSpec {
                key_secret: "not-the-secret".into(),
                ..spec("forged")
            })
            .expect("token"),
            51001,
            4401,
            "signature",
        ),
        (
            mint(&TokenSpec {
                key_sid: deleted.sid.clone(),
                key_secret: deleted.secret.clone(),
                ..spec("revoked")
            })
            .expect("token"),
            51003,
            4401,
            "revoked",
        ),
        (
            mint(&TokenSpec {
                incoming: false,
                ..spec("caller-only")
            })
            .expect("token"),
            51004,
            4403,
            "incoming",
        ),
        ("not.a.token".to_string(), 51001, 4401, "JWT"),
    ];
    for (token, code, close, reason) in refused {
        let mut client = Client::connect(&app, &token).await;
        let (before, close_code, close_reason) = client.closed().await;
        assert_eq!(before.len(), 1, "{before:?}");
        assert_eq!(before[0]["type"], "error");
        assert_eq!(before[0]["code"], code, "{before:?}");
        assert_eq!(close_code, close, "{close_reason}");
        assert!(
            close_reason.contains(reason),
            "{close_reason:?} should mention {reason:?}"
        );
    }
    // Refused tokens registered nothing.
    assert_eq!(online(&app, &tenant).await, ["alice"]);
    let went_online = events_of(&app, &tenant, "presence.online").await;
    assert_eq!(went_online.len(), 1, "{went_online:?}");
    assert_eq!(went_online[0]["data"]["identity"], "alice");

    // Deleting the key revokes the token alice registered with: she is disconnected.
    assert_eq!(
        app.delete(&tenant, &format!("/v1/Keys/{}", key.sid)).await,
        StatusCode::NO_CONTENT
    );
    let (before, close_code, _) = alice.closed().await;
    assert_eq!(close_code, 4401);
    assert_eq!(before.last().map(|m| m["code"].clone()), Some(json!(51003)));
    wait_online(&app, &tenant, &[]).await;
    let went_offline = wait_events(&app, &tenant, "presence.offline", 1).await;
    assert_eq!(went_offline.len(), 1);
    assert_eq!(went_offline[0]["data"]["reason"], "revoked");

    // Suspending an account disconnects its clients at once.
    let key = create_key(&app, &other).await;
    let (mut carol, _) = Client::register(&app, &token(&other, &key, "carol")).await;
    let response = app
        .client
        .post(app.path(&format!("/v1/Accounts/{}", other.sid)))
        .bearer_auth(&app.admin_token)
        .form(&[("Status", "suspended")])
        .send()
        .await
        .expect("suspend");
    assert_eq!(response.status(), StatusCode::OK);
    let (before, close_code, reason) = carol.closed().await;
    assert_eq!(close_code, 4401, "{reason}");
    assert!(reason.contains("suspended"), "{reason}");
    assert_eq!(before.last().map(|m| m["code"].clone()), Some(json!(51003)));
    app.shutdown().await;
}

/// The leg a dial opened, from the caller's timeline.
fn dialled_leg(timeline: &Value) -> Option<String> {
    timeline["timeline"]
        .as_array()?
        .iter()
        .find(|e| e["type"] == "dialing")
        .and_then(|e| e["call_sid"].as_str().map(str::to_string))
}

/// A host with a tenant, a key, and the number +14155550100 whose HTTP application answers `dial`
/// at `/dial` and "after" at `/after` (the dial's action).
async fn dialling(dial: &str) -> (HttpApp, TestApp, Tenant, Key) {
    let web = HttpApp::start(vec![
        ("/dial", Reply::twiml(dial)),
        (
            "/after",
            Reply::twiml("<Response><Say>after</Say></Response>"),
        ),
    ])
    .await;
    let app = spawn().await;
    let tenant = app.tenant().await;
    let key = create_key(&app, &tenant).await;
    app.buy_number(&tenant, "+14155550100", &[("VoiceUrl", &web.url("/dial"))])
        .await;
    (web, app, tenant, key)
}

#[tokio::test]
async fn dial_client_rings_every_endpoint_and_the_first_accept_wins() {
    let (web, app, tenant, key) = dialling(
        "<Response><Dial action=\"/after\" timeout=\"20\"><Client>alice</Client></Dial></Response>",
    )
    .await;
    let (mut phone, _) = Client::register(&app, &token(&tenant, &key, "alice")).await;
    let (mut laptop, _) = Client::register(&app, &token(&tenant, &key, "alice")).await;
    let status = get(&app, &tenant, "/v1/Presence/Clients/alice").await;
    assert_eq!(status["endpoints"].as_array().map(Vec::len), Some(2));

    let call = app
        .place_call(&tenant, "+14155550199", "+14155550100")
        .await;
    let rung_phone = phone.next_of("incoming").await;
    let rung_laptop = laptop.next_of("incoming").await;
    let leg = rung_phone["call_sid"].as_str().expect("leg").to_string();
    assert_eq!(rung_laptop["call_sid"], json!(leg));
    assert_eq!(rung_phone["from"], "+14155550199");
    assert_eq!(rung_phone["to"], "client:alice");

    laptop
        .send(json!({"type": "accept", "call_sid": leg}))
        .await;
    let told = phone.next().await;
    assert_eq!(told, json!({"type": "answered-elsewhere", "call_sid": leg}));
    app.wait_for(&tenant, &call, |t| has_experience(t, "bridged"))
        .await;
    // The phone can no longer take the call.
    phone.send(json!({"type": "accept", "call_sid": leg})).await;
    let refused = phone.next().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["call_sid"], json!(leg));

    app.advance_clock(4_000).await;
    laptop
        .send(json!({"type": "hangup", "call_sid": leg}))
        .await;
    assert_eq!(
        laptop.next_of("hangup").await,
        json!({"type": "hangup", "call_sid": leg})
    );
    app.wait_ended(&tenant, &call).await;
    let after = web
        .received()
        .into_iter()
        .find(|r| r.path == "/after")
        .expect("the dial's action was requested");
    assert_eq!(after.param("DialCallStatus"), Some("completed"));
    assert_eq!(after.param("DialCallSid"), Some(leg.as_str()));
    assert_eq!(after.param("DialCallDuration"), Some("4"));
    let (_, child) = app
        .get(
            &tenant,
            &app.account_path(&tenant, &format!("Calls/{leg}.json")),
        )
        .await;
    assert_eq!(child["to"], "client:alice");
    assert_eq!(child["status"], "completed");
    assert_eq!(child["ended_by"], "callee");

    // Nobody answers within the dial's timeout: no-answer, and both endpoints hear it stopped.
    let call = app
        .place_call(&tenant, "+14155550199", "+14155550100")
        .await;
    let leg = phone.next_of("incoming").await["call_sid"].clone();
    laptop.next_of("incoming").await;
    // Two lease timers, and the dial's ring timeout once it is armed.
    wait_timers(&app, 3).await;
    app.advance_clock(20_000).await;
    assert_eq!(
        phone.next_of("canceled").await,
        json!({"type": "canceled", "call_sid": leg})
    );
    laptop.next_of("canceled").await;
    app.wait_ended(&tenant, &call).await;

    // Every endpoint rejects: busy.
    let call = app
        .place_call(&tenant, "+14155550199", "+14155550100")
        .await;
    let leg = phone.next_of("incoming").await["call_sid"].clone();
    laptop.next_of("incoming").await;
    phone.send(json!({"type": "reject", "call_sid": leg})).await;
    laptop
        .send(json!({"type": "reject", "call_sid": leg}))
        .await;
    app.wait_ended(&tenant, &call).await;

    // Alice goes offline: the dial ends no-answer at once, ringing nobody.
    drop(phone);
    drop(laptop);
    wait_online(&app, &tenant, &[]).await;
    let call = app
        .place_call(&tenant, "+14155550199", "+14155550100")
        .await;
    let timeline = app.wait_ended(&tenant, &call).await;
    assert_eq!(dialled_leg(&timeline), None, "{timeline:#}");

    let statuses: Vec<String> = web
        .received()
        .into_iter()
        .filter(|r| r.path == "/after")
        .filter_map(|r| r.param("DialCallStatus").map(str::to_string))
        .collect();
    assert_eq!(statuses, ["completed", "no-answer", "busy", "no-answer"]);
    app.shutdown().await;
}

#[tokio::test]
async fn heartbeat_lapse_takes_the_client_offline_with_an_event() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let key = create_key(&app, &tenant).await;
    let (mut alice, endpoint) = Client::register(&app, &token(&tenant, &key, "alice")).await;
    // The default lease is 75 s: a heartbeat at 60 s carries her to 135 s.
    app.advance_clock(60_000).await;
    alice.send(json!({"type": "heartbeat"})).await;
    let ack = alice.next_of("heartbeat").await;
    assert!(ack["lease_expires_at"].is_string(), "{ack}");
    app.advance_clock(60_000).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(online(&app, &tenant).await, ["alice"]);
    app.advance_clock(20_000).await;
    let (_, close_code, reason) = alice.closed().await;
    assert_eq!(close_code, 4408, "{reason}");
    assert!(reason.contains("heartbeat"), "{reason}");
    wait_online(&app, &tenant, &[]).await;
    let offline = wait_events(&app, &tenant, "presence.offline", 1).await;
    assert_eq!(offline.len(), 1);
    assert_eq!(offline[0]["data"]["reason"], "lease-expired");
    assert_eq!(offline[0]["data"]["endpoint_id"], json!(endpoint));
    app.shutdown().await;
}

#[tokio::test]
async fn a_client_with_an_outgoing_grant_places_a_call_through_its_application() {
    let web = HttpApp::start(vec![(
        "/client-app",
        Reply::twiml("<Response><Say>hello client</Say></Response>"),
    )])
    .await;
    let app = spawn().await;
    let tenant = app.tenant().await;
    let key = create_key(&app, &tenant).await;
    let application = post(
        &app,
        &tenant,
        &app.account_path(&tenant, "Applications.json"),
        &[
            ("FriendlyName", "softphone"),
            ("VoiceUrl", &web.url("/client-app")),
        ],
    )
    .await;
    let application_sid = application["sid"].as_str().expect("sid").to_string();
    let caller = mint(&TokenSpec {
        account_sid: tenant.sid.clone(),
        key_sid: key.sid.clone(),
        key_secret: key.secret.clone(),
        identity: "alice".into(),
        incoming: true,
        outgoing_application_sid: Some(application_sid.clone()),
        issued_at: now_s(),
        ttl_seconds: 3600,
    })
    .expect("token");
    let (mut alice, _) = Client::register(&app, &caller).await;
    alice
        .send(json!({"type": "call", "to": "+14155550123", "params": {"Topic": "billing"}}))
        .await;
    let calling = alice.next_of("calling").await;
    let call = calling["call_sid"].as_str().expect("call sid").to_string();
    assert_eq!(calling["to"], "+14155550123");
    assert_eq!(
        alice.next_of("hangup").await,
        json!({"type": "hangup", "call_sid": call})
    );
    let asked = web
        .received()
        .into_iter()
        .find(|r| r.path == "/client-app")
        .expect("the application was asked");
    assert_eq!(asked.param("CallSid"), Some(call.as_str()));
    assert_eq!(asked.param("From"), Some("client:alice"));
    assert_eq!(asked.param("Caller"), Some("client:alice"));
    assert_eq!(asked.param("To"), Some("+14155550123"));
    assert_eq!(asked.param("Direction"), Some("inbound"));
    assert_eq!(
        asked.param("ApplicationSid"),
        Some(application_sid.as_str())
    );
    assert_eq!(asked.param("Topic"), Some("billing"));

    // Without the grant the client cannot place calls.
    let (mut bob, _) = Client::register(&app, &token(&tenant, &key, "bob")).await;
    bob.send(json!({"type": "call", "to": "+14155550123"}))
        .await;
    let refused = bob.next().await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], 51004, "{refused}");
    bob.send(json!({"type": "dance"})).await;
    assert_eq!(bob.next().await["code"], 51006);
    app.shutdown().await;
}

#[tokio::test]
async fn rest_calls_to_a_client_ring_it_and_an_offline_client_is_not_rung() {
    let web = HttpApp::start(vec![(
        "/answered",
        Reply::twiml("<Response><Say>you answered</Say></Response>"),
    )])
    .await;
    let app = spawn().await;
    let tenant = app.tenant().await;
    let key = create_key(&app, &tenant).await;
    let (mut alice, _) = Client::register(&app, &token(&tenant, &key, "alice")).await;
    let calls = app.account_path(&tenant, "Calls.json");
    let url = web.url("/answered");
    let form = [
        ("To", "client:alice"),
        ("From", "+14155550100"),
        ("Url", url.as_str()),
    ];
    let call = post(&app, &tenant, &calls, &form).await;
    let sid = call["sid"].as_str().expect("sid").to_string();
    let incoming = alice.next_of("incoming").await;
    assert_eq!(incoming["call_sid"], json!(sid));
    alice.send(json!({"type": "accept", "call_sid": sid})).await;
    assert_eq!(
        alice.next_of("hangup").await,
        json!({"type": "hangup", "call_sid": sid})
    );
    let timeline = app.wait_ended(&tenant, &sid).await;
    assert_eq!(timeline["status"], "completed", "{timeline:#}");

    drop(alice);
    wait_online(&app, &tenant, &[]).await;
    let call = post(&app, &tenant, &calls, &form).await;
    let sid = call["sid"].as_str().expect("sid").to_string();
    let timeline = app.wait_ended(&tenant, &sid).await;
    assert_eq!(timeline["status"], "no-answer", "{timeline:#}");
    assert!(
        !timeline["timeline"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["status"] == "ringing"),
        "{timeline:#}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_ivr_operator_branch_dials_the_client_when_online_and_queues_when_not() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    for (name, file) in [("ivr", "ivr"), ("ivr-desk", "ivr_desk")] {
        let (status, body) = app
            .upload(&tenant, name, "telephony-handler", guest(file))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    app.buy_number(&tenant, "+14155550100", &[("VoiceUrl", "module:ivr")])
        .await;
    let queue = post(
        &app,
        &tenant,
        &app.account_path(&tenant, "Queues.json"),
        &[("FriendlyName", "operator")],
    )
    .await;
    let queue_sid = queue["sid"].as_str().expect("queue").to_string();

    // Offline operator: the caller waits in the operator queue.
    let call = app
        .place_call(&tenant, "+14155550199", "+14155550100")
        .await;
    app.wait_for(&tenant, &call, |t| has_experience(t, "gather"))
        .await;
    app.sim(&tenant, &call, "Digits", &[("Digits", "0")]).await;
    let members = app.account_path(&tenant, &format!("Queues/{queue_sid}/Members.json"));
    for _ in 0..500 {
        let body = get(&app, &tenant, &members).await;
        if body["queue_members"]
            .as_array()
            .is_some_and(|m| m.len() == 1)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let body = get(&app, &tenant, &members).await;
    assert_eq!(body["queue_members"][0]["call_sid"], json!(call), "{body}");
    app.sim(&tenant, &call, "Hangup", &[]).await;
    app.wait_ended(&tenant, &call).await;

    // Online operator: the module's presence lookup sees it and the caller is put through.
    let key = create_key(&app, &tenant).await;
    let (mut operator, _) = Client::register(&app, &token(&tenant, &key, "operator")).await;
    let call = app
        .place_call(&tenant, "+14155550199", "+14155550100")
        .await;
    app.wait_for(&tenant, &call, |t| has_experience(t, "gather"))
        .await;
    app.sim(&tenant, &call, "Digits", &[("Digits", "0")]).await;
    let incoming = operator.next_of("incoming").await;
    assert_eq!(incoming["from"], "+14155550199");
    let leg = incoming["call_sid"].clone();
    operator
        .send(json!({"type": "accept", "call_sid": leg}))
        .await;
    app.wait_for(&tenant, &call, |t| has_experience(t, "bridged"))
        .await;
    operator
        .send(json!({"type": "hangup", "call_sid": leg}))
        .await;
    let timeline = app.wait_ended(&tenant, &call).await;
    let said: Vec<&str> = timeline["timeline"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["type"] == "say")
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(
        said.contains(&"Thank you for calling. Goodbye."),
        "{said:?}"
    );
    app.shutdown().await;
}

/// Polls the worker until its activity is named `activity`.
async fn wait_activity(app: &TestApp, tenant: &Tenant, worker_url: &str, activity: &str) {
    for _ in 0..500 {
        let worker = get(app, tenant, worker_url).await;
        if worker["activity_name"] == activity {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let worker = get(app, tenant, worker_url).await;
    panic!(
        "the worker stayed {}, expected {activity}",
        worker["activity_name"]
    );
}

#[tokio::test]
async fn a_worker_bound_to_presence_goes_offline_with_its_client_and_gets_no_reservation() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let key = create_key(&app, &tenant).await;
    let workspace = post(&app, &tenant, "/v1/Workspaces", &[("FriendlyName", "desk")]).await;
    let ws = workspace["sid"].as_str().expect("ws").to_string();
    let activities = get(&app, &tenant, &format!("/v1/Workspaces/{ws}/Activities")).await;
    let activity = |name: &str| {
        activities["activities"]
            .as_array()
            .and_then(|all| all.iter().find(|a| a["friendly_name"] == name))
            .and_then(|a| a["sid"].as_str())
            .expect("activity")
            .to_string()
    };
    let (offline, available) = (activity("Offline"), activity("Available"));
    let updated = post(
        &app,
        &tenant,
        &format!("/v1/Workspaces/{ws}"),
        &[
            ("PresenceOfflineActivitySid", offline.as_str()),
            ("PresenceOnlineActivitySid", available.as_str()),
        ],
    )
    .await;
    assert_eq!(updated["presence_offline_activity_sid"], json!(offline));
    let (status, refused) = app
        .post_form(
            &tenant,
            &format!("/v1/Workspaces/{ws}"),
            &[("PresenceOfflineActivitySid", "WAnotanactivity")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");

    let (alice, _) = Client::register(&app, &token(&tenant, &key, "alice")).await;
    let worker = post(
        &app,
        &tenant,
        &format!("/v1/Workspaces/{ws}/Workers"),
        &[
            ("FriendlyName", "Alice"),
            ("Attributes", r#"{"contact_uri":"client:alice"}"#),
            ("ActivitySid", available.as_str()),
        ],
    )
    .await;
    let worker_url = format!(
        "/v1/Workspaces/{ws}/Workers/{}",
        worker["sid"].as_str().expect("worker")
    );
    let queue = post(
        &app,
        &tenant,
        &format!("/v1/Workspaces/{ws}/TaskQueues"),
        &[("FriendlyName", "all"), ("TargetWorkers", "1==1")],
    )
    .await;
    let configuration =
        json!({"task_routing": {"filters": [], "default_filter": {"queue": queue["sid"]}}});
    let workflow = post(
        &app,
        &tenant,
        &format!("/v1/Workspaces/{ws}/Workflows"),
        &[
            ("FriendlyName", "route"),
            ("Configuration", &configuration.to_string()),
        ],
    )
    .await;

    drop(alice);
    wait_activity(&app, &tenant, &worker_url, "Offline").await;
    let task = post(
        &app,
        &tenant,
        &format!("/v1/Workspaces/{ws}/Tasks"),
        &[
            ("WorkflowSid", workflow["sid"].as_str().expect("workflow")),
            ("Attributes", "{}"),
        ],
    )
    .await;
    let task_url = format!(
        "/v1/Workspaces/{ws}/Tasks/{}",
        task["sid"].as_str().expect("task")
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pending = get(&app, &tenant, &task_url).await;
    assert_eq!(pending["assignment_status"], "pending", "{pending}");
    let reservations = get(&app, &tenant, &format!("{task_url}/Reservations")).await;
    assert_eq!(reservations["reservations"], json!([]));

    // Back online: the worker is available again and the waiting task reaches it.
    let (_alice, _) = Client::register(&app, &token(&tenant, &key, "alice")).await;
    wait_activity(&app, &tenant, &worker_url, "Available").await;
    for _ in 0..500 {
        if get(&app, &tenant, &task_url).await["assignment_status"] == "reserved" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        get(&app, &tenant, &task_url).await["assignment_status"],
        "reserved"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn when_one_client_answers_the_others_stop_ringing_at_once() {
    let (web, app, tenant, key) = dialling(
        "<Response><Dial action=\"/after\"><Client>alice</Client><Client>bob</Client></Dial></Response>",
    )
    .await;
    let (mut alice, _) = Client::register(&app, &token(&tenant, &key, "alice")).await;
    let (mut bob, _) = Client::register(&app, &token(&tenant, &key, "bob")).await;
    let call = app
        .place_call(&tenant, "+14155550199", "+14155550100")
        .await;
    let alice_leg = alice.next_of("incoming").await["call_sid"].clone();
    let bob_leg = bob.next_of("incoming").await["call_sid"].clone();
    assert_ne!(alice_leg, bob_leg);
    alice
        .send(json!({"type": "accept", "call_sid": alice_leg}))
        .await;
    // Bob hears it stopped while alice is still connected, and can no longer take it.
    assert_eq!(
        bob.next_of("canceled").await,
        json!({"type": "canceled", "call_sid": bob_leg})
    );
    bob.send(json!({"type": "accept", "call_sid": bob_leg}))
        .await;
    assert_eq!(bob.next().await["type"], "error");
    let timeline = app
        .wait_for(&tenant, &call, |t| has_experience(t, "bridged"))
        .await;
    assert_eq!(timeline["live"], true);
    let leg_path = app.account_path(
        &tenant,
        &format!("Calls/{}.json", bob_leg.as_str().expect("sid")),
    );
    let mut status = Value::Null;
    for _ in 0..500 {
        // The leg left the live registry when it was canceled; its record may still be on its
        // way to the database.
        status = app.get(&tenant, &leg_path).await.1["status"].clone();
        if status == "canceled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, "canceled");
    alice
        .send(json!({"type": "hangup", "call_sid": alice_leg}))
        .await;
    app.wait_ended(&tenant, &call).await;
    let after = web
        .received()
        .into_iter()
        .find(|r| r.path == "/after")
        .expect("the dial's action was requested");
    assert_eq!(after.param("DialCallStatus"), Some("completed"));
    assert_eq!(after.param("DialCallSid"), alice_leg.as_str());
    app.shutdown().await;
}
