//! The grammar, as winnow parsers producing the [`Node`] tree.
//!
//! ```text
//! expression := or EOF
//! or         := and (OR and)*
//! and        := unary (AND unary)*
//! unary      := NOT unary | primary
//! primary    := '(' or ')' | comparison
//! comparison := operand (operator operand)?      -- bare operand: path or boolean literal only
//! operator   := == | = | != | > | >= | < | <= | HAS | CONTAINS | IN | NOT IN
//! operand    := string | number | true | false | null | '[' (operand (',' operand)*)? ']' | path
//! path       := IDENT ('.' IDENT | '[' INT ']')*     IDENT := [A-Za-z_$][A-Za-z0-9_$]*
//! ```
//!
//! Every rule that knows what it requires turns "nothing matched here" into a cut carrying an
//! [`Expected`], at the position of the offending token, so the error names what was wanted.

use serde_json::{Number, Value};
use winnow::ascii::{Caseless, digit1, multispace0};
use winnow::combinator::{alt, dispatch, eof, fail, not, opt, peek, preceded, repeat, terminated};
use winnow::error::ErrMode;
use winnow::prelude::*;
use winnow::stream::Stream;
use winnow::token::{any, one_of, take_till, take_while};

use super::error::{Expected, Failure, Input, Parsed, offset};
use super::eval::{Node, Operand, Operator};
use super::scope::Segment;

/// Parentheses, `NOT`s and array literals nested deeper than this are refused, so a hostile
/// expression cannot exhaust the stack of the parser, the evaluator or the tree's destructor.
pub(super) const MAX_DEPTH: usize = 64;

/// Words that cannot start an attribute path. (`true`, `false` and `null` are literals.)
const KEYWORDS: [&str; 6] = ["AND", "OR", "NOT", "IN", "HAS", "CONTAINS"];

/// A whole expression: the entry point for [`winnow::Parser::parse`].
pub(super) fn expression(input: &mut Input<'_>) -> Parsed<Node> {
    multispace0.parse_next(input)?;
    let node = disjunction(input, 0)?;
    multispace0.parse_next(input)?;
    match opt(peek(any)).parse_next(input)? {
        None => Ok(node),
        Some(')') => Err(Failure::cut(Expected::UnmatchedParen)),
        Some(_) => Err(Failure::cut(Expected::Continuation)),
    }
}

fn disjunction(input: &mut Input<'_>, depth: usize) -> Parsed<Node> {
    let first = conjunction(input, depth)?;
    let rest: Vec<Node> = repeat(
        0..,
        preceded(
            (multispace0, keyword("OR"), multispace0),
            |input: &mut Input<'_>| conjunction(input, depth),
        ),
    )
    .parse_next(input)?;
    Ok(chain(first, rest, Node::Any))
}

fn conjunction(input: &mut Input<'_>, depth: usize) -> Parsed<Node> {
    let first = unary(input, depth)?;
    let rest: Vec<Node> = repeat(
        0..,
        preceded(
            (multispace0, keyword("AND"), multispace0),
            |input: &mut Input<'_>| unary(input, depth),
        ),
    )
    .parse_next(input)?;
    Ok(chain(first, rest, Node::All))
}

fn chain(first: Node, mut rest: Vec<Node>, combine: fn(Vec<Node>) -> Node) -> Node {
    if rest.is_empty() {
        return first;
    }
    rest.insert(0, first);
    combine(rest)
}

fn unary(input: &mut Input<'_>, depth: usize) -> Parsed<Node> {
    if opt(terminated(keyword("NOT"), multispace0))
        .parse_next(input)?
        .is_some()
    {
        let inner = unary(input, deeper(depth)?)?;
        return Ok(Node::Not(Box::new(inner)));
    }
    primary(input, depth)
}

fn primary(input: &mut Input<'_>, depth: usize) -> Parsed<Node> {
    let opened_at = offset(input);
    if opt('(').parse_next(input)?.is_none() {
        return comparison(input, depth);
    }
    multispace0.parse_next(input)?;
    let node = disjunction(input, deeper(depth)?)?;
    multispace0.parse_next(input)?;
    expect(')', || Expected::ClosingParen { opened_at }).parse_next(input)?;
    Ok(node)
}

