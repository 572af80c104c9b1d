//! The long tail encoded only when watched, through real PoPs: an upload is ready with only
//! its floor stored yet publishes its whole ladder, and every rung's opening segment follows; a segment of another rung asked for
//! through a PoP is encoded then, streamed, encrypted like a stored one and on the same
//! timeline; fifty viewers on two PoPs cost one encode; a video in demand is promoted to its
//! full ladder, loses it when cold, and encodes it again when asked; a pinned video stays; a
//! burst of distinct cold segments is bounded per video and the rest told to come back.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Secrets, counter};
use mp4_atom::{Any, Decode};
use origin::client::{Client, UploadPlan};
use origin::config::DEV_CREATOR_TOKEN;
use tests::media::clip;

const SECRETS: Secrets = Secrets { signing_key: "0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d" };

async fn start_pop(dir: &Path, origin: &str, id: &str) -> edge::Running {
    let origin_dir = dir.parent().unwrap().join("origin");
    let mut cfg = SECRETS.pop(dir, &origin_dir, origin, id).await;
    cfg.listen.http = Some("127.0.0.1:0".parse().unwrap());
    cfg.prefetch.enabled = false;
    cfg.prefetch.heartbeat = Duration::from_millis(300);
    edge::start(cfg).await.expect("PoP starts")
}

async fn metrics(http: &reqwest::Client, origin: &origin::Running) -> String {
    let addr = origin.metrics_addr.expect("metrics listener");
    http.get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap()
}

async fn wait_until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A variant's BANDWIDTH in a multivariant playlist.
fn bandwidth(master: &str, rung: &str) -> u64 {
    let lines: Vec<&str> = master.lines().collect();
    let at = lines.iter().position(|l| *l == format!("{rung}/index.m3u8")).expect("the variant");
    let inf = lines[at - 1];
    inf.split([':', ','])
        .find_map(|a| a.strip_prefix("BANDWIDTH="))
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("no BANDWIDTH in {inf}"))
}

/// A representation's `bandwidth` in a DASH manifest.
fn representation_bandwidth(mpd: &str, rung: &str) -> u64 {
    let opening = format!("<Representation id=\"{rung}\" bandwidth=\"");
    let at = mpd.find(&opening).unwrap_or_else(|| panic!("no {rung} in {mpd}")) + opening.len();
    mpd[at..].split('"').next().and_then(|b| b.parse().ok()).expect("a number")
}

fn states(video: &serde_json::Value) -> Vec<(String, String)> {
    video["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["width"].as_u64() != Some(0))
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r["state"].as_str().unwrap_or("-").to_owned()))
        .collect()
}

fn decrypt(key: &[u8], segment: u64, bytes: &[u8]) -> Vec<u8> {
    use aes::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
    let mut buf = bytes.to_vec();
    let iv = u128::from(segment).to_be_bytes();
    cbc::Decryptor::<aes::Aes128>::new(key.try_into().unwrap(), &iv.into())
        .decrypt_padded::<Pkcs7>(&mut buf)
        .expect("the segment decrypts with the video's key")
        .to_vec()
}

/// tfdt of the first chunk and the total of the sample durations.
fn timing(segment: &[u8]) -> (u64, u64, usize) {
    let mut cursor = std::io::Cursor::new(segment);
    let (mut tfdt, mut total, mut chunks) = (None, 0u64, 0);
    while (cursor.position() as usize) < segment.len() {
        if let Any::Moof(moof) = Any::decode(&mut cursor).expect("box") {
            chunks += 1;
            let traf = &moof.traf[0];
            tfdt.get_or_insert(traf.tfdt.as_ref().unwrap().base_media_decode_time);
            total +=
                traf.trun.iter().flat_map(|t| t.samples.iter()).map(|s| u64::from(s.duration.unwrap())).sum::<u64>();
        }
    }
    (tfdt.expect("a moof"), total, chunks)
}

/// ffmpeg's decode errors (empty when clean, `-xerror` stops at the first) and ffprobe's
/// "width,height,frames" of a whole stream.
fn decode(dir: &Path, stream: &[u8]) -> (String, String) {
    let file = dir.join("decode.mp4");
    std::fs::write(&file, stream).unwrap();
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(&file)
        .args(["-map", "0:v", "-f", "null", "-"])
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    (errors, frames(dir, &[], stream))
}

