//! One conformance suite for every `MetaStore` backend: SQLite on a temporary file, and
//! PostgreSQL when `TEST_POSTGRES_URL` names a server (each run gets its own database).

mod common;

use common::services::{FreshDatabase, service_url};
use origin::meta::pops::{PopStatus, PopStore};
use origin::meta::sql::SqlStore;
use origin::meta::{
    Admission, Audit, Intake, Job, JobState, MetaStore, NewVideo, Piece, Privacy, Rendition, StateChange, Upload,
    UploadKind, Video, VideoPatch, VideoQuery, VideoState, Webhook, WrappedKey,
};
use sqlx::Connection;

#[tokio::test]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
    let store = SqlStore::connect(&url).await.unwrap();
    conformance(&store).await;
    popularity(&store).await;
    pop_statuses(&store).await;
    survives_reopening(store, &url).await;
}

#[tokio::test]
async fn sqlite_uses_wal_and_shares_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
    let a = SqlStore::connect(&url).await.unwrap();
    // A second store on the same file stands in for a second process.
    let b = SqlStore::connect(&url).await.unwrap();
    a.create_video(&new_video("shared", "sharer", "Shared", 1)).await.unwrap();
    assert_eq!(b.video("shared").await.unwrap().unwrap().title, "Shared");

    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(&mut conn).await.unwrap();
    assert_eq!(mode, "wal");
    conn.close().await.unwrap();
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn postgres_conformance() {
    let Some(admin_url) = service_url("TEST_POSTGRES_URL", "PostgreSQL conformance") else { return };
    FreshDatabase::run(&admin_url, "meta_test", async |url| {
        let store = SqlStore::connect(&url).await.unwrap();
        conformance(&store).await;
        popularity(&store).await;
        pop_statuses(&store).await;
        store.close().await;
    })
    .await;
}

/// Regional counts add up (two nodes reporting the same minute), read back by region and
/// minute, and go when forgotten.
async fn popularity(store: &dyn PopStore) {
    let counts = |pairs: &[(&str, u64)]| pairs.iter().map(|(v, n)| ((*v).to_owned(), *n)).collect::<Vec<_>>();
    store.add_popularity("eu", 100, &counts(&[("a", 5), ("b", 1)])).await.unwrap();
    store.add_popularity("eu", 100, &counts(&[("a", 7)])).await.unwrap();
    store.add_popularity("eu", 101, &counts(&[("b", 2)])).await.unwrap();
    store.add_popularity("us", 100, &counts(&[("a", 50)])).await.unwrap();
    let mut eu = store.popularity("eu", 0).await.unwrap();
    eu.sort();
    assert_eq!(eu, [("a".to_owned(), 100, 12), ("b".to_owned(), 100, 1), ("b".to_owned(), 101, 2)]);
    assert_eq!(store.popularity("eu", 101).await.unwrap(), [("b".to_owned(), 101, 2)]);
    store.forget_popularity("eu", 101).await.unwrap();
    assert_eq!(store.popularity("eu", 0).await.unwrap(), [("b".to_owned(), 101, 2)]);
    assert_eq!(store.popularity("us", 0).await.unwrap(), [("a".to_owned(), 100, 50)], "other regions untouched");
}

/// A PoP's heartbeat status replaces its previous one but for the request counts, which
/// decay (half the stored counts plus the beat's); statuses come back by PoP.
async fn pop_statuses(store: &dyn PopStore) {
    let beat = |pop: &str, requests: u64, failed: u64, at: i64| PopStatus {
        pop: pop.into(),
        url: Some(format!("https://{pop}.example:8443")),
        every_ms: 300,
        load: 0.25,
        requests,
        failed,
        uploads: true,
        beat_at: at,
    };
    assert!(store.statuses().await.unwrap().is_empty());
    store.record_status(&beat("pop-b", 100, 50, 1_000)).await.unwrap();
    store.record_status(&beat("pop-a", 7, 0, 1_000)).await.unwrap();
    let second = PopStatus { url: None, every_ms: 0, load: 0.75, uploads: false, ..beat("pop-b", 10, 1, 2_000) };
    store.record_status(&second).await.unwrap();
    let statuses = store.statuses().await.unwrap();
    assert_eq!(statuses, [beat("pop-a", 7, 0, 1_000), PopStatus { requests: 60, failed: 26, ..second }]);
    // Values at the edges of what a report may carry survive the round trip.
    let extreme =
        PopStatus { load: 1.0, requests: 1 << 32, failed: 1 << 32, every_ms: 60_000, ..beat("pop-c", 0, 0, i64::MAX) };
    store.record_status(&extreme).await.unwrap();
    assert_eq!(store.statuses().await.unwrap()[2], extreme);
}

