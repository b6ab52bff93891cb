//! `holdfast-dataplane`: parses flags, binds the listeners, and runs until SIGTERM (a second SIGTERM exits at once).

use anyhow::Context;
use clap::Parser;
use holdfast_dataplane::admin::{self, Access};
use holdfast_dataplane::cli::{Args, LogFormat};
use holdfast_dataplane::server::{Lingering, ServeOptions};
use holdfast_dataplane::{server, Dataplane, Settings};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// mimalloc instead of glibc's malloc: a request allocates and frees dozens of small objects (header maps, futures,
/// body frames) across worker threads, which glibc served with measurable contention (5 % of the CPU in profiles).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The main thread's runtime only runs the admin listener, signal handling and the shutdown sequence; client
/// connections are served by the worker threads, each with its own runtime (see `server::Workers`).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing(args.log_format);
    check_spool_dir(&args.spool_dir)?;
    let settings = Settings {
        spool_dir: args.spool_dir.clone(),
        spool_quota: args.spool_quota,
        upstream_idle_timeout: args.upstream_idle_timeout,
        default_certificate: default_certificate(&args)?,
        access_log: args.access_log_settings(),
        route_metrics: args.route_metrics,
        instance: args.instance.clone(),
    };
    let dp = Dataplane::new(&settings)?;
    if let Some(path) = &args.config_file {
        let bytes = std::fs::read(path).with_context(|| format!("reading --config-file {}", path.display()))?;
        let snapshot = holdfast_snapshot::Snapshot::from_json(&bytes)
            .with_context(|| format!("--config-file {} is not a valid snapshot", path.display()))?;
        dp.apply(&snapshot)?;
    }
    holdfast_dataplane::tus::start(&dp, args.resumable_sweep_interval)
        .with_context(|| format!("loading resumable uploads from {}", args.spool_dir.display()))?;
    let workers = args.workers.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), usize::from);
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("binding --listen {}", args.listen))?;
    let tls_listener = TcpListener::bind(args.listen_tls)
        .await
        .with_context(|| format!("binding --listen-tls {}", args.listen_tls))?;
    let admin_listener =
        TcpListener::bind(args.admin).await.with_context(|| format!("binding --admin {}", args.admin))?;
    let metrics_listener = match args.metrics {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("binding --metrics {addr}"))?),
        None => None,
    };
    let metrics = match &metrics_listener {
        Some(listener) => listener.local_addr()?.to_string(),
        None => "off".to_string(),
    };
    tracing::info!(
        listen = %listener.local_addr()?, listen_tls = %tls_listener.local_addr()?, admin = %admin_listener.local_addr()?, metrics, spool_dir = %args.spool_dir.display(),
        spool_quota = args.spool_quota, upstream_idle_timeout = ?args.upstream_idle_timeout,
        drain_timeout = ?args.drain_timeout, shutdown_delay = ?args.shutdown_delay,
        max_requests_per_connection = args.max_requests_per_connection, http2 = ?args.http2_limits(), workers, access_log = ?args.access_log,
        route_metrics = args.route_metrics, max_request_target = args.max_request_target,
        "holdfast dataplane started"
    );
    let mut shutdown = shutdown_signal()?;
    let options = ServeOptions {
        header_read_timeout: args.header_read_timeout,
        drain_timeout: args.drain_timeout,
        lingering: Lingering { timeout: args.lingering_timeout, max_bytes: args.lingering_max_bytes },
        max_requests_per_connection: args.max_requests_per_connection,
        http2: args.http2_limits(),
        balance_connections: args.balance_connections,
        direct_body_min_bytes: args.direct_body_min_bytes,
        max_target_bytes: args.max_request_target,
    };
    // The admin listener stays up through the drain: the kubelet must see /readyz fail, and metrics stay readable.
    let admin_task = tokio::spawn(admin::serve(admin_listener, dp.clone(), Access::Full, std::future::pending()));
    let metrics_task = metrics_listener
        .map(|listener| tokio::spawn(admin::serve(listener, dp.clone(), Access::ReadOnly, std::future::pending())));
    let (drain, delay) = (dp.drain.clone(), args.shutdown_delay);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
        drain.start();
        tracing::info!(?delay, "not ready; listeners close after the shutdown delay");
        tokio::time::sleep(delay).await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let listeners = server::Listeners { plain: listener.into_std()?, tls: tls_listener.into_std()? };
    let workers = server::Workers::start(workers, listeners, dp, options, move || stopped(stop_rx.clone()))?;
    workers.finished().await?;
    admin_task.abort();
    if let Some(task) = metrics_task {
        task.abort();
    }
    tracing::info!("drained; exiting");
    Ok(())
}

/// The `--default-cert`/`--default-key` pair, checked like a snapshot certificate.
fn default_certificate(args: &Args) -> anyhow::Result<Option<holdfast_snapshot::TlsCertificate>> {
    let (Some(cert), Some(key)) = (&args.default_cert, &args.default_key) else { return Ok(None) };
    let read = |path: &std::path::PathBuf| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let entry = holdfast_snapshot::TlsCertificate {
        hosts: Vec::new(),
        cert_pem: read(cert)?,
        key_pem: read(key)?,
        source: Some(format!("--default-cert {}", cert.display())),
    };
    entry.check().map_err(|reason| anyhow::anyhow!("--default-cert/--default-key: {reason}"))?;
    Ok(Some(entry))
}

/// Fails at start, with the reason, when bodies could not be spooled.
fn check_spool_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    tempfile::tempfile_in(dir)
        .map(drop)
        .with_context(|| format!("--spool-dir {} is not a writable directory", dir.display()))
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// One place that turns SIGTERM/SIGINT into the shutdown of every listener: the first signal starts the drain, the
/// second exits the process at once.
fn shutdown_signal() -> anyhow::Result<watch::Receiver<bool>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("shutdown signal received: draining (send it again to exit at once)");
        let _ = tx.send(true);
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::warn!("second shutdown signal: exiting now");
        std::process::exit(0);
    });
    Ok(rx)
}
