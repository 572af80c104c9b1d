//! Routing: the one table of endpoints (also checked against `openapi.json`), request ids,
//! tracing spans (with capabilities redacted from paths), metrics, CORS, and error responses
//! for every handler. `/metrics` is served on its own listener ([`metrics_page`]).

pub mod accounts;
pub mod channels;
pub mod events;
pub mod keys;
pub mod moderation;
pub mod objects;
pub mod pops;
pub mod steering;
pub mod uploads;
pub mod videos;

use std::sync::Arc;
use std::time::Instant;

use http::{Method, StatusCode, header};
use tracing::Instrument;

use crate::app::App;
use crate::error::{Error, Kind, Result};
use crate::logs::redact;
use crate::web::limits::ClientAddr;
use crate::web::{self, Request, Response};

/// Every route: (method, path template). `openapi.json` documents exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/openapi.json"),
    ("POST", "/v1/videos"),
    ("GET", "/v1/videos"),
    ("GET", "/v1/videos/{id}"),
    ("PATCH", "/v1/videos/{id}"),
    ("DELETE", "/v1/videos/{id}"),
    ("GET", "/v1/videos/{id}/events"),
    ("POST", "/v1/videos/{id}/playback"),
    ("PUT", "/v1/videos/{id}/pin"),
    ("PUT", "/v1/webhook"),
    ("POST", "/v1/videos/{id}/restore"),
    ("GET", "/v1/videos/{id}/shares"),
    ("PUT", "/v1/videos/{id}/shares/{handle}"),
    ("DELETE", "/v1/videos/{id}/shares/{handle}"),
    ("POST", "/v1/videos/{id}/views"),
    ("POST", "/v1/videos/{id}/reports"),
    ("GET", "/v1/reports"),
    ("POST", "/v1/reports/{report}/decision"),
    ("POST", "/v1/accounts"),
    ("POST", "/v1/sessions"),
    ("DELETE", "/v1/sessions"),
    ("GET", "/v1/me"),
    ("GET", "/v1/me/videos"),
    ("DELETE", "/v1/me/sessions"),
    ("PUT", "/v1/me/password"),
    ("POST", "/v1/me/channels"),
    ("GET", "/v1/me/tokens"),
    ("POST", "/v1/me/tokens"),
    ("DELETE", "/v1/me/tokens/{token}"),
    ("PUT", "/v1/users/{handle}/role"),
    ("GET", "/v1/channels/{handle}"),
    ("OPTIONS", "/v1/uploads"),
    ("POST", "/v1/uploads"),
    ("HEAD", "/v1/uploads/{upload}"),
    ("PATCH", "/v1/uploads/{upload}"),
    ("DELETE", "/v1/uploads/{upload}"),
    ("GET", "/p/{token}/{id}/{path}"),
    ("GET", "/v1/keys/{id}"),
    ("POST", "/v1/keys/{id}/licence"),
    ("GET", "/v1/objects/{id}/{path}"),
    ("GET", "/v1/purges"),
    ("POST", "/v1/pops/heartbeat"),
    ("GET", "/v1/steering/{id}"),
    ("GET", "/v1/steering/{id}/dash"),
];

/// The OpenAPI 3 document.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Handles one request end to end.
pub async fn handle(app: Arc<App>, req: Request) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| crate::secrets::random_hex(8).unwrap_or_default(), str::to_owned);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let page = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let page = match page {
        Some(p) if objects::is_key_path(&path) && !may_read_keys(&app, &p).await => None,
        other => other,
    };
    if method == Method::OPTIONS && req.headers().contains_key("access-control-request-method") {
        let mut r = web::status(StatusCode::NO_CONTENT);
        cors(&path, page.as_deref(), &mut r);
        web::set(&mut r, "access-control-allow-methods", "GET, HEAD, POST, PATCH, PUT, DELETE, OPTIONS");
        web::set(&mut r, "access-control-allow-headers", CORS_REQUEST_HEADERS);
        web::set(&mut r, "access-control-max-age", "86400");
        return r;
    }
    let logged = redact(req.uri().path_and_query().map_or("/", |p| p.as_str()));
    let span = tracing::info_span!("request", %method, path = %logged, request_id = %request_id);
    let (route, result) = async { route(&app, req).await }.instrument(span.clone()).await;
    let mut response = match result {
        Ok(r) => r,
        Err(e) => {
            let _enter = span.enter();
            if e.kind().is_server_side() {
                tracing::error!(error = %e, code = e.code(), "request failed");
            } else {
                tracing::info!(code = e.code(), message = %e.public_message(), "request refused");
            }
            web::error(&e, &request_id)
        }
    };
    web::set(&mut response, "x-request-id", &request_id);
    cors(&path, page.as_deref(), &mut response);
    let status = response.status().as_u16();
    app.metrics.request(route, status, started.elapsed().as_secs_f64());
    tracing::debug!(parent: &span, status, ms = started.elapsed().as_millis() as u64, "done");
    response
}

