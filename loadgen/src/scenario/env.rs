//! `${NAME}` in header and query values: replaced by the environment variable NAME when the scenario is
//! loaded, so tokens and keys stay out of scenario files. An unset variable is an error at its position.
//! `$${` writes a literal `${`. Expanded values are only ever sent; reports name requests by path.

use std::ops::Range;

use super::diag::Diagnostic;
use super::validate::Ctx;

/// Where environment values come from (the process environment, or a table in tests).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `text` (written at `span` of the file) with every `${NAME}` replaced, each through `each` (e.g.
/// percent-encoding); `None` after reporting every unset or malformed reference. The second value
/// tells whether anything was replaced.
pub(super) fn expand(
    text: &str,
    span: &Range<usize>,
    ctx: &mut Ctx<'_>,
    each: &dyn Fn(&str, &mut String),
) -> Option<(String, bool)> {
    if !text.contains('$') {
        return Some((text.to_owned(), false));
    }
    let mut out = String::with_capacity(text.len());
    let mut ok = true;
    let mut replaced = false;
    let mut rest = 0;
    while let Some(found) = text[rest..].find('$') {
        let at = rest + found;
        out.push_str(&text[rest..at]);
        let after = &text[at + 1..];
        if let Some(literal) = after.strip_prefix("${") {
            out.push_str("${");
            rest = text.len() - literal.len();
            continue;
        }
        let Some(reference) = after.strip_prefix('{') else {
            out.push('$');
            rest = at + 1;
            continue;
        };
        let Some(close) = reference.find('}') else {
            ctx.push(
                Diagnostic::new(
                    "`${` without a closing `}`",
                    Some(ctx.inside_string(span, &(at..text.len()))),
                )
                .expected("`${NAME}`, NAME an environment variable")
                .hint("write `$${` for a literal `${`"),
            );
            return None;
        };
        let name = &reference[..close];
        let whole = at..at + 3 + close;
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            ctx.push(
                Diagnostic::new(
                    format!("`${{{name}}}` is not a variable name"),
                    Some(ctx.inside_string(span, &whole)),
                )
                .expected("letters, digits and `_`, not starting with a digit, e.g. `${API_TOKEN}`"),
            );
            ok = false;
        } else {
            match (ctx.env)(name) {
                Some(value) => {
                    each(&value, &mut out);
                    replaced = true;
                }
                None => {
                    ctx.push(
                        Diagnostic::new(
                            format!("environment variable `{name}` is not set"),
                            Some(ctx.inside_string(span, &whole)),
                        )
                        .hint(format!("set it before running, e.g. `export {name}=...`")),
                    );
                    ok = false;
                }
            }
        }
        rest = whole.end;
    }
    out.push_str(&text[rest..]);
    ok.then_some((out, replaced))
}

/// Appends `value` as it is.
pub(super) fn verbatim(value: &str, out: &mut String) {
    out.push_str(value);
}

#[cfg(test)]
mod tests {
    use crate::scenario::{parse_with_env, Diagnostics};

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("t0k3n".to_owned()),
            "KEY" => Some("a b&c".to_owned()),
            _ => None,
        }
    }

    fn scenario(headers: &str, query: &str) -> String {
        format!(
            "name = \"s\"\n[[mix]]\npath = \"/\"\nheaders = {headers}\nquery = {query}\n[[phases]]\nname = \"p\"\nduration = \"1s\"\nrate = {{ shape = \"constant\", rps = 1 }}\n"
        )
    }

    fn errors(text: &str) -> String {
        let d: Diagnostics = parse_with_env(text, "s.toml", &env).unwrap_err();
        d.to_string()
    }

    #[test]
    fn references_are_replaced_and_encoded_where_they_go() {
        let text = scenario(
            r#"{ authorization = "Bearer ${TOKEN}", x-price = "$5 and $${literal}" }"#,
            r#""key=${KEY}&v=1""#,
        );
        let s = parse_with_env(&text, "s.toml", &env).unwrap();
        let r = &s.phases[0].mix.requests()[0];
        assert_eq!(r.headers["authorization"], "Bearer t0k3n");
        assert!(r.headers["authorization"].is_sensitive());
        assert_eq!(r.headers["x-price"], "$5 and ${literal}");
        assert_eq!(r.path_and_query.as_str(), "/?key=a%20b%26c&v=1");
        assert_eq!(r.name, "GET /", "names never carry values");

        let table = scenario("{}", r#"{ key = "${KEY}" }"#);
        let s = parse_with_env(&table, "s.toml", &env).unwrap();
        assert_eq!(
            s.phases[0].mix.requests()[0].path_and_query.as_str(),
            "/?key=a%20b%26c"
        );
    }

    #[test]
    fn unset_and_malformed_references_are_errors_at_their_place() {
        let text = scenario(r#"{ authorization = "Bearer ${NOPE}" }"#, r#""k=${9x}""#);
        let e = errors(&text);
        assert!(e.contains("s.toml:4:37"), "{e}");
        assert!(e.contains("environment variable `NOPE` is not set"), "{e}");
        assert!(e.contains("export NOPE="), "{e}");
        assert!(e.contains("`${9x}` is not a variable name"), "{e}");
        let open = errors(&scenario(r#"{ a = "${OPEN" }"#, r#""""#));
        assert!(open.contains("without a closing"), "{open}");
    }
}
