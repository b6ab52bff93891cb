//! Resumable uploads with real tus clients — tus-js-client (Node) and tuspy (Python), installed by the project's
//! scripts — against the dataplane, delivering to a real upstream process: chunks, resumes after a cut connection
//! and after a SIGKILL of the dataplane itself, a backend killed during delivery, expiry, termination, checksums,
//! concurrent writers and the quota. Every test checks what the backend received against the client's file, and
//! what is left on the volume.

mod support;

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::tus_client::{self, args, id_of, random_file, upload_files, Client};
use support::*;
use tokio::io::AsyncWriteExt;

const LIMIT: Duration = Duration::from_secs(120);
const FIELDS: &str = "content-type,content-disposition,authorization,x-upload-title,x-forwarded-for";

/// One route, `/upload`, whose policy turns on resumable uploads.
fn tus_snapshot(upstream: SocketAddr, resumable: Value) -> String {
    json!({
        "version": 1,
        "hosts": [{"host": "", "paths": [{"path": "/upload", "pathType": "Prefix", "backend": "b", "policy": "tus"}]}],
        "backends": {"b": {"endpoints": [{"address": "127.0.0.1", "port": upstream.port()}]}},
        "policies": {"tus": {"resumable": resumable}},
    })
    .to_string()
}

fn endpoint(addr: SocketAddr) -> String {
    format!("http://{addr}/upload?album=7")
}

