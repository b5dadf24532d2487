//! Checks of the request mix: methods, paths, queries, headers, bodies and weights.
//!
//! Each request becomes a ready-to-send [`Request`]: the query is encoded into the path, the default
//! headers are merged in, and a JSON body gets its content type. Problems go to the shared [`Ctx`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::ops::Range;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use toml::Spanned;

use super::diag::{did_you_mean, Diagnostic};
use super::env;
use super::model::{Mix, Request};
use super::raw::{QueryValue, RawBody, RawQuery, RawRequest};
use super::validate::{positive, Ctx};

/// Largest request body a scenario may send (the HTTP/1.1 client copies it into each worker's buffer).
const MAX_BODY: usize = 64 << 20;

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Checks a mix at `path` (`mix` or `phases[1].mix`); `None` when it is empty or a request is bad.
pub(super) fn mix(
    raw: Spanned<Vec<Spanned<RawRequest>>>,
    path: &str,
    defaults: &HeaderMap,
    ctx: &mut Ctx<'_>,
) -> Option<Mix> {
    let span = raw.span();
    let raw = raw.into_inner();
    if raw.is_empty() {
        ctx.push(
            Diagnostic::new("the mix is empty", Some(span))
                .hint("add at least one request, e.g. `{ path = \"/\" }`"),
        );
        return None;
    }
    let mut names: HashMap<String, Range<usize>> = HashMap::new();
    let mut requests = Vec::new();
    let errors_before = ctx.errors.len();
    for (i, r) in raw.into_iter().enumerate() {
        let span = r.span();
        let name_span = r.get_ref().name.as_ref().map_or(span.clone(), |n| n.span());
        let at = format!("{path}[{i}]");
        let Some(request) = request(r.into_inner(), span.clone(), &at, defaults, ctx) else {
            continue;
        };
        if names.contains_key(&request.name) {
            ctx.push(
                Diagnostic::new(
                    format!("two requests of this mix are named `{}`", request.name),
                    Some(name_span),
                )
                .hint("give each request a distinct `name`; statistics are kept per name"),
            );
        } else {
            names.insert(request.name.clone(), name_span);
            requests.push(request);
        }
    }
    if ctx.errors.len() == errors_before {
        Mix::new(requests)
    } else {
        None
    }
}

fn request(
    raw: RawRequest,
    span: Range<usize>,
    path: &str,
    defaults: &HeaderMap,
    ctx: &mut Ctx<'_>,
) -> Option<Request> {
    let method = match &raw.method {
        None => Some(Method::GET),
        Some(m) => {
            let upper = m.get_ref().to_ascii_uppercase();
            if METHODS.contains(&upper.as_str()) {
                Method::from_bytes(upper.as_bytes()).ok()
            } else {
                ctx.push(
                    Diagnostic::new(format!("unknown HTTP method `{}`", m.get_ref()), Some(m.span()))
                        .expected(format!("one of {}", METHODS.join(", ")))
                        .maybe_hint(did_you_mean(&upper, METHODS)),
                );
                None
            }
        }
    };
    let target = target(&raw, span.clone(), path, ctx);
    let mut headers = defaults.clone();
    if let Some(h) = &raw.headers {
        self::headers(h.get_ref(), &mut headers, ctx);
    }
    let body = raw.body.map(|b| match b {
        RawBody::Text(text) => Bytes::from(text),
        RawBody::Json(json) => {
            headers
                .entry(CONTENT_TYPE)
                .or_insert(HeaderValue::from_static("application/json"));
            Bytes::from(serde_json::Value::Object(json).to_string())
        }
    });
    if let Some(b) = body.as_ref().filter(|b| b.len() > MAX_BODY) {
        let at = ctx
            .doc
            .value_span(&format!("{path}.body"))
            .unwrap_or(span.clone());
        ctx.push(
            Diagnostic::new(format!("the body is too large: {} bytes", b.len()), Some(at))
                .expected(format!("a body of at most {} MiB", MAX_BODY >> 20)),
        );
    }
    let weight = match &raw.weight {
        None => std::num::NonZeroU32::new(1),
        Some(w) => positive(ctx, w, "weight", 1_000_000),
    };
    let (method, path_and_query, weight) = (method?, target?, weight?);
    let name = match raw.name {
        Some(n) if n.get_ref().trim().is_empty() => {
            ctx.push(
                Diagnostic::new("the request name is empty", Some(n.span()))
                    .hint("remove `name` to use \"METHOD path\""),
            );
            return None;
        }
        Some(n) => n.into_inner(),
        None => format!("{method} {}", raw.path.as_ref().map_or("", |p| p.get_ref())),
    };
    Some(Request {
        name,
        method,
        path_and_query,
        headers,
        body,
        weight,
    })
}

