//! Split: copy the source's video packets, without decoding, into chunk files of whole GOPs
//! at least `chunk_seconds` long. A chunk also carries the next GOP's leading pictures (open
//! GOPs), so each chunk decodes on its own; the encoder keeps only the frames it owns.

use std::path::Path;

use ff::{Packet, Rational, format};
use ffmpeg_next as ff;

use super::media_error;
use crate::error::{Error, Rejection, Result};
use crate::media::{MediaInfo, Timeline, VIDEO_TIMESCALE};
use crate::store::{Store, temp_sibling};
use crate::task::{Chunk, ChunkIndex, Keyframe, TaskContext};

struct ChunkFile {
    index: u32,
    key: String,
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    octx: format::context::Output,
    out_tb: Rational,
    start_pts: i64,
    packets: u32,
    bytes: u64,
}

impl ChunkFile {
    fn create(
        store: &Store,
        index: u32,
        params: &ff::codec::Parameters,
        in_tb: Rational,
        start_pts: i64,
    ) -> Result<Self> {
        let key = format!("chunks/{index:05}.nut");
        let path = store.prepare(&key)?;
        let tmp = temp_sibling(&path);
        let mut octx = format::output_as(&tmp, "nut").map_err(media_error("creating chunk file"))?;
        {
            let mut ost =
                octx.add_stream(ff::encoder::find(ff::codec::Id::None)).map_err(media_error("adding chunk stream"))?;
            ost.set_parameters(params.clone());
            ost.set_time_base(in_tb);
            unsafe { (*ost.parameters().as_mut_ptr()).codec_tag = 0 };
        }
        // Keep source timestamps as they are: the default shift would move every frame off
        // the timeline the chunk boundaries are computed on.
        let mut opts = ff::Dictionary::new();
        opts.set("avoid_negative_ts", "disabled");
        octx.write_header_with(opts).map_err(media_error("writing chunk header"))?;
        let out_tb = octx.stream(0).expect("one stream").time_base();
        Ok(Self { index, key, path, tmp, octx, out_tb, start_pts, packets: 0, bytes: 0 })
    }

    fn write(&mut self, packet: &Packet, in_tb: Rational) -> Result<()> {
        let mut p = packet.clone();
        p.set_stream(0);
        p.set_position(-1);
        p.rescale_ts(in_tb, self.out_tb);
        p.write(&mut self.octx).map_err(media_error("writing chunk"))?;
        self.packets += 1;
        self.bytes += packet.size() as u64;
        Ok(())
    }

    fn finish(mut self, timeline: &Timeline, tb: (i32, i32), end_pts: Option<i64>) -> Result<Chunk> {
        self.octx.write_trailer().map_err(media_error("finishing chunk"))?;
        std::fs::rename(&self.tmp, &self.path).map_err(Error::io("rename", &self.path))?;
        let ticks = |pts: i64| timeline.to_ticks(pts, tb, VIDEO_TIMESCALE);
        Ok(Chunk {
            index: self.index,
            key: self.key,
            start: ticks(self.start_pts),
            end: end_pts.map(ticks),
            packets: self.packets,
            bytes: self.bytes,
        })
    }
}

