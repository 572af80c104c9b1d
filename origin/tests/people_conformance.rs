//! One conformance suite for every `PeopleStore` backend (the same `SqlStore` as the rest of
//! the metadata), and for what videos gained with accounts (privacy, channel, views, gating)
//! through `MetaStore`: SQLite on a temporary file, and PostgreSQL when `TEST_POSTGRES_URL`
//! names a server (each run gets its own database).

mod common;

use common::services::{FreshDatabase, service_url};
use origin::meta::people::{
    ApiToken, Channel, Claimed, PeopleStore, Report, ReportReason, Resolution, Role, Scope, Session, User,
};
use origin::meta::sql::SqlStore;
use origin::meta::{MetaStore, NewVideo, Privacy, StateChange, VideoPatch, VideoQuery, VideoState};

#[tokio::test]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
    let store = SqlStore::connect(&url).await.unwrap();
    conformance(&store).await;
    store.close().await;
    // Accounts, sessions and counted views survive a restart.
    let reopened = SqlStore::connect(&url).await.unwrap();
    assert_eq!(reopened.user_by_handle("ALICE").await.unwrap().map(|u| u.id).as_deref(), Some("u-alice"));
    assert!(reopened.session("s-revoked").await.unwrap().unwrap().revoked_at.is_some());
    assert_eq!(reopened.video("viewed").await.unwrap().unwrap().views, 2);
    assert!(!reopened.count_view("viewed", "viewer-a", 9_000).await.unwrap(), "a view is counted once, ever");
    reopened.close().await;
}

#[tokio::test]
async fn postgres_conformance() {
    let Some(admin_url) = service_url("TEST_POSTGRES_URL", "PostgreSQL people conformance") else { return };
    FreshDatabase::run(&admin_url, "people_test", async |url| {
        let store = SqlStore::connect(&url).await.unwrap();
        conformance(&store).await;
        store.close().await;
    })
    .await;
}

async fn conformance<S: MetaStore + PeopleStore>(store: &S) {
    users(store).await;
    atomic_signup(store).await;
    racing_signups(store).await;
    channels(store).await;
    sessions(store).await;
    passwords(store).await;
    tokens(store).await;
    shares(store).await;
    views(store).await;
    usage(store).await;
    reports(store).await;
    decisions_by_creator(store).await;
    video_privacy(store).await;
}

fn user(id: &str, handle: &str, role: Role, at: i64) -> User {
    User {
        id: id.into(),
        handle: handle.into(),
        display_name: format!("{handle} — 表示名"),
        email: None,
        role,
        password_phc: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${id}"),
        created_at: at,
    }
}

fn channel(id: &str, owner: &str, handle: &str, at: i64) -> Channel {
    Channel { id: id.into(), owner: owner.into(), handle: handle.into(), name: format!("{handle}'s"), created_at: at }
}

/// An account with its first channel, as sign-up makes them.
async fn sign_up(store: &dyn PeopleStore, id: &str, handle: &str, role: Role, at: i64) -> Claimed {
    store.create_user(&user(id, handle, role, at), &channel(&format!("ch-{id}"), id, handle, at)).await.unwrap()
}

