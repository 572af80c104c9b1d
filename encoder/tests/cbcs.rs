//! CENC 'cbcs' output: FFmpeg decrypts it to exactly the frames of the AES-128 copy, its
//! boxes say what players need, the reference packager (shaka-packager) encrypts the same
//! samples into the same bytes, and a just-in-time segment equals the packaged one, in
//! each tree when one encode seals both.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::cenc::*;
use common::*;
use encoder::es::EsHeader;
use encoder::jit::{FragmentPolicy, OnDemandPlan, SegmentPiece, SegmentsRequest};
use encoder::layout::Tree;
use encoder::package::cenc::CencKey;
use encoder::package::fragment::{Sealer, SpanLayout, SpanSegmenter};
use encoder::package::segmenter::PartStream;
use encoder::task::{Encryption, Protection, TaskContext};
use mp4_atom::{Any, Decode};

/// A transcode of a short clip with `profile`: (temp dir, output folder, content key).
fn package(profile: Protection, keep_work: bool) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let src = h264_clip(dir.path(), "src.mp4", "640x360", 4, 30);
    let out = dir.path().join("out");
    let key_file = dir.path().join("keys/video.key");
    let mut req = protected(request(&src, &out, &dir.path().join("work"), None), &key_file, "../key", profile);
    req.keep_work_dir = keep_work;
    run(req, local_executor()).0.expect("transcode succeeds");
    let key = std::fs::read(&key_file).unwrap();
    (dir, out, key)
}

fn read(path: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

/// Rendition folders of a tree, video first (sorted), audio last.
fn renditions(tree: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(tree)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("init.mp4").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_by_key(|n| (n == "audio", n.clone()));
    names
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "m4s"))
        .collect();
    segs.sort();
    segs
}

fn write(dir: &Path, name: &str, parts: &[&[u8]]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, parts.concat()).unwrap();
    path
}

/// The clear form of one top-level rendition: its init and its AES-128 segments decrypted.
fn clear_segments(out: &Path, rendition: &str, key: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let init = read(out.join(rendition).join("init.mp4"));
    let segs = segments(&out.join(rendition))
        .iter()
        .enumerate()
        .map(|(n, p)| aes128_decrypt(key, n as u64, &read(p)))
        .collect();
    (init, segs)
}

#[test]
fn cbcs_segments_decrypt_to_the_frames_of_the_aes128_copy() {
    let (dir, out, key) = package(Protection::Both, false);
    let hex_key = hex(&key);
    let wrong = hex(&[0x5a; 16]);
    let names = renditions(&out.join("cbcs"));
    assert!(names.len() >= 2 && names.last().unwrap() == "audio", "{names:?}");
    assert_eq!(names, renditions(&out), "both trees have the same renditions");
    for name in &names {
        let (clear_init, clear) = clear_segments(&out, name, &key);
        let cbcs_init = read(out.join("cbcs").join(name).join("init.mp4"));
        let protected = segments(&out.join("cbcs").join(name));
        assert_eq!(protected.len(), clear.len());
        // One segment at a time: FFmpeg 5.1 pairs senc entries with the wrong samples after
        // the first fragment of a file without sidx (the reference packager's output too).
        for (n, (seg, plain)) in protected.iter().zip(&clear).enumerate() {
            let reference = write(dir.path(), "clear.mp4", &[&clear_init, plain]);
            let expected = frame_md5s(&reference, None).expect("the clear copy decodes");
            assert!(expected.lines().count() > 10, "{name} {n}: {expected}");
            let cbcs = write(dir.path(), "cbcs.mp4", &[&cbcs_init, &read(seg)]);
            assert_eq!(frame_md5s(&cbcs, Some(&hex_key)).as_deref(), Some(expected.as_str()), "{name} segment {n}");
            assert_ne!(frame_md5s(&cbcs, Some(&wrong)), Some(expected), "{name} {n}: a wrong key decodes the same");
        }
    }
}