/// Cuts `source` into chunk files in `store`.
pub(super) fn split(
    source: &Path,
    media: &MediaInfo,
    chunk_seconds: f64,
    store: &Store,
    ctx: &TaskContext,
) -> Result<ChunkIndex> {
    let mut ictx = format::input(&source).map_err(|e| Error::rejected(Rejection::CorruptMedia, e.to_string()))?;
    let index = media.video.index;
    let stream = ictx.stream(index).ok_or_else(|| Error::Internal("video stream vanished".into()))?;
    let in_tb = stream.time_base();
    let params = stream.parameters();
    let tb = (in_tb.numerator(), in_tb.denominator());
    let origin = media.video.start_pts;
    let timeline = media.timeline();
    let min_len = (chunk_seconds / f64::from(in_tb)).round() as i64;
    let expected_packets = (media.duration * media.video.fps()).max(1.0) as u64;

    let mut chunks: Vec<Chunk> = Vec::new();
    let mut current: Option<ChunkFile> = None;
    // The previous chunk stays open while the new GOP's leading pictures (pts before its
    // keyframe) arrive, with that keyframe as their reference.
    let mut tail: Option<(ChunkFile, Packet, bool)> = None;
    let mut seen = 0u64;
    let mut last_end = i64::MIN;
    let mut keyframes = Vec::new();
    loop {
        let packet = match super::read_packet(&mut ictx) {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                return Err(Error::rejected(
                    Rejection::CorruptMedia,
                    format!(
                        "reading stopped at {:.1} s of {:.1} s: {e}",
                        seconds(last_end, origin, in_tb),
                        media.duration
                    ),
                ));
            }
        };
        if packet.stream() != index {
            continue;
        }
        let Some(pts) = packet.pts().or(packet.dts()) else { continue };
        last_end = last_end.max(pts + packet.duration().max(0));
        if packet.is_key() {
            keyframes.push(Keyframe { pts, pos: packet.position() as i64 });
        }
        seen += 1;
        if seen.is_multiple_of(64) {
            ctx.check()?;
            ctx.progress(seen, expected_packets);
        }
        let boundary =
            packet.is_key() && current.as_ref().is_none_or(|c| pts - c.start_pts >= min_len && pts > c.start_pts);
        if boundary {
            if let Some((prev, ..)) = tail.take() {
                chunks.push(prev.finish(&timeline, tb, Some(current.as_ref().map_or(pts, |c| c.start_pts)))?);
            }
            let next =
                ChunkFile::create(store, chunks.len() as u32 + u32::from(current.is_some()), &params, in_tb, pts)?;
            if let Some(prev) = current.replace(next) {
                tail = Some((prev, packet.clone(), false));
            }
        } else if let Some((prev, key, key_written)) = tail.as_mut() {
            let key_pts = key.pts().or(key.dts()).unwrap_or(i64::MIN);
            if pts < key_pts {
                if !*key_written {
                    prev.write(key, in_tb)?;
                    *key_written = true;
                }
                prev.write(&packet, in_tb)?;
            } else {
                let (prev, ..) = tail.take().expect("tail is open");
                let start = current.as_ref().map(|c| c.start_pts);
                chunks.push(prev.finish(&timeline, tb, start)?);
            }
        }
        match current.as_mut() {
            Some(c) => c.write(&packet, in_tb)?,
            None => continue,
        }
    }
    if let Some((prev, ..)) = tail.take() {
        let start = current.as_ref().map(|c| c.start_pts);
        chunks.push(prev.finish(&timeline, tb, start)?);
    }
    if let Some(c) = current.take() {
        chunks.push(c.finish(&timeline, tb, None)?);
    }
    check_complete(&chunks, media, seconds(last_end, origin, in_tb))?;
    Ok(ChunkIndex { timeline, chunks, keyframes })
}

fn seconds(pts: i64, origin: i64, tb: Rational) -> f64 {
    if pts == i64::MIN { 0.0 } else { (pts - origin) as f64 * f64::from(tb) }
}

/// A file whose packets stop well before its declared duration was cut short.
fn check_complete(chunks: &[Chunk], media: &MediaInfo, covered: f64) -> Result<()> {
    if chunks.is_empty() {
        return Err(Error::rejected(Rejection::CorruptMedia, "no keyframe found in the video stream"));
    }
    if media.duration.is_finite() && covered < media.duration * 0.9 - 1.0 {
        return Err(Error::rejected(
            Rejection::CorruptMedia,
            format!("the video stops at {covered:.1} s but the file declares {:.1} s: truncated", media.duration),
        ));
    }
    Ok(())
}
