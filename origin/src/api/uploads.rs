//! tus 1.0.0 uploads (P5, P6): creation (with upload), HEAD for resuming, PATCH with optional
//! SHA-256 checksums, termination, and concatenation so a client can send parts in parallel.
//! Every request carries the pre-signed query of the video's upload URL. A request's bytes go
//! to blob storage as one piece (`uploads/{upload}/...`), and the offset is acknowledged only
//! once the piece is durable and recorded with the offset's move in one transaction; a partly
//! received body is kept and acknowledged too, so a dropped or stalled connection resumes where
//! it stopped. Nothing of an upload lives on the API node: any node continues any upload, and
//! the job assembles the original from the pieces (`jobs::original`).
//!
//! One video, one completed upload: a video takes at most `max_uploads_per_video` single or
//! partial uploads at once, and the first upload to complete claims the video
//! (`jobs::claim`); every other one is refused with `409 upload_completed` and removed.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;

use super::{now_secs, query};
use crate::app::App;
use crate::error::{Error, Kind, Result};
use crate::jobs::Claim;
use crate::meta::{self, Admission, Intake, Piece, Upload, UploadKind, VideoState};
use crate::sign::UploadGrant;
use crate::storage;
use crate::tus::{self, Concat};
use crate::web::limits::BodyError;
use crate::web::{self, Request, Response};