/// The path and encoded query.
fn target(raw: &RawRequest, span: Range<usize>, at: &str, ctx: &mut Ctx<'_>) -> Option<PathAndQuery> {
    let Some(path) = &raw.path else {
        if !ctx.was_removed(&format!("{at}.path")) {
            ctx.push(
                Diagnostic::new("this request has no `path`", Some(span)).hint("add e.g. `path = \"/\"`"),
            );
        }
        return None;
    };
    let text = path.get_ref();
    let expected = "a path starting with `/`, e.g. \"/checkout\"";
    if !text.starts_with('/') {
        let hint = if text.contains("://") {
            "give the path only; the target's address comes from `--target`".to_owned()
        } else {
            format!("write \"/{text}\"")
        };
        ctx.push(
            Diagnostic::new(
                format!("path `{text}` does not start with `/`"),
                Some(path.span()),
            )
            .expected(expected)
            .hint(hint),
        );
        return None;
    }
    if let Some(at) = text.find(['?', '#']) {
        let inner = ctx.inside_string(&path.span(), &(at..text.len()));
        ctx.push(
            Diagnostic::new(format!("path `{text}` contains a query or fragment"), Some(inner))
                .expected(expected)
                .hint(format!(
                    "move it to `query = \"{}\"`",
                    text[at + 1..].trim_start_matches('?')
                )),
        );
        return None;
    }
    let query = match &raw.query {
        None => None,
        Some(q) => Some(query(q, ctx)?),
    };
    let full = match &query {
        Some(q) if !q.is_empty() => format!("{text}?{q}"),
        _ => text.clone(),
    };
    match full.parse::<PathAndQuery>() {
        Ok(pq) => Some(pq),
        Err(_) => {
            let (what, span) = match &raw.query {
                Some(q) if query.is_some() && text.parse::<PathAndQuery>().is_ok() => ("query", q.span()),
                _ => ("path", path.span()),
            };
            ctx.push(
                Diagnostic::new(format!("invalid characters in the {what}"), Some(span))
                    .expected("URL characters; spaces and non-ASCII must be percent-encoded (%20)")
                    .hint("a query table is encoded for you: `query = { q = \"two words\" }`"),
            );
            None
        }
    }
}

fn query(raw: &Spanned<RawQuery>, ctx: &mut Ctx<'_>) -> Option<String> {
    match raw.get_ref() {
        RawQuery::Text(text) => {
            let text = text.strip_prefix('?').unwrap_or(text);
            if let Some(at) = text.find(['#', ' ']) {
                let inner = ctx.inside_string(&raw.span(), &(at..at + 1));
                ctx.push(
                    Diagnostic::new("invalid character in the query", Some(inner))
                        .expected("URL characters; spaces must be written %20")
                        .hint("use a table to have values encoded: `query = { q = \"two words\" }`"),
                );
                return None;
            }
            // Variables' values are percent-encoded: they are data, not query syntax.
            env::expand(text, &raw.span(), ctx, &percent_encode).map(|(t, _)| t)
        }
        RawQuery::Table(table) => {
            let mut expanded = BTreeMap::new();
            for (key, value) in table {
                let value = match value {
                    QueryValue::Text(t) => {
                        QueryValue::Text(env::expand(t, &raw.span(), ctx, &env::verbatim)?.0)
                    }
                    other => other.clone(),
                };
                expanded.insert(key.clone(), value);
            }
            Some(encode_query(&expanded))
        }
    }
}

