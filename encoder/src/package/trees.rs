//! The segment trees one package run writes (see [`crate::layout`]): the top level, clear or
//! AES-128, and `cbcs/`, from the same segmented samples. Each rendition's segments are cut
//! once and boxed once per tree.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout;
use crate::package::cenc::{CencKey, SampleEncryptor};
use crate::package::cmaf::Track;
use crate::package::crypt;
use crate::package::hls;
use crate::package::segmenter::Segment;
use crate::task::Encryption;

/// How the top-level tree's segments are sealed.
#[derive(Debug, Clone, Copy)]
pub(super) enum TopSealing {
    /// Clear output (no encryption asked).
    Clear,
    /// HLS AES-128 over whole segments.
    Aes128([u8; 16]),
}

/// The trees of one run.
#[derive(Debug, Clone)]
pub(super) struct Trees {
    /// The top-level tree, unless the profile is cbcs only.
    pub(super) top: Option<TopSealing>,
    /// The `cbcs/` tree's key, when the profile has it.
    pub(super) cbcs: Option<CencKey>,
}

impl Trees {
    /// The trees `encryption` asks for: the top level alone when clear or AES-128.
    pub(super) fn for_job(encryption: Option<&Encryption>) -> Result<Self> {
        let Some(e) = encryption else { return Ok(Self { top: Some(TopSealing::Clear), cbcs: None }) };
        let key = crypt::parse_key(&e.key_hex)?;
        Ok(Self {
            top: e.profile.writes_aes128().then_some(TopSealing::Aes128(key)),
            cbcs: e.profile.writes_cbcs().then(|| CencKey::from_content_key(&key)),
        })
    }
}

/// The `EXT-X-KEY` of the top-level media playlists.
pub(super) fn top_key(encryption: Option<&Encryption>) -> Option<hls::Key<'_>> {
    encryption.map(|e| hls::Key::Aes128 { uri: &e.key_uri })
}

/// The key URI as the cbcs media playlists must write it: they sit one folder deeper than
/// the top-level ones, so a relative URI (the origin's `../key`) gains a `../`; absolute
/// URIs, rooted paths and `data:` URIs stay as they are.
pub(super) fn cbcs_key_uri(uri: &str) -> String {
    let has_scheme = uri.split_once(':').is_some_and(|(scheme, _)| !scheme.is_empty() && !scheme.contains('/'));
    if has_scheme || uri.starts_with('/') { uri.to_owned() } else { format!("../{uri}") }
}

/// Segment bytes written for one segment, per tree.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Written {
    /// Bytes of the top-level copy.
    pub(super) top: Option<u64>,
    /// Bytes of the `cbcs/` copy.
    pub(super) cbcs: Option<u64>,
}

/// Writes one rendition's init segments and then its segments into every tree.
pub(super) struct RenditionWriter {
    name: String,
    top: Option<(PathBuf, TopSealing)>,
    cbcs: Option<(PathBuf, SampleEncryptor)>,
}

impl RenditionWriter {
    /// Creates the rendition's folders and writes its init segment in each tree.
    pub(super) fn open(
        out_dir: &Path,
        name: &str,
        track: &Track,
        trees: &Trees,
        files: &mut Vec<String>,
    ) -> Result<Self> {
        let top = match trees.top {
            Some(sealing) => {
                let dir = rendition_dir(out_dir, name)?;
                write_file(&dir.join(layout::INIT_SEGMENT), &track.init_segment()?)?;
                files.push(format!("{name}/{}", layout::INIT_SEGMENT));
                Some((dir, sealing))
            }
            None => None,
        };
        let cbcs = match &trees.cbcs {
            Some(key) => {
                let encryptor = track.encryptor(key)?;
                let dir = rendition_dir(&out_dir.join(layout::CBCS_TREE), name)?;
                write_file(&dir.join(layout::INIT_SEGMENT), &track.protected_init_segment(key)?)?;
                files.push(layout::cbcs_path(&format!("{name}/{}", layout::INIT_SEGMENT)));
                Some((dir, encryptor))
            }
            None => None,
        };
        Ok(Self { name: name.to_owned(), top, cbcs })
    }

    /// Writes `seg` into every tree. Segments must come in order: cbcs parses each slice
    /// against the parameter sets seen so far.
    pub(super) fn write(&mut self, seg: &Segment, files: &mut Vec<String>) -> Result<Written> {
        let file = layout::segment_name(seg.index);
        let mut written = Written::default();
        if let Some((dir, sealing)) = &self.top {
            let mut bytes = seg.media.segment()?;
            if let TopSealing::Aes128(key) = sealing {
                crypt::encrypt_segment(key, seg.index as u64, &mut bytes)?;
            }
            write_file(&dir.join(&file), &bytes)?;
            files.push(format!("{}/{file}", self.name));
            written.top = Some(bytes.len() as u64);
        }
        if let Some((dir, encryptor)) = &mut self.cbcs {
            let bytes = seg.media.protected_segment(encryptor)?;
            write_file(&dir.join(&file), &bytes)?;
            files.push(layout::cbcs_path(&format!("{}/{file}", self.name)));
            written.cbcs = Some(bytes.len() as u64);
        }
        Ok(written)
    }
}

fn rendition_dir(root: &Path, name: &str) -> Result<PathBuf> {
    let dir = root.join(name);
    fs::create_dir_all(&dir).map_err(Error::io("create folder", &dir))?;
    Ok(dir)
}

pub(super) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(Error::io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Protection;

    #[test]
    fn relative_key_uris_climb_out_of_the_cbcs_folder() {
        assert_eq!(cbcs_key_uri("../key"), "../../key");
        assert_eq!(cbcs_key_uri("key"), "../key");
        assert_eq!(cbcs_key_uri("/v1/videos/x/key"), "/v1/videos/x/key");
        assert_eq!(cbcs_key_uri("https://k.example/key"), "https://k.example/key");
        assert_eq!(cbcs_key_uri("data:text/plain;base64,AA=="), "data:text/plain;base64,AA==");
    }

    #[test]
    fn profiles_choose_the_trees() {
        let enc = |profile| Encryption { key_hex: "11".repeat(16), key_uri: "k".into(), profile, ..Default::default() };
        let t = Trees::for_job(None).unwrap();
        assert!(matches!(t.top, Some(TopSealing::Clear)) && t.cbcs.is_none());
        let t = Trees::for_job(Some(&enc(Protection::Aes128))).unwrap();
        assert!(matches!(t.top, Some(TopSealing::Aes128(_))) && t.cbcs.is_none());
        let t = Trees::for_job(Some(&enc(Protection::Cbcs))).unwrap();
        assert!(t.top.is_none() && t.cbcs.is_some());
        let t = Trees::for_job(Some(&enc(Protection::Both))).unwrap();
        assert!(matches!(t.top, Some(TopSealing::Aes128(_))) && t.cbcs.is_some());
    }
}
