//! The routing and scoring rules, as pure functions of the attribute JSON: no host calls, so they
//! run (and are tested) natively. The crate root documents the behaviour; `lib.rs` wires these
//! functions to the host's `route` and `score` exports.

use serde_json::{Map, Value};
use switchboard_guest::workflow_rules::{RoutingDecision, RoutingTarget};

/// The lowest skill level a worker can have and still hold the skill.
pub(crate) const MIN_LEVEL: i64 = 1;
/// The highest skill level; higher stored levels count as this one.
pub(crate) const MAX_LEVEL: i64 = 5;

/// Points per skill level: the skill is what the task is about, so it dominates the score.
pub(crate) const LEVEL_WEIGHT: f64 = 10.0;
/// Points for a worker who speaks the task's language.
pub(crate) const LANGUAGE_BONUS: f64 = 5.0;
/// Points taken off per task the worker already has: one level outweighs three tasks of load, not
/// four.
pub(crate) const LOAD_PENALTY: f64 = 3.0;

/// Words of the routing expression language. A skill spelled like one is refused even though it
/// is a plain identifier, so that `worker.skills.<skill>` can never be read as an operator or a
/// literal.
const RESERVED_WORDS: [&str; 9] = [
    "and", "or", "not", "in", "has", "contains", "true", "false", "null",
];

/// What `route` decided for a task, with what the log line needs to explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Try the skill's queue with a level floor for `escalate_after_seconds`, then anyone in it.
    Targets {
        skill: String,
        queue: String,
        min_level: i64,
        escalate_after_seconds: u32,
    },
    /// Leave the task to the workflow's static filters.
    UseConfiguration { why: String },
    /// Cancel the task.
    Cancel { reason: String },
}

impl Route {
    /// The decision handed back to the host.
    pub(crate) fn decision(&self) -> RoutingDecision {
        match self {
            Route::Targets {
                skill,
                queue,
                min_level,
                escalate_after_seconds,
            } => RoutingDecision::Targets(vec![
                RoutingTarget {
                    queue: queue.clone(),
                    expression: Some(level_expression(skill, *min_level)),
                    priority: None,
                    timeout_seconds: Some(*escalate_after_seconds),
                },
                RoutingTarget {
                    queue: queue.clone(),
                    expression: None,
                    priority: None,
                    timeout_seconds: None,
                },
            ]),
            Route::UseConfiguration { .. } => RoutingDecision::UseConfiguration,
            Route::Cancel { reason } => RoutingDecision::Cancel(reason.clone()),
        }
    }

    /// Name/value pairs describing the decision, for the log line.
    pub(crate) fn log_fields(&self) -> Vec<(String, String)> {
        let field = |name: &str, value: String| (name.to_string(), value);
        match self {
            Route::Targets {
                skill,
                queue,
                min_level,
                escalate_after_seconds,
            } => vec![
                field("decision", "targets".to_string()),
                field("skill", skill.clone()),
                field("queue", queue.clone()),
                field("min_level", min_level.to_string()),
                field("escalate_after_seconds", escalate_after_seconds.to_string()),
            ],
            Route::UseConfiguration { why } => vec![
                field("decision", "use-configuration".to_string()),
                field("why", why.clone()),
            ],
            Route::Cancel { reason } => vec![
                field("decision", "cancel".to_string()),
                field("reason", reason.clone()),
            ],
        }
    }
}

/// The worker expression of the first target: `worker.skills.<skill> >= <min_level>`.
///
/// `skill` must have passed [`check_skill`], so it is a plain identifier and cannot change the
/// shape of the expression.
fn level_expression(skill: &str, min_level: i64) -> String {
    format!("worker.skills.{skill} >= {min_level}")
}

