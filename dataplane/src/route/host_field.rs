//! A `Host` field's value as RFC 9112 §3.2 defines it (`uri-host [ ":" port ]`, RFC 3986 §3.2.2), parsed without
//! allocating: it is checked on every request.

/// The parts of a valid `Host` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostField<'a> {
    /// A registered name or an IPv4 address, or an IP literal with its brackets.
    pub host: &'a str,
    /// `None` when absent or empty (`host:`), which RFC 3986 §6.2.3 reads as the scheme's default.
    pub port: Option<u16>,
}

/// Parses a non-empty `Host` value; `None` when it is not `uri-host [ ":" port ]` (userinfo, a path, spaces, a port
/// that is not a 16-bit number, an empty host).
pub fn parse(value: &str) -> Option<HostField<'_>> {
    let (host, rest) = match value.strip_prefix('[') {
        Some(literal) => {
            let end = literal.find(']')?;
            let inside = &literal[..end];
            let ip = |b: u8| b.is_ascii_hexdigit() || matches!(b, b':' | b'.');
            if inside.is_empty() || !inside.bytes().all(ip) {
                return None;
            }
            value.split_at(end + 2)
        }
        None => {
            let end = value.find(':').unwrap_or(value.len());
            let (host, rest) = value.split_at(end);
            if host.is_empty() || !host.bytes().all(is_reg_name_byte) {
                return None;
            }
            (host, rest)
        }
    };
    let port = match rest.strip_prefix(':') {
        None if rest.is_empty() => None,
        None => return None,
        Some("") => None,
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => Some(digits.parse().ok()?),
        Some(_) => return None,
    };
    Some(HostField { host, port })
}

/// RFC 3986 reg-name: unreserved, percent-encoded (its `%`) and sub-delims.
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_with_and_without_ports_parse_and_the_rest_is_refused() {
        let field = |host, port| Some(HostField { host, port });
        assert_eq!(parse("x.test"), field("x.test", None));
        assert_eq!(parse("X.Test:8080"), field("X.Test", Some(8080)));
        assert_eq!(parse("x.test:"), field("x.test", None));
        assert_eq!(parse("10.0.0.1:80"), field("10.0.0.1", Some(80)));
        assert_eq!(parse("[::1]"), field("[::1]", None));
        assert_eq!(parse("[fe80::1]:443"), field("[fe80::1]", Some(443)));
        for bad in ["x test", "user@x.test", "x.test:port", "x.test:99999", "x.test/a", "[::1]x", "[]", "[::1", ":80"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(parse("x.test:+80"), None);
    }
}
