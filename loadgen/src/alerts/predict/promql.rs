//! Just enough of PromQL's lexical structure to change an expression in place: tokens with their
//! byte ranges in the source, so a change is an edit of the original text and the rest of it, layout
//! included, stays as written. Not a parser: promtool checks every expression it is given.

use std::ops::Range;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A metric or function name, a keyword (`and`, `by`, `bool`, ...), a label name.
    Ident,
    /// A number literal: `0.1`, `14.4`, `1e3`, `0x10`.
    Number,
    /// A duration outside brackets (`offset 5m`).
    Duration,
    /// A string literal, quotes included.
    String,
    /// `{...}`: a selector's label matchers, braces included.
    Matchers,
    /// `[...]`: a range or subquery window, brackets included.
    Range,
    /// `==`, `!=`, `>`, `<`, `>=`, `<=`.
    Comparison,
    /// `+ - * / % ^ , =`
    Operator,
    Open,
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub span: Range<usize>,
}

/// The tokens of `text`, comments and white space left out. An unterminated string, bracket or brace
/// ends at the end of the text (promtool reports it).
pub fn tokens(text: &str) -> Vec<Token> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' | b'`' => {
                i = string_end(b, i);
                Kind::String
            }
            b'{' => {
                i = closing(b, i, b'}');
                Kind::Matchers
            }
            b'[' => {
                i = closing(b, i, b']');
                Kind::Range
            }
            b'(' => {
                i += 1;
                Kind::Open
            }
            b')' => {
                i += 1;
                Kind::Close
            }
            b'=' | b'!' | b'>' | b'<' => {
                let two = b.get(i + 1) == Some(&b'=');
                i += if two { 2 } else { 1 };
                match (c, two) {
                    (b'=', false) | (b'!', false) => Kind::Operator,
                    _ => Kind::Comparison,
                }
            }
            b'0'..=b'9' | b'.' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    // An exponent's sign belongs to the number.
                    if (b[i] == b'e' || b[i] == b'E')
                        && matches!(b.get(i + 1), Some(b'+' | b'-'))
                        && !text[start..i].starts_with("0x")
                    {
                        i += 1;
                    }
                    i += 1;
                }
                let t = &text[start..i];
                if t.parse::<f64>().is_ok() || (t.starts_with("0x") && t.len() > 2) {
                    Kind::Number
                } else {
                    Kind::Duration
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                    i += 1;
                }
                Kind::Ident
            }
            _ => {
                i += 1;
                Kind::Operator
            }
        };
        out.push(Token { kind, span: start..i });
    }
    out
}

fn string_end(b: &[u8], mut i: usize) -> usize {
    let quote = b[i];
    i += 1;
    while i < b.len() {
        if b[i] == b'\\' && quote != b'`' {
            i += 2;
            continue;
        }
        if b[i] == quote {
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

/// The end of a `{...}` or `[...]` starting at `i`, strings inside skipped.
fn closing(b: &[u8], mut i: usize, close: u8) -> usize {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = string_end(b, i),
            c if c == close => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// The identifiers of `text` that name series (not keywords, functions or label names): every
/// identifier not followed by `(` and not a keyword of PromQL.
pub fn series_names(text: &str) -> Vec<String> {
    let t = tokens(text);
    let mut names = Vec::new();
    for (k, tok) in t.iter().enumerate() {
        if tok.kind != Kind::Ident {
            continue;
        }
        let word = &text[tok.span.clone()];
        let called = t.get(k + 1).is_some_and(|n| n.kind == Kind::Open);
        if called || KEYWORDS.contains(&word) || in_grouping(&t, text, k) {
            continue;
        }
        if !names.iter().any(|n| n == word) {
            names.push(word.to_owned());
        }
    }
    names
}

/// Whether token `k` is inside the parentheses of `by (...)`, `on (...)` and the like.
fn in_grouping(t: &[Token], text: &str, k: usize) -> bool {
    let mut depth = 0usize;
    for j in (0..k).rev() {
        match t[j].kind {
            Kind::Close => depth += 1,
            Kind::Open if depth > 0 => depth -= 1,
            Kind::Open => {
                return j > 0
                    && matches!(
                        &text[t[j - 1].span.clone()],
                        "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                    )
            }
            _ => {}
        }
    }
    false
}

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    // Aggregations, which may be followed by `by (...)` rather than by their parenthesis.
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "Inf",
    "NaN",
    "inf",
    "nan",
];

/// `text` with each edit (a byte range of it and what replaces it) made; edits must not overlap.
pub fn edit(text: &str, edits: &[(Range<usize>, String)]) -> String {
    let mut sorted: Vec<&(Range<usize>, String)> = edits.iter().collect();
    sorted.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(text.len() + 16);
    let mut at = 0;
    for (range, with) in sorted {
        out.push_str(&text[at..range.start]);
        out.push_str(with);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// `text` with every series name in `renames` replaced (whole identifiers only).
pub fn rename(text: &str, renames: &[(String, String)]) -> String {
    let edits: Vec<(Range<usize>, String)> = tokens(text)
        .into_iter()
        .filter(|t| t.kind == Kind::Ident)
        .filter_map(|t| {
            let word = &text[t.span.clone()];
            renames
                .iter()
                .find(|(from, _)| from == word)
                .map(|(_, to)| (t.span, to.clone()))
        })
        .collect();
    edit(text, &edits)
}

/// A form of `text` in which two ways of writing the same expression read the same: tokens joined by
/// one space, and the operands of a chain of plain `and`s at the top level in sorted order (`a and b`
/// selects what `b and a` selects).
pub fn normalise(text: &str) -> String {
    let t = tokens(text);
    let words: Vec<&str> = t.iter().map(|tok| &text[tok.span.clone()]).collect();
    let mut depth = 0i32;
    let mut parts: Vec<Vec<&str>> = vec![Vec::new()];
    let mut only_and = true;
    for (k, w) in words.iter().enumerate() {
        match t[k].kind {
            Kind::Open => depth += 1,
            Kind::Close => depth -= 1,
            _ => {}
        }
        if depth == 0 && t[k].kind == Kind::Ident {
            match *w {
                "and" => {
                    let modified = words.get(k + 1).is_some_and(|n| matches!(*n, "on" | "ignoring"));
                    only_and &= !modified;
                    parts.push(Vec::new());
                    continue;
                }
                "or" | "unless" => only_and = false,
                _ => {}
            }
        }
        if let Some(last) = parts.last_mut() {
            last.push(w);
        }
    }
    let mut joined: Vec<String> = parts.iter().map(|p| p.join(" ")).collect();
    if only_and && joined.len() > 1 {
        joined.sort();
        return joined.join(" and ");
    }
    words.join(" ")
}

/// A duration as PromQL writes it (`30s`, `2m`, `1h`, `1500ms`).
pub fn format_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_owned();
    }
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A PromQL duration (`1m`, `30s`, `1h30m`, `500ms`) in milliseconds.
pub fn parse_duration(text: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let size = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(size)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, &str)> {
        tokens(text)
            .into_iter()
            .map(|t| (t.kind, &text[t.span]))
            .collect()
    }

    #[test]
    fn tokens_keep_matchers_ranges_and_strings_whole() {
        let text = r#"sum by (job) (rate(x{a!~"/m}|/h", b="5.."}[1m])) >= 1e-3 # note"#;
        let k = kinds(text);
        assert!(k.contains(&(Kind::Matchers, r#"{a!~"/m}|/h", b="5.."}"#)));
        assert!(k.contains(&(Kind::Range, "[1m]")));
        assert!(k.contains(&(Kind::Comparison, ">=")));
        assert!(k.contains(&(Kind::Number, "1e-3")));
        assert!(!k.iter().any(|(_, w)| w.contains("note")));
        assert_eq!(kinds("x offset 5m")[2], (Kind::Duration, "5m"));
    }

    #[test]
    fn series_names_leave_out_functions_keywords_and_grouping_labels() {
        let names = series_names(
            "sum by (job, le) (rate(a:b[1m])) / ignoring(x) c > 0.1 and on(job) d unless up{job=\"x\"}",
        );
        assert_eq!(names, ["a:b", "c", "d", "up"]);
    }

    #[test]
    fn renaming_touches_whole_identifiers_only() {
        let text = "job:x:rate1m / job:x:rate1m_total + rate(job:x:rate1m[1m])";
        let out = rename(text, &[("job:x:rate1m".into(), "job:x:rate1m__m1".into())]);
        assert_eq!(
            out,
            "job:x:rate1m__m1 / job:x:rate1m_total + rate(job:x:rate1m__m1[1m])"
        );
    }

    #[test]
    fn normalising_ignores_layout_and_the_order_of_and_operands() {
        assert_eq!(
            normalise("a >  0.1\nand b > 0.1"),
            normalise("b > 0.1 and a > 0.1")
        );
        assert_ne!(normalise("a > 0.1 or b > 0.1"), normalise("b > 0.1 or a > 0.2"));
        assert_ne!(normalise("a and on(x) b"), normalise("b and on(x) a"));
    }

    #[test]
    fn durations_read_and_write() {
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(format_duration(30_000), "30s");
        assert_eq!(format_duration(120_000), "2m");
        assert_eq!(format_duration(1_500), "1500ms");
    }
}
