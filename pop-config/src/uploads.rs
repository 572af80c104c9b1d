//! `[uploads]`: the tus upload intake the PoP forwards to the origin.

use crate::defaults;
use crate::document::{Section, boolean};
use crate::units::size;

/// Upload intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uploads {
    /// Whether the PoP accepts uploads.
    pub enabled: bool,
    /// Largest upload accepted, bytes.
    pub max_size: u64,
}

pub(crate) fn read(mut s: Section<'_>) -> Uploads {
    let enabled = s.field("enabled", boolean).unwrap_or(defaults::UPLOADS_ENABLED);
    let max_size = s.field("max_size", size).unwrap_or(defaults::UPLOADS_MAX_SIZE);
    if max_size == 0 {
        s.report("max_size", "must be larger than 0 (set enabled = false to refuse uploads)");
    }
    s.finish();
    Uploads { enabled, max_size }
}
