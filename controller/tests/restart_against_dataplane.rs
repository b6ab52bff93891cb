//! A controller restarted against a dataplane that is serving 5,000 Ingresses pushes one complete snapshot, and no
//! request is answered 404 or held meanwhile (issue 23, "no partial snapshots"). The real dataplane runs
//! in-process with real upstreams behind it; each controller run reads the same directory with the `--from-dir`
//! source, in-process, and clients keep asking for hosts spread over the whole table throughout.
//!
//! The files have `bench/ingresses.sh`'s shape and sort as a first scan reads them: the IngressClass, then the
//! Ingresses with their Services, then the EndpointSlices. A controller that published before reading every file
//! would push first no hosts (404s), then hosts with no endpoints (requests held until an endpoint comes).

mod support;

use bytes::Bytes;
use holdfast_controller::drain::{self, Trigger};
use holdfast_controller::push::{DataplaneClient, PushTiming};
use holdfast_controller::run::{run, RunError, Settings, Source};
use holdfast_controller::translate::Config;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::dataplane::RealDataplane;
use support::scrape::{sample, scrape};
use support::upstream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const N: usize = 5000;
/// Distinct upstreams; Ingress `i` goes to upstream `i % UPSTREAMS`.
const UPSTREAMS: usize = 4;
const CLIENTS: usize = 2;
/// Each client's pace: enough requests to land in every snapshot the restart could put in force, while leaving the
/// two cores to the controller and the dataplane.
const PACE: Duration = Duration::from_millis(2);
/// Bounds of the traffic, whatever happens: requests per client, and how long a client goes on.
const MAX_REQUESTS: u64 = 100_000;
const MAX_TRAFFIC: Duration = Duration::from_secs(240);
/// Bounded, not timed: reading 10,001 files and translating them in a debug build on a loaded machine is slow,
/// but never this slow.
const CONVERGE: Duration = Duration::from_secs(180);

fn host(i: usize) -> String {
    format!("h{i}.bench.test")
}

fn upstream_name(i: usize) -> String {
    format!("upstream-{}", i % UPSTREAMS)
}

/// `class.yaml`, then per Ingress `ingress-i.yaml` (the Ingress and its Service) and `slice-i.yaml` (one endpoint).
fn write_manifests(dir: &Path, upstreams: &[SocketAddr]) {
    let class = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: holdfast}\n\
                 spec: {controller: holdfast.io/ingress-controller}\n";
    std::fs::write(dir.join("class.yaml"), class).unwrap();
    for i in 0..N {
        let ingress = format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: app-{i}, namespace: bench}}\n\
             spec:\n  ingressClassName: holdfast\n  rules:\n  - host: {}\n    http:\n      paths:\n      \
             - {{path: /, pathType: Prefix, backend: {{service: {{name: app-{i}, port: {{number: 80}}}}}}}}\n\
             ---\napiVersion: v1\nkind: Service\nmetadata: {{name: app-{i}, namespace: bench}}\n\
             spec: {{ports: [{{name: http, port: 80}}]}}\n",
            host(i)
        );
        let upstream = upstreams[i % UPSTREAMS];
        let slice = format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\naddressType: IPv4\n\
             metadata: {{name: app-{i}-x, namespace: bench, labels: {{kubernetes.io/service-name: app-{i}}}}}\n\
             ports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: [{}], conditions: {{ready: true}}}}]\n",
            upstream.port(),
            upstream.ip()
        );
        std::fs::write(dir.join(format!("ingress-{i}.yaml")), ingress).unwrap();
        std::fs::write(dir.join(format!("slice-{i}.yaml")), slice).unwrap();
    }
}

/// Whether the snapshot in force routes every host to a backend whose one endpoint is that host's upstream.
fn complete(dataplane: &RealDataplane, upstreams: &[SocketAddr]) -> bool {
    let active = dataplane.dp.config.current();
    (0..N).all(|i| {
        let Some(route) = active.routes.find(&host(i), "/") else { return false };
        let endpoints = active.backends.get(&*route.backend).map(|b| b.addresses().collect::<Vec<_>>());
        endpoints == Some(vec![upstreams[i % UPSTREAMS]])
    })
}

