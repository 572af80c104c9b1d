//! Segments packaged as their packets leave the encoder, for just-in-time delivery: each
//! segment goes out as CMAF chunks (`styp`, then `moof`+`mdat` pairs) long before its last
//! frame is encoded, on the same timeline as the stored copy a full encode would have made.
//!
//! Times: a full encode shifts every decode time up by the encoder's B-frame delay, so the
//! first frame of the whole stream decodes at zero. An encode that starts at segment `n`
//! sees the same delay before its first frame, so shifting its first decode time onto the
//! segment's start gives each sample the decode time it has in the stored copy: the first
//! keyframe at the slot start, equal `tfdt`, equal durations.
//!
//! Trees: one encode serves every tree its protection profile asks for (see
//! [`crate::layout`]). The samples are cut once; each chunk is then sealed and sent once
//! per tree, so each tree's copy is byte for byte what an encode for that tree alone makes,
//! and a viewer of either tree gets its first chunk as early as with one tree.

use crate::error::{Error, Result};
use crate::es::{EsHeader, EsPacket};
use crate::jit::{FragmentPolicy, SegmentPiece};
use crate::layout::Tree;
use crate::package::cenc::{CencKey, FragmentEncryption, SampleEncryptor};
use crate::package::cmaf::{self, Sample};
use crate::package::crypt::{self, SegmentCipher};
use crate::package::segmenter::sample_bytes;
use crate::task::Encryption;

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
    /// Every tree the segments are written for, with how that tree's copy is protected
    /// ([`Sealer::for_request`]). Each chunk goes out once per tree, in this order.
    pub sealers: Vec<(Tree, Sealer)>,
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
    /// The trees a request's protection asks for, each with its sealer, top level first:
    /// `aes128` is the top level, `cbcs` is `cbcs/` (where a cbcs-only video publishes its
    /// segments, see [`crate::layout`]), `both` is the two, so one encode makes every copy
    /// the origin stores. No encryption, or one whose key is not filled in yet, is the clear
    /// top level.
    pub fn for_request(encryption: Option<&Encryption>) -> Result<Vec<(Tree, Self)>> {
        let Some(e) = encryption.filter(|e| !e.key_hex.is_empty()) else { return Ok(vec![(Tree::Top, Self::Clear)]) };
        let key = crypt::parse_key(&e.key_hex)?;
        let mut trees = Vec::new();
        if e.profile.writes_aes128() {
            trees.push((Tree::Top, Self::Aes128Segment(key)));
        }
        if e.profile.writes_cbcs() {
            trees.push((Tree::Cbcs, Self::CbcsSamples(CencKey::from_content_key(&key))));
        }
        Ok(trees)
    }
}

/// Cuts one rung's packets (decode order, display durations known) into segments, and
/// seals each chunk once per tree of the layout.
pub struct SpanSegmenter {
    layout: SpanLayout,
    emit: Emit,
    shift: Option<i64>,
    prev_dts: i64,
    open: Option<OpenSegment>,
    /// Per tree of `layout.sealers`: cbcs's track encryptor, made when the encoder opens.
    encryptors: Vec<Option<SampleEncryptor>>,
}

/// The segment being cut: the samples are shared, the bytes are per tree.
struct OpenSegment {
    /// Position in the span.
    k: usize,
    chunks: u32,
    decode_time: i64,
    last_dts: i64,
    samples: Vec<Sample>,
    /// One per tree of the layout, in its order.
    copies: Vec<SealedCopy>,
}

/// One tree's copy of the open chunk. Sample sizes are the same in every tree (cbcs
/// encrypts in place), so only the bytes and their protection state differ.
struct SealedCopy {
    data: Vec<u8>,
    /// AES-128 only: the segment's running CBC chain.
    cipher: Option<SegmentCipher>,
    /// cbcs only: the subsamples of the samples of the open chunk.
    encryption: Option<FragmentEncryption>,
}

impl SpanSegmenter {
    /// A segmenter for `layout`, handing every piece to `emit`.
    pub fn new(layout: SpanLayout, emit: Emit) -> Self {
        let encryptors = vec![None; layout.sealers.len()];
        Self { layout, emit, shift: None, prev_dts: i64::MIN, open: None, encryptors }
    }

