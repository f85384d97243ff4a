//! A workflow's configuration: the filters a task is matched against and the routing steps
//! (targets) each filter leads through, compiled once when the workflow is created or updated.
//!
//! The JSON is the reference's (`{"task_routing": {"filters": [...], "default_filter": {...}}}`),
//! plus one key of our own: `"module": "module:NAME[@VERSION]"` names a workflow-rules module whose
//! `route` chooses the targets instead of the filters (which remain the fallback).

use std::sync::Arc;

use serde_json::Value;

use super::expression::{Expression, OrderBy, Segment};

/// Largest configuration accepted, as the reference limits it.
pub const MAX_CONFIGURATION_BYTES: usize = 1_038_576;

/// A compiled workflow configuration.
#[derive(Debug, Clone)]
pub struct Configuration {
    /// A workflow-rules module deciding the targets, when named.
    pub module: Option<String>,
    pub filters: Vec<Filter>,
    /// Where a task goes when it matches no filter (or skipped out of one).
    pub default_target: Option<Arc<[Target]>>,
}

#[derive(Debug, Clone)]
pub struct Filter {
    pub name: String,
    /// Evaluated against the task's attributes, without prefix.
    pub expression: Expression,
    pub targets: Arc<[Target]>,
}

/// One routing step.
#[derive(Debug, Clone)]
pub struct Target {
    /// Task queue sid (inherited from the previous target when a later one names none).
    pub queue: String,
    /// Overrides the task's priority while it is at this step.
    pub priority: Option<i64>,
    /// Seconds this step lasts, counted on the task's age together with the earlier steps.
    pub timeout: Option<i64>,
    /// Narrows the queue's workers; attributes are prefixed `task.` or `worker.`.
    pub expression: Option<Expression>,
    pub order_by: Option<OrderBy>,
    /// Over `workers.available`, `workers.unavailable` and `workers.<ActivitySid>` of the queue.
    pub skip_if: Option<Expression>,
    pub known_worker: Option<KnownWorker>,
}

/// The one worker a step is for: named by a task attribute (a workflow's `known_worker_sid` or
/// `known_worker_friendly_name`), or given by sid when the task was created (`RoutingTarget`).
#[derive(Debug, Clone)]
pub enum KnownWorker {
    Sid(Vec<Segment>),
    FriendlyName(Vec<Segment>),
    /// `ignore_capacity`: reserved whatever the worker's activity and capacity, and whether or not
    /// the step's queue targets it, as the reference's `IgnoreCapacity` asks.
    Given {
        sid: String,
        ignore_capacity: bool,
    },
}

/// What is wrong with a configuration, naming the place (`task_routing.filters[0].targets[1].queue`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("Configuration {place}: {message}")]
pub struct ConfigurationError {
    pub place: String,
    pub message: String,
}

fn error(place: impl Into<String>, message: impl Into<String>) -> ConfigurationError {
    ConfigurationError {
        place: place.into(),
        message: message.into(),
    }
}

/// A whole number given as a JSON number or as a numeric string (the reference's examples do both).
fn whole_number(value: &Value, place: &str) -> Result<i64, ConfigurationError> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .ok_or_else(|| error(place, "must be a whole number")),
        Value::String(text) => text
            .trim()
            .parse()
            .map_err(|_| error(place, format!("must be a whole number, not {text:?}"))),
        _ => Err(error(place, "must be a whole number")),
    }
}

fn text<'a>(value: &'a Value, place: &str) -> Result<&'a str, ConfigurationError> {
    value
        .as_str()
        .ok_or_else(|| error(place, "must be a string"))
}

fn expression(value: &Value, place: &str) -> Result<Expression, ConfigurationError> {
    Expression::parse(text(value, place)?).map_err(|e| error(place, e.to_string()))
}

/// `task.agent_sid` → the task attribute path `agent_sid`.
fn task_attribute(value: &Value, place: &str) -> Result<Vec<Segment>, ConfigurationError> {
    let text = text(value, place)?;
    let parsed = Expression::parse(&format!("{text} == null"))
        .map_err(|_| error(place, format!("{text:?} is not an attribute path")))?;
    match parsed.paths().as_slice() {
        [path] if path.len() > 1 && path[0] == Segment::Key("task".into()) => {
            Ok(path[1..].to_vec())
        }
        _ => Err(error(
            place,
            format!("must name a task attribute such as task.agent_sid, not {text:?}"),
        )),
    }
}

