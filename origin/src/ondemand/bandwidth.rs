//! Honest bandwidths. A rung not encoded at upload is announced in the multivariant playlist
//! (and the DASH manifest) with its caps (an upper bound a player can trust); once every one
//! of its segments is stored, its measured peak and average, with the audio it plays with,
//! replace them, measured the way the packager measures stored rungs (the manifest's video
//! representation gets the video's own peak: audio is its own adaptation set there).

use super::segment_key;
use crate::app::App;
use crate::error::Result;
use crate::storage;

/// Peak (the largest aligned segment of video plus audio) and average bit/s, from segment
/// sizes in bytes and durations in seconds; `None` without a segment.
pub fn measure(video: &[u64], audio: &[u64], durations: &[f64]) -> Option<(u64, u64)> {
    if video.is_empty() || video.len() != durations.len() {
        return None;
    }
    let audio_of = |i: usize| audio.get(i).copied().unwrap_or(0);
    let peak =
        (0..video.len()).map(|i| (video[i] + audio_of(i)) as f64 * 8.0 / durations[i].max(1e-3)).fold(0.0, f64::max);
    let bytes: u64 = video.iter().sum::<u64>() + audio.iter().take(video.len()).sum::<u64>();
    let seconds: f64 = durations.iter().sum();
    Some((peak.ceil() as u64, (bytes as f64 * 8.0 / seconds.max(1e-3)).ceil() as u64))
}

/// The DASH manifest with `rung`'s `Representation@bandwidth` set to `bandwidth`; `None` when
/// the manifest has no such representation.
pub fn rewrite_mpd(mpd: &str, rung: &str, bandwidth: u64) -> Option<String> {
    let opening = format!("<Representation id=\"{rung}\" bandwidth=\"");
    let at = mpd.find(&opening)? + opening.len();
    let end = at + mpd[at..].find('"')?;
    Some(format!("{}{bandwidth}{}", &mpd[..at], &mpd[end..]))
}

/// `master` with the variant of `uri` carrying `peak` and `average`; `None` when no variant
/// has that URI or its line has no such attributes.
pub fn rewrite(master: &str, uri: &str, peak: u64, average: u64) -> Option<String> {
    let lines: Vec<&str> = master.lines().collect();
    let at = lines.iter().position(|l| *l == uri).filter(|&i| i > 0)?;
    let inf = lines[at - 1].strip_prefix("#EXT-X-STREAM-INF:")?;
    let mut found = (false, false);
    let attributes: Vec<String> = inf
        .split(',')
        .map(|a| match a.split_once('=') {
            Some(("BANDWIDTH", _)) => {
                found.0 = true;
                format!("BANDWIDTH={peak}")
            }
            Some(("AVERAGE-BANDWIDTH", _)) => {
                found.1 = true;
                format!("AVERAGE-BANDWIDTH={average}")
            }
            _ => a.to_owned(),
        })
        .collect();
    if found != (true, true) {
        return None;
    }
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    out[at - 1] = format!("#EXT-X-STREAM-INF:{}", attributes.join(","));
    Some(out.join("\n") + "\n")
}

/// Measures a rung whose every segment is stored and publishes its bandwidths in each of the
/// video's multivariant playlists (one per tree, and a cbcs-only output's top-level one).
/// Each is written whole in one go (storage renames it into place).
pub async fn publish(app: &App, video: &str, rung: &str) -> Result<()> {
    let Some(plan) = app.jit.plan(app, video).await? else { return Ok(()) };
    let durations: Vec<f64> =
        plan.segments.iter().map(|(_, d)| *d as f64 / f64::from(encoder::media::VIDEO_TIMESCALE)).collect();
    for &tree in super::trees(app.config.protection) {
        let mut sizes = Vec::with_capacity(durations.len());
        let mut audio = Vec::with_capacity(durations.len());
        for n in 0..durations.len() as u64 {
            sizes.push(app.blobs.stat(&segment_key(video, tree, rung, n)).await?.content_length());
            // A video without audio has no such segments.
            audio.push(app.blobs.stat(&segment_key(video, tree, AUDIO, n)).await.map_or(0, |m| m.content_length()));
        }
        let Some((peak, average)) = measure(&sizes, &audio, &durations) else { continue };
        let prefix = super::tree_prefix(tree);
        let mut masters = vec![(format!("{prefix}{}", encoder::layout::MASTER_PLAYLIST), String::new())];
        if app.config.protection == encoder::task::Protection::Cbcs {
            // Its top-level playlist names the cbcs tree's renditions.
            masters.push((encoder::layout::MASTER_PLAYLIST.to_owned(), prefix.to_owned()));
        }
        for (master, into) in masters {
            let uri = format!("{into}{rung}/{}", encoder::layout::MEDIA_PLAYLIST);
            rewrite_master(app, video, &master, &uri, peak, average).await?;
        }
        if tree == encoder::layout::Tree::Cbcs {
            // The DASH manifest describes the cbcs tree; audio is its own adaptation set there.
            let silent = vec![0; sizes.len()];
            if let Some((video_peak, _)) = measure(&sizes, &silent, &durations) {
                rewrite_manifest(app, video, rung, video_peak).await?;
            }
        }
    }
    Ok(())
}

