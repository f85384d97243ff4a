//! Where attribute paths get their values: a [`Scope`] answers a pre-split path, so evaluation
//! never re-parses or allocates path strings.

use std::borrow::Cow;

use serde_json::Value;

/// One segment of an attribute path: `a.b[2]` = `[Key("a"), Key("b"), Index(2)]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// An object member, written `name` or `.name`.
    Key(String),
    /// An array element, written `[n]`.
    Index(usize),
}

/// Resolves attribute paths for one evaluation.
///
/// A missing attribute may be reported as `None` or as `Cow::Owned(Value::Null)`; both mean NULL
/// to the expression. Borrow (`Cow::Borrowed`) whenever the value already exists, so evaluating
/// against stored attribute documents does not allocate.
pub trait Scope {
    /// The value at `path`, or `None` when there is none.
    fn lookup(&self, path: &[Segment]) -> Option<Cow<'_, Value>>;
}

/// A scope whose bare keys resolve into one JSON document: task attributes for a workflow filter,
/// worker attributes for a TaskQueue's `target_workers`.
#[derive(Debug, Clone, Copy)]
pub struct Document<'a>(pub &'a Value);

impl Scope for Document<'_> {
    fn lookup(&self, path: &[Segment]) -> Option<Cow<'_, Value>> {
        follow(self.0, path).map(Cow::Borrowed)
    }
}

/// Follows a path into a JSON value: keys into objects, indices into arrays. `None` as soon as a
/// segment does not apply (absent key, index out of range, or the wrong kind of container).
/// The empty path is the value itself.
pub fn follow<'a>(value: &'a Value, path: &[Segment]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |current, segment| match segment {
            Segment::Key(key) => current.as_object()?.get(key),
            Segment::Index(index) => current.as_array()?.get(*index),
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(name: &str) -> Segment {
        Segment::Key(name.to_owned())
    }

    #[test]
    fn follows_keys_and_indices() {
        let doc = json!({"object": {"array": [1, 2, 3], "param": "x"}});
        let path = [key("object"), key("array"), Segment::Index(2)];
        assert_eq!(follow(&doc, &path), Some(&json!(3)));
        assert_eq!(
            follow(&doc, &[key("object"), key("param")]),
            Some(&json!("x"))
        );
        assert_eq!(follow(&doc, &[]), Some(&doc));
    }

    #[test]
    fn absent_or_mismatched_segments_are_none() {
        let doc = json!({"list": [1], "scalar": 5});
        assert_eq!(follow(&doc, &[key("missing")]), None);
        assert_eq!(follow(&doc, &[key("list"), Segment::Index(1)]), None);
        assert_eq!(follow(&doc, &[key("list"), key("0")]), None);
        assert_eq!(follow(&doc, &[key("scalar"), Segment::Index(0)]), None);
        assert!(Document(&doc).lookup(&[key("missing")]).is_none());
    }
}
