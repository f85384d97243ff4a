//! The compiled form of an expression and its evaluation.
//!
//! Everything a user can write is decided here, once per evaluation, without allocating when the
//! scope borrows its values: paths arrive pre-split, literal arrays pre-built, strings compared
//! by reference.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::scope::{Scope, Segment};

/// The operators between two operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operator {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    /// Array on the left holds the scalar on the right.
    Has,
    /// String on the left has the string on the right as a substring.
    Contains,
    /// Scalar on the left is an element of the array on the right.
    In,
    /// Scalar on the left is not an element of the array on the right.
    NotIn,
}

impl Operator {
    /// Whether a scalar comparison with outcome `ordering` satisfies this operator.
    fn admits(self, ordering: Ordering) -> bool {
        match self {
            Operator::Eq => ordering.is_eq(),
            Operator::Ne => ordering.is_ne(),
            Operator::Gt => ordering.is_gt(),
            Operator::Ge => ordering.is_ge(),
            Operator::Lt => ordering.is_lt(),
            Operator::Le => ordering.is_le(),
            Operator::Has | Operator::Contains | Operator::In | Operator::NotIn => false,
        }
    }
}

/// One side of a comparison.
#[derive(Debug, Clone)]
pub(super) enum Operand {
    /// A constant, including array literals whose elements are all constants.
    Literal(Value),
    /// An attribute reference, resolved through the [`Scope`] at evaluation time.
    Path(Vec<Segment>),
    /// An array literal with at least one attribute reference among its elements
    /// (`task.language IN [worker.primary, worker.secondary]`).
    List(Vec<Operand>),
}

impl Operand {
    /// An array literal: pre-built as a JSON array when it holds only constants.
    pub(super) fn list(items: Vec<Operand>) -> Operand {
        if items.iter().all(|item| matches!(item, Operand::Literal(_))) {
            let values = items
                .into_iter()
                .filter_map(|item| match item {
                    Operand::Literal(value) => Some(value),
                    Operand::Path(_) | Operand::List(_) => None,
                })
                .collect();
            Operand::Literal(Value::Array(values))
        } else {
            Operand::List(items)
        }
    }

    /// True when the operand depends on the scope.
    fn reads_attributes(&self) -> bool {
        match self {
            Operand::Literal(_) => false,
            Operand::Path(_) => true,
            Operand::List(items) => items.iter().any(Operand::reads_attributes),
        }
    }

    fn visit_paths<'a>(&'a self, visit: &mut impl FnMut(&'a [Segment])) {
        match self {
            Operand::Literal(_) => {}
            Operand::Path(path) => visit(path),
            Operand::List(items) => items.iter().for_each(|item| item.visit_paths(visit)),
        }
    }

    fn resolve<'a>(&'a self, scope: &'a dyn Scope) -> Resolved<'a> {
        match self {
            Operand::Literal(value) => Resolved::Json(Cow::Borrowed(value)),
            Operand::Path(path) => {
                Resolved::Json(scope.lookup(path).unwrap_or(Cow::Borrowed(&NULL)))
            }
            Operand::List(items) => Resolved::List(items),
        }
    }
}

/// The boolean structure of an expression.
#[derive(Debug, Clone)]
pub(super) enum Node {
    /// Decided at parse time (`1 == 1`).
    Constant(bool),
    /// A bare operand: true only when it is the JSON value `true`.
    Truthy(Operand),
    Compare {
        left: Operand,
        operator: Operator,
        right: Operand,
    },
    Not(Box<Node>),
    /// AND of two or more nodes, evaluated left to right with short-circuit.
    All(Vec<Node>),
    /// OR of two or more nodes, evaluated left to right with short-circuit.
    Any(Vec<Node>),
}

impl Node {
    pub(super) fn evaluate(&self, scope: &dyn Scope) -> bool {
        match self {
            Node::Constant(value) => *value,
            Node::Truthy(operand) => {
                matches!(operand.resolve(scope), Resolved::Json(value) if value.as_bool() == Some(true))
            }
            Node::Compare {
                left,
                operator,
                right,
            } => compare(left.resolve(scope), *operator, right.resolve(scope), scope),
            Node::Not(inner) => !inner.evaluate(scope),
            Node::All(nodes) => nodes.iter().all(|node| node.evaluate(scope)),
            Node::Any(nodes) => nodes.iter().any(|node| node.evaluate(scope)),
        }
    }

    /// Calls `visit` for every attribute path, in source order.
    pub(super) fn visit_paths<'a>(&'a self, visit: &mut impl FnMut(&'a [Segment])) {
        match self {
            Node::Constant(_) => {}
            Node::Truthy(operand) => operand.visit_paths(visit),
            Node::Compare { left, right, .. } => {
                left.visit_paths(visit);
                right.visit_paths(visit);
            }
            Node::Not(inner) => inner.visit_paths(visit),
            Node::All(nodes) | Node::Any(nodes) => {
                nodes.iter().for_each(|node| node.visit_paths(visit));
            }
        }
    }

    /// Replaces every part that does not read attributes by its value, so `1==1` (the default
    /// `target_workers`) costs nothing and can be recognised by callers.
    pub(super) fn fold(self) -> Node {
        match self {
            Node::Truthy(ref operand) if !operand.reads_attributes() => {
                Node::Constant(self.evaluate(&NoAttributes))
            }
            Node::Compare {
                ref left,
                ref right,
                ..
            } if !left.reads_attributes() && !right.reads_attributes() => {
                Node::Constant(self.evaluate(&NoAttributes))
            }
            Node::Not(inner) => match inner.fold() {
                Node::Constant(value) => Node::Constant(!value),
                other => Node::Not(Box::new(other)),
            },
            Node::All(nodes) => fold_chain(nodes, false, Node::All),
            Node::Any(nodes) => fold_chain(nodes, true, Node::Any),
            other => other,
        }
    }
}

