//! The ladder as a player sees it, checked with ffprobe: sizes, codecs, segment lengths,
//! a keyframe at the start of every segment, identical segment timing across rungs, and
//! picture quality.

mod common;

use std::path::Path;

use common::*;

/// First packet of a segment (read after its init segment): (decode time, keyframe). Decode
/// time, because ffmpeg shifts the pts of tracks with negative composition offsets by their
/// largest offset; the first sample of a segment is a keyframe presented at its decode time.
fn segment_start(rendition: &Path, index: usize, scratch: &Path) -> (f64, bool) {
    let mut bytes = std::fs::read(rendition.join("init.mp4")).unwrap();
    bytes.extend(std::fs::read(rendition.join(format!("seg_{index:05}.m4s"))).unwrap());
    let file = scratch.join(format!("probe-{}-{index}.mp4", rendition.file_name().unwrap().to_string_lossy()));
    std::fs::write(&file, bytes).unwrap();
    let v =
        probe(&file, &["-select_streams", "0", "-show_entries", "packet=dts_time,flags", "-read_intervals", "%+#1"]);
    let p = &v["packets"][0];
    (p["dts_time"].as_str().unwrap().parse().unwrap(), p["flags"].as_str().unwrap().starts_with('K'))
}

#[test]
fn every_rung_is_aligned_sized_and_segmented() {
    let dir = tempfile::tempdir().unwrap();
    // A 3 s source GOP: chunk boundaries fall inside segments, which must not matter.
    let src = h264_clip(dir.path(), "src.mp4", "1280x720", 9, 90);
    let out = dir.path().join("out");
    let (report, _) = run(request(&src, &out, &dir.path().join("work"), None), local_executor());
    let report = report.expect("transcode succeeds");
    assert!(out.join("master.m3u8").is_file() && out.join("manifest.mpd").is_file());
    assert!(!dir.path().join("work").join("x").exists());

    let expected = [("240p", 426, 240), ("360p", 640, 360), ("480p", 854, 480), ("720p", 1280, 720)];
    let mut timelines = Vec::new();
    for (name, w, h) in expected {
        let rendition = out.join(name);
        let v = probe(
            &rendition.join("index.m3u8"),
            &["-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height,pix_fmt"],
        );
        let s = &v["streams"][0];
        assert_eq!(
            (s["codec_name"].as_str(), s["width"].as_u64(), s["height"].as_u64()),
            (Some("h264"), Some(w), Some(h)),
            "{name}"
        );
        assert_eq!(s["pix_fmt"].as_str(), Some("yuv420p"));
        let durations = extinf(&rendition.join("index.m3u8"));
        assert_eq!(durations.len(), 5, "{name}: 9 s in 2 s segments");
        for d in &durations[..durations.len() - 1] {
            assert!((d - 2.0).abs() <= 0.2, "{name}: segment of {d} s is not within 10% of 2 s");
        }
        let starts: Vec<f64> = (0..durations.len())
            .map(|i| {
                let (pts, key) = segment_start(&rendition, i, dir.path());
                assert!(key, "{name} segment {i} does not start with a keyframe");
                pts
            })
            .collect();
        timelines.push((durations, starts));
    }
    for t in &timelines[1..] {
        assert_eq!(t, &timelines[0], "segment timing differs between rungs");
    }
    let frames = probe(
        &out.join("720p/index.m3u8"),
        &["-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames"],
    );
    assert_eq!(frames["streams"][0]["nb_read_frames"].as_str(), Some("270"), "every source frame is kept");
    let audio = probe(&out.join("audio/index.m3u8"), &["-show_entries", "stream=codec_name,sample_rate,channels"]);
    assert_eq!(audio["streams"][0]["codec_name"].as_str(), Some("aac"));
    assert_eq!(report.summary.segments, 5);

    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    for attr in [
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "AVERAGE-BANDWIDTH=",
        "RESOLUTION=1280x720",
        "CODECS=\"avc1.64",
        "mp4a.40.2\"",
        "FRAME-RATE=30.000",
        "TYPE=AUDIO",
    ] {
        assert!(master.contains(attr), "master playlist lacks {attr}:\n{master}");
    }
}

