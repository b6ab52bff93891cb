//! Command-line flags (each with an environment fallback) and the typed configuration they become. Bad values fail
//! at start with the flag's name; the effective configuration is logged once.

use crate::index::ObjectKey;
use crate::overrides::check_policy;
use crate::translate::{PeersConfig, CONTROLLER_NAME};
use clap::Parser;
use holdfast_snapshot::{BodyMode, Policy, ReplayPolicy, Timeouts};
use std::path::PathBuf;

/// Holdfast's controller: turns Ingresses, Services, EndpointSlices and UploadPolicies into dataplane snapshots.
#[derive(Debug, Clone, Parser)]
#[command(name = "holdfast-controller", version)]
pub struct Args {
    /// Read objects from the YAML files in this directory instead of the Kubernetes API, and watch it for changes.
    #[arg(long, env = "HOLDFAST_FROM_DIR", value_name = "DIR")]
    pub from_dir: Option<PathBuf>,

    /// The dataplane's admin endpoint (`http://HOST:PORT` or `http://HOST:PORT/config`).
    #[arg(long, env = "HOLDFAST_DATAPLANE_URL", default_value = "http://127.0.0.1:9901/config")]
    pub dataplane_url: String,

    /// Watch only this namespace (all namespaces when absent).
    #[arg(long, env = "HOLDFAST_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// IngressClasses whose spec.controller equals this are served.
    #[arg(long, env = "HOLDFAST_CONTROLLER_NAME", default_value = CONTROLLER_NAME)]
    pub controller_name: String,

    /// Ingress status: copy the load-balancer addresses of this Service (NAMESPACE/NAME).
    #[arg(long, env = "HOLDFAST_PUBLISH_SERVICE", value_name = "NAMESPACE/NAME")]
    pub publish_service: Option<String>,

