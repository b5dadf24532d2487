//! The scenario parser against generated input: text built from TOML's own tokens, mutations of a
//! valid scenario, and documents of the right shape (the real keys) holding random values of random
//! types. `scenario::parse` must never panic, and every rejection must carry at least one diagnostic
//! placed inside the text, which must render.
//!
//! Deterministic: a fixed seed and a fixed number of cases per property, no failure files written.
//! For a longer hunt, `SCENARIO_FUZZ_CASES=100000 SCENARIO_FUZZ_SEED=9 cargo test -p loadgen --test it
//! fuzz` changes both.

use loadgen::scenario::{self, Diagnostics};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use toml::Value;

/// Cases per property.
const CASES: u32 = 256;

fn runner(property: u8) -> TestRunner {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    let config = Config {
        cases: env("SCENARIO_FUZZ_CASES").unwrap_or(CASES),
        failure_persistence: None,
        ..Config::default()
    };
    let mut seed = [property; 32];
    seed[..4].copy_from_slice(&env("SCENARIO_FUZZ_SEED").unwrap_or(0).to_le_bytes());
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed))
}

/// Parses `text` and checks what a rejection says; a panic inside fails the property.
fn check(text: &str) -> Result<(), TestCaseError> {
    let Err(d) = scenario::parse(text, "fuzz.toml") else {
        return Ok(());
    };
    prop_assert!(!d.is_empty(), "a rejection with no diagnostic");
    prop_assert!(
        d.items().iter().any(|item| placed(&d, item.span.clone(), text)),
        "no diagnostic placed inside the text:\n{d}\n--- text ---\n{text}"
    );
    let rendered = d.to_string();
    prop_assert!(rendered.contains("fuzz.toml"), "{rendered}");
    Ok(())
}

/// Whether `span` lies inside `text` and its line and column name a real place in it.
fn placed(d: &Diagnostics, span: Option<std::ops::Range<usize>>, text: &str) -> bool {
    let Some(span) = span else { return false };
    if span.start > span.end || span.end > text.len() {
        return false;
    }
    let (line, col) = d.line_col(span.start);
    let lines: Vec<&str> = text.split('\n').collect();
    line >= 1 && line <= lines.len() && col >= 1 && col <= lines[line - 1].chars().count() + 1
}

/// Pieces of scenario files: keys, table headers, values of every TOML type, and broken punctuation.
const TOKENS: &[&str] = &[
    "name",
    "seed",
    "description",
    "defaults",
    "timeout",
    "max_in_flight",
    "headers",
    "mix",
    "phases",
    "path",
    "method",
    "query",
    "body",
    "weight",
    "duration",
    "rate",
    "shape",
    "rps",
    "from",
    "to",
    "steps",
    "base",
    "peak",
    "at",
    "width",
    "mean",
    "amplitude",
    "period",
    "arrivals",
    "concurrency",
    "chaos",
    "fault",
    "status",
    "ratio",
    "routes",
    "delay",
    "jitter",
    "hold",
    "threads",
    "expect",
    "error_ratio",
    "p95",
    "checks",
    "alerts_firing",
    "[[phases]]",
    "[[mix]]",
    "[defaults]",
    "[phases.expect]",
    "[[phases.mix]]",
    "[",
    "]",
    "{",
    "}",
    "[[",
    "]]",
    "=",
    ",",
    ".",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "#",
    "\n",
    "\n",
    "\n",
    " ",
    "\t",
    "\r\n",
    "\\",
    "\\u",
    "\"90s\"",
    "\"0s\"",
    "\"1m30s\"",
    "\"-1s\"",
    "\"500ms\"",
    "\"/\"",
    "\"/slow\"",
    "\"constant\"",
    "\"ramp\"",
    "\"steps\"",
    "\"spike\"",
    "\"sine\"",
    "\"poisson\"",
    "\"error\"",
    "\"latency\"",
    "\"< 1%\"",
    "\"p95 < 300ms\"",
    "\"== 0\"",
    "0",
    "1",
    "-1",
    "50",
    "1e400",
    "-0.0",
    "1.5",
    "inf",
    "nan",
    "9223372036854775807",
    "99999999999999999999",
    "0x10",
    "true",
    "false",
    "1979-05-27T07:32:00Z",
    "é",
    "日本",
    "\u{0}",
    "\u{feff}",
    "🦀",
];

