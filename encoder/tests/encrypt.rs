//! AES-128 output: segments are ciphertext, the init segment and playlists are clear, the key
//! lives outside the served tree, and the ffmpeg CLI plays the whole ladder end to end with
//! the key fetched over HTTP.

mod common;

use std::process::Command;

use common::*;

/// A local playlist may only open local files unless told otherwise; the key is on HTTP.
const WHITELIST: &str = "file,crypto,data,http,tcp";

#[test]
fn encrypted_ladder_plays_with_the_ffmpeg_cli() {
    let dir = tempfile::tempdir().unwrap();
    let src = h264_clip(dir.path(), "src.mp4", "854x480", 5, 60);
    let out = dir.path().join("out");
    let key_file = dir.path().join("keys/video.key");
    let server = KeyServer::start(key_file.clone());
    let req = encrypted(request(&src, &out, &dir.path().join("work"), None), &key_file, &server.url);
    let (report, _) = run(req, local_executor());
    let report = report.expect("transcode succeeds");
    assert!(!report.summary.dash, "AES-128 whole-segment encryption has no DASH signalling");
    assert!(!out.join("manifest.mpd").exists());

    let key = std::fs::read(&key_file).unwrap();
    assert_eq!(key.len(), 16);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let served: Vec<Vec<u8>> = walk(&out).into_iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(
        served.iter().all(|bytes| !bytes.windows(16).any(|w| w == key.as_slice())),
        "the key is in the served tree"
    );

    let playlist = std::fs::read_to_string(out.join("480p/index.m3u8")).unwrap();
    assert!(playlist.contains(&format!("#EXT-X-KEY:METHOD=AES-128,URI=\"{}\"", server.url)), "{playlist}");
    // A media segment on its own is ciphertext: no `styp`/`moof` box header visible.
    let seg = std::fs::read(out.join("480p/seg_00000.m4s")).unwrap();
    assert_eq!(seg.len() % 16, 0);
    assert!(!seg.windows(4).any(|w| w == b"moof"), "segment is not encrypted");
    assert!(std::fs::read(out.join("480p/init.mp4")).unwrap().windows(4).any(|w| w == b"moov"), "init stays clear");

    // ffmpeg fetches the key over HTTP, decrypts every rung and decodes every frame.
    for rung in ["240p", "360p", "480p", "audio"] {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-protocol_whitelist", WHITELIST, "-count_frames"])
            .args(["-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0"])
            .arg(out.join(rung).join("index.m3u8"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let expected = if rung == "audio" { "aac," } else { "h264,150" };
        assert!(text.trim().starts_with(expected), "{rung}: {text} {}", String::from_utf8_lossy(&out.stderr));
    }
    let decoded = Command::new("ffmpeg")
        .args(["-v", "error", "-protocol_whitelist", WHITELIST, "-i"])
        .arg(out.join("master.m3u8"))
        .args(["-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(decoded.status.success() && decoded.stderr.is_empty(), "{}", String::from_utf8_lossy(&decoded.stderr));
    assert!(server.hits.load(std::sync::atomic::Ordering::SeqCst) >= 4, "the key was fetched over HTTP");
}

#[test]
fn key_file_inside_the_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = h264_clip(dir.path(), "src.mp4", "320x240", 2, 30);
    let out = dir.path().join("out");
    let req = encrypted(request(&src, &out, &dir.path().join("work"), None), &out.join("k.key"), "/key");
    let err = run(req, local_executor()).0.unwrap_err();
    assert_eq!(err.code(), "invalid_request");
    assert_eq!(err.exit_status(), 64);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