/// Waits until the dataplane holds a complete snapshot newer than `after`; returns its version.
async fn wait_complete(dataplane: &RealDataplane, upstreams: &[SocketAddr], after: u64) -> u64 {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let version = dataplane.dp.config.current().version.unwrap_or(0);
        if version > after && complete(dataplane, upstreams) {
            return version;
        }
        assert!(Instant::now() < deadline, "no complete snapshot newer than version {after} within {CONVERGE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One controller run on `dir`, with its admin listener.
struct Controller {
    trigger: Trigger,
    task: JoinHandle<Result<(), RunError>>,
    admin: SocketAddr,
}

impl Controller {
    async fn start(dir: &Path, dataplane: &RealDataplane) -> Self {
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = admin.local_addr().unwrap();
        let settings = Settings {
            translate: Config::default(),
            dataplane: DataplaneClient::new(&dataplane.config_url()).unwrap(),
            timing: PushTiming::default(),
            admin: Some(admin),
        };
        let (trigger, shutdown) = drain::channel();
        let task = tokio::spawn(run(Source::Files(dir.to_path_buf()), settings, shutdown));
        Controller { trigger, task, admin: addr }
    }

    async fn stop(self) {
        self.trigger.fire();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.unwrap().unwrap().unwrap();
    }
}

/// What the clients saw: requests answered by the right upstream, and every other outcome.
#[derive(Default)]
struct Seen {
    answered: AtomicU64,
    wrong: Mutex<Vec<String>>,
    /// The longest a request took, for the failure messages only: the dataplane's own record decides "held".
    slowest: Mutex<Duration>,
}

impl Seen {
    fn answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }

    async fn wait_answered(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.answered() < n && self.wrong.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the clients got {} answers of {n} within 30 s", self.answered());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Asks the dataplane at `addr` for host after host on one keep-alive connection until `stop`, checking that each
/// answer is 200 from the host's upstream. Client `id` starts at host `id` and strides over all of them.
async fn client(id: usize, addr: SocketAddr, seen: Arc<Seen>, mut stop: watch::Receiver<bool>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let mut pace = tokio::time::interval(PACE);
    let ends = Instant::now() + MAX_TRAFFIC;
    for n in 0..MAX_REQUESTS {
        tokio::select! {
            _ = pace.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        if Instant::now() > ends {
            return;
        }
        // 7,919 is prime to 5,000: each client visits every host before it asks for one again.
        let i = (id + n as usize * 7919) % N;
        let request = http::Request::get("/").header(http::header::HOST, host(i)).body(Empty::<Bytes>::new()).unwrap();
        let started = Instant::now();
        let outcome = match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                let body = response.into_body().collect().await.map(|b| b.to_bytes());
                (status, body.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default())
            }
            Err(error) => {
                seen.wrong.lock().unwrap().push(format!("{}: {error}", host(i)));
                return;
            }
        };
        let took = started.elapsed();
        let mut slowest = seen.slowest.lock().unwrap();
        *slowest = (*slowest).max(took);
        drop(slowest);
        if outcome == (http::StatusCode::OK, upstream::answer(&upstream_name(i), &host(i))) {
            seen.answered.fetch_add(1, Ordering::SeqCst);
        } else {
            seen.wrong.lock().unwrap().push(format!("{}: {} {:?} after {took:?}", host(i), outcome.0, outcome.1));
        }
    }
}

/// The clients, running until stopped.
struct Traffic {
    seen: Arc<Seen>,
    stop: watch::Sender<bool>,
    clients: Vec<JoinHandle<()>>,
}

impl Traffic {
    fn start(dataplane: SocketAddr) -> Self {
        let seen = Arc::new(Seen::default());
        let (stop, stopped) = watch::channel(false);
        let clients =
            (0..CLIENTS).map(|id| tokio::spawn(client(id, dataplane, seen.clone(), stopped.clone()))).collect();
        Traffic { seen, stop, clients }
    }

    /// Stops the clients once their requests in flight are answered.
    async fn stop(self) {
        self.stop.send_replace(true);
        for client in self.clients {
            tokio::time::timeout(Duration::from_secs(30), client).await.expect("a request never ended").unwrap();
        }
    }
}

/// The dataplane's record of waits for an endpoint: how many delivered requests, and their waits summed (s).
async fn waits(dataplane: &RealDataplane) -> (f64, f64) {
    let text = scrape(dataplane.admin).await;
    let count = sample(&text, "holdfast_upstream_wait_seconds_count").unwrap_or(0.0);
    (count, sample(&text, "holdfast_upstream_wait_seconds_sum").unwrap_or(0.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_restarted_against_a_serving_dataplane_pushes_one_complete_snapshot_and_no_request_notices() {
    let started = Instant::now();
    let mut upstreams = Vec::new();
    for k in 0..UPSTREAMS {
        upstreams.push(upstream::start(&upstream_name(k)).await);
    }
    let dataplane = RealDataplane::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_manifests(dir.path(), &upstreams);

    let first = Controller::start(dir.path(), &dataplane).await;
    let before = wait_complete(&dataplane, &upstreams, 0).await;
    eprintln!("controller #1 converged at version {before} after {:?}", started.elapsed());
    let (count_before, waited_before) = waits(&dataplane).await;

    let traffic = Traffic::start(dataplane.listen);
    let seen = traffic.seen.clone();
    seen.wait_answered(200).await;
    first.stop().await;
    let restarted_at = (Instant::now(), seen.answered());
    let second = Controller::start(dir.path(), &dataplane).await;
    let after = wait_complete(&dataplane, &upstreams, before).await;
    let pushed_at = (Instant::now(), seen.answered());
    // Nothing signals that no further push is coming: traffic goes on for longer than the pusher's version check
    // (every second) and for a few hundred more requests, and whatever was pushed meanwhile is counted below.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    seen.wait_answered(pushed_at.1 + 300).await;
    let controller = scrape(second.admin).await;
    traffic.stop().await;
    second.stop().await;
    let (count_after, waited_after) = waits(&dataplane).await;
    let answered = seen.answered();
    eprintln!(
        "controller #2 pushed after {:?} with {} requests answered meanwhile; {answered} in all; slowest {:?}; \
         whole test {:?}",
        pushed_at.0 - restarted_at.0,
        pushed_at.1 - restarted_at.1,
        seen.slowest.lock().unwrap(),
        started.elapsed()
    );

    // (a) Every request before, during and after the restart was answered by its host's upstream: no 404 from a
    // snapshot without the host, no 503 from one whose backend had no endpoint.
    let wrong = seen.wrong.lock().unwrap();
    assert!(
        wrong.is_empty(),
        "{} requests not answered by their upstream, first: {:?}",
        wrong.len(),
        &wrong[..5.min(wrong.len())]
    );
    assert!(pushed_at.1 > restarted_at.1, "no request was answered while the second controller started");

    // (b) None was held: the dataplane records each delivered request's wait for an endpoint that would take it
    // (`upstream_wait_seconds`); every one of ours was delivered at the first pick, with no wait at all.
    assert_eq!(count_after - count_before, answered as f64, "every request answered was delivered once");
    assert_eq!(
        waited_after,
        waited_before,
        "requests waited for an endpoint ({} s in all)",
        waited_after - waited_before
    );

    // (c) The restarted controller sent one request that changed the dataplane's config, the full snapshot, and the
    // dataplane applied exactly one snapshot (each accepted push takes the next version): the complete one.
    let pushes =
        |kind: &str| sample(&controller, &format!("holdfast_controller_push_requests_total{{kind=\"{kind}\"}}"));
    let applied = after - before;
    assert_eq!(
        (pushes("full"), pushes("delta").unwrap_or(0.0), applied),
        (Some(1.0), 0.0, 1),
        "the restarted controller sent {:?} full snapshots and {:?} deltas; the dataplane applied {applied} \
         snapshots up to the complete one",
        pushes("full"),
        pushes("delta")
    );
    assert_eq!(dataplane.dp.config.current().version, Some(after), "nothing was applied after the complete snapshot");
    assert_eq!(sample(&controller, "holdfast_controller_accepted_version"), Some(after as f64));
}