async fn users(store: &dyn PeopleStore) {
    assert!(!store.has_admin().await.unwrap(), "an empty store has no admin");
    let alice = User { email: Some("alice@example.com".into()), ..user("u-alice", "Alice", Role::Creator, 100) };
    let first = channel("ch-u-alice", "u-alice", "Alice", 100);
    assert_eq!(store.create_user(&alice, &first).await.unwrap(), Claimed::Created);
    assert_eq!(store.user("u-alice").await.unwrap().as_ref(), Some(&alice));
    assert_eq!(store.user("missing").await.unwrap(), None);
    for typed in ["Alice", "alice", "ALICE", "aLiCe"] {
        assert_eq!(store.user_by_handle(typed).await.unwrap().as_ref(), Some(&alice), "{typed}");
    }
    assert_eq!(store.user_by_handle("alic").await.unwrap(), None);
    assert_eq!(store.channel("ch-u-alice").await.unwrap(), Some(first));

    // Handles are unique ignoring case, in every script; they come back as typed.
    assert_eq!(sign_up(store, "u-alice2", "alice", Role::Viewer, 110).await, Claimed::HandleTaken);
    assert_eq!(sign_up(store, "u-alice3", "ALICE", Role::Viewer, 110).await, Claimed::HandleTaken);
    for (n, handle, again) in [
        (1, "김민지", "김민지"),
        (2, "مريم", "مريم"),
        (3, "Élodie", "éLODIE"),
        (4, "Σωκράτης", "ΣΩΚΡΆΤΗΣ"),
        (5, "Дмитрий", "дмитрий"),
    ] {
        assert_eq!(sign_up(store, &format!("u-s{n}"), handle, Role::Viewer, 120).await, Claimed::Created, "{handle}");
        let taken = sign_up(store, &format!("u-s{n}-again"), again, Role::Viewer, 121).await;
        assert_eq!(taken, Claimed::HandleTaken, "{again} after {handle}");
        assert_eq!(store.user(&format!("u-s{n}-again")).await.unwrap(), None);
        let found = store.user_by_handle(again).await.unwrap().unwrap();
        assert_eq!((found.id, found.handle), (format!("u-s{n}"), handle.to_owned()));
    }

    // A clashing id is an error, not a taken handle.
    assert!(
        store
            .create_user(&user("u-alice", "Other", Role::Viewer, 130), &channel("ch-x", "u-alice", "Other", 130))
            .await
            .is_err()
    );
    assert_eq!(store.user_by_handle("other").await.unwrap(), None);

    // Roles.
    assert_eq!(sign_up(store, "u-boss", "boss", Role::Viewer, 140).await, Claimed::Created);
    assert!(!store.has_admin().await.unwrap(), "creators and viewers are no admins");
    assert!(store.set_role("u-boss", Role::Moderator).await.unwrap());
    assert!(!store.has_admin().await.unwrap());
    assert!(store.set_role("u-boss", Role::Admin).await.unwrap());
    assert!(store.has_admin().await.unwrap());
    assert_eq!(store.user("u-boss").await.unwrap().unwrap().role, Role::Admin);
    assert!(!store.set_role("missing", Role::Admin).await.unwrap());
    for role in Role::ALL {
        assert!(store.set_role("u-s1", role).await.unwrap());
        assert_eq!(store.user("u-s1").await.unwrap().unwrap().role, role);
    }
}

/// The account and its first channel are stored together or not at all.
async fn atomic_signup(store: &dyn PeopleStore) {
    assert_eq!(sign_up(store, "u-chef", "chef", Role::Creator, 200).await, Claimed::Created);
    assert_eq!(store.create_channel(&channel("ch-cooking", "u-chef", "Cooking", 201)).await.unwrap(), Claimed::Created);
    // No account is called "cooking", but a channel is: the sign-up fails whole.
    assert_eq!(sign_up(store, "u-cook", "COOKING", Role::Viewer, 202).await, Claimed::HandleTaken);
    assert_eq!(store.user("u-cook").await.unwrap(), None, "no account without its channel");
    assert_eq!(store.user_by_handle("cooking").await.unwrap(), None);
    assert_eq!(store.channel("ch-u-cook").await.unwrap(), None);
    assert_eq!(store.channel_by_handle("cooking").await.unwrap().unwrap().owner, "u-chef");
    // And the store still works after the rolled-back transaction.
    assert_eq!(sign_up(store, "u-cook", "cook", Role::Viewer, 203).await, Claimed::Created);
    assert_eq!(store.channels_of("u-cook").await.unwrap().len(), 1);
}

/// Eight sign-ups of one handle at once (in any case): exactly one is stored.
async fn racing_signups(store: &dyn PeopleStore) {
    let handles = ["racer", "Racer", "RACER", "rAcer", "racER", "RaCeR", "raceR", "Racer"];
    let races = handles.iter().enumerate().map(|(n, handle)| async move {
        (n, sign_up(store, &format!("u-racer-{n}"), handle, Role::Viewer, 300).await)
    });
    let outcomes = futures_util::future::join_all(races).await;
    let won: Vec<_> = outcomes.iter().filter(|(_, c)| *c == Claimed::Created).collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    let winner = format!("u-racer-{}", won[0].0);
    assert_eq!(store.user_by_handle("racer").await.unwrap().unwrap().id, winner);
    for n in 0..handles.len() {
        let id = format!("u-racer-{n}");
        assert_eq!(store.user(&id).await.unwrap().is_some(), id == winner);
        assert_eq!(store.channels_of(&id).await.unwrap().len(), usize::from(id == winner));
    }
}

