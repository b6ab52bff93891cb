//! Command-line flags of `holdfast-dataplane`, each with an environment variable fallback.

use crate::server::Http2Limits;
use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "holdfast-dataplane",
    version,
    about = "Holdfast's dataplane: spools request bodies and replays them through upstream churn"
)]
pub struct Args {
    /// Client listener (HTTP/1.1 and h2c).
    #[arg(long, env = "HOLDFAST_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// TLS client listener (HTTP/1.1 and HTTP/2 by ALPN); certificates come from the route snapshot.
    #[arg(long, env = "HOLDFAST_LISTEN_TLS", default_value = "0.0.0.0:8443")]
    pub listen_tls: SocketAddr,
    /// PEM certificate chain served on the TLS listener when no Ingress certificate matches (with --default-key);
    /// without it, a self-signed one is generated at start.
    #[arg(long, env = "HOLDFAST_DEFAULT_CERT", requires = "default_key")]
    pub default_cert: Option<PathBuf>,
    /// PEM private key of --default-cert.
    #[arg(long, env = "HOLDFAST_DEFAULT_KEY", requires = "default_cert")]
    pub default_key: Option<PathBuf>,
    /// Admin listener: route snapshots, health, metrics. Keep it on loopback.
    #[arg(long, env = "HOLDFAST_ADMIN", default_value = "127.0.0.1:9901")]
    pub admin: SocketAddr,
    /// A read-only listener for Prometheus and probes: GET /metrics, /healthz and /readyz, nothing that changes
    /// anything, so it may listen on the pod IP (e.g. `0.0.0.0:9913`). Off unless set.
    #[arg(long, env = "HOLDFAST_METRICS")]
    pub metrics: Option<SocketAddr>,
    /// Directory for spooled bodies (the pod's emptyDir or PVC). Files in it are unlinked at creation.
    #[arg(long, env = "HOLDFAST_SPOOL_DIR", default_value_os_t = std::env::temp_dir())]
    pub spool_dir: PathBuf,
    /// Most bytes all spooled bodies may use on disk together (e.g. `10Gi`, `500M`, `0` for unlimited).
    #[arg(long, env = "HOLDFAST_SPOOL_QUOTA", default_value = "0", value_parser = parse_bytes)]
    pub spool_quota: u64,
    /// A route snapshot (JSON) to put in force at start, before any push to the admin listener.
    #[arg(long, env = "HOLDFAST_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,
    /// Idle upstream connections are closed after this long; keep it below the upstreams' keep-alive timeouts.
    #[arg(long, env = "HOLDFAST_UPSTREAM_IDLE_TIMEOUT", default_value = "4s", value_parser = parse_duration)]
    pub upstream_idle_timeout: Duration,
    /// Longest a client may take to send a request head, counted from the connection's start or its last response;
    /// an HTTP/1 connection that sends none is closed between one and one and a half times this after it.
    #[arg(long, env = "HOLDFAST_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// On SIGTERM, how long requests in flight (uploads and their replays) may take to complete.
    #[arg(long, env = "HOLDFAST_DRAIN_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// After SIGTERM, how long to keep accepting (with /readyz failing) so that endpoint removal propagates
    /// before the listeners close.
    #[arg(long, env = "HOLDFAST_SHUTDOWN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
    /// After a response sent before the request body was read (413, 507, …), how long to keep reading and
    /// discarding the client's bytes before closing, so that the client reads the response instead of a reset.
    #[arg(long, env = "HOLDFAST_LINGERING_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub lingering_timeout: Duration,
    /// The most bytes discarded during one lingering close.
    #[arg(long, env = "HOLDFAST_LINGERING_MAX_BYTES", default_value = "256Mi", value_parser = parse_bytes)]
    pub lingering_max_bytes: u64,
    /// Client connections are closed after this many requests (0: never): HTTP/1 with `Connection: close` on the
    /// last response, HTTP/2 with GOAWAY after the last stream (further streams are refused, and a client that goes
    /// on opening them is disconnected). As nginx's keepalive_requests.
    #[arg(long, env = "HOLDFAST_MAX_REQUESTS_PER_CONNECTION", default_value_t = 1000)]
    pub max_requests_per_connection: u32,
    /// The longest request-target (path and query) served, HTTP/1.1 and HTTP/2 alike, 1Ki to 32Ki; a longer one is
    /// answered 414. The default is nginx's `large_client_header_buffers` line; raise it for applications with long
    /// signed URLs or query strings.
    #[arg(
        long,
        env = "HOLDFAST_MAX_REQUEST_TARGET",
        default_value = "8Ki",
        value_parser = parse_request_target
    )]
    pub max_request_target: usize,
    /// HTTP/2: streams one client connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS; nginx: 128).
    #[arg(
        long,
        env = "HOLDFAST_HTTP2_MAX_CONCURRENT_STREAMS",
        default_value_t = Http2Limits::default().max_concurrent_streams,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: the largest request header list (SETTINGS_MAX_HEADER_LIST_SIZE: names and values plus 32 bytes per
    /// field), 1Ki to 16Mi; a larger one is answered 431. It also bounds the CONTINUATION frames of a header block.
    #[arg(
        long,
        env = "HOLDFAST_HTTP2_MAX_HEADER_LIST_SIZE",
        default_value_t = Http2Limits::default().max_header_list_size,
        value_parser = parse_header_list_size
    )]
    pub http2_max_header_list_size: u32,
    /// Worker threads serving clients, each with its own event loop (default: the CPUs this process may use,
    /// cgroup limits included).
    #[arg(long, env = "HOLDFAST_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
    /// Share client connections out evenly between the workers: a worker with more open than another hands new
    /// ones over. For a few long-lived connections (behind a load balancer), which the kernel may otherwise all give
    /// to one worker. Off: each connection stays with whichever worker woke first for it, which costs less.
    #[arg(long, env = "HOLDFAST_BALANCE_CONNECTIONS")]
    pub balance_connections: bool,
    /// A body declared at least this large on a plain HTTP/1.1 connection is read straight from the socket in up to
    /// 1 MiB reads instead of through hyper's 64 KiB buffer: half the CPU per GiB, but the connection closes after
    /// the response. 0: never (every connection keeps alive). TLS and HTTP/2 connections always read through hyper.
    #[arg(long, env = "HOLDFAST_DIRECT_BODY_MIN_BYTES", default_value = "8Mi", value_parser = parse_bytes)]
    pub direct_body_min_bytes: u64,
    /// Log format (the access log's lines too).
    #[arg(long, env = "HOLDFAST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Where the access log goes, one line per finished request: `stderr` (with the other logs), `off`, or a file
    /// (appended to).
    #[arg(long, env = "HOLDFAST_ACCESS_LOG", default_value = "stderr", value_parser = parse_access_log)]
    pub access_log: crate::access_log::Destination,
    /// Log request paths with their query string (left out by default: queries carry tokens and personal data).
    #[arg(long, env = "HOLDFAST_ACCESS_LOG_QUERY")]
    pub access_log_query: bool,
    /// Metrics per route (`holdfast_route_*`, labelled with the route's Ingress and Service): `on` or `off`.
    #[arg(
        long,
        env = "HOLDFAST_ROUTE_METRICS",
        default_value = "on",
        value_parser = parse_on_off,
        action = clap::ArgAction::Set
    )]
    pub route_metrics: bool,
    /// How often expired resumable uploads and outcomes kept past their retention are removed.
    #[arg(long, env = "HOLDFAST_RESUMABLE_SWEEP_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub resumable_sweep_interval: Duration,
    /// This dataplane's name, written into the ids of the resumable uploads it owns (a pod's name: `HOSTNAME` in a
    /// pod). Empty leaves it out.
    #[arg(long, env = "HOLDFAST_INSTANCE", default_value_t = default_instance())]
    pub instance: String,
}

