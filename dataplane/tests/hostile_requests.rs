//! Hostile and broken requests, written byte by byte on raw sockets (hyper's own client for HTTP/2) to a real
//! dataplane in front of two real upstreams that record every request head they receive: the `Host` rules of RFC 9112
//! §3.2 and RFC 9113 §8.3.1, path normalisation before routing (`/public/../admin` must reach the `/admin` backend as
//! `/admin`, or nobody), and the request-side limits (431, 414, 400) on every path.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::client::read_response;
use support::Harness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Long enough for a loaded machine, short enough that a hang fails the test rather than the CI job.
const PATIENCE: Duration = Duration::from_secs(30);

/// An upstream that records the head of every request it receives and answers `200` with its own name, closing
/// the connection (so that every request is a fresh head on a fresh connection).
struct Recorder {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let recorded = heads.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, name, recorded.clone()));
            }
        });
        Recorder { addr, heads, accepting }
    }

    /// The request lines received so far (`GET /admin HTTP/1.1`).
    fn request_lines(&self) -> Vec<String> {
        let heads = self.heads.lock().unwrap();
        heads.iter().map(|head| head.lines().next().unwrap_or("").to_string()).collect()
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Reads one request head (at most 1 MiB), records it and answers.
async fn answer(mut stream: TcpStream, name: &'static str, heads: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 8192];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 1 << 20 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    heads.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
    let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}", name.len());
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// `/public` and `/admin` on any host, each to its own recorder, Buffered.
async fn two_backends() -> (Recorder, Recorder, Harness) {
    let (public, admin) = (Recorder::start("public").await, Recorder::start("admin").await);
    let endpoint = |r: &Recorder| json!({"endpoints": [{"address": "127.0.0.1", "port": r.addr.port()}]});
    let route = |path: &str| json!({"path": path, "pathType": "Prefix", "backend": &path[1..], "policy": "p"});
    let snapshot = json!({
        "version": 1,
        "hosts": [{"host": "", "paths": [route("/public"), route("/admin")]}],
        "backends": {"public": endpoint(&public), "admin": endpoint(&admin)},
        "policies": {"p": {"mode": "Buffered"}},
    });
    let dataplane = Harness::start(Some(&snapshot.to_string()), 0).await;
    (public, admin, dataplane)
}

/// Writes `request` on a new connection and reads the response; a write refused half-way (the dataplane answered
/// and closed first) is fine, the response is what counts.
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(request).await;
        let (status, _, body) = read_response(&mut stream).await.expect("a response");
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(PATIENCE, exchange).await.expect("a response in time")
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: x.test\r\n\r\n").into_bytes()
}

type H2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

/// An h2c (prior knowledge) connection with hyper's client, which sends what it is given: a `Host` field beside
/// `:authority`, dot segments in `:path`.
async fn h2c(addr: SocketAddr) -> H2 {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    sender
}

