//! Origin egress from the origin's Prometheus metrics: a counter read before and after the
//! run (`origin_served_bytes_total` by default). The difference is what the PoP pulled
//! while the viewers watched, which is what the cost model needs.

use reqwest::Url;
use serde::{Deserialize, Serialize};

/// The default counter: object bytes the origin served.
pub const DEFAULT_METRIC: &str = "origin_served_bytes_total";

/// Egress measured over the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OriginEgress {
    /// The counter read.
    pub metric: String,
    /// Before the run.
    pub before: f64,
    /// After the run.
    pub after: f64,
    /// `after - before`.
    pub bytes: f64,
}

/// Reads the sum of `metric` over all its label sets.
pub async fn read(client: &reqwest::Client, url: &Url, metric: &str) -> Result<f64, String> {
    let r = client.get(url.clone()).send().await.map_err(|e| format!("{url}: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("{url}: {}", r.status()));
    }
    let page = r.text().await.map_err(|e| format!("{url}: {e}"))?;
    counter(&page, metric).ok_or_else(|| format!("{url} has no `{metric}`"))
}

/// The sum of a metric's samples in a Prometheus text page; `None` if it is absent.
pub fn counter(page: &str, metric: &str) -> Option<f64> {
    let mut found = None;
    for line in page.lines() {
        let Some(rest) = line.strip_prefix(metric) else { continue };
        // Exactly this name: followed by labels or the value, not a longer name.
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value = rest.rsplit_once('}').map_or(rest, |(_, v)| v).split_whitespace().next()?;
        if let Ok(v) = value.parse::<f64>() {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_over_labels_and_matched_exactly() {
        let page = "# HELP origin_served_bytes Object bytes served.\n# TYPE origin_served_bytes counter\n\
origin_served_bytes_total 1234\norigin_served_bytes_total_extra 99\n\
edge_served_bytes_total{tier=\"memory\"} 10\nedge_served_bytes_total{tier=\"disk\",x=\"a b\"} 5 1700000000\n\
# EOF\n";
        assert_eq!(counter(page, "origin_served_bytes_total"), Some(1234.0));
        assert_eq!(counter(page, "edge_served_bytes_total"), Some(15.0));
        assert_eq!(counter(page, "missing_total"), None);
        assert_eq!(counter("x 1e3\n", "x"), Some(1000.0));
    }
}