/// `OPTIONS /v1/uploads`: what this server supports.
pub fn options(app: &App) -> Response {
    let mut r = web::status(StatusCode::NO_CONTENT);
    web::set(&mut r, "tus-resumable", tus::VERSION);
    web::set(&mut r, "tus-version", tus::VERSION);
    web::set(&mut r, "tus-extension", tus::EXTENSIONS);
    web::set(&mut r, "tus-max-size", &app.config.max_upload_bytes.to_string());
    web::set(&mut r, "tus-checksum-algorithm", tus::CHECKSUM_ALGORITHMS);
    r
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn require_tus(headers: &HeaderMap) -> Result<()> {
    if header_str(headers, "tus-resumable") == Some(tus::VERSION) {
        Ok(())
    } else {
        Err(Error::refused(Kind::Precondition, "tus_version", "Tus-Resumable: 1.0.0 is required"))
    }
}

fn tus_response(code: StatusCode) -> Response {
    let mut r = web::status(code);
    web::set(&mut r, "tus-resumable", tus::VERSION);
    r
}

/// Checks the signed query and the upload's ownership.
async fn authorise(app: &App, req: &Request, upload_id: &str) -> Result<(UploadGrant, Upload)> {
    require_tus(req.headers())?;
    let grant = app.signer.verify_upload(query(req), now_secs())?;
    let upload = app.meta.upload(upload_id).await?.ok_or_else(|| Error::not_found("upload"))?;
    if upload.video_id != grant.video {
        return Err(Error::forbidden("wrong_video", "the upload URL is for another video"));
    }
    Ok((grant, upload))
}

/// `POST /v1/uploads?<signed>`: creates a single, partial or final (concatenated) upload.
pub async fn create(app: &Arc<App>, req: Request) -> Result<Response> {
    require_tus(req.headers())?;
    let signed = query(&req).to_owned();
    let grant = app.signer.verify_upload(&signed, now_secs())?;
    let intake = app.meta.intake(&grant.video).await?;
    if !intake.as_ref().is_some_and(Intake::is_open) {
        return Err(closed(intake));
    }
    let headers = req.headers().clone();
    let metadata = header_str(&headers, "upload-metadata").unwrap_or_default().to_owned();
    tus::parse_metadata(&metadata)?;
    let concat = header_str(&headers, "upload-concat").map(tus::parse_concat).transpose()?;
    let id = crate::secrets::random_hex(16)?;
    let location = format!("{}/v1/uploads/{id}?{signed}", app.config.upload_url.trim_end_matches('/'));
    let now = meta::now();
    let expires_at = now + app.config.upload_expiry.as_millis() as i64;
    if let Some(Concat::Final(parts)) = concat {
        let upload = concatenate(app, &grant, &id, parts, metadata, expires_at).await?;
        let mut r = created(&location, &upload);
        web::set(&mut r, "upload-offset", &upload.offset.to_string());
        return Ok(r);
    }
    if header_str(&headers, "upload-defer-length").is_some() {
        return Err(Error::bad_request(
            "defer_unsupported",
            "Upload-Defer-Length is not supported; send Upload-Length",
        ));
    }
    let length: u64 = header_str(&headers, "upload-length")
        .ok_or_else(|| Error::bad_request("missing_length", "Upload-Length is required"))?
        .parse()
        .map_err(|_| Error::bad_request("bad_length", "Upload-Length is not a number"))?;
    check_size(app, &grant, length)?;
    let kind = if concat == Some(Concat::Partial) { UploadKind::Partial } else { UploadKind::Single };
    let upload = Upload {
        id: id.clone(),
        video_id: grant.video.clone(),
        length,
        offset: 0,
        kind,
        parts: Vec::new(),
        metadata,
        expires_at,
        created_at: now,
    };
    admit(app, &upload).await?;
    let mut response = created(&location, &upload);
    // creation-with-upload: the POST body is the first chunk.
    let has_body = header_str(&headers, "content-type") == Some(tus::OFFSET_CONTENT_TYPE)
        && header_str(&headers, "content-length").is_none_or(|l| l != "0");
    if has_body {
        let offset = match write_chunk(app, req, &upload, 0).await {
            Ok(offset) => offset,
            // The upload exists and keeps what arrived: the client still needs its Location.
            Err(e) if e.code() == "body_timeout" => app.meta.upload(&id).await?.map_or(0, |u| u.offset),
            Err(e) => return Err(e),
        };
        web::set(&mut response, "upload-offset", &offset.to_string());
    }
    Ok(response)
}

/// Records a new upload if the video takes it (open, under its upload limit).
async fn admit(app: &App, upload: &Upload) -> Result<()> {
    match app.meta.admit_upload(upload, app.config.max_uploads_per_video).await? {
        Admission::Admitted => Ok(()),
        Admission::Closed(intake) => Err(closed(intake)),
        Admission::TooMany(held) => Err(Error::refused(
            Kind::Conflict,
            "too_many_uploads",
            format!("the video already has {held} uploads, the most it may have; finish or terminate one"),
        )),
    }
}

/// Why a video takes no (more) uploads.
fn closed(intake: Option<Intake>) -> Error {
    match intake {
        None => Error::not_found("video"),
        Some(i) if i.state == VideoState::Deleted => Error::refused(Kind::Gone, "deleted", "the video was taken down"),
        Some(Intake { completed_by: Some(_), .. }) => Error::refused(
            Kind::Conflict,
            "upload_completed",
            "another upload already completed this video; it takes no more bytes",
        ),
        Some(i) => Error::refused(Kind::Conflict, "not_uploading", format!("the video is {}", i.state.as_str())),
    }
}

fn created(location: &str, upload: &Upload) -> Response {
    let mut r = tus_response(StatusCode::CREATED);
    web::set(&mut r, header::LOCATION.as_str(), location);
    web::set(&mut r, "upload-expires", &tus::http_date(upload.expires_at / 1000));
    r
}

fn check_size(app: &App, grant: &UploadGrant, length: u64) -> Result<()> {
    let limit = grant.max_bytes.min(app.config.max_upload_bytes);
    if length > limit {
        return Err(Error::refused(
            Kind::TooLarge,
            "size_exceeded",
            format!("{length} bytes is over the {limit} bytes this URL allows"),
        ));
    }
    Ok(())
}

/// `HEAD /v1/uploads/{id}`: the acknowledged offset, for resuming.
pub async fn head(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    let (_, upload) = authorise(app, &req, id).await?;
    let mut r = tus_response(StatusCode::OK);
    web::set(&mut r, "upload-offset", &upload.offset.to_string());
    web::set(&mut r, "upload-length", &upload.length.to_string());
    web::set(&mut r, header::CACHE_CONTROL.as_str(), "no-store");
    if !upload.metadata.is_empty() {
        web::set(&mut r, "upload-metadata", &upload.metadata);
    }
    match upload.kind {
        UploadKind::Partial => web::set(&mut r, "upload-concat", "partial"),
        UploadKind::Final => {
            let urls: Vec<String> = upload.parts.iter().map(|p| format!("/v1/uploads/{p}")).collect();
            web::set(&mut r, "upload-concat", &format!("final;{}", urls.join(" ")));
        }
        UploadKind::Single => {}
    }
    if upload.offset < upload.length {
        web::set(&mut r, "upload-expires", &tus::http_date(upload.expires_at / 1000));
    }
    Ok(r)
}

/// `PATCH /v1/uploads/{id}`: appends bytes at `Upload-Offset`.
pub async fn patch(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    let (_, upload) = authorise(app, &req, id).await?;
    if header_str(req.headers(), "content-type") != Some(tus::OFFSET_CONTENT_TYPE) {
        return Err(Error::refused(
            Kind::UnsupportedMedia,
            "bad_content_type",
            "PATCH bodies are application/offset+octet-stream",
        ));
    }
    if upload.kind == UploadKind::Final {
        return Err(Error::forbidden("final_upload", "a concatenated upload takes no bytes"));
    }
    // Refused before a byte is read: an upload of a video another upload completed, which
    // can never be used and goes.
    let intake = app.meta.intake(&upload.video_id).await?;
    if !intake.as_ref().is_some_and(|i| i.takes(&upload.id)) {
        // A partial upload of the concatenation that completed the video keeps its pieces:
        // the job assembles the original from them.
        if intake.as_ref().is_some_and(|i| i.completed_by.is_some()) && !completes_its_video(app, &upload).await? {
            let lock = app.upload_lock(&upload.id);
            let _held = lock.lock().await;
            discard(app, &upload).await?;
        }
        return Err(closed(intake));
    }
    let offset: u64 = header_str(req.headers(), "upload-offset")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::bad_request("missing_offset", "Upload-Offset is required"))?;
    let new_offset = write_chunk(app, req, &upload, offset).await?;
    let mut r = tus_response(StatusCode::NO_CONTENT);
    web::set(&mut r, "upload-offset", &new_offset.to_string());
    web::set(&mut r, "upload-expires", &tus::http_date(upload.expires_at / 1000));
    Ok(r)
}

