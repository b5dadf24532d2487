//! Applies a phase's faults to the target through its chaos API, and clears them.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use target_app::chaos::{ChaosSpec, Fault};

/// Why faults could not be applied or cleared.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("cannot reach the chaos API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the chaos API at {url} refused the faults ({status}): {body}")]
    Refused { url: String, status: u16, body: String },
}

/// A client of one target's `/admin/chaos`.
#[derive(Clone)]
pub struct ChaosClient {
    url: String,
    token: Option<String>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl ChaosClient {
    pub fn new(base: &str, token: Option<String>) -> ChaosClient {
        ChaosClient {
            url: format!("{}/admin/chaos", base.trim_end_matches('/')),
            token,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
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
        let mut req = http::Request::builder()
            .method(method)
            .uri(&self.url)
            .header("content-type", "application/json");
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = req.body(Full::new(body)).map_err(|e| self.unreachable(e))?;
        let resp = tokio::time::timeout(Duration::from_secs(5), self.client.request(req))
            .await
            .map_err(|_| self.unreachable("no answer within 5s"))?
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
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

    fn unreachable(&self, reason: impl std::fmt::Display) -> ChaosError {
        ChaosError::Unreachable {
            url: self.url.clone(),
            reason: reason.to_string(),
        }
    }
}
