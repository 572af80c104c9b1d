//! Accounts over HTTP: sign-up, sign-in (throttled, with one answer for every failure),
//! sign-out, the caller's account and quota, personal API tokens, and roles (admins).

use std::sync::Arc;

use http::{StatusCode, header};
use serde::Deserialize;

use super::steering;
use crate::accounts::{self, Via, password, session};
use crate::app::App;
use crate::error::{Error, Kind, Result};
use crate::meta::people::{Channel, Claimed, Role, Scope, User};
use crate::meta::{self, Millis, VideoQuery};
use crate::web::{self, Request, Response};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignUp {
    handle: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    handle: String,
    password: String,
}

/// `POST /v1/accounts`: a new creator account with its first channel, signed in at once.
pub async fn sign_up(app: &Arc<App>, req: Request) -> Result<Response> {
    refuse_cross_site(&req)?;
    let body: SignUp = web::read_json(req).await?;
    check_handle(&body.handle)?;
    password::check_new(&body.password)?;
    let display_name = body.display_name.unwrap_or_else(|| body.handle.clone());
    check_display_name(&display_name)?;
    let email = body.email.filter(|e| !e.trim().is_empty());
    if let Some(e) = &email
        && (e.len() > 254 || !e.contains('@') || e.chars().any(char::is_whitespace))
    {
        return Err(Error::bad_request("bad_email", "email: an address with an @, or nothing"));
    }
    let now = meta::now();
    let user = User {
        id: crate::secrets::random_hex(12)?,
        handle: body.handle.clone(),
        display_name: display_name.clone(),
        email,
        role: Role::Creator,
        password_phc: password::hash(&body.password).await?,
        created_at: now,
    };
    let channel = Channel {
        id: crate::secrets::random_hex(12)?,
        owner: user.id.clone(),
        handle: body.handle,
        name: display_name,
        created_at: now,
    };
    if app.people.create_user(&user, &channel).await? == Claimed::HandleTaken {
        return Err(Error::refused(Kind::Conflict, "handle_taken", "that handle is taken"));
    }
    tracing::info!(user = %user.id, handle = %user.handle, "account created");
    signed_in(app, &user, StatusCode::CREATED, now).await
}

/// `POST /v1/sessions`: signs in. Every failure is `401 bad_credentials` and costs the same
/// time whether or not the account exists; too many failures for an account or from an
/// address are `429 too_many_attempts` with `Retry-After`.
pub async fn sign_in(app: &Arc<App>, req: Request) -> Result<Response> {
    refuse_cross_site(&req)?;
    let address = steering::client(app, &req).await.to_string();
    let body: SignIn = web::read_json(req).await?;
    let now = meta::now();
    if let Some(refusal) = throttled(app, &body.handle, &address, now, "failed sign-ins") {
        tracing::warn!(handle = %body.handle, %address, "sign-in throttled");
        return Ok(refusal);
    }
    let user =
        if body.password.len() > password::MAX_BYTES { None } else { app.people.user_by_handle(&body.handle).await? };
    let matched = match &user {
        Some(u) => password::verify(&body.password, &u.password_phc).await?,
        None => {
            password::verify_nobody(&body.password).await?;
            false
        }
    };
    let Some(user) = user.filter(|_| matched) else {
        // Counted as a failure when it was admitted.
        tracing::info!(handle = %body.handle, %address, "sign-in failed");
        return Err(Error::refused(Kind::Unauthenticated, "bad_credentials", "the handle or the password is wrong"));
    };
    app.accounts.throttle.lock().expect("throttle").succeeded(&body.handle, &address, now);
    signed_in(app, &user, StatusCode::OK, now).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current: String,
    new: String,
}

