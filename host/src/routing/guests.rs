//! The `distribution` interface as modules call it: tasks and workers of the module's own
//! account, by workspace. Errors are plain sentences for the guest to log or show.

use serde_json::Value;

use super::expression::{Document, Expression};
use super::model::TaskStatus;
use super::{Routing, api, lock, views};
use crate::api::FormPairs;
use crate::runtime::bindings::{distribution, types};

impl Routing {
    pub async fn guest_create_task(
        &self,
        account_sid: &str,
        workspace_sid: &str,
        workflow_sid: &str,
        attributes: &str,
        priority: Option<i32>,
        timeout_seconds: Option<u32>,
    ) -> Result<types::Task, String> {
        let mut form = vec![
            ("WorkflowSid".to_string(), workflow_sid.to_string()),
            ("Attributes".to_string(), attributes.to_string()),
        ];
        if let Some(priority) = priority {
            form.push(("Priority".into(), priority.to_string()));
        }
        if let Some(timeout) = timeout_seconds {
            form.push(("Timeout".into(), timeout.to_string()));
        }
        let form = FormPairs(form);
        let task = self
            .read(account_sid, workspace_sid, |space| {
                api::new_task(space, &form, None)
            })
            .map_err(|e| e.message)?;
        let task = self
            .create_task(account_sid, workspace_sid, task)
            .await
            .map_err(|e| e.message)?;
        self.read(account_sid, workspace_sid, |space| {
            Ok(views::wasm_task(space, &task))
        })
        .map_err(|e| e.message)
    }

    pub async fn guest_update_task(
        &self,
        account_sid: &str,
        workspace_sid: &str,
        task_sid: &str,
        attributes: Option<&str>,
        priority: Option<i32>,
    ) -> Result<types::Task, String> {
        let attributes = attributes
            .map(|text| match serde_json::from_str::<Value>(text) {
                Ok(value @ Value::Object(_)) => Ok((text.to_string(), value)),
                _ => Err("attributes must be a JSON object".to_string()),
            })
            .transpose()?;
        self.transition(account_sid, workspace_sid, |space, fx| {
            let task = space.tasks.get(task_sid).ok_or_else(|| {
                crate::api::error::ApiError::not_found(format!(
                    "{task_sid} (only tasks not yet finished can change)"
                ))
            })?;
            if task.status.is_final() {
                return Err(crate::api::error::ApiError::invalid("the task is finished"));
            }
            if let Some((text, value)) = attributes {
                space.update_task_attributes(fx, task_sid, text, value);
            }
            if let Some(priority) = priority {
                space.reorder_task(fx, task_sid, Some(i64::from(priority.max(0))), None);
            }
            let task = space
                .tasks
                .get(task_sid)
                .ok_or_else(|| crate::api::error::ApiError::not_found(task_sid))?;
            Ok(views::wasm_task(space, task))
        })
        .await
        .map_err(|e| e.message)
    }

    pub async fn guest_instruct(
        &self,
        account_sid: &str,
        workspace_sid: &str,
        reservation_sid: &str,
        instruction: &str,
    ) -> Result<(), String> {
        let instruction: Value = serde_json::from_str::<Value>(instruction)
            .ok()
            .filter(|v: &Value| v.get("instruction").is_some_and(Value::is_string))
            .ok_or("the instruction must be a JSON object with an \"instruction\" string")?;
        self.transition(account_sid, workspace_sid, |space, fx| {
            api::apply_instruction(space, fx, reservation_sid, &instruction)
        })
        .await
        .map_err(|e| e.message)
    }

    pub fn guest_task(
        &self,
        account_sid: &str,
        workspace_sid: &str,
        task_sid: &str,
    ) -> Result<Option<types::Task>, String> {
        self.read(account_sid, workspace_sid, |space| {
            Ok(space
                .tasks
                .get(task_sid)
                .map(|t| views::wasm_task(space, t)))
        })
        .map_err(|e| e.message)
    }

    pub fn guest_worker(
        &self,
        account_sid: &str,
        workspace_sid: &str,
        worker_sid: &str,
    ) -> Result<Option<types::Worker>, String> {
        self.read(account_sid, workspace_sid, |space| {
            Ok(space
                .workers
                .get(worker_sid)
                .map(|w| views::wasm_worker(space, w)))
        })
        .map_err(|e| e.message)
    }

    pub fn guest_workers(
        &self,
        account_sid: &str,
        workspace_sid: &str,
        expression: Option<&str>,
    ) -> Result<Vec<types::Worker>, String> {
        let expression = expression
            .map(Expression::parse)
            .transpose()
            .map_err(|e| e.to_string())?;
        self.read(account_sid, workspace_sid, |space| {
            let mut workers: Vec<_> = space
                .workers
                .values()
                .filter(|w| {
                    expression
                        .as_ref()
                        .is_none_or(|e| e.evaluate(&Document(&w.attributes)))
                })
                .collect();
            workers.sort_by(|a, b| (a.date_created, &a.sid).cmp(&(b.date_created, &b.sid)));
            Ok(workers
                .into_iter()
                .map(|w| views::wasm_worker(space, w))
                .collect())
        })
        .map_err(|e| e.message)
    }

    pub fn guest_queue_statistics(
        &self,
        account_sid: &str,
        workspace_sid: &str,
        queue: &str,
    ) -> Result<distribution::QueueStatistics, String> {
        let space = self
            .space(account_sid, workspace_sid)
            .map_err(|e| e.message)?;
        let guard = lock(&space);
        let queue = super::find_queue(&guard, queue)
            .ok_or_else(|| format!("no task queue {queue:?} in this workspace"))?;
        let counts = guard.queue_counts(&queue.sid);
        let count = |status: TaskStatus| {
            u32::try_from(counts.by_status.get(status.as_str()).copied().unwrap_or(0))
                .unwrap_or(u32::MAX)
        };
        Ok(distribution::QueueStatistics {
            queue_sid: queue.sid.clone(),
            tasks_pending: count(TaskStatus::Pending),
            tasks_reserved: count(TaskStatus::Reserved),
            tasks_assigned: count(TaskStatus::Assigned),
            workers_available: u32::try_from(counts.available).unwrap_or(u32::MAX),
            workers_total: u32::try_from(counts.eligible).unwrap_or(u32::MAX),
            longest_task_waiting_seconds: counts
                .longest_waiting
                .map_or(0, |(age, _)| u32::try_from(age).unwrap_or(u32::MAX)),
        })
    }
}
