//! Checks of a phase's `expect` table: keyed and listed conditions, and alert names. Part of validation;
//! see [`super::validate`].

use std::collections::HashMap;

use toml::Spanned;

use super::condition::{Condition, ConditionError, Metric};
use super::diag::{one_of, Diagnostic};
use super::model::Expectations;
use super::raw::RawExpect;
use super::validate::Ctx;

pub(super) fn expectations(raw: Spanned<RawExpect>, ctx: &mut Ctx<'_>) -> Expectations {
    let raw = raw.into_inner();
    let keyed = [
        (Metric::Requests, &raw.requests),
        (Metric::Rps, &raw.rps),
        (Metric::ErrorRatio, &raw.error_ratio),
        (Metric::Errors, &raw.errors),
        (Metric::P50, &raw.p50),
        (Metric::P90, &raw.p90),
        (Metric::P95, &raw.p95),
        (Metric::P99, &raw.p99),
        (Metric::P999, &raw.p999),
        (Metric::Max, &raw.max),
        (Metric::Mean, &raw.mean),
        (Metric::LateRatio, &raw.late_ratio),
        (Metric::Dropped, &raw.dropped),
    ];
    let mut out = Expectations::default();
    for (metric, text) in keyed {
        if let Some(text) = text {
            match Condition::parse_for(metric, text.get_ref()) {
                Ok(c) => out.conditions.push(c),
                Err(e) => condition_error(ctx, e, text, Some(metric)),
            }
        }
    }
    for text in raw.checks.iter().flatten() {
        match text.get_ref().parse::<Condition>() {
            Ok(c) => out.conditions.push(c),
            Err(e) => condition_error(ctx, e, text, None),
        }
    }
    let lists = [
        ("alerts_firing", raw.alerts_firing, &mut out.alerts_firing),
        ("alerts_inactive", raw.alerts_inactive, &mut out.alerts_inactive),
        ("alerts_resolved", raw.alerts_resolved, &mut out.alerts_resolved),
    ];
    let mut seen: HashMap<String, &str> = HashMap::new();
    let mut out_spans = Vec::new();
    for (list, names, into) in lists {
        for name in names.into_iter().flatten() {
            if !alert_name(&name, ctx) {
                continue;
            }
            if let Some(other) = seen.insert(name.get_ref().clone(), list) {
                let which = if other == list {
                    "twice".to_owned()
                } else {
                    format!("in both `{other}` and `{list}`")
                };
                ctx.push(Diagnostic::new(
                    format!("alert `{}` is listed {which}", name.get_ref()),
                    Some(name.span()),
                ));
            } else {
                out_spans.push((name.get_ref().clone(), name.span()));
                into.push(name.into_inner());
            }
        }
    }
    out.alert_spans = out_spans;
    // A notification is about an alert that also fires, so these names may repeat the lists above.
    let mut notified = std::collections::HashSet::new();
    for name in raw.alerts_notified.into_iter().flatten() {
        if !alert_name(&name, ctx) {
            continue;
        }
        if !notified.insert(name.get_ref().clone()) {
            ctx.push(Diagnostic::new(
                format!("alert `{}` is listed twice", name.get_ref()),
                Some(name.span()),
            ));
        } else {
            out.alerts_notified.push(name.into_inner());
        }
    }
    if let Some(within) = raw.notify_within {
        out.notify_within = ctx.duration(within.get_ref(), Some(within.span()), "notify_within");
        if notified.is_empty() {
            ctx.push(
                Diagnostic::new("`notify_within` bounds nothing here", Some(within.span()))
                    .hint("list the alerts it applies to: `alerts_notified = [\"HighErrorRate\"]`"),
            );
        }
    }
    out
}

/// Whether `name` is a valid alert name; says why not.
fn alert_name(name: &Spanned<String>, ctx: &mut Ctx<'_>) -> bool {
    let text = name.get_ref();
    let valid = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !valid {
        ctx.push(
            Diagnostic::new(format!("invalid alert name `{text}`"), Some(name.span()))
                .expected("an alert name as in the Prometheus rules, e.g. `HighErrorRate`"),
        );
    }
    valid
}

fn condition_error(ctx: &mut Ctx<'_>, e: ConditionError, text: &Spanned<String>, metric: Option<Metric>) {
    let span = ctx.inside_string(&text.span(), &e.span);
    let prefix = metric.map_or(String::new(), |m| format!("`{m}`: "));
    let mut d = Diagnostic::new(format!("{prefix}{}", e.message), Some(span)).expected(e.expected);
    if let Some(hint) = e.hint {
        d = d.hint(hint);
    } else if metric.is_none() && e.message.starts_with("unknown metric") {
        let names: Vec<String> = Metric::ALL.iter().map(|m| m.name().to_owned()).collect();
        d = d.expected(one_of(&names));
    }
    ctx.push(d);
}