async fn conformance(store: &dyn MetaStore) {
    videos(store).await;
    listing(store).await;
    title_search(store).await;
    patching(store).await;
    state_changes(store).await;
    uploads(store).await;
    completions(store).await;
    jobs(store).await;
    keys(store).await;
    audits(store).await;
    webhooks(store).await;
    purges(store).await;
    retention(store).await;
}

fn new_video(id: &str, creator: &str, title: &str, now: i64) -> NewVideo {
    NewVideo {
        id: id.into(),
        creator: creator.into(),
        title: title.into(),
        description: "about it".into(),
        language: "en".into(),
        filename: format!("{id}.mp4"),
        size: 5 << 30,
        content_type: "video/mp4".into(),
        privacy: Privacy::Public,
        channel: None,
        now,
    }
}

fn query(creator: &str) -> VideoQuery {
    VideoQuery { creator: Some(creator.into()), limit: 100, ..VideoQuery::default() }
}

async fn ids(store: &dyn MetaStore, q: &VideoQuery) -> Vec<String> {
    store.list_videos(q).await.unwrap().into_iter().map(|v| v.id).collect()
}

fn state(state: VideoState, now: i64) -> StateChange {
    StateChange { state, progress: None, error: None, result: None, now }
}

/// Every state: these tests move rows directly, as only the lifecycle does in the origin.
const ANY: &[VideoState] = &VideoState::ALL;

async fn videos(store: &dyn MetaStore) {
    let created = store.create_video(&new_video("v1", "alice", "First", 1000)).await.unwrap();
    assert_eq!(created.id, "v1");
    assert_eq!(created.creator, "alice");
    assert_eq!(created.title, "First");
    assert_eq!(created.description, "about it");
    assert_eq!(created.language, "en");
    assert_eq!(created.filename, "v1.mp4");
    assert_eq!(created.size, 5 << 30);
    assert_eq!(created.content_type, "video/mp4");
    assert_eq!(created.state, VideoState::Uploading);
    assert_eq!((created.error_code.as_deref(), created.error_message.as_deref()), (None, None));
    assert_eq!(created.progress, 0.0);
    assert_eq!(created.duration, None);
    assert!(created.renditions.is_empty());
    assert_eq!((created.created_at, created.updated_at), (1000, 1000));
    assert_eq!((created.privacy, created.channel.as_deref()), (Privacy::Public, None));
    assert_eq!((created.views, created.gated), (0, false));

    assert_eq!(store.video("v1").await.unwrap(), Some(created));
    assert_eq!(store.video("missing").await.unwrap(), None);
    assert!(store.create_video(&new_video("v1", "alice", "Again", 1001)).await.is_err(), "ids are unique");

    // A new video has the privacy and channel it was given.
    for privacy in Privacy::ALL {
        let id = format!("v-{}", privacy.as_str());
        let new = NewVideo { privacy, channel: Some("ch-1".into()), ..new_video(&id, "alice", "Given", 1002) };
        let created = store.create_video(&new).await.unwrap();
        assert_eq!((created.privacy, created.channel.as_deref()), (privacy, Some("ch-1")));
        assert_eq!(store.video(&id).await.unwrap(), Some(created));
    }

    // A video just created can be taken back, but not once an upload has begun or it moved on.
    store.create_video(&new_video("v-back", "alice", "Back", 1003)).await.unwrap();
    assert!(store.discard_new_video("v-back").await.unwrap());
    assert_eq!(store.video("v-back").await.unwrap(), None);
    assert!(!store.discard_new_video("v-back").await.unwrap(), "gone already");
    store.create_video(&new_video("v-begun", "alice", "Begun", 1004)).await.unwrap();
    store.create_upload(&upload("u-begun", "v-begun", 10, 9_999)).await.unwrap();
    assert!(!store.discard_new_video("v-begun").await.unwrap(), "an upload has begun");
    store.delete_upload("u-begun").await.unwrap(); // out of the way of the upload checks below
    store.create_video(&new_video("v-moved", "alice", "Moved", 1005)).await.unwrap();
    let failed = StateChange {
        state: VideoState::Failed,
        progress: None,
        error: Some(("e".into(), "m".into())),
        result: None,
        now: 1006,
    };
    assert!(store.change_state("v-moved", &[VideoState::Uploading], &failed).await.unwrap().is_some());
    assert!(!store.discard_new_video("v-moved").await.unwrap(), "no longer uploading");
    assert!(store.video("v-moved").await.unwrap().is_some() && store.video("v-begun").await.unwrap().is_some());
}

