//! What viewers cost the origin, measured in the bytes the (counting) origin sends: ranged
//! requests for an object larger than a cache block cost the chunks they touch, once, not the
//! whole object each time; a missing object costs one request per `cache.not_found_ttl`, an
//! origin error is never remembered.

mod common;

use std::time::Duration;

use common::*;

const OBJECT: usize = 3 << 20;
const BLOCK: u64 = 1 << 20;
/// What a 1 MiB block holds of a body (the rest is the entry's index, key and head).
const CHUNK: u64 = BLOCK - (8 << 10);

async fn large_object_pop() -> (Pop, TestOrigin, bytes::Bytes, tempfile::TempDir) {
    init();
    let origin = TestOrigin::start().await;
    let body = origin.segment("v30/1080p/big.m4s", OBJECT);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &origin.url());
    cfg.cache.block = BLOCK;
    (Pop::start(cfg).await, origin, body, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_probes_of_a_large_object_cost_one_chunk() {
    let (pop, origin, body, _dir) = large_object_pop().await;
    let url = pop.https(&viewer_path("v30", "1080p/big.m4s"));
    for _ in 0..10 {
        let r = pop.h1.get(&url).header("range", "bytes=0-0").send().await.unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.headers()["content-range"], format!("bytes 0-0/{OBJECT}"));
        assert_eq!(r.bytes().await.unwrap(), body.slice(0..1));
    }
    // Asked: 10 bytes. Whole-object fetches cost 30 MiB; forwarding each range, 10 bytes in
    // 10 requests; chunks, one chunk in one request, then hits.
    eprintln!(
        "10 x bytes=0-0 of 3 MiB: origin sent {} bytes in {} requests",
        origin.bytes_sent(),
        origin.total_fetches()
    );
    assert_eq!(origin.bytes_sent(), CHUNK, "one chunk, however many probes");
    assert_eq!(origin.total_fetches(), 1);
    // A range in the last chunk costs that chunk only.
    let r = pop.h1.get(&url).header("range", format!("bytes={}-", OBJECT - 10)).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap(), body.slice(OBJECT - 10..));
    let last = OBJECT as u64 - 3 * CHUNK;
    assert_eq!(origin.bytes_sent(), CHUNK + last);
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_and_ranged_reads_stay_within_the_object_once() {
    let (pop, origin, body, _dir) = large_object_pop().await;
    let url = pop.https(&viewer_path("v30", "1080p/big.m4s"));
    let mut asked = 0u64;
    // A player reading the object in 256 KiB ranges, three times over, over h1 and h2.
    for round in 0..3 {
        let client = if round % 2 == 0 { &pop.h1 } else { &pop.h2 };
        for start in (0..OBJECT).step_by(256 << 10) {
            let end = (start + (256 << 10)).min(OBJECT) - 1;
            let r = client.get(&url).header("range", format!("bytes={start}-{end}")).send().await.unwrap();
            assert_eq!(r.status(), 206);
            let got = r.bytes().await.unwrap();
            assert!(got == body.slice(start..=end), "bytes {start}-{end}");
            asked += got.len() as u64;
        }
    }
    for _ in 0..2 {
        let got = pop.h1.get(&url).send().await.unwrap().bytes().await.unwrap();
        assert!(got == body);
        asked += got.len() as u64;
    }
    let sent = origin.bytes_sent();
    eprintln!("{asked} bytes asked of a 3 MiB object: origin sent {sent} in {} requests", origin.total_fetches());
    assert_eq!(sent, OBJECT as u64, "every byte once: {sent} for {asked} asked");
    assert_eq!(origin.total_fetches(), (OBJECT as u64).div_ceil(CHUNK));
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_object_costs_one_request_per_ttl_and_errors_are_never_remembered() {
    init();
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &origin.url());
    cfg.cache.not_found_ttl = Duration::from_secs(1);
    let pop = Pop::start(cfg).await;
    let missing = viewer_path("v31", "360p/seg_00009.m4s");
    for _ in 0..10 {
        let r = pop.h1.get(pop.https(&missing)).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"]["code"], "not_found");
    }
    assert_eq!(origin.fetches("v31/360p/seg_00009.m4s"), 1, "a 404 is remembered");
    let metrics = pop.metrics().await;
    assert!(metric(&metrics, "edge_cache_lookups_total", &["result=\"negative\""]) >= 9.0, "{metrics}");
    // The object appears (the video became ready): served once the 404 is forgotten.
    let segment = origin.segment("v31/360p/seg_00009.m4s", 5_000);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, body) = pop.get(&missing).await;
    assert_eq!((status, body), (200, segment));
    assert_eq!(origin.fetches("v31/360p/seg_00009.m4s"), 2);

    origin.fail("v31/360p/seg_00010.m4s", 503);
    let failing = viewer_path("v31", "360p/seg_00010.m4s");
    let mut before = 0;
    for _ in 0..3 {
        let r = pop.h1.get(pop.https(&failing)).send().await.unwrap();
        assert_eq!(r.status(), 502);
        let now = origin.fetches("v31/360p/seg_00010.m4s");
        assert!(now > before, "every request asks the origin again after a 5xx");
        before = now;
    }
    pop.stop().await;
}
