//! A JSON API loadgen asks (Prometheus): its base URL, the transport options shared with the load
//! (https, CA, client certificate), and its credentials (bearer token or basic auth). Credentials are
//! marked sensitive and never printed.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderName, AUTHORIZATION};
use http::{HeaderValue, Method};

use super::{BadTarget, Client, Options};

/// How to authenticate to an API.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    #[default]
    None,
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
    /// `Authorization: Basic …` from `user:password`.
    Basic(String),
}

/// One API endpoint.
pub struct Api {
    client: Client,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Its base URL, for messages.
    pub url: String,
}

impl Api {
    /// An API at `base` (e.g. `https://prometheus.internal:9090`).
    pub fn new(base: &str, options: &Options, auth: &Auth) -> Result<Api, BadTarget> {
        let base = base.trim_end_matches('/');
        let client = Client::new(
            base,
            &Options {
                max_idle: 2,
                body_cap: 64 * 1024 * 1024,
                ..options.clone()
            },
        )?;
        let value = match auth {
            Auth::None => None,
            Auth::Bearer(token) => Some(format!("Bearer {token}")),
            Auth::Basic(pair) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )),
        };
        let mut headers = Vec::new();
        if let Some(value) = value {
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| BadTarget::Url(format!("{base}: the credentials are not valid in a header")))?;
            value.set_sensitive(true);
            headers.push((AUTHORIZATION, value));
        }
        Ok(Api {
            client,
            headers,
            url: base.to_owned(),
        })
    }

    /// `GET path` (with its query); the body of a 2xx answer, or what went wrong in words.
    pub async fn get(&self, path: &str, limit: Duration) -> Result<Bytes, String> {
        let (status, body) = self
            .client
            .call(Method::GET, path, &self.headers, Bytes::new(), limit)
            .await
            .map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(body)
        } else {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_owned();
            Err(format!("{} answered {status}: {text}", self.url))
        }
    }
}
