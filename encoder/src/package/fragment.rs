//! Segments packaged as their packets leave the encoder, for just-in-time delivery: each
//! segment goes out as CMAF chunks (`styp`, then `moof`+`mdat` pairs) long before its last
//! frame is encoded, on the same timeline as the stored copy a full encode would have made.
//!
//! Times: a full encode shifts every decode time up by the encoder's B-frame delay, so the
//! first frame of the whole stream decodes at zero. An encode that starts at segment `n`
//! sees the same delay before its first frame, so shifting its first decode time onto the
//! segment's start gives each sample the decode time it has in the stored copy: the first
//! keyframe at the slot start, equal `tfdt`, equal durations.

use crate::error::{Error, Result};
use crate::es::{EsHeader, EsPacket};
use crate::jit::{FragmentPolicy, SegmentPiece};
use crate::package::cenc::{CencKey, FragmentEncryption, SampleEncryptor};
use crate::package::cmaf::{self, Sample};
use crate::package::crypt::{self, SegmentCipher};
use crate::package::segmenter::sample_bytes;
use crate::task::{Encryption, Protection};

/// Where the pieces go; an error stops the encode (the viewer went away).
pub type Emit = std::sync::Arc<dyn Fn(SegmentPiece) -> Result<()> + Send + Sync>;

/// What a rung's segments look like.
#[derive(Clone)]
pub struct SpanLayout {
    /// Index of the rung in the request.
    pub rung: usize,
    /// Codec name as the encoder writes it ("h264", "vp9", "av1").
    pub codec: String,
    /// Number of the first segment.
    pub first: usize,
    /// Start tick of every segment of the span.
    pub starts: Vec<i64>,
    /// Tick of the first frame after the span; `None` at the end of the video.
    pub end: Option<i64>,
    /// How segments are cut into chunks.
    pub policy: FragmentPolicy,
    /// How the segments are protected.
    pub sealer: Sealer,
}

/// How a just-in-time segment is protected: as the stored copy in the tree it replaces.
#[derive(Debug, Clone, Default)]
pub enum Sealer {
    /// Clear.
    #[default]
    Clear,
    /// HLS AES-128 over the whole segment (top-level tree), IV = the segment number.
    Aes128Segment([u8; 16]),
    /// CENC 'cbcs' sample by sample (`cbcs/` tree).
    CbcsSamples(CencKey),
}

impl Sealer {
    /// The sealer a request's protection asks for. A just-in-time encode fills one tree, so
    /// its profile must name one: `aes128` (top level) or `cbcs` (`cbcs/`); `both` is
    /// refused. No encryption, or one whose key is not filled in yet, is clear.
    pub fn for_request(encryption: Option<&Encryption>) -> Result<Self> {
        let Some(e) = encryption.filter(|e| !e.key_hex.is_empty()) else { return Ok(Self::Clear) };
        let key = crypt::parse_key(&e.key_hex)?;
        match e.profile {
            Protection::Aes128 => Ok(Self::Aes128Segment(key)),
            Protection::Cbcs => Ok(Self::CbcsSamples(CencKey::from_content_key(&key))),
            Protection::Both => {
                Err(Error::Invalid("a just-in-time encode fills one tree: ask for aes128 or cbcs, not both".into()))
            }
        }
    }
}

/// Cuts one rung's packets (decode order, display durations known) into segments.
pub struct SpanSegmenter {
    layout: SpanLayout,
    emit: Emit,
    shift: Option<i64>,
    prev_dts: i64,
    open: Option<OpenSegment>,
    /// cbcs only: the track's encryptor, made when the encoder opens.
    encryptor: Option<SampleEncryptor>,
}

struct OpenSegment {
    /// Position in the span.
    k: usize,
    chunks: u32,
    decode_time: i64,
    last_dts: i64,
    samples: Vec<Sample>,
    data: Vec<u8>,
    cipher: Option<SegmentCipher>,
    /// cbcs only: the subsamples of the samples of the open chunk.
    encryption: Option<FragmentEncryption>,
}

impl SpanSegmenter {
    /// A segmenter for `layout`, handing every piece to `emit`.
    pub fn new(layout: SpanLayout, emit: Emit) -> Self {
        Self { layout, emit, shift: None, prev_dts: i64::MIN, open: None, encryptor: None }
    }

    /// The encoder is open: cbcs needs its codec configuration (the SPS and PPS that slice
    /// headers are parsed against) before the first packet.
    pub fn open(&mut self, header: &EsHeader) -> Result<()> {
        if let Sealer::CbcsSamples(key) = &self.layout.sealer {
            let template =
                crypt::hex_decode(&header.init_template).ok_or_else(|| Error::Internal("bad init template".into()))?;
            self.encryptor = Some(cmaf::Track::from_template(&template, header.timescale)?.encryptor(key)?);
        }
        Ok(())
    }

