//! CMAF boxes: the init segment (built around the sample entry FFmpeg chose for the codec)
//! and media segments (styp + moof + mdat) with signed composition offsets, so the first
//! frame presents at exactly its source time without an edit list.

use mp4_atom::{
    Any, Codec, Decode, Encode, FourCC, Ftyp, Mfhd, Moof, Moov, Mvex, Styp, Tfdt, Tfhd, Traf, Trex, Trun, TrunEntry,
};

use crate::error::{Error, Result};
use crate::package::cenc::{self, CencKey, FragmentEncryption, SampleEncryptor};

/// Sample flags of a sync sample (depends on nothing).
pub const SYNC_SAMPLE: u32 = 0x0200_0000;
/// Sample flags of a non-sync sample.
pub const NON_SYNC_SAMPLE: u32 = 0x0101_0000;

/// The one track of a CMAF rendition.
#[derive(Debug, Clone)]
pub struct Track {
    moov: Moov,
    /// The codec's sample entry.
    pub codec: Codec,
    /// Ticks per second.
    pub timescale: u32,
}

impl Track {
    /// Takes the track from an FFmpeg-written `ftyp`+`moov` and retimes it to `timescale`.
    pub fn from_template(template: &[u8], timescale: u32) -> Result<Self> {
        let bad = |what: &str| Error::Internal(format!("init template: {what}"));
        let mut cursor = std::io::Cursor::new(template);
        let mut moov = None;
        while (cursor.position() as usize) < template.len() {
            match Any::decode(&mut cursor) {
                Ok(Any::Moov(m)) => {
                    moov = Some(m);
                    break;
                }
                Ok(_) => {}
                Err(e) => return Err(bad(&e.to_string())),
            }
        }
        let mut moov = moov.ok_or_else(|| bad("no moov"))?;
        if moov.trak.len() != 1 {
            return Err(bad("expected exactly one track"));
        }
        let trak = &mut moov.trak[0];
        trak.tkhd.track_id = 1;
        trak.tkhd.duration = 0;
        // Composition offsets carry the B-frame delay, so no edit list shifts time.
        trak.edts = None;
        trak.udta = None;
        trak.mdia.mdhd.timescale = timescale;
        trak.mdia.mdhd.duration = 0;
        let codec = trak.mdia.minf.stbl.stsd.codecs.first().cloned().ok_or_else(|| bad("no sample entry"))?;
        trak.mdia.minf.stbl.stsd.codecs.truncate(1);
        moov.mvhd.timescale = 1000;
        moov.mvhd.duration = 0;
        moov.mvhd.next_track_id = 2;
        moov.udta = None;
        moov.meta = None;
        moov.mvex = Some(Mvex {
            mehd: None,
            trex: vec![Trex { track_id: 1, default_sample_description_index: 1, ..Default::default() }],
        });
        Ok(Self { moov, codec, timescale })
    }

    /// The init segment of the track's cbcs form: the sample entry becomes `encv`/`enca`
    /// with its `sinf`, and `moov` carries a common-system `pssh`. Still no sample data.
    pub fn protected_init_segment(&self, key: &CencKey) -> Result<Vec<u8>> {
        let pattern = self.encryptor(key)?.pattern();
        cenc::boxes::protect_init_segment(&self.init_segment()?, key, pattern)
    }

    /// An encryptor for this track's samples (refuses codecs cbcs is not implemented for).
    pub fn encryptor(&self, key: &CencKey) -> Result<SampleEncryptor> {
        SampleEncryptor::new(key, &self.codec)
    }

    /// The init segment bytes.
    pub fn init_segment(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        Ftyp {
            major_brand: FourCC::new(b"iso6"),
            minor_version: 0,
            compatible_brands: vec![FourCC::new(b"iso6"), FourCC::new(b"cmfc"), FourCC::new(b"mp41")],
        }
        .encode(&mut out)
        .map_err(box_error)?;
        self.moov.encode(&mut out).map_err(box_error)?;
        Ok(out)
    }
}

/// One sample of a media segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Decode duration in track ticks.
    pub duration: u32,
    /// Bytes.
    pub size: u32,
    /// Random access point.
    pub sync: bool,
    /// Presentation minus decode time, in ticks (may be negative).
    pub cts: i32,
}

/// Builds `styp` + `moof` + `mdat` for samples whose bytes are `data`, concatenated.
pub fn media_segment(
    sequence: u32,
    decode_time: u64,
    samples: &[Sample],
    with_cts: bool,
    data: &[u8],
) -> Result<Vec<u8>> {
    let mut out = segment_type()?;
    out.extend_from_slice(&fragment(sequence, decode_time, samples, with_cts, data)?);
    Ok(out)
}

/// The `styp` box that opens every media segment.
pub fn segment_type() -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(32);
    Styp {
        major_brand: FourCC::new(b"msdh"),
        minor_version: 0,
        compatible_brands: vec![FourCC::new(b"msdh"), FourCC::new(b"msix"), FourCC::new(b"cmfs")],
    }
    .encode(&mut out)
    .map_err(box_error)?;
    Ok(out)
}

