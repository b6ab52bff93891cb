//! The dataplane admin API as the pusher uses it: `GET /config` for the version in force, `PUT /config` with a
//! snapshot and `PATCH /config` with a delta. Plain HTTP/1.1 on a fresh connection per request: pushes are rare, the admin port is local, and a
//! fresh connection never trips over one the dataplane closed when it restarted.

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// Longest a single admin request may take, connect included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest admin response body read; the dataplane answers with a version or a one-line reason.
const MAX_RESPONSE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("dataplane URL {0:?} must be http://HOST:PORT[/config]")]
    BadUrl(String),
    #[error("cannot connect to the dataplane at {authority}: {source}")]
    Connect { authority: String, source: std::io::Error },
    #[error("HTTP error talking to the dataplane: {0}")]
    Http(#[from] hyper::Error),
    #[error("the dataplane did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the dataplane refused the push ({status}): {reason}")]
    Refused { status: StatusCode, reason: String },
    #[error("unexpected answer from the dataplane to GET /config: {0}")]
    BadVersion(String),
}

/// Where the dataplane's admin `/config` is.
#[derive(Debug, Clone)]
pub struct DataplaneClient {
    authority: String,
    uri: Uri,
}

#[derive(serde::Deserialize)]
struct VersionBody {
    version: Option<u64>,
}

impl DataplaneClient {
    /// Accepts `http://HOST:PORT` (the form) or `http://HOST:PORT/config`.
    pub fn new(url: &str) -> Result<Self, ClientError> {
        let bad = || ClientError::BadUrl(url.to_string());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("http") {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?;
        let port = authority.port_u16().unwrap_or(80);
        let path = match uri.path() {
            "" | "/" => "/config",
            path => path,
        };
        let authority = format!("{}:{port}", authority.host());
        let uri = format!("http://{authority}{path}").parse().map_err(|_| bad())?;
        Ok(DataplaneClient { authority, uri })
    }

    pub fn url(&self) -> &Uri {
        &self.uri
    }

    /// The snapshot version in force; `None` when the dataplane has none (it just started).
    pub async fn version(&self) -> Result<Option<u64>, ClientError> {
        let (status, body) = self.request(Method::GET, Bytes::new()).await?;
        if status != StatusCode::OK {
            return Err(ClientError::BadVersion(format!("status {status}")));
        }
        let parsed: VersionBody =
            serde_json::from_slice(&body).map_err(|e| ClientError::BadVersion(format!("{e} in {:?}", lossy(&body))))?;
        Ok(parsed.version)
    }

    /// Puts a snapshot (already JSON) in force.
    pub async fn put(&self, snapshot_json: Bytes) -> Result<(), ClientError> {
        self.change(Method::PUT, snapshot_json).await
    }

    /// Applies a delta (already JSON) to the snapshot in force.
    pub async fn patch(&self, delta_json: Bytes) -> Result<(), ClientError> {
        self.change(Method::PATCH, delta_json).await
    }

    async fn change(&self, method: Method, json: Bytes) -> Result<(), ClientError> {
        let (status, body) = self.request(method, json).await?;
        if status.is_success() {
            return Ok(());
        }
        Err(ClientError::Refused { status, reason: lossy(&body) })
    }

    async fn request(&self, method: Method, body: Bytes) -> Result<(StatusCode, Bytes), ClientError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.request_inner(method, body))
            .await
            .map_err(|_| ClientError::Timeout(REQUEST_TIMEOUT))?
    }

    async fn request_inner(&self, method: Method, body: Bytes) -> Result<(StatusCode, Bytes), ClientError> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|source| ClientError::Connect { authority: self.authority.clone(), source })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection task ends when the response is read and the request's sender is dropped.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "Dataplane admin connection ended with an error");
            }
        });
        let request = Request::builder()
            .method(method)
            .uri(self.uri.path())
            .header(http::header::HOST, &self.authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|_| ClientError::BadUrl(self.uri.to_string()))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| ClientError::BadVersion(format!("response body: {e}")))?
            .to_bytes();
        Ok((status, body))
    }
}

fn lossy(body: &[u8]) -> String {
    String::from_utf8_lossy(body).trim().to_string()
}