#[test]
fn dash_manifest_plays_the_same_segments() {
    let dir = tempfile::tempdir().unwrap();
    let src = h264_clip(dir.path(), "src.mp4", "640x360", 5, 60);
    let out = dir.path().join("out");
    run(request(&src, &out, &dir.path().join("work"), None), local_executor()).0.expect("transcode succeeds");
    let v = probe(&out.join("manifest.mpd"), &["-show_entries", "stream=codec_name,width,height"]);
    let streams = v["streams"].as_array().unwrap();
    assert!(streams.iter().any(|s| s["height"].as_u64() == Some(360)), "{v}");
    assert!(streams.iter().any(|s| s["codec_name"].as_str() == Some("aac")), "{v}");
    let frames = probe(
        &out.join("manifest.mpd"),
        &["-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames"],
    );
    assert_eq!(frames["streams"][0]["nb_read_frames"].as_str(), Some("150"));
}

/// PSNR (average, dB) of `encoded` against `source` scaled to `w`x`h`.
fn psnr(encoded: &Path, source: &Path, w: u32, h: u32) -> f64 {
    let graph =
        format!("[0:v]setpts=PTS-STARTPTS[a];[1:v]scale={w}:{h}:flags=bicubic,setpts=PTS-STARTPTS[b];[a][b]psnr");
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(encoded)
        .arg("-i")
        .arg(source)
        .args(["-lavfi", &graph, "-f", "null", "-"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let avg = log.split("average:").nth(1).unwrap_or_else(|| panic!("no PSNR in: {log}"));
    avg.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn rung_720p_keeps_quality() {
    let dir = tempfile::tempdir().unwrap();
    let src = clip(
        dir.path(),
        "src.mp4",
        &["testsrc2=size=1920x1080:rate=30:duration=4"],
        &["-c:v", "libx264", "-preset", "veryfast", "-crf", "12", "-pix_fmt", "yuv420p"],
    );
    let out = dir.path().join("out");
    let pipeline = ladder_pipeline("rungs = [720]", false);
    run(request(&src, &out, &dir.path().join("work"), Some(&pipeline)), local_executor())
        .0
        .expect("transcode succeeds");
    let db = psnr(&out.join("720p/index.m3u8"), &src, 1280, 720);
    assert!(db >= 35.0, "720p PSNR {db:.2} dB is below 35 dB");
    assert!(!out.join("audio").exists(), "a silent source gets no audio rendition");
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    assert!(!master.contains("AUDIO="), "{master}");
}

#[test]
fn vp9_and_av1_rungs_from_the_pipeline_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = h264_clip(dir.path(), "src.mp4", "640x360", 4, 60);
    let out = dir.path().join("out");
    let split = task("inspect", "inspect", &[], "") + &task("split", "split", &["inspect"], "");
    let pipeline = split
        + &task("h264", "encode", &["split"], "rungs = [240]")
        + &task("vp9", "encode", &["split"], "codec = \"vp9\"\npreset = \"8\"\nrungs = [240]")
        + &task("av1", "encode", &["split"], "codec = \"av1\"\npreset = \"12\"\nrungs = [240]")
        + &task("audio", "audio", &["inspect"], "")
        + &task("package", "package", &["h264", "vp9", "av1", "audio"], "");
    run(request(&src, &out, &dir.path().join("work"), Some(&pipeline)), local_executor())
        .0
        .expect("transcode succeeds");
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    assert!(master.contains("CODECS=\"vp09.00."), "{master}");
    assert!(master.contains("CODECS=\"av01.0."), "{master}");
    for (name, codec) in [("240p", "h264"), ("240p-vp9", "vp9"), ("240p-av1", "av1")] {
        let v = probe(
            &out.join(name).join("index.m3u8"),
            &["-select_streams", "v:0", "-count_frames", "-show_entries", "stream=codec_name,nb_read_frames"],
        );
        assert_eq!(v["streams"][0]["codec_name"].as_str(), Some(codec), "{name}");
        assert_eq!(v["streams"][0]["nb_read_frames"].as_str(), Some("120"), "{name}");
        assert_eq!(
            extinf(&out.join(name).join("index.m3u8")),
            extinf(&out.join("240p/index.m3u8")),
            "{name} is aligned with h264"
        );
    }
}
