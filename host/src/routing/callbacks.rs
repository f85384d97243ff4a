//! What the routing sends to tenants' HTTP endpoints: the workspace's event callback (every event,
//! or those its EventsFilter names) and the workflow's assignment callback for each reservation.
//!
//! Both go out only after the change they describe has committed. Event callbacks of one workspace
//! are delivered in order by that workspace's own sender task, so a slow endpoint delays only its
//! own workspace. Assignment callbacks run concurrently, one task per reservation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::model::Workspace;
use super::space::Space;
use super::views::date;

/// How long an assignment callback may take, as the reference allows.
const ASSIGNMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an event callback may take.
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where a workspace's events go.
pub struct EventTarget {
    workspace_sid: String,
    url: String,
    filter: Option<Vec<String>>,
}

impl EventTarget {
    pub fn of(workspace: &Workspace) -> Option<EventTarget> {
        let url = workspace.event_callback_url.clone()?;
        let filter = workspace.events_filter.as_deref().map(|f| {
            f.split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect()
        });
        Some(EventTarget {
            workspace_sid: workspace.sid.clone(),
            url,
            filter,
        })
    }

    fn wants(&self, event_type: &str) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == event_type))
    }
}

/// The reference's parameter name for an event data field: `task_sid` → `TaskSid`.
fn pascal(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect()
}

/// The form parameters of an event callback.
pub fn event_parameters(event_type: &str, data: &Value) -> Vec<(String, String)> {
    let mut params = vec![("EventType".to_string(), event_type.to_string())];
    if let Value::Object(map) = data {
        for (key, value) in map {
            let name = match key.as_str() {
                "description" => "EventDescription".to_string(),
                "timestamp_ms" => {
                    if let Some(ms) = value.as_i64() {
                        params.push(("Timestamp".into(), (ms / 1000).to_string()));
                    }
                    "TimestampMs".to_string()
                }
                other => pascal(other),
            };
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            params.push((name, text));
        }
    }
    params
}

type Batch = (String, Vec<(String, String)>);

pub struct Callbacks {
    http: reqwest::Client,
    senders: Mutex<HashMap<String, mpsc::UnboundedSender<Batch>>>,
}

impl Callbacks {
    pub fn new(http: reqwest::Client) -> Callbacks {
        Callbacks {
            http,
            senders: Mutex::default(),
        }
    }

    /// Queues a transition's events for the workspace's event callback.
    pub fn events(&self, target: &EventTarget, events: Vec<(String, String)>) {
        let wanted: Vec<(String, String)> = events
            .into_iter()
            .filter(|(event_type, _)| target.wants(event_type))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        let sender = senders
            .entry(target.workspace_sid.clone())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(deliver(self.http.clone(), rx));
                tx
            });
        let _ = sender.send((target.url.clone(), wanted));
    }

    /// Posts a reservation to one assignment callback URL. `None` = the request failed (the
    /// fallback is next); `Some(None)` = answered without an instruction, which leaves the
    /// reservation pending for the application to accept or reject through the REST API.
    pub async fn assign(
        &self,
        url: &str,
        parameters: &[(String, String)],
    ) -> Option<Option<Value>> {
        let response = self
            .http
            .post(url)
            .timeout(ASSIGNMENT_TIMEOUT)
            .form(parameters)
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => {
                let json = response
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/json"));
                if !json {
                    return Some(None);
                }
                let body: Option<Value> = response.json().await.ok();
                Some(body.filter(|b| b.get("instruction").is_some()))
            }
            Ok(response) => {
                tracing::info!(%url, status = %response.status(), "assignment callback failed");
                None
            }
            Err(error) => {
                tracing::info!(%url, %error, "assignment callback unreachable");
                None
            }
        }
    }
}

async fn deliver(http: reqwest::Client, mut rx: mpsc::UnboundedReceiver<Batch>) {
    while let Some((url, events)) = rx.recv().await {
        for (event_type, data) in events {
            // The data was written as JSON text by this host; it always parses.
            let data: Value = serde_json::from_str(&data).unwrap_or_default();
            let parameters = event_parameters(&event_type, &data);
            let result = http
                .post(&url)
                .timeout(EVENT_TIMEOUT)
                .form(&parameters)
                .send()
                .await;
            match result {
                Ok(response) if response.status().is_success() => {}
                Ok(response) => {
                    tracing::info!(%url, %event_type, status = %response.status(), "event callback refused");
                }
                Err(error) => tracing::info!(%url, %event_type, %error, "event callback failed"),
            }
        }
    }
}

/// An assignment callback to send.
pub struct AssignmentRequest {
    pub url: Option<String>,
    pub fallback_url: Option<String>,
    pub parameters: Vec<(String, String)>,
}

impl AssignmentRequest {
    /// The request for a pending reservation whose workflow has an assignment callback URL.
    pub fn of(space: &Space, reservation_sid: &str, now: i64) -> Option<AssignmentRequest> {
        let reservation = space.reservations.get(reservation_sid)?;
        let task = space.tasks.get(&reservation.task_sid)?;
        let worker = space.workers.get(&reservation.worker_sid)?;
        let workflow = space.workflows.get(task.workflow_sid.as_deref()?)?;
        let url = workflow.assignment_callback_url.clone();
        let fallback_url = workflow.fallback_assignment_callback_url.clone();
        if url.is_none() && fallback_url.is_none() {
            return None;
        }
        let parameters = vec![
            ("AccountSid".into(), space.workspace.account_sid.clone()),
            ("WorkspaceSid".into(), space.workspace.sid.clone()),
            ("WorkflowSid".into(), workflow.sid.clone()),
            ("TaskQueueSid".into(), reservation.queue_sid.clone()),
            ("WorkerSid".into(), worker.sid.clone()),
            ("WorkerAttributes".into(), worker.attributes_text.clone()),
            ("TaskSid".into(), task.sid.clone()),
            ("TaskAttributes".into(), task.attributes_text.clone()),
            ("TaskAge".into(), task.age_seconds(now).to_string()),
            ("TaskPriority".into(), task.priority.to_string()),
            ("ReservationSid".into(), reservation.sid.clone()),
            ("Timestamp".into(), date(now)),
        ];
        Some(AssignmentRequest {
            url,
            fallback_url,
            parameters,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_data_becomes_reference_parameters() {
        let data = serde_json::json!({
            "task_sid": "WT1", "task_age": 3, "description": "Task created", "timestamp_ms": 1_700_000_000_123_i64,
            "task_queue_sid": null,
        });
        let params = event_parameters("task.created", &data);
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("EventType"), Some("task.created"));
        assert_eq!(get("TaskSid"), Some("WT1"));
        assert_eq!(get("TaskAge"), Some("3"));
        assert_eq!(get("EventDescription"), Some("Task created"));
        assert_eq!(get("Timestamp"), Some("1700000000"));
        assert_eq!(get("TimestampMs"), Some("1700000000123"));
        assert_eq!(get("TaskQueueSid"), None);
    }
}
