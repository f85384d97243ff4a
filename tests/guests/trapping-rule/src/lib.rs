//! A workflow-rules module that does what the task's attributes tell it, traps included: a test
//! double for the host's end-to-end tests.
//!
//! `route(task)`, by the task's attributes (a JSON object), first rule that applies:
//!
//! | task attributes | `route` returns |
//! |---|---|
//! | `"trap": true` | nothing: panics (guest trap) |
//! | `"cancel": true` | `cancel("asked to cancel")` |
//! | `"queue": "<name>"` | `targets([{queue: <name>, expression: attributes.expression when it is a string, else none, priority: none, timeout: none}])` |
//! | no string `queue`, or attributes that are not a JSON object | `use-configuration` |
//!
//! `score(task, worker)`:
//!
//! | attributes | `score` returns |
//! |---|---|
//! | task has `"trap_score": true` | nothing: panics (guest trap) |
//! | worker has a number `score` | `some(score)` |
//! | otherwise (no `score`, not a number, attributes that are not a JSON object) | `none` |
//!
//! Only the boolean `true` triggers `trap`, `cancel` and `trap_score`. The module calls no host
//! interface.

use serde_json::{Map, Value};
use switchboard_guest::workflow_rules::{Guest, RoutingDecision, RoutingTarget, Task, Worker};

struct TrappingRule;

impl Guest for TrappingRule {
    fn route(task: Task) -> RoutingDecision {
        let Some(attributes) = parse_object(&task.attributes) else {
            return RoutingDecision::UseConfiguration;
        };
        if flag(&attributes, "trap") {
            panic!("trapping-rule asked to trap in route");
        }
        if flag(&attributes, "cancel") {
            return RoutingDecision::Cancel("asked to cancel".to_string());
        }
        let Some(queue) = attributes.get("queue").and_then(Value::as_str) else {
            return RoutingDecision::UseConfiguration;
        };
        RoutingDecision::Targets(vec![RoutingTarget {
            queue: queue.to_string(),
            expression: attributes
                .get("expression")
                .and_then(Value::as_str)
                .map(str::to_string),
            priority: None,
            timeout_seconds: None,
        }])
    }

    fn score(task: Task, worker: Worker) -> Option<f64> {
        if parse_object(&task.attributes).is_some_and(|attributes| flag(&attributes, "trap_score"))
        {
            panic!("trapping-rule asked to trap in score");
        }
        parse_object(&worker.attributes)?
            .get("score")
            .and_then(Value::as_f64)
    }
}

/// The parsed object, or `None` when `text` is not JSON or not an object.
fn parse_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// Whether `key` holds the boolean `true`.
fn flag(attributes: &Map<String, Value>, key: &str) -> bool {
    attributes.get(key).and_then(Value::as_bool) == Some(true)
}

switchboard_guest::export_workflow_rules!(TrappingRule);
