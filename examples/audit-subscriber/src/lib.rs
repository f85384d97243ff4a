//! An event-subscriber module that audits call queues: it keeps per-queue counts in the account's
//! key-value store and publishes a `queue.wait-alert` event to the channel `alerts` when a caller
//! leaves a queue after waiting longer than the threshold.
//!
//! Subscribe it to a channel selecting `queue.*` (and, to change the threshold, the channel's own
//! custom `audit.configure` events):
//!
//! ```text
//! POST /v1/Channels              UniqueName=queue-audit EventTypes=queue.* EventTypes=audit.configure AllowPublish=true
//! POST /v1/Channels              UniqueName=alerts AllowPublish=true
//! POST /v1/Channels/queue-audit/Subscribers   Type=module Module=module:audit-subscriber
//! POST /v1/Channels/queue-audit/Events        {"type": "audit.configure", "data": {"wait_threshold_ms": 30000}}
//! ```
//!
//! Keys it keeps: `audit:joined:{queue_sid}`, `audit:left:{queue_sid}`, `audit:alerts:{queue_sid}`
//! and `audit:wait-threshold-ms`.

use serde_json::{Value, json};
use switchboard_guest::event_subscriber::{Event, Guest};
use switchboard_guest::{events, kv};

/// Threshold until an `audit.configure` event sets another.
pub const DEFAULT_THRESHOLD_MS: i64 = 60_000;
/// Where alerts go.
pub const ALERT_CHANNEL: &str = "alerts";

/// What one event asks of the auditor.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Count a caller joining this queue.
    Joined {
        queue_sid: String,
    },
    /// Count a caller leaving, with how long it waited.
    Left {
        queue_sid: String,
        queue: String,
        wait_ms: i64,
    },
    /// Use a new wait threshold.
    Configure {
        threshold_ms: i64,
    },
    Ignore,
}

/// Reads an event into the step it calls for.
pub fn step(event_type: &str, data: &Value) -> Step {
    let text = |name: &str| data.get(name).and_then(Value::as_str).map(str::to_string);
    match event_type {
        "queue.member-joined" => match text("queue_sid") {
            Some(queue_sid) => Step::Joined { queue_sid },
            None => Step::Ignore,
        },
        "queue.member-left" => match (
            text("queue_sid"),
            data.get("wait_ms").and_then(Value::as_i64),
        ) {
            (Some(queue_sid), Some(wait_ms)) => Step::Left {
                queue: text("queue").unwrap_or_else(|| queue_sid.clone()),
                queue_sid,
                wait_ms,
            },
            _ => Step::Ignore,
        },
        "audit.configure" => match data.get("wait_threshold_ms").and_then(Value::as_i64) {
            Some(threshold_ms) if threshold_ms >= 0 => Step::Configure { threshold_ms },
            _ => Step::Ignore,
        },
        _ => Step::Ignore,
    }
}

/// The alert for a caller that waited `wait_ms`, if that crosses the threshold.
pub fn alert(
    queue_sid: &str,
    queue: &str,
    wait_ms: i64,
    threshold_ms: i64,
    left: i64,
) -> Option<Value> {
    (wait_ms >= threshold_ms).then(|| {
        json!({
            "queue_sid": queue_sid,
            "queue": queue,
            "wait_ms": wait_ms,
            "threshold_ms": threshold_ms,
            "callers_left": left,
        })
    })
}

fn kv_error(error: kv::KvError) -> String {
    format!("{error:?}")
}

fn threshold_ms() -> Result<i64, String> {
    let stored = kv::get("audit:wait-threshold-ms").map_err(kv_error)?;
    Ok(stored
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_THRESHOLD_MS))
}

struct Auditor;

impl Guest for Auditor {
    fn on_event(event: Event) -> Result<(), String> {
        let data: Value = serde_json::from_str(&event.data).map_err(|e| e.to_string())?;
        match step(&event.type_, &data) {
            Step::Joined { queue_sid } => {
                kv::increment(&format!("audit:joined:{queue_sid}"), 1).map_err(kv_error)?;
            }
            Step::Left {
                queue_sid,
                queue,
                wait_ms,
            } => {
                let left =
                    kv::increment(&format!("audit:left:{queue_sid}"), 1).map_err(kv_error)?;
                if let Some(alert) = alert(&queue_sid, &queue, wait_ms, threshold_ms()?, left) {
                    kv::increment(&format!("audit:alerts:{queue_sid}"), 1).map_err(kv_error)?;
                    events::publish(ALERT_CHANNEL, "queue.wait-alert", &alert.to_string())?;
                }
            }
            Step::Configure { threshold_ms } => {
                kv::set(
                    "audit:wait-threshold-ms",
                    threshold_ms.to_string().as_bytes(),
                )
                .map_err(kv_error)?;
            }
            Step::Ignore => {}
        }
        Ok(())
    }
}

switchboard_guest::export_event_subscriber!(Auditor);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_events_become_counting_steps() {
        assert_eq!(
            step("queue.member-joined", &json!({"queue_sid": "QU1"})),
            Step::Joined {
                queue_sid: "QU1".into()
            }
        );
        assert_eq!(
            step(
                "queue.member-left",
                &json!({"queue_sid": "QU1", "queue": "support", "wait_ms": 42})
            ),
            Step::Left {
                queue_sid: "QU1".into(),
                queue: "support".into(),
                wait_ms: 42
            }
        );
        assert_eq!(
            step("queue.member-left", &json!({"queue_sid": "QU1"})),
            Step::Ignore
        );
        assert_eq!(step("task.created", &json!({})), Step::Ignore);
    }

    #[test]
    fn configuration_sets_a_non_negative_threshold() {
        assert_eq!(
            step("audit.configure", &json!({"wait_threshold_ms": 500})),
            Step::Configure { threshold_ms: 500 }
        );
        assert_eq!(
            step("audit.configure", &json!({"wait_threshold_ms": -1})),
            Step::Ignore
        );
    }

    #[test]
    fn only_waits_at_or_past_the_threshold_alert() {
        assert!(alert("QU1", "support", 499, 500, 1).is_none());
        let raised = alert("QU1", "support", 500, 500, 3).expect("an alert");
        assert_eq!(raised["wait_ms"], 500);
        assert_eq!(raised["callers_left"], 3);
    }
}