/// Folds an AND (`absorbing` = false) or OR (`absorbing` = true) chain: an absorbing constant
/// decides the chain, the other constant drops out.
fn fold_chain(nodes: Vec<Node>, absorbing: bool, chain: fn(Vec<Node>) -> Node) -> Node {
    let mut kept = Vec::with_capacity(nodes.len());
    for node in nodes {
        match node.fold() {
            Node::Constant(value) if value == absorbing => return Node::Constant(absorbing),
            Node::Constant(_) => {}
            other => kept.push(other),
        }
    }
    match <[Node; 1]>::try_from(kept) {
        Ok([only]) => only,
        Err(kept) if kept.is_empty() => Node::Constant(!absorbing),
        Err(kept) => chain(kept),
    }
}

/// The scope used to fold constant parts: every attribute is missing.
struct NoAttributes;

impl Scope for NoAttributes {
    fn lookup(&self, _path: &[Segment]) -> Option<Cow<'_, Value>> {
        None
    }
}

static NULL: Value = Value::Null;

/// An operand's value during one evaluation.
enum Resolved<'a> {
    Json(Cow<'a, Value>),
    /// An array literal holding attribute references; its elements are resolved on demand.
    List(&'a [Operand]),
}

impl Resolved<'_> {
    fn json(&self) -> Option<&Value> {
        match self {
            Resolved::Json(value) => Some(value),
            Resolved::List(_) => None,
        }
    }

    /// Null, booleans, numbers and strings. Arrays and objects are not scalars.
    fn scalar(&self) -> Option<&Value> {
        self.json()
            .filter(|value| !matches!(value, Value::Array(_) | Value::Object(_)))
    }

    fn is_array(&self) -> bool {
        match self {
            Resolved::Json(value) => value.is_array(),
            Resolved::List(_) => true,
        }
    }

    /// Whether any element of an array equals `needle`; false for non-arrays.
    fn has_element(&self, needle: &Value, scope: &dyn Scope) -> bool {
        match self {
            Resolved::Json(value) => value.as_array().is_some_and(|items| {
                items
                    .iter()
                    .any(|item| compare_scalars(item, Operator::Eq, needle))
            }),
            Resolved::List(items) => items.iter().any(|item| {
                item.resolve(scope)
                    .json()
                    .is_some_and(|item| compare_scalars(item, Operator::Eq, needle))
            }),
        }
    }
}

fn compare(left: Resolved<'_>, operator: Operator, right: Resolved<'_>, scope: &dyn Scope) -> bool {
    match operator {
        Operator::Eq | Operator::Ne | Operator::Gt | Operator::Ge | Operator::Lt | Operator::Le => {
            match (left.json(), right.json()) {
                (Some(left), Some(right)) => compare_scalars(left, operator, right),
                // An array literal with attribute references is never null, so only the null
                // rule can make this true: `x != [...]` where x is null.
                (left, right) => {
                    operator == Operator::Ne
                        && (left.is_some_and(Value::is_null) || right.is_some_and(Value::is_null))
                }
            }
        }
        Operator::Contains => match (left.json(), right.json()) {
            (Some(Value::String(haystack)), Some(Value::String(needle))) => {
                haystack.contains(needle.as_str())
            }
            _ => false,
        },
        Operator::Has => right
            .scalar()
            .is_some_and(|needle| left.has_element(needle, scope)),
        Operator::In => left
            .scalar()
            .is_some_and(|needle| right.has_element(needle, scope)),
        Operator::NotIn => {
            right.is_array()
                && left
                    .scalar()
                    .is_some_and(|needle| !right.has_element(needle, scope))
        }
    }
}

/// `==`, `!=`, `<`, `<=`, `>`, `>=` on two JSON values.
///
/// Null on either side: `==`/`!=` compare null-ness, ordering is false. Otherwise both sides must
/// be the same scalar type; any other pairing (including arrays and objects) is false for every
/// operator, `!=` included.
fn compare_scalars(left: &Value, operator: Operator, right: &Value) -> bool {
    match (left, right) {
        (Value::Null, _) | (_, Value::Null) => match operator {
            Operator::Eq => left.is_null() && right.is_null(),
            Operator::Ne => !(left.is_null() && right.is_null()),
            _ => false,
        },
        (Value::Number(left), Value::Number(right)) => {
            numeric_order(left, right).is_some_and(|ordering| operator.admits(ordering))
        }
        // Equality first: a byte comparison that stops at the first difference or length mismatch.
        (Value::String(left), Value::String(right)) => match operator {
            Operator::Eq => left == right,
            Operator::Ne => left != right,
            _ => operator.admits(left.as_str().cmp(right.as_str())),
        },
        (Value::Bool(left), Value::Bool(right)) => match operator {
            Operator::Eq => left == right,
            Operator::Ne => left != right,
            _ => false,
        },
        _ => false,
    }
}

/// Numeric order across JSON's integer and float representations: exact for integers, by `f64`
/// otherwise (so `1 == 1.0`).
fn numeric_order(left: &Number, right: &Number) -> Option<Ordering> {
    match (integer(left), integer(right)) {
        (Some(left), Some(right)) => Some(left.cmp(&right)),
        _ => left.as_f64()?.partial_cmp(&right.as_f64()?),
    }
}

/// A JSON number that is an integer (signed or unsigned), widened so both kinds compare exactly.
pub(super) fn integer(number: &Number) -> Option<i128> {
    number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from))
}