/// Text made of scenario tokens in random order.
fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..80).prop_map(|t| t.concat())
}

const VALID: &str = r#"name = "fuzzed"
seed = 7
[defaults]
timeout = "2s"
headers = { "user-agent" = "loadgen" }
[[mix]]
path = "/"
weight = 3
[[mix]]
method = "POST"
path = "/checkout"
body = { items = [{ sku = "A1", qty = 2 }] }
[[phases]]
name = "warm"
duration = "10s"
rate = { shape = "ramp", from = 1, to = 20 }
expect = { error_ratio = "< 1%", checks = ["p95 < 300ms"] }
[[phases]]
duration = "20s"
rate = { shape = "steps", steps = [{ rps = 5, duration = "10s" }, { rps = 9, duration = "10s" }] }
chaos = [{ fault = "error", status = 503, ratio = 0.3, routes = ["/"] }]
[[phases]]
duration = "5s"
concurrency = 2
mix = [{ path = "/slow", query = { ms = 5 } }]
"#;

/// One edit of a text, at char positions.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, &'static str),
    Duplicate(usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = 0..VALID.len();
    prop_oneof![
        (at.clone(), 1..40usize).prop_map(|(a, n)| Edit::Delete(a, n)),
        (at.clone(), prop::sample::select(TOKENS)).prop_map(|(a, t)| Edit::Insert(a, t)),
        (at.clone(), 1..80usize).prop_map(|(a, n)| Edit::Duplicate(a, n)),
        at.prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, e: &Edit) -> String {
    let chars: Vec<char> = text.chars().collect();
    let clamp = |i: usize| i.min(chars.len());
    let s = |a: usize, b: usize| chars[clamp(a)..clamp(b)].iter().collect::<String>();
    match *e {
        Edit::Delete(a, n) => s(0, a) + &s(a + n, chars.len()),
        Edit::Insert(a, t) => s(0, a) + t + &s(a, chars.len()),
        Edit::Duplicate(a, n) => s(0, a + n) + &s(a, chars.len()),
        Edit::Truncate(a) => s(0, a),
    }
}

/// A valid scenario with a few random edits.
fn mutated() -> impl Strategy<Value = String> {
    prop::collection::vec(edit(), 1..5)
        .prop_map(|edits| edits.iter().fold(VALID.to_owned(), |text, e| apply(&text, e)))
}

/// A TOML value of any type, small, sometimes nested.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Integer),
        prop_oneof![Just(0i64), Just(1), Just(-1), Just(50), Just(1_000_001)].prop_map(Value::Integer),
        any::<f64>().prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(
            &[
                "90s",
                "0s",
                "-1s",
                "1m30s",
                "500ms",
                "1h",
                "soon",
                "",
                "/",
                "/slow",
                "constant",
                "ramp",
                "steps",
                "spike",
                "sine",
                "even",
                "poisson",
                "error",
                "latency",
                "GET",
                "post",
                "< 1%",
                "> 0.25",
                "p95 < 300ms",
                "== 0",
                "HighErrorRate",
            ][..]
        )
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(TOKENS), inner), 0..3)
                .prop_map(|kv| { Value::Table(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()) }),
        ]
    })
}

/// How far generated documents stray from a valid scenario.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// The real keys with values of the expected type, drawn from valid and invalid examples: many
    /// documents pass, and the rest fail deep inside validation.
    Tame,
    /// The same, plus values of any type in any key and keys that do not belong.
    Wild,
}

/// A table with `required` and some of `optional` keys (and, when wild, now and then a key that does
/// not belong), each holding a value from `value` or, when wild, one time in four, of any type.
fn table_of(
    shape: Shape,
    required: &'static [&'static str],
    optional: &'static [&'static str],
    value: impl Fn(&'static str) -> BoxedStrategy<Value>,
) -> BoxedStrategy<Value> {
    let field = |k: &'static str, p: f64| {
        let typed = match shape {
            Shape::Tame => value(k),
            Shape::Wild => prop_oneof![3 => value(k), 1 => any_value()].boxed(),
        };
        prop::option::weighted(p, typed.prop_map(move |v| (k.to_owned(), v))).boxed()
    };
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = required
        .iter()
        .map(|k| field(k, 0.97))
        .chain(optional.iter().map(|k| field(k, 0.4)))
        .collect();
    let stray = match shape {
        Shape::Tame => Just(None).boxed(),
        Shape::Wild => prop::option::weighted(0.1, ("[a-z_]{1,8}", any_value())).boxed(),
    };
    (fields, stray)
        .prop_map(|(fields, stray)| {
            let mut table = toml::map::Map::new();
            for (k, v) in fields.into_iter().flatten().chain(stray) {
                table.insert(k, v);
            }
            Value::Table(table)
        })
        .boxed()
}

