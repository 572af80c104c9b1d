//! One conformance suite for every `OnDemandStore` backend (the same `SqlStore` as the rest of
//! the metadata): SQLite on a temporary file, and PostgreSQL when `TEST_POSTGRES_URL` names a
//! server (each run gets its own database).

mod common;

use common::services::{FreshDatabase, service_url};
use origin::meta::ondemand::{OnDemandStore, Pin, RungState, RungStatus, SegmentKey, WorkerInfo};
use origin::meta::sql::SqlStore;

#[tokio::test]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
    let store = SqlStore::connect(&url).await.unwrap();
    conformance(&store).await;
    store.close().await;
    // Demand, pins and rung states survive a restart: the window is in the database.
    let reopened = SqlStore::connect(&url).await.unwrap();
    assert_eq!(reopened.pin("kept").await.unwrap(), Some(Pin::Full));
    assert_eq!(reopened.demand_since("kept", 0).await.unwrap(), 9);
    assert_eq!(reopened.rungs("kept").await.unwrap().len(), 2);
    reopened.close().await;
}

#[tokio::test]
async fn postgres_conformance() {
    let Some(admin_url) = service_url("TEST_POSTGRES_URL", "PostgreSQL on-demand conformance") else { return };
    FreshDatabase::run(&admin_url, "ondemand_test", async |url| {
        let store = SqlStore::connect(&url).await.unwrap();
        conformance(&store).await;
        store.close().await;
    })
    .await;
}

async fn conformance(store: &dyn OnDemandStore) {
    rungs(store).await;
    pins(store).await;
    demand(store).await;
    claims(store).await;
    workers(store).await;
    forgetting(store).await;
}

fn rung(name: &str, state: RungState, stored: u64, now: i64) -> RungStatus {
    RungStatus { name: name.into(), state, stored, segments: 10, updated_at: now }
}

async fn rungs(store: &dyn OnDemandStore) {
    let v = "r1";
    assert!(store.rungs(v).await.unwrap().is_empty());
    store
        .set_rungs(v, &[rung("720p", RungState::OnDemand, 0, 100), rung("360p", RungState::Floor, 10, 100)])
        .await
        .unwrap();
    let got = store.rungs(v).await.unwrap();
    assert_eq!(got, vec![rung("360p", RungState::Floor, 10, 100), rung("720p", RungState::OnDemand, 0, 100)]);

    // Setting again replaces every row.
    store.set_rungs(v, &[rung("720p", RungState::OnDemand, 0, 110)]).await.unwrap();
    assert_eq!(store.rungs(v).await.unwrap(), vec![rung("720p", RungState::OnDemand, 0, 110)]);

    // A move happens only from one of the named states.
    assert!(!store.move_rung(v, "720p", &[RungState::Materialised], RungState::Evicted, 120).await.unwrap());
    assert!(
        store
            .move_rung(v, "720p", &[RungState::OnDemand, RungState::Evicted], RungState::Materialising, 130)
            .await
            .unwrap()
    );
    assert!(!store.move_rung(v, "720p", &[RungState::OnDemand], RungState::Materialising, 131).await.unwrap());
    assert!(!store.move_rung(v, "1080p", &[RungState::OnDemand], RungState::Materialising, 131).await.unwrap());
    assert!(!store.move_rung(v, "720p", &[], RungState::Floor, 131).await.unwrap());
    let r = &store.rungs(v).await.unwrap()[0];
    assert_eq!((r.state, r.updated_at), (RungState::Materialising, 130));

    // Stored counts add up and never pass the rung's segments.
    store.add_stored(v, "720p", 4, 140).await.unwrap();
    store.add_stored(v, "720p", 3, 141).await.unwrap();
    assert_eq!(store.rungs(v).await.unwrap()[0].stored, 7);
    store.add_stored(v, "720p", 50, 142).await.unwrap();
    assert_eq!(store.rungs(v).await.unwrap()[0].stored, 10);
    store.clear_stored(v, "720p", 150).await.unwrap();
    let r = &store.rungs(v).await.unwrap()[0];
    assert_eq!((r.stored, r.updated_at), (0, 150));

    // Rungs by state and age, oldest first, across videos.
    store
        .set_rungs("r2", &[rung("720p", RungState::Materialised, 10, 50), rung("480p", RungState::Evicted, 0, 60)])
        .await
        .unwrap();
    let found = store.rungs_in(&[RungState::Materialised, RungState::Materialising], 1_000, 10).await.unwrap();
    let names: Vec<(String, String)> = found.iter().map(|(v, r)| (v.clone(), r.name.clone())).collect();
    assert_eq!(names, vec![("r2".into(), "720p".into()), ("r1".into(), "720p".into())]);
    let old = store.rungs_in(&[RungState::Materialised, RungState::Materialising], 100, 10).await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(store.rungs_in(&RungState::ALL, i64::MAX, 1).await.unwrap().len(), 1, "the limit holds");
    assert!(store.rungs_in(&[], i64::MAX, 10).await.unwrap().is_empty());
}

