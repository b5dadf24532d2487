//! `--alert-match`'s PromQL label matcher lists: parsed, validated (regexes compiled, anchored) and
//! matched against label values.

use std::fmt;

use regex_automata::meta::Regex;

/// A label matcher's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Re,
    NotRe,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Re => "=~",
            Op::NotRe => "!~",
        }
    }
}

/// One PromQL label matcher, such as `job="api"` or `instance=~"10\\.0\\..*"`.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    /// The value anchored at both ends, for `=~` and `!~`.
    regex: Option<Regex>,
}

impl Matcher {
    /// An equality matcher.
    pub fn eq(name: &str, value: &str) -> Matcher {
        Matcher {
            name: name.to_owned(),
            op: Op::Eq,
            value: value.to_owned(),
            regex: None,
        }
    }

    /// Whether `value` (empty for a missing label, as in PromQL) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (Op::Eq, _) => value == self.value,
            (Op::Ne, _) => value != self.value,
            (Op::Re, Some(re)) => re.is_match(value),
            (Op::NotRe, Some(re)) => !re.is_match(value),
            (_, None) => false,
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted = serde_json::to_string(&self.value).map_err(|_| fmt::Error)?;
        write!(f, "{}{}{quoted}", self.name, self.op.as_str())
    }
}

/// `--alert-match`'s value: a non-empty list of label matchers.
#[derive(Debug, Clone)]
pub struct Matchers(pub Vec<Matcher>);

impl fmt::Display for Matchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

impl std::str::FromStr for Matchers {
    type Err = String;

    fn from_str(text: &str) -> Result<Matchers, String> {
        parse_matchers(text)
    }
}

/// Parses a PromQL label matcher list: `job="api", instance=~"web-.*"`, with or without the braces.
/// The error names the column and what was expected there.
pub fn parse_matchers(text: &str) -> Result<Matchers, String> {
    let mut p = Parser {
        chars: text.char_indices().collect(),
        at: 0,
        text,
    };
    p.skip_space();
    let braced = p.eat('{');
    let mut list = Vec::new();
    loop {
        p.skip_space();
        if p.done() || (braced && p.peek() == Some('}')) {
            break;
        }
        list.push(p.matcher()?);
        p.skip_space();
        if !p.eat(',') {
            break;
        }
    }
    p.skip_space();
    if braced && !p.eat('}') {
        return Err(p.error("expected `,` or the closing `}`"));
    }
    p.skip_space();
    if !p.done() {
        return Err(p.error(if braced {
            "unexpected text after the closing `}`"
        } else {
            "expected `,` between matchers"
        }));
    }
    if list.is_empty() {
        return Err("no label matcher given (expected e.g. job=\"my-service\")".to_owned());
    }
    Ok(Matchers(list))
}

struct Parser<'a> {
    chars: Vec<(usize, char)>,
    at: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.at >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).map(|&(_, c)| c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn error(&self, what: &str) -> String {
        let found = match self.peek() {
            Some(c) => format!("found `{c}`"),
            None => "found the end".to_owned(),
        };
        format!("at column {}: {what}, {found} in `{}`", self.at + 1, self.text)
    }

    fn matcher(&mut self) -> Result<Matcher, String> {
        let start = self.at;
        while self.peek().is_some_and(|c| c == '_' || c.is_ascii_alphanumeric()) {
            self.at += 1;
        }
        let name: String = self.chars[start..self.at].iter().map(|&(_, c)| c).collect();
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            self.at = start;
            return Err(
                self.error("expected a label name (letters, digits and `_`, not starting with a digit)")
            );
        }
        self.skip_space();
        let op = if self.eat('=') {
            if self.eat('~') {
                Op::Re
            } else {
                Op::Eq
            }
        } else if self.eat('!') {
            if self.eat('=') {
                Op::Ne
            } else if self.eat('~') {
                Op::NotRe
            } else {
                return Err(self.error("expected `!=` or `!~`"));
            }
        } else {
            return Err(self.error(&format!("expected an operator (=, !=, =~, !~) after `{name}`")));
        };
        self.skip_space();
        let value = self.string()?;
        let regex = match op {
            Op::Re | Op::NotRe => Some(Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                format!(
                    "`{name}{}{value:?}`: not a valid regular expression: {e}",
                    op.as_str()
                )
            })?),
            Op::Eq | Op::Ne => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            regex,
        })
    }

    /// A double- or single-quoted string with backslash escapes, or a raw backquoted one.
    fn string(&mut self) -> Result<String, String> {
        let Some(quote @ ('"' | '\'' | '`')) = self.peek() else {
            return Err(self.error("expected a quoted value such as \"my-service\""));
        };
        let open = self.at;
        self.at += 1;
        let mut value = String::new();
        loop {
            let Some(c) = self.peek() else {
                self.at = open;
                return Err(self.error("this quoted value is not closed"));
            };
            self.at += 1;
            match c {
                c if c == quote => return Ok(value),
                '\\' if quote != '`' => {
                    let escaped = match self.peek() {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some(c @ ('\\' | '"' | '\'')) => c,
                        _ => return Err(self.error("unknown escape (known: \\\\ \\\" \\' \\n \\t \\r)")),
                    };
                    self.at += 1;
                    value.push(escaped);
                }
                c => value.push(c),
            }
        }
    }
}