fn comparison(input: &mut Input<'_>, depth: usize) -> Parsed<Node> {
    let (left, left_text) = expect(
        (|input: &mut Input<'_>| operand(input, depth)).with_taken(),
        || Expected::Expression,
    )
    .parse_next(input)?;
    multispace0.parse_next(input)?;
    let Some((operator, operator_text)) = opt(operator.with_taken()).parse_next(input)? else {
        return bare(input, left, left_text);
    };
    multispace0.parse_next(input)?;
    let right = expect(
        |input: &mut Input<'_>| operand(input, depth),
        || Expected::Operand {
            after: operator_text.to_owned(),
        },
    )
    .parse_next(input)?;
    Ok(Node::Compare {
        left,
        operator,
        right,
    })
}

/// An operand standing alone as a condition (`is_vip`, `NOT worker.busy`, `true`): allowed for
/// paths and boolean literals when the condition ends there; anything else needed an operator.
fn bare(input: &mut Input<'_>, operand: Operand, text: &str) -> Parsed<Node> {
    let allowed = matches!(operand, Operand::Path(_) | Operand::Literal(Value::Bool(_)));
    let ends: Parsed<()> =
        peek(alt((eof.void(), ')'.void(), keyword("AND"), keyword("OR")))).parse_next(input);
    if allowed && ends.is_ok() {
        return Ok(Node::Truthy(operand));
    }
    Err(Failure::cut(Expected::Operator {
        after: text.to_owned(),
    }))
}

fn operator(input: &mut Input<'_>) -> Parsed<Operator> {
    alt((
        alt((
            "==".value(Operator::Eq),
            "!=".value(Operator::Ne),
            ">=".value(Operator::Ge),
            "<=".value(Operator::Le),
            ">".value(Operator::Gt),
            "<".value(Operator::Lt),
            "=".value(Operator::Eq),
        )),
        alt((
            keyword("HAS").value(Operator::Has),
            keyword("CONTAINS").value(Operator::Contains),
            keyword("IN").value(Operator::In),
            preceded(
                (keyword("NOT"), multispace0),
                expect(keyword("IN"), || Expected::InAfterNot),
            )
            .value(Operator::NotIn),
        )),
    ))
    .parse_next(input)
}

/// A value: backtracks without consuming when no operand starts here, so the caller can say
/// what it needed.
fn operand(input: &mut Input<'_>, depth: usize) -> Parsed<Operand> {
    dispatch! {peek(any);
        '"' | '\'' => string.map(|text| Operand::Literal(Value::String(text))),
        '[' => |input: &mut Input<'_>| array(input, depth),
        '-' | '0'..='9' => number.map(Operand::Literal),
        c if is_identifier_start(c) => word,
        _ => fail,
    }
    .parse_next(input)
}

/// A quoted string, single or double quotes, with `\"`, `\'` and `\\` escapes.
fn string(input: &mut Input<'_>) -> Parsed<String> {
    let opened_at = offset(input);
    let quote = one_of(['"', '\'']).parse_next(input)?;
    let mut text = String::new();
    loop {
        text.push_str(take_till(0.., [quote, '\\']).parse_next(input)?);
        match opt(any).parse_next(input)? {
            None => return Err(Failure::cut(Expected::UnterminatedString { opened_at })),
            Some('\\') => {
                let escaped =
                    expect(one_of(['"', '\'', '\\']), || Expected::Escape).parse_next(input)?;
                text.push(escaped);
            }
            Some(_) => return Ok(text),
        }
    }
}

/// An integer or decimal number, optionally negative, with an optional exponent.
fn number(input: &mut Input<'_>) -> Parsed<Value> {
    (
        opt('-'),
        digit1,
        opt(('.', digit1)),
        opt((one_of(['e', 'E']), opt(one_of(['+', '-'])), digit1)),
    )
        .take()
        .try_map(number_value)
        .parse_next(input)
}

/// A numeric literal with no JSON representation (`1e999` is infinite).
#[derive(Debug)]
struct OutOfRange;

/// The JSON number for a numeric literal: an integer when it is one and fits, a float otherwise.
fn number_value(text: &str) -> Result<Value, OutOfRange> {
    if let Ok(integer) = text.parse::<i64>() {
        return Ok(Value::from(integer));
    }
    if let Ok(integer) = text.parse::<u64>() {
        return Ok(Value::from(integer));
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
        .ok_or(OutOfRange)
}

/// `[a, b, ...]`, possibly empty.
fn array(input: &mut Input<'_>, depth: usize) -> Parsed<Operand> {
    let opened_at = offset(input);
    let depth = deeper(depth)?;
    '['.parse_next(input)?;
    multispace0.parse_next(input)?;
    let mut items = Vec::new();
    if opt(']').parse_next(input)?.is_some() {
        return Ok(Operand::list(items));
    }
    loop {
        let item = expect(
            |input: &mut Input<'_>| operand(input, depth),
            || Expected::ArrayElement,
        )
        .parse_next(input)?;
        items.push(item);
        multispace0.parse_next(input)?;
        if opt(',').parse_next(input)?.is_some() {
            multispace0.parse_next(input)?;
            continue;
        }
        expect(']', || Expected::ArraySeparator { opened_at }).parse_next(input)?;
        return Ok(Operand::list(items));
    }
}

/// A literal word (`true`, `false`, `null`, any case) or an attribute path. Keywords backtrack.
fn word(input: &mut Input<'_>) -> Parsed<Operand> {
    let start = input.checkpoint();
    let name = identifier(input)?;
    for (literal, value) in [
        ("true", Value::Bool(true)),
        ("false", Value::Bool(false)),
        ("null", Value::Null),
    ] {
        if name.eq_ignore_ascii_case(literal) {
            return Ok(Operand::Literal(value));
        }
    }
    if KEYWORDS
        .iter()
        .any(|keyword| name.eq_ignore_ascii_case(keyword))
    {
        input.reset(&start);
        return fail(input);
    }
    input.reset(&start);
    path.map(Operand::Path).parse_next(input)
}

/// An attribute path, whatever its first word (`order_by` uses it directly).
pub(super) fn path(input: &mut Input<'_>) -> Parsed<Vec<Segment>> {
    let name = identifier(input)?;
    let mut path = vec![Segment::Key(name.to_owned())];
    path.extend(segments(input)?);
    Ok(path)
}

/// The `.name` and `[n]` segments after a path's first word.
fn segments(input: &mut Input<'_>) -> Parsed<Vec<Segment>> {
    repeat(
        0..,
        alt((
            preceded('.', expect(identifier, || Expected::AttributeName))
                .map(|name: &str| Segment::Key(name.to_owned())),
            preceded(
                '[',
                terminated(
                    expect(digit1.try_map(str::parse::<usize>), || Expected::ArrayIndex),
                    expect(']', || Expected::IndexClose),
                ),
            )
            .map(Segment::Index),
        )),
    )
    .parse_next(input)
}

fn identifier<'i>(input: &mut Input<'i>) -> Parsed<&'i str> {
    (
        one_of(is_identifier_start),
        take_while(0.., is_identifier_char),
    )
        .take()
        .parse_next(input)
}