async fn pins(store: &dyn OnDemandStore) {
    assert_eq!(store.pin("p1").await.unwrap(), None);
    store.set_pin("p1", Some(Pin::Floor)).await.unwrap();
    assert_eq!(store.pin("p1").await.unwrap(), Some(Pin::Floor));
    store.set_pin("p1", Some(Pin::Full)).await.unwrap();
    assert_eq!(store.pin("p1").await.unwrap(), Some(Pin::Full));
    store.set_pin("p1", None).await.unwrap();
    assert_eq!(store.pin("p1").await.unwrap(), None);
    store.set_pin("p1", None).await.unwrap();
}

const MINUTE: i64 = 60_000;

async fn demand(store: &dyn OnDemandStore) {
    let t0 = 1_000 * MINUTE;
    assert_eq!(store.last_demand("d1").await.unwrap(), None);
    assert_eq!(store.demand_since("d1", 0).await.unwrap(), 0);
    // Requests in one minute add up in one row; zero is no request at all.
    store.add_demand("d1", 3, t0 + 1_000).await.unwrap();
    store.add_demand("d1", 4, t0 + 59_000).await.unwrap();
    store.add_demand("d1", 0, t0 + 30 * MINUTE).await.unwrap();
    store.add_demand("d1", 5, t0 + 2 * MINUTE).await.unwrap();
    store.add_demand("d2", 20, t0 + 2 * MINUTE).await.unwrap();
    store.add_demand("d3", 1, t0).await.unwrap();
    assert_eq!(store.demand_since("d1", t0).await.unwrap(), 12);
    // A window starting mid-minute still counts that minute.
    assert_eq!(store.demand_since("d1", t0 + MINUTE + 30_000).await.unwrap(), 5);
    assert_eq!(store.last_demand("d1").await.unwrap(), Some(t0 + 2 * MINUTE));

    let wanted = store.in_demand(t0, 10, 10).await.unwrap();
    assert_eq!(wanted, vec![("d2".to_owned(), 20), ("d1".to_owned(), 12)]);
    assert_eq!(store.in_demand(t0, 10, 1).await.unwrap(), vec![("d2".to_owned(), 20)]);
    assert_eq!(store.in_demand(t0 + 2 * MINUTE, 6, 10).await.unwrap(), vec![("d2".to_owned(), 20)]);

    store.prune_demand(t0 + MINUTE).await.unwrap();
    assert_eq!(store.demand_since("d1", 0).await.unwrap(), 5);
    assert_eq!(store.demand_since("d3", 0).await.unwrap(), 0);

    // What the reopening check reads.
    store.add_demand("kept", 9, t0).await.unwrap();
    store.set_pin("kept", Some(Pin::Full)).await.unwrap();
    store
        .set_rungs("kept", &[rung("720p", RungState::OnDemand, 0, 1), rung("360p", RungState::Floor, 10, 1)])
        .await
        .unwrap();
}

