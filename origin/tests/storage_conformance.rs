//! One conformance suite for blob storage as `origin::storage::operator` builds it: the local
//! file system on a temporary folder, and S3 against a moto server the test starts on a free
//! port (skipped loudly when moto is not installed outside CI, a failure in CI).
//!
//! moto is looked for in `MOTO_SERVER`, then in the workspace's `target/tools/venv`, then on
//! `PATH`.

mod common;

use std::collections::BTreeSet;

use common::services::{BUCKET, Moto, moto_server};
use opendal::{ErrorKind, Operator};
use origin::config::StorageConfig;
use origin::storage;

const MIB: usize = 1 << 20;

#[tokio::test]
async fn fs_conformance() {
    let folder = tempfile::tempdir().expect("temp dir");
    // A root that does not exist yet: the operator creates it.
    let root = folder.path().join("blobs");
    let op = storage::operator(&StorageConfig::Fs { root: root.clone() }).expect("fs operator");
    conformance(&op).await;
    // The keys are plain files under the root, which is what serving and backups rely on.
    assert!(root.join("videos/kept/720p/seg_00001.m4s").is_file());
}

#[tokio::test]
async fn s3_conformance() {
    let Some(moto) = moto_server("S3 storage conformance") else { return };
    let server = Moto::start(&moto).await;
    let op = storage::operator(&StorageConfig::S3 {
        endpoint: server.endpoint(),
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        access_key: "test-access-key".into(),
        secret_key: "test-secret-key".into(),
    })
    .expect("s3 operator");
    conformance(&op).await;
}

async fn conformance(op: &Operator) {
    write_and_read(op).await;
    overwrite(op).await;
    byte_ranges(op).await;
    stat(op).await;
    missing(op).await;
    streaming_write(op).await;
    list_recursively(op).await;
    delete(op).await;
    delete_prefix(op).await;
}

async fn write_and_read(op: &Operator) {
    let bytes = pattern(7, 4096 + 13);
    op.write("originals/abc", bytes.clone()).await.expect("write");
    assert_eq!(read(op, "originals/abc").await, bytes);

    let nested = "videos/abc/720p/seg_00001.m4s";
    op.write(nested, b"\0segment\xff".to_vec()).await.expect("write nested");
    assert_eq!(read(op, nested).await, b"\0segment\xff");

    op.write("videos/abc/empty", Vec::<u8>::new()).await.expect("write empty");
    assert_eq!(read(op, "videos/abc/empty").await, b"");
}

async fn overwrite(op: &Operator) {
    // A republished playlist is shorter than the one it replaces; no tail of the old may remain.
    op.write("videos/ow/master.m3u8", pattern(1, 10_000)).await.expect("write");
    op.write("videos/ow/master.m3u8", b"#EXTM3U\n".to_vec()).await.expect("overwrite");
    assert_eq!(read(op, "videos/ow/master.m3u8").await, b"#EXTM3U\n");
    assert_eq!(op.stat("videos/ow/master.m3u8").await.expect("stat").content_length(), 8);
}

async fn byte_ranges(op: &Operator) {
    let bytes = pattern(2, 100_000);
    op.write("videos/range/seg", bytes.clone()).await.expect("write");
    for (start, end) in [(0, 1), (0, 100), (1000, 1500), (65_530, 65_542), (99_999, 100_000), (0, 100_000)] {
        let part = op.read_with("videos/range/seg").range(start..end).await.expect("ranged read").to_vec();
        assert_eq!(part, bytes[start as usize..end as usize], "range {start}..{end}");
    }
    let tail = op.read_with("videos/range/seg").range(99_000..).await.expect("open-ended read").to_vec();
    assert_eq!(tail, bytes[99_000..], "range 99000..");
}

async fn stat(op: &Operator) {
    op.write("videos/stat/init.mp4", pattern(3, 12_345)).await.expect("write");
    let meta = op.stat("videos/stat/init.mp4").await.expect("stat");
    assert!(meta.is_file(), "an object stats as a file");
    assert_eq!(meta.content_length(), 12_345);
}

async fn missing(op: &Operator) {
    for key in ["videos/missing/seg_00001.m4s", "never-written"] {
        let stat = op.stat(key).await.expect_err("stat of a missing object");
        assert_eq!(stat.kind(), ErrorKind::NotFound, "stat {key}: {stat}");
        assert_eq!(origin::Error::from(stat).code(), "not_found");

        let read = op.read(key).await.expect_err("read of a missing object");
        assert_eq!(read.kind(), ErrorKind::NotFound, "read {key}: {read}");
        assert_eq!(origin::Error::from(read).code(), "not_found");

        let ranged = op.read_with(key).range(0..10).await.expect_err("ranged read of a missing object");
        assert_eq!(ranged.kind(), ErrorKind::NotFound, "ranged read {key}: {ranged}");
    }
    assert!(!op.exists("never-written").await.expect("exists"));
}