/// `PUT /v1/me/password`: a signed-in browser changes the account's password, giving the
/// current one. Every session of the account ends (one a thief holds too) and this browser
/// gets a new one; API tokens stay, each revocable on its own. Only a browser may do it: a
/// token that leaked must not lock its owner out. A wrong current password counts against
/// the sign-in budget, so a borrowed browser cannot be used to guess it.
pub async fn change_password(app: &Arc<App>, req: Request) -> Result<Response> {
    let who = accounts::require(app, &req, Scope::Manage).await?;
    if !matches!(who.via, Via::Session { .. }) {
        return Err(Error::forbidden("not_a_session", "only a signed-in browser changes the password"));
    }
    let address = steering::client(app, &req).await.to_string();
    let body: PasswordChange = web::read_json(req).await?;
    password::check_new(&body.new)?;
    let user = app.people.user(&who.id).await?.ok_or_else(|| Error::not_found("account"))?;
    let now = meta::now();
    if let Some(refusal) = throttled(app, &user.handle, &address, now, "wrong passwords") {
        tracing::warn!(user = %user.id, %address, "password change throttled");
        return Ok(refusal);
    }
    let matched =
        body.current.len() <= password::MAX_BYTES && password::verify(&body.current, &user.password_phc).await?;
    if !matched {
        tracing::info!(user = %user.id, %address, "password change with a wrong current password");
        return Err(Error::forbidden("wrong_password", "the current password is wrong"));
    }
    app.accounts.throttle.lock().expect("throttle").succeeded(&user.handle, &address, now);
    let phc = password::hash(&body.new).await?;
    if !app.people.set_password(&user.id, &phc, now).await? {
        return Err(Error::not_found("account"));
    }
    tracing::info!(user = %user.id, "password changed; every session ended");
    signed_in(app, &user, StatusCode::OK, now).await
}

/// Admits a password attempt for `handle` from `address` into the sign-in budget (a failure
/// until `succeeded` gives it back), or refuses it with `429 too_many_attempts` and
/// `Retry-After` once the budget of `what` is spent.
fn throttled(app: &App, handle: &str, address: &str, now: Millis, what: &str) -> Option<Response> {
    let wait = app.accounts.throttle.lock().expect("throttle").attempt(handle, address, now)?;
    let secs = u32::try_from(wait.as_secs()).unwrap_or(u32::MAX);
    let message = format!("too many {what}: try again in {secs} s");
    Some(web::retry_later(Kind::RateLimited, "too_many_attempts", &message, secs))
}

/// `DELETE /v1/sessions`: signs this browser out (the session is revoked in the store).
pub async fn sign_out(app: &Arc<App>, req: Request) -> Result<Response> {
    let who = accounts::require(app, &req, Scope::Manage).await?;
    let Via::Session { secret_sha256 } = &who.via else {
        return Err(Error::bad_request("not_a_session", "only a signed-in browser signs out; revoke a token instead"));
    };
    app.people.revoke_session(secret_sha256, meta::now()).await?;
    let mut r = web::status(StatusCode::NO_CONTENT);
    web::set(&mut r, header::SET_COOKIE, &session::clear_cookie());
    Ok(r)
}

/// `DELETE /v1/me/sessions`: signs every browser of the account out.
pub async fn sign_out_everywhere(app: &Arc<App>, req: Request) -> Result<Response> {
    let who = accounts::require(app, &req, Scope::Manage).await?;
    let ended = app.people.revoke_sessions_of(&who.id, meta::now()).await?;
    let mut r = web::json(StatusCode::OK, &serde_json::json!({ "revoked": ended }));
    web::set(&mut r, header::SET_COOKIE, &session::clear_cookie());
    Ok(r)
}

/// `GET /v1/me`: the caller's account, channels, quota and (for a browser) its anti-forgery
/// token. `401` when nobody is signed in.
pub async fn me(app: &Arc<App>, req: Request) -> Result<Response> {
    let who = accounts::require(app, &req, Scope::Manage).await?;
    let csrf = match &who.via {
        Via::Session { secret_sha256 } => app.people.session(secret_sha256).await?.map(|s| s.csrf),
        _ => None,
    };
    let user = app.people.user(&who.id).await?;
    let channels = app.people.channels_of(&who.id).await?;
    Ok(web::json(
        StatusCode::OK,
        &serde_json::json!({
            "user": user.map_or_else(|| bootstrap_user(&who.id), |u| serde_json::to_value(u).unwrap_or_default()),
            "csrf_token": csrf,
            "channels": channels,
            "quota": quota(app, &who.id, meta::now()).await?,
        }),
    ))
}