#[test]
fn cbcs_boxes_manifests_and_playlists() {
    let (_dir, out, key) = package(Protection::Both, false);
    let cenc = CencKey::from_content_key(&key.clone().try_into().unwrap());
    let mpd = std::fs::read_to_string(out.join("manifest.mpd")).unwrap();
    let kid = mpd.split("cenc:default_KID=\"").nth(1).and_then(|s| s.split('"').next()).expect("default_KID");
    assert_eq!(kid.replace('-', ""), hex(&cenc.kid));
    assert!(mpd.contains("media=\"cbcs/$RepresentationID$/seg_$Number%05d$.m4s\""), "{mpd}");
    assert!(mpd.contains("<dashif:Laurl>https://licence.example/v1/clearkey?video=out</dashif:Laurl>"), "{mpd}");
    let hls = std::fs::read_to_string(out.join("cbcs/audio/index.m3u8")).unwrap();
    assert!(hls.contains("#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"../../key\",KEYFORMAT=\"identity\""), "{hls}");
    assert!(std::fs::read_to_string(out.join("cbcs/master.m3u8")).unwrap().contains("audio/index.m3u8"));
    assert!(std::fs::read_to_string(out.join("master.m3u8")).unwrap().lines().all(|l| !l.starts_with("cbcs/")));
    assert!(!key.iter().all(|&b| b == 0));

    for name in renditions(&out.join("cbcs")) {
        let video = name != "audio";
        let init = read(out.join("cbcs").join(&name).join("init.mp4"));
        let t = tenc(&init);
        assert_eq!((t.crypt, t.skip), if video { (1, 9) } else { (0, 0) }, "{name}: pattern");
        assert_eq!((t.protected, t.per_sample_iv_size), (1, 0), "{name}");
        assert_eq!(t.kid, cenc.kid, "{name}: tenc KID is the MPD's default_KID");
        assert_eq!(t.constant_iv, cenc.iv, "{name}: constant IV");
        assert_eq!(box_body(&init, b"schm"), [&[0, 0, 0, 0][..], b"cbcs", &[0, 1, 0, 0]].concat());
        assert_eq!(box_body(&init, b"frma"), if video { b"avc1" } else { b"mp4a" });
        assert!(find_box(&init, if video { b"encv" } else { b"enca" }).is_some(), "{name}: protected sample entry");
        let pssh = box_body(&init, b"pssh");
        assert_eq!(&pssh[4..20], &encoder::package::cenc::boxes::COMMON_SYSTEM_ID);
        assert_eq!(&pssh[24..40], &cenc.kid);
        let pssh_box = &init[find_box(&init, b"pssh").unwrap()..][..pssh.len() + 8];
        assert!(mpd.contains(&format!("<cenc:pssh>{}</cenc:pssh>", encoder::package::cenc::base64(pssh_box))));
        assert!(find_box(&init, b"mdat").is_none() && find_box(&init, b"moof").is_none(), "{name}: init holds samples");
        assert_eq!(
            init.len(),
            read(out.join(&name).join("init.mp4")).len() + 97 + 52,
            "{name}: only sinf and pssh added"
        );

        let (_, clear) = clear_segments(&out, &name, &key);
        for (n, seg) in segments(&out.join("cbcs").join(&name)).iter().enumerate() {
            let (samples, fragments) = protected_samples(&read(seg));
            let plain = plain_samples(&clear[n]);
            assert_eq!(samples.len(), plain.len(), "{name} {n}");
            for f in &fragments {
                assert_eq!(f.senc_samples, f.trun_samples, "{name} {n}: senc and trun sample counts");
                assert_eq!(f.saio.is_some(), video, "{name} {n}: saio only with subsamples");
                assert!(!video || f.saio_hits_senc, "{name} {n}: saio points at the senc entries");
            }
            for (i, (s, p)) in samples.iter().zip(&plain).enumerate() {
                check_sample(s, p, video).unwrap_or_else(|e| panic!("{name} segment {n} sample {i}: {e}"));
            }
        }
    }
}