    /// Ingress status: publish these addresses (comma-separated IPs or host names).
    #[arg(long, env = "HOLDFAST_PUBLISH_STATUS_ADDRESS", value_delimiter = ',')]
    pub publish_status_address: Vec<String>,

    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, env = "HOLDFAST_CONTROLLER_ADMIN", default_value = "127.0.0.1:9902")]
    pub admin: std::net::SocketAddr,

    /// Namespace of the leader-election Lease (in-cluster: the pod's namespace).
    #[arg(long, env = "HOLDFAST_LEASE_NAMESPACE", default_value = "holdfast-system")]
    pub lease_namespace: String,

    /// Resumable uploads: the Service (NAMESPACE/NAME) whose EndpointSlices list this installation's pods, which the
    /// snapshot names to each dataplane as its peers by pod name (a StatefulSet's governing Service). Unset: none.
    #[arg(long, env = "HOLDFAST_PEERS_SERVICE", value_name = "NAMESPACE/NAME")]
    pub peers_service: Option<String>,

    /// The dataplanes' plain client listener port (their `--listen` port), where peers reach each other.
    #[arg(long, env = "HOLDFAST_PEERS_PORT", default_value_t = 8080, value_parser = clap::value_parser!(u16).range(1..))]
    pub peers_port: u16,

    /// Default largest request body (a quantity; 0 = unlimited).
    #[arg(long, env = "HOLDFAST_DEFAULT_MAX_BODY_SIZE", default_value = "0", value_parser = bytes)]
    pub default_max_body_size: u64,

    /// Default in-memory part of each body before it spills to disk (a quantity, at most 64Mi).
    #[arg(long, env = "HOLDFAST_DEFAULT_MEMORY_BUFFER", default_value = "128Ki", value_parser = bytes)]
    pub default_memory_buffer: u64,

    /// Default body mode: Buffered, Tee or Streaming.
    #[arg(long, env = "HOLDFAST_DEFAULT_MODE", default_value = "Buffered", value_parser = mode)]
    pub default_mode: BodyMode,

    /// Default most deliveries that reach an upstream.
    #[arg(long, env = "HOLDFAST_DEFAULT_MAX_ATTEMPTS", default_value_t = 5)]
    pub default_max_attempts: u32,

    /// Default total wait for an endpoint that takes the request (a duration such as 60s).
    #[arg(long, env = "HOLDFAST_DEFAULT_UPSTREAM_WAIT_TIMEOUT", default_value = "60s", value_parser = millis)]
    pub default_upstream_wait_timeout: u64,

    /// Default client body idle timeout.
    #[arg(long, env = "HOLDFAST_DEFAULT_CLIENT_BODY_TIMEOUT", default_value = "60s", value_parser = millis)]
    pub default_client_body_timeout: u64,

    /// Default upstream connect timeout.
    #[arg(long, env = "HOLDFAST_DEFAULT_UPSTREAM_CONNECT_TIMEOUT", default_value = "5s", value_parser = millis)]
    pub default_upstream_connect_timeout: u64,

    /// Default upstream send timeout.
    #[arg(long, env = "HOLDFAST_DEFAULT_UPSTREAM_SEND_TIMEOUT", default_value = "60s", value_parser = millis)]
    pub default_upstream_send_timeout: u64,

    /// Default upstream read timeout.
    #[arg(long, env = "HOLDFAST_DEFAULT_UPSTREAM_READ_TIMEOUT", default_value = "60s", value_parser = millis)]
    pub default_upstream_read_timeout: u64,

    /// Default idle limit of a WebSocket (or other Upgrade) tunnel: no byte either way for this long closes it.
    #[arg(long, env = "HOLDFAST_DEFAULT_TUNNEL_IDLE_TIMEOUT", default_value = "1h", value_parser = millis)]
    pub default_tunnel_idle_timeout: u64,

    /// Log format, as the dataplane's `--log-format`.
    #[arg(long, env = "HOLDFAST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The same as `--log-format json`: the flag's earlier name, still accepted.
    #[arg(long, env = "HOLDFAST_LOG_JSON", hide = true)]
    pub log_json: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Args {
    /// The log format asked for, by either flag.
    pub fn logs_as_json(&self) -> bool {
        self.log_json || self.log_format == LogFormat::Json
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the default policy flags are out of bounds: {0}")]
    DefaultPolicy(#[source] holdfast_snapshot::SnapshotError),
    #[error("--publish-service must be NAMESPACE/NAME, got {0:?}")]
    PublishService(String),
    #[error("--peers-service must be NAMESPACE/NAME, got {0:?}")]
    PeersService(String),
}

impl Args {
    /// The policy applied where no UploadPolicy or annotation says otherwise, checked like the dataplane would.
    pub fn default_policy(&self) -> Result<Policy, ConfigError> {
        let policy = Policy {
            max_body_size_bytes: self.default_max_body_size,
            memory_buffer_bytes: self.default_memory_buffer,
            mode: self.default_mode,
            replay: ReplayPolicy {
                max_attempts: self.default_max_attempts,
                upstream_wait_timeout_ms: self.default_upstream_wait_timeout,
                ..ReplayPolicy::default()
            },
            timeouts: Timeouts {
                client_body_ms: self.default_client_body_timeout,
                upstream_connect_ms: self.default_upstream_connect_timeout,
                upstream_send_ms: self.default_upstream_send_timeout,
                upstream_read_ms: self.default_upstream_read_timeout,
                tunnel_idle_ms: self.default_tunnel_idle_timeout,
            },
            ..Policy::default()
        };
        check_policy(policy.clone()).map_err(ConfigError::DefaultPolicy)?;
        Ok(policy)
    }

    /// `--publish-service` split into namespace and name.
    pub fn publish_service(&self) -> Result<Option<(String, String)>, ConfigError> {
        let Some(value) = &self.publish_service else { return Ok(None) };
        let key = namespaced_name(value).ok_or_else(|| ConfigError::PublishService(value.clone()))?;
        Ok(Some((key.namespace, key.name)))
    }

    /// `--peers-service` and `--peers-port`, when peers are asked for.
    pub fn peers(&self) -> Result<Option<PeersConfig>, ConfigError> {
        let Some(value) = &self.peers_service else { return Ok(None) };
        let service = namespaced_name(value).ok_or_else(|| ConfigError::PeersService(value.clone()))?;
        Ok(Some(PeersConfig { service, port: self.peers_port }))
    }
}

/// `NAMESPACE/NAME`, both parts present.
fn namespaced_name(value: &str) -> Option<ObjectKey> {
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => Some(ObjectKey::new(ns, name)),
        _ => None,
    }
}

fn bytes(value: &str) -> Result<u64, holdfast_crds::QuantityError> {
    holdfast_crds::parse_bytes(value)
}

fn millis(value: &str) -> Result<u64, String> {
    let duration = holdfast_crds::parse_duration(value).map_err(|e| e.to_string())?;
    u64::try_from(duration.as_millis()).map_err(|_| format!("duration {value:?} is too long"))
}

fn mode(value: &str) -> Result<BodyMode, String> {
    match value {
        "Buffered" => Ok(BodyMode::Buffered),
        "Tee" => Ok(BodyMode::Tee),
        "Streaming" => Ok(BodyMode::Streaming),
        other => Err(format!("unknown mode {other:?}: use Buffered, Tee or Streaming")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("holdfast-controller").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_snapshot_defaults() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.default_policy().unwrap(), Policy::default());
        assert_eq!(args.dataplane_url, "http://127.0.0.1:9901/config");
    }

    #[test]
    fn bad_flags_fail_with_the_flag_and_the_reason() {
        let cases = [
            (&["--default-max-body-size", "10GB"][..], "unknown suffix"),
            (&["--default-mode", "Fast"], "unknown mode"),
            (&["--default-upstream-read-timeout", "30"], "needs a unit"),
            (&["--default-tunnel-idle-timeout", "forever"], "invalid value"),
        ];
        for (args, expected) in cases {
            let error = parse(args).unwrap_err().to_string();
            assert!(error.contains(args[0]) && error.contains(expected), "{args:?}: {error}");
        }
        let args = parse(&["--default-memory-buffer", "1Gi"]).unwrap();
        assert!(args.default_policy().unwrap_err().to_string().contains("at most 64 MiB"));
        let args = parse(&["--publish-service", "just-a-name"]).unwrap();
        assert!(args.publish_service().is_err());
        for bad in ["just-a-name", "ns/", "/name", "a/b/c"] {
            let error = parse(&["--peers-service", bad]).unwrap().peers().unwrap_err().to_string();
            assert!(error.contains("--peers-service must be NAMESPACE/NAME"), "{bad}: {error}");
        }
        let error = parse(&["--peers-port", "0"]).unwrap_err().to_string();
        assert!(error.contains("--peers-port"), "{error}");
    }

    #[test]
    fn peers_come_from_the_named_service_at_the_dataplanes_listen_port() {
        assert_eq!(parse(&[]).unwrap().peers().unwrap(), None);
        let peers = parse(&["--peers-service", "holdfast-system/holdfast-pods"]).unwrap().peers().unwrap().unwrap();
        let expected = PeersConfig { service: ObjectKey::new("holdfast-system", "holdfast-pods"), port: 8080 };
        assert_eq!(peers, expected, "the port defaults to the chart's dataplane.port");
        let args = parse(&["--peers-service", "ns/svc", "--peers-port", "9080"]).unwrap();
        assert_eq!(args.peers().unwrap().unwrap().port, 9080);
    }

    #[test]
    fn tunnel_idle_timeout_defaults_to_an_hour_and_sets_the_default_policy() {
        assert_eq!(parse(&[]).unwrap().default_policy().unwrap().timeouts.tunnel_idle_ms, 3_600_000);
        let args = parse(&["--default-tunnel-idle-timeout", "90m"]).unwrap();
        assert_eq!(args.default_policy().unwrap().timeouts.tunnel_idle_ms, 5_400_000);
        let args = parse(&["--default-tunnel-idle-timeout", "0s"]).unwrap();
        assert!(args.default_policy().unwrap_err().to_string().contains("tunnelIdleMs"));
    }

    #[test]
    fn logs_are_json_with_either_flag_as_the_dataplane_names_it_or_as_it_was_named() {
        assert!(!parse(&[]).unwrap().logs_as_json());
        assert!(parse(&["--log-format", "json"]).unwrap().logs_as_json());
        assert!(parse(&["--log-json"]).unwrap().logs_as_json());
        assert!(!parse(&["--log-format", "text"]).unwrap().logs_as_json());
        assert!(parse(&["--log-format", "yaml"]).unwrap_err().to_string().contains("--log-format"));
    }
}