async fn listing(store: &dyn MetaStore) {
    // Two videos share a creation time: the id breaks the tie, descending.
    for (id, at) in [("l1", 10), ("l2", 20), ("l3", 30), ("l4a", 40), ("l4b", 40), ("l5", 50)] {
        store.create_video(&new_video(id, "lister", id, at)).await.unwrap();
    }
    store.create_video(&new_video("other", "someone-else", "l-other", 2000)).await.unwrap();

    assert_eq!(ids(store, &query("lister")).await, ["l5", "l4b", "l4a", "l3", "l2", "l1"]);
    let page = |offset| VideoQuery { limit: 2, offset, ..query("lister") };
    assert_eq!(ids(store, &page(0)).await, ["l5", "l4b"]);
    assert_eq!(ids(store, &page(2)).await, ["l4a", "l3"]);
    assert_eq!(ids(store, &page(4)).await, ["l2", "l1"]);
    assert!(ids(store, &page(6)).await.is_empty());

    let everyone = ids(store, &VideoQuery { limit: 100, ..VideoQuery::default() }).await;
    assert_eq!(everyone.first().map(String::as_str), Some("other"), "newest first across creators");
    assert!(everyone.contains(&"l1".to_owned()) && everyone.contains(&"v1".to_owned()));

    store.change_state("l3", ANY, &state(VideoState::Deleted, 70)).await.unwrap().unwrap();
    assert_eq!(ids(store, &query("lister")).await, ["l5", "l4b", "l4a", "l2", "l1"]);
    let with_deleted = VideoQuery { include_deleted: true, ..query("lister") };
    assert_eq!(ids(store, &with_deleted).await, ["l5", "l4b", "l4a", "l3", "l2", "l1"]);
    assert_eq!(store.video("l3").await.unwrap().unwrap().state, VideoState::Deleted, "deleted ones stay readable");
}

async fn title_search(store: &dyn MetaStore) {
    let titles = [
        ("s-ko", "안녕하세요 세계 여행"),
        ("s-el", "ΚΑΛΗΜΕΡΑ κόσμε"),
        ("s-ru", "Привет, МИР"),
        ("s-fr", "ÉLAN Vital à Paris"),
        ("s-pct", "100% Real"),
        ("s-num", "1000 Real"),
        ("s-us", "snake_case"),
        ("s-nous", "snakeXcase"),
        ("s-bs", r"C:\Dir"),
        ("s-nobs", "C:Dir"),
    ];
    for (id, title) in titles {
        store.create_video(&new_video(id, "searcher", title, 100)).await.unwrap();
    }
    let search = |title: &str| VideoQuery { title: Some(title.into()), ..query("searcher") };
    let found = async |title: &str| {
        let mut ids = ids(store, &search(title)).await;
        ids.sort();
        ids
    };

    assert_eq!(found("세계").await, ["s-ko"]);
    assert_eq!(found("καλη").await, ["s-el"]);
    assert_eq!(found("ΚΌΣΜΕ").await, ["s-el"], "the query is folded too");
    assert_eq!(found("мир").await, ["s-ru"]);
    assert_eq!(found("élan").await, ["s-fr"]);
    assert_eq!(found("À PARIS").await, ["s-fr"]);
    assert_eq!(found("0% r").await, ["s-pct"], "% is literal");
    assert_eq!(found("%").await, ["s-pct"]);
    assert_eq!(found("e_c").await, ["s-us"], "_ is literal");
    assert_eq!(found(r":\d").await, ["s-bs"], r"\ is literal");
    assert!(found("nowhere").await.is_empty());
    assert_eq!(found("").await.len(), titles.len(), "an empty search matches everything");
    let other_creator = VideoQuery { title: Some("세계".into()), ..query("nobody") };
    assert!(ids(store, &other_creator).await.is_empty(), "title and creator filters combine");
}