async fn h2_get(sender: &mut H2, uri: &str, fields: &[(&str, String)]) -> (u16, String) {
    let mut request = http::Request::get(uri);
    for (name, value) in fields {
        request = request.header(*name, value);
    }
    let exchange = async {
        let response = sender.send_request(request.body(Full::new(Bytes::new())).unwrap()).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(PATIENCE, exchange).await.expect("an HTTP/2 response in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_two_host_fields_gets_400_and_reaches_no_upstream() {
    let (public, admin, dataplane) = two_backends().await;
    let two = b"GET /public/a HTTP/1.1\r\nHost: x.test\r\nHost: y.test\r\n\r\n";
    let (status, body) = raw(dataplane.addr, two).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("only one Host field"), "{body}");
    let (status, _) = raw(dataplane.addr, b"GET /public/a HTTP/1.0\r\nHost: x.test\r\nHost: x.test\r\n\r\n").await;
    assert_eq!(status, 400, "HTTP/1.0 too");
    assert_eq!((public.heads(), admin.heads()), (vec![], vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_1_request_without_host_gets_400_and_http_1_0_without_host_is_still_served() {
    let (public, _admin, dataplane) = two_backends().await;
    let (status, body) = raw(dataplane.addr, b"GET /public/a HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("needs a Host field"), "{body}");
    let (status, body) = raw(dataplane.addr, b"GET /public/a HTTP/1.1\r\nHost: x test\r\n\r\n").await;
    assert_eq!(status, 400, "an invalid Host: {body}");
    assert!(public.heads().is_empty(), "nothing was forwarded: {:?}", public.heads());
    let (status, body) = raw(dataplane.addr, b"GET /public/a HTTP/1.0\r\n\r\n").await;
    assert_eq!((status, body.as_str()), (200, "public"));
    assert_eq!(public.request_lines(), ["GET /public/a HTTP/1.1"]);
}

/// RFC 9113 §8.3.1: a `Host` that names another server than `:authority` is malformed; one that names the same
/// server (in another case, with the default port) is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_2_host_field_that_contradicts_the_authority_gets_400() {
    let (public, _admin, dataplane) = two_backends().await;
    let mut h2 = h2c(dataplane.addr).await;
    let uri = "http://x.test/public/a";
    let (status, body) = h2_get(&mut h2, uri, &[("host", "y.test".into())]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("another server"), "{body}");
    assert!(public.heads().is_empty(), "nothing was forwarded: {:?}", public.heads());
    assert_eq!(h2_get(&mut h2, uri, &[("host", "X.TEST:80".into())]).await, (200, "public".to_string()));
    assert_eq!(h2_get(&mut h2, uri, &[]).await, (200, "public".to_string()));
    let forwarded = public.heads();
    assert!(forwarded.iter().all(|h| h.to_ascii_lowercase().matches("\r\nhost:").count() == 1), "{forwarded:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_escapes_and_repeated_slashes_are_resolved_before_routing_and_forwarded_resolved() {
    let (public, admin, dataplane) = two_backends().await;
    let cases = [
        ("/public/../admin", "admin", "/admin"),
        ("/public/%2e%2E/admin/x", "admin", "/admin/x"),
        ("/public/./../admin/./y/", "admin", "/admin/y/"),
        ("//admin///z", "admin", "/admin/z"),
        ("/%61dmin/%7euser", "admin", "/admin/~user"),
        ("/public/a%2fb?next=/public/../admin", "public", "/public/a%2Fb?next=/public/../admin"),
        ("/admin/../public/c", "public", "/public/c"),
    ];
    for (target, backend, _) in cases {
        assert_eq!(raw(dataplane.addr, &get(target)).await, (200, backend.to_string()), "{target}");
    }
    let expect = |name| {
        let lines = cases.iter().filter(|c| c.1 == name).map(|c| format!("GET {} HTTP/1.1", c.2));
        lines.collect::<Vec<_>>()
    };
    assert_eq!(admin.request_lines(), expect("admin"));
    assert_eq!(public.request_lines(), expect("public"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_or_climbing_dot_segments_and_bad_escapes_get_400_and_reach_no_upstream() {
    let (public, admin, dataplane) = two_backends().await;
    for target in [
        "/public/..%2Fadmin",
        "/public/..%2fadmin",
        "/public/%2E%2E%5Cadmin",
        "/public/..\\admin",
        "/public/..;/admin",
        "/../admin",
        "/public/../../admin",
        "/public/%zz",
    ] {
        let (status, body) = raw(dataplane.addr, &get(target)).await;
        assert_eq!(status, 400, "{target}: {body}");
    }
    assert_eq!((public.heads(), admin.heads()), (vec![], vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_2_paths_are_normalised_like_http_1_paths() {
    let (public, admin, dataplane) = two_backends().await;
    let mut h2 = h2c(dataplane.addr).await;
    assert_eq!(h2_get(&mut h2, "http://x.test/public/../admin", &[]).await, (200, "admin".to_string()));
    assert_eq!(h2_get(&mut h2, "http://x.test/public/..%2Fadmin", &[]).await.0, 400);
    assert_eq!(admin.request_lines(), ["GET /admin HTTP/1.1"]);
    assert!(public.heads().is_empty(), "{:?}", public.heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_is_routed_and_forwarded_by_its_normal_path() {
    let (public, admin, dataplane) = two_backends().await;
    let upgrade = concat!(
        "GET /public/../admin/socket HTTP/1.1\r\nHost: x.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n",
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    let (status, body) = raw(dataplane.addr, upgrade.as_bytes()).await;
    assert_eq!((status, body.as_str()), (200, "admin"), "the backend refused the upgrade; its answer is passed on");
    assert_eq!(admin.request_lines(), ["GET /admin/socket HTTP/1.1"]);
    assert!(public.heads().is_empty(), "{:?}", public.heads());
}

/// hyper reads a request head into a 64 KiB buffer and takes at most 100 fields: beyond either, 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_over_64_kib_or_over_100_fields_gets_431() {
    let (public, _admin, dataplane) = two_backends().await;
    let big = format!("GET /public/a HTTP/1.1\r\nHost: x.test\r\nX-Big: {}\r\n\r\n", "b".repeat(70 * 1024));
    assert_eq!(raw(dataplane.addr, big.as_bytes()).await.0, 431);
    let fields = |n: usize| (0..n).map(|i| format!("X-F{i}: v\r\n")).collect::<String>();
    let many = format!("GET /public/a HTTP/1.1\r\nHost: x.test\r\n{}\r\n", fields(120));
    assert_eq!(raw(dataplane.addr, many.as_bytes()).await.0, 431);
    assert!(public.heads().is_empty(), "{:?}", public.heads());
    // Just under both limits: served.
    let fits = format!("GET /public/a HTTP/1.1\r\nHost: x.test\r\nX-Big: {}\r\n{}\r\n", "b".repeat(60_000), fields(90));
    assert_eq!(raw(dataplane.addr, fits.as_bytes()).await, (200, "public".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_target_over_8_kib_gets_414_on_http_1_and_http_2() {
    let (public, _admin, dataplane) = two_backends().await;
    let limit = holdfast_dataplane::route::MAX_TARGET_BYTES;
    let long = format!("/public/{}", "a".repeat(limit));
    let (status, body) = raw(dataplane.addr, &get(&long)).await;
    assert_eq!(status, 414, "{body}");
    let long_query = format!("/public/a?q={}", "q".repeat(limit));
    assert_eq!(raw(dataplane.addr, &get(&long_query)).await.0, 414);
    let mut h2 = h2c(dataplane.addr).await;
    assert_eq!(h2_get(&mut h2, &format!("http://x.test{long}"), &[]).await.0, 414);
    assert!(public.heads().is_empty(), "{:?}", public.heads());
    let at_limit = format!("/public/{}", "a".repeat(limit - "/public/".len()));
    assert_eq!(raw(dataplane.addr, &get(&at_limit)).await, (200, "public".to_string()));
}

/// `--max-request-target` raises the limit for applications with long URLs, on both protocols, through the binary's
/// own flag parsing; one byte over the new limit is still 414.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_target_limit_follows_its_flag() {
    let public = Recorder::start("public").await;
    let dir = tempfile::tempdir().unwrap();
    let snapshot = json!({
        "version": 1,
        "hosts": [{"host": "", "paths": [{"path": "/public", "pathType": "Prefix", "backend": "public", "policy": "p"}]}],
        "backends": {"public": {"endpoints": [{"address": "127.0.0.1", "port": public.addr.port()}]}},
        "policies": {"p": {"mode": "Buffered"}},
    });
    let snapshot_file = dir.path().join("snapshot.json");
    std::fs::write(&snapshot_file, snapshot.to_string()).unwrap();
    let dataplane =
        support::harness::DataplaneProcess::start(dir.path(), &snapshot_file, &["--max-request-target", "16Ki"]).await;
    let limit = 16 * 1024;
    let over_default = format!("/public/{}", "a".repeat(12 * 1024));
    assert_eq!(raw(dataplane.addr, &get(&over_default)).await, (200, "public".to_string()));
    let mut h2 = h2c(dataplane.addr).await;
    assert_eq!(h2_get(&mut h2, &format!("http://x.test{over_default}"), &[]).await, (200, "public".to_string()));
    let at_limit = format!("/public/a?q={}", "q".repeat(limit - "/public/a?q=".len()));
    assert_eq!(raw(dataplane.addr, &get(&at_limit)).await.0, 200);
    let over = format!("{at_limit}q");
    assert_eq!(raw(dataplane.addr, &get(&over)).await.0, 414);
    assert_eq!(h2_get(&mut h2, &format!("http://x.test{over}"), &[]).await.0, 414);
    assert_eq!(public.heads().len(), 3, "the 414s never reached the upstream");
}

/// hyper's chunked decoder: a chunk size over 64 bits, chunk extensions over 16 KiB, and trailers over 16 KiB are
/// errors of the body, which the dataplane answers 400 before any upstream is contacted (Buffered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_size_lines_and_trailers_over_their_limits_get_400() {
    let (public, _admin, dataplane) = two_backends().await;
    let head = "POST /public/up HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: chunked\r\n\r\n";
    let bodies = [
        ("a chunk size over 64 bits", "1FFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n".to_string()),
        ("chunk extensions over 16 KiB", format!("1;ext={}\r\nx\r\n0\r\n\r\n", "e".repeat(17 * 1024))),
        ("trailers over 16 KiB", format!("1\r\nx\r\n0\r\nX-Trailer: {}\r\n\r\n", "t".repeat(17 * 1024))),
        ("a chunk size that is not hex", "1g\r\nx\r\n0\r\n\r\n".to_string()),
    ];
    for (what, body) in bodies {
        let (status, text) = raw(dataplane.addr, format!("{head}{body}").as_bytes()).await;
        assert_eq!(status, 400, "{what}: {text}");
    }
    assert!(public.heads().is_empty(), "{:?}", public.heads());
    let fine = format!("{head}1;ext=ok\r\nx\r\n0\r\nX-Trailer: {}\r\n\r\n", "t".repeat(1024));
    assert_eq!(raw(dataplane.addr, fine.as_bytes()).await, (200, "public".to_string()));
    dataplane.assert_spool_clean().await;
}

/// h2 answers a header list over `SETTINGS_MAX_HEADER_LIST_SIZE` (64 KiB by default) with 431 on that stream, and
/// nothing reaches an upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_2_header_list_over_the_limit_gets_431() {
    let (public, _admin, dataplane) = two_backends().await;
    let mut h2 = h2c(dataplane.addr).await;
    // A first exchange, so that the client has acknowledged the server's SETTINGS (h2 applies its header list
    // limit from that acknowledgement).
    assert_eq!(h2_get(&mut h2, "http://x.test/public/a", &[]).await.0, 200);
    // Over the limit (the harness runs with the default, `--http2-max-header-list-size`), but under four times it,
    // past which h2 ends the whole connection instead.
    let limit = holdfast_dataplane::server::Http2Limits::default().max_header_list_size as usize;
    let big = "b".repeat(limit + limit / 5);
    assert_eq!(h2_get(&mut h2, "http://x.test/public/b", &[("x-big", big)]).await.0, 431);
    assert_eq!(public.request_lines(), ["GET /public/a HTTP/1.1"]);
}

/// tus keeps an upload at the host and path it was created at: both are the normal form, so the upload URL the
/// client is given is normal, and any spelling of it that normalises the same finds the same upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_uploads_are_created_and_found_at_their_normal_path() {
    use support::tus::{create, head};
    let backend = Recorder::start("backend").await;
    let policy = r#"{"resumable":{}}"#;
    let dataplane = Harness::start(Some(&support::snapshot(1, &[backend.addr], policy)), 0).await;
    let (reply, target) = create(dataplane.addr, "/files/x/..//photos/./", &[("Upload-Length", "10")]).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert!(target.starts_with("/files/photos/?"), "the upload URL is normal: {target}");
    assert_eq!(head(dataplane.addr, &target).await.status, 200);
    let alias = target.replacen("/files/photos/", "/files/%70hotos/x/../", 1);
    let found = head(dataplane.addr, &alias).await;
    assert_eq!((found.status, found.header("Upload-Offset")), (200, Some("0".to_string())), "{alias}");
    let (refused, _) = create(dataplane.addr, "/files/..%2F..%2Fetc", &[("Upload-Length", "10")]).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(backend.heads().is_empty(), "nothing was delivered: {:?}", backend.heads());
}

/// hyper takes any number of leading zeros in a chunk size without buffering them, but they are no body: a client
/// that sends nothing else is still cut by the body timeout, while it is sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_size_line_of_endless_zeros_is_cut_by_the_body_timeout() {
    let backend = Recorder::start("backend").await;
    let policy = r#"{"mode":"Buffered","timeouts":{"clientBodyMs":500}}"#;
    let dataplane = Harness::start(Some(&support::snapshot(1, &[backend.addr], policy)), 0).await;
    let mut stream = TcpStream::connect(dataplane.addr).await.unwrap();
    let head = "POST /up HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Zeros for up to 300 s (3,000 × 100 ms), far past the 0.5 s timeout; stopped as soon as the answer is in.
    let zeros = tokio::spawn(async move {
        for _ in 0..3000 {
            if writer.write_all(&[b'0'; 64]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let answer = tokio::time::timeout(Duration::from_secs(120), read_response(&mut reader)).await;
    let still_sending = !zeros.is_finished();
    zeros.abort();
    let (status, _, body) = answer.expect("an answer while the zeros still flow").expect("a response");
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&body));
    assert!(still_sending, "the answer came while the client was still sending zeros");
    assert!(backend.heads().is_empty(), "{:?}", backend.heads());
    dataplane.assert_spool_clean().await;
}
