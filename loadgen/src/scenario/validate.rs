//! Raw file → checked model, collecting every problem rather than stopping at the first.
//!
//! Each check pushes a [`Diagnostic`] positioned from a `Spanned` field or, inside rate shapes and faults
//! (which serde cannot position), from the document path. A model is returned only when nothing was
//! pushed, here or earlier by deserialization. Requests and mixes are checked in [`super::request`],
//! pacing in [`super::load`] and expectations in [`super::expect`].

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::ops::Range;
use std::time::Duration;

use http::HeaderMap;
use target_app::chaos::Fault;
use target_app::duration::ParseDurationError;
use toml::de::DeValue;
use toml::Spanned;

use super::diag::{Diagnostic, SerdeMessage};
use super::document::{serde_diagnostic, Document};
use super::model::{Defaults, Mix, Phase, Scenario};
use super::raw::{Checked, RawDefaults, RawPhase, RawScenario};
use super::{expect, load, request};

/// Where validation reports to.
pub(super) struct Ctx<'a> {
    pub(super) doc: &'a Document<'a>,
    pub(super) source: &'a str,
    /// Keys already reported and removed by deserialization: not to be reported again as missing.
    pub(super) removed: &'a [String],
    pub(super) errors: Vec<Diagnostic>,
    /// Values of `${NAME}` references.
    pub(super) env: super::env::Lookup<'a>,
}

impl Ctx<'_> {
    pub(super) fn push(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    /// Whether the key at `path` was removed after an error, or a key so close to it that it was
    /// probably meant (`duraton` for `duration`): either way the user has already been told.
    pub(super) fn was_removed(&self, path: &str) -> bool {
        let (table, key) = path.rsplit_once('.').unwrap_or(("", path));
        self.removed.iter().any(|r| {
            let (r_table, r_key) = r.rsplit_once('.').unwrap_or(("", r));
            r == path || (r_table == table && strsim::jaro_winkler(r_key, key) >= 0.8)
        })
    }

    /// The span of the part `inner` of a string value at `span`, when the string has no escapes.
    pub(super) fn inside_string(&self, span: &Range<usize>, inner: &Range<usize>) -> Range<usize> {
        let raw = self.source.get(span.clone()).unwrap_or("");
        let plain = (raw.starts_with('"') && !raw.starts_with("\"\"\"") && !raw.contains('\\'))
            || (raw.starts_with('\'') && !raw.starts_with("'''"));
        if plain && inner.end + 2 <= raw.len() {
            span.start + 1 + inner.start..span.start + 1 + inner.end
        } else {
            span.clone()
        }
    }

    /// A duration written as text, more than zero and at most [`MAX_DURATION`]; `what` names it in
    /// messages.
    pub(super) fn duration(
        &mut self,
        text: &str,
        span: Option<Range<usize>>,
        what: &str,
    ) -> Option<Duration> {
        match target_app::duration::parse(text) {
            Ok(d) if d.is_zero() => {
                self.push(
                    Diagnostic::new(format!("`{what}` must be more than 0"), span)
                        .expected("a duration such as \"90s\", \"2m\" or \"500ms\""),
                );
                None
            }
            Ok(d) => Some(d),
            Err(ParseDurationError::TooLong { .. }) => {
                self.push(too_long(what, text, span));
                None
            }
            Err(ParseDurationError::Invalid { .. }) => {
                let hint = if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
                    format!("add a unit: \"{text}s\" or \"{text}ms\"")
                } else if text.contains('.') {
                    "whole numbers only: write \"1500ms\" for 1.5 seconds".to_owned()
                } else {
                    "units are ms, s, m and h; they can be combined, as in \"1m30s\"".to_owned()
                };
                self.push(
                    Diagnostic::new(format!("invalid duration `{text}` for `{what}`"), span)
                        .expected("a duration such as \"90s\", \"2m\", \"1m30s\" or \"500ms\"")
                        .hint(hint),
                );
                None
            }
        }
    }

    /// A problem inside a value that deserialized into [`Checked::Invalid`] at `path`, positioned as
    /// closely as the document allows. `tag` is the key that selects the kind (`shape`, `fault`), and
    /// `example` gives a complete value of a kind.
    pub(super) fn checked_error(
        &mut self,
        message: &str,
        path: &str,
        span: Range<usize>,
        tag: &str,
        example: fn(&str) -> &'static str,
    ) {
        let d = match SerdeMessage::parse(message) {
            SerdeMessage::UnknownField { name, .. } => {
                let hits = self.doc.find_under(path, &|key, _| key == name);
                let at = match hits.as_slice() {
                    [one] => self.doc.key_span(one),
                    _ => None,
                };
                serde_diagnostic(message, None, at.or(Some(span)))
            }
            SerdeMessage::UnknownVariant { .. } => {
                let tag_path = format!("{path}.{tag}");
                serde_diagnostic(
                    message,
                    Some(&tag_path),
                    self.doc.value_span(&tag_path).or(Some(span)),
                )
            }
            SerdeMessage::MissingField(name) => {
                let kind = self
                    .doc
                    .find_under(path, &|key, v| key == tag && v.as_str().is_some());
                let kind = kind
                    .first()
                    .and_then(|p| self.doc.value_str(p))
                    .unwrap_or_default();
                Diagnostic::new(format!("missing key `{name}`"), Some(span))
                    .hint(format!("write e.g. `{}`", example(&kind)))
            }
            SerdeMessage::InvalidType { found, .. } => {
                let hits = self.doc.find_under(path, &|_, v| literal_matches(v, &found));
                let whole = !self.doc.is_table(path);
                match hits.as_slice() {
                    [one] => serde_diagnostic(message, Some(one), self.doc.value_span(one).or(Some(span))),
                    _ => serde_diagnostic(message, whole.then_some(path), Some(span)),
                }
            }
            // A value's own check failed (a duration too long, say): its message quotes the value.
            SerdeMessage::Other(text) => {
                let hits = match text.split('`').nth(1) {
                    Some(quoted) => self.doc.find_under(path, &|_, v| v.as_str() == Some(quoted)),
                    None => Vec::new(),
                };
                match hits.as_slice() {
                    [one] => serde_diagnostic(message, Some(one), self.doc.value_span(one).or(Some(span))),
                    _ => serde_diagnostic(message, None, Some(span)),
                }
            }
            _ => serde_diagnostic(message, None, Some(span)),
        };
        self.push(d);
    }
}

