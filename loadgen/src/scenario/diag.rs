//! Diagnostics: what went wrong in a scenario file, where, what was expected and what to write instead.
//!
//! The rendering is stable (golden files in `tests/fail/` hold it), and close to rustc's:
//!
//! ```text
//! error: unknown key `duraton`
//!  --> scenarios/x.toml:7:1
//!   |
//! 7 | duraton = "90s"
//!   | ^^^^^^^
//!   = expected one of `name`, `duration`, `rate`, ...
//!   = hint: did you mean `duration`?
//! ```
//!
//! followed by a blank line, and after the last one a count: `2 errors in scenarios/x.toml`.
//! This module only formats; it decides nothing about what is an error.

use std::fmt;
use std::ops::Range;

/// One problem in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong, in one line.
    pub message: String,
    /// Byte range in the file, when the problem has a place.
    pub span: Option<Range<usize>>,
    /// What was expected there.
    pub expected: Option<String>,
    /// What to write instead, when it is clear.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A problem at `span`.
    pub fn new(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Diagnostic {
            message: message.into(),
            span,
            expected: None,
            hint: None,
        }
    }

    /// Adds what was expected.
    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint when there is one.
    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }
}

/// Every problem found in one file, ready to print. Its `Display` is the full report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    file: String,
    source: String,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Diagnostics of `file`, whose text is `source`, sorted by position.
    pub fn new(file: impl Into<String>, source: impl Into<String>, mut items: Vec<Diagnostic>) -> Self {
        items.sort_by_key(|d| d.span.as_ref().map_or((0, 0), |s| (s.start, s.end)));
        items.dedup();
        Diagnostics {
            file: file.into(),
            source: source.into(),
            items,
        }
    }

    /// The file the problems are in, as given to the parser.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The problems, in file order.
    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none (never the case for one returned by `parse`).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Line and column (both from 1, column in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.source, offset)
    }

    fn render(&self, d: &Diagnostic, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", d.message)?;
        let Some(span) = &d.span else {
            writeln!(f, " --> {}", self.file)?;
            return notes(d, 1, f);
        };
        let (line, col) = self.line_col(span.start);
        let width = line.to_string().len();
        let pad = " ".repeat(width);
        writeln!(f, "{pad}--> {}:{line}:{col}", self.file)?;
        let line_start = span.start.min(self.source.len()) - (col_byte_offset(&self.source, span.start));
        let text = self.source[line_start..].lines().next().unwrap_or("");
        let text = text.strip_suffix('\r').unwrap_or(text);
        // The underline stays on the shown line; a span that starts on the line's `\r` (or past its
        // end) gets a single caret.
        let start = span.start.min(self.source.len());
        let end = span.end.min(line_start + text.len()).max(start);
        let carets = self
            .source
            .get(start..end)
            .map_or(0, |s| s.chars().count())
            .max(1);
        writeln!(f, "{pad} |")?;
        writeln!(f, "{line} | {text}")?;
        writeln!(f, "{pad} | {}{}", " ".repeat(col - 1), "^".repeat(carets))?;
        notes(d, width, f)
    }
}

fn notes(d: &Diagnostic, width: usize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let pad = " ".repeat(width);
    if let Some(expected) = &d.expected {
        writeln!(f, "{pad} = expected {expected}")?;
    }
    if let Some(hint) = &d.hint {
        writeln!(f, "{pad} = hint: {hint}")?;
    }
    Ok(())
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            self.render(d, f)?;
            writeln!(f)?;
        }
        match self.items.len() {
            1 => writeln!(f, "1 error in {}", self.file),
            n => writeln!(f, "{n} errors in {}", self.file),
        }
    }
}

impl std::error::Error for Diagnostics {}

fn col_byte_offset(source: &str, offset: usize) -> usize {
    let offset = offset.min(source.len());
    offset - source[..offset].rfind('\n').map_or(0, |i| i + 1)
}

pub(super) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
    (line, col)
}

/// `did you mean `x`?` when one candidate is close to `word`.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Pieces of a serde error message, reworded for people.
pub(super) enum SerdeMessage {
    /// `unknown field `x`, expected one of ...`
    UnknownField { name: String, expected: Vec<String> },
    /// `unknown variant `x`, expected one of ...`
    UnknownVariant { name: String, expected: Vec<String> },
    /// `missing field `x``
    MissingField(String),
    /// `invalid type: found, expected what`
    InvalidType { found: String, expected: String },
    /// `invalid value: found, expected what`
    InvalidValue { found: String, expected: String },
    /// Anything else, as written.
    Other(String),
}

