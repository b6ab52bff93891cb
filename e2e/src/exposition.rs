//! A Prometheus text scrape, read for the names it exposes: every sample's name, and every family its `# TYPE`
//! lines declare — a family with labels has no sample until its first series is made, yet Prometheus (and so a
//! dashboard) can query it as soon as it does.

use std::collections::{BTreeMap, BTreeSet};

/// What one or more scrapes exposed.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name → type (`counter`, `gauge`, `histogram`, …), from `# TYPE` lines.
    pub types: BTreeMap<String, String>,
    /// Names of the samples (`holdfast_requests_total`, `holdfast_upstream_wait_seconds_bucket`, …).
    pub samples: BTreeSet<String>,
    /// Every sample's name and labels.
    pub series: Vec<(String, Labels)>,
}

pub type Labels = BTreeMap<String, String>;

impl Exposition {
    /// Adds the names of one scrape's text.
    pub fn add(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(declared) = line.strip_prefix("# TYPE ") {
                if let Some((name, kind)) = declared.split_once(' ') {
                    self.types.insert(name.to_string(), kind.trim().to_string());
                }
            } else if !line.starts_with('#') && !line.is_empty() {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                self.samples.insert(line[..end].to_string());
                let labels = line[end..].strip_prefix('{').map(labels).unwrap_or_default();
                self.series.push((line[..end].to_string(), labels));
            }
        }
    }

    /// Whether a query can name `metric` as written: a sample of that name was exposed, or a family was declared
    /// whose samples carry it (a counter's `_total`; a histogram's `_bucket`, `_sum` and `_count`; a gauge itself).
    pub fn exposes(&self, metric: &str) -> bool {
        if self.samples.contains(metric) {
            return true;
        }
        let declared = |family: &str, kinds: &[&str]| self.types.get(family).is_some_and(|k| kinds.contains(&&**k));
        if let Some(family) = histogram_family(metric) {
            return declared(family, &["histogram"]);
        }
        if let Some(family) = metric.strip_suffix("_total") {
            return declared(family, &["counter"]);
        }
        declared(metric, &["gauge", "unknown", "untyped"])
    }

    /// Whether at least one sample of `metric` (as a query names it) was exposed.
    pub fn has_samples(&self, metric: &str) -> bool {
        self.samples.contains(metric)
    }

    /// The label sets of `metric`'s samples.
    pub fn label_sets(&self, metric: &str) -> Vec<&Labels> {
        self.series.iter().filter(|(name, _)| name == metric).map(|(_, labels)| labels).collect()
    }
}

/// The labels of a sample line, from just after its `{`: `name="value"` pairs, values with `\\`, `\"` and `\n`
/// escapes, up to the closing `}`.
fn labels(text: &str) -> Labels {
    let mut labels = Labels::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, escaped)) => value.push(escaped),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(name.trim_start_matches([',', ' ']).to_string(), value);
        rest = &after[end..];
        if rest.starts_with('}') {
            break;
        }
    }
    labels
}

/// The histogram a `_bucket`, `_sum` or `_count` name belongs to.
pub fn histogram_family(metric: &str) -> Option<&str> {
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| metric.strip_suffix(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "\
# HELP holdfast_requests Client requests answered, by status.
# TYPE holdfast_requests counter
holdfast_requests_total{status=\"200\"} 3
# TYPE holdfast_route_replays counter
# TYPE holdfast_upstream_wait_seconds histogram
holdfast_upstream_wait_seconds_sum 0.0
holdfast_upstream_wait_seconds_count 0
holdfast_upstream_wait_seconds_bucket{le=\"0.01\"} 0
# TYPE holdfast_spool_bytes gauge
holdfast_spool_bytes 0
# EOF
";

    #[test]
    fn a_family_declared_without_samples_is_exposed_under_its_sample_names_only() {
        let mut exposition = Exposition::default();
        exposition.add(SCRAPE);
        for metric in
            ["holdfast_requests_total", "holdfast_route_replays_total", "holdfast_upstream_wait_seconds_bucket"]
        {
            assert!(exposition.exposes(metric), "{metric}");
        }
        assert!(exposition.exposes("holdfast_spool_bytes"));
        for metric in
            ["holdfast_requests", "holdfast_route_replays_bucket", "holdfast_spool_bytes_bucket", "holdfast_nope"]
        {
            assert!(!exposition.exposes(metric), "{metric}");
        }
        assert!(exposition.has_samples("holdfast_requests_total"));
        assert!(!exposition.has_samples("holdfast_route_replays_total"));
    }

    #[test]
    fn reads_the_labels_of_each_sample_with_their_escapes() {
        let mut exposition = Exposition::default();
        exposition.add("holdfast_route_requests_total{namespace=\"apps\",ingress=\"a\\\"b,c}\",port=\"http\"} 9\n");
        let [labels] = exposition.label_sets("holdfast_route_requests_total")[..] else { panic!("one series") };
        let expected = [("namespace", "apps"), ("ingress", "a\"b,c}"), ("port", "http")];
        assert_eq!(*labels, expected.map(|(k, v)| (k.to_string(), v.to_string())).into_iter().collect::<Labels>());
        assert_eq!(exposition.label_sets("holdfast_spool_bytes"), Vec::<&Labels>::new());
    }
}