/// `DELETE /v1/uploads/{id}` (termination).
pub async fn terminate(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    let (_, upload) = authorise(app, &req, id).await?;
    if completes_its_video(app, &upload).await? {
        return Err(Error::refused(
            Kind::Conflict,
            "upload_completed",
            "this upload completed its video; its bytes go once the video is processed",
        ));
    }
    let lock = app.upload_lock(id);
    let _held = lock.lock().await;
    discard(app, &upload).await?;
    Ok(tus_response(StatusCode::NO_CONTENT))
}

/// Whether the video's job needs this upload's pieces: it completed the video, or is a part
/// of the concatenation that did.
async fn completes_its_video(app: &App, upload: &Upload) -> Result<bool> {
    let Some(by) = app.meta.intake(&upload.video_id).await?.and_then(|i| i.completed_by) else { return Ok(false) };
    if by == upload.id {
        return Ok(true);
    }
    Ok(upload.kind == UploadKind::Partial && app.meta.upload(&by).await?.is_some_and(|f| f.parts.contains(&upload.id)))
}

/// Removes an upload's pieces and records (what is already gone is fine).
pub(crate) async fn discard(app: &App, upload: &Upload) -> Result<()> {
    storage::delete_tree(&app.blobs, &storage::upload_pieces(&upload.id)).await?;
    app.meta.delete_upload(&upload.id).await
}

