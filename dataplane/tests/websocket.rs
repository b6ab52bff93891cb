//! WebSocket (HTTP/1.1 Upgrade) tunnels through the dataplane to `holdfast-ws-peer`: echo and server push from the
//! plain and the TLS listener to plain and TLS (`wss`) upstreams, a refused upgrade passed on as it is, an upstream
//! SIGKILLed under its tunnel, and the tunnels' idle limit. The `…_directly` tests run the same helpers against the
//! peer without the dataplane, so that a failure through the dataplane is the dataplane's.

mod support;

use futures::SinkExt;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::routes::{routed, tls_unverified};
use support::tls::{ClientTls, ListenerCert};
use support::ws::{closed_within, connect, echo_and_push, hello, next_text, STEP};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

/// A dataplane routing everything to `peers` (over TLS, unverified, when `wss`), with a certificate for `ws.test`
/// on its TLS listener.
async fn dataplane_to(peers: &[&PeerProcess], wss: bool, policy: Value) -> (Harness, ListenerCert) {
    let backend = if wss { json!({"tls": tls_unverified()}) } else { json!({}) };
    let addrs: Vec<SocketAddr> = peers.iter().map(|p| p.addr).collect();
    let mut snapshot = routed(1, &addrs, backend, policy);
    let cert = ListenerCert::new("ws.test");
    cert.add_to(&mut snapshot);
    (Harness::start(Some(&snapshot.to_string()), 0).await, cert)
}

