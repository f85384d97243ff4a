//! A database that falls behind: once more changes wait for it than the host allows, new writes
//! are turned away with a 503 before they change anything, reads go on, and every write accepted
//! before is committed once the database catches up. One tenant cannot fill that backlog alone:
//! an account's writes in progress are capped, and the others' go on.

use std::time::Duration;

use reqwest::StatusCode;
use switchboard_tests::{Tenant, TestApp};

/// A metric's value as `/metrics` shows it now, if it is there.
async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let text = app
        .client
        .get(app.path("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse::<f64>().ok())
}

/// Waits until at least `count` changes wait for the writer; `what` says what should have put
/// them there.
async fn wait_for_backlog(app: &TestApp, count: usize, what: &str) {
    for _ in 0..100 {
        if app.writer_backlog() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{what}: {} changes wait for the writer, not {count}",
        app.writer_backlog()
    );
}

/// Asks to create a workspace with these credentials, answering the response as it came.
async fn post_workspace(app: &TestApp, sid: &str, secret: &str, name: &str) -> reqwest::Response {
    app.client
        .post(app.path("/v1/Workspaces"))
        .basic_auth(sid, Some(secret))
        .form(&[("FriendlyName", name)])
        .send()
        .await
        .expect("post")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_the_backlog_limit_are_turned_away_and_accepted_ones_all_land() {
    let app = TestApp::spawn_with(|config| config.database.max_waiting_changes = 2).await;
    let tenant = app.tenant().await;
    let lock = app.hold_write_lock().await;

    // Writes pile up behind the held lock until two wait for the writer. A write sent just as
    // the limit is reached may itself be turned away: each is counted as it is answered.
    let mut sent = Vec::new();
    for index in 0..20 {
        let request = app
            .client
            .post(app.path("/v1/Workspaces"))
            .basic_auth(&tenant.sid, Some(&tenant.token))
            .form(&[("FriendlyName", format!("sent {index}"))])
            .send();
        sent.push(tokio::spawn(request));
        tokio::time::sleep(Duration::from_millis(100)).await;
        if app.writer_backlog() >= 2 {
            break;
        }
    }
    assert!(app.writer_backlog() >= 2, "writes did not pile up");

    let (status, body) = app
        .post_form(
            &tenant,
            "/v1/Workspaces",
            &[("FriendlyName", "turned away")],
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], 20503);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_waiting_changes")),
        "{body}"
    );
    let response = post_workspace(&app, &tenant.sid, &tenant.token, "turned away too").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // Reads go on meanwhile, and so do the operator's requests (this one writes nothing).
    let (status, _) = app.get(&tenant, "/v1/Workspaces").await;
    assert_eq!(status, StatusCode::OK);
    let operator = app
        .client
        .post(app.path("/v1/Sim/Clock"))
        .bearer_auth(&app.admin_token)
        .form(&[("AdvanceMs", "0")])
        .send()
        .await
        .expect("operator post");
    assert_ne!(operator.status(), StatusCode::SERVICE_UNAVAILABLE);

    // The database catches up: every write accepted lands, and writes are taken again.
    lock.release().await;
    let mut accepted = 0;
    let mut refused = 2;
    for request in sent {
        let response = request.await.expect("join").expect("a write sent");
        match response.status() {
            StatusCode::CREATED => accepted += 1,
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("a write sent while the database was held got {other}"),
        }
    }
    assert!(
        accepted >= 2,
        "at least the writes that piled up were accepted"
    );
    let (status, _) = app
        .post_form(&tenant, "/v1/Workspaces", &[("FriendlyName", "after")])
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, list) = app.get(&tenant, "/v1/Workspaces?PageSize=100").await;
    let names: Vec<&str> = list["workspaces"]
        .as_array()
        .expect("workspaces")
        .iter()
        .filter_map(|w| w["friendly_name"].as_str())
        .collect();
    assert_eq!(names.len(), accepted + 1, "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("turned away")),
        "a refused write changed nothing: {names:?}"
    );
    assert_eq!(
        metric(&app, "switchboard_writes_shed_total").await,
        Some(f64::from(refused)),
        "every refusal is counted"
    );
    app.shutdown().await;
}

/// Creates a workspace in the background, answering its status once the write is answered.
fn create_workspace(
    app: &TestApp,
    tenant: &Tenant,
    name: &str,
) -> tokio::task::JoinHandle<StatusCode> {
    let request = app
        .client
        .post(app.path("/v1/Workspaces"))
        .basic_auth(&tenant.sid, Some(&tenant.token))
        .form(&[("FriendlyName", name)])
        .send();
    tokio::spawn(async move { request.await.expect("a write sent").status() })
}

/// Workspace names of a tenant.
async fn workspace_names(app: &TestApp, tenant: &Tenant) -> Vec<String> {
    let (_, list) = app.get(tenant, "/v1/Workspaces?PageSize=100").await;
    let mut names: Vec<String> = list["workspaces"]
        .as_array()
        .expect("workspaces")
        .iter()
        .filter_map(|w| w["friendly_name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_flooding_writes_is_capped_and_the_others_go_on() {
    let app = TestApp::spawn_with(|config| config.accounts.max_concurrent_writes = 2).await;
    let flood = app.tenant().await;
    let quiet = app.tenant().await;
    let lock = app.hold_write_lock().await;

    // Two writes of the flooding account wait for the held database: its share is taken. The
    // writer holds the first, blocked on the lock; the second waits behind it.
    let first = create_workspace(&app, &flood, "first");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = create_workspace(&app, &flood, "second");
    wait_for_backlog(&app, 1, "the two writes did not reach the writer").await;

    // A third is turned away at once, changing nothing; the account's reads go on.
    let response = post_workspace(&app, &flood.sid, &flood.token, "third").await;
    let status = response.status();
    let retry = response.headers().get("retry-after").cloned();
    let body: serde_json::Value = response.json().await.expect("an error body");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(retry.as_ref().and_then(|v| v.to_str().ok()), Some("1"));
    assert_eq!(body["code"], 20429);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_concurrent_writes is 2")),
        "{body}"
    );
    let (status, _) = app.get(&flood, "/v1/Workspaces").await;
    assert_eq!(status, StatusCode::OK);
    // Wrong credentials are still a 401 with its challenge, not a count against anyone.
    let response = post_workspace(&app, &flood.sid, "wrong", "forged").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));

    // Another account's write is taken: it waits for the database like any other.
    let other = create_workspace(&app, &quiet, "quiet");
    wait_for_backlog(&app, 2, "the other account's write was not taken").await;

    // The database catches up: every write taken lands, and the account has its share back.
    lock.release().await;
    for write in [first, second, other] {
        assert_eq!(write.await.expect("join"), StatusCode::CREATED);
    }
    let (status, body) = app
        .post_form(&flood, "/v1/Workspaces", &[("FriendlyName", "after")])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        workspace_names(&app, &flood).await,
        ["after", "first", "second"],
        "the write turned away changed nothing"
    );
    assert_eq!(workspace_names(&app, &quiet).await, ["quiet"]);
    assert_eq!(
        metric(&app, "switchboard_account_writes_refused_total").await,
        Some(1.0)
    );
    app.shutdown().await;
}
