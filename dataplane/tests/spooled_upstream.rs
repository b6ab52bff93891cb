//! Spooled request bodies of known length (Buffered, and Tee with a declared length) go to the upstream over
//! Holdfast's own HTTP/1.1 connections, sent from the spool (read back where the bytes are in the file): the
//! body arrives intact, an interim response does not stop it, an early answer does (and its connection is not
//! reused), a kept-alive connection carries the next upload, and an upstream that closes while a Tee body waits for
//! its client is replayed at once rather than when the client's next bytes come.
//!
//! The upstream here is a scripted TCP server, because the point is what it does on cue: answer `100 Continue`
//! unasked, answer before the body is complete, close mid-body.

mod support;

use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::client::hex;
use support::{snapshot, upload, Harness, Upload, MB};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted upstream does with one request.
#[derive(Clone, Copy)]
enum Plan {
    /// Reads the whole body and answers 200 with its SHA-256; first sends `100 Continue` as `interim` says.
    Answer { interim: Interim },
    /// Answers 413 (keeping the connection open) as soon as the head is in, without reading the body.
    Early413,
    /// Reads this many bytes of the body, then closes without answering.
    CloseAfter(u64),
}

/// Whether (and how) the upstream sends `100 Continue` unasked before it reads the body.
#[derive(Clone, Copy, Debug)]
enum Interim {
    No,
    /// In one write.
    Whole,
    /// In two writes 300 ms apart, so that Holdfast, blocked sending the body meanwhile, reads half a head first.
    Split,
}

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    connection: usize,
    /// When its connection was accepted, and when the request ended (answered or closed).
    accepted: Instant,
    ended: Instant,
    body_bytes: u64,
}