/// One of `options`, mostly the first ones (the valid examples come first in each list).
fn text(options: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        3 => prop::sample::select(&options[..options.len().min(2)]),
        1 => prop::sample::select(options),
    ]
    .prop_map(|s| Value::String(s.to_owned()))
    .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => (1i64..200).prop_map(Value::Integer),
        1 => (-5i64..2_000_000).prop_map(Value::Integer),
        1 => (-5.0f64..2000.0).prop_map(Value::Float),
    ]
    .boxed()
}

fn array(of: BoxedStrategy<Value>, len: std::ops::Range<usize>) -> BoxedStrategy<Value> {
    prop::collection::vec(of, len).prop_map(Value::Array).boxed()
}

const DURATIONS: &[&str] = &[
    "1s", "2s", "90s", "0s", "500ms", "1m30s", "-3s", "2h", "1.5s", "s", "",
];

fn rate(shape: Shape) -> BoxedStrategy<Value> {
    prop_oneof![
        table_of(shape, &["shape", "rps"], &[], |k| match k {
            "shape" => text(&["constant", "ramp", "sine"]),
            _ => number(),
        }),
        table_of(shape, &["shape", "from", "to"], &[], |k| match k {
            "shape" => text(&["ramp", "constant"]),
            _ => number(),
        }),
        table_of(shape, &["shape", "steps"], &[], move |k| match k {
            "shape" => text(&["steps", "spike"]),
            _ => array(
                table_of(shape, &["rps", "duration"], &[], |k| match k {
                    "duration" => text(DURATIONS),
                    _ => number(),
                }),
                0..3,
            ),
        }),
        table_of(
            shape,
            &["shape", "base", "peak", "at", "width"],
            &[],
            |k| match k {
                "shape" => text(&["spike", "square"]),
                "at" | "width" => text(DURATIONS),
                _ => number(),
            }
        ),
        table_of(
            shape,
            &["shape", "mean", "amplitude", "period"],
            &[],
            |k| match k {
                "shape" => text(&["sine", "constant"]),
                "period" => text(DURATIONS),
                _ => number(),
            }
        ),
    ]
    .boxed()
}

fn request(shape: Shape) -> BoxedStrategy<Value> {
    table_of(
        shape,
        &["path"],
        &["name", "method", "query", "headers", "body", "weight"],
        move |k| match k {
            "method" => text(&["GET", "post", "TRACE", "", "DELETE"]),
            "path" => text(&["/", "/slow", "slow", "", "/a b", "/é"]),
            "query" => prop_oneof![
                text(&["ms=5", "a=1&b=2", "", "%zz"]),
                table_of(shape, &[], &["ms", "type"], |_| number()),
            ]
            .boxed(),
            "headers" => table_of(shape, &[], &["x-team", "bad header"], |_| {
                text(&["sre", "", "a\nb"])
            }),
            "body" => prop_oneof![
                text(&["{}", "plain"]),
                table_of(shape, &["items"], &[], |_| any_value().boxed()),
            ]
            .boxed(),
            "weight" => number(),
            _ => text(&["buy", "browse", "", "buy"]),
        },
    )
}

fn fault(shape: Shape) -> BoxedStrategy<Value> {
    table_of(
        shape,
        &["fault"],
        &[
            "status", "ratio", "routes", "delay", "jitter", "hold", "threads", "duration",
        ],
        |k| match k {
            "fault" => text(&[
                "error",
                "latency",
                "timeout",
                "reset",
                "downstream",
                "cpu",
                "memory",
                "outage",
                "gremlin",
            ]),
            "ratio" => (-0.5f64..1.5).prop_map(Value::Float).boxed(),
            "routes" => array(text(&["/", "/slow", "/health", "/nope"]), 0..3),
            "delay" | "jitter" | "hold" | "duration" => text(DURATIONS),
            _ => number(),
        },
    )
}

