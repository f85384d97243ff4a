//! End-to-end semantics: documented TaskRouter examples and this implementation's rules, through
//! the public API.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::{Document, Expression, Scope, Segment, follow};

fn holds(text: &str, attributes: &Value) -> bool {
    let expression = Expression::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
    expression.evaluate(&Document(attributes))
}

/// A workflow target's scope: `task.` and `worker.` prefixes select the document.
struct Target<'a> {
    task: &'a Value,
    worker: &'a Value,
}

impl Scope for Target<'_> {
    fn lookup(&self, path: &[Segment]) -> Option<Cow<'_, Value>> {
        let (first, rest) = path.split_first()?;
        let document = match first {
            Segment::Key(prefix) if prefix == "task" => self.task,
            Segment::Key(prefix) if prefix == "worker" => self.worker,
            _ => return None,
        };
        follow(document, rest).map(Cow::Borrowed)
    }
}

#[test]
fn documented_constant_examples() {
    let none = json!({});
    assert!(holds("1 == 1", &none));
    assert!(holds("0 != 1", &none));
    assert!(holds("\"apple\" != \"orange\"", &none));
    assert!(!holds("1 == 2", &none));
    assert!(!holds("\"apple\" == 'orange'", &none));
    assert!(holds("1 == 1.0", &none));
}

#[test]
fn documented_attribute_examples() {
    assert!(holds("key > 1", &json!({"key": 2})));
    assert!(!holds("key > 1", &json!({"key": 1})));
    assert!(holds(
        "object.param != \"apple\"",
        &json!({"object": {"param": "pear"}})
    ));
    assert!(!holds(
        "object.param != \"apple\"",
        &json!({"object": {"param": "apple"}})
    ));
    assert!(holds(
        "language IN [\"en\", \"es\"]",
        &json!({"language": "es"})
    ));
    assert!(!holds(
        "language IN [\"en\", \"es\"]",
        &json!({"language": "fr"})
    ));
    let either = "(condition_a == true) OR (condition_b == true)";
    assert!(holds(
        either,
        &json!({"condition_a": false, "condition_b": true})
    ));
    assert!(!holds(
        either,
        &json!({"condition_a": false, "condition_b": false})
    ));
    let rated = "(language == \"en\" OR language == \"fr\") AND skill_rating >= 5.1";
    assert!(holds(
        rated,
        &json!({"language": "fr", "skill_rating": 5.1})
    ));
    assert!(holds(rated, &json!({"language": "en", "skill_rating": 7})));
    assert!(!holds(rated, &json!({"language": "en", "skill_rating": 5})));
    assert!(!holds(rated, &json!({"language": "de", "skill_rating": 9})));
    let skilled = "(skills HAS 'support') AND (languages HAS 'english')";
    let worker = json!({"skills": ["sales", "support"], "languages": ["english"]});
    assert!(holds(skilled, &worker));
    assert!(!holds(
        skilled,
        &json!({"skills": ["sales"], "languages": ["english"]})
    ));
    let gold = "customer_value == 'Gold' AND type == 'ticket'";
    assert!(holds(
        gold,
        &json!({"customer_value": "Gold", "type": "ticket"})
    ));
    assert!(!holds(
        gold,
        &json!({"customer_value": "Silver", "type": "ticket"})
    ));
    assert!(holds(
        "object.array[2] == 3",
        &json!({"object": {"array": [1, 2, 3]}})
    ));
    assert!(!holds(
        "object.array[2] == 3",
        &json!({"object": {"array": [3, 3]}})
    ));
    assert!(holds(
        "preferred_agents != null",
        &json!({"preferred_agents": ["WK1"]})
    ));
    assert!(!holds("preferred_agents != null", &json!({})));
    assert!(!holds(
        "preferred_agents != null",
        &json!({"preferred_agents": null})
    ));
}

#[test]
fn lower_case_keywords() {
    let text = "worker.activity_name in ['Generally Available', 'Busy']";
    assert!(holds(text, &json!({"worker": {"activity_name": "Busy"}})));
    assert!(!holds(
        text,
        &json!({"worker": {"activity_name": "Offline"}})
    ));
    assert!(holds(
        "a == 1 and not b == 2 or c == 3",
        &json!({"a": 1, "b": 3})
    ));
}

