//! Misbehaving guests are stopped, classified and metered, and never disturb the next invocation
//! or another account.

use reqwest::StatusCode;
use switchboard_tests::{TestApp, guest};

async fn with_misbehave() -> (TestApp, switchboard_tests::Tenant) {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (status, body) = app
        .upload(
            &tenant,
            "misbehave",
            "telephony-handler",
            guest("misbehave"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (app, tenant)
}

async fn assert_healthy(app: &TestApp, tenant: &switchboard_tests::Tenant) {
    let result = app.misbehave(tenant, "anything").await;
    assert_eq!(result["outcome"], "ok", "{result}");
    assert_eq!(result["output"][0]["text"], "ok");
}

#[tokio::test]
async fn an_endless_loop_is_stopped_by_fuel() {
    let (app, tenant) = with_misbehave().await;
    app.set_limits(
        &tenant,
        &[("FuelLimit", "20000000"), ("DeadlineMs", "60000")],
    )
    .await;
    let result = app.misbehave(&tenant, "loop").await;
    assert_eq!(result["outcome"], "out-of-fuel", "{result}");
    assert_eq!(result["error"]["outcome"], "out-of-fuel");
    assert!(
        result["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("fuel"))
    );
    assert_eq!(result["usage"]["fuel_consumed"], 20_000_000);
    assert_healthy(&app, &tenant).await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_endless_loop_is_stopped_by_the_deadline_without_blocking_others() {
    let (app, tenant) = with_misbehave().await;
    app.set_limits(
        &tenant,
        &[("FuelLimit", "1000000000000000"), ("DeadlineMs", "1500")],
    )
    .await;
    let other = app.tenant().await;
    app.upload(&other, "hello", "telephony-handler", guest("hello"))
        .await;

    let looping = {
        let app_url = app.url.clone();
        let tenant = tenant.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{app_url}/v1/Modules/misbehave/Invoke"))
                .basic_auth(&tenant.sid, Some(&tenant.token))
                .json(&serde_json::json!({"call": {"to": "loop"}}))
                .send()
                .await
                .expect("invoke")
                .json::<serde_json::Value>()
                .await
                .expect("json")
        })
    };
    // While the loop runs, another account is served.
    let (status, hello) = app.invoke(&other, "hello", serde_json::json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hello["outcome"], "ok");
    assert!(
        !looping.is_finished(),
        "the other account was served while the loop was still running"
    );

    let result = looping.await.expect("join");
    assert_eq!(result["outcome"], "deadline", "{result}");
    assert!(
        result["usage"]["wall_time_us"]
            .as_u64()
            .is_some_and(|us| us >= 1_500_000),
        "{result}"
    );
    assert_healthy(&app, &tenant).await;
    app.shutdown().await;
}

#[tokio::test]
async fn memory_growth_past_the_budget_is_stopped() {
    let (app, tenant) = with_misbehave().await;
    app.set_limits(&tenant, &[("MemoryLimitBytes", "16777216")])
        .await;
    let result = app.misbehave(&tenant, "grow").await;
    assert_eq!(result["outcome"], "memory-limit", "{result}");
    assert!(
        result["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("16777216")),
        "{result}"
    );
    let peak = result["usage"]["peak_memory_bytes"].as_u64().expect("peak");
    assert!(
        peak > 8 * 1024 * 1024 && peak <= 16 * 1024 * 1024,
        "peak {peak}"
    );
    assert_healthy(&app, &tenant).await;
    app.shutdown().await;
}

#[tokio::test]
async fn traps_guest_errors_and_host_call_floods_are_classified() {
    let (app, tenant) = with_misbehave().await;

    let result = app.misbehave(&tenant, "trap").await;
    assert_eq!(result["outcome"], "unreachable", "{result}");
    assert!(
        result["error"]["stderr"]
            .as_str()
            .is_some_and(|s| s.contains("misbehave asked to trap")),
        "{result}"
    );
    assert!(
        result["error"]["backtrace"]
            .as_str()
            .is_some_and(|b| !b.is_empty()),
        "{result}"
    );

    let result = app.misbehave(&tenant, "error").await;
    assert_eq!(result["outcome"], "guest-error", "{result}");
    assert_eq!(result["error"]["message"], "misbehave returned an error");

    app.set_limits(&tenant, &[("HostCallLimit", "100")]).await;
    let result = app.misbehave(&tenant, "hostcalls").await;
    assert_eq!(result["outcome"], "host-call-limit", "{result}");
    assert_eq!(result["usage"]["host_calls"], 101);

    assert_healthy(&app, &tenant).await;
    let (_, usage) = app
        .get(&tenant, "/v1/Usage/Modules?ModuleName=misbehave")
        .await;
    let outcomes = &usage["usage"][0]["outcomes"];
    assert_eq!(outcomes["unreachable"], 1, "{usage}");
    assert_eq!(outcomes["guest-error"], 1);
    assert_eq!(outcomes["host-call-limit"], 1);
    assert_eq!(outcomes["ok"], 1);
    app.shutdown().await;
}

#[tokio::test]
async fn kv_keeps_state_between_invocations_per_account() {
    let (app, tenant) = with_misbehave().await;
    let first = app.misbehave(&tenant, "kv").await;
    assert_eq!(first["output"][0]["text"], "visit 1", "{first}");
    let second = app.misbehave(&tenant, "kv").await;
    assert_eq!(second["output"][0]["text"], "visit 2");
    assert_eq!(second["usage"]["host_calls"], 1);

    let other = app.tenant().await;
    app.upload(&other, "misbehave", "telephony-handler", guest("misbehave"))
        .await;
    let theirs = app.misbehave(&other, "kv").await;
    assert_eq!(
        theirs["output"][0]["text"], "visit 1",
        "kv is scoped to the account"
    );

    let logged = app.misbehave(&tenant, "log").await;
    assert_eq!(logged["output"][0]["text"], "logged");
    app.shutdown().await;
}