    /// The encoder is open: cbcs needs its codec configuration (the SPS and PPS that slice
    /// headers are parsed against) before the first packet.
    pub fn open(&mut self, header: &EsHeader) -> Result<()> {
        for ((_, sealer), encryptor) in self.layout.sealers.iter().zip(&mut self.encryptors) {
            if let Sealer::CbcsSamples(key) = sealer {
                let template = crypt::hex_decode(&header.init_template)
                    .ok_or_else(|| Error::Internal("bad init template".into()))?;
                *encryptor = Some(cmaf::Track::from_template(&template, header.timescale)?.encryptor(key)?);
            }
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
            let segment = (self.layout.first + next) as u64;
            let copies = (self.layout.sealers.iter().zip(&self.encryptors))
                .map(|((_, sealer), encryptor)| SealedCopy::new(sealer, encryptor.as_ref(), segment))
                .collect::<Result<_>>()?;
            self.open =
                Some(OpenSegment { k: next, chunks: 0, decode_time: dts, last_dts: dts, samples: Vec::new(), copies });
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
        let payload = sample_bytes(&self.layout.codec, p.data);
        for (copy, encryptor) in open.copies.iter_mut().zip(&mut self.encryptors) {
            let at = copy.data.len();
            copy.data.extend_from_slice(&payload);
            if let Some(encryption) = copy.encryption.as_mut() {
                let encryptor = encryptor.as_mut().ok_or_else(no_encryptor)?;
                encryption.samples.push(encryptor.encrypt_sample(&mut copy.data[at..])?);
            }
        }
        open.samples.push(Sample {
            duration: p.duration,
            size: payload.len() as u32,
            sync: p.keyframe || !video,
            cts: i32::try_from(p.pts - dts).map_err(|_| Error::Internal("composition offset out of range".into()))?,
        });
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

    /// Sends the open chunk, once per tree: each tree's piece goes out as soon as the chunk
    /// is cut, so a viewer of any tree gets its first bytes as early as with one tree.
    fn flush(&self, open: &mut OpenSegment, last: bool) -> Result<()> {
        let segment = self.layout.first + open.k;
        let decode_time = u64::try_from(open.decode_time).unwrap_or(0);
        let video = self.layout.codec != "aac" && self.layout.codec != "opus";
        let sequence = cmaf::sequence_number(segment, open.chunks);
        for ((tree, _), copy) in self.layout.sealers.iter().zip(&mut open.copies) {
            let mut bytes = if open.chunks == 0 { cmaf::segment_type()? } else { Vec::new() };
            bytes.extend_from_slice(&cmaf::protected_fragment(
                sequence,
                decode_time,
                &open.samples,
                video,
                &copy.data,
                copy.encryption.as_ref(),
            )?);
            copy.data.clear();
            if let Some(e) = copy.encryption.as_mut() {
                e.samples.clear();
            }
            let bytes = match copy.cipher.as_mut() {
                Some(c) => {
                    let mut out = c.update(&bytes);
                    if last {
                        out.extend(copy.cipher.take().expect("cipher").finish());
                    }
                    out
                }
                None => bytes,
            };
            (self.emit)(SegmentPiece { rung: self.layout.rung, tree: *tree, segment, bytes, last })?;
        }
        open.chunks += 1;
        open.samples.clear();
        Ok(())
    }
}

impl SealedCopy {
    /// An empty copy of segment `segment` sealed by `sealer`.
    fn new(sealer: &Sealer, encryptor: Option<&SampleEncryptor>, segment: u64) -> Result<Self> {
        let (cipher, encryption) = match sealer {
            Sealer::Clear => (None, None),
            Sealer::Aes128Segment(key) => (Some(SegmentCipher::new(key, segment)), None),
            Sealer::CbcsSamples(_) => (None, Some(FragmentEncryption::for_track(encryptor.ok_or_else(no_encryptor)?))),
        };
        Ok(Self { data: Vec::new(), cipher, encryption })
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
    use crate::task::Protection;

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
            sealers: vec![(Tree::Top, Sealer::Clear)],
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
        l.sealers = vec![(Tree::Top, Sealer::Aes128Segment(key))];
        let enc = run(l, packets(720_000, 60, 60));
        let mut plain: Vec<u8> = clear.iter().flat_map(|p| p.bytes.clone()).collect();
        crypt::encrypt_segment(&key, 4, &mut plain).unwrap();
        assert_eq!(enc.iter().flat_map(|p| p.bytes.clone()).collect::<Vec<u8>>(), plain);
    }

    #[test]
    fn the_request_names_the_trees_and_their_sealers() {
        let enc = |profile| Encryption { key_hex: "00".repeat(16), key_uri: "k".into(), profile, ..Default::default() };
        assert!(matches!(Sealer::for_request(None).unwrap()[..], [(Tree::Top, Sealer::Clear)]));
        let unkeyed = Sealer::for_request(Some(&Encryption::default())).unwrap();
        assert!(matches!(unkeyed[..], [(Tree::Top, Sealer::Clear)]), "a key not filled in yet is clear");
        let aes = Sealer::for_request(Some(&enc(Protection::Aes128))).unwrap();
        assert!(matches!(aes[..], [(Tree::Top, Sealer::Aes128Segment(_))]));
        let cbcs = Sealer::for_request(Some(&enc(Protection::Cbcs))).unwrap();
        assert!(matches!(cbcs[..], [(Tree::Cbcs, Sealer::CbcsSamples(_))]), "cbcs-only videos publish in cbcs/");
        let both = Sealer::for_request(Some(&enc(Protection::Both))).unwrap();
        assert!(matches!(both[..], [(Tree::Top, Sealer::Aes128Segment(_)), (Tree::Cbcs, Sealer::CbcsSamples(_))]));
        assert!(Sealer::for_request(Some(&Encryption { key_hex: "zz".into(), ..enc(Protection::Both) })).is_err());
    }

    #[test]
    fn each_chunk_goes_out_once_per_tree_as_a_single_tree_span_makes_it() {
        // The segmenter does not look at which tree a sealer is for: two different sealers
        // stand in for two trees (cbcs needs real H.264, see tests/cbcs.rs).
        let key = [5u8; 16];
        let mut l = layout(2, vec![360_000, 540_000], None);
        l.sealers = vec![(Tree::Top, Sealer::Aes128Segment(key)), (Tree::Cbcs, Sealer::Clear)];
        let both = run(l.clone(), packets(360_000, 90, 60));
        // Per chunk, the top piece then the cbcs piece.
        let order: Vec<(usize, Tree)> = both.iter().map(|p| (p.segment, p.tree)).collect();
        assert!(order.chunks(2).all(|c| c[0].0 == c[1].0 && c[0].1 == Tree::Top && c[1].1 == Tree::Cbcs), "{order:?}");
        for (tree, sealer) in l.sealers.clone() {
            let single = run(SpanLayout { sealers: vec![(tree, sealer)], ..l.clone() }, packets(360_000, 90, 60));
            assert!(single.iter().all(|p| p.tree == tree));
            let mine: Vec<&SegmentPiece> = both.iter().filter(|p| p.tree == tree).collect();
            assert_eq!(mine.len(), single.len());
            for (a, b) in mine.iter().zip(&single) {
                assert_eq!((a.segment, a.last, &a.bytes), (b.segment, b.last, &b.bytes), "{tree:?}");
            }
            let lasts: Vec<usize> = mine.iter().filter(|p| p.last).map(|p| p.segment).collect();
            assert_eq!(lasts, [2, 3], "{tree:?}: one last piece per segment");
        }
    }

    #[test]
    fn cbcs_before_the_encoder_opens_is_refused() {
        let mut l = layout(4, vec![720_000], None);
        l.sealers = vec![(Tree::Cbcs, Sealer::CbcsSamples(CencKey::from_content_key(&[1; 16])))];
        let mut s = SpanSegmenter::new(l, Arc::new(|_| Ok(())));
        assert!(s.push(packets(720_000, 1, 60).remove(0)).is_err());
    }

    #[test]
    fn a_span_that_misses_its_start_is_refused() {
        let mut s = SpanSegmenter::new(layout(4, vec![720_000], None), Arc::new(|_| Ok(())));
        assert!(s.push(packets(723_000, 1, 60).remove(0)).is_err());
    }
}