#[test]
fn target_expression_reads_task_and_worker() {
    let expression = Expression::parse("task.subSection = worker.specializedSubField")
        .unwrap_or_else(|error| panic!("{error}"));
    let task = json!({"subSection": "billing"});
    let matching = json!({"specializedSubField": "billing"});
    let other = json!({"specializedSubField": "sales"});
    assert!(expression.evaluate(&Target {
        task: &task,
        worker: &matching
    }));
    assert!(!expression.evaluate(&Target {
        task: &task,
        worker: &other
    }));
    let listed = Expression::parse("task.language IN [worker.primary, worker.secondary]")
        .unwrap_or_else(|error| panic!("{error}"));
    let task = json!({"language": "fr"});
    let bilingual = json!({"primary": "en", "secondary": "fr"});
    assert!(listed.evaluate(&Target {
        task: &task,
        worker: &bilingual
    }));
    assert!(!listed.evaluate(&Target {
        task: &task,
        worker: &matching
    }));
}

#[test]
fn not_in_and_contains() {
    assert!(holds(
        "language NOT IN ['en', 'es']",
        &json!({"language": "fr"})
    ));
    assert!(!holds(
        "language not in ['en', 'es']",
        &json!({"language": "en"})
    ));
    assert!(holds("language NOT IN ['en']", &json!({})));
    assert!(!holds("language NOT IN 'en'", &json!({"language": "fr"})));
    assert!(!holds(
        "languages NOT IN ['en']",
        &json!({"languages": ["fr"]})
    ));
    assert!(holds("name CONTAINS 'ell'", &json!({"name": "Hello"})));
    assert!(!holds("name CONTAINS 'ELL'", &json!({"name": "Hello"})));
    assert!(!holds(
        "names CONTAINS 'ell'",
        &json!({"names": ["Hello", "ell"]})
    ));
    assert!(!holds("count CONTAINS 1", &json!({"count": 11})));
}

#[test]
fn and_binds_tighter_than_or() {
    let text = "a == 1 OR b == 1 AND c == 1";
    assert!(holds(text, &json!({"a": 1, "b": 0, "c": 0})));
    assert!(holds(text, &json!({"a": 0, "b": 1, "c": 1})));
    assert!(!holds(text, &json!({"a": 0, "b": 1, "c": 0})));
    assert!(!holds(
        "(a == 1 OR b == 1) AND c == 1",
        &json!({"a": 1, "c": 0})
    ));
}

#[test]
fn missing_attributes_are_null() {
    let none = json!({});
    assert!(holds("missing == null", &none));
    assert!(!holds("missing != null", &none));
    assert!(!holds("missing == 'x'", &none));
    assert!(holds("missing != 'x'", &none));
    assert!(!holds("missing > 1", &none));
    assert!(!holds("missing < 1", &none));
    assert!(!holds("missing HAS 'x'", &none));
    assert!(!holds("missing IN ['x']", &none));
    assert!(holds("missing IN ['x', null]", &none));
    assert!(!holds("a.b[3].c == 1", &json!({"a": {"b": [1]}})));
    assert!(holds("present != null", &json!({"present": 0})));
}

#[test]
fn type_mismatches_are_false() {
    let doc = json!({"text": "1", "number": 1, "flag": true});
    assert!(!holds("text == 1", &doc));
    assert!(!holds("text != 1", &doc));
    assert!(!holds("number == '1'", &doc));
    assert!(!holds("number != '1'", &doc));
    assert!(!holds("flag == 1", &doc));
    assert!(!holds("flag != 'true'", &doc));
    assert!(!holds("flag > false", &doc));
    assert!(holds("flag != false", &doc));
    assert!(!holds("text < 2", &doc));
    assert!(!holds("'1' IN [1, 2]", &doc));
}

#[test]
fn scalar_operators_on_arrays_are_false() {
    let doc = json!({"list": [1, 2], "object": {"a": 1}});
    assert!(!holds("list == [1, 2]", &doc));
    assert!(!holds("list != [1, 2]", &doc));
    assert!(!holds("list == 1", &doc));
    assert!(!holds("list != 1", &doc));
    assert!(!holds("list > 0", &doc));
    assert!(!holds("object == object", &doc));
    assert!(holds("list != null", &doc));
}