fn expect(shape: Shape) -> BoxedStrategy<Value> {
    table_of(
        shape,
        &[],
        &[
            "requests",
            "error_ratio",
            "p95",
            "max",
            "dropped",
            "checks",
            "alerts_firing",
            "alerts_resolved",
        ],
        |k| match k {
            "checks" => array(
                text(&["p95 < 300ms", "rps >= 9", "p(99) < 2s", "nonsense", "p95 <"]),
                0..3,
            ),
            "alerts_firing" | "alerts_resolved" => array(text(&["HighErrorRate", "High Error", ""]), 0..2),
            _ => text(&["< 1%", "> 0.25", "< 300ms", "== 0", ">= 10", "<", "1", "< -1s"]),
        },
    )
}

fn phase(shape: Shape) -> BoxedStrategy<Value> {
    prop_oneof![
        table_of(
            shape,
            &["duration", "rate"],
            &["name", "arrivals", "mix", "chaos", "expect", "concurrency"],
            move |k| phase_value(shape, k),
        ),
        table_of(
            shape,
            &["duration", "concurrency"],
            &["name", "mix", "chaos", "expect", "rate"],
            move |k| phase_value(shape, k),
        ),
    ]
    .boxed()
}

fn phase_value(shape: Shape, key: &str) -> BoxedStrategy<Value> {
    match key {
        "duration" => text(DURATIONS),
        "rate" => rate(shape),
        "arrivals" => text(&["even", "poisson", "bursty"]),
        "concurrency" => number(),
        "mix" => array(request(shape), 0..3),
        "chaos" => array(fault(shape), 0..3),
        "expect" => expect(shape),
        _ => text(&["warm", "spike", "", "warm"]),
    }
}

/// A whole scenario document with the real keys, serialized to TOML.
fn shaped(shape: Shape) -> impl Strategy<Value = String> {
    table_of(
        shape,
        &["mix", "phases"],
        &["name", "description", "seed", "defaults"],
        move |k| match k {
            "seed" => prop_oneof![number(), any::<i64>().prop_map(Value::Integer).boxed()].boxed(),
            "defaults" => table_of(
                shape,
                &[],
                &["timeout", "max_in_flight", "headers"],
                move |k| match k {
                    "timeout" => text(DURATIONS),
                    "max_in_flight" => number(),
                    _ => table_of(shape, &[], &["user-agent", "x-team"], |_| {
                        text(&["loadgen", "", "a\nb"])
                    }),
                },
            ),
            "mix" => array(request(shape), 1..4),
            "phases" => array(phase(shape), 1..4),
            _ => text(&["fuzzed", "", "a \"quoted\" name"]),
        },
    )
    .prop_filter_map("serializable as TOML", |v| toml::to_string(&v).ok())
}

#[test]
fn the_parser_survives_token_soup() {
    runner(1).run(&token_soup(), |t| check(&t)).unwrap();
}

#[test]
fn the_parser_survives_arbitrary_text() {
    runner(2).run(&"\\PC{0,200}", |t| check(&t)).unwrap();
}

#[test]
fn the_parser_survives_edits_of_a_valid_scenario() {
    assert!(
        scenario::parse(VALID, "valid.toml").is_ok(),
        "the base scenario is valid"
    );
    runner(3).run(&mutated(), |t| check(&t)).unwrap();
}

/// Runs `check` over documents of `shape`, returning how many were accepted and rejected.
fn shaped_documents(shape: Shape, property: u8) -> (u32, u32) {
    let accepted = std::cell::Cell::new(0u32);
    let rejected = std::cell::Cell::new(0u32);
    runner(property)
        .run(&shaped(shape), |t| {
            match scenario::parse(&t, "fuzz.toml") {
                Ok(_) => accepted.set(accepted.get() + 1),
                Err(_) => rejected.set(rejected.get() + 1),
            }
            check(&t)
        })
        .unwrap();
    (accepted.get(), rejected.get())
}

#[test]
fn the_parser_survives_documents_of_the_right_shape() {
    // Both outcomes are reached, so validation is exercised past the first error and to the end.
    let (accepted, rejected) = shaped_documents(Shape::Tame, 4);
    eprintln!("documents of the right shape: {accepted} accepted, {rejected} rejected");
    assert!(
        accepted > 0 && rejected > 0,
        "tame: {accepted} accepted, {rejected} rejected"
    );
    let (_, rejected) = shaped_documents(Shape::Wild, 5);
    assert!(rejected > 0, "wild documents are rejected");
}