fn frames(dir: &Path, init: &[u8], segment: &[u8]) -> String {
    let file = dir.join("probe.mp4");
    std::fs::write(&file, [init, segment].concat()).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=width,height,nb_read_frames", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_long_tail_is_encoded_when_watched() {
    edge::init_tls();
    let dir = tempfile::tempdir().unwrap();
    let origin_url = common::origin_url();
    let pop_a = start_pop(&dir.path().join("pop-a"), &origin_url, "pop-a").await;
    let pop_b = start_pop(&dir.path().join("pop-b"), &origin_url, "pop-b").await;
    let (a, b) = (format!("http://{}", pop_a.http.unwrap()), format!("http://{}", pop_b.http.unwrap()));
    let data = dir.path().join("origin");
    let mut config = SECRETS.origin(&data, &origin_url, &a, &a);
    config.on_demand.policy_interval = Duration::from_millis(200);
    config.on_demand.evict_after = Duration::from_secs(3);
    config.on_demand.lookahead = 1;
    let origin = origin::start(config).await.expect("origin starts");
    let http = reqwest::Client::new();

    let src = clip(dir.path(), "src.mp4", "1920x1080", 12);
    let creator = Client::new(&origin_url, DEV_CREATOR_TOKEN);
    let (id, upload) = creator.create_video("long tail", &src).await.unwrap();
    creator.upload(&upload, &src, UploadPlan { chunk: 1 << 20, parallel: 2 }).await.unwrap();
    let ready = creator.wait_ready(&id, Duration::from_secs(240)).await.unwrap();
    let video = creator.video(&id).await.unwrap();
    assert_eq!(ready["state"], "ready");
    let st = states(&video);
    assert!(st.contains(&("360p".into(), "floor".into())), "{st:?}");
    for rung in ["240p", "480p", "720p", "1080p"] {
        assert!(st.contains(&(rung.into(), "on_demand".into())), "{rung}: {st:?}");
    }
    // Only the floor's segments are stored; every rung has its playlist and init segment.
    let blobs = data.join("blobs/videos").join(&id);
    assert!(blobs.join("360p/seg_00000.m4s").exists());
    for rung in ["240p", "480p", "720p", "1080p"] {
        assert!(blobs.join(rung).join("init.mp4").exists() && blobs.join(rung).join("index.m3u8").exists());
        assert!(!blobs.join(rung).join("seg_00001.m4s").exists(), "{rung} was encoded at upload");
    }
    // Right after `ready`, every rung's opening segment is encoded: viewers start on it.
    wait_until("every rung's opening segment", Duration::from_secs(60), async || {
        ["240p", "480p", "720p", "1080p"].iter().all(|r| blobs.join(r).join("seg_00000.m4s").exists())
    })
    .await;
    for rung in ["240p", "480p", "720p", "1080p"] {
        assert!(!blobs.join(rung).join("seg_00001.m4s").exists(), "only the opening of {rung}");
    }
    assert!(data.join("blobs/sources").join(&id).join("plan.json").exists());

    let playback = creator.playback(&id).await.unwrap();
    let master_url = playback["master_url"].as_str().unwrap().to_owned();
    let master = http.get(&master_url).send().await.unwrap().text().await.unwrap();
    let manifest = std::fs::read_to_string(blobs.join("manifest.mpd")).unwrap();
    for rung in ["1080p", "720p", "480p", "360p"] {
        assert!(master.contains(&format!("{rung}/index.m3u8")), "{master}");
    }
    let base = master_url.trim_end_matches("master.m3u8").to_owned();
    let key = common::content_key(&http, &playback).await;
    let playlist = http.get(format!("{base}720p/index.m3u8")).send().await.unwrap().text().await.unwrap();
    assert_eq!(playlist.matches("#EXTINF:").count(), 6, "{playlist}");

    // 720p segment 4, never encoded, asked for through a PoP.
    let before = metrics(&http, &origin).await;
    let response = http.get(format!("{base}720p/seg_00004.m4s")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "miss");
    let segment = response.bytes().await.unwrap().to_vec();
    let clear = decrypt(&key, 4, &segment);
    let (tfdt, duration, chunks) = timing(&clear);
    assert_eq!((tfdt, duration), (720_000, 180_000), "the slot's timeline: 8 s, 2 s at 90 kHz");
    assert!(chunks > 1, "streamed as several CMAF chunks");
    let init = http.get(format!("{base}720p/init.mp4")).send().await.unwrap().bytes().await.unwrap().to_vec();
    assert_eq!(frames(dir.path(), &init, &clear), "1280,720,60");
    wait_until("the segment is stored", Duration::from_secs(10), async || blobs.join("720p/seg_00004.m4s").exists())
        .await;
    let stored = std::fs::read(blobs.join("720p/seg_00004.m4s")).unwrap();
    assert_eq!(stored, segment, "what the viewer got is what is stored");

    let after = metrics(&http, &origin).await;
    let jit = |page: &str| counter(page, &["origin_segments_encoded_total", "reason=\"jit\""]);
    assert_eq!(jit(&after) - jit(&before), 1.0);
    assert!(counter(&after, &["origin_encode_cpu_seconds_total", "reason=\"jit\""]) > 0.0);
    assert!(counter(&after, &["origin_encode_cpu_seconds_total", "reason=\"upload\""]) > 0.0);
    assert!(counter(&after, &["origin_jit_first_byte_seconds_count"]) >= 1.0);
    // Look-ahead made the next segment before anyone asked for it.
    wait_until("look-ahead stores segment 5", Duration::from_secs(20), async || {
        blobs.join("720p/seg_00005.m4s").exists()
    })
    .await;

    // The same source pinned to its full ladder before its upload: every rung encoded at
    // upload. The just-in-time segment has the stored one's timeline, and slots into the
    // full encode's rung between its stored segments: ffmpeg decodes all of it cleanly.
    let (full_id, full_upload) = creator.create_video("full ladder", &src).await.unwrap();
    let pinned = http
        .put(format!("{origin_url}/v1/videos/{full_id}/pin"))
        .bearer_auth(DEV_CREATOR_TOKEN)
        .json(&serde_json::json!({"pin": "full"}))
        .send()
        .await
        .unwrap();
    assert_eq!(pinned.status(), 200, "a pin before the upload: {}", pinned.text().await.unwrap());
    creator.upload(&full_upload, &src, UploadPlan { chunk: 1 << 20, parallel: 2 }).await.unwrap();
    creator.wait_ready(&full_id, Duration::from_secs(240)).await.unwrap();
    let full_states = states(&creator.video(&full_id).await.unwrap());
    assert!(full_states.iter().all(|(_, s)| s == "floor"), "all encoded at upload: {full_states:?}");
    let full_playback = creator.playback(&full_id).await.unwrap();
    let full_master = full_playback["master_url"].as_str().unwrap().to_owned();
    let full_base = full_master.trim_end_matches("master.m3u8").to_owned();
    let full_key = common::content_key(&http, &full_playback).await;
    let get = async |url: String| http.get(url).send().await.unwrap().bytes().await.unwrap().to_vec();
    let full_init = get(format!("{full_base}720p/init.mp4")).await;
    let mut mixed = full_init.clone();
    for n in 0..6u64 {
        let piece = if n == 4 {
            clear.clone()
        } else {
            decrypt(&full_key, n, &get(format!("{full_base}720p/seg_{n:05}.m4s")).await)
        };
        if n == 4 {
            let stored = decrypt(&full_key, 4, &get(format!("{full_base}720p/seg_00004.m4s")).await);
            assert_eq!(timing(&stored).0, tfdt, "the stored copy's tfdt");
            assert_eq!(timing(&stored).1, duration, "the stored copy's duration");
        }
        mixed.extend_from_slice(&piece);
    }
    assert_eq!(decode(dir.path(), &mixed), (String::new(), "1280,720,360".to_owned()));
    assert_eq!(decode(dir.path(), &[init.clone(), clear.clone()].concat()).0, "", "with its own init segment");

    // Fifty viewers of one cold segment on two PoPs: one encode.
    let before = metrics(&http, &origin).await;
    let mut viewers = Vec::new();
    for i in 0..50 {
        let pop = if i % 2 == 0 { &a } else { &b };
        let url = master_url.replacen(&a, pop, 1).replace("master.m3u8", "480p/seg_00002.m4s");
        let http = http.clone();
        viewers.push(tokio::spawn(async move {
            let r = http.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap().to_vec()
        }));
    }
    let mut bodies = Vec::new();
    for v in viewers {
        bodies.push(v.await.unwrap());
    }
    assert!(bodies.iter().all(|b| b == &bodies[0]) && !bodies[0].is_empty());
    let after = metrics(&http, &origin).await;
    assert_eq!(jit(&after) - jit(&before), 1.0, "fifty requests on two PoPs, one encode");

    // Past the end, and a floor segment that is not there, are plain 404s.
    let past = http.get(format!("{base}720p/seg_00099.m4s")).send().await.unwrap();
    assert_eq!(past.status(), 404);

    // Pinned to the full ladder: everything is encoded in the background, and stays.
    let pinned = http
        .put(format!("{origin_url}/v1/videos/{id}/pin"))
        .bearer_auth(DEV_CREATOR_TOKEN)
        .json(&serde_json::json!({"pin": "full"}))
        .send()
        .await
        .unwrap();
    assert_eq!(pinned.status(), 200, "{}", pinned.text().await.unwrap());
    wait_until("every rung materialised", Duration::from_secs(240), async || {
        let v = creator.video(&id).await.unwrap();
        states(&v).iter().all(|(_, s)| s == "floor" || s == "materialised")
    })
    .await;
    for rung in ["240p", "480p", "720p", "1080p"] {
        for n in 0..6 {
            assert!(blobs.join(rung).join(format!("seg_{n:05}.m4s")).exists(), "{rung} {n}");
        }
    }
    // Materialised rungs announce what they measure instead of their caps.
    let measured = std::fs::read_to_string(blobs.join("master.m3u8")).unwrap();
    let measured_cbcs = std::fs::read_to_string(blobs.join("cbcs/master.m3u8")).unwrap();
    let measured_mpd = std::fs::read_to_string(blobs.join("manifest.mpd")).unwrap();
    for rung in ["480p", "720p", "1080p"] {
        let (cap, now) = (bandwidth(&master, rung), bandwidth(&measured, rung));
        assert!(now > 0 && now != cap && now < cap * 2, "{rung}: {cap} announced, {now} measured\n{measured}");
        let cbcs = bandwidth(&measured_cbcs, rung);
        assert!(cbcs.abs_diff(now) < now / 20, "{rung}: the cbcs copy measures about the same: {cbcs}, {now}");
        let (cap, now) = (representation_bandwidth(&manifest, rung), representation_bandwidth(&measured_mpd, rung));
        assert!(now > 0 && now < cap, "{rung}: the MPD announced {cap}, then measured {now}\n{measured_mpd}");
    }
    assert!(
        counter(&metrics(&http, &origin).await, &["origin_encode_cpu_seconds_total", "reason=\"promotion\""]) > 0.0
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let v = creator.video(&id).await.unwrap();
    assert!(states(&v).iter().all(|(_, s)| s == "floor" || s == "materialised"), "a pinned video is never evicted");

    // Unpinned and cold: its non-floor segments go, and come back when asked for.
    let unpinned = http
        .put(format!("{origin_url}/v1/videos/{id}/pin"))
        .bearer_auth(DEV_CREATOR_TOKEN)
        .json(&serde_json::json!({"pin": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(unpinned.status(), 200);
    wait_until("cold rungs evicted", Duration::from_secs(30), async || {
        let v = creator.video(&id).await.unwrap();
        states(&v).iter().all(|(_, s)| s == "floor" || s == "evicted")
    })
    .await;
    assert!(!blobs.join("1080p/seg_00003.m4s").exists());
    assert!(blobs.join("1080p/seg_00000.m4s").exists(), "eviction keeps the opening segment");
    assert!(blobs.join("360p/seg_00003.m4s").exists() && blobs.join("1080p/init.mp4").exists(), "the floor stays");
    let before = metrics(&http, &origin).await;
    let again = http.get(format!("{}1080p/seg_00003.m4s", base.replacen(&a, &b, 1))).send().await.unwrap();
    assert_eq!(again.status(), 200);
    let again = again.bytes().await.unwrap();
    let (tfdt, _, _) = timing(&decrypt(&key, 3, &again));
    assert_eq!(tfdt, 540_000);
    assert_eq!(jit(&metrics(&http, &origin).await) - jit(&before), 1.0, "encoded again on request");

    // A burst of distinct cold segments of one video: at most `max_pending_per_video` (8)
    // encodes at once; the rest are told to come back (503 with Retry-After through the PoP),
    // never piled up. Fifteen are asked for; at most three of them (480p 2, fetched by the
    // fifty viewers, 1080p 3, just encoded again, and 1080p 4, its look-ahead) can be warm
    // anywhere, so at least twelve need an encode at once: past the limit whatever the timing.
    let before = metrics(&http, &origin).await;
    let mut burst = Vec::new();
    let asked = ["240p", "480p", "1080p"].iter().flat_map(|r| (1..6).map(move |n| (*r, n))).collect::<Vec<_>>();
    for &(rung, n) in &asked {
        let (http, url) = (http.clone(), format!("{base}{rung}/seg_{n:05}.m4s"));
        burst.push(tokio::spawn(async move {
            let r = http.get(url).send().await.unwrap();
            let (status, retry) = (r.status().as_u16(), r.headers().contains_key("retry-after"));
            let body = r.bytes().await.unwrap();
            (status, retry, body)
        }));
    }
    let mut busy = 0;
    for b in burst {
        match b.await.unwrap() {
            (200, _, body) => assert!(!body.is_empty()),
            (503, true, body) => {
                let e: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(e["error"]["code"], "origin_busy", "{e}");
                busy += 1;
            }
            (status, retry, body) => panic!("{status} (retry-after: {retry}): {}", String::from_utf8_lossy(&body)),
        }
    }
    assert!(busy >= 1, "twelve or more distinct cold segments at once exceed the per-video queue");
    let encoded = jit(&metrics(&http, &origin).await) - jit(&before);
    let most = asked.len() as f64 - f64::from(busy);
    assert!(encoded <= most, "refused requests start no encode: {encoded} encodes, {busy} refused");

    pop_a.stop().await;
    pop_b.stop().await;
    origin.stop().await;
}