async fn streaming_write(op: &Operator) {
    // Uneven writes across 8 MiB chunks: an S3 multipart upload of 8 + 8 + 4 MiB parts.
    let bytes = pattern(4, 20 * MIB);
    let key = "jobs/j1/encoded/720p.mp4";
    let mut writer = op.writer_with(key).chunk(8 * MIB).await.expect("writer");
    for piece in bytes.chunks(3 * MIB + 12_345) {
        writer.write(piece.to_vec()).await.expect("write piece");
    }
    let meta = writer.close().await.expect("close");
    // Some services report the length on close, others leave it unset (0).
    assert!(meta.content_length() == 0 || meta.content_length() == bytes.len() as u64, "close: {meta:?}");
    assert_eq!(op.stat(key).await.expect("stat").content_length(), bytes.len() as u64);
    let back = read(op, key).await;
    assert_eq!(back.len(), bytes.len());
    // Compared by hand: a failing assert_eq! would print 40 MiB.
    if let Some(at) = back.iter().zip(&bytes).position(|(a, b)| a != b) {
        panic!("streamed object differs from what was written at byte {at}");
    }
}

async fn list_recursively(op: &Operator) {
    let keys = [
        "videos/list/master.m3u8",
        "videos/list/720p/init.mp4",
        "videos/list/720p/seg_00001.m4s",
        "videos/list/720p/seg_00002.m4s",
        "videos/list/audio/seg_00001.m4s",
    ];
    for key in keys {
        op.write(key, key.as_bytes().to_vec()).await.expect("write");
    }
    // Shares a string prefix with the listed folder but is not inside it.
    op.write("videos/list-other/master.m3u8", b"other".to_vec()).await.expect("write");

    assert_eq!(files(op, "videos/list/").await, keys.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>());
    let rendition: BTreeSet<String> =
        ["videos/list/720p/init.mp4", "videos/list/720p/seg_00001.m4s", "videos/list/720p/seg_00002.m4s"]
            .into_iter()
            .map(String::from)
            .collect();
    assert_eq!(files(op, "videos/list/720p/").await, rendition);
    assert_eq!(files(op, "videos/nothing-here/").await, BTreeSet::new(), "listing an absent prefix");
}

async fn delete(op: &Operator) {
    op.write("videos/del/seg", b"bye".to_vec()).await.expect("write");
    op.write("videos/del/seg2", b"stay".to_vec()).await.expect("write");
    op.delete("videos/del/seg").await.expect("delete");
    let err = op.stat("videos/del/seg").await.expect_err("stat after delete");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(read(op, "videos/del/seg2").await, b"stay", "a neighbour was deleted");
    // A retried cleanup deletes what is already gone.
    op.delete("videos/del/seg").await.expect("deleting a missing object is not an error");
}

/// What a takedown does: the whole published tree goes, its neighbours stay.
async fn delete_prefix(op: &Operator) {
    let doomed = [
        "videos/abc/master.m3u8",
        "videos/abc/720p/init.mp4",
        "videos/abc/720p/seg_00001.m4s",
        "videos/abc/720p/seg_00002.m4s",
        "videos/abc/audio/seg_00001.m4s",
    ];
    let kept = ["videos/abcd/master.m3u8", "videos/kept/720p/seg_00001.m4s", "originals/abc"];
    for key in doomed.iter().chain(&kept) {
        op.write(key, key.as_bytes().to_vec()).await.expect("write");
    }

    op.delete_with("videos/abc/").recursive(true).await.expect("recursive delete");
    for key in doomed {
        let err = op.stat(key).await.expect_err("stat after recursive delete");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{key} survived the takedown: {err}");
    }
    assert_eq!(files(op, "videos/abc/").await, BTreeSet::new(), "files left under the deleted prefix");
    for key in kept {
        assert_eq!(read(op, key).await, key.as_bytes(), "{key} was deleted with videos/abc/");
    }
    // Taking down a video twice, or one never published, succeeds.
    op.delete_with("videos/abc/").recursive(true).await.expect("repeated recursive delete");
    op.delete_with("videos/never-published/").recursive(true).await.expect("recursive delete of nothing");
}

async fn read(op: &Operator, key: &str) -> Vec<u8> {
    op.read(key).await.unwrap_or_else(|e| panic!("read {key}: {e}")).to_vec()
}

/// The files under `prefix`, at any depth; folder entries are left out, since only the file
/// system has them.
async fn files(op: &Operator, prefix: &str) -> BTreeSet<String> {
    let entries = op.list_with(prefix).recursive(true).await.unwrap_or_else(|e| panic!("list {prefix}: {e}"));
    entries.into_iter().map(|e| e.path().to_owned()).filter(|p| !p.ends_with('/')).collect()
}

/// Deterministic bytes without a short period, so a misplaced chunk shows.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}
