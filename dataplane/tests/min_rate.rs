//! `minBodyRate` over raw sockets against a real dataplane: a request body trickled slower than the rule gets 408 in
//! every body mode, over HTTP/1.1 and HTTP/2, with its spool removed, its log line and its counters saying so; a
//! body sent a few times faster than the rule completes; a client that stops reading its response is disconnected
//! and counted. Windows are short (1–2 s) so that the tests take seconds; every bound on time is loose (several
//! windows), and every loop is bounded.

mod support;

use bytes::Bytes;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::client::read_response;
use support::harness::{AccessLogDestination, AccessLogSettings};
use support::upstream::deliveries;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One route (`apps/photos`, Service port `apps/photos:80`) to `endpoints` under `policy`.
fn named_snapshot(endpoints: &[SocketAddr], policy: Value) -> String {
    let endpoints: Vec<Value> =
        endpoints.iter().map(|a| json!({"address": a.ip().to_string(), "port": a.port()})).collect();
    json!({
        "version": 1,
        "hosts": [{"host": "", "paths": [{"path": "/", "pathType": "Prefix", "backend": "apps/photos:80",
                    "policy": "p", "ingress": {"namespace": "apps", "name": "photos"}}]}],
        "backends": {"apps/photos:80": {"endpoints": endpoints,
                     "service": {"namespace": "apps", "name": "photos", "port": "80"}}},
        "policies": {"p": policy},
    })
    .to_string()
}

const ROUTE: &str = r#"namespace="apps",ingress="photos",service="photos",port="80""#;

/// The value of the sample `name{labels}` (or `name` with no labels) in a Prometheus text scrape.
fn sample(scrape: &str, name: &str, labels: &str) -> f64 {
    let prefix = match labels {
        "" => format!("{name} "),
        labels => format!("{name}{{{labels}}} "),
    };
    scrape.lines().find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok()).unwrap_or(0.0)
}

/// A dataplane logging JSON access lines to a file in `dir`.
async fn dataplane(dir: &Path, endpoints: &[SocketAddr], policy: Value) -> Harness {
    let log = AccessLogSettings {
        destination: AccessLogDestination::File(dir.join("access.jsonl")),
        json: true,
        with_query: false,
    };
    Harness::start_with_access_log(Some(&named_snapshot(endpoints, policy)), log).await
}

