//! The published object layout of one video: the single source of truth for file names,
//! shared by the packager, the origin that serves them and the tests that read them.
//!
//! ```text
//! master.m3u8              HLS multivariant playlist (written last: its presence means complete)
//! manifest.mpd             DASH manifest over the same segments (clear output only)
//! {rendition}/init.mp4     CMAF header (always clear)
//! {rendition}/seg_NNNNN.m4s CMAF media segments, numbered from 0 (AES-128 when encrypted)
//! {rendition}/index.m3u8   HLS media playlist
//! poster.jpg  storyboard.jpg  storyboard.vtt
//! ```

/// HLS multivariant playlist.
pub const MASTER_PLAYLIST: &str = "master.m3u8";
/// DASH manifest.
pub const DASH_MANIFEST: &str = "manifest.mpd";
/// Per-rendition HLS media playlist.
pub const MEDIA_PLAYLIST: &str = "index.m3u8";
/// Per-rendition CMAF header.
pub const INIT_SEGMENT: &str = "init.mp4";
/// Poster picture.
pub const POSTER: &str = "poster.jpg";
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
}