#[test]
fn array_operators_on_scalars_are_false() {
    let doc = json!({"name": "support", "list": ["a"]});
    assert!(!holds("name HAS 'support'", &doc));
    assert!(!holds("'support' IN name", &doc));
    assert!(!holds("list HAS ['a']", &doc));
    assert!(!holds("list IN [['a']]", &doc));
    assert!(holds("[1, 2] HAS 2", &doc));
    assert!(holds("5 IN [1, 5]", &doc));
    assert!(!holds("5 IN []", &doc));
    assert!(holds("5 NOT IN []", &doc));
}

#[test]
fn numbers_compare_numerically() {
    let doc = json!({"small": 2, "big": u64::MAX, "negative": -3, "float": 2.5});
    assert!(holds("small < 10", &doc));
    assert!(holds("big > negative", &doc));
    assert!(holds("big == 18446744073709551615", &doc));
    assert!(holds("negative <= -3", &doc));
    assert!(holds("float > small AND float < 3", &doc));
    assert!(holds("small == 2.0", &doc));
    assert!(holds("small >= 2e0", &doc));
    assert!(holds("'abc' < 'abd' AND 'b' > 'abc'", &doc));
}

#[test]
fn not_and_bare_conditions() {
    let doc = json!({"vip": true, "busy": false, "label": "true"});
    assert!(holds("NOT busy == true", &doc));
    assert!(!holds("NOT vip == true", &doc));
    assert!(holds("NOT (vip == false OR busy == true)", &doc));
    assert!(holds("vip", &doc));
    assert!(!holds("busy", &doc));
    assert!(!holds("label", &doc));
    assert!(!holds("missing", &doc));
    assert!(holds("vip AND NOT busy", &doc));
    assert!(holds("NOT NOT vip", &doc));
    assert!(holds("true", &doc));
    assert!(!holds("FALSE", &doc));
}

#[test]
fn words_that_start_with_keywords_are_paths() {
    let doc = json!({"ORDER": 1, "index": 2, "notes": "x", "android": true, "$id": 4, "_x": 5});
    assert!(holds("ORDER == 1 AND index == 2", &doc));
    assert!(holds("notes == 'x' AND android", &doc));
    assert!(holds("$id == 4 AND _x == 5", &doc));
}

#[test]
fn string_escapes() {
    let doc = json!({"quote": "it's \"here\" \\"});
    assert!(holds(r#"quote == 'it\'s "here" \\'"#, &doc));
    assert!(holds(r#"quote == "it's \"here\" \\""#, &doc));
}

#[test]
fn constant_forms_are_always_true() {
    for text in [
        "1==1",
        " 1 == 1 ",
        "true",
        "'a' == 'a'",
        "1 == 1 OR x == 2",
        "NOT 1 == 2",
    ] {
        let expression = Expression::parse(text).unwrap_or_else(|error| panic!("{error}"));
        assert!(expression.is_always_true(), "{text}");
        assert!(expression.evaluate(&Document(&json!({}))), "{text}");
    }
    for text in ["x == 1", "1 == 2", "1 == 1 AND x == 2", "1 == 2 OR x == 1"] {
        let expression = Expression::parse(text).unwrap_or_else(|error| panic!("{error}"));
        assert!(!expression.is_always_true(), "{text}");
    }
}

#[test]
fn paths_lists_every_distinct_path_in_order() {
    let expression = Expression::parse(
        "task.skills HAS worker.skill OR 1 == 1 AND task.skills[0] == worker.skill OR worker.a.b IN [task.x]",
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let key = |name: &str| Segment::Key(name.to_owned());
    let expected: Vec<Vec<Segment>> = vec![
        vec![key("task"), key("skills")],
        vec![key("worker"), key("skill")],
        vec![key("task"), key("skills"), Segment::Index(0)],
        vec![key("worker"), key("a"), key("b")],
        vec![key("task"), key("x")],
    ];
    assert_eq!(
        expression.paths(),
        expected.iter().map(Vec::as_slice).collect::<Vec<_>>()
    );
    assert!(Expression::parse("1 == 1").is_ok_and(|constant| constant.paths().is_empty()));
}

#[test]
fn text_is_kept_verbatim() {
    let text = "  skills HAS 'support' ";
    let expression = Expression::parse(text).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(expression.text(), text);
    assert_eq!(expression.to_string(), text);
}

#[test]
fn compiled_expressions_can_be_shared_across_threads() {
    fn shareable<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    shareable::<Expression>();
    shareable::<super::OrderBy>();
    shareable::<super::ExpressionError>();
}
