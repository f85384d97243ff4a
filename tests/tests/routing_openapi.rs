//! The work-distribution (TaskRouter) API in `/openapi.json`: its operations are listed under the
//! reference's paths, tagged, secured with the account credentials, declare every path parameter
//! and answer errors in the error table's format.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::Value;
use switchboard_tests::TestApp;

const TAG: &str = "work distribution";

/// Every `/v1/Workspaces` operation the host serves: 44 resources, 17 statistics and events.
const OPERATIONS: usize = 61;

async fn openapi(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.path("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("the document is JSON")
}

/// The `{Name}` placeholders of a path template, in order.
fn placeholders(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn work_distribution_operations_are_documented() {
    let app = TestApp::spawn().await;
    let doc = openapi(&app).await;
    let paths = doc["paths"].as_object().expect("paths");

    let expected = [
        ("/v1/Workspaces", "post", 201),
        ("/v1/Workspaces", "get", 200),
        ("/v1/Workspaces/{Sid}", "get", 200),
        ("/v1/Workspaces/{Sid}", "post", 200),
        ("/v1/Workspaces/{Sid}", "delete", 204),
        ("/v1/Workspaces/{WorkspaceSid}/Tasks", "post", 201),
        ("/v1/Workspaces/{WorkspaceSid}/Tasks", "get", 200),
        ("/v1/Workspaces/{WorkspaceSid}/Tasks/{Sid}", "get", 200),
        ("/v1/Workspaces/{WorkspaceSid}/Tasks/{Sid}", "post", 200),
        ("/v1/Workspaces/{WorkspaceSid}/Tasks/{Sid}", "delete", 204),
        (
            "/v1/Workspaces/{WorkspaceSid}/Tasks/{TaskSid}/Reservations/{Sid}",
            "post",
            200,
        ),
        (
            "/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Reservations/{Sid}",
            "post",
            200,
        ),
        (
            "/v1/Workspaces/{WorkspaceSid}/Workers/{WorkerSid}/Channels/{Sid}",
            "post",
            200,
        ),
        // The reference names the queue `TaskQueueSid` in its statistics paths (and `Sid` in the
        // queue's own).
        (
            "/v1/Workspaces/{WorkspaceSid}/TaskQueues/{TaskQueueSid}/RealTimeStatistics",
            "get",
            200,
        ),
        (
            "/v1/Workspaces/{WorkspaceSid}/TaskQueues/RealTimeStatistics",
            "post",
            200,
        ),
        ("/v1/Workspaces/{WorkspaceSid}/Events", "get", 200),
        ("/v1/Workspaces/{WorkspaceSid}/Events/{Sid}", "get", 200),
        (
            "/v1/Workspaces/{WorkspaceSid}/Workers/Statistics",
            "get",
            200,
        ),
    ];
    for (path, method, success) in expected {
        let operation = &doc["paths"][path][method];
        assert!(
            operation.is_object(),
            "{} {path} is missing; documented: {:?}",
            method.to_uppercase(),
            paths.keys().collect::<Vec<_>>()
        );
        assert!(
            operation["responses"][success.to_string()].is_object(),
            "{method} {path} does not document {success}: {operation}"
        );
    }

    // Errors are answered with the error table's body.
    let fetch_task = &doc["paths"]["/v1/Workspaces/{WorkspaceSid}/Tasks/{Sid}"]["get"];
    let schema = &fetch_task["responses"]["404"]["content"]["application/json"]["schema"]["$ref"];
    assert!(
        schema.as_str().is_some_and(|s| s.ends_with("/ErrorBody")),
        "{fetch_task}"
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    let accept = &doc["paths"]["/v1/Workspaces/{WorkspaceSid}/Tasks/{TaskSid}/Reservations/{Sid}"]
        ["post"]["responses"];
    for status in ["400", "404", "409", "412"] {
        assert!(
            accept[status].is_object(),
            "reservation update {status}: {accept}"
        );
    }

    // Every work-distribution operation: tagged, secured, its path parameters declared exactly.
    let mut count = 0;
    for (path, item) in paths
        .iter()
        .filter(|(p, _)| p.starts_with("/v1/Workspaces"))
    {
        let template = placeholders(path);
        for method in ["get", "post", "delete", "put", "patch"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            count += 1;
            let tags: Vec<&str> = operation["tags"]
                .as_array()
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            assert_eq!(tags, [TAG], "{method} {path}");
            assert!(
                operation["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|r| r.get("account").is_some())),
                "{method} {path} is not secured with account credentials: {operation}"
            );
            let declared: Vec<String> = operation["parameters"]
                .as_array()
                .map(|params| {
                    params
                        .iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| {
                            assert_eq!(p["required"], true, "{method} {path}: {p}");
                            p["name"].as_str().unwrap_or_default().to_string()
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut sorted_declared = declared.clone();
            sorted_declared.sort();
            let mut sorted_template = template.clone();
            sorted_template.sort();
            assert_eq!(
                sorted_declared, sorted_template,
                "{method} {path}: path parameters"
            );
        }
    }
    assert_eq!(count, OPERATIONS, "work-distribution operations documented");

    // Operation ids stay unique across the whole document (the queues and events APIs have
    // handlers of the same names).
    let mut ids = HashSet::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().into_iter().flatten() {
            if let Some(id) = operation.get("operationId").and_then(Value::as_str) {
                assert!(
                    ids.insert(id.to_string()),
                    "operationId {id} repeats at {method} {path}"
                );
            }
        }
    }

    app.shutdown().await;
}