async fn patching(store: &dyn MetaStore) {
    store.create_video(&new_video("p1", "patcher", "Old Title", 100)).await.unwrap();
    let before = store.video("p1").await.unwrap().unwrap();

    let description = VideoPatch { description: Some("new words".into()), ..VideoPatch::default() };
    let patched = store.patch_video("p1", &description, 200).await.unwrap().unwrap();
    assert_eq!(patched.description, "new words");
    assert_eq!((patched.title.as_str(), patched.language.as_str()), ("Old Title", "en"));
    assert_eq!(patched.updated_at, 200);
    assert_eq!(patched.created_at, 100);
    assert_eq!(store.video("p1").await.unwrap(), Some(patched.clone()));

    let retitle =
        VideoPatch { title: Some("Σήμερα".into()), language: Some("el".into()), ..VideoPatch::default() };
    let patched = store.patch_video("p1", &retitle, 300).await.unwrap().unwrap();
    assert_eq!((patched.title.as_str(), patched.language.as_str()), ("Σήμερα", "el"));
    assert_eq!(patched.description, "new words");
    let unpatched = Video {
        title: before.title.clone(),
        description: before.description.clone(),
        language: before.language.clone(),
        updated_at: before.updated_at,
        ..patched.clone()
    };
    assert_eq!(unpatched, before, "nothing else changes");

    let search = |title: &str| VideoQuery { title: Some(title.into()), ..query("patcher") };
    assert_eq!(ids(store, &search("σήμ")).await, ["p1"], "the folded title follows the patch");
    assert!(ids(store, &search("old")).await.is_empty());

    assert_eq!(store.patch_video("missing", &retitle, 400).await.unwrap(), None);
    let poster = VideoPatch { poster: Some(2), ..VideoPatch::default() };
    let v = store.patch_video("p1", &poster, 500).await.unwrap().unwrap();
    assert_eq!((v.poster, v.title.as_str()), (2, patched.title.as_str()), "only the poster changes");
}

async fn state_changes(store: &dyn MetaStore) {
    store.create_video(&new_video("c1", "changer", "Changing", 100)).await.unwrap();

    let processing = StateChange { progress: Some(0.25), ..state(VideoState::Processing, 200) };
    let ready_only = [VideoState::Ready];
    assert_eq!(store.change_state("c1", &ready_only, &processing).await.unwrap(), None, "not from uploading");
    assert_eq!(
        store.video("c1").await.unwrap().unwrap().state,
        VideoState::Uploading,
        "a refused change writes nothing"
    );
    let v = store.change_state("c1", &[VideoState::Uploading], &processing).await.unwrap().unwrap();
    assert_eq!((v.state, v.progress, v.updated_at), (VideoState::Processing, 0.25, 200));

    let failure = Some(("encode_failed".to_owned(), "the decoder gave up".to_owned()));
    let failed = StateChange { error: failure, ..state(VideoState::Failed, 300) };
    let v = store.change_state("c1", &[VideoState::Queued, VideoState::Processing], &failed).await.unwrap().unwrap();
    assert_eq!((v.state, v.progress), (VideoState::Failed, 0.25), "no progress keeps the previous one");
    assert_eq!(v.error_code.as_deref(), Some("encode_failed"));
    assert_eq!(v.error_message.as_deref(), Some("the decoder gave up"));
    assert_eq!(store.video("c1").await.unwrap(), Some(v));

    let renditions = vec![
        Rendition {
            name: "720p".into(),
            codecs: "avc1.64001f".into(),
            width: 1280,
            height: 720,
            bitrate: 3_000_000,
            on_demand: false,
            state: None,
        },
        Rendition {
            name: "audio".into(),
            codecs: "mp4a.40.2".into(),
            width: 0,
            height: 0,
            bitrate: 128_000,
            on_demand: false,
            state: None,
        },
    ];
    let ready =
        StateChange { progress: Some(1.0), result: Some((61.5, renditions.clone())), ..state(VideoState::Ready, 400) };
    let v = store.change_state("c1", ANY, &ready).await.unwrap().unwrap();
    assert_eq!((v.state, v.progress), (VideoState::Ready, 1.0));
    assert_eq!((v.error_code, v.error_message), (None, None), "a change without an error clears it");
    assert_eq!(v.duration, Some(61.5));
    assert_eq!(v.renditions, renditions);
    assert_eq!(store.video("c1").await.unwrap().unwrap().renditions, renditions);

    let v = store.change_state("c1", ANY, &state(VideoState::Deleted, 500)).await.unwrap().unwrap();
    assert_eq!(v.state, VideoState::Deleted);
    assert_eq!((v.duration, v.renditions), (Some(61.5), renditions), "no result keeps the previous one");

    assert_eq!(store.change_state("missing", ANY, &ready).await.unwrap(), None);
    assert_eq!(store.change_state("c1", &[], &ready).await.unwrap(), None, "an empty list allows nothing");
}