/// Streams the request body into a new piece in blob storage, makes it durable, then records
/// it and moves the acknowledged offset (one transaction, conditional on the offset, so two
/// nodes writing at the same offset cannot both win). Returns the new offset.
async fn write_chunk(app: &Arc<App>, req: Request, upload: &Upload, offset: u64) -> Result<u64> {
    let checksum = header_str(req.headers(), "upload-checksum").map(tus::parse_checksum).transpose()?;
    // Spares this node's concurrent requests a wasted piece; across nodes the conditional
    // offset move decides.
    let lock = app.upload_lock(&upload.id);
    let _held = lock.lock().await;
    let current = app.meta.upload(&upload.id).await?.ok_or_else(|| Error::not_found("upload"))?;
    if offset != current.offset {
        return Err(offset_mismatch(format!(
            "Upload-Offset {offset} does not match the acknowledged offset {}",
            current.offset
        )));
    }
    if current.offset == current.length {
        // Already whole: a retried last request.
        if carries_bytes(req).await {
            return Err(too_long(&current));
        }
        if current.kind == UploadKind::Single {
            complete(app, &current).await?;
        }
        return Ok(current.length);
    }
    let object = storage::upload_piece(&upload.id, offset, &crate::secrets::random_hex(6)?);
    let received = receive(app, req, &current, &object, checksum).await;
    let (written, stalled) = match received {
        Ok(Received { written: 0, stalled }) => (0, stalled),
        Ok(Received { written, stalled }) => {
            let piece = Piece { offset, length: written, object: object.clone() };
            if !app.meta.append_piece(&upload.id, &piece).await? {
                let _ = app.blobs.delete(&object).await;
                return Err(offset_mismatch("the upload moved while this chunk was written".into()));
            }
            (written, stalled)
        }
        Err(e) => {
            // Nothing of a refused body is kept.
            let _ = app.blobs.delete(&object).await;
            return Err(e);
        }
    };
    app.metrics.upload_bytes.inc_by(written);
    if let Some(stalled) = stalled {
        return Err(stalled);
    }
    let new_offset = offset + written;
    if new_offset == current.length && current.kind == UploadKind::Single {
        complete(app, &current).await?;
    }
    Ok(new_offset)
}

fn offset_mismatch(message: String) -> Error {
    Error::refused(Kind::Conflict, "offset_mismatch", message)
}

/// What a body left in its piece.
struct Received {
    /// Bytes stored (the piece is durable when this is above zero).
    written: u64,
    /// The client stopped sending: what arrived is kept, then it is told so (408).
    stalled: Option<Error>,
}

/// Streams a request body into the blob `object`. A body that ends early is kept (unless it
/// must match a checksum); one too long or not matching its checksum is refused.
async fn receive(
    app: &App,
    req: Request,
    upload: &Upload,
    object: &str,
    checksum: Option<Vec<u8>>,
) -> Result<Received> {
    let room = upload.length - upload.offset;
    // Hashing every byte is only worth it when the client asked for a check.
    let mut hasher = checksum.as_ref().map(|_| ring::digest::Context::new(&ring::digest::SHA256));
    let mut writer = app.blobs.writer_with(object).chunk(PIECE_CHUNK).await?;
    let (mut written, mut stalled) = (0u64, None);
    let mut outcome: Result<()> = Ok(());
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        let chunk: Bytes = match frame {
            Ok(f) => match f.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
            // The client went away or stalled: keep what arrived (unless it must match a
            // checksum), and let go of the upload for the next request.
            Err(e) => {
                tracing::info!(upload = %upload.id, error = %e, written, "upload body interrupted");
                if let BodyError::Stalled(after) = e {
                    stalled = Some(web::body_stalled(after));
                }
                if checksum.is_some() {
                    outcome = Err(stalled.take().unwrap_or_else(|| {
                        Error::bad_request("body_interrupted", "the body ended early; nothing of it was kept")
                    }));
                }
                break;
            }
        };
        if written + chunk.len() as u64 > room {
            outcome = Err(too_long(upload));
            break;
        }
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&chunk);
        }
        written += chunk.len() as u64;
        if let Err(e) = writer.write(chunk).await {
            outcome = Err(e.into());
            break;
        }
    }
    if outcome.is_ok()
        && let (Some(expected), Some(hasher)) = (&checksum, hasher)
        && hasher.finish().as_ref() != expected.as_slice()
    {
        outcome = Err(Error::refused(
            Kind::ChecksumMismatch,
            "checksum_mismatch",
            "the body does not match Upload-Checksum; it was discarded",
        ));
    }
    if let Err(e) = outcome {
        let _ = writer.abort().await;
        return Err(e);
    }
    if written == 0 {
        let _ = writer.abort().await;
    } else {
        // Durable once closed and named: fsync, rename and the folders synced on a file system,
        // the completed upload on S3.
        writer.close().await?;
        storage::sync_name(&app.config.storage, object).await?;
    }
    Ok(Received { written, stalled })
}

