//! Encoding and storage at the reference scale, from two origins' measured metrics: one that
//! encoded a catalogue's whole ladder at upload, and one that ran the just-in-time policy
//! (floor at upload, the rest when watched) on the same catalogue while the run's viewers
//! watched. Three designs side by side, each with delivery, storage and encode per day:
//! everything through a commercial CDN (full ladder at the origin), the full ladder with our
//! PoPs, and the just-in-time policy with our PoPs.

use serde::Serialize;

use super::{Cost, DAYS_PER_MONTH, GB, Prices};

/// What one origin's Prometheus page says a catalogue cost to encode and keep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OriginFigures {
    /// Videos in the catalogue (`origin_catalogue_videos`).
    pub videos: f64,
    /// CPU seconds every upload costs whoever watches: its encode
    /// (`origin_encode_cpu_seconds_total{reason="upload"}`) and its rungs' opening segments
    /// (`reason="opening"`).
    pub upload_cpu_seconds: f64,
    /// CPU seconds of encodes viewers caused: just-in-time, look-ahead and promotion.
    pub on_demand_cpu_seconds: f64,
    /// Bytes in blob storage (`origin_stored_bytes`, every kind).
    pub stored_bytes: f64,
}

impl OriginFigures {
    /// Reads the figures from a metrics page; names what is missing.
    pub fn parse(page: &str, what: &str) -> Result<Self, String> {
        let need = |metric: &str, labels: &[(&str, &str)]| {
            sum(page, metric, labels).ok_or_else(|| format!("{what}: no `{metric}` {labels:?} in the metrics page"))
        };
        let videos = need("origin_catalogue_videos", &[])?;
        if videos < 1.0 {
            return Err(format!("{what}: the catalogue is empty (origin_catalogue_videos = {videos})"));
        }
        let on_demand = ["jit", "lookahead", "promotion"]
            .iter()
            .map(|r| sum(page, "origin_encode_cpu_seconds_total", &[("reason", r)]).unwrap_or(0.0))
            .sum();
        let opening = sum(page, "origin_encode_cpu_seconds_total", &[("reason", "opening")]).unwrap_or(0.0);
        Ok(Self {
            videos,
            upload_cpu_seconds: need("origin_encode_cpu_seconds_total", &[("reason", "upload")])? + opening,
            on_demand_cpu_seconds: on_demand,
            stored_bytes: need("origin_stored_bytes", &[])?,
        })
    }
}