/// Every sample of a clear segment, as bytes.
fn plain_samples(segment: &[u8]) -> Vec<Vec<u8>> {
    let mut cursor = std::io::Cursor::new(segment);
    let mut out = Vec::new();
    while (cursor.position() as usize) < segment.len() {
        let start = cursor.position() as usize;
        if let Any::Moof(moof) = Any::decode(&mut cursor).unwrap() {
            let trun = &moof.traf[0].trun[0];
            let mut at = start + trun.data_offset.unwrap() as usize;
            for e in trun.samples.iter() {
                let size = e.size.unwrap() as usize;
                out.push(segment[at..at + size].to_vec());
                at += size;
            }
        }
    }
    out
}

/// Clear ranges equal the clear sample; in protected ranges exactly the first block of every
/// ten differs (1:9), or every whole block (audio), and a partial tail block is untouched.
fn check_sample(s: &ProtectedSample, plain: &[u8], video: bool) -> Result<(), String> {
    if s.bytes.len() != plain.len() {
        return Err("size differs".into());
    }
    let ranges: Vec<(usize, usize)> = if video {
        let total: usize = s.subsamples.iter().map(|&(c, p)| c as usize + p as usize).sum();
        if total != plain.len() {
            return Err(format!("subsamples cover {total} of {} bytes", plain.len()));
        }
        let mut at = 0;
        s.subsamples
            .iter()
            .map(|&(c, p)| {
                let clear_end = at + c as usize;
                if s.bytes[at..clear_end] != plain[at..clear_end] {
                    return Err("a clear range was changed".to_string());
                }
                at = clear_end + p as usize;
                Ok((clear_end, at))
            })
            .collect::<Result<_, _>>()?
    } else {
        if !s.subsamples.is_empty() {
            return Err("audio has subsamples".into());
        }
        vec![(0, plain.len())]
    };
    if video && s.subsamples.first().is_some_and(|&(c, _)| c < 6) {
        return Err("the first clear range cannot hold a NAL length and headers".into());
    }
    for (start, end) in ranges {
        for (i, block) in (start..end).step_by(16).enumerate() {
            let whole = block + 16 <= end;
            let expected = whole && (!video || i % 10 == 0);
            let changed = s.bytes[block..(block + 16).min(end)] != plain[block..(block + 16).min(end)];
            if changed != expected {
                return Err(format!("block {i} of range {start}..{end}: changed {changed}, expected {expected}"));
            }
        }
    }
    Ok(())
}

#[test]
fn a_cbcs_only_output_has_one_tree_and_a_master_pointing_into_it() {
    let (_dir, out, _) = package(Protection::Cbcs, false);
    let names = renditions(&out.join("cbcs"));
    assert!(names.len() >= 2);
    for name in &names {
        assert!(!out.join(name).exists(), "{name} has a top-level folder");
        assert!(out.join("cbcs").join(name).join("index.m3u8").exists());
    }
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    let uris: Vec<&str> = master.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(!uris.is_empty() && uris.iter().all(|u| u.starts_with("cbcs/")), "{master}");
    assert!(master.contains("URI=\"cbcs/audio/index.m3u8\""), "{master}");
    assert!(out.join("manifest.mpd").exists() && out.join("cbcs/master.m3u8").exists());
}

/// The reference packager's binary, from `web/`'s dev dependencies (`npm ci` in `web/`).
fn shaka_packager() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/node_modules/shaka-packager/bin/packager-linux-x64");
    if path.exists() {
        return Some(path);
    }
    let message = format!("shaka-packager not found at {}: run `npm ci` in web/", path.display());
    assert!(std::env::var_os("CI").is_none(), "{message}");
    eprintln!("SKIPPED: {message}");
    None
}

