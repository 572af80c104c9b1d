//! A video's original, assembled by its job (not by the request that sent the last byte) from
//! the pieces of the upload that completed it: a single upload's pieces, or a concatenation's
//! partial uploads' pieces in order. Any API node may have stored any piece; they all live in
//! blob storage. Idempotent: a redelivered job finds the original whole and goes on.

use futures_util::TryStreamExt;

use crate::app::App;
use crate::error::{Error, Result, While};
use crate::meta::{Piece, UploadKind};
use crate::storage;

/// Makes sure `originals/{video}` holds the completed upload's bytes, then removes the pieces.
pub async fn assemble(app: &App, video: &str) -> Result<()> {
    let key = storage::original(video);
    let completed_by = app.meta.intake(video).await?.and_then(|i| i.completed_by);
    let Some(upload) = completed_by else {
        return Err(Error::Internal(format!("video {video} has a job but no completed upload")));
    };
    let Some(upload) = app.meta.upload(&upload).await? else {
        return Err(Error::Internal(format!("the upload that completed video {video} is gone")));
    };
    let parts = if upload.kind == UploadKind::Final { upload.parts.clone() } else { vec![upload.id.clone()] };
    if !is_whole(app, &key, upload.length).await {
        let mut pieces = Vec::new();
        for part in &parts {
            pieces.extend(in_order(part, app.meta.pieces(part).await?)?);
        }
        let stored: u64 = pieces.iter().map(|p| p.length).sum();
        if stored != upload.length {
            return Err(Error::Internal(format!("upload {} holds {stored} of {} bytes", upload.id, upload.length)));
        }
        write(app, &pieces, &key).await?;
        tracing::info!(video, pieces = pieces.len(), bytes = stored, "original assembled");
    }
    for part in &parts {
        storage::delete_tree(&app.blobs, &storage::upload_pieces(part)).await?;
    }
    Ok(())
}

/// Whether the original is already there in full (a half-written one never is: writes land
/// whole, and its length is checked anyway).
async fn is_whole(app: &App, key: &str, length: u64) -> bool {
    app.blobs.stat(key).await.is_ok_and(|m| m.content_length() == length)
}

/// The pieces of one upload, checked to follow each other from offset 0 without a gap.
fn in_order(upload: &str, pieces: Vec<Piece>) -> Result<Vec<Piece>> {
    let mut next = 0;
    for p in &pieces {
        if p.offset != next {
            return Err(Error::Internal(format!("upload {upload} has a gap at byte {next}")));
        }
        next += p.length;
    }
    Ok(pieces)
}

/// One piece is renamed where the storage can (a file system); otherwise the pieces are
/// streamed, in order, into one object (a multipart upload on S3).
async fn write(app: &App, pieces: &[Piece], key: &str) -> Result<()> {
    if let [only] = pieces
        && app.blobs.info().capability().rename
    {
        app.blobs.rename(&only.object, key).await?;
        return storage::sync_name(&app.config.storage, key).await;
    }
    let mut writer = app.blobs.writer_with(key).chunk(8 << 20).await?;
    for piece in pieces {
        let mut bytes = app.blobs.reader(&piece.object).await?.into_bytes_stream(..).await?;
        while let Some(chunk) =
            bytes.try_next().await.map_err(|e| Error::Storage(While::cause("reading an upload piece", e)))?
        {
            writer.write(chunk).await?;
        }
    }
    writer.close().await?;
    storage::sync_name(&app.config.storage, key).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(offset: u64, length: u64) -> Piece {
        Piece { offset, length, object: format!("p{offset}") }
    }

    #[test]
    fn pieces_must_follow_each_other_from_zero() {
        assert_eq!(in_order("u", vec![piece(0, 5), piece(5, 3)]).unwrap().len(), 2);
        assert!(in_order("u", vec![piece(1, 5)]).is_err(), "a missing start");
        assert!(in_order("u", vec![piece(0, 5), piece(6, 3)]).is_err(), "a gap");
        assert!(in_order("u", Vec::new()).unwrap().is_empty());
    }
}