/// Parses and checks a configuration. `queue_exists` says whether a task queue sid belongs to the
/// workspace, so a workflow can never point at a queue that is not there.
pub fn parse(
    source: &str,
    queue_exists: &dyn Fn(&str) -> bool,
) -> Result<Configuration, ConfigurationError> {
    if source.len() > MAX_CONFIGURATION_BYTES {
        return Err(error(
            "",
            format!("is larger than {MAX_CONFIGURATION_BYTES} bytes"),
        ));
    }
    let root: Value =
        serde_json::from_str(source).map_err(|e| error("", format!("is not valid JSON: {e}")))?;
    let Value::Object(root) = root else {
        return Err(error("", "must be a JSON object"));
    };
    let module = match root.get("module") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let uri = text(value, "module")?;
            match crate::modules::ModuleUri::parse(uri) {
                Some(Ok(_)) => Some(uri.to_string()),
                Some(Err(message)) => return Err(error("module", message)),
                None => {
                    return Err(error(
                        "module",
                        format!(
                            "{uri:?} is not a module URI: use module:NAME or module:NAME@VERSION"
                        ),
                    ));
                }
            }
        }
    };
    let routing = match root.get("task_routing") {
        Some(Value::Object(routing)) => routing,
        Some(_) => return Err(error("task_routing", "must be an object")),
        None if module.is_some() => &serde_json::Map::new(),
        None => {
            return Err(error(
                "task_routing",
                "is required: {\"task_routing\": {\"filters\": [...], \"default_filter\": {\"queue\": \"WQ...\"}}}",
            ));
        }
    };
    let mut filters = Vec::new();
    match routing.get("filters") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                filters.push(filter(item, index, queue_exists)?);
            }
        }
        Some(_) => return Err(error("task_routing.filters", "must be an array")),
    }
    let default_target = match routing.get("default_filter") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let place = "task_routing.default_filter";
            let step = target(value, place, None, queue_exists)?;
            if step.timeout.is_some() {
                return Err(error(
                    place,
                    "takes no timeout: tasks wait there until their TTL",
                ));
            }
            Some(Arc::from(vec![step]))
        }
    };
    Ok(Configuration {
        module,
        filters,
        default_target,
    })
}

fn filter(
    value: &Value,
    index: usize,
    queue_exists: &dyn Fn(&str) -> bool,
) -> Result<Filter, ConfigurationError> {
    let place = format!("task_routing.filters[{index}]");
    let Value::Object(object) = value else {
        return Err(error(place, "must be an object"));
    };
    let name = match object.get("filter_friendly_name") {
        Some(value) => text(value, &format!("{place}.filter_friendly_name"))?.to_string(),
        None => format!("filter {index}"),
    };
    let expression = match object.get("expression") {
        Some(value) => expression(value, &format!("{place}.expression"))?,
        None => return Err(error(format!("{place}.expression"), "is required")),
    };
    let Some(Value::Array(items)) = object.get("targets") else {
        return Err(error(
            format!("{place}.targets"),
            "is required: an array of routing steps",
        ));
    };
    if items.is_empty() {
        return Err(error(format!("{place}.targets"), "must not be empty"));
    }
    let mut targets: Vec<Target> = Vec::with_capacity(items.len());
    for (step, item) in items.iter().enumerate() {
        let inherited = targets.last().map(|t| t.queue.clone());
        targets.push(target(
            item,
            &format!("{place}.targets[{step}]"),
            inherited,
            queue_exists,
        )?);
    }
    Ok(Filter {
        name,
        expression,
        targets: Arc::from(targets),
    })
}

fn target(
    value: &Value,
    place: &str,
    inherited_queue: Option<String>,
    queue_exists: &dyn Fn(&str) -> bool,
) -> Result<Target, ConfigurationError> {
    let Value::Object(object) = value else {
        return Err(error(place, "must be an object"));
    };
    let queue = match object.get("queue") {
        Some(value) => {
            let sid = text(value, &format!("{place}.queue"))?;
            if !queue_exists(sid) {
                return Err(error(
                    format!("{place}.queue"),
                    format!("{sid:?} is not a task queue of this workspace"),
                ));
            }
            sid.to_string()
        }
        None => inherited_queue
            .ok_or_else(|| error(format!("{place}.queue"), "is required on the first target"))?,
    };
    let priority = object
        .get("priority")
        .filter(|v| !v.is_null())
        .map(|v| whole_number(v, &format!("{place}.priority")))
        .transpose()?;
    let timeout = object
        .get("timeout")
        .filter(|v| !v.is_null())
        .map(|v| whole_number(v, &format!("{place}.timeout")))
        .transpose()?;
    if timeout.is_some_and(|t| t <= 0) {
        return Err(error(
            format!("{place}.timeout"),
            "must be a positive number of seconds",
        ));
    }
    let target_expression = object
        .get("expression")
        .filter(|v| !v.is_null())
        .map(|v| expression(v, &format!("{place}.expression")))
        .transpose()?;
    if let Some(compiled) = &target_expression {
        for path in compiled.paths() {
            let prefixed = matches!(path.first(), Some(Segment::Key(root)) if root == "task" || root == "worker");
            if !prefixed || path.len() < 2 {
                return Err(error(
                    format!("{place}.expression"),
                    "attributes in a target expression must be prefixed with task. or worker.",
                ));
            }
        }
    }
    let order_by = object
        .get("order_by")
        .filter(|v| !v.is_null())
        .map(|v| {
            let place = format!("{place}.order_by");
            OrderBy::parse(text(v, &place)?).map_err(|e| error(place, e.to_string()))
        })
        .transpose()?;
    let skip_if = object
        .get("skip_if")
        .filter(|v| !v.is_null())
        .map(|v| expression(v, &format!("{place}.skip_if")))
        .transpose()?;
    let by_sid = object.get("known_worker_sid").filter(|v| !v.is_null());
    let by_name = object
        .get("known_worker_friendly_name")
        .filter(|v| !v.is_null());
    let known_worker = match (by_sid, by_name) {
        (Some(_), Some(_)) => {
            return Err(error(
                place,
                "a target may name known_worker_sid or known_worker_friendly_name, not both",
            ));
        }
        (Some(v), None) => Some(KnownWorker::Sid(task_attribute(
            v,
            &format!("{place}.known_worker_sid"),
        )?)),
        (None, Some(v)) => Some(KnownWorker::FriendlyName(task_attribute(
            v,
            &format!("{place}.known_worker_friendly_name"),
        )?)),
        (None, None) => None,
    };
    Ok(Target {
        queue,
        priority,
        timeout,
        expression: target_expression,
        order_by,
        skip_if,
        known_worker,
    })
}

