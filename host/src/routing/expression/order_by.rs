//! A workflow target's `order_by`: which eligible worker is reserved first
//! (reference §3.3, Twilio's "order-workers" page).

use std::cmp::Ordering;

use serde_json::Value;
use winnow::ascii::multispace0;
use winnow::combinator::{alt, eof, preceded, repeat};
use winnow::prelude::*;
use winnow::stream::{LocatingSlice, Stream};

use super::error::{Expected, ExpressionError, Failure, Input, Parsed, render};
use super::eval::integer;
use super::parser::{expect, keyword, path};
use super::scope::{Segment, follow};

/// `order_by` of a workflow target: a comma list of `worker.<path> ASC|DESC` (direction in any
/// case), compared in order, each later key breaking the ties of the earlier ones.
#[derive(Debug, Clone)]
pub struct OrderBy {
    pub keys: Vec<OrderKey>,
}

/// One `worker.<path> ASC|DESC` clause.
#[derive(Debug, Clone)]
pub struct OrderKey {
    /// The attribute path inside the worker's attributes, without the leading `worker`.
    pub path: Vec<Segment>,
    pub descending: bool,
}

impl OrderBy {
    /// Parses `worker.level DESC, worker.experience ASC`. Every key must name a worker attribute
    /// and give its direction.
    pub fn parse(text: &str) -> Result<OrderBy, ExpressionError> {
        keys.parse(LocatingSlice::new(text))
            .map(|keys| OrderBy { keys })
            .map_err(|error| render(text, error.offset(), error.into_inner()))
    }