/// How much of a piece is buffered before it goes to blob storage (an S3 multipart part).
const PIECE_CHUNK: usize = 8 << 20;

fn too_long(upload: &Upload) -> Error {
    Error::refused(Kind::TooLarge, "size_exceeded", format!("more than Upload-Length ({} bytes)", upload.length))
}

/// Whether a request body holds at least one byte.
async fn carries_bytes(req: Request) -> bool {
    let mut body = req.into_body();
    while let Some(Ok(frame)) = body.frame().await {
        if frame.data_ref().is_some_and(|d| !d.is_empty()) {
            return true;
        }
    }
    false
}

/// The last byte of a single upload is durable: it completes the video, unless another
/// upload did; a refused upload is removed, since it can never be used.
async fn complete(app: &Arc<App>, upload: &Upload) -> Result<()> {
    match crate::jobs::claim(app, &upload.video_id, &upload.id).await? {
        Claim::Ours => crate::jobs::finalize(app, &upload.video_id, &upload.id).await,
        Claim::AlreadyDone => Ok(()),
        Claim::Refused(intake) => {
            discard(app, upload).await?;
            tracing::info!(upload = %upload.id, video = %upload.video_id, "completed upload refused and removed");
            Err(closed(intake))
        }
    }
}

/// Creates a final upload from complete partial uploads of the same video, in order, and
/// hands the assembled file on.
async fn concatenate(
    app: &Arc<App>,
    grant: &UploadGrant,
    id: &str,
    parts: Vec<String>,
    metadata: String,
    expires_at: i64,
) -> Result<Upload> {
    let mut partials = Vec::with_capacity(parts.len());
    for part in &parts {
        let p = app.meta.upload(part).await?.ok_or_else(|| Error::not_found("partial upload"))?;
        if p.video_id != grant.video {
            return Err(Error::forbidden("wrong_video", "a partial upload belongs to another video"));
        }
        if p.kind != UploadKind::Partial {
            return Err(Error::bad_request("not_partial", format!("upload {part} is not a partial upload")));
        }
        if p.offset < p.length {
            return Err(Error::refused(
                Kind::Conflict,
                "partials_incomplete",
                format!("partial upload {part} is not complete"),
            ));
        }
        partials.push(p);
    }
    let length = partials.iter().map(|p| p.length).sum();
    check_size(app, grant, length)?;
    let upload = Upload {
        id: id.to_owned(),
        video_id: grant.video.clone(),
        length,
        offset: length,
        kind: UploadKind::Final,
        parts,
        metadata,
        expires_at,
        created_at: meta::now(),
    };
    admit(app, &upload).await?;
    // Nothing is copied here: the job assembles the original from the partials' pieces.
    let finished = match crate::jobs::claim(app, &grant.video, id).await {
        Ok(Claim::Ours) => crate::jobs::finalize(app, &grant.video, id).await,
        Ok(Claim::AlreadyDone) => Ok(()),
        Ok(Claim::Refused(intake)) => Err(closed(intake)),
        Err(e) => Err(e),
    };
    if let Err(e) = finished {
        // The client may try the concatenation again: the partial uploads are all still there.
        discard(app, &upload).await?;
        return Err(e);
    }
    Ok(upload)
}

/// Removes incomplete uploads past their expiry (files and records).
pub async fn collect_expired(app: &App) -> Result<usize> {
    let mut removed = 0;
    for u in app.meta.expired_uploads(meta::now()).await? {
        // A part of the concatenation that completed its video stays until its job took the
        // bytes (the job removes the pieces; the record answers HEAD until then).
        if completes_its_video(app, &u).await? {
            continue;
        }
        let lock = app.upload_lock(&u.id);
        let _held = lock.lock().await;
        discard(app, &u).await?;
        tracing::info!(upload = %u.id, video = %u.video_id, "expired upload removed");
        removed += 1;
    }
    Ok(removed)
}
