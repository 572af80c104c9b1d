//! HLS AES-128: whole-segment AES-128-CBC with PKCS#7 padding, IV = the segment's media
//! sequence number (RFC 8216 §5.2), so no IV needs to be written into the playlist.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{Block, BlockModeEncrypt, KeyIvInit};

use crate::error::{Error, Result};

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;

/// The IV HLS derives for media sequence number `seq`.
pub fn sequence_iv(seq: u64) -> [u8; 16] {
    u128::from(seq).to_be_bytes()
}

/// Encrypts `segment` in place (it grows by 1-16 bytes of padding).
pub fn encrypt_segment(key: &[u8; 16], seq: u64, segment: &mut Vec<u8>) -> Result<()> {
    let len = segment.len();
    segment.resize(len + 16 - len % 16, 0);
    let iv = sequence_iv(seq);
    let out_len = Aes128CbcEnc::new(key.into(), &iv.into())
        .encrypt_padded::<Pkcs7>(segment, len)
        .map_err(|_| Error::Internal("AES padding buffer too small".into()))?
        .len();
    segment.truncate(out_len);
    Ok(())
}

/// Whole-segment AES-128 over a segment that arrives in pieces (CMAF chunks streamed while
/// it is being encoded): the output is byte for byte what [`encrypt_segment`] makes of the
/// concatenation, released as soon as each 16-byte block is complete.
pub struct SegmentCipher {
    cipher: Aes128CbcEnc,
    pending: Vec<u8>,
}

impl SegmentCipher {
    /// Starts the segment with media sequence number `seq`.
    pub fn new(key: &[u8; 16], seq: u64) -> Self {
        Self { cipher: Aes128CbcEnc::new(key.into(), &sequence_iv(seq).into()), pending: Vec::new() }
    }

    /// Encrypts what completes whole blocks; keeps the rest for the next piece.
    pub fn update(&mut self, piece: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(piece);
        let whole = self.pending.len() - self.pending.len() % 16;
        let mut out: Vec<u8> = self.pending.drain(..whole).collect();
        for block in out.chunks_exact_mut(16) {
            self.cipher.encrypt_block(<&mut Block<Aes128CbcEnc>>::try_from(block).expect("16-byte block"));
        }
        out
    }

    /// The last block, padded (PKCS#7: 1 to 16 bytes).
    pub fn finish(mut self) -> Vec<u8> {
        let pad = 16 - self.pending.len() % 16;
        self.pending.resize(self.pending.len() + pad, pad as u8);
        let mut out = std::mem::take(&mut self.pending);
        for block in out.chunks_exact_mut(16) {
            self.cipher.encrypt_block(<&mut Block<Aes128CbcEnc>>::try_from(block).expect("16-byte block"));
        }
        out
    }
}

/// Parses a 32-character hex key.
pub fn parse_key(hex: &str) -> Result<[u8; 16]> {
    let bytes = hex_decode(hex).ok_or_else(|| Error::Invalid("content key must be 32 hex digits".into()))?;
    bytes.try_into().map_err(|_| Error::Invalid("content key must be 16 bytes".into()))
}

/// Lower-case hex.
pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes hex, `None` on odd length or a non-hex digit.
pub fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::BlockModeDecrypt;

    #[test]
    fn round_trips_with_the_sequence_iv() {
        let key = [7u8; 16];
        for len in [0usize, 1, 15, 16, 17, 1000] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut seg = plain.clone();
            encrypt_segment(&key, 42, &mut seg).unwrap();
            assert_eq!(seg.len(), (len / 16 + 1) * 16);
            let dec = cbc::Decryptor::<aes::Aes128>::new(&key.into(), &sequence_iv(42).into())
                .decrypt_padded::<Pkcs7>(&mut seg)
                .unwrap()
                .to_vec();
            assert_eq!(dec, plain);
        }
    }

    #[test]
    fn pieces_encrypt_like_the_whole() {
        let key = [3u8; 16];
        for cuts in [vec![], vec![1], vec![15, 16, 17], vec![100, 5, 0, 33]] {
            let plain: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
            let mut whole = plain.clone();
            encrypt_segment(&key, 9, &mut whole).unwrap();
            let mut c = SegmentCipher::new(&key, 9);
            let mut out = Vec::new();
            let mut rest = &plain[..];
            for n in cuts {
                let (a, b) = rest.split_at(n.min(rest.len()));
                out.extend(c.update(a));
                rest = b;
            }
            out.extend(c.update(rest));
            out.extend(c.finish());
            assert_eq!(out, whole);
        }
    }

    #[test]
    fn iv_is_big_endian_sequence() {
        assert_eq!(sequence_iv(1)[15], 1);
        assert_eq!(sequence_iv(256)[14], 1);
        assert_eq!(hex_decode(&hex_encode(&[0, 255, 16])).unwrap(), vec![0, 255, 16]);
        assert!(parse_key("zz").is_err());
    }
}
