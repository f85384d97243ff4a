//! Calls end to end: numbers and applications, the call router with module and HTTP handlers,
//! fallbacks, segments and their metering, the sim edge, REST control and status callbacks.

use reqwest::StatusCode;
use serde_json::Value;
use switchboard_host::clock::ClockKind;
use switchboard_tests::{
    HttpApp, Reply, Tenant, TestApp, experience_types, guest, has_experience, json,
};

/// A host on a manual clock with media that plays instantly, so only explicit clock moves make
/// time pass.
async fn spawn() -> TestApp {
    TestApp::spawn_with(|config| {
        config.telephony.clock = ClockKind::Manual;
        config.telephony.media_speed = 0.0;
        config.telephony.http_timeout_ms = 500;
    })
    .await
}

async fn upload_ivr(app: &TestApp, tenant: &Tenant) {
    for (name, file) in [("ivr", "ivr"), ("ivr-desk", "ivr_desk")] {
        let (status, body) = app
            .upload(tenant, name, "telephony-handler", guest(file))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

/// Creates an application running `voice_url` and a number pointing at it.
async fn ivr_number(app: &TestApp, tenant: &Tenant, number: &str) {
    let (status, application) = app
        .post_form(
            tenant,
            &app.account_path(tenant, "Applications.json"),
            &[("FriendlyName", "IVR"), ("VoiceUrl", "module:ivr")],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{application}");
    let sid = application["sid"].as_str().expect("application sid");
    assert!(sid.starts_with("AP") && sid.len() == 34);
    app.buy_number(tenant, number, &[("VoiceApplicationSid", sid)])
        .await;
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

fn last_entry(timeline: &Value) -> Value {
    timeline["timeline"]
        .as_array()
        .and_then(|entries| entries.last().cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn ivr_call_goes_through_menu_and_branch_with_segments_metered() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    upload_ivr(&app, &tenant).await;
    ivr_number(&app, &tenant, "+14155550100").await;

    let call = app
        .place_call(&tenant, "+14155550199", "+14155550100")
        .await;
    assert!(call.starts_with("CA") && call.len() == 34);
    app.wait_for(&tenant, &call, |t| has_experience(t, "gather"))
        .await;
    // Two seconds of the caller thinking, under the menu's control.
    app.advance_clock(2_000).await;
    let (status, _) = app.sim(&tenant, &call, "Digits", &[("Digits", "2")]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let timeline = app.wait_ended(&tenant, &call).await;

    assert_eq!(
        experience_types(&timeline),
        [
            "status",
            "status",
            "gather",
            "say",
            "digits",
            "gather-ended",
            "say",
            "status",
            "hangup"
        ],
        "{timeline:#}"
    );
    assert_eq!(
        says(&timeline),
        [
            "Welcome to switchboard. Press 1 for sales, 2 for support, 0 for the operator.",
            "Connecting you to support."
        ]
    );
    let entries = timeline["timeline"].as_array().expect("entries");
    assert_eq!(entries[0]["status"], "ringing");
    assert_eq!(entries[1]["status"], "in-progress");
    assert_eq!(entries[4]["digits"], "2");
    assert_eq!(entries[5]["digits"], "2");
    assert_eq!(entries[5]["timed_out"], false);
    assert_eq!(entries[7]["status"], "completed");
    assert_eq!(last_entry(&timeline)["by"], "application");
    assert_eq!(timeline["status"], "completed");

    let (status, record) = app
        .get(
            &tenant,
            &app.account_path(&tenant, &format!("Calls/{call}.json")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["status"], "completed");
    assert_eq!(record["direction"], "inbound");
    assert_eq!(record["duration"], "2");
    assert_eq!(record["ended_by"], "application");

    let (status, segments) = app
        .get(&tenant, &format!("/v1/Calls/{call}/Segments"))
        .await;
    assert_eq!(status, StatusCode::OK, "{segments}");
    let list = segments["segments"].as_array().expect("segments");
    assert_eq!(list.len(), 2, "{segments:#}");
    assert_eq!(list[0]["uri"], "module:ivr@1");
    assert_eq!(list[0]["module_name"], "ivr");
    assert_eq!(list[0]["duration_ms"], 2_000);
    assert_eq!(list[0]["invocations"], 1);
    assert_eq!(
        list[0]["tts_characters"],
        "Welcome to switchboard. Press 1 for sales, 2 for support, 0 for the operator.".len()
    );
    assert!(list[0]["fuel_consumed"].as_i64().unwrap_or(0) > 0);
    assert_eq!(list[1]["uri"], "module:ivr-desk@1");
    assert_eq!(list[1]["duration_ms"], 0);
    assert_eq!(list[1]["invocations"], 1);
    assert_eq!(
        list[1]["tts_characters"],
        "Connecting you to support.".len()
    );
    for segment in list {
        assert!(
            segment["end_time"].is_string(),
            "segment left open: {segment}"
        );
    }
    // Totals per call are exactly the sums of the segments.
    let sum = |field: &str| {
        list.iter()
            .map(|s| s[field].as_i64().unwrap_or(0))
            .sum::<i64>()
    };
    for field in [
        "duration_ms",
        "invocations",
        "fuel_consumed",
        "media_ms",
        "tts_characters",
    ] {
        assert_eq!(segments["totals"][field], sum(field), "{field}");
    }

    // Usage per module: invocations, fuel and call time agree with the segments.
    let (status, usage) = app.get(&tenant, "/v1/Usage/Modules").await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    let module = |name: &str| {
        usage["usage"]
            .as_array()
            .and_then(|all| all.iter().find(|u| u["module_name"] == name).cloned())
            .unwrap_or_else(|| panic!("no usage for {name}: {usage}"))
    };
    assert_eq!(module("ivr")["invocations"], 1);
    assert_eq!(module("ivr")["call_ms"], 2_000);
    assert_eq!(module("ivr")["fuel_consumed"], list[0]["fuel_consumed"]);
    assert_eq!(module("ivr-desk")["invocations"], 1);
    assert_eq!(module("ivr-desk")["call_ms"], 0);
    assert_eq!(
        module("ivr-desk")["fuel_consumed"],
        list[1]["fuel_consumed"]
    );

    // Every status change and segment boundary is in the event log, in order.
    let (status, events) = app
        .get(&tenant, &format!("/v1/Events?Subject={call}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let types: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "call.status-changed",
            "call.segment-started",
            "call.status-changed",
            "call.segment-ended",
            "call.segment-started",
            "call.status-changed",
            "call.segment-ended",
        ],
        "{events:#}"
    );

    let (_, clock) = app.operator_get("/v1/Sim/Clock").await;
    assert_eq!(clock["live_calls"], 0);
    assert_eq!(clock["pending_timers"], 0);
    app.shutdown().await;
}

#[tokio::test]
async fn invalid_choice_returns_to_the_menu_and_silence_ends_the_call() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    upload_ivr(&app, &tenant).await;
    ivr_number(&app, &tenant, "+14155550101").await;

    let call = app
        .place_call(&tenant, "+14155550199", "+14155550101")
        .await;
    app.wait_for(&tenant, &call, |t| has_experience(t, "gather"))
        .await;
    app.sim(&tenant, &call, "Digits", &[("Digits", "9")]).await;
    // Back at the menu: a second gather starts.
    app.wait_for(&tenant, &call, |t| {
        experience_types(t)
            .iter()
            .filter(|k| *k == "gather")
            .count()
            == 2
    })
    .await;
    // Nobody presses anything: the gather times out after its 5 seconds.
    app.advance_clock(5_000).await;
    let timeline = app.wait_ended(&tenant, &call).await;
    assert_eq!(
        says(&timeline),
        [
            "Welcome to switchboard. Press 1 for sales, 2 for support, 0 for the operator.",
            "Sorry, that is not a valid choice.",
            "Welcome to switchboard. Press 1 for sales, 2 for support, 0 for the operator.",
            "We did not receive any input. Goodbye.",
        ],
        "{timeline:#}"
    );
    let ended: Vec<&Value> = timeline["timeline"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["type"] == "gather-ended")
        .collect();
    assert_eq!(ended[1]["timed_out"], true);
    assert_eq!(ended[1]["digits"], "");

    let (_, segments) = app
        .get(&tenant, &format!("/v1/Calls/{call}/Segments"))
        .await;
    let uris: Vec<&str> = segments["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .filter_map(|s| s["uri"].as_str())
        .collect();
    assert_eq!(uris, ["module:ivr@1", "module:ivr-desk@1", "module:ivr@1"]);
    assert_eq!(segments["totals"]["duration_ms"], 5_000);
    app.shutdown().await;
}

#[tokio::test]
async fn a_failing_module_hands_the_call_to_the_fallback_with_its_error_code() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    for name in ["flaky", "backup"] {
        let (status, body) = app
            .upload(&tenant, name, "telephony-handler", guest("misbehave"))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    app.set_limits(&tenant, &[("FuelLimit", "20000000")]).await;
    app.buy_number(
        &tenant,
        "+14155550110",
        &[
            ("VoiceUrl", "module:flaky"),
            ("VoiceFallbackUrl", "module:backup"),
        ],
    )
    .await;
    app.buy_number(
        &tenant,
        "+14155550111",
        &[
            ("VoiceUrl", "module:flaky"),
            ("VoiceFallbackUrl", "module:missing"),
        ],
    )
    .await;

    // The caller's number picks how the primary fails: trap, guest error, out of fuel.
    for (from, code) in [("trap", 31003), ("error", 31002), ("loop", 31004)] {
        let call = app.place_call(&tenant, from, "+14155550110").await;
        let timeline = app.wait_ended(&tenant, &call).await;
        assert_eq!(
            says(&timeline),
            [format!("recovered from error {code} at module:flaky")],
            "{from}: {timeline:#}"
        );
        assert_eq!(timeline["status"], "completed");
        let (_, segments) = app
            .get(&tenant, &format!("/v1/Calls/{call}/Segments"))
            .await;
        let uris: Vec<&str> = segments["segments"]
            .as_array()
            .expect("segments")
            .iter()
            .filter_map(|s| s["uri"].as_str())
            .collect();
        assert_eq!(uris, ["module:flaky@1", "module:backup@1"]);
    }

    // Primary and fallback both fail: the application-error message, then the end.
    let call = app.place_call(&tenant, "trap", "+14155550111").await;
    let timeline = app.wait_ended(&tenant, &call).await;
    assert!(
        has_experience(&timeline, "application-error"),
        "{timeline:#}"
    );
    let error = timeline["timeline"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["type"] == "application-error").cloned())
        .expect("application error");
    assert_eq!(error["code"], 31003);
    assert_eq!(
        says(&timeline),
        ["We are sorry, an application error has occurred. Goodbye."]
    );
    assert_eq!(last_entry(&timeline)["by"], "system");
    app.shutdown().await;
}

#[tokio::test]
async fn an_http_application_serving_twiml_drives_the_same_verbs() {
    let web = HttpApp::start(vec![
        (
            "/menu",
            Reply::twiml(
                r#"<?xml version="1.0" encoding="UTF-8"?>
                <Response>
                  <Gather numDigits="1" action="/choice" timeout="7"><Say>Press a key</Say></Gather>
                  <Say>No input</Say>
                </Response>"#,
            ),
        ),
        (
            "/choice",
            Reply::twiml(
                "<Response><Say voice=\"woman\">You chose</Say><Play loop=\"2\">/tone.wav</Play><Pause length=\"1\"/><Hangup/></Response>",
            ),
        ),
        // 1.5 s of 8 kHz audio: the host decodes it to learn how long it plays.
        (
            "/tone.wav",
            Reply::audio("audio/wav", switchboard_host::media::silent_wav(8_000, 12_000)),
        ),
    ])
    .await;
    let app = spawn().await;
    let tenant = app.tenant().await;
    app.buy_number(&tenant, "+14155550120", &[("VoiceUrl", &web.url("/menu"))])
        .await;
    let call = app
        .place_call(&tenant, "+14155550199", "+14155550120")
        .await;
    app.wait_for(&tenant, &call, |t| has_experience(t, "gather"))
        .await;
    app.sim(&tenant, &call, "Digits", &[("Digits", "7")]).await;
    let timeline = app.wait_ended(&tenant, &call).await;
    assert_eq!(
        experience_types(&timeline),
        [
            "status",
            "status",
            "gather",
            "say",
            "digits",
            "gather-ended",
            "say",
            "play",
            "play",
            "pause",
            "status",
            "hangup"
        ],
        "{timeline:#}"
    );
    let entries = timeline["timeline"].as_array().expect("entries");
    assert_eq!(entries[2]["timeout_seconds"], 7);
    assert_eq!(entries[6]["voice"], "woman");
    assert_eq!(entries[7]["url"], web.url("/tone.wav"));
    assert_eq!(entries[7]["duration_ms"], 1_500);
    assert_eq!(entries[8]["duration_ms"], 1_500);
    assert_eq!(entries[9]["duration_ms"], 1_000);
    let (_, segments) = app
        .get(&tenant, &format!("/v1/Calls/{call}/Segments"))
        .await;
    let choice = &segments["segments"][1];
    let speech = entries[6]["duration_ms"].as_i64().expect("speech duration");
    assert!(speech > 0, "{timeline:#}");
    assert_eq!(choice["media_ms"], speech + 3_000, "{segments:#}");

    let received: Vec<_> = web
        .received()
        .into_iter()
        .filter(|r| r.path != "/tone.wav")
        .collect();
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[0].path, "/menu");
    assert_eq!(received[0].param("CallSid"), Some(call.as_str()));
    assert_eq!(received[0].param("AccountSid"), Some(tenant.sid.as_str()));
    assert_eq!(received[0].param("From"), Some("+14155550199"));
    assert_eq!(received[0].param("To"), Some("+14155550120"));
    assert_eq!(received[0].param("Direction"), Some("inbound"));
    assert_eq!(received[0].param("CallStatus"), Some("ringing"));
    assert_eq!(received[0].param("ApiVersion"), Some("2010-04-01"));
    assert_eq!(received[1].path, "/choice");
    assert_eq!(received[1].param("Digits"), Some("7"));
    assert_eq!(received[1].param("CallStatus"), Some("in-progress"));
    app.shutdown().await;
}

#[tokio::test]
async fn failing_http_applications_fall_back_with_the_right_error_code() {
    let fallback = "<Response><Say>fallback ran</Say><Hangup/></Response>";
    let slow = Reply {
        delay_ms: 3_000,
        ..Reply::twiml("<Response><Say>too late</Say></Response>")
    };
    let web = HttpApp::start(vec![
        (
            "/error",
            Reply {
                status: 500,
                ..Reply::twiml("oops")
            },
        ),
        ("/slow", slow),
        (
            "/bad-xml",
            Reply::twiml("<Response><Say>unclosed</Response>"),
        ),
        (
            "/unknown-verb",
            Reply::twiml("<Response><Record/></Response>"),
        ),
        (
            "/bad-gather",
            Reply::twiml("<Response><Gather numDigits=\"0\"><Say>x</Say></Gather></Response>"),
        ),
        (
            "/no-type",
            Reply {
                content_type: None,
                ..Reply::twiml("<Response/>")
            },
        ),
        ("/fallback", Reply::twiml(fallback)),
    ])
    .await;
    let app = spawn().await;
    let tenant = app.tenant().await;
    let cases = [
        ("/error", 11200),
        ("/slow", 11205),
        ("/bad-xml", 12100),
        ("/unknown-verb", 12200),
        ("/bad-gather", 12200),
        ("/no-type", 12300),
        ("/nowhere", 11200),
    ];
    for (index, (path, code)) in cases.iter().enumerate() {
        let number = format!("+1415555013{index}");
        app.buy_number(
            &tenant,
            &number,
            &[
                ("VoiceUrl", &web.url(path)),
                ("VoiceFallbackUrl", &web.url("/fallback")),
            ],
        )
        .await;
        let call = app.place_call(&tenant, "+14155550199", &number).await;
        let timeline = app.wait_ended(&tenant, &call).await;
        assert_eq!(says(&timeline), ["fallback ran"], "{path}: {timeline:#}");
        let asked = web
            .received()
            .into_iter()
            .filter(|r| r.path == "/fallback" && r.param("CallSid") == Some(call.as_str()))
            .collect::<Vec<_>>();
        assert_eq!(asked.len(), 1, "{path}");
        let expected_code = code.to_string();
        assert_eq!(
            asked[0].param("ErrorCode"),
            Some(expected_code.as_str()),
            "{path}"
        );
        assert_eq!(
            asked[0].param("ErrorUrl"),
            Some(web.url(path).as_str()),
            "{path}"
        );
    }

    // Both failing: the caller hears the application error and the call ends.
    app.buy_number(
        &tenant,
        "+14155550140",
        &[
            ("VoiceUrl", &web.url("/error")),
            ("VoiceFallbackUrl", &web.url("/bad-xml")),
        ],
    )
    .await;
    let call = app
        .place_call(&tenant, "+14155550199", "+14155550140")
        .await;
    let timeline = app.wait_ended(&tenant, &call).await;
    assert!(
        has_experience(&timeline, "application-error"),
        "{timeline:#}"
    );
    assert_eq!(timeline["status"], "completed");
    app.shutdown().await;
}

#[tokio::test]
async fn live_calls_are_redirected_and_hung_up_over_rest_with_ordered_status_callbacks() {
    let web = HttpApp::start(vec![("/status", Reply::twiml("<Response/>"))]).await;
    let app = spawn().await;
    let tenant = app.tenant().await;
    upload_ivr(&app, &tenant).await;
    let calls = app.account_path(&tenant, "Calls.json");
    let status_url = web.url("/status");
    let (status, created) = app
        .post_form(
            &tenant,
            &calls,
            &[
                ("To", "+14155550150"),
                ("From", "+14155550100"),
                ("Url", "module:ivr"),
                ("StatusCallback", status_url.as_str()),
                ("StatusCallbackEvent", "initiated"),
                ("StatusCallbackEvent", "ringing"),
                ("StatusCallbackEvent", "answered completed"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "queued");
    assert_eq!(created["direction"], "outbound-api");
    let call = created["sid"].as_str().expect("sid").to_string();

    app.wait_for(&tenant, &call, |t| t["status"] == "ringing")
        .await;
    let (status, _) = app.sim(&tenant, &call, "Answer", &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.wait_for(&tenant, &call, |t| has_experience(t, "gather"))
        .await;

    // Redirect: the desk module takes over (it sends the caller back to the menu).
    let path = app.account_path(&tenant, &format!("Calls/{call}.json"));
    let (status, body) = app
        .post_form(&tenant, &path, &[("Url", "module:ivr-desk")])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.wait_for(&tenant, &call, |t| {
        experience_types(t)
            .iter()
            .filter(|k| *k == "gather")
            .count()
            == 2
    })
    .await;

    // Hang up through the API: the answer comes once the end is committed, and shows it.
    let (status, body) = app
        .post_form(&tenant, &path, &[("Status", "completed")])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(body["ended_by"], "api");
    let timeline = app.wait_ended(&tenant, &call).await;
    assert_eq!(last_entry(&timeline)["by"], "api");
    let (_, record) = app.get(&tenant, &path).await;
    assert_eq!(record["status"], "completed");
    assert_eq!(record["ended_by"], "api");
    let (_, segments) = app
        .get(&tenant, &format!("/v1/Calls/{call}/Segments"))
        .await;
    let uris: Vec<&str> = segments["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .filter_map(|s| s["uri"].as_str())
        .collect();
    assert_eq!(uris, ["module:ivr@1", "module:ivr-desk@1", "module:ivr@1"]);

    // The callbacks arrive once each, in order.
    let mut callbacks = Vec::new();
    for _ in 0..500 {
        callbacks = web.received();
        if callbacks.len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let statuses: Vec<&str> = callbacks
        .iter()
        .filter_map(|r| r.param("CallStatus"))
        .collect();
    assert_eq!(
        statuses,
        ["initiated", "ringing", "in-progress", "completed"]
    );
    let sequence: Vec<&str> = callbacks
        .iter()
        .filter_map(|r| r.param("SequenceNumber"))
        .collect();
    assert_eq!(sequence, ["0", "1", "2", "3"]);
    assert!(
        callbacks
            .iter()
            .all(|r| r.param("CallSid") == Some(call.as_str()))
    );

    // An ended call takes no more actions.
    let (status, body) = app
        .post_form(&tenant, &path, &[("Url", "module:ivr")])
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], 31011);
    app.shutdown().await;
}

#[tokio::test]
async fn a_caller_hanging_up_mid_gather_leaves_nothing_behind() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    upload_ivr(&app, &tenant).await;
    ivr_number(&app, &tenant, "+14155550160").await;
    let call = app
        .place_call(&tenant, "+14155550199", "+14155550160")
        .await;
    app.wait_for(&tenant, &call, |t| has_experience(t, "gather"))
        .await;
    // The gather's timeout is waiting on the clock.
    let mut waiting = 0;
    for _ in 0..500 {
        let (_, clock) = app.operator_get("/v1/Sim/Clock").await;
        waiting = clock["pending_timers"].as_i64().unwrap_or(0);
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(waiting, 1);
    let (status, _) = app.sim(&tenant, &call, "Hangup", &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let timeline = app.wait_ended(&tenant, &call).await;
    assert_eq!(last_entry(&timeline)["by"], "caller");
    assert!(!has_experience(&timeline, "gather-ended"));
    let (_, clock) = app.operator_get("/v1/Sim/Clock").await;
    assert_eq!(clock["pending_timers"], 0);
    assert_eq!(clock["live_calls"], 0);
    let (_, segments) = app
        .get(&tenant, &format!("/v1/Calls/{call}/Segments"))
        .await;
    assert!(
        segments["segments"]
            .as_array()
            .expect("segments")
            .iter()
            .all(|s| s["end_time"].is_string())
    );
    let (_, record) = app
        .get(
            &tenant,
            &app.account_path(&tenant, &format!("Calls/{call}.json")),
        )
        .await;
    assert_eq!(record["status"], "completed");
    assert_eq!(record["ended_by"], "caller");
    app.shutdown().await;
}

/// Places a call to +14155550170, whose application dials out, and answers the sids of the call
/// and of its dialled leg once the leg rings.
async fn ringing_leg(app: &TestApp, tenant: &Tenant) -> (String, String) {
    let call = app.place_call(tenant, "+14155550199", "+14155550170").await;
    let timeline = app
        .wait_for(tenant, &call, |t| has_experience(t, "dialing"))
        .await;
    let leg = timeline["timeline"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["type"] == "dialing").cloned())
        .and_then(|e| e["call_sid"].as_str().map(str::to_string))
        .expect("dialled leg");
    app.wait_for(tenant, &leg, |t| t["status"] == "ringing")
        .await;
    (call, leg)
}

#[tokio::test]
async fn dial_number_rings_the_sim_callee_and_reports_to_the_action() {
    let web = HttpApp::start(vec![
        (
            "/dial",
            Reply::twiml(
                "<Response><Dial action=\"/after\" timeout=\"10\"><Number>+14155559999</Number></Dial></Response>",
            ),
        ),
        ("/after", Reply::twiml("<Response><Say>dial done</Say></Response>")),
    ])
    .await;
    let app = spawn().await;
    let tenant = app.tenant().await;
    app.buy_number(&tenant, "+14155550170", &[("VoiceUrl", &web.url("/dial"))])
        .await;
    let (call, leg) = ringing_leg(&app, &tenant).await;
    app.sim(&tenant, &leg, "Answer", &[]).await;
    app.wait_for(&tenant, &call, |t| has_experience(t, "bridged"))
        .await;
    app.advance_clock(3_000).await;
    app.sim(&tenant, &leg, "Hangup", &[]).await;
    let timeline = app.wait_ended(&tenant, &call).await;
    assert_eq!(says(&timeline), ["dial done"], "{timeline:#}");
    let after = web
        .received()
        .into_iter()
        .find(|r| r.path == "/after")
        .expect("the dial action was requested");
    assert_eq!(after.param("DialCallStatus"), Some("completed"));
    assert_eq!(after.param("DialCallSid"), Some(leg.as_str()));
    assert_eq!(after.param("DialCallDuration"), Some("3"));

    let (_, child) = app
        .get(
            &tenant,
            &app.account_path(&tenant, &format!("Calls/{leg}.json")),
        )
        .await;
    assert_eq!(child["parent_call_sid"], json!(call));
    assert_eq!(child["direction"], "outbound-dial");
    assert_eq!(child["status"], "completed");
    assert_eq!(child["ended_by"], "callee");

    // A second call whose dialled party is busy.
    let (call, leg) = ringing_leg(&app, &tenant).await;
    app.sim(&tenant, &leg, "Busy", &[]).await;
    app.wait_ended(&tenant, &call).await;
    let busy = web
        .received()
        .into_iter()
        .filter(|r| r.path == "/after")
        .nth(1)
        .expect("second dial action");
    assert_eq!(busy.param("DialCallStatus"), Some("busy"));

    // Dialled legs hung up through the API: one while it rings, one bridged. Each answer shows
    // the leg's end at once.
    for answered in [false, true] {
        let (call, leg) = ringing_leg(&app, &tenant).await;
        if answered {
            app.sim(&tenant, &leg, "Answer", &[]).await;
            app.wait_for(&tenant, &call, |t| has_experience(t, "bridged"))
                .await;
        }
        let path = app.account_path(&tenant, &format!("Calls/{leg}.json"));
        let (status, body) = app
            .post_form(&tenant, &path, &[("Status", "completed")])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ended = if answered { "completed" } else { "canceled" };
        assert_eq!(body["status"], ended, "{body}");
        assert_eq!(body["ended_by"], "api");
        app.wait_ended(&tenant, &call).await;
        let (_, stored) = app.get(&tenant, &path).await;
        assert_eq!(stored["status"], ended, "{stored}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn bad_input_is_refused_clearly_and_changes_nothing() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let other = app.tenant().await;

    // A call to a number nobody (of this account) owns is rejected.
    let (status, body) = app
        .post_form(
            &tenant,
            "/v1/Sim/Calls",
            &[("From", "+1415"), ("To", "+14155550999")],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], 31010);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("+14155550999")
    );

    // Numbers: E.164 only, one owner.
    let numbers = app.account_path(&tenant, "IncomingPhoneNumbers.json");
    for bad in ["4155550100", "+0123", "+1 415 555", "+1234567890123456"] {
        let (status, body) = app
            .post_form(&tenant, &numbers, &[("PhoneNumber", bad)])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    app.buy_number(&tenant, "+14155550180", &[("VoiceUrl", "module:ivr")])
        .await;
    let (status, body) = app
        .post_form(
            &other,
            &app.account_path(&other, "IncomingPhoneNumbers.json"),
            &[("PhoneNumber", "+14155550180")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Another tenant cannot place calls to it either.
    let (status, _) = app
        .post_form(&other, "/v1/Sim/Calls", &[("To", "+14155550180")])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // URIs and methods are checked.
    let apps = app.account_path(&tenant, "Applications.json");
    for (field, value) in [
        ("VoiceUrl", "ftp://example.com/x"),
        ("VoiceUrl", "module:Bad Name"),
        ("VoiceUrl", "module:ivr@0"),
        ("VoiceMethod", "PUT"),
        ("StatusCallback", "module:ivr"),
    ] {
        let (status, body) = app.post_form(&tenant, &apps, &[(field, value)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {body}");
        assert_eq!(body["code"], 20001);
    }
    let (status, _) = app
        .post_form(&tenant, &apps, &[("VoiceFallbackUrl", "module:ivr")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, list) = app.get(&tenant, &apps).await;
    assert_eq!(list["applications"], json!([]));

    // Another account's path and resources are 404s.
    let (status, _) = app
        .get(&other, &app.account_path(&tenant, "Calls.json"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, created) = app
        .post_form(
            &tenant,
            &app.account_path(&tenant, "Calls.json"),
            &[
                ("To", "+14155550190"),
                ("From", "+14155550180"),
                ("Url", "module:ivr"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let call = created["sid"].as_str().expect("sid");
    let (status, _) = app
        .get(
            &other,
            &app.account_path(&other, &format!("Calls/{call}.json")),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.sim(&other, call, "Hangup", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get(&other, &format!("/v1/Sim/Calls/{call}/Timeline"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Keys must be keys; calls need a handler; REST updates must say what to do.
    let (status, body) = app.sim(&tenant, call, "Digits", &[("Digits", "12x")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .post_form(
            &tenant,
            &app.account_path(&tenant, "Calls.json"),
            &[("To", "+14155550190"), ("From", "+14155550180")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = app
        .post_form(
            &tenant,
            &app.account_path(&tenant, &format!("Calls/{call}.json")),
            &[("Status", "ringing")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.sim(&tenant, call, "Reject", &[]).await;
    let timeline = app.wait_ended(&tenant, call).await;
    assert_eq!(timeline["status"], "no-answer");

    // The system clock cannot be moved.
    let system = TestApp::spawn().await;
    let response = system
        .client
        .post(system.path("/v1/Sim/Clock"))
        .bearer_auth(&system.admin_token)
        .form(&[("AdvanceMs", "1000")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::CONFLICT);
    system.shutdown().await;
    app.shutdown().await;
}

#[tokio::test]
async fn reject_as_the_first_instruction_refuses_the_call_unanswered() {
    let web = HttpApp::start(vec![
        (
            "/busy",
            Reply::twiml("<Response><Reject reason=\"busy\"/></Response>"),
        ),
        (
            "/reject",
            Reply::twiml("<Response><Reject/><Say>never</Say></Response>"),
        ),
    ])
    .await;
    let app = spawn().await;
    let tenant = app.tenant().await;
    for (path, number, status) in [
        ("/busy", "+14155550210", "busy"),
        ("/reject", "+14155550211", "no-answer"),
    ] {
        app.buy_number(&tenant, number, &[("VoiceUrl", &web.url(path))])
            .await;
        let call = app.place_call(&tenant, "+14155550199", number).await;
        let timeline = app.wait_ended(&tenant, &call).await;
        assert_eq!(
            experience_types(&timeline),
            ["status", "status", "hangup"],
            "{timeline:#}"
        );
        assert_eq!(timeline["status"], status);
        let (_, record) = app
            .get(
                &tenant,
                &app.account_path(&tenant, &format!("Calls/{call}.json")),
            )
            .await;
        assert_eq!(record["status"], status);
        assert_eq!(record["start_time"], Value::Null, "never answered");
        assert_eq!(record["ended_by"], "application");
    }
    app.shutdown().await;
}
