//! `GET /status/api`: the status page's data as JSON (the shape is documented in docs/observability.md). Times are
//! milliseconds since the Unix epoch; paths are shown without their query.

use super::Finished;
use crate::exchange::{AttemptRecord, Exchange};
use crate::Dataplane;
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// The whole document.
pub fn render(dp: &Dataplane) -> Value {
    let (in_flight, finished) = dp.status.contents();
    let active = dp.config.current();
    let quota = &dp.spool.quota;
    json!({
        "now": epoch_ms(SystemTime::now()),
        "config": {"version": active.version, "appliedAt": active.applied_at.map(epoch_ms)},
        "spool": {
            "usedBytes": quota.used(),
            "quotaBytes": quota.limit(),
            "files": dp.metrics.spool_files.get(),
        },
        "inFlight": in_flight.iter().map(|e| in_flight_entry(e)).collect::<Vec<_>>(),
        "finished": finished.iter().map(finished_entry).collect::<Vec<_>>(),
        "backends": backends(dp, &active),
    })
}

/// What every entry says of its request.
fn request(e: &Exchange) -> serde_json::Map<String, Value> {
    let progress = e.progress();
    let route = e.route.as_ref().map(|r| {
        let l = &r.labels;
        json!({"namespace": l.namespace, "ingress": l.ingress, "service": l.service, "port": l.port,
               "backend": e.backend.as_deref()})
    });
    let value = json!({
        "id": String::from_utf8_lossy(e.head.id.as_bytes()),
        "method": e.head.method.as_str(),
        "host": e.head.host(),
        "path": e.head.uri.path(),
        "client": e.head.client.to_string(),
        "protocol": format!("{:?}", e.head.version),
        "route": route,
        "backend": e.backend.as_deref(),
        "mode": progress.map_or("None", |p| p.mode.as_str()),
        "tunnel": e.is_tunnel(),
        "startedAt": epoch_ms(e.started_wall()),
        "receivedBytes": progress.map_or(0, |p| p.received()),
        "declaredBytes": progress.and_then(|p| p.declared),
        "deliveredBytes": progress.map_or(0, |p| p.delivered()),
    });
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

fn in_flight_entry(e: &Exchange) -> Value {
    let mut entry = request(e);
    let progress = e.progress();
    entry.insert("attempt".into(), json!(progress.map_or(0, |p| p.attempt())));
    entry.insert("endpoint".into(), json!(progress.and_then(|p| p.endpoint()).map(|a| a.to_string())));
    entry.insert("state".into(), json!(progress.map_or("receiving", |p| p.state().as_str())));
    Value::Object(entry)
}

fn finished_entry(f: &Finished) -> Value {
    let mut entry = request(&f.exchange);
    entry.insert("finishedAt".into(), json!(epoch_ms(f.finished_at)));
    entry.insert("status".into(), json!(f.status));
    entry.insert("attempts".into(), Value::Array(f.attempts.iter().map(attempt).collect()));
    entry.insert("error".into(), json!(f.error));
    Value::Object(entry)
}

fn attempt(a: &AttemptRecord) -> Value {
    use crate::exchange::AttemptOutcome;
    let (outcome, failure) = match a.outcome {
        AttemptOutcome::Answered(status) => (status.to_string(), None),
        AttemptOutcome::Failed(kind) => (kind.describe().to_string(), Some(kind.as_str())),
    };
    json!({"endpoint": a.endpoint.to_string(), "outcome": outcome, "failure": failure, "count": a.count})
}

fn backends(dp: &Dataplane, active: &crate::state::Active) -> Value {
    let mut names: Vec<&String> = active.backends.keys().collect();
    names.sort();
    let entries = names.into_iter().filter_map(|name| {
        let backend = active.backends.get(name)?;
        let endpoints: Vec<Value> = dp
            .health
            .report(backend)
            .into_iter()
            .map(|e| {
                json!({"address": e.addr.to_string(), "ready": e.ready, "serving": e.serving,
                       "terminating": e.terminating, "inFlight": e.in_flight, "failures": e.failures,
                       "backingOffMs": e.backing_off.map(|d| d.as_millis() as u64)})
            })
            .collect();
        let service =
            backend.service.as_ref().map(|s| json!({"namespace": s.namespace, "name": s.name, "port": s.port}));
        let tls = matches!(backend.upstream.transport, crate::upstream::transport::Transport::Tls(_));
        Some(json!({"name": name, "service": service, "protocol": format!("{:?}", backend.upstream.protocol),
                    "tls": tls, "endpoints": endpoints}))
    });
    Value::Array(entries.collect())
}

fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
