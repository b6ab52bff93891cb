//! HTTP/2 floods against the real `holdfast-dataplane` binary, over raw h2c sockets (frames written by hand,
//! `support::h2_frames`): a paced rapid reset, a burst rapid reset (CVE-2023-44487) and CONTINUATION floods are each
//! bounded and end with the connection closed, and the process's memory stays flat; an honest client that reaches
//! `--max-requests-per-connection` is sent a graceful GOAWAY and goes on, losing no request, on a new connection.
//!
//! The upstream is a real HTTP/1.1 server on 127.0.0.1 that counts the request heads it receives: the bound that
//! matters is what the dataplane lets through to a backend.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::h2_frames::{self as h2f, FrameLog, Seen};
use support::harness::log_message;
use support::{snapshot, DataplaneProcess};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The per-connection limit the tests configure: small, so that a test reaches it many times over.
const MAX_REQUESTS: usize = 100;
/// The binary's default SETTINGS_MAX_CONCURRENT_STREAMS (`--http2-max-concurrent-streams`).
const MAX_CONCURRENT: usize = 128;

/// An HTTP/1.1 upstream that answers `ok` and counts the requests it received.
struct CountingUpstream {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingUpstream {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, requests) = (listener.local_addr().unwrap(), Arc::new(AtomicUsize::new(0)));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                let service = hyper::service::service_fn(move |_request| {
                    counter.fetch_add(1, Ordering::AcqRel);
                    async { Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from("ok")))) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        CountingUpstream { addr, requests, task }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::Acquire)
    }
}

impl Drop for CountingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The dataplane binary routing everything to `upstream`, with `extra` flags; its temp dir goes with it.
async fn start_dataplane(dir: &Path, upstream: SocketAddr, extra: &[&str]) -> DataplaneProcess {
    let (spool, snapshot_file) = (dir.join("spool"), dir.join("snapshot.json"));
    std::fs::create_dir(&spool).unwrap();
    std::fs::write(&snapshot_file, snapshot(1, &[upstream], "{}")).unwrap();
    DataplaneProcess::start(&spool, &snapshot_file, extra).await
}

/// An h2c connection with the preface and SETTINGS sent, and a task reading what the server sends.
async fn open_raw(addr: SocketAddr) -> (tokio::net::tcp::OwnedWriteHalf, FrameLog) {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (reader, mut writer) = stream.into_split();
    writer.write_all(&[h2f::client_start(), h2f::settings_ack()].concat()).await.unwrap();
    (writer, FrameLog::follow(reader))
}

/// The dataplane process's resident set (`VmRSS`), in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the dataplane's /proc status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A paced rapid reset: one stream at a time, each reset about half a millisecond after its HEADERS, so that each is
/// accepted (and proxied) before it is reset and no limit on unaccepted resets applies; at most 3,000 streams or 20 s.
/// The server's PINGs are answered or not (an attacker may ignore them, and with them the graceful GOAWAY's end).
/// Returns the streams sent and what the server sent.
async fn paced_rapid_reset(addr: SocketAddr, answer_pings: bool) -> (u32, Seen) {
    let (mut writer, log) = open_raw(addr).await;
    let (started, mut sent, mut answered) = (Instant::now(), 0u32, 0u32);
    while sent < 3_000 && started.elapsed() < Duration::from_secs(20) {
        let seen = log.seen();
        if seen.closed {
            break;
        }
        if answer_pings && seen.pings > answered {
            answered = seen.pings;
            let ack = h2f::ping_ack(&seen.last_ping.unwrap_or_default());
            if writer.write_all(&ack).await.is_err() {
                break;
            }
        }
        let stream = 2 * sent + 1;
        if writer.write_all(&h2f::get(stream, "/paced")).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_micros(500)).await;
        if writer.write_all(&h2f::rst_stream(stream, h2f::CANCEL)).await.is_err() {
            break;
        }
    }
    let seen = log.closed(Duration::from_secs(10)).await;
    eprintln!("paced rapid reset: {sent} streams sent in {:?}, server sent {seen:?}", started.elapsed());
    (sent, seen)
}