/// The sum of a metric's samples whose labels include every one of `labels`.
fn sum(page: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(metric) else { continue };
        let (set, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once('}')?,
            None if rest.starts_with(' ') => ("", rest),
            None => continue,
        };
        if !labels.iter().all(|(k, v)| set.split(',').any(|pair| pair.trim() == format!("{k}=\"{v}\""))) {
            continue;
        }
        if let Some(v) = value.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// One design's bill, $/day.
#[derive(Debug, Clone, Serialize)]
pub struct Design {
    /// Name.
    pub name: &'static str,
    /// Delivering the bytes viewers watch.
    pub delivery: f64,
    /// Keeping the catalogue.
    pub storage: f64,
    /// Encoding uploads and what viewers cause.
    pub encode: f64,
    /// The sum.
    pub total: f64,
    /// CPU-hours of encoding a day.
    pub encode_cpu_hours: f64,
    /// Bytes kept per video.
    pub bytes_per_video: f64,
}

/// The three designs at the reference scale.
#[derive(Debug, Clone, Serialize)]
pub struct Designs {
    /// Videos watched a day.
    pub views_per_day: f64,
    /// Videos uploaded a day.
    pub uploads_per_day: f64,
    /// Videos kept (uploads a day x retention).
    pub catalogue: f64,
    /// Views in the measured run (the just-in-time CPU is spread over them).
    pub run_views: u64,
    /// The full-ladder origin's figures.
    pub full: OriginFigures,
    /// The just-in-time origin's figures.
    pub policy: OriginFigures,
    /// Commercial CDN, full ladder, just-in-time policy.
    pub designs: Vec<Design>,
}

/// Prices the three designs. `delivery` is the delivery projection of the just-in-time run,
/// and `run_views` its viewing sessions (`playback.sessions` of its report).
pub fn designs(
    prices: &Prices,
    delivery: &Cost,
    run_views: u64,
    full: OriginFigures,
    policy: OriginFigures,
) -> Result<Designs, String> {
    if run_views == 0 {
        return Err("the report has no viewing session to spread the just-in-time CPU over".into());
    }
    let s = &prices.scale;
    let views_per_day = s.daily_active_users * s.videos_per_user;
    let uploads_per_day = s.uploads_per_day;
    let catalogue = uploads_per_day * prices.storage.retention_days;
    let cpu_price = prices.encode.cpu_price_per_hour / 3600.0;
    let keep =
        |bytes_per_video: f64| catalogue * bytes_per_video / GB * prices.storage.price_per_gb_month / DAYS_PER_MONTH;

    let full_cpu = uploads_per_day * full.upload_cpu_seconds / full.videos;
    let full_bytes = full.stored_bytes / full.videos;
    // Measured on a small catalogue watched briefly, every view finds cold rungs: the
    // per-view cost is an upper bound of what a large, warm catalogue spends.
    let policy_cpu = uploads_per_day * policy.upload_cpu_seconds / policy.videos
        + views_per_day * policy.on_demand_cpu_seconds / run_views as f64;
    let policy_bytes = policy.stored_bytes / policy.videos;
    let design = |name, delivery: f64, cpu_seconds: f64, bytes: f64| {
        let (storage, encode) = (keep(bytes), cpu_seconds * cpu_price);
        Design {
            name,
            delivery,
            storage,
            encode,
            total: delivery + storage + encode,
            encode_cpu_hours: cpu_seconds / 3600.0,
            bytes_per_video: bytes,
        }
    };
    let designs = vec![
        design("commercial CDN, full ladder", delivery.commercial_cdn_per_day, full_cpu, full_bytes),
        design("our PoPs, full ladder", delivery.ours_per_day, full_cpu, full_bytes),
        design("our PoPs, just-in-time long tail", delivery.ours_per_day, policy_cpu, policy_bytes),
    ];
    Ok(Designs { views_per_day, uploads_per_day, catalogue, run_views, full, policy, designs })
}

/// The designs as text.
pub fn render(d: &Designs, p: &Prices) -> String {
    let mut t = String::new();
    t += &format!(
        "\nEncode and storage: {} uploads/day kept {} days ({} videos), {} views/day; \
         ${}/CPU-hour, ${}/GB-month\n",
        super::money(d.uploads_per_day, 0),
        p.storage.retention_days,
        super::money(d.catalogue, 0),
        super::money(d.views_per_day, 0),
        p.encode.cpu_price_per_hour,
        p.storage.price_per_gb_month,
    );
    t += &format!(
        "Measured: full ladder {:.1} CPU-s and {} per video; just-in-time {:.1} CPU-s and {} per video \
         at upload, {:.2} CPU-s per view ({} views)\n\n",
        d.full.upload_cpu_seconds / d.full.videos,
        crate::units::human_bytes(d.full.stored_bytes / d.full.videos),
        d.policy.upload_cpu_seconds / d.policy.videos,
        crate::units::human_bytes(d.policy.stored_bytes / d.policy.videos),
        d.policy.on_demand_cpu_seconds / d.run_views as f64,
        d.run_views,
    );
    t += &format!(
        "  {:<34}{:>14}{:>14}{:>14}{:>14}{:>12}\n",
        "$/day", "delivery", "storage", "encode", "total", "CPU-h/day"
    );
    for x in &d.designs {
        t += &format!(
            "  {:<34}{:>14}{:>14}{:>14}{:>14}{:>12}\n",
            x.name,
            super::money(x.delivery, 0),
            super::money(x.storage, 0),
            super::money(x.encode, 0),
            super::money(x.total, 0),
            super::money(x.encode_cpu_hours, 0),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{ShareSource, project};

    const FULL: &str = "# HELP origin_catalogue_videos Videos.\norigin_catalogue_videos 10\n\
origin_encode_cpu_seconds_total{reason=\"upload\"} 400.0\n\
origin_stored_bytes{kind=\"original\"} 100000000\norigin_stored_bytes{kind=\"floor\"} 300000000\n";
    const POLICY: &str = "origin_catalogue_videos 10\n\
origin_encode_cpu_seconds_total{reason=\"upload\"} 90.0\n\
origin_encode_cpu_seconds_total{reason=\"opening\"} 10.0\n\
origin_encode_cpu_seconds_total{reason=\"jit\"} 30.0\norigin_encode_cpu_seconds_total{reason=\"lookahead\"} 20.0\n\
origin_stored_bytes{kind=\"original\"} 100000000\norigin_stored_bytes{kind=\"floor\"} 50000000\n\
origin_stored_bytes{kind=\"materialised\"} 10000000\norigin_stored_bytes{kind=\"encode_index\"} 100000\n";

    #[test]
    fn figures_come_from_the_metrics_page() {
        let f = OriginFigures::parse(POLICY, "p").unwrap();
        assert_eq!(f.videos, 10.0);
        assert_eq!((f.upload_cpu_seconds, f.on_demand_cpu_seconds), (100.0, 50.0));
        assert_eq!(f.stored_bytes, 160_100_000.0);
        let e = OriginFigures::parse("origin_catalogue_videos 3\n", "full ladder").unwrap_err();
        assert!(e.contains("full ladder") && e.contains("origin_encode_cpu_seconds_total"), "{e}");
        assert!(OriginFigures::parse("origin_catalogue_videos 0\n", "x").unwrap_err().contains("empty"));
        assert_eq!(
            sum("a_total{x=\"1\",y=\"2\"} 3\na_total{x=\"2\"} 4\na_totals 9\n", "a_total", &[("x", "1")]),
            Some(3.0)
        );
    }

    #[test]
    fn designs_scale_the_measured_figures() {
        let prices = Prices::load(None).unwrap();
        let delivery = project(&prices, 0.01, ShareSource::OriginMetrics);
        let full = OriginFigures::parse(FULL, "full").unwrap();
        let policy = OriginFigures::parse(POLICY, "policy").unwrap();
        let d = designs(&prices, &delivery, 100, full, policy).unwrap();
        let s = &prices.scale;
        let views = s.daily_active_users * s.videos_per_user;
        assert_eq!(d.views_per_day, views);
        let [cdn, own, jit] = &d.designs[..] else { panic!("three designs") };
        assert_eq!(cdn.delivery, delivery.commercial_cdn_per_day);
        assert_eq!(own.delivery, delivery.ours_per_day);
        // 40 CPU-s per upload; 10 at upload plus 0.5 per view.
        let hour = prices.encode.cpu_price_per_hour;
        assert!((own.encode - s.uploads_per_day * 40.0 / 3600.0 * hour).abs() < 1e-6);
        let jit_cpu = s.uploads_per_day * 10.0 + views * 0.5;
        assert!((jit.encode - jit_cpu / 3600.0 * hour).abs() < 1e-6);
        // 40 MB against 16.01 MB per video.
        let month = prices.storage.price_per_gb_month / DAYS_PER_MONTH;
        let catalogue = s.uploads_per_day * prices.storage.retention_days;
        assert!((own.storage - catalogue * 0.04 * month).abs() < 1e-6);
        assert!((jit.storage - catalogue * 0.01601 * month).abs() < 1e-6);
        assert!((jit.total - (jit.delivery + jit.storage + jit.encode)).abs() < 1e-9);
        assert!(render(&d, &prices).contains("just-in-time long tail"));
        let (full, policy) = (d.full.clone(), d.policy.clone());
        assert!(designs(&prices, &delivery, 0, full, policy).is_err());
    }
}