#[test]
fn the_reference_packager_encrypts_the_same_samples_into_the_same_bytes() {
    let Some(packager) = shaka_packager() else { return };
    let (dir, out, key) = package(Protection::Both, false);
    let cenc = CencKey::from_content_key(&key.clone().try_into().unwrap());
    for name in renditions(&out.join("cbcs")) {
        let stream = if name == "audio" { "audio" } else { "video" };
        let (init, clear) = clear_segments(&out, &name, &key);
        let parts: Vec<&[u8]> = std::iter::once(init.as_slice()).chain(clear.iter().map(Vec::as_slice)).collect();
        let input = write(dir.path(), &format!("clear_{name}.mp4"), &parts);
        let output = dir.path().join(format!("shaka_{name}.mp4"));
        let status = Command::new(&packager)
            .arg(format!("in={},stream={stream},output={}", input.display(), output.display()))
            .args(["--protection_scheme", "cbcs", "--clear_lead", "0", "--enable_raw_key_encryption"])
            .arg("--keys")
            .arg(format!("label=:key_id={}:key={}", hex(&cenc.kid), hex(&key)))
            .args(["--iv", &hex(&cenc.iv), "--protection_systems", "CommonSystem", "--segment_duration", "2"])
            .args(["--quiet"])
            .output()
            .expect("packager runs");
        assert!(status.status.success(), "packager: {}", String::from_utf8_lossy(&status.stderr));
        let reference = read(&output);

        let ours_init = read(out.join("cbcs").join(&name).join("init.mp4"));
        assert_eq!(tenc(&ours_init), tenc(&reference), "{name}: tenc");
        assert_eq!(box_body(&ours_init, b"schm"), box_body(&reference, b"schm"), "{name}: schm");
        assert_eq!(box_body(&ours_init, b"frma"), box_body(&reference, b"frma"), "{name}: frma");
        assert_eq!(box_body(&ours_init, b"pssh"), box_body(&reference, b"pssh"), "{name}: pssh");

        let ours: Vec<ProtectedSample> =
            segments(&out.join("cbcs").join(&name)).iter().flat_map(|p| protected_samples(&read(p)).0).collect();
        let (theirs, _) = protected_samples(&reference);
        assert_eq!(ours.len(), theirs.len(), "{name}: sample count");
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a.subsamples, b.subsamples, "{name} sample {i}: subsample layout");
            assert!(a.bytes == b.bytes, "{name} sample {i}: same layout, different bytes");
        }
    }
}

#[test]
fn just_in_time_cbcs_segments_equal_the_packaged_ones() {
    let (dir, out, key) = package(Protection::Cbcs, true);
    let cenc = CencKey::from_content_key(&key.clone().try_into().unwrap());
    let name = renditions(&out.join("cbcs")).remove(0);
    let stored: Vec<Vec<u8>> = segments(&out.join("cbcs").join(&name)).iter().map(read).collect();
    assert!(stored.len() >= 2);
    let starts: Vec<i64> = stored.iter().map(|s| first_pts(s)).collect();
    let parts = part_files(&dir.path().join("work"), &name);

    let whole = span_segments(&parts, &starts, FragmentPolicy::WHOLE, &cenc);
    for (n, seg) in stored.iter().enumerate() {
        assert!(whole[n] == *seg, "segment {n}: the just-in-time copy differs from the packaged one");
    }
    // Streamed as CMAF chunks, the boxes differ but every sample is encrypted alike.
    let chunked = span_segments(&parts, &starts, FragmentPolicy::streaming(30.0), &cenc);
    for (n, seg) in stored.iter().enumerate() {
        let (a, fragments) = protected_samples(&chunked[n]);
        assert!(fragments.len() > 1, "segment {n} was not chunked");
        assert!(a == protected_samples(seg).0, "segment {n}: chunked samples differ");
    }
}

/// Presentation time of a segment's first sample.
fn first_pts(segment: &[u8]) -> i64 {
    let mut cursor = std::io::Cursor::new(segment);
    loop {
        if let Any::Moof(moof) = Any::decode(&mut cursor).unwrap() {
            let traf = &moof.traf[0];
            let cts = traf.trun[0].samples.iter().next().and_then(|e| e.cts).unwrap_or(0);
            return traf.tfdt.as_ref().unwrap().base_media_decode_time as i64 + cts;
        }
    }
}

