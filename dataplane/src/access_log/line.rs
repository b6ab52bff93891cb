//! One access log line: JSON (with `--log-format json`) or a readable line, written by hand into a buffer — one per
//! request, so no serializer, no `format!`, no allocation but the buffer's own growth.
//!
//! Only what the dataplane decided or measured, and the request line: never a header value (no `Authorization`, no
//! `Cookie`), never a body. The query string is left out unless `--access-log-query` asks for it.

use super::time::rfc3339_millis;
use crate::exchange::{AttemptRecord, AttemptsView, Exchange};
use crate::upstream::request::itoa_u64;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

/// Everything a line says of one request.
pub struct Entry<'a> {
    pub exchange: &'a Exchange,
    pub status: u16,
    pub duration: Duration,
    pub tunnel: Option<Duration>,
    pub attempts: &'a AttemptsView<'a>,
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
    out.extend_from_slice(b",\"client\":\"");
    socket_addr(e.head.client, out);
    out.extend_from_slice(b"\",\"method\":");
    json_str(e.head.method.as_str(), out);
    out.extend_from_slice(b",\"host\":");
    json_str(e.head.host(), out);
    out.extend_from_slice(b",\"path\":");
    json_str(entry.path(), out);
    out.extend_from_slice(b",\"protocol\":\"");
    out.extend_from_slice(version(e.head.version));
    out.extend_from_slice(b"\",\"status\":");
    number(entry.status.into(), out);
    out.extend_from_slice(b",\"bytesIn\":");
    number(entry.bytes_in(), out);
    out.extend_from_slice(b",\"bytesOut\":");
    number(e.bytes_out(), out);
    out.extend_from_slice(b",\"durationMs\":");
    millis(entry.duration, out);
    if let Some(first_byte) = entry.attempts.first_byte() {
        out.extend_from_slice(b",\"firstByteMs\":");
        millis(first_byte, out);
    }
    if let Some(route) = &e.route {
        let labels = &route.labels;
        let fields = [
            (&b",\"namespace\":"[..], &labels.namespace),
            (b",\"ingress\":", &labels.ingress),
            (b",\"service\":", &labels.service),
            (b",\"port\":", &labels.port),
        ];
        for (name, value) in fields {
            out.extend_from_slice(name);
            json_str(value, out);
        }
    }
    if let Some(backend) = &e.backend {
        out.extend_from_slice(b",\"backend\":");
        json_str(backend, out);
    }
    out.extend_from_slice(b",\"attempts\":[");
    for (i, attempt) in entry.attempts.records().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"endpoint\":\"");
        socket_addr(attempt.endpoint, out);
        out.extend_from_slice(b"\",\"outcome\":\"");
        outcome(attempt, out);
        out.push(b'"');
        if attempt.count > 1 {
            out.extend_from_slice(b",\"count\":");
            number(attempt.count.into(), out);
        }
        out.push(b'}');
    }
    out.push(b']');
    if entry.attempts.omitted() > 0 {
        out.extend_from_slice(b",\"attemptsOmitted\":");
        number(entry.attempts.omitted().into(), out);
    }
    out.extend_from_slice(b",\"waitedMs\":");
    millis(entry.attempts.waited(), out);
    out.extend_from_slice(b",\"spooledBytes\":");
    number(e.spooled_bytes(), out);
    out.extend_from_slice(b",\"mode\":\"");
    out.extend_from_slice(entry.mode().as_bytes());
    out.push(b'"');
    // Only for a Tee upload that gave up its spool file for want of room: the bytes after it were not kept, and
    // the request could not have been replayed.
    if let Some(offset) = e.unspooled_at() {
        out.extend_from_slice(b",\"unspooledAt\":");
        number(offset, out);
    }
    if let Some(lifetime) = entry.tunnel {
        out.extend_from_slice(b",\"tunnelMs\":");
        millis(lifetime, out);
    }
    // Only for a request a limit of Holdfast's cut short, such as `minBodyRate` (a bounded name).
    if let Some(cut) = e.cut() {
        out.extend_from_slice(b",\"cut\":\"");
        out.extend_from_slice(cut.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"}\n");
}