    /// Compares two workers' attribute documents; `Less` means `a` is reserved before `b`, so
    /// `workers.sort_by(|a, b| order.compare(a, b))` puts the preferred worker first.
    ///
    /// Only integer attributes order workers ("If ordering is attempted on a non-integer
    /// attribute, then the expression is ignored"): a key where either worker's value is present
    /// but not an integer ties. Workers lacking the attribute (absent or null) come after those
    /// that have it, whatever the direction. `Equal` when every key ties; the caller then
    /// prefers the longest-idle worker.
    pub fn compare(&self, a: &Value, b: &Value) -> Ordering {
        self.keys
            .iter()
            .map(|key| key.compare(a, b))
            .find(|ordering| ordering.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl OrderKey {
    /// This key's verdict alone; see [`OrderBy::compare`].
    pub fn compare(&self, a: &Value, b: &Value) -> Ordering {
        match (self.rank(a), self.rank(b)) {
            (Rank::Integer(a), Rank::Integer(b)) if self.descending => b.cmp(&a),
            (Rank::Integer(a), Rank::Integer(b)) => a.cmp(&b),
            (Rank::Integer(_), Rank::Missing) => Ordering::Less,
            (Rank::Missing, Rank::Integer(_)) => Ordering::Greater,
            _ => Ordering::Equal,
        }
    }

    fn rank(&self, worker: &Value) -> Rank {
        match follow(worker, &self.path) {
            None | Some(Value::Null) => Rank::Missing,
            Some(Value::Number(number)) => integer(number).map_or(Rank::Ignored, Rank::Integer),
            Some(_) => Rank::Ignored,
        }
    }
}

/// How one worker's value takes part in one key.
enum Rank {
    Integer(i128),
    Missing,
    /// Present but not an integer: the key does not order this pair.
    Ignored,
}

fn keys(input: &mut Input<'_>) -> Parsed<Vec<OrderKey>> {
    multispace0.parse_next(input)?;
    let first = key(input)?;
    let mut keys: Vec<OrderKey> =
        repeat(0.., preceded((multispace0, ',', multispace0), key)).parse_next(input)?;
    multispace0.parse_next(input)?;
    expect(eof, || Expected::OrderSeparator).parse_next(input)?;
    keys.insert(0, first);
    Ok(keys)
}

fn key(input: &mut Input<'_>) -> Parsed<OrderKey> {
    let start = input.checkpoint();
    let (mut path, text) = expect(path.with_taken(), || Expected::OrderKey).parse_next(input)?;
    if !matches!(path.first(), Some(Segment::Key(first)) if first == "worker") {
        input.reset(&start);
        return Err(Failure::cut(Expected::WorkerPrefix));
    }
    if path.len() == 1 {
        return Err(Failure::cut(Expected::WorkerAttribute));
    }
    path.remove(0);
    multispace0.parse_next(input)?;
    let descending = expect(
        alt((keyword("ASC").value(false), keyword("DESC").value(true))),
        || Expected::Direction {
            after: text.to_owned(),
        },
    )
    .parse_next(input)?;
    Ok(OrderKey { path, descending })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn order(text: &str) -> OrderBy {
        OrderBy::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn sorted(order: &OrderBy, workers: &[Value]) -> Vec<String> {
        let mut workers: Vec<&Value> = workers.iter().collect();
        workers.sort_by(|a, b| order.compare(a, b));
        workers
            .iter()
            .map(|worker| worker["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn parses_keys_and_directions() {
        let parsed = order("worker.level DESC, worker.experience ASC");
        assert_eq!(parsed.keys.len(), 2);
        assert_eq!(parsed.keys[0].path, vec![Segment::Key("level".to_owned())]);
        assert!(parsed.keys[0].descending);
        assert_eq!(
            parsed.keys[1].path,
            vec![Segment::Key("experience".to_owned())]
        );
        assert!(!parsed.keys[1].descending);
        let nested = order(" worker.skills.rank[1] desc ");
        assert_eq!(
            nested.keys[0].path,
            vec![
                Segment::Key("skills".to_owned()),
                Segment::Key("rank".to_owned()),
                Segment::Index(1)
            ]
        );
        assert!(nested.keys[0].descending);
    }

    #[test]
    fn later_keys_break_ties() {
        let workers = [
            json!({"name": "a", "level": 1, "experience": 9}),
            json!({"name": "b", "level": 3, "experience": 2}),
            json!({"name": "c", "level": 3, "experience": 1}),
        ];
        let parsed = order("worker.level DESC, worker.experience ASC");
        assert_eq!(sorted(&parsed, &workers), ["c", "b", "a"]);
        let reversed = order("worker.level ASC, worker.experience DESC");
        assert_eq!(sorted(&reversed, &workers), ["a", "b", "c"]);
        assert_eq!(parsed.compare(&workers[1], &workers[1]), Ordering::Equal);
    }

    #[test]
    fn workers_missing_the_attribute_come_last_in_both_directions() {
        let workers = [
            json!({"name": "none"}),
            json!({"name": "low", "level": 1}),
            json!({"name": "null", "level": null}),
            json!({"name": "high", "level": 5}),
        ];
        assert_eq!(
            sorted(&order("worker.level DESC"), &workers),
            ["high", "low", "none", "null"]
        );
        assert_eq!(
            sorted(&order("worker.level ASC"), &workers),
            ["low", "high", "none", "null"]
        );
    }

    #[test]
    fn non_integer_attributes_are_ignored() {
        let parsed = order("worker.level DESC, worker.experience DESC");
        let text = json!({"level": "high", "experience": 1});
        let float = json!({"level": 2.5, "experience": 2});
        let integer = json!({"level": 2, "experience": 3});
        assert_eq!(parsed.keys[0].compare(&text, &integer), Ordering::Equal);
        assert_eq!(parsed.keys[0].compare(&float, &integer), Ordering::Equal);
        assert_eq!(parsed.compare(&text, &integer), Ordering::Greater);
        assert_eq!(parsed.compare(&float, &text), Ordering::Less);
    }

    #[test]
    fn malformed_order_by() {
        let error = |text: &str| match OrderBy::parse(text) {
            Ok(parsed) => panic!("{text:?} parsed as {parsed:?}"),
            Err(error) => error,
        };
        let sideways = error("worker.level SIDEWAYS");
        assert_eq!(sideways.position, 13);
        assert_eq!(
            sideways.message,
            "expected ASC or DESC after `worker.level`, found `SIDEWAYS`"
        );
        let bare = error("level DESC");
        assert_eq!(bare.position, 0);
        assert_eq!(
            bare.message,
            "order_by keys must name a worker attribute such as `worker.level`, found `level`"
        );
        assert_eq!(error("task.level DESC").position, 0);
        assert_eq!(error("worker DESC").position, 6);
        assert_eq!(error("worker.level").position, 12);
        assert_eq!(error("worker.a DESC,").position, 14);
        assert_eq!(error("worker.a ASC worker.b DESC").position, 13);
        assert_eq!(error("").position, 0);
    }
}