async fn start_limited(dir: &Path, upstream: &CountingUpstream) -> DataplaneProcess {
    let limit = MAX_REQUESTS.to_string();
    start_dataplane(dir, upstream.addr, &["--max-requests-per-connection", &limit]).await
}

#[tokio::test]
async fn a_paced_rapid_reset_is_cut_off_after_the_connections_request_limit() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = CountingUpstream::start().await;
    let dataplane = start_limited(dir.path(), &upstream).await;
    let (sent, seen) = paced_rapid_reset(dataplane.addr, false).await;
    assert!(seen.closed, "the connection is still open after {sent} streams: {seen:?}");
    assert!(sent as usize > MAX_REQUESTS, "the attack stopped before reaching the limit ({sent} streams)");
    assert_eq!(seen.goaways.first(), Some(&(0x7fff_ffff, h2f::NO_ERROR)), "a graceful GOAWAY first: {seen:?}");
    // Refused, not proxied, up to what an honest client may have had in flight; then the connection is closed.
    let refused = seen.resets_with(h2f::REFUSED_STREAM) as usize;
    assert!((1..=MAX_CONCURRENT).contains(&refused), "{refused} streams refused: {seen:?}");
    assert!(seen.ok_responses as usize <= MAX_REQUESTS, "{seen:?}");
    let reached = upstream.requests();
    assert!(reached <= MAX_REQUESTS, "{reached} requests reached the upstream on one connection");
    let warned = |line: &str| log_message(line) == "HTTP/2 client kept opening streams after GOAWAY: connection closed";
    dataplane.log.wait_for_nth(1, Duration::from_secs(10), warned).await;
    // The dataplane serves on.
    assert_eq!(support::get(dataplane.addr, "/after").await.0, 200);
}

#[tokio::test]
async fn a_paced_rapid_reset_that_answers_the_goaways_ping_is_cut_off_too() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = CountingUpstream::start().await;
    let dataplane = start_limited(dir.path(), &upstream).await;
    let (sent, seen) = paced_rapid_reset(dataplane.addr, true).await;
    assert!(seen.closed, "the connection is still open after {sent} streams: {seen:?}");
    // The PING answered, the second GOAWAY names the last stream served; later streams are ignored by h2.
    assert_eq!(seen.goaways.len(), 2, "{seen:?}");
    assert!(seen.goaways.iter().all(|&(_, code)| code == h2f::NO_ERROR), "{seen:?}");
    assert!(seen.goaways[1].0 < 2 * sent, "{seen:?}");
    let reached = upstream.requests();
    assert!(reached <= MAX_REQUESTS, "{reached} requests reached the upstream on one connection");
    assert_eq!(support::get(dataplane.addr, "/after").await.0, 200);
}

#[tokio::test]
async fn streams_in_flight_when_the_limit_is_reached_are_served_or_refused_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = CountingUpstream::start().await;
    let dataplane = start_limited(dir.path(), &upstream).await;
    let (mut writer, log) = open_raw(dataplane.addr).await;
    // An honest client with 8 requests in flight at a time: it answers PINGs and stops opening streams at the GOAWAY.
    // 8 does not divide the limit, so the last round straddles it.
    let (mut sent, mut answered) = (0u32, 0u32);
    for _round in 0..40 {
        let seen = log.seen();
        if !seen.goaways.is_empty() || seen.closed {
            break;
        }
        let round: Vec<u8> = (sent..sent + 8).flat_map(|i| h2f::get(2 * i + 1, "/in-flight")).collect();
        writer.write_all(&round).await.unwrap();
        sent += 8;
        let all_answered = |seen: &Seen| {
            let resets: u32 = seen.resets.iter().map(|(_, n)| n).sum();
            seen.ok_responses + seen.other_responses + resets >= sent
        };
        let seen = log.wait_for(Duration::from_secs(10), all_answered).await;
        if seen.pings > answered {
            answered = seen.pings;
            let _ = writer.write_all(&h2f::ping_ack(&seen.last_ping.unwrap_or_default())).await;
        }
    }
    let seen = log.closed(Duration::from_secs(10)).await;
    eprintln!("8 in flight: {sent} streams sent, server sent {seen:?}");
    assert!(seen.closed, "{seen:?}");
    let refused = seen.resets_with(h2f::REFUSED_STREAM);
    assert_eq!(seen.ok_responses as usize, MAX_REQUESTS, "{seen:?}");
    assert_eq!(seen.ok_responses + refused, sent, "every stream served or refused (safe to retry): {seen:?}");
    assert_eq!(upstream.requests(), MAX_REQUESTS, "the refused ones never reached the upstream");
}

