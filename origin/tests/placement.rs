//! Popularity-driven placement through the heartbeat (`origin::placement`): a title steady in
//! its region gets the short list (two segments per rendition); once its demand jumps, a PoP
//! is sent its opening (every rendition up to the video's last segment, an on-demand rung only
//! what is stored) once, not on every beat, and every PoP of the region its own; a title not
//! ready or taken down is never listed.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use origin::config::DEV_CREATOR_TOKEN;
use origin::pops::Enrolment;
use serde_json::{Value, json};

const REGION: &str = "r1";

async fn enrol(origin: &TestOrigin, id: &str) -> String {
    let who = Enrolment { id: id.into(), region: REGION.into(), partner: false };
    origin::pops::enrol(origin.running.app.pops.as_ref(), &who, origin::meta::now()).await.unwrap()
}

/// One heartbeat of `pop` reporting `top`; the answer.
async fn beat(origin: &TestOrigin, pop: &str, credential: &str, top: Value) -> Value {
    let report = json!({"pop": pop, "top": top, "every_ms": 3000});
    let r = origin.client.post(origin.url("/v1/pops/heartbeat")).bearer_auth(credential).json(&report).send().await;
    let r = r.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The segment numbers an answer lists for `video`, by `[cbcs/]rendition`.
fn segments(answer: &Value, video: &str) -> BTreeMap<String, BTreeSet<u64>> {
    let mut out: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let keys = answer["prefetch"].as_array().expect("a prefetch list");
    for key in keys.iter().filter_map(Value::as_str).filter_map(|k| k.strip_prefix(&format!("{video}/"))) {
        let Some((folder, file)) = key.rsplit_once('/') else { continue };
        if let Some(n) = file.strip_prefix("seg_").and_then(|f| f.strip_suffix(".m4s")) {
            out.entry(folder.to_owned()).or_default().insert(n.parse().unwrap());
        }
    }
    out
}

fn lists(answer: &Value, video: &str) -> bool {
    answer["prefetch"].as_array().unwrap().iter().any(|k| k.as_str().unwrap().starts_with(&format!("{video}/")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rising_title_gets_its_opening_once_per_pop_and_a_gone_one_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // 640x360: a 360p floor and a 240p rung encoded on demand; 12 s: about six 2 s segments,
    // all of them inside the opening minute.
    let data = std::fs::read(clip(dir.path(), "src.mp4", "640x360", 12)).unwrap();
    let mut config = origin::config::Config::for_dir(&dir.path().join("data"));
    config.steering.prefetch_opening_secs = 60;
    let origin = TestOrigin::start_with(config).await;
    let app = origin.running.app.clone();
    let created = origin.create_video("rising", data.len() as u64).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    origin.tus(&created).upload(&data, 1 << 20).await;
    let video = origin.wait_state(&id, "ready", 180).await;
    let pending = origin.create_video("pending", 10).await["video"]["id"].as_str().unwrap().to_owned();

    let rungs = app.ondemand.rungs(&id).await.unwrap();
    let count = rungs.iter().map(|r| r.segments).max().unwrap();
    assert!((3..=30).contains(&count), "a few segments, all inside the opening: {rungs:?}");
    let on_demand: BTreeSet<String> = video["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["on_demand"] == true)
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(!on_demand.is_empty(), "a rung encoded on demand: {video}");

    let (cred_a, cred_b) = (enrol(&origin, "pop-a").await, enrol(&origin, "pop-b").await);
    // An hour at 20,000 a minute: steady.
    let minute = origin::meta::now() / 60_000;
    for m in minute - 60..minute {
        app.pops.add_popularity(REGION, m, &[(id.clone(), 20_000)]).await.unwrap();
    }
    // A beat that keeps that pace (the current minute is scaled from at most its first 20 s).
    let steady = beat(&origin, "pop-a", &cred_a, json!([{"video": id, "requests": 1_000}])).await;
    let listed = segments(&steady, &id);
    assert!(!listed.is_empty() && listed.values().all(|s| s.iter().all(|&n| n < 2)), "short list only: {listed:?}");

    // Ten times that now, and the pending title too: the ready one rises.
    let crowd = json!([{"video": id, "requests": 200_000}, {"video": pending, "requests": 200_000}]);
    let rising = beat(&origin, "pop-a", &cred_a, crowd.clone()).await;
    assert!(!lists(&rising, &pending), "not ready: never listed");
    let listed = segments(&rising, &id);
    for (folder, got) in &listed {
        let rung = folder.strip_prefix("cbcs/").unwrap_or(folder);
        if on_demand.contains(rung) {
            // Its short list (the stored opening) and whatever else storage holds, nothing more.
            for &n in got.iter().filter(|&&n| n >= 2) {
                let key = origin::ondemand::segment_key(&id, encoder::layout::Tree::Top, rung, n);
                assert!(app.blobs.exists(&key).await.unwrap(), "{folder} segment {n} listed but not stored");
            }
        } else {
            assert_eq!(got, &(0..count).collect::<BTreeSet<_>>(), "{folder}: the whole opening, not past the end");
        }
    }
    assert!(listed.keys().any(|f| f.starts_with("cbcs/")), "every protection tree: {listed:?}");
    assert!(listed.keys().any(|f| f.ends_with("audio")), "audio too: {listed:?}");

    // The next beat does not send it again; another PoP of the region gets its own.
    let again = beat(&origin, "pop-a", &cred_a, crowd.clone()).await;
    assert!(segments(&again, &id).values().all(|s| s.iter().all(|&n| n < 2)), "opening sent once");
    let other = beat(&origin, "pop-b", &cred_b, crowd.clone()).await;
    assert_eq!(segments(&other, &id), listed, "pop-b's own opening");

    // Taken down: gone from the next answer, opening and all.
    let r = origin.client.delete(origin.url(&format!("/v1/videos/{id}"))).bearer_auth(DEV_CREATOR_TOKEN);
    assert_eq!(r.send().await.unwrap().status(), 200);
    let after = beat(&origin, "pop-b", &cred_b, crowd).await;
    assert!(!lists(&after, &id) && !lists(&after, &pending), "{after}");
    origin.running.stop().await;
}
