//! The chart's Grafana dashboard, read for what it queries: every panel's PromQL `expr`, and the metric names in
//! them.

use anyhow::Context;
use std::collections::BTreeSet;
use std::path::Path;

/// Every `expr` of every panel's targets (panels nested in collapsed rows included), with the panel's title.
pub fn queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut panels: Vec<&serde_json::Value> = dashboard["panels"].as_array().into_iter().flatten().collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((panel["title"].as_str().unwrap_or("").to_string(), expr.to_string()));
            }
        }
    }
    out.reverse();
    out
}

/// Reads and parses the dashboard file.
pub fn load(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The metric names a PromQL expression uses that start with `prefix`, as written (`…_bucket` included). A small
/// tokenizer, not a parser: it skips string literals (label values, regular expressions) and Grafana's `$variables`,
/// and takes every other identifier with the prefix — in PromQL only metric names can have it, since label names
/// and functions here never do.
pub fn metric_names(expr: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = expr.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '"' | '\'' | '`' => skip_string(&mut chars, c),
            '$' => while chars.next_if(|(_, c)| is_identifier(*c)).is_some() {},
            c if is_identifier_start(c) => {
                let mut end = start + c.len_utf8();
                while let Some((i, c)) = chars.next_if(|(_, c)| is_identifier(*c)) {
                    end = i + c.len_utf8();
                }
                if expr[start..end].starts_with(prefix) {
                    names.insert(expr[start..end].to_string());
                }
            }
            _ => {}
        }
    }
    names
}

fn skip_string(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, quote: char) {
    while let Some((_, c)) = chars.next() {
        match c {
            // Raw strings (backticks) have no escapes.
            '\\' if quote != '`' => _ = chars.next(),
            c if c == quote => return,
            _ => {}
        }
    }
}

fn is_identifier_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_identifier(c: char) -> bool {
    is_identifier_start(c) || c.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr, "holdfast_").into_iter().collect()
    }

    #[test]
    fn takes_metric_names_and_leaves_label_values_variables_and_functions() {
        let expr = r#"histogram_quantile(0.99, sum by (namespace, le) (rate(holdfast_route_request_duration_seconds_bucket{namespace=~"$namespace", ingress="holdfast_x\"holdfast_y"}[$__rate_interval]))) / on() group_left holdfast_config_version or vector(0) * $holdfast_var + holdfast_a:b"#;
        assert_eq!(
            names(expr),
            ["holdfast_a:b", "holdfast_config_version", "holdfast_route_request_duration_seconds_bucket"]
        );
    }

    #[test]
    fn skips_single_quoted_and_raw_strings() {
        assert_eq!(names("holdfast_a{x='holdfast_b', y=`holdfast_c\\`} + holdfast_d"), ["holdfast_a", "holdfast_d"]);
    }

    #[test]
    fn finds_targets_in_every_panel_including_collapsed_rows() {
        let dashboard = serde_json::json!({"panels": [
            {"title": "a", "targets": [{"expr": "holdfast_a"}, {"refId": "no expr"}]},
            {"type": "row", "title": "r", "panels": [{"title": "b", "targets": [{"expr": "holdfast_b"}]}]},
        ]});
        let found: Vec<(String, String)> = queries(&dashboard);
        let titles: BTreeSet<&str> = found.iter().map(|(title, _)| title.as_str()).collect();
        assert_eq!(titles, BTreeSet::from(["a", "b"]));
        assert_eq!(found.len(), 2);
    }
}