#[tokio::test]
async fn header_lists_up_to_the_limit_are_served_and_larger_ones_refused_without_closing() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = CountingUpstream::start().await;
    let dataplane = start_dataplane(dir.path(), upstream.addr, &[]).await;
    let (mut writer, log) = open_raw(dataplane.addr).await;
    let request = |stream: u32, value_len: usize| {
        let mut block = h2f::request_block("GET", "/headers");
        h2f::literal(&mut block, b"x-big", &vec![b'a'; value_len]);
        h2f::header_frames(stream, &block, true)
    };
    // 48 KiB: over hyper's own default (16 KiB), within the dataplane's (64 KiB), in HEADERS and 2 CONTINUATIONs.
    writer.write_all(&request(1, 48 << 10)).await.unwrap();
    let seen = log.wait_for(Duration::from_secs(10), |seen| seen.ok_responses + seen.other_responses >= 1).await;
    assert_eq!((seen.ok_responses, seen.other_responses), (1, 0), "{seen:?}");
    // 80 KiB: refused (h2 answers 431) before anything reaches the upstream; the connection stays open.
    writer.write_all(&request(3, 80 << 10)).await.unwrap();
    let seen = log.wait_for(Duration::from_secs(10), |seen| seen.other_responses >= 1).await;
    assert_eq!((seen.ok_responses, seen.other_responses), (1, 1), "{seen:?}");
    writer.write_all(&h2f::get(5, "/after")).await.unwrap();
    let seen = log.wait_for(Duration::from_secs(10), |seen| seen.ok_responses >= 2).await;
    assert_eq!(seen.ok_responses, 2, "{seen:?}");
    assert!(seen.goaways.is_empty() && !seen.closed, "{seen:?}");
    assert_eq!(upstream.requests(), 2);
}

#[tokio::test]
async fn a_burst_rapid_reset_ends_with_goaway_enhance_your_calm() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = CountingUpstream::start().await;
    let dataplane = start_dataplane(dir.path(), upstream.addr, &[]).await;
    let (mut writer, log) = open_raw(dataplane.addr).await;
    let burst: Vec<u8> = (0..1_000u32)
        .flat_map(|i| [h2f::get(2 * i + 1, "/burst"), h2f::rst_stream(2 * i + 1, h2f::CANCEL)].concat())
        .collect();
    // The server may close before it has read it all.
    let _ = writer.write_all(&burst).await;
    let seen = log.closed(Duration::from_secs(10)).await;
    eprintln!("burst rapid reset: server sent {seen:?}, upstream saw {}", upstream.requests());
    assert!(seen.closed, "{seen:?}");
    assert!(seen.goaways.iter().any(|&(_, code)| code == h2f::ENHANCE_YOUR_CALM), "{seen:?}");
    assert!(upstream.requests() < 1_000, "every stream of the burst reached the upstream");
    assert_eq!(support::get(dataplane.addr, "/after").await.0, 200);
}

/// Writes a header block that never ends: HEADERS without END_HEADERS on stream 1, then CONTINUATION frames of
/// `frame_len` bytes (a header value declared 64 MiB long, never complete) until `total` bytes were written or the
/// server closed. Returns the bytes written and what the server sent.
async fn continuation_flood(addr: SocketAddr, frame_len: usize, total: usize) -> (usize, Seen) {
    let (mut writer, log) = open_raw(addr).await;
    let mut block = h2f::request_block("GET", "/flood");
    block.push(0x00);
    h2f::string_length(&mut block, 7);
    block.extend_from_slice(b"x-flood");
    h2f::string_length(&mut block, 64 << 20);
    let mut written = 0;
    if writer.write_all(&h2f::frame(h2f::HEADERS, h2f::END_STREAM, 1, &block)).await.is_ok() {
        let continuation = h2f::frame(h2f::CONTINUATION, 0, 1, &vec![b'a'; frame_len]);
        // Many frames per write: the writes are the bound, not a timer.
        let batch = continuation.repeat((256 << 10) / continuation.len() + 1);
        while written < total && writer.write_all(&batch).await.is_ok() {
            written += batch.len();
        }
    }
    (written, log.closed(Duration::from_secs(10)).await)
}

