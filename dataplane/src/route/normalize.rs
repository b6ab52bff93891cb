//! The request path as routing sees it and as the upstream receives it: one normal form, so that a backend can never
//! be handed a path that resolves to a place the Ingress gives to another backend (`/public/../admin`).
//!
//! The rules (docs/behaviour.md, "Path normalisation"), close to nginx's location matching and to Envoy's
//! `normalize_path` + `merge_slashes` with escaped slashes kept:
//! - a percent-encoded *unreserved* character (RFC 3986 §2.3: letters, digits, `-._~`) is decoded, so `%2E` is `.`;
//!   every other escape is kept, with upper-case hex (`%2f` → `%2F`); a `%` without two hex digits is refused;
//! - repeated slashes are merged, then `.` and `..` segments are removed (RFC 3986 §5.2.4); a `..` above the root is
//!   refused;
//! - `%2F`, `%5C` and a literal `\` stay as they are (apps put `%2F` inside a segment), but a segment in which they
//!   would delimit a `.` or `..` once decoded — the classic `..%2F` — is refused, as is a `.`/`..` hidden behind a
//!   `;` parameter (`..;/`, which Tomcat resolves).
//!
//! Pure, and allocation-free on a path without escapes that needs none of this (nearly every one); a path that is
//! already normal is always borrowed back unchanged.

use std::borrow::Cow;

/// Why a request path has no normal form (the client gets 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not begin with '/'")]
    NotOriginForm,
    #[error("the path has a '%' that is not followed by two hexadecimal digits")]
    BadEscape,
    #[error("the path climbs above the root with '..'")]
    AboveRoot,
    #[error("the path hides a '.' or '..' segment behind an encoded slash, a backslash or a ';' parameter")]
    HiddenDotSegment,
}

/// The normal form of a request path (without its query). `*` (asterisk-form) and the empty path of an
/// authority-form `CONNECT` are returned as they are; any other path must begin with `/`.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if path.is_empty() || path == "*" {
        return Ok(Cow::Borrowed(path));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotOriginForm);
    };
    if is_normal(rest) {
        return Ok(Cow::Borrowed(path));
    }
    // A path with escapes is rewritten even when it is normal already: handed back borrowed all the same, so that
    // the caller leaves the request as it is.
    match rewrite(rest)? {
        normal if normal == path => Ok(Cow::Borrowed(path)),
        normal => Ok(Cow::Owned(normal)),
    }
}

/// Whether the path after its first `/` is already in normal form, checked without allocating: no escape, no
/// backslash, no empty segment but a trailing one, no segment that is or hides a dot segment.
fn is_normal(rest: &str) -> bool {
    if rest.bytes().any(|b| b == b'%' || b == b'\\') {
        return false;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last) || is_dot(before_parameter(segment)) {
            return false;
        }
    }
    true
}

/// The slow path: every segment decoded and classified, the output built as a stack of segments.
fn rewrite(rest: &str) -> Result<String, PathError> {
    let mut out = String::with_capacity(rest.len() + 1);
    let mut trailing_slash = false;
    let mut segments = rest.split('/').peekable();
    while let Some(raw) = segments.next() {
        let segment = decode_segment(raw)?;
        // A segment that ends the path with nothing after it leaves a directory: `/a/b/..` is `/a/`, as in RFC 3986.
        trailing_slash = segments.peek().is_none();
        match segment.as_str() {
            "" | "." => {}
            ".." => {
                let parent = out.rfind('/').ok_or(PathError::AboveRoot)?;
                out.truncate(parent);
            }
            _ => {
                if hides_dot_segment(&segment) {
                    return Err(PathError::HiddenDotSegment);
                }
                out.push('/');
                out.push_str(&segment);
                trailing_slash = false;
            }
        }
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// One segment with its unreserved escapes decoded and the hex of the others in upper case.
fn decode_segment(raw: &str) -> Result<String, PathError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let hex = rest.as_bytes().get(at + 1..at + 3).ok_or(PathError::BadEscape)?;
        let (high, low) = (hex_value(hex[0])?, hex_value(hex[1])?);
        let byte = high << 4 | low;
        if is_unreserved(byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(hex[0].to_ascii_uppercase()));
            out.push(char::from(hex[1].to_ascii_uppercase()));
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn hex_value(digit: u8) -> Result<u8, PathError> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(PathError::BadEscape),
    }
}

/// RFC 3986 §2.3: characters that mean the same encoded or not.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Whether a decoded segment (not itself `.` or `..`) would yield a `.` or `..` segment to a backend that decodes
/// `%2F` or `%5C`, treats `\` as `/` (WHATWG URL parsers, Windows servers), or drops `;` parameters (Tomcat).
fn hides_dot_segment(segment: &str) -> bool {
    let upper_escapes = segment.replace("%2F", "/").replace("%5C", "/").replace('\\', "/");
    upper_escapes.split('/').any(|piece| is_dot(before_parameter(piece)))
}

/// A segment without its `;` parameters.
fn before_parameter(segment: &str) -> &str {
    segment.split_once(';').map_or(segment, |(name, _)| name)
}

fn is_dot(segment: &str) -> bool {
    segment == "." || segment == ".."
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