fn upload(id: &str, video_id: &str, length: u64, expires_at: i64) -> Upload {
    Upload {
        id: id.into(),
        video_id: video_id.into(),
        length,
        offset: 0,
        kind: UploadKind::Single,
        parts: Vec::new(),
        metadata: "filename dmlkZW8ubXA0".into(),
        expires_at,
        created_at: expires_at - 1000,
    }
}

async fn uploads(store: &dyn MetaStore) {
    let single = upload("u-single", "uv", 5 << 30, 10_000);
    let partial = Upload { kind: UploadKind::Partial, ..upload("u-part", "uv", 100, 10_001) };
    let last = Upload {
        kind: UploadKind::Final,
        parts: vec!["u-part".into(), "u-part2".into()],
        ..upload("u-final", "uv", 300, 10_002)
    };
    for u in [&single, &partial, &last] {
        store.create_upload(u).await.unwrap();
    }
    assert_eq!(store.upload("u-single").await.unwrap().as_ref(), Some(&single));
    assert_eq!(store.upload("u-final").await.unwrap().as_ref(), Some(&last));
    assert_eq!(store.upload("missing").await.unwrap(), None);
    assert_eq!(store.uploads_of("uv").await.unwrap(), [single.clone(), partial.clone(), last.clone()]);
    assert!(store.uploads_of("nothing").await.unwrap().is_empty());

    let piece = |offset: u64, length: u64, object: &str| Piece { offset, length, object: object.into() };
    assert!(store.append_piece("u-single", &piece(0, 1 << 20, "a")).await.unwrap());
    assert!(!store.append_piece("u-single", &piece(0, 2 << 20, "b")).await.unwrap(), "a stale offset loses");
    assert!(store.append_piece("u-single", &piece(1 << 20, (4 << 30) - (1 << 20), "c")).await.unwrap());
    assert_eq!(store.upload("u-single").await.unwrap().unwrap().offset, 4 << 30);
    assert_eq!(
        store.pieces("u-single").await.unwrap(),
        [piece(0, 1 << 20, "a"), piece(1 << 20, (4 << 30) - (1 << 20), "c")],
        "the loser's piece is not recorded"
    );
    assert!(!store.append_piece("missing", &piece(0, 1, "d")).await.unwrap());
    assert!(store.pieces("missing").await.unwrap().is_empty());

    // The partial one is complete but still expires (it only serves a concatenation); the
    // others are incomplete.
    assert!(store.append_piece("u-part", &piece(0, 100, "p")).await.unwrap());
    assert!(store.expired_uploads(10_000).await.unwrap().is_empty(), "expiry is strict");
    let expired: Vec<_> = store.expired_uploads(20_000).await.unwrap().into_iter().map(|u| u.id).collect();
    assert_eq!(expired, ["u-single", "u-part", "u-final"]);
    let expired: Vec<_> = store.expired_uploads(10_002).await.unwrap().into_iter().map(|u| u.id).collect();
    assert_eq!(expired, ["u-single", "u-part"]);

    store.delete_upload("u-single").await.unwrap();
    assert_eq!(store.upload("u-single").await.unwrap(), None);
    store.delete_upload("u-single").await.unwrap();
    assert_eq!(store.uploads_of("uv").await.unwrap().len(), 2);
    assert!(store.pieces("u-single").await.unwrap().is_empty(), "its pieces' records go with it");
}