#[tokio::test]
async fn continuation_floods_are_closed_and_leave_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = CountingUpstream::start().await;
    let dataplane = start_dataplane(dir.path(), upstream.addr, &[]).await;
    assert_eq!(support::get(dataplane.addr, "/warm-up").await.0, 200);
    let before = rss(dataplane.pid());
    // Eight connections at once, each offering 64 MiB of one header block in full-size frames; then the same with
    // empty frames, which cost the sender nothing and must be counted all the same.
    let total = 64 << 20;
    let floods: Vec<_> = (0..8)
        .map(|i| tokio::spawn(continuation_flood(dataplane.addr, if i % 2 == 0 { h2f::MAX_FRAME } else { 0 }, total)))
        .collect();
    for flood in floods {
        let (written, seen) = flood.await.unwrap();
        eprintln!("CONTINUATION flood: {written} bytes written, server sent {seen:?}");
        assert!(seen.closed, "the connection survived {written} bytes of one header block: {seen:?}");
        assert!(written < total, "all {written} bytes of the header block were taken");
        assert!(seen.goaways.iter().any(|&(_, code)| code != h2f::NO_ERROR), "an error GOAWAY: {seen:?}");
    }
    let after = rss(dataplane.pid());
    eprintln!("dataplane VmRSS: {before} bytes before the floods, {after} after");
    assert!(after <= before + (32 << 20), "VmRSS grew from {before} to {after} bytes");
    assert_eq!(upstream.requests(), 1, "only the warm-up reached the upstream");
    assert_eq!(support::get(dataplane.addr, "/after").await.0, 200);
}

/// A client connection of hyper's own, served by a task whose result says how the connection ended.
type Sender = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> (Sender, tokio::task::JoinHandle<hyper::Result<()>>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    (sender, tokio::spawn(connection))
}

#[tokio::test]
async fn an_honest_client_gets_a_graceful_goaway_after_the_limit_and_loses_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = CountingUpstream::start().await;
    let dataplane = start_dataplane(dir.path(), upstream.addr, &["--max-requests-per-connection", "10"]).await;
    let mut connections = vec![connect(dataplane.addr).await];
    for i in 0..35 {
        let mut request = hyper::Request::get(format!("http://flood.test/honest/{i}")).body(Empty::new()).unwrap();
        // A request that was not sent (the connection had received GOAWAY) comes back, and goes on a new connection.
        let mut attempts = 0;
        let response = loop {
            attempts += 1;
            assert!(attempts <= 2, "request {i} refused on a fresh connection");
            let (sender, _) = connections.last_mut().unwrap();
            if sender.ready().await.is_err() {
                connections.push(connect(dataplane.addr).await);
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => break response,
                Err(mut error) => match error.take_message() {
                    Some(unsent) => {
                        request = unsent;
                        connections.push(connect(dataplane.addr).await);
                    }
                    None => panic!("request {i} lost: {}", error.into_error()),
                },
            }
        };
        assert_eq!(response.status(), 200, "request {i}");
        assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "ok");
    }
    assert_eq!(connections.len(), 4, "35 requests at 10 per connection");
    assert_eq!(upstream.requests(), 35, "every request reached the upstream exactly once");
    for (n, (sender, task)) in connections.into_iter().enumerate() {
        drop(sender);
        let ended = tokio::time::timeout(Duration::from_secs(10), task).await.expect("the connection ended");
        ended.unwrap().unwrap_or_else(|error| panic!("connection {n} did not end gracefully: {error}"));
    }
}