/// The longest duration a scenario may give anywhere, and the longest a whole scenario may last.
pub(super) const MAX_DURATION: Duration = target_app::duration::MAX;

/// `what`, written `text`, is longer than [`MAX_DURATION`].
fn too_long(what: &str, text: &str, span: Option<Range<usize>>) -> Diagnostic {
    let max = target_app::duration::format(MAX_DURATION);
    Diagnostic::new(format!("`{what}` is too long: `{text}` is more than {max}"), span)
        .expected(format!("a duration of at most {max} (one year)"))
}

/// A complete fault of each kind that has required keys, for hints.
fn fault_example(kind: &str) -> &'static str {
    match kind {
        "latency" => "{ fault = \"latency\", delay = \"500ms\", ratio = 0.5 }",
        "memory" => "{ fault = \"memory\", mb_per_second = 10, limit_mb = 512 }",
        "outage" => "{ fault = \"outage\", duration = \"90s\" }",
        _ => "{ fault = \"error\", status = 500, ratio = 0.3 }",
    }
}

/// Whether a TOML value is the one serde described as `found` (`a number `90``, `a string "x"`).
fn literal_matches(value: &DeValue<'_>, found: &str) -> bool {
    let quoted = |s: &str| {
        found
            .strip_prefix("a string ")
            .is_some_and(|q| q == format!("{s:?}"))
    };
    let number = |s: &str| found.strip_prefix("a number `").and_then(|r| r.strip_suffix('`')) == Some(s);
    match value {
        DeValue::String(s) => quoted(s),
        DeValue::Integer(i) => number(i.as_str()),
        DeValue::Float(f) => number(f.as_str()),
        DeValue::Boolean(b) => found == format!("a boolean `{b}`"),
        _ => false,
    }
}

/// Checks the whole scenario. `default_name` names it when the file does not.
pub(super) fn scenario(raw: RawScenario, ctx: &mut Ctx<'_>, default_name: &str) -> Option<Scenario> {
    let name = match raw.name {
        Some(n) if n.get_ref().trim().is_empty() => {
            ctx.push(
                Diagnostic::new("the scenario name is empty", Some(n.span()))
                    .hint("remove `name` to use the file name"),
            );
            String::new()
        }
        Some(n) => n.into_inner(),
        None => default_name.to_owned(),
    };
    let seed = match raw.seed {
        Some(s) if *s.get_ref() < 0 => {
            ctx.push(
                Diagnostic::new(
                    format!("`seed` must not be negative, got {}", s.get_ref()),
                    Some(s.span()),
                )
                .expected("a whole number from 0"),
            );
            1
        }
        Some(s) => s.into_inner().unsigned_abs(),
        None => 1,
    };
    let defaults = defaults(raw.defaults, ctx);
    let top_mix = raw.mix.map(|m| request::mix(m, "mix", &defaults.headers, ctx));
    let phases = phases(raw.phases, top_mix.as_ref(), &defaults.headers, ctx);
    ctx.errors.is_empty().then(|| Scenario {
        name,
        description: raw.description.unwrap_or_default(),
        seed,
        defaults,
        mix: top_mix.flatten(),
        phases,
    })
}

