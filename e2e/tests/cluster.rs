//! Holdfast against a real cluster. `controller_serves_a_real_cluster` runs only when `HOLDFAST_E2E_KUBECONFIG`
//! names a kubeconfig file (and as root, for the test hosts); `test_host_serves_over_its_veth` checks the
//! network-namespace plumbing alone, with no cluster, when `HOLDFAST_E2E_NETNS=1`. Without their variables both
//! print why they skipped and pass.

use holdfast_crds::{UploadPolicy, CONDITION_ACCEPTED};
use holdfast_e2e::binaries::locate;
use holdfast_e2e::netns::{in_test_range, TestHost};
use holdfast_e2e::process::Process;
use holdfast_e2e::stack::start_dataplane;
use holdfast_e2e::upload::{payload, post, sha256_hex};
use holdfast_e2e::{cluster, objects, poll};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What the controller publishes as the Ingresses' address. Only published, never assigned: test hosts use other
/// /30s of 198.18.0.0/15.
const STATUS_ADDRESS: &str = "198.18.0.1";
const WAIT: Duration = poll::MAX_WAIT;
const UPLOAD_LEN: usize = 256 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_serves_a_real_cluster() {
    let Some(kubeconfig) = std::env::var_os("HOLDFAST_E2E_KUBECONFIG") else {
        eprintln!("skipped: HOLDFAST_E2E_KUBECONFIG is not set");
        return;
    };
    let kubeconfig = Path::new(&kubeconfig);
    let client = cluster::client(kubeconfig).await.unwrap_or_else(|e| panic!("{e:#}"));
    let stack = Stack::start(&client, kubeconfig).await.unwrap_or_else(|e| panic!("setting up: {e:#}"));
    let checked = stack.check(&client).await;
    // Cleanup is a step of the test, in its runtime, and a failed one fails it. A failed check keeps the processes
    // alive until the panic, so that they print their last output as they are killed.
    if let Err(error) = checked {
        let scratch = stack.scratch;
        let cleaned = scratch.delete(&client).await.err().map(|e| format!("\nand {e:#}")).unwrap_or_default();
        panic!("{error:#}{cleaned}");
    }
    stack.stop(&client).await.unwrap_or_else(|e| panic!("{e:#}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_host_serves_over_its_veth() {
    if std::env::var("HOLDFAST_E2E_NETNS").as_deref() != Ok("1") {
        eprintln!("skipped: HOLDFAST_E2E_NETNS is not 1 (it creates a network namespace, as root)");
        return;
    }
    let host = TestHost::create().unwrap_or_else(|e| panic!("{e:#}"));
    assert!(in_test_range(host.addr) && in_test_range(host.host_addr), "{} and {}", host.addr, host.host_addr);
    let netns_list =
        || String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned();
    assert!(netns_list().contains(&host.netns), "{} was not created", host.netns);
    let upstream = start_upstream(&host).await.unwrap_or_else(|e| panic!("{e:#}"));
    let body = payload(UPLOAD_LEN, 7);
    let sent = sha256_hex(&body);
    let target = SocketAddr::from((host.addr, objects::UPSTREAM_PORT));
    let reply = post(target, "test-host", "/upload", body).await.unwrap_or_else(|e| panic!("{e:#}"));
    let json = reply.json().unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!((reply.status, json["sha256"].as_str(), json["bytes"].as_u64()), (200, Some(&*sent), Some(256 * 1024)));

    // The same through the real dataplane, from a hand-written snapshot: the path the cluster test's uploads take.
    let snapshot = std::env::temp_dir().join(format!("{}.json", host.netns));
    std::fs::write(&snapshot, snapshot_json(&host)).unwrap();
    let started = start_dataplane(&[std::ffi::OsStr::new("--config-file"), snapshot.as_os_str()]).await;
    std::fs::remove_file(&snapshot).unwrap();
    let (dataplane, dataplane_addr, _) = started.unwrap_or_else(|e| panic!("{e:#}"));
    let reply = post(dataplane_addr, "test-host", "/upload", payload(UPLOAD_LEN, 7)).await.unwrap();
    let json = reply.json().unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!((reply.status, json["sha256"].as_str()), (200, Some(&*sent)), "through the dataplane");
    drop(dataplane);
    eprintln!(
        "test host {} ({} via {} from {}): upstream pid {} got {UPLOAD_LEN} bytes, SHA-256 {sent}, directly and \
         through the dataplane",
        host.netns,
        host.addr,
        host.host_veth,
        host.host_addr,
        upstream.pid()
    );

    let (netns, veth) = (host.netns.clone(), host.host_veth.clone());
    drop(upstream);
    drop(host);
    assert!(!netns_list().contains(&netns), "{netns} was not removed");
    assert!(!Command::new("ip").args(["link", "show", &veth]).output().unwrap().status.success(), "{veth} remains");
    eprintln!("removed {netns} and {veth}");
}

/// A dataplane snapshot routing everything to the upstream in `host`.
fn snapshot_json(host: &TestHost) -> String {
    serde_json::json!({
        "version": 1,
        "hosts": [{ "host": "", "paths": [{ "path": "/", "pathType": "Prefix", "backend": "e2e/host:80" }] }],
        "backends": { "e2e/host:80": { "endpoints": [
            { "address": host.addr.to_string(), "port": objects::UPSTREAM_PORT, "ready": true },
        ] } },
    })
    .to_string()
}

/// `holdfast-hash-upstream` inside `host`, on [`objects::UPSTREAM_PORT`], once it listens.
async fn start_upstream(host: &TestHost) -> anyhow::Result<Process> {
    let bin = locate("holdfast-hash-upstream", "holdfast-dataplane")?;
    let mut command = host.command(&bin);
    command.arg("--listen").arg(SocketAddr::from((host.addr, objects::UPSTREAM_PORT)).to_string());
    let upstream = Process::spawn(&format!("upstream in {}", host.netns), command)?;
    upstream.wait_for_line(WAIT, |line| line.starts_with("listening ").then_some(())).await?;
    Ok(upstream)
}

/// Everything one cluster run started. Fields drop in order: the controller stops before anything it watches goes
/// away, the upstreams before their hosts; the namespace and IngressClass are deleted by [`Stack::stop`], last.
struct Stack {
    controller: Process,
    dataplane: Process,
    /// The dataplane's client listener.
    dataplane_addr: SocketAddr,
    upstreams: Vec<Process>,
    hosts: Vec<TestHost>,
    scratch: cluster::Scratch,
}

impl Stack {
    async fn start(client: &Client, kubeconfig: &Path) -> anyhow::Result<Self> {
        cluster::ensure_crd(client).await?;
        let name = cluster::unique_name("holdfast-e2e");
        let mut scratch = cluster::Scratch::create(client, &name).await?;
        eprintln!("namespace and IngressClass: {name}");
        match Self::start_in(client, kubeconfig, &name, &mut scratch).await {
            Ok((controller, dataplane, dataplane_addr, upstreams, hosts)) => {
                Ok(Stack { controller, dataplane, dataplane_addr, upstreams, hosts, scratch })
            }
            // Whatever was started is stopped by now; what was created in the cluster goes too.
            Err(error) => Err(match scratch.delete(client).await {
                Ok(()) => error,
                Err(cleanup) => error.context(format!("{cleanup:#}")),
            }),
        }
    }

    /// Everything but the namespace: the test hosts and their upstreams, the IngressClass and the objects, the
    /// dataplane and the controller.
    async fn start_in(
        client: &Client,
        kubeconfig: &Path,
        name: &str,
        scratch: &mut cluster::Scratch,
    ) -> anyhow::Result<(Process, Process, SocketAddr, Vec<Process>, Vec<TestHost>)> {
        let hosts = vec![TestHost::create()?, TestHost::create()?];
        let mut upstreams = Vec::new();
        for host in &hosts {
            upstreams.push(start_upstream(host).await?);
        }
        // A controller name of the run's own, so that a Holdfast installed in the cluster ignores this Ingress.
        let controller_name = format!("holdfast.io/{name}");
        scratch.create_ingress_class(client, &objects::ingress_class(name, &controller_name)).await?;
        create_objects(client, name, &hosts).await?;
        let (dataplane, dataplane_addr, admin) = start_dataplane(&[]).await?;
        let bin = locate("holdfast-controller", "holdfast-controller")?;
        let mut command = Command::new(bin);
        command
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .args(["--watch-namespace", name, "--lease-namespace", name])
            .args(["--publish-status-address", STATUS_ADDRESS, "--controller-name", &controller_name])
            .args(["--admin", "127.0.0.1:0", "--dataplane-url", &format!("http://{admin}/config")]);
        let controller = Process::spawn("controller", command)?;
        Ok((controller, dataplane, dataplane_addr, upstreams, hosts))
    }

    /// Stops the controller before anything it watches goes away, then the rest, then deletes the namespace and
    /// the IngressClass: the test's cleanup, whose failure fails the test.
    async fn stop(self, client: &Client) -> anyhow::Result<()> {
        let Stack { controller, dataplane, dataplane_addr: _, upstreams, hosts, scratch } = self;
        drop(controller);
        drop(dataplane);
        drop(upstreams);
        drop(hosts);
        scratch.delete(client).await
    }

    async fn check(&self, client: &Client) -> anyhow::Result<()> {
        let ns = self.scratch.namespace();
        eprintln!("controller pid {}, dataplane pid {}", self.controller.pid(), self.dataplane.pid());
        let (upstreams, hosts) = (self.upstreams.len(), self.hosts.len());
        eprintln!("{upstreams} upstreams on {:?}", self.hosts.iter().map(|h| h.addr).collect::<Vec<_>>());
        anyhow::ensure!(upstreams == hosts, "one upstream per test host");
        routes_reach_the_upstreams(self.dataplane_addr).await?;
        valid_policy_is_in_force(self.dataplane_addr).await?;

        let policies: Api<UploadPolicy> = Api::namespaced(client.clone(), ns);
        let accepted = accepted_condition(&policies, objects::VALID_POLICY, "True").await?;
        eprintln!("{}: Accepted=True ({})", objects::VALID_POLICY, accepted.reason);
        let rejected = accepted_condition(&policies, objects::INVALID_POLICY, "False").await?;
        anyhow::ensure!(!rejected.reason.is_empty(), "Accepted=False needs a reason");
        eprintln!("{}: Accepted=False ({}: {})", objects::INVALID_POLICY, rejected.reason, rejected.message);

        warning_event_on_invalid_policy(client, ns).await?;
        ingress_status_shows_the_address(client, ns).await
    }
}

async fn create_objects(client: &Client, ns: &str, hosts: &[TestHost]) -> anyhow::Result<()> {
    let pp = PostParams::default();
    let addresses: Vec<_> = hosts.iter().map(|h| h.addr).collect();
    Api::namespaced(client.clone(), ns).create(&pp, &objects::service(ns)).await?;
    Api::namespaced(client.clone(), ns).create(&pp, &objects::endpoint_slice(ns, &addresses)).await?;
    // The IngressClass is named like the namespace.
    Api::namespaced(client.clone(), ns).create(&pp, &objects::ingress(ns, ns)).await?;
    let policies: Api<UploadPolicy> = Api::namespaced(client.clone(), ns);
    policies.create(&pp, &objects::valid_policy(ns)).await?;
    policies.create(&pp, &objects::invalid_policy(ns)).await?;
    Ok(())
}

/// An upload through the dataplane reaches an upstream intact: its SHA-256 comes back.
async fn routes_reach_the_upstreams(dataplane: SocketAddr) -> anyhow::Result<()> {
    let body = payload(UPLOAD_LEN, 42);
    let sent = sha256_hex(&body);
    let reply = poll::until("an upload routed to an upstream", WAIT, async || {
        let reply = post(dataplane, "uploads.e2e.test", "/upload", body.clone()).await?;
        anyhow::ensure!(reply.status == 200, "status {}: {}", reply.status, String::from_utf8_lossy(&reply.body));
        Ok(Some(reply))
    })
    .await?;
    let json = reply.json()?;
    anyhow::ensure!(json["sha256"] == sent.as_str(), "sent SHA-256 {sent}, the upstream received {json}");
    anyhow::ensure!(json["bytes"] == UPLOAD_LEN, "sent {UPLOAD_LEN} bytes, the upstream received {json}");
    eprintln!("upload of {UPLOAD_LEN} bytes routed; SHA-256 {sent} round-tripped");
    Ok(())
}

/// The valid policy's `maxBodySize` is what the dataplane enforces (the controller's default is unlimited).
async fn valid_policy_is_in_force(dataplane: SocketAddr) -> anyhow::Result<()> {
    let too_large = payload(2 * objects::VALID_MAX_BODY, 43);
    poll::until("the valid policy's maxBodySize in force (413)", WAIT, async || {
        let reply = post(dataplane, "uploads.e2e.test", "/upload", too_large.clone()).await?;
        Ok((reply.status == 413).then_some(()))
    })
    .await?;
    eprintln!("a {} byte upload got 413 from the valid policy's maxBodySize", too_large.len());
    Ok(())
}

/// The policy's `Accepted` condition once its status is `status`.
async fn accepted_condition(api: &Api<UploadPolicy>, name: &str, status: &str) -> anyhow::Result<Condition> {
    poll::until(&format!("UploadPolicy {name} Accepted={status}"), WAIT, async || {
        let policy = api.get(name).await?;
        let Some(policy_status) = policy.status else { return Ok(None) };
        let condition = policy_status.conditions.into_iter().find(|c| c.type_ == CONDITION_ACCEPTED);
        let Some(condition) = condition else { return Ok(None) };
        anyhow::ensure!(condition.status == status, "Accepted={} ({})", condition.status, condition.message);
        anyhow::ensure!(condition.observed_generation == policy.metadata.generation, "status of an older generation");
        Ok(Some(condition))
    })
    .await
}

/// The invalid policy is reported where `kubectl describe` shows it: a Warning event with reason `PolicyInvalid`.
async fn warning_event_on_invalid_policy(client: &Client, ns: &str) -> anyhow::Result<()> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let event = poll::until("a Warning event on the invalid UploadPolicy", WAIT, async || {
        let list = events.list(&ListParams::default()).await?;
        Ok(list.items.into_iter().find(|e| {
            let regarding = e.regarding.as_ref();
            e.type_.as_deref() == Some("Warning")
                && regarding.and_then(|r| r.kind.as_deref()) == Some("UploadPolicy")
                && regarding.and_then(|r| r.name.as_deref()) == Some(objects::INVALID_POLICY)
        }))
    })
    .await?;
    let reason = event.reason.unwrap_or_default();
    anyhow::ensure!(reason == "PolicyInvalid", "the Warning event's reason is {reason:?}, not PolicyInvalid");
    eprintln!("Warning event {reason}: {}", event.note.unwrap_or_default());
    Ok(())
}

/// The leader wrote `--publish-status-address` into the Ingress's `status.loadBalancer.ingress`.
async fn ingress_status_shows_the_address(client: &Client, ns: &str) -> anyhow::Result<()> {
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), ns);
    poll::until(&format!("Ingress status {STATUS_ADDRESS}"), WAIT, async || {
        let ingress = ingresses.get(objects::INGRESS).await?;
        let entries = ingress.status.and_then(|s| s.load_balancer).and_then(|lb| lb.ingress).unwrap_or_default();
        Ok(entries.iter().any(|e| e.ip.as_deref() == Some(STATUS_ADDRESS)).then_some(()))
    })
    .await?;
    eprintln!("Ingress status shows {STATUS_ADDRESS}");
    Ok(())
}
