//! Work distribution end to end over HTTP, as a TaskRouter client would drive it: the reference's
//! quickstart sequence, the routing rules (step timeouts, skip_if, known worker, multi-reservation,
//! reject, reservation timeout, TTL), workflow-rule modules, bad input, and a restart mid-flight.

use reqwest::StatusCode;
use serde_json::Value;
use switchboard_host::clock::ClockKind;
use switchboard_tests::{HttpApp, Reply, Tenant, TestApp, get, guest, post};

/// A host on a manual clock, so reservation and step timeouts fire only when the test says.
async fn spawn() -> TestApp {
    TestApp::spawn_with(|config| {
        config.telephony.clock = ClockKind::Manual;
    })
    .await
}

fn json_reply(body: &str) -> Reply {
    Reply {
        status: 200,
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        delay_ms: 0,
    }
}

/// A workspace with its activities by name.
struct Workspace {
    sid: String,
    offline: String,
    available: String,
    unavailable: String,
}

impl Workspace {
    fn path(&self, rest: &str) -> String {
        format!("/v1/Workspaces/{}/{rest}", self.sid)
    }
}

async fn workspace(app: &TestApp, tenant: &Tenant, form: &[(&str, &str)]) -> Workspace {
    let mut fields = vec![("FriendlyName", "support")];
    fields.extend_from_slice(form);
    let body = post(app, tenant, "/v1/Workspaces", &fields).await;
    let sid = body["sid"].as_str().expect("sid").to_string();
    let activities = get(app, tenant, &format!("/v1/Workspaces/{sid}/Activities")).await;
    let find = |name: &str| {
        activities["activities"]
            .as_array()
            .expect("activities")
            .iter()
            .find(|a| a["friendly_name"] == name)
            .and_then(|a| a["sid"].as_str())
            .expect("default activity")
            .to_string()
    };
    Workspace {
        offline: find("Offline"),
        available: find("Available"),
        unavailable: find("Unavailable"),
        sid,
    }
}

async fn queue(app: &TestApp, tenant: &Tenant, ws: &Workspace, form: &[(&str, &str)]) -> String {
    let body = post(app, tenant, &ws.path("TaskQueues"), form).await;
    body["sid"].as_str().expect("queue sid").to_string()
}

async fn workflow(app: &TestApp, tenant: &Tenant, ws: &Workspace, form: &[(&str, &str)]) -> String {
    let mut fields = vec![("FriendlyName", "router")];
    fields.extend_from_slice(form);
    let body = post(app, tenant, &ws.path("Workflows"), &fields).await;
    body["sid"].as_str().expect("workflow sid").to_string()
}

