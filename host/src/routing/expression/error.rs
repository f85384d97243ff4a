//! Syntax errors: the winnow error type the grammar reports through, and its rendering into an
//! [`ExpressionError`] a user can act on ("expected …, found …" at a character position).

use winnow::error::{ErrMode, FromExternalError, ParserError};
use winnow::prelude::*;
use winnow::stream::{LocatingSlice, Location};
use winnow::token::{any, take_while};

/// The parser input: the text plus its start, so errors can name where a bracket was opened.
pub(super) type Input<'i> = LocatingSlice<&'i str>;

/// A parse step's result; `ErrMode::Cut` carries the user-facing failures.
pub(super) type Parsed<T> = ModalResult<T, Failure>;

/// An expression (or `order_by`) that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid expression at position {position}: {message}")]
pub struct ExpressionError {
    /// 0-based character (not byte) offset into the text where parsing got stuck.
    pub position: usize,
    /// What was expected there and what was found instead.
    pub message: String,
}

/// What the grammar needed at the failure point. Byte offsets inside are converted to character
/// positions when rendered.
#[derive(Debug, Clone)]
pub(super) enum Expected {
    Expression,
    Operand { after: String },
    Operator { after: String },
    InAfterNot,
    Continuation,
    ClosingParen { opened_at: usize },
    UnmatchedParen,
    ArrayElement,
    ArraySeparator { opened_at: usize },
    AttributeName,
    ArrayIndex,
    IndexClose,
    UnterminatedString { opened_at: usize },
    Escape,
    NumberRange,
    OrderKey,
    WorkerPrefix,
    WorkerAttribute,
    Direction { after: String },
    OrderSeparator,
    TooDeep,
}

/// The winnow error type of this grammar. `None` is a plain backtrack ("this alternative does not
/// start here"); a rule that knows what was required turns it into a cut with an [`Expected`].
#[derive(Debug, Clone)]
pub(super) struct Failure(Option<Expected>);

impl Failure {
    /// A non-recoverable failure at the input's current position.
    pub(super) fn cut(expected: Expected) -> ErrMode<Failure> {
        ErrMode::Cut(Failure(Some(expected)))
    }

    /// A plain backtrack that does not yet say what was needed.
    pub(super) fn is_unspecific(&self) -> bool {
        self.0.is_none()
    }
}

impl<'i> ParserError<Input<'i>> for Failure {
    type Inner = Self;

    fn from_input(_input: &Input<'i>) -> Self {
        Failure(None)
    }

    fn into_inner(self) -> Result<Self::Inner, Self> {
        Ok(self)
    }

    fn or(self, other: Self) -> Self {
        if other.0.is_some() { other } else { self }
    }
}

/// Conversions that fail after the text matched (a number too large) report a range error.
impl<'i, E> FromExternalError<Input<'i>, E> for Failure {
    fn from_external_error(_input: &Input<'i>, _error: E) -> Self {
        Failure(Some(Expected::NumberRange))
    }
}

/// Turns a winnow failure at byte `offset` of `text` into the public error.
pub(super) fn render(text: &str, offset: usize, failure: Failure) -> ExpressionError {
    let found = found_at(text.get(offset..).unwrap_or_default());
    let expected = failure.0.unwrap_or(Expected::Expression);
    let position = |byte: usize| char_position(text, byte);
    let message = match expected {
        Expected::Expression => format!("expected an expression, found {found}"),
        Expected::Operand { after } => {
            format!("expected a value or attribute after `{after}`, found {found}")
        }
        Expected::Operator { after } => {
            format!("expected an operator such as ==, IN or HAS after `{after}`, found {found}")
        }
        Expected::InAfterNot => format!("expected IN after NOT, found {found}"),
        Expected::Continuation => {
            format!("expected AND, OR or the end of the expression, found {found}")
        }
        Expected::ClosingParen { opened_at } => format!(
            "unbalanced parenthesis: expected `)` to close the `(` at position {}, found {found}",
            position(opened_at)
        ),
        Expected::UnmatchedParen => {
            "unbalanced parenthesis: found `)` with no matching `(`".to_owned()
        }
        Expected::ArrayElement => format!("expected a value in the array, found {found}"),
        Expected::ArraySeparator { opened_at } => format!(
            "expected `,` or `]` in the array opened at position {}, found {found}",
            position(opened_at)
        ),
        Expected::AttributeName => format!("expected an attribute name after `.`, found {found}"),
        Expected::ArrayIndex => {
            format!("expected an array index (a whole number) after `[`, found {found}")
        }
        Expected::IndexClose => format!("expected `]` after the array index, found {found}"),
        Expected::UnterminatedString { opened_at } => format!(
            "unterminated string: the quote at position {} is never closed",
            position(opened_at)
        ),
        Expected::Escape => format!(
            "unsupported escape in string, found {found}; only \\\", \\' and \\\\ are recognised"
        ),
        Expected::NumberRange => format!("number out of range: {found}"),
        Expected::OrderKey => format!("expected `worker.<attribute>`, found {found}"),
        Expected::WorkerPrefix => {
            format!(
                "order_by keys must name a worker attribute such as `worker.level`, found {found}"
            )
        }
        Expected::WorkerAttribute => {
            format!("expected `.` and a worker attribute after `worker`, found {found}")
        }
        Expected::Direction { after } => {
            format!("expected ASC or DESC after `{after}`, found {found}")
        }
        Expected::OrderSeparator => format!("expected `,` or the end of order_by, found {found}"),
        Expected::TooDeep => format!(
            "the expression nests parentheses, NOT or arrays more than {} levels deep",
            super::parser::MAX_DEPTH
        ),
    };
    ExpressionError {
        position: position(offset),
        message,
    }
}

/// Character position of a byte offset (offsets always fall on character boundaries because the
/// parser advances by characters).
pub(super) fn char_position(text: &str, byte: usize) -> usize {
    text.get(..byte)
        .map_or(byte, |prefix| prefix.chars().count())
}

/// Describes the token at the failure point: a whole word or number, otherwise one character.
fn found_at(rest: &str) -> String {
    let mut input = rest;
    let word: Result<&str, ErrMode<()>> =
        take_while(1.., |c: char| c.is_alphanumeric() || c == '_' || c == '$')
            .parse_next(&mut input);
    if let Ok(word) = word {
        return format!("`{word}`");
    }
    let next: Result<char, ErrMode<()>> = any.parse_next(&mut input);
    match next {
        Ok('-') => "`-` (hyphens are not supported in expressions)".to_owned(),
        Ok(c) if c.is_whitespace() => "whitespace".to_owned(),
        Ok(c) => format!("`{c}`"),
        Err(_) => "end of text".to_owned(),
    }
}

/// The byte offset of the input's current position, for messages that point back to an opener.
pub(super) fn offset(input: &Input<'_>) -> usize {
    input.current_token_start()
}
