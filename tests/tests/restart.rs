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