impl Configuration {
    /// The first filter whose expression the task's attributes match.
    pub fn matching_filter(&self, attributes: &Value, from: usize) -> Option<usize> {
        let document = super::expression::Document(attributes);
        self.filters
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, filter)| filter.expression.evaluate(&document))
            .map(|(index, _)| index)
    }

    /// Every task queue the configuration routes to.
    pub fn queues(&self) -> impl Iterator<Item = &str> {
        self.filters
            .iter()
            .flat_map(|f| f.targets.iter())
            .chain(self.default_target.iter().flat_map(|t| t.iter()))
            .map(|t| t.queue.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q1: &str = "WQ00000000000000000000000000000001";
    const Q2: &str = "WQ00000000000000000000000000000002";

    fn exists(sid: &str) -> bool {
        sid == Q1 || sid == Q2
    }

    #[test]
    fn filters_targets_and_default_compile() {
        let text = format!(
            r#"{{"task_routing": {{"filters": [
                {{"filter_friendly_name": "spanish", "expression": "language == 'es'",
                  "targets": [{{"queue": "{Q1}", "timeout": "10", "priority": 5, "expression": "task.level <= worker.level"}},
                              {{"timeout": 20, "skip_if": "workers.available == 0"}}]}}],
              "default_filter": {{"queue": "{Q2}"}}}}}}"#
        );
        let config = parse(&text, &exists).expect("valid configuration");
        assert_eq!(config.filters.len(), 1);
        let targets = &config.filters[0].targets;
        assert_eq!(targets[0].timeout, Some(10));
        assert_eq!(targets[0].priority, Some(5));
        assert_eq!(targets[1].queue, Q1, "later targets inherit the queue");
        assert!(targets[1].skip_if.is_some());
        assert_eq!(
            config.matching_filter(&serde_json::json!({"language": "es"}), 0),
            Some(0)
        );
        assert_eq!(
            config.matching_filter(&serde_json::json!({"language": "en"}), 0),
            None
        );
        assert_eq!(
            config.default_target.as_ref().map(|t| t[0].queue.as_str()),
            Some(Q2)
        );
    }

    #[test]
    fn mistakes_name_their_place() {
        let cases = [
            ("not json", ""),
            (
                r#"{"task_routing": {"filters": [{"expression": "a ==", "targets": [{"queue": "WQ00000000000000000000000000000001"}]}]}}"#,
                "task_routing.filters[0].expression",
            ),
            (
                r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "WQ99999999999999999999999999999999"}]}]}}"#,
                "task_routing.filters[0].targets[0].queue",
            ),
            (
                r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"timeout": 5}]}]}}"#,
                "task_routing.filters[0].targets[0].queue",
            ),
            (
                r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "WQ00000000000000000000000000000001", "expression": "level > 2"}]}]}}"#,
                "task_routing.filters[0].targets[0].expression",
            ),
            (
                r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "WQ00000000000000000000000000000001", "timeout": 0}]}]}}"#,
                "task_routing.filters[0].targets[0].timeout",
            ),
            (
                r#"{"task_routing": {"default_filter": {"queue": "WQ00000000000000000000000000000001", "timeout": 5}}}"#,
                "task_routing.default_filter",
            ),
            (
                r#"{"task_routing": {"filters": [{"expression": "1==1", "targets": [{"queue": "WQ00000000000000000000000000000001", "known_worker_sid": "task.a", "known_worker_friendly_name": "task.b"}]}]}}"#,
                "task_routing.filters[0].targets[0]",
            ),
        ];
        for (text, place) in cases {
            let failure = parse(text, &exists).expect_err(text);
            assert_eq!(failure.place, place, "{text}: {failure}");
        }
    }

    #[test]
    fn known_worker_names_a_task_attribute() {
        let text = format!(
            r#"{{"task_routing": {{"filters": [{{"expression": "1==1", "targets": [{{"queue": "{Q1}", "known_worker_sid": "task.agent_sid", "timeout": 30}}]}}]}}}}"#
        );
        let config = parse(&text, &exists).expect("valid");
        match &config.filters[0].targets[0].known_worker {
            Some(KnownWorker::Sid(path)) => {
                assert_eq!(path, &vec![Segment::Key("agent_sid".into())])
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
