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
    let challenge = |response: &reqwest::Response| {
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        challenge(&response).as_deref(),
        Some("Basic realm=\"switchboard\"")
    );
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
    assert_eq!(
        challenge(&response).as_deref(),
        Some("Bearer realm=\"switchboard\""),
        "the operator's scheme"
    );

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

#[tokio::test]
async fn an_api_key_authenticates_as_its_account_until_it_is_deleted() {
    let app = TestApp::spawn().await;
    let alice = app.tenant().await;
    let bob = app.tenant().await;
    let (status, key) = app
        .post_form(&alice, "/v1/Keys", &[("FriendlyName", "backend")])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let by_key = Tenant {
        sid: key["sid"].as_str().expect("key sid").to_string(),
        token: key["secret"].as_str().expect("key secret").to_string(),
    };

    // Basic KeySid:Secret, as the reference's SDKs send when given a key, acts as the account.
    let (status, workspace) = app
        .post_form(&by_key, "/v1/Workspaces", &[("FriendlyName", "by key")])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{workspace}");
    assert_eq!(workspace["account_sid"], alice.sid.as_str());
    let (status, listed) = app.get(&alice, "/v1/Workspaces").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["workspaces"].as_array().map(Vec::len), Some(1));
    let (status, me) = app
        .get(&by_key, &format!("/v1/Accounts/{}", alice.sid))
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let (status, _) = app.get(&by_key, &format!("/v1/Accounts/{}", bob.sid)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another account stays invisible"
    );
    let (_, bobs) = app.get(&bob, "/v1/Workspaces").await;
    assert_eq!(bobs["workspaces"].as_array().map(Vec::len), Some(0));

    // A wrong secret, or a key's secret under the account's sid, is refused.
    let wrong = Tenant {
        sid: by_key.sid.clone(),
        token: "0".repeat(32),
    };
    let (status, body) = app.get(&wrong, "/v1/Workspaces").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], 20003);
    let mixed = Tenant {
        sid: alice.sid.clone(),
        token: by_key.token.clone(),
    };
    assert_eq!(
        app.get(&mixed, "/v1/Workspaces").await.0,
        StatusCode::UNAUTHORIZED
    );

    // A key cannot manage keys, and its refusal changes nothing.
    let (status, body) = app
        .post_form(&by_key, "/v1/Keys", &[("FriendlyName", "successor")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], 20403);
    assert_eq!(
        app.delete(&by_key, &format!("/v1/Keys/{}", by_key.sid))
            .await,
        StatusCode::FORBIDDEN
    );
    let (_, keys) = app.get(&alice, "/v1/Keys").await;
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(1), "{keys}");
    // The same keys through the reference's 2010 API, for its own account only.
    let (status, legacy) = app
        .get(
            &alice,
            &format!("/2010-04-01/Accounts/{}/Keys.json", alice.sid),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{legacy}");
    assert_eq!(legacy["keys"][0]["sid"], by_key.sid.as_str());
    assert!(
        legacy["keys"][0]["secret"].is_null(),
        "secrets are never listed"
    );
    let (status, _) = app
        .get(
            &alice,
            &format!("/2010-04-01/Accounts/{}/Keys.json", bob.sid),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get(
            &bob,
            &format!("/2010-04-01/Accounts/{}/Keys/{}.json", bob.sid, by_key.sid),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another account's key is not found"
    );

    // Deleting the key stops it at the next request, although it was just verified.
    assert_eq!(
        app.delete(&alice, &format!("/v1/Keys/{}", by_key.sid))
            .await,
        StatusCode::NO_CONTENT
    );
    let (status, body) = app.get(&by_key, "/v1/Workspaces").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // So does suspending the account, for every key it has.
    let (_, second) = app
        .post_form(&alice, "/v1/Keys", &[("FriendlyName", "second")])
        .await;
    let second = Tenant {
        sid: second["sid"].as_str().expect("key sid").to_string(),
        token: second["secret"].as_str().expect("key secret").to_string(),
    };
    assert_eq!(app.get(&second, "/v1/Workspaces").await.0, StatusCode::OK);
    app.set_limits(&alice, &[("Status", "suspended")]).await;
    assert_eq!(
        app.get(&second, "/v1/Workspaces").await.0,
        StatusCode::UNAUTHORIZED
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_2010_api_shows_the_callers_own_account_and_no_other() {
    let app = TestApp::spawn().await;
    let alice = app.tenant().await;
    let bob = app.tenant().await;
    let (status, account) = app
        .get(&alice, &format!("/2010-04-01/Accounts/{}.json", alice.sid))
        .await;
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!(account["sid"], alice.sid.as_str());
    assert_eq!(account["status"], "active");
    assert_eq!(account["type"], "Full");
    assert!(account["auth_token"].is_null(), "the token is never shown");
    // Dates in the 2010 API are RFC 2822, as its SDKs parse them.
    let created = account["date_created"].as_str().expect("date_created");
    assert!(created.ends_with("+0000"), "{created}");
    assert_eq!(
        account["subresource_uris"]["calls"],
        format!("/2010-04-01/Accounts/{}/Calls.json", alice.sid)
    );
    let (status, _) = app
        .get(&alice, &format!("/2010-04-01/Accounts/{}.json", bob.sid))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) = app.get(&alice, "/2010-04-01/Accounts.json").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let sids: Vec<&str> = list["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .filter_map(|a| a["sid"].as_str())
        .collect();
    assert_eq!(sids, [alice.sid.as_str()]);
    app.shutdown().await;
}