/// The encoded parts of video rendition `name` the job left in its work folder, in order.
fn part_files(work: &Path, name: &str) -> Vec<PathBuf> {
    let job = std::fs::read_dir(work).unwrap().next().unwrap().unwrap().path();
    let mut parts = segments_with_ext(&job.join("encoded/video").join(name), "es");
    parts.sort();
    assert!(!parts.is_empty(), "no encoded parts for {name}");
    parts
}

fn segments_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect()
}

/// Every cbcs segment of the span, as the just-in-time segmenter makes it from the same
/// packets.
fn span_segments(parts: &[PathBuf], starts: &[i64], policy: FragmentPolicy, key: &CencKey) -> Vec<Vec<u8>> {
    let pieces = span_pieces(parts, starts, policy, vec![(Tree::Cbcs, Sealer::CbcsSamples(key.clone()))]);
    (0..starts.len()).map(|n| copy_of(&pieces, Tree::Cbcs, n)).collect()
}

/// Every piece the just-in-time segmenter makes of the span's packets, sealed by `sealers`.
fn span_pieces(
    parts: &[PathBuf],
    starts: &[i64],
    policy: FragmentPolicy,
    sealers: Vec<(Tree, Sealer)>,
) -> Vec<SegmentPiece> {
    let mut stream = PartStream::open(parts.to_vec()).unwrap();
    let header: EsHeader = stream.header().clone();
    let layout = SpanLayout {
        rung: 0,
        codec: header.codec.clone(),
        first: 0,
        starts: starts.to_vec(),
        end: None,
        policy,
        sealers,
    };
    let pieces = Arc::new(Mutex::new(Vec::<SegmentPiece>::new()));
    let sink = pieces.clone();
    let mut segmenter = SpanSegmenter::new(
        layout,
        Arc::new(move |p| {
            sink.lock().unwrap().push(p);
            Ok(())
        }),
    );
    segmenter.open(&header).unwrap();
    while let Some(p) = stream.next_packet().unwrap() {
        segmenter.push(p).unwrap();
    }
    segmenter.finish().unwrap();
    pieces.lock().unwrap().clone()
}

/// Segment `segment`'s copy in `tree`: its pieces for that tree, concatenated.
fn copy_of(pieces: &[SegmentPiece], tree: Tree, segment: usize) -> Vec<u8> {
    pieces.iter().filter(|p| p.tree == tree && p.segment == segment).flat_map(|p| p.bytes.clone()).collect()
}

/// `last` is set once per tree per segment, on that tree's final piece of the segment.
fn assert_one_last_per_tree(pieces: &[SegmentPiece], trees: &[Tree]) {
    for &tree in trees {
        let mine: Vec<&SegmentPiece> = pieces.iter().filter(|p| p.tree == tree).collect();
        let mut segments: Vec<usize> = mine.iter().map(|p| p.segment).collect();
        segments.dedup();
        for n in segments {
            let of_n: Vec<bool> = mine.iter().filter(|p| p.segment == n).map(|p| p.last).collect();
            assert_eq!(of_n.iter().filter(|&&l| l).count(), 1, "{tree:?} segment {n}: {of_n:?}");
            assert!(of_n.last().unwrap(), "{tree:?} segment {n}: the last piece is not marked last");
        }
    }
}

/// A just-in-time encode of segments `first..first + count` of `rung` with `encryption`.
fn encode_segments(
    out: &Path,
    src: &Path,
    scratch: &Path,
    rung: &str,
    (first, count): (usize, usize),
    encryption: Encryption,
) -> Vec<SegmentPiece> {
    let plan: OnDemandPlan = serde_json::from_slice(&read(out.join("source/plan.json"))).expect("plan");
    let req = SegmentsRequest {
        source: src.display().to_string(),
        plan,
        overlay: None,
        rungs: vec![rung.to_owned()],
        first,
        count,
        encryption: Some(encryption),
        fragments: FragmentPolicy::streaming(30.0),
        scratch: scratch.display().to_string(),
    };
    let pieces = Arc::new(Mutex::new(Vec::new()));
    let sink = pieces.clone();
    let ctx = TaskContext::default();
    // One core: with frame threads, two encodes of the same segment are not always byte
    // identical, and this compares encodes byte for byte.
    ctx.set_cores(1);
    let emit = Arc::new(move |p| {
        sink.lock().unwrap().push(p);
        Ok(())
    });
    encoder::ffmpeg::jit::encode_segments(&req, &ctx, emit).expect("just-in-time encode succeeds");
    pieces.lock().unwrap().clone()
}

