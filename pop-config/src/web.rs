//! `[web]`: the catalogue, watch and upload pages a PoP serves beside the video.

use std::path::PathBuf;

use crate::document::{Section, string};
use crate::origin::origin_url;

/// Where the pages and their assets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Web {
    /// The folder holding `pages/`, `static/`, `i18n/` and `node_modules/`.
    pub dir: PathBuf,
    /// The key service's public URL (the origin's `key_url`), which the pages' players reach
    /// directly for keys and licences; `None`: the first origin URL.
    pub key_service: Option<String>,
}

pub(crate) fn read(mut s: Section<'_>) -> Option<Web> {
    let dir = s.required_path("dir");
    let key_service = s.field("key_service", |v| {
        let text = string(v)?;
        origin_url(text).map_err(|why| format!("`{text}` is not a URL: {why}"))
    });
    if let Some(dir) = &dir
        && !dir.join("pages").is_dir()
    {
        s.report("dir", format!("{} has no pages/ folder", dir.display()));
    }
    s.finish();
    Some(Web { dir: dir?, key_service })
}
