//! The sample entry FFmpeg's MP4 muxer would write for an opened encoder (avcC, vpcC, av1C,
//! esds, dOps), captured as an `ftyp`+`moov` so the packager never rebuilds codec headers.

use ff::{Dictionary, Rational, format};
use ffmpeg_next as ff;

use super::media_error;
use crate::error::{Error, Result};
use crate::package::crypt::hex_encode;
use crate::store::Store;

/// Writes an empty fragmented MP4 for `encoder`'s parameters and returns its header, hex.
pub(super) fn init_template(
    store: &Store,
    key: &str,
    params: ff::codec::Parameters,
    time_base: Rational,
) -> Result<String> {
    let path = store.prepare(key)?;
    {
        let mut octx = format::output_as(&path, "mp4").map_err(media_error("creating init template"))?;
        {
            let mut ost =
                octx.add_stream(ff::encoder::find(ff::codec::Id::None)).map_err(media_error("template stream"))?;
            ost.set_parameters(params);
            ost.set_time_base(time_base);
            unsafe { (*ost.parameters().as_mut_ptr()).codec_tag = 0 };
        }
        let mut opts = Dictionary::new();
        opts.set("movflags", "empty_moov+default_base_moof+frag_keyframe");
        opts.set("strict", "experimental");
        octx.write_header_with(opts).map_err(media_error("writing init template"))?;
        octx.write_trailer().map_err(media_error("finishing init template"))?;
    }
    let bytes = std::fs::read(&path).map_err(Error::io("read", &path))?;
    let _ = std::fs::remove_file(&path);
    Ok(hex_encode(&bytes))
}