/// Decides how to route a task with these attributes.
///
/// `default_escalate_after` supplies the first target's timeout when the task does not set
/// `escalate_after`; it is called only then, so a task that needs no default costs no store read.
pub(crate) fn route(attributes: &str, default_escalate_after: impl FnOnce() -> u32) -> Route {
    let use_configuration = |why: &str| Route::UseConfiguration {
        why: why.to_string(),
    };
    let Some(attributes) = parse_object(attributes) else {
        return use_configuration("task attributes are not a JSON object");
    };
    let skill = match field(&attributes, "skill") {
        None => return use_configuration("task has no skill attribute"),
        Some(Value::String(skill)) => skill,
        Some(_) => {
            return Route::Cancel {
                reason: "the task's skill attribute is not a string".to_string(),
            };
        }
    };
    if let Err(reason) = check_skill(skill) {
        return Route::Cancel { reason };
    }
    let queue = match field(&attributes, "queue") {
        None => skill.clone(),
        Some(Value::String(queue)) if !queue.trim().is_empty() => queue.clone(),
        Some(_) => return use_configuration("queue attribute is not a non-empty string"),
    };
    let min_level = match field(&attributes, "min_level") {
        None => MIN_LEVEL,
        Some(value) => match integer(value) {
            Some(level) => level.clamp(MIN_LEVEL, MAX_LEVEL),
            None => return use_configuration("min_level attribute is not an integer"),
        },
    };
    let escalate_after_seconds = match field(&attributes, "escalate_after") {
        None => default_escalate_after(),
        Some(value) => match integer(value) {
            Some(seconds) => clamp_seconds(seconds),
            None => return use_configuration("escalate_after attribute is not an integer"),
        },
    };
    Route::Targets {
        skill: skill.clone(),
        queue,
        min_level,
        escalate_after_seconds,
    }
}

/// Scores `worker` for a task; `None` when the worker must not get it.
pub(crate) fn score(
    task_attributes: &str,
    worker_attributes: &str,
    active_tasks: u32,
) -> Option<f64> {
    let task = parse_object(task_attributes)?;
    let worker = parse_object(worker_attributes)?;

    let skill_points = match field(&task, "skill") {
        None => 0.0,
        Some(Value::String(skill)) => {
            check_skill(skill).ok()?;
            let level = worker_level(&worker, skill)?;
            // Levels are 1..=5, exactly representable.
            level as f64 * LEVEL_WEIGHT
        }
        // `route` cancels such a task; should the host score it anyway, nobody qualifies.
        Some(_) => return None,
    };

    let language_points = match task_language(&task) {
        None => 0.0,
        Some(language) if speaks(&worker, language) => LANGUAGE_BONUS,
        Some(_) => return None,
    };

    Some(skill_points + language_points - f64::from(active_tasks) * LOAD_PENALTY)
}

/// The parsed object, or `None` when `text` is not JSON or not an object.
fn parse_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// The value of `key`; an explicit `null` counts as absent.
fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

/// A JSON integer, or a string holding a decimal integer (workflow configurations send numbers
/// both ways). Integers beyond `i64` saturate; fractions and anything else are not integers.
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_u64().map(|_| i64::MAX)),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Seconds the first target lasts when neither the task nor the store says otherwise.
pub(crate) const DEFAULT_ESCALATE_AFTER_SECONDS: u32 = 60;

/// The first target's default timeout for the raw stored value of the store key (`None` when
/// unset): decimal text, clamped like the attribute; missing or malformed means
/// [`DEFAULT_ESCALATE_AFTER_SECONDS`].
pub(crate) fn default_escalate_after(stored: Option<&[u8]>) -> u32 {
    stored
        .and_then(|raw| std::str::from_utf8(raw).ok())
        .and_then(|text| text.trim().parse::<i64>().ok())
        .map_or(DEFAULT_ESCALATE_AFTER_SECONDS, clamp_seconds)
}

/// Seconds as a target timeout: at least 1 (the host wants a positive timeout), at most `u32::MAX`.
pub(crate) fn clamp_seconds(seconds: i64) -> u32 {
    u32::try_from(seconds.max(1)).unwrap_or(u32::MAX)
}

/// `Ok` when `skill` can go into a worker expression as `worker.skills.<skill>`: a plain
/// identifier (`[A-Za-z_][A-Za-z0-9_]*`) that is not a word of the expression language.
/// Otherwise the reason the task is canceled.
pub(crate) fn check_skill(skill: &str) -> Result<(), String> {
    let mut chars = skill.chars();
    let plain = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|rest| rest.is_ascii_alphanumeric() || rest == '_');
    if !plain {
        return Err(format!(
            "skill {skill:?} is not a plain identifier (letters, digits and underscores, not \
             starting with a digit)"
        ));
    }
    if RESERVED_WORDS
        .iter()
        .any(|word| word.eq_ignore_ascii_case(skill))
    {
        return Err(format!(
            "skill {skill:?} is a word of the routing expression language"
        ));
    }
    Ok(())
}

