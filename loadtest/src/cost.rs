//! The cost mode: scale what a run measured (the share of delivered bytes the origin had to
//! send) to the reference scale, and price "everything through a commercial CDN" against
//! "our PoPs plus origin egress" with a price table from a TOML file.

pub mod media;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::report::Report;
use crate::units::human_bytes;

/// The price table shipped with the harness; every assumption is documented in it.
pub const DEFAULT_PRICES: &str = include_str!("../prices.toml");

const GB: f64 = 1e9;
const DAYS_PER_MONTH: f64 = 365.25 / 12.0;

/// The price table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// `[scale]`.
    pub scale: Scale,
    /// `[commercial_cdn]`.
    pub commercial_cdn: CommercialCdn,
    /// `[pop]`.
    pub pop: Pop,
    /// `[origin]`.
    pub origin: Origin,
    /// `[encode]`.
    pub encode: Encode,
    /// `[storage]`.
    pub storage: Storage,
}

/// `[encode]`: what encoding costs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encode {
    /// $ per CPU core-hour.
    pub cpu_price_per_hour: f64,
}

/// `[storage]`: what keeping the catalogue costs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// $ per GB-month of blob storage.
    pub price_per_gb_month: f64,
    /// Days of uploads kept (the catalogue is uploads a day times this).
    pub retention_days: f64,
}

/// `[scale]`: the reference load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// Daily active users.
    pub daily_active_users: f64,
    /// Videos each watches a day.
    pub videos_per_user: f64,
    /// Bytes delivered per video watched.
    pub average_video_bytes: f64,
    /// Peak hour over the daily mean.
    pub peak_to_average: f64,
    /// Videos uploaded a day.
    pub uploads_per_day: f64,
}

/// `[commercial_cdn]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommercialCdn {
    /// $/GB delivered.
    pub price_per_gb: f64,
}

/// `[pop]`: our own PoP servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pop {
    /// Gbit/s one server sustains.
    pub server_capacity_gbps: f64,
    /// Share of capacity planned for the peak.
    pub target_utilisation: f64,
    /// $ per server per month.
    pub server_cost_per_month: f64,
    /// $/GB of viewer traffic the PoP pays for.
    pub transit_price_per_gb: f64,
}

/// `[origin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// $/GB from the origin to the PoPs.
    pub egress_price_per_gb: f64,
}

impl Prices {
    /// Parses and checks a price table.
    pub fn parse(text: &str, source_name: &str) -> Result<Self> {
        let err = |message: String| Error::Prices { source_name: source_name.to_owned(), message };
        let p: Self = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let positive = [
            ("scale.daily_active_users", p.scale.daily_active_users),
            ("scale.videos_per_user", p.scale.videos_per_user),
            ("scale.average_video_bytes", p.scale.average_video_bytes),
            ("scale.peak_to_average", p.scale.peak_to_average),
            ("pop.server_capacity_gbps", p.pop.server_capacity_gbps),
            ("pop.target_utilisation", p.pop.target_utilisation),
            ("scale.uploads_per_day", p.scale.uploads_per_day),
            ("storage.retention_days", p.storage.retention_days),
        ];
        for (field, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(err(format!("{field}: {v} must be a number > 0")));
            }
        }
        let non_negative = [
            ("commercial_cdn.price_per_gb", p.commercial_cdn.price_per_gb),
            ("pop.server_cost_per_month", p.pop.server_cost_per_month),
            ("pop.transit_price_per_gb", p.pop.transit_price_per_gb),
            ("origin.egress_price_per_gb", p.origin.egress_price_per_gb),
            ("encode.cpu_price_per_hour", p.encode.cpu_price_per_hour),
            ("storage.price_per_gb_month", p.storage.price_per_gb_month),
        ];
        for (field, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(err(format!("{field}: {v} must be a number ≥ 0")));
            }
        }
        if p.pop.target_utilisation > 1.0 {
            return Err(err(format!("pop.target_utilisation: {} must be at most 1", p.pop.target_utilisation)));
        }
        if p.scale.peak_to_average < 1.0 {
            return Err(err(format!("scale.peak_to_average: {} must be at least 1", p.scale.peak_to_average)));
        }
        Ok(p)
    }

    /// A file, or the shipped table.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        match path {
            Some(p) => Self::parse(&std::fs::read_to_string(p).map_err(Error::io(p))?, &p.display().to_string()),
            None => Self::parse(DEFAULT_PRICES, "prices.toml (built in)"),
        }
    }
}