/// The deliveries the upstream recorded, waiting a moment for the one that may still be on its way.
async fn delivered(path: &Path, count: usize) -> Vec<Value> {
    for _ in 0..100 {
        let found = upstream::deliveries(path);
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    upstream::deliveries(path)
}

/// Waits until the upload files in `spool` are exactly `expected`.
async fn wait_for_files(spool: &Path, expected: &[String]) {
    for _ in 0..200 {
        if upload_files(spool) == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(upload_files(spool), expected, "files of resumable uploads on the volume");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_uploads_in_chunks_and_gets_the_backend_answer() {
    let dir = tempfile::tempdir().unwrap();
    let deliveries = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start("127.0.0.1:0", &deliveries, &["--record-headers", FIELDS]).await;
    let resumable = json!({"metadataHeaders": {"title": "X-Upload-Title"}});
    let hf = Harness::start(Some(&tus_snapshot(upstream.addr, resumable)), 0).await;
    let (file, sha) = random_file(dir.path(), "photo.jpg", 5 * MB + 123, 1);
    let result = tus_client::upload(
        Client::TusJs,
        &endpoint(hf.addr),
        file.to_str().unwrap(),
        &[
            "--chunk-size",
            "1000000",
            "--metadata",
            "filename=Été à la plage.jpg",
            "--metadata",
            "filetype=image/jpeg",
            "--metadata",
            "title=Summer",
            "--metadata",
            "secret=not-passed",
            "--header",
            "Authorization=Bearer t0k3n",
        ],
    )
    .await;
    assert_eq!(result["status"], 200, "the final PATCH carries the backend's answer: {result}");
    let answer: Value = serde_json::from_str(result["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["sha256"], sha.as_str());
    assert_eq!(result["headers"]["upload-offset"], (5 * MB + 123).to_string());
    let id = id_of(result["url"].as_str().unwrap());
    let got = delivered(&deliveries, 1).await;
    assert_eq!(got.len(), 1, "one delivery: {got:?}");
    let d = &got[0];
    assert_eq!((d["sha256"].as_str(), d["bytes"].as_u64()), (Some(sha.as_str()), Some(5 * MB + 123)));
    assert_eq!(d["contentLength"], 5 * MB + 123, "delivered with a Content-Length");
    assert_eq!(d["requestId"], id.as_str(), "the upload's id is the delivery's X-Request-Id");
    assert_eq!((d["method"].as_str(), d["target"].as_str()), (Some("POST"), Some("/upload?album=7")));
    let h = &d["headers"];
    assert_eq!(h["content-type"], "image/jpeg");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"_t_ _ la plage.jpg\"; filename*=UTF-8''%C3%89t%C3%A9%20%C3%A0%20la%20plage.jpg"
    );
    assert_eq!(h["authorization"], "Bearer t0k3n");
    assert_eq!(h["x-upload-title"], "Summer");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    // Delivered: only the outcome is kept, and the quota is free again.
    wait_for_files(hf.spool.path(), &[format!("{id}.info")]).await;
    assert_eq!(hf.dp.spool.quota.used(), 0);
    assert_eq!(hf.dp.metrics.resumable.in_flight.get(), 0);
    assert_eq!(hf.dp.metrics.resumable.stored_bytes.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuspy_uploads_with_checksums_and_a_wrong_one_gets_460() {
    let dir = tempfile::tempdir().unwrap();
    let deliveries = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start("127.0.0.1:0", &deliveries, &[]).await;
    let hf = Harness::start(Some(&tus_snapshot(upstream.addr, json!({}))), 0).await;
    let (file, sha) = random_file(dir.path(), "f.bin", 3 * MB, 2);
    let file = file.to_str().unwrap();
    for algorithm in ["sha1", "sha256"] {
        let result = tus_client::upload(
            Client::TusPy,
            &endpoint(hf.addr),
            file,
            &[
                "--chunk-size",
                "700000",
                "--checksum",
                "--checksum-algorithm",
                algorithm,
                "--metadata",
                "filename=f.bin",
            ],
        )
        .await;
        assert_eq!(result["status"], 200, "{algorithm}: {result}");
        let answer: Value = serde_json::from_str(result["body"].as_str().unwrap()).unwrap();
        assert_eq!(answer["sha256"], sha.as_str());
    }
    let bad =
        tus_client::upload(Client::TusPy, &endpoint(hf.addr), file, &["--chunk-size", "700000", "--bad-checksum"])
            .await;
    assert_eq!(bad["status"], 460, "a wrong checksum: {bad}");
    // The refused chunk was discarded: the upload is still at 0.
    let url = bad["url"].as_str().expect("the upload was created");
    let (status, head) = raw(hf.addr, &format!("HEAD {} HTTP/1.1\r\nTus-Resumable: 1.0.0\r\n", path_of(url))).await;
    assert_eq!(status, 200);
    assert!(head.contains("upload-offset: 0\r\n"), "{head}");
    assert_eq!(delivered(&deliveries, 2).await.len(), 2, "the two good uploads, not the refused one");
    assert!(!upload_files(hf.spool.path()).iter().any(|f| f.ends_with(".check")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_resumes_after_the_client_connection_is_cut_mid_patch() {
    let dir = tempfile::tempdir().unwrap();
    let deliveries = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start("127.0.0.1:0", &deliveries, &[]).await;
    let hf = Harness::start(Some(&tus_snapshot(upstream.addr, json!({}))), 0).await;
    let (file, sha) = random_file(dir.path(), "f.bin", 12 * MB, 3);
    let file = file.to_str().unwrap();
    let cut = tus_client::upload(
        Client::TusJs,
        &endpoint(hf.addr),
        file,
        &["--chunk-size", "8000000", "--abort-after", "5000000"],
    )
    .await;
    let url = cut["url"].as_str().expect("an upload URL").to_string();
    let kept = cut["serverOffset"].as_u64().expect("the server's offset after the cut");
    assert!(kept > 0 && kept < 12 * MB, "the bytes of the cut PATCH that arrived are kept: {cut}");
    assert!(upstream::deliveries(&deliveries).is_empty());
    let resumed = tus_client::upload(Client::TusJs, &endpoint(hf.addr), file, &["--upload-url", &url]).await;
    assert_eq!(resumed["url"].as_str(), Some(url.as_str()), "the same upload, resumed: {resumed}");
    let answer: Value = serde_json::from_str(resumed["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["sha256"], sha.as_str());
    assert_eq!(delivered(&deliveries, 1).await.len(), 1);
    assert!(hf.dp.metrics.resumable.resumptions.get() >= 1, "the resumption is counted");
}

/// The dataplane itself is SIGKILLed in the middle of a PATCH and started again on the same spool directory: the
/// bytes it had stored are still promised, and tus-js-client finishes the upload from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_survives_a_sigkill_of_the_dataplane_mid_patch() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, deliveries) = (dir.path().join("spool"), dir.path().join("d.jsonl"));
    std::fs::create_dir(&spool).unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &deliveries, &[]).await;
    let snapshot_file = dir.path().join("snapshot.json");
    std::fs::write(&snapshot_file, tus_snapshot(upstream.addr, json!({}))).unwrap();
    let mut first = DataplaneProcess::start(&spool, &snapshot_file, &[]).await;
    let (file, sha) = random_file(dir.path(), "f.bin", 8 * MB, 4);
    let bytes = std::fs::read(&file).unwrap();
    // Created, then half of the file sent in a PATCH that declares all of it.
    let (status, created) =
        raw(first.addr, "POST /upload?album=7 HTTP/1.1\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 8000000\r\n").await;
    assert_eq!(status, 201, "{created}");
    let url = header_of(&created, "location");
    let id = id_of(&url);
    let mut patch = tokio::net::TcpStream::connect(first.addr).await.unwrap();
    let head = format!(
        "PATCH {} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: 8000000\r\n\r\n",
        path_of(&url)
    );
    patch.write_all(head.as_bytes()).await.unwrap();
    patch.write_all(&bytes[..3_000_000]).await.unwrap();
    let data = spool.join("tus").join(format!("{id}.data"));
    for _ in 0..200 {
        if std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0) >= 3_000_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    drop(patch);
    // Under another name, as a Deployment's replacement pod is: the uploads on its volume are its own all the same.
    let second = DataplaneProcess::start(&spool, &snapshot_file, &["--instance", "replacement-pod"]).await;
    // Same path and id, the new process's port.
    let url = format!("http://{}{}", second.addr, path_of(&url));
    let (status, head) =
        raw(second.addr, &format!("HEAD {} HTTP/1.1\r\nTus-Resumable: 1.0.0\r\n", path_of(&url))).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(header_of(&head, "upload-offset"), "3000000", "what was stored before the kill is kept");
    let resumed =
        tus_client::upload(Client::TusJs, &endpoint(second.addr), file.to_str().unwrap(), &["--upload-url", &url])
            .await;
    assert_eq!(resumed["status"], 200, "{resumed}");
    let got = delivered(&deliveries, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["sha256"], sha.as_str(), "the backend received exactly the client's file");
    wait_for_files(&spool, &[format!("{id}.info")]).await;
}

/// The backend is SIGKILLed while the finished upload is being delivered to it; once it is back the delivery is
/// replayed from the volume, and the client's last PATCH returns the backend's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_killed_during_delivery_gets_the_upload_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let deliveries = dir.path().join("d.jsonl");
    let mut upstream = UpstreamProcess::start("127.0.0.1:0", &deliveries, &["--read-rate", "8000000"]).await;
    let hf = Harness::start(Some(&tus_snapshot(upstream.addr, json!({}))), 0).await;
    let (file, sha) = random_file(dir.path(), "f.bin", 8 * MB, 5);
    let client = tokio::spawn({
        let args =
            args(&["--endpoint", &endpoint(hf.addr), "--file", file.to_str().unwrap(), "--chunk-size", "4000000"]);
        async move { tus_client::run(Client::TusJs, &args, LIMIT).await }
    });
    upstream.wait_for_progress(2 << 20).await;
    upstream.kill().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    upstream.restart().await;
    let result = client.await.unwrap();
    assert_eq!(result["status"], 200, "the client learns the backend's answer: {result}");
    let answer: Value = serde_json::from_str(result["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["sha256"], sha.as_str());
    assert!(answer["attempt"].as_u64() >= Some(2), "replayed: {answer}");
    let got = delivered(&deliveries, 1).await;
    assert_eq!(got.len(), 1, "one complete delivery: {got:?}");
    assert_eq!(got[0]["sha256"], sha.as_str());
}

/// An unfinished upload is removed at its expiry; tus-js-client, resuming it, is told it is gone (404) and starts a
/// new upload, which completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_upload_is_removed_and_the_client_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, deliveries) = (dir.path().join("spool"), dir.path().join("d.jsonl"));
    std::fs::create_dir(&spool).unwrap();
    let upstream = UpstreamProcess::start("127.0.0.1:0", &deliveries, &[]).await;
    let snapshot_file = dir.path().join("snapshot.json");
    std::fs::write(&snapshot_file, tus_snapshot(upstream.addr, json!({"expiresAfterMs": 1500}))).unwrap();
    let dp = DataplaneProcess::start(&spool, &snapshot_file, &["--resumable-sweep-interval", "200ms"]).await;
    let (file, sha) = random_file(dir.path(), "f.bin", 3 * MB, 6);
    let file = file.to_str().unwrap();
    let stopped = tus_client::upload(
        Client::TusJs,
        &endpoint(dp.addr),
        file,
        &["--chunk-size", "1000000", "--stop-after", "1000000"],
    )
    .await;
    let url = stopped["url"].as_str().unwrap().to_string();
    let id = id_of(&url);
    assert_eq!(upload_files(&spool), vec![format!("{id}.data"), format!("{id}.info")]);
    wait_for_files(&spool, &[]).await;
    let (status, _) = raw(dp.addr, &format!("HEAD {} HTTP/1.1\r\nTus-Resumable: 1.0.0\r\n", path_of(&url))).await;
    assert_eq!(status, 404, "an expired upload is gone");
    let again = tus_client::upload(Client::TusJs, &endpoint(dp.addr), file, &["--upload-url", &url]).await;
    assert_eq!(again["status"], 200, "{again}");
    assert_ne!(again["url"].as_str(), Some(url.as_str()), "a new upload");
    let answer: Value = serde_json::from_str(again["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["sha256"], sha.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_upload_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let deliveries = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start("127.0.0.1:0", &deliveries, &[]).await;
    let hf = Harness::start(Some(&tus_snapshot(upstream.addr, json!({}))), 0).await;
    let (file, _) = random_file(dir.path(), "f.bin", 3 * MB, 7);
    let result = tus_client::upload(
        Client::TusJs,
        &endpoint(hf.addr),
        file.to_str().unwrap(),
        &["--chunk-size", "1000000", "--stop-after", "1000000", "--terminate"],
    )
    .await;
    let url = result["url"].as_str().expect("an upload URL");
    let (status, _) = raw(hf.addr, &format!("HEAD {} HTTP/1.1\r\nTus-Resumable: 1.0.0\r\n", path_of(url))).await;
    assert_eq!(status, 404);
    wait_for_files(hf.spool.path(), &[]).await;
    assert_eq!(hf.dp.spool.quota.used(), 0);
    assert!(upstream::deliveries(&deliveries).is_empty());
    assert_eq!(hf.dp.metrics.resumable.terminated.get(), 1);
}

/// Two clients resume the same upload at once: one takes it over from the other (423, or 409 once the offset moved),
/// both retry as tus clients do, the upload completes once, byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_patching_one_upload_never_corrupt_it() {
    let dir = tempfile::tempdir().unwrap();
    let deliveries = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start("127.0.0.1:0", &deliveries, &[]).await;
    let hf = Harness::start(Some(&tus_snapshot(upstream.addr, json!({}))), 0).await;
    let (file, sha) = random_file(dir.path(), "f.bin", 16 * MB, 8);
    let file = file.to_str().unwrap().to_string();
    let first =
        tus_client::upload(Client::TusJs, &endpoint(hf.addr), &file, &["--chunk-size", "1000000", "--stop-after", "1"])
            .await;
    let url = first["url"].as_str().unwrap().to_string();
    let resume = |retries: &'static str| {
        let args = args(&[
            "--endpoint",
            &endpoint(hf.addr),
            "--file",
            &file,
            "--upload-url",
            &url,
            "--chunk-size",
            "2000000",
            "--retry-delays",
            retries,
        ]);
        tokio::spawn(async move { tus_client::run(Client::TusJs, &args, LIMIT).await })
    };
    let (a, b) = (resume("0,100,200,400,800,1600,3200"), resume("0,150,300,600,1200,2400,4800"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    for result in [&a, &b] {
        assert!(result.get("error").is_none(), "both clients end well: {a} {b}");
    }
    let got = delivered(&deliveries, 1).await;
    assert_eq!(got.len(), 1, "delivered once: {got:?}");
    assert_eq!(got[0]["sha256"], sha.as_str(), "byte-exact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_spool_quota_is_refused_before_a_byte_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let deliveries = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start("127.0.0.1:0", &deliveries, &[]).await;
    let hf = Harness::start(Some(&tus_snapshot(upstream.addr, json!({}))), 2 * MB).await;
    let (file, _) = random_file(dir.path(), "f.bin", 3 * MB, 9);
    for client in [Client::TusJs, Client::TusPy] {
        let result = tus_client::run(
            client,
            &args(&["--endpoint", &endpoint(hf.addr), "--file", file.to_str().unwrap(), "--metadata", "filename=f"]),
            LIMIT,
        )
        .await;
        assert_eq!(result["status"], 507, "{client:?}: {result}");
    }
    assert!(upload_files(hf.spool.path()).is_empty(), "nothing stored");
    assert_eq!(hf.dp.spool.quota.used(), 0);
}

/// tus-js-client speaking the IETF resumable-upload draft (interop versions 5 and 6, the careful mode: an empty
/// creation, appends, no `104`) to the same route: chunks, a cut append resumed, and the backend's answer at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_speaking_the_ietf_draft_uploads_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let deliveries = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start("127.0.0.1:0", &deliveries, &["--record-headers", FIELDS]).await;
    let hf = Harness::start(Some(&tus_snapshot(upstream.addr, json!({}))), 0).await;
    let (file, sha) = random_file(dir.path(), "clip.mp4", 6 * MB, 11);
    let file = file.to_str().unwrap();
    for (n, protocol) in ["ietf-draft-03", "ietf-draft-05"].into_iter().enumerate() {
        let cut = tus_client::upload(
            Client::TusJs,
            &endpoint(hf.addr),
            file,
            &[
                "--protocol",
                protocol,
                "--chunk-size",
                "4000000",
                "--metadata",
                "filetype=video/mp4",
                "--abort-after",
                "2500000",
            ],
        )
        .await;
        let url = cut["url"].as_str().unwrap_or_else(|| panic!("{protocol}: {cut}")).to_string();
        assert!(cut["serverOffset"].as_u64() > Some(0), "{protocol}: the cut append kept its bytes: {cut}");
        let done = tus_client::upload(
            Client::TusJs,
            &endpoint(hf.addr),
            file,
            &["--protocol", protocol, "--upload-url", &url],
        )
        .await;
        assert_eq!(done["status"], 200, "{protocol}: {done}");
        assert_eq!(done["headers"]["upload-complete"], "?1", "{protocol}: {done}");
        let answer: Value = serde_json::from_str(done["body"].as_str().unwrap()).unwrap();
        assert_eq!(answer["sha256"], sha.as_str(), "{protocol}");
        let got = delivered(&deliveries, n + 1).await;
        assert_eq!(got.len(), n + 1, "{protocol}: {got:?}");
        assert_eq!(got[n]["headers"]["content-type"], "video/mp4");
    }
}

/// Two replicas, each with its own volume: an upload created on one is continued through the other (passed to its
/// owner), answered 503/423 with Retry-After while its owner is down — never 404 —, and completed byte-exact through
/// the other replica once the owner is back on its volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_continued_through_another_replica_and_survives_its_owner_restarting() {
    let dir = tempfile::tempdir().unwrap();
    let deliveries = dir.path().join("d.jsonl");
    let upstream = UpstreamProcess::start("127.0.0.1:0", &deliveries, &[]).await;
    let snapshot_file = dir.path().join("snapshot.json");
    std::fs::write(&snapshot_file, tus_snapshot(upstream.addr, json!({}))).unwrap();
    let (spool_a, spool_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&spool_a).unwrap();
    std::fs::create_dir(&spool_b).unwrap();
    let mut a = DataplaneProcess::start(&spool_a, &snapshot_file, &["--instance", "holdfast-0"]).await;
    let b = DataplaneProcess::start(&spool_b, &snapshot_file, &["--instance", "holdfast-1"]).await;
    let tell_peers = |version: u64, a: SocketAddr, b: SocketAddr| {
        let mut snapshot: Value = serde_json::from_str(&tus_snapshot(upstream.addr, json!({}))).unwrap();
        snapshot["version"] = version.into();
        snapshot["peers"] = json!({
            "holdfast-0": {"address": "127.0.0.1", "port": a.port()},
            "holdfast-1": {"address": "127.0.0.1", "port": b.port()},
        });
        snapshot.to_string()
    };
    for admin in [a.admin, b.admin] {
        assert_eq!(push(admin, &tell_peers(2, a.addr, b.addr)).await.0, 200);
    }
    let (file, sha) = random_file(dir.path(), "f.bin", 4 * MB, 10);
    let file = file.to_str().unwrap();
    let started = tus_client::upload(
        Client::TusJs,
        &endpoint(a.addr),
        file,
        &["--chunk-size", "1000000", "--stop-after", "1000000"],
    )
    .await;
    let path = path_of(started["url"].as_str().unwrap());
    let id = id_of(&path);
    assert!(id.starts_with("holdfast-0-"), "the id names its owner: {id}");
    // Continued through the other replica, which passes it to its owner.
    let via_b = format!("http://{}{path}", b.addr);
    let more = tus_client::upload(
        Client::TusJs,
        &endpoint(b.addr),
        file,
        &["--chunk-size", "1000000", "--upload-url", &via_b, "--stop-after", "2000000"],
    )
    .await;
    assert_eq!(more["offset"], 2_000_000, "{more}");
    assert!(upload_files(&spool_b).is_empty(), "the other replica stores nothing of it");
    assert_eq!(std::fs::metadata(spool_a.join("tus").join(format!("{id}.data"))).unwrap().len(), 2_000_000);
    // The owner goes down: the other replica says to come back later.
    a.child.start_kill().unwrap();
    a.child.wait().await.unwrap();
    let (status, head) = raw(b.addr, &format!("HEAD {path} HTTP/1.1\r\nTus-Resumable: 1.0.0\r\n")).await;
    assert_eq!(status, 423, "a HEAD while the owner is down: {head}");
    assert!(head.contains("retry-after:"), "{head}");
    let patch = format!(
        "PATCH {path} HTTP/1.1\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 2000000\r\n\
         Content-Type: application/offset+octet-stream\r\n"
    );
    let (status, head) = raw(b.addr, &patch).await;
    assert_eq!(status, 503, "a PATCH while the owner is down: {head}");
    assert!(head.contains("retry-after:"), "{head}");
    // The owner is back on its volume (at a new port, as a rescheduled pod gets a new IP).
    let a = DataplaneProcess::start(&spool_a, &snapshot_file, &["--instance", "holdfast-0"]).await;
    for admin in [a.admin, b.admin] {
        assert_eq!(push(admin, &tell_peers(3, a.addr, b.addr)).await.0, 200);
    }
    let done = tus_client::upload(Client::TusJs, &endpoint(b.addr), file, &["--upload-url", &via_b]).await;
    assert_eq!(done["status"], 200, "{done}");
    let got = delivered(&deliveries, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["sha256"], sha.as_str(), "byte-exact through two replicas and a restart");
    wait_for_files(&spool_a, &[format!("{id}.info")]).await;
    assert!(upload_files(&spool_b).is_empty());
}

/// The path and query of an absolute URL.
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.find('/').map_or("/".to_string(), |i| rest[i..].to_string())
}

fn header_of(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// One bodiless request (`first` holds the request line and fields, each ending in CRLF); its status and head,
/// with lower-case field names.
async fn raw(addr: SocketAddr, first: &str) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{first}Host: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let lower = head.lines().map(|l| match l.split_once(':') {
        Some((n, v)) => format!("{}:{v}\r\n", n.to_ascii_lowercase()),
        None => format!("{l}\r\n"),
    });
    (status, lower.collect())
}
