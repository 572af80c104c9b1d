//! Reports and the moderation queue (P21): anyone signed in reports a video with a reason;
//! moderators see open reports oldest first and decide each once: take the video down (the
//! converging takedown, audited with the moderator, the report and the reason; a ready video
//! stays restorable for `accounts.restore_grace`, `POST /v1/videos/{id}/restore`), gate it as
//! sensitive (the watch page asks for consent), or dismiss. The creator sees the decision and
//! its note on their videos.

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;

use super::videos::{find, take_down, watchable};
use crate::accounts;
use crate::app::App;
use crate::error::{Error, Kind, Result};
use crate::meta::people::{Report, ReportReason, Resolution, Role};
use crate::meta::{self, Audit, VideoPatch};
use crate::web::{self, Request, Response};

/// The decided reports of a video as its creator sees them: what was decided and why, never
/// who reported it or what they wrote (moderators see everything in the queue).
pub async fn decisions_for_creator(app: &App, video_id: &str) -> Result<Vec<serde_json::Value>> {
    Ok(app.people.reports_of(video_id).await?.iter().filter(|r| r.resolution.is_some()).map(decision).collect())
}

/// The decided reports of every video of `creator`, by video, as [`decisions_for_creator`]
/// gives them for one.
pub async fn decisions_by_video(
    app: &App,
    creator: &str,
) -> Result<std::collections::HashMap<String, Vec<serde_json::Value>>> {
    let mut by_video = std::collections::HashMap::<String, Vec<serde_json::Value>>::new();
    for r in app.people.decided_reports_for_creator(creator).await? {
        by_video.entry(r.video_id.clone()).or_default().push(decision(&r));
    }
    Ok(by_video)
}

/// What the creator sees of one decided report.
fn decision(r: &Report) -> serde_json::Value {
    serde_json::json!({ "reason": r.reason, "resolution": r.resolution, "resolved_at": r.resolved_at, "note": r.note })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewReport {
    reason: ReportReason,
    #[serde(default)]
    text: String,
}

/// `POST /v1/videos/{id}/reports`
pub async fn report(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    let who = accounts::require_role(app, &req, Role::Viewer).await?;
    let body: NewReport = web::read_json(req).await?;
    if body.text.chars().count() > 2000 || body.text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::bad_request("bad_field", "text: at most 2000 characters"));
    }
    watchable(app, id, Some(&who)).await?;
    let report = Report {
        id: crate::secrets::random_hex(12)?,
        video_id: id.to_owned(),
        reporter: who.id.clone(),
        reason: body.reason,
        text: body.text,
        created_at: meta::now(),
        resolution: None,
        resolved_by: None,
        resolved_at: None,
        note: None,
    };
    app.people.create_report(&report).await?;
    tracing::info!(video = id, report = %report.id, reason = report.reason.as_str(), "video reported");
    Ok(web::json(StatusCode::CREATED, &report))
}

/// `GET /v1/reports`: open reports, oldest first, each with its video (moderators).
pub async fn queue(app: &Arc<App>, req: Request) -> Result<Response> {
    accounts::require_role(app, &req, Role::Moderator).await?;
    let mut rows = Vec::new();
    for r in app.people.open_reports(200).await? {
        let video = find(app, &r.video_id).await.ok();
        let mut row = serde_json::to_value(&r)?;
        row["video"] = serde_json::to_value(video)?;
        row["reporter_handle"] = serde_json::to_value(
            crate::cache::user(app.cache.as_ref(), app.people.as_ref(), &r.reporter).await?.map(|u| u.handle),
        )?;
        rows.push(row);
    }
    Ok(web::json(StatusCode::OK, &serde_json::json!({ "reports": rows })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    resolution: Resolution,
    #[serde(default)]
    note: String,
}

/// `POST /v1/reports/{id}/decision`: a moderator decides an open report once.
pub async fn decide(app: &Arc<App>, req: Request, report_id: &str) -> Result<Response> {
    let who = accounts::require_role(app, &req, Role::Moderator).await?;
    let body: Decision = web::read_json(req).await?;
    if body.note.chars().count() > 2000 {
        return Err(Error::bad_request("bad_field", "note: at most 2000 characters"));
    }
    let report = app.people.report(report_id).await?.ok_or_else(|| Error::not_found("report"))?;
    if report.resolution.is_some() {
        return Err(Error::refused(Kind::Conflict, "decided", "the report was decided already"));
    }
    let id = report.video_id.as_str();
    match body.resolution {
        Resolution::TakenDown => {
            let audit = Audit {
                at: meta::now(),
                actor: who.id.clone(),
                action: "takedown".into(),
                video_id: id.to_owned(),
                reason: format!("report {report_id} ({}): {}", report.reason.as_str(), body.note),
            };
            match take_down(app, id, audit, true).await {
                // Taken down meanwhile (another report, its owner): the decision still stands.
                Err(e) if e.code() == "deleted" => {}
                other => {
                    other?;
                }
            }
        }
        Resolution::Gated => {
            let patch = VideoPatch { gated: Some(true), ..VideoPatch::default() };
            app.meta.patch_video(id, &patch, meta::now()).await?.ok_or_else(|| Error::not_found("video"))?;
            crate::cache::forget_video(app.cache.as_ref(), id).await;
            app.meta
                .add_audit(&Audit {
                    at: meta::now(),
                    actor: who.id.clone(),
                    action: "gate".into(),
                    video_id: id.to_owned(),
                    reason: format!("report {report_id}: {}", body.note),
                })
                .await?;
        }
        Resolution::Dismissed => {}
    }
    if !app.people.resolve_report(report_id, body.resolution, &who.id, &body.note, meta::now()).await? {
        return Err(Error::refused(Kind::Conflict, "decided", "the report was decided already"));
    }
    tracing::info!(report = report_id, video = id, by = %who.id, resolution = body.resolution.as_str(), "report decided");
    let decided = app.people.report(report_id).await?.ok_or_else(|| Error::not_found("report"))?;
    Ok(web::json(StatusCode::OK, &decided))
}
