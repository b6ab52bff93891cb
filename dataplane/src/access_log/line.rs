//! One access log line: JSON (with `--log-format json`) or a readable line, written by hand into a buffer — one per
//! request, so no serializer, no `format!`, no allocation but the buffer's own growth.
//!
//! Only what the dataplane decided or measured, and the request line: never a header value (no `Authorization`, no
//! `Cookie`), never a body. The query string is left out unless `--access-log-query` asks for it.

use super::time::rfc3339_millis;
use crate::exchange::{AttemptRecord, Exchange};
use std::io::Write;
use std::time::{Duration, SystemTime};

/// Everything a line says of one request.
pub struct Entry<'a> {
    pub exchange: &'a Exchange,
    pub status: u16,
    pub duration: Duration,
    pub tunnel: Option<Duration>,
    pub attempts: &'a [AttemptRecord],
    pub first_byte: Option<Duration>,
    pub waited: Duration,
    pub with_query: bool,
}

impl Entry<'_> {
    fn path(&self) -> &str {
        let uri = &self.exchange.head.uri;
        match self.with_query {
            true => uri.path_and_query().map_or(uri.path(), |pq| pq.as_str()),
            false => uri.path(),
        }
    }

    fn bytes_in(&self) -> u64 {
        self.exchange.progress().map_or(0, |p| p.received())
    }

    fn mode(&self) -> &'static str {
        self.exchange.progress().map_or("None", |p| p.mode.as_str())
    }
}

/// `{"time":…,"requestId":…,…}` and a newline.
pub fn json(entry: &Entry<'_>, now: SystemTime, out: &mut Vec<u8>) {
    let e = entry.exchange;
    out.extend_from_slice(b"{\"time\":\"");
    rfc3339_millis(now, out);
    out.extend_from_slice(b"\",\"type\":\"access\",\"requestId\":");
    json_str(&String::from_utf8_lossy(e.head.id.as_bytes()), out);
    let _ = write!(out, ",\"client\":\"{}\",\"method\":", e.head.client);
    json_str(e.head.method.as_str(), out);
    out.extend_from_slice(b",\"host\":");
    json_str(&e.head.host, out);
    out.extend_from_slice(b",\"path\":");
    json_str(entry.path(), out);
    let _ = write!(out, ",\"protocol\":\"{:?}\",\"status\":{}", e.head.version, entry.status);
    let _ = write!(out, ",\"bytesIn\":{},\"bytesOut\":{}", entry.bytes_in(), e.bytes_out());
    out.extend_from_slice(b",\"durationMs\":");
    millis(entry.duration, out);
    if let Some(first_byte) = entry.first_byte {
        out.extend_from_slice(b",\"firstByteMs\":");
        millis(first_byte, out);
    }
    if let Some(route) = &e.route {
        let labels = &route.labels;
        for (name, value) in [
            ("namespace", &labels.namespace),
            ("ingress", &labels.ingress),
            ("service", &labels.service),
            ("port", &labels.port),
        ] {
            let _ = write!(out, ",\"{name}\":");
            json_str(value, out);
        }
    }
    if let Some(backend) = &e.backend {
        out.extend_from_slice(b",\"backend\":");
        json_str(backend, out);
    }
    out.extend_from_slice(b",\"attempts\":[");
    for (i, attempt) in entry.attempts.iter().enumerate() {
        let comma = if i > 0 { "," } else { "" };
        let _ =
            write!(out, "{comma}{{\"endpoint\":\"{}\",\"outcome\":\"{}\"}}", attempt.endpoint, attempt.outcome.label());
    }
    out.extend_from_slice(b"],\"waitedMs\":");
    millis(entry.waited, out);
    let _ = write!(out, ",\"spooledBytes\":{},\"mode\":\"{}\"", e.spooled_bytes(), entry.mode());
    if let Some(lifetime) = entry.tunnel {
        out.extend_from_slice(b",\"tunnelMs\":");
        millis(lifetime, out);
    }
    out.extend_from_slice(b"}\n");
}

/// `TIME access CLIENT "METHOD HOST PATH PROTOCOL" STATUS in=… out=… DURATION …` and a newline.
pub fn text(entry: &Entry<'_>, now: SystemTime, out: &mut Vec<u8>) {
    let e = entry.exchange;
    rfc3339_millis(now, out);
    let _ = write!(out, " access {} \"{} ", e.head.client, e.head.method);
    printable(&e.head.host, out);
    out.push(b' ');
    printable(entry.path(), out);
    let _ = write!(out, " {:?}\" {} in={} out={} ", e.head.version, entry.status, entry.bytes_in(), e.bytes_out());
    millis(entry.duration, out);
    out.extend_from_slice(b"ms");
    if let Some(first_byte) = entry.first_byte {
        out.extend_from_slice(b" first_byte=");
        millis(first_byte, out);
        out.extend_from_slice(b"ms");
    }
    if let Some(route) = &e.route {
        let l = &route.labels;
        let _ = write!(out, " route={}/{} service={}:{}", l.namespace, l.ingress, l.service, l.port);
    }
    if let Some(backend) = &e.backend {
        let _ = write!(out, " backend={backend}");
    }
    out.extend_from_slice(b" attempts=");
    for (i, attempt) in entry.attempts.iter().enumerate() {
        let comma = if i > 0 { "," } else { "" };
        let _ = write!(out, "{comma}{}:{}", attempt.endpoint, attempt.outcome.label());
    }
    if entry.attempts.is_empty() {
        out.push(b'-');
    }
    out.extend_from_slice(b" waited=");
    millis(entry.waited, out);
    let _ = write!(out, "ms spooled={} mode={}", e.spooled_bytes(), entry.mode());
    if let Some(lifetime) = entry.tunnel {
        out.extend_from_slice(b" tunnel=");
        millis(lifetime, out);
        out.extend_from_slice(b"ms");
    }
    out.extend_from_slice(b" id=");
    printable(&String::from_utf8_lossy(e.head.id.as_bytes()), out);
    out.push(b'\n');
}

/// Milliseconds with three decimals (microseconds), from integers.
fn millis(d: Duration, out: &mut Vec<u8>) {
    let micros = d.as_micros();
    let _ = write!(out, "{}.{:03}", micros / 1000, micros % 1000);
}

/// A JSON string: quoted, with `"`, `\` and control characters escaped.
fn json_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for b in s.bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..0x20 | 0x7f => {
                let _ = write!(out, "\\u{b:04x}");
            }
            // Bytes of a multi-byte character pass as they are: `s` is UTF-8.
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Text for a readable line: control characters, spaces and quotes (which would break the line's fields) escaped.
fn printable(s: &str, out: &mut Vec<u8>) {
    for b in s.bytes() {
        match b {
            0..=0x20 | b'"' | b'\\' | 0x7f => {
                let _ = write!(out, "\\x{b:02x}");
            }
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_control_characters() {
        let mut out = Vec::new();
        json_str("a\"b\\c\nd\x01é", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\u000ad\u0001é""#);
    }

    #[test]
    fn text_fields_cannot_break_the_line() {
        let mut out = Vec::new();
        printable("/a b\"c\nd", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r"/a\x20b\x22c\x0ad");
    }

    #[test]
    fn milliseconds_keep_microseconds() {
        let mut out = Vec::new();
        millis(Duration::from_micros(12_345_678), &mut out);
        assert_eq!(out, b"12345.678");
    }
}
