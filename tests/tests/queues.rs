//! Call queues end to end: callers enqueue and hear a wait-state application with their figures, a
//! second party takes them out (an agent's `Dial` to the queue, the Members REST resource, a module
//! through the `queues` interface), and every way of leaving reports its `QueueResult`, leaves no
//! member behind and is in the event log. Membership survives a restart.

use reqwest::StatusCode;
use serde_json::Value;
use switchboard_host::clock::ClockKind;
use switchboard_tests::{HttpApp, Reply, Tenant, TestApp, guest, has_experience, json};

const CALLER_NUMBER: &str = "+14155550300";
const AGENT_NUMBER: &str = "+14155550301";
const VIP_NUMBER: &str = "+14155550302";

/// A host on a manual clock with media at real speed: a wait-state application's pause lasts
/// until the test moves the clock, so callers stay put while the test looks at them.
async fn spawn() -> TestApp {
    TestApp::spawn_with(|config| {
        config.telephony.clock = ClockKind::Manual;
        config.telephony.media_speed = 1.0;
        config.telephony.http_timeout_ms = 2_000;
    })
    .await
}

/// The tenant's web application: callers enqueue into `queue` with the `waiter` module as their
/// wait-state application; agents dial the queue.
async fn web_app(queue: &str) -> HttpApp {
    let enqueue = |priority: u32| {
        Reply::twiml(&format!(
            r#"<Response><Enqueue waitUrl="module:waiter" action="/after-queue" priority="{priority}">{queue}</Enqueue><Say>not reached</Say></Response>"#
        ))
    };
    HttpApp::start(vec![
        ("/caller", enqueue(0)),
        ("/vip", enqueue(5)),
        (
            "/after-queue",
            Reply::twiml("<Response><Say>after queue</Say><Hangup/></Response>"),
        ),
        (
            "/agent",
            Reply::twiml(&format!(
                r#"<Response><Dial action="/after-dial" timeout="10"><Queue>{queue}</Queue></Dial></Response>"#
            )),
        ),
        ("/after-dial", Reply::twiml("<Response><Hangup/></Response>")),
    ])
    .await
}

