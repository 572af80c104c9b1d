//! Who is asking (P3): the one owner of turning a request into a [`Principal`], by a session
//! cookie (with its anti-forgery token on every state-changing request), a personal API token
//! (with its scopes), or a configured bootstrap token; and of what each may do with a video
//! ([`access`]). Handlers ask here and nowhere else.

pub mod access;
pub mod password;
pub mod quota;
pub mod session;
pub mod throttle;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use http::Method;

use crate::app::App;
use crate::error::{Error, Kind, Result};
use crate::meta::Millis;
use crate::meta::people::{Role, Scope};
use crate::sign::constant_eq;
use crate::web::Request;

/// The header a signed-in page echoes its session's anti-forgery token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Personal API tokens start with this, then their id, a dot and the secret.
pub const TOKEN_PREFIX: &str = "vt_";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Account id (a bootstrap token's configured creator id).
    pub id: String,
    /// Handle.
    pub handle: String,
    /// Role.
    pub role: Role,
    /// How it authenticated.
    pub via: Via,
}

/// How a principal authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A session cookie; `secret_sha256` names the session.
    Session {
        /// The session's key in the store.
        secret_sha256: String,
    },
    /// A personal API token, limited to its scopes.
    Token {
        /// Token id.
        id: String,
        /// What it may do.
        scopes: Vec<Scope>,
    },
    /// A configured creator token: an admin until the database has an admin account.
    Bootstrap,
}

impl Principal {
    /// Whether this principal may use `scope` (sessions and bootstrap tokens may do all).
    pub fn may(&self, scope: Scope) -> bool {
        match &self.via {
            Via::Token { scopes, .. } => scopes.contains(&scope),
            Via::Session { .. } | Via::Bootstrap => true,
        }
    }

    /// Whether this principal is at least `role`.
    pub fn is(&self, role: Role) -> bool {
        self.role >= role
    }
}

/// Per-node account state: sign-in throttling, and whether bootstrap tokens are over.
#[derive(Debug, Default)]
pub struct State {
    /// Failed sign-ins by account and address.
    pub throttle: Mutex<throttle::Throttle>,
    /// Set once an admin account was seen: bootstrap tokens stop working for good (until a
    /// restart finds no admin again).
    admin_exists: AtomicBool,
}

/// The caller, if the request authenticates; an error when it carries a credential that is
/// not valid (a wrong credential is never treated as none), or a session cookie without its
/// anti-forgery token on a state-changing request.
pub async fn caller(app: &App, req: &Request) -> Result<Option<Principal>> {
    if let Some(bearer) = crate::api::bearer(req) {
        return bearer_principal(app, bearer).await.map(Some);
    }
    let Some(secret) = session::cookie(req.headers()) else { return Ok(None) };
    let Some((principal, csrf)) = session::principal(app, &secret, crate::meta::now()).await? else {
        // An expired or revoked cookie is as good as none: the page signs in again.
        return Ok(None);
    };
    if !is_safe(req.method()) {
        let echoed = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !constant_eq(echoed.as_bytes(), csrf.as_bytes()) {
            return Err(Error::forbidden("csrf", "a signed-in request that changes something must carry x-csrf-token"));
        }
    }
    Ok(Some(principal))
}

/// The caller, who must be signed in or hold a token: `401` otherwise.
async fn signed_in(app: &App, req: &Request) -> Result<Principal> {
    caller(app, req)
        .await?
        .ok_or_else(|| Error::refused(Kind::Unauthenticated, "unauthenticated", "sign in, or send an API token"))
}

/// The caller, who must be signed in (or hold a token) and may use `scope`.
pub async fn require(app: &App, req: &Request, scope: Scope) -> Result<Principal> {
    let who = signed_in(app, req).await?;
    if !who.may(scope) {
        return Err(Error::forbidden("scope", format!("the token lacks the `{}` scope", scope.as_str())));
    }
    Ok(who)
}

/// The caller, who must be at least `role`.
pub async fn require_role(app: &App, req: &Request, role: Role) -> Result<Principal> {
    let who = signed_in(app, req).await?;
    if !who.is(role) {
        return Err(Error::forbidden("role", format!("this needs the {} role", role.as_str())));
    }
    // What a role does beyond watching changes things: a token needs `manage` for it.
    if role > Role::Viewer && !who.may(Scope::Manage) {
        return Err(Error::forbidden("scope", "the token lacks the `manage` scope"));
    }
    Ok(who)
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn bearer_principal(app: &App, bearer: &str) -> Result<Principal> {
    let bad = || Error::refused(Kind::Unauthenticated, "bad_credentials", "the bearer token is not valid");
    if bearer.starts_with(TOKEN_PREFIX) {
        return session::token_principal(app, bearer).await?.ok_or_else(bad);
    }
    let creator = app.creator_of(bearer).ok_or_else(bad)?;
    if bootstrap_over(app).await? {
        return Err(Error::refused(
            Kind::Unauthenticated,
            "bootstrap_over",
            "configured creator tokens only work until an admin account exists: use an account or an API token",
        ));
    }
    Ok(Principal { id: creator.to_owned(), handle: creator.to_owned(), role: Role::Admin, via: Via::Bootstrap })
}

async fn bootstrap_over(app: &App) -> Result<bool> {
    if app.accounts.admin_exists.load(Ordering::Relaxed) {
        return Ok(true);
    }
    let exists = app.people.has_admin().await?;
    if exists {
        app.accounts.admin_exists.store(true, Ordering::Relaxed);
    }
    Ok(exists)
}
