//! Routing expressions: TaskRouter's SQL-like conditions, as used by a TaskQueue's
//! `target_workers`, a workflow filter's `expression`, a workflow target's `expression`, and the
//! list filters; plus a target's `order_by` ([`OrderBy`]). Twilio documents the language at
//! <https://www.twilio.com/docs/taskrouter/expression-syntax>; the project's TaskRouter reference
//! notes (`/work/shared/reference/taskrouter.md`) collect what the docs state, where expressions
//! are evaluated and the inferred grammar (§2), and `order_by` (§3.3).
//!
//! # Language
//!
//! ```text
//! (language == "en" OR language == "fr") AND skill_rating >= 5.1
//! skills HAS 'support' AND task.priority > 3 AND worker.activity_name in ['Available', 'Busy']
//! ```
//!
//! - Values: strings in single or double quotes (escapes `\"`, `\'`, `\\`), numbers (integer or
//!   decimal, optional minus and exponent), `true`, `false`, `null`, array literals `[a, b]`
//!   (elements may be attribute paths), and attribute paths `a.b[2]`. Identifiers are
//!   `[A-Za-z_$][A-Za-z0-9_$]*`; "Hyphens are not supported", so `a-b` fails at the hyphen.
//! - Operators: `==`, `!=`, `>`, `>=`, `<`, `<=`, `CONTAINS` (substring), `HAS` (array holds
//!   value), `IN` / `NOT IN` (value in array). A single `=` is accepted as `==`: two official
//!   Twilio pages write `task.subSection = worker.specializedSubField`.
//! - Logic: `AND`, `OR`, parentheses. `AND` binds tighter than `OR`, as in SQL (the docs always
//!   parenthesise mixed chains, so this is an inference). A standalone `NOT expr` is an
//!   extension; Twilio documents only `NOT IN`.
//! - Keywords (`AND OR NOT IN HAS CONTAINS true false null`) are case-insensitive (official pages
//!   write `in`) and are whole words: `ORDER` and `index` are attribute names, while a path
//!   cannot start with a keyword (`in == 1` is an error).
//! - Parentheses, `NOT` and array literals nest at most 64 levels deep, so hostile text cannot
//!   exhaust the stack.
//! - A bare path or boolean literal is a condition of its own (`is_vip AND NOT worker.busy`): true
//!   only when the value is JSON `true`.
//!
//! # Semantics
//!
//! - A missing attribute is `null` ("If the document does not contain the requested key, it
//!   resolves to NULL").
//! - Null rule: `==` / `!=` with `null` on either side compare null-ness, so `missing == null` is
//!   true and `preferred_agents != null` is true whenever the attribute exists and is not null
//!   (even an array). Ordering operators involving null are false.
//! - Numbers compare numerically (`1 == 1.0`); strings by equality and lexicographically (by code
//!   point); booleans by `==` / `!=` only.
//! - Mismatch rule: any other pairing of types is false for every operator, `!=` included
//!   (`"1" != 1` is false), following "Comparisons between different types should be avoided".
//!   Scalar operators on arrays or objects are false, so are array operators on scalars.
//! - `HAS`: array on the left, scalar on the right, true when an element is `==` to it.
//!   `IN`: scalar (null counts) on the left, array on the right. `NOT IN`: the same shapes, true
//!   when the element is absent; wrong shapes are false for `NOT IN` too. `CONTAINS`: two strings.
//!
//! An [`Expression`] is parsed once and evaluated many times against a [`Scope`]; evaluation
//! short-circuits and does not allocate when the scope borrows its values ([`Document`] does).

mod error;
mod eval;
mod order_by;
mod parser;
mod scope;
#[cfg(test)]
mod tests;

use std::fmt;

use winnow::prelude::*;
use winnow::stream::LocatingSlice;

pub use error::ExpressionError;
pub use order_by::{OrderBy, OrderKey};
pub use scope::{Document, Scope, Segment, follow};

use eval::Node;

/// A compiled expression: parse once, evaluate many times.
#[derive(Debug, Clone)]
pub struct Expression {
    text: String,
    root: Node,
    /// Every distinct attribute path, in order of first appearance, including those in parts
    /// that folded away (so prefix checks see everything the user wrote).
    paths: Vec<Vec<Segment>>,
}

impl Expression {
    /// Compiles `text`, or says where and why it is not a valid expression. Parts that read no
    /// attributes are decided here (`1 == 1` becomes the constant true).
    pub fn parse(text: &str) -> Result<Expression, ExpressionError> {
        let tree = parser::expression
            .parse(LocatingSlice::new(text))
            .map_err(|error| error::render(text, error.offset(), error.into_inner()))?;
        let mut paths: Vec<Vec<Segment>> = Vec::new();
        tree.visit_paths(&mut |path| {
            if !paths.iter().any(|known| known == path) {
                paths.push(path.to_vec());
            }
        });
        Ok(Expression {
            text: text.to_owned(),
            root: tree.fold(),
            paths,
        })
    }

    /// Whether the attributes `scope` resolves satisfy the expression.
    pub fn evaluate(&self, scope: &dyn Scope) -> bool {
        self.root.evaluate(scope)
    }

    /// The source text as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every distinct attribute path the expression mentions, in order of first appearance, each
    /// as written (a target expression's paths start with `Key("task")` or `Key("worker")`).
    /// Includes paths in parts that cannot affect the result (`1 == 1 OR x == 2`).
    pub fn paths(&self) -> Vec<&[Segment]> {
        self.paths.iter().map(Vec::as_slice).collect()
    }

    /// True when the expression holds whatever the attributes, like the default `target_workers`
    /// `1==1`; callers can skip evaluating it.
    pub fn is_always_true(&self) -> bool {
        matches!(self.root, Node::Constant(true))
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Expression {
    type Err = ExpressionError;

    fn from_str(text: &str) -> Result<Expression, ExpressionError> {
        Expression::parse(text)
    }
}
