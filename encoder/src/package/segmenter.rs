//! Cuts a stream of encoded packets into CMAF media segments.
//!
//! Times: video packets carry output-timeline pts (first frame at 0) and encoder dts, which
//! may start below zero when B-frames delay decoding; every decode time is shifted up by that
//! delay and the difference goes into signed composition offsets, so presentation times are
//! exactly the pts. Audio has no reordering: its presentation time is its shifted decode time.

use crate::error::{Error, Result};
use crate::es::{EsHeader, EsPacket, EsReader};
use crate::package::bitstream;
use crate::package::cenc::SampleEncryptor;
use crate::package::cmaf::{self, Sample};

/// A finished media segment.
#[derive(Debug, Clone)]
pub struct Segment {
    /// 0-based number (also the HLS media sequence number).
    pub index: usize,
    /// Presentation time of its first sample, in track ticks.
    pub start: i64,
    /// Presentation duration, in track ticks.
    pub duration: i64,
    /// Its samples, to be boxed clear ([`MediaFragment::segment`]) or protected.
    pub media: MediaFragment,
}

/// A segment's samples before they are boxed: one `moof` + `mdat` after the `styp`.
#[derive(Debug, Clone)]
pub struct MediaFragment {
    /// `mfhd` sequence number.
    pub sequence: u32,
    /// `tfdt` of the first sample.
    pub decode_time: u64,
    /// The samples, in decode order.
    pub samples: Vec<Sample>,
    /// Whether `trun` carries composition offsets (video).
    pub with_cts: bool,
    /// The samples' bytes, concatenated.
    pub data: Vec<u8>,
}

impl MediaFragment {
    /// The clear `styp` + `moof` + `mdat` bytes.
    pub fn segment(&self) -> Result<Vec<u8>> {
        cmaf::media_segment(self.sequence, self.decode_time, &self.samples, self.with_cts, &self.data)
    }

    /// The cbcs segment: the samples encrypted by `encryptor` (which must see every
    /// segment of the track in order), with their `senc`, `saiz` and `saio`.
    pub fn protected_segment(&self, encryptor: &mut SampleEncryptor) -> Result<Vec<u8>> {
        let mut data = self.data.clone();
        let encryption = encryptor.encrypt_samples(self.samples.iter().map(|s| s.size as usize), &mut data)?;
        let mut out = cmaf::segment_type()?;
        out.extend_from_slice(&cmaf::protected_fragment(
            self.sequence,
            self.decode_time,
            &self.samples,
            self.with_cts,
            &data,
            Some(&encryption),
        )?);
        Ok(out)
    }
}

/// Reads the parts of one rendition in order, as one packet stream.
pub struct PartStream {
    paths: std::vec::IntoIter<std::path::PathBuf>,
    current: Option<EsReader>,
    header: EsHeader,
}

impl PartStream {
    /// Opens the first part and reads its header.
    pub fn open(paths: Vec<std::path::PathBuf>) -> Result<Self> {
        let mut paths = paths.into_iter();
        let first = paths.next().ok_or_else(|| Error::Internal("rendition has no parts".into()))?;
        let reader = EsReader::open(&first)?;
        let header = reader.header().clone();
        Ok(Self { paths, current: Some(reader), header })
    }

    /// The first part's header.
    pub fn header(&self) -> &EsHeader {
        &self.header
    }

    /// Next packet across parts.
    pub fn next_packet(&mut self) -> Result<Option<EsPacket>> {
        loop {
            let Some(reader) = self.current.as_mut() else { return Ok(None) };
            if let Some(p) = reader.next_packet()? {
                return Ok(Some(p));
            }
            self.current = match self.paths.next() {
                Some(path) => Some(EsReader::open(&path)?),
                None => None,
            };
        }
    }
}

/// Where segments start.
pub enum CutRule {
    /// Video: at a keyframe that enters a new `segment_ticks` slot.
    Keyframe {
        /// Target segment length in ticks.
        segment_ticks: i64,
    },
    /// Audio: at the first packet at or after each time (ticks), stopping at `end`.
    At {
        /// Segment start times after the first, ascending.
        cuts: Vec<i64>,
        /// Packets presenting at or after this are dropped.
        end: i64,
    },
}

