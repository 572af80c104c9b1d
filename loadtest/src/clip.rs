//! A real video to upload, made with the ffmpeg CLI: the origin inspects every upload and
//! refuses bytes that are not media, so the storm cannot send random data.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// A generated clip, deleted when dropped.
#[derive(Debug)]
pub struct Clip {
    path: PathBuf,
}

impl Clip {
    /// Encodes `length` of a test pattern with a tone (640x360 H.264 + AAC in MP4) under `dir`.
    pub async fn generate(dir: &Path, length: Duration) -> Result<Self> {
        let path = dir.join(format!("loadtest-upload-{}.mp4", std::process::id()));
        let seconds = format!("{:.3}", length.as_secs_f64());
        let output = tokio::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size=640x360:rate=30:duration={seconds}"))
            .args(["-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=440:duration={seconds}"))
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"])
            .args(["-movflags", "+faststart"])
            .arg(&path)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| Error::Ffmpeg(format!("cannot run ffmpeg (give a file instead?): {e}")))?;
        if !output.status.success() {
            return Err(Error::Ffmpeg(String::from_utf8_lossy(&output.stderr).trim().to_owned()));
        }
        Ok(Self { path })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Clip {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
