//! Just-in-time segments are interchangeable with pre-encoded ones: a floor-only upload
//! publishes every rung's playlist and init segment, and a segment of a deferred rung
//! encoded later has the timeline, the codec configuration and the frames of the copy a
//! full encode makes, so a player can mix them.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::*;
use encoder::jit::{FragmentPolicy, Materialise, OnDemandPlan, SegmentPiece, SegmentsRequest};
use encoder::task::{Encryption, TaskContext};
use mp4_atom::{Any, Decode};

/// (tfdt, sample durations, sample sizes) of every `moof` in a media segment.
fn timeline(bytes: &[u8]) -> Vec<(u64, Vec<u32>)> {
    let mut cursor = std::io::Cursor::new(bytes);
    let mut out = Vec::new();
    while (cursor.position() as usize) < bytes.len() {
        if let Any::Moof(moof) = Any::decode(&mut cursor).expect("box") {
            let traf = &moof.traf[0];
            let durations = traf
                .trun
                .iter()
                .flat_map(|t| t.samples.iter().map(|e| e.duration.unwrap()).collect::<Vec<_>>())
                .collect();
            out.push((traf.tfdt.as_ref().unwrap().base_media_decode_time, durations));
        }
    }
    out
}

/// The first decode time and every sample duration of a segment, however it is chunked.
fn flat(bytes: &[u8]) -> (u64, Vec<u32>) {
    let t = timeline(bytes);
    (t[0].0, t.into_iter().flat_map(|(_, d)| d).collect())
}

fn jit(
    plan: &OnDemandPlan,
    src: &Path,
    scratch: &Path,
    rungs: &[&str],
    first: usize,
    count: usize,
) -> Vec<SegmentPiece> {
    jit_with(plan, src, scratch, rungs, first, count, None).0
}

fn jit_with(
    plan: &OnDemandPlan,
    src: &Path,
    scratch: &Path,
    rungs: &[&str],
    first: usize,
    count: usize,
    encryption: Option<Encryption>,
) -> (Vec<SegmentPiece>, encoder::ffmpeg::jit::SegmentsReport) {
    let req = SegmentsRequest {
        source: src.display().to_string(),
        plan: plan.clone(),
        overlay: None,
        rungs: rungs.iter().map(|r| (*r).to_owned()).collect(),
        first,
        count,
        encryption,
        fragments: FragmentPolicy::streaming(30.0),
        scratch: scratch.display().to_string(),
    };
    let pieces = Arc::new(Mutex::new(Vec::new()));
    let sink = pieces.clone();
    let ctx = TaskContext::default();
    ctx.set_cores(2);
    let report = encoder::ffmpeg::jit::encode_segments(
        &req,
        &ctx,
        Arc::new(move |p| {
            sink.lock().unwrap().push(p);
            Ok(())
        }),
    )
    .expect("just-in-time encode succeeds");
    let pieces = pieces.lock().unwrap().clone();
    (pieces, report)
}

fn segment_of(pieces: &[SegmentPiece], rung: usize, segment: usize) -> Vec<u8> {
    pieces.iter().filter(|p| p.rung == rung && p.segment == segment).flat_map(|p| p.bytes.clone()).collect()
}

fn frames_of(init: &[u8], segments: &[Vec<u8>], dir: &Path) -> (u32, u32, u64) {
    let file = dir.join("probe.mp4");
    let mut all = init.to_vec();
    for s in segments {
        all.extend_from_slice(s);
    }
    std::fs::write(&file, all).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=width,height,nb_read_frames", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let v: Vec<u64> = text.split(',').map(|x| x.parse().unwrap_or(0)).collect();
    assert_eq!(v.len(), 3, "ffprobe: {text} {}", String::from_utf8_lossy(&out.stderr));
    (v[0] as u32, v[1] as u32, v[2])
}

