//! Rotating the origin's keys as an operator does, with `origin keys` between restarts: a new
//! master key re-wraps every content key without touching a segment, and the old one can then
//! be dropped; a new signing key is rolled out while what the old one signed stays valid, until
//! the old one is retired. And the registry works from the command line before any start.

mod common;

use common::*;
use origin::Config;
use origin::admin::{KeyCommand, keys};
use origin::meta::pops::PopStore;

/// The key a playback opens, at this run's origin (each restart listens on a new port).
async fn key_of(origin: &TestOrigin, playback: &serde_json::Value) -> reqwest::Response {
    let path = url::Url::parse(playback["key_url"].as_str().unwrap()).unwrap().path().to_owned();
    origin.client.get(origin.url(&path)).bearer_auth(playback["key_token"].as_str().unwrap()).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_and_signing_keys_rotate_without_breaking_what_was_issued() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read(clip(dir.path(), "src.mp4", "320x240", 2)).unwrap();
    let config = Config::for_dir(&dir.path().join("data"));
    let origin = TestOrigin::start_with(config.clone()).await;
    let created = origin.create_video("rotated", data.len() as u64).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    origin.tus(&created).upload(&data, 1 << 20).await;
    origin.wait_state(&id, "ready", 120).await;
    let old_playback = origin.playback(&id).await;
    let content_key = key_of(&origin, &old_playback).await.bytes().await.unwrap();
    let segment = dir.path().join(format!("data/blobs/videos/{id}/240p/seg_00000.m4s"));
    let stored = std::fs::read(&segment).unwrap();
    origin.running.stop().await;

    // Master key: version 2 wraps every content key now; no segment changed.
    let said = keys(&config, KeyCommand::RotateMaster).await.unwrap();
    assert!(said.contains("master key 2") && said.contains("1 content keys re-wrapped"), "{said}");
    let store = origin::meta::sql::SqlStore::connect(&config.database_url).await.unwrap();
    assert!(store.keys_wrapped_before(2, 10).await.unwrap().is_empty(), "nothing left under version 1");
    assert_eq!(std::fs::read(&segment).unwrap(), stored, "segments are untouched");
    keys(&config, KeyCommand::RetireMasters).await.unwrap();
    let secrets = origin::secrets::Secrets::from_file(&config.data_dir).unwrap();
    assert_eq!(secrets.masters.iter().map(|(v, _)| *v).collect::<Vec<_>>(), [2], "only version 2 is kept");

    // Signing key: k2 added, then active; what k1 signed still opens until k1 is retired.
    assert!(keys(&config, KeyCommand::Add).await.unwrap().contains("k2"));
    let toml = keys(&config, KeyCommand::PopToml).await.unwrap();
    assert!(toml.contains("kid = \"k1\"") && toml.contains("kid = \"k2\"") && !toml.contains("seed"), "{toml}");
    keys(&config, KeyCommand::Activate("k2".into())).await.unwrap();
    let origin = TestOrigin::start_with(config.clone()).await;
    assert_eq!(key_of(&origin, &old_playback).await.bytes().await.unwrap(), content_key, "same key, re-wrapped");
    let new_playback = origin.playback(&id).await;
    assert!(new_playback["token"].as_str().unwrap().starts_with("v2.k2."), "{new_playback}");
    assert_eq!(key_of(&origin, &new_playback).await.bytes().await.unwrap(), content_key);
    origin.running.stop().await;

    assert!(keys(&config, KeyCommand::Retire("k2".into())).await.is_err(), "the active key cannot be retired");
    keys(&config, KeyCommand::Retire("k1".into())).await.unwrap();
    let origin = TestOrigin::start_with(config.clone()).await;
    let refused = key_of(&origin, &old_playback).await;
    assert_eq!(refused.status(), 403, "what k1 signed is refused once k1 is retired");
    assert_eq!(key_of(&origin, &new_playback).await.status(), 200);
    origin.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pop_is_enrolled_before_the_origin_ever_started() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::for_dir(&dir.path().join("not-yet"));
    let who = origin::pops::Enrolment { id: "fra-1".into(), region: "eu".into(), partner: true };
    let enrolled = origin::admin::enrol(&config, &who).await.unwrap();
    assert!(enrolled.credential.starts_with("fra-1.") && enrolled.instructions.contains("partner = true"));
    let listed = origin::admin::pops(&config, origin::admin::PopCommand::List).await.unwrap();
    assert!(listed.contains("fra-1\teu\tpartner\tenabled"), "{listed}");
    let revoked = origin::admin::pops(&config, origin::admin::PopCommand::Revoke("fra-1".into())).await.unwrap();
    assert!(revoked.contains("revoked"), "{revoked}");
    assert!(origin::admin::pops(&config, origin::admin::PopCommand::Revoke("nobody".into())).await.is_err());
}