async fn channels(store: &dyn PeopleStore) {
    assert_eq!(sign_up(store, "u-multi", "multi", Role::Creator, 400).await, Claimed::Created);
    let second = channel("ch-b", "u-multi", "Multi-Second", 402);
    let third = channel("ch-a", "u-multi", "영상채널", 402);
    assert_eq!(store.create_channel(&second).await.unwrap(), Claimed::Created);
    assert_eq!(store.create_channel(&third).await.unwrap(), Claimed::Created);
    // Oldest first; the id breaks a tie.
    let ids: Vec<String> = store.channels_of("u-multi").await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["ch-u-multi", "ch-a", "ch-b"]);
    assert!(store.channels_of("nobody").await.unwrap().is_empty());

    assert_eq!(store.channel("ch-b").await.unwrap().as_ref(), Some(&second));
    assert_eq!(store.channel("missing").await.unwrap(), None);
    assert_eq!(store.channel_by_handle("MULTI-second").await.unwrap().as_ref(), Some(&second));
    assert_eq!(store.channel_by_handle("영상채널").await.unwrap().as_ref(), Some(&third));
    assert_eq!(store.channel_by_handle("nowhere").await.unwrap(), None);

    // A channel handle taken by a channel or by an account (whose first channel has it).
    for taken in ["multi-SECOND", "영상채널", "ALICE", "Multi"] {
        let c = channel(&format!("ch-taken-{taken}"), "u-multi", taken, 410);
        assert_eq!(store.create_channel(&c).await.unwrap(), Claimed::HandleTaken, "{taken}");
        assert_eq!(store.channel(&c.id).await.unwrap(), None);
    }
    // A clashing id is an error, not a taken handle.
    assert!(store.create_channel(&channel("ch-a", "u-multi", "fresh-handle", 420)).await.is_err());
    assert_eq!(store.channels_of("u-multi").await.unwrap().len(), 3);
}

fn session(secret: &str, user_id: &str, at: i64, expires_at: i64) -> Session {
    Session {
        secret_sha256: secret.into(),
        user_id: user_id.into(),
        csrf: format!("csrf-{secret}"),
        created_at: at,
        expires_at,
        revoked_at: None,
    }
}

async fn sessions(store: &dyn PeopleStore) {
    let live = session("s-live", "u-alice", 1_000, 10_000);
    store.create_session(&live).await.unwrap();
    assert_eq!(store.session("s-live").await.unwrap().as_ref(), Some(&live));
    assert_eq!(store.session("missing").await.unwrap(), None);
    assert!(store.create_session(&live).await.is_err(), "a secret is stored once");

    // One sign-out: revoked once, and it stays revoked as it was.
    store.create_session(&session("s-revoked", "u-alice", 1_000, 10_000)).await.unwrap();
    assert!(store.revoke_session("s-revoked", 2_000).await.unwrap());
    assert!(!store.revoke_session("s-revoked", 3_000).await.unwrap(), "already revoked");
    assert!(!store.revoke_session("missing", 3_000).await.unwrap());
    let revoked = store.session("s-revoked").await.unwrap().unwrap();
    assert_eq!(revoked, Session { revoked_at: Some(2_000), ..session("s-revoked", "u-alice", 1_000, 10_000) });

    // Every session of an account: only those that still work are revoked and counted.
    store.create_session(&session("s-second", "u-alice", 1_500, 10_000)).await.unwrap();
    store.create_session(&session("s-expired", "u-alice", 100, 3_500)).await.unwrap();
    store.create_session(&session("s-other", "u-boss", 1_000, 10_000)).await.unwrap();
    assert_eq!(store.revoke_sessions_of("u-alice", 4_000).await.unwrap(), 2);
    for (secret, revoked_at) in [("s-live", Some(4_000)), ("s-second", Some(4_000)), ("s-revoked", Some(2_000))] {
        assert_eq!(store.session(secret).await.unwrap().unwrap().revoked_at, revoked_at, "{secret}");
    }
    assert_eq!(store.session("s-expired").await.unwrap().unwrap().revoked_at, None, "it had ended anyway");
    assert_eq!(store.session("s-other").await.unwrap().unwrap().revoked_at, None, "other accounts untouched");
    assert_eq!(store.revoke_sessions_of("u-alice", 5_000).await.unwrap(), 0);
    assert_eq!(store.revoke_sessions_of("nobody", 5_000).await.unwrap(), 0);
    assert_eq!(store.session("s-live").await.unwrap().unwrap().revoked_at, Some(4_000), "revoked once");

    // A session stored revoked stays so.
    let stored_revoked = Session { revoked_at: Some(900), ..session("s-born-revoked", "u-boss", 800, 10_000) };
    store.create_session(&stored_revoked).await.unwrap();
    assert_eq!(store.session("s-born-revoked").await.unwrap(), Some(stored_revoked));
}

