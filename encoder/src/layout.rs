//! The published object layout of one video: the single source of truth for file names,
//! shared by the packager, the origin that serves them and the tests that read them.
//!
//! ```text
//! master.m3u8              HLS multivariant playlist (written last: its presence means complete)
//! manifest.mpd             DASH manifest: over the top-level segments for clear output,
//!                          over the cbcs/ segments whenever cbcs is written
//! {rendition}/init.mp4     CMAF header (always clear)
//! {rendition}/seg_NNNNN.m4s CMAF media segments, numbered from 0 (AES-128 when encrypted)
//! {rendition}/index.m3u8   HLS media playlist
//! cbcs/master.m3u8         HLS multivariant playlist of the cbcs tree
//! cbcs/{rendition}/init.mp4      CMAF header with encv/enca + sinf and a pssh (no sample data)
//! cbcs/{rendition}/seg_NNNNN.m4s CENC 'cbcs' media segments (senc/saiz/saio), same numbering
//! cbcs/{rendition}/index.m3u8    HLS media playlist, METHOD=SAMPLE-AES
//! poster.jpg  storyboard.jpg  storyboard.vtt
//! ```
//!
//! Which trees exist depends on the protection profile ([`crate::task::Protection`]):
//! clear output and `aes128` write only the top level; `both` adds `cbcs/` and the MPD;
//! `cbcs` writes only `cbcs/`, the MPD, and a top-level `master.m3u8` whose variants point
//! into `cbcs/` (so "`master.m3u8` exists" still means complete).

/// HLS multivariant playlist.
pub const MASTER_PLAYLIST: &str = "master.m3u8";
/// DASH manifest.
pub const DASH_MANIFEST: &str = "manifest.mpd";
/// Per-rendition HLS media playlist.
pub const MEDIA_PLAYLIST: &str = "index.m3u8";
/// Per-rendition CMAF header.
pub const INIT_SEGMENT: &str = "init.mp4";
/// Poster picture (the encoder's pick, also the first choice).
pub const POSTER: &str = "poster.jpg";
/// Poster choices a creator may pick from: frames of high detail, spread over the video.
pub const POSTER_CHOICES: usize = 3;

/// File name of poster choice `n` (1-based; 1 is the encoder's own pick).
pub fn poster_choice(n: usize) -> String {
    format!("poster-{n}.jpg")
}
/// Storyboard sprite.
pub const STORYBOARD: &str = "storyboard.jpg";
/// Storyboard WebVTT track.
pub const STORYBOARD_VTT: &str = "storyboard.vtt";
/// Folder name of the audio rendition.
pub const AUDIO_RENDITION: &str = "audio";

/// File name of media segment `n`.
pub fn segment_name(n: usize) -> String {
    format!("seg_{n:05}.m4s")
}

/// The DASH `$Number$` template matching [`segment_name`].
pub const DASH_SEGMENT_TEMPLATE: &str = "seg_$Number%05d$.m4s";

/// Folder of the cbcs tree: the same rendition layout again, below it.
pub const CBCS_TREE: &str = "cbcs";

/// The path of `relative` (a path of the top-level layout, e.g. `720p/seg_00003.m4s`) in
/// the cbcs tree.
pub fn cbcs_path(relative: &str) -> String {
    format!("{CBCS_TREE}/{relative}")
}

/// Which tree a published path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tree {
    /// The top level: clear or AES-128 segments.
    Top,
    /// `cbcs/`: CENC 'cbcs' segments.
    Cbcs,
}

/// Splits a published path into its tree and its path within that tree's rendition
/// layout: `cbcs/720p/seg_00003.m4s` is `(Cbcs, "720p/seg_00003.m4s")`, `720p/init.mp4`
/// is `(Top, "720p/init.mp4")`. A server that encodes a missing segment just in time uses
/// this to choose the protection of the encode (see `jit::SegmentsRequest::encryption`).
pub fn tree_of(path: &str) -> (Tree, &str) {
    match path.strip_prefix(CBCS_TREE).and_then(|rest| rest.strip_prefix('/')) {
        Some(rest) => (Tree::Cbcs, rest),
        None => (Tree::Top, path),
    }
}

/// What kind of object a published path is, so servers can pick caching rules without
/// knowing anything else about media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// Playlists and manifests: may be replaced (short cache lifetime).
    Manifest,
    /// Init and media segments, pictures: never change once written.
    Immutable,
}

/// Classifies a published path by its extension.
pub fn object_kind(path: &str) -> Option<ObjectKind> {
    let ext = path.rsplit_once('.').map(|(_, e)| e)?;
    match ext {
        "m3u8" | "mpd" | "vtt" => Some(ObjectKind::Manifest),
        "m4s" | "mp4" | "jpg" => Some(ObjectKind::Immutable),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_dash_template() {
        assert_eq!(segment_name(7), "seg_00007.m4s");
        assert_eq!(DASH_SEGMENT_TEMPLATE.replace("$Number%05d$", "00007"), segment_name(7));
        assert_eq!(object_kind("720p/seg_00001.m4s"), Some(ObjectKind::Immutable));
        assert_eq!(object_kind(MASTER_PLAYLIST), Some(ObjectKind::Manifest));
        assert_eq!(object_kind("key.bin"), None);
    }

    #[test]
    fn the_cbcs_tree_mirrors_the_top_level() {
        let seg = cbcs_path(&format!("720p/{}", segment_name(3)));
        assert_eq!(seg, "cbcs/720p/seg_00003.m4s");
        assert_eq!(tree_of(&seg), (Tree::Cbcs, "720p/seg_00003.m4s"));
        assert_eq!(tree_of("720p/init.mp4"), (Tree::Top, "720p/init.mp4"));
        assert_eq!(tree_of("cbcsx/a.m4s"), (Tree::Top, "cbcsx/a.m4s"));
        assert_eq!(object_kind(&seg), Some(ObjectKind::Immutable));
        assert_eq!(object_kind(&cbcs_path(INIT_SEGMENT)), Some(ObjectKind::Immutable));
        assert_eq!(object_kind(&cbcs_path(MASTER_PLAYLIST)), Some(ObjectKind::Manifest));
        assert_eq!(object_kind(&cbcs_path(&format!("720p/{MEDIA_PLAYLIST}"))), Some(ObjectKind::Manifest));
    }
}
