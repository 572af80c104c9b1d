//! Poster, storyboard and watermark.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Gray pixels of the first frame of a playlist or picture.
fn first_frame_gray(input: &Path) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(input)
        .args(["-frames:v", "1", "-vf", "format=gray", "-f", "rawvideo", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn mean(v: &[u8]) -> f64 {
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len().max(1) as f64
}

#[test]
fn poster_skips_a_black_opening_and_storyboard_maps_every_interval() {
    let dir = tempfile::tempdir().unwrap();
    let src = clip(
        dir.path(),
        "src.mp4",
        &["color=c=black:s=640x360:r=30:d=1.5[a];testsrc2=s=640x360:r=30:d=4.5[b];[a][b]concat=n=2:v=1:a=0"],
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    );
    let out = dir.path().join("out");
    run(request(&src, &out, &dir.path().join("work"), None), local_executor()).0.expect("transcode succeeds");

    let poster = probe(&out.join("poster.jpg"), &["-show_entries", "stream=codec_name,width,height"]);
    assert_eq!(poster["streams"][0]["codec_name"].as_str(), Some("mjpeg"));
    assert_eq!(
        (poster["streams"][0]["width"].as_u64(), poster["streams"][0]["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert!(mean(&first_frame_gray(&out.join("poster.jpg"))) > 40.0, "the poster is a black frame");
    // The creator's choices: the encoder's pick first, then other frames, none of them black.
    let choices: Vec<Vec<u8>> = (1..=encoder::layout::POSTER_CHOICES)
        .map(|n| std::fs::read(out.join(encoder::layout::poster_choice(n))).expect("every choice is published"))
        .collect();
    assert_eq!(choices[0], std::fs::read(out.join("poster.jpg")).unwrap());
    assert!(choices[1] != choices[0] && choices[2] != choices[1] && choices[2] != choices[0], "three different frames");
    for n in 1..=encoder::layout::POSTER_CHOICES {
        assert!(mean(&first_frame_gray(&out.join(encoder::layout::poster_choice(n)))) > 40.0, "choice {n} is black");
    }

    let sprite = probe(&out.join("storyboard.jpg"), &["-show_entries", "stream=width,height"]);
    let (sw, sh) = (sprite["streams"][0]["width"].as_u64().unwrap(), sprite["streams"][0]["height"].as_u64().unwrap());
    let vtt = std::fs::read_to_string(out.join("storyboard.vtt")).unwrap();
    assert!(vtt.starts_with("WEBVTT\n"));
    let cues: Vec<&str> = vtt.lines().filter(|l| l.starts_with("storyboard.jpg#xywh=")).collect();
    assert_eq!(cues.len(), 6, "one tile per second of a 6 s video:\n{vtt}");
    assert!(vtt.contains("00:00:05.000 --> 00:00:06.000"), "{vtt}");
    for cue in cues {
        let n: Vec<u64> =
            cue.trim_start_matches("storyboard.jpg#xywh=").split(',').map(|v| v.parse().unwrap()).collect();
        assert!(n[0] + n[2] <= sw && n[1] + n[3] <= sh, "{cue} outside the {sw}x{sh} sprite");
    }
}

#[test]
fn watermark_is_burned_into_its_corner_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = clip(d, "src.mp4", &["testsrc2=size=640x360:rate=30:duration=2"], &["-c:v", "libx264", "-crf", "10"]);
    let logo = clip(d, "logo.png", &["color=c=red:s=64x32,format=rgba"], &["-frames:v", "1"]);
    let plain = ladder_pipeline("rungs = [360]\ncrf = 14", false);
    let settings = format!(
        "text = \"Wassermark 워터마크\"\nimage = \"{}\"\nposition = \"top-right\"\nopacity = 1.0\nsize = 0.1",
        logo.display()
    );
    let marked = plain.replace("after = [\"split\"]", "after = [\"split\", \"wm\"]")
        + &task("wm", "watermark", &["inspect"], &settings);
    run(request(&src, &d.join("marked"), &d.join("w1"), Some(&marked)), local_executor())
        .0
        .expect("watermarked transcode");
    run(request(&src, &d.join("plain"), &d.join("w2"), Some(&plain)), local_executor()).0.expect("plain transcode");
    let a = first_frame_gray(&d.join("marked/360p/index.m3u8"));
    let b = first_frame_gray(&d.join("plain/360p/index.m3u8"));
    assert_eq!(a.len(), 640 * 360);
    let region_diff = |x0: usize, x1: usize, y0: usize, y1: usize| {
        let mut sum = 0.0;
        for y in y0..y1 {
            for x in x0..x1 {
                sum += (f64::from(a[y * 640 + x]) - f64::from(b[y * 640 + x])).abs();
            }
        }
        sum / ((x1 - x0) * (y1 - y0)) as f64
    };
    // Top-right band (margin 3% ≈ 11 px, height 10% = 36 px): the logo sits at the edge.
    let logo_area = region_diff(640 - 11 - 60, 640 - 11, 12, 12 + 34);
    let elsewhere = region_diff(0, 320, 180, 360);
    assert!(logo_area > 20.0, "no watermark in the top-right corner (mean difference {logo_area:.1})");
    assert!(elsewhere < 3.0, "the picture changed outside the watermark (mean difference {elsewhere:.1})");
}
