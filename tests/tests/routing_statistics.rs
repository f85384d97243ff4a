//! TaskRouter statistics and events end to end: one task routed, accepted and completed, then the
//! realtime figures (live state), the cumulative figures (counted from the event log over a
//! window on the host's manual clock), the combined and bulk forms, the Events list, and the
//! answers to bad input.

use reqwest::StatusCode;
use serde_json::Value;
use switchboard_host::clock::ClockKind;
use switchboard_tests::{TestApp, get, json, post};

fn sid(body: &Value) -> String {
    body["sid"].as_str().expect("sid").to_string()
}

fn workers_in(statistics: &Value, activity: &str) -> Value {
    statistics["activity_statistics"]
        .as_array()
        .expect("activity_statistics")
        .iter()
        .find(|a| a["friendly_name"] == activity)
        .map_or(Value::Null, |a| a["workers"].clone())
}

#[tokio::test]
async fn statistics_and_events_follow_a_task_through_its_life() {
    let app = TestApp::spawn_with(|config| config.telephony.clock = ClockKind::Manual).await;
    let tenant = app.tenant().await;
    let other = app.tenant().await;

    let ws = sid(&post(
        &app,
        &tenant,
        "/v1/Workspaces",
        &[("FriendlyName", "stats")],
    )
    .await);
    let path = |rest: &str| format!("/v1/Workspaces/{ws}/{rest}");
    let activities = get(&app, &tenant, &path("Activities")).await;
    let activity = |name: &str| {
        activities["activities"]
            .as_array()
            .expect("activities")
            .iter()
            .find(|a| a["friendly_name"] == name)
            .map(sid)
            .expect("default activity")
    };
    let (available, offline) = (activity("Available"), activity("Offline"));
    let worker = sid(&post(
        &app,
        &tenant,
        &path("Workers"),
        &[
            ("FriendlyName", "alice"),
            ("Attributes", r#"{"team": "support"}"#),
            ("ActivitySid", &available),
        ],
    )
    .await);
    let queue = sid(&post(
        &app,
        &tenant,
        &path("TaskQueues"),
        &[
            ("FriendlyName", "support"),
            ("TargetWorkers", r#"team == "support""#),
        ],
    )
    .await);
    let configuration =
        format!(r#"{{"task_routing": {{"default_filter": {{"queue": "{queue}"}}}}}}"#);
    let workflow = sid(&post(
        &app,
        &tenant,
        &path("Workflows"),
        &[
            ("FriendlyName", "router"),
            ("Configuration", &configuration),
        ],
    )
    .await);

    // The task is reserved for the only worker at once; she accepts 30 seconds later.
    let task = sid(&post(
        &app,
        &tenant,
        &path("Tasks"),
        &[
            ("WorkflowSid", &workflow),
            ("Attributes", r#"{"topic": "billing"}"#),
        ],
    )
    .await);
    let reservations = get(&app, &tenant, &path(&format!("Tasks/{task}/Reservations"))).await;
    let reservation = sid(&reservations["reservations"][0]);
    app.advance_clock(30_000).await;
    post(
        &app,
        &tenant,
        &path(&format!("Tasks/{task}/Reservations/{reservation}")),
        &[("ReservationStatus", "accepted")],
    )
    .await;

    let realtime = get(
        &app,
        &tenant,
        &path(&format!("TaskQueues/{queue}/RealTimeStatistics")),
    )
    .await;
    assert_eq!(realtime["tasks_by_status"]["assigned"], 1, "{realtime}");
    assert_eq!(realtime["tasks_by_status"]["pending"], 0);
    assert_eq!(realtime["tasks_by_priority"], json!({"0": 1}));
    assert_eq!(realtime["total_tasks"], 1);
    assert_eq!(realtime["total_eligible_workers"], 1);
    assert_eq!(realtime["total_available_workers"], 1);
    assert_eq!(
        realtime["longest_task_waiting_sid"],
        Value::Null,
        "assigned is not waiting"
    );
    assert_eq!(
        realtime["activity_statistics"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(workers_in(&realtime, "Available"), 1);
    assert_eq!(realtime["task_queue_sid"], queue.as_str());
    assert!(
        realtime["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/RealTimeStatistics")),
        "{realtime}"
    );
    let (status, body) = app
        .get(
            &tenant,
            &path(&format!(
                "TaskQueues/{queue}/RealTimeStatistics?TaskChannel=sms"
            )),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total_tasks"], 0, "the task is on the default channel");
    let workflow_realtime = get(
        &app,
        &tenant,
        &path(&format!("Workflows/{workflow}/RealTimeStatistics")),
    )
    .await;
    assert_eq!(workflow_realtime["total_tasks"], 1, "{workflow_realtime}");
    assert_eq!(workflow_realtime["workflow_sid"], workflow.as_str());

    // The bulk form answers on the literal route, not the queue-update route; JSON or form.
    let response = app
        .client
        .post(app.path(&path("TaskQueues/RealTimeStatistics")))
        .basic_auth(&tenant.sid, Some(&tenant.token))
        .json(&json!({"QueueSids": [queue]}))
        .send()
        .await
        .expect("bulk");
    assert_eq!(response.status(), StatusCode::OK);
    let bulk: Value = response.json().await.expect("json");
    assert_eq!(bulk["task_queue_response_count"], 1, "{bulk}");
    assert_eq!(bulk["task_queue_data"][0]["task_queue_sid"], queue.as_str());
    assert_eq!(bulk["task_queue_data"][0]["total_tasks"], 1);
    assert_eq!(bulk["workspace_sid"], ws.as_str());
    let bulk = post(
        &app,
        &tenant,
        &path("TaskQueues/RealTimeStatistics"),
        &[("QueueSids", &queue), ("QueueSids", &queue)],
    )
    .await;
    assert_eq!(bulk["task_queue_response_count"], 1, "{bulk}");
    let (status, body) = app
        .post_form(
            &tenant,
            &path("TaskQueues/RealTimeStatistics"),
            &[("QueueSids", "WQ00000000000000000000000000000000")],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    post(
        &app,
        &tenant,
        &path(&format!("Tasks/{task}")),
        &[("AssignmentStatus", "completed"), ("Reason", "done")],
    )
    .await;

    let realtime = get(
        &app,
        &tenant,
        &path(&format!("TaskQueues/{queue}/RealTimeStatistics")),
    )
    .await;
    assert_eq!(realtime["total_tasks"], 0, "{realtime}");
    assert_eq!(realtime["total_eligible_workers"], 1);
    let cumulative = get(
        &app,
        &tenant,
        &path(&format!("TaskQueues/{queue}/CumulativeStatistics")),
    )
    .await;
    for (field, expected) in [
        ("reservations_created", 1),
        ("reservations_accepted", 1),
        ("reservations_rejected", 0),
        ("tasks_completed", 1),
        ("tasks_entered", 1),
        ("tasks_canceled", 0),
        ("avg_task_acceptance_time", 30),
    ] {
        assert_eq!(cumulative[field], expected, "{field}: {cumulative}");
    }
    assert_eq!(
        cumulative["wait_duration_until_accepted"],
        json!({"avg": 30, "min": 30, "max": 30, "total": 30})
    );
    assert_eq!(
        cumulative["wait_duration_in_queue_until_accepted"],
        json!({"avg": 30, "min": 30, "max": 30, "total": 30}),
        "the task waited in this queue from its creation"
    );
    assert_eq!(cumulative["split_by_wait_time"], Value::Null);
    let split = get(
        &app,
        &tenant,
        &path(&format!(
            "TaskQueues/{queue}/CumulativeStatistics?SplitByWaitTime=10,60"
        )),
    )
    .await;
    assert_eq!(
        split["split_by_wait_time"]["10"]["above"]["reservations_accepted"], 1,
        "{split}"
    );
    assert_eq!(
        split["split_by_wait_time"]["60"]["below"]["reservations_accepted"],
        1
    );

    let workflow_cumulative = get(
        &app,
        &tenant,
        &path(&format!("Workflows/{workflow}/CumulativeStatistics")),
    )
    .await;
    assert_eq!(
        workflow_cumulative["tasks_entered"], 1,
        "{workflow_cumulative}"
    );
    assert_eq!(workflow_cumulative["tasks_timed_out_in_workflow"], 0);
    let workflow_statistics = get(
        &app,
        &tenant,
        &path(&format!("Workflows/{workflow}/Statistics")),
    )
    .await;
    assert_eq!(
        workflow_statistics["cumulative"]["tasks_completed"], 1,
        "{workflow_statistics}"
    );
    assert_eq!(workflow_statistics["realtime"]["total_tasks"], 0);

    let statistics = get(&app, &tenant, &path("Statistics")).await;
    assert_eq!(statistics["cumulative"]["tasks_created"], 1, "{statistics}");
    assert_eq!(statistics["cumulative"]["tasks_completed"], 1);
    assert_eq!(statistics["realtime"]["total_workers"], 1);
    assert_eq!(statistics["realtime"]["total_tasks"], 0);
    assert_eq!(statistics["workspace_sid"], ws.as_str());
    assert_eq!(statistics["account_sid"], tenant.sid.as_str());
    assert!(
        statistics["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/Statistics"))
    );
    let workspace_realtime = get(&app, &tenant, &path("RealTimeStatistics")).await;
    assert_eq!(
        workers_in(&workspace_realtime, "Available"),
        1,
        "{workspace_realtime}"
    );

    let listed = get(&app, &tenant, &path("TaskQueues/Statistics")).await;
    assert_eq!(listed["meta"]["key"], "task_queues_statistics", "{listed}");
    let entries = listed["task_queues_statistics"]
        .as_array()
        .expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["task_queue_sid"], queue.as_str());
    assert_eq!(entries[0]["cumulative"]["reservations_accepted"], 1);
    assert_eq!(entries[0]["realtime"]["total_eligible_workers"], 1);
    let none = get(
        &app,
        &tenant,
        &path("TaskQueues/Statistics?FriendlyName=sales"),
    )
    .await;
    assert_eq!(none["task_queues_statistics"], json!([]));

    // She has been Available for 90 seconds when she goes Offline.
    app.advance_clock(60_000).await;
    post(
        &app,
        &tenant,
        &path(&format!("Workers/{worker}")),
        &[("ActivitySid", &offline)],
    )
    .await;
    let workers = get(&app, &tenant, &path("Workers/Statistics")).await;
    let durations = workers["cumulative"]["activity_durations"]
        .as_array()
        .expect("durations");
    assert_eq!(durations.len(), 3, "{workers}");
    let time_available = durations
        .iter()
        .find(|d| d["sid"] == available.as_str())
        .expect("Available");
    assert_eq!(time_available["total"], 90, "{workers}");
    assert_eq!(workers["cumulative"]["reservations_accepted"], 1);
    assert_eq!(workers["realtime"]["total_workers"], 1);
    assert_eq!(workers_in(&workers["realtime"], "Offline"), 1);
    let members = get(
        &app,
        &tenant,
        &path(&format!("Workers/Statistics?TaskQueueSid={queue}")),
    )
    .await;
    assert_eq!(members["realtime"]["total_workers"], 1, "{members}");
    assert_eq!(members["cumulative"]["reservations_created"], 1);
    let nobody = get(&app, &tenant, &path("Workers/Statistics?FriendlyName=bob")).await;
    assert_eq!(nobody["realtime"]["total_workers"], 0, "{nobody}");
    assert_eq!(nobody["cumulative"]["reservations_created"], 0);
    let workers_realtime = get(&app, &tenant, &path("Workers/RealTimeStatistics")).await;
    assert_eq!(workers_realtime["total_workers"], 1, "{workers_realtime}");
    let workers_cumulative = get(&app, &tenant, &path("Workers/CumulativeStatistics")).await;
    assert_eq!(
        workers_cumulative["reservations_created"], 1,
        "{workers_cumulative}"
    );
    let one = get(
        &app,
        &tenant,
        &path(&format!("Workers/{worker}/Statistics")),
    )
    .await;
    assert_eq!(one["worker_sid"], worker.as_str(), "{one}");
    assert_eq!(one["cumulative"]["tasks_assigned"], 1);
    assert_eq!(one["cumulative"]["reservations_accepted"], 1);
    // The literal statistics routes leave the worker's own route alone.
    let fetched = get(&app, &tenant, &path(&format!("Workers/{worker}"))).await;
    assert_eq!(fetched["sid"], worker.as_str());

    // Events: by type, by task, one by sid.
    let accepted = get(
        &app,
        &tenant,
        &path("Events?EventType=reservation.accepted"),
    )
    .await;
    let events = accepted["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{accepted}");
    assert_eq!(events[0]["resource_sid"], reservation.as_str());
    assert_eq!(events[0]["resource_type"], "reservation");
    assert!(
        events[0]["resource_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/Tasks/{task}/Reservations/{reservation}"))),
        "{accepted}"
    );
    assert_eq!(events[0]["event_data"]["worker_sid"], worker.as_str());
    assert_eq!(events[0]["workspace_sid"], ws.as_str());
    let event = sid(&events[0]);
    let fetched = get(&app, &tenant, &path(&format!("Events/{event}"))).await;
    assert_eq!(fetched["event_type"], "reservation.accepted", "{fetched}");
    let of_task = get(&app, &tenant, &path(&format!("Events?TaskSid={task}"))).await;
    let types: Vec<&str> = of_task["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    for expected in [
        "task.created",
        "reservation.created",
        "reservation.accepted",
        "task.completed",
    ] {
        assert!(
            types.contains(&expected),
            "{expected} missing from {types:?}"
        );
    }
    assert!(
        of_task["events"]
            .as_array()
            .expect("events")
            .iter()
            .all(|e| e["event_data"]["task_sid"] == task.as_str()),
        "{of_task}"
    );

    // Twenty minutes on, the default window (15 minutes) no longer holds the task; 60 does.
    app.advance_clock(20 * 60_000).await;
    let recent = get(
        &app,
        &tenant,
        &path(&format!("TaskQueues/{queue}/CumulativeStatistics")),
    )
    .await;
    assert_eq!(recent["reservations_created"], 0, "{recent}");
    let hour = get(
        &app,
        &tenant,
        &path(&format!(
            "TaskQueues/{queue}/CumulativeStatistics?Minutes=60"
        )),
    )
    .await;
    assert_eq!(hour["reservations_created"], 1, "{hour}");
    let old_events = get(&app, &tenant, &path("Events")).await;
    assert_eq!(old_events["events"], json!([]), "{old_events}");

    // Another account's workspace is not found; unknown resources are not found; bad input is
    // refused naming the parameter.
    for rest in [
        "Statistics",
        "Events",
        format!("TaskQueues/{queue}/RealTimeStatistics").as_str(),
    ] {
        let (status, body) = app.get(&other, &path(rest)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{rest}: {body}");
    }
    for rest in [
        "TaskQueues/WQ00000000000000000000000000000000/Statistics",
        "Workflows/WW00000000000000000000000000000000/CumulativeStatistics",
        "Workers/WK00000000000000000000000000000000/Statistics",
        "Events/EV00000000000000000000000000000000",
    ] {
        let (status, body) = app.get(&tenant, &path(rest)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{rest}: {body}");
    }
    for (rest, parameter) in [
        ("CumulativeStatistics?StartDate=yesterday", "StartDate"),
        ("Events?Minutes=0", "Minutes"),
        ("Statistics?TaskChannel=fax", "TaskChannel"),
    ] {
        let (status, body) = app.get(&tenant, &path(rest)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{rest}: {body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains(parameter)),
            "{rest}: {body}"
        );
    }
    app.shutdown().await;
}
