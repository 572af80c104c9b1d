//! Reading what the cbcs packager wrote: `tenc`, per-sample `senc` subsamples and bytes,
//! and decoding with the FFmpeg CLI's `-decryption_key`.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Command;

use mp4_atom::{Any, Decode};

/// The fields of a `tenc` box (version 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenc {
    pub crypt: u8,
    pub skip: u8,
    pub protected: u8,
    pub per_sample_iv_size: u8,
    pub kid: Vec<u8>,
    pub constant_iv: Vec<u8>,
}

/// Byte offset of the first box of type `kind` anywhere in `bytes` (a plain search: fine
/// for init segments, whose boxes hold no sample data).
pub fn find_box(bytes: &[u8], kind: &[u8; 4]) -> Option<usize> {
    bytes.windows(4).position(|w| w == kind).map(|p| p - 4)
}

/// The `tenc` of an init segment.
pub fn tenc(init: &[u8]) -> Tenc {
    let at = find_box(init, b"tenc").expect("tenc box");
    let b = &init[at..];
    assert_eq!(b[8], 1, "tenc version 1");
    Tenc {
        crypt: b[13] >> 4,
        skip: b[13] & 0x0f,
        protected: b[14],
        per_sample_iv_size: b[15],
        kid: b[16..32].to_vec(),
        constant_iv: b[33..33 + b[32] as usize].to_vec(),
    }
}

/// The body of the first `kind` box (after its 8-byte header).
pub fn box_body<'a>(bytes: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
    let at = find_box(bytes, kind).unwrap_or_else(|| panic!("no {} box", String::from_utf8_lossy(kind)));
    let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    &bytes[at + 8..at + size]
}

/// One sample of a protected fragment: its subsamples (clear, protected) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedSample {
    pub subsamples: Vec<(u16, u32)>,
    pub bytes: Vec<u8>,
}

/// What one `moof` says about encryption, for structural checks.
#[derive(Debug, Clone)]
pub struct FragmentInfo {
    pub trun_samples: usize,
    pub senc_samples: usize,
    /// `saio` offset from the moof start, if any.
    pub saio: Option<u64>,
    /// Whether `saio` points at the first `senc` entry.
    pub saio_hits_senc: bool,
}

fn senc_entries(senc: &mp4_atom::Senc) -> Vec<Vec<(u16, u32)>> {
    let d = &senc.data;
    let count = u32::from_be_bytes(d[..4].try_into().unwrap()) as usize;
    let mut at = 4;
    (0..count)
        .map(|_| {
            if !senc.use_subsamples {
                return Vec::new();
            }
            let n = u16::from_be_bytes(d[at..at + 2].try_into().unwrap()) as usize;
            at += 2;
            (0..n)
                .map(|_| {
                    let clear = u16::from_be_bytes(d[at..at + 2].try_into().unwrap());
                    let protected = u32::from_be_bytes(d[at + 2..at + 6].try_into().unwrap());
                    at += 6;
                    (clear, protected)
                })
                .collect()
        })
        .collect()
}

/// Every sample of every fragment in `bytes` (a segment, or a whole fragmented file), with
/// each fragment's structural facts.
pub fn protected_samples(bytes: &[u8]) -> (Vec<ProtectedSample>, Vec<FragmentInfo>) {
    let mut cursor = std::io::Cursor::new(bytes);
    let mut samples = Vec::new();
    let mut fragments = Vec::new();
    while (cursor.position() as usize) < bytes.len() {
        let start = cursor.position() as usize;
        let Any::Moof(moof) = Any::decode(&mut cursor).expect("box") else { continue };
        let traf = &moof.traf[0];
        let senc = traf.senc.as_ref().expect("every fragment has senc");
        let entries = senc_entries(senc);
        let mut at = start + traf.trun[0].data_offset.expect("trun data offset") as usize;
        let sizes: Vec<usize> =
            traf.trun.iter().flat_map(|t| t.samples.iter().map(|e| e.size.expect("sample size") as usize)).collect();
        let saio = traf.saio.first().map(|s| s.offsets[0]);
        let saio_hits_senc = saio.is_some_and(|o| {
            let first = &senc.data[4..];
            let at = start + o as usize;
            !first.is_empty() && bytes[at..at + first.len().min(64)] == first[..first.len().min(64)]
        });
        fragments.push(FragmentInfo { trun_samples: sizes.len(), senc_samples: entries.len(), saio, saio_hits_senc });
        for (size, subsamples) in sizes.into_iter().zip(entries) {
            samples.push(ProtectedSample { subsamples, bytes: bytes[at..at + size].to_vec() });
            at += size;
        }
    }
    (samples, fragments)
}

/// The frame MD5 lines (`-f framemd5`, header comments dropped) of `file`, decrypted with
/// `key` (hex) when given; `None` when FFmpeg fails.
pub fn frame_md5s(file: &Path, key: Option<&str>) -> Option<String> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error"]);
    if let Some(k) = key {
        cmd.args(["-decryption_key", k]);
    }
    let out = cmd.arg("-i").arg(file).args(["-f", "framemd5", "-"]).output().expect("ffmpeg runs");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n"))
}

/// AES-128-CBC decryption of an HLS AES-128 segment (IV = its sequence number).
pub fn aes128_decrypt(key: &[u8], seq: u64, segment: &[u8]) -> Vec<u8> {
    use aes::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
    let mut buf = segment.to_vec();
    cbc::Decryptor::<aes::Aes128>::new(key.try_into().unwrap(), &u128::from(seq).to_be_bytes().into())
        .decrypt_padded::<Pkcs7>(&mut buf)
        .expect("AES-128 segment decrypts")
        .to_vec()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