async fn passwords(store: &dyn PeopleStore) {
    assert_eq!(sign_up(store, "u-pw", "passworder", Role::Creator, 500).await, Claimed::Created);
    store.create_session(&session("s-pw-1", "u-pw", 600, 10_000)).await.unwrap();
    store.create_session(&session("s-pw-2", "u-pw", 700, 10_000)).await.unwrap();
    store.create_session(&session("s-pw-other", "u-multi", 700, 10_000)).await.unwrap();

    assert!(store.set_password("u-pw", "$argon2id$new", 800).await.unwrap());
    let changed = store.user("u-pw").await.unwrap().unwrap();
    assert_eq!(
        changed,
        User { password_phc: "$argon2id$new".into(), ..user("u-pw", "passworder", Role::Creator, 500) }
    );
    for secret in ["s-pw-1", "s-pw-2"] {
        assert_eq!(store.session(secret).await.unwrap().unwrap().revoked_at, Some(800), "{secret}");
    }
    assert_eq!(store.session("s-pw-other").await.unwrap().unwrap().revoked_at, None);
    assert_eq!(store.revoke_sessions_of("u-pw", 900).await.unwrap(), 0, "none left");

    assert!(!store.set_password("missing", "$argon2id$x", 900).await.unwrap());
    assert_eq!(store.user("missing").await.unwrap(), None);
}

fn token(id: &str, user_id: &str, scopes: &[Scope], at: i64) -> ApiToken {
    ApiToken {
        id: id.into(),
        user_id: user_id.into(),
        name: format!("ingest script «{id}»"),
        scopes: scopes.to_vec(),
        secret_sha256: format!("sha-{id}"),
        created_at: at,
        revoked_at: None,
    }
}

async fn tokens(store: &dyn PeopleStore) {
    let both = token("t-both", "u-alice", &[Scope::Upload, Scope::Manage], 100);
    let upload = token("t-upload", "u-alice", &[Scope::Upload], 300);
    let manage = token("t-manage", "u-alice", &[Scope::Manage], 200);
    let none = token("t-none", "u-alice", &[], 300);
    let theirs = token("t-theirs", "u-boss", &[Scope::Upload], 400);
    for t in [&both, &upload, &manage, &none, &theirs] {
        store.create_token(t).await.unwrap();
    }
    assert!(store.create_token(&both).await.is_err(), "ids are unique");
    assert_eq!(store.token("t-both").await.unwrap().as_ref(), Some(&both));
    assert_eq!(store.token("t-none").await.unwrap().as_ref(), Some(&none));
    assert_eq!(store.token("missing").await.unwrap(), None);

    // Newest first; the id breaks a tie, descending.
    let ids =
        async |user: &str| -> Vec<String> { store.tokens_of(user).await.unwrap().into_iter().map(|t| t.id).collect() };
    assert_eq!(ids("u-alice").await, ["t-upload", "t-none", "t-manage", "t-both"]);
    assert_eq!(ids("u-boss").await, ["t-theirs"]);
    assert!(ids("nobody").await.is_empty());

    // Only the owner revokes, once; revoked tokens stay listed.
    assert!(!store.revoke_token("u-boss", "t-both", 500).await.unwrap(), "not theirs");
    assert_eq!(store.token("t-both").await.unwrap().unwrap().revoked_at, None);
    assert!(store.revoke_token("u-alice", "t-both", 500).await.unwrap());
    assert!(!store.revoke_token("u-alice", "t-both", 600).await.unwrap(), "already revoked");
    assert!(!store.revoke_token("u-alice", "missing", 600).await.unwrap());
    assert_eq!(store.token("t-both").await.unwrap(), Some(ApiToken { revoked_at: Some(500), ..both }));
    assert_eq!(ids("u-alice").await, ["t-upload", "t-none", "t-manage", "t-both"]);
    assert_eq!(store.token("t-theirs").await.unwrap().unwrap().revoked_at, None);
    let stored_revoked = ApiToken { revoked_at: Some(50), ..token("t-old", "u-boss", &[Scope::Manage], 10) };
    store.create_token(&stored_revoked).await.unwrap();
    assert_eq!(store.tokens_of("u-boss").await.unwrap(), [theirs, stored_revoked]);
}

