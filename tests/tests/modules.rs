//! The module registry over HTTP: upload, list, versions, dry run, and bad uploads.

use reqwest::StatusCode;
use switchboard_tests::{TestApp, guest, json};

#[tokio::test]
async fn upload_list_and_dry_run_hello() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;

    let (status, module) = app
        .upload(&tenant, "hello", "telephony-handler", guest("hello"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{module}");
    let sid = module["sid"].as_str().expect("sid");
    assert!(sid.starts_with("MD") && sid.len() == 34, "{sid}");
    assert_eq!(module["version"], 1);
    assert_eq!(module["kind"], "telephony-handler");
    assert_eq!(module["uri"], "module:hello@1");
    assert_eq!(module["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(module["size"].as_u64(), Some(guest("hello").len() as u64));

    let (status, list) = app.get(&tenant, "/v1/Modules").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["modules"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["modules"][0]["name"], "hello");
    assert_eq!(list["meta"]["key"], "modules");

    let (status, result) = app
        .invoke(
            &tenant,
            "hello",
            json!({"call": {"from": "+15550001", "to": "+15550002"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["outcome"], "ok");
    let output = result["output"].as_array().expect("instructions");
    assert_eq!(output[0]["verb"], "say");
    assert!(
        output[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Hello")),
        "{result}"
    );
    assert_eq!(output.last().expect("hangup")["verb"], "hangup");
    assert!(
        result["usage"]["fuel_consumed"]
            .as_u64()
            .is_some_and(|f| f > 0),
        "{result}"
    );
    assert!(
        result["usage"]["peak_memory_bytes"]
            .as_u64()
            .is_some_and(|m| m > 0)
    );
    assert_eq!(result["usage"]["module_version"], 1);

    let (status, usage) = app.get(&tenant, "/v1/Usage/Modules").await;
    assert_eq!(status, StatusCode::OK);
    let entry = &usage["usage"][0];
    assert_eq!(entry["module_name"], "hello");
    assert_eq!(entry["invocations"], 1);
    assert!(entry["fuel_consumed"].as_i64().is_some_and(|f| f > 0));
    assert_eq!(entry["outcomes"]["ok"], 1);

    // A window that ends before the invocation holds nothing.
    let (status, empty) = app
        .get(
            &tenant,
            "/v1/Usage/Modules?StartTime=2000-01-01T00:00:00Z&EndTime=2000-01-02T00:00:00Z",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty["usage"].as_array().map(Vec::len), Some(0));
    let (status, bad) = app
        .get(&tenant, "/v1/Usage/Modules?StartTime=yesterday")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    app.shutdown().await;
}

#[tokio::test]
async fn versions_are_immutable_and_never_reused() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    for expected in 1..=2 {
        let (status, module) = app
            .upload(&tenant, "hello", "telephony-handler", guest("hello"))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(module["version"], expected);
    }
    let (_, latest) = app.get(&tenant, "/v1/Modules/hello").await;
    assert_eq!(latest["version"], 2);
    let (status, first) = app.get(&tenant, "/v1/Modules/hello/Versions/1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["uri"], "module:hello@1");

    assert_eq!(
        app.delete(&tenant, "/v1/Modules/hello/Versions/2").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&tenant, "/v1/Modules/hello/Versions/2").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, latest) = app.get(&tenant, "/v1/Modules/hello").await;
    assert_eq!(latest["version"], 1);
    let (_, module) = app
        .upload(&tenant, "hello", "telephony-handler", guest("hello"))
        .await;
    assert_eq!(
        module["version"], 3,
        "a deleted version number is not handed out again"
    );

    let (status, result) = app
        .client
        .post(app.path("/v1/Modules/hello/Invoke?Version=1"))
        .basic_auth(&tenant.sid, Some(&tenant.token))
        .send()
        .await
        .map(|r| (r.status(), r))
        .expect("invoke");
    assert_eq!(status, StatusCode::OK);
    let result: serde_json::Value = result.json().await.expect("json");
    assert_eq!(result["module"]["version"], 1);

    assert_eq!(
        app.delete(&tenant, "/v1/Modules/hello").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&tenant, "/v1/Modules/hello").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&tenant, "/v1/Modules/hello").await,
        StatusCode::NOT_FOUND
    );
    app.shutdown().await;
}

async fn assert_registry_empty(app: &TestApp, tenant: &switchboard_tests::Tenant) {
    let (_, list) = app.get(tenant, "/v1/Modules").await;
    assert_eq!(list["modules"].as_array().map(Vec::len), Some(0), "{list}");
}

#[tokio::test]
async fn bad_uploads_are_refused_and_change_nothing() {
    let app = TestApp::spawn_with(|config| config.modules.max_upload_bytes = 4 * 1024 * 1024).await;
    let tenant = app.tenant().await;

    let (status, body) = app
        .upload(
            &tenant,
            "junk",
            "telephony-handler",
            b"this is not wasm at all".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 30001);
    assert_eq!(body["status"], 400);
    assert_eq!(body["more_info"], "/v1/Errors/30001");

    let core = wat::parse_str("(module (func (export \"handle\")))").expect("wat");
    let (status, body) = app.upload(&tenant, "core", "telephony-handler", core).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 30002);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("core WebAssembly module"))
    );

    // A component header followed by garbage is not valid wasm either.
    let mut broken = b"\0asm\x0d\x00\x01\x00".to_vec();
    broken.extend_from_slice(&[0xff; 64]);
    let (status, body) = app
        .upload(&tenant, "broken", "telephony-handler", broken)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 30001);

    let (status, body) = app
        .upload(&tenant, "hello", "wait-state", guest("hello"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], 30003);
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("wait-state") && message.contains("on-wait"),
        "{message}"
    );

    let (status, body) = app.upload(&tenant, "hello", "ivr", guest("hello")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 30005);

    let (status, body) = app
        .upload(&tenant, "Bad Name", "telephony-handler", guest("hello"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 20001);

    let oversized = vec![0u8; 5 * 1024 * 1024];
    let (status, body) = app
        .upload(&tenant, "big", "telephony-handler", oversized)
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], 30004);

    let response = app
        .client
        .post(app.path("/v1/Modules"))
        .basic_auth(&tenant.sid, Some(&tenant.token))
        .body("Name=x")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    assert_registry_empty(&app, &tenant).await;

    // After all that, a good upload is still version 1.
    let (status, module) = app
        .upload(&tenant, "hello", "telephony-handler", guest("hello"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(module["version"], 1);
    app.shutdown().await;
}

#[tokio::test]
async fn dry_run_input_must_match_the_world() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    app.upload(&tenant, "hello", "telephony-handler", guest("hello"))
        .await;
    let (status, body) = app
        .invoke(&tenant, "hello", json!({"call": {"frm": "+1"}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 30007);
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("frm")),
        "{body}"
    );
    let (status, body) = app
        .invoke(
            &tenant,
            "hello",
            json!({"trigger": {"type": "gather", "digits": "1"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.invoke(&tenant, "nope", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.shutdown().await;
}