fn is_identifier_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '$'
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// A case-insensitive keyword that is not the beginning of a longer word (`ORDER` is a path).
pub(super) fn keyword<'i>(word: &'static str) -> impl Parser<Input<'i>, (), ErrMode<Failure>> {
    terminated(Caseless(word), not(one_of(is_identifier_char))).void()
}

/// Runs `parser`; if it does not match here, fails for good with `expected` at the position
/// where it was tried.
pub(super) fn expect<'i, O>(
    mut parser: impl Parser<Input<'i>, O, ErrMode<Failure>>,
    expected: impl Fn() -> Expected,
) -> impl Parser<Input<'i>, O, ErrMode<Failure>> {
    move |input: &mut Input<'i>| {
        let start = input.checkpoint();
        parser.parse_next(input).map_err(|error| match error {
            ErrMode::Backtrack(failure) if failure.is_unspecific() => {
                input.reset(&start);
                Failure::cut(expected())
            }
            ErrMode::Backtrack(failure) => ErrMode::Cut(failure),
            other => other,
        })
    }
}

/// One more level of nesting, or a failure when that is too deep.
fn deeper(depth: usize) -> Parsed<usize> {
    if depth >= MAX_DEPTH {
        return Err(Failure::cut(Expected::TooDeep));
    }
    Ok(depth + 1)
}

#[cfg(test)]
mod tests {
    use super::super::{Expression, ExpressionError};