/// The host's name (a pod's name), or empty.
fn default_instance() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}

fn parse_on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{text:?}: say on or off")),
    }
}

impl Args {
    /// The HTTP/2 limits from the flags.
    pub fn http2_limits(&self) -> Http2Limits {
        Http2Limits {
            max_concurrent_streams: self.http2_max_concurrent_streams,
            max_header_list_size: self.http2_max_header_list_size,
        }
    }

    /// The access log's settings from the flags.
    pub fn access_log_settings(&self) -> crate::access_log::Settings {
        crate::access_log::Settings {
            destination: self.access_log.clone(),
            json: self.log_format == LogFormat::Json,
            with_query: self.access_log_query,
        }
    }
}

/// A byte count ([`parse_bytes`]) from 1 KiB, below which ordinary requests would be refused, to 16 MiB (h2's own
/// default, already far more than any honest request needs).
fn parse_header_list_size(text: &str) -> Result<u32, String> {
    let bytes = parse_bytes(text)?;
    match u32::try_from(bytes) {
        Ok(size) if (1 << 10..=16 << 20).contains(&size) => Ok(size),
        _ => Err(format!("{text:?}: an HTTP/2 header list size must be between 1Ki and 16Mi")),
    }
}

fn parse_request_target(text: &str) -> Result<usize, String> {
    let bytes = parse_bytes(text)?;
    match usize::try_from(bytes) {
        Ok(size) if (1 << 10..=crate::route::MAX_TARGET_BYTES_CEILING).contains(&size) => Ok(size),
        _ => Err(format!("{text:?}: a request-target limit must be between 1Ki and 32Ki")),
    }
}