/// A workflow that sends every task to `queue`, with `more` of the workflow's parameters.
async fn workflow_to(
    app: &TestApp,
    tenant: &Tenant,
    ws: &Workspace,
    queue: &str,
    more: &[(&str, &str)],
) -> String {
    let configuration =
        format!(r#"{{"task_routing": {{"default_filter": {{"queue": "{queue}"}}}}}}"#);
    let mut form = vec![("Configuration", configuration.as_str())];
    form.extend_from_slice(more);
    workflow(app, tenant, ws, &form).await
}

async fn worker(
    app: &TestApp,
    tenant: &Tenant,
    ws: &Workspace,
    name: &str,
    attributes: &str,
) -> String {
    let body = post(
        app,
        tenant,
        &ws.path("Workers"),
        &[
            ("FriendlyName", name),
            ("Attributes", attributes),
            ("ActivitySid", &ws.available),
        ],
    )
    .await;
    body["sid"].as_str().expect("worker sid").to_string()
}

async fn task(app: &TestApp, tenant: &Tenant, ws: &Workspace, form: &[(&str, &str)]) -> Value {
    let (status, body) = app.post_form(tenant, &ws.path("Tasks"), form).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn reservations(app: &TestApp, tenant: &Tenant, ws: &Workspace, task: &str) -> Vec<Value> {
    get(app, tenant, &ws.path(&format!("Tasks/{task}/Reservations"))).await["reservations"]
        .as_array()
        .expect("reservations")
        .clone()
}

fn statuses(list: &[Value]) -> Vec<(String, String)> {
    list.iter()
        .map(|r| {
            (
                r["worker_name"].as_str().unwrap_or_default().to_string(),
                r["reservation_status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

async fn task_status(app: &TestApp, tenant: &Tenant, ws: &Workspace, task: &str) -> Value {
    get(app, tenant, &ws.path(&format!("Tasks/{task}"))).await
}

async fn event_types(app: &TestApp, tenant: &Tenant, subject: &str) -> Vec<String> {
    let body = get(app, tenant, &format!("/v1/Events?Subject={subject}")).await;
    body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits until an event about `subject` is in the log: a change made by a timer commits just
/// after it shows in the live state.
async fn wait_event(app: &TestApp, tenant: &Tenant, subject: &str, event_type: &str) {
    for _ in 0..200 {
        if event_types(app, tenant, subject)
            .await
            .iter()
            .any(|t| t == event_type)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no {event_type} event for {subject}");
}

/// Waits until the HTTP app has received a request on `path` (callbacks go out after commit).
async fn received(web: &HttpApp, path: &str, count: usize) -> Vec<switchboard_tests::Received> {
    for _ in 0..200 {
        let seen: Vec<_> = web
            .received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect();
        if seen.len() >= count {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "{path} did not receive {count} requests: {:?}",
        web.received()
    );
}

#[tokio::test]
async fn quickstart_routes_a_task_to_the_matching_worker_through_accept_and_complete() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let web = HttpApp::start(vec![
        ("/assign", Reply::twiml("")),
        ("/events", json_reply("")),
    ])
    .await;
    let ws = workspace(
        &app,
        &tenant,
        &[
            ("EventCallbackUrl", &web.url("/events")),
            ("MultiTaskEnabled", "false"),
            (
                "EventsFilter",
                "task.created,reservation.created,task.completed",
            ),
        ],
    )
    .await;
    let available = get(&app, &tenant, &ws.path("Activities?Available=true")).await;
    assert_eq!(available["activities"].as_array().map(Vec::len), Some(1));
    assert_eq!(available["activities"][0]["friendly_name"], "Available");
    let busy = post(
        &app,
        &tenant,
        &ws.path("Activities"),
        &[("FriendlyName", "Busy"), ("Available", "false")],
    )
    .await;
    let busy = busy["sid"].as_str().expect("busy").to_string();
    let reserved = post(
        &app,
        &tenant,
        &ws.path("Activities"),
        &[("FriendlyName", "Reserved"), ("Available", "false")],
    )
    .await;
    let reserved = reserved["sid"].as_str().expect("reserved").to_string();
    // Single-tasking so the queue's reservation and assignment activities apply.
    let english = queue(
        &app,
        &tenant,
        &ws,
        &[
            ("FriendlyName", "English"),
            ("TargetWorkers", r#"languages HAS "english""#),
            ("ReservationActivitySid", &reserved),
            ("AssignmentActivitySid", &busy),
        ],
    )
    .await;
    let spanish = queue(
        &app,
        &tenant,
        &ws,
        &[
            ("FriendlyName", "Spanish"),
            ("TargetWorkers", "languages HAS 'spanish'"),
        ],
    )
    .await;
    let configuration = format!(
        r#"{{"task_routing": {{"filters": [
            {{"filter_friendly_name": "spanish", "expression": "language == 'es'", "targets": [{{"queue": "{spanish}"}}]}},
            {{"filter_friendly_name": "support", "expression": "type == 'support'", "targets": [{{"queue": "{english}"}}]}}],
          "default_filter": {{"queue": "{english}"}}}}}}"#
    );
    let flow = workflow(
        &app,
        &tenant,
        &ws,
        &[
            ("Configuration", &configuration),
            ("AssignmentCallbackUrl", &web.url("/assign")),
            ("TaskReservationTimeout", "120"),
        ],
    )
    .await;
    let bob = worker(
        &app,
        &tenant,
        &ws,
        "Bob",
        r#"{"languages": ["spanish"], "contact_uri": "client:bob"}"#,
    )
    .await;
    let alice = worker(
        &app,
        &tenant,
        &ws,
        "Alice",
        r#"{"languages": ["english"], "contact_uri": "client:alice"}"#,
    )
    .await;

    let created = task(
        &app,
        &tenant,
        &ws,
        &[
            ("Attributes", r#"{"type": "support"}"#),
            ("WorkflowSid", &flow),
            ("Priority", "5"),
        ],
    )
    .await;
    let task_sid = created["sid"].as_str().expect("task sid").to_string();
    assert_eq!(
        created["assignment_status"], "reserved",
        "Alice was free: {created}"
    );
    assert_eq!(created["task_queue_sid"], english.as_str());
    assert_eq!(created["attributes"], r#"{"type": "support"}"#);
    assert!(
        created["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://")),
        "absolute URL"
    );

    let list = reservations(&app, &tenant, &ws, &task_sid).await;
    assert_eq!(
        statuses(&list),
        vec![("Alice".to_string(), "pending".to_string())]
    );
    let reservation = list[0]["sid"]
        .as_str()
        .expect("reservation sid")
        .to_string();
    let alice_now = get(&app, &tenant, &ws.path(&format!("Workers/{alice}"))).await;
    assert_eq!(
        alice_now["activity_sid"],
        reserved.as_str(),
        "moved to the queue's reservation activity"
    );

    let callbacks = received(&web, "/assign", 1).await;
    let callback = &callbacks[0];
    assert_eq!(callback.param("TaskSid"), Some(task_sid.as_str()));
    assert_eq!(callback.param("ReservationSid"), Some(reservation.as_str()));
    assert_eq!(callback.param("WorkerSid"), Some(alice.as_str()));
    assert_eq!(callback.param("TaskQueueSid"), Some(english.as_str()));
    assert_eq!(callback.param("WorkflowSid"), Some(flow.as_str()));
    assert_eq!(callback.param("TaskPriority"), Some("5"));
    assert_eq!(callback.param("AccountSid"), Some(tenant.sid.as_str()));
    assert!(
        callback
            .param("WorkerAttributes")
            .is_some_and(|a| a.contains("english"))
    );

    let accepted = post(
        &app,
        &tenant,
        &ws.path(&format!("Tasks/{task_sid}/Reservations/{reservation}")),
        &[("ReservationStatus", "accepted")],
    )
    .await;
    assert_eq!(accepted["reservation_status"], "accepted");
    assert_eq!(
        task_status(&app, &tenant, &ws, &task_sid).await["assignment_status"],
        "assigned"
    );
    let alice_now = get(&app, &tenant, &ws.path(&format!("Workers/{alice}"))).await;
    assert_eq!(
        alice_now["activity_sid"],
        busy.as_str(),
        "moved to the assignment activity"
    );

    let (status, body) = app
        .post_form(
            &tenant,
            &ws.path(&format!("Tasks/{task_sid}")),
            &[("AssignmentStatus", "completed")],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a reason is required: {body}"
    );
    let done = post(
        &app,
        &tenant,
        &ws.path(&format!("Tasks/{task_sid}")),
        &[("AssignmentStatus", "completed"), ("Reason", "resolved")],
    )
    .await;
    assert_eq!(done["assignment_status"], "completed");
    assert_eq!(done["reason"], "resolved");
    let list = reservations(&app, &tenant, &ws, &task_sid).await;
    assert_eq!(
        statuses(&list),
        vec![("Alice".to_string(), "completed".to_string())]
    );

    let types = event_types(&app, &tenant, &task_sid).await;
    for expected in [
        "task.created",
        "workflow.entered",
        "task-queue.entered",
        "workflow.target-matched",
        "task.completed",
    ] {
        assert!(
            types.contains(&expected.to_string()),
            "{expected} in {types:?}"
        );
    }
    let reservation_events = event_types(&app, &tenant, &reservation).await;
    assert_eq!(
        reservation_events,
        vec![
            "reservation.created",
            "reservation.accepted",
            "reservation.completed"
        ]
    );

    // The event callback got exactly the filtered types, in order.
    let delivered = received(&web, "/events", 3).await;
    let kinds: Vec<&str> = delivered
        .iter()
        .filter_map(|r| r.param("EventType"))
        .collect();
    assert_eq!(
        kinds,
        vec!["task.created", "reservation.created", "task.completed"]
    );
    assert_eq!(delivered[0].param("TaskSid"), Some(task_sid.as_str()));
    assert_eq!(delivered[0].param("WorkspaceSid"), Some(ws.sid.as_str()));

    // The lists: filtered by status, and Bob (spanish) never got anything.
    let completed = get(
        &app,
        &tenant,
        &ws.path("Tasks?AssignmentStatus=completed&AssignmentStatus=canceled"),
    )
    .await;
    assert_eq!(completed["tasks"].as_array().map(Vec::len), Some(1));
    assert_eq!(completed["meta"]["key"], "tasks");
    let bobs = get(
        &app,
        &tenant,
        &ws.path(&format!("Workers/{bob}/Reservations")),
    )
    .await;
    assert_eq!(bobs["reservations"].as_array().map(Vec::len), Some(0));
    let in_english = get(
        &app,
        &tenant,
        &ws.path(&format!("Workers?TaskQueueSid={english}")),
    )
    .await;
    let names: Vec<&str> = in_english["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(|w| w["friendly_name"].as_str())
        .collect();
    assert_eq!(names, vec!["Alice"]);
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_expressions_and_configurations_are_refused_with_their_position() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let ws = workspace(&app, &tenant, &[]).await;
    let (status, body) = app
        .post_form(
            &tenant,
            &ws.path("TaskQueues"),
            &[("FriendlyName", "bad"), ("TargetWorkers", "languages HAS")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 20001);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("position 13")),
        "{body}"
    );
    let (status, body) = app
        .post_form(
            &tenant,
            &ws.path("TaskQueues"),
            &[
                ("FriendlyName", "bad"),
                ("TargetWorkers", "skill-level > 2"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("position 5")),
        "{body}"
    );
    let good = queue(&app, &tenant, &ws, &[("FriendlyName", "good")]).await;
    let bad_filter = format!(
        r#"{{"task_routing": {{"filters": [{{"expression": "type == ", "targets": [{{"queue": "{good}"}}]}}]}}}}"#
    );
    let (status, body) = app
        .post_form(
            &tenant,
            &ws.path("Workflows"),
            &[("FriendlyName", "w"), ("Configuration", &bad_filter)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("task_routing.filters[0].expression") && message.contains("position 8"),
        "{body}"
    );
    let unknown_queue =
        r#"{"task_routing": {"default_filter": {"queue": "WQ00000000000000000000000000000000"}}}"#;
    let (status, _) = app
        .post_form(
            &tenant,
            &ws.path("Workflows"),
            &[("FriendlyName", "w"), ("Configuration", unknown_queue)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .post_form(
            &tenant,
            &ws.path("Workers"),
            &[("FriendlyName", "x"), ("Attributes", "[1,2]")],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "attributes must be an object"
    );
    let (status, _) = app
        .post_form(&tenant, &ws.path("Tasks"), &[("Attributes", "{}")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no workflow");
    let workflows = get(&app, &tenant, &ws.path("Workflows")).await;
    assert_eq!(
        workflows["workflows"].as_array().map(Vec::len),
        Some(0),
        "nothing was created"
    );

    // Another account sees none of it.
    let other = app.tenant().await;
    assert_eq!(
        app.get(&other, &format!("/v1/Workspaces/{}", ws.sid))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&other, &ws.path(&format!("TaskQueues/{good}")))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post_form(&other, &ws.path("Tasks"), &[("Attributes", "{}")])
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&other, &format!("/v1/Workspaces/{}", ws.sid))
            .await,
        StatusCode::NOT_FOUND
    );
    let listed = get(&app, &other, "/v1/Workspaces").await;
    assert_eq!(listed["workspaces"].as_array().map(Vec::len), Some(0));
    app.shutdown().await;
}

/// Two queues: `gold` (nobody qualifies) then `everyone` (Carol).
async fn two_step_setup(
    app: &TestApp,
    tenant: &Tenant,
    targets: impl Fn(&str, &str) -> String,
) -> (Workspace, String, String, String) {
    let ws = workspace(app, tenant, &[]).await;
    let gold = queue(
        app,
        tenant,
        &ws,
        &[
            ("FriendlyName", "gold"),
            ("TargetWorkers", "tier == 'gold'"),
        ],
    )
    .await;
    let everyone = queue(app, tenant, &ws, &[("FriendlyName", "everyone")]).await;
    let configuration = format!(
        r#"{{"task_routing": {{"filters": [{{"expression": "1==1", "targets": {}}}]}}}}"#,
        targets(&gold, &everyone)
    );
    let flow = workflow(app, tenant, &ws, &[("Configuration", &configuration)]).await;
    worker(app, tenant, &ws, "Carol", r#"{"tier": "silver"}"#).await;
    (ws, gold, everyone, flow)
}

#[tokio::test]
async fn a_step_timeout_moves_the_task_to_the_next_target_and_skip_if_skips_at_once() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let (ws, gold, everyone, flow) = two_step_setup(&app, &tenant, |gold, everyone| {
        format!(
            r#"[{{"queue": "{gold}", "timeout": 10}}, {{"queue": "{everyone}", "priority": 9}}]"#
        )
    })
    .await;
    let created = task(&app, &tenant, &ws, &[("WorkflowSid", &flow)]).await;
    let sid = created["sid"].as_str().expect("sid").to_string();
    assert_eq!(created["assignment_status"], "pending");
    assert_eq!(created["task_queue_sid"], gold.as_str());
    app.advance_clock(9_000).await;
    assert_eq!(
        task_status(&app, &tenant, &ws, &sid).await["task_queue_sid"],
        gold.as_str()
    );
    app.advance_clock(1_000).await;
    let moved = wait_task(&app, &tenant, &ws, &sid, |t| {
        t["assignment_status"] == "reserved"
    })
    .await;
    assert_eq!(moved["task_queue_sid"], everyone.as_str());
    assert_eq!(moved["priority"], 9, "the target's priority applies");
    wait_event(&app, &tenant, &sid, "task-queue.timeout").await;
    // Accepted 4 s after it entered the second queue, 14 s after it was created: the queue's
    // statistics tell the two waits apart.
    app.advance_clock(4_000).await;
    let reservation = reservations(&app, &tenant, &ws, &sid).await[0]["sid"]
        .as_str()
        .expect("reservation sid")
        .to_string();
    post(
        &app,
        &tenant,
        &ws.path(&format!("Tasks/{sid}/Reservations/{reservation}")),
        &[("ReservationStatus", "accepted")],
    )
    .await;
    let cumulative = get(
        &app,
        &tenant,
        &ws.path(&format!("TaskQueues/{everyone}/CumulativeStatistics")),
    )
    .await;
    assert_eq!(
        cumulative["wait_duration_until_accepted"]["max"], 14,
        "{cumulative}"
    );
    assert_eq!(
        cumulative["wait_duration_in_queue_until_accepted"],
        serde_json::json!({"avg": 4, "min": 4, "max": 4, "total": 4})
    );

    // skip_if: nobody is available in gold, so the step is skipped without waiting.
    let (ws, _, everyone, flow) = two_step_setup(&app, &tenant, |gold, everyone| {
        format!(r#"[{{"queue": "{gold}", "timeout": 600, "skip_if": "workers.available == 0"}}, {{"queue": "{everyone}"}}]"#)
    })
    .await;
    let created = task(&app, &tenant, &ws, &[("WorkflowSid", &flow)]).await;
    assert_eq!(created["assignment_status"], "reserved", "{created}");
    assert_eq!(created["task_queue_sid"], everyone.as_str());
    app.shutdown().await;
}

async fn wait_task(
    app: &TestApp,
    tenant: &Tenant,
    ws: &Workspace,
    sid: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..200 {
        let task = task_status(app, tenant, ws, sid).await;
        if done(&task) {
            return task;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "task {sid} never reached the expected state: {}",
        task_status(app, tenant, ws, sid).await
    );
}

#[tokio::test]
async fn a_known_worker_step_waits_for_that_worker_and_a_ttl_cancels() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let ws = workspace(&app, &tenant, &[]).await;
    let everyone = queue(&app, &tenant, &ws, &[("FriendlyName", "everyone")]).await;
    let configuration = format!(
        r#"{{"task_routing": {{"filters": [{{"expression": "agent != null", "targets": [
            {{"queue": "{everyone}", "known_worker_friendly_name": "task.agent", "timeout": 30}},
            {{"queue": "{everyone}"}}]}}], "default_filter": {{"queue": "{everyone}"}}}}}}"#
    );
    let flow = workflow(&app, &tenant, &ws, &[("Configuration", &configuration)]).await;
    // Dave has been idle longest, but the task asks for Erin.
    worker(&app, &tenant, &ws, "Dave", "{}").await;
    app.advance_clock(1_000).await;
    let erin = worker(&app, &tenant, &ws, "Erin", "{}").await;
    let created = task(
        &app,
        &tenant,
        &ws,
        &[
            ("WorkflowSid", &flow),
            ("Attributes", r#"{"agent": "Erin"}"#),
        ],
    )
    .await;
    let sid = created["sid"].as_str().expect("sid").to_string();
    let list = reservations(&app, &tenant, &ws, &sid).await;
    assert_eq!(list[0]["worker_sid"], erin.as_str());
    // Without the attribute the default filter applies and the longest idle worker gets it.
    let other = task(&app, &tenant, &ws, &[("WorkflowSid", &flow)]).await;
    let other_sid = other["sid"].as_str().expect("sid").to_string();
    let list = reservations(&app, &tenant, &ws, &other_sid).await;
    assert_eq!(
        statuses(&list),
        vec![("Dave".to_string(), "pending".to_string())]
    );

    // A task nobody can take is canceled when its TTL ends.
    let lonely = task(
        &app,
        &tenant,
        &ws,
        &[
            ("WorkflowSid", &flow),
            ("Timeout", "30"),
            ("Attributes", r#"{"agent": "Nobody"}"#),
        ],
    )
    .await;
    let lonely_sid = lonely["sid"].as_str().expect("sid").to_string();
    app.advance_clock(29_000).await;
    assert_eq!(
        task_status(&app, &tenant, &ws, &lonely_sid).await["assignment_status"],
        "pending"
    );
    app.advance_clock(1_000).await;
    let canceled = wait_task(&app, &tenant, &ws, &lonely_sid, |t| {
        t["assignment_status"] == "canceled"
    })
    .await;
    assert_eq!(canceled["reason"], "Task TTL Exceeded");
    app.shutdown().await;
}

/// A fresh host, tenant and workspace with a queue that reserves up to two workers per task.
async fn pool_of_two(name: &str) -> (TestApp, Tenant, Workspace, String) {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let ws = workspace(&app, &tenant, &[]).await;
    let pool = queue(
        &app,
        &tenant,
        &ws,
        &[("FriendlyName", name), ("MaxReservedWorkers", "2")],
    )
    .await;
    (app, tenant, ws, pool)
}

#[tokio::test]
async fn multi_reservation_rescinds_the_others_on_first_accept_and_reject_reroutes() {
    let (app, tenant, ws, pool) = pool_of_two("pool").await;
    let flow = workflow_to(&app, &tenant, &ws, &pool, &[]).await;
    worker(&app, &tenant, &ws, "Fay", "{}").await;
    worker(&app, &tenant, &ws, "Gus", "{}").await;
    let created = task(&app, &tenant, &ws, &[("WorkflowSid", &flow)]).await;
    let sid = created["sid"].as_str().expect("sid").to_string();
    let list = reservations(&app, &tenant, &ws, &sid).await;
    assert_eq!(list.len(), 2, "{list:?}");
    let gus = list
        .iter()
        .find(|r| r["worker_name"] == "Gus")
        .expect("Gus");
    let gus_path = ws.path(&format!(
        "Tasks/{sid}/Reservations/{}",
        gus["sid"].as_str().expect("sid")
    ));
    post(
        &app,
        &tenant,
        &gus_path,
        &[("ReservationStatus", "accepted")],
    )
    .await;
    let mut after = statuses(&reservations(&app, &tenant, &ws, &sid).await);
    after.sort();
    assert_eq!(
        after,
        vec![
            ("Fay".into(), "rescinded".into()),
            ("Gus".into(), "accepted".into())
        ]
    );
    // A live status is listed from memory, a finished one from the stored rows.
    for (status, name) in [("accepted", "Gus"), ("rescinded", "Fay")] {
        let path = ws.path(&format!(
            "Tasks/{sid}/Reservations?ReservationStatus={status}"
        ));
        let listed = get(&app, &tenant, &path).await["reservations"]
            .as_array()
            .expect("reservations")
            .clone();
        assert_eq!(
            statuses(&listed),
            vec![(name.to_string(), status.to_string())]
        );
    }
    let (status, body) = app
        .post_form(&tenant, &gus_path, &[("ReservationStatus", "rejected")])
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an accepted reservation can't be rejected: {body}"
    );

    // Reject with an activity: Hal goes offline and the task goes to Ivy.
    let ws = workspace(&app, &tenant, &[]).await;
    let pool = queue(&app, &tenant, &ws, &[("FriendlyName", "pool")]).await;
    let flow = workflow_to(&app, &tenant, &ws, &pool, &[]).await;
    let hal = worker(&app, &tenant, &ws, "Hal", "{}").await;
    app.advance_clock(1_000).await;
    worker(&app, &tenant, &ws, "Ivy", "{}").await;
    let created = task(&app, &tenant, &ws, &[("WorkflowSid", &flow)]).await;
    let sid = created["sid"].as_str().expect("sid").to_string();
    let first = reservations(&app, &tenant, &ws, &sid).await;
    assert_eq!(statuses(&first), vec![("Hal".into(), "pending".into())]);
    let path = ws.path(&format!(
        "Workers/{hal}/Reservations/{}",
        first[0]["sid"].as_str().expect("sid")
    ));
    post(
        &app,
        &tenant,
        &path,
        &[
            ("ReservationStatus", "rejected"),
            ("WorkerActivitySid", &ws.offline),
        ],
    )
    .await;
    let hal_now = get(&app, &tenant, &ws.path(&format!("Workers/{hal}"))).await;
    assert_eq!(hal_now["activity_name"], "Offline");
    assert_eq!(hal_now["available"], false);
    let mut after = statuses(&reservations(&app, &tenant, &ws, &sid).await);
    after.sort();
    assert_eq!(
        after,
        vec![
            ("Hal".into(), "rejected".into()),
            ("Ivy".into(), "pending".into())
        ]
    );
    // A worker's list holds its own reservations alone, with or without a status.
    for query in ["", "?ReservationStatus=rejected"] {
        let (listed, _) = all_pages(
            &app,
            &tenant,
            &ws.path(&format!("Workers/{hal}/Reservations{query}")),
            "reservations",
        )
        .await;
        assert_eq!(statuses(&listed), vec![("Hal".into(), "rejected".into())]);
    }
    let (none, _) = all_pages(
        &app,
        &tenant,
        &ws.path(&format!(
            "Workers/{hal}/Reservations?ReservationStatus=timeout"
        )),
        "reservations",
    )
    .await;
    assert!(none.is_empty(), "{none:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn order_by_reserves_the_highest_ranked_workers_and_those_without_the_attribute_last() {
    let (app, tenant, ws, pool) = pool_of_two("ranked").await;
    let configuration = format!(
        r#"{{"task_routing": {{"default_filter": {{"queue": "{pool}", "order_by": "worker.level DESC"}}}}}}"#
    );
    let flow = workflow(&app, &tenant, &ws, &[("Configuration", &configuration)]).await;
    worker(&app, &tenant, &ws, "Eve", "{}").await;
    worker(&app, &tenant, &ws, "Ann", r#"{"level": 1}"#).await;
    worker(&app, &tenant, &ws, "Cid", r#"{"level": 3}"#).await;
    worker(&app, &tenant, &ws, "Dee", r#"{"level": 2}"#).await;
    let created = task(&app, &tenant, &ws, &[("WorkflowSid", &flow)]).await;
    let sid = created["sid"].as_str().expect("sid");
    let mut reserved = statuses(&reservations(&app, &tenant, &ws, sid).await);
    reserved.sort();
    assert_eq!(
        reserved,
        vec![
            ("Cid".into(), "pending".into()),
            ("Dee".into(), "pending".into())
        ],
        "levels 3 and 2 first, whatever their idle order"
    );
    // With those two busy and one reservation per task, level 1 comes before no level at all.
    post(
        &app,
        &tenant,
        &ws.path(&format!("TaskQueues/{pool}")),
        &[("MaxReservedWorkers", "1")],
    )
    .await;
    let next = task(&app, &tenant, &ws, &[("WorkflowSid", &flow)]).await;
    let next_sid = next["sid"].as_str().expect("sid");
    assert_eq!(
        statuses(&reservations(&app, &tenant, &ws, next_sid).await),
        vec![("Ann".into(), "pending".into())]
    );
}

#[tokio::test]
async fn a_reservation_timeout_moves_the_worker_to_the_timeout_activity_and_reroutes() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let ws = workspace(&app, &tenant, &[]).await;
    let pool = queue(&app, &tenant, &ws, &[("FriendlyName", "pool")]).await;
    let flow = workflow_to(
        &app,
        &tenant,
        &ws,
        &pool,
        &[("TaskReservationTimeout", "5")],
    )
    .await;
    let jo = worker(&app, &tenant, &ws, "Jo", "{}").await;
    app.advance_clock(1_000).await;
    worker(&app, &tenant, &ws, "Kim", "{}").await;
    let created = task(&app, &tenant, &ws, &[("WorkflowSid", &flow)]).await;
    let sid = created["sid"].as_str().expect("sid").to_string();
    app.advance_clock(4_999).await;
    assert_eq!(
        statuses(&reservations(&app, &tenant, &ws, &sid).await),
        vec![("Jo".into(), "pending".into())]
    );
    app.advance_clock(1).await;
    // The timeout commits just after the live state shows it: wait for both reservations to
    // read as the expected pair.
    let mut after = Vec::new();
    for _ in 0..200 {
        after = statuses(&reservations(&app, &tenant, &ws, &sid).await);
        after.sort();
        if after.iter().any(|(_, status)| status == "timeout") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        after,
        vec![
            ("Jo".into(), "timeout".into()),
            ("Kim".into(), "pending".into())
        ]
    );
    let jo_now = get(&app, &tenant, &ws.path(&format!("Workers/{jo}"))).await;
    assert_eq!(
        jo_now["activity_sid"],
        ws.offline.as_str(),
        "the workspace's timeout activity"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_channel_first_routed_on_late_finds_its_ready_workers_and_keeps_them_current() {
    let (app, tenant, ws, pool) = pool_of_two("pool").await;
    let flow = workflow_to(&app, &tenant, &ws, &pool, &[]).await;
    // Ada has been idle longest, then Bob, then Cy; Bob takes no voice work.
    let mut names = Vec::new();
    for name in ["Ada", "Bob", "Cy"] {
        names.push(worker(&app, &tenant, &ws, name, "{}").await);
        app.advance_clock(1_000).await;
    }
    let bob_voice = ws.path(&format!("Workers/{}/Channels/voice", names[1]));
    let (status, body) = app
        .post_form(&tenant, &bob_voice, &[("Capacity", "0")])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reserved_for = |task: Value| {
        let (app, tenant, ws) = (&app, &tenant, &ws);
        async move {
            let sid = task["sid"].as_str().expect("sid").to_string();
            let mut names: Vec<String> = reservations(app, tenant, ws, &sid)
                .await
                .iter()
                .map(|r| r["worker_name"].as_str().unwrap_or_default().to_string())
                .collect();
            names.sort();
            (sid, names)
        }
    };
    // A default task first: Ada and Bob, the two longest idle, are reserved and so idle no more.
    let default = task(&app, &tenant, &ws, &[("WorkflowSid", &flow)]).await;
    assert_eq!(reserved_for(default).await.1, vec!["Ada", "Bob"]);
    app.advance_clock(1_000).await;

    // The first voice task: the queue's voice workers are found then, Bob left out.
    let voice = [("WorkflowSid", flow.as_str()), ("TaskChannel", "voice")];
    let first = task(&app, &tenant, &ws, &voice).await;
    assert_eq!(reserved_for(first).await.1, vec!["Ada", "Cy"]);
    // Both now hold their one voice slot: the next voice task waits.
    let second = task(&app, &tenant, &ws, &voice).await;
    let (second_sid, nobody) = reserved_for(second).await;
    assert!(nobody.is_empty(), "{nobody:?}");
    // Bob takes voice work again and is offered the waiting task.
    let (status, body) = app
        .post_form(&tenant, &bob_voice, &[("Capacity", "1")])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reserved = reservations(&app, &tenant, &ws, &second_sid).await;
    assert_eq!(reserved.len(), 1, "{reserved:?}");
    assert_eq!(reserved[0]["worker_name"], "Bob");
    app.shutdown().await;
}

/// Follows a list's absolute `next_page_url`s from `path`, as the reference's SDKs do: every
/// item under `key`, in order, and the number of pages.
async fn all_pages(app: &TestApp, tenant: &Tenant, path: &str, key: &str) -> (Vec<Value>, usize) {
    let client = reqwest::Client::new();
    let mut url = app.path(path);
    let (mut items, mut pages) = (Vec::new(), 0);
    loop {
        let page: Value = client
            .get(&url)
            .basic_auth(&tenant.sid, Some(&tenant.token))
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("json");
        pages += 1;
        items.extend(page[key].as_array().expect("list").iter().cloned());
        match page["meta"]["next_page_url"].as_str() {
            Some(next) => url = next.to_string(),
            None => return (items, pages),
        }
    }
}

/// The sids of a task list's every page, in order, and the number of pages.
async fn task_pages(app: &TestApp, tenant: &Tenant, path: &str) -> (Vec<String>, usize) {
    let (tasks, pages) = all_pages(app, tenant, path, "tasks").await;
    let sids = tasks
        .iter()
        .map(|task| task["sid"].as_str().expect("sid").to_string())
        .collect();
    (sids, pages)
}

#[tokio::test]
async fn finished_tasks_are_listed_a_page_at_a_time_with_their_filters() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let ws = workspace(&app, &tenant, &[]).await;
    let line = queue(&app, &tenant, &ws, &[("FriendlyName", "line")]).await;
    let other = queue(&app, &tenant, &ws, &[("FriendlyName", "other")]).await;
    let flow = workflow_to(&app, &tenant, &ws, &line, &[]).await;
    // No workers: the tasks wait, and four of the five are canceled.
    let mut canceled = Vec::new();
    let mut waiting = String::new();
    for index in 0..5 {
        let attributes = format!(r#"{{"n": {index}}}"#);
        let created = task(
            &app,
            &tenant,
            &ws,
            &[("WorkflowSid", &flow), ("Attributes", &attributes)],
        )
        .await;
        let sid = created["sid"].as_str().expect("sid").to_string();
        if index == 4 {
            waiting = sid;
            continue;
        }
        let (status, body) = app
            .post_form(
                &tenant,
                &ws.path(&format!("Tasks/{sid}")),
                &[("AssignmentStatus", "canceled"), ("Reason", "caller left")],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        canceled.push(sid);
    }

    let history = ws.path("Tasks?AssignmentStatus=canceled&AssignmentStatus=completed");
    let (oldest_first, pages) = task_pages(&app, &tenant, &format!("{history}&PageSize=3")).await;
    assert_eq!(pages, 2, "three on the first page, one on the second");
    let mut expected = canceled.clone();
    expected.sort();
    let mut listed = oldest_first.clone();
    listed.sort();
    assert_eq!(
        listed, expected,
        "every canceled task once, and no waiting one"
    );
    assert!(!oldest_first.contains(&waiting));
    // The same list through the filter that needs every task in memory agrees, order and all.
    let (evaluated, _) = task_pages(
        &app,
        &tenant,
        &format!("{history}&EvaluateTaskAttributes=n%20%3C%2010&PageSize=2"),
    )
    .await;
    assert_eq!(evaluated, oldest_first);
    let (newest_first, _) = task_pages(
        &app,
        &tenant,
        &format!("{history}&Ordering=DateCreated:desc&PageSize=2"),
    )
    .await;
    let mut reversed = oldest_first.clone();
    reversed.reverse();
    assert_eq!(newest_first, reversed);

    let (in_line, _) = task_pages(
        &app,
        &tenant,
        &ws.path(&format!(
            "Tasks?AssignmentStatus=canceled&TaskQueueSid={line}"
        )),
    )
    .await;
    assert_eq!(in_line, oldest_first);
    let (in_other, pages) = task_pages(
        &app,
        &tenant,
        &ws.path(&format!(
            "Tasks?AssignmentStatus=canceled&TaskQueueSid={other}"
        )),
    )
    .await;
    assert!(in_other.is_empty());
    assert_eq!(pages, 1);
    let (by_flow, _) = task_pages(
        &app,
        &tenant,
        &ws.path(&format!(
            "Tasks?AssignmentStatus=canceled&WorkflowSid={flow}&Priority=0"
        )),
    )
    .await;
    assert_eq!(by_flow, oldest_first);
    // Every task, unfiltered, a page at a time: the waiting one too, shown as it is now.
    let (every, pages) = task_pages(&app, &tenant, &ws.path("Tasks?PageSize=2")).await;
    assert_eq!(pages, 3);
    let (every_evaluated, _) = task_pages(
        &app,
        &tenant,
        &ws.path("Tasks?EvaluateTaskAttributes=n%20%3C%2010&PageSize=3"),
    )
    .await;
    assert_eq!(every, every_evaluated, "both paths list the same, in order");
    assert!(every.contains(&waiting));
    let (every_newest_first, _) =
        task_pages(&app, &tenant, &ws.path("Tasks?Ordering=DateCreated:desc")).await;
    let mut reversed = every.clone();
    reversed.reverse();
    assert_eq!(every_newest_first, reversed);
    // A queue or workflow named stands for its sid; a name nobody has, or one that disagrees with
    // the sid given beside it, lists nothing.
    let (by_names, _) = task_pages(
        &app,
        &tenant,
        &ws.path(
            "Tasks?AssignmentStatus=canceled&TaskQueueName=line&WorkflowName=router&PageSize=3",
        ),
    )
    .await;
    assert_eq!(by_names, oldest_first);
    let (all_in_line, _) = task_pages(
        &app,
        &tenant,
        &ws.path("Tasks?TaskQueueName=line&PageSize=2"),
    )
    .await;
    assert_eq!(all_in_line, every);
    let disagreeing = format!("TaskQueueName=line&TaskQueueSid={other}");
    for nothing in [
        "TaskQueueName=nobody",
        "WorkflowName=nobody",
        disagreeing.as_str(),
    ] {
        let (listed, pages) = task_pages(
            &app,
            &tenant,
            &ws.path(&format!("Tasks?AssignmentStatus=canceled&{nothing}")),
        )
        .await;
        assert!(listed.is_empty(), "{nothing} lists nothing");
        assert_eq!(pages, 1);
    }
    // Live and finished statuses together: the waiting task and the canceled ones, the same
    // through the database a page at a time as through the filter that needs memory.
    let mixed = ws.path("Tasks?AssignmentStatus=pending&AssignmentStatus=canceled");
    let (both, pages) = task_pages(&app, &tenant, &format!("{mixed}&PageSize=2")).await;
    assert_eq!(pages, 3);
    let (both_evaluated, _) = task_pages(
        &app,
        &tenant,
        &format!("{mixed}&EvaluateTaskAttributes=n%20%3C%2010&PageSize=4"),
    )
    .await;
    assert_eq!(both, both_evaluated);
    assert_eq!(both, every, "every task is pending or canceled");
    let (pending_in_line, _) = task_pages(
        &app,
        &tenant,
        &ws.path("Tasks?AssignmentStatus=pending&TaskQueueName=line"),
    )
    .await;
    assert_eq!(pending_in_line, vec![waiting.clone()]);
    let listed = get(&app, &tenant, &ws.path("Tasks?PageSize=5")).await;
    let shown = listed["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["sid"] == waiting.as_str())
        .cloned()
        .expect("the waiting task");
    assert_eq!(shown["assignment_status"], "pending");
    let (completed, _) =
        task_pages(&app, &tenant, &ws.path("Tasks?AssignmentStatus=completed")).await;
    assert!(completed.is_empty());
    let (beyond, pages) = task_pages(&app, &tenant, &format!("{history}&PageSize=3&Page=5")).await;
    assert!(beyond.is_empty(), "a page past the end is empty");
    assert_eq!(pages, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn if_match_guards_updates_and_pages_follow_absolute_next_page_urls() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let ws = workspace(&app, &tenant, &[]).await;
    for index in 0..5 {
        worker(
            &app,
            &tenant,
            &ws,
            &format!("w{index}"),
            &format!(r#"{{"index":{index}}}"#),
        )
        .await;
    }
    let (workers, _) = all_pages(&app, &tenant, &ws.path("Workers?PageSize=2"), "workers").await;
    let mut names = Vec::new();
    for worker in &workers {
        let name = worker["friendly_name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // Client programs read attributes from lists, as the reference's service answers them.
        let attributes: Value =
            serde_json::from_str(worker["attributes"].as_str().unwrap_or("null"))
                .expect("a listed worker's attributes are JSON text");
        assert_eq!(
            format!("w{}", attributes["index"]),
            name,
            "each listed worker carries its own attributes"
        );
        names.push(name);
    }
    names.sort();
    assert_eq!(
        names,
        vec!["w0", "w1", "w2", "w3", "w4"],
        "every worker once"
    );

    let client = reqwest::Client::new();
    let sid = get(&app, &tenant, &ws.path("Workers?FriendlyName=w0")).await["workers"][0]["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let path = app.path(&ws.path(&format!("Workers/{sid}")));
    let fetched = client
        .get(&path)
        .basic_auth(&tenant.sid, Some(&tenant.token))
        .send()
        .await
        .expect("fetch");
    let etag = fetched
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("etag")
        .to_string();
    let stale = client
        .post(&path)
        .basic_auth(&tenant.sid, Some(&tenant.token))
        .header("If-Match", "\"999\"")
        .form(&[("Attributes", r#"{"a": 1}"#)])
        .send()
        .await
        .expect("stale update");
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let fresh = client
        .post(&path)
        .basic_auth(&tenant.sid, Some(&tenant.token))
        .header("If-Match", &etag)
        .form(&[("Attributes", r#"{"a": 1}"#)])
        .send()
        .await
        .expect("update");
    assert_eq!(fresh.status(), StatusCode::OK);
    let body: Value = fresh.json().await.expect("json");
    assert_eq!(body["attributes"], r#"{"a": 1}"#);
    app.shutdown().await;
}

#[tokio::test]
async fn a_workflow_rule_module_routes_and_scores_and_a_trapping_rule_falls_back() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let (status, body) = app
        .upload(&tenant, "rule", "workflow-rules", guest("trapping_rule"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ws = workspace(&app, &tenant, &[]).await;
    let fallback = queue(&app, &tenant, &ws, &[("FriendlyName", "fallback")]).await;
    queue(&app, &tenant, &ws, &[("FriendlyName", "scored")]).await;
    let configuration = format!(
        r#"{{"module": "module:rule", "task_routing": {{"default_filter": {{"queue": "{fallback}"}}}}}}"#
    );
    let flow = workflow(&app, &tenant, &ws, &[("Configuration", &configuration)]).await;
    // Longest idle first would pick Low; the module's score picks High.
    worker(&app, &tenant, &ws, "Low", r#"{"score": 1}"#).await;
    app.advance_clock(1_000).await;
    worker(&app, &tenant, &ws, "High", r#"{"score": 7}"#).await;
    worker(&app, &tenant, &ws, "Unscored", "{}").await;

    let created = task(
        &app,
        &tenant,
        &ws,
        &[
            ("WorkflowSid", &flow),
            ("Attributes", r#"{"queue": "scored"}"#),
        ],
    )
    .await;
    let sid = created["sid"].as_str().expect("sid").to_string();
    let routed = wait_task(&app, &tenant, &ws, &sid, |t| {
        t["assignment_status"] == "reserved"
    })
    .await;
    assert_eq!(
        routed["task_queue_friendly_name"], "scored",
        "the module chose the queue"
    );
    assert_eq!(
        statuses(&reservations(&app, &tenant, &ws, &sid).await),
        vec![("High".into(), "pending".into())]
    );

    // A trapping route falls back to the static configuration and is reported.
    let trapped = task(
        &app,
        &tenant,
        &ws,
        &[("WorkflowSid", &flow), ("Attributes", r#"{"trap": true}"#)],
    )
    .await;
    let trapped_sid = trapped["sid"].as_str().expect("sid").to_string();
    let routed = wait_task(&app, &tenant, &ws, &trapped_sid, |t| {
        t["assignment_status"] == "reserved"
    })
    .await;
    assert_eq!(routed["task_queue_sid"], fallback.as_str());
    wait_event(&app, &tenant, &trapped_sid, "workflow.rule-failed").await;

    // A module asking to cancel cancels.
    let canceled = task(
        &app,
        &tenant,
        &ws,
        &[
            ("WorkflowSid", &flow),
            ("Attributes", r#"{"cancel": true}"#),
        ],
    )
    .await;
    assert_eq!(canceled["assignment_status"], "canceled");
    assert_eq!(canceled["reason"], "asked to cancel");

    // Usage is recorded per rule module, with the trap counted.
    // Routing: 3 routes and 3 scores for the scored task, 1 route each for the other two.
    let mut rule = Value::Null;
    for _ in 0..200 {
        let usage = get(&app, &tenant, "/v1/Usage/Modules").await;
        rule = usage["usage"]
            .as_array()
            .and_then(|all| all.iter().find(|m| m["module_name"] == "rule").cloned())
            .unwrap_or(Value::Null);
        if rule["invocations"].as_i64().is_some_and(|n| n >= 6) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        rule["invocations"].as_i64().is_some_and(|n| n >= 6),
        "{rule}"
    );
    assert_eq!(
        rule["outcomes"]["unreachable"], 1,
        "the trap is counted: {rule}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_pending_reservation_survives_a_crash_and_still_times_out_on_schedule() {
    let app = TestApp::spawn_crashable(|config| config.telephony.clock = ClockKind::Manual).await;
    let tenant = app.tenant().await;
    let ws = workspace(&app, &tenant, &[]).await;
    let pool = queue(&app, &tenant, &ws, &[("FriendlyName", "pool")]).await;
    let flow = workflow_to(
        &app,
        &tenant,
        &ws,
        &pool,
        &[("TaskReservationTimeout", "60")],
    )
    .await;
    worker(&app, &tenant, &ws, "Lee", "{}").await;
    let created = task(&app, &tenant, &ws, &[("WorkflowSid", &flow)]).await;
    let sid = created["sid"].as_str().expect("sid").to_string();
    let before = reservations(&app, &tenant, &ws, &sid).await;
    assert_eq!(statuses(&before), vec![("Lee".into(), "pending".into())]);

    let app = app.crash_and_restart().await;
    let after = reservations(&app, &tenant, &ws, &sid).await;
    assert_eq!(
        statuses(&after),
        vec![("Lee".into(), "pending".into())],
        "the reservation survived"
    );
    assert_eq!(after[0]["sid"], before[0]["sid"]);
    // Lee is still busy with it: a second task must not be given to Lee as well.
    let second = task(&app, &tenant, &ws, &[("WorkflowSid", &flow)]).await;
    assert_eq!(
        second["assignment_status"], "pending",
        "no double assignment: {second}"
    );
    // The manual clock restarts at the real time, at least as late as the original deadline base.
    app.advance_clock(61_000).await;
    for _ in 0..200 {
        if reservations(&app, &tenant, &ws, &sid).await[0]["reservation_status"] == "timeout" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        statuses(&reservations(&app, &tenant, &ws, &sid).await),
        vec![("Lee".into(), "timeout".into())]
    );
    app.shutdown().await;
}

/// Creates a task, answers who it was reserved for, and cancels it: that worker is free again
/// but idle only since the reservation.
async fn reserve_and_cancel(
    app: &TestApp,
    tenant: &Tenant,
    ws: &Workspace,
    flow: &str,
) -> (String, String) {
    let created = task(app, tenant, ws, &[("WorkflowSid", flow)]).await;
    let sid = created["sid"].as_str().expect("sid").to_string();
    let reserved = statuses(&reservations(app, tenant, ws, &sid).await);
    assert_eq!(reserved.len(), 1, "{reserved:?}");
    let (status, body) = app
        .post_form(
            tenant,
            &ws.path(&format!("Tasks/{sid}")),
            &[("AssignmentStatus", "canceled"), ("Reason", "test")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.advance_clock(1_000).await;
    (sid, reserved[0].0.clone())
}

#[tokio::test]
async fn longest_idle_order_survives_a_crash_and_a_restart_after_a_task_is_deleted() {
    let app = TestApp::spawn_crashable(|config| config.telephony.clock = ClockKind::Manual).await;
    let tenant = app.tenant().await;
    let ws = workspace(&app, &tenant, &[]).await;
    let pool = queue(&app, &tenant, &ws, &[("FriendlyName", "pool")]).await;
    let flow = workflow_to(&app, &tenant, &ws, &pool, &[]).await;
    worker(&app, &tenant, &ws, "Ada", "{}").await;
    app.advance_clock(1_000).await;
    worker(&app, &tenant, &ws, "Bob", "{}").await;
    app.advance_clock(1_000).await;

    let (_, first) = reserve_and_cancel(&app, &tenant, &ws, &flow).await;
    assert_eq!(first, "Ada", "Ada has been idle longest");
    // The manual clock restarts at the real time: move it past everything before the crash.
    let app = app.crash_and_restart().await;
    app.advance_clock(60_000).await;
    let (_, second) = reserve_and_cancel(&app, &tenant, &ws, &flow).await;
    assert_eq!(
        second, "Bob",
        "Ada's reservation still counts after the restart"
    );

    // Ada takes the next task, which is then deleted with its reservation.
    let (deleted, third) = reserve_and_cancel(&app, &tenant, &ws, &flow).await;
    assert_eq!(third, "Ada");
    let status = app
        .delete(&tenant, &ws.path(&format!("Tasks/{deleted}")))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let app = app.restart().await;
    app.advance_clock(120_000).await;
    let (_, fourth) = reserve_and_cancel(&app, &tenant, &ws, &flow).await;
    assert_eq!(
        fourth, "Bob",
        "Ada's deleted reservation still counts after the restart"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_enqueued_call_becomes_a_task_whose_dequeue_connects_the_caller_to_the_worker() {
    let app = TestApp::spawn_with(|config| {
        config.telephony.clock = ClockKind::Manual;
        config.telephony.media_speed = 1.0;
    })
    .await;
    let tenant = app.tenant().await;
    let ws = workspace(&app, &tenant, &[]).await;
    let pool = queue(&app, &tenant, &ws, &[("FriendlyName", "pool")]).await;
    let progress = HttpApp::start(vec![
        ("/agent-status", json_reply("")),
        ("/caller-status", json_reply("")),
    ])
    .await;
    let dequeue = format!(
        r#"{{"instruction": "dequeue", "post_work_activity_sid": "{}", "timeout": 20,
            "status_callback_url": "{}", "status_callback_events": "initiated,ringing,answered,completed"}}"#,
        ws.unavailable,
        progress.url("/agent-status")
    );
    let assign = HttpApp::start(vec![("/assign", json_reply(&dequeue))]).await;
    let flow = workflow_to(
        &app,
        &tenant,
        &ws,
        &pool,
        &[("AssignmentCallbackUrl", &assign.url("/assign"))],
    )
    .await;
    let web = HttpApp::start(vec![
        (
            "/caller",
            Reply::twiml(&format!(
                r#"<Response><Enqueue workflowSid="{flow}" waitUrl="" action="/after"><Task>{{"topic": "billing"}}</Task>support</Enqueue></Response>"#
            )),
        ),
        ("/after", Reply::twiml("<Response><Hangup/></Response>")),
    ])
    .await;
    app.buy_number(
        &tenant,
        "+14155550400",
        &[
            ("VoiceUrl", &web.url("/caller")),
            ("StatusCallback", &progress.url("/caller-status")),
        ],
    )
    .await;

    // Nobody is available yet: the caller waits with a pending task carrying its call.
    let caller = app
        .place_call(&tenant, "+14155550401", "+14155550400")
        .await;
    app.wait_for(&tenant, &caller, |t| {
        switchboard_tests::has_experience(t, "enqueued")
    })
    .await;
    let mut tasks = Value::Null;
    for _ in 0..200 {
        tasks = get(&app, &tenant, &ws.path("Tasks")).await;
        if tasks["tasks"].as_array().is_some_and(|t| !t.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let task_sid = tasks["tasks"][0]["sid"]
        .as_str()
        .expect("a task")
        .to_string();
    let attributes: Value = serde_json::from_str(
        tasks["tasks"][0]["attributes"]
            .as_str()
            .expect("attributes"),
    )
    .expect("json attributes");
    assert_eq!(attributes["call_sid"], caller.as_str());
    assert_eq!(attributes["from"], "+14155550401");
    assert_eq!(attributes["topic"], "billing");
    assert_eq!(tasks["tasks"][0]["task_channel_unique_name"], "voice");

    // A worker becomes available: reserved, the callback answers dequeue, the worker is rung.
    let agent = worker(
        &app,
        &tenant,
        &ws,
        "Agent",
        r#"{"contact_uri": "+14155550499"}"#,
    )
    .await;
    let timeline = app
        .wait_for(&tenant, &caller, |t| {
            switchboard_tests::has_experience(t, "dialing")
        })
        .await;
    let leg = timeline["timeline"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["type"] == "dialing").cloned())
        .and_then(|e| e["call_sid"].as_str().map(str::to_string))
        .expect("the worker's leg");
    assert_eq!(
        task_status(&app, &tenant, &ws, &task_sid).await["assignment_status"],
        "assigned"
    );
    app.wait_for(&tenant, &leg, |t| t["status"] == "ringing")
        .await;
    app.sim(&tenant, &leg, "Answer", &[]).await;
    app.wait_for(&tenant, &caller, |t| {
        switchboard_tests::has_experience(t, "bridged")
    })
    .await;
    // The worker hangs up: the caller's enqueue action hears `bridged`, the task wraps up and
    // the worker goes to the post-work activity.
    app.sim(&tenant, &leg, "Hangup", &[]).await;
    app.wait_ended(&tenant, &caller).await;
    let after = received(&web, "/after", 1).await;
    assert_eq!(after[0].param("QueueResult"), Some("bridged"));
    let wrapped = wait_task(&app, &tenant, &ws, &task_sid, |t| {
        t["assignment_status"] == "wrapping"
    })
    .await;
    assert_eq!(wrapped["assignment_status"], "wrapping");
    let agent_now = get(&app, &tenant, &ws.path(&format!("Workers/{agent}"))).await;
    assert_eq!(agent_now["activity_sid"], ws.unavailable.as_str());
    // The worker's leg reported its progress to the dequeue's status callback, in order.
    let reported = received(&progress, "/agent-status", 4).await;
    let statuses: Vec<(Option<&str>, Option<&str>, Option<&str>)> = reported
        .iter()
        .map(|r| {
            (
                r.param("CallSid"),
                r.param("CallStatus"),
                r.param("SequenceNumber"),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (Some(leg.as_str()), Some("initiated"), Some("0")),
            (Some(leg.as_str()), Some("ringing"), Some("1")),
            (Some(leg.as_str()), Some("in-progress"), Some("2")),
            (Some(leg.as_str()), Some("completed"), Some("3")),
        ]
    );
    // The caller's own callbacks count from 0 too, apart from its leg's.
    let caller_status = received(&progress, "/caller-status", 1).await;
    assert_eq!(caller_status[0].param("CallSid"), Some(caller.as_str()));
    assert_eq!(caller_status[0].param("CallStatus"), Some("completed"));
    assert_eq!(caller_status[0].param("SequenceNumber"), Some("0"));

    // A caller who hangs up while waiting cancels its task.
    let leaver = app
        .place_call(&tenant, "+14155550402", "+14155550400")
        .await;
    app.wait_for(&tenant, &leaver, |t| {
        switchboard_tests::has_experience(t, "enqueued")
    })
    .await;
    let mut pending = String::new();
    for _ in 0..200 {
        let list = get(&app, &tenant, &ws.path("Tasks?AssignmentStatus=pending")).await;
        if let Some(sid) = list["tasks"][0]["sid"].as_str() {
            pending = sid.to_string();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!pending.is_empty(), "the second caller's task");
    app.sim(&tenant, &leaver, "Hangup", &[]).await;
    let canceled = wait_task(&app, &tenant, &ws, &pending, |t| {
        t["assignment_status"] == "canceled"
    })
    .await;
    assert!(
        canceled["reason"]
            .as_str()
            .is_some_and(|r| r.contains("hangup")),
        "{canceled}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_module_answers_the_assignment_callback_through_the_distribution_interface() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let (status, body) = app
        .upload(&tenant, "assigner", "event-subscriber", guest("assigner"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ws = workspace(&app, &tenant, &[]).await;
    let pool = queue(&app, &tenant, &ws, &[("FriendlyName", "pool")]).await;
    let flow = workflow_to(
        &app,
        &tenant,
        &ws,
        &pool,
        &[("AssignmentCallbackUrl", "module:assigner")],
    )
    .await;
    // The longest idle worker rejects through the module; the next one accepts.
    worker(&app, &tenant, &ws, "reject-first", "{}").await;
    app.advance_clock(1_000).await;
    worker(&app, &tenant, &ws, "accepts", "{}").await;
    let created = task(&app, &tenant, &ws, &[("WorkflowSid", &flow)]).await;
    let sid = created["sid"].as_str().expect("sid").to_string();
    let assigned = wait_task(&app, &tenant, &ws, &sid, |t| {
        t["assignment_status"] == "assigned"
    })
    .await;
    assert_eq!(assigned["assignment_status"], "assigned");
    let mut after = statuses(&reservations(&app, &tenant, &ws, &sid).await);
    after.sort();
    assert_eq!(
        after,
        vec![
            ("accepts".into(), "accepted".into()),
            ("reject-first".into(), "rejected".into())
        ]
    );
}

#[tokio::test]
async fn the_skills_router_example_routes_by_skill_and_scores_by_level_language_and_load() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let (status, body) = app
        .upload(
            &tenant,
            "skills-router",
            "workflow-rules",
            guest("skills_router"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ws = workspace(&app, &tenant, &[]).await;
    let general = queue(&app, &tenant, &ws, &[("FriendlyName", "general")]).await;
    queue(
        &app,
        &tenant,
        &ws,
        &[
            ("FriendlyName", "billing"),
            ("TargetWorkers", "skills.billing > 0"),
        ],
    )
    .await;
    let configuration = format!(
        r#"{{"module": "module:skills-router", "task_routing": {{"default_filter": {{"queue": "{general}"}}}}}}"#
    );
    let flow = workflow(&app, &tenant, &ws, &[("Configuration", &configuration)]).await;
    // Longest idle first: a Spanish speaker at level 2, a non-speaker at level 5, then a Spanish
    // speaker at level 4, who scores best for a Spanish billing task.
    worker(
        &app,
        &tenant,
        &ws,
        "Ana",
        r#"{"skills": {"billing": 2}, "languages": ["es"]}"#,
    )
    .await;
    app.advance_clock(1_000).await;
    worker(
        &app,
        &tenant,
        &ws,
        "Ben",
        r#"{"skills": {"billing": 5}, "languages": ["en"]}"#,
    )
    .await;
    app.advance_clock(1_000).await;
    worker(
        &app,
        &tenant,
        &ws,
        "Cruz",
        r#"{"skills": {"billing": 4}, "languages": ["es", "en"]}"#,
    )
    .await;
    let created = task(
        &app,
        &tenant,
        &ws,
        &[
            ("WorkflowSid", &flow),
            ("Attributes", r#"{"skill": "billing", "language": "es"}"#),
        ],
    )
    .await;
    let sid = created["sid"].as_str().expect("sid").to_string();
    let routed = wait_task(&app, &tenant, &ws, &sid, |t| {
        t["assignment_status"] == "reserved"
    })
    .await;
    assert_eq!(routed["task_queue_friendly_name"], "billing");
    assert_eq!(
        statuses(&reservations(&app, &tenant, &ws, &sid).await),
        vec![("Cruz".into(), "pending".into())]
    );
    // Without a skill the module defers to the static configuration.
    let plain = task(&app, &tenant, &ws, &[("WorkflowSid", &flow)]).await;
    let plain_sid = plain["sid"].as_str().expect("sid").to_string();
    let routed = wait_task(&app, &tenant, &ws, &plain_sid, |t| {
        t["task_queue_sid"] == general.as_str()
    })
    .await;
    assert_eq!(routed["task_queue_sid"], general.as_str());
    app.shutdown().await;
}

#[tokio::test]
async fn call_and_redirect_instructions_place_and_move_calls() {
    let app = TestApp::spawn_with(|config| {
        config.telephony.clock = ClockKind::Manual;
        config.telephony.media_speed = 1.0;
    })
    .await;
    let tenant = app.tenant().await;
    let ws = workspace(&app, &tenant, &[]).await;
    let pool = queue(&app, &tenant, &ws, &[("FriendlyName", "pool")]).await;
    let flow = workflow_to(&app, &tenant, &ws, &pool, &[]).await;
    let web = HttpApp::start(vec![
        (
            "/caller",
            Reply::twiml(&format!(
                r#"<Response><Enqueue workflowSid="{flow}" waitUrl="">support</Enqueue></Response>"#
            )),
        ),
        (
            "/elsewhere",
            Reply::twiml("<Response><Say>moved</Say><Hangup/></Response>"),
        ),
        (
            "/agent",
            Reply::twiml("<Response><Say>hello agent</Say><Hangup/></Response>"),
        ),
        ("/agent-status", Reply::twiml("")),
    ])
    .await;
    app.buy_number(
        &tenant,
        "+14155550500",
        &[("VoiceUrl", &web.url("/caller"))],
    )
    .await;
    worker(&app, &tenant, &ws, "Rita", "{}").await;

    // redirect: the queued caller is moved to another document; the reservation is accepted.
    let caller = app
        .place_call(&tenant, "+14155550501", "+14155550500")
        .await;
    app.wait_for(&tenant, &caller, |t| {
        switchboard_tests::has_experience(t, "enqueued")
    })
    .await;
    let mut task_sid = String::new();
    for _ in 0..200 {
        let list = get(&app, &tenant, &ws.path("Tasks?AssignmentStatus=reserved")).await;
        if let Some(sid) = list["tasks"][0]["sid"].as_str() {
            task_sid = sid.to_string();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let reservation = reservations(&app, &tenant, &ws, &task_sid).await[0]["sid"]
        .as_str()
        .expect("reservation")
        .to_string();
    let path = ws.path(&format!("Tasks/{task_sid}/Reservations/{reservation}"));
    let (status, body) = app
        .post_form(
            &tenant,
            &path,
            &[
                ("Instruction", "redirect"),
                ("RedirectCallSid", "not-a-call"),
                ("RedirectUrl", &web.url("/elsewhere")),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let accepted = post(
        &app,
        &tenant,
        &path,
        &[
            ("Instruction", "redirect"),
            ("RedirectCallSid", &caller),
            ("RedirectUrl", &web.url("/elsewhere")),
            ("RedirectAccept", "true"),
        ],
    )
    .await;
    assert_eq!(accepted["reservation_status"], "accepted");
    let timeline = app
        .wait_for(&tenant, &caller, |t| {
            switchboard_tests::has_experience(t, "say")
        })
        .await;
    assert!(timeline.to_string().contains("moved"), "{timeline}");

    // call: an outbound call is placed to the worker.
    let created = task(&app, &tenant, &ws, &[("WorkflowSid", &flow)]).await;
    let sid = created["sid"].as_str().expect("sid").to_string();
    let worker_done = ws.path(&format!("Tasks/{task_sid}"));
    post(
        &app,
        &tenant,
        &worker_done,
        &[("AssignmentStatus", "completed"), ("Reason", "moved")],
    )
    .await;
    let second = wait_task(&app, &tenant, &ws, &sid, |t| {
        t["assignment_status"] == "reserved"
    })
    .await;
    assert_eq!(second["assignment_status"], "reserved");
    let reservation = reservations(&app, &tenant, &ws, &sid).await[0]["sid"]
        .as_str()
        .expect("reservation")
        .to_string();
    let reservation_path = ws.path(&format!("Tasks/{sid}/Reservations/{reservation}"));
    let call = |more: Vec<(&'static str, String)>| {
        let mut form = vec![
            ("Instruction", "call".to_string()),
            ("CallTo", "+14155550599".to_string()),
            ("CallFrom", "+14155550500".to_string()),
            ("CallUrl", web.url("/agent")),
            ("CallAccept", "true".to_string()),
        ];
        form.extend(more);
        form
    };
    for bad in [
        vec![("CallTimeout", "0".to_string())],
        vec![("CallTimeout", "soon".to_string())],
        vec![("CallStatusCallbackUrl", "module:agent".to_string())],
    ] {
        let form = call(bad);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = app.post_form(&tenant, &reservation_path, &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let form = call(vec![
        ("CallTimeout", "5".to_string()),
        ("CallStatusCallbackUrl", web.url("/agent-status")),
    ]);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    post(&app, &tenant, &reservation_path, &form).await;
    let mut placed = Value::Null;
    for _ in 0..200 {
        let (_, calls) = app
            .get(
                &tenant,
                &app.account_path(&tenant, "Calls.json?To=%2B14155550599"),
            )
            .await;
        if calls["calls"].as_array().is_some_and(|c| !c.is_empty()) {
            placed = calls["calls"][0].clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(placed["direction"], "outbound-api", "{placed}");
    assert_eq!(placed["from"], "+14155550500");
    // The worker's line is busy: the call's end is posted to CallStatusCallbackUrl.
    let leg = placed["sid"].as_str().expect("placed call sid");
    app.sim(&tenant, leg, "Busy", &[]).await;
    let posted = received(&web, "/agent-status", 1).await;
    assert_eq!(posted[0].param("CallSid"), Some(leg));
    assert_eq!(posted[0].param("CallStatus"), Some("busy"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_fifo_template_workspace_takes_tasks_at_once_and_a_bad_template_changes_nothing() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let ws = workspace(&app, &tenant, &[("Template", "FIFO")]).await;
    let queues = get(&app, &tenant, &ws.path("TaskQueues")).await;
    let queues = queues["task_queues"].as_array().expect("queues").clone();
    assert_eq!(queues.len(), 1, "{queues:?}");
    assert_eq!(queues[0]["friendly_name"], "Sample Queue");
    assert_eq!(queues[0]["task_order"], "FIFO");
    let flows = get(&app, &tenant, &ws.path("Workflows")).await;
    let flows = flows["workflows"].as_array().expect("workflows").clone();
    assert_eq!(flows.len(), 1, "{flows:?}");
    assert_eq!(flows[0]["friendly_name"], "Default Fifo Workflow");

    // With the one workflow, a task needs no WorkflowSid; every worker is in the sample queue.
    let alice = worker(&app, &tenant, &ws, "alice", r#"{"skills": []}"#).await;
    let created = task(&app, &tenant, &ws, &[("Attributes", r#"{"type": "any"}"#)]).await;
    assert_eq!(created["assignment_status"], "reserved", "{created}");
    assert_eq!(created["task_queue_sid"], queues[0]["sid"]);
    assert_eq!(created["workflow_sid"], flows[0]["sid"]);
    let sid = created["sid"].as_str().expect("task sid");
    let listed = reservations(&app, &tenant, &ws, sid).await;
    assert_eq!(listed[0]["worker_sid"], alice.as_str());

    let before = get(&app, &tenant, "/v1/Workspaces").await["workspaces"]
        .as_array()
        .map(Vec::len);
    let (status, body) = app
        .post_form(
            &tenant,
            "/v1/Workspaces",
            &[("FriendlyName", "odd"), ("Template", "ROUND_ROBIN")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("NONE or FIFO")),
        "{body}"
    );
    let after = get(&app, &tenant, "/v1/Workspaces").await["workspaces"]
        .as_array()
        .map(Vec::len);
    assert_eq!(before, after, "a refused workspace is not created");
    app.shutdown().await;
}

#[tokio::test]
async fn task_lists_order_by_several_keys_and_refuse_an_ordering_they_cannot_follow() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let ws = workspace(&app, &tenant, &[]).await;
    let nobody = queue(
        &app,
        &tenant,
        &ws,
        &[("FriendlyName", "nobody"), ("TargetWorkers", "1 == 0")],
    )
    .await;
    let flow = workflow_to(&app, &tenant, &ws, &nobody, &[]).await;
    let mut created = Vec::new();
    for (name, priority) in [("a", "1"), ("b", "5"), ("c", "1"), ("d", "5"), ("e", "3")] {
        let attributes = format!(r#"{{"name": "{name}"}}"#);
        task(
            &app,
            &tenant,
            &ws,
            &[
                ("WorkflowSid", flow.as_str()),
                ("Attributes", attributes.as_str()),
                ("Priority", priority),
            ],
        )
        .await;
        created.push(name);
        // Distinct creation times, so that the secondary order is visible.
        app.advance_clock(1_000).await;
    }
    let names = |list: &Value| -> Vec<String> {
        list["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .map(|t| {
                let attributes: Value =
                    serde_json::from_str(t["attributes"].as_str().unwrap_or("{}"))
                        .unwrap_or_default();
                attributes["name"].as_str().unwrap_or_default().to_string()
            })
            .collect()
    };
    let ordered = |ordering: &str| ws.path(&format!("Tasks?Ordering={ordering}"));
    let list = get(&app, &tenant, &ordered("Priority:desc,DateCreated:asc")).await;
    assert_eq!(names(&list), ["b", "d", "e", "a", "c"]);
    let list = get(&app, &tenant, &ordered("Priority:desc,DateCreated:desc")).await;
    assert_eq!(names(&list), ["d", "b", "e", "c", "a"]);
    let list = get(&app, &tenant, &ordered("priority:asc")).await;
    assert_eq!(
        names(&list),
        ["a", "c", "e", "b", "d"],
        "oldest first among equals"
    );
    let list = get(&app, &tenant, &ordered("DateCreated:desc")).await;
    assert_eq!(names(&list), ["e", "d", "c", "b", "a"]);
    let list = get(&app, &tenant, &ws.path("Tasks")).await;
    assert_eq!(names(&list), created);

    // A task's virtual start time can move it; its channel cannot change.
    let first = list["tasks"][0]["sid"].as_str().expect("sid").to_string();
    let (status, body) = app
        .post_form(
            &tenant,
            &ws.path(&format!("Tasks/{first}")),
            &[("VirtualStartTime", "2100-01-01T00:00:00Z")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["virtual_start_time"], "2100-01-01T00:00:00Z");
    let list = get(&app, &tenant, &ordered("VirtualStartTime:asc")).await;
    assert_eq!(names(&list), ["b", "c", "d", "e", "a"]);
    let list = get(
        &app,
        &tenant,
        &ordered("Priority:asc,VirtualStartTime:desc"),
    )
    .await;
    assert_eq!(names(&list), ["a", "c", "e", "d", "b"]);
    let (status, body) = app
        .post_form(
            &tenant,
            &ws.path(&format!("Tasks/{first}")),
            &[("TaskChannel", "voice")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let unchanged = get(&app, &tenant, &ws.path(&format!("Tasks/{first}"))).await;
    assert_eq!(unchanged["task_channel_unique_name"], "default");

    for bad in [
        "Priority:sideways",
        "Age:asc",
        "Priority:desc,Priority:asc",
        "DateCreated:asc,VirtualStartTime:desc",
    ] {
        let (status, body) = app.get(&tenant, &ordered(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("Ordering")),
            "{bad}: {body}"
        );
    }

    // A comma-separated status list means the same as repeated keys.
    let repeated = get(
        &app,
        &tenant,
        &ws.path("Tasks?AssignmentStatus=pending&AssignmentStatus=canceled"),
    )
    .await;
    let joined = get(
        &app,
        &tenant,
        &ws.path("Tasks?AssignmentStatus=pending,canceled"),
    )
    .await;
    assert_eq!(names(&joined), names(&repeated));
    assert_eq!(names(&joined).len(), 5);
    // No task has add-ons.
    let with_addons = get(&app, &tenant, &ws.path("Tasks?HasAddons=true")).await;
    assert_eq!(names(&with_addons).len(), 0);
    let without = get(&app, &tenant, &ws.path("Tasks?HasAddons=false")).await;
    assert_eq!(names(&without).len(), 5);
    app.shutdown().await;
}

#[tokio::test]
async fn workers_are_found_by_their_own_fields_and_reservations_answer_where_they_were_asked() {
    let app = spawn().await;
    let tenant = app.tenant().await;
    let ws = workspace(&app, &tenant, &[]).await;
    let alice = worker(&app, &tenant, &ws, "Alice", r#"{"team": "red"}"#).await;
    let (status, _) = app
        .post_form(
            &tenant,
            &ws.path("Workers"),
            &[
                ("FriendlyName", "Bob"),
                ("Attributes", r#"{"team": "red"}"#),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let names = |list: Value| -> Vec<String> {
        let mut names: Vec<String> = list["workers"]
            .as_array()
            .expect("workers")
            .iter()
            .map(|w| w["friendly_name"].as_str().unwrap_or_default().to_string())
            .collect();
        names.sort();
        names
    };
    let matching = |expression: &str| {
        ws.path(&format!(
            "Workers?TargetWorkersExpression={}",
            expression
                .replace(' ', "%20")
                .replace('"', "%22")
                .replace('=', "%3D")
        ))
    };
    let list = get(&app, &tenant, &matching(r#"activity_name == "Available""#)).await;
    assert_eq!(names(list), ["Alice"]);
    let list = get(
        &app,
        &tenant,
        &matching(r#"team == "red" AND friendly_name == "Bob""#),
    )
    .await;
    assert_eq!(names(list), ["Bob"]);
    let sid_expression = format!(r#"sid == "{alice}""#);
    let list = get(&app, &tenant, &matching(&sid_expression)).await;
    assert_eq!(names(list), ["Alice"]);
    let list = get(&app, &tenant, &ws.path("Workers?FriendlyName=alice")).await;
    assert_eq!(names(list), ["Alice"], "names are case-insensitive");

    let everyone = queue(&app, &tenant, &ws, &[("FriendlyName", "all")]).await;
    let flow = workflow_to(&app, &tenant, &ws, &everyone, &[]).await;
    let created = task(&app, &tenant, &ws, &[("WorkflowSid", flow.as_str())]).await;
    let task_sid = created["sid"].as_str().expect("task sid");
    let reservation = reservations(&app, &tenant, &ws, task_sid).await[0].clone();
    let reservation_sid = reservation["sid"].as_str().expect("reservation sid");
    assert!(
        reservation["url"].as_str().is_some_and(
            |u| u.ends_with(&format!("/Tasks/{task_sid}/Reservations/{reservation_sid}"))
        ),
        "{reservation}"
    );
    let under_worker = ws.path(&format!("Workers/{alice}/Reservations"));
    let listed = get(&app, &tenant, &under_worker).await["reservations"][0].clone();
    let fetched = get(&app, &tenant, &format!("{under_worker}/{reservation_sid}")).await;
    for view in [&listed, &fetched] {
        assert!(
            view["url"].as_str().is_some_and(
                |u| u.ends_with(&format!("/Workers/{alice}/Reservations/{reservation_sid}"))
            ),
            "{view}"
        );
    }
    // A worker's sid in a task's place finds nothing.
    let (status, _) = app
        .get(
            &tenant,
            &ws.path(&format!("Tasks/{alice}/Reservations/{reservation_sid}")),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An instruction this host cannot carry out is a client error that changes nothing.
    let (status, body) = app
        .post_form(
            &tenant,
            &format!("{under_worker}/{reservation_sid}"),
            &[("Instruction", "conference"), ("From", "+15550100")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 31009);
    let after = get(&app, &tenant, &format!("{under_worker}/{reservation_sid}")).await;
    assert_eq!(after["reservation_status"], "pending");
    assert_eq!(after["date_updated"], fetched["date_updated"]);
    app.shutdown().await;
}

/// Sids of the tasks a list answers.
async fn listed_tasks(app: &TestApp, tenant: &Tenant, ws: &Workspace, query: &str) -> Vec<String> {
    let mut sids: Vec<String> =
        get(app, tenant, &ws.path(&format!("Tasks?{query}"))).await["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .filter_map(|t| t["sid"].as_str().map(str::to_string))
            .collect();
    sids.sort();
    sids
}

#[tokio::test]
async fn a_routing_target_sends_a_task_to_a_queue_or_a_worker_and_survives_a_crash() {
    let app = TestApp::spawn_crashable(|config| config.telephony.clock = ClockKind::Manual).await;
    let tenant = app.tenant().await;
    let ws = workspace(&app, &tenant, &[]).await;
    let sales = queue(
        &app,
        &tenant,
        &ws,
        &[
            ("FriendlyName", "sales"),
            ("TargetWorkers", "skill == 'sales'"),
        ],
    )
    .await;
    let everyone = queue(&app, &tenant, &ws, &[("FriendlyName", "everyone")]).await;
    let flow = workflow_to(&app, &tenant, &ws, &everyone, &[]).await;
    worker(&app, &tenant, &ws, "Ann", r#"{"skill": "sales"}"#).await;
    let bob = post(
        &app,
        &tenant,
        &ws.path("Workers"),
        &[
            ("FriendlyName", "Bob"),
            ("Attributes", r#"{"skill": "support"}"#),
            ("ActivitySid", &ws.offline),
        ],
    )
    .await["sid"]
        .as_str()
        .expect("sid")
        .to_string();

    // A queue: its TargetWorkers choose, and no workflow is involved.
    let to_sales = task(&app, &tenant, &ws, &[("RoutingTarget", &sales)]).await;
    assert_eq!(to_sales["routing_target"], sales.as_str(), "{to_sales}");
    assert_eq!(to_sales["task_queue_sid"], sales.as_str());
    assert_eq!(to_sales["workflow_sid"], Value::Null);
    assert_eq!(to_sales["ignore_capacity"], false);
    let to_sales = to_sales["sid"].as_str().expect("sid").to_string();
    let list = reservations(&app, &tenant, &ws, &to_sales).await;
    assert_eq!(
        statuses(&list),
        vec![("Ann".to_string(), "pending".to_string())]
    );
    // Ann finishes it and is free again.
    let ann_reservation = list[0]["sid"].as_str().expect("sid").to_string();
    post(
        &app,
        &tenant,
        &ws.path(&format!("Tasks/{to_sales}/Reservations/{ann_reservation}")),
        &[("ReservationStatus", "accepted")],
    )
    .await;
    post(
        &app,
        &tenant,
        &ws.path(&format!("Tasks/{to_sales}")),
        &[("AssignmentStatus", "completed"), ("Reason", "sold")],
    )
    .await;

    // A worker, capacity ignored by default: Bob is offline and not in sales, and gets it.
    let forced = task(
        &app,
        &tenant,
        &ws,
        &[("RoutingTarget", &bob), ("TaskQueueSid", &sales)],
    )
    .await;
    assert_eq!(forced["routing_target"], bob.as_str(), "{forced}");
    assert_eq!(forced["ignore_capacity"], true);
    assert_eq!(forced["assignment_status"], "reserved");
    assert_eq!(
        forced["task_queue_sid"],
        sales.as_str(),
        "counted in TaskQueueSid"
    );
    let forced = forced["sid"].as_str().expect("sid").to_string();
    let list = reservations(&app, &tenant, &ws, &forced).await;
    assert_eq!(list[0]["worker_sid"], bob.as_str());
    // Nobody else may take it: when Bob rejects it, it ends.
    let bob_reservation = list[0]["sid"].as_str().expect("sid").to_string();
    post(
        &app,
        &tenant,
        &ws.path(&format!("Tasks/{forced}/Reservations/{bob_reservation}")),
        &[("ReservationStatus", "rejected")],
    )
    .await;
    let declined = task_status(&app, &tenant, &ws, &forced).await;
    assert_eq!(declined["assignment_status"], "canceled", "{declined}");
    assert_eq!(declined["reason"], "Declined by its routing target worker");

    // A worker with capacity respected: the task waits for Bob, though Ann is free.
    let waiting = task(
        &app,
        &tenant,
        &ws,
        &[
            ("RoutingTarget", &bob),
            ("TaskQueueSid", &everyone),
            ("IgnoreCapacity", "false"),
        ],
    )
    .await;
    assert_eq!(waiting["assignment_status"], "pending", "{waiting}");
    assert_eq!(waiting["ignore_capacity"], false);
    let waiting = waiting["sid"].as_str().expect("sid").to_string();

    // A workflow, as WorkflowSid would: free Ann takes this one.
    let by_flow = task(&app, &tenant, &ws, &[("RoutingTarget", &flow)]).await;
    assert_eq!(by_flow["workflow_sid"], flow.as_str(), "{by_flow}");
    assert_eq!(by_flow["task_queue_sid"], everyone.as_str());
    let by_flow = by_flow["sid"].as_str().expect("sid").to_string();
    assert_eq!(
        statuses(&reservations(&app, &tenant, &ws, &by_flow).await),
        vec![("Ann".to_string(), "pending".to_string())]
    );

    let app = app.crash_and_restart().await;
    let after = task_status(&app, &tenant, &ws, &waiting).await;
    assert_eq!(after["assignment_status"], "pending", "{after}");
    assert_eq!(after["routing_target"], bob.as_str());
    assert_eq!(after["ignore_capacity"], false);
    // Bob comes online: the waiting task is his, not the idle Ann's.
    post(
        &app,
        &tenant,
        &ws.path(&format!("Workers/{bob}")),
        &[("ActivitySid", &ws.available)],
    )
    .await;
    let list = reservations(&app, &tenant, &ws, &waiting).await;
    assert_eq!(
        statuses(&list),
        vec![("Bob".to_string(), "pending".to_string())]
    );

    // The list filter finds the worker's tasks, the finished one from storage too.
    let mut to_bob = vec![forced.clone(), waiting.clone()];
    to_bob.sort();
    assert_eq!(
        listed_tasks(&app, &tenant, &ws, &format!("RoutingTarget={bob}")).await,
        to_bob
    );
    assert_eq!(
        listed_tasks(&app, &tenant, &ws, &format!("RoutingTarget={sales}")).await,
        vec![to_sales.clone()]
    );
    assert_eq!(
        listed_tasks(
            &app,
            &tenant,
            &ws,
            &format!("RoutingTarget={bob}&AssignmentStatus=reserved")
        )
        .await,
        vec![waiting.clone()],
        "live tasks, from memory"
    );
    assert_eq!(
        listed_tasks(&app, &tenant, &ws, &format!("RoutingTarget={flow}")).await,
        vec![by_flow.clone()],
        "a workflow's tasks"
    );
    let canceled = task_status(&app, &tenant, &ws, &forced).await;
    assert_eq!(canceled["routing_target"], bob.as_str(), "{canceled}");
    assert_eq!(canceled["ignore_capacity"], true);

    // Bad input names the parameter and creates nothing; another tenant's worker is unknown here.
    let other = app.tenant().await;
    let other_ws = workspace(&app, &other, &[]).await;
    let stranger = worker(&app, &other, &other_ws, "Zed", "{}").await;
    let before = listed_tasks(&app, &tenant, &ws, "").await;
    for (form, expected) in [
        (
            vec![
                ("RoutingTarget", stranger.as_str()),
                ("TaskQueueSid", everyone.as_str()),
            ],
            "is not a worker of this workspace",
        ),
        (
            vec![("RoutingTarget", bob.as_str())],
            "TaskQueueSid is required",
        ),
        (
            vec![
                ("RoutingTarget", sales.as_str()),
                ("IgnoreCapacity", "true"),
            ],
            "IgnoreCapacity applies only",
        ),
        (
            vec![
                ("RoutingTarget", sales.as_str()),
                ("WorkflowSid", flow.as_str()),
            ],
            "exclude each other",
        ),
        (
            vec![
                ("RoutingTarget", sales.as_str()),
                ("TaskQueueSid", everyone.as_str()),
            ],
            "differs from the RoutingTarget",
        ),
        (
            vec![("RoutingTarget", "XX123")],
            "RoutingTarget must be the sid of a worker",
        ),
        (
            vec![("RoutingTarget", "WW00000000000000000000000000000000")],
            "RoutingTarget WW00000000000000000000000000000000 is not a workflow",
        ),
        (
            vec![
                ("RoutingTarget", bob.as_str()),
                ("TaskQueueSid", "WQ00000000000000000000000000000000"),
            ],
            "is not a task queue of this workspace",
        ),
        (
            vec![
                ("WorkflowSid", flow.as_str()),
                ("TaskQueueSid", sales.as_str()),
            ],
            "TaskQueueSid applies only",
        ),
        (
            vec![
                ("RoutingTarget", bob.as_str()),
                ("TaskQueueSid", sales.as_str()),
                ("IgnoreCapacity", "perhaps"),
            ],
            "IgnoreCapacity must be true or false",
        ),
    ] {
        let (status, body) = app.post_form(&tenant, &ws.path("Tasks"), &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{form:?}: {message}");
    }
    assert_eq!(listed_tasks(&app, &tenant, &ws, "").await, before);
    app.shutdown().await;
}