/// Where the origin's share of delivered bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareSource {
    /// Origin egress counter delta over bytes delivered to viewers.
    OriginMetrics,
    /// 1 - byte hit ratio from `x-cache` (no origin metrics in the report).
    ByteHitRatio,
}

/// The projection.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// Bytes delivered a day at the reference scale.
    pub daily_bytes: f64,
    /// Mean delivery rate, Gbit/s.
    pub mean_gbps: f64,
    /// Peak delivery rate, Gbit/s.
    pub peak_gbps: f64,
    /// Fraction of delivered bytes the origin sends.
    pub origin_share: f64,
    /// How `origin_share` was measured.
    pub origin_share_source: ShareSource,
    /// $/day through a commercial CDN.
    pub commercial_cdn_per_day: f64,
    /// PoP servers needed for the peak.
    pub pop_servers: u64,
    /// $/day for those servers.
    pub pop_servers_per_day: f64,
    /// $/day of PoP transit.
    pub pop_transit_per_day: f64,
    /// $/day of origin egress.
    pub origin_egress_per_day: f64,
    /// $/day for our PoPs plus origin egress.
    pub ours_per_day: f64,
    /// Commercial minus ours.
    pub saving_per_day: f64,
}

/// The origin's share of delivered bytes as the report measured it.
pub fn origin_share(report: &Report) -> Result<(f64, ShareSource), String> {
    if let Some(o) = &report.origin
        && report.totals.bytes > 0
    {
        return Ok(((o.bytes / report.totals.bytes as f64).clamp(0.0, 1.0), ShareSource::OriginMetrics));
    }
    match report.cache.byte_hit_ratio {
        Some(h) => Ok((1.0 - h, ShareSource::ByteHitRatio)),
        None => Err("the report has neither origin egress (--origin-metrics) nor x-cache verdicts to scale".into()),
    }
}

/// Prices the reference scale with the origin sending `origin_share` of the bytes.
pub fn project(prices: &Prices, origin_share: f64, source: ShareSource) -> Cost {
    let s = &prices.scale;
    let daily_bytes = s.daily_active_users * s.videos_per_user * s.average_video_bytes;
    let daily_gb = daily_bytes / GB;
    let mean_gbps = daily_bytes * 8.0 / 86_400.0 / GB;
    let peak_gbps = mean_gbps * s.peak_to_average;
    let per_server = prices.pop.server_capacity_gbps * prices.pop.target_utilisation;
    let pop_servers = (peak_gbps / per_server).ceil().max(1.0) as u64;
    let pop_servers_per_day = pop_servers as f64 * prices.pop.server_cost_per_month / DAYS_PER_MONTH;
    let pop_transit_per_day = daily_gb * prices.pop.transit_price_per_gb;
    let origin_egress_per_day = daily_gb * origin_share * prices.origin.egress_price_per_gb;
    let commercial_cdn_per_day = daily_gb * prices.commercial_cdn.price_per_gb;
    let ours_per_day = pop_servers_per_day + pop_transit_per_day + origin_egress_per_day;
    Cost {
        daily_bytes,
        mean_gbps,
        peak_gbps,
        origin_share,
        origin_share_source: source,
        commercial_cdn_per_day,
        pop_servers,
        pop_servers_per_day,
        pop_transit_per_day,
        origin_egress_per_day,
        ours_per_day,
        saving_per_day: commercial_cdn_per_day - ours_per_day,
    }
}