/// `stderr`, `off`, or a file's path.
fn parse_access_log(text: &str) -> Result<crate::access_log::Destination, String> {
    use crate::access_log::Destination;
    Ok(match text {
        "" => return Err("an empty --access-log: say stderr, off or a file's path".to_string()),
        "stderr" | "-" => Destination::Stderr,
        "off" => Destination::Off,
        path => Destination::File(path.into()),
    })
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `4s`, `500ms`, `2m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits.parse().map_err(|_| format!("{text:?} is not a duration like 500ms, 30s, 5m or 1h"))?;
    let millis = match unit {
        "ms" => Some(value),
        "s" => value.checked_mul(1000),
        "m" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        _ => return Err(format!("{text:?} has no unit: write 500ms, 30s, 5m or 1h")),
    };
    millis.map(Duration::from_millis).ok_or_else(|| format!("{text:?} is too long"))
}

/// A byte count with an optional binary (`Ki`, `Mi`, `Gi`, `Ti`) or decimal (`k`, `M`, `G`, `T`) suffix.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits.parse().map_err(|_| format!("{text:?} is not a size like 500Mi or 10G"))?;
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return Err(format!("{text:?} has an unknown unit: use k, M, G, T, Ki, Mi, Gi or Ti")),
    };
    value.checked_mul(factor).ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_and_sizes_and_rejects_the_rest() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("4s"), Ok(Duration::from_secs(4)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("4").unwrap_err().contains("no unit"));
        assert!(parse_duration("fast").is_err());
        assert_eq!(parse_bytes("10Gi"), Ok(10 << 30));
        assert_eq!(parse_bytes("500M"), Ok(500_000_000));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert!(parse_bytes("5 GB").is_err());
        assert!(parse_bytes("99999999999Ti").unwrap_err().contains("too large"));
    }

    #[test]
    fn flags_parse_with_defaults() {
        let args = Args::try_parse_from(["holdfast-dataplane", "--spool-quota", "1Gi"]).unwrap();
        assert_eq!(args.listen.port(), 8080);
        assert_eq!(args.admin.to_string(), "127.0.0.1:9901");
        assert_eq!(args.spool_quota, 1 << 30);
        assert!(!args.balance_connections);
        assert_eq!(args.direct_body_min_bytes, 8 << 20);
        let never = Args::try_parse_from(["holdfast-dataplane", "--direct-body-min-bytes", "0"]).unwrap();
        assert_eq!(never.direct_body_min_bytes, 0);
        assert!(Args::try_parse_from(["holdfast-dataplane", "--balance-connections"]).unwrap().balance_connections);
        assert!(Args::try_parse_from(["holdfast-dataplane", "--spool-quota", "lots"]).is_err());
    }

    #[test]
    fn http2_limits_default_to_nginx_like_values_and_refuse_nonsense() {
        let parse = |args: &[&str]| Args::try_parse_from([&["holdfast-dataplane"], args].concat());
        let defaults = parse(&[]).unwrap();
        assert_eq!(defaults.max_requests_per_connection, 1000);
        assert_eq!(
            defaults.http2_limits(),
            Http2Limits { max_concurrent_streams: 128, max_header_list_size: 64 << 10 }
        );
        let set = parse(&["--http2-max-concurrent-streams", "16", "--http2-max-header-list-size", "32Ki"]).unwrap();
        assert_eq!(set.http2_limits(), Http2Limits { max_concurrent_streams: 16, max_header_list_size: 32 << 10 });
        assert!(parse(&["--http2-max-concurrent-streams", "0"]).is_err());
        for size in ["100", "17Mi", "5Gi", "big"] {
            assert!(parse(&["--http2-max-header-list-size", size]).is_err(), "{size} accepted");
        }
    }

    #[test]
    fn the_request_target_limit_defaults_to_8_kib_and_stays_within_the_head_buffer() {
        let parse = |args: &[&str]| Args::try_parse_from([&["holdfast-dataplane"], args].concat());
        assert_eq!(parse(&[]).unwrap().max_request_target, 8 << 10);
        assert_eq!(parse(&["--max-request-target", "16Ki"]).unwrap().max_request_target, 16 << 10);
        assert_eq!(parse(&["--max-request-target", "32Ki"]).unwrap().max_request_target, 32 << 10);
        for size in ["1023", "32769", "1Gi", "long"] {
            assert!(parse(&["--max-request-target", size]).is_err(), "{size} accepted");
        }
    }

    #[test]
    fn access_log_and_route_metrics_flags_take_their_values() {
        use crate::access_log::Destination;
        let defaults = Args::try_parse_from(["holdfast-dataplane"]).unwrap();
        assert_eq!((defaults.access_log.clone(), defaults.route_metrics), (Destination::Stderr, true));
        assert!(!defaults.access_log_settings().with_query && !defaults.access_log_settings().json);
        let parse = |args: &[&str]| Args::try_parse_from([&["holdfast-dataplane"], args].concat());
        let off = parse(&["--access-log", "off", "--route-metrics", "off"]).unwrap();
        assert_eq!((off.access_log, off.route_metrics), (Destination::Off, false));
        let file = parse(&["--access-log", "/var/log/a.log", "--access-log-query", "--log-format", "json"]).unwrap();
        assert_eq!(file.access_log, Destination::File("/var/log/a.log".into()));
        assert!(file.access_log_settings().with_query && file.access_log_settings().json);
        assert!(parse(&["--route-metrics", "maybe"]).is_err());
        assert!(parse(&["--access-log", ""]).is_err());
    }
}