/// The `nth` `upgrade` line the peer printed (the path and forwarding headers it was sent), as JSON.
async fn upgrade_seen(peer: &PeerProcess, nth: usize) -> Value {
    let line = peer.lines.wait_for_nth(nth, STEP, |l| l.starts_with("upgrade ")).await;
    serde_json::from_str(line.splitn(3, ' ').nth(2).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_peer_greets_echoes_pushes_and_records_headers_directly() {
    for tls in [false, true] {
        let peer = PeerProcess::ws(tls, &[]).await;
        let client = peer.ca_pem.as_ref().map(|ca| ClientTls::ca_pem(ca, peer::TLS_NAME, &[b"http/1.1"]));
        let mut ws = connect(peer.addr, client.as_ref(), "/chat?room=1").await.unwrap();
        assert_eq!(hello(&mut ws).await, peer.addr);
        echo_and_push(&mut ws).await;
        let seen = upgrade_seen(&peer, 1).await;
        assert_eq!(seen["path"], "/chat");
        assert_eq!(seen["x-request-id"], Value::Null, "nothing added without a proxy: {seen}");
        if tls {
            peer.lines.wait_for(&format!("sni 1 {}", peer::TLS_NAME), STEP).await;
        }
        ws.close(None).await.unwrap();
        peer.lines.wait_for("closed 1 by the client", STEP).await;
    }
}

/// Echo and push through a tunnel from one of the dataplane's listeners to a plain or `wss` upstream, and what the
/// upstream was told about the client.
async fn tunnel_echoes_and_pushes(client_tls: bool, wss: bool) {
    let peer = PeerProcess::ws(wss, &[]).await;
    let (dataplane, cert) = dataplane_to(&[&peer], wss, json!({})).await;
    let client = client_tls.then(|| cert.client(&[b"http/1.1"]));
    let listener = if client_tls { dataplane.tls_addr } else { dataplane.addr };
    let mut ws = connect(listener, client.as_ref(), "/chat?room=1").await.unwrap();
    assert_eq!(hello(&mut ws).await, peer.addr);
    let open = &dataplane.dp.metrics.tunnels_open;
    assert_eq!(open.get(), 1, "the greeting came through the tunnel, which is counted");
    echo_and_push(&mut ws).await;
    let seen = upgrade_seen(&peer, 1).await;
    assert_eq!(seen["path"], "/chat");
    assert_eq!(seen["x-forwarded-proto"], if client_tls { "https" } else { "http" }, "{seen}");
    assert!(seen["x-request-id"].as_str().is_some_and(|id| !id.is_empty()), "an X-Request-Id: {seen}");
    // The client's close frame crosses the tunnel and the peer's answer comes back.
    ws.close(None).await.unwrap();
    peer.lines.wait_for("closed 1 by the client", STEP).await;
    // The peer closed its end; the tunnel passed that on and lasts until the client closes its socket too.
    drop(ws);
    let started = Instant::now();
    while open.get() != 0 && started.elapsed() < STEP {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(open.get(), 0, "both sides closed: the tunnel is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_from_the_plain_listener_to_a_plain_upstream_echoes_and_pushes() {
    tunnel_echoes_and_pushes(false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_from_the_plain_listener_to_a_wss_upstream_echoes_and_pushes() {
    tunnel_echoes_and_pushes(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_from_the_tls_listener_to_a_plain_upstream_echoes_and_pushes() {
    tunnel_echoes_and_pushes(true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_from_the_tls_listener_to_a_wss_upstream_echoes_and_pushes() {
    tunnel_echoes_and_pushes(true, true).await;
}

/// An Upgrade request written by hand, and the response read as it comes: status, head, body.
async fn raw_upgrade(addr: SocketAddr) -> (u16, String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = "GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    tcp.write_all(request.as_bytes()).await.unwrap();
    let read = client::read_response(&mut tcp);
    let (status, head, body) = tokio::time::timeout(STEP, read).await.expect("a response in time").unwrap();
    (status, head.to_ascii_lowercase(), String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_peer_refuses_upgrades_with_a_complete_response_directly() {
    let peer = PeerProcess::ws(false, &["--refuse", "426"]).await;
    let (status, head, body) = raw_upgrade(peer.addr).await;
    assert_eq!(status, 426);
    assert!(head.contains(&format!("x-refused-by: {}", peer.addr)), "{head}");
    assert!(body.starts_with(&format!("refused by {}", peer.addr)), "{body}");
    peer.lines.wait_for("refused 1 426", STEP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_refused_by_the_upstream_with_400_or_426_reaches_the_client_unchanged() {
    for refusal in ["400", "426"] {
        let peer = PeerProcess::ws(false, &["--refuse", refusal]).await;
        let (dataplane, _) = dataplane_to(&[&peer], false, json!({})).await;
        let (status, head, body) = raw_upgrade(dataplane.addr).await;
        assert_eq!(status.to_string(), refusal, "{head}{body}");
        assert!(head.contains(&format!("x-refused-by: {}", peer.addr)), "the upstream's own response: {head}");
        assert!(body.starts_with(&format!("refused by {}", peer.addr)), "{body}");
        // The peer prints after it answered: wait for the line, then check there is no second one.
        peer.lines.wait_for("refused 1 ", STEP).await;
        assert_eq!(peer.lines.starting_with("refused ").len(), 1, "asked once, not replayed");
        assert!(!head.starts_with("http/1.1 101"), "{head}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_peer_killed_closes_its_connections_directly() {
    let mut peer = PeerProcess::ws(false, &[]).await;
    let mut ws = connect(peer.addr, None, "/chat").await.unwrap();
    hello(&mut ws).await;
    peer.kill().await;
    closed_within(&mut ws, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_upstream_of_a_tunnel_closes_it_promptly_and_a_reconnect_lands_on_the_other_endpoint() {
    let mut peers = [PeerProcess::ws(false, &[]).await, PeerProcess::ws(false, &[]).await];
    let (dataplane, _) = dataplane_to(&[&peers[0], &peers[1]], false, json!({})).await;
    let mut ws = connect(dataplane.addr, None, "/chat").await.unwrap();
    let holder = hello(&mut ws).await;
    let (dead, alive) = if holder == peers[0].addr { (0, 1) } else { (1, 0) };
    peers[dead].kill().await;
    let took = closed_within(&mut ws, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "the client learnt of the dead upstream after {took:?}");
    // Whichever endpoint the balancer tries first, the refused one is not the answer.
    let mut again = connect(dataplane.addr, None, "/chat").await.expect("a reconnect succeeds");
    assert_eq!(hello(&mut again).await, peers[alive].addr);
    echo_and_push(&mut again).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tunnel_is_closed_after_tunnel_idle_ms_but_an_active_one_stays_open() {
    let peer = PeerProcess::ws(false, &[]).await;
    let (dataplane, _) = dataplane_to(&[&peer], false, json!({"timeouts": {"tunnelIdleMs": 1000}})).await;
    let mut idle = connect(dataplane.addr, None, "/idle").await.unwrap();
    hello(&mut idle).await;
    let idle_since = Instant::now();
    let mut active = connect(dataplane.addr, None, "/active").await.unwrap();
    hello(&mut active).await;
    // A message every 250 ms for 3 s: never a second without bytes.
    let chatter = tokio::spawn(async move {
        for i in 0..12 {
            active.send(Message::text(format!("still here {i}"))).await.unwrap();
            assert_eq!(next_text(&mut active).await, format!("still here {i}"));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        active
    });
    closed_within(&mut idle, Duration::from_secs(5)).await;
    let idle_for = idle_since.elapsed();
    assert!(idle_for >= Duration::from_millis(900), "closed after only {idle_for:?} of silence");
    assert!(idle_for < Duration::from_secs(3), "closed after {idle_for:?}, long past tunnelIdleMs");
    let mut active = chatter.await.expect("the active tunnel kept echoing past the idle limit");
    active.send(Message::text("last")).await.unwrap();
    assert_eq!(next_text(&mut active).await, "last");
    // Both ends of the idle tunnel were closed, the upstream's too.
    peer.lines.wait_for_nth(1, STEP, |l| l.starts_with("closed ")).await;
}
