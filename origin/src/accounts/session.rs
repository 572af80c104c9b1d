//! Sessions and personal API tokens: both are random secrets handed out once and kept as
//! their SHA-256, so a copy of the database signs nobody in. A session rides in an
//! `HttpOnly; Secure; SameSite=Lax` cookie and pairs with an anti-forgery token the page reads
//! from the API; an API token is `vt_{id}.{secret}`, found by its id and compared in constant
//! time.

use http::header;
use pop_config::tier::fingerprint;

use super::{Principal, TOKEN_PREFIX, Via};
use crate::app::App;
use crate::error::Result;
use crate::meta::Millis;
use crate::meta::people::{ApiToken, Scope, Session, User};
use crate::sign::{constant_eq, is_safe_name};

/// The session cookie's name.
pub const COOKIE: &str = "session";

/// The session secret in a request's `Cookie` header(s), if any.
pub fn cookie(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `Set-Cookie` value starting a session that lasts `max_age_secs`.
pub fn set_cookie(secret: &str, max_age_secs: u64) -> String {
    format!("{COOKIE}={secret}; Path=/; Max-Age={max_age_secs}; HttpOnly; Secure; SameSite=Lax")
}

/// The `Set-Cookie` value that ends the session in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax")
}

/// A new session of `user`: (the cookie's secret, the stored session).
pub async fn start(app: &App, user: &User, now: Millis) -> Result<(String, Session)> {
    let secret = crate::secrets::random_hex(32)?;
    let session = Session {
        secret_sha256: fingerprint(&secret),
        user_id: user.id.clone(),
        csrf: crate::secrets::random_hex(16)?,
        created_at: now,
        expires_at: now + app.config.accounts.session_ttl.as_millis() as Millis,
        revoked_at: None,
    };
    app.people.create_session(&session).await?;
    Ok((secret, session))
}

/// The live session behind a cookie's secret, as a principal with the session's anti-forgery
/// token; `None` when there is none, or it was revoked or expired. Read from the store on every
/// request, so a revocation takes effect at once on every API node.
pub async fn principal(app: &App, secret: &str, now: Millis) -> Result<Option<(Principal, String)>> {
    let key = fingerprint(secret);
    let Some(session) = app.people.session(&key).await? else { return Ok(None) };
    if session.revoked_at.is_some() || session.expires_at <= now {
        return Ok(None);
    }
    let Some(user) = crate::cache::user(app.cache.as_ref(), app.people.as_ref(), &session.user_id).await? else {
        return Ok(None);
    };
    let principal =
        Principal { id: user.id, handle: user.handle, role: user.role, via: Via::Session { secret_sha256: key } };
    Ok(Some((principal, session.csrf)))
}

/// A new API token of `user`: (the token, shown once; what is stored).
pub async fn issue_token(
    app: &App,
    user_id: &str,
    name: &str,
    scopes: Vec<Scope>,
    now: Millis,
) -> Result<(String, ApiToken)> {
    let id = crate::secrets::random_hex(8)?;
    let token = format!("{TOKEN_PREFIX}{id}.{}", crate::secrets::random_hex(32)?);
    let stored = ApiToken {
        id,
        user_id: user_id.to_owned(),
        name: name.to_owned(),
        scopes,
        secret_sha256: fingerprint(&token),
        created_at: now,
        revoked_at: None,
    };
    app.people.create_token(&stored).await?;
    Ok((token, stored))
}

/// The principal an API token stands for; `None` when it is unknown, wrong or revoked.
pub async fn token_principal(app: &App, token: &str) -> Result<Option<Principal>> {
    let Some((id, _)) = token.strip_prefix(TOKEN_PREFIX).and_then(|t| t.split_once('.')) else { return Ok(None) };
    if !is_safe_name(id) {
        return Ok(None);
    }
    let Some(stored) = app.people.token(id).await? else { return Ok(None) };
    if stored.revoked_at.is_some() || !constant_eq(fingerprint(token).as_bytes(), stored.secret_sha256.as_bytes()) {
        return Ok(None);
    }
    let Some(user) = crate::cache::user(app.cache.as_ref(), app.people.as_ref(), &stored.user_id).await? else {
        return Ok(None);
    };
    Ok(Some(Principal {
        id: user.id,
        handle: user.handle,
        role: user.role,
        via: Via::Token { id: stored.id, scopes: stored.scopes },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(header::COOKIE, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_session_cookie_is_read_among_others_and_only_if_well_formed() {
        let secret = "ab".repeat(32);
        assert_eq!(cookie(&with_cookie(&format!("theme=dark; session={secret}; x=1"))), Some(secret.clone()));
        assert_eq!(cookie(&with_cookie("session=short")), None);
        assert_eq!(cookie(&with_cookie(&format!("xsession={secret}"))), None);
        let set = set_cookie(&secret, 60);
        for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=60"] {
            assert!(set.contains(attribute), "{set}");
        }
    }
}