/// Splits a path into segments, refusing anything that could step outside a namespace:
/// empty, `.` and `..` segments, percent-escapes and backslashes.
pub fn segments(path: &str) -> Result<Vec<&str>> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let segs: Vec<&str> = if trimmed.is_empty() { Vec::new() } else { trimmed.split('/').collect() };
    let unsafe_seg = |s: &&str| s.is_empty() || *s == "." || *s == ".." || s.contains(['%', '\\']);
    if segs.iter().any(unsafe_seg) {
        return Err(Error::bad_request("bad_path", "the path has an empty, relative or escaped segment"));
    }
    Ok(segs)
}

async fn route(app: &Arc<App>, req: Request) -> (&'static str, Result<Response>) {
    let path = req.uri().path().to_owned();
    let segs = match segments(&path) {
        Ok(s) => s,
        Err(e) => return ("invalid", Err(e)),
    };
    let m = req.method().clone();
    macro_rules! go {
        ($route:literal, $call:expr) => {
            ($route, $call.await)
        };
    }
    match (&m, segs.as_slice()) {
        (&Method::GET, ["healthz"]) => ("/healthz", Ok(web::json(StatusCode::OK, &serde_json::json!({"ok": true})))),
        (&Method::GET, ["openapi.json"]) => ("/openapi.json", Ok(text(OPENAPI.to_owned(), "application/json"))),
        (&Method::POST, ["v1", "videos"]) => go!("/v1/videos", videos::create(app, req)),
        (&Method::GET, ["v1", "videos"]) => go!("/v1/videos", videos::list(app, req)),
        (&Method::GET, ["v1", "videos", id]) => go!("/v1/videos/{id}", videos::get(app, req, id)),
        (&Method::PATCH, ["v1", "videos", id]) => go!("/v1/videos/{id}", videos::patch(app, req, id)),
        (&Method::DELETE, ["v1", "videos", id]) => go!("/v1/videos/{id}", videos::takedown(app, req, id)),
        (&Method::GET, ["v1", "videos", id, "events"]) => {
            go!("/v1/videos/{id}/events", events::stream(app, &req, id))
        }
        (&Method::POST, ["v1", "videos", id, "playback"]) => {
            go!("/v1/videos/{id}/playback", videos::playback(app, req, id))
        }
        (&Method::PUT, ["v1", "videos", id, "pin"]) => go!("/v1/videos/{id}/pin", videos::set_pin(app, req, id)),
        (&Method::PUT, ["v1", "webhook"]) => go!("/v1/webhook", videos::set_webhook(app, req)),
        (&Method::POST, ["v1", "videos", id, "restore"]) => {
            go!("/v1/videos/{id}/restore", videos::restore(app, req, id))
        }
        (&Method::GET, ["v1", "videos", id, "shares"]) => go!("/v1/videos/{id}/shares", channels::shares(app, req, id)),
        (&Method::PUT, ["v1", "videos", id, "shares", who]) => {
            go!("/v1/videos/{id}/shares/{handle}", channels::share(app, req, id, who))
        }
        (&Method::DELETE, ["v1", "videos", id, "shares", who]) => {
            go!("/v1/videos/{id}/shares/{handle}", channels::unshare(app, req, id, who))
        }
        (&Method::POST, ["v1", "videos", id, "views"]) => go!("/v1/videos/{id}/views", channels::view(app, req, id)),
        (&Method::POST, ["v1", "videos", id, "reports"]) => {
            go!("/v1/videos/{id}/reports", moderation::report(app, req, id))
        }
        (&Method::GET, ["v1", "reports"]) => go!("/v1/reports", moderation::queue(app, req)),
        (&Method::POST, ["v1", "reports", id, "decision"]) => {
            go!("/v1/reports/{report}/decision", moderation::decide(app, req, id))
        }
        (&Method::POST, ["v1", "accounts"]) => go!("/v1/accounts", accounts::sign_up(app, req)),
        (&Method::POST, ["v1", "sessions"]) => go!("/v1/sessions", accounts::sign_in(app, req)),
        (&Method::DELETE, ["v1", "sessions"]) => go!("/v1/sessions", accounts::sign_out(app, req)),
        (&Method::GET, ["v1", "me"]) => go!("/v1/me", accounts::me(app, req)),
        (&Method::GET, ["v1", "me", "videos"]) => go!("/v1/me/videos", accounts::my_videos(app, req)),
        (&Method::DELETE, ["v1", "me", "sessions"]) => go!("/v1/me/sessions", accounts::sign_out_everywhere(app, req)),
        (&Method::PUT, ["v1", "me", "password"]) => go!("/v1/me/password", accounts::change_password(app, req)),
        (&Method::POST, ["v1", "me", "channels"]) => go!("/v1/me/channels", accounts::create_channel(app, req)),
        (&Method::GET, ["v1", "me", "tokens"]) => go!("/v1/me/tokens", accounts::list_tokens(app, req)),
        (&Method::POST, ["v1", "me", "tokens"]) => go!("/v1/me/tokens", accounts::create_token(app, req)),
        (&Method::DELETE, ["v1", "me", "tokens", id]) => {
            go!("/v1/me/tokens/{token}", accounts::revoke_token(app, req, id))
        }
        (&Method::PUT, ["v1", "users", handle, "role"]) => {
            go!("/v1/users/{handle}/role", accounts::set_role(app, req, handle))
        }
        (&Method::GET, ["v1", "channels", handle]) => go!("/v1/channels/{handle}", channels::channel(app, handle)),
        (&Method::OPTIONS, ["v1", "uploads", ..]) => ("/v1/uploads", Ok(uploads::options(app))),
        (&Method::POST, ["v1", "uploads"]) => go!("/v1/uploads", uploads::create(app, req)),
        (&Method::HEAD, ["v1", "uploads", id]) => go!("/v1/uploads/{upload}", uploads::head(app, req, id)),
        (&Method::PATCH, ["v1", "uploads", id]) => go!("/v1/uploads/{upload}", uploads::patch(app, req, id)),
        (&Method::DELETE, ["v1", "uploads", id]) => go!("/v1/uploads/{upload}", uploads::terminate(app, req, id)),
        (&Method::GET | &Method::HEAD, ["p", token, id, rest @ ..]) if !rest.is_empty() => {
            go!("/p/{token}/{id}/{path}", objects::viewer(app, req, token, id, rest))
        }
        (&Method::GET, ["v1", "keys", id]) => go!("/v1/keys/{id}", keys::key(app, req, id)),
        (&Method::POST, ["v1", "keys", id, "licence"]) => go!("/v1/keys/{id}/licence", keys::licence(app, req, id)),
        (&Method::GET | &Method::HEAD, ["v1", "objects", id, rest @ ..]) if !rest.is_empty() => {
            go!("/v1/objects/{id}/{path}", objects::pop(app, req, id, rest))
        }
        (&Method::GET, ["v1", "purges"]) => go!("/v1/purges", objects::purges(app, req)),
        (&Method::POST, ["v1", "pops", "heartbeat"]) => go!("/v1/pops/heartbeat", pops::heartbeat(app, req)),
        (&Method::GET, ["v1", "steering", id]) => {
            go!("/v1/steering/{id}", steering::manifest(app, &req, id, crate::steering::Format::Hls))
        }
        (&Method::GET, ["v1", "steering", id, "dash"]) => {
            go!("/v1/steering/{id}/dash", steering::manifest(app, &req, id, crate::steering::Format::Dash))
        }
        _ => ("unmatched", Err(no_route(&m, &path))),
    }
}

