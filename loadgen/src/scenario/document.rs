//! The file's TOML tree with positions, and deserialization that reports every serde error, not the first.
//!
//! serde stops at the first unknown key or wrong type. To report them all, [`deserialize`] records the
//! error, removes the offending key from a copy of the tree, and tries again until the raw types accept
//! what is left. The raw types make almost every field optional, so removing a key never causes a new
//! error; validation is told which keys were removed so it does not also report them as missing.
//! [`Document`] also finds the position of a dotted path (`phases[1].chaos[0].ratio`), for errors found
//! inside values that serde cannot position (rate shapes, faults). Nothing here knows the scenario format.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diag::{did_you_mean, one_of, Diagnostic, SerdeMessage};

/// At most this many serde errors are collected before giving up on a file.
const MAX_ERRORS: usize = 100;

/// One step of a path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// Parses `phases[1].chaos[0].ratio` into segments.
pub(super) fn parse_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut indices) = part.split_once('[').map_or((part, ""), |(k, rest)| (k, rest));
        if !key.is_empty() {
            segs.push(Seg::Key(key.to_owned()));
        }
        while let Some((index, rest)) = indices.split_once(']') {
            if let Ok(i) = index.parse() {
                segs.push(Seg::Index(i));
            }
            indices = rest.strip_prefix('[').unwrap_or(rest);
        }
    }
    segs
}

/// Formats segments back into a dotted path.
pub(super) fn format_path(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A parsed TOML file with the position of every key and value.
pub(super) struct Document<'i> {
    root: Spanned<DeTable<'i>>,
}

impl<'i> Document<'i> {
    /// Parses the TOML syntax; a syntax error stops everything, so it comes back alone.
    pub(super) fn parse(text: &'i str) -> Result<Self, Diagnostic> {
        DeTable::parse(text).map(|root| Document { root }).map_err(|e| {
            let message = e.message().trim().trim_end_matches('.');
            Diagnostic::new(format!("invalid TOML: {message}"), e.span())
                .expected("TOML syntax, e.g. `key = \"value\"` or `[[phases]]`")
        })
    }

