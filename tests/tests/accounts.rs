//! Authentication, operator access and isolation between accounts.

use reqwest::StatusCode;
use switchboard_tests::{Tenant, TestApp, guest, json};

#[tokio::test]
async fn credentials_are_required_and_checked() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;

    let response = app
        .client
        .get(app.path("/v1/Modules"))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], 20003);

    let response = app
        .client
        .get(app.path("/v1/Modules"))
        .basic_auth(&tenant.sid, Some("wrong"))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Tenants are not operators, and a wrong admin token is refused.
    let response = app
        .client
        .post(app.path("/v1/Accounts"))
        .basic_auth(&tenant.sid, Some(&tenant.token))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .client
        .post(app.path("/v1/Accounts"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let (status, me) = app
        .get(&tenant, &format!("/v1/Accounts/{}", tenant.sid))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["status"], "active");
    assert!(
        me.get("auth_token").is_none(),
        "the token is shown only at creation"
    );

    app.set_limits(&tenant, &[("Status", "suspended")]).await;
    let (status, _) = app.get(&tenant, "/v1/Modules").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let response = app
        .client
        .post(app.path(&format!("/v1/Accounts/{}", tenant.sid)))
        .bearer_auth(&app.admin_token)
        .form(&[("FuelLimit", "lots")])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    app.shutdown().await;
}

#[tokio::test]
async fn verified_credentials_are_trusted_for_the_configured_time_only() {
    let app = TestApp::spawn_with(|config| {
        config.telephony.clock = switchboard_host::clock::ClockKind::Manual;
        config.accounts.credential_cache_seconds = 10;
    })
    .await;
    let tenant = app.tenant().await;
    let me = format!("/v1/Accounts/{}", tenant.sid);
    let (status, _) = app.get(&tenant, &me).await;
    assert_eq!(status, StatusCode::OK);

    // Another host suspends the account: this one trusts what it verified until the time is up,
    // but never a token it did not verify.
    app.suspend_elsewhere(&tenant.sid).await;
    app.advance_clock(9_000).await;
    let (status, body) = app.get(&tenant, &me).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["status"], "suspended",
        "the resource itself is read fresh"
    );
    let wrong = Tenant {
        sid: tenant.sid.clone(),
        token: "0".repeat(32),
    };
    let (status, _) = app.get(&wrong, &me).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    app.advance_clock(1_000).await;
    let (status, body) = app.get(&tenant, &me).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], 20003);
    app.shutdown().await;
}

#[tokio::test]
async fn another_accounts_modules_are_not_found() {
    let app = TestApp::spawn().await;
    let alice = app.tenant().await;
    let bob = app.tenant().await;
    app.upload(&alice, "hello", "telephony-handler", guest("hello"))
        .await;

    let (_, list) = app.get(&bob, "/v1/Modules").await;
    assert_eq!(list["modules"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        app.get(&bob, "/v1/Modules/hello").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&bob, "/v1/Modules/hello/Versions/1").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.invoke(&bob, "hello", json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&bob, "/v1/Modules/hello").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&bob, "/v1/Modules/hello/Versions/1").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&bob, &format!("/v1/Accounts/{}", alice.sid))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, usage) = app.get(&bob, "/v1/Usage/Modules").await;
    assert_eq!(usage["usage"].as_array().map(Vec::len), Some(0));

    // Alice still has her module, untouched.
    let (status, result) = app.invoke(&alice, "hello", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(result["outcome"], "ok");
    app.shutdown().await;
}

#[tokio::test]
async fn operations_endpoints_answer() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    app.upload(&tenant, "hello", "telephony-handler", guest("hello"))
        .await;
    app.invoke(&tenant, "hello", json!({})).await;

    let health = app
        .client
        .get(app.path("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);

    let metrics = app
        .client
        .get(app.path("/metrics"))
        .send()
        .await
        .expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(text.contains("switchboard_invocations_total"), "{text}");
    assert!(text.contains("switchboard_invocation_seconds"));
    // The dry run answers once its usage record is committed: the writer has taken a batch.
    assert!(text.contains("switchboard_state_changes_total"), "{text}");
    assert!(
        text.contains("switchboard_writer_waiting_changes"),
        "{text}"
    );

    let openapi: serde_json::Value = app
        .client
        .get(app.path("/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert!(
        openapi["paths"]["/v1/Modules"]["post"].is_object(),
        "{openapi}"
    );
    assert!(openapi["paths"]["/v1/Usage/Modules"]["get"].is_object());

    let errors: serde_json::Value = app
        .client
        .get(app.path("/v1/Errors/30003"))
        .send()
        .await
        .expect("errors")
        .json()
        .await
        .expect("json");
    assert_eq!(errors["status"], 422);

    let missing = app
        .client
        .get(app.path("/v1/Nope"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    app.shutdown().await;
}
