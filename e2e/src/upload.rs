//! Requests as a client sends them: one HTTP/1.1 POST (an upload with a deterministic body) or GET per connection,
//! and what came back.
//! `holdfast-hash-upstream` answers with the length and SHA-256 of what it received, so comparing that with the
//! SHA-256 of what was sent proves the body went through the dataplane to the upstream intact.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::Duration;

/// Longest one request may take, connect to last response byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A response: status and whole body (small: the upstream's JSON or the dataplane's error text).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    /// The body as `holdfast-hash-upstream`'s JSON (`{"bytes":N,"sha256":"…",…}`).
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("status {}, body not JSON: {}", self.status, String::from_utf8_lossy(&self.body)))
    }
}

/// `len` deterministic pseudo-random bytes (xorshift64), so a failure can be reproduced byte for byte.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// POSTs `body` to `http://{addr}{path}` with `Host: {host}`, on a new connection.
pub async fn post(addr: SocketAddr, host: &str, path: &str, body: Vec<u8>) -> anyhow::Result<Reply> {
    request(hyper::Method::POST, addr, host, path, body).await
}

/// GETs `http://{addr}{path}` with `Host: {host}`, on a new connection: a request without a body.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> anyhow::Result<Reply> {
    request(hyper::Method::GET, addr, host, path, Vec::new()).await
}

async fn request(
    method: hyper::Method,
    addr: SocketAddr,
    host: &str,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<Reply> {
    let what = format!("{method} http://{addr}{path}");
    tokio::time::timeout(REQUEST_TIMEOUT, send(method, addr, host, path, body))
        .await
        .with_context(|| format!("{what}: no response within {REQUEST_TIMEOUT:?}"))?
}

async fn send(method: hyper::Method, addr: SocketAddr, host: &str, path: &str, body: Vec<u8>) -> anyhow::Result<Reply> {
    let stream = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection task ends with the request; its error, if any, also surfaces through `send_request`.
    tokio::spawn(connection);
    let what = format!("{method} http://{addr}{path}");
    let mut request = hyper::Request::builder().method(method).uri(path).header(hyper::header::HOST, host);
    if !body.is_empty() {
        request = request.header(hyper::header::CONTENT_TYPE, "application/octet-stream");
    }
    let request = request.body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await.with_context(|| what)?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.context("reading the response body")?.to_bytes();
    Ok(Reply { status, body })
}