async fn setup(app: &TestApp, tenant: &Tenant, web: &HttpApp) {
    let (status, body) = app
        .upload(tenant, "waiter", "wait-state", guest("waiter"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (number, path) in [
        (CALLER_NUMBER, "/caller"),
        (AGENT_NUMBER, "/agent"),
        (VIP_NUMBER, "/vip"),
    ] {
        app.buy_number(tenant, number, &[("VoiceUrl", &web.url(path))])
            .await;
    }
}

fn says(timeline: &Value) -> Vec<String> {
    timeline["timeline"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["type"] == "say")
                .filter_map(|e| e["text"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn said(timeline: &Value, text: &str) -> bool {
    says(timeline).iter().any(|t| t == text)
}

/// Places a call to the callers' number and waits until its wait-state application reports
/// `position`.
async fn enqueue_caller(
    app: &TestApp,
    tenant: &Tenant,
    number: &str,
    from: &str,
    report: &str,
) -> String {
    let call = app.place_call(tenant, from, number).await;
    app.wait_for(tenant, &call, |t| said(t, report)).await;
    call
}

async fn queue_by_name(app: &TestApp, tenant: &Tenant, name: &str) -> Value {
    let (status, body) = app
        .get(
            tenant,
            &app.account_path(tenant, &format!("Queues.json?FriendlyName={name}")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["queues"][0].clone()
}

async fn queue_sid(app: &TestApp, tenant: &Tenant, name: &str) -> String {
    queue_by_name(app, tenant, name).await["sid"]
        .as_str()
        .expect("queue sid")
        .to_string()
}

async fn member_sids(app: &TestApp, tenant: &Tenant, queue_sid: &str) -> Vec<String> {
    let (status, body) = app
        .get(
            tenant,
            &app.account_path(tenant, &format!("Queues/{queue_sid}/Members.json")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let members = body["queue_members"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (index, member) in members.iter().enumerate() {
        assert_eq!(member["position"], json!(index + 1), "{body}");
    }
    members
        .iter()
        .filter_map(|m| m["call_sid"].as_str().map(str::to_string))
        .collect()
}

/// The `queue.member-left` results recorded for a call.
async fn left_results(app: &TestApp, tenant: &Tenant, call_sid: &str) -> Vec<String> {
    let (status, body) = app
        .get(
            tenant,
            &format!("/v1/Events?Type=queue.member-left&Subject={call_sid}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e["data"]["result"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Lets the clock run (a second at a time, far less than the wait-state application's pauses) until
/// the call has ended, and returns its timeline: what follows a queue plays at real speed.
async fn ended(app: &TestApp, tenant: &Tenant, call_sid: &str) -> Value {
    for _ in 0..60 {
        let (_, timeline) = app
            .get(tenant, &format!("/v1/Sim/Calls/{call_sid}/Timeline"))
            .await;
        if timeline["live"] == json!(false) {
            return timeline;
        }
        app.advance_clock(1_000).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.wait_ended(tenant, call_sid).await
}

/// Waits until the web application received a request at `path` and returns its parameters.
async fn received(web: &HttpApp, path: &str) -> switchboard_tests::Received {
    for _ in 0..500 {
        if let Some(request) = web.received().into_iter().find(|r| r.path == path) {
            return request;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{path} was never requested; received: {:?}", web.received());
}

#[tokio::test]
async fn callers_hear_their_positions_and_an_agent_bridges_the_front_caller() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let web = web_app("support").await;
    setup(&app, &tenant, &web).await;

    let first = enqueue_caller(
        &app,
        &tenant,
        CALLER_NUMBER,
        "+15550001001",
        "position 1 of 1 in support",
    )
    .await;
    let second = enqueue_caller(
        &app,
        &tenant,
        CALLER_NUMBER,
        "+15550001002",
        "position 2 of 2 in support",
    )
    .await;
    let third = enqueue_caller(
        &app,
        &tenant,
        CALLER_NUMBER,
        "+15550001003",
        "position 3 of 3 in support",
    )
    .await;
    let queue = queue_by_name(&app, &tenant, "support").await;
    let queue_sid = queue["sid"].as_str().expect("queue sid").to_string();
    assert!(
        queue_sid.starts_with("QU") && queue_sid.len() == 34,
        "{queue}"
    );
    assert_eq!(queue["current_size"], 3, "{queue}");
    assert_eq!(queue["max_size"], 1000, "{queue}");
    assert_eq!(
        member_sids(&app, &tenant, &queue_sid).await,
        [first.clone(), second.clone(), third.clone()]
    );

    let agent = app.place_call(&tenant, "+15550009999", AGENT_NUMBER).await;
    let bridged = |t: &Value| has_experience(t, "bridged");
    let caller_side = app.wait_for(&tenant, &first, bridged).await;
    app.wait_for(&tenant, &agent, bridged).await;
    assert!(has_experience(&caller_side, "left-queue"), "{caller_side}");
    assert_eq!(
        member_sids(&app, &tenant, &queue_sid).await,
        [second.clone(), third.clone()]
    );

    // The others' wait-state application, asked again, reports their new positions.
    // The manual clock jumps: first past the end of what they were told (about 2 s of speech),
    // well inside the 600 s pause that follows, then through the pause.
    app.advance_clock(5_000).await;
    for call in [&second, &third] {
        app.wait_for(&tenant, call, |t| has_experience(t, "pause"))
            .await;
    }
    app.advance_clock(600_000).await;
    app.wait_for(&tenant, &second, |t| said(t, "position 1 of 2 in support"))
        .await;
    app.wait_for(&tenant, &third, |t| said(t, "position 2 of 2 in support"))
        .await;

    // The caller hangs up: the agent's dial reports the bridged call, and the enqueue's action
    // learns the caller was bridged.
    app.sim(&tenant, &first, "Hangup", &[]).await;
    ended(&app, &tenant, &first).await;
    ended(&app, &tenant, &agent).await;
    let action = received(&web, "/after-queue").await;
    assert_eq!(action.param("QueueResult"), Some("bridged"), "{action:?}");
    assert_eq!(action.param("QueueSid"), Some(queue_sid.as_str()));
    assert_eq!(
        action.param("QueueTime"),
        Some("0"),
        "no clock time passed before the bridge"
    );
    let dial = received(&web, "/after-dial").await;
    assert_eq!(dial.param("DialCallStatus"), Some("completed"), "{dial:?}");
    assert_eq!(dial.param("DialCallSid"), Some(first.as_str()));
    assert_eq!(dial.param("QueueSid"), Some(queue_sid.as_str()));
    assert_eq!(left_results(&app, &tenant, &first).await, ["bridged"]);
    // The wait-state application's stretch of the call is a segment of its own.
    let (_, segments) = app
        .get(&tenant, &format!("/v1/Calls/{first}/Segments"))
        .await;
    let uris: Vec<&str> = segments["segments"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["uri"].as_str()).collect())
        .unwrap_or_default();
    assert!(uris.contains(&"module:waiter@1"), "{segments}");
    assert!(uris.iter().any(|u| u.ends_with("/caller")), "{segments}");

    let (_, moved) = app
        .get(&tenant, "/v1/Events?Type=queue.positions-changed")
        .await;
    assert!(
        moved["events"]
            .as_array()
            .is_some_and(
                |events| events.iter().any(|e| e["data"]["from_position"] == 1
                    && e["data"]["delta"] == -1
                    && e["data"]["members_moved"] == 2)
            ),
        "{moved}"
    );
    for call in [&second, &third] {
        app.sim(&tenant, call, "Hangup", &[]).await;
        ended(&app, &tenant, call).await;
    }
    assert!(member_sids(&app, &tenant, &queue_sid).await.is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn a_later_high_priority_caller_is_served_first() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let web = web_app("support").await;
    setup(&app, &tenant, &web).await;

    let first = enqueue_caller(
        &app,
        &tenant,
        CALLER_NUMBER,
        "+15550001001",
        "position 1 of 1 in support",
    )
    .await;
    let second = enqueue_caller(
        &app,
        &tenant,
        CALLER_NUMBER,
        "+15550001002",
        "position 2 of 2 in support",
    )
    .await;
    let vip = enqueue_caller(
        &app,
        &tenant,
        VIP_NUMBER,
        "+15550001003",
        "position 1 of 3 in support",
    )
    .await;
    let queue_sid = queue_sid(&app, &tenant, "support").await;
    assert_eq!(
        member_sids(&app, &tenant, &queue_sid).await,
        [vip.clone(), first.clone(), second.clone()]
    );

    let agent = app.place_call(&tenant, "+15550009999", AGENT_NUMBER).await;
    app.wait_for(&tenant, &vip, |t| has_experience(t, "bridged"))
        .await;
    assert_eq!(
        member_sids(&app, &tenant, &queue_sid).await,
        [first.clone(), second.clone()]
    );
    for call in [&agent, &first, &second] {
        app.sim(&tenant, call, "Hangup", &[]).await;
    }
    for call in [&vip, &agent, &first, &second] {
        ended(&app, &tenant, call).await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_refuses_the_caller_at_once() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let web = web_app("small").await;
    setup(&app, &tenant, &web).await;
    let (status, queue) = app
        .post_form(
            &tenant,
            &app.account_path(&tenant, "Queues.json"),
            &[("FriendlyName", "small"), ("MaxSize", "1")],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{queue}");
    let queue_sid = queue["sid"].as_str().expect("sid").to_string();

    let waiting = enqueue_caller(
        &app,
        &tenant,
        CALLER_NUMBER,
        "+15550001001",
        "position 1 of 1 in small",
    )
    .await;
    let refused = app.place_call(&tenant, "+15550001002", CALLER_NUMBER).await;
    let timeline = ended(&app, &tenant, &refused).await;
    assert!(has_experience(&timeline, "enqueue-failed"), "{timeline}");
    assert!(said(&timeline, "after queue"), "{timeline}");
    let action = received(&web, "/after-queue").await;
    assert_eq!(
        action.param("QueueResult"),
        Some("queue-full"),
        "{action:?}"
    );
    assert_eq!(
        action.param("QueueSid"),
        None,
        "the caller was never queued"
    );
    assert_eq!(
        member_sids(&app, &tenant, &queue_sid).await,
        [waiting.as_str()]
    );

    app.sim(&tenant, &waiting, "Hangup", &[]).await;
    ended(&app, &tenant, &waiting).await;
    app.shutdown().await;
}

#[tokio::test]
async fn leaving_and_hanging_up_report_their_results_and_leave_no_member() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    // The waiter answers `leave` for queues whose name starts with "leave".
    let web = web_app("leave-desk").await;
    setup(&app, &tenant, &web).await;

    let leaver = app.place_call(&tenant, "+15550001001", CALLER_NUMBER).await;
    let timeline = ended(&app, &tenant, &leaver).await;
    assert!(said(&timeline, "after queue"), "{timeline}");
    assert!(!said(&timeline, "not reached"), "the action took over");
    let action = received(&web, "/after-queue").await;
    assert_eq!(action.param("QueueResult"), Some("leave"), "{action:?}");
    assert_eq!(left_results(&app, &tenant, &leaver).await, ["leave"]);
    let queue_sid = queue_sid(&app, &tenant, "leave-desk").await;
    assert!(member_sids(&app, &tenant, &queue_sid).await.is_empty());

    // A caller who hangs up while waiting.
    let web = web_app("support").await;
    app.buy_number(
        &tenant,
        "+14155550399",
        &[("VoiceUrl", &web.url("/caller"))],
    )
    .await;
    let hanging = enqueue_caller(
        &app,
        &tenant,
        "+14155550399",
        "+15550001002",
        "position 1 of 1 in support",
    )
    .await;
    app.sim(&tenant, &hanging, "Hangup", &[]).await;
    let timeline = ended(&app, &tenant, &hanging).await;
    assert!(
        !said(&timeline, "after queue"),
        "the call is over: {timeline}"
    );
    let action = received(&web, "/after-queue").await;
    assert_eq!(action.param("QueueResult"), Some("hangup"), "{action:?}");
    assert_eq!(left_results(&app, &tenant, &hanging).await, ["hangup"]);
    let queue = queue_by_name(&app, &tenant, "support").await;
    assert_eq!(queue["current_size"], 0, "{queue}");
    let (_, call) = app
        .get(
            &tenant,
            &app.account_path(&tenant, &format!("Calls/{hanging}.json")),
        )
        .await;
    assert_eq!(call["status"], "completed", "{call}");
    app.shutdown().await;
}

#[tokio::test]
async fn rest_dequeue_of_the_front_runs_a_module_on_the_caller() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let web = web_app("support").await;
    setup(&app, &tenant, &web).await;
    let (status, body) = app
        .upload(&tenant, "hello", "telephony-handler", guest("hello"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let first = enqueue_caller(
        &app,
        &tenant,
        CALLER_NUMBER,
        "+15550001001",
        "position 1 of 1 in support",
    )
    .await;
    let second = enqueue_caller(
        &app,
        &tenant,
        CALLER_NUMBER,
        "+15550001002",
        "position 2 of 2 in support",
    )
    .await;
    let queue_sid = queue_sid(&app, &tenant, "support").await;
    let front = app.account_path(&tenant, &format!("Queues/{queue_sid}/Members/Front.json"));

    // Bad input changes nothing.
    let (status, body) = app.post_form(&tenant, &front, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .post_form(&tenant, &front, &[("Url", "ftp://example.com/x")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let other = app.tenant().await;
    let (status, body) = app
        .post_form(
            &other,
            &app.account_path(&other, &format!("Queues/{queue_sid}/Members/Front.json")),
            &[("Url", "module:hello")],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .get(
            &other,
            &app.account_path(&other, &format!("Queues/{queue_sid}.json")),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        member_sids(&app, &tenant, &queue_sid).await,
        [first.clone(), second.clone()]
    );

    let (status, member) = app
        .post_form(&tenant, &front, &[("Url", "module:hello")])
        .await;
    assert_eq!(status, StatusCode::OK, "{member}");
    assert_eq!(member["call_sid"], first.as_str(), "{member}");
    assert_eq!(member["position"], 1, "{member}");
    // Answered after the caller left: the queue no longer holds it.
    assert_eq!(
        member_sids(&app, &tenant, &queue_sid).await,
        [second.as_str()]
    );
    let timeline = ended(&app, &tenant, &first).await;
    assert!(said(&timeline, "Hello from switchboard"), "{timeline}");
    assert_eq!(left_results(&app, &tenant, &first).await, ["redirected"]);

    let (status, fetched) = app.get(&tenant, &front).await;
    assert_eq!(status, StatusCode::OK, "{fetched}");
    assert_eq!(fetched["call_sid"], second.as_str());
    app.sim(&tenant, &second, "Hangup", &[]).await;
    ended(&app, &tenant, &second).await;
    let (status, body) = app
        .post_form(&tenant, &front, &[("Url", "module:hello")])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an empty queue: {body}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_module_dequeues_through_the_queues_interface() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let web = web_app("support").await;
    setup(&app, &tenant, &web).await;
    for (name, file) in [("hello", "hello"), ("queue-agent", "queue_agent")] {
        let (status, body) = app
            .upload(&tenant, name, "telephony-handler", guest(file))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    app.buy_number(
        &tenant,
        "+14155550310",
        &[("VoiceUrl", "module:queue-agent")],
    )
    .await;
    let first = enqueue_caller(
        &app,
        &tenant,
        CALLER_NUMBER,
        "+15550001001",
        "position 1 of 1 in support",
    )
    .await;

    let report = app
        .place_call(&tenant, "+15550000002", "+14155550310")
        .await;
    let timeline = ended(&app, &tenant, &report).await;
    assert!(
        said(&timeline, &format!("support has 1 waiting, head {first}")),
        "{timeline}"
    );
    let dequeuer = app
        .place_call(&tenant, "+15550000001", "+14155550310")
        .await;
    let timeline = ended(&app, &tenant, &dequeuer).await;
    assert!(said(&timeline, &format!("dequeued {first}")), "{timeline}");
    let caller = ended(&app, &tenant, &first).await;
    assert!(said(&caller, "Hello from switchboard"), "{caller}");
    assert_eq!(left_results(&app, &tenant, &first).await, ["redirected"]);
    app.shutdown().await;
}

#[tokio::test]
async fn a_trapping_wait_state_module_keeps_the_caller_queued_on_the_fallback() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let web = web_app("trap-line").await;
    setup(&app, &tenant, &web).await;
    let caller = app.place_call(&tenant, "+15550001001", CALLER_NUMBER).await;
    let timeline = app
        .wait_for(&tenant, &caller, |t| has_experience(t, "wait-state-error"))
        .await;
    let error = timeline["timeline"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["type"] == "wait-state-error").cloned())
        .expect("the error entry");
    assert_eq!(error["code"], 31003, "{error}");
    assert!(
        has_experience(&timeline, "pause"),
        "the fallback hold: {timeline}"
    );
    let queue_sid = queue_sid(&app, &tenant, "trap-line").await;
    assert_eq!(
        member_sids(&app, &tenant, &queue_sid).await,
        [caller.as_str()]
    );
    // The event commits behind the live timeline: poll for it.
    let mut failed = Value::Null;
    for _ in 0..200 {
        (_, failed) = app
            .get(
                &tenant,
                &format!("/v1/Events?Type=queue.wait-failed&Subject={caller}"),
            )
            .await;
        if failed["events"][0].is_object() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(failed["events"][0]["data"]["code"], 31003, "{failed}");
    // Usage records are committed behind the call: poll until the trap's record is in.
    let mut waiter = Value::Null;
    for _ in 0..200 {
        let (_, usage) = app.get(&tenant, "/v1/Usage/Modules").await;
        waiter = usage["usage"]
            .as_array()
            .and_then(|u| u.iter().find(|m| m["module_name"] == "waiter").cloned())
            .unwrap_or(Value::Null);
        if waiter["outcomes"]["unreachable"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(waiter["outcomes"]["unreachable"], 1, "{waiter}");

    // After the fallback the module is asked again, and the queue still serves its caller.
    app.advance_clock(10_000).await;
    app.wait_for(&tenant, &caller, |t| {
        experience_count(t, "wait-state-error") >= 2
    })
    .await;
    let agent = app.place_call(&tenant, "+15550009999", AGENT_NUMBER).await;
    app.wait_for(&tenant, &caller, |t| has_experience(t, "bridged"))
        .await;
    app.sim(&tenant, &agent, "Hangup", &[]).await;
    let timeline = ended(&app, &tenant, &caller).await;
    assert!(said(&timeline, "after queue"), "{timeline}");
    assert_eq!(left_results(&app, &tenant, &caller).await, ["bridged"]);
    app.shutdown().await;
}

fn experience_count(timeline: &Value, kind: &str) -> usize {
    timeline["timeline"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["type"] == kind).count())
        .unwrap_or(0)
}

#[tokio::test]
async fn an_http_wait_url_gets_the_queue_figures_and_may_not_dial() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let web = HttpApp::start(vec![
        (
            "/caller",
            Reply::twiml(r#"<Response><Enqueue waitUrl="/wait">desk</Enqueue></Response>"#),
        ),
        (
            "/wait",
            Reply::twiml(r#"<Response><Say>please hold</Say><Pause length="600"/></Response>"#),
        ),
        (
            "/bad-caller",
            Reply::twiml(r#"<Response><Enqueue waitUrl="/bad-wait">desk</Enqueue></Response>"#),
        ),
        (
            "/bad-wait",
            Reply::twiml("<Response><Dial>+14155550999</Dial></Response>"),
        ),
    ])
    .await;
    app.buy_number(&tenant, CALLER_NUMBER, &[("VoiceUrl", &web.url("/caller"))])
        .await;
    app.buy_number(
        &tenant,
        VIP_NUMBER,
        &[("VoiceUrl", &web.url("/bad-caller"))],
    )
    .await;
    let caller = enqueue_caller(&app, &tenant, CALLER_NUMBER, "+15550001001", "please hold").await;
    let wait = received(&web, "/wait").await;
    assert_eq!(wait.param("QueuePosition"), Some("1"), "{wait:?}");
    assert_eq!(wait.param("CurrentQueueSize"), Some("1"));
    assert_eq!(wait.param("MaxQueueSize"), Some("1000"));
    assert_eq!(wait.param("QueueTime"), Some("0"));
    assert_eq!(wait.param("AvgQueueTime"), Some("0"));
    assert_eq!(wait.param("CallSid"), Some(caller.as_str()));
    assert!(wait.param("QueueSid").is_some_and(|s| s.starts_with("QU")));

    let bad = app.place_call(&tenant, "+15550001002", VIP_NUMBER).await;
    let timeline = app
        .wait_for(&tenant, &bad, |t| has_experience(t, "wait-state-error"))
        .await;
    let error = timeline["timeline"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["type"] == "wait-state-error").cloned())
        .expect("the error entry");
    assert_eq!(error["code"], 12200, "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("dial")),
        "{error}"
    );
    for call in [&caller, &bad] {
        app.sim(&tenant, call, "Hangup", &[]).await;
        ended(&app, &tenant, call).await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn the_hold_music_example_announces_and_lets_the_caller_leave() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let (status, body) = app
        .upload(&tenant, "hold-music", "wait-state", guest("hold_music"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let web = HttpApp::start(vec![
        (
            "/caller",
            Reply::twiml(
                r#"<Response><Enqueue waitUrl="module:hold-music" action="/voicemail">sales</Enqueue></Response>"#,
            ),
        ),
        (
            "/voicemail",
            Reply::twiml("<Response><Say>Leave a message after the tone.</Say><Hangup/></Response>"),
        ),
    ])
    .await;
    app.buy_number(&tenant, CALLER_NUMBER, &[("VoiceUrl", &web.url("/caller"))])
        .await;
    let announcement = "Thank you for holding. You are next in line. You will be connected shortly. Press 0 to leave a message.";
    let caller = enqueue_caller(&app, &tenant, CALLER_NUMBER, "+15550001001", announcement).await;
    // Behind someone, the position is a prompt of its own between the shared words.
    let second = app.place_call(&tenant, "+15550001002", CALLER_NUMBER).await;
    // Each prompt plays for its length on the test's clock, once synthesized (in real time).
    let mut prompts = Vec::new();
    for _ in 0..400 {
        let (_, heard) = app
            .get(&tenant, &format!("/v1/Sim/Calls/{second}/Timeline"))
            .await;
        prompts = says(&heard);
        if prompts.iter().any(|text| text.starts_with("in line.")) {
            break;
        }
        app.advance_clock(500).await;
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let first = prompts
        .iter()
        .position(|text| text == "Thank you for holding. You are number")
        .unwrap_or_else(|| panic!("no opening words in {prompts:?}"));
    assert_eq!(
        prompts.get(first + 1).map(String::as_str),
        Some("2"),
        "{prompts:?}"
    );
    assert_eq!(
        prompts.get(first + 2).map(String::as_str),
        Some("in line. You will be connected shortly. Press 0 to leave a message."),
        "{prompts:?}"
    );
    app.sim(&tenant, &caller, "Digits", &[("Digits", "0")])
        .await;
    let timeline = ended(&app, &tenant, &caller).await;
    assert!(
        said(&timeline, "Connecting you to voicemail."),
        "{timeline}"
    );
    assert!(
        said(&timeline, "Leave a message after the tone."),
        "{timeline}"
    );
    let action = received(&web, "/voicemail").await;
    assert_eq!(action.param("QueueResult"), Some("leave"), "{action:?}");
    app.sim(&tenant, &second, "Hangup", &[]).await;
    ended(&app, &tenant, &second).await;
    app.shutdown().await;
}

#[tokio::test]
async fn queue_resources_check_their_input() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let queues = app.account_path(&tenant, "Queues.json");
    let (status, queue) = app
        .post_form(&tenant, &queues, &[("FriendlyName", "billing")])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{queue}");
    assert_eq!(queue["max_size"], 1000);
    assert_eq!(queue["current_size"], 0);
    assert_eq!(queue["average_wait_time"], 0);
    let sid = queue["sid"].as_str().expect("sid").to_string();
    assert_eq!(
        queue["uri"],
        app.account_path(&tenant, &format!("Queues/{sid}.json"))
            .as_str()
    );

    let long_name = "q".repeat(65);
    for form in [
        vec![("FriendlyName", "billing")],
        vec![("FriendlyName", long_name.as_str())],
        vec![("FriendlyName", "x"), ("MaxSize", "5001")],
        vec![("FriendlyName", "x"), ("MaxSize", "0")],
        vec![("FriendlyName", "x"), ("MaxSize", "many")],
        vec![("MaxSize", "10")],
    ] {
        let (status, body) = app.post_form(&tenant, &queues, &form).await;
        assert!(status.is_client_error(), "{form:?}: {status} {body}");
        assert!(body["message"].is_string(), "{body}");
    }
    let (_, list) = app.get(&tenant, &queues).await;
    assert_eq!(list["queues"].as_array().map(Vec::len), Some(1), "{list}");

    let one = app.account_path(&tenant, &format!("Queues/{sid}.json"));
    let (status, updated) = app
        .post_form(
            &tenant,
            &one,
            &[("MaxSize", "5000"), ("FriendlyName", "billing-2")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["max_size"], 5000);
    assert_eq!(updated["friendly_name"], "billing-2");
    let (status, _) = app
        .get(
            &tenant,
            &app.account_path(&tenant, "Queues/QU00000000000000000000000000000000.json"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let other = app.tenant().await;
    assert_eq!(
        app.delete(
            &other,
            &app.account_path(&other, &format!("Queues/{sid}.json"))
        )
        .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.delete(&tenant, &one).await, StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&tenant, &one).await, StatusCode::NOT_FOUND);
    app.shutdown().await;
}

#[tokio::test]
async fn a_queue_with_callers_cannot_be_deleted() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let web = web_app("support").await;
    setup(&app, &tenant, &web).await;
    let caller = enqueue_caller(
        &app,
        &tenant,
        CALLER_NUMBER,
        "+15550001001",
        "position 1 of 1 in support",
    )
    .await;
    let queue_sid = queue_sid(&app, &tenant, "support").await;
    let one = app.account_path(&tenant, &format!("Queues/{queue_sid}.json"));
    assert_eq!(app.delete(&tenant, &one).await, StatusCode::CONFLICT);
    assert_eq!(
        member_sids(&app, &tenant, &queue_sid).await,
        [caller.as_str()]
    );
    app.sim(&tenant, &caller, "Hangup", &[]).await;
    ended(&app, &tenant, &caller).await;
    assert_eq!(app.delete(&tenant, &one).await, StatusCode::NO_CONTENT);
    app.shutdown().await;
}

#[tokio::test]
async fn waiting_callers_keep_their_order_across_a_restart() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let web = web_app("support").await;
    setup(&app, &tenant, &web).await;
    let first = enqueue_caller(
        &app,
        &tenant,
        CALLER_NUMBER,
        "+15550001001",
        "position 1 of 1 in support",
    )
    .await;
    let second = enqueue_caller(
        &app,
        &tenant,
        CALLER_NUMBER,
        "+15550001002",
        "position 2 of 2 in support",
    )
    .await;
    let vip = enqueue_caller(
        &app,
        &tenant,
        VIP_NUMBER,
        "+15550001003",
        "position 1 of 3 in support",
    )
    .await;
    let queue_sid = queue_sid(&app, &tenant, "support").await;
    let order = vec![vip.clone(), first.clone(), second.clone()];
    assert_eq!(member_sids(&app, &tenant, &queue_sid).await, order);

    let app = app.restart().await;
    assert_eq!(member_sids(&app, &tenant, &queue_sid).await, order);
    // Each caller's wait-state application runs again, with the same figures.
    for (call, report) in [
        (&vip, "position 1 of 3 in support"),
        (&first, "position 2 of 3 in support"),
        (&second, "position 3 of 3 in support"),
    ] {
        let timeline = app.wait_for(&tenant, call, |t| said(t, report)).await;
        assert!(has_experience(&timeline, "enqueued"), "{timeline}");
        let (_, record) = app
            .get(
                &tenant,
                &app.account_path(&tenant, &format!("Calls/{call}.json")),
            )
            .await;
        assert_eq!(record["status"], "in-progress", "{record}");
    }
    // The resumed callers are served as before: the agent gets the VIP.
    let agent = app.place_call(&tenant, "+15550009999", AGENT_NUMBER).await;
    app.wait_for(&tenant, &vip, |t| has_experience(t, "bridged"))
        .await;
    app.sim(&tenant, &agent, "Hangup", &[]).await;
    let timeline = ended(&app, &tenant, &vip).await;
    assert!(said(&timeline, "after queue"), "{timeline}");
    assert!(!said(&timeline, "not reached"), "{timeline}");
    assert_eq!(
        member_sids(&app, &tenant, &queue_sid).await,
        [first.clone(), second.clone()]
    );
    for call in [&first, &second] {
        app.sim(&tenant, call, "Hangup", &[]).await;
        ended(&app, &tenant, call).await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn waiting_callers_survive_a_crash_of_the_host() {
    let app = TestApp::spawn_crashable(|config| {
        config.telephony.clock = ClockKind::Manual;
        config.telephony.media_speed = 1.0;
    })
    .await;
    let tenant = app.tenant().await;
    let web = web_app("support").await;
    setup(&app, &tenant, &web).await;
    let (status, body) = app
        .upload(&tenant, "hello", "telephony-handler", guest("hello"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Each caller is heard by its wait-state application only after its membership committed.
    let first = enqueue_caller(
        &app,
        &tenant,
        CALLER_NUMBER,
        "+15550001001",
        "position 1 of 1 in support",
    )
    .await;
    let second = enqueue_caller(
        &app,
        &tenant,
        CALLER_NUMBER,
        "+15550001002",
        "position 2 of 2 in support",
    )
    .await;
    let queue_sid = queue_sid(&app, &tenant, "support").await;

    let app = app.crash_and_restart().await;
    assert_eq!(
        member_sids(&app, &tenant, &queue_sid).await,
        [first.clone(), second.clone()]
    );
    for (call, report) in [
        (&first, "position 1 of 2 in support"),
        (&second, "position 2 of 2 in support"),
    ] {
        app.wait_for(&tenant, call, |t| said(t, report)).await;
    }
    // The queue serves the resumed callers: a REST dequeue takes the head.
    let (status, member) = app
        .post_form(
            &tenant,
            &app.account_path(&tenant, &format!("Queues/{queue_sid}/Members/Front.json")),
            &[("Url", "module:hello")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{member}");
    assert_eq!(member["call_sid"], first.as_str());
    let timeline = ended(&app, &tenant, &first).await;
    assert!(said(&timeline, "Hello from switchboard"), "{timeline}");
    app.sim(&tenant, &second, "Hangup", &[]).await;
    ended(&app, &tenant, &second).await;
    assert!(member_sids(&app, &tenant, &queue_sid).await.is_empty());
    app.shutdown().await;
}
