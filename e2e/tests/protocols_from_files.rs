//! Backend protocols chosen the Kubernetes way, end to end through the real binaries and no cluster: the
//! controller's file source reads Services, EndpointSlices, a Secret and Ingresses, and the dataplane then speaks to
//! real peers on 127.0.0.1 what those objects say —
//! - gRPC by the Service port's `appProtocol: kubernetes.io/h2c`, and by ingress-nginx's `backend-protocol: GRPC`;
//! - a WebSocket to a plain Service with no annotation at all, and to `appProtocol: kubernetes.io/wss` (TLS);
//! - HTTPS by `backend-protocol: HTTPS`, verified against the `ca.crt` of an Opaque Secret (`proxy-ssl-verify`,
//!   `proxy-ssl-secret`, `proxy-ssl-name`).

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use holdfast_e2e::binaries::locate;
use holdfast_e2e::poll;
use holdfast_e2e::process::Process;
use holdfast_e2e::stack::start_dataplane;
use holdfast_e2e::upload::{payload, post, sha256_hex};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const START: Duration = Duration::from_secs(30);
/// The name in the HTTPS upstream's certificate; not the Service's cluster name, so `proxy-ssl-name` is needed.
const FILES_NAME: &str = "files.internal.test";

/// A peer binary of the dataplane package on 127.0.0.1, and the address it printed.
async fn peer(name: &str, bin: &str, args: &[&str]) -> (Process, SocketAddr) {
    let mut command = Command::new(locate(bin, "holdfast-dataplane").unwrap());
    command.args(args);
    let process = Process::spawn(name, command).unwrap();
    let addr = process.wait_for_line(START, |line| line.strip_prefix("listening ")?.parse().ok()).await.unwrap();
    (process, addr)
}

fn service(name: &str, port: u16, app_protocol: Option<&str>) -> String {
    let app_protocol = app_protocol.map(|p| format!(", appProtocol: {p}")).unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: apps}}\n\
         spec: {{ports: [{{name: main, port: {port}{app_protocol}}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: {name}-1, namespace: apps, labels: {{kubernetes.io/service-name: {name}}}}}\n\
         addressType: IPv4\nports: [{{name: main, port: PORT_{name}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n---\n"
    )
}

fn ingress(name: &str, annotations: &[(&str, &str)], rules: &[(&str, &str, u16)]) -> String {
    let annotations: Vec<String> =
        annotations.iter().map(|(k, v)| format!("nginx.ingress.kubernetes.io/{k}: \"{v}\"")).collect();
    let rules: Vec<String> = rules
        .iter()
        .map(|(host, service, port)| {
            format!(
                "    - host: {host}\n      http: {{paths: [{{path: /, pathType: Prefix, \
                 backend: {{service: {{name: {service}, port: {{number: {port}}}}}}}}}]}}\n"
            )
        })
        .collect();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: apps\n  \
         annotations: {{{}}}\nspec:\n  ingressClassName: holdfast\n  rules:\n{}---\n",
        annotations.join(", "),
        rules.concat()
    )
}

fn objects(ports: &[(&str, SocketAddr)], ca_pem: &str) -> String {
    let mut text = String::from(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: holdfast}\n\
         spec: {controller: holdfast.io/ingress-controller}\n---\n",
    );
    text += &service("echo-h2c", 9000, Some("kubernetes.io/h2c"));
    text += &service("echo-plain", 9000, None);
    text += &service("chat", 80, None);
    text += &service("chat-tls", 443, Some("kubernetes.io/wss"));
    text += &service("files", 443, None);
    let indented: String = ca_pem.lines().map(|line| format!("    {line}\n")).collect();
    text += &format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: files-ca, namespace: apps}}\ntype: Opaque\n\
         stringData:\n  ca.crt: |\n{indented}---\n"
    );
    text += &ingress(
        "by-app-protocol",
        &[],
        &[("grpc.test", "echo-h2c", 9000), ("chat.test", "chat", 80), ("chat-tls.test", "chat-tls", 443)],
    );
    text += &ingress("by-annotation", &[("backend-protocol", "GRPC")], &[("grpc-nginx.test", "echo-plain", 9000)]);
    text += &ingress(
        "files",
        &[
            ("backend-protocol", "HTTPS"),
            ("proxy-ssl-verify", "on"),
            ("proxy-ssl-secret", "apps/files-ca"),
            ("proxy-ssl-name", FILES_NAME),
        ],
        &[("files.test", "files", 443)],
    );
    for (name, addr) in ports {
        text = text.replace(&format!("PORT_{name}}}"), &format!("{}}}", addr.port()));
    }
    text
}

