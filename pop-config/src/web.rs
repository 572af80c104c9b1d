//! `[web]`: the catalogue, watch and upload pages a PoP serves beside the video.

use std::path::PathBuf;

use crate::document::Section;

/// Where the pages and their assets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Web {
    /// The folder holding `pages/`, `static/`, `i18n/` and `node_modules/`.
    pub dir: PathBuf,
}

pub(crate) fn read(mut s: Section<'_>) -> Option<Web> {
    let dir = s.required_path("dir");
    if let Some(dir) = &dir
        && !dir.join("pages").is_dir()
    {
        s.report("dir", format!("{} has no pages/ folder", dir.display()));
    }
    s.finish();
    Some(Web { dir: dir? })
}
