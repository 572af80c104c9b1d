//! Clips generated with the FFmpeg CLI at test time (no media is committed) and playback
//! checks with ffprobe over HTTP.

use std::path::{Path, PathBuf};

/// A testsrc2 + sine MP4 made with the ffmpeg CLI.
pub fn clip(dir: &Path, name: &str, size: &str, seconds: u32) -> PathBuf {
    let out = dir.join(name);
    let status = std::process::Command::new("ffmpeg")
        .args(["-y", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=30:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate=48000:duration={seconds}"))
        .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac", "-shortest"])
        .arg(&out)
        .status()
        .expect("ffmpeg CLI");
    assert!(status.success());
    out
}

/// ffprobe over HTTP: (codec, frames) of the first video stream of `url`, sending the
/// playback's key token as a bearer token (a player's key-request hook does the same, and
/// only towards the key service; ffprobe sends it with every request).
pub fn probe_frames(url: &str, key_token: &str) -> (String, u64) {
    let out = std::process::Command::new("ffprobe")
        .args(["-headers", &format!("Authorization: Bearer {key_token}\r\n")])
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // One line per program; the first stream line is the first variant's video.
    let text = stdout.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default().to_owned();
    let (codec, frames) =
        text.split_once(',').unwrap_or_else(|| panic!("ffprobe: {text} {}", String::from_utf8_lossy(&out.stderr)));
    let frames = frames.parse().unwrap_or(0);
    if frames == 0 {
        eprintln!("ffprobe {url}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (codec.to_owned(), frames)
}
