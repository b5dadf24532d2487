//! Checks of a phase's `expect` table: keyed and listed conditions, and alert names. Part of validation;
//! see [`super::validate`].

use std::collections::{HashMap, HashSet};

use toml::Spanned;

use super::condition::{Condition, ConditionError, Metric};
use super::diag::{one_of, Diagnostic};
use super::model::{Expectations, NotNotified, Notified};
use super::raw::{RawExpect, RawNotNotified, RawNotified};
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
    routing(
        &mut out,
        raw.notified,
        raw.inhibited,
        raw.not_notified,
        raw.grouped,
        ctx,
    );
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

/// The routing expectations: `notified`, `inhibited`, `not_notified`, `grouped`.
fn routing(
    out: &mut Expectations,
    notified: Option<Vec<RawNotified>>,
    inhibited: Option<Vec<Spanned<String>>>,
    not_notified: Option<Vec<RawNotNotified>>,
    grouped: Option<Vec<Vec<Spanned<String>>>>,
    ctx: &mut Ctx<'_>,
) {
    let mut pairs = HashSet::new();
    for entry in notified.into_iter().flatten() {
        if !alert_name(&entry.alert, ctx) {
            continue;
        }
        let Some(receiver) = entry.receiver else {
            ctx.push(
                Diagnostic::new(
                    format!("`notified`: no `receiver` for alert `{}`", entry.alert.get_ref()),
                    Some(entry.alert.span()),
                )
                .hint("name the receiver of the Alertmanager configuration: `receiver = \"pager\"`"),
            );
            continue;
        };
        if receiver.get_ref().is_empty() {
            ctx.push(Diagnostic::new("`receiver` is empty", Some(receiver.span())));
            continue;
        }
        if !pairs.insert((entry.alert.get_ref().clone(), receiver.get_ref().clone())) {
            ctx.push(Diagnostic::new(
                format!(
                    "alert `{}` to receiver `{}` is listed twice",
                    entry.alert.get_ref(),
                    receiver.get_ref()
                ),
                Some(entry.alert.span()),
            ));
            continue;
        }
        let within = entry
            .notify_within
            .and_then(|w| ctx.duration(w.get_ref(), Some(w.span()), "notify_within"));
        let snapshot = match entry.snapshot {
            Some(s) if s.get_ref().trim().is_empty() => {
                ctx.push(
                    Diagnostic::new("`snapshot` is empty", Some(s.span()))
                        .expected("a file path, e.g. \"snapshots/outage/pager.txt\""),
                );
                None
            }
            Some(s) => Some(s.into_inner()),
            None => None,
        };
        out.notified.push(Notified {
            alert: entry.alert.into_inner(),
            receiver: receiver.into_inner(),
            within,
            snapshot,
        });
    }
    let mut seen = HashSet::new();
    for name in inhibited.into_iter().flatten() {
        if !alert_name(&name, ctx) {
            continue;
        }
        if !seen.insert(name.get_ref().clone()) {
            ctx.push(Diagnostic::new(
                format!("alert `{}` is listed twice", name.get_ref()),
                Some(name.span()),
            ));
        } else if let Some(n) = out.notified.iter().find(|n| &n.alert == name.get_ref()) {
            ctx.push(Diagnostic::new(
                format!(
                    "alert `{}` is both `inhibited` and `notified` to `{}`: an inhibited alert reaches no receiver",
                    name.get_ref(),
                    n.receiver
                ),
                Some(name.span()),
            ));
        } else {
            out.inhibited.push(name.into_inner());
        }
    }
    for entry in not_notified.into_iter().flatten() {
        if !alert_name(&entry.alert, ctx) {
            continue;
        }
        let receiver = entry.receiver.map(Spanned::into_inner);
        let clash = out.notified.iter().find(|n| {
            &n.alert == entry.alert.get_ref() && receiver.as_ref().is_none_or(|r| *r == n.receiver)
        });
        if let Some(n) = clash {
            ctx.push(Diagnostic::new(
                format!(
                    "alert `{}` is both `notified` to `{}` and `not_notified`",
                    n.alert, n.receiver
                ),
                Some(entry.alert.span()),
            ));
            continue;
        }
        out.not_notified.push(NotNotified {
            alert: entry.alert.into_inner(),
            receiver,
        });
    }
    for (i, group) in grouped.into_iter().flatten().enumerate() {
        if group.len() < 2 {
            ctx.push(
                Diagnostic::new(
                    format!("`grouped[{i}]` names fewer than two alerts"),
                    group.first().map(Spanned::span),
                )
                .expected("two or more alerts that arrive in one notification, e.g. [\"ServiceDown\", \"HighLatency\"]"),
            );
            continue;
        }
        if group.iter().all(|n| alert_name(n, ctx)) {
            out.grouped
                .push(group.into_iter().map(Spanned::into_inner).collect());
        }
    }
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