/// `TIME access CLIENT "METHOD HOST PATH PROTOCOL" STATUS in=… out=… DURATION …` and a newline.
pub fn text(entry: &Entry<'_>, now: SystemTime, out: &mut Vec<u8>) {
    let e = entry.exchange;
    rfc3339_millis(now, out);
    out.extend_from_slice(b" access ");
    socket_addr(e.head.client, out);
    out.extend_from_slice(b" \"");
    out.extend_from_slice(e.head.method.as_str().as_bytes());
    out.push(b' ');
    printable(e.head.host(), out);
    out.push(b' ');
    printable(entry.path(), out);
    out.push(b' ');
    out.extend_from_slice(version(e.head.version));
    out.extend_from_slice(b"\" ");
    number(entry.status.into(), out);
    out.extend_from_slice(b" in=");
    number(entry.bytes_in(), out);
    out.extend_from_slice(b" out=");
    number(e.bytes_out(), out);
    out.push(b' ');
    millis(entry.duration, out);
    out.extend_from_slice(b"ms");
    if let Some(first_byte) = entry.attempts.first_byte() {
        out.extend_from_slice(b" first_byte=");
        millis(first_byte, out);
        out.extend_from_slice(b"ms");
    }
    if let Some(route) = &e.route {
        let l = &route.labels;
        for (name, value, separator) in [
            (&b" route="[..], &l.namespace, &b"/"[..]),
            (b"", &l.ingress, b" service="),
            (b"", &l.service, b":"),
            (b"", &l.port, b""),
        ] {
            out.extend_from_slice(name);
            printable(value, out);
            out.extend_from_slice(separator);
        }
    }
    if let Some(backend) = &e.backend {
        out.extend_from_slice(b" backend=");
        printable(backend, out);
    }
    out.extend_from_slice(b" attempts=");
    for (i, attempt) in entry.attempts.records().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        socket_addr(attempt.endpoint, out);
        out.push(b':');
        outcome(attempt, out);
        if attempt.count > 1 {
            out.push(b'x');
            number(attempt.count.into(), out);
        }
    }
    if entry.attempts.records().next().is_none() {
        out.push(b'-');
    }
    if entry.attempts.omitted() > 0 {
        out.extend_from_slice(b",+");
        number(entry.attempts.omitted().into(), out);
    }
    out.extend_from_slice(b" waited=");
    millis(entry.attempts.waited(), out);
    out.extend_from_slice(b"ms spooled=");
    number(e.spooled_bytes(), out);
    out.extend_from_slice(b" mode=");
    out.extend_from_slice(entry.mode().as_bytes());
    if let Some(offset) = e.unspooled_at() {
        out.extend_from_slice(b" unspooled_at=");
        number(offset, out);
    }
    if let Some(lifetime) = entry.tunnel {
        out.extend_from_slice(b" tunnel=");
        millis(lifetime, out);
        out.extend_from_slice(b"ms");
    }
    if let Some(cut) = e.cut() {
        out.extend_from_slice(b" cut=");
        out.extend_from_slice(cut.as_bytes());
    }
    out.extend_from_slice(b" id=");
    printable(&String::from_utf8_lossy(e.head.id.as_bytes()), out);
    out.push(b'\n');
}

/// Milliseconds with three decimals (microseconds), from integers.
fn millis(d: Duration, out: &mut Vec<u8>) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    number(micros / 1000, out);
    let frac = micros % 1000;
    out.extend_from_slice(&[b'.', b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8]);
}

fn number(n: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa_u64(n, &mut [0; 20]));
}

/// `a.b.c.d:port` by hand (the `Display` of a socket address goes through the formatting machinery, twice per
/// line); IPv6 addresses take the usual way.
fn socket_addr(addr: SocketAddr, out: &mut Vec<u8>) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                number(octet.into(), out);
            }
        }
        IpAddr::V6(ip) => {
            use std::io::Write;
            let _ = write!(out, "[{ip}]");
        }
    }
    out.push(b':');
    number(addr.port().into(), out);
}

fn version(version: http::Version) -> &'static [u8] {
    match version {
        http::Version::HTTP_09 => b"HTTP/0.9",
        http::Version::HTTP_10 => b"HTTP/1.0",
        http::Version::HTTP_2 => b"HTTP/2.0",
        http::Version::HTTP_3 => b"HTTP/3.0",
        _ => b"HTTP/1.1",
    }
}

/// An attempt's status, or its failure's name.
fn outcome(attempt: &AttemptRecord, out: &mut Vec<u8>) {
    match attempt.outcome {
        crate::exchange::AttemptOutcome::Answered(status) => number(status.into(), out),
        crate::exchange::AttemptOutcome::Failed(kind) => out.extend_from_slice(kind.as_str().as_bytes()),
    }
}

/// A JSON string: quoted, with `"`, `\` and control characters escaped.
fn json_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for b in s.bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..0x20 | 0x7f => {
                let hex = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex[usize::from(b >> 4)], hex[usize::from(b & 15)]]);
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
                let hex = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'x', hex[usize::from(b >> 4)], hex[usize::from(b & 15)]]);
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

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn addresses_and_versions_are_written_as_display_would() {
        for addr in ["10.0.0.7:51234", "127.0.0.1:0", "255.255.255.255:65535", "[::1]:8080", "[2001:db8::7]:443"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut out = Vec::new();
            socket_addr(addr, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), addr.to_string());
        }
        for v in [http::Version::HTTP_10, http::Version::HTTP_11, http::Version::HTTP_2] {
            assert_eq!(std::str::from_utf8(version(v)).unwrap(), format!("{v:?}"));
        }
    }
}
