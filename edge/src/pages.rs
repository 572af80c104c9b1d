//! The catalogue, watch, upload, account, channel and moderation pages and their assets,
//! served by the PoP so a page loads from the same place as its video (and its API calls,
//! session cookie included, stay same-origin). Every reachable file is named here: pages by route,
//! assets from two flat folders, the player and upload libraries from their npm packages.
//! Nothing else under the folder can be asked for, whatever the URL.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{StatusCode, header};

use crate::error::EdgeError;
use crate::respond::{self, Response};

/// Libraries from npm (`npm ci` in the web folder), by the name pages load them under.
const VENDOR: [(&str, &str); 4] = [
    ("hls.js", "node_modules/hls.js/dist/hls.min.js"),
    ("hls.js.map", "node_modules/hls.js/dist/hls.min.js.map"),
    ("shaka.js", "node_modules/shaka-player/dist/shaka-player.compiled.js"),
    ("tus.js", "node_modules/tus-js-client/dist/tus.min.js"),
];

/// Scripts, styles and pictures only from ourselves; media and workers may be `blob:` (MSE
/// and hls.js's transmuxer); connections to ourselves, the key service (which also steers) and
/// the PoPs steering may move a player to. No framing: the pages have buttons worth
/// clickjacking.
fn content_security_policy(key_service: &str, peers: &[String]) -> String {
    let peers: String = peers.iter().map(|p| format!(" {p}")).collect();
    format!(
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; worker-src 'self' blob:; \
         script-src 'self'; style-src 'self'; connect-src 'self' {key_service}{peers}; frame-ancestors 'none'"
    )
}

/// The web folder.
#[derive(Debug)]
pub struct Pages {
    dir: PathBuf,
    key_service: String,
    csp: std::sync::RwLock<String>,
}

impl Pages {
    /// Pages from `dir`, whose players fetch keys from `key_service` (scheme, host and port).
    pub fn new(dir: PathBuf, key_service: &str) -> Self {
        let origin = key_service.split('/').take(3).collect::<Vec<_>>().join("/");
        let csp = content_security_policy(&origin, &[]).into();
        Self { dir, key_service: origin, csp }
    }

    /// The PoPs a player on these pages may be steered to (from the origin's heartbeat answer):
    /// `http(s)://host[:port]` each; anything else is left out, so nothing the answer holds
    /// can add a directive.
    pub fn set_peers(&self, peers: &[String]) {
        let mut peers: Vec<String> = peers.iter().filter(|p| is_peer_origin(p)).take(64).cloned().collect();
        peers.sort();
        peers.dedup();
        let csp = content_security_policy(&self.key_service, &peers);
        *self.csp.write().expect("csp lock") = csp;
    }

    /// The file for a request path's segments, if it names one.
    fn file(&self, segs: &[&str]) -> Option<PathBuf> {
        let relative = match segs {
            [] => "pages/index.html".to_owned(),
            ["watch", _id] => "pages/watch.html".to_owned(),
            ["upload"] => "pages/upload.html".to_owned(),
            ["account"] => "pages/account.html".to_owned(),
            ["channel", handle] if is_handle(handle) => "pages/channel.html".to_owned(),
            ["moderation"] => "pages/moderation.html".to_owned(),
            ["static", name] if is_plain_name(name) => format!("static/{name}"),
            ["i18n", name] if is_plain_name(name) && name.ends_with(".json") => format!("i18n/{name}"),
            ["vendor", name] => VENDOR.iter().find(|(n, _)| n == name)?.1.to_owned(),
            _ => return None,
        };
        Some(self.dir.join(relative))
    }

    /// Serves the file `segs` names, or `None` when the path is not a page at all.
    pub async fn serve(&self, segs: &[&str], if_none_match: Option<&str>) -> Option<Result<Response, EdgeError>> {
        let path = self.file(segs)?;
        let csp = self.csp.read().expect("csp lock").clone();
        Some(read(&path, if_none_match, &csp).await)
    }
}

