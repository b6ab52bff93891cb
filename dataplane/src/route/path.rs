//! Ingress `Prefix` path matching: element by element on `/`, case-sensitive, trailing slash ignored.

/// A `Prefix` rule path without its trailing slash; `/` stays `/`.
pub fn normalize_prefix(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/"
    } else {
        trimmed
    }
}

/// Whether a normalized `Prefix` rule matches a request path: every element of the rule equals the request's
/// element at the same position, so `/aaa` matches `/aaa`, `/aaa/` and `/aaa/ccc` but not `/aaaccc`.
pub fn prefix_matches(rule: &str, request_path: &str) -> bool {
    if rule == "/" {
        return true;
    }
    match request_path.strip_prefix(rule) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}