impl SerdeMessage {
    pub(super) fn parse(message: &str) -> SerdeMessage {
        let message = message.trim();
        if let Some(rest) = message.strip_prefix("unknown field ") {
            let (name, expected) = name_and_list(rest);
            return SerdeMessage::UnknownField { name, expected };
        }
        if let Some(rest) = message.strip_prefix("unknown variant ") {
            let (name, expected) = name_and_list(rest);
            return SerdeMessage::UnknownVariant { name, expected };
        }
        if let Some(rest) = message.strip_prefix("missing field ") {
            return SerdeMessage::MissingField(rest.trim_matches('`').to_owned());
        }
        for (prefix, invalid_type) in [("invalid type: ", true), ("invalid value: ", false)] {
            if let Some((found, expected)) = message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split_once(", expected "))
            {
                let found = reword_found(found);
                let expected = reword_expected(expected);
                return if invalid_type {
                    SerdeMessage::InvalidType { found, expected }
                } else {
                    SerdeMessage::InvalidValue { found, expected }
                };
            }
        }
        SerdeMessage::Other(message.to_owned())
    }
}

/// Splits `` `x`, expected one of `a`, `b` `` into `x` and `[a, b]`.
fn name_and_list(rest: &str) -> (String, Vec<String>) {
    let (name, list) = rest.split_once(", expected ").unwrap_or((rest, ""));
    let name = name.trim_matches('`').to_owned();
    let list = list.strip_prefix("one of ").unwrap_or(list);
    let expected = list
        .split(['`'])
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "," && *s != "or")
        .map(str::to_owned)
        .collect();
    (name, expected)
}

fn reword_found(found: &str) -> String {
    let found = found.trim();
    match found {
        "sequence" => "an array".to_owned(),
        "map" => "a table".to_owned(),
        _ => {
            for (serde, ours) in [
                ("floating point ", "a number "),
                ("integer ", "a number "),
                ("string ", "a string "),
            ] {
                if let Some(value) = found.strip_prefix(serde) {
                    return format!("{ours}{value}");
                }
            }
            found.replacen("boolean", "a boolean", 1)
        }
    }
}

fn reword_expected(expected: &str) -> String {
    let expected = expected.trim();
    if expected.starts_with("struct ")
        || expected.starts_with("internally tagged enum")
        || expected == "a map"
    {
        return "a table".to_owned();
    }
    if expected.starts_with("enum ") {
        return "one of the listed names".to_owned();
    }
    match expected {
        "i64" | "u64" | "i32" | "u32" | "u16" => "a whole number".to_owned(),
        "f64" | "f32" => "a number".to_owned(),
        "a sequence" => "an array".to_owned(),
        other => other.to_owned(),
    }
}

/// `` `a`, `b` or `c` ``
pub(super) fn one_of(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => "nothing here".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("one of {} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_rustc() {
        let source = "name = \"x\"\n\nduraton = \"90s\"\n";
        let d = Diagnostic::new("unknown key `duraton`", Some(12..19))
            .expected("one of `name` or `duration`")
            .hint("did you mean `duration`?");
        let text = Diagnostics::new("s.toml", source, vec![d]).to_string();
        let want = "error: unknown key `duraton`\n --> s.toml:3:1\n  |\n3 | duraton = \"90s\"\n  | ^^^^^^^\n  = expected one of `name` or `duration`\n  = hint: did you mean `duration`?\n\n1 error in s.toml\n";
        assert_eq!(text, want);
    }

    #[test]
    fn a_span_on_a_carriage_return_renders() {
        let d = Diagnostic::new("unterminated string", Some(1..2));
        let text = Diagnostics::new("s.toml", "\"\r\n", vec![d]).to_string();
        assert!(text.contains(" --> s.toml:1:2\n"), "{text}");
        assert!(text.contains("1 | \"\n  |  ^\n"), "{text}");
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_col("a\nbé c", 5), (2, 3));
        assert_eq!(line_col("abc", 0), (1, 1));
    }

    #[test]
    fn suggests_close_names_only() {
        let names = ["duration", "rate", "concurrency"];
        assert_eq!(
            did_you_mean("duraton", names).as_deref(),
            Some("did you mean `duration`?")
        );
        assert_eq!(did_you_mean("zzz", names), None);
    }

    #[test]
    fn parses_serde_messages() {
        match SerdeMessage::parse("unknown field `ratoi`, expected one of `status`, `ratio`, `routes`") {
            SerdeMessage::UnknownField { name, expected } => {
                assert_eq!(name, "ratoi");
                assert_eq!(expected, ["status", "ratio", "routes"]);
            }
            _ => panic!("not parsed"),
        }
        match SerdeMessage::parse("unknown field `x`, expected `from` or `to`") {
            SerdeMessage::UnknownField { expected, .. } => assert_eq!(expected, ["from", "to"]),
            _ => panic!("not parsed"),
        }
        match SerdeMessage::parse("invalid type: integer `90`, expected a string") {
            SerdeMessage::InvalidType { found, expected } => {
                assert_eq!((found.as_str(), expected.as_str()), ("a number `90`", "a string"))
            }
            _ => panic!("not parsed"),
        }
    }
}
