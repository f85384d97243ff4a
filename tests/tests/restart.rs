//! A restart on the same storage keeps modules, versions and usage, and reuses compiled artifacts.

use reqwest::StatusCode;
use switchboard_tests::{TestApp, guest, json};

#[tokio::test]
async fn modules_usage_and_artifacts_survive_a_restart() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    app.upload(&tenant, "hello", "telephony-handler", guest("hello"))
        .await;
    app.upload(&tenant, "hello", "telephony-handler", guest("hello"))
        .await;
    for _ in 0..3 {
        let (status, _) = app.invoke(&tenant, "hello", json!({})).await;
        assert_eq!(status, StatusCode::OK);
    }

    let app = app.restart().await;
    let (status, versions) = app.get(&tenant, "/v1/Modules/hello/Versions").await;
    assert_eq!(status, StatusCode::OK, "{versions}");
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(2));
    let (_, usage) = app.get(&tenant, "/v1/Usage/Modules").await;
    assert_eq!(usage["usage"][0]["invocations"], 3, "{usage}");

    let (status, result) = app.invoke(&tenant, "hello", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(result["outcome"], "ok");

    let stats: serde_json::Value = app
        .client
        .get(app.path("/v1/Runtime"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .expect("runtime")
        .json()
        .await
        .expect("json");
    assert_eq!(
        stats["compilations"], 0,
        "the artifact on disk was reused: {stats}"
    );
    assert!(
        stats["artifact_loads"].as_u64().is_some_and(|n| n >= 1),
        "{stats}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn calls_are_ended_cleanly_by_a_restart_and_their_records_survive() {
    use switchboard_tests::has_experience;
    let app = TestApp::spawn_with(|config| {
        config.telephony.clock = switchboard_host::clock::ClockKind::Manual;
        config.telephony.media_speed = 0.0;
    })
    .await;
    let tenant = app.tenant().await;
    for (name, file) in [("ivr", "ivr"), ("ivr-desk", "ivr_desk")] {
        let (status, body) = app
            .upload(&tenant, name, "telephony-handler", guest(file))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    app.buy_number(&tenant, "+14155550200", &[("VoiceUrl", "module:ivr")])
        .await;
    let finished = app
        .place_call(&tenant, "+14155550199", "+14155550200")
        .await;
    app.wait_for(&tenant, &finished, |t| has_experience(t, "gather"))
        .await;
    app.sim(&tenant, &finished, "Digits", &[("Digits", "1")])
        .await;
    app.wait_ended(&tenant, &finished).await;
    let waiting = app
        .place_call(&tenant, "+14155550199", "+14155550200")
        .await;
    app.wait_for(&tenant, &waiting, |t| has_experience(t, "gather"))
        .await;

    let app = app.restart().await;
    // The call that was waiting was hung up by the stopping host, with its timeline stored.
    let (status, record) = app
        .get(
            &tenant,
            &app.account_path(&tenant, &format!("Calls/{waiting}.json")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["status"], "completed");
    assert_eq!(record["ended_by"], "system");
    let (_, timeline) = app
        .get(&tenant, &format!("/v1/Sim/Calls/{waiting}/Timeline"))
        .await;
    assert_eq!(timeline["live"], false);
    assert!(has_experience(&timeline, "gather"), "{timeline}");
    // The finished call, its segments and its events are all still there.
    let (_, segments) = app
        .get(&tenant, &format!("/v1/Calls/{finished}/Segments"))
        .await;
    assert_eq!(
        segments["segments"].as_array().map(Vec::len),
        Some(2),
        "{segments}"
    );
    let (_, events) = app
        .get(&tenant, &format!("/v1/Events?Subject={finished}"))
        .await;
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(7),
        "{events}"
    );
    let (status, _) = app
        .sim(&tenant, &waiting, "Digits", &[("Digits", "1")])
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    app.shutdown().await;
}

#[tokio::test]
async fn a_host_with_an_unreachable_log_tail_refuses_to_start_and_touches_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = switchboard_host::config::Config {
        bind: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.path().join("data"),
        database: switchboard_host::config::DatabaseSettings {
            log_restart_pages: 100,
            log_tail_pages: 100,
            ..Default::default()
        },
        ..Default::default()
    };
    let error = switchboard_host::app::Server::start(config)
        .await
        .err()
        .expect("refused");
    assert!(
        error
            .to_string()
            .contains("database.log_tail_pages is 100 and database.log_restart_pages is 100"),
        "{error:#}"
    );
    assert!(!dir.path().join("data").exists(), "nothing was created");
}