/// The access log lines written so far (lines are flushed within a fraction of a second: waits a bounded while for
/// `count` of them).
async fn access_lines(dir: &Path, count: usize) -> Vec<Value> {
    let read = || {
        let text = std::fs::read_to_string(dir.join("access.jsonl")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect::<Vec<Value>>()
    };
    for _ in 0..100 {
        if read().len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    read()
}

/// How a trickled request ended.
struct Trickled {
    status: u16,
    head: String,
    body: String,
    elapsed: Duration,
    /// The server closed the connection after its answer.
    closed: bool,
}

/// POSTs a body declared as `declared` bytes, sending `piece` bytes every `every`, `pieces` times at most (then
/// stalls without closing); waits for the answer at most 20 s.
async fn trickle(addr: SocketAddr, declared: u64, pace: (usize, Duration, u32)) -> Trickled {
    let head = format!("POST /up HTTP/1.1\r\nHost: upload.test\r\nContent-Length: {declared}\r\n\r\n");
    trickle_after(addr, &head, pace).await
}

/// Sends `head`, then its body as [`trickle`] does.
async fn trickle_after(addr: SocketAddr, head: &str, (piece, every, pieces): (usize, Duration, u32)) -> Trickled {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    let sending = tokio::spawn(async move {
        for _ in 0..pieces {
            if writer.write_all(&vec![b'x'; piece]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
        // Keep the write side open: a stalled client, not one that went away.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(writer);
    });
    let answered = tokio::time::timeout(Duration::from_secs(20), read_response(&mut reader)).await;
    let (status, head, body) = answered.expect("an answer within 20 s").expect("a response");
    let elapsed = started.elapsed();
    let mut rest = [0u8; 1024];
    let closed =
        matches!(tokio::time::timeout(Duration::from_secs(5), reader.read(&mut rest)).await, Ok(Ok(0) | Err(_)));
    sending.abort();
    Trickled { status, head, body: String::from_utf8_lossy(&body).into_owned(), elapsed, closed }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_gets_408_in_every_mode_and_is_counted_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let deliveries_log = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start("127.0.0.1:0", &deliveries_log, &[]).await;
    for (n, mode) in ["Buffered", "Tee", "Streaming"].into_iter().enumerate() {
        let logs = dir.path().join(mode);
        std::fs::create_dir(&logs).unwrap();
        // At least 2,000 bytes per second over 1.5 s windows; the idle timeout (10 s) never fires: a piece comes every
        // 200 ms, 500 bytes per second.
        let policy = json!({"mode": mode, "timeouts": {"clientBodyMs": 10_000},
                            "minBodyRate": {"bytesPerSecond": 2000, "windowMs": 1500}});
        let dp = dataplane(&logs, &[upstream.addr], policy).await;
        let trickled = trickle(dp.addr, 100_000, (100, Duration::from_millis(200), 150)).await;
        assert_eq!(trickled.status, 408, "{mode}: {}", trickled.body);
        assert!(trickled.body.contains("too slowly"), "{mode}: {}", trickled.body);
        // Within four windows of the first byte, however busy the machine.
        assert!(trickled.elapsed < Duration::from_secs(6), "{mode}: answered after {:?}", trickled.elapsed);
        assert!(trickled.closed, "{mode}: the connection closes after the 408");
        dp.assert_spool_clean().await;
        let scrape = dp.dp.metrics.encode();
        assert_eq!(sample(&scrape, "holdfast_client_body_too_slow_total", ""), 1.0, "{mode}");
        assert_eq!(sample(&scrape, "holdfast_route_client_body_too_slow_total", ROUTE), 1.0, "{mode}");
        let lines = access_lines(&logs, 1).await;
        assert_eq!(lines.len(), 1, "{mode}: {lines:?}");
        assert_eq!((lines[0]["status"].as_u64(), lines[0]["cut"].as_str()), (Some(408), Some("client_body_too_slow")));
        assert!(deliveries(&deliveries_log).is_empty(), "after {n} modes: a partial body is never delivered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_four_times_faster_than_the_minimum_completes() {
    let dir = tempfile::tempdir().unwrap();
    let deliveries_log = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start("127.0.0.1:0", &deliveries_log, &[]).await;
    for mode in ["Buffered", "Streaming"] {
        let logs = dir.path().join(mode);
        std::fs::create_dir(&logs).unwrap();
        let policy = json!({"mode": mode, "minBodyRate": {"bytesPerSecond": 500, "windowMs": 2000}});
        let dp = dataplane(&logs, &[upstream.addr], policy).await;
        // 2,000 bytes per second for three windows and a half.
        let sent = trickle(dp.addr, 14_000, (200, Duration::from_millis(100), 70)).await;
        assert_eq!(sent.status, 200, "{mode}: {}", sent.body);
        let scrape = dp.dp.metrics.encode();
        assert_eq!(sample(&scrape, "holdfast_client_body_too_slow_total", ""), 0.0, "{mode}");
        let lines = access_lines(&logs, 1).await;
        assert!(lines[0].get("cut").is_none(), "{mode}: {:?}", lines[0]);
    }
    let delivered = deliveries(&deliveries_log);
    assert_eq!(delivered.len(), 2);
    assert!(delivered.iter().all(|d| d["bytes"] == 14_000), "{delivered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_over_http2_gets_408() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let policy = json!({"mode": "Buffered", "minBodyRate": {"bytesPerSecond": 2000, "windowMs": 1500}});
    let dp = dataplane(dir.path(), &[upstream.addr], policy).await;
    let tcp = TcpStream::connect(dp.addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(tcp);
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.unwrap();
    tokio::spawn(connection);
    let (mut body_tx, body) = http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(1);
    let request = http::Request::post("http://upload.test/up").body(body).unwrap();
    let started = Instant::now();
    let trickling = tokio::spawn(async move {
        for _ in 0..150 {
            if body_tx.send_data(Bytes::from_static(&[b'x'; 100])).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let response = tokio::time::timeout(Duration::from_secs(20), sender.send_request(request)).await;
    let response = response.expect("an answer within 20 s").unwrap();
    assert_eq!(response.status(), 408);
    assert!(started.elapsed() < Duration::from_secs(6), "answered after {:?}", started.elapsed());
    trickling.abort();
    dp.assert_spool_clean().await;
    assert_eq!(dp.dp.metrics.client_body_too_slow.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_tus_patch_gets_408_and_keeps_what_arrived() {
    use support::tus::{create, head, head_of, OCTETS, TUS};
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let policy = json!({"resumable": {}, "timeouts": {"clientBodyMs": 10_000},
                        "minBodyRate": {"bytesPerSecond": 2000, "windowMs": 1500}});
    let dp = dataplane(dir.path(), &[upstream.addr], policy).await;
    let (created, target) = create(dp.addr, "/files", &[("Upload-Length", "100000")]).await;
    assert_eq!(created.status, 201, "{}", created.head);
    let patch = head_of("PATCH", &target, &[TUS, OCTETS, ("Upload-Offset", "0")], Some(100_000));
    let trickled = trickle_after(dp.addr, &patch, (100, Duration::from_millis(200), 150)).await;
    assert_eq!(trickled.status, 408, "{}\n{}", trickled.head, trickled.body);
    assert!(trickled.elapsed < Duration::from_secs(6), "answered after {:?}", trickled.elapsed);
    // The bytes that arrived are the upload's: a resumption at a better pace goes on from them.
    let offset =
        trickled.head.lines().find_map(|l| Some(l.to_ascii_lowercase().strip_prefix("upload-offset:")?.to_string()));
    let offset: u64 = offset.expect("the 408 says the offset").trim().parse().unwrap();
    assert!(offset >= 100 && offset % 100 == 0, "{offset}");
    assert_eq!(head(dp.addr, &target).await.must("Upload-Offset"), offset.to_string());
    assert_eq!(dp.dp.metrics.client_body_too_slow.get(), 1);
}

/// An upstream that answers every request with a `len`-byte body, as fast as its reader takes it.
async fn large_response_upstream(len: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = vec![0u8; 4096];
                let _ = stream.read(&mut head).await;
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'y'; 64 * 1024];
                let mut sent = 0;
                while sent < len {
                    let n = chunk.len().min(len - sent);
                    if stream.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    sent += n;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_its_response_is_disconnected_and_counted() {
    const LEN: usize = 256 << 20;
    let dir = tempfile::tempdir().unwrap();
    let upstream = large_response_upstream(LEN).await;
    let policy = json!({"minBodyRate": {"bytesPerSecond": 1000, "windowMs": 1000}});
    let dp = dataplane(dir.path(), &[upstream], policy).await;
    let mut stream = TcpStream::connect(dp.addr).await.unwrap();
    stream.write_all(b"GET /big HTTP/1.1\r\nHost: upload.test\r\n\r\n").await.unwrap();
    let mut first = [0u8; 4096];
    let n = stream.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    // Stop reading: the socket buffers fill, the dataplane's writes wait, and the windows close with nothing read.
    let counter = &dp.dp.metrics.client_read_too_slow;
    for _ in 0..200 {
        if counter.get() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counter.get(), 1, "the slow reader's connection was closed and counted");
    // What is left to read ends early: the connection was reset, or ends after what the kernel had buffered.
    let mut total = n;
    let mut buf = vec![0u8; 256 * 1024];
    for _ in 0..100_000 {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(read)) => total += read,
            Err(_) => panic!("the connection neither closed nor sent anything for 10 s"),
        }
    }
    assert!(total < LEN, "read {total} bytes: the whole response");
    assert!(dp.dp.metrics.encode().contains("holdfast_client_read_too_slow_total 1"));
}