struct Pending {
    start: i64,
    end: i64,
    decode_time: u64,
    last_dts: i64,
    samples: Vec<Sample>,
    data: Vec<u8>,
}

/// Reads every packet and hands each finished segment to `emit`.
pub fn segment(stream: &mut PartStream, rule: CutRule, mut emit: impl FnMut(Segment) -> Result<()>) -> Result<()> {
    let codec = stream.header.codec.clone();
    let video = stream.header.width > 0;
    let mut shift: Option<i64> = None;
    let mut prev_dts = i64::MIN;
    let mut pending: Option<Pending> = None;
    let mut index = 0usize;
    let mut next_cut = 0usize;
    while let Some(p) = stream.next_packet()? {
        let d = *shift.get_or_insert((-p.dts).max(0));
        // Decode times must rise strictly; chunk seams are where an encoder could repeat one.
        let dts = (p.dts + d).max(prev_dts.saturating_add(1));
        prev_dts = dts;
        let pres = if video { p.pts } else { dts };
        let starts_segment = match (&rule, &pending) {
            (_, None) => true,
            (CutRule::Keyframe { segment_ticks }, Some(cur)) => {
                p.keyframe && pres.div_euclid(*segment_ticks) > cur.start.div_euclid(*segment_ticks)
            }
            (CutRule::At { cuts, .. }, Some(_)) => cuts.get(next_cut).is_some_and(|&c| pres >= c),
        };
        if let CutRule::At { end, cuts } = &rule {
            if pres >= *end {
                break;
            }
            while cuts.get(next_cut).is_some_and(|&c| pres >= c) {
                next_cut += 1;
            }
        }
        if starts_segment {
            if let Some(mut cur) = pending.take() {
                if let Some(last) = cur.samples.last_mut() {
                    last.duration = u32::try_from(dts - cur.last_dts).unwrap_or(last.duration);
                }
                cur.end = cur.end.max(pres);
                emit(finish(cur, index, video, pres)?)?;
                index += 1;
            }
            pending = Some(Pending {
                start: pres,
                end: pres,
                decode_time: u64::try_from(dts).unwrap_or(0),
                last_dts: dts,
                samples: Vec::new(),
                data: Vec::new(),
            });
        }
        let cur = pending.as_mut().expect("a segment is open");
        if let Some(last) = cur.samples.last_mut() {
            last.duration = u32::try_from(dts - cur.last_dts).unwrap_or(last.duration);
        }
        let payload = sample_bytes(&codec, p.data);
        cur.samples.push(Sample {
            duration: p.duration,
            size: payload.len() as u32,
            sync: p.keyframe || !video,
            cts: i32::try_from(pres - dts).map_err(|_| Error::Internal("composition offset out of range".into()))?,
        });
        cur.data.extend_from_slice(&payload);
        cur.last_dts = dts;
        cur.end = cur.end.max(pres + i64::from(p.duration));
    }
    if let Some(cur) = pending.take() {
        let end = cur.end;
        emit(finish(cur, index, video, end)?)?;
    }
    Ok(())
}

fn finish(cur: Pending, index: usize, video: bool, next_start: i64) -> Result<Segment> {
    let media = MediaFragment {
        sequence: cmaf::sequence_number(index, 0),
        decode_time: cur.decode_time,
        samples: cur.samples,
        with_cts: video,
        data: cur.data,
    };
    Ok(Segment { index, start: cur.start, duration: next_start - cur.start, media })
}

/// A packet's bytes as an MP4 sample: length-prefixed NAL units, no AV1 delimiters.
pub(crate) fn sample_bytes(codec: &str, data: Vec<u8>) -> Vec<u8> {
    match codec {
        "h264" if bitstream::is_annexb(&data) => bitstream::annexb_to_length_prefixed(&data),
        "av1" => bitstream::strip_av1_delimiters(&data),
        _ => data,
    }
}