fn defaults(raw: Option<RawDefaults>, ctx: &mut Ctx<'_>) -> Defaults {
    let raw = raw.unwrap_or(RawDefaults {
        timeout: None,
        max_in_flight: None,
        headers: None,
    });
    let timeout = raw
        .timeout
        .and_then(|t| ctx.duration(t.get_ref(), Some(t.span()), "timeout"))
        .unwrap_or(Duration::from_secs(10));
    let max_in_flight = match raw.max_in_flight {
        None => NonZeroU32::new(1000),
        Some(n) => {
            let value = positive(ctx, &n, "max_in_flight", 1_000_000);
            value.or(NonZeroU32::new(1000))
        }
    }
    .unwrap_or(NonZeroU32::MIN);
    let mut headers = HeaderMap::new();
    if let Some(h) = &raw.headers {
        request::headers(h.get_ref(), &mut headers, ctx);
    }
    Defaults {
        timeout,
        max_in_flight,
        headers,
    }
}

/// A whole number from 1 to `max`.
pub(super) fn positive(ctx: &mut Ctx<'_>, n: &Spanned<i64>, what: &str, max: u32) -> Option<NonZeroU32> {
    let value = *n.get_ref();
    let checked = u32::try_from(value)
        .ok()
        .filter(|v| *v <= max)
        .and_then(NonZeroU32::new);
    if checked.is_none() {
        let problem = if value < 1 {
            "must be at least 1"
        } else {
            "is too large"
        };
        ctx.push(
            Diagnostic::new(format!("`{what}` {problem}, got {value}"), Some(n.span()))
                .expected(format!("a whole number from 1 to {max}")),
        );
    }
    checked
}

fn phases(
    raw: Option<Spanned<Vec<Spanned<RawPhase>>>>,
    top_mix: Option<&Option<Mix>>,
    headers: &HeaderMap,
    ctx: &mut Ctx<'_>,
) -> Vec<Phase> {
    let example =
        "add one, e.g. `[[phases]]` with `duration = \"1m\"` and `rate = { shape = \"constant\", rps = 10 }`";
    let Some(raw) = raw else {
        if !ctx.was_removed("phases") {
            // Placed after the last line of text, where a `[[phases]]` table would go.
            let end = ctx.source.trim_end().len();
            ctx.push(Diagnostic::new("the scenario has no phases", Some(end..end)).hint(example));
        }
        return Vec::new();
    };
    if raw.get_ref().is_empty() {
        ctx.push(Diagnostic::new("the scenario has no phases", Some(raw.span())).hint(example));
    }
    let mut names: HashMap<String, Range<usize>> = HashMap::new();
    let mut out = Vec::new();
    // How long the phases so far last together; `None` once past the maximum (reported once).
    let mut elapsed = Some(Duration::ZERO);
    for (i, p) in raw.into_inner().into_iter().enumerate() {
        let span = p.span();
        let duration_span = p.get_ref().duration.as_ref().map(Spanned::span);
        let rate_span = p.get_ref().rate.as_ref().map(Spanned::span);
        let raw_name = p.get_ref().name.as_ref().map(|n| (n.get_ref().clone(), n.span()));
        let name = raw_name
            .as_ref()
            .map_or_else(|| format!("phase-{}", i + 1), |(n, _)| n.clone());
        let name_span = raw_name.map_or(span.clone(), |(_, s)| s);
        if name.trim().is_empty() {
            ctx.push(Diagnostic::new(
                "the phase name is empty",
                Some(name_span.clone()),
            ));
        }
        if let Some(first) = names.get(&name) {
            let (line, _) = super::diag::line_col(ctx.source, first.start);
            ctx.push(
                Diagnostic::new(format!("duplicate phase name `{name}`"), Some(name_span.clone())).hint(
                    format!("phase names must be unique; `{name}` is already used on line {line}"),
                ),
            );
        } else {
            names.insert(name.clone(), name_span);
        }
        if let Some(phase) = phase(p.into_inner(), span.clone(), i, name, top_mix, headers, ctx) {
            let before = elapsed;
            elapsed = elapsed
                .and_then(|e| e.checked_add(phase.duration))
                .filter(|e| *e <= MAX_DURATION);
            if before.is_some() && elapsed.is_none() {
                let max = target_app::duration::format(MAX_DURATION);
                ctx.push(
                    Diagnostic::new(
                        format!("with phase `{}` the scenario lasts more than {max}", phase.name),
                        duration_span.or(rate_span).or(Some(span)),
                    )
                    .expected(format!("phases that last at most {max} (one year) together"))
                    .hint("shorten this phase or the ones before it, or split the scenario in two"),
                );
            }
            out.push(phase);
        }
    }
    out
}