    /// Takes the next packet.
    pub fn push(&mut self, p: EsPacket) -> Result<()> {
        let first_start = self.layout.starts[0];
        let shift = *self.shift.get_or_insert(first_start - p.dts);
        let dts = (p.dts + shift).max(self.prev_dts.saturating_add(1));
        self.prev_dts = dts;
        let next = self.open.as_ref().map_or(0, |o| o.k + 1);
        let opens = match &self.open {
            None => true,
            Some(_) => p.keyframe && self.layout.starts.get(next).is_some_and(|&s| p.pts >= s),
        };
        if opens {
            let expected = self.layout.starts[next];
            if !p.keyframe || p.pts != expected {
                return Err(Error::Internal(format!(
                    "segment {} starts with a {} at tick {} instead of a keyframe at {expected}",
                    self.layout.first + next,
                    if p.keyframe { "keyframe" } else { "non-keyframe" },
                    p.pts
                )));
            }
            if let Some(done) = self.open.take() {
                self.close(done, Some(dts))?;
            }
            let cipher = match &self.layout.sealer {
                Sealer::Aes128Segment(k) => Some(SegmentCipher::new(k, (self.layout.first + next) as u64)),
                _ => None,
            };
            let encryption = match &self.layout.sealer {
                Sealer::CbcsSamples(_) => Some(FragmentEncryption::for_track(self.encryptor()?)),
                _ => None,
            };
            self.open = Some(OpenSegment {
                k: next,
                chunks: 0,
                decode_time: dts,
                last_dts: dts,
                samples: Vec::new(),
                data: Vec::new(),
                cipher,
                encryption,
            });
        }
        let mut open = self.open.take().expect("a segment is open");
        if let Some(last) = open.samples.last_mut() {
            last.duration = duration(dts - open.last_dts)?;
        }
        if open.samples.len() >= self.layout.policy.limit(open.chunks) {
            self.flush(&mut open, false)?;
            open.decode_time = dts;
        }
        let video = self.layout.codec != "aac" && self.layout.codec != "opus";
        let mut payload = sample_bytes(&self.layout.codec, p.data);
        if let Some(encryption) = open.encryption.as_mut() {
            let encryptor = self.encryptor.as_mut().ok_or_else(no_encryptor)?;
            encryption.samples.push(encryptor.encrypt_sample(&mut payload)?);
        }
        open.samples.push(Sample {
            duration: p.duration,
            size: payload.len() as u32,
            sync: p.keyframe || !video,
            cts: i32::try_from(p.pts - dts).map_err(|_| Error::Internal("composition offset out of range".into()))?,
        });
        open.data.extend_from_slice(&payload);
        open.last_dts = dts;
        self.open = Some(open);
        Ok(())
    }

    /// Ends the span: the last segment goes out, with its last sample lasting until the
    /// next segment's first frame.
    pub fn finish(mut self) -> Result<()> {
        let Some(open) = self.open.take() else {
            return Err(Error::Internal(format!("segment {}: the encoder produced nothing", self.layout.first)));
        };
        if open.k + 1 != self.layout.starts.len() {
            return Err(Error::Internal(format!(
                "only {} of {} segments were produced from segment {}",
                open.k + 1,
                self.layout.starts.len(),
                self.layout.first
            )));
        }
        self.close(open, self.layout.end)
    }

    fn close(&self, mut open: OpenSegment, next_dts: Option<i64>) -> Result<()> {
        if let (Some(next), Some(last)) = (next_dts, open.samples.last_mut()) {
            last.duration = duration(next - open.last_dts)?;
        }
        self.flush(&mut open, true)
    }

    fn flush(&self, open: &mut OpenSegment, last: bool) -> Result<()> {
        let segment = self.layout.first + open.k;
        let mut bytes = if open.chunks == 0 { cmaf::segment_type()? } else { Vec::new() };
        let decode_time = u64::try_from(open.decode_time).unwrap_or(0);
        let video = self.layout.codec != "aac" && self.layout.codec != "opus";
        let sequence = cmaf::sequence_number(segment, open.chunks);
        bytes.extend_from_slice(&cmaf::protected_fragment(
            sequence,
            decode_time,
            &open.samples,
            video,
            &open.data,
            open.encryption.as_ref(),
        )?);
        open.chunks += 1;
        open.samples.clear();
        open.data.clear();
        if let Some(e) = open.encryption.as_mut() {
            e.samples.clear();
        }
        let bytes = match open.cipher.as_mut() {
            Some(c) if last => {
                let mut out = c.update(&bytes);
                out.extend(open.cipher.take().expect("cipher").finish());
                out
            }
            Some(c) => c.update(&bytes),
            None => bytes,
        };
        (self.emit)(SegmentPiece { rung: self.layout.rung, segment, bytes, last })
    }
}

impl SpanSegmenter {
    fn encryptor(&self) -> Result<&SampleEncryptor> {
        self.encryptor.as_ref().ok_or_else(no_encryptor)
    }
}

