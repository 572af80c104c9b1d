//! `report.json`: the machine-readable report, and what `loadtest cost` reads back.

use std::path::Path;

use super::Report;
use crate::error::{Error, Result};

/// Writes the report, pretty-printed.
pub fn write(path: &Path, report: &Report) -> Result<()> {
    let text = serde_json::to_string_pretty(report).expect("a report always serialises");
    std::fs::write(path, text + "\n").map_err(Error::io(path))
}

/// Reads `report.json` from a report directory (or the file itself).
pub fn read(path: &Path) -> Result<Report> {
    let file = if path.is_dir() { path.join("report.json") } else { path.to_owned() };
    let text = std::fs::read_to_string(&file).map_err(Error::io(&file))?;
    serde_json::from_str(&text).map_err(|e| Error::Report { path: file, message: e.to_string() })
}
