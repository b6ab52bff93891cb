//! What an operator sees of a real run: the access log lines (JSON and text, to stderr, to a file, or off), the
//! per-route metrics of a scrape, and the status page's API — an upload replayed through an upstream SIGKILL shows
//! both attempts in its log line and in its route's replay counter, a tunnel is logged with its lifetime, label sets
//! stay bounded whatever hosts and paths requests use, and no credential reaches a log line.

mod support;

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::harness::{AccessLogDestination, AccessLogSettings};
use support::ws::{connect, hello, STEP};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A snapshot whose one route names its Ingress (`apps/photos`) and whose backend names its Service port
/// (`apps/photos:80`), as the controller writes them.
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

/// The value of the sample `name{labels}` in a Prometheus text scrape.
fn sample(scrape: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    scrape.lines().find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// The JSON access log line of the request with `id`, waiting for it.
async fn access_line(dataplane: &DataplaneProcess, id: &str) -> Value {
    let needle = format!("\"requestId\":\"{id}\"");
    let line = dataplane.log.wait_for_nth(1, STEP, |l| l.contains("\"type\":\"access\"") && l.contains(&needle)).await;
    serde_json::from_str(&line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_replayed_through_an_upstream_sigkill_shows_both_attempts_in_its_log_line_and_route_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("deliveries.jsonl");
    // Reading at 50 MB/s gives the kill a wide window.
    let slow = ["--read-rate", "50000000"];
    let mut upstreams = [
        UpstreamProcess::start("127.0.0.1:0", &log, &slow).await,
        UpstreamProcess::start("127.0.0.1:0", &log, &slow).await,
    ];
    let snapshot_file = dir.path().join("snapshot.json");
    let addrs = [upstreams[0].addr, upstreams[1].addr];
    std::fs::write(&snapshot_file, named_snapshot(&addrs, json!({"mode": "Buffered"}))).unwrap();
    let dataplane = DataplaneProcess::start(dir.path(), &snapshot_file, &["--metrics", "127.0.0.1:0"]).await;

    let len = 30 * MB;
    let mut request = Upload::new("/photos/upload?token=never-logged", len);
    request.headers.push(("X-Request-Id".into(), "replayed-upload-1".into()));
    let client = tokio::spawn(upload(dataplane.addr, request));
    let [first, second] = &mut upstreams;
    let receiving = tokio::select! {
        _ = first.wait_for_progress(len / 3) => 0,
        _ = second.wait_for_progress(len / 3) => 1,
    };
    upstreams[receiving].kill().await;
    let result = tokio::time::timeout(STEP * 3, client).await.unwrap().unwrap().unwrap();
    assert_eq!(result.status, 200, "{}", result.text());

    let line = access_line(&dataplane, "replayed-upload-1").await;
    let (killed, other) = (upstreams[receiving].addr.to_string(), upstreams[1 - receiving].addr.to_string());
    assert_eq!(
        line["attempts"],
        json!([{"endpoint": killed, "outcome": "reset_before_response"}, {"endpoint": other, "outcome": "200"}]),
        "{line}"
    );
    assert_eq!(line["status"], 200);
    assert_eq!(line["method"], "POST");
    assert_eq!(line["path"], "/photos/upload", "no query string by default: {line}");
    assert_eq!((line["bytesIn"].as_u64(), line["spooledBytes"].as_u64()), (Some(len), Some(len)), "{line}");
    assert_eq!((line["namespace"].as_str(), line["ingress"].as_str()), (Some("apps"), Some("photos")));
    assert_eq!((line["service"].as_str(), line["port"].as_str()), (Some("photos"), Some("80")));
    assert_eq!(line["mode"], "Buffered");
    assert!(line["durationMs"].as_f64().unwrap() >= line["firstByteMs"].as_f64().unwrap(), "{line}");
    assert!(line["bytesOut"].as_u64().unwrap() > 0, "{line}");

    let scrape = http_get(dataplane.metrics.unwrap(), "/metrics").await;
    let replays = format!("{ROUTE},reason=\"reset_before_response\"");
    assert_eq!(sample(&scrape, "holdfast_route_replays_total", &replays), Some(1.0), "{scrape}");
    assert_eq!(sample(&scrape, "holdfast_route_attempts_total", ROUTE), Some(2.0), "{scrape}");
    let answered = format!("{ROUTE},status_class=\"2xx\"");
    assert_eq!(sample(&scrape, "holdfast_route_requests_total", &answered), Some(1.0), "{scrape}");
    assert_eq!(sample(&scrape, "holdfast_route_request_duration_seconds_count", &answered), Some(1.0));
    assert_eq!(sample(&scrape, "holdfast_route_request_body_bytes_count", ROUTE), Some(1.0), "{scrape}");
    assert_eq!(sample(&scrape, "holdfast_route_uploads_in_flight", ROUTE), Some(0.0), "{scrape}");
    assert!(!scrape.contains("never-logged") && !scrape.contains("/photos/upload"), "no request data in labels");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_sets_stay_bounded_when_ten_thousand_requests_use_distinct_hosts_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let snapshot = named_snapshot(&[upstream.addr], json!({}));
    let off = AccessLogSettings { destination: AccessLogDestination::Off, ..Default::default() };
    let dataplane = Harness::start_with_access_log(Some(&snapshot), off).await;
    // Ten keep-alive connections, 1,000 requests each (the harness's limit per connection), every one to another
    // host and path.
    let clients = (0..10).map(|c| {
        let addr = dataplane.addr;
        tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            for i in 0..1000 {
                let request = format!("GET /p/{c}/{i}?q={i} HTTP/1.1\r\nHost: h{c}-{i}.example\r\n\r\n");
                stream.write_all(request.as_bytes()).await.unwrap();
                // The upstream's answer to a GET is `ok\n` with a Content-Length: one read holds it.
                let n = stream.read(&mut buf).await.unwrap();
                assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
            }
        })
    });
    for client in clients {
        tokio::time::timeout(STEP * 6, client).await.unwrap().unwrap();
    }
    let scrape = dataplane.dp.scrape();
    assert_eq!(
        sample(&scrape, "holdfast_route_requests_total", &format!("{ROUTE},status_class=\"2xx\"")),
        Some(10_000.0)
    );
    let route_series: Vec<&str> = scrape.lines().filter(|l| l.starts_with("holdfast_route_")).collect();
    for series in &route_series {
        assert!(series.contains(ROUTE), "a route series with other labels: {series}");
        assert!(!series.contains(".example") && !series.contains("/p/"), "request data in a label: {series}");
    }
    // One route: a series per family (its histograms' buckets apart), whatever the requests were.
    let distinct: std::collections::BTreeSet<&str> =
        route_series.iter().map(|l| l.split_once(' ').unwrap().0).filter(|s| !s.contains("_bucket{")).collect();
    assert!(distinct.len() <= 16, "{distinct:#?}");
}