    fn error(text: &str) -> ExpressionError {
        match Expression::parse(text) {
            Ok(expression) => panic!("{text:?} parsed as {expression:?}"),
            Err(error) => error,
        }
    }

    fn assert_error(text: &str, position: usize, message: &str) {
        let error = error(text);
        assert_eq!(error.position, position, "{text:?}: {error}");
        assert_eq!(error.message, message, "{text:?}");
    }

    #[test]
    fn missing_right_operand() {
        assert_error(
            "language ==",
            11,
            "expected a value or attribute after `==`, found end of text",
        );
        assert_error(
            "language IN",
            11,
            "expected a value or attribute after `IN`, found end of text",
        );
        assert_error(
            "a === b",
            4,
            "expected a value or attribute after `==`, found `=`",
        );
    }

    #[test]
    fn unbalanced_parentheses() {
        assert_error(
            "(a == 1",
            7,
            "unbalanced parenthesis: expected `)` to close the `(` at position 0, found end of text",
        );
        assert_error(
            "a == 1)",
            6,
            "unbalanced parenthesis: found `)` with no matching `(`",
        );
    }

    #[test]
    fn hyphens_fail_at_the_hyphen() {
        assert_error(
            "a -b == 1",
            2,
            "expected an operator such as ==, IN or HAS after `a`, found `-` (hyphens are not supported in expressions)",
        );
        assert_eq!(error("skill-level > 3").position, 5);
        assert_eq!(error("a == b-c").position, 6);
    }

    #[test]
    fn missing_or_misplaced_expressions() {
        assert_error("", 0, "expected an expression, found end of text");
        assert_error("  ", 2, "expected an expression, found end of text");
        assert_error("AND a == 1", 0, "expected an expression, found `AND`");
        assert_error(
            "a == 1 AND",
            10,
            "expected an expression, found end of text",
        );
        assert_error(
            "a == 1 OR OR b == 1",
            10,
            "expected an expression, found `OR`",
        );
        assert_error("NOT", 3, "expected an expression, found end of text");
    }

    #[test]
    fn unterminated_string() {
        assert_error(
            "\"unterminated",
            13,
            "unterminated string: the quote at position 0 is never closed",
        );
        assert_eq!(error("a == 'it\\'s").position, 11);
        assert_eq!(error(r"a == 'x\n'").position, 8);
    }

    #[test]
    fn missing_operator() {
        assert_error(
            "language foo",
            9,
            "expected an operator such as ==, IN or HAS after `language`, found `foo`",
        );
        assert_error("a NOT b", 6, "expected IN after NOT, found `b`");
        assert_eq!(error("'x'").position, 3);
        assert_eq!(error("1").position, 1);
        assert_eq!(error("a ! b").position, 2);
    }

    #[test]
    fn trailing_text() {
        assert_error(
            "a == 1 ORDER",
            7,
            "expected AND, OR or the end of the expression, found `ORDER`",
        );
        assert_eq!(error("a == 1 && b == 2").position, 7);
    }

    #[test]
    fn malformed_arrays_and_paths() {
        assert_error(
            "a IN [1 2]",
            8,
            "expected `,` or `]` in the array opened at position 5, found `2`",
        );
        assert_eq!(error("a IN [1,]").position, 8);
        assert_eq!(error("a == [1,").position, 8);
        assert_eq!(error("a. == 1").position, 2);
        assert_eq!(error("a[x] == 1").position, 2);
        assert_error(
            "a[1 == 1",
            3,
            "expected `]` after the array index, found whitespace",
        );
    }

    #[test]
    fn numbers_out_of_range() {
        assert_error("a == 1e999", 5, "number out of range: `1e999`");
        assert_eq!(error("a[99999999999999999999] == 1").position, 2);
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert_eq!(error("\"é\" == é").position, 7);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let parentheses = format!("{}a == 1{}", "(".repeat(100_000), ")".repeat(100_000));
        assert_eq!(error(&parentheses).position, 65);
        let nots = format!("{}a", "NOT ".repeat(100_000));
        assert_eq!(error(&nots).position, 260);
        let arrays = format!("a IN {}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(error(&arrays).position, 69);
        let allowed = format!("{}a == 1{}", "(".repeat(64), ")".repeat(64));
        assert!(Expression::parse(&allowed).is_ok());
    }
}
