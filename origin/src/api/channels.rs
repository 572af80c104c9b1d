//! What viewers see of people: channel pages, who a private video is shared with, and view
//! counts.

use std::sync::Arc;

use http::StatusCode;
use pop_config::tier::fingerprint;
use serde::Deserialize;

use super::videos::{find, managed, watchable};
use super::{now_secs, steering};
use crate::accounts::{self, Via};
use crate::app::App;
use crate::error::{Error, Kind, Result};
use crate::meta::people::Scope;
use crate::meta::{self, VideoQuery};
use crate::sign::Scope as TokenScope;
use crate::web::{self, Request, Response};

/// Seconds of playback before a view counts: a grant younger than this does not count.
pub const VIEW_AFTER_SECS: i64 = 10;

/// `GET /v1/channels/{handle}`: a channel and its public videos, newest first.
pub async fn channel(app: &Arc<App>, handle: &str) -> Result<Response> {
    let channel = app.people.channel_by_handle(handle).await?.ok_or_else(|| Error::not_found("channel"))?;
    let query =
        VideoQuery { channel: Some(channel.id.clone()), public_only: true, limit: 100, ..VideoQuery::default() };
    let videos = app.meta.list_videos(&query).await?;
    let owner = crate::cache::user(app.cache.as_ref(), app.people.as_ref(), &channel.owner).await?;
    Ok(web::json(
        StatusCode::OK,
        &serde_json::json!({
            "channel": channel,
            "owner": owner.map(|u| serde_json::json!({ "handle": u.handle, "display_name": u.display_name })),
            "videos": videos,
        }),
    ))
}

/// `GET /v1/videos/{id}/shares`: the accounts a video is shared with (its managers only).
pub async fn shares(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    let who = accounts::require(app, &req, Scope::Manage).await?;
    managed(app, id, &who).await?;
    let mut people = Vec::new();
    for user_id in app.people.shares_of(id).await? {
        if let Some(u) = crate::cache::user(app.cache.as_ref(), app.people.as_ref(), &user_id).await? {
            people.push(serde_json::json!({ "handle": u.handle, "display_name": u.display_name }));
        }
    }
    Ok(web::json(StatusCode::OK, &serde_json::json!({ "shares": people })))
}

/// `PUT /v1/videos/{id}/shares/{handle}`: lets an account watch a private video.
pub async fn share(app: &Arc<App>, req: Request, id: &str, handle: &str) -> Result<Response> {
    let who = accounts::require(app, &req, Scope::Manage).await?;
    managed(app, id, &who).await?;
    let user = app.people.user_by_handle(handle).await?.ok_or_else(|| Error::not_found("account"))?;
    app.people.share(id, &user.id, meta::now()).await?;
    tracing::info!(video = id, with = %user.id, "shared");
    shares(app, req, id).await
}

/// `DELETE /v1/videos/{id}/shares/{handle}`: stops sharing, at once (grants already issued
/// run to their expiry).
pub async fn unshare(app: &Arc<App>, req: Request, id: &str, handle: &str) -> Result<Response> {
    let who = accounts::require(app, &req, Scope::Manage).await?;
    managed(app, id, &who).await?;
    let user = app.people.user_by_handle(handle).await?.ok_or_else(|| Error::not_found("account"))?;
    if !app.people.unshare(id, &user.id).await? {
        return Err(Error::not_found("share"));
    }
    Ok(web::status(StatusCode::NO_CONTENT))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewReport {
    /// The delivery token of the playback grant the page played with.
    token: String,
}

/// `POST /v1/videos/{id}/views`: the page reports a view after some seconds of playback. It
/// counts once per account (signed in) or per address and day (not signed in), and only with
/// a grant for this video at least `VIEW_AFTER_SECS` old, so a refresh loop counts once and a
/// page cannot count without having played. PoP request counts are not views.
pub async fn view(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    let who = accounts::caller(app, &req).await?;
    let address = steering::client(app, &req).await;
    let body: ViewReport = web::read_json(req).await?;
    let video = watchable(app, id, who.as_ref()).await?;
    let now = now_secs();
    let grant = app.signer.verify_playback(&body.token, id, TokenScope::Delivery, now)?;
    let issued = grant.expires - app.config.playback_ttl.as_secs() as i64;
    if now - issued < VIEW_AFTER_SECS {
        return Err(Error::refused(
            Kind::Conflict,
            "too_early",
            format!("a view counts after {VIEW_AFTER_SECS} s of playback"),
        ));
    }
    // Signed in: once per account (signing in again does not count again).
    let viewer = match who.as_ref() {
        Some(w) if matches!(w.via, Via::Session { .. }) => fingerprint(&format!("user:{}", w.id)),
        _ => fingerprint(&format!("address:{address}:{}", now / 86_400)),
    };
    let counted = app.people.count_view(id, &viewer, meta::now()).await?;
    if counted {
        crate::cache::forget_video(app.cache.as_ref(), id).await;
    }
    let views = find(app, id).await.map_or(video.views, |v| v.views);
    Ok(web::json(StatusCode::OK, &serde_json::json!({ "counted": counted, "views": views })))
}
