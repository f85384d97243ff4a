//! Routing-expression micro-benchmark: how fast `target_workers`-style expressions compile and
//! evaluate, against the same predicates written by hand in Rust over `serde_json`.
//!
//! Prints, in one run:
//! - parse: compilations per second of a realistic skills-routing expression;
//! - evaluate: evaluations per second of three compiled expressions (a simple equality, a
//!   HAS/IN/AND/OR mix, a nested-path one) over 10,000 varied worker attribute documents;
//! - the baseline, measured in the same process (alternating rounds with the evaluator, best
//!   round of each): the hand-written predicate over the same documents, and the ratio of the evaluator's time per document to the baseline's. The ratio is
//!   what the interpreter (tree walk, dynamic scope lookup, typed comparison rules) costs over code
//!   the compiler sees whole. Both sides must select the same workers, which the run checks.
//!
//! Run with `cargo bench -p switchboard-host --bench expressions` (about 15 s).

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_host::routing::expression::{Document, Expression};

const WORKERS: usize = 10_000;
const PARSE_TIME: Duration = Duration::from_secs(2);
/// Evaluator and baseline alternate in short rounds and each keeps its best round, so a burst of
/// other work on the machine does not land on one side only.
const ROUNDS: usize = 6;
const ROUND_TIME: Duration = Duration::from_millis(350);

const SKILLS: [&str; 6] = [
    "support",
    "billing",
    "sales",
    "onboarding",
    "claims",
    "retention",
];
const LANGUAGES: [&str; 4] = ["english", "spanish", "french", "german"];
const REGIONS: [&str; 4] = ["emea", "apac", "amer", "latam"];
const TEAMS: [&str; 3] = ["red", "blue", "green"];
const CERTIFICATIONS: [&str; 3] = ["gold", "silver", "bronze"];

const MIX: &str = "(skills HAS 'support' OR skills HAS 'billing') AND languages HAS 'english' \
                   AND level >= 3 AND region IN ['emea', 'apac']";

fn main() {
    let workers = worker_documents(WORKERS);
    println!("routing expressions: {WORKERS} worker attribute documents");

    let parse_rate = rate(PARSE_TIME, 1, || {
        black_box(Expression::parse(black_box(MIX))).is_ok()
    });
    println!("parse     {parse_rate:>12.0} expressions/s  `{MIX}`");

    compare_with_baseline(&workers, "simple equality", "region == 'emea'", |worker| {
        worker.get("region").and_then(Value::as_str) == Some("emea")
    });
    compare_with_baseline(&workers, "HAS/IN/AND/OR mix", MIX, |worker| {
        (array_has(worker, "skills", "support") || array_has(worker, "skills", "billing"))
            && array_has(worker, "languages", "english")
            && worker
                .get("level")
                .and_then(Value::as_f64)
                .is_some_and(|level| level >= 3.0)
            && worker
                .get("region")
                .and_then(Value::as_str)
                .is_some_and(|region| region == "emea" || region == "apac")
    });
    compare_with_baseline(
        &workers,
        "nested path",
        "profile.team.name == 'red' AND profile.certifications[0] == 'gold'",
        |worker| {
            let profile = worker.get("profile");
            profile
                .and_then(|profile| profile.get("team"))
                .and_then(|team| team.get("name"))
                .and_then(Value::as_str)
                == Some("red")
                && profile
                    .and_then(|profile| profile.get("certifications"))
                    .and_then(|certifications| certifications.get(0))
                    .and_then(Value::as_str)
                    == Some("gold")
        },
    );
}

/// Measures the compiled `text` and the hand-written `baseline` (generic, so the compiler inlines
/// it as it would in real code) over the same workers, after checking they select the same ones.
fn compare_with_baseline(
    workers: &[Value],
    name: &str,
    text: &str,
    baseline: impl Fn(&Value) -> bool,
) {
    let expression = match Expression::parse(text) {
        Ok(expression) => expression,
        Err(error) => panic!("{name}: {error}"),
    };
    let selected = workers
        .iter()
        .filter(|worker| expression.evaluate(&Document(worker)))
        .count();
    let expected = workers.iter().filter(|worker| baseline(worker)).count();
    assert_eq!(
        selected, expected,
        "{name}: evaluator and baseline disagree"
    );

    let mut evaluator = 0f64;
    let mut hand_written = 0f64;
    for _ in 0..ROUNDS {
        evaluator = evaluator.max(rate(ROUND_TIME, workers.len(), || {
            workers
                .iter()
                .filter(|worker| black_box(&expression).evaluate(&Document(black_box(worker))))
                .count()
                > 0
        }));
        hand_written = hand_written.max(rate(ROUND_TIME, workers.len(), || {
            workers
                .iter()
                .filter(|worker| baseline(black_box(worker)))
                .count()
                > 0
        }));
    }
    println!(
        "evaluate  {evaluator:>12.0} evaluations/s  baseline {hand_written:>12.0}/s  \
         evaluator/baseline time {:>5.2}x  ({selected} of {} match)  {name}: `{text}`",
        hand_written / evaluator,
        workers.len(),
    );
}

/// Runs `pass` (which does `per_pass` operations) repeatedly for at least `duration` after one
/// warm-up pass, and returns operations per second.
fn rate(duration: Duration, per_pass: usize, mut pass: impl FnMut() -> bool) -> f64 {
    black_box(pass());
    let start = Instant::now();
    let mut passes = 0u64;
    while start.elapsed() < duration {
        for _ in 0..16 {
            black_box(pass());
        }
        passes += 16;
    }
    (passes as f64 * per_pass as f64) / start.elapsed().as_secs_f64()
}

fn array_has(worker: &Value, key: &str, needle: &str) -> bool {
    worker
        .get(key)
        .and_then(Value::as_array)
        .is_some_and(|items| items.iter().any(|item| item.as_str() == Some(needle)))
}

/// Deterministic, varied worker attributes (xorshift, fixed seed) so runs are comparable.
fn worker_documents(count: usize) -> Vec<Value> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    (0..count)
        .map(|index| {
            let skills: Vec<&str> = SKILLS.iter().copied().filter(|_| next(3) == 0).collect();
            let languages: Vec<&str> = LANGUAGES.iter().copied().filter(|_| next(2) == 0).collect();
            let certifications: Vec<&str> =
                (0..next(3)).map(|_| CERTIFICATIONS[next(CERTIFICATIONS.len())]).collect();
            let mut worker = json!({
                "name": format!("agent-{index}"),
                "contact_uri": format!("client:agent-{index}"),
                "skills": skills,
                "languages": languages,
                "level": next(6),
                "region": REGIONS[next(REGIONS.len())],
                "profile": {"team": {"name": TEAMS[next(TEAMS.len())]}, "certifications": certifications},
            });
            // Some workers lack attributes altogether, as real fleets do.
            if next(10) == 0
                && let Some(attributes) = worker.as_object_mut()
            {
                attributes.remove("level");
            }
            worker
        })
        .collect()
}
