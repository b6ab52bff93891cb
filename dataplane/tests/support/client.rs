//! A raw HTTP/1.1 client: writes a request with a deterministic pseudo-random body (by Content-Length or chunked,
//! optionally at a limited rate), hashes what it sent, and reads the response, also when the server answers before
//! the body is complete.

use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
pub struct Upload {
    pub path: String,
    pub len: u64,
    pub chunked: bool,
    /// Bytes per second; `None` for as fast as possible.
    pub rate: Option<u64>,
    /// Send only this many body bytes, then stop writing (and keep the connection open).
    pub stop_after: Option<u64>,
    /// After this many body bytes, pause this long, then go on.
    pub pause: Option<(u64, Duration)>,
    pub headers: Vec<(String, String)>,
}

impl Upload {
    pub fn new(path: &str, len: u64) -> Self {
        let (chunked, rate, stop_after, pause, headers) = (false, None, None, None, Vec::new());
        Upload { path: path.to_string(), len, chunked, rate, stop_after, pause, headers }
    }
}

#[derive(Debug)]
pub struct UploadResult {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
    /// SHA-256 of the body bytes this client sent.
    pub sent_sha256: String,
    pub elapsed: Duration,
}

impl UploadResult {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Deterministic bytes, fast to make: xorshift64.
pub struct Payload(u64);

impl Payload {
    pub fn new(seed: u64) -> Self {
        Payload(seed | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

pub async fn upload(addr: SocketAddr, upload: Upload) -> std::io::Result<UploadResult> {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.into_split();
    let spec = upload.clone();
    let mut sending = tokio::spawn(async move {
        let mut head = format!("POST {} HTTP/1.1\r\nHost: upload.test\r\n", spec.path);
        if spec.chunked {
            head.push_str("Transfer-Encoding: chunked\r\n");
        } else {
            head.push_str(&format!("Content-Length: {}\r\n", spec.len));
        }
        for (name, value) in &spec.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        writer.write_all(head.as_bytes()).await?;
        let mut payload = Payload::new(spec.len);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let (mut sent, started) = (0u64, Instant::now());
        let limit = spec.stop_after.unwrap_or(spec.len).min(spec.len);
        let mut pause = spec.pause;
        while sent < limit {
            if let Some((_, pause_for)) = pause.filter(|(after, _)| sent >= *after) {
                tokio::time::sleep(pause_for).await;
                pause = None;
            }
            let mut n = (limit - sent).min(buf.len() as u64) as usize;
            if let Some((after, _)) = pause.filter(|(after, _)| sent + n as u64 > *after) {
                // Exactly the bytes before the pause.
                n = (after - sent) as usize;
            }
            payload.fill(&mut buf[..n]);
            hasher.update(&buf[..n]);
            if spec.chunked {
                writer.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                writer.write_all(&buf[..n]).await?;
                writer.write_all(b"\r\n").await?;
            } else {
                writer.write_all(&buf[..n]).await?;
            }
            sent += n as u64;
            if let Some(rate) = spec.rate {
                tokio::time::sleep_until((started + Duration::from_secs_f64(sent as f64 / rate as f64)).into()).await;
            }
        }
        if spec.stop_after.is_some() {
            // Keep the write side open: a stalled client, not a finished one.
            std::future::pending::<()>().await;
        }
        if spec.chunked {
            writer.write_all(b"0\r\n\r\n").await?;
        }
        writer.flush().await?;
        Ok::<_, std::io::Error>((hex(&hasher.finalize()), writer))
    });
    let response = read_response(&mut reader).await;
    // The writer may still be finishing when an answer to a complete body arrives; an early answer leaves it stuck.
    let sent_sha256 = match tokio::time::timeout(Duration::from_secs(1), &mut sending).await {
        Ok(Ok(Ok((sha, _writer)))) => sha,
        _ => {
            sending.abort();
            String::new()
        }
    };
    let (status, head, body) = response?;
    Ok(UploadResult { status, head, body, sent_sha256, elapsed: started.elapsed() })
}

/// Reads one response with a Content-Length (or until close).
pub async fn read_response(reader: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let n = reader.read(&mut tmp).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before a response head"));
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>()))
        .and_then(Result::ok);
    let mut body = buf[head_end..].to_vec();
    loop {
        if length.is_some_and(|len| body.len() >= len) {
            break;
        }
        let n = reader.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Ok((status, head, body))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the payload `upload` would send for a body of `len` bytes.
pub fn payload_sha256(len: u64) -> String {
    let mut payload = Payload::new(len);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        payload.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    hex(&hasher.finalize())
}