/// The comparison as text.
pub fn render(c: &Cost, p: &Prices, report: &Report) -> String {
    let s = &p.scale;
    let gb = c.daily_bytes / GB;
    let source = match c.origin_share_source {
        ShareSource::OriginMetrics => "origin egress counter / bytes delivered",
        ShareSource::ByteHitRatio => "1 - byte hit ratio from x-cache",
    };
    let mut t = String::new();
    t += &format!(
        "Reference scale: {} users x {} videos x {} = {}/day ({:.0} Gbit/s mean, {:.0} Gbit/s peak)\n",
        money(s.daily_active_users, 0),
        s.videos_per_user,
        human_bytes(s.average_video_bytes),
        human_bytes(c.daily_bytes),
        c.mean_gbps,
        c.peak_gbps
    );
    t += &format!(
        "Measured in `{}` against {}: origin sends {:.2} % of delivered bytes ({source})\n\n",
        report.run.scenario,
        report.run.target,
        c.origin_share * 100.0
    );
    let row = |label: &str, dollars: f64, how: String| format!("  {label:<38}{:>14}   {how}\n", money(dollars, 2));
    t += &format!("  {:<38}{:>14}\n", "", "$/day");
    t += &row(
        "everything through a commercial CDN",
        c.commercial_cdn_per_day,
        format!("{} GB x ${}/GB", money(gb, 0), p.commercial_cdn.price_per_gb),
    );
    t += &row("our PoPs + origin egress", c.ours_per_day, String::new());
    t += &row(
        "  PoP servers",
        c.pop_servers_per_day,
        format!(
            "{} servers x ${}/month (peak / ({} Gbit/s x {}))",
            c.pop_servers, p.pop.server_cost_per_month, p.pop.server_capacity_gbps, p.pop.target_utilisation
        ),
    );
    t += &row(
        "  PoP transit",
        c.pop_transit_per_day,
        format!("{} GB x ${}/GB", money(gb, 0), p.pop.transit_price_per_gb),
    );
    t += &row(
        "  origin egress",
        c.origin_egress_per_day,
        format!("{} GB x ${}/GB", money(gb * c.origin_share, 0), p.origin.egress_price_per_gb),
    );
    let pct = if c.commercial_cdn_per_day > 0.0 { c.saving_per_day / c.commercial_cdn_per_day * 100.0 } else { 0.0 };
    t += &row("saving", c.saving_per_day, format!("{pct:.1} %"));
    t
}

/// `1,234,567.89`.
pub(crate) fn money(v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if v < 0.0 { "-" } else { "" };
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_reproduces_the_reference_cdn_bill() {
        let p = Prices::load(None).unwrap();
        let c = project(&p, 0.0, ShareSource::ByteHitRatio);
        // 5 M × 5 × 300 MB = 7.5 PB = 7.5 M GB; × $0.02 = $150,000 a day.
        assert!((c.daily_bytes - 7.5e15).abs() < 1.0);
        assert!((c.commercial_cdn_per_day - 150_000.0).abs() < 1e-6);
        // 7.5e15 B × 8 / 86 400 s = 694.4 Gbit/s mean, × 3 = 2083.3 peak.
        assert!((c.mean_gbps - 694.444).abs() < 0.01, "{}", c.mean_gbps);
        // 2083.3 / (20 × 0.7) = 148.8 → 149 servers.
        assert_eq!(c.pop_servers, 149);
        assert!((c.pop_servers_per_day - 149.0 * 1200.0 / DAYS_PER_MONTH).abs() < 1e-6);
        assert_eq!(c.origin_egress_per_day, 0.0);
        assert!((c.ours_per_day - c.pop_servers_per_day).abs() < 1e-9);
    }

    #[test]
    fn origin_egress_scales_with_the_measured_share() {
        let p = Prices::load(None).unwrap();
        let none = project(&p, 0.0, ShareSource::OriginMetrics);
        let some = project(&p, 0.04, ShareSource::OriginMetrics);
        // 4 % of 7.5 M GB at $0.05.
        assert!((some.origin_egress_per_day - 15_000.0).abs() < 1e-6);
        assert!((some.ours_per_day - none.ours_per_day - 15_000.0).abs() < 1e-6);
        assert!((some.saving_per_day - (150_000.0 - some.ours_per_day)).abs() < 1e-6);
    }

    #[test]
    fn price_tables_are_checked_field_by_field() {
        let bad = DEFAULT_PRICES.replace("target_utilisation = 0.7", "target_utilisation = 1.5");
        let e = Prices::parse(&bad, "p.toml").unwrap_err().to_string();
        assert!(e.contains("pop.target_utilisation") && e.contains("p.toml"), "{e}");
        let before_storage = DEFAULT_PRICES.split("\n[storage]").next().unwrap();
        assert!(Prices::parse(before_storage, "p").unwrap_err().to_string().contains("storage"), "a section is named");
        let bad = DEFAULT_PRICES.replace("price_per_gb = 0.02", "price_per_gb = 0.02\nprice_per_tb = 20");
        assert!(Prices::parse(&bad, "p").unwrap_err().to_string().contains("price_per_tb"));
        let bad = DEFAULT_PRICES.replace("daily_active_users = 5_000_000", "daily_active_users = 0");
        assert!(Prices::parse(&bad, "p").unwrap_err().to_string().contains("scale.daily_active_users"));
    }

    #[test]
    fn money_is_grouped() {
        assert_eq!(money(150_000.0, 2), "150,000.00");
        assert_eq!(money(1_234_567.891, 0), "1,234,568");
        assert_eq!(money(-12.5, 2), "-12.50");
        assert_eq!(money(999.0, 0), "999");
    }
}