/// `GET /v1/me/videos`: the caller's videos in every state and privacy, newest first.
pub async fn my_videos(app: &Arc<App>, req: Request) -> Result<Response> {
    let who = accounts::require(app, &req, Scope::Manage).await?;
    let query =
        VideoQuery { creator: Some(who.id.clone()), include_deleted: true, limit: 100, ..VideoQuery::default() };
    let videos = app.meta.list_videos(&query).await?;
    // The creator sees why a video was taken down or gated: every decision in one query.
    let mut decided = super::moderation::decisions_by_video(app, &who.id).await?;
    let mut listed = Vec::with_capacity(videos.len());
    for v in videos {
        let mut row = serde_json::to_value(&v)?;
        if let Some(decisions) = decided.remove(&v.id) {
            row["moderation"] = decisions.into();
        }
        listed.push(row);
    }
    Ok(web::json(StatusCode::OK, &serde_json::json!({ "videos": listed })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewChannel {
    handle: String,
    name: String,
}

/// Channels an account may have.
const MAX_CHANNELS: usize = 10;

/// `POST /v1/me/channels`: another channel of the caller's (creators), its handle unique among
/// accounts' and channels' handles.
pub async fn create_channel(app: &Arc<App>, req: Request) -> Result<Response> {
    let who = accounts::require(app, &req, Scope::Manage).await?;
    if !who.is(Role::Creator) || matches!(who.via, Via::Bootstrap) {
        return Err(Error::forbidden("role", "channels belong to creator accounts"));
    }
    let body: NewChannel = web::read_json(req).await?;
    check_handle(&body.handle)?;
    check_display_name(&body.name)?;
    if app.people.channels_of(&who.id).await?.len() >= MAX_CHANNELS {
        return Err(Error::refused(Kind::Conflict, "too_many_channels", format!("at most {MAX_CHANNELS} channels")));
    }
    let channel = Channel {
        id: crate::secrets::random_hex(12)?,
        owner: who.id.clone(),
        handle: body.handle,
        name: body.name.trim().to_owned(),
        created_at: meta::now(),
    };
    if app.people.create_channel(&channel).await? == Claimed::HandleTaken {
        return Err(Error::refused(Kind::Conflict, "handle_taken", "that handle is taken"));
    }
    tracing::info!(user = %who.id, channel = %channel.id, "channel created");
    Ok(web::json(StatusCode::CREATED, &channel))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    scopes: Vec<Scope>,
}

/// `POST /v1/me/tokens`: a personal API token, shown once. Only a signed-in browser makes
/// one (a token never mints another).
pub async fn create_token(app: &Arc<App>, req: Request) -> Result<Response> {
    let who = accounts::require(app, &req, Scope::Manage).await?;
    if !matches!(who.via, Via::Session { .. }) {
        return Err(Error::forbidden("not_a_session", "API tokens are made from a signed-in browser"));
    }
    let body: NewToken = web::read_json(req).await?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::bad_request("bad_field", "name: 1-100 characters"));
    }
    if body.scopes.is_empty() {
        return Err(Error::bad_request("bad_field", "scopes: at least one of upload, manage"));
    }
    let mut scopes = body.scopes;
    scopes.sort_by_key(|s| s.as_str());
    scopes.dedup();
    let (token, stored) = session::issue_token(app, &who.id, name, scopes, meta::now()).await?;
    tracing::info!(user = %who.id, token = %stored.id, "API token issued");
    let mut body = serde_json::to_value(&stored)?;
    body["token"] = token.into();
    Ok(web::json(StatusCode::CREATED, &body))
}

/// `GET /v1/me/tokens`: the caller's tokens (never their secrets).
pub async fn list_tokens(app: &Arc<App>, req: Request) -> Result<Response> {
    let who = accounts::require(app, &req, Scope::Manage).await?;
    let tokens = app.people.tokens_of(&who.id).await?;
    Ok(web::json(StatusCode::OK, &serde_json::json!({ "tokens": tokens })))
}

/// `DELETE /v1/me/tokens/{id}`: revokes one of the caller's tokens, at once.
pub async fn revoke_token(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    let who = accounts::require(app, &req, Scope::Manage).await?;
    if !app.people.revoke_token(&who.id, id, meta::now()).await? {
        return Err(Error::not_found("token"));
    }
    tracing::info!(user = %who.id, token = id, "API token revoked");
    Ok(web::status(StatusCode::NO_CONTENT))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    role: Role,
}

/// `PUT /v1/users/{handle}/role`: admins (and the bootstrap token) change roles.
pub async fn set_role(app: &Arc<App>, req: Request, handle: &str) -> Result<Response> {
    let who = accounts::require_role(app, &req, Role::Admin).await?;
    let body: RoleChange = web::read_json(req).await?;
    let user = app.people.user_by_handle(handle).await?.ok_or_else(|| Error::not_found("account"))?;
    if user.id == who.id && body.role < Role::Admin {
        return Err(Error::refused(Kind::Conflict, "own_role", "an admin does not demote themself"));
    }
    app.people.set_role(&user.id, body.role).await?;
    crate::cache::forget_user(app.cache.as_ref(), &user.id).await;
    tracing::info!(by = %who.id, user = %user.id, role = body.role.as_str(), "role changed");
    let user = app.people.user(&user.id).await?.ok_or_else(|| Error::not_found("account"))?;
    Ok(web::json(StatusCode::OK, &user))
}

/// How much of its quota an account has used.
pub async fn quota(app: &App, user_id: &str, now: Millis) -> Result<serde_json::Value> {
    let (day, total) = usage(app, user_id, now).await?;
    let limits = &app.config.accounts;
    Ok(serde_json::json!({
        "day_bytes": day, "day_limit": limits.quota_day_bytes,
        "total_bytes": total, "total_limit": limits.quota_total_bytes,
    }))
}

/// Bytes of `user_id`'s videos created in the last 24 hours and kept in all.
async fn usage(app: &App, user_id: &str, now: Millis) -> Result<(u64, u64)> {
    app.people.upload_usage(user_id, now - accounts::quota::DAY).await
}

/// Whether `user_id`'s videos, every one created so far counted, are within the quota.
pub async fn within_quota(app: &App, user_id: &str, now: Millis) -> Result<bool> {
    let (day, total) = usage(app, user_id, now).await?;
    let limits = &app.config.accounts;
    Ok(day <= limits.quota_day_bytes && total <= limits.quota_total_bytes)
}

/// Refuses a new video of `size` bytes that would pass `user_id`'s quota: `413
/// quota_total` over the total; `429 quota_day` over the last 24 hours', with `Retry-After`
/// saying when enough of them will have left the window (none when `size` alone is over).
/// The first is an error; the second, which needs its header, is `Ok(Some(refusal))`.
pub async fn check_quota(app: &App, user_id: &str, size: u64, now: Millis) -> Result<Option<Response>> {
    let (day, total) = usage(app, user_id, now).await?;
    let limits = &app.config.accounts;
    if total.saturating_add(size) > limits.quota_total_bytes {
        return Err(Error::refused(
            Kind::TooLarge,
            "quota_total",
            format!(
                "{size} bytes more would pass the account's {}-byte total ({total} used)",
                limits.quota_total_bytes
            ),
        ));
    }
    if day.saturating_add(size) <= limits.quota_day_bytes {
        return Ok(None);
    }
    let over =
        format!("{size} bytes more would pass the {}-byte quota of 24 hours ({day} used)", limits.quota_day_bytes);
    let uploads = app.people.uploads_since(user_id, now - accounts::quota::DAY).await?;
    tracing::info!(user = %user_id, size, day, "upload refused: quota_day");
    Ok(Some(match accounts::quota::room_at(&uploads, size, limits.quota_day_bytes, now) {
        Some(at) => {
            let secs = u32::try_from((at - now).max(0).saturating_add(999) / 1000).unwrap_or(u32::MAX).max(1);
            web::retry_later(Kind::RateLimited, "quota_day", &format!("{over}: it fits in {secs} s"), secs)
        }
        None => web::error(&Error::refused(Kind::RateLimited, "quota_day", over), ""),
    }))
}

async fn signed_in(app: &App, user: &User, status: StatusCode, now: Millis) -> Result<Response> {
    let (secret, session) = session::start(app, user, now).await?;
    let mut r = web::json(status, &serde_json::json!({ "user": user, "csrf_token": session.csrf }));
    web::set(&mut r, header::SET_COOKIE, &session::set_cookie(&secret, app.config.accounts.session_ttl.as_secs()));
    web::set(&mut r, header::CACHE_CONTROL, "no-store");
    tracing::info!(user = %user.id, "signed in");
    Ok(r)
}

fn bootstrap_user(id: &str) -> serde_json::Value {
    serde_json::json!({ "id": id, "handle": id, "display_name": id, "role": "admin", "bootstrap": true })
}

/// Sign-up and sign-in are refused from another site's page (login forgery): browsers say
/// where a request came from in `Sec-Fetch-Site`.
fn refuse_cross_site(req: &Request) -> Result<()> {
    match req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("cross-site") => Err(Error::forbidden("cross_site", "sign in from this site's own pages")),
        _ => Ok(()),
    }
}

/// Handles are what URLs and `@mentions` carry: 3-30 of a-z, 0-9, `_` and `-`, any case
/// (unique ignoring case). Display names take any script.
pub fn check_handle(handle: &str) -> Result<()> {
    let ok =
        (3..=30).contains(&handle.len()) && handle.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(Error::bad_request("bad_handle", "handle: 3-30 of a-z, 0-9, _ and -")) }
}

fn check_display_name(name: &str) -> Result<()> {
    let n = name.trim().chars().count();
    if n == 0 || n > 50 || name.chars().any(char::is_control) {
        return Err(Error::bad_request("bad_field", "display_name: 1-50 characters, any script"));
    }
    Ok(())
}