fn decodes_cleanly(init: &[u8], segments: &[Vec<u8>], dir: &Path) -> String {
    let file = dir.join("mixed.mp4");
    let mut all = init.to_vec();
    for s in segments {
        all.extend_from_slice(s);
    }
    std::fs::write(&file, all).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "decode failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn deferred_rungs_encoded_later_match_the_full_encode() {
    let dir = tempfile::tempdir().unwrap();
    let src = h264_clip(dir.path(), "src.mp4", "1280x720", 8, 30);
    let full = dir.path().join("full");
    let floor = dir.path().join("floor");

    let mut req = request(&src, &full, &dir.path().join("work-full"), None);
    req.on_demand = true;
    run(req, local_executor()).0.expect("full encode");
    let mut req = request(&src, &floor, &dir.path().join("work-floor"), None);
    req.materialise = Materialise::Floor { max_class: 360 };
    req.on_demand = true;
    let report = run(req, local_executor()).0.expect("floor encode");

    // Only the floor is encoded, yet every rung is published with its playlist and init.
    let deferred: Vec<&str> =
        report.summary.renditions.iter().filter(|r| r.on_demand).map(|r| r.name.as_str()).collect();
    assert_eq!(deferred, ["240p", "480p", "720p"]);
    assert!(floor.join("360p/seg_00000.m4s").exists());
    for rung in ["240p", "480p", "720p"] {
        assert!(!floor.join(rung).join("seg_00000.m4s").exists(), "{rung} was encoded up front");
        assert_eq!(extinf(&floor.join(rung).join("index.m3u8")), extinf(&full.join(rung).join("index.m3u8")));
        assert_eq!(
            std::fs::read(floor.join(rung).join("init.mp4")).unwrap(),
            std::fs::read(full.join(rung).join("init.mp4")).unwrap(),
            "{rung}: init segment differs from the full encode's"
        );
    }
    let master = std::fs::read_to_string(floor.join("master.m3u8")).unwrap();
    for rung in ["240p", "360p", "480p", "720p"] {
        assert!(master.contains(&format!("{rung}/index.m3u8")), "{master}");
    }
    assert_eq!(report.summary.source_files, vec!["source/plan.json".to_owned()]);
    let plan: OnDemandPlan =
        serde_json::from_slice(&std::fs::read(floor.join("source/plan.json")).unwrap()).expect("plan");
    assert_eq!(plan.segments.len(), 4);
    assert_eq!(plan.keyframes.len(), 8, "one keyframe per second");

    // 720p segment 2 alone, and 480p segments 1..4 in one pass.
    let scratch = dir.path().join("scratch");
    let (one, report) = jit_with(&plan, &src, &scratch, &["720p"], 2, 1, None);
    assert!(one.len() >= 3, "the segment streams as several CMAF chunks");
    assert_eq!(report.encoded, 60);
    let init_720 = std::fs::read(full.join("720p/init.mp4")).unwrap();
    let template = encoder::package::cmaf::Track::from_template(
        &encoder::package::crypt::hex_decode(&report.templates[0]).unwrap(),
        90_000,
    )
    .unwrap()
    .init_segment()
    .unwrap();
    assert_eq!(template, init_720, "the just-in-time encoder's configuration matches the rung's init");
    let seg2 = segment_of(&one, 0, 2);
    let stored2 = std::fs::read(full.join("720p/seg_00002.m4s")).unwrap();
    assert_eq!(flat(&seg2), flat(&stored2), "tfdt and sample durations equal the pre-encoded copy's");
    assert_eq!(frames_of(&init_720, std::slice::from_ref(&seg2), dir.path()), (1280, 720, 60));

    let run480 = jit(&plan, &src, &scratch, &["480p"], 1, 9);
    for n in 1..4 {
        let stored = std::fs::read(full.join(format!("480p/seg_{n:05}.m4s"))).unwrap();
        assert_eq!(flat(&segment_of(&run480, 0, n)), flat(&stored), "480p segment {n}");
    }

    // Stored and just-in-time segments in either order decode without a glitch.
    let s = |n: usize| std::fs::read(full.join(format!("720p/seg_{n:05}.m4s"))).unwrap();
    decodes_cleanly(&init_720, &[s(0), s(1), seg2, s(3)], dir.path());
    let seg3 = segment_of(&jit(&plan, &src, &scratch, &["720p"], 3, 1), 0, 3);
    decodes_cleanly(&init_720, &[s(0), s(1), s(2), seg3], dir.path());
}

#[test]
fn encrypted_just_in_time_segments_decrypt_like_stored_ones() {
    let dir = tempfile::tempdir().unwrap();
    let src = h264_clip(dir.path(), "src.mp4", "854x480", 4, 30);
    let out = dir.path().join("out");
    let key_file = dir.path().join("k/video.key");
    let mut req = encrypted(request(&src, &out, &dir.path().join("work"), None), &key_file, "key");
    req.materialise = Materialise::Floor { max_class: 240 };
    req.on_demand = true;
    run(req, local_executor()).0.expect("floor encode");
    let plan: OnDemandPlan = serde_json::from_slice(&std::fs::read(out.join("source/plan.json")).unwrap()).unwrap();
    let key = std::fs::read(&key_file).unwrap();
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let encryption = Encryption { key_hex: hex, key_uri: "key".into(), ..Default::default() };
    let (pieces, _) = jit_with(&plan, &src, &dir.path().join("scratch"), &["480p"], 1, 1, Some(encryption));
    let mut seg = segment_of(&pieces, 0, 1);
    assert_eq!(seg.len() % 16, 0);
    assert!(!seg.windows(4).any(|w| w == b"moof"), "the just-in-time segment is encrypted");
    // AES-128-CBC, IV = the sequence number, as HLS says.
    use aes::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
    let iv = 1u128.to_be_bytes();
    let plain = cbc::Decryptor::<aes::Aes128>::new(key.as_slice().try_into().unwrap(), &iv.into())
        .decrypt_padded::<Pkcs7>(&mut seg)
        .unwrap()
        .to_vec();
    let init = std::fs::read(out.join("480p/init.mp4")).unwrap();
    assert_eq!(frames_of(&init, &[plain], dir.path()), (854, 480, 60));
}