#[test]
fn one_just_in_time_encode_seals_every_tree_of_both() {
    let dir = tempfile::tempdir().unwrap();
    let src = h264_clip(dir.path(), "src.mp4", "640x360", 4, 30);
    let out = dir.path().join("out");
    let key_file = dir.path().join("keys/video.key");
    let mut req = protected(request(&src, &out, &dir.path().join("work"), None), &key_file, "../key", Protection::Both);
    req.keep_work_dir = true;
    req.on_demand = true;
    run(req, local_executor()).0.expect("transcode succeeds");
    let key = read(&key_file);
    let both =
        Encryption { key_hex: hex(&key), key_uri: "../key".into(), profile: Protection::Both, ..Default::default() };
    let trees = [Tree::Top, Tree::Cbcs];
    let name = renditions(&out).remove(0);

    // From the full encode's packets, one segment at a time as the package stores them:
    // each tree's copy is the packaged file of that tree, byte for byte.
    let top: Vec<Vec<u8>> = segments(&out.join(&name)).iter().map(read).collect();
    let cbcs: Vec<Vec<u8>> = segments(&out.join("cbcs").join(&name)).iter().map(read).collect();
    assert!(top.len() >= 2 && top.len() == cbcs.len());
    let starts: Vec<i64> = cbcs.iter().map(|s| first_pts(s)).collect();
    let parts = part_files(&dir.path().join("work"), &name);
    let sealers = Sealer::for_request(Some(&both)).unwrap();
    let pieces = span_pieces(&parts, &starts, FragmentPolicy::WHOLE, sealers);
    assert_one_last_per_tree(&pieces, &trees);
    for n in 0..top.len() {
        assert!(copy_of(&pieces, Tree::Top, n) == top[n], "segment {n}: the top copy differs from the package's");
        assert!(copy_of(&pieces, Tree::Cbcs, n) == cbcs[n], "segment {n}: the cbcs copy differs from the package's");
    }

    // A real just-in-time encode of segment 1, streamed: each tree's pieces are those of an
    // encode for that tree alone.
    let scratch = dir.path().join("scratch");
    let jit = |profile| encode_segments(&out, &src, &scratch, &name, (1, 1), Encryption { profile, ..both.clone() });
    let pieces = jit(Protection::Both);
    assert_one_last_per_tree(&pieces, &trees);
    for (tree, profile) in [(Tree::Top, Protection::Aes128), (Tree::Cbcs, Protection::Cbcs)] {
        let single = jit(profile);
        assert!(single.iter().all(|p| p.tree == tree), "{profile:?}: pieces not all for {tree:?}");
        let mine: Vec<SegmentPiece> = pieces.iter().filter(|p| p.tree == tree).cloned().collect();
        assert!(mine.len() >= 3, "{tree:?}: the segment streams as several chunks");
        assert!(mine.iter().all(|p| p.segment == 1 && p.rung == 0));
        assert!(mine == single, "{tree:?}: the pieces differ from a {profile:?}-only encode's");
    }
    // Interleaved as chunks are made: each tree's first piece goes out before the other
    // tree's last one, not after its whole segment.
    let at = |tree, last: bool| {
        let mut of = pieces.iter().enumerate().filter(|(_, p)| p.tree == tree).map(|(i, _)| i);
        if last { of.next_back().unwrap() } else { of.next().unwrap() }
    };
    assert!(at(Tree::Top, false) < at(Tree::Cbcs, true), "the top copy waited for the cbcs one");
    assert!(at(Tree::Cbcs, false) < at(Tree::Top, true), "the cbcs copy waited for the top one");
}

