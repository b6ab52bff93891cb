//! `holdfast-controller`: parses flags, sets up logging, installs the one SIGTERM/Ctrl-C handler and calls
//! [`holdfast_controller::run::run`].

use anyhow::Context;
use clap::Parser;
use holdfast_controller::config::Args;
use holdfast_controller::index::ObjectKey;
use holdfast_controller::push::{DataplaneClient, PushTiming};
use holdfast_controller::run::{run, Settings, Source};
use holdfast_controller::source::kube::KubeSource;
use holdfast_controller::status::Addresses;
use holdfast_controller::{drain, translate};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.logs_as_json());
    // Flags first, so that a bad one is reported as such even when the admin port is taken.
    let translation = translate::Config {
        controller_name: args.controller_name.clone(),
        default_policy: args.default_policy()?,
        peers: args.peers()?,
    };
    let dataplane = DataplaneClient::new(&args.dataplane_url)?;
    let admin = tokio::net::TcpListener::bind(args.admin)
        .await
        .with_context(|| format!("cannot listen on --admin {}", args.admin))?;
    // The address bound, not the one asked for: with port 0 (tests) this line is how the port is found.
    let admin_addr = admin.local_addr().context("the admin listener has no address")?;
    let settings = Settings { translate: translation, dataplane, timing: PushTiming::default(), admin: Some(admin) };
    // Args hold no secrets, so the whole effective configuration can be logged.
    status_addresses(&args)?;
    tracing::info!(?args, admin = %admin_addr, "Starting holdfast-controller");
    let source = match &args.from_dir {
        Some(dir) => Source::Files(dir.clone()),
        None => {
            // Like kubectl: KUBECONFIG or ~/.kube/config when present, else the in-cluster service account.
            let client = kube::Client::try_default().await.context("cannot reach the Kubernetes API")?;
            Source::Kube(Box::new(KubeSource {
                client,
                namespace: args.watch_namespace.clone(),
                addresses: status_addresses(&args)?,
                lease_namespace: args.lease_namespace.clone(),
                identity: identity(),
                peers_service: settings.translate.peers.as_ref().map(|peers| peers.service.clone()),
            }))
        }
    };
    let (trigger, shutdown) = drain::channel();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("Shutting down");
        trigger.fire();
    });
    run(source, settings, shutdown).await?;
    Ok(())
}

/// `--publish-service` wins over `--publish-status-address`, as in ingress-nginx.
fn status_addresses(args: &Args) -> anyhow::Result<Addresses> {
    Ok(match args.publish_service()? {
        Some((namespace, name)) => Addresses::Service(ObjectKey::new(namespace, name)),
        None if !args.publish_status_address.is_empty() => Addresses::Static(args.publish_status_address.clone()),
        None => Addresses::None,
    })
}

/// This replica's name: the pod name when the Deployment passes it in, else host name and process id.
fn identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME") {
        return pod;
    }
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    format!("{}-{}", if host.is_empty() { "holdfast" } else { &host }, std::process::id())
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::warn!(%error, "Cannot listen for SIGTERM; only Ctrl-C stops the controller");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