struct Scripted {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    /// Serves connections; `plan(connection, request)` says what to do with each request, numbered in the order
    /// they arrive over all connections.
    async fn start(plan: impl Fn(usize, usize) -> Plan + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (plan, record) = (Arc::new(plan), seen.clone());
        let requests = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            for connection in 0.. {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (plan, record, requests) = (plan.clone(), record.clone(), requests.clone());
                tokio::spawn(serve(stream, connection, move |c| plan(c, requests.fetch_add(1, SeqCst)), record));
            }
        });
        Scripted { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(mut stream: TcpStream, connection: usize, plan: impl Fn(usize) -> Plan, record: Arc<Mutex<Vec<Seen>>>) {
    let accepted = Instant::now();
    let mut buf = Vec::new();
    loop {
        let Some(len) = read_head(&mut stream, &mut buf).await else { return };
        let plan = plan(connection);
        let (mut hasher, mut got) = (Sha256::new(), 0u64);
        let want = match plan {
            Plan::Answer { interim: Interim::Whole } => {
                stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.unwrap();
                len
            }
            Plan::Answer { interim: Interim::Split } => {
                stream.write_all(b"HTTP/1.1 100 Cont").await.unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
                stream.write_all(b"inue\r\n\r\n").await.unwrap();
                len
            }
            Plan::Answer { interim: Interim::No } => len,
            Plan::Early413 => 0,
            Plan::CloseAfter(n) => n.min(len),
        };
        while got < want {
            if buf.is_empty() {
                let mut chunk = vec![0u8; 256 * 1024];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let n = buf.len().min((want - got) as usize);
            hasher.update(&buf[..n]);
            buf.drain(..n);
            got += n as u64;
        }
        let sha256 = hex(&hasher.finalize());
        let seen = Seen { connection, accepted, ended: Instant::now(), body_bytes: got };
        record.lock().unwrap().push(seen);
        let answer = match plan {
            Plan::Answer { .. } => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{sha256}", sha256.len()),
            Plan::Early413 => "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n\r\ntoo large".to_string(),
            Plan::CloseAfter(_) => return,
        };
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        if matches!(plan, Plan::Early413) {
            // The connection is left open, so that Holdfast must know by itself not to reuse it: after a pause in
            // which its sending blocks, whatever it sends is read. A request head in it (the body is pseudo-random)
            // is a further request on this connection, recorded as one.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut seen_bytes = std::mem::take(&mut buf);
            let mut chunk = vec![0u8; 256 * 1024];
            loop {
                if seen_bytes.windows(11).any(|w| w == b" HTTP/1.1\r\n") {
                    let seen = Seen { connection, accepted, ended: Instant::now(), body_bytes: 0 };
                    record.lock().unwrap().push(seen);
                    return;
                }
                // Only a tail is kept, for a head split between two reads.
                let keep = seen_bytes.len().saturating_sub(64);
                seen_bytes.drain(..keep);
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen_bytes.extend_from_slice(&chunk[..n]),
                }
            }
        }
    }
}

/// Reads a request head into `buf` (leaving any body bytes after it) and returns its Content-Length.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<u64> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).to_ascii_lowercase();
            buf.drain(..end + 4);
            let len = head.lines().find_map(|line| line.strip_prefix("content-length:"))?;
            return len.trim().parse().ok();
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interim_100_continue_sent_unasked_does_not_stop_the_body_also_when_it_comes_in_two_parts() {
    for interim in [Interim::Whole, Interim::Split] {
        let upstream = Scripted::start(move |_, _| Plan::Answer { interim }).await;
        for mode in ["Buffered", "Tee"] {
            // Short timeouts, so that a body stopped by the interim response fails the test quickly.
            let policy = format!(r#"{{"mode":"{mode}","timeouts":{{"upstreamReadMs":5000,"upstreamSendMs":5000}}}}"#);
            let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], &policy)), 0).await;
            // Large enough to go through the spool file, past the memory buffer and the first write batches.
            let result = upload(dataplane.addr, Upload::new("/up", 20 * MB)).await.unwrap();
            assert_eq!(result.status, 200, "{interim:?} {mode}: {}", result.text());
            assert_eq!(
                result.text(),
                result.sent_sha256,
                "{interim:?} {mode}: the upstream got the client's exact bytes"
            );
            dataplane.assert_spool_clean().await;
        }
        let seen = upstream.seen();
        assert_eq!(seen.len(), 2, "{interim:?}: one delivery per upload: {seen:?}");
        assert!(seen.iter().all(|s| s.body_bytes == 20 * MB));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spooled_upload_reuses_a_kept_alive_connection_but_not_one_answered_early() {
    // The third request is answered before its body is read.
    const EARLY: usize = 2;
    let upstream =
        Scripted::start(
            |_, request| if request == EARLY { Plan::Early413 } else { Plan::Answer { interim: Interim::No } },
        )
        .await;
    // Short timeouts, so that a request sent on the early answer's connection fails the test quickly.
    let policy = r#"{"mode":"Buffered","timeouts":{"upstreamReadMs":5000,"upstreamSendMs":5000}}"#;
    let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], policy)), 0).await;
    // In memory with its head, and larger ones read back from the spool file.
    let sizes = [64 * 1024, 3 * MB, 64 * MB, 3 * MB, 20 * MB, 64 * 1024];
    for (i, len) in sizes.into_iter().enumerate() {
        let result = upload(dataplane.addr, Upload::new("/up", len)).await.unwrap();
        if i == EARLY {
            assert_eq!(result.status, 413, "{}", result.text());
            assert_eq!(result.text(), "too large");
        } else {
            assert_eq!(result.status, 200, "upload {i}: {}", result.text());
            assert_eq!(result.text(), result.sent_sha256, "upload {i}");
        }
    }
    let connections: Vec<usize> = upstream.seen().iter().map(|s| s.connection).collect();
    assert_eq!(
        connections.len(),
        sizes.len(),
        "one request each, none on the early answer's connection: {connections:?}"
    );
    let answered_early = connections[EARLY];
    assert!(
        !connections[EARLY + 1..].contains(&answered_early),
        "the early answer's connection is reused: {connections:?}"
    );
    // Each of the two workers keeps its own connections: two, and one more for the one closed after the early answer.
    let mut distinct = connections.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() <= 3, "kept-alive connections were not reused: {connections:?}");
    dataplane.assert_spool_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tee_upload_is_replayed_at_once_when_the_upstream_closes_while_the_client_pauses() {
    // The first connection takes 1 MB and closes (with bytes unread, so its side resets); the client sends 2 MB,
    // pauses for 3 s, and sends 2 MB more.
    let upstream = Scripted::start(|connection, _| match connection {
        0 => Plan::CloseAfter(MB),
        _ => Plan::Answer { interim: Interim::No },
    })
    .await;
    let policy = r#"{"mode":"Tee"}"#;
    let dataplane = Harness::start(Some(&snapshot(1, &[upstream.addr], policy)), 0).await;
    let slow = Upload { pause: Some((2 * MB, Duration::from_secs(3))), ..Upload::new("/up", 4 * MB) };
    let result = upload(dataplane.addr, slow).await.unwrap();
    assert_eq!(result.status, 200, "{}", result.text());
    assert_eq!(result.text(), result.sent_sha256, "the replay sent the client's exact bytes");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let (closed, replay) = (&seen[0], &seen[1]);
    assert_eq!((closed.connection, closed.body_bytes, replay.connection), (0, MB, 1));
    // Noticed while waiting for the client's bytes, not when they come.
    let noticed_after = replay.accepted.duration_since(closed.ended);
    assert!(noticed_after < Duration::from_millis(1500), "replayed {noticed_after:?} after the close");
    dataplane.assert_spool_clean().await;
}