/// One gRPC unary call (`holdfast.test.Echo/Unary`) over h2c: the status, the message and the `grpc-status` trailer.
async fn grpc_unary(dataplane: SocketAddr, host: &str, message: &[u8]) -> anyhow::Result<(u16, Bytes, String)> {
    let stream = tokio::net::TcpStream::connect(dataplane).await?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut framed = vec![0u8];
    framed.extend((message.len() as u32).to_be_bytes());
    framed.extend(message);
    let request = http::Request::post(format!("http://{host}/holdfast.test.Echo/Unary"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(framed)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let collected = response.into_body().collect().await?;
    let grpc_status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string();
    let body = collected.to_bytes();
    // One message back: a 5-byte prefix, then the message.
    Ok((status, body.slice(5.min(body.len())..), grpc_status))
}

/// A WebSocket to `host` through the dataplane: the peer's greeting, then one echo.
async fn websocket_greeting_and_echo(dataplane: SocketAddr, host: &str) -> anyhow::Result<String> {
    let tcp = tokio::net::TcpStream::connect(dataplane).await?;
    let (mut ws, response) = tokio_tungstenite::client_async(format!("ws://{host}/socket"), tcp).await?;
    anyhow::ensure!(response.status() == 101, "handshake answered {}", response.status());
    let greeting = match ws.next().await {
        Some(Ok(Message::Text(text))) => text.to_string(),
        other => anyhow::bail!("no greeting: {other:?}"),
    };
    ws.send(Message::text("ping through holdfast")).await?;
    match ws.next().await {
        Some(Ok(Message::Text(text))) if text.as_str() == "ping through holdfast" => Ok(greeting),
        other => anyhow::bail!("no echo: {other:?}"),
    }
}

/// `check` until it succeeds (the controller's first push takes a moment), for at most [`START`].
async fn eventually<T>(what: &str, check: impl AsyncFn() -> anyhow::Result<T>) -> T {
    let found = poll::until(what, START, async || check().await.map(Some)).await;
    found.unwrap_or_else(|error| panic!("{error:#}"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_protocol_and_backend_protocol_choose_grpc_websocket_and_https_end_to_end() {
    let work = tempfile::tempdir().unwrap();
    let (ws_ca, files_ca) = (work.path().join("ws-ca.pem"), work.path().join("files-ca.pem"));
    let (_grpc, grpc) = peer("grpc peer", "holdfast-grpc-peer", &["--listen", "127.0.0.1:0"]).await;
    let (_chat, chat) = peer("ws peer", "holdfast-ws-peer", &["serve", "--listen", "127.0.0.1:0"]).await;
    let ws_tls = ["serve", "--listen", "127.0.0.1:0", "--tls-self-signed", "chat.apps.svc", "--write-ca"];
    let mut ws_tls: Vec<&str> = ws_tls.to_vec();
    ws_tls.push(ws_ca.to_str().unwrap());
    let (_chat_tls, chat_tls) = peer("wss peer", "holdfast-ws-peer", &ws_tls).await;
    let deliveries = work.path().join("files.jsonl");
    let files_args =
        ["--listen", "127.0.0.1:0", "--tls-self-signed", FILES_NAME, "--write-ca", files_ca.to_str().unwrap()];
    let mut files_args: Vec<&str> = files_args.to_vec();
    files_args.extend(["--deliveries", deliveries.to_str().unwrap()]);
    let (_files, files) = peer("https upstream", "holdfast-hash-upstream", &files_args).await;

    let dir = work.path().join("objects");
    std::fs::create_dir(&dir).unwrap();
    let ports = [("echo-h2c", grpc), ("echo-plain", grpc), ("chat", chat), ("chat-tls", chat_tls), ("files", files)];
    std::fs::write(dir.join("apps.yaml"), objects(&ports, &read(&files_ca))).unwrap();

    let (_dataplane, dataplane, admin) = start_dataplane(&[]).await.unwrap();
    let mut command = Command::new(locate("holdfast-controller", "holdfast-controller").unwrap());
    command.arg("--from-dir").arg(&dir);
    command.args(["--admin", "127.0.0.1:0", "--dataplane-url", &format!("http://{admin}/config")]);
    let controller = Process::spawn("controller", command).unwrap();

    for host in ["grpc.test", "grpc-nginx.test"] {
        // Until the controller's first push the dataplane answers 404.
        let (message, grpc_status) = eventually(&format!("a gRPC call to {host}"), async || {
            let (status, message, grpc_status) = grpc_unary(dataplane, host, b"hello").await?;
            anyhow::ensure!(status == 200, "answered {status}");
            Ok((message, grpc_status))
        })
        .await;
        assert_eq!(grpc_status, "0", "{host}: {}", String::from_utf8_lossy(&message));
        assert_eq!(&message[..], b"hello", "{host}");
    }
    let greeting = eventually("a WebSocket without annotation", async || {
        websocket_greeting_and_echo(dataplane, "chat.test").await
    })
    .await;
    assert!(greeting.starts_with(&format!("hello {chat}")), "{greeting}");
    let greeting = eventually("a WebSocket to kubernetes.io/wss", async || {
        websocket_greeting_and_echo(dataplane, "chat-tls.test").await
    })
    .await;
    assert!(greeting.starts_with(&format!("hello {chat_tls}")), "{greeting}");

    let body = payload(200_000, 7);
    let expected = sha256_hex(&body);
    let reply = eventually("an upload to the verified HTTPS backend", async || {
        let reply = post(dataplane, "files.test", "/upload", body.clone()).await?;
        anyhow::ensure!(reply.status == 200, "{} {}", reply.status, String::from_utf8_lossy(&reply.body));
        reply.json()
    })
    .await;
    assert_eq!(reply["sha256"], expected.as_str(), "{reply}");
    assert!(read(&deliveries).lines().count() >= 1);
    // Nothing the objects ask for is refused: no warning about protocols or upstream TLS.
    let warned = controller.tail();
    for reason in ["UnsupportedAppProtocol", "BackendProtocolConflict", "UpstreamTls", "InvalidAnnotation"] {
        assert!(!warned.contains(reason), "the controller warned {reason}:\n{warned}");
    }
}