/// `http(s)://host[:port]` with nothing a policy could read as a separator or keyword.
fn is_peer_origin(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= 255
        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// A channel handle as the API takes them: 1-64 letters, digits, `_` and `-` (the page itself
/// says when no such channel exists; anything else is not a page at all).
fn is_handle(handle: &str) -> bool {
    (1..=64).contains(&handle.len()) && handle.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// One flat file name: letters, digits, `-`, `_` and dots, not starting with a dot.
fn is_plain_name(name: &str) -> bool {
    !name.starts_with('.') && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

async fn read(path: &Path, if_none_match: Option<&str>, csp: &str) -> Result<Response, EdgeError> {
    let meta = tokio::fs::metadata(path).await.map_err(|_| missing(path))?;
    let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    let etag = format!("\"{}-{}\"", meta.len(), modified.map_or(0, |d| d.as_millis()));
    let mut r = if crate::conditional::not_modified(if_none_match, Some(&etag)) {
        respond::with(StatusCode::NOT_MODIFIED, respond::full(Bytes::new()))
    } else {
        let body = tokio::fs::read(path).await.map_err(|_| missing(path))?;
        respond::with(StatusCode::OK, respond::full(body))
    };
    respond::set(&mut r, header::CONTENT_TYPE, content_type(path));
    respond::set(&mut r, header::ETAG, &etag);
    // Pages change with deployments and must revalidate; assets may be reused briefly.
    let page = path.extension().is_some_and(|e| e == "html");
    respond::set(&mut r, header::CACHE_CONTROL, if page { "no-cache" } else { "public, max-age=300" });
    respond::set(&mut r, header::CONTENT_SECURITY_POLICY, csp);
    respond::set(&mut r, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Playback tokens travel in paths; a referrer would hand them to whatever a page links to.
    respond::set(&mut r, header::REFERRER_POLICY, "no-referrer");
    Ok(r)
}

fn missing(path: &Path) -> EdgeError {
    if path.components().any(|c| c.as_os_str() == "node_modules") {
        tracing::warn!(path = %path.display(), "a page library is missing: run `npm ci` in the web folder");
    }
    EdgeError::NotFound
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_files_are_reachable() {
        let pages = Pages::new(PathBuf::from("w"), "https://keys.example/base");
        let csp = pages.csp.read().unwrap().clone();
        assert!(csp.contains("connect-src 'self' https://keys.example;"), "{csp}");
        pages.set_peers(&["https://pop-b.example:8443".into(), "https://x; script-src *".into(), "ftp://y".into()]);
        let csp = pages.csp.read().unwrap().clone();
        assert!(csp.contains("connect-src 'self' https://keys.example https://pop-b.example:8443;"), "{csp}");
        assert_eq!(pages.file(&[]), Some(PathBuf::from("w/pages/index.html")));
        assert_eq!(pages.file(&["watch", "abc"]), Some(PathBuf::from("w/pages/watch.html")));
        assert_eq!(pages.file(&["upload"]), Some(PathBuf::from("w/pages/upload.html")));
        assert_eq!(pages.file(&["account"]), Some(PathBuf::from("w/pages/account.html")));
        assert_eq!(pages.file(&["channel", "Seo-yeon_99"]), Some(PathBuf::from("w/pages/channel.html")));
        assert_eq!(pages.file(&["moderation"]), Some(PathBuf::from("w/pages/moderation.html")));
        assert_eq!(pages.file(&["static", "app.css"]), Some(PathBuf::from("w/static/app.css")));
        assert_eq!(pages.file(&["i18n", "ko.json"]), Some(PathBuf::from("w/i18n/ko.json")));
        assert_eq!(pages.file(&["vendor", "hls.js"]), Some(PathBuf::from("w/node_modules/hls.js/dist/hls.min.js")));
        for refused in [
            &["static", ".env"][..],
            &["static", "a", "b"],
            &["i18n", "ko.txt"],
            &["vendor", "left-pad"],
            &["node_modules", "x"],
            &["pages", "index.html"],
            &["watch"],
            &["channel"],
            &["channel", "a.b"],
            &["channel", "..", "x"],
            &["channel", "a", "videos"],
            &["account", "x"],
            &["moderation", "x"],
        ] {
            assert_eq!(pages.file(refused), None, "{refused:?}");
        }
    }
}