async fn completions(store: &dyn MetaStore) {
    store.create_video(&new_video("cv", "carol", "Once", 100)).await.unwrap();
    let open = Intake { state: VideoState::Uploading, completed_by: None };
    assert_eq!(store.intake("cv").await.unwrap(), Some(open.clone()));
    assert_eq!(store.intake("missing").await.unwrap(), None);
    assert!(open.is_open() && open.takes("any"));

    // At most two single or partial uploads; a concatenation is not counted.
    let part = |id: &str, kind| Upload { kind, ..upload(id, "cv", 10, 20_000) };
    for id in ["c-a", "c-b"] {
        assert_eq!(store.admit_upload(&part(id, UploadKind::Partial), 2).await.unwrap(), Admission::Admitted);
    }
    assert_eq!(store.admit_upload(&part("c-c", UploadKind::Single), 2).await.unwrap(), Admission::TooMany(2));
    assert_eq!(store.upload("c-c").await.unwrap(), None, "a refused upload is not recorded");
    assert_eq!(store.admit_upload(&part("c-final", UploadKind::Final), 2).await.unwrap(), Admission::Admitted);
    let missing = Upload { video_id: "missing".into(), ..part("c-m", UploadKind::Single) };
    assert_eq!(store.admit_upload(&missing, 2).await.unwrap(), Admission::Closed(None));

    // Eight uploads claim the completion at once: exactly one wins.
    let claims = (0..8).map(|n| async move { (n, store.claim_completion("cv", &format!("racer-{n}")).await.unwrap()) });
    let won: Vec<_> = futures_util::future::join_all(claims).await.into_iter().filter(|(_, won)| *won).collect();
    assert_eq!(won.len(), 1, "{won:?}");
    let winner = format!("racer-{}", won[0].0);
    assert!(store.claim_completion("cv", &winner).await.unwrap(), "the holder claims again");
    let claimed = store.intake("cv").await.unwrap().unwrap();
    assert_eq!(claimed.completed_by.as_deref(), Some(winner.as_str()));
    assert!(!claimed.is_open() && claimed.takes(&winner) && !claimed.takes("racer-x"));
    assert!(matches!(
        store.admit_upload(&part("c-late", UploadKind::Single), 9).await.unwrap(),
        Admission::Closed(Some(_))
    ));

    // Released while still uploading, the claim is anyone's again.
    store.release_completion("cv", "racer-x").await.unwrap();
    assert_eq!(
        store.intake("cv").await.unwrap().unwrap().completed_by.as_deref(),
        Some(winner.as_str()),
        "only the holder releases"
    );
    store.release_completion("cv", &winner).await.unwrap();
    assert_eq!(store.intake("cv").await.unwrap(), Some(open));
    assert!(store.claim_completion("cv", &winner).await.unwrap());

    // Only the holder moves the video to queued, once, with its one job.
    let cv_job = |id: &str| Job { video_id: "cv".into(), ..job(id, JobState::Queued, 300) };
    assert_eq!(store.queue_completed("cv", "racer-x", &cv_job("j-loser"), 300).await.unwrap(), None);
    let queued = store.queue_completed("cv", &winner, &cv_job("j-cv"), 300).await.unwrap().unwrap();
    assert_eq!((queued.state, queued.progress, queued.updated_at), (VideoState::Queued, 0.0, 300));
    assert_eq!(store.queue_completed("cv", &winner, &cv_job("j-twice"), 301).await.unwrap(), None);
    assert_eq!(store.job("j-cv").await.unwrap().map(|j| j.state), Some(JobState::Queued));
    assert_eq!((store.job("j-loser").await.unwrap(), store.job("j-twice").await.unwrap()), (None, None));
    assert!(!store.claim_completion("cv", "racer-x").await.unwrap(), "a queued video takes no claim");
    assert!(!store.claim_completion("cv", &winner).await.unwrap(), "not even its own: it is done");
    store.release_completion("cv", &winner).await.unwrap();
    let done = store.intake("cv").await.unwrap().unwrap();
    assert_eq!((done.state, done.completed_by.as_deref()), (VideoState::Queued, Some(winner.as_str())));
    assert!(done.takes(&winner) && !done.takes("c-a"));
    assert!(store.set_job_state("j-cv", &[JobState::Queued], JobState::Done, None, 400).await.unwrap());
}

fn job(id: &str, state: JobState, created_at: i64) -> Job {
    Job { id: id.into(), video_id: format!("video-{id}"), state, error_code: None, created_at, updated_at: created_at }
}