/// An H.264 file of one fragment whose frames hold `slices` slices each, made by FFmpeg.
fn sliced_clip(dir: &Path, slices: u32) -> PathBuf {
    let params = format!("slices={slices}");
    clip(
        dir,
        "sliced.mp4",
        &["testsrc2=size=320x240:rate=30:duration=2"],
        &[
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-x264-params",
            &params,
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
        ],
    )
}

/// Packages a fragmented MP4 with our cbcs code directly (init, then every fragment).
fn protect_file(bytes: &[u8], key: &CencKey) -> Vec<u8> {
    use encoder::package::cmaf::{self, Sample};
    let mut cursor = std::io::Cursor::new(bytes);
    let mut out = Vec::new();
    let mut encryptor = None;
    while (cursor.position() as usize) < bytes.len() {
        let start = cursor.position() as usize;
        match Any::decode(&mut cursor).unwrap() {
            Any::Moov(_) => {
                let track = cmaf::Track::from_template(&bytes[..cursor.position() as usize], 15360).unwrap();
                out.extend(track.protected_init_segment(key).unwrap());
                encryptor = Some(track.encryptor(key).unwrap());
            }
            Any::Moof(moof) => {
                let traf = &moof.traf[0];
                let trun = &traf.trun[0];
                let samples: Vec<Sample> = trun
                    .samples
                    .iter()
                    .map(|e| Sample {
                        duration: e.duration.or(traf.tfhd.default_sample_duration).unwrap_or(512),
                        size: e.size.or(traf.tfhd.default_sample_size).unwrap(),
                        sync: e.flags.or(traf.tfhd.default_sample_flags).unwrap_or(0) & 0x0001_0000 == 0,
                        cts: e.cts.unwrap_or(0) as i32,
                    })
                    .collect();
                let at = start + trun.data_offset.unwrap() as usize;
                let total: usize = samples.iter().map(|s| s.size as usize).sum();
                let mut data = bytes[at..at + total].to_vec();
                let enc = encryptor.as_mut().unwrap();
                let info = enc.encrypt_samples(samples.iter().map(|s| s.size as usize), &mut data).unwrap();
                let decode_time = traf.tfdt.as_ref().unwrap().base_media_decode_time;
                out.extend(cmaf::protected_fragment(1, decode_time, &samples, true, &data, Some(&info)).unwrap());
            }
            _ => {}
        }
    }
    out
}

#[test]
fn frames_of_several_slices_are_encrypted_slice_by_slice() {
    let dir = tempfile::tempdir().unwrap();
    let src = sliced_clip(dir.path(), 4);
    let key = CencKey::from_content_key(&[0x3c; 16]);
    let protected = protect_file(&read(&src), &key);
    let (samples, _) = protected_samples(&protected);
    assert!(samples.iter().all(|s| s.subsamples.len() >= 4), "four slices, four subsamples");
    let ours = write(dir.path(), "ours.mp4", &[&protected]);
    assert_eq!(frame_md5s(&ours, Some(&hex(&key.key))), frame_md5s(&src, None), "decrypts to the source's frames");

    let Some(packager) = shaka_packager() else { return };
    let output = dir.path().join("shaka.mp4");
    let status = Command::new(&packager)
        .arg(format!("in={},stream=video,output={}", src.display(), output.display()))
        .args(["--protection_scheme", "cbcs", "--clear_lead", "0", "--enable_raw_key_encryption"])
        .arg("--keys")
        .arg(format!("label=:key_id={}:key={}", hex(&key.kid), hex(&key.key)))
        .args(["--iv", &hex(&key.iv), "--protection_systems", "CommonSystem", "--quiet"])
        .output()
        .expect("packager runs");
    assert!(status.status.success(), "packager: {}", String::from_utf8_lossy(&status.stderr));
    let (theirs, _) = protected_samples(&read(&output));
    assert_eq!(samples.len(), theirs.len());
    for (i, (a, b)) in samples.iter().zip(&theirs).enumerate() {
        assert_eq!(a.subsamples, b.subsamples, "sample {i}: subsample layout");
        assert!(a.bytes == b.bytes, "sample {i}: same layout, different bytes");
    }
}
