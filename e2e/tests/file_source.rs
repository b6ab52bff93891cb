//! The controller's file source driving the real dataplane, with real upstream processes on 127.0.0.1 — no
//! cluster needed, so this runs everywhere: the shipped example objects route uploads, an edited EndpointSlice moves
//! traffic to another upstream within a second, and a broken file keeps the previous routes and says why.

use holdfast_e2e::binaries::{locate, workspace_root};
use holdfast_e2e::process::Process;
use holdfast_e2e::stack::{start_dataplane, start_local_upstream};
use holdfast_e2e::upload::{payload, post};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn deliveries(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

/// Writes a file the way an editor or `kubectl`-generated output would land: whole, by rename.
fn replace(path: &Path, text: &str) {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

fn slice_pointing_at(template: &str, port: u16) -> String {
    template.replace("port: 3000", &format!("port: {port}"))
}

/// Uploads until one is answered 200 and recorded in `log`, for at most `limit`; returns how long it took.
async fn until_delivered_to(dataplane: SocketAddr, log: &Path, limit: Duration) -> Duration {
    let started = Instant::now();
    let before = deliveries(log);
    while started.elapsed() < limit {
        if let Ok(reply) = post(dataplane, "local.test", "/upload", payload(1000, 1)).await {
            if reply.status == 200 && deliveries(log) > before {
                return started.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no upload reached {} within {limit:?}", log.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_routes_follow_edits_within_a_second_and_survive_broken_files() {
    let work = tempfile::tempdir().unwrap();
    let (log_a, log_b) = (work.path().join("a.jsonl"), work.path().join("b.jsonl"));
    let (_upstream_a, addr_a) = start_local_upstream("upstream a", &log_a).await.unwrap();
    let (_upstream_b, addr_b) = start_local_upstream("upstream b", &log_b).await.unwrap();

    let objects = work.path().join("objects");
    std::fs::create_dir(&objects).unwrap();
    let examples = workspace_root().join("manifests/examples/local");
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, objects.join(path.file_name().unwrap())).unwrap();
        }
    }
    let slice_file = objects.join("upstream.yaml");
    let template = std::fs::read_to_string(&slice_file).unwrap();
    assert!(template.contains("port: 3000"), "the example EndpointSlice points at 127.0.0.1:3000");
    replace(&slice_file, &slice_pointing_at(&template, addr_a.port()));

    let (_dataplane, dataplane, admin) = start_dataplane(&[]).await.unwrap();
    let mut command = Command::new(locate("holdfast-controller", "holdfast-controller").unwrap());
    command.arg("--from-dir").arg(&objects);
    command.args(["--admin", "127.0.0.1:0", "--dataplane-url", &format!("http://{admin}/config")]);
    let controller = Process::spawn("controller", command).unwrap();

    // The example objects route uploads to the first upstream.
    until_delivered_to(dataplane, &log_a, Duration::from_secs(30)).await;

    // Editing the EndpointSlice moves the traffic.
    replace(&slice_file, &slice_pointing_at(&template, addr_b.port()));
    let took = until_delivered_to(dataplane, &log_b, Duration::from_secs(10)).await;
    eprintln!("an edited EndpointSlice reached the dataplane after {took:?}");
    assert!(took < Duration::from_secs(1), "the edit reached the dataplane after {took:?}");

    // A broken file keeps the routes as they were, and the controller says which file and why.
    replace(&objects.join("ingress.yaml"), "apiVersion: networking.k8s.io/v1\nkind: Ingress\nspec: [unclosed\n");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let reply = post(dataplane, "local.test", "/upload", payload(1000, 2)).await.unwrap();
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    controller
        .wait_for_line(Duration::from_secs(5), |line| line.contains("ingress.yaml").then_some(()))
        .await
        .expect("the controller logs the broken file");
}