async fn jobs(store: &dyn MetaStore) {
    let running = job("j-running", JobState::Running, 200);
    let queued = job("j-queued", JobState::Queued, 100);
    let later = job("j-later", JobState::Queued, 300);
    let done = job("j-done", JobState::Done, 50);
    for j in [&running, &queued, &later, &done] {
        store.create_job(j).await.unwrap();
    }
    assert_eq!(store.job("j-running").await.unwrap().as_ref(), Some(&running));
    assert_eq!(store.job("missing").await.unwrap(), None);
    assert_eq!(store.unfinished_jobs().await.unwrap(), [queued.clone(), running.clone(), later.clone()]);

    let open = [JobState::Queued, JobState::Running];
    assert!(store.set_job_state("j-queued", &open, JobState::Running, None, 400).await.unwrap());
    assert!(store.set_job_state("j-running", &open, JobState::Done, None, 500).await.unwrap());
    assert!(store.set_job_state("j-later", &open, JobState::Failed, Some("no_workers"), 600).await.unwrap());
    assert!(!store.set_job_state("j-running", &open, JobState::Failed, Some("late"), 650).await.unwrap(), "ended");
    assert_eq!(store.job("j-running").await.unwrap().unwrap().state, JobState::Done);
    assert!(!store.set_job_state("missing", &open, JobState::Done, None, 650).await.unwrap());
    let failed = store.job("j-later").await.unwrap().unwrap();
    assert_eq!(
        (failed.state, failed.error_code.as_deref(), failed.updated_at),
        (JobState::Failed, Some("no_workers"), 600)
    );
    assert_eq!((failed.created_at, failed.video_id.as_str()), (300, "video-j-later"));
    let unfinished = store.unfinished_jobs().await.unwrap();
    assert_eq!(unfinished, [Job { state: JobState::Running, updated_at: 400, ..queued }]);

    assert!(store.set_job_state("j-later", &[JobState::Failed], JobState::Queued, None, 700).await.unwrap());
    assert_eq!(store.job("j-later").await.unwrap().unwrap().error_code, None, "a retry clears the error");
}

async fn keys(store: &dyn MetaStore) {
    let key = WrappedKey { video_id: "k1".into(), master_version: 1, nonce: vec![0, 1, 0xff], sealed: vec![0; 48] };
    store.put_key(&key).await.unwrap();
    assert_eq!(store.key("k1").await.unwrap().as_ref(), Some(&key));
    assert_eq!(store.key("missing").await.unwrap(), None);

    let rewrapped = WrappedKey { master_version: u32::MAX, nonce: vec![7; 12], sealed: vec![0xfe; 32], ..key };
    store.put_key(&rewrapped).await.unwrap();
    assert_eq!(store.key("k1").await.unwrap().as_ref(), Some(&rewrapped), "put replaces");

    store.delete_key("k1").await.unwrap();
    assert_eq!(store.key("k1").await.unwrap(), None);
    store.delete_key("k1").await.unwrap();
}

async fn audits(store: &dyn MetaStore) {
    let audit = |at, action: &str, video_id: &str| Audit {
        at,
        actor: "op-1".into(),
        action: action.into(),
        video_id: video_id.into(),
        reason: "DMCA notice #42 — «copie»".into(),
    };
    // Added out of time order, and two in one millisecond: time first, then insertion.
    let rows = [audit(300, "restore", "a1"), audit(100, "takedown", "a1"), audit(300, "takedown", "a1")];
    for a in &rows {
        store.add_audit(a).await.unwrap();
    }
    store.add_audit(&audit(200, "takedown", "a2")).await.unwrap();
    assert_eq!(store.audits("a1").await.unwrap(), [rows[1].clone(), rows[0].clone(), rows[2].clone()]);
    assert_eq!(store.audits("a2").await.unwrap(), [audit(200, "takedown", "a2")]);
    assert!(store.audits("missing").await.unwrap().is_empty());
}