async fn claims(store: &dyn OnDemandStore) {
    let key = SegmentKey { video: "c1".into(), rung: "720p".into(), segment: 4 };
    let other = SegmentKey { segment: 5, ..key.clone() };
    assert_eq!(store.segment_claim(&key).await.unwrap(), None);
    assert!(store.claim_segment(&key, "node-a", 1_000, 0).await.unwrap());
    // Exactly one claim however many ask, until it goes stale.
    assert!(!store.claim_segment(&key, "node-b", 1_001, 0).await.unwrap());
    assert!(!store.claim_segment(&key, "node-b", 1_001, 1_000).await.unwrap(), "a claim of exactly then stays");
    let c = store.segment_claim(&key).await.unwrap().unwrap();
    assert_eq!((c.owner.as_str(), c.worker, c.attempt, c.claimed_at), ("node-a", None, 1, 1_000));

    store.claim_taken(&key, "worker-1").await.unwrap();
    assert_eq!(store.segment_claim(&key).await.unwrap().unwrap().worker.as_deref(), Some("worker-1"));
    store.claim_redispatched(&key, 2_000).await.unwrap();
    let c = store.segment_claim(&key).await.unwrap().unwrap();
    assert_eq!((c.worker, c.attempt, c.claimed_at), (None, 2, 2_000));

    assert!(store.claim_segment(&other, "node-a", 2_500, 0).await.unwrap());
    assert_eq!(store.claims_of("c1", 0).await.unwrap(), 2);
    assert_eq!(store.claims_of("c1", 2_100).await.unwrap(), 1);
    assert_eq!(store.claims_of("nobody", 0).await.unwrap(), 0);

    // A stale claim is taken over, starting again at the first attempt.
    assert!(store.claim_segment(&key, "node-b", 9_000, 5_000).await.unwrap());
    let c = store.segment_claim(&key).await.unwrap().unwrap();
    assert_eq!((c.owner.as_str(), c.worker, c.attempt), ("node-b", None, 1));

    store.release_segment(&key).await.unwrap();
    store.release_segment(&key).await.unwrap();
    assert_eq!(store.segment_claim(&key).await.unwrap(), None);
    assert!(store.claim_segment(&key, "node-c", 9_100, 0).await.unwrap(), "released: free again");
}

async fn workers(store: &dyn OnDemandStore) {
    let w = |id: &str, busy: u32, at: i64| WorkerInfo {
        id: id.into(),
        host: "host-a".into(),
        kinds: vec!["encode".into(), "inspect".into()],
        slots: 3,
        busy,
        heartbeat_at: at,
    };
    assert_eq!(store.worker("w1").await.unwrap(), None);
    store.worker_heartbeat(&w("w1", 0, 100)).await.unwrap();
    store.worker_heartbeat(&w("w2", 1, 200)).await.unwrap();
    store.worker_heartbeat(&w("w1", 2, 300)).await.unwrap();
    assert_eq!(store.worker("w1").await.unwrap(), Some(w("w1", 2, 300)));
    assert_eq!(store.live_workers(0).await.unwrap(), vec![w("w1", 2, 300), w("w2", 1, 200)]);
    assert_eq!(store.live_workers(250).await.unwrap(), vec![w("w1", 2, 300)]);
    store.worker_gone("w1").await.unwrap();
    assert_eq!(store.worker("w1").await.unwrap(), None);
    assert_eq!(store.live_workers(0).await.unwrap().len(), 1);
}

async fn forgetting(store: &dyn OnDemandStore) {
    let v = "gone";
    store.set_rungs(v, &[rung("720p", RungState::Materialised, 10, 1)]).await.unwrap();
    store.set_pin(v, Some(Pin::Full)).await.unwrap();
    store.add_demand(v, 5, 1).await.unwrap();
    let key = SegmentKey { video: v.into(), rung: "720p".into(), segment: 0 };
    assert!(store.claim_segment(&key, "node", 1, 0).await.unwrap());
    store.forget_video(v).await.unwrap();
    assert!(store.rungs(v).await.unwrap().is_empty());
    assert_eq!(store.pin(v).await.unwrap(), None);
    assert_eq!(store.demand_since(v, 0).await.unwrap(), 0);
    assert_eq!(store.segment_claim(&key).await.unwrap(), None);
    // Another video's rows stay.
    assert_eq!(store.pin("kept").await.unwrap(), Some(Pin::Full));
}