fn no_route(method: &Method, path: &str) -> Error {
    Error::refused(Kind::NotFound, "no_route", format!("no route for {method} {}", redact(path)))
}

/// The metrics listener's one page: `GET /metrics` (Prometheus text format).
pub fn metrics_page(app: &App, req: &Request) -> Response {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => text(app.metrics.render(), "text/plain; version=0.0.4"),
        (m, path) => web::error(&no_route(m, path), ""),
    }
}

/// The address of the client that sent a request (unspecified when the server did not say).
pub fn client_addr(req: &Request) -> std::net::IpAddr {
    req.extensions().get::<ClientAddr>().map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.0.ip())
}

/// Headers browsers may send: tus uploads and pages of another origin (the edge) use them.
const CORS_REQUEST_HEADERS: &str = "authorization, content-type, tus-resumable, upload-length, upload-offset, \
upload-metadata, upload-concat, upload-checksum, upload-defer-length, x-request-id, x-http-method-override, x-csrf-token";

/// Whether pages of `page` (an `Origin`) may read key responses: the configured page origins,
/// and the pages of the PoPs of our own (not partners') that steering sends viewers to, since a
/// viewer steered there plays from the page that PoP served.
async fn may_read_keys(app: &App, page: &str) -> bool {
    app.page_origins.iter().any(|o| o == page) || steering::serves_pages_at(app, page).await
}

