//! Applies a phase's faults to the target through its chaos API, and clears them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, AUTHORIZATION, CONTENT_TYPE};
use http::HeaderValue;
use target_app::chaos::{ChaosSpec, Fault};

use crate::client::{BadTarget, Client, Options};

/// Why faults could not be applied or cleared.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("cannot reach the chaos API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the chaos API at {url} refused the faults ({status}): {body}")]
    Refused { url: String, status: u16, body: String },
}

/// A client of one target's `/admin/chaos`, over the same transport (http or https) as the load.
#[derive(Clone)]
pub struct ChaosClient {
    url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    client: Arc<Client>,
}

impl ChaosClient {
    /// A chaos client for `base`, with `token` as bearer token when given.
    pub fn new(base: &str, token: Option<&str>, options: &Options) -> Result<ChaosClient, BadTarget> {
        let client = Client::new(
            base,
            &Options {
                max_idle: 1,
                ..options.clone()
            },
        )?;
        let mut headers = vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| BadTarget::Url("the chaos token is not valid in a header".to_owned()))?;
            value.set_sensitive(true);
            headers.push((AUTHORIZATION, value));
        }
        Ok(ChaosClient {
            url: format!("{}/admin/chaos", base.trim_end_matches('/')),
            headers,
            client: Arc::new(client),
        })
    }

    /// Replaces the target's faults with `faults`, decided from `seed`.
    pub async fn apply(&self, seed: u64, faults: &[Fault]) -> Result<(), ChaosError> {
        let spec = ChaosSpec {
            seed,
            faults: faults.to_vec(),
        };
        let body = serde_json::to_vec(&spec).expect("chaos specs serialize");
        self.call(http::Method::PUT, Bytes::from(body)).await
    }

    /// Clears every fault on the target. Retried a few times: it runs on the way out, and a
    /// target just back from an outage may need a moment.
    pub async fn clear(&self) -> Result<(), ChaosError> {
        let mut last = None;
        for _ in 0..5 {
            match self.call(http::Method::DELETE, Bytes::new()).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(last.expect("at least one attempt"))
    }

    async fn call(&self, method: http::Method, body: Bytes) -> Result<(), ChaosError> {
        let (status, body) = self
            .client
            .call(
                method,
                "/admin/chaos",
                &self.headers,
                body,
                Duration::from_secs(5),
            )
            .await
            .map_err(|e| ChaosError::Unreachable {
                url: self.url.clone(),
                reason: e.to_string(),
            })?;
        if status.is_success() {
            Ok(())
        } else {
            Err(ChaosError::Refused {
                url: self.url.clone(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).trim().to_owned(),
            })
        }
    }
}
