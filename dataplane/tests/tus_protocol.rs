//! tus 1.0.0 as the dataplane speaks it, request by request over real sockets: discovery (OPTIONS), creation and its
//! refusals, HEAD, PATCH with offsets, checksums, deferred lengths and the method override, termination, expiry, two
//! writers at once, and the delivery of a finished upload to the backend — the backend's answer for the client's last
//! PATCH, the creation's credentials and the metadata's content fields on the delivery, the outcome readable
//! afterwards, a backend that is down when the upload completes, and a SIGKILL of the dataplane itself.
//!
//! The backend is a recorder in this process (it reports the fields it was sent), or the real hash upstream where
//! the test restarts it.

mod support;

use base64::Engine;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use support::client::read_response;
use support::tus::{
    create, eventually, head, head_of, id_of, patch, payload, send, sha256, upload_files, Recorder, LIMIT, OCTETS, TUS,
};
use support::upstream::deliveries;
use support::{snapshot, Harness, UpstreamProcess};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A dataplane routing everything to `backend` under a policy with `resumable` (JSON) and nothing else.
async fn dataplane(backend: SocketAddr, resumable: &str) -> Harness {
    Harness::start(Some(&snapshot(1, &[backend], &format!(r#"{{"resumable":{resumable}}}"#))), 0).await
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn sha1_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(<sha1::Sha1 as sha1::Digest>::digest(bytes))
}

/// Creates an upload of `len` bytes at `/files` and returns its target.
async fn created(dp: &Harness, len: usize) -> String {
    let (reply, target) = create(dp.addr, "/files", &[("Upload-Length", &len.to_string())]).await;
    assert_eq!(reply.status, 201, "{}\n{}", reply.head, reply.text());
    target
}

/// Asserts that HEAD reports `offset`.
async fn assert_offset(dp: &Harness, target: &str, offset: u64) {
    let reply = head(dp.addr, target).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(reply.must("Upload-Offset"), offset.to_string(), "{}", reply.head);
}

/// Starts a PATCH that declares `declared` bytes from `offset` and sends only `sent`, then stalls (a client whose
/// network went away without the server seeing it end). Returns once the dataplane has written what was sent to
/// the upload's file (not yet synced: no answer has promised it).
async fn stalled_patch(dp: &Harness, target: &str, offset: u64, declared: u64, sent: &[u8]) -> TcpStream {
    let before = dp.dp.metrics.bytes_in.get();
    let mut stream = TcpStream::connect(dp.addr).await.unwrap();
    let offset = offset.to_string();
    let head = head_of("PATCH", target, &[TUS, OCTETS, ("Upload-Offset", &offset)], Some(declared));
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    let want = before + sent.len() as u64;
    eventually("the stalled PATCH's bytes written", || async { (dp.dp.metrics.bytes_in.get() >= want).then_some(()) })
        .await;
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_announce_version_extensions_checksums_and_max_size() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, r#"{"maxSizeBytes":1000}"#).await;
    let reply = send(dp.addr, "OPTIONS", "/files", &[TUS], b"").await;
    assert_eq!(reply.status, 204, "{}", reply.head);
    assert_eq!(reply.must("Tus-Version"), "1.0.0");
    assert_eq!(
        reply.must("Tus-Extension"),
        "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum"
    );
    let algorithms = reply.must("Tus-Checksum-Algorithm");
    assert!(algorithms.split(',').any(|a| a.trim() == "sha1"), "sha1 is the one every tus server takes: {algorithms}");
    assert_eq!(reply.must("Tus-Max-Size"), "1000");
    assert_eq!(reply.header("Tus-Resumable"), None, "the spec leaves Tus-Resumable out of OPTIONS answers");

    // The route's body limit is the upload's limit too, when it is lower.
    let policy = r#"{"maxBodySizeBytes":500,"resumable":{"maxSizeBytes":1000}}"#;
    let lower = Harness::start(Some(&snapshot(1, &[backend.addr], policy)), 0).await;
    let reply = send(lower.addr, "OPTIONS", "/files", &[TUS], b"").await;
    assert_eq!(reply.must("Tus-Max-Size"), "500");

    let unlimited = dataplane(backend.addr, "{}").await;
    let reply = send(unlimited.addr, "OPTIONS", "/files", &[TUS], b"").await;
    assert_eq!(reply.status, 204, "{}", reply.head);
    assert_eq!(reply.header("Tus-Max-Size"), None, "no limit, no Tus-Max-Size");
    assert!(backend.requests().is_empty(), "OPTIONS with Tus-Resumable is the dataplane's to answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_tus_resumable_on_the_creation_url_go_to_the_backend() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let preflight = vec![("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST")];
    let requests = [("OPTIONS", preflight, &b""[..]), ("POST", vec![], b"a plain upload"), ("GET", vec![], b"")];
    for (method, headers, body) in requests {
        let reply = send(dp.addr, method, "/files", &headers, body).await;
        assert_eq!(reply.status, 200, "{method}: {}", reply.head);
        assert_eq!(reply.header("X-Backend").as_deref(), Some("recorder"), "{method} must reach the backend");
        assert_eq!(reply.json()["bytes"], body.len(), "{method}");
    }
    let seen: Vec<(String, String)> = backend.requests().into_iter().map(|r| (r.method, r.target)).collect();
    let expected = [("OPTIONS", "/files"), ("POST", "/files"), ("GET", "/files")];
    assert_eq!(seen, expected.map(|(m, t)| (m.to_string(), t.to_string())));
    assert!(upload_files(dp.spool.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_answers_201_with_an_absolute_location_and_the_expiry() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, r#"{"expiresAfterMs":3600000}"#).await;
    let before = SystemTime::now();
    let (reply, target) = create(dp.addr, "/files/photos?album=7", &[("Upload-Length", "100")]).await;
    assert_eq!(reply.status, 201, "{}\n{}", reply.head, reply.text());
    let id = id_of(&target);
    assert!(id.starts_with("test-"), "the id names the instance that owns the upload: {id}");
    // The upload's URL is the creation URL's path: the creation's own query is kept for the delivery only.
    assert_eq!(reply.must("Location"), format!("http://upload.test/files/photos?holdfast-upload={id}"));
    assert_eq!(reply.must("Tus-Resumable"), "1.0.0");
    let expires = httpdate::parse_http_date(&reply.must("Upload-Expires")).expect("an HTTP date");
    let after = expires.duration_since(before).expect("in the future").as_secs();
    assert!((3598..=3601).contains(&after), "expiresAfterMs is an hour: Upload-Expires is {after} s away");
    assert_eq!(head(dp.addr, &target).await.status, 200);

    // Behind a load balancer that terminates TLS, rewrites the host and strips a prefix.
    let behind = [
        ("Upload-Length", "100"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "files.example, lb.internal"),
        ("X-Forwarded-Prefix", "/api/"),
    ];
    let (reply, target) = create(dp.addr, "/files/photos", &behind).await;
    assert_eq!(reply.status, 201, "{}", reply.head);
    let id = id_of(&target);
    assert_eq!(reply.must("Location"), format!("https://files.example/api/files/photos?holdfast-upload={id}"));
    assert!(backend.requests().is_empty(), "a creation is not the backend's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_with_bad_lengths_or_metadata_is_400_and_stores_nothing() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let cases: [&[(&str, &str)]; 7] = [
        &[],
        &[("Upload-Defer-Length", "2")],
        &[("Upload-Defer-Length", "0")],
        &[("Upload-Length", "10"), ("Upload-Defer-Length", "1")],
        &[("Upload-Length", "-1")],
        &[("Upload-Length", "10"), ("Upload-Metadata", "name YQ==,name Yg==")],
        &[("Upload-Length", "10"), ("Upload-Metadata", "name !!!")],
    ];
    for headers in cases {
        let (reply, _) = create(dp.addr, "/files", headers).await;
        assert_eq!(reply.status, 400, "{headers:?}: {}", reply.head);
        assert_eq!(reply.must("Tus-Resumable"), "1.0.0", "{headers:?}");
    }
    assert!(upload_files(dp.spool.path()).is_empty(), "{:?}", upload_files(dp.spool.path()));
    assert_eq!(dp.dp.spool.quota.used(), 0);
    assert!(backend.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_max_size_is_413_with_tus_max_size() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, r#"{"maxSizeBytes":1000}"#).await;
    let (reply, _) = create(dp.addr, "/files", &[("Upload-Length", "1001")]).await;
    assert_eq!(reply.status, 413, "{}", reply.head);
    assert_eq!(reply.must("Tus-Max-Size"), "1000");
    assert!(upload_files(dp.spool.path()).is_empty());
    let (reply, _) = create(dp.addr, "/files", &[("Upload-Length", "1000")]).await;
    assert_eq!(reply.status, 201, "the limit itself is allowed: {}", reply.head);

    // A deferred length is held to the same limit when it is declared.
    let (reply, target) = create(dp.addr, "/files", &[("Upload-Defer-Length", "1")]).await;
    assert_eq!(reply.status, 201, "{}", reply.head);
    let reply = patch(dp.addr, &target, 0, b"", &[("Upload-Length", "1001")]).await;
    assert_eq!(reply.status, 413, "{}", reply.head);
    let reply = head(dp.addr, &target).await;
    assert_eq!(reply.must("Upload-Defer-Length"), "1", "the refused length was not kept: {}", reply.head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tus_version_is_412_with_tus_version() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let reply = send(dp.addr, "POST", "/files", &[("Tus-Resumable", "0.2.2"), ("Upload-Length", "10")], b"").await;
    assert_eq!(reply.status, 412, "{}", reply.head);
    assert_eq!(reply.must("Tus-Version"), "1.0.0");
    assert!(upload_files(dp.spool.path()).is_empty());
    assert!(backend.requests().is_empty(), "a POST with Tus-Resumable is tus's, whatever the version");

    let target = created(&dp, 10).await;
    for (method, headers) in
        [("HEAD", vec![("Tus-Resumable", "0.2.2")]), ("PATCH", vec![OCTETS, ("Upload-Offset", "0")])]
    {
        let reply = send(dp.addr, method, &target, &headers, b"").await;
        assert_eq!(reply.status, 412, "{method} {headers:?}: {}", reply.head);
        assert_eq!(reply.must("Tus-Version"), "1.0.0");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creation_over_the_spool_quota_is_507_before_anything_is_stored() {
    let backend = Recorder::start(200).await;
    let policy = r#"{"resumable":{}}"#;
    let dp = Harness::start(Some(&snapshot(1, &[backend.addr], policy)), 1000).await;
    let (reply, _) = create(dp.addr, "/files", &[("Upload-Length", "5000")]).await;
    assert_eq!(reply.status, 507, "{}", reply.head);
    assert!(upload_files(dp.spool.path()).is_empty(), "{:?}", upload_files(dp.spool.path()));
    assert_eq!(dp.dp.spool.quota.used(), 0);

    // An upload holds its whole declared length from its creation on.
    let (reply, _) = create(dp.addr, "/files", &[("Upload-Length", "800")]).await;
    assert_eq!(reply.status, 201, "{}", reply.head);
    assert_eq!(dp.dp.spool.quota.used(), 800);
    let (reply, _) = create(dp.addr, "/files", &[("Upload-Length", "300")]).await;
    assert_eq!(reply.status, 507, "800 + 300 bytes do not fit in 1000: {}", reply.head);
    assert_eq!(upload_files(dp.spool.path()).len(), 2, "only the first upload's files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_reports_offset_length_and_metadata_of_its_own_upload_only() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let metadata = format!("filename {},is_confidential", b64("report.pdf"));
    let (reply, target) = create(dp.addr, "/files", &[("Upload-Length", "100"), ("Upload-Metadata", &metadata)]).await;
    assert_eq!(reply.status, 201, "{}", reply.head);
    let reply = head(dp.addr, &target).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(reply.must("Upload-Offset"), "0");
    assert_eq!(reply.must("Upload-Length"), "100");
    assert_eq!(reply.must("Upload-Metadata"), metadata, "echoed as sent");
    assert_eq!(reply.must("Cache-Control"), "no-store");
    assert_eq!(reply.must("Tus-Resumable"), "1.0.0");
    assert!(reply.header("Upload-Expires").is_some(), "{}", reply.head);
    assert_eq!(patch(dp.addr, &target, 0, &payload(10, 1), &[]).await.status, 204);
    assert_offset(&dp, &target, 10).await;

    let (_, deferred) = create(dp.addr, "/files", &[("Upload-Defer-Length", "1")]).await;
    let reply = head(dp.addr, &deferred).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(reply.must("Upload-Defer-Length"), "1");
    assert_eq!(reply.header("Upload-Length"), None);

    let id = id_of(&target);
    let unknown = head(dp.addr, "/files?holdfast-upload=test-00000000000000000000000000000000").await;
    assert_eq!(unknown.status, 404, "{}", unknown.head);
    let elsewhere = head(dp.addr, &format!("/other?holdfast-upload={id}")).await;
    assert_eq!(elsewhere.status, 404, "an id does not open an upload under another path: {}", elsewhere.head);
    assert!(backend.requests().is_empty());
}

/// An upload is found only at the host and path it was created at: an id alone does not open another route's upload
/// (the upload created at `a.example/files` is not served at `b.example/files`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_not_found_under_another_host() {
    let backend = Recorder::start(200).await;
    let endpoint = format!(r#"{{"address":"127.0.0.1","port":{}}}"#, backend.addr.port());
    let host = |name: &str| {
        format!(r#"{{"host":"{name}","paths":[{{"path":"/","pathType":"Prefix","backend":"b","policy":"p"}}]}}"#)
    };
    let snapshot = format!(
        r#"{{"version":1,"hosts":[{},{}],"backends":{{"b":{{"endpoints":[{endpoint}]}}}},"policies":{{"p":{{"resumable":{{}}}}}}}}"#,
        host("a.example"),
        host("b.example")
    );
    let dp = Harness::start(Some(&snapshot), 0).await;
    let (reply, target) = create(dp.addr, "/files", &[("Host", "a.example"), ("Upload-Length", "10")]).await;
    assert_eq!(reply.status, 201, "{}\n{}", reply.head, reply.text());
    let own = send(dp.addr, "HEAD", &target, &[TUS, ("Host", "a.example")], b"").await;
    assert_eq!(own.status, 200, "{}", own.head);
    let other = send(dp.addr, "HEAD", &target, &[TUS, ("Host", "b.example")], b"").await;
    assert_eq!(other.status, 404, "an upload of a.example's route under b.example's: {}", other.head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_of_another_content_type_is_415() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let target = created(&dp, 10).await;
    let headers = [TUS, ("Content-Type", "application/octet-stream"), ("Upload-Offset", "0")];
    let reply = send(dp.addr, "PATCH", &target, &headers, &payload(10, 1)).await;
    assert_eq!(reply.status, 415, "{}", reply.head);
    assert_offset(&dp, &target, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_append_at_the_offset_and_a_stale_offset_is_409() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let bytes = payload(100, 2);
    let target = created(&dp, bytes.len()).await;
    let id = id_of(&target);
    let reply = patch(dp.addr, &target, 0, &bytes[..40], &[]).await;
    assert_eq!(reply.status, 204, "{}", reply.head);
    assert_eq!(reply.must("Upload-Offset"), "40");
    assert!(reply.header("Upload-Expires").is_some(), "{}", reply.head);
    assert_eq!(reply.must("Tus-Resumable"), "1.0.0");

    let reply = patch(dp.addr, &target, 0, &payload(40, 99), &[]).await;
    assert_eq!(reply.status, 409, "{}", reply.head);
    assert_eq!(reply.must("Upload-Offset"), "40", "the 409 says where the upload is");
    let data = dp.spool.path().join("tus").join(format!("{id}.data"));
    assert_eq!(std::fs::read(&data).unwrap(), bytes[..40], "a refused PATCH stores nothing");
    assert_offset(&dp, &target, 40).await;

    let reply = patch(dp.addr, &target, 40, &bytes[40..], &[]).await;
    assert_eq!(reply.status, 200, "the backend's answer: {}\n{}", reply.head, reply.text());
    assert_eq!(backend.requests()[0].sha256, sha256(&bytes));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_are_verified_and_a_mismatch_is_460_and_discarded() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let bytes = payload(40, 3);
    let target = created(&dp, bytes.len()).await;
    let (a, b, c) = (&bytes[..10], &bytes[10..20], &bytes[20..]);

    let right = format!("sha1 {}", sha1_b64(a));
    let reply = patch(dp.addr, &target, 0, a, &[("Upload-Checksum", &right)]).await;
    assert_eq!(reply.status, 204, "{}\n{}", reply.head, reply.text());
    assert_eq!(reply.must("Upload-Offset"), "10");

    let wrong = format!("sha1 {}", sha1_b64(b"something else"));
    let reply = patch(dp.addr, &target, 10, b, &[("Upload-Checksum", &wrong)]).await;
    assert_eq!(reply.status, 460, "{}", reply.head);
    assert_eq!(reply.must("Upload-Offset"), "10", "the mismatched bytes are taken back off");
    assert_offset(&dp, &target, 10).await;

    let md5 = "md5 XrY7u+Ae7tCTyyK7j1rNww==";
    let reply = patch(dp.addr, &target, 10, b, &[("Upload-Checksum", md5)]).await;
    assert_eq!(reply.status, 400, "an algorithm not announced: {}", reply.head);
    assert_offset(&dp, &target, 10).await;

    let sha256_of_b = base64::engine::general_purpose::STANDARD.encode(<sha2::Sha256 as sha2::Digest>::digest(b));
    let reply = patch(dp.addr, &target, 10, b, &[("Upload-Checksum", &format!("sha256 {sha256_of_b}"))]).await;
    assert_eq!(reply.status, 204, "{}\n{}", reply.head, reply.text());
    let sha512_of_c = base64::engine::general_purpose::STANDARD.encode(<sha2::Sha512 as sha2::Digest>::digest(c));
    let reply = patch(dp.addr, &target, 20, c, &[("Upload-Checksum", &format!("sha512 {sha512_of_c}"))]).await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.head, reply.text());
    assert_eq!(reply.json()["sha256"], sha256(&bytes));
    let id = id_of(&target);
    assert!(!upload_files(dp.spool.path()).iter().any(|f| f.ends_with(".check")), "no checked range left behind");
    assert_eq!(backend.wait_for(1).await[0].header("x-request-id"), Some(id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_past_the_upload_length_is_413_and_what_was_stored_is_kept_whole() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let bytes = payload(150, 4);
    let target = created(&dp, 100).await;
    let reply = patch(dp.addr, &target, 0, &bytes, &[]).await;
    assert_eq!(reply.status, 413, "{}", reply.head);
    let stored: usize = reply.must("Upload-Offset").parse().unwrap();
    assert!(stored <= 100, "nothing past the length is stored: {stored}");
    assert_offset(&dp, &target, stored as u64).await;

    let reply = patch(dp.addr, &target, stored as u64, &bytes[stored..100], &[]).await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.head, reply.text());
    assert_eq!(reply.json()["sha256"], sha256(&bytes[..100]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_http_method_override_makes_a_post_a_patch() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let target = created(&dp, 100).await;
    let headers = [TUS, OCTETS, ("Upload-Offset", "0"), ("X-HTTP-Method-Override", "PATCH")];
    let reply = send(dp.addr, "POST", &target, &headers, &payload(10, 5)).await;
    assert_eq!(reply.status, 204, "{}\n{}", reply.head, reply.text());
    assert_eq!(reply.must("Upload-Offset"), "10");
    assert_offset(&dp, &target, 10).await;
    assert!(backend.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_length_is_declared_on_a_later_patch() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let bytes = payload(2500, 6);
    let (reply, target) = create(dp.addr, "/files", &[("Upload-Defer-Length", "1")]).await;
    assert_eq!(reply.status, 201, "{}", reply.head);
    let reply = patch(dp.addr, &target, 0, &bytes[..1000], &[]).await;
    assert_eq!(reply.status, 204, "{}\n{}", reply.head, reply.text());
    assert_eq!(reply.must("Upload-Offset"), "1000");
    assert_eq!(head(dp.addr, &target).await.must("Upload-Defer-Length"), "1");

    let reply = patch(dp.addr, &target, 1000, &bytes[1000..], &[("Upload-Length", "2500")]).await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.head, reply.text());
    let delivered = backend.wait_for(1).await;
    assert_eq!(delivered[0].header("content-length"), Some("2500"));
    assert_eq!(delivered[0].sha256, sha256(&bytes));
    let reply = head(dp.addr, &target).await;
    assert_eq!(reply.must("Upload-Length"), "2500", "{}", reply.head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_completing_patch_answers_with_the_backends_response_to_one_delivery() {
    let backend = Recorder::start(202).await;
    let dp = dataplane(backend.addr, r#"{"metadataHeaders":{"title":"X-Upload-Title"}}"#).await;
    let bytes = payload(3000, 7);
    let metadata = format!(
        "filename {},filetype {},title {},other {}",
        b64("naïve plan.txt"),
        b64("text/plain"),
        b64("Summer 2026"),
        b64("not passed on")
    );
    let creation = [
        ("Upload-Length", "3000"),
        ("Upload-Metadata", metadata.as_str()),
        ("Authorization", "Bearer t0ken"),
        ("Cookie", "session=abc"),
        ("X-Forwarded-For", "203.0.113.9"),
    ];
    let (reply, target) = create(dp.addr, "/files/photos?album=7", &creation).await;
    assert_eq!(reply.status, 201, "{}", reply.head);
    let id = id_of(&target);
    assert_eq!(patch(dp.addr, &target, 0, &bytes[..1000], &[]).await.status, 204);
    assert!(backend.requests().is_empty(), "nothing is delivered before the upload is complete");

    let reply = patch(dp.addr, &target, 1000, &bytes[1000..], &[]).await;
    assert_eq!(reply.status, 202, "the backend's status: {}\n{}", reply.head, reply.text());
    assert_eq!(reply.json()["sha256"], sha256(&bytes));
    assert_eq!(reply.must("X-Backend"), "recorder");
    assert_eq!(reply.must("Upload-Offset"), "3000");
    assert_eq!(reply.must("Holdfast-Delivery-Status"), "202");
    assert_eq!(reply.must("Tus-Resumable"), "1.0.0");

    let delivered = backend.requests();
    assert_eq!(delivered.len(), 1, "one delivery: {delivered:?}");
    let d = &delivered[0];
    assert_eq!((d.method.as_str(), d.target.as_str()), ("POST", "/files/photos?album=7"));
    assert_eq!((d.bytes, d.sha256.as_str()), (3000, sha256(&bytes).as_str()));
    let expected = [
        ("content-length", "3000"),
        ("x-request-id", id.as_str()),
        ("content-type", "text/plain"),
        ("content-disposition", "attachment; filename=\"na_ve plan.txt\"; filename*=UTF-8''na%C3%AFve%20plan.txt"),
        ("authorization", "Bearer t0ken"),
        ("cookie", "session=abc"),
        ("x-upload-title", "Summer 2026"),
        ("host", "upload.test"),
        ("x-forwarded-for", "203.0.113.9, 127.0.0.1"),
    ];
    for (name, value) in expected {
        assert_eq!(d.header(name), Some(value), "{name} of the delivery: {:?}", d.headers);
    }
    for name in ["tus-resumable", "upload-metadata", "upload-length", "upload-offset", "x-upload-other"] {
        assert_eq!(d.header(name), None, "{name} is not the backend's business: {:?}", d.headers);
    }

    // A client whose last answer was lost asks again: the same answer, no second delivery.
    let again = patch(dp.addr, &target, 3000, b"", &[]).await;
    assert_eq!(again.status, 202, "{}", again.head);
    assert_eq!(again.json()["sha256"], sha256(&bytes));

    let reply = head(dp.addr, &target).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(reply.must("Upload-Offset"), "3000");
    assert_eq!(reply.must("Upload-Length"), "3000");
    assert_eq!(reply.must("Holdfast-Delivery-Status"), "202");
    let reply = send(dp.addr, "GET", &target, &[], b"").await;
    assert_eq!(reply.status, 202, "GET gives the backend's response again: {}", reply.head);
    assert_eq!(reply.json()["sha256"], sha256(&bytes));
    assert_eq!(backend.requests().len(), 1, "HEAD, GET and a repeated PATCH deliver nothing");

    let info_only = vec![format!("{id}.info")];
    eventually("the data file removed", || async { (upload_files(dp.spool.path()) == info_only).then_some(()) }).await;
    eventually("the quota given back", || async { (dp.dp.spool.quota.used() == 0).then_some(()) }).await;
    assert_eq!(dp.dp.metrics.resumable.in_flight.get(), 0);
    assert_eq!(dp.dp.metrics.resumable.stored_bytes.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_upload_is_delivered_at_its_creation() {
    let backend = Recorder::start(202).await;
    let dp = dataplane(backend.addr, "{}").await;
    let (reply, target) = create(dp.addr, "/files", &[("Upload-Length", "0")]).await;
    // A creation is answered 201 (the backend's own status is in Holdfast-Delivery-Status), with its body.
    assert_eq!(reply.status, 201, "{}\n{}", reply.head, reply.text());
    assert_eq!(reply.must("Holdfast-Delivery-Status"), "202");
    assert_eq!(reply.json()["bytes"], 0);
    let id = id_of(&target);
    let delivered = backend.wait_for(1).await;
    assert_eq!(delivered[0].header("content-length"), Some("0"));
    assert_eq!(delivered[0].header("x-request-id"), Some(id.as_str()));
    let reply = head(dp.addr, &target).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(reply.must("Upload-Offset"), "0");
    assert_eq!(reply.must("Holdfast-Delivery-Status"), "202");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creation_with_a_body_stores_its_first_bytes() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let bytes = payload(1000, 8);
    let headers = [TUS, OCTETS, ("Upload-Length", "1000")];
    let reply = send(dp.addr, "POST", "/files", &headers, &bytes[..300]).await;
    assert_eq!(reply.status, 201, "{}\n{}", reply.head, reply.text());
    assert_eq!(reply.must("Upload-Offset"), "300");
    assert!(reply.header("Upload-Expires").is_some(), "{}", reply.head);
    let target = support::tus::target_of(&reply.must("Location"));
    assert_offset(&dp, &target, 300).await;
    let reply = patch(dp.addr, &target, 300, &bytes[300..], &[]).await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.head, reply.text());
    assert_eq!(reply.json()["sha256"], sha256(&bytes));

    // A whole upload in its creation request is delivered at once.
    let small = payload(50, 9);
    let reply = send(dp.addr, "POST", "/files", &[TUS, OCTETS, ("Upload-Length", "50")], &small).await;
    assert_eq!(reply.status, 201, "{}\n{}", reply.head, reply.text());
    assert!(reply.header("Location").is_some(), "{}", reply.head);
    assert_eq!(reply.must("Holdfast-Delivery-Status"), "200");
    assert_eq!(reply.json()["sha256"], sha256(&small));
    assert_eq!(backend.wait_for(2).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_terminates_an_upload_and_removes_its_files() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let target = created(&dp, 100).await;
    let id = id_of(&target);
    assert_eq!(patch(dp.addr, &target, 0, &payload(10, 10), &[]).await.status, 204);
    let reply = send(dp.addr, "DELETE", &target, &[TUS], b"").await;
    assert_eq!(reply.status, 204, "{}", reply.head);
    assert_eq!(reply.must("Tus-Resumable"), "1.0.0");
    assert_eq!(head(dp.addr, &target).await.status, 404);
    assert_eq!(patch(dp.addr, &target, 10, &payload(10, 11), &[]).await.status, 404);
    let left = upload_files(dp.spool.path());
    assert!(!left.iter().any(|f| f.starts_with(&id)), "files of a terminated upload: {left:?}");
    assert_eq!(dp.dp.spool.quota.used(), 0);
    assert_eq!(dp.dp.metrics.resumable.in_flight.get(), 0);
    assert_eq!(dp.dp.metrics.resumable.stored_bytes.get(), 0);
    assert!(backend.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_upload_is_removed_by_the_sweep_after_its_expiry() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, r#"{"expiresAfterMs":500}"#).await;
    let target = created(&dp, 100).await;
    let id = id_of(&target);
    assert_eq!(patch(dp.addr, &target, 0, &payload(10, 12), &[]).await.status, 204);
    holdfast_dataplane::tus::sweep(&dp.dp);
    assert_offset(&dp, &target, 10).await;

    tokio::time::sleep(Duration::from_millis(600)).await;
    holdfast_dataplane::tus::sweep(&dp.dp);
    assert_eq!(head(dp.addr, &target).await.status, 404);
    assert_eq!(patch(dp.addr, &target, 10, &payload(10, 13), &[]).await.status, 404);
    let left = upload_files(dp.spool.path());
    assert!(!left.iter().any(|f| f.starts_with(&id)), "files of an expired upload: {left:?}");
    assert_eq!(dp.dp.spool.quota.used(), 0);
    assert!(backend.requests().is_empty(), "an unfinished upload is never delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_cut_short_keeps_what_arrived_and_the_next_one_resumes() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let bytes = payload(100_000, 24);
    let target = created(&dp, bytes.len()).await;
    let cut = stalled_patch(&dp, &target, 0, 100_000, &bytes[..40_000]).await;
    drop(cut);
    eventually("the cut PATCH's bytes promised", || async {
        let reply = head(dp.addr, &target).await;
        (reply.must("Upload-Offset") == "40000").then_some(())
    })
    .await;
    let reply = patch(dp.addr, &target, 40_000, &bytes[40_000..], &[]).await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.head, reply.text());
    assert_eq!(reply.json()["sha256"], sha256(&bytes));
    assert_eq!(dp.dp.metrics.resumable.resumptions.get(), 1, "resumable_resumptions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_idle_past_client_body_ms_keeps_what_arrived() {
    let backend = Recorder::start(200).await;
    let policy = r#"{"timeouts":{"clientBodyMs":300},"resumable":{}}"#;
    let dp = Harness::start(Some(&snapshot(1, &[backend.addr], policy)), 0).await;
    let bytes = payload(100_000, 25);
    let target = created(&dp, bytes.len()).await;
    let mut idle = stalled_patch(&dp, &target, 0, 100_000, &bytes[..40_000]).await;
    let (status, answer, _) = tokio::time::timeout(LIMIT, read_response(&mut idle)).await.unwrap().unwrap();
    // A 5xx, as tusd answers: tus clients retry it (a 4xx would end the upload) and resume from what was stored.
    assert_eq!(status, 500, "an idle body ends the PATCH: {answer}");
    assert_offset(&dp, &target, 40_000).await;
    let reply = patch(dp.addr, &target, 40_000, &bytes[40_000..], &[]).await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.head, reply.text());
    assert_eq!(reply.json()["sha256"], sha256(&bytes));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_patch_takes_the_upload_over_from_a_stalled_one() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let bytes = payload(100_000, 14);
    let target = created(&dp, bytes.len()).await;
    let mut first = stalled_patch(&dp, &target, 0, 100_000, &bytes[..40_000]).await;

    let second = patch(dp.addr, &target, 40_000, &bytes[40_000..], &[]).await;
    assert_eq!(second.status, 200, "{}\n{}", second.head, second.text());
    assert_eq!(second.json()["sha256"], sha256(&bytes), "the bytes of both PATCHes, in order");
    let (status, head, _) = tokio::time::timeout(LIMIT, read_response(&mut first)).await.unwrap().unwrap();
    assert_eq!(status, 423, "the stalled PATCH is stopped: {head}");
    assert_eq!(backend.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_patch_with_a_stale_offset_stops_the_first_and_learns_the_offset() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let bytes = payload(100_000, 15);
    let target = created(&dp, bytes.len()).await;
    let mut first = stalled_patch(&dp, &target, 0, 100_000, &bytes[..40_000]).await;

    let second = patch(dp.addr, &target, 0, &payload(100_000, 16), &[]).await;
    assert_eq!(second.status, 409, "{}", second.head);
    assert_eq!(second.must("Upload-Offset"), "40000", "what the stopped PATCH stored");
    let (status, head, _) = tokio::time::timeout(LIMIT, read_response(&mut first)).await.unwrap().unwrap();
    assert_eq!(status, 423, "{head}");

    let last = patch(dp.addr, &target, 40_000, &bytes[40_000..], &[]).await;
    assert_eq!(last.status, 200, "{}\n{}", last.head, last.text());
    assert_eq!(last.json()["sha256"], sha256(&bytes), "no byte of the refused PATCH got in");
}

/// HEAD reads the upload without taking it (docs/resumable-uploads.md, "One writer per upload": a PATCH or a DELETE
/// takes over, not a HEAD), and reports only bytes a `204` could have promised: none of a PATCH still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_during_a_stalled_patch_reports_only_promised_bytes() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, "{}").await;
    let bytes = payload(100_000, 17);
    let target = created(&dp, bytes.len()).await;
    let mut stalled = stalled_patch(&dp, &target, 0, 100_000, &bytes[..40_000]).await;
    assert_offset(&dp, &target, 0).await;

    // The stalled PATCH still holds the upload: the rest of its body completes it.
    stalled.write_all(&bytes[40_000..]).await.unwrap();
    let (status, answer, body) = tokio::time::timeout(LIMIT, read_response(&mut stalled)).await.unwrap().unwrap();
    assert_eq!(status, 200, "{answer}{}", String::from_utf8_lossy(&body));
    assert_eq!(backend.wait_for(1).await[0].sha256, sha256(&bytes));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_down_at_completion_gets_the_upload_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("deliveries.jsonl");
    let mut upstream = UpstreamProcess::start("127.0.0.1:0", &log, &[]).await;
    upstream.kill().await;
    let policy = r#"{"replay":{"upstreamWaitTimeoutMs":300},"resumable":{"answerWaitMs":300}}"#;
    let dp = Harness::start(Some(&snapshot(1, &[upstream.addr], policy)), 0).await;
    let bytes = payload(5000, 18);
    let target = created(&dp, bytes.len()).await;
    let id = id_of(&target);

    let reply = patch(dp.addr, &target, 0, &bytes, &[]).await;
    assert_eq!(reply.status, 204, "{}\n{}", reply.head, reply.text());
    assert_eq!(reply.must("Holdfast-Delivery"), "pending");
    assert_eq!(reply.must("Upload-Offset"), "5000");
    for method in ["HEAD", "GET", "DELETE"] {
        let reply = send(dp.addr, method, &target, &[TUS], b"").await;
        assert_eq!(reply.status, 423, "{method} while the delivery waits for the backend: {}", reply.head);
    }

    upstream.restart().await;
    let delivered = eventually("the delivery", || async {
        let found = deliveries(&log);
        (!found.is_empty()).then_some(found)
    })
    .await;
    let reply = eventually("HEAD after the delivery", || async {
        let reply = head(dp.addr, &target).await;
        (reply.status == 200).then_some(reply)
    })
    .await;
    assert_eq!(reply.must("Upload-Offset"), "5000");
    assert_eq!(reply.must("Holdfast-Delivery-Status"), "200");
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0]["sha256"], sha256(&bytes));
    assert_eq!(delivered[0]["requestId"], id);
    assert_eq!(delivered[0]["contentLength"], 5000);
    let reply = send(dp.addr, "GET", &target, &[], b"").await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(reply.json()["sha256"], sha256(&bytes));
    assert_eq!(deliveries(&log).len(), 1, "one delivery");
}

/// An upload past its `Upload-Expires` is `404` at once, not only after the next sweep (`--resumable-sweep-interval`,
/// 60 s), as the expiration extension asks ("the Server SHOULD respond with 404 Not Found or 410 Gone"), and it is
/// never delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_past_its_expiry_is_404_before_the_sweep_runs() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, r#"{"expiresAfterMs":300}"#).await;
    let bytes = payload(20, 26);
    let target = created(&dp, bytes.len()).await;
    assert_eq!(patch(dp.addr, &target, 0, &bytes[..10], &[]).await.status, 204);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let reply = patch(dp.addr, &target, 10, &bytes[10..], &[]).await;
    assert_eq!(reply.status, 404, "a PATCH past Upload-Expires: {}\n{}", reply.head, reply.text());
    assert_eq!(head(dp.addr, &target).await.status, 404);
    assert!(backend.requests().is_empty(), "an expired upload is never delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_uses_the_policys_method_and_the_outcome_goes_after_its_retention() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, r#"{"deliveryMethod":"PUT","outcomeRetentionMs":300}"#).await;
    let bytes = payload(100, 20);
    let target = created(&dp, bytes.len()).await;
    let reply = patch(dp.addr, &target, 0, &bytes, &[]).await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.head, reply.text());
    assert_eq!(reply.json()["method"], "PUT");
    holdfast_dataplane::tus::sweep(&dp.dp);
    assert_eq!(head(dp.addr, &target).await.status, 200, "the outcome is kept for outcomeRetentionMs");

    tokio::time::sleep(Duration::from_millis(400)).await;
    holdfast_dataplane::tus::sweep(&dp.dp);
    assert_eq!(head(dp.addr, &target).await.status, 404);
    assert!(upload_files(dp.spool.path()).is_empty(), "{:?}", upload_files(dp.spool.path()));
}

/// The sweep removes an expired upload while a PATCH still holds it: that PATCH stops, and the bytes it wrote are not
/// counted for an upload that no longer exists — the stored-bytes gauge and the quota go back to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_expiring_under_a_stalled_patch_gives_everything_back() {
    let backend = Recorder::start(200).await;
    let dp = dataplane(backend.addr, r#"{"expiresAfterMs":500}"#).await;
    let bytes = payload(100_000, 21);
    let target = created(&dp, bytes.len()).await;
    let id = id_of(&target);
    let mut stalled = stalled_patch(&dp, &target, 0, 100_000, &bytes[..40_000]).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    holdfast_dataplane::tus::sweep(&dp.dp);

    let (status, stopped, _) = tokio::time::timeout(LIMIT, read_response(&mut stalled)).await.unwrap().unwrap();
    assert!(matches!(status, 404 | 423), "the PATCH of an expired upload ends: {stopped}");
    assert_eq!(head(dp.addr, &target).await.status, 404);
    let left = upload_files(dp.spool.path());
    assert!(!left.iter().any(|f| f.starts_with(&id)), "files of an expired upload: {left:?}");
    assert_eq!(dp.dp.spool.quota.used(), 0, "quota held by an expired upload");
    let resumable = &dp.dp.metrics.resumable;
    assert_eq!(resumable.in_flight.get(), 0, "resumable_uploads_in_flight");
    assert_eq!(resumable.stored_bytes.get(), 0, "resumable_stored_bytes counts bytes of an upload that is gone");
}

/// Writes the snapshot the restart tests run the binary with: every route takes tus, in front of `backend`.
fn snapshot_file(dir: &std::path::Path, backend: SocketAddr) -> std::path::PathBuf {
    let file = dir.join("snapshot.json");
    std::fs::write(&file, snapshot(1, &[backend], r#"{"resumable":{}}"#)).unwrap();
    file
}

async fn sigkill(dataplane: &mut support::DataplaneProcess) {
    dataplane.child.start_kill().unwrap();
    dataplane.child.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_upload_survives_a_sigkill_of_the_dataplane() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let backend = Recorder::start(200).await;
    let config = snapshot_file(dir.path(), backend.addr);
    let bytes = payload(4000, 22);
    let metadata = format!("filename {}", b64("holiday.jpg"));

    let mut first = support::DataplaneProcess::start(&spool, &config, &[]).await;
    let (reply, target) =
        create(first.addr, "/files", &[("Upload-Length", "4000"), ("Upload-Metadata", &metadata)]).await;
    assert_eq!(reply.status, 201, "{}", reply.head);
    assert_eq!(patch(first.addr, &target, 0, &bytes[..1500], &[]).await.status, 204);
    sigkill(&mut first).await;

    let second = support::DataplaneProcess::start(&spool, &config, &[]).await;
    let reply = head(second.addr, &target).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(reply.must("Upload-Offset"), "1500", "every byte promised by a 204 is kept");
    assert_eq!(reply.must("Upload-Length"), "4000");
    assert_eq!(reply.must("Upload-Metadata"), metadata);
    let reply = patch(second.addr, &target, 1500, &bytes[1500..], &[]).await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.head, reply.text());
    assert_eq!(reply.json()["sha256"], sha256(&bytes));
    let delivered = backend.wait_for(1).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].header("content-disposition"), Some("attachment; filename=\"holiday.jpg\""));
}

/// An upload delivered before a restart is loaded whole: a PATCH with a stale offset is answered 409 with the
/// upload's length as `Upload-Offset` (not 0, which would make a client send the whole file again), as HEAD says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_patch_to_an_upload_delivered_before_a_restart_learns_it_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let backend = Recorder::start(200).await;
    let config = snapshot_file(dir.path(), backend.addr);
    let bytes = payload(100, 23);

    let mut first = support::DataplaneProcess::start(&spool, &config, &[]).await;
    let target = {
        let (reply, target) = create(first.addr, "/files", &[("Upload-Length", "100")]).await;
        assert_eq!(reply.status, 201, "{}", reply.head);
        let reply = patch(first.addr, &target, 0, &bytes, &[]).await;
        assert_eq!(reply.status, 200, "{}\n{}", reply.head, reply.text());
        target
    };
    sigkill(&mut first).await;

    let second = support::DataplaneProcess::start(&spool, &config, &[]).await;
    let reply = head(second.addr, &target).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(reply.must("Upload-Offset"), "100");
    assert_eq!(reply.must("Holdfast-Delivery-Status"), "200");
    let again = patch(second.addr, &target, 100, b"", &[]).await;
    assert_eq!(again.status, 200, "the lost answer, again: {}", again.head);
    assert_eq!(again.json()["sha256"], sha256(&bytes));
    let stale = patch(second.addr, &target, 0, &bytes, &[]).await;
    assert_eq!(stale.status, 409, "{}", stale.head);
    assert_eq!(stale.must("Upload-Offset"), "100", "the upload is whole: {}", stale.head);
    assert_eq!(backend.requests().len(), 1, "delivered once");
}
