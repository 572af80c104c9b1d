//! What inspection refuses (each with its own code and exit status 65) and the oddities it
//! must handle instead: no audio, variable frame rate, rotation, odd sizes, 10-bit, HEVC,
//! VP9 and AV1 sources.

mod common;

use std::path::Path;

use common::*;

/// Runs the CLI on `input`, returning (exit status, error code from the JSON line).
fn refuse(input: &Path, out: &Path) -> (i32, String) {
    let o = cli(&["transcode", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"]);
    let last = String::from_utf8_lossy(&o.stdout).lines().last().unwrap_or_default().to_owned();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap_or_else(|_| panic!("no JSON in {last:?}"));
    (o.status.code().unwrap_or(-1), v["code"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn bad_inputs_are_refused_with_their_own_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let empty = d.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let text = d.join("notes.mp4");
    std::fs::write(&text, "this is a text file, not a video\n".repeat(100)).unwrap();
    let noise = d.join("noise.bin");
    std::fs::write(&noise, (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<_>>())
        .unwrap();
    let huge = d.join("huge.mp4");
    std::fs::File::create(&huge).unwrap().set_len((1 << 30) + 1).unwrap();
    let audio_only = clip(d, "audio.m4a", &["sine=duration=3"], &["-c:a", "aac"]);
    let still = clip(d, "still.png", &["testsrc2=size=320x240"], &["-frames:v", "1"]);
    let tiny = clip(d, "tiny.nut", &["testsrc2=size=8x8:rate=10:duration=2"], &["-c:v", "rawvideo"]);
    let blink = clip(d, "blink.mp4", &["testsrc2=size=320x240:rate=30:duration=0.1"], &["-c:v", "libx264"]);
    // moov first (faststart) then cut: the header promises 6 s, the data stops at ~2 s.
    let whole = clip(
        d,
        "whole.mp4",
        &["testsrc2=size=640x360:rate=30:duration=6"],
        &["-c:v", "libx264", "-g", "30", "-movflags", "+faststart"],
    );
    let bytes = std::fs::read(&whole).unwrap();
    let cut = d.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 5]).unwrap();
    // moov last, then cut: the index never arrives.
    let tail = clip(d, "tail.mp4", &["testsrc2=size=640x360:rate=30:duration=3"], &["-c:v", "libx264"]);
    let bytes = std::fs::read(&tail).unwrap();
    let headless = d.join("headless.mp4");
    std::fs::write(&headless, &bytes[..bytes.len() / 2]).unwrap();

    let cases = [
        (&empty, "empty_file"),
        (&text, "not_media"),
        (&noise, "not_media"),
        (&huge, "file_too_large"),
        (&audio_only, "no_video_stream"),
        (&still, "still_image"),
        (&tiny, "dimensions_out_of_range"),
        (&blink, "duration_out_of_range"),
        (&cut, "corrupt_media"),
        (&headless, "corrupt_media"),
    ];
    for (i, (input, code)) in cases.iter().enumerate() {
        let out = d.join(format!("out{i}"));
        assert_eq!(refuse(input, &out), (65, (*code).to_owned()), "{}", input.display());
    }
    let (status, code) = refuse(&d.join("missing.mp4"), &d.join("outm"));
    assert_eq!((status, code.as_str()), (66, "input_not_found"));
}

#[test]
fn a_cyclic_pipeline_file_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let src = h264_clip(dir.path(), "src.mp4", "320x240", 2, 30);
    let pipeline = dir.path().join("cycle.toml");
    std::fs::write(
        &pipeline,
        "[[task]]\nid = \"inspect\"\nkind = \"inspect\"\n\n[[task]]\nid = \"split\"\nkind = \"split\"\nafter = [\"inspect\", \"video\"]\n\n\
[[task]]\nid = \"video\"\nkind = \"encode\"\nafter = [\"split\"]\n\n[[task]]\nid = \"package\"\nkind = \"package\"\nafter = [\"video\"]\n",
    )
    .unwrap();
    let o = cli(&[
        "transcode",
        src.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
        "--pipeline",
        pipeline.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(78));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cycle.toml:5: tasks form a cycle: split -> video -> split") || err.contains("cycle.toml:10:"),
        "{err}"
    );
    let plan = cli(&["plan", "--pipeline", pipeline.to_str().unwrap()]);
    assert_eq!(plan.status.code(), Some(78));
    let builtin = cli(&["plan"]);
    assert!(String::from_utf8_lossy(&builtin.stdout).contains("stage 2: video (encode)"));
}

/// Transcodes with one 240p rung; returns (width, height, frames) of the output.
fn transcode_small(input: &Path, out: &Path, work: &Path) -> (u64, u64, u64) {
    run(request(input, out, work, Some(&ladder_pipeline("rungs = [240]", true))), local_executor())
        .0
        .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    let v = probe(
        &out.join("240p/index.m3u8"),
        &["-select_streams", "v:0", "-count_frames", "-show_entries", "stream=width,height,nb_read_frames"],
    );
    let s = &v["streams"][0];
    (
        s["width"].as_u64().unwrap(),
        s["height"].as_u64().unwrap(),
        s["nb_read_frames"].as_str().unwrap().parse().unwrap(),
    )
}

/// Sets a 90-degree display matrix in the video track header, as phones write it.
fn rotated(file: std::path::PathBuf) -> std::path::PathBuf {
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.windows(4).position(|w| w == b"tkhd").expect("tkhd box");
    assert_eq!(bytes[at + 4], 0, "version 0 tkhd");
    // From the box type: version/flags (4), 5 x u32 times and ids, 8 reserved, 4 x u16.
    let matrix = at + 4 + 4 + 20 + 8 + 8;
    let values: [i32; 9] = [0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x4000_0000];
    for (i, v) in values.iter().enumerate() {
        bytes[matrix + i * 4..matrix + i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    std::fs::write(&file, bytes).unwrap();
    let media = encoder::ffmpeg::inspect(&file, &encoder::media::Limits::default()).unwrap();
    assert!(matches!(media.video.rotation, 90 | 270), "rotation {}", media.video.rotation);
    file
}

#[test]
fn recoverable_oddities_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = "testsrc2=size=320x240:rate=30:duration=3";
    let cases = [
        // no audio at all
        (clip(d, "silent.mp4", &[src], &["-c:v", "libx264"]), (320, 240, 90)),
        // variable frame rate: every third frame dropped, timestamps kept
        (
            clip(d, "vfr.mkv", &[src], &["-vf", "select='not(eq(mod(n,3),1))'", "-fps_mode", "vfr", "-c:v", "libx264"]),
            (320, 240, 60),
        ),
        // phone video: stored landscape, displayed portrait
        (rotated(clip(d, "rotated.mp4", &[src], &["-c:v", "libx264"])), (240, 320, 90)),
        // odd dimensions
        (clip(d, "odd.mkv", &["testsrc2=size=323x241:rate=30:duration=3"], &["-c:v", "ffv1"]), (322, 240, 90)),
        // 10-bit H.264
        (clip(d, "high10.mp4", &[src], &["-c:v", "libx264", "-pix_fmt", "yuv420p10le"]), (320, 240, 90)),
        // HEVC, VP9, AV1 sources
        (clip(d, "hevc.mp4", &[src], &["-c:v", "libx265", "-x265-params", "log-level=error"]), (320, 240, 90)),
        (
            clip(d, "vp9.webm", &[src], &["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"]),
            (320, 240, 90),
        ),
        (clip(d, "av1.mkv", &[src], &["-c:v", "libsvtav1", "-preset", "12"]), (320, 240, 90)),
    ];
    for (i, (input, expected)) in cases.iter().enumerate() {
        let got = transcode_small(input, &d.join(format!("out{i}")), &d.join(format!("work{i}")));
        assert_eq!(&got, expected, "{}", input.display());
    }
    assert!(!d.join("out0/audio").exists(), "no audio rendition for a silent source");
}