async fn rewrite_manifest(app: &App, video: &str, rung: &str, bandwidth: u64) -> Result<()> {
    let key = format!("{}{}", storage::published(video), encoder::layout::DASH_MANIFEST);
    if !app.blobs.exists(&key).await? {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&app.blobs.read(&key).await?.to_vec()).into_owned();
    if let Some(updated) = rewrite_mpd(&text, rung, bandwidth) {
        app.blobs.write(&key, updated.into_bytes()).await?;
    }
    Ok(())
}

async fn rewrite_master(app: &App, video: &str, master: &str, uri: &str, peak: u64, average: u64) -> Result<()> {
    let key = format!("{}{master}", storage::published(video));
    if !app.blobs.exists(&key).await? {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&app.blobs.read(&key).await?.to_vec()).into_owned();
    if let Some(updated) = rewrite(&text, uri, peak, average) {
        app.blobs.write(&key, updated.into_bytes()).await?;
        tracing::info!(%video, %master, %uri, peak, average, "measured bandwidth published");
    }
    Ok(())
}

/// The audio rendition's folder.
const AUDIO: &str = "audio";

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "#EXTM3U\n#EXT-X-VERSION:7\n\
#EXT-X-STREAM-INF:BANDWIDTH=478526,AVERAGE-BANDWIDTH=469124,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\",AUDIO=\"audio\"\n\
360p/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=2933137,AVERAGE-BANDWIDTH=2933030,RESOLUTION=1280x720,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"audio\"\n\
720p/index.m3u8\n";

    #[test]
    fn measured_like_the_packager() {
        // 2 s + 2 s + 1 s; video 500 kB, 400 kB, 100 kB; audio 32 kB each.
        let (peak, avg) = measure(&[500_000, 400_000, 100_000], &[32_000; 3], &[2.0, 2.0, 1.0]).unwrap();
        assert_eq!(peak, 2_128_000, "the largest aligned segment, video and audio");
        assert_eq!(avg, (1_096_000.0f64 * 8.0 / 5.0).ceil() as u64);
        assert_eq!(measure(&[], &[], &[]), None);
        assert_eq!(measure(&[1], &[], &[1.0, 2.0]), None);
        assert_eq!(measure(&[1000], &[], &[1.0]), Some((8000, 8000)), "no audio");
    }

    #[test]
    fn only_the_rungs_representation_changes() {
        let mpd = "<Representation id=\"360p\" bandwidth=\"800000\" codecs=\"a\"/>\n\
                   <Representation id=\"720p\" bandwidth=\"2800000\" codecs=\"b\"/>\n";
        let out = rewrite_mpd(mpd, "720p", 1_234_567).unwrap();
        assert!(out.contains("id=\"720p\" bandwidth=\"1234567\" codecs=\"b\""), "{out}");
        assert!(out.contains("id=\"360p\" bandwidth=\"800000\""), "{out}");
        assert_eq!(rewrite_mpd(mpd, "1080p", 1), None);
    }

    #[test]
    fn only_the_rungs_variant_changes() {
        let out = rewrite(MASTER, "720p/index.m3u8", 1_200_000, 1_100_000).unwrap();
        assert!(out.contains(
            "BANDWIDTH=1200000,AVERAGE-BANDWIDTH=1100000,RESOLUTION=1280x720,CODECS=\"avc1.64001f,mp4a.40.2\""
        ));
        assert!(out.contains("BANDWIDTH=478526,AVERAGE-BANDWIDTH=469124,RESOLUTION=640x360"), "{out}");
        assert_eq!(out.lines().count(), MASTER.lines().count());
        assert_eq!(rewrite(MASTER, "1080p/index.m3u8", 1, 1), None);
        assert_eq!(rewrite("#EXTM3U\n720p/index.m3u8\n", "720p/index.m3u8", 1, 1), None);
    }
}