/// Lets pages served elsewhere (the edge) call the API and upload with tus. Cross-origin
/// credentials are bearer tokens and signed URLs: the session cookie is `SameSite=Lax` and
/// `Access-Control-Allow-Credentials` is never sent, so no other origin's page can read a
/// response made with it (signed-in pages call the API same-origin, through their PoP). Any
/// origin may read responses, except content keys: only pages `handle` found allowed
/// ([`may_read_keys`]) may read those.
fn cors(path: &str, page: Option<&str>, r: &mut Response) {
    if objects::is_key_path(path) {
        web::set(r, header::VARY.as_str(), "origin");
        if let Some(page) = page {
            web::set(r, "access-control-allow-origin", page);
        }
    } else {
        web::set(r, "access-control-allow-origin", "*");
    }
    web::set(
        r,
        "access-control-expose-headers",
        "location, upload-offset, upload-length, upload-expires, upload-metadata, upload-concat, tus-resumable, \
tus-version, tus-extension, tus-max-size, tus-checksum-algorithm, x-request-id, etag, content-range",
    );
}

fn text(body: String, content_type: &'static str) -> Response {
    let mut r = Response::new(web::full(body));
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    r
}

/// The token of `Authorization: Bearer TOKEN`, if the request has one.
pub fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

/// The enrolled, enabled PoP whose credential the request carries.
pub async fn require_pop(app: &App, req: &Request) -> Result<crate::meta::pops::PopRecord> {
    crate::pops::authenticate(app.pops.as_ref(), req).await
}

/// The query string of a request ("" when absent).
pub fn query(req: &Request) -> &str {
    req.uri().query().unwrap_or("")
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    crate::meta::now() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_escapes_are_refused() {
        assert_eq!(segments("/v1/videos/abc").unwrap(), vec!["v1", "videos", "abc"]);
        assert!(segments("/").unwrap().is_empty());
        for bad in ["/p/t/v/../../etc/passwd", "/p/t/v/./x", "/v1//videos", "/p/t/v/%2e%2e/x", "/p/t/v/a\\b"] {
            assert_eq!(segments(bad).unwrap_err().code(), "bad_path", "{bad}");
        }
    }

    #[test]
    fn openapi_documents_every_route_and_nothing_else() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "OpenAPI 3");
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(p, ops)| {
                ops.as_object()
                    .into_iter()
                    .flat_map(|o| o.keys())
                    .filter(|k| !k.starts_with("parameters"))
                    .map(move |m| (m.to_uppercase(), p.clone()))
            })
            .collect();
        let mut routed: Vec<(String, String)> =
            ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
    }
}