fn phase(
    raw: RawPhase,
    span: Range<usize>,
    index: usize,
    name: String,
    top_mix: Option<&Option<Mix>>,
    headers: &HeaderMap,
    ctx: &mut Ctx<'_>,
) -> Option<Phase> {
    let path = format!("phases[{index}]");
    let duration = raw
        .duration
        .as_ref()
        .and_then(|d| ctx.duration(d.get_ref(), Some(d.span()), "duration"));
    let load = load::load(&raw, &path, &span, duration, &name, ctx);
    let mix = match (raw.mix, top_mix) {
        (Some(own), _) => request::mix(own, &format!("{path}.mix"), headers, ctx).map(|m| (m, true)),
        (None, Some(top)) => top.clone().map(|m| (m, false)),
        (None, None) => {
            if !ctx.was_removed("mix") && !ctx.was_removed(&format!("{path}.mix")) {
                ctx.push(
                    Diagnostic::new(
                        format!("phase `{name}` has no requests to send"),
                        Some(span.clone()),
                    )
                    .hint(
                        "add `[[mix]]` requests to the scenario, or `mix = [{ path = \"/\" }]` to the phase",
                    ),
                );
            }
            None
        }
    };
    let chaos = raw
        .chaos
        .map(|c| chaos(c, &path, duration, ctx))
        .unwrap_or_default();
    let expect = raw
        .expect
        .map(|e| expect::expectations(e, ctx))
        .unwrap_or_default();
    let ((load, duration), (mix, own_mix)) = (load?, mix?);
    Some(Phase {
        name,
        duration,
        load,
        mix,
        own_mix,
        chaos,
        expect,
    })
}

/// The faults of the phase at `path`, lasting `duration` when that is valid.
fn chaos(
    raw: Spanned<Vec<Spanned<Checked<Fault>>>>,
    path: &str,
    duration: Option<std::time::Duration>,
    ctx: &mut Ctx<'_>,
) -> Vec<Fault> {
    let list_span = raw.span();
    let mut out = Vec::new();
    for (i, f) in raw.into_inner().into_iter().enumerate() {
        let at = format!("{path}.chaos[{i}]");
        let span = f.span();
        match f.into_inner() {
            Checked::Invalid(message) => ctx.checked_error(&message, &at, span, "fault", fault_example),
            Checked::Valid(fault) => {
                for e in fault.validate(&at) {
                    let place = ctx.doc.value_span(&e.field).unwrap_or(span.clone());
                    let key = e.field.rsplit('.').next().unwrap_or(&e.field).to_owned();
                    let (what, expected) = e
                        .problem
                        .split_once(", got ")
                        .map_or((e.problem.as_str(), None), |(w, got)| (w, Some(got)));
                    let message = match expected {
                        Some(got) => format!("`{key}` {what}, got {got}"),
                        None => format!("`{key}`: {what}"),
                    };
                    ctx.push(Diagnostic::new(message, Some(place)));
                }
                // An outage closes the target's listener, chaos API included: one that outlasts its
                // phase leaves the next phase (or the run's end) unable to change or clear faults.
                if let (Fault::Outage(o), Some(phase)) = (&fault, duration) {
                    if o.duration >= phase {
                        let place = ctx
                            .doc
                            .value_span(&format!("{at}.duration"))
                            .unwrap_or(span.clone());
                        ctx.push(
                            Diagnostic::new(
                                format!(
                                    "an outage of {} outlasts its phase ({}): the target's chaos API is down \
                                     with it, so the next phase could not set its faults and the run could \
                                     not clear them",
                                    target_app::duration::format(o.duration),
                                    target_app::duration::format(phase)
                                ),
                                Some(place),
                            )
                            .hint("make the outage shorter than the phase, or make the phase longer"),
                        );
                    }
                }
                out.push(fault);
            }
        }
    }
    if out.iter().filter(|f| matches!(f, Fault::Outage(_))).count() > 1 {
        ctx.push(Diagnostic::new(
            "a phase can have at most one outage fault",
            Some(list_span.clone()),
        ));
    }
    // What the target refuses for a request as a whole, refused here before anything is sent.
    let whole = target_app::chaos::ChaosSpec {
        seed: 0,
        faults: out.clone(),
    };
    for e in target_app::admin::limits(&whole) {
        ctx.push(Diagnostic::new(
            format!("a phase's faults: {}", e.problem),
            Some(list_span.clone()),
        ));
    }
    out
}
