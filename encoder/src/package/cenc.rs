//! Common Encryption, 'cbcs' scheme (ISO/IEC 23001-7 §10.4): what CMAF players with EME
//! (ClearKey, Widevine, PlayReady, FairPlay) decrypt, where HLS AES-128 needs a player that
//! decrypts whole segments in script.
//!
//! Rules, as the standard and the reference packager (shaka-packager) apply them:
//! - One constant IV (`tenc`), no per-sample IV: the CBC chain restarts from it at the first
//!   protected byte of every subsample (and of every whole sample).
//! - Video (H.264, length-prefixed NAL units): subsample encryption. Each coded slice is a
//!   subsample whose clear part is its length prefix, NAL header and slice header (plus any
//!   non-slice units before it: SEI, SPS, PPS, AUD stay entirely clear); the rest is the
//!   protected range, encrypted with the 1:9 pattern (one 16-byte block in, nine out). A
//!   trailing partial block of a range stays clear; ranges are not padded or aligned.
//! - Audio (AAC): the whole sample is one protected range with no pattern (0:0), a trailing
//!   partial block clear, and no subsamples.
//!
//! Encryption is per sample ([`SampleEncryptor::encrypt_sample`]), in decode order, so the
//! packager and the just-in-time segmenter share it and produce the same bytes.

mod avc;
pub mod boxes;

use aes::Aes128;
use aes::cipher::{Block, BlockCipherEncrypt, KeyInit};
use mp4_atom::Codec;
use ring::digest;

use crate::error::{Error, Result};

/// The cbcs key material of one video.
///
/// **Contract (KID and IV derivation).** Only the 16-byte content key is stored; the key ID
/// and the constant IV follow from it, so anyone holding the key (the origin's key and
/// licence service, the packager, a just-in-time encode) derives the same values:
///
/// ```text
/// kid = SHA-256("kid" || content_key)[0..16]
/// iv  = SHA-256("iv"  || content_key)[0..16]
/// ```
///
/// (ASCII labels, no separator, no length prefix.) The KID is public (init segments and
/// manifests carry it); SHA-256 does not let it reveal the key. Changing this derivation
/// changes the KID of every published video, so it is versioned by never changing it.
#[derive(Clone, PartialEq, Eq)]
pub struct CencKey {
    /// Key ID: `tenc` default_KID, `pssh`, the MPD's `cenc:default_KID`, ClearKey's `kid`.
    pub kid: [u8; 16],
    /// The AES-128 content key.
    pub key: [u8; 16],
    /// The constant IV.
    pub iv: [u8; 16],
}

impl std::fmt::Debug for CencKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself: this ends up in logs.
        f.debug_struct("CencKey").field("kid", &self.kid_uuid()).finish_non_exhaustive()
    }
}

impl CencKey {
    /// Derives the KID and constant IV from the content key (see the type's contract).
    pub fn from_content_key(key: &[u8; 16]) -> Self {
        Self { kid: derive(b"kid", key), key: *key, iv: derive(b"iv", key) }
    }

    /// The KID as a UUID string (`8-4-4-4-12` lower-case hex), as DASH writes it.
    pub fn kid_uuid(&self) -> String {
        let hex = crate::package::crypt::hex_encode(&self.kid);
        format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
    }
}

fn derive(label: &[u8], key: &[u8; 16]) -> [u8; 16] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(label);
    ctx.update(key);
    let mut out = [0u8; 16];
    out.copy_from_slice(&ctx.finish().as_ref()[..16]);
    out
}

/// The encryption pattern, in 16-byte blocks: `crypt` encrypted, then `skip` left clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pattern {
    /// Encrypted blocks per period.
    pub crypt: u8,
    /// Clear blocks per period.
    pub skip: u8,
}

impl Pattern {
    /// Video: one block in ten (ISO/IEC 23001-7 §10.4.1 recommends 1:9).
    pub const VIDEO: Self = Self { crypt: 1, skip: 9 };
    /// Audio: no pattern, every whole block of the sample.
    pub const WHOLE: Self = Self { crypt: 0, skip: 0 };
}

/// One subsample of a sample: clear bytes, then protected bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subsample {
    /// BytesOfClearData.
    pub clear: u16,
    /// BytesOfProtectedData (the pattern applies within it).
    pub protected: u32,
}

/// How a track's samples are cut into clear and protected ranges.
#[derive(Debug, Clone)]
enum Layout {
    /// H.264 with `length_size`-byte NAL lengths.
    Avc { length_size: usize, headers: avc::SliceHeaders },
    /// The whole sample (audio).
    Whole,
}

/// Encrypts one track's samples in place, in decode order.
#[derive(Clone)]
pub struct SampleEncryptor {
    cipher: Aes128,
    iv: [u8; 16],
    layout: Layout,
}

impl std::fmt::Debug for SampleEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleEncryptor").field("pattern", &self.pattern()).finish_non_exhaustive()
    }
}