/// Lines of the access log file at `path`, once at least `count` are there (the workers flush every 200 ms).
async fn file_lines(path: &Path, count: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path).unwrap_or_default().lines().map(String::from).collect();
        if lines.len() >= count || started.elapsed() > STEP {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_with_credentials(addr: SocketAddr) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = "GET /account?session=query-secret HTTP/1.1\r\nHost: photos.test\r\n\
                   Authorization: Bearer header-secret\r\nCookie: sid=cookie-secret\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_to_a_file_has_no_credentials_and_the_query_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let snapshot = named_snapshot(&[upstream.addr], json!({}));
    for (with_query, json) in [(false, true), (true, false)] {
        let path = dir.path().join(format!("access-{with_query}.log"));
        let settings = AccessLogSettings { destination: AccessLogDestination::File(path.clone()), json, with_query };
        let dataplane = Harness::start_with_access_log(Some(&snapshot), settings).await;
        get_with_credentials(dataplane.addr).await;
        let lines = file_lines(&path, 1).await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        for secret in ["header-secret", "cookie-secret", "Bearer", "sid="] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
        assert_eq!(line.contains("query-secret"), with_query, "{line}");
        if json {
            let parsed: Value = serde_json::from_str(line).unwrap();
            assert_eq!((parsed["path"].as_str(), parsed["host"].as_str()), (Some("/account"), Some("photos.test")));
            assert_eq!(parsed["attempts"][0]["outcome"], "200");
            assert!(parsed["time"].as_str().unwrap().ends_with('Z'));
        } else {
            assert!(line.contains(" access 127.0.0.1:"), "{line}");
            assert!(line.contains("\"GET photos.test /account?session=query-secret HTTP/1.1\" 200 "), "{line}");
            assert!(line.contains(" route=apps/photos service=photos:80 ") && line.contains(":200 "), "{line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_off_writes_no_line_and_a_tunnel_is_logged_with_its_lifetime_when_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let snapshot_file = dir.path().join("off.json");
    std::fs::write(&snapshot_file, named_snapshot(&[upstream.addr], json!({}))).unwrap();
    let quiet = DataplaneProcess::start(dir.path(), &snapshot_file, &["--access-log", "off"]).await;
    assert_eq!(get(quiet.addr, "/x").await.0, 200);
    // A request after the first is logged by now if anything is: the failure line of a 404 is.
    assert_eq!(get(quiet.addr, "/y").await.0, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(quiet.log.all().iter().all(|l| !l.contains("\"type\":\"access\"")), "{:?}", quiet.log.all());

    let peer = PeerProcess::ws(false, &[]).await;
    std::fs::write(&snapshot_file, named_snapshot(&[peer.addr], json!({}))).unwrap();
    let dataplane = DataplaneProcess::start(dir.path(), &snapshot_file, &[]).await;
    let mut ws = connect(dataplane.addr, None, "/chat").await.unwrap();
    assert_eq!(hello(&mut ws).await, peer.addr);
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(ws);
    let line = dataplane
        .log
        .wait_for_nth(1, STEP, |l| l.contains("\"type\":\"access\"") && l.contains("\"mode\":\"Tunnel\""))
        .await;
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["status"], 101, "{line}");
    assert!(line["tunnelMs"].as_f64().unwrap() >= 300.0, "{line}");
    assert!(line["bytesOut"].as_u64().unwrap() > 0, "the greeting came through: {line}");
    assert_eq!(line["attempts"][0]["outcome"], "101");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_api_shows_an_upload_in_flight_with_its_progress_then_finished_with_its_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &dir.path().join("d.jsonl"), &[]).await;
    let snapshot = named_snapshot(&[upstream.addr], json!({"mode": "Tee"}));
    let off = AccessLogSettings { destination: AccessLogDestination::Off, ..Default::default() };
    let dataplane = Harness::start_with_access_log(Some(&snapshot), off).await;
    let len = 4 * MB;
    let mut request = Upload::new("/photos/upload?secret=1", len);
    request.rate = Some(2 * MB);
    request.headers.push(("X-Request-Id".into(), "slow-upload-1".into()));
    let client = tokio::spawn(upload(dataplane.addr, request));
    let status =
        |dp: &Harness| serde_json::from_str::<Value>(&holdfast_dataplane::status::render(&dp.dp).to_string()).unwrap();
    let mut seen = Vec::new();
    let started = Instant::now();
    while seen.len() < 2 && started.elapsed() < STEP {
        let now = status(&dataplane);
        if let Some(entry) = now["inFlight"].as_array().unwrap().iter().find(|e| e["id"] == "slow-upload-1") {
            let received = entry["receivedBytes"].as_u64().unwrap();
            if seen.last().is_none_or(|&(last, _)| received > last) && received > 0 {
                seen.push((received, entry.clone()));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen.len(), 2, "the upload's progress was seen advancing");
    let entry = &seen[1].1;
    assert_eq!((entry["declaredBytes"].as_u64(), entry["mode"].as_str()), (Some(len), Some("Tee")), "{entry}");
    assert_eq!((entry["state"].as_str(), entry["attempt"].as_u64()), (Some("relaying"), Some(1)), "{entry}");
    assert_eq!(entry["endpoint"], upstream.addr.to_string());
    assert_eq!(entry["path"], "/photos/upload", "shown without its query");
    assert_eq!(entry["route"]["ingress"], "photos");
    assert!(entry["deliveredBytes"].as_u64().unwrap() > 0, "{entry}");
    let result = tokio::time::timeout(STEP, client).await.unwrap().unwrap().unwrap();
    assert_eq!(result.status, 200);
    let now = status(&dataplane);
    assert!(now["inFlight"].as_array().unwrap().iter().all(|e| e["id"] != "slow-upload-1"), "{now}");
    let finished = &now["finished"][0];
    assert_eq!((finished["id"].as_str(), finished["status"].as_u64()), (Some("slow-upload-1"), Some(200)));
    let attempts = json!([{"endpoint": upstream.addr.to_string(), "outcome": "200", "failure": null, "count": 1}]);
    assert_eq!(finished["attempts"], attempts);
    assert_eq!(finished["receivedBytes"].as_u64(), Some(len));
    let backend = &now["backends"][0];
    assert_eq!(
        (backend["name"].as_str(), backend["service"]["name"].as_str()),
        (Some("apps/photos:80"), Some("photos"))
    );
    assert_eq!(backend["endpoints"][0]["address"], upstream.addr.to_string());
    // The page itself is served, whole, on the admin listener.
    let page = http_get(dataplane.admin, "/status").await;
    assert!(page.contains("/status/api") || page.contains("status/api"), "the page reads the API");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_for_an_endpoint_shows_none_and_its_refusals_as_one_counted_record() {
    // An address where nothing listens: bound, never listening, so every connect is refused.
    let placeholder = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    placeholder.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    let refusing = placeholder.local_addr().unwrap().as_socket().unwrap();
    let snapshot = named_snapshot(&[refusing], json!({"replay": {"upstreamWaitTimeoutMs": 1500}}));
    let off = AccessLogSettings { destination: AccessLogDestination::Off, ..Default::default() };
    let dataplane = Harness::start_with_access_log(Some(&snapshot), off).await;
    let mut request = Upload::new("/photos/upload", 1000);
    request.headers.push(("X-Request-Id".into(), "waiting-1".into()));
    let client = tokio::spawn(upload(dataplane.addr, request));
    let status =
        |dp: &Harness| serde_json::from_str::<Value>(&holdfast_dataplane::status::render(&dp.dp).to_string()).unwrap();
    let started = Instant::now();
    let waiting = loop {
        let now = status(&dataplane);
        let entry = now["inFlight"].as_array().unwrap().iter().find(|e| e["id"] == "waiting-1").cloned();
        if let Some(entry) = entry.filter(|e| e["state"] == "waiting") {
            break entry;
        }
        assert!(started.elapsed() < STEP, "never seen waiting: {now}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(waiting["endpoint"], Value::Null, "no attempt runs while it waits: {waiting}");
    let result = tokio::time::timeout(STEP, client).await.unwrap().unwrap().unwrap();
    assert_eq!(result.status, 503, "{}", result.text());
    let finished = &status(&dataplane)["finished"][0];
    let attempts = finished["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "consecutive refusals at one endpoint are one record: {finished}");
    assert_eq!(
        (attempts[0]["failure"].as_str(), attempts[0]["endpoint"].as_str()),
        (Some("connect_refused"), Some(&*refusing.to_string()))
    );
    assert!(attempts[0]["count"].as_u64().unwrap() > 1, "{finished}");
    assert!(finished["error"].as_str().is_some_and(|e| e.contains("no endpoint")), "{finished}");
}
