//! tus 1.0.0 over raw HTTP/1.1 for the resumable-upload tests: one request per connection (`Connection: close`, so
//! that an answer to a HEAD is read to its end), the answer's fields by name, and a backend in this process that
//! records every request it gets (method, target, fields, the body's length and SHA-256) and answers JSON with the
//! status the test chose — the hash upstream does not say which fields it was sent, and the delivery's are the point.

use super::client::{hex, read_response, Payload};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// The longest any one request or wait of these tests may take.
pub const LIMIT: Duration = Duration::from_secs(20);

pub const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");
pub const OCTETS: (&str, &str) = ("Content-Type", "application/offset+octet-stream");

/// One response as read off the socket.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of field `name`, if the answer has it.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// Field `name`, which the answer must have.
    pub fn must(&self, name: &str) -> String {
        self.header(name).unwrap_or_else(|| panic!("no {name} in:\n{}", self.head))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}\n{}", self.text(), self.head))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Writes the head of a request (with `Content-Length` when there is a body or the method usually has one), to host
/// `upload.test` unless `headers` name another.
pub fn head_of(method: &str, target: &str, headers: &[(&str, &str)], body_len: Option<u64>) -> String {
    let mut head = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        head.push_str("Host: upload.test\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(len) = body_len {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    head + "\r\n"
}

/// One request on a connection of its own.
pub async fn send(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let has_body = !body.is_empty() || matches!(method, "POST" | "PATCH" | "PUT");
    let head = head_of(method, target, headers, has_body.then_some(body.len() as u64));
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        read_response(&mut stream).await
    };
    let (status, head, body) = tokio::time::timeout(LIMIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} {target} within {LIMIT:?}"))
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
    Reply { status, head, body }
}

/// A creation at `path` (`Tus-Resumable` added); returns the answer and, when it is a `201`, the upload's target
/// (the path and query of its `Location`).
pub async fn create(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (Reply, String) {
    let mut all = vec![TUS];
    all.extend_from_slice(headers);
    let reply = send(addr, "POST", path, &all, b"").await;
    let target = match reply.status {
        201 => target_of(&reply.must("Location")),
        _ => String::new(),
    };
    (reply, target)
}

/// A PATCH of `body` at `offset`, with `headers` added to the protocol's own.
pub async fn patch(addr: SocketAddr, target: &str, offset: u64, body: &[u8], headers: &[(&str, &str)]) -> Reply {
    let offset = offset.to_string();
    let mut all = vec![TUS, OCTETS, ("Upload-Offset", offset.as_str())];
    all.extend_from_slice(headers);
    send(addr, "PATCH", target, &all, body).await
}

pub async fn head(addr: SocketAddr, target: &str) -> Reply {
    send(addr, "HEAD", target, &[TUS], b"").await
}

/// The path and query of an absolute URL.
pub fn target_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.find('/').map_or("/".to_string(), |slash| rest[slash..].to_string())
}

/// The upload id a target names.
pub fn id_of(target: &str) -> String {
    target.split_once("holdfast-upload=").map(|(_, id)| id.to_string()).expect("an upload URL")
}

/// `len` deterministic bytes.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    Payload::new(seed).fill(&mut bytes);
    bytes
}

pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The names of the files in the spool's `tus/` directory, sorted (none when it does not exist).
pub fn upload_files(spool: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(spool.join("tus")) else { return Vec::new() };
    let mut names: Vec<String> = entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Polls `check` every 20 ms until it gives a value, for at most [`LIMIT`].
pub async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One request as the [`Recorder`] got it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    pub headers: http::HeaderMap,
    pub bytes: u64,
    pub sha256: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("a text field"))
    }
}

/// A backend that records what it gets and answers `status` with `{"method","bytes","sha256","requestId"}`.
pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                let service = hyper::service::service_fn(move |request| record(log.clone(), status, request));
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::spawn(connection);
            }
        });
        Recorder { addr, seen, task }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `n` requests have arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Recorded> {
        eventually(&format!("{n} requests at the backend"), || async {
            let seen = self.requests();
            (seen.len() >= n).then_some(seen)
        })
        .await
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    log: Arc<Mutex<Vec<Recorded>>>,
    status: u16,
    request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let recorded = Recorded {
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        headers: parts.headers,
        bytes: body.len() as u64,
        sha256: sha256(&body),
    };
    let answer = serde_json::json!({
        "method": recorded.method, "bytes": recorded.bytes, "sha256": recorded.sha256,
        "requestId": recorded.header("x-request-id"),
    });
    log.lock().unwrap().push(recorded);
    let mut response = http::Response::new(Full::new(Bytes::from(answer.to_string())));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    response.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
    response.headers_mut().insert("x-backend", http::HeaderValue::from_static("recorder"));
    Ok(response)
}