impl SampleEncryptor {
    /// An encryptor for a track with sample entry `codec`: H.264 (`avc1`) video or AAC
    /// (`mp4a`) audio. Other codecs are refused: cbcs for VP9, AV1 and Opus has rules of its
    /// own that this packager does not implement.
    pub fn new(key: &CencKey, codec: &Codec) -> Result<Self> {
        let layout = match codec {
            Codec::Avc1(a) => Layout::Avc {
                length_size: usize::from(a.avcc.length_size),
                headers: avc::SliceHeaders::new(&a.avcc.sequence_parameter_sets, &a.avcc.picture_parameter_sets)?,
            },
            Codec::Mp4a(_) => Layout::Whole,
            other => {
                return Err(Error::Invalid(format!(
                    "cbcs packaging supports H.264 and AAC renditions, not {}",
                    codec_name(other)
                )));
            }
        };
        if let Layout::Avc { length_size: 0 | 3 | 5.., .. } = layout {
            return Err(Error::Internal("avcC NAL length size must be 1, 2 or 4".into()));
        }
        Ok(Self { cipher: Aes128::new(&key.key.into()), iv: key.iv, layout })
    }

    /// The pattern written into `tenc`.
    pub fn pattern(&self) -> Pattern {
        match self.layout {
            Layout::Avc { .. } => Pattern::VIDEO,
            Layout::Whole => Pattern::WHOLE,
        }
    }

    /// Whether samples carry subsamples (`senc` flag 0x2).
    pub fn uses_subsamples(&self) -> bool {
        matches!(self.layout, Layout::Avc { .. })
    }

    /// Encrypts one sample in place and returns its subsamples (empty for whole-sample
    /// encryption).
    pub fn encrypt_sample(&mut self, sample: &mut [u8]) -> Result<Vec<Subsample>> {
        match &mut self.layout {
            Layout::Whole => {
                encrypt_range(&self.cipher, &self.iv, sample, Pattern::WHOLE);
                Ok(Vec::new())
            }
            Layout::Avc { length_size, headers } => {
                let subsamples = avc_subsamples(sample, *length_size, headers)?;
                let mut at = 0;
                for s in &subsamples {
                    at += usize::from(s.clear);
                    let end = at + s.protected as usize;
                    encrypt_range(&self.cipher, &self.iv, &mut sample[at..end], Pattern::VIDEO);
                    at = end;
                }
                Ok(subsamples)
            }
        }
    }
}

impl SampleEncryptor {
    /// Encrypts the samples laid end to end in `data`, of sizes `sizes`, and describes them.
    pub fn encrypt_samples(
        &mut self,
        sizes: impl IntoIterator<Item = usize>,
        data: &mut [u8],
    ) -> Result<FragmentEncryption> {
        let mut out = FragmentEncryption::for_track(self);
        let mut at = 0;
        for size in sizes {
            let sample = data
                .get_mut(at..at + size)
                .ok_or_else(|| Error::Internal("sample sizes exceed the fragment's data".into()))?;
            out.samples.push(self.encrypt_sample(sample)?);
            at += size;
        }
        Ok(out)
    }
}

fn codec_name(codec: &Codec) -> String {
    let mut out = Vec::new();
    match mp4_atom::Encode::encode(codec, &mut out) {
        Ok(()) if out.len() >= 8 => String::from_utf8_lossy(&out[4..8]).into_owned(),
        _ => "this codec".to_owned(),
    }
}

/// CBC over the whole blocks of `range` that `pattern` selects, the chain starting from `iv`
/// and carried across skipped blocks; a trailing partial block stays clear.
fn encrypt_range(cipher: &Aes128, iv: &[u8; 16], range: &mut [u8], pattern: Pattern) {
    let period = usize::from(pattern.crypt) + usize::from(pattern.skip);
    let mut chain = *iv;
    for (i, block) in range.chunks_exact_mut(16).enumerate() {
        if period != 0 && i % period >= usize::from(pattern.crypt) {
            continue;
        }
        for (b, c) in block.iter_mut().zip(&chain) {
            *b ^= c;
        }
        cipher.encrypt_block(<&mut Block<Aes128>>::try_from(&mut *block).expect("16-byte block"));
        chain.copy_from_slice(block);
    }
}

/// The subsamples of one H.264 sample: every coded slice ends a subsample whose clear part
/// holds everything since the previous slice's data plus its own length, NAL header and
/// slice header. Clear bytes after the last slice form a last subsample with nothing
/// protected.
fn avc_subsamples(sample: &[u8], length_size: usize, headers: &mut avc::SliceHeaders) -> Result<Vec<Subsample>> {
    let mut out = Vec::new();
    let mut clear = 0usize;
    let mut at = 0usize;
    while at < sample.len() {
        let prefix = sample
            .get(at..at + length_size)
            .ok_or_else(|| Error::Internal("H.264 sample ends inside a NAL length".into()))?;
        let len = prefix.iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
        let nal = sample
            .get(at + length_size..at + length_size + len)
            .ok_or_else(|| Error::Internal("H.264 NAL unit runs past its sample".into()))?;
        clear += length_size;
        match headers.classify(nal)? {
            avc::Unit::Slice { header } if header < len => {
                push_subsample(&mut out, clear + header, len - header)?;
                clear = 0;
            }
            _ => clear += len,
        }
        at += length_size + len;
    }
    if clear > 0 {
        push_subsample(&mut out, clear, 0)?;
    }
    Ok(out)
}