async fn shares(store: &dyn PeopleStore) {
    assert!(!store.is_shared("sv", "u-boss").await.unwrap());
    assert!(store.shares_of("sv").await.unwrap().is_empty());
    store.share("sv", "u-boss", 100).await.unwrap();
    store.share("sv", "u-boss", 200).await.unwrap();
    store.share("sv", "u-alice", 150).await.unwrap();
    store.share("other", "u-multi", 150).await.unwrap();
    assert!(store.is_shared("sv", "u-boss").await.unwrap());
    assert!(!store.is_shared("sv", "u-multi").await.unwrap());
    assert!(!store.is_shared("other", "u-boss").await.unwrap());
    assert_eq!(store.shares_of("sv").await.unwrap(), ["u-alice", "u-boss"], "once each, by id");

    assert!(store.unshare("sv", "u-boss").await.unwrap());
    assert!(!store.unshare("sv", "u-boss").await.unwrap(), "no longer shared");
    assert!(!store.unshare("sv", "nobody").await.unwrap());
    assert!(!store.is_shared("sv", "u-boss").await.unwrap());
    assert_eq!(store.shares_of("sv").await.unwrap(), ["u-alice"]);
    assert_eq!(store.shares_of("other").await.unwrap(), ["u-multi"]);
    store.share("sv", "u-boss", 300).await.unwrap();
    assert!(store.is_shared("sv", "u-boss").await.unwrap(), "shared again");
}

fn video(id: &str, creator: &str, size: u64, privacy: Privacy, channel: Option<&str>, now: i64) -> NewVideo {
    NewVideo {
        id: id.into(),
        creator: creator.into(),
        title: format!("Title {id}"),
        description: String::new(),
        language: "und".into(),
        filename: format!("{id}.mp4"),
        size,
        content_type: "video/mp4".into(),
        privacy,
        channel: channel.map(str::to_owned),
        now,
    }
}

async fn views<S: MetaStore + PeopleStore>(store: &S) {
    store.create_video(&video("viewed", "u-alice", 10, Privacy::Public, None, 100)).await.unwrap();
    store.create_video(&video("unviewed", "u-alice", 10, Privacy::Public, None, 100)).await.unwrap();
    assert_eq!(store.video("viewed").await.unwrap().unwrap().views, 0);

    assert!(store.count_view("viewed", "viewer-a", 200).await.unwrap());
    assert!(!store.count_view("viewed", "viewer-a", 300).await.unwrap(), "once per viewer");
    let seen = store.video("viewed").await.unwrap().unwrap();
    assert_eq!((seen.views, seen.updated_at), (1, 100), "a view is no change of the video");
    assert!(store.count_view("viewed", "viewer-b", 400).await.unwrap());
    assert_eq!(store.video("viewed").await.unwrap().unwrap().views, 2);
    assert_eq!(store.video("unviewed").await.unwrap().unwrap().views, 0, "other videos untouched");
    assert!(store.count_view("unviewed", "viewer-a", 500).await.unwrap(), "the viewer counts on another video");
    assert_eq!(store.video("unviewed").await.unwrap().unwrap().views, 1);

    // No video, no count (and nothing kept that would stop a later one).
    assert!(!store.count_view("missing", "viewer-a", 600).await.unwrap());
    assert!(!store.count_view("missing", "viewer-a", 600).await.unwrap());

    // Eight counts by one viewer at once: one goes up.
    store.create_video(&video("raced", "u-alice", 10, Privacy::Public, None, 100)).await.unwrap();
    let counts = (0..8).map(|_| store.count_view("raced", "viewer-r", 700));
    let counted: Vec<bool> = futures_util::future::join_all(counts).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(counted.iter().filter(|c| **c).count(), 1, "{counted:?}");
    assert_eq!(store.video("raced").await.unwrap().unwrap().views, 1);
}

