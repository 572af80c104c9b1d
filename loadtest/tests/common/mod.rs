//! Test fixtures: a small real HLS ladder made with the ffmpeg CLI, and a stand-in PoP that
//! serves it over HTTP/1.1 and h2c (plain), HTTP/1.1 and HTTP/2 over TLS, and HTTP/3, adding
//! `x-cache` (`miss` the first time an object is asked for, `hit-memory` after), and that
//! also answers the few origin routes the harness uses (catalogue, playback, tus uploads,
//! Prometheus metrics). It counts everything, so tests compare the harness's numbers with
//! what the server really did.
#![allow(dead_code, unreachable_pub)]

pub mod server;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Generates a 6-second, two-rung (320x240, 160x120) fMP4 HLS ladder with an audio group,
/// 2-second segments, and an AES-128 `EXT-X-KEY` line in every media playlist (the bytes are
/// not encrypted: the harness never decrypts, it only has to fetch the key once).
pub fn ladder(dir: &Path) -> PathBuf {
    let out = dir.join("ladder");
    std::fs::create_dir_all(&out).unwrap();
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=6"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:duration=6"])
        .args(["-filter_complex", "[0:v]split=2[a][b];[b]scale=160:120[b2]"])
        .args(["-map", "[a]", "-map", "[b2]", "-map", "1:a"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0"])
        .args(["-b:v:0", "600k", "-b:v:1", "200k", "-c:a", "aac", "-b:a", "64k"])
        .args(["-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4"])
        .args(["-hls_fmp4_init_filename", "init.mp4", "-master_pl_name", "master.m3u8"])
        .arg("-hls_segment_filename")
        .arg(out.join("%v/seg_%03d.m4s"))
        .args(["-var_stream_map", "v:0,agroup:aud,name:hi v:1,agroup:aud,name:lo a:0,agroup:aud,name:audio"])
        .arg(out.join("%v/index.m3u8"))
        .status()
        .expect("the ffmpeg CLI is installed (scripts/setup.sh)");
    assert!(status.success(), "ffmpeg failed");
    for rendition in ["hi", "lo", "audio"] {
        let path = out.join(rendition).join("index.m3u8");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut keyed = String::new();
        for line in text.lines() {
            keyed.push_str(line);
            keyed.push('\n');
            if line.starts_with("#EXT-X-MAP") {
                keyed.push_str("#EXT-X-KEY:METHOD=AES-128,URI=\"../key\"\n");
            }
        }
        assert!(keyed.contains("EXT-X-KEY"), "{rendition} has an EXT-X-MAP");
        std::fs::write(&path, keyed).unwrap();
    }
    out
}

/// A self-signed certificate for `localhost` and `127.0.0.1`: (DER, PKCS#8 key DER, PEM).
pub fn certificate() -> (Vec<u8>, Vec<u8>, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    (c.cert.der().to_vec(), c.signing_key.serialize_der(), c.cert.pem())
}