/// Appends a subsample, splitting clear runs longer than BytesOfClearData can hold.
fn push_subsample(out: &mut Vec<Subsample>, mut clear: usize, protected: usize) -> Result<()> {
    while clear > usize::from(u16::MAX) {
        out.push(Subsample { clear: u16::MAX, protected: 0 });
        clear -= usize::from(u16::MAX);
    }
    let protected = u32::try_from(protected).map_err(|_| Error::Internal("NAL unit over 4 GiB".into()))?;
    out.push(Subsample { clear: clear as u16, protected });
    Ok(())
}

/// The sample auxiliary information of one fragment: what `senc` (and `saiz`/`saio`) say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FragmentEncryption {
    /// Whether entries list subsamples (video).
    pub subsamples: bool,
    /// Each sample's subsamples, in `trun` order.
    pub samples: Vec<Vec<Subsample>>,
}

impl FragmentEncryption {
    /// An empty record for a track encrypted by `encryptor`.
    pub fn for_track(encryptor: &SampleEncryptor) -> Self {
        Self { subsamples: encryptor.uses_subsamples(), samples: Vec::new() }
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4), as `cenc:pssh` carries a box.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::BlockCipherDecrypt;

    fn key() -> CencKey {
        CencKey::from_content_key(&[0x42; 16])
    }

    fn decrypt_range(key: &CencKey, range: &mut [u8], pattern: Pattern) {
        let cipher = Aes128::new(&key.key.into());
        let period = usize::from(pattern.crypt + pattern.skip);
        let mut chain = key.iv;
        for (i, block) in range.chunks_exact_mut(16).enumerate() {
            if period != 0 && i % period >= usize::from(pattern.crypt) {
                continue;
            }
            let next: [u8; 16] = block.try_into().unwrap();
            cipher.decrypt_block(<&mut Block<Aes128>>::try_from(&mut *block).unwrap());
            block.iter_mut().zip(&chain).for_each(|(b, c)| *b ^= c);
            chain = next;
        }
    }

    #[test]
    fn kid_and_iv_follow_from_the_key() {
        let k = key();
        assert_eq!(k, CencKey::from_content_key(&[0x42; 16]));
        assert_ne!(k.kid, k.iv);
        assert_ne!(k.kid, CencKey::from_content_key(&[0x43; 16]).kid);
        // The contract, spelled out: SHA-256("kid" || key), first 16 bytes.
        let d = digest::digest(&digest::SHA256, &[&b"kid"[..], &[0x42; 16]].concat());
        assert_eq!(&k.kid[..], &d.as_ref()[..16]);
        assert_eq!(k.kid_uuid().len(), 36);
        assert_eq!(k.kid_uuid().matches('-').count(), 4);
        assert!(!format!("{k:?}").contains("42424242"), "Debug must not print the key");
    }

    #[test]
    fn the_pattern_encrypts_one_block_in_ten_and_leaves_the_tail_clear() {
        let k = key();
        let cipher = Aes128::new(&k.key.into());
        let plain: Vec<u8> = (0..16 * 25 + 7).map(|i| i as u8).collect();
        let mut data = plain.clone();
        encrypt_range(&cipher, &k.iv, &mut data, Pattern::VIDEO);
        for (i, (a, b)) in data.chunks(16).zip(plain.chunks(16)).enumerate() {
            let encrypted = a != b;
            assert_eq!(encrypted, i % 10 == 0 && a.len() == 16, "block {i}");
        }
        decrypt_range(&k, &mut data, Pattern::VIDEO);
        assert_eq!(data, plain);
        let mut whole = plain.clone();
        encrypt_range(&cipher, &k.iv, &mut whole, Pattern::WHOLE);
        assert_eq!(whole[16 * 25..], plain[16 * 25..], "the partial block stays clear");
        assert!(whole.chunks_exact(16).zip(plain.chunks_exact(16)).all(|(a, b)| a != b));
        decrypt_range(&k, &mut whole, Pattern::WHOLE);
        assert_eq!(whole, plain);
    }

    #[test]
    fn clear_runs_longer_than_u16_are_split() {
        let mut out = Vec::new();
        push_subsample(&mut out, 70_000, 5).unwrap();
        assert_eq!(out, [Subsample { clear: 65_535, protected: 0 }, Subsample { clear: 4_465, protected: 5 }]);
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (input, expected) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }
}