fn state(state: VideoState, now: i64) -> StateChange {
    StateChange { state, progress: None, error: None, result: None, now }
}

async fn usage<S: MetaStore + PeopleStore>(store: &S) {
    assert_eq!(store.upload_usage("u-quota", 0).await.unwrap(), (0, 0), "nothing yet");
    let big = 5u64 << 30;
    for (id, size, at) in
        [("q-old", 100, 1_000), ("q-today", big, 5_000), ("q-deleted", 7, 6_000), ("q-edge", 3, 4_000)]
    {
        store.create_video(&video(id, "u-quota", size, Privacy::Private, None, at)).await.unwrap();
    }
    store.create_video(&video("q-other", "u-other", 1_000, Privacy::Public, None, 5_000)).await.unwrap();
    store.change_state("q-deleted", &VideoState::ALL, &state(VideoState::Deleted, 7_000)).await.unwrap().unwrap();
    store.change_state("q-old", &VideoState::ALL, &state(VideoState::Failed, 7_000)).await.unwrap().unwrap();

    // Since 4 000 (inclusive): today's, the deleted one and the edge; kept: all but the deleted.
    assert_eq!(store.upload_usage("u-quota", 4_000).await.unwrap(), (big + 7 + 3, 100 + big + 3));
    assert_eq!(store.upload_usage("u-quota", 4_001).await.unwrap(), (big + 7, 100 + big + 3));
    assert_eq!(store.upload_usage("u-quota", 0).await.unwrap(), (100 + big + 7 + 3, 100 + big + 3));
    assert_eq!(store.upload_usage("u-quota", 10_000).await.unwrap(), (0, 100 + big + 3));
    assert_eq!(store.upload_usage("nobody", 0).await.unwrap(), (0, 0));
    // The uploads behind the day's sum, oldest first: when, and how large.
    assert_eq!(store.uploads_since("u-quota", 4_000).await.unwrap(), [(4_000, 3), (5_000, big), (6_000, 7)]);
    assert!(store.uploads_since("u-quota", 6_001).await.unwrap().is_empty());
}

fn report(id: &str, video_id: &str, reason: ReportReason, at: i64) -> Report {
    Report {
        id: id.into(),
        video_id: video_id.into(),
        reporter: "u-boss".into(),
        reason,
        text: "هذا الفيديو منسوخ — copie".into(),
        created_at: at,
        resolution: None,
        resolved_by: None,
        resolved_at: None,
        note: None,
    }
}