/// One CMAF chunk: `moof` + `mdat` for samples whose bytes are `data`, concatenated. A
/// segment is a `styp` followed by one or more of these.
pub fn fragment(sequence: u32, decode_time: u64, samples: &[Sample], with_cts: bool, data: &[u8]) -> Result<Vec<u8>> {
    protected_fragment(sequence, decode_time, samples, with_cts, data, None)
}

/// [`fragment`] for samples already encrypted with cbcs: `encryption` describes them, and
/// the `traf` ends with `saiz`, `saio` and `senc` (the `saio` offset counting from the
/// `moof`'s first byte, as `default-base-is-moof` has every offset do). Without it, the
/// clear fragment, byte for byte.
pub fn protected_fragment(
    sequence: u32,
    decode_time: u64,
    samples: &[Sample],
    with_cts: bool,
    data: &[u8],
    encryption: Option<&FragmentEncryption>,
) -> Result<Vec<u8>> {
    if encryption.is_some_and(|e| e.samples.len() != samples.len()) {
        return Err(Error::Internal("senc and trun disagree on the sample count".into()));
    }
    let entries: Vec<TrunEntry> = samples
        .iter()
        .map(|s| TrunEntry {
            duration: Some(s.duration),
            size: Some(s.size),
            flags: Some(if s.sync { SYNC_SAMPLE } else { NON_SYNC_SAMPLE }),
            cts: with_cts.then_some(i64::from(s.cts)),
        })
        .collect();
    let moof = |data_offset: i32| Moof {
        mfhd: Mfhd { sequence_number: sequence },
        traf: vec![Traf {
            tfhd: Tfhd { track_id: 1, default_base_is_moof: true, ..Default::default() },
            tfdt: Some(Tfdt { base_media_decode_time: decode_time }),
            trun: vec![Trun { data_offset: Some(data_offset), samples: entries.clone().into() }],
            ..Default::default()
        }],
    };
    let mut out = Vec::with_capacity(data.len() + 256 + samples.len() * 16);
    // The data offset counts from the moof's first byte to the first sample byte.
    let mut probe = Vec::new();
    moof(0).encode(&mut probe).map_err(box_error)?;
    // Encryption boxes go after trun (written by hand: mp4-atom would put senc first).
    let aux = encryption.map(|e| e.traf_boxes(probe.len())).transpose()?.unwrap_or_default();
    let offset = i32::try_from(probe.len() + aux.len() + 8).map_err(|_| Error::Internal("moof too large".into()))?;
    moof(offset).encode(&mut out).map_err(box_error)?;
    if !aux.is_empty() {
        cenc::boxes::append_to_traf(&mut out, &aux)?;
    }
    let mdat_len = u32::try_from(data.len() + 8).map_err(|_| Error::Internal("segment over 4 GiB".into()))?;
    out.extend_from_slice(&mdat_len.to_be_bytes());
    out.extend_from_slice(b"mdat");
    out.extend_from_slice(data);
    Ok(out)
}

/// The `mfhd` sequence number of chunk `chunk` of segment `segment`: rising across chunks
/// and segments, whether a segment was stored whole or streamed in chunks.
pub fn sequence_number(segment: usize, chunk: u32) -> u32 {
    (segment as u32).saturating_mul(CHUNKS_PER_SEGMENT).saturating_add(chunk.min(CHUNKS_PER_SEGMENT - 1) + 1)
}

/// Room for this many chunks per segment in the sequence numbering.
pub const CHUNKS_PER_SEGMENT: u32 = 64;

fn box_error(e: mp4_atom::Error) -> Error {
    Error::Internal(format!("mp4 box encoding: {e}"))
}

/// RFC 6381 codec string of a sample entry.
pub fn codec_string(codec: &Codec) -> Result<String> {
    Ok(match codec {
        Codec::Avc1(a) => {
            let c = &a.avcc;
            format!(
                "avc1.{:02x}{:02x}{:02x}",
                c.avc_profile_indication, c.profile_compatibility, c.avc_level_indication
            )
        }
        Codec::Vp09(v) => format!("vp09.{:02}.{:02}.{:02}", v.vpcc.profile, v.vpcc.level, v.vpcc.bit_depth),
        Codec::Av01(a) => {
            let c = &a.av1c;
            let depth = match (c.high_bitdepth, c.twelve_bit) {
                (false, _) => 8,
                (true, false) => 10,
                (true, true) => 12,
            };
            let tier = if c.seq_tier_0 { 'H' } else { 'M' };
            format!("av01.{}.{:02}{tier}.{depth:02}", c.seq_profile, c.seq_level_idx_0)
        }
        Codec::Mp4a(m) => {
            let dc = &m.esds.es_desc.dec_config;
            let aot = dc.dec_specific.as_ref().map_or(2, |d| d.profile);
            format!("mp4a.{:x}.{aot}", dc.object_type_indication)
        }
        Codec::Opus(_) => "opus".to_owned(),
        other => return Err(Error::Internal(format!("no codec string for {other:?}"))),
    })
}
