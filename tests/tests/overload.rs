//! A database that falls behind: once more changes wait for it than the host allows, new writes
//! are turned away with a 503 before they change anything, reads go on, and every write accepted
//! before is committed once the database catches up.

use std::time::Duration;

use reqwest::StatusCode;
use switchboard_tests::TestApp;

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

/// Changes waiting for the writer.
async fn backlog(app: &TestApp) -> usize {
    metric(app, "switchboard_writer_backlog")
        .await
        .map_or(0, |value| value as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_the_backlog_limit_are_turned_away_and_accepted_ones_all_land() {
    let app = TestApp::spawn_with(|config| config.database.max_waiting_changes = 2).await;
    let tenant = app.tenant().await;
    let lock = app.hold_write_lock().await;

    // Writes pile up behind the held lock until two wait for the writer.
    let mut accepted = Vec::new();
    for index in 0..20 {
        let request = app
            .client
            .post(app.path("/v1/Workspaces"))
            .basic_auth(&tenant.sid, Some(&tenant.token))
            .form(&[("FriendlyName", format!("accepted {index}"))])
            .send();
        accepted.push(tokio::spawn(request));
        tokio::time::sleep(Duration::from_millis(100)).await;
        if backlog(&app).await >= 2 {
            break;
        }
    }
    assert!(backlog(&app).await >= 2, "writes did not pile up");

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
    let response = app
        .client
        .post(app.path("/v1/Workspaces"))
        .basic_auth(&tenant.sid, Some(&tenant.token))
        .form(&[("FriendlyName", "turned away too")])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // Reads go on meanwhile.
    let (status, _) = app.get(&tenant, "/v1/Workspaces").await;
    assert_eq!(status, StatusCode::OK);

    // The database catches up: every accepted write lands, and writes are taken again.
    lock.release().await;
    let count = accepted.len();
    for request in accepted {
        let response = request.await.expect("join").expect("accepted write");
        assert_eq!(response.status(), StatusCode::CREATED);
    }
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
    assert_eq!(names.len(), count + 1, "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("turned away")),
        "a refused write changed nothing: {names:?}"
    );
    assert_eq!(
        metric(&app, "switchboard_writes_shed_total").await,
        Some(2.0),
        "both refusals are counted"
    );
    app.shutdown().await;
}