async fn reports(store: &dyn PeopleStore) {
    assert!(store.open_reports(10).await.unwrap().is_empty());
    let reports = [
        report("r-3", "rv-1", ReportReason::Spam, 300),
        report("r-1", "rv-1", ReportReason::Copyright, 100),
        report("r-2", "rv-2", ReportReason::Illegal, 200),
        report("r-2b", "rv-2", ReportReason::Sensitive, 200),
    ];
    for r in &reports {
        store.create_report(r).await.unwrap();
    }
    assert!(store.create_report(&reports[0]).await.is_err(), "ids are unique");
    assert_eq!(store.report("r-2").await.unwrap().as_ref(), Some(&reports[2]));
    assert_eq!(store.report("missing").await.unwrap(), None);
    let ids = |reports: Vec<Report>| reports.into_iter().map(|r| r.id).collect::<Vec<_>>();

    // Undecided, oldest first; the id breaks a tie.
    assert_eq!(ids(store.open_reports(10).await.unwrap()), ["r-1", "r-2", "r-2b", "r-3"]);
    assert_eq!(ids(store.open_reports(2).await.unwrap()), ["r-1", "r-2"], "the limit holds");
    assert_eq!(ids(store.reports_of("rv-1").await.unwrap()), ["r-1", "r-3"]);
    assert!(store.reports_of("missing").await.unwrap().is_empty());

    // Decided once.
    assert!(store.resolve_report("r-1", Resolution::TakenDown, "u-mod", "DMCA #7 — retiré", 400).await.unwrap());
    assert!(!store.resolve_report("r-1", Resolution::Dismissed, "u-other", "again", 500).await.unwrap());
    assert!(!store.resolve_report("missing", Resolution::Dismissed, "u-mod", "", 500).await.unwrap());
    let decided = Report {
        resolution: Some(Resolution::TakenDown),
        resolved_by: Some("u-mod".into()),
        resolved_at: Some(400),
        note: Some("DMCA #7 — retiré".into()),
        ..reports[1].clone()
    };
    assert_eq!(store.report("r-1").await.unwrap().as_ref(), Some(&decided));
    assert!(store.resolve_report("r-2b", Resolution::Gated, "u-mod", "", 410).await.unwrap());
    assert!(store.resolve_report("r-3", Resolution::Dismissed, "u-mod", "not spam", 420).await.unwrap());
    assert_eq!(ids(store.open_reports(10).await.unwrap()), ["r-2"]);
    let of_rv1 = store.reports_of("rv-1").await.unwrap();
    assert_eq!(of_rv1[0], decided, "decided reports stay listed for the video");
    assert_eq!(of_rv1[1].resolution, Some(Resolution::Dismissed));
    assert_eq!(store.report("r-2b").await.unwrap().unwrap().resolution, Some(Resolution::Gated));

    // Every reason and resolution survives the round trip.
    for (n, reason) in ReportReason::ALL.into_iter().enumerate() {
        let id = format!("r-reason-{n}");
        store.create_report(&report(&id, "rv-3", reason, 1_000)).await.unwrap();
        assert_eq!(store.report(&id).await.unwrap().unwrap().reason, reason);
        let resolution = Resolution::ALL[n % Resolution::ALL.len()];
        assert!(store.resolve_report(&id, resolution, "u-mod", "", 1_100).await.unwrap());
        assert_eq!(store.report(&id).await.unwrap().unwrap().resolution, Some(resolution));
    }
}

async fn decisions_by_creator<S: MetaStore + PeopleStore>(store: &S) {
    for (id, creator) in [("dv-1", "u-dc"), ("dv-2", "u-dc"), ("dv-other", "u-else")] {
        store.create_video(&video(id, creator, 10, Privacy::Public, None, 50)).await.unwrap();
    }
    for (id, video, at) in [("dr-1", "dv-1", 60), ("dr-2", "dv-2", 70), ("dr-3", "dv-1", 80), ("dr-4", "dv-other", 65)]
    {
        store.create_report(&report(id, video, ReportReason::Spam, at)).await.unwrap();
    }
    assert!(store.decided_reports_for_creator("u-dc").await.unwrap().is_empty(), "nothing decided yet");
    for id in ["dr-3", "dr-2", "dr-4"] {
        assert!(store.resolve_report(id, Resolution::Dismissed, "u-mod", "", 90).await.unwrap());
    }
    // Decided ones only (dr-1 is open), of this creator's videos only (dr-4 is not), oldest first.
    let decided = store.decided_reports_for_creator("u-dc").await.unwrap();
    let ids: Vec<_> = decided.iter().map(|r| (r.id.as_str(), r.video_id.as_str())).collect();
    assert_eq!(ids, [("dr-2", "dv-2"), ("dr-3", "dv-1")]);
    assert_eq!(decided[0].resolution, Some(Resolution::Dismissed));
    assert!(store.decided_reports_for_creator("u-nobody").await.unwrap().is_empty());
}

