//! The boxes cbcs adds (ISO/IEC 23001-7 §8, ISO/IEC 14496-12 §8.12): in the init segment a
//! protected sample entry (`encv`/`enca` holding `sinf` = `frma` + `schm` + `schi`/`tenc`)
//! and a `pssh` for the W3C common system; in each fragment `senc`, `saiz` and `saio`.
//!
//! mp4-atom 0.17 reads and writes `senc`, `saiz` and `saio`, but has no protected sample
//! entries (it cannot encode an unknown one) and no `tenc`/`pssh`. So the init segment is
//! built as for clear output and then edited as bytes: the sample entry is renamed, `sinf`
//! appended to it and `pssh` to `moov`, and every enclosing box's size grows to match.

use mp4_atom::{Saio, Saiz, Senc, SencBoxVersion};

use super::{CencKey, FragmentEncryption, Pattern};
use crate::error::{Error, Result};

/// System ID of the W3C common PSSH format ("Common SystemID", W3C EME initData `cenc`).
pub const COMMON_SYSTEM_ID: [u8; 16] =
    [0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b];

/// `schm` scheme version 1.0.
const SCHEME_VERSION: u32 = 0x0001_0000;

fn plain_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u32 + 8).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

fn full_box(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(body.len() + 4);
    full.extend_from_slice(&(u32::from(version) << 24 | flags).to_be_bytes());
    full.extend_from_slice(body);
    plain_box(kind, &full)
}

/// `tenc` version 1: protected by default, no per-sample IV, the constant IV, the pattern.
pub fn tenc(key: &CencKey, pattern: Pattern) -> Vec<u8> {
    let mut body = vec![0, pattern.crypt << 4 | pattern.skip, 1, 0];
    body.extend_from_slice(&key.kid);
    body.push(16);
    body.extend_from_slice(&key.iv);
    full_box(b"tenc", 1, 0, &body)
}

/// `sinf` for a sample entry originally of type `original`.
pub fn sinf(original: [u8; 4], key: &CencKey, pattern: Pattern) -> Vec<u8> {
    let frma = plain_box(b"frma", &original);
    let schm = full_box(b"schm", 0, 0, &[&b"cbcs"[..], &SCHEME_VERSION.to_be_bytes()].concat());
    let schi = plain_box(b"schi", &tenc(key, pattern));
    plain_box(b"sinf", &[frma, schm, schi].concat())
}

/// `pssh` version 1 of the W3C common system, naming the KID, with no data.
pub fn pssh(key: &CencKey) -> Vec<u8> {
    let mut body = COMMON_SYSTEM_ID.to_vec();
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&key.kid);
    body.extend_from_slice(&0u32.to_be_bytes());
    full_box(b"pssh", 1, 0, &body)
}

/// A box found in a buffer: where it starts and ends.
#[derive(Debug, Clone, Copy)]
struct Found {
    start: usize,
    end: usize,
}

/// The first box of type `kind` among the boxes laid end to end in `buf[from..to]`.
fn find(buf: &[u8], from: usize, to: usize, kind: &[u8; 4]) -> Result<Found> {
    let mut at = from;
    while at + 8 <= to {
        let size = u32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        if size < 8 || at + size > to {
            return Err(Error::Internal("init segment: a box size is out of range".into()));
        }
        if &buf[at + 4..at + 8] == kind {
            return Ok(Found { start: at, end: at + size });
        }
        at += size;
    }
    Err(Error::Internal(format!("init segment: no {} box", String::from_utf8_lossy(kind))))
}