fn encode_query(table: &BTreeMap<String, QueryValue>) -> String {
    let mut out = String::new();
    for (key, value) in table {
        if !out.is_empty() {
            out.push('&');
        }
        let value = match value {
            QueryValue::Text(s) => s.clone(),
            QueryValue::Integer(i) => i.to_string(),
            QueryValue::Float(f) => f.to_string(),
            QueryValue::Bool(b) => b.to_string(),
        };
        percent_encode(key, &mut out);
        out.push('=');
        percent_encode(&value, &mut out);
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(super) fn percent_encode(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// Headers that frame a request or manage its connection, and why the client must be the one to set
/// them: a scenario that set them could put a malformed or smuggled request on the wire.
const FRAMING: [(&str, &str); 7] = [
    ("content-length", "it is written from the body"),
    ("transfer-encoding", "bodies are sent with a `content-length`"),
    (
        "connection",
        "connections are kept alive and closed by the client (see `--idle-timeout`)",
    ),
    (
        "keep-alive",
        "connections are kept alive and closed by the client (see `--idle-timeout`)",
    ),
    (
        "proxy-connection",
        "connections are kept alive and closed by the client (see `--idle-timeout`)",
    ),
    (
        "te",
        "the client takes answers chunked or with a length, and asks for nothing else",
    ),
    (
        "upgrade",
        "the client speaks HTTP/1.1 or HTTP/2 as the options say, and upgrades to nothing else",
    ),
];

/// Checks header names and values, inserting them into `into` (replacing earlier values).
pub(super) fn headers(
    raw: &BTreeMap<Spanned<String>, Spanned<String>>,
    into: &mut HeaderMap,
    ctx: &mut Ctx<'_>,
) {
    // Names are case-insensitive: `Host` and `host` in one table would be the same header twice.
    let mut seen: HashMap<String, Range<usize>> = HashMap::new();
    let mut in_file_order: Vec<_> = raw.iter().collect();
    in_file_order.sort_by_key(|(name, _)| name.span().start);
    for (name, value) in in_file_order {
        let lower = name.get_ref().to_ascii_lowercase();
        if let Some((_, why)) = FRAMING.iter().find(|(framing, _)| *framing == lower) {
            ctx.push(
                Diagnostic::new(
                    format!(
                        "header `{}` is set by the client, not the scenario",
                        name.get_ref()
                    ),
                    Some(name.span()),
                )
                .hint(format!("remove it: {why}")),
            );
            continue;
        }
        if let Some(first) = seen.get(&lower) {
            let (line, column) = super::diag::line_col(ctx.source, first.start);
            ctx.push(
                Diagnostic::new(
                    format!("header `{}` is given twice", name.get_ref()),
                    Some(name.span()),
                )
                .hint(format!(
                    "header names ignore case: keep one of the two (the other is at line {line}, column {column})"
                )),
            );
            continue;
        }
        seen.insert(lower, name.span());
        let header = HeaderName::from_bytes(name.get_ref().as_bytes());
        if header.is_err() {
            ctx.push(
                Diagnostic::new(
                    format!("invalid header name `{}`", name.get_ref()),
                    Some(name.span()),
                )
                .expected("letters, digits and `-`, e.g. \"x-request-id\""),
            );
        }
        let Some((text, secret)) = env::expand(value.get_ref(), &value.span(), ctx, &env::verbatim) else {
            continue;
        };
        let parsed = HeaderValue::from_str(&text).map(|mut v| {
            v.set_sensitive(secret);
            v
        });
        if parsed.is_err() {
            ctx.push(
                Diagnostic::new(
                    format!("invalid value for header `{}`", name.get_ref()),
                    Some(value.span()),
                )
                .expected("printable ASCII text without line breaks"),
            );
        }
        if let (Ok(header), Ok(value)) = (header, parsed) {
            into.insert(header, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tables_are_encoded_in_key_order() {
        let mut table = BTreeMap::new();
        table.insert("q".to_owned(), QueryValue::Text("two words/&".to_owned()));
        table.insert("ms".to_owned(), QueryValue::Integer(200));
        table.insert("on".to_owned(), QueryValue::Bool(true));
        assert_eq!(encode_query(&table), "ms=200&on=true&q=two%20words%2F%26");
    }
}