    /// The value at `path` and the span of its key (none for array elements).
    fn get(&self, path: &[Seg]) -> Option<(Option<Range<usize>>, &Spanned<DeValue<'i>>)> {
        let mut table = self.root.get_ref();
        let mut found: Option<(Option<Range<usize>>, &Spanned<DeValue<'i>>)> = None;
        for seg in path {
            found = match (seg, found) {
                (Seg::Key(k), None) => table.get_key_value(k.as_str()).map(|(k, v)| (Some(k.span()), v)),
                (Seg::Key(k), Some((_, v))) => match v.get_ref() {
                    DeValue::Table(t) => {
                        table = t;
                        t.get_key_value(k.as_str()).map(|(k, v)| (Some(k.span()), v))
                    }
                    _ => None,
                },
                (Seg::Index(i), Some((_, v))) => match v.get_ref() {
                    DeValue::Array(a) => a.get(*i).map(|v| (None, v)),
                    _ => None,
                },
                (Seg::Index(_), None) => None,
            };
            found.as_ref()?;
        }
        found
    }

    /// The span of the value at `path`.
    pub(super) fn value_span(&self, path: &str) -> Option<Range<usize>> {
        self.get(&parse_path(path)).map(|(_, v)| v.span())
    }

    /// Whether the value at `path` is a table.
    pub(super) fn is_table(&self, path: &str) -> bool {
        self.get(&parse_path(path))
            .is_some_and(|(_, v)| v.get_ref().is_table())
    }

    /// The string at `path`, if there is one.
    pub(super) fn value_str(&self, path: &str) -> Option<String> {
        self.get(&parse_path(path))
            .and_then(|(_, v)| v.get_ref().as_str().map(str::to_owned))
    }

    /// The span of the key at `path` (or of the value, for an array element).
    pub(super) fn key_span(&self, path: &str) -> Option<Range<usize>> {
        self.get(&parse_path(path))
            .map(|(k, v)| k.unwrap_or_else(|| v.span()))
    }

    /// Paths of the entries under `path` (at any depth) for which `matches(key, value)` holds; the key
    /// is empty for array elements.
    pub(super) fn find_under(&self, path: &str, matches: &dyn Fn(&str, &DeValue<'_>) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        let segs = parse_path(path);
        if let Some((_, v)) = self.get(&segs) {
            collect(v, &mut segs.clone(), matches, &mut out);
        }
        out
    }
}

fn collect(
    value: &Spanned<DeValue<'_>>,
    at: &mut Vec<Seg>,
    matches: &dyn Fn(&str, &DeValue<'_>) -> bool,
    out: &mut Vec<String>,
) {
    match value.get_ref() {
        DeValue::Table(t) => {
            for (k, v) in t.iter() {
                if matches(k.get_ref(), v.get_ref()) {
                    out.push(format!("{}.{}", format_path(at), k.get_ref()));
                }
                at.push(Seg::Key(k.get_ref().to_string()));
                collect(v, at, matches, out);
                at.pop();
            }
        }
        DeValue::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                at.push(Seg::Index(i));
                if matches("", v.get_ref()) {
                    out.push(format_path(at));
                }
                collect(v, at, matches, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// The outcome of [`deserialize`].
pub(super) struct Deserialized<T> {
    /// The value, when the file could be read after removing the bad keys.
    pub(super) value: Option<T>,
    /// One diagnostic per serde error.
    pub(super) errors: Vec<Diagnostic>,
    /// Paths of the keys removed because of those errors.
    pub(super) removed: Vec<String>,
}

/// Deserializes `T`, reporting every error: after each one the offending key is removed and serde runs
/// again on what is left.
pub(super) fn deserialize<T: DeserializeOwned>(doc: &Document<'_>) -> Deserialized<T> {
    let mut work = doc.root.clone();
    let mut out = Deserialized {
        value: None,
        errors: Vec::new(),
        removed: Vec::new(),
    };
    while out.errors.len() < MAX_ERRORS {
        let error = match T::deserialize(toml::de::Deserializer::from(work.clone())) {
            Ok(value) => {
                out.value = Some(value);
                break;
            }
            Err(e) => e,
        };
        let entry = error.span().and_then(|span| innermost_entry(&work, &span));
        let path = entry.as_deref().map(format_path);
        out.errors
            .push(serde_diagnostic(error.message(), path.as_deref(), error.span()));
        match entry {
            Some(segs) if remove(&mut work, &segs) => out.removed.push(format_path(&segs)),
            _ => break,
        }
    }
    out
}

/// The path of the innermost key whose key or value contains `span`.
fn innermost_entry(root: &Spanned<DeTable<'_>>, span: &Range<usize>) -> Option<Vec<Seg>> {
    let mut best: Option<(usize, Vec<Seg>)> = None;
    walk_entries(root.get_ref(), &mut Vec::new(), &mut |path, key, value| {
        let covers = |r: &Range<usize>| r.start <= span.start && span.end <= r.end.max(r.start + 1);
        if covers(&key) || covers(&value) {
            let size = value.end.max(key.end) - key.start.min(value.start);
            if best.as_ref().is_none_or(|(s, _)| size <= *s) {
                best = Some((size, path.to_vec()));
            }
        }
    });
    best.map(|(_, path)| path)
}

/// Called with each entry's path, key span and value span.
type EntryVisitor<'a> = dyn FnMut(&[Seg], Range<usize>, Range<usize>) + 'a;

fn walk_entries(table: &DeTable<'_>, at: &mut Vec<Seg>, visit: &mut EntryVisitor<'_>) {
    for (k, v) in table.iter() {
        at.push(Seg::Key(k.get_ref().to_string()));
        visit(at, k.span(), v.span());
        walk_value(v.get_ref(), at, visit);
        at.pop();
    }
}

fn walk_value(value: &DeValue<'_>, at: &mut Vec<Seg>, visit: &mut EntryVisitor<'_>) {
    match value {
        DeValue::Table(t) => walk_entries(t, at, visit),
        DeValue::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                at.push(Seg::Index(i));
                walk_value(v.get_ref(), at, visit);
                at.pop();
            }
        }
        _ => {}
    }
}

/// Removes the key at `path` (which ends with a key); false when there is none.
fn remove(root: &mut Spanned<DeTable<'_>>, path: &[Seg]) -> bool {
    remove_from(root.get_mut(), path)
}

fn remove_from(table: &mut DeTable<'_>, path: &[Seg]) -> bool {
    match path {
        [Seg::Key(last)] => table.remove(last.as_str()).is_some(),
        [Seg::Key(k), rest @ ..] => table
            .get_mut(k.as_str())
            .is_some_and(|v| remove_in(v.get_mut(), rest)),
        _ => false,
    }
}

fn remove_in(value: &mut DeValue<'_>, path: &[Seg]) -> bool {
    match (value, path) {
        (DeValue::Table(t), _) => remove_from(t, path),
        (DeValue::Array(a), [Seg::Index(i), rest @ ..]) => {
            a.get_mut(*i).is_some_and(|v| remove_in(v.get_mut(), rest))
        }
        _ => false,
    }
}

/// Words for a serde error about the value of `key` at `span`.
pub(super) fn serde_diagnostic(message: &str, path: Option<&str>, span: Option<Range<usize>>) -> Diagnostic {
    let segs = path.map(parse_path).unwrap_or_default();
    let key = match segs.last() {
        Some(Seg::Key(k)) => Some(k.as_str()),
        _ => None,
    };
    let in_expect = segs.iter().any(|s| *s == Seg::Key("expect".to_owned()));
    let key_text = key.map_or(String::new(), |k| format!(" for `{k}`"));
    match SerdeMessage::parse(message) {
        SerdeMessage::UnknownField { name, expected } => {
            Diagnostic::new(format!("unknown key `{name}`"), span)
                .expected(one_of(&expected))
                .maybe_hint(did_you_mean(&name, expected.iter().map(String::as_str)))
        }
        SerdeMessage::UnknownVariant { name, expected } => {
            let what = match key {
                Some("shape") => "unknown rate shape".to_owned(),
                Some("fault") => "unknown fault kind".to_owned(),
                Some(k) => format!("unknown value for `{k}`:"),
                None => "unknown value".to_owned(),
            };
            Diagnostic::new(format!("{what} `{name}`"), span)
                .expected(one_of(&expected))
                .maybe_hint(did_you_mean(&name, expected.iter().map(String::as_str)))
        }
        SerdeMessage::MissingField(name) => Diagnostic::new(format!("missing key `{name}`"), span),
        SerdeMessage::InvalidType { found, expected } => {
            let d = Diagnostic::new(format!("wrong type{key_text}: found {found}"), span).expected(expected);
            d.maybe_hint(key.and_then(|k| type_hint(k, in_expect)))
        }
        SerdeMessage::InvalidValue { found, expected } => {
            Diagnostic::new(format!("invalid value{key_text}: {found}"), span).expected(expected)
        }
        // Untagged enums say only what they expect.
        SerdeMessage::Other(text) if text.starts_with("a ") => {
            Diagnostic::new(format!("wrong type{key_text}"), span).expected(text)
        }
        SerdeMessage::Other(text) => Diagnostic::new(format!("invalid value{key_text}: {text}"), span),
    }
}

/// What to write for keys whose type is easy to get wrong.
fn type_hint(key: &str, in_expect: bool) -> Option<String> {
    let hint = match key {
        k if in_expect && super::condition::Metric::from_name(k).is_some() => {
            "write the comparison as a string, e.g. `\"< 300ms\"` or `\"> 0.25\"`"
        }
        "duration" | "timeout" | "at" | "width" | "period" | "delay" | "jitter" | "hold" => {
            "durations are strings with a unit, e.g. \"90s\", \"2m\" or \"500ms\""
        }
        "rate" => "write e.g. `rate = { shape = \"constant\", rps = 50 }`",
        "mix" => "write each request as a table, e.g. `[[mix]]` then `path = \"/\"`",
        "chaos" => "write a list of faults, e.g. `chaos = [{ fault = \"error\", ratio = 0.3 }]`",
        "expect" => "write a table, e.g. `expect = { p95 = \"< 300ms\" }`",
        "checks" | "alerts_firing" | "alerts_inactive" | "alerts_resolved" => {
            "write a list of strings, e.g. `[\"...\"]`"
        }
        "rps" | "from" | "to" | "base" | "peak" | "mean" | "amplitude" => {
            "rates are numbers of requests per second, e.g. `rps = 50`"
        }
        _ => return None,
    };
    Some(hint.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        for path in [
            "phases[1].chaos[0].ratio",
            "name",
            "phases[0].rate.steps[2].rps",
            "a[1][2]",
        ] {
            assert_eq!(format_path(&parse_path(path)), path);
        }
    }

    #[test]
    fn finds_spans_by_path() {
        let text = "[[phases]]\nchaos = [{ fault = \"error\", ratio = 2.0 }]\n";
        let doc = Document::parse(text).unwrap();
        let span = doc.value_span("phases[0].chaos[0].ratio").unwrap();
        assert_eq!(&text[span], "2.0");
        let span = doc.key_span("phases[0].chaos[0].ratio").unwrap();
        assert_eq!(&text[span], "ratio");
        assert_eq!(doc.value_span("phases[3]"), None);
    }

    #[test]
    fn removes_each_bad_key_and_goes_on() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            a: Option<i64>,
            b: Option<String>,
        }
        let doc = Document::parse("a = \"x\"\nb = \"ok\"\nc = 1\n").unwrap();
        let out = deserialize::<T>(&doc);
        assert_eq!(out.removed, ["a", "c"]);
        assert_eq!(out.errors.len(), 2);
        assert_eq!(out.value.unwrap().b.as_deref(), Some("ok"));
    }
}