fn grow(buf: &mut [u8], at: usize, by: usize) -> Result<()> {
    let size = u32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize + by;
    let size = u32::try_from(size).map_err(|_| Error::Internal("init segment over 4 GiB".into()))?;
    buf[at..at + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// The protected sample entry type for a clear one.
fn protected_type(original: [u8; 4]) -> Result<[u8; 4]> {
    match &original {
        b"avc1" | b"avc3" | b"hvc1" | b"hev1" | b"vp09" | b"av01" => Ok(*b"encv"),
        b"mp4a" | b"Opus" | b"ac-3" | b"ec-3" => Ok(*b"enca"),
        _ => Err(Error::Invalid(format!("no protected sample entry for {}", String::from_utf8_lossy(&original)))),
    }
}

/// Turns a clear CMAF init segment (`ftyp` + `moov` of one track) into its cbcs form.
pub fn protect_init_segment(init: &[u8], key: &CencKey, pattern: Pattern) -> Result<Vec<u8>> {
    let mut out = init.to_vec();
    let moov = find(&out, 0, out.len(), b"moov")?;
    let mut path = vec![moov];
    for kind in [b"trak", b"mdia", b"minf", b"stbl", b"stsd"] {
        let parent = *path.last().expect("moov");
        path.push(find(&out, parent.start + 8, parent.end, kind)?);
    }
    let stsd = *path.last().expect("stsd");
    // stsd: full box header (4 bytes) and entry count (4 bytes) before the entries.
    let entry = find_any(&out, stsd.start + 16, stsd.end)?;
    path.push(entry);
    let original: [u8; 4] = out[entry.start + 4..entry.start + 8].try_into().expect("4 bytes");
    out[entry.start + 4..entry.start + 8].copy_from_slice(&protected_type(original)?);
    let sinf = sinf(original, key, pattern);
    out.splice(entry.end..entry.end, sinf.iter().copied());
    for b in &path {
        grow(&mut out, b.start, sinf.len())?;
    }
    let moov_end = moov.end + sinf.len();
    let pssh = pssh(key);
    out.splice(moov_end..moov_end, pssh.iter().copied());
    grow(&mut out, moov.start, pssh.len())?;
    Ok(out)
}

/// The first box in `buf[from..to]`, whatever its type.
fn find_any(buf: &[u8], from: usize, to: usize) -> Result<Found> {
    if from + 8 > to {
        return Err(Error::Internal("init segment: stsd has no sample entry".into()));
    }
    let size = u32::from_be_bytes(buf[from..from + 4].try_into().expect("4 bytes")) as usize;
    if size < 8 || from + size > to {
        return Err(Error::Internal("init segment: a sample entry size is out of range".into()));
    }
    Ok(Found { start: from, end: from + size })
}

impl FragmentEncryption {
    /// Bytes of one sample's `senc` entry (no per-sample IV: only subsamples, if any).
    fn entry_size(&self, subsamples: &[super::Subsample]) -> usize {
        if self.subsamples { 2 + 6 * subsamples.len() } else { 0 }
    }

    /// The `senc` box.
    pub fn senc(&self) -> Senc {
        let mut data = Vec::with_capacity(4 + self.samples.iter().map(|s| self.entry_size(s)).sum::<usize>());
        data.extend_from_slice(&(self.samples.len() as u32).to_be_bytes());
        if self.subsamples {
            for sample in &self.samples {
                data.extend_from_slice(&(sample.len() as u16).to_be_bytes());
                for s in sample {
                    data.extend_from_slice(&s.clear.to_be_bytes());
                    data.extend_from_slice(&s.protected.to_be_bytes());
                }
            }
        }
        Senc { version: SencBoxVersion::V0, use_subsamples: self.subsamples, data }
    }

    /// The `saiz` box, or none when every entry is empty (constant IV, no subsamples: the
    /// reference packager writes none either, and there is nothing for it to size).
    pub fn saiz(&self) -> Option<Saiz> {
        let sizes: Vec<usize> = self.samples.iter().map(|s| self.entry_size(s)).collect();
        if sizes.iter().all(|&s| s == 0) {
            return None;
        }
        let sizes: Vec<u8> = sizes.into_iter().map(|s| u8::try_from(s).unwrap_or(u8::MAX)).collect();
        let uniform = sizes.iter().all(|&s| s == sizes[0]);
        Some(Saiz {
            aux_info: None,
            default_sample_info_size: if uniform { sizes[0] } else { 0 },
            sample_count: sizes.len() as u32,
            sample_info_size: if uniform { Vec::new() } else { sizes },
        })
    }

    /// The `saio` box pointing `offset` bytes from the start of the `moof` (the first byte
    /// of `senc`'s first entry), or none when there is no `saiz`.
    pub fn saio(&self, offset: u64) -> Option<Saio> {
        self.saiz().map(|_| Saio { aux_info: None, offsets: vec![offset] })
    }

    /// Checks what `saiz` cannot express: an entry over 255 bytes (42 subsamples).
    pub fn check(&self) -> Result<()> {
        match self.samples.iter().find(|s| self.entry_size(s) > usize::from(u8::MAX)) {
            Some(s) => Err(Error::Internal(format!("a sample has {} subsamples; saiz holds at most 42", s.len()))),
            None => Ok(()),
        }
    }
}

impl FragmentEncryption {
    /// `saiz`, `saio` and `senc`, in that order, to end a `traf` that currently ends the
    /// `moof` at `moof_len` bytes: the order the reference packager writes (after `trun`),
    /// and the one FFmpeg's reader pairs with the right samples. `saio` points at `senc`'s
    /// first entry, counted from the start of the `moof`.
    pub fn traf_boxes(&self, moof_len: usize) -> Result<Vec<u8>> {
        self.check()?;
        let mut saiz = Vec::new();
        if let Some(b) = self.saiz() {
            mp4_atom::Encode::encode(&b, &mut saiz).map_err(encoding)?;
        }
        let saio_len = |offset: u64| -> Result<Vec<u8>> {
            let mut out = Vec::new();
            if let Some(b) = self.saio(offset) {
                mp4_atom::Encode::encode(&b, &mut out).map_err(encoding)?;
            }
            Ok(out)
        };
        let senc_at = moof_len + saiz.len() + saio_len(0)?.len();
        // Box header, full box header, sample count.
        let saio = saio_len((senc_at + 16) as u64)?;
        let mut out = saiz;
        out.extend_from_slice(&saio);
        mp4_atom::Encode::encode(&self.senc(), &mut out).map_err(encoding)?;
        Ok(out)
    }
}

fn encoding(e: mp4_atom::Error) -> Error {
    Error::Internal(format!("mp4 box encoding: {e}"))
}

/// Appends `boxes` to the one `traf` of the `moof` at the start of `moof`, which it ends.
pub fn append_to_traf(moof: &mut Vec<u8>, boxes: &[u8]) -> Result<()> {
    let m = find(moof, 0, moof.len(), b"moof")?;
    let traf = find(moof, m.start + 8, m.end, b"traf")?;
    if traf.end != m.end || m.end != moof.len() {
        return Err(Error::Internal("the traf does not end the moof".into()));
    }
    moof.extend_from_slice(boxes);
    grow(moof, m.start, boxes.len())?;
    grow(moof, traf.start, boxes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::cenc::Subsample;

    #[test]
    fn tenc_layout_matches_the_reference_packager() {
        let key = CencKey { kid: [0x11; 16], key: [0; 16], iv: [0x22; 16] };
        let t = tenc(&key, Pattern::VIDEO);
        assert_eq!(t.len(), 49);
        assert_eq!(&t[4..8], b"tenc");
        assert_eq!(&t[8..16], &[1, 0, 0, 0, 0, 0x19, 1, 0]);
        assert_eq!(&t[16..32], &[0x11; 16]);
        assert_eq!(t[32], 16);
        assert_eq!(&t[33..], &[0x22; 16]);
        assert_eq!(tenc(&key, Pattern::WHOLE)[13], 0);
        let p = pssh(&key);
        assert_eq!(p.len(), 52);
        assert_eq!(&p[12..28], &COMMON_SYSTEM_ID);
    }

    #[test]
    fn saiz_uses_a_default_size_when_entries_agree() {
        let one = vec![Subsample { clear: 10, protected: 100 }];
        let mut f = FragmentEncryption { subsamples: true, samples: vec![one.clone(), one.clone()] };
        assert_eq!(f.saiz().unwrap().default_sample_info_size, 8);
        f.samples.push(vec![one[0], one[0]]);
        let saiz = f.saiz().unwrap();
        assert_eq!((saiz.default_sample_info_size, saiz.sample_info_size), (0, vec![8, 8, 14]));
        assert_eq!(f.senc().data.len(), 4 + 8 + 8 + 14);
        let audio = FragmentEncryption { subsamples: false, samples: vec![vec![]; 3] };
        assert!(audio.saiz().is_none() && audio.saio(0).is_none());
        assert_eq!(audio.senc().data, 3u32.to_be_bytes());
    }
}