async fn video_privacy(store: &dyn MetaStore) {
    let all = |channel: Option<&str>, public_only| VideoQuery {
        channel: channel.map(str::to_owned),
        creator: Some("u-lister".into()),
        public_only,
        limit: 100,
        ..VideoQuery::default()
    };
    let ids = async |q: VideoQuery| -> Vec<String> {
        store.list_videos(&q).await.unwrap().into_iter().map(|v| v.id).collect()
    };
    for (id, privacy, channel, at) in [
        ("pv-pub-a", Privacy::Public, Some("ch-x"), 100),
        ("pv-unl-a", Privacy::Unlisted, Some("ch-x"), 200),
        ("pv-pri-a", Privacy::Private, Some("ch-x"), 300),
        ("pv-pub-b", Privacy::Public, Some("ch-y"), 400),
        ("pv-pub-none", Privacy::Public, None, 500),
    ] {
        let created = store.create_video(&video(id, "u-lister", 1, privacy, channel, at)).await.unwrap();
        assert_eq!((created.privacy, created.channel.as_deref(), created.gated), (privacy, channel, false));
    }
    assert_eq!(ids(all(None, false)).await, ["pv-pub-none", "pv-pub-b", "pv-pri-a", "pv-unl-a", "pv-pub-a"]);
    assert_eq!(ids(all(None, true)).await, ["pv-pub-none", "pv-pub-b", "pv-pub-a"]);
    assert_eq!(ids(all(Some("ch-x"), false)).await, ["pv-pri-a", "pv-unl-a", "pv-pub-a"]);
    assert_eq!(ids(all(Some("ch-x"), true)).await, ["pv-pub-a"]);
    assert_eq!(ids(all(Some("ch-y"), true)).await, ["pv-pub-b"]);
    assert!(ids(all(Some("ch-none"), false)).await.is_empty());
    let catalogue = ids(VideoQuery { public_only: true, limit: 1_000, ..VideoQuery::default() }).await;
    assert!(catalogue.contains(&"pv-pub-a".to_owned()) && !catalogue.contains(&"pv-unl-a".to_owned()));
    let channel_page = ids(VideoQuery { channel: Some("ch-x".into()), limit: 100, ..VideoQuery::default() }).await;
    assert_eq!(channel_page, ["pv-pri-a", "pv-unl-a", "pv-pub-a"], "across creators too");

    // Privacy and gating are patched like the rest; an absent field keeps its value.
    let private = VideoPatch { privacy: Some(Privacy::Private), ..VideoPatch::default() };
    let patched = store.patch_video("pv-pub-a", &private, 600).await.unwrap().unwrap();
    assert_eq!((patched.privacy, patched.gated, patched.updated_at), (Privacy::Private, false, 600));
    assert_eq!(patched.channel.as_deref(), Some("ch-x"));
    assert!(ids(all(Some("ch-x"), true)).await.is_empty());
    let public =
        VideoPatch { privacy: Some(Privacy::Public), title: Some("Now public".into()), ..VideoPatch::default() };
    let patched = store.patch_video("pv-unl-a", &public, 700).await.unwrap().unwrap();
    assert_eq!((patched.privacy, patched.title.as_str()), (Privacy::Public, "Now public"));
    assert_eq!(ids(all(Some("ch-x"), true)).await, ["pv-unl-a"]);

    let gate = VideoPatch { gated: Some(true), ..VideoPatch::default() };
    let gated = store.patch_video("pv-pub-b", &gate, 800).await.unwrap().unwrap();
    assert_eq!((gated.gated, gated.privacy), (true, Privacy::Public));
    let retitle = VideoPatch { title: Some("Still gated".into()), ..VideoPatch::default() };
    let kept = store.patch_video("pv-pub-b", &retitle, 900).await.unwrap().unwrap();
    assert_eq!((kept.gated, kept.privacy, kept.title.as_str()), (true, Privacy::Public, "Still gated"));
    assert_eq!(store.video("pv-pub-b").await.unwrap(), Some(kept));
    let ungate = VideoPatch { gated: Some(false), privacy: Some(Privacy::Unlisted), ..VideoPatch::default() };
    let ungated = store.patch_video("pv-pub-b", &ungate, 1_000).await.unwrap().unwrap();
    assert_eq!((ungated.gated, ungated.privacy), (false, Privacy::Unlisted));
    assert_eq!(store.patch_video("missing", &gate, 1_000).await.unwrap(), None);

    // Deleted videos stay out of public listings unless asked for.
    store.change_state("pv-unl-a", &VideoState::ALL, &state(VideoState::Deleted, 1_100)).await.unwrap().unwrap();
    assert!(ids(all(Some("ch-x"), true)).await.is_empty());
    let with_deleted = VideoQuery { include_deleted: true, ..all(Some("ch-x"), true) };
    assert_eq!(ids(with_deleted).await, ["pv-unl-a"]);
}