async fn webhooks(store: &dyn MetaStore) {
    let hook = Webhook { creator: "w1".into(), url: "https://example.com/hook".into(), secret: "s3cret".into() };
    store.set_webhook(&hook).await.unwrap();
    assert_eq!(store.webhook("w1").await.unwrap().as_ref(), Some(&hook));
    let moved = Webhook { url: "https://example.org/new".into(), secret: "rotated".into(), ..hook };
    store.set_webhook(&moved).await.unwrap();
    assert_eq!(store.webhook("w1").await.unwrap().as_ref(), Some(&moved), "set replaces");
    assert_eq!(store.webhook("w2").await.unwrap(), None);
}

async fn purges(store: &dyn MetaStore) {
    let first = store.add_purge("x1", 100).await.unwrap();
    let second = store.add_purge("x2", 100).await.unwrap();
    let third = store.add_purge("x1", 50).await.unwrap();
    assert!(first < second && second < third, "sequence grows: {first} {second} {third}");

    let all = store.purges_after(first - 1).await.unwrap();
    assert_eq!(all, [(first, "x1".to_owned()), (second, "x2".to_owned()), (third, "x1".to_owned())]);
    assert_eq!(store.purges_after(first).await.unwrap(), all[1..]);
    assert!(store.purges_after(third).await.unwrap().is_empty());
}

/// Closes `store`, opens the same file again, and checks that what the suite wrote is still
/// there and that sequences keep growing.
async fn retention(store: &dyn MetaStore) {
    store.create_video(&new_video("kept", "r", "Kept", 100)).await.unwrap();
    assert_eq!(store.suspend_video("kept", 5_000, 200).await.unwrap(), None, "only a ready video");
    store.change_state("kept", &[VideoState::Uploading], &state(VideoState::Ready, 300)).await.unwrap().unwrap();
    let v = store.suspend_video("kept", 5_000, 400).await.unwrap().unwrap();
    assert_eq!((v.state, v.retained_until, v.updated_at), (VideoState::Deleted, Some(5_000), 400));
    assert_eq!(store.suspend_video("kept", 6_000, 410).await.unwrap(), None, "not twice");
    assert!(store.expired_retentions(4_999, 10).await.unwrap().is_empty());
    assert!(!store.end_retention("kept", 4_999).await.unwrap(), "not before it ends");

    // Restored while retained: ready again, retention gone.
    let v = store.restore_video("kept", 4_000).await.unwrap().unwrap();
    assert_eq!((v.state, v.retained_until), (VideoState::Ready, None));
    assert_eq!(store.restore_video("kept", 4_001).await.unwrap(), None, "only a suspended video");

    // Suspended again and left: past its end it is neither restorable nor kept.
    store.suspend_video("kept", 8_000, 5_000).await.unwrap().unwrap();
    assert_eq!(store.restore_video("kept", 8_000).await.unwrap(), None, "the retention ended");
    assert_eq!(store.expired_retentions(8_000, 10).await.unwrap(), ["kept"]);
    assert!(store.end_retention("kept", 8_000).await.unwrap());
    assert!(!store.end_retention("kept", 8_000).await.unwrap(), "once");
    assert!(store.expired_retentions(9_000, 10).await.unwrap().is_empty());
    let v = store.video("kept").await.unwrap().unwrap();
    assert_eq!((v.state, v.retained_until), (VideoState::Deleted, None));
}

async fn survives_reopening(store: SqlStore, url: &str) {
    let video = store.video("c1").await.unwrap();
    let upload = store.upload("u-final").await.unwrap();
    let purges = store.purges_after(0).await.unwrap();
    store
        .put_key(&WrappedKey { video_id: "kept".into(), master_version: 3, nonce: vec![1], sealed: vec![2] })
        .await
        .unwrap();
    store.close().await;

    let reopened = SqlStore::connect(url).await.unwrap();
    assert!(video.is_some() && upload.is_some() && !purges.is_empty());
    assert_eq!(reopened.video("c1").await.unwrap(), video);
    assert_eq!(reopened.upload("u-final").await.unwrap(), upload);
    assert_eq!(reopened.purges_after(0).await.unwrap(), purges);
    assert_eq!(reopened.key("kept").await.unwrap().map(|k| k.master_version), Some(3));
    assert_eq!(reopened.webhook("w1").await.unwrap().map(|w| w.secret).as_deref(), Some("rotated"));
    assert_eq!(reopened.unfinished_jobs().await.unwrap().len(), 2);
    let last = purges.last().unwrap().0;
    assert!(reopened.add_purge("after", 1).await.unwrap() > last);
    reopened.close().await;
}