/// The worker's level in `skill`, capped at [`MAX_LEVEL`]; `None` when the worker does not have
/// the skill (no `skills` object, no entry, or an entry that is not a positive integer).
fn worker_level(worker: &Map<String, Value>, skill: &str) -> Option<i64> {
    // Only JSON integers: the first target's expression compares the stored value as a number, so
    // a level stored as text would not pass it either.
    let level = match field(worker, "skills")?.as_object()?.get(skill)? {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_u64().map(|_| MAX_LEVEL))?,
        _ => return None,
    };
    (level >= MIN_LEVEL).then_some(level.min(MAX_LEVEL))
}

/// The language the task asks for: a non-empty string. Any other value asks for none.
fn task_language(task: &Map<String, Value>) -> Option<&str> {
    match field(task, "language") {
        Some(Value::String(language)) if !language.trim().is_empty() => Some(language.trim()),
        _ => None,
    }
}

/// Whether the worker's `languages` array holds `language`, ignoring ASCII case (language tags are
/// case-insensitive: `es-MX` and `es-mx` are the same tag).
fn speaks(worker: &Map<String, Value>, language: &str) -> bool {
    field(worker, "languages")
        .and_then(Value::as_array)
        .is_some_and(|languages| {
            languages
                .iter()
                .filter_map(Value::as_str)
                .any(|spoken| spoken.trim().eq_ignore_ascii_case(language))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `route` with a default timeout that must not be needed.
    fn route_without_default(attributes: &str) -> Route {
        route(attributes, || panic!("the default timeout was read"))
    }

    fn route_with_default(attributes: &str) -> Route {
        route(attributes, || 45)
    }

    fn targets(skill: &str, queue: &str, min_level: i64, escalate_after_seconds: u32) -> Route {
        Route::Targets {
            skill: skill.to_string(),
            queue: queue.to_string(),
            min_level,
            escalate_after_seconds,
        }
    }

    fn is_use_configuration(route: &Route) -> bool {
        matches!(route, Route::UseConfiguration { .. })
    }

    fn cancel_reason(route: Route) -> String {
        match route {
            Route::Cancel { reason } => reason,
            other => panic!("expected a cancel, got {other:?}"),
        }
    }

    #[test]
    fn no_skill_leaves_the_task_to_the_configuration() {
        for attributes in [r#"{}"#, r#"{"language":"es"}"#, r#"{"skill":null}"#] {
            let route = route_without_default(attributes);
            assert!(is_use_configuration(&route), "{attributes}: {route:?}");
            assert!(matches!(
                route.decision(),
                RoutingDecision::UseConfiguration
            ));
        }
    }

    #[test]
    fn malformed_task_attributes_leave_the_task_to_the_configuration() {
        for attributes in [
            "",
            "not json",
            r#"{"skill":"billing""#,
            "[]",
            r#""billing""#,
            "42",
        ] {
            assert!(
                is_use_configuration(&route_without_default(attributes)),
                "{attributes}"
            );
        }
    }

    #[test]
    fn skill_routes_to_its_queue_at_level_one_then_to_anyone() {
        let route = route_with_default(r#"{"skill":"billing"}"#);
        assert_eq!(route, targets("billing", "billing", 1, 45));
        let RoutingDecision::Targets(steps) = route.decision() else {
            panic!("not targets");
        };
        match steps.as_slice() {
            [
                RoutingTarget {
                    queue: first_queue,
                    expression: Some(expression),
                    priority: None,
                    timeout_seconds: Some(45),
                },
                RoutingTarget {
                    queue: second_queue,
                    expression: None,
                    priority: None,
                    timeout_seconds: None,
                },
            ] => {
                assert_eq!(first_queue, "billing");
                assert_eq!(expression, "worker.skills.billing >= 1");
                assert_eq!(second_queue, "billing");
            }
            other => panic!("unexpected targets {other:?}"),
        }
    }

    #[test]
    fn task_attributes_override_queue_level_and_timeout() {
        let route = route_without_default(
            r#"{"skill":"sales","queue":"WQ0123","min_level":3,"escalate_after":120,"language":"es"}"#,
        );
        assert_eq!(route, targets("sales", "WQ0123", 3, 120));
        let RoutingDecision::Targets(steps) = route.decision() else {
            panic!("not targets");
        };
        match steps.as_slice() {
            [first, second] => {
                assert_eq!(first.queue, "WQ0123");
                assert_eq!(
                    first.expression.as_deref(),
                    Some("worker.skills.sales >= 3")
                );
                assert_eq!(first.timeout_seconds, Some(120));
                assert_eq!(second.queue, "WQ0123");
                assert_eq!(second.expression, None);
                assert_eq!(second.timeout_seconds, None);
            }
            other => panic!("unexpected targets {other:?}"),
        }
    }

    #[test]
    fn null_optional_attributes_mean_the_defaults() {
        assert_eq!(
            route_with_default(
                r#"{"skill":"billing","queue":null,"min_level":null,"escalate_after":null}"#
            ),
            targets("billing", "billing", 1, 45)
        );
    }

    #[test]
    fn min_level_accepts_text_and_is_clamped() {
        let level = |value: &str| match route_without_default(&format!(
            r#"{{"skill":"billing","escalate_after":10,"min_level":{value}}}"#
        )) {
            Route::Targets { min_level, .. } => Some(min_level),
            _ => None,
        };
        assert_eq!(level("2"), Some(2));
        assert_eq!(level(r#"" 4 ""#), Some(4));
        assert_eq!(level("0"), Some(1));
        assert_eq!(level("-3"), Some(1));
        assert_eq!(level("9"), Some(5));
        assert_eq!(level("18446744073709551615"), Some(5));
        assert_eq!(level("2.5"), None);
        assert_eq!(level(r#""high""#), None);
        assert_eq!(level("true"), None);
        assert_eq!(level("[3]"), None);
    }

    #[test]
    fn escalate_after_accepts_text_and_is_at_least_one_second() {
        let timeout = |value: &str| match route_without_default(&format!(
            r#"{{"skill":"billing","escalate_after":{value}}}"#
        )) {
            Route::Targets {
                escalate_after_seconds,
                ..
            } => Some(escalate_after_seconds),
            _ => None,
        };
        assert_eq!(timeout("30"), Some(30));
        assert_eq!(timeout(r#""90""#), Some(90));
        assert_eq!(timeout("0"), Some(1));
        assert_eq!(timeout("-10"), Some(1));
        assert_eq!(timeout("99999999999"), Some(u32::MAX));
        assert_eq!(timeout("1.5"), None);
        assert_eq!(timeout(r#""soon""#), None);
        assert_eq!(timeout("{}"), None);
    }

    #[test]
    fn unreadable_queue_leaves_the_task_to_the_configuration() {
        for queue in [r#""""#, r#""  ""#, "7", "[]", "false"] {
            let attributes = format!(r#"{{"skill":"billing","queue":{queue}}}"#);
            assert!(
                is_use_configuration(&route_without_default(&attributes)),
                "{attributes}"
            );
        }
    }

    #[test]
    fn skill_that_is_not_a_plain_identifier_cancels_the_task() {
        for skill in [
            "",
            "bill-ing",
            "1st_line",
            "billing support",
            "billing >= 0 OR 1",
            "billing.vip",
            "caf\u{e9}",
            "billing\n",
        ] {
            let attributes = serde_json::json!({ "skill": skill }).to_string();
            let route = route_without_default(&attributes);
            let reason = cancel_reason(route.clone());
            assert!(
                reason.contains("not a plain identifier"),
                "{skill:?}: {reason}"
            );
            assert!(
                matches!(route.decision(), RoutingDecision::Cancel(sent) if sent == reason),
                "{skill:?}"
            );
        }
    }

    #[test]
    fn skill_spelled_like_an_expression_word_cancels_the_task() {
        for skill in [
            "and", "OR", "Not", "in", "HAS", "contains", "true", "False", "null",
        ] {
            let attributes = serde_json::json!({ "skill": skill }).to_string();
            let reason = cancel_reason(route_without_default(&attributes));
            assert!(reason.contains("expression language"), "{skill}: {reason}");
        }
    }

    #[test]
    fn skill_that_is_not_a_string_cancels_the_task() {
        for skill in ["3", "true", "[\"billing\"]", "{\"billing\":1}"] {
            let attributes = format!(r#"{{"skill":{skill}}}"#);
            let reason = cancel_reason(route_without_default(&attributes));
            assert!(reason.contains("not a string"), "{skill}: {reason}");
        }
    }

    #[test]
    fn plain_identifiers_are_accepted() {
        for skill in [
            "billing", "_vip", "Tier_2", "x", "android", "notary", "inbound",
        ] {
            assert_eq!(check_skill(skill), Ok(()), "{skill}");
        }
    }

    #[test]
    fn log_fields_describe_each_decision() {
        assert_eq!(
            targets("billing", "support", 2, 60).log_fields(),
            vec![
                ("decision".to_string(), "targets".to_string()),
                ("skill".to_string(), "billing".to_string()),
                ("queue".to_string(), "support".to_string()),
                ("min_level".to_string(), "2".to_string()),
                ("escalate_after_seconds".to_string(), "60".to_string()),
            ]
        );
        assert_eq!(
            route_without_default("{}").log_fields(),
            vec![
                ("decision".to_string(), "use-configuration".to_string()),
                ("why".to_string(), "task has no skill attribute".to_string()),
            ]
        );
        let cancel = route_without_default(r#"{"skill":"a-b"}"#).log_fields();
        assert_eq!(cancel[0], ("decision".to_string(), "cancel".to_string()));
        assert_eq!(cancel[1].0, "reason");
    }

    #[test]
    fn stored_default_timeout_parses_and_clamps() {
        assert_eq!(default_escalate_after(None), 60);
        assert_eq!(default_escalate_after(Some(b"90")), 90);
        assert_eq!(default_escalate_after(Some(b" 90\n")), 90);
        assert_eq!(default_escalate_after(Some(b"0")), 1);
        assert_eq!(default_escalate_after(Some(b"-5")), 1);
        assert_eq!(default_escalate_after(Some(b"99999999999")), u32::MAX);
        assert_eq!(default_escalate_after(Some(b"a minute")), 60);
        assert_eq!(default_escalate_after(Some(b"")), 60);
        assert_eq!(default_escalate_after(Some(&[0xff, 0xfe])), 60);
    }

    const BILLING_ES: &str = r#"{"skill":"billing","language":"es"}"#;
    const BILLING: &str = r#"{"skill":"billing"}"#;

    #[test]
    fn score_is_level_times_ten_plus_language_minus_load() {
        let worker = r#"{"skills":{"billing":4,"sales":2},"languages":["en","es"]}"#;
        assert_eq!(score(BILLING_ES, worker, 0), Some(45.0));
        assert_eq!(score(BILLING_ES, worker, 2), Some(39.0));
        assert_eq!(score(BILLING, worker, 2), Some(34.0));
        assert_eq!(
            score(r#"{"skill":"sales","language":"en"}"#, worker, 1),
            Some(22.0)
        );
    }

    #[test]
    fn score_may_go_negative_under_load() {
        let worker = r#"{"skills":{"billing":1}}"#;
        assert_eq!(score(BILLING, worker, 5), Some(-5.0));
    }

    #[test]
    fn one_level_outweighs_three_tasks_of_load_but_not_four() {
        let level_3 = r#"{"skills":{"billing":3}}"#;
        let level_2 = r#"{"skills":{"billing":2}}"#;
        assert!(score(BILLING, level_3, 3) > score(BILLING, level_2, 0));
        assert!(score(BILLING, level_3, 4) < score(BILLING, level_2, 0));
    }

    #[test]
    fn levels_above_five_count_as_five() {
        assert_eq!(score(BILLING, r#"{"skills":{"billing":9}}"#, 0), Some(50.0));
        assert_eq!(
            score(BILLING, r#"{"skills":{"billing":18446744073709551615}}"#, 0),
            Some(50.0)
        );
    }

    #[test]
    fn worker_without_the_skill_gets_no_score() {
        for worker in [
            r#"{}"#,
            r#"{"skills":null}"#,
            r#"{"skills":["billing"]}"#,
            r#"{"skills":{}}"#,
            r#"{"skills":{"sales":5}}"#,
            r#"{"skills":{"Billing":5}}"#,
            r#"{"skills":{"billing":0}}"#,
            r#"{"skills":{"billing":-2}}"#,
            r#"{"skills":{"billing":null}}"#,
            r#"{"skills":{"billing":"4"}}"#,
            r#"{"skills":{"billing":2.5}}"#,
            r#"{"skills":{"billing":true}}"#,
        ] {
            assert_eq!(score(BILLING, worker, 0), None, "{worker}");
        }
    }

    #[test]
    fn worker_who_does_not_speak_the_language_gets_no_score() {
        for worker in [
            r#"{"skills":{"billing":5}}"#,
            r#"{"skills":{"billing":5},"languages":[]}"#,
            r#"{"skills":{"billing":5},"languages":["en","fr"]}"#,
            r#"{"skills":{"billing":5},"languages":"es"}"#,
            r#"{"skills":{"billing":5},"languages":[["es"]]}"#,
            r#"{"skills":{"billing":5},"languages":["es-MX"]}"#,
        ] {
            assert_eq!(score(BILLING_ES, worker, 0), None, "{worker}");
        }
    }

    #[test]
    fn language_match_ignores_ascii_case_and_surrounding_space() {
        let worker = r#"{"skills":{"billing":1},"languages":[3, "EN", " Es "]}"#;
        assert_eq!(score(BILLING_ES, worker, 0), Some(15.0));
        assert_eq!(
            score(r#"{"skill":"billing","language":"en"}"#, worker, 0),
            Some(15.0)
        );
    }

    #[test]
    fn task_language_that_is_not_a_non_empty_string_is_no_requirement() {
        let worker = r#"{"skills":{"billing":2},"languages":["en"]}"#;
        for language in ["null", r#""""#, r#"" ""#, "7", r#"["es"]"#] {
            let task = format!(r#"{{"skill":"billing","language":{language}}}"#);
            assert_eq!(score(&task, worker, 0), Some(20.0), "{language}");
        }
    }

    #[test]
    fn task_without_a_skill_scores_on_language_and_load_alone() {
        let worker = r#"{"languages":["es"]}"#;
        assert_eq!(score("{}", worker, 1), Some(-3.0));
        assert_eq!(score(r#"{"language":"es"}"#, worker, 0), Some(5.0));
        assert_eq!(score(r#"{"language":"fr"}"#, worker, 0), None);
    }

    #[test]
    fn task_with_a_skill_route_would_cancel_gets_no_score() {
        let worker = r#"{"skills":{"bill-ing":5,"and":5,"3":5}}"#;
        for task in [
            r#"{"skill":"bill-ing"}"#,
            r#"{"skill":"and"}"#,
            r#"{"skill":3}"#,
        ] {
            assert_eq!(score(task, worker, 0), None, "{task}");
        }
    }

    #[test]
    fn malformed_attributes_give_no_score() {
        let worker = r#"{"skills":{"billing":3}}"#;
        for task in ["", "{", "[]", "null"] {
            assert_eq!(score(task, worker, 0), None, "task {task:?}");
        }
        for worker in ["", "{\"skills\":", "[]", "\"skills\""] {
            assert_eq!(score(BILLING, worker, 0), None, "worker {worker:?}");
        }
    }

    #[test]
    fn score_ignores_route_only_attributes() {
        // A malformed `min_level` sends the task to the configuration, but it does not exclude
        // workers if the host scores them anyway.
        let worker = r#"{"skills":{"billing":3}}"#;
        assert_eq!(
            score(
                r#"{"skill":"billing","min_level":"high","queue":7,"escalate_after":"soon"}"#,
                worker,
                0
            ),
            Some(30.0)
        );
    }
}