fn no_encryptor() -> Error {
    Error::Internal("cbcs segmenter used before the encoder opened".into())
}

fn duration(ticks: i64) -> Result<u32> {
    u32::try_from(ticks).map_err(|_| Error::Internal(format!("sample duration {ticks} out of range")))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn packets(from: i64, frames: i64, gop: i64) -> Vec<EsPacket> {
        // An IPPP stream with a two-frame decode delay: dts trails pts by 6000 ticks.
        (0..frames)
            .map(|i| EsPacket {
                pts: from + i * 3000,
                dts: from + i * 3000 - 6000,
                duration: 3000,
                keyframe: i % gop == 0,
                data: vec![0, 0, 0, 1, 0x65, i as u8],
            })
            .collect()
    }

    fn run(layout: SpanLayout, input: Vec<EsPacket>) -> Vec<SegmentPiece> {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let mut s = SpanSegmenter::new(
            layout,
            Arc::new(move |p| {
                sink.lock().unwrap().push(p);
                Ok(())
            }),
        );
        for p in input {
            s.push(p).unwrap();
        }
        s.finish().unwrap();
        Arc::try_unwrap(out).ok().unwrap().into_inner().unwrap()
    }

    fn layout(first: usize, starts: Vec<i64>, end: Option<i64>) -> SpanLayout {
        SpanLayout {
            rung: 0,
            codec: "h264".into(),
            first,
            starts,
            end,
            policy: FragmentPolicy { first: 8, then: 15 },
            sealer: Sealer::Clear,
        }
    }

    #[test]
    fn a_streamed_segment_is_chunked_and_starts_at_its_slot() {
        let pieces = run(layout(4, vec![720_000], Some(900_000)), packets(720_000, 60, 60));
        // 60 frames: 8 + 15 + 15 + 15 + 7.
        assert_eq!(pieces.len(), 5);
        assert!(pieces.iter().all(|p| p.segment == 4));
        assert_eq!(pieces.iter().filter(|p| p.last).count(), 1);
        assert!(pieces.last().unwrap().last);
        assert_eq!(&pieces[0].bytes[4..8], b"styp");
        assert_eq!(&pieces[1].bytes[4..8], b"moof");
        let whole: Vec<u8> = pieces.iter().flat_map(|p| p.bytes.clone()).collect();
        assert_eq!(whole.windows(4).filter(|w| w == b"moof").count(), 5);
    }

    #[test]
    fn a_span_cuts_at_each_segment_start() {
        let pieces = run(layout(2, vec![360_000, 540_000], None), packets(360_000, 90, 60));
        let segs: Vec<usize> = pieces.iter().filter(|p| p.last).map(|p| p.segment).collect();
        assert_eq!(segs, vec![2, 3]);
    }

    #[test]
    fn encrypted_pieces_concatenate_to_whole_segment_aes() {
        let key = [5u8; 16];
        let clear = run(layout(4, vec![720_000], Some(900_000)), packets(720_000, 60, 60));
        let mut l = layout(4, vec![720_000], Some(900_000));
        l.sealer = Sealer::Aes128Segment(key);
        let enc = run(l, packets(720_000, 60, 60));
        let mut plain: Vec<u8> = clear.iter().flat_map(|p| p.bytes.clone()).collect();
        crypt::encrypt_segment(&key, 4, &mut plain).unwrap();
        assert_eq!(enc.iter().flat_map(|p| p.bytes.clone()).collect::<Vec<u8>>(), plain);
    }

    #[test]
    fn the_request_names_the_sealer() {
        let enc = |profile| Encryption { key_hex: "00".repeat(16), key_uri: "k".into(), profile, ..Default::default() };
        assert!(matches!(Sealer::for_request(None).unwrap(), Sealer::Clear));
        assert!(matches!(Sealer::for_request(Some(&Encryption::default())).unwrap(), Sealer::Clear));
        assert!(matches!(Sealer::for_request(Some(&enc(Protection::Aes128))).unwrap(), Sealer::Aes128Segment(_)));
        assert!(matches!(Sealer::for_request(Some(&enc(Protection::Cbcs))).unwrap(), Sealer::CbcsSamples(_)));
        assert!(Sealer::for_request(Some(&enc(Protection::Both))).is_err());
    }

    #[test]
    fn cbcs_before_the_encoder_opens_is_refused() {
        let mut l = layout(4, vec![720_000], None);
        l.sealer = Sealer::CbcsSamples(CencKey::from_content_key(&[1; 16]));
        let mut s = SpanSegmenter::new(l, Arc::new(|_| Ok(())));
        assert!(s.push(packets(720_000, 1, 60).remove(0)).is_err());
    }

    #[test]
    fn a_span_that_misses_its_start_is_refused() {
        let mut s = SpanSegmenter::new(layout(4, vec![720_000], None), Arc::new(|_| Ok(())));
        assert!(s.push(packets(723_000, 1, 60).remove(0)).is_err());
    }
}
